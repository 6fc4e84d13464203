//! Fuzzing a channels listener: whatever it sends, it hears nothing, its
//! own PRESENCE:UPDATED for a presence update, or one `ERROR` whose code
//! says what was wrong (`INVALID_MESSAGE`, `UNKNOWN_TYPE`,
//! `UNSUPPORTED_TYPE`), in a frame that names it, and it stays connected; whatever its listen URL holds, it is welcomed with
//! CONNECTED or closed with 1009.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::check;
use super::mutate::{self, Sent};
use super::oracle::{self, Field, Shape, Verdict};
use super::wire::{request, Heard, Wire};
use crate::config::Config;
use crate::dialect::channels::inbound::{decode, Inbound};
use crate::dialect::channels::MAX_PRESENCE_BYTES;
use crate::dialect::{Dialect, Received};
use crate::router::RequestError;

/// The document's client messages, and server messages a client might
/// echo back, then what the original server's clients send.
const SEEDS: &[&str] = &[
    r#"{"type":"ACK","payload":{"eventID":"evt_gPVZZQC5"}}"#,
    r#"{"type":"PONG"}"#,
    r#"{"type":"PONG","payload":{}}"#,
    r#"{"type":"PRESENCE:UPDATE","payload":{"username":"Cerulean"}}"#,
    r#"{"type":"DATA","payload":{"hello":"world"},"clientID":"client_fXoSDfqi","latency":0,"requires_ack":true,"eventID":"evt_gPVZZQC5"}"#,
    r#"{"type":"PING","payload":{},"latency":0,"clientID":"client_fXoSDfqi"}"#,
    r#"{"type":"presence","payload":{"username":"Cerulean"}}"#,
    r#"{"type":"pong"}"#,
    r#"{"type":"ack","payload":{"eventID":"evt_gPVZZQC5"}}"#,
];

/// The protocol's words.
const WORDS: &[&str] = &[
    "type",
    "payload",
    "eventID",
    "clientID",
    "latency",
    "presence",
    "ACK",
    "PONG",
    "PRESENCE:UPDATE",
    "DATA",
    "PING",
    "CONNECTED",
    "PRESENCE:JOINED",
    "ERROR",
    "evt_gPVZZQC5",
    "username",
    "pong",
    "Presence:Update",
];

fn sent() -> impl Strategy<Value = Sent> {
    mutate::sent(SEEDS, WORDS)
}

/// The `ERROR` code the document's listener should hear for `text`, or
/// `None` if it should hear nothing.
fn expected_error(text: &str) -> Option<&'static str> {
    match decode(text) {
        Ok(Inbound::Ack { .. } | Inbound::Pong | Inbound::PresenceUpdate(_)) => None,
        Err(RequestError::Malformed(_)) => Some("INVALID_MESSAGE"),
        Err(RequestError::UnknownType(_)) => Some("UNKNOWN_TYPE"),
        Err(RequestError::Unsupported(_)) => Some("UNSUPPORTED_TYPE"),
        Err(other) => panic!("a listener's message refused as {other:?}"),
    }
}

/// The types only a server sends (the document's events), which a
/// listener is told it may not send (in any case).
const SERVER_TYPES: &[&str] = &[
    "DATA",
    "PING",
    "CONNECTED",
    "PRESENCE:JOINED",
    "PRESENCE:LEFT",
    "PRESENCE:UPDATED",
];

/// The model of the document and docs/channels.md's error codes, without
/// [`decode`]: a listener's message is an object with a string `type`
/// (`INVALID_MESSAGE` if not); ACK needs a `payload` object with a string
/// `eventID`, PRESENCE:UPDATE (or `presence`) an object `payload` of at
/// most 4 KiB (`INVALID_MESSAGE`); PONG takes any payload; the server's
/// types are `UNSUPPORTED_TYPE` and others `UNKNOWN_TYPE`; types are read
/// in any case (DESIGN.md, the originals' clients). `None`: accepted.
fn model(text: &str) -> Verdict<Option<&'static str>> {
    const INVALID: Option<&str> = Some("INVALID_MESSAGE");
    let tag_like = |first: &Value| first.is_string();
    let members = match oracle::object(text, INVALID, tag_like) {
        Ok(members) => members,
        Err(verdict) => return verdict,
    };
    if members.any_twice(&["type", "payload"]) {
        return Verdict::Undecided; // the document is silent on repeated fields
    }
    let Some(kind) = members.get("type").as_str().map(str::to_string) else {
        return Verdict::Decided(INVALID);
    };
    // The payload is skipped unread but for ACK and PRESENCE:UPDATE, so
    // it is looked at by its shape and raw text.
    let payload = match members.get("payload") {
        payload if payload.is_missing() => None,
        Field::One(_, raw) => Some((oracle::shape(raw.get()), raw.get().len())),
        _ => return Verdict::Undecided,
    };
    Verdict::Decided(match kind.to_ascii_uppercase().as_str() {
        "PONG" => None,
        "ACK" => match payload {
            Some((Shape::Object(payload), _)) => match payload.get("eventID") {
                Field::Twice => return Verdict::Undecided,
                event => event.as_str().is_none().then_some("INVALID_MESSAGE"),
            },
            Some((Shape::Array(_) | Shape::Unreadable, _)) => return Verdict::Undecided,
            _ => INVALID,
        },
        "PRESENCE:UPDATE" | "PRESENCE" => match payload {
            Some((Shape::Object(_), len)) => {
                (len > MAX_PRESENCE_BYTES).then_some("INVALID_MESSAGE")
            }
            Some((Shape::Unreadable, _)) => return Verdict::Undecided,
            _ => INVALID,
        },
        kind if SERVER_TYPES.contains(&kind) => Some("UNSUPPORTED_TYPE"),
        _ => Some("UNKNOWN_TYPE"),
    })
}

/// What the listener must hear for `text`: the model's verdict where it
/// has one, else what the decoder makes of it.
fn expected(text: &str) -> Option<&'static str> {
    match model(text) {
        Verdict::Decided(error) => error,
        Verdict::Undecided => expected_error(text),
    }
}

/// Opens a listener with `query` in its URL; returns it and its CONNECTED
/// (or close) frames.
fn listen(query: Option<&str>) -> (Wire, Vec<Heard>) {
    let listen = request("/lobby/listen", query, &[]);
    Wire::open(Dialect::Channels, &Config::default(), &listen)
}

#[test]
fn fuzz_any_listen_url_is_connected_or_closed_with_1009() {
    let queries = || {
        prop_oneof![
            any::<String>(),
            "[a-z%+=&0-9A-F]{0,64}",
            // Presence over its 4 KiB limit.
            (4000..6000usize).prop_map(|n| format!("name={}", "%41".repeat(n / 3))),
        ]
    };
    check(queries, |query| {
        let (wire, heard) = listen(Some(&query));
        prop_assert_eq!(heard.len(), 1, "{:?}", heard);
        match &heard[0] {
            Heard::Close(code, _) => prop_assert_eq!(*code, 1009),
            connected => {
                let connected = connected.json();
                prop_assert_eq!(&connected["type"], "CONNECTED", "{}", connected);
                prop_assert!(!wire.is_closed());
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_every_bad_message_gets_its_error_code_and_the_listener_stays() {
    check(
        || vec(sent(), 1..8),
        |messages| {
            let (mut wire, heard) = listen(Some("username=fuzz"));
            let connected = heard[0].json();
            let me = connected["clientID"].clone();
            prop_assert!(me.is_string(), "{}", connected);
            for message in &messages {
                let (heard, expected) = match message {
                    Sent::Text(text) => (wire.send_text(text), expected(text)),
                    Sent::Binary(bytes) => {
                        (wire.send(Received::Binary(bytes)), Some("INVALID_MESSAGE"))
                    }
                };
                let presence = match message {
                    Sent::Text(text) => matches!(decode(text), Ok(Inbound::PresenceUpdate(_))),
                    Sent::Binary(_) => false,
                };
                match expected {
                    // The updater hears its own PRESENCE:UPDATED.
                    None if presence => {
                        prop_assert_eq!(heard.len(), 1, "{:?}: {:?}", message, heard);
                        let updated = heard[0].json();
                        prop_assert_eq!(&updated["type"], "PRESENCE:UPDATED", "{}", updated);
                        prop_assert_eq!(&updated["clientID"], &me);
                        // Read in the text: a presence nested deeper than
                        // serde_json's `Value` goes leaves the payload raw.
                        let about_me = format!(r#""payload":{{"clientID":{me},"#);
                        prop_assert!(
                            matches!(&heard[0], Heard::Text(text) if text.contains(&about_me)),
                            "{:?}",
                            heard[0]
                        );
                    }
                    None => prop_assert!(heard.is_empty(), "{message:?}: {heard:?}"),
                    Some(code) => {
                        prop_assert_eq!(heard.len(), 1, "{:?}: {:?}", message, heard);
                        let error = heard[0].json();
                        prop_assert_eq!(&error["type"], "ERROR", "{}", error);
                        prop_assert_eq!(&error["payload"]["code"], code, "{}", error);
                        prop_assert!(error["payload"]["message"].is_string(), "{}", error);
                        prop_assert_eq!(&error["clientID"], &me);
                        prop_assert!(error["latency"].is_u64(), "{}", error);
                    }
                }
                prop_assert!(!wire.is_closed(), "closed after {message:?}");
            }
            Ok(())
        },
    );
}

/// The model against the decoder where the model decides.
#[test]
fn fuzz_the_decoder_agrees_with_the_model_of_the_document() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            if let Verdict::Decided(error) = model(&text) {
                prop_assert_eq!(error, expected_error(&text));
            }
            Ok(())
        },
    );
}

#[test]
fn the_model_reads_the_documents_examples() {
    assert_eq!(model(SEEDS[0]), Verdict::Decided(None));
    assert_eq!(model(SEEDS[1]), Verdict::Decided(None));
    assert_eq!(model(SEEDS[3]), Verdict::Decided(None));
    assert_eq!(model(SEEDS[4]), Verdict::Decided(Some("UNSUPPORTED_TYPE")));
    for original in &SEEDS[6..] {
        assert_eq!(model(original), Verdict::Decided(None), "{original}");
    }
    let big = format!(
        r#"{{"type":"PRESENCE:UPDATE","payload":{{"a":"{}"}}}}"#,
        "x".repeat(4096)
    );
    for (text, error) in [
        ("[]", "INVALID_MESSAGE"),
        ("\"PONG\"", "INVALID_MESSAGE"),
        (r#"{"type":"ACK"}"#, "INVALID_MESSAGE"),
        (
            r#"{"type":"ACK","payload":{"eventID":1}}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"PRESENCE:UPDATE","payload":[1]}"#,
            "INVALID_MESSAGE",
        ),
        (big.as_str(), "INVALID_MESSAGE"),
        (r#"{"type":"HELLO"}"#, "UNKNOWN_TYPE"),
    ] {
        assert_eq!(model(text), Verdict::Decided(Some(error)), "{text}");
    }
}
