//! Tests against the fixtures in tests/fixtures/geo (see the README there
//! for every network and value) and the bundled geo-whois-asn-country
//! database in geo/.

use std::net::IpAddr;
use std::path::Path;

use super::*;

const CITY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geo/city.mmdb");
const FLAT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/geo/country-flat.mmdb"
);
const FLAT_V4: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/geo/country-flat-ipv4.mmdb"
);
const ASN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/geo/asn.mmdb");
const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/geo/geo-whois-asn-country.mmdb"
);

fn open(path: &str) -> Locator {
    Locator::open(Path::new(path), None).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cc(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    Some([b[0], b[1]])
}

#[test]
fn locator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Locator>();
    check::<cidr::CidrTable<String>>();
}

#[test]
fn city_metadata_and_schema() {
    let loc = open(CITY);
    assert_eq!(loc.database_type(), "GeoIP2-City");
    assert_eq!(loc.build_epoch(), 1_700_000_000);
    assert_eq!(loc.schema(), &Schema::GeoIp2);
    loc.verify().unwrap();
}

#[test]
fn city_ipv4_full_record() {
    let loc = open(CITY);
    assert_eq!(
        loc.lookup(ip("198.18.1.1")),
        Location {
            continent: cc("NA"),
            country: cc("US"),
            subdivision: Some("US-VA".into()),
            coords: Some((39.0438, -77.4874)),
            asn: None,
            prefix_len: 16,
        }
    );
    let ca = loc.lookup(ip("198.19.15.255"));
    assert_eq!(ca.subdivision.as_deref(), Some("US-CA"));
    assert_eq!(ca.coords, Some((37.3394, -121.895)));
    assert_eq!(ca.prefix_len, 20);
}

#[test]
fn city_ipv4_countries_and_prefixes() {
    let loc = open(CITY);
    // (address, country, continent, subdivision, prefix_len)
    let cases = [
        ("198.19.16.1", "IE", "EU", Some("IE-L"), 24),
        ("198.19.17.200", "DE", "EU", Some("DE-HE"), 24),
        ("198.19.40.1", "FR", "EU", Some("FR-IDF"), 20),
        ("192.0.2.1", "JP", "AS", Some("JP-13"), 24),
        ("198.51.100.99", "AU", "OC", Some("AU-NSW"), 24),
        ("203.0.113.7", "BR", "SA", Some("BR-SP"), 24),
        ("100.64.200.1", "ZA", "AF", Some("ZA-GP"), 16),
        ("100.65.15.1", "CN", "AS", Some("CN-BJ"), 20),
    ];
    for (addr, country, continent, sub, len) in cases {
        let l = loc.lookup(ip(addr));
        assert_eq!(l.country, cc(country), "{addr}");
        assert_eq!(l.continent, cc(continent), "{addr}");
        assert_eq!(l.subdivision.as_deref(), sub, "{addr}");
        assert_eq!(l.prefix_len, len, "{addr}");
        assert!(l.coords.is_some(), "{addr}");
    }
}

#[test]
fn city_ipv6_and_prefixes() {
    let loc = open(CITY);
    let cases = [
        ("3fff:1:abcd::1", "US", Some("US-VA"), 32),
        ("3fff:2::1", "US", Some("US-CA"), 48),
        ("2001:db8:1:ffff::1", "IE", Some("IE-L"), 48),
        ("2001:db8:2::5", "DE", Some("DE-HE"), 48),
        ("2001:db8:3::5", "FR", Some("FR-IDF"), 48),
        ("3fff:3::1", "JP", Some("JP-13"), 32),
        ("3fff:4::1", "AU", Some("AU-NSW"), 32),
        ("2001:db8:4::1", "BR", Some("BR-SP"), 48),
        ("2001:db8:5::1", "ZA", Some("ZA-GP"), 48),
        ("3fff:5::1", "CN", Some("CN-BJ"), 32),
    ];
    for (addr, country, sub, len) in cases {
        let l = loc.lookup(ip(addr));
        assert_eq!(l.country, cc(country), "{addr}");
        assert_eq!(l.subdivision.as_deref(), sub, "{addr}");
        assert_eq!(l.prefix_len, len, "{addr}");
    }
    let jp = loc.lookup(ip("3fff:3::1"));
    assert_eq!(jp.coords, Some((35.6762, 139.6503)));
}

#[test]
fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    let loc = open(CITY);
    let v4 = loc.lookup(ip("198.19.17.5"));
    let mapped = loc.lookup(ip("::ffff:198.19.17.5"));
    assert_eq!(mapped, v4);
    assert_eq!(mapped.prefix_len, 24);
    assert_eq!(mapped.country, cc("DE"));
}

#[test]
fn aliases_in_the_ipv6_tree_report_ipv6_prefixes() {
    // 6to4 (2002::/16) is aliased to the IPv4 data in MaxMind-style trees;
    // the address is IPv6, so the prefix is in IPv6 terms: 16 + 24.
    let loc = open(CITY);
    let l = loc.lookup(ip("2002:c613:1001::1")); // 198.19.16.1
    assert_eq!(l.country, cc("IE"));
    assert_eq!(l.prefix_len, 40);
    // IPv4-compatible ::a.b.c.d is plain IPv6 too.
    let l = loc.lookup(ip("::198.19.16.1"));
    assert_eq!(l.country, cc("IE"));
    assert_eq!(l.prefix_len, 120);
}

#[test]
fn centroid_fallback_without_location() {
    let loc = open(CITY);
    for addr in ["100.66.0.9", "2001:db8:6::1"] {
        let l = loc.lookup(ip(addr));
        assert_eq!(l.country, cc("CH"), "{addr}");
        assert_eq!(l.continent, cc("EU"), "{addr}");
        assert_eq!(l.subdivision, None, "{addr}");
        assert_eq!(l.coords, country_centroid(*b"CH"), "{addr}");
        assert!(l.coords.is_some());
    }
    assert_eq!(loc.lookup(ip("100.66.0.9")).prefix_len, 24);
    assert_eq!(loc.lookup(ip("2001:db8:6::1")).prefix_len, 48);
}

#[test]
fn registered_country_only() {
    let loc = open(CITY);
    let l = loc.lookup(ip("100.66.1.1"));
    assert_eq!(l.country, cc("SE"));
    assert_eq!(l.continent, cc("EU")); // from the built-in table
    assert_eq!(l.coords, country_centroid(*b"SE"));
    assert_eq!(l.prefix_len, 24);
}

#[test]
fn misses() {
    let loc = open(CITY);
    // 8.8.8.8 is 00001000...: the fixture has nothing under 0.0.0.0/2.
    assert_eq!(
        loc.lookup(ip("8.8.8.8")),
        Location {
            prefix_len: 2,
            ..Location::default()
        }
    );
    // Next to the US-CA /20 and FR /20 in 198.19.0.0/16: an empty /20.
    let l = loc.lookup(ip("198.19.48.1"));
    assert_eq!(l.country, None);
    assert_eq!(l.prefix_len, 20);
    let l = loc.lookup(ip("2001:db8:ffff::1"));
    assert_eq!(l.country, None);
    assert!(l.prefix_len > 32 && l.prefix_len <= 48, "{}", l.prefix_len);
    assert_eq!(loc.decode_errors(), 0);
}

#[test]
fn flat_schema() {
    let loc = open(FLAT);
    assert_eq!(loc.database_type(), "country ipvAll");
    assert_eq!(loc.schema(), &Schema::FlatCountryCode);
    let l = loc.lookup(ip("192.0.2.10"));
    assert_eq!(
        l,
        Location {
            continent: cc("EU"),
            country: cc("DE"),
            subdivision: None,
            coords: country_centroid(*b"DE"),
            asn: None,
            prefix_len: 24,
        }
    );
    assert_eq!(loc.lookup(ip("198.18.7.7")).country, cc("US"));
    assert_eq!(loc.lookup(ip("198.18.7.7")).prefix_len, 16);
    assert_eq!(loc.lookup(ip("198.51.100.1")).continent, cc("AS"));
    assert_eq!(loc.lookup(ip("203.0.113.1")).country, cc("BR"));
    let v6 = loc.lookup(ip("2001:db8:1234::1"));
    assert_eq!((v6.country, v6.prefix_len), (cc("FR"), 32));
    assert_eq!(loc.lookup(ip("3fff:4::9")).country, cc("AU"));
    // This file has no ::ffff:0:0/96 alias; the mapped form still works.
    let mapped = loc.lookup(ip("::ffff:192.0.2.10"));
    assert_eq!((mapped.country, mapped.prefix_len), (cc("DE"), 24));
    assert_eq!(loc.lookup(ip("10.0.0.1")).country, None);
}

#[test]
fn ipv4_only_database() {
    let loc = open(FLAT_V4);
    assert_eq!(loc.database_type(), "country ipv4");
    assert_eq!(loc.schema(), &Schema::FlatCountryCode);
    let l = loc.lookup(ip("198.51.100.1"));
    assert_eq!((l.country, l.prefix_len), (cc("JP"), 24));
    assert_eq!(loc.lookup(ip("::ffff:198.51.100.1")), l);
    assert_eq!(loc.lookup(ip("2001:db8::1")), Location::default());
    assert_eq!(loc.lookup(ip("::1")), Location::default());
    assert_eq!(loc.decode_errors(), 0);
}

#[test]
fn asn_database() {
    let loc = open(ASN);
    assert_eq!(loc.schema(), &Schema::GeoIp2);
    let l = loc.lookup(ip("198.18.3.4"));
    assert_eq!(
        l,
        Location {
            asn: Some(64496),
            prefix_len: 16,
            ..Location::default()
        }
    );
    assert_eq!(loc.lookup(ip("2001:db8::1")).asn, Some(64511));
    assert_eq!(loc.lookup(ip("2001:db8::1")).prefix_len, 32);
}

#[test]
fn custom_field_paths() {
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let paths = FieldPaths {
        country: path(&["registered_country", "iso_code"]),
        continent: None,
        subdivision: Some(path(&["subdivisions", "0", "iso_code"])),
        latitude: Some(path(&["location", "latitude"])),
        longitude: Some(path(&["location", "longitude"])),
        asn: Some(path(&["autonomous_system_number"])),
    };
    let loc = Locator::open(Path::new(CITY), Some(paths.clone())).unwrap();
    assert_eq!(loc.schema(), &Schema::Custom(paths));
    let l = loc.lookup(ip("198.19.16.1"));
    assert_eq!(
        l,
        Location {
            continent: cc("EU"), // from the table: no continent path given
            country: cc("IE"),
            subdivision: Some("IE-L".into()),
            coords: Some((53.3498, -6.2603)),
            asn: None,
            prefix_len: 24,
        }
    );
    assert_eq!(loc.lookup(ip("100.66.1.1")).country, cc("SE"));
    assert_eq!(loc.lookup(ip("8.8.8.8")).country, None);
    // A path through the wrong kind of value fails that record, counted.
    let bad = FieldPaths {
        country: path(&["country", "0"]),
        ..FieldPaths::default()
    };
    let loc = Locator::open(Path::new(CITY), Some(bad)).unwrap();
    assert_eq!(loc.lookup(ip("198.19.16.1")).country, None);
    assert_eq!(loc.lookup(ip("198.19.16.1")).prefix_len, 24);
    assert_eq!(loc.decode_errors(), 2);
}

#[test]
fn invalid_field_paths() {
    let p = |s: &str| vec![s.to_string()];
    for (paths, needle) in [
        (FieldPaths::default(), "empty"),
        (
            FieldPaths {
                country: vec!["a".into(), String::new()],
                ..FieldPaths::default()
            },
            "empty key",
        ),
        (
            FieldPaths {
                country: vec!["k".into(); 9],
                ..FieldPaths::default()
            },
            "longer than 8",
        ),
        (
            FieldPaths {
                country: p("cc"),
                latitude: Some(p("lat")),
                ..FieldPaths::default()
            },
            "together",
        ),
    ] {
        let err = Locator::open(Path::new(CITY), Some(paths)).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn open_errors() {
    let err = Locator::open(Path::new("/nonexistent/geo.mmdb"), None).unwrap_err();
    assert!(matches!(err, GeoError::Io { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/geo.mmdb"));
    let err = Locator::from_bytes(b"not a database".to_vec(), None).unwrap_err();
    assert!(matches!(err, GeoError::Database(_)), "{err}");
    // A truncated database is refused or still answers without panicking.
    let bytes = std::fs::read(CITY).unwrap();
    for cut in [16, bytes.len() / 2, bytes.len() - 8] {
        if let Ok(loc) = Locator::from_bytes(bytes[..cut].to_vec(), None) {
            let _ = loc.lookup(ip("198.18.1.1"));
        }
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    // Flip bytes across the search tree and data section; every lookup must
    // still return (possibly with no data).
    let original = std::fs::read(CITY).unwrap();
    let probes = [
        "198.18.1.1",
        "198.19.16.1",
        "100.66.0.9",
        "2001:db8:6::1",
        "3fff:2::1",
        "8.8.8.8",
    ];
    let meta_start = original
        .windows(14)
        .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
        .unwrap();
    for pos in (0..meta_start).step_by(7) {
        let mut bytes = original.clone();
        bytes[pos] ^= 0xa5;
        if let Ok(loc) = Locator::from_bytes(bytes, None) {
            for p in probes {
                let _ = loc.lookup(ip(p));
            }
        }
    }
}

#[test]
fn unknown_layout_is_detected_from_records() {
    assert_eq!(schema_for_type("GeoLite2-City"), Some(Schema::GeoIp2));
    assert_eq!(schema_for_type("DBIP-City-Lite"), Some(Schema::GeoIp2));
    assert_eq!(schema_for_type("GeoIP2-Country"), Some(Schema::GeoIp2));
    assert_eq!(
        schema_for_type("country ipv6"),
        Some(Schema::FlatCountryCode)
    );
    assert_eq!(schema_for_type("Some-Vendor-DB"), None);
}

#[test]
fn normalisation() {
    fn f(country: &str) -> Fields<'_> {
        Fields {
            country: Some(country),
            ..Fields::default()
        }
    }
    assert_eq!(f("de").into_location(8).country, cc("DE"));
    let eu = f("EU").into_location(8);
    assert_eq!(
        (eu.country, eu.continent, eu.coords),
        (None, cc("EU"), None)
    );
    assert_eq!(f("AP").into_location(8).continent, cc("AS"));
    assert_eq!(f("ZZ").into_location(8).country, None);
    assert_eq!(f("XX").into_location(8).country, None);
    assert_eq!(f("QZ").into_location(8).country, None);
    assert_eq!(f("XK").into_location(8).continent, cc("EU"));
    assert_eq!(f("USA").into_location(8).country, None);
    assert_eq!(f("--").into_location(8).country, None);
    let null_island = Fields {
        country: Some("GH"),
        latitude: Some(0.0),
        longitude: Some(0.0),
        ..Fields::default()
    }
    .into_location(8);
    assert_eq!(null_island.coords, country_centroid(*b"GH"));
    let out_of_range = Fields {
        latitude: Some(91.0),
        longitude: Some(0.0),
        ..Fields::default()
    }
    .into_location(8);
    assert_eq!(out_of_range.coords, None);
    assert_eq!(subdivision_code(*b"US", "ca").as_deref(), Some("US-CA"));
    assert_eq!(subdivision_code(*b"US", "US-CA").as_deref(), Some("US-CA"));
    assert_eq!(subdivision_code(*b"FR", "IDF").as_deref(), Some("FR-IDF"));
    assert_eq!(subdivision_code(*b"US", "California"), None);
    assert_eq!(subdivision_code(*b"US", "DE-BE"), None);
    assert_eq!(subdivision_code(*b"US", ""), None);
    assert_eq!(subdivision_code(*b"US", "US-"), None);
}

#[test]
fn leaf_conversions() {
    use record::Leaf;
    assert_eq!(Leaf::Str("AS64496").as_u32(), Some(64496));
    assert_eq!(Leaf::Str("64496").as_u32(), Some(64496));
    assert_eq!(Leaf::Str("AS-1").as_u32(), None);
    assert_eq!(Leaf::Uint(u64::MAX).as_u32(), None);
    assert_eq!(Leaf::Int(-1).as_u32(), None);
    assert_eq!(Leaf::Str(" 12.5 ").as_f64(), Some(12.5));
    assert_eq!(Leaf::Uint(3).as_f64(), Some(3.0));
    assert_eq!(Leaf::Other.as_str(), None);
}

#[test]
fn bundled_database_finds_public_resolvers() {
    let loc = open(BUNDLED);
    assert_eq!(loc.schema(), &Schema::FlatCountryCode);
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "9.9.9.9",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
    ] {
        let l = loc.lookup(ip(addr));
        let country = l.country.unwrap_or_else(|| panic!("{addr}: no country"));
        assert_eq!(l.continent, country_continent(country), "{addr}");
        assert_eq!(l.coords, country_centroid(country), "{addr}");
        assert!(l.prefix_len > 0, "{addr}");
    }
    // The file has no ::ffff:0:0/96 alias; the mapped form must still work.
    assert_eq!(loc.lookup(ip("::ffff:8.8.8.8")), loc.lookup(ip("8.8.8.8")));
    assert_eq!(loc.decode_errors(), 0);
}

/// Rough per-lookup cost. Run with
/// `cargo test --release --lib geo::tests::bench_lookup -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_lookup() {
    use std::hint::black_box;
    use std::time::Instant;
    for (name, path) in [("city fixture", CITY), ("bundled country", BUNDLED)] {
        let loc = open(path);
        let addrs: Vec<IpAddr> = (0u32..4096)
            .map(|i| {
                let x = i.wrapping_mul(2_654_435_761);
                match i % 4 {
                    0 => IpAddr::from([198, 18 + (x & 1) as u8, (x >> 8) as u8, x as u8]),
                    1 => IpAddr::from([(x >> 24) as u8, (x >> 16) as u8, (x >> 8) as u8, 1]),
                    2 => IpAddr::from([0x2001, 0xdb8, (x & 7) as u16, 0, 0, 0, 0, 1]),
                    _ => IpAddr::from([
                        0x2a00 + (x & 0xff) as u16,
                        (x >> 16) as u16,
                        0,
                        0,
                        0,
                        0,
                        0,
                        1,
                    ]),
                }
            })
            .collect();
        let rounds = 200;
        let start = Instant::now();
        let mut found = 0usize;
        for _ in 0..rounds {
            for &a in &addrs {
                found += usize::from(black_box(loc.lookup(black_box(a))).country.is_some());
            }
        }
        let per = start.elapsed().as_nanos() as f64 / (rounds * addrs.len()) as f64;
        println!("{name}: {per:.0} ns/lookup ({found} with a country)");
    }
}

#[test]
fn decoded_records_are_cached_per_database_without_their_prefix() {
    // The same lookups twice (the second from the per-thread cache), across two
    // databases opened in turn: every answer stays the same, and each keeps the
    // prefix of its own network.
    let city = open(CITY);
    let flat = open(FLAT);
    let addrs = [
        "198.19.16.1",
        "198.19.40.1",
        "100.64.200.1",
        "192.0.2.1",
        "2001:db8::1",
    ];
    let first: Vec<_> = addrs
        .iter()
        .map(|a| (city.lookup(ip(a)), flat.lookup(ip(a))))
        .collect();
    for (a, want) in addrs.iter().zip(&first) {
        assert_eq!(&(city.lookup(ip(a)), flat.lookup(ip(a))), want, "{a}");
    }
    assert_eq!(first[0].0.prefix_len, 24);
    assert_eq!(first[1].0.prefix_len, 20);
    // The same record offset in two databases is two entries.
    let again = open(CITY);
    assert_eq!(again.lookup(ip("198.19.16.1")), first[0].0);
}
