//! What `/proc` says of this process, for the `process_*` series.

/// What /proc says of this process (zeros where there is no /proc).
pub(super) struct Process {
    /// Resident memory (`VmRSS`).
    pub(super) rss_bytes: u64,
    pub(super) threads: u64,
    /// Open file descriptors: one per connection, so the capacity signal.
    pub(super) open_fds: u64,
    /// The soft limit on them (`RLIMIT_NOFILE`).
    pub(super) max_fds: u64,
    /// User and system time.
    pub(super) cpu_seconds: f64,
    /// Since the epoch, in seconds.
    pub(super) start_time: f64,
}

/// Clock ticks per second in /proc's times: USER_HZ, 100 on every Linux
/// architecture switchboard builds for (sysconf would need libc for a
/// constant).
const TICKS_PER_SECOND: f64 = 100.0;

impl Process {
    pub(super) fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (cpu_ticks, start_ticks) = stat_times();
        Process {
            rss_bytes: field("VmRSS:") * 1024,
            threads: field("Threads:"),
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64),
            max_fds: max_open_files(),
            cpu_seconds: cpu_ticks as f64 / TICKS_PER_SECOND,
            start_time: boot_time() as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        }
    }
}

/// User plus system ticks, and the start in ticks since boot, from
/// /proc/self/stat (fields 14, 15 and 22; the name in field 2 may hold
/// spaces, so counting starts after its closing parenthesis).
fn stat_times() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Field 3 is the first after the name.
    let field = |n: usize| -> u64 {
        after_name
            .split_whitespace()
            .nth(n - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field(14) + field(15), field(22))
}

/// The boot time in seconds since the epoch (`btime` in /proc/stat).
fn boot_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The soft open-file limit, from /proc/self/limits.
fn max_open_files() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
