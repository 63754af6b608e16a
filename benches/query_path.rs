//! CPU cost of the query path without sockets: parse, look up, steer, write.
//! `cargo bench --bench query_path`. Socket-level figures against NSD, Knot and gdnsd
//! come from `benches/compare.sh`.

use std::hint::black_box;
use std::net::IpAddr;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use signpost::answer::handler::{handle, Transport};
use signpost::app::{load_snapshot, server_config, CommandLine};
use signpost::policy::{self, AllUp, Client, NoTrace};

fn query(name: &str, qtype: u16, ecs: Option<([u8; 4], u8)>) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, ecs.is_some() as u8];
    for l in name.trim_end_matches('.').split('.') {
        p.push(l.len() as u8);
        p.extend_from_slice(l.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    if let Some((addr, prefix)) = ecs {
        let n = (prefix as usize).div_ceil(8);
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
        p.extend_from_slice(&((8 + n) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 8]);
        p.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 1, prefix, 0]);
        p.extend_from_slice(&addr[..n]);
    }
    p
}

fn bench(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let o = CommandLine {
        config: None,
        zones: Some(root.join("zones")),
        ..CommandLine::default()
    };
    let mut cfg = server_config(&o).expect("config");
    cfg.geo.database = Some(root.join("geo/geo-whois-asn-country.mmdb"));
    let (snap, _) = load_snapshot(&cfg, 1).expect("zones load");
    let src: IpAddr = "127.0.0.1".parse().expect("ip");
    let mut out = Vec::with_capacity(4096);

    let cases = [
        ("static A", query("www.example.com.", 1, None)),
        ("static NXDOMAIN", query("nope.example.com.", 1, None)),
        (
            "latency A with ECS",
            query("www.geo.example.com.", 1, Some(([81, 2, 69, 0], 24))),
        ),
        (
            "geo A with ECS",
            query("shop.geo.example.com.", 1, Some(([193, 0, 0, 0], 24))),
        ),
        (
            "fenced A with ECS",
            query("accounts.geo.example.com.", 1, Some(([193, 0, 0, 0], 24))),
        ),
    ];
    for (label, pkt) in &cases {
        c.bench_function(&format!("handle: {label}"), |b| {
            b.iter(|| {
                let sent = handle(&snap, black_box(pkt), src, Transport::Udp, &mut out);
                black_box((sent.sent, out.len()))
            })
        });
    }

    // Steered queries from more clients than a thread remembers (2,048 entries):
    // every query misses and is decided, then remembered; the cost of a miss.
    let many: Vec<Vec<u8>> = (0..8192u32)
        .map(|i| {
            let [_, a, b, c] = (0x5100_0000 + (i << 8)).to_be_bytes();
            query("www.geo.example.com.", 1, Some(([81, a, b, c], 24)))
        })
        .collect();
    let mut next = 0;
    c.bench_function("handle: latency A with ECS, a new client each time", |b| {
        b.iter(|| {
            next = (next + 1) % many.len();
            let sent = handle(&snap, black_box(&many[next]), src, Transport::Udp, &mut out);
            black_box((sent.sent, out.len()))
        })
    });

    // The same, with a traffic dial of 50 % on every region (policy::dial): what
    // dials add to a decided query. Compared side by side in one run.
    let load = || load_snapshot(&cfg, 1).expect("zones load").0;
    let (many_snap, dialled_snap) = (
        with_dials(load(), None, None),
        with_dials(load(), Some(50), None),
    );
    // And with load shedding's dial at 50 % on every region beside the
    // operator's (the lower of the two serves).
    let shed_snap = with_dials(load(), Some(50), Some(50));
    for (label, s) in [
        ("no dials", &many_snap),
        ("dials 50% on every region", &dialled_snap),
        ("dials and shedding 50% on every region", &shed_snap),
    ] {
        let mut next = 0;
        c.bench_function(
            &format!("handle: latency A with ECS, a new client each time, {label}"),
            |b| {
                b.iter(|| {
                    next = (next + 1) % many.len();
                    let sent = handle(s, black_box(&many[next]), src, Transport::Udp, &mut out);
                    black_box((sent.sent, out.len()))
                })
            },
        );
    }

    // The same static query with the metrics counting the query path does, to see
    // what counting costs.
    let metrics = signpost::metrics::Metrics::default();
    let shard = metrics.shard();
    let pkt = &cases[0].1;
    c.bench_function("handle + count: static A", |b| {
        b.iter(|| {
            let o = handle(&snap, black_box(pkt), src, Transport::Udp, &mut out);
            shard.record(&o, false);
            black_box(out.len())
        })
    });

    // The same static query with the site probes' sampler the UDP loop calls
    // (latency::probe::note): off (one relaxed load), then on at the default
    // one query in 64.
    for (label, every) in [("off", 0), ("on, 1 in 64", 64)] {
        signpost::latency::probe::set_sampling(every);
        c.bench_function(&format!("note + handle: static A, probes {label}"), |b| {
            b.iter(|| {
                signpost::latency::probe::note(black_box(src));
                let o = handle(&snap, black_box(pkt), src, Transport::Udp, &mut out);
                black_box(o.sent)
            })
        });
    }
    signpost::latency::probe::set_sampling(0);

    // Location lookup and decision alone.
    // The zone's steering lives beside it in the snapshot, by the zone's index.
    let ((zi, _), _) = snap
        .zones
        .find_at_with_parent(b"\x03www\x03geo\x07example\x03com\x00")
        .expect("zone");
    let zone = &snap.steering[zi];
    let p = zone
        .names
        .iter()
        .find(|n| n.name.to_string() == "www.geo.example.com.")
        .expect("www steered");
    let addr: IpAddr = "81.2.69.0".parse().expect("ip");
    c.bench_function("locate + decide (latency)", |b| {
        b.iter(|| {
            let client = Client {
                addr,
                location: snap.geo.locate(black_box(addr)),
                source_prefix: 24,
            };
            black_box(policy::decide(
                &zone.policy,
                p,
                &client,
                &AllUp,
                1,
                0,
                &mut NoTrace,
            ))
        })
    });
}

/// The snapshot again with a health bridge that knows its endpoints, every
/// region dialled to `dial` (none: no dial set) and shedding to `shed` (none:
/// no `[shed.REGION]`).
fn with_dials(
    mut s: signpost::answer::snapshot::Snapshot,
    dial: Option<u8>,
    shed: Option<u8>,
) -> signpost::answer::snapshot::Snapshot {
    use signpost::answer::health_view::{Dials, HealthBridge, Weights};
    let dials = Dials::default();
    if let (Some(d), Ok(mut m)) = (dial, dials.lock()) {
        for n in &s.endpoint_names {
            m.insert(n.region.clone(), d);
        }
    }
    s.health = HealthBridge::new(
        std::sync::Arc::new(signpost::health::HealthTable::new(s.health_targets.clone())),
        &s.health_targets,
        s.endpoint_names.clone(),
        Weights::default(),
        dials,
    );
    if let Some(d) = shed {
        let regions: std::collections::BTreeSet<String> = s
            .endpoint_names
            .iter()
            .map(|n| n.region.trim_start_matches("region:").to_string())
            .collect();
        let cells = signpost::health::ShedDials::with_plans(
            regions
                .iter()
                .map(|r| (r.clone(), true, signpost::health::ShedPlan::default())),
        );
        for r in &regions {
            cells.set(r, d);
        }
        let bridge = std::mem::replace(&mut s.health, HealthBridge::empty());
        s.health = bridge.with_shed(std::sync::Arc::new(cells));
    }
    s
}

criterion_group!(benches, bench);
criterion_main!(benches);
