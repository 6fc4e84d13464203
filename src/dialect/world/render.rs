//! Rendering router events as world messages and close frames.

use serde_json::{json, Value};

use crate::methods::RpcError;
use crate::router::{Disconnect, Event, Message, Origin, Target};
use crate::wire::frame::{Close, Frame};

/// The frame a world client receives for `event`, or `None` for events
/// that mean nothing to it.
pub fn render(event: &Event) -> Option<Frame> {
    let text = match event {
        Event::Reply { id, result } => reply(id.as_deref(), result),
        Event::Authenticated { id, user, world } => {
            let body = json!({"user.config": user, "world.config": world});
            match id {
                Some(id) => format!(r#"["authenticated",{},{body}]"#, id.get()),
                None => json!(["authenticated", body]).to_string(),
            }
        }
        Event::Notice { action, body } => json!([action, body]).to_string(),
        Event::Reload => json!(["connection.reload", {}]).to_string(),
        Event::Message(message) => delivered(message),
        Event::Disconnect(why) => return Some(Frame::close(&close(why))),
        _ => return None,
    };
    Some(Frame::text(&text))
}

/// The message before the close frame of a disconnection, where the
/// document gives one.
pub fn farewell(why: &Disconnect) -> Option<Frame> {
    let code = match why {
        Disconnect::Replaced => "connection.replaced",
        Disconnect::Internal(_) => "server.fatal",
        Disconnect::TokenExpired => "auth.expired_token",
        _ => return None,
    };
    Some(fatal_or(code))
}

/// `["error", {"code": code}]`.
pub fn fatal_or(code: &str) -> Frame {
    Frame::text(&json!(["error", {"code": code}]).to_string())
}

fn close(why: &Disconnect) -> Close {
    let code = match why {
        Disconnect::Replaced => 1000,
        Disconnect::ShuttingDown => 1001,
        Disconnect::Internal(_) => 1011,
        Disconnect::TooSlow => 1013,
        _ => 1008,
    };
    Close::new(code, why.to_string())
}

/// `["success", id, result]` or `["error", id, {"code": …}]`; without the
/// id when the call had none. The id is echoed byte for byte.
fn reply(id: Option<&serde_json::value::RawValue>, result: &Result<Value, RpcError>) -> String {
    let (kind, body) = match result {
        Ok(value) => ("success", value.clone()),
        Err(error) => (
            "error",
            json!({"code": error_code(error), "message": error.message}),
        ),
    };
    match id {
        Some(id) => format!(r#"["{kind}",{},{body}]"#, id.get()),
        None => format!(r#"["{kind}",{body}]"#),
    }
}

/// The hub's error codes in the world's spelling, where it has one.
fn error_code(error: &RpcError) -> &str {
    match error.code.as_str() {
        "unknown_method" => "protocol.unknown_command",
        "rate_limited" => "protocol.rate_limited",
        code => code,
    }
}

/// A message published by another client: `room.send` for a room of this
/// world's topic namespace (`W/R`), else a plain `message`.
fn delivered(message: &Message) -> String {
    let sender = match &message.origin {
        Origin::Client(client) => json!({"id": client.uuid.to_string(), "name": client.name}),
        Origin::Http => json!({"id": null, "name": "$http"}),
    };
    let content: Value = serde_json::from_str(message.data.get()).unwrap_or(Value::Null);
    match &message.target {
        Target::Topic(topic) => match topic.split_once('/') {
            Some((_, room)) => {
                json!(["room.send", {"room": room, "content": content, "sender": sender}])
            }
            None => json!(["message", {"topic": topic, "content": content, "sender": sender}]),
        },
        _ => json!(["message", {"content": content, "sender": sender}]),
    }
    .to_string()
}
