//! `prometheus = { ... }` in a `[checks.NAME]` table: a health check that asks a
//! Prometheus-compatible server and judges the answer by a threshold (see
//! `docs/metric-checks.md`). Parsed here, beside the other check kinds in
//! `checks`, so that table keeps one line for it.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::health::{CheckKind, Empty, MetricQuery, Threshold, MAX_METRIC_QUERY};

/// A number as TOML writes it: `30` or `0.5`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn value(self) -> f64 {
        match self {
            // Thresholds beyond 2^53 lose their last digits, which no metric notices.
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// `prometheus = { server = "127.0.0.1:9090", query = '...', down_above = 30 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrometheusRaw {
    /// ADDR:PORT of the server's HTTP API.
    pub server: String,
    /// The instant-query path (default `/api/v1/query`).
    pub path: Option<String>,
    /// PromQL giving an instant vector or a scalar.
    pub query: String,
    pub down_above: Option<Number>,
    pub down_below: Option<Number>,
    /// "unknown" (default), "down" or "up": what an answer without series means.
    pub empty: Option<String>,
}

/// Checks a `prometheus` table and turns it into a check kind; problems go to
/// `errs`, each naming the check and the key.
pub(crate) fn compile_prometheus(
    name: &str,
    p: &PrometheusRaw,
    errs: &mut Vec<String>,
) -> CheckKind {
    let PrometheusRaw {
        server,
        path,
        query,
        down_above,
        down_below,
        empty,
    } = p;
    let ctx = format!("checks.{name}.prometheus");
    let server = server.parse::<SocketAddr>().unwrap_or_else(|_| {
        errs.push(format!(
            "{ctx}.server = {server:?}: give ADDR:PORT, like \"127.0.0.1:9090\" or \"[2001:db8::1]:9090\""
        ));
        SocketAddr::from(([127, 0, 0, 1], 9090))
    });
    let path = path.clone().unwrap_or_else(|| "/api/v1/query".to_string());
    if !path.starts_with('/') || path.contains(['?', '#']) || path.bytes().any(|b| b <= b' ') {
        errs.push(format!(
            "{ctx}.path = {path:?}: give a path like \"/api/v1/query\", without a query"
        ));
    }
    if query.trim().is_empty() {
        errs.push(format!(
            "{ctx}.query is empty; give PromQL like 'up{{job=\"db\"}}'"
        ));
    } else if query.len() > MAX_METRIC_QUERY {
        errs.push(format!(
            "{ctx}.query is {} bytes; at most {MAX_METRIC_QUERY}",
            query.len()
        ));
    }
    let threshold = |n: &Option<Number>, key: &str, errs: &mut Vec<String>| {
        let v = n.map(Number::value)?;
        if v.is_finite() {
            Some(Threshold(v))
        } else {
            errs.push(format!("{ctx}.{key}: give a finite number"));
            None
        }
    };
    let down_above = threshold(down_above, "down_above", errs);
    let down_below = threshold(down_below, "down_below", errs);
    if p.down_above.is_none() && p.down_below.is_none() {
        errs.push(format!(
            "{ctx}: give down_above, down_below or both (the threshold that takes a target down)"
        ));
    }
    if let (Some(a), Some(b)) = (down_above, down_below) {
        if b.0 > a.0 {
            errs.push(format!(
                "{ctx}: down_below ({}) is above down_above ({}): every value would be down",
                b.0, a.0
            ));
        }
    }
    let empty = match empty.as_deref() {
        None | Some("unknown") => Empty::Unknown,
        Some("down") => Empty::Down,
        Some("up") => Empty::Up,
        Some(o) => {
            errs.push(format!(
                "{ctx}.empty = {o:?}; use \"unknown\", \"down\" or \"up\""
            ));
            Empty::Unknown
        }
    };
    CheckKind::Prometheus(MetricQuery {
        server,
        path,
        query: query.clone(),
        down_above,
        down_below,
        empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<CheckKind, Vec<String>> {
        let raw: PrometheusRaw = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errs = Vec::new();
        let k = compile_prometheus("lag", &raw, &mut errs);
        if errs.is_empty() {
            Ok(k)
        } else {
            Err(errs)
        }
    }

    #[test]
    fn a_lag_check_compiles() {
        let k = compile(
            "server = \"127.0.0.1:9090\"\nquery = 'lag{region=\"eu\"}'\ndown_above = 30\nempty = \"down\"\n",
        )
        .unwrap();
        let CheckKind::Prometheus(m) = k else {
            panic!("not a metric check")
        };
        assert_eq!(m.down_above, Some(Threshold(30.0)));
        assert_eq!(m.empty, Empty::Down);
        assert_eq!(m.path, "/api/v1/query");
    }

    #[test]
    fn bad_values_are_named() {
        let errs = compile("server = \"localhost\"\nquery = ''\nempty = \"maybe\"\n").unwrap_err();
        let all = errs.join("\n");
        for want in [
            "checks.lag.prometheus.server",
            "checks.lag.prometheus.query is empty",
            "give down_above, down_below",
            "checks.lag.prometheus.empty",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
        let errs = compile(
            "server = \"127.0.0.1:9090\"\nquery = 'x'\ndown_above = 1\ndown_below = 2.5\npath = \"/q?x=1\"\n",
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("every value would be down")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains(".path")), "{errs:?}");
        assert!(
            compile("server = \"127.0.0.1:9090\"\nquery = 'x'\ndown_above = 1\nbogus = 2\n")
                .is_err()
        );
    }
}
