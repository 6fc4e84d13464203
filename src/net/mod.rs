//! The network layer: sockets, HTTP, the WebSocket handshake, and the two
//! threads that serve each WebSocket.
//!
//! - [`http`] reads request heads under a deadline and writes responses,
//! - `admin` answers the operator's endpoints,
//! - [`emit`] reads a channels emit and writes its answer (what it means
//!   is the channels dialect's),
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
//! - [`stream`] is a client's bytes, plain or (feature `tls`) through
//!   [`tls`], whose opening comment says how two threads share a session,
//! - [`send_now`] holds the writes that never wait (the router's write-through),
//!   and [`spool`] the file in memory from which it sends a large frame to
//!   many sockets without copying it into each,
//! - [`stack`] gives back the stack pages a waiting reader does not need,
//! - `threads` starts a connection's two threads, each naming itself,
//! - the frames these write and the request heads they read are values in
//!   `crate::wire`, where the dialects build and read them too,
//! - [`capacity`] reads the machine limits that cap the connections.

pub(crate) mod admin;
pub mod capacity;
pub mod connection;
pub mod dispatch;
pub mod emit;
pub mod endpoints;
pub mod forwarded;
pub mod http;
pub mod origin;
pub mod outbox;
pub mod pages;
pub mod per_ip;
pub mod rate;
pub mod reader;
pub mod route;
pub mod send_now;
pub mod spool;
pub mod stack;
pub mod stream;
mod threads;
#[cfg(feature = "tls")]
pub mod tls;
pub mod upgrade;
pub mod writer;

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use crossbeam_channel::Sender;
use parking_lot::RwLock;

use crate::config::Config;
use crate::log;
use crate::metrics::Metrics;
use crate::router::Command;
use outbox::Opened;
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
    /// Where a new connection's outbox goes, to the router thread, before
    /// its `Command::Open` (see [`Opened`]).
    pub opened: Sender<Opened>,
    pub metrics: Arc<Metrics>,
    /// Open WebSockets by peer address, counted while
    /// `--max-connections-per-ip` caps them (a reload that turns the cap on
    /// counts the connections opened from then on).
    pub per_ip: Arc<PerIpLimit>,
    /// The next connection number.
    pub next_conn: AtomicU64,
    /// The certificate and key TLS connections are served with, when the
    /// server speaks TLS (`--tls-cert`).
    #[cfg(feature = "tls")]
    tls: Option<tls::Acceptor>,
}

impl Context {
    /// The state of a server that starts with `config`, whose connections
    /// send their commands on `router` and their outboxes on `opened`. Fails if
    /// `config` asks for TLS and its files cannot be served, or this build
    /// cannot serve TLS at all.
    pub fn new(
        config: Config,
        router: Sender<Command>,
        opened: Sender<Opened>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Context> {
        #[cfg(feature = "tls")]
        let tls = match config.tls_files() {
            Some((cert, key)) => Some(tls::Acceptor::load(cert, key).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot serve TLS: {e}"),
                )
            })?),
            None => None,
        };
        #[cfg(not(feature = "tls"))]
        if config.tls_files().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this build has no TLS support (build it with `--features tls`)",
            ));
        }
        Ok(Context {
            config: RwLock::new(Arc::new(config)),
            router,
            opened,
            metrics,
            per_ip: PerIpLimit::new(),
            next_conn: AtomicU64::new(1),
            #[cfg(feature = "tls")]
            tls,
        })
    }

    /// The TLS acceptor, if the server speaks TLS.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&tls::Acceptor> {
        self.tls.as_ref()
    }

    /// Whether the server speaks TLS on its port.
    #[cfg_attr(not(feature = "tls"), allow(clippy::unused_self))]
    pub fn speaks_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// Applies a reload's `--tls-cert` and `--tls-key` (SIGHUP): the files
    /// are read again, and new connections use them; a pair that does not
    /// load is refused and logged, and the old one stays. Turning TLS on
    /// or off needs a restart (the port would change what it speaks under
    /// its clients): `new` then gets the old files back.
    pub fn reload_tls(&self, new: &mut Config) {
        let old = self.config();
        let (kept_cert, kept_key) = (old.tls_cert.clone(), old.tls_key.clone());
        #[cfg(feature = "tls")]
        if let (Some(acceptor), Some((cert, key))) = (&self.tls, new.tls_files()) {
            match acceptor.reload(cert, key) {
                Ok(()) => log::info!("reload: TLS certificate read from {}", cert.display()),
                Err(e) => log::error!("reload: {e}; the old certificate and key stay"),
            }
            return;
        }
        if new.tls_files().is_some() != old.tls_files().is_some() {
            log::warn!("reload: tls-cert and tls-key turn TLS on or off only with a restart; keeping the old values");
        }
        new.tls_cert = kept_cert;
        new.tls_key = kept_key;
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

/// Two connected loopback sockets, for tests: ours (the server's side)
/// and theirs (the client's).
#[cfg(test)]
pub(crate) fn loopback_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let theirs = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    (ours, theirs)
}
