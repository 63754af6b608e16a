//! The steering keys of a zone policy file: regions, jurisdictions, steered names,
//! and the measured-latency table. Parsed raw, compiled to `policy` plans with every
//! region name turned into an index and every error reported with its line.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
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
pub struct RegionRaw {
    /// [latitude, longitude] in degrees.
    pub location: Option<[f64; 2]>,
    /// Legal area for residency fences, like "EU".
    pub jurisdiction: Option<String>,
}

/// `[names.NAME]`: one steered name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameRaw {
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
pub struct EndpointRaw {
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
pub struct GeoRulesRaw {
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
pub struct SteeringRaw<'a> {
    pub checks: Option<&'a IndexMap<String, toml::Spanned<CheckRaw>>>,
    pub regions: Option<&'a IndexMap<String, toml::Spanned<RegionRaw>>>,
    pub jurisdictions: Option<&'a IndexMap<String, Vec<String>>>,
    pub names: Option<&'a IndexMap<String, toml::Spanned<NameRaw>>>,
    pub latency_table: Option<&'a toml::Spanned<String>>,
}

/// Default TTL of steered answers.
pub const DEFAULT_STEERED_TTL: u32 = 30;
/// Default cap on addresses per steered answer.
pub const DEFAULT_MAX_ANSWERS: u16 = 8;

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
pub fn compile_steering(
    text: &str,
    path: &Path,
    origin: &Name,
    raw: SteeringRaw<'_>,
) -> Result<Steering, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let err = |line: usize, m: String| ConfigError::new(path, line, m);
    let lines = LineIndex::new(text);
    let mut zone = ZonePolicy::default();

    // Checks, by name.
    let mut checks: Vec<CheckSpec> = Vec::new();
    let mut check_idx: BTreeMap<&str, u32> = BTreeMap::new();
    if let Some(cs) = raw.checks {
        for (name, c) in cs {
            let line = lines.line(c.span().start);
            match compile_check(name, c.get_ref()) {
                Ok(spec) => {
                    check_idx.insert(name.as_str(), checks.len() as u32);
                    checks.push(spec);
                }
                Err(ms) => errors.extend(ms.into_iter().map(|m| err(line, m.0))),
            }
        }
    }

    // Regions, in the order written.
    let mut region_idx: BTreeMap<&str, RegionIdx> = BTreeMap::new();
    if let Some(regions) = raw.regions {
        for (name, r) in regions {
            let line = lines.line(r.span().start);
            let r = r.get_ref();
            if let Some([lat, lon]) = r.location {
                if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                    errors.push(err(
                        line,
                        format!("region {name}: location [{lat}, {lon}] is not [latitude -90..90, longitude -180..180]"),
                    ));
                }
            }
            region_idx.insert(name.as_str(), zone.regions.len() as RegionIdx);
            zone.regions.push(Region {
                name: name.clone(),
                location: r.location.map(|[a, b]| (a, b)),
                jurisdiction: r.jurisdiction.clone(),
            });
        }
    }

    // Jurisdictions: the file's own, then built-ins that regions or fences name.
    if let Some(js) = raw.jurisdictions {
        for (name, countries) in js {
            let mut list = Vec::new();
            for c in countries {
                let b = c.as_bytes();
                if b.len() == 2 && b.iter().all(u8::is_ascii_uppercase) {
                    list.push([b[0], b[1]]);
                } else {
                    errors.push(err(
                        super::values::find_key_line(text, name),
                        format!("jurisdiction {name}: {c:?} is not an ISO 3166-1 alpha-2 country code like \"DE\""),
                    ));
                }
            }
            zone.jurisdictions.insert(name.clone(), list);
        }
    }

    let table = match raw.latency_table {
        Some(t) => {
            let base = path.parent().unwrap_or(Path::new("."));
            let file = base.join(t.get_ref());
            match load_latency_table(&file, &region_idx, zone.regions.len()) {
                Ok(tbl) => Some(Arc::new(tbl)),
                Err(mut e) => {
                    if !file.is_file() {
                        e = vec![err(
                            lines.line(t.span().start),
                            format!(
                                "latency_table {:?} does not exist (relative to this file)",
                                t.get_ref()
                            ),
                        )];
                    }
                    errors.extend(e);
                    None
                }
            }
        }
        None => None,
    };

    let mut names = Vec::new();
    if let Some(raw_names) = raw.names {
        for (key, spanned) in raw_names {
            let line = lines.line(spanned.span().start);
            let n = spanned.get_ref();
            let before = errors.len();
            let owner = match Name::parse(key, Some(origin)) {
                Ok(o) if o.is_subdomain_of(origin) => o,
                Ok(o) => {
                    errors.push(err(
                        line,
                        format!("names.{key}: {o} is outside the zone {origin}"),
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(err(line, format!("names.{key}: {e}")));
                    continue;
                }
            };
            let ctx = format!("names.{key}");
            let ttl = match &n.ttl {
                Some(t) => t.seconds().unwrap_or_else(|m| {
                    errors.push(err(line, format!("{ctx}.ttl: {m}")));
                    0
                }),
                None => DEFAULT_STEERED_TTL,
            };

            // Endpoints, one per region.
            let mut endpoints: Vec<Endpoint> = Vec::new();
            let mut ep_of_region: BTreeMap<&str, EndpointIdx> = BTreeMap::new();
            for (region, e) in &n.endpoints {
                let eline = lines.line(e.span().start);
                let e = e.get_ref();
                let Some(&ri) = region_idx.get(region.as_str()) else {
                    errors.push(err(
                        eline,
                        format!("{ctx}.endpoints.{region}: no such region; declare it under [regions] (known: {})", known(&region_idx)),
                    ));
                    continue;
                };
                let check = match e.check.as_deref() {
                    None => None,
                    Some(c) => match check_idx.get(c) {
                        Some(&i) => Some((i, &checks[i as usize])),
                        None => {
                            errors.push(err(
                                eline,
                                format!("{ctx}.endpoints.{region}: check {c:?} is not defined; add [checks.{c}] (known: {})",
                                    if check_idx.is_empty() { "none".to_string() } else { check_idx.keys().copied().collect::<Vec<_>>().join(", ") }),
                            ));
                            continue;
                        }
                    },
                };
                let label = format!("{owner}/{region}");
                match compile_endpoint(e, ri, ttl, origin, check, label) {
                    Ok(ep) => {
                        ep_of_region.insert(region.as_str(), endpoints.len() as EndpointIdx);
                        endpoints.push(ep);
                    }
                    Err(m) => errors.push(err(eline, format!("{ctx}.endpoints.{region}: {m}"))),
                }
            }
            if n.endpoints.is_empty() {
                errors.push(err(line, format!("{ctx}: no endpoints; give at least one region's answer (endpoints.REGION = {{ a = [...] }})")));
            }
            let cname_count = endpoints.iter().filter(|e| e.cname.is_some()).count();

            let regions_list = |list: &[String],
                                what: &str,
                                errors: &mut Vec<ConfigError>|
             -> Vec<EndpointIdx> {
                let mut out = Vec::new();
                for r in list {
                    match ep_of_region.get(r.as_str()) {
                        Some(&i) if !out.contains(&i) => out.push(i),
                        Some(_) => errors.push(err(line, format!("{ctx}.{what}: region {r} is listed twice"))),
                        None => errors.push(err(
                            line,
                            format!("{ctx}.{what}: region {r} has no endpoint for this name (endpoints: {})", known_eps(&ep_of_region)),
                        )),
                    }
                }
                out
            };

            let strategy = match n.strategy.as_str() {
                "geo" => {
                    let Some(g) = &n.geo else {
                        errors.push(err(line, format!("{ctx}: strategy \"geo\" needs a [{ctx}.geo] table with at least `default = [REGION, ...]`")));
                        continue;
                    };
                    let mut rules = GeoRules::default();
                    let mut push = |label: String, list: Vec<EndpointIdx>| {
                        rules.lists.push(list);
                        rules.labels.push(label);
                        (rules.lists.len() - 1) as u16
                    };
                    match &g.default {
                        Some(d) => {
                            let l = regions_list(d, "geo.default", &mut errors);
                            rules.default = push("default".into(), l);
                        }
                        None => errors.push(err(line, format!("{ctx}.geo: a `default = [REGION, ...]` rule is required for clients no other rule matches"))),
                    }
                    for (k, v) in &g.continent {
                        const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];
                        if !CONTINENTS.contains(&k.as_str()) {
                            errors.push(err(
                                line,
                                format!(
                                    "{ctx}.geo.continent.{k}: not a continent code; use one of {}",
                                    CONTINENTS.join(" ")
                                ),
                            ));
                            continue;
                        }
                        let l = regions_list(v, &format!("geo.continent.{k}"), &mut errors);
                        let i = push(format!("continent:{k}"), l);
                        rules.continent.insert(two(k), i);
                    }
                    for (k, v) in &g.country {
                        if !is_cc(k) {
                            errors.push(err(
                                line,
                                format!(
                                    "{ctx}.geo.country.{k}: not an ISO 3166-1 alpha-2 code like DE"
                                ),
                            ));
                            continue;
                        }
                        let l = regions_list(v, &format!("geo.country.{k}"), &mut errors);
                        let i = push(format!("country:{k}"), l);
                        rules.country.insert(two(k), i);
                    }
                    for (k, v) in &g.subdivision {
                        let ok = k.len() >= 4 && is_cc(&k[..2]) && k.as_bytes()[2] == b'-';
                        if !ok {
                            errors.push(err(
                                line,
                                format!(
                                    "{ctx}.geo.subdivision.{k}: not an ISO 3166-2 code like US-CA"
                                ),
                            ));
                            continue;
                        }
                        let l = regions_list(v, &format!("geo.subdivision.{k}"), &mut errors);
                        let i = push(format!("subdivision:{k}"), l);
                        rules.subdivision.insert(k.clone(), i);
                    }
                    for (k, v) in &g.cidr {
                        let net: IpNet = match k.parse() {
                            Ok(n) => n,
                            Err(e) => {
                                errors.push(err(line, format!("{ctx}.geo.cidr.\"{k}\": {e}")));
                                continue;
                            }
                        };
                        let l = regions_list(v, &format!("geo.cidr.\"{k}\""), &mut errors);
                        let i = push(format!("cidr:{k}"), l);
                        if let Err(e) = rules.cidr.insert(net, i) {
                            errors.push(err(line, format!("{ctx}.geo.cidr.\"{k}\": {e}")));
                        }
                    }
                    Strategy::Geo(Box::new(rules))
                }
                "latency" => Strategy::Latency {
                    overhead_ms: n.overhead_ms.unwrap_or(DEFAULT_OVERHEAD_MS),
                    table: table.clone(),
                },
                "failover" => {
                    let order = match &n.order {
                        Some(o) => regions_list(o, "order", &mut errors),
                        None => (0..endpoints.len() as EndpointIdx).collect(),
                    };
                    Strategy::Failover(order)
                }
                "weighted" => Strategy::Weighted,
                "all" => {
                    if cname_count > 0 {
                        errors.push(err(line, format!("{ctx}: strategy \"all\" answers with every endpoint's addresses together; CNAME endpoints cannot be combined (give a and aaaa)")));
                    }
                    Strategy::All
                }
                other => {
                    errors.push(err(line, format!("{ctx}.strategy = {other:?}; use one of geo, latency, failover, weighted, all")));
                    continue;
                }
            };
            if n.geo.is_some() && !matches!(strategy, Strategy::Geo(_)) {
                errors.push(err(
                    line,
                    format!("{ctx}: a geo table is only read with strategy = \"geo\""),
                ));
            }
            if n.order.is_some() && !matches!(strategy, Strategy::Failover(_)) {
                errors.push(err(
                    line,
                    format!("{ctx}: `order` is only read with strategy = \"failover\""),
                ));
            }
            if n.overhead_ms.is_some() && !matches!(strategy, Strategy::Latency { .. }) {
                errors.push(err(
                    line,
                    format!("{ctx}: `overhead_ms` is only read with strategy = \"latency\""),
                ));
            }
            if matches!(strategy, Strategy::Latency { .. }) && table.is_none() {
                for e in &endpoints {
                    let r = &zone.regions[e.region as usize];
                    if r.location.is_none() {
                        errors.push(err(line, format!("{ctx}: strategy \"latency\" needs a location for region {} (regions.{}.location = [lat, lon])", r.name, r.name)));
                    }
                }
            }
            if matches!(strategy, Strategy::Weighted) && endpoints.iter().all(|e| e.weight == 0) {
                warnings.push(err(
                    line,
                    format!(
                        "{ctx}: every weight is 0; the name answers only through when_all_down"
                    ),
                ));
            }

            let when_all_down = match n.when_all_down.as_deref() {
                None | Some("answer-all") => AllDown::AnswerAll,
                Some("nodata") => AllDown::NoData,
                Some("servfail") => AllDown::ServFail,
                Some(s) => match s.strip_prefix("region:") {
                    Some(r) => match ep_of_region.get(r) {
                        Some(&i) => AllDown::Endpoint(i),
                        None => {
                            errors.push(err(line, format!("{ctx}.when_all_down = {s:?}: region {r} has no endpoint for this name")));
                            AllDown::AnswerAll
                        }
                    },
                    None => {
                        errors.push(err(line, format!("{ctx}.when_all_down = {s:?}; use answer-all, nodata, servfail or region:NAME")));
                        AllDown::AnswerAll
                    }
                },
            };

            let fence = n.fence.clone().unwrap_or_default();
            let fence_fallback = match (n.fence_fallback.as_deref(), fence.is_empty()) {
                (Some("servfail"), _) => FenceFallback::ServFail,
                (Some("nodata"), _) => FenceFallback::NoData,
                (Some(s), _) => {
                    errors.push(err(
                        line,
                        format!("{ctx}.fence_fallback = {s:?}; use servfail or nodata"),
                    ));
                    FenceFallback::ServFail
                }
                (None, false) => {
                    errors.push(err(line, format!("{ctx}: a fence needs fence_fallback = \"servfail\" or \"nodata\": what fenced clients get when no region inside the fence can answer")));
                    FenceFallback::ServFail
                }
                (None, true) => FenceFallback::ServFail,
            };
            for j in &fence {
                if !zone.jurisdictions.contains_key(j) {
                    match jurisdiction::builtin(j) {
                        Some(list) => {
                            zone.jurisdictions.insert(j.clone(), list);
                        }
                        None => {
                            errors.push(err(line, format!("{ctx}.fence: unknown jurisdiction {j:?}; built in: EU, EEA, CN; or define it under [jurisdictions]")));
                            continue;
                        }
                    }
                }
                let inside = endpoints.iter().any(|e| {
                    zone.regions[e.region as usize].jurisdiction.as_deref() == Some(j.as_str())
                });
                if !inside {
                    warnings.push(err(line, format!("{ctx}: no endpoint is in a region with jurisdiction {j}; clients in {j} always get the fence fallback")));
                }
            }

            if let Some(t) = &n.ttl_when_degraded {
                match t.seconds() {
                    Ok(low) if low <= ttl => {
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
                    Ok(low) => errors.push(err(line, format!("{ctx}.ttl_when_degraded = {low} is above the name's ttl {ttl}; it should be lower"))),
                    Err(m) => errors.push(err(line, format!("{ctx}.ttl_when_degraded: {m}"))),
                }
            }

            let max_answers = n.max_answers.unwrap_or(DEFAULT_MAX_ANSWERS);
            if max_answers == 0 {
                errors.push(err(
                    line,
                    format!("{ctx}.max_answers = 0 would answer nothing; use 1 or more"),
                ));
            }
            if errors.len() > before {
                continue;
            }
            names.push(NamePolicy {
                name: owner,
                ttl,
                strategy,
                endpoints,
                when_all_down,
                fence,
                fence_fallback,
                max_answers,
                source: format!("{}:{line}", path.display()),
                metrics_slot: 0,
                scope_map: None,
            });
        }
    }
    if errors.is_empty() {
        Ok(Steering {
            zone,
            names,
            checks,
            warnings,
        })
    } else {
        Err(errors)
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
        let rd: Box<[u8]> = ip.octets().to_vec().into_boxed_slice();
        if !a.contains(&rd) {
            a.push(rd);
        }
    }
    let mut aaaa = Vec::new();
    for s in e.aaaa.iter().flatten() {
        let ip: Ipv6Addr = s
            .parse()
            .map_err(|_| format!("aaaa: {s:?} is not an IPv6 address like 2001:db8::10"))?;
        let rd: Box<[u8]> = ip.octets().to_vec().into_boxed_slice();
        if !aaaa.contains(&rd) {
            aaaa.push(rd);
        }
    }
    let cname = match &e.cname {
        Some(t) => {
            if !a.is_empty() || !aaaa.is_empty() {
                return Err("give either cname or a/aaaa, not both (a CNAME cannot have other data beside it)".to_string());
            }
            let n = Name::parse(t, Some(origin)).map_err(|e| format!("cname: {e}"))?;
            Some(RRset::new(
                rtype::CNAME,
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
    let one =
        |t: u16, rd: &[u8]| RRset::new(t, class::IN, ttl, vec![rd.to_vec().into_boxed_slice()]);
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
            set: one(rtype::A, rd),
            health: slot(i),
        })
        .collect();
    let aaaa_each: Vec<AddrAnswer> = aaaa
        .iter()
        .enumerate()
        .map(|(i, rd)| AddrAnswer {
            set: one(rtype::AAAA, rd),
            health: slot(a.len() + i),
        })
        .collect();
    let set = |t: u16, v: Vec<Box<[u8]>>| (!v.is_empty()).then(|| RRset::new(t, class::IN, ttl, v));
    Ok(Endpoint {
        region,
        weight: e.weight.unwrap_or(1),
        a: set(rtype::A, a),
        aaaa: set(rtype::AAAA, aaaa),
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
pub fn load_latency_table(
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
                    known(regions)
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

fn known(m: &BTreeMap<&str, RegionIdx>) -> String {
    if m.is_empty() {
        return "none declared".to_string();
    }
    m.keys().copied().collect::<Vec<_>>().join(", ")
}

fn known_eps(m: &BTreeMap<&str, EndpointIdx>) -> String {
    m.keys().copied().collect::<Vec<_>>().join(", ")
}
