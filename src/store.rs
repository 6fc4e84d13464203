//! Saving shared documents under `--data-dir`, and loading them back.
//!
//! The router never touches the disk: it hands snapshots to a saver thread
//! (about once a second while a document is edited, and as soon as its
//! last user leaves; never more than one per document at a time), which
//! writes each one atomically and reports back with [`Control::Saved`]; a
//! failed save is tried again a few seconds later. A document is loaded by the
//! connection that joins it, on its own thread, before the router sees it.
//!
//! A file is written to a temporary name, flushed to disk (`fsync`), then
//! renamed over the old one, and the directory is flushed too: a crash
//! leaves either the old or the new file, never half of one. File names
//! are the computer id in hex (`doc-<hex>.txt`), so no id can reach outside
//! the directory or collide with another.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::log;
use crate::router::{Command, Control};

/// A document's text at one version, to be saved.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The computer id the document belongs to.
    pub computer: String,
    /// Its text.
    pub text: Arc<str>,
    /// Its version (edits since load), reported back when saved.
    pub version: u64,
}

/// What the saver thread is asked to do, in order.
#[derive(Debug)]
pub enum Job {
    /// Write this snapshot.
    Save(Snapshot),
    /// Say (by dropping the sender) that every job queued before is done:
    /// the server waits on it before exiting.
    Flush(Sender<()>),
}

/// The router's handle on the saver thread. Dropping it (with the router)
/// ends the thread once it has saved everything sent.
#[derive(Debug, Clone)]
pub struct Store {
    /// Jobs waiting for the saver. Unbounded, so the router never waits
    /// here; it holds back a document's next snapshot until the last one is
    /// reported, so at most one per document is queued (until shutdown,
    /// when every unsaved document is queued at once).
    saves: Sender<Job>,
}

impl Store {
    /// Starts the saver thread for `dir` (created if missing); it reports
    /// saved versions to `router`.
    pub fn start(dir: PathBuf, router: Sender<Command>) -> io::Result<Store> {
        fs::create_dir_all(&dir)?;
        let (saves, queue) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name("store".into())
            .spawn(move || save_all(&dir, &queue, &router))?;
        Ok(Store { saves })
    }

    /// A store whose snapshots go to the returned receiver instead of a
    /// disk: for the router's tests.
    #[cfg(test)]
    pub fn capture() -> (Store, Receiver<Job>) {
        let (saves, queue) = crossbeam_channel::unbounded();
        (Store { saves }, queue)
    }

    /// Queues a snapshot for saving.
    pub fn save(&self, snapshot: Snapshot) {
        // The saver only stops when this handle is dropped.
        let _ = self.saves.send(Job::Save(snapshot));
    }

    /// A receiver that disconnects once every snapshot queued so far has
    /// been written (or has failed).
    pub fn flush(&self) -> Receiver<()> {
        let (done, flushed) = crossbeam_channel::bounded(0);
        let _ = self.saves.send(Job::Flush(done));
        flushed
    }
}

fn save_all(dir: &Path, queue: &Receiver<Job>, router: &Sender<Command>) {
    for job in queue {
        let snapshot = match job {
            Job::Save(snapshot) => snapshot,
            // Dropping the sender is the answer.
            Job::Flush(done) => {
                drop(done);
                continue;
            }
        };
        let path = dir.join(file_name(&snapshot.computer));
        let result = write_atomically(&path, snapshot.text.as_bytes());
        if let Err(error) = &result {
            // The router keeps the document and tries again later.
            log::error!("cannot save {}: {error}", path.display());
        }
        let report = Command::Control(Control::Saved {
            computer: snapshot.computer,
            version: snapshot.version,
            written: result.is_ok(),
        });
        // At shutdown the router may be gone before the last reports: the
        // remaining snapshots are still written.
        let _ = router.send(report);
    }
}

/// The saved text of `computer`'s document, if there is one.
pub fn load(dir: &Path, computer: &str) -> io::Result<Option<String>> {
    match fs::read(dir.join(file_name(computer))) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// `doc-<hex of the id's bytes>.txt`: safe and distinct for any id.
pub fn file_name(computer: &str) -> String {
    let hex: String = computer.bytes().map(|b| format!("{b:02x}")).collect();
    format!("doc-{hex}.txt")
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new
/// one, whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("txt.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    // The rename is durable once the directory entry is.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_hex_and_safe() {
        assert_eq!(file_name("ab"), "doc-6162.txt");
        assert_eq!(
            file_name("../etc/passwd"),
            "doc-2e2e2f6574632f706173737764.txt"
        );
        assert_eq!(file_name(""), "doc-.txt");
        assert_ne!(file_name("A"), file_name("a"));
    }

    #[test]
    fn saved_documents_load_back() {
        let dir = std::env::temp_dir().join(format!("switchboard-store-{}", std::process::id()));
        let (router, reports) = crossbeam_channel::unbounded();
        let store = Store::start(dir.clone(), router).unwrap();
        assert!(load(&dir, "pc-1").unwrap().is_none());
        store.save(Snapshot {
            computer: "pc-1".into(),
            text: "héllo 🦀".into(),
            version: 3,
        });
        match reports
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap()
        {
            Command::Control(Control::Saved {
                computer,
                version,
                written,
            }) => assert_eq!((computer.as_str(), version, written), ("pc-1", 3, true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(load(&dir, "pc-1").unwrap().as_deref(), Some("héllo 🦀"));
        assert!(!dir.join("doc-70632d31.txt.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
