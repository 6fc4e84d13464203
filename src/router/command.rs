//! What connections ask of the router: the `Command`s on its one channel.

use std::fmt;

use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::value::RawValue;

use super::access::{Denial, Grant};
pub use super::control::{Control, Reconfiguration};
use super::Dialect;

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
    /// A channels client joins `topic` as a listener: it becomes a member
    /// of the namespace under a fresh `client_…` id, subscribed to `topic`.
    Listen {
        /// The listening connection.
        conn: ConnId,
        /// The channel (topic) it listens to; created if needed.
        topic: String,
        /// Its presence: a JSON object others see.
        presence: Box<RawValue>,
        /// What its token (or the lack of one) grants.
        grant: Grant,
        /// How long until its token expires (and it is closed), if it
        /// came with one.
        token_left: Option<Duration>,
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
    /// A channels client answered a PING.
    Pong {
        /// The answering connection.
        conn: ConnId,
    },
    /// A channels client acknowledges the event `event_id`.
    Ack {
        /// The acknowledging connection.
        conn: ConnId,
        /// The acknowledged event.
        event_id: String,
    },
    /// A member replaces its presence.
    UpdatePresence {
        /// The member's connection.
        conn: ConnId,
        /// The new presence: a JSON object.
        presence: Box<RawValue>,
        /// Whether the member is told of its own change too, as the other
        /// listeners of its topics are: its dialect's choice.
        echo: bool,
    },
    /// An HTTP emit: publish to a topic's subscribers, answered on `reply`.
    Emit(Box<Emit>),
    /// A common client finished its handshake (HELLO_ACK with the right
    /// password), or a world client authenticated: it becomes a member.
    Join {
        /// The joining connection.
        conn: ConnId,
        /// Who it is. Boxed, as `Emit` is: the largest variants, and rare
        /// (one per connection, one per HTTP emit), they would set the size
        /// of every command, and so of each of the command queue's 4,096
        /// slots (a command and an 8-byte stamp: 192 bytes instead of 128,
        /// 256 KiB of a hub's memory).
        who: Box<Joiner>,
    },
    /// A common client's HEARTBEAT.
    Heartbeat {
        /// The heartbeating connection.
        conn: ConnId,
    },
    /// A call of a method (common REQUEST or DISPATCH, world action).
    Call {
        /// The calling connection.
        conn: ConnId,
        /// The method's name.
        method: String,
        /// The arguments, as the client sent them.
        args: serde_json::Value,
        /// Where the answer goes; `None`: no answer wanted.
        reply: Option<crate::methods::ReplyTo>,
    },
    /// An embedder's method finished (sent by an RPC worker).
    Answer {
        /// The connection that called.
        conn: ConnId,
        /// Where the answer goes; `None` for a call that wants none.
        reply: Option<crate::methods::ReplyTo>,
        /// What the method returned.
        result: Result<serde_json::Value, crate::methods::RpcError>,
    },
    /// A blazing client edits, moves its cursor, or asks for a sync.
    Edit {
        /// The editing connection.
        conn: ConnId,
        /// What it does.
        edit: Edit,
    },
    /// What the server, the operator or the saver asks of the router
    /// itself, rather than a client of the namespace.
    Control(Control),
    /// The connection's socket is gone (its reader thread has ended).
    Closed {
        /// The connection that ended.
        conn: ConnId,
    },
    /// News from the other nodes of a cluster, by way of Redis.
    #[cfg(feature = "redis")]
    Cluster(Box<super::cluster::Inbound>),
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

/// The addressee of a message, as the sender wrote it. In a cluster it
/// also travels to the other nodes with the message, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// An HTTP emit (`GET|POST /<channel>/emit`).
#[derive(Debug)]
pub struct Emit {
    /// The channel (topic).
    pub topic: String,
    /// What the recipients receive, verbatim.
    pub payload: Box<RawValue>,
    /// Which of the topic's subscribers receive it.
    pub targets: Targets,
    /// Whether the answer waits for the targets' ACKs.
    pub require_ack: bool,
    /// What the emitter's credentials grant (the operator's emit token:
    /// every topic; a token: its `publish` claim; none: nothing).
    pub grant: Grant,
    /// Where the router sends the one answer. Bounded (one slot), so the
    /// router's send never blocks; the HTTP thread waits on the other end.
    pub reply: Sender<EmitOutcome>,
}

/// Which subscribers an emit goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// All of them.
    All,
    /// This many, chosen at random, all different.
    Random(usize),
    /// Those with these client ids (names).
    Named(Vec<String>),
}

/// The answer to an emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitOutcome {
    /// Delivered; no acknowledgements were asked for.
    Sent {
        /// The event's id.
        event_id: String,
        /// The client ids it went to.
        targeted: Vec<String>,
    },
    /// Every target that can acknowledge did.
    Acked {
        /// The event's id.
        event_id: String,
        /// The client ids it went to.
        targeted: Vec<String>,
        /// Those that acknowledged, in order.
        acked: Vec<String>,
    },
    /// The deadline passed, or targets left, before every ACK arrived.
    Unacked {
        /// The event's id.
        event_id: String,
        /// The client ids it went to.
        targeted: Vec<String>,
        /// Those that acknowledged, in order.
        acked: Vec<String>,
        /// Those that did not (silent, or gone).
        missing: Vec<String>,
    },
    /// Nothing was sent.
    Refused(EmitError),
}

/// Why an emit was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// `clients=N` asked for more listeners than the channel has.
    TooFewListeners {
        /// N.
        wanted: usize,
        /// How many listen.
        listening: usize,
    },
    /// `clients=a,b` named ids that do not listen to the channel.
    UnknownClients(Vec<String>),
    /// The emitter may not write the topic (the one access rule).
    Denied(Denial),
    /// The server failed (no randomness).
    Internal(String),
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::TooFewListeners { wanted, listening } => write!(
                f,
                "{wanted} clients asked for, but only {listening} listen to this channel"
            ),
            EmitError::UnknownClients(ids) => {
                write!(f, "not listening to this channel: {}", ids.join(", "))
            }
            EmitError::Denied(Denial::Reserved) => {
                f.write_str("this channel is reserved: only the server publishes to it")
            }
            EmitError::Denied(Denial::NotGranted) => {
                f.write_str("your credentials do not grant emitting to this channel")
            }
            EmitError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

/// Who a joining RPC client is.
#[derive(Debug, Clone)]
pub enum Joiner {
    /// A common client (it has no name of its own; the hub gives it one).
    Common,
    /// A blazing client joining a computer's document.
    Blazing {
        /// The computer id (the document's name).
        computer: String,
        /// The user: the token's `sub`.
        user: String,
        /// The user's display name, from the token.
        display: Option<String>,
        /// How long until the token expires (and the client is closed).
        token_left: std::time::Duration,
        /// The documents its token's `computers` claim grants.
        grant: Grant,
        /// The document as saved on disk, read by the joining connection,
        /// for the router to use if it does not hold the document yet.
        stored: Option<String>,
    },
    /// A world client.
    World {
        /// The world it connected to.
        world: String,
        /// The user: the token's `sub`, or the `client_id`.
        user: String,
        /// The user's display name, from the token.
        display: Option<String>,
        /// The token's `traits` (venueless's badges and roles), for
        /// embedders' methods.
        traits: Vec<String>,
        /// Its world's rooms, and what its token's `publish` claim grants.
        grant: Grant,
        /// How long until its token expires (and it is closed), if it
        /// authenticated with one.
        token_left: Option<Duration>,
        /// The `authenticate` message's correlation id, for the answer.
        id: Option<crate::methods::CallId>,
    },
}

/// What a blazing client does to its document. In a cluster, moves and
/// writes also travel in documents' streams, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Edit {
    /// `sync`: send me the whole document.
    Sync,
    /// `move`: my cursor is here now.
    Move {
        /// Cursor position (chars).
        offset: i64,
        /// Selection from it (chars, negative to the left).
        selection: i64,
        /// The revision the client's copy had (an extension: docs/revisions.md,
        /// "Blazing revisions"); `None`: on the text as it is.
        #[serde(default)]
        rev: Option<u64>,
    },
    /// `write`: insert `text`, or replace the selection with it.
    Write {
        /// Cursor position (chars).
        offset: i64,
        /// Selection to replace (0: insert).
        selection: i64,
        /// The text written.
        text: String,
        /// The revision the client's copy had; `None`: the write applies
        /// at its literal offsets, as the protocol document says.
        #[serde(default)]
        rev: Option<u64>,
    },
}
#[cfg(test)]
mod tests {
    /// Every slot of the server's command queue (4,096 of them, allocated
    /// once) is a command's size: a large variant added unboxed makes
    /// every one larger.
    #[test]
    fn a_command_stays_small() {
        assert!(std::mem::size_of::<super::Command>() <= 120);
    }
}
