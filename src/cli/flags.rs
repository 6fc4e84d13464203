//! Every setting switchboard has, once: its flag name, its usage line and
//! the setter that checks and applies a value, whichever source it comes
//! from (command line, environment, config file).

use std::str::FromStr;
use std::time::Duration;

use crate::config::Config;
use crate::log::Level;

/// One setting: its flag name (without `--`), usage line, and how to apply it.
pub(super) struct Flag {
    pub name: &'static str,
    pub usage: &'static str,
    /// How the value (or, for a switch, its presence) changes the config.
    pub apply: Setter,
}

/// How a flag changes the configuration.
pub(super) enum Setter {
    /// A flag with a value. In the config file it is a whole number if
    /// its usage's placeholder is `N`, and a quoted string otherwise.
    Value(fn(&mut Config, &str) -> Result<(), &'static str>),
    /// A repeatable flag; `first` is true for its first occurrence from a
    /// given source, which replaces the default (or the environment's).
    List(fn(&mut Config, &str, bool) -> Result<(), &'static str>),
    Switch(fn(&mut Config)),
    /// `--config FILE`: read before every other setting, since the file is
    /// the lowest source.
    ConfigFile,
    /// `--check-config`: says what to do rather than how to run.
    CheckConfig,
}

/// Every flag, in the order `--help` lists them.
pub(super) const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        usage: "ADDR    address to listen on [127.0.0.1:8080]",
        apply: Setter::Value(|c, v| {
            // Its form is checked now, so that --check-config catches
            // "8080" (no host) and a start never fails on it. A host name
            // is resolved only when binding: DNS may not be up yet here.
            let well_formed = v.parse::<std::net::SocketAddr>().is_ok()
                || v.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok()
                });
            if !well_formed {
                return Err("HOST:PORT, an address with its port (127.0.0.1:8080, [::1]:8080)");
            }
            c.listen = v.to_string();
            Ok(())
        }),
    },
    Flag {
        name: "config",
        usage: "FILE            settings from this TOML file; flags and environment win [none]",
        apply: Setter::ConfigFile,
    },
    Flag {
        name: "check-config",
        usage: "          check the settings, print them and exit (command line only)",
        apply: Setter::CheckConfig,
    },
    Flag {
        name: "log-level",
        usage: "LEVEL        error, warn, info or debug; or RUST_LOG=debug [info]",
        apply: Setter::Value(|c, v| {
            c.log_level = Level::parse(v).ok_or("error, warn, info or debug")?;
            Ok(())
        }),
    },
    Flag {
        name: "secret",
        usage: "TEXT    secret a concierge IDENTIFY and a common HELLO_ACK must carry [none]",
        apply: Setter::Value(|c, v| {
            c.secret = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "identify-timeout-ms",
        usage: "N  concierge IDENTIFY deadline [5000]",
        apply: Setter::Value(|c, v| {
            c.identify_timeout = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "jwt-key",
        usage: "TEXT         HMAC key for JWTs, HS256/384/512 (channels, world, blazing) [none: tokens refused]",
        apply: Setter::Value(|c, v| {
            c.jwt_key = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "jwt-issuer",
        usage: "TEXT      tokens must carry this `iss` [any]",
        apply: Setter::Value(|c, v| {
            c.jwt_issuer = (!v.is_empty()).then(|| v.into());
            Ok(())
        }),
    },
    Flag {
        name: "jwt-audience",
        usage: "TEXT    tokens' `aud` must name this [any]",
        apply: Setter::Value(|c, v| {
            c.jwt_audience = (!v.is_empty()).then(|| v.into());
            Ok(())
        }),
    },
    Flag {
        name: "emit-token",
        usage: "TEXT      bearer token for HTTP emits to every channel [none]",
        apply: Setter::Value(|c, v| {
            c.emit_token = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "public-channels",
        usage: "PATTERNS channels anyone may listen to on a protected hub: a,b*,$sys [none]",
        apply: Setter::Value(|c, v| {
            c.public_channels = crate::router::Patterns::parse_list(v);
            Ok(())
        }),
    },
    Flag {
        name: "public-emit",
        usage: "PATTERNS channels anyone may emit to on a protected hub [none]",
        apply: Setter::Value(|c, v| {
            c.public_emit = crate::router::Patterns::parse_list(v);
            Ok(())
        }),
    },
    Flag {
        name: "allowed-origins",
        usage: "LIST browser origins served besides the server's own; * for any [none]",
        apply: Setter::Value(|c, v| {
            c.allowed_origins = crate::net::origin::AllowedOrigins::parse(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "trusted-proxies",
        usage: "CIDRS proxies whose X-Forwarded-For names the client [none]",
        apply: Setter::Value(|c, v| {
            c.trusted_proxies = crate::net::forwarded::TrustedProxies::parse(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "demo",
        usage: "                  serve /demo/token: tokens for anyone (never in production) [off]",
        apply: Setter::Switch(|c| c.demo = true),
    },
    Flag {
        name: "world",
        usage: "NAME           a world that exists; repeatable, or comma-separated [default]",
        apply: Setter::List(|c, v, first| {
            if first {
                c.worlds.clear();
            }
            for world in v.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                if world.contains('/') {
                    return Err("a world name without '/'");
                }
                c.worlds.push(world.to_string());
            }
            Ok(())
        }),
    },
    Flag {
        name: "world-user-connections",
        usage: "N connections one user may hold to one world; more replace the oldest [5]",
        apply: Setter::Value(|c, v| {
            c.world_user_connections = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "data-dir",
        usage: "DIR         where shared documents are saved [./switchboard-data]",
        apply: Setter::Value(|c, v| {
            c.data_dir = v.into();
            Ok(())
        }),
    },
    Flag {
        name: "heartbeat-ms",
        usage: "N         common hb_interval; silence past it + 1 s closes with 4003 [20000]",
        apply: Setter::Value(|c, v| {
            c.heartbeat_interval = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "redis",
        usage:
            "URL            join a cluster through this Redis (redis://host:port) [none: one node]",
        apply: Setter::Value(|c, v| {
            if !cfg!(feature = "redis") {
                return Err("accepted by this build, which has no Redis support (build it with `--features redis`)");
            }
            c.redis = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "tls-cert",
        usage: "FILE        serve https:// and wss:// with this PEM certificate chain (needs --tls-key) [none: plain]",
        apply: Setter::Value(|c, v| {
            if !cfg!(feature = "tls") {
                return Err("accepted by this build, which has no TLS support (build it with `--features tls`)");
            }
            c.tls_cert = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "tls-key",
        usage: "FILE         the PEM private key of --tls-cert; re-read with it on SIGHUP [none]",
        apply: Setter::Value(|c, v| {
            if !cfg!(feature = "tls") {
                return Err("accepted by this build, which has no TLS support (build it with `--features tls`)");
            }
            c.tls_key = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "admin-token",
        usage: "TEXT     bearer token for POST /admin/reload and /admin/close-room [none: endpoints off]",
        apply: Setter::Value(|c, v| {
            c.admin_token = Some(v.into());
            Ok(())
        }),
    },
    Flag {
        name: "rpc-workers",
        usage: "N          threads running embedded RPC methods [4]",
        apply: Setter::Value(|c, v| {
            c.rpc_workers = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "ping-ms",
        usage: "N              channels PING interval; no PONG in 2 intervals closes [15000]",
        apply: Setter::Value(|c, v| {
            c.ping_interval = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "ack-timeout-ms",
        usage: "N       how long an emit with require-ack=true waits for ACKs [5000]",
        apply: Setter::Value(|c, v| {
            c.ack_timeout = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "handshake-timeout-ms",
        usage: "N wall-clock deadline for a socket's HTTP request [5000]",
        apply: Setter::Value(|c, v| {
            c.handshake_timeout = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-message-bytes",
        usage: "N    largest message accepted; larger closes with 1009 [1048576]",
        apply: Setter::Value(|c, v| {
            c.max_message_bytes = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-connections",
        usage: "N      open WebSocket connections before upgrades get 503 [10000, or what the machine allows]",
        apply: Setter::Value(|c, v| {
            c.max_connections = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-queued-bytes",
        usage: "N     bytes queued for one client before it is dropped as too slow [1048576]",
        apply: Setter::Value(|c, v| {
            c.max_queued_bytes = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "keepalive-ms",
        usage: "N         ping a silent WebSocket client after N ms; close it after 2N [30000]",
        apply: Setter::Value(|c, v| {
            c.keepalive = millis(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-handshakes",
        usage: "N       sockets allowed in their HTTP exchange at once [1024]",
        apply: Setter::Value(|c, v| {
            c.max_handshakes = positive(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "max-connections-per-ip",
        usage: "N open WebSockets one IP address may hold; more get 429; 0: no limit [0]",
        apply: Setter::Value(|c, v| {
            c.max_connections_per_ip = zero_is_off(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "rate-limit",
        usage: "N           messages a second one connection may send; 0: no limit [0]",
        apply: Setter::Value(|c, v| {
            c.rate_limit = zero_is_off(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "rate-burst",
        usage: "N           messages a connection may send at once; 0: twice the rate [0]",
        apply: Setter::Value(|c, v| {
            c.rate_burst = zero_is_off(v)?;
            Ok(())
        }),
    },
    Flag {
        name: "quiet",
        usage: "                 no connect/disconnect log lines: --log-level warn",
        apply: Setter::Switch(|c| c.log_level = Level::Warn),
    },
];

/// A duration in milliseconds: from 1 ms to a week, so that adding it to
/// the clock can never overflow.
fn millis(value: &str) -> Result<Duration, &'static str> {
    const WEEK_MS: u64 = 7 * 24 * 3600 * 1000;
    value
        .parse::<u64>()
        .ok()
        .filter(|&ms| (1..=WEEK_MS).contains(&ms))
        .map(Duration::from_millis)
        .ok_or("a number of milliseconds from 1 to 604800000 (a week)")
}

fn positive<N: FromStr + PartialOrd + Default>(value: &str) -> Result<N, &'static str> {
    value
        .parse::<N>()
        .ok()
        .filter(|n| *n > N::default())
        .ok_or("a positive whole number")
}

/// A limit where 0 turns it off.
fn zero_is_off<N: FromStr + PartialOrd + Default>(value: &str) -> Result<Option<N>, &'static str> {
    value
        .parse::<N>()
        .map(|n| (n > N::default()).then_some(n))
        .map_err(|_| "a whole number (0: no limit)")
}
