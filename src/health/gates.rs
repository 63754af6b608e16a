//! Metric gates for ramps (`[gates.NAME]`): a Prometheus query judged by a
//! threshold, exactly as a `prometheus` check judges it, asked every interval by
//! one task per gate; its last verdict is published in a [`MetricGates`] cell
//! that the ramps' ticker reads.
//!
//! Invariants: a failure to ask (the server unreachable or slow, an HTTP error,
//! an answer that cannot be judged, an empty one with `empty = "unknown"`) is no
//! verdict: the cell says "cannot tell", so a ramp holds (its hold starts over)
//! and never advances blind; it never fails a ramp either. Only an answer judged
//! bad fails it. There is no rise/fall: one bad evaluation is enough, so a ramp
//! is stopped within one evaluation of the metric turning bad.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::probe::{metric_attempt, Attempt, MetricTicker, UnansweredRun};
use super::spec::MetricQuery;

/// One gate as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSource {
    pub name: String,
    pub query: MetricQuery,
    pub interval: Duration,
    pub timeout: Duration,
}

const UNKNOWN: u8 = 0;
const HOLDS: u8 = 1;
const FAILS: u8 = 2;

#[derive(Debug)]
struct Cell {
    name: String,
    verdict: AtomicU8,
    /// What the last answer said (or why there was none), for `/status` and logs.
    detail: Mutex<String>,
    evaluations: AtomicU64,
}

/// The last verdict of every configured gate, read lock-free.
#[derive(Debug, Default)]
pub struct MetricGates {
    cells: Vec<Cell>,
}

impl MetricGates {
    pub fn new(sources: &[GateSource]) -> MetricGates {
        MetricGates {
            cells: sources
                .iter()
                .map(|s| Cell {
                    name: s.name.clone(),
                    verdict: AtomicU8::new(UNKNOWN),
                    detail: Mutex::new("not asked yet".to_string()),
                    evaluations: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Whether a gate of that name is configured.
    pub fn knows(&self, name: &str) -> bool {
        self.cells.iter().any(|c| c.name == name)
    }

    /// The gate's last verdict: holds, fails, or `None` (cannot tell, or no
    /// such gate).
    pub fn verdict(&self, name: &str) -> Option<bool> {
        match self
            .cells
            .iter()
            .find(|c| c.name == name)?
            .verdict
            .load(Ordering::Relaxed)
        {
            HOLDS => Some(true),
            FAILS => Some(false),
            _ => None,
        }
    }

    /// What the gate's last answer said.
    pub fn detail(&self, name: &str) -> String {
        self.cells
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.detail.lock().ok().map(|d| d.clone()))
            .unwrap_or_default()
    }

    /// How many evaluations the gate has had (answered or not).
    pub fn evaluations(&self, name: &str) -> u64 {
        self.cells
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.evaluations.load(Ordering::Relaxed))
    }

    /// Every gate's name, in the order configured.
    pub fn names(&self) -> Vec<String> {
        self.cells.iter().map(|c| c.name.clone()).collect()
    }

    fn set(&self, name: &str, verdict: Option<bool>, detail: String) {
        if let Some(c) = self.cells.iter().find(|c| c.name == name) {
            let v = match verdict {
                Some(true) => HOLDS,
                Some(false) => FAILS,
                None => UNKNOWN,
            };
            c.verdict.store(v, Ordering::Relaxed);
            if let Ok(mut d) = c.detail.lock() {
                *d = detail;
            }
            c.evaluations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Asks the gate's query every interval until `stop` holds true.
pub async fn run_gate(source: GateSource, gates: Arc<MetricGates>, stop: watch::Receiver<bool>) {
    let mut ticker = MetricTicker::new(source.interval, stop);
    let mut unanswered = UnansweredRun::default();
    while ticker.next().await {
        match metric_attempt(&source.query, source.timeout).await {
            Attempt::Judged(r) => {
                if let Some(after) = unanswered.answered() {
                    tracing::info!(gate = %source.name, after, "gate answered again");
                }
                gates.set(&source.name, Some(r.ok), r.detail);
            }
            Attempt::Unanswered(e) | Attempt::Local(e) => {
                if let Some(in_a_row) = unanswered.missed() {
                    tracing::warn!(gate = %source.name, in_a_row, "gate unanswered, ramps hold: {e}");
                }
                gates.set(&source.name, None, format!("unanswered: {e}"));
            }
        }
    }
}
