//! Log lines end to end: the built binary's standard error, as a terminal
//! and as systemd's journal read it.

use std::io::{BufRead, BufReader, PipeWriter};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use crate::support::{Client, PATIENCE};

/// A `switchboard` process whose standard error comes line by line; killed
/// when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the binary on port 0 with `args`; with `journal`, tells it
    /// (as systemd does) that its standard error is the journal's stream.
    fn start(args: &[&str], env: &[(&str, &str)], journal: bool) -> Server {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let data_dir = std::env::temp_dir().join(format!("switchboard-log-{}", std::process::id()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        for (name, _) in std::env::vars() {
            if name.starts_with("SWITCHBOARD_") || name == "RUST_LOG" || name == "JOURNAL_STREAM" {
                command.env_remove(name);
            }
        }
        if journal {
            command.env("JOURNAL_STREAM", identity(&writer));
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(writer)
            .spawn()
            .expect("start the switchboard binary");
        let (lines, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut stdout = stdout.lines().map_while(Result::ok);
        let addr = stdout
            .find_map(|line| {
                let rest = line.trim().strip_prefix("ws://")?;
                rest.split_once("/ws/echo")
                    .map(|(addr, _)| addr.to_string())
            })
            .expect("the endpoints on stdout");
        std::thread::spawn(move || stdout.for_each(drop));
        Server {
            child,
            addr: addr.parse().expect("an address"),
            stderr,
        }
    }

    /// The first line of standard error that contains `text`.
    fn line_with(&self, text: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `device:inode` of a pipe, as systemd writes `JOURNAL_STREAM`.
fn identity(writer: &PipeWriter) -> String {
    let fd = writer.as_fd().try_clone_to_owned().expect("dup");
    let metadata = std::fs::File::from(fd).metadata().expect("fstat");
    format!("{}:{}", metadata.dev(), metadata.ino())
}

#[test]
fn a_connection_is_logged_at_info_with_its_level_named() {
    let server = Server::start(&["--log-level", "info"], &[], false);
    Client::connect(server.addr, "/ws/echo").close();
    let line = server.line_with("connected from");
    // `2026-12-03T06:50:01.123Z switchboard: info: …`
    let (time, rest) = line.split_once(' ').unwrap();
    assert!(rest.starts_with("switchboard: info: "), "{line}");
    assert_rfc3339(time);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, today or so.
fn assert_rfc3339(time: &str) {
    let bytes = time.as_bytes();
    assert_eq!(bytes.len(), 24, "{time}");
    for (i, byte) in bytes.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*byte, b'-', "{time}"),
            10 => assert_eq!(*byte, b'T', "{time}"),
            13 | 16 => assert_eq!(*byte, b':', "{time}"),
            19 => assert_eq!(*byte, b'.', "{time}"),
            23 => assert_eq!(*byte, b'Z', "{time}"),
            _ => assert!(byte.is_ascii_digit(), "{time}"),
        }
    }
    let year: u32 = time[..4].parse().unwrap();
    assert!((2025..2100).contains(&year), "{time}");
}

#[test]
fn under_the_journal_a_line_carries_its_syslog_priority() {
    let server = Server::start(&[], &[], true);
    Client::connect(server.addr, "/ws/echo").close();
    let line = server.line_with("connected from");
    assert!(line.starts_with("<6>"), "{line}");
    assert!(!line.contains("switchboard: info"), "{line}");
}

#[test]
fn rust_log_debug_shows_debug_lines() {
    let server = Server::start(
        &["--handshake-timeout-ms", "50"],
        &[("RUST_LOG", "switchboard=debug")],
        false,
    );
    // Connects and says nothing: the handshake deadline passes.
    let silent = TcpStream::connect(server.addr).expect("connect");
    let line = server.line_with("no complete request before the handshake deadline");
    assert!(line.contains(" switchboard: debug: "), "{line}");
    drop(silent);
}

#[test]
fn at_debug_every_http_request_and_its_answer_are_logged_without_the_query() {
    let server = Server::start(&["--log-level", "debug"], &[], false);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /healthz?token=s3cret HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let request = server.line_with("request=\"GET /healthz\"");
    assert!(
        request.contains(" switchboard: debug: peer=127.0.0.1:"),
        "{request}"
    );
    assert!(!request.contains("s3cret"), "{request}");
    let status = server.line_with("status=200");
    assert!(status.contains("peer=127.0.0.1:"), "{status}");
}
