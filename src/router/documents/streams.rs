//! Documents in a cluster (feature `redis`): a local edit is appended to
//! the document's Redis stream, and every node applies the stream's
//! entries in the stream's order (module docs of `router::cluster`).

use std::sync::Arc;

use super::text::{Base, Cursor, Text};
use super::{too_large, Writer};
use crate::router::cluster::{DocumentEntry, Outgoing, StreamId};
use crate::router::{ConnId, Delivery, DocumentEvent, Edit, Event, Router};

/// Documents in a cluster: the stream's entries, applied in its order.
impl Router {
    /// Every followed document's text, the last entry it includes and
    /// that entry's number.
    pub(in crate::router) fn document_snapshots(&self) -> Vec<(String, Arc<str>, StreamId, u64)> {
        let mut snapshots: Vec<(String, Arc<str>, StreamId, u64)> = self
            .documents
            .iter()
            .filter_map(|(computer, d)| {
                let id = d.stream?;
                Some((computer.clone(), Arc::from(d.text.as_str()), id, d.count))
            })
            .collect();
        snapshots.sort_by(|a, b| a.0.cmp(&b.0));
        snapshots
    }

    /// The cluster's text of a document this node (again) starts from: it
    /// replaces this node's copy, and the editors here get a fresh `sync`
    /// (always when it is read again: the entries after it follow, and
    /// some of them may have been shown already).
    pub(in crate::router) fn document_base(
        &mut self,
        computer: &str,
        text: String,
        id: StreamId,
        count: u64,
    ) -> Vec<Delivery> {
        let now = self.now;
        let Some(document) = self.documents.get_mut(computer) else {
            return Vec::new(); // no longer followed
        };
        let again = std::mem::replace(&mut document.based, true);
        document.stream = Some(id);
        document.count = count;
        if document.text.as_str() == text && !again {
            return Vec::new();
        }
        document.text = Text::new(text);
        document.text.rebase(count);
        document.version += 1;
        let editors: Vec<ConnId> = document.editors.iter().copied().collect();
        for &conn in &editors {
            if let Some(editor) = self.editor_mut(conn) {
                editor.cursor = Cursor::default();
            }
        }
        self.schedule_save(computer, now);
        editors
            .into_iter()
            .flat_map(|conn| self.sync(conn, now))
            .collect()
    }

    /// Applies a document's stream entries, each once, in order: an entry
    /// from a connection here is that connection's edit, as on a single
    /// node; any other is applied to the text and shown to the editors.
    /// Entries read with a base (`with_base`) follow it whatever their
    /// numbers; later ones must be numbered one after another, and a gap
    /// (entries a restarted Redis lost) makes the node read the base again.
    pub(in crate::router) fn document_entries(
        &mut self,
        computer: &str,
        entries: crate::router::cluster::Entries,
        with_base: bool,
    ) -> Vec<Delivery> {
        let mut out = Vec::new();
        for appended in entries {
            let Some(document) = self.documents.get_mut(computer) else {
                return out;
            };
            // Before the base, nothing applies; at or below it, already in.
            if document.stream.is_none_or(|last| appended.id <= last) {
                continue;
            }
            if !with_base && appended.number != document.count + 1 {
                out.extend(self.read_base_again(computer));
                return out;
            }
            document.stream = Some(appended.id);
            document.count = appended.number;
            out.extend(self.apply_entry(computer, appended.entry));
        }
        out
    }

    /// Entries are missing: the node stops applying the document's entries
    /// until its base, read again, arrives.
    pub(super) fn read_base_again(&mut self, computer: &str) -> Vec<Delivery> {
        let Some(document) = self.documents.get_mut(computer) else {
            return Vec::new();
        };
        document.stream = None;
        let text = document.text.as_str().to_string();
        let computer = computer.to_string();
        self.tell_link(Outgoing::Follow { computer, text });
        Vec::new()
    }

    /// One entry of `computer`'s stream, applied.
    pub(super) fn apply_entry(&mut self, computer: &str, entry: DocumentEntry) -> Vec<Delivery> {
        let now = self.now;
        let own = self.node().map(str::to_string);
        let conn = ConnId(entry.conn);
        let from_here = own.as_deref() == Some(entry.node.as_str());
        let here = from_here && self.editor(conn).is_some_and(|e| e.computer == computer);
        let writer = match (here, from_here) {
            (true, _) => Writer::Here(conn),
            (false, true) => Writer::Gone,
            (false, false) => Writer::OtherNode,
        };
        match entry.edit {
            Edit::Sync => Vec::new(), // never appended
            Edit::Move {
                offset, selection, ..
            } if here => self.move_cursor(conn, (offset, selection, None), now),
            Edit::Move {
                offset, selection, ..
            } => self.remote_move(computer, entry.user, offset, selection),
            Edit::Write {
                offset,
                selection,
                text,
                ..
            } => {
                // The stream's order is the server's order: a write placed
                // on the entries its node had applied is transformed
                // against the ones after them, the same way on every node.
                let mark = self.documents.get(computer).map(|d| d.count);
                let base = entry.after.map_or(Base::Literal, Base::Mark);
                let write = (offset, selection, text.as_str(), base);
                let applied =
                    self.apply_write(computer, (writer, mark), entry.user.clone(), write, now);
                let applied = match applied {
                    // Older than this node keeps (it took a later base):
                    // at its offsets, as a write without a revision.
                    Err(_) => {
                        let write = (offset, selection, text.as_str(), Base::Literal);
                        self.apply_write(computer, (writer, mark), entry.user, write, now)
                    }
                    done => done,
                };
                match applied {
                    Ok(Some(out)) => out,
                    // Every node refuses the same over-long write; the
                    // writer's own node closes the writer.
                    Ok(None) if here => self.evict(conn, too_large(&self.settings)),
                    Ok(None) | Err(_) => Vec::new(),
                }
            }
        }
    }

    /// Another node's user moved its cursor: the editors here see it.
    pub(super) fn remote_move(
        &mut self,
        computer: &str,
        user: String,
        offset: i64,
        selection: i64,
    ) -> Vec<Delivery> {
        let Some(document) = self.documents.get_mut(computer) else {
            return Vec::new();
        };
        let cursor = document.text.clamp(offset, selection);
        document.place_remote(&user, cursor);
        let moved = DocumentEvent::Move {
            actioner: user,
            offset: cursor.offset,
            selection: cursor.selection,
        };
        vec![Delivery {
            to: document.editors.iter().copied().collect(),
            event: Event::Document(moved),
        }]
    }
}
