//! What the fuzz properties expect, decided without the decoders under
//! test: each dialect file holds a small hand-written model of its
//! document's rules (what a client payload must look like, and what the
//! server answers when it does not), built on the reading of JSON here.
//! A model decides the cases its document decides and says
//! [`Verdict::Undecided`] for the rest (a field given twice, say, on which
//! the documents are silent); the properties then fall back to checking
//! that the session agrees with its decoder.
//!
//! The JSON is read with serde_json's `Value` and `RawValue`, never with
//! a dialect's typed structures: members are kept in order with their raw
//! text, so that a key given twice is seen, and values are read only where
//! the model needs them.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

/// What a model says of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<T> {
    /// The document decides: this.
    Decided(T),
    /// The model does not decide this one.
    Undecided,
}

/// The outline of a text, as far as the models need it.
#[derive(Debug)]
pub enum Shape {
    /// Not JSON (or JSON followed by more than whitespace).
    NotJson,
    /// A string, number, boolean or null.
    Scalar,
    /// An array, and its first element if any.
    Array(Option<Value>),
    /// An object: its members in order.
    Object(Members),
    /// JSON that this reading cannot take apart (a key with an escape
    /// serde_json refuses, nesting past its limit in the first element).
    Unreadable,
}

/// An object's members, in order, each with its raw JSON text.
#[derive(Debug)]
pub struct Members(Vec<(String, Box<RawValue>)>);

/// One member of an object, looked up by key.
#[derive(Debug)]
pub enum Field<'a> {
    /// Not there.
    Absent,
    /// There more than once.
    Twice,
    /// There once: its value, or `None` when `Value` cannot hold it
    /// (a number out of range, a lone surrogate, deep nesting).
    One(Option<Value>, &'a RawValue),
}

impl Field<'_> {
    /// Absent or `null` (what an `Option` field reads as `None`).
    pub fn is_missing(&self) -> bool {
        matches!(self, Field::Absent | Field::One(Some(Value::Null), _))
    }

    /// The string value, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::One(Some(Value::String(s)), _) => Some(s),
            _ => None,
        }
    }

    /// Absent, `null`, or a string: what an optional string field takes.
    pub fn is_optional_string(&self) -> bool {
        self.is_missing() || self.as_str().is_some()
    }
}

impl Members {
    /// The member called `key`.
    pub fn get(&self, key: &str) -> Field<'_> {
        let mut found = self.0.iter().filter(|(k, _)| k == key);
        match (found.next(), found.next()) {
            (None, _) => Field::Absent,
            (Some(_), Some(_)) => Field::Twice,
            (Some((_, raw)), None) => Field::One(serde_json::from_str(raw.get()).ok(), raw),
        }
    }

    /// Whether any of `keys` is given twice.
    pub fn any_twice(&self, keys: &[&str]) -> bool {
        keys.iter().any(|key| matches!(self.get(key), Field::Twice))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
}

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(entry);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The first element of an array, with its raw text.
struct First(Option<Box<RawValue>>);

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<First, D::Error> {
        struct FirstVisitor;
        impl<'de> Visitor<'de> for FirstVisitor {
            type Value = First;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First, A::Error> {
                let first = seq.next_element::<Box<RawValue>>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        deserializer.deserialize_seq(FirstVisitor)
    }
}

/// Reads the outline of `text`.
pub fn shape(text: &str) -> Shape {
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return Shape::NotJson;
    };
    let raw = raw.get();
    if raw.starts_with('{') {
        match serde_json::from_str::<Members>(raw) {
            Ok(members) => Shape::Object(members),
            Err(_) => Shape::Unreadable,
        }
    } else if raw.starts_with('[') {
        match serde_json::from_str::<First>(raw) {
            Ok(First(None)) => Shape::Array(None),
            Ok(First(Some(first))) => match serde_json::from_str(first.get()) {
                Ok(first) => Shape::Array(Some(first)),
                Err(_) => Shape::Unreadable,
            },
            Err(_) => Shape::Unreadable,
        }
    } else {
        Shape::Scalar
    }
}

/// The object a message must be, or the verdict on a message that is not
/// one: `refused` for text that is not JSON, a scalar, or an array that
/// cannot be a message. An array whose first element is `tag_like` is
/// left undecided: serde's derived decoders also read a structure from an
/// array of its fields in order (`[2,null,null,null]` is a common
/// HEARTBEAT), a reading the documents do not provide for.
pub fn object<T: Clone>(
    text: &str,
    refused: T,
    tag_like: impl Fn(&Value) -> bool,
) -> Result<Members, Verdict<T>> {
    match shape(text) {
        Shape::Object(members) => Ok(members),
        Shape::NotJson | Shape::Scalar => Err(Verdict::Decided(refused)),
        Shape::Array(Some(first)) if tag_like(&first) => Err(Verdict::Undecided),
        Shape::Array(_) => Err(Verdict::Decided(refused)),
        Shape::Unreadable => Err(Verdict::Undecided),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(matches!(shape("not json"), Shape::NotJson));
        assert!(matches!(shape("{} x"), Shape::NotJson));
        assert!(matches!(shape(" 42 "), Shape::Scalar));
        assert!(matches!(shape(r#""s""#), Shape::Scalar));
        assert!(matches!(shape("[]"), Shape::Array(None)));
        assert!(matches!(
            shape("[2, {}]"),
            Shape::Array(Some(Value::Number(_)))
        ));
        let Shape::Object(members) = shape(r#"{"a":1,"b":1e999,"a":2,"c":null}"#) else {
            panic!("an object");
        };
        assert!(matches!(members.get("a"), Field::Twice));
        assert!(matches!(members.get("b"), Field::One(None, raw) if raw.get() == "1e999"));
        assert!(members.get("c").is_missing() && members.get("d").is_missing());
        assert_eq!(members.keys().collect::<Vec<_>>(), ["a", "b", "a", "c"]);
    }
}
