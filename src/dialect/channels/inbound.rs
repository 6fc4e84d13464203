//! Decoding what a channels listener sends: ACK, PONG and PRESENCE:UPDATE.
//!
//! Type names are read in any case, and `presence` is another name for
//! PRESENCE:UPDATE: the original server (websockets.do) lowercased every
//! type before looking at it and took presence as `{"type":"presence"}`,
//! so that is what its clients send (DESIGN.md, "Compatibility with the
//! originals' clients").

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::router::RequestError;

/// A decoded listener message.
#[derive(Debug)]
pub enum Inbound {
    /// `{"type":"ACK","payload":{"eventID":…}}`.
    Ack {
        /// The acknowledged event.
        event_id: String,
    },
    /// `{"type":"PONG"}` (any payload is ignored).
    Pong,
    /// `{"type":"PRESENCE:UPDATE","payload":{…}}`: the new presence.
    PresenceUpdate(Box<RawValue>),
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    payload: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct AckPayload {
    #[serde(rename = "eventID")]
    event_id: String,
}

/// The types only the server sends, in upper case.
const SERVER_ONLY: [&str; 6] = [
    "DATA",
    "PING",
    "CONNECTED",
    "PRESENCE:JOINED",
    "PRESENCE:LEFT",
    "PRESENCE:UPDATED",
];

/// Decodes one text message.
pub fn decode(text: &str) -> Result<Inbound, RequestError> {
    let malformed = |why: String| RequestError::Malformed(why);
    let envelope: Envelope =
        serde_json::from_str(text).map_err(|e| malformed(format!("malformed message: {e}")))?;
    // Matched in upper case; an error names the type as it was sent.
    match envelope.kind.to_ascii_uppercase().as_str() {
        "ACK" => {
            let payload = envelope
                .payload
                .ok_or_else(|| malformed("ACK needs a payload with an eventID".into()))?;
            let ack: AckPayload = serde_json::from_str(payload.get())
                .map_err(|e| malformed(format!("ACK payload: {e}")))?;
            Ok(Inbound::Ack {
                event_id: ack.event_id,
            })
        }
        "PONG" => Ok(Inbound::Pong),
        "PRESENCE:UPDATE" | "PRESENCE" => match envelope.payload {
            Some(presence) if presence.get().len() > super::MAX_PRESENCE_BYTES => Err(malformed(
                format!("presence is limited to {} bytes", super::MAX_PRESENCE_BYTES),
            )),
            Some(presence) if presence.get().trim_start().starts_with('{') => {
                Ok(Inbound::PresenceUpdate(presence))
            }
            _ => Err(malformed(format!(
                "{} needs an object as payload",
                envelope.kind
            ))),
        },
        upper if SERVER_ONLY.contains(&upper) => Err(RequestError::Unsupported(envelope.kind)),
        _ => Err(RequestError::UnknownType(envelope.kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_client_messages() {
        assert!(matches!(
            decode(r#"{"type":"ACK","payload":{"eventID":"evt_1"}}"#),
            Ok(Inbound::Ack { event_id }) if event_id == "evt_1"
        ));
        assert!(matches!(decode(r#"{"type":"PONG"}"#), Ok(Inbound::Pong)));
        assert!(matches!(
            decode(r#"{"type":"PONG","payload":{}}"#),
            Ok(Inbound::Pong)
        ));
        match decode(r#"{"type":"PRESENCE:UPDATE","payload":{ "username" : "Cerulean" }}"#) {
            Ok(Inbound::PresenceUpdate(presence)) => {
                assert_eq!(presence.get(), r#"{ "username" : "Cerulean" }"#);
            }
            other => panic!("{other:?}"),
        }
    }

    /// What websockets.do's clients send: its server lowercased the type
    /// and took presence as `presence`.
    #[test]
    fn type_names_in_any_case_and_presence_as_an_alias() {
        assert!(matches!(
            decode(r#"{"type":"ack","payload":{"eventID":"evt_1"}}"#),
            Ok(Inbound::Ack { event_id }) if event_id == "evt_1"
        ));
        for pong in ["pong", "Pong", "pOnG"] {
            let text = format!(r#"{{"type":"{pong}"}}"#);
            assert!(matches!(decode(&text), Ok(Inbound::Pong)), "{text}");
        }
        for kind in ["presence", "PRESENCE", "Presence", "presence:update"] {
            let text = format!(r#"{{"type":"{kind}","payload":{{"username":"Cerulean"}}}}"#);
            match decode(&text) {
                Ok(Inbound::PresenceUpdate(presence)) => {
                    assert_eq!(presence.get(), r#"{"username":"Cerulean"}"#, "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // The alias is held to the same rules: an object, at most 4 KiB.
        assert!(matches!(
            decode(r#"{"type":"presence","payload":"away"}"#),
            Err(RequestError::Malformed(_))
        ));
        // Errors name the type as it was sent.
        assert_eq!(
            decode(r#"{"type":"data"}"#).unwrap_err(),
            RequestError::Unsupported("data".into())
        );
        assert_eq!(
            decode(r#"{"type":"Presence:Updated"}"#).unwrap_err(),
            RequestError::Unsupported("Presence:Updated".into())
        );
        assert_eq!(
            decode(r#"{"type":"hello"}"#).unwrap_err(),
            RequestError::UnknownType("hello".into())
        );
    }

    #[test]
    fn bad_messages_are_classified() {
        let malformed = [
            "not json",
            "[]",
            r#"{"payload":{}}"#,
            r#"{"type":"ACK"}"#,
            r#"{"type":"ACK","payload":{"eventID":5}}"#,
            r#"{"type":"ACK","payload":"evt_1"}"#,
            r#"{"type":"PRESENCE:UPDATE"}"#,
            r#"{"type":"PRESENCE:UPDATE","payload":[1]}"#,
            r#"{"type":"PRESENCE:UPDATE","payload":"x"}"#,
        ];
        for text in malformed {
            assert!(
                matches!(decode(text), Err(RequestError::Malformed(_))),
                "{text}"
            );
        }
        assert_eq!(
            decode(r#"{"type":"DATA"}"#).unwrap_err(),
            RequestError::Unsupported("DATA".into())
        );
        assert_eq!(
            decode(r#"{"type":"HELLO"}"#).unwrap_err(),
            RequestError::UnknownType("HELLO".into())
        );
    }
}
