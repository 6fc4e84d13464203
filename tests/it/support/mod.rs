//! Shared helpers for the end-to-end tests: a server on port 0 and a
//! blocking WebSocket client with generous timeouts.

#![allow(dead_code)] // each test file uses a different subset

pub mod json;
pub mod proc;
pub mod redis;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard::{Config, Server};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// How long any single wait may take before a test fails. Generous, so
/// that a loaded two-core machine never trips it.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Starts a server with `config` on 127.0.0.1, port 0, and returns its address.
pub fn start(config: Config) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let server = Server::from_listener(listener, config);
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || server.run());
    addr
}

/// A test configuration: the defaults, logging only errors, and a data
/// directory of its own: every test shares this one process, and two
/// tests' documents must never meet.
pub fn config() -> Config {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = format!("switchboard-tests-{}-{n}", std::process::id());
    Config {
        log_level: switchboard::log::Level::Error,
        data_dir: std::env::temp_dir().join(dir),
        ..Config::default()
    }
}

/// A blocking WebSocket client over a real TCP connection.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// A channels listener on `path` (`/<channel>/listen…`, `/$sys/listen`)
    /// that has read its CONNECTED frame; returns that frame too.
    pub fn listen(addr: SocketAddr, path: &str) -> (Client, Value) {
        let mut client = Client::connect(addr, path);
        let connected = client.recv_json();
        assert_eq!(connected["type"], "CONNECTED", "{connected}");
        (client, connected)
    }

    /// A channels listener's next DATA payload, answering PINGs and
    /// skipping anything else (presence) on the way.
    pub fn next_data(&mut self) -> Value {
        loop {
            let frame = self.recv_json();
            match frame["type"].as_str() {
                Some("DATA") => return frame["payload"].clone(),
                Some("PING") => self.send_json(json!({"type": "PONG"})),
                _ => {}
            }
        }
    }

    /// Connects to `path` on `addr`.
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        Client::connect_with(addr, path, None).expect("WebSocket handshake")
    }

    /// Connects to `path`, offering `protocol` as subprotocol if given.
    /// Returns the handshake response too.
    pub fn connect_with(
        addr: SocketAddr,
        path: &str,
        protocol: Option<&str>,
    ) -> Result<Client, tungstenite::Error> {
        Client::connect_full(addr, path, protocol).map(|(client, _)| client)
    }

    /// Like `connect_with`, and returns the subprotocol the server chose.
    pub fn connect_full(
        addr: SocketAddr,
        path: &str,
        protocol: Option<&str>,
    ) -> Result<(Client, Option<String>), tungstenite::Error> {
        let stream = TcpStream::connect(addr).expect("TCP connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
        if let Some(protocol) = protocol {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        }
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let (ws, response) = tungstenite::client::client_with_config(request, stream, Some(config))
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => {
                    panic!("blocking handshake interrupted")
                }
            })?;
        let chosen = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_string());
        Ok((Client { ws }, chosen))
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// Sends a JSON value as a text message.
    pub fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string());
    }

    /// The next message, whatever it is (pings are answered by tungstenite).
    pub fn recv(&mut self) -> Message {
        loop {
            match self.ws.read().expect("read a message") {
                Message::Ping(_) | Message::Pong(_) => continue,
                message => return message,
            }
        }
    }

    /// The next text message, parsed as JSON.
    pub fn recv_json(&mut self) -> Value {
        match self.recv() {
            Message::Text(text) => serde_json::from_str(&text).expect("JSON from server"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Reads until the server's close frame; returns its code and reason.
    /// Any other message before it fails the test.
    pub fn expect_close(&mut self) -> (u16, String) {
        match self.recv() {
            Message::Close(Some(CloseFrame { code, reason })) => {
                (u16::from(code), reason.to_string())
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Reads until the close frame, skipping other messages; returns its code.
    pub fn close_code_skipping(&mut self) -> u16 {
        loop {
            match self.ws.read() {
                Ok(Message::Close(Some(frame))) => return u16::from(frame.code),
                Ok(Message::Close(None)) => return 1005,
                Ok(_) => continue,
                Err(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }

    /// Closes normally and waits for the server's reply.
    pub fn close(mut self) {
        let _ = self.ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        }));
        while self.ws.read().is_ok() {}
    }

    /// Drops the TCP connection without a closing handshake.
    pub fn vanish(self) {
        let stream = self.ws.get_ref();
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
}

/// A concierge client that has identified; `uuid` is from its HELLO.
pub struct Concierge {
    pub client: Client,
    pub uuid: String,
    pub name: String,
}

impl Concierge {
    /// Connects to `/ws/concierge` and identifies as `name` (version 0.1.0).
    pub fn join(addr: SocketAddr, name: &str) -> Concierge {
        Concierge::join_with(addr, name, json!({}))
    }

    /// Identifies with extra IDENTIFY fields (secret, tags, nickname).
    pub fn join_with(addr: SocketAddr, name: &str, extra: Value) -> Concierge {
        let mut client = Client::connect(addr, "/ws/concierge");
        let mut identify = json!({"type": "IDENTIFY", "name": name, "version": "0.1.0"});
        for (key, value) in extra.as_object().unwrap() {
            identify[key] = value.clone();
        }
        client.send_json(identify);
        let hello = client.recv_json();
        assert_eq!(hello["type"], "HELLO", "{hello}");
        assert_eq!(hello["version"], "0.1.0");
        let uuid = hello["uuid"].as_str().unwrap().to_string();
        Concierge {
            client,
            uuid,
            name: name.to_string(),
        }
    }

    /// Sends a payload.
    pub fn send(&mut self, value: Value) {
        self.client.send_json(value);
    }

    /// The next payload.
    pub fn recv(&mut self) -> Value {
        self.client.recv_json()
    }

    /// Sends `value` and returns the next payload (the reply).
    pub fn ask(&mut self, value: Value) -> Value {
        self.send(value);
        self.recv()
    }

    /// Reads payloads until one has `type` == `kind` (and, for STATUS,
    /// `code` == `code`); returns it. Others are skipped.
    pub fn recv_until(&mut self, kind: &str, code: Option<&str>) -> Value {
        loop {
            let payload = self.recv();
            let kind_matches = payload["type"] == kind;
            let code_matches = code.is_none_or(|c| payload["code"] == c);
            if kind_matches && code_matches {
                return payload;
            }
        }
    }
}

/// Sends raw bytes as an HTTP request and returns the whole response text.
pub fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// `GET path` over plain HTTP; returns the response text.
pub fn get(addr: SocketAddr, path: &str) -> String {
    http(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

/// Waits until `condition` holds, checking every few milliseconds; fails
/// the test after [`PATIENCE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The value of a metric from `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = get(addr, "/metrics");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no metric {name} in {text}"))
}

/// Reads one unmasked server frame from a raw socket: (first byte, payload).
pub fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).expect("a frame header");
    let len = match header[1] & 0x7f {
        126 => {
            let mut bytes = [0u8; 2];
            stream.read_exact(&mut bytes).unwrap();
            u64::from(u16::from_be_bytes(bytes))
        }
        127 => {
            let mut bytes = [0u8; 8];
            stream.read_exact(&mut bytes).unwrap();
            u64::from_be_bytes(bytes)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload).expect("a frame payload");
    (header[0], payload)
}

/// Whether `text` is `prefix` followed by 8 characters of `[A-Za-z0-9_]`.
pub fn is_token(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Whether `text` is a lowercase, hyphenated version 4 UUID.
pub fn is_v4_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
        && bytes[14] == b'4'
        && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
}

/// Opens a WebSocket by hand, sending `extra_headers` (each ending in
/// `\r\n`) with the upgrade, and returns the raw stream after the 101.
pub fn raw_websocket_with(addr: SocketAddr, path: &str, extra_headers: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         {extra_headers}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}

/// A `switchboard` process started from the built binary, listening on a
/// port of its own choosing; killed (SIGKILL) when dropped.
pub struct Process {
    pub child: std::process::Child,
    /// The address it printed.
    pub addr: SocketAddr,
    /// Its standard error, line by line.
    pub log: std::sync::mpsc::Receiver<String>,
}

impl Process {
    /// Runs the binary with `args` (which should include `--listen
    /// 127.0.0.1:0` unless the socket is passed in).
    pub fn start(args: &[&str]) -> Process {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command.args(args);
        Process::spawn(command)
    }

    /// Runs `command` (the binary, or a shell that execs it), reading the
    /// listening address from the endpoints it prints.
    pub fn spawn(mut command: std::process::Command) -> Process {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the switchboard binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines_tx, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = lines_tx.send(line);
            }
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Keeps draining stdout so that the server never blocks on a pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let line = line.trim();
                // `wss://` when the server speaks TLS (tests/it/tls.rs).
                let addr = (line.strip_prefix("ws://"))
                    .or_else(|| line.strip_prefix("wss://"))
                    .and_then(|rest| rest.split_once("/ws/concierge"))
                    .and_then(|(addr, _)| addr.parse::<SocketAddr>().ok());
                if let Some(addr) = addr {
                    let _ = addr_tx.send(addr);
                }
            }
        });
        let mut process = Process {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        process.addr = addr_rx
            .recv_timeout(PATIENCE)
            .expect("the server printed its endpoints");
        process
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name}");
    }

    /// Kills the process (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a log line containing `text`; returns it.
    pub fn log_line(&self, text: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {text:?}"),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blazing handshake request for `computer` with `Authorization: Bearer
/// <token>`, and the connected socket to send it on.
pub fn blazing_request(
    addr: SocketAddr,
    token: &str,
    computer: &str,
) -> (tungstenite::handshake::client::Request, TcpStream) {
    let stream = TcpStream::connect(addr).expect("TCP connect");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request = format!("ws://{addr}/ws/blazing")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("Authorization", format!("Bearer {token}").parse().unwrap());
    headers.insert("Blazing-Computer-Id", computer.parse().unwrap());
    (request, stream)
}

/// The text in a blazing `sync` payload: its `document` is standard
/// base64 of gzip of the UTF-8 text.
pub fn sync_document(payload: &Value) -> String {
    use std::io::Read as _;
    let standard = payload["document"].as_str().expect("a document");
    let url = standard
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    let bytes = switchboard::base64::decode_url(&url).expect("base64");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("gzip of UTF-8");
    text
}
