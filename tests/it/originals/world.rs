//! venueless: the webapp's `WebSocketClient.js` (authenticate, ping, call,
//! the answers it reads) and the server's tokens (`World.decode_token`:
//! `uid`, `traits`, `iss`, `aud`, HS256), as `store/index.js` reads the
//! `authenticated` answer.

use std::net::{SocketAddr, TcpListener};

use serde_json::{json, Value};
use switchboard::methods::RpcError;
use switchboard::{jwt, Config, Server};

use crate::support::*;

const KEY: &str = "venueless-jwt-secret";
const ISSUER: &str = "any";
const AUDIENCE: &str = "venueless";

/// A world `sample` checked as venueless's `JWT_secrets` entry would be:
/// key, issuer and audience.
fn venueless_world() -> Config {
    Config {
        jwt_key: Some(KEY.into()),
        jwt_issuer: Some(ISSUER.into()),
        jwt_audience: Some(AUDIENCE.into()),
        worlds: vec!["sample".into()],
        ..config()
    }
}

/// A token as venueless's docs and integrations issue them: `uid`, not
/// `sub`; `traits`; `iss` and `aud`.
fn venueless_token(uid: &str, aud: &str) -> String {
    let claims = json!({
        "iss": ISSUER,
        "aud": aud,
        "exp": jwt::now() + 3600,
        "iat": jwt::now(),
        "uid": uid,
        "traits": ["attendee", "speaker"],
    });
    jwt::sign(&claims, KEY.as_bytes())
}

/// `new WebSocket(url)` on the world's endpoint.
fn webapp(addr: SocketAddr) -> Client {
    Client::connect(addr, "/ws/world/sample")
}

#[test]
fn the_webapp_authenticates_with_a_uid_token_and_reads_world_config() {
    let addr = start(venueless_world());
    let mut client = webapp(addr);
    // `_authenticate`: ['authenticate', payload], payload {token}.
    client.send_text(&format!(
        r#"["authenticate",{{"token":"{}"}}]"#,
        venueless_token("user-1", AUDIENCE)
    ));
    let answer = client.recv_json();
    // `_handleJoined(message)` emits message[1] as the server state.
    assert_eq!(answer[0], "authenticated", "{answer}");
    let state = &answer[1];
    assert!(state["user.config"].is_object(), "{answer}");
    let world = &state["world.config"];
    assert_eq!(world["world"]["id"], "sample");
    assert!(world["world"]["title"].is_string(), "{world}");
    assert_eq!(world["permissions"], json!(["world:view"]));
    assert!(world["rooms"].is_array(), "{world}");

    // Rooms carry what `updateRooms` and App.vue read: `id`, `modules`.
    client.send_text(r#"["room.enter",1,{"room":"stage"}]"#);
    let entered = client.recv_json();
    assert_eq!(entered[0], "success", "{entered}");
    assert_eq!(entered[1], 1);
    let mut second = webapp(addr);
    second.send_text(&format!(
        r#"["authenticate",{{"token":"{}"}}]"#,
        venueless_token("user-2", AUDIENCE)
    ));
    let answer = second.recv_json();
    let rooms = answer[1]["world.config"]["rooms"]
        .as_array()
        .unwrap()
        .clone();
    let stage = rooms
        .iter()
        .find(|r| r["id"] == "stage")
        .expect("stage listed");
    assert_eq!(stage["name"], "stage");
    assert_eq!(stage["modules"], json!([]));
    assert_eq!(stage["members"], 1);
    assert_eq!(stage["permissions"], json!(["room:view", "room:chat.send"]));
}

#[test]
fn ping_and_calls_carry_what_the_webapp_matches_on() {
    let addr = start(venueless_world());
    let mut client = webapp(addr);
    // `_ping`: ['ping', Date.now()] — answered before authentication too.
    client.send_text(r#"["ping",1767225600123]"#);
    assert_eq!(client.recv_json(), json!(["pong", 1767225600123u64]));
    client.send_text(&format!(
        r#"["authenticate",{{"token":"{}"}}]"#,
        venueless_token("user-3", AUDIENCE)
    ));
    assert_eq!(client.recv_json()[0], "authenticated");
    // `call(name, data)`: [name, id, data]; ids count up from 1.
    client.send_text(r#"["room.enter",1,{"room":"lobby"}]"#);
    let success = client.recv_json();
    assert_eq!(success[0], "success");
    assert_eq!(success[1], 1, "_handleCallSuccess pops message[1]");
    client.send_text(r#"["no.such.action",2,{}]"#);
    let error = client.recv_json();
    assert_eq!(error[0], "error");
    assert_eq!(error[1], 2, "_handleError pops message[1]");
    assert_eq!(
        error[2]["code"], "protocol.unknown_command",
        "ApiError(message[2])"
    );
}

#[test]
fn authenticate_with_the_documents_id_form_is_answered_with_the_id() {
    let addr = start(venueless_world());
    let mut client = webapp(addr);
    // The document's root shape [ACTION, ID, PAYLOAD]; venueless's server
    // reads the payload from the last element.
    client.send_text(r#"["authenticate",7,{}]"#);
    assert_eq!(
        client.recv_json(),
        json!(["error", 7, {"code": "auth.missing_id_or_token"}])
    );
    client.send_text(&format!(
        r#"["authenticate","a-8",{{"token":"{}"}}]"#,
        venueless_token("user-4", AUDIENCE)
    ));
    let answer = client.recv_json();
    assert_eq!(answer[0], "authenticated");
    assert_eq!(answer[1], "a-8");
    assert_eq!(answer[2]["world.config"]["world"]["id"], "sample");
    let mut anonymous = webapp(addr);
    anonymous.send_text(r#"["authenticate",9,{"client_id":"browser-1"}]"#);
    let answer = anonymous.recv_json();
    assert_eq!(answer[0], "authenticated", "{answer}");
    assert_eq!(answer[1], 9);
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let addr = start(venueless_world());
    let refused = |token: String| {
        let mut client = webapp(addr);
        client.send_text(&format!(r#"["authenticate",{{"token":"{token}"}}]"#));
        client.recv_json()
    };
    let invalid = json!(["error", {"code": "auth.invalid_token"}]);
    assert_eq!(refused(venueless_token("u", "another-app")), invalid);
    let wrong_issuer = jwt::sign(
        &json!({"iss": "elsewhere", "aud": AUDIENCE, "exp": jwt::now() + 60, "uid": "u"}),
        KEY.as_bytes(),
    );
    assert_eq!(refused(wrong_issuer), invalid);
    let expired = jwt::sign(
        &json!({"iss": ISSUER, "aud": AUDIENCE, "exp": jwt::now() - 1, "uid": "u"}),
        KEY.as_bytes(),
    );
    assert_eq!(
        refused(expired),
        json!(["error", {"code": "auth.expired_token"}])
    );
    // An audience list naming ours passes.
    let listed = jwt::sign(
        &json!({"iss": ISSUER, "aud": ["x", AUDIENCE], "exp": jwt::now() + 60, "uid": "u"}),
        KEY.as_bytes(),
    );
    assert_eq!(refused(listed)[0], "authenticated");
}

#[test]
fn the_tokens_traits_reach_an_embedders_method() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = Server::from_listener(listener, venueless_world()).method(
        "user.traits",
        |caller, _args| match &caller.user {
            Some(user) => Ok(json!({"user": user, "traits": caller.traits})),
            None => Err(RpcError::new("no_user", "not a world user")),
        },
    );
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run());
    let mut client = webapp(addr);
    client.send_text(&format!(
        r#"["authenticate",{{"token":"{}"}}]"#,
        venueless_token("user-5", AUDIENCE)
    ));
    assert_eq!(client.recv_json()[0], "authenticated");
    client.send_text(r#"["user.traits",1,{}]"#);
    let answer: Value = client.recv_json();
    assert_eq!(
        answer,
        json!(["success", 1, {"user": "user-5", "traits": ["attendee", "speaker"]}])
    );
}
