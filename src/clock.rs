//! Unix time, one way: seconds since 1970 of the system clock (0 for a clock set
//! before 1970), and a coarse monotonic count of seconds. Names nothing else in
//! the crate but `sys`, for the clock call.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch now.
pub(crate) fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

/// Seconds since the Unix epoch of `t`; 0 for a time before it.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whole seconds of a monotonic clock (Linux: `CLOCK_MONOTONIC_COARSE`, the time
/// of the last tick, read without asking the hardware; elsewhere `Instant`'s
/// clock), from an origin of its own: for counting seconds on the query path,
/// where `Instant::now` and its subtraction were about 60 instructions of each
/// signed answer.
pub(crate) fn coarse_secs() -> u64 {
    if let Some(s) = crate::sys::coarse_monotonic_secs() {
        return s;
    }
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
}

#[cfg(test)]
mod tests {
    /// The coarse clock never goes back, and moves on to the next second.
    #[test]
    fn coarse_seconds_move_on() {
        let a = super::coarse_secs();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut last = a;
        while last < a + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the coarse clock stood still"
            );
            let now = super::coarse_secs();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
            std::thread::yield_now();
        }
    }
}
