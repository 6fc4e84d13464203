//! End-to-end tests of the world dialect (`protocols/world.rst` and the
//! decisions in DESIGN.md) through real sockets: unknown worlds, pings,
//! authentication by JWT or client id, the generic RPC with its correlation
//! ids, rooms (enter, leave, send) and profiles, the hub's shared methods,
//! the per-user connection limit (`connection.replaced`), the operator's
//! reload, malformed messages, and methods registered by an embedder.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};
use switchboard::methods::RpcError;
use switchboard::router::Patterns;
use switchboard::{jwt, Config, Server};
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const KEY: &str = "k3y";
const SECRET: &str = "s3cret";

/// Two worlds, `w1` and `w2`, and the JWT key [`KEY`]. The key makes the
/// hub protected; the worlds' rooms are opened to anonymous (`client_id`)
/// users, and to everyone's `hub.publish`, as an operator would with
/// `--public-channels 'w1/*,w2/*' --public-emit '*'`.
fn worlds() -> Config {
    Config {
        jwt_key: Some(KEY.into()),
        // Common clients prove it, and are trusted services.
        secret: Some(SECRET.into()),
        worlds: vec!["w1".into(), "w2".into()],
        public_channels: Patterns::parse_list("w1/*,w2/*"),
        public_emit: Patterns::everything(),
        ..config()
    }
}

/// A token for `sub` (with `name` if given), valid for an hour.
fn token(sub: &str, name: Option<&str>) -> String {
    let mut claims = json!({"sub": sub, "exp": jwt::now() + 3600});
    if let Some(name) = name {
        claims["name"] = json!(name);
    }
    jwt::sign(&claims, KEY.as_bytes())
}

/// Unpadded base64url, to build tokens by hand.
fn b64url(bytes: &[u8]) -> String {
    switchboard::base64::encode_url(bytes)
}

/// Connects to world `world` without authenticating.
fn connect(addr: SocketAddr, world: &str) -> Client {
    Client::connect(addr, &format!("/ws/world/{world}"))
}

/// The next message's raw text.
fn recv_text(client: &mut Client) -> String {
    match client.recv() {
        Message::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// `world.config`'s rooms sorted by name, so that they compare.
fn sorted_rooms(mut authenticated: Value) -> Value {
    if let Some(Value::Array(rooms)) = authenticated.pointer_mut("/1/world.config/rooms") {
        rooms.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    authenticated
}

/// Sends `authenticate` with `credentials`; returns the answer.
fn authenticate(client: &mut Client, credentials: Value) -> Value {
    client.send_json(json!(["authenticate", credentials]));
    sorted_rooms(client.recv_json())
}

/// The `authenticated` message for user `id` (`name`) in `world`, whose
/// rooms are `rooms` (sorted by name, each `{"name", "members"}`; in these
/// tests every listed room is readable and writable). The rest of each
/// room is venueless's shape, which its webapp reads (docs/world.md, "Coming from
/// venueless").
fn authenticated(id: &str, name: Option<&str>, world: &str, rooms: Value) -> Value {
    let rooms: Vec<Value> = rooms
        .as_array()
        .unwrap()
        .iter()
        .map(|room| {
            json!({
                "id": room["name"],
                "name": room["name"],
                "members": room["members"],
                "modules": [],
                "permissions": ["room:view", "room:chat.send"],
            })
        })
        .collect();
    json!(["authenticated", {
        "user.config": {"id": id, "name": name, "profile": {}},
        "world.config": {
            "world": {"id": world, "title": world},
            "permissions": ["world:view"],
            "rooms": rooms,
        },
    }])
}

/// Connects to `world` and authenticates with a token for `sub` (`name`).
fn with_token(addr: SocketAddr, world: &str, sub: &str, name: Option<&str>) -> Client {
    let mut client = connect(addr, world);
    let answer = authenticate(&mut client, json!({"token": token(sub, name)}));
    assert_eq!(answer[0], "authenticated", "{answer}");
    assert_eq!(
        answer[1]["user.config"],
        json!({"id": sub, "name": name, "profile": {}}),
        "{answer}"
    );
    assert_eq!(
        answer[1]["world.config"]["world"],
        json!({"id": world, "title": world})
    );
    client
}

/// Connects to `world` and authenticates with `client_id`.
fn with_id(addr: SocketAddr, world: &str, client_id: &str) -> Client {
    let mut client = connect(addr, world);
    let answer = authenticate(&mut client, json!({"client_id": client_id}));
    assert_eq!(answer[0], "authenticated", "{answer}");
    assert_eq!(
        answer[1]["user.config"],
        json!({"id": format!("anon:{client_id}"), "name": null, "profile": {}}),
        "{answer}"
    );
    client
}

/// Sends `[action, id, payload]` and returns the answer.
fn call(client: &mut Client, action: &str, id: Value, payload: Value) -> Value {
    client.send_json(json!([action, id, payload]));
    client.recv_json()
}

/// Calls `action` and asserts that it succeeded; returns the result.
#[track_caller]
fn ok(client: &mut Client, action: &str, payload: Value) -> Value {
    let answer = call(client, action, json!("ok?"), payload);
    assert_eq!(answer[0], "success", "{action}: {answer}");
    assert_eq!(answer[1], "ok?", "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 3, "{answer}");
    answer[2].clone()
}

/// Calls `action`, asserts that it failed with `code`; returns the error.
#[track_caller]
fn fails(client: &mut Client, action: &str, payload: Value, code: &str) -> Value {
    let answer = call(client, action, json!(99), payload.clone());
    assert_eq!(answer[0], "error", "{action} {payload}: {answer}");
    assert_eq!(answer[1], 99, "{answer}");
    assert_eq!(answer[2]["code"], code, "{action} {payload}: {answer}");
    assert!(answer[2]["message"].is_string(), "{answer}");
    answer[2].clone()
}

/// Asserts that nothing was queued for this authenticated client before
/// now: a call through the router is answered after anything the router
/// sent it earlier.
#[track_caller]
fn assert_quiet(client: &mut Client) {
    client.send_json(json!(["hub.info", "quiet?", {}]));
    let next = client.recv_json();
    assert!(
        next[0] == "success" && next[1] == "quiet?",
        "expected nothing before the answer, got {next}"
    );
}

/// The user as others see it.
fn user(id: &str, name: Option<&str>, profile: Value) -> Value {
    json!({"id": id, "name": name, "profile": profile})
}

/// `hub.clients` as a trusted service (a common client) sees it: on a
/// protected hub, world users may not list every member.
fn hub_clients(addr: SocketAddr) -> Vec<Value> {
    let mut service = common_client(addr);
    service.send_json(json!({"op": 4, "w": "hub.clients", "a": [], "n": 1}));
    let response = service.recv_json();
    response["r"]
        .as_array()
        .unwrap_or_else(|| panic!("hub.clients is not an array: {response}"))
        .clone()
}

/// The status code and the body of an HTTP response.
fn status_and_body(response: &str) -> (u16, String) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

/// `method path` with an optional `Authorization` header.
fn admin(addr: SocketAddr, method: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let header = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{header}Content-Length: 0\r\n\r\n");
    status_and_body(&http(addr, &request))
}

/// A common client that has sent its HELLO_ACK (the tests that use one
/// give it a long heartbeat interval, so that it need not heartbeat).
fn common_client(addr: SocketAddr) -> Client {
    let mut client = Client::connect(addr, "/ws/common");
    let hello = client.recv_json();
    assert_eq!(hello["op"], 0, "{hello}");
    client.send_json(json!({"op": 1, "password": SECRET}));
    client
}

// ---------------------------------------------------------------------------
// Connection management
// ---------------------------------------------------------------------------

#[test]
fn an_unknown_world_is_told_so_and_closed() {
    let addr = start(worlds());
    for path in [
        "/ws/world/nope",
        "/ws/world/default",
        "/ws/world/W1",
        "/ws/world/",
        "/ws/world/w1/r",
    ] {
        let mut client = Client::connect(addr, path);
        assert_eq!(
            client.recv_json(),
            json!(["error", {"code": "world.unknown_world"}]),
            "{path}"
        );
        assert_eq!(client.expect_close().0, 1008, "{path}");
    }
    // The known worlds still work.
    with_id(addr, "w1", "a");
    with_id(addr, "w2", "b");
}

#[test]
fn the_default_config_has_the_world_default() {
    let addr = start(config());
    let mut client = connect(addr, "default");
    assert_eq!(
        authenticate(&mut client, json!({"client_id": "abc"})),
        authenticated("anon:abc", None, "default", json!([]))
    );
    let mut other = connect(addr, "w1");
    assert_eq!(
        other.recv_json(),
        json!(["error", {"code": "world.unknown_world"}])
    );
    assert_eq!(other.expect_close().0, 1008);
}

#[test]
fn pings_are_echoed_byte_for_byte_before_and_after_authentication() {
    let addr = start(worlds());
    let mut client = connect(addr, "w1");
    let cases = [
        (r#"["ping", 12.50]"#, r#"["pong",12.50]"#),
        (r#"["ping",1501676765]"#, r#"["pong",1501676765]"#),
        (r#"["ping", "a \"string\""]"#, r#"["pong","a \"string\""]"#),
        (
            r#"["ping",{"b": [1, 2.0], "a": null}]"#,
            r#"["pong",{"b": [1, 2.0], "a": null}]"#,
        ),
    ];
    for (ping, pong) in cases {
        client.send_text(ping);
        assert_eq!(recv_text(&mut client), pong, "before: {ping}");
    }
    assert_eq!(
        authenticate(&mut client, json!({"token": token("u1", Some("U"))})),
        authenticated("u1", Some("U"), "w1", json!([]))
    );
    for (ping, pong) in cases {
        client.send_text(ping);
        assert_eq!(recv_text(&mut client), pong, "after: {ping}");
    }
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[test]
fn a_token_authenticates_with_the_world_and_its_rooms() {
    let addr = start(worlds());
    let mut alice = connect(addr, "w1");
    assert_eq!(
        authenticate(&mut alice, json!({"token": token("alice", Some("Alice"))})),
        authenticated("alice", Some("Alice"), "w1", json!([]))
    );
    ok(&mut alice, "room.enter", json!({"room": "lobby"}));
    ok(&mut alice, "room.enter", json!({"room": "bar"}));
    let mut bob = with_id(addr, "w1", "bob");
    ok(&mut bob, "room.enter", json!({"room": "lobby"}));
    let mut dave = with_token(addr, "w2", "dave", None);
    ok(&mut dave, "room.enter", json!({"room": "elsewhere"}));

    // A token without a name: name null. Rooms of w1 only, with counts.
    let mut carol = connect(addr, "w1");
    assert_eq!(
        authenticate(&mut carol, json!({"token": token("carol", None)})),
        authenticated(
            "carol",
            None,
            "w1",
            json!([{"name": "bar", "members": 1}, {"name": "lobby", "members": 2}])
        )
    );
    let mut erin = connect(addr, "w2");
    assert_eq!(
        authenticate(&mut erin, json!({"client_id": "erin"})),
        authenticated(
            "anon:erin",
            None,
            "w2",
            json!([{"name": "elsewhere", "members": 1}])
        )
    );
}

#[test]
fn a_client_id_authenticates_without_a_name() {
    let addr = start(worlds());
    let mut client = connect(addr, "w2");
    assert_eq!(
        authenticate(&mut client, json!({"client_id": "abc"})),
        authenticated("anon:abc", None, "w2", json!([]))
    );
}

#[test]
fn authentication_failures_leave_the_connection_open_for_a_retry() {
    let addr = start(worlds());
    let mut client = connect(addr, "w1");
    let error = |code: &str| json!(["error", {"code": code}]);

    // Nothing to authenticate with.
    for text in [
        r#"["authenticate"]"#,
        r#"["authenticate", {}]"#,
        r#"["authenticate", {"token": ""}]"#,
        r#"["authenticate", {"client_id": ""}]"#,
        r#"["authenticate", {"token": "", "client_id": ""}]"#,
        r#"["authenticate", {"other": "x"}]"#,
    ] {
        client.send_text(text);
        assert_eq!(
            client.recv_json(),
            error("auth.missing_id_or_token"),
            "{text}"
        );
    }

    // Tokens that do not check out.
    let good = token("alice", Some("Alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_claims = b64url(br#"{"sub":"admin","exp":9999999999}"#);
    let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    let wrong_key = jwt::sign(
        &json!({"sub": "alice", "exp": jwt::now() + 3600}),
        b"another key",
    );
    let alg_none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(br#"{"sub":"alice","exp":9999999999}"#)
    );
    let alg_hs384 = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"HS384","typ":"JWT"}"#),
        parts[1],
        parts[2]
    );
    let no_exp = jwt::sign(&json!({"sub": "alice"}), KEY.as_bytes());
    let no_sub = jwt::sign(&json!({"exp": jwt::now() + 3600}), KEY.as_bytes());
    let bad_signature = format!("{}.{}.{}", parts[0], parts[1], b64url(&[0u8; 32]));
    for bad in [
        tampered.as_str(),
        wrong_key.as_str(),
        alg_none.as_str(),
        alg_hs384.as_str(),
        no_exp.as_str(),
        no_sub.as_str(),
        bad_signature.as_str(),
        "garbage",
        "a.b.c",
        &good[..good.len() - 1],
        &format!("{good}.x"),
    ] {
        client.send_json(json!(["authenticate", {"token": bad}]));
        assert_eq!(client.recv_json(), error("auth.invalid_token"), "{bad}");
    }

    // An expired token.
    let expired = jwt::sign(
        &json!({"sub": "alice", "exp": jwt::now() - 10}),
        KEY.as_bytes(),
    );
    client.send_json(json!(["authenticate", {"token": expired}]));
    assert_eq!(client.recv_json(), error("auth.expired_token"));

    // Still unauthenticated, still open: the retry works.
    client.send_json(json!(["hub.info", 1, {}]));
    assert_eq!(
        client.recv_json(),
        json!(["error", 1, {"code": "protocol.unauthenticated"}])
    );
    assert_eq!(
        authenticate(&mut client, json!({"token": good})),
        authenticated("alice", Some("Alice"), "w1", json!([]))
    );
    ok(&mut client, "hub.info", json!({}));

    // Once is enough, whatever is offered the second time.
    for credentials in [
        json!({"token": token("mallory", None)}),
        json!({"client_id": "mallory"}),
        json!({}),
    ] {
        client.send_json(json!(["authenticate", credentials]));
        assert_eq!(
            client.recv_json(),
            error("auth.already_authenticated"),
            "{credentials}"
        );
    }
    // Still alice.
    let entered = ok(&mut client, "room.enter", json!({"room": "r"}));
    assert_eq!(
        entered,
        json!({"room": "r", "user": user("alice", Some("Alice"), json!({}))})
    );
}

#[test]
fn without_a_jwt_key_tokens_are_refused_and_client_ids_work() {
    let addr = start(Config {
        worlds: vec!["w1".into()],
        ..config()
    });
    let mut client = connect(addr, "w1");
    client.send_json(json!(["authenticate", {"token": token("alice", None)}]));
    assert_eq!(
        client.recv_json(),
        json!(["error", {"code": "auth.invalid_token"}])
    );
    assert_eq!(
        authenticate(&mut client, json!({"client_id": "abc"})),
        authenticated("anon:abc", None, "w1", json!([]))
    );
}

#[test]
fn actions_before_authentication_are_refused() {
    let addr = start(worlds());
    let mut client = connect(addr, "w1");
    let cases = [
        (
            r#"["room.enter", 1, {"room": "r"}]"#,
            r#"["error",1,{"code":"protocol.unauthenticated"}]"#,
        ),
        (
            r#"["hub.info", "abc", {}]"#,
            r#"["error","abc",{"code":"protocol.unauthenticated"}]"#,
        ),
        (
            r#"["room.send", 1.50, {"room": "r", "content": 1}]"#,
            r#"["error",1.50,{"code":"protocol.unauthenticated"}]"#,
        ),
        (
            r#"["no.such.thing", {"k": [1]}, {}]"#,
            r#"["error",{"k": [1]},{"code":"protocol.unauthenticated"}]"#,
        ),
    ];
    for (request, answer) in cases {
        client.send_text(request);
        assert_eq!(recv_text(&mut client), answer, "{request}");
    }
    // Without an id, the error has none either.
    client.send_text(r#"["hub.info", {}]"#);
    assert_eq!(
        client.recv_json(),
        json!(["error", {"code": "protocol.unauthenticated"}])
    );
    // Nothing of it happened: no room was entered.
    let mut other = connect(addr, "w1");
    assert_eq!(
        authenticate(&mut other, json!({"client_id": "x"})),
        authenticated("anon:x", None, "w1", json!([]))
    );
}

// ---------------------------------------------------------------------------
// Generic RPC
// ---------------------------------------------------------------------------

#[test]
fn unknown_actions_are_answered_unknown_command() {
    let addr = start(worlds());
    let mut client = with_id(addr, "w1", "abc");
    for action in ["no.such.action", "room.dance", "hub.nothing", ""] {
        let error = fails(&mut client, action, json!({}), "protocol.unknown_command");
        assert_eq!(error.as_object().unwrap().len(), 2, "{error}");
    }
    // Without an id.
    client.send_json(json!(["no.such.action", {}]));
    let answer = client.recv_json();
    assert_eq!(answer[0], "error", "{answer}");
    assert_eq!(answer[1]["code"], "protocol.unknown_command", "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 2, "{answer}");
}

#[test]
fn replies_carry_the_correlation_id_exactly_when_the_request_had_one() {
    let addr = start(worlds());
    let mut client = with_token(addr, "w1", "alice", None);

    let answer = call(&mut client, "hub.info", json!(7), json!({}));
    assert_eq!(answer[0], "success", "{answer}");
    assert_eq!(answer[1], 7);
    assert_eq!(answer[2]["server"], "switchboard", "{answer}");
    assert_eq!(answer[2]["members"]["world"], 1, "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 3);

    // Ids of any JSON type, echoed byte for byte.
    for id in [
        r#""a string""#,
        "1.50",
        "-0",
        "1e3",
        r#"{"k": [1, "x"], "z": null}"#,
        "[1,2]",
        "null",
        "true",
    ] {
        client.send_text(&format!(r#"["hub.info", {id}, {{}}]"#));
        let text = recv_text(&mut client);
        let prefix = format!(r#"["success",{id},"#);
        assert!(text.starts_with(&prefix), "{id}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.as_array().unwrap().len(), 3, "{text}");
        assert_eq!(answer[2]["server"], "switchboard", "{text}");
    }

    // Two elements: no id, in the success or the error.
    client.send_text(r#"["hub.info", {}]"#);
    let answer = client.recv_json();
    assert_eq!(answer[0], "success", "{answer}");
    assert_eq!(answer[1]["server"], "switchboard", "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 2, "{answer}");
    client.send_text(r#"["room.send", {"room": "not-entered", "content": 1}]"#);
    let answer = client.recv_json();
    assert_eq!(answer[0], "error", "{answer}");
    assert_eq!(answer[1]["code"], "room.not_entered", "{answer}");
    assert_eq!(answer.as_array().unwrap().len(), 2, "{answer}");

    // Errors echo the id byte for byte too.
    client.send_text(r#"["room.enter", 2.50, {"room": ""}]"#);
    let text = recv_text(&mut client);
    assert!(text.starts_with(r#"["error",2.50,{"#), "{text}");
}

// ---------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------

#[test]
fn rooms_tell_their_members_who_enters_talks_and_leaves() {
    let addr = start(worlds());
    let mut alice = with_token(addr, "w1", "alice", Some("Alice"));
    let mut bob = with_id(addr, "w1", "bob");
    let mut carol = with_id(addr, "w1", "carol");
    let mut dave = with_id(addr, "w2", "dave");
    let mut idle = with_id(addr, "w1", "idle");
    let alice_view = user("alice", Some("Alice"), json!({}));
    let bob_view = user("anon:bob", None, json!({}));

    ok(&mut carol, "room.enter", json!({"room": "other"}));
    ok(&mut dave, "room.enter", json!({"room": "r"}));

    // Alice enters an empty room: the answer, and nobody else hears of it.
    assert_eq!(
        ok(&mut alice, "room.enter", json!({"room": "r"})),
        json!({"room": "r", "user": alice_view})
    );
    // Bob enters: alice hears of it.
    let entered = json!({"room": "r", "user": bob_view});
    assert_eq!(ok(&mut bob, "room.enter", json!({"room": "r"})), entered);
    assert_eq!(alice.recv_json(), json!(["room.enter", entered]));
    for client in [&mut carol, &mut dave, &mut idle] {
        assert_quiet(client);
    }

    // Alice talks: bob hears it, with alice as sender.
    let content = json!({"text": "hi", "n": [1, 2.5, null], "nested": {"ok": true}});
    let sent = json!({"room": "r", "content": content, "sender": alice_view});
    assert_eq!(
        ok(
            &mut alice,
            "room.send",
            json!({"room": "r", "content": content})
        ),
        sent
    );
    assert_eq!(bob.recv_json(), json!(["room.send", sent]));
    for client in [&mut carol, &mut dave, &mut idle, &mut alice] {
        assert_quiet(client);
    }

    // Any JSON is content, a string or a number too.
    for content in [json!("plain"), json!(42), json!([1, "two"])] {
        let sent = json!({"room": "r", "content": content, "sender": bob_view});
        assert_eq!(
            ok(
                &mut bob,
                "room.send",
                json!({"room": "r", "content": content})
            ),
            sent
        );
        assert_eq!(alice.recv_json(), json!(["room.send", sent]));
    }

    // Bob leaves: alice hears of it; then his messages are refused.
    let left = json!({"room": "r", "user": bob_view});
    assert_eq!(ok(&mut bob, "room.leave", json!({"room": "r"})), left);
    assert_eq!(alice.recv_json(), json!(["room.leave", left]));
    fails(
        &mut bob,
        "room.send",
        json!({"room": "r", "content": "still here?"}),
        "room.not_entered",
    );
    assert_quiet(&mut alice);
    // And alice's no longer reach him.
    ok(
        &mut alice,
        "room.send",
        json!({"room": "r", "content": "alone"}),
    );
    for client in [&mut bob, &mut carol, &mut dave, &mut idle] {
        assert_quiet(client);
    }
    // A room that was never entered.
    fails(
        &mut idle,
        "room.send",
        json!({"room": "never", "content": 1}),
        "room.not_entered",
    );
}

#[test]
fn invalid_room_names_are_refused() {
    let addr = start(worlds());
    let mut client = with_id(addr, "w1", "abc");
    let long = "a".repeat(200);
    for room in [
        json!(""),
        json!("a/b"),
        json!(long),
        json!(5),
        json!(null),
        json!(["r"]),
        json!({"name": "r"}),
    ] {
        for action in ["room.enter", "room.leave"] {
            fails(&mut client, action, json!({"room": room}), "invalid_args");
        }
        fails(
            &mut client,
            "room.send",
            json!({"room": room, "content": 1}),
            "invalid_args",
        );
    }
    for action in ["room.enter", "room.leave", "room.send"] {
        fails(&mut client, action, json!({}), "invalid_args");
    }
    // None of them was entered.
    let mut other = connect(addr, "w1");
    assert_eq!(
        authenticate(&mut other, json!({"client_id": "x"})),
        authenticated("anon:x", None, "w1", json!([]))
    );
}

#[test]
fn the_same_room_name_in_two_worlds_is_two_rooms() {
    let addr = start(worlds());
    let mut alice = with_id(addr, "w1", "alice");
    let mut bob = with_id(addr, "w1", "bob");
    let mut dave = with_id(addr, "w2", "dave");
    let mut erin = with_id(addr, "w2", "erin");
    for client in [&mut alice, &mut bob, &mut dave, &mut erin] {
        ok(client, "room.enter", json!({"room": "r"}));
    }
    // Each saw only its own world's newcomer.
    assert_eq!(alice.recv_json()[0], "room.enter");
    assert_eq!(dave.recv_json()[0], "room.enter");

    ok(&mut alice, "room.send", json!({"room": "r", "content": 1}));
    assert_eq!(bob.recv_json()[1]["content"], 1);
    ok(&mut erin, "room.send", json!({"room": "r", "content": 2}));
    assert_eq!(dave.recv_json()[1]["content"], 2);
    for client in [&mut alice, &mut bob, &mut dave, &mut erin] {
        assert_quiet(client);
    }

    let topics = ok(&mut alice, "hub.topics", json!({}));
    let mut rooms: Vec<(String, u64)> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["subscribers"].as_u64().unwrap(),
            )
        })
        .collect();
    rooms.sort();
    assert_eq!(rooms, vec![("w1/r".into(), 2), ("w2/r".into(), 2)]);
}

// ---------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------

#[test]
fn user_update_changes_the_profile_and_tells_the_rooms() {
    let addr = start(worlds());
    let mut alice = with_token(addr, "w1", "alice", Some("Alice"));
    let mut bob = with_id(addr, "w1", "bob");
    let mut carol = with_id(addr, "w1", "carol");
    let mut dave = with_id(addr, "w2", "dave");
    ok(&mut alice, "room.enter", json!({"room": "r"}));
    ok(&mut alice, "room.enter", json!({"room": "s"}));
    // Bob shares two rooms with alice, dave has a room "r" in another world.
    ok(&mut bob, "room.enter", json!({"room": "r"}));
    ok(&mut bob, "room.enter", json!({"room": "s"}));
    ok(&mut dave, "room.enter", json!({"room": "r"}));
    assert_eq!(alice.recv_json()[0], "room.enter");
    assert_eq!(alice.recv_json()[0], "room.enter");

    let profile = json!({"color": "red", "tags": ["a", "b"], "n": 1.5});
    let updated = json!({"user": user("alice", Some("Alice"), profile.clone())});
    assert_eq!(
        ok(&mut alice, "user.update", json!({"profile": profile})),
        updated
    );
    // Bob hears of it once, although he shares two rooms with her.
    assert_eq!(bob.recv_json(), json!(["user.update", updated]));
    for client in [&mut bob, &mut carol, &mut dave, &mut alice] {
        assert_quiet(client);
    }

    // Not an object: refused, and the profile stays.
    for bad in [json!([1]), json!("x"), json!(3), json!(null)] {
        fails(
            &mut alice,
            "user.update",
            json!({"profile": bad}),
            "invalid_args",
        );
    }
    fails(&mut alice, "user.update", json!({}), "invalid_args");
    assert_quiet(&mut bob);

    // The new profile shows where alice goes next, and in what she says.
    let alice_view = user("alice", Some("Alice"), profile.clone());
    ok(&mut carol, "room.enter", json!({"room": "t"}));
    let entered = json!({"room": "t", "user": alice_view});
    assert_eq!(ok(&mut alice, "room.enter", json!({"room": "t"})), entered);
    assert_eq!(carol.recv_json(), json!(["room.enter", entered]));
    let sent = json!({"room": "t", "content": "hi", "sender": alice_view});
    assert_eq!(
        ok(
            &mut alice,
            "room.send",
            json!({"room": "t", "content": "hi"})
        ),
        sent
    );
    assert_eq!(carol.recv_json(), json!(["room.send", sent]));

    // A user in no room updates in silence.
    let dave_profile = json!({"mood": "quiet"});
    ok(&mut dave, "room.leave", json!({"room": "r"}));
    assert_eq!(
        ok(&mut dave, "user.update", json!({"profile": dave_profile})),
        json!({"user": user("anon:dave", None, dave_profile)})
    );
    for client in [&mut alice, &mut bob, &mut carol] {
        assert_quiet(client);
    }
}

// ---------------------------------------------------------------------------
// Methods shared with the other dialects
// ---------------------------------------------------------------------------

#[test]
fn hub_publish_reaches_room_members_as_room_send() {
    let addr = start(Config {
        heartbeat_interval: Duration::from_secs(600),
        ..worlds()
    });
    let mut alice = with_id(addr, "w1", "alice");
    let mut bob = with_token(addr, "w1", "bob", Some("Bob"));
    let mut dave = with_id(addr, "w2", "dave");
    let mut carol = with_id(addr, "w1", "carol");
    ok(&mut alice, "room.enter", json!({"room": "r"}));
    ok(&mut bob, "room.enter", json!({"room": "r"}));
    ok(&mut dave, "room.enter", json!({"room": "r"}));
    assert_eq!(alice.recv_json()[0], "room.enter");

    // hub.clients lists world clients with their world in the tags.
    let clients = hub_clients(addr);
    let world_clients: Vec<&Value> = clients.iter().filter(|c| c["dialect"] == "world").collect();
    assert_eq!(world_clients.len(), 4, "{clients:?}");
    let mut tags: Vec<Value> = world_clients.iter().map(|c| c["tags"].clone()).collect();
    tags.sort_by_key(std::string::ToString::to_string);
    assert_eq!(
        tags,
        vec![
            json!(["world", "w1"]),
            json!(["world", "w1"]),
            json!(["world", "w1"]),
            json!(["world", "w2"]),
        ]
    );
    let dave_entry = (*world_clients
        .iter()
        .find(|c| c["tags"] == json!(["world", "w2"]))
        .unwrap())
    .clone();
    assert_eq!(
        dave_entry["uuid"].as_str().unwrap().len(),
        36,
        "{dave_entry}"
    );
    let dave_sender = json!({"id": dave_entry["uuid"], "name": dave_entry["name"]});

    // From a common client.
    let mut common = common_client(addr);
    common.send_json(json!({"op": 4, "w": "hub.clients", "a": [], "n": 1}));
    let response = common.recv_json();
    assert_eq!(response["op"], 5, "{response}");
    let me = response["r"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["dialect"] == "common")
        .unwrap_or_else(|| panic!("no common client in {response}"))
        .clone();
    assert_eq!(me["tags"], json!(["common"]));
    let common_sender = json!({"id": me["uuid"], "name": me["name"]});
    let data = json!({"x": 1, "y": [true]});
    common.send_json(json!({"op": 4, "w": "hub.publish", "a": ["w1/r", data], "n": 2}));
    let response = common.recv_json();
    assert_eq!(response["n"], 2, "{response}");
    assert_eq!(response["r"]["delivered"], 2, "{response}");
    let expected = json!(["room.send", {"room": "r", "content": data, "sender": common_sender}]);
    assert_eq!(alice.recv_json(), expected);
    assert_eq!(bob.recv_json(), expected);
    for client in [&mut dave, &mut carol] {
        assert_quiet(client);
    }

    // From a world client of another world.
    let published = ok(
        &mut dave,
        "hub.publish",
        json!({"topic": "w1/r", "data": {"from": "w2"}}),
    );
    assert_eq!(published["delivered"], 2, "{published}");
    assert!(published["eventID"].is_string(), "{published}");
    let expected =
        json!(["room.send", {"room": "r", "content": {"from": "w2"}, "sender": dave_sender}]);
    assert_eq!(alice.recv_json(), expected);
    assert_eq!(bob.recv_json(), expected);

    // From a member of the room: the others get it, not the publisher.
    let published = ok(
        &mut alice,
        "hub.publish",
        json!({"topic": "w1/r", "data": "from inside"}),
    );
    assert_eq!(published["delivered"], 1, "{published}");
    let got = bob.recv_json();
    assert_eq!(got[0], "room.send", "{got}");
    assert_eq!(got[1]["room"], "r", "{got}");
    assert_eq!(got[1]["content"], "from inside", "{got}");
    for client in [&mut alice, &mut dave, &mut carol] {
        assert_quiet(client);
    }

    // A bad topic.
    fails(
        &mut alice,
        "hub.publish",
        json!({"topic": "", "data": 1}),
        "invalid_args",
    );
}

// ---------------------------------------------------------------------------
// connection.replaced
// ---------------------------------------------------------------------------

#[test]
fn a_users_oldest_connection_over_the_limit_is_replaced() {
    let addr = start(Config {
        world_user_connections: 2,
        ..worlds()
    });
    let mut alice1 = with_token(addr, "w1", "alice", Some("Alice"));
    let mut alice2 = with_token(addr, "w1", "alice", Some("Alice"));
    let mut alice_w2 = with_token(addr, "w2", "alice", Some("Alice"));
    let mut bob1 = with_token(addr, "w1", "bob", None);
    let mut bob2 = with_id(addr, "w1", "bob2");
    ok(&mut alice2, "room.enter", json!({"room": "r"}));
    ok(&mut bob1, "room.enter", json!({"room": "r"}));
    assert_eq!(alice2.recv_json()[0], "room.enter");

    // A third connection of alice to w1: the first one goes.
    let mut alice3 = with_token(addr, "w1", "alice", Some("Alice"));
    assert_eq!(
        alice1.recv_json(),
        json!(["error", {"code": "connection.replaced"}])
    );
    assert_eq!(alice1.expect_close().0, 1000);

    // The other two keep working.
    ok(&mut alice3, "room.enter", json!({"room": "r"}));
    assert_eq!(alice2.recv_json()[0], "room.enter");
    assert_eq!(bob1.recv_json()[0], "room.enter");
    ok(&mut alice2, "room.send", json!({"room": "r", "content": 1}));
    assert_eq!(alice3.recv_json()[1]["content"], 1);
    assert_eq!(bob1.recv_json()[1]["content"], 1);
    // Other users and alice in another world are untouched.
    for client in [
        &mut alice_w2,
        &mut bob1,
        &mut bob2,
        &mut alice2,
        &mut alice3,
    ] {
        assert_quiet(client);
    }
    let alices = hub_clients(addr)
        .iter()
        .filter(|c| c["dialect"] == "world")
        .count();
    assert_eq!(alices, 5, "alice2, alice3, alice in w2, bob1, bob2");

    // The same for client ids; the next one replaces the oldest left.
    let mut anon1 = with_id(addr, "w2", "anon");
    let mut anon2 = with_id(addr, "w2", "anon");
    let mut anon3 = with_id(addr, "w2", "anon");
    assert_eq!(
        anon1.recv_json(),
        json!(["error", {"code": "connection.replaced"}])
    );
    assert_eq!(anon1.expect_close().0, 1000);
    assert_quiet(&mut anon2);
    let mut anon4 = with_id(addr, "w2", "anon");
    assert_eq!(
        anon2.recv_json(),
        json!(["error", {"code": "connection.replaced"}])
    );
    assert_eq!(anon2.expect_close().0, 1000);
    for client in [
        &mut anon3,
        &mut anon4,
        &mut alice_w2,
        &mut alice2,
        &mut alice3,
    ] {
        assert_quiet(client);
    }
}

#[test]
fn the_connection_replaced_is_the_one_that_authenticated_first() {
    let addr = start(Config {
        world_user_connections: 2,
        ..worlds()
    });
    // Three sockets, opened in this order, authenticate in the reverse order.
    let mut first = connect(addr, "w1");
    let mut second = connect(addr, "w1");
    let mut third = connect(addr, "w1");
    for client in [&mut third, &mut second] {
        assert_eq!(
            authenticate(client, json!({"client_id": "u"}))[0],
            "authenticated"
        );
    }
    // The connection that just authenticated stays; the user's connection
    // that has been theirs the longest (`third`) is replaced.
    assert_eq!(
        authenticate(&mut first, json!({"client_id": "u"}))[0],
        "authenticated"
    );
    assert_eq!(
        third.recv_json(),
        json!(["error", {"code": "connection.replaced"}])
    );
    assert_eq!(third.expect_close().0, 1000);
    assert_quiet(&mut first);
    assert_quiet(&mut second);
}

// ---------------------------------------------------------------------------
// connection.reload
// ---------------------------------------------------------------------------

#[test]
fn the_operator_tells_a_worlds_clients_to_reload() {
    let addr = start(Config {
        admin_token: Some("adm".into()),
        heartbeat_interval: Duration::from_secs(600),
        ..worlds()
    });
    let mut a = with_id(addr, "w1", "a");
    let mut b = with_token(addr, "w1", "b", None);
    let mut c = with_id(addr, "w2", "c");
    let mut pending = connect(addr, "w1");
    let mut common = common_client(addr);
    let reload = json!(["connection.reload", {}]);

    let (status, body) = admin(addr, "POST", "/admin/reload?world=w1", Some("Bearer adm"));
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body, json!({"told": 2, "world": "w1"}));
    assert_eq!(a.recv_json(), reload);
    assert_eq!(b.recv_json(), reload);
    assert_quiet(&mut c);
    // The connection that had not authenticated was not told: its next
    // message is the answer to its authentication.
    assert_eq!(
        authenticate(&mut pending, json!({"client_id": "late"})),
        authenticated("anon:late", None, "w1", json!([]))
    );
    // A reload leaves the connections as they were.
    for client in [&mut a, &mut b, &mut c, &mut pending] {
        assert_quiet(client);
    }

    // A world nobody is in.
    let (status, body) = admin(addr, "POST", "/admin/reload?world=w9", Some("Bearer adm"));
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"told": 0, "world": "w9"}));

    // Without a world: every world.
    let (status, body) = admin(addr, "POST", "/admin/reload", Some("Bearer adm"));
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["told"], 4, "{body}");
    for client in [&mut a, &mut b, &mut c, &mut pending] {
        assert_eq!(client.recv_json(), reload);
        assert_quiet(client);
    }
    // The common client hears nothing of it.
    common.send_json(json!({"op": 4, "w": "hub.info", "a": [], "n": "q"}));
    let response = common.recv_json();
    assert_eq!(response["n"], "q", "{response}");

    // Refusals tell nobody.
    for authorization in [None, Some("Bearer wrong"), Some("Basic adm"), Some("adm")] {
        let (status, body) = admin(addr, "POST", "/admin/reload?world=w1", authorization);
        assert_eq!(status, 401, "{authorization:?}: {body}");
    }
    let (status, _) = admin(addr, "GET", "/admin/reload?world=w1", Some("Bearer adm"));
    assert_eq!(status, 405);
    for client in [&mut a, &mut b, &mut c, &mut pending] {
        assert_quiet(client);
    }
}

#[test]
fn without_an_admin_token_there_is_no_reload_endpoint() {
    let addr = start(worlds());
    let mut a = with_id(addr, "w1", "a");
    for authorization in [None, Some("Bearer adm"), Some("Bearer ")] {
        let (status, body) = admin(addr, "POST", "/admin/reload?world=w1", authorization);
        assert_eq!(status, 404, "{authorization:?}: {body}");
    }
    assert_quiet(&mut a);
}

// ---------------------------------------------------------------------------
// Malformed messages
// ---------------------------------------------------------------------------

#[test]
fn malformed_messages_are_answered_and_the_connection_stays() {
    let addr = start(worlds());
    let mut client = connect(addr, "w1");
    let check = |client: &mut Client, when: &str| {
        for text in [
            "not json",
            "",
            r#"{"action": "ping"}"#,
            r#""ping""#,
            "42",
            "[]",
            "[1, 2]",
            r"[null, 1]",
            r#"[{"a": 1}]"#,
            r#"["ping", 1"#,
        ] {
            client.send_text(text);
            let answer = client.recv_json();
            assert_eq!(answer[0], "error", "{when} {text:?}: {answer}");
            assert_eq!(
                answer[1]["code"], "protocol.invalid_message",
                "{when} {text:?}: {answer}"
            );
            assert!(answer[1]["message"].is_string(), "{answer}");
            assert_eq!(answer.as_array().unwrap().len(), 2, "{answer}");
        }
        client
            .ws
            .send(Message::binary(br#"["ping", 1]"#.to_vec()))
            .unwrap();
        let answer = client.recv_json();
        assert_eq!(answer[0], "error", "{when} binary: {answer}");
        assert_eq!(answer[1]["code"], "protocol.invalid_message", "{answer}");
        assert!(answer[1]["message"].is_string(), "{answer}");
        // Still there.
        client.send_text(r#"["ping", "still"]"#);
        assert_eq!(recv_text(client), r#"["pong","still"]"#, "{when}");
    };
    check(&mut client, "before");
    assert_eq!(
        authenticate(&mut client, json!({"client_id": "abc"})),
        authenticated("anon:abc", None, "w1", json!([]))
    );
    check(&mut client, "after");
    ok(&mut client, "room.enter", json!({"room": "r"}));
}

// ---------------------------------------------------------------------------
// Methods of the embedder
// ---------------------------------------------------------------------------

#[test]
fn world_clients_call_the_embedders_methods() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::from_listener(listener, worlds())
        .method("greet", |caller, args| {
            Ok(json!({"hello": caller.user, "dialect": caller.dialect.name(), "args": args}))
        })
        .method("fail", |_, _| Err(RpcError::new("nope", "no")));
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run());

    let mut alice = with_token(addr, "w1", "alice", Some("Alice"));
    assert_eq!(
        call(&mut alice, "greet", json!(1), json!({"x": 1})),
        json!(["success", 1, {"hello": "alice", "dialect": "world", "args": {"x": 1}}])
    );
    let mut anon = with_id(addr, "w2", "abc");
    assert_eq!(
        call(&mut anon, "greet", json!("g"), json!([1, 2])),
        json!(["success", "g", {"hello": "anon:abc", "dialect": "world", "args": [1, 2]}])
    );
    assert_eq!(
        call(&mut alice, "fail", json!(2), json!({})),
        json!(["error", 2, {"code": "nope", "message": "no"}])
    );
    // Without an id, and byte for byte with one.
    alice.send_text(r#"["greet", {"y": 2}]"#);
    assert_eq!(
        alice.recv_json(),
        json!(["success", {"hello": "alice", "dialect": "world", "args": {"y": 2}}])
    );
    alice.send_text(r#"["fail", 3.50, {}]"#);
    assert_eq!(
        recv_text(&mut alice),
        r#"["error",3.50,{"code":"nope","message":"no"}]"#
    );
    // Still unknown: names nobody registered.
    fails(&mut alice, "greet2", json!({}), "protocol.unknown_command");
    // Before authentication, the method is not run.
    let mut stranger = connect(addr, "w1");
    stranger.send_json(json!(["greet", 5, {}]));
    assert_eq!(
        stranger.recv_json(),
        json!(["error", 5, {"code": "protocol.unauthenticated"}])
    );
}

// ---------------------------------------------------------------------------
// Disconnections
// ---------------------------------------------------------------------------

#[test]
fn a_vanished_client_leaves_the_others_talking() {
    let addr = start(worlds());
    let mut alice = with_id(addr, "w1", "alice");
    let mut bob = with_id(addr, "w1", "bob");
    let mut carol = with_id(addr, "w1", "carol");
    ok(&mut alice, "room.enter", json!({"room": "r"}));
    ok(&mut bob, "room.enter", json!({"room": "r"}));
    ok(&mut carol, "room.enter", json!({"room": "r"}));
    assert_eq!(alice.recv_json()[0], "room.enter");
    assert_eq!(alice.recv_json()[0], "room.enter");
    assert_eq!(bob.recv_json()[0], "room.enter");

    carol.vanish();
    // Her departure is announced to the room as if she had left it.
    let left = json!(["room.leave", {"room": "r", "user": user("anon:carol", None, json!({}))}]);
    assert_eq!(alice.recv_json(), left);
    assert_eq!(bob.recv_json(), left);

    // The room goes on without her.
    let sent = ok(
        &mut alice,
        "room.send",
        json!({"room": "r", "content": "still here"}),
    );
    assert_eq!(sent["content"], "still here");
    assert_eq!(bob.recv_json(), json!(["room.send", sent]));
    ok(
        &mut bob,
        "room.send",
        json!({"room": "r", "content": "yes"}),
    );
    let got = loop {
        let message = alice.recv_json();
        if message[0] != "room.leave" {
            break message;
        }
    };
    assert_eq!(got[1]["content"], "yes", "{got}");
    let topics = ok(&mut bob, "hub.topics", json!({}));
    assert_eq!(
        topics,
        json!([{"name": "w1/r", "owner": null, "subscribers": 2}])
    );
}

#[test]
fn a_client_id_cannot_pose_as_a_token_user() {
    let addr = start(Config {
        world_user_connections: 1,
        ..worlds()
    });
    let mut alice = with_token(addr, "w1", "alice", Some("Alice"));
    // Anonymous ids live apart: this is `anon:alice`, not alice, so it
    // neither replaces her connection nor speaks as her.
    let mut imposter = with_id(addr, "w1", "alice");
    assert_eq!(
        call(&mut alice, "hub.info", json!(1), json!({}))[0],
        "success"
    );
    ok(&mut alice, "room.enter", json!({"room": "r"}));
    ok(&mut imposter, "room.enter", json!({"room": "r"}));
    assert_eq!(alice.recv_json()[1]["user"]["id"], "anon:alice");
}

#[test]
fn room_send_takes_its_arguments_by_position_too() {
    let addr = start(worlds());
    let mut alice = with_token(addr, "w1", "alice", Some("Alice"));
    ok(&mut alice, "room.enter", json!(["r"]));
    let sent = ok(&mut alice, "room.send", json!(["r", {"text": "hi"}]));
    assert_eq!(
        (sent["room"].clone(), sent["content"].clone()),
        (json!("r"), json!({"text": "hi"}))
    );
}
