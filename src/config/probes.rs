//! `[probes]`: site probes of measured latency (see `latency::probe`). Each
//! instance times a DNS query from its own region to the resolvers that ask
//! it, and the figures go into the measured table beside the collector's.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::values::parse_duration;
use super::{line_of, ConfigError};
use crate::geo::cidr::IpNet;

/// `[probes]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProbesRaw {
    region: Option<toml::Spanned<String>>,
    regions: Option<toml::Spanned<Vec<String>>>,
    rate: Option<toml::Spanned<f64>>,
    interval: Option<toml::Spanned<String>>,
    timeout: Option<toml::Spanned<String>>,
    sample_every: Option<toml::Spanned<i64>>,
    never: Option<toml::Spanned<Vec<String>>>,
    allow_private: Option<bool>,
    port: Option<toml::Spanned<i64>>,
    source: Option<toml::Spanned<String>>,
    share_every: Option<toml::Spanned<String>>,
    refresh: Option<toml::Spanned<String>>,
    hold: Option<toml::Spanned<String>>,
    margin_ms: Option<toml::Spanned<f64>>,
    margin_pct: Option<toml::Spanned<f64>>,
    share_max_entries: Option<toml::Spanned<i64>>,
}

/// `[probes]`, checked.
#[derive(Debug, Clone)]
pub struct ProbesConfig {
    /// The region this instance stands in: `probes.region`, else `[fleet] site`.
    pub region: String,
    /// Regions the measured table has columns for besides `[rum]`'s and this one
    /// (the other sites' regions, so their shared figures have a place).
    pub regions: Vec<String>,
    /// Probes per second at most.
    pub rate: f64,
    /// At most one probe per client network per interval.
    pub interval: Duration,
    /// A probe without an answer by then gives no sample.
    pub timeout: Duration,
    /// One query in this many offers its source address to the prober.
    pub sample_every: u32,
    /// Networks never probed.
    pub never: Vec<IpNet>,
    /// Whether private, loopback and link-local addresses may be probed.
    pub allow_private: bool,
    /// The port probed (53).
    pub port: u16,
    /// The address probes leave from; none: the system's choice.
    pub source: Option<IpAddr>,
    /// How often this instance's figures are published to the fleet.
    pub share_every: Duration,
    /// How often the measured table is rebuilt (with `[rum]`: the shorter of
    /// this and `rum.refresh`).
    pub refresh: Duration,
    /// When a measured network's answer may move to another region.
    pub hysteresis: crate::latency::Hysteresis,
    /// The most networks published (biggest sample counts first).
    pub share_max_entries: usize,
}

pub(crate) const DEFAULT_RATE: f64 = 10.0;
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
pub(crate) const DEFAULT_SAMPLE_EVERY: u32 = 64;
pub(crate) const DEFAULT_REFRESH: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_SHARE_EVERY: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_SHARE_MAX_ENTRIES: usize = 2000;

/// Checks `[probes]`; `site` is `[fleet] site`. Every error is pushed with the
/// line of its value.
pub(super) fn check(
    raw: ProbesRaw,
    site: Option<&str>,
    text: &str,
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<ProbesConfig> {
    let before = errors.len();
    let mut err =
        |start: usize, m: String| errors.push(ConfigError::new(path, line_of(text, start), m));
    let top = text.find("[probes]").unwrap_or(0);
    let region = match (&raw.region, site) {
        (Some(r), _) => {
            let v = r.get_ref().trim().to_string();
            if v.is_empty() {
                err(r.span().start, "probes.region is empty".into());
            }
            v
        }
        (None, Some(s)) => s.to_string(),
        (None, None) => {
            err(top, "probes: name the region this instance stands in: probes.region = \"eu-west\" (or [fleet] site)".into());
            String::new()
        }
    };
    let regions = raw.regions.map(|r| r.into_inner()).unwrap_or_default();
    let duration = |v: &Option<toml::Spanned<String>>,
                    key: &str,
                    min: Duration,
                    max: Duration,
                    default: Duration|
     -> Result<Duration, (usize, String)> {
        let Some(v) = v else { return Ok(default) };
        match parse_duration(v.get_ref()) {
            Ok(d) if d >= min && d <= max => Ok(d),
            _ => Err((
                v.span().start,
                format!(
                    "probes.{key} = {:?}: use a duration from {min:?} to {max:?}",
                    v.get_ref()
                ),
            )),
        }
    };
    let mut dur = |v, key, min, max, default| {
        duration(v, key, min, max, default).unwrap_or_else(|(at, m)| {
            err(at, m);
            default
        })
    };
    let interval = dur(
        &raw.interval,
        "interval",
        Duration::from_millis(100),
        Duration::from_secs(86_400),
        DEFAULT_INTERVAL,
    );
    let timeout = dur(
        &raw.timeout,
        "timeout",
        Duration::from_millis(10),
        Duration::from_secs(10),
        DEFAULT_TIMEOUT,
    );
    let share_every = dur(
        &raw.share_every,
        "share_every",
        Duration::from_millis(100),
        Duration::from_secs(3600),
        DEFAULT_SHARE_EVERY,
    );
    let refresh = dur(
        &raw.refresh,
        "refresh",
        Duration::from_millis(10),
        Duration::from_secs(3600),
        DEFAULT_REFRESH,
    );
    let mut hysteresis = crate::latency::Hysteresis::default();
    hysteresis.hold = dur(
        &raw.hold,
        "hold",
        Duration::ZERO,
        Duration::from_secs(86_400),
        hysteresis.hold,
    );
    for (v, key, slot, max) in [
        (
            &raw.margin_ms,
            "margin_ms",
            &mut hysteresis.margin_ms,
            10_000.0,
        ),
        (
            &raw.margin_pct,
            "margin_pct",
            &mut hysteresis.margin_pct,
            100.0,
        ),
    ] {
        if let Some(v) = v {
            let x = *v.get_ref();
            if x.is_finite() && (0.0..=max).contains(&x) {
                *slot = x as f32;
            } else {
                err(
                    v.span().start,
                    format!("probes.{key} = {x}: use 0 to {max}"),
                );
            }
        }
    }
    let mut rate = DEFAULT_RATE;
    if let Some(r) = &raw.rate {
        let v = *r.get_ref();
        if v.is_finite() && (0.01..=1000.0).contains(&v) {
            rate = v;
        } else {
            err(
                r.span().start,
                format!("probes.rate = {v}: use probes per second from 0.01 to 1000"),
            );
        }
    }
    let mut sample_every = DEFAULT_SAMPLE_EVERY;
    if let Some(n) = &raw.sample_every {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if (1..=1_000_000).contains(&v) => sample_every = v,
            _ => err(
                n.span().start,
                format!(
                    "probes.sample_every = {}: use 1 to 1000000 (one query in N offers its source)",
                    n.get_ref()
                ),
            ),
        }
    }
    let mut port = 53;
    if let Some(p) = &raw.port {
        match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => port = v,
            _ => err(
                p.span().start,
                format!("probes.port = {}: use 1 to 65535", p.get_ref()),
            ),
        }
    }
    let mut share_max_entries = DEFAULT_SHARE_MAX_ENTRIES;
    if let Some(n) = &raw.share_max_entries {
        match usize::try_from(*n.get_ref()) {
            Ok(v) if (1..=20_000).contains(&v) => share_max_entries = v,
            _ => err(
                n.span().start,
                format!("probes.share_max_entries = {}: use 1 to 20000", n.get_ref()),
            ),
        }
    }
    let mut never = Vec::new();
    if let Some(list) = &raw.never {
        for n in list.get_ref() {
            match n.parse::<IpNet>() {
                Ok(net) => never.push(net),
                Err(e) => err(
                    list.span().start,
                    format!("probes.never {n:?}: {e}; use networks like \"192.0.2.0/24\""),
                ),
            }
        }
    }
    let mut source = None;
    if let Some(s) = &raw.source {
        match s.get_ref().parse::<IpAddr>() {
            Ok(a) => source = Some(a),
            Err(_) => match s.get_ref().parse::<SocketAddr>() {
                Ok(a) => source = Some(a.ip()),
                Err(_) => err(
                    s.span().start,
                    format!("probes.source = {:?} is not an IP address", s.get_ref()),
                ),
            },
        }
    }
    (errors.len() == before).then_some(ProbesConfig {
        region,
        regions,
        rate,
        interval,
        timeout,
        sample_every,
        never,
        allow_private: raw.allow_private.unwrap_or(false),
        port,
        source,
        share_every,
        refresh,
        hysteresis,
        share_max_entries,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::server::ServerConfig;

    fn parse(text: &str) -> Result<crate::config::server::ServerConfig, Vec<String>> {
        let p = std::path::Path::new("/tmp/signpost-probes.toml");
        ServerConfig::parse(text, p).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn probes_parse_with_defaults_and_bad_keys_name_their_line() {
        let c = parse("[probes]\nregion = \"eu-west\"\n")
            .unwrap()
            .probes
            .unwrap();
        assert_eq!(c.region, "eu-west");
        assert_eq!(c.port, 53);
        assert_eq!(c.sample_every, super::DEFAULT_SAMPLE_EVERY);
        assert!(!c.allow_private);

        let e =
            parse("[probes]\nregion = \"eu\"\nrate = 0\nnever = [\"10.0.0.0/99\"]\n").unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains(":3:") && e[0].contains("probes.rate"),
            "{e:?}"
        );
        assert!(
            e[1].contains(":4:") && e[1].contains("probes.never"),
            "{e:?}"
        );

        let e = parse("[probes]\nrate = 5\n").unwrap_err();
        assert!(e[0].contains("probes.region"), "{e:?}");
        let e = parse("[probes]\nregion = \"eu\"\nbogus = 1\n").unwrap_err();
        assert!(e[0].contains("bogus"), "{e:?}");
    }
}
