// litecord's litebridge client against switchboard (issue 18): the
// `Connection` class of litecord/rest-py's `gw.py`, replayed byte for
// byte. It sends `json.dumps(...)` of Python dicts (hence `", "` and
// `": "` between members), reads every frame as `json.loads(...)["op"]`,
// waits for HELLO and reads its `hb_interval`, answers HELLO_ACK with
// `lconfig.litebridge_password` ("123" by default), heartbeats at once and
// then every `hb_interval` with a sequence `s` that it increments on each
// HEARTBEAT_ACK (and reconnects when an ACK is missing), and DISPATCHes
// (`NEW_GUILD` from its guild API). Its `request` is unfinished upstream;
// a REQUEST here has the document's shape with its `random_nonce()`, an
// md5 hex digest.

use std::net::{SocketAddr, TcpStream};

use serde_json::{json, Value};
use switchboard::Config;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::WebSocket;

use crate::support::*;

/// litebridge's default password (`lconfig.litebridge_password`).
const PASSWORD: &str = "123";

/// A nonce as `random_nonce()` makes them: `md5(os.urandom(128)).hexdigest()`.
const NONCE: &str = "9e107d9d372bb6826bd81d3542a419d6";

/// A hub with litebridge's password as its secret.
fn hub() -> SocketAddr {
    start(Config {
        secret: Some(PASSWORD.into()),
        ..config()
    })
}

/// `websockets.connect(lconfig.litebridge_server)` with the server set to
/// `ws://HOST:PORT/ws/common`: the Python library's handshake, which
/// offers permessage-deflate (switchboard does not take it up).
fn connect(addr: SocketAddr) -> Client {
    let stream: TcpStream = raw_websocket_with(
        addr,
        "/ws/common",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
         User-Agent: Python/3.6 websockets/4.0.1\r\n",
    );
    let config = WebSocketConfig::default();
    Client {
        ws: WebSocket::from_raw_socket(stream, Role::Client, Some(config)),
    }
}

/// `json.loads(await self.ws.recv())`, whose `op` the client reads first:
/// every frame must be an object with an integer `op`.
fn recv(client: &mut Client) -> Value {
    let payload = client.recv_json();
    assert!(payload["op"].is_u64(), "no op for litebridge: {payload}");
    payload
}

/// `ws_init`: HELLO read and checked as the client checks it, HELLO_ACK
/// sent. Returns the heartbeat period it computes, in seconds.
fn handshake(client: &mut Client, password: &str) -> f64 {
    let hello = recv(client);
    assert_eq!(hello["op"], 0, "Received HELLO is not HELLO: {hello}");
    let period = hello["hb_interval"]
        .as_f64()
        .expect("a numeric hb_interval")
        / 1000.0;
    client.send_text(&format!(r#"{{"op": 1, "password": "{password}"}}"#));
    period
}

/// One turn of the heartbeat task: `{"op": 2, "s": seq}`, and the ACK the
/// receive loop must see next (it bumps the sequence on it).
#[track_caller]
fn heartbeat(client: &mut Client, seq: u64) {
    client.send_text(&format!(r#"{{"op": 2, "s": {seq}}}"#));
    assert_eq!(recv(client), json!({"op": 3}), "after heartbeat {seq}");
}

#[test]
fn litebridge_acks_hello_and_heartbeats_with_its_sequence() {
    let addr = hub();
    let mut bridge = connect(addr);
    // The default interval: gw.py heartbeats every 20.0 seconds.
    assert_eq!(handshake(&mut bridge, PASSWORD), 20.0);
    // HELLO_ACK gets no reply: the first thing heard is the first ACK.
    for seq in 0..3 {
        heartbeat(&mut bridge, seq);
    }
}

#[test]
fn litebridge_reads_a_configured_interval_as_its_period() {
    let addr = start(Config {
        secret: Some(PASSWORD.into()),
        heartbeat_interval: std::time::Duration::from_millis(12_345),
        ..config()
    });
    let mut bridge = connect(addr);
    assert_eq!(handshake(&mut bridge, PASSWORD), 12.345);
    heartbeat(&mut bridge, 0);
}

#[test]
fn litebridge_dispatches_run_and_are_never_answered() {
    // The secret protects the hub: the listener watching the dispatches
    // needs its channel public.
    let addr = start(Config {
        secret: Some(PASSWORD.into()),
        public_channels: switchboard::router::Patterns::parse_list("guilds"),
        ..config()
    });
    let mut listener = Client::connect(addr, "/guilds/listen");
    assert_eq!(listener.recv_json()["type"], "CONNECTED");
    let mut bridge = connect(addr);
    handshake(&mut bridge, PASSWORD);
    heartbeat(&mut bridge, 0);

    // `dispatch("NEW_GUILD", [guild_id, owner_id])`, as its guild API
    // calls it: no such method here, and a DISPATCH hears nothing back.
    bridge.send_text(r#"{"op": 6, "w": "NEW_GUILD", "a": ["150501171201", "150501171202"]}"#);
    // A DISPATCH of a method the hub has: it runs (the listener gets the
    // data), still without an answer.
    bridge.send_text(
        r#"{"op": 6, "w": "hub.publish", "a": ["guilds", {"guild_id": "150501171201"}]}"#,
    );
    let data = listener.recv_json();
    assert_eq!(data["type"], "DATA", "{data}");
    assert_eq!(
        data["payload"],
        json!({"guild_id": "150501171201"}),
        "{data}"
    );
    // Nothing came for either DISPATCH: the next frame is this ACK.
    heartbeat(&mut bridge, 1);
}

#[test]
fn litebridge_requests_get_their_md5_nonce_back() {
    let addr = hub();
    let mut bridge = connect(addr);
    handshake(&mut bridge, PASSWORD);
    heartbeat(&mut bridge, 0);

    bridge.send_text(&format!(
        r#"{{"op": 4, "w": "hub.info", "a": [], "n": "{NONCE}"}}"#
    ));
    let response = recv(&mut bridge);
    assert_eq!(response["op"], 5, "{response}");
    assert_eq!(response["n"], NONCE, "{response}");
    assert_eq!(response["r"]["server"], "switchboard", "{response}");
    assert_eq!(response["r"]["members"]["common"], 1, "{response}");

    // What its server used to ask of it (`TOKEN_VALIDATE`) is no method
    // here: answered, never silence.
    let other = "0cc175b9c0f1b6a831c399e269772661";
    bridge.send_text(&format!(
        r#"{{"op": 4, "w": "TOKEN_VALIDATE", "a": ["MTUwNTAx.DK3x.abc"], "n": "{other}"}}"#
    ));
    let response = recv(&mut bridge);
    assert_eq!(response["op"], 5, "{response}");
    assert_eq!(response["n"], other, "{response}");
    assert_eq!(
        response["r"]["error"]["code"], "unknown_method",
        "{response}"
    );
    heartbeat(&mut bridge, 1);
}

#[test]
fn a_wrong_password_closes_4001_and_the_clients_retry_gets_in() {
    let addr = hub();
    let mut bridge = connect(addr);
    handshake(&mut bridge, "not-the-password");
    assert_eq!(bridge.close_code_skipping(), 4001);
    // gw.py's `init()` retries after a random 1 to 8 seconds: a new
    // connection, the whole handshake again.
    let mut retry = connect(addr);
    handshake(&mut retry, PASSWORD);
    heartbeat(&mut retry, 0);
}
