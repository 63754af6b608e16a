//! Small hardening fixes that have a behaviour to show from outside: a UDP read
//! loop that panics is restarted, not lost.

mod common;

use std::time::Duration;

use common::{decode, http, repo_path, QuerySpec, Server};

#[test]
fn a_udp_read_loop_that_panics_is_restarted_and_counted() {
    let d = common::dir("hardening", "panic");
    let cfg = d.0.join("server.toml");
    // One socket, so the query after the panic reaches the same read loop.
    std::fs::write(&cfg, "udp_sockets_per_address = 1\n").expect("config");
    let zones = repo_path("tests/zones/core");
    let s = Server::start_env(
        &[
            "--zones",
            zones.to_str().expect("path"),
            "--config",
            cfg.to_str().expect("path"),
            "--admin",
            "127.0.0.1:0",
        ],
        &[("SIGNPOST_TEST_PANIC", "1")],
    );
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let boom = QuerySpec::new("panic-now.example.test.", 1).to_bytes();
    sock.send_to(&boom, s.addr).expect("send");
    s.wait_log("restarted");
    // The same socket answers the next query.
    let q = QuerySpec::new("www.example.test.", 1).to_bytes();
    sock.send_to(&q, s.addr).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer after the panic");
    assert_eq!(decode(&buf[..n]).answer.len(), 1);
    let (_, metrics) = http(s.admin.expect("admin"), "GET", "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "signpost_udp_restarts_total 1"),
        "{metrics}"
    );
}
