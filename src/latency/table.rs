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
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::geo::cidr::{mask, IpNet};
use crate::policy::LatencyTable;

/// The narrowest network a figure is kept for: one /24 of IPv4, one /48 of IPv6.
pub(crate) const V4_PREFIX: u8 = 24;
pub(crate) const V6_PREFIX: u8 = 48;
/// Round trips outside this range are not measurements of a network path.
pub(crate) const MIN_RTT_MS: f64 = 0.1;
pub(crate) const MAX_RTT_MS: f64 = 10_000.0;
/// The most samples one feed line may stand for.
pub(crate) const MAX_COUNT: u32 = 1_000_000;

/// The client side of a figure, in the static table's precedence: network,
/// then ASN, then country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKey {
    /// A masked network address and its prefix length.
    Net(IpAddr, u8),
    Asn(u32),
    Country([u8; 2]),
}

impl NetKey {
    /// The network a sender's address counts for: its /24 or /48. An
    /// IPv4-mapped IPv6 address counts as IPv4.
    pub fn of_addr(ip: IpAddr) -> NetKey {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let len = if ip.is_ipv4() { V4_PREFIX } else { V6_PREFIX };
        NetKey::Net(mask(ip, len), len)
    }

    /// A network named by the operator's feed: /24 (IPv4) or /48 (IPv6), or wider.
    pub(crate) fn of_net(net: IpNet) -> Result<NetKey, Rejected> {
        let max = if net.addr().is_ipv4() {
            V4_PREFIX
        } else {
            V6_PREFIX
        };
        if net.prefix_len() > max {
            return Err(Rejected::Narrow(net.to_string()));
        }
        Ok(NetKey::Net(net.addr(), net.prefix_len()))
    }

    /// A country as an ISO 3166-1 alpha-2 code like `JP`.
    pub(crate) fn of_country(cc: &str) -> Result<NetKey, Rejected> {
        match cc.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                Ok(NetKey::Country([*a, *b]))
            }
            _ => Err(Rejected::Country(cc.to_string())),
        }
    }
}

impl fmt::Display for NetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetKey::Net(a, l) => write!(f, "{a}/{l}"),
            NetKey::Asn(a) => write!(f, "AS{a}"),
            NetKey::Country(c) => write!(f, "country {}", String::from_utf8_lossy(c)),
        }
    }
}

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

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("rtt_ms {0} is not a round trip (use {MIN_RTT_MS} to {MAX_RTT_MS} ms)")]
    Absurd(f64),
    #[error("region index {0} is not one of this table's regions")]
    UnknownRegion(u16),
    #[error("network {0} is narrower than /{V4_PREFIX} (IPv4) or /{V6_PREFIX} (IPv6)")]
    Narrow(String),
    #[error("country {0:?} is not an ISO 3166-1 alpha-2 code like JP")]
    Country(String),
    #[error("count {0}: use 1 to {MAX_COUNT}")]
    Count(u32),
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

/// One region's counted figure for one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The decayed weighted median of the window, in ms.
    pub rtt_ms: f32,
    pub samples: u32,
    pub senders: usize,
    /// Whether the operator's feed contributed.
    pub feed: bool,
    /// Of `samples`, how many came from this instance's site probes.
    pub probes: u32,
    /// The fleet site this figure was shared by; none: measured here.
    pub site: Option<String>,
    /// When the newest sample arrived.
    pub newest: Instant,
}

impl Figure {
    /// "12 samples from 5 senders, 40 s old"
    pub fn describe(&self, now: Instant) -> String {
        let age = now.saturating_duration_since(self.newest).as_secs();
        let mut parts = Vec::new();
        if self.feed {
            parts.push("the feed".to_string());
        }
        if self.senders > 0 || (!self.feed && self.probes == 0) {
            parts.push(format!("{} senders", self.senders));
        }
        if self.probes > 0 {
            parts.push(format!("{} probes", self.probes));
        }
        let from = parts.join(" and ");
        let mut text = format!("{} samples from {from}, {age} s old", self.samples);
        if let Some(site) = &self.site {
            text = format!("{text}, shared by {site}");
        }
        text
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    rtt: f32,
    at: Instant,
    weight: u32,
    /// The keyed hash of the sender's address; `None` for the feed.
    sender: Option<u64>,
    /// From a site probe (trusted like the feed, counted apart).
    probe: bool,
}

#[derive(Debug)]
struct KeyState {
    /// Per region; empty windows for regions never measured.
    windows: Vec<VecDeque<Entry>>,
    /// This key's place in `order`.
    touched: (Instant, u64),
}

/// Samples per (client network, region), and the table they make.
pub struct Aggregator {
    /// Region names by index, for labels.
    regions: Vec<String>,
    limits: AggregatorLimits,
    secret: RandomState,
    keys: HashMap<NetKey, KeyState>,
    /// Every key by its last update, oldest first.
    order: BTreeMap<(Instant, u64), NetKey>,
    seq: u64,
    counters: Counters,
}

impl Aggregator {
    /// An empty aggregator for these regions (names by index).
    pub fn new(regions: Vec<String>, limits: AggregatorLimits) -> Aggregator {
        Aggregator {
            regions,
            limits,
            secret: RandomState::new(),
            keys: HashMap::new(),
            order: BTreeMap::new(),
            seq: 0,
            counters: Counters::default(),
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
            Sender::Addr(a) => (Some(self.secret.hash_one(a)), false),
            Sender::Feed => (None, false),
            Sender::Probe(a) => (Some(self.secret.hash_one((1u8, a))), true),
        };
        if !self.keys.contains_key(&s.key) && self.keys.len() >= self.limits.max_keys {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.keys.remove(&oldest);
                self.counters.evicted += 1;
            }
        }
        self.seq += 1;
        let touched = (now, self.seq);
        let regions = self.regions.len();
        let state = self.keys.entry(s.key).or_insert_with(|| KeyState {
            windows: vec![VecDeque::new(); regions],
            touched,
        });
        self.order.remove(&state.touched);
        state.touched = touched;
        self.order.insert(touched, s.key);

        let w = &mut state.windows[usize::from(s.region)];
        let max_age = self.limits.max_age;
        w.retain(|e| now.saturating_duration_since(e.at) <= max_age);
        let mine = w.iter().filter(|e| e.sender == sender).count();
        if mine >= self.limits.per_sender.max(1) && !probe {
            if let Some(i) = w.iter().position(|e| e.sender == sender) {
                w.remove(i);
            }
        } else if w.len() >= self.limits.window.max(1) {
            w.pop_front();
        }
        w.push_back(Entry {
            rtt: s.rtt_ms as f32,
            at: now,
            weight: s.count,
            sender,
            probe,
        });
        self.counters.accepted += 1;
        Ok(())
    }

    /// Drops samples older than `max_age`, and networks left without any.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        let mut gone = Vec::new();
        for (k, st) in self.keys.iter_mut() {
            for w in st.windows.iter_mut() {
                w.retain(|e| now.saturating_duration_since(e.at) <= max_age);
            }
            if st.windows.iter().all(|w| w.is_empty()) {
                gone.push((*k, st.touched));
            }
        }
        for (k, touched) in gone {
            self.keys.remove(&k);
            self.order.remove(&touched);
            self.counters.aged_out += 1;
        }
    }

    /// The counted figure of each region for `key` (`None` where there is not
    /// enough, or nothing recent enough).
    pub fn figures(&self, key: &NetKey, now: Instant) -> Vec<Option<Figure>> {
        match self.keys.get(key) {
            Some(st) => st
                .windows
                .iter()
                .map(|w| figure(w, &self.limits, now))
                .collect(),
            None => vec![None; self.regions.len()],
        }
    }

    /// The table of every network with at least one counted figure, rows in
    /// key order; each label says where its figures came from.
    pub fn snapshot(&self, now: Instant) -> LatencyTable {
        self.snapshot_with(now, &HashMap::new(), None)
    }

    /// The table as [`snapshot`](Self::snapshot) makes it, with other sites'
    /// figures (per network, per region of this aggregator) merged in: per
    /// network and region the figure of the most samples wins, the newer on a
    /// tie, whether measured here or shared.
    pub(crate) fn snapshot_with(
        &self,
        now: Instant,
        shared: &HashMap<NetKey, Vec<Option<Figure>>>,
        mut steady: Option<&mut super::Steady<NetKey>>,
    ) -> LatencyTable {
        let mut t = LatencyTable::default();
        let mut keys: Vec<&NetKey> = self.keys.keys().chain(shared.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut seen = std::collections::HashSet::new();
        for key in keys {
            let mut figs = self.figures(key, now);
            if let Some(theirs) = shared.get(key) {
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
            if figs.iter().all(Option::is_none) {
                continue;
            }
            let idx = t.rows.len() as u32;
            match *key {
                NetKey::Net(addr, len) => {
                    let Ok(net) = IpNet::new(addr, len) else {
                        continue;
                    };
                    if t.cidr.insert(net, idx).is_err() {
                        continue;
                    }
                }
                NetKey::Asn(a) => {
                    t.asn.insert(a, idx);
                }
                NetKey::Country(c) => {
                    t.country.insert(c, idx);
                }
            }
            let parts: Vec<String> = figs
                .iter()
                .enumerate()
                .filter_map(|(r, f)| {
                    let f = f.as_ref()?;
                    let name = self.regions.get(r).map(String::as_str).unwrap_or("?");
                    Some(format!("{name} {} ms ({})", f.rtt_ms, f.describe(now)))
                })
                .collect();
            let mut row: Vec<Option<f32>> =
                figs.iter().map(|f| f.as_ref().map(|f| f.rtt_ms)).collect();
            let mut label = format!("measured {key}: {}", parts.join("; "));
            if let Some(s) = steady.as_deref_mut() {
                seen.insert(*key);
                if let Some(note) = s.hold(*key, &mut row, &self.regions, now) {
                    label = format!("{label}; {note}");
                }
            }
            t.labels.push(label);
            t.rows.push(row);
        }
        if let Some(s) = steady {
            s.retain(&seen);
        }
        t
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

/// A window's figure, if it counts: the weighted median, each sample weighing
/// its count halved per half-life of age.
fn figure(w: &VecDeque<Entry>, limits: &AggregatorLimits, now: Instant) -> Option<Figure> {
    let live: Vec<&Entry> = w
        .iter()
        .filter(|e| now.saturating_duration_since(e.at) <= limits.max_age)
        .collect();
    let samples = live.iter().fold(0u32, |n, e| n.saturating_add(e.weight));
    let feed = live.iter().any(|e| e.sender.is_none());
    let probes = live
        .iter()
        .filter(|e| e.probe)
        .fold(0u32, |n, e| n.saturating_add(e.weight));
    let mut senders: Vec<u64> = live
        .iter()
        .filter(|e| !e.probe)
        .filter_map(|e| e.sender)
        .collect();
    senders.sort_unstable();
    senders.dedup();
    // Probes alone make a figure only with `min_samples` of their own: a few
    // probes cannot lend their trust to one sender's beacons.
    let trusted = feed || probes >= limits.min_samples;
    if samples < limits.min_samples || (senders.len() < limits.min_senders && !trusted) {
        return None;
    }
    let half = limits.half_life.as_secs_f64().max(1e-3);
    let mut weighted: Vec<(f32, f64)> = live
        .iter()
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
        newest: live.iter().map(|e| e.at).max()?,
    })
}

#[cfg(test)]
impl Aggregator {
    pub(super) fn keys_for_test(&self) -> Vec<NetKey> {
        self.keys.keys().copied().collect()
    }
}
