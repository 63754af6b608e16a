//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over the W3C WebDriver protocol, spoken here over a
//! plain TCP stream. The page is served by a running signpost whose health probes
//! go to HTTP servers this test starts; the test logs in with the token, sees the
//! regions' health, drains a region with the button and watches the DNS answer
//! change, then writes a screenshot to Cargo's temp dir for integration tests.
//! A second test opens a page of another origin (127.0.0.2) that tries to drain a
//! region through the endpoint, and a rebound `*.localhost` name.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{ask_udp, wait_until, QuerySpec, Server};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "dashboard-test-token-0123456789";
/// How long the browser may take to show something; generous for a loaded CI box.
const PAGE_WAIT: Duration = Duration::from_secs(30);

fn require(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install Debian's {package} package \
         (benches/install-peers.sh --ci does, as .ci/run runs it); this test needs a real browser"
    );
}

/// A free loopback port for chromedriver (it takes a number, not a socket).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One WebDriver command: JSON over HTTP/1.1; returns the response's `value`.
fn webdriver(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        addr.port(),
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|e| e.to_string())?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
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
    let v: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("{method} {path}: {status}, not JSON ({e})"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status == 200 {
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
    fn start(profile: &Path, log: &Path) -> Browser {
        require(CHROMIUM, "chromium");
        require(CHROMEDRIVER, "chromium-driver");
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let mut b = Browser {
            driver,
            addr,
            session: String::new(),
        };
        wait_until("chromedriver to be ready", PAGE_WAIT, || {
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
                        "--window-size=1280,1000",
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

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({ "url": url })))
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Runs a script in the page and returns its result.
    fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("no element id in {v}"))
    }

    /// Clicks like a user does (WebDriver's element click). The page re-renders
    /// every refresh, so an element found just before can be stale: find it again.
    fn click(&self, css: &str) {
        let mut last = String::new();
        let done = wait_until_ok(PAGE_WAIT, || {
            let r = self
                .find(css)
                .and_then(|id| self.cmd("POST", &format!("/element/{id}/click"), Some(&json!({}))));
            if let Err(e) = &r {
                last = e.clone();
            }
            r.is_ok()
        });
        assert!(done, "cannot click {css}: {last}");
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).unwrap_or_else(|e| panic!("{css}: {e}"));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        )
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Polls a script until it returns true; on time-out shows what `show` says.
    fn wait_for(&self, what: &str, script: &str, show: &str) {
        if !wait_until_ok(PAGE_WAIT, || self.eval(script) == Value::Bool(true)) {
            panic!(
                "timed out waiting for the page to show {what}; page says: {}",
                self.eval(show)
            );
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None).expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 string"))
            .expect("screenshot base64")
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

/// Polls `f` every 100 ms until it holds or `limit` passes; true if it held.
fn wait_until_ok(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An HTTP health backend that passes while `healthy`; stops when dropped.
struct Backend {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let healthy = Arc::new(AtomicBool::new(true));
        let h = healthy.clone();
        let thread =
            common::serve_health(listener, stop.clone(), move |_| h.load(Ordering::Relaxed));
        Backend {
            addr,
            healthy,
            stop,
            thread: Some(thread),
        }
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

fn zone(east: SocketAddr, west: SocketAddr) -> String {
    format!(
        r#"origin = "dash.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.dash.test."
contact = "h@dash.test"
negative_ttl = 60

[checks.web]
http = {{ port = 80, path = "/healthz", expect = 200 }}
interval = "300ms"
timeout = "250ms"
rise = 1
fall = 1

[regions]
east = {{}}
west = {{}}

[names.www]
strategy = "failover"
ttl = 30
endpoints.east = {{ a = ["192.0.2.10"], check = "web", probe = "{east}" }}
endpoints.west = {{ a = ["192.0.2.20"], check = "web", probe = "{west}" }}
"#
    )
}

fn addresses(s: &Server) -> Vec<String> {
    ask_udp(s.addr, &QuerySpec::new("www.dash.test.", 1))
        .answer
        .iter()
        .filter_map(|rr| rr.split_whitespace().last().map(str::to_string))
        .collect()
}

/// Sends a bounded trickle of queries (about 50 a second, at most 3000) so the
/// page's rates have something to show; stops with `stop`.
fn trickle(server: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
            return;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
        let pkt = QuerySpec::new("www.dash.test.", 1).to_bytes();
        let mut buf = [0u8; 512];
        for _ in 0..3000 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let _ = sock.send_to(&pkt, server);
            let _ = sock.recv_from(&mut buf);
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

/// The page's regions as `region:health,health` strings.
const REGIONS: &str = "return [...document.querySelectorAll('[data-region]')].map(r => \
    r.getAttribute('data-region') + ':' + \
    [...r.querySelectorAll('[data-health]')].map(b => b.textContent).join(','));";

#[test]
fn the_dashboard_drains_a_region_and_the_answer_changes() {
    let d = common::dir("dashboard", "drain");
    let east = Backend::start();
    let west = Backend::start();
    std::fs::write(d.0.join("zones/dash.toml"), zone(east.addr, west.addr)).expect("zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!("zones = \"zones\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"),
    )
    .expect("config");
    let server = Server::start(&["--config", config.to_str().expect("path")]);
    let admin = server
        .admin
        .expect("the ready line names the admin address");
    assert_eq!(addresses(&server), vec!["192.0.2.10"], "east answers first");
    // The page's files need no token; every data call does.
    for path in ["/", "/app.js", "/style.css"] {
        assert_eq!(common::http(admin, "GET", path).0, 200, "{path}");
    }
    for path in ["/status", "/v1/transitions", "/metrics"] {
        assert_eq!(common::http(admin, "GET", path).0, 401, "{path}");
    }
    let (code, body) = common::http_raw(
        admin,
        format!("GET /v1/transitions HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("transitions JSON");
    assert!(v["transitions"].is_array(), "{body}");

    let stop = Arc::new(AtomicBool::new(false));
    let queries = trickle(server.addr, stop.clone());
    let browser = Browser::start(&d.0.join("chrome-profile"), &d.0.join("chromedriver.log"));
    browser.go(&format!("http://{admin}/"));

    // Without the token the page loads but shows no data, and says why.
    browser.wait_for(
        "the login request",
        "return document.getElementById('message').textContent.includes('log in');",
        "return document.body.innerText;",
    );
    assert_eq!(
        browser.eval(REGIONS),
        json!([]),
        "no data before logging in"
    );

    // A wrong token: refused, still no data and no buttons.
    browser.type_into("#token", "not-the-token-at-all");
    browser.click("#login-button");
    browser.wait_for(
        "the refused token",
        "return document.getElementById('message').textContent.includes('refused (401)');",
        "return document.body.innerText;",
    );
    assert_eq!(browser.eval(REGIONS), json!([]));
    assert_eq!(
        browser.eval("return document.querySelectorAll('button[data-action]').length;"),
        json!(0)
    );

    browser.type_into("#token", TOKEN);
    browser.click("#login-button");
    // The map drawn first: its countries must not read as the regions' panels.
    browser.wait_for(
        "the map drawn",
        "return document.querySelectorAll('#world path[data-steered-to]').length > 100;",
        "return document.getElementById('map-note').textContent;",
    );
    browser.wait_for(
        "both regions up with a passing probe",
        "const r = [...document.querySelectorAll('[data-region]')].map(r => \
           r.getAttribute('data-region') + ':' + \
           [...r.querySelectorAll('[data-health]')].map(b => b.textContent).join(',')); \
         return JSON.stringify(r) === JSON.stringify(['east:up', 'west:up']) && \
           document.querySelectorAll('[data-region] .probe .ok').length === 2;",
        REGIONS,
    );
    assert!(
        browser
            .eval("return document.getElementById('zones').textContent;")
            .as_str()
            .is_some_and(|t| t.contains("dash.test.") && t.contains("www.dash.test.")),
        "the zones table lists the zone and its steered name"
    );

    browser.click("button[data-target='region:east'][data-action='drain']");
    let took = wait_until(
        "the DNS answer to leave east",
        Duration::from_secs(10),
        || addresses(&server) == vec!["192.0.2.20"],
    );
    eprintln!("answer changed {took:?} after the click");
    browser.wait_for(
        "east drained, the change among the transitions, and answer rates",
        "const t = document.getElementById('transitions').textContent; \
         const rates = document.querySelector('[data-rates=region]'); \
         return document.querySelector(\"[data-region=east] [data-health]\")?.textContent === 'drained' && \
           t.includes('region:east') && t.includes('none → drain') && t.includes('admin API') && \
           !!rates && rates.textContent.includes('west');",
        "return document.body.innerText;",
    );

    // The explain form shows the server's trace for the name.
    browser.type_into("#explain-name", "www.dash.test");
    browser.type_into("#explain-client", "198.51.100.7");
    browser.click("#explain button");
    browser.wait_for(
        "the explain trace",
        "const o = document.getElementById('explain-out').textContent; \
         return o.includes('-- A') && !/^[45][0-9][0-9]:/.test(o);",
        "return document.getElementById('explain-out').textContent;",
    );

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).expect("write screenshot");
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());

    // Undrain with the other button: east answers again.
    browser.click("button[data-target='region:east'][data-action='undrain']");
    wait_until(
        "the DNS answer to return to east",
        Duration::from_secs(10),
        || addresses(&server) == vec!["192.0.2.10"],
    );

    // A probe failure shows as a transition with the probe's detail.
    west.healthy.store(false, Ordering::Relaxed);
    browser.wait_for(
        "west down after its probe fails",
        "const t = document.getElementById('transitions').textContent; \
         return document.querySelector(\"[data-region=west] [data-health]\")?.textContent === 'down' && \
           t.includes('up → down') && t.includes('HTTP 503');",
        "return document.body.innerText;",
    );

    // The map was drawn for the logged-in page; logging out empties it.
    browser.wait_for(
        "the map coloured",
        "return document.querySelectorAll('#world path[data-steered-to]').length > 100;",
        "return document.getElementById('map-note').textContent;",
    );
    browser.click("#logout");
    browser.wait_for(
        "the map emptied after logging out",
        "return document.querySelectorAll('#world path[data-steered-to]').length === 0 && \
           document.getElementById('map-note').textContent.includes('log in') && \
           document.getElementById('ramp-start').hidden;",
        "return document.getElementById('map-note').textContent;",
    );

    stop.store(true, Ordering::Relaxed);
    let _ = queries.join();
}

/// A page of another origin: a tiny HTTP server on `127.0.0.2` that answers
/// every request with `html`; stops when dropped.
struct OtherSite {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtherSite {
    fn start(html: String) -> OtherSite {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = c.set_nonblocking(false);
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                // Read the head (bounded), then answer and close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = c.write_all(reply.as_bytes());
            }
        });
        OtherSite {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OtherSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The attack the admin endpoint's guard is for, in a real browser: a page of
/// another origin sends the simple cross-origin POST that needs no preflight
/// (`fetch(..., {mode: "no-cors"})`) to an endpoint on loopback with no token;
/// the browser delivers it, and the region stays in the answers. A name that
/// resolves to loopback (DNS rebinding; Chromium sends `*.localhost` there)
/// cannot read the endpoint either.
#[test]
fn a_page_of_another_origin_cannot_drain_a_region() {
    let d = common::dir("dashboard", "cross-origin");
    let server = common::start_with_admin(&common::repo_path("zones"), &[]);
    let admin = server
        .admin
        .expect("the ready line names the admin address");
    let db = || {
        ask_udp(server.addr, &QuerySpec::new("db.geo.example.com.", 1))
            .answer
            .join(" ")
    };
    let before = db();
    assert!(before.ends_with("192.0.2.11"), "{before}");
    let page = format!(
        "<!doctype html><title>elsewhere</title><script>\
         window.result = 'pending';\
         fetch('http://{admin}/v1/override?target=region:us-east&action=drain', \
               {{method: 'POST', mode: 'no-cors'}})\
           .then(() => {{ window.result = 'answered'; }}, (e) => {{ window.result = 'failed: ' + e; }});\
         </script>"
    );
    let site = OtherSite::start(page);
    let browser = Browser::start(&d.0.join("chrome-profile"), &d.0.join("chromedriver.log"));
    browser.go(&format!("http://{}/", site.addr));
    browser.wait_for(
        "the page's POST to be answered",
        "return window.result !== undefined && window.result !== 'pending';",
        "return String(window.result);",
    );
    // The browser sent it and got a reply (an opaque one): the request reached
    // the endpoint, which refused it.
    assert_eq!(browser.eval("return window.result;"), json!("answered"));
    assert_eq!(
        db(),
        before,
        "the region was drained by another site's page"
    );
    let (code, status) = common::http(admin, "GET", "/status");
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    assert_eq!(status["overrides"], json!({}), "{status}");
    let line = server.wait_log("admin request refused");
    assert!(
        line.contains("/v1/override") && line.contains("403"),
        "{line}"
    );

    // A rebound name: the browser connects to loopback, sends its own Host.
    browser.go(&format!("http://rebind.localhost:{}/status", admin.port()));
    browser.wait_for(
        "the endpoint to refuse the rebound name",
        "return document.body.innerText.includes('is not this admin endpoint');",
        "return document.body.innerText;",
    );
    // The endpoint's own page still loads and changes things (with the header).
    browser.go(&format!("http://{admin}/"));
    browser.click("button[data-target='region:us-east'][data-action='drain']");
    wait_until(
        "the dashboard's drain to take the region out",
        Duration::from_secs(10),
        || db().ends_with("192.0.2.21"),
    );
}

/// Four regions by latency, none checked: the map shows each country's
/// nearest, and a drain or a dial moves countries to their next nearest.
fn world_zone() -> &'static str {
    r#"origin = "world.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.world.test."
contact = "h@world.test"
negative_ttl = 60

[regions]
us = { location = [38.9, -77.4] }
eu = { location = [53.3, -6.3] }
ap = { location = [35.7, 139.7] }
sa = { location = [-23.5, -46.6] }

[names.www]
strategy = "latency"
ttl = 30
endpoints.us = { a = ["192.0.2.10"] }
endpoints.eu = { a = ["192.0.2.20"] }
endpoints.ap = { a = ["192.0.2.30"] }
endpoints.sa = { a = ["192.0.2.40"] }
"#
}

/// `CC:region:legend` for a country on the map: the region its path is drawn
/// for, and `legend` when its fill is that region's legend colour (else the fill).
const COUNTRY: &str = "const p = document.querySelector('#world path[data-country=' + arguments[0] + ']'); \
    if (!p || !p.getAttribute('data-steered-to')) return null; \
    const r = p.getAttribute('data-steered-to'); \
    const sw = document.querySelector('[data-legend=\"' + r + '\"] .swatch'); \
    const fill = getComputedStyle(p).fill; \
    return arguments[0] + ':' + r + ':' + (sw && fill === getComputedStyle(sw).backgroundColor ? 'legend' : fill);";

fn map_region(admin: SocketAddr, country: &str) -> String {
    let (code, body) = common::http(admin, "GET", "/v1/map?name=www.world.test.");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("map JSON");
    v["countries"][country]["region"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn ramp_phase(admin: SocketAddr, target: &str) -> String {
    let (code, body) = common::http(admin, "GET", "/status");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("status JSON");
    v["ramps"]["ramps"][target]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Browser {
    /// `script` with one argument, polled until it returns `want`.
    fn wait_for_value(&self, what: &str, script: &str, arg: &str, want: &str) {
        let run = || {
            self.cmd(
                "POST",
                "/execute/sync",
                Some(&json!({ "script": script, "args": [arg] })),
            )
            .unwrap_or(Value::Null)
        };
        if !wait_until_ok(PAGE_WAIT, || run() == json!(want)) {
            panic!(
                "timed out waiting for {what}: want {want}, page says {}",
                run()
            );
        }
    }

    /// Selects what a field holds and types `text` over it, as a user does; the
    /// page draws its controls again every refresh, so a stale field is found again.
    fn retype(&self, css: &str, text: &str) {
        let keys = format!("\u{E009}a\u{E000}{text}");
        let mut last = String::new();
        let done = wait_until_ok(PAGE_WAIT, || {
            let r = self.find(css).and_then(|id| {
                self.cmd(
                    "POST",
                    &format!("/element/{id}/value"),
                    Some(&json!({ "text": keys })),
                )
            });
            if let Err(e) = &r {
                last = e.clone();
            }
            r.is_ok()
        });
        assert!(done, "cannot type into {css}: {last}");
    }
}

/// The map and the ramp controls in Chromium: countries drawn in their
/// region's legend colour, a drain through the admin API and a dial set with
/// the page's field moving countries to their next region on the map, and a
/// running ramp paused and resumed with its buttons, as `/status` shows. With
/// `SIGNPOST_DOCS_SCREENSHOT=1` the screenshot replaces docs/dashboard-rollouts.png.
#[test]
fn the_dashboard_map_follows_drains_and_dials_and_its_buttons_pause_a_ramp() {
    let d = common::dir("dashboard", "map");
    std::fs::write(d.0.join("zones/world.toml"), world_zone()).expect("zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        "zones = \"zones\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let server = Server::start(&["--config", config.to_str().expect("path")]);
    let admin = server
        .admin
        .expect("the ready line names the admin address");

    // The endpoint: each country's nearest region; bad requests refused.
    assert_eq!(map_region(admin, "FR"), "eu");
    assert_eq!(map_region(admin, "JP"), "ap");
    assert_eq!(map_region(admin, "BR"), "sa");
    assert_eq!(map_region(admin, "US"), "us");
    // A dial of 50 % on eu splits France's networks between eu and us.
    assert_eq!(
        common::http(admin, "POST", "/v1/dial?target=region:eu&percent=50").0,
        200
    );
    let (_, body) = common::http(admin, "GET", "/v1/map?name=www.world.test.");
    let v: Value = serde_json::from_str(&body).expect("map JSON");
    let fr = &v["countries"]["FR"]["shares"];
    let (eu, us) = (
        fr["eu"].as_f64().unwrap_or(0.0),
        fr["us"].as_f64().unwrap_or(0.0),
    );
    assert!(eu > 0.1 && us > 0.1 && (eu + us - 1.0).abs() < 1e-9, "{fr}");
    assert_eq!(v["countries"]["JP"]["shares"], Value::Null, "{body}");
    assert_eq!(v["regions"], json!(["us", "eu", "ap", "sa"]));
    assert_eq!(
        common::http(admin, "POST", "/v1/dial?target=region:eu&percent=clear").0,
        200
    );
    assert_eq!(map_region(admin, "FR"), "eu");
    let took = Instant::now();
    for _ in 0..10 {
        assert_eq!(
            common::http(admin, "GET", "/v1/map?name=www.world.test.").0,
            200
        );
    }
    eprintln!("GET /v1/map: {:?} each (10 in a row)", took.elapsed() / 10);
    assert_eq!(common::http(admin, "GET", "/v1/map").0, 400);
    assert_eq!(
        common::http(admin, "GET", "/v1/map?name=ns1.world.test.").0,
        404
    );
    assert_eq!(
        common::http(admin, "POST", "/v1/map?name=www.world.test.").0,
        405
    );
    for path in ["/map.js", "/world.json"] {
        assert_eq!(common::http(admin, "GET", path).0, 200, "{path}");
    }

    let browser = Browser::start(&d.0.join("chrome-profile"), &d.0.join("chromedriver.log"));
    browser.go(&format!("http://{admin}/"));
    for (cc, region) in [("FR", "eu"), ("JP", "ap"), ("BR", "sa"), ("US", "us")] {
        browser.wait_for_value(
            &format!("{cc} in {region}'s colour"),
            COUNTRY,
            cc,
            &format!("{cc}:{region}:legend"),
        );
    }

    // Drained through the admin API: France goes to its next nearest, us, and
    // is drawn in us's colour.
    let (code, body) = common::http(admin, "POST", "/v1/override?target=region:eu&action=drain");
    assert_eq!(code, 200, "{body}");
    browser.wait_for_value("FR in us's colour", COUNTRY, "FR", "FR:us:legend");
    let (code, body) = common::http(
        admin,
        "POST",
        "/v1/override?target=region:eu&action=undrain",
    );
    assert_eq!(code, 200, "{body}");
    browser.wait_for_value("FR back in eu's colour", COUNTRY, "FR", "FR:eu:legend");

    // A percent being typed survives the page's redraw every refresh.
    browser.retype("input[data-dial-input='region:sa']", "37");
    let before = browser.eval("return document.getElementById('summary').textContent;");
    browser.wait_for(
        "a refresh while typing",
        &format!("return document.getElementById('summary').textContent !== {before};"),
        "return document.getElementById('summary').textContent;",
    );
    assert_eq!(
        browser.eval(
            "const i = document.querySelector(\"input[data-dial-input='region:sa']\"); \
             return [i.value, document.activeElement === i];"
        ),
        json!(["37", true]),
        "the typed percent and the focus are kept"
    );
    browser.retype("input[data-dial-input='region:sa']", "100");
    browser.click("button[data-dial-target='region:sa']");

    // A dial of 0 on ap, set with the page's field: Japan leaves ap.
    browser.retype("input[data-dial-input='region:ap']", "0");
    browser.click("button[data-dial-target='region:ap']");
    wait_until("the dial on region:ap", Duration::from_secs(10), || {
        map_region(admin, "JP") != "ap"
    });
    let next = map_region(admin, "JP");
    browser.wait_for_value("JP out of ap", COUNTRY, "JP", &format!("JP:{next}:legend"));

    // A ramp with a long hold, started with the page's form, runs; its
    // buttons pause and resume it.
    browser.click("#ramp-target option[value='region:ap']");
    browser.retype("#ramp-steps", "25,50,100");
    browser.retype("#ramp-hold", "10m");
    browser.click("#ramp-start button");
    wait_until(
        "the ramp running in /status",
        Duration::from_secs(10),
        || ramp_phase(admin, "region:ap") == "running",
    );
    let (_, body) = common::http(admin, "GET", "/status");
    let v: Value = serde_json::from_str(&body).expect("status JSON");
    let ramp = &v["ramps"]["ramps"]["region:ap"];
    assert_eq!(
        (&ramp["steps"], &ramp["hold_ms"], &ramp["on_fail"]),
        (&json!([25, 50, 100]), &json!(600_000), &json!("hold")),
        "{ramp}"
    );
    browser.wait_for(
        "the running ramp with its steps",
        "const r = document.querySelector(\"[data-ramp='region:ap']\"); \
         return !!r && r.getAttribute('data-phase') === 'running' && \
           r.textContent.includes('25% → 50% → 100%') && r.textContent.includes('to 25%');",
        "return document.getElementById('ramps').textContent;",
    );
    browser.click("button[data-ramp-target='region:ap'][data-ramp-action='pause']");
    wait_until(
        "the ramp paused in /status",
        Duration::from_secs(10),
        || ramp_phase(admin, "region:ap") == "paused",
    );
    browser.wait_for(
        "the paused ramp",
        "return document.querySelector(\"[data-ramp='region:ap']\")?.getAttribute('data-phase') === 'paused';",
        "return document.getElementById('ramps').textContent;",
    );
    browser.click("button[data-ramp-target='region:ap'][data-ramp-action='resume']");
    wait_until(
        "the ramp running again in /status",
        Duration::from_secs(10),
        || ramp_phase(admin, "region:ap") == "running",
    );
    browser.wait_for(
        "the running ramp, and what the page saw of it",
        "const r = document.querySelector(\"[data-ramp='region:ap']\"); \
         return r?.getAttribute('data-phase') === 'running' && \
           r.querySelector('.history').textContent.includes('paused at 0%');",
        "return document.getElementById('ramps').textContent;",
    );

    // Tall enough for the regions, the ramps and the map in one picture.
    let _ = browser.cmd(
        "POST",
        "/window/rect",
        Some(&json!({ "width": 1280, "height": 1500 })),
    );
    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is a PNG"
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-rollouts.png");
    std::fs::write(&shot, &png).expect("write screenshot");
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
    if std::env::var_os("SIGNPOST_DOCS_SCREENSHOT").is_some() {
        let docs = common::repo_path("docs/dashboard-rollouts.png");
        std::fs::write(&docs, &png).expect("write docs screenshot");
    }
}

/// The measured-latency panel: figures posted to the collector's feed show in
/// `GET /v1/latency/matrix` (JSON asserted) and in the page's matrix.
#[test]
fn the_latency_panel_shows_a_posted_figure() {
    use std::os::unix::fs::PermissionsExt;
    let d = common::dir("dashboard", "latency");
    let rum = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let feed_token = "dashboard-feed-token-0123456789";
    let token_file = d.0.join("feed.token");
    std::fs::write(&token_file, feed_token).expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(
        d.0.join("zones/lat.test.zone"),
        "$ORIGIN lat.test.\n$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\n",
    )
    .expect("zone");
    let config = d.0.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "zones = \"zones\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [rum]\nlisten = \"{rum}\"\nfeed_token_file = \"feed.token\"\nrefresh = \"200ms\"\n\
             regions = {{ us-east = \"http://127.0.0.2/o.gif\", eu-west = \"http://127.0.0.3/o.gif\" }}\n"
        ),
    )
    .expect("config");
    let server = Server::start(&["--config", config.to_str().expect("path")]);
    let admin = server.admin.expect("admin address");
    assert_eq!(common::http(admin, "GET", "/latency.js").0, 200);
    assert_eq!(common::http(admin, "GET", "/v1/latency/matrix").0, 401);
    let body = r#"{"v":1,"samples":[
        {"country":"JP","region":"us-east","rtt_ms":42,"count":10},
        {"network":"127.0.0.0/24","region":"us-east","rtt_ms":50,"count":7},
        {"network":"127.0.0.0/24","region":"eu-west","rtt_ms":20,"count":7}]}"#;
    let (code, text) = common::http_raw(
        rum,
        format!(
            "POST /v1/feed HTTP/1.1\r\nHost: {rum}\r\nAuthorization: Bearer {feed_token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 204, "{text}");
    let matrix = || {
        let (code, body) = common::http_raw(
            admin,
            format!("GET /v1/latency/matrix HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).expect("matrix JSON")
    };
    wait_until("the figures in the matrix", Duration::from_secs(10), || {
        matrix()["networks"] == json!(2)
    });
    let m = matrix();
    assert_eq!(m["regions"], json!(["eu-west", "us-east"]));
    assert_eq!(m["wins"], json!({"eu-west": 1, "us-east": 1}));
    let jp = m["areas"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["area"] == "JP"))
        .unwrap_or_else(|| panic!("no JP area: {m}"));
    assert_eq!(
        jp["cells"][0],
        json!({"region": "eu-west", "estimated": true})
    );
    let us = &jp["cells"][1];
    assert_eq!(
        (&us["ms"], &us["samples"], &us["source"]),
        (&json!(42.0), &json!(10), &json!("feed")),
        "{m}"
    );
    assert!(us["age_s"].as_u64().is_some_and(|a| a < 60), "{m}");
    let net = m["areas"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["area"] == "127.0.0.0/24"))
        .unwrap_or_else(|| panic!("no network area: {m}"));
    assert_eq!(net["cells"][0]["ms"], json!(20.0));

    let browser = Browser::start(&d.0.join("chrome-profile"), &d.0.join("chromedriver.log"));
    browser.go(&format!("http://{admin}/"));
    browser.type_into("#token", TOKEN);
    browser.click("#login-button");
    browser.wait_for(
        "the measured matrix",
        "const t = document.getElementById('latency-matrix').innerText; \
         return t.includes('JP') && t.includes('42 ms') && t.includes('estimated') \
           && t.includes('networks won');",
        "return document.getElementById('latency-matrix').innerText;",
    );
}
