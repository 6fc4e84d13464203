//! Everything that ends a concierge connection, and its close code: the one
//! place where concierge failures meet the document's numbers.

use std::fmt;

use crate::router::Disconnect;
use crate::wire::frame::Close;

/// Why a concierge connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConciergeError {
    /// The first frame was not a decodable IDENTIFY (or was binary).
    Decode(String),
    /// The first frame was a valid payload, but not IDENTIFY (its type).
    NotIdentified(String),
    /// No IDENTIFY arrived in time.
    IdentifyTimeout,
    /// The requested name is taken.
    NameTaken(String),
    /// The `secret` did not match the server's.
    BadSecret,
    /// The client's `version` is unparseable or incompatible (it is given).
    BadVersion(String),
    /// The client's outbound queue overflowed.
    TooSlow,
    /// The server is shutting down.
    GoingAway,
    /// The server failed internally.
    Internal(String),
}

impl ConciergeError {
    /// The close code the document assigns to this failure.
    pub fn code(&self) -> u16 {
        match self {
            ConciergeError::Internal(_) => 4000,      // UNKNOWN
            ConciergeError::Decode(_) => 4002,        // FATAL_DECODE
            ConciergeError::NotIdentified(_) => 4003, // NO_AUTH
            ConciergeError::IdentifyTimeout => 4004,  // AUTH_FAILED
            ConciergeError::NameTaken(_) => 4005,     // DUPLICATE_AUTH
            ConciergeError::BadSecret => 4006,        // BAD_SECRET
            ConciergeError::BadVersion(_) => 4007,    // BAD_VERSION
            ConciergeError::TooSlow => 1013,          // RFC 6455: try again later
            ConciergeError::GoingAway => 1001,        // RFC 6455: going away
        }
    }

    /// The close frame content: the code, with this error's text as reason.
    pub fn close(&self) -> Close {
        Close::new(self.code(), self.to_string())
    }
}

impl From<&Disconnect> for ConciergeError {
    fn from(why: &Disconnect) -> ConciergeError {
        match why {
            Disconnect::IdentifyTimeout => ConciergeError::IdentifyTimeout,
            Disconnect::NameTaken(name) => ConciergeError::NameTaken(name.clone()),
            Disconnect::TooSlow => ConciergeError::TooSlow,
            Disconnect::Internal(why) => ConciergeError::Internal(why.clone()),
            Disconnect::ShuttingDown => ConciergeError::GoingAway,
            // Other dialects' reasons: they never reach a concierge client.
            Disconnect::PingTimeout
            | Disconnect::HeartbeatTimeout
            | Disconnect::Replaced
            | Disconnect::TokenExpired
            | Disconnect::NotGranted(_)
            | Disconnect::DocumentTooLarge(_)
            | Disconnect::RoomClosed => ConciergeError::Internal(why.to_string()),
        }
    }
}

impl fmt::Display for ConciergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConciergeError::Decode(why) => write!(f, "FATAL_DECODE: {why}"),
            ConciergeError::NotIdentified(kind) => {
                write!(f, "NO_AUTH: {kind} sent before IDENTIFY")
            }
            ConciergeError::IdentifyTimeout => f.write_str("AUTH_FAILED: no IDENTIFY in time"),
            ConciergeError::NameTaken(name) => write!(f, "DUPLICATE_AUTH: {name:?} is taken"),
            ConciergeError::BadSecret => f.write_str("BAD_SECRET: secret does not match"),
            ConciergeError::BadVersion(version) => write!(
                f,
                "BAD_VERSION: {version:?} is not compatible with {}",
                super::VERSION
            ),
            ConciergeError::TooSlow => f.write_str("too slow: outbound queue full"),
            ConciergeError::GoingAway => f.write_str("server shutting down"),
            ConciergeError::Internal(why) => write!(f, "UNKNOWN: {why}"),
        }
    }
}
