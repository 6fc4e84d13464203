//! Command-line flags and `SWITCHBOARD_*` environment variables.
//!
//! Every flag `--some-flag` can also be set as `SWITCHBOARD_SOME_FLAG`; a
//! flag on the command line wins over the environment, which wins over the
//! default.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::Config;

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run the server with this configuration (boxed: it is far larger
    /// than the other answers).
    Run(Box<Config>),
    /// Print the usage text.
    Help,
    /// Print the version.
    Version,
}

/// A command line or environment the server cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// A flag this program does not have.
    UnknownFlag(String),
    /// A flag given without its value.
    MissingValue(String),
    /// A value that does not parse; `source` is the flag or variable.
    BadValue {
        /// `--flag` or `SWITCHBOARD_FLAG`.
        source: String,
        /// The value given.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(flag) => write!(f, "unknown flag {flag:?}"),
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            CliError::BadValue {
                source,
                value,
                expected,
            } => write!(f, "{source}: {value:?} is not {expected}"),
        }
    }
}

impl std::error::Error for CliError {}

/// One setting: its flag name (without `--`), usage line, and how to apply it.
struct Flag {
    name: &'static str,
    usage: &'static str,
    /// How the value (or, for a switch, its presence) changes the config.
    apply: Setter,
}

enum Setter {
    Value(fn(&mut Config, &str) -> Result<(), &'static str>),
    /// A repeatable flag; `first` is true for its first occurrence from a
    /// given source, which replaces the default (or the environment's).
    List(fn(&mut Config, &str, bool) -> Result<(), &'static str>),
    Switch(fn(&mut Config)),
}

const FLAGS: &[Flag] = &[
    Flag {
        name: "listen",
        usage: "ADDR    address to listen on [127.0.0.1:8080]",
        apply: Setter::Value(|c, v| {
            c.listen = v.to_string();
            Ok(())
        }),
    },
    Flag {
        name: "secret",
        usage: "TEXT    secret a concierge IDENTIFY must carry [none: open]",
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
        usage: "TEXT         HS256 key for JWTs (world token) [none: tokens refused]",
        apply: Setter::Value(|c, v| {
            c.jwt_key = Some(v.into());
            Ok(())
        }),
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
        name: "admin-token",
        usage: "TEXT     bearer token for POST /admin/reload [none: endpoint off]",
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
        usage: "N      open WebSocket connections before upgrades get 503 [10000]",
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
        usage: "N           messages a connection may send at once above the rate [2 x rate]",
        apply: Setter::Value(|c, v| {
            c.rate_burst = Some(positive(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "quiet",
        usage: "                 no connect/disconnect log lines",
        apply: Setter::Switch(|c| c.quiet = true),
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

/// The environment variable that sets `--name`.
fn env_name(name: &str) -> String {
    format!(
        "SWITCHBOARD_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Reads the environment (through `env`), then the arguments (without the
/// program name), over the defaults.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, CliError> {
    let mut config = Config::default();
    for flag in FLAGS {
        let variable = env_name(flag.name);
        if let Some(value) = env(&variable) {
            apply(flag, &mut config, &value, variable, true)?;
            // The environment's list replaces the default; the command
            // line's (below) replaces the environment's.
        }
    }
    let mut seen_on_command_line: Vec<&str> = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "-V" | "--version" => return Ok(Invocation::Version),
            _ => {}
        }
        let (name, inline) = match arg.strip_prefix("--").map(|a| a.split_once('=')) {
            Some(Some((name, value))) => (name.to_string(), Some(value.to_string())),
            Some(None) => (arg[2..].to_string(), None),
            None => return Err(CliError::UnknownFlag(arg)),
        };
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CliError::UnknownFlag(arg.clone()))?;
        let value = match (&flag.apply, inline) {
            (Setter::Switch(_), None) => String::new(),
            (_, Some(value)) => value,
            (Setter::Value(_) | Setter::List(_), None) => args
                .next()
                .ok_or_else(|| CliError::MissingValue(format!("--{name}")))?,
        };
        let first = !seen_on_command_line.contains(&flag.name);
        seen_on_command_line.push(flag.name);
        apply(flag, &mut config, &value, format!("--{name}"), first)?;
    }
    Ok(Invocation::Run(Box::new(config)))
}

/// Applies one value. `first` is whether this is the flag's first value
/// from its source (the environment always is; for the command line it is
/// the first occurrence), and for switches it also says "from the
/// environment", where a switch takes 1 or 0.
fn apply(
    flag: &Flag,
    config: &mut Config,
    value: &str,
    source: String,
    first: bool,
) -> Result<(), CliError> {
    let from_env = source.starts_with("SWITCHBOARD_");
    let bad = |expected| CliError::BadValue {
        source: source.clone(),
        value: value.to_string(),
        expected,
    };
    match &flag.apply {
        Setter::Value(set) => set(config, value).map_err(bad),
        Setter::List(add) => add(config, value, first).map_err(bad),
        Setter::Switch(set) => match (from_env, value) {
            (false, "") | (true, "1" | "true" | "yes") => {
                set(config);
                Ok(())
            }
            (true, "0" | "false" | "no" | "") => Ok(()),
            _ => Err(bad("a switch (it takes no value; in the environment 1/0)")),
        },
    }
}

/// The `--help` text.
pub fn usage() -> String {
    let mut text = String::from(
        "switchboard: a WebSocket hub speaking several real-time protocols\n\n\
         usage: switchboard [FLAGS]\n\nflags (each also SWITCHBOARD_<FLAG> in the environment):\n",
    );
    for flag in FLAGS {
        text.push_str(&format!("  --{} {}\n", flag.name, flag.usage));
    }
    text.push_str(
        "  --help                 print this text\n  --version              print the version\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        match parse(args.iter().map(|s| s.to_string()), lookup)? {
            Invocation::Run(config) => Ok(*config),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_without_flags() {
        let config = run(&[], &[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.identify_timeout, Duration::from_secs(5));
        assert_eq!(config.max_connections, 10_000);
        assert!(config.secret.is_none());
    }

    #[test]
    fn flags_win_over_environment() {
        let env = [
            ("SWITCHBOARD_LISTEN", "0.0.0.0:1"),
            ("SWITCHBOARD_MAX_MESSAGE_BYTES", "99"),
            ("SWITCHBOARD_QUIET", "1"),
        ];
        let config = run(&["--listen", "127.0.0.1:9", "--secret=x"], &env).unwrap();
        assert_eq!(config.listen, "127.0.0.1:9");
        assert_eq!(config.max_message_bytes, 99);
        assert_eq!(config.secret.as_deref(), Some("x"));
        assert!(config.quiet);
    }

    #[test]
    fn bad_input_names_the_culprit() {
        assert_eq!(
            run(&["--nope"], &[]).unwrap_err(),
            CliError::UnknownFlag("--nope".into())
        );
        assert_eq!(
            run(&["--listen"], &[]).unwrap_err(),
            CliError::MissingValue("--listen".into())
        );
        let error = run(&[], &[("SWITCHBOARD_IDENTIFY_TIMEOUT_MS", "soon")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "SWITCHBOARD_IDENTIFY_TIMEOUT_MS: \"soon\" is not a number of milliseconds from 1 to 604800000 (a week)"
        );
        assert!(run(&["--max-connections", "0"], &[]).is_err());
        assert!(run(&["--quiet=yes"], &[]).is_err());
        assert!(run(&["stray"], &[]).is_err());
    }

    #[test]
    fn limits_are_off_by_default_and_zero_turns_them_off() {
        let config = run(&[], &[]).unwrap();
        assert_eq!(config.max_connections_per_ip, None);
        assert_eq!((config.rate_limit, config.rate_burst), (None, None));
        let env = [("SWITCHBOARD_MAX_CONNECTIONS_PER_IP", "4")];
        let config = run(&["--rate-limit", "50", "--rate-burst=80"], &env).unwrap();
        assert_eq!(config.max_connections_per_ip, Some(4));
        assert_eq!((config.rate_limit, config.rate_burst), (Some(50), Some(80)));
        let config = run(&["--max-connections-per-ip", "0", "--rate-limit=0"], &env).unwrap();
        assert_eq!(config.max_connections_per_ip, None);
        assert_eq!(config.rate_limit, None);
        assert!(run(&["--rate-burst", "0"], &[]).is_err());
        assert!(run(&["--rate-limit", "-1"], &[]).is_err());
        assert!(run(&["--rate-limit", "99999999999"], &[]).is_err());
    }

    #[test]
    fn worlds_repeat_and_replace_the_default_and_the_environment() {
        assert_eq!(run(&[], &[]).unwrap().worlds, ["default"]);
        assert_eq!(
            run(&["--world", "a", "--world=b,c"], &[]).unwrap().worlds,
            ["a", "b", "c"]
        );
        assert_eq!(
            run(&[], &[("SWITCHBOARD_WORLD", "x, y")]).unwrap().worlds,
            ["x", "y"]
        );
        assert_eq!(
            run(&["--world", "a"], &[("SWITCHBOARD_WORLD", "x")])
                .unwrap()
                .worlds,
            ["a"]
        );
        assert!(run(&["--world", "a/b"], &[]).is_err());
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(
            parse(["--help".to_string()], |_| None),
            Ok(Invocation::Help)
        ));
        assert!(matches!(
            parse(["-V".to_string()], |_| None),
            Ok(Invocation::Version)
        ));
        assert!(usage().contains("--max-queued-bytes"));
    }
}
