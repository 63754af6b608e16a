use std::collections::HashSet;
use std::net::IpAddr;

use super::*;
use crate::geo::cidr::IpNet;
use crate::zone::class;

const US: RegionIdx = 0;
const EUW: RegionIdx = 1;
const AP: RegionIdx = 2;
const EUC: RegionIdx = 3;

fn zone() -> ZonePolicy {
    let mut z = ZonePolicy {
        regions: vec![
            Region {
                name: "us-east".into(),
                location: Some((38.9, -77.4)),
                jurisdiction: None,
            },
            Region {
                name: "eu-west".into(),
                location: Some((53.3, -6.3)),
                jurisdiction: Some("EU".into()),
            },
            Region {
                name: "ap-northeast".into(),
                location: Some((35.7, 139.7)),
                jurisdiction: None,
            },
            Region {
                name: "eu-central".into(),
                location: Some((50.1, 8.7)),
                jurisdiction: Some("EU".into()),
            },
        ],
        ..ZonePolicy::default()
    };
    z.jurisdictions
        .insert("EU".into(), jurisdiction::builtin("EU").unwrap());
    z
}

fn endpoint(region: RegionIdx, last: u8, weight: u32) -> Endpoint {
    let rd: Box<[u8]> = vec![192, 0, 2, last].into_boxed_slice();
    Endpoint {
        region,
        weight,
        a: Some(RRset::new(rtype::nz::A, class::IN, 30, vec![rd])),
        aaaa: None,
        cname: None,
        a_each: Vec::new(),
        aaaa_each: Vec::new(),
        degraded: None,
        health_id: region as u32,
        min_healthy: 1,
        probes: Vec::new(),
        label: String::new(),
    }
}

fn policy(strategy: Strategy, regions: &[RegionIdx]) -> NamePolicy {
    NamePolicy {
        name: Name::parse("www.geo.test.", None).unwrap(),
        ttl: 30,
        strategy,
        endpoints: regions
            .iter()
            .map(|&r| endpoint(r, 10 + r as u8, 1))
            .collect(),
        when_all_down: AllDown::AnswerAll,
        fence: vec![],
        fence_fallback: FenceFallback::ServFail,
        max_answers: 8,
        source: "test".into(),
        metrics_slot: 0,
        scope_map: None,
    }
}

fn client(addr: &str, country: &str, coords: Option<(f64, f64)>, prefix: u8) -> Client {
    let addr: IpAddr = addr.parse().unwrap();
    let cc = country.as_bytes();
    Client {
        addr,
        location: Location {
            country: (cc.len() == 2).then(|| [cc[0], cc[1]]),
            continent: (cc.len() == 2)
                .then(|| crate::geo::country_continent([cc[0], cc[1]]))
                .flatten(),
            coords,
            prefix_len: prefix,
            ..Location::default()
        },
        source_prefix: 24,
    }
}

/// Endpoints down by region.
struct Down(Vec<RegionIdx>);
impl HealthView for Down {
    fn endpoint_up(&self, e: &Endpoint) -> bool {
        !self.0.contains(&e.region)
    }
}

fn regions_of(p: &NamePolicy, d: &Decision) -> Vec<RegionIdx> {
    match &d.outcome {
        Outcome::Endpoints(l) => l.iter().map(|&i| p.endpoints[i as usize].region).collect(),
        _ => vec![],
    }
}

fn run(p: &NamePolicy, c: &Client, h: &impl HealthView) -> Decision {
    decide(&zone(), p, c, h, rtype::A, 0, &mut NoTrace)
}

const DUBLIN: (f64, f64) = (53.35, -6.26);
const TOKYO: (f64, f64) = (35.68, 139.69);
const NEW_YORK: (f64, f64) = (40.7, -74.0);

#[test]
fn latency_picks_the_nearest_region() {
    let p = policy(
        Strategy::Latency {
            overhead_ms: 5.0,
            table: None,
        },
        &[US, EUW, AP],
    );
    let d = run(&p, &client("198.51.100.7", "JP", Some(TOKYO), 16), &AllUp);
    assert_eq!(regions_of(&p, &d), vec![AP]);
    assert_eq!(d.reason, Reason::Latency);
    assert_eq!(d.scope, 16, "scope is the database network");
    let d = run(
        &p,
        &client("198.51.100.7", "US", Some(NEW_YORK), 20),
        &AllUp,
    );
    assert_eq!(regions_of(&p, &d), vec![US]);
    // Nearest down: next nearest.
    let d = run(
        &p,
        &client("198.51.100.7", "US", Some(NEW_YORK), 20),
        &Down(vec![US]),
    );
    assert_eq!(regions_of(&p, &d), vec![EUW]);
}

#[test]
fn latency_estimate_is_fiber_round_trip_plus_overhead() {
    // Dublin to Tokyo is about 9,600 km: about 96 ms there and back at 200 km/ms.
    let rtt = estimate_rtt_ms(DUBLIN, TOKYO, 5.0);
    assert!((95.0..105.0).contains(&(rtt - 5.0)), "{rtt}");
    assert!((estimate_rtt_ms(DUBLIN, DUBLIN, 7.0) - 7.0).abs() < 1e-9);
}

#[test]
fn measured_latency_overrides_the_estimate() {
    let mut t = LatencyTable::default();
    t.cidr
        .insert("198.51.100.0/24".parse::<IpNet>().unwrap(), 0)
        .unwrap();
    // From this network, eu-west measures faster than the nearby us-east.
    t.rows.push(vec![Some(120.0), Some(80.0), None, None]);
    t.labels.push("test cidr 198.51.100.0/24".into());
    let p = policy(
        Strategy::Latency {
            overhead_ms: 5.0,
            table: Some(std::sync::Arc::new(t)),
        },
        &[US, EUW, AP],
    );
    let c = client("198.51.100.7", "US", Some(NEW_YORK), 16);
    let d = run(&p, &c, &AllUp);
    assert_eq!(regions_of(&p, &d), vec![EUW]);
    // The /24 entry inside the /16 database network narrows the scope.
    assert_eq!(d.scope, 24);
    // Outside the table: the estimate, and a scope that avoids the /24.
    let d = run(&p, &client("198.51.7.7", "US", Some(NEW_YORK), 16), &AllUp);
    assert_eq!(regions_of(&p, &d), vec![US]);
    assert!(d.scope > 16 && d.scope <= 24, "scope {}", d.scope);
}

#[test]
fn latency_ties_and_unknown_locations_keep_declaration_order() {
    let p = policy(
        Strategy::Latency {
            overhead_ms: 5.0,
            table: None,
        },
        &[AP, US, EUW],
    );
    let d = run(&p, &client("10.0.0.1", "", None, 0), &AllUp);
    assert_eq!(regions_of(&p, &d), vec![AP]);
    assert_eq!(d.scope, 0);
}

#[test]
fn failover_takes_the_first_healthy_and_does_not_depend_on_the_client() {
    let p = policy(Strategy::Failover(vec![1, 0, 2]), &[US, EUW, AP]);
    let c = client("198.51.100.7", "JP", Some(TOKYO), 16);
    assert_eq!(regions_of(&p, &run(&p, &c, &AllUp)), vec![EUW]);
    assert_eq!(regions_of(&p, &run(&p, &c, &Down(vec![EUW]))), vec![US]);
    assert_eq!(regions_of(&p, &run(&p, &c, &Down(vec![EUW, US]))), vec![AP]);
    assert_eq!(run(&p, &c, &AllUp).scope, 0);
}

#[test]
fn when_all_down_is_explicit() {
    let mut p = policy(Strategy::Failover(vec![0, 1]), &[US, EUW]);
    let c = client("198.51.100.7", "US", Some(NEW_YORK), 16);
    let all = Down(vec![US, EUW]);
    let d = run(&p, &c, &all);
    assert_eq!(regions_of(&p, &d), vec![US, EUW], "answer-all fails open");
    assert_eq!(d.reason, Reason::AllDown);
    p.when_all_down = AllDown::NoData;
    assert_eq!(run(&p, &c, &all).outcome, Outcome::NoData);
    p.when_all_down = AllDown::ServFail;
    assert_eq!(run(&p, &c, &all).outcome, Outcome::ServFail);
    p.when_all_down = AllDown::Endpoint(1);
    assert_eq!(regions_of(&p, &run(&p, &c, &all)), vec![EUW]);
}

#[test]
fn geo_most_specific_rule_wins() {
    let mut rules = GeoRules::default();
    let mut list = |label: &str, eps: Vec<EndpointIdx>| {
        rules.lists.push(eps);
        rules.labels.push(label.into());
        (rules.lists.len() - 1) as u16
    };
    let default = list("default", vec![0]);
    let eu = list("continent:EU", vec![1]);
    let de = list("country:DE", vec![2]);
    let ca = list("subdivision:US-CA", vec![2, 0]);
    let net = list("cidr:203.0.113.0/24", vec![0]);
    rules.default = default;
    rules.continent.insert(*b"EU", eu);
    rules.country.insert(*b"DE", de);
    rules.subdivision.insert("US-CA".into(), ca);
    rules
        .cidr
        .insert("203.0.113.0/24".parse::<IpNet>().unwrap(), net)
        .unwrap();
    let p = policy(Strategy::Geo(Box::new(rules)), &[US, EUW, AP]);
    let fr = client("198.51.100.1", "FR", None, 16);
    assert_eq!(regions_of(&p, &run(&p, &fr, &AllUp)), vec![EUW]);
    let de_client = client("198.51.100.1", "DE", None, 16);
    assert_eq!(regions_of(&p, &run(&p, &de_client, &AllUp)), vec![AP]);
    let mut ca_client = client("198.51.100.1", "US", None, 16);
    ca_client.location.subdivision = Some("US-CA".into());
    assert_eq!(regions_of(&p, &run(&p, &ca_client, &AllUp)), vec![AP]);
    // The subdivision's list is a failover list.
    assert_eq!(
        regions_of(&p, &run(&p, &ca_client, &Down(vec![AP]))),
        vec![US]
    );
    // CIDR beats country.
    let in_net = client("203.0.113.9", "DE", None, 16);
    let d = run(&p, &in_net, &AllUp);
    assert_eq!(regions_of(&p, &d), vec![US]);
    assert_eq!(d.scope, 24);
    let unknown = client("198.51.100.1", "", None, 8);
    assert_eq!(regions_of(&p, &run(&p, &unknown, &AllUp)), vec![US]);
}

#[test]
fn weighted_is_stable_per_prefix_and_follows_weights() {
    let mut p = policy(Strategy::Weighted, &[US, EUW]);
    p.endpoints[0].weight = 90;
    p.endpoints[1].weight = 10;
    let mut counts = [0usize; 2];
    for i in 0..2000u32 {
        let a = format!("10.{}.{}.1", i / 256, i % 256);
        let c = client(&a, "", None, 8);
        let d = run(&p, &c, &AllUp);
        let r = regions_of(&p, &d);
        assert_eq!(d.scope, 24);
        counts[r[0] as usize] += 1;
        // Another host in the same /24: the same answer.
        let b = format!("10.{}.{}.200", i / 256, i % 256);
        assert_eq!(
            regions_of(&p, &run(&p, &client(&b, "", None, 8), &AllUp)),
            r
        );
    }
    let share = counts[1] as f64 / 2000.0;
    assert!((0.06..0.14).contains(&share), "10% weight got {share}");
    // Weight 0 drains.
    p.endpoints[1].weight = 0;
    for i in 0..200u32 {
        let a = format!("10.0.{i}.1");
        assert_eq!(
            regions_of(&p, &run(&p, &client(&a, "", None, 8), &AllUp)),
            vec![US]
        );
    }
}

#[test]
fn weighted_moves_only_the_clients_of_a_failed_endpoint() {
    let p = policy(Strategy::Weighted, &[US, EUW, AP]);
    let mut moved_wrongly = 0;
    for i in 0..500u32 {
        let a = format!("10.1.{}.1", i % 256 + (i / 256));
        let c = client(&a, "", None, 8);
        let before = regions_of(&p, &run(&p, &c, &AllUp));
        let after = regions_of(&p, &run(&p, &c, &Down(vec![AP])));
        if before[0] != AP && before != after {
            moved_wrongly += 1;
        }
    }
    assert_eq!(moved_wrongly, 0);
}

#[test]
fn all_answers_every_healthy_endpoint() {
    let p = policy(Strategy::All, &[US, EUW, AP]);
    let c = client("198.51.100.7", "US", None, 16);
    assert_eq!(regions_of(&p, &run(&p, &c, &AllUp)), vec![US, EUW, AP]);
    assert_eq!(regions_of(&p, &run(&p, &c, &Down(vec![EUW]))), vec![US, AP]);
    assert_eq!(run(&p, &c, &AllUp).scope, 0);
}

/// Every strategy, every health combination, many clients: a client inside the EU
/// fence never gets a region outside it, and one outside is never fenced.
#[test]
fn fence_holds_under_every_strategy_and_health() {
    let eu_countries = ["IE", "DE", "FR", "ES", "SE", "PL"];
    let outside = ["US", "JP", "GB", "CH", "NO", "BR"];
    let strategies = || -> Vec<Strategy> {
        let mut rules = GeoRules::default();
        rules.lists.push(vec![0, 2, 1, 3]); // default prefers US, AP
        rules.labels.push("default".into());
        vec![
            Strategy::Latency {
                overhead_ms: 5.0,
                table: None,
            },
            Strategy::Failover(vec![0, 2, 1, 3]),
            Strategy::Weighted,
            Strategy::All,
            Strategy::Geo(Box::new(rules)),
        ]
    };
    let fallbacks = [FenceFallback::ServFail, FenceFallback::NoData];
    let all_down = [
        AllDown::AnswerAll,
        AllDown::NoData,
        AllDown::ServFail,
        AllDown::Endpoint(0),
    ];
    let mut checked = 0;
    for strategy_idx in 0..5 {
        for &fb in &fallbacks {
            for &ad in &all_down {
                for mask in 0u8..16 {
                    let mut p = policy(strategies().remove(strategy_idx), &[US, AP, EUW, EUC]);
                    p.endpoints[0].weight = 1000; // US heavily weighted
                    p.fence = vec!["EU".into()];
                    p.fence_fallback = fb;
                    p.when_all_down = ad;
                    let down: Vec<RegionIdx> = [US, AP, EUW, EUC]
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, &r)| r)
                        .collect();
                    let eu_up = !down.contains(&EUW) || !down.contains(&EUC);
                    let h = Down(down.clone());
                    for (k, cc) in eu_countries.iter().enumerate() {
                        let coords = if k % 2 == 0 {
                            Some(NEW_YORK)
                        } else {
                            Some(TOKYO)
                        };
                        let c = client(&format!("198.51.{k}.9"), cc, coords, 16);
                        let d = run(&p, &c, &h);
                        checked += 1;
                        let got = regions_of(&p, &d);
                        for r in &got {
                            assert!(
                                *r == EUW || *r == EUC,
                                "{cc} client got a region outside the EU: {got:?} \
                                 (strategy {strategy_idx}, down {down:?})"
                            );
                        }
                        if eu_up {
                            assert!(!got.is_empty(), "an EU region was up but {cc} got {d:?}");
                        } else {
                            let want = match fb {
                                FenceFallback::ServFail => Outcome::ServFail,
                                FenceFallback::NoData => Outcome::NoData,
                            };
                            assert_eq!(d.outcome, want);
                            assert_eq!(d.reason, Reason::Fence);
                        }
                        assert!(d.scope >= 16, "fenced answers depend on location");
                    }
                    for cc in &outside {
                        let c = client("203.0.113.9", cc, Some(NEW_YORK), 16);
                        let d = run(&p, &c, &h);
                        assert!(d.fenced.is_none(), "{cc} was fenced");
                        assert_ne!(d.reason, Reason::Fence);
                    }
                }
            }
        }
    }
    assert_eq!(checked, 5 * 2 * 4 * 16 * eu_countries.len());
}

#[test]
fn unknown_country_is_not_fenced() {
    let mut p = policy(Strategy::Failover(vec![0, 1]), &[US, EUW]);
    p.fence = vec!["EU".into()];
    let c = client("198.51.100.1", "", None, 0);
    let d = run(&p, &c, &AllUp);
    assert_eq!(regions_of(&p, &d), vec![US]);
    assert!(d.fenced.is_none());
}

#[test]
fn types_without_data_are_nodata() {
    let p = policy(Strategy::Failover(vec![0]), &[US]);
    let c = client("198.51.100.1", "US", None, 16);
    let d = decide(&zone(), &p, &c, &AllUp, rtype::AAAA, 0, &mut NoTrace);
    assert_eq!(d.outcome, Outcome::NoData);
    assert_eq!(d.reason, Reason::NoData);
}

#[test]
fn explain_trace_names_every_step() {
    let mut p = policy(
        Strategy::Latency {
            overhead_ms: 5.0,
            table: None,
        },
        &[US, EUW, AP],
    );
    p.fence = vec!["EU".into()];
    let mut rec = Recorder::default();
    let c = client("198.51.100.7", "DE", Some((50.1, 8.7)), 16);
    let d = decide(&zone(), &p, &c, &Down(vec![]), rtype::A, 0, &mut rec);
    assert_eq!(regions_of(&p, &d), vec![EUW]);
    let text = rec.0.join("\n");
    for needle in [
        "country DE",
        "fence EU",
        "us-east: rejected: outside the fence",
        "eu-west:",
        "ms estimated",
        "answer: eu-west (latency)",
        "ECS scope /16",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let names: HashSet<&str> = ["us-east", "eu-west", "ap-northeast"].into();
    assert!(names.iter().all(|n| text.contains(n)));
}

/// us-east drained by an operator, eu-west down by its probes.
struct DrainedAndDown;
impl HealthView for DrainedAndDown {
    fn endpoint_up(&self, e: &Endpoint) -> bool {
        !matches!(e.region, US | EUW)
    }
    fn drained(&self, e: &Endpoint) -> bool {
        e.region == US
    }
}

#[test]
fn explain_trace_tells_drained_from_down() {
    let p = policy(Strategy::Failover(vec![0, 1, 2]), &[US, EUW, AP]);
    let mut rec = Recorder::default();
    let c = client("198.51.100.7", "DE", Some((50.1, 8.7)), 16);
    let d = decide(&zone(), &p, &c, &DrainedAndDown, rtype::A, 0, &mut rec);
    assert_eq!(regions_of(&p, &d), vec![AP]);
    let text = rec.0.join("\n");
    assert!(text.contains("us-east: rejected: drained"), "{text}");
    assert!(text.contains("eu-west: rejected: down"), "{text}");
}

#[test]
fn fenced_client_asking_a_type_the_fence_lacks_gets_nodata_not_the_fallback() {
    let mut p = policy(Strategy::Failover(vec![0, 1]), &[US, EUW]);
    p.fence = vec!["EU".into()];
    // us-east has AAAA, eu-west only A.
    p.endpoints[0].aaaa = Some(RRset::new(
        rtype::nz::AAAA,
        class::IN,
        30,
        vec![vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1].into_boxed_slice()],
    ));
    let c = client("198.51.100.1", "DE", None, 16);
    let d = decide(&zone(), &p, &c, &AllUp, rtype::AAAA, 0, &mut NoTrace);
    assert_eq!(d.outcome, Outcome::NoData);
    assert_eq!(d.reason, Reason::NoData);
    // A fence with no region inside it at all: the fallback, for every type.
    let mut q = policy(Strategy::Failover(vec![0]), &[US]);
    q.fence = vec!["EU".into()];
    q.fence_fallback = FenceFallback::NoData;
    let d = decide(&zone(), &q, &c, &AllUp, rtype::A, 0, &mut NoTrace);
    assert_eq!(d.outcome, Outcome::NoData);
    assert_eq!(d.reason, Reason::Fence);
}

/// Dials by region: the rest of the regions at 100 %.
struct Dials(Vec<(RegionIdx, u8)>);
impl HealthView for Dials {
    fn endpoint_up(&self, _: &Endpoint) -> bool {
        true
    }
    fn dial(&self, e: &Endpoint) -> u8 {
        self.0
            .iter()
            .find(|&&(r, _)| r == e.region)
            .map_or(dial::FULL, |&(_, d)| d)
    }
}

fn v4_net(n: u32) -> String {
    std::net::Ipv4Addr::from(0x0a00_0000u32 + (n << 8)).to_string()
}

#[test]
fn a_dial_moves_its_share_to_the_next_choice_for_every_strategy() {
    let strategies: Vec<(&str, NamePolicy)> = vec![
        (
            "failover",
            policy(Strategy::Failover(vec![0, 1, 2]), &[US, EUW, AP]),
        ),
        (
            "latency",
            policy(
                Strategy::Latency {
                    overhead_ms: 5.0,
                    table: None,
                },
                &[US, EUW, AP],
            ),
        ),
        ("weighted", policy(Strategy::Weighted, &[US, EUW])),
    ];
    for (kind, p) in strategies {
        let all = (0..2000).filter(|&n| {
            let c = client(&v4_net(n), "US", Some((40.7, -74.0)), 24);
            regions_of(&p, &run(&p, &c, &AllUp)).first() == Some(&US)
        });
        let had: Vec<u32> = all.collect();
        let kept = had
            .iter()
            .filter(|&&n| {
                let c = client(&v4_net(n), "US", Some((40.7, -74.0)), 24);
                let d = run(&p, &c, &Dials(vec![(US, 30)]));
                assert!(d.scope >= 24, "{kind}: scope /{}", d.scope);
                let r = regions_of(&p, &d);
                assert!(!r.is_empty(), "{kind}: nothing answered");
                r.first() == Some(&US)
            })
            .count();
        let share = 100.0 * kept as f64 / had.len() as f64;
        assert!(
            (20.0..40.0).contains(&share),
            "{kind}: {share:.1}% kept at 30%"
        );
    }
}

#[test]
fn a_dial_never_moves_a_client_out_of_its_fence_and_yields_when_nothing_else_can_answer() {
    let mut p = policy(Strategy::Failover(vec![0, 1, 2]), &[US, EUW, AP]);
    p.fence = vec!["EU".into()];
    // eu-west is the only region inside the fence: dialled to 0, it still answers
    // the fenced client (the dial yields), never us-east.
    for n in 0..200 {
        let c = client(&v4_net(n), "DE", None, 16);
        let mut rec = Recorder::default();
        let d = decide(
            &zone(),
            &p,
            &c,
            &Dials(vec![(EUW, 0)]),
            rtype::A,
            0,
            &mut rec,
        );
        assert_eq!(regions_of(&p, &d), vec![EUW]);
        let text = rec.0.join("\n");
        assert!(text.contains("they yield"), "{text}");
    }
    // Outside the fence, a client whose first choice is dialled away gets the next.
    let c = client("198.51.100.1", "US", None, 16);
    let mut rec = Recorder::default();
    let d = decide(
        &zone(),
        &p,
        &c,
        &Dials(vec![(US, 0)]),
        rtype::A,
        0,
        &mut rec,
    );
    assert_eq!(regions_of(&p, &d), vec![EUW]);
    let text = rec.0.join("\n");
    assert!(text.contains("us-east: dial 0%"), "{text}");
    // A dial of 0 depends on no hash: the scope stays the fence's (the /16
    // network), not the hashed /24.
    assert_eq!(d.scope, 16);
}
