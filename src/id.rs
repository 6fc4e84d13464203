//! Random identifiers handed to clients, from the OS RNG: version 4 UUIDs
//! and short tokens such as channels' `client_fXoSDfqi` and `evt_gPVZZQC5`.

use std::fmt;

use serde::{Serialize, Serializer};

/// A random (version 4) UUID: the concierge's client key, sent in `HELLO`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The all-zero UUID, standing for the hub itself (HTTP emits).
    pub const NIL: Uuid = Uuid([0; 16]);

    /// A fresh random UUID. Fails only if the operating system's RNG does.
    pub fn new_v4() -> Result<Uuid, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
        Ok(Uuid(bytes))
    }

    /// Parses the hyphenated form (`8-4-4-4-12` hex digits, either case).
    pub fn parse(text: &str) -> Option<Uuid> {
        let text = text.as_bytes();
        if text.len() != 36 {
            return None;
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0;
        for (i, &c) in text.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            let value = u8::try_from((c as char).to_digit(16)?).ok()?;
            bytes[nibbles / 2] |= value << if nibbles % 2 == 0 { 4 } else { 0 };
            nibbles += 1;
        }
        Some(Uuid(bytes))
    }
}

impl Uuid {
    /// The hyphenated, lowercase form, in ASCII. By hand rather than with
    /// a `{:02x}` per byte: a group's MESSAGE lists every subscriber's
    /// uuid, and formatting them was 4% of the router's time in a fan-out
    /// to 1,000 subscribers.
    fn hyphenated(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1; // the hyphen already there
            }
            text[at] = HEX[usize::from(byte >> 4)];
            text[at + 1] = HEX[usize::from(byte & 0xf)];
            at += 2;
        }
        text
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.hyphenated();
        // Hex digits and hyphens only: always UTF-8.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.hyphenated();
        // Hex digits and hyphens only: always UTF-8.
        let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(text)
    }
}

/// The characters of [`token`]s: those allowed in concierge names too, so
/// a channels client id is a valid name in the shared namespace.
const TOKEN_ALPHABET: &[u8; 63] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";

/// `prefix` followed by `len` random characters of `[A-Za-z0-9_]`.
pub fn token(prefix: &str, len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut bytes = [0u8; 32];
    while out.len() < prefix.len() + len {
        getrandom::fill(&mut bytes)?;
        // 6 random bits per byte; 63 (one value in 64) is dropped so that
        // every character is equally likely.
        for &byte in &bytes {
            let index = usize::from(byte & 63);
            if index < TOKEN_ALPHABET.len() && out.len() < prefix.len() + len {
                out.push(TOKEN_ALPHABET[index] as char);
            }
        }
    }
    Ok(out)
}

/// A random number below `bound` (which must be positive), without bias.
pub fn below(bound: usize) -> Result<usize, getrandom::Error> {
    let bound = bound as u64;
    // Reject the top, partial copy of 0..bound in u64's range.
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let value = getrandom::u64()?;
        if value < zone {
            // Below `bound`, which was a usize.
            #[allow(clippy::cast_possible_truncation)]
            let index = (value % bound) as usize;
            return Ok(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_prints_as_its_parse_reads_it() {
        let text = "0123abcd-ef45-4678-9abc-def012345678";
        let uuid = Uuid::parse(text).unwrap();
        assert_eq!(uuid.to_string(), text);
        assert_eq!(serde_json::to_string(&uuid).unwrap(), format!("\"{text}\""));
        assert_eq!(Uuid::parse(&text.to_uppercase()).unwrap().to_string(), text);
        assert_eq!(
            Uuid::NIL.to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
        for _ in 0..100 {
            let uuid = Uuid::new_v4().unwrap();
            assert_eq!(Uuid::parse(&uuid.to_string()), Some(uuid));
        }
    }

    #[test]
    fn tokens_have_the_prefix_length_and_alphabet() {
        let token = token("client_", 8).unwrap();
        assert_eq!(token.len(), 15);
        assert!(token.starts_with("client_"));
        assert!(
            token[7..].bytes().all(|b| TOKEN_ALPHABET.contains(&b)),
            "{token}"
        );
        assert_ne!(super::token("", 16).unwrap(), super::token("", 16).unwrap());
    }

    #[test]
    fn below_stays_below() {
        for bound in [1, 2, 3, 7, 1000] {
            for _ in 0..100 {
                assert!(below(bound).unwrap() < bound);
            }
        }
    }

    #[test]
    fn v4_has_version_and_variant_bits() {
        let text = Uuid::new_v4().unwrap().to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4");
        assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"), "{text}");
    }

    #[test]
    fn display_and_parse_round_trip() {
        let uuid = Uuid::new_v4().unwrap();
        assert_eq!(Uuid::parse(&uuid.to_string()), Some(uuid));
        assert_eq!(
            Uuid::parse("73FCC768-D724-47E2-A101-A45298188F47").map(|u| u.to_string()),
            Some("73fcc768-d724-47e2-a101-a45298188f47".to_string())
        );
    }

    #[test]
    fn parse_rejects_malformed_text() {
        for bad in [
            "",
            "73fcc768d72447e2a101a45298188f47",
            "73fcc768-d724-47e2-a101-a45298188f4g",
            "73fcc768-d724-47e2-a101_a45298188f47",
            "73fcc768-d724-47e2-a101-a45298188f47a",
            "é3fcc768-d724-47e2-a101-a45298188f4",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad}");
        }
    }
}
