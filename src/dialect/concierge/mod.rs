//! The concierge dialect (`protocols/concierge.md`): named clients, groups
//! with owners, and targeted JSON messages, over `/ws/concierge` or any
//! path with the `ert-concierge` subprotocol.
//!
//! - [`inbound`] decodes client payloads,
//! - [`session`] is the per-connection state machine (IDENTIFY, `seq`),
//! - [`render`] turns router events into concierge payloads,
//! - [`error`] maps every failure to its close code,
//! - [`version`] decides which client versions are compatible.

pub mod error;
pub mod inbound;
pub mod render;
pub mod session;
pub mod version;

pub use session::Session;

/// The concierge protocol version this server speaks, sent in `HELLO`.
pub const VERSION: &str = "0.1.0";

/// The WebSocket subprotocol that selects this dialect on any path.
pub const SUBPROTOCOL: &str = "ert-concierge";
