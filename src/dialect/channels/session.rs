//! A channels listener's state on its reader thread: which channel it
//! listens to, and the presence it brought in its URL.

use serde_json::value::RawValue;

use super::inbound::{decode, Inbound};
use crate::dialect::credentials::Admission;
use crate::dialect::Overrun;
use crate::dialect::Step;
use crate::router::{Command, ConnId, RequestError};
use crate::wire::frame::Close;
use crate::wire::request::{query_pairs, ClientRequest};

/// The query parameter that carries a listener's token; it is not part
/// of its presence.
const TOKEN_PARAMETER: &str = "token";

/// A listener, from the handshake on.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    channel: String,
    /// The presence from the listen URL, handed to the router on open.
    presence: Option<Box<RawValue>>,
    /// What it was admitted with, handed to the router on open.
    admission: Admission,
}

impl Session {
    /// A listener for the channel in `request`'s path (`/<channel>/listen`,
    /// checked by the route), with presence from its query parameters (but
    /// `token`, its credential), admitted with `admission`.
    pub fn new(conn: ConnId, request: &ClientRequest, admission: Admission) -> Session {
        let channel = super::split_path(request.path())
            .map(|(channel, _)| channel.to_string())
            .unwrap_or_default();
        let presence: serde_json::Map<String, serde_json::Value> =
            query_pairs(request.query().unwrap_or(""))
                .into_iter()
                .filter(|(key, _)| key != TOKEN_PARAMETER)
                .map(|(key, value)| (key, serde_json::Value::String(value)))
                .collect();
        // A map of strings always serializes, and to valid JSON.
        let text = serde_json::to_string(&presence).expect("a map of strings serializes");
        let presence = RawValue::from_string(text).expect("serde_json wrote valid JSON");
        Session {
            conn,
            channel,
            presence: Some(presence),
            admission,
        }
    }

    /// The command that makes the listener a member, sent once, first; or
    /// a close (1009) if the presence in its URL is too large.
    pub fn on_open(&mut self) -> Option<Step> {
        let presence = self.presence.take()?;
        if presence.get().len() > super::MAX_PRESENCE_BYTES {
            let why = format!("presence is limited to {} bytes", super::MAX_PRESENCE_BYTES);
            return Some(Step::Close(Close::new(1009, why)));
        }
        let Admission { grant, token_left } = std::mem::take(&mut self.admission);
        Some(Step::Forward(Command::Listen {
            conn: self.conn,
            topic: self.channel.clone(),
            presence,
            grant,
            token_left,
        }))
    }

    /// Handles one text message; every problem becomes an ERROR for this
    /// listener alone, sent through the router behind earlier replies.
    pub fn on_text(&mut self, text: &str) -> Step {
        let conn = self.conn;
        Step::Forward(match decode(text) {
            Ok(Inbound::Ack { event_id }) => Command::Ack { conn, event_id },
            Ok(Inbound::Pong) => Command::Pong { conn },
            // The updater hears its own PRESENCE:UPDATED: the document's
            // example names the updater as recipient, and the original
            // server sent it to every listener, the updater included.
            Ok(Inbound::PresenceUpdate(presence)) => Command::UpdatePresence {
                conn,
                presence,
                echo: true,
            },
            Err(error) => Command::Reject { conn, error },
        })
    }

    /// A message the rate limit dropped: the first of an episode gets an
    /// `ERROR` `RATE_LIMITED` (through the router, behind earlier replies,
    /// like every channels error); persisting closes with 1008.
    pub fn rate_limited(&mut self, overrun: Overrun) -> Option<Step> {
        match overrun {
            Overrun::First => Some(Step::Forward(Command::Reject {
                conn: self.conn,
                error: RequestError::RateLimited,
            })),
            Overrun::Again => None,
            Overrun::Persisting => Some(Step::Close(crate::dialect::rate_limit_close())),
        }
    }

    /// Binary messages are not part of the protocol.
    pub fn on_binary(&mut self) -> Step {
        let why = "binary frames are not part of this protocol; send JSON text";
        Step::Forward(Command::Reject {
            conn: self.conn,
            error: RequestError::Malformed(why.into()),
        })
    }
}
