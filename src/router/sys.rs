//! The reserved topic `$sys`: the hub's own status, for the status page.
//!
//! Channels clients listen to it like any channel (`/$sys/listen`); nobody
//! publishes to it but the router, which sends every listener a snapshot
//! of its state and the process's counters about once a
//! [`SNAPSHOT_INTERVAL`]. The timer runs only while `$sys` has
//! subscribers, so an idle server stays idle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::calls::raw;
use super::{Delivery, Event, Message, Origin, Router, Target, Timer};
use crate::metrics::Metrics;

/// The reserved topic's name. `$` is not a channel character, so no
/// client-made topic can take it.
pub const SYS_TOPIC: &str = "$sys";

/// How often `$sys` listeners get a snapshot.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);

/// Whether clients are forbidden to publish to `topic`.
pub fn is_reserved(topic: &str) -> bool {
    topic == SYS_TOPIC
}

impl Router {
    /// Starts the snapshot timer if `$sys` has subscribers and it is not
    /// running. The first snapshot comes at once, so a page shows
    /// something as soon as it connects.
    pub(super) fn schedule_snapshots(&mut self, now: Instant) {
        if !self.sys_ticking && self.sys_listened() {
            self.sys_ticking = true;
            self.timers.set(now, Timer::SysSnapshot);
        }
    }

    fn sys_listened(&self) -> bool {
        self.topics
            .get(SYS_TOPIC)
            .is_some_and(|t| !t.subscribers.is_empty())
    }

    /// The snapshot timer fired: one snapshot to every `$sys` subscriber,
    /// and the next one scheduled while there are any.
    pub(super) fn snapshot_round(&mut self, now: Instant) -> Vec<Delivery> {
        self.sys_ticking = false;
        let Some(topic) = self.topics.get(SYS_TOPIC) else {
            return Vec::new();
        };
        let to: Vec<_> = topic.subscribers.iter().copied().collect();
        if to.is_empty() {
            return Vec::new();
        }
        let info = self.topic_info(SYS_TOPIC, topic);
        let Ok(event_id) = crate::id::token("sys_", 8) else {
            return Vec::new(); // no randomness now; the next round retries
        };
        let message = Message {
            origin: Origin::Http,
            event_id,
            requires_ack: false,
            target: Target::Topic(SYS_TOPIC.to_string()),
            topic: Some(info),
            data: raw(&self.status(now)),
        };
        self.sys_ticking = true;
        self.timers.set(now + SNAPSHOT_INTERVAL, Timer::SysSnapshot);
        vec![Delivery {
            to,
            event: Event::Message(Arc::new(message)),
        }]
    }

    /// The snapshot's JSON (documented in the docs/demos.md, "See it").
    pub fn status(&self, now: Instant) -> Value {
        // Only reads: the counters belong to the threads that count.
        let count = |get: fn(&Metrics) -> u64| self.metrics.as_deref().map_or(0, get);
        let connections = self.member_counts();
        let topics: Vec<Value> = self
            .topics
            .iter()
            .map(|(name, t)| json!({"name": name, "subscribers": t.subscribers.len()}))
            .collect();
        let mut documents: Vec<Value> = self
            .documents
            .iter()
            .map(|(id, doc)| {
                let editors: Vec<String> = doc
                    .editors()
                    .filter_map(|c| self.member(c).map(|m| m.info.name.clone()))
                    .collect();
                json!({"id": id, "editors": editors})
            })
            .collect();
        // The map's order is random; the page should not reshuffle.
        documents.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": now.saturating_duration_since(self.started).as_secs(),
            "connections": connections,
            "topics": topics,
            "documents": documents,
            "messages": {
                "in": count(|m| m.messages_received.total()),
                "out": count(|m| m.messages_sent.total()),
            },
            "slow_consumers": count(|m| m.slow_consumers.get()),
        })
    }
}
