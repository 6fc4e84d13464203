//! The server's settings, with their defaults.

use std::sync::Arc;
use std::time::Duration;

/// Everything that can be set from the command line or the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`--listen`).
    pub listen: String,
    /// Shared secret a concierge IDENTIFY must carry (`--secret`);
    /// `None` lets anyone identify.
    pub secret: Option<Arc<str>>,
    /// How often channels listeners get a PING (`--ping-ms`); two intervals
    /// without a PONG disconnect them.
    pub ping_interval: Duration,
    /// How long an emit with `require-ack=true` waits for ACKs
    /// (`--ack-timeout-ms`).
    pub ack_timeout: Duration,
    /// How long a concierge client has to IDENTIFY (`--identify-timeout-ms`).
    pub identify_timeout: Duration,
    /// How long a client has to send its whole HTTP request head
    /// (`--handshake-timeout-ms`), however slowly the bytes trickle in.
    pub handshake_timeout: Duration,
    /// The largest message accepted, in bytes (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// Open WebSocket connections above which upgrades get 503 (`--max-connections`).
    pub max_connections: usize,
    /// Bytes queued for one client, and not yet taken by its writer thread,
    /// above which it is disconnected as too slow (`--max-queued-bytes`).
    /// A stalled writer may hold one more batch of this size.
    pub max_queued_bytes: usize,
    /// Silence after which the server pings a WebSocket client; a client
    /// silent for twice this (pongs count) is closed (`--keepalive-ms`).
    pub keepalive: Duration,
    /// Sockets allowed to be in their HTTP handshake at once; more are
    /// refused on accept (`--max-handshakes`).
    pub max_handshakes: usize,
    /// No connect/disconnect log lines (`--quiet`). Process-wide: servers
    /// embedded in one process share it.
    pub quiet: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8080".to_string(),
            secret: None,
            ping_interval: Duration::from_millis(15_000),
            ack_timeout: Duration::from_millis(5000),
            identify_timeout: Duration::from_millis(5000),
            handshake_timeout: Duration::from_millis(5000),
            max_message_bytes: 1 << 20,
            max_connections: 10_000,
            max_queued_bytes: 1 << 20,
            keepalive: Duration::from_secs(30),
            max_handshakes: 1024,
            quiet: false,
        }
    }
}
