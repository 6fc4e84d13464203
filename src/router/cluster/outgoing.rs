//! This node's part in a cluster, and what it tells the others: the
//! records its members' doings become, in order, for the Redis link; the
//! periodic announcement; replicated calls (module docs in `mod.rs`).
//! Claims are in `claims.rs`, the other nodes' members in `shadows.rs`.

use std::collections::HashMap;
use std::time::Instant;

use super::{Claimable, KindRecord, MemberRecord, Outgoing, Record, SHADOW_BASE};
use crate::router::member::{Kind, Member};
use crate::router::{Conn, ConnId, Delivery, Router};

use super::claims::Pending;

/// This node's part in a cluster.
#[derive(Debug)]
pub struct Cluster {
    /// This node's id (random, per process).
    pub(super) node: String,
    /// Records for the Redis link, in the order they arose.
    pub(super) outgoing: Vec<Outgoing>,
    /// Shadows by (node, that node's connection number).
    pub(super) shadows: HashMap<(String, u64), ConnId>,
    /// The other way round.
    pub(super) homes: HashMap<ConnId, (String, u64)>,
    pub(super) next_shadow: u64,
    /// Claims waiting for Redis's answer, one per connection at most (its
    /// later frames wait with it).
    pub(super) claims: HashMap<ConnId, Pending>,
    /// Set while a replicated call runs, so that what it does on the way
    /// (joining a room, a new profile) is not replicated a second time.
    pub(super) quiet: bool,
    /// The event id the message being replayed had on its own node, for
    /// the replay to use: recipients on every node see the same id.
    pub(super) replay_event_id: Option<String>,
    /// Set once the node is shutting down: it announces nobody any more.
    pub(super) leaving: bool,
    /// Whether the next periodic announcement is scheduled.
    pub(super) announcing: bool,
    /// When each other node's latest record arrived.
    pub(super) heard: HashMap<String, Instant>,
    /// Document edits this node has sent to streams so far.
    pub(super) edits: u64,
}

/// How often a node announces its members unasked. Records are delivered
/// at most once: one lost while Redis was away for this node's writer or
/// another's bus is mended by the next announcement at the latest.
pub const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

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
            leaving: false,
            announcing: false,
            heard: HashMap::new(),
            edits: 0,
        }
    }
}

impl Router {
    /// The same hub, as node `node` of a cluster.
    #[must_use]
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
    pub(in crate::router) fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// Queues a record for the link.
    pub(in crate::router) fn tell_link(&mut self, item: Outgoing) {
        if let Some(cluster) = &mut self.cluster {
            cluster.outgoing.push(item);
        }
    }

    /// A subscription change other nodes hear of: not to `$sys`, whose
    /// snapshots each node makes for its own listeners.
    pub(in crate::router) fn share_subscription(
        &mut self,
        conn: ConnId,
        topic: &str,
        subscribed: bool,
    ) {
        if crate::router::sys::is_reserved(topic) {
            return;
        }
        let topic = topic.to_string();
        self.share(conn, |conn| match subscribed {
            true => Record::Subscribed { conn, topic },
            false => Record::Unsubscribed { conn, topic },
        });
    }

    /// Publishes what local member `conn` did, unless it is a shadow (its
    /// own node published it) or a replicated call is running.
    pub(in crate::router) fn share(&mut self, conn: ConnId, record: impl FnOnce(u64) -> Record) {
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
    pub(in crate::router) fn share_call(
        &mut self,
        conn: ConnId,
        method: &str,
        args: &serde_json::Value,
        run: impl FnOnce(&mut Router) -> crate::router::calls::Outcome,
    ) -> crate::router::calls::Outcome {
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
            self.share(conn, |conn| Record::Call {
                conn,
                method,
                args,
                event_id,
            });
        }
        result
    }

    /// The id for a new message: the replayed message's own, or a fresh one.
    pub(in crate::router) fn next_event_id(&mut self) -> Result<String, getrandom::Error> {
        match self.cluster.as_mut().and_then(|c| c.replay_event_id.take()) {
            Some(id) => Ok(id),
            None => crate::router::publish::event_id(),
        }
    }

    /// Replays `run` with the message id it had on its own node.
    pub(super) fn with_event_id<T>(
        &mut self,
        id: Option<String>,
        run: impl FnOnce(&mut Router) -> T,
    ) -> T {
        if let Some(cluster) = &mut self.cluster {
            cluster.replay_event_id = id;
        }
        let result = run(self);
        if let Some(cluster) = &mut self.cluster {
            cluster.replay_event_id = None;
        }
        result
    }

    /// A group owned by `owner` is gone: if the owner is this node's, the
    /// group's name is free again.
    pub(in crate::router) fn release_group(&mut self, owner: ConnId, topic: &str) {
        if self.cluster.is_some() && !owner.is_shadow() {
            let claim = Claimable::Group(topic.to_string());
            self.tell_link(Outgoing::Release { claim });
        }
    }

    /// A local member left: the others forget its shadow, and its name is
    /// free again.
    pub(in crate::router) fn share_leave(
        &mut self,
        conn: ConnId,
        member_name: &str,
        concierge: bool,
    ) {
        self.share(conn, |conn| Record::Left { conn });
        if concierge && !conn.is_shadow() {
            let claim = Claimable::Name(member_name.to_string());
            self.tell_link(Outgoing::Release { claim });
        }
    }

    /// The periodic announcement is due: it goes out, and the next one is
    /// scheduled.
    pub(in crate::router) fn announce_round(&mut self, now: std::time::Instant) -> Vec<Delivery> {
        if let Some(cluster) = &mut self.cluster {
            cluster.announcing = false;
        }
        self.announce();
        self.schedule_announcements(now);
        Vec::new()
    }

    /// Announces this node's members, unless it is shutting down.
    pub(super) fn announce(&mut self) {
        if !self.cluster.as_ref().is_some_and(|c| c.leaving) {
            let members = self.local_records();
            self.tell_link(Outgoing::Publish(Record::Announce { members }));
        }
    }

    /// Schedules the next periodic announcement, unless one is scheduled
    /// or the node is shutting down.
    pub(super) fn schedule_announcements(&mut self, now: std::time::Instant) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        if !cluster.announcing && !cluster.leaving {
            cluster.announcing = true;
            self.timers
                .set(now + ANNOUNCE_EVERY, crate::router::Timer::Announce);
        }
    }

    /// The node is shutting down: the others forget its members at once
    /// (an empty announcement), and it no longer announces any.
    pub(in crate::router) fn leave_cluster(&mut self) {
        let members = Vec::new();
        self.tell_link(Outgoing::Publish(Record::Announce { members }));
        if let Some(cluster) = &mut self.cluster {
            cluster.leaving = true;
        }
    }

    /// A new command or timer: whatever a failed step left half done (a
    /// panic inside a replicated call, caught by the router thread) is
    /// undone, so that it cannot silence this node's records for good.
    pub(in crate::router) fn begin_step(&mut self) {
        if let Some(cluster) = &mut self.cluster {
            cluster.quiet = false;
            cluster.replay_event_id = None;
        }
    }

    /// This node's next edit number, for a document stream entry.
    pub(in crate::router) fn next_edit_seq(&mut self) -> u64 {
        match &mut self.cluster {
            Some(cluster) => {
                cluster.edits += 1;
                cluster.edits
            }
            None => 0,
        }
    }

    /// A local member joined: the others make it a shadow.
    pub(in crate::router) fn share_join(&mut self, conn: ConnId) {
        if self.cluster.is_none() || conn.is_shadow() {
            return;
        }
        if let Some(record) = self.record(conn) {
            self.share(conn, |_| Record::Joined(record));
        }
    }

    /// Every local member, as records.
    pub(super) fn local_records(&self) -> Vec<MemberRecord> {
        let mut conns: Vec<ConnId> = self.local_members().map(|(c, _)| c).collect();
        conns.sort();
        conns.into_iter().filter_map(|c| self.record(c)).collect()
    }

    pub(super) fn local_members(&self) -> impl Iterator<Item = (ConnId, &Member)> + '_ {
        self.conns.iter().filter_map(|(&conn, state)| match state {
            Conn::Member(member) if !conn.is_shadow() => Some((conn, member)),
            _ => None,
        })
    }

    /// A local member as other nodes learn of it.
    pub(super) fn record(&self, conn: ConnId) -> Option<MemberRecord> {
        let member = self.member(conn)?;
        let kind = match &member.kind {
            Kind::Concierge => KindRecord::Concierge,
            Kind::Channels(_) => KindRecord::Channels,
            Kind::Common { .. } => KindRecord::Common,
            Kind::World(user) => KindRecord::World {
                world: user.world.clone(),
                user: user.user.clone(),
                display: user.display.clone(),
            },
            Kind::Blazing(editor) => KindRecord::Blazing {
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
            presence: member.presence().as_ref().to_owned(),
            kind,
            subscriptions: member
                .subscriptions
                .iter()
                .filter(|topic| !crate::router::sys::is_reserved(topic))
                .cloned()
                .collect(),
            owns,
        })
    }
}
