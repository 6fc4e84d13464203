//! Comparing secrets without leaking them through timing.

/// Whether `offered` equals `expected`, in time that depends only on the
/// length of `expected`: an attacker timing failed attempts learns nothing
/// about how many leading bytes were right.
pub fn secrets_match(offered: &[u8], expected: &[u8]) -> bool {
    let mut difference = offered.len() ^ expected.len();
    for (i, &byte) in expected.iter().enumerate() {
        let other = offered.get(i).copied().unwrap_or(!byte);
        difference |= usize::from(other ^ byte);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::secrets_match;

    #[test]
    fn equal_secrets_match_and_others_do_not() {
        assert!(secrets_match(b"hunter2", b"hunter2"));
        assert!(secrets_match(b"", b""));
        assert!(!secrets_match(b"hunter3", b"hunter2"));
        assert!(!secrets_match(b"hunter", b"hunter2"));
        assert!(!secrets_match(b"hunter22", b"hunter2"));
        assert!(!secrets_match(b"", b"x"));
        assert!(!secrets_match(b"x", b""));
    }
}
