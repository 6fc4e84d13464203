//! Resource attacks on the built binary (issue 9, item 3), each with a
//! figure printed as `figure: …` (see them with `-- --nocapture`):
//! slowloris, the connection caps under a flood, oversize messages and
//! announced lengths, a gzip bomb on blazing, a subscriber that never
//! reads, and 1,000 clients killed mid-frame and mid-handshake. The server
//! runs as its own process so that its memory, threads and file
//! descriptors can be read from /proc without the test's clients in them.
//!
//! Bounds the issue states for time are asserted ten times looser (a
//! loaded two-core machine must pass every time); the measured figure is
//! printed, and docs/reliability.md quotes it. Memory bounds are asserted as stated:
//! they do not depend on the machine's load.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::proc::{self, Usage};
use crate::support::*;
use flate2::{Compress, Compression, FlushCompress};
use serde_json::{json, Value};
use switchboard::jwt;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const KEY: &str = "attacks test key";
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Starts the binary with `args` (which name `--listen`), quiet, and
/// returns it with its usage while it serves nothing.
fn server(args: &[&str]) -> (Process, Usage) {
    server_with_env(args, &[])
}

/// [`server`] with environment variables for the process.
fn server_with_env(args: &[&str], env: &[(&str, &str)]) -> (Process, Usage) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.arg("--quiet").args(args).envs(env.iter().copied());
    let process = Process::spawn(command);
    let baseline = proc::idle_baseline(process.child.id(), process.addr);
    (process, baseline)
}

/// A data directory of its own for one test, emptied first.
fn fresh_dir(name: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("switchboard-attacks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_string_lossy().into_owned()
}

/// The header of a masked client frame (mask key 0: any key is allowed)
/// with `first_byte` (FIN, opcode) announcing `len` payload bytes.
fn masked_header(first_byte: u8, len: u64) -> Vec<u8> {
    let mut header = vec![first_byte];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xffff => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header.extend_from_slice(&[0, 0, 0, 0]);
    header
}

/// A whole masked client frame.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = masked_header(first_byte, payload.len() as u64);
    frame.extend_from_slice(payload);
    frame
}

/// Reads server frames until a close frame; returns its code.
fn read_close_code(stream: &mut TcpStream) -> u16 {
    loop {
        let (first_byte, payload) = read_frame(stream);
        if first_byte == 0x88 {
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// The `p`th percentile (0–100) of `samples`, in milliseconds.
fn percentile(samples: &mut [Duration], p: usize) -> f64 {
    samples.sort();
    let index = (samples.len() * p / 100).min(samples.len() - 1);
    samples[index].as_secs_f64() * 1000.0
}

/// A blazing token for `sub`, valid for an hour.
fn blazing_token(sub: &str) -> String {
    let claims = json!({"sub": sub, "name": sub, "exp": jwt::now() + 3600});
    jwt::sign(&claims, KEY.as_bytes())
}

/// A blazing client of `computer`'s document, past its `sync`.
fn blazing(addr: SocketAddr, sub: &str, computer: &str) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{addr}/ws/blazing")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    let bearer = format!("Bearer {}", blazing_token(sub));
    headers.insert("Authorization", bearer.parse().unwrap());
    headers.insert("Blazing-Computer-Id", computer.parse().unwrap());
    let (ws, _) = tungstenite::client::client(request, stream).expect("blazing handshake");
    let mut client = Client { ws };
    match client.recv() {
        Message::Binary(_) => {} // the gzipped sync
        other => panic!("expected a sync, got {other:?}"),
    }
    client
}

// ---------------------------------------------------------------------------
// Slowloris
// ---------------------------------------------------------------------------

const SLOWLORIS: usize = 200;
/// Long enough that ten normal clients join well within it, however
/// loaded the machine: that they all join before any trickling socket is
/// cut off is the test's proof that the slowloris does not hold them.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(5);

/// What became of one trickling socket.
struct CutOff {
    /// From connecting to the server's answer (or its closing).
    after: Duration,
    /// The first bytes of the answer.
    answer: String,
}

/// Trickles a never-ending request into every socket, one byte per socket
/// every 50 ms, from this one thread, until each has been answered;
/// counts the answered in `answered`.
fn trickle(sockets: Vec<(TcpStream, Instant)>, answered: &AtomicUsize) -> Vec<CutOff> {
    let request = b"GET /ws/concierge HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    let mut pending: Vec<Option<(TcpStream, Instant)>> = sockets.into_iter().map(Some).collect();
    let mut cut_off = Vec::new();
    let started = Instant::now();
    for sent in 0usize.. {
        let byte = request.get(sent).copied().unwrap_or(b'a');
        for slot in &mut pending {
            let Some((socket, connected)) = slot else {
                continue;
            };
            let mut buffer = [0u8; 256];
            let answer = match socket.read(&mut buffer) {
                Ok(n) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(e) => Some(format!("error: {e}")),
            };
            if let Some(answer) = answer {
                cut_off.push(CutOff {
                    after: connected.elapsed(),
                    answer,
                });
                answered.fetch_add(1, Ordering::SeqCst);
                *slot = None; // closed here: the server may let go
                continue;
            }
            // A full send buffer would only mean the server stopped reading.
            let _ = socket.write(&[byte]);
        }
        if cut_off.len() == pending.len() {
            return cut_off;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "slowloris sockets never cut off"
        );
        std::thread::sleep(Duration::from_millis(50)); // the trickle's pace
    }
    unreachable!()
}

/// 200 sockets trickling their request are all answered 408 at the
/// handshake deadline; meanwhile normal clients connect and identify
/// without waiting for them (the bound: < 100 ms, printed; asserted:
/// all ten join before the first trickling socket is cut off, each in less
/// than half the deadline); afterwards the server is back to its idle
/// threads and file descriptors.
#[test]
fn slowloris_is_cut_off_at_the_deadline_while_a_normal_client_connects() {
    let deadline_ms = HANDSHAKE_DEADLINE.as_millis().to_string();
    let (server, baseline) = server(&[
        "--listen",
        "127.0.0.1:0",
        "--handshake-timeout-ms",
        &deadline_ms,
    ]);
    let (pid, addr) = (server.child.id(), server.addr);
    let sockets: Vec<(TcpStream, Instant)> = (0..SLOWLORIS)
        .map(|_| {
            let socket = TcpStream::connect(addr).unwrap();
            socket.set_nonblocking(true).unwrap();
            (socket, Instant::now())
        })
        .collect();
    let answered = Arc::new(AtomicUsize::new(0));
    let trickler = {
        let answered = answered.clone();
        std::thread::spawn(move || trickle(sockets, &answered))
    };
    // Every slowloris socket has its thread on the server: now connect.
    proc::wait_for_socket_threads(pid, SLOWLORIS as u64);
    let mut joins = Vec::new();
    for i in 0..10 {
        let started = Instant::now();
        let client = Concierge::join(addr, &format!("normal_{i}"));
        joins.push(started.elapsed());
        client.client.close();
    }
    let still_trickling = SLOWLORIS - answered.load(Ordering::SeqCst);
    let cut_off = trickler.join().unwrap();
    let (first, last) = (
        cut_off.iter().map(|c| c.after).min().unwrap(),
        cut_off.iter().map(|c| c.after).max().unwrap(),
    );
    for c in &cut_off {
        assert!(
            c.answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{}",
            c.answer
        );
    }
    // The deadline runs from the server's accept, which follows the connect.
    assert!(first >= HANDSHAKE_DEADLINE, "cut off early: {first:?}");
    let back = proc::wait_for_baseline(pid, baseline);
    assert_eq!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"timeout\"}"
        ),
        SLOWLORIS as u64
    );
    let (median, worst) = (percentile(&mut joins, 50), percentile(&mut joins, 100));
    println!(
        "figure: slowloris: {SLOWLORIS} sockets cut off with 408 between {} and {} ms \
         after connecting (deadline {} ms); a normal client's connect+identify took \
         {median:.1} ms (median of 10), {worst:.1} ms at most, with {still_trickling} \
         sockets still trickling; threads and fds back to {} and {} {} ms after the last cut-off",
        first.as_millis(),
        last.as_millis(),
        HANDSHAKE_DEADLINE.as_millis(),
        baseline.threads,
        baseline.fds,
        back.as_millis()
    );
    assert_eq!(
        still_trickling, SLOWLORIS,
        "a trickling socket was cut off before the normal clients had joined"
    );
    let bound = HANDSHAKE_DEADLINE.as_secs_f64() * 1000.0 / 2.0;
    assert!(
        worst < bound,
        "connect+identify took {worst:.1} ms (bound: 100 ms, asserted {bound} ms)"
    );
}

// ---------------------------------------------------------------------------
// Connection caps under a flood
// ---------------------------------------------------------------------------

/// A WebSocket upgrade written by hand; returns the status line and how
/// long the whole answer took.
fn upgrade_status(addr: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let answer = http(
        addr,
        "GET /ws/echo HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    let status = answer.lines().next().unwrap_or_default().to_string();
    (status, started.elapsed())
}

/// Floods `addr` with `count` upgrades, each expected to get `status`;
/// returns the median and slowest answer time in ms.
fn flood(addr: SocketAddr, count: usize, status: &str) -> (f64, f64) {
    let mut times: Vec<Duration> = (0..count)
        .map(|_| {
            let (answer, took) = upgrade_status(addr);
            assert_eq!(answer, status);
            took
        })
        .collect();
    (percentile(&mut times, 50), percentile(&mut times, 100))
}

/// tests/http.rs and tests/limits.rs test the 503 and 429 answers one by
/// one; this is the flood: hundreds of upgrades over each cap are refused
/// quickly, hold no thread or slot afterwards, and neither the admitted
/// clients nor another address's clients notice.
#[test]
fn a_flood_over_the_connection_caps_is_refused_quickly_and_holds_nothing() {
    const PER_IP: usize = 20;
    const CAP: usize = 30;
    // Two client addresses without binding sockets: 127.0.0.1 and ::1 on a
    // dual-stack listener.
    let ipv6 = TcpListener::bind("[::1]:0").is_ok();
    let listen = if ipv6 { "[::]:0" } else { "127.0.0.1:0" };
    let (per_ip, cap) = (PER_IP.to_string(), CAP.to_string());
    let (server, _) = server(&[
        "--listen",
        listen,
        "--max-connections-per-ip",
        &per_ip,
        "--max-connections",
        &cap,
    ]);
    let (pid, port) = (server.child.id(), server.addr.port());
    let v4: SocketAddr = ([127, 0, 0, 1], port).into();
    let v6: SocketAddr = (std::net::Ipv6Addr::LOCALHOST, port).into();

    let mut admitted: Vec<Concierge> = (0..PER_IP)
        .map(|i| Concierge::join(v4, &format!("v4_{i}")))
        .collect();
    let (per_ip_median, per_ip_worst) = flood(v4, 200, "HTTP/1.1 429 Too Many Requests");
    assert_eq!(
        metric(v4, "switchboard_connections_refused_per_ip_total"),
        200
    );
    let mut cap_figure = String::from("(no IPv6 loopback: the 503 flood is not run)");
    if ipv6 {
        // Another address is not held back by the first one's cap...
        admitted.extend((0..CAP - PER_IP).map(|i| Concierge::join(v6, &format!("v6_{i}"))));
        // ...until the server-wide cap.
        let (median, worst) = flood(v6, 100, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(
            metric(
                v6,
                "switchboard_handshake_failures_total{reason=\"at_capacity\"}"
            ),
            100
        );
        cap_figure = format!("100 upgrades over --max-connections got 503 in {median:.2} ms (median), {worst:.2} ms at most");
    }
    // The refused hold nothing: two threads per admitted connection.
    let (usage, _) = proc::wait_for_socket_threads(pid, 2 * admitted.len() as u64);
    let (first, rest) = admitted.split_first_mut().unwrap();
    let last = rest.last_mut().unwrap();
    let to_last = json!({"type": "MESSAGE", "target": {"type": "NAME", "name": last.name}, "data": "through"});
    assert_eq!(first.ask(to_last)["code"], "MESSAGE_SENT");
    assert_eq!(last.recv()["data"], "through");
    println!(
        "figure: caps: 200 upgrades over --max-connections-per-ip got 429 in {per_ip_median:.2} ms \
         (median), {per_ip_worst:.2} ms at most; {cap_figure}; afterwards {} admitted clients \
         on {} threads",
        admitted.len(),
        usage.threads
    );
}

// ---------------------------------------------------------------------------
// Oversize messages
// ---------------------------------------------------------------------------

const LIMIT: u64 = 64 * KIB;
const HOLDERS: usize = 200;
/// A fragment of a message: four of them stay under [`LIMIT`], five do not.
const FRAGMENT: usize = 15 * 1024;

/// Opens `HOLDERS` WebSockets, half echo and half concierge, has each hold
/// a fragmented message just under the limit (a ping after the fragments
/// proves the server has read them), reads the server's usage, then sends
/// each the fragment that takes it over: every one gets 1009. Returns the
/// usage with the sockets open and idle, and while holding.
fn hold_messages_under_the_limit(pid: u32, addr: SocketAddr) -> (Usage, Usage) {
    let mut sockets: Vec<TcpStream> = (0..HOLDERS)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/ws/echo"
            } else {
                "/ws/concierge"
            };
            raw_websocket_with(addr, path, "")
        })
        .collect();
    let (idle, _) = proc::wait_for_socket_threads(pid, 2 * HOLDERS as u64);
    proc::reset_peak(pid);
    let fragment = vec![b'a'; FRAGMENT];
    for socket in &mut sockets {
        socket.write_all(&masked_frame(0x01, &fragment)).unwrap(); // text, not FIN
        for _ in 0..3 {
            socket.write_all(&masked_frame(0x00, &fragment)).unwrap(); // continuation
        }
        socket.write_all(&masked_frame(0x89, b"read?")).unwrap();
    }
    for socket in &mut sockets {
        assert_eq!(read_frame(socket), (0x8a, b"read?".to_vec()), "a pong");
    }
    let holding = proc::usage(pid);
    for socket in &mut sockets {
        socket.write_all(&masked_frame(0x80, &fragment)).unwrap(); // the last
    }
    for socket in &mut sockets {
        assert_eq!(read_close_code(socket), 1009);
    }
    (idle, holding)
}

/// Rounds of [`hold_messages_under_the_limit`]: the first half and the
/// second half are compared, to tell a leak from the allocator's noise.
const ROUNDS: usize = 6;

/// Oversize messages close with 1009 without memory beyond the limit:
/// frame headers announcing up to 2^63 bytes are refused before anything
/// is allocated, and 200 connections each holding a fragmented message
/// just under the limit hold no more than the limit each; rounds of that
/// leave nothing behind.
///
/// The server runs with one malloc arena (`MALLOC_ARENA_MAX=1`): glibc
/// otherwise gives threads up to 16 arenas of their own, each reserving
/// 64 MiB of address space and keeping freed memory for later, which
/// hides a 16 GiB reservation less well and makes the resident memory
/// between rounds wander by megabytes. And every block of 8 KiB or more
/// gets a mapping of its own, unmapped when freed
/// (`MALLOC_MMAP_THRESHOLD_`): otherwise the messages' buffers come from
/// the heap, and one long-lived small block allocated above them keeps
/// their pages resident after they are freed. A loaded CI run once saw
/// that: a floor 9 MiB higher from the third round on, flat after it (the
/// space was reused, nothing leaked), failing the comparison below.
#[test]
fn oversize_messages_close_with_1009_and_memory_stays_within_the_limit() {
    let limit = LIMIT.to_string();
    let (server, baseline) = server_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-message-bytes",
            &limit,
            "--identify-timeout-ms",
            "600000",
        ],
        &[
            ("MALLOC_ARENA_MAX", "1"),
            ("MALLOC_MMAP_THRESHOLD_", "8192"),
        ],
    );
    let (pid, addr) = (server.child.id(), server.addr);

    // Announced lengths: just over, 16 GiB, 2^62 and the largest RFC 6455
    // allows. Allocating any of these before checking would show in the
    // virtual memory peak, or end the process.
    let announced = [LIMIT + 1, 16 << 30, 1 << 62, i64::MAX as u64];
    for (i, &len) in announced.iter().cycle().take(100).enumerate() {
        let path = if i % 2 == 0 {
            "/ws/echo"
        } else {
            "/ws/concierge"
        };
        let mut socket = raw_websocket_with(addr, path, "");
        let mut frame = masked_header(0x82, len);
        frame.extend_from_slice(&[b'x'; 16]);
        socket.write_all(&frame).unwrap();
        assert_eq!(read_close_code(&mut socket), 1009, "announced {len} bytes");
    }
    proc::wait_for_baseline(pid, baseline);
    let after_headers = proc::usage(pid);
    let virtual_growth = after_headers.virtual_peak_kib - baseline.virtual_peak_kib;
    assert!(
        virtual_growth < 4 * MIB,
        "virtual memory peak grew by {virtual_growth} KiB: a 16 GiB length was allocated"
    );

    let mut per_holder = Vec::new();
    let mut after_rounds = Vec::new();
    for _ in 0..ROUNDS {
        let (idle, holding) = hold_messages_under_the_limit(pid, addr);
        per_holder.push(holding.peak_kib.saturating_sub(idle.rss_kib) * KIB / HOLDERS as u64);
        proc::wait_for_baseline(pid, baseline);
        after_rounds.push(proc::usage(pid).rss_kib);
    }
    let worst_per_holder = *per_holder.iter().max().unwrap();
    let (early, late) = after_rounds.split_at(ROUNDS / 2);
    let (early, late) = (*early.iter().min().unwrap(), *late.iter().min().unwrap());
    println!(
        "figure: oversize: 100 frames announcing {LIMIT}+1 B to 2^63-1 B closed 1009, virtual \
         peak +{virtual_growth} KiB, RSS {} -> {} KiB; {HOLDERS} connections holding {} KiB \
         each (limit {} KiB): at most +{} KiB per connection over their idle RSS, then 1009; \
         RSS after each of {ROUNDS} rounds {after_rounds:?} KiB",
        baseline.rss_kib,
        after_headers.rss_kib,
        4 * FRAGMENT as u64 / KIB,
        LIMIT / KIB,
        worst_per_holder / KIB,
    );
    // What a connection holds for a message is bounded by the limit (the
    // buffers double as they grow, and a frame is read whole).
    assert!(
        worst_per_holder < 2 * LIMIT,
        "{worst_per_holder} bytes per connection for a message under {LIMIT}"
    );
    // And nothing stays behind: a leak of even 5 KiB a connection would
    // lift the later rounds' floor by 3 MiB.
    assert!(
        late < early + 2 * KIB,
        "RSS after rounds: {after_rounds:?} KiB"
    );
}

// ---------------------------------------------------------------------------
// Gzip bomb
// ---------------------------------------------------------------------------

/// A gzip member of `mebibytes` MiB of zeros, built from one compressed
/// MiB repeated, so that making a GiB-sized bomb costs no GiB of work:
/// after the first MiB the window holds only zeros, so every later MiB
/// compresses to the same bytes (checked). The trailer is left off: no
/// decompressor that honours a limit ever reaches it.
fn gzip_bomb(mebibytes: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB as usize];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut segment = || {
        let mut out = Vec::with_capacity(64 * 1024);
        let before = deflate.total_in();
        deflate
            .compress_vec(&zeros, &mut out, FlushCompress::Sync)
            .unwrap();
        assert_eq!(deflate.total_in() - before, MIB, "a whole MiB compressed");
        out
    };
    let (first, repeated, check) = (segment(), segment(), segment());
    assert_eq!(repeated, check, "later MiBs compress alike");
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
    bomb.extend_from_slice(&first);
    for _ in 1..mebibytes {
        bomb.extend_from_slice(&repeated);
    }
    bomb
}

/// A gzip bomb that would inflate to a GiB, in a message under the default
/// 1 MiB limit (deflate cannot pack more than about 1,000:1, so no message
/// within the limit inflates to more), is refused with 1009 and costs the
/// server less than the limit plus 8 MiB of memory at its peak, twenty
/// times over.
#[test]
fn a_gzip_bomb_on_blazing_is_refused_with_1009_within_the_limit_plus_8_mib() {
    const LIMIT: u64 = 1 << 20; // the default --max-message-bytes
    const BOMBS: usize = 20;
    let bomb = gzip_bomb(1000);
    assert!(bomb.len() < LIMIT as usize, "the bomb fits in a message");
    // It is a valid gzip stream of zeros.
    let mut start = Vec::new();
    flate2::read::GzDecoder::new(&bomb[..])
        .take(4 * MIB)
        .read_to_end(&mut start)
        .unwrap();
    assert!(start.len() == 4 * MIB as usize && start.iter().all(|&b| b == 0));

    let dir = fresh_dir("bomb");
    let (server, _) = server(&[
        "--listen",
        "127.0.0.1:0",
        "--jwt-key",
        KEY,
        "--data-dir",
        &dir,
    ]);
    let (pid, addr) = (server.child.id(), server.addr);
    let mut editor = blazing(addr, "editor", "pc-1");
    let (before, _) = proc::wait_for_socket_threads(pid, 2);
    proc::reset_peak(pid);
    let mut first_peak = 0;
    let mut refusals = Vec::new();
    for i in 0..BOMBS {
        let mut attacker = blazing(addr, &format!("attacker-{i}"), "pc-1");
        let started = Instant::now();
        attacker.ws.send(Message::binary(bomb.clone())).unwrap();
        let code = attacker.close_code_skipping();
        refusals.push(started.elapsed());
        assert_eq!(code, 1009, "bomb {i}");
        if i == 0 {
            first_peak = proc::usage(pid).peak_kib;
        }
    }
    let (after, _) = proc::wait_for_socket_threads(pid, 2);
    let peak_growth = after.peak_kib.saturating_sub(before.rss_kib) * KIB;
    let first_growth = first_peak.saturating_sub(before.rss_kib);
    // The editor noticed nothing but the attackers coming and going.
    let moved = json!({"type": "move", "payload": {"offset": 0, "selection": 0}});
    editor.send_text(&moved.to_string());
    loop {
        let Message::Binary(bytes) = editor.recv() else {
            panic!("blazing answers in binary frames");
        };
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .unwrap();
        let message: Value = serde_json::from_slice(&text).unwrap();
        if message["type"] == "move" {
            assert_eq!(message["payload"]["actioner"], "editor");
            break;
        }
    }
    // Later bombs add a little: freed buffers stay with the allocator's
    // per-thread arenas, up to a plateau that 40 bombs did not pass.
    println!(
        "figure: gzip bomb: {BOMBS} bombs of {} KiB that inflate to 1000 MiB each, refused \
         with 1009 in {:.1} ms (median); server RSS {} KiB before; peak +{first_growth} KiB \
         after the first, +{} KiB after all (bound: limit + 8 MiB = {} KiB)",
        bomb.len() as u64 / KIB,
        percentile(&mut refusals, 50),
        before.rss_kib,
        peak_growth / KIB,
        (LIMIT + 8 * MIB) / KIB
    );
    assert!(
        peak_growth < LIMIT + 8 * MIB,
        "peak RSS grew by {peak_growth} bytes"
    );
}

// ---------------------------------------------------------------------------
// A subscriber that never reads
// ---------------------------------------------------------------------------

/// Publishes `count` messages to `feed`, one at a time, each read by every
/// reader before the next; checks each reader gets each, in order, and
/// returns every reader's latency for every message.
fn publish_paced(
    owner: &mut Concierge,
    readers: &mut [Concierge],
    phase: &str,
    count: usize,
    filler: &str,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    for i in 0..count {
        let sent = Instant::now();
        owner.send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "feed"}, "data": {"phase": phase, "i": i, "filler": filler}}));
        for reader in readers.iter_mut() {
            let message = reader.recv_until("MESSAGE", None);
            assert_eq!(message["data"]["phase"], phase);
            assert_eq!(message["data"]["i"], i, "every message, in order");
            latencies.push(sent.elapsed());
        }
        assert_eq!(owner.recv_until("STATUS", None)["code"], "MESSAGE_SENT");
    }
    latencies
}

/// A subscriber that never reads is dropped as a slow consumer once its
/// queue (`--max-queued-bytes`, here 256 KiB) overflows; five reading
/// subscribers get every message, and their latency before and after is
/// printed.
#[test]
fn a_subscriber_that_never_reads_is_dropped_and_the_others_get_everything() {
    let (server, _) = server(&["--listen", "127.0.0.1:0", "--max-queued-bytes", "262144"]);
    let addr = server.addr;
    let mut owner = Concierge::join(addr, "owner");
    assert_eq!(
        owner.ask(json!({"type": "GROUP_CREATE", "name": "feed"}))["code"],
        "GROUP_CREATED"
    );
    let subscribe = |name: &str| {
        let mut subscriber = Concierge::join(addr, name);
        let reply = subscriber.ask(json!({"type": "SELF_SUBSCRIBE", "name": "feed"}));
        assert_eq!(reply["code"], "SUBSCRIBED");
        subscriber
    };
    let mut readers: Vec<Concierge> = (0..5).map(|i| subscribe(&format!("reader_{i}"))).collect();
    let mut stalled = subscribe("stalled");

    let mut before = publish_paced(&mut owner, &mut readers, "before", 100, "");
    // Flood with 64 KiB messages until the stalled one is dropped: the
    // kernel's socket buffers take megabytes before its queue fills.
    let filler = "f".repeat(64 * 1024);
    let mut flood = 0;
    while metric(addr, "switchboard_slow_consumer_disconnects_total") == 0 {
        assert!(flood < 2000, "the stalled subscriber was never dropped");
        publish_paced(
            &mut owner,
            &mut readers,
            &format!("flood {flood}"),
            8,
            &filler,
        );
        flood += 8;
    }
    let mut after = publish_paced(&mut owner, &mut readers, "after", 100, "");
    assert_eq!(
        metric(addr, "switchboard_slow_consumer_disconnects_total"),
        1
    );
    let clients = owner.ask(json!({"type": "CLIENT_FETCH_ALL"}));
    let names: Vec<&str> = clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"stalled"), "{names:?}");
    assert_eq!(names.len(), 6, "{names:?}");

    // The stalled client finds its backlog, then the end of the connection
    // (a 1013 close if the server's writer was not stuck behind the full
    // socket when it was dropped).
    let mut backlog = 0;
    let ending = loop {
        match stalled.client.ws.read() {
            Ok(Message::Text(_)) => backlog += 1,
            Ok(Message::Close(frame)) => {
                break format!("close {:?}", frame.map(|f| u16::from(f.code)))
            }
            Ok(_) => {}
            Err(e) => break format!("{e}"),
        }
    };
    if ending.starts_with("close") {
        assert_eq!(ending, "close Some(1013)");
    }
    println!(
        "figure: slow consumer: dropped after {flood} messages of 64 KiB ({backlog} reached it, \
         then {ending}); 5 readers got all; their latency before p50 {:.2} ms p99 {:.2} ms, \
         after p50 {:.2} ms p99 {:.2} ms",
        percentile(&mut before, 50),
        percentile(&mut before, 99),
        percentile(&mut after, 50),
        percentile(&mut after, 99),
    );
}

// ---------------------------------------------------------------------------
// 1,000 clients killed at once
// ---------------------------------------------------------------------------

/// 500 sockets in the middle of their request and 500 WebSockets (every
/// dialect) in the middle of a frame are all dropped at once: the server's
/// threads and file descriptors are back to their idle numbers within 2 s
/// (asserted 20 s), and the router serves a chat afterwards.
#[test]
fn a_thousand_clients_killed_mid_frame_and_mid_handshake_leave_nothing_behind() {
    const EACH: usize = 500;
    let dir = fresh_dir("killed");
    let (server, baseline) = server(&[
        "--listen",
        "127.0.0.1:0",
        "--jwt-key",
        KEY,
        // A key makes the hub protected; the listeners below need no token.
        "--public-channels",
        "lobby",
        "--data-dir",
        &dir,
        // The sockets mid-request must still be mid-request when dropped.
        "--handshake-timeout-ms",
        "600000",
    ]);
    let (pid, addr) = (server.child.id(), server.addr);
    let mut sockets = Vec::with_capacity(2 * EACH);
    for _ in 0..EACH {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .write_all(b"GET /ws/concierge HTTP/1.1\r\nHost: x\r\nUpgr")
            .unwrap();
        sockets.push(socket);
    }
    let blazing_headers = format!(
        "Authorization: Bearer {}\r\nBlazing-Computer-Id: pc-1\r\n",
        blazing_token("victim")
    );
    let endpoints = [
        ("/ws/concierge", ""),
        ("/ws/echo", ""),
        ("/lobby/listen", ""),
        ("/ws/common", ""),
        ("/ws/world/default", ""),
        ("/ws/blazing", blazing_headers.as_str()),
    ];
    for (path, headers) in endpoints.iter().cycle().take(EACH) {
        let mut socket = raw_websocket_with(addr, path, headers);
        // A text frame announcing 256 bytes, with 100 of them.
        let mut half = masked_header(0x81, 256);
        half.extend_from_slice(&[b'{'; 100]);
        socket.write_all(&half).unwrap();
        sockets.push(socket);
    }
    let (loaded, _) = proc::wait_for_socket_threads(pid, 3 * EACH as u64);
    drop(sockets);
    let back = proc::wait_for_baseline(pid, baseline);
    println!(
        "figure: killed: {} sockets ({EACH} mid-request, {EACH} WebSockets mid-frame) dropped \
         at once: server threads {} -> {}, fds {} -> {}, back in {} ms",
        2 * EACH,
        loaded.threads,
        baseline.threads,
        loaded.fds,
        baseline.fds,
        back.as_millis()
    );
    assert!(
        back < Duration::from_secs(20),
        "back to the baseline in {back:?} (bound: 2 s, asserted 20 s)"
    );
    assert_eq!(metric(addr, "switchboard_connections_open"), 0);
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let hello =
        json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "bob"}, "data": "still here"});
    assert_eq!(ann.ask(hello)["code"], "MESSAGE_SENT");
    assert_eq!(bob.recv()["data"], "still here");
    bob.client.close();
    ann.client.close();
}
