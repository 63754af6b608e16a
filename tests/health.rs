//! Health checks against real servers on 127.0.0.1: HTTP that can be switched
//! between 200 and 503 or stopped and restarted on its port, HTTPS with a
//! certificate made at test time, a TCP banner, a UDP DNS responder, and a listener
//! that never answers. Every wait polls a condition with a deadline.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signpost::health::{
    self, probe, CheckKind, CheckSpec, Health, HealthTable, Initial, Override, PersistedState,
    Scheduler, SchedulerHandle, SchedulerOptions, Status, TargetId, TargetKey, Tls,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const POLL: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `cond` every 10 ms until it holds; panics naming `what` after 10 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `fut` with a bound, so that a hung probe fails the test instead of CI.
async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("finished within the deadline")
}

// ---------------------------------------------------------------- HTTP server

/// Answers a request: (path, request number) -> raw response bytes.
type Responder = Arc<dyn Fn(&str, u64) -> Vec<u8> + Send + Sync>;

fn response(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A plain HTTP server that counts requests and can be stopped and started again
/// on the same port.
struct HttpServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    responder: Responder,
    task: Option<JoinHandle<()>>,
}

impl HttpServer {
    async fn start(responder: Responder) -> Self {
        let listener = bind_reusable((LOCALHOST, 0).into());
        let mut s = HttpServer {
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            responder,
            task: None,
        };
        s.serve(listener);
        s
    }

    /// 200 while `healthy` holds, else 503.
    async fn switchable(healthy: Arc<AtomicBool>) -> Self {
        Self::start(Arc::new(move |_, _| {
            if healthy.load(Ordering::SeqCst) {
                response(200, "ok")
            } else {
                response(503, "down")
            }
        }))
        .await
    }

    fn serve(&mut self, listener: TcpListener) {
        let (requests, responder) = (self.requests.clone(), self.responder.clone());
        self.task = Some(tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (requests, responder) = (requests.clone(), responder.clone());
                tokio::spawn(async move {
                    let Some(path) = read_request(&mut conn).await else {
                        return;
                    };
                    let n = requests.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_all(&responder(&path, n)).await;
                    let _ = conn.shutdown().await;
                });
            }
        }));
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Closes the listening socket: connects are refused from now on.
    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restart(&mut self) {
        let listener = bind_reusable(self.addr);
        self.serve(listener);
    }
}

fn bind_reusable(addr: SocketAddr) -> TcpListener {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind(addr).unwrap();
    sock.listen(64).unwrap()
}

/// Reads a request head; returns its path.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(conn: &mut S) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 16 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).map(str::to_string)
}

// ---------------------------------------------------------------- checks

fn http_check(port: u16, path: &str) -> CheckSpec {
    CheckSpec {
        kind: CheckKind::Http {
            method: "GET".into(),
            path: path.into(),
            host: None,
            port,
            expect: vec![],
            body_contains: None,
            tls: None,
        },
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 3,
        jitter: Duration::ZERO,
        initial: Initial::Down,
        quorum: None,
    }
}

fn with_body(mut spec: CheckSpec, needle: &str) -> CheckSpec {
    if let CheckKind::Http { body_contains, .. } = &mut spec.kind {
        *body_contains = Some(needle.into());
    }
    spec
}

fn key(spec: CheckSpec) -> TargetKey {
    TargetKey::new(spec, LOCALHOST)
}

struct Running {
    handle: SchedulerHandle,
    shutdown: watch::Sender<bool>,
}

fn start(keys: Vec<TargetKey>) -> (Arc<HealthTable>, Running) {
    let table = Arc::new(HealthTable::new(keys));
    let (shutdown, rx) = watch::channel(false);
    let handle = Scheduler::start(table.clone(), rx);
    (table, Running { handle, shutdown })
}

impl Running {
    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        let handle = self.handle;
        wait_for("every probe task to end on shutdown", || {
            handle.running() == 0
        })
        .await;
        bounded(handle.join()).await;
    }
}

fn status(table: &HealthTable, id: TargetId) -> health::TargetStatus {
    table.status(id).expect("target in table")
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn http_goes_down_after_fall_failures_and_up_after_rise_passes() {
    let healthy = Arc::new(AtomicBool::new(true));
    let server = HttpServer::switchable(healthy.clone()).await;
    let k = key(http_check(server.addr.port(), "/healthz"));
    let (table, run) = start(vec![k.clone()]);
    let id = table.id(&k).unwrap();
    assert!(!table.is_up(id), "initial = down");

    wait_for("up", || table.is_up(id)).await;
    let s = status(&table, id);
    let change = s.last_change.expect("a change");
    assert_eq!((change.after, change.transition.to), (2, Health::Up));
    assert_eq!(s.transitions, 1);

    let before = server.requests();
    healthy.store(false, Ordering::SeqCst);
    wait_for("down", || !table.is_up(id)).await;
    let s = status(&table, id);
    let change = s.last_change.expect("a change");
    assert_eq!((change.after, change.transition.to), (3, Health::Down));
    assert_eq!(change.reason, "HTTP 503");
    assert!(
        server.requests() - before >= 3,
        "three failures were served"
    );
    assert_eq!(s.transitions, 2);

    healthy.store(true, Ordering::SeqCst);
    wait_for("up again", || table.is_up(id)).await;
    let s = status(&table, id);
    assert_eq!(s.last_change.map(|c| c.after), Some(2));
    assert_eq!(s.transitions, 3);
    assert!(
        s.latency.count >= 7,
        "latency recorded for each of 2 + 3 + 2 probes"
    );
    run.stop().await;
}

#[tokio::test]
async fn stopped_server_goes_down_and_restarted_one_comes_back() {
    let mut server = HttpServer::switchable(Arc::new(AtomicBool::new(true))).await;
    let mut spec = http_check(server.addr.port(), "/");
    spec.initial = Initial::Up;
    spec.fall = 2;
    let k = key(spec);
    let (table, run) = start(vec![k.clone()]);
    let id = table.id(&k).unwrap();
    wait_for("first probe", || server.requests() >= 1).await;

    server.stop().await;
    wait_for("down after stop", || !table.is_up(id)).await;
    let reason = status(&table, id).last_change.unwrap().reason;
    assert_eq!(reason, "connect refused");

    server.restart().await;
    wait_for("up after restart", || table.is_up(id)).await;
    run.stop().await;
}

#[tokio::test]
async fn flapping_server_never_flips_state() {
    // Alternates 200, 503, 200, ... per request; rise = fall = 3 never sees a run.
    let alternate: Responder = Arc::new(|_, n| {
        if n % 2 == 0 {
            response(200, "ok")
        } else {
            response(503, "no")
        }
    });
    let up_server = HttpServer::start(alternate.clone()).await;
    let down_server = HttpServer::start(alternate).await;
    let spec = |port, initial| {
        let mut s = http_check(port, "/");
        (s.rise, s.fall, s.initial) = (3, 3, initial);
        key(s)
    };
    let ku = spec(up_server.addr.port(), Initial::Up);
    let kd = spec(down_server.addr.port(), Initial::Down);
    let (table, run) = start(vec![ku.clone(), kd.clone()]);
    let (iu, id) = (table.id(&ku).unwrap(), table.id(&kd).unwrap());

    let mut flipped = false;
    wait_for("20 probes of each", || {
        flipped |= !table.is_up(iu) || table.is_up(id);
        up_server.requests() >= 20 && down_server.requests() >= 20
    })
    .await;
    assert!(!flipped);
    assert_eq!(table.transitions(iu), Some(0));
    assert_eq!(table.transitions(id), Some(0));
    run.stop().await;
}

#[tokio::test]
async fn a_listener_that_never_answers_times_out() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without a byte in reply.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let silent_udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let udp_port = silent_udp.local_addr().unwrap().port();

    let timeout = Duration::from_millis(200);
    let checks = [
        http_check(port, "/"),
        CheckSpec::new(CheckKind::Tcp {
            port,
            send: None,
            expect_prefix: Some(b"SSH-".to_vec()),
        }),
        CheckSpec::new(CheckKind::Dns {
            port: udp_port,
            qname: "www.example.test.".into(),
            qtype: 1,
            expect_rcode: 0,
            expect_answer: None,
        }),
    ];
    for mut spec in checks {
        spec.timeout = timeout;
        let k = key(spec);
        let r = bounded(probe(&k.check, k.addr)).await;
        assert!(!r.ok, "{k}");
        assert_eq!(r.detail, "timeout after 200ms", "{k}");
        assert!(
            r.latency >= timeout && r.latency < Duration::from_secs(2),
            "{k}"
        );
    }

    // The scheduler marks it down through the same path.
    let mut spec = http_check(port, "/");
    (spec.timeout, spec.fall, spec.initial) = (timeout, 1, Initial::Up);
    let k = key(spec);
    let (table, run) = start(vec![k.clone()]);
    let id = table.id(&k).unwrap();
    wait_for("down on timeout", || !table.is_up(id)).await;
    assert_eq!(
        status(&table, id).last.map(|r| r.detail),
        Some("timeout after 200ms".to_string())
    );
    run.stop().await;
    holder.abort();
}

#[tokio::test]
async fn http_bodies_in_every_framing() {
    let big = format!("{}needle", "x".repeat(70 * 1024));
    let server = HttpServer::start(Arc::new(move |path, _| match path {
        "/length" => response(200, "status: green"),
        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        7\r\nstatus:\r\n6;x=y\r\n green\r\n0\r\n\r\n"
            .to_vec(),
        "/eof" => b"HTTP/1.0 200 OK\r\n\r\nstatus: green".to_vec(),
        "/big" => format!("HTTP/1.1 200 OK\r\n\r\n{big}").into_bytes(),
        "/nocontent" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        _ => response(404, "no"),
    }))
    .await;
    let port = server.addr.port();
    let run =
        |spec: CheckSpec| async move { bounded(probe(&spec, (LOCALHOST, port).into())).await };

    for path in ["/length", "/chunked", "/eof"] {
        let r = run(with_body(http_check(port, path), "status: green")).await;
        assert!(r.ok, "{path}: {}", r.detail);
        assert_eq!(r.detail, "HTTP 200, body has \"status: green\"");
        let r = run(with_body(http_check(port, path), "red")).await;
        assert!(!r.ok, "{path}");
        assert_eq!(r.detail, "HTTP 200, body lacks \"red\"");
    }
    // Only the first 64 KiB are searched.
    let r = run(with_body(http_check(port, "/big"), "needle")).await;
    assert!(!r.ok, "{}", r.detail);

    let r = run(http_check(port, "/missing")).await;
    assert_eq!((r.ok, r.detail.as_str()), (false, "HTTP 404"));
    let mut spec = http_check(port, "/missing");
    if let CheckKind::Http { expect, .. } = &mut spec.kind {
        *expect = vec![404];
    }
    assert!(run(spec).await.ok, "404 expected");
    assert!(run(http_check(port, "/nocontent")).await.ok);
}

fn https_check(port: u16, tls: Tls) -> CheckSpec {
    let mut spec = http_check(port, "/");
    if let CheckKind::Http { tls: t, .. } = &mut spec.kind {
        *t = Some(tls);
    }
    spec
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()),
    );
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key_der)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    let server = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let (acceptor, count) = (acceptor.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(conn).await else {
                    return;
                };
                if read_request(&mut tls).await.is_some() {
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = tls.write_all(&response(200, "secure ok")).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    let target: SocketAddr = (LOCALHOST, port).into();

    let no_verify = Tls {
        sni: None,
        verify: false,
    };
    let r = bounded(probe(&https_check(port, no_verify.clone()), target)).await;
    assert!(r.ok, "{}", r.detail);
    assert_eq!(r.detail, "HTTP 200");

    let by_name = Tls {
        sni: Some("localhost".into()),
        verify: false,
    };
    let r = bounded(probe(
        &with_body(https_check(port, by_name), "secure"),
        target,
    ))
    .await;
    assert!(r.ok, "{}", r.detail);

    for sni in [None, Some("localhost".to_string())] {
        let verify = Tls { sni, verify: true };
        let r = bounded(probe(&https_check(port, verify), target)).await;
        assert!(!r.ok);
        assert!(r.detail.contains("certificate"), "{}", r.detail);
    }
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "no request after a failed verify"
    );
    server.abort();
}

/// A TCP server that sends `banner` on connect, if any, and answers `PING` with
/// `PONG`.
async fn tcp_server(banner: Option<&'static [u8]>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Some(b) = banner {
                    let _ = conn.write_all(b).await;
                }
                let mut buf = [0u8; 64];
                if let Ok(n) = conn.read(&mut buf).await {
                    if buf[..n].starts_with(b"PING") {
                        let _ = conn.write_all(b"PONG\r\n").await;
                    }
                }
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn tcp_banner_and_request_reply() {
    let (banner_port, banner_server) = tcp_server(Some(b"SSH-2.0-signpost-test\r\n")).await;
    let (ping_port, ping_server) = tcp_server(None).await;
    let tcp = |port, send: Option<&[u8]>, expect: Option<&[u8]>| {
        let mut spec = CheckSpec::new(CheckKind::Tcp {
            port,
            send: send.map(<[u8]>::to_vec),
            expect_prefix: expect.map(<[u8]>::to_vec),
        });
        spec.timeout = Duration::from_secs(2);
        key(spec)
    };
    let check = |k: TargetKey| async move { bounded(probe(&k.check, k.addr)).await };

    let r = check(tcp(banner_port, None, None)).await;
    assert_eq!((r.ok, r.detail.as_str()), (true, "connected"));
    let r = check(tcp(banner_port, None, Some(b"SSH-2.0-"))).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (true, "reply starts with \"SSH-2.0-\"")
    );
    let r = check(tcp(banner_port, None, Some(b"HTTP/1.1"))).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (
            false,
            "reply \"SSH-2.0-signpost-test\\r\\n\" does not start with \"HTTP/1.1\""
        )
    );

    let r = check(tcp(ping_port, Some(b"PING\r\n"), Some(b"PONG"))).await;
    assert!(r.ok, "{}", r.detail);
    let r = check(tcp(ping_port, Some(b"HELLO\r\n"), Some(b"PONG"))).await;
    assert_eq!((r.ok, r.detail.as_str()), (false, "closed before a reply"));

    // A closed port is refused.
    let closed = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let r = check(tcp(closed_port, None, None)).await;
    assert_eq!((r.ok, r.detail.as_str()), (false, "connect refused"));
    banner_server.abort();
    ping_server.abort();
}

/// A DNS responder for `www.example.test.` (A 192.0.2.1, TXT "v=ok"); NXDOMAIN for
/// other names.
async fn dns_responder() -> (SocketAddr, JoinHandle<()>) {
    use hickory_proto::op::{Message, OpCode, ResponseCode};
    use hickory_proto::rr::rdata::{A, TXT};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    let sock = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut r = Message::response(q.metadata.id, OpCode::Query);
            r.metadata.authoritative = true;
            let name = query.name().clone();
            r.add_query(query.clone());
            if name == Name::from_ascii("www.example.test.").unwrap() {
                let rdata = match query.query_type() {
                    RecordType::A => Some(RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))),
                    RecordType::TXT => Some(RData::TXT(TXT::new(vec!["v=ok".into()]))),
                    _ => None,
                };
                if let Some(rdata) = rdata {
                    r.add_answer(Record::from_rdata(name, 60, rdata));
                }
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn dns_rcode_and_answers() {
    let (addr, server) = dns_responder().await;
    let dns = |qname: &str, qtype, rcode, answer: Option<&str>| {
        let mut spec = CheckSpec::new(CheckKind::Dns {
            port: addr.port(),
            qname: qname.into(),
            qtype,
            expect_rcode: rcode,
            expect_answer: answer.map(str::to_string),
        });
        spec.timeout = Duration::from_secs(2);
        key(spec)
    };
    let cases = [
        (
            dns("www.example.test.", 1, 0, Some("192.0.2.1")),
            true,
            "DNS NOERROR 192.0.2.1",
        ),
        (dns("www.example.test", 1, 0, None), true, "DNS NOERROR"),
        (
            dns("www.example.test.", 16, 0, Some("v=ok")),
            true,
            "DNS NOERROR \"v=ok\"",
        ),
        (
            dns("www.example.test.", 1, 0, Some("192.0.2.9")),
            false,
            "DNS NOERROR, no answer contains \"192.0.2.9\"",
        ),
        (dns("nope.example.test.", 1, 3, None), true, "DNS NXDOMAIN"),
        (
            dns("nope.example.test.", 1, 0, None),
            false,
            "DNS NXDOMAIN, want NOERROR",
        ),
    ];
    for (k, ok, detail) in cases {
        let r = bounded(probe(&k.check, k.addr)).await;
        assert_eq!((r.ok, r.detail.as_str()), (ok, detail), "{k}");
    }
    server.abort();
}

#[tokio::test]
async fn overrides_beat_probes_and_probes_go_on() {
    let server = HttpServer::switchable(Arc::new(AtomicBool::new(true))).await;
    let k = key(http_check(server.addr.port(), "/"));
    let (table, run) = start(vec![k.clone()]);
    let id = table.id(&k).unwrap();
    wait_for("up", || table.is_up(id)).await;

    table.set_override(id, Override::Drain);
    assert!(!table.is_up(id));
    assert_eq!(table.status_of(id), Some(Status::Draining));
    let before = server.requests();
    wait_for("probes continue while drained", || {
        server.requests() >= before + 2
    })
    .await;
    assert_eq!(table.probed(id), Some(Health::Up));
    table.set_override(id, Override::None);
    assert!(table.is_up(id));
    run.stop().await;
}

#[tokio::test]
async fn reconcile_keeps_survivors_and_stops_removed_targets() {
    let healthy = Arc::new(AtomicBool::new(true));
    let a = HttpServer::switchable(healthy.clone()).await;
    let b = HttpServer::switchable(healthy.clone()).await;
    let c = HttpServer::switchable(healthy).await;
    let check = |s: &HttpServer| {
        let mut spec = http_check(s.addr.port(), "/");
        spec.rise = 1;
        key(spec)
    };
    let (ka, kb, kc) = (check(&a), check(&b), check(&c));
    let (table, mut run) = start(vec![ka.clone(), kb.clone(), ka.clone()]);
    assert_eq!(table.len(), 2, "one target per distinct check and address");
    wait_for("a and b up", || {
        table.is_up(TargetId(0)) && table.is_up(TargetId(1))
    })
    .await;
    let a_transitions = table.transitions(TargetId(0));

    // c first, so a moves from id 0 to id 1.
    let m = run.handle.reconcile(vec![kc.clone(), ka.clone()]);
    assert_eq!((m.kept, m.added, m.removed), (1, 1, 1));
    assert_eq!(m.old_to_new, vec![Some(TargetId(1)), None]);
    let new = m.table.clone();
    assert_eq!(new.id(&ka), Some(TargetId(1)));
    assert_eq!(new.id(&kc), Some(TargetId(0)));
    assert!(new.is_up(TargetId(1)), "a keeps its state");
    assert_eq!(new.transitions(TargetId(1)), a_transitions);
    assert!(!new.is_up(TargetId(0)), "c starts from its initial state");
    assert!(Arc::ptr_eq(&run.handle.table(), &new));

    wait_for("b's task to end", || run.handle.running() == 2).await;
    let b_after = b.requests();
    let a_before = a.requests();
    wait_for("c up", || new.is_up(TargetId(0))).await;
    wait_for("five more probes of a", || a.requests() >= a_before + 5).await;
    assert_eq!(b.requests(), b_after, "removed target is no longer probed");
    // The old table still reads, and a's slot in it is the live one.
    assert!(table.is_up(TargetId(0)));
    run.stop().await;
}

#[tokio::test]
async fn reconcile_carries_state_across_a_timing_change() {
    let server = HttpServer::switchable(Arc::new(AtomicBool::new(true))).await;
    let mut spec = http_check(server.addr.port(), "/");
    spec.rise = 1;
    let k1 = key(spec.clone());
    let (table, mut run) = start(vec![k1.clone()]);
    wait_for("up", || table.is_up(TargetId(0))).await;
    table.set_override(TargetId(0), Override::ForceUp);

    spec.interval = Duration::from_millis(60);
    let k2 = key(spec);
    let m = run.handle.reconcile(vec![k2.clone()]);
    assert_eq!((m.added, m.removed, m.inherited), (1, 1, 1));
    assert_eq!(m.table.probed(TargetId(0)), Some(Health::Up));
    assert_eq!(m.table.override_of(TargetId(0)), Some(Override::ForceUp));
    run.stop().await;
}

#[tokio::test]
async fn probes_in_flight_are_bounded() {
    use std::sync::atomic::AtomicUsize;
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let (n2, m2, s2) = (now.clone(), max.clone(), served.clone());
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (now, max, served) = (n2.clone(), m2.clone(), s2.clone());
            tokio::spawn(async move {
                if read_request(&mut conn).await.is_none() {
                    return;
                }
                let c = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(c, Ordering::SeqCst);
                // Slow enough that unthrottled probes would overlap.
                tokio::time::sleep(Duration::from_millis(30)).await;
                // Counted out before replying, so the count never outlives the
                // client's permit.
                now.fetch_sub(1, Ordering::SeqCst);
                served.fetch_add(1, Ordering::SeqCst);
                let _ = conn.write_all(&response(200, "ok")).await;
            });
        }
    });
    let keys: Vec<TargetKey> = (0..6)
        .map(|i| {
            let mut spec = http_check(port, &format!("/{i}"));
            spec.interval = Duration::from_millis(20);
            key(spec)
        })
        .collect();
    let table = Arc::new(HealthTable::new(keys));
    let (tx, rx) = watch::channel(false);
    let handle = Scheduler::start_with(table, rx, SchedulerOptions { max_in_flight: 2 });
    wait_for("30 probes", || served.load(Ordering::SeqCst) >= 30).await;
    assert!(
        max.load(Ordering::SeqCst) <= 2,
        "max {}",
        max.load(Ordering::SeqCst)
    );
    Running {
        handle,
        shutdown: tx,
    }
    .stop()
    .await;
    server.abort();
}

#[tokio::test]
async fn shutdown_ends_every_task_even_mid_probe() {
    let server = HttpServer::switchable(Arc::new(AtomicBool::new(true))).await;
    let silent = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut slow = http_check(silent_port, "/");
    slow.timeout = Duration::from_secs(30);
    let keys = vec![
        key(http_check(server.addr.port(), "/a")),
        key(http_check(server.addr.port(), "/b")),
        key(slow),
    ];
    let (_table, run) = start(keys);
    assert_eq!(run.handle.running(), 3);
    wait_for("some probes", || server.requests() >= 4).await;
    let started = Instant::now();
    run.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait out a probe"
    );
    drop(silent);
}

#[tokio::test]
async fn dropping_the_shutdown_sender_also_stops_tasks() {
    let server = HttpServer::switchable(Arc::new(AtomicBool::new(true))).await;
    let (table, run) = start(vec![key(http_check(server.addr.port(), "/"))]);
    let Running { handle, shutdown } = run;
    drop(shutdown);
    wait_for("task to end", || handle.running() == 0).await;
    drop(table);
}

fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "signpost-health-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn saved_state_round_trips_and_restores() {
    let dir = temp_dir("persist");
    let path = dir.join("health.toml");
    let k1 = key(http_check(8080, "/healthz"));
    let k2 = key(CheckSpec::new(CheckKind::Tcp {
        port: 22,
        send: None,
        expect_prefix: None,
    }));
    let table = HealthTable::new([k1.clone(), k2.clone()]);
    let (i1, i2) = (table.id(&k1).unwrap(), table.id(&k2).unwrap());
    table.set_probed(i1, Health::Up);
    table.set_override(i1, Override::Drain);
    table.set_probed(i2, Health::Down);
    table.set_named_override("region:eu-west", Override::ForceDown);

    health::save(&path, &table).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("health.toml")]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[targets.\"http:GET:/healthz@127.0.0.1:8080\"]"),
        "{text}"
    );

    let loaded = health::load(&path).unwrap();
    assert_eq!(loaded, PersistedState::from_table(&table));
    // A restart: a fresh table (k1 starts down, k2 up, with a new interval)
    // takes the saved state.
    let mut k2_up = k2.clone();
    k2_up.check.interval = Duration::from_secs(7);
    let fresh = HealthTable::new([k2_up.clone(), k1.clone()]);
    assert_eq!(
        loaded.apply_to(&fresh),
        2,
        "matched by stable key, not timing"
    );
    let (j1, j2) = (fresh.id(&k1).unwrap(), fresh.id(&k2_up).unwrap());
    assert_eq!(fresh.status_of(j1), Some(Status::Draining));
    assert_eq!(fresh.probed(j1), Some(Health::Up));
    assert_eq!(fresh.status_of(j2), Some(Status::Down));
    assert_eq!(fresh.named_override("region:eu-west"), Override::ForceDown);

    // Saving again replaces the file whole.
    fresh.set_override(j1, Override::None);
    health::save(&path, &fresh).unwrap();
    assert_eq!(
        health::load(&path).unwrap().targets["http:GET:/healthz@127.0.0.1:8080"].operator_override,
        Override::None
    );

    let missing = health::load(&dir.join("absent.toml")).unwrap_err();
    assert!(missing.is_not_found());
    std::fs::write(&path, "version = 1\n[targets.x]\nup = \"maybe\"\n").unwrap();
    let bad = health::load(&path).unwrap_err();
    assert!(!bad.is_not_found());
    assert!(bad.to_string().contains("health.toml"), "{bad}");
    std::fs::write(&path, "version = 99\n").unwrap();
    assert!(health::load(&path)
        .unwrap_err()
        .to_string()
        .contains("version 99"));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- what hyper and hickory give

/// A server that, per connection, reads the request, runs `write` on the
/// connection, then holds it open until the probe closes it (a server that ignores
/// `Connection: close`). Counts connections the probe closed.
async fn holding_server<F, Fut>(write: F) -> (u16, Arc<AtomicU64>, JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<tokio::net::TcpStream>> + Send,
{
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = Arc::new(AtomicU64::new(0));
    let (count, write) = (closed.clone(), Arc::new(write));
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (count, write) = (count.clone(), write.clone());
            tokio::spawn(async move {
                if read_request(&mut conn).await.is_none() {
                    return;
                }
                // `None`: writing failed because the probe had gone.
                if let Some(mut conn) = write(conn).await {
                    let mut buf = [0u8; 64];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                }
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, closed, task)
}

#[tokio::test]
async fn chunked_body_with_the_text_in_its_second_chunk() {
    let (port, closed, server) = holding_server(|mut conn| async move {
        let parts: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"8;note=first\r\nstatus: \r\n",
            b"5\r\ngreen\r\n0\r\nX-Trailer: t\r\n\r\n",
        ];
        for p in parts {
            conn.write_all(p).await.ok()?;
            conn.flush().await.ok()?;
        }
        Some(conn)
    })
    .await;
    // The connection stays open after the last chunk: only the chunked framing
    // tells the probe the body is over, well before its timeout.
    let mut spec = with_body(http_check(port, "/"), "green");
    spec.timeout = Duration::from_secs(5);
    let r = bounded(probe(&spec, (LOCALHOST, port).into())).await;
    assert!(r.ok, "{}", r.detail);
    assert_eq!(r.detail, "HTTP 200, body has \"green\"");
    let spec = with_body(http_check(port, "/"), "red");
    let r = bounded(probe(&spec, (LOCALHOST, port).into())).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (false, "HTTP 200, body lacks \"red\"")
    );
    wait_for("the probes to close both connections", || {
        closed.load(Ordering::SeqCst) == 2
    })
    .await;
    server.abort();
}

#[tokio::test]
async fn body_over_64_kib_fails_with_a_reason_and_no_hang() {
    // An endless chunked body, and a declared 1 MiB one with the text at its end.
    let (endless, closed, endless_server) = holding_server(|mut conn| async move {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        conn.write_all(head).await.ok()?;
        let mut chunk = b"1000\r\nready ".to_vec();
        chunk.resize(6 + 0x1000, b'x');
        chunk.extend_from_slice(b"\r\n");
        loop {
            conn.write_all(&chunk).await.ok()?;
        }
    })
    .await;
    let (sized, _, sized_server) = holding_server(|mut conn| async move {
        let len = 1024 * 1024;
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
        conn.write_all(head.as_bytes()).await.ok()?;
        let mut body = vec![b'x'; len - 6];
        body.extend_from_slice(b"needle");
        conn.write_all(&body).await.ok()?;
        Some(conn)
    })
    .await;

    let run = |port, needle| async move {
        let mut spec = with_body(http_check(port, "/"), needle);
        spec.timeout = Duration::from_secs(5);
        bounded(probe(&spec, (LOCALHOST, port).into())).await
    };
    for port in [endless, sized] {
        let r = run(port, "needle").await;
        assert_eq!(
            (r.ok, r.detail.as_str()),
            (false, "HTTP 200, first 64 KiB of the body lack \"needle\""),
            "port {port}"
        );
    }
    // Found in the first chunk: the probe passes without reading the rest.
    let r = run(endless, "ready").await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (true, "HTTP 200, body has \"ready\"")
    );
    wait_for("the endless body's writer to see both probes gone", || {
        closed.load(Ordering::SeqCst) == 2
    })
    .await;
    endless_server.abort();
    sized_server.abort();
}

/// A DNS server for `www.example.test. A` on one port: over UDP it answers with TC
/// set and no records, over TCP with the address. Counts TCP queries.
async fn truncating_dns_server() -> (SocketAddr, Arc<AtomicU64>, JoinHandle<()>) {
    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{RData, Record};

    // The same port number for both: bind UDP first, then TCP on its port (rarely
    // taken; try again with a new UDP port if it is).
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let answer = |query: &[u8], truncated: bool| -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        let mut r = Message::response(q.metadata.id, OpCode::Query);
        r.metadata.authoritative = true;
        let question = q.queries.first()?.clone();
        let name = question.name().clone();
        r.add_query(question);
        if truncated {
            r.metadata.truncation = true;
        } else {
            r.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 7))));
        }
        r.to_vec().ok()
    };
    let tcp_queries = Arc::new(AtomicU64::new(0));
    let count = tcp_queries.clone();
    let task = tokio::spawn(async move {
        let udp_side = async {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                if let Some(r) = answer(&buf[..n], true) {
                    let _ = udp.send_to(&r, peer).await;
                }
            }
        };
        let tcp_side = async {
            while let Ok((mut conn, _)) = tcp.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(len) = conn.read_u16().await else {
                        return;
                    };
                    let mut q = vec![0u8; usize::from(len)];
                    if conn.read_exact(&mut q).await.is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    if let Some(r) = answer(&q, false) {
                        let mut framed = (r.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&r);
                        let _ = conn.write_all(&framed).await;
                    }
                });
            }
        };
        tokio::join!(udp_side, tcp_side);
    });
    (addr, tcp_queries, task)
}

#[tokio::test]
async fn dns_truncated_over_udp_is_asked_again_over_tcp() {
    let (addr, tcp_queries, server) = truncating_dns_server().await;
    let dns = |port, answer: Option<&str>| {
        let mut spec = CheckSpec::new(CheckKind::Dns {
            port,
            qname: "www.example.test.".into(),
            qtype: 1,
            expect_rcode: 0,
            expect_answer: answer.map(str::to_string),
        });
        spec.timeout = Duration::from_secs(2);
        key(spec)
    };
    let k = dns(addr.port(), Some("192.0.2.7"));
    let r = bounded(probe(&k.check, k.addr)).await;
    assert_eq!((r.ok, r.detail.as_str()), (true, "DNS NOERROR 192.0.2.7"));
    assert_eq!(tcp_queries.load(Ordering::SeqCst), 1, "asked over TCP once");
    let k = dns(addr.port(), Some("192.0.2.9"));
    let r = bounded(probe(&k.check, k.addr)).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (false, "DNS NOERROR, no answer contains \"192.0.2.9\"")
    );
    server.abort();

    // A server that truncates over UDP and has no TCP: the reason says both.
    let udp = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let udp_only = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x82; // QR and TC
            let _ = udp.send_to(&reply, peer).await;
        }
    });
    let k = dns(port, None);
    let r = bounded(probe(&k.check, k.addr)).await;
    assert_eq!(
        (r.ok, r.detail.as_str()),
        (false, "reply truncated over UDP; over TCP: connect refused")
    );
    udp_only.abort();
}

#[tokio::test]
async fn malformed_responses_get_a_reason() {
    let server = HttpServer::start(Arc::new(|path, _| match path {
        "/banner" => b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
        "/chunk" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        "/cut" => b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort".to_vec(),
        "/huge" => {
            format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\nok", "p".repeat(20_000)).into_bytes()
        }
        _ => Vec::new(),
    }))
    .await;
    let port = server.addr.port();
    for (path, want) in [
        ("/banner", "bad HTTP response: "),
        ("/chunk", "bad HTTP response: "),
        ("/cut", "closed before a complete response"),
        ("/huge", "bad HTTP response: header section over 16 KiB"),
        ("/silent", "closed before a complete response"),
    ] {
        let spec = with_body(http_check(port, path), "ok");
        let r = bounded(probe(&spec, (LOCALHOST, port).into())).await;
        assert!(!r.ok, "{path}");
        assert!(r.detail.starts_with(want), "{path}: {}", r.detail);
    }
}
