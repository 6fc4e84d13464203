//! Topics: named fan-out sets shared by every dialect, and their life.
//!
//! A topic exists while it has an owner or a subscriber. A concierge
//! GROUP_CREATE gives it an owner; a channels listener creates an ownerless
//! one just by listening ("implicit"). GROUP_CREATE on an implicit topic
//! takes ownership of it. Deleting a group (or its owner leaving) removes the
//! owner and the concierge subscribers; channels listeners keep listening,
//! and the topic lives on, ownerless, while they do.

use std::collections::BTreeSet;

use super::Dialect;
use super::{
    Access, ClientInfo, ConnId, Delivery, Event, MemberView, PresenceChange, RequestError, Router,
    Seq, TopicChange, TopicInfo,
};
use crate::id::Uuid;

/// A named set of subscribers that messages to the topic fan out to.
#[derive(Debug, Default)]
pub struct Topic {
    /// Display name given at creation.
    pub nickname: Option<String>,
    /// The concierge client that created the group, if any: only it may
    /// delete it, and the group goes when it leaves.
    pub owner: Option<Owner>,
    /// Who receives the topic's messages, in every dialect. Ordered so that
    /// listings and deliveries are deterministic.
    pub subscribers: BTreeSet<ConnId>,
}

/// A topic's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Its connection.
    pub conn: ConnId,
    /// Its uuid, kept here so the topic can still be described while the
    /// owner is being removed.
    pub uuid: Uuid,
}

/// Why a group is deleted, which decides who is told what.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    /// Its owner asked, in the frame numbered `seq`.
    Requested { owner: ConnId, seq: Seq },
    /// Its owner is leaving.
    OwnerLeft { owner: ConnId },
}

impl Router {
    pub(super) fn subscribe(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        // Asked first, so that a refusal does not tell whether it exists.
        self.may_request(conn, Access::Read, &name)?;
        self.topic(&name)?;
        let mut out = self.join_topic(conn, &name);
        out.insert(0, self.changed(conn, seq, TopicChange::Subscribed, &name)?);
        Ok(out)
    }

    pub(super) fn unsubscribe(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        let topic = self.topic(&name)?;
        let mut info = self.topic_info(&name, topic);
        if let Some(me) = self.member(conn) {
            info.subscribers.retain(|&uuid| uuid != me.info.uuid);
        }
        let answer = Delivery::one(conn, changed(Some(seq), TopicChange::Unsubscribed, info));
        let mut out = vec![answer];
        out.extend(self.leave_topic(conn, &name));
        Ok(out)
    }

    /// Creates the group (or takes ownership of an implicit topic). The
    /// creator is not subscribed: the document's heading for GROUP_CREATE
    /// ("subscribe to a group's broadcast") is copied from SELF_SUBSCRIBE,
    /// and the original server and its clients subscribe explicitly after
    /// creating. The creator's answer carries `seq`; every other concierge
    /// client hears of it without one.
    pub(super) fn create(
        &mut self,
        conn: ConnId,
        seq: Seq,
        creator: &ClientInfo,
        name: String,
        nickname: Option<String>,
    ) -> Result<Vec<Delivery>, RequestError> {
        self.may_request(conn, Access::Write, &name)?;
        let topic = self.topics.entry(name.clone()).or_default();
        if topic.owner.is_some() {
            let topic = self.topic(&name)?;
            return Err(RequestError::TopicExists(self.topic_info(&name, topic)));
        }
        topic.owner = Some(Owner {
            conn,
            uuid: creator.uuid,
        });
        topic.nickname = nickname.clone();
        self.share(conn, |conn| super::cluster::Record::Created {
            conn,
            topic: name.clone(),
            nickname,
        });
        let info = self.topic_info(&name, self.topic(&name)?);
        let mine = Delivery::one(conn, changed(Some(seq), TopicChange::Created, info.clone()));
        let others = Delivery {
            to: self.concierge_members_but(conn),
            event: changed(None, TopicChange::Created, info),
        };
        Ok(vec![mine, others])
    }

    pub(super) fn delete(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        if self.topic(&name)?.owner.map(|o| o.conn) != Some(conn) {
            return Err(RequestError::NotOwner(name));
        }
        let topic = name.clone();
        self.share(conn, |conn| super::cluster::Record::Deleted { conn, topic });
        Ok(self.delete_group(&name, Deletion::Requested { owner: conn, seq }))
    }

    /// Deletes every group `conn` owns, as it leaves.
    pub(super) fn drop_owned_topics(&mut self, conn: ConnId) -> Vec<Delivery> {
        let owned: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, topic)| topic.owner.is_some_and(|o| o.conn == conn))
            .map(|(name, _)| name.clone())
            .collect();
        owned
            .iter()
            .flat_map(|name| self.delete_group(name, Deletion::OwnerLeft { owner: conn }))
            .collect()
    }

    /// Deletes a group. Its concierge subscribers are told they are
    /// unsubscribed, then every concierge client that it is deleted; the
    /// owner's answers carry the `seq` of its request, and an owner that is
    /// leaving is told nothing. Channels listeners stay: they see the
    /// concierge subscribers leave, and the topic lives on without an owner
    /// while they listen.
    fn delete_group(&mut self, name: &str, cause: Deletion) -> Vec<Delivery> {
        let Some(topic) = self.topics.get(name) else {
            return Vec::new();
        };
        let info = self.topic_info(name, topic);
        let concierge: Vec<ConnId> = topic
            .subscribers
            .iter()
            .copied()
            .filter(|&c| self.dialect_of(c) == Some(Dialect::Concierge))
            .collect();
        let (owner, owner_seq) = match cause {
            Deletion::Requested { owner, seq } => (owner, Some(seq)),
            Deletion::OwnerLeft { owner } => (owner, None),
        };
        self.release_group(owner, name);
        let event = |seq, change| changed(seq, change, info.clone());
        let mut out = Vec::new();
        if let (Some(seq), true) = (owner_seq, concierge.contains(&owner)) {
            out.push(Delivery::one(
                owner,
                event(Some(seq), TopicChange::Unsubscribed),
            ));
        }
        let others: Vec<ConnId> = concierge.iter().copied().filter(|&c| c != owner).collect();
        if !others.is_empty() {
            out.push(Delivery {
                to: others,
                event: event(None, TopicChange::Unsubscribed),
            });
        }
        if let Some(seq) = owner_seq {
            out.push(Delivery::one(owner, event(Some(seq), TopicChange::Deleted)));
        }
        out.push(Delivery {
            to: self.concierge_members_but(owner),
            event: event(None, TopicChange::Deleted),
        });
        if let Some(topic) = self.topics.get_mut(name) {
            topic.owner = None;
            topic.nickname = None;
        }
        for conn in concierge {
            out.extend(self.leave_topic(conn, name));
        }
        self.prune(name);
        out
    }

    /// Adds `conn` to the topic's subscribers (creating an implicit topic if
    /// needed); the topic's channels listeners see it join.
    pub(super) fn join_topic(&mut self, conn: ConnId, name: &str) -> Vec<Delivery> {
        if self.member(conn).is_none() {
            return Vec::new();
        }
        let newly = self
            .topics
            .entry(name.to_string())
            .or_default()
            .subscribers
            .insert(conn);
        if let Some(member) = self.member_mut(conn) {
            member.subscriptions.insert(name);
        }
        if !newly {
            return Vec::new();
        }
        self.share_subscription(conn, name, true);
        if super::sys::is_reserved(name) {
            self.schedule_snapshots(self.now);
        }
        // Only now: a concierge member's view is made on demand.
        let Some(view) = self.member(conn).map(super::member::Member::view) else {
            return Vec::new();
        };
        self.presence_change(name, conn, PresenceChange::Joined, &view, false)
            .into_iter()
            .collect()
    }

    /// Removes `conn` from the topic's subscribers; its channels listeners
    /// see it leave, and an ownerless topic without subscribers goes.
    pub(super) fn leave_topic(&mut self, conn: ConnId, name: &str) -> Vec<Delivery> {
        if let Some(member) = self.member_mut(conn) {
            member.subscriptions.remove(name);
        }
        let was_subscribed = self
            .topics
            .get_mut(name)
            .is_some_and(|topic| topic.subscribers.remove(&conn));
        if was_subscribed {
            self.share_subscription(conn, name, false);
        }
        let left = match (
            was_subscribed,
            self.member(conn).map(super::member::Member::view),
        ) {
            (true, Some(view)) => {
                self.presence_change(name, conn, PresenceChange::Left, &view, false)
            }
            _ => None,
        };
        self.prune(name);
        left.into_iter().collect()
    }

    /// Tells the topic's channels listeners of a change to `conn`: the
    /// others, and `conn` itself too when `echo` (if it listens).
    pub(super) fn presence_change(
        &self,
        name: &str,
        conn: ConnId,
        change: PresenceChange,
        member: &MemberView,
        echo: bool,
    ) -> Option<Delivery> {
        let to: Vec<ConnId> = self
            .topics
            .get(name)?
            .subscribers
            .iter()
            .copied()
            .filter(|&c| (echo || c != conn) && self.dialect_of(c) == Some(Dialect::Channels))
            .collect();
        let event = Event::Presence {
            change,
            member: member.clone(),
        };
        (!to.is_empty()).then_some(Delivery { to, event })
    }

    /// The topic's subscribers other than `conn`, as channels clients see them.
    pub(super) fn views_of(&self, name: &str, conn: ConnId) -> Vec<MemberView> {
        let Some(topic) = self.topics.get(name) else {
            return Vec::new();
        };
        topic
            .subscribers
            .iter()
            .filter(|&&c| c != conn)
            .filter_map(|&c| self.member(c).map(super::member::Member::view))
            .collect()
    }

    /// Removes the topic if it has neither owner nor subscribers.
    fn prune(&mut self, name: &str) {
        if self
            .topics
            .get(name)
            .is_some_and(|t| t.owner.is_none() && t.subscribers.is_empty())
        {
            self.topics.remove(name);
        }
    }

    pub(super) fn fetch_topic(
        &self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        self.may_request(conn, Access::Read, &name)?;
        let topic = self.topic_info(&name, self.topic(&name)?);
        Ok(vec![Delivery::one(conn, Event::Topic { seq, topic })])
    }

    /// Every topic `conn` may read.
    pub(super) fn fetch_topics(&self, conn: ConnId, seq: Seq) -> Event {
        let topics = self
            .topics
            .iter()
            .filter(|(name, _)| self.may(conn, Access::Read, name).is_ok())
            .map(|(name, topic)| self.topic_info(name, topic))
            .collect();
        Event::Topics { seq, topics }
    }

    /// The answer to `conn`'s request `seq` that changed topic `name`.
    fn changed(
        &self,
        conn: ConnId,
        seq: Seq,
        change: TopicChange,
        name: &str,
    ) -> Result<Delivery, RequestError> {
        let info = self.topic_info(name, self.topic(name)?);
        Ok(Delivery::one(conn, changed(Some(seq), change, info)))
    }

    fn concierge_members_but(&self, conn: ConnId) -> Vec<ConnId> {
        self.members_speaking(Dialect::Concierge)
            .filter(|&c| c != conn)
            .collect()
    }

    pub(super) fn dialect_of(&self, conn: ConnId) -> Option<Dialect> {
        self.member(conn).map(super::member::Member::dialect)
    }

    pub(super) fn topic(&self, name: &str) -> Result<&Topic, RequestError> {
        self.topics
            .get(name)
            .ok_or_else(|| RequestError::NoSuchTopic(name.to_string()))
    }

    pub(super) fn topic_info(&self, name: &str, topic: &Topic) -> TopicInfo {
        TopicInfo {
            name: name.to_string(),
            nickname: topic.nickname.clone(),
            owner: topic.owner.map(|o| o.uuid),
            subscribers: topic
                .subscribers
                .iter()
                .filter_map(|&c| self.member(c).map(|m| m.info.uuid))
                .collect(),
        }
    }
}

fn changed(seq: Option<Seq>, change: TopicChange, topic: TopicInfo) -> Event {
    Event::TopicChanged { seq, change, topic }
}
