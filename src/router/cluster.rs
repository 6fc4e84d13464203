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
//! [`Shared`] record on the cluster bus (Redis pub/sub), in this router's
//! order; the other routers apply it to the member's shadow. Membership
//! changes are replicated as their effect (joined, subscribed, owns a
//! group, left), messages as the request (a MESSAGE, an emit, a world
//! action), which each node delivers to its own connections.
//!
//! Two things need more than a bus:
//! - a concierge **name** is claimed in Redis before IDENTIFY succeeds
//!   ([`Outgoing::Claim`]), so two nodes never both grant it;
//! - a blazing **document** is edited through a Redis stream per document:
//!   a local edit is not applied here but appended ([`Outgoing::Append`]),
//!   and every node applies the stream's entries in the stream's order
//!   ([`Inbound::DocumentEntries`]), so all copies go through the same
//!   sequence of edits from the same base ([`Inbound::DocumentBase`]).
//!
//! No I/O here either: records to send pile up in the router,
//! which the router thread hands to the Redis link after each step.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::member::{Editor, Kind, Liveness, Member, WorldUser};
use super::{
    ClientInfo, Conn, ConnId, Delivery, Disconnect, DocumentEvent, Event, Message, Origin, Router,
    Target, Targets,
};
use crate::id::Uuid;

/// Shadows' connection numbers start here; local connections count up
/// from 1 and never get near it.
const SHADOW_BASE: u64 = 1 << 62;

impl ConnId {
    /// Whether this is the shadow of a member connected to another node.
    pub fn is_shadow(self) -> bool {
        self.0 >= SHADOW_BASE
    }
}

/// This node's part in a cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This node's id (random, per process).
    node: String,
    /// Records for the Redis link, in the order they arose.
    outgoing: Vec<Outgoing>,
    /// Shadows by (node, that node's connection number).
    shadows: HashMap<(String, u64), ConnId>,
    /// The other way round.
    homes: HashMap<ConnId, (String, u64)>,
    next_shadow: u64,
    /// IDENTIFYs waiting for Redis to grant their name.
    claims: HashMap<ConnId, PendingIdentity>,
    /// Set while a replicated call runs, so that what it does on the way
    /// (joining a room, a new profile) is not replicated a second time.
    quiet: bool,
    /// The event id the message being replayed had on its own node, for
    /// the replay to use: recipients on every node see the same id.
    replay_event_id: Option<String>,
}

/// An IDENTIFY whose name is being claimed.
#[derive(Debug)]
struct PendingIdentity {
    name: String,
    nickname: Option<String>,
    tags: Vec<String>,
}

/// What the router asks of the Redis link.
#[derive(Debug)]
pub enum Outgoing {
    /// Publish on the bus, for every other node.
    Publish(Shared),
    /// Claim a concierge name for `conn`; answered by [`Inbound::Claimed`].
    Claim {
        /// The connection identifying.
        conn: ConnId,
        /// The name.
        name: String,
    },
    /// Give a name back (its member left).
    Release {
        /// The name.
        name: String,
    },
    /// Claim again names this node holds (Redis may have lost them).
    Reclaim {
        /// The names.
        names: Vec<String>,
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
    },
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
            Outgoing::Reclaim { names } => names.iter().map(String::len).sum(),
            Outgoing::Claim { name, .. } | Outgoing::Release { name } => name.len(),
            Outgoing::Unfollow { computer } => computer.len(),
        }
    }
}

impl Shared {
    /// About how many bytes of payload the record holds.
    fn weight(&self) -> usize {
        match self {
            Shared::Send { data, .. } => data.get().len(),
            Shared::Emit { payload, .. } => payload.get().len(),
            Shared::Presence { presence, .. } => presence.get().len(),
            Shared::Call { args, .. } => json_weight(args),
            Shared::Joined(member) => member.weight(),
            Shared::Announce { members } => members.iter().map(MemberRecord::weight).sum(),
            Shared::Hello
            | Shared::Left { .. }
            | Shared::Subscribed { .. }
            | Shared::Unsubscribed { .. }
            | Shared::Created { .. }
            | Shared::Deleted { .. }
            | Shared::Ack { .. } => 0,
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
        record: Shared,
    },
    /// Redis's answer to a claim.
    Claimed {
        /// The connection identifying.
        conn: ConnId,
        /// Whether the name is now this node's.
        granted: bool,
    },
    /// A node stopped sending heartbeats: its members are gone.
    NodeGone {
        /// The node.
        node: String,
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
pub type Entries = Vec<(StreamId, DocumentEntry)>;

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
    /// What it did: a move or a write (a `sync` never goes through the
    /// stream).
    pub edit: super::Edit,
}

/// A record on the cluster bus. `conn` is always the publishing node's
/// own connection number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Shared {
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
        target: SharedTarget,
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

/// [`Target`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SharedTarget {
    /// By name.
    Name(String),
    /// By uuid.
    Uuid(String),
    /// A topic's subscribers.
    Topic(String),
    /// Every concierge client.
    All,
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
    pub kind: RecordKind,
    /// The topics it subscribes to.
    pub subscriptions: Vec<String>,
    /// The groups it owns, with their display names.
    pub owns: Vec<(String, Option<String>)>,
}

/// A member's dialect, on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RecordKind {
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

/// The methods whose calls other nodes replay: they tell other clients
/// something. The rest only read, or are the embedder's (which runs them
/// once, on the caller's node).
fn is_replicated_call(method: &str) -> bool {
    matches!(
        method,
        "room.enter" | "room.leave" | "room.send" | "user.update" | "hub.publish"
    )
}

impl Cluster {
    /// A node `node` with nothing to say yet.
    pub fn new(node: String) -> Cluster {
        Cluster {
            node,
            outgoing: Vec::new(),
            shadows: HashMap::new(),
            homes: HashMap::new(),
            next_shadow: SHADOW_BASE,
            claims: HashMap::new(),
            quiet: false,
            replay_event_id: None,
        }
    }
}

impl Router {
    /// The same hub, as node `node` of a cluster.
    pub fn with_cluster(self, node: String) -> Router {
        Router {
            cluster: Some(Cluster::new(node)),
            ..self
        }
    }

    /// What the Redis link is to do, in order; empty when not clustered.
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        self.cluster
            .as_mut()
            .map(|c| std::mem::take(&mut c.outgoing))
            .unwrap_or_default()
    }

    /// Whether edits to documents go through their streams.
    pub(super) fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Queues a record for the link.
    pub(super) fn tell_link(&mut self, item: Outgoing) {
        if let Some(cluster) = &mut self.cluster {
            cluster.outgoing.push(item);
        }
    }

    /// A subscription change other nodes hear of: not to `$sys`, whose
    /// snapshots each node makes for its own listeners.
    pub(super) fn share_subscription(&mut self, conn: ConnId, topic: &str, subscribed: bool) {
        if super::sys::is_reserved(topic) {
            return;
        }
        let topic = topic.to_string();
        self.share(conn, |conn| match subscribed {
            true => Shared::Subscribed { conn, topic },
            false => Shared::Unsubscribed { conn, topic },
        });
    }

    /// Publishes what local member `conn` did, unless it is a shadow (its
    /// own node published it) or a replicated call is running.
    pub(super) fn share(&mut self, conn: ConnId, record: impl FnOnce(u64) -> Shared) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if conn.is_shadow() || cluster.quiet {
            return;
        }
        cluster.outgoing.push(Outgoing::Publish(record(conn.0)));
    }

    /// Publishes a whole call of local member `conn` if others replay it,
    /// running `run` quietly (its side effects travel as the call).
    pub(super) fn share_call(
        &mut self,
        conn: ConnId,
        method: &str,
        args: &serde_json::Value,
        run: impl FnOnce(&mut Router) -> super::rpc::Outcome,
    ) -> super::rpc::Outcome {
        let replicated = is_replicated_call(method) && !conn.is_shadow();
        let was_quiet = match (&mut self.cluster, replicated) {
            (Some(cluster), true) => std::mem::replace(&mut cluster.quiet, true),
            _ => return run(self),
        };
        let result = run(self);
        if let Some(cluster) = &mut self.cluster {
            cluster.quiet = was_quiet;
        }
        if let Ok((answer, _)) = &result {
            let event_id = answer
                .get("eventID")
                .and_then(|id| id.as_str())
                .map(str::to_string);
            let (method, args) = (method.to_string(), args.clone());
            self.share(conn, |conn| Shared::Call {
                conn,
                method,
                args,
                event_id,
            });
        }
        result
    }

    /// The id for a new message: the replayed message's own, or a fresh one.
    pub(super) fn next_event_id(&mut self) -> Result<String, getrandom::Error> {
        match self.cluster.as_mut().and_then(|c| c.replay_event_id.take()) {
            Some(id) => Ok(id),
            None => super::publish::event_id(),
        }
    }

    /// Replays `run` with the message id it had on its own node.
    fn with_event_id<T>(&mut self, id: Option<String>, run: impl FnOnce(&mut Router) -> T) -> T {
        if let Some(cluster) = &mut self.cluster {
            cluster.replay_event_id = id;
        }
        let result = run(self);
        if let Some(cluster) = &mut self.cluster {
            cluster.replay_event_id = None;
        }
        result
    }

    /// Starts claiming `name` for `conn`, if clustered; `false` when the
    /// caller is to go on at once (a single node).
    pub(super) fn claim(
        &mut self,
        conn: ConnId,
        name: &str,
        nickname: &Option<String>,
        tags: &[String],
    ) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        let pending = PendingIdentity {
            name: name.to_string(),
            nickname: nickname.clone(),
            tags: tags.to_vec(),
        };
        cluster.claims.insert(conn, pending);
        cluster.outgoing.push(Outgoing::Claim {
            conn,
            name: name.to_string(),
        });
        true
    }

    /// A local member left: the others forget its shadow, and its name is
    /// free again.
    pub(super) fn share_leave(&mut self, conn: ConnId, member_name: &str, concierge: bool) {
        self.share(conn, |conn| Shared::Left { conn });
        if concierge && !conn.is_shadow() {
            let name = member_name.to_string();
            self.tell_link(Outgoing::Release { name });
        }
    }

    /// Forgets a claim whose connection is gone before Redis answered.
    pub(super) fn drop_claim(&mut self, conn: ConnId) {
        if let Some(cluster) = &mut self.cluster {
            cluster.claims.remove(&conn);
        }
    }

    /// A local member joined: the others make it a shadow.
    pub(super) fn share_join(&mut self, conn: ConnId) {
        if self.cluster.is_none() || conn.is_shadow() {
            return;
        }
        if let Some(record) = self.record(conn) {
            self.share(conn, |_| Shared::Joined(record));
        }
    }

    /// Applies what the Redis link reports.
    pub(super) fn cluster_event(&mut self, inbound: Inbound) -> Vec<Delivery> {
        match inbound {
            Inbound::Connected => {
                self.rejoin();
                Vec::new()
            }
            Inbound::Bus { from, record } => self.apply(from, record),
            Inbound::Claimed { conn, granted } => self.claimed(conn, granted),
            Inbound::NodeGone { node } => self.node_gone(&node),
            Inbound::DocumentBase {
                computer,
                text,
                id,
                entries,
            } => {
                let mut out = self.document_base(&computer, text, id);
                out.extend(self.document_entries(&computer, entries));
                out
            }
            Inbound::DocumentEntries { computer, entries } => {
                self.document_entries(&computer, entries)
            }
        }
    }

    /// After (re)connecting: hello, who is here, names and documents.
    fn rejoin(&mut self) {
        let members = self.local_records();
        let names: Vec<String> = self
            .local_members()
            .filter(|(_, m)| matches!(m.kind, Kind::Concierge))
            .map(|(_, m)| m.info.name.clone())
            .collect();
        self.tell_link(Outgoing::Publish(Shared::Hello));
        self.tell_link(Outgoing::Publish(Shared::Announce { members }));
        if !names.is_empty() {
            self.tell_link(Outgoing::Reclaim { names });
        }
        // Redis may have restarted empty: where each document stands.
        for (computer, text, id) in self.document_snapshots() {
            self.tell_link(Outgoing::Snapshot { computer, text, id });
        }
    }

    fn claimed(&mut self, conn: ConnId, granted: bool) -> Vec<Delivery> {
        let Some(pending) = self.cluster.as_mut().and_then(|c| c.claims.remove(&conn)) else {
            return Vec::new();
        };
        let waiting = matches!(self.conns.get(&conn), Some(Conn::Unidentified { .. }));
        let free_here = !self.names.contains_key(&pending.name);
        match (waiting, granted && free_here) {
            (true, true) => {
                self.admit_concierge(conn, pending.name, pending.nickname, pending.tags)
            }
            (true, false) => {
                if granted {
                    self.tell_link(Outgoing::Release {
                        name: pending.name.clone(),
                    });
                }
                self.evict(conn, Disconnect::NameTaken(pending.name))
            }
            (false, _) => {
                if granted {
                    self.tell_link(Outgoing::Release { name: pending.name });
                }
                Vec::new()
            }
        }
    }

    /// Applies another node's record to its shadows.
    fn apply(&mut self, from: String, record: Shared) -> Vec<Delivery> {
        let now = self.now;
        match record {
            Shared::Hello => {
                let members = self.local_records();
                self.tell_link(Outgoing::Publish(Shared::Announce { members }));
                Vec::new()
            }
            Shared::Announce { members } => self.announced(&from, members),
            Shared::Joined(record) => self.admit_shadow(&from, record),
            Shared::Left { conn } => match self.shadow(&from, conn) {
                Some(shadow) => self.forget_shadow(shadow),
                None => Vec::new(),
            },
            Shared::Subscribed { conn, topic } => self
                .shadow(&from, conn)
                .map(|s| self.join_topic(s, &topic))
                .unwrap_or_default(),
            Shared::Unsubscribed { conn, topic } => self
                .shadow(&from, conn)
                .map(|s| self.leave_topic(s, &topic))
                .unwrap_or_default(),
            Shared::Created {
                conn,
                topic,
                nickname,
            } => self.shadow_creates(&from, conn, topic, nickname),
            Shared::Deleted { conn, topic } => match self.shadow(&from, conn) {
                Some(shadow) => self.delete(shadow, 0, topic).unwrap_or_default(),
                None => Vec::new(),
            },
            Shared::Presence { conn, presence } => match self.shadow(&from, conn) {
                Some(shadow) => self.update_presence(shadow, presence),
                None => Vec::new(),
            },
            Shared::Send {
                conn,
                target,
                data,
                event_id,
            } => self.with_event_id(Some(event_id), |r| {
                r.shadow_sends(&from, conn, target, data)
            }),
            Shared::Emit {
                topic,
                payload,
                event_id,
                to,
                require_ack,
            } => self.remote_emit(topic, payload, event_id, to, require_ack),
            Shared::Ack { conn, event_id } => {
                if let Some(shadow) = self.shadow(&from, conn) {
                    self.ack(shadow, &event_id);
                }
                Vec::new()
            }
            Shared::Call {
                conn,
                method,
                args,
                event_id,
            } => match self.shadow(&from, conn) {
                Some(shadow) => {
                    self.with_event_id(event_id, |r| r.call(shadow, &method, &args, None, now))
                }
                None => Vec::new(),
            },
        }
    }

    fn shadow(&self, node: &str, conn: u64) -> Option<ConnId> {
        let cluster = self.cluster.as_ref()?;
        cluster.shadows.get(&(node.to_string(), conn)).copied()
    }

    /// Makes `record` (a member of `node`) a shadow here, with its
    /// subscriptions and groups; local clients hear of it as of any member.
    fn admit_shadow(&mut self, node: &str, record: MemberRecord) -> Vec<Delivery> {
        if let Some(shadow) = self.shadow(node, record.conn) {
            return self.reconcile(shadow, record);
        }
        let Some(cluster) = &mut self.cluster else {
            return Vec::new();
        };
        let shadow = ConnId(cluster.next_shadow);
        cluster.next_shadow += 1;
        cluster
            .shadows
            .insert((node.to_string(), record.conn), shadow);
        cluster
            .homes
            .insert(shadow, (node.to_string(), record.conn));
        let Some(uuid) = Uuid::parse(&record.uuid) else {
            return Vec::new(); // from a node of another make: ignore it
        };
        let info = ClientInfo {
            name: record.name.clone(),
            nickname: record.nickname.clone(),
            uuid,
            tags: record.tags.clone(),
        };
        let kind = shadow_kind(&record.kind, self.now);
        let joined_document = match &kind {
            Kind::Blazing(editor) => Some((editor.computer.clone(), editor.user.clone())),
            _ => None,
        };
        self.admit(shadow, info, record.presence.clone().into(), kind);
        let mut out = Vec::new();
        if let Some((computer, user)) = joined_document {
            out.extend(self.shadow_joins_document(&computer, user));
        }
        out.extend(self.reconcile(shadow, record));
        out
    }

    /// Brings a shadow's groups, subscriptions and presence to what its
    /// node says.
    fn reconcile(&mut self, shadow: ConnId, record: MemberRecord) -> Vec<Delivery> {
        let mut out = Vec::new();
        for (topic, nickname) in record.owns {
            out.extend(self.create_for_shadow(shadow, topic, nickname));
        }
        let now: BTreeSet<String> = record.subscriptions.into_iter().collect();
        let before: BTreeSet<String> = self
            .member(shadow)
            .map(|m| m.subscriptions.clone())
            .unwrap_or_default();
        for topic in before.difference(&now) {
            out.extend(self.leave_topic(shadow, topic));
        }
        for topic in now.difference(&before) {
            out.extend(self.join_topic(shadow, topic));
        }
        let changed = self
            .member(shadow)
            .is_some_and(|m| m.presence.get() != record.presence.get());
        if changed {
            out.extend(self.update_presence(shadow, record.presence));
        }
        out
    }

    /// A node's full list of members: shadows it no longer lists go.
    fn announced(&mut self, node: &str, members: Vec<MemberRecord>) -> Vec<Delivery> {
        let listed: BTreeSet<u64> = members.iter().map(|m| m.conn).collect();
        let stale: Vec<ConnId> = self.shadows_of(node, |conn| !listed.contains(&conn));
        let mut out: Vec<Delivery> = stale
            .into_iter()
            .flat_map(|shadow| self.forget_shadow(shadow))
            .collect();
        for record in members {
            out.extend(self.admit_shadow(node, record));
        }
        out
    }

    fn node_gone(&mut self, node: &str) -> Vec<Delivery> {
        let shadows = self.shadows_of(node, |_| true);
        shadows
            .into_iter()
            .flat_map(|shadow| self.forget_shadow(shadow))
            .collect()
    }

    /// `node`'s shadows whose connection number passes `keep`.
    fn shadows_of(&self, node: &str, keep: impl Fn(u64) -> bool) -> Vec<ConnId> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let mut shadows: Vec<ConnId> = cluster
            .shadows
            .iter()
            .filter(|((home, conn), _)| home == node && keep(*conn))
            .map(|(_, &shadow)| shadow)
            .collect();
        shadows.sort();
        shadows
    }

    fn forget_shadow(&mut self, shadow: ConnId) -> Vec<Delivery> {
        if let Some(cluster) = &mut self.cluster {
            if let Some(home) = cluster.homes.remove(&shadow) {
                cluster.shadows.remove(&home);
            }
        }
        self.forget(shadow)
    }

    fn shadow_creates(
        &mut self,
        node: &str,
        conn: u64,
        topic: String,
        nickname: Option<String>,
    ) -> Vec<Delivery> {
        match self.shadow(node, conn) {
            Some(shadow) => self.create_for_shadow(shadow, topic, nickname),
            None => Vec::new(),
        }
    }

    /// A shadow's group: created here as it was there (a group another
    /// member here created meanwhile stays that member's).
    fn create_for_shadow(
        &mut self,
        shadow: ConnId,
        topic: String,
        nickname: Option<String>,
    ) -> Vec<Delivery> {
        let Some(info) = self.member(shadow).map(|m| m.info.clone()) else {
            return Vec::new();
        };
        let owned = self
            .topics
            .get(&topic)
            .and_then(|t| t.owner)
            .is_some_and(|o| o.conn == shadow);
        if owned {
            return Vec::new();
        }
        self.create(shadow, 0, &info, topic, nickname)
            .unwrap_or_default()
    }

    fn shadow_sends(
        &mut self,
        node: &str,
        conn: u64,
        target: SharedTarget,
        data: Box<RawValue>,
    ) -> Vec<Delivery> {
        let Some(shadow) = self.shadow(node, conn) else {
            return Vec::new();
        };
        let Some(info) = self.member(shadow).map(|m| m.info.clone()) else {
            return Vec::new();
        };
        let target = match target {
            SharedTarget::Name(name) => Target::Name(name),
            SharedTarget::Uuid(uuid) => Target::Uuid(uuid),
            SharedTarget::Topic(topic) => Target::Topic(topic),
            SharedTarget::All => Target::All,
        };
        // Errors (no such name here) are the sender's node's to report.
        self.send(shadow, 0, info, target, data).unwrap_or_default()
    }

    /// Another node's emit, for this node's subscribers of the topic (or
    /// those of them it chose).
    fn remote_emit(
        &mut self,
        topic: String,
        payload: Box<RawValue>,
        event_id: String,
        chosen: Option<Vec<String>>,
        require_ack: bool,
    ) -> Vec<Delivery> {
        let Some(subscribers) = self.topics.get(&topic).map(|t| t.subscribers.clone()) else {
            return Vec::new();
        };
        let to: Vec<ConnId> = subscribers
            .into_iter()
            .filter(|c| !c.is_shadow())
            .filter(|&c| match &chosen {
                None => true,
                Some(names) => self.member(c).is_some_and(|m| names.contains(&m.info.name)),
            })
            .collect();
        let message = Message {
            origin: Origin::Http,
            event_id,
            requires_ack: require_ack,
            target: Target::Topic(topic.clone()),
            topic: self.topics.get(&topic).map(|t| self.topic_info(&topic, t)),
            data: payload,
        };
        vec![Delivery {
            to,
            event: Event::Message(Arc::new(message)),
        }]
    }

    /// A local emit: the other nodes deliver it to their subscribers (all
    /// of them, or the `targeted` client ids).
    pub(super) fn share_emit(
        &mut self,
        topic: &str,
        payload: &RawValue,
        event_id: &str,
        targets: &Targets,
        require_ack: bool,
        targeted: &[String],
    ) {
        if self.cluster.is_none() {
            return;
        }
        let Ok(payload) = RawValue::from_string(payload.get().to_string()) else {
            return; // it was valid JSON when it arrived
        };
        let record = Shared::Emit {
            topic: topic.to_string(),
            payload,
            event_id: event_id.to_string(),
            to: match targets {
                Targets::All => None,
                Targets::Random(_) | Targets::Named(_) => Some(targeted.to_vec()),
            },
            require_ack,
        };
        self.tell_link(Outgoing::Publish(record));
    }

    /// Every local member, as records.
    fn local_records(&self) -> Vec<MemberRecord> {
        let mut conns: Vec<ConnId> = self.local_members().map(|(c, _)| c).collect();
        conns.sort();
        conns.into_iter().filter_map(|c| self.record(c)).collect()
    }

    fn local_members(&self) -> impl Iterator<Item = (ConnId, &Member)> + '_ {
        self.conns.iter().filter_map(|(&conn, state)| match state {
            Conn::Member(member) if !conn.is_shadow() => Some((conn, member)),
            _ => None,
        })
    }

    /// A local member as other nodes learn of it.
    fn record(&self, conn: ConnId) -> Option<MemberRecord> {
        let member = self.member(conn)?;
        let kind = match &member.kind {
            Kind::Concierge => RecordKind::Concierge,
            Kind::Channels(_) => RecordKind::Channels,
            Kind::Common { .. } => RecordKind::Common,
            Kind::World(user) => RecordKind::World {
                world: user.world.clone(),
                user: user.user.clone(),
                display: user.display.clone(),
            },
            Kind::Blazing(editor) => RecordKind::Blazing {
                computer: editor.computer.clone(),
                user: editor.user.clone(),
            },
        };
        let owns = self
            .topics
            .iter()
            .filter(|(_, t)| t.owner.is_some_and(|o| o.conn == conn))
            .map(|(name, t)| (name.clone(), t.nickname.clone()))
            .collect();
        Some(MemberRecord {
            conn: conn.0,
            name: member.info.name.clone(),
            nickname: member.info.nickname.clone(),
            uuid: member.info.uuid.to_string(),
            tags: member.info.tags.clone(),
            presence: RawValue::from_string(member.presence.get().to_string()).ok()?,
            kind,
            subscriptions: member
                .subscriptions
                .iter()
                .filter(|topic| !super::sys::is_reserved(topic))
                .cloned()
                .collect(),
            owns,
        })
    }

    /// This node's id, when clustered.
    pub(super) fn node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node.as_str())
    }

    /// Whether an ACK for `event_id` is for an emit of another node.
    pub(super) fn share_ack(&mut self, conn: ConnId, event_id: &str) {
        if !self.acks.contains_key(event_id) {
            let event_id = event_id.to_string();
            self.share(conn, |conn| Shared::Ack { conn, event_id });
        }
    }

    /// A shadow's document user joined: its cursor is shown here, and
    /// local editors see `usrupd`.
    fn shadow_joins_document(&mut self, computer: &str, user: String) -> Vec<Delivery> {
        let Some(editors) = self.documents.get_mut(computer).map(|d| {
            d.remote_joined(&user);
            d.editors().collect::<Vec<_>>()
        }) else {
            return Vec::new();
        };
        if self.user_in_room(computer, &user) {
            return Vec::new();
        }
        let joined = DocumentEvent::UserUpdate {
            actioner: user,
            joined: true,
        };
        vec![Delivery {
            to: editors,
            event: Event::Document(joined),
        }]
    }
}

/// A shadow's dialect part: no timers, no liveness of its own (its node
/// keeps those).
fn shadow_kind(kind: &RecordKind, now: std::time::Instant) -> Kind {
    match kind {
        RecordKind::Concierge => Kind::Concierge,
        RecordKind::Channels => Kind::Channels(Liveness {
            latency_ms: 0,
            ping_sent: None,
        }),
        RecordKind::Common => Kind::Common { heartbeat_due: now },
        RecordKind::World {
            world,
            user,
            display,
        } => Kind::World(WorldUser {
            world: world.clone(),
            user: user.clone(),
            display: display.clone(),
            since: 0,
        }),
        RecordKind::Blazing { computer, user } => Kind::Blazing(Editor {
            computer: computer.clone(),
            user: user.clone(),
            cursor: Default::default(),
            joined: now,
            token_left: std::time::Duration::ZERO,
            expires: None,
        }),
    }
}

/// [`Target`] on the wire.
pub(super) fn shared_target(target: &Target) -> SharedTarget {
    match target {
        Target::Name(name) => SharedTarget::Name(name.clone()),
        Target::Uuid(uuid) => SharedTarget::Uuid(uuid.clone()),
        Target::Topic(topic) => SharedTarget::Topic(topic.clone()),
        Target::All => SharedTarget::All,
    }
}
