//! Just enough HTTP/1.1: reading a request head under a wall-clock
//! deadline, and writing a complete response. The head, once read, is a
//! [`ClientRequest`] (in `wire`, where the dialects read it too).
//!
//! Every plain HTTP exchange is one request and one response followed by
//! `Connection: close`; there is no keep-alive, so a response is always
//! framed by its `Content-Length` and the end of the connection.

use std::io::{self, Read, Write};

use std::time::Instant;

use super::stream::Stream;
use crate::wire::request::{BodyError, ClientRequest, HeadError};

pub use crate::wire::request::MAX_HEAD_BYTES;

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The deadline passed before the head was complete.
    TimedOut,
    /// The head grew past [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The bytes are not an HTTP request.
    Malformed(String),
    /// The client closed the connection first.
    Closed,
    /// The socket failed.
    Io(io::Error),
}

impl From<HeadError> for ReadError {
    fn from(error: HeadError) -> ReadError {
        match error {
            HeadError::TooLarge => ReadError::TooLarge,
            HeadError::Malformed(why) => ReadError::Malformed(why),
        }
    }
}

/// How much is read at a time; the buffer starts at twice this, past
/// glibc's per-thread cache of small blocks (see [`ClientRequest`]).
const READ_CHUNK: usize = 1024;

/// Reads one request head from `stream`, giving up at `deadline` however
/// the bytes trickle in: each read may wait only for the time that is left.
pub fn read_request(mut stream: &Stream, deadline: Instant) -> Result<ClientRequest, ReadError> {
    // Read straight into the buffer the request will keep.
    let mut buffer = Vec::with_capacity(2 * READ_CHUNK);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::TimedOut);
        }
        stream.set_read_timeout(Some(left)).map_err(ReadError::Io)?;
        let filled = buffer.len();
        buffer.resize(filled + READ_CHUNK, 0);
        let read = stream.read(&mut buffer[filled..]);
        buffer.truncate(filled + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(e) if is_timeout_or_interrupt(&e) => continue, // the loop checks the deadline
            Err(e) => return Err(ReadError::Io(e)),
        }
        if let Some(request) = ClientRequest::take(&mut buffer)? {
            return Ok(request);
        }
    }
}

fn is_timeout_or_interrupt(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Parses a complete head, or says that more bytes are needed (`None`):
/// what `read_request` does with the bytes it has read.
#[cfg(test)]
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<ClientRequest>, ReadError> {
    Ok(ClientRequest::parse(bytes)?)
}

/// Reads the body announced by `Content-Length` (none: empty), at most
/// `limit` bytes, by `deadline`.
pub fn read_body(
    mut stream: &Stream,
    request: &ClientRequest,
    limit: usize,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    if request.header("transfer-encoding").is_some() {
        return Err(BodyError::LengthRequired);
    }
    let length = content_length(request)?;
    if length > limit {
        return Err(BodyError::TooLarge);
    }
    let mut body = request.leftover.clone();
    body.truncate(length);
    // curl and others hold back a large body until the server says it wants
    // it; without this answer they wait a second before sending anyway.
    let wants_continue =
        request.minor_version() >= 1 && request.has_token("expect", "100-continue");
    if body.len() < length && wants_continue {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| BodyError::Incomplete)?;
    }
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(BodyError::Incomplete);
        }
        let wanted = (length - body.len()).min(chunk.len());
        match stream.read(&mut chunk[..wanted]) {
            Ok(0) => return Err(BodyError::Incomplete),
            Ok(read) => body.extend_from_slice(&chunk[..read]),
            Err(e) if is_timeout_or_interrupt(&e) => {}
            Err(_) => return Err(BodyError::Incomplete),
        }
    }
    Ok(body)
}

/// The body length from `Content-Length`: digits only, and every copy of
/// the header the same (RFC 9110 §8.6); none means no body.
fn content_length(request: &ClientRequest) -> Result<usize, BodyError> {
    let mut lengths = request.headers_named("content-length").map(str::trim);
    let Some(first) = lengths.next() else {
        return Ok(0);
    };
    let digits = !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit());
    if !digits || lengths.any(|other| other != first) {
        return Err(BodyError::BadLength);
    }
    first.parse().map_err(|_| BodyError::TooLarge)
}

/// A complete HTTP response, always sent with `Connection: close`.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers (`Content-Length` and `Connection` are added).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// An answer to HEAD: the head a GET would get, without the body.
    pub head_only: bool,
}

impl Response {
    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
            head_only: false,
        }
    }

    /// An `application/json` response with `body` serialized.
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: format!("{body}\n").into_bytes(),
            head_only: false,
        }
    }

    /// Sets a header, replacing any of the same name: a response never
    /// carries one header twice.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name, value.into()));
        self
    }

    /// Writes the response, head and body, in one go. `Connection` always
    /// says `close` (there is no keep-alive), joined to what the response
    /// set (`upgrade`, on a 426) rather than sent twice.
    pub fn write_to(&self, mut out: impl Write) -> io::Result<()> {
        let mut bytes = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let mut connection = String::from("close");
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("connection") {
                connection = format!("{value}, close");
                continue;
            }
            bytes.push_str(&format!("{name}: {value}\r\n"));
        }
        bytes.push_str(&format!(
            "Content-Length: {}\r\nConnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let mut bytes = bytes.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        out.write_all(&bytes)?;
        out.flush()
    }
}

/// The reason phrase of `status`, from the `http` crate's table (which
/// tungstenite already links), so that every status this server sends,
/// 401 and 403 included, has its registered phrase.
fn reason(status: u16) -> &'static str {
    tungstenite::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_head_and_keeps_what_follows() {
        let bytes = b"GET /ws/echo?x=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\n\x81\x00";
        let request = parse(bytes).unwrap().unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/ws/echo");
        assert_eq!(request.query(), Some("x=1"));
        assert_eq!(request.minor_version(), 1);
        assert_eq!(request.header("HOST"), Some("a"));
        assert!(request.has_token("connection", "upgrade"));
        assert!(!request.has_token("connection", "close"));
        assert_eq!(request.leftover, b"\x81\x00");
    }

    #[test]
    fn partial_and_malformed_heads() {
        assert!(parse(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
        assert!(matches!(
            parse(b"\x16\x03\x01junk\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
    }

    #[test]
    fn response_has_length_and_close() {
        let mut out = Vec::new();
        Response::text(404, "no")
            .with_header("X-A", "b")
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("X-A: b\r\n"));
        assert!(text.contains("Content-Length: 2\r\nConnection: close\r\n\r\nno"));
    }
}
