//! The reader thread of a WebSocket: reads the client's frames, answers
//! pings and closes through the outbox (never on the socket: see
//! [`super::connection`], "Why exactly one thread writes"), applies the rate
//! limit, and hands each message to its dialect's session.

use std::io::{self, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use tungstenite::protocol::WebSocket;
use tungstenite::{Error as WsError, Message};

use super::connection::{Ending, CLOSE_GRACE};
use super::outbox::Outbox;
use super::rate::{MessageLimit, Rate, Verdict};
use super::stack::Stack;
use super::stream::Stream;
use crate::dialect::{self, Dialect, Overrun, Received, Session, Step};
use crate::log;
use crate::metrics::Metrics;
use crate::router::{Command, Control};
use crate::wire::frame::{Close, Frame};

/// The reading side of the shared socket. Writes are discarded on purpose:
/// see the module documentation. Made, and read, on the reader thread.
pub(super) struct ReadHalf {
    stream: Arc<Stream>,
    /// The reader thread's stack, trimmed once the client falls quiet
    /// ([`super::stack`]).
    stack: Option<Stack>,
    /// Whether the thread may have gone deep since it last trimmed: it has
    /// read bytes (and handled them) since. True at first: the request
    /// was answered on the same stack.
    deep: bool,
}

/// How long a client must stay silent before its reader trims its stack:
/// long enough that a client in full flow never pays for a trim (and the
/// page faults after it), short enough that a hub of idle clients holds
/// only their shallow pages.
const QUIET: Duration = Duration::from_millis(50);

impl ReadHalf {
    /// The reading side of `stream`, for the calling thread.
    pub(super) fn new(stream: Arc<Stream>) -> ReadHalf {
        ReadHalf {
            stream,
            stack: Stack::of_this_thread(),
            deep: true,
        }
    }

    pub(super) fn stream(&self) -> &Stream {
        &self.stream
    }
}

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Under TLS, input may be waiting already decrypted: a wait on the
        // socket could hold it up, so a TLS reader trims at once.
        if self.deep && (self.stream.is_tls() || !input_within(self.stream.tcp(), QUIET)) {
            if let Some(stack) = &self.stack {
                stack.trim();
            }
            self.deep = false;
        }
        let read = self.read_waiting(buf);
        self.deep = self.deep || matches!(read, Ok(n) if n > 0);
        read
    }
}

impl ReadHalf {
    /// A read that waits for input up to the socket's read timeout, also
    /// across the moments the router makes the socket non-blocking to
    /// send from its spool (`net/send_now.rs`): a read that meets one
    /// returns at once with nothing, and is not a timeout.
    fn read_waiting(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !cfg!(target_os = "linux") {
            return (&*self.stream).read(buf); // no spool there
        }
        let started = Instant::now();
        loop {
            let error = match (&*self.stream).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => e,
                other => return other,
            };
            let tcp = self.stream.tcp();
            let left = match tcp.read_timeout() {
                Ok(Some(timeout)) => timeout.saturating_sub(started.elapsed()),
                Ok(None) => Duration::MAX, // no timeout: the read would wait on
                Err(_) => Duration::ZERO,
            };
            // Time left and input within it: read again (it will not
            // wait). Otherwise this was the timeout, or as good as.
            if left.is_zero() || !input_within(tcp, left) {
                return Err(error);
            }
        }
    }
}

/// Whether `socket` has input (or an error, or its end) within `wait`.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn input_within(socket: &std::net::TcpStream, wait: Duration) -> bool {
    use std::os::fd::AsRawFd;
    // `None`: a wait too long to have an end, such as `Duration::MAX`.
    let until = Instant::now().checked_add(wait);
    loop {
        let mut watched = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = match until {
            // Rounded up: a wait cut to 0 ms would end before its time.
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            }
            None => -1,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        match unsafe { libc::poll(&mut watched, 1, millis) } {
            0 => return false,
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            // Input, or an error the read that follows will meet.
            _ => return true,
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn input_within(_socket: &std::net::TcpStream, _wait: Duration) -> bool {
    true
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
pub(super) struct Reader<'a> {
    pub outbox: &'a Outbox,
    pub router: &'a Sender<Command>,
    pub metrics: &'a Metrics,
    pub max_message_bytes: usize,
    /// Silence after which the server pings; twice this ends the connection.
    pub keepalive: Duration,
    /// The message rate limit, if `--rate-limit` sets one.
    pub rate: Option<Rate>,
}

impl Reader<'_> {
    /// Reads messages until the connection ends. If this side closed it,
    /// then waits (briefly) for the client's closing reply.
    pub fn read_until_end(&self, ws: &mut WebSocket<ReadHalf>, session: &mut Session) -> Ending {
        // Each read waits at most one keepalive interval: a timeout is the
        // reader's cue to ping a silent client, or to give up on it.
        let _ = ws.get_ref().stream().set_read_timeout(Some(self.keepalive));
        let ending = match self.open(session) {
            Some(ending) => ending,
            None => self.read_messages(ws, session),
        };
        if let Ending::ServerClosed(_) = ending {
            await_close_reply(ws);
        }
        ending
    }

    /// Takes the steps a session starts with (a greeting, a first command
    /// for the router); returns how the connection ended if it did.
    #[inline(never)]
    fn open(&self, session: &mut Session) -> Option<Ending> {
        session
            .on_open()
            .into_iter()
            .find_map(|step| self.take(step))
    }

    fn count_in(&self, dialect: Dialect, bytes: usize) {
        self.metrics.messages_received.of(dialect).increment();
        self.metrics.bytes_received.of(dialect).add(bytes as u64);
    }

    /// The read loop: where a reader waits for most of its life, so its
    /// frame stays small and every message is handled in a call below it
    /// (see [`super::stack`]).
    #[inline(never)]
    fn read_messages(&self, ws: &mut WebSocket<ReadHalf>, session: &mut Session) -> Ending {
        let mut last_heard = Instant::now();
        let mut limit = self.rate.map(|rate| MessageLimit::new(rate, last_heard));
        loop {
            let handled = match ws.read() {
                Ok(message) => {
                    last_heard = Instant::now();
                    self.handle(message, session, &mut limit, last_heard)
                }
                Err(WsError::Io(e)) if is_timeout(&e) => self.keep_alive(session, last_heard),
                Err(error) => Some(self.fail(error)),
            };
            if let Some(ending) = handled {
                return ending;
            }
        }
    }

    /// After a keepalive interval of silence, pings; after two, gives up.
    #[inline(never)]
    fn keep_alive(&self, session: &Session, last_heard: Instant) -> Option<Ending> {
        if last_heard.elapsed() >= 2 * self.keepalive {
            return Some(self.close(session.dialect().silence_close(2 * self.keepalive)));
        }
        // Fails only for a client that is too slow or leaving: either way
        // it is on its way out.
        let _ = self.outbox.try_push(Frame::ping(b""));
        None
    }

    /// Handles one message received at `now`; returns how the connection
    /// ended if it did.
    #[inline(never)]
    fn handle(
        &self,
        message: Message,
        session: &mut Session,
        limit: &mut Option<MessageLimit>,
        now: Instant,
    ) -> Option<Ending> {
        let dialect = session.dialect();
        let step = match message {
            Message::Text(text) => {
                self.count_in(dialect, text.len());
                self.receive(session, limit, Received::Text(&text), now)
            }
            Message::Binary(bytes) => {
                self.count_in(dialect, bytes.len());
                self.receive(session, limit, Received::Binary(&bytes), now)
            }
            Message::Ping(payload) => Some(Step::Reply(Frame::pong(&payload))),
            Message::Pong(_) | Message::Frame(_) => None,
            Message::Close(frame) => {
                let code = frame.map(|f| u16::from(f.code));
                self.outbox.close(Frame::close_reply(code));
                return Some(Ending::ClientClosed(code));
            }
        };
        step.and_then(|step| self.take(step))
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
    #[inline(never)]
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
#[inline(never)]
fn await_close_reply(ws: &mut WebSocket<ReadHalf>) {
    let until = Instant::now() + CLOSE_GRACE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || ws.get_ref().stream().set_read_timeout(Some(left)).is_err() {
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// A reader's half of a connected pair, and the client's end.
    fn pair() -> (ReadHalf, TcpStream) {
        let (ours, client) = crate::net::loopback_pair();
        (ReadHalf::new(Arc::new(Stream::plain(ours))), client)
    }

    /// The router's spool makes the socket non-blocking for a moment
    /// (net/send_now.rs): a read that meets it is not a timeout. With
    /// the socket left non-blocking, the read still waits out the
    /// socket's read timeout.
    #[test]
    fn a_read_that_meets_a_non_blocking_socket_waits_its_timeout() {
        let (mut half, _client) = pair();
        let timeout = Duration::from_millis(300);
        half.stream().set_read_timeout(Some(timeout)).unwrap();
        half.stream().tcp().set_nonblocking(true).unwrap();
        let started = Instant::now();
        let error = half.read(&mut [0; 8]).unwrap_err();
        assert!(is_timeout(&error), "{error}");
        let waited = started.elapsed();
        assert!(waited >= timeout - Duration::from_millis(20), "{waited:?}");
    }

    #[test]
    fn bytes_that_arrive_while_the_socket_is_non_blocking_are_read() {
        let (mut half, mut client) = pair();
        let timeout = Duration::from_secs(60);
        half.stream().set_read_timeout(Some(timeout)).unwrap();
        half.stream().tcp().set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0; 8];
            let started = Instant::now();
            let read = half.read(&mut buf).map(|n| buf[..n].to_vec());
            (read.unwrap(), started.elapsed())
        });
        // Before or after the reader's first try: either way it gets them.
        client.write_all(b"hi").unwrap();
        let (read, waited) = reader.join().unwrap();
        assert_eq!(read, b"hi");
        assert!(waited < timeout);
    }

    /// Waited twice, the read would take at least twice its timeout; a
    /// loaded machine delays it by far less than one.
    #[test]
    fn a_real_timeout_is_still_a_timeout_and_waits_once() {
        let (mut half, _client) = pair();
        let timeout = Duration::from_secs(2);
        half.stream().set_read_timeout(Some(timeout)).unwrap();
        let started = Instant::now();
        let error = half.read(&mut [0; 8]).unwrap_err();
        assert!(is_timeout(&error), "{error}");
        let waited = started.elapsed();
        assert!(waited >= timeout - Duration::from_millis(20), "{waited:?}");
        assert!(waited < 2 * timeout, "waited twice: {waited:?}");
    }

    #[test]
    fn without_a_timeout_a_read_made_non_blocking_waits_for_input() {
        let (mut half, mut client) = pair();
        half.stream().set_read_timeout(None).unwrap();
        half.stream().tcp().set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0; 8];
            half.read(&mut buf).map(|n| buf[..n].to_vec()).unwrap()
        });
        client.write_all(b"late").unwrap();
        assert_eq!(reader.join().unwrap(), b"late");
    }
}
