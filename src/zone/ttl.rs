//! TTLs as master files write them: seconds like "3600", or BIND's units like
//! "1h30m" (RFC 2308 §4's `$TTL` takes the same), capped by RFC 2181 §8: the
//! duration grammar of `crate::units` in whole seconds.

/// Largest TTL: RFC 2181 §8 keeps the top bit clear.
pub const MAX_TTL: u32 = 2_147_483_647;

/// Parses a TTL: seconds like "3600", or BIND units like "1h30m" or "2w"
/// (s, m, h, d, w, in any case). At most 2147483647 (RFC 2181 §8).
pub fn parse_ttl(s: &str) -> Result<u32, super::Invalid> {
    parse_ttl_text(s).map_err(super::Invalid)
}

fn parse_ttl_text(s: &str) -> Result<u32, String> {
    let bad = || {
        format!(
            "TTL {s:?} is not valid: use seconds like 3600, or units like 1h30m (s, m, h, d, w)"
        )
    };
    // Saturating arithmetic: any overflow lands far above MAX_TTL and is refused below.
    let mut total: u64 = 0;
    for t in crate::units::terms(s).ok_or_else(bad)? {
        if !t.number.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let unit = crate::units::whole_seconds(t.unit).ok_or_else(bad)?;
        let n = t.number.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if total > u64::from(MAX_TTL) {
        return Err(format!(
            "TTL {s:?} is above the maximum of {MAX_TTL} seconds (RFC 2181 §8)"
        ));
    }
    u32::try_from(total).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_syntax() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("0"), Ok(0));
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("1H30m"), Ok(5400));
        assert_eq!(parse_ttl("2w"), Ok(1_209_600));
        assert_eq!(parse_ttl("1d12h"), Ok(129_600));
        assert_eq!(
            parse_ttl("1w2d3h4m5s"),
            Ok(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5)
        );
        assert_eq!(parse_ttl("2147483647"), Ok(MAX_TTL));
        for bad in ["", "h", "1x", "1h30", "-1", "+1", "1 h", "1.5h", "١"] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(
                e.0.contains("is not valid: use seconds like 3600"),
                "{bad}: {e}"
            );
        }
        for big in [
            "2147483648",
            "4294967296",
            "99999999999999999999999",
            "3551w",
            "9999999999999w",
        ] {
            assert_eq!(
                parse_ttl(big).unwrap_err().0,
                format!("TTL {big:?} is above the maximum of 2147483647 seconds (RFC 2181 §8)")
            );
        }
    }
}
