//! A subscriber for the event-driven receiver: tungstenite does the
//! WebSocket upgrade, then the bench speaks frames itself (`frames.rs`),
//! from IDENTIFY on.
//!
//! Why not tungstenite up to SUBSCRIBED, then `into_inner`: tungstenite
//! reads in chunks, so its buffer may already hold what followed the reply
//! (a ping, a first delivery, half of one), and `into_inner` drops that
//! buffer. Reading the replies with the bench's own parser leaves nothing
//! behind: whatever follows them stays in `early`, for the receiver. The
//! one buffer tungstenite still fills is the handshake's, and [`Tee`] keeps
//! a copy of what it read, so the bytes after the HTTP response are not
//! lost either.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;

use serde_json::{json, Value};

use crate::client::{client_config, open_tcp, upgrade, ConnectError, Target};
use crate::concierge::{answers, PROTOCOL_VERSION};
use crate::frames::{client_frame, Frame, FrameReader, CLOSE, PONG, TEXT};
use crate::Res;

/// What a subscriber's socket brought before its receiver started.
pub enum Early {
    Text(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// A connection past the upgrade, with its parser and what arrived after
/// the last reply the setup waited for.
pub struct RawConn {
    pub stream: TcpStream,
    pub reader: FrameReader,
    pub early: VecDeque<Early>,
}

impl RawConn {
    /// Connects and upgrades; nothing else (the baseline's clients).
    pub fn connect(target: &Target) -> Result<RawConn, ConnectError> {
        let ws = upgrade(target, Tee::new(open_tcp(target)?), client_config(4096))?;
        let Tee { stream, seen } = ws.into_inner();
        let mut conn = RawConn {
            stream,
            reader: FrameReader::default(),
            early: VecDeque::new(),
        };
        conn.take(after_response(&seen))?;
        Ok(conn)
    }

    /// Connects, identifies as `name` and subscribes to `group`.
    pub fn join(target: &Target, name: &str, group: &str) -> Result<RawConn, ConnectError> {
        let mut conn = RawConn::connect(target)?;
        let identify = json!({"type": "IDENTIFY", "name": name, "version": PROTOCOL_VERSION});
        conn.request(&identify, "HELLO")?;
        conn.request(
            &json!({"type": "SELF_SUBSCRIBE", "name": group}),
            "SUBSCRIBED",
        )?;
        Ok(conn)
    }

    /// Sends `value` and waits (blocking, under the setup's timeout) for
    /// the reply `wanted`, as [`crate::concierge::expect`] does: other
    /// traffic before it is skipped; what comes after it is kept.
    fn request(&mut self, value: &Value, wanted: &str) -> Res<()> {
        self.stream
            .write_all(&client_frame(TEXT, value.to_string().as_bytes()))?;
        let mut scratch = vec![0; 16 * 1024];
        loop {
            while let Some(early) = self.early.pop_front() {
                match early {
                    Early::Text(text) => {
                        if answers(&String::from_utf8_lossy(&text), wanted)? {
                            return Ok(());
                        }
                    }
                    Early::Close(code) => {
                        return Err(format!("server closed: {}", describe(&code)).into())
                    }
                }
            }
            // The stream's read timeout is the setup's (client::open_tcp).
            let read = self.stream.read(&mut scratch)?;
            if read == 0 {
                return Err(format!("connection closed while waiting for {wanted}").into());
            }
            self.take(&scratch[..read])?;
        }
    }

    /// Parses bytes read during setup into `early`, answering pings at once
    /// (the socket still blocks here).
    fn take(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut pongs = Vec::new();
        let early = &mut self.early;
        self.reader
            .feed(bytes, &mut |frame| match frame {
                Frame::Text(text) => early.push_back(Early::Text(text.to_vec())),
                Frame::Close(code) => early.push_back(Early::Close(code)),
                Frame::Ping(payload) => pongs.push(client_frame(PONG, payload)),
            })
            .map_err(io::Error::other)?;
        for pong in pongs {
            self.stream.write_all(&pong)?;
        }
        Ok(())
    }

    /// Sends a close frame without waiting for the answer, as
    /// [`crate::client::close_quietly`] does; then the socket is closed.
    /// On a non-blocking socket whose send buffer is full the frame is
    /// dropped: the server sees the connection end either way.
    pub fn close_quietly(mut self) {
        let _ = self.stream.write(&client_frame(CLOSE, &[]));
    }
}

/// A close frame's code and reason, as the threaded receivers word it.
pub fn describe(code: &Option<(u16, String)>) -> String {
    match code {
        Some((code, reason)) => format!("{code} {reason}"),
        None => "no close code".into(),
    }
}

/// A stream that keeps a copy of everything read through it: the bytes of
/// the handshake tungstenite read past the end of the HTTP response.
struct Tee {
    stream: TcpStream,
    seen: Vec<u8>,
}

impl Tee {
    fn new(stream: TcpStream) -> Tee {
        Tee {
            stream,
            seen: Vec::new(),
        }
    }
}

/// What came after the HTTP response's headers (a 101 has no body).
fn after_response(seen: &[u8]) -> &[u8] {
    seen.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[], |end| &seen[end + 4..])
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.stream.read(buf)?;
        self.seen.extend_from_slice(&buf[..read]);
        Ok(read)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
