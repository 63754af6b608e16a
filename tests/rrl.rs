//! Response rate limiting classifies responses as NSD and Knot do: random names
//! under a wildcard, under a delegation, or denied on a signed zone all count as
//! one response per client network, and a limited response costs no signature.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::{decode, http, repo_path, EdnsSpec, QuerySpec, Server};

/// Sends every query from one socket at once, then reads what comes back: (full
/// answers, truncated ones).
fn burst(addr: SocketAddr, queries: &[Vec<u8>]) -> (usize, usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for q in queries {
        sock.send_to(q, addr).expect("send");
    }
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let r = decode(&buf[..n]);
        if r.flags.contains(&"tc") {
            assert!(r.answer.is_empty(), "a slipped response carries no records");
            truncated += 1;
        } else {
            full += 1;
        }
    }
    (full, truncated)
}

/// `count` queries for fresh names `<prefix><i>.<suffix>`.
fn random_names(suffix: &str, qtype: u16, count: usize, dnssec_ok: bool) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut q = QuerySpec::new(&format!("r{i}x{}.{suffix}", std::process::id()), qtype);
            if dnssec_ok {
                q.edns = Some(EdnsSpec {
                    payload: 1232,
                    dnssec_ok: true,
                    ..EdnsSpec::default()
                });
            }
            q.to_bytes()
        })
        .collect()
}

fn core_server() -> Server {
    let zones = repo_path("tests/zones/core");
    let cfg = repo_path("tests/configs/rrl.toml");
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ])
}

/// At rate 5 a burst may straddle one second boundary: at most 10 full answers.
fn assert_limited(what: &str, (full, truncated): (usize, usize), sent: usize) {
    assert!(full <= 10, "{what}: {full} full answers of {sent}");
    assert!(truncated >= 5, "{what}: {truncated} slipped");
    assert!(full + truncated < sent, "{what}: nothing was dropped");
}

#[test]
fn random_names_under_a_wildcard_are_one_response() {
    let s = core_server();
    let qs = random_names("wild.example.test.", 1, 40, false);
    // Each one is a real answer (the wildcard's A), as the first shows.
    let first = decode(&common::udp_exchange(s.addr, &qs[0]).expect("answer"));
    assert_eq!(first.answer.len(), 1, "{first:?}");
    assert_limited("wildcard", burst(s.addr, &qs[1..]), qs.len() - 1);
    // A type the wildcard lacks (wildcard NODATA) counts the same way.
    let qs = random_names("wild.example.test.", 15, 40, false);
    assert_limited("wildcard nodata", burst(s.addr, &qs), qs.len());
}

#[test]
fn random_names_under_a_delegation_are_one_referral() {
    let s = core_server();
    let qs = random_names("sub.example.test.", 1, 40, false);
    let first = decode(&common::udp_exchange(s.addr, &qs[0]).expect("answer"));
    assert!(
        first.answer.is_empty() && !first.authority.is_empty(),
        "{first:?}"
    );
    assert_limited("referral", burst(s.addr, &qs[1..]), qs.len() - 1);
}

#[test]
fn exact_names_keep_their_own_counts() {
    let s = core_server();
    // Positive answers for different names are different responses: three of
    // each of eight names (a burst at rate 5) all go out in full.
    let names = [
        "www",
        "mail",
        "ns1",
        "sip",
        "short",
        "host.wild",
        "alias",
        "chain1",
    ];
    let qs: Vec<Vec<u8>> = names
        .iter()
        .flat_map(|n| {
            let q = QuerySpec::new(&format!("{n}.example.test."), 1).to_bytes();
            std::iter::repeat_n(q, 3)
        })
        .collect();
    let (full, _) = burst(s.addr, &qs);
    assert_eq!(full, qs.len());
}

/// The core zones signed with the committed test keys, RRL at 5 a second with
/// loopback limited, and an admin endpoint for the signing counter.
fn signed_server(d: &common::Dir) -> Server {
    let cfg = d.0.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dnssec]\nzones = [\"example.test.\"]\nkey_dir = \"{}\"\nalgorithm = \"ed25519\"\n[rrl]\nrate = 5\nslip = 2\nexempt = []\n",
            repo_path("tests/zones/core-keys").display()
        ),
    )
    .expect("write config");
    let zones = repo_path("tests/zones/core");
    common::start_with_admin(&zones, &["--config", cfg.to_str().expect("path")])
}

fn online_signatures(s: &Server) -> u64 {
    let (status, body) = http(s.admin.expect("admin"), "GET", "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("signpost_dnssec_online_signatures_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("signature counter")
}

#[test]
fn denied_names_on_a_signed_zone_are_limited_before_signing() {
    let d = common::dir("rrl", "signed");
    let s = signed_server(&d);
    let before = online_signatures(&s);
    // DO=1 random names: compact denial makes each NXDOMAIN a NOERROR with a
    // fresh NSEC signed for it.
    let qs = random_names("nothere.example.test.", 1, 40, true);
    let first = decode(&common::udp_exchange(s.addr, &qs[0]).expect("answer"));
    assert_eq!(first.rcode, "NOERROR", "{first:?}");
    let got = burst(s.addr, &qs[1..]);
    assert_limited("signed denial", got, qs.len() - 1);
    // One signature per full answer at most: the dropped and slipped ones cost none.
    let signed = online_signatures(&s) - before;
    assert!(
        signed as usize <= got.0 + 1,
        "{signed} signatures for {} full answers",
        got.0 + 1
    );
}

/// A signed server whose signing budget is small (50 a second) and whose RRL
/// leaves loopback alone, so the budget is all that stands before a flood.
fn budget_server(d: &common::Dir) -> Server {
    let cfg = d.0.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "[dnssec]\nzones = [\"example.test.\"]\nkey_dir = \"{}\"\nalgorithm = \"ed25519\"\nsign_rate = 50\n",
            repo_path("tests/zones/core-keys").display()
        ),
    )
    .expect("write config");
    let zones = repo_path("tests/zones/core");
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ])
}

/// Asks for a fresh name with DO=1 from `from`; the rcode.
fn ask_from(from: &str, addr: SocketAddr, name: &str) -> String {
    let sock = UdpSocket::bind(format!("{from}:0")).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut q = QuerySpec::new(name, 1);
    q.edns = Some(EdnsSpec {
        payload: 1232,
        dnssec_ok: true,
        ..EdnsSpec::default()
    });
    sock.send_to(&q.to_bytes(), addr).expect("send");
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).expect("an answer");
    decode(&buf[..n]).rcode
}

#[test]
fn a_network_asking_before_a_flood_keeps_its_signatures() {
    let d = common::dir("rrl", "budget");
    let s = budget_server(&d);
    let addr = s.addr;
    // A resolver's network that has been asking for a while (the history needs
    // two seconds of it): one fresh name every 100 ms.
    let start = std::time::Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        assert_eq!(
            ask_from("127.0.5.1", addr, &format!("old{i}.example.test.")),
            "NOERROR"
        );
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // Then a flood of fresh DO=1 names from twenty networks it has never seen,
    // far over the budget, while the resolver goes on asking.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socks: Vec<UdpSocket> = (0..20)
                .map(|k| {
                    let s = UdpSocket::bind(format!("127.0.{}.1:0", 20 + k)).expect("bind");
                    s.set_nonblocking(true).expect("nonblocking");
                    s
                })
                .collect();
            let (mut sent, mut servfail) = (0u32, 0u32);
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 40_000 {
                for (k, sock) in socks.iter().enumerate() {
                    let mut q = QuerySpec::new(&format!("f{sent}n{k}.example.test."), 1);
                    q.edns = Some(EdnsSpec {
                        payload: 1232,
                        dnssec_ok: true,
                        ..EdnsSpec::default()
                    });
                    let _ = sock.send_to(&q.to_bytes(), addr);
                    sent += 1;
                    while let Ok((n, _)) = sock.recv_from(&mut buf) {
                        if decode(&buf[..n]).rcode == "SERVFAIL" {
                            servfail += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (sent, servfail)
        })
    };
    let mut refused = 0;
    // Twenty a second: well within the budget, were it the resolver's alone.
    for k in 0..30 {
        if ask_from("127.0.5.1", addr, &format!("during{k}.example.test.")) != "NOERROR" {
            refused += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, servfail) = flood.join().expect("flood");
    assert!(
        servfail > 0,
        "the flood ({sent} queries) never met the budget"
    );
    assert_eq!(
        refused, 0,
        "the resolver was refused {refused} of 30 during a flood of {sent} ({servfail} SERVFAIL)"
    );
}

/// A query for `name` with an OPT record carrying a COOKIE option of `cookie`.
fn with_cookie(name: &str, cookie: &[u8]) -> Vec<u8> {
    let mut q = QuerySpec::new(name, 1).with_edns().to_bytes();
    // The OPT record is last and has no options: its RDLENGTH ends the packet.
    let n = q.len();
    q[n - 2..].copy_from_slice(&((4 + cookie.len()) as u16).to_be_bytes());
    q.extend_from_slice(&10u16.to_be_bytes());
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// The COOKIE option of a response, read with hickory-proto.
fn cookie_of(resp: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let m = hickory_proto::op::Message::from_vec(resp).expect("parses");
    let e = m.edns.as_ref()?;
    match e.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(10, data) => Some(data.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cookies_are_answered_and_a_valid_one_is_not_rate_limited() {
    let s = core_server();
    let client = *b"\x01\x02\x03\x04\x05\x06\x07\x08";
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let exchange = |q: &[u8]| {
        sock.send_to(q, s.addr).expect("send");
        let mut buf = [0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).expect("answer");
        buf[..n].to_vec()
    };
    // A client cookie alone: ours comes back beside it (RFC 7873 §5.2.3), on the
    // fast path as on the general one (a wildcard's answer, a CNAME's).
    let mut server = Vec::new();
    for name in [
        "www.example.test.",
        "x.wild.example.test.",
        "alias.example.test.",
    ] {
        let r = exchange(&with_cookie(name, &client));
        let c = cookie_of(&r).expect("a COOKIE option");
        assert_eq!(c.len(), 24, "{c:02x?}");
        assert_eq!(&c[..8], &client);
        assert_eq!(c[8], 1, "RFC 9018 version 1");
        server = c[8..].to_vec();
    }
    // A malformed cookie is FORMERR.
    let r = decode(&exchange(&with_cookie("www.example.test.", &client[..7])));
    assert_eq!(r.rcode, "FORMERR");
    // With the server cookie we gave, 40 queries in a burst all get full answers
    // though the rate is 5: the address is proven, nothing to reflect.
    let mut full = client.to_vec();
    full.extend_from_slice(&server);
    let q = with_cookie("www.example.test.", &full);
    for _ in 0..40 {
        sock.send_to(&q, s.addr).expect("send");
    }
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        let r = decode(&buf[..n]);
        assert!(!r.flags.contains(&"tc"), "{r:?}");
        answered += 1;
    }
    assert_eq!(answered, 40);
    // A forged server cookie counts for nothing: limited like any other.
    let mut forged = full.clone();
    forged[20] ^= 0xff;
    let qs = vec![with_cookie("mail.example.test.", &forged); 40];
    assert_limited("forged cookie", burst(s.addr, &qs), 40);
}

#[test]
fn dig_sees_a_good_cookie() {
    let s = core_server();
    let out = match std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &s.addr.port().to_string(),
            "+cookie",
            "+tries=1",
            "+time=2",
            "www.example.test.",
        ])
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!("dig is needed (Debian package bind9-dnsutils): {e}"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("COOKIE:") && l.contains("(good)")),
        "{text}"
    );
}
