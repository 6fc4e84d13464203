//! Server-to-client WebSocket frames, encoded once and shared.
//!
//! Frames a server sends are never masked, so the bytes of one message are
//! the same for every recipient. A broadcast is therefore encoded a single
//! time into a [`Frame`] whose bytes (header and payload) sit behind an
//! `Arc`: pushing it onto a thousand outboxes copies a pointer a thousand
//! times, and each writer thread hands the very same bytes to the kernel.
//!
//! Some protocols put the recipient's own details in every message
//! (channels' `clientID` and `latency`). Such a frame is *spliced*: a small
//! head of its own (the frame header and the personal fields) before a
//! shared body (the payload, encoded once), written together with one
//! `writev`.

use std::sync::Arc;

/// One complete, ready-to-write WebSocket frame: an optional personal head
/// and a shared body, which together are the bytes on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The frame's first bytes, when they differ per recipient.
    head: Option<Box<[u8]>>,
    /// The rest (for an unspliced frame, all of it), shared.
    shared: Arc<[u8]>,
}

/// The opcodes this server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opcode {
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// A WebSocket close frame's content: a status code and a short reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    /// The close status code (RFC 6455 §7.4, or a protocol's own 4000-4999).
    pub code: u16,
    /// A human-readable reason; cut to fit the 125-byte control frame limit.
    pub reason: String,
}

impl Close {
    /// A close with this code and reason.
    pub fn new(code: u16, reason: impl Into<String>) -> Close {
        Close {
            code,
            reason: reason.into(),
        }
    }
}

/// The largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

impl Frame {
    /// A text frame holding `text`.
    pub fn text(text: &str) -> Frame {
        Frame::encode(Opcode::Text, text.as_bytes())
    }

    /// A binary frame holding `bytes`.
    pub fn binary(bytes: &[u8]) -> Frame {
        Frame::encode(Opcode::Binary, bytes)
    }

    /// A ping (the server's keepalive), with a payload of at most 125 bytes.
    pub fn ping(payload: &[u8]) -> Frame {
        Frame::encode(
            Opcode::Ping,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
        )
    }

    /// The pong answering a ping with this payload (at most 125 bytes: the
    /// reader only ever sees valid pings, whose payloads are that short).
    pub fn pong(payload: &[u8]) -> Frame {
        Frame::encode(
            Opcode::Pong,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
        )
    }

    /// A close frame. The reason is cut (on a character boundary) so that
    /// code and reason fit in one control frame.
    pub fn close(close: &Close) -> Frame {
        let mut end = close.reason.len().min(MAX_CONTROL_PAYLOAD - 2);
        while !close.reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = Vec::with_capacity(2 + end);
        payload.extend_from_slice(&close.code.to_be_bytes());
        payload.extend_from_slice(&close.reason.as_bytes()[..end]);
        Frame::encode(Opcode::Close, &payload)
    }

    /// The answer to a client's close frame: its code echoed back, or an
    /// empty close frame if it sent none (RFC 6455 §5.5.1).
    pub fn close_reply(code: Option<u16>) -> Frame {
        match code {
            Some(code) => Frame::close(&Close::new(code, "")),
            None => Frame::encode(Opcode::Close, &[]),
        }
    }

    /// A text frame whose payload is `personal` followed by `shared`:
    /// `shared` (already valid UTF-8 text) is not copied.
    pub fn spliced_text(personal: &str, shared: &Arc<[u8]>) -> Frame {
        let mut head = header(Opcode::Text, personal.len() + shared.len());
        head.extend_from_slice(personal.as_bytes());
        Frame {
            head: Some(head.into()),
            shared: shared.clone(),
        }
    }

    /// The frame's bytes when they are the same for every recipient (it is
    /// not spliced): what the router's spool keeps once for all of them.
    pub fn unspliced(&self) -> Option<&Arc<[u8]>> {
        match self.head {
            None => Some(&self.shared),
            Some(_) => None,
        }
    }

    /// The frame's bytes, in the order they go on the wire: one or two
    /// slices.
    pub fn slices(&self) -> impl Iterator<Item = &[u8]> {
        self.head.as_deref().into_iter().chain([&*self.shared])
    }

    /// What is left of the frame once its first `written` bytes are on the
    /// wire (a copy of the rest: a write-through cut short is rare).
    #[must_use]
    pub fn rest_after(&self, written: usize) -> Frame {
        let rest: Vec<u8> = self.slices().flatten().skip(written).copied().collect();
        Frame {
            head: None,
            shared: rest.into(),
        }
    }

    /// The frame's bytes in one buffer (a copy; for tests and rare paths).
    pub fn to_vec(&self) -> Vec<u8> {
        self.slices().flatten().copied().collect()
    }

    /// How many bytes the frame occupies on the wire.
    pub fn len(&self) -> usize {
        self.slices().map(<[u8]>::len).sum()
    }

    /// Always false: every frame has at least a two-byte header.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn encode(opcode: Opcode, payload: &[u8]) -> Frame {
        let mut bytes = header(opcode, payload.len());
        bytes.extend_from_slice(payload);
        Frame {
            head: None,
            shared: bytes.into(),
        }
    }
}

/// A frame header for a payload of `len` bytes, with room to append it.
// Each arm's range proves the cast in it.
#[allow(clippy::cast_possible_truncation)]
fn header(opcode: Opcode, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len.min(4096) + 10);
    bytes.push(0x80 | opcode as u8); // FIN: this server never fragments
    match len {
        0..=125 => bytes.push(len as u8),
        126..=0xFFFF => {
            bytes.push(126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            bytes.push(127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    use tungstenite::protocol::frame::Frame as TFrame;
    use tungstenite::protocol::CloseFrame;

    fn tungstenite_bytes(frame: TFrame) -> Vec<u8> {
        let mut out = Vec::new();
        frame.format(&mut out).unwrap();
        out
    }

    #[test]
    fn text_frames_match_tungstenite_at_every_length_class() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let text = "x".repeat(len);
            let theirs = TFrame::message(text.clone(), OpCode::Data(Data::Text), true);
            assert_eq!(
                Frame::text(&text).to_vec(),
                tungstenite_bytes(theirs),
                "len {len}"
            );
        }
    }

    #[test]
    fn close_frame_matches_tungstenite_and_cuts_long_reasons_on_char_boundaries() {
        let close = Close::new(4004, "identify timeout");
        let theirs = TFrame::close(Some(CloseFrame {
            code: CloseCode::from(4004),
            reason: "identify timeout".into(),
        }));
        assert_eq!(Frame::close(&close).to_vec(), tungstenite_bytes(theirs));

        let long = Close::new(1000, "é".repeat(100));
        let frame = Frame::close(&long).to_vec();
        let payload = &frame[2..];
        assert!(payload.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
        assert_eq!(payload.len(), 2 + 122);
    }

    #[test]
    fn pong_echoes_the_payload() {
        assert_eq!(Frame::pong(b"abc").to_vec(), [0x8A, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn spliced_frames_equal_whole_ones() {
        for shared_len in [0, 100, 200, 70000] {
            let shared: Arc<[u8]> = "s".repeat(shared_len).into_bytes().into();
            let spliced = Frame::spliced_text("personal:", &shared);
            let whole = Frame::text(&format!("personal:{}", "s".repeat(shared_len)));
            assert_eq!(spliced.to_vec(), whole.to_vec());
            assert_eq!(spliced.len(), whole.len());
            assert_eq!(spliced.slices().count(), 2);
        }
    }
}
