//! The router's side of running several nodes as one hub (`--redis`).
//!
//! Each node's router holds its own connections, plus a **shadow** of every
//! member connected to another node: a member like any other (it has a
//! name, a uuid, presence, subscriptions, groups it owns), whose frames go
//! nowhere, because the node that holds the real connection delivers them.
//! Listings (CLIENT_FETCH_ALL, GROUP_FETCH, channels presence, `hub.*`)
//! therefore cover every node without asking anyone.
//!
//! What a local member does that others must see goes out as a
//! [`Record`] on the cluster bus (Redis pub/sub), in this router's
//! order; the other routers apply it to the member's shadow. Membership
//! changes are replicated as their effect (joined, subscribed, owns a
//! group, left), messages as the request (a MESSAGE, an emit, a world
//! action), which each node delivers to its own connections.
//!
//! Two things need more than a bus:
//! - a concierge **name** is claimed in Redis before IDENTIFY succeeds
//!   ([`Outgoing::Claim`]), so two nodes never both grant it; a group
//!   name likewise before GROUP_CREATE succeeds;
//! - a blazing **document** is edited through a Redis stream per document:
//!   a local edit is not applied here but appended ([`Outgoing::Append`]),
//!   and every node applies the stream's entries in the stream's order
//!   ([`Inbound::DocumentEntries`]), so all copies go through the same
//!   sequence of edits from the same base ([`Inbound::DocumentBase`]).
//!
//! No I/O here either: records to send pile up in the router,
//! which the router thread hands to the Redis link after each step.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{ConnId, Target};

/// Shadows' connection numbers start here; local connections count up
/// from 1 and never get near it.
const SHADOW_BASE: u64 = 1 << 62;

impl ConnId {
    /// Whether this is the shadow of a member connected to another node.
    pub fn is_shadow(self) -> bool {
        self.0 >= SHADOW_BASE
    }
}

/// What the router asks of the Redis link.
#[derive(Debug)]
pub enum Outgoing {
    /// Publish on the bus, for every other node.
    Publish(Record),
    /// Claim a name or a group for `conn`; answered by
    /// [`Inbound::Claimed`].
    Claim {
        /// The connection identifying, or creating the group.
        conn: ConnId,
        /// What it claims.
        claim: Claimable,
    },
    /// Give a name or group back (its member left, it was deleted).
    Release {
        /// What is given back.
        claim: Claimable,
    },
    /// Claim again what this node holds (Redis may have lost it).
    Reclaim {
        /// The names and groups.
        claims: Vec<Claimable>,
    },
    /// Start applying a document's stream; `text` is this node's copy, the
    /// base if the cluster has none yet.
    Follow {
        /// The document's computer id.
        computer: String,
        /// The text on this node's disk (or empty).
        text: String,
    },
    /// Stop following a document (nobody here edits it any more).
    Unfollow {
        /// The document's computer id.
        computer: String,
    },
    /// Append an edit to a document's stream.
    Append {
        /// The document's computer id.
        computer: String,
        /// The edit.
        entry: DocumentEntry,
    },
    /// The document's text after the stream entry `id`: where nodes that
    /// start following it begin.
    Snapshot {
        /// The document's computer id.
        computer: String,
        /// The text.
        text: Arc<str>,
        /// The last entry applied to it.
        id: StreamId,
        /// How many entries the document has had, that one included.
        count: u64,
    },
}

/// Something only one node may hold at a time: claimed in Redis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claimable {
    /// A concierge client's name.
    Name(String),
    /// A concierge group.
    Group(String),
}

impl Claimable {
    /// The name claimed.
    pub fn text(&self) -> &str {
        match self {
            Claimable::Name(text) | Claimable::Group(text) => text,
        }
    }
}

impl fmt::Display for Claimable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claimable::Name(name) => write!(f, "the name {name:?}"),
            Claimable::Group(group) => write!(f, "the group {group:?}"),
        }
    }
}

/// The router thread's end of the queue to the Redis link. Bounded in
/// bytes, not records (a record may carry a 1 MiB message or a whole
/// document), and never waits: a record that does not fit is refused, so a
/// slow Redis costs dropped records, never a stalled router.
#[derive(Debug)]
pub struct LinkQueue {
    /// The writer thread holds the receiver; dropping this ends it.
    records: Sender<Outgoing>,
    /// Bytes queued now, shared with the [`LinkReceiver`].
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The Redis link's end of a [`LinkQueue`].
#[derive(Debug)]
pub struct LinkReceiver {
    records: Receiver<Outgoing>,
    queued: Arc<AtomicUsize>,
}

/// A queue holding up to `capacity` bytes of records.
pub fn link_queue(capacity: usize) -> (LinkQueue, LinkReceiver) {
    // Unbounded as a channel (nothing preallocated): the byte count bounds it.
    let (records, receiver) = crossbeam_channel::unbounded();
    let queued = Arc::new(AtomicUsize::new(0));
    let sender = LinkQueue {
        records,
        queued: queued.clone(),
        capacity,
    };
    let receiver = LinkReceiver {
        records: receiver,
        queued,
    };
    (sender, receiver)
}

impl LinkQueue {
    /// Queues `record` if it fits; `false` if it was dropped.
    pub fn try_send(&self, record: Outgoing) -> bool {
        let weight = record.weight();
        let fits = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |queued| {
                (queued + weight <= self.capacity).then_some(queued + weight)
            })
            .is_ok();
        if fits && self.records.send(record).is_err() {
            self.queued.fetch_sub(weight, Ordering::Relaxed);
            return false; // the link is gone
        }
        fits
    }
}

impl LinkReceiver {
    /// The next record, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<Outgoing, RecvTimeoutError> {
        let record = self.records.recv_deadline(deadline)?;
        self.queued.fetch_sub(record.weight(), Ordering::Relaxed);
        Ok(record)
    }
}

impl Outgoing {
    /// About how many bytes the record holds: its payloads and texts, plus
    /// a fixed allowance for the rest.
    fn weight(&self) -> usize {
        const BASE: usize = 128;
        BASE + match self {
            Outgoing::Publish(record) => record.weight(),
            Outgoing::Follow { text, .. } => text.len(),
            Outgoing::Snapshot { text, .. } => text.len(),
            Outgoing::Append { entry, .. } => match &entry.edit {
                super::Edit::Write { text, .. } => text.len(),
                super::Edit::Move { .. } | super::Edit::Sync => 0,
            },
            // Never refused for room: a claim must be answered and a release
            // carried out, or a client waits (and a name stays held) for
            // good. They are small, and there are at most a few per client.
            Outgoing::Claim { .. } | Outgoing::Release { .. } | Outgoing::Reclaim { .. } => {
                return 0
            }
            Outgoing::Unfollow { computer } => computer.len(),
        }
    }
}

impl Record {
    /// About how many bytes of payload the record holds.
    fn weight(&self) -> usize {
        match self {
            Record::Send { data, .. } => data.get().len(),
            Record::Emit { payload, .. } => payload.get().len(),
            Record::Presence { presence, .. } => presence.get().len(),
            Record::Call { args, .. } => json_weight(args),
            Record::Joined(member) => member.weight(),
            Record::Announce { members } => members.iter().map(MemberRecord::weight).sum(),
            Record::Hello
            | Record::Left { .. }
            | Record::Subscribed { .. }
            | Record::Unsubscribed { .. }
            | Record::Created { .. }
            | Record::Deleted { .. }
            | Record::Ack { .. } => 0,
        }
    }
}

impl MemberRecord {
    fn weight(&self) -> usize {
        let topics: usize = self.subscriptions.iter().map(String::len).sum();
        128 + self.name.len() + self.presence.get().len() + topics
    }
}

/// About how long `value` is as JSON, without writing it.
fn json_weight(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => items.iter().map(json_weight).sum::<usize>() + 2,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + 3 + json_weight(v)).sum(),
    }
}

/// What the Redis link tells the router.
#[derive(Debug)]
pub enum Inbound {
    /// The link (re)joined the cluster: say hello, tell the others who is
    /// here, claim names again, publish document snapshots.
    Connected,
    /// A record from another node.
    Bus {
        /// The node that published it.
        from: String,
        /// What it says.
        record: Record,
        /// When it arrived: proof that its node was alive then.
        received: Instant,
    },
    /// Redis's answer to a claim.
    Claimed {
        /// The connection identifying.
        conn: ConnId,
        /// Whether the name is now this node's.
        granted: bool,
    },
    /// The other nodes whose heartbeat key lived when the writer looked,
    /// at `checked`. A node missing from them, and not heard from since,
    /// is gone, and so are its members.
    LiveNodes {
        /// The live nodes.
        nodes: Vec<String>,
        /// When the writer started looking.
        checked: Instant,
    },
    /// Where a followed document starts: its text after `id`, and the
    /// entries after that.
    DocumentBase {
        /// The document's computer id.
        computer: String,
        /// The text.
        text: String,
        /// The last entry the text includes.
        id: StreamId,
        /// How many entries the document had had then.
        count: u64,
        /// The entries after it, in order.
        entries: Entries,
    },
    /// New entries of a followed document's stream, in order.
    DocumentEntries {
        /// The document's computer id.
        computer: String,
        /// The entries.
        entries: Entries,
    },
}

/// Stream entries, in the stream's order.
pub type Entries = Vec<Appended>;

/// An entry as the stream holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its id in the stream.
    pub id: StreamId,
    /// Its number among the document's entries (1, 2, …): a number that
    /// skips one means entries were lost (a Redis restarted empty), and the
    /// node reads the document's base again.
    pub number: u64,
    /// The edit.
    pub entry: DocumentEntry,
}

/// A Redis stream entry id: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    /// Redis's clock when the entry was added, in milliseconds.
    pub ms: u64,
    /// Its number within that millisecond.
    pub seq: u64,
}

impl StreamId {
    /// Reads `ms-seq`.
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One edit in a document's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEntry {
    /// The node of the editing connection.
    pub node: String,
    /// The editing connection's number on that node.
    pub conn: u64,
    /// The user (token `sub`).
    pub user: String,
    /// The node's count of its edits (1, 2, …): an append retried after a
    /// lost answer is not added twice.
    pub seq: u64,
    /// What it did: a move or a write (a `sync` never goes through the
    /// stream).
    pub edit: super::Edit,
    /// For a write placed on the document as its node held it: the number
    /// of the last entry that node had applied. Every node transforms the
    /// write against the writes after that entry. `None`: at its offsets.
    #[serde(default)]
    pub after: Option<u64>,
}

/// A record on the cluster bus. `conn` is always the publishing node's
/// own connection number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Record {
    /// The node (re)joined: every node answers with an `Announce`.
    Hello,
    /// Every member the node holds now; replaces what others knew of it.
    Announce {
        /// The members.
        members: Vec<MemberRecord>,
    },
    /// A member joined the namespace.
    Joined(MemberRecord),
    /// A member left.
    Left {
        /// Its connection.
        conn: u64,
    },
    /// A member subscribed to a topic (entered a room, listened).
    Subscribed {
        /// The member.
        conn: u64,
        /// The topic.
        topic: String,
    },
    /// A member stopped subscribing to a topic.
    Unsubscribed {
        /// The member.
        conn: u64,
        /// The topic.
        topic: String,
    },
    /// A member created a group.
    Created {
        /// The member.
        conn: u64,
        /// The group.
        topic: String,
        /// Its display name.
        nickname: Option<String>,
    },
    /// A member deleted its group.
    Deleted {
        /// The member.
        conn: u64,
        /// The group.
        topic: String,
    },
    /// A member's new presence.
    Presence {
        /// The member.
        conn: u64,
        /// The presence.
        presence: Box<RawValue>,
    },
    /// A concierge MESSAGE.
    Send {
        /// The sender.
        conn: u64,
        /// To whom, as the sender wrote it.
        target: Target,
        /// The body.
        data: Box<RawValue>,
        /// Its event id.
        event_id: String,
    },
    /// An HTTP emit.
    Emit {
        /// The channel.
        topic: String,
        /// The body.
        payload: Box<RawValue>,
        /// Its id, the same on every node, so ACKs find it.
        event_id: String,
        /// The client ids chosen (`clients=`), or `None` for all.
        to: Option<Vec<String>>,
        /// Whether the targets are asked to ACK.
        require_ack: bool,
    },
    /// A member acknowledged an emit another node made.
    Ack {
        /// The member.
        conn: u64,
        /// The emit.
        event_id: String,
    },
    /// A member called a method that others hear of (world actions,
    /// `hub.publish`).
    Call {
        /// The caller.
        conn: u64,
        /// The method.
        method: String,
        /// Its arguments.
        args: serde_json::Value,
        /// The id of the message it sent, if it sent one (`hub.publish`).
        event_id: Option<String>,
    },
}

/// A member as other nodes learn of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Its connection on its node.
    pub conn: u64,
    /// Its unique name.
    pub name: String,
    /// Its display name.
    pub nickname: Option<String>,
    /// Its uuid.
    pub uuid: String,
    /// Its labels.
    pub tags: Vec<String>,
    /// Its presence.
    pub presence: Box<RawValue>,
    /// Its dialect and what that dialect needs.
    pub kind: KindRecord,
    /// The topics it subscribes to.
    pub subscriptions: Vec<String>,
    /// The groups it owns, with their display names.
    pub owns: Vec<(String, Option<String>)>,
}

/// A member's dialect, on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KindRecord {
    /// concierge.
    Concierge,
    /// channels.
    Channels,
    /// common.
    Common,
    /// world.
    World {
        /// Its world.
        world: String,
        /// Its user.
        user: String,
        /// Its display name.
        display: Option<String>,
    },
    /// blazing.
    Blazing {
        /// Its document.
        computer: String,
        /// Its user.
        user: String,
    },
}

// The logic: in a build with the `redis` feature, what this node tells
// the others (`outgoing.rs`), the claims of names (`claims.rs`) and the
// other nodes' members (`shadows.rs`); without it, hooks that do nothing,
// so that the default binary carries none of it.
#[cfg(feature = "redis")]
mod claims;
#[cfg(feature = "redis")]
mod outgoing;
#[cfg(feature = "redis")]
pub use outgoing::Cluster;
#[cfg(feature = "redis")]
mod shadows;
#[cfg(not(feature = "redis"))]
mod single;
