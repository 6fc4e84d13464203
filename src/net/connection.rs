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
//!   `Closed`, and says it has ended (`Outbox::reader_ended`, when its
//!   `Live` drops, however the reader ended).
//! - The writer stops when the outbox is closed and empty, or when a write
//!   fails, stalls for [`WRITE_STALL_TIMEOUT`](super::writer::WRITE_STALL_TIMEOUT), or is still blocked when the
//!   router aborts the outbox of a client too slow to keep up. After sending a close frame
//!   it waits (at most [`CLOSE_GRACE`]) for the reader to see the client's
//!   reply, then shuts the socket down, which also wakes a blocked reader.
//!
//! # Where each part lives
//!
//! This file starts the socket's thread and runs an upgraded connection;
//! [`super::dispatch`] answers the HTTP request that every socket starts
//! with; [`super::reader`] and [`super::writer`] are the two threads.

use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use tungstenite::protocol::{Role, WebSocket, WebSocketConfig};

use super::capacity;
use super::dispatch;
use super::http::Response;
use super::outbox::{Opened, Outbox};
use super::per_ip::PeerPlace;
use super::rate::Rate;
use super::reader::{ReadHalf, Reader};
use super::stream::Stream;
use super::threads;
use super::writer::{self, WRITER_STACK, WRITE_POLL};
use super::Context;
use crate::config::Config;
use crate::dialect::{self, Dialect, Session};
use crate::log;
use crate::metrics::{Counter, HandshakeFailure, Metrics};
use crate::router::{Command, ConnId};
use crate::wire::frame::{Close, Frame};
use crate::wire::request::ClientRequest;

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
/// How long the writer waits for the client's reply to a close frame.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The read buffer tungstenite starts with (it grows for larger frames),
/// which is also the most it reads per call: small, because every
/// connection holds one, busy or idle. Halving it from 1 KiB saved 0.4 KiB
/// per idle connection and cost a publisher nothing measurable (fan-out of
/// 4 KB frames to 50 subscribers, pinned: 516k deliveries/s at 1 KiB,
/// 524k at 512 B).
const READ_CHUNK: usize = 512;

/// Starts a thread that serves `stream` from its first byte to its last,
/// unless `--max-handshakes` sockets are already in their handshake: then
/// the socket gets a 503 (if its buffer takes it at once) and is closed.
pub(crate) fn spawn(stream: std::net::TcpStream, context: Arc<Context>) -> io::Result<()> {
    let max = context.config().max_handshakes;
    let Some(handshake) = Slot::reserve(&context.metrics, |m| &m.handshakes_open, max) else {
        context.metrics.handshake_failed(HandshakeFailure::Busy);
        let _ = stream.set_nonblocking(true);
        if context.speaks_tls() {
            return Ok(()); // a plain answer would be noise to a TLS client
        }
        let _ = Response::text(503, "too many handshakes in progress\n")
            .with_header("Retry-After", "1")
            .write_to(&stream);
        return Ok(());
    };
    threads::spawn(c"conn", READER_STACK, move || {
        if let Some(mut connection) = open(stream, &context, handshake) {
            connection.serve(&context);
        }
    })
    .map_err(|e| {
        let why = format!("cannot start a thread: {e}; {}", capacity::thread_hint());
        io::Error::new(e.kind(), why)
    })
}

/// What an open WebSocket counts against, given back when both its
/// threads have finished with it: a slot under `--max-connections`, and a
/// place under `--max-connections-per-ip` when that is set.
pub(super) struct Places {
    _connections: Slot,
    _from_peer: Option<PeerPlace>,
}

impl Places {
    /// Holds `connections` and `from_peer` until both threads are done.
    pub(super) fn new(connections: Slot, from_peer: Option<PeerPlace>) -> Places {
        Places {
            _connections: connections,
            _from_peer: from_peer,
        }
    }
}

/// One unit of a capped gauge (sockets in their handshake, open
/// WebSockets), held for as long as what it counts lives and given back
/// when dropped. A WebSocket's slot is shared by its reader and writer and
/// released when both have finished.
pub(super) struct Slot {
    metrics: Arc<Metrics>,
    gauge: fn(&Metrics) -> &Counter,
}

impl Slot {
    /// Takes a unit of `gauge` unless it already stands at `max`.
    pub(super) fn reserve(
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

/// A socket whose WebSocket handshake is done: what its connection starts
/// from ([`super::dispatch::serve`] returns it).
pub(super) struct Upgraded {
    pub(super) stream: Stream,
    pub(super) request: ClientRequest,
    pub(super) admission: dialect::credentials::Admission,
    pub(super) conn: ConnId,
    pub(super) dialect: Dialect,
    pub(super) places: Arc<Places>,
}

/// Answers the request and, for a WebSocket, sets the connection up, in a
/// call that returns before the connection's life begins: neither the
/// request nor the setup then keeps a place on the stack the reader waits
/// on for the rest of it (net/stack.rs).
#[inline(never)]
fn open(
    stream: std::net::TcpStream,
    context: &Arc<Context>,
    handshake: Slot,
) -> Option<Connection> {
    let upgraded = dispatch::serve(stream, context, handshake)?;
    let (conn, dialect) = (upgraded.conn, upgraded.dialect);
    // Counted before the router hears of it, so no frame reaches a client
    // the gauge does not count yet.
    context.metrics.connections.of(dialect).increment();
    Some(Connection {
        conn,
        dialect,
        live: Live::start(upgraded, context),
    })
}

/// An upgraded connection: set up (`Ok`) until it ends, then how it ended;
/// or refused while it was set up.
struct Connection {
    conn: ConnId,
    dialect: Dialect,
    live: Result<Live, Ending>,
}

impl Connection {
    /// Serves the connection until it ends, counted meanwhile among its
    /// dialect's open connections. It stays where `open` put it, on the
    /// caller's stack, and is read through a reference: each move would
    /// give it another place on the stack the reader waits on.
    fn serve(&mut self, context: &Context) {
        if let Ok(live) = &mut self.live {
            let ending = live.read_until_end(context);
            // The connection's state goes now, in place, before the log line
            // (whose write may block): the writer waits for the reader's
            // end, and the connection's places are given back.
            self.live = Err(ending);
        }
        context.metrics.connections.of(self.dialect).decrement();
        if let Err(ending) = &self.live {
            log::info!(
                "conn={} dialect={}: disconnected: {ending}",
                self.conn.0,
                self.dialect
            );
        }
    }
}

/// A connection from its start to its end: what its reader thread holds.
struct Live {
    conn: ConnId,
    /// Whether the router knows this connection (and must hear `Closed`).
    registered: bool,
    ws: WebSocket<ReadHalf>,
    session: Session,
    outbox: Arc<Outbox>,
    config: Arc<Config>,
    /// The reader's hold on the connection's places; the writer has the
    /// other, and the places are given back when both are dropped.
    _places: Arc<Places>,
}

impl Live {
    /// Starts the writer and tells the router. Never inlined, so that what
    /// setting up takes from the stack is not under the read loop.
    #[inline(never)]
    fn start(upgraded: Upgraded, context: &Arc<Context>) -> Result<Live, Ending> {
        let Upgraded {
            stream,
            mut request,
            admission,
            conn,
            dialect,
            places,
        } = upgraded;
        let config = context.config();
        // Failing to set these options leaves defaults that still work.
        let _ = stream.set_write_timeout(Some(WRITE_POLL));
        let _ = stream.tcp().set_nodelay(true);
        let stream = Arc::new(stream);
        // The router writes through to the socket while the writer is idle
        // (net/outbox.rs, "Write-through"): plaintext frames, so never to a
        // TLS socket, whose bytes only the writer may seal (net/tls.rs).
        let outbox = Arc::new(match stream.is_tls() {
            true => Outbox::new(config.max_queued_bytes),
            false => Outbox::writing_through(config.max_queued_bytes, stream.tcp().clone()),
        });
        let writer = {
            let (stream, outbox, places) = (stream.clone(), outbox.clone(), places.clone());
            threads::spawn(c"conn-writer", WRITER_STACK, move || {
                writer::write_until_closed(&stream, &outbox, places);
            })
        };
        if let Err(error) = writer {
            let close = Close::new(1013, "server busy: cannot start a thread");
            let _ = (&*stream).write_all(&Frame::close(&close).to_vec());
            return Err(Ending::Refused(format!(
                "no writer thread: {error}; {}",
                capacity::thread_hint()
            )));
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
            if context.opened.send(opened).is_err() || context.router.send(open).is_err() {
                outbox.close(Frame::close(&Close::new(1011, "router stopped")));
                outbox.reader_ended(); // no reader will follow
                return Err(Ending::Refused("router stopped".into()));
            }
        }
        let session = Session::new(dialect, conn, &config, &request, admission);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(READ_CHUNK)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_message_bytes));
        let leftover = std::mem::take(&mut request.leftover);
        // The session has taken what it needs from the request; its headers
        // would otherwise be held for the connection's whole life.
        drop(request);
        let ws = WebSocket::from_partially_read(
            ReadHalf::new(stream),
            leftover,
            Role::Server,
            Some(ws_config),
        );
        Ok(Live {
            conn,
            registered,
            ws,
            session,
            outbox,
            config,
            _places: places,
        })
    }

    /// Reads until the connection ends, then lets the router go (the
    /// writer goes when the connection's state drops).
    fn read_until_end(&mut self, context: &Context) -> Ending {
        let reader = Reader {
            outbox: &self.outbox,
            router: &context.router,
            metrics: &context.metrics,
            max_message_bytes: self.config.max_message_bytes,
            keepalive: self.config.keepalive,
            rate: Rate::from_config(&self.config),
        };
        // Whatever happens while reading, the router must hear `Closed` and
        // the writer must be let go: a panic here ends this connection only.
        let ending = panic::catch_unwind(AssertUnwindSafe(|| {
            reader.read_until_end(&mut self.ws, &mut self.session)
        }))
        .unwrap_or_else(|_| {
            let close = self.session.dialect().internal_error_close();
            self.outbox.close(Frame::close(&close));
            Ending::Gone("the connection's handler failed".into())
        });
        self.outbox.shut();
        if self.registered {
            // Fails only if the router is gone.
            let _ = context.router.send(Command::Closed { conn: self.conn });
        }
        ending
    }
}

impl Drop for Live {
    /// However the reader ends, even by a panic outside its guard, the
    /// writer must not wait for it any longer.
    fn drop(&mut self) {
        self.outbox.reader_ended();
    }
}

/// How a connection ended, for the log.
#[derive(Debug)]
pub(super) enum Ending {
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
