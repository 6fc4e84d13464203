//! A tiny concierge chat client: identify, join a group, send what you type,
//! print what arrives.
//!
//! ```text
//! cargo run --release                                    # the server, in one terminal
//! cargo run --example concierge_chat -- ann lobby        # in a second
//! cargo run --example concierge_chat -- bob lobby        # in a third
//! ```
//!
//! Arguments: NAME [GROUP [URL]]; GROUP defaults to `lobby`, URL to
//! `ws://127.0.0.1:8080/ws/concierge`. Type a line and press enter to send
//! it to the group; `/who` lists the clients; Ctrl-D quits.

use std::io::BufRead;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .ok_or("usage: concierge_chat NAME [GROUP [URL]]")?;
    let group = args.next().unwrap_or_else(|| "lobby".into());
    let url = args
        .next()
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws/concierge".into());

    let (mut socket, _response) = tungstenite::connect(url.as_str())?;
    send(
        &mut socket,
        json!({"type": "IDENTIFY", "name": name, "version": "0.1.0"}),
    )?;
    let hello = receive(&mut socket)?;
    println!("* connected as {name} ({})", hello["uuid"]);

    // Create the group (someone may have already: GROUP_ALREADY_CREATED),
    // then subscribe: creating does not. Our own lines come back to us
    // like everyone else's, so the chat shows them in the order the hub
    // delivered them.
    send(&mut socket, json!({"type": "GROUP_CREATE", "name": group}))?;
    receive(&mut socket)?;
    send(
        &mut socket,
        json!({"type": "SELF_SUBSCRIBE", "name": group}),
    )?;

    // A WebSocket has one owner, so stdin is read on another thread and
    // handed over; the socket wakes up every 100 ms to look for new lines.
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    }

    loop {
        match lines.try_recv() {
            Ok(line) if line == "/who" => send(&mut socket, json!({"type": "CLIENT_FETCH_ALL"}))?,
            Ok(line) => send(
                &mut socket,
                json!({"type": "MESSAGE", "target": {"type": "GROUP", "group": group}, "data": line}),
            )?,
            Err(mpsc::TryRecvError::Disconnected) => break, // Ctrl-D
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match socket.read() {
            Ok(Message::Text(text)) => show(&serde_json::from_str(&text)?),
            Ok(Message::Close(frame)) => {
                println!("* server closed the connection: {frame:?}");
                return Ok(());
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    socket.close(None)?;
    Ok(())
}

/// Prints one payload from the concierge as a line of chat.
fn show(payload: &Value) {
    match payload["type"].as_str() {
        Some("MESSAGE") => println!(
            "<{}> {}",
            payload["origin"]["name"].as_str().unwrap_or("?"),
            payload["data"]
        ),
        Some("CLIENT_FETCH_ALL_RESULT") => {
            let names: Vec<&str> = payload["clients"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|client| client["name"].as_str())
                .collect();
            println!("* online: {}", names.join(", "));
        }
        Some("STATUS") if payload["code"] == "MESSAGE_SENT" => {}
        _ => println!("* {payload}"),
    }
}

fn send(socket: &mut Socket, payload: Value) -> tungstenite::Result<()> {
    socket.send(Message::text(payload.to_string()))
}

/// Waits for the next text payload.
fn receive(socket: &mut Socket) -> Result<Value, Box<dyn std::error::Error>> {
    loop {
        if let Message::Text(text) = socket.read()? {
            return Ok(serde_json::from_str(&text)?);
        }
    }
}
