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
use crate::net::http::{parse, query_pairs, read_request, ReadError, Request, MAX_HEAD_BYTES};
use crate::net::route::route;
use crate::net::upgrade::accept_key;

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
/// it may panic, whatever the head holds.
fn read_everything(request: &Request) {
    let _ = route(request);
    let _ = accept_key(request);
    let _ = query_pairs(request.query.as_deref().unwrap_or(""));
    let _ = crate::dialect::channels::split_path(&request.path);
    let _ = crate::dialect::world::world_of(&request.path);
}

#[test]
fn fuzz_any_bytes_parse_to_a_request_a_refusal_or_a_wait_for_more() {
    check(hostile_head, |bytes| {
        match parse(&bytes) {
            Ok(Some(request)) => {
                read_everything(&request);
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
            prop_assert_eq!(&request.method, &head.method);
            prop_assert_eq!(&request.path, &head.path);
            prop_assert_eq!(&request.query, &head.query);
            let names: Vec<(String, String)> = head
                .headers
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect();
            prop_assert_eq!(&request.headers, &names);
            prop_assert_eq!(&request.leftover, &head.leftover);
            read_everything(&request);
            Ok(())
        },
    );
}

/// Sends `bytes` over a real socket in `pieces` writes, then closes the
/// writing side, and reads a request head from the other end.
fn read_over_a_socket(bytes: &[u8], pieces: usize) -> Result<Request, ReadError> {
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
                prop_assert_eq!(&request.path, &whole.path);
                prop_assert_eq!(&request.headers, &whole.headers);
            }
            (Err(ReadError::Malformed(_)), Err(ReadError::Malformed(_))) => {}
            // Too many headers, or a head still incomplete past the limit.
            (Err(ReadError::TooLarge), Err(ReadError::TooLarge)) => {}
            (Err(ReadError::TooLarge), _) => prop_assert!(bytes.len() > MAX_HEAD_BYTES),
            (Err(ReadError::Closed), Ok(None)) => {}
            (outcome, parsed) => {
                prop_assert!(false, "read {outcome:?} where parsing all gives {parsed:?}")
            }
        }
        Ok(())
    });
}
