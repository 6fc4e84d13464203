//! Soak: mixed traffic in all five dialects, with clients coming and going
//! all the time, against a switchboard server for a given time, printing
//! the server's resident memory, threads and open files every 10 s. It
//! passes (exit 0) when the memory drifts by less than 5% after the
//! warm-up, the threads and open files return to their idle numbers once
//! the clients have left, and no client saw anything unexpected; otherwise
//! it says why, and exits 1.
//!
//! ```text
//! cargo build --release                                   # the server binary, found next to the example
//! cargo run --release --example soak                      # 10 minutes
//! cargo run --release --example soak -- --seconds 30
//! cargo run --release --example soak -- --url 127.0.0.1:8080 --server-pid PID --jwt-key KEY
//! ```
//!
//! Flags: `--seconds N` (600), `--warmup N` (seconds before memory counts:
//! a tenth of the run, between 10 and 60), `--workers N` (clients of each
//! dialect at once, 2), `--pause-ms N` (between one client's sessions, 20),
//! `--binary PATH` (the server to start; default `switchboard` in the
//! directory above this example's), or `--url HOST:PORT` and
//! `--server-pid PID` of a running server started with `--jwt-key KEY --secret soak`
//! (`--jwt-key`, default `soak key`, signs the world and blazing tokens).
//!
//! What runs (see `traffic.rs`): concierge owners and partners chatting in
//! groups of their own, channels listeners hearing emits and ACKing one,
//! common clients heartbeating, inspecting and publishing, world clients
//! authenticating and sending to rooms, blazing clients editing documents;
//! and one resident client per dialect that stays throughout and hears
//! what the others publish.

// The casts: durations and counts of a soak run are small.
#![allow(clippy::cast_possible_truncation)]

mod probe;
mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use probe::{Server, Usage};
use traffic::{Dialect, Tally, Target};

/// The most RSS may grow after the warm-up, in percent.
const MAX_DRIFT_PERCENT: f64 = 5.0;
/// How long the server may take to let go of the clients' threads and
/// files once they have left.
const SETTLE_PATIENCE: Duration = Duration::from_secs(20);

/// Which server to soak.
#[derive(Debug, Clone)]
pub enum Under {
    /// Start this binary.
    Binary(PathBuf),
    /// A server that is already running.
    Running { addr: SocketAddr, pid: u32 },
}

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub seconds: u64,
    pub warmup: Option<u64>,
    pub report_every: u64,
    pub workers: usize,
    pub pause: Duration,
    pub under: Under,
    pub jwt_key: String,
}

impl Options {
    /// The defaults, against `binary`, for `seconds`.
    pub fn new(under: Under, seconds: u64) -> Options {
        Options {
            seconds,
            warmup: None,
            report_every: 10,
            workers: 2,
            pause: Duration::from_millis(20),
            under,
            jwt_key: "soak key".into(),
        }
    }

    /// Reads the flags (see the module documentation).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut options = Options::new(Under::Binary(default_binary()?), 600);
        let (mut url, mut pid) = (None, None);
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or(format!("{flag} needs a value"))?;
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{flag}: not a number: {value}"))
            };
            match flag.as_str() {
                "--seconds" => options.seconds = number()?.max(1),
                "--warmup" => options.warmup = Some(number()?),
                "--workers" => options.workers = number()?.max(1) as usize,
                "--pause-ms" => options.pause = Duration::from_millis(number()?),
                "--binary" => options.under = Under::Binary(value.into()),
                "--jwt-key" => options.jwt_key = value,
                "--url" => {
                    let address = value.trim_start_matches("ws://").trim_end_matches('/');
                    url = Some(
                        address
                            .parse::<SocketAddr>()
                            .map_err(|e| format!("--url {value}: {e}"))?,
                    );
                }
                "--server-pid" => pid = Some(number()? as u32),
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        match (url, pid) {
            (Some(addr), Some(pid)) => options.under = Under::Running { addr, pid },
            (None, None) => {}
            _ => return Err("--url and --server-pid go together".into()),
        }
        Ok(options)
    }

    /// Seconds before the memory readings count.
    fn warmup(&self) -> u64 {
        self.warmup.unwrap_or((self.seconds / 10).clamp(10, 60))
    }
}

/// `switchboard` in the directory above this example's (`target/release/`
/// for `target/release/examples/soak`).
fn default_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    let dir = me.parent().and_then(|examples| examples.parent());
    Ok(dir.map_or_else(
        || PathBuf::from("switchboard"),
        |dir| dir.join("switchboard"),
    ))
}

/// How a soak went.
#[derive(Debug)]
pub struct Outcome {
    /// Why it failed; empty if it passed.
    pub failures: Vec<String>,
}

/// One reading, `at` seconds into the run.
struct Sample {
    at: f64,
    usage: Usage,
}

/// Runs the soak and prints its progress and verdict. An error is a soak
/// that could not run at all (no server).
pub fn run(options: &Options) -> Result<Outcome, String> {
    let server = match &options.under {
        Under::Binary(binary) if !binary.exists() => {
            return Err(format!(
                "no server binary at {}: build it first (cargo build --release), or give --binary or --url",
                binary.display()
            ))
        }
        Under::Binary(binary) => Server::start(binary, &options.jwt_key)?,
        Under::Running { addr, pid } => Server::running(*addr, *pid),
    };
    let baseline = idle_baseline(&server)?;
    let warmup = options.warmup();
    println!(
        "soak: {} s against {} (pid {}), {} clients of each dialect at once, warm-up {warmup} s",
        options.seconds, server.addr, server.pid, options.workers
    );
    println!(
        "idle: RSS {} KiB, {} threads, {} fds",
        baseline.rss_kib, baseline.threads, baseline.fds
    );
    println!(
        "{:>7} {:>9} {:>8} {:>6}  sessions: concierge channels common world blazing  heard  errors",
        "time", "RSS KiB", "threads", "fds"
    );

    let target = Target {
        addr: server.addr,
        jwt_key: options.jwt_key.clone(),
    };
    // The sessions stop first and the residents after them: a session
    // still running publishes to the residents' topic, which must exist.
    let (sessions_stop, residents_stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let tally = Tally::default();
    let started = Instant::now();
    let samples = std::thread::scope(|scope| -> Result<Vec<Sample>, String> {
        let mut workers = Vec::new();
        let sampling = (|| {
            traffic::residents(scope, &target, &residents_stop, &tally)?;
            for dialect in Dialect::ALL {
                for worker in 0..options.workers {
                    let (target, stop, tally) = (&target, &sessions_stop, &tally);
                    workers.push(scope.spawn(move || {
                        traffic::work(target, dialect, worker, options.pause, stop, tally);
                    }));
                }
            }
            sample_until_the_end(&server, options, started, &tally)
        })();
        sessions_stop.store(true, Ordering::Relaxed);
        for worker in workers {
            let _ = worker.join(); // a panic is the example's bug, and shows
        }
        residents_stop.store(true, Ordering::Relaxed);
        sampling
    })?;
    let (settled, settled_after) = settle(&server, baseline)?;
    Ok(verdict(
        options,
        baseline,
        &samples,
        settled,
        settled_after,
        &tally,
        &server,
    ))
}

/// The server's usage once it serves nothing: it answers `/healthz` and
/// has no socket threads left (nothing changes for half a second).
fn idle_baseline(server: &Server) -> Result<Usage, String> {
    let (status, _) = server.get("/healthz")?;
    if status != 200 {
        return Err(format!("/healthz answered {status}"));
    }
    let mut last = server.usage()?;
    let mut steady_since = Instant::now();
    let started = Instant::now();
    while steady_since.elapsed() < Duration::from_millis(500) {
        std::thread::sleep(Duration::from_millis(50));
        let now = server.usage()?;
        if (now.threads, now.fds) != (last.threads, last.fds) {
            steady_since = Instant::now();
        }
        last = now;
        if started.elapsed() > SETTLE_PATIENCE {
            return Err("the idle server's threads never settled".into());
        }
    }
    Ok(last)
}

/// Reads the server's usage every second until the run's end; prints a
/// line every `report_every` seconds.
fn sample_until_the_end(
    server: &Server,
    options: &Options,
    started: Instant,
    tally: &Tally,
) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for second in 1..=options.seconds {
        let due = started + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let usage = server.usage()?;
        samples.push(Sample {
            at: started.elapsed().as_secs_f64(),
            usage,
        });
        if second % options.report_every == 0 || second == options.seconds {
            let sessions: Vec<String> = tally
                .sessions
                .iter()
                .map(|count| count.load(Ordering::Relaxed).to_string())
                .collect();
            println!(
                "{:>5} s {:>9} {:>8} {:>6}  {:>28}  {:>5}  {:>6}",
                second,
                usage.rss_kib,
                usage.threads,
                usage.fds,
                sessions.join(" "),
                tally.heard.load(Ordering::Relaxed),
                tally.errors.load(Ordering::Relaxed)
            );
        }
    }
    Ok(samples)
}

/// Waits (at most [`SETTLE_PATIENCE`]) for the server's threads and files
/// to be back to `baseline`'s after the clients have left; the last reading
/// and how long it took.
fn settle(server: &Server, baseline: Usage) -> Result<(Usage, Duration), String> {
    let started = Instant::now();
    loop {
        let now = server.usage()?;
        let back = now.threads == baseline.threads && now.fds == baseline.fds;
        if back || started.elapsed() >= SETTLE_PATIENCE {
            return Ok((now, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The mean RSS of the samples taken in `[from, to)` seconds.
fn mean_rss(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let window: Vec<f64> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .map(|s| s.usage.rss_kib as f64)
        .collect();
    (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64)
}

/// Judges the run and prints why.
fn verdict(
    options: &Options,
    baseline: Usage,
    samples: &[Sample],
    settled: Usage,
    settled_after: Duration,
    tally: &Tally,
    server: &Server,
) -> Outcome {
    let mut failures = Vec::new();
    let (warmup, window, end) = (
        options.warmup() as f64,
        options.report_every as f64,
        options.seconds as f64,
    );
    let after_warmup = mean_rss(samples, warmup, (warmup + window).min(end));
    let at_the_end = mean_rss(samples, (end - window).max(warmup), end + 1.0);
    let peak = samples
        .iter()
        .filter(|s| s.at >= warmup)
        .map(|s| s.usage.rss_kib)
        .max();
    match (after_warmup, at_the_end, peak) {
        (Some(first), Some(last), Some(peak)) => {
            let drift = (last - first) / first * 100.0;
            println!(
                "RSS after the warm-up: {first:.0} KiB (mean of {warmup:.0}-{:.0} s); at the end: {last:.0} KiB \
                 (mean of the last {window:.0} s); drift {drift:+.2}% (limit {MAX_DRIFT_PERCENT}%); peak {peak} KiB",
                (warmup + window).min(end)
            );
            if drift >= MAX_DRIFT_PERCENT {
                failures.push(format!(
                    "RSS grew {drift:.2}% after the warm-up, from {first:.0} to {last:.0} KiB"
                ));
            }
        }
        _ => failures.push(format!(
            "the run ({end} s) is too short for a warm-up of {warmup} s"
        )),
    }
    println!(
        "after the clients left: {} threads (idle: {}), {} fds (idle: {}), RSS {} KiB, {} ms after",
        settled.threads,
        baseline.threads,
        settled.fds,
        baseline.fds,
        settled.rss_kib,
        settled_after.as_millis()
    );
    if settled.threads != baseline.threads {
        failures.push(format!(
            "{} threads left, {} when idle",
            settled.threads, baseline.threads
        ));
    }
    if settled.fds != baseline.fds {
        failures.push(format!(
            "{} open files left, {} when idle",
            settled.fds, baseline.fds
        ));
    }
    let sessions: u64 = tally
        .sessions
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    let connections = server.metric("switchboard_connections_total").unwrap_or(0);
    let slow = server
        .metric("switchboard_slow_consumer_disconnects_total")
        .unwrap_or(0);
    println!("{sessions} sessions, {connections} WebSockets in all, {} messages heard by the residents, {slow} slow consumers dropped", tally.heard.load(Ordering::Relaxed));
    let errors = tally.errors.load(Ordering::Relaxed);
    if errors > 0 {
        for error in tally.first_errors.lock().unwrap().iter() {
            println!("error: {error}");
        }
        failures.push(format!("{errors} client errors (the first ones above)"));
    }
    if sessions == 0 {
        failures.push("no session completed".into());
    }
    match failures.is_empty() {
        true => println!("PASS"),
        false => println!("FAIL: {}", failures.join("; ")),
    }
    Outcome { failures }
}

#[allow(dead_code)] // tests/soak_smoke.rs includes this file as a module and calls `run`
fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("soak: {error}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(outcome) if outcome.failures.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::from(2)
        }
    }
}
