//! Members: identified clients of every dialect, and how they join, stay
//! alive (channels' PINGs, common's HEARTBEATs), change presence and leave.

use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use serde_json::value::RawValue;

use super::calls::raw;
use super::subscriptions::Subscriptions;
use super::Dialect;
use super::{
    Access, Addressee, ClientInfo, Conn, ConnId, Delivery, Disconnect, Event, Grant, Joiner,
    MemberView, PresenceChange, Router, Seq, Timer,
};
use crate::id::{self, Uuid};

/// The largest presence a member may have, in bytes of JSON: presence
/// goes to every member of a topic on every join, so it stays small. The
/// channels dialect refuses a larger one before the router sees it; a
/// world profile (a presence too) is refused here.
pub const MAX_PRESENCE_BYTES: usize = 4096;

/// An identified client.
#[derive(Debug)]
pub struct Member {
    /// Name, nickname, uuid and tags, shared with the messages it sends.
    pub info: Arc<ClientInfo>,
    /// What channels clients see of it.
    pub presence: Presence,
    /// The topics it subscribes to, ordered by name.
    pub subscriptions: Subscriptions,
    /// What it may read and write, fixed at admission.
    pub grant: Grant,
    /// When the token it was admitted with expires (it is closed then),
    /// if it came with one that this clock can hold.
    pub token_expires: Option<Instant>,
    /// What its dialect needs the router to remember.
    pub kind: Kind,
}

/// What channels clients see of a member: a JSON object.
#[derive(Debug)]
pub enum Presence {
    /// Its own: chosen by a channels client, made at admission for world,
    /// blazing and common clients, or told by the node of a member that
    /// lives on another node.
    Own(Arc<RawValue>),
    /// Made from its `ClientInfo` whenever it is needed (when the member
    /// joins or leaves a topic, for `hub.presence`, for the cluster): a
    /// concierge client's, which never changes, so a hub of concierge
    /// clients does not keep one per member (150 bytes each).
    FromInfo,
}

/// The dialect-specific part of a member.
#[derive(Debug)]
pub enum Kind {
    /// A concierge client.
    Concierge,
    /// A channels listener, which the router pings.
    Channels(Liveness),
    /// A common client, which must HEARTBEAT before `heartbeat_due`.
    Common {
        /// When its next HEARTBEAT is due at the latest.
        heartbeat_due: Instant,
    },
    /// A world client. Boxed, as is `Blazing`: a member's `Kind` is as large
    /// as its largest variant, and every member of every dialect pays for it
    /// in the router's table.
    World(Box<WorldUser>),
    /// A blazing client, editing a computer's document.
    Blazing(Box<Editor>),
}

/// A blazing client: whose document it edits and where its cursor is.
#[derive(Debug, Clone)]
pub struct Editor {
    /// The computer id (document).
    pub computer: String,
    /// The user (token `sub`): the `actioner` others see.
    pub user: String,
    /// Its cursor.
    pub cursor: super::documents::text::Cursor,
    /// When it joined.
    pub joined: Instant,
    /// How long its token had left then.
    pub token_left: std::time::Duration,
    /// When its token expires, if that is an instant this clock can hold
    /// (a token may be signed to expire in billions of years).
    pub expires: Option<Instant>,
}

/// Who a world client is.
#[derive(Debug, Clone)]
pub struct WorldUser {
    /// The world it connected to.
    pub world: String,
    /// The user (token `sub` or `client_id`).
    pub user: String,
    /// The user's display name.
    pub display: Option<String>,
    /// The token's `traits`, for embedders' methods.
    pub traits: Vec<String>,
    /// When it authenticated, in the router's count of world joins: the
    /// lowest is the oldest, the first to be replaced.
    pub since: u64,
}

/// A channels listener's PING bookkeeping.
#[derive(Debug)]
pub struct Liveness {
    /// The last measured PING→PONG round trip.
    pub latency_ms: u64,
    /// When the oldest unanswered PING went out, if one is outstanding.
    pub ping_sent: Option<Instant>,
}

impl Member {
    /// The dialect it speaks.
    pub fn dialect(&self) -> Dialect {
        match self.kind {
            Kind::Concierge => Dialect::Concierge,
            Kind::Channels(_) => Dialect::Channels,
            Kind::Common { .. } => Dialect::Common,
            Kind::World(_) => Dialect::World,
            Kind::Blazing(_) => Dialect::Blazing,
        }
    }

    /// How channels clients see it.
    pub fn view(&self) -> MemberView {
        MemberView {
            client_id: self.info.name.clone(),
            presence: self.presence(),
        }
    }

    /// Its presence: a JSON object.
    pub fn presence(&self) -> Arc<RawValue> {
        match &self.presence {
            Presence::Own(presence) => presence.clone(),
            Presence::FromInfo => concierge_presence(&self.info),
        }
    }

    /// What a frame addressed to it may say about it.
    pub fn addressee(&self) -> Addressee<'_> {
        let latency_ms = match &self.kind {
            Kind::Channels(liveness) => liveness.latency_ms,
            Kind::Concierge | Kind::Common { .. } | Kind::World(_) | Kind::Blazing(_) => 0,
        };
        Addressee {
            client_id: &self.info.name,
            latency_ms,
        }
    }
}

/// Who a member with a fresh name is: its name's prefix, display name,
/// tags and grant.
pub(super) struct Identity<'a> {
    prefix: &'a str,
    nickname: Option<String>,
    tags: Vec<String>,
    grant: Grant,
}

impl<'a> Identity<'a> {
    pub(super) fn new(
        prefix: &'a str,
        nickname: Option<String>,
        tags: Vec<String>,
        grant: Grant,
    ) -> Identity<'a> {
        Identity {
            prefix,
            nickname,
            tags,
            grant,
        }
    }
}

/// How many random ids a listener may draw before the namespace counts as
/// full; with 63^8 ids, one collision is already rare.
const ID_ATTEMPTS: usize = 8;

impl Router {
    pub(super) fn identify(
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
        self.timers.cancel(*deadline, Timer::Identify(conn));
        // Held here, or being claimed by another connection of this node.
        if self.names.contains_key(&name) || self.claiming(&name) {
            return self.evict(conn, Disconnect::NameTaken(name));
        }
        // In a cluster the name must also be free on every other node:
        // Redis decides, and the identification goes on when it answers.
        if self.claim(conn, &name, &nickname, &tags) {
            return Vec::new();
        }
        self.admit_concierge(conn, name, nickname, tags)
    }

    /// Makes `conn` a concierge member named `name` (free everywhere).
    pub(super) fn admit_concierge(
        &mut self,
        conn: ConnId,
        name: String,
        nickname: Option<String>,
        tags: Vec<String>,
    ) -> Vec<Delivery> {
        let uuid = match Uuid::new_v4() {
            Ok(uuid) => uuid,
            Err(e) => return self.evict(conn, Disconnect::Internal(format!("no uuid: {e}"))),
        };
        let info = ClientInfo {
            name,
            nickname,
            uuid,
            tags,
        };
        // It proved the hub's secret: a trusted service, like a common
        // client (without a secret, only what is public).
        let grant = self.policy.service_grant();
        self.admit(conn, info, Presence::FromInfo, grant, Kind::Concierge);
        vec![Delivery::one(conn, Event::Welcome { uuid })]
    }

    /// Makes a channels client a member under a fresh `client_…` id,
    /// listening to `topic`: it gets CONNECTED, the others PRESENCE:JOINED.
    /// Its grant must let it read `topic` (its connection checked that
    /// before the upgrade, under the policy of that moment).
    pub(super) fn listen(
        &mut self,
        conn: ConnId,
        topic: String,
        presence: Box<RawValue>,
        (grant, token_left): (Grant, Option<std::time::Duration>),
        now: Instant,
    ) -> Vec<Delivery> {
        if self.conns.contains_key(&conn) {
            return Vec::new(); // the session listens once
        }
        if let Err(denial) = self.policy.allows(&grant, Access::Read, &topic) {
            self.denied(conn, "channels", Access::Read, &topic, denial);
            return self.refuse(conn, Disconnect::NotGranted(topic));
        }
        let liveness = Liveness {
            latency_ms: 0,
            ping_sent: None,
        };
        let tags = vec!["channels".to_string()];
        let kind = Kind::Channels(liveness);
        let identity = Identity::new("client_", None, tags, grant);
        if let Err(refusal) = self.enroll(conn, identity, presence.into(), kind) {
            return refusal;
        }
        self.expire_token(conn, token_left, now);
        self.schedule_pings(now);
        let members = self.views_of(&topic, conn);
        let mut out = vec![Delivery::one(conn, Event::Connected { members })];
        out.extend(self.join_topic(conn, &topic));
        out
    }

    /// Makes `conn` a member named `identity.prefix` and 8 random
    /// characters, with a fresh uuid; if no identity can be had, refuses
    /// it instead.
    pub(super) fn enroll(
        &mut self,
        conn: ConnId,
        identity: Identity<'_>,
        presence: Arc<RawValue>,
        kind: Kind,
    ) -> Result<Uuid, Vec<Delivery>> {
        let (name, uuid) = match self.fresh_identity(identity.prefix) {
            Ok(identity) => identity,
            Err(why) => return Err(self.refuse(conn, Disconnect::Internal(why))),
        };
        let info = ClientInfo {
            name,
            nickname: identity.nickname,
            uuid,
            tags: identity.tags,
        };
        self.admit(conn, info, Presence::Own(presence), identity.grant, kind);
        Ok(uuid)
    }

    /// Closes `conn` when its token expires, `token_left` from `now` (a
    /// token signed to outlive this clock simply never expires here).
    pub(super) fn expire_token(
        &mut self,
        conn: ConnId,
        token_left: Option<std::time::Duration>,
        now: Instant,
    ) {
        let Some(expires) = token_left.and_then(|left| now.checked_add(left)) else {
            return;
        };
        if let Some(member) = self.member_mut(conn) {
            member.token_expires = Some(expires);
            self.timers.set(expires, Timer::TokenExpiry(conn));
        }
    }

    /// A name (`prefix` and 8 random characters) and uuid nobody holds.
    fn fresh_identity(&self, prefix: &str) -> Result<(String, Uuid), String> {
        for _ in 0..ID_ATTEMPTS {
            let client_id = id::token(prefix, 8).map_err(|e| e.to_string())?;
            let uuid = Uuid::new_v4().map_err(|e| e.to_string())?;
            if !self.names.contains_key(&client_id) && !self.uuids.contains_key(&uuid) {
                return Ok((client_id, uuid));
            }
        }
        Err("no free client id".to_string())
    }

    pub(super) fn admit(
        &mut self,
        conn: ConnId,
        info: ClientInfo,
        presence: Presence,
        grant: Grant,
        kind: Kind,
    ) {
        // Callers checked that the name is free.
        if let Entry::Vacant(slot) = self.names.entry(info.name.clone()) {
            slot.insert(conn);
        }
        self.uuids.insert(info.uuid, conn);
        let member = Member {
            info: Arc::new(info),
            presence,
            subscriptions: Subscriptions::default(),
            grant,
            token_expires: None,
            kind,
        };
        self.conns.insert(conn, Conn::Member(member));
        self.share_join(conn);
    }

    /// A PONG: the round trip since the PING is the member's new latency.
    pub(super) fn join(&mut self, conn: ConnId, who: Joiner, now: Instant) -> Vec<Delivery> {
        match who {
            Joiner::Common => self.join_common(conn, now),
            Joiner::World {
                world,
                user,
                display,
                traits,
                grant,
                token_left,
                id,
            } => {
                self.world_joins += 1;
                let since = self.world_joins;
                let user = WorldUser {
                    world,
                    user,
                    display,
                    traits,
                    since,
                };
                let out = self.join_world(conn, user, grant, id);
                self.expire_token(conn, token_left, now);
                out
            }
            Joiner::Blazing {
                computer,
                user,
                display,
                token_left,
                grant,
                stored,
            } => self.join_document(
                conn,
                computer,
                user,
                display,
                (token_left, grant),
                stored,
                now,
            ),
        }
    }

    /// A common client's HELLO_ACK: from now on it must HEARTBEAT.
    fn join_common(&mut self, conn: ConnId, now: Instant) -> Vec<Delivery> {
        let Some(Conn::Unidentified { deadline }) = self.conns.get(&conn) else {
            return Vec::new();
        };
        self.timers.cancel(*deadline, Timer::Identify(conn));
        let heartbeat_due = now + self.heartbeat_window();
        let tags = vec!["common".to_string()];
        let kind = Kind::Common { heartbeat_due };
        // It proved the hub's password: a trusted service, like a
        // concierge client (without a secret, only what is public).
        let identity = Identity::new("common_", None, tags, self.policy.service_grant());
        if let Err(refusal) = self.enroll(conn, identity, raw(&json!({})).into(), kind) {
            return refusal;
        }
        self.timers.set(heartbeat_due, Timer::Heartbeat(conn));
        Vec::new()
    }

    /// A common client's HEARTBEAT: answered, and the deadline moves on.
    pub(super) fn heartbeat(&mut self, conn: ConnId, now: Instant) -> Vec<Delivery> {
        let window = self.heartbeat_window();
        let Some(Kind::Common { heartbeat_due }) = self.member_mut(conn).map(|m| &mut m.kind)
        else {
            return Vec::new();
        };
        let old = std::mem::replace(heartbeat_due, now + window);
        self.timers.cancel(old, Timer::Heartbeat(conn));
        self.timers.set(now + window, Timer::Heartbeat(conn));
        vec![Delivery::one(conn, Event::HeartbeatAck)]
    }

    /// How long a common client may go without a HEARTBEAT: the interval
    /// it was told, and a second of slack for the network.
    pub(super) fn heartbeat_window(&self) -> std::time::Duration {
        self.settings.heartbeat_interval + std::time::Duration::from_secs(1)
    }

    pub(super) fn pong(&mut self, conn: ConnId, now: Instant) {
        if let Some(Kind::Channels(liveness)) = self.member_mut(conn).map(|m| &mut m.kind) {
            if let Some(sent) = liveness.ping_sent.take() {
                let latency = now.saturating_duration_since(sent).as_millis();
                liveness.latency_ms = u64::try_from(latency).unwrap_or(u64::MAX);
            }
        }
    }

    /// Replaces a member's presence and tells its channels' listeners (and,
    /// with `echo`, the member itself).
    pub(super) fn update_presence(
        &mut self,
        conn: ConnId,
        presence: Box<RawValue>,
        echo: bool,
    ) -> Vec<Delivery> {
        let Some(member) = self.member_mut(conn) else {
            return Vec::new();
        };
        member.presence = Presence::Own(presence.into());
        let view = member.view();
        let topics: Vec<String> = member.subscriptions.to_vec();
        self.share(conn, |conn| super::cluster::Record::Presence {
            conn,
            presence: view.presence.as_ref().to_owned(),
        });
        topics
            .iter()
            .filter_map(|topic| {
                self.presence_change(topic, conn, PresenceChange::Updated, &view, echo)
            })
            .collect()
    }

    /// Starts the PING rounds if they are not running.
    fn schedule_pings(&mut self, now: Instant) {
        if !self.pinging {
            self.pinging = true;
            self.timers
                .set(now + self.settings.ping_interval, Timer::PingRound);
        }
    }

    /// Pings every channels member, and drops those that have left a PING
    /// unanswered for two intervals.
    pub(super) fn ping_round(&mut self, now: Instant) -> Vec<Delivery> {
        let deadline = 2 * self.settings.ping_interval;
        let mut silent = Vec::new();
        let mut pinged = Vec::new();
        for (&conn, state) in &mut self.conns {
            let Conn::Member(Member {
                kind: Kind::Channels(liveness),
                ..
            }) = state
            else {
                continue;
            };
            if conn.is_shadow() {
                continue; // its own node pings it
            }
            match liveness.ping_sent {
                Some(sent) if now.saturating_duration_since(sent) >= deadline => silent.push(conn),
                _ => {
                    liveness.ping_sent.get_or_insert(now);
                    pinged.push(conn);
                }
            }
        }
        let mut out: Vec<Delivery> = pinged
            .into_iter()
            .map(|c| Delivery::one(c, Event::Ping))
            .collect();
        for conn in silent {
            out.extend(self.evict(conn, Disconnect::PingTimeout));
        }
        self.pinging = false;
        if self.members_speaking(Dialect::Channels).next().is_some() {
            self.schedule_pings(now);
        }
        out
    }

    /// Removes `conn` from the namespace: its topics go (or lose their
    /// owner), it leaves the ones it subscribes to, emits stop waiting for
    /// it. Returns what the others are told.
    pub(super) fn forget(&mut self, conn: ConnId) -> Vec<Delivery> {
        // The member stays in `conns` while its topics are dealt with, so
        // that they are described as they were, with it among subscribers.
        let (info, subscriptions) = match self.conns.get(&conn) {
            Some(Conn::Member(member)) => {
                let subscriptions: Vec<String> = member.subscriptions.to_vec();
                if let Some(expires) = member.token_expires {
                    self.timers.cancel(expires, Timer::TokenExpiry(conn));
                }
                (member.info.clone(), subscriptions)
            }
            Some(Conn::Unidentified { deadline }) => {
                self.timers.cancel(*deadline, Timer::Identify(conn));
                self.conns.remove(&conn);
                return Vec::new();
            }
            Some(Conn::Leaving { .. }) | None => {
                self.conns.remove(&conn);
                return Vec::new();
            }
        };
        let concierge = self.dialect_of(conn) == Some(Dialect::Concierge);
        self.share_leave(conn, &info.name, concierge);
        let mut out = self.drop_owned_topics(conn);
        out.extend(self.leave_rooms(conn));
        out.extend(self.leave_document(conn, self.now));
        for topic in &subscriptions {
            out.extend(self.leave_topic(conn, topic));
        }
        self.conns.remove(&conn);
        // Only if they are this member's: in a cluster a shadow may share a
        // name with a member here (both granted while Redis was away).
        if self.names.get(&info.name) == Some(&conn) {
            self.names.remove(&info.name);
        }
        if self.uuids.get(&info.uuid) == Some(&conn) {
            self.uuids.remove(&info.uuid);
        }
        self.stop_awaiting(conn);
        out
    }

    pub(super) fn fetch_clients(&self, seq: Seq) -> Event {
        let mut clients: Vec<Arc<ClientInfo>> = self
            .conns
            .values()
            .filter_map(|state| match state {
                Conn::Member(member) => Some(member.info.clone()),
                _ => None,
            })
            .collect();
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        Event::Clients { seq, clients }
    }

    pub(super) fn fetch_self(&self, conn: ConnId, seq: Seq) -> Event {
        match self.member(conn) {
            Some(member) => Event::Myself {
                seq,
                client: member.info.clone(),
                subscriptions: member.subscriptions.to_vec(),
            },
            None => Event::Refused {
                seq: Some(seq),
                error: super::RequestError::Malformed("not identified".into()),
            },
        }
    }
}

/// A concierge client's presence as channels clients see it.
fn concierge_presence(info: &ClientInfo) -> Arc<RawValue> {
    let presence = serde_json::json!({
        "name": info.name,
        "nickname": info.nickname,
        "uuid": info.uuid.to_string(),
        "tags": info.tags,
        "dialect": "concierge",
    });
    // A `Value` always serializes, and its text is valid JSON.
    let text = serde_json::to_string(&presence).expect("a JSON value serializes");
    RawValue::from_string(text)
        .expect("serde_json wrote valid JSON")
        .into()
}
