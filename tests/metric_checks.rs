//! Health from the operator's metrics, end to end: a real Prometheus (Debian's
//! package, started here on loopback) scrapes a tiny exporter whose value the test
//! sets; a `prometheus` check takes a region out of a read name's answers when the
//! exported replication lag goes over its threshold and brings it back under it;
//! Prometheus stopped leaves the state as it was; verdicts pushed through the
//! admin API count until their expiry.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{ask_udp, http, wait_until, Dir, QuerySpec, Server};

/// Serves `/metrics` in Prometheus text format: the replication lag of two
/// regions, eu-west's set by the test.
struct Exporter {
    addr: SocketAddr,
    lag_eu: Arc<AtomicU64>,
    load_eu: Arc<AtomicU64>,
    errors_eu: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind exporter");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let lag_eu = Arc::new(AtomicU64::new(1f64.to_bits()));
        let load_eu = Arc::new(AtomicU64::new(0.5f64.to_bits()));
        let errors_eu = Arc::new(AtomicU64::new(0.001f64.to_bits()));
        let stop = Arc::new(AtomicBool::new(false));
        let (lag, load, halt) = (lag_eu.clone(), load_eu.clone(), stop.clone());
        let errors = errors_eu.clone();
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let body = format!(
                    "# TYPE pg_replication_lag_seconds gauge\n\
                     pg_replication_lag_seconds{{region=\"eu-west\"}} {}\n\
                     pg_replication_lag_seconds{{region=\"us-east\"}} 0.5\n\
                     # TYPE region_load gauge\n\
                     region_load{{region=\"eu-west\"}} {}\n\
                     # TYPE error_ratio gauge\n\
                     error_ratio{{region=\"eu-west\"}} {}\n",
                    f64::from_bits(lag.load(Ordering::Relaxed)),
                    f64::from_bits(load.load(Ordering::Relaxed)),
                    f64::from_bits(errors.load(Ordering::Relaxed))
                );
                let _ = c.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        Exporter {
            addr,
            lag_eu,
            load_eu,
            errors_eu,
            stop,
            thread: Some(thread),
        }
    }

    fn set_lag(&self, seconds: f64) {
        self.lag_eu.store(seconds.to_bits(), Ordering::Relaxed);
    }

    fn set_errors(&self, ratio: f64) {
        self.errors_eu.store(ratio.to_bits(), Ordering::Relaxed);
    }

    fn set_load(&self, load: f64) {
        self.load_eu.store(load.to_bits(), Ordering::Relaxed);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A `prometheus` process on a loopback port, with its own config and data
/// folder, scraping `target` every 200 ms; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &std::path::Path, target: SocketAddr) -> Prometheus {
        let bin = which("prometheus").unwrap_or_else(|| {
            panic!(
                "prometheus is not installed: install the Debian package `prometheus` \
                 (benches/install-peers.sh --ci)"
            )
        });
        let addr = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: db\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let data = dir.join("prometheus-data");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let p = Prometheus { child, addr };
        wait_until("prometheus to be ready", Duration::from_secs(60), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && http(addr, "GET", "/-/ready").0 == 200
        });
        p
    }

    /// The value Prometheus holds for eu-west's lag, once it has scraped one.
    fn lag_eu(&self) -> Option<String> {
        let (status, body) = http(
            self.addr,
            "GET",
            "/api/v1/query?query=pg_replication_lag_seconds%7Bregion%3D%22eu-west%22%7D",
        );
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some(v["data"]["result"][0]["value"][1].as_str()?.to_string())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// A loopback port nobody listens on now.
fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn dir(tag: &str) -> Dir {
    common::dir("metric-checks", tag)
}

/// A zone whose read name `db` answers with both regions' replicas, each
/// checked by its region's replication lag in Prometheus at `prom`. With every
/// region down it answers SERVFAIL (not every region, as by default), so that a
/// lost Prometheus wrongly taken for a verdict shows in the answer.
fn zone(prom: SocketAddr) -> String {
    let check = |region: &str| {
        format!(
            r#"prometheus = {{ server = "{prom}", query = 'pg_replication_lag_seconds{{region="{region}"}}', down_above = 30 }}
interval = "200ms"
timeout = "150ms"
jitter = "10ms"
rise = 2
fall = 2
"#
        )
    };
    format!(
        r#"origin = "m.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.m.test."
contact = "h@m.test"
negative_ttl = 60

[checks.lag_eu]
{eu}
[checks.lag_us]
{us}
[regions]
eu-west = {{}}
us-east = {{}}

[names.db]
strategy = "all"
ttl = 30
endpoints.eu-west = {{ a = ["192.0.2.10"], check = "lag_eu" }}
endpoints.us-east = {{ a = ["192.0.2.20"], check = "lag_us" }}
when_all_down = "servfail"

[names.www]
strategy = "all"
ttl = 30
endpoints.eu-west = {{ a = ["192.0.2.30"] }}
endpoints.us-east = {{ a = ["192.0.2.40"] }}

[names.api]
strategy = "failover"
ttl = 30
order = ["eu-west", "us-east"]
endpoints.eu-west = {{ a = ["192.0.2.50"] }}
endpoints.us-east = {{ a = ["192.0.2.60"] }}
"#,
        eu = check("eu-west"),
        us = check("us-east"),
    )
}

fn answer(s: &Server, name: &str) -> Vec<String> {
    let mut a = ask_udp(s.addr, &QuerySpec::new(name, 1)).answer;
    a.sort();
    a
}

const BOTH: [&str; 2] = [
    "db.m.test. 30 IN A 192.0.2.10",
    "db.m.test. 30 IN A 192.0.2.20",
];

#[test]
fn replication_lag_takes_a_region_out_and_back() {
    let d = dir("lag");
    let exporter = Exporter::start();
    let mut prom = Prometheus::start(&d.0, exporter.addr);
    wait_until(
        "prometheus to scrape the exporter",
        Duration::from_secs(30),
        || prom.lag_eu().as_deref() == Some("1"),
    );
    std::fs::write(d.0.join("zones/m.toml"), zone(prom.addr)).expect("write zone");
    let s = common::start_with_admin(&d.0.join("zones"), &[]);
    assert_eq!(answer(&s, "db.m.test."), BOTH);

    // Lag over the threshold: eu-west leaves the read name's answers.
    exporter.set_lag(45.0);
    let took = wait_until("eu-west to leave", Duration::from_secs(20), || {
        answer(&s, "db.m.test.") == ["db.m.test. 30 IN A 192.0.2.20"]
    });
    // A scrape (200 ms) and two checks (fall 2, every 200 ms), with slack.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let admin = s.admin.expect("admin address");
    let (_, status) = http(admin, "GET", "/status");
    assert!(status.contains("is above 30"), "{status}");

    // Back under it: eu-west returns.
    exporter.set_lag(2.0);
    wait_until("eu-west to return", Duration::from_secs(20), || {
        answer(&s, "db.m.test.") == BOTH
    });

    // Prometheus gone: a failure to ask is no verdict. Each target's checks go
    // unanswered 4 times in a row (fall is 2) and both regions stay.
    prom.stop();
    s.wait_log("metric check unanswered, verdict kept");
    let before = unanswered(admin);
    wait_until("8 more unanswered checks", Duration::from_secs(20), || {
        unanswered(admin) >= before + 8
    });
    assert_eq!(answer(&s, "db.m.test."), BOTH);
}

/// `signpost_metric_checks_unanswered_total` from `/metrics`.
fn unanswered(admin: SocketAddr) -> u64 {
    let (_, metrics) = http(admin, "GET", "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("signpost_metric_checks_unanswered_total "))
        .and_then(|v| v.parse().ok())
        .expect("signpost_metric_checks_unanswered_total")
}

/// Held down by a verdict, then Prometheus stops: the region stays out (the
/// state is unchanged in that direction too).
#[test]
fn a_down_region_stays_down_while_prometheus_is_gone() {
    let d = dir("held");
    let exporter = Exporter::start();
    exporter.set_lag(60.0);
    let mut prom = Prometheus::start(&d.0, exporter.addr);
    wait_until(
        "prometheus to scrape the exporter",
        Duration::from_secs(30),
        || prom.lag_eu().as_deref() == Some("60"),
    );
    std::fs::write(d.0.join("zones/m.toml"), zone(prom.addr)).expect("write zone");
    let s = common::start_with_admin(&d.0.join("zones"), &[]);
    wait_until("eu-west to leave", Duration::from_secs(20), || {
        answer(&s, "db.m.test.") == ["db.m.test. 30 IN A 192.0.2.20"]
    });
    prom.stop();
    let admin = s.admin.expect("admin address");
    let before = unanswered(admin);
    wait_until("8 more unanswered checks", Duration::from_secs(20), || {
        unanswered(admin) >= before + 8
    });
    assert_eq!(answer(&s, "db.m.test."), ["db.m.test. 30 IN A 192.0.2.20"]);
}

#[test]
fn a_pushed_verdict_counts_until_its_expiry() {
    let d = dir("verdict");
    // No Prometheus here: the name `www` has no checks, only pushed verdicts.
    std::fs::write(d.0.join("zones/m.toml"), zone(free_port())).expect("write zone");
    let s = common::start_with_admin(&d.0.join("zones"), &[]);
    let admin = s.admin.expect("admin address");
    let www = [
        "www.m.test. 30 IN A 192.0.2.30",
        "www.m.test. 30 IN A 192.0.2.40",
    ];
    assert_eq!(answer(&s, "www.m.test."), www);

    // Refused: no ttl, a ttl over the bound, an unknown target, a bad verdict,
    // and (the guard) a change without the request header.
    for bad in [
        "/v1/verdict?target=region:eu-west&verdict=down",
        "/v1/verdict?target=region:eu-west&verdict=down&ttl=2h",
        "/v1/verdict?target=region:nowhere&verdict=down&ttl=5s",
        "/v1/verdict?target=region:eu-west&verdict=sideways&ttl=5s",
    ] {
        let (code, body) = http(admin, "POST", bad);
        assert_eq!(code, 400, "{bad}: {body}");
    }
    let (code, _) = common::http_raw(
        admin,
        format!(
            "POST /v1/verdict?target=region:eu-west&verdict=down&ttl=5s HTTP/1.1\r\n\
             Host: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(code, 403);
    assert_eq!(answer(&s, "www.m.test."), www);

    // Down for 2 s: eu-west leaves at once, and comes back by itself.
    let pushed = Instant::now();
    let (code, body) = http(
        admin,
        "POST",
        "/v1/verdict?target=region:eu-west&verdict=down&ttl=2s&source=alertmanager",
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        answer(&s, "www.m.test."),
        ["www.m.test. 30 IN A 192.0.2.40"]
    );
    let (_, status) = http(admin, "GET", "/status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(v["verdicts"]["region:eu-west"]["verdict"], "down");
    assert_eq!(v["verdicts"]["region:eu-west"]["source"], "alertmanager");
    let (_, explain) = http(admin, "GET", "/explain?name=www.m.test.&client=192.0.2.99");
    assert!(
        explain.contains("pushed verdict: region:eu-west down"),
        "{explain}"
    );
    wait_until("the verdict to expire", Duration::from_secs(10), || {
        answer(&s, "www.m.test.") == www
    });
    let after = pushed.elapsed();
    assert!(
        after >= Duration::from_millis(1500),
        "expired after {after:?}"
    );
    s.wait_log("pushed verdicts expired");

    // An operator's force-up wins over a pushed down; "up" cancels a "down".
    let (code, _) = http(
        admin,
        "POST",
        "/v1/verdict?target=endpoint:www.m.test./us-east&verdict=down&ttl=60s",
    );
    assert_eq!(code, 200);
    assert_eq!(
        answer(&s, "www.m.test."),
        ["www.m.test. 30 IN A 192.0.2.30"]
    );
    let (code, _) = http(
        admin,
        "POST",
        "/v1/override?target=region:us-east&action=force-up",
    );
    assert_eq!(code, 200);
    assert_eq!(answer(&s, "www.m.test."), www);
    http(
        admin,
        "POST",
        "/v1/override?target=region:us-east&action=clear",
    );
    assert_eq!(
        answer(&s, "www.m.test."),
        ["www.m.test. 30 IN A 192.0.2.30"]
    );
    let (code, _) = http(
        admin,
        "POST",
        "/v1/verdict?target=endpoint:www.m.test./us-east&verdict=up&ttl=60s",
    );
    assert_eq!(code, 200);
    assert_eq!(answer(&s, "www.m.test."), www);
}

/// `[shed.eu-west]` asks Prometheus for eu-west's load: over the high watermark
/// the dial it asks for steps down to the floor, under the low one back to 100,
/// and with Prometheus gone it holds.
#[test]
fn shedding_follows_the_load_between_floor_and_full() {
    let d = dir("shed");
    let exporter = Exporter::start();
    let mut prom = Prometheus::start(&d.0, exporter.addr);
    wait_until(
        "prometheus to scrape the exporter",
        Duration::from_secs(30),
        || prom.lag_eu().is_some(),
    );
    std::fs::write(d.0.join("zones/m.toml"), zone(prom.addr)).expect("write zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[shed.eu-west]\nserver = \"{}\"\nquery = 'region_load{{region=\"eu-west\"}}'\n\
             low = 0.6\nhigh = 0.8\nfloor = 30\nstep = 20\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            prom.addr
        ),
    )
    .expect("write config");
    let s = common::start_with_admin(
        &d.0.join("zones"),
        &["--config", config.to_str().expect("path")],
    );
    let admin = s.admin.expect("admin address");
    let dial = || -> Option<u64> {
        let (_, status) = http(admin, "GET", "/status");
        let v: serde_json::Value = serde_json::from_str(&status).ok()?;
        v["shed"]["eu-west"]["dial"].as_u64()
    };
    assert_eq!(dial(), Some(100));
    exporter.set_load(0.95);
    // Down in steps of 20 to the floor: 80, 60, 40, 30, and never below.
    wait_until(
        "the dial to reach the floor",
        Duration::from_secs(20),
        || dial() == Some(30),
    );
    let (_, metrics) = http(admin, "GET", "/metrics");
    assert!(
        metrics.contains("signpost_shed_dial_percent{region=\"eu-west\"} 30"),
        "{metrics}"
    );
    // Between the watermarks: it holds.
    exporter.set_load(0.7);
    wait_until("the load figure 0.7", Duration::from_secs(20), || {
        let (_, status) = http(admin, "GET", "/status");
        serde_json::from_str::<serde_json::Value>(&status)
            .is_ok_and(|v| v["shed"]["eu-west"]["load"].as_f64() == Some(0.7))
    });
    assert_eq!(dial(), Some(30));
    // Under the low watermark: back to full.
    exporter.set_load(0.1);
    wait_until("the dial to return to 100", Duration::from_secs(20), || {
        dial() == Some(100)
    });
    // Prometheus gone, load reported high: no figure, the dial holds.
    exporter.set_load(0.95);
    prom.stop();
    let before = unanswered(admin);
    wait_until("4 unanswered load figures", Duration::from_secs(20), || {
        unanswered(admin) >= before + 4
    });
    assert_eq!(dial(), Some(100));
}

/// `[shed.us-east]` without a query takes its load from `POST /v1/load`.
#[test]
fn a_pushed_load_moves_the_shedding_dial() {
    let d = dir("pushload");
    std::fs::write(d.0.join("zones/m.toml"), zone(free_port())).expect("write zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[shed.us-east]\nlow = 100\nhigh = 200\nfloor = 50\nstep = 25\ninterval = \"200ms\"\ntimeout = \"100ms\"\n\
             [shed.eu-west]\nserver = \"{}\"\nquery = 'x'\nlow = 0.6\nhigh = 0.8\n",
            free_port()
        ),
    )
    .expect("write config");
    let s = common::start_with_admin(
        &d.0.join("zones"),
        &["--config", config.to_str().expect("path")],
    );
    let admin = s.admin.expect("admin address");
    let dial = || -> Option<u64> {
        let (_, status) = http(admin, "GET", "/status");
        let v: serde_json::Value = serde_json::from_str(&status).ok()?;
        v["shed"]["us-east"]["dial"].as_u64()
    };
    for bad in [
        "/v1/load?region=eu-west&value=0.9&ttl=30s",
        "/v1/load?region=nowhere&value=0.9&ttl=30s",
        "/v1/load?region=us-east&value=high&ttl=30s",
        "/v1/load?region=us-east&value=250&ttl=2h",
        "/v1/load?region=us-east&value=250",
    ] {
        let (code, body) = http(admin, "POST", bad);
        assert_eq!(code, 400, "{bad}: {body}");
    }
    assert_eq!(dial(), Some(100));
    let (code, body) = http(admin, "POST", "/v1/load?region=us-east&value=250&ttl=60s");
    assert_eq!(code, 200, "{body}");
    wait_until(
        "the dial to reach its floor",
        Duration::from_secs(20),
        || dial() == Some(50),
    );
    http(admin, "POST", "/v1/load?region=us-east&value=20&ttl=60s");
    wait_until("the dial to return to 100", Duration::from_secs(20), || {
        dial() == Some(100)
    });
}

/// `api` (failover eu-west > us-east) for 256 client /24s told apart by ECS:
/// the share of them answered by eu-west (192.0.2.50), in percent.
fn api_eu_share(s: &Server) -> f64 {
    let kept = (0..256u32)
        .filter(|n| {
            let mut q = QuerySpec::new("api.m.test.", 1);
            q.edns = Some(common::EdnsSpec {
                payload: 4096,
                ecs: Some((format!("198.51.{n}.0").parse().expect("addr"), 24)),
                ..common::EdnsSpec::default()
            });
            let r = ask_udp(s.addr, &q);
            r.answer.iter().any(|a| a.ends_with("192.0.2.50"))
        })
        .count();
    100.0 * kept as f64 / 256.0
}

/// Shedding applies its dial: over the high watermark a share of the client
/// networks leaves eu-west for the failover's next region (never more than the
/// floor lets go), explain says why, the operator's own dial is untouched and
/// the lower of the two serves; under the low watermark they all return.
#[test]
fn shedding_moves_a_share_of_client_networks_and_back() {
    let d = dir("shed-apply");
    let exporter = Exporter::start();
    let prom = Prometheus::start(&d.0, exporter.addr);
    wait_until(
        "prometheus to scrape the exporter",
        Duration::from_secs(30),
        || prom.lag_eu().is_some(),
    );
    std::fs::write(d.0.join("zones/m.toml"), zone(prom.addr)).expect("write zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[shed.eu-west]\nserver = \"{}\"\nquery = 'region_load{{region=\"eu-west\"}}'\n\
             low = 0.6\nhigh = 0.8\nfloor = 50\nstep = 25\ninterval = \"200ms\"\ntimeout = \"150ms\"\n",
            prom.addr
        ),
    )
    .expect("write config");
    let s = common::start_with_admin(
        &d.0.join("zones"),
        &["--config", config.to_str().expect("path")],
    );
    let admin = s.admin.expect("admin address");
    assert_eq!(api_eu_share(&s), 100.0);

    // Over the high watermark: down to the floor (50), and about half of the
    // networks get us-east.
    exporter.set_load(0.91);
    wait_until(
        "the shed dial at its floor",
        Duration::from_secs(20),
        || {
            let (_, status) = http(admin, "GET", "/status");
            serde_json::from_str::<serde_json::Value>(&status)
                .is_ok_and(|v| v["region_dials"]["region:eu-west"] == 50)
        },
    );
    let share = api_eu_share(&s);
    assert!(
        (35.0..=65.0).contains(&share),
        "at 50 % eu-west kept {share:.1}%"
    );
    let (_, metrics) = http(admin, "GET", "/metrics");
    assert!(
        metrics.contains("signpost_shed_dial_percent{region=\"eu-west\"} 50")
            && metrics.contains("signpost_dial_percent{region=\"eu-west\"} 50"),
        "{metrics}"
    );
    let moves = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signpost_shed_moves_total{region=\"eu-west\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(moves, Some(2), "{metrics}");
    // Explain, for a network that is turned away, says why.
    let explained = (0..256u32)
        .map(|n| {
            http(
                admin,
                "GET",
                &format!("/explain?name=api.m.test.&client=198.51.{n}.7/24"),
            )
            .1
        })
        .find(|e| e.contains("is turned to its next choice"))
        .expect("a network turned away");
    assert!(
        explained.contains("shed: load 0.91 over high 0.8, dial 50"),
        "{explained}"
    );

    // The operator's own dial is never written by the shedder, and the lower
    // of the two serves: 20 % set by hand beats shedding's 50 %.
    let (code, body) = http(admin, "POST", "/v1/dial?target=region:eu-west&percent=20");
    assert_eq!(code, 200, "{body}");
    let share20 = api_eu_share(&s);
    assert!(
        (10.0..=30.0).contains(&share20),
        "at 20 % eu-west kept {share20:.1}%"
    );
    let (_, status) = http(admin, "GET", "/status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(v["dials"]["region:eu-west"], 20, "{status}");
    http(admin, "POST", "/v1/dial?target=region:eu-west&percent=100");

    // Under the low watermark: every network returns to eu-west.
    exporter.set_load(0.2);
    wait_until(
        "every network back on eu-west",
        Duration::from_secs(20),
        || api_eu_share(&s) == 100.0,
    );
    let (_, status) = http(admin, "GET", "/status");
    let v: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(v["shed"]["eu-west"]["dial"], 100, "{status}");
    assert!(
        v["dials"].get("region:eu-west").is_none_or(|d| d == 100),
        "{status}"
    );
}

/// The value Prometheus holds for eu-west's error ratio.
fn errors_in_prometheus(prom: &Prometheus) -> Option<f64> {
    let (status, body) = http(
        prom.addr,
        "GET",
        "/api/v1/query?query=error_ratio%7Bregion%3D%22eu-west%22%7D",
    );
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A ramp with a metric gate from `[ramps.eu-west]`: it advances while the
/// error ratio in Prometheus is good, stops and rolls back to the last safe step
/// within one evaluation of the ratio going bad, resumes when told, and holds
/// (neither advancing nor failing) while Prometheus cannot be asked.
#[test]
fn a_metric_gate_stops_a_ramp_and_it_resumes_when_told() {
    let d = dir("gate");
    let exporter = Exporter::start();
    let mut prom = Prometheus::start(&d.0, exporter.addr);
    wait_until("prometheus to scrape", Duration::from_secs(30), || {
        errors_in_prometheus(&prom) == Some(0.001)
    });
    std::fs::write(d.0.join("zones/m.toml"), zone(prom.addr)).expect("write zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[gates.errors_eu]\nprometheus = {{ server = \"{}\", query = 'error_ratio{{region=\"eu-west\"}}', down_above = 0.01 }}\n\
             interval = \"200ms\"\ntimeout = \"150ms\"\n\
             [ramps.eu-west]\nsteps = [10, 50, 100]\nhold = \"1s\"\non_fail = \"last_safe\"\ngates = [\"errors_eu\"]\n",
            prom.addr
        ),
    )
    .expect("write config");
    let s = common::start_with_admin(
        &d.0.join("zones"),
        &["--config", config.to_str().expect("path")],
    );
    let admin = s.admin.expect("admin address");
    let status = || -> serde_json::Value {
        let (_, body) = http(admin, "GET", "/status");
        serde_json::from_str(&body).expect("status JSON")
    };
    let ramp = || status()["ramps"]["ramps"]["region:eu-west"].clone();

    // A gate the server does not know is refused, and starts nothing.
    let (code, body) = http(admin, "POST", "/v1/ramp?target=region:eu-west&gates=nope");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("nope"), "{body}");
    assert!(ramp().is_null());

    // From 0, with [ramps.eu-west]'s steps, hold and gate.
    s.ctl(&["dial", "eu-west", "0"]);
    let out = s.ctl(&["ramp", "eu-west"]);
    assert!(out.contains("errors_eu"), "{out}");
    wait_until("the step to 50", Duration::from_secs(20), || {
        ramp()["dial"] == 50
    });
    assert_eq!(ramp()["gate_verdicts"]["errors_eu"]["verdict"], "holds");

    // The ratio goes bad: stopped within one evaluation of Prometheus having
    // it, back at 10 (50 had not held its whole hold).
    exporter.set_errors(0.05);
    wait_until(
        "prometheus to have the bad ratio",
        Duration::from_secs(10),
        || errors_in_prometheus(&prom) == Some(0.05),
    );
    let evaluations = |r: &serde_json::Value| {
        r["gate_verdicts"]["errors_eu"]["evaluations"]
            .as_u64()
            .unwrap_or(0)
    };
    let seen_bad = evaluations(&ramp());
    wait_until(
        "the ramp stopped by its gate",
        Duration::from_secs(10),
        || ramp()["phase"] == "failed",
    );
    let r = ramp();
    assert!(
        evaluations(&r) <= seen_bad + 2,
        "stopped after {} evaluations",
        evaluations(&r) - seen_bad
    );
    assert_eq!(r["dial"], 10, "{r}");
    assert_eq!(r["failed_gate"], "errors_eu", "{r}");
    assert_eq!(status()["region_dials"]["region:eu-west"], 10);
    let (_, metrics) = http(admin, "GET", "/metrics");
    assert!(
        metrics.contains("signpost_ramp_failures_total{gate=\"errors_eu\"} 1"),
        "{metrics}"
    );
    let line = s.wait_log("ramp stopped by its gate");
    assert!(
        line.contains("errors_eu") && line.contains("above 0.01"),
        "{line}"
    );

    // Good again: it stays stopped until told, then goes on from 10.
    exporter.set_errors(0.001);
    wait_until("the gate to hold again", Duration::from_secs(10), || {
        ramp()["gate_verdicts"]["errors_eu"]["verdict"] == "holds"
    });
    assert_eq!(ramp()["phase"], "failed");
    s.ctl(&["ramp", "eu-west", "--action", "resume"]);
    wait_until("the step to 50 again", Duration::from_secs(20), || {
        ramp()["dial"] == 50
    });

    // Prometheus gone: the gate cannot tell, so the ramp holds at 50 for well
    // over its hold time, neither advancing nor failing.
    prom.stop();
    wait_until("the gate unanswered", Duration::from_secs(10), || {
        ramp()["gate_verdicts"]["errors_eu"]["verdict"] == "unknown"
    });
    let at = evaluations(&ramp());
    wait_until("15 more evaluations (3 s)", Duration::from_secs(20), || {
        evaluations(&ramp()) >= at + 15
    });
    let r = ramp();
    assert_eq!(
        (r["dial"].as_u64(), r["phase"].as_str()),
        (Some(50), Some("running")),
        "{r}"
    );
    s.wait_log("gate unanswered, ramps hold");
}
