//! Writes that never wait: what the router thread uses to hand frames
//! straight to the kernel (see [`super::outbox`], "write-through").
//!
//! The socket is in blocking mode for its reader and writer threads
//! (`O_NONBLOCK` is shared by every descriptor of one socket, so leaving it
//! set would make their reads and writes fail when they should wait).
//! `MSG_DONTWAIT` makes one `sendmsg` non-blocking instead, and
//! `MSG_NOSIGNAL` turns a peer that has gone into an `EPIPE` error rather
//! than a signal.
//!
//! `sendfile` (the router's [`super::spool`]) has neither flag. For that
//! one call the socket is made non-blocking, and blocking again before the
//! router lets go of the write side. The writer thread cannot meet that
//! moment (the write side is the router's), but the reader can: a read
//! that returns at once with nothing is read again (`net/reader.rs`). A
//! `sendfile` to a gone peer raises `SIGPIPE`, as the writer's `writev`
//! does: Rust programs ignore it from the start (an embedder that
//! restores it must block it in these threads).

use std::fs::File;
use std::io::{self, IoSlice};
use std::net::TcpStream;

/// The most slices one system call is given: well under the kernel's
/// `IOV_MAX` (1024), and few enough to sit on the stack.
pub const MAX_SLICES: usize = 64;

/// Takes up to [`MAX_SLICES`] slices from `slices` into `into`, without
/// allocating; returns how many. Both the router's write-through and the
/// writer thread gather their system calls here.
pub fn gather<'a>(
    slices: &mut impl Iterator<Item = &'a [u8]>,
    into: &mut [IoSlice<'a>; MAX_SLICES],
) -> usize {
    let mut count = 0;
    for (slot, slice) in into.iter_mut().zip(slices) {
        *slot = IoSlice::new(slice);
        count += 1;
    }
    count
}

/// Sends as much of `slices` (in order) as the socket's send buffer takes
/// now, without waiting. Returns how many bytes went; `WouldBlock` when
/// none could.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn send_now(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix (std
    // guarantees it), the slices outlive the call, and the message header
    // is zeroed but for its iovec fields, as sendmsg(2) expects.
    let sent = unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = slices.as_ptr() as *mut libc::iovec;
        header.msg_iovlen = slices.len() as _;
        libc::sendmsg(
            socket.as_raw_fd(),
            &header,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    match sent {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n as usize),
    }
}

/// Sends as much of `file`'s bytes `at..at + len` as the socket's send
/// buffer takes now, without waiting and without copying them (the
/// buffer refers to the file's pages). Returns how many bytes went;
/// `WouldBlock` when none could.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn send_file_now(socket: &TcpStream, file: &File, at: u64, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut offset = libc::off_t::try_from(at).map_err(|_| io::ErrorKind::InvalidInput)?;
    socket.set_nonblocking(true)?;
    // SAFETY: two open descriptors and an offset that outlive the call.
    let sent = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut offset, len) };
    let sent = match sent {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n as usize),
    };
    // FIONBIO on a socket we hold open cannot fail; were it to, the
    // writer would meet `WouldBlock` at once, again and again, until its
    // stall timeout.
    let _ = socket.set_nonblocking(false);
    sent
}

/// Elsewhere there is no spool: nothing is ever sent from a file.
#[cfg(not(target_os = "linux"))]
pub fn send_file_now(
    _socket: &TcpStream,
    _file: &File,
    _at: u64,
    _len: usize,
) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

/// Elsewhere there is no write-through: every frame goes to the writer.
#[cfg(not(target_os = "linux"))]
pub fn send_now(_socket: &TcpStream, _slices: &[IoSlice<'_>]) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn sends_what_fits_and_never_waits() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server_side, _) = listener.accept().unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut total = 0;
        // Nobody reads: the buffers fill, and then a send takes nothing
        // rather than waiting.
        loop {
            match send_now(&client, &[IoSlice::new(b"ab"), IoSlice::new(&chunk)]) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(total < 1 << 30, "the buffers never filled");
        }
        assert!(total > 0);
        let mut first = [0u8; 2];
        server_side.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"ab");
    }
}
