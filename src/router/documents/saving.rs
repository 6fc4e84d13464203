//! Saving shared documents: a save at most [`SAVE_DELAY`] after an edit,
//! retried after a failure, every unsaved one at shutdown; a saved
//! document nobody uses forgotten after [`KEEP_UNUSED`]. The writing
//! itself is the saver thread's (`crate::store`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::router::cluster::Outgoing;
use crate::router::{DocumentSnapshot, Router, Timer};
use crate::store::Snapshot;

/// How long after an edit a document is saved, at the latest.
const SAVE_DELAY: Duration = Duration::from_secs(1);
/// How long after a failed save it is tried again.
const SAVE_RETRY: Duration = Duration::from_secs(5);
/// How long a saved document nobody edits stays in memory.
const KEEP_UNUSED: Duration = Duration::from_secs(60);

impl Router {
    /// Schedules a save of a document that changed, unless one is due.
    pub(super) fn schedule_save(&mut self, computer: &str, now: Instant) {
        let Some(document) = self.documents.get_mut(computer) else {
            return;
        };
        if document.save_due.is_none() {
            document.save_due = Some(now + SAVE_DELAY);
            self.timers
                .set(now + SAVE_DELAY, Timer::Save(computer.to_string()));
        }
    }

    /// Hands a snapshot of the document to the saver if it changed since
    /// its last save. One snapshot per document is with the saver at a
    /// time (a newer version follows when it reports back), so the saver's
    /// queue holds at most one copy of each document.
    pub(in crate::router) fn save(&mut self, computer: &str, now: Instant) {
        let Some(document) = self.documents.get_mut(computer) else {
            return;
        };
        if let Some(due) = document.save_due.take() {
            self.timers.cancel(due, Timer::Save(computer.to_string()));
        }
        if document.saving {
            return;
        }
        if let (Some(id), true) = (document.stream, document.version != document.saved) {
            let text: Arc<str> = Arc::from(document.text.as_str());
            let (computer, count) = (computer.to_string(), document.count);
            self.tell_link(Outgoing::Snapshot {
                computer,
                text,
                id,
                count,
            });
        }
        let Some(document) = self.documents.get_mut(computer) else {
            return;
        };
        if document.version == document.saved {
            if document.editors.is_empty() {
                self.timers
                    .set(now + KEEP_UNUSED, Timer::Forget(computer.to_string()));
            }
            return;
        }
        match &self.store {
            Some(_) => {
                document.saving = true;
                let version = document.version;
                let Some(snapshot) = self.snapshot(computer) else {
                    return;
                };
                if let Some(store) = &self.store {
                    store.save(Snapshot {
                        computer: computer.to_string(),
                        text: snapshot.text.clone(),
                        version,
                    });
                }
            }
            // Without a store, memory is the only copy: it stays.
            None => document.saved = document.version,
        }
    }

    /// Hands every document with unsaved edits to the saver now, whether
    /// or not a save is due or under way (the saver writes in order, so
    /// the newest text is written last). Returns how many.
    pub(in crate::router) fn save_everything(&mut self) -> usize {
        let Some(store) = self.store.clone() else {
            return 0;
        };
        let unsaved: Vec<String> = self
            .documents
            .iter()
            .filter(|(_, d)| d.version != d.saved)
            .map(|(computer, _)| computer.clone())
            .collect();
        for computer in &unsaved {
            let version = self.documents.get(computer).map_or(0, |d| d.version);
            if let Some(snapshot) = self.snapshot(computer) {
                store.save(Snapshot {
                    computer: computer.clone(),
                    text: snapshot.text.clone(),
                    version,
                });
            }
        }
        unsaved.len()
    }

    /// The saver's report on a snapshot: written, or failed (then it is
    /// tried again later). Newer edits since are saved next.
    pub(in crate::router) fn saved(
        &mut self,
        computer: &str,
        version: u64,
        written: bool,
        now: Instant,
    ) {
        let Some(document) = self.documents.get_mut(computer) else {
            return;
        };
        document.saving = false;
        if written {
            document.saved = document.saved.max(version);
        } else if document.save_due.is_none() {
            document.save_due = Some(now + SAVE_RETRY);
            self.timers
                .set(now + SAVE_RETRY, Timer::Save(computer.to_string()));
            return;
        }
        if document.save_due.is_none() {
            self.save(computer, now);
        }
    }

    /// Drops a document nobody has edited or joined for [`KEEP_UNUSED`]
    /// since it was saved. Keeping it that long means a connection that
    /// read the file just before the last save still finds the newer text
    /// here when its join arrives.
    pub(in crate::router) fn forget_document(&mut self, computer: &str) {
        let idle = self.documents.get(computer).is_some_and(|d| {
            d.editors.is_empty() && !d.saving && d.saved == d.version && d.save_due.is_none()
        });
        if idle && self.store.is_some() {
            self.documents.remove(computer);
            let computer = computer.to_string();
            self.tell_link(Outgoing::Unfollow { computer });
        }
    }

    /// The document's text at its current version, made once per version.
    pub(super) fn snapshot(&mut self, computer: &str) -> Option<Arc<DocumentSnapshot>> {
        let document = self.documents.get_mut(computer)?;
        match &document.snapshot {
            Some((version, snapshot)) if *version == document.version => Some(snapshot.clone()),
            _ => {
                let snapshot = Arc::new(DocumentSnapshot {
                    text: Arc::from(document.text.as_str()),
                    encoded: std::sync::OnceLock::new(),
                });
                document.snapshot = Some((document.version, snapshot.clone()));
                Some(snapshot)
            }
        }
    }
}
