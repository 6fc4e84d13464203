//! The connection machinery under stress and abuse: echo, size limits,
//! pings during a stream, slow consumers, protocol errors, abrupt ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::support::*;
use serde_json::{json, Value};
use switchboard::Config;
use tungstenite::Message;

#[test]
fn echo_returns_text_and_binary_unchanged() {
    let addr = start(config());
    let mut client = Client::connect(addr, "/ws/echo");
    client.send_text("héllo");
    assert_eq!(client.recv(), Message::text("héllo"));
    client
        .ws
        .send(Message::binary(vec![0u8, 159, 146, 150]))
        .unwrap();
    assert_eq!(client.recv(), Message::binary(vec![0u8, 159, 146, 150]));
    let big = "z".repeat(200_000);
    client.send_text(&big);
    assert_eq!(client.recv().into_text().unwrap().as_str(), big);
}

#[test]
fn client_close_is_answered_with_the_same_code() {
    let addr = start(config());
    let mut client = Client::connect(addr, "/ws/echo");
    client
        .ws
        .close(Some(tungstenite::protocol::CloseFrame {
            code: 4321.into(),
            reason: "done".into(),
        }))
        .unwrap();
    assert_eq!(client.expect_close().0, 4321);
}

#[test]
fn oversize_message_closes_with_1009_and_others_are_unaffected() {
    let addr = start(Config {
        max_message_bytes: 1000,
        ..config()
    });
    let mut bystander = Concierge::join(addr, "bystander");
    let mut echo = Client::connect(addr, "/ws/echo");
    echo.send_text(&"x".repeat(1000));
    assert_eq!(echo.recv().into_text().unwrap().len(), 1000);
    echo.send_text(&"x".repeat(1001));
    let (code, reason) = echo.expect_close();
    assert_eq!(code, 1009);
    assert!(reason.contains("1000"), "{reason}");

    let mut big = Concierge::join(addr, "big");
    big.send(json!({"type": "MESSAGE", "target": {"type": "ALL"}, "data": "y".repeat(2000)}));
    assert_eq!(big.client.expect_close().0, 1009);
    // `big` leaves the namespace once its socket is closed.
    wait_until("big to leave", || {
        let reply = bystander.ask(json!({"type": "CLIENT_FETCH_ALL"}));
        let names: Vec<&str> = reply["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        names == ["bystander"]
    });
}

/// A client that pings continuously while 8 MiB of messages stream to it
/// gets a pong for every ping, in order, and every message whole.
#[test]
fn pings_during_a_large_stream_all_get_pongs_and_frames_stay_intact() {
    const MESSAGES: usize = 128;
    const PINGS: usize = 400;
    let addr = start(Config {
        max_queued_bytes: 64 << 20, // this test is about pongs, not slow readers
        ..config()
    });
    let mut reader = Concierge::join(addr, "reader");
    let mut publisher = Concierge::join(addr, "publisher");
    assert_eq!(
        reader.ask(json!({"type": "GROUP_CREATE", "name": "stream"}))["code"],
        "GROUP_CREATED"
    );
    assert_eq!(publisher.recv()["code"], "GROUP_CREATED");
    // Creating a group does not subscribe to it (as the original server).
    assert_eq!(
        reader.ask(json!({"type": "SELF_SUBSCRIBE", "name": "stream"}))["code"],
        "SUBSCRIBED"
    );
    let sender = std::thread::spawn(move || {
        let filler = "p".repeat(64 * 1024);
        for i in 0..MESSAGES {
            publisher.send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "stream"}, "data": {"i": i, "filler": filler}}));
        }
        for _ in 0..MESSAGES {
            assert_eq!(publisher.recv_until("STATUS", None)["code"], "MESSAGE_SENT");
        }
    });
    let (mut pongs, mut messages, mut pings_sent) = (0usize, 0usize, 0usize);
    while pongs < PINGS || messages < MESSAGES {
        if pings_sent < PINGS {
            reader
                .client
                .ws
                .send(Message::Ping(pings_sent.to_string().into_bytes().into()))
                .unwrap();
            pings_sent += 1;
        }
        match reader.client.ws.read().unwrap() {
            Message::Pong(payload) => {
                assert_eq!(
                    payload.as_ref(),
                    pongs.to_string().as_bytes(),
                    "pongs in order"
                );
                pongs += 1;
            }
            Message::Text(text) => {
                let payload: Value = serde_json::from_str(&text).expect("an intact JSON frame");
                assert_eq!(payload["data"]["i"], messages, "messages in order");
                assert_eq!(payload["data"]["filler"].as_str().unwrap().len(), 64 * 1024);
                messages += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    sender.join().unwrap();
    assert_eq!((pongs, messages), (PINGS, MESSAGES));
}

/// A subscriber that never reads is disconnected once its queue overflows,
/// while a reading subscriber receives every message.
#[test]
fn a_client_that_never_reads_is_dropped_and_the_others_keep_receiving() {
    const MESSAGES: usize = 1500;
    let addr = start(Config {
        max_queued_bytes: 64 * 1024,
        ..config()
    });
    let mut owner = Concierge::join(addr, "owner");
    let mut stalled = Concierge::join(addr, "stalled");
    let mut reader = Concierge::join(addr, "reader");
    assert_eq!(
        owner.ask(json!({"type": "GROUP_CREATE", "name": "feed"}))["code"],
        "GROUP_CREATED"
    );
    for subscriber in [&mut stalled, &mut reader] {
        assert_eq!(subscriber.recv()["code"], "GROUP_CREATED");
        assert_eq!(
            subscriber.ask(json!({"type": "SELF_SUBSCRIBE", "name": "feed"}))["code"],
            "SUBSCRIBED"
        );
    }
    // The publisher stays at most WINDOW messages ahead of the reader, so
    // the reader never falls behind however slow this machine is, while
    // the stalled client's backlog grows without bound.
    const WINDOW: usize = 2; // 32 KiB in flight: below the 64 KiB budget
    let (progress, read_so_far) = std::sync::mpsc::channel::<usize>();
    let publisher = std::thread::spawn(move || {
        let filler = "f".repeat(16 * 1024);
        let mut received = 0;
        for i in 0..MESSAGES {
            while i >= received + WINDOW {
                received = read_so_far.recv().unwrap();
            }
            owner.send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": "feed"}, "data": {"i": i, "filler": filler}}));
        }
        owner
    });
    for i in 0..MESSAGES {
        let message = reader.recv_until("MESSAGE", None);
        assert_eq!(message["data"]["i"], i);
        let _ = progress.send(i + 1);
    }
    let _owner = publisher.join().unwrap();
    assert_eq!(
        metric(addr, "switchboard_slow_consumer_disconnects_total"),
        1
    );
    let clients = reader.ask(json!({"type": "CLIENT_FETCH_ALL"}));
    let names: Vec<&str> = clients["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["owner", "reader"]);
    // Its writer gives up at once, and the socket is closed.
    wait_until("the stalled connection to close", || {
        metric(addr, "switchboard_connections_open") == 2
    });
    drop(stalled);
}

/// Opens a WebSocket by hand and returns the raw stream after the 101.
fn raw_websocket(addr: SocketAddr, path: &str) -> TcpStream {
    raw_websocket_with(addr, path, "")
}

/// A client frame: FIN + opcode, masked with a zero key (allowed: any key is).
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// Reads one server frame and returns (opcode, close code if a close frame).
fn read_close_code(stream: &mut TcpStream) -> u16 {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x88, "expected a close frame");
    let mut payload = vec![0u8; (header[1] & 0x7f) as usize];
    stream.read_exact(&mut payload).unwrap();
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn protocol_violations_close_with_their_rfc_codes() {
    let addr = start(config());
    let cases: [(&str, Vec<u8>, u16); 5] = [
        (
            "invalid UTF-8 text",
            masked_frame(0x81, &[0xff, 0xfe]),
            1007,
        ),
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved bits set", masked_frame(0xC1, b"hi"), 1002),
        ("unknown opcode", masked_frame(0x83, b"hi"), 1002),
        ("fragmented ping", masked_frame(0x09, b"hi"), 1002),
    ];
    for (what, bytes, code) in cases {
        let mut stream = raw_websocket(addr, "/ws/echo");
        stream.write_all(&bytes).unwrap();
        assert_eq!(read_close_code(&mut stream), code, "{what}");
    }
    // A control frame with more than 125 bytes of payload.
    let mut stream = raw_websocket(addr, "/ws/echo");
    let mut ping = vec![0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'x'; 200]);
    stream.write_all(&ping).unwrap();
    assert_eq!(read_close_code(&mut stream), 1002, "oversize control frame");
}

#[test]
fn abrupt_disconnects_mid_frame_and_mid_handshake_leave_the_hub_serving() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    for _ in 0..20 {
        // Half a frame header, then gone.
        let mut stream = raw_websocket(addr, "/ws/concierge");
        stream.write_all(&[0x81, 0xfe, 0x10]).unwrap();
        drop(stream);
        // Half a handshake, then gone.
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /ws/concierge HTTP/1.1\r\nUpgr")
            .unwrap();
        drop(stream);
    }
    Concierge::join(addr, "carl").client.vanish();
    wait_until("the dropped connections to be released", || {
        metric(addr, "switchboard_connections_open") == 2
    });
    ann.send(
        json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "bob"}, "data": "still here"}),
    );
    assert_eq!(bob.recv()["data"], "still here");
    assert_eq!(ann.recv()["code"], "MESSAGE_SENT");
}

/// No JSON a client sends is parsed recursively: `data` is passed through
/// verbatim and unknown fields are skipped, both by serde_json's iterative
/// scanner, so 100,000 levels of nesting anywhere cost no stack.
#[test]
fn deeply_nested_json_never_overflows_a_stack() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let arrays = "[".repeat(100_000) + &"]".repeat(100_000);
    let objects = "{\"a\":".repeat(50_000) + "1" + &"}".repeat(50_000);

    let in_data =
        format!(r#"{{"type":"MESSAGE","target":{{"type":"NAME","name":"bob"}},"data":{arrays}}}"#);
    ann.client.send_text(&in_data);
    assert_eq!(ann.recv()["code"], "MESSAGE_SENT");
    match bob.client.recv() {
        Message::Text(text) => assert!(text.contains(&format!(r#""data":{arrays}"#))),
        other => panic!("{other:?}"),
    }

    let in_target = format!(
        r#"{{"type":"MESSAGE","target":{{"type":"NAME","name":"bob","x":{objects}}},"data":2,"y":{objects}}}"#
    );
    ann.client.send_text(&in_target);
    assert_eq!(
        ann.recv(),
        json!({"type": "STATUS", "code": "MESSAGE_SENT", "seq": 1})
    );
    assert_eq!(bob.recv()["data"], 2);

    let in_tags =
        format!(r#"{{"type":"IDENTIFY","name":"carl","version":"0.1.0","tags":{arrays}}}"#);
    let mut carl = Client::connect(addr, "/ws/concierge");
    carl.send_text(&in_tags);
    assert_eq!(carl.expect_close().0, 4002);
    // Everyone else still works.
    ann.send(
        json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "bob"}, "data": "after"}),
    );
    assert_eq!(bob.recv()["data"], "after");
}

#[test]
fn a_silent_client_is_pinged_and_closed_with_1001_if_it_never_answers() {
    let addr = start(Config {
        keepalive: std::time::Duration::from_millis(100),
        ..config()
    });
    let mut stream = raw_websocket(addr, "/ws/echo");
    let (first, payload) = read_frame(&mut stream);
    assert_eq!((first, payload.len()), (0x89, 0), "an empty ping first");
    loop {
        match read_frame(&mut stream) {
            (0x89, _) => continue,
            (0x88, payload) => {
                assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
                break;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

#[test]
fn a_silent_client_that_answers_pings_stays_connected() {
    // The server pings after one interval of silence and closes after two,
    // so the client has about one interval to answer each ping: a second,
    // which a loaded machine's scheduler leaves it.
    let keepalive = std::time::Duration::from_secs(1);
    let addr = start(Config {
        keepalive,
        ..config()
    });
    let mut client = Client::connect(addr, "/ws/echo");
    let connected = std::time::Instant::now();
    // tungstenite answers each ping with a pong on the next read. A ping
    // comes one silent interval after the last pong, so the third comes
    // more than two intervals after connecting: past the silence that
    // closes a client that does not answer.
    let mut pings = 0;
    while pings < 3 {
        match client.ws.read().unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    let silent_for = connected.elapsed();
    assert!(
        silent_for >= 2 * keepalive,
        "three pings within {silent_for:?}: pinged before a silent interval"
    );
    client.send_text("alive");
    loop {
        match client.ws.read().unwrap() {
            Message::Ping(_) => continue,
            message => break assert_eq!(message, Message::text("alive")),
        }
    }
}
