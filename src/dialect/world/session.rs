//! One world connection's state machine, run on its reader thread: the
//! world it asked for, pings, and authentication (tokens are checked here,
//! off the router thread).

use serde_json::json;
use serde_json::value::RawValue;

use super::inbound::{decode, Credentials, Inbound};
use crate::dialect::credentials::{self, Admission};
use crate::dialect::Overrun;
use crate::dialect::{Received, Step};
use crate::jwt::{self, JwtError};
use crate::methods::{CallId, ReplyTo, RpcError};
use crate::router::{Command, ConnId, Event, Grant, Joiner, Patterns};
use crate::wire::frame::{Close, Frame};

/// A world connection.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    /// The world, if it is one the server has.
    world: Option<String>,
    tokens: jwt::Verifier,
    authenticated: bool,
}

impl Session {
    /// A session for `conn` on `world` (`None` if the server has no such
    /// world), checking tokens with `tokens`.
    pub fn new(conn: ConnId, world: Option<String>, tokens: jwt::Verifier) -> Session {
        Session {
            conn,
            world,
            tokens,
            authenticated: false,
        }
    }

    /// An unknown world is told so, then closed.
    pub fn on_open(&mut self) -> Vec<Step> {
        match self.world {
            Some(_) => Vec::new(),
            None => vec![
                Step::Reply(message(&json!(["error", {"code": "world.unknown_world"}]))),
                Step::Close(Close::new(1008, "world.unknown_world")),
            ],
        }
    }

    /// Handles one text message.
    pub fn on_text(&mut self, text: &str) -> Step {
        let inbound = match decode(text) {
            Ok(inbound) => inbound,
            Err(why) => {
                let error = json!(["error", {"code": "protocol.invalid_message", "message": why}]);
                return Step::Reply(message(&error));
            }
        };
        match inbound {
            Inbound::Ping(x) => Step::Reply(pong(x)),
            Inbound::Authenticate { id, credentials } => self.authenticate(id, credentials),
            Inbound::Action { id, .. } if !self.authenticated => {
                Step::Reply(error(id.as_deref(), "protocol.unauthenticated"))
            }
            Inbound::Action {
                action,
                id,
                payload,
            } => Step::Forward(Command::Call {
                conn: self.conn,
                method: action,
                args: payload,
                reply: Some(ReplyTo {
                    id: id.map(Into::into),
                }),
            }),
        }
    }

    /// A message the rate limit dropped: the first of an episode gets
    /// `["error", id, {"code": "protocol.rate_limited", ...}]`, with the id
    /// of the dropped action if it had one (without, like the document's
    /// other connection errors, if not); persisting closes with 1008.
    pub fn rate_limited(&mut self, received: Received<'_>, overrun: Overrun) -> Option<Step> {
        match overrun {
            Overrun::First => {
                let refusal = Event::Reply {
                    id: call_id_of(received),
                    result: Err(RpcError::rate_limited()),
                };
                super::render::render(&refusal).map(Step::Reply)
            }
            Overrun::Again => None,
            Overrun::Persisting => Some(Step::Close(crate::dialect::rate_limit_close())),
        }
    }

    /// Binary frames are not part of the protocol.
    pub fn on_binary(&mut self) -> Step {
        let error = json!(["error", {"code": "protocol.invalid_message", "message": "binary frames are not part of this protocol"}]);
        Step::Reply(message(&error))
    }

    /// Checks the credentials. Answers carry the message's id when it had
    /// one (`["authenticate", 7, {…}]` → `["authenticated", 7, {…}]`).
    fn authenticate(&mut self, id: Option<Box<RawValue>>, credentials: Credentials) -> Step {
        let refuse = |code: &str| Step::Reply(error(id.as_deref(), code));
        if self.authenticated {
            return refuse("auth.already_authenticated");
        }
        let world = self.world.clone().unwrap_or_default();
        let (user, display, traits, admission) = match credentials {
            Credentials::Missing => return refuse("auth.missing_id_or_token"),
            // An anonymous client names itself, so its id lives apart from
            // token users' ids: `{"client_id": "<someone's sub>"}` must not
            // act as (or replace the connections of) that user. It holds
            // no grant: on a protected hub it reaches only public rooms.
            Credentials::ClientId(client) => (
                format!("anon:{client}"),
                None,
                Vec::new(),
                Admission::default(),
            ),
            Credentials::Token(token) => match self.tokens.verify(&token, jwt::now()) {
                Ok(claims) => {
                    let admission = Admission {
                        grant: world_grant(&world, &claims),
                        token_left: Some(credentials::token_left(&claims)),
                    };
                    let traits = claims.traits.clone().unwrap_or_default();
                    (claims.sub, claims.name, traits, admission)
                }
                Err(JwtError::Expired) => return refuse("auth.expired_token"),
                Err(_) => return refuse("auth.invalid_token"),
            },
        };
        self.authenticated = true;
        Step::Forward(Command::Join {
            conn: self.conn,
            who: Box::new(Joiner::World {
                world,
                user,
                display,
                traits,
                grant: admission.grant,
                token_left: admission.token_left,
                id: id.map(Into::into),
            }),
        })
    }
}

/// What a world user's token grants: its world's rooms (topics `W/…`) to
/// read and write, and what its `publish` claim names to write (for
/// `hub.publish`).
fn world_grant(world: &str, claims: &jwt::Claims) -> Grant {
    let rooms = Patterns::parse([format!("{world}/*").as_str()]);
    Grant {
        read: rooms.clone(),
        write: rooms.and(credentials::patterns(claims.publish.as_deref())),
    }
}

/// The correlation id of an action, if `received` is one that has one.
fn call_id_of(received: Received<'_>) -> Option<CallId> {
    match received {
        Received::Text(text) => match decode(text) {
            Ok(Inbound::Action { id, .. }) => id.map(Into::into),
            Ok(Inbound::Authenticate { id, .. }) => id.map(Into::into),
            Ok(Inbound::Ping(_)) | Err(_) => None,
        },
        Received::Binary(_) => None,
    }
}

fn message(value: &serde_json::Value) -> Frame {
    Frame::text(&value.to_string())
}

/// `["error", id, {"code": code}]`, or `["error", {"code": code}]` without id.
fn error(id: Option<&RawValue>, code: &str) -> Frame {
    match id {
        Some(id) => Frame::text(&format!(r#"["error",{},{{"code":"{code}"}}]"#, id.get())),
        None => Frame::text(&format!(r#"["error",{{"code":"{code}"}}]"#)),
    }
}

/// `["pong", x]`, `x` byte for byte.
fn pong(x: Option<Box<RawValue>>) -> Frame {
    match x {
        Some(x) => Frame::text(&format!(r#"["pong",{}]"#, x.get())),
        None => Frame::text(r#"["pong"]"#),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(step: Step) -> String {
        match step {
            Step::Reply(frame) => {
                let bytes = frame.to_vec();
                // Payloads over 125 bytes have a two-byte extended length.
                let header = if bytes[1] & 0x7f == 126 { 4 } else { 2 };
                String::from_utf8(bytes[header..].to_vec()).unwrap()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_worlds_are_told_and_closed() {
        let steps = Session::new(ConnId(1), None, jwt::Verifier::default()).on_open();
        assert!(matches!(&steps[..], [Step::Reply(_), Step::Close(close)] if close.code == 1008));
        assert!(
            Session::new(ConnId(1), Some("w".into()), jwt::Verifier::default())
                .on_open()
                .is_empty()
        );
    }

    #[test]
    fn before_authentication() {
        let mut session = Session::new(
            ConnId(1),
            Some("w".into()),
            jwt::Verifier {
                key: Some("k".into()),
                ..jwt::Verifier::default()
            },
        );
        assert_eq!(
            text(session.on_text(r#"["ping", 12.50]"#)),
            r#"["pong",12.50]"#
        );
        assert_eq!(
            text(session.on_text(r#"["room.enter", 7, {"room": "r"}]"#)),
            r#"["error",7,{"code":"protocol.unauthenticated"}]"#
        );
        assert_eq!(
            text(session.on_text(r#"["authenticate", {}]"#)),
            r#"["error",{"code":"auth.missing_id_or_token"}]"#
        );
        assert_eq!(
            text(session.on_text(r#"["authenticate", {"token": "a.b.c"}]"#)),
            r#"["error",{"code":"auth.invalid_token"}]"#
        );
        let expired = jwt::sign(&json!({"sub": "u", "exp": 1}), b"k");
        assert_eq!(
            text(session.on_text(&format!(r#"["authenticate", {{"token": "{expired}"}}]"#))),
            r#"["error",{"code":"auth.expired_token"}]"#
        );
        let good = jwt::sign(
            &json!({"sub": "u", "name": "U", "exp": jwt::now() + 60}),
            b"k",
        );
        match session.on_text(&format!(r#"["authenticate", {{"token": "{good}"}}]"#)) {
            Step::Forward(Command::Join { who, .. }) => match *who {
                Joiner::World {
                    world,
                    user,
                    display,
                    ..
                } => assert_eq!(
                    (world.as_str(), user.as_str(), display.as_deref()),
                    ("w", "u", Some("U"))
                ),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            session.on_text(r#"["room.enter", 7, {"room": "r"}]"#),
            Step::Forward(Command::Call { .. })
        ));
    }

    #[test]
    fn the_first_drop_is_an_error_with_the_actions_id_if_it_had_one() {
        let mut session = Session::new(ConnId(1), Some("w".into()), jwt::Verifier::default());
        let with_id = Received::Text(r#"["room.send", "x-1", {"room": "r"}]"#);
        let expected = r#"["error","x-1",{"code":"protocol.rate_limited","message":"#;
        let first = session.rate_limited(with_id, Overrun::First);
        assert!(text(first.expect("an error")).starts_with(expected));
        let ping = Received::Text(r#"["ping", 1]"#);
        let first = session.rate_limited(ping, Overrun::First);
        let expected = r#"["error",{"code":"protocol.rate_limited","message":"#;
        assert!(text(first.expect("an error")).starts_with(expected));
        assert!(session.rate_limited(ping, Overrun::Again).is_none());
        assert!(matches!(
            session.rate_limited(ping, Overrun::Persisting),
            Some(Step::Close(close)) if close.code == 1008
        ));
    }
}
