//! The subscribers of `fanout` and `baseline`, connected the way the chosen
//! receivers (`--receivers`) want them, and those receivers started.

use std::time::Instant;

use crate::client::{client_config, connect, join, ConnectError, Target, RECEIVER_READ_BUFFER};
use crate::epoll;
use crate::raw::RawConn;
use crate::receive::{spawn_receivers, Receivers};
use crate::{Res, Socket};

/// How deliveries are received (`--receivers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiverMode {
    /// One thread for all subscribers, epoll over non-blocking sockets.
    Epoll,
    /// A thread per subscriber, each reading through tungstenite.
    Threads,
}

/// Connected subscribers, not yet receiving.
pub enum Subscribers {
    Threads(Vec<Socket>),
    Epoll(Vec<RawConn>),
}

impl Subscribers {
    pub fn new(mode: ReceiverMode, capacity: usize) -> Subscribers {
        match mode {
            ReceiverMode::Threads => Subscribers::Threads(Vec::with_capacity(capacity)),
            ReceiverMode::Epoll => Subscribers::Epoll(Vec::with_capacity(capacity)),
        }
    }

    /// Connects one more subscriber; with `join = Some((name, group))` it
    /// also identifies and subscribes (the baseline's clients only
    /// upgrade).
    pub fn add(
        &mut self,
        target: &Target,
        join_as: Option<(&str, &str)>,
    ) -> Result<(), ConnectError> {
        match (self, join_as) {
            (Subscribers::Threads(sockets), Some((name, group))) => {
                sockets.push(join(target, name, group, RECEIVER_READ_BUFFER)?);
            }
            (Subscribers::Threads(sockets), None) => {
                sockets.push(connect(target, client_config(RECEIVER_READ_BUFFER))?);
            }
            (Subscribers::Epoll(conns), Some((name, group))) => {
                conns.push(RawConn::join(target, name, group)?);
            }
            (Subscribers::Epoll(conns), None) => conns.push(RawConn::connect(target)?),
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        match self {
            Subscribers::Threads(sockets) => sockets.len(),
            Subscribers::Epoll(conns) => conns.len(),
        }
    }

    /// Starts receiving: each subscriber until `expected` stamped messages,
    /// its connection's end, or `deadline`.
    pub fn start(self, expected: u64, deadline: Instant, clock: Instant) -> Res<Receivers> {
        Ok(match self {
            Subscribers::Threads(sockets) => {
                Receivers::Threads(spawn_receivers(sockets, expected, deadline, clock)?)
            }
            Subscribers::Epoll(conns) => {
                Receivers::Epoll(epoll::spawn(conns, expected, deadline, clock)?)
            }
        })
    }
}
