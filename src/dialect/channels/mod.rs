//! The channels dialect (`protocols/channels.md`): listeners on
//! `GET /<channel>/listen` (WebSocket) with presence and PING/PONG, and
//! publishers on `GET|POST /<channel>/emit` (plain HTTP), optionally
//! waiting for the listeners' ACKs.
//!
//! - [`admission`] decides who may listen, before the upgrade,
//! - [`inbound`] decodes what listeners send (ACK, PONG, PRESENCE:UPDATE),
//! - [`session`] is a listener's state on its reader thread,
//! - [`render`] turns router events into channels frames, personal to each
//!   recipient (every frame names its `clientID` and `latency`),
//! - [`emit`] is the HTTP emit endpoint's protocol: from the request to
//!   the router's command, from its outcome to the answer (`net::emit`
//!   does the I/O).

pub mod admission;
pub mod emit;
pub mod inbound;
pub mod render;
pub mod session;

pub use session::Session;

use crate::router::sys::SYS_TOPIC;

// The largest presence is the router's rule (it also caps world profiles).
pub use crate::router::MAX_PRESENCE_BYTES;

/// The longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 128;

/// Whether `name` can name a channel: 1 to [`MAX_CHANNEL_LEN`] URL-safe
/// characters (`A-Z a-z 0-9 _ - . ~`), so it needs no escaping in a path.
pub fn is_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~'))
}

/// The channel and endpoint (`listen` or `emit`) of a `/<channel>/<endpoint>` path.
/// Besides channel names, the reserved topic `$sys` (also spelled
/// `%24sys`, as some clients escape `$`) can be named: listening to it
/// is allowed, and an emit to it is refused with a reason rather than a 404.
/// One trailing slash is allowed (`/<channel>/listen/`): the original
/// server matched path segments, where it makes no difference.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let (channel, endpoint) = path.strip_prefix('/')?.split_once('/')?;
    if channel == SYS_TOPIC || channel == "%24sys" {
        return Some((SYS_TOPIC, endpoint));
    }
    is_channel_name(channel).then_some((channel, endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_channel_and_an_endpoint() {
        assert_eq!(split_path("/room/listen"), Some(("room", "listen")));
        assert_eq!(split_path("/room/listen/"), Some(("room", "listen")));
        assert_eq!(split_path("/room/emit/"), Some(("room", "emit")));
        assert_eq!(split_path("/%24sys/listen"), Some((SYS_TOPIC, "listen")));
        assert_eq!(split_path("/room/listen//"), Some(("room", "listen/")));
        assert_eq!(split_path("/a/b/listen"), Some(("a", "b/listen")));
        for path in [
            "/",
            "/room",
            "/room/",
            "//listen",
            "/ro om/listen",
            "room/listen",
        ] {
            assert_eq!(split_path(path), None, "{path}");
        }
    }
}
