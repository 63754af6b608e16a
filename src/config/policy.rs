//! The steering keys of a zone policy file: regions, jurisdictions, steered names,
//! and the measured-latency table. Parsed raw, compiled to `policy` plans with every
//! region name turned into an index and every error reported with its line.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;

use super::checks::{compile_check, CheckRaw};
use super::values::TtlValue;
use super::{line_of, ConfigError, LineIndex};
use crate::geo::cidr::IpNet;
use crate::health::CheckSpec;
use crate::policy::{
    jurisdiction, AddrAnswer, AllDown, Endpoint, EndpointIdx, FenceFallback, GeoRules,
    LatencyTable, NamePolicy, ProbeRef, Region, RegionIdx, Strategy, ZonePolicy,
    DEFAULT_OVERHEAD_MS, NO_HEALTH,
};
use crate::zone::{class, rtype, Invalid, Name, RRset};

/// `[regions.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionRaw {
    /// [latitude, longitude] in degrees.
    pub location: Option<[f64; 2]>,
    /// Legal area for residency fences, like "EU".
    pub jurisdiction: Option<String>,
}

/// `[names.NAME]`: one steered name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NameRaw {
    /// TTL of steered answers; default 30 s so changes propagate fast.
    pub ttl: Option<TtlValue>,
    /// geo | latency | failover | weighted | all
    pub strategy: String,
    /// Region name -> that region's answer for this name.
    pub endpoints: IndexMap<String, toml::Spanned<EndpointRaw>>,
    /// answer-all (default) | nodata | servfail | region:NAME
    pub when_all_down: Option<String>,
    /// Jurisdictions whose clients only ever get regions inside them.
    pub fence: Option<Vec<String>>,
    /// servfail | nodata: what fenced clients get when no region inside can answer.
    pub fence_fallback: Option<String>,
    /// The most addresses in one answer (default 8).
    pub max_answers: Option<u16>,
    /// failover: regions in order (default: the order of `endpoints`).
    pub order: Option<Vec<String>>,
    /// geo: the rules.
    pub geo: Option<GeoRulesRaw>,
    /// latency: fixed overhead added to every estimate, in ms (default 5).
    pub overhead_ms: Option<f64>,
    /// A lower TTL used while any of the name's endpoints is down, so clients
    /// come back soon after recovery.
    pub ttl_when_degraded: Option<TtlValue>,
}

/// One region's answer for a steered name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointRaw {
    pub a: Option<Vec<String>>,
    pub aaaa: Option<Vec<String>>,
    pub cname: Option<String>,
    /// weighted: this endpoint's share (default 1; 0 drains).
    pub weight: Option<u32>,
    /// A `[checks.NAME]` that probes each address (or `probe`).
    pub check: Option<String>,
    /// Probe this address (ADDR or ADDR:PORT) instead of the served ones.
    pub probe: Option<String>,
    /// The endpoint is up while at least this many addresses are (default 1).
    pub min_healthy: Option<u32>,
}

/// `[names.NAME.geo]`: selectors to ordered region lists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GeoRulesRaw {
    pub default: Option<Vec<String>>,
    #[serde(default)]
    pub continent: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub country: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub subdivision: IndexMap<String, Vec<String>>,
    #[serde(default)]
    pub cidr: IndexMap<String, Vec<String>>,
}

/// A measured-latency file: `[[entry]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFileRaw {
    #[serde(default)]
    entry: Vec<toml::Spanned<LatencyEntryRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyEntryRaw {
    cidr: Option<String>,
    asn: Option<u32>,
    country: Option<String>,
    /// Region -> measured round trip in ms.
    rtt: IndexMap<String, f64>,
}

/// The steering parts of a policy file, as parsed.
pub(crate) struct SteeringRaw<'a> {
    pub checks: Option<&'a IndexMap<String, toml::Spanned<CheckRaw>>>,
    pub regions: Option<&'a IndexMap<String, toml::Spanned<RegionRaw>>>,
    pub jurisdictions: Option<&'a IndexMap<String, toml::Spanned<Vec<String>>>>,
    pub names: Option<&'a IndexMap<String, toml::Spanned<NameRaw>>>,
    pub latency_table: Option<&'a toml::Spanned<String>>,
}

/// Default TTL of steered answers.
pub(crate) const DEFAULT_STEERED_TTL: u32 = 30;
/// Default cap on addresses per steered answer.
pub(crate) const DEFAULT_MAX_ANSWERS: u16 = 8;

/// A zone's compiled steering: regions, steered names, and the checks they use.
#[derive(Debug, Default)]
pub struct Steering {
    pub zone: ZonePolicy,
    pub names: Vec<NamePolicy>,
    /// `ProbeRef::check` indexes this.
    pub checks: Vec<CheckSpec>,
    pub warnings: Vec<ConfigError>,
}

/// Compiles regions and steered names. `text` is the policy file's text (for lines).
pub(crate) fn compile_steering(
    text: &str,
    path: &Path,
    origin: &Name,
    raw: SteeringRaw<'_>,
) -> Result<Steering, Vec<ConfigError>> {
    let SteeringRaw {
        checks,
        regions,
        jurisdictions,
        names,
        latency_table,
    } = raw;
    let mut cx = PolicyCx {
        path,
        lines: LineIndex::new(text),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut zone = ZonePolicy::default();
    let (checks, check_idx) = cx.checks(checks);
    let region_idx = cx.regions(regions, &mut zone);
    if let Some(js) = jurisdictions {
        cx.jurisdictions(js, &mut zone);
    }
    let table = latency_table.and_then(|t| cx.latency_table(t, &region_idx, zone.regions.len()));
    let known = Known {
        checks: &checks,
        check_idx: &check_idx,
        region_idx: &region_idx,
        table,
    };
    let mut compiled = Vec::new();
    for (key, spanned) in names.into_iter().flatten() {
        if let Some(n) = cx.name(key, spanned, origin, &known, &mut zone) {
            compiled.push(n);
        }
    }
    if cx.errors.is_empty() {
        Ok(Steering {
            zone,
            names: compiled,
            checks,
            warnings: cx.warnings,
        })
    } else {
        Err(cx.errors)
    }
}

/// What compiling one policy file's steering reads and has found so far.
struct PolicyCx<'a> {
    path: &'a Path,
    lines: LineIndex,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

/// The file's checks, regions and latency table, as its names refer to them.
struct Known<'k> {
    checks: &'k [CheckSpec],
    check_idx: &'k BTreeMap<&'k str, u32>,
    region_idx: &'k BTreeMap<&'k str, RegionIdx>,
    table: Option<Arc<LatencyTable>>,
}

/// One name's endpoints, by region name.
type EndpointsOf<'a> = BTreeMap<&'a str, EndpointIdx>;

impl<'a> PolicyCx<'a> {
    fn err(&self, line: usize, m: String) -> ConfigError {
        ConfigError::new(self.path, line, m)
    }

    fn error(&mut self, line: usize, m: String) {
        let e = self.err(line, m);
        self.errors.push(e);
    }

    /// `[checks.NAME]`, by name.
    fn checks<'r>(
        &mut self,
        raw: Option<&'r IndexMap<String, toml::Spanned<CheckRaw>>>,
    ) -> (Vec<CheckSpec>, BTreeMap<&'r str, u32>) {
        let mut checks = Vec::new();
        let mut idx = BTreeMap::new();
        for (name, c) in raw.into_iter().flatten() {
            let line = self.lines.line(c.span().start);
            match compile_check(name, c.get_ref()) {
                Ok(spec) => {
                    idx.insert(name.as_str(), checks.len() as u32);
                    checks.push(spec);
                }
                Err(ms) => {
                    for m in ms {
                        self.error(line, m.0);
                    }
                }
            }
        }
        (checks, idx)
    }

    /// `[regions.NAME]`, in the order written, into `zone`; their indexes by name.
    fn regions<'r>(
        &mut self,
        raw: Option<&'r IndexMap<String, toml::Spanned<RegionRaw>>>,
        zone: &mut ZonePolicy,
    ) -> BTreeMap<&'r str, RegionIdx> {
        let mut idx = BTreeMap::new();
        for (name, r) in raw.into_iter().flatten() {
            let line = self.lines.line(r.span().start);
            let RegionRaw {
                location,
                jurisdiction,
            } = r.get_ref();
            if let Some([lat, lon]) = *location {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    self.error(line, format!("region {name}: location [{lat}, {lon}] is not [latitude -90..90, longitude -180..180]"));
                }
            }
            idx.insert(name.as_str(), zone.regions.len() as RegionIdx);
            zone.regions.push(Region {
                name: name.clone(),
                location: location.map(|[a, b]| (a, b)),
                jurisdiction: jurisdiction.clone(),
            });
        }
        idx
    }

    /// `[jurisdictions]`: the file's own lists of countries.
    fn jurisdictions(
        &mut self,
        raw: &IndexMap<String, toml::Spanned<Vec<String>>>,
        zone: &mut ZonePolicy,
    ) {
        for (name, countries) in raw {
            let line = self.lines.line(countries.span().start);
            let mut list = Vec::new();
            for c in countries.get_ref() {
                let b = c.as_bytes();
                if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
                    list.push([b[0], b[1]]);
                } else {
                    self.error(line, format!("jurisdiction {name}: {c:?} is not an ISO 3166-1 alpha-2 country code like \"DE\""));
                }
            }
            zone.jurisdictions.insert(name.clone(), list);
        }
    }

    /// The operator's `latency_table` file, relative to the policy file.
    fn latency_table(
        &mut self,
        t: &toml::Spanned<String>,
        region_idx: &BTreeMap<&str, RegionIdx>,
        regions: usize,
    ) -> Option<Arc<LatencyTable>> {
        let base = self.path.parent().unwrap_or(Path::new("."));
        let file = base.join(t.get_ref());
        match load_latency_table(&file, region_idx, regions) {
            Ok(tbl) => Some(Arc::new(tbl)),
            Err(e) if file.is_file() => {
                self.errors.extend(e);
                None
            }
            Err(_) => {
                let line = self.lines.line(t.span().start);
                self.error(
                    line,
                    format!(
                        "latency_table {:?} does not exist (relative to this file)",
                        t.get_ref()
                    ),
                );
                None
            }
        }
    }

    /// One `[names.NAME]`; `None` (with its errors pushed) when it does not compile.
    fn name(
        &mut self,
        key: &str,
        spanned: &'a toml::Spanned<NameRaw>,
        origin: &Name,
        known: &Known<'_>,
        zone: &mut ZonePolicy,
    ) -> Option<NamePolicy> {
        let line = self.lines.line(spanned.span().start);
        let NameRaw {
            ttl,
            // read with geo, order and overhead_ms by `strategy` below
            strategy: _,
            endpoints,
            when_all_down,
            fence,
            fence_fallback,
            max_answers,
            order,
            geo,
            overhead_ms,
            ttl_when_degraded,
        } = spanned.get_ref();
        let before = self.errors.len();
        let owner = match Name::parse(key, Some(origin)) {
            Ok(o) if o.is_subdomain_of(origin) => o,
            Ok(o) => {
                self.error(
                    line,
                    format!("names.{key}: {o} is outside the zone {origin}"),
                );
                return None;
            }
            Err(e) => {
                self.error(line, format!("names.{key}: {e}"));
                return None;
            }
        };
        let ctx = format!("names.{key}");
        let ttl = match ttl {
            Some(t) => t.seconds().unwrap_or_else(|m| {
                self.error(line, format!("{ctx}.ttl: {m}"));
                0
            }),
            None => DEFAULT_STEERED_TTL,
        };
        if endpoints.is_empty() {
            self.error(line, format!("{ctx}: no endpoints; give at least one region's answer (endpoints.REGION = {{ a = [...] }})"));
        }
        let (mut endpoints, ep_of_region) =
            self.endpoints(&ctx, &owner, endpoints, ttl, origin, known);
        let lists = Lists {
            ctx: &ctx,
            line,
            ep_of_region: &ep_of_region,
        };
        let strategy = self.strategy(&lists, spanned.get_ref(), &endpoints, known)?;
        for (given, wants, key) in [
            (
                geo.is_some(),
                matches!(strategy, Strategy::Geo(_)),
                "a geo table is only read with strategy = \"geo\"",
            ),
            (
                order.is_some(),
                matches!(strategy, Strategy::Failover(_)),
                "`order` is only read with strategy = \"failover\"",
            ),
            (
                overhead_ms.is_some(),
                matches!(strategy, Strategy::Latency { .. }),
                "`overhead_ms` is only read with strategy = \"latency\"",
            ),
        ] {
            if given && !wants {
                self.error(line, format!("{ctx}: {key}"));
            }
        }
        if matches!(strategy, Strategy::Latency { table: None, .. }) {
            for e in &endpoints {
                let r = &zone.regions[e.region as usize];
                if r.location.is_none() {
                    self.error(line, format!("{ctx}: strategy \"latency\" needs a location for region {} (regions.{}.location = [lat, lon])", r.name, r.name));
                }
            }
        }
        if matches!(strategy, Strategy::Weighted) && endpoints.iter().all(|e| e.weight == 0) {
            let w = self.err(
                line,
                format!("{ctx}: every weight is 0; the name answers only through when_all_down"),
            );
            self.warnings.push(w);
        }
        let when_all_down = self.when_all_down(&lists, when_all_down.as_deref());
        let fence = fence.clone().unwrap_or_default();
        let fence_fallback =
            self.fence(&lists, &fence, fence_fallback.as_deref(), &endpoints, zone);
        if let Some(t) = ttl_when_degraded {
            match t.seconds() {
                Ok(low) if low <= ttl => degrade(&mut endpoints, low),
                Ok(low) => self.error(line, format!("{ctx}.ttl_when_degraded = {low} is above the name's ttl {ttl}; it should be lower")),
                Err(m) => self.error(line, format!("{ctx}.ttl_when_degraded: {m}")),
            }
        }
        let max_answers = max_answers.unwrap_or(DEFAULT_MAX_ANSWERS);
        if max_answers == 0 {
            self.error(
                line,
                format!("{ctx}.max_answers = 0 would answer nothing; use 1 or more"),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(NamePolicy {
            name: owner,
            ttl,
            strategy,
            endpoints,
            when_all_down,
            fence,
            fence_fallback,
            max_answers,
            source: format!("{}:{line}", self.path.display()),
            metrics_slot: 0,
            scope_map: None,
        })
    }

    /// A name's endpoints, one per region, and their indexes by region name.
    fn endpoints(
        &mut self,
        ctx: &str,
        owner: &Name,
        raw: &'a IndexMap<String, toml::Spanned<EndpointRaw>>,
        ttl: u32,
        origin: &Name,
        known: &Known<'_>,
    ) -> (Vec<Endpoint>, EndpointsOf<'a>) {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut of_region = BTreeMap::new();
        for (region, e) in raw {
            let eline = self.lines.line(e.span().start);
            let e = e.get_ref();
            let Some(&ri) = known.region_idx.get(region.as_str()) else {
                self.error(eline, format!("{ctx}.endpoints.{region}: no such region; declare it under [regions] (known: {})", region_names(known.region_idx)));
                continue;
            };
            let check = match e.check.as_deref() {
                None => None,
                Some(c) => match known.check_idx.get(c) {
                    Some(&i) => Some((i, &known.checks[i as usize])),
                    None => {
                        let names = if known.check_idx.is_empty() {
                            "none".to_string()
                        } else {
                            keys(known.check_idx)
                        };
                        self.error(eline, format!("{ctx}.endpoints.{region}: check {c:?} is not defined; add [checks.{c}] (known: {names})"));
                        continue;
                    }
                },
            };
            let label = format!("{owner}/{region}");
            match compile_endpoint(e, ri, ttl, origin, check, label) {
                Ok(ep) => {
                    of_region.insert(region.as_str(), endpoints.len() as EndpointIdx);
                    endpoints.push(ep);
                }
                Err(m) => self.error(eline, format!("{ctx}.endpoints.{region}: {m}")),
            }
        }
        (endpoints, of_region)
    }

    /// Region names into the name's endpoint indexes; `what` names the key.
    fn list(&mut self, l: &Lists<'_>, list: &[String], what: &str) -> Vec<EndpointIdx> {
        let mut out = Vec::new();
        for r in list {
            match l.ep_of_region.get(r.as_str()) {
                Some(&i) if !out.contains(&i) => out.push(i),
                Some(_) => self.error(
                    l.line,
                    format!("{}.{what}: region {r} is listed twice", l.ctx),
                ),
                None => self.error(
                    l.line,
                    format!(
                        "{}.{what}: region {r} has no endpoint for this name (endpoints: {})",
                        l.ctx,
                        keys(l.ep_of_region)
                    ),
                ),
            }
        }
        out
    }

    /// The name's strategy; `None` when it cannot be read at all.
    fn strategy(
        &mut self,
        l: &Lists<'_>,
        n: &NameRaw,
        endpoints: &[Endpoint],
        known: &Known<'_>,
    ) -> Option<Strategy> {
        let (ctx, line) = (l.ctx, l.line);
        Some(match n.strategy.as_str() {
            "geo" => {
                let Some(g) = &n.geo else {
                    self.error(line, format!("{ctx}: strategy \"geo\" needs a [{ctx}.geo] table with at least `default = [REGION, ...]`"));
                    return None;
                };
                Strategy::Geo(Box::new(self.geo_rules(l, g)))
            }
            "latency" => Strategy::Latency {
                overhead_ms: n.overhead_ms.unwrap_or(DEFAULT_OVERHEAD_MS),
                table: known.table.clone(),
            },
            "failover" => Strategy::Failover(match &n.order {
                Some(o) => self.list(l, o, "order"),
                None => (0..endpoints.len() as EndpointIdx).collect(),
            }),
            "weighted" => Strategy::Weighted,
            "all" => {
                if endpoints.iter().any(|e| e.cname.is_some()) {
                    self.error(line, format!("{ctx}: strategy \"all\" answers with every endpoint's addresses together; CNAME endpoints cannot be combined (give a and aaaa)"));
                }
                Strategy::All
            }
            other => {
                self.error(line, format!("{ctx}.strategy = {other:?}; use one of geo, latency, failover, weighted, all"));
                return None;
            }
        })
    }

    /// `[names.NAME.geo]`: each rule's region list, by continent, country,
    /// subdivision and network.
    fn geo_rules(&mut self, l: &Lists<'_>, g: &GeoRulesRaw) -> GeoRules {
        let (ctx, line) = (l.ctx, l.line);
        let GeoRulesRaw {
            default,
            continent,
            country,
            subdivision,
            cidr,
        } = g;
        let mut rules = GeoRules::default();
        let push = |rules: &mut GeoRules, label: String, list: Vec<EndpointIdx>| {
            rules.lists.push(list);
            rules.labels.push(label);
            (rules.lists.len() - 1) as u16
        };
        match default {
            Some(d) => {
                let list = self.list(l, d, "geo.default");
                rules.default = push(&mut rules, "default".into(), list);
            }
            None => self.error(line, format!("{ctx}.geo: a `default = [REGION, ...]` rule is required for clients no other rule matches")),
        }
        const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
        for (k, v) in continent {
            if !CONTINENTS.contains(&k.as_str()) {
                self.error(
                    line,
                    format!(
                        "{ctx}.geo.continent.{k}: not a continent code; use one of {}",
                        CONTINENTS.join(" ")
                    ),
                );
                continue;
            }
            let list = self.list(l, v, &format!("geo.continent.{k}"));
            let i = push(&mut rules, format!("continent:{k}"), list);
            rules.continent.insert(two(k), i);
        }
        for (k, v) in country {
            if !is_cc(k) {
                self.error(
                    line,
                    format!("{ctx}.geo.country.{k}: not an ISO 3166-1 alpha-2 code like DE"),
                );
                continue;
            }
            let list = self.list(l, v, &format!("geo.country.{k}"));
            let i = push(&mut rules, format!("country:{k}"), list);
            rules.country.insert(two(k), i);
        }
        for (k, v) in subdivision {
            if !(k.len() >= 4 && is_cc(&k[..2]) && k.as_bytes()[2] == b'-') {
                self.error(
                    line,
                    format!("{ctx}.geo.subdivision.{k}: not an ISO 3166-2 code like US-CA"),
                );
                continue;
            }
            let list = self.list(l, v, &format!("geo.subdivision.{k}"));
            let i = push(&mut rules, format!("subdivision:{k}"), list);
            rules.subdivision.insert(k.clone(), i);
        }
        for (k, v) in cidr {
            let net: IpNet = match k.parse() {
                Ok(n) => n,
                Err(e) => {
                    self.error(line, format!("{ctx}.geo.cidr.\"{k}\": {e}"));
                    continue;
                }
            };
            let list = self.list(l, v, &format!("geo.cidr.\"{k}\""));
            let i = push(&mut rules, format!("cidr:{k}"), list);
            if let Err(e) = rules.cidr.insert(net, i) {
                self.error(line, format!("{ctx}.geo.cidr.\"{k}\": {e}"));
            }
        }
        rules
    }

    fn when_all_down(&mut self, l: &Lists<'_>, raw: Option<&str>) -> AllDown {
        let (ctx, line) = (l.ctx, l.line);
        match raw {
            None | Some("answer-all") => AllDown::AnswerAll,
            Some("nodata") => AllDown::NoData,
            Some("servfail") => AllDown::ServFail,
            Some(s) => match s.strip_prefix("region:") {
                Some(r) => match l.ep_of_region.get(r) {
                    Some(&i) => AllDown::Endpoint(i),
                    None => {
                        self.error(line, format!("{ctx}.when_all_down = {s:?}: region {r} has no endpoint for this name"));
                        AllDown::AnswerAll
                    }
                },
                None => {
                    self.error(line, format!("{ctx}.when_all_down = {s:?}; use answer-all, nodata, servfail or region:NAME"));
                    AllDown::AnswerAll
                }
            },
        }
    }

    /// The fence's fallback; adds built-in jurisdictions the fence names to `zone`.
    fn fence(
        &mut self,
        l: &Lists<'_>,
        fence: &[String],
        fallback: Option<&str>,
        endpoints: &[Endpoint],
        zone: &mut ZonePolicy,
    ) -> FenceFallback {
        let (ctx, line) = (l.ctx, l.line);
        let fallback = match (fallback, fence.is_empty()) {
            (Some("servfail"), _) => FenceFallback::ServFail,
            (Some("nodata"), _) => FenceFallback::NoData,
            (Some(s), _) => {
                self.error(
                    line,
                    format!("{ctx}.fence_fallback = {s:?}; use servfail or nodata"),
                );
                FenceFallback::ServFail
            }
            (None, false) => {
                self.error(line, format!("{ctx}: a fence needs fence_fallback = \"servfail\" or \"nodata\": what fenced clients get when no region inside the fence can answer"));
                FenceFallback::ServFail
            }
            (None, true) => FenceFallback::ServFail,
        };
        for j in fence {
            if !zone.jurisdictions.contains_key(j) {
                match jurisdiction::builtin(j) {
                    Some(list) => {
                        zone.jurisdictions.insert(j.clone(), list);
                    }
                    None => {
                        self.error(line, format!("{ctx}.fence: unknown jurisdiction {j:?}; built in: EU, EEA, CN; or define it under [jurisdictions]"));
                        continue;
                    }
                }
            }
            let inside = endpoints.iter().any(|e| {
                zone.regions[e.region as usize].jurisdiction.as_deref() == Some(j.as_str())
            });
            if !inside {
                let w = self.err(line, format!("{ctx}: no endpoint is in a region with jurisdiction {j}; clients in {j} always get the fence fallback"));
                self.warnings.push(w);
            }
        }
        fallback
    }
}

/// What reading a name's region lists needs: the name (for messages), its line,
/// and its endpoints by region.
struct Lists<'l> {
    ctx: &'l str,
    line: usize,
    ep_of_region: &'l EndpointsOf<'l>,
}

/// Gives every endpoint its degraded form: the same answers at the lower TTL
/// `low`, served while any of the name's endpoints is down.
fn degrade(endpoints: &mut [Endpoint], low: u32) {
    for e in endpoints.iter_mut() {
        let mut d = e.clone();
        d.degraded = None;
        let re = |s: &Option<RRset>| s.as_ref().map(|s| s.with_ttl(low));
        d.a = re(&e.a);
        d.aaaa = re(&e.aaaa);
        d.cname = re(&e.cname);
        for x in d.a_each.iter_mut().chain(d.aaaa_each.iter_mut()) {
            x.set = x.set.with_ttl(low);
        }
        e.degraded = Some(Box::new(d));
    }
}

fn compile_endpoint(
    e: &EndpointRaw,
    region: RegionIdx,
    ttl: u32,
    origin: &Name,
    check: Option<(u32, &CheckSpec)>,
    label: String,
) -> Result<Endpoint, Invalid> {
    endpoint(e, region, ttl, origin, check, label).map_err(Invalid)
}

/// `addrs` without repeats, in their order; an error when more are left than
/// one RRset holds ([`crate::zone::MAX_RECORDS`]), which would otherwise be
/// cut short.
fn distinct_addresses(key: &str, addrs: Vec<Box<[u8]>>) -> Result<Vec<Box<[u8]>>, String> {
    let mut seen = rustc_hash::FxHashSet::default();
    let out: Vec<Box<[u8]>> = addrs
        .into_iter()
        .filter(|rd| seen.insert(rd.clone()))
        .collect();
    if out.len() > crate::zone::MAX_RECORDS {
        return Err(format!(
            "{key}: {} addresses; an answer's set holds at most {}",
            out.len(),
            crate::zone::MAX_RECORDS
        ));
    }
    Ok(out)
}

fn endpoint(
    e: &EndpointRaw,
    region: RegionIdx,
    ttl: u32,
    origin: &Name,
    check: Option<(u32, &CheckSpec)>,
    label: String,
) -> Result<Endpoint, String> {
    let mut a = Vec::new();
    for s in e.a.iter().flatten() {
        let ip: Ipv4Addr = s
            .parse()
            .map_err(|_| format!("a: {s:?} is not an IPv4 address like 192.0.2.10"))?;
        a.push(ip.octets().to_vec().into_boxed_slice());
    }
    let mut aaaa = Vec::new();
    for s in e.aaaa.iter().flatten() {
        let ip: Ipv6Addr = s
            .parse()
            .map_err(|_| format!("aaaa: {s:?} is not an IPv6 address like 2001:db8::10"))?;
        aaaa.push(ip.octets().to_vec().into_boxed_slice());
    }
    let (a, aaaa) = (
        distinct_addresses("a", a)?,
        distinct_addresses("aaaa", aaaa)?,
    );
    let cname = match &e.cname {
        Some(t) => {
            if !a.is_empty() || !aaaa.is_empty() {
                return Err("give either cname or a/aaaa, not both (a CNAME cannot have other data beside it)".to_string());
            }
            let n = Name::parse(t, Some(origin)).map_err(|e| format!("cname: {e}"))?;
            Some(RRset::new(
                rtype::nz::CNAME,
                class::IN,
                ttl,
                vec![n.wire().to_vec().into_boxed_slice()],
            ))
        }
        None => None,
    };
    if a.is_empty() && aaaa.is_empty() && cname.is_none() {
        return Err("no answer: give a = [...], aaaa = [...] or cname = \"...\"".to_string());
    }
    // Probe targets: the explicit `probe` address, else each served address, on
    // the check's port.
    let mut probes: Vec<ProbeRef> = Vec::new();
    let mut probe_of_addr: Vec<Option<usize>> = Vec::new();
    match (check, &e.probe) {
        (None, Some(_)) => {
            return Err("probe is given without a check; add check = \"NAME\"".to_string())
        }
        (None, None) => {}
        (Some((ci, spec)), Some(p)) => {
            let addr = match p.parse::<std::net::SocketAddr>() {
                Ok(a) => a,
                Err(_) => match p.parse::<std::net::IpAddr>() {
                    Ok(ip) => std::net::SocketAddr::new(ip, spec.kind.port()),
                    Err(_) => {
                        return Err(format!(
                            "probe {p:?} is not ADDR or ADDR:PORT (like 10.0.0.5:8080)"
                        ))
                    }
                },
            };
            probes.push(ProbeRef {
                check: ci,
                addr,
                slot: NO_HEALTH,
            });
            probe_of_addr = vec![Some(0); a.len() + aaaa.len()];
        }
        (Some((ci, spec)), None) => {
            if cname.is_some() {
                return Err(
                    "a CNAME endpoint has no address to probe; give probe = \"ADDR:PORT\""
                        .to_string(),
                );
            }
            for rd in a.iter().chain(aaaa.iter()) {
                let ip = match rd.len() {
                    4 => std::net::IpAddr::from(<[u8; 4]>::try_from(&rd[..]).unwrap_or_default()),
                    _ => std::net::IpAddr::from(<[u8; 16]>::try_from(&rd[..]).unwrap_or_default()),
                };
                probe_of_addr.push(Some(probes.len()));
                probes.push(ProbeRef {
                    check: ci,
                    addr: std::net::SocketAddr::new(ip, spec.kind.port()),
                    slot: NO_HEALTH,
                });
            }
        }
    }
    let total = (a.len() + aaaa.len()) as u32;
    let min_healthy = e.min_healthy.unwrap_or(1);
    if min_healthy == 0 || (total > 0 && min_healthy > total && e.probe.is_none()) {
        return Err(format!(
            "min_healthy = {min_healthy}: use 1 to the number of addresses ({total})"
        ));
    }
    let one = |t: NonZeroU16, rd: &[u8]| {
        RRset::new(t, class::IN, ttl, vec![rd.to_vec().into_boxed_slice()])
    };
    // Health slots are assigned by the snapshot; until then each address carries
    // the index of its probe, or NO_HEALTH.
    let slot = |i: usize| {
        probe_of_addr
            .get(i)
            .copied()
            .flatten()
            .map(|p| p as u32)
            .unwrap_or(NO_HEALTH)
    };
    let a_each: Vec<AddrAnswer> = a
        .iter()
        .enumerate()
        .map(|(i, rd)| AddrAnswer {
            set: one(rtype::nz::A, rd),
            health: slot(i),
        })
        .collect();
    let aaaa_each: Vec<AddrAnswer> = aaaa
        .iter()
        .enumerate()
        .map(|(i, rd)| AddrAnswer {
            set: one(rtype::nz::AAAA, rd),
            health: slot(a.len() + i),
        })
        .collect();
    let set = |t: NonZeroU16, v: Vec<Box<[u8]>>| {
        (!v.is_empty()).then(|| RRset::new(t, class::IN, ttl, v))
    };
    Ok(Endpoint {
        region,
        weight: e.weight.unwrap_or(1),
        a: set(rtype::nz::A, a),
        aaaa: set(rtype::nz::AAAA, aaaa),
        cname,
        a_each,
        aaaa_each,
        degraded: None,
        health_id: NO_HEALTH,
        min_healthy,
        probes,
        label,
    })
}

/// Reads a measured-latency file.
pub(crate) fn load_latency_table(
    path: &Path,
    regions: &BTreeMap<&str, RegionIdx>,
    region_count: usize,
) -> Result<LatencyTable, Vec<ConfigError>> {
    let text = crate::zone::read_text_file(path).map_err(|e| {
        vec![ConfigError::new(
            path,
            0,
            format!("cannot read latency table: {e}"),
        )]
    })?;
    let raw: LatencyFileRaw = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
        vec![ConfigError::new(path, line, e.message().trim().to_string())]
    })?;
    let mut t = LatencyTable::default();
    let mut errors = Vec::new();
    let lines = LineIndex::new(&text);
    for entry in &raw.entry {
        let line = lines.line(entry.span().start);
        let e = entry.get_ref();
        let err = |m: String| ConfigError::new(path, line, m);
        let keys = [e.cidr.is_some(), e.asn.is_some(), e.country.is_some()];
        if keys.iter().filter(|k| **k).count() != 1 {
            errors.push(err(
                "an entry needs exactly one of cidr, asn or country".to_string()
            ));
            continue;
        }
        let mut row = vec![None; region_count];
        for (r, ms) in &e.rtt {
            match regions.get(r.as_str()) {
                Some(&i) if ms.is_finite() && *ms >= 0.0 => row[i as usize] = Some(*ms as f32),
                Some(_) => errors.push(err(format!(
                    "rtt.{r} = {ms}: use a round trip in ms, 0 or more"
                ))),
                None => errors.push(err(format!(
                    "rtt.{r}: no such region (known: {})",
                    region_names(regions)
                ))),
            }
        }
        let idx = t.rows.len() as u32;
        let label;
        if let Some(c) = &e.cidr {
            match c.parse::<IpNet>() {
                Ok(net) => {
                    if let Err(x) = t.cidr.insert(net, idx) {
                        errors.push(err(format!("cidr {c}: {x}")));
                    }
                }
                Err(x) => errors.push(err(format!("cidr {c:?}: {x}"))),
            }
            label = format!("cidr {c}");
        } else if let Some(a) = e.asn {
            t.asn.insert(a, idx);
            label = format!("AS{a}");
        } else {
            let c = e.country.clone().unwrap_or_default();
            if !is_cc(&c) {
                errors.push(err(format!(
                    "country {c:?} is not an ISO 3166-1 alpha-2 code like BR"
                )));
            } else {
                t.country.insert(two(&c), idx);
            }
            label = format!("country {c}");
        }
        t.rows.push(row);
        t.labels.push(format!("{}:{line} {label}", path.display()));
    }
    if errors.is_empty() {
        Ok(t)
    } else {
        Err(errors)
    }
}

fn is_cc(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
}

fn two(s: &str) -> [u8; 2] {
    let b = s.as_bytes();
    [b[0], b[1]]
}

fn region_names(m: &BTreeMap<&str, RegionIdx>) -> String {
    if m.is_empty() {
        return "none declared".to_string();
    }
    m.keys().copied().collect::<Vec<_>>().join(", ")
}

fn keys<V>(m: &BTreeMap<&str, V>) -> String {
    m.keys().copied().collect::<Vec<_>>().join(", ")
}
