//! Rendering router events as common payloads.

use serde_json::json;

use super::error::CommonError;
use crate::router::Event;
use crate::wire::frame::Frame;

/// The frame a common client receives for `event`, or `None` for events
/// that mean nothing to it (the protocol has no server-pushed messages).
pub fn render(event: &Event) -> Option<Frame> {
    let payload = match event {
        Event::HeartbeatAck => json!({"op": 3}),
        Event::Reply { id, result } => {
            let r = match result {
                Ok(value) => value.clone(),
                Err(error) => json!({"error": {"code": error.code, "message": error.message}}),
            };
            // `n` is echoed byte for byte, whatever JSON it is.
            let n = id.as_ref().map_or("null", |id| id.get());
            return Some(Frame::text(&format!(r#"{{"op":5,"n":{n},"r":{r}}}"#)));
        }
        Event::Disconnect(why) => return Some(Frame::close(&CommonError::from(why).close())),
        _ => return None,
    };
    Some(Frame::text(&payload.to_string()))
}
