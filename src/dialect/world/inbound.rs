//! Decoding what a world client sends: `[action, (id), (payload)]`.

use serde_json::value::RawValue;
use serde_json::Value;

/// A decoded client message.
#[derive(Debug)]
pub enum Inbound {
    /// `["ping", x]`: answered `["pong", x]`, `x` verbatim.
    Ping(Option<Box<RawValue>>),
    /// `["authenticate", {"token": …} | {"client_id": …}]`, or with a
    /// correlation id, `["authenticate", id, {…}]` (the document's root
    /// shape; venueless reads the payload from the last element).
    Authenticate {
        /// The correlation id, when the message has three elements.
        id: Option<Box<RawValue>>,
        /// What it offers.
        credentials: Credentials,
    },
    /// Any other action: `[action, id, payload]`, `[action, payload]` or
    /// `[action]`.
    Action {
        /// Its name.
        action: String,
        /// The correlation id, when the message has three elements.
        id: Option<Box<RawValue>>,
        /// The payload (`null` when absent).
        payload: Value,
    },
}

/// What an `authenticate` message offers.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A JWT.
    Token(String),
    /// An anonymous client's own id.
    ClientId(String),
    /// Neither (or an empty one).
    Missing,
}

/// Decodes one text message; the error says what is wrong.
pub fn decode(text: &str) -> Result<Inbound, String> {
    let parts: Vec<Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| format!("expected a JSON array: {e}"))?;
    let action: String = match parts.first() {
        Some(first) => serde_json::from_str(first.get())
            .map_err(|_| "the first element must be the action's name".to_string())?,
        None => return Err("empty message".into()),
    };
    let mut rest = parts.into_iter().skip(1);
    if action == "ping" {
        return Ok(Inbound::Ping(rest.next()));
    }
    let (id, payload) = match (rest.next(), rest.next()) {
        (Some(id), Some(payload)) => (Some(id), Some(payload)),
        (Some(payload), None) => (None, Some(payload)),
        (None, _) => (None, None),
    };
    match action.as_str() {
        "authenticate" => Ok(Inbound::Authenticate {
            id,
            credentials: credentials(payload),
        }),
        _ => {
            let payload = match payload {
                Some(raw) => {
                    serde_json::from_str(raw.get()).map_err(|e| format!("payload: {e}"))?
                }
                None => Value::Null,
            };
            Ok(Inbound::Action {
                action,
                id,
                payload,
            })
        }
    }
}

fn credentials(payload: Option<Box<RawValue>>) -> Credentials {
    let Some(payload) = payload else {
        return Credentials::Missing;
    };
    let fields: serde_json::Map<String, Value> = match serde_json::from_str(payload.get()) {
        Ok(fields) => fields,
        Err(_) => return Credentials::Missing,
    };
    match (fields.get("token"), fields.get("client_id")) {
        (Some(Value::String(token)), _) if !token.is_empty() => Credentials::Token(token.clone()),
        (_, Some(Value::String(id))) if !id.is_empty() => Credentials::ClientId(id.clone()),
        _ => Credentials::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(
            matches!(decode(r#"["ping", 1501676765]"#), Ok(Inbound::Ping(Some(x))) if x.get() == "1501676765")
        );
        assert!(matches!(decode(r#"["ping"]"#), Ok(Inbound::Ping(None))));
        assert!(
            matches!(decode(r#"["authenticate", {"token": "t"}]"#), Ok(Inbound::Authenticate { id: None, credentials: Credentials::Token(t) }) if t == "t")
        );
        assert!(
            matches!(decode(r#"["authenticate", {"client_id": "c"}]"#), Ok(Inbound::Authenticate { id: None, credentials: Credentials::ClientId(c) }) if c == "c")
        );
        assert!(
            matches!(decode(r#"["authenticate", 7, {"token": "t"}]"#), Ok(Inbound::Authenticate { id: Some(id), credentials: Credentials::Token(t) }) if t == "t" && id.get() == "7")
        );
        for missing in [
            r#"["authenticate"]"#,
            r#"["authenticate", {}]"#,
            r#"["authenticate", {"token": ""}]"#,
            r#"["authenticate", {"token": 5}]"#,
            r#"["authenticate", 5]"#,
        ] {
            assert!(
                matches!(
                    decode(missing),
                    Ok(Inbound::Authenticate {
                        credentials: Credentials::Missing,
                        ..
                    })
                ),
                "{missing}"
            );
        }
        match decode(r#"["room.enter", "a-1", {"room": "r"}]"#) {
            Ok(Inbound::Action {
                action,
                id,
                payload,
            }) => {
                assert_eq!(action, "room.enter");
                assert_eq!(id.unwrap().get(), r#""a-1""#);
                assert_eq!(payload, serde_json::json!({"room": "r"}));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decode(r#"["x", {"a": 1}]"#),
            Ok(Inbound::Action { id: None, .. })
        ));
        assert!(matches!(
            decode(r#"["x"]"#),
            Ok(Inbound::Action {
                id: None,
                payload: Value::Null,
                ..
            })
        ));
    }

    #[test]
    fn bad_messages() {
        for text in ["", "{}", "[]", "[1, 2]", "not json", r#"{"a": 1}"#] {
            assert!(decode(text).is_err(), "{text}");
        }
    }
}
