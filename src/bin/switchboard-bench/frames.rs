//! The WebSocket frames of the event-driven receivers, by hand: a parser of
//! what a server sends (RFC 6455 §5.2, unmasked, no extensions) and the few
//! masked frames a client sends back (text, pong, close).
//!
//! Written here rather than borrowed from tungstenite because tungstenite
//! wants to own a blocking or non-blocking stream per socket and copies
//! every byte into its own buffer (zero-filled first, see
//! `RECEIVER_READ_BUFFER`); one thread watching a thousand sockets instead
//! reads into one scratch buffer and parses frames where they landed. Text
//! is not checked for valid UTF-8: the receivers only look for the stamp
//! near the end of each message, and checking 40 KB per delivery would
//! charge the generator for work no figure measures (conformance is
//! Autobahn's job, `.ci/autobahn`).

use std::fmt;

/// A message larger than this is a broken stream, not a delivery: it would
/// otherwise make the parser wait (and buffer) forever.
const MAX_MESSAGE: usize = 64 << 20;

/// What the parser hands over, in the order it arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole text message: one frame, or the fragments of one joined.
    Text(&'a [u8]),
    /// A ping's payload, to echo in a pong.
    Ping(&'a [u8]),
    /// The server's close frame: its code and reason, if it gave them.
    Close(Option<(u16, String)>),
}

/// A stream that is not a server's WebSocket frames.
#[derive(Debug, PartialEq, Eq)]
pub struct WireError(&'static str);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed frame from the server: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// The parser of one connection's incoming bytes. Feed it whatever the
/// socket gave; it keeps only an incomplete frame at the end and the
/// fragments of a message not yet finished.
#[derive(Default)]
pub struct FrameReader {
    /// The start of a frame whose rest has not arrived yet.
    partial: Vec<u8>,
    /// The fragments so far of an unfinished message, and whether it is
    /// text (binary messages are reassembled only to be skipped).
    fragments: Vec<u8>,
    fragmented: Option<bool>,
}

impl FrameReader {
    /// Parses `input` (what the socket just gave), calling `on` for every
    /// message complete by its end. Frames that arrive whole are handed
    /// over from `input` itself, without a copy; only a frame cut by the
    /// end of a read is copied, to be completed by the next.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        on: &mut dyn FnMut(Frame<'_>),
    ) -> Result<(), WireError> {
        // First complete the frame left over from the last read, copying
        // no more of `input` than it needs.
        while !self.partial.is_empty() {
            let need = needed(&self.partial)?;
            if self.partial.len() < need {
                if input.is_empty() {
                    return Ok(());
                }
                let take = (need - self.partial.len()).min(input.len());
                self.partial.extend_from_slice(&input[..take]);
                input = &input[take..];
                continue;
            }
            let frame = std::mem::take(&mut self.partial);
            self.parse(&frame, on)?;
        }
        let used = self.parse(input, on)?;
        self.partial.extend_from_slice(&input[used..]);
        Ok(())
    }

    /// Parses every complete frame at the start of `bytes`; returns how
    /// many bytes they took.
    fn parse(&mut self, bytes: &[u8], on: &mut dyn FnMut(Frame<'_>)) -> Result<usize, WireError> {
        let mut at = 0;
        while let Some((head, payload_len)) = header(&bytes[at..])? {
            let Some(end) = (at + head).checked_add(payload_len) else {
                return Err(WireError("length overflows"));
            };
            if end > bytes.len() {
                break;
            }
            let (fin, opcode) = (bytes[at] & 0x80 != 0, bytes[at] & 0x0F);
            self.frame(fin, opcode, &bytes[at + head..end], on)?;
            at = end;
        }
        Ok(at)
    }

    /// One whole frame.
    fn frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        on: &mut dyn FnMut(Frame<'_>),
    ) -> Result<(), WireError> {
        match opcode {
            // Continuation.
            0x0 => {
                let Some(text) = self.fragmented else {
                    return Err(WireError("continuation without a first fragment"));
                };
                if self.fragments.len() + payload.len() > MAX_MESSAGE {
                    return Err(WireError("message too large"));
                }
                self.fragments.extend_from_slice(payload);
                if fin {
                    if text {
                        on(Frame::Text(&self.fragments));
                    }
                    self.fragments.clear();
                    self.fragmented = None;
                }
            }
            // Text or binary: a new message.
            0x1 | 0x2 => {
                if self.fragmented.is_some() {
                    return Err(WireError("new message inside a fragmented one"));
                }
                let text = opcode == 0x1;
                if !fin {
                    self.fragmented = Some(text);
                    self.fragments.extend_from_slice(payload);
                } else if text {
                    on(Frame::Text(payload));
                }
            }
            0x8 => on(Frame::Close(close_reason(payload)?)),
            0x9 => on(Frame::Ping(payload)),
            0xA => {} // an unsolicited pong: nothing to do
            _ => return Err(WireError("reserved opcode")),
        }
        Ok(())
    }
}

/// The size of the frame header at the start of `bytes` and the payload's
/// length, or `None` if the header is not all there yet.
fn header(bytes: &[u8]) -> Result<Option<(usize, usize)>, WireError> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(WireError("reserved bits set (no extension was agreed)"));
    }
    if b1 & 0x80 != 0 {
        return Err(WireError("masked (servers must not mask)"));
    }
    let control = b0 & 0x08 != 0;
    let (header, len) = match b1 & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[a, b]) => (4, u64::from(u16::from_be_bytes([a, b]))),
            _ => return Ok(None),
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(len) => (10, u64::from_be_bytes(len)),
            None => return Ok(None),
        },
        short => (2, u64::from(short)),
    };
    if control && (b0 & 0x80 == 0 || len > 125) {
        return Err(WireError("fragmented or long control frame"));
    }
    match usize::try_from(len) {
        Ok(len) if len <= MAX_MESSAGE => Ok(Some((header, len))),
        _ => Err(WireError("message too large")),
    }
}

/// How many bytes the frame at the start of `bytes` takes, as far as its
/// first bytes tell: the header's size until the header is all there.
fn needed(bytes: &[u8]) -> Result<usize, WireError> {
    let Some(&b1) = bytes.get(1) else {
        return Ok(2);
    };
    Ok(match header(bytes)? {
        Some((header, len)) => header + len,
        None => match b1 & 0x7F {
            126 => 4,
            127 => 10,
            _ => 2,
        },
    })
}

/// A close frame's payload: nothing, or a code and a UTF-8 reason.
fn close_reason(payload: &[u8]) -> Result<Option<(u16, String)>, WireError> {
    match payload {
        [] => Ok(None),
        [a, b, reason @ ..] => Ok(Some((
            u16::from_be_bytes([*a, *b]),
            String::from_utf8_lossy(reason).into_owned(),
        ))),
        [_] => Err(WireError("one-byte close payload")),
    }
}

/// A masked client frame (FIN set) of `opcode` carrying `payload`. The
/// masking key is zero: the mask exists so that a script in a browser
/// cannot make bytes of its choosing appear on the wire to a proxy; a load
/// generator on loopback has neither, and the server unmasks a zero key
/// like any other.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    encode(0x80 | opcode, true, payload)
}

/// A frame whose first byte is `first`, carrying `payload`, masked with a
/// zero key when `masked` (client to server) and bare otherwise.
fn encode(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(first);
    match payload.len() {
        len @ 0..=125 => frame.push(mask_bit | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        frame.extend_from_slice(&[0; 4]);
    }
    frame.extend_from_slice(payload);
    frame
}

pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PONG: u8 = 0xA;

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's frame: unmasked, with the given first byte.
    fn server_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        encode(b0, false, payload)
    }

    #[derive(Debug, PartialEq)]
    enum Seen {
        Text(Vec<u8>),
        Ping(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    /// Feeds `chunks` one after another; returns what came out.
    fn parse(chunks: &[&[u8]]) -> Result<Vec<Seen>, WireError> {
        let mut reader = FrameReader::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, &mut |frame| {
                seen.push(match frame {
                    Frame::Text(t) => Seen::Text(t.to_vec()),
                    Frame::Ping(p) => Seen::Ping(p.to_vec()),
                    Frame::Close(c) => Seen::Close(c),
                });
            })?;
        }
        Ok(seen)
    }

    #[test]
    fn frames_of_every_length_encoding_arrive_whole() {
        for len in [0, 5, 125, 126, 1000, 65535, 65536, 100_000] {
            let payload = vec![b'x'; len];
            let frame = server_frame(0x81, &payload);
            assert_eq!(parse(&[&frame]), Ok(vec![Seen::Text(payload)]), "{len}");
        }
    }

    #[test]
    fn frames_split_anywhere_still_parse() {
        let mut stream = server_frame(0x81, b"hello");
        stream.extend(server_frame(0x81, &[b'y'; 300]));
        stream.extend(server_frame(0x89, b"ping"));
        for cut in 0..stream.len() {
            let (a, b) = stream.split_at(cut);
            let seen = parse(&[a, b]).unwrap();
            assert_eq!(
                seen,
                vec![
                    Seen::Text(b"hello".to_vec()),
                    Seen::Text(vec![b'y'; 300]),
                    Seen::Ping(b"ping".to_vec()),
                ],
                "cut at {cut}"
            );
        }
        // And byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse(&bytes).unwrap().len(), 3);
    }

    #[test]
    fn fragments_join_and_control_frames_may_come_between_them() {
        let mut stream = server_frame(0x01, b"{\"a\":");
        stream.extend(server_frame(0x89, b""));
        stream.extend(server_frame(0x00, b"1"));
        stream.extend(server_frame(0x80, b"}"));
        // A fragmented binary message is skipped.
        stream.extend(server_frame(0x02, b"bin"));
        stream.extend(server_frame(0x80, b"ary"));
        assert_eq!(
            parse(&[&stream]),
            Ok(vec![
                Seen::Ping(Vec::new()),
                Seen::Text(b"{\"a\":1}".to_vec())
            ])
        );
    }

    #[test]
    fn close_frames_carry_their_code_and_reason() {
        let mut payload = 1008u16.to_be_bytes().to_vec();
        payload.extend(b"too slow");
        assert_eq!(
            parse(&[&server_frame(0x88, &payload), &server_frame(0x88, b"")]),
            Ok(vec![
                Seen::Close(Some((1008, "too slow".into()))),
                Seen::Close(None)
            ])
        );
    }

    #[test]
    fn what_a_server_must_not_send_is_an_error() {
        let masked = [0x81, 0x81, 0, 0, 0, 0, b'x'];
        assert!(parse(&[&masked]).is_err());
        assert!(parse(&[&server_frame(0xC1, b"x")]).is_err()); // RSV1
        assert!(parse(&[&server_frame(0x80, b"x")]).is_err()); // stray continuation
        assert!(parse(&[&server_frame(0x09, b"x")]).is_err()); // fragmented ping
        assert!(parse(&[&server_frame(0x83, b"x")]).is_err()); // reserved opcode
        let huge = [0x81, 127, 0x7F, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse(&[&huge]).is_err());
    }

    #[test]
    fn client_frames_are_masked_with_the_length_encoded() {
        assert_eq!(client_frame(CLOSE, b""), [0x88, 0x80, 0, 0, 0, 0]);
        let text = client_frame(TEXT, &[b'z'; 200]);
        assert_eq!(&text[..4], &[0x81, 0x80 | 126, 0, 200]);
        assert_eq!(text.len(), 4 + 4 + 200);
    }
}
