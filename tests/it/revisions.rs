//! Blazing revisions over real sockets (docs/revisions.md, "Blazing revisions"; the
//! transformation is in src/router/documents/transform.rs): `sync` and every
//! `write` carry `rev`; writes made on the same revision by several clients
//! at once all land where their writers meant; a write without `rev` applies
//! as the document says; a `rev` the server cannot place gets a `sync`; the
//! same through two nodes and Redis.

use std::io::{Read, Write};
use std::net::SocketAddr;

use crate::support::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use switchboard::{jwt, Config};
use tungstenite::Message;

const KEY: &str = "revision key";
const BASE: &str = "first line\nsecond line\nthird line";

fn config_in(name: &str) -> Config {
    let dir = std::env::temp_dir().join(format!("switchboard-rev-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Config {
        jwt_key: Some(KEY.into()),
        data_dir: dir,
        ..config()
    }
}

/// `user` joins `computer` on `addr`; returns the client and its sync.
fn join(addr: SocketAddr, user: &str, computer: &str) -> (Client, Value) {
    let claims = json!({"sub": user, "exp": jwt::now() + 600});
    let token = jwt::sign(&claims, KEY.as_bytes());
    let mut client = Client::connect(
        addr,
        &format!("/ws/blazing?token={token}&computer={computer}"),
    );
    let sync = recv(&mut client);
    assert_eq!(sync["type"], "sync", "{sync}");
    (client, sync)
}

fn send(client: &mut Client, value: Value) {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(value.to_string().as_bytes()).unwrap();
    client
        .ws
        .send(Message::binary(encoder.finish().unwrap()))
        .unwrap();
}

fn recv(client: &mut Client) -> Value {
    match client.recv() {
        Message::Binary(bytes) => {
            let mut json = Vec::new();
            GzDecoder::new(&bytes[..]).read_to_end(&mut json).unwrap();
            serde_json::from_slice(&json).unwrap()
        }
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// The next message of `kind`, skipping the others (`usrupd`, `move`).
fn next(client: &mut Client, kind: &str) -> Value {
    loop {
        let message = recv(client);
        if message["type"] == kind {
            return message["payload"].clone();
        }
    }
}

/// The document's text in a sync payload.
fn document(payload: &Value) -> String {
    sync_document(payload)
}

/// `text` with a broadcast write applied as the document says.
fn apply(text: &str, write: &Value) -> String {
    let chars: Vec<char> = text.chars().collect();
    let offset = write["offset"].as_i64().unwrap();
    let selection = write["selection"].as_i64().unwrap();
    let (a, b) = (offset, offset + selection);
    let (start, end) = (a.min(b) as usize, a.max(b) as usize);
    let mut out: String = chars[..start].iter().collect();
    out.push_str(write["text"].as_str().unwrap());
    out.extend(&chars[end..]);
    out
}

/// Fills `computer` with [`BASE`] and returns its revision then.
fn seed(addr: SocketAddr, computer: &str) -> u64 {
    let (mut seeder, _) = join(addr, "seeder", computer);
    send(
        &mut seeder,
        json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": BASE}}),
    );
    let written = next(&mut seeder, "write");
    assert_eq!(written["rev"], 1, "{written}");
    1
}

/// Three writers, each at the end of its own line, each on the revision
/// its own sync gave (on one node, the same one): every fragment lands at
/// the end of its line, on every copy.
fn three_writers_converge(addrs: [SocketAddr; 3], computer: &str) {
    let mut clients: Vec<(Client, String, u64)> = ["ann", "bob", "cid"]
        .iter()
        .zip(addrs)
        .map(|(user, addr)| {
            let (client, sync) = join(addr, user, computer);
            let rev = sync["payload"]["rev"].as_u64().expect("a rev");
            (client, document(&sync["payload"]), rev)
        })
        .collect();
    assert!(clients.iter().all(|(_, text, _)| text == BASE));
    let ends = [10, 22, 33];
    let fragments = ["<ann-é-1>", "<bob-λ-1>", "<cid-𝐀🦀-1>"];
    for ((client, _, rev), (end, fragment)) in clients.iter_mut().zip(ends.iter().zip(fragments)) {
        let write = json!({"offset": end, "selection": 0, "text": fragment, "rev": rev});
        send(client, json!({"type": "write", "payload": write}));
    }
    let expected = "first line<ann-é-1>\nsecond line<bob-λ-1>\nthird line<cid-𝐀🦀-1>";
    for (client, text, rev) in &mut clients {
        let mut revs = Vec::new();
        for _ in 0..3 {
            let write = next(client, "write");
            revs.push(write["rev"].as_u64().unwrap());
            *text = apply(text, &write);
        }
        assert_eq!(revs, [*rev + 1, *rev + 2, *rev + 3]);
        assert_eq!(text, expected);
    }
    let (late, sync) = join(addrs[0], "dan", computer);
    assert_eq!(document(&sync["payload"]), expected);
    assert_eq!(sync["payload"]["rev"], clients[0].2 + 3);
    late.close();
}

#[test]
fn writers_on_one_revision_all_land_where_they_meant() {
    let addr = start(config_in("three"));
    assert_eq!(seed(addr, "pc-three"), 1);
    three_writers_converge([addr; 3], "pc-three");
}

#[test]
fn a_write_without_rev_applies_as_the_document_says() {
    let addr = start(config_in("literal"));
    seed(addr, "pc-literal");
    let (mut ann, sync) = join(addr, "ann", "pc-literal");
    assert_eq!(sync["payload"]["rev"], 1);
    let (mut bob, _) = join(addr, "bob", "pc-literal");
    // Bob's write lands first; Ann's, without rev, at its literal offset.
    send(
        &mut bob,
        json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": ">> "}}),
    );
    assert_eq!(next(&mut ann, "write")["rev"], 2);
    send(
        &mut ann,
        json!({"type": "write", "payload": {"offset": 5, "selection": 0, "text": "!"}}),
    );
    let written = next(&mut ann, "write");
    assert_eq!(
        (written["offset"].as_u64(), written["rev"].as_u64()),
        (Some(5), Some(3))
    );
    send(&mut ann, json!({"type": "sync", "payload": {}}));
    assert_eq!(
        document(&next(&mut ann, "sync")),
        format!(">> fi!rst line{}", &BASE[10..])
    );
}

#[test]
fn a_rev_the_server_cannot_place_gets_a_sync_and_changes_nothing() {
    let addr = start(config_in("stale"));
    seed(addr, "pc-stale");
    let (mut ann, _) = join(addr, "ann", "pc-stale");
    send(
        &mut ann,
        json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "X", "rev": 99}}),
    );
    let sync = next(&mut ann, "sync");
    assert_eq!(
        (document(&sync), sync["rev"].as_u64()),
        (BASE.to_string(), Some(1))
    );
    send(
        &mut ann,
        json!({"type": "move", "payload": {"offset": 3, "selection": 0, "rev": 42}}),
    );
    assert_eq!(next(&mut ann, "sync")["rev"], 1);
    // A move on an old revision lands where the text went.
    let (mut bob, _) = join(addr, "bob", "pc-stale");
    send(
        &mut bob,
        json!({"type": "write", "payload": {"offset": 0, "selection": 0, "text": "abc", "rev": 1}}),
    );
    assert_eq!(next(&mut ann, "write")["rev"], 2);
    send(
        &mut ann,
        json!({"type": "move", "payload": {"offset": 5, "selection": 0, "rev": 1}}),
    );
    let moved = next(&mut ann, "move");
    assert_eq!(moved["offset"], 8, "{moved}");
}

#[cfg(feature = "redis")]
#[test]
fn writers_on_two_nodes_converge_through_the_stream() {
    let redis = crate::support::redis::Redis::start();
    let node = |name: &str| {
        start(Config {
            redis: Some(redis.url()),
            ..config_in(&format!("{name}-{}", redis.port))
        })
    };
    let (a, b) = (node("a"), node("b"));
    seed(a, "pc-nodes");
    // Node b has the seed once its copy says so. (Revisions are each
    // node's own count; the stream's order is what the nodes share.)
    wait_until("node b to hold the seeded text", || {
        let (probe, sync) = join(b, "probe", "pc-nodes");
        probe.close();
        document(&sync["payload"]) == BASE
    });
    three_writers_converge([a, b, b], "pc-nodes");
}
