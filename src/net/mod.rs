//! The network layer: sockets, HTTP, the WebSocket handshake, and the two
//! threads that serve each WebSocket.
//!
//! - [`http`] reads request heads under a deadline and writes responses,
//! - `admin` answers the operator's endpoints,
//! - [`route`] picks the endpoint,
//! - [`pages`] serves the embedded status and demo pages and their assets,
//! - [`upgrade`] answers the WebSocket handshake,
//! - [`connection`] is one socket's life: the HTTP exchange
//!   ([`dispatch`]), then for a WebSocket its [`reader`] and [`writer`]
//!   threads,
//! - [`endpoints`] is the one list of endpoints (`GET /`, the banner, `--help`),
//! - [`per_ip`] counts each peer address's connections against its cap,
//! - [`rate`] is the token bucket behind the message rate limit,
//! - [`outbox`] is the bounded queue between the router and a writer,
//! - [`send_now`] is the one write that never waits (the router's write-through),
//! - [`frame`] encodes outgoing frames once, for every recipient,
//! - [`capacity`] reads the machine limits that cap the connections.

pub(crate) mod admin;
pub mod capacity;
pub mod connection;
pub mod dispatch;
pub mod endpoints;
pub mod forwarded;
pub mod frame;
pub mod http;
pub mod origin;
pub mod outbox;
pub mod pages;
pub mod per_ip;
pub mod rate;
pub mod reader;
pub mod route;
pub mod send_now;
pub mod upgrade;
pub mod writer;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::RwLock;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::router::Command;
use per_ip::PerIpLimit;

/// What every connection thread shares: the server's context (named for
/// what it is, not for how it is held; `Shared` also meant the cluster's
/// records).
pub(crate) struct Context {
    /// The settings, replaced whole by a reload; a connection reads them
    /// once, as it starts, and keeps that copy.
    config: RwLock<Arc<Config>>,
    /// The router's command channel, shared by every connection thread
    /// through this `Arc` (the saver and RPC workers hold clones). The
    /// router thread stops once every sender is dropped, which with the
    /// accept thread holding one means: never, while the server accepts.
    pub router: Sender<Command>,
    pub metrics: Arc<Metrics>,
    /// Open WebSockets by peer address, counted while
    /// `--max-connections-per-ip` caps them (a reload that turns the cap on
    /// counts the connections opened from then on).
    pub per_ip: Arc<PerIpLimit>,
    /// The next connection number.
    pub next_conn: AtomicU64,
}

impl Context {
    /// The state of a server that starts with `config`.
    pub fn new(config: Config, router: Sender<Command>, metrics: Arc<Metrics>) -> Context {
        Context {
            config: RwLock::new(Arc::new(config)),
            router,
            metrics,
            per_ip: PerIpLimit::new(),
            next_conn: AtomicU64::new(1),
        }
    }

    /// The current settings.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// Sends the router the command `ask` makes around a reply channel and
    /// waits for the answer: `None` if the router did not take the command,
    /// or did not answer, within `patience` each.
    pub fn ask_router<T>(
        &self,
        ask: impl FnOnce(Sender<T>) -> Command,
        patience: std::time::Duration,
    ) -> Option<T> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.router.send_timeout(ask(reply), patience).ok()?;
        answer.recv_timeout(patience).ok()
    }

    /// Replaces the settings (a reload).
    pub fn set_config(&self, config: Config) {
        *self.config.write() = Arc::new(config);
    }
}

#[cfg(test)]
mod crash_tests;
