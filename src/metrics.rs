//! Process-wide counters, served as Prometheus text at `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Subtracts one (for gauges).
    pub fn decrement(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The hub's counters. Every thread holds an `Arc` of one `Metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections open now.
    pub connections_open: Counter,
    /// WebSocket connections accepted since start.
    pub connections_total: Counter,
    /// Upgrades refused because `--max-connections` were open.
    pub connections_refused: Counter,
    /// Sockets in their HTTP exchange now: reading the request head, and
    /// for plain HTTP until answered (an emit waiting for ACKs included).
    pub handshakes_open: Counter,
    /// Sockets refused because `--max-handshakes` were in their exchange.
    pub handshakes_refused: Counter,
    /// Sockets cut off at the handshake deadline.
    pub handshake_timeouts: Counter,
    /// Complete messages received from clients.
    pub messages_in: Counter,
    /// HTTP emits received.
    pub emits: Counter,
    /// Frames queued for clients by the router.
    pub frames_out: Counter,
    /// Clients disconnected because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Commands the router failed on (each one a bug to report).
    pub router_panics: Counter,
    /// Upgrades refused because their address held
    /// `--max-connections-per-ip` WebSockets.
    pub connections_refused_per_ip: Counter,
    /// Client messages dropped for being over `--rate-limit`.
    pub messages_rate_limited: Counter,
    /// Clients closed for staying over `--rate-limit` after being told.
    pub rate_limit_disconnects: Counter,
}

impl Metrics {
    /// The counters in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &Counter); 14] = [
            (
                "switchboard_connections_open",
                "gauge",
                "WebSocket connections open now",
                &self.connections_open,
            ),
            (
                "switchboard_connections_total",
                "counter",
                "WebSocket connections accepted",
                &self.connections_total,
            ),
            (
                "switchboard_connections_refused_total",
                "counter",
                "Upgrades refused at the connection cap",
                &self.connections_refused,
            ),
            (
                "switchboard_handshakes_open",
                "gauge",
                "Sockets in their HTTP exchange now",
                &self.handshakes_open,
            ),
            (
                "switchboard_handshakes_refused_total",
                "counter",
                "Sockets refused at the handshake cap",
                &self.handshakes_refused,
            ),
            (
                "switchboard_handshake_timeouts_total",
                "counter",
                "Sockets cut off at the handshake deadline",
                &self.handshake_timeouts,
            ),
            (
                "switchboard_messages_in_total",
                "counter",
                "Messages received from clients",
                &self.messages_in,
            ),
            (
                "switchboard_emits_total",
                "counter",
                "HTTP emits received",
                &self.emits,
            ),
            (
                "switchboard_frames_out_total",
                "counter",
                "Frames queued for clients by the router",
                &self.frames_out,
            ),
            (
                "switchboard_slow_consumer_disconnects_total",
                "counter",
                "Clients disconnected for a full outbound queue",
                &self.slow_consumers,
            ),
            (
                "switchboard_router_panics_total",
                "counter",
                "Commands the router failed on (bugs)",
                &self.router_panics,
            ),
            (
                "switchboard_connections_refused_per_ip_total",
                "counter",
                "Upgrades refused at the per-IP connection cap",
                &self.connections_refused_per_ip,
            ),
            (
                "switchboard_messages_rate_limited_total",
                "counter",
                "Client messages dropped over the rate limit",
                &self.messages_rate_limited,
            ),
            (
                "switchboard_rate_limit_disconnects_total",
                "counter",
                "Clients closed for staying over the rate limit",
                &self.rate_limit_disconnects,
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, counter) in rows {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
                counter.get()
            );
        }
        text
    }
}
