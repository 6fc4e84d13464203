//! What the server, the operator and the saver ask of the router itself
//! (as opposed to what clients ask: [`Command`](super::Command)), and how
//! it answers.
//! Every answer goes back on a channel of one slot: the router never
//! waits for the asker, who may have given up.

use crossbeam_channel::Sender;

use super::{Delivery, Policy, Router};

/// A request to the router about the hub rather than the namespace.
#[derive(Debug)]
pub enum Control {
    /// The operator asks the clients of a world (or of every world) to
    /// reload; the number told is sent on `reply`.
    Reload {
        /// The world, or `None` for all.
        world: Option<String>,
        /// Where the count goes.
        reply: Sender<usize>,
    },
    /// `/healthz` asks whether the router is turning: it answers at once.
    Probe {
        /// Where the answer goes.
        reply: Sender<()>,
    },
    /// The operator reloaded the settings: new timing rules and a new
    /// access policy (for members admitted from now on).
    ///
    /// Boxed: the largest request, and the rarest, it would otherwise
    /// set the size of every command (see `Command::Join`).
    Reconfigure(Box<Reconfiguration>),
    /// The server is stopping: every connection gets its dialect's
    /// going-away close, and every unsaved document goes to the saver.
    Shutdown {
        /// Where the [`Drain`](crate::router::Drain) goes.
        reply: Sender<crate::router::Drain>,
    },
    /// The operator closes a blazing document's room: its clients are
    /// disconnected ("room closed by admin"); the count goes on `reply`.
    CloseRoom {
        /// The document's computer id.
        computer: String,
        /// Where the count goes.
        reply: Sender<usize>,
    },
    /// The saver thread's report on a document snapshot.
    Saved {
        /// The document's computer id.
        computer: String,
        /// The snapshot's version.
        version: u64,
        /// Whether it is on disk (else it failed and is to be retried).
        written: bool,
    },
    /// Answered on `done` as soon as the router gets to it: by then every
    /// command sent before it has been handled and its frames queued. A
    /// reader about to close its connection sends it first, so that what
    /// the router still owes the client goes out before the close frame.
    Flush {
        /// Where the answer goes (one slot: the router never waits).
        done: Sender<()>,
    },
}

/// What a reload changes in the router.
#[derive(Debug)]
pub struct Reconfiguration {
    /// The rules from now on.
    pub settings: crate::router::Settings,
    /// What the operator opens from now on.
    pub policy: Policy,
}

impl Router {
    /// Applies one control request at the time of the current step.
    pub(super) fn control(&mut self, control: Control) -> Vec<Delivery> {
        match control {
            Control::CloseRoom { computer, reply } => {
                let (closed, out) = self.close_room(&computer);
                let _ = reply.try_send(closed); // the asker may have given up
                out
            }
            Control::Saved {
                computer,
                version,
                written,
            } => {
                self.saved(&computer, version, written, self.now);
                Vec::new()
            }
            Control::Reload { world, reply } => {
                let (told, out) = self.reload(world.as_deref());
                let _ = reply.try_send(told); // the asker may have given up
                out
            }
            Control::Probe { reply } => {
                let _ = reply.try_send(()); // the asker may have given up
                Vec::new()
            }
            Control::Reconfigure(new) => {
                let Reconfiguration { settings, policy } = *new;
                self.settings = settings;
                self.policy = policy;
                Vec::new()
            }
            Control::Shutdown { reply } => {
                let (drain, out) = self.shutdown();
                let _ = reply.try_send(drain); // the asker may have given up
                out
            }
            Control::Flush { done } => {
                let _ = done.try_send(()); // the reader may have given up
                Vec::new()
            }
        }
    }
}
