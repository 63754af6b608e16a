//! Secrets compared one way: in time that depends on the lengths only, not on
//! where two byte strings first differ (tokens, cookie hashes). Names nothing
//! else in the crate.

/// Whether `given` equals `want`, compared without an early exit.
pub fn same(given: &[u8], want: &[u8]) -> bool {
    if given.len() != want.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(want)
        .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn whole_strings_only() {
        assert!(same(b"a-long-random-token", b"a-long-random-token"));
        assert!(!same(b"a-long-random-tokeN", b"a-long-random-token"));
        assert!(!same(b"a-long-random-toke", b"a-long-random-token"));
        assert!(!same(b"", b"a-long-random-token"));
        assert!(!same(b"a-long-random-token-", b"a-long-random-token"));
        assert!(same(b"", b""));
    }
}
