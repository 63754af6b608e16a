//! dnstap output read back by a real collector: `fstrm_capture` (Debian's
//! fstrm-bin) writes what signpost sends to a file, which the test decodes with
//! protobuf structs derived from dnstap.proto here (independent of the server's
//! hand-written encoder) and with `dnstap-ldns` (Debian's dnstap-ldns). Also: the
//! queries answered while the collector is down, the drops counted, and the
//! reconnection once it is back.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ask_tcp, ask_udp, dir, http, wait_until, EdnsSpec, QuerySpec, Server};
use prost::Message as _;

/// dnstap.proto's `Dnstap` and `Message`, the fields this test reads.
#[derive(Clone, PartialEq, prost::Message)]
struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    extra: Option<Vec<u8>>,
    #[prost(message, optional, tag = "14")]
    message: Option<Msg>,
    #[prost(int32, required, tag = "15")]
    r#type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(int32, required, tag = "1")]
    r#type: i32,
    #[prost(int32, optional, tag = "2")]
    socket_family: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    query_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    query_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    query_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "10")]
    query_message: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    response_time_sec: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "14")]
    response_message: Option<Vec<u8>>,
}

const AUTH_QUERY: i32 = 1;
const AUTH_RESPONSE: i32 = 2;

fn need(cmd: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{cmd} is missing: install Debian's {package} (benches/install-peers.sh --ci)"
    );
}

/// `fstrm_capture` reading dnstap on a Unix socket into a file; stopped (and its
/// file closed) by `finish`, killed when dropped.
struct Capture {
    child: Child,
    sock: PathBuf,
    file: PathBuf,
}

impl Capture {
    fn start(sock: &Path, file: &Path) -> Capture {
        need("fstrm_capture", "fstrm-bin");
        let _ = std::fs::remove_file(sock);
        let child = Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(sock)
            .arg("-w")
            .arg(file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fstrm_capture");
        wait_until("fstrm_capture's socket", common::WAIT, || sock.exists());
        Capture {
            child,
            sock: sock.to_path_buf(),
            file: file.to_path_buf(),
        }
    }

    /// SIGTERM, and wait for the file to be closed; returns its path.
    fn finish(mut self) -> PathBuf {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data frames of a Frame Streams file, decoded.
fn read_frames(file: &Path) -> Vec<Dnstap> {
    let bytes = std::fs::read(file).expect("the capture file");
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    let u32_at = |b: &[u8]| u32::from_be_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    while rest.len() >= 4 {
        let len = u32_at(rest);
        rest = &rest[4..];
        if len == 0 {
            // A control frame: its length, then its body.
            let clen = u32_at(rest);
            rest = &rest[4 + clen..];
            continue;
        }
        out.push(Dnstap::decode(&rest[..len]).expect("a dnstap message"));
        rest = &rest[len..];
    }
    out
}

fn metric(s: &Server, name: &str) -> u64 {
    let (_, body) = http(s.admin.expect("admin"), "GET", "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

fn ecs_query(name: &str, subnet: &str) -> QuerySpec {
    let (a, p) = subnet.split_once('/').expect("subnet");
    let mut q = QuerySpec::new(name, 1);
    q.edns = Some(EdnsSpec {
        payload: 1232,
        ecs: Some((a.parse().expect("addr"), p.parse().expect("prefix"))),
        ..EdnsSpec::default()
    });
    q
}

fn start_server(d: &Path, top: &str, dnstap: &str) -> Server {
    let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
    let cfg = d.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "{top}\n[geo]\ndatabase = {:?}\n\n[dnstap]\n{dnstap}\n",
            geo.to_str().expect("path")
        ),
    )
    .expect("config");
    let zones = common::repo_path("tests/zones/steer");
    Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ])
}

#[test]
fn messages_reach_fstrm_capture_with_the_decision_and_survive_its_restart() {
    let d = dir("dnstap", "unix");
    let sock = d.0.join("tap.sock");
    let cap = Capture::start(&sock, &d.0.join("one.fstrm"));
    let s = start_server(
        &d.0,
        "",
        &format!(
            "socket = {:?}\nqueue = 8\nidentity = \"ns-test\"",
            sock.to_str().expect("path")
        ),
    );
    wait_until("the connection to the collector", common::WAIT, || {
        metric(&s, "signpost_dnstap_connected") == 1
    });

    // A fenced client (DE, in the EU) for a steered name, over UDP and TCP; and a
    // static name.
    let q = ecs_query("resident.steer.test.", "198.19.17.0/24");
    assert_eq!(ask_udp(s.addr, &q).rcode, "NOERROR");
    assert_eq!(ask_tcp(s.addr, &q).rcode, "NOERROR");
    assert_eq!(
        ask_udp(s.addr, &QuerySpec::new("static.steer.test.", 1)).rcode,
        "NOERROR"
    );
    wait_until("three queries written", common::WAIT, || {
        metric(&s, "signpost_dnstap_written_total") >= 3
    });
    let file = cap.finish();

    let frames = read_frames(&file);
    assert_eq!(frames.len(), 6, "an AUTH_QUERY and an AUTH_RESPONSE each");
    let kinds: Vec<i32> = frames
        .iter()
        .map(|f| f.message.as_ref().expect("message").r#type)
        .collect();
    assert_eq!(kinds.iter().filter(|&&k| k == AUTH_QUERY).count(), 3);
    assert_eq!(kinds.iter().filter(|&&k| k == AUTH_RESPONSE).count(), 3);
    for f in &frames {
        let m = f.message.as_ref().expect("message");
        assert_eq!(f.identity.as_deref(), Some(&b"ns-test"[..]));
        assert!(f
            .version
            .as_deref()
            .is_some_and(|v| v.starts_with(b"signpost ")));
        assert_eq!(m.socket_family, Some(1));
        assert_eq!(m.query_address.as_deref(), Some(&[127u8, 0, 0, 1][..]));
        assert!(m.query_time_sec.is_some_and(|t| t > 1_600_000_000));
        assert!(m.query_time_nsec.is_some());
        if m.r#type == AUTH_QUERY {
            assert!(m.query_message.as_ref().is_some_and(|q| q.len() > 12));
        } else {
            assert!(m.response_time_sec.is_some());
            let r = m.response_message.as_ref().expect("response");
            assert_eq!(r[2] & 0x80, 0x80, "QR set in the response");
        }
    }
    // The steered answers carry the decision, over both transports; the static
    // one nothing.
    let extras: Vec<(Option<i32>, String)> = frames
        .iter()
        .filter_map(|f| {
            let m = f.message.as_ref()?;
            (m.r#type == AUTH_RESPONSE).then(|| {
                let e = f.extra.as_deref().unwrap_or_default();
                (m.socket_protocol, String::from_utf8_lossy(e).into_owned())
            })
        })
        .collect();
    let want = "region=eu-west;reason=rule;fence=EU;scope=23";
    assert!(extras.contains(&(Some(1), want.to_string())), "{extras:?}");
    assert!(extras.contains(&(Some(2), want.to_string())), "{extras:?}");
    assert!(extras.contains(&(Some(1), String::new())), "{extras:?}");
    // The UDP messages name the client's port.
    assert!(frames.iter().any(|f| f
        .message
        .as_ref()
        .is_some_and(|m| m.socket_protocol == Some(1) && m.query_port.is_some())));

    // A real decoder reads the same file.
    need("dnstap-ldns", "dnstap-ldns");
    let out = Command::new("dnstap-ldns")
        .arg("-r")
        .arg(&file)
        .arg("-y")
        .output()
        .expect("dnstap-ldns");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "dnstap-ldns: {text}");
    assert_eq!(text.matches("type: AUTH_QUERY").count(), 3, "{text}");
    assert_eq!(text.matches("type: AUTH_RESPONSE").count(), 3, "{text}");
    assert!(text.contains("resident.steer.test."), "{text}");

    // The collector is gone: every query is still answered, and what does not
    // fit the queue (8) is counted as dropped.
    for i in 0..40u16 {
        let mut q = QuerySpec::new("static.steer.test.", 1);
        q.id = i;
        assert_eq!(ask_udp(s.addr, &q).rcode, "NOERROR", "query {i}");
    }
    wait_until("drops counted", common::WAIT, || {
        metric(&s, "signpost_dnstap_dropped_total") >= 40 - 8
    });

    // Back: the writer reconnects on its own and what is sent next arrives.
    let cap = Capture::start(&sock, &d.0.join("two.fstrm"));
    wait_until("the reconnection", Duration::from_secs(20), || {
        metric(&s, "signpost_dnstap_connects_total") >= 2
    });
    let written = metric(&s, "signpost_dnstap_written_total");
    let q = ecs_query("place.steer.test.", "198.19.17.0/24");
    assert_eq!(ask_udp(s.addr, &q).rcode, "NOERROR");
    wait_until("the query after the restart written", common::WAIT, || {
        metric(&s, "signpost_dnstap_written_total") > written
    });
    let frames = read_frames(&cap.finish());
    let after: Vec<String> = frames
        .iter()
        .filter_map(|f| f.extra.as_deref())
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    assert!(
        after.contains(&"region=eu-central;reason=rule;fence=-;scope=24".to_string()),
        "{after:?}"
    );
}

#[test]
fn sampling_sends_one_query_in_n_to_a_tcp_collector() {
    need("fstrm_capture", "fstrm-bin");
    let d = dir("dnstap", "tcp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a: SocketAddr| a.port())
        .expect("a free port");
    let file = d.0.join("tcp.fstrm");
    let mut child = Command::new("fstrm_capture")
        .args(["-t", "protobuf:dnstap.Dnstap", "-a", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .arg("-w")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fstrm_capture");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_until("fstrm_capture listening", common::WAIT, || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    let s = start_server(
        &d.0,
        "udp_sockets_per_address = 1",
        &format!("address = \"{addr}\"\nsample = 10"),
    );
    for i in 0..50u16 {
        let mut q = QuerySpec::new("static.steer.test.", 1);
        q.id = i;
        assert_eq!(ask_udp(s.addr, &q).rcode, "NOERROR");
    }
    wait_until("five queries written", common::WAIT, || {
        metric(&s, "signpost_dnstap_written_total") >= 5
    });
    assert_eq!(metric(&s, "signpost_dnstap_dropped_total"), 0);
    drop(s);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let _ = child.wait();
    let frames = read_frames(&file);
    // 50 queries on one UDP thread: one in ten.
    let queries = frames
        .iter()
        .filter(|f| f.message.as_ref().is_some_and(|m| m.r#type == AUTH_QUERY))
        .count();
    assert_eq!(queries, 5, "of 50 queries");
    assert!(frames.iter().all(|f| f
        .message
        .as_ref()
        .is_some_and(|m| m.socket_protocol == Some(1))));
}

/// Writes the server config whole, by rename (as editors do).
fn replace_config(cfg: &Path, text: &str) {
    let tmp = cfg.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, cfg).expect("rename");
}

#[test]
fn dnstap_is_started_changed_and_stopped_by_a_reload() {
    let d = dir("dnstap", "reload");
    let sock = d.0.join("tap.sock");
    let cap = Capture::start(&sock, &d.0.join("reload.fstrm"));
    let geo = common::repo_path("tests/fixtures/geo/city.mmdb");
    let base = format!("[geo]\ndatabase = {:?}\n", geo.to_str().expect("path"));
    let cfg = d.0.join("server.toml");
    replace_config(&cfg, &base);
    let zones = common::repo_path("tests/zones/steer");
    let s = Server::start(&[
        "--zones",
        zones.to_str().expect("path"),
        "--config",
        cfg.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ]);
    let ask = || {
        assert_eq!(
            ask_udp(s.addr, &QuerySpec::new("static.steer.test.", 1)).rcode,
            "NOERROR"
        )
    };
    ask();
    // Added by a reload: the queries after it are sent.
    let on = format!(
        "{base}\n[dnstap]\nsocket = {:?}\n",
        sock.to_str().expect("path")
    );
    replace_config(&cfg, &on);
    s.wait_log("dnstap output (re)started");
    ask();
    wait_until("the query written", common::WAIT, || {
        metric(&s, "signpost_dnstap_written_total") >= 1
    });
    // A bad table: rejected with its line; the output keeps running.
    replace_config(&cfg, &format!("{on}queue = 0\n"));
    let line = s.wait_log("reload rejected");
    assert!(line.contains("server.toml:6"), "{line}");
    ask();
    wait_until("the second query written", common::WAIT, || {
        metric(&s, "signpost_dnstap_written_total") >= 2
    });
    // Removed: stopped, what it held written; the queries after it are not sent.
    replace_config(&cfg, &base);
    s.wait_log("dnstap output stopped");
    ask();
    wait_until("the collector let go", common::WAIT, || {
        metric(&s, "signpost_dnstap_connected") == 0
    });
    let frames = read_frames(&cap.finish());
    assert_eq!(frames.len(), 4, "two queries, each a query and a response");
    assert_eq!(metric(&s, "signpost_dnstap_written_total"), 2);
}
