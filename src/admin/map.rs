//! `GET /v1/map?name=FQDN`: for one steered name, the region a client in each
//! country gets now, for the dashboard's world map.
//!
//! Each country is asked for as a client standing at its representative point:
//! the country code, its continent and its centroid ([`crate::geo::country_centroid`],
//! the table flat databases use), and [`SAMPLES`] client networks of that
//! country, so that a traffic dial (which keeps a stable share of networks)
//! shows as a share. Every decision is [`policy::decide`] itself, with the live
//! health (probes, overrides, dials, ramps), as a query or `/explain` decides:
//! no steering rule is repeated here. What a representative client cannot
//! show: rules on networks or ASNs, and City-level locations inside a country.
//!
//! Bounded: one name per request, [`SAMPLES`] decisions per country, about 250
//! countries; the reply is a few KiB.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use super::{param, AdminState, Reply, Request};
use crate::answer::snapshot::Snapshot;
use crate::geo::Location;
use crate::policy::{self, Client, NamePolicy, NoTrace, Outcome, ZonePolicy};
use crate::zone::{rtype, Name};

/// Client networks asked for per country: a dial's share shows to 1/16.
pub(crate) const SAMPLES: u8 = 16;

/// The reply to `GET /v1/map`.
pub(super) fn request(state: &AdminState, req: &Request) -> Reply {
    let name = match param(req, "name") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let qname = match Name::parse(name, Some(&Name::root())) {
        Ok(n) => n,
        Err(e) => return Reply::text(400, format!("name: {e}")),
    };
    let snap = state.snap.load();
    match map(&snap, &qname) {
        Some(v) => Reply::json(v),
        None => Reply::text(404, format!("{qname} is not a steered name we serve")),
    }
}

/// The map of `qname`, or `None` when it is not a steered name.
pub(crate) fn map(snap: &Snapshot, qname: &Name) -> Option<Value> {
    let (zone, p) = snap
        .steering
        .iter()
        .find_map(|z| Some((&z.policy, z.names.iter().find(|n| &n.name == qname)?)))?;
    let mut countries = serde_json::Map::new();
    for (i, code) in crate::geo::country_codes().enumerate() {
        let shares = country(snap, zone, p, code, i);
        let Ok(code) = std::str::from_utf8(&code) else {
            continue;
        };
        let Some((top, _)) = shares
            .iter()
            .max_by_key(|(r, n)| (**n, std::cmp::Reverse(*r)))
        else {
            continue;
        };
        let mut entry = json!({ "region": top });
        if shares.len() > 1 {
            let part = |n: u8| f64::from(n) / f64::from(SAMPLES);
            let split: BTreeMap<&str, f64> = shares
                .iter()
                .filter_map(|(r, n)| Some(((*r)?, part(*n))))
                .collect();
            entry["shares"] = json!(split);
            if let Some(n) = shares.get(&None) {
                entry["no_answer"] = json!(part(*n));
            }
        }
        countries.insert(code.to_string(), entry);
    }
    // The name's regions, in the zone's order: the page colours them so.
    let regions: Vec<&str> = zone
        .regions
        .iter()
        .enumerate()
        .filter(|(i, _)| p.endpoints.iter().any(|e| usize::from(e.region) == *i))
        .map(|(_, r)| r.name.as_str())
        .collect();
    Some(json!({
        "name": qname.to_string(),
        "regions": regions,
        "samples": SAMPLES,
        "countries": countries,
    }))
}

/// How many of a country's sample networks get each region (best first of the
/// answer); `None` for NODATA or SERVFAIL.
fn country<'z>(
    snap: &Snapshot,
    zone: &'z ZonePolicy,
    p: &NamePolicy,
    code: [u8; 2],
    index: usize,
) -> BTreeMap<Option<&'z str>, u8> {
    let location = Location {
        continent: crate::geo::country_continent(code),
        country: Some(code),
        coords: crate::geo::country_centroid(code),
        ..Default::default()
    };
    let mut shares = BTreeMap::new();
    for s in 0..SAMPLES {
        // 10.C.S.1: one /24 per sample, distinct per country, hashed by dials
        // like any client network; private, so no measured figure names it.
        let client = Client {
            addr: IpAddr::V4(Ipv4Addr::new(10, (index % 256) as u8, s, 1)),
            location,
            source_prefix: 32,
        };
        *shares.entry(region_of(snap, zone, p, &client)).or_insert(0) += 1;
    }
    shares
}

/// The region of the best endpoint the decision gives (A, else AAAA).
fn region_of<'z>(
    snap: &Snapshot,
    zone: &'z ZonePolicy,
    p: &NamePolicy,
    client: &Client,
) -> Option<&'z str> {
    for qtype in [rtype::A, rtype::AAAA] {
        let d = policy::decide(zone, p, client, &snap.health, qtype, 0, &mut NoTrace);
        if let Outcome::Endpoints(list) = d.outcome {
            let e = p.endpoints.get(usize::from(*list.first()?))?;
            return zone
                .regions
                .get(usize::from(e.region))
                .map(|r| r.name.as_str());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Override;

    /// The repository's zones, located by its default database.
    fn snapshot() -> Snapshot {
        let o = crate::app::CommandLine {
            zones: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/zones").into()),
            ..Default::default()
        };
        let mut cfg = crate::app::server_config(&o).unwrap();
        cfg.geo.database = Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/geo/geo-whois-asn-country.mmdb"
            )
            .into(),
        );
        let mut snap = crate::app::load_snapshot_without_fast(&cfg, 1).unwrap().0;
        // The health view `serve` puts in, so overrides and dials count.
        let table =
            std::sync::Arc::new(crate::health::HealthTable::new(snap.health_targets.clone()));
        snap.health = crate::answer::health_view::HealthBridge::new(
            table,
            &snap.health_targets,
            snap.endpoint_names.clone(),
            Default::default(),
            Default::default(),
        );
        snap
    }

    fn name(s: &str) -> Name {
        Name::parse(s, Some(&Name::root())).unwrap()
    }

    /// A client the database places in a country gets the region the map
    /// gives that country (no dials, so the address does not count): the
    /// representative client is where the database would put it.
    #[test]
    fn the_map_agrees_with_clients_the_database_locates() {
        let snap = snapshot();
        let mut compared = 0;
        for qname in ["www.geo.example.com.", "shop.geo.example.com."] {
            let qname = name(qname);
            let m = map(&snap, &qname).unwrap();
            let (zone, p) = snap
                .steering
                .iter()
                .find_map(|z| Some((&z.policy, z.names.iter().find(|n| n.name == qname)?)))
                .unwrap();
            for a in 1..=223u8 {
                for b in [1u8, 77, 160, 230] {
                    let ip = IpAddr::V4(Ipv4Addr::new(a, b, 3, 4));
                    let client = crate::answer::handler::client_of(&snap, None, ip);
                    let Some(cc) = client.location.country else {
                        continue;
                    };
                    let cc = std::str::from_utf8(&cc).unwrap();
                    let got = region_of(&snap, zone, p, &client).unwrap();
                    assert_eq!(m["countries"][cc]["region"], json!(got), "{ip} in {cc}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 500, "{compared} clients located");
    }

    /// A drained region leaves the map; a dial splits countries into shares
    /// that add up, the larger one named.
    #[test]
    fn drains_and_dials_show() {
        let snap = snapshot();
        let www = name("www.geo.example.com.");
        let before = map(&snap, &www).unwrap();
        assert_eq!(before["countries"]["FR"], json!({ "region": "eu-west" }));
        let table = snap.health.table();
        table.set_named_override_by("region:eu-west", Override::Drain, "test");
        snap.health.refresh();
        let drained = map(&snap, &www).unwrap().to_string();
        assert!(!drained.contains("eu-west\"}"), "{drained}");
        // accounts keeps EU clients in the EU fence: with eu-west drained they
        // get SERVFAIL (fence_fallback), no region.
        let fenced = map(&snap, &name("accounts.geo.example.com.")).unwrap();
        assert_eq!(fenced["countries"]["FR"], json!({ "region": null }));
        assert_eq!(fenced["countries"]["US"], json!({ "region": "us-east" }));
        table.set_named_override_by("region:eu-west", Override::None, "test");
        if let Ok(mut d) = snap.health.operator_dials().lock() {
            d.insert("region:eu-west".to_string(), 50);
        }
        snap.health.refresh();
        let dialled = map(&snap, &www).unwrap();
        let fr = &dialled["countries"]["FR"];
        let shares = fr["shares"].as_object().unwrap();
        let sum: f64 = shares.values().filter_map(Value::as_f64).sum();
        assert!((sum - 1.0).abs() < 1e-9 && shares.len() == 2, "{fr}");
        let top = shares
            .iter()
            .max_by(|x, y| x.1.as_f64().partial_cmp(&y.1.as_f64()).unwrap())
            .unwrap();
        assert_eq!(fr["region"], json!(top.0), "{fr}");
        assert!(map(&snap, &name("ns1.geo.example.com.")).is_none());
    }
}
