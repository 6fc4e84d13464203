//! HS256 JSON Web Tokens (RFC 7519): verification for the dialects that
//! authenticate with one (world's `token`, blazing's `Authorization`), and
//! signing for tests, examples and demos.
//!
//! Only `HS256` is accepted: a token whose header names any other algorithm
//! (`none` included) is refused before its signature is looked at, which
//! closes the classic "alg confusion" holes. The signature is checked with
//! HMAC-SHA256 from RustCrypto, compared in constant time.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use serde::Deserialize;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The claims switchboard reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The user's id (a uuid in the blazing dialect).
    pub sub: String,
    /// The user's display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Expiry, in seconds since the Unix epoch. Required: a token that
    /// never expires is refused.
    pub exp: u64,
    /// Not before, in seconds since the Unix epoch: a token used earlier is
    /// refused (RFC 7519's `nbf`). Optional.
    #[serde(default)]
    pub nbf: Option<u64>,
    /// Blazing computer ids the user may join; absent means any.
    #[serde(default)]
    pub computers: Option<Vec<String>>,
    /// Channels (topics) the holder may listen to: names, or `prefix*`
    /// patterns. Absent: none.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Channels (topics) the holder may publish to (HTTP emit, world's
    /// `hub.publish`): names or `prefix*` patterns. Absent: none.
    #[serde(default)]
    pub publish: Option<Vec<String>>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// The server has no key configured: tokens cannot be checked.
    NoKey,
    /// Not three base64url parts of JSON, or a claim missing or mistyped.
    Malformed(String),
    /// The header names an algorithm other than HS256.
    WrongAlgorithm(String),
    /// The signature does not match.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::NoKey => f.write_str("this server accepts no tokens (no --jwt-key)"),
            JwtError::Malformed(why) => write!(f, "malformed token: {why}"),
            JwtError::WrongAlgorithm(alg) => write!(f, "algorithm {alg:?} is not HS256"),
            JwtError::BadSignature => f.write_str("bad signature"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not valid yet (nbf)"),
        }
    }
}

impl std::error::Error for JwtError {}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// The longest token looked at. Real tokens are a few hundred bytes; a
/// longer one is refused before any decoding or hashing is spent on it.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Checks `token` against `key` at time `now` (Unix seconds) and returns
/// its claims. `key` `None` refuses every token.
pub fn verify(token: &str, key: Option<&[u8]>, now: u64) -> Result<Claims, JwtError> {
    let key = key.ok_or(JwtError::NoKey)?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let three_parts = || JwtError::Malformed("expected three dot-separated parts".into());
    let (signed, signature) = token.rsplit_once('.').ok_or_else(three_parts)?;
    let (header, payload) = signed.split_once('.').ok_or_else(three_parts)?;
    if payload.contains('.') {
        return Err(three_parts());
    }
    let header: Header = decode_json(header, "header")?;
    if header.alg != "HS256" {
        return Err(JwtError::WrongAlgorithm(header.alg));
    }
    let signature = base64url_decode(signature)
        .ok_or_else(|| JwtError::Malformed("signature is not base64url".into()))?;
    let mut mac =
        HmacSha256::new_from_slice(key).map_err(|_| JwtError::Malformed("unusable key".into()))?;
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;
    let claims: Claims = decode_json(payload, "payload")?;
    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

/// Signs `claims` (any JSON object) with `key` as an HS256 token.
pub fn sign(claims: &serde_json::Value, key: &[u8]) -> String {
    let header = base64url_encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = base64url_encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(signed.as_bytes());
    let signature = base64url_encode(&mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, JwtError> {
    let bytes = base64url_decode(part)
        .ok_or_else(|| JwtError::Malformed(format!("{what} is not base64url")))?;
    // Header and claims are JSON objects (RFC 7515 §4, RFC 7519 §4); serde
    // would also fill a struct from an array (`["HS256"]`), which no
    // issuer writes. Found by the fuzz properties (src/fuzz/jwt.rs).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(JwtError::Malformed(format!("{what} is not a JSON object")));
    }
    serde_json::from_slice(&bytes).map_err(|e| JwtError::Malformed(format!("{what}: {e}")))
}

use crate::base64::{decode_url as base64url_decode, encode_url as base64url_encode};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[u8] = b"secret key";
    const NOW: u64 = 1_800_000_000;

    fn token(claims: serde_json::Value) -> String {
        sign(&claims, KEY)
    }

    #[test]
    fn the_jwt_io_example_has_a_valid_signature() {
        // jwt.io's example token, made by an independent library, signed with
        // "your-256-bit-secret". Its signature checks out; it is refused only
        // because it has no `exp`.
        let known = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let error = verify(known, Some(b"your-256-bit-secret"), NOW).unwrap_err();
        assert!(
            matches!(&error, JwtError::Malformed(why) if why.contains("exp")),
            "{error}"
        );
        assert_eq!(
            verify(known, Some(b"another-secret"), NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn good_tokens_give_their_claims() {
        let claims = verify(
            &token(json!({"sub":"u1","exp":NOW + 60,"computers":["c1"]})),
            Some(KEY),
            NOW,
        )
        .unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "u1".into(),
                name: None,
                exp: NOW + 60,
                nbf: None,
                computers: Some(vec!["c1".into()]),
                channels: None,
                publish: None,
            }
        );
    }

    #[test]
    fn refusals() {
        let good = token(json!({"sub":"u1","exp":NOW + 60}));
        assert_eq!(verify(&good, None, NOW), Err(JwtError::NoKey));
        assert_eq!(
            verify(&good, Some(b"other"), NOW),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            verify(&token(json!({"sub":"u1","exp":NOW})), Some(KEY), NOW),
            Err(JwtError::Expired)
        );
        assert!(matches!(
            verify(&token(json!({"exp":NOW + 60})), Some(KEY), NOW),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            verify(&token(json!({"sub":"u1","exp":"soon"})), Some(KEY), NOW),
            Err(JwtError::Malformed(_))
        ));
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.!!.!!",
            &good[1..],
            &format!("{good}x"),
        ] {
            assert!(verify(bad, Some(KEY), NOW).is_err(), "{bad}");
        }
        // A tampered payload keeps the old signature.
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = base64url_encode(br#"{"sub":"admin","exp":9999999999}"#);
        parts[1] = &forged;
        assert_eq!(
            verify(&parts.join("."), Some(KEY), NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn header_and_claims_must_be_objects_not_arrays() {
        // serde fills a struct from an array too; a signed token with
        // `["u1", exp]` as claims once passed (found by src/fuzz/jwt.rs).
        let array_claims = token(json!(["u1", null, NOW + 60]));
        let error = verify(&array_claims, Some(KEY), NOW).unwrap_err();
        assert_eq!(
            error,
            JwtError::Malformed("payload is not a JSON object".into())
        );
        let payload = array_claims.split('.').nth(1).unwrap();
        let header = base64url_encode(br#"["HS256"]"#);
        let error = verify(&format!("{header}.{payload}.x"), Some(KEY), NOW).unwrap_err();
        assert_eq!(
            error,
            JwtError::Malformed("header is not a JSON object".into())
        );
    }

    #[test]
    fn only_hs256_is_accepted() {
        let payload = base64url_encode(br#"{"sub":"u1","exp":9999999999}"#);
        for alg in ["none", "HS384", "RS256", "hs256"] {
            let header = base64url_encode(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
            let token = format!("{header}.{payload}.");
            assert_eq!(
                verify(&token, Some(KEY), NOW),
                Err(JwtError::WrongAlgorithm(alg.into())),
                "{alg}"
            );
        }
    }

    #[test]
    fn nbf_in_the_future_is_refused_and_in_the_past_accepted() {
        let early = token(json!({"sub": "u1", "exp": NOW + 60, "nbf": NOW + 30}));
        assert_eq!(verify(&early, Some(KEY), NOW), Err(JwtError::NotYetValid));
        let ready = token(json!({"sub": "u1", "exp": NOW + 60, "nbf": NOW}));
        assert_eq!(verify(&ready, Some(KEY), NOW).unwrap().nbf, Some(NOW));
    }

    #[test]
    fn a_huge_token_is_refused_before_decoding() {
        let huge = format!("{}.{}.x", "a".repeat(MAX_TOKEN_BYTES), "b");
        assert!(matches!(
            verify(&huge, Some(KEY), NOW),
            Err(JwtError::Malformed(why)) if why.contains("longer than")
        ));
    }
}
