//! The results of `fanout` and `baseline`: CPU and memory over the measured part, and what is printed.

use std::time::{Duration, Instant};

use crate::baseline::BASELINE_QUEUE;
use crate::fanout::{Acks, Published};
use crate::proc::{cpu_line, writes_line, ProcSample};
use crate::receive::Deliveries;
use crate::Res;

/// CPU and memory readings taken when the measured part starts.
pub struct UsageStart {
    pub begin: Instant,
    pub server: Option<ProcSample>,
    pub bench: ProcSample,
    pub server_pid: Option<u32>,
}

/// CPU and memory over the measured part.
pub struct Usage {
    /// From the first message sent to the last one received (to the
    /// deadline, if nothing was received).
    pub elapsed: Duration,
    /// The server's readings: before setup, at the start, at the end.
    pub server: Option<(u32, ProcSample, ProcSample, ProcSample)>,
    pub bench: (ProcSample, ProcSample),
}

impl UsageStart {
    pub fn now(server_pid: Option<u32>) -> Res<UsageStart> {
        Ok(UsageStart {
            server: ProcSample::server(server_pid)?,
            bench: ProcSample::read("self")?,
            server_pid,
            begin: Instant::now(),
        })
    }

    /// Ends the measured part at `end` (now, if `None`). `server_idle` is
    /// the server's reading before setup, if one was taken.
    pub fn finish(self, end: Option<Instant>, server_idle: Option<ProcSample>) -> Res<Usage> {
        let end = end.unwrap_or_else(Instant::now);
        let server = match (self.server_pid, self.server) {
            (Some(pid), Some(start)) => {
                let idle = server_idle.unwrap_or(start);
                Some((pid, idle, start, ProcSample::read(&pid.to_string())?))
            }
            _ => None,
        };
        Ok(Usage {
            elapsed: end.saturating_duration_since(self.begin),
            server,
            bench: (self.bench, ProcSample::read("self")?),
        })
    }
}

/// The result of a `fanout` or `baseline` run.
pub struct FanOutcome {
    pub title: String,
    pub subscribers: usize,
    pub messages: u64,
    pub rate: f64,
    pub payload: usize,
    pub published: Published,
    /// The publisher's MESSAGE_SENT replies (the baseline has none).
    pub acks: Option<Acks>,
    pub deliveries: Deliveries,
    pub usage: Usage,
}

impl FanOutcome {
    pub fn expected(&self) -> u64 {
        self.subscribers as u64 * self.messages
    }

    pub fn per_second(&self) -> f64 {
        self.deliveries.count as f64 / self.usage.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mean_frame_bytes(&self) -> Option<usize> {
        (self.deliveries.count > 0)
            .then(|| (self.deliveries.bytes / self.deliveries.count) as usize)
    }

    pub fn print_and_check(&self) -> bool {
        self.print();
        let complete = self.deliveries.count == self.expected();
        if !complete {
            println!(
                "  INCOMPLETE: {} deliveries missing",
                self.expected() - self.deliveries.count.min(self.expected())
            );
        }
        complete
    }

    pub fn print(&self) {
        let pace = if self.rate > 0.0 {
            format!("at {} msg/s", self.rate)
        } else {
            "flat out".into()
        };
        println!(
            "{}: {} subscribers, {} messages of {}-byte data, {pace}",
            self.title, self.subscribers, self.messages, self.payload
        );
        self.print_publisher();
        let d = &self.deliveries;
        println!(
            "  deliveries received: {} of {} ({:.1}%), frames of {} bytes on average",
            d.count,
            self.expected(),
            100.0 * d.count as f64 / (self.expected().max(1)) as f64,
            self.mean_frame_bytes().unwrap_or(0)
        );
        let secs = self.usage.elapsed.as_secs_f64().max(1e-9);
        println!(
            "  elapsed {secs:.3} s: {:.0} msg/s delivered, {:.1} MiB/s",
            self.per_second(),
            d.bytes as f64 / secs / (1024.0 * 1024.0)
        );
        match &d.latency {
            Some(latency) => println!("  latency ms: {latency}"),
            None => println!("  latency ms: nothing received"),
        }
        for (why, count) in &d.endings {
            println!("  {count} receivers stopped early: {why}");
        }
        self.print_usage();
    }

    pub fn print_publisher(&self) {
        let sent = &self.published;
        match &self.acks {
            Some(acks) => println!(
                "  messages sent: {} (MESSAGE_SENT replies: {}{})",
                sent.sent,
                acks.message_sent,
                match &acks.example {
                    Some(example) => format!(", {} other replies, e.g. {example}", acks.other),
                    None => String::new(),
                }
            ),
            None => println!("  messages sent: {}", sent.sent),
        }
        for why in [
            &sent.error,
            &self.acks.as_ref().and_then(|a| a.ended.clone()),
        ]
        .into_iter()
        .flatten()
        {
            println!("  publisher: {why}");
        }
    }

    pub fn print_usage(&self) {
        let usage = &self.usage;
        if let Some((pid, idle, start, end)) = &usage.server {
            println!(
                "  {}",
                cpu_line(&format!("server (pid {pid})"), start, end, usage.elapsed)
            );
            println!(
                "  server RSS {} KiB before setup, {} KiB at start, {} KiB at end \
                 (peak {} KiB); threads {} -> {} -> {}",
                idle.rss_kib,
                start.rss_kib,
                end.rss_kib,
                end.peak_kib,
                idle.threads,
                start.threads,
                end.threads
            );
            if let Some(line) = writes_line("server", start, end) {
                println!("  {line}");
            }
        }
        let (before, after) = &usage.bench;
        println!(
            "  {}",
            cpu_line("bench (this process)", before, after, usage.elapsed)
        );
    }
}

pub fn print_ratio(fanout: &FanOutcome, baseline: &FanOutcome) {
    let ratio = fanout.per_second() / baseline.per_second().max(1e-9);
    println!(
        "fanout / baseline: {:.0} / {:.0} msg/s delivered = {:.2} ({:.0}% of the baseline)",
        fanout.per_second(),
        baseline.per_second(),
        ratio,
        100.0 * ratio
    );
    if let (Some(f), Some(b)) = (fanout.deliveries.latency, baseline.deliveries.latency) {
        println!(
            "  latency p50 {:.2} vs {:.2} ms, p99 {:.2} vs {:.2} ms",
            f.p50, b.p50, f.p99, b.p99
        );
    }
    // What the numbers can and cannot say.
    if fanout.rate > 0.0 {
        println!("  (paced: both deliver the offered rate; compare latency and CPU, not msg/s)");
    } else {
        println!(
            "  (flat out: latency is mostly time queued, which depends on the server's \
             queue limit (switchboard's --max-queued-bytes) and on the baseline's \
             {BASELINE_QUEUE} frames per socket)"
        );
    }
}
