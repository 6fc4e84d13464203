//! Several nodes sharing one namespace through a real `redis-server`
//! (docs/clustering.md, "Scaling out"): cross-node delivery in every dialect, names
//! unique under a race, presence after a node is killed, documents that
//! converge with writers on two nodes, and a Redis restart in the middle.
//!
//! Needs the `redis` feature (`cargo test --features redis`, docs/clustering.md's
//! test command) and Debian's `redis-server` (installed by `.ci/run`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::support::redis::Redis;
use crate::support::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use switchboard::router::Patterns;
use switchboard::{jwt, Config};
use tungstenite::Message;

const KEY: &str = "cluster test key";

/// A node of the cluster around `redis`, in this process.
fn node(redis: &Redis, name: &str) -> SocketAddr {
    start(node_config(redis, name))
}

fn node_config(redis: &Redis, name: &str) -> Config {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-cluster-{}-{name}-{}",
        std::process::id(),
        redis.port
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Config {
        redis: Some(redis.url()),
        jwt_key: Some(KEY.into()),
        // The key protects the hub; what crosses the nodes is the subject
        // here, so every topic is open to anonymous clients.
        public_channels: Patterns::everything(),
        public_emit: Patterns::everything(),
        worlds: vec!["w".into()],
        data_dir: dir,
        ..config()
    }
}

/// The names CLIENT_FETCH_ALL lists for `asker`.
fn client_names(asker: &mut Concierge) -> Vec<String> {
    asker.send(json!({"type": "CLIENT_FETCH_ALL"}));
    let result = asker.recv_until("CLIENT_FETCH_ALL_RESULT", None);
    let mut names: Vec<String> = result["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Waits until `asker`'s node lists exactly `names`.
fn wait_for_clients(asker: &mut Concierge, names: &[&str]) {
    wait_until(&format!("the clients {names:?}"), || {
        client_names(asker) == names
    });
}

fn to_name(name: &str) -> Value {
    json!({"type": "NAME", "name": name})
}

fn to_group(group: &str) -> Value {
    json!({"type": "GROUP", "group": group})
}

/// A Redis, two nodes, ann on one and bob on the other, each node
/// listing both.
fn ann_and_bob_on_two_nodes() -> (Redis, Concierge, Concierge) {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = Concierge::join(a, "ann");
    let mut bob = Concierge::join(b, "bob");
    wait_for_clients(&mut ann, &["ann", "bob"]);
    wait_for_clients(&mut bob, &["ann", "bob"]);
    (redis, ann, bob)
}

#[test]
fn concierge_names_messages_and_groups_span_the_nodes() {
    // CLIENT_FETCH_ALL lists the clients of every node.
    let (_redis, mut ann, mut bob) = ann_and_bob_on_two_nodes();

    // By name, from node a to node b: the origin is ann's, as on one node.
    let sent = ann.ask(json!({"type": "MESSAGE", "target": to_name("bob"), "data": {"hi": 1}}));
    assert_eq!(sent["code"], "MESSAGE_SENT", "{sent}");
    let ann_origin = json!({"name": "ann", "uuid": ann.uuid, "tags": []});
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": ann_origin, "target": to_name("bob"), "data": {"hi": 1}})
    );
    // By uuid, back.
    let target = json!({"type": "UUID", "uuid": ann.uuid});
    let sent = bob.ask(json!({"type": "MESSAGE", "target": target, "data": "back"}));
    assert_eq!(sent["code"], "MESSAGE_SENT", "{sent}");
    let message = ann.recv();
    assert_eq!(message["origin"]["name"], "bob", "{message}");
    assert_eq!(message["origin"]["uuid"], bob.uuid.as_str(), "{message}");
    assert_eq!(message["data"], "back", "{message}");
    // A name no node holds is still refused.
    let refused = ann.ask(json!({"type": "MESSAGE", "target": to_name("nobody"), "data": 1}));
    assert_eq!(refused["code"], "NO_SUCH_NAME", "{refused}");

    // bob's group is announced on node a; ann subscribes there.
    let created = bob.ask(json!({"type": "GROUP_CREATE", "name": "g", "nickname": "Gee"}));
    assert_eq!(created["code"], "GROUP_CREATED", "{created}");
    let announced = ann.recv_until("STATUS", Some("GROUP_CREATED"));
    assert_eq!(announced["name"], "g", "{announced}");
    assert_eq!(announced["owner_uuid"], bob.uuid.as_str(), "{announced}");
    assert!(announced.get("seq").is_none(), "{announced}");
    let subscribed = ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    wait_until("bob's node to see ann subscribed", || {
        let fetched = bob.ask(json!({"type": "GROUP_FETCH", "name": "g"}));
        fetched["subscribers"]
            .as_array()
            .is_some_and(|s| s.contains(&json!(ann.uuid)))
    });
    let all = ann.ask(json!({"type": "GROUP_FETCH_ALL"}));
    assert_eq!(all["groups"][0]["name"], "g", "{all}");
    assert_eq!(all["groups"][0]["owner_uuid"], bob.uuid.as_str(), "{all}");

    // The owner's message to its group reaches the subscriber on node a.
    let sent = bob.ask(json!({"type": "MESSAGE", "target": to_group("g"), "data": {"n": 2}}));
    assert_eq!(sent["code"], "MESSAGE_SENT", "{sent}");
    let message = ann.recv_until("MESSAGE", None);
    assert_eq!(message["origin"]["name"], "bob", "{message}");
    assert_eq!(message["target"], to_group("g"), "{message}");
    assert_eq!(message["data"], json!({"n": 2}), "{message}");

    // The owner leaves: its group goes on node a too, and so does it.
    bob.client.close();
    let deleted = ann.recv_until("STATUS", Some("GROUP_DELETED"));
    assert_eq!(deleted["name"], "g", "{deleted}");
    wait_for_clients(&mut ann, &["ann"]);
    let all = ann.ask(json!({"type": "GROUP_FETCH_ALL"}));
    assert_eq!(all["groups"], json!([]), "{all}");
}

/// Sends IDENTIFY for `name` to `addr`; returns the client if it got
/// HELLO, or the close code it got instead.
fn try_identify(addr: SocketAddr, name: &str) -> Result<Client, u16> {
    let mut client = Client::connect(addr, "/ws/concierge");
    client.send_json(json!({"type": "IDENTIFY", "name": name, "version": "0.1.0"}));
    match client.recv() {
        Message::Text(text) => {
            let hello: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(hello["type"], "HELLO", "{hello}");
            Ok(client)
        }
        Message::Close(Some(frame)) => Err(u16::from(frame.code)),
        other => panic!("expected HELLO or a close, got {other:?}"),
    }
}

#[test]
fn a_name_raced_for_on_two_nodes_is_granted_once_and_freed_on_leave() {
    let redis = Redis::start();
    let nodes = [node(&redis, "a"), node(&redis, "b")];
    for round in 0..20 {
        let name = format!("racer{round}");
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = nodes
            .iter()
            .map(|&addr| {
                let (name, start) = (name.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    try_identify(addr, &name)
                })
            })
            .collect();
        let racers: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let winners: Vec<usize> = (0..2).filter(|&i| racers[i].is_ok()).collect();
        let outcomes: Vec<Result<(), u16>> = racers
            .iter()
            .map(|r| r.as_ref().map(|_| ()).map_err(|code| *code))
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one HELLO: {outcomes:?}"
        );
        let loser = 1 - winners[0];
        assert_eq!(racers[loser].as_ref().err(), Some(&4005), "round {round}");
        if round == 0 {
            // Once the winner leaves, the loser's node grants the name.
            drop(racers);
            wait_until("the name to be free again", || {
                try_identify(nodes[loser], &name).is_ok()
            });
        }
    }
}

/// A channels listener: its client and `clientID`.
struct Listener {
    client: Client,
    id: String,
}

impl Listener {
    fn join(addr: SocketAddr, channel: &str, query: &str) -> (Listener, Value) {
        let (client, connected) = Client::listen(addr, &format!("/{channel}/listen{query}"));
        let id = connected["clientID"].as_str().unwrap().to_string();
        let members = connected["payload"]["members"].clone();
        (Listener { client, id }, members)
    }

    /// The next frame that is not a PING (those are answered).
    fn recv(&mut self) -> Value {
        loop {
            let frame = self.client.recv_json();
            if frame["type"] != "PING" {
                return frame;
            }
            self.client.send_json(json!({"type": "PONG"}));
        }
    }

    /// The next frame, if one comes within `wait`.
    fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let stream = self.client.ws.get_ref();
        stream.set_read_timeout(Some(wait)).unwrap();
        let frame = match self.client.ws.read() {
            Ok(Message::Text(text)) => serde_json::from_str(&text).ok(),
            Ok(_) | Err(_) => None,
        };
        self.client
            .ws
            .get_ref()
            .set_read_timeout(Some(PATIENCE))
            .unwrap();
        frame
    }
}

/// POSTs `body` to `/<channel>/emit<query>`; returns status and JSON body.
fn emit(addr: SocketAddr, channel: &str, query: &str, body: &str) -> (u16, Value) {
    let response = http(
        addr,
        &format!(
            "POST /{channel}/emit{query} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Waits until node `addr` knows listener `id` on `channel`, by emitting
/// to it by id there (an id the node does not know yet is skipped and
/// named `unknown`, as the original websockets.do server did); the DATA
/// that finally goes is read off the listener.
fn wait_until_known(addr: SocketAddr, channel: &str, listener: &mut Listener) {
    let query = format!("?clients={}", listener.id);
    wait_until("the listener to be known on the other node", || {
        let (status, body) = emit(addr, channel, &query, r#"{"probe":true}"#);
        status == 200 && body["targeted"] == 1
    });
    // Presence news of other listeners may come first.
    let data = loop {
        let frame = listener.recv();
        if frame["type"] != "PRESENCE:JOINED" {
            break frame;
        }
    };
    assert_eq!(data["type"], "DATA", "{data}");
    assert_eq!(data["payload"], json!({"probe": true}), "{data}");
}

#[test]
fn channels_presence_emits_and_acks_span_the_nodes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let (mut first, _) = Listener::join(a, "room", "?who=first");
    // An HTTP emit on node b reaches a listener on node a.
    wait_until_known(b, "room", &mut first);

    // A listener on node b sees the one on node a among the members, and
    // the one on node a sees it join.
    let (mut second, members) = Listener::join(b, "room", "?who=second");
    assert_eq!(
        members,
        json!([{"clientID": first.id, "presence": {"who": "first"}}])
    );
    let joined = first.recv();
    assert_eq!(joined["type"], "PRESENCE:JOINED", "{joined}");
    assert_eq!(
        joined["payload"],
        json!({"clientID": second.id, "presence": {"who": "second"}})
    );

    // An emit that waits for ACKs, made on node a, is answered once the
    // listener on node b has ACKed through its own node.
    let pending = std::thread::spawn(move || emit(a, "room", "?require-ack=true", r#"{"job":1}"#));
    let mut event_id = String::new();
    for listener in [&mut first, &mut second] {
        let data = listener.recv();
        assert_eq!(data["type"], "DATA", "{data}");
        assert_eq!(data["payload"], json!({"job": 1}), "{data}");
        assert_eq!(data["requires_ack"], true, "{data}");
        event_id = data["eventID"].as_str().unwrap().to_string();
    }
    for listener in [&mut second, &mut first] {
        listener
            .client
            .send_json(json!({"type": "ACK", "payload": {"eventID": event_id}}));
    }
    let (status, body) = pending.join().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["eventID"], event_id.as_str(), "{body}");
    let mut acked: Vec<String> = serde_json::from_value(body["acked"].clone()).unwrap();
    acked.sort();
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(acked, both, "{body}");

    // A presence change and a departure on node b are seen on node a.
    second
        .client
        .send_json(json!({"type": "PRESENCE:UPDATE", "payload": {"who": "2nd"}}));
    let updated = first.recv();
    assert_eq!(updated["type"], "PRESENCE:UPDATED", "{updated}");
    assert_eq!(updated["payload"]["presence"], json!({"who": "2nd"}));
    second.client.close();
    let left = first.recv();
    assert_eq!(left["type"], "PRESENCE:LEFT", "{left}");
    assert_eq!(left["payload"]["clientID"], second.id.as_str(), "{left}");
}

/// Sends a world action and returns the answer (skipping notices).
fn world_call(client: &mut Client, action: &str, payload: Value) -> Value {
    client.send_json(json!([action, "id", payload]));
    loop {
        let answer = client.recv_json();
        if answer[1] == "id" {
            return answer;
        }
    }
}

#[test]
fn world_rooms_and_common_publishes_span_the_nodes() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut alice = Client::connect(a, "/ws/world/w");
    alice.send_json(json!(["authenticate", {"client_id": "alice"}]));
    assert_eq!(alice.recv_json()[0], "authenticated");
    let mut bob = Client::connect(b, "/ws/world/w");
    bob.send_json(json!(["authenticate", {"client_id": "bob"}]));
    assert_eq!(bob.recv_json()[0], "authenticated");

    let entered = world_call(&mut alice, "room.enter", json!({"room": "lobby"}));
    assert_eq!(entered[0], "success", "{entered}");
    // bob enters on node b once node b knows alice is in the room: alice,
    // on node a, hears of it.
    wait_until("node b to know alice's room", || {
        let info = world_call(&mut bob, "hub.presence", json!({"topic": "w/lobby"}));
        info[2].as_array().is_some_and(|m| !m.is_empty())
    });
    let entered = world_call(&mut bob, "room.enter", json!({"room": "lobby"}));
    assert_eq!(entered[0], "success", "{entered}");
    let notice = alice.recv_json();
    assert_eq!(notice[0], "room.enter", "{notice}");
    assert_eq!(notice[1]["user"]["id"], "anon:bob", "{notice}");

    let sent = world_call(
        &mut bob,
        "room.send",
        json!({"room": "lobby", "content": "hi"}),
    );
    assert_eq!(sent[0], "success", "{sent}");
    let said = alice.recv_json();
    assert_eq!(said[0], "room.send", "{said}");
    assert_eq!(said[1]["content"], "hi", "{said}");
    assert_eq!(said[1]["sender"]["id"], "anon:bob", "{said}");

    // A common client's hub.publish on node a reaches a listener on b.
    let (mut listener, _) = Listener::join(b, "news", "");
    let mut common = Client::connect(a, "/ws/common");
    assert_eq!(common.recv_json()["op"], 0);
    common.send_json(json!({"op": 1, "password": ""}));
    let mut n = 0;
    wait_until("node a to know the listener", || {
        n += 1;
        common.send_json(json!({"op": 4, "w": "hub.presence", "a": ["news"], "n": n}));
        let response = common.recv_json();
        response["r"].as_array().is_some_and(|m| !m.is_empty())
    });
    common.send_json(json!({"op": 4, "w": "hub.publish", "a": ["news", {"x": 1}], "n": 0}));
    let response = common.recv_json();
    assert_eq!(response["op"], 5, "{response}");
    let data = listener.recv();
    assert_eq!(data["type"], "DATA", "{data}");
    assert_eq!(data["payload"], json!({"x": 1}), "{data}");
    assert_eq!(data["eventID"], response["r"]["eventID"], "{data}");
}

// ---------------------------------------------------------------------------
// blazing
// ---------------------------------------------------------------------------

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "name": sub, "exp": jwt::now() + 3600});
    jwt::sign(&claims, KEY.as_bytes())
}

fn blazing(addr: SocketAddr, sub: &str, computer: &str) -> Client {
    let (request, stream) = blazing_request(addr, &token(sub), computer);
    let (ws, _) = tungstenite::client(request, stream).expect("blazing handshake");
    Client { ws }
}

fn blazing_send(client: &mut Client, value: Value) {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(value.to_string().as_bytes()).unwrap();
    let gzipped = encoder.finish().unwrap();
    client.ws.send(Message::binary(gzipped)).unwrap();
}

fn blazing_recv(client: &mut Client) -> Value {
    loop {
        match client.ws.read().expect("a blazing message") {
            Message::Binary(bytes) => {
                let mut json = Vec::new();
                GzDecoder::new(&bytes[..]).read_to_end(&mut json).unwrap();
                return serde_json::from_slice(&json).unwrap();
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a gzip frame, got {other:?}"),
        }
    }
}

/// The document's text as `client`'s node has it, from a fresh `sync`.
fn document(client: &mut Client) -> String {
    blazing_send(client, json!({"type": "sync", "payload": {}}));
    loop {
        let message = blazing_recv(client);
        if message["type"] == "sync" {
            let encoded = message["payload"]["document"].as_str().unwrap();
            let url = encoded
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_");
            let gzipped = switchboard::base64::decode_url(&url).expect("base64 document");
            let mut text = String::new();
            GzDecoder::new(&gzipped[..])
                .read_to_string(&mut text)
                .unwrap();
            return text;
        }
    }
}

#[test]
fn a_document_with_writers_on_two_nodes_converges() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = blazing(a, "ann", "pc");
    assert_eq!(blazing_recv(&mut ann)["type"], "sync");
    let mut bob = blazing(b, "bob", "pc");
    assert_eq!(blazing_recv(&mut bob)["type"], "sync");

    // Both type at once, each at the end of the text as it sees it.
    let lower: Vec<char> = ('a'..='t').collect();
    let upper: Vec<char> = ('A'..='T').collect();
    let typists: Vec<_> = [(ann, lower.clone()), (bob, upper.clone())]
        .into_iter()
        .map(|(mut client, letters)| {
            std::thread::spawn(move || {
                for letter in letters {
                    let write = json!({"type": "write", "payload": {"offset": 1_000_000, "selection": 0, "text": letter.to_string()}});
                    blazing_send(&mut client, write);
                }
                client
            })
        })
        .collect();
    let mut clients: Vec<Client> = typists.into_iter().map(|t| t.join().unwrap()).collect();

    let deadline = Instant::now() + PATIENCE;
    let (text_a, text_b) = loop {
        let text_a = document(&mut clients[0]);
        let text_b = document(&mut clients[1]);
        if (text_a == text_b && text_a.chars().count() == 40) || Instant::now() > deadline {
            break (text_a, text_b);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(text_a, text_b, "both nodes hold the same text");
    assert_eq!(text_a.chars().count(), 40, "{text_a}");
    let kept = |f: fn(&char) -> bool| text_a.chars().filter(f).collect::<Vec<char>>();
    assert_eq!(kept(char::is_ascii_lowercase), lower, "ann's order kept");
    assert_eq!(kept(char::is_ascii_uppercase), upper, "bob's order kept");

    // A third writer joining later, on node b, starts from that text.
    let mut carl = blazing(b, "carl", "pc");
    let sync = blazing_recv(&mut carl);
    assert_eq!(sync["type"], "sync");
    assert_eq!(document(&mut carl), text_a);
}

// ---------------------------------------------------------------------------
// Failures: a node dies, Redis restarts
// ---------------------------------------------------------------------------

/// A node started from the binary, so that it can be killed.
fn node_process(redis: &Redis) -> Process {
    let url = redis.url();
    Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--redis",
        &url,
        "--log-level",
        "warn",
        "--data-dir",
        &std::env::temp_dir()
            .join(format!("switchboard-cluster-kill-{}", std::process::id()))
            .display()
            .to_string(),
    ])
}

#[test]
fn a_killed_node_stops_counting_as_present_and_the_others_carry_on() {
    let redis = Redis::start();
    let survivor = node_process(&redis);
    let mut doomed = node_process(&redis);
    let (mut here, _) = Listener::join(survivor.addr, "room", "");
    let (there, members) = Listener::join(doomed.addr, "room", "");
    // The doomed node may not know the survivor's listener yet.
    if members.as_array().is_some_and(std::vec::Vec::is_empty) {
        // An id the node does not know yet is skipped: the emit targets
        // nobody until it does.
        wait_until("the listener on the doomed node to be known", || {
            let query = format!("?clients={}", there.id);
            let (status, body) = emit(survivor.addr, "room", &query, "1");
            status == 200 && body["targeted"] == 1
        });
    }
    let joined = here.recv();
    assert_eq!(joined["type"], "PRESENCE:JOINED", "{joined}");
    assert_eq!(joined["payload"]["clientID"], there.id.as_str());
    let held = try_identify(doomed.addr, "keeper").expect("a name on the doomed node");

    let killed = Instant::now();
    doomed.kill();
    let left = loop {
        let frame = here.recv();
        if frame["type"] == "PRESENCE:LEFT" {
            break frame;
        }
    };
    let noticed = killed.elapsed();
    assert_eq!(left["payload"]["clientID"], there.id.as_str(), "{left}");
    // Heartbeat keys live 3 s and are looked at every second.
    assert!(
        noticed < Duration::from_secs(10),
        "noticed after {noticed:?}"
    );
    println!("a killed node's listener left after {noticed:?}");

    // Its concierge name is free, and the survivor serves as before.
    drop(held);
    try_identify(survivor.addr, "keeper").expect("the dead node's name is free");
    let (status, body) = emit(survivor.addr, "room", "", r#"{"still":"here"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clients"], json!([here.id]), "{body}");
    assert_eq!(here.recv()["payload"], json!({"still": "here"}));
    assert_eq!(metric(survivor.addr, "switchboard_cluster_nodes"), 1);
    // Seconds of a quiet bus (its idle checks included) cost no reconnect.
    assert_eq!(
        metric(survivor.addr, "switchboard_redis_reconnects_total"),
        0
    );
}

#[test]
fn a_redis_restart_leaves_each_node_serving_and_the_cluster_heals() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let (mut first, _) = Listener::join(a, "room", "");
    let (mut second, _) = Listener::join(b, "room", "");
    wait_until_known(a, "room", &mut second);
    let joined = first.recv();
    assert_eq!(joined["type"], "PRESENCE:JOINED", "{joined}");

    redis.stop();
    for node in [a, b] {
        wait_until("the nodes to notice", || {
            get(node, "/healthz").contains("redis: unreachable")
                && metric(node, "switchboard_redis_up") == 0
        });
    }
    // Each node still delivers to its own listeners.
    let (status, body) = emit(a, "room", "", r#"{"alone":true}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(first.recv()["payload"], json!({"alone": true}));
    assert!(metric(a, "switchboard_redis_reconnects_total") >= 1);

    redis.restart(); // empty: every key and subscription is gone
    for node in [a, b] {
        wait_until("the nodes to reconnect", || {
            metric(node, "switchboard_redis_up") == 1
                && metric(node, "switchboard_cluster_nodes") == 2
        });
        assert!(get(node, "/healthz").contains("redis: up"));
    }
    // Cross-node delivery is back (the first emits may still find a
    // subscription being made).
    let deadline = Instant::now() + PATIENCE;
    let mut round = 0;
    loop {
        round += 1;
        emit(a, "room", "", &json!({"round": round}).to_string());
        let data = loop {
            let frame = first.recv();
            if frame["type"] == "DATA" {
                break frame;
            }
        };
        assert_eq!(data["payload"]["round"], round);
        if let Some(frame) = second.recv_within(Duration::from_millis(500)) {
            if frame["type"] == "DATA" {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no cross-node delivery after the restart"
        );
    }
    // And the nodes know each other's members again.
    let (_third, members) = Listener::join(b, "room", "");
    let mut ids: Vec<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["clientID"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut expected = vec![first.id.clone(), second.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn a_node_stopped_by_sigterm_takes_its_members_at_once() {
    let redis = Redis::start();
    let survivor = node_process(&redis);
    let mut stopping = node_process(&redis);
    let (mut here, _) = Listener::join(survivor.addr, "room", "");
    let (there, _) = Listener::join(stopping.addr, "room", "");
    let joined = here.recv();
    assert_eq!(joined["type"], "PRESENCE:JOINED", "{joined}");

    let stopped = Instant::now();
    stopping.signal("TERM");
    let left = here.recv();
    let noticed = stopped.elapsed();
    assert_eq!(left["type"], "PRESENCE:LEFT", "{left}");
    assert_eq!(left["payload"]["clientID"], there.id.as_str(), "{left}");
    assert!(stopping.wait().success());
    // Not a heartbeat's expiry: a node that dies silently is noticed when
    // its heartbeat key (3 s) expires, two seconds after its last beat at
    // the earliest; this one said goodbye, and is gone well before that.
    println!("a stopped node's listener left after {noticed:?}");
    assert!(
        noticed < Duration::from_millis(1500),
        "noticed after {noticed:?}: as late as a heartbeat's expiry"
    );
}

/// The writers' connections alone break (CLIENT KILL, as a proxy reset
/// or a timeout would): what a node publishes meanwhile is lost, and once
/// its writer is back it announces its members again, and gives back the
/// names it let go.
#[test]
fn records_lost_while_a_writer_was_cut_off_are_mended() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = Concierge::join(a, "ann");
    let bob = Concierge::join(b, "bob");
    wait_for_clients(&mut ann, &["ann", "bob"]);
    // Normal connections only: the writers and followers, not the buses.
    assert!(redis.command("CLIENT KILL TYPE normal").starts_with(':'));
    bob.client.close(); // b's Left and release meet a dead connection
    wait_for_clients(&mut ann, &["ann"]);
    let c = node(&redis, "c");
    wait_until("bob's name to be free", || try_identify(c, "bob").is_ok());
}

fn xread_calls(redis: &Redis) -> u64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stdout).to_string();
    info.lines()
        .find(|l| l.starts_with("cmdstat_xread:"))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A stream entry no node understands (another version's edit, a hand
/// made XADD) is stepped over: the follower does not read it again and
/// again, and the edits after it still arrive.
#[test]
fn an_entry_nobody_understands_is_stepped_over() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let mut ann = blazing(a, "ann", "pc");
    assert_eq!(document(&mut ann), "");
    assert!(redis
        .command("XADD switchboard:doc:pc * e not-json")
        .starts_with('$'));
    let write = json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "after"}});
    blazing_send(&mut ann, write);
    wait_until("the write after it", || document(&mut ann) == "after");
    // A follower stuck on the entry reads thousands of times a second; one
    // that stepped over it waits 200 ms per read.
    let before = xread_calls(&redis);
    let started = Instant::now();
    wait_until("a second to pass", || {
        started.elapsed() >= Duration::from_secs(1)
    });
    let reads = xread_calls(&redis) - before;
    assert!(reads < 50, "the follower spins: {reads} XREADs in a second");
}

/// Types `letters` at the end of the document, one write each.
fn type_at_end(client: &mut Client, letters: &str) {
    for letter in letters.chars() {
        let write = json!({"type": "write", "payload": {"offset": 1_000_000, "selection": 0, "text": letter.to_string()}});
        blazing_send(client, write);
    }
}

/// Waits until both clients' nodes hold the same text, `length` long.
fn converged(a: &mut Client, b: &mut Client, length: usize) -> String {
    let mut text = String::new();
    wait_until(
        &format!("both nodes to hold the same {length} characters"),
        || {
            text = document(a);
            text == document(b) && text.chars().count() == length
        },
    );
    text
}

#[test]
fn a_document_edited_on_two_nodes_converges_across_a_redis_restart() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let mut ann = blazing(a, "ann", "pc");
    let mut bob = blazing(b, "bob", "pc");
    type_at_end(&mut ann, "abc");
    type_at_end(&mut bob, "XYZ");
    let before = converged(&mut ann, &mut bob, 6);

    redis.restart(); // empty: streams, snapshots and counts are gone
    for node in [a, b] {
        wait_until("the nodes to reconnect", || {
            metric(node, "switchboard_redis_up") == 1
        });
    }
    type_at_end(&mut ann, "def");
    type_at_end(&mut bob, "UVW");
    let after = converged(&mut ann, &mut bob, 12);
    assert!(after.starts_with(&before), "{before} then {after}");
    let kept = |f: fn(&char) -> bool| after.chars().filter(f).collect::<String>();
    assert_eq!(kept(char::is_ascii_lowercase), "abcdef");
    assert_eq!(kept(char::is_ascii_uppercase), "XYZUVW");
}

#[test]
fn frames_pipelined_after_identify_are_answered_after_the_hello() {
    let redis = Redis::start();
    let a = node(&redis, "a");
    let mut client = Client::connect(a, "/ws/concierge");
    client.send_json(json!({"type": "IDENTIFY", "name": "ann", "version": "0.1.0"}));
    client.send_json(json!({"type": "SELF_FETCH"}));
    let hello = client.recv_json();
    assert_eq!(hello["type"], "HELLO", "{hello}");
    let myself = client.recv_json();
    assert_eq!(myself["type"], "SELF_FETCH_RESULT", "{myself}");
    assert_eq!(myself["seq"], 0, "{myself}");
}

/// The next payload that answers a frame of `client`'s (it has a `seq`);
/// others' news is skipped.
fn reply(client: &mut Concierge) -> Value {
    loop {
        let payload = client.recv();
        if payload.get("seq").is_some() {
            return payload;
        }
    }
}

/// Each group's name and owner, as a node lists them.
fn group_owners(client: &mut Concierge) -> Vec<(String, String)> {
    client.send(json!({"type": "GROUP_FETCH_ALL"}));
    let all = reply(client);
    all["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let field = |name: &str| g[name].as_str().unwrap_or_default().to_string();
            (field("name"), field("owner_uuid"))
        })
        .collect()
}

#[test]
fn a_group_raced_for_on_two_nodes_gets_one_owner_everywhere() {
    let (_redis, mut ann, mut bob) = ann_and_bob_on_two_nodes();
    for round in 0..10 {
        let group = format!("g{round}");
        let create = json!({"type": "GROUP_CREATE", "name": group});
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [ann, bob]
            .into_iter()
            .map(|mut client| {
                let (create, start) = (create.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    client.send(create);
                    let answer = reply(&mut client);
                    (client, answer)
                })
            })
            .collect();
        let mut answers = Vec::new();
        let mut clients = Vec::new();
        for racer in racers {
            let (client, answer) = racer.join().unwrap();
            clients.push(client);
            answers.push(answer["code"].as_str().unwrap_or_default().to_string());
        }
        answers.sort();
        assert_eq!(
            answers,
            ["GROUP_ALREADY_CREATED", "GROUP_CREATED"],
            "round {round}"
        );
        bob = clients.pop().unwrap();
        ann = clients.pop().unwrap();
    }
    // Both nodes agree on every group's owner.
    let mut owners = Vec::new();
    wait_until("both nodes to list the same owners", || {
        owners = group_owners(&mut ann);
        owners.len() == 10 && owners == group_owners(&mut bob)
    });
    assert!(owners
        .iter()
        .all(|(_, owner)| *owner == ann.uuid || *owner == bob.uuid));
}
