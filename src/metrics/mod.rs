//! Process-wide counters, served as Prometheus text at `GET /metrics`:
//! plain atomics that any thread bumps without a lock, rendered on demand.
//!
//! - this file: the counters, and what each thread calls to bump them;
//! - `render.rs`: the Prometheus text exposition of all of them;
//! - `process.rs`: what `/proc` says of the process (memory, threads,
//!   file descriptors, CPU time).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::dialect::Dialect;

mod process;
mod render;

use render::scalar;

/// A counter or gauge shared by all threads.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one unless that would reach `limit`; says whether it did.
    pub fn increment_below(&self, limit: u64) -> bool {
        self.0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// Subtracts one (for gauges).
    pub fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One counter per dialect, labelled `dialect="…"`.
#[derive(Debug, Default)]
pub struct PerDialect([Counter; Dialect::ALL.len()]);

impl PerDialect {
    /// The counter of `dialect`.
    pub fn of(&self, dialect: Dialect) -> &Counter {
        &self.0[dialect.index()]
    }

    /// The sum over every dialect (the unlabelled totals are these sums,
    /// not counters of their own, so the hot paths bump one counter).
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// Why a socket's HTTP exchange or WebSocket handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No complete request head before the deadline (408).
    Timeout,
    /// Not HTTP, or a head that does not parse (400).
    Malformed,
    /// A head larger than allowed (431).
    TooLarge,
    /// No endpoint at the path (404).
    NotFound,
    /// A WebSocket request missing or botching its upgrade headers (400, 426).
    BadUpgrade,
    /// `--max-connections` WebSockets already open (503).
    AtCapacity,
    /// `--max-handshakes` sockets already in their exchange (503).
    Busy,
}

/// Why a TLS handshake failed (`--tls-cert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// Not finished before the handshake deadline.
    Timeout,
    /// The client spoke plain text (HTTP) to the TLS port.
    Plaintext,
    /// More handshake bytes than any real client sends.
    TooLarge,
    /// The client refused this server's certificate (an alert saying so).
    Certificate,
    /// No protocol version or cipher suite in common.
    Incompatible,
    /// Any other broken handshake.
    Protocol,
    /// The client left before the handshake was done.
    Closed,
}

impl TlsFailure {
    /// Every reason, in the order they are rendered.
    pub const ALL: [TlsFailure; 7] = [
        TlsFailure::Timeout,
        TlsFailure::Plaintext,
        TlsFailure::TooLarge,
        TlsFailure::Certificate,
        TlsFailure::Incompatible,
        TlsFailure::Protocol,
        TlsFailure::Closed,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::Timeout => "timeout",
            TlsFailure::Plaintext => "plaintext",
            TlsFailure::TooLarge => "too_large",
            TlsFailure::Certificate => "certificate",
            TlsFailure::Incompatible => "incompatible",
            TlsFailure::Protocol => "protocol",
            TlsFailure::Closed => "closed",
        }
    }
}

impl HandshakeFailure {
    /// Every reason, in the order they are rendered.
    pub const ALL: [HandshakeFailure; 7] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Malformed,
        HandshakeFailure::TooLarge,
        HandshakeFailure::NotFound,
        HandshakeFailure::BadUpgrade,
        HandshakeFailure::AtCapacity,
        HandshakeFailure::Busy,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::TooLarge => "too_large",
            HandshakeFailure::NotFound => "not_found",
            HandshakeFailure::BadUpgrade => "bad_upgrade",
            HandshakeFailure::AtCapacity => "at_capacity",
            HandshakeFailure::Busy => "busy",
        }
    }
}

/// A latency histogram with fixed buckets (Prometheus' cumulative `le`).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound of [`Histogram::BOUNDS`] (not
    /// cumulative here; summed when rendered), and above the last.
    buckets: [Counter; Histogram::BOUNDS.len() + 1],
    sum_nanos: Counter,
}

impl Histogram {
    /// Bucket bounds in seconds: from 10 µs, where most commands land, to
    /// 100 ms, which would be a stalled hub.
    pub const BOUNDS: [f64; 9] = [
        0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1,
    ];

    /// Records one observation.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = Histogram::BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(Histogram::BOUNDS.len());
        self.buckets[bucket].increment();
        self.sum_nanos
            .add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    fn render(&self, text: &mut String, name: &str, help: &str) {
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} histogram\n");
        let mut cumulative = 0;
        for (bound, bucket) in Histogram::BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.get();
            let _ = writeln!(text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[Histogram::BOUNDS.len()].get();
        let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let seconds = self.sum_nanos.get() as f64 / 1e9;
        let _ = write!(text, "{name}_sum {seconds}\n{name}_count {cumulative}\n");
    }
}

/// The hub's counters. Every thread holds an `Arc` of one `Metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections open now.
    pub connections_open: Counter,
    /// WebSocket connections open now, by dialect.
    pub connections: PerDialect,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// Sockets in their HTTP exchange now: reading the request head, and
    /// for plain HTTP until answered (an emit waiting for ACKs included).
    pub handshakes_open: Counter,
    /// Failed HTTP exchanges and handshakes, by [`HandshakeFailure`]
    /// (the refusals at the caps and the timeouts among them, which
    /// `/metrics` also shows as series of their own).
    handshake_failures: [Counter; HandshakeFailure::ALL.len()],
    /// TLS handshakes completed (`--tls-cert`).
    pub tls_handshakes: Counter,
    /// TLS handshakes failed, by [`TlsFailure`].
    tls_failures: [Counter; TlsFailure::ALL.len()],
    /// Complete messages received, by dialect.
    pub messages_received: PerDialect,
    /// Payload bytes of those messages, by dialect.
    pub bytes_received: PerDialect,
    /// HTTP emits received.
    pub emits: Counter,
    /// Frames queued for clients by the router, by dialect.
    pub messages_sent: PerDialect,
    /// Bytes of those frames (headers included), by dialect.
    pub bytes_sent: PerDialect,
    /// Clients disconnected because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Large frames the router copied once into its spool, each then sent
    /// to many sockets without a copy each (net/spool.rs).
    pub spooled_frames: Counter,
    /// Commands the router failed on (each one a bug to report).
    pub router_panics: Counter,
    /// Upgrades refused because their address held
    /// `--max-connections-per-ip` WebSockets.
    pub connections_refused_per_ip: Counter,
    /// Client messages dropped for being over `--rate-limit`.
    pub messages_rate_limited: Counter,
    /// Clients closed for staying over `--rate-limit` after being told.
    pub rate_limit_disconnects: Counter,
    /// Topics (groups, channels, rooms) that exist now.
    pub topics: Counter,
    /// Shared documents held in memory now.
    pub documents: Counter,
    /// How long the router took over each command, deliveries included.
    pub command_time: Histogram,
    /// The Redis link's state (reported only with `--redis`).
    pub cluster: ClusterMetrics,
    /// Refusals of the access rules, by where they happened (a dialect,
    /// or `http` for emits) and why. A refusal is rare and never on the
    /// message path, so a locked map of the pairs seen is enough.
    access_denied:
        parking_lot::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

/// A link connection not needed yet (the documents connection while no
/// document is open).
const UNUSED: u64 = 2;

/// The Redis link of a node in a cluster.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Whether the node runs with `--redis`.
    enabled: std::sync::atomic::AtomicBool,
    /// Per link connection (writer, bus, documents): 1 while connected,
    /// 0 while not, [`UNUSED`] for the documents connection until a
    /// document needs it.
    up: [Counter; 3],
    /// Times a link connection was lost or could not be made.
    pub reconnects: Counter,
    /// Records published on the bus.
    pub published: Counter,
    /// Other nodes' records received from the bus.
    pub received: Counter,
    /// Records and edits dropped because Redis was away (or the link's
    /// queue was full).
    pub dropped: Counter,
    /// Live nodes, this one included, at the last heartbeat.
    pub nodes: Counter,
}

impl ClusterMetrics {
    /// Marks the node as part of a cluster.
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
        self.up[2].set(UNUSED);
    }

    /// Whether the node is part of a cluster.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records whether link connection `which` is connected.
    pub fn set_up(&self, which: usize, up: bool) {
        if let Some(gauge) = self.up.get(which) {
            gauge.set(u64::from(up));
        }
    }

    /// Whether every link connection in use is connected.
    pub fn redis_up(&self) -> bool {
        self.up.iter().all(|gauge| gauge.get() != 0)
    }

    fn render(&self, text: &mut String) {
        if !self.enabled() {
            return;
        }
        let scalars = [
            (
                "switchboard_redis_up",
                "gauge",
                "1 while all three Redis connections of the cluster link are up",
                u64::from(self.redis_up()),
            ),
            (
                "switchboard_redis_reconnects_total",
                "counter",
                "Redis connections lost or refused",
                self.reconnects.get(),
            ),
            (
                "switchboard_cluster_published_total",
                "counter",
                "Records published on the cluster bus",
                self.published.get(),
            ),
            (
                "switchboard_cluster_received_total",
                "counter",
                "Records received from other nodes",
                self.received.get(),
            ),
            (
                "switchboard_cluster_dropped_total",
                "counter",
                "Records and edits dropped while Redis was unreachable",
                self.dropped.get(),
            ),
            (
                "switchboard_cluster_nodes",
                "gauge",
                "Live nodes in the cluster, this one included",
                self.nodes.get(),
            ),
        ];
        for (name, kind, help, value) in scalars {
            scalar(text, name, kind, help, value);
        }
    }
}

impl Metrics {
    /// Counts a refusal of the access rules: `place` is a dialect's name
    /// or `http`; `reason` says why (`no_token`, `bad_token`, …).
    pub fn access_denied(&self, place: &'static str, reason: &'static str) {
        *self
            .access_denied
            .lock()
            .entry((place, reason))
            .or_insert(0) += 1;
    }

    /// Refusals of the access rules so far at `place` for `reason`.
    pub fn denials(&self, place: &str, reason: &str) -> u64 {
        let denied = self.access_denied.lock();
        denied
            .iter()
            .filter(|((p, r), _)| *p == place && *r == reason)
            .map(|(_, n)| *n)
            .sum()
    }

    /// Counts a failed TLS handshake.
    pub fn tls_failed(&self, why: TlsFailure) {
        self.tls_failures[why as usize].increment();
    }

    /// How many TLS handshakes failed for `why`.
    pub fn tls_failures(&self, why: TlsFailure) -> u64 {
        self.tls_failures[why as usize].get()
    }

    /// Counts a failed exchange.
    pub fn handshake_failed(&self, why: HandshakeFailure) {
        self.handshake_failures[why as usize].increment();
    }

    /// Failed exchanges of one kind so far.
    pub fn failures(&self, why: HandshakeFailure) -> u64 {
        self.handshake_failures[why as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_count_everything() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(5));
        histogram.observe(Duration::from_micros(70));
        histogram.observe(Duration::from_secs(1));
        let mut text = String::new();
        histogram.render(&mut text, "t", "help");
        assert!(text.contains("t_bucket{le=\"0.00001\"} 1\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"0.00005\"} 1\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"0.0001\"} 2\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"0.1\"} 2\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("t_count 3\n"), "{text}");
        assert!(text.contains("t_sum 1.000075\n"), "{text}");
    }

    #[test]
    fn every_family_has_help_and_type_and_labels_are_quoted() {
        let metrics = Metrics::default();
        metrics.connections.of(Dialect::World).increment();
        metrics.handshake_failed(HandshakeFailure::NotFound);
        let text = metrics.render(3);
        assert!(text.contains("switchboard_dialect_connections{dialect=\"world\"} 1\n"));
        assert!(text.contains("switchboard_handshake_failures_total{reason=\"not_found\"} 1\n"));
        assert!(text.contains("switchboard_router_queue_depth 3\n"));
        assert!(text.contains("switchboard_build_info{version=\""));
        if cfg!(target_os = "linux") {
            let value = |name: &str| -> f64 {
                let prefix = format!("{name} ");
                let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
                line[prefix.len()..].parse().unwrap()
            };
            assert!(value("process_open_fds") >= 3.0, "{text}");
            assert!(
                value("process_max_fds") >= value("process_open_fds"),
                "{text}"
            );
            let started = value("process_start_time_seconds");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                started > now - 86_400.0 && started <= now + 1.0,
                "{started} {now}"
            );
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let family = line.split(['{', ' ']).next().unwrap();
            let family = family
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
    }
}
