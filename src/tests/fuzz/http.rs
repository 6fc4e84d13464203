//! Fuzzing the HTTP request head parser and what reads the parsed head
//! (routing, the upgrade checks, query strings): arbitrary bytes and
//! mutated real requests never panic, a valid head is read back exactly
//! however it is cut, and a request read from a socket that then closes is
//! a request, a 400 (malformed), a 431 (too large) or nothing (closed),
//! never a wait for the deadline.

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;

use super::check;
use super::mutate::{byte_mutation, mutate_bytes};
use crate::dialect::Dialect;
use crate::net::http::{parse, read_request, ReadError, MAX_HEAD_BYTES};
use crate::net::route::{offers, route, Route};
use crate::net::upgrade::accept_key;
use crate::wire::request::{query_pairs, ClientRequest};

/// Real requests: each endpoint's upgrade or plain request.
const SEEDS: &[&str] = &[
    "GET /ws/concierge HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ert-concierge\r\n\r\n",
    "GET /lobby/listen?username=Cerulean&x=a%20b HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x01\x05\x00\x00\x00\x00hello",
    "POST /lobby/emit?require-ack=true&clients=2 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n{\"n\":1}",
    "GET /ws/blazing HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer a.b.c\r\nBlazing-Computer-Id: pc-1\r\n\r\n",
    "GET /metrics HTTP/1.0\r\n\r\n",
    "POST /admin/reload?world=default HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n",
];

/// A request head from its parts: a method, a path with an optional
/// query, header lines and what follows the head.
#[derive(Debug, Clone)]
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    leftover: Vec<u8>,
}

impl Head {
    fn bytes(&self) -> Vec<u8> {
        let query = self
            .query
            .as_ref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let mut text = format!("{} {}{query} HTTP/1.1\r\n", self.method, self.path);
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(&self.leftover);
        bytes
    }
}

fn head() -> impl Strategy<Value = Head> {
    (
        "[A-Z]{1,10}",
        "/[A-Za-z0-9_.~%/-]{0,40}",
        proptest::option::of("[A-Za-z0-9_.~%=&+-]{0,40}"),
        vec(("[A-Za-z0-9-]{1,20}", "[!-~]([ -~]{0,30}[!-~])?"), 0..10),
        vec(any::<u8>(), 0..32),
    )
        .prop_map(|(method, path, query, headers, leftover)| Head {
            method,
            path,
            query,
            headers,
            leftover,
        })
}

/// Arbitrary bytes, a real request damaged, or a request with bytes of
/// any kind in its path and headers.
fn hostile_head() -> impl Strategy<Value = Vec<u8>> {
    let damaged = (proptest::sample::select(SEEDS), vec(byte_mutation(), 1..6))
        .prop_map(|(seed, damage)| mutate_bytes(seed.as_bytes().to_vec(), &damage));
    let odd_parts =
        (any::<String>(), any::<String>(), any::<String>()).prop_map(|(path, name, value)| {
            format!("GET /{path} HTTP/1.1\r\n{name}: {value}\r\n\r\n").into_bytes()
        });
    prop_oneof![
        vec(any::<u8>(), 0..512),
        damaged,
        odd_parts,
        // Many headers, or one very long one.
        (0..100usize)
            .prop_map(|n| format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(n)).into_bytes()),
        (0..20_000usize)
            .prop_map(|n| format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(n)).into_bytes()),
    ]
}

/// Everything that reads a parsed head before a WebSocket opens: none of
/// it may panic, whatever the head holds, and each answer must be one the
/// request's own text allows (RFC 6455 for the upgrade, the docs'
/// endpoints for the routes).
fn read_everything(request: &ClientRequest) -> Result<(), TestCaseError> {
    let path = request.path();
    let upgrade = request.has_token("upgrade", "websocket");
    match route(request) {
        Route::WebSocket(Dialect::Concierge) => prop_assert!(
            path == "/ws/concierge" || (upgrade && offers(request, "ert-concierge")),
            "{path}"
        ),
        Route::WebSocket(Dialect::World) => prop_assert!(path.starts_with("/ws/world/")),
        Route::WebSocket(Dialect::Channels) => prop_assert!(path.ends_with("/listen")),
        Route::WebSocket(dialect) => {
            prop_assert_eq!(path.to_string(), format!("/ws/{}", dialect.name()));
        }
        Route::Emit(channel) => {
            prop_assert!(path.ends_with("/emit"), "{path}");
            prop_assert!(
                channel == "$sys" || path == format!("/{channel}/emit"),
                "{path}"
            );
        }
        Route::Health => prop_assert_eq!(path, "/healthz"),
        Route::Metrics => prop_assert_eq!(path, "/metrics"),
        _ => {}
    }
    // RFC 6455 §4.2.1: only a GET over HTTP/1.1 upgrading to websocket,
    // with version 13 and a 16-byte key, is accepted; the answer is the
    // base64 of a SHA-1 (28 characters), the RFC's own for its example key.
    if let Ok(accept) = accept_key(request) {
        prop_assert!(upgrade && request.method() == "GET" && request.minor_version() >= 1);
        prop_assert!(request.has_token("connection", "upgrade"));
        prop_assert_eq!(request.header("sec-websocket-version"), Some("13"));
        let key = request.header("sec-websocket-key").map(str::trim);
        prop_assert!(key.is_some_and(|key| key.len() == 24 && key.ends_with("==")));
        prop_assert!(accept.len() == 28 && accept.ends_with('='), "{accept}");
        if key == Some("dGhlIHNhbXBsZSBub25jZQ==") {
            prop_assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        }
    }
    // Pairs are the non-empty `&`-separated parts; without escapes, each
    // is its text split at the first `=`.
    let query = request.query().unwrap_or("");
    let pairs = query_pairs(query);
    let parts: Vec<&str> = query.split('&').filter(|part| !part.is_empty()).collect();
    prop_assert_eq!(pairs.len(), parts.len());
    if !query.contains(['%', '+']) {
        for ((key, value), part) in pairs.iter().zip(&parts) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            prop_assert_eq!((key.as_str(), value.as_str()), (k, v));
        }
    }
    if let Some((channel, endpoint)) = crate::dialect::channels::split_path(path) {
        // One trailing slash is not part of the endpoint.
        let path = path.strip_suffix('/').unwrap_or(path);
        let suffix = format!("/{endpoint}");
        prop_assert!(path.ends_with(&suffix), "{path}");
        prop_assert!(
            channel == "$sys" || path == format!("/{channel}{suffix}"),
            "{path}"
        );
    }
    if let Some(world) = crate::dialect::world::world_of(path) {
        prop_assert!(!world.is_empty() && !world.contains('/'), "{path}");
        prop_assert_eq!(path.to_string(), format!("/ws/world/{world}"));
    }
    Ok(())
}

#[test]
fn fuzz_any_bytes_parse_to_a_request_a_refusal_or_a_wait_for_more() {
    check(hostile_head, |bytes| {
        match parse(&bytes) {
            Ok(Some(request)) => {
                read_everything(&request)?;
                // What follows the head is kept, byte for byte.
                prop_assert!(bytes.ends_with(&request.leftover));
            }
            Ok(None) | Err(ReadError::Malformed(_) | ReadError::TooLarge) => {}
            Err(other) => prop_assert!(false, "parsing alone cannot fail with {other:?}"),
        }
        Ok(())
    });
}

#[test]
fn fuzz_a_valid_head_is_read_back_exactly_however_it_is_cut() {
    check(
        || (head(), any::<proptest::sample::Index>()),
        |(head, cut)| {
            let bytes = head.bytes();
            let head_len = bytes.len() - head.leftover.len();
            // Every prefix short of the blank line is a head still coming.
            let short = cut.index(head_len);
            prop_assert!(matches!(parse(&bytes[..short]), Ok(None)), "at {short}");
            let request = parse(&bytes).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let Some(request) = request else {
                return Err(TestCaseError::fail("a complete head read as partial"));
            };
            prop_assert_eq!(request.method(), head.method.as_str());
            prop_assert_eq!(request.path(), head.path.as_str());
            prop_assert_eq!(request.query(), head.query.as_deref());
            let headers: Vec<(&str, &str)> = head
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            prop_assert_eq!(request.headers().collect::<Vec<_>>(), headers);
            prop_assert_eq!(&request.leftover, &head.leftover);
            read_everything(&request)
        },
    );
}

/// Sends `bytes` over a real socket in `pieces` writes, then closes the
/// writing side, and reads a request head from the other end.
fn read_over_a_socket(bytes: &[u8], pieces: usize) -> Result<ClientRequest, ReadError> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let writer = {
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            let size = bytes.len().div_ceil(pieces.max(1)).max(1);
            for piece in bytes.chunks(size) {
                // The server stops reading at a complete head or an error.
                if client.write_all(piece).is_err() {
                    return;
                }
            }
            let _ = client.shutdown(Shutdown::Write);
            // Keep the socket open until the server has read.
            let _ = std::io::Read::read(&mut client, &mut [0u8; 1]);
        })
    };
    // Generous: the test fails if the server waits for it, not by time.
    let deadline = Instant::now() + Duration::from_secs(60);
    let server = crate::net::stream::Stream::plain(server);
    let outcome = read_request(&server, deadline);
    drop(server);
    writer.join().expect("the writer ends");
    outcome
}

#[test]
fn fuzz_a_request_over_a_socket_that_closes_is_never_waited_for() {
    let inputs = || {
        let bytes = prop_oneof![head().prop_map(|head| head.bytes()), hostile_head()];
        (bytes, 1..5usize)
    };
    check(inputs, |(bytes, pieces)| {
        let outcome = read_over_a_socket(&bytes, pieces);
        match (&outcome, parse(&bytes)) {
            // Everything was sent: a head the parser reads in one piece is
            // read from the socket too, whatever the pieces.
            (Ok(request), Ok(Some(whole))) => {
                prop_assert_eq!(request.path(), whole.path());
                prop_assert!(request.headers().eq(whole.headers()));
            }
            (Err(ReadError::Malformed(_)), Err(ReadError::Malformed(_))) => {}
            // Too many headers, or a head still incomplete past the limit.
            (Err(ReadError::TooLarge), Err(ReadError::TooLarge)) => {}
            (Err(ReadError::TooLarge), _) => prop_assert!(bytes.len() > MAX_HEAD_BYTES),
            (Err(ReadError::Closed), Ok(None)) => {}
            (outcome, parsed) => {
                prop_assert!(false, "read {outcome:?} where parsing all gives {parsed:?}");
            }
        }
        Ok(())
    });
}

/// A well-formed head read from a socket: within [`MAX_HEAD_BYTES`] it is
/// read back with its method and path; longer by more than one read (1 KiB)
/// it is refused as too large, whatever the pieces it arrives in. (In
/// between, the read that completes it may also be the one that passes the
/// limit.)
#[test]
fn fuzz_a_head_is_read_within_the_size_limit_and_refused_past_it() {
    let inputs = || (head(), 0..3 * MAX_HEAD_BYTES, 1..5usize);
    check(inputs, |(mut head, padding, pieces)| {
        head.headers.push(("X-Pad".into(), "p".repeat(padding)));
        let bytes = head.bytes();
        let head_len = bytes.len() - head.leftover.len();
        let outcome = read_over_a_socket(&bytes, pieces);
        if head_len <= MAX_HEAD_BYTES {
            let Ok(request) = outcome else {
                return Err(TestCaseError::fail(format!(
                    "{head_len} bytes: {outcome:?}"
                )));
            };
            prop_assert_eq!(request.method(), head.method.as_str());
            prop_assert_eq!(request.path(), head.path.as_str());
        } else if head_len > MAX_HEAD_BYTES + 1024 {
            prop_assert!(
                matches!(outcome, Err(ReadError::TooLarge)),
                "{head_len} bytes: {outcome:?}"
            );
        }
        Ok(())
    });
}
