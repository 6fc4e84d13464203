//! What a running server process holds, read from Linux's /proc: resident
//! memory (now and at its peak), threads (in all, and those serving
//! sockets), and open file descriptors. The resource tests read these from
//! a spawned `switchboard` binary, so that nothing of the test's own
//! clients is counted.

use std::time::{Duration, Instant};

use super::PATIENCE;

/// One reading of a process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident memory since the last [`reset_peak`] (`VmHWM`), KiB.
    pub peak_kib: u64,
    /// Peak virtual memory since the start (`VmPeak`), KiB.
    pub virtual_peak_kib: u64,
    /// Threads in all.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// Reads `pid`'s resources now.
pub fn usage(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e} (has the server died?)"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Usage {
        rss_kib: field("VmRSS"),
        peak_kib: field("VmHWM"),
        virtual_peak_kib: field("VmPeak"),
        threads: field("Threads"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|entries| entries.count() as u64)
            .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}")),
    }
}

/// Starts a new peak: `VmHWM` is set back to the current resident memory
/// (writing 5 to `clear_refs`, Linux 4.0 and later).
pub fn reset_peak(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .unwrap_or_else(|e| panic!("reset the peak RSS of {pid}: {e}"));
}

/// The threads of `pid` that serve a socket: the server names them `conn`
/// (the request, then the WebSocket's reader) and `conn-writer`.
pub fn socket_threads(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        panic!("/proc/{pid}/task: has the server died?");
    };
    tasks
        .filter_map(Result::ok)
        // A thread may end between the listing and the read: it no longer counts.
        .filter_map(|task| std::fs::read_to_string(task.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with("conn"))
        .count() as u64
}

/// Waits until `pid` serves `sockets` threads' worth of sockets
/// ([`socket_threads`]) and returns its usage then, and how long that took.
pub fn wait_for_socket_threads(pid: u32, sockets: u64) -> (Usage, Duration) {
    let started = Instant::now();
    loop {
        if socket_threads(pid) == sockets {
            return (usage(pid), started.elapsed());
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the server still has {} socket threads, not {sockets}",
            socket_threads(pid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `pid` has no socket threads left and `threads` and `fds`
/// equal `baseline`'s; returns how long that took. Fails with the last
/// reading after [`PATIENCE`].
pub fn wait_for_baseline(pid: u32, baseline: Usage) -> Duration {
    let started = Instant::now();
    loop {
        let now = usage(pid);
        if socket_threads(pid) == 0 && now.threads == baseline.threads && now.fds == baseline.fds {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "not back to the baseline: {now:?}, baseline {baseline:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The usage of a server serving no socket: waits for its start-up
/// threads (it answers `/healthz` once they run) and for the check's own
/// socket to be let go.
pub fn idle_baseline(pid: u32, addr: std::net::SocketAddr) -> Usage {
    super::wait_until("the server to answer /healthz", || {
        super::get(addr, "/healthz").starts_with("HTTP/1.1 200 ")
    });
    wait_for_socket_threads(pid, 0).0
}
