//! The server: a listener, the router thread, and a thread per socket;
//! and the life of the whole: start, reload, graceful shutdown.
//!
//! - `accept.rs`: the accept loop, on a thread of its own;
//! - [`router_thread`]: the loop around the router, and delivery of what it
//!   says to the connections. It is here, above `net`, `dialect` and
//!   `router`, because it is the one place that needs all three (events
//!   rendered by dialect, pushed onto net's outboxes); the router itself
//!   imports neither;
//! - `reload.rs`: applying new settings to a running server.

mod accept;
pub mod reload;
pub mod router_thread;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::Config;
use crate::demo;
use crate::log;
use crate::methods::{Caller, Methods, Pool, RpcError};
use crate::metrics::Metrics;
use crate::net::endpoints::ENDPOINTS;
use crate::net::{capacity, Context};
use crate::router::{self, Command, Router, Settings};
use crate::store::Store;
use crate::systemd::{self, Notifier};
use router_thread::Watchdog;

/// Commands that may wait for the router before readers block. Readers
/// blocking on a busy router is the back-pressure that keeps it from
/// drowning; the channel preallocates its slots once, for the whole server.
const COMMAND_QUEUE: usize = 4096;
/// How long a shutdown waits for clients to answer the going-away close:
/// with the saving, the process ends within 2 s of SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);
/// How long a shutdown waits for documents to be written. Longer than the
/// grace: unsaved edits matter more than a prompt exit.
const SAVE_PATIENCE: Duration = Duration::from_secs(10);

/// A switchboard hub bound to a listening socket, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Config,
    methods: Methods,
    /// Requests from [`Handle`]s: both ends live here until `run` takes
    /// them, so handles can be made before the server runs.
    control: (Sender<Control>, Receiver<Control>),
    notifier: Option<Notifier>,
}

impl Server {
    /// Binds `config.listen`.
    pub fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(&config.listen).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen on {} (--listen): {e}", config.listen),
            )
        })?;
        Ok(Server::from_listener(listener, config))
    }

    /// Serves on a socket that is already bound and listening: a test's
    /// port 0, an embedder's own socket, or systemd's socket activation.
    /// `config.listen` is ignored.
    pub fn from_listener(listener: TcpListener, config: Config) -> Server {
        Server {
            listener,
            config,
            methods: Methods::default(),
            control: crossbeam_channel::unbounded(),
            notifier: None,
        }
    }

    /// Adds an RPC method that common (`REQUEST`/`DISPATCH` with `w` =
    /// `name`) and world (`[name, id, payload]`) clients can call. Built-in
    /// names (`hub.*`, world's `room.*` and `user.update`) take precedence.
    /// Methods run on `--rpc-workers` threads, never on the router's, so a
    /// slow one delays only its own answer.
    #[must_use]
    pub fn method<F>(mut self, name: &str, method: F) -> Server
    where
        F: Fn(&Caller, &serde_json::Value) -> Result<serde_json::Value, RpcError>
            + Send
            + Sync
            + 'static,
    {
        self.methods.insert(name, Arc::new(method));
        self
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The endpoints, as URLs, for printing at start.
    pub fn endpoints(&self) -> io::Result<Vec<String>> {
        let addr = self.local_addr()?;
        let width = ENDPOINTS
            .iter()
            .map(|e| e.url(addr).len())
            .max()
            .unwrap_or(0);
        Ok(ENDPOINTS
            .iter()
            .map(|endpoint| {
                let what = match endpoint.path {
                    "/ws/world/<world>" => format!("world: {}", self.config.worlds.join(", ")),
                    "/ws/blazing" => format!(
                        "{}; documents in {}",
                        endpoint.what,
                        self.config.data_dir.display()
                    ),
                    _ => endpoint.what.to_string(),
                };
                format!("{:<width$}  {what}", endpoint.url(addr))
            })
            .collect())
    }

    /// A handle that stops or reconfigures this server once it runs
    /// (signals, an embedder's own shutdown, tests).
    pub fn handle(&self) -> Handle {
        Handle {
            control: self.control.0.clone(),
        }
    }

    /// Sends service-manager notifications: `READY=1` once serving,
    /// `RELOADING=1` during a reload, `STOPPING=1` at shutdown, and
    /// `WATCHDOG=1` from the router's loop when systemd's watchdog is on.
    #[must_use]
    pub fn with_notifier(mut self, notifier: Notifier) -> Server {
        self.notifier = Some(notifier);
        self
    }

    /// Serves until [`Handle::shutdown`]: starts the router thread and an
    /// accept thread, then applies the handle's requests on the calling
    /// thread. A shutdown stops accepting, sends every client its
    /// dialect's going-away close, saves every document, waits briefly for
    /// clients to close, and returns. Fails only if the router, the saver
    /// or the accept thread cannot start.
    pub fn run(self) -> io::Result<()> {
        let Server {
            listener,
            mut config,
            methods,
            control: (_keep_open, requests),
            notifier,
        } = self;
        log::set_level(config.log_level);
        let demo_key = demo::process_key().map_err(io::Error::other)?;
        warn_open(&config);
        warn_demo(&mut config, &demo_key);
        capacity::fit(&mut config);
        let metrics = Arc::new(Metrics::default());
        let (commands, inbox) = crossbeam_channel::bounded(COMMAND_QUEUE);
        // Unbounded: one entry per connection, taken on every turn of the
        // router thread, so a connection never waits to send it.
        let (opened, outboxes) = crossbeam_channel::unbounded();
        // Before any thread starts: a certificate that does not load stops
        // the start with nothing left running.
        let shared = Arc::new(Context::new(
            config,
            commands.clone(),
            opened,
            metrics.clone(),
        )?);
        let config = shared.config();
        let store = Store::start(config.data_dir.clone(), commands.clone()).map_err(|e| {
            let dir = config.data_dir.display();
            io::Error::new(
                e.kind(),
                format!("cannot use the data directory {dir} (--data-dir): {e}"),
            )
        })?;
        let mut router = Router::new(settings(&config))
            .with_policy(config.policy())
            .with_store(store)
            .with_metrics(metrics.clone());
        if !methods.is_empty() {
            let pool = Pool::start(methods, config.rpc_workers, commands.clone())?;
            router = router.with_pool(pool);
        }
        let (router, link) = match &config.redis {
            Some(url) => join_cluster(router, url, commands.clone(), metrics.clone())?,
            None => (router, None),
        };
        let watchdog = match (&notifier, systemd::watchdog_interval()) {
            (Some(notifier), Some(interval)) => {
                Some(Watchdog::new(notifier.try_clone()?, interval))
            }
            _ => None,
        };
        let queues = router_thread::Queues {
            commands: inbox,
            opened: outboxes,
            link,
        };
        router_thread::spawn(router, queues, metrics.clone(), watchdog)?;
        let address = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        accept::spawn(listener, shared.clone(), stopping.clone())?;
        notify(&notifier, "READY=1");
        // `_keep_open` is a sender of our own: without it, dropping every
        // `Handle` would read as a shutdown request.
        loop {
            let request = match requests.recv_timeout(STATUS_EVERY) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) => {
                    notify(&notifier, &status(&shared.metrics));
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            match request {
                Control::Reload(mut new) => {
                    notify(&notifier, "RELOADING=1");
                    // The same process key: tokens signed with it stay good.
                    demo::fill_key(&mut new, &demo_key);
                    reload::apply(&shared, *new);
                    notify(&notifier, "READY=1");
                }
                Control::Shutdown => break,
            }
        }
        notify(&notifier, "STOPPING=1");
        accept::stop(&stopping, address);
        drain(&shared);
        Ok(())
    }
}

/// Stops or reconfigures a running [`Server`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    /// The server's request queue; the server's `run` holds the receiver
    /// and a sender of its own, so the queue outlives every handle.
    control: Sender<Control>,
}

impl Handle {
    /// Asks the server to shut down gracefully; `run` returns once done.
    pub fn shutdown(&self) {
        let _ = self.control.send(Control::Shutdown); // gone: already stopped
    }

    /// Replaces the settings that can change at run time with `config`'s
    /// (see [`reload`]); the others keep their values, with a warning.
    pub fn reload(&self, config: Config) {
        let _ = self.control.send(Control::Reload(Box::new(config)));
    }
}

/// What a [`Handle`] asks of a running server.
#[derive(Debug)]
enum Control {
    Reload(Box<Config>),
    Shutdown,
}

/// The router's timing rules, from the settings.
pub(crate) fn settings(config: &Config) -> Settings {
    Settings {
        identify_timeout: config.identify_timeout,
        ping_interval: config.ping_interval,
        ack_timeout: config.ack_timeout,
        heartbeat_interval: config.heartbeat_interval,
        world_user_connections: config.world_user_connections,
        max_document_bytes: config.max_message_bytes,
    }
}

/// Says loudly that `--demo` is on, and gives it the process's own key
/// when no `--jwt-key` is set.
fn warn_demo(config: &mut Config, demo_key: &Arc<str>) {
    if !config.demo {
        return;
    }
    log::warn!("--demo: /demo/token gives a token to anyone who asks; never use it in production");
    if demo::fill_key(config, demo_key) {
        log::warn!(
            "--demo without --jwt-key: tokens are signed with a random key made for this process"
        );
    }
}

/// Says, once, what anyone can do on a hub without credentials.
fn warn_open(config: &Config) {
    if !config.protected() {
        log::warn!(
            "open hub: no --secret, --jwt-key or --emit-token, so anyone who reaches {} may listen to, emit to and publish on every channel, group and room",
            config.listen
        );
    }
}

/// How often `systemctl status` is told how busy the server is.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// The `STATUS=` line `systemctl status` shows.
fn status(metrics: &Metrics) -> String {
    format!(
        "STATUS={} connections, {} topics",
        metrics.connections_open.get(),
        metrics.topics.get()
    )
}

fn notify(notifier: &Option<Notifier>, state: &str) {
    if let Some(notifier) = notifier {
        notifier.notify(state);
    }
}

/// Tells every client to go away and every document to be saved, then
/// gives the clients until [`SHUTDOWN_GRACE`] to close. Clients that are
/// slower are cut off by the process's exit (or, embedded, by their writer
/// threads, which stop waiting for a close reply after a grace period).
fn drain(shared: &Context) {
    let started = Instant::now();
    match shared.ask_router(
        |reply| Command::Control(router::Control::Shutdown { reply }),
        SHUTDOWN_GRACE,
    ) {
        Some(drain) => {
            log::info!(
                "shutting down: {} clients told to go away, {} documents to save",
                drain.clients,
                drain.documents
            );
            // The saver answers by dropping its sender once it has
            // written everything queued before the flush.
            if let Some(saved) = drain.saved {
                if let Err(RecvTimeoutError::Timeout) = saved.recv_timeout(SAVE_PATIENCE) {
                    log::warn!("shutting down: documents not yet saved after {SAVE_PATIENCE:?}");
                }
            }
        }
        None => log::error!("shutting down: the router did not answer; documents may be unsaved"),
    }
    while shared.metrics.connections_open.get() > 0 && started.elapsed() < SHUTDOWN_GRACE {
        // Shutdown only: a short, bounded wait for the count to reach zero.
        thread::sleep(Duration::from_millis(5));
    }
    log::info!(
        "stopped: {} connections still open after {} ms",
        shared.metrics.connections_open.get(),
        started.elapsed().as_millis()
    );
}

/// Where the router thread sends what the other nodes must hear.
type LinkQueue = Option<crate::router::cluster::LinkQueue>;

/// Makes this process a node of the cluster that shares the Redis at `url`.
#[cfg(feature = "redis")]
fn join_cluster(
    router: Router,
    url: &str,
    commands: Sender<crate::router::Command>,
    metrics: Arc<Metrics>,
) -> io::Result<(Router, LinkQueue)> {
    let node = crate::id::token("node_", 8).map_err(|e| io::Error::other(e.to_string()))?;
    let link = crate::redis_link::start(url, node.clone(), commands, metrics)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    Ok((router.with_cluster(node), Some(link.outgoing)))
}

/// Without the `redis` feature there is no cluster to join.
#[cfg(not(feature = "redis"))]
fn join_cluster(
    _router: Router,
    _url: &str,
    _commands: Sender<crate::router::Command>,
    _metrics: Arc<Metrics>,
) -> io::Result<(Router, LinkQueue)> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "--redis: this build has no Redis support; build with `--features redis`",
    ))
}
