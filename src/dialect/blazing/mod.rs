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

/// The computer id in the original plugin's path, `/computer/<id>` (an
/// optional trailing slash allowed): its clients name the computer there
/// and send no `Blazing-Computer-Id`.
pub fn computer_in_path(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/computer/")?;
    let id = id.strip_suffix('/').unwrap_or(id);
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::computer_in_path;

    #[test]
    fn the_plugins_path_names_the_computer() {
        assert_eq!(
            computer_in_path("/computer/01J9Z3K6Q8X2V4M7N5P0R1S2T3"),
            Some("01J9Z3K6Q8X2V4M7N5P0R1S2T3")
        );
        assert_eq!(computer_in_path("/computer/pc-1/"), Some("pc-1"));
        for path in ["/computer/", "/computer//", "/computer/a/b", "/ws/blazing"] {
            assert_eq!(computer_in_path(path), None, "{path}");
        }
    }
}
