//! End-to-end tests of the blazing dialect (`protocols/blazing.md` and the
//! decisions in DESIGN.md) through real sockets: the handshake's token and
//! computer id (3000, 3003), `sync`, `usrupd`, `move` and `write` with their
//! clamping and char-based offsets, cursors that follow edits, malformed and
//! oversized input (1007, 1009), keepalive (3008), token expiry (3000),
//! persistence across a real process restart, and concurrent writers whose
//! replayed edits converge on the server's text.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use switchboard::{jwt, store, Config};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const KEY: &str = "blazing test key";

/// A data directory of its own for one test (emptied first), so that no
/// document saved by an earlier run can leak in.
fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("switchboard-blazing-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The test configuration with the JWT key [`KEY`] and a fresh data dir.
fn blazing_config(name: &str) -> Config {
    Config {
        jwt_key: Some(KEY.into()),
        data_dir: fresh_dir(name),
        ..config()
    }
}

/// A server with [`blazing_config`].
fn server(name: &str) -> SocketAddr {
    start(blazing_config(name))
}

/// An HS256 token for `sub`, expiring in `exp_in` seconds (negative: in
/// the past), limited to `computers` if given.
fn token(key: &str, sub: &str, exp_in: i64, computers: Option<&[&str]>) -> String {
    let exp = jwt::now() as i64 + exp_in;
    let mut claims = json!({"sub": sub, "name": format!("{sub}'s name"), "exp": exp});
    if let Some(computers) = computers {
        claims["computers"] = json!(computers);
    }
    jwt::sign(&claims, key.as_bytes())
}

/// Connects to `/ws/blazing` with these header values (absent if `None`).
fn connect_raw(addr: SocketAddr, authorization: Option<&str>, computer: Option<&str>) -> Client {
    let stream = TcpStream::connect(addr).expect("TCP connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{addr}/ws/blazing")
        .into_client_request()
        .unwrap();
    if let Some(authorization) = authorization {
        request
            .headers_mut()
            .insert("Authorization", authorization.parse().unwrap());
    }
    if let Some(computer) = computer {
        request
            .headers_mut()
            .insert("Blazing-Computer-Id", computer.parse().unwrap());
    }
    let config = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok((ws, _)) => Client { ws },
        Err(tungstenite::HandshakeError::Failure(e)) => panic!("WebSocket handshake: {e}"),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake interrupted"),
    }
}

/// Connects with `Authorization: Bearer <token>` if a token is given.
fn connect(addr: SocketAddr, token: Option<&str>, computer: Option<&str>) -> Client {
    let authorization = token.map(|t| format!("Bearer {t}"));
    connect_raw(addr, authorization.as_deref(), computer)
}

/// `sub` joins `computer`'s document with an hour-long token; returns the
/// client and its `sync`.
fn join(addr: SocketAddr, sub: &str, computer: &str) -> (Client, Value) {
    let token = token(KEY, sub, 3600, None);
    let mut client = connect(addr, Some(&token), Some(computer));
    let sync = recv(&mut client);
    assert_eq!(sync["type"], "sync", "{sync}");
    assert_eq!(sync["payload"]["actioner"], sub, "{sync}");
    (client, sync)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip from the server");
    out
}

/// Sends `value` as gzip-compressed JSON in a binary frame.
fn send(client: &mut Client, value: Value) {
    client
        .ws
        .send(Message::binary(gzip(value.to_string().as_bytes())))
        .expect("send");
}

/// The next message: always a binary frame of gzip-compressed JSON.
fn recv(client: &mut Client) -> Value {
    loop {
        match client.ws.read().expect("read a message") {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(bytes) => {
                let mut message: Value =
                    serde_json::from_slice(&gunzip(&bytes)).expect("JSON from the server");
                without_rev(&mut message);
                return message;
            }
            other => panic!("expected a binary gzip message, got {other:?}"),
        }
    }
}

/// Takes the revision off a `sync` or `write` (an extension these tests of
/// the document's own fields leave to `tests/revisions.rs`), after
/// checking that it is there and a number.
fn without_rev(message: &mut Value) {
    if message["type"] == "sync" || message["type"] == "write" {
        let rev = message["payload"]
            .as_object_mut()
            .and_then(|payload| payload.remove("rev"));
        assert!(
            rev.as_ref().is_some_and(Value::is_u64),
            "{message}: rev {rev:?}"
        );
    }
}

/// Reads the server's close frame (nothing may come before it), answers
/// it, and waits for the end; returns the code and reason. Answering
/// matters: the server waits a while for the reply before the connection
/// leaves its document.
fn closed(client: &mut Client) -> (u16, String) {
    let close = client.expect_close();
    let _ = client.ws.flush();
    while client.ws.read().is_ok() {}
    close
}

/// Asks for a `sync` and returns it. Since the router answers in its
/// order, anything sent to this client before it would come first: the
/// next message must be the sync.
fn resync(client: &mut Client) -> Value {
    send(client, json!({"type": "sync", "payload": {}}));
    let sync = recv(client);
    assert_eq!(sync["type"], "sync", "expected only the sync, got {sync}");
    sync
}

/// Standard, padded base64 decoded (strictly: the standard alphabet only).
fn base64_decode(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 4, 0, "padded base64: {text}");
    let unpadded = text.trim_end_matches('=');
    assert!(text.len() - unpadded.len() <= 2, "too much padding: {text}");
    assert!(
        unpadded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/'),
        "standard base64 alphabet: {text}"
    );
    let url = unpadded.replace('+', "-").replace('/', "_");
    switchboard::base64::decode_url(&url).expect("valid base64")
}

/// The text of a `sync`: base64 of gzip of UTF-8.
fn document_of(sync: &Value) -> String {
    let encoded = sync["payload"]["document"]
        .as_str()
        .unwrap_or_else(|| panic!("no document in {sync}"));
    String::from_utf8(gunzip(&base64_decode(encoded))).expect("the document is UTF-8")
}

/// The `users` map of a `sync`, as user → offset.
fn users_of(sync: &Value) -> BTreeMap<String, u64> {
    sync["payload"]["users"]
        .as_object()
        .unwrap_or_else(|| panic!("no users in {sync}"))
        .iter()
        .map(|(user, offset)| (user.clone(), offset.as_u64().expect("an offset")))
        .collect()
}

fn users(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(u, o)| (u.to_string(), o)).collect()
}

fn usrupd(actioner: &str, joined: bool) -> Value {
    json!({"type": "usrupd", "payload": {"actioner": actioner, "type": joined}})
}

fn write(offset: i64, selection: i64, text: &str) -> Value {
    json!({"type": "write", "payload": {"offset": offset, "selection": selection, "text": text}})
}

fn written(actioner: &str, offset: i64, selection: i64, text: &str) -> Value {
    json!({"type": "write", "payload": {
        "actioner": actioner, "offset": offset, "selection": selection, "text": text,
    }})
}

fn move_to(offset: i64, selection: i64) -> Value {
    json!({"type": "move", "payload": {"offset": offset, "selection": selection}})
}

fn moved(actioner: &str, offset: i64, selection: i64) -> Value {
    json!({"type": "move", "payload": {"actioner": actioner, "offset": offset, "selection": selection}})
}

/// Every client's next message is `expected`.
fn everyone_gets(clients: &mut [&mut Client], expected: &Value) {
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(&recv(client), expected, "client {i}");
    }
}

/// Applies a broadcast write (already clamped by the server) to `text`,
/// counting in chars: `[min(offset, offset + selection), max(...))` is
/// replaced by `insert`.
fn apply(text: &mut Vec<char>, offset: i64, selection: i64, insert: &str) {
    let len = text.len() as i64;
    let other = offset + selection;
    assert!(
        (0..=len).contains(&offset) && (0..=len).contains(&other),
        "a broadcast write needs no clamping: offset {offset}, selection {selection}, length {len}"
    );
    let (start, end) = (offset.min(other) as usize, offset.max(other) as usize);
    text.splice(start..end, insert.chars());
}

/// Applies a `write` message to `text`.
fn apply_message(text: &mut Vec<char>, message: &Value) {
    let p = &message["payload"];
    apply(
        text,
        p["offset"].as_i64().unwrap(),
        p["selection"].as_i64().unwrap(),
        p["text"].as_str().unwrap(),
    );
}

/// A small deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `low..=high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low + 1) as u64) as i64
    }
}

/// A WebSocket handshake on a raw socket with the blazing headers; the
/// caller reads frames itself (and never answers a ping).
fn raw_blazing(addr: SocketAddr, token: &str, computer: &str) -> TcpStream {
    let headers = format!("Authorization: Bearer {token}\r\nBlazing-Computer-Id: {computer}\r\n");
    raw_websocket_with(addr, "/ws/blazing", &headers)
}

/// The built binary on port 0 with the test key, keeping documents in
/// `data_dir`; killed (SIGKILL) when dropped.
fn start_process(data_dir: &Path) -> Process {
    let dir = data_dir.to_str().expect("a UTF-8 temporary path");
    Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--jwt-key",
        KEY,
        "--data-dir",
        dir,
        "--quiet",
    ])
}

/// Removes a directory when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Handshake: token (3000) and computer id (3003)
// ---------------------------------------------------------------------------

#[test]
fn bad_authorization_closes_with_3000() {
    let addr = server("auth");
    let good = token(KEY, "u1", 3600, None);
    let wrong_key = token("another key", "u1", 3600, None);
    let expired = token(KEY, "u1", -10, None);
    let alg_none = format!(
        "{}.{}.",
        switchboard::base64::encode_url(br#"{"alg":"none","typ":"JWT"}"#),
        switchboard::base64::encode_url(
            json!({"sub": "u1", "exp": jwt::now() + 3600})
                .to_string()
                .as_bytes()
        )
    );
    let no_exp = jwt::sign(&json!({"sub": "u1"}), KEY.as_bytes());
    let cases: [(&str, Option<String>); 9] = [
        ("no Authorization header", None),
        ("a token without Bearer", Some(good.clone())),
        ("another scheme", Some(format!("Basic {good}"))),
        ("Bearer and nothing", Some("Bearer ".into())),
        ("a malformed token", Some("Bearer not.a.token".into())),
        (
            "a token signed with another key",
            Some(format!("Bearer {wrong_key}")),
        ),
        ("an expired token", Some(format!("Bearer {expired}"))),
        ("alg none", Some(format!("Bearer {alg_none}"))),
        ("a token without exp", Some(format!("Bearer {no_exp}"))),
    ];
    for (what, authorization) in cases {
        let mut client = connect_raw(addr, authorization.as_deref(), Some("pc-auth"));
        let (code, reason) = closed(&mut client);
        assert_eq!(code, 3000, "{what}");
        assert!(!reason.is_empty(), "{what}: a reason");
    }
    // The good token gets in.
    let mut client = connect(addr, Some(&good), Some("pc-auth"));
    assert_eq!(recv(&mut client)["type"], "sync");
}

#[test]
fn a_server_without_a_jwt_key_refuses_every_token_with_3000() {
    let addr = start(Config {
        jwt_key: None,
        data_dir: fresh_dir("no-key"),
        ..config()
    });
    let mut client = connect(addr, Some(&token(KEY, "u1", 3600, None)), Some("pc"));
    let (code, reason) = closed(&mut client);
    assert_eq!(code, 3000);
    assert!(!reason.is_empty());
}

#[test]
fn missing_computer_id_or_permission_closes_with_3003() {
    let addr = server("computer");
    let any = token(KEY, "u1", 3600, None);
    let limited = token(KEY, "u2", 3600, Some(&["pc-a", "pc-b"]));
    let nothing = token(KEY, "u3", 3600, Some(&[]));
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("no Blazing-Computer-Id", &any, None),
        ("an empty computer id", &any, Some("")),
        ("a blank computer id", &any, Some("   ")),
        ("a computer the token excludes", &limited, Some("pc-c")),
        ("a token with no computers", &nothing, Some("pc-a")),
        ("no computer id, limited token", &limited, None),
    ];
    for (what, token, computer) in cases {
        let mut client = connect(addr, Some(token), computer);
        let (code, reason) = closed(&mut client);
        assert_eq!(code, 3003, "{what}");
        assert!(!reason.is_empty(), "{what}: a reason");
    }
    // The computers the token names are fine.
    for computer in ["pc-a", "pc-b"] {
        let mut client = connect(addr, Some(&limited), Some(computer));
        let sync = recv(&mut client);
        assert_eq!(sync["type"], "sync", "{computer}");
        assert_eq!(sync["payload"]["actioner"], "u2");
    }
}

// ---------------------------------------------------------------------------
// sync and usrupd
// ---------------------------------------------------------------------------

#[test]
fn joining_gets_a_sync_and_the_room_a_usrupd() {
    let addr = server("join");
    let (mut alice, sync) = join(addr, "alice", "pc-1");
    let payload = sync["payload"].as_object().unwrap();
    let mut keys: Vec<&str> = payload.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["actioner", "document", "timeout", "users"], "{sync}");
    assert_eq!(payload["actioner"], "alice");
    assert_eq!(users_of(&sync), users(&[("alice", 0)]));
    assert_eq!(document_of(&sync), "");
    let timeout = payload["timeout"].as_u64().expect("timeout");
    assert!((3590..=3600).contains(&timeout), "timeout {timeout}");

    // Someone on another computer, to check that it hears nothing.
    let (mut carol, sync) = join(addr, "carol", "pc-2");
    assert_eq!(users_of(&sync), users(&[("carol", 0)]));

    let (bob, sync) = join(addr, "bob", "pc-1");
    assert_eq!(users_of(&sync), users(&[("alice", 0), ("bob", 0)]));
    assert_eq!(recv(&mut alice), usrupd("bob", true));

    // Bob leaves with a closing handshake, then comes back and vanishes.
    bob.close();
    assert_eq!(recv(&mut alice), usrupd("bob", false));
    let (bob, _) = join(addr, "bob", "pc-1");
    assert_eq!(recv(&mut alice), usrupd("bob", true));
    bob.vanish();
    assert_eq!(recv(&mut alice), usrupd("bob", false));
    assert_eq!(users_of(&resync(&mut alice)), users(&[("alice", 0)]));

    // None of that reached pc-2.
    let sync = resync(&mut carol);
    assert_eq!(users_of(&sync), users(&[("carol", 0)]));
    assert_eq!(sync["payload"]["actioner"], "carol");
}

#[test]
fn a_sync_request_answers_only_the_asker_and_text_frames_are_accepted() {
    let addr = server("sync");
    let (mut alice, _) = join(addr, "alice", "pc-sync");
    let (mut bob, _) = join(addr, "bob", "pc-sync");
    assert_eq!(recv(&mut alice), usrupd("bob", true));

    send(&mut alice, write(0, 0, "hi"));
    everyone_gets(&mut [&mut alice, &mut bob], &written("alice", 0, 0, "hi"));
    let sync = resync(&mut alice);
    assert_eq!(sync["payload"]["actioner"], "alice");
    assert_eq!(document_of(&sync), "hi");
    assert_eq!(users_of(&sync), users(&[("alice", 2), ("bob", 0)]));
    // Bob's next message is his own sync: alice's went to her only.
    let sync = resync(&mut bob);
    assert_eq!(sync["payload"]["actioner"], "bob");
    assert_eq!(document_of(&sync), "hi");

    // Uncompressed JSON in a text frame works too; answers stay binary.
    bob.send_text(r#"{"type":"write","payload":{"offset":2,"selection":0,"text":" there"}}"#);
    everyone_gets(&mut [&mut alice, &mut bob], &written("bob", 2, 0, " there"));
    bob.send_text(r#"{"type":"move","payload":{"offset":1,"selection":1}}"#);
    everyone_gets(&mut [&mut alice, &mut bob], &moved("bob", 1, 1));
    bob.send_text(r#"{"type":"sync","payload":{}}"#);
    let sync = recv(&mut bob);
    assert_eq!(sync["type"], "sync");
    assert_eq!(document_of(&sync), "hi there");
    assert_eq!(users_of(&sync), users(&[("alice", 2), ("bob", 1)]));
}

// ---------------------------------------------------------------------------
// move and write
// ---------------------------------------------------------------------------

#[test]
fn moves_are_clamped_and_shown_to_everyone_including_the_mover() {
    let addr = server("move");
    let (mut alice, _) = join(addr, "alice", "pc-move");
    let (mut bob, _) = join(addr, "bob", "pc-move");
    assert_eq!(recv(&mut alice), usrupd("bob", true));
    send(&mut alice, write(0, 0, "hello"));
    everyone_gets(
        &mut [&mut alice, &mut bob],
        &written("alice", 0, 0, "hello"),
    );

    let cases = [
        ("alice", (2, 2), (2, 2)),
        ("alice", (99, 5), (5, 0)),
        ("bob", (-3, -2), (0, 0)),
        ("bob", (3, -10), (3, -3)),
        ("alice", (1, 100), (1, 4)),
        ("bob", (4, -1), (4, -1)),
        ("alice", (i64::MIN, i64::MAX), (0, 5)),
    ];
    for (who, (offset, selection), (at, selected)) in cases {
        let mover = if who == "alice" { &mut alice } else { &mut bob };
        send(mover, move_to(offset, selection));
        everyone_gets(&mut [&mut alice, &mut bob], &moved(who, at, selected));
    }
    let sync = resync(&mut bob);
    assert_eq!(users_of(&sync), users(&[("alice", 0), ("bob", 4)]));
    assert_eq!(document_of(&sync), "hello", "moves do not edit");
}

#[test]
fn writes_are_clamped_applied_and_broadcast_to_everyone_including_the_writer() {
    let addr = server("write");
    let (mut alice, _) = join(addr, "alice", "pc-write");
    let (mut bob, _) = join(addr, "bob", "pc-write");
    assert_eq!(recv(&mut alice), usrupd("bob", true));

    // (writer, sent offset, selection, text), (broadcast offset,
    // selection), the text afterwards.
    let cases = [
        (("alice", 0, 0, "abc"), (0, 0), "abc"),
        (("alice", 999, 0, "d"), (3, 0), "abcd"),
        (("alice", -5, 0, "Z"), (0, 0), "Zabcd"),
        (("bob", 1, 2, "XY"), (1, 2), "ZXYcd"),
        (("bob", 4, -2, "q"), (4, -2), "ZXqd"),
        (("alice", 2, 100, "!"), (2, 2), "ZX!"),
        (("alice", 1, -50, ""), (1, -1), "X!"),
        (("bob", 99, -1, ""), (2, -1), "X"),
        (("bob", i64::MAX, i64::MIN, "new"), (1, -1), "new"),
        (("alice", i64::MIN, i64::MIN, "A "), (0, 0), "A new"),
        (("alice", 2, 3, "old"), (2, 3), "A old"),
    ];
    let mut replica: Vec<char> = Vec::new();
    for ((who, offset, selection, text), (at, selected), after) in cases {
        let writer = if who == "alice" { &mut alice } else { &mut bob };
        send(writer, write(offset, selection, text));
        let expected = written(who, at, selected, text);
        everyone_gets(&mut [&mut alice, &mut bob], &expected);
        apply_message(&mut replica, &expected);
        assert_eq!(replica.iter().collect::<String>(), after);
        assert_eq!(document_of(&resync(&mut alice)), after, "after {expected}");
    }
    // A newcomer gets the same text.
    let (_carol, sync) = join(addr, "carol", "pc-write");
    assert_eq!(document_of(&sync), "A old");
}

#[test]
fn the_writers_cursor_moves_past_its_text_and_other_cursors_shift() {
    let addr = server("cursors");
    let computer = "pc-cursors";
    let (mut w, _) = join(addr, "w", computer);
    let (mut p, _) = join(addr, "p", computer);
    assert_eq!(recv(&mut w), usrupd("p", true));
    let (mut q, _) = join(addr, "q", computer);
    everyone_gets(&mut [&mut w, &mut p], &usrupd("q", true));
    let (mut r, _) = join(addr, "r", computer);
    everyone_gets(&mut [&mut w, &mut p, &mut q], &usrupd("r", true));

    send(&mut w, write(0, 0, "0123456789"));
    everyone_gets(
        &mut [&mut w, &mut p, &mut q, &mut r],
        &written("w", 0, 0, "0123456789"),
    );
    for (who, at) in [("p", 2), ("q", 8), ("r", 5)] {
        let mover = match who {
            "p" => &mut p,
            "q" => &mut q,
            _ => &mut r,
        };
        send(mover, move_to(at, 0));
        everyone_gets(&mut [&mut w, &mut p, &mut q, &mut r], &moved(who, at, 0));
    }
    assert_eq!(
        users_of(&resync(&mut w)),
        users(&[("w", 10), ("p", 2), ("q", 8), ("r", 5)])
    );

    // (offset, selection, text), the text afterwards, every cursor.
    let cases = [
        // Replace "456" (right selection): w after its text; p before the
        // edit stays, q after it shifts by -1, r inside goes to its start.
        ((4, 3, "ab"), "0123ab789", [6, 2, 7, 4]),
        // Replace "89" (left selection): w before its text.
        ((9, -2, "Z"), "0123ab7Z", [7, 2, 7, 4]),
        // Insert at the start: everyone after it shifts.
        ((0, 0, "xx"), "xx0123ab7Z", [2, 4, 9, 6]),
        // Delete "1" (right selection, no text).
        ((3, 1, ""), "xx023ab7Z", [3, 3, 8, 5]),
    ];
    for ((offset, selection, text), after, [cw, cp, cq, cr]) in cases {
        send(&mut w, write(offset, selection, text));
        everyone_gets(
            &mut [&mut w, &mut p, &mut q, &mut r],
            &written("w", offset, selection, text),
        );
        let sync = resync(&mut q);
        assert_eq!(document_of(&sync), after);
        assert_eq!(
            users_of(&sync),
            users(&[("w", cw), ("p", cp), ("q", cq), ("r", cr)]),
            "after writing {text:?} at {offset}, {selection}"
        );
    }
}

#[test]
fn offsets_count_characters_not_bytes() {
    let addr = server("unicode");
    let computer = "pc-ünï中🦀";
    let (mut alice, _) = join(addr, "alice", computer);
    let cases = [
        ((0, 0, "é中🦀"), (0, 0), "é中🦀"),
        ((2, 0, "x"), (2, 0), "é中x🦀"),
        ((4, -1, "🎉"), (4, -1), "é中x🎉"),
        ((1, 1, "ñ"), (1, 1), "éñx🎉"),
        ((10, -2, "👩‍💻"), (4, -2), "éñ👩‍💻"),
        ((0, 1, ""), (0, 1), "ñ👩‍💻"),
    ];
    for ((offset, selection, text), (at, selected), after) in cases {
        send(&mut alice, write(offset, selection, text));
        assert_eq!(recv(&mut alice), written("alice", at, selected, text));
        let sync = resync(&mut alice);
        assert_eq!(document_of(&sync), after);
        let cursor = users_of(&sync)["alice"];
        let start = at.min(at + selected) as u64;
        let expected = if selected < 0 {
            start
        } else {
            start + text.chars().count() as u64
        };
        assert_eq!(cursor, expected, "after writing {text:?}");
    }
    // "ñ👩‍💻" is four chars: ñ, the woman, the zero-width joiner, the
    // computer.
    send(&mut alice, move_to(99, 0));
    assert_eq!(recv(&mut alice), moved("alice", 4, 0));
    let (_bob, sync) = join(addr, "bob", computer);
    assert_eq!(document_of(&sync), "ñ👩‍💻");
    assert_eq!(users_of(&sync), users(&[("alice", 4), ("bob", 0)]));
}

// ---------------------------------------------------------------------------
// Malformed and oversized input
// ---------------------------------------------------------------------------

#[test]
fn malformed_messages_close_with_1007_and_nothing_else_breaks() {
    let addr = server("malformed");
    let computer = "pc-malformed";
    let (mut watcher, _) = join(addr, "watcher", computer);
    send(&mut watcher, write(0, 0, "keep me"));
    assert_eq!(recv(&mut watcher), written("watcher", 0, 0, "keep me"));

    let gz = |value: Value| Message::binary(gzip(value.to_string().as_bytes()));
    let mut truncated = gzip(br#"{"type":"sync","payload":{}}"#);
    truncated.truncate(truncated.len() - 6);
    let cases: Vec<(&str, Message)> = vec![
        (
            "JSON in a binary frame, not gzip",
            Message::binary(br#"{"type":"sync","payload":{}}"#.to_vec()),
        ),
        ("random bytes", Message::binary(vec![0, 1, 2, 3, 255])),
        ("truncated gzip", Message::binary(truncated)),
        ("gzip of non-JSON", Message::binary(gzip(b"hello there"))),
        ("an unknown type", gz(json!({"type": "fly", "payload": {}}))),
        ("no type", gz(json!({"payload": {}}))),
        (
            "a usrupd from a client",
            gz(json!({"type": "usrupd", "payload": {"actioner": "x", "type": true}})),
        ),
        (
            "a move without selection",
            gz(json!({"type": "move", "payload": {"offset": 1}})),
        ),
        (
            "a move with a float",
            gz(json!({"type": "move", "payload": {"offset": 1.5, "selection": 0}})),
        ),
        (
            "a move with a string",
            gz(json!({"type": "move", "payload": {"offset": "1", "selection": 0}})),
        ),
        (
            "a write with null text",
            gz(json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": null}})),
        ),
        (
            "a write without text",
            gz(json!({"type": "write", "payload": {"offset": 0, "selection": 0}})),
        ),
        ("a text frame of non-JSON", Message::text("hello")),
        (
            "a text frame with an unknown type",
            Message::text(r#"{"type":"fly","payload":{}}"#),
        ),
    ];
    for (i, (what, message)) in cases.into_iter().enumerate() {
        let sub = format!("bad{i}");
        let (mut bad, sync) = join(addr, &sub, computer);
        assert_eq!(document_of(&sync), "keep me", "{what}");
        assert_eq!(recv(&mut watcher), usrupd(&sub, true), "{what}");
        bad.ws.send(message).unwrap();
        let (code, reason) = closed(&mut bad);
        assert_eq!(code, 1007, "{what}");
        assert!(!reason.is_empty(), "{what}: a reason");
        assert_eq!(recv(&mut watcher), usrupd(&sub, false), "{what}");
    }
    let sync = resync(&mut watcher);
    assert_eq!(document_of(&sync), "keep me");
    assert_eq!(users_of(&sync), users(&[("watcher", 7)]));
    send(&mut watcher, write(7, 0, "!"));
    assert_eq!(recv(&mut watcher), written("watcher", 7, 0, "!"));
}

#[test]
fn a_gzip_bomb_closes_with_1009_and_the_server_carries_on() {
    let addr = server("bomb");
    let computer = "pc-bomb";
    let (mut watcher, _) = join(addr, "watcher", computer);
    let (mut attacker, _) = join(addr, "attacker", computer);
    assert_eq!(recv(&mut watcher), usrupd("attacker", true));

    // 50 MiB of zeros: about 50 KB compressed, far under the frame limit.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..50 {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 200_000, "{} bytes", bomb.len());
    attacker.ws.send(Message::binary(bomb)).unwrap();
    let (code, reason) = closed(&mut attacker);
    assert_eq!(code, 1009);
    assert!(!reason.is_empty());
    assert_eq!(recv(&mut watcher), usrupd("attacker", false));

    // Everyone else carries on.
    send(&mut watcher, write(0, 0, "still here"));
    assert_eq!(recv(&mut watcher), written("watcher", 0, 0, "still here"));
    let (_newcomer, sync) = join(addr, "newcomer", computer);
    assert_eq!(document_of(&sync), "still here");
    assert_eq!(recv(&mut watcher), usrupd("newcomer", true));
}

#[test]
fn a_write_that_makes_the_document_too_large_closes_with_1009() {
    let addr = start(Config {
        max_message_bytes: 4096,
        ..blazing_config("too-large")
    });
    let computer = "pc-large";
    let (mut watcher, _) = join(addr, "watcher", computer);
    let (mut writer, _) = join(addr, "writer", computer);
    assert_eq!(recv(&mut watcher), usrupd("writer", true));

    // The limit counts bytes: 1000 × 3 + 400 × 2 + 296 = 4096, exactly.
    let mut text = String::new();
    for chunk in ["中".repeat(1000), "é".repeat(400), "a".repeat(296)] {
        let at = text.chars().count() as i64;
        send(&mut writer, write(at, 0, &chunk));
        everyone_gets(
            &mut [&mut watcher, &mut writer],
            &written("writer", at, 0, &chunk),
        );
        text.push_str(&chunk);
    }
    assert_eq!(text.len(), 4096);
    // Replacing keeps the size: fine.
    send(&mut writer, write(0, 1, "ab!"));
    everyone_gets(
        &mut [&mut watcher, &mut writer],
        &written("writer", 0, 1, "ab!"),
    );
    text.replace_range(0..3, "ab!");

    // One byte more is too much.
    send(&mut writer, write(5, 0, "z"));
    let (code, reason) = closed(&mut writer);
    assert_eq!(code, 1009);
    assert!(!reason.is_empty());
    assert_eq!(recv(&mut watcher), usrupd("writer", false));
    let sync = resync(&mut watcher);
    assert_eq!(
        document_of(&sync),
        text,
        "the refused write changed nothing"
    );
}

// ---------------------------------------------------------------------------
// Keepalive and token expiry
// ---------------------------------------------------------------------------

#[test]
fn a_client_that_ignores_pings_is_closed_with_3008() {
    let addr = start(Config {
        keepalive: Duration::from_millis(100),
        ..blazing_config("keepalive-raw")
    });
    let computer = "pc-keepalive";
    let mut stream = raw_blazing(addr, &token(KEY, "silent", 3600, None), computer);
    let started = Instant::now();
    let (first, payload) = read_frame(&mut stream);
    assert_eq!(first, 0x82, "a binary frame first");
    let sync: Value = serde_json::from_slice(&gunzip(&payload)).unwrap();
    assert_eq!(sync["type"], "sync");
    assert_eq!(sync["payload"]["actioner"], "silent");
    let mut pings = 0;
    let (code, reason) = loop {
        match read_frame(&mut stream) {
            (0x89, _) => pings += 1,
            (0x88, payload) => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                break (code, String::from_utf8(payload[2..].to_vec()).unwrap());
            }
            (first, _) => panic!("unexpected frame {first:#x}"),
        }
    };
    assert_eq!(code, 3008);
    assert!(!reason.is_empty());
    assert!(pings >= 1, "pinged before being closed");
    assert!(started.elapsed() < PATIENCE);
}

#[test]
fn a_client_that_answers_pings_stays() {
    // The server pings after one interval of silence and closes (3008)
    // after two: this thread has about a second to answer each ping.
    let keepalive = Duration::from_secs(1);
    let addr = start(Config {
        keepalive,
        ..blazing_config("keepalive-ok")
    });
    let (mut client, _) = join(addr, "steady", "pc-steady");
    let joined = Instant::now();
    // A ping comes one silent interval after the last pong, so the third
    // comes more than two intervals after joining: past the silence that
    // closes a client that does not answer.
    let mut pings = 0;
    while pings < 3 {
        match client.ws.read() {
            Ok(Message::Ping(_)) => {
                pings += 1;
                // Send the pong tungstenite queued now, not at the next read.
                client.ws.flush().expect("flush the pong");
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => panic!("the connection ended: {e}"),
        }
    }
    let silent_for = joined.elapsed();
    assert!(
        silent_for >= 2 * keepalive,
        "three pings within {silent_for:?}: pinged before a silent interval"
    );
    let sync = resync(&mut client);
    assert_eq!(sync["payload"]["actioner"], "steady");
}

#[test]
fn an_expiring_token_is_closed_with_3000() {
    let addr = server("expiry");
    let computer = "pc-expiry";
    let (mut watcher, _) = join(addr, "watcher", computer);
    let started = Instant::now();
    let mut client = connect(addr, Some(&token(KEY, "brief", 2, None)), Some(computer));
    let sync = recv(&mut client);
    assert_eq!(sync["type"], "sync");
    let timeout = sync["payload"]["timeout"].as_u64().unwrap();
    assert!((1..=2).contains(&timeout), "timeout {timeout}");
    let (code, reason) = closed(&mut client);
    assert_eq!(code, 3000);
    assert!(!reason.is_empty());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    assert_eq!(recv(&mut watcher), usrupd("brief", true));
    assert_eq!(recv(&mut watcher), usrupd("brief", false));
}

// ---------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------

/// `sub` joins `computer` on `addr`, writes `text` at the start, and
/// returns the client and the document as its initial sync had it.
fn join_and_write(addr: SocketAddr, sub: &str, computer: &str, text: &str) -> (Client, String) {
    let (mut client, sync) = join(addr, sub, computer);
    send(&mut client, write(0, 0, text));
    assert_eq!(recv(&mut client), written(sub, 0, 0, text));
    (client, document_of(&sync))
}

#[test]
fn documents_survive_a_killed_process() {
    let dir = fresh_dir("restart");
    let _cleanup = RemoveOnDrop(dir.clone());
    let main = "pc-restart";
    let other = "pc-other";
    let sneaky = "../../etc/passwd";
    let main_text = "héllo 中文 🦀\nline two\n";
    let expected: [(&str, &str); 3] = [(main, main_text), (other, "other doc"), (sneaky, "sneaky")];

    let mut first = start_process(&dir);
    let (_a, before) = join_and_write(first.addr, "alice", main, main_text);
    assert_eq!(before, "");
    let (_b, before) = join_and_write(first.addr, "bob", other, "other doc");
    assert_eq!(before, "");
    let (_c, before) = join_and_write(first.addr, "carol", sneaky, "sneaky");
    assert_eq!(before, "");

    // Saved within about a second, while the clients are still there;
    // only the documents' own files, all inside the data dir.
    let mut names: Vec<String> = expected.iter().map(|(c, _)| store::file_name(c)).collect();
    names.sort();
    assert!(names.iter().all(|n| !n.contains('/') && !n.contains("..")));
    wait_until("the documents saved", || {
        expected.iter().all(|(computer, text)| {
            std::fs::read(dir.join(store::file_name(computer)))
                .ok()
                .as_deref()
                == Some(text.as_bytes())
        })
    });
    wait_until("only the documents' files", || {
        let mut listed: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        listed.sort();
        listed == names
    });
    first.kill();

    let second = start_process(&dir);
    for (computer, text) in expected {
        let (_client, sync) = join(second.addr, "dave", computer);
        assert_eq!(document_of(&sync), text, "{computer}");
    }
    let (_new, sync) = join(second.addr, "erin", "pc-new");
    assert_eq!(document_of(&sync), "", "an unknown computer starts empty");

    // Edits on the new process are saved too (at the latest when the last
    // client leaves) and survive another kill.
    let (mut client, sync) = join(second.addr, "frank", main);
    assert_eq!(document_of(&sync), main_text);
    send(&mut client, write(0, 0, "¡"));
    assert_eq!(recv(&mut client), written("frank", 0, 0, "¡"));
    client.close();
    let updated = format!("¡{main_text}");
    wait_until("the edit saved", || {
        std::fs::read(dir.join(store::file_name(main)))
            .ok()
            .as_deref()
            == Some(updated.as_bytes())
    });
    drop(second);
    let third = start_process(&dir);
    let (_client, sync) = join(third.addr, "grace", main);
    assert_eq!(document_of(&sync), updated);
}

// ---------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------

#[test]
fn concurrent_writers_converge_on_the_servers_text() {
    const WRITES: usize = 30;
    let addr = server("converge");
    let computer = "pc-converge";
    let subs = ["w0", "w1", "w2"];

    // w0 writes a seed before the others join, so initial syncs differ.
    let (mut c0, sync0) = join(addr, subs[0], computer);
    send(&mut c0, write(0, 0, "seed 🌱\n"));
    let seed = recv(&mut c0);
    assert_eq!(seed, written("w0", 0, 0, "seed 🌱\n"));
    let (mut c1, sync1) = join(addr, subs[1], computer);
    assert_eq!(recv(&mut c0), usrupd("w1", true));
    let (c2, sync2) = join(addr, subs[2], computer);
    everyone_gets(&mut [&mut c0, &mut c1], &usrupd("w2", true));
    assert_eq!(document_of(&sync0), "");
    assert_eq!(document_of(&sync1), "seed 🌱\n");
    assert_eq!(document_of(&sync2), "seed 🌱\n");

    let pieces = ["a", "é", "中", "🦀", "xy", "", "\n", "👩‍💻"];
    let threads: Vec<_> = [
        (c0, sync0, Some(seed)),
        (c1, sync1, None),
        (c2, sync2, None),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (mut client, sync, seed))| {
        std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678));
            for n in 0..WRITES {
                if n % 5 == 0 {
                    send(&mut client, move_to(rng.range(-2, 40), rng.range(-3, 3)));
                }
                let piece = pieces[rng.range(0, pieces.len() as i64 - 1) as usize];
                let offset = rng.range(-3, 45);
                let selection = rng.range(-4, 4);
                send(
                    &mut client,
                    write(offset, selection, &piece.repeat(n % 3 + 1)),
                );
            }
            // Everything broadcast since all three joined, in order.
            let mut writes: Vec<Value> = Vec::new();
            while writes.len() < 3 * WRITES {
                let message = recv(&mut client);
                match message["type"].as_str() {
                    Some("write") => writes.push(message),
                    Some("move") => {}
                    _ => panic!("unexpected {message}"),
                }
            }
            let mut text: Vec<char> = document_of(&sync).chars().collect();
            for message in seed.iter().chain(&writes) {
                apply_message(&mut text, message);
            }
            // The sync comes after every broadcast: skip the moves
            // still on their way, but no write may follow.
            send(&mut client, json!({"type": "sync", "payload": {}}));
            let fresh = loop {
                let message = recv(&mut client);
                match message["type"].as_str() {
                    Some("sync") => break message,
                    Some("move") => {}
                    _ => panic!("unexpected {message}"),
                }
            };
            // The client is returned, not dropped: the others would
            // hear it leave.
            let replayed: String = text.into_iter().collect();
            (replayed, document_of(&fresh), writes, client)
        })
    })
    .collect();
    let results: Vec<(String, String, Vec<Value>, Client)> = threads
        .into_iter()
        .map(|t| t.join().expect("a writer thread"))
        .collect();
    for (i, (replayed, server_text, writes, _)) in results.iter().enumerate() {
        assert_eq!(replayed, server_text, "client {i}'s replay");
        assert_eq!(replayed, &results[0].0, "client {i} agrees with client 0");
        assert_eq!(writes, &results[0].2, "client {i} saw the same order");
        for sub in subs {
            let count = writes
                .iter()
                .filter(|w| w["payload"]["actioner"] == sub)
                .count();
            assert_eq!(count, WRITES, "client {i} got every write of {sub}");
        }
    }
    assert!(
        results[0].0.chars().count() > 20,
        "the writes did something: {:?}",
        results[0].0
    );
}

#[test]
fn a_token_that_expires_in_the_far_future_is_fine() {
    let addr = server("far-future");
    let computer = "pc-far";
    let far = jwt::sign(
        &json!({"sub": "methuselah", "exp": u64::MAX}),
        KEY.as_bytes(),
    );
    let mut client = connect(addr, Some(&far), Some(computer));
    let sync = recv(&mut client);
    assert_eq!(sync["type"], "sync", "{sync}");
    let timeout = sync["payload"]["timeout"].as_u64().expect("a timeout");
    assert!(timeout > 100 * 365 * 24 * 3600, "timeout {timeout}");
    // The server carries on, for this client and for others.
    send(&mut client, write(0, 0, "still"));
    assert_eq!(recv(&mut client), written("methuselah", 0, 0, "still"));
    let (_other, sync) = join(addr, "other", computer);
    assert_eq!(document_of(&sync), "still");
    assert_eq!(recv(&mut client), usrupd("other", true));
}

#[test]
fn the_operator_closes_a_room_with_1000_and_leaves_the_others_alone() {
    let dir = fresh_dir("close-room");
    let addr = start(Config {
        admin_token: Some("adm".into()),
        ..Config {
            data_dir: dir,
            ..blazing_config("close-room")
        }
    });
    let (mut a, _) = join(addr, "a", "pc-closed");
    let (mut b, _) = join(addr, "b", "pc-closed");
    assert_eq!(recv(&mut a), usrupd("b", true));
    let (mut other, _) = join(addr, "c", "pc-open");
    let response = http(
        addr,
        "POST /admin/close-room?computer=pc-closed HTTP/1.1\r\nAuthorization: Bearer adm\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.ends_with("{\"computer\":\"pc-closed\",\"told\":2}\n"),
        "{response}"
    );
    // `a` goes first, and `b` sees it leave before its own turn.
    let (code, reason) = closed(&mut a);
    assert_eq!((code, reason.as_str()), (1000, "room closed by admin"));
    assert_eq!(recv(&mut b), usrupd("a", false));
    let (code, reason) = closed(&mut b);
    assert_eq!((code, reason.as_str()), (1000, "room closed by admin"));
    // Another room is untouched, and the closed one can be joined again.
    send(&mut other, move_to(0, 0));
    assert_eq!(recv(&mut other), moved("c", 0, 0));
    let (_again, sync) = join(addr, "a", "pc-closed");
    assert_eq!(document_of(&sync), "");
    let refused = http(
        addr,
        "POST /admin/close-room?computer=pc-closed HTTP/1.1\r\n\r\n",
    );
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}
