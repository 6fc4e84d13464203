//! End-to-end tests of the common dialect (`protocols/common.md`) through
//! real sockets: the HELLO / HELLO_ACK handshake and its password, the
//! heartbeat and its timeout, REQUEST / RESPONSE with nonces of every JSON
//! type, DISPATCH, the hub's built-in methods, an embedder's methods on the
//! worker pool, and the close codes for everything a client may not send.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;
use serde_json::{json, Value};
use switchboard::dialect::Dialect;
use switchboard::methods::RpcError;
use switchboard::{Config, Server};
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Connects to `/ws/common` and checks the HELLO; the client has not
/// answered it yet.
fn connect_common(addr: SocketAddr, hb_interval_ms: u64) -> Client {
    let mut client = Client::connect(addr, "/ws/common");
    let hello = client.recv_json();
    assert_eq!(hello, json!({"op": 0, "hb_interval": hb_interval_ms}));
    client
}

/// A common client past the handshake (no password), on a server with the
/// default heartbeat interval.
fn common(addr: SocketAddr) -> Client {
    let mut client = connect_common(addr, 20_000);
    client.send_json(json!({"op": 1, "password": ""}));
    client
}

/// Sends REQUEST `w`/`a` with nonce `n` and returns the RESPONSE's `r`. The
/// RESPONSE must be the very next frame, echo `n` and have nothing else.
#[track_caller]
fn request(client: &mut Client, w: &str, a: Value, n: Value) -> Value {
    client.send_json(json!({"op": 4, "w": w, "a": a, "n": n}));
    let response = client.recv_json();
    assert_eq!(response["op"], 5, "{response}");
    assert_eq!(response["n"], n, "{response}");
    assert_eq!(response.as_object().unwrap().len(), 3, "{response}");
    response["r"].clone()
}

/// Like [`request`] with a fixed nonce.
#[track_caller]
fn call(client: &mut Client, w: &str, a: Value) -> Value {
    request(client, w, a, json!(1))
}

/// Asserts that `r` is an error answer with `code` and a non-empty message.
#[track_caller]
fn assert_rpc_error(r: &Value, code: &str) {
    let error = &r["error"];
    assert_eq!(error["code"], code, "{r}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{r}");
    assert_eq!(r.as_object().map(serde_json::Map::len), Some(1), "{r}");
    assert_eq!(error.as_object().map(serde_json::Map::len), Some(2), "{r}");
}

/// Asserts that the server closes `client` with `code` and a reason.
#[track_caller]
fn assert_closed(client: &mut Client, code: u16, what: &str) {
    let (got, reason) = client.expect_close();
    assert_eq!(got, code, "{what}: closed with {got} ({reason})");
    assert!(!reason.is_empty(), "{what}: empty close reason");
}

/// Asserts that the client is alive and nothing is queued for it: a
/// REQUEST sent now is answered by the very next frame.
#[track_caller]
fn assert_idle(client: &mut Client) {
    let r = request(client, "hub.info", json!([]), json!("idle-check"));
    assert_eq!(r["server"], "switchboard", "{r}");
}

/// The name and uuid of the only common client, from `hub.clients`.
fn only_common_identity(client: &mut Client) -> (String, String) {
    let clients = call(client, "hub.clients", json!([]));
    let commons: Vec<&Value> = clients
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["dialect"] == "common")
        .collect();
    assert_eq!(commons.len(), 1, "{clients}");
    (
        commons[0]["name"].as_str().unwrap().to_string(),
        commons[0]["uuid"].as_str().unwrap().to_string(),
    )
}

/// A channels listener on `/<channel>/listen<query>`; returns it and its
/// clientID.
fn listener(addr: SocketAddr, channel: &str, query: &str) -> (Client, String) {
    let (client, connected) = Client::listen(addr, &format!("/{channel}/listen{query}"));
    let id = connected["clientID"].as_str().unwrap().to_string();
    (client, id)
}

/// A server with the embedder methods the tests call, and its address.
/// `gate` is released by the test to let `test.gated` return.
fn start_with_methods(gate: Arc<(Mutex<bool>, Condvar)>) -> SocketAddr {
    start_counting(gate, Arc::default())
}

/// Like [`start_with_methods`]; `test.count` records its arguments in `counted`.
fn start_counting(
    gate: Arc<(Mutex<bool>, Condvar)>,
    counted: Arc<Mutex<Vec<Value>>>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let server = Server::from_listener(listener, config())
        .method("math.add", |caller, args| {
            let x = args[0].as_i64().ok_or_else(|| RpcError::new("bad", "x"))?;
            let y = args[1].as_i64().ok_or_else(|| RpcError::new("bad", "y"))?;
            Ok(json!({
                "sum": x + y,
                "is_common": caller.dialect == Dialect::Common,
                "dialect": caller.dialect.name(),
                "name": caller.name,
                "uuid": caller.uuid.to_string(),
                "user": caller.user,
            }))
        })
        .method("test.echo", |_, args| Ok(args.clone()))
        .method("test.fail", |_, _| Err(RpcError::new("bad", "nope")))
        .method("test.panic", |_, _| {
            panic!("a method that panics (expected)")
        })
        .method("test.slow", |_, _| {
            thread::sleep(Duration::from_secs(1));
            Ok(json!("slow"))
        })
        .method("test.gated", move |_, _| {
            let (lock, released) = &*gate;
            let guard = lock.lock().unwrap();
            let (guard, _) = released
                .wait_timeout_while(guard, PATIENCE, |open| !*open)
                .unwrap();
            Ok(json!({"released": *guard}))
        })
        .method("test.count", move |_, args| {
            let mut calls = counted.lock().unwrap();
            calls.push(args.clone());
            Ok(json!(calls.len()))
        })
        .method("hub.info", |_, _| Ok(json!("impostor")));
    let addr = server.local_addr().unwrap();
    thread::spawn(move || server.run());
    addr
}

fn no_gate() -> Arc<(Mutex<bool>, Condvar)> {
    Arc::new((Mutex::new(false), Condvar::new()))
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[test]
fn hello_is_the_first_frame_and_names_the_heartbeat_interval() {
    let addr = start(config());
    let mut client = Client::connect(addr, "/ws/common");
    let text = match client.recv() {
        Message::Text(text) => text.to_string(),
        other => panic!("expected HELLO, got {other:?}"),
    };
    let hello: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(hello, json!({"op": 0, "hb_interval": 20000}), "{text}");
    assert!(hello["hb_interval"].is_u64(), "{text}");

    let addr = start(Config {
        heartbeat_interval: Duration::from_millis(1234),
        ..config()
    });
    connect_common(addr, 1234);
}

#[test]
fn without_a_secret_any_password_or_none_is_accepted() {
    let addr = start(config());
    for ack in [
        json!({"op": 1, "password": "anything"}),
        json!({"op": 1, "password": ""}),
        json!({"op": 1}),
    ] {
        let mut client = connect_common(addr, 20_000);
        client.send_json(ack.clone());
        // No reply to HELLO_ACK: the next frame answers the heartbeat.
        client.send_json(json!({"op": 2}));
        assert_eq!(client.recv_json(), json!({"op": 3}), "after {ack}");
        assert_idle(&mut client);
    }
}

#[test]
fn with_a_secret_only_the_right_password_is_accepted() {
    let addr = start(Config {
        secret: Some("pw".into()),
        ..config()
    });
    for ack in [
        json!({"op": 1, "password": "wrong"}),
        json!({"op": 1, "password": "pw "}),
        json!({"op": 1, "password": "PW"}),
        json!({"op": 1, "password": ""}),
        json!({"op": 1}),
    ] {
        let mut client = connect_common(addr, 20_000);
        client.send_json(ack.clone());
        assert_closed(&mut client, 4001, &ack.to_string());
    }

    let mut client = connect_common(addr, 20_000);
    client.send_json(json!({"op": 1, "password": "pw"}));
    client.send_json(json!({"op": 2}));
    assert_eq!(client.recv_json(), json!({"op": 3}));
    assert_idle(&mut client);
}

#[test]
fn heartbeat_request_or_dispatch_before_hello_ack_closes_with_4002() {
    let addr = start(config());
    for payload in [
        json!({"op": 2}),
        json!({"op": 4, "w": "hub.info", "a": [], "n": 1}),
        json!({"op": 6, "w": "hub.info", "a": []}),
    ] {
        let mut client = connect_common(addr, 20_000);
        client.send_json(payload.clone());
        assert_closed(&mut client, 4002, &payload.to_string());
    }
    // Also with a secret, before the (right) password.
    let addr = start(Config {
        secret: Some("pw".into()),
        ..config()
    });
    let mut client = connect_common(addr, 20_000);
    client.send_json(json!({"op": 4, "w": "hub.info", "a": [], "n": 1}));
    assert_closed(&mut client, 4002, "REQUEST before HELLO_ACK");
}

// ---------------------------------------------------------------------------
// Heartbeats
// ---------------------------------------------------------------------------

#[test]
fn every_heartbeat_is_acknowledged() {
    let addr = start(config());
    let mut client = common(addr);
    for _ in 0..5 {
        client.send_json(json!({"op": 2}));
    }
    for _ in 0..5 {
        let text = match client.recv() {
            Message::Text(text) => text.to_string(),
            other => panic!("expected HEARTBEAT_ACK, got {other:?}"),
        };
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"op": 3})
        );
    }
    // Exactly five: the next frame answers a request.
    assert_idle(&mut client);
}

fn fast_heartbeat() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(200),
        ..config()
    }
}

#[test]
fn a_client_that_stops_heartbeating_is_closed_with_4003_after_the_interval_and_a_second() {
    let addr = start(fast_heartbeat());
    let mut client = connect_common(addr, 200);
    client.send_json(json!({"op": 1, "password": ""}));
    let last_heartbeat = Instant::now();
    client.send_json(json!({"op": 2}));
    assert_eq!(client.recv_json(), json!({"op": 3}));
    assert_closed(&mut client, 4003, "heartbeat timeout");
    assert_closed_a_second_or_more_after(last_heartbeat);
}

#[test]
fn a_client_that_never_sends_hello_ack_is_closed_with_4003() {
    let addr = start(fast_heartbeat());
    let connected = Instant::now();
    let mut client = connect_common(addr, 200);
    assert_closed(&mut client, 4003, "no HELLO_ACK");
    assert_closed_a_second_or_more_after(connected);
}

/// The fast heartbeat's timeout is its interval plus a second: closing
/// sooner is a bug; the upper bound only catches a close that never came
/// by itself, so it is generous for a loaded machine.
fn assert_closed_a_second_or_more_after(start: Instant) {
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1),
        "closed too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(15),
        "closed late: {elapsed:?}"
    );
}

/// Heartbeats every 100 ms or so keep a client connected for more than
/// twice the 1.2 s timeout; once they stop, the close comes one timeout
/// after the last of them, not one after the connection or HELLO_ACK.
#[test]
fn a_client_that_keeps_heartbeating_stays_connected() {
    let addr = start(fast_heartbeat());
    let mut client = connect_common(addr, 200);
    client.send_json(json!({"op": 1, "password": ""}));
    let started = Instant::now();
    let mut last_heartbeat = started;
    let mut beats = 0;
    // Each HEARTBEAT_ACK read here is one the server sent while the
    // client was connected: a close in between would fail the read.
    while started.elapsed() < Duration::from_millis(2600) {
        last_heartbeat = Instant::now();
        client.send_json(json!({"op": 2}));
        assert_eq!(client.recv_json(), json!({"op": 3}), "after {beats} beats");
        beats += 1;
        thread::sleep(Duration::from_millis(100)); // the heartbeat's pace
    }
    let r = call(&mut client, "hub.info", json!([]));
    assert_eq!(r["server"], "switchboard", "{r}");
    assert_eq!(r["members"]["common"], 1, "{r}");
    // The heartbeats stop: the timeout runs from the last one.
    assert_closed(&mut client, 4003, "heartbeat timeout");
    assert_closed_a_second_or_more_after(last_heartbeat);
}

// ---------------------------------------------------------------------------
// REQUEST / RESPONSE
// ---------------------------------------------------------------------------

#[test]
fn the_nonce_is_echoed_verbatim_whatever_its_json_type() {
    let addr = start(config());
    let mut client = common(addr);
    let nonces = [
        "1",
        "0",
        "-7",
        "1.5",
        "1.50",
        "1e3",
        "-0",
        "123456789012345678901234567890",
        "18446744073709551616",
        r#""abc""#,
        r#""""#,
        r#""caf\u00e9 é \"q\"""#,
        "null",
        "true",
        "false",
        "[]",
        r#"[1,"x",null,2.5]"#,
        "{}",
        r#"{"k":[1,2],"s":"v"}"#,
        r#"{"k" : [1, 2]}"#,
        r#"{"a":{"b":{"c":[[[{"d":[null]}]]]}}}"#,
    ];
    for (i, nonce) in nonces.iter().enumerate() {
        client.send_text(&format!(
            r#"{{"op":4,"w":"hub.topics","a":[],"n":{nonce}}}"#
        ));
        let text = match client.recv() {
            Message::Text(text) => text.to_string(),
            other => panic!("nonce {nonce}: expected a RESPONSE, got {other:?}"),
        };
        assert!(
            text.contains(&format!(r#""n":{nonce}"#)),
            "nonce {nonce} not echoed verbatim: {text}"
        );
        let response: Value = serde_json::from_str(&text).unwrap();
        let sent: Value = serde_json::from_str(nonce).unwrap();
        assert_eq!(response["op"], 5, "{text}");
        assert_eq!(response["n"], sent, "{text}");
        assert_eq!(response["r"], json!([]), "{text}");
        assert_eq!(response.as_object().unwrap().len(), 3, "{text}");
        // Interleave a plain request: nothing else was queued.
        let r = request(&mut client, "hub.topics", json!([]), json!(i));
        assert_eq!(r, json!([]));
    }
}

#[test]
fn whitespace_around_the_nonce_is_not_part_of_it() {
    let addr = start(config());
    let mut client = common(addr);
    client.send_text("{\"op\":4,\"w\":\"hub.topics\",\"a\":[],\"n\" :\n\t 7 \r\n}");
    let text = match client.recv() {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a RESPONSE, got {other:?}"),
    };
    assert!(text.contains(r#""n":7,"#), "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"op": 5, "n": 7, "r": []})
    );
}

#[test]
fn responses_come_back_in_order_with_their_nonces() {
    let addr = start(config());
    let mut client = common(addr);
    for i in 0..20 {
        client.send_json(json!({"op": 4, "w": "hub.topics", "a": [], "n": i}));
    }
    for i in 0..20 {
        let response = client.recv_json();
        assert_eq!(response, json!({"op": 5, "n": i, "r": []}));
    }
}

#[test]
fn an_unknown_method_is_answered_with_unknown_method() {
    let addr = start(config());
    let mut client = common(addr);
    for w in ["nope", "", "hub.nope", "HUB.INFO", "math.add"] {
        let r = request(&mut client, w, json!([1, 2]), json!(w));
        assert_rpc_error(&r, "unknown_method");
    }
    // With embedder methods registered too.
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    let r = call(&mut client, "math.nope", json!([]));
    assert_rpc_error(&r, "unknown_method");
    assert_idle(&mut client);
}

// ---------------------------------------------------------------------------
// Built-in methods
// ---------------------------------------------------------------------------

#[test]
fn hub_info_describes_the_server() {
    let addr = start(config());
    let mut client = common(addr);
    let r = call(&mut client, "hub.info", json!([]));
    assert_eq!(r["server"], "switchboard", "{r}");
    assert_eq!(r["version"], env!("CARGO_PKG_VERSION"), "{r}");
    let uptime = r["uptime_s"].as_u64().unwrap_or_else(|| panic!("{r}"));
    assert!(uptime < 120, "{r}");
    assert_eq!(r["topics"], 0, "{r}");
    let members = r["members"].as_object().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(members["common"], 1, "{r}");
    assert_eq!(members["channels"], 0, "{r}");
    assert_eq!(members["concierge"], 0, "{r}");
    assert!(members.values().all(Value::is_u64), "{r}");

    let (_listener, _) = listener(addr, "room", "");
    let mut other = common(addr);
    let r = call(&mut other, "hub.info", json!([]));
    assert_eq!(r["topics"], 1, "{r}");
    assert_eq!(r["members"]["common"], 2, "{r}");
    assert_eq!(r["members"]["channels"], 1, "{r}");
}

#[test]
fn hub_topics_lists_every_topic_with_its_owner_and_subscriber_count() {
    let addr = start(config());
    let mut client = common(addr);
    assert_eq!(call(&mut client, "hub.topics", json!([])), json!([]));
    let (_first, _) = listener(addr, "room", "");
    let r = call(&mut client, "hub.topics", json!([]));
    assert_eq!(
        r,
        json!([{"name": "room", "owner": null, "subscribers": 1}])
    );
    let (_second, _) = listener(addr, "room", "");
    let r = call(&mut client, "hub.topics", json!([]));
    assert_eq!(
        r,
        json!([{"name": "room", "owner": null, "subscribers": 2}])
    );
}

#[test]
fn hub_clients_lists_every_member_sorted_by_name_including_the_caller() {
    let addr = start(config());
    let mut client = common(addr);
    let r = call(&mut client, "hub.clients", json!([]));
    let clients = r.as_array().unwrap_or_else(|| panic!("{r}"));
    assert_eq!(clients.len(), 1, "{r}");
    let me = &clients[0];
    let name = me["name"].as_str().unwrap();
    assert!(is_token(name, "common_"), "{r}");
    assert!(is_v4_uuid(me["uuid"].as_str().unwrap()), "{r}");
    assert_eq!(
        *me,
        json!({"name": name, "uuid": me["uuid"], "dialect": "common", "tags": ["common"]})
    );

    let (_listener, listener_id) = listener(addr, "room", "");
    let mut other = common(addr);
    let r = call(&mut other, "hub.clients", json!([]));
    let clients = r.as_array().unwrap();
    assert_eq!(clients.len(), 3, "{r}");
    let names: Vec<&str> = clients
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "not sorted by name: {r}");
    assert!(names.contains(&name), "{r}");
    let listed = clients
        .iter()
        .find(|c| c["name"] == listener_id.as_str())
        .unwrap_or_else(|| panic!("no {listener_id} in {r}"));
    assert_eq!(listed["dialect"], "channels", "{r}");
    let commons: Vec<&Value> = clients
        .iter()
        .filter(|c| c["dialect"] == "common")
        .collect();
    assert_eq!(commons.len(), 2, "{r}");
    for c in commons {
        assert_eq!(c["tags"], json!(["common"]), "{r}");
        assert!(is_token(c["name"].as_str().unwrap(), "common_"), "{r}");
    }
    let uuids: std::collections::BTreeSet<&str> = clients
        .iter()
        .map(|c| c["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(uuids.len(), 3, "uuids are not unique: {r}");
}

#[test]
fn hub_presence_lists_a_topics_members_with_their_presence() {
    let addr = start(config());
    let mut client = common(addr);
    let (_listener, id) = listener(addr, "room", "?user=ann&x=1");
    let r = call(&mut client, "hub.presence", json!(["room"]));
    assert_eq!(
        r,
        json!([{"name": id, "presence": {"user": "ann", "x": "1"}}])
    );

    let r = call(&mut client, "hub.presence", json!(["nowhere"]));
    assert_rpc_error(&r, "no_such_topic");
    for args in [
        json!([]),
        json!([5]),
        json!([null]),
        json!([["room"]]),
        json!([""]),
    ] {
        let r = call(&mut client, "hub.presence", args.clone());
        assert_rpc_error(&r, "invalid_args");
    }
    assert_idle(&mut client);
}

#[test]
fn hub_publish_reaches_the_topics_listeners_with_the_callers_origin() {
    let addr = start(config());
    let mut client = common(addr);
    let (name, uuid) = only_common_identity(&mut client);
    let (mut listener, id) = listener(addr, "room", "");

    let r = call(&mut client, "hub.publish", json!(["room", {"x": 1}]));
    let event_id = r["eventID"].as_str().unwrap_or_default().to_string();
    assert!(is_token(&event_id, "evt_"), "{r}");
    assert_eq!(r, json!({"eventID": event_id, "delivered": 1}));

    let data = listener.recv_json();
    assert_eq!(
        data,
        json!({
            "type": "DATA",
            "payload": {"x": 1},
            "eventID": event_id,
            "clientID": id,
            "latency": 0,
            "origin": {"clientID": name, "uuid": uuid},
        })
    );

    let r = call(&mut client, "hub.publish", json!(["empty-topic", "hi"]));
    assert!(
        is_token(r["eventID"].as_str().unwrap_or_default(), "evt_"),
        "{r}"
    );
    assert_eq!(r["delivered"], 0, "{r}");
    assert_eq!(r.as_object().unwrap().len(), 2, "{r}");

    for args in [json!([]), json!([7, "x"]), json!([""])] {
        let r = call(&mut client, "hub.publish", args);
        assert_rpc_error(&r, "invalid_args");
    }
}

// ---------------------------------------------------------------------------
// DISPATCH
// ---------------------------------------------------------------------------

#[test]
fn dispatch_runs_the_method_and_answers_nothing() {
    let addr = start(config());
    let mut client = common(addr);
    let (mut listener, _) = listener(addr, "room", "");

    client.send_json(json!({"op": 6, "w": "hub.publish", "a": ["room", "via dispatch"]}));
    let data = listener.recv_json();
    assert_eq!(data["type"], "DATA", "{data}");
    assert_eq!(data["payload"], "via dispatch", "{data}");

    // An unknown method dispatched is not answered either, nor closed.
    client.send_json(json!({"op": 6, "w": "no.such", "a": []}));
    client.send_json(json!({"op": 6, "w": "hub.info", "a": []}));

    // The next frame is this request's response.
    let r = request(&mut client, "hub.topics", json!([]), json!("after"));
    assert_eq!(r[0]["name"], "room", "{r}");
}

// ---------------------------------------------------------------------------
// Embedder methods
// ---------------------------------------------------------------------------

#[test]
fn an_embedders_method_gets_the_caller_and_the_arguments() {
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    let (name, uuid) = only_common_identity(&mut client);
    let r = call(&mut client, "math.add", json!([2, 3]));
    assert_eq!(
        r,
        json!({
            "sum": 5,
            "is_common": true,
            "dialect": "common",
            "name": name,
            "uuid": uuid,
            "user": null,
        })
    );
    assert!(name.starts_with("common_"), "{name}");

    // Arguments arrive as the `a` array, untouched.
    let args = json!([1, "two", {"three": [3.5, null, true]}, [], {}]);
    assert_eq!(call(&mut client, "test.echo", args.clone()), args);
    assert_eq!(call(&mut client, "test.echo", json!([])), json!([]));
}

#[test]
fn an_embedders_error_is_answered_with_its_code_and_message() {
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    let r = call(&mut client, "test.fail", json!([]));
    assert_eq!(r, json!({"error": {"code": "bad", "message": "nope"}}));
    let r = call(&mut client, "math.add", json!(["x", 1]));
    assert_eq!(r, json!({"error": {"code": "bad", "message": "x"}}));
}

#[test]
fn a_method_that_panics_is_answered_internal_and_the_server_goes_on() {
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    // More panics than workers: each worker survives its panic.
    for i in 0..6 {
        let r = request(&mut client, "test.panic", json!([]), json!(i));
        assert_rpc_error(&r, "internal");
    }
    let r = call(&mut client, "math.add", json!([40, 2]));
    assert_eq!(r["sum"], 42, "{r}");
    let mut other = common(addr);
    let r = call(&mut other, "math.add", json!([1, 1]));
    assert_eq!(r["sum"], 2, "{r}");
    assert_idle(&mut client);
}

#[test]
fn a_slow_method_does_not_block_other_clients() {
    let addr = start_with_methods(no_gate());
    let mut slow = common(addr);
    let mut fast = common(addr);
    assert_idle(&mut fast);

    let sent = Instant::now();
    slow.send_json(json!({"op": 4, "w": "test.slow", "a": [], "n": "slow"}));
    // Same connection, in order: once this is answered, the slow call has
    // been handed to a worker, and the router is not waiting for it.
    slow.send_json(json!({"op": 4, "w": "hub.info", "a": [], "n": "info"}));
    let first = slow.recv_json();
    assert_eq!(
        first["n"], "info",
        "the slow call held up its own connection: {first}"
    );
    let waiter = thread::spawn(move || {
        let response = slow.recv_json();
        (response, Instant::now())
    });

    let r = request(&mut fast, "hub.info", json!([]), json!("fast"));
    let fast_answered = Instant::now();
    assert_eq!(r["server"], "switchboard", "{r}");

    let (response, slow_answered) = waiter.join().unwrap();
    assert_eq!(response, json!({"op": 5, "n": "slow", "r": "slow"}));
    assert!(
        fast_answered < slow_answered,
        "the fast reply came after the slow one"
    );
    assert!(
        slow_answered - sent >= Duration::from_secs(1),
        "the slow method did not take its second"
    );
}

#[test]
fn a_blocked_method_delays_only_its_own_answer() {
    let gate = no_gate();
    let addr = start_with_methods(gate.clone());
    let mut blocked = common(addr);
    let mut other = common(addr);

    blocked.send_json(json!({"op": 4, "w": "test.gated", "a": [], "n": "gated"}));
    blocked.send_json(json!({"op": 4, "w": "hub.topics", "a": [], "n": "topics"}));
    assert_eq!(
        blocked.recv_json(),
        json!({"op": 5, "n": "topics", "r": []})
    );
    // While the method is still running: built-ins and other methods, for
    // another client and for the same one, are answered.
    assert_eq!(call(&mut other, "hub.topics", json!([])), json!([]));
    assert_eq!(call(&mut other, "math.add", json!([1, 2]))["sum"], 3);
    assert_eq!(call(&mut blocked, "math.add", json!([2, 2]))["sum"], 4);

    {
        let (lock, released) = &*gate;
        *lock.lock().unwrap() = true;
        released.notify_all();
    }
    assert_eq!(
        blocked.recv_json(),
        json!({"op": 5, "n": "gated", "r": {"released": true}})
    );
}

#[test]
fn a_dispatched_embedders_method_runs_and_answers_nothing() {
    let counted: Arc<Mutex<Vec<Value>>> = Arc::default();
    let addr = start_counting(no_gate(), counted.clone());
    let mut client = common(addr);
    client.send_json(json!({"op": 6, "w": "test.count", "a": ["first"]}));
    client.send_json(json!({"op": 6, "w": "test.fail", "a": []}));
    client.send_json(json!({"op": 6, "w": "test.panic", "a": []}));
    client.send_json(json!({"op": 6, "w": "test.count", "a": ["second"]}));
    wait_until("both dispatches to run", || {
        counted.lock().unwrap().len() == 2
    });
    // The pool's workers run them side by side: in either order.
    let mut ran = counted.lock().unwrap().clone();
    ran.sort_by_key(std::string::ToString::to_string);
    assert_eq!(ran, vec![json!(["first"]), json!(["second"])]);
    // No answer to any of them: the next frame answers this request.
    let r = request(&mut client, "test.count", json!(["third"]), json!("n"));
    assert_eq!(r, json!(3));
    assert_idle(&mut client);
}

#[test]
fn the_answer_for_a_client_that_left_is_dropped() {
    let gate = no_gate();
    let addr = start_with_methods(gate.clone());
    let mut stays = common(addr);
    let mut leaves = common(addr);
    leaves.send_json(json!({"op": 4, "w": "test.gated", "a": [], "n": "gated"}));
    leaves.send_json(json!({"op": 4, "w": "hub.topics", "a": [], "n": "topics"}));
    assert_eq!(leaves.recv_json(), json!({"op": 5, "n": "topics", "r": []}));
    leaves.vanish();
    wait_until("the leaver to be gone", || {
        call(&mut stays, "hub.info", json!([]))["members"]["common"] == 1
    });
    {
        let (lock, released) = &*gate;
        *lock.lock().unwrap() = true;
        released.notify_all();
    }
    // The method returns into the void; the server and its workers go on.
    for i in 0..8 {
        let r = request(&mut stays, "math.add", json!([i, 1]), json!(i));
        assert_eq!(r["sum"], i + 1, "{r}");
    }
    assert_idle(&mut stays);
}

#[test]
fn built_in_methods_win_over_registered_ones_of_the_same_name() {
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    let r = call(&mut client, "hub.info", json!([]));
    assert_eq!(r["server"], "switchboard", "{r}");
    assert_eq!(r["members"]["common"], 1, "{r}");
}

// ---------------------------------------------------------------------------
// What a client may not send
// ---------------------------------------------------------------------------

#[test]
fn undecodable_payloads_close_with_1007() {
    let addr = start(config());
    let mut bystander = common(addr);
    assert_idle(&mut bystander);
    for text in [
        "not json",
        "",
        "{",
        "[1,2]",
        "\"op\"",
        "42",
        "null",
        "{}",
        r#"{"w":"hub.info","a":[],"n":1}"#,
        r#"{"op":"4","w":"hub.info","a":[],"n":1}"#,
        r#"{"op":4.5,"w":"hub.info","a":[],"n":1}"#,
        r#"{"op":2.0}"#,
        r#"{"op":null}"#,
        r#"{"op":[4]}"#,
        r#"{"op":4,"w":"hub.info","a":[]}"#,
        r#"{"op":4,"a":[],"n":1}"#,
        r#"{"op":4,"w":7,"a":[],"n":1}"#,
        r#"{"op":4,"w":"hub.info","n":1}"#,
        r#"{"op":4,"w":"hub.info","a":{},"n":1}"#,
        r#"{"op":4,"w":"hub.info","a":"x","n":1}"#,
        r#"{"op":4,"w":"hub.info","a":null,"n":1}"#,
        r#"{"op":6,"a":[]}"#,
        r#"{"op":6,"w":"hub.info"}"#,
        r#"{"op":6,"w":"hub.info","a":5}"#,
        r#"{"op":2} trailing"#,
    ] {
        let mut client = common(addr);
        client.send_text(text);
        assert_closed(&mut client, 1007, text);
    }
    // Before HELLO_ACK too.
    let mut client = connect_common(addr, 20_000);
    client.send_text("not json");
    assert_closed(&mut client, 1007, "not JSON before HELLO_ACK");

    assert_idle(&mut bystander);
}

#[test]
fn unknown_or_server_ops_and_a_second_hello_ack_close_with_1008() {
    let addr = start(config());
    let mut bystander = common(addr);
    for text in [
        r#"{"op":9}"#,
        r#"{"op":7}"#,
        r#"{"op":-1}"#,
        r#"{"op":0}"#,
        r#"{"op":0,"hb_interval":1}"#,
        r#"{"op":3}"#,
        r#"{"op":5,"n":1,"r":[]}"#,
        r#"{"op":1,"password":""}"#,
    ] {
        let mut client = common(addr);
        client.send_text(text);
        assert_closed(&mut client, 1008, text);
    }
    // A second HELLO_ACK after some traffic, and with a secret.
    let secret_addr = start(Config {
        secret: Some("pw".into()),
        ..config()
    });
    let mut client = connect_common(secret_addr, 20_000);
    client.send_json(json!({"op": 1, "password": "pw"}));
    assert_idle(&mut client);
    client.send_json(json!({"op": 1, "password": "pw"}));
    assert_closed(&mut client, 1008, "second HELLO_ACK");

    assert_idle(&mut bystander);
}

#[test]
fn a_binary_frame_closes_with_1003() {
    let addr = start(config());
    let mut bystander = common(addr);
    let mut client = common(addr);
    client
        .ws
        .send(Message::binary(br#"{"op":2}"#.to_vec()))
        .unwrap();
    assert_closed(&mut client, 1003, "binary frame");

    // Before HELLO_ACK too.
    let mut client = connect_common(addr, 20_000);
    client.ws.send(Message::binary(vec![0u8, 1, 2])).unwrap();
    assert_closed(&mut client, 1003, "binary frame before HELLO_ACK");

    assert_idle(&mut bystander);
}

#[test]
fn closing_one_client_leaves_the_others_and_the_members_count() {
    let addr = start(config());
    let mut stays = common(addr);
    let leaves = common(addr);
    let mut rude = common(addr);
    rude.send_text("garbage");
    assert_closed(&mut rude, 1007, "garbage");
    leaves.close();
    wait_until("the members to be counted", || {
        call(&mut stays, "hub.info", json!([]))["members"]["common"] == 1
    });
    assert_eq!(
        call(&mut stays, "hub.clients", json!([]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------

fn nested_array(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deeply_nested_arguments_work() {
    let addr = start(config());
    let mut client = common(addr);
    // `a` itself is the outermost of 100 levels.
    let a = nested_array(100);
    client.send_text(&format!(r#"{{"op":4,"w":"hub.topics","a":{a},"n":1}}"#));
    assert_eq!(client.recv_json(), json!({"op": 5, "n": 1, "r": []}));

    // And through an embedder's method, which gets (and returns) them whole.
    let addr = start_with_methods(no_gate());
    let mut client = common(addr);
    client.send_text(&format!(r#"{{"op":4,"w":"test.echo","a":{a},"n":2}}"#));
    let text = match client.recv() {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a RESPONSE, got {other:?}"),
    };
    assert_eq!(text, format!(r#"{{"op":5,"n":2,"r":{a}}}"#));
}

#[test]
fn absurdly_nested_arguments_are_refused_without_harm() {
    let addr = start(config());
    let mut bystander = common(addr);
    let mut client = common(addr);
    let a = nested_array(100_000);
    client.send_text(&format!(r#"{{"op":4,"w":"hub.topics","a":{a},"n":1}}"#));
    assert_closed(&mut client, 1007, "100,000 levels");

    // A nonce nested as deep is only carried, never parsed into a tree:
    // it may be echoed or refused, but the server survives it.
    let mut client = common(addr);
    client.send_text(&format!(r#"{{"op":4,"w":"hub.topics","a":[],"n":{a}}}"#));
    match client.recv() {
        Message::Text(text) => {
            let echoed = text.as_str() == format!(r#"{{"op":5,"n":{a},"r":[]}}"#);
            assert!(echoed, "a response, but not the nonce echoed");
        }
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1007, "{}", frame.reason);
        }
        other => panic!("expected a response or a close, got {other:?}"),
    }

    assert_idle(&mut bystander);
    let mut newcomer = common(addr);
    assert_idle(&mut newcomer);
}

/// One client may have 16 calls of embedder methods running: the 17th is
/// answered `busy` at once, and the others still complete.
#[test]
fn a_client_with_sixteen_calls_running_gets_busy_for_more() {
    let gate = no_gate();
    let addr = start_with_methods(gate.clone());
    let mut client = common(addr);
    for n in 0..17 {
        client.send_json(json!({"op": 4, "w": "test.gated", "a": [], "n": n}));
    }
    let refused = client.recv_json();
    assert_eq!(refused["n"], 16, "{refused}");
    assert_rpc_error(&refused["r"], "busy");
    // Another client is not limited by this one's calls.
    let mut other = common(addr);
    other.send_json(json!({"op": 4, "w": "test.echo", "a": [1], "n": "x"}));
    let (lock, released) = &*gate;
    *lock.lock().unwrap() = true;
    released.notify_all();
    assert_eq!(other.recv_json()["r"], json!([1]));
    let mut answered: Vec<i64> = (0..16)
        .map(|_| client.recv_json()["n"].as_i64().unwrap())
        .collect();
    answered.sort();
    assert_eq!(answered, (0..16).collect::<Vec<i64>>());
}
