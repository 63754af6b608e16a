//! `[shed.REGION]` in the server config: load shedding's signal for one region
//! (see `docs/metric-checks.md#load-shedding`).
//!
//! ```toml
//! [shed.eu-west]
//! server = "127.0.0.1:9090"
//! query = 'sum(rate(http_requests_total{region="eu-west"}[1m])) / 5000'
//! low = 0.6
//! high = 0.8
//! floor = 20
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::metric_checks::{compile_prometheus, Number, PrometheusRaw};
use super::values::parse_duration;
use super::{line_of, ConfigError};
use crate::health::{CheckKind, ShedPlan, ShedSource};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShedRaw {
    /// ADDR:PORT of the Prometheus-compatible server; with `query`, or neither
    /// for a load pushed through the admin endpoint.
    pub server: Option<String>,
    /// PromQL; the highest series of the answer is the region's load.
    pub query: Option<String>,
    pub path: Option<String>,
    pub low: Number,
    pub high: Number,
    /// Percent the dial never goes below (default 0).
    pub floor: Option<u8>,
    /// Percentage points per move (default 10).
    pub step: Option<u8>,
    /// Evaluations in a row before each move (default 1).
    pub after: Option<u32>,
    /// Between evaluations (default 10s).
    pub interval: Option<String>,
    /// Per question to the server (default 2s, shorter than interval).
    pub timeout: Option<String>,
}

/// Checks every `[shed.REGION]`; errors carry the line where the table starts.
pub fn check(
    raw: BTreeMap<String, toml::Spanned<ShedRaw>>,
    text: &str,
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<ShedSource> {
    let mut out = Vec::new();
    for (region, r) in raw {
        let line = line_of(text, r.span().start);
        let mut errs = Vec::new();
        let ShedRaw {
            server,
            query,
            path: qpath,
            low,
            high,
            floor,
            step,
            after,
            interval,
            timeout,
        } = r.into_inner();
        let kind = match (server, query) {
            (Some(server), Some(query)) => Some(compile_prometheus(
                &region,
                &PrometheusRaw {
                    server,
                    path: qpath,
                    query,
                    down_above: None,
                    down_below: Some(Number::Float(0.0)),
                    empty: None,
                },
                &mut errs,
            )),
            (None, None) if qpath.is_none() => None,
            _ => {
                errs.push(
                    "give server and query (a load asked for), or neither (a load pushed with POST /v1/load)"
                        .into(),
                );
                None
            }
        };
        let plan = ShedPlan {
            low: low.value(),
            high: high.value(),
            floor: floor.unwrap_or(0),
            step: step.unwrap_or(10),
            after: after.unwrap_or(1),
        };
        if let Err(e) = plan.check() {
            errs.push(e);
        }
        let dur = |v: Option<String>, key: &str, d: Duration, errs: &mut Vec<String>| match v {
            None => d,
            Some(s) => parse_duration(&s).unwrap_or_else(|e| {
                errs.push(format!("{key}: {e}"));
                d
            }),
        };
        let interval = dur(interval, "interval", Duration::from_secs(10), &mut errs);
        let timeout = dur(timeout, "timeout", Duration::from_secs(2), &mut errs);
        if interval < Duration::from_millis(100) || timeout >= interval {
            errs.push("interval must be at least 100ms and longer than timeout".into());
        }
        for e in errs {
            // compile_prometheus names its keys as checks.REGION.prometheus.KEY.
            let e = e.replace(&format!("checks.{region}.prometheus"), "");
            let e = e.trim_start_matches(['.', ':', ' ']);
            errors.push(ConfigError::new(path, line, format!("shed.{region}: {e}")));
        }
        let query = match kind {
            Some(CheckKind::Prometheus(q)) => Some(q),
            _ => None,
        };
        out.push(ShedSource {
            region,
            query,
            plan,
            interval,
            timeout,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Vec<ShedSource>, Vec<ConfigError>) {
        #[derive(Deserialize)]
        struct Doc {
            shed: BTreeMap<String, toml::Spanned<ShedRaw>>,
        }
        let doc: Doc = toml::from_str(text).expect("toml");
        let mut errors = Vec::new();
        let out = check(doc.shed, text, Path::new("s.toml"), &mut errors);
        (out, errors)
    }

    #[test]
    fn a_region_compiles_and_bad_values_name_their_line() {
        let (out, errs) = run(
            "[shed.eu-west]\nserver = \"127.0.0.1:9090\"\nquery = 'load'\nlow = 0.6\nhigh = 0.8\nfloor = 20\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out[0].plan.floor, 20);
        assert!(out[0].query.is_some());
        let (out, errs) = run("[shed.eu-west]\nlow = 0.6\nhigh = 0.8\n");
        assert!(errs.is_empty() && out[0].query.is_none(), "{errs:?}");
        let (_, errs) = run("[shed.eu-west]\nserver = \"127.0.0.1:9090\"\nlow = 0.6\nhigh = 0.8\n");
        assert!(errs[0].message.contains("or neither"), "{errs:?}");
        assert_eq!(out[0].interval, Duration::from_secs(10));
        let (_, errs) = run(
            "# x\n[shed.eu-west]\nserver = \"nowhere\"\nquery = 'load'\nlow = 0.9\nhigh = 0.8\n",
        );
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            all.iter().all(|e| e.starts_with("s.toml:2: shed.eu-west:")),
            "{all:?}"
        );
        assert!(all.iter().any(|e| e.contains("server")), "{all:?}");
        assert!(
            all.iter().any(|e| e.contains("must be below high")),
            "{all:?}"
        );
        // Written as a dotted table with its region quoted, the line is still its own.
        let (_, errs) = run("[tcp]\n\n[shed]\n\"eu-west\" = { low = 0.9, high = 0.8 }\n");
        assert_eq!(errs[0].line, 4, "{errs:?}");
    }
}
