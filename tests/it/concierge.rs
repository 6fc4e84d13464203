//! End-to-end tests of the concierge dialect (`protocols/concierge.md`)
//! through real sockets: handshake, IDENTIFY and its close codes, `seq`
//! numbering, messages to every kind of target, groups and their life
//! cycle, the fetch payloads, and clients that leave. Creating a group does
//! not subscribe its creator, and a MESSAGE to a group or to ALL comes back
//! to its sender when the sender is a recipient, as on the original server
//! (docs/concierge.md "Coming from ert-concierge").

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::json::assert_same;
use crate::support::*;
use serde_json::{json, Value};
use switchboard::Config;
use tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// An IDENTIFY payload for `name` with version 0.1.0.
fn identify(name: &str) -> Value {
    json!({"type": "IDENTIFY", "name": name, "version": "0.1.0"})
}

/// Sends `text` as the very first frame of a fresh `/ws/concierge`
/// connection and returns the close frame the server answers with. Every
/// close must carry a reason.
fn first_frame_close(addr: SocketAddr, text: &str) -> (u16, String) {
    let mut client = Client::connect(addr, "/ws/concierge");
    client.send_text(text);
    let (code, reason) = client.expect_close();
    assert!(
        !reason.is_empty(),
        "close {code} for {text:?} has no reason"
    );
    (code, reason)
}

/// A group's fields as the server describes them: `nickname` only when set.
fn group(
    name: &str,
    nickname: Option<&str>,
    owner: &Concierge,
    subscribers: &[&Concierge],
) -> Value {
    let mut fields = json!({
        "name": name,
        "owner_uuid": owner.uuid,
        "subscribers": subscribers.iter().map(|c| c.uuid.clone()).collect::<Vec<_>>(),
    });
    if let Some(nickname) = nickname {
        fields["nickname"] = json!(nickname);
    }
    fields
}

/// `base` (an object) with the fields of `extra` added.
fn with(mut base: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        base[key] = value.clone();
    }
    base
}

/// A STATUS with `code`, the group's fields and, if given, `seq`.
fn group_status(code: &str, group_fields: Value, seq: Option<u64>) -> Value {
    let mut status = with(group_fields, json!({"type": "STATUS", "code": code}));
    if let Some(seq) = seq {
        status["seq"] = json!(seq);
    }
    status
}

/// A MESSAGE payload to `target` carrying `data`.
fn message(target: Value, data: Value) -> Value {
    json!({"type": "MESSAGE", "target": target, "data": data})
}

fn to_name(name: &str) -> Value {
    json!({"type": "NAME", "name": name})
}

fn to_group(group: &str) -> Value {
    json!({"type": "GROUP", "group": group})
}

/// The `origin` a recipient sees for messages from `client` (no tags, no
/// nickname).
fn origin(client: &Concierge) -> Value {
    json!({"name": client.name, "uuid": client.uuid, "tags": []})
}

/// Asserts that `payload` is `{"type":"STATUS","code":"MESSAGE_SENT","seq":seq}`.
#[track_caller]
fn assert_sent(payload: &Value, seq: u64) {
    assert_eq!(
        payload,
        &json!({"type": "STATUS", "code": "MESSAGE_SENT", "seq": seq})
    );
}

/// Asserts that nothing is queued for `client` ahead of a fresh request:
/// a SELF_FETCH (numbered `seq`) is answered by the very next payload.
#[track_caller]
fn assert_nothing_pending(client: &mut Concierge, seq: u64) {
    let reply = client.ask(json!({"type": "SELF_FETCH"}));
    assert_eq!(
        reply["type"], "SELF_FETCH_RESULT",
        "{} got an unexpected payload: {reply}",
        client.name
    );
    assert_eq!(reply["seq"], seq, "{reply}");
}

/// Asserts that `payload` is a STATUS `code` with a non-empty `desc`, `seq`
/// as given (absent if `None`), and no other fields.
#[track_caller]
fn assert_described_status(payload: &Value, code: &str, seq: Option<u64>) {
    assert_eq!(payload["type"], "STATUS", "{payload}");
    assert_eq!(payload["code"], code, "{payload}");
    let desc = payload["desc"]
        .as_str()
        .unwrap_or_else(|| panic!("no desc: {payload}"));
    assert!(!desc.is_empty(), "{payload}");
    match seq {
        Some(seq) => assert_eq!(payload["seq"], seq, "{payload}"),
        None => assert!(payload.get("seq").is_none(), "unexpected seq: {payload}"),
    }
    let expected_keys = if seq.is_some() { 4 } else { 3 };
    assert_eq!(
        payload.as_object().unwrap().len(),
        expected_keys,
        "extra fields: {payload}"
    );
}

/// The names of the clients a CLIENT_FETCH_ALL by `asker` lists.
fn client_names(asker: &mut Concierge) -> Vec<String> {
    asker.send(json!({"type": "CLIENT_FETCH_ALL"}));
    let result = asker.recv_until("CLIENT_FETCH_ALL_RESULT", None);
    result["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// Endpoints and subprotocol
// ---------------------------------------------------------------------------

#[test]
fn ws_concierge_path_without_subprotocol_speaks_concierge_and_chooses_no_protocol() {
    let addr = start(config());
    let (mut client, chosen) = Client::connect_full(addr, "/ws/concierge", None).unwrap();
    assert_eq!(chosen, None);
    client.send_json(identify("ann"));
    let hello = client.recv_json();
    assert_eq!(hello["type"], "HELLO", "{hello}");
    assert_eq!(hello["version"], "0.1.0");
}

#[test]
fn any_path_with_ert_concierge_subprotocol_speaks_concierge_and_echoes_the_protocol() {
    let addr = start(config());
    for (path, name) in [
        ("/whatever", "ann"),
        ("/ws/concierge", "bob"),
        ("/", "carl"),
    ] {
        let (mut client, chosen) = Client::connect_full(addr, path, Some("ert-concierge")).unwrap();
        assert_eq!(chosen.as_deref(), Some("ert-concierge"), "{path}");
        client.send_json(identify(name));
        let hello = client.recv_json();
        assert_eq!(hello["type"], "HELLO", "{path}: {hello}");
        assert!(is_v4_uuid(hello["uuid"].as_str().unwrap()), "{hello}");
    }
}

#[test]
fn clients_on_a_custom_path_and_on_ws_concierge_share_one_namespace() {
    let addr = start(config());
    let (mut client, _) = Client::connect_full(addr, "/whatever", Some("ert-concierge")).unwrap();
    client.send_json(identify("ann"));
    let hello = client.recv_json();
    let mut ann = Concierge {
        client,
        uuid: hello["uuid"].as_str().unwrap().to_string(),
        name: "ann".into(),
    };
    let mut bob = Concierge::join(addr, "bob");

    assert_sent(&ann.ask(message(to_name("bob"), json!("hi"))), 0);
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": "hi"})
    );
    assert_sent(&bob.ask(message(to_name("ann"), json!("hello"))), 0);
    assert_eq!(
        ann.recv(),
        json!({"type": "MESSAGE", "origin": origin(&bob), "target": to_name("ann"), "data": "hello"})
    );
}

// ---------------------------------------------------------------------------
// IDENTIFY and HELLO
// ---------------------------------------------------------------------------

#[test]
fn hello_carries_a_lowercase_v4_uuid_and_the_server_version_only() {
    let addr = start(config());
    let mut uuids = Vec::new();
    for name in ["ann", "bob", "carl"] {
        let mut client = Client::connect(addr, "/ws/concierge");
        client.send_json(identify(name));
        let hello = client.recv_json();
        assert_eq!(hello["type"], "HELLO", "{hello}");
        assert_eq!(hello["version"], "0.1.0", "{hello}");
        let uuid = hello["uuid"].as_str().unwrap().to_string();
        assert!(is_v4_uuid(&uuid), "not a lowercase v4 uuid: {uuid}");
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert_eq!(hello.as_object().unwrap().len(), 3, "extra fields: {hello}");
        uuids.push(uuid);
    }
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 3, "uuids must be distinct: {uuids:?}");
}

#[test]
fn identify_with_all_optional_fields_is_accepted_and_recorded() {
    let addr = start(config());
    let mut ann = Concierge::join_with(
        addr,
        "ann_2",
        json!({"tags": ["babylon", "x"], "nickname": "Ann Two"}),
    );
    let me = ann.ask(json!({"type": "SELF_FETCH"}));
    assert_eq!(
        me,
        json!({
            "type": "SELF_FETCH_RESULT",
            "name": "ann_2",
            "nickname": "Ann Two",
            "uuid": ann.uuid,
            "tags": ["babylon", "x"],
            "subscriptions": [],
            "seq": 0,
        })
    );
}

#[test]
fn no_identify_within_the_identify_timeout_closes_with_4004() {
    let addr = start(Config {
        identify_timeout: Duration::from_millis(300),
        ..config()
    });
    let mut client = Client::connect(addr, "/ws/concierge");
    let (code, reason) = client.expect_close();
    assert_eq!(code, 4004);
    assert!(!reason.is_empty());
}

#[test]
fn identifying_in_time_is_not_closed_by_the_identify_timeout() {
    // Two seconds to identify: ample for this thread on a loaded machine.
    let addr = start(Config {
        identify_timeout: Duration::from_secs(2),
        ..config()
    });
    let mut ann = Concierge::join(addr, "ann");
    // A client that connects after ann has identified and never does: its
    // deadline is later than ann's, so its 4004 says that ann's has passed.
    let mut idle = Client::connect(addr, "/ws/concierge");
    assert_eq!(idle.expect_close().0, 4004);
    let reply = ann.ask(json!({"type": "GROUP_FETCH_ALL"}));
    assert_eq!(
        reply,
        json!({"type": "GROUP_FETCH_ALL_RESULT", "groups": [], "seq": 0})
    );
}

#[test]
fn a_valid_payload_other_than_identify_first_closes_with_4003() {
    let addr = start(config());
    for text in [
        r#"{"type":"GROUP_FETCH_ALL"}"#,
        r#"{"type":"SELF_FETCH"}"#,
        r#"{"type":"MESSAGE","target":{"type":"ALL"},"data":1}"#,
        r#"{"type":"GROUP_CREATE","name":"g"}"#,
    ] {
        let (code, _) = first_frame_close(addr, text);
        assert_eq!(code, 4003, "{text}");
    }
}

#[test]
fn an_undecodable_first_frame_closes_with_4002() {
    let addr = start(config());
    for text in [
        "not json",
        "[]",
        r#"["IDENTIFY","ann"]"#,
        r#"{"name":"ann","version":"0.1.0"}"#,
        r#"{"type":"NOPE"}"#,
        r#"{"type":"IDENTIFY","name":"a b","version":"0.1.0"}"#,
        r#"{"type":"IDENTIFY","name":"","version":"0.1.0"}"#,
        r#"{"type":"IDENTIFY","name":"ann"}"#,
    ] {
        let (code, _) = first_frame_close(addr, text);
        assert_eq!(code, 4002, "{text}");
    }
}

#[test]
fn a_binary_first_frame_closes_with_4002() {
    let addr = start(config());
    let mut client = Client::connect(addr, "/ws/concierge");
    let identify_bytes = identify("ann").to_string().into_bytes();
    client.ws.send(Message::binary(identify_bytes)).unwrap();
    let (code, reason) = client.expect_close();
    assert_eq!(code, 4002);
    assert!(!reason.is_empty());
}

#[test]
fn a_taken_name_closes_with_4005_and_the_holder_is_unaffected() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");

    let (code, _) = first_frame_close(addr, &identify("ann").to_string());
    assert_eq!(code, 4005);

    assert_sent(
        &ann.ask(message(to_name("bob"), json!({"still": "here"}))),
        0,
    );
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": {"still": "here"}})
    );
    assert_eq!(client_names(&mut bob), ["ann", "bob"]);
}

#[test]
fn names_are_case_sensitive() {
    let addr = start(config());
    let _ann = Concierge::join(addr, "ann");
    let mut big_ann = Concierge::join(addr, "Ann");
    assert_eq!(client_names(&mut big_ann), ["Ann", "ann"]);
}

#[test]
fn with_a_secret_a_wrong_or_missing_secret_closes_with_4006_and_the_right_one_gets_hello() {
    let addr = start(Config {
        secret: Some("s3cret".into()),
        ..config()
    });
    for extra in [
        json!({"secret": "wrong"}),
        json!({}),
        json!({"secret": ""}),
        json!({"secret": "s3cret "}),
    ] {
        let text = with(identify("ann"), extra.clone()).to_string();
        let (code, _) = first_frame_close(addr, &text);
        assert_eq!(code, 4006, "{extra}");
    }
    let ann = Concierge::join_with(addr, "ann", json!({"secret": "s3cret"}));
    assert!(is_v4_uuid(&ann.uuid));
}

#[test]
fn without_a_server_secret_any_secret_is_accepted() {
    let addr = start(config());
    let ann = Concierge::join_with(addr, "ann", json!({"secret": "whatever"}));
    assert!(is_v4_uuid(&ann.uuid));
}

#[test]
fn incompatible_versions_close_with_4007_and_a_newer_patch_gets_hello() {
    let addr = start(config());
    for version in ["0.2.0", "1.0.0", "banana", "", "0.0.9", "0.1"] {
        let text = json!({"type": "IDENTIFY", "name": "ann", "version": version}).to_string();
        let (code, _) = first_frame_close(addr, &text);
        assert_eq!(code, 4007, "{version:?}");
    }
    let mut client = Client::connect(addr, "/ws/concierge");
    client.send_json(json!({"type": "IDENTIFY", "name": "ann", "version": "0.1.9"}));
    let hello = client.recv_json();
    assert_eq!(hello["type"], "HELLO", "{hello}");
    assert_eq!(hello["version"], "0.1.0");
}

// ---------------------------------------------------------------------------
// seq
// ---------------------------------------------------------------------------

#[test]
fn seq_counts_every_text_frame_from_zero_good_or_bad() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");

    let reply = ann.ask(json!({"type": "SELF_FETCH"}));
    assert_eq!(
        (reply["type"].as_str(), reply["seq"].as_u64()),
        (Some("SELF_FETCH_RESULT"), Some(0))
    );

    ann.client.send_text("not json");
    assert_described_status(&ann.recv(), "PROTOCOL", Some(1));

    assert_described_status(&ann.ask(json!({"type": "NOPE"})), "PROTOCOL", Some(2));
    assert_described_status(&ann.ask(json!({"type": "HELLO"})), "UNSUPORTED", Some(3));

    // A binary frame is answered but not counted.
    ann.client
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .unwrap();
    assert_described_status(&ann.recv(), "PROTOCOL", None);

    assert_eq!(
        ann.ask(message(to_name("nobody"), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_NAME", "name": "nobody", "seq": 4})
    );
    assert_eq!(
        ann.ask(json!({"type": "GROUP_FETCH_ALL"})),
        json!({"type": "GROUP_FETCH_ALL_RESULT", "groups": [], "seq": 5})
    );
    assert_eq!(
        ann.ask(json!({"type": "IDENTIFY", "name": "ann", "version": "0.1.0"}))["seq"],
        6
    );
    assert_eq!(ann.ask(json!({"type": "SELF_FETCH"}))["seq"], 7);
}

#[test]
fn seq_is_counted_per_connection() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    for expected in 0..3 {
        assert_eq!(ann.ask(json!({"type": "SELF_FETCH"}))["seq"], expected);
    }
    assert_eq!(bob.ask(json!({"type": "SELF_FETCH"}))["seq"], 0);
    assert_eq!(ann.ask(json!({"type": "SELF_FETCH"}))["seq"], 3);
}

#[test]
fn pipelined_requests_are_answered_in_order_with_their_seq() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    for _ in 0..20 {
        ann.send(json!({"type": "GROUP_FETCH", "name": "nope"}));
        ann.send(json!({"type": "SELF_FETCH"}));
    }
    for i in 0..20u64 {
        assert_eq!(
            ann.recv(),
            json!({"type": "STATUS", "code": "NO_SUCH_GROUP", "group": "nope", "seq": 2 * i})
        );
        let me = ann.recv();
        assert_eq!(me["type"], "SELF_FETCH_RESULT", "{me}");
        assert_eq!(me["seq"], 2 * i + 1, "{me}");
    }
}

#[test]
fn a_binary_frame_after_identify_gets_a_protocol_status_without_seq_and_the_connection_survives() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    for bytes in [
        vec![],
        vec![0u8, 159, 146, 150],
        identify("x").to_string().into_bytes(),
    ] {
        ann.client.ws.send(Message::binary(bytes)).unwrap();
        assert_described_status(&ann.recv(), "PROTOCOL", None);
    }
    assert_nothing_pending(&mut ann, 0);
}

#[test]
fn the_refusal_of_a_binary_frame_leaves_after_replies_to_earlier_frames() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    for round in 0..20 {
        // Both frames go out before either reply can arrive.
        ann.client
            .ws
            .write(Message::text(r#"{"type":"SELF_FETCH"}"#))
            .unwrap();
        ann.client
            .ws
            .write(Message::binary(vec![1u8, 2, 3]))
            .unwrap();
        ann.client.ws.flush().unwrap();
        let first = ann.recv();
        assert_eq!(first["type"], "SELF_FETCH_RESULT", "round {round}: {first}");
        assert_eq!(first["seq"], round);
        assert_described_status(&ann.recv(), "PROTOCOL", None);
    }
}

// ---------------------------------------------------------------------------
// MESSAGE
// ---------------------------------------------------------------------------

#[test]
fn message_to_a_name_is_delivered_with_an_origin_and_without_seq() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");

    assert_sent(&ann.ask(message(to_name("bob"), json!({"x": 1}))), 0);
    assert_eq!(
        bob.recv(),
        json!({
            "type": "MESSAGE",
            "origin": {"name": "ann", "uuid": ann.uuid, "tags": []},
            "target": {"type": "NAME", "name": "bob"},
            "data": {"x": 1},
        })
    );
    // Neither the sender nor a bystander gets a copy.
    assert_nothing_pending(&mut ann, 1);
    assert_nothing_pending(&mut carl, 0);
    assert_nothing_pending(&mut bob, 0);
}

#[test]
fn message_origin_carries_the_senders_tags_and_nickname() {
    let addr = start(config());
    let mut ann = Concierge::join_with(
        addr,
        "ann",
        json!({"tags": ["babylon", "web"], "nickname": "Anthony"}),
    );
    let mut bob = Concierge::join(addr, "bob");

    assert_sent(&ann.ask(message(to_name("bob"), json!([1, 2]))), 0);
    assert_eq!(
        bob.recv(),
        json!({
            "type": "MESSAGE",
            "origin": {"name": "ann", "nickname": "Anthony", "uuid": ann.uuid, "tags": ["babylon", "web"]},
            "target": {"type": "NAME", "name": "bob"},
            "data": [1, 2],
        })
    );
}

#[test]
fn a_forged_origin_is_overridden_by_the_real_sender() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let carl = Concierge::join(addr, "carl");

    let forged = json!({
        "type": "MESSAGE",
        "origin": {
            "name": "carl",
            "nickname": "Carl",
            "uuid": carl.uuid,
            "tags": ["admin"],
            "group": {"name": "g", "owner_uuid": carl.uuid, "subscribers": []},
        },
        "target": {"type": "NAME", "name": "bob"},
        "data": "trust me",
    });
    assert_sent(&ann.ask(forged), 0);
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": "trust me"})
    );
}

#[test]
fn message_data_is_passed_through_byte_for_byte() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");

    let cases = [
        r#"{ "z" : 1.50, "a":[true,null] }"#,
        r"[1e3, -0.0, 12345678901234567890123]",
        r#""caf\u00e9 \ud83d\ude00 \"quoted\"""#,
        r#"{"b":1,"a":2,"b":3}"#,
        "  7  ",
    ];
    for (seq, data) in cases.into_iter().enumerate() {
        ann.client.send_text(&format!(
            r#"{{"type":"MESSAGE","target":{{"type":"NAME","name":"bob"}},"data":{data}}}"#
        ));
        assert_sent(&ann.recv(), seq as u64);
        let text = match bob.client.recv() {
            Message::Text(text) => text.to_string(),
            other => panic!("expected text, got {other:?}"),
        };
        let expected = format!(r#""data":{}"#, data.trim());
        assert!(text.contains(&expected), "{expected} not in {text}");
    }

    // The brief's exact example, whitespace and all.
    ann.client.send_text(
        r#"{"type":"MESSAGE","target":{"type":"NAME","name":"bob"},"data":{ "z" : 1.50, "a":[true,null] }}"#,
    );
    assert_sent(&ann.recv(), cases.len() as u64);
    match bob.client.recv() {
        Message::Text(text) => assert!(
            text.contains(r#""data":{ "z" : 1.50, "a":[true,null] }"#),
            "not verbatim: {text}"
        ),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn message_without_data_is_delivered_with_null_data() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");

    assert_sent(
        &ann.ask(json!({"type": "MESSAGE", "target": to_name("bob")})),
        0,
    );
    let delivered = bob.recv();
    assert_eq!(
        delivered,
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": null})
    );
    assert!(
        delivered.as_object().unwrap().contains_key("data"),
        "{delivered}"
    );
}

#[test]
fn message_to_a_uuid_is_delivered_and_the_uuid_matches_case_insensitively() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");

    let lower = bob.uuid.clone();
    let upper = bob.uuid.to_uppercase();
    let mixed: String = bob
        .uuid
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    for (seq, uuid) in [lower, upper, mixed].into_iter().enumerate() {
        let target = json!({"type": "UUID", "uuid": uuid});
        assert_sent(&ann.ask(message(target.clone(), json!(seq))), seq as u64);
        assert_eq!(
            bob.recv(),
            json!({"type": "MESSAGE", "origin": origin(&ann), "target": target, "data": seq})
        );
    }
}

#[test]
fn message_to_a_group_reaches_every_subscriber_the_sender_included_with_the_group_in_its_origin() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    assert_eq!(
        ann.ask(json!({"type": "GROUP_CREATE", "name": "g", "nickname": "Gee"}))["seq"],
        0
    );
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    let mut dave = Concierge::join(addr, "dave"); // not subscribed

    // Creating did not subscribe the owner; it subscribes like anyone else.
    assert_eq!(
        ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}))["code"],
        "SUBSCRIBED"
    );
    assert_eq!(
        bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}))["code"],
        "SUBSCRIBED"
    );
    assert_eq!(
        carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}))["code"],
        "SUBSCRIBED"
    );

    // From the owner: it gets its own copy first, then MESSAGE_SENT.
    ann.send(message(to_group("g"), json!({"n": 1})));
    let expected = json!({
        "type": "MESSAGE",
        "origin": with(origin(&ann), json!({"group": group("g", Some("Gee"), &ann, &[&ann, &bob, &carl])})),
        "target": {"type": "GROUP", "group": "g"},
        "data": {"n": 1},
    });
    assert_same(&ann.recv(), &expected);
    assert_sent(&ann.recv(), 2);
    assert_same(&bob.recv(), &expected);
    assert_same(&carl.recv(), &expected);

    // From a plain subscriber: the owner gets it, and so does the sender.
    bob.send(message(to_group("g"), json!({"n": 2})));
    let expected = json!({
        "type": "MESSAGE",
        "origin": with(origin(&bob), json!({"group": group("g", Some("Gee"), &ann, &[&ann, &bob, &carl])})),
        "target": {"type": "GROUP", "group": "g"},
        "data": {"n": 2},
    });
    assert_same(&bob.recv(), &expected);
    assert_sent(&bob.recv(), 1);
    assert_same(&ann.recv(), &expected);
    assert_same(&carl.recv(), &expected);

    assert_nothing_pending(&mut ann, 3);
    assert_nothing_pending(&mut bob, 2);
    assert_nothing_pending(&mut carl, 1);
    assert_nothing_pending(&mut dave, 0);
}

/// Large messages to a group go out from the router's spool (net/spool.rs):
/// every subscriber gets every one whole and in order, a small message
/// between them included.
#[test]
fn large_group_messages_reach_every_subscriber_whole_and_in_order() {
    use switchboard::net::spool::{MIN_BYTES, MIN_RECIPIENTS};
    let addr = start(config());
    let mut owner = Concierge::join(addr, "owner");
    owner.ask(json!({"type": "GROUP_CREATE", "name": "big"}));
    let mut readers: Vec<Concierge> = (0..MIN_RECIPIENTS + 2)
        .map(|i| {
            let mut reader = Concierge::join(addr, &format!("reader{i}"));
            let reply = reader.ask(json!({"type": "SELF_SUBSCRIBE", "name": "big"}));
            assert_eq!(reply["code"], "SUBSCRIBED");
            reader
        })
        .collect();
    // Distinct, and each but one large enough to be spooled.
    let data: Vec<String> = (0..12)
        .map(|i| match i {
            5 => "small".to_string(),
            _ => format!("{i:02}").repeat(MIN_BYTES / 2 + 500 * i),
        })
        .collect();
    for text in &data {
        owner.send(message(to_group("big"), json!(text)));
    }
    for (seq, _) in data.iter().enumerate() {
        assert_sent(&owner.recv(), 1 + seq as u64);
    }
    for reader in &mut readers {
        for text in &data {
            let got = reader.recv();
            assert_eq!(got["type"], "MESSAGE");
            assert!(got["data"] == json!(text), "{} lost its data", reader.name);
        }
        assert_nothing_pending(reader, 1);
    }
    // Where the host gives the router a spool (Linux with a memfd and
    // without huge shared pages: net/spool.rs), these went through it.
    if switchboard::net::spool::Spool::new().is_on() {
        assert_eq!(metric(addr, "switchboard_spooled_frames_total"), 11);
    }
}

#[test]
fn a_non_subscriber_may_send_to_a_group() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    assert_eq!(
        ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}))["code"],
        "SUBSCRIBED"
    );
    let mut bob = Concierge::join(addr, "bob");

    // The sender is not subscribed, so it is not a recipient.
    assert_sent(&bob.ask(message(to_group("g"), json!("knock"))), 0);
    assert_same(
        &ann.recv(),
        &json!({
            "type": "MESSAGE",
            "origin": with(origin(&bob), json!({"group": group("g", None, &ann, &[&ann])})),
            "target": to_group("g"),
            "data": "knock",
        }),
    );
    assert_nothing_pending(&mut bob, 1);
    assert_nothing_pending(&mut ann, 2);
}

#[test]
fn message_to_all_reaches_every_identified_client_the_sender_included() {
    let addr = start(config());
    let mut lurker = Client::connect(addr, "/ws/concierge"); // never identified (yet)
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");

    ann.send(message(json!({"type": "ALL"}), json!({"hi": "all"})));
    let expected = json!({"type": "MESSAGE", "origin": origin(&ann), "target": {"type": "ALL"}, "data": {"hi": "all"}});
    // The sender's own copy comes before its MESSAGE_SENT.
    assert_eq!(ann.recv(), expected);
    assert_sent(&ann.recv(), 0);
    assert_eq!(bob.recv(), expected);
    assert_eq!(carl.recv(), expected);
    assert_nothing_pending(&mut ann, 1);
    assert_nothing_pending(&mut bob, 0);
    assert_nothing_pending(&mut carl, 0);

    // The unidentified connection got nothing: its HELLO is the first payload.
    lurker.send_json(identify("lurker"));
    let hello = lurker.recv_json();
    assert_eq!(
        hello["type"], "HELLO",
        "the unidentified client got {hello}"
    );
}

#[test]
fn message_to_all_when_alone_is_still_sent() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    // The only recipient is the sender itself.
    assert_eq!(
        ann.ask(message(json!({"type": "ALL"}), json!(0))),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": {"type": "ALL"}, "data": 0})
    );
    assert_sent(&ann.recv(), 0);
    assert_nothing_pending(&mut ann, 1);
}

#[test]
fn message_to_an_unknown_name_is_no_such_name() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    assert_eq!(
        ann.ask(message(to_name("zed"), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_NAME", "name": "zed", "seq": 0})
    );
    assert_eq!(
        ann.ask(message(to_name("BOB"), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_NAME", "name": "BOB", "seq": 1})
    );
    assert_nothing_pending(&mut bob, 0);
}

#[test]
fn message_to_an_unknown_or_invalid_uuid_is_no_such_uuid() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let bob = Concierge::join(addr, "bob");
    // A well-formed uuid nobody has: bob's with the last digit changed.
    let mut unknown = bob.uuid.clone();
    let last = if unknown.ends_with('0') { '1' } else { '0' };
    unknown.pop();
    unknown.push(last);
    let not_a_uuid = "not-a-uuid";
    let too_long = format!("{}0", bob.uuid);
    let bad_hex = format!("{}g", &bob.uuid[..35]);
    for (seq, uuid) in [unknown.as_str(), not_a_uuid, "", &too_long, &bad_hex]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            ann.ask(message(json!({"type": "UUID", "uuid": uuid}), json!(1))),
            json!({"type": "STATUS", "code": "NO_SUCH_UUID", "uuid": uuid, "seq": seq}),
            "{uuid:?}"
        );
    }
}

#[test]
fn every_group_request_on_an_unknown_group_is_no_such_group() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let requests = [
        message(to_group("nope"), json!(1)),
        json!({"type": "SELF_SUBSCRIBE", "name": "nope"}),
        json!({"type": "SELF_UNSUBSCRIBE", "name": "nope"}),
        json!({"type": "GROUP_DELETE", "name": "nope"}),
        json!({"type": "GROUP_FETCH", "name": "nope"}),
    ];
    for (seq, request) in requests.into_iter().enumerate() {
        assert_eq!(
            ann.ask(request.clone()),
            json!({"type": "STATUS", "code": "NO_SUCH_GROUP", "group": "nope", "seq": seq}),
            "{request}"
        );
    }
    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!([])
    );
}

#[test]
fn server_only_payloads_from_a_client_are_unsuported() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let kinds = [
        "HELLO",
        "STATUS",
        "GROUP_FETCH_RESULT",
        "GROUP_FETCH_ALL_RESULT",
        "CLIENT_FETCH_ALL_RESULT",
        "SELF_FETCH_RESULT",
    ];
    for (seq, kind) in kinds.into_iter().enumerate() {
        assert_described_status(
            &ann.ask(json!({"type": kind})),
            "UNSUPORTED",
            Some(seq as u64),
        );
    }
    // A realistic HELLO, with all its fields, is refused the same way.
    let hello = json!({"type": "HELLO", "uuid": ann.uuid, "version": "0.1.0"});
    assert_described_status(&ann.ask(hello), "UNSUPORTED", Some(6));
    assert_nothing_pending(&mut ann, 7);
}

#[test]
fn malformed_payloads_after_identify_get_a_protocol_status_and_the_connection_keeps_working() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let texts = [
        r#"{"type":"SELF_SUBSCRIBE"}"#,
        r#"{"type":"SELF_SUBSCRIBE","name":5}"#,
        r#"{"type":"MESSAGE","target":{"type":"PLANET"}}"#,
        r#"{"type":"MESSAGE","target":{"type":"NAME"}}"#,
        r#"{"type":"MESSAGE","data":1}"#,
        r#"{"type":"GROUP_CREATE","name":""}"#,
        r#"{"type":"GROUP_CREATE","name":"a b"}"#,
        r#"{"type":"NOPE"}"#,
        r#"{"name":"x"}"#,
        r#"{"type":5}"#,
        "[]",
        "not json",
        "",
        r#"{"type":"SELF_FETCH""#,
    ];
    for (seq, text) in texts.into_iter().enumerate() {
        ann.client.send_text(text);
        let reply = ann.recv();
        assert_described_status(&reply, "PROTOCOL", Some(seq as u64));
    }
    let next = texts.len() as u64;
    assert_sent(&ann.ask(message(to_name("bob"), json!("ok"))), next);
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": "ok"})
    );
    assert_nothing_pending(&mut ann, next + 1);
}

#[test]
fn a_second_identify_is_a_protocol_error_and_changes_nothing() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    assert_described_status(&ann.ask(identify("ann")), "PROTOCOL", Some(0));
    assert_described_status(&ann.ask(identify("other")), "PROTOCOL", Some(1));
    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"})),
        json!({
            "type": "SELF_FETCH_RESULT",
            "name": "ann",
            "nickname": null,
            "uuid": ann.uuid,
            "tags": [],
            "subscriptions": [],
            "seq": 2,
        })
    );
    // "other" was not taken by the second IDENTIFY.
    let other = Concierge::join(addr, "other");
    assert!(is_v4_uuid(&other.uuid));
}

// ---------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------

#[test]
fn group_create_does_not_subscribe_the_creator_and_announces_the_group_to_everyone_else_without_seq(
) {
    let addr = start(config());
    let mut lurker = Client::connect(addr, "/ws/concierge"); // never identified (yet)
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");

    let created = ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let fields = group("g", None, &ann, &[]);
    assert_eq!(
        created,
        group_status("GROUP_CREATED", fields.clone(), Some(0))
    );
    assert!(created.get("nickname").is_none(), "{created}");

    let announced = group_status("GROUP_CREATED", fields, None);
    assert_eq!(bob.recv(), announced);
    assert_eq!(carl.recv(), announced);
    assert_nothing_pending(&mut ann, 1);

    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!([])
    );
    // The creator subscribes like anyone else, and is then listed.
    assert_eq!(
        ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        group_status("SUBSCRIBED", group("g", None, &ann, &[&ann]), Some(3))
    );
    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!(["g"])
    );
    assert_nothing_pending(&mut bob, 0);

    lurker.send_json(identify("lurker"));
    let hello = lurker.recv_json();
    assert_eq!(
        hello["type"], "HELLO",
        "the unidentified client got {hello}"
    );
}

#[test]
fn group_create_with_a_nickname_reports_it_everywhere() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");

    let fields = group("sim1", Some("The First Simulation"), &ann, &[]);
    assert_eq!(
        ann.ask(
            json!({"type": "GROUP_CREATE", "name": "sim1", "nickname": "The First Simulation"})
        ),
        group_status("GROUP_CREATED", fields.clone(), Some(0))
    );
    assert_eq!(
        bob.recv(),
        group_status("GROUP_CREATED", fields.clone(), None)
    );
    assert_eq!(
        bob.ask(json!({"type": "GROUP_FETCH", "name": "sim1"})),
        with(fields, json!({"type": "GROUP_FETCH_RESULT", "seq": 0}))
    );
}

#[test]
fn creating_an_existing_group_is_group_already_created_with_its_current_fields() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g", "nickname": "Gee"}));
    let mut bob = Concierge::join(addr, "bob");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));

    let fields = group("g", Some("Gee"), &ann, &[&bob]);
    assert_same(
        &bob.ask(json!({"type": "GROUP_CREATE", "name": "g", "nickname": "Other"})),
        &group_status("GROUP_ALREADY_CREATED", fields.clone(), Some(1)),
    );
    assert_same(
        &ann.ask(json!({"type": "GROUP_CREATE", "name": "g"})),
        &group_status("GROUP_ALREADY_CREATED", fields.clone(), Some(1)),
    );
    // Nothing changed and nobody was told anything.
    assert_nothing_pending(&mut ann, 2);
    assert_same(
        &bob.ask(json!({"type": "GROUP_FETCH", "name": "g"})),
        &with(fields, json!({"type": "GROUP_FETCH_RESULT", "seq": 2})),
    );
}

#[test]
fn subscribe_and_unsubscribe_answer_with_the_updated_group_and_show_in_self_fetch() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");

    assert_same(
        &bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        &group_status("SUBSCRIBED", group("g", None, &ann, &[&bob]), Some(0)),
    );
    assert_same(
        &carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        &group_status(
            "SUBSCRIBED",
            group("g", None, &ann, &[&bob, &carl]),
            Some(0),
        ),
    );
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!(["g"])
    );

    assert_same(
        &bob.ask(json!({"type": "SELF_UNSUBSCRIBE", "name": "g"})),
        &group_status("UNSUBSCRIBED", group("g", None, &ann, &[&carl]), Some(2)),
    );
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!([])
    );
    assert_same(
        &ann.ask(json!({"type": "GROUP_FETCH", "name": "g"})),
        &with(
            group("g", None, &ann, &[&carl]),
            json!({"type": "GROUP_FETCH_RESULT", "seq": 1}),
        ),
    );
    // Others are not told about subscriptions.
    assert_nothing_pending(&mut ann, 2);
    assert_nothing_pending(&mut carl, 1);
}

#[test]
fn subscribing_twice_lists_the_subscriber_once() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    let expected = group("g", None, &ann, &[&bob]);
    assert_same(
        &bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        &group_status("SUBSCRIBED", expected.clone(), Some(0)),
    );
    assert_same(
        &bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        &group_status("SUBSCRIBED", expected, Some(1)),
    );
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!(["g"])
    );
    // And bob gets each group message once.
    assert_sent(&ann.ask(message(to_group("g"), json!(1))), 1);
    assert_eq!(bob.recv()["data"], 1);
    assert_nothing_pending(&mut bob, 3);
}

#[test]
fn an_unsubscribed_client_no_longer_receives_group_messages() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
    carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));

    assert_sent(&ann.ask(message(to_group("g"), json!("first"))), 1);
    assert_eq!(bob.recv()["data"], "first");
    assert_eq!(carl.recv()["data"], "first");

    assert_eq!(
        bob.ask(json!({"type": "SELF_UNSUBSCRIBE", "name": "g"}))["code"],
        "UNSUBSCRIBED"
    );
    assert_sent(&ann.ask(message(to_group("g"), json!("second"))), 2);
    assert_eq!(carl.recv()["data"], "second");
    assert_nothing_pending(&mut bob, 2);
}

#[test]
fn the_owner_may_unsubscribe_from_its_own_group_and_still_delete_it() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
    assert_same(
        &ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"})),
        &group_status("SUBSCRIBED", group("g", None, &ann, &[&ann, &bob]), Some(1)),
    );

    assert_same(
        &ann.ask(json!({"type": "SELF_UNSUBSCRIBE", "name": "g"})),
        &group_status("UNSUBSCRIBED", group("g", None, &ann, &[&bob]), Some(2)),
    );
    // Not subscribed any more, so the owner only hears of the deletion.
    assert_eq!(
        ann.ask(json!({"type": "GROUP_DELETE", "name": "g"})),
        group_status("GROUP_DELETED", group("g", None, &ann, &[&bob]), Some(3))
    );
    assert_eq!(
        bob.recv(),
        group_status("UNSUBSCRIBED", group("g", None, &ann, &[&bob]), None)
    );
    assert_eq!(
        bob.recv(),
        group_status("GROUP_DELETED", group("g", None, &ann, &[&bob]), None)
    );
    assert_nothing_pending(&mut ann, 4);
}

#[test]
fn group_delete_by_a_non_owner_is_bad_and_the_group_survives() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));

    assert_described_status(
        &bob.ask(json!({"type": "GROUP_DELETE", "name": "g"})),
        "BAD",
        Some(1),
    );
    assert_same(
        &bob.ask(json!({"type": "GROUP_FETCH", "name": "g"})),
        &with(
            group("g", None, &ann, &[&bob]),
            json!({"type": "GROUP_FETCH_RESULT", "seq": 2}),
        ),
    );
    assert_nothing_pending(&mut ann, 1);
}

#[test]
fn group_delete_by_the_owner_unsubscribes_subscribers_and_tells_everyone() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g", "nickname": "Gee"}));
    ann.ask(json!({"type": "GROUP_CREATE", "name": "keep"}));
    // Creating did not subscribe the owner; it subscribes to both itself.
    for name in ["g", "keep"] {
        assert_eq!(
            ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": name}))["code"],
            "SUBSCRIBED"
        );
    }
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    let mut dave = Concierge::join(addr, "dave"); // not subscribed
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
    carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));

    ann.send(json!({"type": "GROUP_DELETE", "name": "g"}));
    let fields = group("g", Some("Gee"), &ann, &[&ann, &bob, &carl]);

    // The owner was subscribed: UNSUBSCRIBED then GROUP_DELETED, both with seq.
    assert_same(
        &ann.recv(),
        &group_status("UNSUBSCRIBED", fields.clone(), Some(4)),
    );
    assert_same(
        &ann.recv(),
        &group_status("GROUP_DELETED", fields.clone(), Some(4)),
    );
    // Other subscribers: the same without seq.
    for subscriber in [&mut bob, &mut carl] {
        assert_same(
            &subscriber.recv(),
            &group_status("UNSUBSCRIBED", fields.clone(), None),
        );
        assert_same(
            &subscriber.recv(),
            &group_status("GROUP_DELETED", fields.clone(), None),
        );
    }
    // Everyone else only hears of the deletion.
    assert_same(&dave.recv(), &group_status("GROUP_DELETED", fields, None));

    assert_nothing_pending(&mut ann, 5);
    assert_nothing_pending(&mut dave, 0);
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!([])
    );
    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!(["keep"])
    );
    assert_eq!(
        carl.ask(json!({"type": "GROUP_FETCH_ALL"})),
        json!({
            "type": "GROUP_FETCH_ALL_RESULT",
            "groups": [group("keep", None, &ann, &[&ann])],
            "seq": 1,
        })
    );
    assert_eq!(
        carl.ask(json!({"type": "GROUP_FETCH", "name": "g"})),
        json!({"type": "STATUS", "code": "NO_SUCH_GROUP", "group": "g", "seq": 2})
    );
    assert_eq!(
        carl.ask(message(to_group("g"), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_GROUP", "group": "g", "seq": 3})
    );
}

#[test]
fn a_deleted_group_name_can_be_created_again_by_anyone() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    // Nobody subscribed, so the owner only hears of the deletion.
    assert_eq!(
        ann.ask(json!({"type": "GROUP_DELETE", "name": "g"})),
        group_status("GROUP_DELETED", group("g", None, &ann, &[]), Some(1))
    );
    assert_eq!(
        bob.recv(),
        group_status("GROUP_DELETED", group("g", None, &ann, &[]), None)
    );

    assert_eq!(
        bob.ask(json!({"type": "GROUP_CREATE", "name": "g"})),
        group_status("GROUP_CREATED", group("g", None, &bob, &[]), Some(0))
    );
    assert_eq!(
        ann.recv(),
        group_status("GROUP_CREATED", group("g", None, &bob, &[]), None)
    );
}

// ---------------------------------------------------------------------------
// Leaving
// ---------------------------------------------------------------------------

/// Sets up ann owning groups `g1` (subscribed to by ann herself, bob and
/// carl) and `g2` (no subscribers), and dave who subscribes to nothing.
fn owner_with_two_groups(addr: SocketAddr) -> [Concierge; 4] {
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g1", "nickname": "One"}));
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g2"}));
    // Creating did not subscribe ann; she subscribes to g1 explicitly.
    assert_eq!(
        ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g1"}))["code"],
        "SUBSCRIBED"
    );
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    let dave = Concierge::join(addr, "dave");
    assert_eq!(
        bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g1"}))["code"],
        "SUBSCRIBED"
    );
    assert_eq!(
        carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g1"}))["code"],
        "SUBSCRIBED"
    );
    [ann, bob, carl, dave]
}

/// Checks what the others hear after the owner from `owner_with_two_groups`
/// left, then that the groups are gone and the name is free.
fn assert_owner_left(
    addr: SocketAddr,
    ann_uuid: &str,
    mut bob: Concierge,
    mut carl: Concierge,
    mut dave: Concierge,
) {
    let no_seq = |payload: &Value| {
        assert!(
            payload.get("seq").is_none(),
            "unsolicited payload has a seq: {payload}"
        );
    };

    let remaining = [json!(bob.uuid), json!(carl.uuid)];
    // Subscribers of g1: UNSUBSCRIBED for g1 before its GROUP_DELETED, and
    // GROUP_DELETED for g2; nothing with a seq.
    for subscriber in [&mut bob, &mut carl] {
        let payloads: Vec<Value> = (0..3).map(|_| subscriber.recv()).collect();
        for payload in &payloads {
            no_seq(payload);
            assert_eq!(payload["type"], "STATUS", "{payload}");
            assert_eq!(payload["owner_uuid"], ann_uuid, "{payload}");
        }
        let position = |code: &str, name: &str| {
            payloads
                .iter()
                .position(|p| p["code"] == code && p["name"] == name)
                .unwrap_or_else(|| panic!("no {code} for {name} in {payloads:?}"))
        };
        assert!(
            position("UNSUBSCRIBED", "g1") < position("GROUP_DELETED", "g1"),
            "{payloads:?}"
        );
        position("GROUP_DELETED", "g2");
        let unsubscribed = &payloads[position("UNSUBSCRIBED", "g1")];
        assert_eq!(unsubscribed["nickname"], "One");
        // The group is described as it was: its owner among the subscribers.
        let mut listed: Vec<Value> = unsubscribed["subscribers"].as_array().unwrap().clone();
        listed.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        let mut expected: Vec<Value> = remaining.to_vec();
        expected.push(json!(ann_uuid));
        expected.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        assert_eq!(listed, expected, "{unsubscribed}");
    }
    // A non-subscriber: only the two GROUP_DELETED.
    let mut deleted: Vec<Value> = (0..2).map(|_| dave.recv()).collect();
    deleted.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    for (payload, name) in deleted.iter().zip(["g1", "g2"]) {
        no_seq(payload);
        assert_eq!(payload["code"], "GROUP_DELETED", "{payload}");
        assert_eq!(payload["name"], name, "{payload}");
        assert_eq!(payload["owner_uuid"], ann_uuid, "{payload}");
    }
    assert_nothing_pending(&mut dave, 0);

    assert_eq!(
        bob.ask(json!({"type": "GROUP_FETCH_ALL"})),
        json!({"type": "GROUP_FETCH_ALL_RESULT", "groups": [], "seq": 1})
    );
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!([])
    );
    assert_eq!(client_names(&mut carl), ["bob", "carl", "dave"]);
    assert_eq!(
        carl.ask(message(to_name("ann"), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_NAME", "name": "ann", "seq": 2})
    );
    assert_eq!(
        carl.ask(message(json!({"type": "UUID", "uuid": ann_uuid}), json!(1))),
        json!({"type": "STATUS", "code": "NO_SUCH_UUID", "uuid": ann_uuid, "seq": 3})
    );

    // The name is free again, with a new uuid.
    let mut new_ann = Concierge::join(addr, "ann");
    assert_ne!(new_ann.uuid, ann_uuid);
    assert_sent(&bob.ask(message(to_name("ann"), json!("welcome back"))), 3);
    assert_eq!(
        new_ann.recv(),
        json!({"type": "MESSAGE", "origin": origin(&bob), "target": to_name("ann"), "data": "welcome back"})
    );
}

#[test]
fn an_owner_closing_deletes_its_groups_and_frees_its_name() {
    let addr = start(config());
    let [ann, bob, carl, dave] = owner_with_two_groups(addr);
    let ann_uuid = ann.uuid.clone();
    ann.client.close();
    assert_owner_left(addr, &ann_uuid, bob, carl, dave);
}

#[test]
fn an_owner_vanishing_deletes_its_groups_and_frees_its_name() {
    let addr = start(config());
    let [ann, bob, carl, dave] = owner_with_two_groups(addr);
    let ann_uuid = ann.uuid.clone();
    ann.client.vanish();
    assert_owner_left(addr, &ann_uuid, bob, carl, dave);
}

#[test]
fn a_departing_subscriber_is_removed_from_the_group_and_the_group_stays() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "g"}));
    let mut bob = Concierge::join(addr, "bob");
    let mut carl = Concierge::join(addr, "carl");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));
    carl.ask(json!({"type": "SELF_SUBSCRIBE", "name": "g"}));

    bob.client.vanish();
    let mut seq = 1;
    wait_until("bob to leave g", || {
        let result = ann.ask(json!({"type": "GROUP_FETCH", "name": "g"}));
        assert_eq!(result["seq"], seq, "{result}");
        seq += 1;
        result["subscribers"].as_array().unwrap().len() == 1
    });
    assert_same(
        &ann.ask(json!({"type": "GROUP_FETCH", "name": "g"})),
        &with(
            group("g", None, &ann, &[&carl]),
            json!({"type": "GROUP_FETCH_RESULT", "seq": seq}),
        ),
    );
    assert_sent(
        &ann.ask(message(to_group("g"), json!("still here"))),
        seq + 1,
    );
    assert_eq!(carl.recv()["data"], "still here");
    // Nobody was told about bob leaving.
    assert_nothing_pending(&mut carl, 1);
}

#[test]
fn a_vanished_client_leaves_the_others_served_and_disappears_from_the_client_list() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let carl = Concierge::join(addr, "carl");
    let carl_uuid = carl.uuid.clone();
    assert_eq!(client_names(&mut ann), ["ann", "bob", "carl"]);

    carl.client.vanish();
    wait_until("carl to disappear from CLIENT_FETCH_ALL", || {
        !client_names(&mut ann).contains(&"carl".to_string())
    });
    assert_eq!(client_names(&mut bob), ["ann", "bob"]);

    ann.send(message(to_name("bob"), json!("still there?")));
    assert_eq!(ann.recv()["code"], "MESSAGE_SENT");
    assert_eq!(
        bob.recv(),
        json!({"type": "MESSAGE", "origin": origin(&ann), "target": to_name("bob"), "data": "still there?"})
    );
    bob.send(message(to_name("ann"), json!("yes")));
    assert_eq!(bob.recv()["code"], "MESSAGE_SENT");
    assert_eq!(ann.recv()["data"], "yes");

    ann.send(message(
        json!({"type": "UUID", "uuid": carl_uuid}),
        json!(1),
    ));
    let reply = ann.recv();
    assert_eq!(reply["code"], "NO_SUCH_UUID", "{reply}");
    assert_eq!(reply["uuid"], carl_uuid);

    let new_carl = Concierge::join(addr, "carl");
    assert_ne!(new_carl.uuid, carl_uuid);
}

// ---------------------------------------------------------------------------
// Fetching
// ---------------------------------------------------------------------------

#[test]
fn group_fetch_returns_the_group_with_seq() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "plain"}));
    ann.ask(json!({"type": "GROUP_CREATE", "name": "named", "nickname": "The Named One"}));
    let mut bob = Concierge::join(addr, "bob");
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "named"}));

    let plain = bob.ask(json!({"type": "GROUP_FETCH", "name": "plain"}));
    assert_eq!(
        plain,
        json!({"type": "GROUP_FETCH_RESULT", "name": "plain", "owner_uuid": ann.uuid, "subscribers": [], "seq": 1})
    );
    assert!(plain.get("nickname").is_none(), "{plain}");
    assert_same(
        &bob.ask(json!({"type": "GROUP_FETCH", "name": "named"})),
        &json!({
            "type": "GROUP_FETCH_RESULT",
            "name": "named",
            "nickname": "The Named One",
            "owner_uuid": ann.uuid,
            "subscribers": [bob.uuid],
            "seq": 2,
        }),
    );
}

#[test]
fn group_fetch_all_lists_every_group_sorted_by_name() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    assert_eq!(
        bob.ask(json!({"type": "GROUP_FETCH_ALL"})),
        json!({"type": "GROUP_FETCH_ALL_RESULT", "groups": [], "seq": 0})
    );
    ann.ask(json!({"type": "GROUP_CREATE", "name": "zeta"}));
    assert_eq!(bob.recv()["code"], "GROUP_CREATED");
    bob.ask(json!({"type": "GROUP_CREATE", "name": "alpha", "nickname": "First"}));
    assert_eq!(ann.recv()["code"], "GROUP_CREATED");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "mid"}));
    assert_eq!(bob.recv()["code"], "GROUP_CREATED");
    ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": "alpha"}));

    let expected = json!({
        "type": "GROUP_FETCH_ALL_RESULT",
        "groups": [
            group("alpha", Some("First"), &bob, &[&ann]),
            group("mid", None, &ann, &[]),
            group("zeta", None, &ann, &[]),
        ],
        "seq": 2,
    });
    assert_same(&bob.ask(json!({"type": "GROUP_FETCH_ALL"})), &expected);
    assert_same(
        &ann.ask(json!({"type": "GROUP_FETCH_ALL"})),
        &with(expected, json!({"seq": 3})),
    );
}

#[test]
fn client_fetch_all_lists_every_identified_client_sorted_by_name_including_the_asker() {
    let addr = start(config());
    let mut carl = Concierge::join_with(addr, "carl", json!({"tags": ["sim"]}));
    let ann = Concierge::join_with(
        addr,
        "ann",
        json!({"nickname": "Anthony", "tags": ["babylon"]}),
    );
    let bob = Concierge::join(addr, "bob");
    let _lurker = Client::connect(addr, "/ws/concierge"); // not identified: not listed

    assert_eq!(
        carl.ask(json!({"type": "CLIENT_FETCH_ALL"})),
        json!({
            "type": "CLIENT_FETCH_ALL_RESULT",
            "clients": [
                {"name": "ann", "nickname": "Anthony", "uuid": ann.uuid, "tags": ["babylon"]},
                {"name": "bob", "uuid": bob.uuid, "tags": []},
                {"name": "carl", "uuid": carl.uuid, "tags": ["sim"]},
            ],
            "seq": 0,
        })
    );
}

#[test]
fn self_fetch_reports_identity_and_subscriptions_sorted_by_name() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    for name in ["zeta", "alpha", "mid"] {
        ann.ask(json!({"type": "GROUP_CREATE", "name": name}));
        // Creating does not subscribe; ann subscribes explicitly.
        ann.ask(json!({"type": "SELF_SUBSCRIBE", "name": name}));
    }
    let mut bob = Concierge::join_with(addr, "bob", json!({"tags": ["babylon"]}));
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"})),
        json!({
            "type": "SELF_FETCH_RESULT",
            "name": "bob",
            "nickname": null,
            "uuid": bob.uuid,
            "tags": ["babylon"],
            "subscriptions": [],
            "seq": 0,
        })
    );
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "zeta"}));
    bob.ask(json!({"type": "SELF_SUBSCRIBE", "name": "alpha"}));
    assert_eq!(
        bob.ask(json!({"type": "SELF_FETCH"})),
        json!({
            "type": "SELF_FETCH_RESULT",
            "name": "bob",
            "nickname": null,
            "uuid": bob.uuid,
            "tags": ["babylon"],
            "subscriptions": ["alpha", "zeta"],
            "seq": 3,
        })
    );
    assert_eq!(
        ann.ask(json!({"type": "SELF_FETCH"}))["subscriptions"],
        json!(["alpha", "mid", "zeta"])
    );
}

// ---------------------------------------------------------------------------
// Fan-out
// ---------------------------------------------------------------------------

#[test]
fn five_subscribers_each_receive_all_fifty_group_messages_in_order() {
    let addr = start(config());
    let mut ann = Concierge::join(addr, "ann");
    ann.ask(json!({"type": "GROUP_CREATE", "name": "feed"}));
    let mut subscribers: Vec<Concierge> = (0..5)
        .map(|i| {
            let mut client = Concierge::join(addr, &format!("sub{i}"));
            assert_eq!(
                client.ask(json!({"type": "SELF_SUBSCRIBE", "name": "feed"}))["code"],
                "SUBSCRIBED"
            );
            client
        })
        .collect();
    let mut outsider = Concierge::join(addr, "outsider");

    for i in 0..50 {
        ann.send(message(to_group("feed"), json!({"i": i})));
    }
    for i in 0..50u64 {
        assert_sent(&ann.recv(), i + 1);
    }
    for subscriber in &mut subscribers {
        for i in 0..50 {
            let delivered = subscriber.recv();
            assert_eq!(delivered["type"], "MESSAGE", "{delivered}");
            assert_eq!(
                delivered["data"],
                json!({"i": i}),
                "{} got {delivered}",
                subscriber.name
            );
            assert_eq!(delivered["origin"]["uuid"], ann.uuid.as_str());
            assert!(delivered.get("seq").is_none(), "{delivered}");
        }
        assert_nothing_pending(subscriber, 1);
    }
    assert_nothing_pending(&mut outsider, 0);
}

#[test]
fn messages_from_several_senders_to_one_client_keep_each_senders_order() {
    let addr = start(config());
    let mut sink = Concierge::join(addr, "sink");
    let mut senders: Vec<Concierge> = (0..4)
        .map(|i| Concierge::join(addr, &format!("src{i}")))
        .collect();
    for round in 0..25 {
        for sender in &mut senders {
            sender.send(message(to_name("sink"), json!(round)));
        }
    }
    for sender in &mut senders {
        for seq in 0..25u64 {
            assert_sent(&sender.recv(), seq);
        }
    }
    let mut next = vec![0; senders.len()];
    for _ in 0..100 {
        let delivered = sink.recv();
        let name = delivered["origin"]["name"].as_str().unwrap();
        let index: usize = name.strip_prefix("src").unwrap().parse().unwrap();
        assert_eq!(delivered["data"], next[index], "{delivered}");
        next[index] += 1;
    }
    assert_eq!(next, [25; 4]);
    assert_nothing_pending(&mut sink, 0);
}
