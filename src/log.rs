//! Log lines on standard error: one line per event, each with its level.
//!
//! Under systemd the journal adds the time and the program's name, and
//! reads a line's level from a `<N>` syslog prefix, so that `journalctl -p
//! warning` works; anywhere else a line reads `switchboard: warn: …`.
//! The level is process-wide and atomic, so that a reload can change it
//! while connections are logging.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Writes one `error` line: something failed that an operator must see.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Error, format_args!($($arg)*))
    };
}

/// Writes one `warn` line: the server goes on, but not as configured.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*))
    };
}

/// Writes one `info` line: a connection came or went.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Info, format_args!($($arg)*))
    };
}

/// Writes one `debug` line: detail for chasing a problem.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => {
        $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*))
    };
}

// So that call sites read `log::info!(…)` after `use crate::log;`.
#[doc(no_inline)]
pub use crate::{debug, error, info, warn};

/// How much is logged: each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Failures only.
    Error,
    /// Failures, and settings the host cannot honour.
    Warn,
    /// Also every connect and disconnect (the default).
    Info,
    /// Also what is only useful when chasing a problem.
    Debug,
}

impl Level {
    const ALL: [Level; 4] = [Level::Error, Level::Warn, Level::Info, Level::Debug];

    /// The level named `name` (`error`, `warn`, `info` or `debug`, in any case).
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(name))
    }

    /// The level a `RUST_LOG` value asks of this program, in its simple
    /// forms: `debug`, or `switchboard=debug` among other directives
    /// (which win over a bare level). `trace` is `debug` and `off` is
    /// `error`, the nearest levels this program has. `None` when it says
    /// nothing about this program: `RUST_LOG` is often meant for others.
    pub fn from_rust_log(value: &str) -> Option<Level> {
        let mut bare = None;
        for directive in value.split(',').map(str::trim) {
            match directive.split_once('=') {
                Some(("switchboard", level)) => return Level::from_rust_log_word(level),
                Some(_) => {}
                None => bare = Level::from_rust_log_word(directive).or(bare),
            }
        }
        bare
    }

    fn from_rust_log_word(word: &str) -> Option<Level> {
        match word.to_ascii_lowercase().as_str() {
            "trace" => Some(Level::Debug),
            "off" => Some(Level::Error),
            other => Level::parse(other),
        }
    }

    /// The name flags and the config file use.
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix.
    fn syslog_priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the most detailed level written from now on, for every thread.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// The most detailed level written.
pub fn level() -> Level {
    let stored = LEVEL.load(Ordering::Relaxed);
    // Only `set_level` stores, and it stores a `Level`.
    Level::ALL[usize::from(stored)]
}

/// Whether lines of `level` are written.
pub fn enabled(level: Level) -> bool {
    level <= self::level()
}

/// Writes one line of `level`, if that level is enabled; what the level
/// macros call.
pub fn write(level: Level, message: fmt::Arguments<'_>) {
    if enabled(level) {
        eprintln!("{}", Line::new(destination(), level, message));
    }
}

/// Where standard error goes, which decides how a line shows its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Destination {
    /// systemd's journal, which takes the level from a `<N>` prefix.
    Journal,
    /// A terminal or a file, read by people.
    Plain,
}

/// Found once: standard error does not change while the process runs.
fn destination() -> Destination {
    static DESTINATION: OnceLock<Destination> = OnceLock::new();
    *DESTINATION.get_or_init(|| {
        let stream = std::env::var("JOURNAL_STREAM").ok();
        stream_matches(stream.as_deref(), stderr_identity())
    })
}

/// systemd sets `JOURNAL_STREAM` to the `device:inode` of the stream it
/// connected. A child whose standard error was redirected elsewhere
/// inherits the variable, so the stream itself is compared too, as
/// systemd.exec(5) asks.
fn stream_matches(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> Destination {
    let journal = journal_stream.and_then(|value| {
        let (device, inode) = value.split_once(':')?;
        Some((device.parse().ok()?, inode.parse().ok()?))
    });
    match (journal, stderr) {
        (Some(journal), Some(stderr)) if journal == stderr => Destination::Journal,
        _ => Destination::Plain,
    }
}

/// The `(device, inode)` of standard error, if it can be found.
#[cfg(unix)]
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let metadata = std::fs::File::from(stderr).metadata().ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn stderr_identity() -> Option<(u64, u64)> {
    None
}

/// One log line, as written.
struct Line<'a> {
    destination: Destination,
    level: Level,
    message: fmt::Arguments<'a>,
}

impl<'a> Line<'a> {
    fn new(destination: Destination, level: Level, message: fmt::Arguments<'a>) -> Line<'a> {
        Line {
            destination,
            level,
            message,
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.destination {
            Destination::Journal => {
                write!(f, "<{}>{}", self.level.syslog_priority(), self.message)
            }
            Destination::Plain => write!(f, "switchboard: {}: {}", self.level, self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_by_name_and_order_by_detail() {
        assert_eq!(Level::parse("warn"), Some(Level::Warn));
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("warning"), None);
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
        for level in Level::ALL {
            assert_eq!(Level::parse(&level.to_string()), Some(level));
        }
    }

    #[test]
    fn rust_log_in_its_simple_forms() {
        assert_eq!(Level::from_rust_log("debug"), Some(Level::Debug));
        assert_eq!(Level::from_rust_log("switchboard=warn"), Some(Level::Warn));
        assert_eq!(
            Level::from_rust_log("info, hyper=trace, switchboard=error"),
            Some(Level::Error)
        );
        assert_eq!(
            Level::from_rust_log("switchboard=error,debug"),
            Some(Level::Error)
        );
        assert_eq!(Level::from_rust_log("trace"), Some(Level::Debug));
        assert_eq!(Level::from_rust_log("off"), Some(Level::Error));
        assert_eq!(Level::from_rust_log("hyper=debug"), None);
        assert_eq!(Level::from_rust_log("loud"), None);
    }

    #[test]
    fn a_line_shows_its_level_as_its_destination_reads_it() {
        let line =
            |destination, level| Line::new(destination, level, format_args!("x")).to_string();
        assert_eq!(
            line(Destination::Plain, Level::Warn),
            "switchboard: warn: x"
        );
        assert_eq!(
            line(Destination::Plain, Level::Info),
            "switchboard: info: x"
        );
        assert_eq!(line(Destination::Journal, Level::Error), "<3>x");
        assert_eq!(line(Destination::Journal, Level::Warn), "<4>x");
        assert_eq!(line(Destination::Journal, Level::Info), "<6>x");
        assert_eq!(line(Destination::Journal, Level::Debug), "<7>x");
    }

    #[test]
    fn the_journal_only_when_standard_error_is_its_stream() {
        let stderr = Some((8, 1234));
        assert_eq!(stream_matches(Some("8:1234"), stderr), Destination::Journal);
        assert_eq!(stream_matches(Some("8:999"), stderr), Destination::Plain);
        assert_eq!(stream_matches(Some("garbage"), stderr), Destination::Plain);
        assert_eq!(stream_matches(None, stderr), Destination::Plain);
        assert_eq!(stream_matches(Some("8:1234"), None), Destination::Plain);
    }
}
