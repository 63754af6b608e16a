//! Traffic dials end to end: `signpost ctl dial` and the admin API set a dial on a
//! running server; answers for many client networks (told apart by ECS) shift by
//! the dial's share, raising it moves no network that had the region, a fenced
//! client stays inside its fence, explain names the dial, the metric shows it, and
//! the state file keeps it across a restart.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{ask_udp, http, EdnsSpec, QuerySpec, Server};

fn start(state: &Path) -> Server {
    let zones = common::repo_path("tests/zones/steer");
    let cfg = common::repo_path("tests/configs/steer-server.toml");
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
        "--state-file",
        state.to_str().expect("path"),
    ])
}

fn ecs_query(name: &str, qtype: u16, qclass: u16, addr: &str, prefix: u8) -> QuerySpec {
    let mut q = QuerySpec::new(name, qtype);
    q.qclass = qclass;
    q.edns = Some(EdnsSpec {
        payload: 4096,
        ecs: Some((addr.parse().expect("addr"), prefix)),
        ..EdnsSpec::default()
    });
    q
}

/// The 512 /24s of 198.18.0.0/16 .. 198.19.0.0/16's US part: 198.18.0.0/16 is
/// one US-VA network in the fixture database.
const NETS: u32 = 256;

fn net(n: u32) -> String {
    format!("198.18.{n}.0")
}

/// `primary` (failover eu-west > us-east) for each client /24: the answer's
/// address and its ECS scope.
fn answers(s: &Server) -> BTreeMap<u32, (String, u8)> {
    (0..NETS)
        .map(|n| {
            let r = ask_udp(s.addr, &ecs_query("primary.steer.test.", 1, 1, &net(n), 24));
            assert_eq!(r.rcode, "NOERROR", "{r:?}");
            let a = r
                .answer
                .iter()
                .filter_map(|l| l.split_whitespace().last())
                .collect::<Vec<_>>()
                .join(",");
            let scope = r.ecs.map(|(_, _, scope)| scope).unwrap_or(0);
            (n, (a, scope))
        })
        .collect()
}

fn eu_share(a: &BTreeMap<u32, (String, u8)>) -> f64 {
    let kept = a.values().filter(|(addr, _)| addr == "10.0.1.2").count();
    100.0 * kept as f64 / a.len() as f64
}

#[test]
fn a_dial_shifts_its_share_of_client_networks_and_keeps_fences() {
    let d = common::dir("dials", "shift");
    let state = d.0.join("state.toml");
    let s = start(&state);

    // No dial: every US network gets the failover's first region.
    let before = answers(&s);
    assert_eq!(eu_share(&before), 100.0, "{before:?}");

    // 30 % through ctl: about 30 % of the networks keep eu-west, the rest get
    // us-east, and every answer's scope covers only the hashed /24.
    let out = s.ctl(&["dial", "eu-west", "30"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["percent"], 30, "{out}");
    let at30 = answers(&s);
    let share = eu_share(&at30);
    assert!((20.0..=40.0).contains(&share), "30 % dial kept {share:.1}%");
    for (n, (addr, scope)) in &at30 {
        assert!(addr == "10.0.1.2" || addr == "10.0.1.1", "{n}: {addr}");
        assert_eq!(*scope, 24, "198.18.{n}.0/24: scope /{scope}");
    }

    // 60 % through the admin API: more networks keep it, none that had it moves.
    let (code, body) = http(
        s.admin.expect("admin"),
        "POST",
        "/v1/dial?target=region:eu-west&percent=60",
    );
    assert_eq!(code, 200, "{body}");
    let at60 = answers(&s);
    let share60 = eu_share(&at60);
    assert!(
        (50.0..=70.0).contains(&share60),
        "60 % dial kept {share60:.1}%"
    );
    for (n, (addr, _)) in &at30 {
        if addr == "10.0.1.2" {
            assert_eq!(
                at60[n].0, "10.0.1.2",
                "raising the dial moved 198.18.{n}.0/24"
            );
        }
    }

    // Out of range: refused, nothing changes.
    let (code, body) = http(
        s.admin.expect("admin"),
        "POST",
        "/v1/dial?target=region:eu-west&percent=101",
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("0 to 100"), "{body}");

    // A fenced client: eu-west is the only region inside its fence. At 0 % the
    // dial would leave it nothing, so it yields: the client stays inside.
    s.ctl(&["dial", "eu-west", "0"]);
    assert_eq!(eu_share(&answers(&s)), 0.0);
    let r = ask_udp(
        s.addr,
        &ecs_query("resident.steer.test.", 1, 1, "198.19.17.0", 24),
    );
    assert_eq!(r.rcode, "NOERROR");
    assert!(
        r.answer.iter().any(|l| l.ends_with("10.0.3.2")),
        "{:?}",
        r.answer
    );
    assert!(
        !r.answer.iter().any(|l| l.ends_with("10.0.3.1")),
        "{:?}",
        r.answer
    );

    // Explain (CHAOS TXT and the admin API) names the dial.
    s.ctl(&["dial", "eu-west", "30"]);
    let r = ask_udp(
        s.addr,
        &ecs_query("primary.steer.test.", 16, 3, &net(7), 24),
    );
    let text = r.answer.join("\n");
    assert!(
        text.contains("eu-west: dial 30%: client network 198.18.7.0/24"),
        "{text}"
    );
    let out = s.ctl(&["explain", "primary.steer.test.", "--client", "198.18.7.1"]);
    assert!(out.contains("eu-west: dial 30%"), "{out}");

    // The metric and /status.
    let (_, metrics) = http(s.admin.expect("admin"), "GET", "/metrics");
    assert!(
        metrics.contains("signpost_dial_percent{region=\"eu-west\"} 30"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signpost_dial_percent{region=\"us-east\"} 100"),
        "{metrics}"
    );
    let st: serde_json::Value = serde_json::from_str(&s.ctl(&["status"])).expect("json");
    assert_eq!(st["dials"]["region:eu-west"], 30, "{st}");

    // The state file keeps it across a restart: the same networks keep eu-west.
    let kept30 = answers(&s);
    drop(s);
    let s = start(&state);
    assert_eq!(answers(&s), kept30, "the dial did not survive the restart");

    // Cleared: back to every network.
    s.ctl(&["dial", "eu-west", "clear"]);
    assert_eq!(eu_share(&answers(&s)), 100.0);
}
