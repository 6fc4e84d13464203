//! Base64 (RFC 4648): the URL-safe, unpadded form JWTs use, and the
//! standard, padded form blazing's `document` uses.

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Standard base64 with `=` padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = encode_with(bytes, STANDARD);
    while !out.len().is_multiple_of(4) {
        out.push('=');
    }
    out
}

/// Unpadded base64url (RFC 4648 §5).
pub fn encode_url(bytes: &[u8]) -> String {
    encode_with(bytes, URL_SAFE)
}

/// Decodes unpadded base64url; `None` for any other character, for
/// padding, for a length no encoding produces, or for stray bits.
pub fn decode_url(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for &c in text.as_bytes() {
        let value = u32::try_from(URL_SAFE.iter().position(|&a| a == c)?).ok()?;
        bits = bits << 6 | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            // `bits` holds fewer than `count + 8` bits: this is one byte.
            #[allow(clippy::cast_possible_truncation)]
            let byte = (bits >> count) as u8;
            out.push(byte);
            bits &= (1 << count) - 1;
        }
    }
    // Leftover bits must be zero in a canonical encoding.
    (bits == 0).then_some(out)
}

fn encode_with(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small test values
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(encode_url(plain.as_bytes()), encoded.trim_end_matches('='));
        }
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
        assert_eq!(encode_url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn url_round_trips_every_length_and_refuses_junk() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode_url(&encode_url(&bytes)), Some(bytes));
        }
        for junk in ["aGVsbG8=", "a", "a+b/", "aGVsbG9"] {
            assert_eq!(decode_url(junk), None, "{junk}");
        }
    }
}
