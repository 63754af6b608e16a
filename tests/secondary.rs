//! Secondary zones over real sockets: Knot DNS as the primary (AXFR at start,
//! NOTIFY then IXFR after an update, the copy on disk serving a restart while
//! Knot is down), a fake primary of our own sending bad transfers (truncated,
//! out of zone, too large, serial going backwards: the last good zone keeps serving and
//! the counters rise), expiry (SERVFAIL), and NOTIFY from strangers (REFUSED).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ask_udp, dir, http, name_wire, wait_until, QuerySpec, Server};

const A: u16 = 1;
const SOA: u16 = 6;
const LIMIT: Duration = Duration::from_secs(20);

/// The first A record's address in the answer of `name`, or the rcode.
fn a_of(addr: SocketAddr, name: &str) -> String {
    let d = ask_udp(addr, &QuerySpec::new(name, A));
    if d.rcode != "NOERROR" || d.answer.is_empty() {
        return d.rcode;
    }
    d.answer[0]
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A counter's value in /metrics (0 when absent).
fn metric(admin: SocketAddr, line_start: &str) -> u64 {
    let (_, body) = http(admin, "GET", "/metrics");
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn refreshes(admin: SocketAddr, zone: &str, result: &str) -> u64 {
    metric(
        admin,
        &format!("signpost_secondary_refreshes_total{{zone=\"{zone}\",result=\"{result}\"}}"),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn write_server_config(root: &Path, zone: &str, primary: SocketAddr, extra: &str) {
    std::fs::write(
        root.join("server.toml"),
        format!(
            "zones = \"zones\"\n\n[[secondary]]\nzone = \"{zone}\"\nprimaries = [\"{primary}\"]\ntimeout = \"2s\"\n{extra}"
        ),
    )
    .expect("write server config");
}

fn start(root: &Path) -> Server {
    let cfg = root.join("server.toml");
    Server::start(&["--config", cfg.to_str().unwrap(), "--admin", "127.0.0.1:0"])
}

/// A NOTIFY for `zone` sent from `from`; the response's rcode and AA.
fn notify(from: &str, to: SocketAddr, zone: &str) -> Option<(u8, bool)> {
    let s = UdpSocket::bind(format!("{from}:0")).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut m = vec![0x12, 0x34, 0x20, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&name_wire(zone));
    m.extend_from_slice(&[0, 6, 0, 1]);
    s.send_to(&m, to).ok()?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).ok()?;
    (n >= 12 && buf[0] == 0x12 && buf[1] == 0x34 && buf[2] & 0x80 != 0)
        .then(|| (buf[3] & 0x0f, buf[2] & 0x04 != 0))
}

// ---- a fake primary -------------------------------------------------------

fn rr(owner: &str, rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = name_wire(owner);
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn soa(zone: &str, serial: u32, expire: u32) -> Vec<u8> {
    let mut d = name_wire(&format!("ns.{zone}"));
    d.extend_from_slice(&name_wire(&format!("hostmaster.{zone}")));
    for v in [serial, 3600, 1, expire, 60] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    rr(zone, SOA, 300, &d)
}

/// What the fake primary sends to the next transfer query.
#[derive(Clone)]
enum Send {
    /// The zone at this serial, www at this address, in AXFR form.
    Zone {
        serial: u32,
        www: [u8; 4],
        expire: u32,
    },
    /// The same zone, cut off before its closing SOA.
    Truncated { serial: u32 },
    /// A zone with a record out of the zone.
    OutOfZone { serial: u32 },
    /// A zone larger than the test's max_bytes (1024).
    Big { serial: u32 },
    /// A zone with a record of type 0 (reserved, never stored).
    TypeZero { serial: u32 },
}

struct FakePrimary {
    addr: SocketAddr,
    send: Arc<Mutex<Option<Send>>>,
}

impl FakePrimary {
    fn start(zone: &'static str) -> FakePrimary {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind fake primary");
        let addr = l.local_addr().expect("addr");
        let send: Arc<Mutex<Option<Send>>> = Arc::new(Mutex::new(None));
        let s2 = send.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { break };
                let what = s2.lock().unwrap().clone();
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                // Closing the connection at once: "no primary" (None).
                let Some(what) = what else { continue };
                let qname_end = 12 + name_wire(zone).len() + 4;
                let mut records = Vec::new();
                let www = |ip: [u8; 4]| rr(&format!("www.{zone}"), A, 300, &ip);
                let ns = rr(zone, 2, 300, &name_wire(&format!("ns.{zone}")));
                let ns_a = rr(&format!("ns.{zone}"), A, 300, &[192, 0, 2, 53]);
                match what {
                    Send::Zone {
                        serial,
                        www: ip,
                        expire,
                    } => {
                        records.extend([soa(zone, serial, expire), ns, ns_a, www(ip)]);
                        records.push(soa(zone, serial, expire));
                    }
                    Send::Truncated { serial } => {
                        records.extend([soa(zone, serial, 600), ns, ns_a, www([192, 0, 2, 99])]);
                    }
                    Send::Big { serial } => {
                        records.extend([soa(zone, serial, 600), ns, ns_a]);
                        for i in 0..60u8 {
                            let txt = [&[20u8][..], &[b'x'; 19][..], &[i][..]].concat();
                            records.push(rr(&format!("t{i}.{zone}"), 16, 300, &txt));
                        }
                        records.push(soa(zone, serial, 600));
                    }
                    Send::TypeZero { serial } => {
                        records.extend([soa(zone, serial, 600), ns, ns_a, www([192, 0, 2, 96])]);
                        records.push(rr(&format!("zero.{zone}"), 0, 300, &[1, 2]));
                        records.push(soa(zone, serial, 600));
                    }
                    Send::OutOfZone { serial } => {
                        records.extend([soa(zone, serial, 600), ns, ns_a]);
                        records.push(rr("www.elsewhere.example.", A, 300, &[192, 0, 2, 98]));
                        records.push(soa(zone, serial, 600));
                    }
                }
                let mut m = q[..2].to_vec();
                m.extend_from_slice(&[0x84, 0x00, 0, 1]);
                m.extend_from_slice(&(records.len() as u16).to_be_bytes());
                m.extend_from_slice(&[0, 0, 0, 0]);
                m.extend_from_slice(&q[12..qname_end.min(q.len())]);
                for r in &records {
                    m.extend_from_slice(r);
                }
                let mut framed = (m.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&m);
                let _ = c.write_all(&framed);
            }
        });
        FakePrimary { addr, send }
    }

    fn set(&self, s: Option<Send>) {
        *self.send.lock().unwrap() = s;
    }
}

#[test]
fn bad_transfers_change_nothing_and_are_counted() {
    let zone = "fake.test.";
    let fake = FakePrimary::start(zone);
    fake.set(Some(Send::Zone {
        serial: 10,
        www: [192, 0, 2, 1],
        expire: 600,
    }));
    let d = dir("secondary", "bad");
    write_server_config(&d.0, zone, fake.addr, "max_bytes = 1024\n");
    let srv = start(&d.0);
    let admin = srv.admin.expect("admin");
    wait_until("the first AXFR serves", LIMIT, || {
        a_of(srv.addr, "www.fake.test.") == "192.0.2.1"
    });
    assert_eq!(refreshes(admin, zone, "axfr"), 1);

    // Each bad transfer: asked for by a NOTIFY from the primary's address,
    // counted by its kind, and the serving zone stays.
    for (send, result) in [
        (Send::Truncated { serial: 11 }, "truncated"),
        (Send::OutOfZone { serial: 12 }, "out_of_zone"),
        (Send::Big { serial: 12 }, "too_large"),
        (Send::TypeZero { serial: 12 }, "invalid"),
        (
            Send::Zone {
                serial: 9,
                www: [192, 0, 2, 97],
                expire: 600,
            },
            "serial_backwards",
        ),
    ] {
        fake.set(Some(send));
        assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((0, true)));
        wait_until(&format!("a {result} refresh counted"), LIMIT, || {
            refreshes(admin, zone, result) >= 1
        });
        assert_eq!(a_of(srv.addr, "www.fake.test."), "192.0.2.1", "{result}");
    }
    let copy = std::fs::read_to_string(d.0.join("secondary/fake.test.zone")).expect("copy");
    assert!(
        copy.contains("192.0.2.1") && !copy.contains("192.0.2.9"),
        "{copy}"
    );

    // A good one goes live, by NOTIFY.
    fake.set(Some(Send::Zone {
        serial: 13,
        www: [192, 0, 2, 2],
        expire: 600,
    }));
    assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((0, true)));
    wait_until("serial 13 serves", LIMIT, || {
        a_of(srv.addr, "www.fake.test.") == "192.0.2.2"
    });
}

#[test]
fn notify_from_strangers_is_refused_and_triggers_nothing() {
    let zone = "notify.test.";
    let fake = FakePrimary::start(zone);
    fake.set(Some(Send::Zone {
        serial: 1,
        www: [192, 0, 2, 1],
        expire: 600,
    }));
    let d = dir("secondary", "notify");
    write_server_config(&d.0, zone, fake.addr, "");
    let srv = start(&d.0);
    let admin = srv.admin.expect("admin");
    wait_until("the first AXFR serves", LIMIT, || {
        a_of(srv.addr, "www.notify.test.") == "192.0.2.1"
    });
    let before = refreshes(admin, zone, "current") + refreshes(admin, zone, "axfr");
    let flood = 300;
    let mut refused = 0;
    for _ in 0..flood {
        if notify("127.0.0.2", srv.addr, zone) == Some((5, false)) {
            refused += 1;
        }
    }
    // Answered REFUSED (UDP may lose a few), counted, and no refresh asked for.
    assert!(refused >= flood * 9 / 10, "{refused} of {flood} REFUSED");
    assert!(metric(admin, "signpost_notify_received_total{result=\"refused\"}") >= refused as u64);
    assert_eq!(
        metric(admin, "signpost_notify_received_total{result=\"accepted\"}"),
        0
    );
    // A NOTIFY for a zone that is not a secondary, even from the primary: REFUSED.
    assert_eq!(
        notify("127.0.0.1", srv.addr, "other.test."),
        Some((5, false))
    );
    std::thread::sleep(Duration::from_millis(300));
    let after = refreshes(admin, zone, "current") + refreshes(admin, zone, "axfr");
    assert_eq!(before, after, "a stranger's NOTIFY started a refresh");
    // The primary's is taken.
    assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((0, true)));
    wait_until("the primary's NOTIFY refreshes", LIMIT, || {
        refreshes(admin, zone, "current") >= 1
    });
    // A flood from the primary's own address (forged, say): a burst of four
    // refreshes, then at most one a second.
    let t0 = Instant::now();
    for _ in 0..100 {
        assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((0, true)));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let n = refreshes(admin, zone, "current") - 1;
    let most = t0.elapsed().as_secs() + 5;
    assert!(
        n <= most,
        "{n} refreshes in {:?} for 100 NOTIFYs",
        t0.elapsed()
    );
}

#[test]
fn expired_zone_answers_servfail_and_copy_serves_a_restart() {
    let zone = "expire.test.";
    let fake = FakePrimary::start(zone);
    fake.set(Some(Send::Zone {
        serial: 1,
        www: [192, 0, 2, 1],
        expire: 3,
    }));
    let d = dir("secondary", "expire");
    write_server_config(&d.0, zone, fake.addr, "");
    {
        let srv = start(&d.0);
        wait_until("the first AXFR serves", LIMIT, || {
            a_of(srv.addr, "www.expire.test.") == "192.0.2.1"
        });
    }
    // Restarted with the primary silent: the copy serves at once.
    fake.set(None);
    let srv = start(&d.0);
    let first = a_of(srv.addr, "www.expire.test.");
    assert_eq!(
        first, "192.0.2.1",
        "the disk copy did not serve the restart"
    );
    // ... until the SOA's expire (3 s) passes without a primary: SERVFAIL.
    wait_until("the zone expires", LIMIT, || {
        a_of(srv.addr, "www.expire.test.") == "SERVFAIL"
    });
    // The primary back: served again.
    fake.set(Some(Send::Zone {
        serial: 2,
        www: [192, 0, 2, 2],
        expire: 600,
    }));
    assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((0, true)));
    wait_until("served again", LIMIT, || {
        a_of(srv.addr, "www.expire.test.") == "192.0.2.2"
    });
}

// ---- Knot DNS as the primary ----------------------------------------------

struct Knot {
    child: Child,
    conf: std::path::PathBuf,
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need(cmd: &str, package: &str) {
    let found = Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Path::new("/usr/sbin").join(cmd).exists();
    assert!(
        found,
        "{cmd} is missing: install Debian's package {package} (bash benches/install-peers.sh --ci)"
    );
}

/// The TSIG secret Knot and signpost share (base64 of 32 bytes).
const KEY: &str = "c2lnbnBvc3QtdGVzdC1zZWNyZXQtMzItYnl0ZXMhISE=";
/// Another: a wrong key of the same name.
const WRONG: &str = "d3JvbmctdGVzdC1zZWNyZXQtMzItYnl0ZXMhISEhISE=";

/// The [[tsig]] table for `secret`, its file readable by its owner only.
fn tsig_table(root: &Path, secret: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let f = root.join("xfr.key");
    std::fs::write(&f, secret).expect("key file");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    "tsig = \"xfr-key\"\n\n[[tsig]]\nname = \"xfr-key\"\nsecret_file = \"xfr.key\"\n".to_string()
}

fn knot_zone(serial: u32, www: &str) -> String {
    format!(
        "$ORIGIN knot.test.\n$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\nwww A {www}\n"
    )
}

fn start_knot(root: &Path, port: u16, notify_to: SocketAddr) -> Knot {
    let k = root.join("knot");
    for sub in ["run", "storage", "zones"] {
        std::fs::create_dir_all(k.join(sub)).expect("mkdir");
    }
    let conf = k.join("knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{run}\"\n    listen: 127.0.0.1@{port}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\nlog:\n  - target: stderr\n    any: info\ndatabase:\n    storage: \"{storage}\"\nkey:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {KEY}\nremote:\n  - id: signpost\n    address: {ip}@{sport}\n    key: xfr-key\nacl:\n  - id: xfr\n    address: 127.0.0.1\n    key: xfr-key\n    action: transfer\ntemplate:\n  - id: default\n    storage: \"{zones}\"\n    zonefile-sync: -1\n    zonefile-load: difference\n    journal-content: changes\nzone:\n  - domain: knot.test\n    file: knot.test.zone\n    notify: signpost\n    acl: xfr\n",
            run = k.join("run").display(),
            storage = k.join("storage").display(),
            zones = k.join("zones").display(),
            ip = notify_to.ip(),
            sport = notify_to.port(),
        ),
    )
    .expect("knot.conf");
    let log = std::fs::File::create(k.join("knotd.log")).expect("log");
    let child = Command::new("knotd")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start knotd");
    Knot { child, conf }
}

#[test]
fn knot_primary_axfr_notify_ixfr_and_restart_from_copy() {
    need("knotd", "knot");
    need("knotc", "knot");
    let zone = "knot.test.";
    let d = dir("secondary", "knot");
    let kport = free_port();
    let primary: SocketAddr = format!("127.0.0.1:{kport}").parse().unwrap();
    // A policy file steers a name inside the secondary zone.
    std::fs::write(
        d.0.join("zones/knot.test.toml"),
        "origin = \"knot.test.\"\n\n[regions]\nr1 = { location = [0.0, 0.0] }\n\n[names.app]\nstrategy = \"failover\"\norder = [\"r1\"]\nendpoints.r1 = { a = [\"10.9.9.9\"] }\n",
    )
    .expect("policy file");
    write_server_config(&d.0, zone, primary, &tsig_table(&d.0, KEY));
    std::fs::create_dir_all(d.0.join("knot/zones")).expect("mkdir");
    std::fs::write(
        d.0.join("knot/zones/knot.test.zone"),
        knot_zone(1, "192.0.2.1"),
    )
    .expect("zone");
    // signpost first (nothing to serve yet: SERVFAIL), then Knot, whose NOTIFY at
    // load brings the first AXFR.
    let srv = start(&d.0);
    let admin = srv.admin.expect("admin");
    assert_eq!(a_of(srv.addr, "www.knot.test."), "SERVFAIL");
    let knot = start_knot(&d.0, kport, srv.addr);
    wait_until("the AXFR from Knot serves", LIMIT, || {
        a_of(srv.addr, "www.knot.test.") == "192.0.2.1"
    });
    assert_eq!(a_of(srv.addr, "app.knot.test."), "10.9.9.9", "steered name");
    assert!(refreshes(admin, zone, "axfr") >= 1);

    // A secondary with the wrong key gets nothing: counted, SERVFAIL.
    let wrong = dir("secondary", "knot-wrong-key");
    write_server_config(&wrong.0, zone, primary, &tsig_table(&wrong.0, WRONG));
    let other = start(&wrong.0);
    let other_admin = other.admin.expect("admin");
    wait_until("the wrong key counted", LIMIT, || {
        refreshes(other_admin, zone, "tsig") >= 1
    });
    assert_eq!(a_of(other.addr, "www.knot.test."), "SERVFAIL");
    drop(other);

    // An update on Knot: NOTIFY, IXFR, served.
    std::fs::write(
        d.0.join("knot/zones/knot.test.zone"),
        knot_zone(2, "192.0.2.2"),
    )
    .expect("zone");
    let t0 = Instant::now();
    let st = Command::new("knotc")
        .arg("-c")
        .arg(&knot.conf)
        .args(["zone-reload", "knot.test"])
        .stdout(Stdio::null())
        .status()
        .expect("knotc");
    assert!(st.success(), "knotc zone-reload failed");
    wait_until("the update serves", LIMIT, || {
        a_of(srv.addr, "www.knot.test.") == "192.0.2.2"
    });
    let ms = t0.elapsed().as_millis();
    println!("knot update -> signpost answers the new data: {ms} ms");
    assert!(refreshes(admin, zone, "ixfr") >= 1, "IXFR not used");
    assert!(metric(admin, "signpost_notify_received_total{result=\"accepted\"}") >= 2);
    assert_eq!(a_of(srv.addr, "app.knot.test."), "10.9.9.9", "steered name");

    // Knot stopped, signpost restarted: the copy serves before any primary.
    drop(knot);
    drop(srv);
    let srv = start(&d.0);
    assert_eq!(a_of(srv.addr, "www.knot.test."), "192.0.2.2");
    assert_eq!(a_of(srv.addr, "app.knot.test."), "10.9.9.9");
}

/// A NOTIFY for `zone` signed (RFC 8945) with key `key_name` and `secret`
/// (base64), sent from 127.0.0.1: the response's rcode, AA, and the TSIG
/// error of its TSIG record (0 when it has none or it is clean).
fn signed_notify(
    to: SocketAddr,
    zone: &str,
    key_name: &str,
    secret: &str,
) -> Option<(u8, bool, u16)> {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(secret)
        .expect("base64");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let mut m = vec![0x43, 0x21, 0x20, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&name_wire(zone));
    m.extend_from_slice(&[0, 6, 0, 1]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let time = &now.to_be_bytes()[2..];
    let alg = name_wire("hmac-sha256.");
    let kname = name_wire(key_name);
    // The MAC covers the message, then the TSIG variables (RFC 8945 §4.3.3).
    let mut signed = m.clone();
    signed.extend_from_slice(&kname);
    signed.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
    signed.extend_from_slice(&alg);
    signed.extend_from_slice(time);
    signed.extend_from_slice(&[1, 44, 0, 0, 0, 0]);
    let mac = ring::hmac::sign(&key, &signed);
    let mut rdata = alg.clone();
    rdata.extend_from_slice(time);
    rdata.extend_from_slice(&[1, 44, 0, 32]);
    rdata.extend_from_slice(mac.as_ref());
    rdata.extend_from_slice(&[0x43, 0x21, 0, 0, 0, 0]);
    m.extend_from_slice(&kname);
    m.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(&rdata);
    m[11] = 1;
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.send_to(&m, to).ok()?;
    let mut buf = [0u8; 512];
    let n = s.recv(&mut buf).ok()?;
    let r = &buf[..n];
    if n < 12 || r[..2] != [0x43, 0x21] || r[2] & 0x80 == 0 {
        return None;
    }
    // The TSIG error: the 4th and 3rd bytes from the end, when OTHER LEN is 0.
    let error = if r[11] > 0 && n > 6 {
        u16::from_be_bytes([r[n - 4], r[n - 3]])
    } else {
        0
    };
    Some((r[3] & 0x0f, r[2] & 0x04 != 0, error))
}

/// Every refresh of `zone` counted, whatever its result.
fn all_refreshes(admin: SocketAddr, zone: &str) -> u64 {
    let (_, body) = http(admin, "GET", "/metrics");
    let start = format!("signpost_secondary_refreshes_total{{zone=\"{zone}\"");
    body.lines()
        .filter(|l| l.starts_with(&start))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_zone_with_a_key_takes_notify_only_signed_with_it() {
    let zone = "signed.test.";
    // No primary answers: each refresh is counted `unreachable`, and the next
    // is 10 s away unless a NOTIFY asks for one.
    let nobody: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let d = dir("secondary", "notify-tsig");
    write_server_config(&d.0, zone, nobody, &tsig_table(&d.0, KEY));
    let srv = start(&d.0);
    let admin = srv.admin.expect("admin");
    wait_until("the first refresh", LIMIT, || {
        all_refreshes(admin, zone) >= 1
    });
    let before = all_refreshes(admin, zone);
    // Unsigned, from the primary's address: REFUSED.
    assert_eq!(notify("127.0.0.1", srv.addr, zone), Some((5, false)));
    // The right key's name, a wrong secret: NOTAUTH, BADSIG (16).
    assert_eq!(
        signed_notify(srv.addr, zone, "xfr-key.", WRONG),
        Some((9, false, 16))
    );
    // A key signpost does not have: NOTAUTH, BADKEY (17).
    assert_eq!(
        signed_notify(srv.addr, zone, "other-key.", KEY),
        Some((9, false, 17))
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        all_refreshes(admin, zone),
        before,
        "a refused NOTIFY started a refresh"
    );
    assert_eq!(
        metric(admin, "signpost_notify_received_total{result=\"tsig\"}"),
        3
    );
    assert_eq!(
        metric(admin, "signpost_notify_received_total{result=\"accepted\"}"),
        0
    );
    // Signed with the zone's key: taken, and a refresh follows at once.
    assert_eq!(
        signed_notify(srv.addr, zone, "xfr-key.", KEY),
        Some((0, true, 0))
    );
    wait_until(
        "the signed NOTIFY refreshes",
        Duration::from_secs(5),
        || all_refreshes(admin, zone) > before,
    );
    assert_eq!(
        metric(admin, "signpost_notify_received_total{result=\"accepted\"}"),
        1
    );
}

/// Writes the server config whole, by rename (as editors do).
fn replace_config(root: &Path, text: &str) {
    let tmp = root.join("server.toml.new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, root.join("server.toml")).expect("rename");
}

#[test]
fn secondary_tables_follow_a_reload() {
    let zone = "reload.test.";
    let first = FakePrimary::start(zone);
    first.set(Some(Send::Zone {
        serial: 1,
        www: [192, 0, 2, 7],
        expire: 600,
    }));
    let second = FakePrimary::start(zone);
    second.set(Some(Send::Zone {
        serial: 2,
        www: [192, 0, 2, 8],
        expire: 600,
    }));
    let d = dir("secondary", "reload");
    std::fs::write(
        d.0.join("zones/static.test.zone"),
        "$ORIGIN static.test.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.53\n",
    )
    .expect("zone");
    let plain = "zones = \"zones\"\n";
    replace_config(&d.0, plain);
    let srv = start(&d.0);
    assert_eq!(a_of(srv.addr, "www.reload.test."), "REFUSED");
    // Added: pulled and served without a restart.
    let with = |primary: SocketAddr| {
        format!("{plain}\n[[secondary]]\nzone = \"{zone}\"\nprimaries = [\"{primary}\"]\ntimeout = \"2s\"\n")
    };
    replace_config(&d.0, &with(first.addr));
    wait_until("the added secondary zone serves", LIMIT, || {
        a_of(srv.addr, "www.reload.test.") == "192.0.2.7"
    });
    // A bad table: rejected with its line, and the zone keeps serving.
    replace_config(
        &d.0,
        &format!("{plain}\n[[secondary]]\nzone = \"{zone}\"\nprimaries = [\"no address\"]\n"),
    );
    let line = srv.wait_log("reload rejected");
    assert!(line.contains("server.toml:5"), "{line}");
    assert_eq!(a_of(srv.addr, "www.reload.test."), "192.0.2.7");
    // Changed: another primary, taken from at once.
    replace_config(&d.0, &with(second.addr));
    wait_until("the changed table's primary serves", LIMIT, || {
        a_of(srv.addr, "www.reload.test.") == "192.0.2.8"
    });
    // Removed: no longer served, and its refresh stopped.
    replace_config(&d.0, plain);
    wait_until("the removed zone is gone", LIMIT, || {
        a_of(srv.addr, "www.reload.test.") == "REFUSED"
    });
    srv.wait_log("refresh stopped");
    assert_eq!(a_of(srv.addr, "ns.static.test."), "192.0.2.53");
}
