//! The writer thread of a WebSocket: the only thread that writes to the
//! socket once it is upgraded (see [`super::connection`], "Why exactly
//! one thread writes"). It takes whole, pre-encoded frames from the
//! outbox and writes each batch with as few system calls as it can.

use std::io::{self, IoSlice, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connection::{Places, CLOSE_GRACE};
use super::outbox::Outbox;
use super::send_now::{gather, MAX_SLICES};
use super::stream::Stream;
use crate::wire::frame::Frame;

/// Stack of the writer thread, which only moves bytes.
pub(super) const WRITER_STACK: usize = 64 * 1024;
/// How long a write may make no progress before the peer counts as gone.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a blocked write wakes to check whether it should give up.
pub(super) const WRITE_POLL: Duration = Duration::from_millis(250);
/// The writer thread: writes batches until the outbox is closed and empty,
/// then ends the connection.
pub(super) fn write_until_closed(stream: &Stream, outbox: &Outbox, places: Arc<Places>) {
    let mut result = Ok(());
    while let Some(batch) = outbox.next_batch() {
        result = write_frames(stream, batch.iter(), outbox);
        if result.is_err() {
            break;
        }
    }
    match result {
        // The close frame is out: give the client a moment to answer it.
        Ok(()) => drop(outbox.await_reader(CLOSE_GRACE)),
        // The peer cannot be written to: nothing more will be sent.
        Err(_) => outbox.shut(),
    }
    let _ = stream.shutdown(Shutdown::Both); // fails only if already shut
    drop(places);
}

/// Writes whole frames with as few system calls as possible. A write that
/// makes no progress for [`WRITE_STALL_TIMEOUT`] fails, and so does one
/// blocked on a client that the router has meanwhile dropped as too slow
/// (checked every [`WRITE_POLL`], the socket's send timeout).
fn write_frames<'a>(
    stream: &Stream,
    frames: impl Iterator<Item = &'a Frame>,
    outbox: &Outbox,
) -> io::Result<()> {
    #[cfg(feature = "tls")]
    if let Some(tls) = stream.session() {
        // Sealed whole, the session locked for that only; then written
        // like any other bytes (net/tls.rs, "One session, two threads").
        let plaintext: Vec<&[u8]> = frames.flat_map(Frame::slices).collect();
        let sealed = tls.seal(&plaintext)?;
        return write_slices(stream.tcp(), std::iter::once(&sealed[..]), outbox);
    }
    // A frame is one slice, or two when spliced.
    write_slices(stream.tcp(), frames.flat_map(Frame::slices), outbox)
}

/// Writes `slices` to the socket as they are, at most [`MAX_SLICES`] per call.
fn write_slices<'a>(
    mut tcp: &TcpStream,
    slices: impl Iterator<Item = &'a [u8]>,
    outbox: &Outbox,
) -> io::Result<()> {
    let mut slices = slices.peekable();
    let mut chunk = [IoSlice::new(&[]); MAX_SLICES];
    while slices.peek().is_some() {
        let count = gather(&mut slices, &mut chunk);
        let mut unsent = &mut chunk[..count];
        let mut progress = Instant::now();
        while !unsent.is_empty() {
            match tcp.write_vectored(unsent) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    IoSlice::advance_slices(&mut unsent, written);
                    progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if outbox.is_aborted() || progress.elapsed() >= WRITE_STALL_TIMEOUT {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
