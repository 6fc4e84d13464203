//! The world dialect (`protocols/world.rst`): JSON arrays with a generic
//! RPC, at `/ws/world/<world>`.
//!
//! A client authenticates with `["authenticate", {"token": JWT}]` or
//! `["authenticate", {"client_id": …}]`, then calls actions as
//! `[action, id, payload]`, answered `["success", id, result]` or
//! `["error", id, {"code": …}]`, while the other clients concerned get
//! `[action, result]`. `["ping", x]` is answered `["pong", x]` at any time.
//!
//! - [`inbound`] decodes client messages,
//! - [`session`] is the per-connection state machine (world, auth),
//! - [`render`] turns router events into messages and close frames.

pub mod inbound;
pub mod render;
pub mod session;

pub use session::Session;

/// The world named by a `/ws/world/<world>` path.
pub fn world_of(path: &str) -> Option<&str> {
    path.strip_prefix("/ws/world/")
        .filter(|w| !w.is_empty() && !w.contains('/'))
}
