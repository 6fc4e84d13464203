//! Reloading a running server (SIGHUP, or [`Handle::reload`](super::Handle::reload)):
//! which settings change at run time, and who is told.
//!
//! New connections see the new settings at once; open connections keep
//! what they started with (a client authenticated under the old secret
//! stays in). The router's timing rules change for the next deadline it
//! sets. World clients get `connection.reload` when their world's
//! configuration changed: the world was removed, or the JWT key that
//! vouches for its users changed. The listening address, the data
//! directory and the RPC worker count need a restart: a reload that
//! changes them keeps the old values and says so.

use std::time::Duration;

use super::settings;
use crate::config::Config;
use crate::log;
use crate::net::Context;
use crate::router::{Command, Control, Reconfiguration};

/// How long a reload waits for the router to count the world clients told.
const ROUTER_WAIT: Duration = Duration::from_secs(5);

/// Applies `new` to the running server.
pub(crate) fn apply(shared: &Context, mut new: Config) {
    let old = shared.config();
    for (name, kept) in keep_restart_only(&old, &mut new) {
        if kept {
            log::warn!("reload: {name} changes only with a restart; keeping the old value");
        }
    }
    crate::net::capacity::fit(&mut new);
    shared.reload_tls(&mut new);
    let changed = changed_settings(&old, &new);
    log::set_level(new.log_level);
    let worlds = worlds_to_reload(&old, &new);
    let router_settings = settings(&new);
    let new_policy = new.policy();
    shared.set_config(new);
    let _ = shared
        .router
        .send(Command::Control(Control::Reconfigure(Box::new(
            Reconfiguration {
                settings: router_settings,
                policy: new_policy,
            },
        ))));
    let told: usize = worlds
        .into_iter()
        .map(|world| tell_world(shared, world))
        .sum();
    log::info!(
        "reloaded: {} changed; {told} world clients told to reload",
        if changed.is_empty() {
            "nothing".to_string()
        } else {
            changed.join(", ")
        }
    );
}

/// Puts back the settings that need a restart; says which ones differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> [(&'static str, bool); 4] {
    let listen = new.listen != old.listen;
    let data_dir = new.data_dir != old.data_dir;
    let rpc_workers = new.rpc_workers != old.rpc_workers;
    let redis = new.redis != old.redis;
    new.listen = old.listen.clone();
    new.data_dir = old.data_dir.clone();
    new.rpc_workers = old.rpc_workers;
    new.redis = old.redis.clone();
    [
        ("listen", listen),
        ("data-dir", data_dir),
        ("rpc-workers", rpc_workers),
        ("redis", redis),
    ]
}

/// The names of the settings that differ (never their values: some are
/// secrets).
pub fn changed_settings(old: &Config, new: &Config) -> Vec<&'static str> {
    let differences = [
        ("secret", old.secret != new.secret),
        ("jwt-key", old.jwt_key != new.jwt_key),
        ("jwt-issuer", old.jwt_issuer != new.jwt_issuer),
        ("jwt-audience", old.jwt_audience != new.jwt_audience),
        ("emit-token", old.emit_token != new.emit_token),
        (
            "public-channels",
            old.public_channels != new.public_channels,
        ),
        ("public-emit", old.public_emit != new.public_emit),
        (
            "allowed-origins",
            old.allowed_origins != new.allowed_origins,
        ),
        (
            "trusted-proxies",
            old.trusted_proxies != new.trusted_proxies,
        ),
        ("admin-token", old.admin_token != new.admin_token),
        ("world", old.worlds != new.worlds),
        (
            "world-user-connections",
            old.world_user_connections != new.world_user_connections,
        ),
        ("ping-ms", old.ping_interval != new.ping_interval),
        ("ack-timeout-ms", old.ack_timeout != new.ack_timeout),
        (
            "heartbeat-ms",
            old.heartbeat_interval != new.heartbeat_interval,
        ),
        (
            "identify-timeout-ms",
            old.identify_timeout != new.identify_timeout,
        ),
        (
            "handshake-timeout-ms",
            old.handshake_timeout != new.handshake_timeout,
        ),
        (
            "max-message-bytes",
            old.max_message_bytes != new.max_message_bytes,
        ),
        (
            "max-connections",
            old.max_connections != new.max_connections,
        ),
        (
            "max-queued-bytes",
            old.max_queued_bytes != new.max_queued_bytes,
        ),
        ("keepalive-ms", old.keepalive != new.keepalive),
        ("max-handshakes", old.max_handshakes != new.max_handshakes),
        (
            "max-connections-per-ip",
            old.max_connections_per_ip != new.max_connections_per_ip,
        ),
        ("rate-limit", old.rate_limit != new.rate_limit),
        ("rate-burst", old.rate_burst != new.rate_burst),
        ("log-level", old.log_level != new.log_level),
        ("demo", old.demo != new.demo),
    ];
    differences
        .into_iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| name)
        .collect()
}

/// The worlds whose clients must reload: all of them (`None`) when the
/// JWT key changed, otherwise those that no longer exist.
pub fn worlds_to_reload(old: &Config, new: &Config) -> Vec<Option<String>> {
    if old.jwt_key != new.jwt_key {
        return vec![None];
    }
    old.worlds
        .iter()
        .filter(|world| !new.worlds.contains(world))
        .map(|world| Some(world.clone()))
        .collect()
}

/// Sends `connection.reload` to the clients of `world` (`None`: of every
/// world); returns how many were told.
fn tell_world(shared: &Context, world: Option<String>) -> usize {
    shared
        .ask_router(
            |reply| Command::Control(Control::Reload { world, reply }),
            ROUTER_WAIT,
        )
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(worlds: &[&str], jwt_key: Option<&str>) -> Config {
        Config {
            worlds: worlds
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
            jwt_key: jwt_key.map(Into::into),
            ..Config::default()
        }
    }

    #[test]
    fn removed_worlds_reload_and_a_new_key_reloads_every_world() {
        let old = config(&["a", "b", "c"], Some("k"));
        assert_eq!(
            worlds_to_reload(&old, &config(&["a", "d"], Some("k"))),
            [Some("b".to_string()), Some("c".to_string())]
        );
        assert_eq!(
            worlds_to_reload(&old, &config(&["a", "b", "c", "d"], Some("k"))),
            Vec::<Option<String>>::new()
        );
        assert_eq!(
            worlds_to_reload(&old, &config(&["a"], Some("other"))),
            [None]
        );
    }

    #[test]
    fn changes_are_named_without_values() {
        let old = config(&["a"], Some("k"));
        let mut new = config(&["a"], Some("k2"));
        new.secret = Some("s".into());
        new.max_connections = 5;
        assert_eq!(
            changed_settings(&old, &new),
            ["secret", "jwt-key", "max-connections"]
        );
        assert_eq!(changed_settings(&old, &old.clone()), Vec::<&str>::new());
    }

    #[test]
    fn restart_only_settings_keep_their_old_values() {
        let old = Config::default();
        let mut new = Config {
            listen: "0.0.0.0:1".into(),
            rpc_workers: 9,
            max_connections: 7,
            ..Config::default()
        };
        let kept = keep_restart_only(&old, &mut new);
        assert_eq!(
            kept,
            [
                ("listen", true),
                ("data-dir", false),
                ("rpc-workers", true),
                ("redis", false)
            ]
        );
        assert_eq!(
            (new.listen.as_str(), new.rpc_workers),
            (old.listen.as_str(), old.rpc_workers)
        );
        assert_eq!(new.max_connections, 7);
    }
}
