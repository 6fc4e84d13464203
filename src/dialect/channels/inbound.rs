//! Decoding what a channels listener sends: ACK, PONG and PRESENCE:UPDATE.

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

/// The types only the server sends.
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
    match envelope.kind.as_str() {
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
        "PRESENCE:UPDATE" => match envelope.payload {
            Some(presence) if presence.get().len() > super::MAX_PRESENCE_BYTES => Err(malformed(
                format!("presence is limited to {} bytes", super::MAX_PRESENCE_BYTES),
            )),
            Some(presence) if presence.get().trim_start().starts_with('{') => {
                Ok(Inbound::PresenceUpdate(presence))
            }
            _ => Err(malformed(
                "PRESENCE:UPDATE needs an object as payload".into(),
            )),
        },
        kind if SERVER_ONLY.contains(&kind) => Err(RequestError::Unsupported(envelope.kind)),
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
                assert_eq!(presence.get(), r#"{ "username" : "Cerulean" }"#)
            }
            other => panic!("{other:?}"),
        }
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
