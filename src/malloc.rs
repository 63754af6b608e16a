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

/// The most arenas (heaps with their own lock) glibc's malloc may make.
/// Its default is one per thread as threads first allocate, up to eight per
/// core, and each keeps its free pages and a free top of up to 128 KiB: a
/// 10,000-record server had one of 180 KiB for a thread that allocates
/// almost nothing while serving. The UDP threads answer from buffers made
/// once (`server::udp`), so sharing costs them no lock per query; two
/// arenas, not one, so that the runtime's threads and a load or a build of
/// the fast table do not all queue on one lock. Measured on a 10,000-record
/// server: 140 KiB less anonymous memory with 2 than with glibc's default,
/// and no less with 1.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Caps the arenas at [`ARENAS`], and fixes glibc's thresholds at their
/// documented defaults, 128 KiB each, for the life of the process: a block that large gets pages of its own, given
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
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
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

/// Unmaps the pages of the read-only segments (code and constants) of the
/// binary and of the libraries it loaded from this process, once start-up
/// is over. The kernel maps a file's pages 64 KiB around each one touched
/// ("fault-around"), so loading the configuration and the zones, code run
/// once, left 5.8 MiB of an 8.6 MiB text mapped: more than half of a
/// 10,000-record server's memory. The libraries' pages were 0.4 MiB of a
/// 10,000-record server's PSS after this had let the binary's go (libm's
/// constants, libc's code, shared with other processes but counted in
/// part). The pages stay in the page cache; the ones queries run come back
/// at their first use. Never a writable segment: its relocated pointers
/// (RELRO) are this process's own copy, and dropping them would bring back
/// the file's bytes. Nor the vDSO, which is the kernel's and no file's.
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
            // SAFETY: dlpi_name is null or a string the loader keeps.
            if !info.dlpi_name.is_null()
                && unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
                    .to_bytes()
                    .starts_with(b"linux-vdso")
            {
                return 0;
            }
            let page = 4096usize;
            for i in 0..usize::from(info.dlpi_phnum) {
                // SAFETY: dlpi_phdr has dlpi_phnum entries.
                let ph = unsafe { &*info.dlpi_phdr.add(i) };
                if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
                    continue;
                }
                // Whole pages inside the segment only: a library laid out
                // without separate pages per segment may share an edge page
                // with its writable segment, and that page must stay.
                let first = info.dlpi_addr as usize + ph.p_vaddr as usize;
                let start = first.div_ceil(page) * page;
                let end = (first + ph.p_memsz as usize) & !(page - 1);
                if end <= start {
                    continue;
                }
                // SAFETY: the range is one of a loaded object's read-only
                // segments, mapped from its file (see above).
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
            // On to the next object.
            0
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

    /// Set by [`threads_share_at_most_two_arenas`] for the copy of this test
    /// binary it runs: tune() there, in a process of its own, before the
    /// threads start.
    const ARENA_CHILD: &str = "SIGNPOST_TEST_ARENA_CHILD";

    /// After [`tune`], eight threads allocating at once share at most two
    /// arenas (glibc's malloc_stats lists one "Arena N:" per arena); glibc's
    /// default is a new arena per thread, up to eight per core. Run in a
    /// fresh process: the arenas of this one's other tests stay for good.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn threads_share_at_most_two_arenas() {
        if std::env::var_os(ARENA_CHILD).is_some() {
            return eight_threads_then_stats();
        }
        let out = crate::sys::run_test_alone(
            "malloc::tests::threads_share_at_most_two_arenas",
            ARENA_CHILD,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let arenas = stderr.lines().filter(|l| l.starts_with("Arena ")).count();
        assert!((1..=2).contains(&arenas), "{arenas} arenas:\n{stderr}");
    }

    #[allow(unsafe_code)]
    fn eight_threads_then_stats() {
        tune();
        let started = Arc::new(std::sync::Barrier::new(8));
        let allocated = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (started, allocated) = (started.clone(), allocated.clone());
                std::thread::spawn(move || {
                    started.wait();
                    let v = std::hint::black_box(vec![1u8; 1000]);
                    // Every thread holds its arena until all have allocated.
                    allocated.wait();
                    drop(v);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("no panic");
        }
        // SAFETY: malloc_stats takes nothing and prints to stderr.
        unsafe { libc::malloc_stats() };
    }

    /// The resident kilobytes of this test binary's code mapping.
    fn code_rss_kib() -> u64 {
        rss_kib_at(code_rss_kib as *const () as usize)
    }

    /// The resident kilobytes of the mapping that holds address `here`.
    fn rss_kib_at(here: usize) -> u64 {
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

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_libraries_code_pages_are_let_go_too() {
        // libm's cube root, called where the loader put it: a call by name
        // here may bind to a copy linked into this binary.
        // SAFETY: dlsym reads the name, a NUL-terminated string.
        let at = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"cbrt".as_ptr()) };
        assert!(!at.is_null(), "cbrt not found");
        // SAFETY: libm's cbrt is `double cbrt(double)`.
        let cbrt: extern "C" fn(f64) -> f64 = unsafe { std::mem::transmute(at) };
        // Another test's release between the call and the first look leaves
        // nothing to see: a few tries.
        let mut seen = Vec::new();
        for _ in 0..5 {
            assert!((cbrt(std::hint::black_box(27.0)) - 3.0).abs() < 1e-9);
            let before = rss_kib_at(at as usize);
            release_startup_code();
            let after = rss_kib_at(at as usize);
            if before >= 4 && after < before {
                return;
            }
            seen.push((before, after));
        }
        panic!("libm's code resident (KiB) before and after each release: {seen:?}");
    }
}
