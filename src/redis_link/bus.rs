//! The bus thread: subscribes to the cluster's channel and hands the
//! other nodes' records to the router, in the order Redis delivers them.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::keys::Keys;
use super::{Connection, Role};
use crate::log;
use crate::metrics::Metrics;
use crate::router::cluster::{Inbound, Record};
use crate::router::Command;

/// How long a read waits before the connection is checked with a PING.
const IDLE_CHECK: Duration = Duration::from_secs(2);

/// A record as it travels on the bus: JSON `{"from": node, "record": …}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that published it.
    pub from: String,
    /// What it says.
    pub record: Record,
}

/// The bus thread's state.
pub struct Subscriber {
    redis: Connection,
    keys: Keys,
    /// The router's queue. A send fails only when the router is gone,
    /// which ends this thread.
    commands: Sender<Command>,
    metrics: Arc<Metrics>,
}

/// Why listening stopped.
enum Stop {
    /// The connection failed: connect again.
    Redis(redis::RedisError),
    /// The router is gone: end the thread.
    Router,
}

impl Subscriber {
    /// A subscriber for `keys.node`.
    pub fn new(
        client: redis::Client,
        keys: Keys,
        commands: Sender<Command>,
        metrics: Arc<Metrics>,
    ) -> Subscriber {
        Subscriber {
            redis: Connection::new(client, Role::Bus, metrics.clone()),
            keys,
            commands,
            metrics,
        }
    }

    /// Runs until the router is gone.
    pub fn run(mut self) {
        loop {
            std::thread::sleep(self.redis.wait());
            if self.redis.get().is_none() {
                continue;
            }
            match self.listen() {
                Stop::Router => return,
                Stop::Redis(e) => self.redis.failed(&e),
            }
        }
    }

    /// Subscribes, tells the router it is (back) in the cluster, then
    /// passes on records until something fails.
    fn listen(&mut self) -> Stop {
        let bus = self.keys.bus();
        let Some(con) = self.redis.get() else {
            return Stop::Redis(redis::RedisError::from(std::io::Error::other(
                "not connected",
            )));
        };
        let mut pubsub = con.as_pubsub();
        if let Err(e) = pubsub.subscribe(&bus) {
            return Stop::Redis(e);
        }
        if let Err(e) = pubsub.set_read_timeout(Some(IDLE_CHECK)) {
            return Stop::Redis(e);
        }
        // Subscribed first, then announced: nothing said after our hello
        // can be missed.
        if self
            .commands
            .send(Command::Cluster(Box::new(Inbound::Connected)))
            .is_err()
        {
            return Stop::Router;
        }
        loop {
            let message = match pubsub.get_message() {
                Ok(message) => message,
                // Quiet: make sure the connection is still there.
                Err(e) if e.is_timeout() => match pubsub.ping::<redis::Value>() {
                    Ok(_) => continue,
                    Err(e) => return Stop::Redis(e),
                },
                Err(e) => return Stop::Redis(e),
            };
            let envelope: Envelope = match serde_json::from_slice(message.get_payload_bytes()) {
                Ok(envelope) => envelope,
                Err(e) => {
                    log::warn!("cluster: a record on the bus is not understood: {e}");
                    continue;
                }
            };
            if envelope.from == self.keys.node {
                continue; // our own, already applied here
            }
            self.metrics.cluster.received.increment();
            let news = Inbound::Bus {
                from: envelope.from,
                record: envelope.record,
                received: std::time::Instant::now(),
            };
            if self
                .commands
                .send(Command::Cluster(Box::new(news)))
                .is_err()
            {
                return Stop::Router;
            }
        }
    }
}
