//! The shadows of other nodes' members: what the other nodes' records do
//! to this router, who is still there, and their messages delivered to
//! this node's connections (module docs in `mod.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::value::RawValue;

use super::{Claimable, Inbound, KindRecord, MemberRecord, Outgoing, Record};
use crate::id::Uuid;
use crate::router::member::{Editor, Kind, Liveness, Presence, WorldUser};
use crate::router::{
    ClientInfo, ConnId, Delivery, DocumentEvent, Event, Message, Origin, Router, Target, Targets,
};

impl Router {
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
    pub(super) fn rejoin(&mut self) {
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

    /// Applies another node's record to its shadows.
    pub(super) fn apply(&mut self, from: String, record: Record) -> Vec<Delivery> {
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

    pub(super) fn shadow(&self, node: &str, conn: u64) -> Option<ConnId> {
        let cluster = self.cluster.as_ref()?;
        cluster.shadows.get(&(node.to_string(), conn)).copied()
    }

    /// Makes `record` (a member of `node`) a shadow here, with its
    /// subscriptions and groups; local clients hear of it as of any member.
    pub(super) fn admit_shadow(&mut self, node: &str, record: MemberRecord) -> Vec<Delivery> {
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
        self.admit(
            shadow,
            info,
            Presence::Own(record.presence.clone().into()),
            grant,
            kind,
        );
        let mut out = Vec::new();
        if let Some((computer, user)) = joined_document {
            out.extend(self.shadow_joins_document(&computer, user));
        }
        out.extend(self.reconcile(shadow, record));
        out
    }

    /// Brings a shadow's groups, subscriptions and presence to what its
    /// node says.
    pub(super) fn reconcile(&mut self, shadow: ConnId, record: MemberRecord) -> Vec<Delivery> {
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
            .map(|m| m.subscriptions.iter().cloned().collect())
            .unwrap_or_default();
        for topic in before.difference(&now) {
            out.extend(self.leave_topic(shadow, topic));
        }
        for topic in now.difference(&before) {
            out.extend(self.join_topic(shadow, topic));
        }
        let changed = self
            .member(shadow)
            .is_some_and(|m| m.presence().get() != record.presence.get());
        if changed {
            out.extend(self.update_presence(shadow, record.presence, false));
        }
        out
    }

    /// A node's full list of members: shadows it no longer lists go.
    pub(super) fn announced(&mut self, node: &str, members: Vec<MemberRecord>) -> Vec<Delivery> {
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
    pub(super) fn live_nodes(&mut self, live: &[String], checked: Instant) -> Vec<Delivery> {
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

    pub(super) fn node_gone(&mut self, node: &str) -> Vec<Delivery> {
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
    pub(super) fn shadows_of(&self, node: &str, keep: impl Fn(u64) -> bool) -> Vec<ConnId> {
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

    pub(super) fn forget_shadow(&mut self, shadow: ConnId) -> Vec<Delivery> {
        if let Some(cluster) = &mut self.cluster {
            if let Some(home) = cluster.homes.remove(&shadow) {
                cluster.shadows.remove(&home);
            }
        }
        self.forget(shadow)
    }

    /// A shadow's group: created here as it was there (a group another
    /// member here created meanwhile stays that member's).
    pub(super) fn create_for_shadow(
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

    pub(super) fn shadow_sends(
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
    pub(super) fn remote_emit(
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
    pub(super) fn shadow_joins_document(&mut self, computer: &str, user: String) -> Vec<Delivery> {
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
        } => Kind::World(Box::new(WorldUser {
            world: world.clone(),
            user: user.clone(),
            display: display.clone(),
            // Only methods read traits, and a shadow calls none here.
            traits: Vec::new(),
            since: 0,
        })),
        KindRecord::Blazing { computer, user } => Kind::Blazing(Box::new(Editor {
            computer: computer.clone(),
            user: user.clone(),
            cursor: Default::default(),
            joined: now,
            token_left: std::time::Duration::ZERO,
            expires: None,
        })),
    }
}
