//! End-to-end tests of who gets in (issue 9, "Authentication and
//! authorization", and "Nothing lost"): forged, confused, expired,
//! premature, malformed and huge JWTs refused by both dialects that take
//! tokens; secrets and tokens absent from the log and from /metrics even at
//! debug level; and a concierge MESSAGE_SENT meaning the message was queued
//! to every live recipient. Name squatting, forged origins and non-owner
//! group deletion are in tests/concierge.rs; tokens limited to other
//! computers in tests/blazing.rs.

use std::net::SocketAddr;

use crate::support::*;
use serde_json::{json, Value};
use switchboard::{base64, jwt, Config};
use tungstenite::Message;

const KEY: &str = "security test key";

fn b64(bytes: &[u8]) -> String {
    base64::encode_url(bytes)
}

/// A token with this header and these claims, signed HS256 with `key`
/// whatever the header says (what an attacker can do with a known key).
fn signed_as(header: &str, claims: Value, key: &[u8]) -> String {
    let good = jwt::sign(&claims, key);
    let parts: Vec<&str> = good.split('.').collect();
    format!("{}.{}.{}", b64(header.as_bytes()), parts[1], parts[2])
}

/// Every kind of token that must not let anyone in, by name.
fn hostile_tokens() -> Vec<(&'static str, String)> {
    let now = jwt::now();
    let claims = json!({"sub": "mallory", "exp": now + 3600});
    let good = jwt::sign(&claims, KEY.as_bytes());
    let parts: Vec<String> = good.split('.').map(String::from).collect();
    vec![
        (
            "alg none",
            format!("{}.{}.", b64(br#"{"alg":"none"}"#), parts[1]),
        ),
        (
            "HS512 header",
            signed_as(
                r#"{"alg":"HS512","typ":"JWT"}"#,
                claims.clone(),
                KEY.as_bytes(),
            ),
        ),
        // RS256/HS256 confusion: the server's key used as an HMAC secret
        // under an RS256 header must not pass for RS256.
        (
            "RS256 confusion",
            signed_as(
                r#"{"alg":"RS256","typ":"JWT"}"#,
                claims.clone(),
                KEY.as_bytes(),
            ),
        ),
        (
            "bad signature",
            format!("{}.{}.{}", parts[0], parts[1], b64(&[7u8; 32])),
        ),
        ("other key", jwt::sign(&claims, b"not the server's key")),
        (
            "expired",
            jwt::sign(&json!({"sub": "mallory", "exp": now - 1}), KEY.as_bytes()),
        ),
        (
            "not yet valid",
            jwt::sign(
                &json!({"sub": "mallory", "exp": now + 3600, "nbf": now + 600}),
                KEY.as_bytes(),
            ),
        ),
        (
            "malformed base64",
            format!("{}.{}.%%%", parts[0], "!!not*base64!!"),
        ),
        (
            "huge",
            format!("{}.{}.{}", parts[0], "A".repeat(100_000), parts[2]),
        ),
    ]
}

#[test]
fn world_refuses_every_hostile_token_and_stays_usable() {
    let addr = start(Config {
        jwt_key: Some(KEY.into()),
        ..config()
    });
    let mut client = Client::connect(addr, "/ws/world/default");
    for (what, token) in hostile_tokens() {
        client.send_json(json!(["authenticate", {"token": token}]));
        let answer = client.recv_json();
        let expected = if what == "expired" {
            "auth.expired_token"
        } else {
            "auth.invalid_token"
        };
        assert_eq!(answer, json!(["error", {"code": expected}]), "{what}");
    }
    let good = jwt::sign(
        &json!({"sub": "alice", "exp": jwt::now() + 60}),
        KEY.as_bytes(),
    );
    client.send_json(json!(["authenticate", {"token": good}]));
    assert_eq!(client.recv_json()[0], "authenticated");
}

/// Connects to blazing with `token`; returns the close code (0 if let in).
fn blazing_with(addr: SocketAddr, token: &str) -> u16 {
    let (request, stream) = blazing_request(addr, token, "pc-1");
    let (mut ws, _) = match tungstenite::client(request, stream) {
        Ok(pair) => pair,
        // A token too large for the request head is refused as HTTP (431).
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            return response.status().as_u16()
        }
        Err(e) => panic!("blazing handshake: {e:?}"),
    };
    match ws.read() {
        Ok(Message::Close(Some(frame))) => u16::from(frame.code),
        Ok(Message::Binary(_)) => 0, // the sync
        other => panic!("expected a close or the sync, got {other:?}"),
    }
}

#[test]
fn blazing_closes_every_hostile_token_with_3000() {
    let addr = start(Config {
        jwt_key: Some(KEY.into()),
        ..config()
    });
    for (what, token) in hostile_tokens() {
        let expected = if what == "huge" { 431 } else { 3000 };
        assert_eq!(blazing_with(addr, &token), expected, "{what}");
    }
    let good = jwt::sign(
        &json!({"sub": "alice", "exp": jwt::now() + 60}),
        KEY.as_bytes(),
    );
    assert_eq!(blazing_with(addr, &good), 0);
}

#[test]
fn secrets_and_tokens_never_reach_the_log_or_the_metrics() {
    let secret = "s3cret-concierge-value";
    let key = "s3cret-jwt-key-value";
    let admin = "s3cret-admin-token";
    let server = Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "debug",
        "--secret",
        secret,
        "--jwt-key",
        key,
        "--admin-token",
        admin,
        "--data-dir",
        std::env::temp_dir()
            .join("switchboard-security")
            .to_str()
            .unwrap(),
    ]);
    let addr = server.addr;
    // Right and wrong secrets, tokens and admin tokens.
    let mut ann = Concierge::join_with(addr, "ann", json!({"secret": secret}));
    let mut wrong = Client::connect(addr, "/ws/concierge");
    wrong.send_json(
        json!({"type": "IDENTIFY", "name": "eve", "version": "0.1.0", "secret": "guess-1234"}),
    );
    assert_eq!(wrong.close_code_skipping(), 4006);
    let token = jwt::sign(
        &json!({"sub": "alice", "exp": jwt::now() + 60}),
        key.as_bytes(),
    );
    let mut world = Client::connect(addr, "/ws/world/default");
    world.send_json(json!(["authenticate", {"token": token}]));
    assert_eq!(world.recv_json()[0], "authenticated");
    world.send_json(json!(["authenticate", {"token": format!("{token}x")}]));
    let admin_call = |bearer: &str| {
        http(addr, &format!("POST /admin/reload HTTP/1.1\r\nAuthorization: Bearer {bearer}\r\nContent-Length: 0\r\n\r\n"))
    };
    assert!(admin_call(admin).starts_with("HTTP/1.1 200"));
    assert!(admin_call("guess-admin").starts_with("HTTP/1.1 401"));
    let metrics = get(addr, "/metrics");
    ann.send(json!({"type": "CLIENT_FETCH_ALL"}));
    ann.recv_until("CLIENT_FETCH_ALL_RESULT", None);
    server.signal("TERM");
    let mut log = Vec::new();
    while let Ok(line) = server.log.recv_timeout(PATIENCE) {
        let done = line.contains("stopped:");
        log.push(line);
        if done {
            break;
        }
    }
    let log = log.join("\n");
    assert!(
        log.contains("connected from"),
        "the log was captured: {log}"
    );
    let signature = token.rsplit('.').next().unwrap();
    for needle in [secret, key, admin, "guess-1234", "guess-admin", signature] {
        assert!(!log.contains(needle), "{needle:?} in the log:\n{log}");
        assert!(!metrics.contains(needle), "{needle:?} in /metrics");
    }
}

#[test]
fn message_sent_means_every_live_recipient_has_it_queued() {
    let addr = start(config());
    let mut owner = Concierge::join(addr, "owner");
    owner.send(json!({"type": "GROUP_CREATE", "name": "g"}));
    owner.recv_until("STATUS", Some("GROUP_CREATED"));
    let mut members: Vec<Concierge> = (0..5)
        .map(|i| Concierge::join(addr, &format!("m{i}")))
        .collect();
    for member in &mut members {
        member.send(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
        member.recv_until("STATUS", Some("SUBSCRIBED"));
    }
    let mut last_seq = -1;
    for n in 0..200 {
        owner
            .send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "g"}, "data": n}));
        let sent = owner.recv_until("STATUS", Some("MESSAGE_SENT"));
        let seq = sent["seq"].as_i64().expect("a seq");
        assert!(seq > last_seq, "{sent}");
        last_seq = seq;
    }
    // Every acknowledged message arrives, in order, at every subscriber.
    for member in &mut members {
        for n in 0..200 {
            assert_eq!(
                member.recv_until("MESSAGE", None)["data"],
                n,
                "{}",
                member.name
            );
        }
    }
}
