//! Fuzzing the world dialect: whatever a client sends, before or after
//! authenticating, it gets exactly one answer in the document's shapes
//! (`["pong", x]`, `["success", id, …]`, `["error", id, {"code": …}]`, with
//! the id echoed byte for byte, or `protocol.invalid_message` for what is
//! not a message) and stays connected.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::Value;

use super::check;
use super::mutate;
use super::wire::{heard, request, Heard, Wire};
use crate::config::Config;
use crate::dialect::world::inbound::{decode, Inbound};
use crate::dialect::{Dialect, Overrun, Received, Session, Step};
use crate::router::ConnId;

/// The document's messages and docs/world.md's actions.
const SEEDS: &[&str] = &[
    r#"["ping", 1501676765]"#,
    r#"["ot", 4953, {"variant": 103, "ops":[{"retain": 5}, {"insert": "foobar"}]}]"#,
    r#"["authenticate", {"client_id": "fuzzer"}]"#,
    r#"["authenticate", {"token": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}]"#,
    r#"["room.enter", 1, {"room": "lobby"}]"#,
    r#"["room.send", "a-2", {"room": "lobby", "content": {"text": "hello"}}]"#,
    r#"["room.leave", 3, {"room": "lobby"}]"#,
    r#"["user.update", 4, {"profile": {"color": "red"}}]"#,
    r#"["room.send", 5, ["lobby", "hi"]]"#,
    r#"["hub.publish", 6, {"topic": "default/lobby", "data": [1]}]"#,
    r#"["hub.info"]"#,
];

/// The protocol's words: actions, payload keys, a room.
const WORDS: &[&str] = &[
    "ping",
    "authenticate",
    "token",
    "client_id",
    "room.enter",
    "room.leave",
    "room.send",
    "user.update",
    "hub.publish",
    "hub.presence",
    "hub.topics",
    "room",
    "content",
    "profile",
    "topic",
    "data",
    "lobby",
    "success",
    "error",
];

fn open() -> Wire {
    let path = request("/ws/world/default", None, &[]);
    let config = Config {
        jwt_key: Some("k".into()),
        ..Config::default()
    };
    let (wire, heard) = Wire::open(Dialect::World, &config, &path);
    assert!(heard.is_empty(), "a known world says nothing first");
    wire
}

/// Checks that `heard` is the one answer `text` deserves.
fn check_answer(text: &str, heard: &[Heard], authenticated: bool) -> Result<(), TestCaseError> {
    prop_assert_eq!(heard.len(), 1, "{:?}", heard);
    let answer = heard[0].json();
    let Heard::Text(raw) = &heard[0] else {
        unreachable!("json() passed")
    };
    let kind = answer[0].as_str().unwrap_or_default();
    match decode(text) {
        Err(_) => {
            prop_assert_eq!(kind, "error");
            prop_assert_eq!(&answer[1]["code"], "protocol.invalid_message", "{}", raw);
        }
        Ok(Inbound::Ping(x)) => {
            let expected = match x {
                Some(x) => format!(r#"["pong",{}]"#, x.get()),
                None => r#"["pong"]"#.to_string(),
            };
            prop_assert_eq!(raw, &expected);
        }
        Ok(Inbound::Authenticate { id, .. }) => {
            // With an id, the answer carries it byte for byte (compared as
            // text: an id may hold what serde_json will not read into a
            // `Value`, such as a lone surrogate "\ud800") and its body
            // comes last.
            if let Some(id) = &id {
                let expected = format!(r#"["{kind}",{},"#, id.get());
                prop_assert!(raw.starts_with(&expected), "{} for {}", raw, text);
            }
            let code = answer[answer.as_array().map_or(1, |a| a.len() - 1)]["code"]
                .as_str()
                .unwrap_or_default();
            prop_assert!(
                kind == "authenticated" || (kind == "error" && code.starts_with("auth.")),
                "{}",
                raw
            );
        }
        Ok(Inbound::Action { id, .. }) => {
            prop_assert!(kind == "success" || kind == "error", "{}", raw);
            // The id is echoed byte for byte; no id, no id in the answer.
            let expected = match &id {
                Some(id) => format!(r#"["{kind}",{},"#, id.get()),
                None => format!(r#"["{kind}","#),
            };
            prop_assert!(raw.starts_with(&expected), "{raw} for {text}");
            let body = answer.as_array().and_then(|a| a.last()).cloned();
            if kind == "error" {
                let code = body.as_ref().map(|b| b["code"].clone());
                prop_assert!(matches!(code, Some(Value::String(_))), "{}", raw);
                if !authenticated {
                    prop_assert_eq!(code, Some(Value::from("protocol.unauthenticated")));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_before_and_after_authenticating_every_message_gets_one_answer() {
    let inputs = || vec(mutate::text(SEEDS, WORDS), 1..8);
    check(inputs, |messages| {
        let mut wire = open();
        let mut authenticated = false;
        for text in &messages {
            let heard = wire.send_text(text);
            check_answer(text, &heard, authenticated)?;
            authenticated |= heard[0].json()[0] == "authenticated";
            prop_assert!(!wire.is_closed(), "closed after {text}");
        }
        // Once in, the same messages get the same kinds of answers.
        if !authenticated {
            let heard = wire.send_text(r#"["authenticate", {"client_id": "fuzzer"}]"#);
            prop_assert_eq!(&heard[0].json()[0], "authenticated");
            for text in &messages {
                let heard = wire.send_text(text);
                check_answer(text, &heard, true)?;
            }
        }
        let heard = wire.send(Received::Binary(b"\x00\xff"));
        prop_assert_eq!(&heard[0].json()[1]["code"], "protocol.invalid_message");
        Ok(())
    });
}

#[test]
fn fuzz_a_rate_limited_message_is_refused_with_its_id_if_it_has_one() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            let mut session = Session::new(
                Dialect::World,
                ConnId(1),
                &Config::default(),
                &request("/ws/world/default", None, &[]),
                Default::default(),
            );
            let Some(Step::Reply(frame)) =
                session.rate_limited(Received::Text(&text), Overrun::First)
            else {
                return Err(TestCaseError::fail("no error for a rate-limited message"));
            };
            let error = heard(&frame).json();
            prop_assert_eq!(&error[0], "error");
            let body = error.as_array().and_then(|a| a.last()).cloned();
            prop_assert_eq!(
                body.map(|b| b["code"].clone()),
                Some(Value::from("protocol.rate_limited"))
            );
            Ok(())
        },
    );
}
