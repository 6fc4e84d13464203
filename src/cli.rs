//! Command-line flags, `SWITCHBOARD_*` environment variables, and the
//! config file.
//!
//! Every flag `--some-flag` can also be set as `SWITCHBOARD_SOME_FLAG`, and
//! as `some-flag = …` in the TOML file `--config` names. A flag on the
//! command line wins over the environment, which wins over the file, which
//! wins over the default. Every source goes through the flag's one setter,
//! so a value is checked the same way wherever it comes from.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::config::Config;
use crate::flat_toml::{self, Entry, Kind, Value};
use crate::log::Level;

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
    /// Print that this configuration is valid, and what it is (boxed like
    /// `Run`'s).
    CheckConfig(Box<Config>),
}

/// A command line, environment or config file the server cannot run with.
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
    /// The config file cannot be read.
    FileUnreadable {
        /// The path, as given.
        path: String,
        /// What the operating system said.
        error: String,
    },
    /// The config file is not flat TOML.
    FileSyntax {
        /// Where.
        at: Location,
        /// What is wrong there.
        problem: flat_toml::Problem,
    },
    /// A key in the config file that no flag has.
    UnknownKey {
        /// Where.
        at: Location,
        /// The key.
        key: String,
    },
    /// A key in the config file for a flag that only the command line (and
    /// the environment) can give: `config`, `check-config`.
    NotInFile {
        /// Where.
        at: Location,
        /// The key.
        key: String,
    },
    /// A config file value of the wrong type, or one the flag refuses.
    BadFileValue {
        /// Where the value is.
        at: Location,
        /// The key.
        key: String,
        /// The value as written in the file.
        written: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `--tls-cert` without `--tls-key`, or the other way round, from
    /// whichever sources.
    TlsHalf,
}

/// A line of the config file, shown as `path:line` as compilers do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as given.
    pub path: String,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path, self.line)
    }
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
            CliError::FileUnreadable { path, error } => {
                write!(f, "cannot read the config file {path}: {error}")
            }
            CliError::FileSyntax { at, problem } => write!(f, "{at}: {problem}"),
            CliError::UnknownKey { at, key } => write!(f, "{at}: unknown key {key:?}"),
            CliError::TlsHalf => {
                f.write_str("--tls-cert and --tls-key go together: give both files, or neither")
            }
            CliError::NotInFile { at, key } => write!(
                f,
                "{at}: unknown key {key:?}: --{key} works on the command line only, not in the file"
            ),
            CliError::BadFileValue {
                at,
                key,
                written,
                expected,
            } => write!(f, "{at}: {key}: {written} is not {expected}"),
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

const FLAGS: &[Flag] = &[
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

/// The environment variable that sets `--name`.
fn env_name(name: &str) -> String {
    format!(
        "SWITCHBOARD_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// Reads the config file, the environment (through `env`) and the
/// arguments (without the program name), each over the ones before, over
/// the defaults. It only reads, so a reload can call it again.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Invocation, CliError> {
    let given = match read_command_line(args)? {
        CommandLine::Help => return Ok(Invocation::Help),
        CommandLine::Version => return Ok(Invocation::Version),
        CommandLine::Flags(given) => given,
    };
    let mut config = Config::default();
    if let Some(path) = config_path(&given, &env) {
        apply_file(&mut config, &path)?;
    }
    apply_environment(&mut config, &env)?;
    let mut seen: Vec<&str> = Vec::new();
    for Given { flag, value } in &given {
        // The command line's list replaces the environment's.
        let first = !seen.contains(&flag.name);
        seen.push(flag.name);
        apply(flag, &mut config, value, format!("--{}", flag.name), first)?;
    }
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(CliError::TlsHalf);
    }
    let check = given
        .iter()
        .any(|given| matches!(given.flag.apply, Setter::CheckConfig));
    if check {
        Ok(Invocation::CheckConfig(Box::new(config)))
    } else {
        Ok(Invocation::Run(Box::new(config)))
    }
}

/// What the arguments ask for.
enum CommandLine {
    Help,
    Version,
    /// Settings, in the order given.
    Flags(Vec<Given>),
}

/// A flag given on the command line, and its value (empty for a switch).
struct Given {
    flag: &'static Flag,
    value: String,
}

/// Splits the arguments into flags and values, without applying them: the
/// config file they may name goes first.
fn read_command_line(args: impl IntoIterator<Item = String>) -> Result<CommandLine, CliError> {
    let mut given = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(CommandLine::Help),
            "-V" | "--version" => return Ok(CommandLine::Version),
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
            (_, Some(value)) => value,
            (Setter::Switch(_) | Setter::CheckConfig, None) => String::new(),
            (Setter::Value(_) | Setter::List(_) | Setter::ConfigFile, None) => args
                .next()
                .ok_or_else(|| CliError::MissingValue(format!("--{name}")))?,
        };
        given.push(Given { flag, value });
    }
    Ok(CommandLine::Flags(given))
}

/// The config file: the last `--config`, else `SWITCHBOARD_CONFIG` (an
/// empty one names none).
fn config_path(given: &[Given], env: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let from_flags = given
        .iter()
        .rev()
        .find(|given| matches!(given.flag.apply, Setter::ConfigFile))
        .map(|given| given.value.clone());
    from_flags.or_else(|| env(&env_name("config")).filter(|path| !path.is_empty()))
}

/// Applies every `SWITCHBOARD_*` variable, and `RUST_LOG` below them.
fn apply_environment(
    config: &mut Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<(), CliError> {
    // Often set for other programs too, so it never stops the server: a
    // value that says nothing about switchboard is ignored.
    if let Some(level) = env("RUST_LOG").as_deref().and_then(Level::from_rust_log) {
        config.log_level = level;
    }
    for flag in FLAGS {
        if let Setter::ConfigFile | Setter::CheckConfig = flag.apply {
            continue; // the file is already read; checking is asked for on the command line
        }
        let variable = env_name(flag.name);
        if let Some(value) = env(&variable) {
            // The environment's list replaces the file's.
            apply(flag, config, &value, variable, true)?;
        }
    }
    Ok(())
}

/// Applies the config file at `path`.
fn apply_file(config: &mut Config, path: &str) -> Result<(), CliError> {
    let text = std::fs::read_to_string(path).map_err(|error| CliError::FileUnreadable {
        path: path.to_string(),
        error: error.to_string(),
    })?;
    apply_file_text(config, path, &text)
}

/// Applies a config file's `text`; `path` is for messages.
fn apply_file_text(config: &mut Config, path: &str, text: &str) -> Result<(), CliError> {
    let entries = flat_toml::parse(text).map_err(|error| CliError::FileSyntax {
        at: Location {
            path: path.to_string(),
            line: error.line,
        },
        problem: error.problem,
    })?;
    for entry in &entries {
        apply_entry(config, path, entry)?;
    }
    Ok(())
}

/// Applies one `key = value` of the file through the key's flag, after
/// checking that the value has the flag's type.
fn apply_entry(config: &mut Config, path: &str, entry: &Entry) -> Result<(), CliError> {
    let at = |line| Location {
        path: path.to_string(),
        line,
    };
    let key = entry.key.clone();
    let Some(flag) = FLAGS.iter().find(|flag| flag.name == entry.key) else {
        return Err(CliError::UnknownKey {
            at: at(entry.line),
            key,
        });
    };
    let bad = |value: &Value, expected| CliError::BadFileValue {
        at: at(value.line),
        key: entry.key.clone(),
        written: value.written.clone(),
        expected,
    };
    let value = &entry.value;
    match (&flag.apply, &value.kind) {
        (Setter::ConfigFile | Setter::CheckConfig, _) => Err(CliError::NotInFile {
            at: at(entry.line),
            key,
        }),
        (Setter::Switch(set), Kind::Boolean(on)) => {
            // Like a switch left off the command line, `false` leaves the
            // setting to the defaults.
            if *on {
                set(config);
            }
            Ok(())
        }
        (Setter::List(add), Kind::String(names)) => {
            add(config, names, true).map_err(|expected| bad(value, expected))
        }
        (Setter::List(add), Kind::List(items)) if items.is_empty() => {
            // Nothing to add, but the file's empty list still replaces the
            // default: the setter clears on a first value.
            add(config, "", true).map_err(|expected| bad(value, expected))
        }
        (Setter::List(add), Kind::List(items)) => {
            for (index, item) in items.iter().enumerate() {
                let Kind::String(name) = &item.kind else {
                    return Err(bad(item, "a quoted string"));
                };
                add(config, name, index == 0).map_err(|expected| bad(item, expected))?;
            }
            Ok(())
        }
        (Setter::Value(set), Kind::Integer(n)) if takes_number(flag) => {
            set(config, &n.to_string()).map_err(|expected| bad(value, expected))
        }
        (Setter::Value(set), Kind::String(text)) if !takes_number(flag) => {
            set(config, text).map_err(|expected| bad(value, expected))
        }
        _ => Err(bad(value, file_type(flag))),
    }
}

/// Whether a flag's value is a whole number, as its usage's `N` says.
fn takes_number(flag: &Flag) -> bool {
    flag.usage.starts_with("N ")
}

/// What a flag's value is in the config file, for a value of another type.
fn file_type(flag: &Flag) -> &'static str {
    match flag.apply {
        Setter::Value(_) if takes_number(flag) => "a whole number (without quotes)",
        Setter::Value(_) => "a quoted string",
        Setter::List(_) => "a quoted string or a list of them",
        Setter::Switch(_) => "true or false",
        Setter::ConfigFile | Setter::CheckConfig => "settable in the file",
    }
}

/// Applies one value from the command line or the environment. `first` is
/// whether this is the flag's first value from its source (the
/// environment always is; for the command line it is the first
/// occurrence), and for switches `source` also says "from the
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
        // Read by `parse` itself.
        Setter::ConfigFile => Ok(()),
        Setter::CheckConfig => match value {
            "" => Ok(()),
            _ => Err(bad("a switch (it takes no value)")),
        },
    }
}

/// The `--help` text.
pub fn usage() -> String {
    let mut text = String::from(
        "switchboard: a WebSocket hub speaking several real-time protocols\n\n\
         usage: switchboard [FLAGS]\n\nflags (each also SWITCHBOARD_<FLAG> in the environment,\n\
         and <flag> = VALUE in the --config file):\n",
    );
    // `--name ARG` in one column, what it does in the next.
    let mut rows: Vec<(String, &str)> = FLAGS
        .iter()
        .map(|flag| {
            let (arg, what) = split_usage(flag.usage);
            let head = match arg {
                "" => format!("--{}", flag.name),
                arg => format!("--{} {arg}", flag.name),
            };
            (head, what)
        })
        .collect();
    rows.push(("--help".into(), "print this text"));
    rows.push(("--version".into(), "print the version"));
    let width = rows.iter().map(|(head, _)| head.len()).max().unwrap_or(0);
    for (head, what) in rows {
        text.push_str(&format!("  {head:<width$}  {what}\n"));
    }
    text.push_str("\nendpoints:\n");
    let endpoints = crate::net::endpoints::ENDPOINTS;
    let width = endpoints
        .iter()
        .map(|e| e.request_line().len())
        .max()
        .unwrap_or(0);
    for endpoint in endpoints {
        let line = endpoint.request_line();
        text.push_str(&format!("  {line:<width$}  {}\n", endpoint.what));
    }
    text
}

/// A flag's usage text split into its argument (`N`, `TEXT`; empty for a
/// switch) and what the flag does.
fn split_usage(usage: &str) -> (&str, &str) {
    match usage.split_once(' ') {
        Some((arg, what)) if !arg.is_empty() => (arg, what.trim_start()),
        _ => ("", usage.trim_start()),
    }
}

/// Every flag's name, for tests and tools that check the help is whole.
pub fn flag_names() -> impl Iterator<Item = &'static str> {
    FLAGS.iter().map(|flag| flag.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn invoke(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        parse(args.iter().map(|s| s.to_string()), lookup)
    }

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
        match invoke(args, env)? {
            Invocation::Run(config) => Ok(*config),
            other => panic!("{other:?}"),
        }
    }

    /// Writes `text` to a new file of its own, for `--config`.
    fn config_file(text: &str) -> String {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "switchboard-cli-{}-{}.toml",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// The defaults with a config file's `text` applied, as if read from
    /// `switchboard.toml`.
    fn from_file(text: &str) -> Result<Config, CliError> {
        let mut config = Config::default();
        apply_file_text(&mut config, "switchboard.toml", text)?;
        Ok(config)
    }

    fn file_error(text: &str) -> String {
        from_file(text).unwrap_err().to_string()
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
        assert_eq!(config.log_level, Level::Warn);
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
        assert_eq!(run(&["--rate-burst", "0"], &[]).unwrap().rate_burst, None);
        assert!(run(&["--rate-burst", "x"], &[]).is_err());
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

    #[test]
    fn flags_win_over_environment_over_file_over_defaults() {
        let file = config_file(
            "listen = \"0.0.0.0:1\"\nmax-connections = 11\nheartbeat-ms = 12\nrpc-workers = 13\n",
        );
        let env = [
            ("SWITCHBOARD_MAX_CONNECTIONS", "21"),
            ("SWITCHBOARD_HEARTBEAT_MS", "22"),
        ];
        let config = run(&["--config", &file, "--heartbeat-ms", "32"], &env).unwrap();
        assert_eq!(config.listen, "0.0.0.0:1", "the file over the default");
        assert_eq!(config.max_connections, 21, "the environment over the file");
        assert_eq!(
            config.heartbeat_interval,
            Duration::from_millis(32),
            "the flag over all"
        );
        assert_eq!(config.rpc_workers, 13);
        assert_eq!(
            config.max_handshakes, 1024,
            "the default where nothing speaks"
        );
        let from_env = run(&[], &[("SWITCHBOARD_CONFIG", &file)]).unwrap();
        assert_eq!(
            from_env.rpc_workers, 13,
            "SWITCHBOARD_CONFIG names the file too"
        );
        let later = run(&["--config", "/nonexistent", "--config", &file], &[]).unwrap();
        assert_eq!(later.rpc_workers, 13, "the last --config wins");
        assert_eq!(
            run(&[], &[("SWITCHBOARD_CONFIG", "")]).unwrap().rpc_workers,
            4
        );
    }

    #[test]
    fn a_higher_source_replaces_the_file_s_worlds() {
        let file = config_file("world = [\"a\", \"b\"]");
        assert_eq!(run(&["--config", &file], &[]).unwrap().worlds, ["a", "b"]);
        let env = [("SWITCHBOARD_WORLD", "x")];
        assert_eq!(run(&["--config", &file], &env).unwrap().worlds, ["x"]);
        let flags = ["--config", &file, "--world", "y", "--world", "z"];
        assert_eq!(run(&flags, &env).unwrap().worlds, ["y", "z"]);
        assert_eq!(from_file("world = \"c, d\"").unwrap().worlds, ["c", "d"]);
        assert!(from_file("world = []").unwrap().worlds.is_empty());
    }

    #[test]
    fn file_values_take_their_toml_types() {
        let config = from_file(
            "secret = 's3'\nquiet = true\nmax-message-bytes = 0x10\ndata-dir = \"/var/lib/sb\"",
        )
        .unwrap();
        assert_eq!(config.secret.as_deref(), Some("s3"));
        assert_eq!(config.log_level, Level::Warn);
        assert_eq!(config.max_message_bytes, 16);
        assert_eq!(config.data_dir, std::path::Path::new("/var/lib/sb"));
        assert_eq!(from_file("quiet = false").unwrap().log_level, Level::Info);
    }

    #[test]
    fn file_errors_name_the_file_the_line_and_the_key() {
        let cases = [
            (
                "listen = \"x:1\"\n\nmax-conections = 5",
                "switchboard.toml:3: unknown key \"max-conections\"",
            ),
            (
                "max-message-bytes = -5",
                "switchboard.toml:1: max-message-bytes: -5 is not a positive whole number",
            ),
            (
                "\nmax-message-bytes = \"abc\"",
                "switchboard.toml:2: max-message-bytes: \"abc\" is not a whole number (without quotes)",
            ),
            (
                "ping-ms = 0",
                "switchboard.toml:1: ping-ms: 0 is not a number of milliseconds from 1 to 604800000 (a week)",
            ),
            (
                "secret = 42",
                "switchboard.toml:1: secret: 42 is not a quoted string",
            ),
            (
                "listen = 127.0.0.1:80",
                "switchboard.toml:1: listen: 127.0.0.1:80 is not a quoted string",
            ),
            (
                "quiet = \"yes\"",
                "switchboard.toml:1: quiet: \"yes\" is not true or false",
            ),
            (
                "world = 3",
                "switchboard.toml:1: world: 3 is not a quoted string or a list of them",
            ),
            (
                "world = [\n  \"a\",\n  7,\n]",
                "switchboard.toml:3: world: 7 is not a quoted string",
            ),
            (
                "world = [\"a/b\"]",
                "switchboard.toml:1: world: \"a/b\" is not a world name without '/'",
            ),
            (
                "log-level = \"loud\"",
                "switchboard.toml:1: log-level: \"loud\" is not error, warn, info or debug",
            ),
            (
                "config = \"other.toml\"",
                "switchboard.toml:1: unknown key \"config\": --config works on the command line only, not in the file",
            ),
            (
                "check-config = true",
                "switchboard.toml:1: unknown key \"check-config\": --check-config works on the command line only, not in the file",
            ),
            (
                "# settings\n[server]\nlisten = \"x\"",
                "switchboard.toml:2: tables are not used: write every key at the top level",
            ),
            (
                "listen = \"x\"\nlisten = \"y\"",
                "switchboard.toml:2: \"listen\" is set twice",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(file_error(text), message, "{text:?}");
        }
        assert!(matches!(
            from_file("\n\nmax-conections = 5"),
            Err(CliError::UnknownKey { at: Location { line: 3, .. }, key }) if key == "max-conections"
        ));
    }

    #[test]
    fn an_unreadable_file_names_its_path_and_the_system_s_reason() {
        let error = run(&["--config", "/nonexistent/switchboard.toml"], &[]).unwrap_err();
        let CliError::FileUnreadable {
            path,
            error: reason,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(path, "/nonexistent/switchboard.toml");
        let expected = std::io::Error::from(std::io::ErrorKind::NotFound).kind();
        assert_eq!(
            std::fs::read("/nonexistent/switchboard.toml")
                .unwrap_err()
                .kind(),
            expected
        );
        assert_eq!(
            error.to_string(),
            format!("cannot read the config file /nonexistent/switchboard.toml: {reason}")
        );
        assert!(reason.contains("os error"), "{reason}");
    }

    #[test]
    fn the_log_level_from_every_source() {
        let level = |args: &[&str], env: &[(&str, &str)]| run(args, env).unwrap().log_level;
        assert_eq!(level(&[], &[]), Level::Info);
        assert_eq!(level(&["--log-level", "debug"], &[]), Level::Debug);
        assert_eq!(level(&["--quiet"], &[]), Level::Warn);
        assert_eq!(level(&[], &[("RUST_LOG", "debug")]), Level::Debug);
        assert_eq!(
            level(&[], &[("RUST_LOG", "switchboard=error")]),
            Level::Error
        );
        assert_eq!(level(&[], &[("RUST_LOG", "tower=debug")]), Level::Info);
        let own_variable = [("RUST_LOG", "debug"), ("SWITCHBOARD_LOG_LEVEL", "warn")];
        assert_eq!(level(&[], &own_variable), Level::Warn);
        assert_eq!(level(&["--log-level=error"], &own_variable), Level::Error);
        let file = config_file("log-level = \"error\"");
        assert_eq!(level(&["--config", &file], &[]), Level::Error);
        assert_eq!(
            level(&["--config", &file], &[("RUST_LOG", "debug")]),
            Level::Debug
        );
        assert!(run(&["--log-level", "loud"], &[]).is_err());
    }

    #[test]
    fn check_config_checks_everything_and_is_command_line_only() {
        let file = config_file("max-connections = 7");
        let Ok(Invocation::CheckConfig(config)) =
            invoke(&["--config", &file, "--check-config"], &[])
        else {
            panic!("not a check");
        };
        assert_eq!(config.max_connections, 7);
        let bad = config_file("max-connections = 0");
        assert!(invoke(&["--check-config", "--config", &bad], &[]).is_err());
        assert!(invoke(&["--check-config=yes"], &[]).is_err());
        let env = [("SWITCHBOARD_CHECK_CONFIG", "1")];
        assert!(matches!(invoke(&[], &env), Ok(Invocation::Run(_))));
    }

    #[test]
    fn settings_show_every_flag_and_no_secret() {
        let config = run(
            &[
                "--secret",
                "s3cr3t",
                "--jwt-key",
                "k3y",
                "--admin-token",
                "t0k3n",
            ],
            &[],
        )
        .unwrap();
        let settings = config.settings();
        for flag in FLAGS {
            let shown = settings.iter().any(|(name, _)| *name == flag.name);
            let folded = matches!(flag.name, "quiet"); // into log-level
            let command = matches!(flag.apply, Setter::ConfigFile | Setter::CheckConfig);
            assert_eq!(shown, !folded && !command, "--{}", flag.name);
        }
        let printed = format!("{settings:?}");
        for secret in ["s3cr3t", "k3y", "t0k3n"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        let shown = |name| settings.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        assert_eq!(shown("secret"), "(set)");
        assert_eq!(shown("world"), "[\"default\"]");
        assert_eq!(shown("ping-ms"), "15000");
    }

    /// Each flag's type in the file is read from its usage's placeholder:
    /// a new placeholder must be placed here on purpose.
    #[test]
    fn every_placeholder_has_a_file_type() {
        for flag in FLAGS {
            let placeholder = flag.usage.split_whitespace().next().unwrap_or("");
            let known = match flag.apply {
                Setter::Value(_) => [
                    "N", "TEXT", "ADDR", "DIR", "LEVEL", "URL", "PATTERNS", "LIST", "CIDRS", "FILE",
                ]
                .contains(&placeholder),
                Setter::List(_) => placeholder == "NAME",
                Setter::ConfigFile => placeholder == "FILE",
                Setter::Switch(_) | Setter::CheckConfig => {
                    !placeholder.chars().all(|c| c.is_ascii_uppercase())
                }
            };
            assert!(known, "--{}: placeholder {placeholder:?}", flag.name);
        }
    }

    #[test]
    fn redis_needs_a_build_with_the_redis_feature() {
        let parsed = run(&["--redis", "redis://127.0.0.1:6379"], &[]);
        match (cfg!(feature = "redis"), parsed) {
            (true, Ok(config)) => {
                assert_eq!(config.redis.as_deref(), Some("redis://127.0.0.1:6379"))
            }
            (false, Err(error)) => assert!(error.to_string().contains("--features redis")),
            (with_feature, other) => panic!("feature {with_feature}: {other:?}"),
        }
    }

    #[test]
    fn tls_needs_a_build_with_the_tls_feature_and_both_files() {
        let parsed = run(&["--tls-cert", "c.pem", "--tls-key", "k.pem"], &[]);
        match (cfg!(feature = "tls"), parsed) {
            (true, Ok(config)) => assert_eq!(
                config.tls_files(),
                Some((Path::new("c.pem"), Path::new("k.pem")))
            ),
            (false, Err(error)) => assert!(error.to_string().contains("--features tls")),
            (with_feature, other) => panic!("feature {with_feature}: {other:?}"),
        }
        if cfg!(feature = "tls") {
            let half = run(&["--tls-cert", "c.pem"], &[]).unwrap_err();
            assert_eq!(half, CliError::TlsHalf);
            assert!(half.to_string().contains("--tls-key"), "{half}");
        }
    }

    #[test]
    fn the_example_file_holds_every_key_with_its_default() {
        let example = include_str!("../examples/switchboard.toml");
        let defaults = Config::default().settings();
        let as_is = from_file(example).unwrap();
        assert_eq!(as_is.settings(), defaults, "as shipped");
        // Every `# key = value` line, uncommented, still gives the defaults
        // (keys without one, the secrets, aside).
        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if setting.contains(" = ") => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let entries = flat_toml::parse(&uncommented).unwrap();
        for flag in FLAGS {
            let settable = !matches!(flag.apply, Setter::ConfigFile | Setter::CheckConfig);
            let present = entries.iter().any(|entry| entry.key == flag.name);
            assert_eq!(present, settable, "{} in the example", flag.name);
        }
        // A build without Redis support refuses `redis` (tested below).
        let with_redis = cfg!(feature = "redis");
        let with_tls = cfg!(feature = "tls");
        let uncommented: String = uncommented
            .lines()
            .filter(|line| with_redis || !line.starts_with("redis ="))
            .filter(|line| with_tls || !line.starts_with("tls-"))
            .map(|line| format!("{line}\n"))
            .collect();
        let all = from_file(&uncommented).unwrap();
        let secrets = ["secret", "jwt-key", "emit-token", "admin-token"];
        for ((name, value), (_, default)) in all.settings().iter().zip(&defaults) {
            match (secrets.contains(name), *name) {
                (true, _) => assert_eq!(value, "(set)", "{name}"),
                // Off by default; the example shows a local Redis.
                (false, "redis") if with_redis => {
                    assert_eq!(value, "\"redis://127.0.0.1:6379\"")
                }
                // Off by default; the example shows certbot's paths.
                (false, "tls-cert" | "tls-key") if with_tls => {
                    assert!(value.contains("/etc/letsencrypt/live/"), "{name}")
                }
                (false, _) => assert_eq!(value, default, "{name}"),
            }
        }
    }
}
