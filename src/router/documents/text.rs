//! A shared text document (blazing): the text, each user's cursor, and
//! edits that keep both consistent.
//!
//! The text counts the writes applied to it (its revision) and keeps the
//! last ones, so that a write made on an older revision is transformed
//! against those applied since ([`super::transform`]) before it is applied: two
//! people typing at once both keep their text. A write without a revision
//! applies at its literal offsets, as the protocol document says.
//!
//! Offsets count Unicode scalar values (Rust `char`s), so a multi-byte
//! character such as `é`, `中` or `🦀` is one position and the text can
//! never be split inside one. Offsets and selections out of range are
//! clamped to the text, never refused and never a panic.

use std::collections::VecDeque;

use super::transform::{self, Op};

/// A cursor: a position and a selection, to the left (negative) or right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    /// Characters before the cursor.
    pub offset: usize,
    /// Characters selected from `offset`: negative to the left.
    pub selection: i64,
}

/// An edit as applied, with everything clamped to the text: replaying it
/// on the same text gives the same result without clamping again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Where the edit was made (the cursor's offset).
    pub offset: usize,
    /// The replaced range from `offset`: negative to the left, 0 inserts.
    pub selection: i64,
    /// The text written.
    pub text: String,
    /// The writer's cursor afterwards.
    pub cursor: Cursor,
}

/// The writes kept for transforming late ones: at most this many...
pub const HISTORY_WRITES: usize = 1000;
/// ...and at most this many bytes of written text.
pub const HISTORY_BYTES: usize = 1 << 20;

/// The text of a document, with char-based editing and revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    text: String,
    /// Its length in chars, kept so clamping is cheap.
    chars: usize,
    /// Writes applied since the text was loaded.
    rev: u64,
    /// The last writes applied: the one at index `i` produced revision
    /// `rev - len + i + 1`.
    history: VecDeque<Kept>,
    /// Bytes of written text in `history`.
    history_bytes: usize,
    /// Writes marked at or below this are no longer kept (see [`Base`]).
    floor: u64,
}

/// A write kept for transforming later ones.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    op: Op,
    /// The text's length before it.
    before: usize,
    /// Its place in the order writes are applied in: its revision on one
    /// node, its entry's number in the document's stream in a cluster.
    mark: u64,
}

/// What a write's offsets refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The text as it is, as the protocol document says.
    Literal,
    /// The text at this revision (the client's `rev`).
    Rev(u64),
    /// The text after every write marked up to this (in a cluster: the
    /// entry of the document's stream the writing node had applied).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // only clusters mark
    Mark(u64),
}

/// A write placed on the text as it is now (see [`Text::place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The range it replaces now, and its text.
    op: Op,
    /// How the write is told to the editors: its literal (clamped) cursor,
    /// or, for a write that named a revision, the range it replaced.
    echo: Cursor,
    /// The length of the writer's own text (the op's may carry others'
    /// text typed inside the range it replaced).
    written: usize,
    /// Whether the writer selected to the left (its cursor ends before its
    /// text).
    left: bool,
}

impl Placed {
    /// The range it replaces now, and its text.
    pub fn op(&self) -> &Op {
        &self.op
    }
}

/// Why a write or move that names a revision cannot be placed: the client
/// needs a `sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// A revision this text has not reached.
    Future,
    /// A revision older than the writes kept.
    TooOld,
}

impl Text {
    /// A document holding `text`, at revision 0.
    pub fn new(text: String) -> Text {
        let chars = text.chars().count();
        Text {
            text,
            chars,
            ..Text::default()
        }
    }

    /// Writes applied since it was loaded.
    pub fn rev(&self) -> u64 {
        self.rev
    }

    /// The oldest revision a write may name.
    fn oldest(&self) -> u64 {
        self.rev - self.history.len() as u64
    }

    /// How many kept writes came at or before `base` (the others were
    /// applied after it).
    fn applied_at(&self, base: Base) -> Result<usize, Stale> {
        match base {
            Base::Literal => Ok(self.history.len()),
            Base::Rev(rev) if rev > self.rev => Err(Stale::Future),
            Base::Rev(rev) if rev < self.oldest() => Err(Stale::TooOld),
            Base::Rev(rev) => usize::try_from(rev - self.oldest()).map_err(|_| Stale::TooOld),
            Base::Mark(mark) if mark < self.floor => Err(Stale::TooOld),
            Base::Mark(mark) => Ok(self.history.partition_point(|kept| kept.mark <= mark)),
        }
    }

    /// The writes applied after `base`, and the text's length at it.
    fn since(&self, base: Base) -> Result<(impl Iterator<Item = &Op>, usize), Stale> {
        let skip = self.applied_at(base)?;
        let length = self
            .history
            .get(skip)
            .map_or(self.chars, |kept| kept.before);
        Ok((self.history.iter().skip(skip).map(|kept| &kept.op), length))
    }

    /// Forgets the writes kept: the text is a new base, whose last write
    /// (in a cluster) was marked `mark`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // only clusters rebase
    pub fn rebase(&mut self, mark: u64) {
        self.history.clear();
        self.history_bytes = 0;
        self.floor = mark;
    }

    /// Places a write made on `base`: clamped to the text as it was there,
    /// transformed against every write applied since. A literal write
    /// applies at its offsets on the text as it is, as the protocol
    /// document says.
    pub fn place(
        &self,
        base: Base,
        offset: i64,
        selection: i64,
        text: &str,
    ) -> Result<Placed, Stale> {
        if base == Base::Literal {
            return Ok(self.place_literally(offset, selection, text));
        }
        let (since, length) = self.since(base)?;
        let cursor = clamp(length, offset, selection);
        let (start, end) = range(cursor.offset, cursor.selection);
        let op = since.fold(Op::new(start, end, text), |op, earlier| {
            transform::transform(&op, earlier).0
        });
        Ok(Placed {
            echo: Cursor {
                offset: op.start,
                selection: (op.end - op.start) as i64,
            },
            op,
            written: text.chars().count(),
            left: selection < 0,
        })
    }

    fn place_literally(&self, offset: i64, selection: i64, text: &str) -> Placed {
        let echo = self.clamp(offset, selection);
        let (start, end) = range(echo.offset, echo.selection);
        Placed {
            op: Op::new(start, end, text),
            echo,
            written: text.chars().count(),
            left: echo.selection < 0,
        }
    }

    /// Applies a placed write, marked `mark` (its stream entry's number in a
    /// cluster; `None`: its revision). Its writer's cursor ends after its
    /// own text, or before it for a selection to the left, as the document
    /// says.
    pub fn commit(&mut self, placed: Placed, mark: Option<u64>) -> Applied {
        let Placed {
            op,
            echo,
            written,
            left,
        } = placed;
        let cursor_at = match left {
            true => op.start,
            false => op.start + written,
        };
        let text = op.text.clone();
        self.apply(op, mark.unwrap_or(self.rev + 1));
        Applied {
            offset: echo.offset,
            selection: echo.selection,
            text,
            cursor: Cursor {
                offset: cursor_at,
                selection: 0,
            },
        }
    }

    /// How many bytes the text would have after `placed`, without it.
    pub fn bytes_after(&self, placed: &Placed) -> usize {
        let (from, to) = (
            self.byte_index(placed.op.start),
            self.byte_index(placed.op.end),
        );
        self.text.len() - (to - from) + placed.op.text.len()
    }

    /// A cursor placed on `base`, where it is now.
    pub fn cursor_at(&self, base: Base, offset: i64, selection: i64) -> Result<Cursor, Stale> {
        let (since, length) = self.since(base)?;
        let cursor = clamp(length, offset, selection);
        Ok(since.fold(cursor, |cursor, op| shift(cursor, &Applied::from(op))))
    }

    /// Applies a write already clamped and transformed, and keeps it.
    fn apply(&mut self, op: Op, mark: u64) {
        let from = self.byte_index(op.start);
        let to = self.byte_index(op.end);
        self.text.replace_range(from..to, &op.text);
        let before = self.chars;
        self.chars = self.chars - (op.end - op.start) + op.written();
        self.rev += 1;
        self.history_bytes += op.text.len();
        self.history.push_back(Kept { op, before, mark });
        while self.history.len() > HISTORY_WRITES || self.history_bytes > HISTORY_BYTES {
            match self.history.pop_front() {
                Some(old) => {
                    self.history_bytes -= old.op.text.len();
                    self.floor = old.mark;
                }
                None => break,
            }
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `cursor` clamped to the text.
    pub fn clamp(&self, offset: i64, selection: i64) -> Cursor {
        clamp(self.chars, offset, selection)
    }

    /// Writes `text` at `offset`, as the protocol document says: inserts it
    /// (`selection` 0) or replaces the selected characters (to the left
    /// when negative). The writer's cursor ends after the text, or before
    /// it for a selection to the left.
    #[cfg(test)]
    pub fn write(&mut self, offset: i64, selection: i64, text: &str) -> Applied {
        let placed = self.place_literally(offset, selection, text);
        self.commit(placed, None)
    }

    fn byte_index(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(index, _)| index)
    }
}

/// A cursor at `offset`, selecting `selection`, clamped to a text of
/// `chars` characters.
fn clamp(chars: usize, offset: i64, selection: i64) -> Cursor {
    let offset = offset.clamp(0, chars as i64);
    let end = offset.saturating_add(selection).clamp(0, chars as i64);
    Cursor {
        offset: usize::try_from(offset).unwrap_or(0), // clamped to 0..=chars
        selection: end - offset,
    }
}

impl From<&Op> for Applied {
    fn from(op: &Op) -> Applied {
        Applied {
            offset: op.start,
            selection: (op.end - op.start) as i64,
            text: op.text.clone(),
            cursor: Cursor::default(),
        }
    }
}

/// Where another user's cursor goes after `edit`: positions before the
/// edit stay, positions after it move by the change in length, positions
/// inside the replaced range move to its start. Both ends of a selection
/// move this way.
pub fn shift(cursor: Cursor, edit: &Applied) -> Cursor {
    let (start, end) = range(edit.offset, edit.selection);
    let written = edit.text.chars().count();
    let map = |position: usize| match position {
        p if p <= start => p,
        p if p >= end => p - (end - start) + written,
        _ => start,
    };
    let anchor = map(cursor.offset);
    let head = map(usize::try_from(cursor.offset as i64 + cursor.selection).unwrap_or(0));
    Cursor {
        offset: anchor,
        selection: head as i64 - anchor as i64,
    }
}

/// The character range `[start, end)` a clamped cursor covers.
fn range(offset: usize, selection: i64) -> (usize, usize) {
    let other = usize::try_from(offset as i64 + selection).unwrap_or(0);
    (offset.min(other), offset.max(other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_and_moves_the_writer_after_the_text() {
        let mut text = Text::new("hello world".into());
        let applied = text.write(5, 0, ",");
        assert_eq!(text.as_str(), "hello, world");
        assert_eq!(
            applied.cursor,
            Cursor {
                offset: 6,
                selection: 0
            }
        );
    }

    #[test]
    fn replaces_right_and_left_selections() {
        let mut text = Text::new("hello world".into());
        let applied = text.write(6, 5, "there");
        assert_eq!(text.as_str(), "hello there");
        assert_eq!(applied.cursor.offset, 11);
        let applied = text.write(11, -5, "you");
        assert_eq!(text.as_str(), "hello you");
        assert_eq!(
            applied.cursor.offset, 6,
            "before the text for a left selection"
        );
    }

    #[test]
    fn clamps_out_of_range_offsets_and_selections() {
        let mut text = Text::new("abc".into());
        let applied = text.write(99, 0, "!");
        assert_eq!((text.as_str(), applied.offset), ("abc!", 3));
        let applied = text.write(-7, 2, "X");
        assert_eq!(
            (text.as_str(), applied.offset, applied.selection),
            ("Xc!", 0, 2)
        );
        let applied = text.write(1, -50, "");
        assert_eq!((text.as_str(), applied.selection), ("c!", -1));
        let applied = text.write(1, i64::MAX, "");
        assert_eq!((text.as_str(), applied.selection), ("c", 1));
        let applied = text.write(i64::MIN, i64::MIN, "z");
        assert_eq!(
            (text.as_str(), applied.offset, applied.selection),
            ("zc", 0, 0)
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let mut text = Text::new("é中🦀".into());
        assert_eq!(text.chars, 3);
        text.write(2, 0, "x");
        assert_eq!(text.as_str(), "é中x🦀");
        text.write(4, -1, "🎉");
        assert_eq!(text.as_str(), "é中x🎉");
        assert_eq!(text.chars, 4);
        assert_eq!(Text::new(text.as_str().into()).chars, text.chars);
    }

    #[test]
    fn replaying_an_applied_edit_gives_the_same_text() {
        let mut server = Text::new("the quick brown fox".into());
        let mut replica = server.clone();
        for (offset, selection, words) in [
            (4, 99, "slow"),
            (-3, 3, "A"),
            (50, -4, "cat"),
            (7, 0, "🦊 "),
        ] {
            let applied = server.write(offset, selection, words);
            replica.write(applied.offset as i64, applied.selection, &applied.text);
            assert_eq!(replica, server);
        }
    }

    #[test]
    fn other_cursors_shift_with_edits() {
        // Where a bare cursor at `offset` lands after `edit`.
        let moved = |offset, edit: &Applied| {
            let cursor = Cursor {
                offset,
                selection: 0,
            };
            shift(cursor, edit).offset
        };
        // "hello world": insert 3 chars at 5.
        let insert = Applied {
            offset: 5,
            selection: 0,
            text: "XYZ".into(),
            cursor: Cursor::default(),
        };
        assert_eq!(moved(2, &insert), 2);
        assert_eq!(moved(5, &insert), 5);
        assert_eq!(moved(8, &insert), 11);
        // Replace [2, 7) by one char.
        let replace = Applied {
            offset: 7,
            selection: -5,
            text: "_".into(),
            cursor: Cursor::default(),
        };
        assert_eq!(moved(4, &replace), 2);
        assert_eq!(moved(9, &replace), 5);
        // A selection spanning the edit shrinks with it.
        assert_eq!(
            shift(
                Cursor {
                    offset: 1,
                    selection: 8
                },
                &replace
            ),
            Cursor {
                offset: 1,
                selection: 4
            }
        );
    }
}

/// What transformation costs: five writers taking turns, each writing on
/// the revision it saw before the other four wrote (so every write is
/// transformed four times), against the same writes without revisions.
/// `cargo test --release --lib transformation_cost -- --ignored --nocapture`
#[cfg(test)]
#[test]
#[ignore = "a measurement, not a check"]
fn transformation_cost() {
    const WRITES: u64 = 200_000;
    let run = |with_rev: bool| {
        let mut text = Text::new("x".repeat(2000));
        let started = std::time::Instant::now();
        for n in 0..WRITES {
            let writer = (n % 5) as i64;
            let base = match with_rev {
                true => Base::Rev(text.rev().saturating_sub(4)),
                false => Base::Literal,
            };
            let placed = text.place(base, writer * 300, 1, "ab").expect("kept");
            text.commit(placed, None);
        }
        WRITES as f64 / started.elapsed().as_secs_f64()
    };
    let (literal, revised) = (run(false), run(true));
    println!("writes/s on one document, 5 writers: without rev {literal:.0}, with rev (4 behind) {revised:.0}");
}
