//! Ramps: a region's traffic dial moved step by step, each step only after the
//! ramp's gates have held for the whole hold time at the step before.
//!
//! [`Ramp`] is the state machine: pure, driven by [`Ramp::tick`] with the time
//! that passed and the gates' combined verdict, so every rule is tested without
//! a clock. [`Ramps`] holds the ramps of an instance; the admin endpoint starts,
//! pauses, resumes and aborts them and runs the task that ticks them
//! (`admin::start_ramps`). Invariants:
//!
//! - A ramp never advances unless every gate said "holds" for a whole hold time
//!   without a break: a gate that cannot tell (`None`: a metric not answered,
//!   etcd away) restarts the hold; it never counts as good.
//! - A failing gate stops the ramp at once and puts the dial at the last step
//!   that held its whole hold (`on_fail = "hold"`; the dial in force when the
//!   ramp started, if no step held yet) or at 0 (`on_fail = "zero"`).
//! - Pausing keeps the dial; resuming starts the hold over. A ramp a gate
//!   stopped resumes only when told, from the dial it was left at.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

/// A condition a ramp waits on. `Some(true)`: holds; `Some(false)`: fails (the
/// ramp stops); `None`: cannot tell now (the ramp waits, never advances).
pub(crate) trait Gate {
    /// What the gate watches, for logs and `/status`.
    fn name(&self) -> String;
    fn verdict(&self) -> Option<bool>;
}

/// The gates' combined verdict: any failure fails, else any unknown is
/// unknown; the first failing gate's name with it.
pub(crate) fn combine(gates: &[&dyn Gate]) -> (Option<bool>, Option<String>) {
    let mut unknown = false;
    for g in gates {
        match g.verdict() {
            Some(false) => return (Some(false), Some(g.name())),
            None => unknown = true,
            Some(true) => {}
        }
    }
    if unknown {
        (None, None)
    } else {
        (Some(true), None)
    }
}

/// Where a failing gate leaves the dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFail {
    /// The last step that held its whole hold.
    Hold,
    Zero,
}

impl OnFail {
    pub fn parse(s: &str) -> Result<OnFail, RampError> {
        match s {
            "hold" | "last_safe" => Ok(OnFail::Hold),
            "zero" => Ok(OnFail::Zero),
            other => Err(RampError(format!(
                "on_fail {other:?}: use last_safe (or hold) or zero"
            ))),
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            OnFail::Hold => "hold",
            OnFail::Zero => "zero",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Running,
    Paused,
    /// Stopped by a gate: which one.
    Failed(String),
    Done,
    Aborted,
}

impl Phase {
    fn label(&self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Failed(_) => "failed",
            Phase::Done => "done",
            Phase::Aborted => "aborted",
        }
    }
    /// Still to be ticked or resumed.
    pub(crate) fn active(&self) -> bool {
        matches!(self, Phase::Running | Phase::Paused)
    }
}

/// A ramp's parameters were refused; the message says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct RampError(pub String);

/// Most steps a ramp takes.
pub(crate) const MAX_STEPS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ramp {
    pub steps: Vec<u8>,
    pub hold: Duration,
    pub on_fail: OnFail,
    /// Index of the next step to set; `steps.len()` once the last is set.
    pub next: usize,
    /// The dial the ramp has in force.
    pub dial: u8,
    /// The last dial that held its whole hold (at start: the dial in force).
    pub safe: u8,
    /// How long the gates have held at `dial`, without a break.
    pub held: Duration,
    pub phase: Phase,
    /// The metric gates (`[gates.NAME]`) the ramp waits on besides the region's
    /// health and etcd.
    #[serde(default)]
    pub gates: Vec<String>,
}

impl Ramp {
    /// A ramp from the dial now in force (`from`) through `steps` (rising,
    /// each 0-100, the last `to`), holding `hold` before each step.
    pub fn new(
        from: u8,
        to: u8,
        steps: &[u8],
        hold: Duration,
        on_fail: OnFail,
    ) -> Result<Ramp, RampError> {
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(RampError(format!(
                "steps: give 1 to {MAX_STEPS}, like 1,5,25,50,100"
            )));
        }
        if steps.iter().any(|&s| s > 100) || steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RampError(format!(
                "steps {steps:?}: whole percents from 0 to 100, each above the one before"
            )));
        }
        if steps.last() != Some(&to) {
            return Err(RampError(format!("the last step must be --to ({to})")));
        }
        if hold.is_zero() {
            return Err(RampError("hold: give a time like 10m or 200ms".to_string()));
        }
        Ok(Ramp {
            steps: steps.to_vec(),
            hold,
            on_fail,
            next: 0,
            dial: from,
            safe: from,
            held: Duration::ZERO,
            phase: Phase::Running,
            gates: Vec::new(),
        })
    }

    /// Advances the ramp by `elapsed` under the gates' `verdict` (with the
    /// failing gate's name). Returns the dial to set when it changes.
    pub fn tick(
        &mut self,
        elapsed: Duration,
        verdict: (Option<bool>, Option<String>),
    ) -> Option<u8> {
        if self.phase != Phase::Running {
            return None;
        }
        match verdict.0 {
            Some(false) => {
                let to = match self.on_fail {
                    OnFail::Hold => self.safe,
                    OnFail::Zero => 0,
                };
                self.phase = Phase::Failed(verdict.1.unwrap_or_else(|| "a gate".to_string()));
                self.dial = to;
                Some(to)
            }
            None => {
                self.held = Duration::ZERO;
                None
            }
            Some(true) => {
                self.held += elapsed;
                if self.held < self.hold {
                    return None;
                }
                self.safe = self.dial;
                self.held = Duration::ZERO;
                match self.steps.get(self.next) {
                    Some(&d) => {
                        self.next += 1;
                        self.dial = d;
                        Some(d)
                    }
                    None => {
                        self.phase = Phase::Done;
                        None
                    }
                }
            }
        }
    }

    pub fn pause(&mut self) {
        if self.phase == Phase::Running {
            self.phase = Phase::Paused;
        }
    }

    /// Goes on after a pause, or after a gate stopped the ramp (once the
    /// operator says so): from the dial it is at, the next step being the first
    /// above it, each after a whole hold again.
    pub fn resume(&mut self) {
        match self.phase {
            Phase::Paused => {}
            Phase::Failed(_) => {
                self.next = self
                    .steps
                    .iter()
                    .position(|&s| s > self.dial)
                    .unwrap_or(self.steps.len());
                self.safe = self.dial;
            }
            _ => return,
        }
        self.phase = Phase::Running;
        self.held = Duration::ZERO;
    }

    pub fn abort(&mut self) {
        if self.phase.active() {
            self.phase = Phase::Aborted;
        }
    }

    /// Time until the ramp is done if every gate holds from now.
    pub(crate) fn time_left(&self) -> Duration {
        if !self.phase.active() {
            return Duration::ZERO;
        }
        let steps_left = (self.steps.len() - self.next) as u32;
        (self.hold * (steps_left + 1)).saturating_sub(self.held)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "steps": self.steps,
            "hold_ms": self.hold.as_millis() as u64,
            "on_fail": self.on_fail.as_str(),
            "dial": self.dial,
            "safe": self.safe,
            "next_step": self.steps.get(self.next),
            "held_ms": self.held.as_millis() as u64,
            "time_left_ms": self.time_left().as_millis() as u64,
            "phase": self.phase.label(),
            "gates": self.gates,
            "failed_gate": match &self.phase { Phase::Failed(g) => Some(g.clone()), _ => None },
        })
    }
}

/// The most bytes of a ramp as the fleet stores it (`ramps/TARGET` in etcd).
pub(crate) const MAX_STORED: usize = 4096;

impl Ramp {
    /// The ramp as the fleet stores it: JSON, the hold time watched left out
    /// (it is the driving instance's own; a new driver starts its hold over).
    pub(crate) fn stored(&self) -> String {
        let mut r = self.clone();
        r.held = Duration::ZERO;
        serde_json::to_string(&r).unwrap_or_default()
    }

    /// Whether two ramps differ only in the hold time watched.
    pub(crate) fn same_but_held(&self, other: &Ramp) -> bool {
        let mut a = self.clone();
        a.held = other.held;
        &a == other
    }

    /// A ramp read from the fleet's store: outside input, so bounded and checked
    /// whole (steps rising 0-100, at most [`MAX_STEPS`]; dials in range; the next
    /// step in the list; a hold from 1 ms to a day; at most 16 gates of sane
    /// names). A refused value changes nothing.
    pub(crate) fn from_stored(value: &[u8]) -> Result<Ramp, RampError> {
        if value.len() > MAX_STORED {
            return Err(RampError(format!(
                "{} bytes; at most {MAX_STORED}",
                value.len()
            )));
        }
        let mut r: Ramp =
            serde_json::from_slice(value).map_err(|e| RampError(format!("not a ramp: {e}")))?;
        let name_ok = |g: &str| {
            !g.is_empty() && g.len() <= 64 && g.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        };
        let ok = !r.steps.is_empty()
            && r.steps.len() <= MAX_STEPS
            && r.steps.iter().all(|&s| s <= 100)
            && r.steps.windows(2).all(|w| w[0] < w[1])
            && r.dial <= 100
            && r.safe <= 100
            && r.next <= r.steps.len()
            && r.hold >= Duration::from_millis(1)
            && r.hold <= Duration::from_secs(86_400)
            && r.gates.len() <= 16
            && r.gates.iter().all(|g| name_ok(g))
            && match &r.phase {
                Phase::Failed(g) => g.len() <= 256,
                _ => true,
            };
        if !ok {
            return Err(RampError(
                "a ramp out of range (steps, dial, next step, hold or gates)".to_string(),
            ));
        }
        r.held = Duration::ZERO;
        Ok(r)
    }
}

/// Parses `1,5,25,50,100`.
pub(crate) fn parse_steps(s: &str) -> Result<Vec<u8>, RampError> {
    if s.len() > 4 * MAX_STEPS {
        return Err(RampError(format!("steps: at most {MAX_STEPS}")));
    }
    s.split(',')
        .map(|p| {
            p.trim().trim_end_matches('%').parse::<u8>().map_err(|_| {
                RampError(format!("step {p:?}: use whole percents like 1,5,25,50,100"))
            })
        })
        .collect()
}

/// An instance's ramps, by target (`region:NAME`), with how many failed.
#[derive(Debug, Default)]
pub struct Ramps {
    pub ramps: Mutex<BTreeMap<String, Ramp>>,
    pub failures: std::sync::atomic::AtomicU64,
    /// Ramps stopped, by the gate that stopped them.
    pub failed_by: Mutex<BTreeMap<String, u64>>,
    /// Where the ramps are kept across restarts: beside the state file.
    pub file: Option<std::path::PathBuf>,
    /// Wakes the ticker when a ramp starts or resumes; it sleeps while none runs.
    pub wake: tokio::sync::Notify,
}

/// The ramps' file beside a state file: `STATE.ramps.json`.
pub(crate) fn file_beside(state_file: &std::path::Path) -> std::path::PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".ramps.json");
    name.into()
}

impl Ramps {
    /// The ramps kept in `file`, if any; a ramp that was running starts its
    /// hold over (no time counts that was not watched). A file that does not
    /// parse is reported and ignored.
    pub fn load(file: Option<std::path::PathBuf>) -> (Ramps, Option<String>) {
        let mut ramps = BTreeMap::new();
        let mut err = None;
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, Ramp>>(&bytes) {
                    Ok(m) => ramps = m,
                    Err(e) => err = Some(format!("{}: {e}", path.display())),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => err = Some(format!("{}: {e}", path.display())),
            }
        }
        for r in ramps.values_mut() {
            r.held = Duration::ZERO;
        }
        let out = Ramps {
            ramps: Mutex::new(ramps),
            failures: Default::default(),
            failed_by: Default::default(),
            file,
            wake: tokio::sync::Notify::new(),
        };
        (out, err)
    }

    /// Writes the ramps to their file (atomically), if they have one.
    pub fn save(&self, ramps: &BTreeMap<String, Ramp>) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(ramps).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const GOOD: (Option<bool>, Option<String>) = (Some(true), None);

    fn bad() -> (Option<bool>, Option<String>) {
        (Some(false), Some("health of region:b".to_string()))
    }

    #[test]
    fn each_step_waits_a_whole_hold_of_good_gates() {
        let mut r = Ramp::new(0, 100, &[10, 50, 100], 200 * MS, OnFail::Hold).unwrap();
        assert_eq!(r.tick(150 * MS, GOOD), None);
        // Unknown restarts the hold: 150 + 100 ms with a break do not make 200.
        assert_eq!(r.tick(10 * MS, (None, None)), None);
        assert_eq!(r.tick(100 * MS, GOOD), None);
        assert_eq!(r.tick(100 * MS, GOOD), Some(10));
        assert_eq!(r.tick(200 * MS, GOOD), Some(50));
        assert_eq!(r.time_left(), 400 * MS);
        assert_eq!(r.tick(200 * MS, GOOD), Some(100));
        assert_eq!(r.phase, Phase::Running);
        assert_eq!(r.tick(200 * MS, GOOD), None);
        assert_eq!(r.phase, Phase::Done);
    }

    #[test]
    fn a_failing_gate_stops_at_the_last_safe_step_or_zero() {
        let mut r = Ramp::new(0, 100, &[10, 50, 100], 200 * MS, OnFail::Hold).unwrap();
        r.tick(200 * MS, GOOD);
        r.tick(200 * MS, GOOD);
        assert_eq!(r.dial, 50);
        // 50 has not held yet: back to 10, the last that did.
        assert_eq!(r.tick(MS, bad()), Some(10));
        assert_eq!(r.phase, Phase::Failed("health of region:b".into()));
        assert_eq!(r.tick(200 * MS, GOOD), None, "a failed ramp stays stopped");
        // Told to resume: from 10, 50 again after a whole hold.
        r.resume();
        assert_eq!(r.phase, Phase::Running);
        assert_eq!(r.tick(150 * MS, GOOD), None);
        assert_eq!(r.tick(50 * MS, GOOD), Some(50));

        let mut z = Ramp::new(0, 100, &[10, 50, 100], 200 * MS, OnFail::Zero).unwrap();
        z.tick(200 * MS, GOOD);
        assert_eq!(z.tick(MS, bad()), Some(0));
    }

    #[test]
    fn pause_keeps_the_dial_and_resume_starts_the_hold_over() {
        let mut r = Ramp::new(0, 100, &[50, 100], 200 * MS, OnFail::Hold).unwrap();
        r.tick(150 * MS, GOOD);
        r.pause();
        assert_eq!(r.tick(500 * MS, GOOD), None);
        r.resume();
        assert_eq!(r.tick(150 * MS, GOOD), None);
        assert_eq!(r.tick(50 * MS, GOOD), Some(50));
        r.abort();
        assert_eq!(r.phase, Phase::Aborted);
        assert_eq!(r.tick(500 * MS, GOOD), None);
    }

    #[test]
    fn a_stored_ramp_is_checked_whole() {
        let mut r = Ramp::new(0, 100, &[10, 50, 100], 200 * MS, OnFail::Hold).unwrap();
        r.gates = vec!["errors_eu".into()];
        r.tick(150 * MS, GOOD);
        let back = Ramp::from_stored(r.stored().as_bytes()).unwrap();
        assert!(back.same_but_held(&r) && back.held.is_zero());
        let hostile = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&r.stored()).unwrap();
            f(&mut v);
            Ramp::from_stored(v.to_string().as_bytes())
        };
        assert!(hostile(&|v| v["dial"] = 250.into()).is_err());
        assert!(hostile(&|v| v["next"] = 9.into()).is_err());
        assert!(hostile(&|v| v["steps"] = serde_json::json!([50, 10])).is_err());
        assert!(hostile(&|v| v["steps"] = serde_json::json!([])).is_err());
        assert!(hostile(&|v| v["hold"] = serde_json::json!({"secs": 0, "nanos": 0})).is_err());
        assert!(hostile(&|v| v["gates"] = serde_json::json!(vec!["x"; 17])).is_err());
        assert!(Ramp::from_stored(b"garbage").is_err());
        assert!(Ramp::from_stored(&vec![b' '; MAX_STORED + 1]).is_err());
    }

    #[test]
    fn bad_parameters_are_refused() {
        let h = 200 * MS;
        assert!(Ramp::new(0, 100, &[], h, OnFail::Hold).is_err());
        assert!(Ramp::new(0, 100, &[50, 25, 100], h, OnFail::Hold).is_err());
        assert!(Ramp::new(0, 100, &[5, 50], h, OnFail::Hold).is_err());
        assert!(Ramp::new(0, 100, &[100], Duration::ZERO, OnFail::Hold).is_err());
        assert!(parse_steps("1,5,x").is_err());
        assert!(parse_steps("1,5,300").is_err());
        assert_eq!(parse_steps("1, 5%,100"), Ok(vec![1, 5, 100]));
        assert!(OnFail::parse("maybe").is_err());
    }
}
