//! The soak's clients: one short session per dialect, each a client (or
//! two) that connects, does what a user of that protocol does and leaves,
//! so that clients come and go all the time; and residents, who stay for
//! the whole run, answer the server's pings and heartbeats, and hear what
//! the sessions publish. Every answer is checked: anything unexpected is an
//! error, which fails the soak.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use super::probe::http;

/// How long a session waits for any one answer.
const PATIENCE: Duration = Duration::from_secs(20);
/// How often a resident looks up from its reading to see if the soak ended.
const RESIDENT_TICK: Duration = Duration::from_millis(500);
/// The secret the concierge and common sessions prove (the server's
/// `--secret`): on a protected hub only they are trusted services.
pub const SECRET: &str = "soak";

/// The channel (and implicit concierge group) the residents listen on.
pub const LOBBY: &str = "soak_lobby";
/// The most unrelated messages a session skips while waiting for one.
const MAX_SKIPPED: usize = 10_000;

/// The five dialects, in the order the soak reports them.
#[derive(Debug, Clone, Copy)]
pub enum Dialect {
    Concierge,
    Channels,
    Common,
    World,
    Blazing,
}

impl Dialect {
    /// All of them.
    pub const ALL: [Dialect; 5] = [
        Dialect::Concierge,
        Dialect::Channels,
        Dialect::Common,
        Dialect::World,
        Dialect::Blazing,
    ];
}

/// What the clients did, shared by all of them.
#[derive(Default)]
pub struct Tally {
    /// Sessions completed, by dialect (in [`Dialect::ALL`]'s order).
    pub sessions: [AtomicU64; 5],
    /// Messages that reached a resident.
    pub heard: AtomicU64,
    /// Errors: how many, and the first few.
    pub errors: AtomicU64,
    pub first_errors: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts an error, keeping the first ten to print.
    pub fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap();
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// What the sessions need to know.
pub struct Target {
    pub addr: SocketAddr,
    /// The server's `--jwt-key`, to sign world and blazing tokens.
    pub jwt_key: String,
}

/// Runs session after session of `dialect` as worker `worker`, with
/// `pause` between them, until `stop`.
pub fn work(
    target: &Target,
    dialect: Dialect,
    worker: usize,
    pause: Duration,
    stop: &AtomicBool,
    tally: &Tally,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let result = match dialect {
            Dialect::Concierge => concierge(target, worker, n),
            Dialect::Channels => channels(target, worker, n),
            Dialect::Common => common(target, n),
            Dialect::World => world(target, worker, n),
            Dialect::Blazing => blazing(target, worker),
        };
        match result {
            Ok(()) => {
                tally.sessions[dialect as usize].fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.error(format!("{dialect:?} worker {worker}, session {n}: {e}")),
        }
        n += 1;
        std::thread::sleep(pause); // think time: a soak, not a benchmark
    }
}

// ---------------------------------------------------------------------------
// A WebSocket client
// ---------------------------------------------------------------------------

/// A blocking WebSocket client whose messages are JSON: text as is, binary
/// gzipped (blazing).
struct Ws(WebSocket<TcpStream>);

impl Ws {
    fn connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Result<Ws, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_read_timeout(Some(PATIENCE));
        let _ = stream.set_write_timeout(Some(PATIENCE));
        // Without it, a message sent right after one that gets no answer
        // waits for the server's delayed ACK (Nagle's algorithm): 40 ms.
        let _ = stream.set_nodelay(true);
        let mut request = format!("ws://{addr}{path}")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        for (name, value) in headers {
            let value = value.parse().map_err(|_| format!("header {name}"))?;
            request.headers_mut().insert(*name, value);
        }
        let (ws, _) = tungstenite::client::client(request, stream)
            .map_err(|e| format!("handshake for {path}: {e}"))?;
        Ok(Ws(ws))
    }

    fn send(&mut self, value: Value) -> Result<(), String> {
        self.0
            .send(Message::text(value.to_string()))
            .map_err(|e| format!("send: {e}"))
    }

    fn send_gzipped(&mut self, value: Value) -> Result<(), String> {
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(value.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
        let bytes = gzip.finish().map_err(|e| e.to_string())?;
        self.0
            .send(Message::binary(bytes))
            .map_err(|e| format!("send: {e}"))
    }

    /// The next message, or `None` if the read timeout passed first; a
    /// close or a failed read is an error.
    fn poll(&mut self) -> Result<Option<Value>, String> {
        loop {
            let bytes = match self.0.read() {
                Ok(Message::Text(text)) => text.as_bytes().to_vec(),
                Ok(Message::Binary(gzipped)) => {
                    let mut json = Vec::new();
                    GzDecoder::new(&gzipped[..])
                        .read_to_end(&mut json)
                        .map_err(|e| format!("gunzip: {e}"))?;
                    json
                }
                Ok(Message::Close(frame)) => {
                    return Err(format!("closed by the server: {frame:?}"))
                }
                Ok(_) => continue, // pings are answered by tungstenite
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(format!("read: {e}")),
            };
            return serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| format!("not JSON: {e}"));
        }
    }

    /// The next message; none within [`PATIENCE`] is an error.
    fn recv(&mut self) -> Result<Value, String> {
        self.poll()?
            .ok_or_else(|| format!("no answer within {PATIENCE:?}"))
    }

    /// Reads until a message satisfies `wanted` (others, such as what other
    /// clients' comings and goings cause, are skipped).
    fn recv_until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Result<Value, String> {
        for _ in 0..MAX_SKIPPED {
            let message = self
                .recv()
                .map_err(|e| format!("waiting for {what}: {e}"))?;
            if wanted(&message) {
                return Ok(message);
            }
        }
        Err(format!("no {what} in {MAX_SKIPPED} messages"))
    }

    /// Closes normally and waits (briefly) for the server's reply.
    fn close(mut self) {
        let _ = self
            .0
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(2)));
        let _ = self.0.close(None);
        while self.0.read().is_ok() {}
    }
}

fn is(value: &Value, kind: &str, code: &str) -> bool {
    value["type"] == kind && (code.is_empty() || value["code"] == code)
}

/// A day's token for `sub`, granting every channel to listen and emit to
/// (a protected hub, as a server with `--jwt-key` is, asks for one).
fn token(key: &str, sub: &str) -> String {
    let claims = json!({
        "sub": sub, "name": sub, "exp": switchboard::jwt::now() + 24 * 3600,
        "channels": ["*"], "publish": ["*"],
    });
    switchboard::jwt::sign(&claims, key.as_bytes())
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

fn identify(addr: SocketAddr, name: &str) -> Result<Ws, String> {
    let mut client = Ws::connect(addr, "/ws/concierge", &[])?;
    client.send(json!({"type": "IDENTIFY", "name": name, "version": "0.1.0", "secret": SECRET}))?;
    client.recv_until("HELLO", |m| is(m, "HELLO", ""))?;
    Ok(client)
}

/// Waits for the concierge STATUS that answers the client's last frame
/// (replies carry a `seq`; other clients' group news does not), which must
/// have `code`.
fn reply(client: &mut Ws, code: &str) -> Result<(), String> {
    let status = client.recv_until(code, |m| is(m, "STATUS", "") && m.get("seq").is_some())?;
    match status["code"] == code {
        true => Ok(()),
        false => Err(format!("expected {code}, got {status}")),
    }
}

/// Concierge: an owner creates a group, a partner subscribes, ten group
/// messages go one way and a direct message the other; both leave (and
/// the group with its owner).
fn concierge(target: &Target, worker: usize, n: u64) -> Result<(), String> {
    let (owner_name, group) = (format!("soak_c{worker}_{n}"), format!("soak_g{worker}_{n}"));
    let mut owner = identify(target.addr, &owner_name)?;
    owner.send(json!({"type": "GROUP_CREATE", "name": group}))?;
    reply(&mut owner, "GROUP_CREATED")?;
    let mut partner = identify(target.addr, &format!("soak_p{worker}_{n}"))?;
    partner.send(json!({"type": "SELF_SUBSCRIBE", "name": group}))?;
    reply(&mut partner, "SUBSCRIBED")?;
    for i in 0..10 {
        owner.send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": group}, "data": {"i": i}}))?;
        reply(&mut owner, "MESSAGE_SENT")?;
        let message = partner.recv_until("a group MESSAGE", |m| is(m, "MESSAGE", ""))?;
        if message["data"]["i"] != i {
            return Err(format!("group message {i} out of order: {message}"));
        }
    }
    partner.send(
        json!({"type": "MESSAGE", "target": {"type": "NAME", "name": owner_name}, "data": "back"}),
    )?;
    reply(&mut partner, "MESSAGE_SENT")?;
    owner.recv_until("the direct MESSAGE", |m| {
        is(m, "MESSAGE", "") && m["data"] == "back"
    })?;
    // The residents' group hears from every session too.
    owner.send(json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": LOBBY}, "data": {"from": "concierge"}}))?;
    reply(&mut owner, "MESSAGE_SENT")?;
    partner.close();
    owner.close();
    Ok(())
}

/// POSTs `body` to `/<channel>/emit` (with `query`), with a token that
/// may publish; the status and body.
fn emit(target: &Target, channel: &str, query: &str, body: &str) -> Result<(u16, String), String> {
    let token = token(&target.jwt_key, "soak-emitter");
    http(
        target.addr,
        &format!(
            "POST /{channel}/emit{query} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n\
             Authorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Channels: a listener on a channel of its own hears five emits, updates
/// its presence, and ACKs an emit that requires it; the emit to the
/// residents' channel reaches them.
fn channels(target: &Target, worker: usize, n: u64) -> Result<(), String> {
    let channel = format!("soak-ch{worker}-{n}");
    let mut listener = Ws::connect(
        target.addr,
        &format!(
            "/{channel}/listen?username=w{worker}&token={}",
            token(&target.jwt_key, "soak-listener")
        ),
        &[],
    )?;
    listener.recv_until("CONNECTED", |m| is(m, "CONNECTED", ""))?;
    for i in 0..5 {
        let (status, body) = emit(target, &channel, "", &json!({"i": i}).to_string())?;
        if status != 200 || !body.contains("\"targeted\":1") {
            return Err(format!("emit {i}: {status} {body}"));
        }
        let data = listener.recv_until("DATA", |m| is(m, "DATA", ""))?;
        if data["payload"]["i"] != i {
            return Err(format!("DATA {i} out of order: {data}"));
        }
    }
    listener.send(json!({"type": "PRESENCE:UPDATE", "payload": {"mood": "soaking"}}))?;
    let acked = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| emit(target, &channel, "?require-ack=true", "\"ack me\""));
        let data = listener.recv_until("DATA to ACK", |m| {
            is(m, "DATA", "") && m["requires_ack"] == true
        });
        let sent = data.and_then(|data| {
            listener.send(json!({"type": "ACK", "payload": {"eventID": data["eventID"]}}))
        });
        let answer = waiting
            .join()
            .map_err(|_| "the emit thread failed".to_string())?;
        sent.and(answer)
    })?;
    if acked.0 != 200 {
        return Err(format!("require-ack emit: {} {}", acked.0, acked.1));
    }
    let (status, body) = emit(target, LOBBY, "", &json!({"from": "channels"}).to_string())?;
    if status != 200 {
        return Err(format!("emit to {LOBBY}: {status} {body}"));
    }
    listener.close();
    Ok(())
}

/// Common: HELLO_ACK, a heartbeat, an inspection request, a publish to the
/// residents' topic with a response and one without.
fn common(target: &Target, n: u64) -> Result<(), String> {
    let mut client = Ws::connect(target.addr, "/ws/common", &[])?;
    client.recv_until("HELLO", |m| m["op"] == 0)?;
    client.send(json!({"op": 1, "password": SECRET}))?;
    client.send(json!({"op": 2}))?;
    client.recv_until("HEARTBEAT_ACK", |m| m["op"] == 3)?;
    client.send(json!({"op": 4, "w": "hub.info", "a": [], "n": n}))?;
    let info = client.recv_until("the hub.info RESPONSE", |m| m["op"] == 5 && m["n"] == n)?;
    if info["r"]["server"].is_null() {
        return Err(format!("hub.info: {info}"));
    }
    let data = json!({"from": "common", "n": n});
    client.send(json!({"op": 4, "w": "hub.publish", "a": [LOBBY, data], "n": "publish"}))?;
    let published = client.recv_until("the hub.publish RESPONSE", |m| {
        m["op"] == 5 && m["n"] == "publish"
    })?;
    if published["r"]["delivered"].as_u64().is_none() {
        return Err(format!("hub.publish: {published}"));
    }
    client.send(json!({"op": 6, "w": "hub.publish", "a": [LOBBY, data]}))?;
    client.close();
    Ok(())
}

/// World: authenticates with a token, enters a room of its own and the
/// lobby, sends to both, calls a hub method and pings.
fn world(target: &Target, worker: usize, n: u64) -> Result<(), String> {
    let mut client = Ws::connect(target.addr, "/ws/world/default", &[])?;
    let token = token(&target.jwt_key, &format!("soak-w{worker}"));
    client.send(json!(["authenticate", {"token": token}]))?;
    client.recv_until("authenticated", |m| m[0] == "authenticated")?;
    let room = format!("r{worker}");
    let success = |id: u64| move |m: &Value| m[0] == "success" && m[1] == id;
    client.send(json!(["room.enter", 1, {"room": room}]))?;
    client.recv_until("room.enter's success", success(1))?;
    client.send(json!(["room.send", 2, {"room": room, "content": {"n": n}}]))?;
    client.recv_until("room.send's success", success(2))?;
    client.send(json!(["room.enter", 3, {"room": "lobby"}]))?;
    client.recv_until("room.enter's success", success(3))?;
    client.send(json!(["room.send", 4, {"room": "lobby", "content": {"from": "world"}}]))?;
    client.recv_until("room.send's success", success(4))?;
    client.send(json!(["hub.topics", 5, {}]))?;
    client.recv_until("hub.topics' success", success(5))?;
    client.send(json!(["ping", n]))?;
    client.recv_until("pong", |m| m[0] == "pong" && m[1] == n)?;
    client.close();
    Ok(())
}

/// Blazing: joins its worker's document, writes three characters and
/// deletes them again (the document never grows), moves, asks for a sync.
fn blazing(target: &Target, worker: usize) -> Result<(), String> {
    let sub = format!("soak-b{worker}");
    let headers = [
        (
            "Authorization",
            format!("Bearer {}", token(&target.jwt_key, &sub)),
        ),
        ("Blazing-Computer-Id", format!("soak-pc-{worker}")),
    ];
    let mut client = Ws::connect(target.addr, "/ws/blazing", &headers)?;
    let mine = |kind: &'static str| {
        let sub = sub.clone();
        move |m: &Value| m["type"] == kind && m["payload"]["actioner"] == sub
    };
    client.recv_until("sync", mine("sync"))?;
    client.send_gzipped(
        json!({"type": "write", "payload": {"offset": 0, "text": "abc", "selection": 0}}),
    )?;
    client.recv_until("the write's echo", mine("write"))?;
    client.send_gzipped(
        json!({"type": "write", "payload": {"offset": 0, "text": "", "selection": 3}}),
    )?;
    client.recv_until("the delete's echo", mine("write"))?;
    client.send_gzipped(json!({"type": "move", "payload": {"offset": 0, "selection": 0}}))?;
    client.recv_until("the move's echo", mine("move"))?;
    client.send_gzipped(json!({"type": "sync", "payload": {}}))?;
    client.recv_until("sync", mine("sync"))?;
    client.close();
    Ok(())
}

// ---------------------------------------------------------------------------
// Residents
// ---------------------------------------------------------------------------

/// Reads `client` until `stop`, handing each message to `on_message` (which
/// answers pings and heartbeats) and calling `on_tick` between reads.
fn reside(
    mut client: Ws,
    stop: &AtomicBool,
    tally: &Tally,
    mut on_message: impl FnMut(&mut Ws, Value) -> Result<(), String>,
    mut on_tick: impl FnMut(&mut Ws) -> Result<(), String>,
) -> Result<(), String> {
    let _ = client.0.get_mut().set_read_timeout(Some(RESIDENT_TICK));
    while !stop.load(Ordering::Relaxed) {
        if let Some(message) = client.poll()? {
            tally.heard.fetch_add(1, Ordering::Relaxed);
            on_message(&mut client, message)?;
        }
        on_tick(&mut client)?;
    }
    client.close();
    Ok(())
}

/// The residents: a channels listener on [`LOBBY`] (answering PINGs), a
/// concierge client subscribed to it, a world client in room `lobby`, and
/// a common client that heartbeats. Runs them on threads of their own
/// until `stop`; the listener first, since it creates the topic.
pub fn residents<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    target: &'scope Target,
    stop: &'scope AtomicBool,
    tally: &'scope Tally,
) -> Result<(), String> {
    let mut listener = Ws::connect(
        target.addr,
        &format!(
            "/{LOBBY}/listen?username=resident&token={}",
            token(&target.jwt_key, "soak-resident")
        ),
        &[],
    )?;
    listener.recv_until("CONNECTED", |m| is(m, "CONNECTED", ""))?;
    let mut concierge = identify(target.addr, "soak_resident")?;
    concierge.send(json!({"type": "SELF_SUBSCRIBE", "name": LOBBY}))?;
    reply(&mut concierge, "SUBSCRIBED")?;
    let mut world = Ws::connect(target.addr, "/ws/world/default", &[])?;
    world.send(json!(["authenticate", {"token": token(&target.jwt_key, "soak-resident")}]))?;
    world.recv_until("authenticated", |m| m[0] == "authenticated")?;
    world.send(json!(["room.enter", 1, {"room": "lobby"}]))?;
    world.recv_until("room.enter's success", |m| m[0] == "success")?;
    let mut common = Ws::connect(target.addr, "/ws/common", &[])?;
    let hello = common.recv_until("HELLO", |m| m["op"] == 0)?;
    let beat = Duration::from_millis(hello["hb_interval"].as_u64().unwrap_or(20_000) / 2);
    common.send(json!({"op": 1, "password": SECRET}))?;

    let run = |name: &'static str, result: Result<(), String>| {
        if let Err(e) = result {
            tally.error(format!("resident {name}: {e}"));
        }
    };
    scope.spawn(move || {
        let pong = |client: &mut Ws, message: Value| {
            if is(&message, "PING", "") {
                client.send(json!({"type": "PONG"}))?;
            }
            Ok(())
        };
        run("listener", reside(listener, stop, tally, pong, |_| Ok(())));
    });
    scope.spawn(move || {
        run(
            "concierge",
            reside(concierge, stop, tally, |_, _| Ok(()), |_| Ok(())),
        );
    });
    scope.spawn(move || {
        run(
            "world",
            reside(world, stop, tally, |_, _| Ok(()), |_| Ok(())),
        );
    });
    scope.spawn(move || {
        let mut last_beat = Instant::now();
        let heartbeat = move |client: &mut Ws| {
            if last_beat.elapsed() >= beat {
                last_beat = Instant::now();
                client.send(json!({"op": 2}))?;
            }
            Ok(())
        };
        run(
            "common",
            reside(common, stop, tally, |_, _| Ok(()), heartbeat),
        );
    });
    Ok(())
}
