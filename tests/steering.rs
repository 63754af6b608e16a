//! Steering features that golden scenarios cannot express: the explain trace over
//! CHAOS TXT and on the command line, and whose ECS and explain requests we honour.

mod common;

use std::process::Command;

use common::{ask_udp, EdnsSpec, QuerySpec, Server};

fn server(config: &str) -> Server {
    let zones = common::repo_path("tests/zones/steer");
    let cfg = common::repo_path(config);
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ])
}

fn ecs_query(name: &str, qtype: u16, qclass: u16, subnet: &str) -> QuerySpec {
    let (a, p) = subnet.split_once('/').expect("subnet");
    let mut q = QuerySpec::new(name, qtype);
    q.qclass = qclass;
    q.edns = Some(EdnsSpec {
        payload: 4096,
        ecs: Some((a.parse().expect("addr"), p.parse().expect("prefix"))),
        ..EdnsSpec::default()
    });
    q
}

#[test]
fn chaos_txt_explains_a_decision_to_loopback() {
    let s = server("tests/configs/steer-server.toml");
    let r = ask_udp(
        s.addr,
        &ecs_query("resident.steer.test.", 16, 3, "198.19.17.0/24"),
    );
    assert_eq!(r.rcode, "NOERROR");
    let text = r.answer.join("\n");
    for needle in [
        "country DE",
        "fence EU: client country DE is in EU",
        "us-east: rejected: outside the fence",
        "answer: eu-west",
        "ECS scope /23",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // Not authoritative for a CHAOS zone: no AA, as NSD and Knot answer.
    assert!(
        !r.flags.contains(&"aa"),
        "AA on a CHAOS answer: {:?}",
        r.flags
    );
    // The scope map's lines are the name's: told once for both address types, so
    // the trace fits the UDP answer.
    assert_eq!(text.matches("merged: 198.19.16.0/23").count(), 1, "{text}");
    assert!(text.contains("-- AAAA"), "{text}");
    // Not a steered name: nothing to explain.
    let r = ask_udp(
        s.addr,
        &ecs_query("static.steer.test.", 16, 3, "198.19.17.0/24"),
    );
    assert_eq!(r.rcode, "REFUSED");
}

#[test]
fn explain_and_ecs_only_from_listed_networks() {
    let s = server("tests/configs/steer-strict.toml");
    let r = ask_udp(
        s.addr,
        &ecs_query("resident.steer.test.", 16, 3, "198.19.17.0/24"),
    );
    assert_eq!(r.rcode, "REFUSED", "explain went to a client off the list");
    // ECS from loopback is not believed: the decision uses the source (unknown,
    // so the default rule: us-east) and no ECS comes back.
    let r = ask_udp(
        s.addr,
        &ecs_query("resident.steer.test.", 1, 1, "198.19.17.0/24"),
    );
    assert_eq!(r.answer, vec!["resident.steer.test. 30 IN A 10.0.3.1"]);
    assert_eq!(r.ecs, None);
}

#[test]
fn explain_command_prints_the_trace_offline() {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args([
            "explain",
            "near.steer.test.",
            "AAAA",
            "--client",
            "3fff:3::/48",
        ])
        .arg("--zones")
        .arg(common::repo_path("tests/zones/steer"))
        .arg("--config")
        .arg(common::repo_path("tests/configs/steer-server.toml"))
        .output()
        .expect("run explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "country JP",
        "ap-northeast: rejected: no data of the query type",
        "ms estimated",
        "answer: eu-west (latency)",
        "ECS scope /32",
        "answer: near.steer.test. 30 AAAA 2001:db8:a::2",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    // A bad client is a clear error, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["explain", "near.steer.test.", "--client", "not-an-ip"])
        .arg("--zones")
        .arg(common::repo_path("tests/zones/steer"))
        .output()
        .expect("run explain");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an IP address"));
}

#[test]
fn query_log_names_client_ecs_decision_and_region() {
    let zones = common::repo_path("tests/zones/steer");
    let cfg = common::repo_path("tests/configs/querylog.toml");
    // The query log has its own config; the geo database comes from the default
    // path, so use the steer zone's failover name, which needs no location.
    let s = Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    let r = ask_udp(
        s.addr,
        &ecs_query("primary.steer.test.", 1, 1, "198.51.100.0/24"),
    );
    assert_eq!(r.answer, vec!["primary.steer.test. 45 IN A 10.0.1.2"]);
    let line = s.wait_log("name=\"primary.steer.test.\"");
    for needle in [
        "client=127.0.0.1",
        "ecs=\"198.51.100.0/24\"",
        "qtype=\"A\"",
        "decision=\"failover\"",
        "region=\"eu-west\"",
        "rcode=0",
    ] {
        assert!(line.contains(needle), "missing {needle:?} in {line}");
    }
}
