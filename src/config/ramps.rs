//! `[gates.NAME]` and `[ramps.REGION]` in the server config: the metric gates a
//! ramp can name, and a region's ramp settings (see `docs/rollouts.md`).
//!
//! ```toml
//! [gates.errors_eu]
//! prometheus = { server = "127.0.0.1:9090", query = 'job:errors:ratio{region="eu-west"}', down_above = 0.01 }
//! interval = "10s"
//! timeout = "2s"
//!
//! [ramps.eu-west]
//! steps = [1, 5, 25, 50, 100]
//! hold = "10m"
//! on_fail = "last_safe"
//! gates = ["errors_eu"]
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::metric_checks::{compile_prometheus, PrometheusRaw};
use super::values::parse_duration;
use super::{line_of, ConfigError};
use crate::health::{CheckKind, GateSource};

/// The most gates a ramp names, and the most configured.
pub const MAX_GATES: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GateRaw {
    pub prometheus: PrometheusRaw,
    /// Between evaluations (default 10s).
    pub interval: Option<String>,
    /// Per question (default 2s, shorter than interval).
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RampRaw {
    pub steps: Vec<u8>,
    pub hold: String,
    pub on_fail: Option<String>,
    pub gates: Option<Vec<String>>,
}

/// A region's ramp settings: what `signpost ctl ramp REGION` uses for what it
/// is not given.
#[derive(Debug, Clone, PartialEq)]
pub struct RampPlan {
    pub steps: Vec<u8>,
    pub hold: Duration,
    /// "last_safe" or "zero".
    pub on_fail: String,
    pub gates: Vec<String>,
}

/// The gates and the regions' ramp settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutConfig {
    pub gates: Vec<GateSource>,
    /// By region name.
    pub ramps: BTreeMap<String, RampPlan>,
}

type Tables<T> = Option<BTreeMap<String, toml::Spanned<T>>>;

/// Checks `[gates.*]` and `[ramps.*]`; errors carry their table's line.
pub(crate) fn check(
    gates: Tables<GateRaw>,
    ramps: Tables<RampRaw>,
    text: &str,
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> RolloutConfig {
    let mut out = RolloutConfig::default();
    let gates = gates.unwrap_or_default();
    if gates.len() > MAX_GATES {
        errors.push(ConfigError::new(
            path,
            0,
            format!("{} gates; at most {MAX_GATES}", gates.len()),
        ));
    }
    for (name, g) in gates {
        let line = line_of(text, g.span().start);
        let mut errs = Vec::new();
        if let Some(s) = gate(&name, g.into_inner(), &mut errs) {
            out.gates.push(s);
        }
        for e in errs {
            let e = e.replace(&format!("checks.{name}."), "");
            errors.push(ConfigError::new(path, line, format!("gates.{name}: {e}")));
        }
    }
    for (region, r) in ramps.unwrap_or_default() {
        let line = line_of(text, r.span().start);
        let mut errs = Vec::new();
        let plan = ramp(r.into_inner(), &out.gates, &mut errs);
        for e in errs {
            errors.push(ConfigError::new(path, line, format!("ramps.{region}: {e}")));
        }
        out.ramps.insert(region, plan);
    }
    out
}

fn duration(v: Option<String>, key: &str, d: Duration, errs: &mut Vec<String>) -> Duration {
    match v {
        None => d,
        Some(s) => parse_duration(&s).unwrap_or_else(|e| {
            errs.push(format!("{key}: {e}"));
            d
        }),
    }
}

fn gate(name: &str, raw: GateRaw, errs: &mut Vec<String>) -> Option<GateSource> {
    let GateRaw {
        prometheus,
        interval,
        timeout,
    } = raw;
    let kind = compile_prometheus(name, &prometheus, errs);
    let interval = duration(interval, "interval", Duration::from_secs(10), errs);
    let timeout = duration(timeout, "timeout", Duration::from_secs(2), errs);
    if interval < Duration::from_millis(100) || timeout >= interval {
        errs.push("interval must be at least 100ms and longer than timeout".into());
    }
    match kind {
        CheckKind::Prometheus(query) => Some(GateSource {
            name: name.to_string(),
            query,
            interval,
            timeout,
        }),
        _ => None,
    }
}

fn ramp(raw: RampRaw, gates: &[GateSource], errs: &mut Vec<String>) -> RampPlan {
    let RampRaw {
        steps,
        hold,
        on_fail,
        gates: named,
    } = raw;
    if steps.is_empty()
        || steps.len() > 20
        || steps.iter().any(|&s| s > 100)
        || steps.windows(2).any(|w| w[0] >= w[1])
    {
        errs.push(format!(
            "steps {steps:?}: 1 to 20 whole percents from 0 to 100, each above the one before"
        ));
    }
    let hold = duration(Some(hold), "hold", Duration::from_secs(600), errs);
    if hold.is_zero() {
        errs.push("hold: give a time like 10m".into());
    }
    let on_fail = on_fail.unwrap_or_else(|| "last_safe".to_string());
    if !matches!(on_fail.as_str(), "last_safe" | "hold" | "zero") {
        errs.push(format!(
            "on_fail {on_fail:?}: use \"last_safe\" or \"zero\""
        ));
    }
    let named = named.unwrap_or_default();
    if named.len() > MAX_GATES {
        errs.push(format!("gates: at most {MAX_GATES}"));
    }
    for g in &named {
        if !gates.iter().any(|s| &s.name == g) {
            errs.push(format!("gates: {g:?} is not a [gates.NAME] of this file"));
        }
    }
    RampPlan {
        steps,
        hold,
        on_fail,
        gates: named,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (RolloutConfig, Vec<String>) {
        #[derive(Deserialize)]
        struct Doc {
            gates: Tables<GateRaw>,
            ramps: Tables<RampRaw>,
        }
        let doc: Doc = toml::from_str(text).expect("toml");
        let mut errors = Vec::new();
        let out = check(doc.gates, doc.ramps, text, Path::new("s.toml"), &mut errors);
        (out, errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn gates_and_ramps_compile_and_bad_values_name_their_line() {
        let (out, errs) = run(
            "[gates.err]\nprometheus = { server = \"127.0.0.1:9090\", query = 'e', down_above = 0.01 }\n\
             [ramps.eu-west]\nsteps = [5, 50, 100]\nhold = \"1m\"\ngates = [\"err\"]\n",
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(out.gates[0].interval, Duration::from_secs(10));
        let r = &out.ramps["eu-west"];
        assert_eq!(
            (r.steps.as_slice(), r.on_fail.as_str()),
            (&[5, 50, 100][..], "last_safe")
        );

        let (_, errs) = run(
            "# x\n[gates.err]\nprometheus = { server = \"nowhere\", query = 'e' }\ninterval = \"1s\"\ntimeout = \"2s\"\n\
             [ramps.eu-west]\nsteps = [50, 5]\nhold = \"soon\"\non_fail = \"maybe\"\ngates = [\"nope\"]\n",
        );
        let at =
            |line: &str, what: &str| errs.iter().any(|e| e.starts_with(line) && e.contains(what));
        assert!(
            at("s.toml:2: gates.err: prometheus.server", "ADDR:PORT"),
            "{errs:?}"
        );
        assert!(at("s.toml:2: gates.err:", "down_above"), "{errs:?}");
        assert!(
            at("s.toml:2: gates.err:", "longer than timeout"),
            "{errs:?}"
        );
        for what in ["steps", "hold", "on_fail", "\"nope\""] {
            assert!(at("s.toml:6: ramps.eu-west:", what), "{what}: {errs:?}");
        }
    }
}
