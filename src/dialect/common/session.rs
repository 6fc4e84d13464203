//! One common connection's state machine, run on its reader thread.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::error::CommonError;
use super::inbound::{decode, Payload};
use super::render::render;
use crate::auth::secrets_match;
use crate::dialect::Overrun;
use crate::dialect::{Received, Step};
use crate::methods::{CallId, RpcError};
use crate::router::{Command, ConnId, Event, Joiner};
use crate::wire::frame::Frame;

/// A common connection, from the HELLO on.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    /// The server's password; `None` accepts any.
    password: Option<Arc<str>>,
    heartbeat: Duration,
    acked: bool,
}

impl Session {
    /// A session for `conn` that requires `password` (if any) and tells the
    /// client to heartbeat every `heartbeat`.
    pub fn new(conn: ConnId, password: Option<Arc<str>>, heartbeat: Duration) -> Session {
        Session {
            conn,
            password,
            heartbeat,
            acked: false,
        }
    }

    /// OP 0 HELLO, the first thing the client hears.
    pub fn on_open(&mut self) -> Vec<Step> {
        let interval = u64::try_from(self.heartbeat.as_millis()).unwrap_or(u64::MAX);
        let hello = json!({"op": 0, "hb_interval": interval});
        vec![Step::Reply(Frame::text(&hello.to_string()))]
    }

    /// Handles one text message.
    pub fn on_text(&mut self, text: &str) -> Step {
        match self.step(text) {
            Ok(step) => step,
            Err(error) => Step::Close(error.close()),
        }
    }

    /// A message the rate limit dropped. The document's one error payload
    /// is a RESPONSE's `r`, so the first of an episode gets a RESPONSE with
    /// error `rate_limited`, carrying the dropped REQUEST's `n` (`null` for
    /// anything else, which has none); persisting closes with 1008.
    pub fn rate_limited(&mut self, received: Received<'_>, overrun: Overrun) -> Option<Step> {
        match overrun {
            Overrun::First => {
                let refusal = Event::Reply {
                    id: nonce_of(received),
                    result: Err(RpcError::rate_limited()),
                };
                render(&refusal).map(Step::Reply)
            }
            Overrun::Again => None,
            Overrun::Persisting => Some(Step::Close(crate::dialect::rate_limit_close())),
        }
    }

    /// Binary frames are not part of the protocol.
    pub fn on_binary(&mut self) -> Step {
        Step::Close(CommonError::Binary.close())
    }

    fn step(&mut self, text: &str) -> Result<Step, CommonError> {
        let conn = self.conn;
        let command = match (decode(text)?, self.acked) {
            (Payload::HelloAck { password }, false) => {
                if let Some(expected) = &self.password {
                    if !secrets_match(password.as_bytes(), expected.as_bytes()) {
                        return Err(CommonError::AuthFailed);
                    }
                }
                self.acked = true;
                Command::Join {
                    conn,
                    who: Box::new(Joiner::Common),
                }
            }
            (Payload::HelloAck { .. }, true) => {
                return Err(CommonError::Unexpected("HELLO_ACK sent twice".into()))
            }
            (Payload::Heartbeat, false) => return Err(CommonError::NotAuthenticated("HEARTBEAT")),
            (Payload::Request { .. }, false) => {
                return Err(CommonError::NotAuthenticated("REQUEST"))
            }
            (Payload::Dispatch { .. }, false) => {
                return Err(CommonError::NotAuthenticated("DISPATCH"))
            }
            (Payload::Heartbeat, true) => Command::Heartbeat { conn },
            (
                Payload::Request {
                    method,
                    args,
                    nonce,
                },
                true,
            ) => Command::Call {
                conn,
                method,
                args,
                reply: Some(crate::methods::ReplyTo {
                    id: Some(nonce.into()),
                }),
            },
            (Payload::Dispatch { method, args }, true) => Command::Call {
                conn,
                method,
                args,
                reply: None,
            },
        };
        Ok(Step::Forward(command))
    }
}

/// The nonce of a REQUEST, if `received` is one.
fn nonce_of(received: Received<'_>) -> Option<CallId> {
    match received {
        Received::Text(text) => match decode(text) {
            Ok(Payload::Request { nonce, .. }) => Some(nonce.into()),
            Ok(Payload::HelloAck { .. } | Payload::Heartbeat | Payload::Dispatch { .. })
            | Err(_) => None,
        },
        Received::Binary(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(step: Step) -> u16 {
        match step {
            Step::Close(close) => close.code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_handshake_and_its_failures() {
        let new = || Session::new(ConnId(1), Some("pw".into()), Duration::from_millis(100));
        assert_eq!(code(new().on_text(r#"{"op":1,"password":"nope"}"#)), 4001);
        assert_eq!(code(new().on_text(r#"{"op":1}"#)), 4001);
        assert_eq!(code(new().on_text(r#"{"op":2}"#)), 4002);
        assert_eq!(
            code(new().on_text(r#"{"op":4,"w":"x","a":[],"n":1}"#)),
            4002
        );
        assert_eq!(code(new().on_text(r#"{"op":6,"w":"x","a":[]}"#)), 4002);
        assert_eq!(code(new().on_text("garbage")), 1007);
        assert_eq!(code(new().on_text(r#"{"op":9}"#)), 1008);
        assert_eq!(code(new().on_binary()), 1003);
        let mut session = new();
        assert!(matches!(
            session.on_text(r#"{"op":1,"password":"pw"}"#),
            Step::Forward(Command::Join { .. })
        ));
        assert!(matches!(
            session.on_text(r#"{"op":2}"#),
            Step::Forward(Command::Heartbeat { .. })
        ));
        assert_eq!(code(session.on_text(r#"{"op":1,"password":"pw"}"#)), 1008);
    }

    #[test]
    fn hello_names_the_interval() {
        let mut session = Session::new(ConnId(1), None, Duration::from_secs(20));
        match &session.on_open()[..] {
            [Step::Reply(frame)] => {
                assert!(frame.to_vec().ends_with(br#"{"hb_interval":20000,"op":0}"#));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            session.on_text(r#"{"op":1,"password":"anything"}"#),
            Step::Forward(_)
        ));
    }

    fn payload(step: Option<Step>) -> serde_json::Value {
        let Some(Step::Reply(frame)) = step else {
            panic!("expected a reply, got {step:?}")
        };
        let bytes = frame.to_vec();
        let header = match bytes[1] & 0x7f {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        serde_json::from_slice(&bytes[header..]).expect("a JSON frame")
    }

    #[test]
    fn the_first_drop_is_answered_with_its_nonce_or_null_and_persisting_closes_1008() {
        let mut session = Session::new(ConnId(1), None, Duration::from_secs(20));
        let request = Received::Text(r#"{"op":4,"w":"hub.info","a":[],"n":"abc"}"#);
        let answer = payload(session.rate_limited(request, Overrun::First));
        assert_eq!(answer["op"], 5);
        assert_eq!(answer["n"], "abc");
        assert_eq!(answer["r"]["error"]["code"], "rate_limited");
        let heartbeat = Received::Text(r#"{"op":2}"#);
        assert!(payload(session.rate_limited(heartbeat, Overrun::First))["n"].is_null());
        assert!(session.rate_limited(request, Overrun::Again).is_none());
        let close = session.rate_limited(request, Overrun::Persisting);
        assert_eq!(code(close.expect("a close")), 1008);
    }
}
