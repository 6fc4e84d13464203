//! Starting a connection's two threads.
//!
//! Each names itself once it runs (`conn` for the thread that reads the
//! request and then the WebSocket, `conn-writer` for the writer), which is
//! how `top -H`, `ps -L` and `/proc/PID/task/*/comm` show it. Not through
//! `std::thread::Builder::name`: std keeps such a name twice per thread,
//! its own copy and its stack-overflow handler's, four small allocations
//! (128 bytes) per connection that an idle hub holds for nothing. The
//! kernel's name costs nothing; panic messages call these threads
//! `<unnamed>`, and the log line of each connection's end names the
//! connection.

use std::ffi::CStr;
use std::io;
use std::thread;

/// Starts `body` on a thread of `stack_size` bytes that names itself `name`
/// (at most 15 bytes: Linux's limit).
pub(super) fn spawn<F>(name: &'static CStr, stack_size: usize, body: F) -> io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    // A longer name would be refused, and the thread left unnamed.
    debug_assert!(name.count_bytes() <= 15, "{name:?} is over 15 bytes");
    thread::Builder::new()
        .stack_size(stack_size)
        .spawn(move || {
            name_this_thread(name);
            body();
        })
        .map(drop)
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn name_this_thread(name: &CStr) {
    // SAFETY: `name` is a valid NUL-terminated string for the call. One
    // longer than Linux allows is refused (ERANGE), not written past; the
    // result is not checked because an unnamed thread works the same.
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
}

#[cfg(not(target_os = "linux"))]
fn name_this_thread(_name: &CStr) {}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_thread_names_itself() {
        let (tell, told) = std::sync::mpsc::channel();
        super::spawn(c"conn-test", 64 * 1024, move || {
            let name = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
            let _ = tell.send(name);
        })
        .expect("a thread starts");
        let name = told.recv().expect("the thread reports");
        assert_eq!(name.trim_end(), "conn-test");
    }
}
