//! End-to-end tests of the channels dialect (`protocols/channels.md`)
//! through real sockets: listeners on `/<channel>/listen` with presence and
//! PING/PONG, publishers on `/<channel>/emit` (targeting, ACKs, errors), and
//! the namespace that channels share with concierge groups.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::json::assert_same;
use crate::support::*;
use serde_json::{json, Value};
use switchboard::Config;
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The strings of a JSON array, sorted.
fn sorted_strings(value: &Value) -> Vec<String> {
    let mut items: Vec<String> = value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    items.sort();
    items
}

/// A channels listener that has received its CONNECTED frame.
struct Listener {
    client: Client,
    id: String,
}

impl Listener {
    /// Listens on `/<channel>/listen<query>` (`query` empty or starting with
    /// `?`); returns the listener and the `members` of its CONNECTED frame.
    fn join(addr: SocketAddr, channel: &str, query: &str) -> (Listener, Value) {
        let (client, connected) = Client::listen(addr, &format!("/{channel}/listen{query}"));
        let id = connected["clientID"].as_str().unwrap().to_string();
        assert!(is_token(&id, "client_"), "bad clientID: {connected}");
        assert_eq!(connected["latency"], 0, "{connected}");
        let payload = connected["payload"].as_object().unwrap();
        assert_eq!(payload.len(), 1, "{connected}");
        assert_eq!(connected.as_object().unwrap().len(), 4, "{connected}");
        let members = connected["payload"]["members"].clone();
        assert!(members.is_array(), "{connected}");
        (Listener { client, id }, members)
    }

    /// Listens and ignores the members.
    fn on(addr: SocketAddr, channel: &str) -> Listener {
        Listener::join(addr, channel, "").0
    }

    /// The next frame's text; it must name this listener and carry an
    /// integer latency.
    fn recv_text(&mut self) -> String {
        let text = match self.client.recv() {
            Message::Text(text) => text.to_string(),
            other => panic!("{}: expected a text frame, got {other:?}", self.id),
        };
        let frame: Value = serde_json::from_str(&text).expect("JSON from server");
        assert_eq!(frame["clientID"], self.id.as_str(), "{frame}");
        assert!(frame["latency"].is_u64(), "{frame}");
        text
    }

    /// The next frame, parsed.
    fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text()).unwrap()
    }

    /// The next frame that is not a PING; every PING is answered with PONG.
    fn recv_answering_pings(&mut self) -> Value {
        loop {
            let frame = self.recv();
            if frame["type"] != "PING" {
                return frame;
            }
            self.send(json!({"type": "PONG"}));
        }
    }

    fn send(&mut self, value: Value) {
        self.client.send_json(value);
    }

    /// The frame this listener gets for an event: `type`, `payload`, its
    /// own `clientID` and a latency of 0 (no PING yet).
    fn frame(&self, kind: &str, payload: Value) -> Value {
        json!({"type": kind, "payload": payload, "clientID": self.id, "latency": 0})
    }

    /// The DATA frame an emit of `payload` with `event_id` gives it.
    fn data(&self, payload: Value, event_id: &str) -> Value {
        json!({
            "type": "DATA",
            "payload": payload,
            "eventID": event_id,
            "clientID": self.id,
            "latency": 0,
        })
    }

    /// Asserts the next frame is exactly `expected`.
    #[track_caller]
    fn expect(&mut self, expected: Value) {
        let frame = self.recv();
        assert_same(&frame, &expected);
    }

    /// Asserts that nothing is queued for this listener: an unknown type
    /// sent now is refused by the very next frame.
    #[track_caller]
    fn assert_nothing_pending(&mut self) {
        self.send(json!({"type": "HELLO"}));
        let frame = self.recv();
        assert_eq!(frame["type"], "ERROR", "{} got: {frame}", self.id);
        assert_eq!(frame["payload"]["code"], "UNKNOWN_TYPE", "{frame}");
    }
}

/// A parsed HTTP response.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(raw: String) -> Reply {
        let (head, body) = raw
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response: {raw:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status: {raw:?}"));
        Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// The value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON; the response must say it is JSON.
    fn json(&self) -> Value {
        assert_eq!(
            self.header("Content-Type"),
            Some("application/json"),
            "{}",
            self.head
        );
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// `GET /<channel>/emit<query>`.
fn emit_get(addr: SocketAddr, channel: &str, query: &str) -> Reply {
    Reply::parse(get(addr, &format!("/{channel}/emit{query}")))
}

/// A raw POST of `body` to `target` with a Content-Length.
fn post_request(target: &str, body: &str) -> String {
    format!(
        "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `POST /<channel>/emit<query>` with `body`.
fn emit_post(addr: SocketAddr, channel: &str, query: &str, body: &str) -> Reply {
    Reply::parse(http(
        addr,
        &post_request(&format!("/{channel}/emit{query}"), body),
    ))
}

/// Starts `GET /<channel>/emit<query>` on its own thread, for emits that
/// wait for ACKs.
fn emit_in_background(addr: SocketAddr, channel: &str, query: &str) -> JoinHandle<Reply> {
    let path = format!("/{channel}/emit{query}");
    std::thread::spawn(move || Reply::parse(get(addr, &path)))
}

/// Asserts a 200 emit answer targeting exactly `clients`; returns its eventID.
#[track_caller]
fn assert_emitted(reply: &Reply, clients: &[&str]) -> String {
    assert_eq!(reply.status, 200, "{} {}", reply.head, reply.body);
    let body = reply.json();
    let event_id = body["eventID"].as_str().unwrap_or_default().to_string();
    assert!(is_token(&event_id, "evt_"), "bad eventID: {body}");
    assert_same(
        &body,
        &json!({"success": true, "eventID": event_id, "targeted": clients.len(), "clients": clients}),
    );
    event_id
}

/// Asserts an error answer: `status` and `{"success": false, "error":
/// <non-empty>, "code": code}`.
#[track_caller]
fn assert_http_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{} {}", reply.head, reply.body);
    let body = reply.json();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "extra fields: {body}");
}

/// Emits `{"round": n}` by POST to every listener of `channel` and checks
/// that each of `listeners` gets it as its very next frame.
#[track_caller]
fn emit_to_all_and_expect(
    addr: SocketAddr,
    channel: &str,
    listeners: &mut [&mut Listener],
    n: u64,
) {
    let payload = json!({"round": n});
    let ids: Vec<&str> = listeners.iter().map(|l| l.id.as_str()).collect();
    let reply = emit_post(addr, channel, "", &payload.to_string());
    let event_id = assert_emitted(&reply, &ids);
    for listener in listeners.iter_mut() {
        let expected = listener.data(payload.clone(), &event_id);
        listener.expect(expected);
    }
}

/// The uuid of the member named `name`, from a CLIENT_FETCH_ALL by `asker`.
fn uuid_of(asker: &mut Concierge, name: &str) -> String {
    asker.send(json!({"type": "CLIENT_FETCH_ALL"}));
    let result = asker.recv_until("CLIENT_FETCH_ALL_RESULT", None);
    result["clients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {result}"))["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts that nothing is queued for a concierge client.
#[track_caller]
fn assert_concierge_idle(client: &mut Concierge) {
    let reply = client.ask(json!({"type": "SELF_FETCH"}));
    assert_eq!(reply["type"], "SELF_FETCH_RESULT", "{reply}");
}

/// A concierge client's presence as listeners see it.
fn concierge_presence(client: &Concierge, tags: Value) -> Value {
    json!({
        "name": client.name,
        "nickname": null,
        "uuid": client.uuid,
        "tags": tags,
        "dialect": "concierge",
    })
}

// ---------------------------------------------------------------------------
// Listen: CONNECTED and client ids
// ---------------------------------------------------------------------------

#[test]
fn connected_lists_the_other_members_with_their_presence_from_the_query() {
    let addr = start(config());
    let (mut first, members) = Listener::join(addr, "room", "");
    assert_eq!(members, json!([]));

    let query = "?username=Cerulean&x=a%20b+c&utf8=%C3%A9&empty=";
    let (mut second, members) = Listener::join(addr, "room", query);
    assert_eq!(members, json!([{"clientID": first.id, "presence": {}}]));
    let presence = json!({"username": "Cerulean", "x": "a b c", "utf8": "é", "empty": ""});
    let expected = first.frame(
        "PRESENCE:JOINED",
        json!({"clientID": second.id, "presence": presence}),
    );
    first.expect(expected);

    let (third, members) = Listener::join(addr, "room", "?k=v");
    assert_same(
        &members,
        &json!([
            {"clientID": first.id, "presence": {}},
            {"clientID": second.id, "presence": presence},
        ]),
    );
    for listener in [&mut first, &mut second] {
        let expected = listener.frame(
            "PRESENCE:JOINED",
            json!({"clientID": third.id, "presence": {"k": "v"}}),
        );
        listener.expect(expected);
        listener.assert_nothing_pending();
    }
}

#[test]
fn client_ids_are_client_and_eight_token_characters_and_unique() {
    let addr = start(config());
    let mut ids = BTreeSet::new();
    let mut listeners = Vec::new();
    for i in 0..12 {
        // Half on one channel, half on others: ids are unique hub-wide.
        let channel = if i % 2 == 0 { "room" } else { "other" };
        let listener = Listener::on(addr, &format!("{channel}{}", i % 3));
        assert!(is_token(&listener.id, "client_"), "{}", listener.id);
        assert!(ids.insert(listener.id.clone()), "duplicate {}", listener.id);
        listeners.push(listener);
    }
    assert_eq!(ids.len(), 12);
}

#[test]
fn presence_joins_and_leaves_reach_the_other_listeners_and_updates_every_listener_of_the_channel() {
    let addr = start(config());
    let (mut outsider, members) = Listener::join(addr, "other", "?name=o");
    assert_eq!(members, json!([]));

    let (mut a, members) = Listener::join(addr, "room", "?name=a");
    assert_eq!(members, json!([]));
    let (mut b, members) = Listener::join(addr, "room", "?name=b");
    assert_eq!(
        members,
        json!([{"clientID": a.id, "presence": {"name": "a"}}])
    );
    let expected = a.frame(
        "PRESENCE:JOINED",
        json!({"clientID": b.id, "presence": {"name": "b"}}),
    );
    a.expect(expected);

    let (mut c, members) = Listener::join(addr, "room", "?name=c");
    assert_same(
        &members,
        &json!([
            {"clientID": a.id, "presence": {"name": "a"}},
            {"clientID": b.id, "presence": {"name": "b"}},
        ]),
    );
    let joined_c = json!({"clientID": c.id, "presence": {"name": "c"}});
    for listener in [&mut a, &mut b] {
        let expected = listener.frame("PRESENCE:JOINED", joined_c.clone());
        listener.expect(expected);
    }

    // B replaces (not merges) its presence; A and C hear, and so does B
    // (the document's PRESENCE:UPDATED names the updater as recipient).
    let away = json!({"status": "away", "score": 3, "nested": {"x": [1, null]}});
    b.send(json!({"type": "PRESENCE:UPDATE", "payload": away}));
    let updated = json!({"clientID": b.id, "presence": away});
    for listener in [&mut a, &mut b, &mut c] {
        let expected = listener.frame("PRESENCE:UPDATED", updated.clone());
        listener.expect(expected);
    }
    b.assert_nothing_pending();

    // A later joiner sees the updated presence.
    let (mut d, members) = Listener::join(addr, "room", "?name=d");
    assert_same(
        &members,
        &json!([
            {"clientID": a.id, "presence": {"name": "a"}},
            {"clientID": b.id, "presence": away},
            {"clientID": c.id, "presence": {"name": "c"}},
        ]),
    );
    let joined_d = json!({"clientID": d.id, "presence": {"name": "d"}});
    for listener in [&mut a, &mut b, &mut c] {
        let expected = listener.frame("PRESENCE:JOINED", joined_d.clone());
        listener.expect(expected);
    }

    // C leaves with a closing handshake.
    let c_id = c.id.clone();
    c.client.close();
    for listener in [&mut a, &mut b, &mut d] {
        let expected = listener.frame("PRESENCE:LEFT", json!({"clientID": c_id}));
        listener.expect(expected);
    }

    // B drops its connection.
    let b_id = b.id.clone();
    b.client.vanish();
    for listener in [&mut a, &mut d] {
        let expected = listener.frame("PRESENCE:LEFT", json!({"clientID": b_id}));
        listener.expect(expected);
        listener.assert_nothing_pending();
    }

    // The listener of another channel heard nothing of all this.
    outsider.assert_nothing_pending();
}

// ---------------------------------------------------------------------------
// Listen: PING and PONG
// ---------------------------------------------------------------------------

#[test]
fn a_listener_that_answers_pings_stays_connected_and_gets_a_measured_latency() {
    // A PING left unanswered for two intervals is fatal: the listener has
    // about two seconds to answer each, ample on a loaded machine.
    let addr = start(Config {
        ping_interval: Duration::from_secs(1),
        ..config()
    });
    let mut listener = Listener::on(addr, "room");
    // Three rounds: past the two intervals after which silence is fatal.
    for round in 0..3 {
        let ping = listener.recv();
        assert_eq!(ping["type"], "PING", "round {round}: {ping}");
        assert_eq!(ping["payload"], json!({}), "{ping}");
        assert_eq!(ping.as_object().unwrap().len(), 4, "extra fields: {ping}");
        let latency = ping["latency"]
            .as_u64()
            .unwrap_or_else(|| panic!("latency is not an integer: {ping}"));
        assert!(latency < 5000, "{ping}");
        if round == 0 {
            assert_eq!(latency, 0, "no round trip measured yet: {ping}");
        }
        listener.send(json!({"type": "PONG"}));
    }

    // Still connected: an emit reaches it, with a small integer latency.
    let reply = emit_get(addr, "room", "?still=here");
    let event_id = assert_emitted(&reply, &[&listener.id]);
    let data = listener.recv_answering_pings();
    let latency = data["latency"].as_u64().expect("integer latency");
    assert!(latency < 5000, "{data}");
    assert_eq!(
        data,
        json!({
            "type": "DATA",
            "payload": {"still": "here"},
            "eventID": event_id,
            "clientID": listener.id,
            "latency": latency,
        })
    );
}

#[test]
fn a_listener_that_ignores_pings_gets_ping_timeout_then_close_1001_and_leaves_the_channel() {
    // The listener that answers has about two intervals for each PING.
    let addr = start(Config {
        ping_interval: Duration::from_secs(1),
        ..config()
    });
    let mut silent = Listener::on(addr, "room");
    let (mut awake, members) = Listener::join(addr, "room", "");
    assert_eq!(members, json!([{"clientID": silent.id, "presence": {}}]));
    let expected = silent.frame(
        "PRESENCE:JOINED",
        json!({"clientID": awake.id, "presence": {}}),
    );
    // A PING may come first on a loaded machine.
    let joined = loop {
        let frame = silent.recv();
        if frame["type"] != "PING" {
            break frame;
        }
    };
    assert_same(&joined, &expected);

    // The other listener answers every PING meanwhile, on its own thread.
    let watcher = std::thread::spawn(move || {
        let frame = awake.recv_answering_pings();
        (awake, frame)
    });

    let error = loop {
        let frame = silent.recv();
        if frame["type"] != "PING" {
            break frame;
        }
    };
    assert_eq!(
        error,
        json!({
            "type": "ERROR",
            "payload": {"message": "Client did not respond to PING event", "code": "PING_TIMEOUT"},
            "clientID": silent.id,
            "latency": 0,
        })
    );
    let (code, _) = silent.client.expect_close();
    assert_eq!(code, 1001);

    // The listener that answers sees it leave, and stays.
    let (mut awake, left) = watcher.join().unwrap();
    let latency = left["latency"].as_u64().expect("integer latency");
    assert_eq!(
        left,
        json!({
            "type": "PRESENCE:LEFT",
            "payload": {"clientID": silent.id},
            "clientID": awake.id,
            "latency": latency,
        })
    );
    let reply = emit_get(addr, "room", "?after=timeout");
    let event_id = assert_emitted(&reply, &[&awake.id]);
    let data = awake.recv_answering_pings();
    assert_eq!(data["type"], "DATA", "{data}");
    assert_eq!(data["eventID"], event_id.as_str(), "{data}");
    assert_eq!(data["payload"], json!({"after": "timeout"}), "{data}");
}

// ---------------------------------------------------------------------------
// Listen: bad input and bad requests
// ---------------------------------------------------------------------------

#[test]
fn bad_messages_get_an_error_with_their_code_and_the_connection_keeps_working() {
    let addr = start(config());
    let mut bad = Listener::on(addr, "room");
    let (mut other, _) = Listener::join(addr, "room", "");
    let expected = bad.frame(
        "PRESENCE:JOINED",
        json!({"clientID": other.id, "presence": {}}),
    );
    bad.expect(expected);

    let cases = [
        ("not json", "INVALID_MESSAGE"),
        ("{\"type\":", "INVALID_MESSAGE"),
        ("[]", "INVALID_MESSAGE"),
        ("\"PONG\"", "INVALID_MESSAGE"),
        ("42", "INVALID_MESSAGE"),
        (r#"{"payload":{}}"#, "INVALID_MESSAGE"),
        (r#"{"type":"ACK"}"#, "INVALID_MESSAGE"),
        (r#"{"type":"PRESENCE:UPDATE"}"#, "INVALID_MESSAGE"),
        (
            r#"{"type":"PRESENCE:UPDATE","payload":[1]}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"PRESENCE:UPDATE","payload":"x"}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"PRESENCE:UPDATE","payload":null}"#,
            "INVALID_MESSAGE",
        ),
        (r#"{"type":"HELLO"}"#, "UNKNOWN_TYPE"),
        (r#"{"type":"HELLO","payload":{}}"#, "UNKNOWN_TYPE"),
        (r#"{"type":"DATA","payload":{"a":1}}"#, "UNSUPPORTED_TYPE"),
        (r#"{"type":"PING","payload":{}}"#, "UNSUPPORTED_TYPE"),
        (
            r#"{"type":"CONNECTED","payload":{"members":[]}}"#,
            "UNSUPPORTED_TYPE",
        ),
        (
            r#"{"type":"PRESENCE:JOINED","payload":{"clientID":"client_x","presence":{}}}"#,
            "UNSUPPORTED_TYPE",
        ),
    ];
    for (text, code) in cases {
        bad.client.send_text(text);
        let frame = bad.recv();
        assert_eq!(frame["type"], "ERROR", "{text}: {frame}");
        assert_eq!(frame["payload"]["code"], code, "{text}: {frame}");
        let message = frame["payload"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{text}: {frame}");
        assert_eq!(frame["payload"].as_object().unwrap().len(), 2, "{frame}");
        assert_eq!(frame["latency"], 0, "{frame}");
        assert_eq!(frame.as_object().unwrap().len(), 4, "extra fields: {frame}");
    }

    // Binary frames are not part of the protocol.
    for bytes in [vec![], vec![1u8, 2, 3], br#"{"type":"PONG"}"#.to_vec()] {
        bad.client.ws.send(Message::binary(bytes)).unwrap();
        let frame = bad.recv();
        assert_eq!(frame["type"], "ERROR", "{frame}");
        assert_eq!(frame["payload"]["code"], "INVALID_MESSAGE", "{frame}");
        assert!(!frame["payload"]["message"].as_str().unwrap().is_empty());
    }

    // Both still work, and the other listener saw none of it.
    emit_to_all_and_expect(addr, "room", &mut [&mut bad, &mut other], 1);
    // The refused PRESENCE:UPDATEs changed nothing.
    let (_, members) = Listener::join(addr, "room", "");
    assert_same(
        &members,
        &json!([
            {"clientID": bad.id, "presence": {}},
            {"clientID": other.id, "presence": {}},
        ]),
    );
}

#[test]
fn listen_without_upgrade_is_426_and_invalid_channel_names_are_404() {
    let addr = start(config());
    let allowed: String = "AZaz09_-.~".repeat(13)[..128].to_string();
    for path in [
        "/room/listen",
        "/room/listen?a=b",
        &format!("/{allowed}/listen"),
    ] {
        let reply = Reply::parse(get(addr, path));
        assert_eq!(reply.status, 426, "{path}: {}", reply.head);
    }
    let too_long = "a".repeat(129);
    for path in [
        "/a%20b/listen",
        "//listen",
        "/a/b/listen",
        "/a!b/listen",
        &format!("/{too_long}/listen"),
        "/a%20b/emit",
        &format!("/{too_long}/emit?x=1"),
    ] {
        let reply = Reply::parse(get(addr, path));
        assert_eq!(reply.status, 404, "{path}: {}", reply.head);
    }

    // Upgrades to an invalid name are refused with 404; a 128-character
    // name of every allowed character works.
    match Client::connect_with(addr, "/a%20b/listen", None) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 404),
        Err(other) => panic!("expected a 404, got {other}"),
        Ok(_) => panic!("an invalid channel name was accepted"),
    }
    let mut listener = Listener::on(addr, &allowed);
    emit_to_all_and_expect(addr, &allowed, &mut [&mut listener], 1);
}

// ---------------------------------------------------------------------------
// Emit: payloads and answers
// ---------------------------------------------------------------------------

#[test]
fn get_emit_sends_the_query_parameters_but_clients_and_require_ack_as_strings() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    let mut outsider = Listener::on(addr, "other");
    a.recv(); // b joined

    let reply = emit_get(addr, "room", "?hello=world&x=a%20b+c%21&n=5");
    assert_eq!(reply.header("Connection"), Some("close"), "{}", reply.head);
    let event_id = assert_emitted(&reply, &[&a.id, &b.id]);
    let payload = json!({"hello": "world", "x": "a b c!", "n": "5"});
    for listener in [&mut a, &mut b] {
        let expected = listener.data(payload.clone(), &event_id);
        listener.expect(expected);
    }

    let reply = emit_get(
        addr,
        "room",
        &format!("?a=1&require-ack=false&clients={}&b=2", a.id),
    );
    let event_id = assert_emitted(&reply, &[&a.id]);
    let expected = a.data(json!({"a": "1", "b": "2"}), &event_id);
    a.expect(expected);

    for listener in [&mut a, &mut b, &mut outsider] {
        listener.assert_nothing_pending();
    }
}

#[test]
fn post_emit_sends_the_json_body_verbatim_or_else_the_query_parameters() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let bodies = [
        r#"{ "z" : 1.50, "a":[true,null] }"#,
        r#"[1, "two", {"3": 4}]"#,
        r#""caf\u00e9""#,
        "12345678901234567890123",
        "true",
        "null",
    ];
    for body in bodies {
        // The body wins over query parameters.
        let reply = emit_post(addr, "room", "?ignored=yes", body);
        let event_id = assert_emitted(&reply, &[&listener.id]);
        let text = listener.recv_text();
        assert!(
            text.contains(&format!(r#""payload":{body}"#)),
            "{body} not verbatim in {text}"
        );
        let frame: Value = serde_json::from_str(&text).unwrap();
        let expected = listener.data(serde_json::from_str(body).unwrap(), &event_id);
        assert_eq!(frame, expected);
    }

    // An empty body: the query parameters are the payload.
    let reply = emit_post(addr, "room", "?from=query&clients=1", "");
    let event_id = assert_emitted(&reply, &[&listener.id]);
    let expected = listener.data(json!({"from": "query"}), &event_id);
    listener.expect(expected);
    listener.assert_nothing_pending();
}

#[test]
fn a_raw_post_is_answered_with_a_matching_content_length() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let body = r#"{"hello":"world"}"#;
    let raw = http(addr, &post_request("/room/emit", body));
    let reply = Reply::parse(raw);
    let event_id = assert_emitted(&reply, &[&listener.id]);
    let length: usize = reply
        .header("Content-Length")
        .expect("a Content-Length")
        .parse()
        .unwrap();
    assert_eq!(length, reply.body.len(), "{}", reply.head);
    assert_eq!(reply.header("Connection"), Some("close"));
    let expected = listener.data(json!({"hello": "world"}), &event_id);
    listener.expect(expected);
}

#[test]
fn an_emit_to_a_channel_without_listeners_targets_nobody() {
    let addr = start(config());
    let _elsewhere = Listener::on(addr, "other");
    assert_emitted(&emit_get(addr, "empty", "?x=1"), &[]);
    assert_emitted(&emit_post(addr, "empty", "", "[1]"), &[]);
    assert_emitted(&emit_get(addr, "empty", "?x=1&require-ack=false"), &[]);
}

#[test]
fn emit_errors_have_their_status_and_code_and_deliver_nothing() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");

    for query in ["", "?require-ack=false", "?clients=1"] {
        assert_http_error(&emit_get(addr, "room", query), 400, "NO_PAYLOAD");
        assert_http_error(&emit_post(addr, "room", query, ""), 400, "NO_PAYLOAD");
    }
    for body in ["{\"a\":", "not json", "{} {}", "[1,]"] {
        assert_http_error(&emit_post(addr, "room", "", body), 400, "INVALID_JSON");
    }
    for query in ["?x=1&clients=0", "?x=1&clients=00", "?x=1&clients=-0"] {
        assert_http_error(&emit_get(addr, "room", query), 400, "INVALID_CLIENTS");
    }
    for method in ["PUT", "DELETE", "PATCH"] {
        let raw = http(
            addr,
            &format!(
                "{method} /room/emit?x=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
        );
        let reply = Reply::parse(raw);
        assert_eq!(reply.status, 405, "{method}: {}", reply.head);
        assert_eq!(reply.header("Allow"), Some("GET, POST"), "{}", reply.head);
    }

    listener.assert_nothing_pending();
}

#[test]
fn a_body_over_max_message_bytes_is_413() {
    let addr = start(Config {
        max_message_bytes: 64,
        ..config()
    });
    let mut listener = Listener::on(addr, "room");
    let too_big = format!("\"{}\"", "x".repeat(63)); // 65 bytes
    assert_http_error(
        &emit_post(addr, "room", "", &too_big),
        413,
        "PAYLOAD_TOO_LARGE",
    );
    listener.assert_nothing_pending();

    let just_fits = format!("\"{}\"", "x".repeat(62)); // 64 bytes
    let reply = emit_post(addr, "room", "", &just_fits);
    let event_id = assert_emitted(&reply, &[&listener.id]);
    let expected = listener.data(json!("x".repeat(62)), &event_id);
    listener.expect(expected);
}

/// The errors the implementation adds for bodies it cannot read, over a
/// real socket: a chunked body (411 `LENGTH_REQUIRED`), a Content-Length
/// that is not one number (400 `INVALID_LENGTH`), and a body cut short by
/// a client that stops sending (400 `INCOMPLETE_BODY`). None delivers.
#[test]
fn unreadable_bodies_get_411_or_400_with_their_code_and_deliver_nothing() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let head = "POST /room/emit HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n";

    let chunked = format!("{head}Transfer-Encoding: chunked\r\n\r\n7\r\n{{\"n\":1}}\r\n0\r\n\r\n");
    assert_http_error(&Reply::parse(http(addr, &chunked)), 411, "LENGTH_REQUIRED");

    for length in [
        "Content-Length: seven\r\n",
        "Content-Length: -7\r\n",
        "Content-Length: 7, 7\r\n",
        "Content-Length: 7\r\nContent-Length: 8\r\n",
    ] {
        let request = format!("{head}{length}\r\n{{\"n\":1}}");
        let reply = Reply::parse(http(addr, &request));
        assert_http_error(&reply, 400, "INVALID_LENGTH");
    }

    // Three of the ten bytes announced, then the client's side is shut:
    // the server sees the end of the body's stream before the body.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let cut_short = format!("{head}Content-Length: 10\r\n\r\n{{\"n\"");
    std::io::Write::write_all(&mut stream, cut_short.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = String::new();
    let _ = std::io::Read::read_to_string(&mut stream, &mut response);
    assert_http_error(&Reply::parse(response), 400, "INCOMPLETE_BODY");

    listener.assert_nothing_pending();
}

// ---------------------------------------------------------------------------
// Emit: targets
// ---------------------------------------------------------------------------

#[test]
fn clients_n_reaches_exactly_n_distinct_listeners() {
    let addr = start(config());
    let mut listeners: Vec<Listener> = (0..5).map(|_| Listener::on(addr, "room")).collect();
    // Drain the PRESENCE:JOINED frames.
    for (i, listener) in listeners.iter_mut().enumerate() {
        for _ in i + 1..5 {
            assert_eq!(listener.recv()["type"], "PRESENCE:JOINED");
        }
    }
    for round in 0..5u64 {
        let payload = json!({"pick": round});
        let reply = emit_post(addr, "room", "?clients=3", &payload.to_string());
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        let chosen = sorted_strings(&body["clients"]);
        let unique: BTreeSet<&String> = chosen.iter().collect();
        assert_eq!(unique.len(), 3, "{body}");
        assert_eq!(body["targeted"], 3, "{body}");
        let event_id = body["eventID"].as_str().unwrap().to_string();
        for id in &chosen {
            assert!(listeners.iter().any(|l| &l.id == id), "{id} is no listener");
        }
        for listener in listeners.iter_mut().filter(|l| chosen.contains(&l.id)) {
            let expected = listener.data(payload.clone(), &event_id);
            listener.expect(expected);
        }
        // The other two got nothing: their next frame is the next emit.
        let mut all: Vec<&mut Listener> = listeners.iter_mut().collect();
        emit_to_all_and_expect(addr, "room", &mut all, round);
    }
}

#[test]
fn clients_n_picks_listeners_at_random() {
    let addr = start(config());
    let mut listeners: Vec<Listener> = (0..3).map(|_| Listener::on(addr, "room")).collect();
    for (i, listener) in listeners.iter_mut().enumerate() {
        for _ in i + 1..3 {
            assert_eq!(listener.recv()["type"], "PRESENCE:JOINED");
        }
    }
    let mut picked = BTreeSet::new();
    for n in 0..20 {
        let reply = emit_get(addr, "room", &format!("?n={n}&clients=1"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        let chosen = sorted_strings(&body["clients"]);
        assert_eq!(chosen.len(), 1, "{body}");
        let event_id = body["eventID"].as_str().unwrap();
        let listener = listeners
            .iter_mut()
            .find(|l| l.id == chosen[0])
            .unwrap_or_else(|| panic!("{} is no listener", chosen[0]));
        let expected = listener.data(json!({"n": n.to_string()}), event_id);
        listener.expect(expected);
        picked.insert(chosen[0].clone());
    }
    assert!(picked.len() > 1, "20 random picks all chose {picked:?}");
    let mut all: Vec<&mut Listener> = listeners.iter_mut().collect();
    emit_to_all_and_expect(addr, "room", &mut all, 99);
}

#[test]
fn clients_n_above_the_number_of_listeners_is_400_and_delivers_nothing() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    a.recv(); // b joined
    for query in ["?x=1&clients=3", "?x=1&clients=100"] {
        assert_http_error(&emit_get(addr, "room", query), 400, "NOT_ENOUGH_CLIENTS");
    }
    assert_http_error(
        &emit_get(addr, "empty", "?x=1&clients=1"),
        400,
        "NOT_ENOUGH_CLIENTS",
    );
    // clients=2 is fine.
    let reply = emit_get(addr, "room", "?x=2&clients=2");
    let event_id = assert_emitted(&reply, &[&a.id, &b.id]);
    for listener in [&mut a, &mut b] {
        let expected = listener.data(json!({"x": "2"}), &event_id);
        listener.expect(expected);
        listener.assert_nothing_pending();
    }
}

#[test]
fn clients_ids_reach_exactly_those_and_unknown_ids_are_skipped_and_named() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    let mut c = Listener::on(addr, "room");
    let mut outsider = Listener::on(addr, "other");
    a.recv(); // b joined
    a.recv(); // c joined
    b.recv(); // c joined

    let reply = emit_get(addr, "room", &format!("?x=1&clients={},{}", a.id, c.id));
    let event_id = assert_emitted(&reply, &[&a.id, &c.id]);
    for listener in [&mut a, &mut c] {
        let expected = listener.data(json!({"x": "1"}), &event_id);
        listener.expect(expected);
    }

    let reply = emit_post(addr, "room", &format!("?clients={}", b.id), "[2]");
    let event_id = assert_emitted(&reply, &[&b.id]);
    let expected = b.data(json!([2]), &event_id);
    b.expect(expected);

    // Ids that do not listen to the channel (nobody's, or another
    // channel's listener) are skipped and named, as the original server
    // skipped them; the others still get the event.
    let nobody = "client_nobody1";
    for (round, (query, reached, unknown)) in [
        (
            format!("clients={},{nobody}", a.id),
            vec![a.id.clone()],
            vec![nobody.to_string()],
        ),
        (
            format!("clients={},{},{}", outsider.id, c.id, outsider.id),
            vec![c.id.clone()],
            vec![outsider.id.clone()],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = emit_get(addr, "room", &format!("?round={round}&{query}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        let event_id = body["eventID"].as_str().unwrap_or_default().to_string();
        assert!(is_token(&event_id, "evt_"), "{body}");
        assert_same(
            &body,
            &json!({
                "success": true,
                "eventID": event_id,
                "targeted": reached.len(),
                "clients": reached,
                "unknown": unknown,
            }),
        );
        for listener in [&mut a, &mut c] {
            if reached.contains(&listener.id) {
                let expected = listener.data(json!({"round": round.to_string()}), &event_id);
                listener.expect(expected);
            }
        }
    }
    // None listens: nobody gets it (the document's "only"), all are named.
    for query in [
        format!("?x=1&clients={nobody}"),
        format!("?x=1&clients={}", outsider.id),
    ] {
        let reply = emit_get(addr, "room", &query);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["targeted"], 0, "{body}");
        assert_eq!(body["clients"], json!([]), "{body}");
        assert_eq!(body["unknown"].as_array().map(Vec::len), Some(1), "{body}");
    }

    for listener in [&mut a, &mut b, &mut c, &mut outsider] {
        listener.assert_nothing_pending();
    }
}

#[test]
fn an_id_named_twice_is_targeted_once() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    a.recv(); // b joined
    let query = format!("?x=1&clients={},{},{}", a.id, b.id, a.id);
    let event_id = assert_emitted(&emit_get(addr, "room", &query), &[&a.id, &b.id]);
    for listener in [&mut a, &mut b] {
        let expected = listener.data(json!({"x": "1"}), &event_id);
        listener.expect(expected);
        listener.assert_nothing_pending();
    }
}

// ---------------------------------------------------------------------------
// Emit: acknowledgements
// ---------------------------------------------------------------------------

#[test]
fn require_ack_waits_for_every_targeted_listener_and_lists_acks_in_order() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    a.recv(); // b joined

    let pending = emit_in_background(addr, "room", "?require-ack=true&job=1");
    let mut event_id = String::new();
    for listener in [&mut a, &mut b] {
        let frame = listener.recv();
        event_id = frame["eventID"].as_str().unwrap().to_string();
        assert!(is_token(&event_id, "evt_"), "{frame}");
        let mut expected = listener.data(json!({"job": "1"}), &event_id);
        expected["requires_ack"] = json!(true);
        assert_eq!(frame, expected);
    }

    b.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));
    // Once the router has seen B's ACK (the refusal below comes after it),
    // the emit is still waiting for A.
    b.assert_nothing_pending();
    assert!(!pending.is_finished(), "answered before every ACK");
    a.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));

    let reply = pending.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_same(
        &body,
        &json!({
            "success": true,
            "eventID": event_id,
            "targeted": 2,
            "clients": [a.id, b.id],
            "acked": [b.id, a.id],
        }),
    );
    assert_eq!(body["acked"], json!([b.id, a.id]), "ACK order: {body}");
    a.assert_nothing_pending();
    b.assert_nothing_pending();
}

#[test]
fn require_ack_with_a_missing_ack_answers_408_after_the_ack_timeout() {
    // `a` must read the event and ACK it within the timeout: two seconds,
    // so that a loaded machine does not make `a` miss it too.
    let ack_timeout = Duration::from_secs(2);
    let addr = start(Config {
        ack_timeout,
        ..config()
    });
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    a.recv(); // b joined

    let started = Instant::now();
    let pending = emit_in_background(addr, "room", "?require-ack=true&job=2");
    let frame = a.recv();
    let event_id = frame["eventID"].as_str().unwrap().to_string();
    assert_eq!(frame["requires_ack"], true, "{frame}");
    assert_eq!(b.recv()["eventID"], event_id.as_str());
    a.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));

    let reply = pending.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply.status, 408, "{}", reply.body);
    let body = reply.json();
    assert!(
        !body["error"].as_str().unwrap_or_default().is_empty(),
        "{body}"
    );
    let mut expected = json!({
        "success": false,
        "code": "ACK_TIMEOUT",
        "eventID": event_id,
        "targeted": 2,
        "clients": [a.id, b.id],
        "acked": [a.id],
        "missing": [b.id],
    });
    expected["error"] = body["error"].clone();
    assert_same(&body, &expected);
    assert!(elapsed >= ack_timeout, "answered after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );

    // A late ACK changes nothing and is not refused.
    b.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));
    b.assert_nothing_pending();
}

#[test]
fn a_listener_vanishing_before_it_acks_settles_the_emit_at_once() {
    let addr = start(Config {
        ack_timeout: Duration::from_secs(20),
        ..config()
    });
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    a.recv(); // b joined

    let started = Instant::now();
    let pending = emit_in_background(addr, "room", "?require-ack=true&job=3");
    let frame = a.recv();
    let event_id = frame["eventID"].as_str().unwrap().to_string();
    assert_eq!(b.recv()["eventID"], event_id.as_str());
    a.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));
    a.assert_nothing_pending();
    let (a_id, b_id) = (a.id.clone(), b.id.clone());
    b.client.vanish();

    let reply = pending.join().unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    assert_eq!(reply.status, 408, "{}", reply.body);
    let body = reply.json();
    let mut expected = json!({
        "success": false,
        "code": "ACK_TIMEOUT",
        "eventID": event_id,
        "targeted": 2,
        "clients": [a_id, b_id],
        "acked": [a_id],
        "missing": [b_id],
    });
    expected["error"] = body["error"].clone();
    assert_same(&body, &expected);
    let expected = a.frame("PRESENCE:LEFT", json!({"clientID": b_id}));
    a.expect(expected);
}

#[test]
fn an_ack_for_an_unknown_event_is_ignored_silently() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    a.send(json!({"type": "ACK", "payload": {"eventID": "evt_nosuch00"}}));
    a.send(json!({"type": "ACK", "payload": {"eventID": "whatever"}}));
    a.assert_nothing_pending();

    // An ACK for an emit that needed none is ignored too.
    let event_id = assert_emitted(&emit_get(addr, "room", "?x=1"), &[&a.id]);
    let expected = a.data(json!({"x": "1"}), &event_id);
    a.expect(expected);
    a.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));
    a.assert_nothing_pending();
}

// ---------------------------------------------------------------------------
// One namespace: channels and concierge groups
// ---------------------------------------------------------------------------

#[test]
fn a_channel_is_an_ownerless_group_and_concierge_subscribers_appear_as_members() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let mut ann = Concierge::join_with(addr, "ann", json!({"tags": ["web"]}));
    let listener_uuid = uuid_of(&mut ann, &listener.id);
    assert!(is_v4_uuid(&listener_uuid), "{listener_uuid}");

    let group = ann.ask(json!({"type": "GROUP_FETCH", "name": "room"}));
    assert_eq!(
        group,
        json!({
            "type": "GROUP_FETCH_RESULT",
            "name": "room",
            "owner_uuid": null,
            "subscribers": [listener_uuid],
            "seq": 1,
        })
    );

    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "room"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    let ann_presence = concierge_presence(&ann, json!(["web"]));
    let expected = listener.frame(
        "PRESENCE:JOINED",
        json!({"clientID": "ann", "presence": ann_presence}),
    );
    listener.expect(expected);

    let (mut later, members) = Listener::join(addr, "room", "?me=later");
    assert_same(
        &members,
        &json!([
            {"clientID": listener.id, "presence": {}},
            {"clientID": "ann", "presence": ann_presence},
        ]),
    );
    let expected = listener.frame(
        "PRESENCE:JOINED",
        json!({"clientID": later.id, "presence": {"me": "later"}}),
    );
    listener.expect(expected);

    // Unsubscribing is leaving, for the listeners.
    let unsubscribed = ann.ask(json!({"type": "SELF_UNSUBSCRIBE", "name": "room"}));
    assert_eq!(unsubscribed["code"], "UNSUBSCRIBED", "{unsubscribed}");
    for l in [&mut listener, &mut later] {
        let expected = l.frame("PRESENCE:LEFT", json!({"clientID": "ann"}));
        l.expect(expected);
        l.assert_nothing_pending();
    }
}

#[test]
fn an_emit_reaches_concierge_subscribers_as_a_message_from_http() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob"); // not subscribed
    let listener_uuid = uuid_of(&mut ann, &listener.id);
    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "room"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    listener.recv(); // ann joined

    let payload = json!({"hello": "world", "n": [1, 2]});
    let reply = emit_post(addr, "room", "", &payload.to_string());
    let event_id = assert_emitted(&reply, &[&listener.id, "ann"]);
    let expected = listener.data(payload.clone(), &event_id);
    listener.expect(expected);
    assert_same(
        &ann.recv(),
        &json!({
            "type": "MESSAGE",
            "origin": {
                "name": "$http",
                "uuid": "00000000-0000-0000-0000-000000000000",
                "tags": [],
                "group": {"name": "room", "owner_uuid": null, "subscribers": [listener_uuid, ann.uuid]},
            },
            "target": {"type": "GROUP", "group": "room"},
            "data": payload,
        }),
    );
    assert_concierge_idle(&mut ann);
    assert_concierge_idle(&mut bob);
    listener.assert_nothing_pending();
}

#[test]
fn a_concierge_message_to_the_group_reaches_listeners_as_data_with_its_origin() {
    let addr = start(config());
    let mut a = Listener::on(addr, "room");
    let mut b = Listener::on(addr, "room");
    let mut outsider = Listener::on(addr, "other");
    a.recv(); // b joined
    let mut ann = Concierge::join(addr, "ann"); // not subscribed

    let sent = ann.ask(json!({
        "type": "MESSAGE",
        "target": {"type": "GROUP", "group": "room"},
        "data": {"from": "concierge"},
    }));
    assert_eq!(
        sent,
        json!({"type": "STATUS", "code": "MESSAGE_SENT", "seq": 0})
    );
    let mut event_ids = BTreeSet::new();
    for listener in [&mut a, &mut b] {
        let frame = listener.recv();
        let event_id = frame["eventID"].as_str().unwrap_or_default().to_string();
        assert!(is_token(&event_id, "evt_"), "{frame}");
        let mut expected = listener.data(json!({"from": "concierge"}), &event_id);
        expected["origin"] = json!({"clientID": "ann", "uuid": ann.uuid});
        assert_eq!(frame, expected);
        event_ids.insert(event_id);
    }
    assert_eq!(
        event_ids.len(),
        1,
        "one message, one event id: {event_ids:?}"
    );
    for listener in [&mut a, &mut b, &mut outsider] {
        listener.assert_nothing_pending();
    }
}

/// GROUP_CREATE on a channel only listeners made; then the owner goes
/// (deletes the group if `delete`, else disconnects).
fn owner_of_an_implicit_topic_goes(delete: bool) {
    let addr = start(config());
    let mut l1 = Listener::on(addr, "room");
    let mut l2 = Listener::on(addr, "room");
    l1.recv(); // l2 joined
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    let (u1, u2) = (uuid_of(&mut ann, &l1.id), uuid_of(&mut ann, &l2.id));

    let created = ann.ask(json!({"type": "GROUP_CREATE", "name": "room"}));
    assert_same(
        &created,
        &json!({
            "type": "STATUS",
            "code": "GROUP_CREATED",
            "name": "room",
            "owner_uuid": ann.uuid,
            "subscribers": [u1, u2],
            "seq": 2,
        }),
    );
    // Taking ownership does not subscribe (as the original concierge).
    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "room"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    bob.recv_until("STATUS", Some("GROUP_CREATED"));
    let subscribed = bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "room"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    for l in [&mut l1, &mut l2] {
        let expected = l.frame(
            "PRESENCE:JOINED",
            json!({"clientID": "ann", "presence": concierge_presence(&ann, json!([]))}),
        );
        l.expect(expected);
        let expected = l.frame(
            "PRESENCE:JOINED",
            json!({"clientID": "bob", "presence": concierge_presence(&bob, json!([]))}),
        );
        l.expect(expected);
    }

    if delete {
        let deleted = ann.ask(json!({"type": "GROUP_DELETE", "name": "room"}));
        assert_eq!(deleted["code"], "UNSUBSCRIBED", "{deleted}");
        assert_eq!(ann.recv()["code"], "GROUP_DELETED");
    } else {
        ann.client.close();
    }
    bob.recv_until("STATUS", Some("GROUP_DELETED"));

    // The listeners stay; they see both concierge subscribers leave.
    for l in [&mut l1, &mut l2] {
        let mut gone = vec![l.recv(), l.recv()];
        gone.sort_by(|x, y| {
            x["payload"]["clientID"]
                .as_str()
                .cmp(&y["payload"]["clientID"].as_str())
        });
        let expected = vec![
            l.frame("PRESENCE:LEFT", json!({"clientID": "ann"})),
            l.frame("PRESENCE:LEFT", json!({"clientID": "bob"})),
        ];
        assert_eq!(gone, expected);
    }
    emit_to_all_and_expect(addr, "room", &mut [&mut l1, &mut l2], 1);

    // carl heard of the creation and the deletion before its answer.
    carl.send(json!({"type": "GROUP_FETCH_ALL"}));
    let result = carl.recv_until("GROUP_FETCH_ALL_RESULT", None);
    assert_same(
        &result["groups"],
        &json!([{"name": "room", "owner_uuid": null, "subscribers": [u1, u2]}]),
    );
    for l in [&mut l1, &mut l2] {
        l.assert_nothing_pending();
    }
}

#[test]
fn group_create_on_a_channel_then_group_delete_leaves_the_listeners_listening() {
    owner_of_an_implicit_topic_goes(true);
}

#[test]
fn group_create_on_a_channel_then_the_owner_leaving_leaves_the_listeners_listening() {
    owner_of_an_implicit_topic_goes(false);
}

#[test]
fn client_fetch_all_lists_listeners_and_a_message_to_their_name_reaches_them() {
    let addr = start(config());
    let mut l1 = Listener::on(addr, "room");
    let mut l2 = Listener::on(addr, "other");
    let mut ann = Concierge::join(addr, "ann");

    ann.send(json!({"type": "CLIENT_FETCH_ALL"}));
    let result = ann.recv();
    assert_eq!(result["type"], "CLIENT_FETCH_ALL_RESULT", "{result}");
    let clients = result["clients"].as_array().unwrap();
    let uuid = |name: &str| -> String {
        let entry = clients
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {result}"));
        entry["uuid"].as_str().unwrap().to_string()
    };
    let (u1, u2) = (uuid(&l1.id), uuid(&l2.id));
    assert!(is_v4_uuid(&u1) && is_v4_uuid(&u2) && u1 != u2, "{result}");
    let mut expected = vec![
        json!({"name": "ann", "uuid": ann.uuid, "tags": []}),
        json!({"name": l1.id, "uuid": u1, "tags": ["channels"]}),
        json!({"name": l2.id, "uuid": u2, "tags": ["channels"]}),
    ];
    expected.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    assert_eq!(
        result,
        json!({"type": "CLIENT_FETCH_ALL_RESULT", "clients": expected, "seq": 0})
    );

    let sent = ann.ask(json!({
        "type": "MESSAGE",
        "target": {"type": "NAME", "name": l1.id},
        "data": [1, "two"],
    }));
    assert_eq!(
        sent,
        json!({"type": "STATUS", "code": "MESSAGE_SENT", "seq": 1})
    );
    let frame = l1.recv();
    let event_id = frame["eventID"].as_str().unwrap_or_default().to_string();
    assert!(is_token(&event_id, "evt_"), "{frame}");
    let mut expected = l1.data(json!([1, "two"]), &event_id);
    expected["origin"] = json!({"clientID": "ann", "uuid": ann.uuid});
    assert_eq!(frame, expected);
    l1.assert_nothing_pending();
    l2.assert_nothing_pending();
}

#[test]
fn require_ack_does_not_wait_for_concierge_subscribers() {
    let addr = start(config());
    let mut listener = Listener::on(addr, "room");
    let mut ann = Concierge::join(addr, "ann");
    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "room"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    listener.recv(); // ann joined

    let pending = emit_in_background(addr, "room", "?require-ack=true&job=4");
    let frame = listener.recv();
    assert_eq!(frame["requires_ack"], true, "{frame}");
    let event_id = frame["eventID"].as_str().unwrap().to_string();
    let message = ann.recv();
    assert_eq!(message["type"], "MESSAGE", "{message}");
    assert_eq!(message["data"], json!({"job": "4"}), "{message}");
    listener.send(json!({"type": "ACK", "payload": {"eventID": event_id}}));

    let reply = pending.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_same(
        &reply.json(),
        &json!({
            "success": true,
            "eventID": event_id,
            "targeted": 2,
            "clients": [listener.id, "ann"],
            "acked": [listener.id],
        }),
    );

    // With only concierge subscribers, nobody is awaited: 200 at once.
    let created = ann.ask(json!({"type": "GROUP_CREATE", "name": "lobby"}));
    assert_eq!(created["code"], "GROUP_CREATED", "{created}");
    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "lobby"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    let reply = emit_get(addr, "lobby", "?require-ack=true&job=5");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let event_id = body["eventID"].as_str().unwrap_or_default().to_string();
    assert!(is_token(&event_id, "evt_"), "{body}");
    assert_eq!(
        body,
        json!({"success": true, "eventID": event_id, "targeted": 1, "clients": ["ann"], "acked": []})
    );
    assert_eq!(ann.recv()["data"], json!({"job": "5"}));
    listener.assert_nothing_pending();
}
