//! Avarel/ert-concierge at ba7ddf7: the Rust test client (`src/tests.rs`,
//! tokio-tungstenite, `concierge_api_rs`), the Python planetary bot
//! (`sims/planetary_sim/concierge_bot.py` with `concierge_api.py`) and the
//! Babylon.js viewer (`babylonjs-web/src/concierge_api/`, its chat and
//! group handlers).

use std::io::Read;
use std::net::{SocketAddr, TcpStream};

use serde_json::{json, Value};

use crate::support::*;

/// What `concierge_api_rs` serialises for `identify(name)` in the Rust
/// tests: every field, `null`s and an empty tag list included.
fn rust_identify(name: &str) -> String {
    format!(
        r#"{{"type":"IDENTIFY","name":"{name}","nickname":null,"version":"0.1.0","secret":null,"tags":[]}}"#
    )
}

/// The Rust tests' `WsClient::connect_local`: `ws://ADDR/ws`, no
/// subprotocol offered.
fn rust_client(addr: SocketAddr) -> Client {
    let (client, chosen) = Client::connect_full(addr, "/ws", None).expect("handshake on /ws");
    assert_eq!(chosen, None, "no subprotocol was offered");
    client
}

#[test]
fn the_rust_tests_identify_on_slash_ws_and_get_hello() {
    let addr = start(config());
    let mut client = rust_client(addr);
    client.send_text(&rust_identify("a"));
    let hello = client.recv_json();
    assert_eq!(hello["type"], "HELLO");
    assert!(is_v4_uuid(hello["uuid"].as_str().unwrap()), "{hello}");
    assert_eq!(hello["version"], "0.1.0");
    client.close();
}

#[test]
fn the_rust_tests_duplicate_identification_closes_the_second() {
    let addr = start(config());
    let mut first = rust_client(addr);
    first.send_text(&rust_identify("b"));
    assert_eq!(first.recv_json()["type"], "HELLO");
    let mut second = rust_client(addr);
    second.send_text(&rust_identify("b"));
    let (code, _) = second.expect_close();
    assert_eq!(code, 4005, "DUPLICATE_AUTH");
}

/// `websockets.connect(uri, subprotocols="ert-concierge")` iterates the
/// string: the bot offers one-letter "subprotocols". The handshake must
/// succeed on `/ws` without choosing any.
fn planetary_bot(addr: SocketAddr) -> TcpStream {
    let letters: Vec<String> = "ert-concierge".chars().map(String::from).collect();
    let offer = format!("Sec-WebSocket-Protocol: {}\r\n", letters.join(", "));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    use std::io::Write;
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{offer}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    // A subprotocol the client did not offer would fail its handshake.
    assert!(!head.contains("sec-websocket-protocol"), "{head}");
    stream
}

#[test]
fn the_planetary_bot_connects_creates_its_group_and_streams_to_it() {
    let addr = start(config());
    drop(planetary_bot(addr));
    // The same flow with a client that keeps the socket: the bot's frames,
    // as `json.dumps` writes them (", " and ": " separators).
    let (mut bot, _) = Client::connect_full(addr, "/ws", None).unwrap();
    bot.send_text(
        r#"{"type": "IDENTIFY", "name": "planetary_simulation", "nickname": "Planetary Simulation", "version": "0.1.1", "secret": null, "tags": ["simulation"]}"#,
    );
    let hello = bot.recv_json();
    assert_eq!(hello["type"], "HELLO");
    let bot_uuid = hello["uuid"].as_str().unwrap().to_string();
    assert!(hello["version"].is_string(), "the bot prints it: {hello}");

    let mut viewer = Concierge::join(addr, "viewer");
    bot.send_text(
        r#"{"type": "GROUP_CREATE", "name": "planetary_simulation_out", "nickname": "Planetary Simulation Channel"}"#,
    );
    let created = bot.recv_json();
    assert_eq!(created["type"], "STATUS");
    assert_eq!(created["code"], "GROUP_CREATED");
    assert_eq!(created["seq"], 0);
    assert_eq!(created["name"], "planetary_simulation_out");
    assert_eq!(created["nickname"], "Planetary Simulation Channel");
    assert_eq!(created["owner_uuid"], bot_uuid.as_str());
    // As the original server: the creator is not subscribed.
    assert_eq!(created["subscribers"], json!([]));
    let heard = viewer.recv_until("STATUS", Some("GROUP_CREATED"));
    assert!(heard.get("seq").is_none(), "{heard}");

    // The viewer subscribes; the bot's MESSAGE carries `"origin": null`,
    // which the server replaces with the real one.
    let subscribed =
        viewer.ask(json!({"type": "SELF_SUBSCRIBE", "name": "planetary_simulation_out"}));
    assert_eq!(subscribed["code"], "SUBSCRIBED");
    bot.send_text(
        r#"{"type": "MESSAGE", "origin": null, "target": {"type": "GROUP", "group": "planetary_simulation_out"}, "data": {"type": "SYSTEM_REMOVE_PLANETS", "ids": []}}"#,
    );
    let sent = bot.recv_json();
    assert_eq!(sent["code"], "MESSAGE_SENT");
    assert_eq!(sent["seq"], 1);
    let message = viewer.recv_until("MESSAGE", None);
    assert_eq!(
        message["data"],
        json!({"type": "SYSTEM_REMOVE_PLANETS", "ids": []})
    );
    assert_eq!(message["origin"]["name"], "planetary_simulation");
    assert_eq!(message["origin"]["uuid"], bot_uuid.as_str());
    assert_eq!(message["origin"]["nickname"], "Planetary Simulation");
    assert_eq!(message["origin"]["tags"], json!(["simulation"]));
    assert_eq!(
        message["origin"]["group"]["name"],
        "planetary_simulation_out"
    );
    assert_eq!(message["target"]["type"], "GROUP");
    // `Message.from_object` reads `target` and `data`: both are there.
    bot.close();
}

/// The Babylon.js client: `new WebSocket(url, "ert-concierge")`, then
/// IDENTIFY without `secret` (undefined is left out by JSON.stringify).
fn babylon(addr: SocketAddr, name: &str) -> Concierge {
    let (mut client, chosen) =
        Client::connect_full(addr, "/ws", Some("ert-concierge")).expect("handshake");
    assert_eq!(
        chosen.as_deref(),
        Some("ert-concierge"),
        "browsers need the echo"
    );
    client.send_text(&format!(
        r#"{{"type":"IDENTIFY","name":"{name}","version":"0.1.0","tags":["babylon"]}}"#
    ));
    let hello = client.recv_json();
    assert_eq!(hello["type"], "HELLO");
    Concierge {
        uuid: hello["uuid"].as_str().unwrap().to_string(),
        client,
        name: name.into(),
    }
}

/// `ServiceEventHandler`: on HELLO it sends GROUP_FETCH; a result for its
/// group, or a GROUP_CREATED for it, makes it SELF_SUBSCRIBE.
fn service_handler_subscribes(viewer: &mut Concierge, group: &str) -> Value {
    let fetched = viewer.ask(json!({"type": "GROUP_FETCH", "name": group}));
    if fetched["type"] != "GROUP_FETCH_RESULT" {
        assert_eq!(fetched["code"], "NO_SUCH_GROUP", "{fetched}");
        assert_eq!(fetched["group"], group);
        let created = viewer.recv_until("STATUS", Some("GROUP_CREATED"));
        assert_eq!(created["name"], group);
    } else {
        assert_eq!(fetched["name"], group);
    }
    viewer.ask(json!({"type": "SELF_SUBSCRIBE", "name": group}))
}

#[test]
fn the_babylon_chat_shows_your_own_line_when_it_comes_back() {
    let addr = start(config());
    let mut viewer = babylon(addr, "alice");
    // Before anyone created "chat": NO_SUCH_GROUP, then the creation
    // makes the handler subscribe.
    let fetched = viewer.ask(json!({"type": "GROUP_FETCH", "name": "chat"}));
    assert_eq!(fetched["code"], "NO_SUCH_GROUP");
    // The document's field; the original server wrote `name`, which the
    // viewer only logs (docs/concierge.md, "Coming from ert-concierge").
    assert_eq!(fetched["group"], "chat");
    let mut host = babylon(addr, "host");
    let created = host.ask(json!({"type": "GROUP_CREATE", "name": "chat"}));
    assert_eq!(created["code"], "GROUP_CREATED");
    let heard = viewer.recv_until("STATUS", Some("GROUP_CREATED"));
    assert_eq!(heard["name"], "chat");
    let subscribed = viewer.ask(json!({"type": "SELF_SUBSCRIBE", "name": "chat"}));
    // The document's name; the viewer at ba7ddf7 waits for the original
    // server's "SELF_SUBSCRIBED" (docs/concierge.md, "Coming from ert-concierge").
    assert_eq!(subscribed["code"], "SUBSCRIBED");
    assert_eq!(subscribed["subscribers"], json!([viewer.uuid]));

    let mut bob = babylon(addr, "bob");
    let subscribed = service_handler_subscribes(&mut bob, "chat");
    assert_eq!(subscribed["code"], "SUBSCRIBED");

    // ChatHandler.onEnter: a string to the chat group.
    viewer.send(
        json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "chat"}, "data": "hi all"}),
    );
    // onMessage: origin.group.name must be "chat" and data a string; the
    // line is marked "you" when origin.name is the client's own name.
    let own = viewer.recv_until("MESSAGE", None);
    assert_eq!(own["data"], "hi all");
    assert_eq!(own["origin"]["name"], "alice");
    assert_eq!(own["origin"]["group"]["name"], "chat");
    let sent = viewer.recv();
    assert_eq!(sent["code"], "MESSAGE_SENT");
    let theirs = bob.recv_until("MESSAGE", None);
    assert_eq!(theirs["data"], "hi all");
    assert_eq!(theirs["origin"]["name"], "alice");
    // The host created the group but never subscribed: it hears nothing
    // but its own MESSAGE to ALL, which reaches everyone, itself included.
    host.send(json!({"type": "MESSAGE", "target": {"type": "ALL"}, "data": {"announce": 1}}));
    let to_all = host.recv_until("MESSAGE", None);
    assert_eq!(to_all["data"], json!({"announce": 1}));
    assert_eq!(to_all["origin"]["name"], "host");
    assert!(
        to_all["origin"].get("group").is_none_or(Value::is_null),
        "{to_all}"
    );
    for client in [&mut viewer, &mut bob] {
        let heard = client.recv_until("MESSAGE", None);
        assert_eq!(heard["data"], json!({"announce": 1}));
    }
}
