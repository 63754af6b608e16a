//! DNS over TLS and DNS over HTTPS against the real server: Knot's `kdig` and BIND's
//! `dig` (Debian's packages) get over TLS and HTTPS the answer sections they get over
//! UDP; a rustls client sends several queries on one DoT connection and malformed
//! DoH requests; a bad certificate path is a `signpost check` error at its line; a
//! new certificate is served after a reload, and a broken one is not.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{ask_udp, EdnsSpec, QuerySpec, Server};
use rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for localhost and 127.0.0.1: (certificate PEM, key
/// PEM, certificate DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen certificate");
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().clone(),
    )
}

/// Writes a file the way deploy tools do: a temp file, then a rename.
fn replace(path: &Path, text: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A scratch folder with the steering zone, a certificate, and a server config with
/// DoT and DoH on free loopback ports.
struct Setup {
    dir: common::Dir,
    cert: CertificateDer<'static>,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = common::dir("encrypted", tag);
        std::fs::copy(
            common::repo_path("tests/zones/steer/steer.test.toml"),
            dir.0.join("zones/steer.test.toml"),
        )
        .expect("copy zone");
        let (cert_pem, key_pem, cert) = certificate();
        std::fs::write(dir.0.join("cert.pem"), cert_pem).expect("write cert");
        std::fs::write(dir.0.join("key.pem"), key_pem).expect("write key");
        let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
        let config = format!(
            "zones = \"zones\"\n\
             [geo]\ndatabase = {geo:?}\n\
             [[geo.override]]\ncidr = \"198.18.5.0/24\"\ncountry = \"DE\"\n\
             [tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\
             [dot]\nlisten = [\"127.0.0.1:0\"]\n\
             [doh]\nlisten = [\"127.0.0.1:0\"]\n"
        );
        std::fs::write(dir.0.join("server.toml"), config).expect("write config");
        Setup { dir, cert }
    }

    fn config(&self) -> PathBuf {
        self.dir.0.join("server.toml")
    }

    /// Starts the server; returns it with its DoT and DoH addresses.
    fn start(&self) -> (Server, SocketAddr, SocketAddr) {
        let cfg = self.config();
        let s = Server::start(&["--config", cfg.to_str().expect("path")]);
        let line = s.wait_log("encrypted transports");
        let addr = |label: &str| -> SocketAddr {
            let rest = line
                .split(label)
                .nth(1)
                .unwrap_or_else(|| panic!("no {label:?} in {line}"));
            let word = rest.split_whitespace().next().unwrap_or_default();
            let word = word.split('/').next().unwrap_or_default();
            word.trim_end_matches(';')
                .parse()
                .unwrap_or_else(|_| panic!("no address after {label:?} in {line}"))
        };
        let (dot, doh) = (addr("dot on "), addr("doh on "));
        (s, dot, doh)
    }
}

/// The queries every transport is asked: a static name, a steered one placed by ECS
/// (198.18.5.0/24 is pinned to DE: eu-central), a name that does not exist.
const CASES: [(&str, Option<&str>); 3] = [
    ("static.steer.test.", None),
    ("place.steer.test.", Some("198.18.5.0/24")),
    ("nosuch.steer.test.", None),
];

/// What a dig-like tool printed, as compared: the status and the records of the
/// answer and authority sections, whitespace normalised.
#[derive(Debug, PartialEq)]
struct Printed {
    status: String,
    answer: Vec<String>,
    authority: Vec<String>,
}

fn parse_printed(out: &str) -> Printed {
    let mut p = Printed {
        status: String::new(),
        answer: Vec::new(),
        authority: Vec::new(),
    };
    let mut section = "";
    for line in out.lines() {
        let t = line.trim();
        if let Some(rest) = t.split("status: ").nth(1) {
            p.status = rest.split([',', ';']).next().unwrap_or("").to_string();
        }
        if t.starts_with(";;") && t.ends_with("SECTION:") {
            section = if t.contains("ANSWER") {
                "answer"
            } else if t.contains("AUTHORITY") {
                "authority"
            } else {
                "other"
            };
            continue;
        }
        if t.is_empty() || t.starts_with(';') {
            if t.is_empty() {
                section = "";
            }
            continue;
        }
        let rec = t.split_whitespace().collect::<Vec<_>>().join(" ");
        match section {
            "answer" => p.answer.push(rec),
            "authority" => p.authority.push(rec),
            _ => {}
        }
    }
    p
}

/// Runs `tool` (kdig or dig) with `args`; a missing tool fails the test.
fn run(tool: &str, args: &[String]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool} ({e}): install Debian's {} package (.ci/run does)",
            if tool == "kdig" {
                "knot-dnsutils"
            } else {
                "bind9-dnsutils"
            }
        )
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn ask(tool: &str, at: SocketAddr, transport: &[&str], name: &str, ecs: Option<&str>) -> Printed {
    let mut args: Vec<String> = vec![
        format!("@{}", at.ip()),
        "-p".into(),
        at.port().to_string(),
        name.into(),
        "A".into(),
        "+norecurse".into(),
    ];
    args.extend(transport.iter().map(|s| s.to_string()));
    if tool == "dig" {
        args.extend(["+tries=1".into(), "+timeout=5".into(), "+nocookie".into()]);
    } else {
        args.extend(["+retry=0".into(), "+timeout=5".into()]);
    }
    if let Some(subnet) = ecs {
        args.push(format!("+subnet={subnet}"));
    }
    parse_printed(&run(tool, &args))
}

#[test]
fn kdig_and_dig_get_the_udp_answers_over_tls_and_https() {
    let setup = Setup::new("tools");
    let (s, dot, doh) = setup.start();
    let kinds: [(&str, &[&str], SocketAddr); 6] = [
        ("kdig", &["+tls"], dot),
        ("kdig", &["+https"], doh),
        ("kdig", &["+https", "+https-get"], doh),
        ("dig", &["+tls"], dot),
        ("dig", &["+https"], doh),
        ("dig", &["+https-get"], doh),
    ];
    for (name, ecs) in CASES {
        for tool in ["kdig", "dig"] {
            let udp = ask(tool, s.addr, &[], name, ecs);
            match name {
                "nosuch.steer.test." => {
                    assert_eq!(udp.status, "NXDOMAIN", "{udp:?}");
                    assert_eq!(udp.authority.len(), 1, "{udp:?}");
                }
                "place.steer.test." => {
                    assert_eq!(udp.answer, vec!["place.steer.test. 30 IN A 10.0.2.4"])
                }
                _ => assert_eq!(udp.answer, vec!["static.steer.test. 300 IN A 192.0.2.2"]),
            }
            for (t, transport, at) in kinds.iter().filter(|k| k.0 == tool) {
                let got = ask(t, *at, transport, name, ecs);
                assert_eq!(got, udp, "{t} {transport:?} {name} {ecs:?}");
            }
        }
    }
}

/// A rustls client trusting `roots`, with `alpn`.
fn client(roots: &[&CertificateDer<'static>], alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(cfg)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS session to `at`, verified for the name "localhost", handshake done.
fn connect(at: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Tls {
    try_connect(at, cfg).unwrap_or_else(|e| panic!("TLS handshake with {at}: {e}"))
}

fn try_connect(at: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect_timeout(&at, common::ANSWER_WAIT)?;
    tcp.set_read_timeout(Some(common::ANSWER_WAIT))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(cfg, name).expect("client");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn ecs_query(name: &str, ecs: Option<&str>) -> QuerySpec {
    let mut q = QuerySpec::new(name, 1).with_edns();
    if let Some((a, p)) = ecs.and_then(|e| e.split_once('/')) {
        q.edns = Some(EdnsSpec {
            payload: 1232,
            ecs: Some((a.parse().expect("addr"), p.parse().expect("prefix"))),
            ..EdnsSpec::default()
        });
    }
    q
}

#[test]
fn one_tls_connection_carries_several_queries() {
    let setup = Setup::new("dot");
    let (s, dot, _) = setup.start();
    let mut tls = connect(dot, client(&[&setup.cert], b"dot"));
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"dot"[..]));
    // All three written before any is read: answered in order on the one session.
    let queries: Vec<QuerySpec> = CASES
        .iter()
        .enumerate()
        .map(|(i, (name, ecs))| {
            let mut q = ecs_query(name, *ecs);
            q.id = 0x100 + i as u16;
            q
        })
        .collect();
    for q in &queries {
        let pkt = q.to_bytes();
        let mut framed = (pkt.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&pkt);
        tls.write_all(&framed).expect("write query");
    }
    tls.flush().expect("flush");
    for q in &queries {
        let mut len = [0u8; 2];
        tls.read_exact(&mut len).expect("read length");
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        tls.read_exact(&mut msg).expect("read answer");
        // Byte for byte what the TCP path sends; the same sections as over UDP.
        let over_tcp = common::tcp_exchange(s.addr, &q.to_bytes()).expect("TCP answer");
        assert_eq!(msg, over_tcp, "{}", q.name);
        let (d, udp) = (common::decode(&msg), ask_udp(s.addr, q));
        assert_eq!(d.id, q.id);
        assert_eq!(
            (&d.rcode, &d.answer, &d.authority, d.ecs),
            (&udp.rcode, &udp.answer, &udp.authority, udp.ecs),
            "{}",
            q.name
        );
    }
    let steered =
        common::decode(&common::tcp_exchange(s.addr, &queries[1].to_bytes()).expect("TCP"));
    assert_eq!(steered.answer, vec!["place.steer.test. 30 IN A 10.0.2.4"]);
    assert_eq!(steered.ecs.map(|e| e.1), Some(24), "ECS echoed");
}

/// One HTTP/1.1 request over TLS: (status, lower-cased headers, body).
fn https(
    at: SocketAddr,
    cert: &CertificateDer<'static>,
    request: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut tls = connect(at, client(&[cert], b"http/1.1"));
    tls.write_all(request).expect("write request");
    tls.flush().expect("flush");
    let mut resp = Vec::new();
    // The server closes after the reply ("Connection: close"); what came is kept.
    let _ = tls.read_to_end(&mut resp);
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&resp)));
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, resp[split + 4..].to_vec())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn request(method: &str, target: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn doh_answers_get_and_post_and_refuses_bad_requests() {
    use base64::Engine;
    let setup = Setup::new("doh");
    let (s, _, doh) = setup.start();
    let cert = &setup.cert;
    let dns = "Content-Type: application/dns-message\r\n";
    for (name, ecs) in CASES {
        let q = ecs_query(name, ecs);
        let over_tcp = common::tcp_exchange(s.addr, &q.to_bytes()).expect("TCP answer");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(q.to_bytes());
        let get = request("GET", &format!("/dns-query?dns={b64}"), "", b"");
        let post = request("POST", "/dns-query", dns, &q.to_bytes());
        for req in [get, post] {
            let (status, headers, body) = https(doh, cert, &req);
            assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
            assert_eq!(
                header(&headers, "content-type"),
                Some("application/dns-message")
            );
            assert_eq!(body, over_tcp, "{name}: the TCP path's bytes");
            // RFC 8484 §5.1: no longer than the smallest TTL (the SOA's when negative).
            let age = match name {
                "nosuch.steer.test." => 60,
                "place.steer.test." => 30,
                _ => 300,
            };
            assert_eq!(
                header(&headers, "cache-control"),
                Some(format!("max-age={age}").as_str()),
                "{name}"
            );
        }
    }
    let query = QuerySpec::new("static.steer.test.", 1).to_bytes();
    let mut response = query.clone();
    response[2] |= 0x80;
    let get = |target: &str| request("GET", target, "", b"");
    let post = |ctype: &str, body: &[u8]| request("POST", "/dns-query", ctype, body);
    // Only the head of a body over the limit: the 413 comes from Content-Length
    // alone, before any of the body is read (a client still sending a body the
    // server will not read could see its reply cut by the close).
    let mut too_big = post(dns, &[0u8; 70_000]);
    too_big.truncate(too_big.len() - 70_000);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (get("/dns-query"), 400, "no dns= parameter"),
        (get("/dns-query?dns=%%%"), 400, "not base64url"),
        (post(dns, &response), 400, "not a DNS query"),
        (post(dns, b""), 400, "not a DNS query"),
        (get("/other?dns=AAAA"), 404, "go to /dns-query"),
        (
            request("PUT", "/dns-query", dns, &query),
            405,
            "use GET ?dns= or POST",
        ),
        (
            post("Content-Type: text/plain\r\n", &query),
            415,
            "POST a body of type",
        ),
        (post("", &query), 415, "application/dns-message"),
        (too_big, 413, "at most 65535 bytes"),
    ];
    for (req, want, says) in cases {
        let (status, headers, body) = https(doh, cert, &req);
        let text = String::from_utf8_lossy(&body);
        let first = String::from_utf8_lossy(&req[..req.len().min(40)]).into_owned();
        assert_eq!(status, want, "{first:?}: {text}");
        assert!(text.contains(says), "{first:?}: {text}");
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        if want == 405 {
            assert_eq!(header(&headers, "allow"), Some("GET, POST"));
        }
    }
    // Still serving after all that.
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("static.steer.test.", 1)).rcode,
        "NOERROR"
    );
}

fn check(config: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .expect("run signpost check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_certificate_or_key_is_a_check_error_at_its_line() {
    let setup = Setup::new("check");
    let cfg = setup.config();
    let (ok, err) = check(&cfg);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(&cfg).expect("read config");
    let line_of = |key: &str| {
        1 + text
            .lines()
            .position(|l| l.starts_with(key))
            .expect("key in config")
    };
    let shown = cfg.display().to_string();

    std::fs::write(&cfg, text.replace("\"cert.pem\"", "\"missing.pem\"")).expect("write");
    let (ok, err) = check(&cfg);
    assert!(!ok, "a missing certificate passed check");
    let at = format!("{shown}:{}: tls: certificate file ", line_of("cert_file"));
    assert!(
        err.contains(&at) && err.contains("missing.pem: cannot read"),
        "{err}"
    );

    std::fs::write(setup.dir.0.join("bad-key.pem"), "not a key\n").expect("write");
    std::fs::write(&cfg, text.replace("\"key.pem\"", "\"bad-key.pem\"")).expect("write");
    let (ok, err) = check(&cfg);
    assert!(!ok, "a malformed key passed check");
    let at = format!("{shown}:{}: tls: key file ", line_of("key_file"));
    assert!(
        err.contains(&at) && err.contains("no PEM private key"),
        "{err}"
    );

    // A key that is not the certificate's.
    let (_, other_key, _) = certificate();
    std::fs::write(setup.dir.0.join("bad-key.pem"), other_key).expect("write");
    let (ok, err) = check(&cfg);
    assert!(!ok, "a key of another certificate passed check");
    assert!(
        err.contains(&format!("{shown}:{}:", line_of("cert_file"))),
        "{err}"
    );

    // And the server does not start on it either.
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .expect("run signpost serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{shown}:{}:", line_of("cert_file"))),
        "{err}"
    );
}

/// The leaf certificate the DoT listener presents now.
fn served(dot: SocketAddr, roots: &[&CertificateDer<'static>]) -> CertificateDer<'static> {
    let tls = connect(dot, client(roots, b"dot"));
    tls.conn
        .peer_certificates()
        .and_then(|c| c.first().cloned())
        .expect("a peer certificate")
}

#[test]
fn reload_serves_a_new_certificate_and_keeps_it_over_a_broken_one() {
    let setup = Setup::new("reload");
    let (s, dot, doh) = setup.start();
    let (new_cert_pem, new_key_pem, new_cert) = certificate();
    let roots = [&setup.cert, &new_cert];
    assert_eq!(served(dot, &roots), setup.cert);

    // Key first, then the certificate, as a renewal writes them.
    replace(&setup.dir.0.join("key.pem"), new_key_pem.as_bytes());
    replace(&setup.dir.0.join("cert.pem"), new_cert_pem.as_bytes());
    common::wait_until(
        "the new certificate to be served",
        Duration::from_secs(15),
        || served(dot, &roots) == new_cert,
    );
    let line = s.wait_log("TLS certificate replaced");
    assert!(line.contains("reloaded"), "{line}");
    // DoH takes it too.
    let q = QuerySpec::new("static.steer.test.", 1).to_bytes();
    let post = request(
        "POST",
        "/dns-query",
        "Content-Type: application/dns-message\r\n",
        &q,
    );
    let (status, _, _) = https(doh, &new_cert, &post);
    assert_eq!(status, 200);

    // A broken certificate: the reload is rejected at the config line, the last
    // good certificate keeps serving.
    replace(&setup.dir.0.join("cert.pem"), b"not a certificate\n");
    let line = s.wait_log("no \"BEGIN CERTIFICATE\" block");
    assert!(line.contains("reload rejected"), "{line}");
    assert!(line.contains("server.toml:"), "{line}");
    assert_eq!(served(dot, &roots), new_cert);
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("static.steer.test.", 1)).rcode,
        "NOERROR"
    );
}

#[test]
fn idle_sessions_are_closed_and_the_longest_idle_makes_room_at_the_cap() {
    let setup = Setup::new("limits");
    let cfg = setup.config();
    let text = std::fs::read_to_string(&cfg)
        .expect("read config")
        .replace("[dot]\n", "[dot]\nmax_connections = 1\n")
        .replace("[doh]\n", "[doh]\nmax_connections = 1\n")
        + "[tcp]\nidle_timeout = \"2s\"\n";
    std::fs::write(&cfg, text).expect("write config");
    let (s, dot, doh) = setup.start();
    for (at, alpn) in [(dot, &b"dot"[..]), (doh, &b"http/1.1"[..])] {
        let client = client(&[&setup.cert], alpn);
        let mut first = connect(at, client.clone());
        // Idle: the server closes the session, well before the client's 5 s timeout.
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        match first.read(&mut buf) {
            Ok(0) => {}
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("{at}: idle session not closed: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{at}: closed only after {:?}",
            started.elapsed()
        );
        // At the cap (1), a newcomer is served and the idle session closed for it,
        // well before its idle timeout.
        let started = std::time::Instant::now();
        let mut idle = connect(at, client.clone());
        let _newcomer = try_connect(at, client.clone())
            .unwrap_or_else(|e| panic!("{at}: a session at the cap was refused: {e}"));
        match idle.read(&mut buf) {
            Ok(0) => {}
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            other => panic!("{at}: idle session kept at the cap: {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{at}: the idle session closed only after {:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("static.steer.test.", 1)).rcode,
        "NOERROR"
    );
}

#[test]
fn doh_over_http2_answers_many_streams_at_once() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let setup = Setup::new("h2");
    let (s, _, doh) = setup.start();
    let queries: Vec<(Vec<u8>, Vec<u8>)> = CASES
        .iter()
        .map(|(name, ecs)| {
            let q = ecs_query(name, *ecs).to_bytes();
            let over_tcp = common::tcp_exchange(s.addr, &q).expect("TCP answer");
            (q, over_tcp)
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = client(&[&setup.cert], b"h2");
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(doh).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        // 90 requests in flight at once on the one connection (the server allows 100).
        let mut tasks = Vec::new();
        for i in 0..90 {
            let (q, want) = queries[i % queries.len()].clone();
            let mut sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                let req = http::Request::post("https://localhost/dns-query")
                    .header("content-type", "application/dns-message")
                    .body(Full::new(Bytes::from(q)))
                    .expect("request");
                let resp = tokio::time::timeout(common::ANSWER_WAIT, sender.send_request(req))
                    .await
                    .expect("an answer in time")
                    .expect("a response");
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.to_vec(), want, "stream {i}: the TCP path's bytes");
            }));
        }
        for t in tasks {
            t.await.expect("stream task");
        }
    });
}
