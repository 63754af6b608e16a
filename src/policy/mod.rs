//! Steering decisions: which region's endpoints answer a client.
//!
//! [`decide`] is a pure function of the compiled policy, where the client is, what
//! health says and the time: it reads no clock, takes no lock, does no I/O and logs
//! nothing. It returns the endpoints to answer with, the reason, and the ECS scope:
//! the widest prefix over which the same decision holds. The same function, given a
//! recording [`Trace`], produces the `explain` output.

pub mod dial;
pub mod exact;
pub mod jurisdiction;
pub mod scope;

use std::net::IpAddr;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::geo::cidr::CidrTable;
use crate::geo::Location;
use crate::zone::{rtype, Name, RRset};

/// Index of a region in its zone's region list.
pub(crate) type RegionIdx = u16;
/// Index of an endpoint in its name's endpoint list.
pub(crate) type EndpointIdx = u16;

/// A place where the service runs.
#[derive(Debug, Clone)]
pub struct Region {
    pub name: String,
    /// Latitude and longitude, for latency estimates.
    pub location: Option<(f64, f64)>,
    /// The legal area the region sits in, for residency fences.
    pub jurisdiction: Option<String>,
}

/// Health slot that is always up: an address or endpoint with no check.
pub(crate) const NO_HEALTH: u32 = u32::MAX;

/// One address of an endpoint, prebuilt alone, for answers that must leave out
/// addresses whose probes fail.
#[derive(Debug, Clone)]
pub struct AddrAnswer {
    pub set: RRset,
    /// The health slot of the probe target for this address, or [`NO_HEALTH`].
    pub health: u32,
}

/// What an endpoint's health is checked with: a check of the zone and the
/// address to probe (the served address, or the endpoint's `probe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRef {
    pub check: u32,
    pub addr: std::net::SocketAddr,
    /// The snapshot's health slot for this target; [`NO_HEALTH`] until assigned.
    pub slot: u32,
}

/// One region's answer for one steered name, prebuilt at load.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: RegionIdx,
    /// Share for the weighted strategy; 0 drains the endpoint from weighted answers.
    pub weight: u32,
    /// Every address together: the answer while all of them are up.
    pub a: Option<RRset>,
    pub aaaa: Option<RRset>,
    pub cname: Option<RRset>,
    /// Each address alone, in the same order, with its health slot.
    pub a_each: Vec<AddrAnswer>,
    pub aaaa_each: Vec<AddrAnswer>,
    /// The same answers with the name's lower TTL, used while any of the name's
    /// endpoints is down so clients come back soon after recovery.
    pub degraded: Option<Box<Endpoint>>,
    /// Identifies the endpoint to the health view (overrides, weights); unique
    /// within a snapshot. [`NO_HEALTH`] until the snapshot assigns it.
    pub health_id: u32,
    /// The endpoint is up while at least this many of its addresses are.
    pub min_healthy: u32,
    /// Probe targets, one per address (or one for an explicit `probe`); empty
    /// when the endpoint has no check.
    pub probes: Vec<ProbeRef>,
    /// The region's name and the steered name, for overrides by name.
    pub label: String,
}

impl Endpoint {
    /// True when this endpoint has data for the query type.
    pub fn serves(&self, qtype: u16) -> bool {
        match qtype {
            rtype::A => self.a.is_some() || self.cname.is_some(),
            rtype::AAAA => self.aaaa.is_some() || self.cname.is_some(),
            rtype::CNAME => self.cname.is_some(),
            rtype::ANY => true,
            _ => false,
        }
    }
}

/// What to answer when no endpoint that may answer is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Fail open: every endpoint the client may get, whatever health says.
    AnswerAll,
    NoData,
    ServFail,
    /// This endpoint, whatever health says.
    Endpoint(EndpointIdx),
}

/// What a residency fence answers when no region inside it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceFallback {
    ServFail,
    NoData,
}

/// Geo rules: selectors to ordered endpoint lists; the most specific match wins.
#[derive(Debug, Default)]
pub struct GeoRules {
    pub cidr: CidrTable<u16>,
    pub subdivision: FxHashMap<String, u16>,
    pub country: FxHashMap<[u8; 2], u16>,
    pub continent: FxHashMap<[u8; 2], u16>,
    pub default: u16,
    /// Endpoint lists, in failover order.
    pub lists: Vec<Vec<EndpointIdx>>,
    /// The selector of each list as written, for explain: "country:JP".
    pub labels: Vec<String>,
}

/// Measured round trips that replace estimates where they have an entry.
#[derive(Debug, Default)]
pub struct LatencyTable {
    pub cidr: CidrTable<u32>,
    /// The measured table's /24s and /48s (its other networks are in `cidr`).
    pub exact: exact::ExactNets,
    pub asn: FxHashMap<u32, u32>,
    pub country: FxHashMap<[u8; 2], u32>,
    /// Per row, per region of the zone: milliseconds, if measured.
    pub rows: Vec<Vec<Option<f32>>>,
    /// Where each row came from, for explain: "measured.toml:12 cidr 203.0.113.0/24".
    pub labels: Vec<String>,
    /// The measured table's labels, written only when explain asks.
    pub live_labels: Option<std::sync::Arc<dyn RowLabels>>,
}

/// A table's row labels made on demand (the measured table's: 100,000 rows
/// of text made at every refresh would cost more than the table).
pub trait RowLabels: Send + Sync + std::fmt::Debug {
    fn label(&self, row: u32) -> Option<String>;
}

impl LatencyTable {
    /// Where row `r` came from, for explain.
    pub fn label(&self, r: u32) -> Option<std::borrow::Cow<'_, str>> {
        match self.labels.get(r as usize) {
            Some(l) => Some(std::borrow::Cow::Borrowed(l.as_str())),
            None => self.live_labels.as_ref()?.label(r).map(Into::into),
        }
    }

    /// The smallest scope at least `prefix_len` over which `addr`'s row is
    /// the same network's (see `CidrTable::narrowest_overlap`).
    pub fn narrowest_overlap(&self, addr: IpAddr, prefix_len: u8) -> u8 {
        let s = self.cidr.narrowest_overlap(addr, prefix_len);
        if self.exact.is_empty() {
            return s;
        }
        s.max(self.exact.narrowest_overlap(addr, prefix_len))
    }

    /// The row for a client: the longest CIDR match, else its ASN, else its country.
    pub fn row(&self, addr: IpAddr, loc: &Location) -> Option<u32> {
        let wide = self.cidr.lookup(addr);
        let exact = if self.exact.is_empty() {
            None
        } else {
            self.exact.lookup(addr)
        };
        match (exact, wide) {
            (Some((r, len)), Some((_, w))) if len >= w => return Some(r),
            (Some((r, _)), None) => return Some(r),
            (_, Some((&r, _))) => return Some(r),
            (None, None) => {}
        }
        if let Some(r) = loc.asn.and_then(|a| self.asn.get(&a)) {
            return Some(*r);
        }
        loc.country.and_then(|c| self.country.get(&c)).copied()
    }
}

/// How a steered name picks its answer.
#[derive(Debug)]
pub enum Strategy {
    Geo(Box<GeoRules>),
    Latency {
        /// Added to every estimate: the time a round trip spends outside fiber.
        overhead_ms: f64,
        table: Option<std::sync::Arc<LatencyTable>>,
    },
    /// Endpoints in this order; the first that is up answers.
    Failover(Vec<EndpointIdx>),
    Weighted,
    All,
}

impl Strategy {
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::Geo(_) => "geo",
            Strategy::Latency { .. } => "latency",
            Strategy::Failover(_) => "failover",
            Strategy::Weighted => "weighted",
            Strategy::All => "all",
        }
    }
}

/// A steered name, compiled.
#[derive(Debug)]
pub struct NamePolicy {
    pub name: Name,
    pub ttl: u32,
    pub strategy: Strategy,
    pub endpoints: Vec<Endpoint>,
    pub when_all_down: AllDown,
    /// Jurisdictions whose clients only ever get regions inside them.
    pub fence: Vec<String>,
    pub fence_fallback: FenceFallback,
    /// The most addresses one answer carries.
    pub max_answers: u16,
    /// Where the name is defined, for explain.
    pub source: String,
    /// Where this name's steered answers are counted (see `metrics`).
    pub metrics_slot: u16,
    /// The merged runs its ECS scopes come from ([`scope`]); `None` before the
    /// snapshot builds them, or for names whose scope does not depend on the
    /// client.
    pub scope_map: Option<std::sync::Arc<scope::ScopeMap>>,
}

/// The zone-wide parts a decision needs besides the name's own policy.
#[derive(Debug, Default)]
pub struct ZonePolicy {
    pub regions: Vec<Region>,
    /// Country lists of every jurisdiction a fence names.
    pub jurisdictions: FxHashMap<String, Vec<[u8; 2]>>,
    /// Round trips measured by the collector, for the zone's `latency` names;
    /// none when the collector is off or knows none of the zone's regions.
    pub measured: Option<Measured>,
}

/// The collector's live table as a zone reads it. The application swaps a
/// fresh table into `table` when the figures change; a decision loads it once
/// (lock-free, like the health view's atomics) and decides from that table
/// alone, so one answer never mixes two tables.
#[derive(Debug, Clone)]
pub struct Measured {
    pub table: std::sync::Arc<arc_swap::ArcSwapOption<LatencyTable>>,
    /// Per region of the zone, by index: its column in the measured table.
    pub columns: Vec<Option<u16>>,
    /// Measured figures sit above the `latency_table` file's entries (the
    /// operator's `precedence = "measured"`); else below them.
    pub above_file: bool,
}

/// One decision's view of the measured figures.
struct Live<'a> {
    table: &'a LatencyTable,
    row: Option<u32>,
    columns: &'a [Option<u16>],
    above_file: bool,
}

/// A zone's steering: beside the zone in the snapshot (same index as the zone in
/// its `ZoneSet`), not inside it; the zone's nodes keep only an index into `names`
/// (`zone::Node::steer`, the `steer` of a lookup's answer).
#[derive(Debug, Default)]
pub struct ZoneSteering {
    /// Regions and jurisdictions of the zone's steered names.
    pub policy: ZonePolicy,
    /// The steered names, compiled.
    pub names: Vec<NamePolicy>,
}

/// Where the client is, as far as the decision is concerned.
#[derive(Debug, Clone)]
pub struct Client {
    /// The ECS address (masked) or the packet's source.
    pub addr: IpAddr,
    /// What the geo database (and overrides) say about it; `prefix_len` is how far
    /// that holds.
    pub location: Location,
    /// How many leading address bits the client gave us: the ECS source prefix, or
    /// the whole address for a packet's source.
    pub source_prefix: u8,
}

impl Client {
    pub(crate) fn family_bits(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => 32,
            IpAddr::V6(_) => 128,
        }
    }
}

/// Which endpoints and addresses are up, and the weights in force. The query path
/// passes a lock-free view.
pub trait HealthView {
    /// Up, counting probes, `min_healthy` and operator overrides.
    fn endpoint_up(&self, endpoint: &Endpoint) -> bool;
    /// One address's probe.
    fn address_up(&self, _addr: &AddrAnswer) -> bool {
        true
    }
    /// The weight in force: the file's, or an operator's override.
    fn weight(&self, endpoint: &Endpoint) -> u32 {
        endpoint.weight
    }
    /// An operator forced it up: answer with every address, whatever probes say.
    fn forced_up(&self, _endpoint: &Endpoint) -> bool {
        false
    }
    /// An operator is draining it: never answered, not even when all are down.
    fn drained(&self, _endpoint: &Endpoint) -> bool {
        false
    }
    /// Its traffic dial in percent, the lower of its own and its region's
    /// ([`dial`]); [`dial::FULL`] when none is set.
    fn dial(&self, _endpoint: &Endpoint) -> u8 {
        dial::FULL
    }
    /// Where the endpoint's dial comes from when more than one source sets it
    /// (the operator's or a ramp's, load shedding's), for explain only.
    fn dial_note(&self, _endpoint: &Endpoint) -> Option<String> {
        None
    }
}

/// Every endpoint up: what a name sees when it has no health checks.
pub struct AllUp;

impl HealthView for AllUp {
    fn endpoint_up(&self, _: &Endpoint) -> bool {
        true
    }
}

/// Why a decision came out as it did, in the words of metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A geo rule matched (index into the rule lists).
    Rule(u16),
    /// Lowest estimated or measured round trip.
    Latency,
    /// The first healthy endpoint in the failover order.
    Failover,
    Weighted,
    All,
    /// A fenced client whose fence left no endpoint: the fence's fallback.
    Fence,
    /// Nothing that may answer is up: `when_all_down`.
    AllDown,
    /// The name has no data of the query type.
    NoData,
}

impl Reason {
    pub fn label(&self) -> &'static str {
        match self {
            Reason::Rule(_) => "rule",
            Reason::Latency => "latency",
            Reason::Failover => "failover",
            Reason::Weighted => "weighted",
            Reason::All => "all",
            Reason::Fence => "fence",
            Reason::AllDown => "all-down",
            Reason::NoData => "nodata",
        }
    }
}

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// These endpoints, best first.
    Endpoints(SmallVec<[EndpointIdx; 8]>),
    NoData,
    ServFail,
}

/// A decision and how far it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: Reason,
    /// ECS scope prefix length: 0 when the answer does not depend on the client.
    pub scope: u8,
    /// The fenced jurisdiction the client fell in, if any.
    pub fenced: Option<u16>,
}

/// Collects the steps of a decision for `explain`; the query path uses [`NoTrace`].
pub trait Trace {
    fn on(&self) -> bool;
    fn note(&mut self, line: String);
}

/// Records nothing and costs nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn on(&self) -> bool {
        false
    }
    #[inline]
    fn note(&mut self, _: String) {}
}

/// Records every step as a line of text.
#[derive(Debug, Default)]
pub struct Recorder(pub Vec<String>);

impl Trace for Recorder {
    fn on(&self) -> bool {
        true
    }
    fn note(&mut self, line: String) {
        self.0.push(line);
    }
}

macro_rules! note {
    ($t:expr, $($arg:tt)*) => {
        if $t.on() {
            $t.note(format!($($arg)*));
        }
    };
}

/// Speed of light in fiber, km per millisecond (about 2/3 c).
pub(crate) const FIBER_KM_PER_MS: f64 = 200.0;
/// Default time a round trip spends outside fiber: serialization, queues, last mile.
pub(crate) const DEFAULT_OVERHEAD_MS: f64 = 5.0;
/// Prefix lengths that the weighted strategy hashes, so one resolver's clients stay
/// together: the usual /24 and /56 client aggregation (RFC 7871 §11.1).
pub(crate) const HASH_PREFIX_V4: u8 = 24;
pub(crate) const HASH_PREFIX_V6: u8 = 56;

/// Great-circle distance in km (haversine, mean Earth radius).
pub(crate) fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let dlat = lat2 - lat1;
    let dlon = lon2 - lon1;
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// Estimated round trip: there and back through fiber, plus the fixed overhead.
pub(crate) fn estimate_rtt_ms(client: (f64, f64), region: (f64, f64), overhead_ms: f64) -> f64 {
    2.0 * distance_km(client, region) / FIBER_KM_PER_MS + overhead_ms
}

/// Decides the answer for `client`. `qtype` is A, AAAA, CNAME or ANY; `now` is
/// seconds since 1970, reserved for time-based rules and never read from a clock here.
pub fn decide<H: HealthView, T: Trace>(
    zone: &ZonePolicy,
    p: &NamePolicy,
    client: &Client,
    health: &H,
    qtype: u16,
    now: u64,
    trace: &mut T,
) -> Decision {
    // Dials first; when they leave the client nothing, they yield ([`dial`]).
    let yields =
        |d: &Decision, moved: bool| moved && matches!(d.reason, Reason::AllDown | Reason::Fence);
    if !trace.on() {
        let (d, moved) = decide_pass(
            zone,
            p,
            client,
            health,
            qtype,
            now,
            dial::Mode::Apply,
            trace,
        );
        if !yields(&d, moved) {
            return d;
        }
        return decide_pass(
            zone,
            p,
            client,
            health,
            qtype,
            now,
            dial::Mode::Yield,
            trace,
        )
        .0;
    }
    let mut first = Recorder::default();
    let (d, moved) = decide_pass(
        zone,
        p,
        client,
        health,
        qtype,
        now,
        dial::Mode::Apply,
        &mut first,
    );
    if !yields(&d, moved) {
        for line in first.0 {
            trace.note(line);
        }
        return d;
    }
    note!(
        trace,
        "the dials would leave this client nothing to answer with: they yield"
    );
    decide_pass(
        zone,
        p,
        client,
        health,
        qtype,
        now,
        dial::Mode::Yield,
        trace,
    )
    .0
}

/// One decision, with the dials applied or yielding; also whether a dial turned
/// a candidate away.
#[allow(clippy::too_many_arguments)]
fn decide_pass<H: HealthView, T: Trace>(
    zone: &ZonePolicy,
    p: &NamePolicy,
    client: &Client,
    health: &H,
    qtype: u16,
    _now: u64,
    dials: dial::Mode,
    trace: &mut T,
) -> (Decision, bool) {
    let loc = &client.location;
    note!(
        trace,
        "client {} (source /{}): {}",
        client.addr,
        client.source_prefix,
        describe_location(loc)
    );
    note!(
        trace,
        "name {} strategy {} ttl {} ({})",
        p.name,
        p.strategy.kind(),
        p.ttl,
        p.source
    );
    let fenced = fence_of(zone, p, loc);
    let mut pass = Pass {
        zone,
        p,
        client,
        health,
        fence: fenced.map(|i| p.fence[i as usize].as_str()),
        usable: SmallVec::new(),
        // What the decision depends on, for the ECS scope: the merged run of the
        // client's class where the name has a map (a client that gave no address
        // bits is unknown wherever its address points).
        merged: p
            .scope_map
            .as_ref()
            .filter(|_| client.source_prefix > 0)
            .map(|m| m.scope(client.addr)),
    };
    pass.candidates(qtype, trace);
    let dialled = dial::apply(zone, p, client, health, &mut pass.usable, dials, trace);
    let fence_scope = if p.fence.is_empty() {
        0
    } else {
        pass.loc_scope(None, None)
    };
    let mut chosen: SmallVec<[EndpointIdx; 8]> = SmallVec::new();
    let (reason, scope) = match &p.strategy {
        Strategy::Geo(rules) => pass.geo(rules, fenced.is_some(), &mut chosen, trace),
        Strategy::Latency { overhead_ms, table } => {
            pass.latency(*overhead_ms, table.as_deref(), &mut chosen, trace)
        }
        Strategy::Failover(order) => pass.failover(order, &mut chosen, trace),
        Strategy::Weighted => pass.weighted(&mut chosen, trace),
        Strategy::All => {
            chosen.extend(pass.usable.iter().filter(|&&(_, up)| up).map(|&(i, _)| i));
            (Reason::All, 0)
        }
    };
    let scope = scope.max(fence_scope).max(dialled.scope);
    let (outcome, reason, scope) = pass.outcome(chosen, reason, scope, fenced, fence_scope, trace);
    let scope = scope.min(client.family_bits());
    if let Outcome::Endpoints(list) = &outcome {
        note!(
            trace,
            "answer: {} ({})",
            list.iter()
                .map(|&i| pass.region_name(&p.endpoints[i as usize]))
                .collect::<Vec<_>>()
                .join(", "),
            reason.label()
        );
    }
    note!(trace, "ECS scope /{scope}");
    if trace.on() {
        explain_scope(zone, p, client, scope, trace);
    }
    let decision = Decision {
        outcome,
        reason,
        scope,
        fenced,
    };
    (decision, !dialled.moved.is_empty())
}

/// One pass of a decision: the name, the client, and the endpoints the client
/// may be answered with (allowed by the fence, serving the type), each with
/// whether it is up.
struct Pass<'a, H> {
    zone: &'a ZonePolicy,
    p: &'a NamePolicy,
    client: &'a Client,
    health: &'a H,
    /// The jurisdiction the client is fenced in, if any.
    fence: Option<&'a str>,
    usable: SmallVec<[(EndpointIdx, bool); 8]>,
    /// The merged scope run of the client's class, where the name has a map.
    merged: Option<u8>,
}

impl<H: HealthView> Pass<'_, H> {
    fn region_name(&self, e: &Endpoint) -> &str {
        self.zone
            .regions
            .get(e.region as usize)
            .map(|r| r.name.as_str())
            .unwrap_or("?")
    }

    /// Inside the client's fence (or no fence).
    fn allowed(&self, e: &Endpoint) -> bool {
        match self.fence {
            None => true,
            Some(j) => {
                self.zone
                    .regions
                    .get(e.region as usize)
                    .and_then(|r| r.jurisdiction.as_deref())
                    == Some(j)
            }
        }
    }

    fn is_up(&self, i: EndpointIdx) -> bool {
        self.usable.iter().any(|&(j, up)| j == i && up)
    }

    /// The scope of an answer that depends on where the client is: the merged run,
    /// else the database network narrowed by the CIDR tables the decision reads.
    fn loc_scope(&self, extra: Option<&CidrTable<u16>>, extra32: Option<&CidrTable<u32>>) -> u8 {
        if let Some(s) = self.merged {
            return s;
        }
        let mut s = self.client.location.prefix_len;
        if let Some(t) = extra {
            s = s.max(t.narrowest_overlap(self.client.addr, s));
        }
        if let Some(t) = extra32 {
            s = s.max(t.narrowest_overlap(self.client.addr, s));
        }
        s
    }

    /// Which endpoints this client may be answered with at all, and whether each
    /// is up.
    fn candidates<T: Trace>(&mut self, qtype: u16, trace: &mut T) {
        let p = self.p;
        let cc = cc_str(self.client.location.country);
        if !p.fence.is_empty() {
            match self.fence {
                Some(j) => note!(
                    trace,
                    "fence {}: client country {cc} is in {j}; only regions in {j} may answer",
                    p.fence.join(","),
                ),
                None => note!(
                    trace,
                    "fence {}: client country {cc} is outside it",
                    p.fence.join(","),
                ),
            }
        }
        for (i, e) in p.endpoints.iter().enumerate() {
            if !self.allowed(e) {
                note!(
                    trace,
                    "  {}: rejected: outside the fence",
                    self.region_name(e)
                );
                continue;
            }
            if !e.serves(qtype) {
                note!(
                    trace,
                    "  {}: rejected: no data of the query type",
                    self.region_name(e)
                );
                continue;
            }
            let up = self.health.endpoint_up(e);
            if !up {
                let why = if self.health.drained(e) {
                    "drained"
                } else {
                    "down"
                };
                note!(trace, "  {}: rejected: {why}", self.region_name(e));
            }
            self.usable.push((i as EndpointIdx, up));
        }
    }

    /// `geo`: the first region up in the client's rule's list.
    fn geo<T: Trace>(
        &self,
        rules: &GeoRules,
        fenced: bool,
        chosen: &mut SmallVec<[EndpointIdx; 8]>,
        trace: &mut T,
    ) -> (Reason, u8) {
        let (list, level) = geo_rule(rules, self.client);
        note!(
            trace,
            "rule {} matched ({level}): {}",
            rules
                .labels
                .get(list as usize)
                .map(|s| s.as_str())
                .unwrap_or("?"),
            rules.lists[list as usize]
                .iter()
                .map(|&i| self.region_name(&self.p.endpoints[i as usize]))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(&i) = rules.lists[list as usize].iter().find(|&&i| self.is_up(i)) {
            chosen.push(i);
        } else if fenced {
            // The rule points outside the fence: the nearest thing inside it is
            // the first allowed endpoint in declaration order.
            if let Some(&(i, _)) = self.usable.iter().find(|&&(_, up)| up) {
                note!(
                    trace,
                    "no listed region inside the fence is up; first region inside it: {}",
                    self.region_name(&self.p.endpoints[i as usize])
                );
                chosen.push(i);
            }
        }
        (Reason::Rule(list), self.loc_scope(Some(&rules.cidr), None))
    }

    /// `latency`: the region up with the lowest round trip, measured where the
    /// file or the collector has a figure, else estimated from distance.
    fn latency<T: Trace>(
        &self,
        overhead_ms: f64,
        table: Option<&LatencyTable>,
        chosen: &mut SmallVec<[EndpointIdx; 8]>,
        trace: &mut T,
    ) -> (Reason, u8) {
        let loc = &self.client.location;
        let row = table.and_then(|t| t.row(self.client.addr, loc));
        let mut scope = self.loc_scope(None, table.map(|t| &t.cidr));
        let guard = self.zone.measured.as_ref().map(|m| (m, m.table.load()));
        let live = guard.as_ref().and_then(|(m, g)| {
            let t: &LatencyTable = g.as_deref()?;
            Some(Live {
                table: t,
                row: t.row(self.client.addr, loc),
                columns: &m.columns,
                above_file: m.above_file,
            })
        });
        if let Some(l) = live.as_ref().filter(|l| !l.table.rows.is_empty()) {
            // The scope maps know nothing of measured rows: hold to the
            // database network, narrowed to any measured network inside it,
            // so the answer never covers a network measured otherwise.
            scope = scope.max(loc.prefix_len);
            scope = scope.max(l.table.narrowest_overlap(self.client.addr, scope));
        }
        if let (Some(t), Some(r)) = (table, row) {
            note!(
                trace,
                "measured latencies: {}",
                t.label(r).unwrap_or_default()
            );
        }
        if let Some(l) = &live {
            match l.row.and_then(|r| l.table.label(r)) {
                Some(label) => note!(
                    trace,
                    "collector ({} the latency_table file): {label}",
                    if l.above_file { "above" } else { "below" }
                ),
                None => note!(trace, "collector: no measured row for this client"),
            }
        }
        let mut best: Option<(f64, EndpointIdx)> = None;
        for &(i, up) in &self.usable {
            let e = &self.p.endpoints[i as usize];
            let region = &self.zone.regions[e.region as usize];
            let (measured, rtt) =
                round_trip(self.zone, e, overhead_ms, table, row, live.as_ref(), loc);
            if trace.on() {
                let how = match (measured, rtt) {
                    (Some((m, Source::File)), _) => format!("{m:.1} ms measured"),
                    (Some((m, Source::Collector)), _) => {
                        format!("{m:.1} ms measured (collector)")
                    }
                    (None, Some(r)) => format!("{r:.1} ms estimated"),
                    (None, None) => "unknown (no location)".to_string(),
                };
                trace.note(format!(
                    "  {}: {how}{}",
                    region.name,
                    if up { "" } else { ", down" }
                ));
            }
            if !up {
                continue;
            }
            // Unknown round trips sort after every known one, in declaration
            // order; ties keep declaration order (strictly less replaces).
            let key = rtt.unwrap_or(f64::INFINITY);
            if best.is_none_or(|(b, _)| key < b) {
                best = Some((key, i));
            }
        }
        if let Some((_, i)) = best {
            chosen.push(i);
        }
        (Reason::Latency, scope)
    }

    /// `failover`: the first region up in the name's order.
    fn failover<T: Trace>(
        &self,
        order: &[EndpointIdx],
        chosen: &mut SmallVec<[EndpointIdx; 8]>,
        trace: &mut T,
    ) -> (Reason, u8) {
        if let Some(&i) = order.iter().find(|&&i| self.is_up(i)) {
            chosen.push(i);
        }
        note!(
            trace,
            "failover order: {}",
            order
                .iter()
                .map(|&i| self.region_name(&self.p.endpoints[i as usize]))
                .collect::<Vec<_>>()
                .join(" > ")
        );
        (Reason::Failover, 0)
    }

    /// `weighted`: weighted rendezvous hashing of the client's prefix.
    fn weighted<T: Trace>(
        &self,
        chosen: &mut SmallVec<[EndpointIdx; 8]>,
        trace: &mut T,
    ) -> (Reason, u8) {
        let bits = match self.client.family_bits() {
            32 => HASH_PREFIX_V4,
            _ => HASH_PREFIX_V6,
        }
        .min(self.client.source_prefix);
        let key = prefix_key(self.client.addr, bits);
        let mut best: Option<(f64, EndpointIdx)> = None;
        for &(i, up) in &self.usable {
            let e = &self.p.endpoints[i as usize];
            let w = self.health.weight(e);
            if !up || w == 0 {
                if w == 0 {
                    note!(trace, "  {}: weight 0 (drained)", self.region_name(e));
                }
                continue;
            }
            // Weighted rendezvous hashing: a client prefix keeps its endpoint
            // while others come and go, and shares follow the weights. The
            // salt is the region, stable across reloads.
            let u = unit_hash(key, e.region as u64);
            let score = w as f64 / -u.ln();
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, i));
            }
        }
        if let Some((_, i)) = best {
            note!(
                trace,
                "client prefix /{bits} hashes to {} (weights {})",
                self.region_name(&self.p.endpoints[i as usize]),
                self.usable
                    .iter()
                    .map(|&(i, _)| {
                        let e = &self.p.endpoints[i as usize];
                        format!("{}={}", self.region_name(e), self.health.weight(e))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            chosen.push(i);
        }
        (Reason::Weighted, bits)
    }

    /// The outcome: the endpoints chosen, else NODATA when nothing the client may
    /// get has data of the type, else the fence's fallback, else `when_all_down`.
    #[allow(clippy::too_many_arguments)]
    fn outcome<T: Trace>(
        &self,
        chosen: SmallVec<[EndpointIdx; 8]>,
        mut reason: Reason,
        mut scope: u8,
        fenced: Option<u16>,
        fence_scope: u8,
        trace: &mut T,
    ) -> (Outcome, Reason, u8) {
        let p = self.p;
        // The fence leaves the client nothing at all, whatever the type.
        let fence_empty = fenced.is_some() && !p.endpoints.iter().any(|e| self.allowed(e));
        let outcome = if !chosen.is_empty() {
            Outcome::Endpoints(chosen)
        } else if self.usable.is_empty() && !fence_empty {
            // Nothing the client may get has data of this type: an honest NODATA (an EU
            // client asking AAAA of an IPv4-only EU region is not failed over).
            reason = Reason::NoData;
            note!(trace, "no region has data of this type");
            scope = fence_scope;
            Outcome::NoData
        } else if let Some(f) = fenced {
            reason = Reason::Fence;
            note!(
                trace,
                "no region inside {} can answer: fence fallback {:?}",
                p.fence[f as usize],
                p.fence_fallback
            );
            match p.fence_fallback {
                FenceFallback::ServFail => Outcome::ServFail,
                FenceFallback::NoData => Outcome::NoData,
            }
        } else {
            reason = Reason::AllDown;
            note!(
                trace,
                "nothing that may answer is up: when_all_down {:?}",
                p.when_all_down
            );
            // What answers now does not depend on where the client is, beyond the fence.
            scope = fence_scope;
            match p.when_all_down {
                AllDown::AnswerAll => {
                    // Fail open, but not onto what an operator is draining on purpose,
                    // unless that is all there is.
                    let open: SmallVec<[EndpointIdx; 8]> = self
                        .usable
                        .iter()
                        .map(|&(i, _)| i)
                        .filter(|&i| !self.health.drained(&p.endpoints[i as usize]))
                        .collect();
                    if open.is_empty() {
                        Outcome::Endpoints(self.usable.iter().map(|&(i, _)| i).collect())
                    } else {
                        Outcome::Endpoints(open)
                    }
                }
                AllDown::NoData => Outcome::NoData,
                AllDown::ServFail => Outcome::ServFail,
                AllDown::Endpoint(i) => {
                    if self.usable.iter().any(|&(j, _)| j == i) {
                        Outcome::Endpoints(std::iter::once(i).collect())
                    } else {
                        Outcome::NoData
                    }
                }
            }
        };
        (outcome, reason, scope)
    }
}

/// Whether a trace line is one of [`explain_scope`]'s: they depend on the name and
/// the client only, so a trace of both address types may print them once.
pub(crate) fn is_scope_map_line(line: &str) -> bool {
    [
        "  merged: ",
        "  it stops at /",
        "  every address gets the same",
    ]
    .iter()
    .any(|p| line.starts_with(p))
}

/// Why the scope stops where it does: the merged run and the neighbour that
/// answers differently.
fn explain_scope<T: Trace>(
    zone: &ZonePolicy,
    p: &NamePolicy,
    client: &Client,
    scope: u8,
    trace: &mut T,
) {
    let Some(m) = p.scope_map.as_ref() else {
        note!(trace, "  (no merged scope map: the database network)");
        return;
    };
    if client.source_prefix == 0 {
        note!(
            trace,
            "  (source prefix /0: the client is unknown everywhere)"
        );
        return;
    }
    let Some(why) = m.why(client.addr) else {
        return;
    };
    let describe = |c: &scope::Class| {
        let names: Vec<&str> = c
            .order
            .iter()
            .map(|&i| {
                p.endpoints
                    .get(i as usize)
                    .and_then(|e| zone.regions.get(e.region as usize))
                    .map_or("?", |r| r.name.as_str())
            })
            .collect();
        let fence = match c.fenced {
            Some(f) => format!(
                "fenced to {}",
                p.fence.get(f as usize).map_or("?", |s| s.as_str())
            ),
            None if p.fence.is_empty() => String::new(),
            None => "outside the fences".to_string(),
        };
        match (names.is_empty(), fence.is_empty()) {
            (true, true) => "the same answer".to_string(),
            (true, false) => fence,
            (false, true) => format!("regions {}", names.join(" > ")),
            (false, false) => format!("regions {}, {fence}", names.join(" > ")),
        }
    };
    let net = crate::geo::cidr::mask(client.addr, why.scope);
    note!(
        trace,
        "  merged: {net}/{} all gets {} (scope map; the database network is /{})",
        why.scope,
        describe(&why.class),
        client.location.prefix_len
    );
    match why.neighbour {
        Some((addr, s, class)) => note!(
            trace,
            "  it stops at /{}: {}/{} would take in {}/{s}, which gets {}",
            why.scope,
            crate::geo::cidr::mask(client.addr, why.scope - 1),
            why.scope - 1,
            crate::geo::cidr::mask(addr, s),
            describe(&class)
        ),
        None => note!(trace, "  every address gets the same"),
    }
    if why.scope != scope {
        note!(
            trace,
            "  (the answer's scope is /{scope}: the strategy fixes it)"
        );
    }
}

/// The fence (an index into the name's `fence` list) whose jurisdiction holds the
/// client's country, if any.
fn fence_of(zone: &ZonePolicy, p: &NamePolicy, loc: &Location) -> Option<u16> {
    let cc = loc.country?;
    p.fence
        .iter()
        .position(|j| zone.jurisdictions.get(j).is_some_and(|l| l.contains(&cc)))
        .map(|i| i as u16)
}

/// Where a measured figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The operator's `latency_table` file.
    File,
    /// The collector's live table.
    Collector,
}

/// The round trip to an endpoint's region: measured (the file table's `row`,
/// the collector's, in the operator's precedence), and the one used
/// (measured, else estimated from the client's and the region's location;
/// `None` when either is unknown).
fn round_trip(
    zone: &ZonePolicy,
    e: &Endpoint,
    overhead_ms: f64,
    table: Option<&LatencyTable>,
    row: Option<u32>,
    live: Option<&Live<'_>>,
    loc: &Location,
) -> (Option<(f64, Source)>, Option<f64>) {
    let file = match (table, row) {
        (Some(t), Some(r)) => t.rows[r as usize]
            .get(e.region as usize)
            .copied()
            .flatten()
            .map(|m| (f64::from(m), Source::File)),
        _ => None,
    };
    let collected = live.and_then(|l| {
        let col = l.columns.get(e.region as usize).copied().flatten()?;
        let m = l
            .table
            .rows
            .get(l.row? as usize)?
            .get(col as usize)
            .copied()
            .flatten()?;
        Some((f64::from(m), Source::Collector))
    });
    let measured = match live {
        Some(l) if l.above_file => collected.or(file),
        _ => file.or(collected),
    };
    let rtt = measured.map(|(m, _)| m).or_else(|| {
        let region = zone.regions.get(e.region as usize)?;
        Some(estimate_rtt_ms(loc.coords?, region.location?, overhead_ms))
    });
    (measured, rtt)
}

/// The most specific geo rule for the client: CIDR, subdivision, country,
/// continent, default.
fn geo_rule(rules: &GeoRules, client: &Client) -> (u16, &'static str) {
    if let Some((&l, _)) = rules.cidr.lookup(client.addr) {
        return (l, "cidr");
    }
    let loc = &client.location;
    if let Some(l) = loc
        .subdivision
        .as_ref()
        .filter(|_| !rules.subdivision.is_empty())
        .and_then(|s| rules.subdivision.get(s.as_str()))
    {
        return (*l, "subdivision");
    }
    if let Some(l) = loc.country.and_then(|c| rules.country.get(&c)) {
        return (*l, "country");
    }
    if let Some(l) = loc.continent.and_then(|c| rules.continent.get(&c)) {
        return (*l, "continent");
    }
    (rules.default, "default")
}

fn cc_str(c: Option<[u8; 2]>) -> String {
    c.map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_else(|| "unknown".to_string())
}

/// One line saying where the database puts the client.
pub(crate) fn describe_location(loc: &Location) -> String {
    let mut parts = Vec::new();
    if let Some(c) = loc.continent {
        parts.push(format!("continent {}", String::from_utf8_lossy(&c)));
    }
    if let Some(c) = loc.country {
        parts.push(format!("country {}", String::from_utf8_lossy(&c)));
    }
    if let Some(s) = &loc.subdivision {
        parts.push(format!("subdivision {s}"));
    }
    if let Some((la, lo)) = loc.coords {
        parts.push(format!("at {la:.2},{lo:.2}"));
    }
    if let Some(a) = loc.asn {
        parts.push(format!("AS{a}"));
    }
    if parts.is_empty() {
        parts.push("location unknown".to_string());
    }
    format!("{} (network /{})", parts.join(", "), loc.prefix_len)
}

/// The first `bits` of the address, as a number to hash.
fn prefix_key(addr: IpAddr, bits: u8) -> u128 {
    let (v, width) = match addr {
        IpAddr::V4(a) => (u32::from(a) as u128, 32u32),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => (u32::from(m) as u128, 32),
            None => (u128::from(a), 128),
        },
    };
    let bits = (bits as u32).min(width);
    if bits == 0 {
        return 0;
    }
    let shift = width - bits;
    (v >> shift) << shift | (bits as u128) << 120
}

/// A stable hash of (key, salt) mapped into (0, 1).
fn unit_hash(key: u128, salt: u64) -> f64 {
    // SplitMix64 over the halves: stable across builds and platforms, unlike the
    // standard library's randomly keyed hasher.
    let mut x = (key as u64) ^ ((key >> 64) as u64).rotate_left(17) ^ salt;
    for _ in 0..2 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x = z ^ (z >> 31);
    }
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests;
