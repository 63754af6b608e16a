//! The probe scheduler: one task per distinct target, however many names share it,
//! with a shared limit on probes in flight.
//!
//! Each task owns its target's state machine and writes verdicts into the target's
//! slot of the health table. Tasks end when the shutdown signal fires, when their
//! target is removed by [`SchedulerHandle::reconcile`], or when the handle is
//! dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::probe::{attempt, count_local_failure, count_unanswered, Attempt};
use super::rng::Rng;
use super::spec::TargetKey;
use super::state::State;
use super::table::{HealthTable, Slot, TargetId};

/// Probes in flight at once unless configured otherwise: enough that a slow
/// target never delays the others, few enough that a reload of a large zone set
/// does not open thousands of sockets at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Shortest interval the scheduler runs, whatever a check says: a zero interval
/// against a refusing port would otherwise spin.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub max_in_flight: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Starts probe tasks; see [`SchedulerHandle`] for what runs afterwards.
pub struct Scheduler;

impl Scheduler {
    /// Starts one probe task per target of `table`, with default options. Must be
    /// called within a tokio runtime.
    ///
    /// `shutdown` ends every task once it holds `true`, or once its sender is
    /// dropped (a dropped sender can never say "stop" any more, and probes that
    /// nobody can stop would outlive the server).
    pub fn start(table: Arc<HealthTable>, shutdown: watch::Receiver<bool>) -> SchedulerHandle {
        Self::start_with(table, shutdown, SchedulerOptions::default())
    }

    pub fn start_with(
        table: Arc<HealthTable>,
        shutdown: watch::Receiver<bool>,
        options: SchedulerOptions,
    ) -> SchedulerHandle {
        let mut handle = SchedulerHandle {
            table: table.clone(),
            tasks: HashMap::new(),
            retired: Vec::new(),
            limiter: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            shutdown,
            rng: Rng::new(),
        };
        for slot in table.slots() {
            let task = handle.spawn(slot.clone());
            handle.tasks.insert(slot.key.clone(), task);
        }
        tracing::info!(targets = table.len(), "health probes started");
        handle
    }
}

struct Task {
    slot: Arc<Slot>,
    /// Sending, or dropping, this stops the task.
    stop: oneshot::Sender<()>,
    join: JoinHandle<()>,
}

/// The running probes and the current health table.
pub struct SchedulerHandle {
    table: Arc<HealthTable>,
    tasks: HashMap<TargetKey, Task>,
    /// Tasks of removed targets, told to stop, kept so that `join` can wait for them.
    retired: Vec<JoinHandle<()>>,
    limiter: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    rng: Rng,
}

/// The result of a reconcile: the new table, and how ids moved.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// The table to publish with indices built from it ([`HealthTable::id`]).
    pub table: Arc<HealthTable>,
    /// For each id of the previous table, its id in the new one; `None` when the
    /// target was removed.
    pub old_to_new: Vec<Option<TargetId>>,
    /// Targets present before and after: same slot, same task, same state.
    pub kept: usize,
    pub added: usize,
    pub removed: usize,
    /// Added targets that took the verdict and override of a removed target with
    /// the same stable key (the same request to the same address with only its
    /// timing changed).
    pub inherited: usize,
}

impl SchedulerHandle {
    /// The current table: the one `start` was given, or the last reconcile's.
    pub fn table(&self) -> Arc<HealthTable> {
        self.table.clone()
    }

    /// Moves to a new set of targets.
    ///
    /// How state carries over: health lives in per-target slots, not in table
    /// positions. A target present before and after (equal [`TargetKey`]) keeps its
    /// slot, and so its probe task, verdict, run counters, override, transition
    /// count and latency histogram; only its id (position) may change. Removed
    /// targets' tasks are stopped. Added targets get a new slot and task, starting
    /// from their check's initial state, unless a removed target had the same
    /// stable key, whose verdict and override they inherit. The previous table
    /// stays valid for readers still holding it; kept targets keep updating in it.
    pub fn reconcile(&mut self, targets: Vec<TargetKey>) -> Mapping {
        let mut old = std::mem::take(&mut self.tasks);
        let mut slots = Vec::new();
        let mut fresh = Vec::new();
        let mut kept = 0;
        let mut seen = HashSet::new();
        for key in targets {
            if !seen.insert(key.clone()) {
                continue;
            }
            if let Some(task) = old.remove(&key) {
                slots.push(task.slot.clone());
                self.tasks.insert(key, task);
                kept += 1;
            } else {
                let slot = Arc::new(Slot::new(key, self.table.recent().clone()));
                slots.push(slot.clone());
                fresh.push(slot);
            }
        }

        let removed = old.len();
        let mut by_stable: HashMap<&str, &Arc<Slot>> = HashMap::new();
        for task in old.values() {
            by_stable.insert(task.slot.stable.as_str(), &task.slot);
        }
        let mut inherited = 0;
        for slot in &fresh {
            if let Some(prev) = by_stable.get(slot.stable.as_str()) {
                slot.inherit(prev);
                inherited += 1;
            }
        }
        drop(by_stable);
        for (_, task) in old {
            // The task may have ended already (shutdown); nothing to tell it then.
            let _ = task.stop.send(());
            self.retired.push(task.join);
        }
        self.retired.retain(|j| !j.is_finished());

        let added = fresh.len();
        for slot in fresh {
            let task = self.spawn(slot.clone());
            self.tasks.insert(slot.key.clone(), task);
        }

        let table = Arc::new(HealthTable::from_slots(
            slots,
            self.table.named().clone(),
            self.table.recent().clone(),
            self.table.verdicts().clone(),
        ));
        let old_to_new = self.table.targets().map(|(_, k)| table.id(k)).collect();
        self.table = table.clone();
        tracing::info!(kept, added, removed, inherited, "health targets reconciled");
        Mapping {
            table,
            old_to_new,
            kept,
            added,
            removed,
            inherited,
        }
    }

    /// Probe tasks that have not ended yet, including removed targets' tasks that
    /// are still winding down.
    pub fn running(&self) -> usize {
        self.tasks
            .values()
            .filter(|t| !t.join.is_finished())
            .count()
            + self.retired.iter().filter(|j| !j.is_finished()).count()
    }

    /// Stops every probe (if the shutdown signal has not already) and waits for all
    /// tasks to end. An in-flight probe is abandoned, not waited for.
    pub async fn join(self) {
        let mut joins = self.retired;
        for (_, task) in self.tasks {
            let _ = task.stop.send(());
            joins.push(task.join);
        }
        for j in joins {
            if let Err(e) = j.await {
                tracing::warn!(error = %e, "health probe task failed");
            }
        }
    }

    fn spawn(&mut self, slot: Arc<Slot>) -> Task {
        let spec = &slot.key.check;
        let interval = spec.interval.max(MIN_INTERVAL);
        // Spread the first probes so that a start or reload with many targets does
        // not probe them all at once: over the jitter, or the interval without one.
        let spread = if spec.jitter.is_zero() {
            interval
        } else {
            spec.jitter
        };
        let first = self.rng.below(spread);
        let (stop, stop_rx) = oneshot::channel();
        let join = tokio::spawn(run_target(
            slot.clone(),
            first,
            self.limiter.clone(),
            self.shutdown.clone(),
            stop_rx,
        ));
        Task { slot, stop, join }
    }
}

/// One target's probe loop.
async fn run_target(
    slot: Arc<Slot>,
    first_delay: Duration,
    limiter: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    mut stop: oneshot::Receiver<()>,
) {
    let spec = slot.key.check.clone();
    let interval = spec.interval.max(MIN_INTERVAL);
    let mut state = State::with_up(slot.probed().is_up());
    let mut rng = Rng::new();
    let mut next = Instant::now() + first_delay;
    // Metric checks: how many asks in a row went unanswered (logged at the first
    // and at powers of two, and when answers come back).
    let mut unanswered_run: u64 = 0;
    tracing::debug!(target_key = %slot.stable, "health probe task started");
    loop {
        let probed = async {
            tokio::time::sleep_until(next).await;
            // Never closed, so acquiring only waits; on the impossible error the
            // probe runs unthrottled rather than not at all.
            let _permit = limiter.acquire().await.ok();
            let started = Instant::now();
            (started, attempt(&spec, slot.key.addr).await)
        };
        let (started, result) = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = &mut stop => break,
            r = probed => r,
        };
        let result = match result {
            Attempt::Judged(r) => r,
            // Ours, not the target's: counted, and the verdict holds.
            Attempt::Local(detail) => {
                let n = count_local_failure();
                if n.is_power_of_two() {
                    tracing::warn!(
                        target_key = %slot.stable,
                        local_failures = n,
                        "probe not made, verdict kept: {detail}"
                    );
                }
                next = started + interval + rng.below(spec.jitter);
                continue;
            }
            // The metric server could not be asked: not a verdict on the target.
            Attempt::Unanswered(detail) => {
                count_unanswered();
                unanswered_run += 1;
                if unanswered_run.is_power_of_two() {
                    tracing::warn!(
                        target_key = %slot.stable,
                        in_a_row = unanswered_run,
                        "metric check unanswered, verdict kept: {detail}"
                    );
                }
                next = started + interval + rng.below(spec.jitter);
                continue;
            }
        };
        if unanswered_run > 0 {
            tracing::info!(
                target_key = %slot.stable,
                after = unanswered_run,
                "metric check answered again"
            );
            unanswered_run = 0;
        }
        if let Some(change) = slot.apply(&mut state, result) {
            tracing::info!(
                target_key = %slot.stable,
                old = %change.transition.from,
                new = %change.transition.to,
                after = change.after,
                reason = %change.reason,
                "health changed"
            );
        }
        // Fixed rate from each probe's start, plus jitter so targets drift apart.
        next = started + interval + rng.below(spec.jitter);
    }
    tracing::debug!(target_key = %slot.stable, "health probe task stopped");
}
