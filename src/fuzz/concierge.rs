//! Fuzzing the concierge: whatever a client sends, the first frame gets a
//! HELLO or one of the document's 4000 close codes, and every later frame
//! gets concierge payloads in answer (a `STATUS` `PROTOCOL` with its `seq`
//! when it does not decode), never a close and never a panic.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::check;
use super::mutate::{self, Sent};
use super::wire::{request, Heard, Wire};
use crate::config::Config;
use crate::dialect::concierge::inbound::{decode, Payload, MAX_NAME_LEN};
use crate::dialect::{Dialect, Received};

/// The document's client payloads (and one of its server payloads), as
/// its examples write them.
const SEEDS: &[&str] = &[
    r#"{ "type": "IDENTIFY", "name": "anthony", "version": "0.1.0" }"#,
    r#"{"type":"IDENTIFY","name":"ann","version":"0.1.0","secret":"s3cret","tags":["babylon"],"nickname":"Ann"}"#,
    r#"{"type":"MESSAGE","target":{"type":"NAME","name":"fuzz","tags":["babylon"]},"data":{"foo":"bar"}}"#,
    r#"{"type":"MESSAGE","target":{"type":"UUID","uuid":"73fcc768-d724-47e2-a101-a45298188f47"},"data":[1,2]}"#,
    r#"{"type":"MESSAGE","target":{"type":"GROUP","group":"simulation1_data"},"data":"hi"}"#,
    r#"{"type":"MESSAGE","target":{"type":"ALL"},"data":null}"#,
    r#"{"type":"SELF_SUBSCRIBE","name":"simulation1_data"}"#,
    r#"{"type":"SELF_UNSUBSCRIBE","name":"simulation1_data"}"#,
    r#"{"type":"GROUP_CREATE","name":"simulation1_data","nickname":"The First Simulation"}"#,
    r#"{"type":"GROUP_DELETE","name":"simulation1_data"}"#,
    r#"{"type":"GROUP_FETCH","name":"users"}"#,
    r#"{"type":"GROUP_FETCH_ALL"}"#,
    r#"{"type":"CLIENT_FETCH_ALL"}"#,
    r#"{"type":"SELF_FETCH"}"#,
    r#"{"type":"HELLO","uuid":"73fcc768-d724-47e2-a101-a45298188f47","version":"0.1.0"}"#,
];

/// The protocol's words: field names, payload and target types, a name
/// and a version, for mutations to put where they do not belong.
const WORDS: &[&str] = &[
    "type",
    "name",
    "version",
    "secret",
    "tags",
    "nickname",
    "target",
    "data",
    "origin",
    "uuid",
    "group",
    "seq",
    "IDENTIFY",
    "MESSAGE",
    "SELF_SUBSCRIBE",
    "SUBSCRIBE",
    "SELF_UNSUBSCRIBE",
    "GROUP_CREATE",
    "CREATE_GROUP",
    "GROUP_DELETE",
    "GROUP_FETCH",
    "GROUP_FETCH_ALL",
    "CLIENT_FETCH_ALL",
    "SELF_FETCH",
    "STATUS",
    "NAME",
    "UUID",
    "GROUP",
    "ALL",
    "fuzz",
    "simulation1_data",
    "0.1.0",
    "0.2.0",
    "s3cret",
];

/// The payload types a concierge server sends.
const SERVER_TYPES: &[&str] = &[
    "HELLO",
    "STATUS",
    "MESSAGE",
    "GROUP_FETCH_RESULT",
    "GROUP_FETCH_ALL_RESULT",
    "CLIENT_FETCH_ALL_RESULT",
    "SELF_FETCH_RESULT",
];

/// The document's status codes.
const STATUS_CODES: &[&str] = &[
    "OK",
    "MESSAGE_SENT",
    "SUBSCRIBED",
    "UNSUBSCRIBED",
    "GROUP_CREATED",
    "GROUP_DELETED",
    "BAD",
    "UNSUPORTED",
    "PROTOCOL",
    "GROUP_ALREADY_CREATED",
    "NO_SUCH_NAME",
    "NO_SUCH_UUID",
    "NO_SUCH_GROUP",
];

fn sent() -> impl Strategy<Value = Sent> {
    mutate::sent(SEEDS, WORDS)
}

fn is_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn config(secret: Option<&str>) -> Config {
    Config {
        secret: secret.map(Arc::from),
        ..Config::default()
    }
}

fn open(secret: Option<&str>) -> Wire {
    let (wire, heard) = Wire::open(
        Dialect::Concierge,
        &config(secret),
        &request("/ws/concierge", None, &[]),
    );
    assert!(heard.is_empty(), "a concierge server waits for IDENTIFY");
    wire
}

/// Checks that `heard` is a concierge payload: a known type, a known
/// status code, and a `seq` (if any) that is `seq`.
fn check_payload(heard: &Heard, seq: Option<u64>) -> Result<(), TestCaseError> {
    let payload = heard.json();
    let kind = payload["type"].as_str().unwrap_or_default();
    prop_assert!(
        SERVER_TYPES.contains(&kind),
        "not a server payload: {payload}"
    );
    if kind == "STATUS" {
        let code = payload["code"].as_str().unwrap_or_default();
        prop_assert!(STATUS_CODES.contains(&code), "not a status: {payload}");
    }
    if let Some(got) = payload.get("seq") {
        prop_assert_eq!(got.as_u64(), seq, "{}", payload);
    }
    Ok(())
}

#[test]
fn fuzz_decode_accepts_only_well_formed_names() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            let name = match decode(&text) {
                Ok(Payload::Identify(identify)) => Some(identify.name),
                Ok(
                    Payload::SelfSubscribe(name)
                    | Payload::SelfUnsubscribe(name)
                    | Payload::GroupDelete(name)
                    | Payload::GroupFetch(name)
                    | Payload::GroupCreate { name, .. },
                ) => Some(name),
                Ok(_) | Err(_) => None,
            };
            if let Some(name) = name {
                prop_assert!(is_name(&name), "accepted the name {name:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_a_first_frame_gets_hello_or_the_documents_close_code() {
    let inputs = || {
        let secret = prop_oneof![Just(None), Just(Some("s3cret"))];
        (mutate::text(SEEDS, WORDS), secret)
    };
    check(inputs, |(text, secret)| {
        let mut wire = open(secret);
        let heard = wire.send_text(&text);
        prop_assert_eq!(heard.len(), 1, "{:?}", heard);
        let expected = match decode(&text) {
            Err(_) => Some(4002),
            Ok(Payload::Identify(_)) => None,
            Ok(_) => Some(4003),
        };
        match (&heard[0], expected) {
            (Heard::Close(code, _), Some(expected)) => prop_assert_eq!(*code, expected),
            // A good IDENTIFY is welcomed; a bad version or secret closes.
            (Heard::Close(code, _), None) => prop_assert!([4006, 4007].contains(code)),
            (hello, None) => {
                prop_assert_eq!(&hello.json()["type"], "HELLO");
                prop_assert!(!wire.is_closed());
            }
            (other, Some(code)) => prop_assert!(false, "expected close {code}, got {other:?}"),
        }
        Ok(())
    });
}

#[test]
fn fuzz_after_identify_every_frame_is_answered_in_the_concierges_words() {
    check(
        || vec(sent(), 1..8),
        |messages| {
            let mut wire = open(None);
            let hello = wire.send_text(r#"{"type":"IDENTIFY","name":"fuzz","version":"0.1.0"}"#);
            prop_assert_eq!(&hello[0].json()["type"], "HELLO");
            let mut next_seq = 0;
            for message in &messages {
                // Text frames take the next seq; binary frames take none.
                let (heard, seq) = match message {
                    Sent::Text(text) => {
                        let seq = next_seq;
                        next_seq += 1;
                        let heard = wire.send_text(text);
                        if decode(text).is_err() {
                            // A refusal is exactly one STATUS PROTOCOL for it.
                            prop_assert_eq!(heard.len(), 1, "{:?}", heard);
                            let status = heard[0].json();
                            prop_assert_eq!(&status["code"], "PROTOCOL", "{}", status);
                            prop_assert_eq!(&status["seq"], &Value::from(seq));
                            prop_assert!(status["desc"].is_string());
                        } else {
                            let answered = heard.iter().any(|h| h.json()["seq"] == seq);
                            prop_assert!(answered, "no reply with seq {seq}: {heard:?}");
                        }
                        (heard, Some(seq))
                    }
                    Sent::Binary(bytes) => {
                        let heard = wire.send(Received::Binary(bytes));
                        prop_assert_eq!(heard.len(), 1);
                        prop_assert_eq!(&heard[0].json()["code"], "PROTOCOL");
                        (heard, None)
                    }
                };
                for frame in &heard {
                    check_payload(frame, seq)?;
                }
                prop_assert!(!wire.is_closed(), "closed after {message:?}: {heard:?}");
            }
            Ok(())
        },
    );
}
