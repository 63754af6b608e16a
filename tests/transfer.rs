//! Zone transfers out, against real secondaries: Knot DNS (`knotd`) and NSD take a
//! policy zone from signpost by AXFR with TSIG, then, after the zone changes and
//! signpost reloads, its NOTIFY makes them ask again, by IXFR; their answers equal
//! signpost's for every static name and every stand-in. kdig checks the refusals:
//! no key, a wrong key, an address outside `allow`.
//!
//! Needs Debian's knot, nsd and knot-dnsutils packages (`benches/install-peers.sh
//! --ci` installs them); fails, naming the package, when one is missing.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ask_udp, dir, wait_until, QuerySpec, Server};

const SECRET: &str = "c2lnbnBvc3QtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=";
const WRONG: &str = "d3JvbmctdGVzdC1rZXktMzItYnl0ZXMtbG9uZyEhIQ==";
const ZONE: &str = "geo.example.";

/// The policy zone; `extra` goes into its records, `www2` is www's second address.
fn zone_text(extra: &str, www2: &str) -> String {
    format!(
        r#"origin = "geo.example."
ttl = 300
records = """
@       NS   ns1
ns1     A    192.0.2.1
static  A    192.0.2.2
alias   CNAME www
txt     TXT  "a static text"
{extra}
"""
[soa]
primary = "ns1.geo.example."
contact = "hostmaster@geo.example"
serial = 1
negative_ttl = 60
[regions]
us-east = {{ location = [38.9, -77.4] }}
eu-west = {{ location = [53.3, -6.3] }}
[names.www]
strategy = "latency"
endpoints.us-east = {{ a = ["10.0.0.1", "{www2}"], aaaa = ["2001:db8:a::1"] }}
endpoints.eu-west = {{ a = ["10.0.0.2"], aaaa = ["2001:db8:a::2"] }}
[names.fo]
strategy = "failover"
order = ["eu-west", "us-east"]
endpoints.us-east = {{ a = ["10.0.1.1"] }}
endpoints.eu-west = {{ a = ["10.0.1.2"] }}
"#
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn need(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {cmd} || test -x /usr/sbin/{cmd}"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{cmd} is missing: install Debian's {package} package (bash benches/install-peers.sh --ci)"
    );
}

/// A peer server process, stopped when dropped.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[&str], log: &Path) -> Peer {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log file");
    let exe = if Path::new(&format!("/usr/sbin/{cmd}")).exists() {
        format!("/usr/sbin/{cmd}")
    } else {
        cmd.to_string()
    };
    Peer(
        Command::new(exe)
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd}: {e}")),
    )
}

fn start_knot(d: &Path, port: u16, primary: SocketAddr) -> Peer {
    start_knot_with(d, port, primary, "-1")
}

/// Knot as a secondary of `primary`; `sync` is its `zonefile-sync`.
fn start_knot_with(d: &Path, port: u16, primary: SocketAddr, sync: &str) -> Peer {
    for sub in ["run", "storage", "zones"] {
        std::fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    let conf = format!(
        r#"server:
    rundir: "{d}/run"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{d}/storage"
key:
  - id: xfr-key.
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: signpost
    address: {ip}@{pport}
    key: xfr-key.
acl:
  - id: notify
    address: 127.0.0.1
    key: xfr-key.
    action: notify
template:
  - id: default
    storage: "{d}/zones"
    zonefile-sync: {sync}
zone:
  - domain: {ZONE}
    master: signpost
    acl: notify
"#,
        d = d.display(),
        ip = primary.ip(),
        pport = primary.port(),
    );
    std::fs::write(d.join("knot.conf"), conf).expect("write");
    let c = d.join("knot.conf");
    spawn("knotd", &["-c", c.to_str().unwrap()], &d.join("knot.log"))
}

fn start_nsd(d: &Path, port: u16, primary: SocketAddr) -> Peer {
    std::fs::create_dir_all(d).expect("mkdir");
    let conf = format!(
        r#"server:
    ip-address: 127.0.0.1@{port}
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    xfrd-reload-timeout: 0
    verbosity: 2
remote-control:
    control-enable: no
key:
    name: "xfr-key."
    algorithm: hmac-sha256
    secret: "{SECRET}"
zone:
    name: {ZONE}
    zonefile: geo.example.zone
    request-xfr: {ip}@{pport} xfr-key.
    allow-notify: 127.0.0.1 xfr-key.
"#,
        d = d.display(),
        ip = primary.ip(),
        pport = primary.port(),
    );
    std::fs::write(d.join("nsd.conf"), conf).expect("write");
    let c = d.join("nsd.conf");
    spawn(
        "nsd",
        &["-d", "-c", c.to_str().unwrap()],
        &d.join("nsd.log"),
    )
}

/// signpost with the zone, a TSIG key, transfers to 127.0.0.1 with the key, and
/// NOTIFY to `notify`.
fn start_signpost(d: &Path, notify: &[SocketAddr]) -> Server {
    start_signpost_with(d, notify, "")
}

/// [`start_signpost`] with `extra` at the top of the server config.
fn start_signpost_with(d: &Path, notify: &[SocketAddr], extra: &str) -> Server {
    std::fs::write(d.join("zones/geo.example.toml"), zone_text("", "10.0.0.3")).expect("write");
    write_config(d, notify, extra, "");
    let c = d.join("server.toml");
    Server::start(&["--config", c.to_str().unwrap(), "--admin", "127.0.0.1:0"])
}

/// The server config (and the key file): `extra` at its top, `transfer` in
/// `[transfer]`.
fn write_config(d: &Path, notify: &[SocketAddr], extra: &str, transfer: &str) {
    use std::os::unix::fs::PermissionsExt;
    let key = d.join("xfr.key");
    std::fs::write(&key, format!("{SECRET}\n")).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let targets: Vec<String> = notify.iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = format!(
        r#"zones = "zones"
{extra}
[geo]
database = ""
[[tsig]]
name = "xfr-key."
secret_file = "xfr.key"
[transfer]
allow = ["127.0.0.1/32"]
keys = ["xfr-key."]
notify = [{}]
notify_key = "xfr-key."
{transfer}
"#,
        targets.join(", "),
    );
    std::fs::write(d.join("server.toml"), cfg).expect("write");
}

/// signpost on the config [`write_config`] wrote, also listening on `fixed`
/// (the address its secondaries know, the same across restarts).
fn start_signpost_on(d: &Path, fixed: SocketAddr) -> Server {
    let c = d.join("server.toml");
    let fixed = fixed.to_string();
    Server::start(&[
        "--config",
        c.to_str().unwrap(),
        "--admin",
        "127.0.0.1:0",
        "--listen",
        &fixed,
    ])
}

fn serial_of(at: SocketAddr) -> Option<u32> {
    let r = common::udp_exchange_wait(
        at,
        &QuerySpec::new(ZONE, 6).to_bytes(),
        Duration::from_millis(300),
    )?;
    let d = common::decode(&r);
    if d.rcode != "NOERROR" {
        return None;
    }
    let soa = d.answer.first()?;
    soa.split_whitespace().nth(6)?.parse().ok()
}

/// Every question the comparison asks: static names, the CNAME into a steered
/// name, the stand-ins, a missing name.
const QUESTIONS: &[(&str, u16)] = &[
    ("geo.example.", 2),
    ("ns1.geo.example.", 1),
    ("static.geo.example.", 1),
    ("txt.geo.example.", 16),
    ("alias.geo.example.", 1),
    ("www.geo.example.", 1),
    ("www.geo.example.", 28),
    ("fo.geo.example.", 1),
    ("fo.geo.example.", 28),
    ("new.geo.example.", 1),
    ("missing.geo.example.", 1),
];

fn answers(at: SocketAddr, name: &str, qtype: u16) -> (String, Vec<String>) {
    let d = ask_udp(at, &QuerySpec::new(name, qtype));
    let mut a = d.answer.clone();
    a.sort();
    (d.rcode, a)
}

fn assert_same(label: &str, signpost: SocketAddr, peer: SocketAddr) {
    for &(name, qtype) in QUESTIONS {
        let ours = answers(signpost, name, qtype);
        let theirs = answers(peer, name, qtype);
        assert_eq!(
            ours, theirs,
            "{label} answers {name} type {qtype} otherwise"
        );
    }
}

fn kdig(args: &[String]) -> String {
    need("kdig", "knot-dnsutils");
    let out = Command::new("kdig").args(args).output().expect("kdig");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kdig_axfr(at: SocketAddr, key: Option<&str>, from: &str) -> String {
    let mut args = vec![
        format!("@{}", at.ip()),
        "-p".into(),
        at.port().to_string(),
        "-b".into(),
        from.into(),
        "+timeout=5".into(),
        "+retry=0".into(),
        "AXFR".into(),
        ZONE.into(),
    ];
    if let Some(k) = key {
        args.insert(0, format!("hmac-sha256:xfr-key.:{k}"));
        args.insert(0, "-y".into());
    }
    kdig(&args)
}

#[test]
fn knot_and_nsd_follow_signpost_by_axfr_then_notify_and_ixfr() {
    need("knotd", "knot");
    need("nsd", "nsd");
    let d = dir("transfer", "peers");
    let (kport, nport) = (free_port(), free_port());
    let knot_at: SocketAddr = format!("127.0.0.1:{kport}").parse().unwrap();
    let nsd_at: SocketAddr = format!("127.0.0.1:{nport}").parse().unwrap();
    let server = start_signpost(&d.0, &[knot_at, nsd_at]);
    let at = server.addr;
    let _knot = start_knot(&d.0.join("knot"), kport, at);
    let _nsd = start_nsd(&d.0.join("nsd"), nport, at);
    // Each takes the zone at start (AXFR: it has none), signed with the key.
    for (label, peer) in [("knot", knot_at), ("nsd", nsd_at)] {
        wait_until(
            &format!("{label} serves serial 1"),
            Duration::from_secs(30),
            || serial_of(peer) == Some(1),
        );
        assert_same(label, at, peer);
    }
    let axfr = (0..2)
        .map(|_| server.wait_log("zone transferred"))
        .collect::<Vec<_>>();
    assert!(
        axfr.iter()
            .all(|l| l.contains("AXFR") && l.contains("xfr-key.")),
        "{axfr:?}"
    );

    // A new name and another address for www, the file's serial unchanged: the
    // served serial goes to 2, NOTIFY goes out, both ask by IXFR.
    let tmp = d.0.join("geo.example.toml.new");
    std::fs::write(&tmp, zone_text("new A 192.0.2.9", "10.0.0.4")).expect("write");
    std::fs::rename(&tmp, d.0.join("zones/geo.example.toml")).expect("rename");
    // Logged by the load, before the new snapshot serves: the transfers come after.
    server.wait_log("serving serial 2");
    // Their refresh timer (an hour) is far off: only the NOTIFY brings them.
    // Both polled together, each one's time from the load's log line noted.
    let start = std::time::Instant::now();
    let mut took: [Option<Duration>; 2] = [None, None];
    let peers = [("knot", knot_at), ("nsd", nsd_at)];
    wait_until(
        "knot and nsd serve serial 2",
        Duration::from_secs(30),
        || {
            for (i, (_, peer)) in peers.iter().enumerate() {
                if took[i].is_none() && serial_of(*peer) == Some(2) {
                    took[i] = Some(start.elapsed());
                }
            }
            took.iter().all(Option::is_some)
        },
    );
    for (i, (label, peer)) in peers.iter().enumerate() {
        eprintln!(
            "{label} served serial 2 {:?} after signpost's reload",
            took[i]
        );
        assert_same(label, at, *peer);
    }
    let ixfr = (0..2)
        .map(|_| server.wait_log("zone transferred"))
        .collect::<Vec<_>>();
    assert!(
        ixfr.iter()
            .all(|l| l.contains("IXFR") && l.contains("serial=2")),
        "{ixfr:?}"
    );
    wait_until("both NOTIFYs answered", Duration::from_secs(10), || {
        metrics(&server).contains("signpost_notify_total{result=\"answered\"} 2")
    });
    let www = answers(knot_at, "www.geo.example.", 1).1;
    assert!(www.iter().any(|r| r.ends_with("10.0.0.4")), "{www:?}");
}

#[test]
fn transfers_need_the_key_and_the_address() {
    let d = dir("transfer", "refused");
    let server = start_signpost(&d.0, &[]);
    let at = server.addr;
    let ok = kdig_axfr(at, Some(SECRET), "127.0.0.1");
    assert!(
        ok.contains("NOERROR") && ok.contains("www.geo.example.") && ok.contains("TSIG"),
        "{ok}"
    );
    let no_key = kdig_axfr(at, None, "127.0.0.1");
    assert!(no_key.contains("REFUSED"), "{no_key}");
    let wrong = kdig_axfr(at, Some(WRONG), "127.0.0.1");
    assert!(wrong.contains("BADSIG"), "{wrong}");
    // The key, from an address outside `allow`.
    let elsewhere = kdig_axfr(at, Some(SECRET), "127.0.0.2");
    assert!(elsewhere.contains("REFUSED"), "{elsewhere}");
    for needle in [
        "transfer refused",
        "transfer refused: TSIG",
        "transfer refused",
    ] {
        server.wait_log(needle);
    }
    // An ordinary signed query gets a signed answer (kdig checks it).
    let soa = |k: &str| {
        kdig(&[
            "-y".into(),
            format!("hmac-sha256:xfr-key.:{k}"),
            format!("@{}", at.ip()),
            "-p".into(),
            at.port().to_string(),
            "SOA".into(),
            ZONE.into(),
        ])
    };
    let signed = soa(SECRET);
    assert!(
        signed.contains("NOERROR") && signed.contains("TSIG") && !signed.contains("WARNING"),
        "{signed}"
    );
    let bad = soa(WRONG);
    assert!(bad.contains("BADSIG"), "{bad}");
    let m = metrics(&server);
    for line in [
        "signpost_transfers_total{kind=\"axfr\",result=\"sent\"} 1",
        "signpost_transfers_total{kind=\"any\",result=\"refused\"} 2",
        "signpost_transfers_total{kind=\"any\",result=\"tsig_failed\"} 1",
    ] {
        assert!(m.contains(line), "no {line} in\n{m}");
    }
}

fn metrics(server: &Server) -> String {
    let admin = server.admin.expect("admin address");
    let (status, body) = common::http(admin, "GET", "/metrics");
    assert_eq!(status, 200);
    body
}

/// kdig's records of an answer, one per line, without comments.
fn records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn signed_zone_transfers_with_its_signatures_and_nsec_chain() {
    let d = dir("transfer", "signed");
    std::fs::create_dir_all(d.0.join("keys")).expect("mkdir");
    let server = start_signpost_with(
        &d.0,
        &[],
        "[dnssec]\nzones = [\"geo.example.\"]\nkey_dir = \"keys\"\ndenial = \"nsec\"\n",
    );
    let out = kdig_axfr(server.addr, Some(SECRET), "127.0.0.1");
    let rrs = records(&out);
    let types: std::collections::BTreeSet<(String, String)> = rrs
        .iter()
        .filter(|r| r.len() > 4 && r[3] != "RRSIG" && r[3] != "TSIG")
        .map(|r| (r[0].clone(), r[3].clone()))
        .collect();
    let signed: std::collections::BTreeSet<(String, String)> = rrs
        .iter()
        .filter(|r| r.len() > 4 && r[3] == "RRSIG")
        .map(|r| (r[0].clone(), r[4].clone()))
        .collect();
    for t in &types {
        assert!(
            signed.contains(t),
            "{t:?} transferred without its RRSIG:\n{out}"
        );
    }
    for want in [
        ("www.geo.example.", "A"),
        ("fo.geo.example.", "A"),
        ("geo.example.", "DNSKEY"),
        ("www.geo.example.", "NSEC"),
    ] {
        assert!(
            types.contains(&(want.0.to_string(), want.1.to_string())),
            "no {want:?} in\n{out}"
        );
    }
}

#[test]
fn ixfr_beyond_the_journal_is_the_whole_zone_and_a_current_one_is_one_soa() {
    let d = dir("transfer", "ixfr");
    let server = start_signpost(&d.0, &[]);
    let at = server.addr;
    let ask = |serial: u32| {
        kdig(&[
            "-y".into(),
            format!("hmac-sha256:xfr-key.:{SECRET}"),
            format!("@{}", at.ip()),
            "-p".into(),
            at.port().to_string(),
            "+timeout=5".into(),
            "+retry=0".into(),
            format!("IXFR={serial}"),
            ZONE.into(),
        ])
    };
    // Serial 0 is not in the journal: the whole zone.
    let old = records(&ask(0));
    let kinds: Vec<&str> = old.iter().map(|r| r[3].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"SOA"), "{old:?}");
    assert_eq!(kinds.get(1), Some(&"NS"), "an AXFR-style answer: {old:?}");
    assert!(kinds.contains(&"A"), "{old:?}");
    // The current serial: the SOA alone.
    let current = records(&ask(1));
    let kinds: Vec<&str> = current
        .iter()
        .map(|r| r[3].as_str())
        .filter(|t| *t != "TSIG")
        .collect();
    assert_eq!(kinds, ["SOA"], "{current:?}");
    let m = metrics(&server);
    assert!(
        m.contains("signpost_transfers_total{kind=\"ixfr\",result=\"whole_zone\"} 1"),
        "{m}"
    );
}

#[test]
fn standin_none_leaves_steered_names_out() {
    let d = dir("transfer", "none");
    let server = start_signpost_with(
        &d.0,
        &[],
        "[transfer.zone.\"geo.example.\"]\nstandin = \"none\"\n",
    );
    let out = kdig_axfr(server.addr, Some(SECRET), "127.0.0.1");
    let rrs = records(&out);
    assert!(
        rrs.iter().any(|r| r[0] == "static.geo.example."),
        "static records still go: {out}"
    );
    assert!(
        !rrs.iter()
            .any(|r| r[0] == "www.geo.example." || r[0] == "fo.geo.example."),
        "steered names left out: {out}"
    );
}

#[test]
fn malformed_and_unknown_zone_requests_are_answered_and_change_nothing() {
    let d = dir("transfer", "bad");
    let server = start_signpost(&d.0, &[]);
    let at = server.addr;
    // IXFR claiming an authority SOA that is not there: FORMERR.
    let mut q = QuerySpec::new(ZONE, 251).to_bytes();
    q[9] = 1;
    let r = common::tcp_exchange(at, &q).expect("an answer");
    assert_eq!(r[3] & 0x0f, 1, "FORMERR: {r:02x?}");
    // AXFR of a zone signpost does not have: REFUSED.
    let r = common::tcp_exchange(at, &QuerySpec::new("other.example.", 252).to_bytes())
        .expect("an answer");
    assert_eq!(r[3] & 0x0f, 5, "REFUSED: {r:02x?}");
    // The zone still transfers.
    let ok = kdig_axfr(at, Some(SECRET), "127.0.0.1");
    assert!(ok.contains("www.geo.example."), "{ok}");
}

fn knotc(d: &Path, args: &[&str]) -> String {
    need("knotc", "knot");
    let sock = d.join("run/knot.sock");
    let out = Command::new("knotc")
        .arg("-s")
        .arg(&sock)
        .args(args)
        .output()
        .expect("knotc");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The zone as it is after the change of the restart tests: a new name, the
/// file's serial unchanged.
fn change_zone(d: &Path) {
    let tmp = d.join("geo.example.toml.new");
    std::fs::write(&tmp, zone_text("new A 192.0.2.9", "10.0.0.4")).expect("write");
    std::fs::rename(&tmp, d.join("zones/geo.example.toml")).expect("rename");
}

#[test]
fn raised_serial_and_journal_survive_a_restart_and_a_corrupt_journal_is_ignored() {
    need("knotd", "knot");
    let d = dir("transfer", "restart");
    std::fs::write(
        d.0.join("zones/geo.example.toml"),
        zone_text("", "10.0.0.3"),
    )
    .expect("write");
    write_config(&d.0, &[], "", "journal_dir = \"journal\"");
    let fixed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = start_signpost_on(&d.0, fixed);
    let kport = free_port();
    let knot_at: SocketAddr = format!("127.0.0.1:{kport}").parse().unwrap();
    let kdir = d.0.join("knot");
    let _knot = start_knot(&kdir, kport, fixed);
    wait_until("knot serves serial 1", Duration::from_secs(30), || {
        serial_of(knot_at) == Some(1)
    });
    // A change, the file's serial unchanged: serial 2 and a difference in the
    // journal. Knot is not told (no NOTIFY here) and stays at 1.
    change_zone(&d.0);
    server.wait_log("serving serial 2");
    server.wait_log("reloaded");
    assert_eq!(serial_of(knot_at), Some(1));
    // Killed (no clean stop) and started again: still serial 2, not the file's 1.
    drop(server);
    let server = start_signpost_on(&d.0, fixed);
    server.early_log("IXFR journal restored");
    assert_eq!(
        serial_of(server.addr),
        Some(2),
        "the served serial went back"
    );
    // Knot, asked to refresh, takes the difference from serial 1 by IXFR.
    let said = knotc(&kdir, &["zone-refresh", ZONE]);
    assert!(said.contains("OK"), "{said}");
    wait_until("knot serves serial 2", Duration::from_secs(30), || {
        serial_of(knot_at) == Some(2)
    });
    let line = server.wait_log("zone transferred");
    assert!(line.contains("IXFR") && line.contains("serial=2"), "{line}");
    assert_same("knot", server.addr, knot_at);
    // A corrupt journal file: logged and ignored; the zone serves from its file.
    drop(server);
    let file = d.0.join("journal/geo.example.journal");
    let mut bytes = std::fs::read(&file).expect("the journal file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).expect("write");
    let server = start_signpost_on(&d.0, fixed);
    let line = server.early_log("journal file ignored");
    assert!(line.contains("checksum"), "{line}");
    assert_eq!(serial_of(server.addr), Some(1));
}

#[test]
fn a_restarted_signpost_notifies_its_secondaries_at_once() {
    need("knotd", "knot");
    let d = dir("transfer", "startup-notify");
    let kport = free_port();
    let knot_at: SocketAddr = format!("127.0.0.1:{kport}").parse().unwrap();
    std::fs::write(
        d.0.join("zones/geo.example.toml"),
        zone_text("", "10.0.0.3"),
    )
    .expect("write");
    write_config(&d.0, &[knot_at], "", "");
    let fixed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let server = start_signpost_on(&d.0, fixed);
    let _knot = start_knot(&d.0.join("knot"), kport, fixed);
    wait_until("knot serves serial 1", Duration::from_secs(30), || {
        serial_of(knot_at) == Some(1)
    });
    // Changed while signpost is down, the file's serial raised: only a NOTIFY
    // at start tells Knot before its refresh timer (an hour).
    drop(server);
    let text = zone_text("new A 192.0.2.9", "10.0.0.4").replace("serial = 1", "serial = 5");
    std::fs::write(d.0.join("zones/geo.example.toml"), text).expect("write");
    let server = start_signpost_on(&d.0, fixed);
    wait_until("knot serves serial 5", Duration::from_secs(20), || {
        serial_of(knot_at) == Some(5)
    });
    assert_same("knot", server.addr, knot_at);
    wait_until("the NOTIFY counted", Duration::from_secs(10), || {
        metrics(&server).contains("signpost_notify_total{result=\"answered\"} 1")
    });
}

#[test]
fn a_signed_answer_too_large_for_udp_with_its_tsig_is_truncated_and_signed() {
    let d = dir("transfer", "tsig-tc");
    // 480 bytes without EDNS: under 512 alone, over it with its TSIG record.
    let big = format!("big TXT \"{}\" \"{}\"", "a".repeat(200), "b".repeat(233));
    std::fs::write(
        d.0.join("zones/geo.example.toml"),
        zone_text(&big, "10.0.0.3"),
    )
    .expect("write");
    write_config(&d.0, &[], "", "");
    let c = d.0.join("server.toml");
    let server = Server::start(&["--config", c.to_str().unwrap()]);
    let at = server.addr;
    let ask = |extra: &str| {
        kdig(&[
            "-y".into(),
            format!("hmac-sha256:xfr-key.:{SECRET}"),
            format!("@{}", at.ip()),
            "-p".into(),
            at.port().to_string(),
            "+notcp".into(),
            "+ignore".into(),
            extra.into(),
            "TXT".into(),
            "big.geo.example.".into(),
        ])
    };
    // No EDNS: 512 bytes. The question alone, TC, NOERROR, signed (RFC 8945 §5.3).
    let small = ask("+noedns");
    let flags = small
        .lines()
        .find(|l| l.contains("Flags:"))
        .unwrap_or_default();
    assert!(flags.contains(" tc"), "{small}");
    assert!(
        small.contains("NOERROR") && small.contains("TSIG") && !small.contains("WARNING"),
        "{small}"
    );
    assert!(!small.contains("bbbb"), "{small}");
    // Room for both: the answer, signed.
    let room = ask("+bufsize=1232");
    assert!(room.contains("bbbb") && room.contains("TSIG"), "{room}");
    assert!(!room.contains("WARNING"), "{room}");
}

#[test]
fn a_compact_denial_zone_transfers_an_nsec_chain_and_still_answers_compactly() {
    let d = dir("transfer", "compact");
    std::fs::create_dir_all(d.0.join("keys")).expect("mkdir");
    // The default denial: compact (negative answers signed on the fly).
    let server = start_signpost_with(
        &d.0,
        &[],
        "[dnssec]\nzones = [\"geo.example.\"]\nkey_dir = \"keys\"\n",
    );
    let out = kdig_axfr(server.addr, Some(SECRET), "127.0.0.1");
    let rrs = records(&out);
    let nsec: Vec<&Vec<String>> = rrs
        .iter()
        .filter(|r| r.len() > 4 && r[3] == "NSEC")
        .collect();
    for owner in ["geo.example.", "static.geo.example.", "www.geo.example."] {
        assert!(
            nsec.iter().any(|r| r[0] == owner),
            "no NSEC at {owner} in the transfer:\n{out}"
        );
        assert!(
            rrs.iter()
                .any(|r| r.len() > 4 && r[0] == owner && r[3] == "RRSIG" && r[4] == "NSEC"),
            "the NSEC at {owner} unsigned:\n{out}"
        );
    }
    // signpost's own answer for a missing name: still compact denial, an NSEC
    // at the name itself (RFC 9824), not the chain's.
    let at = server.addr;
    let missing = kdig(&[
        format!("@{}", at.ip()),
        "-p".into(),
        at.port().to_string(),
        "+dnssec".into(),
        "A".into(),
        "missing.geo.example.".into(),
    ]);
    let recs = records(&missing);
    assert!(
        recs.iter()
            .any(|r| r.len() > 4 && r[0] == "missing.geo.example." && r[3] == "NSEC"),
        "{missing}"
    );
}
