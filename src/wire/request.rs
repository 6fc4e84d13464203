//! A parsed HTTP request head, the query strings in it, and why the body
//! it announces could not be read.
//!
//! `net` reads the head and the body off the socket
//! (`net::http::read_request`, `read_body`); the dialects read the head
//! too (credentials, the channels' admission) and answer a body that did
//! not arrive (the channels' emit), so these live below both, with no I/O
//! of their own.

/// A parsed request head.
#[derive(Debug)]
pub struct ClientRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The query string (after `?`), if any.
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// Bytes that arrived after the head: the start of a body, or the
    /// first WebSocket frames of an eager client.
    pub leftover: Vec<u8>,
}

impl ClientRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `name` header's value, in order (a list header may be split
    /// over several lines).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name`, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(self.query.as_deref()?)
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The comma-separated tokens of every `name` header, trimmed.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether header `name` lists `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
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
