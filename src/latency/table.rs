//! The aggregator: samples in, a [`LatencyTable`] out. Pure: no I/O, no clock
//! (every call takes `now`), no lock (the caller holds one).
//!
//! Invariants:
//! - At most [`AggregatorLimits::max_keys`] client networks; a new one past the
//!   bound evicts the one updated longest ago (`order` holds every key once,
//!   by its last update).
//! - Per (network, region) a window of at most `window` samples, at most
//!   `per_sender` of them from one sender: a sender that repeats replaces its
//!   own oldest sample, it cannot push out the others'.
//! - A sender is kept as a keyed hash of its address (a per-process secret), in
//!   memory only, and only inside the windows: the distinct-sender count of a
//!   window is over its own samples, so it is bounded by the window.
//! - A figure counts (appears in the table) only with `min_samples` samples
//!   from `min_senders` distinct senders, or from the operator's feed, none
//!   older than `max_age`.
//! - A rejected sample changes nothing but its counter.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

pub use super::key::{NetKey, Rejected};
pub(crate) use super::key::{MAX_COUNT, MAX_RTT_MS, MIN_RTT_MS};
pub use super::live::Figure;
use super::live::{self, LiveRows};

use crate::policy::LatencyTable;

/// Who sent a sample: a browser (its address, hashed on arrival) or the
/// operator's authenticated feed, whose figures stand for many senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Addr(IpAddr),
    Feed,
    /// A site probe of this instance timed a query to this address: our own
    /// measurement, so it stands for enough senders (like the feed) and is not
    /// held to `per_sender` (the prober's interval bounds it).
    Probe(IpAddr),
}

/// One measurement (or, from the feed, `count` of them with this figure).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub key: NetKey,
    /// The region's index in the zone's region list.
    pub region: u16,
    pub rtt_ms: f64,
    pub sender: Sender,
    pub count: u32,
}

/// The bounds and thresholds of an [`Aggregator`].
#[derive(Debug, Clone)]
pub struct AggregatorLimits {
    /// Samples kept per (network, region).
    pub window: usize,
    /// Of those, at most this many from one sender.
    pub per_sender: usize,
    /// Samples (feed lines count as their `count`) before a figure counts.
    pub min_samples: u32,
    /// Distinct senders before a figure counts (the feed stands for enough).
    pub min_senders: usize,
    /// A sample's weight halves with each half-life of age.
    pub half_life: Duration,
    /// Samples older than this are dropped, and networks left without any.
    pub max_age: Duration,
    /// Client networks (and ASNs, countries) kept at once.
    pub max_keys: usize,
}

impl Default for AggregatorLimits {
    fn default() -> Self {
        AggregatorLimits {
            window: 32,
            per_sender: 4,
            min_samples: 5,
            min_senders: 3,
            half_life: Duration::from_secs(600),
            max_age: Duration::from_secs(3600),
            max_keys: 100_000,
        }
    }
}

/// What happened to the samples offered, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub absurd: u64,
    pub unknown_region: u64,
    pub bad_key: u64,
    /// Networks evicted to stay under `max_keys`.
    pub evicted: u64,
    /// Networks dropped because all their samples were too old.
    pub aged_out: u64,
}

/// One sample in a window: 40 bytes. The windows of a network share one
/// vector, each entry naming its region; entries are in arrival order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    rtt: f32,
    weight: u32,
    /// The keyed hash of the sender's address (never 0); 0 for the feed.
    sender: u64,
    at: Instant,
    region: u16,
    /// From a site probe (trusted like the feed, counted apart).
    probe: bool,
}

#[derive(Debug)]
struct KeyState {
    /// Every region's window, in arrival order.
    entries: Vec<Entry>,
    /// This key's place in `order`.
    seq: u64,
    /// The oldest entry's arrival: before `oldest + max_age` nothing ages out.
    oldest: Instant,
    /// Samples arrived or aged out since the last refresh made its row.
    dirty: bool,
}

impl KeyState {
    fn window(&self, region: u16) -> impl Iterator<Item = &Entry> + Clone {
        self.entries.iter().filter(move |e| e.region == region)
    }

    /// Drops entries older than `max_age`; true if any went.
    fn age_out(&mut self, now: Instant, max_age: Duration, region: Option<u16>) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| {
            region.is_some_and(|r| r != e.region) || now.saturating_duration_since(e.at) <= max_age
        });
        self.oldest = self
            .entries
            .iter()
            .map(|e| e.at)
            .min()
            .unwrap_or(self.oldest);
        self.entries.len() != before
    }
}

/// Samples per (client network, region), and the table they make.
pub struct Aggregator {
    /// Region names by index, for labels.
    regions: Arc<[String]>,
    limits: AggregatorLimits,
    secret: RandomState,
    /// Sorted, so that a refresh walks them beside the last one's rows.
    keys: BTreeMap<NetKey, KeyState>,
    /// Every key by its last update (`seq`), oldest first.
    order: BTreeMap<u64, NetKey>,
    seq: u64,
    counters: Counters,
    /// The rows the last refresh made, reused for networks that did not change.
    published: Option<Arc<LiveRows>>,
    /// A network left (aged out, evicted) since the last refresh.
    removed: bool,
    /// Fleet sites named by shared figures, interned for the rows' cells.
    sites: Vec<String>,
    /// Where the rows' times count from.
    epoch: Instant,
}

impl Aggregator {
    /// An empty aggregator for these regions (names by index).
    pub fn new(regions: Vec<String>, limits: AggregatorLimits) -> Aggregator {
        Aggregator {
            regions: regions.into(),
            limits,
            secret: RandomState::new(),
            keys: BTreeMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            counters: Counters::default(),
            published: None,
            removed: false,
            sites: Vec::new(),
            epoch: Instant::now(),
        }
    }

    pub fn regions(&self) -> &[String] {
        &self.regions
    }

    pub fn limits(&self) -> &AggregatorLimits {
        &self.limits
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Every client network (and ASN, country) holding samples.
    pub fn keys(&self) -> Vec<NetKey> {
        self.keys.keys().copied().collect()
    }

    /// Client networks (and ASNs, countries) holding samples.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Takes new regions (names by index) and limits, as a reload gives them:
    /// the samples of regions that remain are kept (under their new index),
    /// the others dropped, and networks left without any forgotten; past a
    /// smaller `max_keys`, the networks updated longest ago go. Every row is
    /// made again at the next refresh. Returns each old region's new index
    /// (for [`Steady::remap`](super::Steady::remap)).
    pub fn remap(&mut self, regions: Vec<String>, limits: AggregatorLimits) -> Vec<Option<u16>> {
        let to: Vec<Option<u16>> = self
            .regions
            .iter()
            .map(|n| regions.iter().position(|m| m == n).map(|i| i as u16))
            .collect();
        let order = &mut self.order;
        self.keys.retain(|_, st| {
            st.entries
                .retain_mut(|e| match to.get(usize::from(e.region)).copied().flatten() {
                    Some(r) => {
                        e.region = r;
                        true
                    }
                    None => false,
                });
            st.dirty = true;
            if st.entries.is_empty() {
                order.remove(&st.seq);
            }
            !st.entries.is_empty()
        });
        while self.keys.len() > limits.max_keys {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.keys.remove(&oldest);
            self.counters.evicted += 1;
        }
        self.regions = regions.into();
        self.limits = limits;
        self.published = None;
        self.removed = true;
        to
    }

    /// The rows the last refresh published, if any.
    pub(crate) fn published(&self) -> Option<Arc<LiveRows>> {
        self.published.clone()
    }

    /// Checks a sample without adding it (a request's samples are all checked
    /// before any is added, so a bad one changes nothing).
    pub fn check(&self, s: &Sample) -> Result<(), Rejected> {
        if !(s.rtt_ms.is_finite() && (MIN_RTT_MS..=MAX_RTT_MS).contains(&s.rtt_ms)) {
            return Err(Rejected::Absurd(s.rtt_ms));
        }
        if usize::from(s.region) >= self.regions.len() {
            return Err(Rejected::UnknownRegion(s.region));
        }
        if s.count == 0 || s.count > MAX_COUNT {
            return Err(Rejected::Count(s.count));
        }
        Ok(())
    }

    /// Counts a refusal made before a sample could be built (a bad network,
    /// an unknown region name).
    pub(crate) fn count_rejected(&mut self, r: &Rejected) {
        match r {
            Rejected::Absurd(_) | Rejected::Count(_) => self.counters.absurd += 1,
            Rejected::UnknownRegion(_) => self.counters.unknown_region += 1,
            Rejected::Narrow(_) | Rejected::Country(_) => self.counters.bad_key += 1,
        }
    }

    /// Adds one sample as of `now`.
    pub fn add(&mut self, s: &Sample, now: Instant) -> Result<(), Rejected> {
        if let Err(r) = self.check(s) {
            self.count_rejected(&r);
            return Err(r);
        }
        let (sender, probe) = match s.sender {
            Sender::Addr(a) => (self.secret.hash_one(a).max(1), false),
            Sender::Feed => (0, false),
            Sender::Probe(a) => (self.secret.hash_one((1u8, a)).max(1), true),
        };
        if !self.keys.contains_key(&s.key) && self.keys.len() >= self.limits.max_keys {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.keys.remove(&oldest);
                self.counters.evicted += 1;
                self.removed = true;
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let state = self.keys.entry(s.key).or_insert_with(|| KeyState {
            entries: Vec::new(),
            seq,
            oldest: now,
            dirty: true,
        });
        self.order.remove(&state.seq);
        state.seq = seq;
        self.order.insert(seq, s.key);
        state.dirty = true;

        state.age_out(now, self.limits.max_age, Some(s.region));
        let mine = state
            .window(s.region)
            .filter(|e| e.sender == sender)
            .count();
        let len = state.window(s.region).count();
        let drop = if mine >= self.limits.per_sender.max(1) && !probe {
            state
                .entries
                .iter()
                .position(|e| e.region == s.region && e.sender == sender)
        } else if len >= self.limits.window.max(1) {
            state.entries.iter().position(|e| e.region == s.region)
        } else {
            None
        };
        if let Some(i) = drop {
            state.entries.remove(i);
        }
        if state.entries.len() == state.entries.capacity() {
            // Grow by half, not double: most networks hold a few samples.
            state.entries.reserve_exact(1 + state.entries.len() / 2);
        }
        state.entries.push(Entry {
            rtt: s.rtt_ms as f32,
            weight: s.count,
            sender,
            at: now,
            region: s.region,
            probe,
        });
        state.oldest = state.oldest.min(now);
        self.counters.accepted += 1;
        Ok(())
    }

    /// Drops samples older than `max_age`, and networks left without any.
    /// Only networks whose oldest sample is that old are looked at.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        let order = &mut self.order;
        let counters = &mut self.counters;
        let mut removed = false;
        self.keys.retain(|_, st| {
            if now.saturating_duration_since(st.oldest) <= max_age {
                return true;
            }
            if st.age_out(now, max_age, None) {
                st.dirty = true;
            }
            if st.entries.is_empty() {
                order.remove(&st.seq);
                counters.aged_out += 1;
                removed = true;
                return false;
            }
            true
        });
        self.removed |= removed;
    }

    /// The counted figure of each region for `key` (`None` where there is not
    /// enough, or nothing recent enough).
    pub fn figures(&self, key: &NetKey, now: Instant) -> Vec<Option<Figure>> {
        figures_of(self.keys.get(key), self.regions.len(), &self.limits, now)
    }

    /// The table of every network with at least one counted figure, rows in
    /// key order; each label says where its figures came from.
    pub fn snapshot(&mut self, now: Instant) -> LatencyTable {
        self.snapshot_with(now, &HashMap::new(), None)
    }

    /// The table as [`snapshot`](Self::snapshot) makes it, with other sites'
    /// figures (per network, per region of this aggregator) merged in: per
    /// network and region the figure of the most samples wins, the newer on a
    /// tie, whether measured here or shared.
    pub(crate) fn snapshot_with(
        &mut self,
        now: Instant,
        shared: &HashMap<NetKey, Vec<Option<Figure>>>,
        steady: Option<&mut super::Steady<NetKey>>,
    ) -> LatencyTable {
        let (rows, _) = self.refresh_rows(now, shared, steady);
        rows.table()
    }

    /// As [`snapshot_with`](Self::snapshot_with), but `None` when no network's
    /// published figures changed since the last call: only networks with new
    /// samples, aged-out samples, shared figures or a challenger waiting out
    /// the hysteresis are looked at again; the others keep their last row.
    pub(crate) fn refresh(
        &mut self,
        now: Instant,
        shared: &HashMap<NetKey, Vec<Option<Figure>>>,
        steady: Option<&mut super::Steady<NetKey>>,
    ) -> Option<LatencyTable> {
        let (rows, changed) = self.refresh_rows(now, shared, steady);
        changed.then(|| rows.table())
    }

    /// The rows as of `now`, and whether they differ from the last ones.
    fn refresh_rows(
        &mut self,
        now: Instant,
        shared: &HashMap<NetKey, Vec<Option<Figure>>>,
        mut steady: Option<&mut super::Steady<NetKey>>,
    ) -> (Arc<LiveRows>, bool) {
        self.expire(now);
        for f in shared.values().flatten().flatten() {
            if let Some(site) = &f.site {
                if !self.sites.contains(site) && self.sites.len() < usize::from(u16::MAX) {
                    self.sites.push(site.clone());
                }
            }
        }
        let quiet = shared.is_empty()
            && !self.removed
            && !steady.as_deref().is_some_and(|s| s.any_waiting())
            && !self.keys.values().any(|s| s.dirty);
        if let Some(prev) = self.published.as_ref().filter(|_| quiet) {
            return (prev.clone(), false);
        }
        let prev = self.published.take();
        let mut out = LiveRows::new(self.regions.clone(), self.sites.clone(), self.epoch, now);
        let mut walk = live::Walk::new(prev.as_deref());
        let mut changed = std::mem::take(&mut self.removed);
        let mut theirs: Vec<&NetKey> = shared.keys().collect();
        theirs.sort_unstable();
        let mut theirs = theirs.into_iter().peekable();
        let mut mine = self.keys.iter_mut().peekable();
        loop {
            let key = match (mine.peek(), theirs.peek()) {
                (Some((m, _)), Some(t)) => *(*m).min(*t),
                (Some((m, _)), None) => **m,
                (None, Some(t)) => **t,
                (None, None) => break,
            };
            let st = match mine.peek() {
                Some((m, _)) if **m == key => mine.next().map(|(_, s)| s),
                _ => None,
            };
            if theirs.peek().is_some_and(|t| **t == key) {
                theirs.next();
            }
            changed |= walk.skip_to(&key, steady.as_deref_mut());
            let held = walk.current(&key);
            let dirty = st.as_ref().is_some_and(|s| s.dirty);
            let theirs_here = shared.get(&key);
            let waiting = steady.as_deref().is_some_and(|s| s.waiting(&key));
            if !dirty && theirs_here.is_none() && !waiting {
                if let Some((p, r)) = held {
                    out.copy_row(p, r);
                }
                continue;
            }
            let mut figs = figures_of(st.as_deref(), self.regions.len(), &self.limits, now);
            if let Some(s) = st {
                s.dirty = false;
            }
            if let Some(theirs) = theirs_here {
                merge(&mut figs, theirs);
            }
            if figs.iter().all(Option::is_none) {
                if held.is_some() {
                    changed = true;
                    if let Some(s) = steady.as_deref_mut() {
                        s.forget(&key);
                    }
                }
                continue;
            }
            let mut row: Vec<Option<f32>> =
                figs.iter().map(|f| f.as_ref().map(|f| f.rtt_ms)).collect();
            let note = steady
                .as_deref_mut()
                .and_then(|s| s.hold(key, &mut row, &self.regions, now));
            let r = out.push_row(key, &figs, row, note);
            changed |= held.is_none_or(|(p, h)| !out.same_row(r, p, h));
        }
        changed |= walk.skip_to_end(steady);
        let rows = Arc::new(out);
        self.published = Some(rows.clone());
        (rows, changed)
    }

    /// The winning region for `key` after `prev`, by the counted figures and
    /// the [`Hysteresis`](super::Hysteresis) rules.
    pub fn winner(
        &self,
        key: &NetKey,
        prev: &super::Standing,
        now: Instant,
        rules: &super::Hysteresis,
    ) -> super::Standing {
        let figs: Vec<Option<f32>> = self
            .figures(key, now)
            .into_iter()
            .map(|f| f.map(|f| f.rtt_ms))
            .collect();
        super::next_winner(prev, &figs, now, rules)
    }
}

/// Each region's figure of a network's windows (none without any).
fn figures_of(
    st: Option<&KeyState>,
    regions: usize,
    limits: &AggregatorLimits,
    now: Instant,
) -> Vec<Option<Figure>> {
    match st {
        Some(st) => (0..regions as u16)
            .map(|r| figure(st.window(r), limits, now))
            .collect(),
        None => vec![None; regions],
    }
}

/// Per region, the shared figure where it has more samples (the newer on a tie).
fn merge(figs: &mut [Option<Figure>], theirs: &[Option<Figure>]) {
    for (mine, theirs) in figs.iter_mut().zip(theirs) {
        let Some(f) = theirs else { continue };
        let better = match mine {
            None => true,
            Some(m) => (f.samples, f.newest) > (m.samples, m.newest),
        };
        if better {
            *mine = Some(f.clone());
        }
    }
}

/// A window's figure, if it counts: the weighted median, each sample weighing
/// its count halved per half-life of age. (The weights' ratios do not change
/// with time, so neither does the figure until a sample arrives or ages out.)
fn figure<'a>(
    w: impl Iterator<Item = &'a Entry> + Clone,
    limits: &AggregatorLimits,
    now: Instant,
) -> Option<Figure> {
    let live = w.filter(|e| now.saturating_duration_since(e.at) <= limits.max_age);
    let mut samples = 0u32;
    let mut probes = 0u32;
    let mut feed = false;
    let mut senders: SmallVec<[u64; 32]> = SmallVec::new();
    for e in live.clone() {
        samples = samples.saturating_add(e.weight);
        feed |= e.sender == 0;
        if e.probe {
            probes = probes.saturating_add(e.weight);
        } else if e.sender != 0 {
            senders.push(e.sender);
        }
    }
    senders.sort_unstable();
    senders.dedup();
    // Probes alone make a figure only with `min_samples` of their own: a few
    // probes cannot lend their trust to one sender's beacons.
    let trusted = feed || probes >= limits.min_samples;
    if samples < limits.min_samples || (senders.len() < limits.min_senders && !trusted) {
        return None;
    }
    let half = limits.half_life.as_secs_f64().max(1e-3);
    let mut weighted: SmallVec<[(f32, f64); 32]> = live
        .clone()
        .map(|e| {
            let age = now.saturating_duration_since(e.at).as_secs_f64();
            (e.rtt, f64::from(e.weight) * (-age / half).exp2())
        })
        .collect();
    weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = weighted.iter().map(|(_, w)| w).sum();
    let mut acc = 0.0;
    let mut rtt = weighted.last()?.0;
    for (r, w) in &weighted {
        acc += w;
        if acc >= total / 2.0 {
            rtt = *r;
            break;
        }
    }
    Some(Figure {
        rtt_ms: rtt,
        samples,
        senders: senders.len(),
        feed,
        probes,
        site: None,
        newest: live.map(|e| e.at).max()?,
    })
}

#[cfg(test)]
impl Aggregator {
    pub(super) fn keys_for_test(&self) -> Vec<NetKey> {
        self.keys.keys().copied().collect()
    }
}
