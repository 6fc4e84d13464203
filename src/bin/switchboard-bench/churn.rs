//! `churn`: connect, identify, subscribe, send one message, close; again and again.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::{Error as WsError, Message};

use crate::client::{client_config, close_politely, connect, ConnectError, Target};
use crate::concierge::{
    abbreviate, create_group, expect, group_message, identify, is_timeout, subscribe,
};
use crate::options::Options;
use crate::proc::{cpu_line, open_file_limit};
use crate::receive::Percentiles;
use crate::report::{Usage, UsageStart};
use crate::{Res, Socket, GRACE};

/// What one churn worker did.
#[derive(Default)]
pub struct ChurnStats {
    pub completed: u64,
    /// Failed cycles by reason.
    pub failures: BTreeMap<String, u64>,
    /// TCP connect + WebSocket upgrade + IDENTIFY → HELLO, in µs.
    pub handshake_us: Vec<u32>,
    /// The whole cycle, close included, in µs.
    pub cycle_us: Vec<u32>,
    /// Why the worker stopped before the time was up.
    pub stopped: Option<String>,
}

pub fn churn(options: &Options) -> Res<bool> {
    let target = Arc::new(options.target()?);
    let tag = std::process::id();
    let group = format!("bench_churn_{tag}");
    // The group's owner stays for the whole run and counts the messages
    // that reach the group: proof that each cycle did its work.
    let mut owner =
        connect(&target, client_config(64 * 1024)).map_err(|e| format!("churn owner: {e}"))?;
    identify(&mut owner, &format!("bench_churn_{tag}_owner"))?;
    create_group(&mut owner, &group)?;
    // Creating does not subscribe (as the original concierge server).
    subscribe(&mut owner, &group)?;
    let stop_watching = Arc::new(AtomicBool::new(false));
    let watched = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (stop, watched) = (stop_watching.clone(), watched.clone());
        thread::Builder::new()
            .name("churn-owner".into())
            .spawn(move || watch(owner, &stop, &watched))?
    };

    let usage = UsageStart::now(options.server_pid)?;
    let deadline = usage.begin + options.seconds;
    let workers: Vec<JoinHandle<ChurnStats>> = (0..options.workers)
        .map(|w| {
            let (target, group) = (target.clone(), group.clone());
            thread::Builder::new()
                .name(format!("churn-{w}"))
                .spawn(move || churn_worker(&target, &group, tag, w, deadline))
        })
        .collect::<io::Result<_>>()?;
    let stats: Vec<ChurnStats> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_default())
        .collect();
    let elapsed = usage.begin.elapsed();
    let completed: u64 = stats.iter().map(|s| s.completed).sum();
    // The last messages may still be on their way to the owner.
    let until = Instant::now() + GRACE;
    while watched.load(Ordering::Acquire) < completed && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    stop_watching.store(true, Ordering::Release);
    let _ = watcher.join();
    let seen = watched.load(Ordering::Acquire);
    let usage = usage.finish(None, None)?;
    print_churn(options, &stats, elapsed, seen, &usage);
    let failed = stats
        .iter()
        .any(|s| !s.failures.is_empty() || s.stopped.is_some());
    Ok(completed > 0 && !failed && seen == completed)
}

/// Connects, identifies, subscribes, sends, closes; again and again until
/// `deadline`. Stops early when the machine runs out of ports or files.
pub fn churn_worker(
    target: &Target,
    group: &str,
    tag: u32,
    worker: usize,
    deadline: Instant,
) -> ChurnStats {
    let mut stats = ChurnStats::default();
    let mut i = 0u64;
    while Instant::now() < deadline {
        let name = format!("bench_churn_{tag}_{worker}_{i}");
        i += 1;
        match churn_once(target, &name, group) {
            Ok((handshake, cycle)) => {
                stats.completed += 1;
                stats.handshake_us.push(micros(handshake));
                stats.cycle_us.push(micros(cycle));
            }
            Err(ConnectError::OutOfPorts(e)) => {
                stats.stopped = Some(format!(
                    "connect failed with EADDRNOTAVAIL ({e}): the ephemeral ports \
                     (/proc/sys/net/ipv4/ip_local_port_range) are used up, most likely by \
                     closed connections in TIME_WAIT; this worker stopped"
                ));
                break;
            }
            Err(ConnectError::OutOfFiles(e)) => {
                stats.stopped = Some(format!(
                    "{e}: open-file limit {}; this worker stopped",
                    open_file_limit()
                ));
                break;
            }
            Err(ConnectError::Other(e)) => {
                *stats
                    .failures
                    .entry(abbreviate(&e.to_string()))
                    .or_default() += 1;
                // Do not spin on a server that refuses everything.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    stats
}

/// One cycle. Returns the handshake time and the whole cycle's.
pub fn churn_once(
    target: &Target,
    name: &str,
    group: &str,
) -> Result<(Duration, Duration), ConnectError> {
    let begin = Instant::now();
    let mut ws = connect(target, client_config(4096))?;
    identify(&mut ws, name)?;
    let handshake = begin.elapsed();
    subscribe(&mut ws, group)?;
    ws.send(Message::text(group_message(group, r#"{"churn":true}"#)))
        .map_err(|e| ConnectError::Other(e.into()))?;
    expect(&mut ws, "MESSAGE_SENT")?;
    close_politely(ws);
    Ok((handshake, begin.elapsed()))
}

pub fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The churn group's owner: counts the MESSAGEs it receives until told to
/// stop. Reading also keeps it from being dropped as a slow consumer.
pub fn watch(mut ws: Socket, stop: &AtomicBool, watched: &AtomicU64) {
    if ws
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .is_err()
    {
        return;
    }
    while !stop.load(Ordering::Acquire) {
        match ws.read() {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(&text).unwrap_or_default();
                if message["type"] == "MESSAGE" {
                    watched.fetch_add(1, Ordering::Release);
                }
            }
            Ok(Message::Close(_)) => return,
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
    close_politely(ws);
}

pub fn print_churn(
    options: &Options,
    stats: &[ChurnStats],
    elapsed: Duration,
    seen: u64,
    usage: &Usage,
) {
    let completed: u64 = stats.iter().map(|s| s.completed).sum();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "churn: {} workers for {:.1} s: {completed} cycles of \
         connect/identify/subscribe/send/close, {:.0} connections/s",
        options.workers,
        secs,
        completed as f64 / secs
    );
    let all = |pick: fn(&ChurnStats) -> &Vec<u32>| {
        Percentiles::of(stats.iter().flat_map(|s| pick(s).iter().copied()).collect())
    };
    if let Some(p) = all(|s| &s.handshake_us) {
        println!(
            "  handshake (TCP connect + upgrade + HELLO) ms: p50 {:.2}  p99 {:.2}  max {:.2}",
            p.p50, p.p99, p.max
        );
    }
    if let Some(p) = all(|s| &s.cycle_us) {
        println!(
            "  whole cycle ms: p50 {:.2}  p99 {:.2}  max {:.2}",
            p.p50, p.p99, p.max
        );
    }
    println!("  messages the group's owner received: {seen} of {completed}");
    let mut failures: BTreeMap<&str, u64> = BTreeMap::new();
    for (why, count) in stats.iter().flat_map(|s| &s.failures) {
        *failures.entry(why).or_default() += count;
    }
    for (why, count) in failures {
        println!("  {count} failed cycles: {why}");
    }
    for why in stats.iter().filter_map(|s| s.stopped.as_ref()) {
        println!("  {why}");
    }
    if let Some((pid, _, start, end)) = &usage.server {
        println!(
            "  {}",
            cpu_line(&format!("server (pid {pid})"), start, end, elapsed)
        );
        println!(
            "  server RSS {} -> {} KiB; threads {} -> {}",
            start.rss_kib, end.rss_kib, start.threads, end.threads
        );
    }
    println!(
        "  {}",
        cpu_line(
            "bench (this process)",
            &usage.bench.0,
            &usage.bench.1,
            elapsed
        )
    );
}
