//! What a health check is: plain data, compared and hashed whole so that every
//! endpoint sharing the same check and address shares one probe.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::zone::rtype::Rtype;

/// One health check, as compiled from a zone policy file's `[checks.NAME]`.
///
/// Every field takes part in equality and hashing, so two names whose checks are
/// written the same way probe their shared address once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Time between the starts of two probes of one target.
    pub interval: Duration,
    /// A probe that has not finished after this long fails, whatever it was doing.
    pub timeout: Duration,
    /// Consecutive passes that bring a target up.
    pub rise: u32,
    /// Consecutive failures that take a target down.
    pub fall: u32,
    /// At most this much random delay is added to each interval, so targets started
    /// together drift apart instead of probing in lockstep.
    pub jitter: Duration,
    /// The state a target has before its first verdict (and with no saved state).
    pub initial: Initial,
    /// With a fleet: how many instances must see the target down; `None` takes
    /// `[fleet] quorum`. Unused without a fleet.
    pub quorum: Option<Quorum>,
}

/// How many of the reporting instances must see a target down for it to be
/// down. Integers, not a float share, so that a check stays hashable whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quorum {
    /// At least this many instances (or every reporting one, when fewer report).
    Count(u32),
    /// At least this share of the reporting instances, in thousandths (1..=1000).
    Permille(u16),
}

impl Quorum {
    /// Whether `down` of `reporting` votes make a target down. No votes: not down.
    pub(crate) fn is_down(self, down: usize, reporting: usize) -> bool {
        if down == 0 || reporting == 0 {
            return false;
        }
        match self {
            Quorum::Count(n) => down >= (n as usize).min(reporting),
            Quorum::Permille(p) => down * 1000 >= usize::from(p) * reporting,
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Count(n) => write!(f, "{n}"),
            Quorum::Permille(p) => write!(f, "{}%", f64::from(*p) / 10.0),
        }
    }
}

/// The state a target starts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Initial {
    /// Serve it until probes say otherwise: a restart does not empty the answers.
    #[default]
    Up,
    /// Hold it back until `rise` probes have passed.
    Down,
}

/// What a probe sends and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// An HTTP/1.1 request (HTTPS when `tls` is set).
    Http {
        method: String,
        path: String,
        /// The Host header (and, for HTTPS, the default SNI); the target's address
        /// when unset.
        host: Option<String>,
        port: u16,
        /// Status codes that pass; empty means any of 200..=399.
        expect: Vec<u16>,
        /// When set, the first 64 KiB of the body must contain this text.
        body_contains: Option<String>,
        tls: Option<Tls>,
    },
    /// A TCP connection, optionally with a request and an expected reply prefix.
    Tcp {
        port: u16,
        /// Bytes written once connected.
        send: Option<Vec<u8>>,
        /// The reply (a banner, or the answer to `send`) must start with these bytes.
        expect_prefix: Option<Vec<u8>>,
    },
    /// A DNS query over UDP, asked again over TCP when the reply is truncated.
    Dns {
        port: u16,
        qname: String,
        qtype: u16,
        expect_rcode: u8,
        /// Must appear within the presentation form of some answer's RDATA, e.g. an
        /// address: `192.0.2.1`.
        expect_answer: Option<String>,
    },
    /// A question to a Prometheus-compatible server's instant-query API, judged
    /// by a threshold on the answer (see `probe::prometheus`). The endpoint's own
    /// address is not contacted: it only tells one endpoint's target from another's.
    Prometheus(MetricQuery),
}

/// The longest PromQL a `prometheus` check may hold, checked at load: the
/// request stays far below any server's URL limit.
pub const MAX_METRIC_QUERY: usize = 4096;

/// What a `prometheus` check asks and how it reads the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricQuery {
    /// The server asked (its HTTP API, plain HTTP).
    pub server: SocketAddr,
    /// The instant-query path, `/api/v1/query` unless the server is behind a prefix.
    pub path: String,
    /// PromQL, sent as the `query` parameter.
    pub query: String,
    /// Down when a series' value is above this.
    pub down_above: Option<Threshold>,
    /// Down when a series' value is below this.
    pub down_below: Option<Threshold>,
    /// What an answer without any series (or only NaN) means.
    pub empty: Empty,
}

/// A threshold, compared and hashed by its bits so that a check stays hashable.
#[derive(Debug, Clone, Copy)]
pub struct Threshold(pub f64);

impl PartialEq for Threshold {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Threshold {}
impl std::hash::Hash for Threshold {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h)
    }
}

/// What an empty answer to a metric query means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Empty {
    /// A failing result: the series is gone, so is the thing it measures.
    Down,
    /// A passing result: the series only exists while something is wrong.
    Up,
    /// No result at all: counted and logged, the verdict holds (the default).
    #[default]
    Unknown,
}

impl fmt::Display for Empty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Empty::Down => "down",
            Empty::Up => "up",
            Empty::Unknown => "unknown",
        })
    }
}

/// TLS settings of an HTTPS check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tls {
    /// Server name sent in the handshake and checked against the certificate; the
    /// Host header (without a port), or the address, when unset.
    pub sni: Option<String>,
    /// Check the certificate chain against the bundled web PKI roots. Off only for
    /// targets known by address alone, whose certificates name no public host.
    pub verify: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            sni: None,
            verify: true,
        }
    }
}

impl CheckKind {
    /// The port the check connects to on each endpoint address.
    pub fn port(&self) -> u16 {
        match self {
            CheckKind::Http { port, .. }
            | CheckKind::Tcp { port, .. }
            | CheckKind::Dns { port, .. } => *port,
            CheckKind::Prometheus(m) => m.server.port(),
        }
    }
}

impl CheckSpec {
    /// A check with the timing defaults of the zone policy files: every 5 s, 2 s
    /// timeout, up after 2 passes, down after 3 failures, up to 1 s jitter.
    pub fn new(kind: CheckKind) -> Self {
        CheckSpec {
            kind,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 3,
            jitter: Duration::from_secs(1),
            initial: Initial::Up,
            quorum: None,
        }
    }
}

/// One probed thing: a check against one address. The unit the scheduler runs a
/// task for and the health table has a slot for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    pub check: CheckSpec,
    /// Where the probe connects, port included.
    pub addr: SocketAddr,
}

impl TargetKey {
    /// The check against `ip`, at the port the check names.
    pub fn new(check: CheckSpec, ip: IpAddr) -> Self {
        let addr = SocketAddr::new(ip, check.kind.port());
        TargetKey { check, addr }
    }

    /// A stable text name for what is probed, used as the key of saved state and in
    /// logs, e.g. `http:GET:/healthz@192.0.2.10:80`.
    ///
    /// It names the request and the address but not the timing (interval, timeout,
    /// rise, fall, jitter, initial): a target whose check only changed its timing is
    /// still the same service, so it keeps its saved health and overrides. Options
    /// beyond the common case follow as `;name=value`, values percent-encoded, so the
    /// text never depends on a Debug format.
    pub(crate) fn stable_key(&self) -> String {
        let mut s = String::new();
        match &self.check.kind {
            CheckKind::Http {
                method,
                path,
                host,
                port: _,
                expect,
                body_contains,
                tls,
            } => {
                s.push_str(if tls.is_some() { "https:" } else { "http:" });
                s.push_str(&encode(method));
                s.push(':');
                s.push_str(&encode(path));
                if let Some(h) = host {
                    let _ = write!(s, ";host={}", encode(h));
                }
                if !expect.is_empty() {
                    let codes: Vec<String> = expect.iter().map(u16::to_string).collect();
                    let _ = write!(s, ";expect={}", codes.join(","));
                }
                if let Some(b) = body_contains {
                    let _ = write!(s, ";body={}", encode(b));
                }
                if let Some(t) = tls {
                    if let Some(sni) = &t.sni {
                        let _ = write!(s, ";sni={}", encode(sni));
                    }
                    if !t.verify {
                        s.push_str(";verify=false");
                    }
                }
            }
            CheckKind::Tcp {
                port: _,
                send,
                expect_prefix,
            } => {
                s.push_str("tcp");
                if let Some(b) = send {
                    let _ = write!(s, ";send={}", hex(b));
                }
                if let Some(b) = expect_prefix {
                    let _ = write!(s, ";expect={}", hex(b));
                }
            }
            CheckKind::Dns {
                port: _,
                qname,
                qtype,
                expect_rcode,
                expect_answer,
            } => {
                let _ = write!(s, "dns:{}:{}", encode(qname), Rtype(*qtype));
                if *expect_rcode != 0 {
                    let _ = write!(s, ";rcode={expect_rcode}");
                }
                if let Some(a) = expect_answer {
                    let _ = write!(s, ";answer={}", encode(a));
                }
            }
            CheckKind::Prometheus(m) => {
                let _ = write!(s, "prometheus:{}", encode(&m.query));
                if let Some(t) = m.down_above {
                    let _ = write!(s, ";above={}", t.0);
                }
                if let Some(t) = m.down_below {
                    let _ = write!(s, ";below={}", t.0);
                }
                if m.empty != Empty::Unknown {
                    let _ = write!(s, ";empty={}", m.empty);
                }
                let _ = write!(s, ";server={}", encode(&m.server.to_string()));
                if m.path != "/api/v1/query" {
                    let _ = write!(s, ";path={}", encode(&m.path));
                }
            }
        }
        let _ = write!(s, "@{}", self.addr);
        s
    }
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stable_key())
    }
}

/// Percent-encodes everything but unreserved URL characters and `/`, so that the
/// separators of a stable key (`:`, `;`, `=`, `@`) never appear inside a value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b',') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> CheckKind {
        CheckKind::Http {
            method: "GET".into(),
            path: "/healthz".into(),
            host: None,
            port: 80,
            expect: vec![],
            body_contains: None,
            tls: None,
        }
    }

    #[test]
    fn key_of_plain_http_check() {
        let k = TargetKey::new(CheckSpec::new(http()), "192.0.2.10".parse().unwrap());
        assert_eq!(k.addr.port(), 80);
        assert_eq!(k.stable_key(), "http:GET:/healthz@192.0.2.10:80");
    }

    #[test]
    fn key_names_options_and_escapes_separators() {
        let kind = CheckKind::Http {
            method: "GET".into(),
            path: "/a b?x=1".into(),
            host: Some("www.example.com:8443".into()),
            port: 8443,
            expect: vec![200, 204],
            body_contains: Some("ok;@".into()),
            tls: Some(Tls {
                sni: Some("www.example.com".into()),
                verify: false,
            }),
        };
        let k = TargetKey::new(CheckSpec::new(kind), "2001:db8::1".parse().unwrap());
        assert_eq!(
            k.stable_key(),
            "https:GET:/a%20b%3Fx%3D1;host=www.example.com%3A8443;expect=200,204;\
             body=ok%3B%40;sni=www.example.com;verify=false@[2001:db8::1]:8443"
        );
    }

    #[test]
    fn key_ignores_timing_but_equality_does_not() {
        let a = CheckSpec::new(http());
        let mut b = a.clone();
        b.interval = Duration::from_secs(30);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let (ka, kb) = (TargetKey::new(a, ip), TargetKey::new(b, ip));
        assert_ne!(ka, kb);
        assert_eq!(ka.stable_key(), kb.stable_key());
    }

    #[test]
    fn key_of_tcp_and_dns_checks() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let tcp = CheckKind::Tcp {
            port: 22,
            send: None,
            expect_prefix: Some(b"SSH-".to_vec()),
        };
        assert_eq!(
            TargetKey::new(CheckSpec::new(tcp), ip).stable_key(),
            "tcp;expect=5353482d@192.0.2.1:22"
        );
        let dns = CheckKind::Dns {
            port: 53,
            qname: "www.example.com.".into(),
            qtype: 28,
            expect_rcode: 0,
            expect_answer: Some("2001:db8::1".into()),
        };
        assert_eq!(
            TargetKey::new(CheckSpec::new(dns), ip).stable_key(),
            "dns:www.example.com.:AAAA;answer=2001%3Adb8%3A%3A1@192.0.2.1:53"
        );
    }
}
