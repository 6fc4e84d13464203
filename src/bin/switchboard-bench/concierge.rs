//! The concierge subset the bench speaks, and the stamp in its messages.

use std::io;
use std::time::Instant;

use serde_json::{json, Value};
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Error as WsError, Message};

use crate::client::SETUP_TIMEOUT;
use crate::{Res, Socket};

/// The concierge protocol version every client announces.
pub const PROTOCOL_VERSION: &str = "0.1.0";

/// The key in `data` whose value is the send time. Receivers look for it
/// from the end of the frame, where `data` is, instead of parsing the frame:
/// switchboard's MESSAGE has a long `origin` before it.
pub const STAMP_KEY: &str = "\"bench_t\":";

pub fn send_json(ws: &mut Socket, value: &Value) -> Res<()> {
    ws.send(Message::text(value.to_string()))?;
    Ok(())
}

pub fn identify(ws: &mut Socket, name: &str) -> Res<()> {
    let identify = json!({"type": "IDENTIFY", "name": name, "version": PROTOCOL_VERSION});
    send_json(ws, &identify)?;
    expect(ws, "HELLO")
}

pub fn create_group(ws: &mut Socket, group: &str) -> Res<()> {
    send_json(ws, &json!({"type": "GROUP_CREATE", "name": group}))?;
    expect(ws, "GROUP_CREATED")
}

pub fn subscribe(ws: &mut Socket, group: &str) -> Res<()> {
    send_json(ws, &json!({"type": "SELF_SUBSCRIBE", "name": group}))?;
    expect(ws, "SUBSCRIBED")
}

/// Reads until the payload `wanted` arrives: a `type` (HELLO) or a STATUS
/// `code` (SUBSCRIBED). Other clients' traffic is skipped, but a STATUS
/// with a `seq` answers one of our own frames, so any other one is an error.
pub fn expect(ws: &mut Socket, wanted: &str) -> Res<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while !answers(&read_text(ws, deadline)?, wanted)? {}
    Ok(())
}

/// Whether `text` is the reply `wanted` (see [`expect`]); an error if it
/// is a reply to one of our frames but another one.
pub fn answers(text: &str, wanted: &str) -> Res<bool> {
    let reply: Value = serde_json::from_str(text)?;
    let kind = reply["type"].as_str().unwrap_or_default();
    let name = match kind {
        "STATUS" => reply["code"].as_str().unwrap_or_default(),
        _ => kind,
    };
    if name == wanted {
        return Ok(true);
    }
    if kind == "STATUS" && reply.get("seq").is_some() {
        return Err(format!("expected {wanted}, got {}", abbreviate(text)).into());
    }
    Ok(false)
}

/// The next text message, by `deadline`.
pub fn read_text(ws: &mut Socket, deadline: Instant) -> Res<String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out waiting for the server".into());
        }
        ws.get_ref().set_read_timeout(Some(left))?;
        match ws.read() {
            Ok(Message::Text(text)) => return Ok(text.as_str().to_owned()),
            Ok(Message::Close(frame)) => {
                return Err(format!("server closed: {}", describe_close(frame)).into())
            }
            Ok(_) => {} // pings (answered by tungstenite), pongs, binary
            Err(WsError::Io(e)) if is_timeout(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

pub fn describe_close(frame: Option<CloseFrame>) -> String {
    match frame {
        Some(frame) => format!("{} {}", u16::from(frame.code), frame.reason),
        None => "no close code".into(),
    }
}

pub fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The first 200 characters: enough to recognize a reply in an error.
pub fn abbreviate(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// A message's `data`: its send time (ns since the shared clock's start) and
/// sequence number, padded with `x`s to `size` bytes of JSON.
pub fn data_json(sent_ns: u64, seq: u64, size: usize) -> String {
    let head = format!(r#"{{"bench_t":{sent_ns},"bench_seq":{seq},"pad":""#);
    let pad = size.saturating_sub(head.len() + 2);
    format!(r#"{head}{}"}}"#, "x".repeat(pad))
}

/// A concierge MESSAGE to a group. Group names are `[A-Za-z0-9_]`, so they
/// need no escaping.
pub fn group_message(group: &str, data: &str) -> String {
    format!(r#"{{"type":"MESSAGE","target":{{"type":"GROUP","group":"{group}"}},"data":{data}}}"#)
}

/// The send time in a delivered message, found by scanning from the end
/// (switchboard puts `data` last, after a long `origin`). Tolerates
/// whitespace after the colon, as other servers' JSON encoders write it.
/// Over bytes, so that both kinds of receivers use this one function: the
/// event-driven one does not make a `str` of each message.
pub fn stamp_of(text: &[u8]) -> Option<u64> {
    let key = STAMP_KEY.as_bytes();
    let at = text.windows(key.len()).rposition(|w| w == key)? + key.len();
    let rest = text[at..].trim_ascii_start();
    let end = rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Nanoseconds since the shared clock's start.
pub fn nanos_since(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
