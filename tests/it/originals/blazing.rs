//! BlazingGames/blazing-games-plugin: the tokens its API hands to apps
//! (`LinkedUser.signLinkedUser` through `JWTUtils.sign`: jjwt, the HMAC
//! hash chosen by the key's length, `sub` = the LinkedUser as JSON, `iss`
//! "LNKD", `nbf`, `exp`), the handshake `BlazingWSS.identify` reads, and
//! messages as a client written from the document sends them.

use std::io::{Read, Write};
use std::net::SocketAddr;

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use switchboard::jwt::{self, Algorithm};
use switchboard::Config;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::support::*;

/// A 64-byte key: jjwt's `Keys.hmacShaKeyFor` makes it an HS512 key.
const KEY: &str = "blazing-games-plugin-jwt-secret-key-of-sixty-four-bytes-exactly!";
/// A computer id as the plugin's path pattern has them (26 of A-Z, 0-9).
const COMPUTER: &str = "01J9Z3K6Q8X2V4M7N5P0R1S2T3";
const ALEX: &str = "0f4e5a1c-7d2b-4c3e-9a8f-1b2c3d4e5f60";
const STEVE: &str = "84a33aad-bacf-40b4-a1b5-910300e7e3fc";

fn plugin_config(name: &str) -> Config {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-originals-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Config {
        jwt_key: Some(KEY.into()),
        jwt_issuer: Some("LNKD".into()),
        data_dir: dir,
        ..config()
    }
}

/// `LinkedUser.serialize`, as the plugin writes it into `sub`.
fn linked_user(username: &str, uuid: &str, permissions: &[&str]) -> String {
    json!({
        "username": username,
        "uuid": uuid,
        "level": 2,
        "instant": jwt::now(),
        "expiresAt": jwt::now() + 3600,
        "permissions": permissions,
    })
    .to_string()
}

const ALL_NEEDED: [&str; 4] = [
    "READ_COMPUTERS",
    "COMPUTER_CODE_READ",
    "COMPUTER_CODE_MODIFY",
    "READ_PROFILE",
];

/// `JWTUtils.sign(body, "LNKD", millis)`: nbf now, exp, sub, iss.
fn plugin_token(algorithm: Algorithm, sub: &str) -> String {
    let claims = json!({
        "nbf": jwt::now(),
        "exp": jwt::now() + 3600,
        "sub": sub,
        "iss": "LNKD",
    });
    jwt::sign_with(algorithm, &claims, KEY.as_bytes())
}

fn connect(addr: SocketAddr, token: &str) -> Client {
    let (request, stream) = blazing_request(addr, token, COMPUTER);
    let (ws, _) = tungstenite::client(request, stream).expect("handshake");
    Client { ws }
}

fn send(client: &mut Client, text: &str) {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    client
        .ws
        .send(Message::binary(encoder.finish().unwrap()))
        .unwrap();
}

fn recv(client: &mut Client) -> Value {
    loop {
        match client.ws.read().expect("a message") {
            Message::Binary(bytes) => {
                let mut json = Vec::new();
                GzDecoder::new(&bytes[..]).read_to_end(&mut json).unwrap();
                return serde_json::from_slice(&json).unwrap();
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected gzip JSON, got {other:?}"),
        }
    }
}

#[test]
fn linked_user_tokens_of_every_hmac_size_join_as_their_uuid() {
    let addr = start(plugin_config("linked"));
    let alex = plugin_token(Algorithm::Hs512, &linked_user("Alex", ALEX, &ALL_NEEDED));
    let mut first = connect(addr, &alex);
    let sync = recv(&mut first);
    assert_eq!(sync["type"], "sync");
    // `actioner` is the uuid inside the LinkedUser, not the JSON text.
    assert_eq!(sync["payload"]["actioner"], ALEX);
    assert_eq!(sync["payload"]["users"], json!({ALEX: 0}));

    let steve = plugin_token(Algorithm::Hs384, &linked_user("Steve", STEVE, &ALL_NEEDED));
    let mut second = connect(addr, &steve);
    assert_eq!(recv(&mut second)["payload"]["actioner"], STEVE);
    assert_eq!(
        recv(&mut first),
        json!({"type": "usrupd", "payload": {"actioner": STEVE, "type": true}})
    );

    // A client echoing common keys (`actioner`) and writing type names in
    // capitals is understood, not closed with 1007.
    send(
        &mut first,
        &format!(
            r#"{{"type":"WRITE","payload":{{"offset":0,"selection":0,"text":"hello","actioner":"{ALEX}"}}}}"#
        ),
    );
    let write = recv(&mut second);
    assert_eq!(write["type"], "write");
    assert_eq!(write["payload"]["actioner"], ALEX);
    assert_eq!(write["payload"]["text"], "hello");
    send(&mut second, r#"{"type":"Sync","payload":{}}"#);
    let sync = recv(&mut second);
    assert_eq!(sync_document(&sync["payload"]), "hello");

    // The plain-uuid form of switchboard's own tokens keeps working.
    let plain = plugin_token(Algorithm::Hs256, "5b0c3e2a-1111-4222-8333-944455556666");
    let mut third = connect(addr, &plain);
    assert_eq!(
        recv(&mut third)["payload"]["actioner"],
        "5b0c3e2a-1111-4222-8333-944455556666"
    );
}

#[test]
fn the_plugins_refusals_map_to_the_documents_close_codes() {
    let addr = start(plugin_config("refusals"));
    // Without the permissions BlazingWSS requires: no permission, 3003.
    let reader = plugin_token(
        Algorithm::Hs512,
        &linked_user("Reader", ALEX, &["READ_COMPUTERS"]),
    );
    let (code, _) = connect(addr, &reader).expect_close();
    assert_eq!(code, 3003);
    // Another issuer than LNKD (`requireIssuer`): bad authorization, 3000.
    let claims = json!({"nbf": jwt::now(), "exp": jwt::now() + 60, "sub": linked_user("A", ALEX, &ALL_NEEDED), "iss": "OTHER"});
    let other = jwt::sign_with(Algorithm::Hs512, &claims, KEY.as_bytes());
    let (code, reason) = connect(addr, &other).expect_close();
    assert_eq!(code, 3000);
    assert!(reason.contains("iss"), "{reason}");
    // Not yet valid (`nbf` ahead): 3000.
    let claims =
        json!({"nbf": jwt::now() + 600, "exp": jwt::now() + 3600, "sub": ALEX, "iss": "LNKD"});
    let early = jwt::sign_with(Algorithm::Hs384, &claims, KEY.as_bytes());
    let (code, _) = connect(addr, &early).expect_close();
    assert_eq!(code, 3000);
    // `alg: none` or an RSA name with the HMAC key: 3000, never accepted.
    let good = plugin_token(Algorithm::Hs512, &linked_user("A", ALEX, &ALL_NEEDED));
    let (_, rest) = good.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    for header in [r#"{"alg":"none"}"#, r#"{"alg":"RS512"}"#] {
        let forged = format!(
            "{}.{payload}.",
            switchboard::base64::encode_url(header.as_bytes())
        );
        let (code, reason) = connect(addr, &forged).expect_close();
        assert_eq!(code, 3000, "{header}");
        assert!(reason.contains("algorithm"), "{reason}");
    }
}

#[test]
fn the_plugins_path_names_the_computer_without_the_header() {
    let addr = start(plugin_config("path"));
    // `BlazingWSS.identify`: the computer id from `/computer/<id>`, the
    // token from `Authorization`, no `Blazing-Computer-Id`.
    let token = plugin_token(Algorithm::Hs512, &linked_user("Alex", ALEX, &ALL_NEEDED));
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{addr}/computer/{COMPUTER}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tungstenite::client(request, stream).expect("handshake");
    let mut by_path = Client { ws };
    let sync = recv(&mut by_path);
    assert_eq!(sync["payload"]["actioner"], ALEX);
    // The same document as the header's: a client of /ws/blazing hears
    // the path client's write.
    let steve = plugin_token(Algorithm::Hs512, &linked_user("Steve", STEVE, &ALL_NEEDED));
    let mut by_header = connect(addr, &steve);
    recv(&mut by_header);
    assert_eq!(recv(&mut by_path)["type"], "usrupd");
    send(
        &mut by_path,
        r#"{"type":"write","payload":{"offset":0,"selection":0,"text":"x"}}"#,
    );
    let write = recv(&mut by_header);
    assert_eq!(write["payload"]["actioner"], ALEX);
    assert_eq!(write["payload"]["text"], "x");
}
