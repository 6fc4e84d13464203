//! The router's spool: a large frame copied once into a file in memory,
//! so that the kernel sends it to every socket without copying it again.
//!
//! Writing through ([`super::outbox`]), the router hands each recipient's
//! frames to the kernel with `sendmsg`, which copies them into the
//! socket's buffer: a concierge message to a group of 1,000 carries the
//! group in its `origin` (39.5 KB), so each message is 39.5 MB copied,
//! and that copy was a third of the router's time (measured with `perf`;
//! docs/performance.md). `sendfile` from a file in memory (`memfd_create`)
//! does not copy: the socket's buffer takes references to the file's
//! pages. So a frame big enough and shared by enough recipients is written
//! into the spool once per turn of the router's loop, and each recipient's
//! write-through sends it from there.
//!
//! **Why the bytes stay right.** A page the kernel still holds (queued in
//! a socket, or, on loopback, in the receiver's buffer) must never change.
//! The spool never writes to a page twice: at the end of its turn the
//! router [`clear`](Spool::clear)s it, which truncates the file to nothing.
//! Truncating from the start takes every page out of the file whole,
//! without touching what it holds; the kernel frees each page when the
//! last socket buffer lets go of it, and the next turn writes into new
//! pages. (Punching holes would not do: a page only partly in the hole is
//! zeroed in place.)
//!
//! **When there is no spool.** Without a memory file (not Linux,
//! `memfd_create` refused by a sandbox) or with huge pages for shared
//! memory (`/sys/kernel/mm/transparent_hugepage/shmem_enabled` on
//! `always`, `within_size` or `force`: a socket holding one page of a
//! frame would keep its whole 2 MiB page), and after a send from the
//! spool fails other than as a full or gone socket (a filter refusing
//! `sendfile`), every frame is sent from memory, as before; the log says
//! which, once.
//!
//! **Why an entry lasts one turn.** Frames are found by the address of
//! their shared bytes. An entry holds those bytes (an `Arc`), so while it
//! exists no other frame can have that address. What a turn leaves queued
//! for a writer thread is written from memory, as it always was.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use crate::log;
use crate::wire::frame::Frame;

/// The smallest frame worth spooling: below this, copying it into the
/// spool and the extra system call per frame cost about what they save.
pub const MIN_BYTES: usize = 16 * 1024;
/// The fewest recipients for which a frame is spooled: one copy into the
/// spool must save several into sockets.
pub const MIN_RECIPIENTS: usize = 4;
/// The most one turn spools; larger turns send the rest from memory. It
/// bounds the memory the spool holds besides what sockets still hold.
pub const MAX_BYTES: u64 = 8 << 20;

/// A file in memory holding this turn's large shared frames, back to back.
/// Owned by the router thread, which fills it while it renders, lends it
/// to each outbox's write-through, and clears it at the end of the turn.
#[derive(Debug)]
pub struct Spool {
    /// The memory file; `None` where there is none (see "When there is
    /// no spool"), and then nothing is spooled.
    file: Option<File>,
    /// A send from the spool failed in a way that will not pass (a
    /// filter refusing `sendfile`, say): nothing is spooled from then on.
    /// A `Cell` because the outboxes are lent the spool, not given it.
    refused: Cell<bool>,
    /// What this turn spooled, in order.
    kept: Vec<Kept>,
    /// Where the next frame goes: right after the last, so that a socket
    /// getting several spooled frames in a row gets them in one call.
    end: u64,
}

/// One spooled frame.
#[derive(Debug)]
struct Kept {
    /// The frame's bytes, held so that their address stays theirs.
    bytes: Arc<[u8]>,
    /// Where they start in the file.
    at: u64,
}

/// Consecutive bytes of the spool: some frames in a row, to send in one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Where they start in the file.
    pub at: u64,
    /// How many bytes.
    pub len: usize,
}

impl Spool {
    /// An empty spool, with its file where the system gives one (the
    /// log says why not, where not).
    pub fn new() -> Spool {
        let file = match huge_shared_pages() {
            true => {
                log::info!(
                    "large frames are copied into each socket: shared memory uses huge pages \
                     (/sys/kernel/mm/transparent_hugepage/shmem_enabled)"
                );
                None
            }
            false => memory_file()
                .map_err(|e| {
                    log::info!("large frames are copied into each socket: memfd_create: {e}");
                })
                .ok(),
        };
        Spool {
            file,
            ..Spool::disabled()
        }
    }

    /// A spool with a memory file whatever the host's huge pages, for
    /// tests.
    #[cfg(test)]
    pub(crate) fn in_memory() -> Spool {
        Spool::with_file(memory_file().expect("Linux has memfd_create"))
    }

    /// A spool over `file`, for tests that need one that fails.
    #[cfg(test)]
    pub(crate) fn with_file(file: File) -> Spool {
        Spool {
            file: Some(file),
            ..Spool::disabled()
        }
    }

    /// A spool that keeps nothing: every frame goes from memory.
    pub fn disabled() -> Spool {
        Spool {
            file: None,
            refused: Cell::new(false),
            kept: Vec::new(),
            end: 0,
        }
    }

    /// Copies `frame` in if it is worth it: large, the same bytes for
    /// every one of its `recipients`, and room left this turn. Returns
    /// whether it did; a frame the file refuses is sent from memory.
    pub fn keep(&mut self, frame: &Frame, recipients: usize) -> bool {
        let (Some(file), Some(bytes)) = (&self.file, frame.unspliced()) else {
            return false;
        };
        let worth_it = bytes.len() >= MIN_BYTES && recipients >= MIN_RECIPIENTS;
        let room = self.end + bytes.len() as u64 <= MAX_BYTES;
        if !worth_it || !room || self.refused.get() || self.find(frame).is_some() {
            return false;
        }
        if write_all_at(file, bytes, self.end).is_err() {
            return false;
        }
        self.kept.push(Kept {
            bytes: bytes.clone(),
            at: self.end,
        });
        self.end += bytes.len() as u64;
        true
    }

    /// Where `frame` starts in the spool, if this turn spooled it and
    /// sends from the spool have not been refused.
    pub fn find(&self, frame: &Frame) -> Option<u64> {
        if self.refused.get() {
            return None;
        }
        let bytes = frame.unspliced()?;
        self.kept
            .iter()
            .find(|kept| Arc::ptr_eq(&kept.bytes, bytes))
            .map(|kept| kept.at)
    }

    /// The spooled frames at the front of `frames` that lie back to back
    /// in the file, as one span; `None` if the first is not spooled.
    pub fn span<'a>(&self, frames: impl IntoIterator<Item = &'a Frame>) -> Option<Span> {
        let mut frames = frames.into_iter();
        let first = frames.next()?;
        let mut span = Span {
            at: self.find(first)?,
            len: first.len(),
        };
        for frame in frames {
            if self.find(frame) != Some(span.at + span.len as u64) {
                break;
            }
            span.len += frame.len();
        }
        Some(span)
    }

    /// Sends as much of `span` to `socket` as its buffer takes now,
    /// without copying and without waiting. Returns how many bytes went;
    /// `WouldBlock` when none could. A failure that is not the socket's
    /// (full, or its peer gone) turns the spool off: see
    /// [`is_refused`](Spool::is_refused).
    pub fn send(&self, socket: &TcpStream, span: Span) -> io::Result<usize> {
        let Some(file) = &self.file else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let sent = super::send_now::send_file_now(socket, file, span.at, span.len);
        if let Err(e) = &sent {
            if is_the_files(e) && !self.refused.replace(true) {
                log::warn!("large frames are copied into each socket from now on: sendfile: {e}");
            }
        }
        sent
    }

    /// Whether sends from the spool failed for good: what it holds must
    /// then go from memory.
    pub fn is_refused(&self) -> bool {
        self.refused.get()
    }

    /// Whether this spool spools: it has its file and has not been refused.
    pub fn is_on(&self) -> bool {
        self.file.is_some() && !self.refused.get()
    }

    /// Forgets this turn's frames and gives the file's pages back; those
    /// a socket still holds stay as they are until it lets go of them.
    pub fn clear(&mut self) {
        if self.kept.is_empty() {
            return;
        }
        self.kept.clear();
        self.end = 0;
        if let Some(file) = &self.file {
            if file.set_len(0).is_err() {
                // Never reuse a page that may not have left the file.
                self.file = None;
            }
        }
    }
}

impl Default for Spool {
    fn default() -> Spool {
        Spool::new()
    }
}

/// Whether `error` says that `sendfile` cannot send from this file at
/// all (refused by a filter or a policy, not supported), rather than
/// something about one socket (full, gone, timed out, short of memory for
/// a moment), after which the next socket may well take a send.
#[cfg(target_os = "linux")]
fn is_the_files(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::EINVAL
                | libc::ENOSYS
                | libc::EBADF
                | libc::EPERM
                | libc::EACCES
                | libc::EOPNOTSUPP
                | libc::ESPIPE
                | libc::EOVERFLOW
        )
    )
}

#[cfg(not(target_os = "linux"))]
fn is_the_files(_error: &io::Error) -> bool {
    false
}

/// A new file in memory, closed on exec and never executable.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn memory_file() -> io::Result<File> {
    use std::os::fd::FromRawFd;
    let create = |flags| {
        // SAFETY: a valid NUL-terminated name; a descriptor returned is
        // new and ours alone.
        match unsafe { libc::memfd_create(c"switchboard-spool".as_ptr(), flags) } {
            -1 => Err(io::Error::last_os_error()),
            // SAFETY: as above, so `File` may own it.
            fd => Ok(unsafe { File::from_raw_fd(fd) }),
        }
    };
    // Where `vm.memfd_noexec` is 2 a file must say it is not executable;
    // kernels before 6.3 do not know that flag (EINVAL).
    create(libc::MFD_CLOEXEC | libc::MFD_NOEXEC_SEAL).or_else(|e| match e.raw_os_error() {
        Some(libc::EINVAL) => create(libc::MFD_CLOEXEC),
        _ => Err(e),
    })
}

#[cfg(not(target_os = "linux"))]
fn memory_file() -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Whether shared memory is given huge pages without being asked: by the
/// setting for all sizes, or (kernels from 6.11) by one size's own, or
/// one that inherits the first. The selected choice is in brackets.
fn huge_shared_pages() -> bool {
    const THP: &str = "/sys/kernel/mm/transparent_hugepage";
    let choice = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
    let on = |choices: &str| {
        ["[always]", "[within_size]", "[force]"]
            .iter()
            .any(|on| choices.contains(on))
    };
    let all_sizes = on(&choice(std::path::Path::new(&format!(
        "{THP}/shmem_enabled"
    ))));
    let mut sizes = std::fs::read_dir(THP).into_iter().flatten().flatten();
    all_sizes
        || sizes.any(|size| {
            let own = choice(&size.path().join("shmem_enabled"));
            on(&own) || (all_sizes && own.contains("[inherit]"))
        })
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, at)
}

#[cfg(not(unix))]
fn write_all_at(_file: &File, _bytes: &[u8], _at: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::net::loopback_pair as pair;
    use std::io::Read;

    fn big(fill: u8) -> Frame {
        Frame::binary(&vec![fill; MIN_BYTES + 100])
    }

    #[test]
    fn keeps_only_large_frames_for_several_recipients() {
        let mut spool = Spool::in_memory();
        let small = Frame::binary(&[1; 100]);
        let (large, other) = (big(2), big(3));
        spool.keep(&small, 1000);
        spool.keep(&large, MIN_RECIPIENTS - 1);
        assert_eq!(spool.find(&small), None);
        assert_eq!(spool.find(&large), None);
        spool.keep(&large, MIN_RECIPIENTS);
        spool.keep(&large, MIN_RECIPIENTS); // once only
        spool.keep(&other, MIN_RECIPIENTS);
        assert_eq!(spool.find(&large), Some(0));
        assert_eq!(
            spool.find(&large.clone()),
            Some(0),
            "a clone shares the bytes"
        );
        assert_eq!(spool.find(&other), Some(large.len() as u64));
        assert_eq!(
            spool.find(&big(2)),
            None,
            "equal bytes elsewhere are not it"
        );
        spool.clear();
        assert_eq!(spool.find(&large), None);
    }

    #[test]
    fn a_spliced_frame_is_never_spooled() {
        let mut spool = Spool::in_memory();
        let shared: Arc<[u8]> = vec![b'a'; MIN_BYTES * 2].into();
        let spliced = Frame::spliced_text("{\"to\":1}", &shared);
        spool.keep(&spliced, 1000);
        assert_eq!(spool.find(&spliced), None);
    }

    #[test]
    fn a_turn_spools_at_most_max_bytes() {
        let mut spool = Spool::in_memory();
        let frames: Vec<Frame> = (0..=(MAX_BYTES / (MIN_BYTES as u64 + 100) + 1))
            .map(|_| big(4))
            .collect();
        for frame in &frames {
            spool.keep(frame, MIN_RECIPIENTS);
        }
        assert!(spool.find(&frames[0]).is_some());
        assert_eq!(spool.find(frames.last().unwrap()), None);
        assert!(spool.end <= MAX_BYTES);
    }

    #[test]
    fn a_span_runs_while_frames_lie_back_to_back() {
        let mut spool = Spool::in_memory();
        let (a, b, c) = (big(5), big(6), big(7));
        for frame in [&a, &b, &c] {
            spool.keep(frame, MIN_RECIPIENTS);
        }
        let len = a.len();
        let whole = Span {
            at: 0,
            len: 3 * len,
        };
        assert_eq!(spool.span([&a, &b, &c]), Some(whole));
        assert_eq!(
            spool.span([&b, &c, &a]),
            Some(Span {
                at: len as u64,
                len: 2 * len
            })
        );
        assert_eq!(
            spool.span([&a, &c]),
            Some(Span { at: 0, len }),
            "b is missing"
        );
        let small = Frame::text("x");
        assert_eq!(spool.span([&a, &small, &b]), Some(Span { at: 0, len }));
        assert_eq!(spool.span([&small, &a]), None);
    }

    /// The bytes a socket still holds do not change when the spool is
    /// cleared and the next turn writes other frames at the same offsets.
    #[test]
    fn what_a_socket_holds_survives_the_next_turn() {
        let (ours, mut theirs) = pair();
        let mut spool = Spool::in_memory();
        let (first, second) = (big(b'1'), big(b'2'));
        spool.keep(&first, MIN_RECIPIENTS);
        let span = spool.span([&first]).unwrap();
        assert_eq!(spool.send(&ours, span).unwrap(), first.len());
        spool.clear();
        spool.keep(&second, MIN_RECIPIENTS);
        assert_eq!(spool.find(&second), Some(0), "the same offset, new pages");
        assert_eq!(
            spool.send(&ours, spool.span([&second]).unwrap()).unwrap(),
            second.len()
        );
        // Only now does the other side read: both frames as they were.
        let mut got = vec![0; first.len() + second.len()];
        theirs.read_exact(&mut got).unwrap();
        assert_eq!(got, [first.to_vec(), second.to_vec()].concat());
    }

    /// Sets a socket's buffer (`SO_SNDBUF` or `SO_RCVBUF`) to `bytes`,
    /// which also stops the kernel growing it.
    #[allow(unsafe_code)]
    fn set_buffer(socket: &TcpStream, option: libc::c_int, bytes: libc::c_int) {
        use std::os::fd::AsRawFd;
        // SAFETY: an int option of a socket this stream owns.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of!(bytes).cast(),
                // 4 bytes: fits.
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap(),
            )
        };
        assert_eq!(done, 0, "{}", io::Error::last_os_error());
    }

    #[test]
    fn a_full_socket_takes_what_fits_and_the_call_never_waits() {
        let (ours, mut theirs) = pair();
        // Buffers far below the 8 MiB spooled, however the host tunes them.
        set_buffer(&ours, libc::SO_SNDBUF, 64 * 1024);
        set_buffer(&theirs, libc::SO_RCVBUF, 64 * 1024);
        let mut spool = Spool::in_memory();
        let frames: Vec<Frame> = (0..64u8)
            .map(|i| Frame::binary(&vec![i; 256 * 1024]))
            .collect();
        let mut sent = 0;
        for frame in &frames {
            spool.keep(frame, MIN_RECIPIENTS);
        }
        let span = spool.span(&frames).unwrap();
        // Nobody reads: the buffers fill and a send takes nothing.
        loop {
            let rest = Span {
                at: span.at + sent as u64,
                len: span.len - sent,
            };
            match spool.send(&ours, rest) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < span.len, "the buffers never filled");
        }
        assert!(sent > 0);
        assert!(!is_nonblocking(&ours), "the socket is blocking again");
        let mut got = vec![0; sent];
        theirs.read_exact(&mut got).unwrap();
        let expected: Vec<u8> = frames.iter().flat_map(Frame::to_vec).take(sent).collect();
        assert!(
            got == expected,
            "the bytes sent are the frames' first bytes"
        );
    }

    #[allow(unsafe_code)]
    fn is_nonblocking(socket: &TcpStream) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: F_GETFL on a descriptor this stream owns.
        let flags = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_GETFL) };
        flags & libc::O_NONBLOCK != 0
    }
}
