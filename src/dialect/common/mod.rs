//! The common dialect (`protocols/common.md`): op-coded RPC with a
//! heartbeat, at `/ws/common`.
//!
//! The server greets with HELLO (`hb_interval`); the client answers
//! HELLO_ACK with the shared password, then HEARTBEATs at that interval and
//! calls methods with REQUEST (answered by RESPONSE, same nonce) or
//! DISPATCH (not answered).
//!
//! - [`inbound`] decodes client payloads,
//! - [`session`] is the per-connection state machine,
//! - [`render`] turns router events into payloads,
//! - [`error`] maps every failure to its close code.

pub mod error;
pub mod inbound;
pub mod render;
pub mod session;

pub use session::Session;
