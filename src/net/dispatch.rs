//! The HTTP exchange that starts every socket: the request head under the
//! handshake deadline, the endpoint it is for, and its answer; for a
//! WebSocket endpoint, the checks before the upgrade (origin, admission,
//! the per-address and total caps) and the `101` that hands the socket to
//! the connection (`connection::open`).

use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{Places, Slot, Upgraded};
use super::forwarded::TrustedProxies;
use super::http::{self, ReadError, Response};
use super::per_ip::PeerPlace;
use super::route::{self, Route};
use super::stream::Stream;
use super::upgrade;
use super::Context;
use crate::dialect::{self, concierge, Dialect};
use crate::log;
use crate::metrics::{HandshakeFailure, Metrics};
use crate::router::{Command, ConnId, Control};
use crate::wire::request::ClientRequest;

/// Serves one socket. `http` counts it among the sockets in their HTTP
/// exchange until it has been answered, or upgraded to a WebSocket.
///
/// Returns the socket once it is a WebSocket, for `connection::open`. Never
/// inlined: the request's parsing and answering then use stack pages below
/// a frame that has returned, which the connection's reader gives back
/// (net/stack.rs), instead of ones that stay under its whole life.
#[inline(never)]
pub(super) fn serve(tcp: TcpStream, context: &Arc<Context>, http: Slot) -> Option<Upgraded> {
    let mut peer = Peer::of(&tcp);
    let deadline = Instant::now() + context.config().handshake_timeout;
    let stream = match secure(tcp, context, deadline, peer) {
        Ok(stream) => stream,
        Err(refused) => {
            respond_nothing(&refused, http);
            return None;
        }
    };
    let request = match http::read_request(&stream, deadline) {
        Ok(request) => request,
        Err(error) => {
            refuse_unreadable(&stream, peer, error, &context.metrics, http);
            return None;
        }
    };
    let config = context.config();
    peer.resolve(&config.trusted_proxies, &request);
    if let Err(origin) = config.allowed_origins.check(&request) {
        context.metrics.access_denied("http", "origin");
        log::info!(
            "peer={peer} path={} reason=origin: refused: origin {origin} is not allowed",
            request.path()
        );
        let why = format!("origin {origin} is not allowed here (--allowed-origins)");
        let refusal = Response::json(403, &serde_json::json!({"error": why, "code": "ORIGIN"}));
        respond(&stream, &refusal, http);
        return None;
    }
    drop(config);
    // The path only: a query may carry a token.
    log::debug!(
        "peer={peer} request=\"{} {}\"",
        request.method(),
        request.path()
    );
    let route = route::route(&request);
    if let Some(allowed) = wrong_method(&route, request.method()) {
        let refusal = Response::text(405, format!("{} takes {allowed} only\n", request.path()))
            .with_header("Allow", allowed);
        respond(&stream, &refusal, http);
        return None;
    }
    let response = match route {
        Route::Health => health(context),
        Route::Metrics => Response::text(200, context.metrics.render(context.router.len()))
            .with_header("Content-Type", "text/plain; version=0.0.4"),
        Route::Index => Response::text(200, super::endpoints::list()),
        Route::Page(asset) => asset.response(),
        Route::DemoToken => crate::demo::answer(&request, &context.config()),
        Route::NotFound => {
            context.metrics.handshake_failed(HandshakeFailure::NotFound);
            Response::text(404, format!("no endpoint at {}\n", request.path()))
        }
        Route::Admin(action) => super::admin::answer(action, &request, context),
        Route::Emit(channel) => {
            super::emit::answer(&stream, &request, &channel, context, (deadline, &peer))
        }
        Route::WebSocket(dialect) => {
            match upgrade(stream, peer, request, dialect, deadline, context, http) {
                Ok(upgraded) => return upgraded,
                Err((stream, response, http)) => {
                    respond(&stream, &response, http);
                    return None;
                }
            }
        }
    };
    let response = Response {
        head_only: request.method() == "HEAD",
        ..response
    };
    log::debug!("peer={peer} status={}", response.status);
    respond(&stream, &response, http);
    None
}

fn refuse_unreadable(stream: &Stream, peer: Peer, error: ReadError, metrics: &Metrics, http: Slot) {
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
fn respond(mut stream: &Stream, response: &Response, http: Slot) {
    let _ = stream.set_write_timeout(Some(RESPONSE_WRITE_TIMEOUT));
    // The client may be gone already; there is nobody to tell.
    let _ = response.write_to(&mut stream);
    let _ = stream.shutdown(Shutdown::Write);
    drop(http);
    linger(stream);
}

/// The stream a request is read from: the socket itself, or with
/// `--tls-cert` a TLS session over it, its handshake done by `deadline`.
/// A socket whose handshake failed is handed back, its refusal (if any)
/// already written.
#[cfg_attr(not(feature = "tls"), allow(clippy::unnecessary_wraps))]
fn secure(
    tcp: TcpStream,
    context: &Context,
    deadline: Instant,
    peer: Peer,
) -> Result<Stream, Stream> {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = context.tls() {
        return acceptor
            .accept(tcp, deadline, &context.metrics)
            .map_err(|(tcp, failure)| {
                log::debug!(
                    "peer={peer} reason={}: TLS handshake failed",
                    failure.label()
                );
                Stream::plain(tcp)
            });
    }
    let _ = (context, deadline, peer);
    Ok(Stream::plain(tcp))
}

/// Ends an exchange whose answer, if any, is written already.
fn respond_nothing(stream: &Stream, http: Slot) {
    let _ = stream.shutdown(Shutdown::Write);
    drop(http);
    linger(stream);
}

/// Reads (and drops) what the client still sends, until it closes, for at
/// most [`LINGER`] and [`LINGER_BYTES`]. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the response before the
/// client has read it (the "lingering close" of HTTP servers).
fn linger(mut stream: &Stream) {
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
fn health(context: &Context) -> Response {
    match context.ask_router(
        |reply| Command::Control(Control::Probe { reply }),
        HEALTH_DEADLINE,
    ) {
        // Redis being away leaves this node serving its own clients, so
        // it stays healthy; the body says what is missing.
        Some(()) if context.metrics.cluster.enabled() && !context.metrics.cluster.redis_up() => {
            Response::text(200, "ok\nredis: unreachable (this node alone)\n")
        }
        Some(()) if context.metrics.cluster.enabled() => Response::text(200, "ok\nredis: up\n"),
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

/// Completes the handshake: the socket is a WebSocket from here on (`None`
/// if the client left meanwhile). On refusal, hands the stream and its
/// HTTP slot back with the HTTP answer to send.
fn upgrade(
    stream: Stream,
    peer: Peer,
    request: ClientRequest,
    dialect: Dialect,
    deadline: Instant,
    context: &Arc<Context>,
    http: Slot,
) -> Result<Option<Upgraded>, (Stream, Response, Slot)> {
    let accept = match upgrade::accept_key(&request) {
        Ok(accept) => accept,
        Err(refusal) => {
            context
                .metrics
                .handshake_failed(HandshakeFailure::BadUpgrade);
            return Err((stream, refusal.response(), http));
        }
    };
    // Who may listen, before anything is spent on the connection.
    let admission = match dialect::admit(dialect, &request, &context.config()) {
        Ok(admission) => admission,
        Err(refusal) => {
            context
                .metrics
                .access_denied(dialect.name(), refusal.label());
            log::info!(
                "peer={peer} dialect={dialect} path={}: refused: {refusal}",
                request.path()
            );
            let body = serde_json::json!({"error": refusal.to_string(), "code": refusal.code()});
            return Err((stream, Response::json(refusal.status(), &body), http));
        }
    };
    // The address's cap first: a client over it takes no slot from others.
    let from_peer = match admit_peer(context, peer) {
        Ok(place) => place,
        Err(refusal) => return Err((stream, refusal, http)),
    };
    let max = context.config().max_connections;
    let Some(slot) = Slot::reserve(&context.metrics, |m| &m.connections_open, max) else {
        context
            .metrics
            .handshake_failed(HandshakeFailure::AtCapacity);
        let busy = Response::text(503, "too many connections\n").with_header("Retry-After", "1");
        return Err((stream, busy, http));
    };
    let places = Places::new(slot, from_peer);
    let subprotocol = (dialect == Dialect::Concierge
        && route::offers(&request, concierge::SUBPROTOCOL))
    .then_some(concierge::SUBPROTOCOL);
    let left = deadline.saturating_duration_since(Instant::now());
    let sent = stream
        .set_write_timeout(Some(left.max(Duration::from_millis(100))))
        .and_then(|()| upgrade::send_switching_protocols(&stream, &accept, subprotocol));
    if sent.is_err() {
        return Ok(None); // the client left mid-handshake
    }
    drop(http); // a WebSocket now, counted by `places`
    context.metrics.connections_total.increment();
    let conn = ConnId(context.next_conn.fetch_add(1, Ordering::Relaxed));
    log::info!(
        "conn={} dialect={dialect}: connected from peer={peer}",
        conn.0
    );
    Ok(Some(Upgraded {
        stream,
        request,
        admission,
        conn,
        dialect,
        places: Arc::new(places),
    }))
}

/// Counts a WebSocket against its address's cap, when
/// `--max-connections-per-ip` sets one. At the cap, the answer is 429: the
/// server has room, this client has had its share.
fn admit_peer(context: &Context, peer: Peer) -> Result<Option<PeerPlace>, Response> {
    let (Some(max), Some(ip)) = (context.config().max_connections_per_ip, peer.ip()) else {
        return Ok(None);
    };
    match context.per_ip.admit(ip, max) {
        Some(place) => Ok(Some(place)),
        None => {
            context.metrics.connections_refused_per_ip.increment();
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
    fn resolve(&mut self, proxies: &TrustedProxies, request: &ClientRequest) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn healthz_is_503_when_the_router_does_not_answer() {
        // A command channel nobody reads: a router stuck on one command.
        let (router, _stuck) = crossbeam_channel::bounded(1);
        let context = Context::new(
            Config::default(),
            router,
            crossbeam_channel::unbounded().0,
            Arc::default(),
        )
        .unwrap();
        let response = health(&context);
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
        let context = Context::new(
            Config::default(),
            router,
            crossbeam_channel::unbounded().0,
            Arc::default(),
        )
        .unwrap();
        assert_eq!(health(&context).status, 200);
        assert!(answering.join().unwrap());
    }
}
