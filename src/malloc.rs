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
            release_startup_code();
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

/// Unmaps the pages of the binary's read-only segments (its code and
/// constants) from this process, once start-up is over. The kernel maps a
/// file's pages 64 KiB around each one touched ("fault-around"), so loading
/// the configuration and the zones, code run once, left 5.8 MiB of an 8.6 MiB
/// text mapped: more than half of a 10,000-record server's memory. The pages
/// stay in the page cache; the ones queries run come back at their first use.
/// Never the writable segment: its relocated pointers (RELRO) are this
/// process's own copy, and dropping them would bring back the file's bytes.
pub fn release_startup_code() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: dl_iterate_phdr calls `each` with program headers the loader
    // keeps for the life of the process; madvise(MADV_DONTNEED) on a private,
    // read-only file mapping only drops page-table entries, and the next
    // access reads the same bytes from the file again.
    unsafe {
        unsafe extern "C" fn each(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            _data: *mut libc::c_void,
        ) -> libc::c_int {
            // SAFETY: the loader passes a valid info for the call's length.
            let info = unsafe { &*info };
            let page = 4096usize;
            for i in 0..usize::from(info.dlpi_phnum) {
                // SAFETY: dlpi_phdr has dlpi_phnum entries.
                let ph = unsafe { &*info.dlpi_phdr.add(i) };
                if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
                    continue;
                }
                let start = (info.dlpi_addr as usize + ph.p_vaddr as usize) & !(page - 1);
                let end = (info.dlpi_addr as usize + (ph.p_vaddr + ph.p_memsz) as usize)
                    .div_ceil(page)
                    * page;
                // SAFETY: the range is one of the executable's own read-only
                // loaded segments (see above).
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
            // The first object is the executable itself: stop there.
            1
        }
        libc::dl_iterate_phdr(Some(each), std::ptr::null_mut());
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

    /// The resident kilobytes of this test binary's code mapping.
    fn code_rss_kib() -> u64 {
        let here = code_rss_kib as *const () as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&here);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(kib) = line.strip_prefix("Rss:") {
                    return kib
                        .trim()
                        .trim_end_matches(" kB")
                        .parse()
                        .expect("a number");
                }
            }
        }
        panic!("no mapping holds this function");
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn start_up_code_pages_are_let_go() {
        // Run some code first: parsing a config maps its pages.
        let _ = crate::config::ServerConfig::parse(
            "listen = [\"127.0.0.1:1\"]\n",
            std::path::Path::new("t.toml"),
        );
        let before = code_rss_kib();
        release_startup_code();
        let after = code_rss_kib();
        assert!(
            before >= 256,
            "the test binary ran from {before} KiB of code"
        );
        assert!(
            after * 2 < before,
            "code mapped {before} KiB before, {after} KiB after"
        );
        // Code still runs: its pages come back from the file.
        assert!(code_rss_kib() > 0);
    }
}
