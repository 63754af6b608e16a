//! The SOA record's numbers (RFC 1035 §3.3.13) and serial arithmetic (RFC 1982),
//! for secondary zones: when to refresh, retry and expire, and whether a serial
//! is newer.

use super::name::wire_name_len;

/// The five numbers after the SOA's two names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Soa {
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl Soa {
    /// Reads uncompressed SOA RDATA; `None` when it is not one.
    pub fn read(rdata: &[u8]) -> Option<Soa> {
        let m = wire_name_len(rdata)?;
        let r = wire_name_len(rdata.get(m..)?)?;
        let nums = rdata.get(m + r..)?;
        if nums.len() != 20 {
            return None;
        }
        let n = |i: usize| u32::from_be_bytes([nums[i], nums[i + 1], nums[i + 2], nums[i + 3]]);
        Some(Soa {
            serial: n(0),
            refresh: n(4),
            retry: n(8),
            expire: n(12),
            minimum: n(16),
        })
    }
}

/// `a` is newer than `b` in serial number arithmetic (RFC 1982 §3.2): ahead by
/// less than half the circle.
pub(crate) fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_wrap() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 2));
        assert!(!serial_newer(5, 5));
        assert!(serial_newer(0, u32::MAX));
        assert!(!serial_newer(u32::MAX, 0));
    }

    #[test]
    fn reads_soa_numbers() {
        let mut r = b"\x02ns\x00\x02hm\x00".to_vec();
        for v in [7u32, 60, 30, 600, 5] {
            r.extend_from_slice(&v.to_be_bytes());
        }
        let s = Soa::read(&r).unwrap();
        assert_eq!(
            (s.serial, s.refresh, s.retry, s.expire, s.minimum),
            (7, 60, 30, 600, 5)
        );
        assert!(Soa::read(&r[..r.len() - 1]).is_none());
    }
}
