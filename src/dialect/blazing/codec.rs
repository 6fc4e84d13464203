//! Blazing messages on the wire: `{"type", "payload"}` JSON, gzip-compressed,
//! in binary frames. Decompression stops at a size limit, so a gzip bomb
//! costs at most that much memory.

use std::io::{Read, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Deserialize;

use crate::router::Edit;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// It decompresses to more than the limit (1009).
    TooLarge(usize),
    /// It is not gzip, not JSON, or not a message of the protocol (1007).
    Undecodable(String),
}

/// Decompresses `bytes`, refusing to produce more than `limit` bytes.
///
/// Never inlined: the decoder's state is tens of KiB, and inlined into the
/// reader's message loop (as link-time optimisation does) it would make
/// every connection's thread, of every dialect, touch that much stack.
#[inline(never)]
pub fn gunzip(bytes: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Undecodable(format!("not gzip: {e}")))?;
    if out.len() > limit {
        return Err(CodecError::TooLarge(limit));
    }
    Ok(out)
}

/// Compresses `bytes` with gzip.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail.
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

// Unknown fields are ignored, not refused: the document's clients echo
// common keys such as `actioner` in what they send.
#[derive(Deserialize)]
struct MovePayload {
    offset: i64,
    selection: i64,
    /// The client's revision (docs/revisions.md, "Blazing revisions").
    #[serde(default)]
    rev: Option<u64>,
}

#[derive(Deserialize)]
struct WritePayload {
    offset: i64,
    selection: i64,
    text: String,
    /// The client's revision (docs/revisions.md, "Blazing revisions").
    #[serde(default)]
    rev: Option<u64>,
}

/// Decodes one message's JSON (already decompressed). Type names match in
/// any case (`SYNC`, `Write`), as the original's packet lookup did.
pub fn decode(json: &[u8]) -> Result<Edit, CodecError> {
    let bad = |why: String| CodecError::Undecodable(why);
    let envelope: Envelope =
        serde_json::from_slice(json).map_err(|e| bad(format!("not a message: {e}")))?;
    let payload = envelope.payload.unwrap_or(serde_json::Value::Null);
    match envelope.kind.to_ascii_lowercase().as_str() {
        "sync" => Ok(Edit::Sync),
        "move" => {
            let p: MovePayload =
                serde_json::from_value(payload).map_err(|e| bad(format!("move: {e}")))?;
            Ok(Edit::Move {
                offset: p.offset,
                selection: p.selection,
                rev: p.rev,
            })
        }
        "write" => {
            let p: WritePayload =
                serde_json::from_value(payload).map_err(|e| bad(format!("write: {e}")))?;
            Ok(Edit::Write {
                offset: p.offset,
                selection: p.selection,
                text: p.text,
                rev: p.rev,
            })
        }
        "usrupd" => Err(bad("usrupd is sent by the server, not to it".into())),
        _ => Err(bad(format!("unknown message type {:?}", envelope.kind))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips() {
        let text = "é中🦀".repeat(1000);
        assert_eq!(
            gunzip(&gzip(text.as_bytes()), 1 << 20).unwrap(),
            text.as_bytes()
        );
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        // 50 MiB of zeros: about 50 KiB at best compression.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 50 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert_eq!(gunzip(&bomb, 1 << 20), Err(CodecError::TooLarge(1 << 20)));
    }

    #[test]
    fn not_gzip_is_undecodable() {
        assert!(matches!(
            gunzip(b"{\"type\":\"sync\"}", 1000),
            Err(CodecError::Undecodable(_))
        ));
        let mut truncated = gzip(b"hello hello hello");
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            gunzip(&truncated, 1000),
            Err(CodecError::Undecodable(_))
        ));
    }

    #[test]
    fn messages() {
        assert_eq!(decode(br#"{"type":"sync","payload":{}}"#), Ok(Edit::Sync));
        assert_eq!(decode(br#"{"type":"sync"}"#), Ok(Edit::Sync));
        assert_eq!(
            decode(br#"{"type":"move","payload":{"offset":3,"selection":-2}}"#),
            Ok(Edit::Move {
                offset: 3,
                selection: -2,
                rev: None,
            })
        );
        assert_eq!(
            decode(br#"{"type":"write","payload":{"offset":1,"selection":0,"text":"hi","rev":7}}"#),
            Ok(Edit::Write {
                offset: 1,
                selection: 0,
                text: "hi".into(),
                rev: Some(7),
            })
        );
        assert_eq!(
            decode(br#"{"type":"write","payload":{"offset":1,"selection":0,"text":"hi"}}"#),
            Ok(Edit::Write {
                offset: 1,
                selection: 0,
                text: "hi".into(),
                rev: None,
            })
        );
        assert_eq!(
            decode(br#"{"type":"SYNC"}"#),
            Ok(Edit::Sync),
            "type names match in any case"
        );
        assert_eq!(
            decode(br#"{"type":"Move","payload":{"offset":3,"selection":0,"actioner":"84a33aad-bacf-40b4-a1b5-910300e7e3fc"}}"#),
            Ok(Edit::Move {
                offset: 3,
                selection: 0,
                rev: None,
            }),
            "unknown fields are ignored"
        );
        for bad in [
            &br"not json"[..],
            br#"{"type":"move","payload":{"offset":3}}"#,
            br#"{"type":"move","payload":{"offset":1.5,"selection":0}}"#,
            br#"{"type":"write","payload":{"offset":1,"selection":0,"text":null}}"#,
            br#"{"type":"write","payload":{"offset":1,"selection":0}}"#,
            br#"{"type":"usrupd","payload":{}}"#,
            br#"{"type":"fly","payload":{}}"#,
            br#"{"payload":{}}"#,
        ] {
            assert!(
                matches!(decode(bad), Err(CodecError::Undecodable(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
