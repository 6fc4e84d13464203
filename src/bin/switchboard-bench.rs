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

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::{frame::CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error as WsError, Message, WebSocket};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Res<T> = Result<T, Error>;
type Socket = WebSocket<TcpStream>;

/// The concierge protocol version every client announces.
const PROTOCOL_VERSION: &str = "0.1.0";
/// How long any one setup step (connect, upgrade, a reply) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a blocked receiver wakes up to look at its deadline.
const POLL: Duration = Duration::from_millis(250);
/// Receivers only move bytes and scan for a number: a small stack lets a
/// thousand of them run without reserving Rust's default 2 MiB each.
const RECEIVER_STACK: usize = 128 * 1024;
/// Receivers' tungstenite read buffer. tungstenite zero-fills the free part
/// of its buffer (up to this size) before every `recv`, so its default of
/// 128 KiB costs a receiver of 40 KiB frames much of its time in `memset`
/// (seen with perf). 16 KiB cost less CPU per delivery in our runs, for
/// switchboard and baseline alike, and what the receivers save goes to the
/// server they share the machine with.
const RECEIVER_READ_BUFFER: usize = 16 * 1024;
/// The baseline's writer threads do even less.
const WRITER_STACK: usize = 64 * 1024;
/// Frames the baseline queues per socket before its publisher waits.
const BASELINE_QUEUE: usize = 1024;
/// Time given to replies still in flight once the measured part is over.
const GRACE: Duration = Duration::from_secs(2);
/// The key in `data` whose value is the send time. Receivers look for it
/// from the end of the frame, where `data` is, instead of parsing the frame:
/// switchboard's MESSAGE has a long `origin` before it.
const STAMP_KEY: &str = "\"bench_t\":";

const USAGE: &str = "\
usage: switchboard-bench <fanout|idle|churn|baseline> [flags]
       switchboard-bench --smoke [flags]          (all scenarios, tiny sizes)

  --url URL            server to drive (ws://, loopback only)
                       [ws://127.0.0.1:8080/ws/concierge]
  --server-pid PID     also report the server's CPU time, memory and threads
  --no-subprotocol     do not offer the ert-concierge subprotocol
  --pin                server (--server-pid) on CPU 0, the bench on the others
  --smoke              tiny sizes; exit 1 unless everything was delivered
fanout and baseline:
  --subscribers S      [1000]     --messages M        [20000]
  --publish-url URL    (fanout) the publisher's server: another node of a cluster [--url]
  --payload BYTES      [200]      --rate R            [0 = flat out] msgs/s
  --timeout-s SECS     [60]       --compare           (fanout: run baseline after)
  --frame-bytes N      (baseline) size of each frame [the bare MESSAGE's]
idle:
  --connections N      [1000]     --hold-s SECS       [2]
churn:
  --seconds T          [5]        --workers W         [2]
";

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

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Fanout,
    Idle,
    Churn,
    Baseline,
}

impl Scenario {
    fn parse(name: &str) -> Res<Scenario> {
        Ok(match name {
            "fanout" => Scenario::Fanout,
            "idle" => Scenario::Idle,
            "churn" => Scenario::Churn,
            "baseline" => Scenario::Baseline,
            _ => return Err(format!("unknown scenario {name:?}\n{USAGE}").into()),
        })
    }
}

#[derive(Clone, Debug)]
struct Options {
    url: String,
    server_pid: Option<u32>,
    subprotocol: bool,
    subscribers: usize,
    /// Where the fanout's publisher connects: another node of a cluster
    /// (`--publish-url`); `None`: `url`, like the subscribers.
    publish_url: Option<String>,
    messages: u64,
    payload: usize,
    /// Messages per second; 0 sends flat out.
    rate: f64,
    timeout: Duration,
    compare: bool,
    frame_bytes: Option<usize>,
    connections: usize,
    hold: Duration,
    seconds: Duration,
    workers: usize,
    smoke: bool,
    /// Pin the server (`--server-pid`) to CPU 0 and this process to the
    /// other CPUs, so that a many-threaded server is measured on one core.
    pin: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            url: "ws://127.0.0.1:8080/ws/concierge".into(),
            server_pid: None,
            subprotocol: true,
            subscribers: 1000,
            publish_url: None,
            messages: 20_000,
            payload: 200,
            rate: 0.0,
            timeout: Duration::from_secs(60),
            compare: false,
            frame_bytes: None,
            connections: 1000,
            hold: Duration::from_secs(2),
            seconds: Duration::from_secs(5),
            workers: 2,
            smoke: false,
            pin: false,
        }
    }
}

impl Options {
    /// The sizes `--smoke` starts from; flags given with it still win.
    fn smoke() -> Options {
        Options {
            subscribers: 5,
            messages: 50,
            timeout: Duration::from_secs(20),
            connections: 20,
            hold: Duration::from_secs(1),
            seconds: Duration::from_secs(1),
            smoke: true,
            ..Options::default()
        }
    }

    fn set(&mut self, flag: &str, value: &str) -> Res<()> {
        let bad = |e: &dyn fmt::Display| format!("{flag} {value:?}: {e}");
        let seconds = |v: &str| -> Res<Duration> {
            let secs: f64 = v.parse().map_err(|e| bad(&e))?;
            Duration::try_from_secs_f64(secs).map_err(|e| bad(&e).into())
        };
        match flag {
            "--url" => self.url = value.to_string(),
            "--server-pid" => self.server_pid = Some(value.parse().map_err(|e| bad(&e))?),
            "--subscribers" => self.subscribers = value.parse().map_err(|e| bad(&e))?,
            "--publish-url" => self.publish_url = Some(value.to_string()),
            "--messages" => self.messages = value.parse().map_err(|e| bad(&e))?,
            "--payload" => self.payload = value.parse().map_err(|e| bad(&e))?,
            "--rate" => self.rate = value.parse().map_err(|e| bad(&e))?,
            "--timeout-s" => self.timeout = seconds(value)?,
            "--frame-bytes" => self.frame_bytes = Some(value.parse().map_err(|e| bad(&e))?),
            "--connections" => self.connections = value.parse().map_err(|e| bad(&e))?,
            "--hold-s" => self.hold = seconds(value)?,
            "--seconds" => self.seconds = seconds(value)?,
            "--workers" => self.workers = value.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}").into()),
        }
        Ok(())
    }

    fn target(&self) -> Res<Target> {
        Target::parse(&self.url, self.subprotocol)
    }

    /// The fanout publisher's server.
    fn publish_target(&self) -> Res<Target> {
        Target::parse(
            self.publish_url.as_ref().unwrap_or(&self.url),
            self.subprotocol,
        )
    }
}

fn parse_args(args: Vec<String>) -> Res<(Option<Scenario>, Options)> {
    // `--smoke` changes the defaults, so look for it before the other flags.
    let mut options = if args.iter().any(|a| a == "--smoke") {
        Options::smoke()
    } else {
        Options::default()
    };
    let mut scenario = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => {}
            "--compare" => options.compare = true,
            "--no-subprotocol" => options.subprotocol = false,
            "--pin" => options.pin = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => {
                let value = args.next().ok_or(format!("{flag} needs a value"))?;
                options.set(flag, &value)?;
            }
            name if scenario.is_none() => scenario = Some(Scenario::parse(name)?),
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}").into()),
        }
    }
    if scenario.is_none() && !options.smoke {
        return Err(format!("which scenario?\n{USAGE}").into());
    }
    if options.subscribers == 0 || options.workers == 0 {
        return Err("--subscribers and --workers must be at least 1".into());
    }
    if options.pin {
        pin(options.server_pid)?;
    }
    Ok((scenario, options))
}

/// `--pin`: every thread of the server (`server_pid`) on CPU 0, this
/// process on the others. Done before the bench starts its threads, which
/// inherit the mask; the server's new connection threads inherit its
/// accept thread's.
fn pin(server_pid: Option<u32>) -> Res<()> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
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
fn set_affinity(tid: i32, cpus: std::ops::Range<usize>) -> Res<()> {
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

// ---------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------

/// The server under test: its URL and the loopback address it resolves to.
struct Target {
    url: String,
    addr: SocketAddr,
    /// Offer the `ert-concierge` subprotocol, as the concierge document asks
    /// clients to (tungstenite then insists that the server echoes it).
    subprotocol: bool,
}

impl Target {
    fn parse(url: &str, subprotocol: bool) -> Res<Target> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("--url must start with ws:// (no TLS)")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        // "host" and "[::1]" have no port: WebSocket's default is 80.
        let authority = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        // A load generator must not be pointed at someone else's machine.
        let addr = authority
            .to_socket_addrs()?
            .find(|a| a.ip().is_loopback())
            .ok_or(format!("{url} is not a loopback address: refusing"))?;
        Ok(Target {
            url: url.to_string(),
            addr,
            subprotocol,
        })
    }

    fn request(&self) -> Res<tungstenite::handshake::client::Request> {
        let mut request = self.url.as_str().into_client_request()?;
        if self.subprotocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("ert-concierge"),
            );
        }
        Ok(request)
    }
}

/// Why a connection failed, sorted by what the caller does about it.
#[derive(Debug)]
enum ConnectError {
    /// This process has no file descriptor left (EMFILE, ENFILE).
    OutOfFiles(io::Error),
    /// No local port is free to connect from (EADDRNOTAVAIL): closed
    /// connections still hold theirs in TIME_WAIT.
    OutOfPorts(io::Error),
    /// Anything else: refused, reset, a failed upgrade or IDENTIFY.
    Other(Error),
}

impl From<io::Error> for ConnectError {
    fn from(error: io::Error) -> ConnectError {
        // Linux's errno values: ENFILE 23, EMFILE 24, EADDRNOTAVAIL 99.
        match error.raw_os_error() {
            Some(23 | 24) => ConnectError::OutOfFiles(error),
            Some(99) => ConnectError::OutOfPorts(error),
            _ => ConnectError::Other(error.into()),
        }
    }
}

impl From<Error> for ConnectError {
    fn from(error: Error) -> ConnectError {
        ConnectError::Other(error)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::OutOfFiles(e) => write!(f, "out of file descriptors: {e}"),
            ConnectError::OutOfPorts(e) => write!(f, "no free local port: {e}"),
            ConnectError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Tungstenite's own client settings, except for the read buffer: see
/// [`RECEIVER_READ_BUFFER`]; idle and churning clients, which read a few
/// small replies, get 4 KiB.
fn client_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(read_buffer)
}

/// Opens a TCP connection and upgrades it, each step under a timeout.
fn connect(target: &Target, config: WebSocketConfig) -> Result<Socket, ConnectError> {
    let stream = TcpStream::connect_timeout(&target.addr, SETUP_TIMEOUT)?;
    // Small frames go out at once instead of waiting for more (Nagle).
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
    stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
    let (ws, _response) =
        tungstenite::client::client_with_config(target.request()?, stream, Some(config))
            .map_err(|e| ConnectError::Other(format!("WebSocket upgrade: {e}").into()))?;
    Ok(ws)
}

/// Connects, identifies as `name` and subscribes to `group`.
fn join(
    target: &Target,
    name: &str,
    group: &str,
    read_buffer: usize,
) -> Result<Socket, ConnectError> {
    let mut ws = connect(target, client_config(read_buffer))?;
    identify(&mut ws, name)?;
    subscribe(&mut ws, group)?;
    Ok(ws)
}

/// Sends a close frame without waiting for the answer: for sockets whose
/// measurement is over.
fn close_quietly(mut ws: Socket) {
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Sends a close frame and reads until the server's reply (at most 1 s), so
/// that the server sees a clean close, as a well-behaved client's would be.
fn close_politely(mut ws: Socket) {
    let until = Instant::now() + Duration::from_secs(1);
    if ws.close(None).is_err() {
        return;
    }
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() || ws.get_ref().set_read_timeout(Some(left)).is_err() {
            return;
        }
        if ws.read().is_err() {
            return; // ConnectionClosed once the reply is in; or a timeout
        }
    }
}

// ---------------------------------------------------------------------------
// The concierge subset
// ---------------------------------------------------------------------------

fn send_json(ws: &mut Socket, value: &Value) -> Res<()> {
    ws.send(Message::text(value.to_string()))?;
    Ok(())
}

fn identify(ws: &mut Socket, name: &str) -> Res<()> {
    let identify = json!({"type": "IDENTIFY", "name": name, "version": PROTOCOL_VERSION});
    send_json(ws, &identify)?;
    expect(ws, "HELLO").map(drop)
}

fn create_group(ws: &mut Socket, group: &str) -> Res<()> {
    send_json(ws, &json!({"type": "GROUP_CREATE", "name": group}))?;
    expect(ws, "GROUP_CREATED").map(drop)
}

fn subscribe(ws: &mut Socket, group: &str) -> Res<()> {
    send_json(ws, &json!({"type": "SELF_SUBSCRIBE", "name": group}))?;
    expect(ws, "SUBSCRIBED").map(drop)
}

/// Reads until the payload `wanted` arrives: a `type` (HELLO) or a STATUS
/// `code` (SUBSCRIBED). Other clients' traffic is skipped, but a STATUS
/// with a `seq` answers one of our own frames, so any other one is an error.
fn expect(ws: &mut Socket, wanted: &str) -> Res<Value> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        let text = read_text(ws, deadline)?;
        let reply: Value = serde_json::from_str(&text)?;
        let kind = reply["type"].as_str().unwrap_or_default();
        let name = match kind {
            "STATUS" => reply["code"].as_str().unwrap_or_default(),
            _ => kind,
        };
        if name == wanted {
            return Ok(reply);
        }
        if kind == "STATUS" && reply.get("seq").is_some() {
            return Err(format!("expected {wanted}, got {}", abbreviate(&text)).into());
        }
    }
}

/// The next text message, by `deadline`.
fn read_text(ws: &mut Socket, deadline: Instant) -> Res<String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the server".into());
        }
        ws.get_ref().set_read_timeout(Some(left))?;
        match ws.read() {
            Ok(Message::Text(text)) => return Ok(text.as_str().to_owned()),
            Ok(Message::Close(frame)) => {
                return Err(format!("server closed: {}", describe_close(frame)).into())
            }
            Ok(_) => {} // pings (answered by tungstenite), pongs, binary
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("{} {}", u16::from(frame.code), frame.reason),
        None => "no close code".into(),
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The first 200 characters: enough to recognize a reply in an error.
fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A message's `data`: its send time (ns since the shared clock's start) and
/// sequence number, padded with `x`s to `size` bytes of JSON.
fn data_json(sent_ns: u64, seq: u64, size: usize) -> String {
    let head = format!(r#"{{"bench_t":{sent_ns},"bench_seq":{seq},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    format!(r#"{head}{}"}}"#, "x".repeat(pad))
}

/// A concierge MESSAGE to a group. Group names are `[A-Za-z0-9_]`, so they
/// need no escaping.
fn group_message(group: &str, data: &str) -> String {
    format!(r#"{{"type":"MESSAGE","target":{{"type":"GROUP","group":"{group}"}},"data":{data}}}"#)
}

/// The send time in a delivered frame, found by scanning from the end
/// (switchboard puts `data` last, after a long `origin`). Tolerates a
/// space after the colon, as other servers' JSON encoders write it.
fn stamp_of(text: &str) -> Option<u64> {
    let at = text.rfind(STAMP_KEY)? + STAMP_KEY.len();
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Nanoseconds since the shared clock's start.
fn nanos_since(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Receiving and latency
// ---------------------------------------------------------------------------

/// What one receiver saw.
struct Received {
    count: u64,
    bytes: u64,
    /// One entry per delivery, in microseconds: u32 halves the memory of a
    /// thousand receivers × twenty thousand messages.
    latencies_us: Vec<u32>,
    last_at: Option<Instant>,
    /// Why it stopped before receiving everything.
    ended: Option<String>,
}

impl Received {
    fn record(&mut self, text: &str, clock: Instant) {
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
fn receive(mut ws: Socket, expected: u64, deadline: Instant, clock: Instant) -> Received {
    let mut got = Received {
        count: 0,
        bytes: 0,
        latencies_us: Vec::with_capacity(usize::try_from(expected).unwrap_or(0)),
        last_at: None,
        ended: None,
    };
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
            Ok(Message::Text(text)) => got.record(&text, clock),
            Ok(Message::Close(frame)) => {
                got.ended = Some(format!("closed by the server: {}", describe_close(frame)))
            }
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => got.ended = Some(e.to_string()),
        }
    }
    close_quietly(ws);
    got
}

fn spawn_receivers(
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
struct Deliveries {
    count: u64,
    bytes: u64,
    latency: Option<Percentiles>,
    last_at: Option<Instant>,
    /// Why receivers stopped early, with how many did for each reason.
    endings: BTreeMap<String, usize>,
}

fn gather(handles: Vec<JoinHandle<Received>>) -> Deliveries {
    let mut all = Deliveries {
        count: 0,
        bytes: 0,
        latency: None,
        last_at: None,
        endings: BTreeMap::new(),
    };
    let mut latencies = Vec::new();
    for handle in handles {
        let got = handle.join().unwrap_or_else(|_| Received {
            count: 0,
            bytes: 0,
            latencies_us: Vec::new(),
            last_at: None,
            ended: Some("receiver thread panicked".into()),
        });
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
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    /// Sorts the samples once and reads the ranks off: simpler than a
    /// histogram, and exact.
    fn of(mut micros: Vec<u32>) -> Option<Percentiles> {
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

/// Sleeps until message `seq` is due at `rate` per second. Due times count
/// from `begin` (a deadline loop), so the time spent sending does not slow
/// the rate down, and a late message goes out at once.
fn pace(begin: Instant, seq: u64, rate: f64) {
    if rate <= 0.0 {
        return;
    }
    let due = begin + Duration::from_secs_f64(seq as f64 / rate);
    let now = Instant::now();
    if due > now {
        thread::sleep(due - now);
    }
}

// ---------------------------------------------------------------------------
// Processes: CPU time, memory, threads
// ---------------------------------------------------------------------------

/// A reading of /proc/PID/stat and /proc/PID/status.
#[derive(Clone, Copy)]
struct ProcSample {
    /// utime and stime: CPU time in user space and in the kernel (for a
    /// fan-out server, mostly copying frames into sockets), in clock ticks.
    user_ticks: u64,
    system_ticks: u64,
    rss_kib: u64,
    /// The highest RSS the process ever had.
    peak_kib: u64,
    threads: u64,
    /// write/writev calls and the bytes they wrote (/proc/PID/io, which
    /// only the process's owner may read): bytes per call shows how well a
    /// server batches its frames. Linux counts only calls through the VFS:
    /// `send`/`sendmsg` (which Rust's `TcpStream` uses) are not counted.
    writes: Option<(u64, u64)>,
}

impl ProcSample {
    /// `pid` is a number or `self`.
    fn read(pid: &str) -> Res<ProcSample> {
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

    fn server(pid: Option<u32>) -> Res<Option<ProcSample>> {
        pid.map(|pid| ProcSample::read(&pid.to_string()))
            .transpose()
    }
}

fn status_field(status: &str, name: &str) -> Res<u64> {
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
fn ticks_per_second() -> u64 {
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
fn cpu_seconds(before: &ProcSample, after: &ProcSample) -> (f64, f64) {
    let seconds = |ticks: u64| ticks as f64 / ticks_per_second() as f64;
    (
        seconds(after.user_ticks.saturating_sub(before.user_ticks)),
        seconds(after.system_ticks.saturating_sub(before.system_ticks)),
    )
}

/// One line about a process's CPU over `elapsed`, as a share of one core.
fn cpu_line(who: &str, before: &ProcSample, after: &ProcSample, elapsed: Duration) -> String {
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
fn writes_line(who: &str, before: &ProcSample, after: &ProcSample) -> Option<String> {
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
fn thread_limits() -> String {
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
fn open_file_limit() -> &'static str {
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

// ---------------------------------------------------------------------------
// fanout
// ---------------------------------------------------------------------------

/// `fanout`, and `baseline` after it with `--compare`.
fn fanout_scenario(options: &Options) -> Res<bool> {
    let outcome = fanout(options)?;
    let complete = outcome.print_and_check();
    if !options.compare {
        return Ok(complete);
    }
    // The baseline writes frames as large as the server's deliveries were,
    // so both move the same bytes.
    let frame_bytes = outcome.mean_frame_bytes().or(options.frame_bytes);
    println!();
    let baseline = baseline(options, frame_bytes)?;
    let baseline_complete = baseline.print_and_check();
    println!();
    print_ratio(&outcome, &baseline);
    Ok(complete && baseline_complete)
}

fn fanout(options: &Options) -> Res<FanOutcome> {
    let target = options.target()?;
    let clock = Instant::now();
    let tag = std::process::id();
    let group = format!("bench_{tag}");
    let server_idle = ProcSample::server(options.server_pid)?;

    let publish_target = options.publish_target()?;
    let (mut publisher, drain) =
        Publisher::open(&publish_target, &format!("bench_{tag}_pub"), &group)?;
    if options.publish_url.is_some() {
        wait_for_group(&target, tag, &group)?;
    }
    let setup = Instant::now();
    let subscribers = join_subscribers(&target, tag, &group, options.subscribers)?;
    println!(
        "fanout: {} subscribers identified and subscribed in {:.2} s",
        subscribers.len(),
        setup.elapsed().as_secs_f64()
    );

    let usage = UsageStart::now(options.server_pid)?;
    let deadline = usage.begin + options.timeout;
    let receivers = spawn_receivers(subscribers, options.messages, deadline, clock)?;
    let published = publisher.publish(&group, options, clock, deadline);
    drain.take_over(publisher);
    let deliveries = gather(receivers);
    let acks = drain.finish();
    Ok(FanOutcome {
        title: "fanout".into(),
        subscribers: options.subscribers,
        messages: options.messages,
        rate: options.rate,
        payload: options.payload,
        published,
        acks: Some(acks),
        usage: usage.finish(deliveries.last_at, server_idle)?,
        deliveries,
    })
}

/// Waits until the subscribers' node knows `group`, created on another
/// node of the cluster.
fn wait_for_group(target: &Target, tag: u32, group: &str) -> Res<()> {
    let mut probe = connect(target, client_config(64 * 1024)).map_err(|e| format!("probe: {e}"))?;
    identify(&mut probe, &format!("bench_{tag}_probe"))?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        send_json(&mut probe, &json!({"type": "GROUP_FETCH", "name": group}))?;
        let reply: Value = serde_json::from_str(&read_text(&mut probe, deadline)?)?;
        if reply["type"] == "GROUP_FETCH_RESULT" {
            close_quietly(probe);
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("the group {group} never reached the subscribers' node").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Connects the subscribers one after another: each has its SUBSCRIBED
/// before the next starts, so all are in the group before publishing.
fn join_subscribers(target: &Target, tag: u32, group: &str, count: usize) -> Res<Vec<Socket>> {
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        match join(
            target,
            &format!("bench_{tag}_sub_{i}"),
            group,
            RECEIVER_READ_BUFFER,
        ) {
            Ok(ws) => sockets.push(ws),
            Err(ConnectError::OutOfFiles(e)) => {
                return Err(format!(
                    "subscriber {i}: {e}: this process's open-file limit is {} \
                     (raise it with `ulimit -n` in the shell)",
                    open_file_limit()
                )
                .into())
            }
            Err(e) => return Err(format!("subscriber {i}: {e}").into()),
        }
    }
    Ok(sockets)
}

/// The publishing client. The server answers each MESSAGE with a
/// MESSAGE_SENT status that must be read, or the publisher itself is
/// dropped as a slow consumer; but a tungstenite `WebSocket` has one owner.
/// So after setup the socket is split: this thread writes through one
/// `WebSocket`, a drain thread reads through another over a clone of the
/// same socket (see [`ReadHalf`]).
struct Publisher {
    ws: Socket,
    progress: Arc<Progress>,
}

/// What the publisher has done, for the drain thread.
#[derive(Default)]
struct Progress {
    sent: AtomicU64,
    /// MESSAGE_SENT replies read so far.
    acked: AtomicU64,
    /// Set once the measurement is over: the drain closes the publisher.
    stop: AtomicBool,
}

/// What the publisher sent, and why it stopped early, if it did.
struct Published {
    sent: u64,
    error: Option<String>,
}

/// The replies the drain thread read.
#[derive(Default)]
struct Acks {
    message_sent: u64,
    /// Other replies (an error status, say), with one example.
    other: u64,
    example: Option<String>,
    ended: Option<String>,
}

/// The drain thread, running, and the way to hand it the publisher's
/// writing half once publishing is over.
struct Drain {
    handle: JoinHandle<Acks>,
    progress: Arc<Progress>,
    handover: Sender<Socket>,
}

impl Publisher {
    /// Connects, identifies, creates `group`, and splits the socket. The
    /// split comes right after GROUP_CREATED, when nothing else can be in
    /// tungstenite's read buffer, which the split leaves behind.
    fn open(target: &Target, name: &str, group: &str) -> Res<(Publisher, Drain)> {
        let mut ws =
            connect(target, client_config(64 * 1024)).map_err(|e| format!("publisher: {e}"))?;
        identify(&mut ws, name)?;
        create_group(&mut ws, group)?;
        let stream = ws.into_inner();
        let reader = WebSocket::from_raw_socket(ReadHalf(stream.try_clone()?), Role::Client, None);
        let progress = Arc::new(Progress::default());
        let (handover, writer) = bounded(1);
        let handle = {
            let progress = progress.clone();
            thread::Builder::new()
                .name("publisher-drain".into())
                .spawn(move || drain_replies(reader, &writer, &progress))?
        };
        let ws = WebSocket::from_raw_socket(stream, Role::Client, None);
        let drain = Drain {
            handle,
            progress: progress.clone(),
            handover,
        };
        Ok((Publisher { ws, progress }, drain))
    }

    /// Sends the messages, paced by `--rate`, until done or `deadline`.
    fn publish(
        &mut self,
        group: &str,
        options: &Options,
        clock: Instant,
        deadline: Instant,
    ) -> Published {
        publish_paced(options, clock, |seq, data| {
            if Instant::now() >= deadline {
                return Err("deadline passed while publishing".into());
            }
            self.ws
                .send(Message::text(group_message(group, data)))
                .map_err(|e| format!("publishing failed: {e}"))?;
            self.progress.sent.store(seq + 1, Ordering::Release);
            Ok(())
        })
    }
}

impl Drain {
    /// Gives the drain thread the publisher's writing half. Publishing is
    /// over, but the publisher must stay, or its group goes with it, and a
    /// publisher silent for the server's keepalive interval gets pinged:
    /// the drain thread, which reads the pings, can now answer them.
    fn take_over(&self, publisher: Publisher) {
        let _ = self.handover.send(publisher.ws); // fails only if it ended
    }

    /// Waits (up to [`GRACE`]) for the replies still missing, then stops
    /// the drain thread, which closes the publisher.
    fn finish(self) -> Acks {
        let progress = &self.progress;
        let give_up = Instant::now() + GRACE;
        while progress.acked.load(Ordering::Acquire) < progress.sent.load(Ordering::Acquire)
            && !self.handle.is_finished()
            && Instant::now() < give_up
        {
            thread::sleep(Duration::from_millis(10));
        }
        progress.stop.store(true, Ordering::Release);
        self.handle.join().unwrap_or_default()
    }
}

/// Reads the publisher's replies until told to stop or the server closes,
/// counting MESSAGE_SENT. Once it holds the writing half it answers pings
/// and, at the end, closes the connection.
fn drain_replies(
    mut reader: WebSocket<ReadHalf>,
    handover: &Receiver<Socket>,
    progress: &Progress,
) -> Acks {
    let mut acks = Acks::default();
    let mut writer: Option<Socket> = None;
    // A ping that came before the writing half did, to answer when it comes.
    let mut unanswered: Option<tungstenite::Bytes> = None;
    if let Err(e) = reader.get_ref().0.set_read_timeout(Some(POLL)) {
        acks.ended = Some(e.to_string());
    }
    while acks.ended.is_none() && !progress.stop.load(Ordering::Acquire) {
        if writer.is_none() {
            writer = handover.try_recv().ok();
        }
        if let (Some(ws), Some(ping)) = (writer.as_mut(), unanswered.take()) {
            let _ = ws.send(Message::Pong(ping));
        }
        match reader.read() {
            // No need to parse: MESSAGE_SENT is a short, fixed payload.
            Ok(Message::Text(text)) if text.contains("\"MESSAGE_SENT\"") => {
                acks.message_sent += 1;
                progress.acked.store(acks.message_sent, Ordering::Release);
            }
            Ok(Message::Text(text)) => {
                acks.other += 1;
                acks.example.get_or_insert_with(|| abbreviate(&text));
            }
            Ok(Message::Ping(ping)) => unanswered = Some(ping),
            Ok(Message::Close(frame)) => {
                let why = describe_close(frame);
                acks.ended = Some(format!("publisher closed by the server: {why}"));
            }
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => acks.ended = Some(format!("publisher's connection: {e}")),
        }
    }
    // Leaving deletes the group: only now that the receivers are done.
    if let Some(ws) = writer.or_else(|| handover.try_recv().ok()) {
        close_quietly(ws);
    }
    acks
}

/// The reading half of the publisher's socket. tungstenite answers pings
/// and closes by writing to the stream it reads from; those writes are
/// dropped here, so only the publishing thread ever writes to the socket
/// and frames never interleave. (switchboard splits its own connections
/// the same way: see src/net/connection.rs.) A publisher is heard from
/// with every message; once it has sent them all, the drain thread answers
/// the server's keepalive pings through the writing half.
struct ReadHalf(TcpStream);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// fanout and baseline results
// ---------------------------------------------------------------------------

/// CPU and memory readings taken when the measured part starts.
struct UsageStart {
    begin: Instant,
    server: Option<ProcSample>,
    bench: ProcSample,
    server_pid: Option<u32>,
}

/// CPU and memory over the measured part.
struct Usage {
    /// From the first message sent to the last one received (to the
    /// deadline, if nothing was received).
    elapsed: Duration,
    /// The server's readings: before setup, at the start, at the end.
    server: Option<(u32, ProcSample, ProcSample, ProcSample)>,
    bench: (ProcSample, ProcSample),
}

impl UsageStart {
    fn now(server_pid: Option<u32>) -> Res<UsageStart> {
        Ok(UsageStart {
            server: ProcSample::server(server_pid)?,
            bench: ProcSample::read("self")?,
            server_pid,
            begin: Instant::now(),
        })
    }

    /// Ends the measured part at `end` (now, if `None`). `server_idle` is
    /// the server's reading before setup, if one was taken.
    fn finish(self, end: Option<Instant>, server_idle: Option<ProcSample>) -> Res<Usage> {
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
struct FanOutcome {
    title: String,
    subscribers: usize,
    messages: u64,
    rate: f64,
    payload: usize,
    published: Published,
    /// The publisher's MESSAGE_SENT replies (the baseline has none).
    acks: Option<Acks>,
    deliveries: Deliveries,
    usage: Usage,
}

impl FanOutcome {
    fn expected(&self) -> u64 {
        self.subscribers as u64 * self.messages
    }

    fn per_second(&self) -> f64 {
        self.deliveries.count as f64 / self.usage.elapsed.as_secs_f64().max(1e-9)
    }

    fn mean_frame_bytes(&self) -> Option<usize> {
        (self.deliveries.count > 0)
            .then(|| (self.deliveries.bytes / self.deliveries.count) as usize)
    }

    fn print_and_check(&self) -> bool {
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

    fn print(&self) {
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

    fn print_publisher(&self) {
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

    fn print_usage(&self) {
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

fn print_ratio(fanout: &FanOutcome, baseline: &FanOutcome) {
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

// ---------------------------------------------------------------------------
// baseline
// ---------------------------------------------------------------------------

/// The fan-out ceiling: a server in this process that accepts S clients and
/// writes each message, encoded once as a frame, to every socket. One writer
/// thread per socket, fed through a bounded channel of shared frames: the
/// shape of switchboard's own writers, minus everything else (parsing,
/// routing, rendering). Where switchboard drops a client that falls too far
/// behind, the baseline makes its publisher wait.
fn baseline(options: &Options, frame_bytes: Option<usize>) -> Res<FanOutcome> {
    let clock = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let count = options.subscribers;
    let acceptor = thread::Builder::new()
        .name("baseline-accept".into())
        .spawn(move || accept_clients(&listener, count))?;
    let target = Target {
        url: format!("ws://{addr}/"),
        addr,
        subprotocol: false,
    };
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let ws = connect(&target, client_config(RECEIVER_READ_BUFFER))
            .map_err(|e| format!("baseline client {i}: {e}"))?;
        sockets.push(ws);
    }
    let writers = acceptor
        .join()
        .map_err(|_| "baseline acceptor panicked")??;

    let usage = UsageStart::now(None)?;
    let deadline = usage.begin + options.timeout;
    let receivers = spawn_receivers(sockets, options.messages, deadline, clock)?;
    let published = publish_frames(&writers, options, frame_bytes, clock, deadline);
    drop(writers); // writers end once their queues are empty
    let deliveries = gather(receivers);
    Ok(FanOutcome {
        title: format!(
            "baseline (in-process fan-out, {})",
            match frame_bytes {
                Some(bytes) => format!("frames padded to {bytes} bytes"),
                None => "bare MESSAGE frames".into(),
            }
        ),
        subscribers: count,
        messages: options.messages,
        rate: options.rate,
        payload: options.payload,
        published,
        acks: None,
        usage: usage.finish(deliveries.last_at, None)?,
        deliveries,
    })
}

/// Accepts `count` WebSocket clients (tungstenite does the handshake) and
/// starts a writer thread for each. Gives up after [`SETUP_TIMEOUT`]
/// without a new client.
fn accept_clients(listener: &TcpListener, count: usize) -> Res<Vec<Sender<Arc<[u8]>>>> {
    // Non-blocking accepts, so that a client that never comes cannot keep
    // this thread waiting forever.
    listener.set_nonblocking(true)?;
    let mut writers = Vec::with_capacity(count);
    let mut waiting_since = Instant::now();
    while writers.len() < count {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if waiting_since.elapsed() > SETUP_TIMEOUT {
                    return Err("baseline: clients stopped arriving".into());
                }
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        waiting_since = Instant::now();
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
        let stream = tungstenite::accept(stream)
            .map_err(|e| format!("baseline handshake: {e}"))?
            .into_inner();
        stream.set_nodelay(true)?;
        // A writer stuck on a client that stopped reading gives up.
        stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
        let (frames_tx, frames) = bounded(BASELINE_QUEUE);
        thread::Builder::new()
            .name("baseline-writer".into())
            .stack_size(WRITER_STACK)
            .spawn(move || write_frames(stream, &frames))?;
        writers.push(frames_tx);
    }
    Ok(writers)
}

/// A baseline writer: the same bytes as every other writer, straight to
/// the socket.
fn write_frames(mut stream: TcpStream, frames: &Receiver<Arc<[u8]>>) {
    for frame in frames {
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

/// The baseline's publisher: a fresh frame per message (the send time is
/// inside), encoded once and handed to every writer.
fn publish_frames(
    writers: &[Sender<Arc<[u8]>>],
    options: &Options,
    frame_bytes: Option<usize>,
    clock: Instant,
    deadline: Instant,
) -> Published {
    publish_paced(options, clock, |_, data| {
        let frame: Arc<[u8]> = text_frame(baseline_text(data, frame_bytes).as_bytes()).into();
        for writer in writers {
            // A writer whose client is gone has dropped its queue: skip it.
            if let Err(crossbeam_channel::SendTimeoutError::Timeout(_)) =
                writer.send_deadline(frame.clone(), deadline)
            {
                return Err("deadline passed while publishing".into());
            }
        }
        Ok(())
    })
}

/// The publishing loop shared by switchboard's publisher and the
/// baseline's: message `seq` carries its send time (nanoseconds since
/// `clock`) in its data and goes out when `--rate` says it is due. Stops
/// at the first error `send` returns.
fn publish_paced(
    options: &Options,
    clock: Instant,
    mut send: impl FnMut(u64, &str) -> Result<(), String>,
) -> Published {
    let begin = Instant::now();
    for seq in 0..options.messages {
        pace(begin, seq, options.rate);
        let data = data_json(nanos_since(clock), seq, options.payload);
        if let Err(error) = send(seq, &data) {
            return Published {
                sent: seq,
                error: Some(error),
            };
        }
    }
    Published {
        sent: options.messages,
        error: None,
    }
}

/// A MESSAGE like switchboard's, padded to `frame_bytes` with an `origin`
/// placed where switchboard's long one is, before `data`.
fn baseline_text(data: &str, frame_bytes: Option<usize>) -> String {
    let with_origin = |pad: &str| {
        let head = format!(r#"{{"type":"MESSAGE","origin":{{"pad":"{pad}"}},"#);
        format!(r#"{head}"target":{{"type":"GROUP","group":"baseline"}},"data":{data}}}"#)
    };
    let Some(size) = frame_bytes else {
        return group_message("baseline", data);
    };
    // Sizes are of the text, without the frame header, as fanout measures
    // its deliveries.
    let shortest = with_origin("").len();
    with_origin(&"o".repeat(size.saturating_sub(shortest)))
}

/// An unmasked (server-to-client) WebSocket text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x81); // FIN + text
    match payload.len() {
        len @ 0..=125 => frame.push(len as u8),
        len @ 126..=0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

// ---------------------------------------------------------------------------
// idle
// ---------------------------------------------------------------------------

fn idle(options: &Options) -> Res<bool> {
    let target = options.target()?;
    let before = ProcSample::server(options.server_pid)?;
    let mut clients = open_idle_clients(&target, options.connections);
    // Let the server's threads settle into their blocking reads.
    thread::sleep(Duration::from_secs(1));
    let connected = ProcSample::server(options.server_pid)?;
    let hold_begin = Instant::now();
    let open = hold(&mut clients, options.hold);
    let held = hold_begin.elapsed();
    let after = ProcSample::server(options.server_pid)?;

    println!(
        "idle: {} of {} connections identified and subscribed; \
         held {:.1} s by one thread, {open} still open",
        clients.len(),
        options.connections,
        held.as_secs_f64()
    );
    match (before, connected, after) {
        (Some(before), Some(connected), Some(after)) => {
            print_idle_server(&before, &connected, &after, clients.len(), held)
        }
        _ => println!("  (give --server-pid PID for the server's memory, threads and CPU)"),
    }
    let complete = clients.len() == options.connections && open == clients.len();
    for ws in clients {
        close_quietly(ws);
    }
    Ok(complete)
}

/// Connects up to `count` clients: the first creates the group, the rest
/// subscribe to it. Stops early, saying why, when a connection fails.
fn open_idle_clients(target: &Target, count: usize) -> Vec<Socket> {
    let group = "bench_idle";
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("bench_idle_{i}");
        let joined = if i == 0 {
            first_idle_client(target, &name, group)
        } else {
            join(target, &name, group, 4096)
        };
        match joined {
            Ok(ws) => clients.push(ws),
            Err(ConnectError::OutOfFiles(e)) => {
                // Reading /proc takes a file descriptor too: give one back.
                if let Some(ws) = clients.pop() {
                    close_quietly(ws);
                }
                println!(
                    "idle: out of file descriptors after {i} connections ({e}); this process's \
                     open-file limit (RLIMIT_NOFILE, /proc/self/limits) is {}: raise it with \
                     `ulimit -n <hard limit>` in the shell. Continuing with {}.",
                    open_file_limit(),
                    clients.len()
                );
                break;
            }
            Err(e) => {
                println!(
                    "idle: connection {i} failed ({e}); continuing with {i}. If the server \
                     logged that it cannot start a thread, a machine limit stopped it: {}",
                    thread_limits()
                );
                break;
            }
        }
    }
    clients
}

fn first_idle_client(target: &Target, name: &str, group: &str) -> Result<Socket, ConnectError> {
    let mut ws = connect(target, client_config(4096))?;
    identify(&mut ws, name)?;
    create_group(&mut ws, group)?;
    Ok(ws)
}

/// Holds the clients for `duration` without sending anything. Once a
/// second it reads whatever arrived on each (non-blocking), so that the
/// server's keepalive pings get their pongs on long holds. Returns how many
/// are still open.
fn hold(clients: &mut [Socket], duration: Duration) -> usize {
    let until = Instant::now() + duration;
    let mut open = vec![true; clients.len()];
    for ws in clients.iter() {
        let _ = ws.get_ref().set_nonblocking(true);
    }
    loop {
        for (ws, open) in clients.iter_mut().zip(open.iter_mut()) {
            if *open {
                *open = sweep(ws);
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        thread::sleep(left.min(Duration::from_secs(1)));
    }
    open.iter().filter(|&&o| o).count()
}

/// Reads everything waiting on one socket (tungstenite queues the pong for
/// a ping); false once the connection is gone.
fn sweep(ws: &mut Socket) -> bool {
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => return false,
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => return true,
            Err(_) => return false,
        }
    }
}

fn print_idle_server(
    before: &ProcSample,
    connected: &ProcSample,
    after: &ProcSample,
    count: usize,
    held: Duration,
) {
    let n = count.max(1) as f64;
    println!(
        "  server RSS:     {} KiB -> {} KiB",
        before.rss_kib, connected.rss_kib
    );
    println!(
        "  server threads: {} -> {}",
        before.threads, connected.threads
    );
    println!(
        "  per connection: {:.1} KiB RSS, {:.2} threads",
        (connected.rss_kib as f64 - before.rss_kib as f64) / n,
        (connected.threads as f64 - before.threads as f64) / n
    );
    // An idle connection should cost no CPU at all: no timers, no polling.
    println!(
        "  {}",
        cpu_line("server during the idle hold", connected, after, held)
    );
}

// ---------------------------------------------------------------------------
// churn
// ---------------------------------------------------------------------------

/// What one churn worker did.
#[derive(Default)]
struct ChurnStats {
    completed: u64,
    /// Failed cycles by reason.
    failures: BTreeMap<String, u64>,
    /// TCP connect + WebSocket upgrade + IDENTIFY → HELLO, in µs.
    handshake_us: Vec<u32>,
    /// The whole cycle, close included, in µs.
    cycle_us: Vec<u32>,
    /// Why the worker stopped before the time was up.
    stopped: Option<String>,
}

fn churn(options: &Options) -> Res<bool> {
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
fn churn_worker(
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
fn churn_once(
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

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The churn group's owner: counts the MESSAGEs it receives until told to
/// stop. Reading also keeps it from being dropped as a slow consumer.
fn watch(mut ws: Socket, stop: &AtomicBool, watched: &AtomicU64) {
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

fn print_churn(
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
