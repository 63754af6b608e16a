//! Descriptors and connection limits against the real server: under a low open-file
//! limit, a flood of idle TCP connections neither spins the accept loop nor starves
//! the health probes, and a new client is still answered (the longest-idle
//! connection makes room); clients are counted by /24; a silent DoT connection is
//! closed at the handshake deadline, not the idle timeout; a flood of slow DoH
//! bodies is refused past the server-wide budget instead of growing memory.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{ask_udp, tcp_read, tcp_send, QuerySpec};

/// A `signpost serve` started under `ulimit -n LIMIT` (soft and hard); killed when
/// dropped.
struct Limited {
    child: Child,
    addr: SocketAddr,
    /// Log lines up to the ready line.
    early: Vec<String>,
    log: mpsc::Receiver<String>,
}

impl Limited {
    fn start(nofile: Option<u32>, args: &[&str]) -> Limited {
        let bin = env!("CARGO_BIN_EXE_signpost");
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("bash");
                c.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
        cmd.env("RUST_LOG", "info");
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn signpost");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + common::WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("signpost did not become ready:\n{}", seen.join("\n"));
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let addr = addr.parse().expect("ready line address");
                return Limited {
                    child,
                    addr,
                    early: seen,
                    log: rx,
                };
            }
            seen.push(line);
        }
    }

    /// The first log line containing `needle`, among those logged so far or within
    /// `common::WAIT`.
    fn wait_log(&self, needle: &str) -> String {
        if let Some(l) = self.early.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + common::WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    /// User plus system CPU time of the server, in clock ticks (/proc/PID/stat).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc/PID/stat");
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after ')'.
        let tick = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        tick(11) + tick(12)
    }

    /// Resident anonymous memory (RssAnon): what buffers and tables take. Not
    /// VmRSS, which also counts the binary's code: the server lets go of the
    /// code its start ran, and the code a new kind of work runs (TLS, HTTP/2)
    /// comes back from the page cache (16 MB of a debug build's), which no
    /// budget has a part in; /proc/PID/status, in KiB.
    fn anon_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("RssAnon")
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 on Linux).
fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// A TCP connection to `to` from `from` (any 127.0.0.0/8 address is this host's).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())?;
    s.connect_timeout(&to.into(), common::ANSWER_WAIT)?;
    Ok(s.into())
}

/// One query over a fresh connection from `from`: answered or not within `wait`.
fn answered_from(from: Ipv4Addr, to: SocketAddr, wait: Duration) -> bool {
    let Ok(mut c) = connect_from(from, to) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(wait));
    tcp_send(&mut c, &QuerySpec::new("fo.f.test.", 1).to_bytes()).is_some()
        && tcp_read(&mut c).is_some()
}

/// A zone whose failover name answers 192.0.2.10 while the HTTP backend `a` passes
/// its check, else 192.0.2.20 (from `b`).
fn zone(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        r#"origin = "f.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.f.test."
contact = "h@f.test"
negative_ttl = 60

[checks.web]
http = {{ port = 80, path = "/healthz", expect = 200 }}
interval = "200ms"
timeout = "150ms"
jitter = "10ms"
rise = 1
fall = 2

[regions]
a = {{}}
b = {{}}

[names.fo]
strategy = "failover"
ttl = 30
ttl_when_degraded = 5
when_all_down = "answer-all"
endpoints.a = {{ a = ["192.0.2.10"], check = "web", probe = "{a}" }}
endpoints.b = {{ a = ["192.0.2.20"], check = "web", probe = "{b}" }}
"#
    )
}

/// A healthy HTTP backend on loopback, answering 200 until the test ends.
fn backend() -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = l.local_addr().expect("addr");
    l.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    common::serve_health(l, stop.clone(), |_| true);
    (addr, stop)
}

fn write_config(dir: &Path, extra: &str) -> String {
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        format!("zones = \"zones\"\nudp_sockets_per_address = 1\n{extra}"),
    )
    .expect("write config");
    cfg.to_str().expect("path").to_string()
}

const ANSWER_A: &str = "fo.f.test. 30 IN A 192.0.2.10";

#[test]
fn idle_flood_under_a_low_file_limit_leaves_tcp_answering_and_health_up() {
    let d = common::dir("limits", "flood");
    let (a, stop_a) = backend();
    let (b, stop_b) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, b)).expect("write zone");
    // Idle connections are not closed by time while the test looks.
    let cfg = write_config(&d.0, "[tcp]\nidle_timeout = \"30s\"\n");
    let s = Limited::start(Some(256), &["--config", &cfg]);
    common::wait_until("a's backend up", common::WAIT, || {
        ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1)).answer == vec![ANSWER_A]
    });

    // 300 idle connections (more than 256 descriptors), 15 from each of 20 /24s.
    let mut idle = Vec::new();
    for net in 1..=20u8 {
        for host in 1..=15u8 {
            match connect_from(Ipv4Addr::new(127, 0, net, host), s.addr) {
                Ok(c) => idle.push(c),
                Err(e) => panic!("connect from 127.0.{net}.{host}: {e}"),
            }
        }
    }
    // A new client is answered: the longest-idle connection made room for it.
    let took = common::wait_until("a new TCP client answered", Duration::from_secs(10), || {
        answered_from(Ipv4Addr::new(127, 0, 99, 1), s.addr, Duration::from_secs(1))
    });
    assert!(
        took < Duration::from_secs(5),
        "answered only after {took:?}"
    );

    // While the connections sit idle, the server sits idle too (no accept loop
    // spinning on EMFILE): under 20% of a core over 2 s.
    let (t0, c0) = (Instant::now(), s.cpu_ticks());
    std::thread::sleep(Duration::from_secs(2));
    let used = (s.cpu_ticks() - c0) as f64 / clk_tck() as f64;
    let share = used / t0.elapsed().as_secs_f64();
    assert!(share < 0.2, "server used {:.0}% of a core", share * 100.0);

    // The probes had descriptors all along: a's verdict held (fall = 2 at 200 ms).
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1)).answer,
        vec![ANSWER_A],
        "the healthy backend's name moved"
    );
    let caps = s.wait_log("connection caps");
    assert!(caps.contains("open-file limit of 256"), "{caps}");
    drop(idle);
    stop_a.store(true, std::sync::atomic::Ordering::Relaxed);
    stop_b.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[test]
fn clients_are_counted_by_their_24_not_their_address() {
    let d = common::dir("limits", "prefix");
    let (a, _sa) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, a)).expect("write zone");
    let cfg = write_config(&d.0, "[tcp]\nmax_per_client = 4\n");
    let s = Limited::start(None, &["--config", &cfg]);
    // Six addresses of 127.0.1.0/24, each holding one answered connection.
    let mut held = Vec::new();
    let mut served = 0;
    for host in 1..=6u8 {
        let mut c = connect_from(Ipv4Addr::new(127, 0, 1, host), s.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        if tcp_send(&mut c, &QuerySpec::new("fo.f.test.", 1).to_bytes()).is_some()
            && tcp_read(&mut c).is_some()
        {
            served += 1;
        }
        held.push(c);
    }
    assert_eq!(served, 4, "one /24 held more than max_per_client = 4");
    // Another /24 still connects.
    assert!(answered_from(
        Ipv4Addr::new(127, 0, 2, 1),
        s.addr,
        Duration::from_secs(2)
    ));
}

/// A server with DoT and DoH on free ports and a fresh self-signed certificate for
/// localhost: (server, DoT, DoH, certificate).
fn start_encrypted(
    d: &common::Dir,
    extra: &str,
) -> (
    Limited,
    SocketAddr,
    SocketAddr,
    rustls::pki_types::CertificateDer<'static>,
) {
    let (a, _) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, a)).expect("write zone");
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    let (cert, key, der) = (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().clone(),
    );
    std::fs::write(d.0.join("cert.pem"), cert).expect("write cert");
    std::fs::write(d.0.join("key.pem"), key).expect("write key");
    let cfg = write_config(
        &d.0,
        &format!(
            "[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\
             [dot]\nlisten = [\"127.0.0.1:0\"]\n[doh]\nlisten = [\"127.0.0.1:0\"]\n{extra}"
        ),
    );
    let s = Limited::start(None, &["--config", &cfg]);
    let line = s.wait_log("encrypted transports");
    let addr = |label: &str| -> SocketAddr {
        let rest = line.split(label).nth(1).expect("label");
        let word = rest.split_whitespace().next().unwrap_or_default();
        let word = word.split('/').next().unwrap_or_default();
        word.trim_end_matches(';').parse().expect("address")
    };
    let (dot, doh) = (addr("dot on "), addr("doh on "));
    (s, dot, doh, der)
}

/// How long until the server closes `c` (EOF or reset), bounded by `bound`.
fn time_to_close(c: &mut TcpStream, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    c.set_read_timeout(Some(bound)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            // TLS records from the server: keep reading until it closes.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

#[test]
fn a_silent_dot_connection_is_closed_at_the_handshake_deadline() {
    let d = common::dir("limits", "handshake");
    // The default deadline (3 s) against a 10 s idle timeout.
    let (_s, dot, _, _) = start_encrypted(&d, "");
    let mut silent = TcpStream::connect(dot).expect("connect");
    let took = time_to_close(&mut silent, Duration::from_secs(8))
        .expect("a silent DoT connection kept past 8 s");
    assert!(
        took < Duration::from_secs(6),
        "silent DoT connection closed only after {took:?}"
    );
}

/// A request body that sends `first` bytes and then nothing more, ever.
struct Stalled(Option<hyper::body::Bytes>);

impl hyper::body::Body for Stalled {
    type Data = hyper::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[test]
fn slow_doh_bodies_past_the_budget_are_refused_and_memory_stays_bounded() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::ServerName;

    let d = common::dir("limits", "doh");
    // The default budget of 8 MiB.
    let (s, _, doh, cert) = start_encrypted(&d, "");
    let before = s.anon_kib();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tls = Arc::new(tls);
    // 3 connections x 90 streams, each announcing 60,000 bytes, sending 59,000 and
    // stalling: 16 MB of bodies against an 8 MiB budget.
    const CONNS: usize = 3;
    const STREAMS: usize = 90;
    let (refused, peak) = rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut keep = Vec::new();
        for _ in 0..CONNS {
            let tcp = tokio::net::TcpStream::connect(doh).await.expect("connect");
            let name = ServerName::try_from("localhost").expect("name");
            let session = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(session))
                    .await
                    .expect("HTTP/2 handshake");
            keep.push(tokio::spawn(async move {
                let _ = conn.await;
            }));
            for _ in 0..STREAMS {
                let mut sender = sender.clone();
                let tx = tx.clone();
                keep.push(tokio::spawn(async move {
                    let body = Stalled(Some(hyper::body::Bytes::from(vec![0u8; 59_000])));
                    let req = http::Request::post("https://localhost/dns-query")
                        .header("content-type", "application/dns-message")
                        .header("content-length", "60000")
                        .body(body)
                        .expect("request");
                    if let Ok(resp) = sender.send_request(req).await {
                        let _ = tx.send(resp.status().as_u16());
                    }
                }));
            }
        }
        // Refusals come at once; the admitted streams wait for bodies that never
        // end (408 only after the 10 s idle timeout).
        let mut refused = 0;
        let mut peak = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        let mut last_change = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(Some(503)) => {
                    refused += 1;
                    last_change = tokio::time::Instant::now();
                }
                Ok(Some(other)) => panic!("a stalled body got HTTP {other}"),
                Ok(None) => break,
                Err(_) => {}
            }
            peak = peak.max(s.anon_kib());
            // Settled: the refusals are in, and the admitted bodies have arrived.
            if refused > 0 && last_change.elapsed() > Duration::from_millis(700) {
                break;
            }
        }
        for k in keep {
            k.abort();
        }
        (refused, peak)
    });
    // 8 MiB hold 139 bodies of 60,000 bytes and their heads: the rest are refused.
    assert!(
        refused >= CONNS * STREAMS - 145,
        "only {refused} of {} streams refused",
        CONNS * STREAMS
    );
    let grew = peak.saturating_sub(before);
    eprintln!("anonymous memory: {before} KiB before, {peak} KiB at the peak");
    assert!(
        grew < 16 << 10,
        "anonymous memory grew by {grew} KiB under slow bodies"
    );
}

#[test]
fn check_refuses_caps_that_cannot_fit_under_the_file_limit() {
    let d = common::dir("limits", "check");
    let (a, _sa) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, a)).expect("write zone");
    let cfg = write_config(&d.0, "[tcp]\nmax_connections = 1000\n");
    let check = |nofile: u32| {
        Command::new("bash")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_signpost"))
            .args(["check", "--config", &cfg])
            .output()
            .expect("run signpost check")
    };
    let out = check(512);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check passed: {err}");
    assert!(err.contains("server.toml:4"), "{err}");
    assert!(err.contains("tcp.max_connections = 1000"), "{err}");
    assert!(err.contains("open-file limit of 512"), "{err}");
    assert!(err.contains("LimitNOFILE"), "{err}");
    // Under a limit with room, the same file passes and says how the caps fit.
    let out = check(4096);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "ok: connection caps tcp.max_connections = 1000 under the open-file limit of 4096"
        ),
        "{text}"
    );
}

#[test]
fn a_probe_that_cannot_be_made_here_keeps_the_verdict() {
    let d = common::dir("limits", "local");
    // a's backend refuses connections, which a probe made would report as down.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = dead.local_addr().expect("addr");
    drop(dead);
    let (b, _sb) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, b)).expect("write zone");
    // Probes leave from an address this host does not have: EADDRNOTAVAIL, ours.
    let cfg = write_config(&d.0, "probe_source = \"192.0.2.77\"\n");
    let s = Limited::start(None, &["--config", &cfg]);
    // Eight probes of a and b not made (fall = 2 would have taken a down).
    let line = s.wait_log("local_failures=8");
    assert!(line.contains("verdict kept"), "{line}");
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1)).answer,
        vec![ANSWER_A],
        "a probe not made moved the name"
    );
}

#[test]
fn descriptors_running_out_under_a_running_server_pause_nothing_else() {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};

    let d = common::dir("limits", "lowered");
    let (a, _sa) = backend();
    let (b, _sb) = backend();
    std::fs::write(d.0.join("zones/f.toml"), zone(a, b)).expect("write zone");
    let cfg = write_config(&d.0, "[tcp]\nidle_timeout = \"30s\"\n");
    let s = Limited::start(None, &["--config", &cfg]);
    common::wait_until("a's backend up", common::WAIT, || {
        ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1)).answer == vec![ANSWER_A]
    });
    // The limit lowered under the running server to 40 descriptors more than it
    // has open, far below its TCP cap of 1,024: accepts run out of descriptors.
    let open = std::fs::read_dir(format!("/proc/{}/fd", s.child.id()))
        .expect("list /proc/PID/fd")
        .count() as u64;
    let pid = Pid::from_raw(s.child.id() as i32).expect("pid");
    let lowered = Rlimit {
        current: Some(open + 40),
        maximum: Some(open + 40),
    };
    prlimit(Some(pid), Resource::Nofile, lowered).expect("prlimit");
    let mut idle = Vec::new();
    for net in 1..=20u8 {
        for host in 1..=10u8 {
            idle.push(connect_from(Ipv4Addr::new(127, 0, net, host), s.addr).expect("connect"));
        }
    }
    // A new client is served: an idle connection gave back its descriptor.
    let took = common::wait_until("a new TCP client answered", Duration::from_secs(10), || {
        answered_from(Ipv4Addr::new(127, 0, 99, 1), s.addr, Duration::from_secs(1))
    });
    assert!(
        took < Duration::from_secs(3),
        "answered only after {took:?}"
    );
    // No accept loop spinning on EMFILE: under 20% of a core over 2 s.
    let (t0, c0) = (Instant::now(), s.cpu_ticks());
    std::thread::sleep(Duration::from_secs(2));
    let used = (s.cpu_ticks() - c0) as f64 / clk_tck() as f64;
    let share = used / t0.elapsed().as_secs_f64();
    assert!(share < 0.2, "server used {:.0}% of a core", share * 100.0);
    // Probes short of descriptors are ours, not the backend's: a's verdict held.
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("fo.f.test.", 1)).answer,
        vec![ANSWER_A],
        "the healthy backend's name moved"
    );
    // The descriptors did run out, and the operator is told.
    let line = s.wait_log("cannot accept a connection");
    assert!(line.contains("Too many open files"), "{line}");
    drop(idle);
}
