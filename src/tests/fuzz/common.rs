//! Fuzzing the common dialect: whatever a client sends, it is answered in
//! the document's ops (a RESPONSE echoing `n` for every REQUEST) or closed
//! with the code docs/common.md gives for what was wrong: 4001, 4002, 1007
//! (undecodable), 1008 (not for a client to send) or 1003 (binary).

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use super::check;
use super::mutate;
use super::oracle::{self, Field, Verdict};
use super::wire::{heard, request, Heard, Wire};
use crate::config::Config;
use crate::dialect::common::error::CommonError;
use crate::dialect::common::inbound::{decode, Payload};
use crate::dialect::{Dialect, Overrun, Received, Session, Step};
use crate::router::ConnId;

/// The document's client payloads, and a server's; the second HELLO_ACK
/// has the test servers' secret.
const SEEDS: &[&str] = &[
    r#"{"op":1,"password":"helloworld"}"#,
    r#"{"op":1,"password":"s3cret"}"#,
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
    "s3cret",
];

/// The test servers' secret.
const SECRET: &str = "s3cret";

/// HELLO_ACKs with the right password, written as clients might.
const RIGHT_ACKS: &[&str] = &[
    r#"{"op":1,"password":"s3cret"}"#,
    r#"{ "password": "s3cret", "op": 1, "client": ["x", {"v": 2}] }"#,
    r#"{"op":1,"password":"s3cret","w":null,"n":7}"#,
];

/// The model of the document (and docs/common.md's close codes for what it
/// leaves open): the close code for a payload before (or after) a good
/// HELLO_ACK, `None` if it is accepted. Independent of [`decode`]: every
/// client payload is an object whose `op` is an integer (1007 if not);
/// `password` and `w` are strings, `a` an array (1007 if one is of another
/// type); 0, 3, 5 are the server's ops and others unknown (1008); a second
/// HELLO_ACK is 1008, a wrong password 4001; REQUEST needs `w`, `a` and `n`,
/// DISPATCH `w` and `a` (1007); anything but HELLO_ACK first is 4002.
fn model(text: &str, acked: bool) -> Verdict<Option<u16>> {
    let tag_like = |first: &Value| first.is_i64();
    let members = match oracle::object(text, Some(1007), tag_like) {
        Ok(members) => members,
        Err(verdict) => return verdict,
    };
    if members.any_twice(&["op", "password", "w", "a", "n"]) {
        return Verdict::Undecided; // the document is silent on repeated fields
    }
    let typed = |field: Field, array: bool| match field {
        Field::One(Some(Value::Null), _) | Field::Absent => true,
        Field::One(Some(Value::String(_)), _) => !array,
        Field::One(Some(Value::Array(_)), _) => array,
        _ => false,
    };
    // serde_json stops at 128 levels counted from the whole payload: an
    // `a` that reads alone but not one level deeper is at that limit,
    // which the document does not speak of.
    if let Field::One(Some(_), raw) = members.get("a") {
        if serde_json::from_str::<Value>(&format!("[{}]", raw.get())).is_err() {
            return Verdict::Undecided;
        }
    }
    let fields_typed = typed(members.get("password"), false)
        && typed(members.get("w"), false)
        && typed(members.get("a"), true);
    let op = match members.get("op") {
        Field::One(Some(op), _) => op.as_i64(),
        _ => None,
    };
    let (Some(op), true) = (op, fields_typed) else {
        return Verdict::Decided(Some(1007));
    };
    let has = |key: &str| !members.get(key).is_missing();
    let call_complete = has("w") && has("a");
    Verdict::Decided(match op {
        1 if acked => Some(1008),
        1 => (members.get("password").as_str() != Some(SECRET)).then_some(4001),
        2 => (!acked).then_some(4002),
        4 if !call_complete || matches!(members.get("n"), Field::Absent) => Some(1007),
        6 if !call_complete => Some(1007),
        4 | 6 => (!acked).then_some(4002),
        _ => Some(1008),
    })
}

/// What the session must do with `text`: the model's verdict where it has
/// one, else what the decoder makes of it.
fn expected(text: &str, acked: bool) -> Option<u16> {
    match model(text, acked) {
        Verdict::Decided(close) => close,
        Verdict::Undecided => expected_close(text, acked),
    }
}

/// The close code docs/common.md gives for a payload before (or after) a good
/// HELLO_ACK, or `None` if the payload is accepted.
fn expected_close(text: &str, acked: bool) -> Option<u16> {
    match (decode(text), acked) {
        (Err(CommonError::Malformed(_)), _) => Some(1007),
        (Err(CommonError::Unexpected(_)), _) => Some(1008),
        (Err(other), _) => panic!("decoding refused with {other:?}"),
        (Ok(Payload::HelloAck { .. }), true) => Some(1008),
        (Ok(Payload::HelloAck { password }), false) => (password != SECRET).then_some(4001),
        (Ok(_), false) => Some(4002),
        (Ok(_), true) => None,
    }
}

fn open() -> Wire {
    let config = Config {
        secret: Some(SECRET.into()),
        ..Config::default()
    };
    let (wire, heard) = Wire::open(Dialect::Common, &config, &request("/ws/common", None, &[]));
    assert_eq!(heard[0].json()["op"], 0, "HELLO first");
    wire
}

#[test]
fn fuzz_before_hello_ack_only_the_right_password_gets_in() {
    static ACCEPTED: AtomicUsize = AtomicUsize::new(0);
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    let inputs = || {
        prop_oneof![
            6 => mutate::text(SEEDS, WORDS),
            2 => mutate::mutated(RIGHT_ACKS, WORDS),
            1 => select(RIGHT_ACKS).prop_map(str::to_string),
        ]
    };
    check(inputs, |text| {
        let mut wire = open();
        let heard = wire.send_text(&text);
        match expected(&text, false) {
            None => {
                ACCEPTED.fetch_add(1, Ordering::Relaxed);
                prop_assert!(heard.is_empty() && !wire.is_closed(), "{:?}", heard);
            }
            Some(code) => {
                REFUSED.fetch_add(1, Ordering::Relaxed);
                prop_assert!(
                    matches!(&heard[..], [Heard::Close(got, _)] if *got == code),
                    "expected {code}, heard {heard:?}"
                );
            }
        }
        Ok(())
    });
    // One case in nine at least is a right HELLO_ACK as written: both
    // outcomes come up in any run of a reasonable length.
    if ProptestConfig::default().cases >= 64 {
        let (accepted, refused) = (
            ACCEPTED.load(Ordering::Relaxed),
            REFUSED.load(Ordering::Relaxed),
        );
        assert!(
            accepted > 0 && refused > 0,
            "{accepted} accepted, {refused} refused"
        );
    }
}

/// The model against the decoder, on the payloads where the model
/// decides: the decoder is checked against the document, not only the
/// session against the decoder.
#[test]
fn fuzz_the_decoder_agrees_with_the_model_of_the_document() {
    static DECIDED: AtomicUsize = AtomicUsize::new(0);
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            for acked in [false, true] {
                if let Verdict::Decided(close) = model(&text, acked) {
                    DECIDED.fetch_add(1, Ordering::Relaxed);
                    prop_assert_eq!(close, expected_close(&text, acked), "acked: {}", acked);
                }
            }
            Ok(())
        },
    );
    assert!(
        DECIDED.load(Ordering::Relaxed) > 0,
        "the model decided nothing"
    );
}

#[test]
fn the_model_decides_the_documents_examples() {
    let decided = |text, acked| model(text, acked);
    assert_eq!(
        decided(r#"{"op":1,"password":"helloworld"}"#, false),
        Verdict::Decided(Some(4001))
    );
    assert_eq!(decided(RIGHT_ACKS[1], false), Verdict::Decided(None));
    assert_eq!(decided(RIGHT_ACKS[0], true), Verdict::Decided(Some(1008)));
    assert_eq!(decided(r#"{"op":2}"#, false), Verdict::Decided(Some(4002)));
    assert_eq!(
        decided(r#"{"op":4,"w":"x","a":[],"n":null}"#, true),
        Verdict::Decided(None)
    );
    assert_eq!(
        decided(r#"{"op":4,"w":"x","a":[]}"#, true),
        Verdict::Decided(Some(1007))
    );
    assert_eq!(
        decided(r#"{"op":5,"n":1,"r":[]}"#, true),
        Verdict::Decided(Some(1008))
    );
    assert_eq!(decided(r#"{"op":"2"}"#, true), Verdict::Decided(Some(1007)));
    assert_eq!(
        decided(r#"{"op":7,"w":5}"#, true),
        Verdict::Decided(Some(1007))
    );
    assert_eq!(decided("[{\"op\":2}]", true), Verdict::Decided(Some(1007)));
    assert_eq!(decided("\"op\"", true), Verdict::Decided(Some(1007)));
    assert_eq!(decided(r#"{"op":2,"op":2}"#, true), Verdict::Undecided);
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
            if let Some(code) = expected(text, true) {
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
