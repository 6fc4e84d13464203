//! End-to-end tests of the limits through real sockets: the per-IP
//! connection cap (429 over it, a place freed when a connection closes),
//! and the per-connection message rate limit in every dialect: a burst over
//! it gets the dialect's own error, a client that keeps on is closed with
//! 1008, and a well-behaved client of the same server goes on unharmed.
//!
//! The rate tests run at 1 message a second with a burst of 5: a burst of
//! ten is then over the limit however slowly a loaded machine reads it
//! (another token takes a whole second), and the calm clients, which send
//! at most a handful of messages, never are.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::ops::Range;

use crate::support::*;
use flate2::read::GzDecoder;
use serde_json::{json, Value};
use switchboard::{jwt, Config};
use tungstenite::protocol::CloseFrame;
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// One message a second, five at once.
fn limited() -> Config {
    Config {
        rate_limit: Some(1),
        rate_burst: Some(5),
        ..config()
    }
}

/// Sends `message(i)` for each `i` in `range`. Failures are ignored: the
/// server may have closed the connection already, which the reads after
/// this find out.
fn burst(client: &mut Client, range: Range<u64>, message: impl Fn(u64) -> Value) {
    for i in range {
        let _ = client.ws.send(Message::text(message(i).to_string()));
    }
}

/// A server message as JSON: text as is, binary gunzipped (blazing).
fn json_of(message: Message) -> Value {
    match message {
        Message::Text(text) => serde_json::from_str(&text).expect("JSON text"),
        Message::Binary(bytes) => {
            let mut json = Vec::new();
            GzDecoder::new(&bytes[..])
                .read_to_end(&mut json)
                .expect("gzip from the server");
            serde_json::from_slice(&json).expect("gzipped JSON")
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Reads messages until one satisfies `wanted`; returns it and those before it.
fn read_until(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let message = json_of(client.recv());
        if wanted(&message) {
            return (message, before);
        }
        before.push(message);
    }
}

/// Reads messages until the server's close frame; returns its code and
/// reason, and the messages before it.
fn read_until_close(client: &mut Client) -> (u16, String, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        match client.recv() {
            Message::Close(frame) => {
                // Send the closing reply tungstenite has queued, so that the
                // server lets the connection go at once.
                let _ = client.ws.flush();
                return match frame {
                    Some(CloseFrame { code, reason }) => {
                        (u16::from(code), reason.to_string(), before)
                    }
                    None => (1005, String::new(), before),
                };
            }
            message => before.push(json_of(message)),
        }
    }
}

/// Keeps sending `message(i)` past the limit, then expects the policy
/// close that persisting earns, with a reason that says why.
fn persist_until_closed(
    client: &mut Client,
    message: impl Fn(u64) -> Value,
) -> (u16, String, Vec<Value>) {
    burst(client, 10..30, message);
    let (code, reason, before) = read_until_close(client);
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("rate limit"), "{reason}");
    (code, reason, before)
}

/// The metrics a rate-limited run must have moved: one disconnection, and
/// at least the messages that the one disconnected client had dropped.
fn assert_rate_metrics(addr: SocketAddr) {
    assert_eq!(metric(addr, "switchboard_rate_limit_disconnects_total"), 1);
    assert!(metric(addr, "switchboard_messages_rate_limited_total") >= 6);
}

/// The numbers in `values` at `field`.
fn numbers<'a>(values: impl IntoIterator<Item = &'a Value>, pointer: &str) -> BTreeSet<u64> {
    values
        .into_iter()
        .filter_map(|v| v.pointer(pointer)?.as_u64())
        .collect()
}

/// `0..n` as a set.
fn first(n: u64) -> BTreeSet<u64> {
    (0..n).collect()
}

/// A WebSocket upgrade of `path`, written by hand; the whole answer.
fn upgrade_answer(addr: SocketAddr, path: &str) -> String {
    http(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ),
    )
}

// ---------------------------------------------------------------------------
// Per-IP connection limit
// ---------------------------------------------------------------------------

#[test]
fn a_third_websocket_from_one_address_gets_429_until_one_of_two_closes() {
    let addr = start(Config {
        max_connections_per_ip: Some(2),
        ..config()
    });
    let first_client = Client::connect(addr, "/ws/echo");
    let mut second = Client::connect(addr, "/ws/concierge");

    let answer = upgrade_answer(addr, "/ws/echo");
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: 1\r\n"), "{answer}");
    match Client::connect_with(addr, "/ws/common", None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        Err(other) => panic!("expected HTTP 429, got {other}"),
        Ok(_) => panic!("a third connection from one address over a limit of 2"),
    }
    assert_eq!(
        metric(addr, "switchboard_connections_refused_per_ip_total"),
        2
    );
    // Plain HTTP is not counted, and the server-wide cap was never reached.
    assert_eq!(
        metric(
            addr,
            "switchboard_handshake_failures_total{reason=\"at_capacity\"}"
        ),
        0
    );
    assert_eq!(metric(addr, "switchboard_connections_open"), 2);

    // The close is processed on the server's own time: retry until then.
    first_client.close();
    let mut third = None;
    wait_until("the address to have a place again", || {
        third = Client::connect_with(addr, "/ws/echo", None).ok();
        third.is_some()
    });
    let mut third = third.unwrap();
    third.send_text("in");
    assert_eq!(third.recv().into_text().unwrap().as_str(), "in");

    // Two open again: the next is refused, and the others work on.
    let answer = upgrade_answer(addr, "/ws/echo");
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer}");
    second.send_json(json!({"type": "IDENTIFY", "name": "still", "version": "0.1.0"}));
    assert_eq!(second.recv_json()["type"], "HELLO");
}

// ---------------------------------------------------------------------------
// Message rate limit, dialect by dialect
// ---------------------------------------------------------------------------

#[test]
fn echo_drops_without_a_word_and_closes_a_persisting_client() {
    let addr = start(limited());
    let mut calm = Client::connect(addr, "/ws/echo");
    let mut flood = Client::connect(addr, "/ws/echo");
    let number = |i: u64| json!(i);

    burst(&mut flood, 0..10, number);
    let (_, _, echoed) = persist_until_closed(&mut flood, number);
    let echoed: Vec<u64> = echoed.iter().filter_map(Value::as_u64).collect();
    // The first five always fit the burst; not everything came back.
    assert_eq!(echoed[..5], [0, 1, 2, 3, 4], "{echoed:?}");
    assert!(echoed.len() < 30, "{echoed:?}");

    calm.send_text("calm");
    assert_eq!(calm.recv().into_text().unwrap().as_str(), "calm");
    assert_rate_metrics(addr);
}

#[test]
fn concierge_gets_status_bad_with_the_dropped_frames_seq_then_1008() {
    let addr = start(limited());
    let mut calm = Concierge::join(addr, "calm");
    let mut flood = Concierge::join(addr, "flood");
    let to_calm =
        |i: u64| json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "calm"}, "data": i});

    burst(&mut flood.client, 0..10, to_calm);
    let (notice, before) = read_until(&mut flood.client, |v| v["code"] == "BAD");
    // Frames passed in order up to the first one dropped, whose `seq` the
    // notice carries: the count of MESSAGE_SENTs before it.
    let sent = numbers(&before, "/seq");
    assert!(
        before.iter().all(|v| v["code"] == "MESSAGE_SENT"),
        "{before:?}"
    );
    let dropped = notice["seq"].as_u64().expect("the notice has a seq");
    assert_eq!(sent, first(dropped), "{notice}");
    assert!(dropped >= 4, "IDENTIFY took one token of five: {notice}");
    assert_eq!(notice["type"], "STATUS");
    assert!(
        notice["desc"].as_str().unwrap().contains("rate limit"),
        "{notice}"
    );

    let (_, _, after) = persist_until_closed(&mut flood.client, to_calm);
    let sent: BTreeSet<u64> = sent.union(&numbers(&after, "/seq")).copied().collect();

    // Calm got what passed, and not the dropped frame; it still gets more.
    let mut late = Concierge::join(addr, "late");
    late.send(
        json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "calm"}, "data": "after"}),
    );
    let (_, delivered) = read_until(&mut calm.client, |v| v["data"] == "after");
    let delivered = numbers(&delivered, "/data");
    assert!(delivered.is_superset(&sent), "{delivered:?} {sent:?}");
    assert!(!delivered.contains(&dropped), "{delivered:?}");
    assert_rate_metrics(addr);
}

#[test]
fn channels_gets_an_error_rate_limited_then_1008() {
    let addr = start(limited());
    let mut calm = Client::connect(addr, "/lobby/listen");
    assert_eq!(calm.recv_json()["type"], "CONNECTED");
    let mut flood = Client::connect(addr, "/lobby/listen");
    assert_eq!(flood.recv_json()["type"], "CONNECTED");
    let update = |i: u64| json!({"type": "PRESENCE:UPDATE", "payload": {"n": i}});

    burst(&mut flood, 0..10, update);
    let (notice, before) = read_until(&mut flood, |v| v["type"] == "ERROR");
    assert_eq!(notice["payload"]["code"], "RATE_LIMITED", "{notice}");
    assert!(
        notice["payload"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{notice}"
    );
    // Nothing came before but PINGs and the flooder's own updates that
    // passed (an updater hears its PRESENCE:UPDATED, as the others do).
    assert!(
        before
            .iter()
            .all(|v| v["type"] == "PING" || v["type"] == "PRESENCE:UPDATED"),
        "{before:?}"
    );
    persist_until_closed(&mut flood, update);

    // Calm saw the updates that passed, the flooder leave, and an emit.
    let emitted = get(addr, "/lobby/emit?x=after");
    assert!(emitted.starts_with("HTTP/1.1 200 "), "{emitted}");
    let (data, seen) = read_until(&mut calm, |v| v["type"] == "DATA");
    assert_eq!(data["payload"], json!({"x": "after"}));
    let updates: Vec<u64> = seen
        .iter()
        .filter(|v| v["type"] == "PRESENCE:UPDATED")
        .filter_map(|v| v["payload"]["presence"]["n"].as_u64())
        .collect();
    assert_eq!(updates[..5], [0, 1, 2, 3, 4], "{seen:?}");
    assert!(updates.len() < 30, "{updates:?}");
    assert_rate_metrics(addr);
}

/// A common client past HELLO_ACK.
fn common(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr, "/ws/common");
    assert_eq!(client.recv_json()["op"], 0);
    client.send_json(json!({"op": 1, "password": ""}));
    client
}

#[test]
fn common_gets_a_rate_limited_response_with_the_dropped_nonce_then_1008() {
    let addr = start(limited());
    let mut listener = Client::connect(addr, "/lobby/listen");
    assert_eq!(listener.recv_json()["type"], "CONNECTED");
    let mut calm = common(addr);
    let mut flood = common(addr);
    let publish = |i: u64| json!({"op": 4, "w": "hub.publish", "a": ["lobby", i], "n": i});

    burst(&mut flood, 0..10, publish);
    let (notice, _) = read_until(&mut flood, |v| v["r"].get("error").is_some());
    assert_eq!(notice["op"], 5, "{notice}");
    assert_eq!(notice["r"]["error"]["code"], "rate_limited", "{notice}");
    let dropped = notice["n"].as_u64().expect("the notice has the nonce");
    assert!(dropped >= 4, "HELLO_ACK took one token of five: {notice}");
    persist_until_closed(&mut flood, publish);

    // The calm client is answered, and its publish reaches the listener
    // after exactly what passed of the flood.
    calm.send_json(json!({"op": 4, "w": "hub.publish", "a": ["lobby", "after"], "n": "c"}));
    let answer = calm.recv_json();
    assert_eq!(answer["n"], "c", "{answer}");
    assert_eq!(answer["r"]["delivered"], 1, "{answer}");
    let (_, published) = read_until(&mut listener, |v| v["payload"] == "after");
    let published = numbers(&published, "/payload");
    assert!(published.is_superset(&first(dropped)), "{published:?}");
    assert!(!published.contains(&dropped), "{published:?}");
    assert_rate_metrics(addr);
}

/// A world client of `default`, authenticated as `id`, in room `r`.
fn in_room(addr: SocketAddr, id: &str) -> Client {
    let mut client = Client::connect(addr, "/ws/world/default");
    client.send_json(json!(["authenticate", {"client_id": id}]));
    assert_eq!(client.recv_json()[0], "authenticated");
    client.send_json(json!(["room.enter", "in", {"room": "r"}]));
    assert_eq!(client.recv_json()[0], "success");
    client
}

#[test]
fn world_gets_protocol_rate_limited_with_the_dropped_actions_id_then_1008() {
    let addr = start(limited());
    let mut calm = in_room(addr, "calm");
    let mut flood = in_room(addr, "flood");
    let say = |i: u64| json!(["room.send", i, {"room": "r", "content": i}]);

    burst(&mut flood, 0..10, say);
    let (notice, _) = read_until(&mut flood, |v| v[0] == "error");
    assert_eq!(notice[2]["code"], "protocol.rate_limited", "{notice}");
    assert!(
        notice[2]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{notice}"
    );
    let dropped = notice[1].as_u64().expect("the notice has the id");
    assert!(dropped >= 3, "two of five tokens went before: {notice}");
    persist_until_closed(&mut flood, say);

    let mut late = in_room(addr, "late");
    late.send_json(json!(["room.send", "x", {"room": "r", "content": "after"}]));
    assert_eq!(late.recv_json()[0], "success");
    let (_, heard) = read_until(&mut calm, |v| v[1]["content"] == "after");
    let said = numbers(heard.iter().filter(|v| v[0] == "room.send"), "/1/content");
    assert!(said.is_superset(&first(dropped)), "{said:?}");
    assert!(!said.contains(&dropped), "{said:?}");
    assert_rate_metrics(addr);
}

const KEY: &str = "limits test key";

/// Joins blazing document `computer` as `sub`; returns the client after
/// its first `sync`.
fn blazing(addr: SocketAddr, sub: &str, computer: &str) -> Client {
    let claims = json!({"sub": sub, "name": sub, "exp": jwt::now() + 3600});
    let token = jwt::sign(&claims, KEY.as_bytes());
    let (request, stream) = blazing_request(addr, &token, computer);
    let (ws, _) = tungstenite::client(request, stream).expect("blazing handshake");
    let mut client = Client { ws };
    assert_eq!(json_of(client.recv())["type"], "sync");
    client
}

#[test]
fn blazing_gets_a_sync_of_the_true_text_then_1008() {
    let data_dir =
        std::env::temp_dir().join(format!("switchboard-limits-{}-blazing", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let addr = start(Config {
        jwt_key: Some(KEY.into()),
        data_dir,
        ..limited()
    });
    let mut calm = blazing(addr, "calm", "doc");
    let mut flood = blazing(addr, "flood", "doc");
    let type_a =
        |_: u64| json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "a"}});

    burst(&mut flood, 0..10, type_a);
    let (sync, before) = read_until(&mut flood, |v| v["type"] == "sync");
    // The sync follows the writes that passed, and holds exactly them.
    let passed = before.iter().filter(|v| v["type"] == "write").count();
    assert!(passed >= 5, "{before:?}");
    assert!(passed < 10, "{before:?}");
    assert_eq!(sync["payload"]["actioner"], "flood");
    assert_eq!(sync_document(&sync["payload"]), "a".repeat(passed));
    persist_until_closed(&mut flood, type_a);

    // Calm saw the writes that passed and the flooder leave; it writes on.
    let (_, seen) = read_until(&mut calm, |v| {
        v["type"] == "usrupd" && v["payload"]["type"] == false
    });
    assert!(seen.iter().all(|v| v["type"] != "sync"), "{seen:?}");
    let writes = seen.iter().filter(|v| v["type"] == "write").count();
    assert!(writes >= passed && writes < 30, "{seen:?}");
    let mine = json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "b"}});
    calm.send_text(&mine.to_string());
    let echo = json_of(calm.recv());
    assert_eq!(echo["payload"]["actioner"], "calm", "{echo}");
    assert_eq!(echo["payload"]["text"], "b", "{echo}");
    assert_rate_metrics(addr);
}
