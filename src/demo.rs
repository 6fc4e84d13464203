//! The demo's tokens (`--demo`): `GET /demo/token` signs a short-lived
//! HS256 token for anyone who asks, so that the demo pages can open the
//! blazing dialect like any client would. Without `--jwt-key` they are
//! signed with a random key made for this process.
//!
//! Anyone can mint a token here: that is the point of a demo, and the
//! reason the endpoint is off unless `--demo` turns it on.

use std::fmt;
use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::id::{self, Uuid};
use crate::jwt;
use crate::net::http::Response;
use crate::wire::request::ClientRequest;

/// How long a demo token lasts, in seconds: long enough for a session of
/// trying things out; the editor fetches a new one when it expires.
pub const TOKEN_TTL_S: u64 = 15 * 60;
/// The longest display name kept, in characters.
const MAX_NAME: usize = 32;

/// Why no token could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoError {
    /// The operating system's random number generator failed.
    Random(String),
    /// The server has no key to sign with (an embedder's `demo` without
    /// `jwt_key`, where [`fill_key`] was not called).
    NoKey,
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemoError::Random(why) => write!(f, "no randomness: {why}"),
            DemoError::NoKey => write!(f, "no key to sign tokens with"),
        }
    }
}

impl std::error::Error for DemoError {}

impl From<getrandom::Error> for DemoError {
    fn from(error: getrandom::Error) -> DemoError {
        DemoError::Random(error.to_string())
    }
}

/// A random signing key, made once per process.
pub fn process_key() -> Result<Arc<str>, DemoError> {
    // 43 characters of 63 kinds: over 256 random bits.
    Ok(id::token("", 43)?.into())
}

/// Gives `config` the process's own `key` when `--demo` runs without
/// `--jwt-key`, so that the tokens `/demo/token` signs are accepted by
/// blazing and world. Returns whether it did.
pub fn fill_key(config: &mut Config, key: &Arc<str>) -> bool {
    let fill = config.demo && config.jwt_key.is_none();
    if fill {
        config.jwt_key = Some(key.clone());
        config.jwt_key_is_demo = true;
    }
    fill
}

/// The answer to `GET /demo/token[?name=NAME][&doc=DOC][&channel=CHANNEL]`:
/// `{"token", "sub", "name", "exp"}`, or 404 without `--demo`.
///
/// The token grants what the demo pages need and nothing more: the
/// editor's document `DOC` (default `demo`) and the channel
/// `editor.DOC` its page lists people on, and the channels demo's
/// `CHANNEL` (default `lobby`) to listen and emit to. A name that is not
/// a channel name is refused (400), so no pattern is ever granted.
pub fn answer(request: &ClientRequest, config: &Config) -> Response {
    if !config.demo {
        return Response::text(
            404,
            "no endpoint at /demo/token (the server runs without --demo)\n",
        );
    }
    let asked = request.query_param("name");
    let named = |param: &str, default: &str| {
        let name = request
            .query_param(param)
            .unwrap_or_else(|| default.to_string());
        crate::dialect::channels::is_channel_name(&name).then_some(name)
    };
    let (Some(doc), Some(channel)) = (named("doc", "demo"), named("channel", "lobby")) else {
        return Response::text(400, "doc and channel are 1 to 128 of A-Z a-z 0-9 _ - . ~\n");
    };
    let grants = Grants { doc, channel };
    match mint(asked.as_deref(), &grants, config) {
        Ok(token) => Response::json(200, &token).with_header("Cache-Control", "no-store"),
        Err(error) => Response::json(500, &json!({"error": error.to_string()})),
    }
}

/// What a demo token reaches: one document (and its people channel), one
/// channel.
struct Grants {
    doc: String,
    channel: String,
}

/// A fresh user (a random `sub`) named `asked`, or a guest name, and its
/// signed token.
fn mint(
    asked: Option<&str>,
    grants: &Grants,
    config: &Config,
) -> Result<serde_json::Value, DemoError> {
    let key = config.jwt_key.as_deref().ok_or(DemoError::NoKey)?;
    let name = match asked.map(clean_name).filter(|name| !name.is_empty()) {
        Some(name) => name,
        None => format!("guest-{:04}", id::below(10_000)?),
    };
    let sub = Uuid::new_v4()?.to_string();
    let exp = jwt::now() + TOKEN_TTL_S;
    let people = format!("editor.{}", grants.doc);
    let claims = json!({
        "sub": sub, "name": name, "exp": exp,
        "computers": [grants.doc],
        "channels": [people, grants.channel],
        "publish": [grants.channel],
    });
    let token = jwt::sign(&claims, key.as_bytes());
    Ok(json!({"token": token, "sub": sub, "name": name, "exp": exp}))
}

/// A display name as asked, without control characters or surrounding
/// spaces, cut to [`MAX_NAME`] characters.
fn clean_name(asked: &str) -> String {
    asked
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> Grants {
        Grants {
            doc: "d1".into(),
            channel: "c1".into(),
        }
    }

    #[test]
    fn tokens_grant_the_demo_document_and_channel_only() {
        let token = mint(None, &grants(), &demo_config()).unwrap();
        let claims = jwt::verify(token["token"].as_str().unwrap(), Some(b"k"), jwt::now());
        let claims = claims.unwrap();
        assert_eq!(claims.computers, Some(vec!["d1".to_string()]));
        assert_eq!(
            claims.channels,
            Some(vec!["editor.d1".to_string(), "c1".to_string()])
        );
        assert_eq!(claims.publish, Some(vec!["c1".to_string()]));
    }

    fn demo_config() -> Config {
        Config {
            demo: true,
            jwt_key: Some("k".into()),
            ..Config::default()
        }
    }

    #[test]
    fn tokens_verify_with_the_key_and_carry_the_name() {
        let token = mint(Some("  Ann\u{7}  "), &grants(), &demo_config()).unwrap();
        let claims = jwt::verify(token["token"].as_str().unwrap(), Some(b"k"), jwt::now());
        let claims = claims.unwrap();
        assert_eq!(claims.name.as_deref(), Some("Ann"));
        assert_eq!(claims.sub, token["sub"].as_str().unwrap());
        assert!(Uuid::parse(&claims.sub).is_some());
        assert!(claims.exp <= jwt::now() + TOKEN_TTL_S);
    }

    #[test]
    fn nameless_users_are_guests() {
        for asked in [None, Some(""), Some("   ")] {
            let token = mint(asked, &grants(), &demo_config()).unwrap();
            let name = token["name"].as_str().unwrap();
            assert!(name.starts_with("guest-") && name.len() == 10, "{name}");
        }
        let long = "é".repeat(100);
        let token = mint(Some(&long), &grants(), &demo_config()).unwrap();
        assert_eq!(token["name"].as_str().unwrap().chars().count(), MAX_NAME);
    }

    #[test]
    fn the_process_key_fills_only_a_missing_key_and_only_for_the_demo() {
        let key: Arc<str> = "random".into();
        let mut config = Config {
            demo: true,
            ..Config::default()
        };
        assert!(fill_key(&mut config, &key));
        assert_eq!(config.jwt_key.as_deref(), Some("random"));
        let mut configured = demo_config();
        assert!(!fill_key(&mut configured, &key));
        assert_eq!(configured.jwt_key.as_deref(), Some("k"));
        let mut off = Config::default();
        assert!(!fill_key(&mut off, &key));
        assert_eq!(off.jwt_key, None);
        assert_eq!(mint(None, &grants(), &off), Err(DemoError::NoKey));
    }
}
