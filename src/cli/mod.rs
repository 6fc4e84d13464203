//! Command-line flags, `SWITCHBOARD_*` environment variables, and the
//! config file.
//!
//! Every flag `--some-flag` can also be set as `SWITCHBOARD_SOME_FLAG`, and
//! as `some-flag = …` in the TOML file `--config` names. A flag on the
//! command line wins over the environment, which wins over the file, which
//! wins over the default. Every source goes through the flag's one setter,
//! so a value is checked the same way wherever it comes from.
//!
//! - `flags.rs`: the one table of flags, each with its usage line and its
//!   setter, and the value parsers they share;
//! - `usage.rs`: the `--help` text, made from that table and the endpoints;
//! - this file: reading the sources in order, and the errors that name
//!   which source, flag or line was wrong.

use std::fmt;

mod flags;
#[cfg(test)]
mod tests;
mod usage;

use crate::config::Config;
use crate::flat_toml::{self, Entry, Kind, Value};
use crate::log::Level;
use flags::{Flag, Setter, FLAGS};
pub use usage::{flag_names, usage};

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
