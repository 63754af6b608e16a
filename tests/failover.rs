//! Health checks end to end: real HTTP servers that a test starts, fails and
//! restarts; the DNS answer leaves and returns; flapping does not flip it; drains
//! and weights through the admin endpoint survive a restart; metrics and status.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{ask_udp, http, wait_until, Dir, QuerySpec, Server};

/// A tiny HTTP server: answers 200 while `healthy`, else 503; `flap` alternates.
struct Backend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    flap: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Backend {
    fn start(addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let healthy = Arc::new(AtomicBool::new(true));
        let flap = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, f, r, s) = (
            healthy.clone(),
            flap.clone(),
            requests.clone(),
            stop.clone(),
        );
        let thread = common::serve_health(listener, s, move |_| {
            let n = r.fetch_add(1, Ordering::Relaxed);
            if f.load(Ordering::Relaxed) {
                n % 2 == 0
            } else {
                h.load(Ordering::Relaxed)
            }
        });
        Backend {
            addr,
            healthy,
            flap,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening: probes see connection refused.
    fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.kill();
    }
}

fn dir(tag: &str) -> Dir {
    common::dir("failover", tag)
}

/// A zone whose names probe the given backends.
fn zone(a: SocketAddr, b: SocketAddr, rise: u32, fall: u32) -> String {
    zone_with(a, b, rise, fall, true)
}

/// `pair` probes 127.0.0.1 and 127.0.0.2 on `a`'s port, a second target on `a`'s
/// backend: left out where a test counts `a`'s requests.
fn zone_with(a: SocketAddr, b: SocketAddr, rise: u32, fall: u32, pair: bool) -> String {
    let text = format!(
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
rise = {rise}
fall = {fall}

[regions]
a = {{}}
b = {{}}

[names.fo]
strategy = "failover"
ttl = 30
ttl_when_degraded = 5
when_all_down = "answer-all"
endpoints.a = {{ a = ["192.0.2.10"], check = "web", probe = "{a}" }}
endpoints.b = {{ a = ["192.0.2.20"], check = "web", probe = "{b}" }}

[names.strict]
strategy = "failover"
when_all_down = "servfail"
endpoints.a = {{ a = ["192.0.2.11"], check = "web", probe = "{a}" }}
endpoints.b = {{ a = ["192.0.2.21"], check = "web", probe = "{b}" }}

[names.pair]
strategy = "all"
endpoints.a = {{ a = ["127.0.0.1", "127.0.0.2"], check = "web2" }}

[checks.web2]
http = {{ port = {port}, path = "/healthz" }}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 1
fall = 1
"#,
        port = a.port()
    );
    if pair {
        text
    } else {
        let start = text.find("[names.pair]").unwrap_or(text.len());
        text[..start].to_string()
    }
}

fn answer(s: &Server, name: &str) -> Vec<String> {
    ask_udp(s.addr, &QuerySpec::new(name, 1)).answer
}

fn start(d: &Dir, extra: &[&str]) -> Server {
    common::start_with_admin(&d.0.join("zones"), extra)
}

#[test]
fn failover_leaves_and_returns_with_the_backend() {
    let d = dir("basic");
    let mut a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(d.0.join("zones/f.toml"), zone(a.addr, b.addr, 2, 2)).expect("write");
    let s = start(&d, &[]);
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec!["fo.f.test. 30 IN A 192.0.2.10"]
    );

    // Failing health checks: 503.
    a.healthy.store(false, Ordering::Relaxed);
    let took = wait_until("failover to b", Duration::from_secs(10), || {
        answer(&s, "fo.f.test.") == vec!["fo.f.test. 5 IN A 192.0.2.20"]
    });
    // interval 100 ms x fall 2 + interval: well under a second, with slack for CI.
    assert!(took < Duration::from_secs(3), "failover took {took:?}");
    a.healthy.store(true, Ordering::Relaxed);
    wait_until("a to come back", Duration::from_secs(10), || {
        answer(&s, "fo.f.test.") == vec!["fo.f.test. 30 IN A 192.0.2.10"]
    });

    // Killed outright: connection refused.
    a.kill();
    wait_until("failover after kill", Duration::from_secs(10), || {
        answer(&s, "fo.f.test.") == vec!["fo.f.test. 5 IN A 192.0.2.20"]
    });
    let line = s.wait_log("health changed");
    assert!(line.contains("down") || line.contains("up"), "{line}");
}

#[test]
fn all_down_answers_as_configured() {
    let d = dir("alldown");
    let mut a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let mut b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(d.0.join("zones/f.toml"), zone(a.addr, b.addr, 1, 1)).expect("write");
    let s = start(&d, &[]);
    a.kill();
    b.kill();
    wait_until("strict to servfail", Duration::from_secs(10), || {
        ask_udp(s.addr, &QuerySpec::new("strict.f.test.", 1)).rcode == "SERVFAIL"
    });
    // answer-all fails open with every endpoint.
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec![
            "fo.f.test. 5 IN A 192.0.2.10",
            "fo.f.test. 5 IN A 192.0.2.20"
        ]
    );
}

#[test]
fn flapping_never_flips_the_answer() {
    let d = dir("flap");
    let a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(
        d.0.join("zones/f.toml"),
        zone_with(a.addr, b.addr, 3, 3, false),
    )
    .expect("write");
    let s = start(&d, &[]);
    a.flap.store(true, Ordering::Relaxed);
    let seen = a.requests.load(Ordering::Relaxed);
    // Watch the answer across 20 alternating probe results.
    let mut checks = 0;
    wait_until("20 flapping probes", Duration::from_secs(20), || {
        assert_eq!(
            answer(&s, "fo.f.test."),
            vec!["fo.f.test. 30 IN A 192.0.2.10"],
            "flipped after {} probes",
            a.requests.load(Ordering::Relaxed) - seen
        );
        checks += 1;
        a.requests.load(Ordering::Relaxed) >= seen + 20
    });
    assert!(checks > 0);
}

#[test]
fn down_addresses_leave_the_answer() {
    let d = dir("addr");
    // One backend on 127.0.0.1:P and one on 127.0.0.2:P: the two addresses of `pair`.
    let mut one = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let port = one.addr.port();
    let mut two = match std::net::TcpListener::bind(("127.0.0.2", port)) {
        Ok(l) => {
            drop(l);
            Backend::start(SocketAddr::from(([127, 0, 0, 2], port)))
        }
        Err(e) => panic!("cannot bind 127.0.0.2:{port}: {e}"),
    };
    let other = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(d.0.join("zones/f.toml"), zone(one.addr, other.addr, 1, 1)).expect("write");
    let s = start(&d, &[]);
    assert_eq!(
        answer(&s, "pair.f.test."),
        vec![
            "pair.f.test. 30 IN A 127.0.0.1",
            "pair.f.test. 30 IN A 127.0.0.2"
        ]
    );
    two.kill();
    wait_until("127.0.0.2 to leave", Duration::from_secs(10), || {
        answer(&s, "pair.f.test.") == vec!["pair.f.test. 30 IN A 127.0.0.1"]
    });
    one.kill();
    // Both down: `all` fails open with both (when_all_down default answer-all).
    wait_until("fail open", Duration::from_secs(10), || {
        answer(&s, "pair.f.test.").len() == 2
    });
}

#[test]
fn drain_through_admin_survives_restart() {
    let d = dir("drain");
    let a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(d.0.join("zones/f.toml"), zone(a.addr, b.addr, 2, 2)).expect("write");
    let state = d.0.join("state.toml");
    let state_s = state.to_str().expect("path").to_string();
    {
        let s = start(&d, &["--state-file", &state_s]);
        let admin = s.admin.expect("admin address");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["ctl", "--admin", &admin.to_string(), "drain", "a"])
            .output()
            .expect("ctl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Visible to the very next query.
        assert_eq!(
            answer(&s, "fo.f.test."),
            vec!["fo.f.test. 5 IN A 192.0.2.20"]
        );
        let (code, body) = http(admin, "GET", "/status");
        assert_eq!(code, 200);
        assert!(body.contains("\"region:a\": \"drain\""), "{body}");
        // SIGTERM: the state file is written on the way out.
        let st = std::process::Command::new("kill")
            .args(["-TERM", &s.pid().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        s.wait_log("stopped");
    }
    let text = std::fs::read_to_string(&state).expect("state file written");
    assert!(text.contains("region:a"), "{text}");
    let s = start(&d, &["--state-file", &state_s]);
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec!["fo.f.test. 5 IN A 192.0.2.20"],
        "a restart forgot the drain"
    );
    let admin = s.admin.expect("admin");
    let (code, _) = http(admin, "POST", "/v1/override?target=region:a&action=undrain");
    assert_eq!(code, 200);
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec!["fo.f.test. 30 IN A 192.0.2.10"]
    );
}

#[test]
fn admin_metrics_status_and_bad_requests() {
    let d = dir("admin");
    let a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    std::fs::write(d.0.join("zones/f.toml"), zone(a.addr, b.addr, 2, 2)).expect("write");
    let s = start(&d, &[]);
    let admin = s.admin.expect("admin");
    for _ in 0..3 {
        answer(&s, "fo.f.test.");
    }
    ask_udp(s.addr, &QuerySpec::new("nope.f.test.", 1));
    ask_udp(s.addr, &QuerySpec::new("elsewhere.example.", 1));
    let (code, m) = http(admin, "GET", "/metrics");
    assert_eq!(code, 200);
    for needle in [
        "signpost_queries_total{zone=\"f.test.\",qtype=\"A\",rcode=\"NOERROR\",transport=\"udp\"} 3",
        "signpost_queries_total{zone=\"f.test.\",qtype=\"A\",rcode=\"NXDOMAIN\",transport=\"udp\"} 1",
        "signpost_queries_total{zone=\"\",qtype=\"A\",rcode=\"REFUSED\",transport=\"udp\"} 1",
        "signpost_steered_answers_total{name=\"fo.f.test.\",region=\"a\",reason=\"failover\"} 3",
        "signpost_endpoint_up{name=\"fo.f.test.\",region=\"a\"} 1",
        "signpost_config_generation 1",
        "signpost_probe_duration_seconds_bucket",
    ] {
        assert!(m.contains(needle), "missing {needle:?} in:\n{m}");
    }
    let (code, st) = http(admin, "GET", "/status");
    assert_eq!(code, 200);
    assert!(st.contains("\"origin\": \"f.test.\""), "{st}");

    // Bad requests: each a 4xx with a message, nothing changed.
    let cases: [(&str, &str, u16); 7] = [
        ("GET", "/nope", 404),
        ("POST", "/metrics", 405),
        ("GET", "/v1/override?target=region:a&action=drain", 405),
        ("POST", "/v1/override?target=region:zz&action=drain", 400),
        ("POST", "/v1/override?target=region:a&action=explode", 400),
        ("POST", "/v1/weight?target=region:a&weight=-1", 400),
        ("GET", "/explain?name=fo.f.test.&client=not-an-ip", 400),
    ];
    for (method, path, want) in cases {
        let (code, body) = http(admin, method, path);
        assert_eq!(code, want, "{method} {path}: {body}");
        assert!(!body.trim().is_empty(), "{method} {path}: empty message");
    }
    let big = format!(
        "POST /v1/weight HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{}",
        "x".repeat(10)
    );
    assert_eq!(common::http_raw(admin, big.as_bytes()).0, 413);
    assert_eq!(common::http_raw(admin, b"NONSENSE\r\n\r\n").0, 400);
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec!["fo.f.test. 30 IN A 192.0.2.10"]
    );

    // Explain over HTTP.
    let (code, ex) = http(
        admin,
        "GET",
        "/explain?name=fo.f.test.&client=198.51.100.7%2F24",
    );
    assert_eq!(code, 200, "{ex}");
    assert!(ex.contains("failover order: a > b"), "{ex}");
}

#[test]
fn weight_override_moves_weighted_answers() {
    let d = dir("weight");
    std::fs::write(
        d.0.join("zones/w.toml"),
        r#"origin = "w.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.w.test."
contact = "h@w.test"
[regions]
a = {}
b = {}
[names.canary]
strategy = "weighted"
endpoints.a = { a = ["192.0.2.10"], weight = 1 }
endpoints.b = { a = ["192.0.2.20"], weight = 0 }
"#,
    )
    .expect("write");
    let s = start(&d, &[]);
    assert_eq!(
        answer(&s, "canary.w.test."),
        vec!["canary.w.test. 30 IN A 192.0.2.10"]
    );
    let admin = s.admin.expect("admin");
    let (c1, _) = http(admin, "POST", "/v1/weight?target=region:a&weight=0");
    let (c2, _) = http(admin, "POST", "/v1/weight?target=region:b&weight=5");
    assert_eq!((c1, c2), (200, 200));
    assert_eq!(
        answer(&s, "canary.w.test."),
        vec!["canary.w.test. 30 IN A 192.0.2.20"]
    );
}

#[test]
fn tcp_check_pulls_and_restores_an_endpoint() {
    let d = dir("tcp");
    // A TCP backend: a listener that is closed and reopened on the same port.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let zone = format!(
        r#"origin = "t.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.t.test."
contact = "h@t.test"
[checks.db]
tcp = {{ port = {port} }}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 1
fall = 1
[regions]
a = {{}}
b = {{}}
[names.db]
strategy = "failover"
endpoints.a = {{ a = ["192.0.2.10"], check = "db", probe = "127.0.0.1:{port}" }}
endpoints.b = {{ a = ["192.0.2.20"] }}
"#
    );
    std::fs::write(d.0.join("zones/t.toml"), zone).expect("write");
    let s = start(&d, &[]);
    assert_eq!(
        answer(&s, "db.t.test."),
        vec!["db.t.test. 30 IN A 192.0.2.10"]
    );
    drop(listener);
    wait_until("the closed port to pull a", Duration::from_secs(10), || {
        answer(&s, "db.t.test.") == vec!["db.t.test. 30 IN A 192.0.2.20"]
    });
    let _again = TcpListener::bind(("127.0.0.1", port)).expect("rebind the same port");
    wait_until(
        "the reopened port to restore a",
        Duration::from_secs(10),
        || answer(&s, "db.t.test.") == vec!["db.t.test. 30 IN A 192.0.2.10"],
    );
}

#[test]
fn reload_keeps_health_state_and_overrides() {
    let d = dir("reload");
    let mut a = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let b = Backend::start("127.0.0.1:0".parse().expect("addr"));
    let file = d.0.join("zones/f.toml");
    std::fs::write(&file, zone(a.addr, b.addr, 2, 2)).expect("write");
    let s = start(&d, &[]);
    let admin = s.admin.expect("admin");
    a.kill();
    wait_until("a down", Duration::from_secs(10), || {
        answer(&s, "fo.f.test.") == vec!["fo.f.test. 5 IN A 192.0.2.20"]
    });
    let (code, _) = http(
        admin,
        "POST",
        "/v1/override?target=region:b&action=force-up",
    );
    assert_eq!(code, 200);
    // An edit that adds a name: the reloaded configuration must still see a as
    // down (no probe has to fail again) and keep the override.
    let mut text = zone(a.addr, b.addr, 2, 2);
    text.push_str("\n[names.extra]\nstrategy = \"all\"\nendpoints.a = { a = [\"192.0.2.99\"] }\n");
    let tmp = d.0.join("f.toml.new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, &file).expect("rename");
    wait_until("the reload", Duration::from_secs(10), || {
        answer(&s, "extra.f.test.") == vec!["extra.f.test. 30 IN A 192.0.2.99"]
    });
    assert_eq!(
        answer(&s, "fo.f.test."),
        vec!["fo.f.test. 5 IN A 192.0.2.20"]
    );
    let (_, st) = http(admin, "GET", "/status");
    assert!(st.contains("\"region:b\": \"force-up\""), "{st}");
    assert!(st.contains("\"generation\": 2"), "{st}");
}
