//! What the machine lets this process hold: the kernel and process limits
//! that cap how many connections can be served, read once at start so an
//! operator learns of a too-low limit before clients do.
//!
//! Every connection costs one file descriptor and two threads, and on
//! Linux each thread costs four memory mappings (its stack and guard page,
//! and the signal stack and guard page that Rust's runtime gives every
//! thread for reporting stack overflows). The default `vm.max_map_count`
//! of 65,530 therefore caps a process at about 8,000 connections, below
//! the default `--max-connections` of 10,000.

use std::fmt;

/// Memory mappings per connection: two threads of four mappings each.
const MAPPINGS_PER_CONNECTION: u64 = 8;
/// Mappings, files and threads the server needs besides its connections
/// (the binary, its libraries, the heap, the router and saver threads).
const RESERVE: u64 = 200;

/// A limit that stops the server short of `--max-connections`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// Where the limit is set, e.g. `vm.max_map_count`.
    pub limit: &'static str,
    /// Its value.
    pub value: u64,
    /// How many connections it allows.
    pub connections: u64,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} allows about {} connections",
            self.limit, self.value, self.connections
        )
    }
}

/// The limits that allow fewer than `wanted` connections, lowest first.
/// Limits that cannot be read (not Linux, no /proc) are skipped.
pub fn shortfalls(wanted: usize) -> Vec<Shortfall> {
    let limits = [
        (
            "vm.max_map_count",
            read_number("/proc/sys/vm/max_map_count"),
            MAPPINGS_PER_CONNECTION,
        ),
        (
            "kernel.threads-max",
            read_number("/proc/sys/kernel/threads-max"),
            2,
        ),
        ("kernel.pid_max", read_number("/proc/sys/kernel/pid_max"), 2),
        (
            "the open-file limit (LimitNOFILE, ulimit -n)",
            open_file_limit(),
            1,
        ),
    ];
    let mut found: Vec<Shortfall> = limits
        .into_iter()
        .filter_map(|(limit, value, per_connection)| {
            let value = value?;
            let connections = value.saturating_sub(RESERVE) / per_connection;
            (connections < wanted as u64).then_some(Shortfall {
                limit,
                value,
                connections,
            })
        })
        .collect();
    found.sort_by_key(|s| s.connections);
    found
}

/// Fits `--max-connections` to the machine. The default (10,000) is lowered
/// to what the lowest limit allows, quietly but for an info line: a default
/// should fit the machine it runs on. A value the operator asked for is
/// kept, with a warning per limit that stops it short. Called at start and
/// on every reload, whose new settings come with the default again.
pub fn fit(config: &mut crate::Config) {
    let asked = config.max_connections;
    let short = shortfalls(asked);
    let default = crate::Config::default().max_connections;
    match short.first() {
        None => {}
        Some(lowest) if asked == default => {
            config.max_connections =
                usize::try_from(lowest.connections.max(1)).unwrap_or(usize::MAX);
            crate::log::info!(
                "max-connections = {} (the default {default} is more than {lowest})",
                config.max_connections
            );
        }
        Some(_) => {
            for shortfall in short {
                crate::log::warn!("--max-connections is {asked}, but {shortfall}");
            }
        }
    }
}

/// What to tell an operator when a thread cannot be started.
pub fn thread_hint() -> &'static str {
    "threads are limited by RLIMIT_NPROC, the service's TasksMax (cgroup pids.max), \
     kernel.threads-max, kernel.pid_max and vm.max_map_count (four mappings per thread)"
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The soft open-file limit, from the `Max open files` line of
/// /proc/self/limits (std offers no getrlimit).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handful_of_connections_fits_any_machine_that_runs_the_tests() {
        assert_eq!(shortfalls(10), Vec::new());
    }

    #[test]
    fn an_impossible_number_of_connections_names_every_readable_limit() {
        let found = shortfalls(usize::MAX / 2);
        if std::path::Path::new("/proc/sys/vm/max_map_count").exists() {
            assert!(found.iter().any(|s| s.limit == "vm.max_map_count"));
        }
        let sorted = found
            .windows(2)
            .all(|w| w[0].connections <= w[1].connections);
        assert!(sorted, "{found:?}");
    }

    #[test]
    fn a_shortfall_says_the_limit_its_value_and_what_it_allows() {
        let s = Shortfall {
            limit: "vm.max_map_count",
            value: 65_530,
            connections: 8_166,
        };
        assert_eq!(
            s.to_string(),
            "vm.max_map_count = 65530 allows about 8166 connections"
        );
    }
}
