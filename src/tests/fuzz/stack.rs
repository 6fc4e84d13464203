//! Release-only failures made visible: a release build's reader threads
//! have a quarter of a debug build's stack (`READER_STACK`: 256 KiB
//! instead of 1 MiB), and every other fuzz property runs on the stack of
//! the build it is in, so nesting that fits a debug reader but not a
//! release one would pass `cargo test` and crash in production. This
//! property feeds every decoder the deepest JSON it may meet, nested
//! arrays and objects to past serde_json's limit of 128 levels, in every
//! place a client's message can hold any JSON, and also parses and writes
//! back the nesting as a `Value` (what the dialects do with a payload they
//! keep), on a thread with the release reader's stack.
//!
//! An unoptimized build spends more stack per level than an optimized one
//! (`READER_STACK` is 1 MiB in debug builds for this reason), and the
//! debug build does not decode this nesting in 256 KiB: it runs the
//! property on [`DEBUG_FACTOR`] times the release stack instead. The
//! release build runs it on exactly the release reader's stack:
//! `cargo test --release --lib fuzz::stack`.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

use super::check_on_stack;
use super::mutate::Replacement;

/// The stack a release build's reader thread has; `READER_STACK` in
/// `net/connection.rs`, which names its debug size instead in a debug build.
const RELEASE_READER_STACK: usize = 256 * 1024;

/// How many times the release stack the debug build is given for the same
/// work. Measured: the debug build overflows 256 KiB on this property and
/// fits in 384 KiB; 2 is the smallest whole factor that holds, so that a
/// change which makes decoding take much more stack per level fails here,
/// in a debug `cargo test`, before it can reach a release build.
const DEBUG_FACTOR: usize = 2;

/// Where each dialect's messages hold JSON of any shape, `@` marking it.
const PLACES: &[(&str, &str)] = &[
    (
        "common",
        r#"{"op":4,"w":"hub.publish","a":["lobby",@],"n":@}"#,
    ),
    ("common", r#"{"op":6,"w":"hub.publish","a":@,"x":@}"#),
    (
        "concierge",
        r#"{"type":"MESSAGE","target":{"type":"ALL","x":@},"data":@}"#,
    ),
    (
        "concierge",
        r#"{"type":"IDENTIFY","name":"n","version":"0.1.0","tags":@,"x":@}"#,
    ),
    (
        "channels",
        r#"{"type":"PRESENCE:UPDATE","payload":{"a":@}}"#,
    ),
    ("channels", r#"{"type":"ACK","payload":@,"x":@}"#),
    ("world", r#"["move",@,@]"#),
    ("world", r#"["authenticate",{"token":@}]"#),
    (
        "blazing",
        r#"{"type":"write","payload":{"offset":0,"selection":0,"text":@}}"#,
    ),
    ("blazing", r#"{"type":"sync","payload":@,"x":@}"#),
];

/// Decodes `text` as `dialect`'s decoder would; the outcome does not
/// matter, only that the thread survives it.
fn decode(dialect: &str, text: &str) {
    match dialect {
        "common" => drop(crate::dialect::common::inbound::decode(text)),
        "concierge" => drop(crate::dialect::concierge::inbound::decode(text)),
        "channels" => drop(crate::dialect::channels::inbound::decode(text)),
        "world" => drop(crate::dialect::world::inbound::decode(text)),
        "blazing" => drop(crate::dialect::blazing::codec::decode(text.as_bytes())),
        other => unreachable!("{other}"),
    }
}

/// The decoders and a `Value` round trip, on nesting of 1 to 300 levels.
fn deep_json_on(stack: usize) {
    let inputs = || (select(PLACES), 1..300usize, any::<bool>(), any::<bool>());
    check_on_stack(
        stack,
        inputs,
        |((dialect, place), depth, objects, closed)| {
            let nested = Replacement::Nested {
                depth,
                objects,
                closed,
            }
            .to_json();
            let text = place.replace('@', &nested);
            decode(dialect, &text);
            if let Ok(value) = serde_json::from_str::<Value>(&nested) {
                prop_assert!(serde_json::to_string(&value).is_ok());
            }
            Ok(())
        },
    );
}

#[test]
#[cfg(not(debug_assertions))]
fn fuzz_deep_json_decodes_on_a_release_readers_stack() {
    assert_eq!(
        crate::net::connection::READER_STACK,
        RELEASE_READER_STACK,
        "the release reader's stack changed: change this file's constant too"
    );
    deep_json_on(RELEASE_READER_STACK);
}

#[test]
#[cfg(debug_assertions)]
fn fuzz_deep_json_decodes_on_a_release_readers_stack_times_the_debug_factor() {
    const _: () = assert!(
        crate::net::connection::READER_STACK >= RELEASE_READER_STACK * DEBUG_FACTOR,
        "the debug reader's stack is smaller than this property's"
    );
    deep_json_on(RELEASE_READER_STACK * DEBUG_FACTOR);
}
