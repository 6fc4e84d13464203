//! Measures what idle concierge connections cost the server: connects N
//! clients from one thread, identifies each, and reads the server's resident
//! memory and thread count from /proc before and after.
//!
//! ```text
//! cargo run --release &                     # note the server's pid
//! cargo run --release --example idle_rss -- --pid <PID> -n 1000
//! ```
//!
//! Flags: `--pid PID` (required), `-n N` (default 1000),
//! `--url URL` (default `ws://127.0.0.1:8080/ws/concierge`).

use std::time::Duration;

use tungstenite::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut pid, mut count, mut url) = (
        None,
        1000usize,
        "ws://127.0.0.1:8080/ws/concierge".to_string(),
    );
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--pid" => pid = Some(value.parse::<u32>()?),
            "-n" => count = value.parse()?,
            "--url" => url = value,
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    let pid = pid.ok_or("--pid PID is required")?;

    let before = read_status(pid)?;
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let (mut socket, _) = tungstenite::connect(url.as_str())?;
        let identify = format!(r#"{{"type":"IDENTIFY","name":"idle_{i}","version":"0.1.0"}}"#);
        socket.send(Message::text(identify))?;
        match socket.read()? {
            Message::Text(text) if text.contains("HELLO") => {}
            other => return Err(format!("client {i}: expected HELLO, got {other:?}").into()),
        }
        clients.push(socket); // held open, idle, by this one thread
    }
    // Let the server's threads settle into their blocking reads.
    std::thread::sleep(Duration::from_secs(1));
    let after = read_status(pid)?;

    let per_conn = (after.rss_kib - before.rss_kib) as f64 / count as f64;
    println!("idle concierge connections: {count}");
    println!(
        "server RSS:     {} KiB -> {} KiB",
        before.rss_kib, after.rss_kib
    );
    println!("server threads: {} -> {}", before.threads, after.threads);
    println!(
        "per connection: {per_conn:.1} KiB RSS, {:.2} threads",
        (after.threads - before.threads) as f64 / count as f64
    );
    Ok(())
}

struct Status {
    rss_kib: i64,
    threads: i64,
}

/// VmRSS and Threads from /proc/PID/status.
fn read_status(pid: u32) -> Result<Status, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<i64, Box<dyn std::error::Error>> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or(format!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("empty field")?
            .parse()?)
    };
    Ok(Status {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
    })
}
