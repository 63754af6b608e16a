//! Hot reload over real files and sockets: good edits go live, broken ones are
//! rejected while the old answers keep coming, renames and deletions are seen, the
//! geo database can be swapped, SIGHUP reloads.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ask_udp, EdnsSpec, QuerySpec, Server};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("signpost-reload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("zones")).expect("mkdir");
        TempDir(p)
    }
    fn zones(&self) -> PathBuf {
        self.0.join("zones")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file the way editors and deploy tools do: a temp file, then a rename.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn zone(addr: &str) -> String {
    format!(
        "$ORIGIN r.test.\n$TTL 60\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A {addr}\n"
    )
}

fn www(s: &Server) -> Vec<String> {
    ask_udp(s.addr, &QuerySpec::new("www.r.test.", 1)).answer
}

/// Polls until `f` holds, up to 15 s (file events and the debounce take well under 1 s).
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn good_edit_goes_live_broken_edit_is_rejected() {
    let d = TempDir::new("edit");
    let file = d.zones().join("r.test.zone");
    std::fs::write(&file, zone("192.0.2.10")).expect("write");
    let zones = d.zones();
    let s = Server::start(&["--zones", zones.to_str().expect("path")]);
    assert_eq!(www(&s), vec!["www.r.test. 60 IN A 192.0.2.10"]);

    replace(&file, zone("192.0.2.11").as_bytes());
    wait_until("the edit to go live", || {
        www(&s) == vec!["www.r.test. 60 IN A 192.0.2.11"]
    });

    // Broken: the old answers keep coming, the error is logged with file:line.
    replace(&file, b"$ORIGIN r.test.\n$TTL 60\nwww IN A 999.1.1.1\n");
    let line = s.wait_log("reload rejected");
    assert!(line.contains("r.test.zone:3"), "{line}");
    assert_eq!(www(&s), vec!["www.r.test. 60 IN A 192.0.2.11"]);

    // Fixed again: live.
    replace(&file, zone("192.0.2.12").as_bytes());
    wait_until("the fix to go live", || {
        www(&s) == vec!["www.r.test. 60 IN A 192.0.2.12"]
    });
}

#[test]
fn added_and_deleted_zone_files() {
    let d = TempDir::new("files");
    std::fs::write(d.zones().join("r.test.zone"), zone("192.0.2.10")).expect("write");
    let zones = d.zones();
    let s = Server::start(&["--zones", zones.to_str().expect("path")]);
    let other = d.zones().join("o.test.zone");
    std::fs::write(
        &other,
        "$ORIGIN o.test.\n$TTL 60\n@ IN SOA ns1 h 1 7200 3600 1209600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    )
    .expect("write");
    let ask_o = || ask_udp(s.addr, &QuerySpec::new("ns1.o.test.", 1)).rcode;
    wait_until("the new zone to be served", || ask_o() == "NOERROR");
    std::fs::remove_file(&other).expect("rm");
    wait_until("the deleted zone to go", || ask_o() == "REFUSED");
    // The other zone never stopped.
    assert_eq!(www(&s), vec!["www.r.test. 60 IN A 192.0.2.10"]);
}

#[test]
fn geo_database_swapped_by_rename() {
    let d = TempDir::new("geo");
    let fixtures = common::repo_path("tests/fixtures/geo");
    let db = d.0.join("geo.mmdb");
    std::fs::copy(fixtures.join("city.mmdb"), &db).expect("copy");
    std::fs::write(d.0.join("server.toml"), "[geo]\ndatabase = \"geo.mmdb\"\n").expect("write");
    std::fs::write(
        d.zones().join("g.toml"),
        r#"origin = "g.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.g.test."
contact = "h@g.test"
[regions]
us = {}
de = {}
[names.www]
strategy = "geo"
endpoints.us = { a = ["10.0.0.1"] }
endpoints.de = { a = ["10.0.0.2"] }
[names.www.geo]
default = ["us"]
country = { DE = ["de"] }
"#,
    )
    .expect("write");
    let zones = d.zones();
    let cfg = d.0.join("server.toml");
    let s = Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    // 198.19.17.0/24 is DE in the city fixture; the flat fixture says otherwise or
    // nothing (see tests/fixtures/geo/README.md), so the answer moves to the default.
    let mut q = QuerySpec::new("www.g.test.", 1);
    q.edns = Some(EdnsSpec {
        payload: 1232,
        ecs: Some(("198.19.17.0".parse().expect("ip"), 24)),
        ..EdnsSpec::default()
    });
    assert_eq!(
        ask_udp(s.addr, &q).answer,
        vec!["www.g.test. 30 IN A 10.0.0.2"]
    );
    let flat = std::fs::read(fixtures.join("country-flat.mmdb")).expect("read");
    replace(&db, &flat);
    wait_until("the new database to be used", || {
        ask_udp(s.addr, &q).answer != vec!["www.g.test. 30 IN A 10.0.0.2"]
    });
}

#[test]
fn sighup_reloads() {
    let d = TempDir::new("hup");
    std::fs::write(d.zones().join("r.test.zone"), zone("192.0.2.10")).expect("write");
    let zones = d.zones();
    let s = Server::start(&["--zones", zones.to_str().expect("path")]);
    let st = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let line = s.wait_log("reloaded");
    assert!(line.contains("SIGHUP"), "{line}");
    assert_eq!(www(&s), vec!["www.r.test. 60 IN A 192.0.2.10"]);
}
