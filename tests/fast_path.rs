//! The UDP fast path (prebuilt whole answers) against the general path, in process:
//! for every name of the example, test and benchmark zones, names below them that
//! do not exist, many query types, letter cases, EDNS variants and header bits, both
//! paths must give the same bytes and count the same things; signed zones with
//! DO=1 too (their answers with RRSIGs and proofs prebuilt). The socket-level
//! comparison of every golden scenario is in `tests/scenarios.rs`.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use signpost::answer::fast::Fast;
use signpost::answer::handler::{handle, Transport};
use signpost::answer::query;
use signpost::answer::snapshot::Snapshot;
use signpost::answer::Observed;
use signpost::app::{load_snapshot, server_config, CommandLine};
use signpost::policy::Reason;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a steered response counts as in metrics, for comparing two paths.
type Counted = (u16, bool, bool, Option<(u16, u16, Reason)>, Option<u16>);

fn counted(o: &Observed) -> Counted {
    (o.rcode, o.truncated, o.ecs, o.steered, o.zone_slot)
}

fn snapshot(zones: &str, config: Option<&str>) -> Snapshot {
    snapshot_geo(zones, config, None)
}

/// The snapshot of `zones` with `config`, clients located by `database` (a path
/// in the repository) or by nothing.
fn snapshot_geo(zones: &str, config: Option<&str>, database: Option<&str>) -> Snapshot {
    let o = CommandLine {
        config: config.map(repo),
        zones: Some(repo(zones)),
        ..CommandLine::default()
    };
    let mut cfg = server_config(&o).expect("config");
    cfg.geo.database = database.map(repo);
    let (snap, _) = load_snapshot(&cfg, 1).expect("zones load");
    snap
}

#[derive(Clone, Copy)]
enum Edns {
    None,
    Plain(u16),
    Do,
    Nsid,
    Ecs,
    /// ECS for an IPv6 /56, with DO.
    Ecs6Do,
    /// NSID asked, and ECS.
    EcsNsid,
    Version1,
    /// ECS for this /24 (or /0: no address).
    EcsAt([u8; 3], u8),
    /// The same, with DO.
    EcsAtDo([u8; 3], u8),
    /// DO with this payload size.
    DoAt(u16),
}

fn packet(qname: &[u8], qtype: u16, edns: Edns, flags: u16) -> Vec<u8> {
    let ar = !matches!(edns, Edns::None) as u8;
    let mut p = vec![0xab, 0xcd];
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, ar]);
    p.extend_from_slice(qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    let (payload, version, flags, opts): (u16, u8, u16, Vec<u8>) = match edns {
        Edns::None => return p,
        Edns::Plain(n) => (n, 0, 0, vec![]),
        Edns::Do => (1232, 0, 0x8000, vec![]),
        Edns::DoAt(n) => (n, 0, 0x8000, vec![]),
        Edns::Nsid => (1232, 0, 0, vec![0, 3, 0, 0]),
        Edns::Ecs => (1232, 0, 0, vec![0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100]),
        Edns::Ecs6Do => (
            1232,
            0,
            0x8000,
            vec![
                0, 8, 0, 11, 0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56,
            ],
        ),
        Edns::EcsNsid => (
            1232,
            0,
            0,
            vec![0, 3, 0, 0, 0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100],
        ),
        Edns::Version1 => (1232, 1, 0, vec![]),
        Edns::EcsAt(_, 0) => (1232, 0, 0, vec![0, 8, 0, 4, 0, 1, 0, 0]),
        Edns::EcsAt(a, _) => (1232, 0, 0, vec![0, 8, 0, 7, 0, 1, 24, 0, a[0], a[1], a[2]]),
        Edns::EcsAtDo(_, 0) => (1232, 0, 0x8000, vec![0, 8, 0, 4, 0, 1, 0, 0]),
        Edns::EcsAtDo(a, _) => (
            1232,
            0,
            0x8000,
            vec![0, 8, 0, 7, 0, 1, 24, 0, a[0], a[1], a[2]],
        ),
    };
    p.push(0);
    p.extend_from_slice(&41u16.to_be_bytes());
    p.extend_from_slice(&payload.to_be_bytes());
    p.push(0);
    p.push(version);
    p.extend_from_slice(&flags.to_be_bytes());
    p.extend_from_slice(&(opts.len() as u16).to_be_bytes());
    p.extend_from_slice(&opts);
    p
}

/// `name` with a label put in front.
fn below(label: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = vec![label.len() as u8];
    v.extend_from_slice(label);
    v.extend_from_slice(name);
    v
}

/// Letter case changed: upper case, or alternating.
fn recase(name: &[u8], how: u8) -> Vec<u8> {
    let mut v = name.to_vec();
    let mut i = 0;
    while i < v.len() && v[i] != 0 {
        let len = v[i] as usize;
        for (k, b) in v[i + 1..i + 1 + len].iter_mut().enumerate() {
            if how == 1 || (how == 2 && k % 2 == 0) {
                b.make_ascii_uppercase();
            }
        }
        i += len + 1;
    }
    v
}

/// Runs the cross product for one snapshot; returns (queries, answered fast).
fn compare(snap: Snapshot) -> (usize, usize) {
    let edns = [
        Edns::None,
        Edns::Plain(1232),
        Edns::Plain(512),
        Edns::Do,
        Edns::Nsid,
        Edns::Ecs,
        Edns::Ecs6Do,
        Edns::EcsNsid,
        Edns::Version1,
    ];
    let c = compare_with(snap, &edns);
    (c.total, c.fast)
}

/// What [`compare_with`] counted.
struct Compared {
    total: usize,
    fast: usize,
    /// DO=1 answers from the fast path that carry an RRSIG, as hickory-proto
    /// decodes them.
    fast_signed: usize,
}

/// [`compare`] with the EDNS variants `edns`, in turn.
fn compare_with(mut snap: Snapshot, edns: &[Edns]) -> Compared {
    let table = snap
        .fast
        .take()
        .expect("the fast table is built by default");
    assert!(!table.is_empty());
    let mut names: Vec<Vec<u8>> = Vec::new();
    for z in snap.zones.zones() {
        for n in z.nodes.keys() {
            let w = n.to_vec();
            names.push(below(b"nope", &w));
            names.push(below(b"a", &below(b"deeper-than-one-label", &w)));
            if w.len() < 200 {
                names.push(below(&[b'x'; 40], &w));
            }
            names.push(w);
        }
    }
    names.push(b"\x0anot-served\x04test\x00".to_vec());
    names.sort();
    names.dedup();
    let qtypes = [
        1u16, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 52, 257, 65, 99, 65280, 999, 41, 255,
        252,
    ];
    let srcs: [IpAddr; 2] = [[127, 0, 0, 1].into(), [192, 0, 2, 1].into()];
    let (mut total, mut fast, mut steer, mut fast_signed) = (0, 0, 0, 0);
    let mut general_out = Vec::new();
    let mut fast_out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (j, &t) in qtypes.iter().enumerate() {
            // Every name with every type; case, EDNS, header bits and source vary.
            let e = edns[(i + j) % edns.len()];
            let flags = [0x0000u16, 0x0100, 0x0110][(i * 7 + j) % 3];
            let src = srcs[(i + 2 * j) % 2];
            let qname = recase(n, ((i + j) % 3) as u8);
            let pkt = packet(&qname, t, e, flags);
            let g = handle(&snap, &pkt, src, Transport::Udp, &mut general_out);
            let mut name_buf = query::NameBuf::default();
            let q = query::parse(&pkt, &mut name_buf).expect("a well-formed query");
            total += 1;
            let f = match table.answer(&snap, &q, src, &mut fast_out) {
                Fast::Done(o) => o,
                Fast::Steer(..) => {
                    steer += 1;
                    continue;
                }
                Fast::No => continue,
            };
            fast += 1;
            let what = format!("{qname:?} type {t} from {src}");
            assert_eq!(fast_out, general_out, "{what}: the paths' bytes differ");
            assert_eq!(
                (f.sent, f.zone_slot, f.qtype, f.rcode, f.truncated, f.ecs),
                (g.sent, g.zone_slot, g.qtype, g.rcode, g.truncated, g.ecs),
                "{what}: counted differently"
            );
            assert_eq!(f.question_len, g.question_len, "{what}");
            assert!(f.steered.is_none() && g.steered.is_none(), "{what}");
            if matches!(e, Edns::Do) {
                let d = common::decode(&fast_out);
                let sigs = d.answer.iter().chain(&d.authority);
                if sigs.filter(|r| r.contains("RRSIG")).count() > 0 {
                    fast_signed += 1;
                }
            }
        }
    }
    // The steered names' A/AAAA/CNAME skip the lookup (the decision itself is the
    // general path's, compared at the socket level in tests/scenarios.rs).
    let steered_names = snap.steering.iter().map(|s| s.names.len()).sum::<usize>();
    assert_eq!(steer > 0, steered_names > 0, "steered hints: {steer}");
    Compared {
        total,
        fast,
        fast_signed,
    }
}

#[test]
fn example_zones_fast_and_general_agree() {
    let (total, fast) = compare(snapshot("zones", None));
    eprintln!("example zones: {fast} of {total} queries answered by the fast path");
    // Most names and types are static: the fast path must carry most of them.
    assert!(fast * 2 > total, "only {fast} of {total} answered fast");
}

#[test]
fn core_test_zones_fast_and_general_agree() {
    let (total, fast) = compare(snapshot(
        "tests/zones/core",
        Some("tests/configs/core-server.toml"),
    ));
    eprintln!("core zones: {fast} of {total} queries answered by the fast path");
    assert!(fast * 2 > total, "only {fast} of {total} answered fast");
}

#[test]
fn steer_test_zones_fast_and_general_agree() {
    let (total, fast) = compare(snapshot(
        "tests/zones/steer",
        Some("tests/configs/steer-server.toml"),
    ));
    eprintln!("steer zones: {fast} of {total} queries answered by the fast path");
    assert!(fast > 0);
}

#[test]
fn benchmark_zone_fast_and_general_agree() {
    let dir = tempdir();
    std::fs::copy(
        repo("benches/data/bench.example.zone"),
        dir.join("bench.example.zone"),
    )
    .expect("copy");
    let (total, fast) = compare(snapshot(dir.to_str().expect("utf-8 path"), None));
    std::fs::remove_dir_all(&dir).ok();
    assert!(fast * 2 > total, "only {fast} of {total} answered fast");
}

/// The fast table builds a NODATA or NXDOMAIN answer once for the names that
/// share a parent and a first label's length, where the bytes cannot differ;
/// this zone has the names where they do: the SOA's MNAME and RNAME beside
/// names of the same length (its pointers reach into them), a cut with glue
/// of the same length as names above it, and a wildcard's parent. Every name,
/// every type and the names below each must give the same bytes both ways.
#[test]
fn names_of_one_shape_share_negative_answers_only_where_the_bytes_agree() {
    let dir = tempdir().join("shapes");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut zone = String::from(
        "$ORIGIN shape.test.\n$TTL 300\n\
         @ IN SOA ns1.shape.test. hm.ab.shape.test. 1 7200 3600 1209600 300\n\
         @ IN NS ns1\n@ IN NS ns1.sub\n\
         ns1 IN A 192.0.2.1\nns2 IN A 192.0.2.2\nns3 IN TXT \"x\"\n\
         hm.ab IN A 192.0.2.3\nhm.cd IN A 192.0.2.4\nxy.ab IN A 192.0.2.5\nab IN A 192.0.2.9\n\
         sub IN NS ns1.sub\nns1.sub IN A 192.0.2.6\nns2.sub IN A 192.0.2.7\nsua IN A 192.0.2.8\n\
         *.w IN A 198.51.100.1\nw1 IN A 198.51.100.2\nx.w IN A 198.51.100.3\n",
    );
    for i in 0..40 {
        zone.push_str(&format!("h{i:02} IN A 203.0.113.{i}\n"));
    }
    std::fs::write(dir.join("shape.test.zone"), zone).expect("write zone");
    let (total, fast) = compare(snapshot(dir.to_str().expect("utf-8 path"), None));
    std::fs::remove_dir_all(&dir).ok();
    assert!(fast * 2 > total, "only {fast} of {total} answered fast");
}

/// A name's record in the fast table says where its zone stores the name
/// instead of holding a copy: a zone of long names takes the same table
/// bytes as one of short names with the same records, and both answer
/// every name the way the general path does.
#[test]
fn the_fast_table_holds_no_copy_of_the_names() {
    let size = |label: &str| {
        let dir = tempdir().join(format!("names-{}", label.len()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut zone = String::from(
            "$ORIGIN names.test.\n$TTL 300\n\
             @ IN SOA ns1.names.test. hm.names.test. 1 7200 3600 1209600 300\n\
             @ IN NS ns1\nns1 IN A 192.0.2.1\n",
        );
        for i in 0..200 {
            zone.push_str(&format!("{label}{i:03} IN A 203.0.113.{}\n", i % 250));
        }
        std::fs::write(dir.join("names.test.zone"), zone).expect("write zone");
        let snap = snapshot(dir.to_str().expect("utf-8 path"), None);
        let size = snap.fast.get().expect("fast table").size();
        let (total, fast) = compare(snap);
        std::fs::remove_dir_all(&dir).ok();
        assert!(fast * 2 > total, "only {fast} of {total} answered fast");
        size
    };
    let short = size("h");
    let long = size(&"h".repeat(60));
    assert_eq!(
        short,
        long,
        "200 names 59 bytes longer took {} more bytes of fast table",
        long as i64 - short as i64
    );
}

#[test]
fn fast_path_answers_plain_questions() {
    let mut snap = snapshot("zones", None);
    let table = snap.fast.take().expect("fast table");
    let mut out = Vec::new();
    let src: IpAddr = [127, 0, 0, 1].into();
    for (name, t) in [
        (&b"\x03www\x07example\x03com\x00"[..], 1u16),
        (b"\x07example\x03com\x00", 15),
        (b"\x08no-such1\x07example\x03com\x00", 1),
        (b"\x07example\x03com\x00", 65280),
    ] {
        let pkt = packet(name, t, Edns::Plain(1232), 0x0100);
        let mut name_buf = query::NameBuf::default();
        let q = query::parse(&pkt, &mut name_buf).expect("query");
        assert!(
            matches!(table.answer(&snap, &q, src, &mut out), Fast::Done(_)),
            "{name:?} type {t} went to the general path"
        );
    }
    // Steered A is decided per query, from the policy the table points at.
    let pkt = packet(b"\x03www\x03geo\x07example\x03com\x00", 1, Edns::None, 0);
    let mut name_buf = query::NameBuf::default();
    let q = query::parse(&pkt, &mut name_buf).expect("query");
    assert!(matches!(
        table.answer(&snap, &q, src, &mut out),
        Fast::Steer(..)
    ));
    // ANY goes to the general path.
    let pkt = packet(b"\x07example\x03com\x00", 255, Edns::None, 0);
    let mut name_buf = query::NameBuf::default();
    let q = query::parse(&pkt, &mut name_buf).expect("query");
    assert!(matches!(table.answer(&snap, &q, src, &mut out), Fast::No));
}

/// A table of more than 65,536 names (two thirds full, as every table of
/// more than 4,096 names is): every name is found there, in any letter case, with its own
/// address, and names that are not there get NXDOMAIN from the fast path too.
#[test]
fn a_large_table_finds_every_name_and_no_other() {
    table_of_names_finds_each_and_no_other(70_000);
}

/// 10,000 names: a table of more than 4,096 names has its slots two thirds
/// full, as a large one has; half full in a power of two (32,768 slots, 26
/// bytes a name) it was 73 bytes a name.
#[test]
fn a_mid_size_table_is_as_lean_per_name_as_a_large_one() {
    table_of_names_finds_each_and_no_other(10_000);
}

/// A zone of `names` one-address names: its table holds less than 64 bytes
/// a name, finds every seventh name (also in capitals) for its own address,
/// and answers names it lacks NXDOMAIN, all from the fast path.
fn table_of_names_finds_each_and_no_other(names: u32) {
    let dir = tempdir().join(format!("large-{names}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut zone = String::from(
        "$ORIGIN large.test.\n$TTL 300\n\
         @ IN SOA ns1.large.test. hm.large.test. 1 7200 3600 1209600 300\n\
         @ IN NS ns1\nns1 IN A 192.0.2.1\n",
    );
    for i in 0..names {
        let [_, a, b, c] = i.to_be_bytes();
        zone.push_str(&format!("n{i} IN A 10.{a}.{b}.{c}\n"));
    }
    std::fs::write(dir.join("large.test.zone"), zone).expect("write zone");
    let mut snap = snapshot(dir.to_str().expect("utf-8 path"), None);
    std::fs::remove_dir_all(&dir).ok();
    let table = snap.fast.take().expect("fast table");
    assert_eq!(table.len(), names as usize + 2);
    // Per name: a slot of 8 bytes, 1.5 of them; the record (20 bytes: flags,
    // where the name is, one type's list); the A answer's body (22: a short
    // header of 6 with the zone's slot, the record of 16); the NODATA and
    // NXDOMAIN bodies each part of the build shares out (59 in all). Slots
    // half full in a power of two (262,144 here), a 4-byte offset of the
    // list below in every record and bodies' headers of 14 made it 89.
    let per_name = table.size() as f64 / f64::from(names);
    assert!(per_name < 64.0, "{per_name:.1} bytes of table per name");
    let src: IpAddr = [127, 0, 0, 1].into();
    let mut out = Vec::new();
    let mut ask = |label: &str| {
        let name = common::name_wire(&format!("{label}.large.test."));
        let pkt = packet(&name, 1, Edns::None, 0);
        let mut name_buf = query::NameBuf::default();
        let q = query::parse(&pkt, &mut name_buf).expect("query");
        let done = matches!(table.answer(&snap, &q, src, &mut out), Fast::Done(_));
        assert!(done, "{label}: went to the general path");
        let d = common::decode(&out);
        let addrs: Vec<String> = d
            .answer
            .iter()
            .filter_map(|r| r.rsplit(' ').next().map(str::to_string))
            .collect();
        (d.rcode, addrs)
    };
    for i in (0..names).step_by(7).chain([names - 1]) {
        let [_, a, b, c] = i.to_be_bytes();
        let want = vec![format!("10.{a}.{b}.{c}")];
        let label = format!("n{i}");
        assert_eq!(ask(&label).1, want, "{label}");
        assert_eq!(ask(&label.to_uppercase()).1, want, "{label} in capitals");
    }
    for label in [format!("n{names}"), "n".into(), "x1".into(), "n1.n2".into()] {
        let (rcode, addrs) = ask(&label);
        assert_eq!(rcode, "NXDOMAIN", "{label}");
        assert!(addrs.is_empty(), "{label}: {addrs:?}");
    }
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "signpost-fast-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Steered names whose decision is one endpoint's whole address set are answered
/// from prebuilt bodies: for clients all over the geo fixture, with and without
/// EDNS, the server with them and the one without give the same bytes. Asked again,
/// the query is answered from what the thread remembers of the decision, straight
/// from the fast path, with the same bytes again.
#[test]
fn prebuilt_steered_answers_match_the_general_path() {
    for (zones, config) in [
        ("zones", None),
        ("tests/zones/steer", Some("tests/configs/steer-server.toml")),
    ] {
        let db = Some("tests/fixtures/geo/city.mmdb");
        let mut snap = snapshot_geo(zones, config, db);
        let edns = |net, len| [Edns::EcsAt(net, len), Edns::None, Edns::Plain(512)];
        let (compared, remembered, _) = compare_steered(zones, &mut snap, edns);
        // A and AAAA queries answered by one endpoint's whole address set are
        // remembered; CNAME queries, NODATA, several endpoints or addresses left
        // out are not (about 30% of these queries are).
        assert!(
            remembered * 5 >= compared,
            "{zones}: only {remembered} of {compared} answered from memory"
        );
    }
}

/// The steering test zone signed by the server: a steered DO=1 answer made of
/// one endpoint's whole set is prebuilt with the RRSIG the zone's signing made,
/// the general path's bytes, and remembered apart from the DO=0 answer to the
/// same client (asked in turn, each must come back as its own).
#[test]
fn signed_steered_answers_match_the_general_path() {
    let dir = tempdir().join("signed-steer");
    std::fs::create_dir_all(dir.join("zones")).expect("temp dir");
    let policy =
        std::fs::read_to_string(repo("tests/zones/steer/steer.test.toml")).expect("policy");
    std::fs::write(
        dir.join("zones/steer.test.toml"),
        format!("dnssec = true\n{policy}"),
    )
    .expect("write policy");
    let config = dir.join("server.toml");
    let server = std::fs::read_to_string(repo("tests/configs/steer-server.toml")).expect("config");
    std::fs::write(
        &config,
        format!(
            "[dnssec]\nkey_dir = \"{}\"\n\n{}",
            dir.join("keys").display(),
            server.replace("../fixtures", &repo("tests/fixtures").display().to_string())
        ),
    )
    .expect("write config");
    let zones = dir.join("zones");
    let (zones, config) = (
        zones.to_str().expect("utf-8 path"),
        config.to_str().expect("utf-8 path"),
    );
    let db = Some("tests/fixtures/geo/city.mmdb");
    let mut snap = snapshot_geo(zones, Some(config), db);
    assert!(!snap.signers.is_empty(), "the zone is signed");
    let edns = |net, len| [Edns::EcsAtDo(net, len), Edns::EcsAt(net, len), Edns::Do];
    let (compared, remembered, signed) = compare_steered("signed", &mut snap, edns);
    assert!(
        remembered * 5 >= compared,
        "only {remembered} of {compared} answered from memory"
    );
    assert!(
        signed * 10 >= remembered,
        "{signed} of {remembered} remembered with RRSIGs"
    );
    drop(snap);
    std::fs::remove_dir_all(&dir).ok();
}

/// What the general path alone answers to `pkt` over UDP: the fast table taken
/// out of `snap` for the query and put back after it (one snapshot, so a
/// signed zone's signatures are the same on both paths).
fn general_only(snap: &mut Snapshot, pkt: &[u8], src: IpAddr, out: &mut Vec<u8>) -> Observed {
    let table = snap.fast.take().expect("the fast table");
    let o = handle(snap, pkt, src, Transport::Udp, out);
    assert!(snap.fast.set(table).is_ok(), "the table back");
    o
}

/// Asks every steered name of `snap` A, AAAA and CNAME from many clients with
/// each of `edns(net, len)`, with its fast table and with the table taken out
/// (one snapshot: a signed zone's signatures are its own): the same bytes and
/// counts, and again from what the thread remembers. Returns (queries compared,
/// answered again from memory, of those with an RRSIG).
fn compare_steered<const N: usize>(
    zones: &str,
    snap: &mut Snapshot,
    edns: impl Fn([u8; 3], u8) -> [Edns; N],
) -> (usize, usize, usize) {
    let steered = snap.fast.get().expect("the fast table").steered_len();
    assert!(steered > 0, "{zones}: no prebuilt steered answers");
    let names: Vec<Vec<u8>> = snap
        .zones
        .zones()
        .iter()
        .flat_map(|z| z.nodes.iter())
        .filter(|(_, n)| n.steer().is_some())
        .map(|(k, _)| k.to_vec())
        .collect();
    assert!(!names.is_empty());
    let clients: [([u8; 3], u8); 14] = [
        ([198, 18, 7], 24),
        ([198, 19, 3], 24),
        ([198, 19, 16], 24),
        ([198, 19, 17], 24),
        ([198, 19, 40], 24),
        ([192, 0, 2], 24),
        ([198, 51, 100], 24),
        ([203, 0, 113], 24),
        ([100, 64, 9], 24),
        ([100, 65, 1], 24),
        ([100, 66, 0], 24),
        ([100, 66, 1], 24),
        ([10, 1, 2], 24),
        ([0, 0, 0], 0),
    ];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (mut compared, mut remembered, mut signed) = (0, 0, 0);
    for n in &names {
        for (i, &(net, len)) in clients.iter().enumerate() {
            for t in [1u16, 28, 5] {
                for e in edns(net, len) {
                    let pkt = packet(&recase(n, (i % 3) as u8), t, e, 0x0100);
                    let src: IpAddr = [net[0], net[1], net[2], 9].into();
                    let y = general_only(snap, &pkt, src, &mut b);
                    let x = handle(snap, &pkt, src, Transport::Udp, &mut a);
                    assert_eq!(a, b, "{zones}: {n:?} type {t} from {src}: bytes differ");
                    assert_eq!(
                        counted(&x),
                        counted(&y),
                        "{zones}: {n:?} type {t} from {src}: counted differently"
                    );
                    compared += 1;
                    // Again: the fast path alone, from the remembered decision.
                    let mut name_buf = query::NameBuf::default();
                    let q = query::parse(&pkt, &mut name_buf).expect("query");
                    let table = snap.fast.get().expect("the fast table");
                    if let Fast::Done(z) = table.answer(snap, &q, src, &mut a) {
                        assert_eq!(a, b, "{zones}: {n:?} type {t} from {src}: again");
                        assert_eq!(
                            counted(&z),
                            counted(&y),
                            "{zones}: {n:?} type {t} from {src}: counted differently again"
                        );
                        remembered += 1;
                        if common::decode(&a)
                            .answer
                            .iter()
                            .any(|r| r.contains("RRSIG"))
                        {
                            signed += 1;
                        }
                    }
                }
            }
        }
    }
    eprintln!(
        "{zones}: {compared} steered queries compared, {remembered} remembered, {signed} signed"
    );
    (compared, remembered, signed)
}

/// The UDP loop asks for a batch's table lines ahead only when the table is too
/// big to stay in cache: not for the geo benchmark's zone (a handful of names),
/// for the static benchmark zone (1,211 names).
#[test]
fn only_tables_too_big_for_the_cache_are_warmed() {
    let small = snapshot("benches/geo/signpost", None);
    let f = small.fast.get().expect("a fast table");
    assert!(!f.is_empty());
    assert!(f.len() < 10, "{} names", f.len());
    assert!(!f.worth_warming(), "{} bytes", f.size());
    let big = snapshot("benches/data", None);
    let f = big.fast.get().expect("a fast table");
    assert!(f.len() > 1000, "{} names", f.len());
    assert!(f.worth_warming(), "{} bytes", f.size());
}

/// A zone big enough that the table is built by several threads, part by part,
/// and laid out as the parts come: every name's answer, and the answer below
/// it, is the general path's, byte for byte (a part laid out out of order
/// would give one name another's answers).
#[test]
fn a_table_built_in_parts_by_threads_answers_every_name() {
    let dir = tempdir().join("parts");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut zone = String::from(
        "$ORIGIN parts.test.\n$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n@ NS ns\nns A 192.0.2.1\n",
    );
    for i in 0..20_000u32 {
        match i % 4 {
            0 => zone.push_str(&format!(
                "n{i} A 10.{}.{}.{}\n",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            )),
            1 => zone.push_str(&format!("n{i} AAAA 2001:db8::{i:x}\n")),
            2 => zone.push_str(&format!("n{i} TXT \"t{i}\"\n")),
            _ => zone.push_str(&format!("x{i}.deep{} A 192.0.2.{}\n", i % 7, i % 250)),
        }
    }
    std::fs::write(dir.join("parts.test.zone"), zone).expect("zone file");
    let mut snap = snapshot(dir.to_str().expect("utf-8 path"), None);
    std::fs::remove_dir_all(&dir).ok();
    // Out of the snapshot: the general path would answer from it too.
    let table = snap.fast.take().expect("a fast table");
    let names: Vec<Vec<u8>> = snap.zones.zones()[0]
        .nodes
        .keys()
        .map(|k| k.to_vec())
        .collect();
    assert!(names.len() > 20_000, "{} names", names.len());
    assert_eq!(table.len(), names.len(), "every name has its entry");
    let src: IpAddr = [192, 0, 2, 1].into();
    let (mut general_out, mut fast_out) = (Vec::new(), Vec::new());
    for (i, n) in names.iter().enumerate() {
        for qname in [n.clone(), below(b"nope", n)] {
            let t = [1u16, 28, 16][i % 3];
            let pkt = packet(&qname, t, Edns::Plain(1232), 0);
            handle(&snap, &pkt, src, Transport::Udp, &mut general_out);
            let mut name_buf = query::NameBuf::default();
            let q = query::parse(&pkt, &mut name_buf).expect("a well-formed query");
            assert!(
                matches!(table.answer(&snap, &q, src, &mut fast_out), Fast::Done(_)),
                "{qname:?} type {t} answered fast"
            );
            assert_eq!(
                fast_out, general_out,
                "{qname:?} type {t}: the paths' bytes differ"
            );
        }
    }
}

/// `zone_text` as `origin`'s master file in a scratch folder, signed by the
/// server (`[dnssec]`, keys made there) with `extra` lines in the table.
fn signed_snapshot(tag: &str, origin: &str, zone_text: &str, extra: &str) -> (Snapshot, PathBuf) {
    let dir = tempdir().join(tag);
    std::fs::create_dir_all(dir.join("zones")).expect("temp dir");
    std::fs::write(dir.join(format!("zones/{origin}zone")), zone_text).expect("write zone");
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[dnssec]\nzones = [\"{origin}\"]\nkey_dir = \"{}\"\n{extra}",
            dir.join("keys").display()
        ),
    )
    .expect("write config");
    let snap = snapshot(
        dir.join("zones").to_str().expect("utf-8 path"),
        Some(config.to_str().expect("utf-8 path")),
    );
    assert!(!snap.signers.is_empty(), "the zone is signed");
    (snap, dir)
}

/// A zone with a signed and an unsigned delegation, a wildcard, an empty
/// non-terminal, a CNAME chain and names of one shape.
const SIGNED_ZONE: &str = "$ORIGIN sig.test.\n$TTL 300\n\
    @ IN SOA ns1.sig.test. hm.sig.test. 1 7200 3600 1209600 300\n\
    @ IN NS ns1\n@ IN MX 10 mx\nns1 IN A 192.0.2.1\nmx IN A 192.0.2.2\nmx IN AAAA 2001:db8::2\n\
    sub IN NS ns1.sub\nns1.sub IN A 192.0.2.6\n\
    sec IN NS ns.elsewhere.test.\n\
    sec IN DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
    *.w IN A 198.51.100.1\nx.w IN TXT \"x\"\na.b.ent IN A 192.0.2.9\n\
    www IN CNAME web\nweb IN CNAME mx\nh1 IN A 203.0.113.1\nh2 IN A 203.0.113.2\n\
    h3 IN TXT \"three\"\n";

/// DO=1 on a signed zone (compact denial, the default): the fast path answers
/// with the same bytes as the general path, signatures included, and answers
/// every name's own records that way (before, DO=1 left the table for the
/// general path: its prebuilt answers had no RRSIGs).
#[test]
fn signed_zone_do1_fast_and_general_agree() {
    let (snap, dir) = signed_snapshot("signed-compact", "sig.test.", SIGNED_ZONE, "");
    let c = compare_with(snap, &[Edns::Do, Edns::Do, Edns::Plain(1232), Edns::Do]);
    eprintln!(
        "signed zone, compact denial: {} of {} answered fast, {} with RRSIGs",
        c.fast, c.total, c.fast_signed
    );
    assert!(c.fast_signed > 0, "no DO=1 answer came from the fast path");
    let (snap, _) = signed_snapshot("signed-compact-2", "sig.test.", SIGNED_ZONE, "");
    // Every name's own A, AAAA, TXT, MX with DO=1: prebuilt, signed.
    let table = snap.fast.get().expect("fast table");
    let zone = &snap.zones.zones()[0];
    let src: IpAddr = [192, 0, 2, 1].into();
    let mut out = Vec::new();
    let mut asked = 0;
    for (name, node) in zone.nodes.iter() {
        let name = &name.to_vec();
        for set in &node.rrsets {
            // Not the referrals' names (a cut, glue below one).
            let cut = name.ends_with(b"\x03sub\x03sig\x04test\x00");
            if !matches!(set.rtype(), 1 | 15 | 16 | 28) || node.get(2).is_some() || cut {
                continue;
            }
            let pkt = packet(name, set.rtype(), Edns::Do, 0);
            let mut name_buf = query::NameBuf::default();
            let q = query::parse(&pkt, &mut name_buf).expect("query");
            let Fast::Done(_) = table.answer(&snap, &q, src, &mut out) else {
                panic!(
                    "{name:?} type {} DO=1 went to the general path",
                    set.rtype()
                );
            };
            let d = common::decode(&out);
            assert!(
                d.answer.iter().any(|r| r.contains("RRSIG")),
                "{name:?} type {}: no RRSIG in {:?}",
                set.rtype(),
                d.answer
            );
            asked += 1;
        }
    }
    assert!(asked >= 8, "{asked}");
    drop(snap);
    std::fs::remove_dir_all(&dir).ok();
}

/// A signed zone's table holds each name's own records once: the DO=0
/// answer's bytes begin the DO=1 answer's, which adds the RRSIG. Signing a
/// zone of a thousand names with an A record each adds to the table what
/// the RRSIGs take (each after a pointer to the question) and four bytes a
/// name, not a second header and copy of the A record (22 bytes a name);
/// every answer is still the general path's, with DO=1 too.
#[test]
fn a_signed_table_holds_each_names_records_once() {
    const NAMES: usize = 1000;
    let mut zone = String::from(
        "$ORIGIN pair.test.\n$TTL 300\n\
         @ IN SOA ns1.pair.test. hm.pair.test. 1 7200 3600 1209600 300\n\
         @ IN NS ns1\nns1 IN A 192.0.2.1\n",
    );
    for i in 0..NAMES {
        zone.push_str(&format!("h{i:04} IN A 203.0.{}.{}\n", i / 250, i % 250));
    }
    let (signed, dir) = signed_snapshot("pair-signed", "pair.test.", &zone, "");
    let plain_dir = dir.join("plain");
    std::fs::create_dir_all(&plain_dir).expect("temp dir");
    std::fs::write(plain_dir.join("pair.test.zone"), &zone).expect("write zone");
    let plain = snapshot(plain_dir.to_str().expect("utf-8 path"), None);
    // What the RRSIGs take in the answers: a 2-byte owner and the record.
    let z = &signed.zones.zones()[0];
    let sigs: usize = z
        .nodes
        .iter()
        .filter(|(k, _)| k.to_vec().starts_with(b"\x05h"))
        .filter_map(|(_, n)| n.get(1)?.rrsig(b"\x04pair\x04test\x00"))
        .flat_map(|r| {
            r.wire()
                .map(|w| 2 + w.head.len() + w.fixed.len() + w.signer.len() + w.signature.len())
        })
        .sum();
    let size = |s: &Snapshot| s.fast.get().expect("fast table").size();
    let added = size(&signed) as i64 - size(&plain) as i64;
    let per_name = (added - sigs as i64) as f64 / NAMES as f64;
    eprintln!(
        "signing added {added} bytes of table, {sigs} of them RRSIGs: {per_name:.1} a name besides"
    );
    assert!(
        per_name <= 6.0,
        "signing added {per_name:.1} bytes a name to the table besides the RRSIGs"
    );
    let c = compare_with(signed, &[Edns::Do, Edns::None, Edns::DoAt(512)]);
    // DO=1 comes round for a third of the names' A queries.
    assert!(
        c.fast_signed * 3 >= NAMES,
        "{} DO=1 answers from the table",
        c.fast_signed
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A signed zone's DO=1 answers that the table cannot hold (compact denial's
/// NXDOMAIN and NODATA, signed at the name asked; a wildcard's answer, signed at
/// the name asked): once the general path has written one over UDP, the thread
/// keeps it, and the fast path sends the same bytes to the next query for the
/// name and type, in any letter case, with any ID or ECS. A query with another
/// size limit, or under another snapshot, is not given it.
#[test]
fn signed_answers_the_table_lacks_are_kept_per_thread() {
    let (mut snap, dir) = signed_snapshot("signed-kept", "sig.test.", SIGNED_ZONE, "");
    let src: IpAddr = [192, 0, 2, 1].into();
    let cases: [(&[u8], u16); 3] = [
        (b"\x04nope\x03sig\x04test\x00", 1),
        (b"\x02h3\x03sig\x04test\x00", 1),
        (b"\x03foo\x01w\x03sig\x04test\x00", 1),
    ];
    let fast = |snap: &Snapshot, pkt: &[u8], out: &mut Vec<u8>| {
        let mut name_buf = query::NameBuf::default();
        let q = query::parse(pkt, &mut name_buf).expect("query");
        match snap
            .fast
            .get()
            .expect("fast table")
            .answer(snap, &q, src, out)
        {
            Fast::Done(o) => Some(o),
            _ => None,
        }
    };
    let (mut general, mut out) = (Vec::new(), Vec::new());
    for (name, t) in cases {
        let pkt = packet(name, t, Edns::Do, 0x0100);
        assert!(
            fast(&snap, &pkt, &mut out).is_none(),
            "{name:?}: held before asked"
        );
        // Over UDP with the table: the general path answers, and the thread keeps it.
        let g = handle(&snap, &pkt, src, Transport::Udp, &mut general);
        let d = common::decode(&general);
        assert!(
            d.authority
                .iter()
                .chain(&d.answer)
                .any(|r| r.contains("RRSIG")),
            "{name:?}: {d:?}"
        );
        for (i, e) in [Edns::Do, Edns::EcsAtDo([198, 51, 100], 24), Edns::Ecs6Do]
            .into_iter()
            .enumerate()
        {
            let mut pkt = packet(&recase(name, i as u8), t, e, [0, 0x0100, 0x0110][i]);
            pkt[1] = i as u8;
            let want = general_only(&mut snap, &pkt, src, &mut general);
            let got = fast(&snap, &pkt, &mut out).expect("answered from what was kept");
            assert_eq!(out, general, "{name:?} ({i}): bytes differ");
            assert_eq!(
                (got.rcode, got.zone_slot, got.wildcard_at, got.question_len),
                (
                    want.rcode,
                    want.zone_slot,
                    want.wildcard_at,
                    want.question_len
                ),
                "{name:?} ({i}): counted differently"
            );
            assert_eq!((g.rcode, g.zone_slot), (got.rcode, got.zone_slot));
        }
        // Another size limit: what fits may differ, so it is not given.
        let small = packet(name, t, Edns::DoAt(700), 0);
        assert!(
            fast(&snap, &small, &mut out).is_none(),
            "{name:?}: another limit"
        );
    }
    // The wildcard's answer counts as one (rate limiting): where its encloser starts.
    let pkt = packet(cases[2].0, 1, Edns::Do, 0);
    assert_eq!(
        fast(&snap, &pkt, &mut out).and_then(|o| o.wildcard_at),
        Some(4)
    );
    // Another snapshot (a reload, a re-signing): nothing kept from the old one.
    let (again, dir2) = signed_snapshot("signed-kept-2", "sig.test.", SIGNED_ZONE, "");
    for (name, t) in cases {
        let pkt = packet(name, t, Edns::Do, 0);
        assert!(
            fast(&again, &pkt, &mut out).is_none(),
            "{name:?}: kept across snapshots"
        );
    }
    drop((snap, again));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&dir2).ok();
}

/// A flood of names asked once (random names under a signed zone, each answered
/// by the general path and kept) does not push out the kept answers that are
/// being asked for: 20,000 names over the memory's 1,024 sets of eight put
/// about 20 in each, and the answers sent again in between stay.
#[test]
fn a_flood_of_names_asked_once_leaves_the_kept_answers_in_use() {
    let extra = "sign_rate = 10000000\n";
    let (snap, dir) = signed_snapshot("signed-flood", "sig.test.", SIGNED_ZONE, extra);
    let src: IpAddr = [192, 0, 2, 1].into();
    let table = snap.fast.get().expect("fast table");
    let (mut general, mut out) = (Vec::new(), Vec::new());
    let fast = |name: &[u8], out: &mut Vec<u8>| {
        let pkt = packet(name, 1, Edns::Do, 0);
        let mut name_buf = query::NameBuf::default();
        let q = query::parse(&pkt, &mut name_buf).expect("query");
        matches!(table.answer(&snap, &q, src, out), Fast::Done(_))
    };
    let in_use: Vec<Vec<u8>> = (0..8u8)
        .map(|i| below(format!("used{i}").as_bytes(), b"\x03sig\x04test\x00"))
        .collect();
    for n in &in_use {
        handle(
            &snap,
            &packet(n, 1, Edns::Do, 0),
            src,
            Transport::Udp,
            &mut general,
        );
        assert!(fast(n, &mut out), "{n:?}: not kept");
    }
    for i in 0..20_000u32 {
        let n = below(format!("flood{i}").as_bytes(), b"\x03sig\x04test\x00");
        handle(
            &snap,
            &packet(&n, 1, Edns::Do, 0),
            src,
            Transport::Udp,
            &mut general,
        );
        // The answers in use are asked now and then, as a resolver's are.
        if i % 2_000 == 1_999 {
            for n in &in_use {
                assert!(fast(n, &mut out), "{n:?}: pushed out after {i} names");
            }
        }
    }
    // The flood's own names were kept too, each in its set's unused ways.
    let last = below(b"flood19999", b"\x03sig\x04test\x00");
    assert!(fast(&last, &mut out), "the newest name is not kept");
    drop(snap);
    std::fs::remove_dir_all(&dir).ok();
}

/// With an NSEC chain: NODATA (the name's own NSEC) and referrals (DS, or the
/// NSEC that proves there is none) come from the fast path too, the same
/// bytes as the general path's.
#[test]
fn nsec_chain_zone_do1_fast_and_general_agree() {
    let (snap, dir) = signed_snapshot(
        "signed-nsec",
        "sig.test.",
        SIGNED_ZONE,
        "denial = \"nsec\"\n",
    );
    let table_src: IpAddr = [192, 0, 2, 1].into();
    let mut out = Vec::new();
    {
        let table = snap.fast.get().expect("fast table");
        let cases: [(&[u8], u16, &str); 4] = [
            (b"\x02h1\x03sig\x04test\x00", 16, "NSEC"),
            (b"\x03ent\x03sig\x04test\x00", 1, "NSEC"),
            (b"\x01x\x03sec\x03sig\x04test\x00", 1, "DS"),
            (b"\x01x\x03sub\x03sig\x04test\x00", 1, "NS"),
        ];
        for (name, t, want) in cases {
            let pkt = packet(name, t, Edns::Do, 0);
            let mut name_buf = query::NameBuf::default();
            let q = query::parse(&pkt, &mut name_buf).expect("query");
            let Fast::Done(_) = table.answer(&snap, &q, table_src, &mut out) else {
                panic!("{name:?} type {t} DO=1 went to the general path");
            };
            let d = common::decode(&out);
            assert!(
                d.authority.iter().any(|r| r.contains(want))
                    && d.authority.iter().any(|r| r.contains("RRSIG")),
                "{name:?} type {t}: {:?}",
                d.authority
            );
        }
    }
    let c = compare_with(snap, &[Edns::Do, Edns::Do, Edns::None]);
    eprintln!(
        "signed zone, NSEC chain: {} of {} answered fast, {} with RRSIGs",
        c.fast, c.total, c.fast_signed
    );
    assert!(c.fast_signed > 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Signatures are made again by a reload (before they expire, or with a new
/// validity): the new snapshot's fast table is built from its signatures,
/// so its DO=1 answers carry the new RRSIGs, never the old ones.
#[test]
fn resigned_zone_fast_answers_carry_the_new_signatures() {
    let rrsig = |validity: &str, tag: &str| {
        let extra = format!("validity = \"{validity}\"\n");
        let (snap, dir) = signed_snapshot(tag, "sig.test.", SIGNED_ZONE, &extra);
        let pkt = packet(b"\x02h1\x03sig\x04test\x00", 1, Edns::Do, 0);
        let src: IpAddr = [192, 0, 2, 1].into();
        let mut fast = Vec::new();
        let mut name_buf = query::NameBuf::default();
        let q = query::parse(&pkt, &mut name_buf).expect("query");
        let table = snap.fast.get().expect("fast table");
        assert!(matches!(
            table.answer(&snap, &q, src, &mut fast),
            Fast::Done(_)
        ));
        let mut general = Vec::new();
        handle(&snap, &pkt, src, Transport::Tcp, &mut general);
        assert_eq!(fast, general, "the fast answer is the general path's");
        let sig: Vec<String> = common::decode(&fast)
            .answer
            .into_iter()
            .filter(|r| r.contains("RRSIG"))
            .collect();
        drop(snap);
        std::fs::remove_dir_all(&dir).ok();
        sig
    };
    let first = rrsig("10d", "resign-1");
    let again = rrsig("20d", "resign-2");
    assert_eq!((first.len(), again.len()), (1, 1));
    assert_ne!(
        first, again,
        "the second snapshot's answer kept the old RRSIG"
    );
}
