//! Claims: a concierge name (IDENTIFY) or a group name (GROUP_CREATE) is
//! claimed in Redis before it is granted, so that two nodes never both
//! grant it; the client's later frames wait for the answer (module docs
//! in `mod.rs`).

use super::{Claimable, Outgoing};
use crate::router::{Command, Conn, ConnId, Delivery, Disconnect, Event, RequestError, Router};

/// A claim waiting for Redis's answer.
#[derive(Debug)]
pub(super) struct Pending {
    /// What the client asked for.
    pub(super) request: Claiming,
    /// The client's frames after it, held until the answer, then handled
    /// in order: as on one node, where they follow the HELLO (or the
    /// group's creation).
    pub(super) held: Vec<Command>,
}

/// What a pending claim is for.
#[derive(Debug)]
pub(super) enum Claiming {
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

impl Router {
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

    /// Redis's answer to a claim: the name or group is taken up or
    /// refused, then the frames that waited are handled if the client is
    /// (still) a member. A claim stays pending until its answer comes,
    /// even if its connection has gone: a late grant is then given back
    /// rather than held for as long as this node lives.
    pub(super) fn claimed(&mut self, conn: ConnId, granted: bool) -> Vec<Delivery> {
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
    pub(super) fn claimed_group(
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
    pub(super) fn give_group_back(&mut self, topic: &str) {
        let owner = self.topics.get(topic).and_then(|t| t.owner);
        if owner.is_none_or(|o| o.conn.is_shadow()) {
            let claim = Claimable::Group(topic.to_string());
            self.tell_link(Outgoing::Release { claim });
        }
    }

    /// A group as this node knows it; by name alone if another node's
    /// record of it has not arrived yet.
    pub(super) fn known_group(&self, name: &str) -> crate::router::TopicInfo {
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
    pub(super) fn claimed_name(
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
}
