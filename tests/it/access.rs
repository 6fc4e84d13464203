//! End-to-end tests of access control across the one namespace (README and docs/access.md,
//! "Access"): on a protected hub nobody reads or writes a topic it was not
//! granted, whichever dialect writes and whichever reads; tokens in every
//! form and every way they can be wrong; the operator's emit key; public
//! channels; browser origins; clients behind a trusted proxy; refusals
//! counted; grants kept until the token expires; a reload of the policy.

use std::net::{SocketAddr, TcpListener};

use crate::support::*;
use serde_json::{json, Value};
use switchboard::net::forwarded::TrustedProxies;
use switchboard::net::origin::AllowedOrigins;
use switchboard::router::Patterns;
use switchboard::{jwt, Config, Handle, Server};

const KEY: &str = "k3y";
const SECRET: &str = "s3cret";
const EMIT_KEY: &str = "emit-k3y";

/// A protected hub: the concierge secret, a JWT key and an emit key.
fn protected() -> Config {
    Config {
        secret: Some(SECRET.into()),
        jwt_key: Some(KEY.into()),
        emit_token: Some(EMIT_KEY.into()),
        ..config()
    }
}

/// Starts a server and keeps a handle to reload it.
fn start_with_handle(config: Config) -> (SocketAddr, Handle) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let server = Server::from_listener(listener, config);
    let (addr, handle) = (server.local_addr().unwrap(), server.handle());
    std::thread::spawn(move || server.run());
    (addr, handle)
}

/// A token signed with `KEY`, valid for an hour, with `claims` added.
fn token(claims: Value) -> String {
    token_for(claims, 3600)
}

fn token_for(claims: Value, seconds: u64) -> String {
    let mut all = json!({"sub": "u-1", "name": "U", "exp": jwt::now() + seconds});
    for (key, value) in claims.as_object().unwrap() {
        all[key] = value.clone();
    }
    jwt::sign(&all, KEY.as_bytes())
}

/// `alg: none`, unsigned: the classic forgery.
fn unsigned(claims: Value) -> String {
    let encode = |bytes: &[u8]| switchboard::base64::encode_url(bytes);
    let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = encode(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// The whole HTTP answer to a WebSocket upgrade of `path` with `headers`
/// (each ending in `\r\n`): the 101 head, or a refusal with its body.
fn upgrade_answer(addr: SocketAddr, path: &str, headers: &str) -> String {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
    );
    http_until_head_or_close(addr, &request)
}

/// Sends `request` and reads until the server closes, or (for a 101) until
/// the head is complete.
fn http_until_head_or_close(addr: SocketAddr, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = stream.read(&mut byte) {
        answer.push(byte[0]);
        if answer.starts_with(b"HTTP/1.1 101") && answer.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status code and JSON body of an HTTP answer.
#[track_caller]
fn status_and_body(answer: &str) -> (u16, Value) {
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Asserts an HTTP refusal: its status and JSON `code`.
#[track_caller]
fn assert_refused(answer: &str, status: u16, code: &str) {
    let (got, body) = status_and_body(answer);
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "{answer}"
    );
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{answer}"
    );
    assert!(!answer.contains(KEY), "the answer must not echo a key");
}

/// A channels listener of `channel` with `query` (may hold `token=`).
fn listener(addr: SocketAddr, channel: &str, query: &str) -> Client {
    Client::listen(addr, &format!("/{channel}/listen?{query}")).0
}

/// POSTs `body` to `/<channel>/emit` with an optional bearer token.
fn emit(addr: SocketAddr, channel: &str, bearer: Option<&str>, body: &str) -> String {
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    http(
        addr,
        &format!(
            "POST /{channel}/emit HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// A concierge client that knows the secret.
fn service(addr: SocketAddr, name: &str) -> Concierge {
    Concierge::join_with(addr, name, json!({"secret": SECRET}))
}

/// A concierge client subscribed to a group it created.
fn group_owner(addr: SocketAddr, name: &str, group: &str) -> Concierge {
    let mut owner = service(addr, name);
    let created = owner.ask(json!({"type": "GROUP_CREATE", "name": group}));
    assert_eq!(created["code"], "GROUP_CREATED", "{created}");
    let subscribed = owner.ask(json!({"type": "SELF_SUBSCRIBE", "name": group}));
    assert_eq!(subscribed["code"], "SUBSCRIBED", "{subscribed}");
    owner
}

/// A world client authenticated with `token` on world `default`.
fn world_user(addr: SocketAddr, token: &str) -> Client {
    let mut client = Client::connect(addr, "/ws/world/default");
    client.send_json(json!(["authenticate", {"token": token}]));
    let answer = client.recv_json();
    assert_eq!(answer[0], "authenticated", "{answer}");
    client
}

/// A common client past its handshake with the password.
fn common(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr, "/ws/common");
    assert_eq!(client.recv_json()["op"], 0);
    client.send_json(json!({"op": 1, "password": SECRET}));
    client
}

/// The metric line `switchboard_access_denied_total{dialect=…,reason=…}`.
fn denied(addr: SocketAddr, place: &str, reason: &str) -> u64 {
    metric(
        addr,
        &format!("switchboard_access_denied_total{{dialect=\"{place}\",reason=\"{reason}\"}}"),
    )
}

// ---------------------------------------------------------------------------
// The hole from the issue, closed
// ---------------------------------------------------------------------------

#[test]
fn an_anonymous_client_neither_listens_to_nor_emits_into_a_services_group() {
    let addr = start(protected());
    let mut owner = group_owner(addr, "payroll_bot", "payroll");
    let answer = upgrade_answer(addr, "/payroll/listen", "");
    assert_refused(&answer, 401, "NO_TOKEN");
    assert!(!answer.contains(&owner.uuid), "no member listed: {answer}");
    assert_refused(
        &emit(addr, "payroll", None, r#"{"pay":1}"#),
        401,
        "NO_TOKEN",
    );
    // Nothing reached the group: the next MESSAGE the owner sees is one
    // sent after the refusals, by a granted emitter.
    let mut other = service(addr, "auditor");
    let sub = other.ask(json!({"type": "SELF_SUBSCRIBE", "name": "payroll"}));
    assert_eq!(sub["code"], "SUBSCRIBED", "{sub}");
    let granted = emit(addr, "payroll", Some(EMIT_KEY), r#"{"n":"granted"}"#);
    assert!(granted.starts_with("HTTP/1.1 200"), "{granted}");
    let message = owner.recv_until("MESSAGE", None);
    assert_eq!(message["data"], json!({"n": "granted"}), "{message}");
    assert_eq!(denied(addr, "channels", "no_token"), 1);
    assert_eq!(denied(addr, "http", "no_token"), 1);
}

// ---------------------------------------------------------------------------
// Tokens for listening
// ---------------------------------------------------------------------------

#[test]
fn every_wrong_token_is_refused_before_the_upgrade() {
    let addr = start(protected());
    let expired = token_for(json!({"channels": ["news"]}), 0);
    let forged = jwt::sign(
        &json!({"sub": "u", "exp": jwt::now() + 60, "channels": ["news"]}),
        b"another key",
    );
    let none = unsigned(json!({"sub": "u", "exp": jwt::now() + 60, "channels": ["news"]}));
    let cases = [
        ("", 401, "NO_TOKEN"),
        ("token=not.a.token", 401, "BAD_TOKEN"),
        (&format!("token={forged}")[..], 401, "BAD_TOKEN"),
        (&format!("token={none}")[..], 401, "BAD_TOKEN"),
        (&format!("token={expired}")[..], 401, "TOKEN_EXPIRED"),
    ];
    for (query, status, code) in cases {
        let answer = upgrade_answer(addr, &format!("/news/listen?{query}"), "");
        assert_refused(&answer, status, code);
    }
    let other_channel = token(json!({"channels": ["sport"]}));
    let answer = upgrade_answer(addr, &format!("/news/listen?token={other_channel}"), "");
    assert_refused(&answer, 403, "FORBIDDEN");
    assert_eq!(denied(addr, "channels", "bad_token"), 3);
    assert_eq!(denied(addr, "channels", "expired_token"), 1);
    assert_eq!(denied(addr, "channels", "not_granted"), 1);
}

#[test]
fn a_granted_channel_is_heard_with_the_token_as_parameter_or_header() {
    let addr = start(protected());
    let news = token(json!({"channels": ["news"]}));
    let mut by_query = listener(addr, "news", &format!("token={news}&username=q"));
    let header = format!("Authorization: Bearer {news}\r\n");
    let mut by_header = raw_websocket_with(addr, "/news/listen", &header);
    // Its CONNECTED says it has joined: the emit below finds it.
    let (opcode, connected) = read_frame(&mut by_header);
    assert_eq!(opcode & 0x0f, 0x1, "a text frame");
    assert!(String::from_utf8_lossy(&connected).contains("CONNECTED"));
    let sent = emit(addr, "news", Some(EMIT_KEY), r#"{"headline":1}"#);
    assert!(sent.contains("\"targeted\":2"), "{sent}");
    assert_eq!(by_query.next_data(), json!({"headline": 1}));
}

#[test]
fn a_prefix_pattern_grants_every_channel_it_starts() {
    let addr = start(protected());
    let rooms = token(json!({"channels": ["team-*"]}));
    let mut a = listener(addr, "team-a", &format!("token={rooms}"));
    let mut b = listener(addr, "team-b", &format!("token={rooms}"));
    let answer = upgrade_answer(addr, &format!("/teams/listen?token={rooms}"), "");
    assert_refused(&answer, 403, "FORBIDDEN");
    emit(addr, "team-a", Some(EMIT_KEY), r#"{"to":"a"}"#);
    emit(addr, "team-b", Some(EMIT_KEY), r#"{"to":"b"}"#);
    assert_eq!(a.next_data(), json!({"to": "a"}));
    assert_eq!(b.next_data(), json!({"to": "b"}));
}

#[test]
fn the_token_is_not_part_of_a_listeners_presence() {
    let addr = start(protected());
    let news = token(json!({"channels": ["news"]}));
    let _first = listener(addr, "news", &format!("token={news}&username=ann"));
    let mut second = Client::connect(addr, &format!("/news/listen?token={news}"));
    let connected = second.recv_json();
    assert_eq!(
        connected["payload"]["members"][0]["presence"],
        json!({"username": "ann"}),
        "{connected}"
    );
}

// ---------------------------------------------------------------------------
// Emits
// ---------------------------------------------------------------------------

#[test]
fn emits_need_the_operator_key_or_a_publish_grant() {
    let addr = start(protected());
    let news = token(json!({"channels": ["news"]}));
    let mut reader = listener(addr, "news", &format!("token={news}"));
    let cases = [
        (None, 401, "NO_TOKEN"),
        (Some("garbage"), 401, "BAD_TOKEN"),
        (Some(news.as_str()), 403, "FORBIDDEN"),
    ];
    for (bearer, status, code) in cases {
        assert_refused(&emit(addr, "news", bearer, r#"{"x":0}"#), status, code);
    }
    let other = token(json!({"publish": ["sport"]}));
    assert_refused(
        &emit(addr, "news", Some(&other), r#"{"x":0}"#),
        403,
        "FORBIDDEN",
    );
    let publisher = token(json!({"publish": ["ne*"]}));
    let sent = emit(addr, "news", Some(&publisher), r#"{"x":1}"#);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(
        sent.contains("\"success\"") || sent.contains("\"eventID\""),
        "{sent}"
    );
    // The refused ones never arrived: the first DATA is the granted one.
    assert_eq!(reader.next_data(), json!({"x": 1}));
    let operator = emit(addr, "news", Some(EMIT_KEY), r#"{"x":2}"#);
    assert!(operator.starts_with("HTTP/1.1 200"), "{operator}");
    assert_eq!(reader.next_data(), json!({"x": 2}));
    assert_eq!(denied(addr, "http", "not_granted"), 2);
}

#[test]
fn public_patterns_open_chosen_channels_to_anyone() {
    let addr = start(Config {
        public_channels: Patterns::parse_list("lobby"),
        public_emit: Patterns::parse_list("inbox*"),
        ..protected()
    });
    let mut lobby = listener(addr, "lobby", "");
    assert_refused(&upgrade_answer(addr, "/inbox1/listen", ""), 401, "NO_TOKEN");
    assert_refused(&emit(addr, "lobby", None, r#"{"a":1}"#), 401, "NO_TOKEN");
    let sent = emit(addr, "inbox1", None, r#"{"a":2}"#);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    emit(addr, "lobby", Some(EMIT_KEY), r#"{"a":3}"#);
    assert_eq!(lobby.next_data(), json!({"a": 3}));
}

// ---------------------------------------------------------------------------
// Every pair of dialects
// ---------------------------------------------------------------------------

#[test]
fn a_channels_listener_hears_every_dialect_only_on_its_granted_channel() {
    let addr = start(protected());
    let granted = token(json!({"channels": ["ops"]}));
    let mut reader = listener(addr, "ops", &format!("token={granted}"));
    // concierge MESSAGE to the group (a trusted service).
    let mut bot = service(addr, "bot");
    let sent = bot.ask(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "ops"}, "data": {"from": "concierge"}}));
    assert_eq!(sent["code"], "MESSAGE_SENT", "{sent}");
    assert_eq!(reader.next_data(), json!({"from": "concierge"}));
    // common hub.publish (a trusted service).
    let mut rpc = common(addr);
    rpc.send_json(json!({"op": 4, "w": "hub.publish", "a": ["ops", {"from": "common"}], "n": 1}));
    assert_eq!(rpc.recv_json()["r"]["delivered"], 1);
    assert_eq!(reader.next_data(), json!({"from": "common"}));
    // world hub.publish: refused without a publish grant, heard with one.
    let mut reader_only = world_user(addr, &token(json!({})));
    reader_only
        .send_json(json!(["hub.publish", 1, {"topic": "ops", "data": {"from": "sneaky world"}}]));
    let refused = reader_only.recv_json();
    assert_eq!(
        (&refused[0], &refused[2]["code"]),
        (&json!("error"), &json!("forbidden")),
        "{refused}"
    );
    let mut writer = world_user(addr, &token(json!({"publish": ["ops"]})));
    writer.send_json(json!(["hub.publish", 2, {"topic": "ops", "data": {"from": "world"}}]));
    assert_eq!(writer.recv_json()[0], "success");
    assert_eq!(reader.next_data(), json!({"from": "world"}));
}

#[test]
fn a_concierge_group_is_written_by_other_dialects_only_with_a_grant() {
    let addr = start(protected());
    let mut owner = group_owner(addr, "owner", "desk");
    let mut world = world_user(addr, &token(json!({})));
    world.send_json(json!(["hub.publish", 1, {"topic": "desk", "data": 1}]));
    assert_eq!(world.recv_json()[2]["code"], "forbidden");
    world.send_json(json!(["hub.presence", 2, {"topic": "desk"}]));
    assert_eq!(world.recv_json()[2]["code"], "forbidden");
    let emitted = emit(
        addr,
        "desk",
        Some(&token(json!({"publish": ["desk"]}))),
        "2",
    );
    assert!(emitted.starts_with("HTTP/1.1 200"), "{emitted}");
    let message = owner.recv_until("MESSAGE", None);
    assert_eq!(
        message["data"], 2,
        "the refused publish never arrived: {message}"
    );
}

#[test]
fn world_rooms_are_their_worlds_users_and_anonymous_users_get_none() {
    let addr = start(protected());
    let mut ann = world_user(addr, &token(json!({"sub": "ann"})));
    ann.send_json(json!(["room.enter", 1, {"room": "hall"}]));
    assert_eq!(ann.recv_json()[0], "success");
    // A trusted service writes into the room; the world user reads it.
    let mut rpc = common(addr);
    rpc.send_json(json!({"op": 4, "w": "hub.publish", "a": ["default/hall", "hi"], "n": 1}));
    assert_eq!(rpc.recv_json()["r"]["delivered"], 1);
    let heard = ann.recv_json();
    assert_eq!(heard[0], "room.send", "{heard}");
    assert_eq!(heard[1]["content"], "hi", "{heard}");
    // An anonymous world client (client_id) enters nothing on a protected hub.
    let mut anon = Client::connect(addr, "/ws/world/default");
    anon.send_json(json!(["authenticate", {"client_id": "someone"}]));
    assert_eq!(anon.recv_json()[0], "authenticated");
    anon.send_json(json!(["room.enter", 7, {"room": "hall"}]));
    let refused = anon.recv_json();
    assert_eq!(
        refused,
        json!(["error", 7, {"code": "room.forbidden", "message": "you may not read room \"hall\": not granted"}])
    );
    // A world user cannot list the hub's members across topics.
    ann.send_json(json!(["hub.clients", 3, {}]));
    assert_eq!(ann.recv_json()[2]["code"], "forbidden");
    assert_eq!(denied(addr, "world", "not_granted"), 1);
}

#[test]
fn a_blazing_user_edits_only_the_documents_its_token_grants() {
    let dir = std::env::temp_dir().join(format!("switchboard-access-{}", std::process::id()));
    let addr = start(Config {
        data_dir: dir,
        ..protected()
    });
    let only_a =
        token(json!({"sub": "0e5b2a0c-3a52-4a51-9b2f-1d1f6f0a0001", "computers": ["pc-a"]}));
    let (request, stream) = blazing_request(addr, &only_a, "pc-b");
    let (mut refused, _) = tungstenite::client(request, stream).expect("handshake");
    let close = loop {
        match refused.read() {
            Ok(tungstenite::Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(_) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(close, 3003);
    let (request, stream) = blazing_request(addr, &only_a, "pc-a");
    let (mut granted, _) = tungstenite::client(request, stream).expect("handshake");
    match granted.read().expect("a sync") {
        tungstenite::Message::Binary(_) | tungstenite::Message::Text(_) => {}
        other => panic!("expected the sync, got {other:?}"),
    }
    assert_eq!(denied(addr, "blazing", "not_granted"), 1);
}

#[test]
fn hub_topics_lists_only_what_the_caller_may_read() {
    let addr = start(protected());
    let _owner = group_owner(addr, "owner", "secretgroup");
    let mut ann = world_user(addr, &token(json!({"sub": "ann"})));
    ann.send_json(json!(["room.enter", 1, {"room": "hall"}]));
    assert_eq!(ann.recv_json()[0], "success");
    ann.send_json(json!(["hub.topics", 2, {}]));
    let listed = ann.recv_json();
    let names: Vec<&str> = listed[2]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default/hall"], "{listed}");
}

// ---------------------------------------------------------------------------
// The reserved topic and the status page
// ---------------------------------------------------------------------------

#[test]
fn the_status_topic_needs_its_exact_name_on_a_protected_hub() {
    let addr = start(protected());
    assert_refused(&upgrade_answer(addr, "/$sys/listen", ""), 401, "NO_TOKEN");
    let everything = token(json!({"channels": ["*"]}));
    let answer = upgrade_answer(addr, &format!("/$sys/listen?token={everything}"), "");
    assert_refused(&answer, 403, "FORBIDDEN");
    let sys = token(json!({"channels": ["$sys"]}));
    let mut status = listener(addr, "$sys", &format!("token={sys}"));
    assert!(status.next_data()["uptime_s"].is_u64());
    let public = start(Config {
        public_channels: Patterns::parse_list("$sys"),
        ..protected()
    });
    let mut page = listener(public, "$sys", "");
    assert!(page.next_data()["uptime_s"].is_u64());
}

// ---------------------------------------------------------------------------
// Origins and proxies
// ---------------------------------------------------------------------------

#[test]
fn browser_origins_are_the_servers_own_or_listed() {
    let addr = start(Config {
        allowed_origins: AllowedOrigins::parse("https://app.example").unwrap(),
        ..config()
    });
    let foreign = upgrade_answer(addr, "/room/listen", "Origin: https://evil.example\r\n");
    assert_refused(&foreign, 403, "ORIGIN");
    assert!(
        foreign.contains("https://evil.example"),
        "names the origin: {foreign}"
    );
    let own = format!("Origin: http://{addr}\r\n");
    assert!(upgrade_answer(addr, "/room/listen", &own).starts_with("HTTP/1.1 101"));
    let listed = "Origin: https://app.example\r\n";
    assert!(upgrade_answer(addr, "/room/listen", listed).starts_with("HTTP/1.1 101"));
    assert!(upgrade_answer(addr, "/room/listen", "").starts_with("HTTP/1.1 101"));
    let emit_from_elsewhere = http(
        addr,
        "POST /room/emit HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\nContent-Length: 1\r\n\r\n1",
    );
    assert_refused(&emit_from_elsewhere, 403, "ORIGIN");
    assert_eq!(denied(addr, "http", "origin"), 2);
}

#[test]
fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let cap = |trusted: &str| Config {
        max_connections_per_ip: Some(1),
        trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
        ..config()
    };
    let behind_proxy = start(cap("127.0.0.1"));
    // Two clients behind one proxy: each has its own share.
    let a = raw_websocket_with(
        behind_proxy,
        "/r/listen",
        "X-Forwarded-For: 203.0.113.7\r\n",
    );
    let b = raw_websocket_with(
        behind_proxy,
        "/r/listen",
        "X-Forwarded-For: 203.0.113.8\r\n",
    );
    // The same client twice is over its cap; a forged left entry changes nothing.
    let again = upgrade_answer(
        behind_proxy,
        "/r/listen",
        "X-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n",
    );
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");
    drop((a, b));
    // Not from a trusted proxy: the header is ignored, the socket counts.
    let direct = start(cap("10.0.0.0/8"));
    let held = raw_websocket_with(direct, "/r/listen", "X-Forwarded-For: 203.0.113.7\r\n");
    let second = upgrade_answer(direct, "/r/listen", "X-Forwarded-For: 203.0.113.8\r\n");
    assert!(second.starts_with("HTTP/1.1 429"), "{second}");
    drop(held);
}

// ---------------------------------------------------------------------------
// Open hubs, expiry, reload, the demo
// ---------------------------------------------------------------------------

#[test]
fn an_open_hub_lets_anyone_listen_and_emit_and_warns_at_start() {
    let addr = start(config());
    let mut anyone = listener(addr, "payroll", "");
    let sent = emit(addr, "payroll", None, r#"{"open":true}"#);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert_eq!(anyone.next_data(), json!({"open": true}));
    let server = Process::start(&["--listen", "127.0.0.1:0"]);
    let warning = server.log_line("open hub");
    assert!(warning.contains("anyone"), "{warning}");
    // A protected hub says nothing of the kind: the first line it logs is
    // the demo warning that follows the open-hub check.
    let quiet = Process::start(&["--listen", "127.0.0.1:0", "--emit-token", "t", "--demo"]);
    let first = quiet.log.recv_timeout(PATIENCE).expect("a log line");
    assert!(first.contains("--demo"), "{first}");
}

#[test]
fn a_listener_is_closed_when_its_token_expires() {
    let addr = start(protected());
    let short = token_for(json!({"channels": ["news"]}), 2);
    let mut reader = listener(addr, "news", &format!("token={short}"));
    let error = loop {
        let frame = reader.recv_json();
        if frame["type"] == "ERROR" {
            break frame;
        }
    };
    assert_eq!(error["payload"]["code"], "TOKEN_EXPIRED", "{error}");
    let (code, reason) = reader.expect_close();
    assert_eq!((code, reason.as_str()), (1008, "authorization expired"));
}

#[test]
fn a_reload_opens_channels_for_new_listeners_and_keeps_old_grants() {
    let (addr, handle) = start_with_handle(protected());
    let news = token(json!({"channels": ["news"]}));
    let mut granted = listener(addr, "news", &format!("token={news}"));
    assert_refused(&upgrade_answer(addr, "/news/listen", ""), 401, "NO_TOKEN");
    handle.reload(Config {
        public_channels: Patterns::parse_list("news"),
        ..protected()
    });
    wait_until("the reload", || {
        upgrade_answer(addr, "/news/listen", "").starts_with("HTTP/1.1 101")
    });
    emit(addr, "news", Some(EMIT_KEY), r#"{"after":"reload"}"#);
    assert_eq!(granted.next_data(), json!({"after": "reload"}));
}

#[test]
fn demo_tokens_grant_the_demo_channel_and_nothing_more() {
    let addr = start(Config {
        demo: true,
        ..protected()
    });
    let answer = get(addr, "/demo/token?channel=lobby&name=Ann");
    let (status, body) = status_and_body(&answer);
    assert_eq!(status, 200, "{answer}");
    let demo = body["token"].as_str().unwrap().to_string();
    let mut lobby = listener(addr, "lobby", &format!("token={demo}"));
    let sent = emit(addr, "lobby", Some(&demo), r#"{"demo":1}"#);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert_eq!(lobby.next_data(), json!({"demo": 1}));
    let elsewhere = upgrade_answer(addr, &format!("/payroll/listen?token={demo}"), "");
    assert_refused(&elsewhere, 403, "FORBIDDEN");
    assert_refused(&emit(addr, "payroll", Some(&demo), "1"), 403, "FORBIDDEN");
    let pattern = get(addr, "/demo/token?channel=*");
    assert!(pattern.starts_with("HTTP/1.1 400"), "{pattern}");
}

// ---------------------------------------------------------------------------
// A cluster
// ---------------------------------------------------------------------------

/// A protected node of a cluster through `redis`.
#[cfg(feature = "redis")]
fn node(redis: &crate::support::redis::Redis, name: &str) -> SocketAddr {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-access-{}-{name}-{}",
        std::process::id(),
        redis.port
    ));
    start(Config {
        redis: Some(redis.url()),
        data_dir: dir,
        ..protected()
    })
}

#[cfg(feature = "redis")]
#[test]
fn across_nodes_a_member_gets_only_what_its_own_node_would_give_it() {
    let redis = crate::support::redis::Redis::start();
    let (a, b) = (node(&redis, "a"), node(&redis, "b"));
    let news = token(json!({"channels": ["news"]}));
    let mut reader = listener(b, "news", &format!("token={news}"));
    assert_refused(&upgrade_answer(b, "/sport/listen", ""), 401, "NO_TOKEN");
    // A world user on node a without a publish grant writes nothing.
    let mut world = world_user(a, &token(json!({})));
    wait_until("node a to know the listener on b", || {
        world.send_json(json!(["hub.topics", 0, {}]));
        let _ = world.recv_json();
        let sent = emit(a, "news", Some(EMIT_KEY), "0");
        sent.contains("\"targeted\":1")
    });
    world.send_json(json!(["hub.publish", 1, {"topic": "news", "data": "sneaky"}]));
    assert_eq!(world.recv_json()[2]["code"], "forbidden");
    // The operator's key writes anywhere, but the reader on b hears only
    // its own channel.
    let sport = emit(a, "sport", Some(EMIT_KEY), r#""sport""#);
    assert!(sport.contains("\"targeted\":0"), "{sport}");
    let mut publisher = world_user(a, &token(json!({"publish": ["news"]})));
    publisher.send_json(json!(["hub.publish", 2, {"topic": "news", "data": "granted"}]));
    assert_eq!(publisher.recv_json()[0], "success");
    // The probing emits (the number 0) may arrive more than once; after
    // them, the first other message is the granted one, not "sneaky" or
    // "sport".
    let first_other = loop {
        let data = reader.next_data();
        if data != json!(0) {
            break data;
        }
    };
    assert_eq!(first_other, json!("granted"));
}

#[test]
fn refusals_carry_their_registered_reason_phrases() {
    let addr = start(protected());
    assert!(upgrade_answer(addr, "/news/listen", "").starts_with("HTTP/1.1 401 Unauthorized\r\n"));
    let other = token(json!({"channels": ["sport"]}));
    let answer = upgrade_answer(addr, &format!("/news/listen?token={other}"), "");
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
}

#[test]
fn without_a_secret_concierge_and_common_clients_are_not_trusted_services() {
    // Protected by a key alone: a concierge client proved nothing.
    let addr = start(Config {
        jwt_key: Some(KEY.into()),
        ..config()
    });
    let mut anyone = Concierge::join(addr, "anyone");
    let refused = anyone.ask(json!({"type": "GROUP_CREATE", "name": "payroll"}));
    assert_eq!(refused["code"], "BAD", "{refused}");
    assert!(
        refused["desc"]
            .as_str()
            .unwrap_or_default()
            .contains("not granted"),
        "{refused}"
    );
    let mut rpc = Client::connect(addr, "/ws/common");
    assert_eq!(rpc.recv_json()["op"], 0);
    rpc.send_json(json!({"op": 1, "password": ""}));
    rpc.send_json(json!({"op": 4, "w": "hub.publish", "a": ["payroll", 1], "n": 1}));
    assert_eq!(rpc.recv_json()["r"]["error"]["code"], "forbidden");
}
