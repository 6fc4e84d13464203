//! A connection's bounded outbound queue: many producers, one writer.
//!
//! The router pushes with [`Outbox::try_push`], which never blocks: when a
//! client's queue already holds more than its byte budget, the push fails and
//! the router disconnects that client instead of waiting for it or buffering
//! without end. The connection's own reader pushes control replies (pong,
//! close) and echoes with [`Outbox::push_wait`], which does wait: a client that
//! pings faster than it reads only slows itself down.
//!
//! The queue is a `VecDeque` behind a mutex rather than a bounded channel
//! because a bounded channel preallocates every slot: an idle connection's
//! outbox here owns at most the small buffer its queue grew to (32 bytes
//! for the one frame a first push makes room for).
//!
//! The writer takes everything queued in one go ([`Outbox::next_batch`]) and
//! writes it with a single flush.
//!
//! **Write-through.** Waking a writer thread per recipient costs a context
//! switch per recipient: a publish to 1,000 subscribers would wake 1,000
//! threads. So after each batch of commands, for an outbox whose writer is
//! not writing, the router hands what is queued straight to the kernel
//! without waiting ([`Outbox::flush_or_wake`], with [`send_now`]); only
//! what the kernel does not take wakes the writer. Frames are queued first
//! and sent per batch, not one by one, so a busy connection still gets
//! many frames per system call. Large frames too: the socket's send
//! buffer bounds what one call takes, and measured, sending a fan-out of
//! 39.5 KB frames from the router's one thread beats waking a writer per
//! recipient, pinned or not (docs/performance.md). The
//! invariant that keeps frames whole and in order: the socket's write side
//! has one owner at a time, decided under the outbox's lock. The writer
//! owns it from taking a batch until it comes back to an empty queue
//! (`writing`); the router only while it holds the lock, and only if the
//! writer is not writing. What the kernel cut short stays at the front of
//! the queue, so the writer continues exactly where it stopped.
//!
//! A large frame shared by many recipients goes from the router's
//! [`Spool`] instead of from memory, so that the kernel does not copy it
//! into every socket (see [`super::spool`]); frames in a row that lie back
//! to back there go in one call.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::TcpStream;
// std's lock and condvar, not parking_lot's: every writer thread waits
// here, and a thread that waits through parking_lot gets a place in its
// global table, which grows with the threads (and a heap cache of the
// thread's own in glibc): about 1 KiB per connection, measured. std's
// wait on a futex in place.
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::send_now::{gather, send_now, MAX_SLICES};
use super::spool::Spool;
use crate::router::{ConnId, Dialect};
use crate::wire::frame::Frame;

/// Why a push did not enqueue the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue already holds its byte budget: the client is too slow.
    Full,
    /// The connection is closing; nothing more will be written.
    Closed,
}

/// A new connection's outbox, for the router thread, which delivers the
/// router's frames: sent before the router hears of the connection
/// (`Command::Open`), so that its frames have somewhere to go. The router
/// itself never sees an outbox.
#[derive(Debug)]
pub struct Opened {
    /// The connection.
    pub conn: ConnId,
    /// The protocol it speaks: how the router's events are rendered for it.
    pub dialect: Dialect,
    /// Where its frames go, until the router hears `Command::Closed`.
    pub outbox: Arc<Outbox>,
}

/// The bounded queue of frames waiting for a connection's writer thread.
///
/// Shared (`Arc`) by the router, the connection's reader and its writer.
/// Nobody closes it by dropping it: it is closed explicitly with
/// [`close`](Outbox::close), [`abort`](Outbox::abort) or
/// [`shut`](Outbox::shut), which wakes the writer so it can finish.
pub struct Outbox {
    state: Mutex<State>,
    /// Signalled when frames arrive or the outbox closes (the writer waits
    /// on it) and when the writer takes a batch (a waiting `push_wait` does).
    changed: Condvar,
    /// Queued bytes above which pushes fail (`try_push`) or wait (`push_wait`).
    budget: usize,
    /// The connection's socket, for writing through; `None` writes every
    /// frame through the writer. Shared with the connection, which owns
    /// and closes the socket; this is only another handle on it.
    socket: Option<Arc<TcpStream>>,
}

struct State {
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    closed: bool,
    /// Closed by [`Outbox::abort`]: the writer should give up on frames it
    /// is still trying to write.
    aborted: bool,
    /// The writer holds a batch it is writing: the socket's write side is
    /// its until it comes back for more and finds nothing.
    writing: bool,
    /// The connection's reader has ended ([`Outbox::reader_ended`]).
    reader_gone: bool,
}

impl Outbox {
    /// An empty outbox that accepts frames while fewer than `budget` bytes
    /// are queued. A single frame larger than the budget is still accepted
    /// into an empty queue, so any message within the size limit can go out.
    pub fn new(budget: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queued_bytes: 0,
                closed: false,
                aborted: false,
                writing: false,
                reader_gone: false,
            }),
            changed: Condvar::new(),
            budget,
            socket: None,
        }
    }

    /// Like [`new`](Outbox::new), writing through to `socket` when it can
    /// (see the module's "Write-through").
    pub fn writing_through(budget: usize, socket: Arc<TcpStream>) -> Outbox {
        Outbox {
            socket: Some(socket),
            ..Outbox::new(budget)
        }
    }

    /// Enqueues `frame` unless the queue is over budget or closed. Never blocks.
    pub fn try_push(&self, frame: Frame) -> Result<(), PushError> {
        self.try_push_quietly(frame)?;
        self.wake();
        Ok(())
    }

    /// Like [`try_push`](Outbox::try_push), but leaves waking the writer to
    /// the caller, who calls [`flush_or_wake`](Outbox::flush_or_wake) once
    /// it has pushed everything it has for now: a writer then wakes (or the
    /// kernel is called) once for many frames instead of once per frame.
    /// Returns whether that call is needed: only a push into an empty queue
    /// can find the writer asleep.
    pub fn try_push_quietly(&self, frame: Frame) -> Result<bool, PushError> {
        let mut state = self.lock();
        if state.closed {
            return Err(PushError::Closed);
        }
        if state.over(self.budget, frame.len()) {
            return Err(PushError::Full);
        }
        let was_empty = state.queue.is_empty();
        state.enqueue(frame);
        Ok(was_empty)
    }

    /// The state, even if a thread panicked while holding it: no change to
    /// it is left half made by a panic (none can panic midway).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `changed`, giving up the lock meanwhile.
    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the writer after a push.
    fn wake(&self) {
        self.changed.notify_all();
    }

    /// What the router calls instead of `wake` once it has
    /// pushed everything it has for now: if the writer is idle, what is
    /// queued goes to the kernel at once, in a system call per run of
    /// frames (those the router spooled this turn from `spool`, the others
    /// from memory), and the writer sleeps on; whatever the kernel does
    /// not take wakes the writer.
    pub fn flush_or_wake(&self, spool: &Spool) {
        let mut state = self.lock();
        let mine = !state.writing && !state.closed;
        if let (Some(socket), true) = (&self.socket, mine) {
            // The write side is ours while the lock is held.
            state.write_through(socket, spool);
        }
        let pending = !state.queue.is_empty();
        drop(state);
        if pending {
            self.changed.notify_all();
        }
    }

    /// Enqueues `frame`, waiting while the queue is over budget.
    pub fn push_wait(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.lock();
        while !state.closed && state.over(self.budget, frame.len()) {
            state = self.wait(state);
        }
        if state.closed {
            return Err(PushError::Closed);
        }
        state.enqueue(frame);
        drop(state);
        self.changed.notify_all();
        Ok(())
    }

    /// Enqueues a final close frame after everything already queued and
    /// refuses all later pushes. Does nothing if already closed.
    pub fn close(&self, close_frame: Frame) {
        self.finish(Some(close_frame), false);
    }

    /// Like [`close`](Outbox::close), but first drops whatever is still
    /// queued: for a client too slow to be worth the wait.
    pub fn abort(&self, close_frame: Frame) {
        self.finish(Some(close_frame), true);
    }

    /// Refuses all later pushes and lets the writer stop once it has written
    /// what is queued. For a connection whose socket is already gone.
    pub fn shut(&self) {
        self.finish(None, false);
    }

    /// Says that the connection's reader has ended, and shuts the outbox: a
    /// writer waiting for the client's reply to its close frame
    /// ([`await_reader`](Outbox::await_reader)) may stop waiting.
    pub fn reader_ended(&self) {
        self.shut();
        self.lock().reader_gone = true;
        self.changed.notify_all();
    }

    /// Waits at most `grace` for the reader to end; returns whether it did.
    pub fn await_reader(&self, grace: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, grace, |state| !state.reader_gone)
            .unwrap_or_else(PoisonError::into_inner);
        state.reader_gone
    }

    /// Whether [`abort`](Outbox::abort) was called: a writer stuck on a
    /// client that does not read can stop trying.
    pub fn is_aborted(&self) -> bool {
        self.lock().aborted
    }

    /// Waits for frames and takes all of them. Returns `None` once the
    /// outbox is closed and everything queued has been taken.
    pub fn next_batch(&self) -> Option<VecDeque<Frame>> {
        let mut state = self.lock();
        // The last batch is written: the write side is free until the
        // writer takes another.
        state.writing = false;
        while state.queue.is_empty() && !state.closed {
            state = self.wait(state);
        }
        if state.queue.is_empty() {
            return None;
        }
        state.queued_bytes = 0;
        state.writing = true;
        let batch = std::mem::take(&mut state.queue);
        drop(state);
        self.changed.notify_all();
        Some(batch)
    }

    fn finish(&self, close_frame: Option<Frame>, drop_queued: bool) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if drop_queued {
            state.queue.clear();
            state.queued_bytes = 0;
            state.aborted = true;
        }
        if let Some(frame) = close_frame {
            state.enqueue(frame);
        }
        state.closed = true;
        drop(state);
        self.changed.notify_all();
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("Outbox")
            .field("frames", &state.queue.len())
            .field("bytes", &state.queued_bytes)
            .field("closed", &state.closed)
            .finish()
    }
}

impl State {
    /// Sends the queued frames, never waiting: spooled frames in a row
    /// from the spool, others from memory, each run in one call, until
    /// the queue is empty or the kernel takes less than it was given.
    /// Drops what went, and keeps the rest of a frame cut short at the
    /// front.
    fn write_through(&mut self, socket: &TcpStream, spool: &Spool) {
        while !self.queue.is_empty() {
            let (from_spool, offered, sent) = match spool.span(&self.queue) {
                Some(span) => (true, span.len, spool.send(socket, span)),
                None => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    let unspooled = self.queue.iter().take_while(|f| spool.find(f).is_none());
                    let count = gather(&mut unspooled.flat_map(Frame::slices), &mut slices);
                    let offered = slices[..count].iter().map(|s| s.len()).sum();
                    (false, offered, send_now(socket, &slices[..count]))
                }
            };
            let sent = match sent {
                Ok(sent) => sent,
                // The spool has just turned itself off: these go from
                // memory. (Only once: an off spool spans nothing.)
                Err(_) if from_spool && spool.is_refused() => continue,
                Err(_) => return, // a full buffer, or a failure the writer will meet
            };
            self.drop_sent(sent);
            if sent < offered {
                return;
            }
        }
    }

    /// Drops the first `sent` bytes of the queue: the frames that went
    /// whole, and the front of one cut short, whose rest stays first.
    fn drop_sent(&mut self, mut sent: usize) {
        while let Some(front) = self.queue.front() {
            let len = front.len();
            if sent < len {
                if sent > 0 {
                    let rest = front.rest_after(sent);
                    self.queue[0] = rest;
                    self.queued_bytes -= sent;
                }
                return;
            }
            sent -= len;
            self.queued_bytes -= len;
            self.queue.pop_front();
        }
    }

    fn over(&self, budget: usize, incoming: usize) -> bool {
        !self.queue.is_empty() && self.queued_bytes + incoming > budget
    }

    fn enqueue(&mut self, frame: Frame) {
        self.queued_bytes += frame.len();
        if self.queue.capacity() == 0 {
            // Room for one, not the four a first push makes: written
            // through, an idle connection's frames come one at a time, and
            // it keeps this buffer while idle (32 bytes, not 128).
            self.queue.reserve_exact(1);
        }
        self.queue.push_back(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn try_push_fails_when_over_budget_but_always_takes_one_frame() {
        let outbox = Outbox::new(10);
        let big = Frame::text(&"x".repeat(50));
        assert_eq!(outbox.try_push(big.clone()), Ok(()));
        assert_eq!(outbox.try_push(Frame::text("y")), Err(PushError::Full));
        assert_eq!(outbox.next_batch().map(|b| b.len()), Some(1));
        assert_eq!(outbox.try_push(Frame::text("y")), Ok(()));
    }

    #[test]
    fn close_keeps_queued_frames_and_ends_with_the_close_frame() {
        let outbox = Outbox::new(1000);
        outbox.try_push(Frame::text("a")).unwrap();
        outbox.close(Frame::close(&crate::wire::frame::Close::new(1000, "bye")));
        assert_eq!(outbox.try_push(Frame::text("b")), Err(PushError::Closed));
        let batch = outbox.next_batch().unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].to_vec()[0], 0x88);
        assert!(outbox.next_batch().is_none());
    }

    #[test]
    fn abort_drops_queued_frames() {
        let outbox = Outbox::new(1000);
        outbox.try_push(Frame::text("a")).unwrap();
        outbox.abort(Frame::close(&crate::wire::frame::Close::new(1013, "slow")));
        let batch = outbox.next_batch().unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].to_vec()[0], 0x88);
        assert!(outbox.is_aborted());
    }

    #[test]
    fn push_wait_resumes_when_the_writer_takes_a_batch() {
        let outbox = Arc::new(Outbox::new(4));
        outbox.try_push(Frame::text("abcd")).unwrap();
        let pusher = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.push_wait(Frame::text("e")))
        };
        let first = outbox.next_batch().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(pusher.join().unwrap(), Ok(()));
        assert_eq!(outbox.next_batch().unwrap()[0], Frame::text("e"));
    }

    /// A connected pair: the outbox writes through to `.0`; `.1` reads.
    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let (ours, theirs) = crate::net::loopback_pair();
        (Arc::new(ours), theirs)
    }

    /// A spool whose sends fail for the file's sake: its file is open for
    /// writing only, which `sendfile` cannot read.
    #[cfg(target_os = "linux")]
    fn refusing_spool(name: &str) -> crate::net::spool::Spool {
        let path = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
        let write_only = std::fs::File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        crate::net::spool::Spool::with_file(write_only)
    }

    fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        use std::io::Read;
        let mut bytes = vec![0; n];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    }

    fn queued(outbox: &Outbox) -> usize {
        outbox.lock().queue.len()
    }

    #[test]
    fn an_idle_writer_is_not_woken_the_frame_goes_straight_out() {
        let (ours, mut theirs) = pair();
        let outbox = Outbox::writing_through(1 << 20, ours);
        let frame = Frame::text("hello");
        assert_eq!(outbox.try_push_quietly(frame.clone()), Ok(true));
        outbox.flush_or_wake(&Spool::disabled());
        assert_eq!(read_exactly(&mut theirs, frame.len()), frame.to_vec());
        assert_eq!(queued(&outbox), 0, "nothing is left for the writer");
    }

    #[test]
    fn a_frame_larger_than_the_buffers_is_cut_and_its_rest_left_to_the_writer() {
        let (ours, mut theirs) = pair();
        let outbox = Outbox::writing_through(64 << 20, ours);
        // Larger than any loopback socket's buffers, and nobody reads yet.
        let big = Frame::text(&"0123456789".repeat(1 << 20));
        outbox.try_push_quietly(big.clone()).unwrap();
        outbox.flush_or_wake(&Spool::disabled());
        let rest = outbox.next_batch().unwrap();
        assert_eq!(rest.len(), 1, "the cut frame waits for the writer");
        let (whole, rest) = (big.to_vec(), rest[0].to_vec());
        assert!(
            !rest.is_empty() && rest.len() < whole.len(),
            "{}",
            rest.len()
        );
        let sent = whole.len() - rest.len();
        assert_eq!(read_exactly(&mut theirs, sent), whole[..sent]);
        assert!(whole.ends_with(&rest));
    }

    #[test]
    fn while_the_writer_writes_frames_queue_behind_its_batch() {
        let (ours, _theirs) = pair();
        let outbox = Outbox::writing_through(1 << 20, ours);
        outbox.push_wait(Frame::text("first")).unwrap();
        // The writer takes "first" and is writing it: the write side is
        // the writer's, so "second" must queue rather than overtake.
        let batch = outbox.next_batch().unwrap();
        assert_eq!(batch.len(), 1);
        outbox.try_push_quietly(Frame::text("second")).unwrap();
        outbox.flush_or_wake(&Spool::disabled());
        assert_eq!(queued(&outbox), 1, "the router left the socket alone");
        let next = outbox.next_batch().unwrap();
        assert_eq!(next[0], Frame::text("second"));
    }

    #[test]
    fn what_the_kernel_does_not_take_is_queued_whole_and_in_order() {
        let (ours, mut theirs) = pair();
        let outbox = Outbox::writing_through(64 << 20, ours);
        // Nobody reads: the send buffer fills; the frame it cuts short
        // stays at the front from where it stopped, later frames behind.
        let payload = "z".repeat(4 * 1024);
        let mut pushed = Vec::new();
        for i in 0..100_000 {
            let frame = Frame::text(&format!("{i:06}{payload}"));
            pushed.push(frame.clone());
            outbox.try_push_quietly(frame).unwrap();
            outbox.flush_or_wake(&Spool::disabled());
            if queued(&outbox) > 0 {
                break;
            }
        }
        assert!(queued(&outbox) > 0, "the buffers never filled");
        for i in pushed.len()..pushed.len() + 3 {
            let frame = Frame::text(&format!("{i:06}{payload}"));
            pushed.push(frame.clone());
            outbox.try_push_quietly(frame).unwrap();
        }
        // The writer's part: write what is queued, in order.
        let writer = std::thread::spawn({
            let outbox = Arc::new(outbox);
            move || {
                use std::io::Write;
                let socket = outbox.socket.clone().unwrap();
                while let Some(batch) = outbox.next_batch() {
                    for frame in batch {
                        (&*socket).write_all(&frame.to_vec()).unwrap();
                    }
                    if queued(&outbox) == 0 {
                        outbox.shut();
                    }
                }
            }
        });
        let expected: Vec<u8> = pushed.iter().flat_map(Frame::to_vec).collect();
        assert_eq!(read_exactly(&mut theirs, expected.len()), expected);
        writer.join().unwrap();
    }

    /// Frames from the spool and from memory, mixed, arrive whole and in
    /// order, also when the kernel cuts the spooled run short and the
    /// writer sends the rest from memory after the spool has moved on.
    #[test]
    #[cfg(target_os = "linux")]
    fn spooled_and_other_frames_go_out_in_order() {
        use crate::net::spool::{self, Spool};
        let (ours, mut theirs) = pair();
        let outbox = Arc::new(Outbox::writing_through(64 << 20, ours));
        let mut spool = Spool::in_memory();
        let big = |i: u8| Frame::binary(&vec![i; spool::MIN_BYTES + usize::from(i) * 4099]);
        let mut pushed = vec![Frame::text("first")];
        pushed.extend((1..4).map(big));
        pushed.push(Frame::text("between"));
        // More than loopback's buffers take while nobody reads.
        pushed.extend((4..150).map(big));
        for frame in &pushed {
            spool.keep(frame, spool::MIN_RECIPIENTS);
            outbox.try_push_quietly(frame.clone()).unwrap();
        }
        assert!(spool.find(&pushed[1]).is_some() && spool.find(&pushed[0]).is_none());
        outbox.flush_or_wake(&spool);
        let left = queued(&outbox);
        assert!(left > 0 && left < pushed.len(), "{left} frames left");
        spool.clear();
        // The writer's part: the rest, from memory.
        let writer = std::thread::spawn({
            let outbox = outbox.clone();
            move || {
                use std::io::Write;
                let socket = outbox.socket.clone().unwrap();
                let batch = outbox.next_batch().unwrap();
                for frame in batch {
                    (&*socket).write_all(&frame.to_vec()).unwrap();
                }
            }
        });
        let expected: Vec<u8> = pushed.iter().flat_map(Frame::to_vec).collect();
        let got = read_exactly(&mut theirs, expected.len());
        assert!(got == expected, "the bytes differ");
        writer.join().unwrap();
    }

    /// A spool that cannot send turns itself off, and what it held goes
    /// from memory in the same flush.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_refused_spool_turns_off_and_its_frames_go_from_memory() {
        use crate::net::spool;
        let (ours, mut theirs) = pair();
        let outbox = Outbox::writing_through(1 << 20, ours);
        let mut spool = refusing_spool("spool");
        let frame = Frame::binary(&vec![9; spool::MIN_BYTES]);
        assert!(spool.keep(&frame, spool::MIN_RECIPIENTS));
        outbox.try_push_quietly(frame.clone()).unwrap();
        outbox.flush_or_wake(&spool);
        assert!(spool.is_refused());
        assert_eq!(read_exactly(&mut theirs, frame.len()), frame.to_vec());
        assert_eq!(queued(&outbox), 0, "nothing was left for the writer");
        let next = Frame::binary(&vec![8; spool::MIN_BYTES]);
        assert!(!spool.keep(&next, 100), "off for good");
    }

    /// When the spool turns itself off and the socket then fails too (its
    /// peer gone), the flush ends and leaves the frame to the writer: it
    /// does not try the socket again and again.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_refused_spool_and_a_failing_socket_end_the_flush() {
        use crate::net::spool;
        let (ours, _theirs) = pair();
        ours.shutdown(std::net::Shutdown::Write).unwrap();
        let outbox = Outbox::writing_through(1 << 20, ours);
        let mut spool = refusing_spool("spool2");
        let frame = Frame::binary(&vec![7; spool::MIN_BYTES]);
        assert!(spool.keep(&frame, spool::MIN_RECIPIENTS));
        outbox.try_push_quietly(frame).unwrap();
        // On a thread, so that a flush that never ends fails the test.
        let (done, flushed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            outbox.flush_or_wake(&spool);
            let _ = done.send((outbox, spool));
        });
        let (outbox, spool) = flushed
            .recv_timeout(Duration::from_secs(60))
            .expect("the flush ended");
        assert!(spool.is_refused());
        assert_eq!(queued(&outbox), 1, "the frame waits for the writer");
    }

    #[test]
    fn a_writer_awaiting_the_reader_goes_when_it_ends_and_not_before() {
        let outbox = Arc::new(Outbox::new(1000));
        assert!(
            !outbox.await_reader(Duration::ZERO),
            "the reader is still there"
        );
        let writer = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.await_reader(Duration::from_secs(60)))
        };
        outbox.reader_ended();
        assert!(
            writer.join().unwrap(),
            "woken by the reader's end, not the grace"
        );
        assert_eq!(outbox.try_push(Frame::ping(b"")), Err(PushError::Closed));
    }

    #[test]
    fn shut_wakes_a_waiting_writer() {
        let outbox = Arc::new(Outbox::new(4));
        let writer = {
            let outbox = outbox.clone();
            std::thread::spawn(move || outbox.next_batch().is_none())
        };
        outbox.shut();
        assert!(writer.join().unwrap());
    }
}
