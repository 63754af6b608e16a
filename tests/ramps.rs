//! Ramps end to end with short holds: `signpost ctl ramp` moves a region's dial
//! step by step while its health checks pass (a backend the test controls, on
//! loopback), pause holds the dial, a failing check stops the ramp and sets the
//! dial to the last safe step (or 0), counted in the metrics and shown in
//! `/status`.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{http, Server};

const LIMIT: Duration = Duration::from_secs(20);

fn zone(backend: std::net::SocketAddr) -> String {
    format!(
        r#"origin = "r.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.r.test."
contact = "h@r.test"
negative_ttl = 60

[checks.web]
http = {{ port = 80, path = "/healthz", expect = 200 }}
interval = "100ms"
timeout = "80ms"
jitter = "10ms"
rise = 1
fall = 1

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

fn status(s: &Server) -> serde_json::Value {
    let (code, body) = http(s.admin.expect("admin"), "GET", "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("json")
}

fn ramp(s: &Server) -> serde_json::Value {
    status(s)["ramps"]["ramps"]["region:a"].clone()
}

fn wait(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, LIMIT, f);
}

#[test]
fn a_ramp_advances_while_healthy_pauses_and_stops_on_a_failing_check() {
    let d = common::dir("ramps", "gate");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let backend = listener.local_addr().expect("addr");
    let healthy = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let server_thread =
        common::serve_health(listener, stop.clone(), move |_| h.load(Ordering::Relaxed));
    std::fs::write(d.0.join("zones/r.toml"), zone(backend)).expect("zone");
    let s = common::start_with_admin(&d.0.join("zones"), &[]);
    wait("region a up", || status(&s)["endpoints"][0]["up"] == true);

    // From 0 to 100 in three steps of 200 ms each.
    s.ctl(&["dial", "a", "0"]);
    let out = s.ctl(&["ramp", "a", "--steps", "10,50,100", "--hold", "200ms"]);
    assert!(out.contains("running"), "{out}");
    let mut seen = Vec::new();
    wait("the ramp done", || {
        let r = ramp(&s);
        let d = r["dial"].as_u64().unwrap_or(0);
        if seen.last() != Some(&d) {
            seen.push(d);
        }
        r["phase"] == "done"
    });
    assert_eq!(seen.first(), Some(&0), "{seen:?}");
    assert_eq!(seen.last(), Some(&100), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(status(&s)["region_dials"]["region:a"], 100);

    // Pause holds the dial past the hold time; resume goes on.
    s.ctl(&["dial", "a", "0"]);
    s.ctl(&["ramp", "a", "--steps", "10,50,100", "--hold", "1s"]);
    wait("the first step", || ramp(&s)["dial"] == 10);
    s.ctl(&["ramp", "a", "--action", "pause"]);
    let paused_at = std::time::Instant::now();
    wait("1.5 s paused", || {
        paused_at.elapsed() > Duration::from_millis(1500)
    });
    assert_eq!(ramp(&s)["dial"], 10, "a paused ramp advanced");
    assert_eq!(ramp(&s)["phase"], "paused");
    s.ctl(&["ramp", "a", "--action", "resume"]);
    wait("the second step", || ramp(&s)["dial"] == 50);

    // The check fails at 50 %: back to 10, the last step that held.
    healthy.store(false, Ordering::Relaxed);
    wait("the ramp stopped by its gate", || {
        ramp(&s)["phase"] == "failed"
    });
    let r = ramp(&s);
    assert_eq!(r["dial"], 10, "{r}");
    assert_eq!(r["failed_gate"], "health of region:a", "{r}");
    assert_eq!(status(&s)["region_dials"]["region:a"], 10);
    let (_, metrics) = http(s.admin.expect("admin"), "GET", "/metrics");
    assert!(
        metrics.contains("signpost_ramp_failures_total{gate=\"health of region:a\"} 1"),
        "{metrics}"
    );
    let line = s.wait_log("ramp stopped by its gate");
    assert!(line.contains("region:a"), "{line}");

    // on_fail = zero: the dial goes to 0.
    healthy.store(true, Ordering::Relaxed);
    wait("region a up again", || {
        status(&s)["endpoints"][0]["up"] == true
    });
    s.ctl(&[
        "ramp",
        "a",
        "--steps",
        "50,100",
        "--hold",
        "200ms",
        "--on-fail",
        "zero",
    ]);
    wait("the first step", || ramp(&s)["dial"] == 50);
    healthy.store(false, Ordering::Relaxed);
    wait("the ramp stopped", || ramp(&s)["phase"] == "failed");
    assert_eq!(ramp(&s)["dial"], 0);
    assert_eq!(status(&s)["region_dials"]["region:a"], 0);

    // Bad parameters: refused, nothing started.
    let (code, body) = http(
        s.admin.expect("admin"),
        "POST",
        "/v1/ramp?target=region:a&steps=50,10,100&hold=1s",
    );
    assert_eq!(code, 400, "{body}");
    stop.store(true, Ordering::Relaxed);
    let _ = server_thread.join();
}

#[test]
fn a_ramp_survives_a_restart_of_its_instance() {
    let d = common::dir("ramps", "restart");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let backend = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let server_thread = common::serve_health(listener, stop.clone(), |_| true);
    std::fs::write(d.0.join("zones/r.toml"), zone(backend)).expect("zone");
    let state = d.0.join("state.toml");
    let args = ["--state-file", state.to_str().expect("path")];
    let s = common::start_with_admin(&d.0.join("zones"), &args);
    wait("region a up", || status(&s)["endpoints"][0]["up"] == true);
    s.ctl(&["dial", "a", "0"]);
    s.ctl(&["ramp", "a", "--steps", "10,50,100", "--hold", "500ms"]);
    wait("the first step", || ramp(&s)["dial"] == 10);
    wait("the first step's dial", || {
        status(&s)["region_dials"]["region:a"] == 10
    });
    drop(s);
    // A stop between the ramps' save and the state file's: the state file still
    // says 0. The restored ramp owns the dial and sets it again.
    let text = std::fs::read_to_string(&state).expect("state file");
    assert!(text.contains("\"region:a\" = 10"), "{text}");
    std::fs::write(
        &state,
        text.replace("\"region:a\" = 10", "\"region:a\" = 0"),
    )
    .expect("state file");

    let s = common::start_with_admin(&d.0.join("zones"), &args);
    let r = ramp(&s);
    assert!(r["phase"] == "running" && r["dial"] == 10, "{r}");
    assert_eq!(status(&s)["region_dials"]["region:a"], 10);
    wait("the ramp done after the restart", || {
        ramp(&s)["phase"] == "done"
    });
    assert_eq!(status(&s)["region_dials"]["region:a"], 100);
    stop.store(true, Ordering::Relaxed);
    let _ = server_thread.join();
}
