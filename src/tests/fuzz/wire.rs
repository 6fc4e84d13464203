//! One connection, in-process: a client's message goes through its
//! dialect's session (as on the reader thread), the router and the
//! renderer (as on the router thread), and comes back as the frames the
//! client would read. No sockets and no threads, so a property can try
//! thousands of messages a second and check every answer.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::config::Config;
use crate::dialect::{self, Dialect, Received, Session, Step};
use crate::router::{ConnId, Event, Router};
use crate::wire::frame::Frame;
use crate::wire::request::ClientRequest;

/// A frame as the client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// A text frame (checked to be UTF-8).
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A close frame: its code and reason.
    Close(u16, String),
}

impl Heard {
    /// The text frame's JSON; fails the case if it is not JSON.
    ///
    /// A client's data passes through verbatim, and JSON's grammar allows
    /// numbers no `f64` holds (`1e999`) and lone surrogate escapes, which
    /// serde_json's `Value` refuses. So when the whole text is valid JSON
    /// but not a `Value`, the top level is kept and such members are left
    /// as strings of their raw text.
    pub fn json(&self) -> Value {
        let Heard::Text(text) = self else {
            panic!("expected a text frame, got {self:?}")
        };
        if let Ok(value) = serde_json::from_str(text) {
            return value;
        }
        if let Err(e) = serde_json::from_str::<Box<RawValue>>(text) {
            panic!("the server sent text that is not JSON ({e}): {text}");
        }
        let member = |raw: Box<RawValue>| {
            serde_json::from_str(raw.get()).unwrap_or_else(|_| Value::String(raw.get().into()))
        };
        if let Ok(object) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text) {
            Value::Object(object.into_iter().map(|(k, v)| (k, member(v))).collect())
        } else if let Ok(array) = serde_json::from_str::<Vec<Box<RawValue>>>(text) {
            Value::Array(array.into_iter().map(member).collect())
        } else {
            Value::String(text.clone())
        }
    }
}

/// Reads back a frame the server would write (unmasked, one fragment).
pub fn heard(frame: &Frame) -> Heard {
    let bytes = frame.to_vec();
    let opcode = bytes[0] & 0x0f;
    let (len, start) = match bytes[1] & 0x7f {
        126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
        127 => {
            let mut len = [0u8; 8];
            len.copy_from_slice(&bytes[2..10]);
            (u64::from_be_bytes(len) as usize, 10)
        }
        n => (usize::from(n), 2),
    };
    let payload = &bytes[start..];
    assert_eq!(
        payload.len(),
        len,
        "the frame's length header is its length"
    );
    match opcode {
        0x1 => Heard::Text(
            String::from_utf8(payload.to_vec()).expect("the server's text frames are UTF-8"),
        ),
        0x2 => Heard::Binary(payload.to_vec()),
        0x8 => {
            assert!(payload.len() >= 2, "a close frame without a code");
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason = String::from_utf8(payload[2..].to_vec()).expect("a UTF-8 close reason");
            assert!(payload.len() <= 125, "a close frame over 125 bytes");
            Heard::Close(code, reason)
        }
        other => panic!("unexpected opcode {other:#x} from a session"),
    }
}

/// A request head for `path` with `headers`, as the handshake parsed it.
/// Any text goes in, made into what a head can carry: in the target, bytes
/// a request line cannot hold are percent-encoded (and so read back by
/// `query_pairs` as they were); in a value, control characters become
/// spaces, and the spaces at either end are trimmed, as the parser does.
pub fn request(path: &str, query: Option<&str>, headers: &[(&str, &str)]) -> ClientRequest {
    let mut target = escape_target(path);
    if let Some(query) = query {
        target.push('?');
        target.push_str(&escape_target(query));
    }
    let values: Vec<String> = headers
        .iter()
        .map(|(_, value)| value.replace(|c: char| c.is_ascii_control() && c != '\t', " "))
        .collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .zip(&values)
        .map(|((name, _), value)| (*name, value.as_str()))
        .collect();
    ClientRequest::for_test("GET", &target, &headers)
}

/// `text` with the bytes a request target cannot hold (controls, space,
/// DEL) percent-encoded.
fn escape_target(text: &str) -> String {
    let mut escaped = String::new();
    for &byte in text.as_bytes() {
        match byte {
            0..=b' ' | 0x7f => escaped.push_str(&format!("%{byte:02X}")),
            _ => escaped.push(char::from(byte)),
        }
    }
    escaped
}

/// One open connection of one dialect, alone in a hub of its own.
pub struct Wire {
    router: Router,
    session: Session,
    conn: ConnId,
    dialect: Dialect,
    now: Instant,
    /// Set once the connection is closed, by either side.
    closed: bool,
}

impl Wire {
    /// Opens a `dialect` connection made with `request` on a server with
    /// `config`; returns it and what the client hears at once.
    pub fn open(dialect: Dialect, config: &Config, request: &ClientRequest) -> (Wire, Vec<Heard>) {
        let conn = ConnId(1);
        let mut wire = Wire {
            router: Router::new(crate::server::settings(config)),
            session: Session::new(dialect, conn, config, request, Default::default()),
            conn,
            dialect,
            now: Instant::now(),
            closed: false,
        };
        let open = crate::router::Command::Open { conn, dialect };
        let mut heard = wire.forward(open);
        for step in wire.session.on_open() {
            heard.extend(wire.take(step));
        }
        (wire, heard)
    }

    /// Whether the connection has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Sends one message; returns every frame the client hears in answer.
    /// Sending on a closed connection is a mistake of the property.
    pub fn send(&mut self, received: Received<'_>) -> Vec<Heard> {
        assert!(!self.closed, "the property sent on a closed connection");
        let step = self.session.on_message(received);
        self.take(step)
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) -> Vec<Heard> {
        self.send(Received::Text(text))
    }

    /// Carries out one step as the reader thread does.
    fn take(&mut self, step: Step) -> Vec<Heard> {
        match step {
            Step::Forward(command) => self.forward(command),
            Step::Reply(frame) => vec![heard(&frame)],
            Step::Close(close) => {
                self.closed = true;
                let heard = heard(&Frame::close(&close));
                // As the reader does when it ends: the router forgets it.
                self.forward(crate::router::Command::Closed { conn: self.conn });
                vec![heard]
            }
        }
    }

    /// Hands `command` to the router and renders what it sends this
    /// connection, as the router thread's delivery does.
    fn forward(&mut self, command: crate::router::Command) -> Vec<Heard> {
        let deliveries = self.router.handle(command, self.now);
        let mut heard_back = Vec::new();
        for delivery in deliveries {
            if !delivery.to.contains(&self.conn) {
                continue;
            }
            let addressee = self.router.addressee(self.conn);
            let frame = dialect::render(self.dialect, &delivery.event)
                .and_then(|rendered| rendered.frame_for(addressee));
            if let Event::Disconnect(why) = &delivery.event {
                if let Some(last_words) = dialect::farewell(self.dialect, why, addressee) {
                    heard_back.push(heard(&last_words));
                }
                self.closed = true;
            }
            heard_back.extend(frame.as_ref().map(heard));
        }
        heard_back
    }
}
