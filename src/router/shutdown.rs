//! Stopping the hub: every client is told its dialect's going-away close,
//! and every document with unsaved edits goes to the saver at once.

use crossbeam_channel::Receiver;

use super::{Conn, Delivery, Disconnect, Event, Router};

/// What a shutdown set in motion, for the server to wait on.
#[derive(Debug)]
pub struct Drain {
    /// Connections told to go away.
    pub clients: usize,
    /// Documents handed to the saver.
    pub documents: usize,
    /// Disconnects once the saver has written them (`None`: no store).
    pub saved: Option<Receiver<()>>,
}

impl Router {
    /// Tells every connection to go away and saves every document. The
    /// namespace is left as it is: the process is about to end, and
    /// removing members one by one would tell each of the others about
    /// each departure, work that grows with the square of the clients.
    pub fn shutdown(&mut self) -> (Drain, Vec<Delivery>) {
        let to: Vec<_> = self
            .conns
            .iter()
            .filter(|(_, conn)| !matches!(conn, Conn::Leaving { .. }))
            .map(|(&id, _)| id)
            .collect();
        let documents = self.save_everything();
        // The other nodes forget this one's members now, not when its
        // heartbeat runs out.
        self.leave_cluster();
        let drain = Drain {
            clients: to.len(),
            documents,
            saved: self.store.as_ref().map(super::super::store::Store::flush),
        };
        let goodbye = Delivery {
            to,
            event: Event::Disconnect(Disconnect::ShuttingDown),
        };
        (drain, vec![goodbye])
    }
}
