//! `signpost check`: the real loader in dry-run mode. Broken folders exit 1 with every
//! error as file:line: message; good ones exit 0.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "signpost-check-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        TempDir(p)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("check")
        .arg("--zones")
        .arg(dir)
        .output()
        .expect("run signpost check");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that stderr has an error at `file:line` whose message contains `needle`.
fn assert_error(stderr: &str, file: &str, line: usize, needle: &str) {
    let prefix = format!("{file}:{line}: ");
    let found = stderr
        .lines()
        .any(|l| l.contains(&prefix) && l.contains(needle));
    assert!(
        found,
        "expected an error at {prefix} containing {needle:?}; got:\n{stderr}"
    );
}

const SOA: &str = "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n";

#[test]
fn example_zones_are_valid() {
    let (code, out, err) = check(&common::repo_path("zones"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: zone example.com."), "{out}");
    assert!(out.contains("ok: zone geo.example.com."), "{out}");
}

#[test]
fn every_zone_error_reported_at_once_with_lines() {
    let d = TempDir::new("zone");
    let f = d.write(
        "bad.test.zone",
        &format!(
            "$ORIGIN bad.test.\n$TTL 300\n{SOA}\
             @ IN NS ns1\n\
             www IN A 192.0.2.1\n\
             www IN CNAME elsewhere.example.\n\
             x.other.test. IN A 192.0.2.2\n\
             sub IN NS ns.sub\n\
             two IN CNAME a.example.\n\
             two IN CNAME b.example.\n"
        ),
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(
        &err,
        &file,
        4,
        "NS ns1.bad.test. at bad.test. is inside the zone but has no A or AAAA",
    );
    assert_error(
        &err,
        &file,
        6,
        "CNAME at www.bad.test. beside other data (A)",
    );
    assert_error(
        &err,
        &file,
        7,
        "x.other.test. A is outside the zone bad.test.",
    );
    assert_error(
        &err,
        &file,
        8,
        "NS ns.sub.bad.test. at sub.bad.test. is inside the zone but has no A or AAAA",
    );
    assert_error(&err, &file, 9, "2 CNAME records at two.bad.test.");
    assert!(err.contains("5 error(s)"), "{err}");
}

#[test]
fn missing_soa_and_apex_ns() {
    let d = TempDir::new("nosoa");
    let f = d.write(
        "empty.test.zone",
        "$ORIGIN empty.test.\n$TTL 60\nwww IN A 192.0.2.1\n",
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1);
    assert_error(&err, &file, 1, "has no SOA record");
    assert_error(&err, &file, 1, "has no NS records at its apex");
}

#[test]
fn syntax_errors_and_bad_ttls_name_their_line() {
    let d = TempDir::new("syntax");
    let f = d.write(
        "syn.test.zone",
        &format!(
            "$ORIGIN syn.test.\n$TTL 300\n{SOA}@ IN NS ns1\nns1 IN A 192.0.2.1\n\
             www IN A 300.1.1.1\n\
             big 2147483648 IN A 192.0.2.3\n\
             ok IN A 192.0.2.4\n\
             bad IN BOGUS 1\n"
        ),
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(&err, &file, 6, "300.1.1.1");
    assert_error(&err, &file, 7, "2147483647");
    assert_error(&err, &file, 9, "BOGUS");
    assert!(
        !err.contains(&format!("{file}:8:")),
        "a good line was blamed:\n{err}"
    );
}

#[test]
fn duplicate_zone_across_files() {
    let d = TempDir::new("dup");
    d.write(
        "dup.test.zone",
        &format!("$ORIGIN dup.test.\n$TTL 60\n{SOA}@ IN NS ns.example.\n"),
    );
    let p = d.write(
        "dup.toml",
        "origin = \"dup.test.\"\nrecords = \"\"\"\n@ NS ns.example.\n\"\"\"\n[soa]\nprimary = \"ns.example.\"\ncontact = \"h@example.com\"\n",
    );
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1);
    assert!(
        err.contains("zone dup.test. is already defined by"),
        "{err}"
    );
    assert!(
        err.contains(&p.display().to_string()) || err.contains("dup.test.zone"),
        "{err}"
    );
}

#[test]
fn policy_file_errors_point_into_the_toml() {
    let d = TempDir::new("policy");
    let f = d.write(
        "p.toml",
        "origin = \"p.test.\"\nttl = 60\n\nrecords = \"\"\"\n@   NS  ns1\nns1 A   192.0.2.1\nwww A   not-an-address\n\"\"\"\n\n[soa]\nprimary = \"ns1.p.test.\"\ncontact = \"h@p.test\"\n",
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    // Line 7 of the TOML file is the third line of the records string.
    assert_error(&err, &file, 7, "not-an-address");
}

#[test]
fn policy_file_unknown_key_and_relative_origin() {
    let d = TempDir::new("keys");
    let f = d.write("k.toml", "origin = \"k.test.\"\n\nzonfile = \"x\"\n");
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1);
    assert_error(&err, &f.display().to_string(), 3, "unknown field `zonfile`");

    let d2 = TempDir::new("rel");
    let f2 = d2.write("r.toml", "origin = \"r.test\"\n");
    let (code, _, err) = check(&d2.0);
    assert_eq!(code, 1);
    assert_error(&err, &f2.display().to_string(), 1, "must be absolute");
}

#[test]
fn include_keeps_the_parent_origin() {
    // RFC 1035 §5.1: a $ORIGIN inside an included file ends with that file.
    let d = TempDir::new("include");
    d.write(
        "part.inc",
        "$ORIGIN elsewhere.inc.test.\nhost IN A 192.0.2.7\n",
    );
    d.write(
        "inc.test.zone",
        &format!(
            "$ORIGIN inc.test.\n$TTL 60\n{SOA}@ IN NS ns1\n$INCLUDE part.inc\nns1 IN A 192.0.2.1\n"
        ),
    );
    let (code, out, err) = check(&d.0);
    // If the origin leaked, ns1 would be ns1.elsewhere.inc.test. and the apex NS
    // would have no address: an error.
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: zone inc.test."), "{out}");
}

#[test]
fn steering_errors_name_their_line_and_what_would_be_valid() {
    let d = TempDir::new("steer");
    let f = d.write(
        "s.toml",
        r#"origin = "s.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
www A 192.0.2.9
"""
[soa]
primary = "ns1.s.test."
contact = "h@s.test"

[regions]
us-east = { location = [38.9, -77.4] }
eu-west = { location = [53.3, -6.3], jurisdiction = "EU" }

[names.a]
strategy = "latency"
endpoints.us-west = { a = ["192.0.2.10"] }

[names.b]
strategy = "fastest"
endpoints.us-east = { a = ["192.0.2.11"] }

[names.c]
strategy = "latency"
fence = ["EU"]
endpoints.eu-west = { a = ["192.0.2.12"] }

[names.d]
strategy = "geo"
endpoints.us-east = { a = ["192.0.2.13"] }
[names.d.geo]
country = { DE = ["us-east"] }

[names.e]
strategy = "failover"
endpoints.us-east = { a = ["2001:db8::1"] }

[names.www]
strategy = "failover"
endpoints.us-east = { a = ["192.0.2.14"] }
"#,
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(&err, &file, 17, "names.a.endpoints.us-west: no such region; declare it under [regions] (known: eu-west, us-east)");
    assert_error(
        &err,
        &file,
        19,
        "names.b.strategy = \"fastest\"; use one of geo, latency, failover, weighted, all",
    );
    assert_error(
        &err,
        &file,
        23,
        "names.c: a fence needs fence_fallback = \"servfail\" or \"nodata\"",
    );
    assert_error(
        &err,
        &file,
        28,
        "names.d.geo: a `default = [REGION, ...]` rule is required",
    );
    assert_error(
        &err,
        &file,
        36,
        "names.e.endpoints.us-east: a: \"2001:db8::1\" is not an IPv4 address",
    );
    assert!(err.contains("5 error(s)"), "{err}");
}

#[test]
fn steered_name_with_static_addresses_is_rejected() {
    let d = TempDir::new("clash");
    let f = d.write(
        "c.toml",
        "origin = \"c.test.\"\nrecords = \"\"\"\n@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.9\n\"\"\"\n[soa]\nprimary = \"ns1.c.test.\"\ncontact = \"h@c.test\"\n[regions]\nus = {}\n[names.www]\nstrategy = \"failover\"\nendpoints.us = { a = [\"192.0.2.14\"] }\n",
    );
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(
        &err,
        &f.display().to_string(),
        12,
        "www.c.test. is steered and also has static A records",
    );
}

#[test]
fn include_of_a_device_is_an_error_not_a_hang() {
    let d = TempDir::new("dev");
    let f = d.write(
        "dev.test.zone",
        &format!("$ORIGIN dev.test.\n$TTL 60\n{SOA}@ IN NS ns.example.\n$INCLUDE /dev/zero\n"),
    );
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1);
    assert_error(&err, &f.display().to_string(), 5, "not a regular file");
}

#[test]
fn probe_requests_that_cannot_be_sent_are_load_errors() {
    let d = TempDir::new("probe-requests");
    let f = d.write(
        "p.toml",
        r#"origin = "p.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.p.test."
contact = "h@p.test"

[checks.web]
http = { port = 80, path = "/a b" }

[checks.name]
dns = { name = "a..p.test." }

[checks.idn]
dns = { name = "bücher.p.test.", type = "A" }
"#,
    );
    let file = f.display().to_string();
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(&err, &file, 10, "checks.web: bad check: path \"/a b\"");
    assert_error(
        &err,
        &file,
        13,
        "checks.name: bad check: query name \"a..p.test.\"",
    );
    assert!(err.contains("2 error(s)"), "the IDN name is fine: {err}");
}

/// An endpoint's addresses become one RRset of the answer, which holds at
/// most 65,535 records: more distinct addresses are an error at the
/// endpoint's line, not a set cut short; repeats do not count.
#[test]
fn an_endpoint_with_more_addresses_than_a_set_holds_is_refused_at_its_line() {
    let d = TempDir::new("addrs");
    let addrs = |n: u32, repeat: bool| {
        (0..n)
            .map(|i| {
                let i = if repeat && i == n - 1 { 0 } else { i };
                let [_, a, b, c] = i.to_be_bytes();
                format!("\"10.{a}.{b}.{c}\"")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let zone = |list: &str| {
        format!(
            "origin = \"many.test.\"\nrecords = \"\"\"\n@ NS ns1\nns1 A 192.0.2.1\n\"\"\"\n\
             [soa]\nprimary = \"ns1.many.test.\"\ncontact = \"h@many.test\"\n\
             [regions]\nus = {{}}\n[names.www]\nstrategy = \"failover\"\n\
             endpoints.us = {{ a = [{list}] }}\n"
        )
    };
    let f = d.write("many.toml", &zone(&addrs(65_536, false)));
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 1, "{err}");
    assert_error(
        &err,
        &f.display().to_string(),
        13,
        "a: 65536 addresses; an answer's set holds at most 65535",
    );
    d.write("many.toml", &zone(&addrs(65_536, true)));
    let (code, _, err) = check(&d.0);
    assert_eq!(code, 0, "65,535 distinct addresses and a repeat: {err}");
}
