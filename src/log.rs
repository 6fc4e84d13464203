//! One-line log messages on standard error (systemd's journal adds the time).

/// Writes one line to standard error, prefixed with `switchboard:`.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        if $crate::log::enabled() {
            eprintln!("switchboard: {}", format_args!($($arg)*));
        }
    };
}

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences (or restores) the log, e.g. for benchmarks with many clients.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether log lines are written.
pub fn enabled() -> bool {
    !QUIET.load(Ordering::Relaxed)
}
