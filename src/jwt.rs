//! HMAC-signed JSON Web Tokens (RFC 7519): verification for the dialects
//! that authenticate with one (world's `token`, blazing's `Authorization`,
//! channels' bearer tokens), and signing for tests, examples and demos.
//!
//! `HS256`, `HS384` and `HS512` are accepted, all with the one configured
//! key: issuers such as jjwt (blazing's original) pick the hash by the
//! key's length. A token whose header names any other algorithm (`none`,
//! or `RS256` signed "with" the HMAC key) is refused before its signature
//! is looked at, which closes the classic "alg confusion" holes. The
//! signature is checked with RustCrypto's HMAC, compared in constant time.
//! A [`Verifier`] adds the operator's `iss` and `aud` checks.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use serde::Deserialize;

/// The claims switchboard reads from a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The user's id (a uuid in the blazing dialect). Tokens that carry
    /// `uid` instead (venueless's) have it here too.
    #[serde(default)]
    pub sub: String,
    /// venueless's name for the user's id, read when `sub` is absent.
    #[serde(default)]
    uid: Option<String>,
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
    /// Who issued it (checked against `--jwt-issuer` when set).
    #[serde(default)]
    pub iss: Option<String>,
    /// Who it is for: one string or a list (checked against
    /// `--jwt-audience` when set).
    #[serde(default)]
    pub aud: Option<Audience>,
    /// venueless's user traits (badges, roles), for embedders' methods.
    #[serde(default)]
    pub traits: Option<Vec<String>>,
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

/// A token's `aud`: RFC 7519 allows one string or an array of them. Kept
/// as JSON rather than an untagged enum, whose buffering deserializer would
/// cost the binary kilobytes for one rarely used claim.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Audience(serde_json::Value);

impl Audience {
    fn names(&self, audience: &str) -> bool {
        match &self.0 {
            serde_json::Value::String(one) => one == audience,
            serde_json::Value::Array(many) => many.iter().any(|one| one == audience),
            _ => false,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// The server has no key configured: tokens cannot be checked.
    NoKey,
    /// Not three base64url parts of JSON, or a claim missing or mistyped.
    Malformed(String),
    /// The header names an algorithm other than HS256, HS384 or HS512.
    WrongAlgorithm(String),
    /// The signature does not match.
    BadSignature,
    /// `exp` has passed.
    Expired,
    /// `nbf` has not come yet.
    NotYetValid,
    /// `iss` is not the configured issuer.
    WrongIssuer,
    /// `aud` does not name the configured audience.
    WrongAudience,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::NoKey => f.write_str("this server accepts no tokens (no --jwt-key)"),
            JwtError::Malformed(why) => write!(f, "malformed token: {why}"),
            JwtError::WrongAlgorithm(alg) => {
                write!(f, "algorithm {alg:?} is not HS256, HS384 or HS512")
            }
            JwtError::BadSignature => f.write_str("bad signature"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not valid yet (nbf)"),
            JwtError::WrongIssuer => f.write_str("token from another issuer (iss)"),
            JwtError::WrongAudience => f.write_str("token for another audience (aud)"),
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

/// What a token must satisfy: the key it is signed with, and the issuer
/// and audience the operator requires (`--jwt-issuer`, `--jwt-audience`).
/// Cheap to clone: every dialect's session holds one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verifier {
    /// The HMAC key; `None` refuses every token.
    pub key: Option<Arc<str>>,
    /// The `iss` every token must carry, if set.
    pub issuer: Option<Arc<str>>,
    /// The audience every token's `aud` must name, if set.
    pub audience: Option<Arc<str>>,
}

impl Verifier {
    /// Checks `token` at time `now` (Unix seconds) and returns its claims.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let claims = verify(token, self.key.as_deref().map(str::as_bytes), now)?;
        if let Some(issuer) = &self.issuer {
            if claims.iss.as_deref() != Some(&**issuer) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            if !claims.aud.as_ref().is_some_and(|aud| aud.names(audience)) {
                return Err(JwtError::WrongAudience);
            }
        }
        Ok(claims)
    }
}

/// The HMAC hashes a token may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `HS256`: HMAC-SHA256.
    Hs256,
    /// `HS384`: HMAC-SHA384.
    Hs384,
    /// `HS512`: HMAC-SHA512.
    Hs512,
}

impl Algorithm {
    /// Its name in a token's header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }

    fn named(alg: &str) -> Option<Algorithm> {
        match alg {
            "HS256" => Some(Algorithm::Hs256),
            "HS384" => Some(Algorithm::Hs384),
            "HS512" => Some(Algorithm::Hs512),
            _ => None,
        }
    }

    /// Whether `signature` is this algorithm's HMAC of `signed` with `key`,
    /// compared in constant time.
    fn signs(self, key: &[u8], signed: &[u8], signature: &[u8]) -> bool {
        crate::auth::secrets_match(signature, &self.mac(key, signed))
    }

    /// This algorithm's HMAC of `signed` with `key`.
    fn mac(self, key: &[u8], signed: &[u8]) -> Vec<u8> {
        fn mac<M: Mac + KeyInit>(key: &[u8], signed: &[u8]) -> Vec<u8> {
            // HMAC takes keys of any length, so this cannot fail.
            let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(signed);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            Algorithm::Hs256 => mac::<hmac::Hmac<sha2::Sha256>>(key, signed),
            Algorithm::Hs384 => mac::<hmac::Hmac<sha2::Sha384>>(key, signed),
            Algorithm::Hs512 => mac::<hmac::Hmac<sha2::Sha512>>(key, signed),
        }
    }
}

/// Checks `token` against `key` at time `now` (Unix seconds) and returns
/// its claims. `key` `None` refuses every token. No issuer or audience is
/// required: that is [`Verifier`]'s.
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
    let algorithm = Algorithm::named(&header.alg).ok_or(JwtError::WrongAlgorithm(header.alg))?;
    let signature = base64url_decode(signature)
        .ok_or_else(|| JwtError::Malformed("signature is not base64url".into()))?;
    if !algorithm.signs(key, signed.as_bytes(), &signature) {
        return Err(JwtError::BadSignature);
    }
    let mut claims: Claims = decode_json(payload, "payload")?;
    if claims.sub.is_empty() {
        claims.sub = claims.uid.take().unwrap_or_default();
    }
    if claims.sub.is_empty() {
        return Err(JwtError::Malformed("no `sub` (or `uid`) claim".into()));
    }
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
    sign_with(Algorithm::Hs256, claims, key)
}

/// Signs `claims` (any JSON object) with `key` as a token of `algorithm`.
pub fn sign_with(algorithm: Algorithm, claims: &serde_json::Value, key: &[u8]) -> String {
    let header = format!(r#"{{"alg":"{}","typ":"JWT"}}"#, algorithm.name());
    let header = base64url_encode(header.as_bytes());
    let payload = base64url_encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{payload}");
    let signature = base64url_encode(&algorithm.mac(key, signed.as_bytes()));
    format!("{signed}.{signature}")
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, JwtError> {
    let bytes = base64url_decode(part)
        .ok_or_else(|| JwtError::Malformed(format!("{what} is not base64url")))?;
    // Header and claims are JSON objects (RFC 7515 §4, RFC 7519 §4); serde
    // would also fill a struct from an array (`["HS256"]`), which no
    // issuer writes. Found by the fuzz properties (src/tests/fuzz/jwt.rs).
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
                uid: None,
                iss: None,
                aud: None,
                traits: None,
                computers: Some(vec!["c1".into()]),
                channels: None,
                publish: None,
            }
        );
    }

    #[test]
    fn hs384_and_hs512_with_the_same_key_are_accepted() {
        let claims = json!({"sub": "u1", "exp": NOW + 60});
        for algorithm in [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512] {
            let token = sign_with(algorithm, &claims, KEY);
            assert_eq!(verify(&token, Some(KEY), NOW).unwrap().sub, "u1");
            assert_eq!(
                verify(&token, Some(b"other"), NOW),
                Err(JwtError::BadSignature),
                "{algorithm:?}"
            );
        }
        // An HS512 signature relabelled HS256 does not pass.
        let token = sign_with(Algorithm::Hs512, &claims, KEY);
        let (_, rest) = token.split_once('.').unwrap();
        let header = base64url_encode(br#"{"alg":"HS256"}"#);
        assert_eq!(
            verify(&format!("{header}.{rest}"), Some(KEY), NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn uid_stands_in_for_a_missing_sub() {
        let venueless = token(json!({"uid": "u-7", "exp": NOW + 60, "traits": ["speaker"]}));
        let claims = verify(&venueless, Some(KEY), NOW).unwrap();
        assert_eq!(claims.sub, "u-7");
        assert_eq!(claims.traits, Some(vec!["speaker".to_string()]));
        let both = token(json!({"sub": "s", "uid": "u", "exp": NOW + 60}));
        assert_eq!(verify(&both, Some(KEY), NOW).unwrap().sub, "s");
        let neither = token(json!({"exp": NOW + 60}));
        assert_eq!(
            verify(&neither, Some(KEY), NOW),
            Err(JwtError::Malformed("no `sub` (or `uid`) claim".into()))
        );
    }

    #[test]
    fn a_verifier_checks_issuer_and_audience() {
        let verifier = Verifier {
            key: Some("secret key".into()),
            issuer: Some("venueless".into()),
            audience: Some("switchboard".into()),
        };
        let with = |iss: serde_json::Value, aud: serde_json::Value| {
            verifier.verify(
                &token(json!({"sub": "u", "exp": NOW + 60, "iss": iss, "aud": aud})),
                NOW,
            )
        };
        assert!(with(json!("venueless"), json!("switchboard")).is_ok());
        assert!(with(json!("venueless"), json!(["other", "switchboard"])).is_ok());
        assert_eq!(
            with(json!("other"), json!("switchboard")),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            with(json!(null), json!("switchboard")),
            Err(JwtError::WrongIssuer)
        );
        assert_eq!(
            with(json!("venueless"), json!(["other"])),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            with(json!("venueless"), json!(null)),
            Err(JwtError::WrongAudience)
        );
        let lenient = Verifier {
            key: Some("secret key".into()),
            ..Verifier::default()
        };
        assert!(lenient
            .verify(
                &token(json!({"sub": "u", "exp": NOW + 60, "iss": "x"})),
                NOW
            )
            .is_ok());
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
        // `["u1", exp]` as claims once passed (found by src/tests/fuzz/jwt.rs).
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
    fn only_hmac_algorithms_are_accepted() {
        let payload = base64url_encode(br#"{"sub":"u1","exp":9999999999}"#);
        for alg in ["none", "RS256", "ES256", "PS512", "hs256", "HS1024"] {
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
