//! The crash paths, over real sockets: a session handler that panics ends
//! only its own connection, with its dialect's internal-error words; a
//! router that panics loses only the command that hit the bug, counts it,
//! and goes on. The failures are injected through hooks that exist only in
//! the crate's own test builds (`dialect::TEST_PANIC`,
//! `router::TEST_PANIC_METHOD`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::dialect::TEST_PANIC;
use crate::router::TEST_PANIC_METHOD;
use crate::{Config, Server};

const PATIENCE: Duration = Duration::from_secs(20);
const KEY: &str = "crash key";

fn start() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let config = Config {
        log_level: crate::log::Level::Error,
        jwt_key: Some(KEY.into()),
        public_channels: crate::router::Patterns::everything(),
        data_dir: std::env::temp_dir().join(format!("switchboard-crash-{}", std::process::id())),
        ..Config::default()
    };
    let server = Server::from_listener(listener, config);
    let addr = server.local_addr().expect("an address");
    std::thread::spawn(move || server.run());
    addr
}

fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("TCP connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let url = format!("ws://{addr}{path}");
    tungstenite::client(url, stream).expect("handshake").0
}

fn json_of(message: Message) -> Value {
    match message {
        Message::Text(text) => serde_json::from_str(&text).expect("JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Sends the failing frame; returns what came before the close, and the
/// close code.
fn fail(ws: &mut WebSocket<TcpStream>) -> (Vec<Message>, u16) {
    ws.send(Message::text(TEST_PANIC)).expect("send");
    let mut before = Vec::new();
    loop {
        match ws.read().expect("a message or the close") {
            Message::Close(Some(CloseFrame { code, .. })) => return (before, u16::from(code)),
            Message::Ping(_) | Message::Pong(_) => {}
            other => before.push(other),
        }
    }
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn a_concierge_handler_that_fails_closes_with_the_documents_4000() {
    let addr = start();
    let mut ws = connect(addr, "/ws/concierge");
    ws.send(Message::text(
        json!({"type": "IDENTIFY", "name": "crashy", "version": "0.1.0"}).to_string(),
    ))
    .unwrap();
    assert_eq!(json_of(ws.read().unwrap())["type"], "HELLO");
    let (before, code) = fail(&mut ws);
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(code, 4000);
    // Another client is served as before.
    let mut other = connect(addr, "/ws/concierge");
    other
        .send(Message::text(
            json!({"type": "IDENTIFY", "name": "steady", "version": "0.1.0"}).to_string(),
        ))
        .unwrap();
    assert_eq!(json_of(other.read().unwrap())["type"], "HELLO");
}

#[test]
fn a_world_handler_that_fails_says_server_fatal_then_closes_with_1011() {
    let addr = start();
    let mut ws = connect(addr, "/ws/world/default");
    let (before, code) = fail(&mut ws);
    let notices: Vec<Value> = before.into_iter().map(json_of).collect();
    assert_eq!(notices, [json!(["error", {"code": "server.fatal"}])]);
    assert_eq!(code, 1011);
}

#[test]
fn blazing_channels_and_common_handlers_that_fail_close_with_1011() {
    let addr = start();
    let claims =
        json!({"sub": "0e5b2a0c-3a52-4a51-9b2f-1d1f6f0a0001", "exp": crate::jwt::now() + 600});
    let token = crate::jwt::sign(&claims, KEY.as_bytes());
    let mut blazing = connect(addr, &format!("/ws/blazing?token={token}&computer=crash"));
    assert!(
        matches!(blazing.read().unwrap(), Message::Binary(_)),
        "the sync"
    );
    let mut channels = connect(addr, "/crash/listen");
    assert_eq!(json_of(channels.read().unwrap())["type"], "CONNECTED");
    let mut common = connect(addr, "/ws/common");
    assert_eq!(json_of(common.read().unwrap())["op"], 0);
    for (name, ws) in [
        ("blazing", &mut blazing),
        ("channels", &mut channels),
        ("common", &mut common),
    ] {
        let (_, code) = fail(ws);
        assert_eq!(code, 1011, "{name}");
    }
}

#[test]
fn a_router_that_fails_loses_one_command_counts_it_and_goes_on() {
    let addr = start();
    assert_eq!(metric(addr, "switchboard_router_panics_total"), 0);
    let mut common = connect(addr, "/ws/common");
    assert_eq!(json_of(common.read().unwrap())["op"], 0);
    common
        .send(Message::text(json!({"op": 1, "password": ""}).to_string()))
        .unwrap();
    let request = |w: &str, n: u64| json!({"op": 4, "w": w, "a": [], "n": n}).to_string();
    common
        .send(Message::text(request(TEST_PANIC_METHOD, 1)))
        .unwrap();
    // The failed call is never answered; the next one is, by a router
    // that kept its state (the caller is still a member).
    common.send(Message::text(request("hub.info", 2))).unwrap();
    let answer = json_of(common.read().unwrap());
    assert_eq!(
        (answer["op"].as_u64(), answer["n"].as_u64()),
        (Some(5), Some(2)),
        "{answer}"
    );
    assert_eq!(answer["r"]["members"]["common"], 1, "{answer}");
    assert_eq!(metric(addr, "switchboard_router_panics_total"), 1);
}
