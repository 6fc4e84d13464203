//! TLS on the listening port (`--features tls`, `--tls-cert`, `--tls-key`):
//! every dialect over `wss://`, HTTP over `https://` (curl for the emit,
//! where it is installed), clients refusing a wrong-host or expired
//! certificate, a plain-text client refused at once, a reload on SIGHUP
//! that new connections see while old ones stay, and half-finished
//! handshakes cut at the deadline. The certificates are made here, with
//! rcgen, under a CA of the test's own.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{json, Value};
use switchboard::Config;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use crate::support::{self, Process, PATIENCE};

/// A CA of the test's own, and the files of a certificate it signed.
struct Pki {
    ca: CertificateDer<'static>,
    ca_pem: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// A new CA, and a certificate for `localhost` (and 127.0.0.1) valid
    /// from 1975 to 4096, or until `expired_in` (a past year) if given.
    fn new(dir: &Path, expired_in: Option<i32>) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("switchboard test CA {}", next()),
        );
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        if let Some(year) = expired_in {
            params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
            params.not_after = rcgen::date_time_ymd(year, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &ca).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let (cert_path, key_path) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
        // The chain, as certbot writes `fullchain.pem`: the leaf, then its CA.
        std::fs::write(&cert_path, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Pki {
            ca: ca.der().clone(),
            ca_pem: ca.pem(),
            cert: cert_path,
            key: key_path,
        }
    }

    /// A client that trusts this CA only.
    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// A number not used before in this process, for names that must differ.
fn next() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server on port 0 serving TLS with `pki`'s certificate.
fn start(pki: &Pki, config: Config) -> SocketAddr {
    support::start(Config {
        tls_cert: Some(pki.cert.clone()),
        tls_key: Some(pki.key.clone()),
        // An open hub with the demo's tokens (fetched over https).
        demo: true,
        ..config
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `addr` as `host`, its handshake done.
fn tls(addr: SocketAddr, host: &str, client: Arc<ClientConfig>) -> io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(PATIENCE))?;
    tcp.set_write_timeout(Some(PATIENCE))?;
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut stream = StreamOwned::new(ClientConnection::new(client, name).unwrap(), tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// A WebSocket client over TLS.
struct Wss {
    ws: WebSocket<Tls>,
}

impl Wss {
    fn connect(addr: SocketAddr, pki: &Pki, path: &str) -> Wss {
        Wss::connect_with(addr, pki.client(), path, &[])
    }

    fn connect_with(
        addr: SocketAddr,
        client: Arc<ClientConfig>,
        path: &str,
        headers: &[(&'static str, String)],
    ) -> Wss {
        let stream = tls(addr, "localhost", client).expect("TLS handshake");
        let url = format!("wss://localhost:{}{path}", addr.port());
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        let (ws, _) = tungstenite::client::client(request, stream).expect("wss handshake");
        Wss { ws }
    }

    fn send(&mut self, value: Value) {
        self.ws.send(Message::text(value.to_string())).unwrap();
    }

    fn recv(&mut self) -> Message {
        loop {
            match self.ws.read().expect("read over wss") {
                Message::Ping(_) | Message::Pong(_) => continue,
                message => return message,
            }
        }
    }

    fn recv_json(&mut self) -> Value {
        match self.recv() {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// An HTTP request over TLS; the whole response. The server closes after
/// it, with a close_notify.
fn https(addr: SocketAddr, pki: &Pki, request: &str) -> String {
    let mut stream = tls(addr, "localhost", pki.client()).expect("TLS handshake");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // A server that closes without close_notify would land here; the
        // response must still be whole, which the callers check.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the https response: {e}"),
    }
    String::from_utf8_lossy(&response).into_owned()
}

fn https_get(addr: SocketAddr, pki: &Pki, path: &str) -> String {
    https(
        addr,
        pki,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
}

/// A metric over https.
fn metric(addr: SocketAddr, pki: &Pki, name: &str) -> u64 {
    let text = https_get(addr, pki, "/metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// `POST /<channel>/emit` over https with curl, if installed; else with
/// the test's own client. Returns the status line and body.
fn emit(addr: SocketAddr, pki: &Pki, dir: &Path, channel: &str, body: &str) -> String {
    let port = addr.port();
    let url = format!("https://localhost:{port}/{channel}/emit");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let curl = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--include", "--max-time", "20"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args(["--cacert", ca.to_str().unwrap()])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .arg(&url)
        .output();
    match curl {
        Ok(out) => {
            assert!(
                out.status.success(),
                "curl: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Err(_) => https(
            addr,
            pki,
            &format!(
                "POST /{channel}/emit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        ),
    }
}

#[test]
fn every_dialect_and_http_over_tls() {
    let dir = scratch("dialects");
    let pki = Pki::new(&dir, None);
    let addr = start(&pki, support::config());

    // HTTP: the liveness check and the status page.
    let health = https_get(addr, &pki, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    let page = https_get(addr, &pki, "/");
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");

    // concierge
    let mut concierge = Wss::connect(addr, &pki, "/ws/concierge");
    concierge.send(json!({"type": "IDENTIFY", "name": "alice", "version": "0.1.0"}));
    assert_eq!(concierge.recv_json()["type"], "HELLO");

    // channels, and an emit to it over https
    let mut listener = Wss::connect(addr, &pki, "/lobby/listen");
    assert_eq!(listener.recv_json()["type"], "CONNECTED");
    let reply = emit(addr, &pki, &dir, "lobby", r#"{"hello":"tls"}"#);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let data = listener.recv_json();
    assert_eq!(data["payload"], json!({"hello": "tls"}), "{data}");

    // common
    let mut common = Wss::connect(addr, &pki, "/ws/common");
    assert_eq!(common.recv_json(), json!({"op": 0, "hb_interval": 20_000}));

    // world (unauthenticated: told so, in its words)
    let mut world = Wss::connect(addr, &pki, "/ws/world/default");
    world.send(json!(["hub.info", 1, {}]));
    assert_eq!(
        world.recv_json(),
        json!(["error", 1, {"code": "protocol.unauthenticated"}])
    );

    // blazing, with the demo's token: its gzipped sync
    let answer = https_get(addr, &pki, "/demo/token?name=bob");
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let token: Value = serde_json::from_str(body).unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let headers = [
        ("Authorization", bearer),
        ("Blazing-Computer-Id", "demo".to_string()),
    ];
    let mut blazing = Wss::connect_with(addr, pki.client(), "/ws/blazing", &headers);
    assert!(matches!(blazing.recv(), Message::Binary(_)));

    // echo, with a message larger than one TLS record
    let mut echo = Wss::connect(addr, &pki, "/ws/echo");
    let big = "x".repeat(100_000);
    echo.ws.send(Message::text(big.clone())).unwrap();
    assert_eq!(echo.recv(), Message::text(big));

    assert!(metric(addr, &pki, "switchboard_tls_handshakes_total") >= 9);
}

#[test]
fn a_plain_text_client_on_the_tls_port_is_refused_at_once() {
    let dir = scratch("plaintext");
    let pki = Pki::new(&dir, None);
    let addr = start(&pki, support::config());
    let started = Instant::now();
    let answer = support::get(addr, "/healthz");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("https:// or wss://"), "{answer}");
    // A plain WebSocket client fails its handshake the same way.
    assert!(support::Client::connect_with(addr, "/ws/echo", None).is_err());
    support::wait_until("the plain-text refusals to be counted", || {
        metric(
            addr,
            &pki,
            "switchboard_tls_handshake_failures_total{reason=\"plaintext\"}",
        ) == 2
    });
}

#[test]
fn clients_refuse_a_wrong_host_or_an_expired_certificate() {
    let dir = scratch("refused");
    let pki = Pki::new(&dir.join("good"), None);
    let addr = start(&pki, support::config());
    let wrong_host = tls(addr, "example.org", pki.client()).unwrap_err();
    assert!(
        wrong_host.to_string().contains("not valid for name"),
        "{wrong_host}"
    );
    // Another CA's client does not know this certificate either.
    let stranger = Pki::new(&dir.join("stranger"), None);
    let unknown = tls(addr, "localhost", stranger.client()).unwrap_err();
    assert!(
        unknown.to_string().to_lowercase().contains("unknownissuer"),
        "{unknown}"
    );

    let expired = Pki::new(&dir.join("expired"), Some(2001));
    let old = start(&expired, support::config());
    let error = tls(old, "localhost", expired.client()).unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("expired"),
        "{error}"
    );
    support::wait_until("the refusals to be counted", || {
        metric(
            addr,
            &pki,
            "switchboard_tls_handshake_failures_total{reason=\"certificate\"}",
        ) == 2
    });
}

/// The binary with `pki`'s files, logging at info.
fn binary(pki: &Pki) -> Process {
    Process::start(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
        "--data-dir",
        pki.cert.parent().unwrap().join("data").to_str().unwrap(),
    ])
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_only() {
    let dir = scratch("reload");
    let first = Pki::new(&dir, None);
    let server = binary(&first);
    let addr = server.addr;
    let mut old = Wss::connect(addr, &first, "/ws/echo");

    // Renewed in place, as certbot does, under a new CA for the test to tell.
    let renewed = Pki::new(&dir, None);
    server.signal("HUP");
    server.log_line("TLS certificate read from");
    let mut new = Wss::connect(addr, &renewed, "/ws/echo");
    assert!(tls(addr, "localhost", first.client()).is_err());
    for client in [&mut old, &mut new] {
        client.ws.send(Message::text("still here")).unwrap();
        assert_eq!(client.recv(), Message::text("still here"));
    }

    // A key that does not load is refused, and the renewed pair stays.
    std::fs::write(&renewed.key, "not a key\n").unwrap();
    server.signal("HUP");
    let refused = server.log_line("the old certificate and key stay");
    assert!(refused.contains("privkey.pem"), "{refused}");
    let mut after = Wss::connect(addr, &renewed, "/ws/echo");
    after.ws.send(Message::text("served")).unwrap();
    assert_eq!(after.recv(), Message::text("served"));
}

#[test]
fn a_certificate_that_does_not_load_stops_the_start() {
    let dir = scratch("bad-start");
    let pki = Pki::new(&dir, None);
    std::fs::write(&pki.key, "not a key\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--tls-key")
        .arg(&pki.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot serve TLS"), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "announced: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn half_finished_handshakes_are_cut_at_the_deadline() {
    const SOCKETS: usize = 20;
    let deadline = Duration::from_millis(1500);
    let dir = scratch("slowloris");
    let pki = Pki::new(&dir, None);
    let addr = start(
        &pki,
        Config {
            handshake_timeout: deadline,
            ..support::config()
        },
    );
    // Each sends the start of a ClientHello record, then nothing.
    let started = Instant::now();
    let sockets: Vec<TcpStream> = (0..SOCKETS)
        .map(|_| {
            let mut socket = TcpStream::connect(addr).unwrap();
            socket
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .unwrap();
            socket.set_read_timeout(Some(PATIENCE)).unwrap();
            socket
        })
        .collect();
    // Meanwhile a real client gets in.
    let mut echo = Wss::connect(addr, &pki, "/ws/echo");
    echo.ws.send(Message::text("through")).unwrap();
    assert_eq!(echo.recv(), Message::text("through"));
    for mut socket in sockets {
        // Closed, with nothing sent back: not even a handshake started.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(waited >= deadline, "cut after {waited:?}");
        assert!(waited < deadline + PATIENCE / 2, "cut after {waited:?}");
    }
    support::wait_until("the timeouts to be counted", || {
        metric(
            addr,
            &pki,
            "switchboard_tls_handshake_failures_total{reason=\"timeout\"}",
        ) == SOCKETS as u64
    });

    // An oversize handshake record is refused without waiting.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.set_read_timeout(Some(PATIENCE)).unwrap();
    let started = Instant::now();
    let _ = huge.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]);
    let _ = huge.write_all(&vec![0u8; 70_000]);
    let _ = huge.read_to_end(&mut Vec::new());
    assert!(started.elapsed() < deadline, "took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// What TLS costs (run by hand, against a release build; docs/tls.md, "Cost")
// ---------------------------------------------------------------------------

/// A connection either way, for the cost measurement.
enum Either {
    Plain(Box<WebSocket<TcpStream>>),
    Tls(Box<WebSocket<Tls>>),
}

impl Either {
    fn connect(addr: SocketAddr, pki: Option<&Pki>, path: &str) -> Either {
        match pki {
            Some(pki) => Either::Tls(Box::new(Wss::connect(addr, pki, path).ws)),
            None => Either::Plain(Box::new(support::Client::connect(addr, path).ws)),
        }
    }

    fn send(&mut self, text: String) {
        match self {
            Either::Plain(ws) => ws.send(Message::text(text)).unwrap(),
            Either::Tls(ws) => ws.send(Message::text(text)).unwrap(),
        }
    }

    fn read(&mut self) -> Message {
        match self {
            Either::Plain(ws) => ws.read().unwrap(),
            Either::Tls(ws) => ws.read().unwrap(),
        }
    }
}

/// The CPU time `pid` has used, user and system, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Idle memory per connection and the fan-out's server CPU, with and
/// without TLS, in one run. `SWITCHBOARD_BIN` names the binary (a release
/// build with `--features tls`); by default the test build's.
///
/// ```text
/// cargo build --release --features tls
/// SWITCHBOARD_BIN=target/release/switchboard cargo test --features tls --test it tls_cost -- --ignored --nocapture
/// ```
#[test]
#[ignore = "a measurement, run by hand"]
fn tls_cost() {
    const IDLE: usize = 1000;
    const LISTENERS: usize = 100;
    const EMITS: usize = 200;
    let bin = std::env::var("SWITCHBOARD_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_switchboard").to_string());
    let dir = scratch("cost");
    let pki = Pki::new(&dir, None);
    for tls in [false, true] {
        let mut command = std::process::Command::new(&bin);
        command.args(["--listen", "127.0.0.1:0", "--quiet"]);
        command.args(["--max-connections", "20000"]);
        command.arg("--data-dir").arg(dir.join("data"));
        if tls {
            command.arg("--tls-cert").arg(&pki.cert);
            command.arg("--tls-key").arg(&pki.key);
        }
        let server = Process::spawn(command);
        let (addr, pid) = (server.addr, server.child.id());
        let pki = tls.then_some(&pki);
        let before = support::proc::wait_for_socket_threads(pid, 0).0;
        let mut idle: Vec<Either> = (0..IDLE)
            .map(|i| {
                let mut client = Either::connect(addr, pki, "/ws/concierge");
                client.send(
                    json!({"type": "IDENTIFY", "name": format!("idle_{i}"), "version": "0.1.0"})
                        .to_string(),
                );
                assert!(matches!(client.read(), Message::Text(_)));
                client
            })
            .collect();
        let (held, _) = support::proc::wait_for_socket_threads(pid, 2 * IDLE as u64);
        std::thread::sleep(Duration::from_secs(1));
        let held = support::proc::usage(pid).rss_kib.max(held.rss_kib);
        let per_connection = (held - before.rss_kib) as f64 / IDLE as f64;
        idle.clear();
        support::proc::wait_for_socket_threads(pid, 0);

        let listeners: Vec<_> = (0..LISTENERS)
            .map(|_| {
                let mut client = Either::connect(addr, pki, "/fan/listen");
                assert!(matches!(client.read(), Message::Text(_))); // CONNECTED
                std::thread::spawn(move || {
                    let mut got = 0;
                    while got < EMITS {
                        if let Message::Text(_) = client.read() {
                            got += 1;
                        }
                    }
                })
            })
            .collect();
        let payload = json!({"data": "x".repeat(1000)}).to_string();
        let request = format!(
            "POST /fan/emit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        );
        let (cpu, started) = (cpu_seconds(pid), Instant::now());
        for _ in 0..EMITS {
            let reply = match pki {
                Some(pki) => https(addr, pki, &request),
                None => support::http(addr, &request),
            };
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        }
        for listener in listeners {
            listener.join().unwrap();
        }
        let (wall, cpu) = (started.elapsed(), cpu_seconds(pid) - cpu);
        let deliveries = (LISTENERS * EMITS) as f64;
        println!(
            "{}: idle {per_connection:.1} KiB/connection ({IDLE} concierge); fan-out {EMITS} emits x {LISTENERS} listeners (1 kB): {:.2} s, server CPU {:.2} s, {:.1} us CPU/delivery",
            if tls { "tls" } else { "plain" },
            wall.as_secs_f64(),
            cpu,
            cpu * 1e6 / deliveries
        );
    }
}
