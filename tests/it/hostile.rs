//! Hostile clients through real sockets: random bytes instead of a request
//! and after the handshake, frames cut short, length headers announcing
//! exabytes, invalid UTF-8, and control frames that break RFC 6455's rules,
//! sent by hand to every WebSocket endpoint; and random emits over HTTP.
//! Each gets its exact answer (an HTTP refusal, or RFC 6455's close code),
//! the connection ends, and the server goes on serving: after every case a
//! concierge client connects and chats, and `/metrics` answers.
//!
//! "Random" bytes come from a fixed-seed generator, so that every run
//! sends the same bytes and a failure replays.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{
    config, get, metric, raw_websocket_with, start, wait_until, Concierge, PATIENCE,
};
use serde_json::json;
use switchboard::Config;

/// The JWT key of the test servers, for the blazing endpoint's token.
const JWT_KEY: &str = "hostile test key";
/// The largest message the test servers take: small, so that the
/// fragmented-oversize case is cheap to send.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// A server for hostile clients: a short handshake deadline, so that a
/// request that never completes is answered quickly; small messages.
fn hostile_server() -> SocketAddr {
    start(Config {
        handshake_timeout: Duration::from_secs(1),
        max_message_bytes: MAX_MESSAGE_BYTES,
        jwt_key: Some(JWT_KEY.into()),
        // The key protects the hub; hostile input is the subject here, so
        // every channel is open to the anonymous listeners and emitters.
        public_channels: switchboard::router::Patterns::everything(),
        public_emit: switchboard::router::Patterns::everything(),
        ..config()
    })
}

/// Every WebSocket endpoint: its path and the extra handshake headers it
/// needs (blazing's token and computer id).
fn endpoints() -> Vec<(&'static str, String)> {
    let claims = json!({"sub": "hostile", "exp": switchboard::jwt::now() + 3600});
    let token = switchboard::jwt::sign(&claims, JWT_KEY.as_bytes());
    let blazing = format!("Authorization: Bearer {token}\r\nBlazing-Computer-Id: hostile\r\n");
    vec![
        ("/ws/echo", String::new()),
        ("/ws/concierge", String::new()),
        ("/lobby/listen", String::new()),
        ("/ws/common", String::new()),
        ("/ws/world/default", String::new()),
        ("/ws/blazing", blazing),
    ]
}

// ---------------------------------------------------------------------
// Frames by hand (RFC 6455 §5.2). A client frame is: one byte of FIN,
// three reserved bits and the opcode; one byte of MASK and a length of 7
// bits, extended to 16 bits by 126 or to 64 bits by 127; the 4-byte
// masking key; the payload XORed with the key.

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const FIN: u8 = 0x80;
const MASKED: u8 = 0x80;
/// The masking key of every frame here: any key is valid.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The length field for `len` bytes: 7 bits, or 126 and 16 bits, or 127
/// and 64 bits (whose top bit RFC 6455 says must be 0; 2^63 sets it).
fn length_field(mask_bit: u8, len: u64) -> Vec<u8> {
    match len {
        0..=125 => vec![mask_bit | len as u8],
        126..=0xffff => [vec![mask_bit | 126], (len as u16).to_be_bytes().to_vec()].concat(),
        _ => [vec![mask_bit | 127], len.to_be_bytes().to_vec()].concat(),
    }
}

/// A masked client frame: `first` is the FIN/reserved/opcode byte.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first];
    bytes.extend(length_field(MASKED, payload.len() as u64));
    bytes.extend_from_slice(&KEY);
    bytes.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
    bytes
}

/// A frame's header announcing `len` payload bytes, and no payload.
fn header_announcing(first: u8, len: u64) -> Vec<u8> {
    let mut bytes = vec![first];
    bytes.extend(length_field(MASKED, len));
    bytes.extend_from_slice(&KEY);
    bytes
}

/// A frame as a server would send it: not masked, which a client must not.
fn unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first];
    bytes.extend(length_field(0, payload.len() as u64));
    bytes.extend_from_slice(payload);
    bytes
}

/// A close frame's payload: the code, then the reason's bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [code.to_be_bytes().as_slice(), reason].concat()
}

/// Bytes that look random but are the same every run (xorshift64*).
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

// ---------------------------------------------------------------------
// The server's side, as the hostile client sees it.

/// How a raw connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The server sent a close frame with this code.
    Closed(u16),
    /// The stream ended (or was reset) without a close frame.
    Gone,
}

fn ended(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Reads what the server sends, skipping anything before its close frame
/// (a greeting such as common's HELLO or blazing's sync), until the close
/// frame or the end of the stream. A server that does neither within
/// [`PATIENCE`] fails the test.
fn read_until_end(stream: &mut TcpStream) -> End {
    let mut read = |buffer: &mut [u8]| match stream.read_exact(buffer) {
        Ok(()) => true,
        Err(e) if ended(&e) => false,
        Err(e) => panic!("the server neither closed nor ended the connection: {e}"),
    };
    loop {
        let mut header = [0u8; 2];
        if !read(&mut header) {
            return End::Gone;
        }
        let len = match header[1] & 0x7f {
            126 => {
                let mut extended = [0u8; 2];
                if !read(&mut extended) {
                    return End::Gone;
                }
                u64::from(u16::from_be_bytes(extended))
            }
            127 => {
                let mut extended = [0u8; 8];
                if !read(&mut extended) {
                    return End::Gone;
                }
                u64::from_be_bytes(extended)
            }
            n => u64::from(n),
        };
        assert_eq!(header[1] & MASKED, 0, "server frames are not masked");
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        if !read(&mut payload) {
            return End::Gone;
        }
        if header[0] & 0x0f == CLOSE {
            assert!(payload.len() >= 2, "a close frame with a code");
            return End::Closed(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// Checks that the server ends the TCP connection (after its close
/// frame, or without one) instead of keeping it open.
fn assert_connection_ends(stream: &mut TcpStream) {
    let mut rest = [0u8; 256];
    loop {
        match stream.read(&mut rest) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if ended(&e) => return,
            Err(e) => panic!("the server kept the connection open: {e}"),
        }
    }
}

/// Opens a WebSocket to `path` and sends `bytes` in one write.
fn send_raw(addr: SocketAddr, path: &str, headers: &str, bytes: &[u8]) -> TcpStream {
    let mut stream = raw_websocket_with(addr, path, headers);
    stream.write_all(bytes).unwrap();
    stream
}

/// Names for the concierge clients of [`still_serves`]: new ones every
/// time, so that no check waits for the last one's name to be freed.
static CHATS: AtomicUsize = AtomicUsize::new(0);

/// Checks that the server still serves: two new concierge clients connect,
/// one messages the other, and `/metrics` answers.
fn still_serves(addr: SocketAddr, after: &str) {
    let n = CHATS.fetch_add(1, Ordering::Relaxed);
    let mut ann = Concierge::join(addr, &format!("ann{n}"));
    let mut bob = Concierge::join(addr, &format!("bob{n}"));
    let target = json!({"type": "NAME", "name": bob.name});
    ann.send(json!({"type": "MESSAGE", "target": target, "data": after}));
    assert_eq!(bob.recv()["data"], after, "a chat after {after}");
    assert_eq!(ann.recv()["code"], "MESSAGE_SENT", "after {after}");
    ann.client.close();
    bob.client.close();
    let metrics = get(addr, "/metrics");
    assert!(
        metrics.starts_with("HTTP/1.1 200 "),
        "after {after}: {metrics}"
    );
    assert!(
        metrics.contains("switchboard_router_panics_total 0\n"),
        "after {after}"
    );
}

/// Waits until the server holds no WebSocket: every hostile connection's
/// threads have finished and given back their slot.
fn wait_for_no_connections(addr: SocketAddr) {
    wait_until("every connection to be released", || {
        metric(addr, "switchboard_connections_open") == 0
    });
}

// ---------------------------------------------------------------------

#[test]
fn random_bytes_instead_of_a_request_get_400_or_408_and_the_server_serves_on() {
    let addr = hostile_server();
    let mut refused = 0;
    let mut timed_out = 0;
    for seed in 0..24u64 {
        let mut noise = Noise::new(seed);
        let len = 1 + usize::from(noise.bytes(1)[0]) * 2;
        // Random bytes alone; after a request line; or, in three cases,
        // letters after "GET /": a request line that could still be
        // finished, so the server must wait for it, but only until the
        // handshake deadline.
        let unfinished = seed % 8 == 7;
        let bytes = match seed % 2 {
            _ if unfinished => {
                let letters = noise.bytes(len).into_iter().map(|b| b'a' + b % 26);
                b"GET /".iter().copied().chain(letters).collect()
            }
            0 => noise.bytes(len),
            _ => [b"GET /ws/concierge HTTP/1.1\r\n".to_vec(), noise.bytes(len)].concat(),
        };
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(&bytes).unwrap();
        // The answer comes without the client closing its side.
        let mut answer = Vec::new();
        match stream.read_to_end(&mut answer) {
            Ok(_) => {}
            Err(e) if ended(&e) => {}
            Err(e) => panic!("seed {seed}: no answer to random bytes: {e}"),
        }
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.get(9..12).unwrap_or_default();
        if unfinished {
            assert_eq!(status, "408", "seed {seed}: {answer:?}");
            timed_out += 1;
        } else {
            assert!(["400", "431"].contains(&status), "seed {seed}: {answer:?}");
        }
        refused += 1;
        still_serves(addr, &format!("random request {seed}"));
    }
    assert_eq!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"timeout\"}"
        ),
        timed_out
    );
    let failures: u64 = ["malformed", "timeout", "too_large"]
        .iter()
        .map(|reason| {
            let name = format!("switchboard_handshake_failures_total{{reason=\"{reason}\"}}");
            metric(addr, &name)
        })
        .sum();
    assert_eq!(failures, refused, "every refusal is counted");
    assert_eq!(metric(addr, "switchboard_connections_total"), 2 * refused);
}

#[test]
fn random_bytes_after_the_handshake_close_with_1002_1007_or_1009_or_end() {
    let addr = hostile_server();
    for (path, headers) in endpoints() {
        for seed in 0..8u64 {
            let mut noise = Noise::new(seed);
            let len = 2 + usize::from(noise.bytes(1)[0]);
            let mut stream = send_raw(addr, path, &headers, &noise.bytes(len));
            // Bytes that happen to announce a longer frame leave the
            // server waiting for the rest: the client's end ends it.
            stream.shutdown(Shutdown::Write).unwrap();
            let end = read_until_end(&mut stream);
            assert!(
                matches!(end, End::Closed(1002 | 1007 | 1009) | End::Gone),
                "{path}, seed {seed}: {end:?}"
            );
            assert_connection_ends(&mut stream);
            still_serves(addr, &format!("random frames {seed} on {path}"));
        }
    }
    wait_for_no_connections(addr);
}

/// Each protocol violation, the frames that commit it, and the close code
/// RFC 6455 gives it.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    let fragment = |first: u8, payload: &[u8]| frame(first, payload);
    let too_big = vec![b'x'; MAX_MESSAGE_BYTES / 2 + 1];
    vec![
        (
            "a text frame of invalid UTF-8",
            frame(FIN | TEXT, b"caf\xc3\x28"),
            1007,
        ),
        (
            "invalid UTF-8 across two fragments",
            [
                fragment(TEXT, b"ok \xe2\x82"),
                fragment(FIN | CONTINUATION, b"\x28"),
            ]
            .concat(),
            1007,
        ),
        (
            "a ping with a 126-byte payload",
            frame(FIN | PING, &[b'p'; 126]),
            1002,
        ),
        ("a fragmented ping", frame(PING, b"part"), 1002),
        (
            "an unmasked frame",
            unmasked(FIN | TEXT, br#"{"type":"SELF_FETCH"}"#),
            1002,
        ),
        ("reserved bit 1 set", frame(FIN | 0x40 | TEXT, b"{}"), 1002),
        ("reserved bit 2 set", frame(FIN | 0x20 | TEXT, b"{}"), 1002),
        ("reserved bit 3 set", frame(FIN | 0x10 | TEXT, b"{}"), 1002),
        (
            "a continuation with nothing to continue",
            frame(FIN | CONTINUATION, b"{}"),
            1002,
        ),
        (
            "a new message inside a fragmented one",
            [fragment(TEXT, b"{"), fragment(FIN | TEXT, b"{}")].concat(),
            1002,
        ),
        ("a reserved data opcode", frame(FIN | 0x3, b"{}"), 1002),
        ("a reserved control opcode", frame(FIN | 0xb, b"{}"), 1002),
        (
            "a close frame of one byte",
            frame(FIN | CLOSE, &[0x03]),
            1002,
        ),
        (
            "a close code no endpoint may send (1005)",
            frame(FIN | CLOSE, &close_payload(1005, b"")),
            1002,
        ),
        (
            "a close reason of invalid UTF-8",
            frame(FIN | CLOSE, &close_payload(1000, b"\xff\xfe")),
            1007,
        ),
        (
            "a length header announcing 2^63 bytes",
            header_announcing(FIN | TEXT, 1 << 63),
            1009,
        ),
        (
            "a length header announcing 2^40 bytes",
            header_announcing(FIN | TEXT, 1 << 40),
            1009,
        ),
        (
            "fragments adding up to more than the message limit",
            [
                fragment(TEXT, &too_big),
                fragment(FIN | CONTINUATION, &too_big),
            ]
            .concat(),
            1009,
        ),
    ]
}

#[test]
fn every_protocol_violation_gets_its_close_code_on_every_endpoint() {
    let addr = hostile_server();
    for (path, headers) in endpoints() {
        for (what, bytes, code) in violations() {
            let mut stream = send_raw(addr, path, &headers, &bytes);
            assert_eq!(
                read_until_end(&mut stream),
                End::Closed(code),
                "{what} on {path}"
            );
            assert_connection_ends(&mut stream);
            still_serves(addr, &format!("{what} on {path}"));
        }
    }
    wait_for_no_connections(addr);
    // None of it cost the server a thread's worth of panic or a stuck
    // router: it answers its health check.
    assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200 "));
}

#[test]
fn frames_cut_short_then_a_disconnect_leave_nothing_behind() {
    let addr = hostile_server();
    let text = frame(
        FIN | TEXT,
        br#"{"type":"IDENTIFY","name":"cut","version":"0.1.0"}"#,
    );
    let long = frame(FIN | TEXT, &[b' '; 300]); // a 16-bit length
    let huge = header_announcing(FIN | TEXT, 1 << 40); // a 64-bit length
    let first_fragment = frame(TEXT, b"{\"type\"");
    let cuts: Vec<(&str, &[u8])> = vec![
        ("one byte of a header", &text[..1]),
        ("half a 16-bit length", &long[..3]),
        ("half a 64-bit length", &huge[..6]),
        ("half a masking key", &text[..4]),
        ("half a payload", &text[..text.len() / 2]),
        ("all but the last byte", &text[..text.len() - 1]),
        ("a first fragment only", &first_fragment),
    ];
    for (path, headers) in endpoints() {
        for (what, bytes) in &cuts {
            let stream = send_raw(addr, path, &headers, bytes);
            drop(stream);
            // The reader sees the end mid-frame; both threads finish.
            wait_for_no_connections(addr);
            still_serves(addr, &format!("{what}, then gone, on {path}"));
        }
    }
}

/// Keys of an emit's query string: its own parameters, and others that
/// become the payload.
const QUERY_KEYS: &[&str] = &["clients", "require-ack", "x", "%41", ""];
/// Pieces of values: good ones, near misses, and escapes good and bad.
const QUERY_VALUES: &[&str] = &[
    "1",
    "0",
    "99999999999999999999",
    "true",
    "yes",
    "a,b",
    ",",
    "client_AAAAAAAA",
    "%",
    "%zz",
    "%C3%A9",
    "+",
    "=",
    "-",
];

#[test]
fn random_emits_are_answered_200_or_400_in_json_and_the_server_serves_on() {
    let addr = hostile_server();
    let mut refusals = std::collections::BTreeSet::new();
    let mut emitted = 0;
    for seed in 0..48u64 {
        let mut noise = Noise::new(seed);
        let pick = |byte: u8, from: &[&'static str]| from[usize::from(byte) % from.len()];
        // One to three `key=value` pairs, each value one to three pieces.
        let count = 1 + usize::from(noise.bytes(1)[0] % 3);
        let pairs: Vec<String> = noise
            .bytes(count)
            .iter()
            .map(|&b| {
                let value: String = Noise::new(u64::from(b) + seed * 256)
                    .bytes(1 + usize::from(b % 3))
                    .iter()
                    .map(|&v| pick(v, QUERY_VALUES))
                    .collect();
                format!("{}={value}", pick(b, QUERY_KEYS))
            })
            .collect();
        let query = pairs.join("&");
        let body = match seed % 3 {
            0 => {
                let len = usize::from(noise.bytes(1)[0]);
                noise.bytes(len)
            }
            1 => format!(r#"{{"n":{seed},"x":"{}"}}"#, "y".repeat(seed as usize)).into_bytes(),
            _ => Vec::new(),
        };
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let head = format!(
            "POST /lobby/emit?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream
            .write_all(&[head.as_bytes(), &body].concat())
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.get(9..12).unwrap_or_default();
        assert!(["200", "400"].contains(&status), "seed {seed}: {answer}");
        // Every answer of the emit endpoint itself is JSON with a code
        // (refusals) or an event id (emits).
        let (_, payload) = answer.split_once("\r\n\r\n").unwrap();
        let payload: serde_json::Value = serde_json::from_str(payload)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {answer}"));
        match status {
            "200" => {
                assert!(payload["eventID"].is_string(), "seed {seed}: {payload}");
                emitted += 1;
            }
            _ => {
                let code = payload["code"].as_str();
                refusals.insert(code.expect("a refusal has a code").to_string());
            }
        }
    }
    // The inputs reach the emit's own refusals. (Any `require-ack` value
    // is taken, ids that do not listen are skipped and an empty `clients=`
    // is none, as by the original websockets.do server: none of those is a
    // refusal now; `clients=0`, the one INVALID_CLIENTS left, is not drawn
    // and is tested in tests/channels.rs.)
    let expected = ["INVALID_JSON", "NOT_ENOUGH_CLIENTS", "NO_PAYLOAD"];
    assert_eq!(refusals, expected.map(String::from).into(), "{refusals:?}");
    assert!(emitted > 0, "and some emits go through");
    still_serves(addr, "random emits");
}
