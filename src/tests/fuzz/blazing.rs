//! Fuzzing the blazing dialect: whatever a client sends (gzip or not,
//! JSON or not, a protocol message or not), it gets gzip-compressed
//! protocol messages back, or is closed with 1007 (undecodable) or 1009
//! (too large), the document's codes, and never anything else.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::check;
use super::mutate;
use super::oracle::{self, Field, Verdict};
use super::wire::{request, Heard, Wire};
use crate::config::Config;
use crate::dialect::blazing::codec::{self, CodecError};
use crate::dialect::{Dialect, Received};
use crate::jwt;

/// A payload field a model requires, and the JSON type it must have.
type Required = (&'static str, fn(&Value) -> bool);

/// The document's client messages.
const SEEDS: &[&str] = &[
    r#"{"type":"sync","payload":{}}"#,
    r#"{"type":"move","payload":{"offset":10,"selection":5}}"#,
    r#"{"type":"write","payload":{"offset":10,"text":"hello world","selection":0}}"#,
    r#"{"type":"write","payload":{"offset":0,"text":"é中🦀\n","selection":-3}}"#,
    r#"{"type":"usrupd","payload":{"actioner":"84a33aad-bacf-40b4-a1b5-910300e7e3fc","type":true}}"#,
];

/// The protocol's words.
const WORDS: &[&str] = &[
    "type",
    "payload",
    "offset",
    "selection",
    "text",
    "actioner",
    "sync",
    "move",
    "write",
    "usrupd",
    "document",
    "users",
];

/// A message a blazing client may send.
#[derive(Debug, Clone)]
enum Sent {
    /// Binary: gzip of a (mutated) message `json`, the gzip then damaged
    /// (if `damaged`) into `bytes`.
    Gzipped {
        json: Vec<u8>,
        damaged: bool,
        bytes: Vec<u8>,
    },
    /// Binary: anything.
    Bytes(Vec<u8>),
    /// Text: a (mutated) message, uncompressed.
    Text(String),
}

fn sent() -> impl Strategy<Value = Sent> {
    let gzipped = (
        mutate::mutated_bytes(SEEDS, WORDS),
        vec(mutate::byte_mutation(), 0..2),
    )
        .prop_map(|(json, damage)| {
            let bytes = mutate::mutate_bytes(codec::gzip(&json), &damage);
            Sent::Gzipped {
                damaged: !damage.is_empty(),
                json,
                bytes,
            }
        });
    prop_oneof![
        6 => gzipped,
        1 => vec(any::<u8>(), 0..256).prop_map(Sent::Bytes),
        3 => mutate::text(SEEDS, WORDS).prop_map(Sent::Text),
    ]
}

/// Joins document `pc-fuzz` on a server whose messages may be at most
/// `max_message_bytes`.
fn join(max_message_bytes: usize) -> Wire {
    let key = "fuzz key";
    let token = jwt::sign(
        &json!({"sub": "fuzzer", "exp": jwt::now() + 3600}),
        key.as_bytes(),
    );
    let authorization = format!("Bearer {token}");
    let handshake = request(
        "/ws/blazing",
        None,
        &[
            ("Authorization", &authorization),
            ("Blazing-Computer-Id", "pc-fuzz"),
        ],
    );
    let config = Config {
        jwt_key: Some(key.into()),
        max_message_bytes,
        // Never read: the file does not exist, so the document starts empty.
        data_dir: std::env::temp_dir().join("switchboard-fuzz-no-such-dir"),
        ..Config::default()
    };
    let (wire, heard) = Wire::open(Dialect::Blazing, &config, &handshake);
    assert_eq!(
        message_type(&heard[0]),
        "sync",
        "a joining client gets a sync"
    );
    wire
}

/// The `type` of a message the server sent, after checking that it is a
/// gzip-compressed JSON message in a binary frame.
fn message_type(heard: &Heard) -> String {
    let Heard::Binary(bytes) = heard else {
        panic!("expected a binary frame, got {heard:?}")
    };
    let json = codec::gunzip(bytes, usize::MAX - 1).expect("the server's frames are gzip");
    let message: serde_json::Value = serde_json::from_slice(&json).expect("and JSON");
    assert!(message["payload"].is_object(), "{message}");
    message["type"].as_str().expect("with a type").to_string()
}

/// The close code the document gives for `sent`, if it is refused before
/// reaching the document (`None`: it is a message of the protocol).
fn expected_close(sent: &Sent, max_message_bytes: usize) -> Option<u16> {
    let json = match sent {
        Sent::Gzipped { bytes, .. } | Sent::Bytes(bytes) => {
            match codec::gunzip(bytes, max_message_bytes) {
                Ok(json) => json,
                Err(CodecError::TooLarge(_)) => return Some(1009),
                Err(CodecError::Undecodable(_)) => return Some(1007),
            }
        }
        Sent::Text(text) => text.clone().into_bytes(),
    };
    codec::decode(&json).is_err().then_some(1007)
}

/// The model of the document, without the codec: the close code for a
/// message (`None`: applied). Intact gzip is unpacked to the JSON it was
/// made from: over the size limit is 1009. A message is an object with a
/// string `type` (1007 if not); `sync` takes no payload; `move` needs
/// integer `offset` and `selection`, `write` those and a string `text`
/// (1007 if one is missing or of another type); `usrupd` is the server's
/// and other types are unknown (1007). Damaged gzip, payload members the
/// document does not name (the implementation's `rev`), a `sync` with a
/// payload and repeated fields are left undecided.
fn model(sent: &Sent, max_message_bytes: usize) -> Verdict<Option<u16>> {
    let json = match sent {
        Sent::Gzipped {
            json,
            damaged: false,
            ..
        } if json.len() > max_message_bytes => return Verdict::Decided(Some(1009)),
        Sent::Gzipped {
            json,
            damaged: false,
            ..
        } => json,
        Sent::Gzipped { .. } | Sent::Bytes(_) => return Verdict::Undecided,
        Sent::Text(text) => text.as_bytes(),
    };
    // What arrives in gzip may be any bytes. JSON is UTF-8, but serde_json
    // skips the strings of unknown fields without checking theirs: bytes
    // that are not UTF-8 are left undecided.
    let Ok(text) = std::str::from_utf8(json) else {
        return Verdict::Undecided;
    };
    let tag_like = |first: &Value| first.is_string();
    let members = match oracle::object(text, Some(1007), tag_like) {
        Ok(members) => members,
        Err(verdict) => return verdict,
    };
    if members.any_twice(&["type", "payload"]) {
        return Verdict::Undecided;
    }
    // Type names in any case, as the original plugin read them.
    let Some(kind) = members.get("type").as_str().map(str::to_ascii_lowercase) else {
        return Verdict::Decided(Some(1007));
    };
    // The payload is read whole (a message's payload is a JSON value).
    let payload = match members.get("payload") {
        payload if payload.is_missing() => None,
        Field::One(Some(payload), _) => Some(payload),
        Field::One(None, _) => return Verdict::Decided(Some(1007)),
        Field::Twice | Field::Absent => return Verdict::Undecided,
    };
    let fields: &[Required] = match kind.as_str() {
        "sync" if payload.is_none() || payload == Some(json!({})) => return Verdict::Decided(None),
        "sync" => return Verdict::Undecided,
        "move" => &[("offset", Value::is_i64), ("selection", Value::is_i64)],
        "write" => &[
            ("offset", Value::is_i64),
            ("selection", Value::is_i64),
            ("text", Value::is_string),
        ],
        _ => return Verdict::Decided(Some(1007)),
    };
    let Some(Value::Object(payload)) = payload else {
        return Verdict::Decided(Some(1007));
    };
    let well_formed = fields
        .iter()
        .all(|(key, typed)| payload.get(*key).is_some_and(typed));
    if !well_formed {
        return Verdict::Decided(Some(1007));
    }
    if payload.len() != fields.len() {
        return Verdict::Undecided; // members the document does not name
    }
    Verdict::Decided(None)
}

/// The model against the codec where the model decides.
#[test]
fn fuzz_the_codec_agrees_with_the_model_of_the_document() {
    let inputs = || (prop_oneof![Just(4096usize), Just(1 << 20)], sent());
    check(inputs, |(limit, sent)| {
        if let Verdict::Decided(close) = model(&sent, limit) {
            prop_assert_eq!(close, expected_close(&sent, limit), "{:?}", sent);
        }
        Ok(())
    });
}

#[test]
fn the_model_reads_the_documents_examples() {
    let text = |text: &str| model(&Sent::Text(text.to_string()), 4096);
    for seed in &SEEDS[..4] {
        assert_eq!(text(seed), Verdict::Decided(None), "{seed}");
    }
    for bad in [
        SEEDS[4],
        "[]",
        "1",
        r#"{"type":"move","payload":{"offset":1.5,"selection":0}}"#,
        r#"{"type":"write","payload":{"offset":1,"selection":0}}"#,
        r#"{"type":"move"}"#,
        r#"{"type":"jump","payload":{}}"#,
    ] {
        assert_eq!(text(bad), Verdict::Decided(Some(1007)), "{bad}");
    }
    let json = format!(
        r#"{{"type":"sync","payload":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let bytes = codec::gzip(json.as_bytes());
    let big = Sent::Gzipped {
        json: json.into_bytes(),
        damaged: false,
        bytes,
    };
    assert_eq!(model(&big, 4096), Verdict::Decided(Some(1009)));
}

#[test]
fn fuzz_every_message_is_applied_or_closed_with_1007_or_1009() {
    let inputs = || {
        let limit = prop_oneof![Just(4096usize), Just(1 << 20)];
        (limit, vec(sent(), 1..6))
    };
    check(inputs, |(limit, messages)| {
        let mut wire = join(limit);
        for message in &messages {
            let heard = match message {
                Sent::Gzipped { bytes, .. } | Sent::Bytes(bytes) => {
                    wire.send(Received::Binary(bytes))
                }
                Sent::Text(text) => wire.send_text(text),
            };
            let expected = match model(message, limit) {
                Verdict::Decided(close) => close,
                Verdict::Undecided => expected_close(message, limit),
            };
            match expected {
                Some(code) => {
                    prop_assert!(
                        matches!(&heard[..], [Heard::Close(got, _)] if *got == code),
                        "expected {code}, heard {heard:?}"
                    );
                }
                None => {
                    for frame in &heard {
                        match frame {
                            // A write past the size limit ends the session.
                            Heard::Close(code, _) => prop_assert_eq!(*code, 1009),
                            message => {
                                let kind = message_type(message);
                                prop_assert!(["sync", "move", "write"].contains(&kind.as_str()));
                            }
                        }
                    }
                    prop_assert_eq!(
                        wire.is_closed(),
                        matches!(heard.last(), Some(Heard::Close(..)))
                    );
                }
            }
            if wire.is_closed() {
                break;
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_any_handshake_headers_join_or_close_with_3000_or_3003() {
    let key = "fuzz key";
    let inputs = move || {
        let good = jwt::sign(
            &json!({"sub": "u", "exp": jwt::now() + 3600}),
            key.as_bytes(),
        );
        let authorization = prop_oneof![
            any::<String>(),
            any::<String>().prop_map(|token| format!("Bearer {token}")),
            (Just(good), vec(mutate::byte_mutation(), 0..3)).prop_map(|(token, damage)| {
                let token = mutate::mutate_bytes(token.into_bytes(), &damage);
                format!("Bearer {}", String::from_utf8_lossy(&token))
            }),
        ];
        (
            proptest::option::of(authorization),
            proptest::option::of(any::<String>()),
        )
    };
    check(inputs, move |(authorization, computer)| {
        // Any text: the parser hands values over as lossy UTF-8.
        let mut headers = Vec::new();
        if let Some(authorization) = &authorization {
            headers.push(("Authorization", authorization.as_str()));
        }
        if let Some(computer) = &computer {
            headers.push(("Blazing-Computer-Id", computer.as_str()));
        }
        let config = Config {
            jwt_key: Some(key.into()),
            data_dir: std::env::temp_dir().join("switchboard-fuzz-no-such-dir"),
            ..Config::default()
        };
        let handshake = request("/ws/blazing", None, &headers);
        let (wire, heard) = Wire::open(Dialect::Blazing, &config, &handshake);
        match &heard[..] {
            [Heard::Close(code, _)] => prop_assert!([3000, 3003].contains(code), "{code}"),
            [sync] => {
                prop_assert_eq!(message_type(sync), "sync");
                prop_assert!(!wire.is_closed());
            }
            other => prop_assert!(false, "{other:?}"),
        }
        Ok(())
    });
}
