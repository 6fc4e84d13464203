//! A parsed HTTP request head, the query strings in it, and why the body
//! it announces could not be read.
//!
//! `net` reads the head and the body off the socket
//! (`net::http::read_request`, `read_body`); the dialects read the head
//! too (credentials, the channels' admission) and answer a body that did
//! not arrive (the channels' emit), so these live below both, with no I/O
//! of their own.

/// The largest request head accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 64;

/// A request head, kept as the text it arrived as.
///
/// The head stays in the buffer it was read into, and the method, path,
/// query and headers are read out of that text when asked for: one
/// allocation per request instead of a string per header. That matters
/// beyond speed: a connection's reader thread reads the request, and
/// glibc keeps the small blocks a thread frees in that thread's own cache
/// (up to 1 KiB each), where on a reader that then sits idle they would
/// stay for the life of the connection.
#[derive(Debug)]
pub struct ClientRequest {
    /// The head, from the request line to the blank line that ends it
    /// (invalid UTF-8 replaced).
    head: String,
    /// Where its parts are in `head`.
    layout: Layout,
    /// Bytes that arrived after the head: the start of a body, or the
    /// first WebSocket frames of an eager client.
    pub leftover: Vec<u8>,
}

/// Where a part of the head is, as byte offsets (a head is at most
/// [`MAX_HEAD_BYTES`] long).
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// Where `part`, which httparse found in `whole`, lies in it.
    fn of(whole: &[u8], part: &str) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Span {
            start,
            end: start + part.len(),
        }
    }
}

/// Why the bytes read so far are not a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// The head is longer than [`MAX_HEAD_BYTES`], or has more than 64
    /// header lines.
    TooLarge,
    /// The bytes are not an HTTP request; the text says where they fail.
    Malformed(String),
}

/// Where the parts of a complete head are.
#[derive(Debug)]
struct Layout {
    /// The head's length, its blank line included.
    len: usize,
    /// The method and the request target.
    method: Span,
    target: Span,
    /// Where the header lines start.
    fields: usize,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    minor_version: u8,
}

/// Finds the parts of the head at the start of `bytes`; `None` while the
/// head is incomplete.
fn layout(bytes: &[u8]) -> Result<Option<Layout>, HeadError> {
    // On the heap (2 KiB), not the stack: stack pages a reader has touched
    // stay resident for the life of its connection, and a block this size
    // is past glibc's per-thread cache, so freeing it gives it back.
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() > MAX_HEAD_BYTES => {
            return Err(HeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    // httparse fills these three whenever it reports Complete.
    let (Some(method), Some(target), Some(minor_version)) =
        (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed("incomplete request line".into()));
    };
    let target = Span::of(bytes, target);
    // The header lines start on the line after the request line's.
    let fields = bytes[target.end..len]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(len, |at| target.end + at + 1);
    Ok(Some(Layout {
        len,
        method: Span::of(bytes, method),
        target,
        fields,
        minor_version,
    }))
}

impl ClientRequest {
    /// Reads the request head at the start of `bytes`: `None` while it is
    /// incomplete. (The server reads with [`take`](Self::take), which
    /// keeps the buffer it read into.)
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Result<Option<ClientRequest>, HeadError> {
        ClientRequest::take(&mut bytes.to_vec())
    }

    /// Reads the request head at the start of `buffer`, and once it is
    /// complete takes the buffer: the head stays in it, what follows the
    /// head becomes [`leftover`](Self::leftover). `None` (and the buffer
    /// left alone) while the head is incomplete.
    pub fn take(buffer: &mut Vec<u8>) -> Result<Option<ClientRequest>, HeadError> {
        let Some(mut layout) = layout(buffer)? else {
            return Ok(None);
        };
        let mut bytes = std::mem::take(buffer);
        // Empty, and so no allocation, unless the client sent on eagerly.
        let leftover = bytes.split_off(layout.len);
        let head = match String::from_utf8(bytes) {
            Ok(head) => head,
            Err(invalid) => {
                // Replacing invalid bytes moves what follows them: find
                // the parts again, in the text as it now is.
                let head = String::from_utf8_lossy(invalid.as_bytes()).into_owned();
                layout = self::layout(head.as_bytes())?
                    .ok_or_else(|| HeadError::Malformed("unreadable head".into()))?;
                head
            }
        };
        Ok(Some(ClientRequest {
            head,
            layout,
            leftover,
        }))
    }

    /// `GET`, `POST`, ...
    pub fn method(&self) -> &str {
        self.text(self.layout.method)
    }

    /// The path, without the query string.
    pub fn path(&self) -> &str {
        let target = self.text(self.layout.target);
        target.split_once('?').map_or(target, |(path, _)| path)
    }

    /// The query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        let target = self.text(self.layout.target);
        target.split_once('?').map(|(_, query)| query)
    }

    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor_version(&self) -> u8 {
        self.layout.minor_version
    }

    fn text(&self, span: Span) -> &str {
        &self.head[span.start..span.end]
    }

    /// Every header line's name (as sent) and value, in order. httparse
    /// checked the head: names are tokens, no line is folded, every line
    /// has its colon. So each line cut at its first colon is a header as
    /// httparse found it.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.head[self.layout.fields..]
            .lines()
            .take_while(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name, value.trim_matches([' ', '\t'])))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every `name` header's value, in order (a list header may be split
    /// over several lines).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(self.query()?)
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The comma-separated tokens of every `name` header, trimmed.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers_named(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether header `name` lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// A request for tests: `method target HTTP/1.1` with these headers.
    #[cfg(test)]
    pub fn for_test(method: &str, target: &str, headers: &[(&str, &str)]) -> ClientRequest {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        ClientRequest::parse(head.as_bytes())
            .expect("a test request is well formed")
            .expect("a test request is complete")
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// `Content-Length` is over the limit (413).
    TooLarge,
    /// The body is chunked: only `Content-Length` bodies are read (411).
    LengthRequired,
    /// `Content-Length` is not a number, or given twice differently (400).
    BadLength,
    /// The deadline passed, or the client left, before the body arrived.
    Incomplete,
}

/// The `key=value` pairs of a query string, percent-decoded (`+` is a
/// space). Malformed escapes are kept as they are; invalid UTF-8 is
/// replaced.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_read_out_of_its_text() {
        let bytes = b"\r\nGET /lobby/listen?username=a%20b HTTP/1.1\r\nHost: h\r\nX-Pad:  \t padded\t \r\nhost: second\nUpgrade: websocket\r\n\r\n";
        let request = ClientRequest::parse(bytes).unwrap().unwrap();
        assert_eq!(request.method(), "GET");
        assert_eq!(request.path(), "/lobby/listen");
        assert_eq!(request.query(), Some("username=a%20b"));
        assert_eq!(request.query_param("username").as_deref(), Some("a b"));
        assert_eq!(request.minor_version(), 1);
        let headers: Vec<_> = request.headers().collect();
        assert_eq!(
            headers,
            [
                ("Host", "h"),
                ("X-Pad", "padded"),
                ("host", "second"),
                ("Upgrade", "websocket")
            ]
        );
        assert_eq!(request.header("HOST"), Some("h"));
        assert_eq!(
            request.headers_named("host").collect::<Vec<_>>(),
            ["h", "second"]
        );
        assert!(request.leftover.is_empty());
    }

    #[test]
    fn a_head_without_headers_or_query() {
        let request = ClientRequest::parse(b"GET / HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((request.path(), request.query()), ("/", None));
        assert_eq!(request.minor_version(), 0);
        assert_eq!(request.headers().count(), 0);
    }

    #[test]
    fn invalid_utf8_in_the_head_is_replaced_and_what_follows_is_kept() {
        let bytes = b"GET /a HTTP/1.1\r\nName: x\xfe\xfdy\r\nHost: h\r\n\r\n\x81\xff\x00";
        let request = ClientRequest::parse(bytes).unwrap().unwrap();
        assert_eq!(request.path(), "/a");
        assert_eq!(request.header("name"), Some("x\u{fffd}\u{fffd}y"));
        assert_eq!(request.header("host"), Some("h"));
        assert_eq!(request.leftover, b"\x81\xff\x00");
    }

    #[test]
    fn a_head_is_taken_from_its_buffer_only_once_complete() {
        let start = b"GET /x HTTP/1.1\r\nHost: h\r\n";
        let mut buffer = start.to_vec();
        assert!(ClientRequest::take(&mut buffer).unwrap().is_none());
        assert_eq!(buffer, start, "an incomplete head stays where it is");
        buffer.extend_from_slice(b"\r\nrest");
        let request = ClientRequest::take(&mut buffer).unwrap().unwrap();
        assert!(buffer.is_empty());
        assert_eq!(
            (request.path(), request.leftover.as_slice()),
            ("/x", &b"rest"[..])
        );
    }

    #[test]
    fn heads_over_the_limit_are_too_large_complete_or_not() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            ClientRequest::parse(long.as_bytes()).unwrap_err(),
            HeadError::TooLarge
        );
        let complete = format!("{long}\r\n");
        assert_eq!(
            ClientRequest::parse(complete.as_bytes()).unwrap_err(),
            HeadError::TooLarge
        );
        let many: String = (0..65).map(|i| format!("H{i}: v\r\n")).collect();
        let head = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            ClientRequest::parse(head.as_bytes()).unwrap_err(),
            HeadError::TooLarge
        );
        assert!(matches!(
            ClientRequest::parse(b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
    }

    #[test]
    fn query_pairs_are_percent_decoded() {
        let pairs =
            query_pairs("username=Cerulean&x=a%20b+c&empty=&flag&bad=%zz%4&utf8=%C3%A9&plus=%+41");
        let expected = [
            ("username", "Cerulean"),
            ("x", "a b c"),
            ("empty", ""),
            ("flag", ""),
            ("bad", "%zz%4"),
            ("utf8", "é"),
            ("plus", "% 41"),
        ];
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(pairs, expected);
        assert!(query_pairs("").is_empty());
    }
}
