//! Turning what a client presents (a token, the operator's emit token, or
//! nothing) into the [`Grant`] the router's one access rule checks.
//!
//! The dialects verify credentials on the connection's own thread, off the
//! router's; the router only ever sees the grant.

use std::fmt;
use std::time::Duration;

use crate::config::Config;
use crate::jwt::{self, Claims, JwtError};
use crate::router::{Grant, Patterns};
use crate::wire::request::ClientRequest;

/// What a client was admitted with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admission {
    /// What it may read and write.
    pub grant: Grant,
    /// How long its token has left, if it came with one: the router closes
    /// it then.
    pub token_left: Option<Duration>,
}

/// Why credentials were not accepted (HTTP 401 before an upgrade), or why
/// valid ones do not reach what was asked (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// None were presented, and the hub is protected.
    NoToken,
    /// A token was presented that does not verify.
    BadToken(JwtError),
    /// Valid credentials, but they do not grant the topic.
    NotGranted(String),
}

impl Refusal {
    /// The HTTP status: 401 for missing or bad credentials, 403 for
    /// credentials that do not reach the topic.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NoToken | Refusal::BadToken(_) => 401,
            Refusal::NotGranted(_) => 403,
        }
    }

    /// The `code` of the JSON body, and the `reason` label of
    /// `switchboard_access_denied_total`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NoToken => "NO_TOKEN",
            Refusal::BadToken(JwtError::Expired) => "TOKEN_EXPIRED",
            Refusal::BadToken(_) => "BAD_TOKEN",
            Refusal::NotGranted(_) => "FORBIDDEN",
        }
    }

    /// The metric's `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NoToken => "no_token",
            Refusal::BadToken(JwtError::Expired) => "expired_token",
            Refusal::BadToken(_) => "bad_token",
            Refusal::NotGranted(_) => "not_granted",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NoToken => f.write_str(
                "this hub is protected: send a token as ?token= or Authorization: Bearer",
            ),
            Refusal::BadToken(why) => write!(f, "token refused: {why}"),
            Refusal::NotGranted(topic) => write!(f, "your token does not grant {topic:?}"),
        }
    }
}

/// The bearer token of `request`: its `Authorization: Bearer …` header,
/// else its `token` query parameter (browsers cannot set headers on a
/// WebSocket).
pub fn bearer(request: &ClientRequest) -> Option<String> {
    request
        .header("authorization")
        .and_then(|value| value.trim().strip_prefix("Bearer "))
        .map(|token| token.trim().to_string())
        .or_else(|| request.query_param("token"))
        .filter(|token| !token.is_empty())
}

/// Verifies `token` with the configured key, issuer and audience.
pub fn verify(token: &str, config: &Config) -> Result<Claims, JwtError> {
    config.token_verifier().verify(token, jwt::now())
}

/// What a verified token grants on the shared namespace: its `channels`
/// claim to read, its `publish` claim to write.
pub fn token_grant(claims: &Claims) -> Grant {
    Grant {
        read: patterns(claims.channels.as_deref()),
        write: patterns(claims.publish.as_deref()),
    }
}

/// How long a token with these claims has left.
pub fn token_left(claims: &Claims) -> Duration {
    Duration::from_secs(claims.exp.saturating_sub(jwt::now()))
}

/// The patterns a claim lists (absent: none).
pub fn patterns(claim: Option<&[String]>) -> Patterns {
    Patterns::parse(claim.unwrap_or_default().iter().map(String::as_str))
}
