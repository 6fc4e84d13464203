//! Shared documents (blazing): one per computer id, edited by its users in
//! one total order, the router's, so every client that applies the
//! broadcast edits in order holds the server's text.
//!
//! This file is the registry: which documents exist, who joins, edits and
//! leaves them. When they are saved and forgotten is in `saving.rs`; how
//! a cluster edits them through Redis streams in `streams.rs`. One
//! document's text and cursors are in [`text`]; how a late write is moved
//! over the writes applied since is in [`transform`].

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small generated sizes
mod convergence_tests;
mod saving;
#[cfg(feature = "redis")]
mod streams;
pub mod text;
pub mod transform;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::{DocumentEntry, Outgoing, StreamId};
use super::member::{Editor, Identity, Kind};
use super::{
    Access, ConnId, Delivery, Disconnect, DocumentEvent, DocumentSnapshot, Edit, Event, Grant,
    Router, Timer,
};
use text::{shift, Base, Cursor, Stale, Text};

/// A computer's document and who is editing it.
#[derive(Debug)]
pub struct Document {
    text: Text,
    /// The connections editing it.
    editors: BTreeSet<ConnId>,
    /// Edits since it was loaded.
    version: u64,
    /// The last version the saver reported written.
    saved: u64,
    /// Whether a save is scheduled.
    save_due: Option<Instant>,
    /// Whether a snapshot is with the saver now.
    saving: bool,
    /// The text at `version`, once a sync or a save has needed it.
    snapshot: Option<(u64, Arc<DocumentSnapshot>)>,
    /// In a cluster: the last entry of the document's stream applied to
    /// `text`; `None` until the stream's base arrives (again).
    stream: Option<StreamId>,
    /// In a cluster: the number of that entry (the stream's entry count).
    count: u64,
    /// In a cluster: whether a base has been applied since the document
    /// was loaded.
    #[cfg(feature = "redis")]
    based: bool,
    /// In a cluster: the users editing it on other nodes (those with a
    /// shadow here), their cursors as their moves and writes in the stream
    /// put them.
    remote_cursors: BTreeMap<String, RemoteUser>,
}

/// A user editing a document on other nodes.
#[derive(Debug, Default)]
struct RemoteUser {
    /// Its connections there (shadows here).
    shadows: usize,
    /// Its cursor.
    cursor: Cursor,
}

/// Who made a write, as far as cursors go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// An editor on this node: its cursor goes past the text.
    Here(ConnId),
    /// A user on another node: its cursor here goes past the text.
    OtherNode,
    /// A connection of this node that has left since.
    #[cfg(feature = "redis")]
    Gone,
}

impl Document {
    /// The connections editing it.
    pub(super) fn editors(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.editors.iter().copied()
    }

    /// A user on another node joined: its cursor starts at the beginning.
    #[cfg(feature = "redis")]
    pub(super) fn remote_joined(&mut self, user: &str) {
        self.remote_cursors
            .entry(user.to_string())
            .or_default()
            .shadows += 1;
    }

    /// A connection of a user on another node left; the user is gone from
    /// here when it was the last.
    fn remote_left(&mut self, user: &str) {
        if let Some(remote) = self.remote_cursors.get_mut(user) {
            remote.shadows = remote.shadows.saturating_sub(1);
            if remote.shadows == 0 {
                self.remote_cursors.remove(user);
            }
        }
    }

    /// Puts the cursor of `user`, if it edits on another node.
    fn place_remote(&mut self, user: &str, cursor: Cursor) {
        if let Some(remote) = self.remote_cursors.get_mut(user) {
            remote.cursor = cursor;
        }
    }
}

impl Router {
    /// A blazing client joins `computer`'s document: the others get
    /// `usrupd`, it gets `sync`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join_document(
        &mut self,
        conn: ConnId,
        computer: String,
        user: String,
        display: Option<String>,
        (token_left, grant): (Duration, Grant),
        stored: Option<String>,
        now: Instant,
    ) -> Vec<Delivery> {
        if self.conns.contains_key(&conn) {
            return Vec::new(); // a session joins once
        }
        // Editing is writing: the document is the topic of its computer id.
        if let Err(denial) = self.policy.allows(&grant, Access::Write, &computer) {
            self.denied(conn, "blazing", Access::Write, &computer, denial);
            return self.refuse(conn, Disconnect::NotGranted(computer));
        }
        let expires = now.checked_add(token_left);
        let editor = Editor {
            computer: computer.clone(),
            user: user.clone(),
            cursor: Cursor::default(),
            joined: now,
            token_left,
            expires,
        };
        let presence = super::calls::raw(&serde_json::json!({"user": user})).into();
        let tags = vec!["blazing".to_string(), computer.clone()];
        let kind = Kind::Blazing(Box::new(editor));
        let identity = Identity::new("blazing_", display, tags, grant);
        if let Err(refusal) = self.enroll(conn, identity, presence, kind) {
            return refusal;
        }
        if let Some(expires) = expires {
            self.timers.set(expires, Timer::TokenExpiry(conn));
        }
        if !self.documents.contains_key(&computer) && self.clustered() {
            let text = stored.clone().unwrap_or_default();
            let computer = computer.clone();
            self.tell_link(Outgoing::Follow { computer, text });
        }
        let document = self
            .documents
            .entry(computer.clone())
            .or_insert_with(|| Document {
                text: Text::new(stored.unwrap_or_default()),
                editors: BTreeSet::new(),
                version: 0,
                saved: 0,
                save_due: None,
                saving: false,
                snapshot: None,
                stream: None,
                count: 0,
                #[cfg(feature = "redis")]
                based: false,
                remote_cursors: BTreeMap::new(),
            });
        let others: Vec<ConnId> = document.editors.iter().copied().collect();
        let already_here = self.user_in_room(&computer, &user);
        if let Some(document) = self.documents.get_mut(&computer) {
            document.editors.insert(conn);
        }
        let mut out = self.sync(conn, now);
        if !already_here {
            let joined = DocumentEvent::UserUpdate {
                actioner: user,
                joined: true,
            };
            out.push(Delivery {
                to: others,
                event: Event::Document(joined),
            });
        }
        out
    }

    /// What a blazing client does. In a cluster, moves and writes go to
    /// the document's stream and are applied when they come back from it,
    /// in the order every node applies them.
    pub(super) fn edit(&mut self, conn: ConnId, edit: Edit, now: Instant) -> Vec<Delivery> {
        if let (Some(node), false) = (self.node(), matches!(edit, Edit::Sync)) {
            let node = node.to_string();
            let Some(editor) = self.editor(conn).cloned() else {
                return Vec::new();
            };
            let Ok((edit, after)) = self.for_the_stream(&editor.computer, edit) else {
                return self.sync(conn, now);
            };
            let entry = DocumentEntry {
                node,
                conn: conn.0,
                user: editor.user,
                seq: self.next_edit_seq(),
                edit,
                after,
            };
            let computer = editor.computer;
            self.tell_link(Outgoing::Append { computer, entry });
            return Vec::new();
        }
        match edit {
            Edit::Sync => self.sync(conn, now),
            Edit::Move {
                offset,
                selection,
                rev,
            } => self.move_cursor(conn, (offset, selection, rev), now),
            Edit::Write {
                offset,
                selection,
                text,
                rev,
            } => self.write(conn, (offset, selection, &text, rev), now),
        }
    }

    /// An edit that names its client's revision, placed on this node's
    /// copy for the document's stream: a write as the range it replaces
    /// after the last entry applied here (whose number goes with it), a
    /// move where the cursor is now. Others go as they are.
    fn for_the_stream(&self, computer: &str, edit: Edit) -> Result<(Edit, Option<u64>), Stale> {
        let Some(document) = self.documents.get(computer) else {
            return Ok((edit, None));
        };
        match edit {
            Edit::Write {
                offset,
                selection,
                text,
                rev: Some(rev),
            } => {
                let placed = document
                    .text
                    .place(Base::Rev(rev), offset, selection, &text)?;
                let op = placed.op();
                let write = Edit::Write {
                    offset: op.start as i64,
                    selection: (op.end - op.start) as i64,
                    text: op.text.clone(),
                    rev: None,
                };
                Ok((write, Some(document.count)))
            }
            Edit::Move {
                offset,
                selection,
                rev: Some(rev),
            } => {
                let cursor = document.text.cursor_at(Base::Rev(rev), offset, selection)?;
                let moved = Edit::Move {
                    offset: cursor.offset as i64,
                    selection: cursor.selection,
                    rev: None,
                };
                Ok((moved, None))
            }
            other => Ok((other, None)),
        }
    }

    /// `sync` for `conn`: the text, every cursor, and its token's time left.
    fn sync(&mut self, conn: ConnId, now: Instant) -> Vec<Delivery> {
        let Some(computer) = self.editor(conn).map(|e| e.computer.clone()) else {
            return Vec::new();
        };
        let Some(snapshot) = self.snapshot(&computer) else {
            return Vec::new();
        };
        let (Some(editor), Some(document)) = (self.editor(conn), self.documents.get(&computer))
        else {
            return Vec::new();
        };
        let mut users: Vec<(String, usize)> = document
            .editors
            .iter()
            .filter_map(|&c| self.editor(c))
            .map(|e| (e.user.clone(), e.cursor.offset))
            .collect();
        for (user, remote) in &document.remote_cursors {
            if !users.iter().any(|(u, _)| u == user) {
                users.push((user.clone(), remote.cursor.offset));
            }
        }
        let sync = DocumentEvent::Sync {
            actioner: editor.user.clone(),
            document: snapshot,
            users,
            timeout: editor
                .token_left
                .saturating_sub(now.saturating_duration_since(editor.joined))
                .as_secs(),
            rev: document.text.rev(),
        };
        vec![Delivery::one(conn, Event::Document(sync))]
    }

    /// `move`: the cursor is stored (clamped; placed on the text as it is
    /// now if the client named the revision it moved on) and shown to every
    /// editor. A revision that cannot be placed gets the client a `sync`.
    fn move_cursor(
        &mut self,
        conn: ConnId,
        (offset, selection, rev): (i64, i64, Option<u64>),
        now: Instant,
    ) -> Vec<Delivery> {
        let Some(computer) = self.editor(conn).map(|e| e.computer.clone()) else {
            return Vec::new();
        };
        let Some(document) = self.documents.get(&computer) else {
            return Vec::new();
        };
        let cursor = match rev {
            None => document.text.clamp(offset, selection),
            Some(rev) => match document.text.cursor_at(Base::Rev(rev), offset, selection) {
                Ok(cursor) => cursor,
                Err(_) => return self.sync(conn, now),
            },
        };
        let to: Vec<ConnId> = document.editors.iter().copied().collect();
        let Some(editor) = self.editor_mut(conn) else {
            return Vec::new();
        };
        editor.cursor = cursor;
        let moved = DocumentEvent::Move {
            actioner: editor.user.clone(),
            offset: cursor.offset,
            selection: cursor.selection,
        };
        vec![Delivery {
            to,
            event: Event::Document(moved),
        }]
    }

    /// `write`: applied to the text (clamped), the writer's cursor placed
    /// as the protocol says, the others' shifted, and the edit as applied
    /// sent to every editor, the writer included, in the router's order.
    /// A write that names a revision the document cannot place (in the
    /// future, or older than the writes kept) is not applied: the writer
    /// gets a `sync` instead.
    fn write(
        &mut self,
        conn: ConnId,
        write: (i64, i64, &str, Option<u64>),
        now: Instant,
    ) -> Vec<Delivery> {
        let Some(editor) = self.editor(conn).cloned() else {
            return Vec::new();
        };
        let (offset, selection, text, rev) = write;
        let base = rev.map_or(Base::Literal, Base::Rev);
        let write = (offset, selection, text, base);
        match self.apply_write(
            &editor.computer,
            (Writer::Here(conn), None),
            editor.user,
            write,
            now,
        ) {
            Ok(Some(out)) => out,
            Ok(None) => self.evict(conn, too_large(&self.settings)),
            Err(Stale::Future | Stale::TooOld) => self.sync(conn, now),
        }
    }

    /// Applies `(offset, selection, text)` by `user`, made on `base`, to
    /// `computer`'s text, marked `mark` (a stream entry's number, in a
    /// cluster): the writer's cursor goes past the text, the others' shift,
    /// and every editor here is told. `Ok(None)` if the text would grow
    /// past the limit (a document loaded over the limit may still shrink).
    fn apply_write(
        &mut self,
        computer: &str,
        (writer, mark): (Writer, Option<u64>),
        user: String,
        (offset, selection, text, base): (i64, i64, &str, Base),
        now: Instant,
    ) -> Result<Option<Vec<Delivery>>, Stale> {
        let limit = self.settings.max_document_bytes;
        let Some(document) = self.documents.get_mut(computer) else {
            return Ok(Some(Vec::new()));
        };
        let placed = document.text.place(base, offset, selection, text)?;
        let after = document.text.bytes_after(&placed);
        if after > limit && after > document.text.as_str().len() {
            return Ok(None);
        }
        let applied = document.text.commit(placed, mark);
        let rev = document.text.rev();
        document.version += 1;
        for remote in document.remote_cursors.values_mut() {
            remote.cursor = shift(remote.cursor, &applied);
        }
        if writer == Writer::OtherNode {
            document.place_remote(&user, applied.cursor);
        }
        let editors: Vec<ConnId> = document.editors.iter().copied().collect();
        self.schedule_save(computer, now);
        for &other in &editors {
            if let Some(e) = self.editor_mut(other) {
                e.cursor = match writer == Writer::Here(other) {
                    true => applied.cursor,
                    false => shift(e.cursor, &applied),
                };
            }
        }
        let written = DocumentEvent::Write {
            actioner: user,
            offset: applied.offset,
            selection: applied.selection,
            text: applied.text,
            rev,
        };
        Ok(Some(vec![Delivery {
            to: editors,
            event: Event::Document(written),
        }]))
    }

    /// The operator closes `computer`'s room: every editor is disconnected.
    /// Returns how many were.
    pub(super) fn close_room(&mut self, computer: &str) -> (usize, Vec<Delivery>) {
        let editors: Vec<ConnId> = self
            .documents
            .get(computer)
            .map(|d| d.editors.iter().copied().collect())
            .unwrap_or_default();
        let out = editors
            .iter()
            .flat_map(|&conn| self.evict(conn, Disconnect::RoomClosed))
            .collect();
        (editors.len(), out)
    }

    /// `conn` leaves its document: the others get `usrupd` (unless the
    /// same user is still there on another connection); when the last one
    /// is out, the document is saved, and dropped from memory a while later.
    pub(super) fn leave_document(&mut self, conn: ConnId, now: Instant) -> Vec<Delivery> {
        let Some(editor) = self.editor(conn).cloned() else {
            return Vec::new();
        };
        if let Some(expires) = editor.expires {
            self.timers.cancel(expires, Timer::TokenExpiry(conn));
        }
        let Some(document) = self.documents.get_mut(&editor.computer) else {
            return Vec::new();
        };
        document.editors.remove(&conn);
        if conn.is_shadow() {
            document.remote_left(&editor.user);
        }
        let to: Vec<ConnId> = document.editors.iter().copied().collect();
        if to.is_empty() {
            self.save(&editor.computer, now);
        }
        if self.user_in_room(&editor.computer, &editor.user) {
            return Vec::new();
        }
        let left = DocumentEvent::UserUpdate {
            actioner: editor.user,
            joined: false,
        };
        vec![Delivery {
            to,
            event: Event::Document(left),
        }]
    }

    /// Whether `user` has a connection editing `computer`'s document, on
    /// this node or (in a cluster) another.
    pub(super) fn user_in_room(&self, computer: &str, user: &str) -> bool {
        self.documents.get(computer).is_some_and(|d| {
            d.remote_cursors.contains_key(user)
                || d.editors
                    .iter()
                    .any(|&c| self.editor(c).is_some_and(|e| e.user == user))
        })
    }

    fn editor(&self, conn: ConnId) -> Option<&Editor> {
        match &self.member(conn)?.kind {
            Kind::Blazing(editor) => Some(editor),
            _ => None,
        }
    }

    fn editor_mut(&mut self, conn: ConnId) -> Option<&mut Editor> {
        match &mut self.member_mut(conn)?.kind {
            Kind::Blazing(editor) => Some(editor),
            _ => None,
        }
    }
}

/// Why a writer is closed when its write would make the document too large.
fn too_large(settings: &super::Settings) -> Disconnect {
    Disconnect::DocumentTooLarge(settings.max_document_bytes)
}
