//! The router's deadlines, in one ordered set, so that its thread waits on
//! the earliest and never needs a thread per timer.

use std::collections::BTreeSet;
use std::time::Instant;

use super::command::ConnId;

/// Something that happens at a given instant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A concierge connection must have identified by now.
    Identify(ConnId),
    /// An emit stops waiting for ACKs (its event id).
    AckWait(String),
    /// Every channels client gets a PING; the silent ones are dropped.
    PingRound,
    /// A common client's HEARTBEAT is overdue.
    Heartbeat(ConnId),
    /// A blazing client's token expires.
    TokenExpiry(ConnId),
    /// A document (by computer id) is due to be saved.
    Save(String),
    /// A saved document nobody edits may leave memory.
    Forget(String),
    /// `$sys` listeners are due a status snapshot.
    SysSnapshot,
    /// In a cluster: this node announces its members again, which mends
    /// whatever record another node missed.
    #[cfg(feature = "redis")]
    Announce,
}

/// Timers ordered by when they fire.
#[derive(Debug, Default)]
pub struct Timers(BTreeSet<(Instant, Timer)>);

impl Timers {
    /// Schedules `timer` at `at`.
    pub fn set(&mut self, at: Instant, timer: Timer) {
        self.0.insert((at, timer));
    }

    /// Cancels `timer` scheduled at `at` (a no-op if it already fired).
    pub fn cancel(&mut self, at: Instant, timer: Timer) {
        self.0.remove(&(at, timer));
    }

    /// When the next timer fires.
    pub fn next(&self) -> Option<Instant> {
        self.0.first().map(|(at, _)| *at)
    }

    /// Removes and returns a timer due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.next()? > now {
            return None;
        }
        self.0.pop_first().map(|(_, timer)| timer)
    }
}
