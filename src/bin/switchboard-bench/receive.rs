//! Receiving deliveries and measuring their latency: what every receiver
//! counts, the receivers of `--receivers threads` (a thread per subscriber,
//! over tungstenite), and the sum of what all receivers saw. The other
//! kind, one thread for all subscribers, is in `epoll.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tungstenite::{Error as WsError, Message};

use crate::client::close_quietly;
use crate::concierge::{describe_close, is_timeout, nanos_since, stamp_of};
use crate::{Res, Socket};

/// How often a blocked receiver wakes up to look at its deadline.
pub const POLL: Duration = Duration::from_millis(250);

/// Receivers only move bytes and scan for a number: a small stack lets a
/// thousand of them run without reserving Rust's default 2 MiB each.
pub const RECEIVER_STACK: usize = 128 * 1024;

/// What one receiver saw.
pub struct Received {
    pub count: u64,
    pub bytes: u64,
    /// One entry per delivery, in microseconds: u32 halves the memory of a
    /// thousand receivers × twenty thousand messages.
    pub latencies_us: Vec<u32>,
    pub last_at: Option<Instant>,
    /// Why it stopped before receiving everything.
    pub ended: Option<String>,
}

impl Received {
    pub fn new(expected: u64) -> Received {
        Received {
            count: 0,
            bytes: 0,
            latencies_us: Vec::with_capacity(usize::try_from(expected).unwrap_or(0)),
            last_at: None,
            ended: None,
        }
    }

    /// Counts one text message, if it carries a stamp.
    pub fn record(&mut self, text: &[u8], clock: Instant) {
        let Some(sent_ns) = stamp_of(text) else {
            return; // not one of ours: a status, another client's message
        };
        let micros = nanos_since(clock).saturating_sub(sent_ns) / 1000;
        self.latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        self.count += 1;
        self.bytes += text.len() as u64;
        self.last_at = Some(Instant::now());
    }
}

/// Reads until `expected` stamped messages have arrived, the server closes,
/// or `deadline` passes.
pub fn receive(mut ws: Socket, expected: u64, deadline: Instant, clock: Instant) -> Received {
    let mut got = Received::new(expected);
    // A read that waits at most POLL lets the loop notice the deadline.
    if let Err(e) = ws.get_ref().set_read_timeout(Some(POLL)) {
        got.ended = Some(e.to_string());
    }
    while got.ended.is_none() && got.count < expected {
        if Instant::now() >= deadline {
            got.ended = Some("timed out".into());
            break;
        }
        match ws.read() {
            Ok(Message::Text(text)) => got.record(text.as_bytes(), clock),
            Ok(Message::Close(frame)) => {
                got.ended = Some(format!("closed by the server: {}", describe_close(frame)));
            }
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => got.ended = Some(e.to_string()),
        }
    }
    close_quietly(ws);
    got
}

pub fn spawn_receivers(
    sockets: Vec<Socket>,
    expected: u64,
    deadline: Instant,
    clock: Instant,
) -> Res<Vec<JoinHandle<Received>>> {
    let mut handles = Vec::with_capacity(sockets.len());
    for (i, ws) in sockets.into_iter().enumerate() {
        let handle = thread::Builder::new()
            .name(format!("receiver-{i}"))
            .stack_size(RECEIVER_STACK)
            .spawn(move || receive(ws, expected, deadline, clock))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Everything the receivers saw, together.
pub struct Deliveries {
    pub count: u64,
    pub bytes: u64,
    pub latency: Option<Percentiles>,
    pub last_at: Option<Instant>,
    /// Why receivers stopped early, with how many did for each reason.
    pub endings: BTreeMap<String, usize>,
}

/// The receivers, running.
pub enum Receivers {
    /// One thread per subscriber.
    Threads(Vec<JoinHandle<Received>>),
    /// One thread for all of them, answering with one `Received` each.
    Epoll(JoinHandle<Vec<Received>>),
}

/// Waits for the receivers to finish and adds up what they saw.
pub fn gather(receivers: Receivers) -> Deliveries {
    let panicked = || Received {
        ended: Some("receiver thread panicked".into()),
        ..Received::new(0)
    };
    let each: Vec<Received> = match receivers {
        Receivers::Threads(handles) => handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| panicked()))
            .collect(),
        Receivers::Epoll(handle) => handle.join().unwrap_or_else(|_| vec![panicked()]),
    };
    let mut all = Deliveries {
        count: 0,
        bytes: 0,
        latency: None,
        last_at: None,
        endings: BTreeMap::new(),
    };
    let mut latencies = Vec::new();
    for got in each {
        all.count += got.count;
        all.bytes += got.bytes;
        all.last_at = all.last_at.max(got.last_at);
        latencies.extend_from_slice(&got.latencies_us);
        if let Some(why) = got.ended {
            *all.endings.entry(why).or_default() += 1;
        }
    }
    all.latency = Percentiles::of(latencies);
    all
}

/// Latency percentiles, in milliseconds.
#[derive(Clone, Copy)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    /// Sorts the samples once and reads the ranks off: simpler than a
    /// histogram, and exact.
    pub fn of(mut micros: Vec<u32>) -> Option<Percentiles> {
        if micros.is_empty() {
            return None;
        }
        micros.sort_unstable();
        let at = |q: f64| {
            let rank = (q * micros.len() as f64).ceil() as usize;
            f64::from(micros[rank.clamp(1, micros.len()) - 1]) / 1000.0
        };
        Some(Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        })
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}
