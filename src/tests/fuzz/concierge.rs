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
use super::oracle::{self, Field, Shape, Verdict};
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

/// What the document says a payload is, decided without [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Read {
    /// Not a payload the concierge can decode (4002 first, then STATUS
    /// PROTOCOL): not a JSON object, no string `type`, an unknown type,
    /// a field of the wrong type, a required field missing, a bad name.
    Undecodable,
    /// A well-formed IDENTIFY with this `version` and `secret`.
    Identify {
        version: String,
        secret: Option<String>,
    },
    /// Any other payload the concierge decodes (4003 first, then answered).
    Other,
}

/// The client payload types, each with the fields it requires.
const CLIENT_TYPES: &[(&str, Need)] = &[
    ("IDENTIFY", Need::Identify),
    ("MESSAGE", Need::Target),
    ("SELF_SUBSCRIBE", Need::Name),
    ("SUBSCRIBE", Need::Name),
    ("SELF_UNSUBSCRIBE", Need::Name),
    ("UNSUBSCRIBE", Need::Name),
    ("GROUP_CREATE", Need::Name),
    ("CREATE_GROUP", Need::Name),
    ("GROUP_DELETE", Need::Name),
    ("DELETE_GROUP", Need::Name),
    ("GROUP_FETCH", Need::Name),
    ("GROUP_FETCH_ALL", Need::Nothing),
    ("CLIENT_FETCH_ALL", Need::Nothing),
    ("SELF_FETCH", Need::Nothing),
];

/// What a payload type requires besides its `type`.
#[derive(Debug, Clone, Copy)]
enum Need {
    Nothing,
    /// A `name` of 1 to 128 characters of `[A-Za-z0-9_]`.
    Name,
    /// A name and a string `version`.
    Identify,
    /// A `target` object: NAME with `name`, UUID with `uuid`, GROUP with
    /// `group`, or ALL.
    Target,
}

/// The model of the document: how the concierge must read `text`. The
/// server's own payload types decode (they are answered UNSUPORTED).
fn model(text: &str) -> Verdict<Read> {
    let tag_like = |first: &Value| first.is_string();
    let members = match oracle::object(text, Read::Undecodable, tag_like) {
        Ok(members) => members,
        Err(verdict) => return verdict,
    };
    let keys = [
        "type", "name", "nickname", "version", "secret", "tags", "target", "data",
    ];
    if members.any_twice(&keys) {
        return Verdict::Undecided; // the document is silent on repeated fields
    }
    let strings = ["name", "nickname", "version", "secret"];
    let tags_typed = match members.get("tags") {
        Field::One(Some(Value::Array(tags)), _) => tags.iter().all(Value::is_string),
        tags => tags.is_missing(),
    };
    // Unknown fields in the target are skipped, so it is read by its shape.
    let target = match members.get("target") {
        target if target.is_missing() => None,
        Field::One(_, raw) => match oracle::shape(raw.get()) {
            Shape::Object(target) if target.any_twice(&["type", "name", "uuid", "group"]) => {
                return Verdict::Undecided
            }
            Shape::Object(target) => Some(target),
            Shape::Scalar => return Verdict::Decided(Read::Undecodable),
            _ => return Verdict::Undecided, // an array: the sequence form
        },
        _ => return Verdict::Undecided,
    };
    let target_typed = target.as_ref().is_none_or(|target| {
        target.get("type").as_str().is_some()
            && ["name", "uuid", "group"]
                .iter()
                .all(|key| target.get(key).is_optional_string())
    });
    let typed = strings
        .iter()
        .all(|key| members.get(key).is_optional_string());
    let Some(kind) = members.get("type").as_str().map(str::to_string) else {
        return Verdict::Decided(Read::Undecodable);
    };
    if !(typed && tags_typed && target_typed) {
        return Verdict::Decided(Read::Undecodable);
    }
    let name_ok = members.get("name").as_str().is_some_and(is_name);
    let read = match CLIENT_TYPES.iter().find(|(t, _)| *t == kind) {
        None if SERVER_TYPES.contains(&kind.as_str()) => Read::Other,
        None => Read::Undecodable,
        Some((_, Need::Nothing)) => Read::Other,
        Some((_, Need::Name)) if name_ok => Read::Other,
        Some((_, Need::Identify)) => match members.get("version").as_str() {
            Some(version) if name_ok => Read::Identify {
                version: version.to_string(),
                secret: members.get("secret").as_str().map(str::to_string),
            },
            _ => Read::Undecodable,
        },
        Some((_, Need::Target)) => {
            let Some(target) = target else {
                return Verdict::Decided(Read::Undecodable);
            };
            let field = match target.get("type").as_str() {
                Some("NAME") => Some("name"),
                Some("UUID") => Some("uuid"),
                Some("GROUP") => Some("group"),
                Some("ALL") => None,
                _ => return Verdict::Decided(Read::Undecodable),
            };
            if field.is_some_and(|field| target.get(field).is_missing()) {
                Read::Undecodable
            } else {
                Read::Other
            }
        }
        Some(_) => Read::Undecodable,
    };
    Verdict::Decided(read)
}

/// The close code for a first frame the model decides, `None` for a
/// HELLO; `Undecided` for a version whose compatibility it leaves to
/// the implementation (the document says only "compatible").
fn first_frame(read: &Read, secret: Option<&str>) -> Verdict<Option<u16>> {
    Verdict::Decided(match read {
        Read::Undecodable => Some(4002),
        Read::Other => Some(4003),
        Read::Identify { version, .. } if version == "0.2.0" => Some(4007),
        Read::Identify { version, .. } if version != "0.1.0" => return Verdict::Undecided,
        Read::Identify {
            secret: offered, ..
        } => match secret {
            Some(secret) if offered.as_deref().unwrap_or_default() != secret => Some(4006),
            _ => None,
        },
    })
}

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

/// The model against the decoder where the model decides.
#[test]
fn fuzz_the_decoder_agrees_with_the_model_of_the_document() {
    check(
        || mutate::text(SEEDS, WORDS),
        |text| {
            if let Verdict::Decided(read) = model(&text) {
                let decoded = match decode(&text) {
                    Err(_) => Read::Undecodable,
                    Ok(Payload::Identify(identify)) => Read::Identify {
                        version: identify.version,
                        secret: identify.secret,
                    },
                    Ok(_) => Read::Other,
                };
                prop_assert_eq!(read, decoded);
            }
            Ok(())
        },
    );
}

#[test]
fn the_model_reads_the_documents_examples() {
    let decided = |text| match model(text) {
        Verdict::Decided(read) => read,
        Verdict::Undecided => panic!("undecided: {text}"),
    };
    for seed in &SEEDS[2..14] {
        assert_eq!(decided(seed), Read::Other, "{seed}");
    }
    assert_eq!(
        decided(SEEDS[0]),
        Read::Identify {
            version: "0.1.0".into(),
            secret: None
        }
    );
    assert_eq!(decided(SEEDS[14]), Read::Other); // HELLO: UNSUPORTED
    for text in [
        "[]",
        "42",
        "{}",
        r#"{"type":"BOGUS"}"#,
        r#"{"type":"GROUP_FETCH","name":"a b"}"#,
        r#"{"type":"IDENTIFY","name":"ann"}"#,
        r#"{"type":"MESSAGE","target":{"type":"NAME"}}"#,
        r#"{"type":"SELF_FETCH","tags":"x"}"#,
    ] {
        assert_eq!(decided(text), Read::Undecodable, "{text}");
    }
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
        if let Verdict::Decided(read) = model(&text) {
            let expected = first_frame(&read, secret);
            match (&heard[0], expected) {
                (Heard::Close(code, _), Verdict::Decided(Some(expected))) => {
                    prop_assert_eq!(*code, expected, "{:?}", read);
                }
                (hello, Verdict::Decided(None)) => {
                    prop_assert_eq!(&hello.json()["type"], "HELLO", "{:?}", read);
                    prop_assert!(!wire.is_closed());
                }
                (Heard::Close(code, _), Verdict::Undecided) => {
                    prop_assert!([4006, 4007].contains(code), "{:?}: {}", read, code);
                }
                (heard, expected) => {
                    prop_assert!(false, "{read:?}: expected {expected:?}, heard {heard:?}");
                }
            }
            return Ok(());
        }
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
                        let refused = match model(text) {
                            Verdict::Decided(read) => read == Read::Undecodable,
                            Verdict::Undecided => decode(text).is_err(),
                        };
                        if refused {
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
