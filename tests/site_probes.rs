//! Site probes and fleet sharing end to end (issue 29): a real etcd (Debian's
//! etcd-server) on loopback ports of its own, three real signpost instances
//! sharing it, each in a region of its own (`[fleet] site`) and probing from
//! its own 127.0.0.1N address (`probes.source`), and a resolver stand-in: a UDP
//! server on 127.0.5.1 that answers `. SOA` after a delay chosen by the
//! probe's source address, so each region has a round trip of its own to the
//! stand-in's network. The regions' locations make the distance estimate pick
//! r1 (the stand-in's network is placed in Dublin, beside r1); the round trips
//! say r2. After probes and sharing, every instance answers the stand-in's
//! network with r2's address; a network that was asked from but never
//! answered a probe keeps the estimate.

mod common;

use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{QuerySpec, Server};

const LIMIT: Duration = Duration::from_secs(30);
/// The stand-in resolver's address: its network is 127.0.5.0/24.
const RESOLVER: &str = "127.0.5.1";
/// A client network that asks but never answers a probe.
const SILENT: &str = "127.0.6.1";

fn find_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not installed: this test needs a real etcd 3.4+ \
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

/// One etcd member on two loopback ports; killed when dropped.
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
        common::wait_until("etcd healthy", LIMIT, || {
            e.ctl(&["endpoint", "health"]).is_some()
        });
        e
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

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

/// The resolver stand-in: answers every query (QR set, same id) after the
/// delay of the source address it came from; counts what it answered.
struct Resolver {
    port: u16,
    answered: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Resolver {
    fn start(delays: Vec<(IpAddr, Duration)>) -> Resolver {
        let sock = UdpSocket::bind((RESOLVER, 0)).expect("bind the stand-in");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let port = sock.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((len, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if len < 12 {
                    continue;
                }
                let delay = delays
                    .iter()
                    .find(|(a, _)| *a == from.ip())
                    .map(|(_, d)| *d)
                    .unwrap_or(Duration::ZERO);
                let mut answer = buf[..len].to_vec();
                answer[2] |= 0x80;
                // Each answer waits on a thread of its own, so one site's delay
                // never queues behind another's (probes are a few per second).
                let Ok(out) = sock.try_clone() else { continue };
                let n = n.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = out.send_to(&answer, from);
                    n.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Resolver {
            port,
            answered,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const ZONE: &str = r#"origin = "probe.test."
ttl = 300
records = """
@    NS  ns1
ns1  A   192.0.2.1
"""
[soa]
primary = "ns1.probe.test."
contact = "hostmaster@probe.test"
serial = 1
negative_ttl = 60

[regions]
r1 = { location = [53.3, -6.3] }     # Dublin
r2 = { location = [35.7, 139.7] }    # Tokyo
r3 = { location = [38.9, -77.4] }    # Virginia

[names.near]
strategy = "latency"
endpoints.r1 = { a = ["10.0.0.1"] }
endpoints.r2 = { a = ["10.0.0.2"] }
endpoints.r3 = { a = ["10.0.0.3"] }
"#;

/// Instance `n` (1..=3): region rN, probing from 127.0.0.1N.
fn config(d: &Path, etcd: &Etcd, n: u32, port: u16, probes: bool) -> PathBuf {
    let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
    let probes = if probes {
        format!(
            r#"
[probes]
regions = ["r1", "r2", "r3"]
rate = 50
interval = "100ms"
timeout = "500ms"
sample_every = 1
allow_private = true
port = {port}
source = "127.0.0.1{n}"
share_every = "200ms"
share_max_entries = 10
refresh = "100ms"
hold = "1s"
"#
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"zones = "zones"
[geo]
database = "{geo}"
# Both client networks in Dublin: the estimate says r1.
[[geo.override]]
cidr = "127.0.5.0/24"
location = [53.35, -6.26]
[[geo.override]]
cidr = "127.0.6.0/24"
location = [53.35, -6.26]

[fleet]
endpoints = ["{url}"]
prefix = "/signpost-probes/"
instance = "i{n}"
site = "r{n}"
lease_ttl = "2s"
timeout = "500ms"
{probes}"#,
        geo = geo.display(),
        url = etcd.url()
    );
    let path = d.join(format!("i{n}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// The address `near` answers a query sent from `from` with.
fn answer(s: &Server, from: &str) -> String {
    let sock = UdpSocket::bind((from, 0)).expect("bind the client");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let q = QuerySpec::new("near.probe.test.", 1).to_bytes();
    sock.send_to(&q, s.addr).expect("send");
    let mut buf = [0u8; 1500];
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return String::new();
    };
    common::decode(&buf[..n])
        .answer
        .iter()
        .filter_map(|r| r.split_whitespace().last().map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

fn start(config: &Path) -> Server {
    Server::start(&[
        "--config",
        config.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ])
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, body) = common::http(s.admin.expect("admin"), "GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The answers to the stand-in's network and to the silent one, and what
/// etcd holds of the sites' figures (for a failure's message).
fn run(probes: bool) -> (Vec<String>, Vec<String>, String) {
    let d = common::dir("site-probes", if probes { "on" } else { "off" });
    let etcd = Etcd::start(&d.0);
    std::fs::write(d.0.join("zones/probe.test.toml"), ZONE).expect("zone");
    let ms = Duration::from_millis;
    let lo = |n: u8| IpAddr::from([127, 0, 0, n]);
    // Truly nearest: r2 (its site's probes come back in 5 ms).
    let resolver = Resolver::start(vec![(lo(11), ms(80)), (lo(12), ms(5)), (lo(13), ms(60))]);
    let servers: Vec<Server> = (1..=3)
        .map(|n| start(&config(&d.0, &etcd, n, resolver.port, probes)))
        .collect();
    for s in &servers {
        assert_eq!(answer(s, RESOLVER), "10.0.0.1", "before: the estimate");
    }
    // Hostile values under a lease: the wrong shape, and a figure of 0 ms
    // for the stand-in's network; each refused whole and counted.
    let lease = etcd
        .ctl(&["lease", "grant", "60"])
        .and_then(|o| o.split_whitespace().nth(1).map(str::to_string))
        .expect("lease");
    // And implausible ones (each also a lure: 1 ms to r3 for the stand-in's
    // network): more senders than samples, a multicast network, more
    // figures than a site publishes (share_max_entries, 10 here).
    let fig = |net: &str, samples: u32, senders: u32| {
        format!(
            r#"{{"net":"{net}","region":"r3","rtt_ms":1,"samples":{samples},"senders":{senders},"age_s":0}}"#
        )
    };
    let many: Vec<String> = (0..10u32)
        .map(|i| fig(&format!("198.18.{i}.0/24"), 5, 1))
        .chain([fig("127.0.5.0/24", 5, 1)])
        .collect();
    let bad = [
        ("evil3", format!(r#"{{"v":1,"figures":[{}]}}"#, fig("127.0.5.0/24", 5, 50))),
        ("evil4", format!(r#"{{"v":1,"figures":[{},{}]}}"#, fig("127.0.5.0/24", 5, 1), fig("224.0.0.0/24", 5, 1))),
        ("evil5", format!(r#"{{"v":1,"figures":[{}]}}"#, many.join(","))),
        ("evil1", "{\"v\":1,\"figures\":\"lots\"}".to_string()),
        ("evil2", r#"{"v":1,"figures":[{"net":"127.0.5.0/24","region":"r1","rtt_ms":0,"samples":999,"senders":9,"age_s":0}]}"#.to_string()),
    ];
    for (who, value) in &bad {
        let key = format!("/signpost-probes/latency/{who}");
        etcd.ctl(&["put", &format!("--lease={lease}"), &key, value])
            .expect("put a hostile value");
    }
    // Queries from the stand-in's address offer it to the probers; the
    // answers change once each site's figure is shared.
    let steered = |want: &str| {
        // Every instance asked each round (no short cut): each samples them.
        let got: Vec<String> = servers
            .iter()
            .map(|s| {
                let _ = answer(s, SILENT);
                answer(s, RESOLVER)
            })
            .collect();
        got.iter().all(|a| a == want)
    };
    let deadline = Instant::now() + Duration::from_secs(if probes { 20 } else { 3 });
    while Instant::now() < deadline && !steered("10.0.0.2") {
        std::thread::sleep(ms(20));
    }
    let near = servers.iter().map(|s| answer(s, RESOLVER)).collect();
    let silent = servers.iter().map(|s| answer(s, SILENT)).collect();
    if probes {
        assert!(
            resolver.answered.load(Ordering::Relaxed) > 0,
            "no probe reached the stand-in"
        );
    }
    if probes {
        for s in &servers {
            assert!(
                metric(s, "signpost_fleet_latency_rejected_total") >= 5,
                "hostile values counted"
            );
            assert!(
                metric(s, "signpost_fleet_latency_implausible_total") >= 3,
                "implausible values counted apart"
            );
            assert!(
                metric(s, "signpost_probes_answered_total") >= 5,
                "probes counted"
            );
            assert!(
                metric(s, "signpost_probes_timed_out_total") >= 1,
                "the silent network"
            );
        }
    }
    let shared = etcd
        .ctl(&["get", "--prefix", "/signpost-probes/latency/"])
        .unwrap_or_default();
    let mut shared = shared;
    for (i, s) in servers.iter().enumerate() {
        let lines: Vec<String> = s.log.try_iter().collect();
        let tail = lines.len().saturating_sub(8);
        shared += &format!(
            "--- i{}: {} lines\n{}\n",
            i + 1,
            lines.len(),
            lines[tail..].join("\n")
        );
    }
    (near, silent, shared)
}

#[test]
fn probes_and_sharing_steer_every_instance_to_the_truly_nearest_region() {
    let (near, silent, shared) = run(true);
    assert_eq!(
        near,
        vec!["10.0.0.2"; 3],
        "measured: r2 everywhere; etcd:\n{shared}"
    );
    assert_eq!(silent, vec!["10.0.0.1"; 3], "no samples: the estimate");
}

#[test]
fn without_probes_the_estimate_stands() {
    let (near, _, _) = run(false);
    assert_eq!(near, vec!["10.0.0.1"; 3]);
}
