//! Decoding what a common client sends.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::error::CommonError;

/// A decoded client payload.
#[derive(Debug)]
pub enum Payload {
    /// OP 1: the handshake's answer.
    HelloAck {
        /// The shared secret (absent counts as empty).
        password: String,
    },
    /// OP 2.
    Heartbeat,
    /// OP 4: a call that wants a RESPONSE.
    Request {
        /// What to call (`w`).
        method: String,
        /// Its arguments (`a`), an array.
        args: Value,
        /// The nonce (`n`), any JSON, echoed verbatim.
        nonce: Box<RawValue>,
    },
    /// OP 6: a call that wants no answer.
    Dispatch {
        /// What to call (`w`).
        method: String,
        /// Its arguments (`a`), an array.
        args: Value,
    },
}

#[derive(Deserialize)]
struct Envelope {
    op: i64,
    password: Option<String>,
    w: Option<String>,
    a: Option<Vec<Value>>,
    /// Any JSON, `null` included: present-but-null is a nonce too.
    #[serde(default, deserialize_with = "present")]
    n: Option<Box<RawValue>>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

/// Decodes one text payload.
pub fn decode(text: &str) -> Result<Payload, CommonError> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| CommonError::Malformed(e.to_string()))?;
    let call = |op: &str, w: Option<String>, a: Option<Vec<Value>>| {
        let method = w.ok_or_else(|| CommonError::Malformed(format!("{op} needs a string `w`")))?;
        let args = a.ok_or_else(|| CommonError::Malformed(format!("{op} needs an array `a`")))?;
        Ok::<_, CommonError>((method, Value::Array(args)))
    };
    match envelope.op {
        1 => Ok(Payload::HelloAck {
            password: envelope.password.unwrap_or_default(),
        }),
        2 => Ok(Payload::Heartbeat),
        4 => {
            let nonce = envelope
                .n
                .ok_or_else(|| CommonError::Malformed("REQUEST needs a nonce `n`".into()))?;
            let (method, args) = call("REQUEST", envelope.w, envelope.a)?;
            Ok(Payload::Request {
                method,
                args,
                nonce,
            })
        }
        6 => {
            let (method, args) = call("DISPATCH", envelope.w, envelope.a)?;
            Ok(Payload::Dispatch { method, args })
        }
        0 | 3 | 5 => Err(CommonError::Unexpected(format!(
            "op {} is sent by the server, not to it",
            envelope.op
        ))),
        op => Err(CommonError::Unexpected(format!("unknown op {op}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_op() {
        assert!(
            matches!(decode(r#"{"op":1,"password":"p"}"#), Ok(Payload::HelloAck { password }) if password == "p")
        );
        assert!(
            matches!(decode(r#"{"op":1}"#), Ok(Payload::HelloAck { password }) if password.is_empty())
        );
        assert!(matches!(decode(r#"{"op":2}"#), Ok(Payload::Heartbeat)));
        match decode(r#"{"op":4,"w":"hub.info","a":[1,"x"],"n":{"k":[1, 2]}}"#) {
            Ok(Payload::Request {
                method,
                args,
                nonce,
            }) => {
                assert_eq!(method, "hub.info");
                assert_eq!(args, serde_json::json!([1, "x"]));
                assert_eq!(nonce.get(), r#"{"k":[1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(decode(r#"{"op":4,"w":"x","a":[],"n":null}"#), Ok(Payload::Request { nonce, .. }) if nonce.get() == "null")
        );
        assert!(matches!(
            decode(r#"{"op":6,"w":"x","a":[]}"#),
            Ok(Payload::Dispatch { .. })
        ));
    }

    #[test]
    fn failures_are_malformed_or_unexpected() {
        for text in [
            "x",
            "[]",
            "{}",
            r#"{"op":"1"}"#,
            r#"{"op":4,"w":"x","a":[]}"#,
            r#"{"op":4,"a":[],"n":1}"#,
            r#"{"op":4,"w":"x","a":{},"n":1}"#,
            r#"{"op":6,"w":5,"a":[]}"#,
            r#"{"op":1,"password":7}"#,
        ] {
            assert!(
                matches!(decode(text), Err(CommonError::Malformed(_))),
                "{text}"
            );
        }
        for text in [
            r#"{"op":0}"#,
            r#"{"op":3}"#,
            r#"{"op":5}"#,
            r#"{"op":7}"#,
            r#"{"op":-1}"#,
        ] {
            assert!(
                matches!(decode(text), Err(CommonError::Unexpected(_))),
                "{text}"
            );
        }
    }
}
