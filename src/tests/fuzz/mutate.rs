//! The inputs the fuzz properties try: arbitrary text, arbitrary JSON built
//! from a dialect's own words, and the protocol documents' valid examples
//! mutated the way a fuzzer (or a broken client) would. Each is a proptest
//! strategy, so a failing input shrinks to a short one: fewer mutations, an
//! earlier example, a smaller replacement.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde_json::Value;

/// Values a broken or hostile client may put where any JSON value goes:
/// numbers no integer type holds, escapes serde_json must refuse (a lone
/// surrogate), look-alikes of JSON that are not JSON, and the empty values.
const HOSTILE_TOKENS: &[&str] = &[
    "1e999",
    "-1e999",
    "1e-400",
    "18446744073709551616",
    "-9223372036854775809",
    "9223372036854775807",
    "-9223372036854775808",
    "123456789012345678901234567890.5",
    "-0",
    "1.5",
    "01",
    "0x10",
    "+1",
    ".5",
    "NaN",
    "Infinity",
    "tru",
    "nul",
    r#""\ud800""#,
    r#""\udfff\ud800""#,
    r#""\u0000""#,
    r#""\uDBFF\uDFFF""#,
    r#""\"""#,
    r#""\x""#,
    "\"\u{202e}é中🦀\"",
    "[]",
    "{}",
    "null",
    "true",
    "false",
    r#""""#,
];

/// A value that replaces part of a valid message.
#[derive(Debug, Clone)]
pub enum Replacement {
    /// One of [`HOSTILE_TOKENS`], written as is.
    Token(&'static str),
    /// One of the dialect's words, as a JSON string (a type where a name
    /// goes, a field name where a value goes).
    Word(&'static str),
    /// A whole number.
    Integer(i64),
    /// Any string.
    Text(String),
    /// A long string: `length` copies of `fill`.
    Long { fill: char, length: usize },
    /// `depth` nested arrays (or objects), closed or left open.
    Nested {
        depth: usize,
        objects: bool,
        closed: bool,
    },
    /// An array of `count` zeros.
    Many(usize),
}

impl Replacement {
    /// The replacement as JSON text (or not quite JSON, on purpose).
    pub fn to_json(&self) -> String {
        match self {
            Replacement::Token(token) => (*token).to_string(),
            Replacement::Word(word) => quoted(word),
            Replacement::Integer(n) => n.to_string(),
            Replacement::Text(text) => quoted(text),
            Replacement::Long { fill, length } => quoted(&fill.to_string().repeat(*length)),
            Replacement::Nested {
                depth,
                objects,
                closed,
            } => {
                let (open, close) = if *objects {
                    (r#"{"a":"#, "}")
                } else {
                    ("[", "]")
                };
                let mut text = open.repeat(*depth);
                text.push('0');
                if *closed {
                    text.push_str(&close.repeat(*depth));
                }
                text
            }
            Replacement::Many(count) => format!("[{}]", vec!["0"; *count].join(",")),
        }
    }
}

/// A change to a valid message.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Replace the n-th value (in document order, the whole message first).
    Replace(Index, Replacement),
    /// Remove a member from the n-th object.
    RemoveKey(Index, Index),
    /// Add a member to the n-th object; when `key` is already there, the
    /// object ends up with the key twice.
    AddKey(Index, &'static str, Replacement),
    /// Wrap the n-th value in an array.
    Wrap(Index),
}

/// A change to the bytes of a message.
#[derive(Debug, Clone)]
pub enum ByteMutation {
    /// Flip one bit of one byte.
    FlipBit(Index, u8),
    /// Cut the message short.
    Truncate(Index),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Remove up to `len` bytes.
    Delete(Index, usize),
    /// Repeat up to `len` bytes right after themselves.
    Duplicate(Index, usize),
}

fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// A replacement value, from the dialect's `words` among others.
pub fn replacement(words: &'static [&'static str]) -> impl Strategy<Value = Replacement> {
    prop_oneof![
        3 => select(HOSTILE_TOKENS).prop_map(Replacement::Token),
        3 => select(words).prop_map(Replacement::Word),
        1 => any::<i64>().prop_map(Replacement::Integer),
        1 => any::<String>().prop_map(Replacement::Text),
        1 => (select(&['x', 'é', '中', '🦀', '"', '\\', '\u{0}'][..]), 0..20_000usize)
            .prop_map(|(fill, length)| Replacement::Long { fill, length }),
        1 => (100..300usize, any::<bool>(), any::<bool>())
            .prop_map(|(depth, objects, closed)| Replacement::Nested { depth, objects, closed }),
        1 => (0..5_000usize).prop_map(Replacement::Many),
    ]
}

fn mutation(words: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), replacement(words)).prop_map(|(at, with)| Mutation::Replace(at, with)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, key)| Mutation::RemoveKey(at, key)),
        2 => (any::<Index>(), select(words), replacement(words))
            .prop_map(|(at, key, with)| Mutation::AddKey(at, key, with)),
        1 => any::<Index>().prop_map(Mutation::Wrap),
    ]
}

/// A change to a message's bytes.
pub fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        3 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| ByteMutation::FlipBit(at, bit)),
        2 => any::<Index>().prop_map(ByteMutation::Truncate),
        2 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| ByteMutation::Insert(at, bytes)),
        1 => (any::<Index>(), 1..16usize).prop_map(|(at, len)| ByteMutation::Delete(at, len)),
        1 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| ByteMutation::Duplicate(at, len)),
    ]
}

/// A valid example from `seeds` after a few structural mutations (values
/// replaced, keys removed or doubled, wrapping), and in one case of four a
/// few changed bytes (which mostly make it not JSON at all).
pub fn mutated_bytes(
    seeds: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Vec<u8>> {
    (
        select(seeds),
        vec(mutation(words), 0..4),
        prop_oneof![3 => Just(Vec::new()), 1 => vec(byte_mutation(), 1..3)],
    )
        .prop_map(|(seed, mutations, byte_mutations)| {
            let text = mutate(seed, &mutations);
            mutate_bytes(text.into_bytes(), &byte_mutations)
        })
}

/// [`mutated_bytes`] as text, as a text frame carries it (bytes that are not
/// UTF-8 become U+FFFD, as they would have to for a client to send them).
pub fn mutated(
    seeds: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = String> {
    mutated_bytes(seeds, words).prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Arbitrary JSON text whose keys and strings are often the dialect's
/// words: well-formed, but of any shape, with duplicate keys and
/// [`HOSTILE_TOKENS`] as leaves.
pub fn json(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        select(HOSTILE_TOKENS).prop_map(str::to_string),
        select(words).prop_map(quoted),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|x| Value::from(x).to_string()),
        any::<String>().prop_map(|s| quoted(&s)),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![
            3 => select(words).prop_map(quoted),
            1 => any::<String>().prop_map(|s| quoted(&s)),
        ];
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            vec((key, inner), 0..6).prop_map(|members| {
                let members: Vec<String> =
                    members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A message a text dialect's client may send: mostly (mutated) text,
/// sometimes binary, which every text dialect must refuse in its own way.
#[derive(Debug, Clone)]
pub enum Sent {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// [`Sent`] messages built from `seeds` and `words`, nine in ten text.
pub fn sent(
    seeds: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Sent> {
    prop_oneof![
        9 => text(seeds, words).prop_map(Sent::Text),
        1 => vec(any::<u8>(), 0..64).prop_map(Sent::Binary),
    ]
}

/// What a text frame might hold: anything at all, arbitrary JSON, or
/// (most often) a mutated example.
pub fn text(
    seeds: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        2 => json(words),
        5 => mutated(seeds, words),
    ]
}

/// Applies structural mutations to `seed` (JSON text). A mutation that
/// finds nothing to act on (no n-th object) does nothing.
pub fn mutate(seed: &str, mutations: &[Mutation]) -> String {
    let Ok(mut value) = serde_json::from_str::<Value>(seed) else {
        return seed.to_string();
    };
    // Replacements that a `Value` cannot hold (1e999, duplicate keys,
    // nesting past serde_json's limit) stand in as unique placeholder
    // strings, swapped for their text once the value is written out.
    let mut raw: Vec<(String, String)> = Vec::new();
    let mut placeholder = |text: String| {
        let mark = format!("\u{1}fuzz{}\u{1}", raw.len());
        raw.push((quoted(&mark), text));
        mark
    };
    for mutation in mutations {
        match mutation {
            Mutation::Replace(at, with) => {
                let mark = placeholder(with.to_json());
                if let Some(node) = nth_node(&mut value, at) {
                    *node = Value::String(mark);
                }
            }
            Mutation::RemoveKey(at, key) => {
                if let Some(Value::Object(object)) = nth_object(&mut value, at) {
                    if !object.is_empty() {
                        let name = object.keys().nth(key.index(object.len())).cloned();
                        name.map(|name| object.remove(&name));
                    }
                }
            }
            Mutation::AddKey(at, key, with) => {
                let member = format!("{}:{}", quoted(key), with.to_json());
                let mark = placeholder(member);
                if let Some(Value::Object(object)) = nth_object(&mut value, at) {
                    // The placeholder is a member `"<mark>":null`; the
                    // whole member is swapped for `"key":value` below.
                    object.insert(mark, Value::Null);
                }
            }
            Mutation::Wrap(at) => {
                if let Some(node) = nth_node(&mut value, at) {
                    *node = Value::Array(vec![node.take()]);
                }
            }
        }
    }
    let mut text = value.to_string();
    for (mark, replacement) in raw {
        // A member placeholder was written as `"<mark>":null`.
        let member = format!("{mark}:null");
        if text.contains(&member) {
            text = text.replace(&member, &replacement);
        } else {
            text = text.replace(&mark, &replacement);
        }
    }
    text
}

/// Applies byte-level mutations, in order.
pub fn mutate_bytes(mut bytes: Vec<u8>, mutations: &[ByteMutation]) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        // Positions are taken among `len + 1` places (the end included).
        let at = |index: &Index| index.index(len + 1);
        match mutation {
            ByteMutation::FlipBit(index, bit) => {
                if len > 0 {
                    bytes[index.index(len)] ^= 1 << bit;
                }
            }
            ByteMutation::Truncate(index) => bytes.truncate(at(index)),
            ByteMutation::Insert(index, inserted) => {
                let at = at(index);
                bytes.splice(at..at, inserted.iter().copied());
            }
            ByteMutation::Delete(index, count) => {
                let start = at(index);
                let end = (start + count).min(len);
                bytes.drain(start..end);
            }
            ByteMutation::Duplicate(index, count) => {
                let start = at(index);
                let end = (start + count).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
    bytes
}

/// The number of values in `value`, itself included.
fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(members) => members.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// The value at position `at` in document order (the whole value is 0).
fn nth_node<'a>(value: &'a mut Value, at: &Index) -> Option<&'a mut Value> {
    let n = at.index(count_nodes(value));
    find(value, &mut { n }, &|_| true)
}

/// The object at position `at` among the objects of `value`, if any.
fn nth_object<'a>(value: &'a mut Value, at: &Index) -> Option<&'a mut Value> {
    let objects = count_matching(value, &Value::is_object);
    if objects == 0 {
        return None;
    }
    let n = at.index(objects);
    find(value, &mut { n }, &Value::is_object)
}

fn count_matching(value: &Value, matches: &dyn Fn(&Value) -> bool) -> usize {
    usize::from(matches(value))
        + match value {
            Value::Array(items) => items.iter().map(|v| count_matching(v, matches)).sum(),
            Value::Object(members) => members.values().map(|v| count_matching(v, matches)).sum(),
            _ => 0,
        }
}

/// The `n`-th value (counting down `n`) for which `matches` holds.
fn find<'a>(
    value: &'a mut Value,
    n: &mut usize,
    matches: &dyn Fn(&Value) -> bool,
) -> Option<&'a mut Value> {
    if matches(value) {
        if *n == 0 {
            return Some(value);
        }
        *n -= 1;
    }
    match value {
        Value::Array(items) => items.iter_mut().find_map(|v| find(v, n, matches)),
        Value::Object(members) => members.values_mut().find_map(|v| find(v, n, matches)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// An `Index` that picks position `n` of `of`: proptest makes them
    /// only from random bits, so take the first of a fixed sequence that
    /// does.
    fn index(n: usize, of: usize) -> Index {
        let mut runner = TestRunner::deterministic();
        loop {
            let candidate = any::<Index>().new_tree(&mut runner).unwrap().current();
            if candidate.index(of) == n {
                return candidate;
            }
        }
    }

    #[test]
    fn a_duplicate_key_and_a_number_too_big_for_any_integer() {
        let seed = r#"{"a":1,"b":[2,3]}"#;
        let mutations = [
            // The only object; then, of the 6 values (the object, the
            // added member's placeholder, 1, the array, 2, 3), the 2.
            Mutation::AddKey(index(0, 1), "a", Replacement::Token("1e999")),
            Mutation::Replace(index(4, 6), Replacement::Token("18446744073709551616")),
        ];
        let text = mutate(seed, &mutations);
        assert_eq!(text.matches(r#""a":"#).count(), 2, "{text}");
        assert!(text.contains(r#""a":1e999"#), "{text}");
        assert!(text.contains("[18446744073709551616,3]"), "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }

    #[test]
    fn byte_mutations_stay_in_bounds() {
        // Positions in "hello" are taken among its 6 places, the end included.
        let bytes = b"hello".to_vec();
        let cut = mutate_bytes(bytes.clone(), &[ByteMutation::Truncate(index(2, 6))]);
        assert_eq!(cut, b"he");
        let doubled = mutate_bytes(bytes.clone(), &[ByteMutation::Duplicate(index(0, 6), 2)]);
        assert_eq!(doubled, b"hehello");
        let at_the_end = mutate_bytes(bytes, &[ByteMutation::Delete(index(5, 6), 3)]);
        assert_eq!(at_the_end, b"hello");
        let flip = [ByteMutation::FlipBit(index(1, 2), 3)];
        assert!(mutate_bytes(Vec::new(), &flip).is_empty());
    }
}
