//! A small non-cryptographic random source for jitter and DNS query ids.
//!
//! Jitter only has to keep probes from lining up; a DNS query id only has to tell
//! our replies from stray packets on a connected socket. Neither needs more than
//! xorshift, so no dependency is added for them.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's xorshift
/// generators", 2016).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

static STREAMS: AtomicU64 = AtomicU64::new(0);

impl Rng {
    /// A generator seeded from the process's random hash keys, the clock and a
    /// counter, so tasks started in the same instant still differ.
    pub fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        h.write_u64(STREAMS.fetch_add(1, Ordering::Relaxed));
        Self::seeded(h.finish())
    }

    pub fn seeded(seed: u64) -> Self {
        // The state must never be zero, or it stays zero.
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn next_u16(&mut self) -> u16 {
        // The high bits of xorshift* are the best ones.
        (self.next_u64() >> 48) as u16
    }

    /// A duration uniform in `[0, max]` (to the nanosecond, ignoring the negligible
    /// modulo bias).
    pub fn below(&mut self, max: Duration) -> Duration {
        let Ok(nanos) = u64::try_from(max.as_nanos()) else {
            return max;
        };
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % nanos.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_spreads() {
        let mut r = Rng::seeded(42);
        let max = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..1000).map(|_| r.below(max)).collect();
        assert!(samples.iter().all(|d| *d <= max));
        assert!(samples.iter().any(|d| *d < Duration::from_millis(10)));
        assert!(samples.iter().any(|d| *d > Duration::from_millis(90)));
        assert_eq!(r.below(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn generators_differ() {
        assert_ne!(Rng::new().next_u64(), Rng::new().next_u64());
    }
}
