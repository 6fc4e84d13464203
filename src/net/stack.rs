//! Giving back the stack pages a waiting reader does not need.
//!
//! Once touched, a thread's stack pages stay in memory, even while the
//! thread sits in a shallow frame. A reader thread goes deep when it
//! answers the HTTP request and whenever it handles a message (JSON, the
//! dialect, a command for the router), and then waits in `read` for most
//! of its life: on a hub of mostly quiet clients, those deep pages would
//! be the largest part of what a connection costs. So before a reader
//! waits, it tells the kernel (`madvise(MADV_DONTNEED)`) that the pages
//! below its current frame may go; the next message brings back, zeroed,
//! the ones it uses.
//!
//! That costs a system call and a few page faults per wait, so a reader
//! trims only once its client has been quiet for a while (`QUIET` in
//! `reader.rs`, 50 ms, checked with `poll`): a busy connection, whose
//! next bytes keep arriving, never trims. For this to pay, the frames
//! a waiting reader sits in must be shallow: the request is answered, and
//! the connection set up, in a call that has returned by then
//! (`connection::open`), and the connection's state has one place on the
//! stack (`connection::Connection::serve` reads it through a reference).

/// How much stack below the trimming frame stays: the `read` that follows
/// needs under a hundred bytes. Release builds wait about 7.5 KiB below
/// the top of a reader's stack, glibc's thread descriptor and TLS (4.3 KiB)
/// included, so a waiting reader holds two pages; a larger margin would
/// reach into a third.
const KEEP_BELOW: usize = 256;

/// The stack of the thread that made it.
#[derive(Debug)]
pub struct Stack {
    /// The lowest address of the stack's mapping (its guard page, if it
    /// has one, included: giving that back is harmless).
    lowest: usize,
}

impl Stack {
    /// The calling thread's stack, if the platform says where it is.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub fn of_this_thread() -> Option<Stack> {
        // SAFETY: `attr` is initialized by pthread_getattr_np before it is
        // read, and destroyed once; the out-pointers are valid locals.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                return None;
            }
            let (mut lowest, mut size) = (std::ptr::null_mut(), 0);
            let found = libc::pthread_attr_getstack(&attr, &mut lowest, &mut size);
            libc::pthread_attr_destroy(&mut attr);
            (found == 0).then_some(Stack {
                lowest: lowest as usize,
            })
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn of_this_thread() -> Option<Stack> {
        None
    }

    /// Gives back the whole pages more than `KEEP_BELOW` (256) bytes under the
    /// caller's frame. Must be called on the thread the stack belongs to:
    /// on another, it would take pages from under a running thread.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    #[inline(never)]
    pub fn trim(&self) {
        const PAGE: usize = 4096;
        let here = 0u8;
        let frame = std::ptr::addr_of!(here) as usize;
        let end = frame.saturating_sub(KEEP_BELOW) & !(PAGE - 1);
        if end > self.lowest {
            // SAFETY: [lowest, end) is part of this thread's stack mapping
            // and lies wholly below the live frames (the stack grows down
            // from above `frame`), so nothing in it is in use; MADV_DONTNEED
            // on private anonymous memory only makes later touches read
            // zeroed pages. A failure leaves the pages where they are.
            unsafe {
                libc::madvise(
                    self.lowest as *mut libc::c_void,
                    end - self.lowest,
                    libc::MADV_DONTNEED,
                )
            };
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn trim(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Touches `depth` bytes of stack below the caller.
    #[inline(never)]
    fn go_deep(depth: usize) -> u8 {
        let mut block = [0u8; 4096];
        std::hint::black_box(&mut block);
        match depth.checked_sub(block.len()) {
            Some(rest) if rest > 0 => block[7] ^ go_deep(rest),
            _ => block[9],
        }
    }

    /// How many pages of `[from, to)` are in memory.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn resident_pages(from: usize, to: usize) -> usize {
        let pages = (to - from) / 4096;
        let mut map = vec![0u8; pages];
        // SAFETY: `from` is page-aligned and the range is mapped (it is
        // part of this thread's stack); `map` has a byte per page.
        let done = unsafe { libc::mincore(from as *mut libc::c_void, to - from, map.as_mut_ptr()) };
        assert_eq!(done, 0, "mincore: {}", std::io::Error::last_os_error());
        map.iter().filter(|&&page| page & 1 == 1).count()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn trimming_gives_back_the_deep_pages_and_they_come_back_zeroed() {
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let stack = Stack::of_this_thread().expect("Linux says where a stack is");
                let here = 0u8;
                let below = (std::ptr::addr_of!(here) as usize - 16 * 1024) & !4095;
                let mut seen = Vec::new();
                for _ in 0..2 {
                    assert_eq!(go_deep(64 * 1024), 0, "a page came back dirty");
                    seen.push(resident_pages(stack.lowest, below));
                    stack.trim();
                    seen.push(resident_pages(stack.lowest, below));
                }
                seen
            })
            .unwrap();
        // Deep: about 48 KiB below `below` in memory; trimmed: none.
        let seen = handle.join().unwrap();
        assert!(seen[0] >= 10 && seen[2] >= 10, "{seen:?}");
        assert_eq!((seen[1], seen[3]), (0, 0), "{seen:?}");
    }
}
