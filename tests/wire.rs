//! Malformed and unusual packets over real sockets: each gets the response the RFCs
//! ask for, or none, and the server keeps answering good queries afterwards.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{
    ask_udp, decode, name_wire, opt_record, tcp_exchange, tcp_read, tcp_send, udp_exchange,
    udp_exchange_wait, EdnsSpec, QuerySpec, Server,
};

fn start() -> Server {
    let zones = common::repo_path("tests/zones/core");
    let cfg = common::repo_path("tests/configs/limits.toml");
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ])
}

/// A header with the given flags word and counts, then `rest`.
fn packet(flags: u16, counts: [u16; 4], rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0xab, 0xcd];
    p.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(rest);
    p
}

fn question(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = name_wire(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// The server still answers a good query.
fn assert_serving(addr: SocketAddr) {
    let r = ask_udp(addr, &QuerySpec::new("www.example.test.", 1));
    assert_eq!(r.rcode, "NOERROR");
    assert_eq!(r.answer.len(), 1);
}

fn rcode_of(resp: &[u8]) -> u8 {
    resp[3] & 0x0f
}

#[test]
fn runts_and_responses_get_no_answer() {
    let s = start();
    // Too short for a header.
    assert!(udp_exchange_wait(s.addr, &[1, 2, 3, 4, 5], Duration::from_millis(500)).is_none());
    // QR=1: a response sent to us is never answered (no reflection loops).
    let p = packet(0x8000, [1, 0, 0, 0], &question("www.example.test.", 1));
    assert!(udp_exchange_wait(s.addr, &p, Duration::from_millis(500)).is_none());
    assert_serving(s.addr);
}

#[test]
fn header_and_question_errors() {
    let s = start();
    let q = question("www.example.test.", 1);
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("QDCOUNT 0", packet(0, [0, 0, 0, 0], &[]), 1),
        (
            "QDCOUNT 2",
            packet(0, [2, 0, 0, 0], &[q.clone(), q.clone()].concat()),
            1,
        ),
        ("NOTIFY", packet(4 << 11, [1, 0, 0, 0], &q), 4),
        ("UPDATE", packet(5 << 11, [1, 0, 0, 0], &q), 4),
        ("IQUERY", packet(1 << 11, [1, 0, 0, 0], &q), 4),
        (
            "compression pointer in the question",
            packet(0, [1, 0, 0, 0], &[0xc0, 0x0c, 0, 1, 0, 1]),
            1,
        ),
        (
            "0x40 label type",
            packet(0, [1, 0, 0, 0], &[0x41, b'a', 0, 0, 1, 0, 1]),
            1,
        ),
        (
            "label runs past the end",
            packet(0, [1, 0, 0, 0], &[10, b'a', b'b']),
            1,
        ),
        (
            "question without type and class",
            packet(0, [1, 0, 0, 0], &name_wire("www.example.test.")),
            1,
        ),
        (
            "ANCOUNT says a record that is not there",
            packet(0, [1, 1, 0, 0], &q),
            1,
        ),
        (
            "QTYPE OPT",
            packet(0, [1, 0, 0, 0], &question("www.example.test.", 41)),
            1,
        ),
    ];
    for (what, pkt, want) in cases {
        let r = udp_exchange(s.addr, &pkt).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(rcode_of(&r), want, "{what}");
        assert_eq!(&r[0..2], &[0xab, 0xcd], "{what}: ID echoed");
        assert_ne!(r[2] & 0x80, 0, "{what}: QR set");
        assert_eq!(r[2] & 0x04, 0, "{what}: AA clear on errors");
        // The response parses with an independent decoder.
        let _ = decode(&r);
    }
    assert_serving(s.addr);
}

#[test]
fn compression_loops_in_other_sections_cannot_hang_the_parser() {
    let s = start();
    // An additional record whose owner is a pointer to itself, then one pointing
    // forward to the first: the parser skips pointers without following them.
    let mut body = question("www.example.test.", 1);
    let at = 12 + body.len();
    body.extend_from_slice(&(0xc000u16 | at as u16).to_be_bytes());
    body.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&(0xc000u16 | at as u16).to_be_bytes());
    body.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    let pkt = packet(0, [1, 0, 0, 2], &body);
    let r = udp_exchange(s.addr, &pkt).expect("an answer");
    assert_eq!(rcode_of(&r), 0);
    assert_serving(s.addr);
}

#[test]
fn opt_errors_are_formerr() {
    let s = start();
    let q = question("www.example.test.", 1);
    let good_opt = opt_record(&EdnsSpec {
        payload: 1232,
        ..EdnsSpec::default()
    });
    let mut bad_owner = good_opt.clone();
    bad_owner.splice(0..1, name_wire("a."));
    let mut overrun = good_opt.clone();
    // RDLENGTH 0 but an option header claiming 8 bytes follows outside the record.
    let n = overrun.len();
    overrun[n - 2..].copy_from_slice(&4u16.to_be_bytes());
    overrun.extend_from_slice(&[0, 10, 0, 8]);
    let ecs = |data: &[u8]| {
        let mut o = good_opt.clone();
        let n = o.len();
        let len = (4 + data.len()) as u16;
        o[n - 2..].copy_from_slice(&len.to_be_bytes());
        o.extend_from_slice(&8u16.to_be_bytes());
        o.extend_from_slice(&(data.len() as u16).to_be_bytes());
        o.extend_from_slice(data);
        o
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "two OPT records",
            [q.clone(), good_opt.clone(), good_opt.clone()].concat(),
        ),
        ("OPT owner not root", [q.clone(), bad_owner].concat()),
        ("option overruns the record", [q.clone(), overrun].concat()),
        ("ECS family 3", [q.clone(), ecs(&[0, 3, 8, 0, 1])].concat()),
        (
            "ECS prefix 33 for IPv4",
            [q.clone(), ecs(&[0, 1, 33, 0, 1, 2, 3, 4, 5])].concat(),
        ),
        (
            "ECS address longer than prefix",
            [q.clone(), ecs(&[0, 1, 8, 0, 1, 2])].concat(),
        ),
        (
            "ECS host bits set",
            [q.clone(), ecs(&[0, 1, 7, 0, 3])].concat(),
        ),
        (
            "ECS scope set in a query",
            [q.clone(), ecs(&[0, 1, 8, 8, 1])].concat(),
        ),
        (
            "ECS shorter than its header",
            [q.clone(), ecs(&[0, 1])].concat(),
        ),
    ];
    for (what, body) in cases {
        let arcount = if what == "two OPT records" { 2 } else { 1 };
        let pkt = packet(0, [1, 0, 0, arcount], &body);
        let r = udp_exchange(s.addr, &pkt).unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(rcode_of(&r), 1, "{what}");
    }
    assert_serving(s.addr);
}

#[test]
fn garbage_never_stops_the_server() {
    let mut s = start();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    // seeded, so a failure can be replayed
    let mut rng = fastrand::Rng::with_seed(0x5eed_cafe_f00d_d00d);
    let base = QuerySpec::new("www.example.test.", 1)
        .with_edns()
        .to_bytes();
    for i in 0..3000 {
        let pkt: Vec<u8> = if i % 2 == 0 {
            // Random bytes of random length.
            let len = (rng.u64(..) % 600) as usize;
            (0..len).map(|_| rng.u64(..) as u8).collect()
        } else {
            // A good query with a few bytes flipped or cut: closer to the parser's edges.
            let mut p = base.clone();
            for _ in 0..(1 + rng.u64(..) % 4) {
                let at = (rng.u64(..) as usize) % p.len();
                p[at] = rng.u64(..) as u8;
            }
            let cut = (rng.u64(..) as usize) % (p.len() + 1);
            p.truncate(cut.max(1));
            p
        };
        let _ = sock.send_to(&pkt, s.addr);
    }
    assert!(s.alive(), "server exited on garbage");
    assert_serving(s.addr);
    // And over TCP, the same garbage framed.
    for _ in 0..50 {
        let len = (rng.u64(..) % 300) as usize;
        let pkt: Vec<u8> = (0..len).map(|_| rng.u64(..) as u8).collect();
        if let Ok(mut c) = TcpStream::connect(s.addr) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = tcp_send(&mut c, &pkt);
            let _ = tcp_read(&mut c);
        }
    }
    assert!(s.alive());
    assert_serving(s.addr);
}

#[test]
fn tcp_pipelined_queries_answered_in_order() {
    let s = start();
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let names = [
        "www.example.test.",
        "mail.example.test.",
        "nope.example.test.",
    ];
    for (i, n) in names.iter().enumerate() {
        let mut q = QuerySpec::new(n, 1);
        q.id = 100 + i as u16;
        tcp_send(&mut c, &q.to_bytes()).expect("send");
    }
    for (i, n) in names.iter().enumerate() {
        let r = decode(&tcp_read(&mut c).expect("answer"));
        assert_eq!(r.id, 100 + i as u16);
        assert_eq!(r.qname.as_deref(), Some(*n));
    }
}

/// Reads until EOF or error; returns how long that took, or None if the peer kept the
/// connection open past `bound`.
fn time_to_close(c: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    c.set_read_timeout(Some(bound)).expect("timeout");
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => Some(start.elapsed()),
        Ok(_) => None,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(_) => Some(start.elapsed()),
    }
}

#[test]
fn tcp_silent_and_lying_clients_are_cut_off() {
    let s = start();
    // Silent: connects and sends nothing. Idle timeout is 1 s in limits.toml.
    let mut silent = TcpStream::connect(s.addr).expect("connect");
    // Lying: announces 100 bytes, sends 10.
    let mut liar = TcpStream::connect(s.addr).expect("connect");
    use std::io::Write;
    liar.write_all(&[0, 100]).expect("write");
    liar.write_all(&[0u8; 10]).expect("write");
    assert!(
        time_to_close(&mut silent, Duration::from_secs(10)).is_some(),
        "silent client kept"
    );
    assert!(
        time_to_close(&mut liar, Duration::from_secs(10)).is_some(),
        "lying client kept"
    );
    // Both slots are free again.
    let r = tcp_exchange(s.addr, &QuerySpec::new("www.example.test.", 1).to_bytes());
    assert!(r.is_some());
}

#[test]
fn tcp_connection_cap_closes_the_longest_idle_for_a_newcomer() {
    let s = start();
    // limits.toml allows 2 connections; hold both with a query each so they are open,
    // the first one idle the longest.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        tcp_send(&mut c, &QuerySpec::new("www.example.test.", 1).to_bytes()).expect("send");
        assert!(tcp_read(&mut c).is_some(), "held connection answered");
        held.push(c);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The third is served: the longest-idle one is closed for it.
    let mut third = TcpStream::connect(s.addr).expect("connect");
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    tcp_send(
        &mut third,
        &QuerySpec::new("www.example.test.", 1).to_bytes(),
    )
    .expect("send");
    assert!(
        tcp_read(&mut third).is_some(),
        "newcomer at the cap not served"
    );
    // Closed at once, not at its idle timeout (1 s after its query).
    assert!(
        time_to_close(&mut held[0], Duration::from_millis(700)).is_some(),
        "the longest-idle connection was kept"
    );
    // The other held one still answers.
    tcp_send(
        &mut held[1],
        &QuerySpec::new("www.example.test.", 1).to_bytes(),
    )
    .expect("send");
    assert!(
        tcp_read(&mut held[1]).is_some(),
        "a newer connection was closed"
    );
    // UDP is unaffected.
    assert_serving(s.addr);
}

#[test]
fn response_rate_limiting_drops_and_slips() {
    let zones = common::repo_path("tests/zones/core");
    let cfg = common::repo_path("tests/configs/rrl.toml");
    let s = Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let q = QuerySpec::new("www.example.test.", 1).to_bytes();
    let sent = 40;
    for _ in 0..sent {
        sock.send_to(&q, s.addr).expect("send");
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
    // 5 a second with bursts of 3: the burst itself and what comes due while the
    // 40 queries are read.
    assert!((3..=8).contains(&full), "full answers: {full}");
    assert!(truncated >= 5, "slipped: {truncated}");
    assert!(full + truncated < sent, "nothing was dropped");
    // Another answer from the same client is not limited by the first one's bucket.
    let r = ask_udp(s.addr, &QuerySpec::new("mail.example.test.", 1));
    assert_eq!(r.answer.len(), 1);
    // TCP is never rate limited.
    for _ in 0..10 {
        assert!(tcp_exchange(s.addr, &q).is_some());
    }
}

#[test]
fn tcp_per_client_cap_and_lifetime() {
    let zones = common::repo_path("tests/zones/core");
    let cfg = common::repo_path("tests/configs/per-client.toml");
    let s = Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
    ]);
    let q = QuerySpec::new("www.example.test.", 1).to_bytes();
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        tcp_send(&mut c, &q).expect("send");
        assert!(tcp_read(&mut c).is_some());
        held.push(c);
    }
    // A third from the same address is closed unanswered.
    let mut third = TcpStream::connect(s.addr).expect("connect");
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = tcp_send(&mut third, &q);
    assert!(tcp_read(&mut third).is_none());
    // A busy connection still ends at its lifetime (1 s): keep querying until the
    // server closes it, bounded.
    let mut busy = held.pop().expect("held");
    let start = Instant::now();
    loop {
        let ok = tcp_send(&mut busy, &q).is_some() && tcp_read(&mut busy).is_some();
        if !ok {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "lifetime not enforced"
        );
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
}

/// Names inside SOA, MX and NS RDATA point at names already in the message (RFC
/// 1035 §4.1.4): the sizes are those of the compressed form, and hickory-proto reads
/// the same records back.
#[test]
fn names_in_rdata_are_compressed() {
    let s = start();
    // (query, the records expected, the size compressed, the size written whole)
    let cases = [
        (
            QuerySpec::new("nope.example.test.", 1),
            "example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2026112601 7200 3600 1209600 300",
            // header 12, question 18 + 4, SOA: owner pointer 2, fixed 10,
            // "ns1" + pointer 6, "hostmaster" + pointer 13, 20
            86,
            110,
        ),
        (
            QuerySpec::new("example.test.", 15),
            "example.test. 3600 IN MX 10 mail.example.test.",
            // MX: 2 + 10 + preference 2 + "mail" + pointer 7; the additional A's
            // owner is a pointer to the MX target: 2 + 10 + 4
            67,
            84,
        ),
        (
            QuerySpec::new("example.test.", 2),
            "example.test. 3600 IN NS ns1.example.test.",
            123,
            139,
        ),
    ];
    for (q, first, compressed, whole) in cases {
        let d = ask_udp(s.addr, &q);
        let all: Vec<&String> = d.answer.iter().chain(d.authority.iter()).collect();
        assert!(
            all.iter()
                .any(|r| r.split_whitespace().eq(first.split_whitespace())),
            "{}: {first} not among {all:?}",
            q.name
        );
        assert_eq!(
            d.size, compressed,
            "{}: {} bytes written whole",
            q.name, whole
        );
    }
    assert_serving(s.addr);
}

/// `count` queries to the benchmark zone (`benches/data`), IDs from `id_base`:
/// AAAA and A of existing names, names that do not exist, wildcard answers.
fn bench_queries(count: u16, id_base: u16) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let (name, qtype) = match i % 5 {
                0 => (format!("host{:04}.bench.example.", 1 + i), 28),
                1 => (format!("no-such-{i}.bench.example."), 1),
                2 => (format!("anything-{i}.wild.bench.example."), 1),
                _ => (format!("host{:04}.bench.example.", 1 + i), 1),
            };
            let mut q = packet(0x0100, [1, 0, 0, 0], &question(&name, qtype));
            q[..2].copy_from_slice(&(id_base + i).to_be_bytes());
            q
        })
        .collect()
}

/// The server answers from the moment it is ready, before its fast table is
/// built (the general path), and the answers do not change once the table is
/// in place: the same queries (the MX and mixed-case ones with ID 0xabcd), asked
/// before and after the `fast path ready` line, get the same bytes.
#[test]
fn answers_before_the_fast_table_are_the_answers_after_it() {
    let zones = common::repo_path("benches/data");
    let s = Server::start(&["--zones", zones.to_str().expect("path")]);
    let mut queries = bench_queries(300, 0x2000);
    // And the apex's MX, and names in mixed letter case.
    queries.push(packet(
        0x0100,
        [1, 0, 0, 0],
        &question("bench.example.", 15),
    ));
    for i in 0..20u16 {
        let name = format!("HoSt{:04}.BENCH.example.", 1 + i);
        queries.push(packet(0x0100, [1, 0, 0, 0], &question(&name, 1)));
    }
    let before: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| udp_exchange(s.addr, q).expect("an answer"))
        .collect();
    let ready = s.wait_log("fast path ready");
    let names: usize = ready
        .split("fast_names=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("fast_names in the line");
    assert!(names > 1000, "{ready}");
    for (q, b) in queries.iter().zip(&before) {
        let after = udp_exchange(s.addr, q).expect("an answer");
        assert_eq!(&after, b, "query {:02x?}", &q[..2]);
    }
}

/// A burst of queries reaches the UDP loop in batches (recvmmsg), and on a table
/// too big to stay in cache the loop asks for each batch's table lines before
/// answering: every answer must be the one the same query gets asked alone.
#[test]
fn answers_in_a_burst_are_the_answers_asked_alone() {
    let zones = common::repo_path("benches/data");
    let s = Server::start(&["--zones", zones.to_str().expect("path")]);
    // The batches' warm-up is the fast table's: wait for it.
    s.wait_log("fast path ready");
    let queries = bench_queries(400, 0x1000);
    let alone: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| udp_exchange(s.addr, q).expect("an answer"))
        .collect();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut burst: Vec<Option<Vec<u8>>> = vec![None; queries.len()];
    let mut buf = [0u8; 4096];
    // 64 at a time: more answers than that could overflow this socket's
    // receive buffer (each takes about 1 KiB of it), and 64 still make batches.
    for (c, chunk) in queries.chunks(64).enumerate() {
        for q in chunk {
            sock.send_to(q, s.addr).expect("send");
        }
        let first = c * 64;
        while burst[first..first + chunk.len()]
            .iter()
            .any(Option::is_none)
        {
            let Ok((n, _)) = sock.recv_from(&mut buf) else {
                break; // 5 s without an answer: the assertion below says which
            };
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if let Some(slot) = id
                .checked_sub(0x1000)
                .and_then(|i| burst.get_mut(i as usize))
            {
                *slot = Some(buf[..n].to_vec());
            }
        }
    }
    for (i, (b, a)) in burst.iter().zip(&alone).enumerate() {
        assert_eq!(b.as_ref(), Some(a), "query {i}");
    }
    assert!(alone.iter().any(|a| rcode_of(a) == 3), "some NXDOMAIN");
    assert!(
        alone.iter().all(|a| a[2] & 0x84 == 0x84),
        "all authoritative answers"
    );
}
