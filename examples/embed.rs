//! Embedding switchboard in your own program, with an RPC method of your
//! own that common and world clients can call.
//!
//! ```text
//! cargo run --example embed
//! ```
//!
//! It starts a hub on 127.0.0.1:8090 with a method `dice.roll` (arguments:
//! how many dice), then calls it once from each RPC dialect, prints the
//! answers, and keeps serving until you stop it (Ctrl-C).

use std::net::TcpListener;

use serde_json::{json, Value};
use switchboard::methods::{Caller, RpcError};
use switchboard::{Config, Server};
use tungstenite::Message;

/// `dice.roll`: `[n]` (common) or `{"n": n}` (world); 1 to 100 dice.
fn roll(caller: &Caller, args: &Value) -> Result<Value, RpcError> {
    let n = args
        .get(0)
        .or_else(|| args.get("n"))
        .and_then(Value::as_u64)
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| RpcError::new("invalid_args", "roll 1 to 100 dice: [n] or {\"n\": n}"))?;
    let dice = (0..n)
        .map(|_| switchboard::id::below(6).map(|face| face + 1))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|e| RpcError::new("internal", e.to_string()))?;
    Ok(json!({"for": caller.name, "dialect": caller.dialect.name(), "dice": dice}))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:8090")?;
    let server = Server::from_listener(listener, Config::default()).method("dice.roll", roll);
    println!("hub on ws://{}", server.local_addr()?);
    std::thread::spawn(move || server.run());

    // A common client: HELLO, HELLO_ACK, then REQUEST.
    let (mut common, _) = tungstenite::connect("ws://127.0.0.1:8090/ws/common")?;
    println!("common < {}", common.read()?);
    common.send(Message::text(json!({"op": 1, "password": ""}).to_string()))?;
    let request = json!({"op": 4, "w": "dice.roll", "a": [3], "n": 1});
    common.send(Message::text(request.to_string()))?;
    println!("common < {}", common.read()?);

    // A world client: authenticate, then the same method as an action.
    let (mut world, _) = tungstenite::connect("ws://127.0.0.1:8090/ws/world/default")?;
    world.send(Message::text(
        json!(["authenticate", {"client_id": "guest"}]).to_string(),
    ))?;
    println!("world  < {}", world.read()?);
    world.send(Message::text(
        json!(["dice.roll", "roll-1", {"n": 2}]).to_string(),
    ))?;
    println!("world  < {}", world.read()?);

    println!("serving on; Ctrl-C to stop");
    loop {
        std::thread::park();
    }
}
