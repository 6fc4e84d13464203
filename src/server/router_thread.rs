//! The router thread: the I/O around the pure [`Router`].
//!
//! It receives [`Command`]s from every connection's reader, asks the router
//! what they cause, renders each resulting event once per dialect among its
//! recipients and pushes the shared frame onto their outboxes. Pushes never
//! block: a client whose outbox is full is disconnected as too slow, and
//! the router forgets it at once.
//!
//! The router knows connections only by number; which outbox a number's
//! frames go to is kept here, from the connection's [`Opened`] (sent just
//! before its `Command::Open`) to its `Command::Closed`.

use std::collections::{HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::dialect::{self, Dialect, Rendered};
use crate::log;
use crate::metrics::Metrics;
use crate::net::outbox::{Opened, Outbox, PushError};
use crate::net::spool::{self, Spool};
use crate::router::cluster::LinkQueue;
use crate::router::{Command, ConnId, Delivery, Disconnect, Event, Router};
use crate::systemd::Notifier;
use crate::wire::frame::{Close, Frame};

/// Where a connection's frames go.
struct Peer {
    dialect: Dialect,
    /// Shared with the connection's reader and writer; the router thread
    /// holds it from `Opened` to `Closed` and only ever `try_push`es.
    outbox: Arc<Outbox>,
}

/// systemd's watchdog, kept by the router's loop: `WATCHDOG=1` goes out
/// only while the loop turns, so a router stuck on one command stops the
/// pings and systemd restarts the service.
#[derive(Debug)]
pub struct Watchdog {
    notifier: Notifier,
    interval: Duration,
    next: Instant,
}

impl Watchdog {
    /// Pings through `notifier` every `interval` (half of `WATCHDOG_USEC`).
    pub fn new(notifier: Notifier, interval: Duration) -> Watchdog {
        Watchdog {
            notifier,
            interval,
            next: Instant::now(),
        }
    }

    /// Pings if one is due.
    fn keep(&mut self, now: Instant) {
        if now >= self.next {
            self.notifier.notify("WATCHDOG=1");
            self.next = now + self.interval;
        }
    }
}

/// Commands handled, at most, before the writers they fed are woken.
const BATCH: usize = 16;

/// What the router thread reads and writes besides the router.
#[derive(Debug)]
pub struct Queues {
    /// Every connection's commands (and the saver's, the workers', the
    /// Redis link's, the operator's).
    pub commands: Receiver<Command>,
    /// New connections' outboxes, each sent before its `Command::Open`.
    pub opened: Receiver<Opened>,
    /// In a cluster, where what the other nodes must hear goes (the Redis
    /// link's writer thread, which ends when this thread drops it).
    pub link: Option<LinkQueue>,
}

/// Starts the router thread. It runs until every sender of `commands` is
/// dropped, which happens only when the server itself is dropped.
pub fn spawn(
    router: Router,
    queues: Queues,
    metrics: Arc<Metrics>,
    watchdog: Option<Watchdog>,
) -> std::io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("router".into())
        .spawn(move || run(router, &queues, &metrics, watchdog))
}

fn run(mut router: Router, queues: &Queues, metrics: &Metrics, mut watchdog: Option<Watchdog>) {
    let Queues {
        commands,
        opened,
        link,
    } = queues;
    let mut peers: HashMap<ConnId, Peer> = HashMap::new();
    // Outboxes pushed to since the writers were last woken.
    let mut wakes: Vec<Arc<Outbox>> = Vec::new();
    // This turn's large shared frames, sent from there by write-through.
    let mut spool = Spool::new();
    loop {
        if let Some(watchdog) = &mut watchdog {
            watchdog.keep(Instant::now());
        }
        let deadline = match (router.next_deadline(), &watchdog) {
            (Some(timer), Some(watchdog)) => Some(timer.min(watchdog.next)),
            (timer, watchdog) => timer.or(watchdog.as_ref().map(|w| w.next)),
        };
        let received = match deadline {
            Some(deadline) => commands.recv_deadline(deadline),
            None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let command = match received {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Whatever else is already waiting is handled before the writers
        // are woken, so that under load each writer wakes once for the
        // frames of several commands rather than once per frame.
        let mut turn = Turn {
            peers: &mut peers,
            opened,
            metrics,
            wakes: &mut wakes,
            spool: &mut spool,
        };
        guarded_step(&mut router, &mut turn, command);
        for next in commands.try_iter().take(BATCH - 1) {
            guarded_step(&mut router, &mut turn, Some(next));
        }
        for outbox in wakes.drain(..) {
            outbox.flush_or_wake(&spool);
        }
        spool.clear();
        if let Some(link) = link {
            for record in router.take_outgoing() {
                // Never wait on Redis: a full queue loses the record.
                if !link.try_send(record) {
                    metrics.cluster.dropped.increment();
                }
            }
        }
    }
}

/// What one turn of the loop works with besides the router.
struct Turn<'a> {
    /// Where each connection's frames go.
    peers: &'a mut HashMap<ConnId, Peer>,
    /// New connections' outboxes, taken before each step.
    opened: &'a Receiver<Opened>,
    metrics: &'a Metrics,
    /// Outboxes pushed to since the writers were last woken.
    wakes: &'a mut Vec<Arc<Outbox>>,
    /// Where large frames shared by many recipients are copied once.
    spool: &'a mut Spool,
}

/// One step, guarded: the router is shared by every client, so a bug in
/// one rule must not stop the hub. The command that hit it is lost and
/// logged; the rest of the state is left as the rule left it.
fn guarded_step(router: &mut Router, turn: &mut Turn<'_>, command: Option<Command>) {
    let step = panic::catch_unwind(AssertUnwindSafe(|| step(router, turn, command)));
    if step.is_err() {
        turn.metrics.router_panics.increment();
        log::error!("the router failed on a command (a bug); it goes on without it");
    }
}

/// One turn of the loop: due timers, then the command (if any), then
/// delivery of everything they caused.
fn step(router: &mut Router, turn: &mut Turn<'_>, command: Option<Command>) {
    let now = Instant::now();
    // A connection's outbox was sent before its `Open`, so it is here by
    // the time the router handles that `Open` and addresses it.
    for Opened {
        conn,
        dialect,
        outbox,
    } in turn.opened.try_iter()
    {
        turn.peers.insert(conn, Peer { dialect, outbox });
    }
    // Deadlines first, also when commands keep arriving (a busy channel
    // never times out), so that a late IDENTIFY finds its connection
    // already closed.
    let mut deliveries = router.expire(now);
    let handled = command.is_some();
    if let Some(command) = command {
        if let Command::Closed { conn } = &command {
            turn.peers.remove(conn);
        }
        deliveries.extend(router.handle(command, now));
    }
    let metrics = turn.metrics;
    deliver(router, turn, deliveries);
    if handled {
        metrics.command_time.observe(now.elapsed());
    }
    metrics.topics.set(router.topic_count() as u64);
    metrics.documents.set(router.document_count() as u64);
}

fn deliver(router: &mut Router, turn: &mut Turn<'_>, deliveries: Vec<Delivery>) {
    let Turn {
        peers,
        metrics,
        wakes,
        spool,
        ..
    } = turn;
    let mut queue = VecDeque::from(deliveries);
    let mut too_slow = Vec::new();
    while let Some(delivery) = queue.pop_front() {
        // One rendering per dialect, shared by all recipients speaking it;
        // dialects that name the recipient in every frame add that per
        // recipient, in a few bytes of its own.
        let mut rendered: [Option<Option<Rendered>>; Dialect::ALL.len()] = Default::default();
        let mut pushed = [0; Dialect::ALL.len()];
        for &conn in &delivery.to {
            let Some(peer) = peers.get(&conn) else {
                continue; // its Closed is on the way; nothing to deliver
            };
            let d = peer.dialect.index();
            let frame = rendered[d]
                .get_or_insert_with(|| dialect::render(peer.dialect, &delivery.event))
                .as_ref()
                .and_then(|rendered| rendered.frame_for(router.addressee(conn)));
            if let Event::Disconnect(why) = &delivery.event {
                say_goodbye(router, conn, peer, why, frame);
                continue;
            }
            let Some(frame) = frame else { continue };
            let bytes = frame.len() as u64;
            match peer.outbox.try_push_quietly(frame) {
                Ok(needs_wake) => {
                    if needs_wake {
                        wakes.push(peer.outbox.clone());
                    }
                    metrics.messages_sent.of(peer.dialect).increment();
                    metrics.bytes_sent.of(peer.dialect).add(bytes);
                    pushed[d] += 1;
                    if pushed[d] == spool::MIN_RECIPIENTS {
                        spool_shared(spool, &rendered[d], metrics);
                    }
                }
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

/// Copies a dialect's rendering into the spool once it has enough
/// recipients to be worth it (net/spool.rs). The frames already pushed
/// share its bytes, so their outboxes find them there too.
fn spool_shared(spool: &mut Spool, rendered: &Option<Option<Rendered>>, metrics: &Metrics) {
    if let Some(Some(Rendered::Shared(frame))) = rendered {
        if spool.keep(frame, spool::MIN_RECIPIENTS) {
            metrics.spooled_frames.increment();
        }
    }
}

/// Ends a connection the router has disconnected: its dialect's last words
/// if it has any, then the close frame. A client too slow to read gets only
/// the close frame, in place of everything still queued.
fn say_goodbye(router: &Router, conn: ConnId, peer: &Peer, why: &Disconnect, close: Option<Frame>) {
    log::info!("conn={} dialect={}: closing: {why}", conn.0, peer.dialect);
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
        Disconnect::PingTimeout | Disconnect::HeartbeatTimeout | Disconnect::ShuttingDown => 1001,
        Disconnect::Replaced | Disconnect::RoomClosed => 1000,
        Disconnect::DocumentTooLarge(_) => 1009,
        Disconnect::IdentifyTimeout
        | Disconnect::NameTaken(_)
        | Disconnect::TokenExpired
        | Disconnect::NotGranted(_) => 1008,
    };
    Frame::close(&Close::new(code, why.to_string()))
}
