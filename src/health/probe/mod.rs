//! Probes: one attempt at one target, reported raw. They never decide up or down;
//! the state machine does (see `state`).
//!
//! A probe that fails for want of something of ours (no descriptor, no buffer, no
//! local address: EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL) says nothing about
//! the target: [`attempt`] reports it as [`Attempt::Local`], which the scheduler
//! counts and logs but never feeds to the state machine, so the verdict holds.
//! The connection caps keep descriptors back for probes (`fit_descriptors`), so
//! this is the exception.

mod dns;
mod http;
mod prometheus;

pub(crate) use prometheus::{attempt as metric_attempt, figure};
mod tcp;
mod tls;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::spec::{CheckKind, CheckSpec};
use super::state::ProbeResult;

/// Why a probe failed. Its text becomes [`ProbeResult::detail`], so each message
/// is written for an operator reading a log line or `/status`.
#[derive(Debug, Error)]
pub enum ProbeError {
    #[error("no local resource for the probe (ours, not the target's): {0}")]
    Local(io::Error),
    #[error("connect refused")]
    Refused,
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connection reset")]
    Reset,
    #[error("send failed: {0}")]
    Send(io::Error),
    #[error("receive failed: {0}")]
    Receive(io::Error),
    #[error("closed before {0}")]
    Closed(&'static str),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("TLS setup failed: {0}")]
    TlsSetup(String),
    #[error("bad check: {0}")]
    BadCheck(String),
    #[error("bad HTTP response: {0}")]
    BadHttp(String),
    #[error("HTTP {0}")]
    Status(u16),
    #[error("HTTP {status}, body lacks {needle:?}")]
    Body { status: u16, needle: String },
    #[error("HTTP {status}, first {limit_kib} KiB of the body lack {needle:?}")]
    BodyLimit {
        status: u16,
        needle: String,
        limit_kib: usize,
    },
    #[error("reply {got} does not start with {want}")]
    Banner { got: String, want: String },
    #[error("bad DNS response: {0}")]
    BadDns(String),
    #[error("reply truncated over UDP; over TCP: {0}")]
    TcpRetry(Box<ProbeError>),
    #[error("DNS {got}, want {want}")]
    Rcode { got: String, want: String },
    #[error("DNS {rcode}, no answer contains {needle:?}{truncated}")]
    Answer {
        rcode: String,
        needle: String,
        /// Said when the reply was truncated, since the missing answer may be
        /// among the records that did not fit.
        truncated: &'static str,
    },
}

/// True for an error that says this host lacks something (a descriptor, buffer
/// space, memory, the source address), not that the target failed.
pub(crate) fn is_local(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
        )
    }
    #[cfg(not(unix))]
    {
        matches!(
            e.kind(),
            io::ErrorKind::OutOfMemory | io::ErrorKind::AddrNotAvailable
        )
    }
}

impl ProbeError {
    fn connect(e: io::Error) -> Self {
        if is_local(&e) {
            return ProbeError::Local(e);
        }
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ProbeError::Refused,
            _ => ProbeError::Connect(e),
        }
    }

    fn receive(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionReset => ProbeError::Reset,
            _ => ProbeError::Receive(e),
        }
    }

    fn send(e: io::Error) -> Self {
        if is_local(&e) {
            return ProbeError::Local(e);
        }
        match e.kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => ProbeError::Reset,
            _ => ProbeError::Send(e),
        }
    }
}

/// One probe's outcome: a result about the target, or a failure of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// What the target did: the state machine's input.
    Judged(ProbeResult),
    /// The probe could not be made here (see [`is_local`]); not a verdict.
    Local(String),
    /// A metric check's server could not be asked, or gave no answer to judge
    /// (see `prometheus`); not a verdict on the target either.
    Unanswered(String),
}

/// Runs one probe of `spec` against `target`, bounded by `spec.timeout` as a whole
/// (connect, handshake, request and reply together).
///
/// `target` is used as given, port included; [`super::TargetKey::new`] builds it
/// from an endpoint address and the check's port.
pub async fn attempt(spec: &CheckSpec, target: SocketAddr) -> Attempt {
    if let CheckKind::Prometheus(m) = &spec.kind {
        return prometheus::attempt(m, spec.timeout).await;
    }
    let start = Instant::now();
    let outcome = tokio::time::timeout(spec.timeout, run(&spec.kind, target)).await;
    let latency = start.elapsed();
    let result = match outcome {
        Ok(Err(ProbeError::Local(e))) => {
            return Attempt::Local(ProbeError::Local(e).to_string());
        }
        Ok(Err(ProbeError::TcpRetry(inner))) if matches!(*inner, ProbeError::Local(_)) => {
            return Attempt::Local(inner.to_string());
        }
        Ok(Ok(detail)) => ProbeResult {
            ok: true,
            latency,
            detail,
        },
        Ok(Err(e)) => ProbeResult {
            ok: false,
            latency,
            detail: e.to_string(),
        },
        Err(_) => ProbeResult {
            ok: false,
            latency,
            detail: format!("timeout after {}", fmt_duration(spec.timeout)),
        },
    };
    Attempt::Judged(result)
}

/// [`attempt`] as a plain result: a failure of ours reads as a failed probe with
/// its reason (for one-off probes; the scheduler uses [`attempt`]).
pub async fn probe(spec: &CheckSpec, target: SocketAddr) -> ProbeResult {
    let start = Instant::now();
    match attempt(spec, target).await {
        Attempt::Judged(r) => r,
        Attempt::Local(detail) | Attempt::Unanswered(detail) => ProbeResult {
            ok: false,
            latency: start.elapsed(),
            detail,
        },
    }
}

/// Metric checks whose server could not be asked or gave nothing to judge, since
/// start; verdicts were kept.
static UNANSWERED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`UNANSWERED`].
pub fn unanswered() -> u64 {
    UNANSWERED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts a metric check left unanswered; returns the count so far.
pub(crate) fn count_unanswered() -> u64 {
    UNANSWERED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

/// The pace of a metric asked on a timer (a ramp's gate, a region's load):
/// every `interval`, at least 100 ms apart, ticks missed while asking are
/// not made up.
pub(crate) struct MetricTicker {
    tick: tokio::time::Interval,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl MetricTicker {
    pub(crate) fn new(interval: Duration, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        MetricTicker { tick, stop }
    }

    /// Waits for the next tick; false once `stop` holds true (or its sender
    /// is gone), which wins over a tick that is due.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.stop.wait_for(|s| *s) => false,
            _ = self.tick.tick() => true,
        }
    }
}

/// A run of unanswered asks of one metric, each counted in [`UNANSWERED`]:
/// the caller logs it at 1, 2, 4, ... in a row and once when it ends.
#[derive(Debug, Default)]
pub(crate) struct UnansweredRun(u64);

impl UnansweredRun {
    /// An answer came: the length of the run it ends, if there was one.
    pub(crate) fn answered(&mut self) -> Option<u64> {
        (self.0 > 0).then(|| std::mem::take(&mut self.0))
    }

    /// No answer: counts it; the run's length when it is one to log.
    pub(crate) fn missed(&mut self) -> Option<u64> {
        count_unanswered();
        self.0 += 1;
        self.0.is_power_of_two().then_some(self.0)
    }
}

/// Probes that could not be made for want of a local resource, since start.
static LOCAL_FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Probes that could not be made for want of a local resource, since start.
pub fn local_failures() -> u64 {
    LOCAL_FAILURES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Counts a probe that could not be made; returns the count so far.
pub(crate) fn count_local_failure() -> u64 {
    LOCAL_FAILURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

async fn run(kind: &CheckKind, target: SocketAddr) -> Result<String, ProbeError> {
    match kind {
        CheckKind::Http {
            method,
            path,
            host,
            port: _,
            expect,
            body_contains,
            tls,
        } => {
            let default_port = if tls.is_some() { 443 } else { 80 };
            let host_header = match host {
                Some(h) => h.clone(),
                None => host_of(target, default_port),
            };
            let req = http::Request {
                method,
                path,
                host: &host_header,
                expect,
                body_contains: body_contains.as_deref(),
            };
            let stream = connect(target).await?;
            match tls {
                None => http::exchange(stream, &req).await,
                Some(t) => {
                    let name = t
                        .sni
                        .clone()
                        .unwrap_or_else(|| strip_port(&host_header).to_string());
                    let stream = tls::handshake(stream, &name, t.verify).await?;
                    http::exchange(stream, &req).await
                }
            }
        }
        CheckKind::Tcp {
            port: _,
            send,
            expect_prefix,
        } => {
            let stream = connect(target).await?;
            tcp::exchange(stream, send.as_deref(), expect_prefix.as_deref()).await
        }
        CheckKind::Dns {
            port: _,
            qname,
            qtype,
            expect_rcode,
            expect_answer,
        } => {
            dns::query(
                target,
                qname,
                *qtype,
                *expect_rcode,
                expect_answer.as_deref(),
            )
            .await
        }
        // Asked by `attempt` before this; never here.
        CheckKind::Prometheus(m) => Err(ProbeError::BadCheck(format!(
            "metric query {:?} is not a connection probe",
            m.query
        ))),
    }
}

/// Checks that `kind`'s request can be sent at all (an HTTP method, path and Host
/// header hyper accepts; a query name hickory can encode), so that a check file
/// with a bad one is refused at load with file:line instead of failing every probe.
pub fn check_request(kind: &CheckKind) -> Result<(), ProbeError> {
    match kind {
        CheckKind::Http {
            method,
            path,
            host,
            expect,
            body_contains,
            ..
        } => {
            // Without a host the target's address is used, which is always valid.
            let host = host.as_deref().unwrap_or("192.0.2.1");
            let req = http::Request {
                method,
                path,
                host,
                expect,
                body_contains: body_contains.as_deref(),
            };
            req.build().map(drop)
        }
        CheckKind::Dns { qname, qtype, .. } => dns::build_query(0, qname, *qtype).map(drop),
        CheckKind::Tcp { .. } => Ok(()),
        CheckKind::Prometheus(m) => prometheus::request_uri(m)
            .map(drop)
            .map_err(ProbeError::BadCheck),
    }
}

/// The local address probes leave from, set once at start from the server
/// config's `probe_source`. Process-wide because every probe of the process
/// leaves from the same host interface.
static SOURCE: OnceLock<IpAddr> = OnceLock::new();

/// Makes probes bind `ip` before connecting (to targets of its family; others
/// still leave from the kernel's choice). The first call wins.
pub fn set_probe_source(ip: IpAddr) {
    let _ = SOURCE.set(ip);
}

/// Where a probe to `target` binds: the configured source when it has the
/// target's family, else the unspecified address of that family.
pub(crate) fn bind_addr(target: SocketAddr) -> SocketAddr {
    match (SOURCE.get(), target) {
        (Some(ip @ IpAddr::V4(_)), SocketAddr::V4(_))
        | (Some(ip @ IpAddr::V6(_)), SocketAddr::V6(_)) => SocketAddr::new(*ip, 0),
        (_, SocketAddr::V4(_)) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        (_, SocketAddr::V6(_)) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

async fn connect(target: SocketAddr) -> Result<TcpStream, ProbeError> {
    let stream = if SOURCE.get().is_some() {
        let socket = match target {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(ProbeError::connect)?;
        socket
            .bind(bind_addr(target))
            .map_err(ProbeError::connect)?;
        socket.connect(target).await
    } else {
        TcpStream::connect(target).await
    }
    .map_err(ProbeError::connect)?;
    // Requests are one small write; do not hold it back waiting for an ACK.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The Host header for a target known only by address (RFC 9110 §7.2: the port is
/// omitted when it is the scheme's default; RFC 3986 §3.2.2: IPv6 in brackets).
fn host_of(target: SocketAddr, default_port: u16) -> String {
    let ip = match target {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    if target.port() == default_port {
        ip
    } else {
        format!("{ip}:{}", target.port())
    }
}

/// A Host header without its port, and an IPv6 literal without its brackets: the
/// form a TLS server name takes.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// "2s", "150ms", "1.5s": short, for log lines.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Printable text of bytes a server sent, for a detail line: ASCII as is, the rest
/// escaped, at most 32 bytes.
fn show_bytes(b: &[u8]) -> String {
    let cut = &b[..b.len().min(32)];
    let mut s: String = cut.escape_ascii().to_string();
    if b.len() > cut.len() {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unanswered_run_is_logged_at_powers_of_two_and_when_it_ends() {
        let mut run = UnansweredRun::default();
        assert_eq!(run.answered(), None, "no run to end");
        let logged: Vec<Option<u64>> = (0..5).map(|_| run.missed()).collect();
        assert_eq!(logged, [Some(1), Some(2), None, Some(4), None]);
        assert_eq!(run.answered(), Some(5));
        assert_eq!(run.answered(), None);
        assert_eq!(run.missed(), Some(1), "a new run starts at one");
    }

    #[test]
    fn host_header_forms() {
        assert_eq!(host_of("192.0.2.1:80".parse().unwrap(), 80), "192.0.2.1");
        assert_eq!(
            host_of("192.0.2.1:8080".parse().unwrap(), 80),
            "192.0.2.1:8080"
        );
        assert_eq!(
            host_of("[2001:db8::1]:443".parse().unwrap(), 443),
            "[2001:db8::1]"
        );
        assert_eq!(
            host_of("[2001:db8::1]:8443".parse().unwrap(), 443),
            "[2001:db8::1]:8443"
        );
    }

    #[test]
    fn server_name_from_host() {
        assert_eq!(strip_port("www.example.com:8443"), "www.example.com");
        assert_eq!(strip_port("www.example.com"), "www.example.com");
        assert_eq!(strip_port("[2001:db8::1]:8443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
    }

    #[test]
    fn our_failures_are_told_from_the_targets() {
        for code in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::EADDRNOTAVAIL,
        ] {
            let e = ProbeError::connect(io::Error::from_raw_os_error(code));
            assert!(matches!(e, ProbeError::Local(_)), "{code}: {e}");
        }
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(matches!(ProbeError::connect(refused), ProbeError::Refused));
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
        assert_eq!(fmt_duration(Duration::from_millis(150)), "150ms");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn bytes_are_shown_escaped_and_cut() {
        assert_eq!(show_bytes(b"SSH-2.0\r\n"), "\"SSH-2.0\\r\\n\"");
        assert!(show_bytes(&[b'a'; 40]).ends_with("...\""));
    }
}
