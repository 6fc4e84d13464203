//! The router thread: the I/O around the pure [`Router`].
//!
//! It receives [`Command`]s from every connection's reader, asks the router
//! what they cause, renders each resulting event once per dialect among its
//! recipients and pushes the shared frame onto their outboxes. Pushes never
//! block: a client whose outbox is full is disconnected as too slow, and
//! the router forgets it at once.

use std::collections::{HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::{Command, ConnId, Delivery, Disconnect, Event, Router};
use crate::dialect::{self, Dialect, Rendered};
use crate::log;
use crate::metrics::Metrics;
use crate::net::frame::{Close, Frame};
use crate::net::outbox::{Outbox, PushError};

/// Where a connection's frames go.
struct Peer {
    dialect: Dialect,
    /// Shared with the connection's reader and writer; the router thread
    /// holds it from `Open` to `Closed` and only ever `try_push`es.
    outbox: Arc<Outbox>,
}

/// Starts the router thread. It runs until every sender of `commands` is
/// dropped, which happens only when the server itself is dropped.
pub fn spawn(
    router: Router,
    commands: Receiver<Command>,
    metrics: Arc<Metrics>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("router".into())
        .spawn(move || run(router, commands, &metrics))
}

fn run(mut router: Router, commands: Receiver<Command>, metrics: &Metrics) {
    let mut peers: HashMap<ConnId, Peer> = HashMap::new();
    loop {
        let received = match router.next_deadline() {
            Some(deadline) => commands.recv_deadline(deadline),
            None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let command = match received {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // The router is shared by every client: a bug in one rule must not
        // stop the hub. The command that hit it is lost and logged; the
        // rest of the state is left as the rule left it.
        let step = panic::catch_unwind(AssertUnwindSafe(|| {
            step(&mut router, &mut peers, command, metrics)
        }));
        if step.is_err() {
            metrics.router_panics.increment();
            log::error!("the router failed on a command (a bug); it goes on without it");
        }
    }
}

/// One turn of the loop: due timers, then the command (if any), then
/// delivery of everything they caused.
fn step(
    router: &mut Router,
    peers: &mut HashMap<ConnId, Peer>,
    command: Option<Command>,
    metrics: &Metrics,
) {
    let now = Instant::now();
    // Deadlines first, also when commands keep arriving (a busy channel
    // never times out), so that a late IDENTIFY finds its connection
    // already closed.
    let mut deliveries = router.expire(now);
    if let Some(command) = command {
        track(peers, &command);
        deliveries.extend(router.handle(command, now));
    }
    deliver(router, peers, deliveries, metrics);
}

/// Keeps the table of outboxes in step with the connections.
fn track(peers: &mut HashMap<ConnId, Peer>, command: &Command) {
    match command {
        Command::Open {
            conn,
            dialect,
            outbox,
        } => {
            let peer = Peer {
                dialect: *dialect,
                outbox: outbox.clone(),
            };
            peers.insert(*conn, peer);
        }
        Command::Closed { conn } => {
            peers.remove(conn);
        }
        _ => {}
    }
}

fn deliver(
    router: &mut Router,
    peers: &HashMap<ConnId, Peer>,
    deliveries: Vec<Delivery>,
    metrics: &Metrics,
) {
    let mut queue = VecDeque::from(deliveries);
    let mut too_slow = Vec::new();
    while let Some(delivery) = queue.pop_front() {
        // One rendering per dialect, shared by all recipients speaking it;
        // dialects that name the recipient in every frame add that per
        // recipient, in a few bytes of its own.
        let mut rendered: [Option<Option<Rendered>>; Dialect::ALL.len()] = Default::default();
        for &conn in &delivery.to {
            let Some(peer) = peers.get(&conn) else {
                continue; // its Closed is on the way; nothing to deliver
            };
            let frame = rendered[peer.dialect.index()]
                .get_or_insert_with(|| dialect::render(peer.dialect, &delivery.event))
                .as_ref()
                .and_then(|rendered| rendered.frame_for(router.addressee(conn)));
            if let Event::Disconnect(why) = &delivery.event {
                say_goodbye(router, conn, peer, why, frame);
                continue;
            }
            let Some(frame) = frame else { continue };
            match peer.outbox.try_push(frame) {
                Ok(()) => metrics.frames_out.increment(),
                Err(PushError::Closed) => {}
                Err(PushError::Full) => too_slow.push(conn),
            }
        }
        for conn in too_slow.drain(..) {
            metrics.slow_consumers.increment();
            queue.extend(router.evict(conn, Disconnect::TooSlow));
        }
    }
}

/// Ends a connection the router has disconnected: its dialect's last words
/// if it has any, then the close frame. A client too slow to read gets only
/// the close frame, in place of everything still queued.
fn say_goodbye(router: &Router, conn: ConnId, peer: &Peer, why: &Disconnect, close: Option<Frame>) {
    log::info!("{conn} {}: closing: {why}", peer.dialect);
    let close = close.unwrap_or_else(|| generic_close(why));
    if let Disconnect::TooSlow = why {
        peer.outbox.abort(close);
        return;
    }
    if let Some(last_words) = dialect::farewell(peer.dialect, why, router.addressee(conn)) {
        let _ = peer.outbox.try_push(last_words); // full or closed: it is leaving anyway
    }
    peer.outbox.close(close);
}

/// The close frame for a dialect that has no rendering of its own for `why`.
fn generic_close(why: &Disconnect) -> Frame {
    let code = match why {
        Disconnect::TooSlow => 1013,
        Disconnect::Internal(_) => 1011,
        Disconnect::PingTimeout | Disconnect::HeartbeatTimeout => 1001,
        Disconnect::Replaced | Disconnect::RoomClosed => 1000,
        Disconnect::DocumentTooLarge(_) => 1009,
        Disconnect::IdentifyTimeout | Disconnect::NameTaken(_) | Disconnect::TokenExpired => 1008,
    };
    Frame::close(&Close::new(code, why.to_string()))
}
