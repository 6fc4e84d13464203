//! What travels on the wire: WebSocket frames and close codes, and HTTP
//! request heads, as values.
//!
//! Both `net` (which moves the bytes) and `dialect` (which decides what
//! they say) use these, so they sit below both: nothing here reads or
//! writes a socket, and nothing here imports from `net`, `dialect` or
//! `router`.
//!
//! - [`frame`] encodes outgoing frames once, for every recipient, and
//!   their close codes,
//! - [`request`] is a parsed request head ([`request::ClientRequest`])
//!   and its query string.

pub mod frame;
pub mod request;
