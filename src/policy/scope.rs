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
                    let (_, rtt) = round_trip(zone, e, *overhead_ms, table.as_deref(), row, loc);
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

/// Runs of one family: `starts[i]` (left-aligned, IPv4 in the top 32 bits) to the
/// next start are of class `classes[i]`. `starts[0]` is 0.
#[derive(Debug, Default)]
struct Runs {
    starts: Vec<u128>,
    classes: Vec<u32>,
}

impl Runs {
    fn push(&mut self, key: u128, class: u32) {
        if self.classes.last() != Some(&class) {
            self.starts.push(key);
            self.classes.push(class);
        }
    }

    /// The run holding `key`: its first address and the start of the next run
    /// (`None` at the end of the space).
    fn find(&self, key: u128) -> Option<(usize, u128, Option<u128>)> {
        let i = self.starts.partition_point(|&s| s <= key).checked_sub(1)?;
        Some((i, self.starts[i], self.starts.get(i + 1).copied()))
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
            .field("v4_runs", &self.v4.starts.len())
            .field("v6_runs", &self.v6.starts.len())
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
        let class = self.classes.get(*runs.classes.get(i)? as usize)?.clone();
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
            let oclass = self.classes.get(*runs.classes.get(j)? as usize)?.clone();
            Some((addr_of(other, v6), oscope, oclass))
        };
        Some(ScopeWhy {
            scope,
            class,
            neighbour,
        })
    }

    /// Runs in both families.
    pub fn runs_len(&self) -> usize {
        self.v4.starts.len() + self.v6.starts.len()
    }

    /// Bytes held by the runs and classes.
    pub fn heap_bytes(&self) -> usize {
        let runs = |r: &Runs| r.starts.capacity() * 16 + r.classes.capacity() * 4;
        runs(&self.v4) + runs(&self.v6) + self.classes.capacity() * std::mem::size_of::<Class>()
    }
}

/// One classifier's map under construction.
struct Builder<'a> {
    zone: &'a ZonePolicy,
    policy: &'a NamePolicy,
    map: ScopeMap,
    index: FxHashMap<Class, u32>,
    /// Class by (location id, CIDR rule entry + 1, latency-table entry + 1).
    memo: FxHashMap<(u32, u32, u32), u32>,
}

impl Builder<'_> {
    fn intern(&mut self, class: Class) -> u32 {
        if let Some(&i) = self.index.get(&class) {
            return i;
        }
        let i = self.map.classes.len() as u32;
        self.map.classes.push(class.clone());
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
            self.map.v6.push(key, class);
        } else {
            self.map.v4.push(key, class);
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
                    map: ScopeMap::default(),
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
        .map(|mut b| {
            for r in [&mut b.map.v4, &mut b.map.v6] {
                r.starts.shrink_to_fit();
                r.classes.shrink_to_fit();
            }
            Arc::new(b.map)
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
