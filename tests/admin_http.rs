//! The admin endpoint's HTTP transport against raw sockets: keep-alive, the head
//! and body bounds, the connection cap, the token rule, and `signpost ctl` against
//! a running server and against none; and the guard against web pages: what a
//! cross-origin page or a rebound name sends is refused and changes nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{http, http_raw, Server, ANSWER_WAIT};

fn start(extra: &[&str]) -> Server {
    common::start_with_admin(&common::repo_path("zones"), extra)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, ANSWER_WAIT).expect("connect admin");
    s.set_read_timeout(Some(ANSWER_WAIT)).expect("timeout");
    s
}

/// A reply read off a connection that stays open: status, lower-cased head, body
/// of exactly Content-Length bytes.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn read_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("reading the reply head");
        assert_eq!(n, 1, "connection closed inside a reply head: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).expect("reading the reply body");
    Reply {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// True when the server closes `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                )
            }
        }
    }
}

#[test]
fn two_requests_on_one_connection() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    let mut c = connect(admin);
    c.write_all(format!("GET /status HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes())
        .expect("write");
    let first = read_reply(&mut c);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("\"origin\": \"geo.example.com.\""),
        "{}",
        first.body
    );
    assert!(!first.head.contains("connection: close"), "{}", first.head);
    // A bad request on the same connection is answered and leaves it open.
    c.write_all(format!("GET /nope HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes())
        .expect("write");
    let second = read_reply(&mut c);
    assert_eq!(second.status, 404, "{}", second.body);
    c.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let third = read_reply(&mut c);
    assert_eq!(third.status, 200);
    assert!(
        third.body.contains("signpost_config_generation 1"),
        "{}",
        third.body
    );
    assert!(
        closed_within(&mut c, ANSWER_WAIT),
        "not closed after Connection: close"
    );
}

#[test]
fn idle_and_silent_connections_are_closed() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    // Nothing sent: closed once the 5 s for a head have passed, not before.
    let opened = Instant::now();
    let mut silent = connect(admin);
    assert!(closed_within(&mut silent, Duration::from_secs(15)));
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(10),
        "silent connection closed after {took:?}"
    );
    // Half a head, then silence: the same.
    let mut slow = connect(admin);
    slow.write_all(b"GET /status HTTP/1.1\r\nHo")
        .expect("write");
    assert!(closed_within(&mut slow, Duration::from_secs(15)));
    assert_eq!(http(admin, "GET", "/status").0, 200);
}

#[test]
fn head_over_8_kib_is_refused_and_the_server_goes_on() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    // Just under the bound is served.
    let pad = "a".repeat(7 * 1024);
    let ok = format!(
        "GET /status HTTP/1.1\r\nHost: {admin}\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http_raw(admin, ok.as_bytes()).0, 200);
    // 9 KiB of header: our 431, with a message.
    let pad = "a".repeat(9 * 1024);
    let big = format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nX-Pad: {pad}\r\n\r\n");
    let (code, body) = http_raw(admin, big.as_bytes());
    assert_eq!(code, 431, "{body}");
    assert!(body.contains("request head over 8 KiB"), "{body:?}");
    // Far over it: hyper stops reading at 16 KiB and answers a bare 431. The
    // bytes it left unread make the kernel reset the connection as it closes,
    // which may reach us before the 431 does: either is a refusal.
    let pad = "a".repeat(64 * 1024);
    let huge = format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nX-Pad: {pad}\r\n\r\n");
    let mut c = connect(admin);
    let _ = c.write_all(huge.as_bytes());
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 431 "),
        "{got:?}"
    );
    // More than 100 headers, however short: hyper's 431.
    let many: String = (0..120).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let req = format!("GET /status HTTP/1.1\r\nHost: {admin}\r\n{many}\r\n");
    assert_eq!(http_raw(admin, req.as_bytes()).0, 431);
    assert_eq!(http(admin, "GET", "/status").0, 200);
}

#[test]
fn body_over_4_kib_is_refused_and_the_server_goes_on() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    // Exactly 4 KiB is read and the request served.
    let body = "x".repeat(4096);
    let ok = format!(
        "GET /status HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{body}"
    );
    assert_eq!(http_raw(admin, ok.as_bytes()).0, 200);
    // A Content-Length over the bound: refused before the body is waited for.
    let over = format!("POST /v1/weight HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 4097\r\n\r\n");
    let (code, msg) = http_raw(admin, over.as_bytes());
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("request body over 4 KiB"), "{msg:?}");
    // Chunked, so the size shows only while reading: refused the same way.
    let chunk = "y".repeat(3000);
    let chunked = format!(
        "POST /v1/weight HTTP/1.1\r\nHost: {admin}\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n{chunk}\r\nbb8\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (code, msg) = http_raw(admin, chunked.as_bytes());
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("request body over 4 KiB"), "{msg:?}");
    // A body that stops short: 408 after 5 s, with a message.
    let mut c = connect(admin);
    c.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    c.write_all(
        format!("POST /v1/weight HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 100\r\n\r\nabc")
            .as_bytes(),
    )
    .expect("write");
    let short = read_reply(&mut c);
    assert_eq!(short.status, 408, "{}", short.body);
    assert!(short.body.contains("did not arrive"), "{}", short.body);
    assert_eq!(http(admin, "GET", "/status").0, 200);
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    // 64 open (the cap), each proven accepted by a reply, then kept idle.
    let mut open: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut c = connect(admin);
            c.write_all(format!("GET /nope HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes())
                .expect("write");
            assert_eq!(read_reply(&mut c).status, 404);
            c
        })
        .collect();
    let mut extra = connect(admin);
    let _ = extra.write_all(format!("GET /status HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes());
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)),
        "a 65th connection was kept"
    );
    open.truncate(0);
    common::wait_until("a connection after the others closed", ANSWER_WAIT, || {
        http(admin, "GET", "/status").0 == 200
    });
}

#[test]
fn token_is_required_on_every_request_and_ctl_sends_it() {
    let d = common::dir("admin-http", "token");
    let cfg = d.0.join("server.toml");
    let token = "a-long-random-admin-token";
    std::fs::write(&cfg, format!("[admin]\ntoken = \"{token}\"\n")).expect("write");
    let s = start(&["--config", cfg.to_str().expect("path")]);
    let admin = s.admin.expect("admin");
    assert_eq!(http(admin, "GET", "/status").0, 401);
    let mut c = connect(admin);
    let good =
        format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\n\r\n");
    c.write_all(good.as_bytes()).expect("write");
    assert_eq!(read_reply(&mut c).status, 200);
    // The next request on the same connection is checked again.
    c.write_all(
        format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer wrong\r\n\r\n")
            .as_bytes(),
    )
    .expect("write");
    let r = read_reply(&mut c);
    assert_eq!(r.status, 401);
    assert!(r.body.contains("bearer token"), "{}", r.body);

    let ctl = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["ctl", "--admin", &admin.to_string()])
            .args(args)
            .env_remove("SIGNPOST_ADMIN_TOKEN")
            .output()
            .expect("ctl")
    };
    let out = ctl(&["--token", token, "drain", "eu-west"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"override\": \"drain\""), "{stdout}");
    let out = ctl(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: the server answered HTTP 401"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("missing or wrong bearer token"),
        "the server's reason is printed"
    );
}

#[test]
fn ctl_without_a_server_says_so() {
    // A port nobody listens on: bind one, then free it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["ctl", "--admin", &addr.to_string(), "status"])
        .output()
        .expect("ctl");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the admin endpoint at {addr}"))
            && stderr.contains("refused"),
        "{stderr}"
    );
}

/// Sends one request (`head` without its blank line) on a fresh connection and
/// reads the reply.
fn send(admin: SocketAddr, head: &str) -> Reply {
    let mut c = connect(admin);
    c.write_all(format!("{head}\r\nContent-Length: 0\r\n\r\n").as_bytes())
        .expect("write");
    read_reply(&mut c)
}

/// The A records `signpost` gives for `db.geo.example.com.` (us-east first,
/// eu-west when us-east is drained).
fn db_answer(s: &Server) -> Vec<String> {
    common::ask_udp(s.addr, &common::QuerySpec::new("db.geo.example.com.", 1)).answer
}

/// `/status`'s overrides, as JSON text.
fn overrides(admin: SocketAddr) -> String {
    let (code, body) = http(admin, "GET", "/status");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    v["overrides"].to_string()
}

const DRAIN: &str = "POST /v1/override?target=region:us-east&action=drain HTTP/1.1";

#[test]
fn a_change_a_web_page_could_send_is_refused_and_changes_nothing() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    let before = db_answer(&s);
    assert_eq!(before, vec!["db.geo.example.com. 30 IN A 192.0.2.11"]);
    // What `fetch(url, {method: "POST", mode: "no-cors"})` from another page
    // sends: the right Host, a foreign Origin, no custom header.
    let attacks = [
        format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: http://127.0.0.2:8000\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors"),
        format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: http://127.0.0.2:8000"),
        format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: null"),
        // An older browser or a form sending no Origin: the missing header.
        format!("{DRAIN}\r\nHost: {admin}"),
        // The custom header does not excuse a foreign Origin.
        format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: http://evil.example\r\nX-Signpost-Request: 1"),
        // A preflight is refused, and allows nothing.
        format!("OPTIONS /v1/override HTTP/1.1\r\nHost: {admin}\r\nOrigin: http://127.0.0.2:8000\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: x-signpost-request"),
    ];
    for a in &attacks {
        let r = send(admin, a);
        assert_eq!(r.status, 403, "{a}\n{}", r.body);
        assert!(!r.head.contains("access-control-allow"), "{}", r.head);
    }
    let r = send(admin, &format!("{DRAIN}\r\nHost: {admin}"));
    assert!(
        r.body.contains("X-Signpost-Request") && r.body.contains("nothing was changed"),
        "{}",
        r.body
    );
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: http://127.0.0.2:8000"),
    );
    assert!(r.body.contains("Origin"), "{}", r.body);
    assert_eq!(overrides(admin), "{}");
    assert_eq!(db_answer(&s), before);

    // The endpoint's own page (its Origin) with the header: applied.
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: {admin}\r\nOrigin: http://{admin}\r\nX-Signpost-Request: 1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(overrides(admin), r#"{"region:us-east":"drain"}"#);
    wait_until_answer(&s, "192.0.2.21");

    // `signpost ctl` sends the header: without a token it can still change things.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["ctl", "--admin", &admin.to_string(), "undrain", "us-east"])
        .env_remove("SIGNPOST_ADMIN_TOKEN")
        .output()
        .expect("ctl");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_answer(&s, "192.0.2.11");
}

fn wait_until_answer(s: &Server, address: &str) {
    let want = vec![format!("db.geo.example.com. 30 IN A {address}")];
    common::wait_until(&format!("db to answer {address}"), ANSWER_WAIT, || {
        db_answer(s) == want
    });
}

#[test]
fn a_foreign_host_is_refused_on_every_route() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    let port = admin.port();
    // A name re-pointed at 127.0.0.1 (DNS rebinding) arrives with its own Host.
    let foreign = format!("rebind.attacker.example:{port}");
    for path in [
        "/",
        "/status",
        "/metrics",
        "/v1/transitions",
        "/explain?name=db.geo.example.com&client=192.0.2.1",
    ] {
        let r = send(admin, &format!("GET {path} HTTP/1.1\r\nHost: {foreign}"));
        assert_eq!(r.status, 403, "{path}: {}", r.body);
        assert!(r.body.contains("allowed_hosts"), "{}", r.body);
        assert!(
            !r.body.contains("geo.example.com"),
            "{path} leaked: {}",
            r.body
        );
    }
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: {foreign}\r\nX-Signpost-Request: 1"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The right port but another name, or the right name and another port.
    for host in [
        format!("127.0.0.1:{}", port.wrapping_add(1)),
        "127.0.0.1".to_string(),
    ] {
        assert_eq!(
            send(admin, &format!("GET /status HTTP/1.1\r\nHost: {host}")).status,
            403,
            "{host}"
        );
    }
    // An absolute request-target names a host too.
    let r = send(
        admin,
        &format!("GET http://{foreign}/status HTTP/1.1\r\nHost: {admin}"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // No Host at all: HTTP/1.1 requires one.
    assert_eq!(send(admin, "GET /status HTTP/1.1").status, 400);
    assert_eq!(overrides(admin), "{}");
    // The names of loopback with the endpoint's port are its own.
    for host in [
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        admin.to_string(),
    ] {
        let r = send(admin, &format!("GET /status HTTP/1.1\r\nHost: {host}"));
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    // A link from another site to the page is a navigation: allowed; the same
    // request as a script or image load is not.
    let cross = format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nSec-Fetch-Site: cross-site");
    assert_eq!(
        send(admin, &format!("{cross}\r\nSec-Fetch-Mode: navigate")).status,
        200
    );
    assert_eq!(
        send(admin, &format!("{cross}\r\nSec-Fetch-Mode: no-cors")).status,
        403
    );
}

#[test]
fn allowed_hosts_adds_names_the_endpoint_answers_to() {
    let d = common::dir("admin-http", "hosts");
    let cfg = d.0.join("server.toml");
    std::fs::write(
        &cfg,
        "[admin]\nallowed_hosts = [\"Admin.Example.NET:5380\"]\n",
    )
    .expect("write");
    let s = start(&["--config", cfg.to_str().expect("path")]);
    let admin = s.admin.expect("admin");
    let r = send(
        admin,
        "GET /status HTTP/1.1\r\nHost: admin.example.net:5380",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: admin.example.net:5380\r\nOrigin: https://admin.example.net:5380\r\nX-Signpost-Request: 1"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(admin, "GET /status HTTP/1.1\r\nHost: admin.example.net");
    assert_eq!(r.status, 403, "the value is matched as given, port and all");

    // A value that is not a Host header's is a config error naming the key.
    std::fs::write(
        &cfg,
        "[admin]\nallowed_hosts = [\"http://admin.example.net/\"]\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["check", "--config", cfg.to_str().expect("path")])
        .args([
            "--zones",
            common::repo_path("zones").to_str().expect("path"),
        ])
        .output()
        .expect("check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("server.toml:2") && stderr.contains("admin.allowed_hosts"),
        "{stderr}"
    );
}

#[test]
fn token_compare_takes_the_right_token_only() {
    let d = common::dir("admin-http", "compare");
    let cfg = d.0.join("server.toml");
    let token = "0123456789abcdef-right";
    std::fs::write(&cfg, format!("[admin]\ntoken = \"{token}\"\n")).expect("write");
    let s = start(&["--config", cfg.to_str().expect("path")]);
    let admin = s.admin.expect("admin");
    let get = |t: &str| {
        send(
            admin,
            &format!("GET /status HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {t}"),
        )
        .status
    };
    assert_eq!(get(token), 200);
    let same_length = "0123456789abcdef-wrong";
    assert_eq!(same_length.len(), token.len());
    assert_eq!(get(same_length), 401);
    assert_eq!(get("0123456789abcdef-righ"), 401, "a prefix");
    assert_eq!(get("0123456789abcdef-rightt"), 401, "longer");
    assert_eq!(get(""), 401);
    // With a token, the token is what a change needs (a browser preflights
    // Authorization, too); without it, the header alone is not enough.
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: {admin}\r\nAuthorization: Bearer {token}"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(
        admin,
        &format!("{DRAIN}\r\nHost: {admin}\r\nX-Signpost-Request: 1"),
    );
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn every_reply_forbids_framing_and_sniffing() {
    let s = start(&[]);
    let admin = s.admin.expect("admin");
    for head in [
        format!("GET / HTTP/1.1\r\nHost: {admin}"),
        format!("GET /status HTTP/1.1\r\nHost: {admin}"),
        format!("GET /nope HTTP/1.1\r\nHost: {admin}"),
        format!(
            "GET /status HTTP/1.1\r\nHost: evil.example:{}",
            admin.port()
        ),
        format!("{DRAIN}\r\nHost: {admin}"),
    ] {
        let r = send(admin, &head);
        for h in [
            "x-frame-options: deny",
            "frame-ancestors 'none'",
            "x-content-type-options: nosniff",
        ] {
            assert!(r.head.contains(h), "{head}: no {h} in\n{}", r.head);
        }
    }
}
