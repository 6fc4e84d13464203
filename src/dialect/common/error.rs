//! Everything that ends a common connection, and its close code: the
//! document's three, and RFC 6455's for what the document leaves open.

use std::fmt;

use crate::router::Disconnect;
use crate::wire::frame::Close;

/// Why a common connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommonError {
    /// HELLO_ACK with the wrong password (4001).
    AuthFailed,
    /// HEARTBEAT, REQUEST or DISPATCH before a good HELLO_ACK (4002).
    NotAuthenticated(&'static str),
    /// No HEARTBEAT within `hb_interval` + 1 s (4003).
    HeartbeatTimeout,
    /// A payload that does not decode: not JSON, not an object, a field
    /// missing or mistyped (1007, "invalid payload data").
    Malformed(String),
    /// A well-formed payload a client may not send: an unknown op, a
    /// server's op, a second HELLO_ACK (1008, "policy violation").
    Unexpected(String),
    /// A binary frame (1003, "unsupported data"): the protocol is JSON text.
    Binary,
    /// The client reads too slowly (1013, "try again later").
    TooSlow,
    /// The server is shutting down (1001, "going away").
    GoingAway,
    /// The server failed (1011).
    Internal(String),
}

impl CommonError {
    /// The close code for this failure.
    pub fn code(&self) -> u16 {
        match self {
            CommonError::AuthFailed => 4001,
            CommonError::NotAuthenticated(_) => 4002,
            CommonError::HeartbeatTimeout => 4003,
            CommonError::Malformed(_) => 1007,
            CommonError::Unexpected(_) => 1008,
            CommonError::Binary => 1003,
            CommonError::TooSlow => 1013,
            CommonError::GoingAway => 1001,
            CommonError::Internal(_) => 1011,
        }
    }

    /// The close frame content: the code, with this error's text as reason.
    pub fn close(&self) -> Close {
        Close::new(self.code(), self.to_string())
    }
}

impl From<&Disconnect> for CommonError {
    fn from(why: &Disconnect) -> CommonError {
        match why {
            // Before HELLO_ACK the identify deadline is the heartbeat window.
            Disconnect::HeartbeatTimeout | Disconnect::IdentifyTimeout => {
                CommonError::HeartbeatTimeout
            }
            Disconnect::TooSlow => CommonError::TooSlow,
            Disconnect::ShuttingDown => CommonError::GoingAway,
            Disconnect::Internal(why) => CommonError::Internal(why.clone()),
            other => CommonError::Internal(other.to_string()),
        }
    }
}

impl fmt::Display for CommonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommonError::AuthFailed => f.write_str("authentication failed: wrong password"),
            CommonError::NotAuthenticated(op) => write!(f, "{op} before HELLO_ACK"),
            CommonError::HeartbeatTimeout => f.write_str("heartbeat timeout"),
            CommonError::Malformed(why) => write!(f, "undecodable payload: {why}"),
            CommonError::Unexpected(why) => f.write_str(why),
            CommonError::Binary => f.write_str("binary frames are not part of this protocol"),
            CommonError::TooSlow => f.write_str("too slow: outbound queue full"),
            CommonError::GoingAway => f.write_str("server shutting down"),
            CommonError::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}
