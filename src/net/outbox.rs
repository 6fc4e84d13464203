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
//! outbox here owns no heap memory at all.
//!
//! The writer takes everything queued in one go ([`Outbox::next_batch`]) and
//! writes it with a single flush.

use std::collections::VecDeque;

use parking_lot::{Condvar, Mutex};

use super::frame::Frame;

/// Why a push did not enqueue the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue already holds its byte budget: the client is too slow.
    Full,
    /// The connection is closing; nothing more will be written.
    Closed,
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
}

struct State {
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    closed: bool,
    /// Closed by [`Outbox::abort`]: the writer should give up on frames it
    /// is still trying to write.
    aborted: bool,
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
            }),
            changed: Condvar::new(),
            budget,
        }
    }

    /// Enqueues `frame` unless the queue is over budget or closed. Never blocks.
    pub fn try_push(&self, frame: Frame) -> Result<(), PushError> {
        self.try_push_quietly(frame)?;
        self.wake();
        Ok(())
    }

    /// Like [`try_push`](Outbox::try_push), but leaves waking the writer to
    /// the caller, who calls [`wake`](Outbox::wake) once it has pushed
    /// everything it has for now: a writer then wakes once for many frames
    /// instead of once per frame. Returns whether a wake is needed: only a
    /// push into an empty queue can find the writer asleep.
    pub fn try_push_quietly(&self, frame: Frame) -> Result<bool, PushError> {
        let mut state = self.state.lock();
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

    /// Wakes the writer after [`try_push_quietly`](Outbox::try_push_quietly).
    pub fn wake(&self) {
        self.changed.notify_all();
    }

    /// Enqueues `frame`, waiting while the queue is over budget.
    pub fn push_wait(&self, frame: Frame) -> Result<(), PushError> {
        let mut state = self.state.lock();
        while !state.closed && state.over(self.budget, frame.len()) {
            self.changed.wait(&mut state);
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

    /// Whether [`abort`](Outbox::abort) was called: a writer stuck on a
    /// client that does not read can stop trying.
    pub fn is_aborted(&self) -> bool {
        self.state.lock().aborted
    }

    /// Whether the outbox has been closed (by any of the three ways).
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Waits for frames and takes all of them. Returns `None` once the
    /// outbox is closed and everything queued has been taken.
    pub fn next_batch(&self) -> Option<VecDeque<Frame>> {
        let mut state = self.state.lock();
        while state.queue.is_empty() && !state.closed {
            self.changed.wait(&mut state);
        }
        if state.queue.is_empty() {
            return None;
        }
        state.queued_bytes = 0;
        let batch = std::mem::take(&mut state.queue);
        drop(state);
        self.changed.notify_all();
        Some(batch)
    }

    fn finish(&self, close_frame: Option<Frame>, drop_queued: bool) {
        let mut state = self.state.lock();
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
        let state = self.state.lock();
        f.debug_struct("Outbox")
            .field("frames", &state.queue.len())
            .field("bytes", &state.queued_bytes)
            .field("closed", &state.closed)
            .finish()
    }
}

impl State {
    fn over(&self, budget: usize, incoming: usize) -> bool {
        !self.queue.is_empty() && self.queued_bytes + incoming > budget
    }

    fn enqueue(&mut self, frame: Frame) {
        self.queued_bytes += frame.len();
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
        outbox.close(Frame::close(&super::super::frame::Close::new(1000, "bye")));
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
        outbox.abort(Frame::close(&super::super::frame::Close::new(1013, "slow")));
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
