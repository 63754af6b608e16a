//! The one duration grammar, shared by zone TTLs (`$TTL 1h30m`, `ttl = "1m30s"`)
//! and the config's intervals and timeouts (`interval = "1m30s"`): one or more
//! terms of a number and a unit (`ms`, `s`, `m`, `h`, `d`, `w`, in any case), or a
//! bare number, which is seconds. A bare number after a term (`1h30`) could mean
//! seconds or minutes, so it is refused. Names nothing else in the crate.

/// One term of a duration: the number as written and its unit (`""` for a bare
/// number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Term<'a> {
    pub number: &'a str,
    pub unit: &'a str,
}

/// Units and their length in seconds, as a fraction (so that `500ms` is 500 / 1000).
const UNITS: [(&str, f64, f64); 6] = [
    ("ms", 1.0, 1000.0),
    ("s", 1.0, 1.0),
    ("m", 60.0, 1.0),
    ("h", 3600.0, 1.0),
    ("d", 86_400.0, 1.0),
    ("w", 604_800.0, 1.0),
];

/// Splits `s` into terms: `None` for an empty string, a character that is not an
/// ASCII digit, `.` or letter, a unit with no number before it, or a bare number
/// after a term.
pub(crate) fn terms(s: &str) -> Option<Vec<Term<'_>>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mid = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if i < b.len() && i == mid {
            return None;
        }
        if mid == i && !out.is_empty() {
            return None;
        }
        out.push(Term {
            number: &s[start..mid],
            unit: &s[mid..i],
        });
    }
    (!out.is_empty()).then_some(out)
}

fn unit(unit: &str) -> Option<(f64, f64)> {
    if unit.is_empty() {
        return Some((1.0, 1.0));
    }
    UNITS
        .iter()
        .find(|(u, _, _)| u.eq_ignore_ascii_case(unit))
        .map(|&(_, mul, div)| (mul, div))
}

/// `number` of `unit` in seconds (a bare number's `""` is seconds); `None` for an
/// unknown unit.
pub fn seconds(number: f64, unit_name: &str) -> Option<f64> {
    unit(unit_name).map(|(mul, div)| number * mul / div)
}

/// The length of `unit` in whole seconds, for TTLs: `None` for an unknown unit
/// and for `ms`.
pub(crate) fn whole_seconds(unit_name: &str) -> Option<u64> {
    unit(unit_name)
        .filter(|&(_, div)| div == 1.0)
        .map(|(mul, _)| mul as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_terms() {
        let t = |s| terms(s).map(|v| v.iter().map(|t| (t.number, t.unit)).collect::<Vec<_>>());
        assert_eq!(t("1m30s"), Some(vec![("1", "m"), ("30", "s")]));
        assert_eq!(t("500ms"), Some(vec![("500", "ms")]));
        assert_eq!(t("7"), Some(vec![("7", "")]));
        assert_eq!(t("1.5s"), Some(vec![("1.5", "s")]));
        for bad in ["", "h", "1h30", "-1", "+1", "1 h", "١", "m5"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(seconds(2.0, "H"), Some(7200.0));
        assert_eq!(seconds(500.0, "ms"), Some(0.5));
        assert_eq!(seconds(1.0, "x"), None);
        assert_eq!(whole_seconds("w"), Some(604_800));
        assert_eq!(whole_seconds("ms"), None);
    }
}
