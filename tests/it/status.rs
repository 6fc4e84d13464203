//! End-to-end tests of the live status page (docs/demos.md, "See it"): `GET /`
//! for browsers, the plain list of endpoints for everyone else, and the
//! reserved channel `$sys` that the page listens to, which carries the
//! router's snapshots and refuses every client's publish.

use crate::support::*;
use serde_json::{json, Value};

/// A `$sys` listener, past its CONNECTED.
fn sys_listener(addr: std::net::SocketAddr) -> Client {
    Client::listen(addr, "/$sys/listen").0
}

/// Snapshots until one satisfies `wanted` (they come about once a second).
fn snapshot_where(client: &mut Client, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let snapshot = client.next_data();
        if wanted(&snapshot) {
            return snapshot;
        }
    }
}

#[test]
fn browsers_get_the_page_and_others_the_endpoint_list() {
    let addr = start(config());
    let page = http(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html,application/xhtml+xml,*/*;q=0.8\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Content-Type: text/html"), "{page}");
    assert!(page.contains("/status.js"), "{page}");

    let script = get(addr, "/status.js");
    assert!(script.starts_with("HTTP/1.1 200"), "{script}");
    assert!(script.contains("text/javascript"), "{script}");
    // The WebSocket URL logic: the page's own host, ws or wss by scheme.
    assert!(script.contains("\"/$sys/listen\""), "{script}");
    assert!(script.contains("location.host"), "{script}");
    assert!(script.contains("\"wss://\""), "{script}");
    let style = get(addr, "/status.css");
    assert!(style.contains("text/css"), "{style}");

    for list in [get(addr, "/"), get(addr, "/endpoints")] {
        assert!(list.starts_with("HTTP/1.1 200"), "{list}");
        assert!(list.contains("text/plain"), "{list}");
        assert!(list.contains("GET /healthz"), "{list}");
    }
}

#[test]
fn sys_listeners_see_connections_and_moving_counters() {
    let addr = start(config());
    let mut sys = sys_listener(addr);
    let first = sys.next_data();
    assert_eq!(first["connections"]["concierge"], 0, "{first}");
    assert_eq!(first["version"], env!("CARGO_PKG_VERSION"), "{first}");
    assert!(first["uptime_s"].is_u64(), "{first}");
    assert!(first["slow_consumers"].is_u64(), "{first}");
    assert!(first["documents"].is_array(), "{first}");
    let sys_topic = json!({"name": "$sys", "subscribers": 1});
    assert!(
        first["topics"].as_array().unwrap().contains(&sys_topic),
        "{first}"
    );

    let mut ann = Concierge::join(addr, "ann");
    let seen = snapshot_where(&mut sys, |s| s["connections"]["concierge"] == 1);
    let before_in = seen["messages"]["in"].as_u64().unwrap();
    let before_out = seen["messages"]["out"].as_u64().unwrap();

    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    ann.ask(json!({"type": "SELF_FETCH"}));
    let moved = snapshot_where(&mut sys, |s| {
        s["messages"]["in"].as_u64().unwrap() > before_in
            && s["messages"]["out"].as_u64().unwrap() > before_out
    });
    let topics = moved["topics"].as_array().unwrap();
    assert!(topics.iter().any(|t| t["name"] == "g"), "{moved}");
}

#[test]
fn emits_to_sys_are_refused() {
    let addr = start(config());
    let _sys = sys_listener(addr);
    for path in ["/$sys/emit?x=1", "/%24sys/emit?x=1"] {
        let answer = get(addr, path);
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("RESERVED_CHANNEL"), "{answer}");
        assert!(answer.contains("only the server publishes"), "{answer}");
    }
}

#[test]
fn concierge_messages_to_sys_are_refused() {
    let addr = start(config());
    let mut sys = sys_listener(addr);
    let mut ann = Concierge::join(addr, "ann");
    let status = ann.ask(json!({
        "type": "MESSAGE",
        "target": {"type": "GROUP", "group": "$sys"},
        "data": {"forged": true},
    }));
    assert_eq!(status["type"], "STATUS", "{status}");
    assert_eq!(status["code"], "BAD", "{status}");
    assert!(
        status["desc"].as_str().unwrap().contains("reserved"),
        "{status}"
    );
    // Concierge cannot make a group of that name either.
    let create = ann.ask(json!({"type": "GROUP_CREATE", "name": "$sys"}));
    assert_eq!(create["type"], "STATUS", "{create}");
    assert_ne!(create["code"], "GROUP_CREATED", "{create}");
    // The listener hears only snapshots, never the forged data.
    for _ in 0..2 {
        let snapshot = sys.next_data();
        assert!(snapshot.get("forged").is_none(), "{snapshot}");
    }
}

#[test]
fn common_publishes_to_sys_are_refused() {
    let addr = start(config());
    let _sys = sys_listener(addr);
    let mut client = Client::connect(addr, "/ws/common");
    client.recv_json(); // HELLO
    client.send_json(json!({"op": 1, "password": ""}));
    client.send_json(json!({"op": 4, "w": "hub.publish", "a": ["$sys", {"x": 1}], "n": 1}));
    let response = loop {
        let frame = client.recv_json();
        if frame["op"] == 5 {
            break frame;
        }
    };
    assert_eq!(response["r"]["error"]["code"], "forbidden", "{response}");
}
