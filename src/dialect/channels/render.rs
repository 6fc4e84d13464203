//! Rendering router events as channels frames: the one place where hub
//! outcomes become the document's `type`s and `ERROR` codes.
//!
//! Every channels frame carries the recipient's own `clientID` and
//! `latency`. So an event is rendered in two steps: [`prepare`] encodes
//! everything recipients share once (the payload above all), and
//! [`Personal::frame_for`] adds each recipient's fields in a small head of
//! its own, splicing it before the shared bytes (see [`Frame`]).

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::id::Uuid;
use crate::router::{
    Addressee, Disconnect, Event, MemberView, Origin, PresenceChange, RequestError,
};
use crate::wire::frame::{Close, Frame};

/// A channels event, encoded except for its recipient's fields.
#[derive(Debug, Clone)]
pub struct Personal {
    /// The start of the JSON object: `{"type":…,` and any shared fields.
    opening: String,
    /// The end: `"payload":…}`, shared by every recipient.
    rest: Arc<[u8]>,
}

impl Personal {
    /// The frame for one recipient.
    pub fn frame_for(&self, to: Addressee<'_>) -> Frame {
        // Client ids are names from the shared namespace, `[A-Za-z0-9_]`;
        // encoding them as JSON strings keeps that an assumption, not a risk.
        let id = serde_json::Value::from(to.client_id);
        let head = format!(
            r#"{}"clientID":{id},"latency":{},"#,
            self.opening, to.latency_ms
        );
        Frame::spliced_text(&head, &self.rest)
    }
}

/// How a channels client sees `event`: a frame for everyone, one to finish
/// per recipient, or `None` for events that mean nothing to it (concierge
/// replies, RPC answers).
pub enum Prepared {
    /// The same frame for all (close frames).
    Shared(Frame),
    /// A frame to finish per recipient.
    Personal(Personal),
}

/// Encodes the parts of `event` that every recipient shares.
pub fn prepare(event: &Event) -> Option<Prepared> {
    let personal = match event {
        Event::Message(message) => {
            let origin = match &message.origin {
                Origin::Client(client) => Some(OriginPayload {
                    client_id: &client.name,
                    uuid: client.uuid,
                }),
                Origin::Http => None,
            };
            let extras = DataExtras {
                event_id: &message.event_id,
                requires_ack: message.requires_ack,
                origin,
            };
            personal("DATA", Some(&extras), &*message.data)
        }
        Event::Connected { members } => {
            let members: Vec<MemberPayload> = members.iter().map(MemberPayload::from).collect();
            personal("CONNECTED", None, &Members { members })
        }
        Event::Presence { change, member } => {
            let payload = MemberPayload::from(member);
            match change {
                PresenceChange::Joined => personal("PRESENCE:JOINED", None, &payload),
                PresenceChange::Updated => personal("PRESENCE:UPDATED", None, &payload),
                PresenceChange::Left => personal(
                    "PRESENCE:LEFT",
                    None,
                    &Gone {
                        client_id: payload.client_id,
                    },
                ),
            }
        }
        Event::Ping => personal("PING", None, &Empty {}),
        Event::Refused { error, .. } => error_event(&error.to_string(), error_code(error)),
        Event::Disconnect(why) => return Some(Prepared::Shared(Frame::close(&close(why)))),
        Event::Welcome { .. }
        | Event::Sent { .. }
        | Event::TopicChanged { .. }
        | Event::Topic { .. }
        | Event::Topics { .. }
        | Event::Clients { .. }
        | Event::Myself { .. }
        | Event::Reply { .. }
        | Event::Authenticated { .. }
        | Event::Notice { .. }
        | Event::HeartbeatAck
        | Event::Reload
        | Event::Document(_) => return None,
    };
    Some(Prepared::Personal(personal))
}

/// The `ERROR` a client gets before it is disconnected for `why`, if it can
/// still read one.
pub fn farewell(why: &Disconnect, to: Addressee<'_>) -> Option<Frame> {
    let event = match why {
        Disconnect::PingTimeout => {
            error_event("Client did not respond to PING event", "PING_TIMEOUT")
        }
        Disconnect::Internal(why) => error_event(why, "INTERNAL_ERROR"),
        Disconnect::TokenExpired => error_event("authorization expired", "TOKEN_EXPIRED"),
        Disconnect::NotGranted(_) => error_event(&why.to_string(), "FORBIDDEN"),
        // Too slow to read one more message; the others never reach channels.
        Disconnect::TooSlow
        | Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::HeartbeatTimeout
        | Disconnect::Replaced
        | Disconnect::DocumentTooLarge(_)
        | Disconnect::RoomClosed
        | Disconnect::ShuttingDown => return None,
    };
    Some(event.frame_for(to))
}

/// The `ERROR` code for a refused message.
fn error_code(error: &RequestError) -> &'static str {
    match error {
        RequestError::Malformed(_) => "INVALID_MESSAGE",
        RequestError::UnknownType(_) => "UNKNOWN_TYPE",
        RequestError::Unsupported(_) => "UNSUPPORTED_TYPE",
        RequestError::RateLimited => "RATE_LIMITED",
        // Concierge requests; a channels client cannot make them.
        RequestError::NoSuchName(_)
        | RequestError::NoSuchUuid(_)
        | RequestError::NoSuchTopic(_)
        | RequestError::TopicExists(_)
        | RequestError::NotOwner(_)
        | RequestError::Reserved(_) => "REFUSED",
        RequestError::NotGranted { .. } => "FORBIDDEN",
    }
}

/// The close code for each way the router ends a channels connection.
fn close(why: &Disconnect) -> Close {
    let code = match why {
        Disconnect::PingTimeout | Disconnect::ShuttingDown => 1001,
        Disconnect::TooSlow => 1013,
        Disconnect::Internal(_) => 1011,
        Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::HeartbeatTimeout
        | Disconnect::Replaced
        | Disconnect::TokenExpired
        | Disconnect::NotGranted(_)
        | Disconnect::DocumentTooLarge(_)
        | Disconnect::RoomClosed => 1008,
    };
    Close::new(code, why.to_string())
}

fn error_event(message: &str, code: &str) -> Personal {
    personal("ERROR", None, &ErrorPayload { message, code })
}

/// `{"type":kind,` + extras + (personal fields) + `"payload":…}`.
fn personal<P: Serialize + ?Sized>(
    kind: &str,
    extras: Option<&DataExtras<'_>>,
    payload: &P,
) -> Personal {
    let mut opening = format!(r#"{{"type":{},"#, serde_json::Value::from(kind));
    if let Some(extras) = extras {
        let fields = to_json(extras);
        // `{"eventID":…}` becomes `"eventID":…,`
        opening.push_str(&fields[1..fields.len() - 1]);
        opening.push(',');
    }
    let rest = format!(r#""payload":{}}}"#, to_json(payload));
    Personal {
        opening,
        rest: rest.into_bytes().into(),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Plain structs, strings and raw JSON always serialize.
    serde_json::to_string(value).expect("channels frames serialize")
}

#[derive(Serialize)]
struct DataExtras<'a> {
    #[serde(rename = "eventID")]
    event_id: &'a str,
    /// Present (and true) only on events that must be acknowledged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    requires_ack: bool,
    /// The sending client, for messages that came from one (not for emits).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<OriginPayload<'a>>,
}

#[derive(Serialize)]
struct OriginPayload<'a> {
    #[serde(rename = "clientID")]
    client_id: &'a str,
    uuid: Uuid,
}

#[derive(Serialize)]
struct Members<'a> {
    members: Vec<MemberPayload<'a>>,
}

#[derive(Serialize)]
struct MemberPayload<'a> {
    #[serde(rename = "clientID")]
    client_id: &'a str,
    presence: &'a RawValue,
}

impl<'a> From<&'a MemberView> for MemberPayload<'a> {
    fn from(member: &'a MemberView) -> Self {
        MemberPayload {
            client_id: &member.client_id,
            presence: &member.presence,
        }
    }
}

#[derive(Serialize)]
struct Gone<'a> {
    #[serde(rename = "clientID")]
    client_id: &'a str,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    message: &'a str,
    code: &'a str,
}
