//! Asking the CPU for memory ahead of its use. The one place in the crate with
//! `unsafe`: the prefetch instruction is an intrinsic that Rust marks unsafe,
//! though it reads nothing the program sees and never faults.
#![allow(unsafe_code)]

/// Starts loading the cache line holding `r`, without waiting for it.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not fault on any address, writes
    // nothing, and what it loads is only cached; the address comes from a live
    // reference besides.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
