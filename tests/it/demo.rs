//! End-to-end tests of the demo's server side (docs/demos.md, "See it"): the pages
//! are served, `/demo/token` exists only with `--demo` and signs with
//! `--jwt-key` or a key of the process's own, and a browser's way into the
//! blazing dialect, the query parameters `token` and `computer`, works over
//! a real socket like the headers do.

use std::io::Read;
use std::net::SocketAddr;

use crate::support::*;
use flate2::read::GzDecoder;
use serde_json::{json, Value};
use switchboard::{jwt, Config};
use tungstenite::Message;

const KEY: &str = "demo test key";

fn demo_config(name: &str, jwt_key: Option<&str>) -> Config {
    let data_dir =
        std::env::temp_dir().join(format!("switchboard-demo-{}-{name}", std::process::id()));
    Config {
        demo: true,
        jwt_key: jwt_key.map(Into::into),
        data_dir,
        ..config()
    }
}

/// The body of an HTTP answer.
fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// `GET /demo/token`, parsed.
fn fetch_token(addr: SocketAddr, query: &str) -> Value {
    let answer = get(addr, &format!("/demo/token{query}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Cache-Control: no-store"), "{answer}");
    serde_json::from_str(body(&answer)).expect("JSON token")
}

/// `{"token", "sub"}` for a token signed with `KEY` that names no
/// `computers`: every document.
fn token_without_computers(name: &str) -> Value {
    let sub = format!("{name}-0000-4000-8000-000000000000");
    let claims = json!({"sub": sub, "name": name, "exp": jwt::now() + 600});
    json!({"token": jwt::sign(&claims, KEY.as_bytes()), "sub": sub})
}

/// The next blazing message, decompressed.
fn recv_blazing(client: &mut Client) -> Value {
    match client.recv() {
        Message::Binary(bytes) => {
            let mut json = Vec::new();
            GzDecoder::new(&bytes[..])
                .read_to_end(&mut json)
                .expect("gzip from the server");
            serde_json::from_slice(&json).expect("JSON from the server")
        }
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// Percent-encodes a query value (a JWT needs none, a computer id may).
fn encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn demo_pages_are_served_and_linked_from_the_status_page() {
    let addr = start(config());
    for (path, media_type, inside) in [
        ("/demo/editor", "text/html", "/demo/editor.js"),
        ("/demo/editor.js", "text/javascript", "DecompressionStream"),
        ("/demo/channels", "text/html", "/demo/channels.js"),
        ("/demo/channels.js", "text/javascript", "/listen"),
        ("/demo/demo.css", "text/css", "{"),
    ] {
        let answer = get(addr, path);
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer.contains(media_type), "{path}: {answer}");
        assert!(body(&answer).contains(inside), "{path}: {answer}");
    }
    let status = http(
        addr,
        "GET / HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n",
    );
    assert!(status.contains("href=\"/demo/editor\""), "{status}");
    assert!(status.contains("href=\"/demo/channels\""), "{status}");
    let list = get(addr, "/endpoints");
    assert!(list.contains("/demo/editor"), "{list}");
}

#[test]
fn without_demo_there_is_no_token() {
    let addr = start(Config {
        jwt_key: Some(KEY.into()),
        ..config()
    });
    let answer = get(addr, "/demo/token");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("--demo"), "{answer}");
}

#[test]
fn demo_tokens_are_signed_with_the_jwt_key_and_name_the_user() {
    let addr = start(demo_config("key", Some(KEY)));
    let token = fetch_token(addr, "?name=Ann%20Lee");
    assert_eq!(token["name"], "Ann Lee", "{token}");
    let claims = jwt::verify(
        token["token"].as_str().unwrap(),
        Some(KEY.as_bytes()),
        jwt::now(),
    )
    .expect("a token the key verifies");
    assert_eq!(claims.name.as_deref(), Some("Ann Lee"));
    assert_eq!(json!(claims.sub), token["sub"]);
    assert!(is_v4_uuid(&claims.sub), "{}", claims.sub);
    // Short-lived: a quarter of an hour.
    assert!(claims.exp <= jwt::now() + 15 * 60, "{}", claims.exp);
    assert!(claims.exp + 60 >= jwt::now() + 15 * 60, "{}", claims.exp);
    let guest = fetch_token(addr, "");
    assert!(
        guest["name"].as_str().unwrap().starts_with("guest-"),
        "{guest}"
    );
    assert_ne!(guest["sub"], token["sub"]);
}

#[test]
fn browsers_join_blazing_with_query_parameters() {
    let addr = start(demo_config("query", Some(KEY)));
    // Tokens of the key's own (a demo token grants only its `doc`, which
    // is never a computer id that needs percent-encoding).
    let token = token_without_computers("Ann");
    let computer = "pc 1/é";
    let path = format!(
        "/ws/blazing?token={}&computer={}",
        token["token"].as_str().unwrap(),
        encoded(computer)
    );
    let mut ann = Client::connect(addr, &path);
    let sync = recv_blazing(&mut ann);
    assert_eq!(sync["type"], "sync", "{sync}");
    assert_eq!(sync["payload"]["actioner"], token["sub"], "{sync}");

    // A second browser in the same room sees the first one's write.
    let bob_token = token_without_computers("Bob");
    let bob_path = format!(
        "/ws/blazing?computer={}&token={}",
        encoded(computer),
        bob_token["token"].as_str().unwrap()
    );
    let mut bob = Client::connect(addr, &bob_path);
    assert_eq!(recv_blazing(&mut bob)["type"], "sync");
    let joined = recv_blazing(&mut ann);
    assert_eq!(joined["type"], "usrupd", "{joined}");
    assert_eq!(joined["payload"]["actioner"], bob_token["sub"], "{joined}");
    ann.send_text(
        &json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "hi"}})
            .to_string(),
    );
    let written = recv_blazing(&mut bob);
    assert_eq!(written["type"], "write", "{written}");
    assert_eq!(written["payload"]["text"], "hi", "{written}");
    assert_eq!(written["payload"]["actioner"], token["sub"], "{written}");
}

#[test]
fn query_parameters_are_checked_like_headers_and_headers_win() {
    let addr = start(demo_config("checks", Some(KEY)));
    let token = fetch_token(addr, "");
    let token = token["token"].as_str().unwrap();

    let mut forged = Client::connect(addr, "/ws/blazing?token=not.a.token&computer=pc");
    assert_eq!(forged.expect_close().0, 3000);
    let mut no_computer = Client::connect(addr, &format!("/ws/blazing?token={token}"));
    assert_eq!(no_computer.expect_close().0, 3003);
    let mut no_token = Client::connect(addr, "/ws/blazing?computer=pc");
    assert_eq!(no_token.expect_close().0, 3000);

    // A bad header is not rescued by a good parameter.
    let mut stream = raw_websocket_with(
        addr,
        &format!("/ws/blazing?token={token}&computer=pc"),
        "Authorization: Bearer forged\r\n",
    );
    let (opcode, payload) = read_frame(&mut stream);
    assert_eq!(opcode & 0x0f, 0x8, "a close frame");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 3000);
}

#[test]
fn demo_without_a_jwt_key_signs_with_a_key_of_its_own() {
    let addr = start(demo_config("own-key", None));
    let token = fetch_token(addr, "?name=Cy");
    let token = token["token"].as_str().unwrap();
    // Not signed with some guessable key...
    assert!(jwt::verify(token, Some(b""), jwt::now()).is_err());
    // ...but accepted by the server's blazing dialect.
    let mut cy = Client::connect(addr, &format!("/ws/blazing?token={token}&computer=pc"));
    assert_eq!(recv_blazing(&mut cy)["type"], "sync");
}

#[test]
fn a_reload_keeps_the_process_key() {
    let config = demo_config("reload", None);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = switchboard::Server::from_listener(listener, config.clone());
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    std::thread::spawn(move || server.run());
    let before = fetch_token(addr, "");

    // The admin endpoints appear with the reload: that says it is done.
    handle.reload(Config {
        admin_token: Some("admin".into()),
        ..config
    });
    wait_until("the reload is applied", || {
        !http(addr, "POST /admin/reload HTTP/1.1\r\nHost: t\r\n\r\n").starts_with("HTTP/1.1 404")
    });
    let token = before["token"].as_str().unwrap();
    let mut old = Client::connect(addr, &format!("/ws/blazing?token={token}&computer=pc"));
    assert_eq!(recv_blazing(&mut old)["type"], "sync");
}

#[test]
fn demo_is_a_switch_of_flag_environment_and_file() {
    use switchboard::cli::{parse, Invocation};
    let demo = |args: &[&str], env: Option<&str>| {
        let args = args.iter().map(std::string::ToString::to_string);
        let env = |name: &str| {
            (name == "SWITCHBOARD_DEMO")
                .then(|| env.map(String::from))
                .flatten()
        };
        match parse(args, env) {
            Ok(Invocation::Run(config)) => config.demo,
            other => panic!("{other:?}"),
        }
    };
    assert!(!demo(&[], None), "off by default");
    assert!(demo(&["--demo"], None));
    assert!(demo(&[], Some("1")));
    assert!(!demo(&[], Some("0")));
    let file = std::env::temp_dir().join(format!("switchboard-demo-{}.toml", std::process::id()));
    std::fs::write(&file, "demo = true\n").unwrap();
    assert!(demo(&["--config", file.to_str().unwrap()], None));
    let _ = std::fs::remove_file(file);
}
