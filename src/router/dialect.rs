//! Which protocol a member speaks: the router keeps it with each member
//! (listings show it, `hub.info` counts by it, some rules differ by it).
//! The protocols themselves, and how each renders the router's events,
//! are the layer above, `crate::dialect`, which adds its own methods to
//! this type (the closes each protocol sends).

use std::fmt;

/// The protocol a WebSocket connection speaks, chosen at the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// `/ws/echo`: every message comes straight back (for conformance tests).
    Echo,
    /// `/ws/concierge` or subprotocol `ert-concierge`.
    Concierge,
    /// `/<channel>/listen`.
    Channels,
    /// `/ws/common`.
    Common,
    /// `/ws/world/<world>`.
    World,
    /// `/ws/blazing`.
    Blazing,
}

impl Dialect {
    /// Every dialect, in a fixed order.
    pub const ALL: [Dialect; 6] = [
        Dialect::Echo,
        Dialect::Concierge,
        Dialect::Channels,
        Dialect::Common,
        Dialect::World,
        Dialect::Blazing,
    ];

    /// The dialect's name, as used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Echo => "echo",
            Dialect::Concierge => "concierge",
            Dialect::Channels => "channels",
            Dialect::Common => "common",
            Dialect::World => "world",
            Dialect::Blazing => "blazing",
        }
    }

    /// The dialect's position in [`Dialect::ALL`], for per-dialect tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the dialect's connections are registered with the router.
    pub fn uses_router(self) -> bool {
        match self {
            Dialect::Echo => false,
            Dialect::Concierge
            | Dialect::Channels
            | Dialect::Common
            | Dialect::World
            | Dialect::Blazing => true,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
