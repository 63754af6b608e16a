//! The open-file limit (RLIMIT_NOFILE) the server runs under, and the accept loop's
//! answer to running out of descriptors.
//!
//! At start the soft limit is raised to the hard one: the soft limit of a login shell
//! (often 1,024) says nothing about what the host allows a service, and every
//! connection, probe and file costs a descriptor. The connection caps are then fitted
//! under the hard limit (`ServerConfig::fit_descriptors`), so that a full house of
//! connections never takes the descriptors probes and reloads need.
//!
//! When accept fails anyway for lack of a descriptor or of kernel memory (the limit
//! lowered under a running server, descriptors taken by something else), the
//! connection stays in the listen queue and the socket stays readable: retrying at
//! once would spin a core. The accept loop counts the error, logs at most one line
//! a [`WARN_EVERY`], and either has its longest-idle connection close to give back
//! a descriptor, or, with none, sleeps [`ACCEPT_BACKOFF`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an accept loop rests after a failure of ours (no descriptor, no memory).
pub(crate) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// At most one warning this often about failed accepts; the rest are only counted.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// The soft and hard limits on open files at start, and the soft one after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileLimit {
    pub soft_before: u64,
    pub hard: u64,
    pub soft: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (to `fs.nr_open` when the hard
/// limit is unlimited, as Linux refuses more); `None` where the limit cannot be
/// read. A refusal to raise leaves the soft limit as it was, which the caps are
/// then fitted under.
pub(crate) fn raise() -> Option<FileLimit> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let before = getrlimit(Resource::Nofile);
        let soft_before = before.current.unwrap_or(u64::MAX);
        let hard = before.maximum.unwrap_or_else(nr_open);
        let mut soft = soft_before;
        if soft_before < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: before.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                soft = hard;
            }
        }
        Some(FileLimit {
            soft_before,
            hard,
            soft,
        })
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// The limit the server will run under: the hard limit (the soft one is raised to
/// it at start). `signpost check` fits the caps under this, as `serve` does.
pub(crate) fn available() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getrlimit, Resource};
        let l = getrlimit(Resource::Nofile);
        Some(l.maximum.unwrap_or_else(nr_open))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// `fs.nr_open`, the most descriptors a process may have (1,048,576 by default).
#[cfg(target_os = "linux")]
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// True for an accept error that says we lack something (descriptors, buffers,
/// memory), not that the connection was bad: the next accept would fail alike.
pub(crate) fn is_resource_error(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

/// Accepts that failed for lack of a resource of ours, since start.
static ACCEPT_ERRORS: AtomicU64 = AtomicU64::new(0);
/// When the last warning about them was logged, in ms since [`CLOCK`] (+1, so 0 is
/// "never").
static LAST_WARN_MS: AtomicU64 = AtomicU64::new(0);
static CLOCK: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Accepts that failed for lack of a resource since start (the metric
/// `signpost_accept_resource_errors_total`).
pub(crate) fn accept_errors() -> u64 {
    ACCEPT_ERRORS.load(Ordering::Relaxed)
}

/// Counts one failed accept and logs at most one warning a [`WARN_EVERY`].
pub(super) fn accept_failed(transport: &str, e: &io::Error) {
    let n = ACCEPT_ERRORS.fetch_add(1, Ordering::Relaxed) + 1;
    let clock = CLOCK.get_or_init(std::time::Instant::now);
    let now = clock.elapsed().as_millis() as u64 + 1;
    let last = LAST_WARN_MS.load(Ordering::Relaxed);
    if (last == 0 || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64)
        && LAST_WARN_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            transport,
            failed_accepts = n,
            "cannot accept a connection: {e}; closing the longest-idle connection, \
             or pausing accepts for {}ms (raise the open-file limit, LimitNOFILE, or \
             lower the connection caps)",
            ACCEPT_BACKOFF.as_millis()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_are_told_from_bad_connections() {
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::ENFILE
        )));
        assert!(is_resource_error(&io::Error::from_raw_os_error(
            libc::ENOBUFS
        )));
        assert!(!is_resource_error(&io::Error::from_raw_os_error(
            libc::ECONNABORTED
        )));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn raising_ends_at_the_hard_limit() {
        let l = raise().expect("limit");
        assert!(l.soft <= l.hard && l.soft >= l.soft_before);
        assert_eq!(available(), Some(l.hard));
    }
}
