// websockets.do's own client against switchboard (issue 18): what
// drivly/websockets.do's `websockets.js` and its users send, byte for byte
// (it sends `JSON.stringify` of the objects it is given, and flushes what
// was queued the moment the socket opens), and what they read. The type
// names are the original server's (`presence`, `pong`, `ack`, in lower
// case: it lowercased every type); the emits are its HTTP API's
// (`/<channel>/emit` with `clients=` and `require-ack`), whose answer it
// read as `{"success": true}`.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard::Config;

use crate::support::*;

/// A websockets.js `Websocket` on `/<channel>/listen`, before CONNECTED.
struct Original {
    client: Client,
    /// Its clientID, once CONNECTED told it.
    id: String,
}

impl Original {
    /// Connects to `path` (the URL an app gives websockets.js, `ws:` made
    /// `http:`; the runtime does the upgrade).
    fn open(addr: SocketAddr, path: &str) -> Original {
        Original {
            client: Client::connect(addr, path),
            id: String::new(),
        }
    }

    /// Connects and reads CONNECTED; returns it and its `members`.
    fn join(addr: SocketAddr, channel: &str) -> (Original, Value) {
        let mut original = Original::open(addr, &format!("/{channel}/listen"));
        let members = original.connected();
        (original, members)
    }

    /// Reads CONNECTED, learns its clientID; returns the members.
    fn connected(&mut self) -> Value {
        let connected = self.client.recv_json();
        assert_eq!(connected["type"], "CONNECTED", "{connected}");
        let id = connected["clientID"].as_str().unwrap_or_default();
        assert!(is_token(id, "client_"), "{connected}");
        assert_eq!(connected["latency"], 0, "{connected}");
        self.id = id.to_string();
        connected["payload"]["members"].clone()
    }

    /// `socket.send(JSON.stringify(...))`: exactly these bytes.
    fn send(&mut self, text: &str) {
        self.client.send_text(text);
    }

    /// The next frame but PINGs, which are answered as a websockets.do
    /// app answers them: `{"type":"pong"}`. Every frame names this client.
    fn recv(&mut self) -> Value {
        loop {
            let frame = self.client.recv_json();
            assert_eq!(frame["clientID"], self.id.as_str(), "{frame}");
            assert!(frame["latency"].is_u64(), "{frame}");
            if frame["type"] != "PING" {
                return frame;
            }
            self.send(r#"{"type":"pong"}"#);
        }
    }

    /// Asserts the next frame is a presence event of `kind` about `who`
    /// with `presence` (none for PRESENCE:LEFT).
    #[track_caller]
    fn expect_presence(&mut self, kind: &str, who: &str, presence: Option<Value>) {
        let frame = self.recv();
        let mut payload = json!({"clientID": who});
        if let Some(presence) = presence {
            payload["presence"] = presence;
        }
        let expected = json!({"type": kind, "payload": payload, "clientID": self.id, "latency": frame["latency"]});
        assert_eq!(frame, expected);
    }

    /// Asserts the next frame is the DATA of `event_id` with `payload`;
    /// returns it.
    #[track_caller]
    fn expect_data(&mut self, payload: Value, event_id: &str) -> Value {
        let frame = self.recv();
        assert_eq!(frame["type"], "DATA", "{frame}");
        assert_eq!(frame["payload"], payload, "{frame}");
        assert_eq!(frame["eventID"], event_id, "{frame}");
        frame
    }
}

/// An HTTP answer's status and JSON body.
fn answer(raw: &str) -> (u16, Value) {
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {raw:?}"));
    (status, body)
}

/// `GET path`, answered.
fn emit_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    answer(&get(addr, path))
}

/// `GET path` on its own thread, for emits that wait for ACKs.
fn emit_waiting(addr: SocketAddr, path: String) -> JoinHandle<(u16, Value)> {
    std::thread::spawn(move || answer(&get(addr, &path)))
}

/// Asserts a 200 answer with the original's `success` and today's fields;
/// returns the eventID.
#[track_caller]
fn assert_success(status: u16, body: &Value, clients: &[&str]) -> String {
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["targeted"], clients.len(), "{body}");
    let mut got: Vec<&str> = body["clients"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    got.sort();
    let mut want = clients.to_vec();
    want.sort();
    assert_eq!(got, want, "{body}");
    let event_id = body["eventID"].as_str().unwrap_or_default();
    assert!(is_token(event_id, "evt_"), "{body}");
    event_id.to_string()
}

#[test]
fn websockets_js_sends_its_queued_presence_at_open_and_everyone_hears_it_the_updater_too() {
    let addr = start(config());
    // An app calls `ws.send({type: "presence", ...})` before the socket is
    // open; websockets.js flushes its queue right after the upgrade, before
    // it has read anything.
    let mut ann = Original::open(addr, "/garden/listen");
    ann.send(r#"{"type":"presence","payload":{"username":"Cerulean"}}"#);
    assert_eq!(ann.connected(), json!([]));
    let cerulean = json!({"username": "Cerulean"});
    let ann_id = ann.id.clone();
    ann.expect_presence("PRESENCE:UPDATED", &ann_id, Some(cerulean.clone()));

    // A second client sees Ann with her presence; Ann sees it join.
    let (mut bob, members) = Original::join(addr, "garden");
    assert_eq!(
        members,
        json!([{"clientID": ann.id, "presence": {"username": "Cerulean"}}])
    );
    let bob_id = bob.id.clone();
    ann.expect_presence("PRESENCE:JOINED", &bob_id, Some(json!({})));

    // Bob's update reaches both, each frame addressed to its reader (the
    // document's example: the updater's own clientID on both sides).
    bob.send(r#"{"type":"presence","payload":{"username":"Vermilion","status":"away"}}"#);
    let vermilion = json!({"username": "Vermilion", "status": "away"});
    for client in [&mut ann, &mut bob] {
        client.expect_presence("PRESENCE:UPDATED", &bob_id, Some(vermilion.clone()));
    }
    // Any case, and the document's own name, do the same.
    ann.send(r#"{"type":"Presence:Update","payload":{"username":"Azure"}}"#);
    for client in [&mut ann, &mut bob] {
        client.expect_presence(
            "PRESENCE:UPDATED",
            &ann_id,
            Some(json!({"username": "Azure"})),
        );
    }

    // A third sees both presences as they are now; Bob leaves.
    let (mut cy, members) = Original::join(addr, "garden");
    let mut members = members.as_array().cloned().unwrap_or_default();
    members.sort_by_key(|m| m["clientID"].as_str().map(str::to_string));
    let mut expected = vec![
        json!({"clientID": ann_id, "presence": {"username": "Azure"}}),
        json!({"clientID": bob_id, "presence": vermilion}),
    ];
    expected.sort_by_key(|m| m["clientID"].as_str().map(str::to_string));
    assert_eq!(members, expected);
    let cy_id = cy.id.clone();
    for client in [&mut ann, &mut bob] {
        client.expect_presence("PRESENCE:JOINED", &cy_id, Some(json!({})));
    }
    bob.client.close();
    for client in [&mut ann, &mut cy] {
        client.expect_presence("PRESENCE:LEFT", &bob_id, None);
    }
}

#[test]
fn lower_case_pongs_keep_a_listener_alive_and_measure_its_latency() {
    // Without a PONG that counts, a listener is dropped two intervals after
    // its first PING: six PINGs answered with the original's `pong` span
    // three of those deadlines.
    let addr = start(Config {
        ping_interval: Duration::from_millis(150),
        ..config()
    });
    let (mut listener, _) = Original::join(addr, "garden");
    for (round, pong) in ["pong", "pong", "Pong", "pong", "PONG", "pong"]
        .into_iter()
        .enumerate()
    {
        let frame = listener.client.recv_json();
        let expected = json!({"type": "PING", "payload": {}, "clientID": listener.id, "latency": frame["latency"]});
        assert_eq!(frame, expected, "round {round}");
        assert!(frame["latency"].is_u64(), "{frame}");
        listener.send(&format!(r#"{{"type":"{pong}"}}"#));
    }
    // Still listening: an emit reaches it.
    let (status, body) = emit_get(addr, "/garden/emit?still=here");
    let event_id = assert_success(status, &body, &[&listener.id]);
    listener.expect_data(json!({"still": "here"}), &event_id);
}

#[test]
fn get_and_post_emits_arrive_as_data_and_answer_success() {
    let addr = start(config());
    let (mut ann, _) = Original::join(addr, "garden");
    let (mut bob, _) = Original::join(addr, "garden");
    let bob_id = bob.id.clone();
    ann.expect_presence("PRESENCE:JOINED", &bob_id, Some(json!({})));

    // GET: the query parameters are the payload, as strings.
    let (status, body) = emit_get(addr, "/garden/emit?hello=world&n=1");
    let event_id = assert_success(status, &body, &[&ann.id, &bob.id]);
    for client in [&mut ann, &mut bob] {
        let frame = client.expect_data(json!({"hello": "world", "n": "1"}), &event_id);
        // The document's "at least 4 properties", and no ACK asked.
        for key in ["type", "payload", "eventID", "clientID"] {
            assert!(frame.get(key).is_some(), "{key} missing: {frame}");
        }
        assert!(frame.get("requires_ack").is_none(), "{frame}");
    }

    // POST: the JSON body, verbatim.
    let raw = http(
        addr,
        "POST /garden/emit HTTP/1.1\r\nHost: websockets.do\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"hello\":\"world\"}",
    );
    let (status, body) = answer(&raw);
    let event_id = assert_success(status, &body, &[&ann.id, &bob.id]);
    for client in [&mut ann, &mut bob] {
        client.expect_data(json!({"hello": "world"}), &event_id);
    }
}

#[test]
fn a_lower_case_ack_settles_a_targeted_emit_that_requires_it() {
    let addr = start(config());
    let (mut ann, _) = Original::join(addr, "garden");
    let (mut bob, _) = Original::join(addr, "garden");
    let bob_id = bob.id.clone();
    ann.expect_presence("PRESENCE:JOINED", &bob_id, Some(json!({})));

    // The values the original took as "yes" (it tested the string's
    // truthiness), each answered by the app's `{"type":"ack",...}`.
    for (round, value) in ["true", "1", "yes", "TRUE"].into_iter().enumerate() {
        let pending = emit_waiting(
            addr,
            format!(
                "/garden/emit?clients={}&require-ack={value}&job={round}",
                ann.id
            ),
        );
        let frame = ann.recv();
        assert_eq!(frame["type"], "DATA", "{frame}");
        assert_eq!(
            frame["payload"],
            json!({"job": round.to_string()}),
            "{frame}"
        );
        assert_eq!(frame["requires_ack"], true, "{value}: {frame}");
        let event_id = frame["eventID"].as_str().unwrap_or_default().to_string();
        ann.send(&format!(
            r#"{{"type":"ack","payload":{{"eventID":"{event_id}"}}}}"#
        ));
        let (status, body) = pending.join().expect("the emit thread");
        assert_eq!(assert_success(status, &body, &[&ann.id]), event_id);
        assert_eq!(body["acked"], json!([ann.id]), "{body}");
    }

    // `false` asks for nothing: the answer comes at once.
    let (status, body) = emit_get(
        addr,
        &format!("/garden/emit?clients={}&require-ack=false&job=x", ann.id),
    );
    let event_id = assert_success(status, &body, &[&ann.id]);
    assert!(body.get("acked").is_none(), "{body}");
    let frame = ann.expect_data(json!({"job": "x"}), &event_id);
    assert!(frame.get("requires_ack").is_none(), "{frame}");

    // Bob was never targeted: his next frame is a later broadcast.
    let (status, body) = emit_get(addr, "/garden/emit?to=all");
    let event_id = assert_success(status, &body, &[&ann.id, &bob.id]);
    bob.expect_data(json!({"to": "all"}), &event_id);
}

#[test]
fn clients_naming_an_id_that_left_reaches_the_others_and_names_it() {
    let addr = start(config());
    let (mut ann, _) = Original::join(addr, "garden");
    let (bob, _) = Original::join(addr, "garden");
    let bob_id = bob.id.clone();
    ann.expect_presence("PRESENCE:JOINED", &bob_id, Some(json!({})));
    // An app keeps the ids it heard of; Bob leaves meanwhile.
    bob.client.close();
    ann.expect_presence("PRESENCE:LEFT", &bob_id, None);

    let path = format!("/garden/emit?clients={},{bob_id}&msg=hi", ann.id);
    let (status, body) = emit_get(addr, &path);
    let event_id = assert_success(status, &body, &[&ann.id]);
    assert_eq!(body["unknown"], json!([bob_id]), "{body}");
    ann.expect_data(json!({"msg": "hi"}), &event_id);

    // An empty `clients=` is no targeting, as the original read it.
    let (status, body) = emit_get(addr, "/garden/emit?clients=&msg=all");
    let event_id = assert_success(status, &body, &[&ann.id]);
    ann.expect_data(json!({"msg": "all"}), &event_id);
}

#[test]
fn what_the_original_server_ignored_is_answered_with_an_error_and_the_listener_stays() {
    let addr = start(config());
    let (mut ann, _) = Original::join(addr, "garden");
    // websockets.js sends a string as it is, and any object an app gives
    // it; the original dropped what it could not use, silently. Here the
    // document's ERROR says why, and the connection goes on.
    for (text, code) in [
        ("hello", "INVALID_MESSAGE"),
        (r#"{"type":"chat","payload":{"text":"hi"}}"#, "UNKNOWN_TYPE"),
        (r#"{"type":"data","payload":{}}"#, "UNSUPPORTED_TYPE"),
    ] {
        ann.send(text);
        let frame = ann.recv();
        assert_eq!(frame["type"], "ERROR", "{text}: {frame}");
        assert_eq!(frame["payload"]["code"], code, "{text}: {frame}");
    }
    let (status, body) = emit_get(addr, "/garden/emit?after=errors");
    let event_id = assert_success(status, &body, &[&ann.id]);
    ann.expect_data(json!({"after": "errors"}), &event_id);
}

#[test]
fn listen_and_emit_take_a_trailing_slash() {
    let addr = start(config());
    let mut ann = Original::open(addr, "/garden/listen/");
    assert_eq!(ann.connected(), json!([]));
    let (status, body) = emit_get(addr, "/garden/emit/?slash=1");
    let event_id = assert_success(status, &body, &[&ann.id]);
    ann.expect_data(json!({"slash": "1"}), &event_id);
}
