//! The router: the single owner of the hub's state, as plain data.
//!
//! [`Router::handle`] takes one [`Command`] and returns the [`Delivery`]s it
//! causes; [`Router::expire`] does the same for deadlines that have passed.
//! Neither does any I/O (the one exception: an HTTP emit's answer goes back
//! on the channel its command carried), and both take the current time as an
//! argument, so every rule of the hub is tested here without a socket or a
//! clock. The thread that feeds the router and delivers its output is the
//! layer above, which knows the dialects and the sockets
//! (`server/router_thread.rs`); the router imports neither.
//!
//! Who may read or write which topic is decided in one place,
//! [`access`], and asked by every way in (`Router::may`).
//!
//! The state is one namespace shared by every dialect:
//! - **members** (`member.rs`): identified clients of any dialect, each with
//!   a unique name (a concierge name, or a channels `client_…` id), a uuid,
//!   a presence and its subscriptions (`subscriptions.rs`);
//! - **topics** (`topic.rs`): named fan-out sets. A concierge group and a
//!   channel of the same name are the same topic;
//! - **messages** (`publish.rs`): concierge MESSAGEs, HTTP emits, and the
//!   acknowledgements emits may wait for;
//! - **rooms** (`rooms.rs`): world clients' worlds and rooms (room `R` of
//!   world `W` is topic `W/R`);
//! - **documents** (`documents.rs`, and `documents/text.rs` for one
//!   text): blazing's shared texts;
//! - **calls** (`calls.rs`): the hub's built-in methods, world actions,
//!   and the embedder's methods handed to their workers;
//! - **shutdown** (`shutdown.rs`): the going-away of every client;
//! - **timers** (`timer.rs`): identify, heartbeat and ack deadlines, PING
//!   rounds, token expiries, document saves.
//!
//! What comes in: [`Command`]s from connections (`command.rs`) and
//! [`Control`] requests from the server, the operator and the saver
//! (`control.rs`). Which protocol a member speaks is a [`Dialect`]
//! (`dialect.rs`); how each protocol renders events is not the router's
//! business.

pub mod access;
mod calls;
pub mod cluster;
pub mod command;
mod control;
mod dialect;
mod documents;
pub mod event;
mod member;
mod publish;
mod rooms;
mod shutdown;
mod subscriptions;
pub mod sys;
mod timer;
mod topic;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub use access::{Access, Denial, Grant, Patterns, Policy};
pub use command::{
    Command, ConnId, Control, Edit, Emit, EmitError, EmitOutcome, Joiner, Reconfiguration, Request,
    Seq, Target, Targets,
};
pub use dialect::Dialect;
pub use event::{
    ClientInfo, Delivery, Disconnect, DocumentEvent, DocumentSnapshot, Event, MemberView, Message,
    Origin, PresenceChange, RequestError, TopicChange, TopicInfo, RATE_LIMITED_MESSAGE,
};
use member::Member;
pub use member::MAX_PRESENCE_BYTES;
use publish::PendingAck;
pub use shutdown::Drain;
use timer::{Timer, Timers};
use topic::Topic;

use crate::id::Uuid;

/// The router's timing rules.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long a concierge client has to IDENTIFY.
    pub identify_timeout: Duration,
    /// How often channels clients get a PING; two intervals without a PONG
    /// disconnect them.
    pub ping_interval: Duration,
    /// How long an emit with `require-ack=true` waits for ACKs.
    pub ack_timeout: Duration,
    /// The common `hb_interval`; a client silent for it and one more
    /// second is disconnected.
    pub heartbeat_interval: Duration,
    /// How many connections one user may have open to one world; a newer
    /// one replaces the oldest.
    pub world_user_connections: usize,
    /// The largest a shared document may grow, in bytes.
    pub max_document_bytes: usize,
}

/// All state of the hub.
#[derive(Debug)]
pub struct Router {
    settings: Settings,
    /// What the operator opens to everyone, and whether the hub is
    /// protected at all; asked through [`Router::may`].
    policy: Policy,
    conns: HashMap<ConnId, Conn>,
    /// Every member's unique name: concierge names and channels client ids.
    names: HashMap<String, ConnId>,
    uuids: HashMap<Uuid, ConnId>,
    topics: BTreeMap<String, Topic>,
    /// Emits waiting for ACKs, by event id.
    acks: HashMap<String, PendingAck>,
    timers: Timers,
    /// Whether a PING round is scheduled (while channels members exist).
    pinging: bool,
    /// The embedder's methods, their workers and the calls running there
    /// (`calls.rs`).
    embedder: calls::Embedder,
    /// When the router started, for `hub.info`'s uptime.
    started: Instant,
    /// Shared documents being edited (or not yet saved), by computer id.
    documents: HashMap<String, documents::Document>,
    /// Where documents are saved, if anywhere.
    store: Option<crate::store::Store>,
    /// World authentications so far, to order a user's connections.
    world_joins: u64,
    /// Whether the `$sys` snapshot timer is scheduled (while `$sys` has
    /// subscribers).
    sys_ticking: bool,
    /// The process's counters, for `$sys` snapshots; the router only adds
    /// its refusals of the access rule (`switchboard_access_denied_total`).
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// The time of the command or timer being handled, for rules deep
    /// inside (a member leaving schedules its document's save).
    now: Instant,
    /// This node's part in a cluster (`--redis`); `None` on a single node.
    #[cfg(feature = "redis")]
    cluster: Option<cluster::Cluster>,
}

/// The method whose call makes the router fail, in the crate's own test
/// builds only (the router thread must survive it: `net/crash_tests.rs`).
#[cfg(test)]
pub(crate) const TEST_PANIC_METHOD: &str = "test.fail_the_router";

#[derive(Debug)]
enum Conn {
    /// Connected, not yet identified; closed at `deadline`.
    Unidentified { deadline: Instant },
    /// A member of the namespace.
    Member(Member),
    /// Disconnected by the router, waiting for its socket to close. It is no
    /// longer part of the namespace; its last words may still need its id.
    Leaving { client_id: String, latency_ms: u64 },
}

/// What a frame addressed to one connection may need to say about that
/// connection (channels put the recipient's `clientID` and `latency` in
/// every frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressee<'a> {
    /// The recipient's name in the namespace.
    pub client_id: &'a str,
    /// The recipient's last measured PING round trip, in milliseconds.
    pub latency_ms: u64,
}

impl Router {
    /// The same hub, running an embedder's methods on `pool`.
    #[must_use]
    pub fn with_pool(mut self, pool: crate::methods::Pool) -> Router {
        self.embedder.pool = Some(pool);
        self
    }

    /// The same hub, saving documents with `store`.
    #[must_use]
    pub fn with_store(self, store: crate::store::Store) -> Router {
        Router {
            store: Some(store),
            ..self
        }
    }

    /// The same hub, reporting `metrics`' message counters in `$sys`
    /// snapshots (without it they report zeros).
    #[must_use]
    pub fn with_metrics(self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Router {
        Router {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The same hub, under the operator's access `policy` (without it,
    /// the hub is open).
    #[must_use]
    pub fn with_policy(self, policy: Policy) -> Router {
        Router { policy, ..self }
    }

    /// An empty hub.
    pub fn new(settings: Settings) -> Router {
        Router {
            settings,
            policy: Policy::open(),
            conns: HashMap::new(),
            names: HashMap::new(),
            uuids: HashMap::new(),
            topics: BTreeMap::new(),
            acks: HashMap::new(),
            timers: Timers::default(),
            pinging: false,
            embedder: calls::Embedder::default(),
            started: Instant::now(),
            documents: HashMap::new(),
            store: None,
            world_joins: 0,
            sys_ticking: false,
            metrics: None,
            now: Instant::now(),
            #[cfg(feature = "redis")]
            cluster: None,
        }
    }

    /// Applies one command at time `now`.
    pub fn handle(&mut self, command: Command, now: Instant) -> Vec<Delivery> {
        // The crate's own tests make the router fail through a call of
        // this method, to test that the hub survives it; no other build
        // has the check.
        #[cfg(test)]
        if let Command::Call { method, .. } = &command {
            assert_ne!(method, TEST_PANIC_METHOD, "a test asked the router to fail");
        }
        self.now = now;
        self.begin_step();
        let command = match self.hold_while_claiming(command) {
            Ok(command) => command,
            Err(now_said) => return now_said,
        };
        match command {
            Command::Open { conn, dialect } => self.open(conn, dialect, now),
            Command::Identify {
                conn,
                name,
                nickname,
                tags,
            } => self.identify(conn, name, nickname, tags),
            Command::Listen {
                conn,
                topic,
                presence,
                grant,
                token_left,
            } => self.listen(conn, topic, presence, (grant, token_left), now),
            Command::Request { conn, seq, request } => self.request(conn, seq, request),
            Command::Reject { conn, error } => match self.member(conn) {
                Some(_) => vec![Delivery::one(conn, Event::Refused { seq: None, error })],
                None => Vec::new(),
            },
            Command::Pong { conn } => {
                self.pong(conn, now);
                Vec::new()
            }
            Command::Ack { conn, event_id } => {
                self.share_ack(conn, &event_id);
                self.ack(conn, &event_id);
                Vec::new()
            }
            Command::UpdatePresence {
                conn,
                presence,
                echo,
            } => self.update_presence(conn, presence, echo),
            Command::Emit(emit) => self.emit(*emit, now),
            Command::Join { conn, who } => self.join(conn, *who, now),
            Command::Heartbeat { conn } => self.heartbeat(conn, now),
            Command::Call {
                conn,
                method,
                args,
                reply,
            } => self.call(conn, &method, &args, reply, now),
            Command::Answer {
                conn,
                reply,
                result,
            } => self.answer(conn, reply, result),
            Command::Edit { conn, edit } => self.edit(conn, edit, now),
            Command::Control(control) => self.control(control),
            Command::Closed { conn } => self.forget(conn),
            #[cfg(feature = "redis")]
            Command::Cluster(inbound) => self.cluster_event(*inbound),
        }
    }

    /// Fires every timer due at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Delivery> {
        self.now = now;
        self.begin_step();
        let mut out = Vec::new();
        while let Some(timer) = self.timers.pop_due(now) {
            out.extend(match timer {
                Timer::Identify(conn) => self.evict(conn, Disconnect::IdentifyTimeout),
                Timer::AckWait(event_id) => {
                    self.settle(&event_id);
                    Vec::new()
                }
                Timer::PingRound => self.ping_round(now),
                Timer::SysSnapshot => self.snapshot_round(now),
                #[cfg(feature = "redis")]
                Timer::Announce => self.announce_round(now),
                Timer::Heartbeat(conn) => self.evict(conn, Disconnect::HeartbeatTimeout),
                Timer::TokenExpiry(conn) => self.evict(conn, Disconnect::TokenExpired),
                Timer::Save(computer) => {
                    self.save(&computer, now);
                    Vec::new()
                }
                Timer::Forget(computer) => {
                    self.forget_document(&computer);
                    Vec::new()
                }
            });
        }
        out
    }

    /// How many topics exist (for `/metrics`).
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// How many shared documents are in memory (for `/metrics`).
    pub fn document_count(&self) -> usize {
        self.documents.len()
    }

    /// The earliest pending deadline, if any: when to call [`expire`](Router::expire).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// What frames for `conn` may say about it, while it is a member or
    /// leaving.
    pub fn addressee(&self, conn: ConnId) -> Option<Addressee<'_>> {
        match self.conns.get(&conn)? {
            Conn::Member(member) => Some(member.addressee()),
            Conn::Leaving {
                client_id,
                latency_ms,
            } => Some(Addressee {
                client_id,
                latency_ms: *latency_ms,
            }),
            Conn::Unidentified { .. } => None,
        }
    }

    /// Disconnects `conn` for `why`: it leaves the namespace now (others are
    /// told as if it had left), and is told why. Its socket closes later.
    pub fn evict(&mut self, conn: ConnId, why: Disconnect) -> Vec<Delivery> {
        if conn.is_shadow() {
            return Vec::new(); // only its own node disconnects it
        }
        let (client_id, latency_ms) = match self.conns.get(&conn) {
            None | Some(Conn::Leaving { .. }) => return Vec::new(),
            Some(Conn::Unidentified { .. }) => (String::new(), 0),
            Some(Conn::Member(member)) => {
                let addressee = member.addressee();
                (addressee.client_id.to_string(), addressee.latency_ms)
            }
        };
        let fallout = self.forget(conn);
        let leaving = Conn::Leaving {
            client_id,
            latency_ms,
        };
        self.conns.insert(conn, leaving);
        let mut out = vec![Delivery::one(conn, Event::Disconnect(why))];
        out.extend(fallout);
        out
    }

    /// Ends a connection that never became a member.
    fn refuse(&mut self, conn: ConnId, why: Disconnect) -> Vec<Delivery> {
        let leaving = Conn::Leaving {
            client_id: String::new(),
            latency_ms: 0,
        };
        self.conns.insert(conn, leaving);
        vec![Delivery::one(conn, Event::Disconnect(why))]
    }

    fn open(&mut self, conn: ConnId, dialect: Dialect, now: Instant) -> Vec<Delivery> {
        match dialect {
            Dialect::Concierge => self.await_identity(conn, now + self.settings.identify_timeout),
            // Silence before HELLO_ACK counts like silence after it.
            Dialect::Common => self.await_identity(conn, now + self.heartbeat_window()),
            // Channels and world clients become members with their Listen
            // and Join commands; keepalive pings deal with idle ones.
            Dialect::Channels | Dialect::World | Dialect::Blazing => {}
            // Echo connections never reach the router.
            Dialect::Echo => {}
        }
        Vec::new()
    }

    /// Registers a connection that must identify by `deadline`.
    fn await_identity(&mut self, conn: ConnId, deadline: Instant) {
        self.timers.set(deadline, Timer::Identify(conn));
        self.conns.insert(conn, Conn::Unidentified { deadline });
    }

    fn request(&mut self, conn: ConnId, seq: Seq, request: Request) -> Vec<Delivery> {
        let Some(me) = self.member(conn).map(|m| m.info.clone()) else {
            return Vec::new(); // closed by the router while the frame was in flight
        };
        let result = match request {
            Request::Send { target, data } => self.send(conn, seq, me, target, data),
            Request::Subscribe { topic } => self.subscribe(conn, seq, topic),
            Request::Unsubscribe { topic } => self.unsubscribe(conn, seq, topic),
            // In a cluster the group is claimed in Redis first.
            Request::CreateTopic { topic, nickname } => {
                match self.claim_group(conn, seq, &topic, &nickname) {
                    Some(claiming) => claiming,
                    None => self.create(conn, seq, &me, topic, nickname),
                }
            }
            Request::DeleteTopic { topic } => self.delete(conn, seq, topic),
            Request::FetchTopic { topic } => self.fetch_topic(conn, seq, topic),
            Request::FetchTopics => Ok(vec![Delivery::one(conn, self.fetch_topics(conn, seq))]),
            Request::FetchClients => Ok(vec![Delivery::one(conn, self.fetch_clients(seq))]),
            Request::FetchSelf => Ok(vec![Delivery::one(conn, self.fetch_self(conn, seq))]),
            Request::Invalid(error) => Err(error),
        };
        result.unwrap_or_else(|error| {
            let seq = Some(seq);
            vec![Delivery::one(conn, Event::Refused { seq, error })]
        })
    }

    /// The one access rule, for a member: whether `conn` may `access`
    /// `topic`, by the grant it was admitted with and the operator's
    /// policy. Every way into a topic asks this (or, for a client not yet a
    /// member, [`Policy::allows`] with the grant it brings).
    pub(super) fn may(&self, conn: ConnId, access: Access, topic: &str) -> Result<(), Denial> {
        let anonymous = Grant::anonymous();
        let grant = self.member(conn).map_or(&anonymous, |m| &m.grant);
        self.policy.allows(grant, access, topic)
    }

    /// [`Router::may`] for a refusal: a denial is counted and logged.
    pub(super) fn may_or_deny(
        &self,
        conn: ConnId,
        access: Access,
        topic: &str,
    ) -> Result<(), Denial> {
        let decided = self.may(conn, access, topic);
        if let Err(denial) = decided {
            let dialect = self.dialect_of(conn).map_or("?", |d| d.name());
            self.denied(conn, dialect, access, topic, denial);
        }
        decided
    }

    /// Counts a refusal of the access rule and logs it (never a token: the
    /// router holds none).
    pub(super) fn denied(
        &self,
        conn: ConnId,
        dialect: &'static str,
        access: Access,
        topic: &str,
        denial: Denial,
    ) {
        if let Some(metrics) = &self.metrics {
            metrics.access_denied(dialect, denial.label());
        }
        crate::log::info!(
            "conn={} dialect={dialect} reason={}: may not {access} {topic:?}: {denial}",
            conn.0,
            denial.label()
        );
    }

    /// [`Router::may`] as a request's refusal.
    pub(super) fn may_request(
        &self,
        conn: ConnId,
        access: Access,
        topic: &str,
    ) -> Result<(), RequestError> {
        self.may_or_deny(conn, access, topic)
            .map_err(|denial| match denial {
                Denial::Reserved => RequestError::Reserved(topic.to_string()),
                Denial::NotGranted => RequestError::NotGranted {
                    topic: topic.to_string(),
                    access,
                },
            })
    }

    fn member(&self, conn: ConnId) -> Option<&Member> {
        match self.conns.get(&conn)? {
            Conn::Member(member) => Some(member),
            _ => None,
        }
    }

    fn member_mut(&mut self, conn: ConnId) -> Option<&mut Member> {
        match self.conns.get_mut(&conn)? {
            Conn::Member(member) => Some(member),
            _ => None,
        }
    }

    /// Every member speaking `dialect`.
    fn members_speaking(&self, dialect: Dialect) -> impl Iterator<Item = ConnId> + '_ {
        self.conns
            .iter()
            .filter_map(move |(&conn, state)| match state {
                Conn::Member(member) if member.dialect() == dialect => Some(conn),
                _ => None,
            })
    }

    /// `{"concierge": n, "channels": n, …}`: members by dialect, for
    /// `hub.info` and the `$sys` snapshot.
    fn member_counts(&self) -> serde_json::Map<String, serde_json::Value> {
        Dialect::ALL
            .iter()
            .filter(|d| d.uses_router())
            .map(|&d| {
                (
                    d.name().to_string(),
                    self.members_speaking(d).count().into(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod access_tests;
#[cfg(all(test, feature = "redis"))]
mod cluster_tests;
#[cfg(test)]
mod tests;
