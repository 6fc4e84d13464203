//! Who may listen to a channel, decided before the WebSocket upgrade so
//! that a refusal is a plain HTTP 401 or 403 with a JSON body, as an API
//! gateway would answer.
//!
//! On a protected hub a listener brings an HS256 token (`?token=` or
//! `Authorization: Bearer`) whose `channels` claim grants the channel, or
//! listens to a channel the operator made public. The decision is the
//! router's one access rule ([`Policy::allows`]); the router asks it again
//! when the listener joins.

use crate::config::Config;
use crate::dialect::credentials::{self, Admission, Refusal};
use crate::router::{Access, Policy};
use crate::wire::request::ClientRequest;

/// What a listener on `request`'s channel is admitted with, or why not.
/// On an open hub tokens are not looked at: everyone is admitted, as
/// before any credential was configured.
pub fn admit(request: &ClientRequest, config: &Config) -> Result<Admission, Refusal> {
    let policy: Policy = config.policy();
    if !policy.protected {
        return Ok(Admission::default());
    }
    let channel = super::split_path(request.path()).map_or("", |(channel, _)| channel);
    let token = credentials::bearer(request);
    let admission = match &token {
        None => Admission::default(),
        Some(token) => {
            let claims = credentials::verify(token, config).map_err(Refusal::BadToken)?;
            Admission {
                grant: credentials::token_grant(&claims),
                token_left: Some(credentials::token_left(&claims)),
            }
        }
    };
    match (
        policy.allows(&admission.grant, Access::Read, channel),
        token,
    ) {
        (Ok(()), _) => Ok(admission),
        (Err(_), None) => Err(Refusal::NoToken),
        (Err(_), Some(_)) => Err(Refusal::NotGranted(channel.to_string())),
    }
}
