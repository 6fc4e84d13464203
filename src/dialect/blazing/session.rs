//! One blazing connection, on its reader thread: the handshake's token and
//! computer id are checked, the saved document is read, then every message
//! becomes an edit for the router.

use std::path::PathBuf;
use std::time::Duration;

use super::codec::{self, CodecError};
use super::linked_user::TokenUser;
use crate::dialect::credentials;
use crate::dialect::Overrun;
use crate::dialect::Step;
use crate::jwt::{self, JwtError};
use crate::router::{Command, ConnId, Edit, Grant, Joiner};
use crate::store;
use crate::wire::frame::Close;
use crate::wire::request::ClientRequest;

/// The longest computer id accepted.
const MAX_COMPUTER_ID: usize = 256;

/// A blazing connection.
#[derive(Debug)]
pub struct Session {
    conn: ConnId,
    /// The handshake's `Authorization` header (or `Bearer` and the
    /// `token` parameter), checked on open.
    authorization: Option<String>,
    /// The handshake's `Blazing-Computer-Id` header (or the `computer`
    /// parameter).
    computer: Option<String>,
    tokens: jwt::Verifier,
    data_dir: PathBuf,
    max_message_bytes: usize,
}

impl Session {
    /// A session for `conn`, opened with `request`. Browsers cannot set
    /// handshake headers, so the query parameters `token` and `computer`
    /// stand in for them; a header wins over its parameter.
    pub fn new(conn: ConnId, request: &ClientRequest, config: &crate::config::Config) -> Session {
        let parameter = |name: &str| request.query_param(name);
        Session {
            conn,
            authorization: request
                .header("authorization")
                .map(String::from)
                .or_else(|| parameter(super::TOKEN_PARAMETER).map(|t| format!("Bearer {t}"))),
            computer: request
                .header(super::COMPUTER_HEADER)
                .map(String::from)
                .or_else(|| parameter(super::COMPUTER_PARAMETER))
                .or_else(|| super::computer_in_path(request.path()).map(String::from))
                .map(|id| id.trim().to_string()),
            tokens: config.token_verifier(),
            data_dir: config.data_dir.clone(),
            max_message_bytes: config.max_message_bytes,
        }
    }

    /// Checks the token (3000) and the computer id (3003), reads the saved
    /// document, and joins it.
    pub fn on_open(&mut self) -> Vec<Step> {
        vec![match self.join() {
            Ok(command) => Step::Forward(command),
            Err(close) => Step::Close(close),
        }]
    }

    fn join(&self) -> Result<Command, Close> {
        let token = self
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Close::new(3000, "Authorization: Bearer <token> is required"))?;
        let now = jwt::now();
        let claims = self.tokens.verify(token.trim(), now).map_err(|error| {
            let why = match error {
                JwtError::Expired => "authorization expired".to_string(),
                other => format!("bad authorization: {other}"),
            };
            Close::new(3000, why)
        })?;
        let computer = match self.computer.as_deref() {
            Some(id) if !id.is_empty() && id.len() <= MAX_COMPUTER_ID => id,
            _ => return Err(Close::new(3003, "Blazing-Computer-Id is required")),
        };
        let user = TokenUser::of(&claims);
        // The router decides whether the claim reaches the computer (3003
        // if not): the one access rule, for documents as for topics. A
        // LinkedUser without the plugin's permissions holds no grant.
        let grant = match claims.computers.as_deref() {
            _ if !user.may_edit => Grant::anonymous(),
            Some(computers) => {
                let granted = credentials::patterns(Some(computers));
                Grant {
                    read: granted.clone(),
                    write: granted,
                }
            }
            None => Grant::service(),
        };
        let stored = store::load(&self.data_dir, computer)
            .map_err(|e| Close::new(1011, format!("cannot read the document: {e}")))?;
        Ok(Command::Join {
            conn: self.conn,
            who: Box::new(Joiner::Blazing {
                computer: computer.to_string(),
                user: user.uuid,
                display: user.display,
                token_left: Duration::from_secs(claims.exp.saturating_sub(now)),
                grant,
                stored,
            }),
        })
    }

    /// A message the rate limit dropped. The document has no error message,
    /// and a dropped `write` leaves the client's copy unlike everyone
    /// else's: so the first of an episode gets a `sync` (as if the client
    /// had asked, after its earlier edits), the document's way of saying
    /// what the text really is; persisting closes with 1008.
    pub fn rate_limited(&mut self, overrun: Overrun) -> Option<Step> {
        match overrun {
            Overrun::First => Some(Step::Forward(Command::Edit {
                conn: self.conn,
                edit: Edit::Sync,
            })),
            Overrun::Again => None,
            Overrun::Persisting => Some(Step::Close(crate::dialect::rate_limit_close())),
        }
    }

    /// A binary frame: gzip-compressed JSON.
    pub fn on_binary(&mut self, bytes: &[u8]) -> Step {
        let json = match codec::gunzip(bytes, self.max_message_bytes) {
            Ok(json) => json,
            Err(error) => return Step::Close(close(error)),
        };
        self.on_json(&json)
    }

    /// A text frame: gzip cannot be valid UTF-8, so a text frame is taken
    /// to hold the JSON uncompressed.
    pub fn on_text(&mut self, text: &str) -> Step {
        self.on_json(text.as_bytes())
    }

    fn on_json(&mut self, json: &[u8]) -> Step {
        match codec::decode(json) {
            Ok(edit) => Step::Forward(Command::Edit {
                conn: self.conn,
                edit,
            }),
            Err(error) => Step::Close(close(error)),
        }
    }
}

fn close(error: CodecError) -> Close {
    match error {
        CodecError::TooLarge(limit) => Close::new(
            1009,
            format!("message decompresses to more than {limit} bytes"),
        ),
        CodecError::Undecodable(why) => Close::new(1007, why),
    }
}
