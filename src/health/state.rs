//! The one place that decides up or down: probes only report raw results, and this
//! state machine turns them into a verdict with rise/fall hysteresis, then an
//! operator's override, if any, has the last word.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::Initial;

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    /// From the start of the connection to the verdict (the timeout, for a timeout).
    pub latency: Duration,
    /// What an operator reads in the log and `/status`: "HTTP 503", "connect
    /// refused", "timeout after 2s".
    pub detail: String,
}

/// Probed health: what the state machine concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    Up,
    Down,
}

impl Health {
    pub(crate) fn from_up(up: bool) -> Self {
        if up {
            Health::Up
        } else {
            Health::Down
        }
    }

    pub fn is_up(self) -> bool {
        self == Health::Up
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// A change of probed health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
}

/// The anti-flap state machine of one target.
///
/// `successes` and `failures` count the current run of equal results; a result of
/// the other kind resets the run. So a target comes up only after `rise` passes in a
/// row and goes down only after `fall` failures in a row, and a target alternating
/// pass/fail (with rise and fall of 2 or more) keeps whatever state it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub up: bool,
    pub successes: u32,
    pub failures: u32,
    pub last: Option<ProbeResult>,
}

impl State {
    pub fn new(initial: Initial) -> Self {
        Self::with_up(initial == Initial::Up)
    }

    /// A state that starts from a known verdict, e.g. one saved before a restart.
    pub(crate) fn with_up(up: bool) -> Self {
        State {
            up,
            successes: 0,
            failures: 0,
            last: None,
        }
    }

    pub fn health(&self) -> Health {
        Health::from_up(self.up)
    }

    /// Counts one probe result and returns the transition it caused, if any.
    ///
    /// A `rise` or `fall` of 0 acts as 1: a threshold of zero results would mean
    /// flipping without evidence.
    pub(crate) fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Transition> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if !self.up && self.successes >= rise.max(1) {
                self.up = true;
                return Some(Transition {
                    from: Health::Down,
                    to: Health::Up,
                });
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.up && self.failures >= fall.max(1) {
                self.up = false;
                return Some(Transition {
                    from: Health::Up,
                    to: Health::Down,
                });
            }
        }
        None
    }

    /// Like [`State::observe`], and keeps the result as `last` for status output.
    pub fn record(&mut self, result: ProbeResult, rise: u32, fall: u32) -> Option<Transition> {
        let t = self.observe(result.ok, rise, fall);
        self.last = Some(result);
        t
    }
}

/// An operator's decision about a target (or, keyed by name in saved state, about a
/// region or endpoint), kept apart from probed health so that lifting it reveals
/// the current probed state rather than a stale one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Override {
    /// Probes decide.
    #[default]
    None,
    /// Answer with it whatever probes say (e.g. a probe that is itself broken).
    ForceUp,
    /// Never answer with it: it is broken.
    ForceDown,
    /// Never answer with it: it is being taken out on purpose (maintenance).
    /// Serves like `ForceDown`; reported differently so that nobody pages for it.
    Drain,
}

impl Override {
    pub fn is_none(&self) -> bool {
        *self == Override::None
    }

    /// The status a target shows with this override over `probed` health.
    pub(crate) fn apply(self, probed: Health) -> Status {
        match self {
            Override::None => match probed {
                Health::Up => Status::Up,
                Health::Down => Status::Down,
            },
            Override::ForceUp => Status::ForcedUp,
            Override::ForceDown => Status::ForcedDown,
            Override::Drain => Status::Draining,
        }
    }

    /// The compact code kept in the health table's atomic byte.
    pub(crate) fn code(self) -> u8 {
        match self {
            Override::None => 0,
            Override::ForceUp => 1,
            Override::ForceDown => 2,
            Override::Drain => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Self {
        match code & 0b11 {
            1 => Override::ForceUp,
            2 => Override::ForceDown,
            3 => Override::Drain,
            _ => Override::None,
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Override::None => "none",
            Override::ForceUp => "force-up",
            Override::ForceDown => "force-down",
            Override::Drain => "drain",
        })
    }
}

/// Effective state: the override if any, else probed health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Up,
    Down,
    ForcedUp,
    ForcedDown,
    Draining,
}

impl Status {
    /// Whether answers may include the target.
    pub fn is_up(self) -> bool {
        matches!(self, Status::Up | Status::ForcedUp)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Up => "up",
            Status::Down => "down",
            Status::ForcedUp => "forced-up",
            Status::ForcedDown => "forced-down",
            Status::Draining => "draining",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a pattern of results ('+' pass, '-' fail) and returns the health after
    /// each one.
    fn run(initial: Initial, rise: u32, fall: u32, pattern: &str) -> String {
        let mut s = State::new(initial);
        pattern
            .chars()
            .map(|c| {
                s.observe(c == '+', rise, fall);
                if s.up {
                    'U'
                } else {
                    'D'
                }
            })
            .collect()
    }

    #[test]
    fn goes_down_after_exactly_fall_failures() {
        assert_eq!(run(Initial::Up, 2, 3, "---"), "UUD");
        assert_eq!(run(Initial::Up, 2, 1, "-"), "D");
        assert_eq!(run(Initial::Up, 2, 5, "-----"), "UUUUD");
    }

    #[test]
    fn comes_up_after_exactly_rise_passes() {
        assert_eq!(run(Initial::Down, 2, 3, "++"), "DU");
        assert_eq!(run(Initial::Down, 1, 3, "+"), "U");
        assert_eq!(run(Initial::Down, 4, 3, "++++"), "DDDU");
    }

    #[test]
    fn an_interrupted_run_starts_over() {
        assert_eq!(run(Initial::Up, 2, 3, "--+---"), "UUUUUD");
        assert_eq!(run(Initial::Down, 3, 3, "++-+++"), "DDDDDU");
    }

    #[test]
    fn alternating_results_never_flip() {
        let alt: String = "+-".repeat(50);
        for (rise, fall) in [(2, 2), (3, 3), (2, 5)] {
            assert!(run(Initial::Up, rise, fall, &alt).chars().all(|c| c == 'U'));
            assert!(run(Initial::Down, rise, fall, &alt)
                .chars()
                .all(|c| c == 'D'));
        }
        // Pairs still cannot flip a threshold of 3.
        let pairs: String = "++--".repeat(20);
        assert!(run(Initial::Up, 3, 3, &pairs).chars().all(|c| c == 'U'));
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        assert_eq!(run(Initial::Up, 0, 0, "-+-"), "DUD");
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut s = State::new(Initial::Up);
        let mut seen = vec![];
        for ok in [false, false, false, false, true, true, true] {
            if let Some(t) = s.observe(ok, 2, 2) {
                seen.push(t);
            }
        }
        assert_eq!(
            seen,
            vec![
                Transition {
                    from: Health::Up,
                    to: Health::Down
                },
                Transition {
                    from: Health::Down,
                    to: Health::Up
                }
            ]
        );
    }

    #[test]
    fn counters_saturate() {
        let mut s = State::with_up(true);
        s.successes = u32::MAX;
        assert_eq!(s.observe(true, 2, 2), None);
        assert_eq!(s.successes, u32::MAX);
    }

    #[test]
    fn record_keeps_last_result() {
        let mut s = State::new(Initial::Up);
        let r = ProbeResult {
            ok: false,
            latency: Duration::from_millis(3),
            detail: "HTTP 503".into(),
        };
        assert_eq!(s.record(r.clone(), 1, 1).map(|t| t.to), Some(Health::Down));
        assert_eq!(s.last, Some(r));
    }

    #[test]
    fn overrides_win_over_probed_health() {
        for probed in [Health::Up, Health::Down] {
            assert!(Override::ForceUp.apply(probed).is_up());
            assert!(!Override::ForceDown.apply(probed).is_up());
            assert!(!Override::Drain.apply(probed).is_up());
            assert_eq!(Override::None.apply(probed).is_up(), probed.is_up());
        }
        assert_eq!(Override::Drain.apply(Health::Up), Status::Draining);
        assert_eq!(Override::ForceDown.apply(Health::Up), Status::ForcedDown);
    }

    #[test]
    fn override_codes_round_trip() {
        for o in [
            Override::None,
            Override::ForceUp,
            Override::ForceDown,
            Override::Drain,
        ] {
            assert_eq!(Override::from_code(o.code()), o);
        }
    }
}
