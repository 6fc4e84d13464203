//! Fuzzing the common dialect: whatever a client sends, it is answered in
//! the document's ops (a RESPONSE echoing `n` for every REQUEST) or closed
//! with the code the README gives for what was wrong: 4001, 4002, 1007
//! (undecodable), 1008 (not for a client to send) or 1003 (binary).

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::check;
use super::mutate;
use super::wire::{heard, request, Heard, Wire};
use crate::config::Config;
use crate::dialect::common::error::CommonError;
use crate::dialect::common::inbound::{decode, Payload};
use crate::dialect::{Dialect, Received, Session, Step};
use crate::net::rate::Overrun;
use crate::router::ConnId;

/// The document's client payloads, and a server's.
const SEEDS: &[&str] = &[
    r#"{"op":1,"password":"helloworld"}"#,
    r#"{"op":2}"#,
    r#"{"op":4,"w":"ANYTHING","a":[],"n":1}"#,
    r#"{"op":4,"w":"hub.publish","a":["lobby",{"msg":"hi"}],"n":"req-1"}"#,
    r#"{"op":4,"w":"hub.presence","a":["lobby"],"n":{"k":[1,2]}}"#,
    r#"{"op":4,"w":"hub.info","a":[],"n":null}"#,
    r#"{"op":6,"w":"hub.publish","a":["lobby","fire and forget"]}"#,
    r#"{"op":5,"n":1,"r":["a response"]}"#,
];

/// The protocol's words: fields, built-in methods, a topic.
const WORDS: &[&str] = &[
    "op",
    "password",
    "w",
    "a",
    "n",
    "r",
    "hb_interval",
    "hub.publish",
    "hub.topics",
    "hub.clients",
    "hub.presence",
    "hub.info",
    "lobby",
    "helloworld",
];

/// The close code the README gives for a payload before (or after) a good
/// HELLO_ACK, or `None` if the payload is accepted.
fn expected_close(text: &str, acked: bool) -> Option<u16> {
    match (decode(text), acked) {
        (Err(CommonError::Malformed(_)), _) => Some(1007),
        (Err(CommonError::Unexpected(_)), _) => Some(1008),
        (Err(other), _) => panic!("decoding refused with {other:?}"),
        (Ok(Payload::HelloAck { .. }), true) => Some(1008),
        (Ok(Payload::HelloAck { password }), false) => (password != "s3cret").then_some(4001),
        (Ok(_), false) => Some(4002),
        (Ok(_), true) => None,
    }
}

fn open() -> Wire {
    let config = Config {
        secret: Some("s3cret".into()),
        ..Config::default()
    };
    let (wire, heard) = Wire::open(Dialect::Common, &config, &request("/ws/common", None, &[]));
    assert_eq!(heard[0].json()["op"], 0, "HELLO first");
    wire
}

#[test]
fn fuzz_before_hello_ack_only_the_right_password_gets_in() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            let mut wire = open();
            let heard = wire.send_text(&text);
            match expected_close(&text, false) {
                None => prop_assert!(heard.is_empty() && !wire.is_closed(), "{:?}", heard),
                Some(code) => prop_assert!(
                    matches!(&heard[..], [Heard::Close(got, _)] if *got == code),
                    "expected {code}, heard {heard:?}"
                ),
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_after_hello_ack_requests_are_answered_and_the_rest_closes_with_its_code() {
    let inputs = || {
        let sent = prop_oneof![
            9 => mutate::text(SEEDS, WORDS).prop_map(Some),
            1 => Just(None), // a binary frame
        ];
        vec(sent, 1..8)
    };
    check(inputs, |messages| {
        let mut wire = open();
        let ack = wire.send_text(r#"{"op":1,"password":"s3cret"}"#);
        prop_assert!(ack.is_empty(), "HELLO_ACK gets no reply: {:?}", ack);
        for message in &messages {
            let Some(text) = message else {
                let heard = wire.send(Received::Binary(b"\x1f\x8b"));
                prop_assert!(matches!(&heard[..], [Heard::Close(1003, _)]), "{heard:?}");
                break;
            };
            let heard = wire.send_text(text);
            if let Some(code) = expected_close(text, true) {
                prop_assert!(
                    matches!(&heard[..], [Heard::Close(got, _)] if *got == code),
                    "expected {code}, heard {heard:?}"
                );
                break;
            }
            match decode(text) {
                Ok(Payload::Request { nonce, .. }) => {
                    prop_assert_eq!(heard.len(), 1, "{:?}", heard);
                    let Heard::Text(response) = &heard[0] else {
                        return Err(TestCaseError::fail(format!("{heard:?}")));
                    };
                    // `n` is echoed byte for byte.
                    let prefix = format!(r#"{{"op":5,"n":{},"r":"#, nonce.get());
                    prop_assert!(response.starts_with(&prefix), "{response}");
                    prop_assert!(heard[0].json()["r"] != Value::Null, "{response}");
                }
                Ok(Payload::Heartbeat) => {
                    prop_assert_eq!(heard.len(), 1);
                    prop_assert_eq!(&heard[0].json()["op"], 3);
                }
                _ => prop_assert!(heard.is_empty(), "{:?}", heard),
            }
            prop_assert!(!wire.is_closed());
        }
        Ok(())
    });
}

#[test]
fn fuzz_a_rate_limited_message_is_answered_with_its_nonce_or_null() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            let mut session = Session::new(
                Dialect::Common,
                ConnId(1),
                &Config::default(),
                &request("/ws/common", None, &[]),
                Default::default(),
            );
            let Some(Step::Reply(frame)) =
                session.rate_limited(Received::Text(&text), Overrun::First)
            else {
                return Err(TestCaseError::fail(
                    "no RESPONSE for a rate-limited message",
                ));
            };
            let response = heard(&frame).json();
            prop_assert_eq!(&response["op"], 5);
            prop_assert_eq!(&response["r"]["error"]["code"], "rate_limited");
            if !matches!(decode(&text), Ok(Payload::Request { .. })) {
                prop_assert!(response["n"].is_null(), "{}", response);
            }
            Ok(())
        },
    );
}
