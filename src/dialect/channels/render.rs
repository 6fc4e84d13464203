//! Rendering router events as channels frames: the one place where hub
//! outcomes become the document's `type`s and `ERROR` codes.
//!
//! Every channels frame carries the recipient's own `clientID` and
//! `latency`, so frames are rendered per recipient (the payload is
//! serialized into each; it is not parsed again).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::id::Uuid;
use crate::net::frame::{Close, Frame};
use crate::router::{
    Addressee, Disconnect, Event, MemberView, Origin, PresenceChange, RequestError,
};

/// The frame a channels client receives for `event`, or `None` for events
/// that mean nothing to it (concierge replies). A `Disconnect` renders as a
/// close frame; see [`farewell`] for the message before it.
pub fn render(event: &Event, to: Addressee<'_>) -> Option<Frame> {
    let frame = match event {
        Event::Message(message) => envelope(to, "DATA", &message.data)
            .event(&message.event_id)
            .requires_ack(message.requires_ack)
            .origin(match &message.origin {
                Origin::Client(client) => Some(OriginPayload {
                    client_id: &client.name,
                    uuid: client.uuid,
                }),
                Origin::Http => None,
            })
            .frame(),
        Event::Connected { members } => {
            let members: Vec<MemberPayload> = members.iter().map(MemberPayload::from).collect();
            envelope(to, "CONNECTED", &Members { members }).frame()
        }
        Event::Presence { change, member } => {
            let payload = MemberPayload::from(member);
            match change {
                PresenceChange::Joined => envelope(to, "PRESENCE:JOINED", &payload).frame(),
                PresenceChange::Updated => envelope(to, "PRESENCE:UPDATED", &payload).frame(),
                PresenceChange::Left => {
                    let gone = Gone {
                        client_id: payload.client_id,
                    };
                    envelope(to, "PRESENCE:LEFT", &gone).frame()
                }
            }
        }
        Event::Ping => envelope(to, "PING", &Empty {}).frame(),
        Event::Refused { error, .. } => error_frame(to, &error.to_string(), error_code(error)),
        Event::Disconnect(why) => Frame::close(&close(why)),
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
        | Event::Reload => return None,
    };
    Some(frame)
}

/// The `ERROR` a client gets before it is disconnected for `why`, if it can
/// still read one.
pub fn farewell(why: &Disconnect, to: Addressee<'_>) -> Option<Frame> {
    match why {
        Disconnect::PingTimeout => Some(error_frame(
            to,
            "Client did not respond to PING event",
            "PING_TIMEOUT",
        )),
        Disconnect::Internal(why) => Some(error_frame(to, why, "INTERNAL_ERROR")),
        // Too slow to read one more message; the others never reach channels.
        Disconnect::TooSlow
        | Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::HeartbeatTimeout
        | Disconnect::Replaced => None,
    }
}

/// The `ERROR` code for a refused message.
fn error_code(error: &RequestError) -> &'static str {
    match error {
        RequestError::Malformed(_) => "INVALID_MESSAGE",
        RequestError::UnknownType(_) => "UNKNOWN_TYPE",
        RequestError::Unsupported(_) => "UNSUPPORTED_TYPE",
        // Concierge requests; a channels client cannot make them.
        RequestError::NoSuchName(_)
        | RequestError::NoSuchUuid(_)
        | RequestError::NoSuchTopic(_)
        | RequestError::TopicExists(_)
        | RequestError::NotOwner(_) => "REFUSED",
    }
}

/// The close code for each way the router ends a channels connection.
fn close(why: &Disconnect) -> Close {
    let code = match why {
        Disconnect::PingTimeout => 1001,
        Disconnect::TooSlow => 1013,
        Disconnect::Internal(_) => 1011,
        Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::HeartbeatTimeout
        | Disconnect::Replaced => 1008,
    };
    Close::new(code, why.to_string())
}

fn error_frame(to: Addressee<'_>, message: &str, code: &str) -> Frame {
    envelope(to, "ERROR", &ErrorPayload { message, code }).frame()
}

fn envelope<'a, P: Serialize + ?Sized>(
    to: Addressee<'a>,
    kind: &'static str,
    payload: &'a P,
) -> Envelope<'a, P> {
    Envelope {
        kind,
        payload,
        client_id: to.client_id,
        latency: to.latency_ms,
        event_id: None,
        requires_ack: false,
        origin: None,
    }
}

#[derive(Serialize)]
struct Envelope<'a, P: Serialize + ?Sized> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a P,
    #[serde(rename = "clientID")]
    client_id: &'a str,
    latency: u64,
    #[serde(rename = "eventID", skip_serializing_if = "Option::is_none")]
    event_id: Option<&'a str>,
    /// Present (and true) only on events that must be acknowledged.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    requires_ack: bool,
    /// The sending client, for messages that came from one (not for emits).
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<OriginPayload<'a>>,
}

impl<'a, P: Serialize + ?Sized> Envelope<'a, P> {
    fn event(mut self, event_id: &'a str) -> Self {
        self.event_id = Some(event_id);
        self
    }

    fn requires_ack(mut self, requires_ack: bool) -> Self {
        self.requires_ack = requires_ack;
        self
    }

    fn origin(mut self, origin: Option<OriginPayload<'a>>) -> Self {
        self.origin = origin;
        self
    }

    fn frame(&self) -> Frame {
        // Plain structs and raw JSON always serialize.
        Frame::text(&serde_json::to_string(self).expect("channels frames always serialize"))
    }
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
