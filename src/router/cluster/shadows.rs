//! The shadows of other nodes' members, and the records this node
//! publishes for the others: the cluster's logic on the router's side
//! (module docs in `mod.rs`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use super::{Claimable, Inbound, KindRecord, MemberRecord, Outgoing, Record, SHADOW_BASE};
use crate::id::Uuid;
use crate::router::member::{Editor, Kind, Liveness, Member, WorldUser};
use crate::router::{
    ClientInfo, Command, Conn, ConnId, Delivery, Disconnect, DocumentEvent, Event, Message, Origin,
    RequestError, Router, Target, Targets,
};

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
    /// Claims waiting for Redis's answer, one per connection at most (its
    /// later frames wait with it).
    claims: HashMap<ConnId, Pending>,
    /// Set while a replicated call runs, so that what it does on the way
    /// (joining a room, a new profile) is not replicated a second time.
    quiet: bool,
    /// The event id the message being replayed had on its own node, for
    /// the replay to use: recipients on every node see the same id.
    replay_event_id: Option<String>,
    /// Set once the node is shutting down: it announces nobody any more.
    leaving: bool,
    /// Whether the next periodic announcement is scheduled.
    announcing: bool,
    /// When each other node's latest record arrived.
    heard: HashMap<String, Instant>,
    /// Document edits this node has sent to streams so far.
    edits: u64,
}

/// How often a node announces its members unasked. Records are delivered
/// at most once: one lost while Redis was away for this node's writer or
/// another's bus is mended by the next announcement at the latest.
pub const ANNOUNCE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// A claim waiting for Redis's answer.
#[derive(Debug)]
struct Pending {
    /// What the client asked for.
    request: Claiming,
    /// The client's frames after it, held until the answer, then handled
    /// in order: as on one node, where they follow the HELLO (or the
    /// group's creation).
    held: Vec<Command>,
}

/// What a pending claim is for.
#[derive(Debug)]
enum Claiming {
    /// An IDENTIFY.
    Name {
        name: String,
        nickname: Option<String>,
        tags: Vec<String>,
    },
    /// A GROUP_CREATE, in the frame numbered `seq`.
    Group {
        seq: crate::router::Seq,
        topic: String,
        nickname: Option<String>,
    },
}

/// Frames a client may send after IDENTIFY (or GROUP_CREATE) before
/// Redis answers the claim; more are refused as too fast.
const MAX_HELD: usize = 256;

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
    pub(in crate::router) fn claim(
        &mut self,
        conn: ConnId,
        name: &str,
        nickname: &Option<String>,
        tags: &[String],
    ) -> bool {
        let Some(cluster) = &mut self.cluster else {
            return false;
        };
        let request = Claiming::Name {
            name: name.to_string(),
            nickname: nickname.clone(),
            tags: tags.to_vec(),
        };
        let held = Vec::new();
        cluster.claims.insert(conn, Pending { request, held });
        let claim = Claimable::Name(name.to_string());
        cluster.outgoing.push(Outgoing::Claim { conn, claim });
        true
    }

    /// Starts claiming group `topic` for member `conn`'s GROUP_CREATE
    /// (frame `seq`), if clustered and nobody here owns it: the member's
    /// later frames wait for the answer. `None` when the caller is to go
    /// on as on one node; a refusal when another member of this node is
    /// claiming the group.
    pub(in crate::router) fn claim_group(
        &mut self,
        conn: ConnId,
        seq: crate::router::Seq,
        topic: &str,
        nickname: &Option<String>,
    ) -> Option<Result<Vec<Delivery>, RequestError>> {
        let owned = self.topics.get(topic).is_some_and(|t| t.owner.is_some());
        let cluster = self.cluster.as_mut()?;
        if owned || conn.is_shadow() {
            return None; // refused (or replayed) as on one node
        }
        // Another member of this node claims it already: Redis would grant
        // the node the same group twice.
        let claimed_here = cluster
            .claims
            .values()
            .any(|p| matches!(&p.request, Claiming::Group { topic: t, .. } if t == topic));
        if claimed_here {
            return Some(Err(RequestError::TopicExists(self.known_group(topic))));
        }
        let request = Claiming::Group {
            seq,
            topic: topic.to_string(),
            nickname: nickname.clone(),
        };
        let held = Vec::new();
        cluster.claims.insert(conn, Pending { request, held });
        let claim = Claimable::Group(topic.to_string());
        cluster.outgoing.push(Outgoing::Claim { conn, claim });
        Some(Ok(Vec::new()))
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
    fn announce(&mut self) {
        if !self.cluster.as_ref().is_some_and(|c| c.leaving) {
            let members = self.local_records();
            self.tell_link(Outgoing::Publish(Record::Announce { members }));
        }
    }

    /// Schedules the next periodic announcement, unless one is scheduled
    /// or the node is shutting down.
    fn schedule_announcements(&mut self, now: std::time::Instant) {
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

    /// A client's frame that arrives while its name is being claimed waits
    /// for the answer: `Err` with what to tell the client now (nothing, or
    /// a refusal past [`MAX_HELD`]). Any other command goes on (`Ok`).
    pub(in crate::router) fn hold_while_claiming(
        &mut self,
        command: Command,
    ) -> Result<Command, Vec<Delivery>> {
        let (conn, seq) = match &command {
            Command::Request { conn, seq, .. } => (*conn, Some(*seq)),
            Command::Reject { conn, .. } => (*conn, None),
            _ => return Ok(command),
        };
        let pending = self.cluster.as_mut().and_then(|c| c.claims.get_mut(&conn));
        let Some(Pending { held, .. }) = pending else {
            return Ok(command);
        };
        if held.len() < MAX_HELD {
            held.push(command);
            return Err(Vec::new());
        }
        let error = crate::router::RequestError::RateLimited;
        Err(vec![Delivery::one(conn, Event::Refused { seq, error })])
    }

    /// Whether a connection of this node is claiming `name` now.
    pub(in crate::router) fn claiming(&self, name: &str) -> bool {
        self.cluster.as_ref().is_some_and(|c| {
            c.claims
                .values()
                .any(|p| matches!(&p.request, Claiming::Name { name: n, .. } if n == name))
        })
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

    /// Applies what the Redis link reports.
    pub(in crate::router) fn cluster_event(&mut self, inbound: Inbound) -> Vec<Delivery> {
        match inbound {
            Inbound::Connected => {
                self.rejoin();
                Vec::new()
            }
            Inbound::Bus {
                from,
                record,
                received,
            } => {
                if let Some(cluster) = &mut self.cluster {
                    let heard = cluster.heard.entry(from.clone()).or_insert(received);
                    *heard = (*heard).max(received);
                }
                self.apply(from, record)
            }
            Inbound::Claimed { conn, granted } => self.claimed(conn, granted),
            Inbound::LiveNodes { nodes, checked } => self.live_nodes(&nodes, checked),
            Inbound::DocumentBase {
                computer,
                text,
                id,
                count,
                entries,
            } => {
                let mut out = self.document_base(&computer, text, id, count);
                out.extend(self.document_entries(&computer, entries, true));
                out
            }
            Inbound::DocumentEntries { computer, entries } => {
                self.document_entries(&computer, entries, false)
            }
        }
    }

    /// After (re)connecting: hello, who is here, names and documents.
    fn rejoin(&mut self) {
        let names = self
            .local_members()
            .filter(|(_, m)| matches!(m.kind, Kind::Concierge))
            .map(|(_, m)| Claimable::Name(m.info.name.clone()));
        let groups = self
            .topics
            .iter()
            .filter(|(_, t)| t.owner.is_some_and(|o| !o.conn.is_shadow()))
            .map(|(name, _)| Claimable::Group(name.clone()));
        let claims: Vec<Claimable> = names.chain(groups).collect();
        self.tell_link(Outgoing::Publish(Record::Hello));
        self.announce();
        if !claims.is_empty() {
            self.tell_link(Outgoing::Reclaim { claims });
        }
        // Redis may have restarted empty: where each document stands.
        for (computer, text, id, count) in self.document_snapshots() {
            self.tell_link(Outgoing::Snapshot {
                computer,
                text,
                id,
                count,
            });
        }
        self.schedule_announcements(self.now);
    }

    /// Redis's answer to a claim: the name or group is taken up or
    /// refused, then the frames that waited are handled if the client is
    /// (still) a member. A claim stays pending until its answer comes,
    /// even if its connection has gone: a late grant is then given back
    /// rather than held for as long as this node lives.
    fn claimed(&mut self, conn: ConnId, granted: bool) -> Vec<Delivery> {
        let pending = self.cluster.as_mut().and_then(|c| c.claims.remove(&conn));
        let Some(Pending { request, held }) = pending else {
            return Vec::new();
        };
        let mut out = match request {
            Claiming::Name {
                name,
                nickname,
                tags,
            } => self.claimed_name(conn, granted, name, nickname, tags),
            Claiming::Group {
                seq,
                topic,
                nickname,
            } => self.claimed_group(conn, granted, seq, topic, nickname),
        };
        if self.member(conn).is_some() {
            for command in held {
                out.extend(self.handle(command, self.now));
            }
        }
        out
    }

    /// A GROUP_CREATE's claim answered: the group is created as on one
    /// node, or refused as existing.
    fn claimed_group(
        &mut self,
        conn: ConnId,
        granted: bool,
        seq: crate::router::Seq,
        topic: String,
        nickname: Option<String>,
    ) -> Vec<Delivery> {
        let Some(creator) = self.member(conn).map(|m| m.info.clone()) else {
            if granted {
                self.give_group_back(&topic); // its creator left meanwhile
            }
            return Vec::new();
        };
        let created = match granted {
            true => self.create(conn, seq, &creator, topic.clone(), nickname),
            false => Err(RequestError::TopicExists(self.known_group(&topic))),
        };
        created.unwrap_or_else(|error| {
            if granted {
                self.give_group_back(&topic);
            }
            let seq = Some(seq);
            vec![Delivery::one(conn, Event::Refused { seq, error })]
        })
    }

    /// A group granted but not created: its name goes back, unless a
    /// member of this node owns it (Redis grants a node its own again).
    fn give_group_back(&mut self, topic: &str) {
        let owner = self.topics.get(topic).and_then(|t| t.owner);
        if owner.is_none_or(|o| o.conn.is_shadow()) {
            let claim = Claimable::Group(topic.to_string());
            self.tell_link(Outgoing::Release { claim });
        }
    }

    /// A group as this node knows it; by name alone if another node's
    /// record of it has not arrived yet.
    fn known_group(&self, name: &str) -> crate::router::TopicInfo {
        match self.topics.get(name) {
            Some(topic) => self.topic_info(name, topic),
            None => crate::router::TopicInfo {
                name: name.to_string(),
                nickname: None,
                owner: None,
                subscribers: Vec::new(),
            },
        }
    }

    /// An IDENTIFY's claim answered: the client becomes a member, or is
    /// told the name is taken.
    fn claimed_name(
        &mut self,
        conn: ConnId,
        granted: bool,
        name: String,
        nickname: Option<String>,
        tags: Vec<String>,
    ) -> Vec<Delivery> {
        let waiting = matches!(self.conns.get(&conn), Some(Conn::Unidentified { .. }));
        let holder = self.names.get(&name).copied();
        if waiting && granted && holder.is_none() {
            return self.admit_concierge(conn, name, nickname, tags);
        }
        // Granted but not used: give it back, unless a member of this node
        // holds it (Redis grants a node's own name again).
        if granted && holder.is_none_or(ConnId::is_shadow) {
            let claim = Claimable::Name(name.clone());
            self.tell_link(Outgoing::Release { claim });
        }
        match waiting {
            true => self.evict(conn, Disconnect::NameTaken(name)),
            false => Vec::new(),
        }
    }

    /// Applies another node's record to its shadows.
    fn apply(&mut self, from: String, record: Record) -> Vec<Delivery> {
        let now = self.now;
        match record {
            Record::Hello => {
                self.announce();
                Vec::new()
            }
            Record::Announce { members } => self.announced(&from, members),
            Record::Joined(record) => self.admit_shadow(&from, record),
            Record::Left { conn } => match self.shadow(&from, conn) {
                Some(shadow) => self.forget_shadow(shadow),
                None => Vec::new(),
            },
            Record::Subscribed { conn, topic } => self
                .shadow(&from, conn)
                .map(|s| self.join_topic(s, &topic))
                .unwrap_or_default(),
            Record::Unsubscribed { conn, topic } => self
                .shadow(&from, conn)
                .map(|s| self.leave_topic(s, &topic))
                .unwrap_or_default(),
            Record::Created {
                conn,
                topic,
                nickname,
            } => match self.shadow(&from, conn) {
                Some(shadow) => self.create_for_shadow(shadow, topic, nickname),
                None => Vec::new(),
            },
            Record::Deleted { conn, topic } => match self.shadow(&from, conn) {
                Some(shadow) => self.delete(shadow, 0, topic).unwrap_or_default(),
                None => Vec::new(),
            },
            Record::Presence { conn, presence } => match self.shadow(&from, conn) {
                // Its own node told the member itself, if it asked.
                Some(shadow) => self.update_presence(shadow, presence, false),
                None => Vec::new(),
            },
            Record::Send {
                conn,
                target,
                data,
                event_id,
            } => self.with_event_id(Some(event_id), |r| {
                r.shadow_sends(&from, conn, target, data)
            }),
            Record::Emit {
                topic,
                payload,
                event_id,
                to,
                require_ack,
            } => self.remote_emit(topic, payload, event_id, to, require_ack),
            Record::Ack { conn, event_id } => {
                if let Some(shadow) = self.shadow(&from, conn) {
                    self.ack(shadow, &event_id);
                }
                Vec::new()
            }
            Record::Call {
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
        let Some(uuid) = Uuid::parse(&record.uuid) else {
            return Vec::new(); // from a node of another make: ignore it
        };
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
        // Its own node checked what it may reach (the one access rule, asked
        // there); replayed calls and subscriptions here take its word.
        let grant = crate::router::Grant::service();
        self.admit(shadow, info, record.presence.clone().into(), grant, kind);
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
        // Groups it no longer owns (a deletion that never arrived) go.
        let gone: Vec<String> = self
            .topics
            .iter()
            .filter(|(name, t)| {
                t.owner.is_some_and(|o| o.conn == shadow)
                    && !record.owns.iter().any(|(owned, _)| owned == *name)
            })
            .map(|(name, _)| name.clone())
            .collect();
        let mut out = Vec::new();
        for topic in gone {
            out.extend(self.delete(shadow, 0, topic).unwrap_or_default());
        }
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
            out.extend(self.update_presence(shadow, record.presence, false));
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

    /// Drops the shadows of every node not among `live` that has not been
    /// heard from since `checked`.
    fn live_nodes(&mut self, live: &[String], checked: Instant) -> Vec<Delivery> {
        let Some(cluster) = &self.cluster else {
            return Vec::new();
        };
        let gone: BTreeSet<String> = cluster
            .homes
            .values()
            .map(|(node, _)| node)
            .filter(|node| !live.contains(node))
            .filter(|node| cluster.heard.get(*node).is_none_or(|&at| at < checked))
            .cloned()
            .collect();
        gone.iter().flat_map(|node| self.node_gone(node)).collect()
    }

    fn node_gone(&mut self, node: &str) -> Vec<Delivery> {
        if let Some(cluster) = &mut self.cluster {
            cluster.heard.remove(node);
        }
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
        target: Target,
        data: Box<RawValue>,
    ) -> Vec<Delivery> {
        let Some(shadow) = self.shadow(node, conn) else {
            return Vec::new();
        };
        let Some(info) = self.member(shadow).map(|m| m.info.clone()) else {
            return Vec::new();
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
    pub(in crate::router) fn share_emit(
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
        let record = Record::Emit {
            topic: topic.to_string(),
            payload: payload.to_owned(),
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
            presence: member.presence.as_ref().to_owned(),
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

    /// This node's id, when clustered.
    pub(in crate::router) fn node(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.node.as_str())
    }

    /// Whether an ACK for `event_id` is for an emit of another node.
    pub(in crate::router) fn share_ack(&mut self, conn: ConnId, event_id: &str) {
        if !self.acks.contains_key(event_id) {
            let event_id = event_id.to_string();
            self.share(conn, |conn| Record::Ack { conn, event_id });
        }
    }

    /// A shadow's document user joined: its cursor is shown here, and
    /// local editors see `usrupd`.
    fn shadow_joins_document(&mut self, computer: &str, user: String) -> Vec<Delivery> {
        let already_here = self.user_in_room(computer, &user);
        let Some(editors) = self.documents.get_mut(computer).map(|d| {
            d.remote_joined(&user);
            d.editors().collect::<Vec<_>>()
        }) else {
            return Vec::new();
        };
        if already_here {
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
fn shadow_kind(kind: &KindRecord, now: std::time::Instant) -> Kind {
    match kind {
        KindRecord::Concierge => Kind::Concierge,
        KindRecord::Channels => Kind::Channels(Liveness {
            latency_ms: 0,
            ping_sent: None,
        }),
        KindRecord::Common => Kind::Common { heartbeat_due: now },
        KindRecord::World {
            world,
            user,
            display,
        } => Kind::World(WorldUser {
            world: world.clone(),
            user: user.clone(),
            display: display.clone(),
            // Only methods read traits, and a shadow calls none here.
            traits: Vec::new(),
            since: 0,
        }),
        KindRecord::Blazing { computer, user } => Kind::Blazing(Editor {
            computer: computer.clone(),
            user: user.clone(),
            cursor: Default::default(),
            joined: now,
            token_left: std::time::Duration::ZERO,
            expires: None,
        }),
    }
}
