//! `idle`: many identified, subscribed clients that send nothing.

use std::thread;
use std::time::{Duration, Instant};

use tungstenite::{Error as WsError, Message};

use crate::client::{client_config, close_quietly, connect, join, ConnectError, Target};
use crate::concierge::{create_group, identify, is_timeout};
use crate::options::Options;
use crate::proc::{cpu_line, open_file_limit, thread_limits, ProcSample};
use crate::{Res, Socket};

pub fn idle(options: &Options) -> Res<bool> {
    let target = options.target()?;
    let before = ProcSample::server(options.server_pid)?;
    let mut clients = open_idle_clients(&target, options.connections);
    // Let the server's threads settle into their blocking reads.
    thread::sleep(Duration::from_secs(1));
    let connected = ProcSample::server(options.server_pid)?;
    let hold_begin = Instant::now();
    let open = hold(&mut clients, options.hold);
    let held = hold_begin.elapsed();
    let after = ProcSample::server(options.server_pid)?;

    println!(
        "idle: {} of {} connections identified and subscribed; \
         held {:.1} s by one thread, {open} still open",
        clients.len(),
        options.connections,
        held.as_secs_f64()
    );
    match (before, connected, after) {
        (Some(before), Some(connected), Some(after)) => {
            print_idle_server(&before, &connected, &after, clients.len(), held);
        }
        _ => println!("  (give --server-pid PID for the server's memory, threads and CPU)"),
    }
    let complete = clients.len() == options.connections && open == clients.len();
    for ws in clients {
        close_quietly(ws);
    }
    Ok(complete)
}

/// Connects up to `count` clients: the first creates the group, the rest
/// subscribe to it. Stops early, saying why, when a connection fails.
pub fn open_idle_clients(target: &Target, count: usize) -> Vec<Socket> {
    let group = "bench_idle";
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("bench_idle_{i}");
        let joined = if i == 0 {
            first_idle_client(target, &name, group)
        } else {
            join(target, &name, group, 4096)
        };
        match joined {
            Ok(ws) => clients.push(ws),
            Err(ConnectError::OutOfFiles(e)) => {
                // Reading /proc takes a file descriptor too: give one back.
                if let Some(ws) = clients.pop() {
                    close_quietly(ws);
                }
                println!(
                    "idle: out of file descriptors after {i} connections ({e}); this process's \
                     open-file limit (RLIMIT_NOFILE, /proc/self/limits) is {}: raise it with \
                     `ulimit -n <hard limit>` in the shell. Continuing with {}.",
                    open_file_limit(),
                    clients.len()
                );
                break;
            }
            Err(e) => {
                println!(
                    "idle: connection {i} failed ({e}); continuing with {i}. If the server \
                     logged that it cannot start a thread, a machine limit stopped it: {}",
                    thread_limits()
                );
                break;
            }
        }
    }
    clients
}

pub fn first_idle_client(target: &Target, name: &str, group: &str) -> Result<Socket, ConnectError> {
    let mut ws = connect(target, client_config(4096))?;
    identify(&mut ws, name)?;
    create_group(&mut ws, group)?;
    Ok(ws)
}

/// Holds the clients for `duration` without sending anything. Once a
/// second it reads whatever arrived on each (non-blocking), so that the
/// server's keepalive pings get their pongs on long holds. Returns how many
/// are still open.
pub fn hold(clients: &mut [Socket], duration: Duration) -> usize {
    let until = Instant::now() + duration;
    let mut open = vec![true; clients.len()];
    for ws in clients.iter() {
        let _ = ws.get_ref().set_nonblocking(true);
    }
    loop {
        for (ws, open) in clients.iter_mut().zip(open.iter_mut()) {
            if *open {
                *open = sweep(ws);
            }
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        thread::sleep(left.min(Duration::from_secs(1)));
    }
    open.iter().filter(|&&o| o).count()
}

/// Reads everything waiting on one socket (tungstenite queues the pong for
/// a ping); false once the connection is gone.
pub fn sweep(ws: &mut Socket) -> bool {
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => return false,
            Ok(_) => {}
            Err(WsError::Io(e)) if is_timeout(&e) => return true,
            Err(_) => return false,
        }
    }
}

pub fn print_idle_server(
    before: &ProcSample,
    connected: &ProcSample,
    after: &ProcSample,
    count: usize,
    held: Duration,
) {
    let n = count.max(1) as f64;
    println!(
        "  server RSS:     {} KiB -> {} KiB",
        before.rss_kib, connected.rss_kib
    );
    println!(
        "  server threads: {} -> {}",
        before.threads, connected.threads
    );
    println!(
        "  per connection: {:.1} KiB RSS, {:.2} threads",
        (connected.rss_kib as f64 - before.rss_kib as f64) / n,
        (connected.threads as f64 - before.threads as f64) / n
    );
    // An idle connection should cost no CPU at all: no timers, no polling.
    println!(
        "  {}",
        cpu_line("server during the idle hold", connected, after, held)
    );
}
