//! The latency collector over real HTTP on loopback: `latency::rum::serve`
//! started in-process on a listener of the test's, with the aggregator the
//! application would snapshot; clients are raw TCP streams bound to chosen
//! 127.0.0.x addresses, so each is a distinct sender of network 127.0.0.0/24
//! (127.0.1.x is another network). The last test runs the beacon script in
//! headless Chromium against three region servers with delays of their own.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signpost::geo::Location;
use signpost::latency::rum::{self, Collector, RumRegion, RumSettings};
use signpost::latency::{Aggregator, AggregatorLimits, LatencyHandle, NetKey};

const WAIT: Duration = Duration::from_secs(5);
const ORIGIN: &str = "https://shop.example";
const TOKEN: &str = "feed-token-0123456789abcdef";

fn regions() -> Vec<RumRegion> {
    ["eu-west", "us-east", "ap-northeast"]
        .iter()
        .enumerate()
        .map(|(i, n)| RumRegion {
            name: n.to_string(),
            index: i as u16,
            url: format!("http://127.0.0.{}:8080/signpost.gif", i + 2),
        })
        .collect()
}

/// A collector serving on 127.0.0.1, on a runtime of its own; stopped (and
/// waited for) when dropped.
struct Harness {
    addr: SocketAddr,
    table: LatencyHandle,
    collector: Arc<Collector>,
    stop: tokio::sync::watch::Sender<bool>,
    done: Option<std::sync::mpsc::Receiver<()>>,
    _rt: tokio::runtime::Runtime,
}

impl Harness {
    fn start(edit: impl FnOnce(&mut RumSettings, &mut AggregatorLimits)) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind collector");
        let addr = listener.local_addr().expect("addr");
        let mut settings = RumSettings::new(addr, regions());
        settings.allowed_origins = vec![ORIGIN.to_string()];
        settings.feed_token = Some(TOKEN.to_string());
        // Every loopback sender is in 127.0.0.0/24: room for the tests' beacons.
        settings.limits.burst = 100.0;
        let mut limits = AggregatorLimits::default();
        edit(&mut settings, &mut limits);
        let names = regions().into_iter().map(|r| r.name).collect();
        let table = LatencyHandle::new(Aggregator::new(names, limits));
        let collector = Collector::new(settings, table.clone()).expect("settings");
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (done_tx, done) = std::sync::mpsc::channel();
        let c = collector.clone();
        rt.spawn(async move {
            rum::serve(Arc::new(listener), c, stop_rx).await;
            let _ = done_tx.send(());
        });
        Harness {
            addr,
            table,
            collector,
            stop,
            done: Some(done),
            _rt: rt,
        }
    }

    /// The table the application would take now.
    fn snapshot(&self) -> Arc<signpost::policy::LatencyTable> {
        self.table.snapshot(Instant::now())
    }

    fn row(&self, ip: Ipv4Addr) -> Option<Vec<Option<f32>>> {
        let t = self.snapshot();
        let r = t.row(IpAddr::V4(ip), &Location::default())?;
        Some(t.rows[r as usize].clone())
    }

    fn accepted(&self) -> u64 {
        self.table.lock().counters().accepted
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.recv_timeout(WAIT);
        }
    }
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One request from `from` (a loopback address the socket is bound to).
fn request(
    to: SocketAddr,
    from: Ipv4Addr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    sock.connect_timeout(&to.into(), WAIT)
        .expect("connect collector");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    // A refusal may close the connection before the whole body is taken.
    let _ = s.write_all(&bytes);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn beacon(h: &Harness, from: Ipv4Addr, body: &str) -> Resp {
    request(
        h.addr,
        from,
        "POST",
        "/v1/beacon",
        &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
        body.as_bytes(),
    )
}

const GOOD: &str = r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":20.5},{"region":"us-east","rtt_ms":80},{"region":"ap-northeast","rtt_ms":150}]}"#;

const RUM_ZONE: &str = r#"origin = "rum.test."
ttl = 300
records = """
@    NS  ns1
ns1  A   192.0.2.1
"""
[soa]
primary = "ns1.rum.test."
contact = "hostmaster@rum.test"
serial = 1
negative_ttl = 60

[regions]
us-east = { location = [38.9, -77.4] }
eu-west = { location = [53.3, -6.3] }

[names.near]
strategy = "latency"
endpoints.us-east = { a = ["10.0.0.1"] }
endpoints.eu-west = { a = ["10.0.0.2"] }
"#;

fn lo(d: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, d)
}

#[test]
fn one_sender_is_accepted_but_makes_no_figure_until_enough_distinct_senders_agree() {
    let h = Harness::start(|_, _| {});
    for _ in 0..5 {
        let r = beacon(&h, lo(11), GOOD);
        assert_eq!(r.status, 204, "{}{}", r.head, r.body);
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some(ORIGIN)
        );
    }
    assert_eq!(h.accepted(), 15);
    assert_eq!(
        h.row(lo(200)),
        None,
        "one sender, however often, makes no figure"
    );
    assert_eq!(beacon(&h, lo(12), GOOD).status, 204);
    assert_eq!(h.row(lo(200)), None, "two senders");
    assert_eq!(beacon(&h, lo(13), GOOD).status, 204);
    assert_eq!(
        h.row(lo(200)),
        Some(vec![Some(20.5), Some(80.0), Some(150.0)])
    );
    let t = h.snapshot();
    assert_eq!(t.rows.len(), 1);
    assert!(
        t.label(0)
            .unwrap_or_default()
            .starts_with("measured 127.0.0.0/24: eu-west 20.5 ms (6 samples from 3 senders, "),
        "{}",
        t.label(0).unwrap_or_default()
    );
    // Another network has no figure from these.
    assert_eq!(h.row(Ipv4Addr::new(127, 0, 1, 1)), None);
}

#[test]
fn bad_beacons_get_400_or_413_and_change_nothing() {
    let h = Harness::start(|_, _| {});
    let big = format!(
        r#"{{"v":1,"samples":[{}]}}"#,
        vec![r#"{"region":"eu-west","rtt_ms":20}"#; 200].join(",")
    );
    let cases: Vec<(&str, String, u16)> = vec![
        ("not JSON", "hello".into(), 400),
        ("a number", "42".into(), 400),
        ("unknown field", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":20,"x":1}]}"#.into(), 400),
        ("version 2", r#"{"v":2,"samples":[{"region":"eu-west","rtt_ms":20}]}"#.into(), 400),
        ("no samples", r#"{"v":1,"samples":[]}"#.into(), 400),
        ("rtt as text", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":"20"}]}"#.into(), 400),
        ("unknown region", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":20},{"region":"mars","rtt_ms":20}]}"#.into(), 400),
        ("negative", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":20},{"region":"us-east","rtt_ms":-3}]}"#.into(), 400),
        ("zero", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":0}]}"#.into(), 400),
        ("over 10 s", r#"{"v":1,"samples":[{"region":"eu-west","rtt_ms":20},{"region":"us-east","rtt_ms":10000.5}]}"#.into(), 400),
        ("too many samples", format!(r#"{{"v":1,"samples":[{}]}}"#, vec![r#"{"region":"eu-west","rtt_ms":20}"#; 33].join(",")), 400),
        ("over 4 KiB", big, 413),
    ];
    for (d, (what, body, status)) in cases.iter().enumerate() {
        let r = beacon(&h, lo(20 + d as u8), body);
        assert_eq!(r.status, *status, "{what}: {}{}", r.head, r.body);
        assert!(
            !r.body.is_empty() || r.status == 413,
            "{what}: a reason is given"
        );
    }
    assert_eq!(h.accepted(), 0, "no sample of a refused body was kept");
    assert!(h.table.lock().is_empty());
    let c = h.table.lock().counters().clone();
    assert_eq!((c.unknown_region, c.absurd), (1, 3), "{c:?}");
    let s = h.collector.stats();
    assert_eq!(s.bad_request.load(std::sync::atomic::Ordering::Relaxed), 11);
    assert_eq!(s.too_large.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Wrong method, unknown path.
    assert_eq!(
        request(h.addr, lo(1), "GET", "/v1/beacon", &[], b"").status,
        405
    );
    assert_eq!(
        request(h.addr, lo(1), "GET", "/admin", &[], b"").status,
        404
    );
}

#[test]
fn a_network_sending_too_fast_gets_429_and_others_do_not() {
    let h = Harness::start(|s, _| {
        s.limits.burst = 3.0;
        s.limits.rate_per_sec = 0.01;
    });
    for d in 1..=3 {
        assert_eq!(beacon(&h, lo(d), GOOD).status, 204);
    }
    // Another address of the same /24 draws on the same bucket.
    let r = beacon(&h, lo(4), GOOD);
    assert_eq!(r.status, 429, "{}{}", r.head, r.body);
    assert!(r.header("retry-after").is_some());
    // A refused beacon is not read, even when it is bad.
    assert_eq!(beacon(&h, lo(5), "hello").status, 429);
    assert_eq!(h.accepted(), 9);
    // Another network has its own.
    assert_eq!(beacon(&h, Ipv4Addr::new(127, 0, 1, 1), GOOD).status, 204);
    assert_eq!(h.accepted(), 12);
}

#[test]
fn cors_allows_only_the_configured_origins() {
    let h = Harness::start(|_, _| {});
    let foreign = "https://evil.example";
    let r = request(
        h.addr,
        lo(1),
        "POST",
        "/v1/beacon",
        &[("Origin", foreign)],
        GOOD.as_bytes(),
    );
    assert_eq!(r.status, 403, "{}{}", r.head, r.body);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(h.accepted(), 0);
    let pre = |origin: &str| {
        request(
            h.addr,
            lo(1),
            "OPTIONS",
            "/v1/beacon",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
            b"",
        )
    };
    let r = pre(foreign);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = pre(ORIGIN);
    assert_eq!(r.status, 204, "{}", r.head);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("POST")
    );
    // Without an Origin (not a browser), a beacon counts, with no CORS header.
    let r = request(h.addr, lo(1), "POST", "/v1/beacon", &[], GOOD.as_bytes());
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn the_feed_needs_the_token_and_checks_every_line() {
    let h = Harness::start(|_, _| {});
    let body = r#"{"v":1,"samples":[
        {"network":"198.51.100.0/24","region":"us-east","rtt_ms":70,"count":12},
        {"asn":64500,"region":"eu-west","rtt_ms":30,"count":6},
        {"country":"JP","region":"ap-northeast","rtt_ms":45,"count":40}]}"#;
    let feed = |auth: Option<&str>, body: &str| {
        let mut hs = vec![("Content-Type", "application/json")];
        if let Some(a) = auth {
            hs.push(("Authorization", a));
        }
        request(h.addr, lo(1), "POST", "/v1/feed", &hs, body.as_bytes())
    };
    assert_eq!(feed(None, body).status, 401);
    assert_eq!(
        feed(Some("Bearer feed-token-0123456789abcdeX"), body).status,
        401
    );
    assert_eq!(feed(Some("Bearer feed-token"), body).status, 401);
    assert_eq!(feed(Some(TOKEN), body).status, 401, "the scheme is needed");
    assert_eq!(h.accepted(), 0);
    let auth = format!("Bearer {TOKEN}");
    for bad in [
        r#"{"v":1,"samples":[{"network":"198.51.100.0/25","region":"us-east","rtt_ms":70}]}"#,
        r#"{"v":1,"samples":[{"network":"198.51.100.0/24","asn":1,"region":"us-east","rtt_ms":70}]}"#,
        r#"{"v":1,"samples":[{"asn":1,"region":"us-east","rtt_ms":70,"count":0}]}"#,
        r#"{"v":1,"samples":[{"asn":1,"region":"us-east","rtt_ms":70},{"country":"jp","region":"us-east","rtt_ms":70}]}"#,
        r#"{"v":1,"samples":[{"asn":1,"region":"us-east","rtt_ms":70},{"asn":2,"region":"us-east","rtt_ms":1e6}]}"#,
    ] {
        let r = feed(Some(&auth), bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    assert_eq!(h.accepted(), 0);
    let r = feed(Some(&auth), body);
    assert_eq!(r.status, 204, "{}", r.body);
    let t = h.snapshot();
    assert_eq!(t.rows.len(), 3);
    assert_eq!(
        h.row(Ipv4Addr::new(198, 51, 100, 9)),
        Some(vec![None, Some(70.0), None])
    );
    let loc = Location {
        asn: Some(64500),
        ..Default::default()
    };
    let r = t
        .row(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), &loc)
        .unwrap();
    assert_eq!(t.rows[r as usize][0], Some(30.0));
    // Off without a token.
    let off = Harness::start(|s, _| s.feed_token = None);
    let r = request(
        off.addr,
        lo(1),
        "POST",
        "/v1/feed",
        &[("Authorization", &auth)],
        body.as_bytes(),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_address_is_the_sender() {
    let h = Harness::start(|s, _| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]);
    for d in [1, 2, 3, 1, 2] {
        let xff = format!("192.0.2.{d}");
        let r = request(
            h.addr,
            lo(1),
            "POST",
            "/v1/beacon",
            &[("X-Forwarded-For", &xff)],
            GOOD.as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert!(h.row(Ipv4Addr::new(192, 0, 2, 99)).is_some());
    assert_eq!(h.row(lo(1)), None, "nothing for the proxy's network");
    // The proxy's own hop without a client address: refused.
    let r = request(h.addr, lo(1), "POST", "/v1/beacon", &[], GOOD.as_bytes());
    assert_eq!(r.status, 400);
    // Not a listed proxy: its header is ignored, the figures are its own.
    let r = request(
        h.addr,
        lo(9),
        "POST",
        "/v1/beacon",
        &[("X-Forwarded-For", "192.0.2.50")],
        GOOD.as_bytes(),
    );
    assert_eq!(r.status, 204);
    let key = NetKey::of_addr(IpAddr::V4(lo(9)));
    assert_eq!(h.table.lock().figures(&key, Instant::now()).len(), 3);
    assert!(
        h.table.lock().figures(&key, Instant::now())[0].is_none(),
        "one sender"
    );
}

#[test]
fn the_script_carries_the_regions_urls_and_no_third_party_code() {
    let h = Harness::start(|_, _| {});
    let r = request(h.addr, lo(1), "GET", "/beacon.js", &[], b"");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/javascript"));
    assert!(
        r.body
            .contains(r#""url":"http://127.0.0.3:8080/signpost.gif""#),
        "{}",
        r.body
    );
    assert!(r.body.contains("getEntriesByName") && r.body.contains("/v1/beacon"));
    assert!(!r.body.contains("__SIGNPOST_CONFIG__"));
    assert!(!r.body.contains("https://"), "no other code is loaded");
}

// The beacon in a real browser: headless Chromium (Debian's `chromium` and
// `chromium-driver`) over WebDriver, as tests/dashboard.rs drives it. Three
// region servers on 127.0.0.2-4 answer after delays of their own (this kernel
// has no netem); a page on 127.0.0.1 carries the collector's script; the
// collector receives the figures, in the regions' true order.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PAGE_WAIT: Duration = Duration::from_secs(30);

/// An HTTP server on `ip` that answers every request with `body` after `delay`;
/// stops when dropped.
struct Slow {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Slow {
    fn start(ip: Ipv4Addr, delay: Duration, content_type: &'static str, body: String) -> Slow {
        let listener = TcpListener::bind((ip, 0)).expect("bind region server");
        Slow::on(listener, delay, content_type, body)
    }

    fn on(
        listener: TcpListener,
        delay: Duration,
        content_type: &'static str,
        body: String,
    ) -> Slow {
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let body = body.clone();
                std::thread::spawn(move || {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(WAIT));
                    let mut r = BufReader::new(&s);
                    let mut line = String::new();
                    while r.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                        line.clear();
                    }
                    std::thread::sleep(delay);
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nTiming-Allow-Origin: *\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = (&s).write_all(resp.as_bytes());
                });
            }
        });
        Slow {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Slow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn webdriver(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|e| e.to_string())?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut text = Vec::new();
    match length {
        Some(n) => {
            text.resize(n, 0);
            reader.read_exact(&mut text).map_err(|e| e.to_string())?;
        }
        None => {
            reader.read_to_end(&mut text).map_err(|e| e.to_string())?;
        }
    }
    let body = String::from_utf8_lossy(&text).into_owned();
    let v: Value = serde_json::from_str(&body)
        .map_err(|e| format!("{method} {path}: {status}, not JSON ({e})"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status == "200" {
        Ok(value)
    } else {
        Err(format!("{method} {path}: {status} {value}"))
    }
}

/// chromedriver and one browser session; both end when dropped.
struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn start(profile: &std::path::Path) -> Browser {
        for (p, pkg) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(p).exists(),
                "{p} is missing: install Debian's {pkg} package"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        common::wait_until("chromedriver to be ready", PAGE_WAIT, || {
            webdriver(addr, "GET", "/status", None)
                .is_ok_and(|v| v.get("ready").and_then(Value::as_bool) == Some(true))
        });
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }},
        });
        let v = webdriver(addr, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"));
        b.session = v
            .get("sessionId")
            .and_then(Value::as_str)
            .expect("a session id")
            .to_string();
        b
    }

    fn cmd(&self, method: &str, rest: &str, body: Option<&Value>) -> Result<Value, String> {
        webdriver(
            self.addr,
            method,
            &format!("/session/{}{rest}", self.session),
            body,
        )
    }

    fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.cmd("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[test]
fn a_browser_running_the_beacon_reports_the_regions_in_their_true_order() {
    // eu-west is the slowest, ap-northeast the quickest.
    let delays = [(2u8, 150u64), (3, 80), (4, 20)];
    let regions: Vec<Slow> = delays
        .iter()
        .map(|(d, ms)| {
            Slow::start(
                lo(*d),
                Duration::from_millis(*ms),
                "image/gif",
                "GIF89a".into(),
            )
        })
        .collect();
    let page_listener = TcpListener::bind("127.0.0.1:0").expect("bind page");
    let page_addr = page_listener.local_addr().expect("addr");
    let h = Harness::start(|s, l| {
        for (r, slow) in s.regions.iter_mut().zip(&regions) {
            r.url = format!("http://{}/signpost.gif", slow.addr);
        }
        s.allowed_origins = vec![format!("http://{page_addr}")];
        // One browser is one sender.
        l.min_samples = 1;
        l.min_senders = 1;
    });
    let html = format!(
        "<!doctype html><title>shop</title><p>hello</p><script async src=\"http://{}/beacon.js\"></script>",
        h.addr
    );
    let page = Slow::on(
        page_listener,
        Duration::ZERO,
        "text/html; charset=utf-8",
        html,
    );
    let d = common::dir("latency", "browser");
    let b = Browser::start(&d.0.join("chrome-profile"));
    b.cmd(
        "POST",
        "/url",
        Some(&json!({ "url": format!("http://{}/", page.addr) })),
    )
    .expect("open the page");
    let start = Instant::now();
    while b.eval("return !!(window.signpostBeacon && window.signpostBeacon.done)")
        != Value::Bool(true)
    {
        assert!(
            start.elapsed() < PAGE_WAIT,
            "the beacon did not finish: {}",
            b.eval("return JSON.stringify(window.signpostBeacon || null)")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let state = b.eval("return JSON.stringify(window.signpostBeacon)");
    assert_eq!(
        b.eval("return window.signpostBeacon.status"),
        json!(204),
        "the collector took the beacon and the page could read the answer: {state}"
    );
    let row = h
        .row(lo(1))
        .unwrap_or_else(|| panic!("no figure for 127.0.0.0/24: {state}"));
    let [Some(eu), Some(us), Some(ap)] = row[..] else {
        panic!("a region without a figure: {row:?} ({state})");
    };
    assert!(ap < us && us < eu, "order: {row:?}");
    for (ms, (_, delay)) in [eu, us, ap].iter().zip(delays) {
        assert!(
            *ms >= delay as f32 && *ms < delay as f32 + 1000.0,
            "{row:?}"
        );
    }
    drop(b);
    drop(page);
}

/// The whole path in the signpost binary: `[rum]` on loopback, beacons from
/// three senders of 127.0.0.0/24 saying us-east is fastest, and the steered
/// answer for that network moves from the estimate's eu-west to us-east,
/// while 127.0.1.0/24 (same location, no samples) keeps the estimate's.
#[test]
fn measured_figures_from_beacons_move_the_steered_answer_of_their_network_only() {
    let d = common::dir("latency", "e2e");
    std::fs::write(d.0.join("zones/rum.test.toml"), RUM_ZONE).expect("zone");
    // A free port for the collector: taken, then given to the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let collector: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
    let cfg = d.0.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[geo]
database = "{}"
# Both loopback networks in Dublin: the estimate says eu-west.
[[geo.override]]
cidr = "127.0.0.0/24"
location = [53.35, -6.26]
[[geo.override]]
cidr = "127.0.1.0/24"
location = [53.35, -6.26]

[rum]
listen = "{collector}"
regions = {{ us-east = "http://127.0.0.2:8080/o.gif", eu-west = "http://127.0.0.3:8080/o.gif" }}
allowed_origins = ["{ORIGIN}"]
refresh = "200ms"
"#,
            geo.display()
        ),
    )
    .expect("config");
    let s = common::Server::start(&[
        "--zones",
        d.0.join("zones").to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    let ask = |subnet: &str| {
        let mut q = common::QuerySpec::new("near.rum.test", 1);
        q.edns = Some(common::EdnsSpec {
            payload: 4096,
            ecs: Some((subnet.parse().expect("addr"), 24)),
            ..common::EdnsSpec::default()
        });
        common::ask_udp(s.addr, &q)
    };
    let has = |r: &common::Decoded, a: &str| r.answer.iter().any(|l| l.ends_with(a));
    let before = ask("127.0.0.0");
    assert!(has(&before, "10.0.0.2"), "estimate: eu-west {before:?}");

    let body =
        r#"{"v":1,"samples":[{"region":"us-east","rtt_ms":9},{"region":"eu-west","rtt_ms":140}]}"#;
    // Five senders: the figure needs 5 samples from 3 distinct addresses, and
    // one network may send a burst of 5.
    for d in 10..15u8 {
        let r = request(
            collector,
            lo(d),
            "POST",
            "/v1/beacon",
            &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 204, "{}", r.head);
    }
    common::wait_until("the measured answer", Duration::from_secs(10), || {
        has(&ask("127.0.0.0"), "10.0.0.1")
    });
    let measured = ask("127.0.0.0");
    let (_, _, scope) = measured.ecs.expect("ecs echoed");
    assert!(
        scope >= 24,
        "scope /{scope} covers more than the measured /24"
    );
    let other = ask("127.0.1.0");
    assert!(
        has(&other, "10.0.0.2"),
        "no samples: the estimate {other:?}"
    );
}

fn hup(s: &common::Server) {
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -HUP");
}

/// `[rum]` on SIGHUP: a region added is taken by the collector, the other
/// keys (here `rounds`) take effect, the figures of the regions that remain
/// stay in the answers; a bad table is refused with file:line and the
/// running collector goes on.
#[test]
fn rum_reloads_on_sighup_keeping_the_figures_of_regions_that_remain() {
    let d = common::dir("latency", "reload");
    std::fs::write(d.0.join("zones/rum.test.toml"), RUM_ZONE).expect("zone");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let collector: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
    let cfg = d.0.join("server.toml");
    let write = |regions: &str, extra: &str| {
        let text = format!(
            "[geo]\ndatabase = \"{}\"\n[[geo.override]]\ncidr = \"127.0.0.0/24\"\nlocation = [53.35, -6.26]\n\n\
             [rum]\nlisten = \"{collector}\"\nregions = {{ {regions} }}\nallowed_origins = [\"{ORIGIN}\"]\nrefresh = \"200ms\"\n{extra}",
            geo.display()
        );
        std::fs::write(&cfg, text).expect("config");
    };
    let two = r#"us-east = "http://127.0.0.2:8080/o.gif", eu-west = "http://127.0.0.3:8080/o.gif""#;
    write(two, "");
    let s = common::Server::start(&[
        "--zones",
        d.0.join("zones").to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    let ask = |subnet: &str| {
        let mut q = common::QuerySpec::new("near.rum.test", 1);
        q.edns = Some(common::EdnsSpec {
            payload: 4096,
            ecs: Some((subnet.parse().expect("addr"), 24)),
            ..common::EdnsSpec::default()
        });
        common::ask_udp(s.addr, &q)
    };
    let has = |r: &common::Decoded, a: &str| r.answer.iter().any(|l| l.ends_with(a));
    let post = |from: Ipv4Addr, body: &str| {
        request(
            collector,
            from,
            "POST",
            "/v1/beacon",
            &[("Content-Type", "text/plain"), ("Origin", ORIGIN)],
            body.as_bytes(),
        )
    };
    let script = || request(collector, lo(1), "GET", "/beacon.js", &[], b"").body;
    let body =
        r#"{"v":1,"samples":[{"region":"us-east","rtt_ms":9},{"region":"eu-west","rtt_ms":140}]}"#;
    for d in 10..15u8 {
        assert_eq!(post(lo(d), body).status, 204);
    }
    common::wait_until("the measured answer", Duration::from_secs(10), || {
        has(&ask("127.0.0.0"), "10.0.0.1")
    });
    let south = r#"{"v":1,"samples":[{"region":"ap-south","rtt_ms":30}]}"#;
    assert_eq!(post(Ipv4Addr::new(127, 0, 2, 1), south).status, 400);
    assert!(script().contains(r#""rounds":3"#));

    let three = format!(r#"{two}, ap-south = "http://127.0.0.4:8080/o.gif""#);
    write(&three, "rounds = 5\n");
    hup(&s);
    s.wait_log("[rum] and [probes] reloaded");
    s.wait_log("reloaded: ");
    let after = ask("127.0.0.0");
    assert!(
        has(&after, "10.0.0.1"),
        "the figures of us-east and eu-west stay: {after:?}"
    );
    assert_eq!(post(Ipv4Addr::new(127, 0, 2, 2), south).status, 204);
    assert!(script().contains(r#""rounds":5"#), "{}", script());

    // A bad value: refused at its line; the running collector goes on.
    write(&three, "rounds = 5\nwindow = 0\n");
    hup(&s);
    let line = s.wait_log("reload rejected");
    assert!(
        line.contains("server.toml:13") && line.contains("rum.window"),
        "{line}"
    );
    assert_eq!(post(Ipv4Addr::new(127, 0, 3, 1), south).status, 204);
    assert!(script().contains(r#""rounds":5"#));
    assert!(has(&ask("127.0.0.0"), "10.0.0.1"));
}
