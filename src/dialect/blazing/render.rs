//! Rendering document events as blazing messages: JSON, gzip-compressed,
//! in binary frames; and the close codes of the document's table.

use serde_json::{json, Value};

use super::codec::gzip;
use crate::base64;
use crate::router::{Disconnect, DocumentEvent, Event};
use crate::wire::frame::{Close, Frame};

/// The frame a blazing client receives for `event`, or `None` for events
/// that mean nothing to it.
pub fn render(event: &Event) -> Option<Frame> {
    let message = match event {
        Event::Document(document) => message(document),
        Event::Disconnect(why) => return Some(Frame::close(&close(why))),
        _ => return None,
    };
    Some(Frame::binary(&gzip(message.to_string().as_bytes())))
}

fn message(event: &DocumentEvent) -> Value {
    match event {
        DocumentEvent::UserUpdate { actioner, joined } => {
            json!({"type": "usrupd", "payload": {"actioner": actioner, "type": joined}})
        }
        DocumentEvent::Sync {
            actioner,
            document,
            users,
            timeout,
            rev,
        } => {
            // Encoded once per version, by the first sync that needs it.
            let encoded = document
                .encoded
                .get_or_init(|| base64::encode(&gzip(document.text.as_bytes())));
            let users: serde_json::Map<String, Value> = users
                .iter()
                .map(|(user, offset)| (user.clone(), json!(offset)))
                .collect();
            json!({"type": "sync", "payload": {
                "actioner": actioner,
                "document": encoded,
                "users": users,
                "timeout": timeout,
                "rev": rev,
            }})
        }
        DocumentEvent::Move {
            actioner,
            offset,
            selection,
        } => {
            json!({"type": "move", "payload": {"actioner": actioner, "offset": offset, "selection": selection}})
        }
        DocumentEvent::Write {
            actioner,
            offset,
            selection,
            text,
            rev,
        } => json!({"type": "write", "payload": {
            "actioner": actioner, "offset": offset, "selection": selection, "text": text,
            "rev": rev,
        }}),
    }
}

/// The document's close codes for each way the router ends a connection.
fn close(why: &Disconnect) -> Close {
    let code = match why {
        Disconnect::TokenExpired => 3000,
        // The document's "no permission".
        Disconnect::NotGranted(_) => 3003,
        Disconnect::RoomClosed => 1000,
        // The document's own "server is shutting down or restarting".
        Disconnect::ShuttingDown => 1001,
        Disconnect::DocumentTooLarge(_) => 1009,
        Disconnect::Internal(_) => 1011,
        Disconnect::TooSlow => 1013,
        Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::PingTimeout
        | Disconnect::HeartbeatTimeout
        | Disconnect::Replaced => 1008,
    };
    Close::new(code, why.to_string())
}
