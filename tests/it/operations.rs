//! End-to-end tests of switchboard as a service, on the built binary: a
//! graceful shutdown on SIGTERM and SIGINT (every client of every dialect
//! gets 1001, documents are saved, the exit status is 0), systemd's
//! notification protocol on a fake NOTIFY_SOCKET, and socket activation
//! with a listener passed as file descriptor 3.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::support::*;
use serde_json::{json, Value};
use switchboard::{jwt, store};
use tungstenite::Message;

const KEY: &str = "operations test key";

/// A fresh temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("switchboard-ops-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads until the close frame, skipping everything before it; returns
/// its code.
fn close_code(client: &mut Client) -> u16 {
    client.close_code_skipping()
}

fn blazing_token(sub: &str) -> String {
    jwt::sign(
        &json!({"sub": sub, "exp": jwt::now() + 3600}),
        KEY.as_bytes(),
    )
}

/// A blazing client of `computer`'s document, past its `sync`.
fn blazing(addr: SocketAddr, sub: &str, computer: &str) -> Client {
    let (request, stream) = blazing_request(addr, &blazing_token(sub), computer);
    let (ws, _) = tungstenite::client(request, stream).expect("blazing handshake");
    let mut client = Client { ws };
    match client.recv() {
        Message::Binary(_) => client, // the gzip'd sync
        other => panic!("expected the sync, got {other:?}"),
    }
}

/// Clients of every dialect, each past its handshake; `hundreds` of
/// concierge clients among them.
fn clients_of_every_dialect(addr: SocketAddr, hundreds: usize) -> Vec<(&'static str, Client)> {
    let mut clients = Vec::new();
    for i in 0..hundreds {
        let concierge = Concierge::join(addr, &format!("c{i}"));
        clients.push(("concierge", concierge.client));
    }
    for i in 0..20 {
        let mut listener = Client::connect(addr, &format!("/room{}/listen", i % 3));
        assert_eq!(listener.recv_json()["type"], "CONNECTED");
        clients.push(("channels", listener));
    }
    for _ in 0..20 {
        let mut common = Client::connect(addr, "/ws/common");
        assert_eq!(common.recv_json()["op"], 0);
        common.send_json(json!({"op": 1, "password": ""}));
        clients.push(("common", common));
    }
    for i in 0..20 {
        let mut world = Client::connect(addr, "/ws/world/default");
        world.send_json(json!(["authenticate", {"client_id": format!("w{i}")}]));
        let answer: Value = world.recv_json();
        assert_eq!(answer[0], "authenticated", "{answer}");
        clients.push(("world", world));
    }
    clients
}

#[test]
fn sigterm_closes_every_client_with_1001_saves_documents_and_exits_0() {
    let data = TempDir::new("sigterm");
    let mut server = Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--quiet",
        "--jwt-key",
        KEY,
        // The key protects the hub; these listeners come without tokens.
        "--public-channels",
        "*",
        "--data-dir",
        data.arg(),
    ]);
    let mut clients = clients_of_every_dialect(server.addr, 200);
    let mut editor = blazing(server.addr, "ann", "pc-term");
    editor.send_text(
        r#"{"type":"write","payload":{"offset":0,"selection":0,"text":"saved at exit"}}"#,
    );
    match editor.recv() {
        Message::Binary(_) => {} // the write's broadcast: the router has it
        other => panic!("expected the write back, got {other:?}"),
    }
    clients.push(("blazing", editor));

    let signalled = Instant::now();
    server.signal("TERM");
    for (dialect, client) in &mut clients {
        assert_eq!(close_code(client), 1001, "{dialect} client");
    }
    let status = server.wait();
    eprintln!(
        "{} clients closed with 1001; exit {status} {} ms after SIGTERM",
        clients.len(),
        signalled.elapsed().as_millis()
    );
    assert_eq!(status.code(), Some(0));
    let saved = std::fs::read_to_string(data.path(&store::file_name("pc-term")));
    assert_eq!(
        saved.expect("the document was saved").as_str(),
        "saved at exit"
    );
}

#[test]
fn sigint_shuts_down_the_same_way() {
    let data = TempDir::new("sigint");
    let mut server = Process::start(&["--listen", "127.0.0.1:0", "--data-dir", data.arg()]);
    let mut client = Concierge::join(server.addr, "ann").client;
    server.signal("INT");
    assert_eq!(close_code(&mut client), 1001);
    assert_eq!(server.wait().code(), Some(0));
    server.log_line("SIGINT: shutting down");
    // The port is closed: nothing accepts any more.
    assert!(TcpStream::connect(server.addr).is_err());
}

/// The datagrams a fake service manager received, in order, until one
/// equal to `last`.
fn notifications_until(socket: &UnixDatagram, last: &str) -> Vec<String> {
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let n = socket.recv(&mut buf).expect("a notification");
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        // `STATUS=` lines come every few seconds whatever else happens.
        if message.starts_with("STATUS=") && last != "STATUS=" {
            continue;
        }
        if message.starts_with(last) && last == "STATUS=" {
            seen.push(message);
            return seen;
        }
        seen.push(message.clone());
        if message == last {
            return seen;
        }
    }
}

/// The binary, quiet, on a port of its own, keeping documents in `dir`.
fn switchboard_in(dir: &TempDir) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--quiet",
        "--data-dir",
        dir.arg(),
    ]);
    command
}

/// The binary started with `NOTIFY_SOCKET` pointing at a datagram socket
/// of the test's (a fake service manager), and `WATCHDOG_USEC` if given.
fn under_a_fake_manager(
    name: &str,
    watchdog_usec: Option<&str>,
) -> (TempDir, UnixDatagram, Process) {
    let dir = TempDir::new(name);
    let socket_path = dir.path("notify.sock");
    let manager = UnixDatagram::bind(&socket_path).unwrap();
    let mut command = switchboard_in(&dir);
    command.env("NOTIFY_SOCKET", &socket_path);
    if let Some(usec) = watchdog_usec {
        command.env("WATCHDOG_USEC", usec);
    }
    let server = Process::spawn(command);
    (dir, manager, server)
}

#[test]
fn a_service_manager_hears_ready_watchdog_reloading_and_stopping() {
    // A ping every 50 ms.
    let (_dir, manager, mut server) = under_a_fake_manager("notify", Some("100000"));

    let before_ready = notifications_until(&manager, "READY=1");
    assert!(
        before_ready
            .iter()
            .all(|m| m == "WATCHDOG=1" || m == "READY=1"),
        "{before_ready:?}"
    );
    // Ready means serving.
    let mut client = Concierge::join(server.addr, "ann").client;
    // The router's loop keeps the watchdog fed while idle.
    let pings = notifications_until(&manager, "WATCHDOG=1");
    assert_eq!(pings, ["WATCHDOG=1"]);
    assert_eq!(notifications_until(&manager, "WATCHDOG=1"), ["WATCHDOG=1"]);

    // `systemctl status` shows how busy the server is.
    let status = notifications_until(&manager, "STATUS=");
    let status: Vec<&String> = status.iter().filter(|m| *m != "WATCHDOG=1").collect();
    assert_eq!(status, ["STATUS=1 connections, 0 topics"]);

    server.signal("HUP");
    let reload = notifications_until(&manager, "READY=1");
    let reload: Vec<&String> = reload.iter().filter(|m| *m != "WATCHDOG=1").collect();
    assert_eq!(reload, ["RELOADING=1", "READY=1"]);

    server.signal("TERM");
    let stopping = notifications_until(&manager, "STOPPING=1");
    assert!(!stopping.contains(&"READY=1".to_string()), "{stopping:?}");
    assert_eq!(close_code(&mut client), 1001);
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn without_watchdog_usec_no_watchdog_pings_are_sent() {
    let (_dir, manager, mut server) = under_a_fake_manager("nowatchdog", None);
    server.signal("TERM");
    assert_eq!(
        notifications_until(&manager, "STOPPING=1"),
        ["READY=1", "STOPPING=1"]
    );
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn a_socket_passed_as_fd_3_is_served_instead_of_listen() {
    let dir = TempDir::new("activation");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The listener becomes the shell's standard input, which the shell
    // moves to descriptor 3 before it execs the server in its own process,
    // so that LISTEN_PID ($$) is the server's pid, as systemd would set it.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--listen",
            "127.0.0.1:1",
            "--quiet",
            "--data-dir",
            dir.arg(),
        ])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)));
    let mut server = Process::spawn(command);
    assert_eq!(
        server.addr, addr,
        "it serves the passed socket, not --listen"
    );
    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    ann.send(json!({"type": "MESSAGE", "target": {"type": "NAME", "name": "bob"}, "data": 7}));
    assert_eq!(bob.recv_until("MESSAGE", None)["data"], 7);
    server.signal("TERM");
    assert_eq!(close_code(&mut ann.client), 1001);
    assert_eq!(server.wait().code(), Some(0));
}

#[test]
fn listen_fds_for_another_process_is_ignored() {
    let dir = TempDir::new("otherpid");
    let mut command = switchboard_in(&dir);
    command.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let mut server = Process::spawn(command);
    // It bound its own --listen instead of adopting descriptor 3.
    let mut client = Concierge::join(server.addr, "ann").client;
    server.signal("TERM");
    assert_eq!(close_code(&mut client), 1001);
    assert_eq!(server.wait().code(), Some(0));
}

/// Every sample line of `/metrics` as (series, value); fails on a line
/// that is not `series value` or a comment.
fn scrape(addr: SocketAddr) -> Vec<(String, f64)> {
    let response = get(addr, "/metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series value");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("a number in {line:?}"));
            (series.to_string(), value)
        })
        .collect()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let addr = start(config());
    let before = scrape(addr);
    assert_eq!(
        sample(
            &before,
            r#"switchboard_dialect_connections{dialect="concierge"}"#
        ),
        0.0
    );
    assert_eq!(sample(&before, "switchboard_topics"), 0.0);
    assert!(sample(&before, "process_threads") >= 3.0);
    assert!(sample(&before, "process_resident_memory_bytes") > 1e6);

    let mut ann = Concierge::join(addr, "ann");
    let mut bob = Concierge::join(addr, "bob");
    let (listener, _) = {
        let mut client = Client::connect(addr, "/lobby/listen");
        let connected = client.recv_json();
        (client, connected)
    };
    let message = r#"{"type":"MESSAGE","target":{"type":"NAME","name":"bob"},"data":"hi"}"#;
    let joined = scrape(addr);
    ann.client.send_text(message);
    assert_eq!(bob.recv_until("MESSAGE", None)["data"], "hi");
    get(addr, "/no-such-endpoint");
    let after = scrape(addr);

    let concierge = |family: &str| format!(r#"{family}{{dialect="concierge"}}"#);
    assert_eq!(
        sample(&after, &concierge("switchboard_dialect_connections")),
        2.0
    );
    assert_eq!(
        sample(
            &after,
            r#"switchboard_dialect_connections{dialect="channels"}"#
        ),
        1.0
    );
    assert_eq!(sample(&after, "switchboard_connections_open"), 3.0);
    let received =
        |s: &[(String, f64)]| sample(s, &concierge("switchboard_messages_received_total"));
    assert_eq!(received(&after) - received(&joined), 1.0);
    let bytes = |s: &[(String, f64)]| sample(s, &concierge("switchboard_bytes_received_total"));
    assert_eq!(bytes(&after) - bytes(&joined), message.len() as f64);
    let sent = |s: &[(String, f64)]| sample(s, &concierge("switchboard_messages_sent_total"));
    assert!(
        sent(&after) > sent(&joined),
        "MESSAGE_SENT and the MESSAGE went out"
    );
    assert!(sample(&after, &concierge("switchboard_bytes_sent_total")) > 0.0);
    assert_eq!(
        sample(
            &after,
            r#"switchboard_handshake_failures_total{reason="not_found"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&after, "switchboard_topics"),
        1.0,
        "the lobby channel"
    );
    let commands = sample(&after, "switchboard_router_command_seconds_count");
    assert!(
        commands >= 5.0,
        "open, identify ×2, listen, message: {commands}"
    );
    assert_eq!(
        sample(
            &after,
            r#"switchboard_router_command_seconds_bucket{le="+Inf"}"#
        ),
        commands
    );

    listener.close();
    ann.client.close();
    wait_until("the closes are counted", || {
        metric(
            addr,
            r#"switchboard_dialect_connections{dialect="concierge"}"#,
        ) == 1
            && metric(
                addr,
                r#"switchboard_dialect_connections{dialect="channels"}"#,
            ) == 0
    });
    // The connection's gauge drops as its thread ends; the router forgets
    // its channel when it gets to the close, a moment later.
    wait_until("the channel to go with its listener", || {
        metric(addr, "switchboard_topics") == 0
    });
}

#[test]
fn healthz_answers_while_the_router_turns() {
    let addr = start(config());
    let response = get(addr, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok\n"), "{response}");
}

/// A world client of `world`, authenticated as `id`.
fn world_client(addr: SocketAddr, world: &str, id: &str) -> Client {
    let mut client = Client::connect(addr, &format!("/ws/world/{world}"));
    client.send_json(json!(["authenticate", {"client_id": id}]));
    let answer = client.recv_json();
    assert_eq!(answer[0], "authenticated", "{answer}");
    client
}

/// Connects a concierge client with `secret`; returns the close code, or 0
/// if it was welcomed.
fn identify_with_secret(addr: SocketAddr, name: &str, secret: &str) -> u16 {
    let mut client = Client::connect(addr, "/ws/concierge");
    client
        .send_json(json!({"type": "IDENTIFY", "name": name, "version": "0.1.0", "secret": secret}));
    match client.recv() {
        Message::Text(text) if text.contains("\"HELLO\"") => 0,
        Message::Close(Some(frame)) => u16::from(frame.code),
        other => panic!("expected HELLO or a close, got {other:?}"),
    }
}

#[test]
fn sighup_reloads_the_config_file_and_tells_the_clients_of_a_removed_world() {
    let dir = TempDir::new("sighup");
    let file = dir.path("switchboard.toml");
    let data = dir.path("data");
    let settings = |worlds: &str, secret: &str| {
        format!(
            "world = [{worlds}]\nsecret = \"{secret}\"\ndata-dir = {:?}\n",
            data.to_str().unwrap()
        )
    };
    std::fs::write(&file, settings(r#""default", "moon""#, "old-secret-value")).unwrap();
    let server = Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        file.to_str().unwrap(),
    ]);
    let addr = server.addr;
    let mut on_moon = world_client(addr, "moon", "m1");
    let mut at_home = world_client(addr, "default", "d1");
    let mut ann = Concierge::join_with(addr, "ann", json!({"secret": "old-secret-value"}));

    std::fs::write(&file, settings(r#""default""#, "new-secret-value")).unwrap();
    server.signal("HUP");
    assert_eq!(on_moon.recv_json(), json!(["connection.reload", {}]));
    let reloaded = server.log_line("reloaded:");
    assert!(
        reloaded.contains("secret") && reloaded.contains("world"),
        "{reloaded}"
    );
    assert!(reloaded.contains("1 world clients told"), "{reloaded}");
    assert!(
        !reloaded.contains("secret-value"),
        "a secret's value was logged: {reloaded}"
    );
    // The home world's client was not told: its next message is its pong.
    at_home.send_text(r#"["ping", 1]"#);
    assert_eq!(at_home.recv_json(), json!(["pong", 1]));
    // New connections need the new secret; the one already in stays in.
    assert_eq!(identify_with_secret(addr, "bob", "old-secret-value"), 4006);
    assert_eq!(identify_with_secret(addr, "cy", "new-secret-value"), 0);
    ann.send(json!({"type": "CLIENT_FETCH_ALL"}));
    let everyone = ann.recv_until("CLIENT_FETCH_ALL_RESULT", None).to_string();
    assert!(everyone.contains("\"ann\""), "{everyone}");
    // A world that no longer exists is refused from now on.
    let mut late = Client::connect(addr, "/ws/world/moon");
    late.send_json(json!(["authenticate", {"client_id": "m2"}]));
    assert_eq!(late.close_code_skipping(), 1008);

    // A file that does not load is refused; the server keeps its settings.
    std::fs::write(&file, "world = [\"default\"\nsecret = 3\n").unwrap();
    server.signal("HUP");
    let refused = server.log_line("SIGHUP: not reloaded");
    assert!(
        refused.contains("switchboard.toml:"),
        "names the file and line: {refused}"
    );
    assert_eq!(identify_with_secret(addr, "dee", "new-secret-value"), 0);
}
