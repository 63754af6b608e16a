//! The last health transitions, for the dashboard and `GET /v1/transitions`: a
//! bounded ring, so a flapping target can fill it but never grow it. The metric
//! `signpost_health_transitions_total` counts every change; this keeps what each
//! of the recent ones was and why.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many transitions the ring keeps: enough for an operator looking back over
/// an incident, small enough to send on every dashboard refresh.
pub const RECENT_TRANSITIONS: usize = 100;

/// One change of what answers may use: a probe verdict, or an operator override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub at: SystemTime,
    /// A probe target's stable key, or the `region:` / `endpoint:` name of an override.
    pub target: String,
    pub from: String,
    pub to: String,
    /// The probe detail that completed the run, or who changed the override.
    pub reason: String,
}

/// Shared by every generation of the health table and by each target's slot, so
/// a reload keeps the history and a probe task records without the table.
#[derive(Debug, Default)]
pub struct RecentTransitions {
    ring: Mutex<VecDeque<Recorded>>,
}

impl RecentTransitions {
    pub fn record(&self, r: Recorded) {
        // A writer that panicked mid-push leaves a valid deque; keep using it.
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == RECENT_TRANSITIONS {
            ring.pop_front();
        }
        ring.push_back(r);
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> Vec<Recorded> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_hundred_newest_first() {
        let r = RecentTransitions::default();
        for i in 0..(RECENT_TRANSITIONS + 7) {
            r.record(Recorded {
                at: SystemTime::UNIX_EPOCH,
                target: format!("t{i}"),
                from: "up".into(),
                to: "down".into(),
                reason: "HTTP 503".into(),
            });
        }
        let v = r.newest_first();
        assert_eq!(v.len(), RECENT_TRANSITIONS);
        assert_eq!(v[0].target, format!("t{}", RECENT_TRANSITIONS + 6));
        assert_eq!(v[RECENT_TRANSITIONS - 1].target, "t7");
    }
}
