//! Decoding the payloads a concierge client sends.
//!
//! A payload is decoded in one pass into a flat `Envelope` holding every
//! field any payload type uses, then checked against its `type`. (serde's
//! internally tagged enums would buffer the whole payload first and cannot
//! hold `data` as raw JSON, which is passed on verbatim without re-encoding.)

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::router::Target;

/// The longest client or group name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A decoded client payload.
#[derive(Debug)]
pub enum Payload {
    /// `IDENTIFY`.
    Identify(Identify),
    /// `MESSAGE`.
    Message {
        /// Who receives it.
        target: Target,
        /// The body, verbatim (`null` when absent).
        data: Box<RawValue>,
    },
    /// `SELF_SUBSCRIBE`.
    SelfSubscribe(String),
    /// `SELF_UNSUBSCRIBE`.
    SelfUnsubscribe(String),
    /// `GROUP_CREATE`.
    GroupCreate {
        /// The group's name.
        name: String,
        /// Its display name.
        nickname: Option<String>,
    },
    /// `GROUP_DELETE`.
    GroupDelete(String),
    /// `GROUP_FETCH`.
    GroupFetch(String),
    /// `GROUP_FETCH_ALL`.
    GroupFetchAll,
    /// `CLIENT_FETCH_ALL`.
    ClientFetchAll,
    /// `SELF_FETCH`.
    SelfFetch,
    /// A payload only the server sends (`HELLO`, `STATUS`, the results).
    ServerOnly(String),
}

/// The fields of an `IDENTIFY`.
#[derive(Debug)]
pub struct Identify {
    /// The requested unique name, already checked against `[A-Za-z0-9_]+`.
    pub name: String,
    /// The client's protocol version, unchecked.
    pub version: String,
    /// The shared secret, if the client gave one.
    pub secret: Option<String>,
    /// The client's labels.
    pub tags: Vec<String>,
    /// A display name (not in the document's IDENTIFY, but sent by its
    /// clients and shown in CLIENT_FETCH_ALL_RESULT).
    pub nickname: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    nickname: Option<String>,
    version: Option<String>,
    secret: Option<String>,
    tags: Option<Vec<String>>,
    target: Option<WireTarget>,
    data: Option<Box<RawValue>>,
}

/// A `target`, flat for the same reason as `Envelope`: serde's tagged
/// enums buffer their input with a recursive visitor, which a deeply nested
/// field could drive through the thread's stack.
#[derive(Deserialize)]
struct WireTarget {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    uuid: Option<String>,
    group: Option<String>,
}

impl WireTarget {
    fn into_target(self) -> Result<Target, String> {
        let missing = |field: &str| format!("a {} target needs a string `{field}`", self.kind);
        Ok(match self.kind.as_str() {
            "NAME" => Target::Name(self.name.clone().ok_or_else(|| missing("name"))?),
            "UUID" => Target::Uuid(self.uuid.clone().ok_or_else(|| missing("uuid"))?),
            "GROUP" => Target::Topic(self.group.clone().ok_or_else(|| missing("group"))?),
            "ALL" => Target::All,
            other => {
                return Err(format!(
                    "unknown target type {other:?}: expected NAME, UUID, GROUP or ALL"
                ))
            }
        })
    }
}

const SERVER_ONLY: [&str; 6] = [
    "HELLO",
    "STATUS",
    "GROUP_FETCH_RESULT",
    "GROUP_FETCH_ALL_RESULT",
    "CLIENT_FETCH_ALL_RESULT",
    "SELF_FETCH_RESULT",
];

/// Decodes one text payload. The error text says what is wrong, for a
/// `PROTOCOL` status's `desc` or a close reason.
pub fn decode(text: &str) -> Result<Payload, String> {
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| format!("malformed payload: {e}"))?;
    let kind = envelope.kind.as_str();
    Ok(match kind {
        "IDENTIFY" => Payload::Identify(Identify {
            name: valid_name(kind, envelope.name)?,
            version: envelope
                .version
                .ok_or("IDENTIFY needs a string `version`")?,
            secret: envelope.secret,
            tags: envelope.tags.unwrap_or_default(),
            nickname: envelope.nickname,
        }),
        "MESSAGE" => Payload::Message {
            target: envelope
                .target
                .ok_or("MESSAGE needs a `target`")?
                .into_target()?,
            data: envelope.data.unwrap_or_else(null),
        },
        // The document's prose also calls these SUBSCRIBE, UNSUBSCRIBE,
        // CREATE_GROUP and DELETE_GROUP; both spellings are accepted.
        "SELF_SUBSCRIBE" | "SUBSCRIBE" => Payload::SelfSubscribe(valid_name(kind, envelope.name)?),
        "SELF_UNSUBSCRIBE" | "UNSUBSCRIBE" => {
            Payload::SelfUnsubscribe(valid_name(kind, envelope.name)?)
        }
        "GROUP_CREATE" | "CREATE_GROUP" => Payload::GroupCreate {
            name: valid_name(kind, envelope.name)?,
            nickname: envelope.nickname,
        },
        "GROUP_DELETE" | "DELETE_GROUP" => Payload::GroupDelete(valid_name(kind, envelope.name)?),
        "GROUP_FETCH" => Payload::GroupFetch(valid_name(kind, envelope.name)?),
        "GROUP_FETCH_ALL" => Payload::GroupFetchAll,
        "CLIENT_FETCH_ALL" => Payload::ClientFetchAll,
        "SELF_FETCH" => Payload::SelfFetch,
        _ if SERVER_ONLY.contains(&kind) => Payload::ServerOnly(envelope.kind),
        _ => return Err(format!("unknown payload type {kind:?}")),
    })
}

impl Payload {
    /// The payload's `type`, for messages about it.
    pub fn kind(&self) -> &str {
        match self {
            Payload::Identify(_) => "IDENTIFY",
            Payload::Message { .. } => "MESSAGE",
            Payload::SelfSubscribe(_) => "SELF_SUBSCRIBE",
            Payload::SelfUnsubscribe(_) => "SELF_UNSUBSCRIBE",
            Payload::GroupCreate { .. } => "GROUP_CREATE",
            Payload::GroupDelete(_) => "GROUP_DELETE",
            Payload::GroupFetch(_) => "GROUP_FETCH",
            Payload::GroupFetchAll => "GROUP_FETCH_ALL",
            Payload::ClientFetchAll => "CLIENT_FETCH_ALL",
            Payload::SelfFetch => "SELF_FETCH",
            Payload::ServerOnly(kind) => kind,
        }
    }
}

/// Names of clients and groups: 1 to [`MAX_NAME_LEN`] of `[A-Za-z0-9_]`.
fn valid_name(kind: &str, name: Option<String>) -> Result<String, String> {
    let name = name.ok_or_else(|| format!("{kind} needs a string `name`"))?;
    let well_formed = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(name)
    } else {
        Err(format!(
            "{kind}: name {name:?} must be 1 to {MAX_NAME_LEN} characters of A-Z, a-z, 0-9, _"
        ))
    }
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_string()).expect("`null` is valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_with_all_fields() {
        let payload = decode(r#"{"type":"IDENTIFY","name":"anthony","version":"0.1.0","secret":"s","tags":["a","b"],"nickname":"Ant"}"#).unwrap();
        let Payload::Identify(identify) = payload else {
            panic!("{payload:?}")
        };
        assert_eq!(identify.name, "anthony");
        assert_eq!(identify.version, "0.1.0");
        assert_eq!(identify.secret.as_deref(), Some("s"));
        assert_eq!(identify.tags, ["a", "b"]);
        assert_eq!(identify.nickname.as_deref(), Some("Ant"));
    }

    #[test]
    fn message_keeps_data_verbatim_and_ignores_origin() {
        let text = r#"{"type":"MESSAGE","origin":{"name":"forged"},"target":{"type":"NAME","name":"brendan","tags":["x"]},"data":{ "foo" : [1.50, "bar"] }}"#;
        let Payload::Message { target, data } = decode(text).unwrap() else {
            panic!()
        };
        assert_eq!(target, Target::Name("brendan".into()));
        assert_eq!(data.get(), r#"{ "foo" : [1.50, "bar"] }"#);
    }

    #[test]
    fn message_without_data_carries_null() {
        let Payload::Message { data, .. } =
            decode(r#"{"type":"MESSAGE","target":{"type":"ALL"}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(data.get(), "null");
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        let cases = [
            ("{", "malformed payload"),
            ("[]", "malformed payload"),
            (r#"{"name":"x"}"#, "missing field `type`"),
            (r#"{"type":5}"#, "invalid type"),
            (r#"{"type":"NOPE"}"#, "unknown payload type \"NOPE\""),
            (
                r#"{"type":"IDENTIFY","name":"a b","version":"0.1.0"}"#,
                "must be 1 to 128",
            ),
            (
                r#"{"type":"IDENTIFY","name":"ab"}"#,
                "needs a string `version`",
            ),
            (
                r#"{"type":"SELF_SUBSCRIBE"}"#,
                "SELF_SUBSCRIBE needs a string `name`",
            ),
            (r#"{"type":"MESSAGE","data":1}"#, "MESSAGE needs a `target`"),
            (
                r#"{"type":"MESSAGE","target":{"type":"PLANET"}}"#,
                "unknown target type \"PLANET\"",
            ),
            (
                r#"{"type":"MESSAGE","target":{"type":"NAME"}}"#,
                "a NAME target needs a string `name`",
            ),
            (
                r#"{"type":"MESSAGE","target":{"name":"x"}}"#,
                "missing field `type`",
            ),
            (r#"{"type":"GROUP_CREATE","name":""}"#, "must be 1 to 128"),
        ];
        for (text, expected) in cases {
            let error = decode(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn server_payloads_are_recognised() {
        for kind in SERVER_ONLY {
            let payload = decode(&format!(r#"{{"type":"{kind}"}}"#)).unwrap();
            assert_eq!(payload.kind(), kind);
            assert!(matches!(payload, Payload::ServerOnly(_)));
        }
    }

    #[test]
    fn the_prose_spellings_of_group_payloads_are_accepted() {
        let decoded = |kind: &str| decode(&format!(r#"{{"type":"{kind}","name":"g"}}"#)).unwrap();
        assert!(
            matches!(decoded("CREATE_GROUP"), Payload::GroupCreate { name, .. } if name == "g")
        );
        assert!(matches!(decoded("DELETE_GROUP"), Payload::GroupDelete(name) if name == "g"));
        assert!(matches!(decoded("SUBSCRIBE"), Payload::SelfSubscribe(name) if name == "g"));
        assert!(matches!(decoded("UNSUBSCRIBE"), Payload::SelfUnsubscribe(name) if name == "g"));
    }

    #[test]
    fn long_names_are_refused() {
        let name = "n".repeat(MAX_NAME_LEN + 1);
        assert!(decode(&format!(r#"{{"type":"GROUP_FETCH","name":"{name}"}}"#)).is_err());
        let name = "n".repeat(MAX_NAME_LEN);
        assert!(decode(&format!(r#"{{"type":"GROUP_FETCH","name":"{name}"}}"#)).is_ok());
    }
}
