//! Concurrent writes to one text, transformed so that every copy converges
//! and nobody's typing is lost (operational transformation, as in Jupiter
//! and ot.js, for blazing's one kind of edit: replace a range by a text).
//!
//! Two clients each write on the same revision of a text; the server
//! applies one (the *earlier*) and then must apply the other (the *later*)
//! on a text that has changed under it. [`transform`] gives both sides'
//! fix: the later write as it applies after the earlier one, and the
//! earlier write as it applies after the later one (for the client that
//! already applied its own). Both orders reach the same text:
//!
//! ```text
//! apply(apply(S, earlier), later')  ==  apply(apply(S, later), earlier')
//! ```
//!
//! The rules, with positions counted in Unicode scalar values on the text
//! both writes were made on:
//! - **Apart**: a write entirely before the other is unchanged; one after
//!   it shifts by the other's change in length.
//! - **Deletions overlap**: what both delete is deleted once; each deletes
//!   what is left of its own range.
//! - **Typed inside a deleted range**: a text whose position lies strictly
//!   inside the range the other write deletes goes with that range: the
//!   person who deleted it never saw it. (Keeping it would need a write
//!   that deletes two separate ranges, which blazing's `write` cannot say.)
//! - **Same position**: both texts stay, side by side. The text of the
//!   write that deletes less comes first, so that each side's fix is one
//!   range; when they delete as much, the earlier write's text comes first.
//!
//! So every text written appears exactly once in the result, unless it was
//! typed strictly inside a range the other write deleted; and what either
//! write deleted is gone.

/// A write as applied to a text: the characters `[start, end)` replaced by
/// `text`. Positions count Unicode scalar values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The first replaced character.
    pub start: usize,
    /// One past the last replaced character (`start` for an insert).
    pub end: usize,
    /// What replaces them.
    pub text: String,
}

impl Op {
    /// Replaces `[start, end)` by `text`.
    pub fn new(start: usize, end: usize, text: impl Into<String>) -> Op {
        Op {
            start,
            end: end.max(start),
            text: text.into(),
        }
    }

    /// The length of its text, in characters.
    pub fn written(&self) -> usize {
        self.text.chars().count()
    }

    /// How much longer (or shorter) the text is after it.
    pub fn growth(&self) -> isize {
        self.written() as isize - (self.end - self.start) as isize
    }

    /// Where a position after the whole op goes (`p` ≥ `end`).
    fn after(&self, p: usize) -> usize {
        (p as isize + self.growth()) as usize
    }
}

/// Transforms two concurrent writes made on the same text, `earlier`
/// applied first in the server's order: returns `(later', earlier')`,
/// `later'` to apply after `earlier`, `earlier'` to apply after `later`.
pub fn transform(later: &Op, earlier: &Op) -> (Op, Op) {
    let (x, y) = (later, earlier);
    let (xs, xe, ys, ye) = (x.start, x.end, y.start, y.end);
    let (xl, yl) = (x.written(), y.written());
    if xs < ys && ys < xe {
        // The earlier text was typed inside what the later write deletes:
        // it goes with that range.
        let later = Op::new(xs, y.after(xe.max(ye)), x.text.clone());
        let earlier = Op::new(xs + xl, xs + xl + ye.saturating_sub(xe), "");
        (later, earlier)
    } else if ys < xs && xs < ye {
        // The later text was typed inside what the earlier write deletes.
        let later = Op::new(ys + yl, ys + yl + xe.saturating_sub(ye), "");
        let earlier = Op::new(ys, x.after(xe.max(ye)), y.text.clone());
        (later, earlier)
    } else if xs == ys && xe > ye {
        // One position, the later write deleting more: the earlier text,
        // then the later one.
        let later = Op::new(ys + yl, ys + yl + (xe - ye), x.text.clone());
        (later, Op::new(ys, ys, y.text.clone()))
    } else if xs == ys {
        // One position, the earlier write deleting as much or more: the
        // later text comes first only if the earlier one deletes more.
        let later = match ye > xe {
            true => Op::new(ys, ys, x.text.clone()),
            false => Op::new(ys + yl, ys + yl, x.text.clone()),
        };
        let earlier = match ye > xe {
            true => Op::new(ys + xl, ys + xl + (ye - xe), y.text.clone()),
            false => Op::new(ys, ys, y.text.clone()),
        };
        (later, earlier)
    } else if xe <= ys {
        // The later write lies before the earlier one.
        let earlier = Op::new(x.after(ys), x.after(ye), y.text.clone());
        (x.clone(), earlier)
    } else {
        // The earlier write lies before the later one (`ye <= xs`).
        let later = Op::new(y.after(xs), y.after(xe), x.text.clone());
        (later, y.clone())
    }
}

/// `text` with `op` applied (positions clamped): what a client does.
#[cfg(test)]
pub fn apply(text: &str, op: &Op) -> String {
    let chars: Vec<char> = text.chars().collect();
    let end = op.end.min(chars.len());
    let start = op.start.min(end);
    let mut out: String = chars[..start].iter().collect();
    out.push_str(&op.text);
    out.extend(&chars[end..]);
    out
}

/// The one write that turns `before` into `after`: their common prefix and
/// suffix stay, the middle is replaced (how a client turns what its user
/// typed into a write).
#[cfg(test)]
pub fn diff(before: &str, after: &str) -> Op {
    let (b, a): (Vec<char>, Vec<char>) = (before.chars().collect(), after.chars().collect());
    let prefix = b.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let room = b.len().min(a.len()) - prefix;
    let suffix = b
        .iter()
        .rev()
        .zip(a.iter().rev())
        .take(room)
        .take_while(|(x, y)| x == y)
        .count();
    let text: String = a[prefix..a.len() - suffix].iter().collect();
    Op::new(prefix, b.len() - suffix, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Both orders, and the text they agree on.
    fn both(s: &str, later: Op, earlier: Op) -> String {
        let (later2, earlier2) = transform(&later, &earlier);
        let server = apply(&apply(s, &earlier), &later2);
        let client = apply(&apply(s, &later), &earlier2);
        assert_eq!(server, client, "{later:?} after {earlier:?} on {s:?}");
        server
    }

    #[test]
    fn writes_apart_shift_by_the_others_growth() {
        let s = "hello world";
        assert_eq!(
            both(s, Op::new(0, 5, "HOWDY"), Op::new(6, 11, "all")),
            "HOWDY all"
        );
        assert_eq!(
            both(s, Op::new(11, 11, "!"), Op::new(0, 0, ">> ")),
            ">> hello world!"
        );
    }

    #[test]
    fn overlapping_deletions_delete_once() {
        let s = "abcdefgh";
        assert_eq!(both(s, Op::new(2, 6, ""), Op::new(4, 8, "")), "ab");
        // X's text was to go at 4, which Y deleted: it goes with it.
        assert_eq!(both(s, Op::new(4, 8, "X"), Op::new(2, 6, "Y")), "abY");
        assert_eq!(both(s, Op::new(2, 6, "Y"), Op::new(4, 8, "X")), "abY");
        assert_eq!(both(s, Op::new(0, 8, ""), Op::new(2, 4, "")), "");
    }

    #[test]
    fn text_typed_strictly_inside_a_deleted_range_goes_with_it() {
        // Ann types "cat" inside "quick brown" while Bob replaces it by "slow".
        let s = "the quick brown fox";
        let bob = Op::new(4, 15, "slow");
        let ann = Op::new(10, 10, "cat ");
        assert_eq!(both(s, bob.clone(), ann.clone()), "the slow fox");
        assert_eq!(both(s, ann, bob), "the slow fox");
        // At the edge of the range it stays.
        assert_eq!(
            both(s, Op::new(4, 15, "slow"), Op::new(15, 15, "!")),
            "the slow! fox"
        );
        assert_eq!(
            both(s, Op::new(4, 15, "slow"), Op::new(4, 4, "A ")),
            "the A slow fox"
        );
    }

    #[test]
    fn at_one_position_both_texts_stay_the_shorter_deletion_first() {
        assert_eq!(both("ab", Op::new(1, 1, "L"), Op::new(1, 1, "E")), "aELb");
        assert_eq!(both("abcd", Op::new(1, 3, "L"), Op::new(1, 1, "E")), "aELd");
        assert_eq!(both("abcd", Op::new(1, 1, "L"), Op::new(1, 3, "E")), "aLEd");
        assert_eq!(both("abcd", Op::new(1, 2, "L"), Op::new(1, 4, "E")), "aLE");
        assert_eq!(both("abcd", Op::new(1, 3, "L"), Op::new(1, 3, "E")), "aELd");
    }

    #[test]
    fn positions_count_characters() {
        let s = "é𝐀🦀λ";
        assert_eq!(both(s, Op::new(1, 2, "x"), Op::new(3, 4, "y")), "éx🦀y");
        assert_eq!(diff("é𝐀🦀", "é🦀🦀"), Op::new(1, 2, "🦀"));
    }

    #[test]
    fn diff_gives_the_one_write_between_two_texts() {
        assert_eq!(diff("hello", "help"), Op::new(3, 5, "p"));
        assert_eq!(diff("aa", "aaa"), Op::new(2, 2, "a"));
        assert_eq!(diff("same", "same"), Op::new(4, 4, ""));
        assert_eq!(diff("", "new"), Op::new(0, 0, "new"));
        for (a, b) in [("abc", "xbz"), ("aaaa", "a"), ("x", "")] {
            assert_eq!(apply(a, &diff(a, b)), b);
        }
    }

    /// A base text of letters, and writes whose texts use letters of their
    /// own, so each write's text can be found in the result.
    fn base() -> impl Strategy<Value = String> {
        "[abé]{0,12}"
    }

    fn op_on(len: usize, alphabet: &'static str) -> impl Strategy<Value = Op> {
        (
            0..=len,
            0..=len,
            prop::collection::vec(
                prop::sample::select(alphabet.chars().collect::<Vec<_>>()),
                0..4,
            ),
        )
            .prop_map(|(a, b, text)| {
                Op::new(a.min(b), a.max(b), text.into_iter().collect::<String>())
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn both_orders_converge_and_keep_both_texts(
            (s, later, earlier) in base().prop_flat_map(|s| {
                let n = s.chars().count();
                (Just(s), op_on(n, "XYZ"), op_on(n, "λ𝐀🦀"))
            })
        ) {
            let result = both(&s, later.clone(), earlier.clone());
            let count = |set: &str| result.chars().filter(|c| set.contains(*c)).count();
            // A text survives unless typed strictly inside the other's
            // deleted range; then none of it does.
            let inside = |op: &Op, other: &Op| other.start < op.start && op.start < other.end;
            let later_kept = !inside(&later, &earlier);
            let earlier_kept = !inside(&earlier, &later);
            prop_assert_eq!(count("XYZ"), if later_kept { later.written() } else { 0 });
            prop_assert_eq!(count("λ𝐀🦀"), if earlier_kept { earlier.written() } else { 0 });
            if later_kept {
                prop_assert!(result.contains(&later.text), "{:?} lost {:?}", result, later.text);
            }
            if earlier_kept {
                prop_assert!(result.contains(&earlier.text), "{:?} lost {:?}", result, earlier.text);
            }
            // What either deleted is gone, what neither touched stays.
            let kept = s.chars().enumerate().filter(|&(i, _)| {
                !(later.start..later.end).contains(&i) && !(earlier.start..earlier.end).contains(&i)
            }).count();
            prop_assert_eq!(count("abé"), kept);
        }
    }
}
