//! switchboard: a small, synchronous WebSocket hub.
//!
//! One process speaks several real-time protocols ("dialects") over one
//! routing core, so that a message published by any client reaches every
//! subscriber in whatever dialect that subscriber speaks. There is no async
//! runtime: blocking sockets, plain threads and channels, so that every
//! step of a message can be read top to bottom.
//!
//! # Architecture
//!
//! ```text
//!             TcpListener (blocking accept loop, on its own thread)
//!                  │  per socket: HTTP request / WS handshake under a deadline
//!                  ▼
//!    ┌──────── connection ─────────┐
//!    │ reader thread  writer thread │   one of each per socket, one shared fd
//!    └─────┬──────────────▲────────┘
//!          │ Command      │ Frame (encoded once, Arc-shared, bounded Outbox)
//!          ▼              │
//!         router thread: owns ALL state (clients, names, topics, deadlines)
//! ```
//!
//! A message travels like this: the connection's **reader thread** reads a
//! WebSocket message and hands it to its dialect's [`dialect::Session`],
//! which decodes it into a [`router::Command`] and sends it on the router's
//! channel. The **router thread** applies the command to the
//! [`router::Router`] (plain data, no I/O), which answers with
//! [`router::Delivery`]s: an [`router::Event`] and its recipients. The
//! router thread ([`server::router_thread`]) renders each event once per
//! dialect into a [`wire::frame::Frame`] and pushes that shared frame onto
//! every recipient's [`net::outbox::Outbox`] without ever blocking. Where
//! the recipient's **writer thread** is idle, the router thread then hands
//! what it queued straight to the kernel, without waiting (a large frame
//! for many recipients from a file in memory, so the kernel does not copy
//! it for each); the writer wakes only for what the kernel did not take,
//! and writes everything queued in one system call.
//!
//! Imports run one way: `net` → `dialect` → `router`. The router knows
//! connections by number and protocols by name ([`router::Dialect`]);
//! only the router thread, in `server`, holds all three. What travels on
//! the wire (frames and close codes, request heads) is plain values in
//! [`wire`], below `net` and `dialect` both: the dialects build frames and
//! read request heads, `net` moves them, and neither needs the other for
//! that. `src/tests/layers.rs` checks the layering: the router names neither
//! `dialect` nor `net`, the dialects do not name `net`, and `wire` names
//! none of them.
//!
//! Who may read or write which topic is one rule, [`router::access`]:
//! each dialect turns what its client shows (a secret, a token, nothing)
//! into a [`router::Grant`], and every way into a topic, in any dialect or
//! over HTTP, asks the router's [`router::Policy`] with it.
//!
//! # Layout
//!
//! - [`server`]: binds or adopts the listener, starts the router and the
//!   accept thread (`server/accept.rs`); reload ([`server::reload`]) and
//!   graceful shutdown, on the thread that calls `run`.
//!   - [`server::router_thread`]: the loop around the router; rendering
//!     and delivery onto the outboxes (the one place that knows net,
//!     dialect and router); the systemd watchdog; handing cluster records
//!     to the Redis link.
//! - [`net`]: sockets and bytes.
//!   - [`net::http`]: reading request heads and bodies under a deadline;
//!     responses.
//!   - [`net::route`]: which endpoint a request is for.
//!   - [`net::endpoints`]: the one list of endpoints, printed everywhere.
//!   - [`net::pages`]: the embedded pages: status (`src/web/status.*`),
//!     and the demos (`src/web/editor.*`, `src/web/channels.*`).
//!   - [`net::upgrade`]: the WebSocket opening handshake.
//!   - [`net::connection`]: one socket's life, from accept to close.
//!   - [`net::dispatch`]: the HTTP request every socket starts with, and
//!     the checks before an upgrade.
//!   - [`net::reader`], [`net::writer`]: a WebSocket's two threads.
//!   - [`net::stream`]: a client's bytes, plain or through TLS.
//!   - `net/tls.rs` (feature `tls`): certificates, the handshake, and one
//!     TLS session shared by a connection's two threads.
//!   - [`net::outbox`]: the bounded queue between router and writer, and
//!     the router's write-through ([`net::send_now`]: a send that never
//!     waits; [`net::spool`]: this turn's large shared frames, sent to
//!     every socket without a copy each).
//!   - [`net::stack`]: a quiet reader gives back its deeper stack pages.
//!   - [`net::capacity`]: the machine limits that cap the connections.
//!   - [`net::per_ip`]: each peer address's connections, against its cap.
//!   - [`net::rate`]: each connection's message rate (a token bucket).
//!   - [`net::origin`]: which browser origins may talk to the hub.
//!   - [`net::forwarded`]: the client behind a trusted proxy
//!     (`X-Forwarded-For`).
//!   - `net/admin.rs`: the operator's endpoints.
//!   - [`net::emit`]: the channels emit endpoint's I/O (the body, the
//!     wait on the router, the response).
//! - [`wire`]: what travels on the wire, as values (no I/O): shared by
//!   `net` and `dialect`.
//!   - [`wire::frame`]: outgoing frames, encoded once, and close codes.
//!   - [`wire::request`]: a parsed request head
//!     ([`wire::request::ClientRequest`]), its query string, and why a
//!     body could not be read.
//! - [`router`]: the single owner of state, one namespace for all dialects.
//!   - [`router::access`]: the one access rule: grants, patterns, the
//!     operator's policy.
//!   - [`router::command`]: what connections ask.
//!   - `router/control.rs`: what the server, the operator and the saver
//!     ask ([`router::Control`]: probe, reload, shutdown, flush, …).
//!   - [`router::event`]: what connections are told.
//!   - [`router::Dialect`] (`router/dialect.rs`): which protocol a member
//!     speaks; `dialect` adds each protocol's closes to it.
//!   - `router/member.rs`: members join, stay alive (PINGs, heartbeats),
//!     change presence, leave.
//!   - `router/topic.rs`: topics (groups and channels) and their life.
//!   - `router/publish.rs`: messages, emits and their acknowledgements.
//!   - `router/calls.rs`: calls: built-in methods, and handing off the rest.
//!   - `router/rooms.rs`: worlds and their rooms: authenticating, entering,
//!     talking, profiles, reloads.
//!   - `router/documents.rs`: shared documents (the registry: joining,
//!     editing, leaving); `router/documents/saving.rs`: when they are
//!     saved and forgotten; `router/documents/streams.rs`: their Redis
//!     streams in a cluster; `router/documents/text.rs`: one text and its
//!     cursors;
//!     `router/documents/transform.rs`: late writes moved over earlier ones.
//!   - `router/timer.rs`: deadlines, in one ordered set.
//!   - `router/shutdown.rs`: every client's going-away, every document saved.
//!   - [`router::cluster`]: other nodes' members as shadows; what this
//!     node's members do, as records for the other nodes (`--redis`):
//!     the records in `mod.rs`; with feature `redis`, what this node
//!     tells the others in `outgoing.rs`, the claims of names in
//!     `claims.rs`, the other nodes' members in `shadows.rs`; without it,
//!     do-nothing hooks in `single.rs`.
//! - [`dialect`]: the protocols; [`dialect::credentials`] turns what a
//!   client shows into its grant.
//!   - [`dialect::concierge`]: the concierge protocol.
//!   - [`dialect::channels`]: the channels protocol, WebSocket and HTTP
//!     (who may listen is decided before the upgrade, in `admission.rs`;
//!     what an HTTP emit means and how it is answered, in `emit.rs`).
//!   - [`dialect::common`]: the common protocol (op-coded RPC).
//!   - [`dialect::world`]: the world protocol (JSON-array RPC).
//!   - [`dialect::blazing`]: the blazing protocol (a shared text document).
//! - `redis_link` (feature `redis`): the Redis link of a node in a cluster,
//!   three threads talking to the router over channels.
//!   - `redis_link/writer.rs`: publishes, claims names, appends document
//!     edits, keeps the heartbeat, watches the other nodes'.
//!   - `redis_link/bus.rs`: the other nodes' records, to the router.
//!   - `redis_link/documents.rs`: the documents' streams, to the router.
//!   - `redis_link/keys.rs`: the Redis keys and the scripts that change them.
//! - [`methods`]: the embedder's methods and the worker pool that runs
//!   them, off the router thread.
//! - [`jwt`]: HMAC-signed tokens (HS256/384/512), issuer and audience checks.
//! - [`demo`]: `/demo/token`, tokens for anyone (`--demo` only).
//! - [`store`]: saving shared documents to disk, atomically.
//! - [`signals`]: SIGTERM/SIGINT shut down, SIGHUP reloads (the binary's).
//! - [`systemd`]: readiness and watchdog notifications, socket activation.
//! - [`base64`]: the two base64 alphabets the protocols use.
//! - [`config`]: the settings and their defaults.
//! - [`cli`]: flags, `SWITCHBOARD_*` variables and the config file.
//! - [`flat_toml`]: reading the config file's flat TOML.
//! - [`metrics`]: counters for `/metrics`.
//! - [`id`]: random UUIDs.
//! - [`auth`]: constant-time secret comparison.
//! - [`mod@log`]: one-line logging to standard error, with levels.
//! - `src/tests/fuzz/` (tests only): property tests over every decoder.
//! - `src/main.rs`: the `switchboard` binary; `src/bin/switchboard-bench/`:
//!   the load tool (fan-out, idle, churn, and a baseline server of its own).
//!
//! # Embedding
//!
//! ```no_run
//! use std::net::TcpListener;
//! use switchboard::{Config, Server};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let server = Server::from_listener(listener, Config::default());
//! println!("listening on {}", server.local_addr()?);
//! std::thread::spawn(move || server.run());
//! # Ok::<(), std::io::Error>(())
//! ```

// The exceptions, each `#[allow(unsafe_code)]` with its proof, are calls
// std does not offer: adopting systemd's listening socket (systemd.rs),
// and in net/ the non-blocking and zero-copy sends, polling, stack
// trimming and thread naming.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod log;

pub mod auth;
pub mod base64;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dialect;
pub mod flat_toml;
pub mod id;
pub mod jwt;
pub mod methods;
pub mod metrics;
pub mod net;
#[cfg(feature = "redis")]
pub mod redis_link;
pub mod router;
pub mod server;
pub mod signals;
pub mod store;
pub mod systemd;
pub mod wire;

// Tests of the crate as a whole: the property tests over every decoder
// and the request parser (`cargo test fuzz`).
#[cfg(test)]
mod tests;

pub use config::Config;
pub use server::{Handle, Server};
