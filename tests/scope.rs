//! ECS scopes from the merged maps (`policy::scope`): for client subnets all over
//! the bundled database and the city fixture, every steered name of the example
//! and steering zones gets the same answer as without a map, a scope at least as
//! wide as the database network's, and the same decision for every address inside
//! the scope it returns, under every combination of one endpoint down and all up
//! or down.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use signpost::app::load_geo;
use signpost::config::zones::load_zones_dir;
use signpost::config::ServerConfig;
use signpost::geo::cidr::mask;
use signpost::geo::client::ClientLocator;
use signpost::policy::scope::{attach, classify};
use signpost::policy::{
    decide, Client, Endpoint, HealthView, NamePolicy, NoTrace, Recorder, ZonePolicy,
};
use signpost::zone::{rtype, Name};

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn geo(database: &str) -> ClientLocator {
    let mut cfg = ServerConfig::default();
    cfg.geo.database = Some(repo(database));
    cfg.geo.database_explicit = true;
    load_geo(&cfg, &mut Vec::new()).expect("geo database")
}

/// A zone's origin and its steering (which lives beside the zone, not in it).
struct Zone {
    origin: Name,
    policy: ZonePolicy,
    steered: Vec<NamePolicy>,
}

fn zones(dir: &str) -> Vec<Zone> {
    let loaded = load_zones_dir(&repo(dir)).expect("zones load");
    loaded
        .zones
        .into_iter()
        .zip(loaded.steering)
        .map(|(z, s)| Zone {
            origin: z.origin,
            policy: s.policy,
            steered: s.names,
        })
        .collect()
}

/// The example zones with their scope maps built over `geo`.
fn example_zones_with_maps(geo: &ClientLocator) -> Vec<Zone> {
    let mut zs = zones("zones");
    attach(zs.iter_mut().map(|z| (&z.policy, &mut z.steered)), geo).expect("maps build");
    zs
}

/// The example zone `geo.example.com.`.
fn geo_example(zs: &[Zone]) -> &Zone {
    zs.iter()
        .find(|z| z.origin.to_string() == "geo.example.com.")
        .expect("zone")
}

/// Endpoints whose bit is set in `down` are down.
struct Down(u64);

impl HealthView for Down {
    fn endpoint_up(&self, e: &Endpoint) -> bool {
        self.0 & (1 << (e.health_id % 64)) == 0
    }
}

/// Numbers the endpoints of every name so `Down` can tell them apart.
fn number_endpoints(zones: &mut [Zone]) {
    for z in zones {
        for p in z.steered.iter_mut() {
            for (i, e) in p.endpoints.iter_mut().enumerate() {
                e.health_id = i as u32;
            }
        }
    }
}

/// A client of `addr/source`, located as the server locates it.
fn client(geo: &ClientLocator, addr: IpAddr, source: u8) -> Client {
    let addr = mask(addr, source);
    Client {
        addr,
        location: geo.locate(addr),
        source_prefix: source,
    }
}

/// A random address inside `net/len`.
fn inside(rng: &mut fastrand::Rng, net: IpAddr, len: u8) -> IpAddr {
    match net {
        IpAddr::V4(a) => {
            let host = (rng.u64(..) as u32)
                .checked_shr(u32::from(len))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
        }
        IpAddr::V6(a) => {
            let r = (u128::from(rng.u64(..)) << 64) | u128::from(rng.u64(..));
            let host = r.checked_shr(u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) | host))
        }
    }
}

/// The last address of `net/len`.
fn last(net: IpAddr, len: u8) -> IpAddr {
    match net {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a) | u32::MAX.checked_shr(u32::from(len)).unwrap_or(0),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
            u128::from(a) | u128::MAX.checked_shr(u32::from(len)).unwrap_or(0),
        )),
    }
}

/// Client subnets: random ones all over both families, the allocated IPv6 space,
/// and well-known public ones.
fn subnets(rng: &mut fastrand::Rng, n: usize) -> Vec<(IpAddr, u8)> {
    let mut out: Vec<(IpAddr, u8)> = [
        ("8.8.8.0", 24),
        ("133.242.0.0", 24),
        ("1.128.0.0", 24),
        ("193.1.1.0", 24),
        ("81.2.69.0", 24),
        ("2600:1f18::", 48),
        ("2a00:1450::", 48),
        ("198.18.1.0", 24),
        ("198.19.16.0", 24),
        ("192.0.2.0", 24),
        ("2001:db8:1::", 48),
        ("3fff:3::", 48),
    ]
    .iter()
    .map(|&(a, l)| (a.parse().expect("address"), l))
    .collect();
    for i in 0..n {
        let r = rng.u64(..);
        out.push(match i % 3 {
            0 | 1 => (IpAddr::V4(Ipv4Addr::from(r as u32)), 24),
            _ => {
                let hi = (r >> 3) | 0x2000_0000_0000_0000;
                (IpAddr::V6(Ipv6Addr::from(u128::from(hi) << 64)), 48)
            }
        });
    }
    out
}

/// Checks every steered name of `dir` located by `database`; returns (decisions
/// checked, of them how many came from a map with a database scope above /0, and
/// how many of those got a scope wider than the database network's).
fn check(dir: &str, database: &str, n: usize) -> (usize, usize, usize) {
    let geo = geo(database);
    let mut plain = zones(dir);
    let mut merged = zones(dir);
    number_endpoints(&mut plain);
    number_endpoints(&mut merged);
    let built =
        attach(merged.iter_mut().map(|z| (&z.policy, &mut z.steered)), &geo).expect("maps build");
    assert!(built.names > 0, "{dir}: no name got a map");
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    let (mut checked, mut mapped, mut wider) = (0, 0, 0);
    for (za, zb) in plain.iter().zip(&merged) {
        for (pa, pb) in za.steered.iter().zip(&zb.steered) {
            let n_ep = pb.endpoints.len() as u32;
            // All up, each endpoint down alone, all down.
            let mut healths: Vec<Down> = vec![Down(0), Down((1 << n_ep) - 1)];
            healths.extend((0..n_ep).map(|i| Down(1 << i)));
            for &(addr, source) in &subnets(&mut rng, n) {
                let qtype = if addr.is_ipv4() {
                    rtype::A
                } else {
                    rtype::AAAA
                };
                let c = client(&geo, addr, source);
                for h in &healths {
                    let old = decide(&za.policy, pa, &c, h, qtype, 0, &mut NoTrace);
                    let new = decide(&zb.policy, pb, &c, h, qtype, 0, &mut NoTrace);
                    assert_eq!(new.outcome, old.outcome, "{}: {addr}/{source}", pb.name);
                    assert_eq!(new.reason, old.reason, "{}: {addr}/{source}", pb.name);
                    assert!(
                        new.scope <= old.scope,
                        "{}: {addr}/{source}: scope /{} narrower than the database's /{}",
                        pb.name,
                        new.scope,
                        old.scope
                    );
                }
                let d = decide(&zb.policy, pb, &c, &Down(0), qtype, 0, &mut NoTrace);
                let old = decide(&za.policy, pa, &c, &Down(0), qtype, 0, &mut NoTrace);
                if pb.scope_map.is_some() && old.scope > 0 {
                    mapped += 1;
                    if d.scope < old.scope {
                        wider += 1;
                    }
                }
                checked += 1;
                // Every address inside the returned scope, asked from its own
                // subnet of the same size, is answered alike under every health.
                let net = mask(c.addr, d.scope);
                let class = classify(&zb.policy, pb, &c);
                let mut samples = vec![net, last(net, d.scope)];
                samples.extend((0..6).map(|_| inside(&mut rng, net, d.scope)));
                for s in samples {
                    let other = client(&geo, s, source);
                    // A scope longer than the source covers only the source's
                    // first address block.
                    if d.scope > source && mask(s, source) != c.addr {
                        continue;
                    }
                    // Where the scope is the map's (not fixed by the strategy or
                    // a NODATA), the class is the same too.
                    if pb.scope_map.as_ref().map(|m| m.scope(c.addr)) == Some(d.scope) {
                        assert_eq!(
                            classify(&zb.policy, pb, &other),
                            class,
                            "{}: {} inside {net}/{} (asked for {addr}/{source})",
                            pb.name,
                            other.addr,
                            d.scope
                        );
                    }
                    for h in &healths {
                        let want = decide(&zb.policy, pb, &c, h, qtype, 0, &mut NoTrace);
                        let got = decide(&zb.policy, pb, &other, h, qtype, 0, &mut NoTrace);
                        assert_eq!(
                            got.outcome, want.outcome,
                            "{}: {} inside {net}/{} (asked for {addr}/{source}) answered otherwise",
                            pb.name, other.addr, d.scope
                        );
                    }
                }
            }
        }
    }
    eprintln!("{dir} on {database}: {checked} decisions, {mapped} with a map and a database scope, {wider} of them wider");
    (checked, mapped, wider)
}

#[test]
fn example_zones_on_the_bundled_database() {
    let (checked, mapped, wider) = check("zones", "geo/geo-whois-asn-country.mmdb", 300);
    assert!(checked > 1000, "{checked}");
    // Most networks of a country-level database have neighbours of the same
    // country or continent: the maps must widen a good share of the scopes
    // (measured: a quarter of random subnets, many of which sit in wide empty
    // networks or between other countries).
    assert!(wider * 5 > mapped, "{wider} of {mapped} wider");
}

#[test]
fn example_zones_on_the_city_fixture() {
    let (checked, _, wider) = check("zones", "tests/fixtures/geo/city.mmdb", 150);
    assert!(checked > 500, "{checked}");
    assert!(wider > 0);
}

#[test]
fn steering_zones_on_both_databases() {
    for db in [
        "tests/fixtures/geo/city.mmdb",
        "geo/geo-whois-asn-country.mmdb",
    ] {
        let (checked, _, wider) = check("tests/zones/steer", db, 150);
        assert!(checked > 500, "{db}: {checked}");
        assert!(wider > 0, "{db}");
    }
}

/// The scopes gdnsd 3.8 returned for the same nearest-region policy on real
/// subnets (the table) are at most as wide as ours on the bundled
/// database: 8.8.8.0/24 /14 (ours at most that), and an address whose run ends
/// next to it says where and why.
#[test]
fn known_subnets_and_the_explain_trace() {
    let geo = geo("geo/geo-whois-asn-country.mmdb");
    let zs = example_zones_with_maps(&geo);
    let z = geo_example(&zs);
    let www = z
        .steered
        .iter()
        .find(|p| p.name.to_string() == "www.geo.example.com.")
        .expect("www");
    let c = client(&geo, "8.8.8.0".parse().expect("addr"), 24);
    let mut rec = Recorder::default();
    let d = decide(&z.policy, www, &c, &Down(0), rtype::A, 0, &mut rec);
    assert!(d.scope <= 14, "8.8.8.0/24: /{}", d.scope);
    assert!(d.scope < c.location.prefix_len);
    let text = rec.0.join("\n");
    assert!(
        text.contains(&format!("merged: 8.0.0.0/{}", d.scope)),
        "{text}"
    );
    assert!(text.contains("it stops at"), "{text}");
    assert!(text.contains("would take in"), "{text}");
}

/// No database: one class everywhere but for the IPv4-mapped block of IPv6 (located
/// as IPv4, so it merges with nothing), so a geo or latency name's scope is /0 for
/// every IPv4 client and short for IPv6 ones.
#[test]
fn no_database_means_scope_zero() {
    let geo = ClientLocator::new(None);
    let zs = example_zones_with_maps(&geo);
    let z = geo_example(&zs);
    // The names whose decision reads no CIDR table (shop has a CIDR rule, cdn a
    // latency table with CIDR entries: their scopes stop at those).
    let names = ["www.geo.example.com.", "accounts.geo.example.com."];
    for p in z
        .steered
        .iter()
        .filter(|p| names.contains(&p.name.to_string().as_str()))
    {
        assert!(p.scope_map.is_some(), "{}", p.name);
        for (a, most) in [("8.8.8.0", 0), ("193.0.0.0", 0), ("2600:1f18::", 8)] {
            let c = client(&geo, a.parse().expect("addr"), 24);
            let d = decide(&z.policy, p, &c, &Down(0), rtype::A, 0, &mut NoTrace);
            assert!(d.scope <= most, "{}: {a}: /{}", p.name, d.scope);
        }
    }
}
