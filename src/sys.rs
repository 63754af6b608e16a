//! The query path's `unsafe`, in one place: calls into the C library and raw
//! allocations that a measurement asked for, each with what it bought. (The
//! process's memory work, `malloc`, and the batch prefetch,
//! `answer::prefetch`, keep theirs beside what they do.) Names nothing else in
//! the crate.
#![allow(unsafe_code)]

use std::sync::atomic::AtomicU64;

/// Whole seconds of `CLOCK_MONOTONIC_COARSE` (the time of the last tick, read
/// without asking the hardware), or `None` where there is no such clock or it
/// fails: a signed answer counted seconds with `Instant::now` and its
/// subtraction, about 60 instructions of each.
pub(crate) fn coarse_monotonic_secs() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec through the pointer, which
        // points at a live local of that type.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) } == 0 {
            return u64::try_from(ts.tv_sec).ok();
        }
    }
    None
}

/// `n` atomics at 0, from zeroed memory (`calloc`): nothing writes them here,
/// and a block this large comes in fresh pages of its own (glibc maps blocks
/// over its mmap threshold, unless a free block of its heaps fits), so a page
/// takes memory only once something is stored in it. RRL's 65,536 buckets
/// filled in a loop were 512 KiB resident at start, 15% of a 10,000-record
/// server's anonymous memory, though no key had been counted.
pub(crate) fn zeroed_atomics(n: usize) -> Box<[AtomicU64]> {
    let n = n.max(1);
    let Ok(layout) = std::alloc::Layout::array::<AtomicU64>(n) else {
        panic!("{n} atomics do not fit in memory");
    };
    // SAFETY: the layout is not zero-sized (n >= 1). An AtomicU64 has the
    // size, alignment and bit validity of a u64, and all zero bytes are the
    // u64 0, so the block holds n initialized atomics; it was allocated by
    // the global allocator with the layout of [AtomicU64; n], which is how
    // a Box of that slice frees it.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<AtomicU64>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n))
    }
}

/// For tests of the process's memory, which other tests of the same binary
/// disturb (arenas that stay, blocks freed and reused): runs `test` (its full
/// path) alone in a fresh copy of this test binary, with `var` set there so
/// that the copy does the work; its output, stderr with `--nocapture`.
#[cfg(test)]
pub(crate) fn run_test_alone(test: &str, var: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("this test binary");
    std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(var, "1")
        .output()
        .expect("run the test binary")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    /// Zeroed atomics read 0, take stores, and free as a Box of that slice.
    #[test]
    fn zeroed_atomics_are_zero_and_usable() {
        for n in [0, 1, 3, 100_000] {
            let t = super::zeroed_atomics(n);
            assert_eq!(t.len(), n.max(1));
            assert!(t.iter().all(|a| a.load(Relaxed) == 0));
            t[t.len() - 1].store(7, Relaxed);
            assert_eq!(t[t.len() - 1].load(Relaxed), 7);
        }
    }
}
