//! The health table: what the query path reads, one atomic byte per target.
//!
//! Each target has a slot shared by `Arc`. The table is a dense vector of slots
//! indexed by [`TargetId`], so `is_up` is one index, one pointer and one atomic
//! load: no lock, no allocation, never waiting on a writer. Writers (the probe
//! task of the target, the admin API) change the byte with atomic read-modify-write
//! operations on disjoint bits, so neither can undo the other's change.
//!
//! A table never changes shape. When the set of targets changes, the scheduler
//! builds a new table that holds the *same slots* for the targets that remain (so
//! their health, override, counters and probe task carry over untouched) and new
//! slots for the added ones; ids are positions and may differ between the two
//! tables. The caller publishes the new table together with the indices it built
//! from it, so a reader always uses ids and table from the same generation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::recent::{RecentTransitions, Recorded};
use super::spec::{Initial, TargetKey};
use super::state::{Health, Override, ProbeResult, State, Status, Transition};
use super::verdict::Verdicts;

/// Dense index of a target within one [`HealthTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId(pub u32);

impl TargetId {
    pub fn index(self) -> usize {
        // u32 always fits in usize on the 32- and 64-bit targets we build for.
        self.0 as usize
    }
}

/// Counts every change of what the query path reads (a probed verdict, an
/// override, an operator weight), in any table of the process. A reader that loads
/// it before reading health and sees the same value later knows that nothing it
/// read has changed since: caches of decisions key on it.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The health epoch; see [`EPOCH`]. Acquire: a reader that sees a writer's bump
/// also sees the change made before it.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Marks a change of health as made; called after the change is stored.
pub fn bump_epoch() {
    EPOCH.fetch_add(1, Ordering::Release);
}

/// Whether a fleet decides probed health from many instances' votes (see the
/// `fleet` module). While it does, a probe's verdict is this instance's vote
/// only; the fleet publishes the combined verdict with
/// [`HealthTable::set_fleet_verdict`]. Off (the default, and the fleet's fallback
/// when its store is gone too long): the local verdict is what queries see.
/// Process-wide, as a fleet is: one instance is one process.
static FLEET_DECIDES: AtomicBool = AtomicBool::new(false);

/// See [`FLEET_DECIDES`].
pub fn fleet_decides() -> bool {
    FLEET_DECIDES.load(Ordering::Relaxed)
}

/// Hands the published verdict to the fleet (true) or back to the local state
/// machine (false). Handing it back does not copy local verdicts over: the
/// caller does that with [`HealthTable::set_fleet_verdict`] and [`HealthTable::local`].
pub fn set_fleet_decides(on: bool) {
    FLEET_DECIDES.store(on, Ordering::Relaxed);
}

/// Bit 0 of a slot's byte: probed health is up.
const PROBED_UP: u8 = 0b001;
/// Bits 1-2: the override code (see [`Override::code`]).
const OVERRIDE_SHIFT: u8 = 1;
const OVERRIDE_MASK: u8 = 0b110;

/// Locks a mutex that only holds status details. A writer that panicked mid-update
/// leaves at worst a stale detail, never a broken invariant, so the data is still
/// worth showing.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last change of probed health, for status output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub transition: Transition,
    pub at: SystemTime,
    /// How many equal results in a row caused it (rise or fall, unless changed).
    pub after: u32,
    /// The detail of the probe that completed the run.
    pub reason: String,
}

#[derive(Debug, Default)]
struct Detail {
    successes: u32,
    failures: u32,
    last: Option<ProbeResult>,
    /// When `last` came in: the dashboard shows how fresh a verdict is.
    last_at: Option<SystemTime>,
    last_change: Option<Change>,
}

/// Everything the health module keeps about one target. Shared between the tables
/// of successive generations and the target's probe task.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) key: TargetKey,
    /// `key.stable_key()`, computed once: status output and saving use it often.
    pub(crate) stable: String,
    flags: AtomicU8,
    /// This instance's own verdict (its state machine's), which is also the
    /// published one unless a fleet decides ([`FLEET_DECIDES`]).
    local: AtomicBool,
    transitions: AtomicU64,
    latency: LatencyHistogram,
    /// Only status output and the probe task touch this; `is_up` never does.
    detail: Mutex<Detail>,
    /// Where this target's transitions are recorded: its table's ring.
    recent: Arc<RecentTransitions>,
}

impl Slot {
    pub(crate) fn new(key: TargetKey, recent: Arc<RecentTransitions>) -> Self {
        let up = key.check.initial == Initial::Up;
        Slot {
            recent,
            stable: key.stable_key(),
            key,
            flags: AtomicU8::new(if up { PROBED_UP } else { 0 }),
            local: AtomicBool::new(up),
            transitions: AtomicU64::new(0),
            latency: LatencyHistogram::new(),
            detail: Mutex::new(Detail::default()),
        }
    }

    // Relaxed ordering throughout: each byte is an independent fact; nothing else
    // is published through it, so there is no other memory to order against.
    fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    pub(crate) fn probed(&self) -> Health {
        Health::from_up(self.flags() & PROBED_UP != 0)
    }

    /// Sets the local verdict and the published one (restoring saved state,
    /// inheriting a replaced target's).
    pub(crate) fn set_probed(&self, health: Health) {
        self.local.store(health.is_up(), Ordering::Relaxed);
        self.publish(health);
    }

    pub(crate) fn local(&self) -> Health {
        Health::from_up(self.local.load(Ordering::Relaxed))
    }

    /// Sets what queries see, leaving the local verdict alone.
    fn publish(&self, health: Health) {
        let before = match health {
            Health::Up => self.flags.fetch_or(PROBED_UP, Ordering::Relaxed),
            Health::Down => self.flags.fetch_and(!PROBED_UP, Ordering::Relaxed),
        };
        if (before & PROBED_UP != 0) != health.is_up() {
            bump_epoch();
        }
    }

    fn override_(&self) -> Override {
        Override::from_code((self.flags() & OVERRIDE_MASK) >> OVERRIDE_SHIFT)
    }

    fn set_override(&self, o: Override) {
        let bits = o.code() << OVERRIDE_SHIFT;
        // The closure never returns None, so the update always succeeds.
        let before = self
            .flags
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |f| {
                Some((f & !OVERRIDE_MASK) | bits)
            })
            .unwrap_or_else(|f| f);
        if before & OVERRIDE_MASK != bits {
            bump_epoch();
        }
    }

    /// Takes over the verdict and override of a target this one replaces.
    pub(crate) fn inherit(&self, prev: &Slot) {
        self.set_probed(prev.probed());
        self.set_override(prev.override_());
    }

    fn status(&self) -> Status {
        let f = self.flags();
        Override::from_code((f & OVERRIDE_MASK) >> OVERRIDE_SHIFT)
            .apply(Health::from_up(f & PROBED_UP != 0))
    }

    fn is_up(&self) -> bool {
        let f = self.flags();
        match (f & OVERRIDE_MASK) >> OVERRIDE_SHIFT {
            0 => f & PROBED_UP != 0,
            code => Override::from_code(code) == Override::ForceUp,
        }
    }

    /// Feeds one probe result through the target's state machine and publishes
    /// the verdict. Returns the transition, if any, for the caller to log.
    ///
    /// The slot's probed bit is the source of truth, not `state.up`: restoring
    /// saved state writes the bit directly, and the next result continues from it.
    pub(crate) fn apply(&self, state: &mut State, result: ProbeResult) -> Option<Change> {
        let spec = &self.key.check;
        state.up = self.local().is_up();
        self.latency.observe(result.latency);
        let reason = result.detail.clone();
        let transition = state.record(result, spec.rise, spec.fall);
        let mut d = lock(&self.detail);
        d.successes = state.successes;
        d.failures = state.failures;
        d.last = state.last.clone();
        d.last_at = Some(SystemTime::now());
        let t = transition?;
        self.local.store(t.to.is_up(), Ordering::Relaxed);
        if !fleet_decides() {
            self.publish(t.to);
        }
        self.transitions.fetch_add(1, Ordering::Relaxed);
        let change = Change {
            transition: t,
            at: SystemTime::now(),
            after: state.successes.max(state.failures),
            reason,
        };
        d.last_change = Some(change.clone());
        self.recent.record(Recorded {
            at: change.at,
            target: self.stable.clone(),
            from: t.from.to_string(),
            to: t.to.to_string(),
            reason: change.reason.clone(),
        });
        Some(change)
    }
}

/// Health of every target of one configuration generation.
#[derive(Debug)]
pub struct HealthTable {
    slots: Vec<Arc<Slot>>,
    index: HashMap<TargetKey, TargetId>,
    /// Drains and forces of things that are not probe targets (a region, an endpoint),
    /// keyed by the caller's names. Kept here so that they are saved and restored
    /// with the rest; shared by every generation of the table.
    named: Arc<Mutex<BTreeMap<String, Override>>>,
    /// The last transitions of every target and override; shared like `named`.
    recent: Arc<RecentTransitions>,
    /// Verdicts pushed by the operator's monitoring; shared like `named`.
    verdicts: Arc<Verdicts>,
}

impl HealthTable {
    /// A table with one slot per distinct target, ids in order of first
    /// appearance. Targets start in their check's initial state.
    pub fn new(targets: impl IntoIterator<Item = TargetKey>) -> Self {
        let mut index = HashMap::new();
        let mut slots = Vec::new();
        let recent = Arc::new(RecentTransitions::default());
        for key in targets {
            if index.contains_key(&key) {
                continue;
            }
            let Ok(n) = u32::try_from(slots.len()) else {
                // Four billion targets do not fit any configuration we could load.
                break;
            };
            index.insert(key.clone(), TargetId(n));
            slots.push(Arc::new(Slot::new(key, recent.clone())));
        }
        HealthTable {
            slots,
            index,
            named: Arc::default(),
            recent,
            verdicts: Arc::default(),
        }
    }

    /// A table over existing slots, sharing the named overrides and the recent
    /// transitions of its predecessor.
    pub(crate) fn from_slots(
        slots: Vec<Arc<Slot>>,
        named: Arc<Mutex<BTreeMap<String, Override>>>,
        recent: Arc<RecentTransitions>,
        verdicts: Arc<Verdicts>,
    ) -> Self {
        let index = slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.key.clone(), TargetId(u32::try_from(i).ok()?))))
            .collect();
        HealthTable {
            slots,
            index,
            named,
            recent,
            verdicts,
        }
    }

    pub(crate) fn slots(&self) -> &[Arc<Slot>] {
        &self.slots
    }

    pub(crate) fn named(&self) -> &Arc<Mutex<BTreeMap<String, Override>>> {
        &self.named
    }

    pub(crate) fn recent(&self) -> &Arc<RecentTransitions> {
        &self.recent
    }

    /// Verdicts pushed by the operator's monitoring (see `verdict`).
    pub fn verdicts(&self) -> &Arc<Verdicts> {
        &self.verdicts
    }

    /// The last transitions (probe verdicts and overrides), newest first.
    pub(crate) fn recent_transitions(&self) -> Vec<Recorded> {
        self.recent.newest_first()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id of a target in this table.
    pub fn id(&self, key: &TargetKey) -> Option<TargetId> {
        self.index.get(key).copied()
    }

    pub fn key(&self, id: TargetId) -> Option<&TargetKey> {
        self.slot(id).map(|s| &s.key)
    }

    /// Every target with its id, in id order.
    pub fn targets(&self) -> impl Iterator<Item = (TargetId, &TargetKey)> {
        (0u32..)
            .zip(self.slots.iter())
            .map(|(i, s)| (TargetId(i), &s.key))
    }

    fn slot(&self, id: TargetId) -> Option<&Slot> {
        self.slots.get(id.index()).map(|s| &**s)
    }

    /// Whether answers may include the target: its override if it has one, else its
    /// probed health. The query path calls this: lock-free and allocation-free.
    /// An id that is not in the table is down (it would be a caller's bug, and an
    /// unknown target is no reason to answer with an address).
    #[inline]
    pub fn is_up(&self, id: TargetId) -> bool {
        self.slots.get(id.index()).is_some_and(|s| s.is_up())
    }

    /// Effective state, distinguishing why a target is up or down.
    pub fn status_of(&self, id: TargetId) -> Option<Status> {
        self.slot(id).map(Slot::status)
    }

    /// Health as probes last concluded, ignoring overrides.
    pub fn probed(&self, id: TargetId) -> Option<Health> {
        self.slot(id).map(Slot::probed)
    }

    pub fn override_of(&self, id: TargetId) -> Option<Override> {
        self.slot(id).map(Slot::override_)
    }

    /// Sets (or with [`Override::None`] lifts) an operator override. Returns false
    /// when the id is not in the table.
    pub fn set_override(&self, id: TargetId, o: Override) -> bool {
        match self.slot(id) {
            Some(s) => {
                s.set_override(o);
                true
            }
            None => false,
        }
    }

    /// Sets a probed verdict by hand, as restoring saved state does. The target's
    /// next probes continue from it.
    pub fn set_probed(&self, id: TargetId, health: Health) -> bool {
        match self.slot(id) {
            Some(s) => {
                s.set_probed(health);
                true
            }
            None => false,
        }
    }

    /// This instance's own probed verdict, which differs from [`Self::probed`]
    /// while a fleet decides and the other instances see the target otherwise.
    pub fn local(&self, id: TargetId) -> Option<Health> {
        self.slot(id).map(Slot::local)
    }

    /// Publishes a fleet's combined verdict, leaving this instance's own (and
    /// its state machine) alone.
    pub(crate) fn set_fleet_verdict(&self, id: TargetId, health: Health) -> bool {
        match self.slot(id) {
            Some(s) => {
                s.publish(health);
                true
            }
            None => false,
        }
    }

    /// Sets (or with [`Override::None`] removes) an override of a region, endpoint
    /// or anything else the caller names, e.g. `region:eu-west`.
    pub fn set_named_override(&self, name: &str, o: Override) {
        self.set_named_override_by(name, o, "override");
    }

    /// [`Self::set_named_override`], saying who made the change in the recent
    /// transitions (the admin API, the state file, the fleet).
    pub(crate) fn set_named_override_by(&self, name: &str, o: Override, by: &str) {
        let mut named = lock(&self.named);
        let before = if o.is_none() {
            named.remove(name)
        } else {
            named.insert(name.to_string(), o)
        }
        .unwrap_or_default();
        drop(named);
        if before != o {
            self.recent.record(Recorded {
                at: SystemTime::now(),
                target: name.to_string(),
                from: before.to_string(),
                to: o.to_string(),
                reason: by.to_string(),
            });
        }
    }

    pub fn named_override(&self, name: &str) -> Override {
        lock(&self.named).get(name).copied().unwrap_or_default()
    }

    pub(crate) fn named_overrides(&self) -> BTreeMap<String, Override> {
        lock(&self.named).clone()
    }

    /// Probed transitions since the target was first added.
    pub fn transitions(&self, id: TargetId) -> Option<u64> {
        self.slot(id).map(|s| s.transitions.load(Ordering::Relaxed))
    }

    pub fn latency(&self, id: TargetId) -> Option<&LatencyHistogram> {
        self.slot(id).map(|s| &s.latency)
    }

    /// One target's details for `/status`.
    pub fn status(&self, id: TargetId) -> Option<TargetStatus> {
        let s = self.slot(id)?;
        let d = lock(&s.detail);
        Some(TargetStatus {
            id,
            key: s.stable.clone(),
            status: s.status(),
            probed: s.probed(),
            local: s.local(),
            operator_override: s.override_(),
            successes: d.successes,
            failures: d.failures,
            last: d.last.clone(),
            last_at: d.last_at,
            last_change: d.last_change.clone(),
            transitions: s.transitions.load(Ordering::Relaxed),
            latency: s.latency.snapshot(),
        })
    }

    /// Every target's details, in id order.
    pub(crate) fn status_all(&self) -> Vec<TargetStatus> {
        self.targets()
            .filter_map(|(id, _)| self.status(id))
            .collect()
    }
}

/// One target as `/status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub id: TargetId,
    /// [`TargetKey::stable_key`].
    pub key: String,
    pub status: Status,
    pub probed: Health,
    /// This instance's own verdict; equal to `probed` unless a fleet decides.
    pub local: Health,
    pub operator_override: Override,
    /// The current run of passes (0 if the last probe failed).
    pub successes: u32,
    /// The current run of failures (0 if the last probe passed).
    pub failures: u32,
    pub last: Option<ProbeResult>,
    /// When `last` came in.
    pub last_at: Option<SystemTime>,
    pub last_change: Option<Change>,
    pub transitions: u64,
    pub latency: LatencySnapshot,
}

/// Upper bounds of the latency buckets, as a Prometheus histogram's `le` labels:
/// 1 ms to 10 s, roughly 1-2.5-5 per decade. Above 10 s only a misconfigured
/// timeout can take, and that lands in `+Inf`.
pub const LATENCY_BOUNDS: [Duration; 13] = [
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2_500),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// Probe latencies of one target, in fixed buckets so that recording is one atomic
/// add and `/metrics` can render a Prometheus histogram without a lock.
#[derive(Debug)]
pub struct LatencyHistogram {
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, latency: Duration) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|le| latency <= *le)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(c) = self.counts.get(bucket) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative counts as Prometheus expects them. Taken bucket by bucket while
    /// probes may record, so it can be off by the samples recorded meanwhile.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut cumulative = [0u64; LATENCY_BOUNDS.len()];
        let mut running = 0u64;
        for (slot, c) in cumulative.iter_mut().zip(self.counts.iter()) {
            running += c.load(Ordering::Relaxed);
            *slot = running;
        }
        let inf = self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed));
        LatencySnapshot {
            cumulative,
            count: running + inf,
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
    }
}

/// A copy of a [`LatencyHistogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Samples at or below each of [`LATENCY_BOUNDS`].
    pub cumulative: [u64; LATENCY_BOUNDS.len()],
    /// All samples (the `+Inf` bucket).
    pub count: u64,
    pub sum: Duration,
}

impl LatencySnapshot {
    /// `(le, cumulative count)` pairs, without `+Inf` (that is `count`).
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        LATENCY_BOUNDS
            .iter()
            .copied()
            .zip(self.cumulative.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::spec::{CheckKind, CheckSpec};

    fn key(port: u16, initial: Initial) -> TargetKey {
        let mut spec = CheckSpec::new(CheckKind::Tcp {
            port,
            send: None,
            expect_prefix: None,
        });
        spec.initial = initial;
        TargetKey::new(spec, "192.0.2.1".parse().unwrap())
    }

    fn result(ok: bool) -> ProbeResult {
        ProbeResult {
            ok,
            latency: Duration::from_millis(2),
            detail: if ok { "connected" } else { "connect refused" }.into(),
        }
    }

    #[test]
    fn dedupes_and_assigns_dense_ids() {
        let t = HealthTable::new([
            key(1, Initial::Up),
            key(2, Initial::Down),
            key(1, Initial::Up),
        ]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.id(&key(1, Initial::Up)), Some(TargetId(0)));
        assert_eq!(t.id(&key(2, Initial::Down)), Some(TargetId(1)));
        assert!(t.is_up(TargetId(0)));
        assert!(!t.is_up(TargetId(1)));
        assert!(!t.is_up(TargetId(7)), "unknown ids are down");
    }

    #[test]
    fn overrides_and_probed_bits_are_independent() {
        let t = HealthTable::new([key(1, Initial::Down)]);
        let id = TargetId(0);
        assert!(t.set_override(id, Override::ForceUp));
        assert!(t.is_up(id));
        assert_eq!(t.status_of(id), Some(Status::ForcedUp));
        t.set_probed(id, Health::Up);
        assert!(t.set_override(id, Override::Drain));
        assert!(!t.is_up(id));
        assert_eq!(t.status_of(id), Some(Status::Draining));
        assert_eq!(t.probed(id), Some(Health::Up));
        t.set_override(id, Override::ForceDown);
        assert!(!t.is_up(id));
        t.set_override(id, Override::None);
        assert!(t.is_up(id), "lifting the override shows probed health");
        assert!(!t.set_override(TargetId(3), Override::Drain));
    }

    #[test]
    fn every_change_moves_the_epoch_on() {
        let t = HealthTable::new([key(1, Initial::Down)]);
        let id = TargetId(0);
        let changes: [&dyn Fn(); 4] = [
            &|| {
                t.set_probed(id, Health::Up);
            },
            &|| {
                t.set_override(id, Override::Drain);
            },
            &|| {
                t.set_override(id, Override::None);
            },
            &|| {
                t.set_probed(id, Health::Down);
            },
        ];
        for (i, change) in changes.iter().enumerate() {
            // Other tests move it too, but never back.
            let before = epoch();
            change();
            assert!(epoch() > before, "change {i} left the epoch at {before}");
        }
    }

    #[test]
    fn apply_publishes_transitions_and_details() {
        let t = HealthTable::new([key(1, Initial::Up)]);
        let slot = &t.slots()[0];
        let mut st = State::new(Initial::Up);
        // fall = 3 (CheckSpec::new default)
        assert!(slot.apply(&mut st, result(false)).is_none());
        assert!(slot.apply(&mut st, result(false)).is_none());
        let change = slot.apply(&mut st, result(false)).expect("third failure");
        assert_eq!(change.after, 3);
        let recent = t.recent_transitions();
        assert_eq!(recent.len(), 1);
        assert_eq!(
            (
                recent[0].from.as_str(),
                recent[0].to.as_str(),
                recent[0].reason.as_str()
            ),
            ("up", "down", "connect refused")
        );
        assert_eq!(change.reason, "connect refused");
        assert!(!t.is_up(TargetId(0)));
        let s = t.status(TargetId(0)).unwrap();
        assert_eq!((s.failures, s.transitions), (3, 1));
        assert_eq!(s.latency.count, 3);
        // Restoring by hand overrides the task's own idea of the state.
        t.set_probed(TargetId(0), Health::Up);
        assert!(slot.apply(&mut st, result(false)).is_some());
        assert_eq!(t.transitions(TargetId(0)), Some(2));
    }

    #[test]
    fn named_overrides() {
        let t = HealthTable::new([]);
        t.set_named_override("region:eu-west", Override::Drain);
        assert_eq!(t.named_override("region:eu-west"), Override::Drain);
        t.set_named_override("region:eu-west", Override::Drain);
        t.set_named_override("region:eu-west", Override::None);
        assert!(t.named_overrides().is_empty());
        // Setting the same override twice is one change, not two.
        let recent = t.recent_transitions();
        let seen: Vec<_> = recent
            .iter()
            .map(|r| (r.from.as_str(), r.to.as_str()))
            .collect();
        assert_eq!(seen, vec![("drain", "none"), ("none", "drain")]);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = LatencyHistogram::new();
        h.observe(Duration::from_micros(500)); // le 1ms
        h.observe(Duration::from_millis(1)); // le 1ms: bounds are inclusive
        h.observe(Duration::from_millis(30)); // le 50ms
        h.observe(Duration::from_secs(20)); // +Inf only
        let s = h.snapshot();
        let b: Vec<(Duration, u64)> = s.buckets().collect();
        assert_eq!(b[0], (Duration::from_millis(1), 2));
        assert_eq!(b[4], (Duration::from_millis(25), 2));
        assert_eq!(b[5], (Duration::from_millis(50), 3));
        assert_eq!(b[12], (Duration::from_secs(10), 3));
        assert_eq!(s.count, 4);
        assert_eq!(
            s.sum,
            Duration::from_micros(500 + 1_000 + 30_000 + 20_000_000)
        );
    }
}
