//! The accept loop: one thread blocked in `accept`, handing each socket to
//! a connection thread of its own, until the server stops.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::log;
use crate::net::{connection, Context};

/// How long the stopping server tries to reach its own listener.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts the accept thread. It owns the listener, which closes when the
/// thread ends, after [`stop`].
pub fn spawn(
    listener: TcpListener,
    shared: Arc<Context>,
    stopping: Arc<AtomicBool>,
) -> io::Result<()> {
    thread::Builder::new()
        .name("accept".into())
        .spawn(move || accept_until_stopped(&listener, &shared, &stopping))
        .map(drop)
}

fn accept_until_stopped(listener: &TcpListener, shared: &Arc<Context>, stopping: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return; // a socket accepted now is dropped: the server is leaving
        }
        let result = accepted.and_then(|(stream, _)| connection::spawn(stream, shared.clone()));
        if let Err(error) = result {
            // Out of file descriptors or threads: pause instead of
            // spinning on a listener that keeps failing.
            log::error!("cannot accept a connection: {error}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Ends the accept loop: raises the flag, then wakes the thread blocked in
/// `accept` by connecting to the listener (std has no other portable way
/// to interrupt a blocking accept). If that connection fails, the loop
/// still ends at the next client's arrival, and the process exits anyway.
pub fn stop(stopping: &AtomicBool, address: SocketAddr) {
    stopping.store(true, Ordering::SeqCst);
    let _ = TcpStream::connect_timeout(&reachable(address), WAKE_TIMEOUT);
}

/// The address a local client uses for a listener bound to `address`:
/// the wildcard addresses are reached through loopback.
fn reachable(address: SocketAddr) -> SocketAddr {
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, address.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listeners_are_woken_through_loopback() {
        let any4: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        let own: SocketAddr = "192.0.2.7:80".parse().unwrap();
        assert_eq!(reachable(any4).to_string(), "127.0.0.1:8080");
        assert_eq!(reachable(any6).to_string(), "[::1]:8080");
        assert_eq!(reachable(own), own);
    }
}
