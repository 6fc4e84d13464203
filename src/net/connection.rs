//! One socket's life: the HTTP request, then (for a WebSocket) a reader
//! thread and a writer thread.
//!
//! # Why exactly one thread writes
//!
//! tungstenite's `WebSocket` cannot be split between threads: it answers
//! pings and closes *while reading*, by queuing the reply and writing it to
//! the same stream itself (snapview/tungstenite-rs#311, #323). Two threads
//! writing to one socket would interleave bytes of different frames.
//!
//! So the reader's `WebSocket` is built over a `ReadHalf` whose `write`
//! throws the bytes away: tungstenite parses, unmasks, reassembles and
//! validates frames as usual, and its automatic replies vanish. The reader
//! instead turns each Ping into a Pong frame and each Close into the closing
//! reply, and pushes them onto the connection's [`Outbox`] like any other
//! frame. The writer thread is then the only one that writes to the
//! socket: it takes whole, pre-encoded frames from the outbox and writes
//! them in order, so frames never interleave and every pong goes out.
//!
//! # Limits
//!
//! An upgrade is counted against its address's cap (`--max-connections-per-ip`,
//! 429 at the cap) before it takes a slot under `--max-connections` (503).
//! The reader passes every complete message through the connection's rate
//! limit ([`super::rate`]) before the session sees it; what a client over
//! the limit hears is its dialect's to say (`Session::rate_limited`).
//!
//! Both threads share one `Arc<TcpStream>` (`&TcpStream` is `Read + Write`)
//! instead of a `try_clone`, so a connection costs one file descriptor.
//!
//! # How a connection ends
//!
//! - The reader stops on a Close from the client (after queuing the reply),
//!   when its session closes the connection (after queuing a close frame,
//!   then waiting up to [`CLOSE_GRACE`] for the client's reply), on a
//!   protocol error or oversize message (after queuing a close frame: the
//!   stream's framing is lost, so it waits for nothing), when the client
//!   stays silent for two keepalive intervals although pinged, or when the
//!   socket fails. It then shuts the outbox, tells the router
//!   `Closed`, and drops `reader_done`.
//! - The writer stops when the outbox is closed and empty, or when a write
//!   fails, stalls for [`WRITE_STALL_TIMEOUT`], or is still blocked when the
//!   router aborts the outbox of a client too slow to keep up. After sending a close frame
//!   it waits (at most [`CLOSE_GRACE`]) for the reader to see the client's
//!   reply, then shuts the socket down, which also wakes a blocked reader.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};
use tungstenite::{Error as WsError, Message};

use super::capacity;
use super::forwarded::TrustedProxies;
use super::frame::{Close, Frame};
use super::http::{self, ReadError, Request, Response};
use super::outbox::{Opened, Outbox};
use super::per_ip::PeerPlace;
use super::rate::{MessageLimit, Overrun, Rate, Verdict};
use super::route::{self, Route};
use super::upgrade;
use super::Shared;
use crate::dialect::{self, channels, concierge, Dialect, Received, Session, Step};
use crate::log;
use crate::metrics::{Counter, HandshakeFailure, Metrics};
use crate::router::{Command, ConnId, Control};

/// Stack of the thread that reads the request and then the WebSocket. It
/// parses JSON: serde_json stops nesting at 128 levels, and the dialects
/// decode into flat structs or `Value`s, which release builds parse to that
/// depth in well under this. Unoptimized builds use several times the
/// stack per level, so they get more. Only the pages touched count as
/// memory either way. The fuzz properties decode on a stack of this size.
pub(crate) const READER_STACK: usize = if cfg!(debug_assertions) {
    1 << 20
} else {
    256 * 1024
};
/// Stack of the writer thread, which only moves bytes.
const WRITER_STACK: usize = 64 * 1024;
/// How long a write may make no progress before the peer counts as gone.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a blocked write wakes to check whether it should give up.
const WRITE_POLL: Duration = Duration::from_millis(250);
/// How long the writer waits for the client's reply to a close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The read buffer tungstenite starts with (it grows for larger frames);
/// small, because every connection holds one, busy or idle.
const READ_CHUNK: usize = 1024;

/// Starts a thread that serves `stream` from its first byte to its last,
/// unless `--max-handshakes` sockets are already in their handshake: then
/// the socket gets a 503 (if its buffer takes it at once) and is closed.
pub(crate) fn spawn(stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let max = shared.config().max_handshakes;
    let Some(handshake) = Slot::reserve(&shared.metrics, |m| &m.handshakes_open, max) else {
        shared.metrics.handshake_failed(HandshakeFailure::Busy);
        let _ = stream.set_nonblocking(true);
        let _ = Response::text(503, "too many handshakes in progress\n")
            .with_header("Retry-After", "1")
            .write_to(&stream);
        return Ok(());
    };
    thread::Builder::new()
        .name("conn".into())
        .stack_size(READER_STACK)
        .spawn(move || serve(stream, &shared, handshake))
        .map(drop)
        .map_err(|e| {
            let why = format!("cannot start a thread: {e}; {}", capacity::thread_hint());
            io::Error::new(e.kind(), why)
        })
}

/// Serves one socket. `http` counts it among the sockets in their HTTP
/// exchange until it has been answered, or upgraded to a WebSocket.
fn serve(stream: TcpStream, shared: &Arc<Shared>, http: Slot) {
    let mut peer = Peer::of(&stream);
    let deadline = Instant::now() + shared.config().handshake_timeout;
    let request = match http::read_request(&stream, deadline) {
        Ok(request) => request,
        Err(error) => return refuse_unreadable(&stream, peer, error, &shared.metrics, http),
    };
    let config = shared.config();
    peer.resolve(&config.trusted_proxies, &request);
    if let Err(origin) = config.allowed_origins.check(&request) {
        shared.metrics.access_denied("http", "origin");
        log::info!(
            "peer={peer} path={} reason=origin: refused: origin {origin} is not allowed",
            request.path
        );
        let why = format!("origin {origin} is not allowed here (--allowed-origins)");
        let refusal = Response::json(403, &serde_json::json!({"error": why, "code": "ORIGIN"}));
        return respond(&stream, &refusal, http);
    }
    drop(config);
    // The path only: a query may carry a token.
    log::debug!(
        "peer={peer} request=\"{} {}\"",
        request.method,
        request.path
    );
    let route = route::route(&request);
    if let Some(allowed) = wrong_method(&route, &request.method) {
        let refusal = Response::text(405, format!("{} takes {allowed} only\n", request.path))
            .with_header("Allow", allowed);
        return respond(&stream, &refusal, http);
    }
    let response = match route {
        Route::Health => health(shared),
        Route::Metrics => Response::text(200, shared.metrics.render(shared.router.len()))
            .with_header("Content-Type", "text/plain; version=0.0.4"),
        Route::Index => Response::text(200, super::endpoints::list()),
        Route::Page(asset) => asset.response(),
        Route::DemoToken => crate::demo::answer(&request, &shared.config()),
        Route::NotFound => {
            shared.metrics.handshake_failed(HandshakeFailure::NotFound);
            Response::text(404, format!("no endpoint at {}\n", request.path))
        }
        Route::Admin(action) => super::admin::answer(action, &request, shared),
        Route::Emit(channel) => {
            channels::emit::answer(&stream, &request, &channel, shared, (deadline, &peer))
        }
        Route::WebSocket(dialect) => {
            match upgrade(stream, peer, request, dialect, deadline, shared, http) {
                Ok(()) => return,
                Err((stream, response, http)) => return respond(&stream, &response, http),
            }
        }
    };
    let response = Response {
        head_only: request.method == "HEAD",
        ..response
    };
    log::debug!("peer={peer} status={}", response.status);
    respond(&stream, &response, http);
}

fn refuse_unreadable(
    stream: &TcpStream,
    peer: Peer,
    error: ReadError,
    metrics: &Metrics,
    http: Slot,
) {
    let response = match error {
        ReadError::TimedOut => {
            metrics.handshake_failed(HandshakeFailure::Timeout);
            log::debug!(
                "peer={peer} reason=timeout: no complete request before the handshake deadline"
            );
            Response::text(408, "request not complete before the deadline\n")
        }
        ReadError::TooLarge => {
            metrics.handshake_failed(HandshakeFailure::TooLarge);
            Response::text(431, "request head too large\n")
        }
        ReadError::Malformed(why) => {
            metrics.handshake_failed(HandshakeFailure::Malformed);
            Response::text(400, format!("malformed request: {why}\n"))
        }
        ReadError::Closed | ReadError::Io(_) => return,
    };
    respond(stream, &response, http);
}

/// The methods `route` takes, when `method` is not one of them. Pages and
/// reports are read with GET (HEAD too, as HTTP requires); the admin and
/// emit endpoints check their own methods.
fn wrong_method(route: &Route, method: &str) -> Option<&'static str> {
    let read_only = matches!(
        route,
        Route::Health | Route::Metrics | Route::Index | Route::Page(_) | Route::DemoToken
    );
    (read_only && method != "GET" && method != "HEAD").then_some("GET, HEAD")
}

/// Writes a plain HTTP response and ends the connection. The exchange is
/// over once the answer is written, so `http` is given back before the
/// lingering close.
fn respond(mut stream: &TcpStream, response: &Response, http: Slot) {
    let _ = stream.set_write_timeout(Some(RESPONSE_WRITE_TIMEOUT));
    // The client may be gone already; there is nobody to tell.
    let _ = response.write_to(&mut stream);
    let _ = stream.shutdown(Shutdown::Write);
    drop(http);
    linger(stream);
}

/// Reads (and drops) what the client still sends, until it closes, for at
/// most [`LINGER`] and [`LINGER_BYTES`]. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the response before the
/// client has read it (the "lingering close" of HTTP servers).
fn linger(mut stream: &TcpStream) {
    let until = Instant::now() + LINGER;
    let mut drained = 0;
    let mut sink = [0u8; 1024];
    while drained < LINGER_BYTES {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(read) => drained += read,
        }
    }
}

/// How long `/healthz` waits for the router.
const HEALTH_DEADLINE: Duration = Duration::from_secs(1);

/// `GET /healthz`: 200 while the router answers a probe within
/// [`HEALTH_DEADLINE`], 503 when it is stuck or gone (a full command queue
/// counts as stuck).
fn health(shared: &Shared) -> Response {
    match shared.ask_router(
        |reply| Command::Control(Control::Probe { reply }),
        HEALTH_DEADLINE,
    ) {
        // Redis being away leaves this node serving its own clients, so
        // it stays healthy; the body says what is missing.
        Some(()) if shared.metrics.cluster.enabled() && !shared.metrics.cluster.redis_up() => {
            Response::text(200, "ok\nredis: unreachable (this node alone)\n")
        }
        Some(()) if shared.metrics.cluster.enabled() => Response::text(200, "ok\nredis: up\n"),
        Some(()) => Response::text(200, "ok\n"),
        None => Response::text(503, "the router is not answering\n"),
    }
}

/// How long writing an HTTP response may take.
const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused or answered HTTP client may keep sending.
const LINGER: Duration = Duration::from_secs(1);
/// How much it may send meanwhile.
const LINGER_BYTES: usize = 64 * 1024;

/// Completes the handshake and serves the WebSocket. On refusal, hands the
/// stream and its HTTP slot back with the HTTP answer to send.
fn upgrade(
    mut stream: TcpStream,
    peer: Peer,
    request: Request,
    dialect: Dialect,
    deadline: Instant,
    shared: &Arc<Shared>,
    http: Slot,
) -> Result<(), (TcpStream, Response, Slot)> {
    let accept = match upgrade::accept_key(&request) {
        Ok(accept) => accept,
        Err(refusal) => {
            shared
                .metrics
                .handshake_failed(HandshakeFailure::BadUpgrade);
            return Err((stream, refusal.response(), http));
        }
    };
    // Who may listen, before anything is spent on the connection.
    let admission = match dialect::admit(dialect, &request, &shared.config()) {
        Ok(admission) => admission,
        Err(refusal) => {
            shared
                .metrics
                .access_denied(dialect.name(), refusal.label());
            log::info!(
                "peer={peer} dialect={dialect} path={}: refused: {refusal}",
                request.path
            );
            let body = serde_json::json!({"error": refusal.to_string(), "code": refusal.code()});
            return Err((stream, Response::json(refusal.status(), &body), http));
        }
    };
    // The address's cap first: a client over it takes no slot from others.
    let from_peer = match admit_peer(shared, peer) {
        Ok(place) => place,
        Err(refusal) => return Err((stream, refusal, http)),
    };
    let max = shared.config().max_connections;
    let Some(slot) = Slot::reserve(&shared.metrics, |m| &m.connections_open, max) else {
        shared
            .metrics
            .handshake_failed(HandshakeFailure::AtCapacity);
        let busy = Response::text(503, "too many connections\n").with_header("Retry-After", "1");
        return Err((stream, busy, http));
    };
    let places = Places {
        _connections: slot,
        _from_peer: from_peer,
    };
    let subprotocol = (dialect == Dialect::Concierge
        && route::offers(&request, concierge::SUBPROTOCOL))
    .then_some(concierge::SUBPROTOCOL);
    let head = upgrade::switching_protocols(&accept, subprotocol);
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = stream
        .set_write_timeout(Some(left.max(Duration::from_millis(100))))
        .and_then(|()| stream.write_all(&head));
    if sent.is_err() {
        return Ok(()); // the client left mid-handshake
    }
    drop(http); // a WebSocket now, counted by `places`
    shared.metrics.connections_total.increment();
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    log::info!(
        "conn={} dialect={dialect}: connected from peer={peer}",
        conn.0
    );
    let open = shared.metrics.connections.of(dialect);
    open.increment();
    let ending = run(
        stream,
        (request, admission),
        conn,
        dialect,
        shared,
        Arc::new(places),
    );
    open.decrement();
    log::info!("conn={} dialect={dialect}: disconnected: {ending}", conn.0);
    Ok(())
}

/// Counts a WebSocket against its address's cap, when
/// `--max-connections-per-ip` sets one. At the cap, the answer is 429: the
/// server has room, this client has had its share.
fn admit_peer(shared: &Shared, peer: Peer) -> Result<Option<PeerPlace>, Response> {
    let (Some(max), Some(ip)) = (shared.config().max_connections_per_ip, peer.ip()) else {
        return Ok(None);
    };
    match shared.per_ip.admit(ip, max) {
        Some(place) => Ok(Some(place)),
        None => {
            shared.metrics.connections_refused_per_ip.increment();
            let refusal = Response::text(429, "too many connections from your address\n")
                .with_header("Retry-After", "1");
            Err(refusal)
        }
    }
}

/// The client at the other end of a socket: the socket's peer, or,
/// behind a trusted proxy, the address it forwards for.
#[derive(Debug, Clone, Copy)]
struct Peer {
    socket: Option<SocketAddr>,
    /// The client's address when a trusted proxy named another.
    forwarded: Option<IpAddr>,
}

impl Peer {
    fn of(stream: &TcpStream) -> Peer {
        Peer {
            socket: stream.peer_addr().ok(),
            forwarded: None,
        }
    }

    /// Believes `request`'s `X-Forwarded-For` if the socket's peer is one
    /// of `proxies`.
    fn resolve(&mut self, proxies: &TrustedProxies, request: &Request) {
        let Some(socket) = self.socket.filter(|_| !proxies.is_empty()) else {
            return;
        };
        let headers: Vec<&str> = request.headers_named("x-forwarded-for").collect();
        let client = proxies.client(socket.ip(), &headers);
        self.forwarded = (client != socket.ip()).then_some(client);
    }

    /// The address the per-IP cap counts.
    fn ip(self) -> Option<IpAddr> {
        self.forwarded.or(self.socket.map(|addr| addr.ip()))
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.forwarded, self.socket) {
            (Some(client), Some(proxy)) => write!(f, "{client} via={proxy}"),
            (_, Some(addr)) => write!(f, "{addr}"),
            (_, None) => f.write_str("?"),
        }
    }
}

/// What an open WebSocket counts against, given back when both its
/// threads have finished with it: a slot under `--max-connections`, and a
/// place under `--max-connections-per-ip` when that is set.
struct Places {
    _connections: Slot,
    _from_peer: Option<PeerPlace>,
}

/// One unit of a capped gauge (sockets in their handshake, open
/// WebSockets), held for as long as what it counts lives and given back
/// when dropped. A WebSocket's slot is shared by its reader and writer and
/// released when both have finished.
struct Slot {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &Counter,
}

impl Slot {
    /// Takes a unit of `gauge` unless it already stands at `max`.
    fn reserve(
        metrics: &Arc<Metrics>,
        gauge: fn(&Metrics) -> &Counter,
        max: usize,
    ) -> Option<Slot> {
        gauge(metrics).increment_below(max as u64).then(|| Slot {
            metrics: metrics.clone(),
            gauge,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        (self.gauge)(&self.metrics).decrement();
    }
}

/// Runs an upgraded connection: starts the writer, reads until the end.
fn run(
    stream: TcpStream,
    (mut request, admission): (Request, dialect::credentials::Admission),
    conn: ConnId,
    dialect: Dialect,
    shared: &Arc<Shared>,
    places: Arc<Places>,
) -> Ending {
    let config = shared.config();
    // Failing to set these options leaves defaults that still work.
    let _ = stream.set_write_timeout(Some(WRITE_POLL));
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    // The router writes through to the socket while the writer is idle
    // (net/outbox.rs, "Write-through").
    let outbox = Arc::new(Outbox::writing_through(
        config.max_queued_bytes,
        stream.clone(),
    ));
    // The reader holds `done_tx` and drops it when it ends; the writer waits
    // on `done_rx` after its close frame. No value is ever sent.
    let (done_tx, done_rx) = bounded::<()>(0);
    let writer = {
        let (stream, outbox, places) = (stream.clone(), outbox.clone(), places.clone());
        thread::Builder::new()
            .name("conn-writer".into())
            .stack_size(WRITER_STACK)
            .spawn(move || write_until_closed(&stream, &outbox, &done_rx, places))
    };
    if let Err(error) = writer {
        let close = Close::new(1013, "server busy: cannot start a thread");
        let _ = (&*stream).write_all(&Frame::close(&close).to_vec());
        return Ending::Refused(format!(
            "no writer thread: {error}; {}",
            capacity::thread_hint()
        ));
    }
    let registered = dialect.uses_router();
    if registered {
        // The outbox first: the router thread takes it before it handles
        // the `Open` sent after it, so the router's first frame for this
        // connection has somewhere to go.
        let opened = Opened {
            conn,
            dialect,
            outbox: outbox.clone(),
        };
        let open = Command::Open { conn, dialect };
        if shared.opened.send(opened).is_err() || shared.router.send(open).is_err() {
            outbox.close(Frame::close(&Close::new(1011, "router stopped")));
            return Ending::Refused("router stopped".into());
        }
    }
    let mut session = Session::new(dialect, conn, &config, &request, admission);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .write_buffer_size(0)
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let leftover = std::mem::take(&mut request.leftover);
    // The session has taken what it needs from the request; its headers
    // would otherwise be held for the connection's whole life.
    drop(request);
    let mut ws =
        WebSocket::from_partially_read(ReadHalf(stream), leftover, Role::Server, Some(ws_config));
    let reader = Reader {
        outbox: &outbox,
        router: &shared.router,
        metrics: &shared.metrics,
        max_message_bytes: config.max_message_bytes,
        keepalive: config.keepalive,
        rate: Rate::from_config(&config),
    };
    // Whatever happens while reading, the router must hear `Closed` and the
    // writer must be let go: a panic here ends this connection only.
    let ending = panic::catch_unwind(AssertUnwindSafe(|| {
        reader.read_until_end(&mut ws, &mut session)
    }))
    .unwrap_or_else(|_| {
        outbox.close(Frame::close(&dialect.internal_error_close()));
        Ending::Gone("the connection's handler failed".into())
    });
    outbox.shut();
    if registered {
        let _ = shared.router.send(Command::Closed { conn }); // gone only if the router is
    }
    drop(done_tx);
    ending
}

/// How a connection ended, for the log.
#[derive(Debug)]
enum Ending {
    /// The client sent a close frame (with this code, if any).
    ClientClosed(Option<u16>),
    /// This side closed it after a frame it could not read (oversize,
    /// protocol error): the rest of the stream cannot be trusted.
    Failed(Close),
    /// This side closed it.
    ServerClosed(Close),
    /// The socket ended without a closing handshake.
    Gone(String),
    /// The connection could not be set up.
    Refused(String),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::ClientClosed(Some(code)) => write!(f, "client closed ({code})"),
            Ending::ClientClosed(None) => f.write_str("client closed"),
            Ending::ServerClosed(close) | Ending::Failed(close) => {
                write!(f, "closed {} ({})", close.code, close.reason)
            }
            Ending::Gone(why) => write!(f, "connection lost: {why}"),
            Ending::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

/// The reading side of the shared socket. Writes are discarded on purpose:
/// see the module documentation.
struct ReadHalf(Arc<TcpStream>);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the reader thread needs besides the socket and the session.
struct Reader<'a> {
    outbox: &'a Outbox,
    router: &'a Sender<Command>,
    metrics: &'a Metrics,
    max_message_bytes: usize,
    /// Silence after which the server pings; twice this ends the connection.
    keepalive: Duration,
    /// The message rate limit, if `--rate-limit` sets one.
    rate: Option<Rate>,
}

impl Reader<'_> {
    /// Reads messages until the connection ends. If this side closed it,
    /// then waits (briefly) for the client's closing reply.
    fn read_until_end(&self, ws: &mut WebSocket<ReadHalf>, session: &mut Session) -> Ending {
        // Each read waits at most one keepalive interval: a timeout is the
        // reader's cue to ping a silent client, or to give up on it.
        let _ = ws.get_ref().0.set_read_timeout(Some(self.keepalive));
        let opening = session
            .on_open()
            .into_iter()
            .find_map(|step| self.take(step));
        let ending = match opening {
            Some(ending) => ending,
            None => self.read_messages(ws, session),
        };
        if let Ending::ServerClosed(_) = ending {
            await_close_reply(ws);
        }
        ending
    }

    fn count_in(&self, dialect: Dialect, bytes: usize) {
        self.metrics.messages_received.of(dialect).increment();
        self.metrics.bytes_received.of(dialect).add(bytes as u64);
    }

    fn read_messages(&self, ws: &mut WebSocket<ReadHalf>, session: &mut Session) -> Ending {
        let mut last_heard = Instant::now();
        let mut limit = self.rate.map(|rate| MessageLimit::new(rate, last_heard));
        loop {
            let message = match ws.read() {
                Ok(message) => message,
                Err(WsError::Io(e)) if is_timeout(&e) => {
                    if last_heard.elapsed() >= 2 * self.keepalive {
                        return self.close(session.dialect().silence_close(2 * self.keepalive));
                    }
                    // Fails only for a client that is too slow or leaving:
                    // either way it is on its way out.
                    let _ = self.outbox.try_push(Frame::ping(b""));
                    continue;
                }
                Err(error) => return self.fail(error),
            };
            last_heard = Instant::now();
            let dialect = session.dialect();
            let step = match message {
                Message::Text(text) => {
                    self.count_in(dialect, text.len());
                    self.receive(session, &mut limit, Received::Text(&text), last_heard)
                }
                Message::Binary(bytes) => {
                    self.count_in(dialect, bytes.len());
                    self.receive(session, &mut limit, Received::Binary(&bytes), last_heard)
                }
                Message::Ping(payload) => Some(Step::Reply(Frame::pong(&payload))),
                Message::Pong(_) | Message::Frame(_) => None,
                Message::Close(frame) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.outbox.close(Frame::close_reply(code));
                    return Ending::ClientClosed(code);
                }
            };
            if let Some(ending) = step.and_then(|step| self.take(step)) {
                return ending;
            }
        }
    }

    /// Hands one complete client message, received at `now`, to the
    /// session, unless the rate limit drops it: then the session says what
    /// its client hears about that, if anything.
    fn receive(
        &self,
        session: &mut Session,
        limit: &mut Option<MessageLimit>,
        received: Received<'_>,
        now: Instant,
    ) -> Option<Step> {
        // Already counted, with its dialect, by `count_in`.
        let verdict = limit
            .as_mut()
            .map_or(Verdict::Pass, |limit| limit.check(now));
        let dialect = session.dialect();
        match verdict {
            Verdict::Pass => self.protect(dialect, || Some(session.on_message(received))),
            Verdict::Drop(overrun) => {
                self.metrics.messages_rate_limited.increment();
                if overrun == Overrun::Persisting {
                    self.metrics.rate_limit_disconnects.increment();
                    // Some dialects' notice went through the router, and a
                    // flood reaches this point long before the router
                    // gets to it: without this the close would overtake it.
                    self.let_router_catch_up();
                }
                self.protect(dialect, || session.rate_limited(received, overrun))
            }
        }
    }

    /// Waits (at most [`CLOSE_GRACE`]) until the router has handled every
    /// command this reader sent, and queued their frames.
    fn let_router_catch_up(&self) {
        let (done, caught_up) = bounded(1);
        if self
            .router
            .send(Command::Control(Control::Flush { done }))
            .is_ok()
        {
            let _ = caught_up.recv_timeout(CLOSE_GRACE);
        }
    }

    /// Carries out one step; returns how the connection ended if it did.
    fn take(&self, step: Step) -> Option<Ending> {
        match step {
            Step::Forward(command) => match self.router.send(command) {
                Ok(()) => None,
                Err(_) => Some(self.close(Close::new(1011, "router stopped"))),
            },
            // Refused only once the outbox is closed, when the connection
            // is ending anyway: keep reading until it does.
            Step::Reply(frame) => {
                let _ = self.outbox.push_wait(frame);
                None
            }
            Step::Close(close) => Some(self.close(close)),
        }
    }

    /// Runs a session's handler so that a bug in it ends only this
    /// connection: a panic tells the client (in its dialect's words, if it
    /// has any) and closes with its dialect's internal-error code (1011,
    /// concierge's 4000), and every other connection goes on.
    fn protect(&self, dialect: Dialect, handle: impl FnOnce() -> Option<Step>) -> Option<Step> {
        match panic::catch_unwind(AssertUnwindSafe(handle)) {
            Ok(step) => step,
            Err(_) => {
                log::error!("{dialect}: a message handler failed; closing the connection");
                if let Some(notice) = dialect::fatal_notice(dialect) {
                    let _ = self.outbox.push_wait(notice);
                }
                Some(Step::Close(dialect.internal_error_close()))
            }
        }
    }

    fn close(&self, close: Close) -> Ending {
        self.outbox.close(Frame::close(&close));
        Ending::ServerClosed(close)
    }

    /// Ends the connection after a read error, with the RFC 6455 close code
    /// for the error where the peer can still hear it.
    /// The stream's framing is unknown after such an error, so these closes
    /// do not wait for the client's reply (see [`await_close_reply`]).
    fn fail(&self, error: WsError) -> Ending {
        use tungstenite::error::ProtocolError;
        let ending = match error {
            WsError::Capacity(_) => self.close(Close::new(
                1009,
                format!(
                    "message too big: the limit is {} bytes",
                    self.max_message_bytes
                ),
            )),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                Ending::Gone("closed without a close frame".into())
            }
            WsError::Protocol(error) => self.close(Close::new(1002, error.to_string())),
            WsError::Utf8(_) => self.close(Close::new(1007, "text message is not valid UTF-8")),
            WsError::AttackAttempt => self.close(Close::new(1008, "attack attempt")),
            WsError::Io(error) => Ending::Gone(error.to_string()),
            WsError::ConnectionClosed | WsError::AlreadyClosed => Ending::Gone("closed".into()),
            other => self.close(Close::new(1011, other.to_string())),
        };
        match ending {
            Ending::ServerClosed(close) => Ending::Failed(close),
            other => other,
        }
    }
}

/// After this side's close frame, reads (and drops) what the client still
/// sends until its closing reply arrives, for at most [`CLOSE_GRACE`].
/// Closing a socket with unread input makes the kernel send a reset, which
/// on some networks destroys the close frame before the client reads it.
fn await_close_reply(ws: &mut WebSocket<ReadHalf>) {
    let until = Instant::now() + CLOSE_GRACE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || ws.get_ref().0.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The writer thread: writes batches until the outbox is closed and empty,
/// then ends the connection.
fn write_until_closed(
    stream: &TcpStream,
    outbox: &Outbox,
    reader_done: &Receiver<()>,
    places: Arc<Places>,
) {
    let mut result = Ok(());
    while let Some(batch) = outbox.next_batch() {
        result = write_frames(stream, batch.iter(), outbox);
        if result.is_err() {
            break;
        }
    }
    match result {
        // The close frame is out: give the client a moment to answer it.
        Ok(()) => drop(reader_done.recv_timeout(CLOSE_GRACE)),
        // The peer cannot be written to: nothing more will be sent.
        Err(_) => outbox.shut(),
    }
    let _ = stream.shutdown(Shutdown::Both); // fails only if already shut
    drop(places);
}

/// Writes whole frames with as few system calls as possible. A write that
/// makes no progress for [`WRITE_STALL_TIMEOUT`] fails, and so does one
/// blocked on a client that the router has meanwhile dropped as too slow
/// (checked every [`WRITE_POLL`], the socket's send timeout).
fn write_frames<'a>(
    mut stream: &TcpStream,
    frames: impl Iterator<Item = &'a Frame>,
    outbox: &Outbox,
) -> io::Result<()> {
    const MAX_SLICES: usize = 64;
    let mut frames = frames.peekable();
    while frames.peek().is_some() {
        // A frame is one slice, or two when spliced.
        let mut slices: Vec<IoSlice<'_>> = frames
            .by_ref()
            .take(MAX_SLICES / 2)
            .flat_map(Frame::slices)
            .map(IoSlice::new)
            .collect();
        let mut unsent = &mut slices[..];
        let mut progress = Instant::now();
        while !unsent.is_empty() {
            match stream.write_vectored(unsent) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    IoSlice::advance_slices(&mut unsent, written);
                    progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if outbox.is_aborted() || progress.elapsed() >= WRITE_STALL_TIMEOUT {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn healthz_is_503_when_the_router_does_not_answer() {
        // A command channel nobody reads: a router stuck on one command.
        let (router, _stuck) = crossbeam_channel::bounded(1);
        let opened = crossbeam_channel::unbounded().0;
        let shared = Shared::new(Config::default(), router, opened, Arc::default());
        let response = health(&shared);
        assert_eq!(response.status, 503);
        assert_eq!(response.body, b"the router is not answering\n");
    }

    #[test]
    fn healthz_is_200_when_the_router_answers() {
        let (router, inbox) = crossbeam_channel::bounded(1);
        let answering = std::thread::spawn(move || match inbox.recv() {
            Ok(Command::Control(Control::Probe { reply })) => reply.send(()).is_ok(),
            _ => false,
        });
        let opened = crossbeam_channel::unbounded().0;
        let shared = Shared::new(Config::default(), router, opened, Arc::default());
        assert_eq!(health(&shared).status, 200);
        assert!(answering.join().unwrap());
    }
}
