//! `[probes]`: site probes of measured latency (see `latency::probe`). Each
//! instance times a DNS query from its own region to the resolvers that ask
//! it, and the figures go into the measured table beside the collector's.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::values::Cx;
use super::ConfigError;
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
    raw: toml::Spanned<ProbesRaw>,
    site: Option<&str>,
    text: &str,
    path: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<ProbesConfig> {
    let top = raw.span().start;
    // Every key, so that a new one cannot be dropped silently.
    let ProbesRaw {
        region,
        regions,
        rate,
        interval,
        timeout,
        sample_every,
        never,
        allow_private,
        port,
        source,
        share_every,
        refresh,
        hold,
        margin_ms,
        margin_pct,
        share_max_entries,
    } = raw.into_inner();
    let before = errors.len();
    let mut cx = Cx {
        table: "probes",
        text,
        path,
        errors,
    };
    let region = match (region, site) {
        (Some(r), _) => {
            let v = r.get_ref().trim().to_string();
            if v.is_empty() {
                cx.err(r.span().start, "probes.region is empty".into());
            }
            v
        }
        (None, Some(s)) => s.to_string(),
        (None, None) => {
            cx.err(top, "probes: name the region this instance stands in: probes.region = \"eu-west\" (or [fleet] site)".into());
            String::new()
        }
    };
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    let interval = cx.duration(
        interval,
        "interval",
        (ms(100), secs(86_400)),
        DEFAULT_INTERVAL,
    );
    let timeout = cx.duration(timeout, "timeout", (ms(10), secs(10)), DEFAULT_TIMEOUT);
    let share_every = cx.duration(
        share_every,
        "share_every",
        (ms(100), secs(3600)),
        DEFAULT_SHARE_EVERY,
    );
    let refresh = cx.duration(refresh, "refresh", (ms(10), secs(3600)), DEFAULT_REFRESH);
    let mut hysteresis = crate::latency::Hysteresis::default();
    hysteresis.hold = cx.duration(
        hold,
        "hold",
        (Duration::ZERO, secs(86_400)),
        hysteresis.hold,
    );
    if let Some(x) = cx.real(margin_ms, "margin_ms", (0.0, 10_000.0), "") {
        hysteresis.margin_ms = x as f32;
    }
    if let Some(x) = cx.real(margin_pct, "margin_pct", (0.0, 100.0), "") {
        hysteresis.margin_pct = x as f32;
    }
    let rate = cx
        .real(rate, "rate", (0.01, 1000.0), "probes per second from ")
        .unwrap_or(DEFAULT_RATE);
    let sample_every = cx
        .whole(
            sample_every,
            "sample_every",
            (1, 1_000_000),
            " (one query in N offers its source)",
        )
        .map_or(DEFAULT_SAMPLE_EVERY, |v| v as u32);
    let port = cx
        .whole(port, "port", (1, 65_535), "")
        .map_or(53, |v| v as u16);
    let share_max_entries = cx
        .whole(share_max_entries, "share_max_entries", (1, 20_000), "")
        .map_or(DEFAULT_SHARE_MAX_ENTRIES, |v| v as usize);
    let never = never.map(|l| cx.networks(l)).unwrap_or_default();
    let source = source.and_then(|s| cx.address(s));
    (cx.errors.len() == before).then_some(ProbesConfig {
        region,
        regions: regions.map(|r| r.into_inner()).unwrap_or_default(),
        rate,
        interval,
        timeout,
        sample_every,
        never,
        allow_private: allow_private.unwrap_or(false),
        port,
        source,
        share_every,
        refresh,
        hysteresis,
        share_max_entries,
    })
}

/// `[probes]`' own kinds of value.
impl Cx<'_> {
    fn networks(&mut self, list: toml::Spanned<Vec<String>>) -> Vec<IpNet> {
        let mut out = Vec::new();
        for n in list.get_ref() {
            match n.parse::<IpNet>() {
                Ok(net) => out.push(net),
                Err(e) => self.err(
                    list.span().start,
                    format!("probes.never {n:?}: {e}; use networks like \"192.0.2.0/24\""),
                ),
            }
        }
        out
    }

    /// An address, or the address of ADDR:PORT.
    fn address(&mut self, s: toml::Spanned<String>) -> Option<IpAddr> {
        let v = s.get_ref();
        match (v.parse::<IpAddr>(), v.parse::<SocketAddr>()) {
            (Ok(a), _) => Some(a),
            (_, Ok(a)) => Some(a.ip()),
            _ => {
                self.err(
                    s.span().start,
                    format!("probes.source = {v:?} is not an IP address"),
                );
                None
            }
        }
    }
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
        // A missing region at the table's own line, not at a mention of it before.
        let e = parse("# [probes] below measures from here\n[tcp]\nidle_timeout = \"5s\"\n[probes]\nrate = 5\n")
            .unwrap_err();
        assert!(e[0].contains(":4:"), "{e:?}");
        let e = parse("[probes]\nregion = \"eu\"\nbogus = 1\n").unwrap_err();
        assert!(e[0].contains("bogus"), "{e:?}");
    }
}
