//! Hot reload: watch the zones folder, the server config and the geo database's
//! folder; on a change (debounced) or SIGHUP, build a whole new snapshot beside the
//! serving one, and swap it in only if every file loaded. A broken file is logged
//! with file:line, counted, and the old snapshot keeps serving.
//!
//! Editors and geoipupdate replace files by rename, so folders are watched, not
//! files. A file caught half-written fails to parse and is rejected; the write's
//! next event triggers another attempt once it is complete.

pub mod estate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::answer::snapshot::{Snapshot, SnapshotHandle};
use crate::app::{self, CommandLine};
use crate::config::ConfigError;

pub(crate) mod latency;

/// Quiet time after the last file event before a reload starts: an editor's save or
/// a copy of many files is one reload, not many.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(300);

/// Reload outcomes, for metrics and status.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub successes: AtomicU64,
    pub failures: AtomicU64,
    /// Seconds since 1970 of the last success and failure; 0 = never.
    pub last_success: AtomicU64,
    pub last_failure: AtomicU64,
    /// The errors of the last failed reload, for status output.
    pub last_errors: Mutex<Vec<String>>,
}

/// Something that must happen to every new snapshot before it serves (carrying
/// health state over, for one).
pub(crate) type Prepare = Arc<dyn Fn(&mut Snapshot, &Snapshot) + Send + Sync>;

/// What a reload does besides building the snapshot: `prepare` before it
/// serves, and the config's tasks and outputs applied to `estate` after.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) prepare: Option<Prepare>,
    pub(crate) estate: Option<Arc<estate::Estate>>,
}

/// Builds and swaps in a new snapshot, then runs the `hooks`. Returns its
/// generation.
pub(crate) fn reload_now(
    o: &CommandLine,
    handle: &SnapshotHandle,
    stats: &ReloadStats,
    hooks: &Hooks,
    why: &str,
) -> Result<u64, Vec<ConfigError>> {
    let old = handle.load_full();
    let generation = old.generation + 1;
    let mut zones_dir = PathBuf::new();
    let result = app::server_config(o).and_then(|cfg| {
        zones_dir = cfg.zones.clone();
        let running: Vec<_> = old.listen.clone();
        if cfg.listen != running && !running.is_empty() {
            warn!(
                "listen addresses changed in the config; they take effect on restart (serving {:?})",
                running
            );
        }
        app::load_snapshot(&cfg, generation).map(|(s, l)| (s, l, cfg))
    });
    match result {
        Ok((mut snap, loaded, cfg)) => {
            // Before the snapshot serves: its zones read the measured table's
            // columns by the new regions.
            latency::apply(&cfg);
            for w in &loaded.warnings {
                warn!("{w}");
            }
            snap.listen = old.listen.clone();
            if let Some(p) = &hooks.prepare {
                p(&mut snap, &old);
            }
            let (journal, changed) = crate::server::xfr::carry_journal(
                crate::answer::xfr::Source::of(&snap),
                crate::answer::xfr::Source::of(&old),
            );
            snap.journal = Arc::new(journal);
            crate::server::xfr_journal::save(&snap, &zones_dir, Some(&changed));
            let changes = describe_changes(&old, &snap);
            handle.store(Arc::new(snap));
            // After the swap: a secondary that asks at once gets the new serial.
            crate::server::notify::spawn(&handle.load().transfer, &changed);
            if let Some(e) = &hooks.estate {
                e.apply(&cfg);
            }
            // The old snapshot is freed once its last reader lets go, and the
            // pages it held go back to the system, so that reloads do not
            // leave the process at the size of two snapshots.
            let _ = crate::malloc::trim_when_freed(old);
            stats.successes.fetch_add(1, Ordering::Relaxed);
            stats
                .last_success
                .store(crate::clock::unix_now(), Ordering::Relaxed);
            info!(generation, trigger = why, "reloaded: {changes}");
            Ok(generation)
        }
        Err(errors) => {
            for e in &errors {
                error!("reload rejected: {e}");
            }
            warn!(
                trigger = why,
                "reload failed with {} error(s); generation {} keeps serving",
                errors.len(),
                old.generation
            );
            stats.failures.fetch_add(1, Ordering::Relaxed);
            stats
                .last_failure
                .store(crate::clock::unix_now(), Ordering::Relaxed);
            if let Ok(mut l) = stats.last_errors.lock() {
                *l = errors.iter().map(|e| e.to_string()).collect();
            }
            Err(errors)
        }
    }
}

/// One line saying which zones were added, removed or changed serial.
fn describe_changes(old: &Snapshot, new: &Snapshot) -> String {
    let mut parts = Vec::new();
    for z in new.zones.zones() {
        match old.zones.zones().iter().find(|o| o.origin == z.origin) {
            None => parts.push(format!("+{} (serial {})", z.origin, z.serial)),
            Some(o) if o.serial != z.serial => {
                parts.push(format!("{} serial {} -> {}", z.origin, o.serial, z.serial))
            }
            Some(_) => {}
        }
    }
    for o in old.zones.zones() {
        if !new.zones.zones().iter().any(|z| z.origin == o.origin) {
            parts.push(format!("-{}", o.origin));
        }
    }
    let leaf = |s: &Snapshot| s.tls.as_ref().map(|t| t.leaf.clone());
    if leaf(old) != leaf(new) {
        parts.push("TLS certificate replaced".to_string());
    }
    if parts.is_empty() {
        "no zone serial changed".to_string()
    } else {
        parts.join(", ")
    }
}

/// What to watch: folders, and which paths in them matter.
#[derive(Debug, Default, Clone)]
pub(crate) struct WatchSet {
    /// Folders watched as a whole, recursively (the zones folder).
    pub trees: Vec<PathBuf>,
    /// Single files, watched through their folder (editors replace by rename).
    pub files: Vec<PathBuf>,
}

impl WatchSet {
    /// True when a change at `p` may change the configuration.
    pub(crate) fn matters(&self, p: &Path) -> bool {
        self.trees.iter().any(|t| p.starts_with(t)) || self.files.iter().any(|f| f == p)
    }

    fn folders(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut out: Vec<(PathBuf, RecursiveMode)> = self
            .trees
            .iter()
            .map(|t| (t.clone(), RecursiveMode::Recursive))
            .collect();
        for f in &self.files {
            if let Some(d) = f.parent() {
                if !out.iter().any(|(p, _)| p == d) {
                    out.push((d.to_path_buf(), RecursiveMode::NonRecursive));
                }
            }
        }
        out
    }
}

/// Absolute form of a path, so it compares with the paths file events carry.
fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    // A file that does not exist yet: its folder's canonical form plus its name.
    match (p.parent(), p.file_name()) {
        (Some(d), Some(n)) => absolute(d).join(n),
        _ => p.to_path_buf(),
    }
}

/// Folders and files to watch for a configuration.
pub(crate) fn watch_set(o: &CommandLine) -> WatchSet {
    let mut w = WatchSet::default();
    if let Some(c) = &o.config {
        w.files.push(absolute(c));
    }
    let Ok(cfg) = app::server_config(o) else {
        // The config itself is broken: its file is watched, so a fix is noticed.
        return w;
    };
    w.trees.push(absolute(&cfg.zones));
    if let Some(db) = &cfg.geo.database {
        w.files.push(absolute(db));
    }
    // A renewed certificate is a reload like any other (the key may come first).
    if let Some(t) = &cfg.encrypted.tls {
        w.files.push(absolute(&t.cert_file));
        w.files.push(absolute(&t.key_file));
    }
    w
}

/// File watching, set up before the server says it is ready, so no change made
/// after that is missed.
pub struct FileWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::UnboundedReceiver<()>,
}

impl FileWatch {
    /// Starts watching what the configuration reads. Without a watcher (an
    /// unsupported file system), reloads still come from SIGHUP.
    pub fn start(o: &CommandLine) -> FileWatch {
        let (tx, events) = mpsc::unbounded_channel::<()>();
        let set = watch_set(o);
        let filter = set.clone();
        let handler = move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            // Reading files (ours included) raises access and atime events; only
            // content and directory changes of files we read mean anything.
            let relevant = !matches!(
                ev.kind,
                EventKind::Access(_) | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
            ) && ev.paths.iter().any(|p| filter.matters(p));
            if relevant {
                tracing::debug!(kind = ?ev.kind, paths = ?ev.paths, "file event");
                let _ = tx.send(());
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(mut w) => {
                for (p, mode) in set.folders() {
                    if let Err(e) = w.watch(&p, mode) {
                        warn!("cannot watch {}: {e}; reload with SIGHUP", p.display());
                    }
                }
                Some(w)
            }
            Err(e) => {
                warn!("file watching unavailable ({e}); reload with SIGHUP");
                None
            }
        };
        FileWatch {
            _watcher: watcher,
            events,
        }
    }
}

/// How long until a signed zone of `snap` is due to be signed again (at most an
/// hour, so a changed clock is noticed).
fn resign_in(snap: &Snapshot) -> Duration {
    let now = crate::clock::unix_now();
    let due = snap.signers.values().map(|s| s.resign_at).min();
    match due {
        None => Duration::from_secs(3600),
        Some(t) if t > now => Duration::from_secs((t - now).min(3600)),
        Some(_) => Duration::ZERO,
    }
}

/// Reloads on file changes and SIGHUP until `stop` fires, and re-signs signed
/// zones before their signatures expire.
pub(crate) async fn run(
    o: CommandLine,
    mut files: FileWatch,
    handle: SnapshotHandle,
    stats: Arc<ReloadStats>,
    hooks: Hooks,
    mut hup: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let rx = &mut files.events;
    let mut last_resign: Option<std::time::Instant> = None;
    loop {
        let mut resign = resign_in(&handle.load());
        // A re-sign that failed (a bad key file) is tried again a minute later.
        if resign.is_zero() && last_resign.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            resign = Duration::from_secs(60);
        }
        let why = tokio::select! {
            _ = stop.changed() => return,
            Some(()) = hup.recv() => "SIGHUP",
            // Signatures are made again before they expire: a reload signs afresh
            // beside the serving snapshot and swaps (see `dnssec`).
            _ = tokio::time::sleep(resign) => {
                if !resign_in(&handle.load()).is_zero() {
                    continue;
                }
                last_resign = Some(std::time::Instant::now());
                "re-sign"
            }
            Some(()) = rx.recv() => {
                // Debounce: wait until the files have been quiet for a while.
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        more = tokio::time::timeout(DEBOUNCE, rx.recv()) => {
                            if !matches!(more, Ok(Some(()))) {
                                break;
                            }
                        }
                    }
                }
                "file change"
            }
        };
        let o2 = o.clone();
        let h = handle.clone();
        let s = stats.clone();
        let k = hooks.clone();
        // Loading reads files and the geo database: off the runtime's workers.
        let _ = tokio::task::spawn_blocking(move || reload_now(&o2, &h, &s, &k, why)).await;
    }
}
