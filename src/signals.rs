//! Process signals, for the `switchboard` binary: SIGTERM and SIGINT shut
//! the server down gracefully, SIGHUP reloads its settings. An embedder
//! that handles signals itself uses a [`Handle`] directly instead.

use std::io;
use std::thread;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::Config;
use crate::log;
use crate::server::Handle;

/// Starts a thread that turns signals into requests on `handle`. On
/// SIGHUP it calls `load` for the new settings (the binary reads its
/// flags, environment and config file again); settings that do not load
/// are refused, and the server keeps running with the ones it has.
pub fn spawn<F>(handle: Handle, load: F) -> io::Result<()>
where
    F: Fn() -> Result<Config, String> + Send + 'static,
{
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => match load() {
                        Ok(config) => handle.reload(config),
                        Err(error) => {
                            log::error!(
                                "SIGHUP: not reloaded, keeping the running settings: {error}"
                            );
                        }
                    },
                    _ => {
                        log::info!(
                            "{}: shutting down",
                            if signal == SIGINT {
                                "SIGINT"
                            } else {
                                "SIGTERM"
                            }
                        );
                        handle.shutdown();
                    }
                }
            }
        })
        .map(drop)
}
