//! DNSSEC end to end: signpost signs the example zones, a real validating Unbound
//! (started here on loopback, trust anchor = our DS) resolves through it, and AD
//! says the answers validate: static, steered (every strategy, IPv4 and IPv6 ECS),
//! CNAME, wildcard, NXDOMAIN and NODATA (compact denial), across a reload and a key
//! roll; a tampered signature is bogus (SERVFAIL).

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{decode, dir, repo_path, udp_exchange, wait_until, Decoded, Dir, QuerySpec, Server};

const UNBOUND: &str = "/usr/sbin/unbound";

/// The example zones in a scratch folder, geo.example.com. signed through its policy
/// file (`dnssec = true`) and example.com. (a master file) through the server's
/// `[dnssec] zones`.
struct Setup {
    dir: Dir,
    config: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let dst = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

fn setup(tag: &str, extra: &str) -> Setup {
    let d = dir("dnssec", tag);
    copy_dir(&repo_path("zones"), &d.0.join("zones"));
    let geo = d.0.join("zones/geo.example.com.toml");
    let text = std::fs::read_to_string(&geo).unwrap();
    std::fs::write(&geo, format!("dnssec = true\n{text}")).unwrap();
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "zones = \"zones\"\n[geo]\ndatabase = \"{}\"\n[dnssec]\nzones = [\"example.com.\"]\nkey_dir = \"keys\"\n{extra}",
            repo_path("geo/geo-whois-asn-country.mmdb").display()
        ),
    )
    .unwrap();
    Setup { dir: d, config }
}

impl Setup {
    /// `signpost check`: generates the keys on first use and prints the DS lines.
    fn ds_lines(&self) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .arg("check")
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "check failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ds: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("ds: "))
            .map(str::to_string)
            .collect();
        assert_eq!(ds.len(), 2, "one DS per signed zone: {text}");
        ds
    }

    fn serve(&self, envs: &[(&str, &str)]) -> Server {
        Server::start_env(&["--config", self.config.to_str().unwrap()], envs)
    }
}

/// A validating Unbound in front of `auth`, killed when dropped.
struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn unbound(work: &Path, auth: SocketAddr, ds: &[String], ecs: bool) -> Unbound {
    assert!(
        Path::new(UNBOUND).is_file(),
        "{UNBOUND} is missing: install Debian's unbound package (apt-get install -y unbound); .ci/run does"
    );
    // The port is picked free, then bound by Unbound: another test's server may
    // take it in between, and Unbound then exits. Try again on another.
    for _ in 0..5 {
        if let Some(u) = try_unbound(work, auth, ds, ecs) {
            return u;
        }
    }
    panic!(
        "unbound did not start in five tries; see {}",
        work.display()
    );
}

fn try_unbound(work: &Path, auth: SocketAddr, ds: &[String], ecs: bool) -> Option<Unbound> {
    let port = free_port();
    // With ECS: the subnet cache in front, passing clients' subnets to signpost.
    let modules = if ecs {
        "  module-config: \"subnetcache validator iterator\"\n  send-client-subnet: 127.0.0.1\n  client-subnet-always-forward: yes\n"
    } else {
        "  module-config: \"validator iterator\"\n"
    };
    let anchors: String = ds
        .iter()
        .map(|l| format!("  trust-anchor: \"{l}\"\n"))
        .collect();
    let stubs: String = ["example.com.", "geo.example.com."]
        .iter()
        .map(|z| {
            format!(
                "stub-zone:\n  name: \"{z}\"\n  stub-addr: {}@{}\n",
                auth.ip(),
                auth.port()
            )
        })
        .collect();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-not-query-localhost: no\n{modules}  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound-{port}.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound-{port}.log\"\n  verbosity: 1\n  val-log-level: 2\n  access-control: 127.0.0.0/8 allow\n  outgoing-range: 64\n  num-threads: 1\n{anchors}remote-control:\n  control-enable: no\n{stubs}",
        d = work.display()
    );
    let path = work.join(format!("unbound-{port}.conf"));
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(UNBOUND)
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut u = Unbound {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    // Up when it answers anything (with a short wait per try).
    let mut exited = false;
    wait_until("unbound answers", Duration::from_secs(20), || {
        if u.child.try_wait().ok().flatten().is_some() {
            exited = true;
            return true;
        }
        let q = QuerySpec::new("example.com.", 6).with_edns();
        common::udp_exchange_wait(u.addr, &q.to_bytes(), Duration::from_millis(300)).is_some()
    });
    (!exited).then_some(u)
}

/// A recursive DO=1 query to the resolver.
fn resolve(u: &Unbound, name: &str, qtype: u16, ecs: Option<(IpAddr, u8)>) -> Decoded {
    let mut q = QuerySpec::new(name, qtype).with_edns();
    q.rd = true;
    if let Some(e) = q.edns.as_mut() {
        e.dnssec_ok = true;
        e.ecs = ecs;
    }
    let bytes = udp_exchange(u.addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no answer from unbound for {name}"));
    decode(&bytes)
}

/// A DO=0 or DO=1 query straight to signpost over UDP.
fn ask_signpost(server: &Server, name: &str, qtype: u16, dnssec_ok: bool) -> Decoded {
    let mut q = QuerySpec::new(name, qtype).with_edns();
    if let Some(e) = q.edns.as_mut() {
        e.dnssec_ok = dnssec_ok;
    }
    let bytes = udp_exchange(server.addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no answer from signpost for {name}"));
    decode(&bytes)
}

/// Signed example zones served, a validating Unbound in front (with ECS or not).
fn resolver(tag: &str, ecs: bool, envs: &[(&str, &str)]) -> (Setup, Server, Unbound) {
    let s = setup(tag, "");
    let ds = s.ds_lines();
    let server = s.serve(envs);
    let u = unbound(&s.dir.0, server.addr, &ds, ecs);
    (s, server, u)
}

fn assert_secure(d: &Decoded, what: &str) {
    assert_eq!(d.rcode, "NOERROR", "{what}: {d:#?}");
    assert!(
        d.flags.contains(&"ad"),
        "{what}: no AD, the answer did not validate: {d:#?}"
    );
}

fn has(d: &Decoded, text: &str) -> bool {
    d.answer.iter().any(|l| l.contains(text))
}

const A: u16 = 1;
const MX: u16 = 15;
const AAAA: u16 = 28;
const DS: u16 = 43;
const DNSKEY: u16 = 48;

#[test]
fn validating_resolver_gets_ad_on_every_kind_of_answer() {
    every_kind_validates("kinds", "");
}

/// The same answers with a classic NSEC chain (`denial = "nsec"`) instead of
/// compact denial, and the chain walked from the apex back to it.
#[test]
fn an_nsec_chain_validates_and_walks() {
    every_kind_validates("chain", "denial = \"nsec\"\n");
    let s = setup("walk", "denial = \"nsec\"\n");
    s.ds_lines();
    let server = s.serve(&[]);
    // The geo zone's chain (example.com.'s passes through geo.example.com., which
    // this server answers from the child zone, as any server holding both would).
    let mut name = "geo.example.com.".to_string();
    let mut seen = Vec::new();
    loop {
        let d = ask_signpost(&server, &name, 47, true);
        let nsec = d
            .answer
            .iter()
            .find(|l| l.contains(" IN NSEC "))
            .unwrap_or_else(|| panic!("no NSEC at {name}: {d:#?}"))
            .clone();
        seen.push(name.clone());
        name = nsec.split_whitespace().nth(4).unwrap().to_string();
        if name == "geo.example.com." || seen.len() > 50 {
            break;
        }
    }
    assert_eq!(
        name, "geo.example.com.",
        "the chain does not close: {seen:?}"
    );
    // Every name with data, steered ones included, in canonical order.
    let want = [
        "geo.example.com.",
        "accounts.geo.example.com.",
        "api-read.geo.example.com.",
        "api-write.geo.example.com.",
        "canary.geo.example.com.",
        "cdn.geo.example.com.",
        "db.geo.example.com.",
        "docs.geo.example.com.",
        "ns1.geo.example.com.",
        "pool.geo.example.com.",
        "shop.geo.example.com.",
        "www.geo.example.com.",
    ];
    assert_eq!(seen, want);
    // The delegation in example.com. is in its chain, its glue is not.
    let lab = ask_signpost(&server, "lab.example.com.", 47, true);
    assert!(
        lab.answer
            .iter()
            .any(|l| l.contains(" IN NSEC ") && l.contains(" NS RRSIG NSEC")),
        "{lab:#?}"
    );
    let glue = ask_signpost(&server, "ns1.lab.example.com.", 47, true);
    assert!(
        !glue.answer.iter().any(|l| l.contains(" IN NSEC ")),
        "{glue:#?}"
    );
    // NXDOMAIN stays NXDOMAIN, with the NSECs that cover the name and the wildcard.
    let nx = ask_signpost(&server, "nope.example.com.", A, true);
    assert_eq!(nx.rcode, "NXDOMAIN", "{nx:#?}");
    assert!(
        nx.authority
            .iter()
            .filter(|l| l.contains(" IN NSEC "))
            .count()
            >= 1,
        "{nx:#?}"
    );
}

fn every_kind_validates(tag: &str, extra: &str) {
    let s = setup(tag, extra);
    let ds = s.ds_lines();
    let server = s.serve(&[]);
    let u = unbound(&s.dir.0, server.addr, &ds, false);
    let cases: &[(&str, u16, Option<&str>)] = &[
        ("www.example.com.", A, Some("192.0.2.80")),
        ("example.com.", MX, Some("MX")),
        ("example.com.", DNSKEY, Some("DNSKEY")),
        // A CNAME followed inside the zone, and a wildcard.
        ("blog.example.com.", A, Some("CNAME")),
        (
            "anything.users.example.com.",
            A,
            Some("anything.users.example.com."),
        ),
        // Compact denial: NXDOMAIN answered NOERROR with NSEC (NXNAME), and NODATA.
        ("nope.example.com.", A, None),
        ("www.example.com.", MX, None),
        // No DS at an insecure delegation, proven.
        ("lab.example.com.", DS, None),
        // Steered, one per strategy; a NODATA of a steered name.
        ("www.geo.example.com.", A, Some("192.0.2.")),
        ("www.geo.example.com.", AAAA, Some("2001:db8:")),
        ("db.geo.example.com.", A, Some("192.0.2.11")),
        ("shop.geo.example.com.", A, Some("192.0.2.")),
        ("canary.geo.example.com.", A, Some("192.0.2.")),
        ("pool.geo.example.com.", A, Some("192.0.2.")),
        ("accounts.geo.example.com.", A, Some("192.0.2.")),
        ("api-read.geo.example.com.", AAAA, None),
        ("nothere.geo.example.com.", A, None),
        ("geo.example.com.", DNSKEY, Some("DNSKEY")),
    ];
    for (name, t, want) in cases {
        let d = resolve(&u, name, *t, None);
        let what = format!("{name} type {t}");
        // Compact denial answers NOERROR where a chain proves NXDOMAIN.
        let gone = name.starts_with("nope.") || name.starts_with("nothere.");
        if gone && !extra.is_empty() {
            assert_eq!(d.rcode, "NXDOMAIN", "{what}: {d:#?}");
            assert!(d.flags.contains(&"ad"), "{what}: no AD: {d:#?}");
        } else {
            assert_secure(&d, &what);
        }
        match want {
            Some(w) => assert!(has(&d, w), "{what}: expected {w:?} in {d:#?}"),
            None => assert!(d.answer.is_empty(), "{what}: expected no answer: {d:#?}"),
        }
    }
    // `all` answers several endpoints: one RRset, signed on the fly, still valid.
    let pool = resolve(&u, "pool.geo.example.com.", A, None);
    assert!(
        pool.answer.iter().filter(|l| l.contains(" A ")).count() >= 2,
        "{pool:#?}"
    );
}

#[test]
fn signatures_come_only_with_do_and_denial_is_compact() {
    let s = setup("direct", "");
    let ds = s.ds_lines();
    // `signpost ctl ds` reads the same keys offline and prints the same line.
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([
            "ctl",
            "ds",
            "example.com",
            "--config",
            s.config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        line.starts_with("example.com. IN DS ") && line.contains(" 13 2 "),
        "{line}"
    );
    assert!(ds.contains(&line), "{line} not in {ds:?}");
    let server = s.serve(&[]);
    let ask = |name: &str, t: u16, dnssec_ok: bool| ask_signpost(&server, name, t, dnssec_ok);
    let plain = ask("www.example.com.", A, false);
    assert!(
        plain.answer.iter().all(|l| !l.contains("RRSIG")),
        "{plain:#?}"
    );
    let signed = ask("www.example.com.", A, true);
    assert!(
        signed.answer.iter().any(|l| l.contains("RRSIG")),
        "{signed:#?}"
    );
    // DO=0 keeps NXDOMAIN; DO=1 gets NOERROR with an NSEC whose bitmap has NXNAME.
    assert_eq!(ask("nope.example.com.", A, false).rcode, "NXDOMAIN");
    let nx = ask("nope.example.com.", A, true);
    assert_eq!(nx.rcode, "NOERROR", "{nx:#?}");
    // hickory-proto prints type 128 (NXNAME) as "Unknown".
    let nsec = nx
        .authority
        .iter()
        .find(|l| l.contains(" IN NSEC "))
        .unwrap_or_else(|| panic!("{nx:#?}"));
    assert!(
        nsec.ends_with("RRSIG NSEC Unknown") || nsec.ends_with("RRSIG NSEC NXNAME"),
        "{nsec}"
    );
    // NODATA: the NSEC lists the name's real types, not the one asked for.
    let nodata = ask("www.example.com.", MX, true);
    let nsec = nodata
        .authority
        .iter()
        .find(|l| l.contains(" IN NSEC "))
        .unwrap_or_else(|| panic!("{nodata:#?}"));
    assert!(
        nsec.contains(" A ") || nsec.ends_with(" A") || nsec.contains("\tA"),
        "{nsec}"
    );
    assert!(!nsec.contains("MX"), "{nsec}");
}

#[test]
fn ecs_answers_validate_through_a_subnet_cache() {
    let (_s, _server, u) = resolver("ecs", true, &[]);
    let cases: &[(&str, u16, &str, u8, &str)] = &[
        // The partner network pinned by a cidr rule, a UK network (EU), IPv6 in Japan.
        ("shop.geo.example.com.", A, "203.0.113.0", 24, "192.0.2.35"),
        ("shop.geo.example.com.", A, "81.2.69.0", 24, "192.0.2.25"),
        (
            "www.geo.example.com.",
            AAAA,
            "2001:200::",
            48,
            "2001:db8:30::30",
        ),
        ("www.geo.example.com.", A, "2001:200::", 48, "192.0.2.30"),
    ];
    for (name, t, addr, prefix, want) in cases {
        let d = resolve(&u, name, *t, Some((addr.parse().unwrap(), *prefix)));
        let what = format!("{name} type {t} from {addr}/{prefix}");
        assert_secure(&d, &what);
        assert!(has(&d, want), "{what}: expected {want}: {d:#?}");
    }
}

#[cfg(debug_assertions)]
#[test]
fn a_tampered_signature_is_bogus() {
    let (_s, _server, u) = resolver("tamper", false, &[("SIGNPOST_TEST_TAMPER_RRSIG", "1")]);
    let d = resolve(&u, "www.example.com.", A, None);
    assert_eq!(
        d.rcode, "SERVFAIL",
        "a bad signature must not validate: {d:#?}"
    );
}

fn hup(server: &Server) {
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(server.pid().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP");
}

#[test]
fn answers_validate_across_a_reload_and_a_key_roll() {
    let (s, server, u) = resolver("roll", false, &[]);
    assert_secure(&resolve(&u, "www.example.com.", A, None), "before the roll");

    // A second key for example.com., made by the same code in another folder, then
    // dropped into key_dir: after the reload both are published and both sign.
    let other = s.dir.0.join("other.toml");
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &other,
        text.replace("key_dir = \"keys\"", "key_dir = \"newkeys\""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    for e in std::fs::read_dir(s.dir.0.join("newkeys"))
        .unwrap()
        .flatten()
    {
        let n = e.file_name();
        if n.to_string_lossy().starts_with("Kexample.com.+") {
            std::fs::copy(e.path(), s.dir.0.join("keys").join(&n)).unwrap();
        }
    }
    hup(&server);
    server.wait_log("reloaded");
    let keys = ask_signpost(&server, "example.com.", DNSKEY, true);
    let dnskeys = keys
        .answer
        .iter()
        .filter(|l| l.contains("DNSKEY") && !l.contains("RRSIG"))
        .count();
    assert_eq!(dnskeys, 2, "both keys published: {keys:#?}");
    let sigs = keys.answer.iter().filter(|l| l.contains("RRSIG")).count();
    assert_eq!(sigs, 2, "both keys sign: {keys:#?}");
    // Names the resolver has not cached: validated against the old anchor.
    assert_secure(&resolve(&u, "mail.example.com.", A, None), "after the roll");
    assert_secure(
        &resolve(&u, "other.users.example.com.", A, None),
        "wildcard after the roll",
    );

    // A bad key file at reload: rejected with its file and line, the signed
    // configuration keeps serving.
    std::fs::write(
        s.dir.0.join("keys/Kexample.com.+013+00001.key"),
        "example.com. IN DNSKEY 257 3 8 AAAA\n",
    )
    .unwrap();
    hup(&server);
    let line = server.wait_log("reload rejected");
    assert!(line.contains("Kexample.com.+013+00001.key:1"), "{line}");
    assert!(line.contains("algorithm 8"), "{line}");
    assert_secure(
        &resolve(&u, "third.users.example.com.", A, None),
        "after a bad key file",
    );
}

#[test]
fn signing_on_the_fly_is_capped_and_never_unsigned() {
    let s = setup("cap", "sign_rate = 5\n");
    s.ds_lines();
    let server = s.serve(&[]);
    let ask = |name: &str, dnssec_ok: bool| ask_signpost(&server, name, A, dnssec_ok);
    // Each name that does not exist needs an NSEC signed for it.
    let (mut signed, mut refused) = (0, 0);
    for i in 0..40 {
        let d = ask(&format!("n{i}.example.com."), true);
        match d.rcode.as_str() {
            "SERVFAIL" => {
                assert!(d.authority.is_empty() && d.answer.is_empty(), "{d:#?}");
                refused += 1;
            }
            "NOERROR" => {
                assert!(
                    d.authority.iter().any(|l| l.contains("RRSIG NSEC")),
                    "{d:#?}"
                );
                signed += 1;
            }
            _ => panic!("{d:#?}"),
        }
    }
    // A new client network may spend half the burst (2 of 5), then what refills:
    // the 40 queries take far under 3 s.
    assert!(
        (2..=20).contains(&signed),
        "signed {signed}, refused {refused}"
    );
    assert!(refused > 0, "the cap never applied");
    // What was signed is cached: no token needed. DO=0 is not affected at all.
    let again = ask("n0.example.com.", true);
    assert_eq!(again.rcode, "NOERROR", "{again:#?}");
    assert_eq!(ask("n39.example.com.", false).rcode, "NXDOMAIN");
}
