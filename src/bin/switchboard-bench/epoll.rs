//! `--receivers epoll`: one thread receives for every subscriber, over
//! non-blocking sockets watched with epoll(7), parsing frames with
//! `frames.rs`. It counts exactly what the threaded receivers count (the
//! same `Received::record`, the same stamp, the same endings), but where a
//! thousand receiver threads take a thousand wake-ups and context switches
//! per message from the CPUs the server runs on, this thread takes one
//! `epoll_wait` for however many sockets became readable.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::frames::{client_frame, Frame, PONG};
use crate::raw::{describe, Early, RawConn};
use crate::receive::{Received, POLL};
use crate::Res;

/// One read takes up to this much of a socket's queue: several 40 KB
/// deliveries per system call.
const SCRATCH: usize = 256 * 1024;
/// Ready sockets taken per `epoll_wait`.
const EVENTS: usize = 256;

/// Starts the receiving thread; it answers with one `Received` per
/// subscriber, in the order given.
pub fn spawn(
    conns: Vec<RawConn>,
    expected: u64,
    deadline: Instant,
    clock: Instant,
) -> Res<JoinHandle<Vec<Received>>> {
    Ok(thread::Builder::new()
        .name("receiver-epoll".into())
        .spawn(move || receive_all(conns, expected, deadline, clock))?)
}

fn receive_all(
    conns: Vec<RawConn>,
    expected: u64,
    deadline: Instant,
    clock: Instant,
) -> Vec<Received> {
    let mut subscribers: Vec<Subscriber> = conns
        .into_iter()
        .map(|conn| Subscriber::new(conn, expected, clock))
        .collect();
    if let Err(e) = watch(&mut subscribers, deadline, clock) {
        for subscriber in &mut subscribers {
            subscriber.end(format!("epoll: {e}"));
        }
    }
    subscribers.into_iter().map(|s| s.got).collect()
}

/// Reads every ready socket until all subscribers are done or `deadline`.
fn watch(subscribers: &mut [Subscriber], deadline: Instant, clock: Instant) -> io::Result<()> {
    let epoll = Epoll::new()?;
    let mut open = 0;
    for (token, subscriber) in subscribers.iter().enumerate() {
        if let Some(conn) = &subscriber.conn {
            conn.stream.set_nonblocking(true)?;
            epoll.add(conn.stream.as_raw_fd(), token as u64)?;
            open += 1;
        }
    }
    let mut scratch = vec![0; SCRATCH];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    while open > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            for subscriber in subscribers.iter_mut() {
                subscriber.end("timed out".into());
            }
            break;
        }
        let ready = epoll.wait(&mut events, left.min(POLL))?;
        for event in &events[..ready] {
            // The token is the subscriber's index (set by `add` above).
            let Some(subscriber) = usize::try_from(event.u64)
                .ok()
                .and_then(|i| subscribers.get_mut(i))
            else {
                continue;
            };
            if subscriber.conn.is_some() {
                subscriber.read_ready(&mut scratch, clock);
                // Closing the socket also took it out of the epoll set.
                if subscriber.conn.is_none() {
                    open -= 1;
                }
            }
        }
    }
    Ok(())
}

/// One subscriber: its connection while it is still receiving, and what
/// it counted.
struct Subscriber {
    conn: Option<RawConn>,
    got: Received,
    expected: u64,
}

impl Subscriber {
    /// Counts what arrived during setup first, in order.
    fn new(mut conn: RawConn, expected: u64, clock: Instant) -> Subscriber {
        let early = std::mem::take(&mut conn.early);
        let mut subscriber = Subscriber {
            conn: Some(conn),
            got: Received::new(expected),
            expected,
        };
        for frame in early {
            match frame {
                Early::Text(text) if subscriber.got.count < expected => {
                    subscriber.got.record(&text, clock);
                }
                Early::Text(_) => {}
                Early::Close(code) => {
                    subscriber.end(format!("closed by the server: {}", describe(&code)));
                }
            }
        }
        subscriber.end_if_done();
        subscriber
    }

    /// Reads what the socket holds, until it would block or this
    /// subscriber is done.
    fn read_ready(&mut self, scratch: &mut [u8], clock: Instant) {
        loop {
            match self.read_once(scratch, clock) {
                Ok(true) => self.end_if_done(),
                Ok(false) => return,
                Err(why) => {
                    self.end(why);
                    return;
                }
            }
        }
    }

    /// One read, and the messages it completed. Ok(false): nothing more to
    /// read for now (or no socket any more).
    fn read_once(&mut self, scratch: &mut [u8], clock: Instant) -> Result<bool, String> {
        let Subscriber {
            conn,
            got,
            expected,
        } = self;
        let Some(conn) = conn.as_mut() else {
            return Ok(false);
        };
        let read = match conn.stream.read(scratch) {
            Ok(0) => return Err("connection closed without a close frame".into()),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(e.to_string()),
        };
        let (mut close, mut pongs) = (None, Vec::new());
        conn.reader
            .feed(&scratch[..read], &mut |frame| match frame {
                // As the threaded receiver: nothing counts after the
                // close, or once everything expected is in.
                Frame::Text(text) if close.is_none() && got.count < *expected => {
                    got.record(text, clock);
                }
                Frame::Text(_) => {}
                Frame::Close(code) => {
                    close.get_or_insert(code);
                }
                Frame::Ping(payload) => pongs.push(client_frame(PONG, payload)),
            })
            .map_err(|e| e.to_string())?;
        if let Some(code) = close {
            return Err(format!("closed by the server: {}", describe(&code)));
        }
        answer(&mut conn.stream, &pongs)?;
        Ok(true)
    }

    fn end_if_done(&mut self) {
        if self.got.count >= self.expected {
            if let Some(conn) = self.conn.take() {
                conn.close_quietly();
            }
        }
    }

    /// Stops receiving, saying why (unless it already stopped).
    fn end(&mut self, why: String) {
        if let Some(conn) = self.conn.take() {
            self.got.ended.get_or_insert(why);
            conn.close_quietly();
        }
    }
}

/// Pongs, as tungstenite sends them for the threaded receivers, so that a
/// server's keepalive does not drop a subscriber that never speaks. The
/// socket does not block: a pong that does not fit at all is skipped (the
/// server pings again), and one cut short would corrupt the stream, so that
/// ends the subscriber. Neither happens in practice: a subscriber sends
/// nothing else, so its send buffer is empty.
fn answer(stream: &mut TcpStream, pongs: &[Vec<u8>]) -> Result<(), String> {
    for pong in pongs {
        match stream.write(pong) {
            Ok(written) if written == pong.len() => {}
            Ok(_) => return Err("a pong was cut short: send buffer full".into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// An epoll instance, closed on drop.
struct Epoll(OwnedFd);

#[allow(unsafe_code)]
impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result
        // is a new descriptor that nothing else owns.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: see above: `fd` is open and owned by no one else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input, reporting it with `token`.
    fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; `event` is a valid
        // epoll_event that the kernel only reads during the call.
        let result =
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for ready descriptors; returns how many of
    /// `events` were filled (0 on a timeout or a signal).
    fn wait(&self, events: &mut [libc::epoll_event], timeout: Duration) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // Rounded up, so a wait never turns into a busy loop.
        let millis = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // SAFETY: `events` is valid for `max` entries, which the kernel
        // fills and nothing else touches during the call.
        let ready =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, millis) };
        match usize::try_from(ready) {
            Ok(ready) => Ok(ready),
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(error)
                }
            }
        }
    }
}
