//! `switchboard-bench`: load scenarios for any server that speaks the
//! concierge subset IDENTIFY, GROUP_CREATE, SELF_SUBSCRIBE and MESSAGE to
//! GROUP, so the same numbers can be taken from switchboard and from other
//! servers. Everything runs on loopback: the tool refuses other addresses.
//!
//! Scenarios:
//!
//! - `fanout`: a publisher creates a group, `--subscribers S` clients
//!   subscribe to it, and the publisher sends `--messages M` messages to the
//!   group, flat out (`--rate 0`) or at `--rate R` per second. Each message's
//!   `data` carries its send time, so every subscriber measures each
//!   delivery's latency. Prints deliveries (out of S×M), delivered msg/s,
//!   latency percentiles and, with `--server-pid`, the server's CPU time and
//!   memory. `--compare` runs `baseline` right after with the same sizes and
//!   prints the ratio. `--publish-url` puts the publisher on another node
//!   of a cluster than the subscribers: every message crosses Redis.
//! - `idle`: `--connections N` clients identify and subscribe, then sit idle
//!   for `--hold-s` seconds, all held by this one thread. With
//!   `--server-pid`, prints the server's memory and threads per connection
//!   and the CPU it spends on idle connections (none, if it never polls).
//! - `churn`: for `--seconds T`, `--workers W` threads each connect,
//!   identify, subscribe, send one message and close, over and over. Prints
//!   connections per second and the handshake time (TCP connect, WebSocket
//!   upgrade and IDENTIFY → HELLO).
//! - `baseline`: the least a fan-out server can do, built into the tool: it
//!   accepts S WebSocket clients and writes every message, encoded once as a
//!   frame, to each socket from a writer thread per socket, parsing nothing.
//!   The receivers are those of `fanout`, so switchboard's fan-out can be
//!   quoted as a fraction of this ceiling on the same machine.
//!
//! Receivers: `--receivers epoll` (the default) receives for every
//! subscriber in one thread, over non-blocking sockets and the tool's own
//! frame parser, so that the generator costs the machine little;
//! `--receivers threads` gives each subscriber a thread of its own reading
//! through tungstenite, as the tool did first. `--pin` puts the server
//! (`--server-pid`) on CPU 0 and the tool on the others, to measure one
//! core against one core. `bench/node-peer/server.js` is a Node `ws`
//! server speaking the same subset with the same frames, for comparisons
//! in the same session (docs/performance.md).
//!
//! `--smoke` shrinks everything (5 subscribers, 50 messages, 20 idle
//! connections, 1 s of churn) for CI and exits non-zero unless every message
//! was delivered; without a scenario it runs them all.
//!
//! ```text
//! cargo build --release
//! ./target/release/switchboard --listen 127.0.0.1:18099 --quiet --max-queued-bytes 67108864 &
//! SERVER=$! URL=ws://127.0.0.1:18099/ws/concierge
//! BENCH="cargo run --release --bin switchboard-bench --"
//! $BENCH fanout --url $URL --server-pid $SERVER --subscribers 1000 --messages 2000 --compare
//! $BENCH fanout --url $URL --server-pid $SERVER --subscribers 1000 --messages 400 --rate 20
//! $BENCH idle --url $URL --server-pid $SERVER --connections 1000
//! $BENCH churn --url $URL --server-pid $SERVER --seconds 3
//! $BENCH baseline --subscribers 1000 --messages 2000
//! $BENCH --smoke --url $URL
//! ```
//!
//! Publisher, subscribers and receivers all live in this process, so one
//! clock (an `Instant` taken at start) serves both ends of every latency.
//! The tool and the server share the machine's CPUs: its own CPU time is
//! printed next to the server's so that a saturated client can be told from
//! a saturated server. Linux only (it reads `/proc`).

// The casts: counts, sizes and rates of a bench run are far from the limits of the types they are cast to.
#![allow(clippy::cast_possible_truncation)]

mod baseline;
mod churn;
mod client;
mod concierge;
mod epoll;
mod fanout;
mod frames;
mod idle;
mod options;
mod proc;
mod raw;
mod receive;
mod report;
mod subscribers;

use std::net::TcpStream;
use std::time::Duration;

use tungstenite::WebSocket;

use crate::baseline::baseline;
use crate::churn::churn;
use crate::fanout::fanout_scenario;
use crate::idle::idle;
use crate::options::{parse_args, Options, Scenario};
use crate::proc::{open_file_limit, ticks_per_second};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, Error>;
type Socket = WebSocket<TcpStream>;

/// Time given to replies still in flight once the measured part is over.
const GRACE: Duration = Duration::from_secs(2);

fn main() {
    // Both are read once; do it while files can still be opened.
    open_file_limit();
    ticks_per_second();
    let code = match run(std::env::args().skip(1).collect()) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(error) => {
            eprintln!("switchboard-bench: {error}");
            2
        }
    };
    std::process::exit(code);
}

/// Runs what the arguments ask for. Returns whether everything was
/// delivered; only `--smoke` turns a shortfall into a failing exit status.
fn run(args: Vec<String>) -> Res<bool> {
    let (scenario, options) = parse_args(args)?;
    let complete = match scenario {
        Some(Scenario::Fanout) => fanout_scenario(&options)?,
        Some(Scenario::Baseline) => baseline(&options, options.frame_bytes)?.print_and_check(),
        Some(Scenario::Idle) => idle(&options)?,
        Some(Scenario::Churn) => churn(&options)?,
        None => smoke_all(&options)?,
    };
    if options.smoke {
        println!("smoke: {}", if complete { "PASS" } else { "FAIL" });
    }
    Ok(complete || !options.smoke)
}

/// `--smoke` without a scenario: every scenario, baseline via `--compare`.
fn smoke_all(options: &Options) -> Res<bool> {
    let fanout = fanout_scenario(&Options {
        compare: true,
        ..options.clone()
    })?;
    println!();
    let idle = idle(options)?;
    println!();
    let churn = churn(options)?;
    Ok(fanout && idle && churn)
}
