//! Dialects: the protocols spoken over WebSocket, each a codec plus a small
//! per-connection state machine.
//!
//! A dialect's [`Session`] runs on the connection's reader thread and turns
//! each client frame into a [`Step`]: usually a [`Command`] for the router.
//! Its renderer ([`render`]) runs on the router thread and turns router
//! [`Event`]s into frames. No dialect touches another's state; they meet
//! only in the router's namespace of members and topics.

pub mod blazing;
pub mod channels;
pub mod common;
pub mod concierge;
pub mod credentials;
pub mod world;

use std::time::Duration;

use crate::config::Config;
use crate::router::{Addressee, Command, ConnId, Disconnect, Event};
use crate::wire::frame::{Close, Frame};
use crate::wire::request::ClientRequest;
// Which protocol a connection speaks is member state, kept by the router;
// the protocols themselves, and their closes, are here.
pub use crate::router::Dialect;
use credentials::{Admission, Refusal};

impl Dialect {
    /// The close for a client silent for `limit` despite keepalive pings:
    /// blazing's 3008 "keepalive timeout"; the other documents have none,
    /// so they use 1001 (going away).
    pub fn silence_close(self, limit: Duration) -> Close {
        let reason = format!(
            "nothing received for {} ms, pings included",
            limit.as_millis()
        );
        match self {
            Dialect::Blazing => Close::new(3008, reason),
            Dialect::Echo
            | Dialect::Concierge
            | Dialect::Channels
            | Dialect::Common
            | Dialect::World => Close::new(1001, reason),
        }
    }
}

impl Dialect {
    /// The close for a connection whose handler failed inside the server:
    /// the concierge document's `4000` (UNKNOWN); RFC 6455's 1011 for the
    /// others, whose documents have no code of their own for it.
    pub fn internal_error_close(self) -> Close {
        match self {
            Dialect::Concierge => {
                concierge::error::ConciergeError::Internal("a handler failed".into()).close()
            }
            Dialect::Echo
            | Dialect::Channels
            | Dialect::Common
            | Dialect::World
            | Dialect::Blazing => Close::new(1011, "internal error"),
        }
    }
}

/// A text frame that makes its session's handler panic, in the crate's own
/// test builds only (`cfg(test)`): the crash paths are tested over real
/// sockets, and no release or integration-test build can reach them.
#[cfg(test)]
pub(crate) const TEST_PANIC: &str = "switchboard: fail here (cfg(test) only)";

/// Whether a `dialect` connection asked for by `request` may be upgraded,
/// and with what grant: answered before the upgrade, so that a refusal is
/// an HTTP status. Only channels listeners are decided here; the other
/// dialects authenticate inside the WebSocket, in their own words
/// (concierge's IDENTIFY, world's `authenticate`, blazing's close 3000).
pub fn admit(
    dialect: Dialect,
    request: &ClientRequest,
    config: &Config,
) -> Result<Admission, Refusal> {
    match dialect {
        Dialect::Channels => channels::admission::admit(request, config),
        Dialect::Echo
        | Dialect::Concierge
        | Dialect::Common
        | Dialect::World
        | Dialect::Blazing => Ok(Admission::default()),
    }
}

/// One complete client message, as the reader thread received it.
#[derive(Debug, Clone, Copy)]
pub enum Received<'a> {
    /// A text message.
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

/// What the reader thread does with one client frame.
#[derive(Debug)]
pub enum Step {
    /// Send this command to the router.
    Forward(Command),
    /// Write this frame back to the same client.
    Reply(Frame),
    /// Close the connection with this code and reason.
    Close(Close),
}

/// How a dropped message stands in its episode of the rate limit: the
/// reader thread's limiter (`net::rate`) says which, and each dialect says
/// what its clients hear for each ([`Session::rate_limited`]). It is the
/// dialect's word for what the client did, so it lives here, where the
/// session that answers it is, and `net` imports it (net → dialect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overrun {
    /// The first of an episode: the client is told, in its dialect.
    First,
    /// A later one: dropped without a word, it has been told.
    Again,
    /// One too many after being told: the connection is closed.
    Persisting,
}

/// A connection's dialect state, owned by its reader thread.
#[derive(Debug)]
pub enum Session {
    /// Stateless: everything is echoed.
    Echo,
    /// A concierge client.
    Concierge(concierge::Session),
    /// A channels listener.
    Channels(channels::Session),
    /// A common client.
    Common(common::Session),
    /// A world client.
    World(world::Session),
    /// A blazing client.
    Blazing(blazing::Session),
}

impl Session {
    /// The starting state of a `dialect` connection numbered `conn`, opened
    /// with `request` and admitted (by [`admit`]) with `admission`.
    pub fn new(
        dialect: Dialect,
        conn: ConnId,
        config: &Config,
        request: &ClientRequest,
        admission: Admission,
    ) -> Session {
        match dialect {
            Dialect::Echo => Session::Echo,
            Dialect::Concierge => {
                Session::Concierge(concierge::Session::new(conn, config.secret.clone()))
            }
            Dialect::Channels => {
                Session::Channels(channels::Session::new(conn, request, admission))
            }
            Dialect::Common => Session::Common(common::Session::new(
                conn,
                config.secret.clone(),
                config.heartbeat_interval,
            )),
            Dialect::World => {
                let world = world::world_of(request.path())
                    .filter(|w| config.worlds.iter().any(|known| known == w))
                    .map(String::from);
                Session::World(world::Session::new(conn, world, config.token_verifier()))
            }
            Dialect::Blazing => Session::Blazing(blazing::Session::new(conn, request, config)),
        }
    }

    /// The dialect this session speaks.
    pub fn dialect(&self) -> Dialect {
        match self {
            Session::Echo => Dialect::Echo,
            Session::Concierge(_) => Dialect::Concierge,
            Session::Channels(_) => Dialect::Channels,
            Session::Common(_) => Dialect::Common,
            Session::World(_) => Dialect::World,
            Session::Blazing(_) => Dialect::Blazing,
        }
    }

    /// What happens as soon as the connection is open, before the client
    /// says anything.
    pub fn on_open(&mut self) -> Vec<Step> {
        match self {
            Session::Echo | Session::Concierge(_) => Vec::new(),
            Session::Channels(session) => session.on_open().into_iter().collect(),
            Session::Common(session) => session.on_open(),
            Session::World(session) => session.on_open(),
            Session::Blazing(session) => session.on_open(),
        }
    }

    /// Handles one complete text message.
    pub fn on_text(&mut self, text: &str) -> Step {
        #[cfg(test)]
        assert_ne!(text, TEST_PANIC, "a test asked this handler to fail");
        match self {
            Session::Echo => Step::Reply(Frame::text(text)),
            Session::Concierge(session) => session.on_text(text),
            Session::Channels(session) => session.on_text(text),
            Session::Common(session) => session.on_text(text),
            Session::World(session) => session.on_text(text),
            Session::Blazing(session) => session.on_text(text),
        }
    }

    /// Handles one complete binary message.
    pub fn on_binary(&mut self, bytes: &[u8]) -> Step {
        match self {
            Session::Echo => Step::Reply(Frame::binary(bytes)),
            Session::Concierge(session) => session.on_binary(),
            Session::Channels(session) => session.on_binary(),
            Session::Common(session) => session.on_binary(),
            Session::World(session) => session.on_binary(),
            Session::Blazing(session) => session.on_binary(bytes),
        }
    }

    /// Handles one complete message of either kind.
    pub fn on_message(&mut self, received: Received<'_>) -> Step {
        match received {
            Received::Text(text) => self.on_text(text),
            Received::Binary(bytes) => self.on_binary(bytes),
        }
    }

    /// What the client hears when the rate limit drops `received`, if
    /// anything: its dialect's own error on the first drop of an episode,
    /// nothing on later ones, and a close if it persists. Each dialect
    /// decides in its session's `rate_limited`.
    pub fn rate_limited(&mut self, received: Received<'_>, overrun: Overrun) -> Option<Step> {
        match self {
            // Echo has no words of its own: anything it sent would pass
            // for an echo. It only closes.
            Session::Echo => match overrun {
                Overrun::First | Overrun::Again => None,
                Overrun::Persisting => Some(Step::Close(rate_limit_close())),
            },
            Session::Concierge(session) => session.rate_limited(received, overrun),
            Session::Channels(session) => session.rate_limited(overrun),
            Session::Common(session) => session.rate_limited(received, overrun),
            Session::World(session) => session.rate_limited(received, overrun),
            Session::Blazing(session) => session.rate_limited(overrun),
        }
    }
}

/// The close for a client that stays over the rate limit after being told:
/// 1008 (policy violation), as none of the documents has a code for it.
pub fn rate_limit_close() -> Close {
    Close::new(1008, RATE_LIMIT_CLOSE_REASON)
}

/// The reason given with [`rate_limit_close`].
pub const RATE_LIMIT_CLOSE_REASON: &str = "rate limit: kept sending too fast after being told";

/// An event rendered for one dialect: once for all its recipients.
pub enum Rendered {
    /// The same frame for every recipient.
    Shared(Frame),
    /// Shared bytes that each recipient's own fields are spliced onto.
    Personal(channels::render::Personal),
}

impl Rendered {
    /// The frame for one recipient, described by `to` (needed only for
    /// personal frames; a recipient without a description gets none).
    pub fn frame_for(&self, to: Option<Addressee<'_>>) -> Option<Frame> {
        match self {
            Rendered::Shared(frame) => Some(frame.clone()),
            Rendered::Personal(personal) => Some(personal.frame_for(to?)),
        }
    }
}

/// `event` as `dialect` clients receive it, or `None` if it means nothing
/// in that dialect. A `Disconnect` renders as a close frame.
pub fn render(dialect: Dialect, event: &Event) -> Option<Rendered> {
    match dialect {
        Dialect::Echo => None,
        Dialect::Concierge => concierge::render::render(event).map(Rendered::Shared),
        Dialect::Channels => match channels::render::prepare(event)? {
            channels::render::Prepared::Shared(frame) => Some(Rendered::Shared(frame)),
            channels::render::Prepared::Personal(personal) => Some(Rendered::Personal(personal)),
        },
        Dialect::Common => common::render::render(event).map(Rendered::Shared),
        Dialect::World => world::render::render(event).map(Rendered::Shared),
        Dialect::Blazing => blazing::render::render(event).map(Rendered::Shared),
    }
}

/// A last message before the close frame of a `Disconnect`, in dialects
/// that explain a disconnection in a message of their own.
pub fn farewell(dialect: Dialect, why: &Disconnect, to: Option<Addressee<'_>>) -> Option<Frame> {
    match dialect {
        Dialect::Echo | Dialect::Concierge | Dialect::Common | Dialect::Blazing => None,
        Dialect::Channels => channels::render::farewell(why, to?),
        Dialect::World => world::render::farewell(why),
    }
}

/// What a client is told, in its dialect, when its own connection's
/// handling fails inside the server (before the 1011 close), if anything.
pub fn fatal_notice(dialect: Dialect) -> Option<Frame> {
    match dialect {
        Dialect::World => Some(world::render::fatal_or("server.fatal")),
        Dialect::Echo
        | Dialect::Concierge
        | Dialect::Channels
        | Dialect::Common
        | Dialect::Blazing => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(dialect: Dialect) -> Session {
        let request = ClientRequest::for_test("GET", "/lobby/listen", &[]);
        Session::new(
            dialect,
            ConnId(1),
            &Config::default(),
            &request,
            Admission::default(),
        )
    }

    #[test]
    fn every_dialect_closes_a_persisting_client_with_1008_and_drops_the_rest_silently() {
        for dialect in Dialect::ALL {
            let mut session = session(dialect);
            let received = Received::Text("{}");
            assert!(
                session.rate_limited(received, Overrun::Again).is_none(),
                "{dialect}"
            );
            match session.rate_limited(received, Overrun::Persisting) {
                Some(Step::Close(close)) => assert_eq!(close.code, 1008, "{dialect}"),
                other => panic!("{dialect}: {other:?}"),
            }
        }
    }

    #[test]
    fn channels_is_told_through_the_router_and_blazing_gets_a_sync() {
        let first = |dialect| session(dialect).rate_limited(Received::Text("{}"), Overrun::First);
        assert!(matches!(
            first(Dialect::Channels),
            Some(Step::Forward(Command::Reject {
                error: crate::router::RequestError::RateLimited,
                ..
            }))
        ));
        assert!(matches!(
            first(Dialect::Blazing),
            Some(Step::Forward(Command::Edit {
                edit: crate::router::Edit::Sync,
                ..
            }))
        ));
        assert!(first(Dialect::Echo).is_none());
    }
}
