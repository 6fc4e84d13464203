//! Fuzzing a channels listener: whatever it sends, it hears nothing or one
//! `ERROR` whose code says what was wrong (`INVALID_MESSAGE`,
//! `UNKNOWN_TYPE`, `UNSUPPORTED_TYPE`), in a frame that names it, and it
//! stays connected; whatever its listen URL holds, it is welcomed with
//! CONNECTED or closed with 1009.

use proptest::collection::vec;
use proptest::prelude::*;

use super::check;
use super::mutate::{self, Sent};
use super::wire::{request, Heard, Wire};
use crate::config::Config;
use crate::dialect::channels::inbound::{decode, Inbound};
use crate::dialect::{Dialect, Received};
use crate::router::RequestError;

/// The document's client messages, and server messages a client might
/// echo back.
const SEEDS: &[&str] = &[
    r#"{"type":"ACK","payload":{"eventID":"evt_gPVZZQC5"}}"#,
    r#"{"type":"PONG"}"#,
    r#"{"type":"PONG","payload":{}}"#,
    r#"{"type":"PRESENCE:UPDATE","payload":{"username":"Cerulean"}}"#,
    r#"{"type":"DATA","payload":{"hello":"world"},"clientID":"client_fXoSDfqi","latency":0,"requires_ack":true,"eventID":"evt_gPVZZQC5"}"#,
    r#"{"type":"PING","payload":{},"latency":0,"clientID":"client_fXoSDfqi"}"#,
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
                    Sent::Text(text) => (wire.send_text(text), expected_error(text)),
                    Sent::Binary(bytes) => {
                        (wire.send(Received::Binary(bytes)), Some("INVALID_MESSAGE"))
                    }
                };
                match expected {
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
