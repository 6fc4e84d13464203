//! Processes: CPU time, memory and threads from `/proc`, and `--pin`.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::Res;

/// A reading of /proc/PID/stat and /proc/PID/status.
#[derive(Clone, Copy)]
pub struct ProcSample {
    /// utime and stime: CPU time in user space and in the kernel (for a
    /// fan-out server, mostly copying frames into sockets), in clock ticks.
    pub user_ticks: u64,
    pub system_ticks: u64,
    pub rss_kib: u64,
    /// The highest RSS the process ever had.
    pub peak_kib: u64,
    pub threads: u64,
    /// write/writev calls and the bytes they wrote (/proc/PID/io, which
    /// only the process's owner may read): bytes per call shows how well a
    /// server batches its frames. Linux counts only calls through the VFS:
    /// `send`/`sendmsg` (which Rust's `TcpStream` uses) are not counted.
    pub writes: Option<(u64, u64)>,
}

impl ProcSample {
    /// `pid` is a number or `self`.
    pub fn read(pid: &str) -> Res<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name (field 2) may hold spaces and parentheses:
        // count fields from the last ')'. Field 3 is then index 0, so
        // utime (field 14) is index 11 and stime index 12.
        let fields: Vec<&str> = stat[stat.rfind(')').ok_or("malformed stat")? + 1..]
            .split_whitespace()
            .collect();
        let tick = |i: usize| -> Res<u64> { Ok(fields.get(i).ok_or("short /proc stat")?.parse()?) };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Ok(ProcSample {
            user_ticks: tick(11)?,
            system_ticks: tick(12)?,
            rss_kib: status_field(&status, "VmRSS:")?,
            peak_kib: status_field(&status, "VmHWM:")?,
            threads: status_field(&status, "Threads:")?,
            writes: std::fs::read_to_string(format!("/proc/{pid}/io"))
                .ok()
                .and_then(|io| {
                    Some((
                        status_field(&io, "syscw:").ok()?,
                        status_field(&io, "wchar:").ok()?,
                    ))
                }),
        })
    }

    pub fn server(pid: Option<u32>) -> Res<Option<ProcSample>> {
        pid.map(|pid| ProcSample::read(&pid.to_string()))
            .transpose()
    }
}

pub fn status_field(status: &str, name: &str) -> Res<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .ok_or(format!("no {name} in /proc status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("empty field")?
        .parse()?)
}

/// Clock ticks per second, the unit of /proc's CPU times: asked of
/// `getconf` once (there is no libc here to call sysconf), else Linux's 100.
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// CPU seconds used between two samples: (user, system).
pub fn cpu_seconds(before: &ProcSample, after: &ProcSample) -> (f64, f64) {
    let seconds = |ticks: u64| ticks as f64 / ticks_per_second() as f64;
    (
        seconds(after.user_ticks.saturating_sub(before.user_ticks)),
        seconds(after.system_ticks.saturating_sub(before.system_ticks)),
    )
}

/// One line about a process's CPU over `elapsed`, as a share of one core.
pub fn cpu_line(who: &str, before: &ProcSample, after: &ProcSample, elapsed: Duration) -> String {
    let (user, system) = cpu_seconds(before, after);
    let share = 100.0 * (user + system) / elapsed.as_secs_f64().max(1e-9);
    format!(
        "{who}: CPU {:.2} s (user {user:.2} s, system {system:.2} s) \
         in {:.2} s = {share:.0}% of one core",
        user + system,
        elapsed.as_secs_f64()
    )
}

/// A line about the write calls between two samples, if both have them.
pub fn writes_line(who: &str, before: &ProcSample, after: &ProcSample) -> Option<String> {
    let ((calls0, bytes0), (calls1, bytes1)) = (before.writes?, after.writes?);
    let calls = calls1.saturating_sub(calls0);
    let bytes = bytes1.saturating_sub(bytes0);
    if calls == 0 {
        return None; // the process writes with send(), invisible here
    }
    Some(format!(
        "{who}: {calls} write/writev calls, {:.1} KiB per call",
        bytes as f64 / calls as f64 / 1024.0
    ))
}

/// The machine-wide limits on threads, for when a server stops accepting:
/// each connection of a two-threads-per-socket server costs two threads and
/// (with Rust's threads) eight memory mappings.
pub fn thread_limits() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_or_else(|_| "?".to_string(), |v| v.trim().to_string())
    };
    format!(
        "vm.max_map_count = {} (about 8 per connection), kernel.threads-max = {}, \
         kernel.pid_max = {} (raise with sysctl -w)",
        read("/proc/sys/vm/max_map_count"),
        read("/proc/sys/kernel/threads-max"),
        read("/proc/sys/kernel/pid_max")
    )
}

/// The open-file limits from /proc/self/limits, for the EMFILE message.
/// Read once, at start: once the limit is reached, opening the file that
/// tells it fails too.
pub fn open_file_limit() -> &'static str {
    static LIMIT: OnceLock<String> = OnceLock::new();
    LIMIT.get_or_init(|| {
        std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("Max open files"))?;
                let mut numbers = line["Max open files".len()..].split_whitespace();
                Some(format!(
                    "soft {}, hard {}",
                    numbers.next()?,
                    numbers.next()?
                ))
            })
            .unwrap_or_else(|| "unknown".into())
    })
}

/// `--pin`: every thread of the server (`server_pid`) on CPU 0, this
/// process on the others. Done before the bench starts its threads, which
/// inherit the mask; the server's new connection threads inherit its
/// accept thread's.
pub fn pin(server_pid: Option<u32>) -> Res<()> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus < 2 {
        return Err("--pin needs at least two CPUs".into());
    }
    set_affinity(0, 1..cpus)?;
    if let Some(pid) = server_pid {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let tid: i32 = task?.file_name().to_string_lossy().parse()?;
            set_affinity(tid, 0..1)?;
        }
    }
    println!("pinned: server on CPU 0, bench on CPUs 1..{}", cpus - 1);
    Ok(())
}

/// sched_setaffinity(2) for thread `tid` (0: the calling thread).
#[allow(unsafe_code)]
pub fn set_affinity(tid: i32, cpus: std::ops::Range<usize>) -> Res<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes only
    // within it for CPUs below CPU_SETSIZE (checked), and the pointer and
    // size passed are the set's own.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus.filter(|&cpu| cpu < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result != 0 {
        return Err(format!(
            "sched_setaffinity({tid}): {}",
            std::io::Error::last_os_error()
        )
        .into());
    }
    Ok(())
}
