//! The server side of the WebSocket opening handshake (RFC 6455 §4.2).

use std::io::{self, Write};

use tungstenite::handshake::derive_accept_key;

use super::http::Response;
use crate::wire::request::ClientRequest;

/// Why a request cannot be upgraded; each maps to an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A plain HTTP request to a WebSocket endpoint.
    NotAnUpgrade,
    /// A WebSocket version other than 13.
    UnsupportedVersion,
    /// A malformed handshake; the text says what is wrong.
    BadRequest(&'static str),
}

impl Refusal {
    /// The HTTP response that explains the refusal.
    pub fn response(&self) -> Response {
        match self {
            Refusal::NotAnUpgrade => Response::text(
                426,
                "this endpoint speaks WebSocket: send an Upgrade request\n",
            )
            .with_header("Upgrade", "websocket")
            .with_header("Connection", "Upgrade"),
            Refusal::UnsupportedVersion => {
                Response::text(426, "only WebSocket version 13 is supported\n")
                    .with_header("Sec-WebSocket-Version", "13")
            }
            Refusal::BadRequest(why) => Response::text(400, format!("{why}\n")),
        }
    }
}

/// Checks an upgrade request; on success returns the `Sec-WebSocket-Accept`
/// value to answer with.
pub fn accept_key(request: &ClientRequest) -> Result<String, Refusal> {
    if !request.has_token("upgrade", "websocket") {
        return Err(Refusal::NotAnUpgrade);
    }
    if request.method() != "GET" || request.minor_version() < 1 {
        return Err(Refusal::BadRequest(
            "a WebSocket upgrade must be GET over HTTP/1.1",
        ));
    }
    if !request.has_token("connection", "upgrade") {
        return Err(Refusal::BadRequest("Connection: Upgrade is missing"));
    }
    if request.header("sec-websocket-version") != Some("13") {
        return Err(Refusal::UnsupportedVersion);
    }
    let key = request
        .header("sec-websocket-key")
        .map(str::trim)
        .ok_or(Refusal::BadRequest("Sec-WebSocket-Key is missing"))?;
    // The key is 16 random bytes in base64: 24 characters ending in "==".
    if key.len() != 24 || !key.ends_with("==") {
        return Err(Refusal::BadRequest(
            "Sec-WebSocket-Key is not 16 bytes of base64",
        ));
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// Sends the `101 Switching Protocols` answer, echoing `subprotocol` if
/// chosen, in one write. It is put together on the stack: on the heap it
/// would be one more block freed by the reader thread, which glibc keeps
/// in that thread's cache for the life of the connection (see
/// `ClientRequest`). The subprotocols are this server's own short names,
/// so the answer always fits.
pub fn send_switching_protocols(
    mut out: impl Write,
    accept: &str,
    subprotocol: Option<&str>,
) -> io::Result<()> {
    let mut head = [0u8; 512];
    let mut free = &mut head[..];
    write!(
        free,
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
    )?;
    if let Some(protocol) = subprotocol {
        write!(free, "Sec-WebSocket-Protocol: {protocol}\r\n")?;
    }
    free.write_all(b"\r\n")?;
    let len = 512 - free.len();
    out.write_all(&head[..len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> ClientRequest {
        ClientRequest::for_test("GET", "/ws/echo", headers)
    }

    const GOOD: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accepts_the_rfc_example() {
        assert_eq!(
            accept_key(&request(&GOOD)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn the_101_echoes_the_accept_key_and_the_chosen_subprotocol() {
        let mut out = Vec::new();
        send_switching_protocols(
            &mut out,
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            Some("ert-concierge"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Protocol: ert-concierge\r\n\r\n"
        );
        let mut out = Vec::new();
        send_switching_protocols(&mut out, "k", None).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("Sec-WebSocket-Accept: k\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        assert_eq!(accept_key(&request(&GOOD[1..])), Err(Refusal::NotAnUpgrade));
        let mut wrong_version = GOOD;
        wrong_version[2].1 = "8";
        assert_eq!(
            accept_key(&request(&wrong_version)),
            Err(Refusal::UnsupportedVersion)
        );
        let mut bad_key = GOOD;
        bad_key[3].1 = "short";
        assert!(matches!(
            accept_key(&request(&bad_key)),
            Err(Refusal::BadRequest(_))
        ));
        assert!(matches!(
            accept_key(&request(&GOOD[..3])),
            Err(Refusal::BadRequest(_))
        ));
        let post = ClientRequest::for_test("POST", "/ws/echo", &GOOD);
        assert!(matches!(accept_key(&post), Err(Refusal::BadRequest(_))));
    }
}
