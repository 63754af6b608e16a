//! Test support: run the real `signpost` binary on loopback, send queries over real
//! UDP and TCP sockets, and decode responses with hickory-proto, a parser independent
//! of ours.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::EdnsOption;

/// How long a test waits for the server to come up or to answer before failing.
pub const WAIT: Duration = Duration::from_secs(30);
pub const ANSWER_WAIT: Duration = Duration::from_secs(5);

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A `signpost serve` process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The admin endpoint, when started with `--admin`.
    pub admin: Option<SocketAddr>,
    /// Log lines after the ready line, as they arrive.
    pub log: mpsc::Receiver<String>,
    /// Log lines before the ready line (the load's).
    pub early: Vec<String>,
}

impl Server {
    /// Runs `signpost ctl --admin ADMIN ARGS...` against this server's admin
    /// endpoint; its standard output, which must come with success.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
            .args(["ctl", "--admin", &self.admin.expect("admin").to_string()])
            .args(args)
            .output()
            .expect("ctl");
        assert!(
            out.status.success(),
            "ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `signpost serve --listen 127.0.0.1:0 ARGS...` and waits for its ready line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// Like `start`, with extra environment variables for the server.
    pub fn start_env(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
        cmd.args(args);
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
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let addr: SocketAddr = addr.parse().expect("ready line address");
                        let admin = line
                            .split("admin on ")
                            .nth(1)
                            .and_then(|r| r.split_whitespace().next())
                            .and_then(|a| a.parse().ok());
                        return Server {
                            child,
                            addr,
                            admin,
                            log: rx,
                            early: seen,
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "signpost did not become ready; it said:\n{}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line containing `needle`, up to `WAIT`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line containing {needle:?}"),
            }
        }
    }

    /// The log line before the ready line that contains `needle`.
    pub fn early_log(&self, needle: &str) -> String {
        match self.early.iter().find(|l| l.contains(needle)) {
            Some(l) => l.clone(),
            None => panic!(
                "no line containing {needle:?} before the ready line:\n{}",
                self.early.join("\n")
            ),
        }
    }

    /// True while the process is running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// EDNS settings of a test query.
#[derive(Debug, Clone, Default)]
pub struct EdnsSpec {
    pub payload: u16,
    pub dnssec_ok: bool,
    pub nsid: bool,
    pub ecs: Option<(IpAddr, u8)>,
    pub version: u8,
}

/// A query to build by hand, so tests can send what a library would refuse to.
#[derive(Debug, Clone)]
pub struct QuerySpec {
    pub id: u16,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    pub rd: bool,
    pub cd: bool,
    pub edns: Option<EdnsSpec>,
}

impl QuerySpec {
    pub fn new(name: &str, qtype: u16) -> QuerySpec {
        QuerySpec {
            id: 0x5150,
            name: name.to_string(),
            qtype,
            qclass: 1,
            rd: false,
            cd: false,
            edns: None,
        }
    }

    pub fn with_edns(mut self) -> QuerySpec {
        self.edns = Some(EdnsSpec {
            payload: 1232,
            ..EdnsSpec::default()
        });
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.id.to_be_bytes());
        let mut flags: u16 = 0;
        if self.rd {
            flags |= 0x0100;
        }
        if self.cd {
            flags |= 0x0010;
        }
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&(self.edns.is_some() as u16).to_be_bytes());
        p.extend_from_slice(&name_wire(&self.name));
        p.extend_from_slice(&self.qtype.to_be_bytes());
        p.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some(e) = &self.edns {
            p.extend_from_slice(&opt_record(e));
        }
        p
    }
}

/// A presentation name (no escapes) to wire format, keeping its letter case.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() {
            continue;
        }
        w.push(label.len() as u8);
        w.extend_from_slice(label.as_bytes());
    }
    w.push(0);
    w
}

pub fn opt_record(e: &EdnsSpec) -> Vec<u8> {
    let mut opts = Vec::new();
    if e.nsid {
        opts.extend_from_slice(&[0, 3, 0, 0]);
    }
    if let Some((addr, prefix)) = e.ecs {
        let (family, bytes): (u16, Vec<u8>) = match addr {
            IpAddr::V4(a) => (1, a.octets().to_vec()),
            IpAddr::V6(a) => (2, a.octets().to_vec()),
        };
        let n = (prefix as usize).div_ceil(8);
        opts.extend_from_slice(&8u16.to_be_bytes());
        opts.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        opts.extend_from_slice(&family.to_be_bytes());
        opts.push(prefix);
        opts.push(0);
        opts.extend_from_slice(&bytes[..n]);
    }
    let mut r = vec![0u8];
    r.extend_from_slice(&41u16.to_be_bytes());
    r.extend_from_slice(&e.payload.to_be_bytes());
    r.push(0);
    r.push(e.version);
    r.extend_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    r.extend_from_slice(&(opts.len() as u16).to_be_bytes());
    r.extend_from_slice(&opts);
    r
}

/// Sends one datagram and waits up to `ANSWER_WAIT` for the reply.
pub fn udp_exchange(addr: SocketAddr, pkt: &[u8]) -> Option<Vec<u8>> {
    udp_exchange_wait(addr, pkt, ANSWER_WAIT)
}

pub fn udp_exchange_wait(addr: SocketAddr, pkt: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(wait)).expect("timeout");
    sock.send_to(pkt, addr).expect("send");
    let mut buf = vec![0u8; 65535];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends one message over a new TCP connection and reads one reply.
pub fn tcp_exchange(addr: SocketAddr, pkt: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, ANSWER_WAIT).ok()?;
    s.set_read_timeout(Some(ANSWER_WAIT)).ok()?;
    tcp_send(&mut s, pkt)?;
    tcp_read(&mut s)
}

pub fn tcp_send(s: &mut TcpStream, pkt: &[u8]) -> Option<()> {
    let mut framed = (pkt.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(pkt);
    s.write_all(&framed).ok()
}

pub fn tcp_read(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg).ok()?;
    Some(msg)
}

/// A response as the tests compare it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub id: u16,
    /// Full rcode, extended bits from OPT included, as its mnemonic.
    pub rcode: String,
    /// Header flags that are set, in dig's order: qr aa tc rd ra ad cd.
    pub flags: Vec<&'static str>,
    /// The question name exactly as echoed.
    pub qname: Option<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub opt: bool,
    pub ecs: Option<(IpAddr, u8, u8)>,
    pub nsid: Option<Vec<u8>>,
    pub payload: u16,
    pub size: usize,
}

pub fn decode(bytes: &[u8]) -> Decoded {
    let m = Message::from_vec(bytes).unwrap_or_else(|e| {
        panic!("response does not parse with hickory-proto: {e}; bytes {bytes:02x?}")
    });
    let md = &m.metadata;
    let mut flags = vec!["qr"];
    if md.authoritative {
        flags.push("aa");
    }
    if md.truncation {
        flags.push("tc");
    }
    if md.recursion_desired {
        flags.push("rd");
    }
    if md.recursion_available {
        flags.push("ra");
    }
    if md.authentic_data {
        flags.push("ad");
    }
    if md.checking_disabled {
        flags.push("cd");
    }
    let fmt = |rs: &[hickory_proto::rr::Record]| rs.iter().map(|r| r.to_string()).collect();
    let mut ecs = None;
    let mut nsid = None;
    if let Some(e) = &m.edns {
        for (_, o) in e.options().as_ref() {
            match o {
                EdnsOption::Subnet(cs) => {
                    ecs = Some((cs.addr(), cs.source_prefix(), cs.scope_prefix()))
                }
                EdnsOption::NSID(n) => nsid = Some(n.as_ref().to_vec()),
                _ => {}
            }
        }
    }
    // Extended rcode: upper 8 bits from OPT (RFC 6891 §6.1.3).
    let low = u16::from(bytes[3] & 0x0f);
    let high = m
        .edns
        .as_ref()
        .map(|e| u16::from(e.rcode_high()))
        .unwrap_or(0);
    let code = (high << 4) | low;
    let rcode = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        16 => "BADVERS",
        _ => "OTHER",
    }
    .to_string();
    Decoded {
        id: md.id,
        rcode,
        flags,
        qname: m.queries.first().map(|q| q.name().to_string()),
        answer: fmt(&m.answers),
        authority: fmt(&m.authorities),
        additional: fmt(&m.additionals),
        opt: m.edns.is_some(),
        ecs,
        nsid,
        payload: m.edns.as_ref().map(|e| e.max_payload()).unwrap_or(0),
        size: bytes.len(),
    }
}

/// Queries over UDP and decodes, failing the test if nothing comes back.
pub fn ask_udp(addr: SocketAddr, q: &QuerySpec) -> Decoded {
    let r = udp_exchange(addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no UDP answer to {} {}", q.name, q.qtype));
    decode(&r)
}

pub fn ask_tcp(addr: SocketAddr, q: &QuerySpec) -> Decoded {
    let r = tcp_exchange(addr, &q.to_bytes())
        .unwrap_or_else(|| panic!("no TCP answer to {} {}", q.name, q.qtype));
    decode(&r)
}

/// One HTTP/1.1 request to the admin endpoint; returns status and body. It asks
/// for `Connection: close` (the endpoint keeps connections alive otherwise) and
/// reads to the end. It names the endpoint as its `Host` and carries the
/// `X-Signpost-Request` header a change needs, as `signpost ctl` does.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    http_raw(
        addr,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-Signpost-Request: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

pub fn http_raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, ANSWER_WAIT).expect("connect admin");
    s.set_read_timeout(Some(ANSWER_WAIT)).expect("timeout");
    s.write_all(request).expect("write");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// A health-check backend's loop: answers each HTTP request on `listener` (set
/// non-blocking) with 200 when `ok(peer)` says so, else 503, until `stop`.
pub fn serve_health(
    listener: std::net::TcpListener,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ok: impl Fn(SocketAddr) -> bool + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((mut c, peer)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let status = if ok(peer) {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let _ = c.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                    .as_bytes(),
            );
        }
    })
}

/// A scratch folder with a `zones/` inside, removed when dropped.
pub struct Dir(pub PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh scratch folder for one test (`suite` and `tag` keep tests apart).
pub fn dir(suite: &str, tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("signpost-{suite}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(p.join("zones")).expect("mkdir");
    Dir(p)
}

/// Polls `f` every 10 ms until it holds; fails the test after `limit`.
/// Returns how long it took.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// `signpost serve --zones ZONES --admin 127.0.0.1:0 EXTRA...`.
pub fn start_with_admin(zones: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--zones",
        zones.to_str().expect("path"),
        "--admin",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}
