//! `[checks.NAME]` in a zone policy file: health checks that endpoints reference.

use serde::Deserialize;

use super::values::parse_duration;
use crate::health::{CheckKind, CheckSpec, Initial, Tls};
use crate::zone::Invalid;

/// `expect = 200` or `expect = [200, 204]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Codes {
    One(u16),
    Many(Vec<u16>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpRaw {
    pub port: Option<u16>,
    pub path: Option<String>,
    pub method: Option<String>,
    /// Host header (and SNI for https unless `sni` is given).
    pub host: Option<String>,
    /// Status codes that pass; default 200-399.
    pub expect: Option<Codes>,
    /// A substring the body must contain.
    pub body: Option<String>,
    /// https: the TLS server name.
    pub sni: Option<String>,
    /// https: verify the certificate (default true); false for IP-only targets.
    pub verify: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpCheckRaw {
    pub port: u16,
    /// Bytes to send after connecting.
    pub send: Option<String>,
    /// What the reply must start with.
    pub expect: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DnsRaw {
    pub port: Option<u16>,
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: Option<String>,
    /// Expected rcode mnemonic; default NOERROR.
    pub rcode: Option<String>,
    /// A substring one answer's data must contain, like an address.
    pub answer: Option<String>,
}

/// `[checks.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRaw {
    pub http: Option<HttpRaw>,
    pub https: Option<HttpRaw>,
    pub tcp: Option<TcpCheckRaw>,
    pub dns: Option<DnsRaw>,
    pub prometheus: Option<super::metric_checks::PrometheusRaw>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
    pub jitter: Option<String>,
    /// "up" (default) or "down": the state before the first result.
    pub initial: Option<String>,
    /// With a fleet: instances that must see a target down (a count or a share);
    /// default `[fleet] quorum`.
    pub quorum: Option<toml::Value>,
}

/// Checks a `[checks.NAME]` table and turns it into a spec; every problem found.
pub(crate) fn compile_check(name: &str, c: &CheckRaw) -> Result<CheckSpec, Vec<Invalid>> {
    compile(name, c).map_err(|v| v.into_iter().map(Invalid).collect())
}

fn compile(name: &str, c: &CheckRaw) -> Result<CheckSpec, Vec<String>> {
    // Every key, so that a new one cannot be dropped silently.
    let CheckRaw {
        http,
        https,
        tcp,
        dns,
        prometheus,
        interval,
        timeout,
        rise,
        fall,
        jitter,
        initial,
        quorum,
    } = c;
    let mut errs = Vec::new();
    let kinds = [
        http.is_some(),
        https.is_some(),
        tcp.is_some(),
        dns.is_some(),
        prometheus.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(vec![format!(
            "checks.{name}: give exactly one of http, https, tcp, dns or prometheus"
        )]);
    }
    let kind = if let Some(h) = http {
        http_kind(name, h, false, &mut errs)
    } else if let Some(h) = https {
        http_kind(name, h, true, &mut errs)
    } else if let Some(t) = tcp {
        CheckKind::Tcp {
            port: port_ok(name, t.port, &mut errs),
            send: t.send.as_ref().map(|s| s.as_bytes().to_vec()),
            expect_prefix: t.expect.as_ref().map(|s| s.as_bytes().to_vec()),
        }
    } else if let Some(d) = dns {
        dns_kind(name, d, &mut errs)
    } else if let Some(p) = prometheus {
        super::metric_checks::compile_prometheus(name, p, &mut errs)
    } else {
        return Err(vec![format!("checks.{name}: no check kind")]);
    };
    if let Err(e) = crate::health::check_request(&kind) {
        errs.push(format!("checks.{name}: {e}"));
    }
    let mut spec = CheckSpec::new(kind);
    let when = Timing {
        interval,
        timeout,
        jitter,
        rise: *rise,
        fall: *fall,
        initial,
        quorum,
    };
    when.apply(name, &mut spec, &mut errs);
    if errs.is_empty() {
        Ok(spec)
    } else {
        Err(errs)
    }
}

fn port_ok(name: &str, p: u16, errs: &mut Vec<String>) -> u16 {
    if p == 0 {
        errs.push(format!(
            "checks.{name}: port 0 is not a port; use 1 to 65535"
        ));
    }
    p
}

/// An `http` or `https` check.
fn http_kind(name: &str, h: &HttpRaw, tls: bool, errs: &mut Vec<String>) -> CheckKind {
    let port = port_ok(name, h.port.unwrap_or(if tls { 443 } else { 80 }), errs);
    let path = h.path.clone().unwrap_or_else(|| "/".to_string());
    if !path.starts_with('/') {
        errs.push(format!("checks.{name}: path {path:?} must start with /"));
    }
    let method = h.method.clone().unwrap_or_else(|| "GET".to_string());
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        errs.push(format!(
            "checks.{name}: method {method:?} is not an HTTP method like GET or HEAD"
        ));
    }
    let expect = match &h.expect {
        None => Vec::new(),
        Some(Codes::One(c)) => vec![*c],
        Some(Codes::Many(v)) => v.clone(),
    };
    if expect.iter().any(|c| !(100..=599).contains(c)) {
        errs.push(format!(
            "checks.{name}: expect must be HTTP status codes 100-599"
        ));
    }
    if !tls && (h.sni.is_some() || h.verify.is_some()) {
        errs.push(format!("checks.{name}: sni and verify apply to https only"));
    }
    CheckKind::Http {
        method,
        path,
        host: h.host.clone(),
        port,
        expect,
        body_contains: h.body.clone(),
        tls: tls.then(|| Tls {
            sni: h.sni.clone().or_else(|| h.host.clone()),
            verify: h.verify.unwrap_or(true),
        }),
    }
}

/// A `dns` check.
fn dns_kind(name: &str, d: &DnsRaw, errs: &mut Vec<String>) -> CheckKind {
    let qtype = match d.qtype.as_deref() {
        None => 1,
        Some(t) => crate::zone::rtype::from_name(t).unwrap_or_else(|| {
            errs.push(format!("checks.{name}: type {t:?} is not a record type"));
            1
        }),
    };
    let rcode = match d.rcode.as_deref().unwrap_or("NOERROR") {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        other => {
            errs.push(format!(
                "checks.{name}: rcode {other:?}; use NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ..."
            ));
            0
        }
    };
    CheckKind::Dns {
        port: port_ok(name, d.port.unwrap_or(53), errs),
        qname: d.name.clone(),
        qtype,
        expect_rcode: rcode,
        expect_answer: d.answer.clone(),
    }
}

/// When a check runs and how its results become a state: every check kind alike.
struct Timing<'c> {
    interval: &'c Option<String>,
    timeout: &'c Option<String>,
    jitter: &'c Option<String>,
    rise: Option<u32>,
    fall: Option<u32>,
    initial: &'c Option<String>,
    quorum: &'c Option<toml::Value>,
}

impl Timing<'_> {
    fn apply(&self, name: &str, spec: &mut CheckSpec, errs: &mut Vec<String>) {
        let c = self;
        let dur =
            |v: &Option<String>, key: &str, d: std::time::Duration, errs: &mut Vec<String>| match v
            {
                None => d,
                Some(s) => parse_duration(s).unwrap_or_else(|m| {
                    errs.push(format!("checks.{name}.{key}: {m}"));
                    d
                }),
            };
        spec.interval = dur(c.interval, "interval", spec.interval, errs);
        spec.timeout = dur(c.timeout, "timeout", spec.timeout, errs);
        spec.jitter = dur(c.jitter, "jitter", spec.jitter.min(spec.interval / 5), errs);
        if spec.interval.as_millis() < 100 {
            errs.push(format!("checks.{name}.interval: at least 100ms"));
        }
        if spec.timeout >= spec.interval {
            errs.push(format!(
                "checks.{name}: timeout ({:?}) must be shorter than interval ({:?})",
                spec.timeout, spec.interval
            ));
        }
        if spec.jitter >= spec.interval {
            errs.push(format!(
                "checks.{name}: jitter must be shorter than interval"
            ));
        }
        spec.rise = c.rise.unwrap_or(spec.rise);
        spec.fall = c.fall.unwrap_or(spec.fall);
        if spec.rise == 0 || spec.fall == 0 || spec.rise > 100 || spec.fall > 100 {
            errs.push(format!(
                "checks.{name}: rise and fall are counts from 1 to 100"
            ));
        }
        spec.initial = match c.initial.as_deref() {
            None | Some("up") => Initial::Up,
            Some("down") => Initial::Down,
            Some(o) => {
                errs.push(format!(
                    "checks.{name}.initial = {o:?}; use \"up\" or \"down\""
                ));
                Initial::Up
            }
        };
        if let Some(v) = &c.quorum {
            match super::values::parse_quorum(v) {
                Some(q) => spec.quorum = Some(q),
                None => errs.push(format!(
                    "checks.{name}.quorum = {v}: {}",
                    super::values::QUORUM_FORMS
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `interval = "1m30s"` is read with the grammar `ttl = "1m30s"` is: both are
    /// 90 seconds (the interval grammar used to take one number and one unit).
    #[test]
    fn interval_takes_the_ttl_grammar() {
        let raw: CheckRaw = toml::from_str(
            "tcp = { port = 53 }\ninterval = \"1m30s\"\ntimeout = \"1500ms\"\njitter = \"2s\"\n",
        )
        .expect("a check table");
        let spec = compile_check("c", &raw).expect("compiles");
        assert_eq!(spec.interval, std::time::Duration::from_secs(90));
        assert_eq!(spec.timeout, std::time::Duration::from_millis(1500));
        assert_eq!(crate::zone::master::parse_ttl("1m30s"), Ok(90));
        for (text, secs) in [
            ("1h30m", 5400),
            ("2w", 1_209_600),
            ("1d12h", 129_600),
            ("45", 45),
        ] {
            let ttl = crate::zone::master::parse_ttl(text).map(u64::from);
            let d = parse_duration(text).map(|d| d.as_secs());
            assert_eq!((ttl, d), (Ok(secs), Ok(secs)), "{text}");
        }
        for bad in ["1h30", "", "h", "1 h", "-1"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
            assert!(crate::zone::master::parse_ttl(bad).is_err(), "{bad:?}");
        }
        let raw: CheckRaw =
            toml::from_str("tcp = { port = 53 }\ninterval = \"1m30\"\n").expect("a check table");
        let errs = compile_check("c", &raw).unwrap_err();
        assert!(errs[0].0.contains("checks.c.interval"), "{errs:?}");
    }
}
