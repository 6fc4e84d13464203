//! Logging: the `log` crate's facade, and switchboard's own small backend
//! that writes one line per record on standard error.
//!
//! Every module logs through the facade (`log::info!(…)` after `use
//! crate::log;`), so an embedder can install any logger it likes; the
//! binary installs [`Backend`] ([`install`]). Records of other crates
//! (tungstenite's) pass through the same backend, named by their target.
//!
//! Under systemd the journal adds the time and the program's name, and
//! reads a line's level from a `<N>` syslog prefix, so that `journalctl -p
//! warning` works; anywhere else a line reads
//! `2026-12-03T06:50:01.123Z switchboard: warn: …`, with an RFC 3339 UTC
//! time. Fields that identify a connection are written `key=value`
//! (`conn=17 peer=127.0.0.1:50412 dialect=channels`), never a secret. The
//! level is process-wide and atomic, so that a reload can change it while
//! connections are logging.

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

// So that call sites read `log::info!(…)` after `use crate::log;`: the
// facade's own macros.
#[doc(no_inline)]
pub use ::log::{debug, error, info, warn};

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

    /// The nearest of switchboard's levels to one of the facade's (`trace`
    /// is `debug`).
    fn of(level: ::log::Level) -> Level {
        match level {
            ::log::Level::Error => Level::Error,
            ::log::Level::Warn => Level::Warn,
            ::log::Level::Info => Level::Info,
            ::log::Level::Debug | ::log::Level::Trace => Level::Debug,
        }
    }

    /// The facade's filter that lets exactly this level and those before
    /// it through.
    fn filter(self) -> ::log::LevelFilter {
        match self {
            Level::Error => ::log::LevelFilter::Error,
            Level::Warn => ::log::LevelFilter::Warn,
            Level::Info => ::log::LevelFilter::Info,
            Level::Debug => ::log::LevelFilter::Debug,
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

/// Sets the most detailed level written from now on, for every thread
/// (and the facade's filter, so that disabled records cost nothing).
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    ::log::set_max_level(level.filter());
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

/// switchboard's logger: one line per record on standard error, at the
/// level [`set_level`] last set.
#[derive(Debug)]
pub struct Backend;

static BACKEND: Backend = Backend;

/// Makes [`Backend`] the process's logger (the binary does; an embedder
/// may install its own instead). Does nothing if a logger is already set.
pub fn install() {
    if ::log::set_logger(&BACKEND).is_ok() {
        ::log::set_max_level(level().filter());
    }
}

impl ::log::Log for Backend {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        enabled(Level::of(metadata.level()))
    }

    fn log(&self, record: &::log::Record<'_>) {
        let level = Level::of(record.level());
        if !enabled(level) {
            return;
        }
        // Other crates' records say whose they are.
        let ours = record.target().starts_with("switchboard");
        let line = Line {
            destination: destination(),
            time: SystemTime::now(),
            level,
            target: (!ours).then(|| record.target()),
            message: *record.args(),
        };
        // A closed standard error is no reason to stop serving.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
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
    time: SystemTime,
    level: Level,
    /// Another crate's records name it (`tungstenite::protocol`).
    target: Option<&'a str>,
    message: fmt::Arguments<'a>,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.destination {
            Destination::Journal => write!(f, "<{}>", self.level.syslog_priority())?,
            Destination::Plain => {
                write!(f, "{} switchboard: {}: ", Rfc3339(self.time), self.level)?;
            }
        }
        if let Some(target) = self.target {
            write!(f, "{target}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A time as RFC 3339 in UTC, to the millisecond:
/// `2026-12-03T06:50:01.123Z`.
struct Rfc3339(SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since.as_secs();
        let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
        let of_day = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            since.subsec_millis()
        )
    }
}

/// The proleptic Gregorian date of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`), so that no date crate is needed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    // The algorithm's own ranges: a day of 1 to 31, a month of 1 to 12.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (day, month) = (
        (day_of_year - (153 * mp + 2) / 5 + 1) as u32,
        if mp < 10 { mp + 3 } else { mp - 9 } as u32,
    );
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    fn line(destination: Destination, level: Level, target: Option<&str>) -> String {
        let time = UNIX_EPOCH + std::time::Duration::from_millis(1_764_744_601_123);
        Line {
            destination,
            time,
            level,
            target,
            message: format_args!("x"),
        }
        .to_string()
    }

    #[test]
    fn a_line_shows_its_level_as_its_destination_reads_it() {
        assert_eq!(
            line(Destination::Plain, Level::Warn, None),
            "2025-12-03T06:50:01.123Z switchboard: warn: x"
        );
        assert_eq!(
            line(
                Destination::Plain,
                Level::Info,
                Some("tungstenite::protocol")
            ),
            "2025-12-03T06:50:01.123Z switchboard: info: tungstenite::protocol: x"
        );
        let line = |destination, level| line(destination, level, None);
        assert_eq!(line(Destination::Journal, Level::Error), "<3>x");
        assert_eq!(line(Destination::Journal, Level::Warn), "<4>x");
        assert_eq!(line(Destination::Journal, Level::Info), "<6>x");
        assert_eq!(line(Destination::Journal, Level::Debug), "<7>x");
    }

    #[test]
    fn times_are_rfc_3339_in_utc() {
        let at = |seconds: u64| {
            Rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(seconds)).to_string()
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59.000Z");
        assert_eq!(at(1_798_761_600), "2027-01-01T00:00:00.000Z");
    }

    #[test]
    fn records_go_through_the_facade_to_the_backend() {
        // The facade's filter follows the level; the backend's `enabled`
        // agrees with it.
        use ::log::Log;
        set_level(Level::Warn);
        let metadata = |level| {
            ::log::Metadata::builder()
                .level(level)
                .target("switchboard")
                .build()
        };
        assert!(Backend.enabled(&metadata(::log::Level::Warn)));
        assert!(!Backend.enabled(&metadata(::log::Level::Info)));
        assert_eq!(::log::max_level(), ::log::LevelFilter::Warn);
        set_level(Level::Debug);
        assert!(Backend.enabled(&metadata(::log::Level::Trace)));
        assert_eq!(::log::max_level(), ::log::LevelFilter::Debug);
        set_level(Level::Info);
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
