//! Response rate limiting for UDP, as in BIND, NSD and Knot: an authoritative
//! server is a reflection amplifier for spoofed queries unless identical responses
//! to one client network are capped.
//!
//! Responses are counted per (client prefix, answer) per second: the prefix is /24
//! for IPv4 and /56 for IPv6; the answer is the query name and type for positive
//! answers, the zone for NXDOMAIN (so random names do not escape the limit), the
//! rcode for errors. Over the rate, responses are dropped, except every `slip`-th,
//! which goes out truncated (TC=1, no records) so a real client behind the
//! network retries over TCP, which cannot be spoofed.
//!
//! The table is a fixed array of atomics shared by every UDP thread: no lock, no
//! allocation, bounded memory whatever arrives. Collisions only ever make two keys
//! share a bucket (stricter), never unlimited.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::geo::cidr::CidrTable;

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Drop,
    /// Send it truncated, with no records.
    Slip,
}

/// Rate-limit settings.
#[derive(Debug, Clone)]
pub struct RrlConfig {
    /// Identical responses per second per client network; 0 turns RRL off.
    pub rate: u32,
    /// Every n-th limited response is sent truncated; 0 never, 1 always.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks never limited.
    pub exempt: Vec<crate::geo::cidr::IpNet>,
    /// Buckets in the table (rounded up to a power of two).
    pub buckets: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            rate: 100,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            buckets: 1 << 16,
        }
    }
}

/// The limiter shared by the UDP threads.
pub struct Rrl {
    cfg: RrlConfig,
    exempt: CidrTable<()>,
    /// Per bucket: tag (16 bits) | second (24 bits) | count (24 bits).
    table: Box<[AtomicU64]>,
    mask: usize,
}

const COUNT_BITS: u32 = 24;
const SECOND_BITS: u32 = 24;

impl Rrl {
    pub fn new(cfg: RrlConfig) -> Rrl {
        let n = cfg.buckets.max(64).next_power_of_two();
        let mut exempt = CidrTable::new();
        for net in &cfg.exempt {
            let _ = exempt.insert(*net, ());
        }
        Rrl {
            table: (0..n).map(|_| AtomicU64::new(0)).collect(),
            mask: n - 1,
            exempt,
            cfg,
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.rate > 0
    }

    /// Decides for one response to `client` whose answer hashes to `answer`, at
    /// `now_secs` (seconds on any monotonic clock).
    pub fn check(&self, client: IpAddr, answer: impl FnOnce() -> u64, now_secs: u64) -> Verdict {
        if self.cfg.rate == 0 || self.exempt.contains(client) {
            return Verdict::Send;
        }
        let answer = answer();
        let key = mix(prefix_of(client, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix) ^ answer);
        let idx = (key as usize) & self.mask;
        let tag = (key >> 48) & 0xffff;
        let second = now_secs & ((1 << SECOND_BITS) - 1);
        let slot = &self.table[idx];
        let mut cur = slot.load(Ordering::Relaxed);
        loop {
            let (t, s, c) = (
                cur >> 48,
                (cur >> COUNT_BITS) & ((1 << SECOND_BITS) - 1),
                cur & ((1 << COUNT_BITS) - 1),
            );
            // A new second, or the bucket belonged to another key: start over.
            let count = if t == tag && s == second { c + 1 } else { 1 };
            let next = (tag << 48) | (second << COUNT_BITS) | count.min((1 << COUNT_BITS) - 1);
            match slot.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    if count <= self.cfg.rate as u64 {
                        return Verdict::Send;
                    }
                    let over = count - self.cfg.rate as u64;
                    return match self.cfg.slip {
                        0 => Verdict::Drop,
                        n if over.is_multiple_of(n as u64) => Verdict::Slip,
                        _ => Verdict::Drop,
                    };
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

fn prefix_of(ip: IpAddr, v4: u8, v6: u8) -> u64 {
    match ip {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if v4 == 0 {
                0
            } else {
                u32::MAX << (32 - v4.min(32) as u32)
            };
            (bits & m) as u64 | (1 << 40)
        }
        IpAddr::V6(a) => {
            if let Some(m4) = a.to_ipv4_mapped() {
                return prefix_of(IpAddr::V4(m4), v4, v6);
            }
            let bits = u128::from(a);
            let m = if v6 == 0 {
                0
            } else {
                u128::MAX << (128 - v6.min(128) as u32)
            };
            let x = bits & m;
            (x >> 64) as u64 ^ (x as u64).rotate_left(29) ^ (2 << 40)
        }
    }
}

/// A stable 64-bit mix (SplitMix64 finalizer).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// "The same answer" for rate limiting, from what a query did and its question
/// section (as the client wrote it): every NXDOMAIN of a zone is one answer (random
/// names must not escape the limit); other errors by rcode; a NOERROR answer by
/// name (any letter case) and type. Computed only for clients that are limited.
pub fn answer_key(o: &crate::metrics::Observed, question: &[u8]) -> u64 {
    match o.rcode {
        0 => {
            let name = &question[..question.len().saturating_sub(4)];
            let mut h = 0xcbf2_9ce4_8422_2325u64 ^ u64::from(o.qtype);
            for &x in name {
                h ^= x.to_ascii_lowercase() as u64;
                h = h.wrapping_mul(0x100_0000_01b3);
            }
            mix(h)
        }
        3 => mix(u64::from(o.zone_slot.unwrap_or(u16::MAX)) | 3 << 32),
        r => mix(u64::from(r) | 7 << 32),
    }
}

/// Rewrites a response into its truncated form: header and question only, TC set.
pub fn slip(out: &mut Vec<u8>, question_len: usize) {
    if out.len() < 12 + question_len {
        return;
    }
    out.truncate(12 + question_len);
    out[2] |= 0x02;
    for b in &mut out[6..12] {
        *b = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            rate,
            slip,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
            buckets: 1024,
            ..RrlConfig::default()
        })
    }

    #[test]
    fn limits_per_second_with_slip() {
        let r = rrl(5, 2);
        let c: IpAddr = "198.51.100.7".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..11).map(|_| r.check(c, || 42, 1000)).collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Send));
        // Over the rate: drop, slip, drop, slip, ...
        assert_eq!(
            &verdicts[5..],
            &[
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
        // The next second starts over.
        assert_eq!(r.check(c, || 42, 1001), Verdict::Send);
    }

    #[test]
    fn same_network_shares_other_networks_and_answers_do_not() {
        let r = rrl(3, 0);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.200".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(r.check(a, || 1, 5), Verdict::Send);
        }
        assert_eq!(
            r.check(b, || 1, 5),
            Verdict::Drop,
            "same /24 shares the limit"
        );
        assert_eq!(
            r.check("203.0.113.1".parse().unwrap(), || 1, 5),
            Verdict::Send
        );
        assert_eq!(
            r.check(a, || 2, 5),
            Verdict::Send,
            "another answer has its own"
        );
    }

    #[test]
    fn exempt_and_off() {
        let r = rrl(1, 0);
        let c: IpAddr = "10.9.1.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(r.check(c, || 1, 5), Verdict::Send);
        }
        let off = rrl(0, 0);
        for _ in 0..10 {
            assert_eq!(
                off.check("198.51.100.1".parse().unwrap(), || 1, 5),
                Verdict::Send
            );
        }
    }

    #[test]
    fn slip_keeps_header_and_question() {
        let mut r = vec![
            0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1, 9, 9, 9,
        ];
        slip(&mut r, 7);
        assert_eq!(r.len(), 19);
        assert_eq!(r[2] & 0x02, 0x02);
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
