//! Connecting: the server under test, the WebSocket upgrade, closing.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::WebSocket;

use crate::concierge::{identify, subscribe};
use crate::{Error, Res, Socket};

/// How long any one setup step (connect, upgrade, a reply) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Receivers' tungstenite read buffer. tungstenite zero-fills the free part
/// of its buffer (up to this size) before every `recv`, so its default of
/// 128 KiB costs a receiver of 40 KiB frames much of its time in `memset`
/// (seen with perf). 16 KiB cost less CPU per delivery in our runs, for
/// switchboard and baseline alike, and what the receivers save goes to the
/// server they share the machine with.
pub const RECEIVER_READ_BUFFER: usize = 16 * 1024;

/// The server under test: its URL and the loopback address it resolves to.
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    /// Offer the `ert-concierge` subprotocol, as the concierge document asks
    /// clients to (tungstenite then insists that the server echoes it).
    pub subprotocol: bool,
}

impl Target {
    pub fn parse(url: &str, subprotocol: bool) -> Res<Target> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("--url must start with ws:// (no TLS)")?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        // "host" and "[::1]" have no port: WebSocket's default is 80.
        let authority = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        // A load generator must not be pointed at someone else's machine.
        let addr = authority
            .to_socket_addrs()?
            .find(|a| a.ip().is_loopback())
            .ok_or(format!("{url} is not a loopback address: refusing"))?;
        Ok(Target {
            url: url.to_string(),
            addr,
            subprotocol,
        })
    }

    pub fn request(&self) -> Res<tungstenite::handshake::client::Request> {
        let mut request = self.url.as_str().into_client_request()?;
        if self.subprotocol {
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("ert-concierge"),
            );
        }
        Ok(request)
    }
}

/// Why a connection failed, sorted by what the caller does about it.
#[derive(Debug)]
pub enum ConnectError {
    /// This process has no file descriptor left (EMFILE, ENFILE).
    OutOfFiles(io::Error),
    /// No local port is free to connect from (EADDRNOTAVAIL): closed
    /// connections still hold theirs in TIME_WAIT.
    OutOfPorts(io::Error),
    /// Anything else: refused, reset, a failed upgrade or IDENTIFY.
    Other(Error),
}

impl From<io::Error> for ConnectError {
    fn from(error: io::Error) -> ConnectError {
        // Linux's errno values: ENFILE 23, EMFILE 24, EADDRNOTAVAIL 99.
        match error.raw_os_error() {
            Some(23 | 24) => ConnectError::OutOfFiles(error),
            Some(99) => ConnectError::OutOfPorts(error),
            _ => ConnectError::Other(error.into()),
        }
    }
}

impl From<Error> for ConnectError {
    fn from(error: Error) -> ConnectError {
        ConnectError::Other(error)
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::OutOfFiles(e) => write!(f, "out of file descriptors: {e}"),
            ConnectError::OutOfPorts(e) => write!(f, "no free local port: {e}"),
            ConnectError::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Tungstenite's own client settings, except for the read buffer: see
/// [`RECEIVER_READ_BUFFER`]; idle and churning clients, which read a few
/// small replies, get 4 KiB.
pub fn client_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(read_buffer)
}

/// Opens a TCP connection and upgrades it, each step under a timeout.
pub fn connect(target: &Target, config: WebSocketConfig) -> Result<Socket, ConnectError> {
    upgrade(target, open_tcp(target)?, config)
}

/// A TCP connection to `target`, with the setup's timeouts.
pub fn open_tcp(target: &Target) -> Result<TcpStream, ConnectError> {
    let stream = TcpStream::connect_timeout(&target.addr, SETUP_TIMEOUT)?;
    // Small frames go out at once instead of waiting for more (Nagle).
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(SETUP_TIMEOUT))?;
    stream.set_write_timeout(Some(SETUP_TIMEOUT))?;
    Ok(stream)
}

/// The WebSocket upgrade (tungstenite's client handshake) over `stream`.
pub fn upgrade<S: Read + Write>(
    target: &Target,
    stream: S,
    config: WebSocketConfig,
) -> Result<WebSocket<S>, ConnectError> {
    let (ws, _response) =
        tungstenite::client::client_with_config(target.request()?, stream, Some(config))
            .map_err(|e| ConnectError::Other(format!("WebSocket upgrade: {e}").into()))?;
    Ok(ws)
}

/// Connects, identifies as `name` and subscribes to `group`.
pub fn join(
    target: &Target,
    name: &str,
    group: &str,
    read_buffer: usize,
) -> Result<Socket, ConnectError> {
    let mut ws = connect(target, client_config(read_buffer))?;
    identify(&mut ws, name)?;
    subscribe(&mut ws, group)?;
    Ok(ws)
}

/// Sends a close frame without waiting for the answer: for sockets whose
/// measurement is over.
pub fn close_quietly(mut ws: Socket) {
    let _ = ws.close(None);
    let _ = ws.flush();
}

/// Sends a close frame and reads until the server's reply (at most 1 s), so
/// that the server sees a clean close, as a well-behaved client's would be.
pub fn close_politely(mut ws: Socket) {
    let until = Instant::now() + Duration::from_secs(1);
    if ws.close(None).is_err() {
        return;
    }
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if left.is_zero() || ws.get_ref().set_read_timeout(Some(left)).is_err() {
            return;
        }
        if ws.read().is_err() {
            return; // ConnectionClosed once the reply is in; or a timeout
        }
    }
}
