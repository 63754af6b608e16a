//! Measured latency: samples of round trips from client networks to regions,
//! turned into the [`LatencyTable`](crate::policy::LatencyTable) the `latency`
//! strategy already reads (issue 29).
//!
//! - [`table`]: the aggregator, pure (no I/O, no clock: `now` is passed in).
//!   Samples go into a bounded window per (client network, region); a figure
//!   counts once it has enough samples from enough distinct senders; stale
//!   figures age out; the number of networks is bounded. [`Aggregator::snapshot`]
//!   builds a `LatencyTable`.
//! - [`hysteresis`]: the winning region of a network moves only when another is
//!   better by a margin, held for a time.
//! - [`probe`]: site probes: this instance times a DNS query from its own
//!   region to the resolvers that ask it.
//! - [`share`]: the figures each instance publishes to the fleet, and the
//!   other sites' figures merged into the table.
//! - [`rum`]: the collector listener: the beacon script real users' browsers
//!   run, `POST /v1/beacon` for their figures, `POST /v1/feed` for the
//!   operator's own telemetry.
//!
//! The application owns a [`LatencyHandle`] per set of regions, gives it to
//! [`rum::serve`], and asks it for a fresh table every so often
//! ([`LatencyHandle::snapshot`]); wiring that table into the serving snapshot is
//! the application's step, not this module's.

pub mod hysteresis;
mod key;
mod live;
mod matrix;
pub mod probe;
pub mod rum;
pub mod share;
pub mod table;

#[cfg(test)]
mod tests;

pub use hysteresis::{next_winner, Hysteresis, Standing, Steady};
pub use table::{Aggregator, AggregatorLimits, Figure, NetKey, Rejected, Sample, Sender};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::policy::LatencyTable;

/// The aggregator shared by the collector (which adds samples) and the
/// application (which takes snapshots). The lock is held for one beacon's
/// samples or one snapshot, never across I/O; the query path never takes it,
/// it reads the snapshot's `Arc<LatencyTable>`.
#[derive(Clone)]
pub struct LatencyHandle(Arc<Mutex<Aggregator>>);

impl LatencyHandle {
    pub fn new(agg: Aggregator) -> LatencyHandle {
        LatencyHandle(Arc::new(Mutex::new(agg)))
    }

    /// The aggregator, locked. A panic while it was held leaves it usable:
    /// every change to it is one whole sample.
    pub fn lock(&self) -> MutexGuard<'_, Aggregator> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh table as of `now` (stale figures dropped first).
    pub fn snapshot(&self, now: Instant) -> Arc<LatencyTable> {
        let mut agg = self.lock();
        agg.expire(now);
        Arc::new(agg.snapshot(now))
    }

    /// A fresh table as of `now` with the other sites' figures of `sharing`
    /// merged in, each network's winner held by `steady`'s hysteresis; none
    /// when no network's published figures changed since the last one.
    pub(crate) fn refresh_shared(
        &self,
        now: Instant,
        sharing: &share::Sharing,
        steady: &mut Steady<NetKey>,
    ) -> Option<Arc<LatencyTable>> {
        let regions = self.lock().regions().to_vec();
        let shared = sharing.merged(&regions, now);
        let mut agg = self.lock();
        agg.refresh(now, &shared, Some(steady)).map(Arc::new)
    }

    /// The measured matrix of the last published rows (see `matrix`):
    /// `area` names a network's client area, `top` bounds the areas.
    pub fn matrix(&self, area: &dyn Fn(&NetKey) -> String, top: usize) -> serde_json::Value {
        let agg = self.lock();
        let rows = agg.published();
        let regions = agg.regions().to_vec();
        drop(agg);
        matrix::matrix(rows.as_deref(), &regions, area, top, Instant::now())
    }
}
