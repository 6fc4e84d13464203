//! What the router tells connections: `Event`s and who gets them.
//!
//! Events say what happened in the hub's own terms; each dialect renders an
//! event into its protocol's frame (or ignores it). The router thread renders
//! a delivery once per dialect among its recipients, never once per recipient.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::command::{ConnId, Seq, Target};
use crate::id::Uuid;

/// An event and the connections it goes to.
#[derive(Debug)]
pub struct Delivery {
    /// The recipients, in no particular order.
    pub to: Vec<ConnId>,
    /// What they are told.
    pub event: Event,
}

impl Delivery {
    /// A delivery to a single connection.
    pub fn one(conn: ConnId, event: Event) -> Delivery {
        Delivery {
            to: vec![conn],
            event,
        }
    }
}

/// Something a connection is told.
#[derive(Debug, Clone)]
pub enum Event {
    /// The connection's identification succeeded.
    Welcome {
        /// Its uuid.
        uuid: Uuid,
    },
    /// A message from another client.
    Message(Arc<Message>),
    /// The client's message went out (`seq` names the request).
    Sent {
        /// The request answered.
        seq: Seq,
    },
    /// A topic was created, deleted, subscribed to or left. `seq` is set for
    /// the client whose request caused it, absent for everyone else.
    TopicChanged {
        /// The request answered, if this recipient made it.
        seq: Option<Seq>,
        /// What happened.
        change: TopicChange,
        /// The topic as it is (or was, for a deletion).
        topic: TopicInfo,
    },
    /// One topic, on request.
    Topic {
        /// The request answered.
        seq: Seq,
        /// The topic.
        topic: TopicInfo,
    },
    /// Every topic, on request.
    Topics {
        /// The request answered.
        seq: Seq,
        /// The topics, ordered by name.
        topics: Vec<TopicInfo>,
    },
    /// Every identified client, on request.
    Clients {
        /// The request answered.
        seq: Seq,
        /// The clients, ordered by name.
        clients: Vec<Arc<ClientInfo>>,
    },
    /// The asking client itself, on request.
    Myself {
        /// The request answered.
        seq: Seq,
        /// The client.
        client: Arc<ClientInfo>,
        /// The topics it subscribes to, ordered by name.
        subscriptions: Vec<String>,
    },
    /// A channels client is in: the channel's other members.
    Connected {
        /// The other subscribers of its channel, with their presence.
        members: Vec<MemberView>,
    },
    /// A member of the recipient's channel joined, left or changed presence.
    Presence {
        /// What happened.
        change: PresenceChange,
        /// Who (for `Left`, the presence is the last one it had).
        member: MemberView,
    },
    /// Are you there? (channels' keepalive; answered by PONG)
    Ping,
    /// The answer to a call (common RESPONSE, world success or error).
    Reply {
        /// The call's correlation id, if it had one.
        id: Option<crate::methods::CallId>,
        /// What it returned.
        result: Result<serde_json::Value, crate::methods::RpcError>,
    },
    /// A world client is authenticated.
    Authenticated {
        /// The `authenticate` message's correlation id, if it had one.
        id: Option<crate::methods::CallId>,
        /// `user.config`: the user as others see it.
        user: serde_json::Value,
        /// `world.config`: the world and its rooms.
        world: serde_json::Value,
    },
    /// What a world action did, for the other clients concerned:
    /// `[action, body]`.
    Notice {
        /// The action (`room.enter`, `room.send`, ...).
        action: &'static str,
        /// Its result.
        body: serde_json::Value,
    },
    /// The answer to a common HEARTBEAT.
    HeartbeatAck,
    /// The operator asks world clients to reload.
    Reload,
    /// Something happened in a shared document (blazing).
    Document(DocumentEvent),
    /// A request failed.
    Refused {
        /// The request answered; `None` for frames that have no number.
        seq: Option<Seq>,
        /// Why.
        error: RequestError,
    },
    /// The router ends this connection.
    Disconnect(Disconnect),
}

/// What happened in a shared document. `actioner` is the user (token
/// `sub`) who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentEvent {
    /// `usrupd`: a user joined (`true`) or left.
    UserUpdate {
        /// Who.
        actioner: String,
        /// Joined or left.
        joined: bool,
    },
    /// `sync`: the whole document, for one client.
    Sync {
        /// The client it is for.
        actioner: String,
        /// The text, at one version, shared by every sync of that version.
        document: Arc<DocumentSnapshot>,
        /// Every user's cursor offset.
        users: Vec<(String, usize)>,
        /// Seconds until the client's token expires.
        timeout: u64,
        /// The document's revision: the writes applied to it since it was
        /// loaded.
        rev: u64,
    },
    /// `move`: a user's cursor moved.
    Move {
        /// Who.
        actioner: String,
        /// Where (clamped).
        offset: usize,
        /// Selection (clamped).
        selection: i64,
    },
    /// `write`: a user edited the text, as applied (clamped).
    Write {
        /// Who.
        actioner: String,
        /// Where.
        offset: usize,
        /// The replaced range from `offset` (0: an insertion).
        selection: i64,
        /// The text written.
        text: String,
        /// The revision this write produced.
        rev: u64,
    },
}

/// A document's text at one version. Every `sync` of that version shares
/// it, and with it the encoded form the first one to render it made, so
/// asking again and again costs the router no new compression.
#[derive(Debug)]
pub struct DocumentSnapshot {
    /// The text.
    pub text: Arc<str>,
    /// The text as a dialect sends it (blazing: base64 of gzip), made once.
    pub encoded: std::sync::OnceLock<String>,
}

impl PartialEq for DocumentSnapshot {
    fn eq(&self, other: &DocumentSnapshot) -> bool {
        self.text == other.text
    }
}

impl Eq for DocumentSnapshot {}

/// How a topic changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicChange {
    /// It was created.
    Created,
    /// It was deleted.
    Deleted,
    /// The recipient became a subscriber.
    Subscribed,
    /// The recipient stopped being a subscriber.
    Unsubscribed,
}

/// How a member's presence changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceChange {
    /// It joined the channel.
    Joined,
    /// It left the channel.
    Left,
    /// It changed its presence.
    Updated,
}

/// A member as channels clients see it.
#[derive(Debug, Clone)]
pub struct MemberView {
    /// Its name in the namespace: a channels client's `client_…` id, a
    /// concierge client's name.
    pub client_id: String,
    /// Its presence, a JSON object.
    pub presence: Arc<RawValue>,
}

impl PartialEq for MemberView {
    fn eq(&self, other: &MemberView) -> bool {
        self.client_id == other.client_id && self.presence.get() == other.presence.get()
    }
}

impl Eq for MemberView {}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A member of the namespace.
    Client(Arc<ClientInfo>),
    /// An HTTP emit: the hub itself.
    Http,
}

/// A message on its way to its recipients.
#[derive(Debug)]
pub struct Message {
    /// Who sent it.
    pub origin: Origin,
    /// The event's id (channels' `eventID`), the same for every recipient.
    pub event_id: String,
    /// Whether recipients are asked to ACK it (channels' `requires_ack`).
    pub requires_ack: bool,
    /// The addressee, as the sender wrote it.
    pub target: Target,
    /// The topic it went through, when sent to one.
    pub topic: Option<TopicInfo>,
    /// The body, byte for byte as the sender wrote it.
    pub data: Box<RawValue>,
}

/// A client as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// Its unique name.
    pub name: String,
    /// Its display name, if it gave one.
    pub nickname: Option<String>,
    /// Its uuid.
    pub uuid: Uuid,
    /// Its labels.
    pub tags: Vec<String>,
}

/// A topic as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// Its display name, if it has one.
    pub nickname: Option<String>,
    /// The uuid of the client that owns it; `None` for a topic that exists
    /// only because channels clients listen to it.
    pub owner: Option<Uuid>,
    /// The uuids of its subscribers.
    pub subscribers: Vec<Uuid>,
}

/// What a client's first dropped message of an episode is told (the
/// text of [`RequestError::RateLimited`], and of the RPC dialects' error
/// for a dropped call), in the dialects whose error carries a text.
pub const RATE_LIMITED_MESSAGE: &str =
    "rate limit: too many messages; this one and more sent too fast are dropped";

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// No client has this name.
    NoSuchName(String),
    /// No client has this uuid.
    NoSuchUuid(String),
    /// No topic has this name.
    NoSuchTopic(String),
    /// The topic exists already.
    TopicExists(TopicInfo),
    /// Only the topic's owner may do this.
    NotOwner(String),
    /// The topic is reserved for the server (`$sys`): clients may listen
    /// to it, not publish to it.
    Reserved(String),
    /// The client's grant does not cover the topic (the one access rule,
    /// `router/access.rs`).
    NotGranted {
        /// The topic.
        topic: String,
        /// What was asked of it.
        access: super::Access,
    },
    /// The client sent something only a server sends (its `type` is given).
    Unsupported(String),
    /// The client sent a `type` the protocol does not have.
    UnknownType(String),
    /// The frame could not be understood; the text says why.
    Malformed(String),
    /// The frame came too fast: the rate limit dropped it (and the frames
    /// after it, until the client slows down).
    RateLimited,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NoSuchName(name) => write!(f, "no client is named {name:?}"),
            RequestError::NoSuchUuid(uuid) => write!(f, "no client has uuid {uuid:?}"),
            RequestError::NoSuchTopic(name) => write!(f, "no group is named {name:?}"),
            RequestError::TopicExists(topic) => write!(f, "group {:?} exists already", topic.name),
            RequestError::NotOwner(name) => {
                write!(f, "only the owner of group {name:?} may delete it")
            }
            RequestError::Reserved(name) => {
                write!(
                    f,
                    "group {name:?} is reserved: only the server publishes to it"
                )
            }
            RequestError::NotGranted { topic, access } => {
                write!(f, "you may not {access} {topic:?}: not granted")
            }
            RequestError::Unsupported(kind) => write!(f, "{kind} is sent by the server, not to it"),
            RequestError::UnknownType(kind) => write!(f, "unknown message type {kind:?}"),
            RequestError::Malformed(why) => f.write_str(why),
            RequestError::RateLimited => f.write_str(RATE_LIMITED_MESSAGE),
        }
    }
}

/// Why the router ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// It did not identify in time.
    IdentifyTimeout,
    /// Another client holds the name it asked for.
    NameTaken(String),
    /// Its outbound queue overflowed: it reads too slowly.
    TooSlow,
    /// It did not answer PING within two intervals (channels).
    PingTimeout,
    /// It sent no HEARTBEAT for longer than the interval allows (common).
    HeartbeatTimeout,
    /// Its user opened more connections to the world than allowed; this,
    /// the oldest, gives way (world).
    Replaced,
    /// Its token expired (blazing, and channels and world clients that
    /// came with one).
    TokenExpired,
    /// Its grant does not cover what it asked to join (the one access
    /// rule, `router/access.rs`): a blazing document or a channel.
    NotGranted(String),
    /// It wrote more than a document may hold (blazing).
    DocumentTooLarge(usize),
    /// The operator closed its document's room (blazing).
    RoomClosed,
    /// Something failed inside the server; the text says what.
    Internal(String),
    /// The server is shutting down (SIGTERM): every dialect's 1001.
    ShuttingDown,
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::IdentifyTimeout => f.write_str("did not identify in time"),
            Disconnect::NameTaken(name) => write!(f, "the name {name:?} is taken"),
            Disconnect::TooSlow => f.write_str("reads too slowly: outbound queue full"),
            Disconnect::PingTimeout => f.write_str("did not answer PING in time"),
            Disconnect::HeartbeatTimeout => f.write_str("no HEARTBEAT in time"),
            Disconnect::Replaced => f.write_str("replaced by a newer connection of the same user"),
            Disconnect::TokenExpired => f.write_str("authorization expired"),
            Disconnect::NotGranted(topic) => write!(f, "your token does not grant {topic:?}"),
            Disconnect::RoomClosed => f.write_str("room closed by admin"),
            Disconnect::DocumentTooLarge(limit) => {
                write!(f, "the document would exceed {limit} bytes")
            }
            Disconnect::Internal(why) => write!(f, "internal error: {why}"),
            Disconnect::ShuttingDown => f.write_str("server shutting down"),
        }
    }
}
