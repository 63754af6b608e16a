//! ECS scope maps: for each steered name, the address space cut into the widest
//! runs of addresses whose decision inputs are the same, so that the scope we
//! return (RFC 7871 §7.3.1) is as wide as the answer allows.
//!
//! A decision depends on the client only through its [`Class`]: the fence it
//! falls in and the ordered region list its location gives (a geo rule's list, or
//! every region nearest first for latency). Two clients of one class get the same
//! answer under any health, override or weight, because [`decide`](super::decide)
//! picks from the class with health alone. At load, the geo database's networks
//! (with the overrides and the name's CIDR rules and latency-table entries cut
//! in) are classified, and adjacent networks of one class are merged into a run,
//! as gdnsd merges networks that map to the same datacenter list. The scope for a
//! client is the prefix of the largest aligned block around it that stays inside
//! its run: never wider than the answer allows, and never narrower than the
//! database network (which is one class throughout).
//!
//! Names with the same classifier (strategy, rules, regions, fences) share a map.
//! The maps are built beside the serving snapshot on every load and reload.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::{
    fence_of, geo_rule, round_trip, Client, EndpointIdx, NamePolicy, Strategy, ZonePolicy,
};
use crate::geo::cidr::prefix_mask;
use crate::geo::client::ClientLocator;
use crate::geo::{GeoError, Location, MAPPED_ID};

/// What a decision depends on besides health: clients of one class get the same
/// answer whatever health, overrides and weights say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Class {
    /// The fence the client falls in (an index into the name's `fence`).
    pub fenced: Option<u16>,
    /// Geo: the matched rule's endpoints in failover order; latency: every
    /// endpoint, nearest first (ties and unknowns in declaration order); other
    /// strategies: empty (only the fence depends on the client).
    pub order: SmallVec<[EndpointIdx; 8]>,
}

/// The class of [`MAPPED_ID`] blocks: IPv4-mapped IPv6 addresses are looked up
/// as IPv4, so their block in the IPv6 map must merge with nothing.
fn mapped_class() -> Class {
    Class {
        fenced: None,
        order: std::iter::once(EndpointIdx::MAX).collect(),
    }
}

/// The client's class under a name's policy: what [`decide`](super::decide) reads
/// of where the client is.
pub fn classify(zone: &ZonePolicy, p: &NamePolicy, client: &Client) -> Class {
    let loc = &client.location;
    let fenced = fence_of(zone, p, loc);
    let order = match &p.strategy {
        Strategy::Geo(rules) => {
            let (list, _) = geo_rule(rules, client);
            rules.lists[list as usize].iter().copied().collect()
        }
        Strategy::Latency { overhead_ms, table } => {
            let row = table.as_ref().and_then(|t| t.row(client.addr, loc));
            let mut ranked: SmallVec<[(f64, EndpointIdx); 8]> = p
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let (_, rtt) =
                        round_trip(zone, e, *overhead_ms, table.as_deref(), row, None, loc);
                    (rtt.unwrap_or(f64::INFINITY), i as EndpointIdx)
                })
                .collect();
            // Stable: equal round trips keep declaration order, as decide's
            // "strictly less replaces" does.
            ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
            ranked.into_iter().map(|(_, i)| i).collect()
        }
        Strategy::Failover(_) | Strategy::Weighted | Strategy::All => SmallVec::new(),
    };
    Class { fenced, order }
}

/// Runs of one family as they are found: `starts[i]` (left-aligned, IPv4 in the
/// top 32 bits) to the next start are of class `classes[i]`. `starts[0]` is 0.
#[derive(Debug, Default)]
struct RunsBuilder {
    starts: Vec<u128>,
    classes: Vec<u32>,
}

impl RunsBuilder {
    fn push(&mut self, key: u128, class: u32) {
        if self.classes.last() != Some(&class) {
            self.starts.push(key);
            self.classes.push(class);
        }
    }

    /// The compact form: starts in as few bytes as they need, class ids in 16 bits
    /// while there are few enough classes.
    fn finish(self, v6: bool, classes: usize) -> Runs {
        let low_zero = |k: &u128| (*k as u64) == 0;
        let keys = if !v6 {
            Keys::V4(self.starts.iter().map(|&k| (k >> 96) as u32).collect())
        } else {
            let split = self.starts.partition_point(|&k| k < 1 << 64);
            let (low, high) = self.starts.split_at(split);
            let odd: Box<[(u32, u64)]> = (0..high.len())
                .filter(|&j| !low_zero(&high[j]))
                .map(|j| (j as u32, high[j] as u64))
                .collect();
            if odd.len() * 4 < high.len() && high.len() < u32::MAX as usize {
                Keys::V6 {
                    low: low.iter().map(|&k| k as u64).collect(),
                    high: high.iter().map(|&k| (k >> 64) as u64).collect(),
                    odd,
                }
            } else {
                Keys::Full(self.starts.into_boxed_slice())
            }
        };
        let ids = if classes <= usize::from(u16::MAX) + 1 {
            Ids::Narrow(self.classes.iter().map(|&c| c as u16).collect())
        } else {
            Ids::Wide(self.classes.into_boxed_slice())
        };
        Runs { keys, ids }
    }
}

/// Run starts, sorted. Database networks and CIDR rules beyond ::/64 are almost
/// never longer than /64, so an IPv6 start outside ::/64 keeps its top 64 bits
/// (`high`), and the few that are longer (a /127 of a point-to-point link) their
/// low 64 bits beside, by index (`odd`); inside ::/64 (where the database's
/// IPv4-compatible alias lives) a start keeps its low 64 bits (`low`). When more
/// than a quarter are longer than /64, every start keeps all 128.
#[derive(Debug)]
enum Keys {
    V4(Box<[u32]>),
    V6 {
        low: Box<[u64]>,
        high: Box<[u64]>,
        odd: Box<[(u32, u64)]>,
    },
    Full(Box<[u128]>),
}

impl Keys {
    fn len(&self) -> usize {
        match self {
            Keys::V4(k) => k.len(),
            Keys::V6 { low, high, .. } => low.len() + high.len(),
            Keys::Full(k) => k.len(),
        }
    }

    /// The start of `high[j]`, with its low bits if it has any.
    fn high_start(high: &[u64], odd: &[(u32, u64)], j: usize) -> Option<u128> {
        let top = u128::from(*high.get(j)?) << 64;
        let lo = odd
            .binary_search_by_key(&j, |&(i, _)| i as usize)
            .map_or(0, |o| odd[o].1);
        Some(top | u128::from(lo))
    }

    fn get(&self, i: usize) -> Option<u128> {
        match self {
            Keys::V4(k) => k.get(i).map(|&k| u128::from(k) << 96),
            Keys::V6 { low, high, odd } => match i.checked_sub(low.len()) {
                None => low.get(i).map(|&k| u128::from(k)),
                Some(j) => Self::high_start(high, odd, j),
            },
            Keys::Full(k) => k.get(i).copied(),
        }
    }

    /// How many starts are at or below `key`.
    fn at_or_below(&self, key: u128) -> usize {
        match self {
            Keys::V4(k) => {
                let key = (key >> 96) as u32;
                k.partition_point(|&s| s <= key)
            }
            Keys::V6 { low, high, odd } => {
                if key < 1 << 64 {
                    return low.partition_point(|&s| u128::from(s) <= key);
                }
                // Starts in key's /64 are high[q..p]; only there do low bits count.
                let top = (key >> 64) as u64;
                let q = high.partition_point(|&s| s < top);
                let p = q + high[q..].partition_point(|&s| s == top);
                let (mut lo, mut hi) = (q, p);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if Self::high_start(high, odd, mid).is_some_and(|s| s <= key) {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                low.len() + lo
            }
            Keys::Full(k) => k.partition_point(|&s| s <= key),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Keys::V4(k) => k.len() * 4,
            Keys::V6 { low, high, odd } => (low.len() + high.len()) * 8 + odd.len() * 16,
            Keys::Full(k) => k.len() * 16,
        }
    }
}

/// Class ids by run.
#[derive(Debug)]
enum Ids {
    Narrow(Box<[u16]>),
    Wide(Box<[u32]>),
}

impl Ids {
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Ids::Narrow(c) => c.get(i).map(|&c| usize::from(c)),
            Ids::Wide(c) => c.get(i).map(|&c| c as usize),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Ids::Narrow(c) => c.len() * 2,
            Ids::Wide(c) => c.len() * 4,
        }
    }
}

/// Runs of one family, compact: run `i` goes from `keys[i]` to the next start and
/// is of class `ids[i]`.
#[derive(Debug)]
struct Runs {
    keys: Keys,
    ids: Ids,
}

impl Default for Runs {
    fn default() -> Runs {
        Runs {
            keys: Keys::Full(Box::default()),
            ids: Ids::Wide(Box::default()),
        }
    }
}

impl Runs {
    /// The run holding `key`: its index, first address and the start of the next
    /// run (`None` at the end of the space).
    fn find(&self, key: u128) -> Option<(usize, u128, Option<u128>)> {
        let i = self.keys.at_or_below(key).checked_sub(1)?;
        Some((i, self.keys.get(i)?, self.keys.get(i + 1)))
    }
}

/// The merged runs of one classifier, IPv4 and IPv6.
#[derive(Default)]
pub struct ScopeMap {
    v4: Runs,
    v6: Runs,
    classes: Vec<Class>,
}

impl std::fmt::Debug for ScopeMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeMap")
            .field("v4_runs", &self.v4.keys.len())
            .field("v6_runs", &self.v6.keys.len())
            .field("classes", &self.classes.len())
            .finish()
    }
}

/// Why a scope stops where it does, for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeWhy {
    pub scope: u8,
    /// The class the client's run has.
    pub class: Class,
    /// The nearest address outside the scope's parent block that answers
    /// differently (`None` when the scope is /0), with its own scope and class.
    pub neighbour: Option<(IpAddr, u8, Class)>,
}

/// `addr` as a left-aligned key, whether it is IPv6 (IPv4-mapped is IPv4), and
/// the family's width.
fn key_of(addr: IpAddr) -> (u128, bool, u8) {
    let v4 = match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(a) => a.to_ipv4_mapped(),
    };
    match (v4, addr) {
        (Some(a), _) => (u128::from(u32::from(a)) << 96, false, 32),
        (None, IpAddr::V6(a)) => (u128::from(a), true, 128),
        (None, IpAddr::V4(a)) => (u128::from(u32::from(a)) << 96, false, 32),
    }
}

fn addr_of(key: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(key))
    } else {
        IpAddr::V4(Ipv4Addr::from((key >> 96) as u32))
    }
}

/// The shortest prefix `s <= bits` whose block around `key` lies inside the run
/// `[lo, hi)` (`hi` `None`: to the end of the space).
fn widest_inside(key: u128, bits: u8, lo: u128, hi: Option<u128>) -> u8 {
    (0..=bits)
        .find(|&s| {
            let start = key & prefix_mask(s);
            let end = start.checked_add(1u128.checked_shl(128 - u32::from(s)).unwrap_or(0));
            let end = if s == 0 { None } else { end };
            start >= lo
                && match (hi, end) {
                    (None, _) => true,
                    (Some(h), Some(e)) => e <= h,
                    (Some(_), None) => false,
                }
        })
        .unwrap_or(bits)
}

impl ScopeMap {
    fn runs(&self, v6: bool) -> &Runs {
        if v6 {
            &self.v6
        } else {
            &self.v4
        }
    }

    /// The ECS scope for a client address: the widest prefix around it over which
    /// the class is the same.
    pub fn scope(&self, addr: IpAddr) -> u8 {
        let (key, v6, bits) = key_of(addr);
        match self.runs(v6).find(key) {
            Some((_, lo, hi)) => widest_inside(key, bits, lo, hi),
            None => bits,
        }
    }

    /// The scope, the client's class, and the neighbour that stops the scope from
    /// being one bit wider.
    pub fn why(&self, addr: IpAddr) -> Option<ScopeWhy> {
        let (key, v6, bits) = key_of(addr);
        let runs = self.runs(v6);
        let (i, lo, hi) = runs.find(key)?;
        let scope = widest_inside(key, bits, lo, hi);
        let class = self.classes.get(runs.ids.get(i)?)?.clone();
        let neighbour = if scope == 0 {
            None
        } else {
            // The parent block leaves the run on one side: the address just
            // before the run, or the first one after it.
            let parent = key & prefix_mask(scope - 1);
            let unit = 1u128 << (128 - u32::from(bits));
            let other = if parent < lo {
                lo - unit
            } else {
                hi.unwrap_or(lo)
            };
            let (j, olo, ohi) = runs.find(other)?;
            let oscope = widest_inside(other, bits, olo, ohi);
            let oclass = self.classes.get(runs.ids.get(j)?)?.clone();
            Some((addr_of(other, v6), oscope, oclass))
        };
        Some(ScopeWhy {
            scope,
            class,
            neighbour,
        })
    }

    /// Runs in both families.
    pub(crate) fn runs_len(&self) -> usize {
        self.v4.keys.len() + self.v6.keys.len()
    }

    /// Bytes held by the runs and classes.
    pub(crate) fn heap_bytes(&self) -> usize {
        let runs = |r: &Runs| r.keys.heap_bytes() + r.ids.heap_bytes();
        runs(&self.v4) + runs(&self.v6) + self.classes.capacity() * std::mem::size_of::<Class>()
    }
}

/// One classifier's map under construction.
struct Builder<'a> {
    zone: &'a ZonePolicy,
    policy: &'a NamePolicy,
    v4: RunsBuilder,
    v6: RunsBuilder,
    classes: Vec<Class>,
    index: FxHashMap<Class, u32>,
    /// Class by (location id, CIDR rule entry + 1, latency-table entry + 1).
    memo: FxHashMap<(u32, u32, u32), u32>,
}

impl Builder<'_> {
    fn intern(&mut self, class: Class) -> u32 {
        if let Some(&i) = self.index.get(&class) {
            return i;
        }
        let i = self.classes.len() as u32;
        self.classes.push(class.clone());
        self.index.insert(class, i);
        i
    }

    fn visit(&mut self, v6: bool, key: u128, len: u8, id: u32, loc: &Location) {
        let class = if id == MAPPED_ID {
            self.intern(mapped_class())
        } else {
            let entry = |t: Option<u32>| t.map_or(0, |i| i + 1);
            let (rule, row) = match &self.policy.strategy {
                Strategy::Geo(rules) => (
                    entry(rules.cidr.lookup_block(v6, key).map(|(i, _)| i as u32)),
                    0,
                ),
                Strategy::Latency { table: Some(t), .. } => (
                    0,
                    entry(t.cidr.lookup_block(v6, key).map(|(i, _)| i as u32)),
                ),
                _ => (0, 0),
            };
            match self.memo.get(&(id, rule, row)) {
                Some(&c) => c,
                None => {
                    let client = Client {
                        addr: addr_of(key, v6),
                        location: Location {
                            prefix_len: len,
                            ..*loc
                        },
                        source_prefix: if v6 { 128 } else { 32 },
                    };
                    let c = self.intern(classify(self.zone, self.policy, &client));
                    self.memo.insert((id, rule, row), c);
                    c
                }
            }
        };
        if v6 {
            self.v6.push(key, class);
        } else {
            self.v4.push(key, class);
        }
    }
}

/// Whether a name's answer depends on where the client is, and on what: `None`
/// for names whose scope is fixed (failover and all without a fence: 0; weighted:
/// the hashed prefix, unless fenced). Names with equal fingerprints share a map.
fn fingerprint(zone: &ZonePolicy, p: &NamePolicy) -> Option<String> {
    let mut f = String::new();
    match &p.strategy {
        Strategy::Geo(rules) => {
            let _ = write!(f, "geo {rules:?}");
        }
        Strategy::Latency { overhead_ms, table } => {
            let t = table.as_ref().map_or(0, |t| Arc::as_ptr(t) as usize);
            let _ = write!(f, "latency {overhead_ms} {t:x}");
        }
        _ if p.fence.is_empty() => return None,
        _ => f.push_str("fence only"),
    }
    let regions: Vec<_> = p.endpoints.iter().map(|e| e.region).collect();
    let mut fences: Vec<_> = p
        .fence
        .iter()
        .map(|j| (j, zone.jurisdictions.get(j)))
        .collect();
    fences.sort();
    let _ = write!(f, "|{regions:?}|{fences:?}|{:?}", zone.regions);
    Some(f)
}

/// What [`attach`] built.
#[derive(Debug, Default, Clone, Copy)]
pub struct Built {
    /// Steered names given a map.
    pub names: usize,
    /// Distinct maps.
    pub maps: usize,
    pub runs: usize,
    pub bytes: usize,
}

/// Builds the scope map of every steered name whose answer depends on where the
/// client is, over `geo`, and hangs it on the name. On error no name gets a map:
/// scopes are then the database networks, as [`decide`](super::decide) computes
/// without one.
pub fn attach<'z, I>(zones: I, geo: &ClientLocator) -> Result<Built, GeoError>
where
    I: IntoIterator<Item = (&'z ZonePolicy, &'z mut Vec<NamePolicy>)>,
{
    let zones: Vec<(&ZonePolicy, &mut Vec<NamePolicy>)> = zones.into_iter().collect();
    // Which map each name gets: (zone, name) -> builder.
    let mut by_print: FxHashMap<String, usize> = FxHashMap::default();
    let mut assign: Vec<(usize, usize, usize)> = Vec::new();
    let mut builders: Vec<Builder<'_>> = Vec::new();
    for (zi, (zone, names)) in zones.iter().enumerate() {
        for (ni, p) in names.iter().enumerate() {
            let Some(print) = fingerprint(zone, p) else {
                continue;
            };
            let b = *by_print.entry(print).or_insert_with(|| {
                builders.push(Builder {
                    zone,
                    policy: p,
                    v4: RunsBuilder::default(),
                    v6: RunsBuilder::default(),
                    classes: Vec::new(),
                    index: FxHashMap::default(),
                    memo: FxHashMap::default(),
                });
                builders.len() - 1
            });
            assign.push((zi, ni, b));
        }
    }
    if builders.is_empty() {
        return Ok(Built::default());
    }
    // Blocks must not straddle an entry of any builder's CIDR tables.
    let mut rule_tables = Vec::new();
    let mut row_tables = Vec::new();
    for b in &builders {
        match &b.policy.strategy {
            Strategy::Geo(rules) if !rules.cidr.is_empty() => rule_tables.push(&rules.cidr),
            Strategy::Latency { table: Some(t), .. } if !t.cidr.is_empty() => {
                row_tables.push(&t.cidr)
            }
            _ => {}
        }
    }
    for v6 in [false, true] {
        let cut = |key: u128, len: u8| {
            rule_tables.iter().any(|t| t.has_entry_inside(v6, key, len))
                || row_tables.iter().any(|t| t.has_entry_inside(v6, key, len))
        };
        geo.blocks(v6, &cut, &mut |key, len, id, loc| {
            for b in builders.iter_mut() {
                b.visit(v6, key, len, id, loc);
            }
        })?;
    }
    let maps: Vec<Arc<ScopeMap>> = builders
        .into_iter()
        .map(|b| {
            let n = b.classes.len();
            let mut classes = b.classes;
            classes.shrink_to_fit();
            Arc::new(ScopeMap {
                v4: b.v4.finish(false, n),
                v6: b.v6.finish(true, n),
                classes,
            })
        })
        .collect();
    let mut zones = zones;
    for &(zi, ni, b) in &assign {
        zones[zi].1[ni].scope_map = Some(maps[b].clone());
    }
    Ok(Built {
        names: assign.len(),
        maps: maps.len(),
        runs: maps.iter().map(|m| m.runs_len()).sum(),
        bytes: maps.iter().map(|m| m.heap_bytes()).sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every compact form finds the same run as a search over the full starts.
    fn agrees(v6: bool, starts: &[u128], probes: &[u128]) -> Runs {
        let mut b = RunsBuilder::default();
        for (i, &k) in starts.iter().enumerate() {
            b.push(k, i as u32 % 3);
        }
        let kept = b.starts.clone();
        let runs = b.finish(v6, 3);
        assert_eq!(runs.keys.len(), kept.len());
        for &p in probes {
            let i = kept.partition_point(|&s| s <= p) - 1;
            let want = (i, kept[i], kept.get(i + 1).copied());
            assert_eq!(runs.find(p), Some(want), "probe {p:#x}");
            assert_eq!(runs.ids.get(i), Some(i % 3));
        }
        runs
    }

    #[test]
    fn compact_runs_find_what_the_full_starts_find() {
        let v4 = |a: u32| u128::from(a) << 96;
        let r = agrees(
            false,
            &[0, v4(0x0800_0000), v4(0x0808_0800), v4(0xc000_0000)],
            &[0, v4(1), v4(0x0808_0808), v4(0x0808_07ff), v4(u32::MAX)],
        );
        assert!(matches!(r.keys, Keys::V4(_)));
        // IPv6: starts inside ::/64 (the IPv4-compatible alias) and /64s above it.
        let starts = [0, 0x0a00_0000, 0x0a01_0000, 1 << 64, 0x2001_0db8 << 96];
        let probes = [0, 5, 0x0a00_ffff, (1 << 64) - 1, 1 << 64, u128::MAX];
        let r = agrees(true, &starts, &probes);
        assert!(matches!(r.keys, Keys::V6 { .. }));
        // Starts beyond ::/64 longer than /64 (a /127 here, two in one /64) keep
        // their low bits beside.
        let net = 0x2001_0db8_0000_0009u128 << 64;
        let mut odd = starts.to_vec();
        odd.extend([
            net,
            net | 0x2e,
            net | 0x30,
            (net + (1 << 64)),
            0x3000 << 112,
        ]);
        odd.extend((1..6).map(|i| (0x2400 + i) << 112));
        odd.sort_unstable();
        let probes = [
            net - 1,
            net,
            net | 0x2d,
            net | 0x2e,
            net | 0x2f,
            net | 0x30,
            net | 0xffff,
        ];
        let r = agrees(true, &odd, &probes);
        let Keys::V6 { odd: ref o, .. } = r.keys else {
            panic!("not the split form: {:?}", r.keys);
        };
        assert_eq!(o.len(), 2);
        // When most are longer than /64, every start keeps all 128 bits.
        let dense: Vec<u128> = (0..8).map(|i| net | (i * 2)).collect();
        let r = agrees(true, &dense, &[net | 3, net | 14, u128::MAX]);
        assert!(matches!(r.keys, Keys::Full(_)));
    }

    #[test]
    fn class_ids_widen_past_sixteen_bits() {
        let mut b = RunsBuilder::default();
        for i in 0..70_000u32 {
            b.push(u128::from(i) << 100, i);
        }
        let runs = b.finish(true, 70_000);
        assert!(matches!(runs.ids, Ids::Wide(_)));
        assert_eq!(runs.ids.get(69_999), Some(69_999));
    }
}
