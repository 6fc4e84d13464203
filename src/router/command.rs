//! What connections ask of the router: the `Command`s on its one channel.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::dialect::Dialect;
use crate::net::outbox::Outbox;

/// A connection's number, unique for the life of the server process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The number of the client frame a reply answers (concierge's `seq`).
pub type Seq = u64;

/// One request to the router. Each connection's reader sends its commands
/// in order on a shared channel, so the router sees every connection's
/// commands in the order the client sent the frames.
#[derive(Debug)]
pub enum Command {
    /// A WebSocket handshake finished: the router may now address `conn`.
    Open {
        /// The new connection.
        conn: ConnId,
        /// The protocol it speaks.
        dialect: Dialect,
        /// Where frames for it go. Held by the router thread until `Closed`.
        outbox: Arc<Outbox>,
    },
    /// A client asks to join the namespace under `name`.
    Identify {
        /// The asking connection.
        conn: ConnId,
        /// The requested unique name (already validated by the dialect).
        name: String,
        /// An optional display name.
        nickname: Option<String>,
        /// Free-form labels the client describes itself with.
        tags: Vec<String>,
    },
    /// A request from an identified client. `seq` is echoed in the reply.
    Request {
        /// The asking connection.
        conn: ConnId,
        /// The number of the frame that carried the request.
        seq: Seq,
        /// What is asked.
        request: Request,
    },
    /// A frame that answers to no `seq` (a binary frame to the concierge)
    /// could not be understood. Sent through the router, like requests, so
    /// that the refusal leaves after the replies to earlier frames.
    Reject {
        /// The sending connection.
        conn: ConnId,
        /// What is wrong.
        error: crate::router::RequestError,
    },
    /// The connection's socket is gone (its reader thread has ended).
    Closed {
        /// The connection that ended.
        conn: ConnId,
    },
}

/// What an identified client can ask for.
#[derive(Debug)]
pub enum Request {
    /// Deliver `data` to `target`.
    Send {
        /// Who receives it.
        target: Target,
        /// The message body, passed on byte for byte.
        data: Box<RawValue>,
    },
    /// Add the client to a topic's subscribers.
    Subscribe {
        /// The topic.
        topic: String,
    },
    /// Remove the client from a topic's subscribers.
    Unsubscribe {
        /// The topic.
        topic: String,
    },
    /// Create a topic owned by the client.
    CreateTopic {
        /// The topic.
        topic: String,
        /// An optional display name.
        nickname: Option<String>,
    },
    /// Delete a topic the client owns.
    DeleteTopic {
        /// The topic.
        topic: String,
    },
    /// Describe one topic.
    FetchTopic {
        /// The topic.
        topic: String,
    },
    /// List every topic.
    FetchTopics,
    /// List every identified client.
    FetchClients,
    /// Describe the asking client and its subscriptions.
    FetchSelf,
    /// The frame could not be turned into a request; answer with this error.
    Invalid(crate::router::RequestError),
}

/// The addressee of a message, as the sender wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The client with this unique name.
    Name(String),
    /// The client with this uuid (kept as text: an unparseable uuid simply
    /// matches nobody).
    Uuid(String),
    /// Every subscriber of this topic.
    Topic(String),
    /// Every identified client.
    All,
}
