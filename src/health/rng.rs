//! A non-cryptographic random source for jitter and DNS query ids, from the
//! `fastrand` crate (already in the build through tempfile, which the
//! etcd client's build uses; no hand-written generator to keep).
//!
//! Jitter only has to keep probes from lining up; a DNS query id only has to tell
//! our replies from stray packets on a connected socket.

use std::time::Duration;

/// A generator of the `fastrand` crate (wyrand), seeded per task.
#[derive(Debug, Clone)]
pub(crate) struct Rng(fastrand::Rng);

impl Rng {
    /// A generator seeded by `fastrand` from the process's random state, so tasks
    /// started in the same instant still differ.
    pub fn new() -> Self {
        Rng(fastrand::Rng::new())
    }

    #[cfg(test)]
    pub fn seeded(seed: u64) -> Self {
        Rng(fastrand::Rng::with_seed(seed))
    }

    #[cfg(test)]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.u64(..)
    }

    pub(crate) fn next_u16(&mut self) -> u16 {
        self.0.u16(..)
    }

    /// A duration uniform in `[0, max]`, to the nanosecond.
    pub fn below(&mut self, max: Duration) -> Duration {
        let Ok(nanos) = u64::try_from(max.as_nanos()) else {
            return max;
        };
        Duration::from_nanos(self.0.u64(0..=nanos))
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
