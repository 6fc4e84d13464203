//! The writer thread: carries out the router's records on Redis, and keeps
//! this node's heartbeat while watching the other nodes'.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::bus::Envelope;
use super::documents::Follow;
use super::keys::{self, eval, Keys};
use super::{Connection, Role, HEARTBEAT, NODE_TTL};
use crate::log;
use crate::metrics::Metrics;
use crate::router::cluster::{Claimable, DocumentEntry, Inbound, LinkReceiver, Outgoing};
use crate::router::{Command, ConnId};

/// Bytes of document edits kept while Redis is away; the oldest go past
/// it (and are lost for every copy of their document alike).
const MAX_WAITING_EDIT_BYTES: usize = 16 << 20;
/// How long a claim waits for Redis before this node grants it alone.
const CLAIM_PATIENCE: Duration = Duration::from_secs(5);
/// How often a waiting claim is tried again.
const CLAIM_RETRY: Duration = Duration::from_millis(50);

/// The writer thread's state.
pub struct Writer {
    redis: Connection,
    keys: Keys,
    /// The router thread's records. Closed by the router thread's end,
    /// which ends this thread.
    records: LinkReceiver,
    /// The document follower's orders; dropping it ends the follower.
    follow: Sender<Follow>,
    /// The router's queue, for answers (claims) and news (nodes gone).
    commands: Sender<Command>,
    metrics: Arc<Metrics>,
    /// IDENTIFYs waiting for Redis to grant their name, oldest first,
    /// with the time this node stops waiting for Redis.
    waiting_claims: VecDeque<(ConnId, Claimable, Instant)>,
    /// Edits not yet appended to their streams, oldest first.
    waiting_edits: EditQueue,
    /// Names given back while Redis was away, to give back once it is
    /// here (unless claimed again meanwhile).
    releases: BTreeSet<Claimable>,
    /// Set when a record could not be carried out: once Redis answers
    /// again, the router is asked to say hello and announce its members,
    /// so that the other nodes' views of this one are whole again.
    resync_due: bool,
    /// The other nodes seen alive at the last heartbeat.
    alive: BTreeSet<String>,
    /// When the last heartbeat went through (`None` before the first,
    /// which finds no key of ours: normal). A claim made long after it
    /// may find this node's key gone (see `claim`).
    last_beat: Option<Instant>,
}

impl Writer {
    /// A writer for `keys.node`.
    pub fn new(
        client: redis::Client,
        keys: Keys,
        records: LinkReceiver,
        follow: Sender<Follow>,
        commands: Sender<Command>,
        metrics: Arc<Metrics>,
    ) -> Writer {
        Writer {
            redis: Connection::new(client, Role::Writer, metrics.clone()),
            keys,
            records,
            follow,
            commands,
            metrics,
            waiting_claims: VecDeque::new(),
            waiting_edits: EditQueue::default(),
            releases: BTreeSet::new(),
            resync_due: false,
            alive: BTreeSet::new(),
            last_beat: None,
        }
    }

    /// Runs until the router thread ends.
    pub fn run(mut self) {
        let mut next_beat = Instant::now();
        loop {
            let wake = match self.waiting_claims.is_empty() {
                true => next_beat,
                false => next_beat.min(Instant::now() + CLAIM_RETRY),
            };
            match self.records.recv_deadline(wake) {
                Ok(record) => self.carry_out(record),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return self.leave(),
            }
            self.claim_waiting();
            if Instant::now() >= next_beat {
                self.heartbeat();
                self.append_waiting();
                next_beat = Instant::now() + HEARTBEAT;
            }
        }
    }

    fn carry_out(&mut self, record: Outgoing) {
        match record {
            Outgoing::Publish(record) => self.publish(&record),
            Outgoing::Claim { conn, claim } => {
                self.releases.remove(&claim);
                let deadline = Instant::now() + CLAIM_PATIENCE;
                self.waiting_claims.push_back((conn, claim, deadline));
                self.claim_waiting();
            }
            Outgoing::Release { claim } => {
                self.releases.insert(claim);
                self.release_waiting();
            }
            Outgoing::Reclaim { claims } => {
                for claim in claims {
                    self.releases.remove(&claim);
                    match self.claim(&claim) {
                        Some(true) => {}
                        Some(false) => log::warn!("cluster: {claim} is held on two nodes now"),
                        None => self.resync_due = true,
                    }
                }
            }
            Outgoing::Follow { computer, text } => {
                let _ = self.follow.send(Follow::Start { computer, text });
            }
            Outgoing::Unfollow { computer } => {
                let _ = self.follow.send(Follow::Stop { computer });
            }
            Outgoing::Append { computer, entry } => {
                let dropped = self.waiting_edits.push(computer, entry);
                self.metrics.cluster.dropped.add(dropped);
                self.append_waiting();
            }
            Outgoing::Snapshot {
                computer,
                text,
                id,
                count,
            } => {
                let (ms, seq, count) = (id.ms.to_string(), id.seq.to_string(), count.to_string());
                let keys = [&self.keys.snapshot(&computer), &self.keys.meta(&computer)];
                let store = eval(keys::SNAPSHOT, &keys, &[&ms, &seq, &count, &text]);
                let _: Option<i64> = self.redis.run(&store);
            }
        }
    }

    /// Publishes a record on the bus; with Redis away it is dropped.
    fn publish(&mut self, record: &crate::router::cluster::Record) {
        let envelope = Envelope {
            from: self.keys.node.clone(),
            record: record.clone(),
        };
        let Ok(json) = serde_json::to_string(&envelope) else {
            return; // the records are plain data: always serializable
        };
        let publish = redis::cmd("PUBLISH").arg(self.keys.bus()).arg(json).clone();
        match self.redis.run::<i64>(&publish) {
            Some(_) => self.metrics.cluster.published.increment(),
            None => {
                self.metrics.cluster.dropped.increment();
                // Lost because Redis was away: mend once it is back. (One it
                // refuses would be refused again.)
                self.resync_due |= !self.redis.connected();
            }
        }
    }

    /// Gives back the names waiting to be, while Redis answers.
    fn release_waiting(&mut self) {
        while let Some(claim) = self.releases.first().cloned() {
            let release = eval(
                keys::RELEASE,
                &[&self.keys.claim(&claim)],
                &[&self.keys.node],
            );
            // Tried again later if Redis is away; one it refuses is dropped,
            // not left to block the others.
            if self.redis.run::<i64>(&release).is_none() && !self.redis.connected() {
                return;
            }
            self.releases.remove(&claim);
        }
    }

    /// Answers the claims waiting, oldest first, while Redis answers. A
    /// claim Redis cannot answer within [`CLAIM_PATIENCE`] is granted by
    /// this node alone: serving clients matters more than a name unique
    /// for sure while Redis is away (docs/clustering.md says so).
    fn claim_waiting(&mut self) {
        while let Some((conn, claim, deadline)) = self.waiting_claims.front().cloned() {
            let granted = match self.claim(&claim) {
                Some(granted) => granted,
                None if Instant::now() >= deadline => {
                    log::warn!("cluster: Redis is away; {claim} granted by this node alone");
                    true
                }
                None => return,
            };
            self.waiting_claims.pop_front();
            let answer = Inbound::Claimed { conn, granted };
            let _ = self.commands.send(Command::Cluster(Box::new(answer)));
        }
    }

    /// Claims a name or group for this node: `Some(granted)`, `None` if
    /// Redis is away.
    fn claim(&mut self, claim: &Claimable) -> Option<bool> {
        // This node's heartbeat key first: a name claimed while it does
        // not exist (before the first beat, or after Redis was away longer
        // than the key lives) has, for the other nodes' claims, a dead
        // holder, and they take it: two HELLOs for one name, seen right
        // after a node started.
        if !self.beat_is_fresh() {
            self.heartbeat();
            if !self.beat_is_fresh() {
                return None; // Redis is away
            }
        }
        let prefix = self.keys.node_prefix();
        let command = eval(
            keys::CLAIM,
            &[&self.keys.claim(claim)],
            &[&self.keys.node, &prefix],
        );
        self.redis.run::<i64>(&command).map(|granted| granted == 1)
    }

    /// Appends the waiting edits to their streams, oldest first, until one
    /// fails.
    fn append_waiting(&mut self) {
        while let Some((computer, entry)) = self.waiting_edits.front() {
            let Ok(json) = serde_json::to_string(entry) else {
                self.waiting_edits.pop_front();
                continue;
            };
            let keys = [&self.keys.stream(computer), &self.keys.meta(computer)];
            let (seq, length) = (entry.seq.to_string(), keys::STREAM_LENGTH.to_string());
            let append = eval(keys::APPEND, &keys, &[&json, &entry.node, &seq, &length]);
            match self.redis.run::<i64>(&append) {
                Some(_) => self.waiting_edits.pop_front(),
                None if self.redis.connected() => {
                    // Refused (not away): dropped, not left to block the rest.
                    self.metrics.cluster.dropped.increment();
                    self.waiting_edits.pop_front();
                }
                None => return,
            }
        }
    }

    /// Whether this node's heartbeat key surely still exists: its last
    /// renewal is less than half its life ago (the other half is room for
    /// the round trip and a late timer).
    fn beat_is_fresh(&self) -> bool {
        self.last_beat
            .is_some_and(|beat| beat.elapsed() < NODE_TTL / 2)
    }

    /// Renews this node's heartbeat key, and reports the nodes whose key
    /// is gone. A missing key of our own means the others counted this
    /// node gone (Redis restarted, or this node stalled): it joins again.
    fn heartbeat(&mut self) {
        let node_key = self.keys.node_key(&self.keys.node);
        let beat = redis::cmd("SET")
            .arg(&node_key)
            .arg("1")
            .arg("PX")
            .arg(u64::try_from(NODE_TTL.as_millis()).unwrap_or(u64::MAX))
            .arg("GET")
            .clone();
        let Some(previous) = self.redis.run::<Option<String>>(&beat) else {
            return;
        };
        let first = self.last_beat.replace(Instant::now()).is_none();
        let gone = previous.is_none() && !first;
        if gone {
            log::warn!("cluster: this node had been counted gone; joining again");
        }
        if gone || std::mem::take(&mut self.resync_due) {
            let _ = self
                .commands
                .send(Command::Cluster(Box::new(Inbound::Connected)));
        }
        self.release_waiting();
        let join = redis::cmd("SADD")
            .arg(self.keys.nodes())
            .arg(&self.keys.node)
            .clone();
        let _: Option<i64> = self.redis.run(&join);
        self.watch_nodes();
    }

    /// Compares the live nodes with those seen last time.
    fn watch_nodes(&mut self) {
        let checked = Instant::now();
        let Some(known) = self
            .redis
            .run::<Vec<String>>(redis::cmd("SMEMBERS").arg(self.keys.nodes()))
        else {
            return;
        };
        let mut alive = BTreeSet::new();
        for node in known.into_iter().filter(|n| *n != self.keys.node) {
            let exists = redis::cmd("EXISTS").arg(self.keys.node_key(&node)).clone();
            match self.redis.run::<i64>(&exists) {
                Some(1) => {
                    alive.insert(node);
                }
                Some(_) => {
                    let forget = redis::cmd("SREM").arg(self.keys.nodes()).arg(&node).clone();
                    let _: Option<i64> = self.redis.run(&forget);
                }
                None => return,
            }
        }
        // Just (re)connected, perhaps to a restarted Redis: the others'
        // keys may not be back yet. Nobody is declared gone for one TTL.
        if self.redis.age() < NODE_TTL {
            alive.extend(self.alive.iter().cloned());
        }
        for gone in self.alive.difference(&alive) {
            log::warn!("cluster: node {gone} stopped its heartbeat; its clients are gone");
        }
        // Every time, not only on a change: the router compares with what
        // it has heard since, which the bus may have told it after this
        // look began (a node that was just back).
        let nodes = alive.iter().cloned().collect();
        let news = Inbound::LiveNodes { nodes, checked };
        let _ = self.commands.send(Command::Cluster(Box::new(news)));
        self.metrics.cluster.nodes.set(alive.len() as u64 + 1);
        self.alive = alive;
    }

    /// The router is gone (the process is ending): the heartbeat key goes
    /// now, so the others need not wait for it to expire.
    fn leave(mut self) {
        let node_key = self.keys.node_key(&self.keys.node);
        let _: Option<i64> = self.redis.run(redis::cmd("DEL").arg(node_key));
    }
}

/// Document edits waiting to be appended, oldest first, bounded in bytes.
#[derive(Default)]
struct EditQueue {
    edits: VecDeque<(String, DocumentEntry)>,
    bytes: usize,
}

impl EditQueue {
    /// Queues an edit; returns how many old ones were dropped for room.
    fn push(&mut self, computer: String, entry: DocumentEntry) -> u64 {
        self.bytes += weight(&computer, &entry);
        self.edits.push_back((computer, entry));
        let mut dropped = 0;
        while self.bytes > MAX_WAITING_EDIT_BYTES && self.edits.len() > 1 {
            self.pop_front();
            dropped += 1;
        }
        dropped
    }

    fn front(&self) -> Option<&(String, DocumentEntry)> {
        self.edits.front()
    }

    fn pop_front(&mut self) {
        if let Some((computer, entry)) = self.edits.pop_front() {
            self.bytes -= weight(&computer, &entry);
        }
    }
}

/// About how many bytes a waiting edit holds.
fn weight(computer: &str, entry: &DocumentEntry) -> usize {
    let text = match &entry.edit {
        crate::router::Edit::Write { text, .. } => text.len(),
        _ => 0,
    };
    64 + computer.len() + entry.user.len() + text
}
