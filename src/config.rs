//! The server's settings, with their defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::log::Level;
use crate::net::forwarded::TrustedProxies;
use crate::net::origin::AllowedOrigins;
use crate::router::{Patterns, Policy};

/// Everything that can be set from the command line, the environment or
/// the config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`--listen`).
    pub listen: String,
    /// The most detailed log lines written (`--log-level`; `--quiet` is
    /// `warn`). Process-wide: servers embedded in one process share it.
    pub log_level: Level,
    /// Shared secret a concierge IDENTIFY and a common HELLO_ACK must
    /// carry (`--secret`); `None` lets anyone in.
    pub secret: Option<Arc<str>>,
    /// How often channels listeners get a PING (`--ping-ms`); two intervals
    /// without a PONG disconnect them.
    pub ping_interval: Duration,
    /// How long an emit with `require-ack=true` waits for ACKs
    /// (`--ack-timeout-ms`).
    pub ack_timeout: Duration,
    /// The common `hb_interval` (`--heartbeat-ms`): a client silent for it
    /// and one second more is closed with 4003.
    pub heartbeat_interval: Duration,
    /// The worlds that exist (`--world`, repeatable).
    pub worlds: Vec<String>,
    /// The HS256 key for JWTs (`--jwt-key`); `None` refuses every token.
    pub jwt_key: Option<Arc<str>>,
    /// The `iss` every token must carry (`--jwt-issuer`); `None` takes any.
    pub jwt_issuer: Option<Arc<str>>,
    /// The audience every token's `aud` must name (`--jwt-audience`);
    /// `None` takes any.
    pub jwt_audience: Option<Arc<str>>,
    /// Whether `jwt_key` is the key `--demo` made for this process rather
    /// than the operator's: it then protects nothing (see [`Config::policy`]).
    pub jwt_key_is_demo: bool,
    /// The operator's bearer token for HTTP emits to every channel
    /// (`--emit-token`).
    pub emit_token: Option<Arc<str>>,
    /// Channels anyone may listen to on a protected hub
    /// (`--public-channels`).
    pub public_channels: Patterns,
    /// Channels anyone may emit to on a protected hub (`--public-emit`).
    pub public_emit: Patterns,
    /// Browser origins served besides the server's own
    /// (`--allowed-origins`).
    pub allowed_origins: AllowedOrigins,
    /// Peers whose `X-Forwarded-For` names the client
    /// (`--trusted-proxies`).
    pub trusted_proxies: TrustedProxies,
    /// Serves `/demo/token`, which gives a token to anyone who asks
    /// (`--demo`): for trying the demo pages, never for production.
    pub demo: bool,
    /// Connections one user may hold to one world; a newer one replaces
    /// the oldest (`--world-user-connections`).
    pub world_user_connections: usize,
    /// The bearer token of the admin endpoints (`--admin-token`); `None`
    /// turns them off.
    pub admin_token: Option<Arc<str>>,
    /// Where shared documents are saved (`--data-dir`).
    pub data_dir: std::path::PathBuf,
    /// Threads running the embedder's RPC methods (`--rpc-workers`).
    pub rpc_workers: usize,
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
    /// Sockets allowed in their HTTP exchange at once (the request head,
    /// and for plain HTTP the whole answer, an emit waiting for ACKs
    /// included); more are refused on accept (`--max-handshakes`).
    pub max_handshakes: usize,
    /// Open WebSockets one peer IP address may hold; more upgrades get 429
    /// (`--max-connections-per-ip`). `None`, the default, sets no limit:
    /// behind a reverse proxy every client has the proxy's address.
    pub max_connections_per_ip: Option<usize>,
    /// Messages a second one connection may keep sending (`--rate-limit`);
    /// over it, messages are dropped, the client is told in its dialect,
    /// and closed (1008) if it keeps on. `None`, the default: no limit.
    pub rate_limit: Option<u32>,
    /// Messages a connection may send at once on top of `rate_limit`
    /// (`--rate-burst`); `None`: two seconds' worth.
    pub rate_burst: Option<u32>,
    /// The Redis server shared by the nodes of a cluster (`--redis`,
    /// `redis://host:port/db`); `None`, the default: a single node.
    /// Needs a build with the `redis` feature.
    pub redis: Option<String>,
    /// The certificate chain served over TLS, PEM, the server's own
    /// certificate first (`--tls-cert`); `None`, the default: plain TCP.
    /// Needs a build with the `tls` feature, and `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert`, PEM (`--tls-key`).
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:8080".to_string(),
            log_level: Level::Info,
            secret: None,
            ping_interval: Duration::from_secs(15),
            ack_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(20),
            worlds: vec!["default".to_string()],
            jwt_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_key_is_demo: false,
            emit_token: None,
            public_channels: Patterns::none(),
            public_emit: Patterns::none(),
            allowed_origins: AllowedOrigins::default(),
            trusted_proxies: TrustedProxies::default(),
            demo: false,
            world_user_connections: 5,
            admin_token: None,
            rpc_workers: 4,
            data_dir: "switchboard-data".into(),
            identify_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            max_message_bytes: 1 << 20,
            max_connections: 10_000,
            max_queued_bytes: 1 << 20,
            keepalive: Duration::from_secs(30),
            max_handshakes: 1024,
            max_connections_per_ip: None,
            rate_limit: None,
            rate_burst: None,
            redis: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Config {
    /// Whether the operator configured any credential (`--secret`,
    /// `--jwt-key`, `--emit-token`): then nothing is reachable anonymously
    /// unless opened with `--public-channels` or `--public-emit`. The key
    /// `--demo` makes for itself does not count: `--demo` alone is for
    /// trying things out on an open hub.
    pub fn protected(&self) -> bool {
        self.secret.is_some()
            || self.emit_token.is_some()
            || (self.jwt_key.is_some() && !self.jwt_key_is_demo)
    }

    /// How tokens are checked: the key, and the issuer and audience the
    /// operator requires.
    pub fn token_verifier(&self) -> crate::jwt::Verifier {
        crate::jwt::Verifier {
            key: self.jwt_key.clone(),
            issuer: self.jwt_issuer.clone(),
            audience: self.jwt_audience.clone(),
        }
    }

    /// The certificate chain and key files to serve TLS with, when both
    /// are set (the command line refuses one without the other).
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// The router's access policy for these settings.
    pub fn policy(&self) -> Policy {
        Policy {
            protected: self.protected(),
            secret: self.secret.is_some(),
            public_read: self.public_channels.clone(),
            public_write: self.public_emit.clone(),
        }
    }

    /// The settings as `--check-config` prints them: each flag's name and
    /// its value as the config file writes it, secrets only as `(set)`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let quoted = |text: &str| format!("{text:?}");
        let ms = |duration: Duration| duration.as_millis().to_string();
        let secret = |secret: &Option<Arc<str>>| match secret {
            Some(_) => "(set)".to_string(),
            None => "(none)".to_string(),
        };
        // An unset limit is written as the 0 that sets it so.
        let or_zero = |limit: Option<u64>| limit.unwrap_or(0).to_string();
        let path = |path: &Option<PathBuf>| match path {
            Some(path) => quoted(&path.display().to_string()),
            None => "(none)".to_string(),
        };
        let worlds: Vec<String> = self.worlds.iter().map(|w| quoted(w)).collect();
        vec![
            ("listen", quoted(&self.listen)),
            ("log-level", quoted(self.log_level.name())),
            ("secret", secret(&self.secret)),
            ("identify-timeout-ms", ms(self.identify_timeout)),
            ("jwt-key", secret(&self.jwt_key)),
            (
                "jwt-issuer",
                quoted(self.jwt_issuer.as_deref().unwrap_or("")),
            ),
            (
                "jwt-audience",
                quoted(self.jwt_audience.as_deref().unwrap_or("")),
            ),
            ("emit-token", secret(&self.emit_token)),
            ("public-channels", quoted(&self.public_channels.to_string())),
            ("public-emit", quoted(&self.public_emit.to_string())),
            ("allowed-origins", quoted(&self.allowed_origins.to_string())),
            ("trusted-proxies", quoted(&self.trusted_proxies.to_string())),
            ("demo", self.demo.to_string()),
            ("world", format!("[{}]", worlds.join(", "))),
            (
                "world-user-connections",
                self.world_user_connections.to_string(),
            ),
            ("data-dir", quoted(&self.data_dir.display().to_string())),
            ("heartbeat-ms", ms(self.heartbeat_interval)),
            ("admin-token", secret(&self.admin_token)),
            ("rpc-workers", self.rpc_workers.to_string()),
            ("ping-ms", ms(self.ping_interval)),
            ("ack-timeout-ms", ms(self.ack_timeout)),
            ("handshake-timeout-ms", ms(self.handshake_timeout)),
            ("max-message-bytes", self.max_message_bytes.to_string()),
            ("max-connections", self.max_connections.to_string()),
            ("max-queued-bytes", self.max_queued_bytes.to_string()),
            ("keepalive-ms", ms(self.keepalive)),
            ("max-handshakes", self.max_handshakes.to_string()),
            (
                "max-connections-per-ip",
                or_zero(self.max_connections_per_ip.map(|n| n as u64)),
            ),
            ("rate-limit", or_zero(self.rate_limit.map(u64::from))),
            ("rate-burst", or_zero(self.rate_burst.map(u64::from))),
            (
                "redis",
                match &self.redis {
                    Some(url) => quoted(&without_password(url)),
                    None => "(none)".to_string(),
                },
            ),
            ("tls-cert", path(&self.tls_cert)),
            ("tls-key", path(&self.tls_key)),
        ]
    }
}

/// A Redis URL with its password (if any) shown as `***`, for what the
/// server prints and logs.
pub(crate) fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn redis_passwords_are_not_shown() {
        assert_eq!(
            without_password("redis://app:hunter2@db:6379/0"),
            "redis://app:***@db:6379/0"
        );
        assert_eq!(without_password("redis://s3@db"), "redis://***@db");
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
