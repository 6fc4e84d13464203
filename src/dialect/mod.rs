//! Dialects: the protocols spoken over WebSocket, each a codec plus a small
//! per-connection state machine.
//!
//! A dialect's [`Session`] runs on the connection's reader thread and turns
//! each client frame into a [`Step`]: usually a [`Command`] for the router.
//! Its renderer ([`render`]) runs on the router thread and turns router
//! [`Event`]s into frames. No dialect touches another's state; they meet
//! only in the router's topics.

pub mod concierge;

use std::fmt;

use crate::config::Config;
use crate::net::frame::{Close, Frame};
use crate::router::{Command, ConnId, Event};

/// The protocol a WebSocket connection speaks, chosen at the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// `/ws/echo`: every message comes straight back (for conformance tests).
    Echo,
    /// `/ws/concierge` or subprotocol `ert-concierge`.
    Concierge,
}

impl Dialect {
    /// Every dialect, in a fixed order.
    pub const ALL: [Dialect; 2] = [Dialect::Echo, Dialect::Concierge];

    /// The dialect's name, as used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Echo => "echo",
            Dialect::Concierge => "concierge",
        }
    }

    /// The dialect's position in [`Dialect::ALL`], for per-dialect tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The close for a client silent for `limit` despite keepalive pings.
    /// No dialect document defines one, so all use 1001 (going away).
    pub fn silence_close(self, limit: std::time::Duration) -> Close {
        let reason = format!(
            "nothing received for {} ms, pings included",
            limit.as_millis()
        );
        match self {
            Dialect::Echo | Dialect::Concierge => Close::new(1001, reason),
        }
    }

    /// Whether the dialect's connections are registered with the router.
    pub fn uses_router(self) -> bool {
        match self {
            Dialect::Echo => false,
            Dialect::Concierge => true,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the reader thread does with one client frame.
#[derive(Debug)]
pub enum Step {
    /// Send this command to the router.
    Forward(Command),
    /// Write this frame back to the same client.
    Reply(Frame),
    /// Close the connection with this code and reason.
    Close(Close),
}

/// A connection's dialect state, owned by its reader thread.
#[derive(Debug)]
pub enum Session {
    /// Stateless: everything is echoed.
    Echo,
    /// A concierge client.
    Concierge(concierge::Session),
}

impl Session {
    /// The starting state of a `dialect` connection numbered `conn`.
    pub fn new(dialect: Dialect, conn: ConnId, config: &Config) -> Session {
        match dialect {
            Dialect::Echo => Session::Echo,
            Dialect::Concierge => {
                Session::Concierge(concierge::Session::new(conn, config.secret.clone()))
            }
        }
    }

    /// The dialect this session speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Session::Echo => Dialect::Echo,
            Session::Concierge(_) => Dialect::Concierge,
        }
    }

    /// Handles one complete text message.
    pub fn on_text(&mut self, text: &str) -> Step {
        match self {
            Session::Echo => Step::Reply(Frame::text(text)),
            Session::Concierge(session) => session.on_text(text),
        }
    }

    /// Handles one complete binary message.
    pub fn on_binary(&mut self, bytes: &[u8]) -> Step {
        match self {
            Session::Echo => Step::Reply(Frame::binary(bytes)),
            Session::Concierge(session) => session.on_binary(),
        }
    }
}

/// The frame a `dialect` client receives for `event`, or `None` if the event
/// means nothing in that dialect. A `Disconnect` renders as a close frame.
pub fn render(dialect: Dialect, event: &Event) -> Option<Frame> {
    match dialect {
        Dialect::Echo => None,
        Dialect::Concierge => Some(concierge::render::render(event)),
    }
}
