//! A shared text document (blazing): the text, each user's cursor, and
//! edits that keep both consistent.
//!
//! Offsets count Unicode scalar values (Rust `char`s), so a multi-byte
//! character such as `é`, `中` or `🦀` is one position and the text can
//! never be split inside one. Offsets and selections out of range are
//! clamped to the text, never refused and never a panic.

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

/// The text of a document, with char-based editing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text {
    text: String,
    /// Its length in chars, kept so clamping is cheap.
    chars: usize,
}

impl Text {
    /// A document holding `text`.
    pub fn new(text: String) -> Text {
        let chars = text.chars().count();
        Text { text, chars }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `cursor` clamped to the text.
    pub fn clamp(&self, offset: i64, selection: i64) -> Cursor {
        let offset = offset.clamp(0, self.chars as i64);
        let end = offset.saturating_add(selection).clamp(0, self.chars as i64);
        Cursor {
            offset: offset as usize,
            selection: end - offset,
        }
    }

    /// Writes `text` at `offset`: inserts it (`selection` 0) or replaces the
    /// selected characters (to the left when negative). The writer's cursor
    /// ends after the text, or before it for a selection to the left, as
    /// the protocol document describes.
    pub fn write(&mut self, offset: i64, selection: i64, text: &str) -> Applied {
        let Cursor { offset, selection } = self.clamp(offset, selection);
        let (start, end) = range(offset, selection);
        let from = self.byte_index(start);
        let to = self.byte_index(end);
        self.text.replace_range(from..to, text);
        let written = text.chars().count();
        self.chars = self.chars - (end - start) + written;
        let cursor_at = if selection < 0 {
            start
        } else {
            start + written
        };
        Applied {
            offset,
            selection,
            text: text.to_string(),
            cursor: Cursor {
                offset: cursor_at,
                selection: 0,
            },
        }
    }

    /// How many bytes the text would have after `write(offset, selection,
    /// text)`, without writing.
    pub fn bytes_after(&self, offset: i64, selection: i64, text: &str) -> usize {
        let Cursor { offset, selection } = self.clamp(offset, selection);
        let (start, end) = range(offset, selection);
        self.text.len() - (self.byte_index(end) - self.byte_index(start)) + text.len()
    }

    fn byte_index(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(index, _)| index)
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
    let head = map((cursor.offset as i64 + cursor.selection).max(0) as usize);
    Cursor {
        offset: anchor,
        selection: head as i64 - anchor as i64,
    }
}

/// The character range `[start, end)` a clamped cursor covers.
fn range(offset: usize, selection: i64) -> (usize, usize) {
    let other = (offset as i64 + selection) as usize;
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
