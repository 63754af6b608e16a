//! Load shedding: from a region's load figure to the traffic dial it should
//! have, one evaluation at a time.
//!
//! Over the `high` watermark the dial goes down by `step` percentage points per
//! evaluation (after `after` such evaluations in a row), never below `floor`;
//! under the `low` watermark it goes back up the same way, to 100; between the
//! two it holds, so a load that settles between the watermarks settles the dial.
//! A missing figure (the metric server unreachable, a pushed value expired) is no
//! evidence either way: the dial holds and the runs start over.
//!
//! Invariants: `floor <= dial <= 100` after every step; one evaluation moves the
//! dial by at most `step`; `low < high`. The state machine is pure (no clock, no
//! I/O): the caller feeds it one figure per evaluation and publishes the result
//! in a [`ShedDials`] cell, which is what traffic dials read (a percentage per
//! region, one atomic load).

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

/// How one region sheds load, as compiled from the operator's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShedPlan {
    /// Under this load the dial goes back up.
    pub low: f64,
    /// Over this load the dial goes down.
    pub high: f64,
    /// The dial never goes below this percentage (0..=100).
    pub floor: u8,
    /// Percentage points per move (1..=100).
    pub step: u8,
    /// Evaluations in a row over `high` (or under `low`) before each move (>= 1).
    pub after: u32,
}

impl Default for ShedPlan {
    fn default() -> Self {
        ShedPlan {
            low: 0.0,
            high: 1.0,
            floor: 0,
            step: 10,
            after: 1,
        }
    }
}

impl ShedPlan {
    /// Whether the plan can run: watermarks in order, floor and step in range.
    pub fn check(&self) -> Result<(), String> {
        if !(self.low.is_finite() && self.high.is_finite()) || self.low >= self.high {
            return Err(format!(
                "low ({}) must be below high ({})",
                self.low, self.high
            ));
        }
        if self.floor > 100 {
            return Err(format!("floor {}: use 0 to 100 (a percentage)", self.floor));
        }
        if self.step == 0 || self.step > 100 {
            return Err(format!(
                "step {}: use 1 to 100 percentage points",
                self.step
            ));
        }
        if self.after == 0 {
            return Err("after: at least 1 evaluation".into());
        }
        Ok(())
    }
}

/// Why the dial moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The load was over the high watermark.
    OverHigh,
    /// The load was under the low watermark.
    UnderLow,
    /// The floor was raised above the dial.
    Floor,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Why::OverHigh => "load over the high watermark",
            Why::UnderLow => "load under the low watermark",
            Why::Floor => "the floor was raised",
        })
    }
}

/// One move of the dial, for the log, the counters and explain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Move {
    pub from: u8,
    pub to: u8,
    pub load: f64,
    pub why: Why,
}

/// One region's shedding state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shed {
    dial: u8,
    /// Evaluations in a row over `high`.
    over: u32,
    /// Evaluations in a row under `low`.
    under: u32,
}

impl Default for Shed {
    fn default() -> Self {
        Shed::new()
    }
}

impl Shed {
    /// Full traffic: nothing shed.
    pub fn new() -> Self {
        Shed {
            dial: 100,
            over: 0,
            under: 0,
        }
    }

    /// The dial this state asks for, in percent.
    pub fn dial(&self) -> u8 {
        self.dial
    }

    /// Feeds one evaluation's load figure (`None`: no figure this time) and
    /// returns the move it caused, if any.
    pub(crate) fn observe(&mut self, plan: &ShedPlan, load: Option<f64>) -> Option<Move> {
        let floor = plan.floor.min(100);
        let step = plan.step.max(1);
        let after = plan.after.max(1);
        // A plan changed by a reload may have raised the floor above the dial.
        if self.dial < floor {
            let from = self.dial;
            self.dial = floor;
            return Some(Move {
                from,
                to: floor,
                load: load.unwrap_or(f64::NAN),
                why: Why::Floor,
            });
        }
        let Some(load) = load.filter(|l| !l.is_nan()) else {
            self.over = 0;
            self.under = 0;
            return None;
        };
        let (why, to) = if load > plan.high {
            self.under = 0;
            self.over = self.over.saturating_add(1);
            if self.over < after {
                return None;
            }
            (Why::OverHigh, self.dial.saturating_sub(step).max(floor))
        } else if load < plan.low {
            self.over = 0;
            self.under = self.under.saturating_add(1);
            if self.under < after {
                return None;
            }
            (Why::UnderLow, self.dial.saturating_add(step).min(100))
        } else {
            self.over = 0;
            self.under = 0;
            return None;
        };
        // Each move needs its own run of evaluations.
        self.over = 0;
        self.under = 0;
        if to == self.dial {
            return None;
        }
        let from = self.dial;
        self.dial = to;
        Some(Move {
            from,
            to,
            load,
            why,
        })
    }
}

/// The dials shedding asks for, one cell per region, read lock-free: what a
/// traffic dial combines with its own setting (the lower of the two serves).
#[derive(Debug)]
pub struct ShedDials {
    regions: Vec<(String, AtomicU8)>,
    /// The last load figure of each region (f64 bits; NaN: none), for status.
    loads: Vec<std::sync::atomic::AtomicU64>,
    /// Regions whose load is pushed (not asked for): the last value and until
    /// when it counts.
    pushed: Vec<Option<std::sync::Mutex<Option<PushedLoad>>>>,
    /// Each region's watermarks (low, high), for explain; NaN when not given.
    marks: Vec<(f64, f64)>,
    /// Moves of each region's dial, for `signpost_shed_moves_total`.
    moves: Vec<std::sync::atomic::AtomicU64>,
}

/// A pushed load value and until when it counts.
type PushedLoad = (f64, std::time::SystemTime);

impl ShedDials {
    /// A cell at 100% for each region (with whether its load is pushed).
    pub fn new(regions: impl IntoIterator<Item = (String, bool)>) -> Self {
        let (regions, pushed): (Vec<_>, Vec<_>) = regions
            .into_iter()
            .map(|(r, p)| {
                (
                    (r, AtomicU8::new(100)),
                    p.then(|| std::sync::Mutex::new(None)),
                )
            })
            .unzip();
        let loads = pushed
            .iter()
            .map(|_| std::sync::atomic::AtomicU64::new(f64::NAN.to_bits()))
            .collect();
        let marks = regions.iter().map(|_| (f64::NAN, f64::NAN)).collect();
        let moves = regions.iter().map(|_| Default::default()).collect();
        ShedDials {
            regions,
            loads,
            pushed,
            marks,
            moves,
        }
    }

    /// A cell at 100% for each `[shed.REGION]`: its name, whether its load is
    /// pushed, and its plan (whose watermarks explain names).
    pub fn with_plans(regions: impl IntoIterator<Item = (String, bool, ShedPlan)>) -> Self {
        let (regions, plans): (Vec<_>, Vec<_>) = regions
            .into_iter()
            .map(|(r, p, plan)| ((r, p), plan))
            .unzip();
        let mut d = ShedDials::new(regions);
        d.marks = plans.iter().map(|p| (p.low, p.high)).collect();
        d
    }

    /// The cell index of `region`, for [`ShedDials::at`].
    pub fn index(&self, region: &str) -> Option<usize> {
        self.regions.iter().position(|(r, _)| r == region)
    }

    /// The dial of the cell at `i` (from [`ShedDials::index`]); 100 past the end.
    #[inline]
    pub fn at(&self, i: usize) -> u8 {
        self.regions
            .get(i)
            .map_or(100, |(_, d)| d.load(Ordering::Relaxed))
    }

    /// Why the cell at `i` asks for its dial, for explain:
    /// `shed: load 0.91 over high 0.8, dial 70`.
    pub fn note(&self, i: usize) -> String {
        let dial = self.at(i);
        let load = self
            .loads
            .get(i)
            .map_or(f64::NAN, |l| f64::from_bits(l.load(Ordering::Relaxed)));
        let (low, high) = self.marks.get(i).copied().unwrap_or((f64::NAN, f64::NAN));
        let figure = if load.is_nan() {
            "no load figure now".to_string()
        } else if load > high {
            format!("load {load} over high {high}")
        } else if load < low {
            format!("load {load} under low {low}")
        } else {
            format!("load {load} between low {low} and high {high}")
        };
        format!("shed: {figure}, dial {dial}")
    }

    /// Counts one move of `region`'s dial.
    pub fn count_move(&self, region: &str) {
        if let Some(m) = self.index(region).and_then(|i| self.moves.get(i)) {
            m.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every region with its count of moves, in the order given.
    pub fn moves(&self) -> Vec<(String, u64)> {
        self.regions
            .iter()
            .zip(&self.moves)
            .map(|((r, _), m)| (r.clone(), m.load(Ordering::Relaxed)))
            .collect()
    }

    /// Takes a pushed load value for `region`, counting until `now + ttl`.
    pub(crate) fn push_load(
        &self,
        region: &str,
        value: f64,
        ttl: std::time::Duration,
        now: std::time::SystemTime,
    ) -> Result<(), String> {
        let Some(i) = self.regions.iter().position(|(r, _)| r == region) else {
            return Err(format!("{region:?} has no [shed.{region}]"));
        };
        let Some(cell) = &self.pushed[i] else {
            return Err(format!(
                "[shed.{region}] asks a query; its load cannot be pushed"
            ));
        };
        if !value.is_finite() {
            return Err("value: give a finite number".into());
        }
        if !(super::verdict::MIN_TTL..=super::verdict::MAX_TTL).contains(&ttl) {
            return Err(format!("ttl {ttl:?} is out of range; give 1s to 1h"));
        }
        *cell.lock().unwrap_or_else(|p| p.into_inner()) = Some((value, now + ttl));
        Ok(())
    }

    /// The pushed load of `region` still counting at `now`.
    pub(crate) fn pushed_load(&self, region: &str, now: std::time::SystemTime) -> Option<f64> {
        let i = self.regions.iter().position(|(r, _)| r == region)?;
        let v = *self.pushed[i]
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        v.filter(|(_, until)| *until > now).map(|(v, _)| v)
    }

    /// Keeps a region's last load figure (`None`: none this time), for status.
    pub fn set_load(&self, region: &str, load: Option<f64>) {
        if let Some(i) = self.regions.iter().position(|(r, _)| r == region) {
            self.loads[i].store(load.unwrap_or(f64::NAN).to_bits(), Ordering::Relaxed);
        }
    }

    /// Every region with its dial and last load figure, in the order given.
    pub fn status(&self) -> Vec<(String, u8, Option<f64>)> {
        self.regions
            .iter()
            .zip(&self.loads)
            .map(|((r, d), l)| {
                let load = f64::from_bits(l.load(Ordering::Relaxed));
                (
                    r.clone(),
                    d.load(Ordering::Relaxed),
                    (!load.is_nan()).then_some(load),
                )
            })
            .collect()
    }

    /// The region's dial in percent; 100 for a region that does not shed.
    pub fn get(&self, region: &str) -> u8 {
        self.regions
            .iter()
            .find(|(r, _)| r == region)
            .map_or(100, |(_, d)| d.load(Ordering::Relaxed))
    }

    /// Publishes a region's dial (clamped to 100); false for an unknown region.
    pub fn set(&self, region: &str, percent: u8) -> bool {
        match self.regions.iter().find(|(r, _)| r == region) {
            Some((_, d)) => {
                if d.swap(percent.min(100), Ordering::Relaxed) != percent.min(100) {
                    super::bump_epoch();
                }
                true
            }
            None => false,
        }
    }

    /// Every region with its dial, in the order given.
    pub fn all(&self) -> Vec<(String, u8)> {
        self.regions
            .iter()
            .map(|(r, d)| (r.clone(), d.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> ShedPlan {
        ShedPlan {
            low: 0.6,
            high: 0.8,
            floor: 30,
            step: 20,
            after: 1,
        }
    }

    /// The dial after each load figure.
    fn run(plan: &ShedPlan, loads: &[Option<f64>]) -> Vec<u8> {
        let mut s = Shed::new();
        loads
            .iter()
            .map(|l| {
                s.observe(plan, *l);
                s.dial()
            })
            .collect()
    }

    #[test]
    fn over_high_steps_down_to_the_floor_and_no_further() {
        let p = plan();
        assert_eq!(run(&p, &[Some(0.9); 6]), vec![80, 60, 40, 30, 30, 30]);
    }

    #[test]
    fn under_low_steps_back_up_to_full() {
        let p = plan();
        let mut loads = vec![Some(0.95); 4];
        loads.extend([Some(0.1); 5]);
        assert_eq!(run(&p, &loads), vec![80, 60, 40, 30, 50, 70, 90, 100, 100]);
    }

    #[test]
    fn between_the_watermarks_the_dial_holds() {
        let p = plan();
        assert_eq!(
            run(&p, &[Some(0.9), Some(0.7), Some(0.7), Some(0.8), Some(0.6)]),
            vec![80, 80, 80, 80, 80]
        );
    }

    #[test]
    fn no_figure_is_no_evidence() {
        let p = ShedPlan { after: 2, ..plan() };
        // Over, unknown, over: the run started over, so no move yet.
        assert_eq!(
            run(&p, &[Some(0.9), None, Some(0.9), Some(0.9), Some(f64::NAN)]),
            vec![100, 100, 100, 80, 80]
        );
    }

    #[test]
    fn each_move_needs_its_own_run() {
        let p = ShedPlan { after: 3, ..plan() };
        assert_eq!(run(&p, &[Some(0.9); 7]), vec![100, 100, 80, 80, 80, 60, 60]);
        // A figure between the watermarks breaks the run.
        assert_eq!(
            run(
                &p,
                &[
                    Some(0.9),
                    Some(0.9),
                    Some(0.7),
                    Some(0.9),
                    Some(0.9),
                    Some(0.9)
                ]
            ),
            vec![100, 100, 100, 100, 100, 80]
        );
    }

    #[test]
    fn moves_are_reported_with_their_reason() {
        let p = plan();
        let mut s = Shed::new();
        assert_eq!(s.observe(&p, Some(0.5)), None);
        let m = s.observe(&p, Some(0.85)).expect("a move");
        assert_eq!((m.from, m.to, m.why), (100, 80, Why::OverHigh));
        let m = s.observe(&p, Some(0.2)).expect("a move");
        assert_eq!((m.from, m.to, m.why), (80, 100, Why::UnderLow));
    }

    #[test]
    fn a_raised_floor_lifts_the_dial_at_once() {
        let mut s = Shed::new();
        for _ in 0..5 {
            s.observe(&plan(), Some(0.9));
        }
        assert_eq!(s.dial(), 30);
        let higher = ShedPlan {
            floor: 50,
            ..plan()
        };
        assert_eq!(s.observe(&higher, Some(0.9)).map(|m| m.to), Some(50));
        assert_eq!(s.dial(), 50);
    }

    #[test]
    fn the_dial_stays_in_range_for_any_figures() {
        // A fixed pseudo-random walk over loads, floors and steps.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let p = ShedPlan {
                low: 0.5,
                high: 0.7,
                floor: (next() % 101) as u8,
                step: (next() % 100 + 1) as u8,
                after: (next() % 3 + 1) as u32,
            };
            let mut s = Shed::new();
            for _ in 0..100 {
                let load = (next() % 1000) as f64 / 1000.0;
                let before = s.dial();
                s.observe(&p, Some(load));
                assert!(s.dial() >= p.floor && s.dial() <= 100, "{p:?} {}", s.dial());
                assert!(before.abs_diff(s.dial()) <= p.step, "{p:?}");
            }
        }
    }

    #[test]
    fn plans_are_checked() {
        assert!(plan().check().is_ok());
        assert!(ShedPlan { low: 0.8, ..plan() }.check().is_err());
        assert!(ShedPlan {
            floor: 101,
            ..plan()
        }
        .check()
        .is_err());
        assert!(ShedPlan { step: 0, ..plan() }.check().is_err());
        assert!(ShedPlan { after: 0, ..plan() }.check().is_err());
    }

    #[test]
    fn dial_cells_read_what_was_set() {
        let d = ShedDials::new([
            ("eu-west".to_string(), false),
            ("us-east".to_string(), true),
        ]);
        assert_eq!(d.get("eu-west"), 100);
        assert!(d.set("eu-west", 40));
        assert!(!d.set("nowhere", 40));
        assert_eq!(d.get("eu-west"), 40);
        assert_eq!(d.get("nowhere"), 100);
        d.set("us-east", 250);
        assert_eq!(
            d.all(),
            vec![("eu-west".into(), 40), ("us-east".into(), 100)]
        );
        // Pushed loads: only where configured, bounded, and until their expiry.
        let t0 = std::time::SystemTime::UNIX_EPOCH;
        let ttl = std::time::Duration::from_secs(30);
        assert!(d.push_load("eu-west", 0.9, ttl, t0).is_err());
        assert!(d.push_load("us-east", f64::NAN, ttl, t0).is_err());
        assert!(d.push_load("us-east", 0.9, ttl * 1000, t0).is_err());
        assert!(d.push_load("us-east", 0.9, ttl, t0).is_ok());
        assert_eq!(d.pushed_load("us-east", t0 + ttl / 2), Some(0.9));
        assert_eq!(d.pushed_load("us-east", t0 + ttl), None);
    }
}
