//! One DNSSEC key set per fleet, end to end: a real etcd (Debian's
//! etcd-server) on loopback ports of its own, signpost instances with key
//! folders of their own and one fleet secret, and a real validating Unbound
//! (Debian's unbound) trusting the one DS that `signpost check` printed.
//! Checks: every instance (one added later too) serves the same DNSKEY RRset
//! and validates; a corrupt value in etcd changes nothing and makes no second
//! set; a wrong secret, a secret readable by others, no secret, and no etcd
//! with no local keys are each refused with a clear error.

mod common;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{decode, udp_exchange, wait_until, Decoded, Dir, QuerySpec, Server};

const LIMIT: Duration = Duration::from_secs(20);
const UNBOUND: &str = "/usr/sbin/unbound";
const PREFIX: &str = "/signpost-keys-test/";
const KEY: &str = "/signpost-keys-test/dnssec/k.example./keys";
const A: u16 = 1;
const DNSKEY: u16 = 48;

fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: these tests need a real etcd 3.4+ \
                 (Debian: apt-get install etcd-server etcd-client; .ci/run installs them)"
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One etcd member on two loopback ports, its data in the test's folder.
struct Etcd {
    child: Child,
    client: u16,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let (client, peer) = (free_port(), free_port());
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).expect("etcd log");
        let child = Command::new(find_binary("etcd"))
            .arg("--name=t")
            .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=t={peer}"))
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        let e = Etcd { child, client };
        let start = Instant::now();
        while e.ctl(&["endpoint", "health"]).is_none() {
            assert!(
                start.elapsed() < LIMIT,
                "etcd did not become healthy; its log: {}",
                std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    /// etcdctl against this member; None when it fails.
    fn ctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(find_binary("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.url()))
            .arg("--command-timeout=2s")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ZONE: &str = "$ORIGIN k.example.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n  IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 192.0.2.80\n";

/// A scratch folder with the zone `k.example.` and a fleet secret (mode 0600).
fn setup(tag: &str) -> Dir {
    let d = common::dir("fleet-dnssec", tag);
    std::fs::write(d.0.join("zones/k.example.zone"), ZONE).expect("zone");
    secret_file(&d.0.join("secret"), &"5e".repeat(32), 0o600);
    d
}

fn secret_file(path: &Path, hex: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("{hex}\n")).expect("secret");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Instance `n`'s config: its own key folder `keys-N`, the fleet's prefix and
/// `secret` (a file name in the folder; `None`: no key_secret_file).
fn config(d: &Path, etcd_url: &str, n: u32, secret: Option<&str>) -> PathBuf {
    let path = d.join(format!("i{n}.toml"));
    let secret = secret.map_or(String::new(), |s| format!("key_secret_file = \"{s}\"\n"));
    let text = format!(
        "zones = \"zones\"\n[geo]\ndatabase = \"\"\n[dnssec]\nzones = [\"k.example.\"]\nkey_dir = \"keys-{n}\"\n\n[fleet]\nendpoints = [\"{etcd_url}\"]\nprefix = \"{PREFIX}\"\ninstance = \"i{n}\"\ntimeout = \"500ms\"\n{secret}"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn check(config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", config.to_str().expect("path")])
        .output()
        .expect("run signpost check")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The DS lines `signpost check` prints; it must succeed.
fn ds_of(config: &Path) -> Vec<String> {
    let out = check(config);
    assert!(out.status.success(), "check failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("ds: "))
        .map(str::to_string)
        .collect()
}

/// `signpost serve` that must fail: its exit and what it said.
fn serve_fails(config: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn signpost");
    let mut status = None;
    wait_until("signpost serve to give up", LIMIT, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let out = child.wait_with_output().expect("output");
    assert!(status.is_some_and(|s| !s.success()), "serve started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn start(config: &Path) -> Server {
    Server::start(&["--config", config.to_str().expect("path")])
}

/// A DO=1 query straight to an instance.
fn ask(server: &Server, name: &str, qtype: u16) -> Decoded {
    let mut q = QuerySpec::new(name, qtype).with_edns();
    if let Some(e) = q.edns.as_mut() {
        e.dnssec_ok = true;
    }
    let bytes = udp_exchange(server.addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no answer from signpost for {name}"));
    decode(&bytes)
}

/// The DNSKEY RRset an instance serves, its records sorted.
fn dnskeys(server: &Server) -> Vec<String> {
    let d = ask(server, "k.example.", DNSKEY);
    let mut keys: Vec<String> = d
        .answer
        .iter()
        .filter(|l| l.contains("DNSKEY") && !l.contains("RRSIG"))
        .cloned()
        .collect();
    keys.sort();
    assert!(!keys.is_empty(), "no DNSKEY: {d:#?}");
    keys
}

/// Key files (`K*`) directly in `dir`.
fn key_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('K'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A validating Unbound in front of `auth`, trusting `ds`; killed when dropped.
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

fn unbound(work: &Path, auth: SocketAddr, ds: &[String]) -> Unbound {
    assert!(
        Path::new(UNBOUND).is_file(),
        "{UNBOUND} is missing: install Debian's unbound package (apt-get install -y unbound); .ci/run does"
    );
    let port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let anchors: String = ds
        .iter()
        .map(|l| format!("  trust-anchor: \"{l}\"\n"))
        .collect();
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-not-query-localhost: no\n  module-config: \"validator iterator\"\n  chroot: \"\"\n  username: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound-{port}.pid\"\n  use-syslog: no\n  logfile: \"{d}/unbound-{port}.log\"\n  verbosity: 1\n  val-log-level: 2\n  access-control: 127.0.0.0/8 allow\n  outgoing-range: 64\n  num-threads: 1\n{anchors}remote-control:\n  control-enable: no\nstub-zone:\n  name: \"k.example.\"\n  stub-addr: {}@{}\n",
        auth.ip(),
        auth.port(),
        d = work.display()
    );
    let path = work.join(format!("unbound-{port}.conf"));
    std::fs::write(&path, conf).expect("unbound config");
    let child = Command::new(UNBOUND)
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn unbound");
    let u = Unbound {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    wait_until("unbound answers", LIMIT, || {
        let q = QuerySpec::new("k.example.", 6).with_edns();
        common::udp_exchange_wait(u.addr, &q.to_bytes(), Duration::from_millis(300)).is_some()
    });
    u
}

/// A recursive DO=1 query through Unbound must come back validated (AD).
fn assert_validates(u: &Unbound, name: &str, what: &str) {
    let mut q = QuerySpec::new(name, A).with_edns();
    q.rd = true;
    if let Some(e) = q.edns.as_mut() {
        e.dnssec_ok = true;
    }
    let bytes = udp_exchange(u.addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no answer from unbound for {name}"));
    let d = decode(&bytes);
    assert_eq!(d.rcode, "NOERROR", "{what}: {d:#?}");
    assert!(
        d.flags.contains(&"ad"),
        "{what}: no AD, the answer did not validate: {d:#?}"
    );
}

#[test]
fn every_instance_serves_the_fleets_one_key_set() {
    let d = setup("one");
    let etcd = Etcd::start(&d.0);
    let configs: Vec<PathBuf> = (1..=5)
        .map(|n| config(&d.0, &etcd.url(), n, Some("secret")))
        .collect();

    // Two instances check at once: each has its own empty key folder, so each
    // makes a set; one transaction wins, and both print the winner's DS.
    let (c1, c2) = (configs[0].clone(), configs[1].clone());
    let other = std::thread::spawn(move || ds_of(&c2));
    let ds = ds_of(&c1);
    let ds2 = other.join().expect("second check");
    assert_eq!(ds.len(), 1, "one DS for k.example.: {ds:?}");
    assert_eq!(ds, ds2, "two instances, two key sets");
    let stored = etcd.ctl(&["get", KEY]).expect("etcdctl get");
    assert!(stored.contains("signpost-dnssec-keys/1"), "{stored}");
    assert!(
        !stored.contains("PrivateKey"),
        "a private key in clear in etcd"
    );
    assert_eq!(
        key_files(&d.0.join("keys-1")),
        key_files(&d.0.join("keys-2"))
    );

    let i1 = start(&configs[0]);
    let i2 = start(&configs[1]);
    let set = dnskeys(&i1);
    assert_eq!(dnskeys(&i2), set, "two instances serve two DNSKEY sets");

    // An instance added later, with a fresh key folder: the same set.
    let started = Instant::now();
    let i3 = Server::start(&[
        "--config",
        configs[2].to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ]);
    println!(
        "third instance ready {:?} after spawn (key sync included)",
        started.elapsed()
    );
    assert_eq!(dnskeys(&i3), set, "a later instance made its own set");
    // The store task, which reads the whole prefix, leaves the key set alone.
    let admin = i3.admin.expect("admin");
    wait_until("instance 3's fleet view synced", LIMIT, || {
        let st: serde_json::Value =
            serde_json::from_str(&common::http(admin, "GET", "/status").1).expect("JSON");
        st["fleet"]["synced"] == true
    });
    let (_, metrics) = common::http(admin, "GET", "/metrics");
    assert!(
        metrics.contains("\nsignpost_fleet_bad_keys_total 0\n"),
        "{metrics}"
    );

    // An instance whose key folder has a set of its own (made by a check
    // without [fleet]): that set is moved aside, the fleet's served.
    let text5 = std::fs::read_to_string(&configs[4]).expect("config");
    let alone = d.0.join("alone.toml");
    let cut = text5.find("[fleet]").expect("[fleet]");
    std::fs::write(&alone, &text5[..cut]).expect("write");
    let own = ds_of(&alone);
    assert_ne!(own, ds);
    let mine = key_files(&d.0.join("keys-5"));
    let i5 = start(&configs[4]);
    assert_eq!(dnskeys(&i5), set, "an instance kept its own set");
    let aside: Vec<PathBuf> = std::fs::read_dir(d.0.join("keys-5"))
        .expect("keys-5")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.to_string_lossy().contains("replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(key_files(&aside[0]), mine, "its own set was not kept aside");
    drop(i5);

    // The one DS printed by check validates the answers of each instance.
    let u1 = unbound(&d.0, i1.addr, &ds);
    assert_validates(&u1, "www.k.example.", "through instance 1");
    let u2 = unbound(&d.0, i2.addr, &ds);
    assert_validates(&u2, "www.k.example.", "through instance 2");
    let u3 = unbound(&d.0, i3.addr, &ds);
    assert_validates(&u3, "www.k.example.", "through instance 3");

    // Garbage in etcd: a reload refuses it, says so, and serves the same set
    // from the same files.
    let entries = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|es| {
                es.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = entries(&d.0.join("keys-1"));
    etcd.ctl(&["put", KEY, "garbage"]).expect("etcdctl put");
    let ok = Command::new("kill")
        .arg("-HUP")
        .arg(i1.pid().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP");
    let line = i1.wait_log("refused the DNSSEC key set in etcd");
    assert!(line.contains("ERROR"), "{line}");
    i1.wait_log("reloaded");
    assert_eq!(dnskeys(&i1), set, "a corrupt value changed the keys");
    assert_validates(&u1, "mail.k.example.", "after the corrupt value");
    assert_eq!(entries(&d.0.join("keys-1")), before, "key_dir changed");
    // An instance that restarts keeps its (good) keys and serves them.
    drop(i2);
    let i2 = start(&configs[1]);
    assert_eq!(dnskeys(&i2), set);
    // A new instance has no keys to fall back on: it refuses to start rather
    // than make a second set.
    let said = serve_fails(&configs[3]);
    assert!(
        said.contains("are refused") && said.contains("key_dir has none"),
        "{said}"
    );
    assert!(key_files(&d.0.join("keys-4")).is_empty(), "a second set");
}

#[test]
fn an_instance_with_another_secret_is_refused() {
    let d = setup("wrong");
    let etcd = Etcd::start(&d.0);
    let good = config(&d.0, &etcd.url(), 1, Some("secret"));
    secret_file(&d.0.join("other-secret"), &"a7".repeat(32), 0o600);
    let wrong = config(&d.0, &etcd.url(), 2, Some("other-secret"));
    assert_eq!(ds_of(&good).len(), 1);
    let out = check(&wrong);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("another fleet secret") && said.contains("i2.toml:"),
        "{said}"
    );
    let said = serve_fails(&wrong);
    assert!(said.contains("another fleet secret"), "{said}");
    // It made no keys of its own, and etcd keeps the fleet's.
    assert!(key_files(&d.0.join("keys-2")).is_empty());
    let stored = etcd.ctl(&["get", KEY]).expect("etcdctl get");
    let i1 = start(&good);
    assert_eq!(etcd.ctl(&["get", KEY]).expect("etcdctl get"), stored);
    assert_eq!(dnskeys(&i1).len(), 1);
}

#[test]
fn the_fleet_secret_file_is_checked() {
    let d = setup("secret");
    // No etcd here: each of these fails before it would be asked.
    let url = format!("http://127.0.0.1:{}", free_port());
    let missing = config(&d.0, &url, 1, None);
    let out = check(&missing);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("i1.toml:8: a signed fleet needs fleet.key_secret_file so every instance serves one key set"),
        "{said}"
    );
    assert!(serve_fails(&missing).contains("a signed fleet needs fleet.key_secret_file"));

    secret_file(&d.0.join("open-secret"), &"5e".repeat(32), 0o644);
    let open = config(&d.0, &url, 2, Some("open-secret"));
    let said = text(&check(&open));
    assert!(
        said.contains("i2.toml:13: fleet.key_secret_file") && said.contains("mode 0644"),
        "{said}"
    );
    secret_file(&d.0.join("short-secret"), "5e5e", 0o600);
    let short = config(&d.0, &url, 3, Some("short-secret"));
    let said = text(&check(&short));
    assert!(
        said.contains("i3.toml:13:") && said.contains("64 hex digits") && !said.contains("5e5e"),
        "{said}"
    );
    for n in 1..=3 {
        assert!(key_files(&d.0.join(format!("keys-{n}"))).is_empty());
    }
}

#[test]
fn without_etcd_only_keys_already_here_are_used() {
    let d = setup("no-etcd");
    let url = format!("http://127.0.0.1:{}", free_port());
    let cfg = config(&d.0, &url, 1, Some("secret"));
    let out = check(&cfg);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("cannot reach etcd to learn the fleet's keys for k.example.")
            && said.contains("key_dir has none; start again when etcd is up"),
        "{said}"
    );
    assert!(serve_fails(&cfg).contains("cannot reach etcd"));
    assert!(
        key_files(&d.0.join("keys-1")).is_empty(),
        "a key made blind"
    );

    // Keys already in key_dir (made here by a check without [fleet]): used,
    // with a warning.
    let alone = d.0.join("alone.toml");
    let text_alone = std::fs::read_to_string(&cfg).expect("config");
    let cut = text_alone.find("[fleet]").expect("[fleet]");
    std::fs::write(&alone, &text_alone[..cut]).expect("write");
    let ds = ds_of(&alone);
    let out = check(&cfg);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning:") && said.contains("cannot reach etcd"),
        "{said}"
    );
    assert_eq!(ds_of(&cfg), ds);
    let s = start(&cfg);
    assert_eq!(dnskeys(&s).len(), 1);
}
