//! Giving freed memory back to the system after a load.
//!
//! Loading a zone frees as much again as it keeps (parsed records, the fast
//! table's build map, a reload's old snapshot). glibc's malloc keeps freed
//! blocks inside its heaps for reuse and returns only the top of each heap, so
//! a server that has loaded once stays at its load peak: 74 MiB resident for a
//! 100,000-record zone whose data is 42 MB. `malloc_trim(0)` walks every heap
//! and returns each whole free page in it (glibc 2.8 and later), which its
//! tunables (`M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD`) do not do. It is called
//! after the first load and after a reload's old snapshot is gone, never on
//! the query path.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fixes glibc's thresholds at their documented defaults, 128 KiB each, for
/// the life of the process: a block that large gets pages of its own, given
/// back when it is freed, and a heap whose free top passes 128 KiB is cut.
/// Left alone, glibc raises both after the first large block is freed (up to
/// 32 and 64 MiB), and the heaps of the threads that build the fast table
/// keep their free tops, which [`trim`] does not cut (it cuts only the first
/// thread's): a 100,000-record zone served in 47.7 MiB (PSS) with a load peak
/// of 107 MiB, and with this in 34.0 and 78.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and changes only the allocator's
    // own settings; it is called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
    }
}

/// Returns free pages of the allocator's heaps to the system; a no-op where
/// the allocator is not glibc's.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only works on the allocator's
    // own free lists, under the allocator's locks; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long [`trim_when_freed`] waits for the last reader of an old snapshot:
/// readers hold one for a batch of queries or one TCP query, so a snapshot
/// still held after this is kept by something slower (an admin request, a
/// probe round), and its memory is trimmed by the next reload instead.
const WAIT_FOR_READERS: Duration = Duration::from_secs(10);

/// Drops `old` (a snapshot just replaced) once no reader holds it any more,
/// then trims, from a thread of its own so that the reload does not wait.
/// The last reader used to free it wherever it let go; a trim that ran as
/// the count fell to zero could come before the memory was freed (a reload
/// of a 100,000-record zone left 11 MiB behind). Here the thread holds the
/// last reference itself, frees, then trims. The thread's result says
/// whether it trimmed (false: a reader held on past [`WAIT_FOR_READERS`],
/// and frees it when it lets go); `None` when no thread could be started,
/// and then `old` has been let go and what is free already is trimmed.
pub(crate) fn trim_when_freed<T: Send + Sync + 'static>(
    old: Arc<T>,
) -> Option<std::thread::JoinHandle<bool>> {
    let spawned = std::thread::Builder::new()
        .name("signpost-trim".into())
        .spawn(move || {
            let started = Instant::now();
            let mut pause = Duration::from_millis(1);
            while Arc::strong_count(&old) > 1 {
                if started.elapsed() > WAIT_FOR_READERS {
                    return false;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            drop(old);
            trim();
            true
        });
    match spawned {
        Ok(t) => Some(t),
        // The closure, and `old` with it, was dropped with the failed spawn.
        Err(_) => {
            trim();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_after_the_last_reader_lets_go() {
        let old = Arc::new(vec![0u8; 1 << 20]);
        let reader = Arc::clone(&old);
        let weak = Arc::downgrade(&old);
        let t = trim_when_freed(old).expect("a thread");
        // A reader still holds it: the thread is waiting, whatever the timing.
        assert!(!t.is_finished());
        assert!(weak.upgrade().is_some());
        drop(reader);
        assert!(t.join().expect("no panic"), "trimmed once freed");
        // Freed by the thread before it trimmed.
        assert!(weak.upgrade().is_none());
    }
}
