//! Fuzzing the blazing dialect: whatever a client sends (gzip or not,
//! JSON or not, a protocol message or not), it gets gzip-compressed
//! protocol messages back, or is closed with 1007 (undecodable) or 1009
//! (too large), the document's codes, and never anything else.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::json;

use super::check;
use super::mutate;
use super::wire::{request, Heard, Wire};
use crate::config::Config;
use crate::dialect::blazing::codec::{self, CodecError};
use crate::dialect::{Dialect, Received};
use crate::jwt;

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
    /// Binary: gzip of a (mutated) message, the gzip then perhaps damaged.
    Gzipped(Vec<u8>),
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
            Sent::Gzipped(mutate::mutate_bytes(codec::gzip(&json), &damage))
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
        Sent::Gzipped(bytes) | Sent::Bytes(bytes) => {
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
                Sent::Gzipped(bytes) | Sent::Bytes(bytes) => wire.send(Received::Binary(bytes)),
                Sent::Text(text) => wire.send_text(text),
            };
            match expected_close(message, limit) {
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
