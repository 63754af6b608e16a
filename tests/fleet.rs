//! The fleet end to end: a real etcd (Debian's etcd-server) on loopback ports of
//! its own, three real signpost instances sharing it, a real HTTP backend that
//! each instance probes from its own loopback address (`probe_source`), so the
//! test can cut one instance off from it. Checks the issue's list: a drain seen
//! by all three, quorum 2 of 3, etcd killed and back, an instance killed.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ask_udp, http, Dir, QuerySpec, Server};

const LIMIT: Duration = Duration::from_secs(20);

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

fn dir(tag: &str) -> Dir {
    common::dir("fleet", tag)
}

/// One etcd member on two loopback ports, its data in `dir`.
struct Etcd {
    child: Option<Child>,
    client: u16,
    peer: u16,
    data: PathBuf,
    log: PathBuf,
    /// Serve clients over TLS with this certificate and key (PEM files).
    tls: Option<(PathBuf, PathBuf)>,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        Etcd::start_with(dir, None)
    }

    fn start_with(dir: &Path, tls: Option<(PathBuf, PathBuf)>) -> Etcd {
        let mut e = Etcd {
            child: None,
            client: free_port(),
            peer: free_port(),
            data: dir.join("etcd-data"),
            log: dir.join("etcd.log"),
            tls,
        };
        e.spawn();
        e
    }

    fn url(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.client),
            None => format!("http://127.0.0.1:{}", self.client),
        }
    }

    fn listen_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client)
    }

    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("etcd log");
        let mut cmd = Command::new(find_binary("etcd"));
        if let Some((cert, key)) = &self.tls {
            cmd.arg(format!("--cert-file={}", cert.display()))
                .arg(format!("--key-file={}", key.display()));
        }
        let child = cmd
            .arg("--name=t")
            .arg(format!("--data-dir={}", self.data.display()))
            .arg(format!("--listen-client-urls={}", self.listen_url()))
            .arg(format!("--advertise-client-urls={}", self.url()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=t={peer}"))
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let start = Instant::now();
        while self.ctl(&["endpoint", "health"]).is_none() {
            assert!(
                start.elapsed() < LIMIT,
                "etcd did not become healthy; its log: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no goodbye to its clients.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// etcdctl against this member; None when it fails.
    fn ctl(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new(find_binary("etcdctl"));
        if let Some((cert, _)) = &self.tls {
            cmd.arg(format!("--cacert={}", cert.display()));
        }
        let out = cmd
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
        self.kill();
    }
}

/// An HTTP backend that fails (503) the probes that come from the source
/// addresses in `blocked`, and passes the others.
struct Backend {
    addr: SocketAddr,
    blocked: Arc<Mutex<Vec<IpAddr>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let blocked: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (blocked.clone(), stop.clone());
        let thread = common::serve_health(listener, s, move |peer| {
            !b.lock().map(|v| v.contains(&peer.ip())).unwrap_or(false)
        });
        Backend {
            addr,
            blocked,
            stop,
            thread: Some(thread),
        }
    }

    fn block(&self, ip: &str) {
        let ip: IpAddr = ip.parse().expect("ip");
        self.blocked.lock().expect("lock").push(ip);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `fo` answers 192.0.2.10 (region a, probed on the backend) while a is up and
/// not drained, else 192.0.2.20 (region b, unprobed).
fn zone(backend: SocketAddr) -> String {
    format!(
        r#"origin = "f.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.f.test."
contact = "h@f.test"
negative_ttl = 60

[checks.web]
http = {{ port = 80, path = "/healthz", expect = 200 }}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 1
fall = 2
quorum = 2              # over [fleet] quorum = "100%"

[regions]
a = {{}}
b = {{}}

[names.fo]
strategy = "failover"
ttl = 30
endpoints.a = {{ a = ["192.0.2.10"], check = "web", probe = "{backend}" }}
endpoints.b = {{ a = ["192.0.2.20"] }}
"#
    )
}

/// Instance `n` (1..=3): probes from 127.0.0.n, its own state file.
fn config(d: &Path, etcd: &Etcd, n: u32, fallback: &str) -> PathBuf {
    let path = d.join(format!("i{n}.toml"));
    let text = format!(
        r#"zones = "zones"
state_file = "state-{n}.toml"
probe_source = "127.0.0.{n}"

[fleet]
endpoints = ["{url}"]
prefix = "/signpost-test/"
instance = "i{n}"
site = "site-{n}"
quorum = "100%"         # the check's own quorum = 2 wins
lease_ttl = "2s"
timeout = "500ms"
fallback = "{fallback}"
"#,
        url = etcd.url()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn start(config: &Path) -> Server {
    Server::start(&[
        "--config",
        config.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ])
}

/// The address `fo` answers with.
fn answer(s: &Server) -> String {
    ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1))
        .answer
        .iter()
        .filter_map(|r| r.split_whitespace().last().map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

fn status(s: &Server) -> serde_json::Value {
    let (code, body) = http(s.admin.expect("admin"), "GET", "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status is JSON")
}

fn post(s: &Server, path: &str) {
    let (code, body) = http(s.admin.expect("admin"), "POST", path);
    assert_eq!(code, 200, "{path}: {body}");
}

/// The vote `instance` has for the backend's target, as `s` shows it.
fn vote(s: &Server, instance: &str) -> Option<String> {
    let st = status(s);
    st["targets"].as_array()?.first()?["votes"][instance]
        .as_str()
        .map(str::to_string)
}

fn wait_until(what: &str, f: impl FnMut() -> bool) -> Duration {
    common::wait_until(what, LIMIT, f)
}

fn all_answer(servers: &[&Server], addr: &str) -> bool {
    servers.iter().all(|s| answer(s) == addr)
}

fn in_sync(s: &Server, instances: usize) -> bool {
    let st = status(s);
    st["fleet"]["synced"] == true
        && st["fleet"]["connected"] == true
        && st["fleet"]["instances"].as_object().map(|o| o.len()) == Some(instances)
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, body) = http(s.admin.expect("admin"), "GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn drains_votes_and_leases_across_three_instances() {
    let d = dir("votes");
    let etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let configs: Vec<PathBuf> = (1..=3).map(|n| config(&d.0, &etcd, n, "60s")).collect();
    let i1 = start(&configs[0]);
    let i2 = start(&configs[1]);
    let mut i3 = Some(start(&configs[2]));
    fn all<'a>(i1: &'a Server, i2: &'a Server, i3: &'a Option<Server>) -> Vec<&'a Server> {
        let mut v = vec![i1, i2];
        v.extend(i3.as_ref());
        v
    }
    wait_until("three instances in sync", || {
        all(&i1, &i2, &i3).iter().all(|s| in_sync(s, 3))
    });
    assert!(all_answer(&all(&i1, &i2, &i3), "192.0.2.10"));

    // A drain through one instance reaches the answers of all three.
    post(&i1, "/v1/override?target=region:a&action=drain");
    let took = wait_until("the drain on every instance", || {
        all_answer(&all(&i1, &i2, &i3), "192.0.2.20")
    });
    println!("drain through i1 seen in all three instances' answers after {took:?}");
    let keys = etcd
        .ctl(&["get", "--prefix", "/signpost-test/overrides/"])
        .expect("etcdctl get");
    assert!(
        keys.contains("region:a") && keys.contains("drain"),
        "{keys}"
    );
    post(&i2, "/v1/override?target=region:a&action=undrain");
    wait_until("the undrain on every instance", || {
        all_answer(&all(&i1, &i2, &i3), "192.0.2.10")
    });

    // One instance cut off from the backend: with quorum 2 it stays up.
    backend.block("127.0.0.3");
    wait_until("i3's down vote seen by i1", || {
        vote(&i1, "i3").as_deref() == Some("down")
    });
    let st3 = status(i3.as_ref().expect("i3"));
    assert_eq!(st3["targets"][0]["local"], "down", "{st3}");
    assert!(
        all_answer(&all(&i1, &i2, &i3), "192.0.2.10"),
        "one of three must not take the backend down"
    );
    // Two cut off: down everywhere, i1 included, though its own probes pass.
    backend.block("127.0.0.2");
    wait_until("two down votes take it down on all three", || {
        all_answer(&all(&i1, &i2, &i3), "192.0.2.20")
    });
    assert_eq!(status(&i1)["targets"][0]["local"], "up");

    // i3 killed: its down vote expires with its lease; one down of two is
    // under the quorum, so the backend comes back on i1 and i2.
    drop(i3.take());
    let took = wait_until("i3's vote to expire", || vote(&i1, "i3").is_none());
    println!("killed instance's vote gone after {took:?} (lease_ttl 2s)");
    wait_until("the backend back up on the two left", || {
        all_answer(&[&i1, &i2], "192.0.2.10")
    });
    assert!(in_sync(&i1, 2));

    // Bad values under the prefix: ignored, counted, answers unchanged.
    let before = metric(&i1, "signpost_fleet_bad_keys_total");
    for (k, v) in [
        ("/signpost-test/overrides/region:a", "sideways"),
        ("/signpost-test/weights/region:a", "-5"),
        ("/signpost-test/overrides/region:nowhere", "drain"),
        ("/signpost-test/votes/i9/x", "maybe"),
    ] {
        etcd.ctl(&["put", "--", k, v]).expect("etcdctl put");
    }
    wait_until("four bad keys counted", || {
        metric(&i1, "signpost_fleet_bad_keys_total") >= before + 4
    });
    assert!(all_answer(&[&i1, &i2], "192.0.2.10"));
    let line = i1.wait_log("key ignored");
    assert!(line.contains("/signpost-test/"), "{line}");
}

#[test]
fn etcd_gone_keeps_the_view_and_loses_no_override() {
    let d = dir("outage");
    let mut etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let configs: Vec<PathBuf> = (1..=3).map(|n| config(&d.0, &etcd, n, "60s")).collect();
    let i1 = start(&configs[0]);
    let mut i2 = start(&configs[1]);
    let i3 = start(&configs[2]);
    wait_until("three instances in sync", || {
        [&i1, &i2, &i3].iter().all(|s| in_sync(s, 3))
    });
    post(&i1, "/v1/override?target=region:a&action=drain");
    wait_until("the drain on every instance", || {
        all_answer(&[&i1, &i2, &i3], "192.0.2.20")
    });

    // etcd killed: every instance notices, and answers from its last view.
    etcd.kill();
    wait_until("every instance to see etcd gone", || {
        [&i1, &i2, &i3]
            .iter()
            .all(|s| status(s)["fleet"]["connected"] == false)
    });
    assert!(all_answer(&[&i1, &i2, &i3], "192.0.2.20"));

    // An instance restarted meanwhile starts from its state file.
    drop(i2);
    i2 = start(&configs[1]);
    assert_eq!(answer(&i2), "192.0.2.20", "restarted without its drain");
    assert_eq!(status(&i2)["fleet"]["synced"], false);

    // An undrain through another instance while etcd is down: applied there,
    // queued for etcd.
    post(&i3, "/v1/override?target=region:a&action=undrain");
    assert_eq!(answer(&i3), "192.0.2.10");
    assert_eq!(metric(&i3, "signpost_fleet_pending_writes"), 1);
    assert_eq!(answer(&i1), "192.0.2.20", "i1 cannot know yet");

    // etcd back: the queued undrain is written and reaches all three.
    etcd.spawn();
    let took = wait_until(
        "the undrain made during the outage on every instance",
        || all_answer(&[&i1, &i2, &i3], "192.0.2.10"),
    );
    println!("after etcd came back, the outage's undrain reached all three in {took:?}");
    wait_until("all in sync again", || {
        [&i1, &i2, &i3].iter().all(|s| in_sync(s, 3))
    });
    let keys = etcd
        .ctl(&["get", "--prefix", "/signpost-test/overrides/"])
        .expect("etcdctl get");
    assert!(
        !keys.contains("region:a"),
        "the drain is still in etcd: {keys}"
    );
    assert_eq!(metric(&i3, "signpost_fleet_pending_writes"), 0);
}

#[test]
fn writes_go_through_etcds_own_users() {
    let d = dir("auth");
    let etcd = Etcd::start(&d.0);
    // A root user with a password and auth on: clients without it are refused.
    etcd.ctl(&["user", "add", "root:s3cret", "--interactive=false"])
        .expect("etcdctl user add");
    etcd.ctl(&["user", "grant-role", "root", "root"])
        .expect("etcdctl user grant-role");
    etcd.ctl(&["auth", "enable"]).expect("etcdctl auth enable");
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    std::fs::write(d.0.join("etcd-password"), "s3cret\n").expect("password file");
    // Private to the user, as `signpost check` asks.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        d.0.join("etcd-password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod the password file");
    let with_user = config(&d.0, &etcd, 1, "60s");
    let mut text = std::fs::read_to_string(&with_user).expect("read config");
    text.push_str("user = \"root\"\npassword_file = \"etcd-password\"\n");
    std::fs::write(&with_user, text).expect("write config");
    let anonymous = config(&d.0, &etcd, 2, "60s");
    let i1 = start(&with_user);
    let i2 = start(&anonymous);
    wait_until("the instance with a user in sync", || in_sync(&i1, 1));

    // Its drain is written to etcd under its user.
    post(&i1, "/v1/override?target=region:a&action=drain");
    wait_until("the drain in etcd", || {
        etcd.ctl(&[
            "--user=root:s3cret",
            "get",
            "--prefix",
            "/signpost-test/overrides/",
        ])
        .is_some_and(|keys| keys.contains("region:a"))
    });
    assert_eq!(answer(&i1), "192.0.2.20");
    // Without credentials, nothing in etcd reaches an instance: it keeps its own
    // view, and never counts as in sync.
    assert_eq!(status(&i2)["fleet"]["synced"], false);
    assert_eq!(
        answer(&i2),
        "192.0.2.10",
        "a drain reached the anonymous one"
    );
    // Nor does etcd take anonymous writes.
    assert!(
        etcd.ctl(&["put", "/signpost-test/overrides/region:a", "undrain"])
            .is_none(),
        "etcd took a write without a user"
    );
    // The password is not shown in the status.
    let (_, st) = http(i1.admin.expect("admin"), "GET", "/status");
    assert!(!st.contains("s3cret"), "the password in /status");
}

#[test]
fn the_store_over_tls_with_the_operators_ca() {
    let d = dir("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert_pem, key_pem) = (d.0.join("etcd.pem"), d.0.join("etcd-key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).expect("write key");
    let etcd = Etcd::start_with(&d.0, Some((cert_pem, key_pem)));
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let trusting = config(&d.0, &etcd, 1, "60s");
    let mut text = std::fs::read_to_string(&trusting).expect("read config");
    text.push_str("ca_file = \"etcd.pem\"\n");
    std::fs::write(&trusting, text).expect("write config");
    let untrusting = config(&d.0, &etcd, 2, "60s");
    let i1 = start(&trusting);
    let i2 = start(&untrusting);
    wait_until("the instance that trusts the CA in sync", || {
        in_sync(&i1, 1)
    });
    post(&i1, "/v1/override?target=region:a&action=drain");
    wait_until("the drain in etcd, over TLS", || {
        etcd.ctl(&["get", "--prefix", "/signpost-test/overrides/"])
            .is_some_and(|keys| keys.contains("region:a"))
    });
    // The other one does not know the certificate: it never syncs, and keeps
    // its own view.
    assert_eq!(status(&i2)["fleet"]["synced"], false);
    assert_eq!(answer(&i2), "192.0.2.10");
}

#[test]
fn etcd_gone_past_the_fallback_time_hands_health_back_to_own_probes() {
    let d = dir("fallback");
    let mut etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let configs: Vec<PathBuf> = (1..=3).map(|n| config(&d.0, &etcd, n, "1s")).collect();
    let servers: Vec<Server> = configs.iter().map(|c| start(c)).collect();
    let all: Vec<&Server> = servers.iter().collect();
    wait_until("three instances in sync", || {
        all.iter().all(|s| in_sync(s, 3))
    });
    // i1 cannot reach the backend; one down vote of three is under the quorum.
    backend.block("127.0.0.1");
    wait_until("i1's down vote seen by i2", || {
        vote(all[1], "i1").as_deref() == Some("down")
    });
    assert!(all_answer(&all, "192.0.2.10"), "one vote took it down");

    // etcd gone: past `fallback`, each instance's own probes decide, so i1
    // alone answers from region b.
    etcd.kill();
    wait_until("i1 to fall back to its own probes", || {
        status(all[0])["fleet"]["fallback"] == true && answer(all[0]) == "192.0.2.20"
    });
    assert_eq!(metric(all[0], "signpost_fleet_fallback"), 1);
    wait_until("the others to fall back too", || {
        all[1..]
            .iter()
            .all(|s| status(s)["fleet"]["fallback"] == true)
    });
    assert!(all_answer(&all[1..], "192.0.2.10"));

    // etcd back: the fleet's votes decide again, and i1 answers with the others.
    etcd.spawn();
    wait_until("i1 back on the fleet's verdict", || {
        status(all[0])["fleet"]["fallback"] == false && answer(all[0]) == "192.0.2.10"
    });
    assert_eq!(metric(all[0], "signpost_fleet_fallback"), 0);
}

/// Values in etcd larger than a whole read of the prefix may be (4 MiB), each
/// under etcd's own request cap: the instance still syncs, reading the prefix a
/// page at a time, and counts each oversized value as a bad key.
#[test]
fn a_read_of_the_prefix_gets_past_values_over_the_size_caps() {
    let d = dir("paged");
    let etcd = Etcd::start(&d.0);
    let big = vec![b'x'; 1_200_000];
    for i in 0..4 {
        let mut child = Command::new(find_binary("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.url()))
            .arg("--command-timeout=5s")
            .args(["put", &format!("/signpost-test/instances/big-{i}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn etcdctl");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&big)
            .expect("value to etcdctl");
        assert!(child.wait().expect("etcdctl").success(), "etcdctl put");
    }
    etcd.ctl(&["put", "/signpost-test/overrides/region:a", "drain"])
        .expect("etcdctl put");
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let i1 = start(&config(&d.0, &etcd, 1, "60s"));
    wait_until("in sync past the big values", || in_sync(&i1, 1));
    assert!(metric(&i1, "signpost_fleet_bad_keys_total") >= 4);
    // The key after them was read.
    wait_until("the drain read", || answer(&i1) == "192.0.2.20");
}

/// Every file under `dir` (recursively) whose name ends with `ext` ("" for
/// any), by its path from the repository's root.
fn files_under(root: &Path, dir: &str, ext: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{dir}/{name}");
        if e.path().is_dir() {
            if name != "target" {
                files_under(root, &rel, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(rel);
        }
    }
}

/// The etcd stubs signpost builds from (src/fleet/etcd/pb) are what
/// contrib/regen-etcd-proto.sh last wrote from the .proto files and generator
/// now in the tree: each file's SHA-256 as SHA256SUMS records it, and every
/// such file recorded. Editing a .proto or the generator without
/// regenerating, or a stub by hand, fails here; the script's --check
/// regenerates and compares outright (it needs protoc).
#[test]
fn the_checked_in_etcd_stubs_are_what_their_protos_generate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sums_path = "src/fleet/etcd/pb/SHA256SUMS";
    let sums = std::fs::read_to_string(root.join(sums_path)).expect("read SHA256SUMS");
    let mut listed = Vec::new();
    let mut stale = Vec::new();
    for line in sums.lines() {
        let (want, path) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("{sums_path}: not `SUM  PATH`: {line:?}"));
        let bytes = std::fs::read(root.join(path)).unwrap_or_default();
        let got = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let got: String = got.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        if got != want {
            stale.push(path.to_string());
        }
        listed.push(path.to_string());
    }
    let mut present = Vec::new();
    files_under(root, "contrib/etcd-proto", "", &mut present);
    files_under(root, "src/fleet/etcd/proto", ".proto", &mut present);
    files_under(root, "src/fleet/etcd/pb", ".rs", &mut present);
    let unlisted: Vec<&String> = present.iter().filter(|p| !listed.contains(p)).collect();
    assert!(
        stale.is_empty() && unlisted.is_empty(),
        "the etcd stubs are not current: changed {stale:?}, not in {sums_path} {unlisted:?}; \
         run contrib/regen-etcd-proto.sh (needs protoc: Debian's protobuf-compiler and libprotobuf-dev)"
    );
}

/// Building signpost needs no protoc: no package in Cargo.lock generates
/// protobuf code at build time (the etcd stubs are checked in instead).
#[test]
fn the_build_needs_no_protoc() {
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("read Cargo.lock");
    let generators: Vec<&str> = lock
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| {
            [
                "prost-build",
                "tonic-build",
                "tonic-prost-build",
                "protobuf-codegen",
            ]
            .contains(n)
                || n.starts_with("protoc")
                || n.starts_with("protobuf-src")
        })
        .collect();
    assert!(
        generators.is_empty(),
        "Cargo.lock has build-time protobuf generators {generators:?}: the build would need protoc"
    );
}

/// `fo`'s answer for a client network given by ECS.
fn answer_for(s: &Server, net: &str) -> String {
    let mut q = QuerySpec::new("fo.f.test.", 1);
    q.edns = Some(common::EdnsSpec {
        payload: 1232,
        ecs: Some((net.parse().expect("addr"), 24)),
        ..common::EdnsSpec::default()
    });
    ask_udp(s.addr, &q)
        .answer
        .iter()
        .filter_map(|r| r.split_whitespace().last().map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn two_instances_answer_with_the_same_dial_and_ignore_a_hostile_one() {
    let d = dir("dials");
    let etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let i1 = start(&config(&d.0, &etcd, 1, "60s"));
    let i2 = start(&config(&d.0, &etcd, 2, "60s"));
    wait_until("two instances in sync", || {
        in_sync(&i1, 2) && in_sync(&i2, 2)
    });
    let nets: Vec<String> = (0..200).map(|n| format!("100.70.{n}.0")).collect();
    let view = |s: &Server| nets.iter().map(|n| answer_for(s, n)).collect::<Vec<_>>();
    let a_share = |v: &[String]| v.iter().filter(|a| *a == "192.0.2.10").count();
    wait_until("region a up everywhere", || {
        a_share(&view(&i1)) == nets.len() && a_share(&view(&i2)) == nets.len()
    });

    // A dial set through i1 reaches i2: both answer every network alike.
    post(&i1, "/v1/dial?target=region:a&percent=40");
    wait_until("the dial on both instances", || {
        let (v1, v2) = (view(&i1), view(&i2));
        v1 == v2 && a_share(&v1) < nets.len()
    });
    let share = a_share(&view(&i2));
    assert!(
        (60..=100).contains(&share),
        "40 % of 200 networks kept {share}"
    );
    let keys = etcd
        .ctl(&["get", "--prefix", "/signpost-test/dials/"])
        .expect("etcdctl get");
    assert!(keys.contains("region:a") && keys.contains("40"), "{keys}");

    // Hostile values: out of range, not a number, an unknown region. Ignored,
    // counted, the answers unchanged.
    let before = metric(&i2, "signpost_fleet_bad_keys_total");
    let dialled = view(&i2);
    for (k, v) in [
        ("/signpost-test/dials/region:b", "250"),
        ("/signpost-test/dials/region:b", "-1"),
        ("/signpost-test/dials/region:nowhere", "10"),
    ] {
        etcd.ctl(&["put", "--", k, v]).expect("etcdctl put");
    }
    wait_until("three bad dial keys counted", || {
        metric(&i2, "signpost_fleet_bad_keys_total") >= before + 3
    });
    assert_eq!(view(&i2), dialled);
    assert_eq!(view(&i1), dialled);
}

#[test]
fn a_ramp_holds_while_etcd_is_away() {
    let d = dir("ramp");
    let mut etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let i1 = start(&config(&d.0, &etcd, 1, "60s"));
    wait_until("in sync", || in_sync(&i1, 1));
    post(&i1, "/v1/dial?target=region:a&percent=0");
    post(
        &i1,
        "/v1/ramp?target=region:a&to=100&steps=10,50,100&hold=300ms",
    );
    let ramp = |s: &Server| status(s)["ramps"]["ramps"]["region:a"].clone();
    wait_until("the first step", || ramp(&i1)["dial"] == 10);
    etcd.kill();
    wait_until("etcd seen gone", || {
        status(&i1)["fleet"]["connected"] == false
    });
    let at = ramp(&i1)["dial"].clone();
    let since = std::time::Instant::now();
    wait_until("three holds without etcd", || {
        since.elapsed() > Duration::from_millis(900)
    });
    let r = ramp(&i1);
    assert_eq!(r["dial"], at, "the ramp advanced blind: {r}");
    assert_eq!(r["phase"], "running", "{r}");
}

/// One ramp for the fleet: started on one instance, driven by the one holding
/// the etcd lock, every instance answering with the same dial at each step; the
/// driver killed mid-ramp, another takes over from the stored step and finishes;
/// a hostile `ramps/` value changes nothing; etcd killed mid-ramp, the dial holds.
#[test]
fn one_ramp_for_the_fleet_survives_its_driver_and_holds_without_etcd() {
    let d = dir("fleet-ramp");
    let mut etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let mut servers: Vec<Option<Server>> = (1..=3)
        .map(|n| Some(start(&config(&d.0, &etcd, n, "60s"))))
        .collect();
    let live = |servers: &[Option<Server>]| -> Vec<usize> {
        (0..3).filter(|&i| servers[i].is_some()).collect()
    };
    let on = |servers: &[Option<Server>], i: usize| -> serde_json::Value {
        status(servers[i].as_ref().expect("live"))
    };
    wait_until("three instances in sync", || {
        (0..3).all(|i| in_sync(servers[i].as_ref().expect("live"), 3))
    });
    let driver = |servers: &[Option<Server>]| -> Option<String> {
        let v = on(servers, live(servers)[0]);
        v["fleet"]["ramp_driver"].as_str().map(str::to_string)
    };
    wait_until("a ramp driver", || driver(&servers).is_some());
    let first = driver(&servers).expect("driver");
    // Exactly one instance says it drives.
    let driving: Vec<bool> = (0..3)
        .map(|i| on(&servers, i)["fleet"]["drives_ramps"] == true)
        .collect();
    assert_eq!(driving.iter().filter(|&&b| b).count(), 1, "{driving:?}");

    // Started on an instance that does not drive.
    let starter = (0..3)
        .find(|&i| format!("i{}", i + 1) != first)
        .expect("a non-driver");
    post(
        servers[starter].as_ref().expect("live"),
        "/v1/dial?target=region:a&percent=0",
    );
    wait_until("dial 0 everywhere", || {
        (0..3).all(|i| on(&servers, i)["region_dials"]["region:a"] == 0)
    });
    post(
        servers[starter].as_ref().expect("live"),
        "/v1/ramp?target=region:a&steps=10,50,100&hold=1500ms",
    );
    let nets: Vec<String> = (0..100).map(|n| format!("100.71.{n}.0")).collect();
    let view = |s: &Server| nets.iter().map(|n| answer_for(s, n)).collect::<Vec<_>>();
    // Every instance answers with the step's dial, alike.
    let same_dial = |servers: &[Option<Server>], d: u64| {
        let l = live(servers);
        l.iter()
            .all(|&i| on(servers, i)["region_dials"]["region:a"] == d)
            && {
                let v0 = view(servers[l[0]].as_ref().expect("live"));
                l.iter()
                    .all(|&i| view(servers[i].as_ref().expect("live")) == v0)
            }
    };
    wait_until("step 10 on every instance", || same_dial(&servers, 10));
    let keys = etcd
        .ctl(&["get", "--prefix", "/signpost-test/ramps/"])
        .expect("etcdctl get");
    assert!(
        keys.contains("region:a") && keys.contains("\"dial\":10"),
        "{keys}"
    );

    // Hostile values under ramps/: refused, counted, the ramp unchanged.
    let watcher = live(&servers)[0];
    let before = metric(
        servers[watcher].as_ref().expect("live"),
        "signpost_fleet_bad_keys_total",
    );
    let mut hostile = keys
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("the stored ramp")
        .to_string();
    hostile = hostile.replace("\"dial\":10", "\"dial\":250");
    etcd.ctl(&["put", "/signpost-test/ramps/region:a", &hostile])
        .expect("etcdctl put");
    etcd.ctl(&["put", "/signpost-test/ramps/region:nowhere", "{}"])
        .expect("etcdctl put");
    wait_until("two bad ramp keys counted", || {
        metric(
            servers[watcher].as_ref().expect("live"),
            "signpost_fleet_bad_keys_total",
        ) >= before + 2
    });
    let r = on(&servers, watcher)["ramps"]["ramps"]["region:a"].clone();
    assert!(r["dial"] == 10 || r["dial"] == 50, "{r}");

    // The driver killed (SIGKILL: its lease runs out, 2 s): another takes over
    // from the stored step, and every survivor answers alike to the end.
    wait_until("step 50 on every instance", || same_dial(&servers, 50));
    let killed = first[1..].parse::<usize>().expect("iN") - 1;
    drop(servers[killed].take());
    let took = wait_until("another driver", || {
        driver(&servers).is_some_and(|d| d != first)
    });
    println!("the ramp's driver replaced after {took:?} (lease_ttl 2s)");
    wait_until("the ramp done on the survivors", || {
        live(&servers)
            .iter()
            .all(|&i| on(&servers, i)["ramps"]["ramps"]["region:a"]["phase"] == "done")
    });
    wait_until("dial 100 on the survivors", || same_dial(&servers, 100));

    // etcd killed mid-ramp: the ramp holds (never advances blind).
    let survivor = live(&servers)[0];
    post(
        servers[survivor].as_ref().expect("live"),
        "/v1/dial?target=region:a&percent=0",
    );
    wait_until("dial 0 on the survivors", || same_dial(&servers, 0));
    post(
        servers[survivor].as_ref().expect("live"),
        "/v1/ramp?target=region:a&steps=10,50,100&hold=1s",
    );
    wait_until("step 10 on the survivors", || same_dial(&servers, 10));
    etcd.kill();
    wait_until("etcd seen gone", || {
        live(&servers)
            .iter()
            .all(|&i| on(&servers, i)["fleet"]["connected"] == false)
    });
    let since = Instant::now();
    wait_until("three holds without etcd", || {
        since.elapsed() > Duration::from_secs(3)
    });
    for i in live(&servers) {
        let v = on(&servers, i);
        assert_eq!(
            v["region_dials"]["region:a"], 10,
            "instance {i} advanced blind"
        );
        assert_eq!(v["ramps"]["ramps"]["region:a"]["phase"], "running");
    }
}

/// A verdict pushed to one instance holds on every instance, until its own
/// expiry; a clear reaches all; a hostile `verdicts/` value changes nothing.
#[test]
fn a_pushed_verdict_holds_on_every_instance_until_its_expiry() {
    let d = dir("verdicts");
    let etcd = Etcd::start(&d.0);
    let backend = Backend::start();
    std::fs::write(d.0.join("zones/f.toml"), zone(backend.addr)).expect("zone");
    let i1 = start(&config(&d.0, &etcd, 1, "60s"));
    let i2 = start(&config(&d.0, &etcd, 2, "60s"));
    wait_until("two instances in sync", || {
        in_sync(&i1, 2) && in_sync(&i2, 2)
    });
    wait_until("region a up on both", || {
        all_answer(&[&i1, &i2], "192.0.2.10")
    });

    // Down for 3 s, pushed to i1: both answer b, then a again by themselves.
    let pushed = Instant::now();
    post(
        &i1,
        "/v1/verdict?target=region:a&verdict=down&ttl=3s&source=alertmanager",
    );
    wait_until("the verdict on both", || {
        all_answer(&[&i1, &i2], "192.0.2.20")
    });
    assert_eq!(
        status(&i2)["verdicts"]["region:a"]["source"],
        "alertmanager"
    );
    wait_until("the verdict expired on both", || {
        all_answer(&[&i1, &i2], "192.0.2.10")
    });
    assert!(
        pushed.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        pushed.elapsed()
    );

    // A clear pushed to i2 reaches i1.
    post(&i1, "/v1/verdict?target=region:a&verdict=down&ttl=60s");
    wait_until("the verdict on both", || {
        all_answer(&[&i1, &i2], "192.0.2.20")
    });
    post(&i2, "/v1/verdict?target=region:a&verdict=clear");
    wait_until("cleared on both", || all_answer(&[&i1, &i2], "192.0.2.10"));

    // Hostile values: counted, no answer changed.
    let before = metric(&i2, "signpost_fleet_bad_keys_total");
    for (k, v) in [
        ("/signpost-test/verdicts/region:a", "down 1000 99999999999"),
        ("/signpost-test/verdicts/region:a", "sideways 1 2"),
        ("/signpost-test/verdicts/region:nowhere", "down 1000 2000"),
    ] {
        etcd.ctl(&["put", "--", k, v]).expect("etcdctl put");
    }
    wait_until("three bad verdict keys counted", || {
        metric(&i2, "signpost_fleet_bad_keys_total") >= before + 3
    });
    assert!(all_answer(&[&i1, &i2], "192.0.2.10"));
}
