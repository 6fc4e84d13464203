//! Fuzzing token verification (world's `token`, blazing's
//! `Authorization`): mutated headers and claims, signed with the server's
//! key or another, and arbitrary text. Nothing panics, and a token is
//! accepted only if it is signed with the key, names HS256, HS384 or HS512
//! and carries a `sub` (or `uid`) and an `exp` still ahead.

use std::collections::BTreeMap;

use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use serde_json::value::RawValue;

use super::check;
use super::mutate;
use crate::base64::encode_url;
use crate::jwt::{verify, Algorithm, JwtError};

/// The server's key.
const KEY: &[u8] = b"the server's key";
/// "Now", fixed so that the claims' `exp` are ahead of it or not by design.
const NOW: u64 = 1_700_000_000;

/// Token headers: the ones switchboard accepts and the algorithm
/// confusions it must refuse.
const HEADERS: &[&str] = &[
    r#"{"alg":"HS256","typ":"JWT"}"#,
    r#"{"alg":"none","typ":"JWT"}"#,
    r#"{"alg":"HS512"}"#,
    r#"{"alg":"HS384","typ":"JWT"}"#,
    r#"{"alg":"RS256","kid":"k1"}"#,
];

/// Claims: good ones (world and blazing), expired, and without `exp`.
const CLAIMS: &[&str] = &[
    r#"{"sub":"84a33aad-bacf-40b4-a1b5-910300e7e3fc","name":"Steve","exp":4102444800}"#,
    r#"{"sub":"u-17","exp":4102444800,"computers":["pc-1","pc-2"]}"#,
    r#"{"sub":"u-17","exp":1}"#,
    r#"{"sub":"u-17","name":"no expiry"}"#,
    r#"{"uid":"u-18","exp":4102444800,"traits":["speaker"],"iss":"i","aud":"a"}"#,
];

const WORDS: &[&str] = &[
    "alg",
    "typ",
    "kid",
    "HS256",
    "HS384",
    "HS512",
    "none",
    "uid",
    "sub",
    "name",
    "exp",
    "computers",
    "nbf",
    "iat",
];

/// A token from its parts' text, signed with `key` by the algorithm its
/// header names (HS256 where it names none switchboard knows), so that a
/// refusal is the header's fault, not a mismatched signature's.
fn token(header: &str, claims: &str, key: &[u8]) -> String {
    // Read as the server reads it: only `alg`, whatever else is there.
    #[derive(serde::Deserialize)]
    struct Named {
        alg: Option<String>,
    }
    let named = serde_json::from_str::<Named>(header)
        .ok()
        .and_then(|h| h.alg);
    let algorithm = match named.as_deref() {
        Some("HS384") => Algorithm::Hs384,
        Some("HS512") => Algorithm::Hs512,
        _ => Algorithm::Hs256,
    };
    let signed = format!(
        "{}.{}",
        encode_url(header.as_bytes()),
        encode_url(claims.as_bytes())
    );
    let signature = hmac_of(algorithm, &signed, key);
    format!("{signed}.{signature}")
}

fn hmac_of(algorithm: Algorithm, signed: &str, key: &[u8]) -> String {
    fn mac<M: Mac + KeyInit>(signed: &str, key: &[u8]) -> String {
        let mut mac = <M as KeyInit>::new_from_slice(key).expect("any key length");
        mac.update(signed.as_bytes());
        encode_url(&mac.finalize().into_bytes())
    }
    match algorithm {
        Algorithm::Hs256 => mac::<hmac::Hmac<sha2::Sha256>>(signed, key),
        Algorithm::Hs384 => mac::<hmac::Hmac<sha2::Sha384>>(signed, key),
        Algorithm::Hs512 => mac::<hmac::Hmac<sha2::Sha512>>(signed, key),
    }
}

#[test]
fn fuzz_only_tokens_signed_with_the_key_for_hs256_with_sub_and_exp_pass() {
    let inputs = || {
        (
            mutate::mutated(HEADERS, WORDS),
            mutate::mutated(CLAIMS, WORDS),
            any::<bool>(),
        )
    };
    check(inputs, |(header, claims, with_the_key)| {
        let key: &[u8] = if with_the_key { KEY } else { b"another key" };
        let token = token(&header, &claims, key);
        match verify(&token, Some(KEY), NOW) {
            Ok(accepted) => {
                prop_assert!(with_the_key, "accepted a token signed with another key");
                // Read without `Value`, which refuses what a token's
                // header may hold in fields nobody reads (`1e999`).
                let fields: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_str(&header).expect("an accepted header is JSON");
                let alg = fields.get("alg").map(|alg| serde_json::from_str(alg.get()));
                let alg: Option<String> = alg.and_then(Result::ok);
                prop_assert!(
                    matches!(alg.as_deref(), Some("HS256" | "HS384" | "HS512")),
                    "accepted alg {:?}",
                    alg
                );
                prop_assert!(accepted.exp > NOW);
            }
            // Signed with another key, a token is refused at its signature
            // unless something before that (its header) is wrong already.
            Err(JwtError::BadSignature) => prop_assert!(!with_the_key),
            Err(
                JwtError::Malformed(_)
                | JwtError::WrongAlgorithm(_)
                | JwtError::Expired
                | JwtError::NotYetValid,
            ) => {}
            Err(JwtError::NoKey) => prop_assert!(false, "the key was given"),
            Err(JwtError::WrongIssuer | JwtError::WrongAudience) => {
                prop_assert!(false, "plain `verify` requires no issuer or audience");
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_any_text_as_a_token_is_refused() {
    check(
        || mutate::text(&["a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"], &["."]),
        |text| {
            prop_assert!(verify(&text, Some(KEY), NOW).is_err());
            Ok(())
        },
    );
}
