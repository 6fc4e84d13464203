//! The router: the single owner of the hub's state, as plain data.
//!
//! [`Router::handle`] takes one [`Command`] and returns the [`Delivery`]s it
//! causes; [`Router::expire`] does the same for deadlines that have passed.
//! Neither does any I/O, and both take the current time as an argument, so
//! every rule of the hub is tested here without a socket or a clock. The
//! thread that feeds the router and delivers its output lives in [`thread`].

pub mod command;
pub mod event;
pub mod thread;
mod topic;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use command::{Command, ConnId, Request, Seq, Target};
pub use event::{
    ClientInfo, Delivery, Disconnect, Event, Message, RequestError, TopicChange, TopicInfo,
};
use topic::Topic;

use crate::dialect::Dialect;
use crate::id::Uuid;

/// All state of the hub: connections, clients, names, uuids and topics.
#[derive(Debug)]
pub struct Router {
    conns: HashMap<ConnId, Conn>,
    names: HashMap<String, ConnId>,
    uuids: HashMap<Uuid, ConnId>,
    topics: BTreeMap<String, Topic>,
    /// Connections that must identify by the given instant.
    identify_deadlines: BTreeSet<(Instant, ConnId)>,
    identify_timeout: Duration,
}

#[derive(Debug)]
enum Conn {
    /// Connected, not yet identified; closed at `deadline`.
    Unidentified { deadline: Instant },
    /// A member of the namespace.
    Identified(Client),
}

/// Why a topic is deleted, which decides who is told what.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    /// Its owner asked, in the frame numbered `seq`.
    Requested { owner: ConnId, seq: Seq },
    /// Its owner is leaving.
    OwnerLeft { owner: ConnId },
}

#[derive(Debug)]
struct Client {
    info: Arc<ClientInfo>,
    subscriptions: BTreeSet<String>,
}

impl Router {
    /// An empty hub whose clients must identify within `identify_timeout`.
    pub fn new(identify_timeout: Duration) -> Router {
        Router {
            conns: HashMap::new(),
            names: HashMap::new(),
            uuids: HashMap::new(),
            topics: BTreeMap::new(),
            identify_deadlines: BTreeSet::new(),
            identify_timeout,
        }
    }

    /// Applies one command at time `now`.
    pub fn handle(&mut self, command: Command, now: Instant) -> Vec<Delivery> {
        match command {
            Command::Open { conn, dialect, .. } => self.open(conn, dialect, now),
            Command::Identify {
                conn,
                name,
                nickname,
                tags,
            } => self.identify(conn, name, nickname, tags),
            Command::Request { conn, seq, request } => self.request(conn, seq, request),
            Command::Reject { conn, error } => match self.conns.get(&conn) {
                Some(Conn::Identified(_)) => {
                    vec![Delivery::one(conn, Event::Refused { seq: None, error })]
                }
                _ => Vec::new(),
            },
            Command::Closed { conn } => self.remove(conn),
        }
    }

    /// Disconnects every connection whose identify deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Some(&(deadline, conn)) = self.identify_deadlines.first() {
            if deadline > now {
                break;
            }
            self.identify_deadlines.pop_first();
            self.conns.remove(&conn);
            out.push(Delivery::one(
                conn,
                Event::Disconnect(Disconnect::IdentifyTimeout),
            ));
        }
        out
    }

    /// The earliest pending deadline, if any: when to call [`expire`](Router::expire).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.identify_deadlines
            .first()
            .map(|&(deadline, _)| deadline)
    }

    /// How many connections the router knows (identified or not).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn open(&mut self, conn: ConnId, dialect: Dialect, now: Instant) -> Vec<Delivery> {
        match dialect {
            Dialect::Concierge => {
                let deadline = now + self.identify_timeout;
                self.identify_deadlines.insert((deadline, conn));
                self.conns.insert(conn, Conn::Unidentified { deadline });
            }
            // Echo connections never reach the router.
            Dialect::Echo => {}
        }
        Vec::new()
    }

    fn identify(
        &mut self,
        conn: ConnId,
        name: String,
        nickname: Option<String>,
        tags: Vec<String>,
    ) -> Vec<Delivery> {
        let Some(Conn::Unidentified { deadline }) = self.conns.get(&conn) else {
            // Already identified or already gone: the session never sends a
            // second Identify, and a gone connection needs no answer.
            return Vec::new();
        };
        self.identify_deadlines.remove(&(*deadline, conn));
        let event = match self.admit(conn, name, nickname, tags) {
            Ok(uuid) => Event::Welcome { uuid },
            Err(why) => {
                self.conns.remove(&conn);
                Event::Disconnect(why)
            }
        };
        vec![Delivery::one(conn, event)]
    }

    /// Makes `conn` a member of the namespace under a fresh uuid.
    fn admit(
        &mut self,
        conn: ConnId,
        name: String,
        nickname: Option<String>,
        tags: Vec<String>,
    ) -> Result<Uuid, Disconnect> {
        let uuid =
            Uuid::new_v4().map_err(|e| Disconnect::Internal(format!("no random uuid: {e}")))?;
        let slot = match self.names.entry(name) {
            Entry::Occupied(taken) => return Err(Disconnect::NameTaken(taken.key().clone())),
            Entry::Vacant(slot) => slot,
        };
        let info = ClientInfo {
            name: slot.key().clone(),
            nickname,
            uuid,
            tags,
        };
        slot.insert(conn);
        self.uuids.insert(uuid, conn);
        let client = Client {
            info: Arc::new(info),
            subscriptions: BTreeSet::new(),
        };
        self.conns.insert(conn, Conn::Identified(client));
        Ok(uuid)
    }

    fn request(&mut self, conn: ConnId, seq: Seq, request: Request) -> Vec<Delivery> {
        let Some(Conn::Identified(client)) = self.conns.get(&conn) else {
            return Vec::new(); // closed by the router while the frame was in flight
        };
        let me = client.info.clone();
        let result = match request {
            Request::Send { target, data } => self.send(conn, seq, me, target, data),
            Request::Subscribe { topic } => self.subscribe(conn, seq, topic),
            Request::Unsubscribe { topic } => self.unsubscribe(conn, seq, topic),
            Request::CreateTopic { topic, nickname } => {
                self.create(conn, seq, &me, topic, nickname)
            }
            Request::DeleteTopic { topic } => self.delete(conn, seq, topic),
            Request::FetchTopic { topic } => self.fetch_topic(conn, seq, topic),
            Request::FetchTopics => Ok(vec![Delivery::one(conn, self.fetch_topics(seq))]),
            Request::FetchClients => Ok(vec![Delivery::one(conn, self.fetch_clients(seq))]),
            Request::FetchSelf => Ok(vec![Delivery::one(conn, self.fetch_self(conn, seq, me))]),
            Request::Invalid(error) => Err(error),
        };
        result.unwrap_or_else(|error| {
            let seq = Some(seq);
            vec![Delivery::one(conn, Event::Refused { seq, error })]
        })
    }

    fn send(
        &self,
        conn: ConnId,
        seq: Seq,
        origin: Arc<ClientInfo>,
        target: Target,
        data: Box<serde_json::value::RawValue>,
    ) -> Result<Vec<Delivery>, RequestError> {
        let (to, topic) = match &target {
            Target::Name(name) => match self.names.get(name) {
                Some(&to) => (vec![to], None),
                None => return Err(RequestError::NoSuchName(name.clone())),
            },
            Target::Uuid(text) => match Uuid::parse(text).and_then(|u| self.uuids.get(&u)) {
                Some(&to) => (vec![to], None),
                None => return Err(RequestError::NoSuchUuid(text.clone())),
            },
            Target::Topic(name) => {
                let topic = self.topic(name)?;
                let to = topic.subscribers.iter().copied().filter(|&c| c != conn);
                (to.collect(), Some(self.topic_info(name, topic)))
            }
            Target::All => (self.identified().filter(|&c| c != conn).collect(), None),
        };
        let message = Message {
            origin,
            target,
            topic,
            data,
        };
        Ok(vec![
            Delivery {
                to,
                event: Event::Message(Arc::new(message)),
            },
            Delivery::one(conn, Event::Sent { seq }),
        ])
    }

    fn subscribe(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        self.topic_mut(&name)?.subscribers.insert(conn);
        if let Some(subscriptions) = self.subscriptions_mut(conn) {
            subscriptions.insert(name.clone());
        }
        Ok(vec![self.changed(
            conn,
            seq,
            TopicChange::Subscribed,
            &name,
        )?])
    }

    fn unsubscribe(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        self.topic_mut(&name)?.subscribers.remove(&conn);
        if let Some(subscriptions) = self.subscriptions_mut(conn) {
            subscriptions.remove(&name);
        }
        Ok(vec![self.changed(
            conn,
            seq,
            TopicChange::Unsubscribed,
            &name,
        )?])
    }

    /// Creates the topic and subscribes its creator (the document describes
    /// GROUP_CREATE as "subscribe to a group's broadcast"). The creator's
    /// answer carries `seq`; everyone else hears of it without one.
    fn create(
        &mut self,
        conn: ConnId,
        seq: Seq,
        owner: &ClientInfo,
        name: String,
        nickname: Option<String>,
    ) -> Result<Vec<Delivery>, RequestError> {
        if let Some(topic) = self.topics.get(&name) {
            return Err(RequestError::TopicExists(self.topic_info(&name, topic)));
        }
        let mut topic = Topic::new(conn, owner.uuid, nickname);
        topic.subscribers.insert(conn);
        self.topics.insert(name.clone(), topic);
        if let Some(subscriptions) = self.subscriptions_mut(conn) {
            subscriptions.insert(name.clone());
        }
        let mine = self.changed(conn, seq, TopicChange::Created, &name)?;
        let others = self.broadcast_change(conn, &mine.event);
        Ok(vec![mine, others])
    }

    fn delete(
        &mut self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        if self.topic(&name)?.owner != conn {
            return Err(RequestError::NotOwner(name));
        }
        Ok(self.delete_topic(&name, Deletion::Requested { owner: conn, seq }))
    }

    /// Removes a topic. Its subscribers are told they are unsubscribed, then
    /// every identified client that it is deleted; the owner's answers carry
    /// the `seq` of its request, and an owner that is leaving is told nothing.
    fn delete_topic(&mut self, name: &str, cause: Deletion) -> Vec<Delivery> {
        let Some(topic) = self.topics.remove(name) else {
            return Vec::new();
        };
        let info = self.topic_info(name, &topic);
        for subscriber in &topic.subscribers {
            if let Some(Conn::Identified(client)) = self.conns.get_mut(subscriber) {
                client.subscriptions.remove(name);
            }
        }
        let (owner, owner_seq) = match cause {
            Deletion::Requested { owner, seq } => (owner, Some(seq)),
            Deletion::OwnerLeft { owner } => (owner, None),
        };
        let event = |seq, change| changed_event(seq, change, info.clone());
        let mut out = Vec::new();
        if let (Some(seq), true) = (owner_seq, topic.subscribers.contains(&owner)) {
            out.push(Delivery::one(
                owner,
                event(Some(seq), TopicChange::Unsubscribed),
            ));
        }
        let others: Vec<ConnId> = topic
            .subscribers
            .iter()
            .copied()
            .filter(|&c| c != owner)
            .collect();
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
            to: self.identified().filter(|&c| c != owner).collect(),
            event: event(None, TopicChange::Deleted),
        });
        out
    }

    fn fetch_topic(
        &self,
        conn: ConnId,
        seq: Seq,
        name: String,
    ) -> Result<Vec<Delivery>, RequestError> {
        let topic = self.topic_info(&name, self.topic(&name)?);
        Ok(vec![Delivery::one(conn, Event::Topic { seq, topic })])
    }

    fn fetch_topics(&self, seq: Seq) -> Event {
        let topics = self
            .topics
            .iter()
            .map(|(name, topic)| self.topic_info(name, topic))
            .collect();
        Event::Topics { seq, topics }
    }

    fn fetch_clients(&self, seq: Seq) -> Event {
        let mut clients: Vec<Arc<ClientInfo>> = self
            .conns
            .values()
            .filter_map(|conn| match conn {
                Conn::Identified(client) => Some(client.info.clone()),
                Conn::Unidentified { .. } => None,
            })
            .collect();
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        Event::Clients { seq, clients }
    }

    fn fetch_self(&self, conn: ConnId, seq: Seq, client: Arc<ClientInfo>) -> Event {
        let subscriptions = match self.conns.get(&conn) {
            Some(Conn::Identified(me)) => me.subscriptions.iter().cloned().collect(),
            _ => Vec::new(),
        };
        Event::Myself {
            seq,
            client,
            subscriptions,
        }
    }

    /// Forgets a connection: the topics it owns are deleted (described as
    /// they were, with it still among their subscribers), then its name,
    /// uuid and subscriptions go.
    fn remove(&mut self, conn: ConnId) -> Vec<Delivery> {
        match self.conns.get(&conn) {
            Some(Conn::Identified(_)) => {}
            Some(Conn::Unidentified { deadline }) => {
                self.identify_deadlines.remove(&(*deadline, conn));
                self.conns.remove(&conn);
                return Vec::new();
            }
            None => return Vec::new(),
        }
        let owned: Vec<String> = self
            .topics
            .iter()
            .filter(|(_, topic)| topic.owner == conn)
            .map(|(name, _)| name.clone())
            .collect();
        let out = owned
            .iter()
            .flat_map(|name| self.delete_topic(name, Deletion::OwnerLeft { owner: conn }))
            .collect();
        if let Some(Conn::Identified(client)) = self.conns.remove(&conn) {
            self.names.remove(&client.info.name);
            self.uuids.remove(&client.info.uuid);
            for name in &client.subscriptions {
                if let Some(topic) = self.topics.get_mut(name) {
                    topic.subscribers.remove(&conn);
                }
            }
        }
        out
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
        Ok(Delivery::one(conn, changed_event(Some(seq), change, info)))
    }

    /// The same topic change, without `seq`, to every identified client but `conn`.
    fn broadcast_change(&self, conn: ConnId, event: &Event) -> Delivery {
        let event = match event {
            Event::TopicChanged { change, topic, .. } => {
                changed_event(None, *change, topic.clone())
            }
            other => other.clone(),
        };
        Delivery {
            to: self.identified().filter(|&c| c != conn).collect(),
            event,
        }
    }

    fn identified(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().filter_map(|(&conn, state)| match state {
            Conn::Identified(_) => Some(conn),
            Conn::Unidentified { .. } => None,
        })
    }

    fn topic(&self, name: &str) -> Result<&Topic, RequestError> {
        self.topics
            .get(name)
            .ok_or_else(|| RequestError::NoSuchTopic(name.to_string()))
    }

    fn topic_mut(&mut self, name: &str) -> Result<&mut Topic, RequestError> {
        self.topics
            .get_mut(name)
            .ok_or_else(|| RequestError::NoSuchTopic(name.to_string()))
    }

    fn subscriptions_mut(&mut self, conn: ConnId) -> Option<&mut BTreeSet<String>> {
        match self.conns.get_mut(&conn) {
            Some(Conn::Identified(client)) => Some(&mut client.subscriptions),
            _ => None,
        }
    }

    fn topic_info(&self, name: &str, topic: &Topic) -> TopicInfo {
        let uuid_of = |conn: &ConnId| match self.conns.get(conn) {
            Some(Conn::Identified(client)) => Some(client.info.uuid),
            _ => None,
        };
        TopicInfo {
            name: name.to_string(),
            nickname: topic.nickname.clone(),
            owner: topic.owner_uuid,
            subscribers: topic.subscribers.iter().filter_map(uuid_of).collect(),
        }
    }
}

fn changed_event(seq: Option<Seq>, change: TopicChange, topic: TopicInfo) -> Event {
    Event::TopicChanged { seq, change, topic }
}

#[cfg(test)]
mod tests;
