//! Rendering router events as concierge payloads: the one place where hub
//! outcomes become the document's `type`s and `STATUS` codes.

use serde::Serialize;
use serde_json::value::RawValue;

use super::error::ConciergeError;
use crate::id::Uuid;
use crate::router::{
    ClientInfo, Event, Origin as MessageOrigin, RequestError, Seq, Target, TopicChange, TopicInfo,
};
use crate::wire::frame::Frame;

/// The frame a concierge client receives for `event`, or `None` for events
/// that mean nothing to it (channels presence and pings).
pub fn render(event: &Event) -> Option<Frame> {
    match event {
        Event::Disconnect(why) => Some(Frame::close(&ConciergeError::from(why).close())),
        other => Some(Frame::text(&to_json(other)?)),
    }
}

fn to_json(event: &Event) -> Option<String> {
    let payload = match event {
        Event::Welcome { uuid } => Payload::Hello {
            uuid: *uuid,
            version: super::VERSION,
        },
        Event::Message(message) => Payload::Message {
            origin: Origin {
                client: match &message.origin {
                    MessageOrigin::Client(client) => ClientPayload::from(&**client),
                    MessageOrigin::Http => ClientPayload::HTTP,
                },
                group: message.topic.as_ref().map(GroupPayload::from),
            },
            target: WireTarget::from(&message.target),
            data: &message.data,
        },
        Event::Sent { seq } => status(Some(*seq), "MESSAGE_SENT", Detail::None),
        Event::TopicChanged { seq, change, topic } => {
            status(*seq, change_code(*change), Detail::Group(topic.into()))
        }
        Event::Topic { seq, topic } => Payload::GroupFetchResult {
            group: topic.into(),
            seq: *seq,
        },
        Event::Topics { seq, topics } => Payload::GroupFetchAllResult {
            groups: topics.iter().map(GroupPayload::from).collect(),
            seq: *seq,
        },
        Event::Clients { seq, clients } => Payload::ClientFetchAllResult {
            clients: clients.iter().map(|c| ClientPayload::from(&**c)).collect(),
            seq: *seq,
        },
        Event::Myself {
            seq,
            client,
            subscriptions,
        } => Payload::SelfFetchResult {
            name: &client.name,
            nickname: client.nickname.as_deref(),
            uuid: client.uuid,
            tags: &client.tags,
            subscriptions,
            seq: *seq,
        },
        Event::Refused { seq, error } => refusal(*seq, error),
        Event::Connected { .. }
        | Event::Presence { .. }
        | Event::Ping
        | Event::Reply { .. }
        | Event::Authenticated { .. }
        | Event::Notice { .. }
        | Event::HeartbeatAck
        | Event::Reload
        | Event::Document(_) => return None,
        // Rendered as a close frame by `render`.
        Event::Disconnect(_) => return None,
    };
    // Serializing these plain structs into a String cannot fail: every map
    // key is a string and no value has a fallible `Serialize`.
    Some(serde_json::to_string(&payload).expect("concierge payloads always serialize"))
}

fn change_code(change: TopicChange) -> &'static str {
    match change {
        TopicChange::Created => "GROUP_CREATED",
        TopicChange::Deleted => "GROUP_DELETED",
        TopicChange::Subscribed => "SUBSCRIBED",
        TopicChange::Unsubscribed => "UNSUBSCRIBED",
    }
}

fn refusal(seq: Option<Seq>, error: &RequestError) -> Payload<'_> {
    match error {
        RequestError::NoSuchName(name) => status(seq, "NO_SUCH_NAME", Detail::Name { name }),
        RequestError::NoSuchUuid(uuid) => status(seq, "NO_SUCH_UUID", Detail::Uuid { uuid }),
        RequestError::NoSuchTopic(group) => {
            status(seq, "NO_SUCH_GROUP", Detail::GroupName { group })
        }
        RequestError::TopicExists(topic) => {
            status(seq, "GROUP_ALREADY_CREATED", Detail::Group(topic.into()))
        }
        RequestError::NotOwner(_) => status(seq, "BAD", described(error)),
        RequestError::Reserved(_) => status(seq, "BAD", described(error)),
        // Concierge clients are trusted services; only a reserved topic
        // can be out of their reach, and BAD is the document's refusal.
        RequestError::NotGranted { .. } => status(seq, "BAD", described(error)),
        // The document has no status for it; BAD is its generic refusal.
        RequestError::RateLimited => status(seq, "BAD", described(error)),
        // Spelled as in the document.
        RequestError::Unsupported(_) => status(seq, "UNSUPORTED", described(error)),
        RequestError::UnknownType(_) => status(seq, "PROTOCOL", described(error)),
        RequestError::Malformed(_) => status(seq, "PROTOCOL", described(error)),
    }
}

fn described(error: &RequestError) -> Detail<'static> {
    Detail::Desc {
        desc: error.to_string(),
    }
}

fn status<'a>(seq: Option<Seq>, code: &'static str, detail: Detail<'a>) -> Payload<'a> {
    Payload::Status { code, detail, seq }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum Payload<'a> {
    Hello {
        uuid: Uuid,
        version: &'static str,
    },
    Message {
        origin: Origin<'a>,
        target: WireTarget<'a>,
        data: &'a RawValue,
    },
    Status {
        code: &'static str,
        #[serde(flatten)]
        detail: Detail<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<Seq>,
    },
    GroupFetchResult {
        #[serde(flatten)]
        group: GroupPayload<'a>,
        seq: Seq,
    },
    GroupFetchAllResult {
        groups: Vec<GroupPayload<'a>>,
        seq: Seq,
    },
    ClientFetchAllResult {
        clients: Vec<ClientPayload<'a>>,
        seq: Seq,
    },
    SelfFetchResult {
        name: &'a str,
        /// Always present (`null` when unset), as in the document's example.
        nickname: Option<&'a str>,
        uuid: Uuid,
        tags: &'a [String],
        subscriptions: &'a [String],
        seq: Seq,
    },
}

/// The extra fields of a STATUS.
#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    None,
    Group(GroupPayload<'a>),
    Name {
        name: &'a str,
    },
    Uuid {
        uuid: &'a str,
    },
    /// NO_SUCH_GROUP names the group in a field called `group`.
    GroupName {
        group: &'a str,
    },
    Desc {
        desc: String,
    },
}

#[derive(Serialize)]
struct Origin<'a> {
    #[serde(flatten)]
    client: ClientPayload<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<GroupPayload<'a>>,
}

#[derive(Serialize)]
struct ClientPayload<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<&'a str>,
    uuid: Uuid,
    tags: &'a [String],
}

impl ClientPayload<'static> {
    /// The origin of HTTP emits: the hub itself.
    const HTTP: ClientPayload<'static> = ClientPayload {
        name: "$http",
        nickname: None,
        uuid: Uuid::NIL,
        tags: &[],
    };
}

impl<'a> From<&'a ClientInfo> for ClientPayload<'a> {
    fn from(client: &'a ClientInfo) -> Self {
        ClientPayload {
            name: &client.name,
            nickname: client.nickname.as_deref(),
            uuid: client.uuid,
            tags: &client.tags,
        }
    }
}

#[derive(Serialize)]
struct GroupPayload<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nickname: Option<&'a str>,
    /// `null` for a topic that exists only because channels clients listen.
    owner_uuid: Option<Uuid>,
    subscribers: &'a [Uuid],
}

impl<'a> From<&'a TopicInfo> for GroupPayload<'a> {
    fn from(topic: &'a TopicInfo) -> Self {
        GroupPayload {
            name: &topic.name,
            nickname: topic.nickname.as_deref(),
            owner_uuid: topic.owner,
            subscribers: &topic.subscribers,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum WireTarget<'a> {
    Name { name: &'a str },
    Uuid { uuid: &'a str },
    Group { group: &'a str },
    All,
}

impl<'a> From<&'a Target> for WireTarget<'a> {
    fn from(target: &'a Target) -> Self {
        match target {
            Target::Name(name) => WireTarget::Name { name },
            Target::Uuid(uuid) => WireTarget::Uuid { uuid },
            Target::Topic(group) => WireTarget::Group { group },
            Target::All => WireTarget::All,
        }
    }
}
