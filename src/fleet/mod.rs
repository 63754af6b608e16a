//! The fleet: many instances sharing one view of drains, weights and health on
//! etcd (v3 API), with `[fleet]` in the server config.
//!
//! ```text
//! admin API / ctl ──submit(Op)──> pending ──store task──> etcd put/delete
//! etcd watch (prefix) ──> View ──apply_operator──> health table overrides + weights
//! probes ──> Slot local verdict ──store task──> votes/<me>/<target> (under a lease)
//! View votes + local verdict ──recompute (Quorum)──> the verdict queries read
//! ```
//!
//! Nothing here is on the query path: queries read the same atomics as without
//! a fleet ([`crate::answer::health_view::HealthBridge`], the health table's byte per
//! target); this module only writes them, from its own task. If etcd is slow or
//! gone, the atomics keep the last view; after `fallback` the published verdicts
//! go back to this instance's own probes ([`crate::health::set_fleet_decides`]),
//! and when etcd answers again the task writes what was changed meanwhile (the
//! last change of each key), reads everything afresh, a page at a time, and
//! takes the fleet's verdicts back.
//!
//! What etcd holds is outside input: a value over [`view::MAX_VALUE`] or one
//! that does not parse is counted and changes nothing, and a vote counts only
//! while its instance's lease lives (see [`View`]).
//!
//! Only [`store`] and [`keys`] (the DNSSEC key set every instance signs with,
//! under `dnssec/`) use the etcd client, [`etcd`] (ARCHITECTURE.md: a fleet
//! store's client stays in one module of its own); [`view`] is the pure part.

mod etcd;
pub mod keys;
mod store;
pub mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use thiserror::Error;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::answer::snapshot::{Snapshot, SnapshotHandle};
use crate::config::fleet::FleetConfig;
use crate::health::{self, Health, Override};
use view::{Changed, View};

/// How often own votes are published and verdicts recomputed: well within the
/// second a drain or a verdict has to reach every instance.
const TICK: Duration = Duration::from_millis(100);

#[derive(Debug, Error)]
pub enum FleetError {
    #[error("fleet: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An operator's change, to be written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// `Override::None` deletes the key.
    Override(String, Override),
    /// `None` deletes the key.
    Weight(String, Option<u32>),
    /// `None` deletes the key.
    Dial(String, Option<u8>),
    /// A ramp as stored ([`crate::rollout::Ramp::stored`]); `None` deletes it.
    Ramp(String, Option<String>),
    /// A pushed verdict ([`crate::health::Pushed`]); `None` deletes it.
    Verdict(String, Option<crate::health::Pushed>),
}

impl Op {
    /// The key it writes (below the fleet's prefix) and the value it puts
    /// there; `None` deletes the key.
    fn stored(&self) -> (String, Option<String>) {
        match self {
            Op::Override(name, o) => (
                format!("overrides/{name}"),
                (*o != Override::None).then(|| o.to_string()),
            ),
            Op::Weight(name, w) => (format!("weights/{name}"), w.map(|w| w.to_string())),
            Op::Dial(name, d) => (format!("dials/{name}"), d.map(|d| d.to_string())),
            Op::Ramp(name, r) => (format!("ramps/{name}"), r.clone()),
            Op::Verdict(name, p) => (format!("verdicts/{name}"), p.as_ref().map(|p| p.stored())),
        }
    }

    /// Whether both change the same key in the store.
    fn same_key(&self, other: &Op) -> bool {
        match (self, other) {
            (Op::Override(a, _), Op::Override(b, _))
            | (Op::Weight(a, _), Op::Weight(b, _))
            | (Op::Dial(a, _), Op::Dial(b, _))
            | (Op::Ramp(a, _), Op::Ramp(b, _))
            | (Op::Verdict(a, _), Op::Verdict(b, _)) => a == b,
            _ => false,
        }
    }
}

/// Queues `op`, replacing an unwritten change of the same key: only the last
/// value of a key is written, so the queue holds at most one change per
/// override and weight key (the admin API takes only targets the
/// configuration names), however long etcd is away.
fn enqueue(pending: &mut Vec<Op>, op: Op) {
    pending.retain(|p| !p.same_key(&op));
    pending.push(op);
}

/// Files `[fleet]` names, read once at start so that a typo fails `serve` at once
/// rather than every reconnect.
#[derive(Debug, Clone, Default)]
struct Secrets {
    password: Option<String>,
    ca: Option<Vec<u8>>,
    cert: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
}

/// The fleet's state in this instance, shared by the store task, the admin
/// endpoint (status, metrics, submitted changes) and the fallback watchdog.
pub struct Fleet {
    cfg: FleetConfig,
    secrets: Secrets,
    snap: SnapshotHandle,
    state_file: Option<PathBuf>,
    view: Mutex<View>,
    /// The view was read whole from the store at least once since start.
    synced: AtomicBool,
    connected: AtomicBool,
    /// This instance's own probes decide (the store was gone over `fallback`).
    fallback: AtomicBool,
    bad_keys: AtomicU64,
    store_errors: AtomicU64,
    fallbacks: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Changes made here, not yet written, one per key; oldest first.
    pending: Mutex<Vec<Op>>,
    wake: Notify,
    started: Instant,
    /// Milliseconds after `started` of the store's last answer.
    last_ok_ms: AtomicU64,
    /// This instance's ramps, mirrored from the store's `ramps/`.
    ramps: Arc<crate::rollout::Ramps>,
    /// This instance holds `drivers/ramps` under its live lease: it ticks the
    /// fleet's ramps; the others only show them.
    drives: AtomicBool,
}

/// Locks state that only status and the fleet's own task touch; a panicked
/// holder leaves nothing half-done that is worse than stale.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, FleetError> {
    path.as_ref()
        .map(|p| {
            std::fs::read(p).map_err(|source| FleetError::Read {
                path: p.clone(),
                source,
            })
        })
        .transpose()
}

impl Fleet {
    /// Starts the store task and the fallback watchdog. Until the store answers,
    /// the instance serves what its state file restored.
    pub fn start(
        cfg: FleetConfig,
        snap: SnapshotHandle,
        state_file: Option<PathBuf>,
        ramps: Arc<crate::rollout::Ramps>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<Fleet>, Vec<JoinHandle<()>>), FleetError> {
        let tls = cfg.tls.clone().unwrap_or_default();
        let secrets = Secrets {
            password: read(&cfg.password_file)?
                .map(|b| String::from_utf8_lossy(&b).trim_end().to_string()),
            ca: read(&tls.ca_file)?,
            cert: read(&tls.cert_file)?,
            key: read(&tls.key_file)?,
        };
        let fleet = Arc::new(Fleet {
            cfg,
            secrets,
            snap,
            state_file,
            view: Mutex::default(),
            synced: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            fallback: AtomicBool::new(false),
            bad_keys: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            last_error: Mutex::new(None),
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
            started: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            ramps,
            drives: AtomicBool::new(false),
        });
        // The restored view stands until the store answers or `fallback` passes.
        health::set_fleet_decides(true);
        info!(
            instance = %fleet.cfg.instance,
            endpoints = %fleet.cfg.endpoints.join(" "),
            prefix = %fleet.cfg.prefix,
            quorum = %fleet.cfg.quorum,
            "fleet: joining"
        );
        let tasks = vec![
            tokio::spawn(store::run(fleet.clone(), stop.clone())),
            tokio::spawn(watchdog(fleet.clone(), stop)),
        ];
        Ok((fleet, tasks))
    }

    pub fn instance(&self) -> &str {
        &self.cfg.instance
    }

    /// Whether this instance drives the fleet's ramps now: it holds the
    /// `drivers/ramps` key under its live lease and etcd answers.
    pub fn drives_ramps(&self) -> bool {
        self.drives.load(Relaxed) && self.connected.load(Relaxed)
    }

    /// Queues an operator's change for the store. The caller has already applied
    /// it here; it shows on the other instances once written.
    pub(crate) fn submit(&self, op: Op) {
        enqueue(&mut lock(&self.pending), op);
        self.wake.notify_one();
    }

    fn mark_ok(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ok_ms.store(ms, Relaxed);
    }

    fn since_ok(&self) -> Duration {
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ok_ms.load(Relaxed)))
    }

    fn store_error(&self, e: &dyn std::fmt::Display) {
        self.store_errors.fetch_add(1, Relaxed);
        self.connected.store(false, Relaxed);
        self.drives.store(false, Relaxed);
        let msg = e.to_string();
        let mut last = lock(&self.last_error);
        // Once per distinct error, not once per retry.
        if last.as_deref() != Some(msg.as_str()) {
            warn!(error = %msg, "fleet: etcd unreachable; serving the last view");
        }
        *last = Some(msg);
    }

    /// Counts and logs a key the fleet refuses.
    fn bad_key(&self, key: &[u8], why: &str) {
        self.bad_keys.fetch_add(1, Relaxed);
        warn!(key = %String::from_utf8_lossy(key), "fleet: key ignored: {why}");
    }

    /// Takes in one key and value from the store, written under `lease` (0:
    /// none); a bad one is counted, logged and changes nothing.
    fn ingest(
        &self,
        view: &mut View,
        key: &[u8],
        value: &[u8],
        lease: i64,
        known: &BTreeSet<String>,
    ) -> Changed {
        if keys::is_key_set(&self.cfg.prefix, key) {
            return Changed::default();
        }
        if let Some(site) = self.latency_site(key) {
            if site != self.cfg.instance {
                let shared = crate::latency::share::global();
                if lease == 0 {
                    self.bad_key(key, "not under a lease; its figures do not count");
                } else if let Err(why) = shared.ingest(site, value) {
                    self.bad_key(key, &format!("measured figures refused: {why}"));
                }
            }
            return Changed::default();
        }
        match view::parse_entry(&self.cfg.prefix, key, value) {
            Ok(e) => {
                if let view::Entry::Instance(..) | view::Entry::Vote { .. } = &e {
                    if lease == 0 {
                        // Kept (it replaced the key's last value) but never
                        // counted: nothing would ever delete it.
                        self.bad_key(key, "not under a lease; no vote of it counts");
                    }
                }
                if let view::Entry::Override(name, _)
                | view::Entry::Weight(name, _)
                | view::Entry::Dial(name, _)
                | view::Entry::Ramp(name, _)
                | view::Entry::Verdict(name, _) = &e
                {
                    if !known.contains(name) {
                        self.bad_key(
                            key,
                            &format!("{name} is no region or endpoint this instance serves"),
                        );
                    }
                }
                view.put(e, lease)
            }
            Err(view::Bad(why)) => {
                self.bad_key(key, &why);
                Changed::default()
            }
        }
    }

    /// The instance of a `latency/<instance>` key (its measured figures).
    fn latency_site<'k>(&self, key: &'k [u8]) -> Option<&'k str> {
        let rest = key.strip_prefix(self.cfg.prefix.as_bytes())?;
        let name = std::str::from_utf8(rest.strip_prefix(b"latency/")?).ok()?;
        (!name.is_empty() && name.len() <= 253).then_some(name)
    }

    fn forget(&self, view: &mut View, key: &[u8]) -> Changed {
        if keys::is_key_set(&self.cfg.prefix, key) {
            return Changed::default();
        }
        if let Some(site) = self.latency_site(key) {
            crate::latency::share::global().forget(site);
            return Changed::default();
        }
        match view::parse_key(&self.cfg.prefix, key) {
            Ok(k) => view.delete(&k),
            // Its put was refused and counted already.
            Err(_) => Changed::default(),
        }
    }

    /// Puts the store's overrides and weights (with this instance's unwritten
    /// changes over them) into the serving health view, and saves the state file
    /// as the cache for a start without etcd.
    fn apply_operator(&self) {
        if !self.synced.load(Relaxed) {
            return;
        }
        let snap = self.snap.load();
        let (mut overrides, mut weights, mut dials) = {
            let v = lock(&self.view);
            (v.overrides.clone(), v.weights.clone(), v.dials.clone())
        };
        for op in lock(&self.pending).iter() {
            match op {
                Op::Override(n, Override::None) => {
                    overrides.remove(n);
                }
                Op::Override(n, o) => {
                    overrides.insert(n.clone(), *o);
                }
                Op::Weight(n, None) => {
                    weights.remove(n);
                }
                Op::Weight(n, Some(w)) => {
                    weights.insert(n.clone(), *w);
                }
                Op::Dial(n, None) => {
                    dials.remove(n);
                }
                Op::Dial(n, Some(d)) => {
                    dials.insert(n.clone(), *d);
                }
                Op::Ramp(..) | Op::Verdict(..) => {}
            }
        }
        self.mirror_ramps();
        self.mirror_verdicts(&snap);
        let known: BTreeSet<String> = snap.health.known_names().into_iter().collect();
        overrides.retain(|n, _| known.contains(n));
        weights.retain(|n, _| known.contains(n));
        dials.retain(|n, _| known.contains(n));
        let table = snap.health.table();
        for name in table.named_overrides().keys() {
            if !overrides.contains_key(name) {
                table.set_named_override_by(name, Override::None, "fleet");
            }
        }
        for (name, o) in &overrides {
            table.set_named_override_by(name, *o, "fleet");
        }
        if let Ok(mut w) = snap.health.operator_weights().lock() {
            *w = weights;
        }
        if let Ok(mut d) = snap.health.operator_dials().lock() {
            *d = dials;
        }
        snap.health.refresh();
        self.save_state(&snap);
    }

    /// Makes this instance's ramps the store's (with its unwritten changes over
    /// them), keeping the hold time watched of a ramp whose stored part is the
    /// same; wakes the ticker.
    fn mirror_ramps(&self) {
        let mut stored = lock(&self.view).ramps.clone();
        for op in lock(&self.pending).iter() {
            if let Op::Ramp(n, v) = op {
                match v
                    .as_deref()
                    .map(|v| crate::rollout::Ramp::from_stored(v.as_bytes()))
                {
                    Some(Ok(r)) => {
                        stored.insert(n.clone(), r);
                    }
                    Some(Err(_)) => {}
                    None => {
                        stored.remove(n);
                    }
                }
            }
        }
        let known: BTreeSet<String> = self.snap.load().health.known_names().into_iter().collect();
        stored.retain(|n, _| known.contains(n));
        let Ok(mut local) = self.ramps.ramps.lock() else {
            return;
        };
        if local.len() == stored.len()
            && stored
                .iter()
                .all(|(n, r)| local.get(n).is_some_and(|l| r.same_but_held(l)))
        {
            return;
        }
        for (n, r) in stored.iter_mut() {
            if let Some(l) = local.get(n).filter(|l| r.same_but_held(l)) {
                r.held = l.held;
            }
        }
        *local = stored;
        drop(local);
        self.ramps.wake.notify_one();
    }

    /// Makes this instance's pushed verdicts the store's (with its unwritten
    /// pushes over them): a verdict pushed to one instance holds on all, until
    /// its own expiry.
    fn mirror_verdicts(&self, snap: &Snapshot) {
        let mut stored = lock(&self.view).verdicts.clone();
        for op in lock(&self.pending).iter() {
            if let Op::Verdict(n, v) = op {
                match v {
                    Some(p) => stored.insert(n.clone(), p.clone()),
                    None => stored.remove(n),
                };
            }
        }
        // Expired ones count for nothing (their keys stay until pushed again).
        let now = std::time::SystemTime::now();
        let known: BTreeSet<String> = snap.health.known_names().into_iter().collect();
        stored.retain(|n, p| p.until > now && known.contains(n));
        let verdicts = snap.health.table().verdicts();
        for name in verdicts.all().keys() {
            if !stored.contains_key(name) {
                verdicts.clear(name);
            }
        }
        for (name, p) in &stored {
            if let Err(e) = verdicts.put_shared(name, p) {
                warn!(target = %name, "fleet: verdict not taken: {e}");
            }
        }
    }

    fn save_state(&self, snap: &Snapshot) {
        if let Some(path) = &self.state_file {
            if let Err(e) = health::save_state(path, &snap.health.persisted()) {
                warn!("fleet: cannot save state: {e}");
            }
        }
    }

    /// Publishes, for every target, the verdict the fleet's votes give.
    fn recompute(&self) {
        if !health::fleet_decides() {
            return;
        }
        let snap = self.snap.load();
        let table = snap.health.table();
        let view = lock(&self.view);
        for (id, key) in table.targets() {
            let Some(local) = table.local(id) else {
                continue;
            };
            let stable = key.stable_key();
            let quorum = key.check.quorum.unwrap_or(self.cfg.quorum);
            let v = view.verdict(&stable, &self.cfg.instance, local, quorum);
            if table.probed(id) != Some(v) {
                table.set_fleet_verdict(id, v);
                info!(target_key = %stable, new = %v, own = %local, "fleet: verdict changed");
            }
        }
    }

    /// Hands verdicts back to this instance's own probes.
    fn fall_back(&self) {
        health::set_fleet_decides(false);
        self.fallback.store(true, Relaxed);
        self.fallbacks.fetch_add(1, Relaxed);
        let snap = self.snap.load();
        let table = snap.health.table();
        for (id, _) in table.targets() {
            if let Some(h) = table.local(id) {
                table.set_fleet_verdict(id, h);
            }
        }
        warn!(
            after = ?self.cfg.fallback,
            "fleet: etcd gone too long; this instance's own probes decide until it returns"
        );
    }

    /// The store is back and read whole: the fleet decides again.
    fn rejoin(&self) {
        if self.fallback.swap(false, Relaxed) {
            info!("fleet: etcd back; the fleet's votes decide again");
        }
        health::set_fleet_decides(true);
        self.connected.store(true, Relaxed);
        *lock(&self.last_error) = None;
    }

    /// Each instance's vote for a target (by stable key), this one's own included.
    pub(crate) fn votes_of(&self, target: &str, local: Health) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = lock(&self.view)
            .live_votes(target)
            .map(|(i, h)| (i.to_string(), h.to_string()))
            .collect();
        out.insert(self.cfg.instance.clone(), local.to_string());
        out
    }

    /// The fleet part of `/status`.
    /// Whether etcd answers now.
    pub fn connected(&self) -> bool {
        self.connected.load(Relaxed)
    }

    pub(crate) fn status_json(&self) -> serde_json::Value {
        let view = lock(&self.view);
        json!({
            "instance": self.cfg.instance,
            "site": self.cfg.site,
            "endpoints": self.cfg.endpoints,
            "prefix": self.cfg.prefix,
            "quorum": self.cfg.quorum.to_string(),
            "connected": self.connected.load(Relaxed),
            "synced": self.synced.load(Relaxed),
            "fallback": self.fallback.load(Relaxed),
            "seconds_since_etcd": self.since_ok().as_secs_f64(),
            "instances": view.instances,
            "pending_writes": lock(&self.pending).len(),
            "ramp_driver": view.driver.as_ref().map(|(i, _)| i.clone()),
            "drives_ramps": self.drives_ramps(),
            "bad_keys": self.bad_keys.load(Relaxed),
            "last_error": *lock(&self.last_error),
        })
    }

    /// The fleet's Prometheus lines.
    pub(crate) fn render_metrics(&self) -> String {
        let mut out = String::new();
        let b = |v: &AtomicBool| u64::from(v.load(Relaxed));
        for (name, kind, help, v) in [
            (
                "signpost_fleet_connected",
                "gauge",
                "1 while etcd answers.",
                b(&self.connected),
            ),
            (
                "signpost_fleet_fallback",
                "gauge",
                "1 while this instance's own probes decide (etcd gone over the fallback time).",
                b(&self.fallback),
            ),
            (
                "signpost_fleet_fallbacks_total",
                "counter",
                "Times the instance fell back to its own probes.",
                self.fallbacks.load(Relaxed),
            ),
            (
                "signpost_fleet_store_errors_total",
                "counter",
                "Failed requests and broken streams to etcd.",
                self.store_errors.load(Relaxed),
            ),
            (
                "signpost_fleet_bad_keys_total",
                "counter",
                "Keys under the prefix ignored for a bad name or value.",
                self.bad_keys.load(Relaxed),
            ),
            (
                "signpost_fleet_pending_writes",
                "gauge",
                "Operator changes made here and not yet written to etcd.",
                lock(&self.pending).len() as u64,
            ),
            (
                "signpost_fleet_instances",
                "gauge",
                "Instances with a live lease, this one included once seen.",
                lock(&self.view).instances.len() as u64,
            ),
            (
                "signpost_fleet_latency_rejected_total",
                "counter",
                "Other sites' measured-latency values refused (too large, bad shape or figure); each changed nothing.",
                crate::latency::share::global().counts().0,
            ),
            (
                "signpost_fleet_latency_implausible_total",
                "counter",
                "Of those refused, values with figures no site could have measured (more senders than samples, a private or unroutable network, more figures than a site publishes).",
                crate::latency::share::global().implausible(),
            ),
            (
                "signpost_fleet_latency_received_total",
                "counter",
                "Other sites' measured-latency values taken in.",
                crate::latency::share::global().counts().1,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

/// Falls back to own probes once the store has been silent for `fallback`.
async fn watchdog(fleet: Arc<Fleet>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        if !fleet.fallback.load(Relaxed) && fleet.since_ok() >= fleet.cfg.fallback {
            fleet.fall_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{enqueue, Op};
    use crate::health::Override;

    #[test]
    fn unwritten_changes_keep_one_per_key() {
        let mut q = Vec::new();
        for i in 0..1000u32 {
            enqueue(&mut q, Op::Weight("region:a".into(), Some(i)));
            enqueue(&mut q, Op::Override("region:a".into(), Override::Drain));
            enqueue(&mut q, Op::Override("region:a".into(), Override::None));
        }
        enqueue(&mut q, Op::Weight("region:b".into(), None));
        assert_eq!(
            q,
            vec![
                Op::Weight("region:a".into(), Some(999)),
                Op::Override("region:a".into(), Override::None),
                Op::Weight("region:b".into(), None),
            ]
        );
    }
}
