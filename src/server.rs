//! The server: a listener, the router thread, and a thread per socket.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::config::Config;
use crate::log;
use crate::metrics::Metrics;
use crate::net::per_ip::PerIpLimit;
use crate::net::{capacity, connection, Shared};
use crate::router::{self, Router, Settings};
use crate::rpc::{Caller, Methods, Pool, RpcError};
use crate::store::Store;

/// Commands that may wait for the router before readers block. Readers
/// blocking on a busy router is the back-pressure that keeps it from
/// drowning; the channel preallocates its slots once, for the whole server.
const COMMAND_QUEUE: usize = 4096;

/// A switchboard hub bound to a listening socket, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Config,
    methods: Methods,
}

impl Server {
    /// Binds `config.listen`.
    pub fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind(&config.listen)?;
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
        }
    }

    /// Adds an RPC method that common (`REQUEST`/`DISPATCH` with `w` =
    /// `name`) and world (`[name, id, payload]`) clients can call. Built-in
    /// names (`hub.*`, world's `room.*` and `user.update`) take precedence.
    /// Methods run on `--rpc-workers` threads, never on the router's, so a
    /// slow one delays only its own answer.
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
        Ok(vec![
            format!(
                "ws://{addr}/ws/concierge  (concierge; or any path with subprotocol ert-concierge)"
            ),
            format!("ws://{addr}/<channel>/listen  (channels listener)"),
            format!("http://{addr}/<channel>/emit  (channels publish: GET or POST)"),
            format!("ws://{addr}/ws/common     (common)"),
            format!(
                "ws://{addr}/ws/world/<world>  (world; worlds: {})",
                self.config.worlds.join(", ")
            ),
            format!(
                "ws://{addr}/ws/blazing    (blazing; documents in {})",
                self.config.data_dir.display()
            ),
            format!("ws://{addr}/ws/echo       (echo)"),
            format!("http://{addr}/healthz     (liveness)"),
            format!("http://{addr}/metrics     (Prometheus metrics)"),
        ])
    }

    /// Serves forever: starts the router thread, then accepts connections
    /// on the calling thread. Returns only if the router cannot start.
    pub fn run(self) -> io::Result<()> {
        crate::log::set_quiet(self.config.quiet);
        for shortfall in capacity::shortfalls(self.config.max_connections) {
            log!(
                "warning: --max-connections is {}, but {shortfall}",
                self.config.max_connections
            );
        }
        let metrics = Arc::new(Metrics::default());
        let (commands, inbox) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let settings = Settings {
            identify_timeout: self.config.identify_timeout,
            ping_interval: self.config.ping_interval,
            ack_timeout: self.config.ack_timeout,
            heartbeat_interval: self.config.heartbeat_interval,
            world_user_connections: self.config.world_user_connections,
            max_document_bytes: self.config.max_message_bytes,
        };
        let store = Store::start(self.config.data_dir.clone(), commands.clone())?;
        let mut router = Router::new(settings).with_store(store);
        if !self.methods.is_empty() {
            let workers = self.config.rpc_workers;
            router = router.with_pool(Pool::start(self.methods, workers, commands.clone())?);
        }
        router::thread::spawn(router, inbox, metrics.clone())?;
        let shared = Arc::new(Shared {
            per_ip: self.config.max_connections_per_ip.map(PerIpLimit::new),
            config: Arc::new(self.config),
            router: commands,
            metrics,
            next_conn: AtomicU64::new(1),
        });
        loop {
            let accepted = self.listener.accept();
            let result = accepted.and_then(|(stream, _)| connection::spawn(stream, shared.clone()));
            if let Err(error) = result {
                // Out of file descriptors or threads: pause instead of
                // spinning on a listener that keeps failing.
                log!("cannot accept a connection: {error}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
