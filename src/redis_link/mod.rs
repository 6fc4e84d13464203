//! The Redis link: how a node talks to the others of its cluster
//! (`--redis`; a build with the `redis` feature).
//!
//! Three threads, each with its own Redis connection, talk to the router
//! over channels like any connection does:
//! - `writer.rs` takes the router's [`Outgoing`] records and carries them
//!   out (publish on the bus, claim and release names, append document
//!   edits, store document snapshots), and keeps this node's heartbeat
//!   key alive while watching the others';
//! - `bus.rs` subscribes to the bus and hands other nodes' records to the
//!   router as [`Command::Cluster`];
//! - `documents.rs` follows the streams of the documents this node holds
//!   and hands their entries to the router, in order.
//!
//! Redis being away never stops this node: records for the bus are
//! dropped (counted), claims are granted locally, document edits wait in
//! a bounded queue, and every thread retries with backoff. The keys are in
//! `keys.rs`.
//!
//! [`Outgoing`]: crate::router::cluster::Outgoing
//! [`Command::Cluster`]: crate::router::Command::Cluster

mod bus;
mod documents;
mod keys;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::log;
use crate::metrics::Metrics;
use crate::router::cluster::{link_queue, LinkQueue};
use crate::router::Command;

/// How often a node renews its heartbeat key and looks at the others'.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a heartbeat key lives: a node silent this long is gone.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one Redis command may take before the connection counts as
/// broken (a stream read blocks for less). Well under [`NODE_TTL`], so a
/// stalled Redis cannot hold the heartbeat back until the key expires.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes of records the router may have queued for the writer; more are
/// dropped (and counted).
const OUTGOING_BYTES: usize = 64 << 20;

/// Why the link could not start.
#[derive(Debug)]
pub enum LinkError {
    /// The URL is not a Redis URL.
    BadUrl(String),
    /// A thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::BadUrl(why) => write!(f, "--redis: {why}"),
            LinkError::Thread(e) => write!(f, "cannot start the Redis link: {e}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// A running link. Dropping it changes nothing: its threads end when the
/// router's side of their channels closes, with the process.
#[derive(Debug)]
pub struct Link {
    /// Where the router thread sends its records; the writer thread holds
    /// the receiver.
    pub outgoing: LinkQueue,
}

/// Starts the link of node `node` to the Redis at `url`. Nothing connects
/// yet: the threads do, and keep trying.
pub fn start(
    url: &str,
    node: String,
    commands: Sender<Command>,
    metrics: Arc<Metrics>,
) -> Result<Link, LinkError> {
    let client = redis::Client::open(url).map_err(|e| LinkError::BadUrl(e.to_string()))?;
    metrics.cluster.enable();
    let (outgoing, records) = link_queue(OUTGOING_BYTES);
    let (follow, follows) = crossbeam_channel::unbounded();
    let keys = keys::Keys::new(&node);
    log::info!(
        "cluster: node {node}, Redis at {}",
        crate::config::without_password(url)
    );
    let documents = documents::Follower::new(
        client.clone(),
        keys.clone(),
        follows,
        commands.clone(),
        metrics.clone(),
    );
    spawn("cluster-documents", move || documents.run())?;
    let bus = bus::Subscriber::new(
        client.clone(),
        keys.clone(),
        commands.clone(),
        metrics.clone(),
    );
    spawn("cluster-bus", move || bus.run())?;
    let writer = writer::Writer::new(client, keys, records, follow, commands, metrics);
    spawn("cluster-writer", move || writer.run())?;
    Ok(Link { outgoing })
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> Result<(), LinkError> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(256 * 1024)
        .spawn(run)
        .map(drop)
        .map_err(LinkError::Thread)
}

/// One Redis connection that reconnects after failures, waiting longer
/// each time (100 ms doubling to 5 s), and reports its state.
struct Connection {
    client: redis::Client,
    con: Option<redis::Connection>,
    /// When the next attempt may be made.
    retry_at: Instant,
    backoff: Duration,
    /// Which of the link's connections this is, for logs and metrics.
    role: Role,
    /// When the current connection was made.
    since: Instant,
    metrics: Arc<Metrics>,
}

/// The link's three connections.
#[derive(Debug, Clone, Copy)]
enum Role {
    Writer,
    Bus,
    Documents,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Bus => "bus",
            Role::Documents => "documents",
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Connection {
    fn new(client: redis::Client, role: Role, metrics: Arc<Metrics>) -> Connection {
        Connection {
            client,
            con: None,
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
            role,
            since: Instant::now(),
            metrics,
        }
    }

    /// The connection, connecting if it is time to try; `None` while
    /// Redis is away.
    fn get(&mut self) -> Option<&mut redis::Connection> {
        if self.con.is_none() && Instant::now() >= self.retry_at {
            match self.connect() {
                Ok(con) => {
                    if self.backoff > FIRST_BACKOFF {
                        log::info!("cluster: Redis is back ({})", self.role.name());
                    }
                    self.backoff = FIRST_BACKOFF;
                    self.metrics.cluster.set_up(self.role as usize, true);
                    self.since = Instant::now();
                    self.con = Some(con);
                }
                Err(e) => self.failed(&e),
            }
        }
        self.con.as_mut()
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        con.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(con)
    }

    /// A command failed: the connection is dropped and tried again later.
    fn failed(&mut self, error: &redis::RedisError) {
        if self.con.take().is_some() || self.backoff == FIRST_BACKOFF {
            log::warn!(
                "cluster: Redis unreachable ({}): {error}; retrying with backoff",
                self.role.name()
            );
            self.metrics.cluster.reconnects.increment();
        }
        self.metrics.cluster.set_up(self.role as usize, false);
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Runs `command`; a failure drops the connection.
    fn run<T: redis::FromRedisValue>(&mut self, command: &redis::Cmd) -> Option<T> {
        let con = self.get()?;
        match command.query(con) {
            Ok(value) => Some(value),
            Err(e) if unavailable(&e) => {
                self.failed(&e);
                None
            }
            Err(e) => {
                log::warn!("cluster: Redis refused a command: {e}");
                None
            }
        }
    }

    /// Whether a connection is up (a command that failed while it stays up
    /// was refused by Redis, not lost).
    fn connected(&self) -> bool {
        self.con.is_some()
    }

    /// How long the current connection has been up.
    fn age(&self) -> Duration {
        self.since.elapsed()
    }

    /// How long until the next connection attempt (zero when connected).
    fn wait(&self) -> Duration {
        match self.con {
            Some(_) => Duration::ZERO,
            None => self.retry_at.saturating_duration_since(Instant::now()),
        }
    }
}

/// Whether an error means this connection cannot serve: broken, timed
/// out, or a server that cannot take writes (a replica after a failover,
/// one loading its data, one without its master). Anything else is one
/// command's problem.
fn unavailable(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_timeout()
        || matches!(error.code(), Some("READONLY" | "LOADING" | "MASTERDOWN"))
}
