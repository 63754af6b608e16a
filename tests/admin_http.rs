//! The admin endpoint's HTTP transport against raw sockets: keep-alive, the head
//! and body bounds, the connection cap, the token rule, and `signpost ctl` against
//! a running server and against none.

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
    c.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
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
    c.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let second = read_reply(&mut c);
    assert_eq!(second.status, 404, "{}", second.body);
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
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
    let ok =
        format!("GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\nConnection: close\r\n\r\n");
    assert_eq!(http_raw(admin, ok.as_bytes()).0, 200);
    // 9 KiB of header: our 431, with a message.
    let pad = "a".repeat(9 * 1024);
    let big = format!("GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n");
    let (code, body) = http_raw(admin, big.as_bytes());
    assert_eq!(code, 431, "{body}");
    assert!(body.contains("request head over 8 KiB"), "{body:?}");
    // Far over it: hyper stops reading at 16 KiB and answers a bare 431. The
    // bytes it left unread make the kernel reset the connection as it closes,
    // which may reach us before the 431 does: either is a refusal.
    let pad = "a".repeat(64 * 1024);
    let huge = format!("GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\n\r\n");
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
    let req = format!("GET /status HTTP/1.1\r\nHost: x\r\n{many}\r\n");
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
        "GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{body}"
    );
    assert_eq!(http_raw(admin, ok.as_bytes()).0, 200);
    // A Content-Length over the bound: refused before the body is waited for.
    let over = "POST /v1/weight HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n";
    let (code, msg) = http_raw(admin, over.as_bytes());
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("request body over 4 KiB"), "{msg:?}");
    // Chunked, so the size shows only while reading: refused the same way.
    let chunk = "y".repeat(3000);
    let chunked = format!(
        "POST /v1/weight HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n{chunk}\r\nbb8\r\n{chunk}\r\n0\r\n\r\n"
    );
    let (code, msg) = http_raw(admin, chunked.as_bytes());
    assert_eq!(code, 413, "{msg}");
    assert!(msg.contains("request body over 4 KiB"), "{msg:?}");
    // A body that stops short: 408 after 5 s, with a message.
    let mut c = connect(admin);
    c.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    c.write_all(b"POST /v1/weight HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
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
            c.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
                .expect("write");
            assert_eq!(read_reply(&mut c).status, 404);
            c
        })
        .collect();
    let mut extra = connect(admin);
    let _ = extra.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
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
    let good = format!("GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    c.write_all(good.as_bytes()).expect("write");
    assert_eq!(read_reply(&mut c).status, 200);
    // The next request on the same connection is checked again.
    c.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\r\n")
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
