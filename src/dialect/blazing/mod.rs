//! The blazing dialect (`protocols/blazing.md`): a collaboratively edited
//! text document per computer, at `/ws/blazing`, with gzip-compressed JSON
//! messages.
//!
//! - [`codec`] compresses and decompresses messages (bounded),
//! - [`linked_user`] reads who a token names (switchboard's claims or the
//!   original plugin's `LinkedUser`),
//! - [`session`] checks the handshake's token and computer id, and turns
//!   messages into edits,
//! - [`render`] turns document events into messages and close frames.

pub mod codec;
pub mod linked_user;
pub mod render;
pub mod session;

pub use session::Session;

/// The handshake header naming the computer whose document to join.
pub const COMPUTER_HEADER: &str = "blazing-computer-id";
/// The query parameter a browser, which cannot set headers on a
/// WebSocket, passes the token in (`/ws/blazing?token=…&computer=…`).
pub const TOKEN_PARAMETER: &str = "token";
/// The query parameter standing in for [`COMPUTER_HEADER`].
pub const COMPUTER_PARAMETER: &str = "computer";
