//! Running under systemd without libsystemd: the `sd_notify` protocol
//! (`READY=1`, `STOPPING=1`, `RELOADING=1`, `WATCHDOG=1` as datagrams to
//! `$NOTIFY_SOCKET`) and socket activation (`$LISTEN_PID`/`$LISTEN_FDS`,
//! the listener at file descriptor 3). Both are tiny, documented protocols
//! (systemd's `sd_notify(3)` and `sd_listen_fds(3)`), so a few lines of std
//! do what a C library would.

use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The first file descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

/// Where service-manager notifications go, if the service manager asked
/// for them (`Type=notify` sets `$NOTIFY_SOCKET`).
#[derive(Debug)]
pub struct Notifier {
    /// An unbound datagram socket, owned here and closed on drop.
    socket: UnixDatagram,
    /// `$NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace.
    address: String,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for, or `None` when not run by
    /// a service manager that wants notifications.
    pub fn from_env() -> Option<Notifier> {
        let address = std::env::var("NOTIFY_SOCKET").ok()?;
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, address })
    }

    /// Sends one state line (`READY=1`, …). A lost notification is not
    /// worth stopping a server for: failures are only logged.
    pub fn notify(&self, state: &str) {
        if let Err(error) = self.send(state.as_bytes()) {
            crate::log::warn!("cannot notify the service manager ({state}): {error}");
        }
    }

    fn send(&self, message: &[u8]) -> io::Result<usize> {
        match self.address.strip_prefix('@') {
            Some(name) => send_abstract(&self.socket, name, message),
            None => self.socket.send_to(message, &self.address),
        }
    }

    /// A second handle on the same socket, for the router's watchdog.
    pub fn try_clone(&self) -> io::Result<Notifier> {
        Ok(Notifier {
            socket: self.socket.try_clone()?,
            address: self.address.clone(),
        })
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &str, message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &address)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &str, _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket addresses exist only on Linux",
    ))
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as systemd
/// recommends, when the watchdog is on and meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    if !meant_for_this_process("WATCHDOG_PID") {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// The listening socket systemd passed (socket activation), if it passed
/// one to this process. More than one socket is refused rather than
/// silently ignored: switchboard serves one port.
pub fn activated_listener() -> io::Result<Option<TcpListener>> {
    if !meant_for_this_process("LISTEN_PID") {
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok());
    match count {
        None | Some(0) => Ok(None),
        Some(1) => adopt_listener().map(Some),
        Some(n) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("systemd passed {n} sockets (LISTEN_FDS); switchboard serves exactly one"),
        )),
    }
}

#[allow(unsafe_code)]
fn adopt_listener() -> io::Result<TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: `LISTEN_PID` names this process and `LISTEN_FDS` is 1, so by
    // the sd_listen_fds(3) protocol descriptor 3 is open, was passed to us
    // alone, and nothing else in this process owns it. This is the only
    // place that adopts it, and it is called once, at start.
    let listener = unsafe { TcpListener::from_raw_fd(LISTEN_FDS_START) };
    // A descriptor that is not a listening TCP socket fails here, clearly,
    // rather than at the first accept.
    listener.local_addr().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("descriptor 3 from systemd is not a TCP listener: {error}"),
        )
    })?;
    Ok(listener)
}

/// Whether the variable `name` (`LISTEN_PID`, `WATCHDOG_PID`) names this
/// process. `WATCHDOG_PID` may be absent, which means "you".
fn meant_for_this_process(name: &str) -> bool {
    match std::env::var(name) {
        Ok(pid) => pid.parse::<u32>().ok() == Some(std::process::id()),
        Err(_) => name == "WATCHDOG_PID",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_arrive_as_datagrams_at_the_socket_path() {
        let dir = std::env::temp_dir().join(format!("sb-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            address: path.to_string_lossy().into_owned(),
        };
        notifier.notify("READY=1");
        notifier.try_clone().unwrap().notify("WATCHDOG=1");
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_addresses_start_with_an_at_sign() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("sb-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let receiver = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            address: format!("@{name}"),
        };
        notifier.notify("STOPPING=1");
        let mut buf = [0; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
