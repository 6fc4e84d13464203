//! One concierge connection's state machine, run on its reader thread.
//!
//! Before IDENTIFY the session checks the first frame itself (decoding,
//! version, secret) and closes with the document's code on any failure;
//! only the name's uniqueness needs the router. After IDENTIFY every text
//! frame, good or bad, gets the next `seq` and becomes one router command,
//! so replies leave in the order the frames arrived.

use std::sync::Arc;

use super::error::ConciergeError;
use super::inbound::{decode, Identify, Payload};
use super::version::Version;
use crate::auth::secrets_match;
use crate::dialect::Overrun;
use crate::dialect::{Received, Step};
use crate::router::{Command, ConnId, Request, RequestError, Seq};

/// A concierge connection, from its first frame on.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    /// The server's secret; `None` means anyone may identify.
    secret: Option<Arc<str>>,
    state: State,
}

#[derive(Debug)]
enum State {
    Unidentified,
    /// Identified; the next text frame gets `next_seq`.
    Identified {
        next_seq: Seq,
    },
}

impl Session {
    /// A session for `conn` that requires `secret` (if any) to identify.
    pub fn new(conn: ConnId, secret: Option<Arc<str>>) -> Session {
        Session {
            conn,
            secret,
            state: State::Unidentified,
        }
    }

    /// Handles one text frame.
    pub fn on_text(&mut self, text: &str) -> Step {
        match &mut self.state {
            State::Unidentified => match self.identify(decode(text)) {
                Ok(command) => {
                    self.state = State::Identified { next_seq: 0 };
                    Step::Forward(command)
                }
                Err(error) => Step::Close(error.close()),
            },
            State::Identified { next_seq } => {
                let seq = *next_seq;
                *next_seq += 1;
                let request = decode(text).map_or_else(
                    |desc| Request::Invalid(RequestError::Malformed(desc)),
                    request,
                );
                Step::Forward(Command::Request {
                    conn: self.conn,
                    seq,
                    request,
                })
            }
        }
    }

    /// Handles one binary frame: the concierge speaks JSON text only, and a
    /// binary frame does not count towards `seq`.
    pub fn on_binary(&mut self) -> Step {
        const WHY: &str = "binary frames are not part of this protocol; send JSON text";
        match self.state {
            State::Unidentified => Step::Close(ConciergeError::Decode(WHY.into()).close()),
            State::Identified { .. } => Step::Forward(Command::Reject {
                conn: self.conn,
                error: RequestError::Malformed(WHY.into()),
            }),
        }
    }

    /// A frame the rate limit dropped. A text frame still takes its `seq`,
    /// so that later replies keep the client's numbering. The first of an
    /// episode is answered with a STATUS `BAD` (through the router, behind
    /// the replies to earlier frames); persisting closes with 1008.
    pub fn rate_limited(&mut self, received: Received<'_>, overrun: Overrun) -> Option<Step> {
        let seq = match (&mut self.state, received) {
            (State::Identified { next_seq }, Received::Text(_)) => {
                let seq = *next_seq;
                *next_seq += 1;
                Some(seq)
            }
            (State::Identified { .. }, Received::Binary(_)) | (State::Unidentified, _) => None,
        };
        match overrun {
            Overrun::First => Some(self.refuse_rate_limited(seq)),
            Overrun::Again => None,
            Overrun::Persisting => Some(Step::Close(crate::dialect::rate_limit_close())),
        }
    }

    /// The STATUS for the first frame of an episode (`seq`: its number, if
    /// it has one).
    fn refuse_rate_limited(&self, seq: Option<Seq>) -> Step {
        let conn = self.conn;
        let error = RequestError::RateLimited;
        match (&self.state, seq) {
            (State::Identified { .. }, Some(seq)) => Step::Forward(Command::Request {
                conn,
                seq,
                request: Request::Invalid(error),
            }),
            (State::Identified { .. }, None) => Step::Forward(Command::Reject { conn, error }),
            // Only the first frame comes before IDENTIFY, and a burst holds
            // at least one: unreachable, but closing is the answer.
            (State::Unidentified, _) => Step::Close(crate::dialect::rate_limit_close()),
        }
    }

    fn identify(&self, payload: Result<Payload, String>) -> Result<Command, ConciergeError> {
        let identify = match payload.map_err(ConciergeError::Decode)? {
            Payload::Identify(identify) => identify,
            other => return Err(ConciergeError::NotIdentified(other.kind().to_string())),
        };
        let Identify {
            name,
            version,
            secret,
            tags,
            nickname,
        } = identify;
        let compatible = Version::parse(&version)
            .is_some_and(|v| Version::parse(super::VERSION).is_some_and(|s| v.compatible_with(&s)));
        if !compatible {
            return Err(ConciergeError::BadVersion(version));
        }
        if let Some(expected) = &self.secret {
            let offered = secret.unwrap_or_default();
            if !secrets_match(offered.as_bytes(), expected.as_bytes()) {
                return Err(ConciergeError::BadSecret);
            }
        }
        Ok(Command::Identify {
            conn: self.conn,
            name,
            nickname,
            tags,
        })
    }
}

/// The router request a payload from an identified client stands for.
fn request(payload: Payload) -> Request {
    match payload {
        Payload::Message { target, data } => Request::Send { target, data },
        Payload::SelfSubscribe(topic) => Request::Subscribe { topic },
        Payload::SelfUnsubscribe(topic) => Request::Unsubscribe { topic },
        Payload::GroupCreate { name, nickname } => Request::CreateTopic {
            topic: name,
            nickname,
        },
        Payload::GroupDelete(topic) => Request::DeleteTopic { topic },
        Payload::GroupFetch(topic) => Request::FetchTopic { topic },
        Payload::GroupFetchAll => Request::FetchTopics,
        Payload::ClientFetchAll => Request::FetchClients,
        Payload::SelfFetch => Request::FetchSelf,
        Payload::Identify(_) => {
            Request::Invalid(RequestError::Malformed("already identified".into()))
        }
        Payload::ServerOnly(kind) => Request::Invalid(RequestError::Unsupported(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identify_text(version: &str, secret: Option<&str>) -> String {
        let secret = secret
            .map(|s| format!(r#","secret":"{s}""#))
            .unwrap_or_default();
        format!(r#"{{"type":"IDENTIFY","name":"ann","version":"{version}"{secret}}}"#)
    }

    fn close_code(step: Step) -> u16 {
        match step {
            Step::Close(close) => close.code,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    #[test]
    fn first_frame_failures_close_with_the_documented_codes() {
        let secret: Option<Arc<str>> = Some("s3cret".into());
        let cases = [
            ("{not json".to_string(), 4002),
            (r#"{"type":"GROUP_FETCH_ALL"}"#.to_string(), 4003),
            (identify_text("0.2.0", Some("s3cret")), 4007),
            (identify_text("banana", Some("s3cret")), 4007),
            (identify_text("0.1.0", Some("wrong")), 4006),
            (identify_text("0.1.0", None), 4006),
        ];
        for (text, code) in cases {
            let mut session = Session::new(ConnId(1), secret.clone());
            assert_eq!(close_code(session.on_text(&text)), code, "{text}");
        }
        assert_eq!(close_code(Session::new(ConnId(1), None).on_binary()), 4002);
    }

    #[test]
    fn good_identify_is_forwarded_then_frames_are_numbered_from_zero() {
        let mut session = Session::new(ConnId(7), Some("s3cret".into()));
        let step = session.on_text(&identify_text("0.1.9", Some("s3cret")));
        assert!(
            matches!(step, Step::Forward(Command::Identify { conn: ConnId(7), ref name, .. }) if name == "ann")
        );
        for (expected, text) in [
            (0, "garbage"),
            (1, r#"{"type":"SELF_FETCH"}"#),
            (2, r#"{"type":"HELLO"}"#),
        ] {
            match session.on_text(text) {
                Step::Forward(Command::Request { seq, .. }) => assert_eq!(seq, expected),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            session.on_binary(),
            Step::Forward(Command::Reject { .. })
        ));
        match session.on_text(r#"{"type":"IDENTIFY","name":"x","version":"0.1.0"}"#) {
            Step::Forward(Command::Request {
                seq: 3,
                request: Request::Invalid(RequestError::Malformed(why)),
                ..
            }) => {
                assert_eq!(why, "already identified");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dropped_text_frame_keeps_its_seq_and_the_first_is_answered_with_it() {
        let mut session = Session::new(ConnId(3), None);
        session.on_text(&identify_text("0.1.0", None));
        session.on_text(r#"{"type":"SELF_FETCH"}"#); // seq 0
        match session.rate_limited(Received::Text("{}"), Overrun::First) {
            Some(Step::Forward(Command::Request {
                seq: 1,
                request: Request::Invalid(RequestError::RateLimited),
                ..
            })) => {}
            other => panic!("{other:?}"),
        }
        assert!(session
            .rate_limited(Received::Text("{}"), Overrun::Again)
            .is_none());
        match session.on_text(r#"{"type":"SELF_FETCH"}"#) {
            Step::Forward(Command::Request { seq: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            session.rate_limited(Received::Binary(b"x"), Overrun::First),
            Some(Step::Forward(Command::Reject {
                error: RequestError::RateLimited,
                ..
            }))
        ));
        match session.rate_limited(Received::Text("{}"), Overrun::Persisting) {
            Some(step) => assert_eq!(close_code(step), 1008),
            None => panic!("persisting must close"),
        }
    }
}
