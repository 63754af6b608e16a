//! Health checks: probes, the anti-flap state machine, operator overrides, the
//! lock-free table the query path reads, and saved state.
//!
//! ```text
//! zone policy [checks.*] -> CheckSpec ─┐
//! endpoint address ────────────────────┴> TargetKey (one per distinct check+address)
//!
//! Scheduler: one task per TargetKey ──probe()──> ProbeResult (raw: ok, latency, detail)
//!   -> State::observe (rise/fall)  ──> slot's atomic byte (probed bit)
//! admin API ──set_override────────────> slot's atomic byte (override bits)
//! query path ──HealthTable::is_up(TargetId)──> one atomic load
//! ```
//!
//! Probes report; only the state machine decides (STYLE.md §4). The caller builds
//! a [`HealthTable`] from the targets of its compiled policies, looks up each
//! target's [`TargetId`] once, and hands the table to [`Scheduler::start`]. On a
//! reload, [`SchedulerHandle::reconcile`] returns a new table that keeps the state
//! of every surviving target, and the caller rebuilds its ids from it.
//!
//! This module must not use `policy` or `server` (ARCHITECTURE.md). Probes speak
//! HTTP through hyper and build and read DNS messages with hickory-proto; neither
//! crate's types leave `probe`.

mod gates;
mod persist;
mod probe;
mod recent;
mod rng;
mod scheduler;
mod shed;
mod shedder;
mod spec;
mod state;
mod table;
mod verdict;

pub use gates::{run_gate, GateSource, MetricGates};
pub use persist::{
    load, save, save_state, PersistError, PersistedState, PersistedTarget, STATE_VERSION,
};
pub use probe::{
    attempt, check_request, local_failures, probe, set_probe_source, unanswered, Attempt,
    ProbeError,
};
pub use recent::{RecentTransitions, Recorded, RECENT_TRANSITIONS};
pub use scheduler::{
    Mapping, Scheduler, SchedulerHandle, SchedulerOptions, DEFAULT_MAX_IN_FLIGHT, MIN_INTERVAL,
};
pub use shed::{Move, Shed, ShedDials, ShedPlan, Why};
pub use shedder::{run_shed, ShedSource};
pub use spec::{
    CheckKind, CheckSpec, Empty, Initial, MetricQuery, Quorum, TargetKey, Threshold, Tls,
    MAX_METRIC_QUERY,
};
pub use state::{Health, Override, ProbeResult, State, Status, Transition};
pub use table::{
    bump_epoch, epoch, fleet_decides, set_fleet_decides, Change, HealthTable, LatencyHistogram,
    LatencySnapshot, TargetId, TargetStatus, LATENCY_BOUNDS,
};
pub use verdict::{Pushed, VerdictError, Verdicts, MAX_SOURCE, MAX_TTL, MAX_VERDICTS, MIN_TTL};
