//! The task that runs load shedding for one region: every interval, ask the
//! metric server for the region's load figure, feed it to the [`Shed`] state
//! machine, and publish the dial it asks for in the [`ShedDials`] cell.
//!
//! As with metric checks, a failure to ask is no figure: the dial holds (see
//! `shed`), the failure is counted with the unanswered metric checks and logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::probe::{figure, MetricTicker, UnansweredRun};
use super::shed::{Shed, ShedDials, ShedPlan};
use super::spec::MetricQuery;

/// What one region's shedding asks and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct ShedSource {
    pub region: String,
    /// The load query, whose highest series is the region's figure; `None`: the
    /// load is pushed (`ShedDials::push_load`).
    pub query: Option<MetricQuery>,
    pub plan: ShedPlan,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Runs until `stop` holds true (or its sender is gone).
pub async fn run_shed(source: ShedSource, dials: Arc<ShedDials>, stop: watch::Receiver<bool>) {
    let mut state = Shed::new();
    let mut ticker = MetricTicker::new(source.interval, stop);
    let mut unanswered = UnansweredRun::default();
    while ticker.next().await {
        let asked = match &source.query {
            Some(q) => figure(q, source.timeout).await,
            None => Ok(dials.pushed_load(&source.region, std::time::SystemTime::now())),
        };
        let load = match asked {
            Ok(v) => {
                if let Some(after) = unanswered.answered() {
                    tracing::info!(region = %source.region, after, "load figure answered again");
                }
                v
            }
            Err(e) => {
                if let Some(in_a_row) = unanswered.missed() {
                    tracing::warn!(region = %source.region, in_a_row, "load figure unanswered, dial kept: {e}");
                }
                None
            }
        };
        dials.set_load(&source.region, load);
        if let Some(m) = state.observe(&source.plan, load) {
            dials.set(&source.region, m.to);
            dials.count_move(&source.region);
            tracing::info!(
                region = %source.region,
                from = m.from,
                to = m.to,
                load = m.load,
                "shedding dial moved: {}",
                m.why
            );
        }
    }
}
