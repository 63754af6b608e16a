//! Steering that does not flap: a network's winning region changes only when
//! another region is better by a margin, in ms and in percent, and has stayed
//! so for a hold time. Pure: the caller keeps each network's [`Standing`] and
//! passes `now`.

use std::time::{Duration, Instant};

/// When a challenger may take a network from its winner.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    /// Better by at least this many ms ...
    pub margin_ms: f32,
    /// ... and by at least this share of the winner's figure, in percent ...
    pub margin_pct: f32,
    /// ... without a break for this long.
    pub hold: Duration,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            margin_ms: 5.0,
            margin_pct: 10.0,
            hold: Duration::from_secs(300),
        }
    }
}

/// A network's winner, and the region that has been beating it by the margin
/// since when, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    pub region: Option<u16>,
    pub challenger: Option<(u16, Instant)>,
}

/// The standing after `prev`, given the current figures (per region, ms).
///
/// Without a winner, or when the winner has no figure any more, the lowest
/// figure wins at once. Otherwise the lowest figure's region must beat the
/// winner by both margins continuously for `hold`; a single reading inside the
/// margin resets the clock, so figures that alternate around the margin never
/// move the winner.
pub fn next_winner(
    prev: &Standing,
    figures: &[Option<f32>],
    now: Instant,
    rules: &Hysteresis,
) -> Standing {
    let best = figures
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i as u16, (*f)?)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let Some((best, best_ms)) = best else {
        // Nothing measured: keep the winner (the estimate takes over).
        return Standing {
            region: prev.region,
            challenger: None,
        };
    };
    let current = prev
        .region
        .and_then(|r| figures.get(usize::from(r)).copied().flatten());
    let (Some(winner), Some(winner_ms)) = (prev.region, current) else {
        return Standing {
            region: Some(best),
            challenger: None,
        };
    };
    let beats = best != winner
        && winner_ms - best_ms >= rules.margin_ms
        && winner_ms - best_ms >= winner_ms * rules.margin_pct / 100.0;
    if !beats {
        return Standing {
            region: Some(winner),
            challenger: None,
        };
    }
    let since = match prev.challenger {
        Some((c, since)) if c == best => since,
        _ => now,
    };
    if now.saturating_duration_since(since) >= rules.hold {
        Standing {
            region: Some(best),
            challenger: None,
        }
    } else {
        Standing {
            region: Some(winner),
            challenger: Some((best, since)),
        }
    }
}

/// The live table's hysteresis: each measured network's [`Standing`], kept
/// from one refresh to the next, and the rules. Bounded by the table: a
/// network that left it is forgotten.
#[derive(Debug, Default)]
pub struct Steady<K> {
    pub rules: Hysteresis,
    standings: std::collections::HashMap<K, Standing>,
}

impl<K: std::hash::Hash + Eq + Copy> Steady<K> {
    pub fn new(rules: Hysteresis) -> Steady<K> {
        Steady {
            rules,
            standings: Default::default(),
        }
    }

    /// Holds `key`'s winner in `row` (ms per region): while a challenger has
    /// not beaten the held winner by the margins for the hold time, its figure
    /// (and any other below the winner's) is published as the winner's plus
    /// a hair, so the answer stays; the returned note says so for explain.
    pub fn hold(
        &mut self,
        key: K,
        row: &mut [Option<f32>],
        names: &[String],
        now: Instant,
    ) -> Option<String> {
        let prev = self.standings.get(&key).cloned().unwrap_or_default();
        let next = next_winner(&prev, row, now, &self.rules);
        let held = next
            .region
            .and_then(|w| Some((w, row.get(usize::from(w)).copied().flatten()?)));
        let note = held.and_then(|(w, w_ms)| {
            let mut lifted = Vec::new();
            for (i, f) in row.iter_mut().enumerate() {
                if i == usize::from(w) {
                    continue;
                }
                if let Some(m) = f.filter(|m| *m <= w_ms) {
                    lifted.push((i, m));
                    *f = Some(w_ms + 0.01);
                }
            }
            (!lifted.is_empty()).then_some((w, lifted))
        });
        self.standings.insert(key, next);
        note.map(|(w, lifted)| {
            let l: Vec<String> = lifted
                .iter()
                .map(|(i, m)| {
                    let n = names.get(*i).map(String::as_str).unwrap_or("?");
                    format!("{n} {m} ms")
                })
                .collect();
            let w = names.get(usize::from(w)).map(String::as_str).unwrap_or("?");
            format!(
                "held on {w} until a better one stays better by {} ms and {}% for {} s ({})",
                self.rules.margin_ms,
                self.rules.margin_pct,
                self.rules.hold.as_secs(),
                l.join(", ")
            )
        })
    }

    /// Whether a challenger of `key`'s winner is waiting out the hold: its
    /// standing moves with time alone.
    pub(crate) fn waiting(&self, key: &K) -> bool {
        self.standings
            .get(key)
            .is_some_and(|s| s.challenger.is_some())
    }

    /// Renumbers the regions after a reload (`to[old]` is the new index): a
    /// winner or challenger whose region went is forgotten.
    pub(crate) fn remap(&mut self, to: &[Option<u16>]) {
        let map = |r: u16| to.get(usize::from(r)).copied().flatten();
        for s in self.standings.values_mut() {
            s.region = s.region.and_then(map);
            s.challenger = s.challenger.and_then(|(r, at)| Some((map(r)?, at)));
        }
    }

    /// Whether any network's challenger is waiting out the hold.
    pub(crate) fn any_waiting(&self) -> bool {
        self.standings.values().any(|s| s.challenger.is_some())
    }

    /// Forgets a network that left the table.
    pub(crate) fn forget(&mut self, key: &K) {
        self.standings.remove(key);
    }

    pub fn len(&self) -> usize {
        self.standings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.standings.is_empty()
    }
}
