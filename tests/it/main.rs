//! The integration tests: one binary (it links once), a module per
//! area. Every test starts its own server on port 0 (or the built
//! binary, for what only a process shows) and talks to it over real
//! sockets; `support` has the shared clients and helpers.

// The casts: test sizes and values are small and fixed.
#![allow(clippy::cast_possible_truncation)]

mod support;

mod access;
mod attacks;
mod bench_smoke;
mod blazing;
mod channels;
#[cfg(feature = "redis")]
mod cluster;
mod common;
mod concierge;
mod config;
mod demo;
mod hostile;
mod http;
mod limits;
mod log;
mod operations;
mod originals;
mod revisions;
mod security;
mod soak_smoke;
mod startup;
mod status;
#[cfg(feature = "tls")]
mod tls;
mod transport;
mod world;
