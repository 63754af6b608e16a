//! `[rum]`: the measured-latency collector (see `latency::rum`) and the
//! bounds of the table its figures go into (see `latency::table`). Every key
//! is checked at its value's line; a bad table changes nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::values::read_secret_file;
use super::values::Cx;
use super::ConfigError;
use crate::geo::cidr::IpNet;
use crate::latency::AggregatorLimits;

type At<T> = Option<toml::Spanned<T>>;

/// `[rum]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RumRaw {
    listen: toml::Spanned<String>,
    regions: toml::Spanned<std::collections::BTreeMap<String, String>>,
    allowed_origins: At<Vec<String>>,
    trusted_proxies: At<Vec<String>>,
    feed_token_file: At<PathBuf>,
    refresh: At<String>,
    precedence: At<String>,
    rounds: At<i64>,
    max_body: At<i64>,
    max_samples: At<i64>,
    max_feed_body: At<i64>,
    max_feed_samples: At<i64>,
    rate: At<f64>,
    burst: At<f64>,
    rate_networks: At<i64>,
    max_connections: At<i64>,
    min_samples: At<i64>,
    min_senders: At<i64>,
    window: At<i64>,
    per_sender: At<i64>,
    half_life: At<String>,
    max_age: At<String>,
    max_networks: At<i64>,
}

/// Whose figure wins where the operator's `latency_table` file and the measured
/// table both have one for a client and region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// The file's entries sit above measured figures (the default).
    File,
    /// Measured figures sit above the file's entries.
    Measured,
}

/// The collector's bounds, as `latency::rum::RumLimits` takes them.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorBounds {
    /// Fetches per region in the beacon (the first warms the connection).
    pub rounds: u8,
    pub max_body: usize,
    pub max_samples: usize,
    pub max_feed_body: usize,
    pub max_feed_samples: usize,
    /// Beacons per second per sender network, and the burst.
    pub rate: f64,
    pub burst: f64,
    pub rate_networks: usize,
    pub max_connections: usize,
}

impl Default for CollectorBounds {
    fn default() -> Self {
        CollectorBounds {
            rounds: 3,
            max_body: 4 * 1024,
            max_samples: 32,
            max_feed_body: 256 * 1024,
            max_feed_samples: 2000,
            rate: 0.2,
            burst: 5.0,
            rate_networks: 65_536,
            max_connections: 256,
        }
    }
}

/// `[rum]`, checked.
#[derive(Debug, Clone)]
pub struct RumConfig {
    pub listen: SocketAddr,
    /// Region name and the URL of its timing object, in name order.
    pub regions: Vec<(String, String)>,
    pub allowed_origins: Vec<String>,
    pub trusted_proxies: Vec<IpNet>,
    /// The feed's bearer token, read from `feed_token_file`; none: feed off.
    pub feed_token: Option<String>,
    /// How often measured figures reach the answers.
    pub refresh: Duration,
    pub precedence: Precedence,
    pub bounds: CollectorBounds,
    /// The measured table's thresholds and bounds.
    pub table: AggregatorLimits,
}

/// The default of `rum.refresh`.
pub(crate) const DEFAULT_RUM_REFRESH: Duration = Duration::from_secs(10);

/// Checks `[rum]`; every error is pushed with the line of its value.
pub(super) fn check(
    raw: RumRaw,
    text: &str,
    path: &Path,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<RumConfig> {
    // Every key, so that a new one cannot be dropped silently.
    let RumRaw {
        listen,
        regions,
        allowed_origins,
        trusted_proxies,
        feed_token_file,
        refresh,
        precedence,
        rounds,
        max_body,
        max_samples,
        max_feed_body,
        max_feed_samples,
        rate,
        burst,
        rate_networks,
        max_connections,
        min_samples,
        min_senders,
        window,
        per_sender,
        half_life,
        max_age,
        max_networks,
    } = raw;
    let before = errors.len();
    let mut cx = Cx {
        table: "rum",
        text,
        path,
        errors,
    };
    let listen_at = listen.span().start;
    let listen = listen.into_inner().parse::<SocketAddr>().ok();
    if listen.is_none() {
        cx.err(
            listen_at,
            "rum.listen is not ADDR:PORT (like 0.0.0.0:8053)".into(),
        );
    }
    let regions = region_urls(&mut cx, regions);
    let allowed_origins = allowed_origins
        .map(|o| origins(&mut cx, o))
        .unwrap_or_default();
    let trusted_proxies = trusted_proxies
        .map(|t| proxies(&mut cx, t))
        .unwrap_or_default();
    let feed_token = feed_token_file.and_then(|f| token(&mut cx, f, base));
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    let refresh = cx.duration(
        refresh,
        "refresh",
        (ms(10), secs(3600)),
        DEFAULT_RUM_REFRESH,
    );
    let precedence = precedence.map_or(Precedence::File, |p| match p.get_ref().as_str() {
        "measured" => Precedence::Measured,
        "file" => Precedence::File,
        other => {
            let m = format!("rum.precedence = {other:?}; use \"file\" (the latency_table file above measured figures) or \"measured\"");
            cx.err(p.span().start, m);
            Precedence::File
        }
    });
    let d = CollectorBounds::default();
    let mut n =
        |v, key, range, default| cx.whole(v, key, range, "").map_or(default, |x| x as usize);
    let bounds = CollectorBounds {
        rounds: n(rounds, "rounds", (1, 10), usize::from(d.rounds)) as u8,
        max_body: n(max_body, "max_body", (256, 65_536), d.max_body),
        max_samples: n(max_samples, "max_samples", (1, 256), d.max_samples),
        max_feed_body: n(
            max_feed_body,
            "max_feed_body",
            (1024, 4 << 20),
            d.max_feed_body,
        ),
        max_feed_samples: n(
            max_feed_samples,
            "max_feed_samples",
            (1, 20_000),
            d.max_feed_samples,
        ),
        rate_networks: n(
            rate_networks,
            "rate_networks",
            (1, 1_000_000),
            d.rate_networks,
        ),
        max_connections: n(
            max_connections,
            "max_connections",
            (1, 65_536),
            d.max_connections,
        ),
        rate: cx
            .real(
                rate,
                "rate",
                (0.001, 1000.0),
                "beacons per second per network from ",
            )
            .unwrap_or(d.rate),
        burst: cx
            .real(burst, "burst", (1.0, 10_000.0), "")
            .unwrap_or(d.burst),
    };
    let t = AggregatorLimits::default();
    let mut n =
        |v, key, range, default| cx.whole(v, key, range, "").map_or(default, |x| x as usize);
    let mut table = AggregatorLimits {
        window: n(window, "window", (1, 256), t.window),
        per_sender: n(per_sender, "per_sender", (1, 256), t.per_sender),
        min_samples: n(
            min_samples,
            "min_samples",
            (1, 1_000_000),
            t.min_samples as usize,
        ) as u32,
        min_senders: n(min_senders, "min_senders", (1, 256), t.min_senders),
        max_keys: n(max_networks, "max_networks", (1, 10_000_000), t.max_keys),
        ..t
    };
    table.half_life = cx.duration(
        half_life,
        "half_life",
        (secs(1), secs(7 * 86_400)),
        table.half_life,
    );
    table.max_age = cx.duration(
        max_age,
        "max_age",
        (secs(1), secs(7 * 86_400)),
        table.max_age,
    );
    (cx.errors.len() == before).then_some(RumConfig {
        listen: listen?,
        regions,
        allowed_origins,
        trusted_proxies,
        feed_token,
        refresh,
        precedence,
        bounds,
        table,
    })
}

/// `regions`: name = the http(s) URL of its timing object; not empty.
fn region_urls(
    cx: &mut Cx<'_>,
    regions: toml::Spanned<std::collections::BTreeMap<String, String>>,
) -> Vec<(String, String)> {
    let at = regions.span().start;
    let regions: Vec<(String, String)> = regions.into_inner().into_iter().collect();
    if regions.is_empty() {
        cx.err(
            at,
            "rum.regions is empty: name each region and the URL of its timing object".into(),
        );
    }
    for (name, url) in &regions {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.len() <= 2048
            && url.bytes().all(|b| b.is_ascii_graphic())
            && !url.contains(['"', '\\', '<', '>', '`']);
        if !ok {
            cx.err(
                at,
                format!("rum.regions.{name} = {url:?} is not an http(s) URL"),
            );
        }
    }
    regions
}

fn origins(cx: &mut Cx<'_>, list: toml::Spanned<Vec<String>>) -> Vec<String> {
    let at = list.span().start;
    let mut out = Vec::new();
    for v in list.into_inner() {
        let ok = (v.starts_with("https://") || v.starts_with("http://"))
            && !v[v.find("//").map_or(0, |i| i + 2)..].contains('/')
            && v.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            out.push(v);
        } else {
            cx.err(at, format!("rum.allowed_origins {v:?} is not an origin like \"https://www.example.com\" (scheme and host, no path)"));
        }
    }
    out
}

fn proxies(cx: &mut Cx<'_>, list: toml::Spanned<Vec<String>>) -> Vec<IpNet> {
    let at = list.span().start;
    let mut out = Vec::new();
    for n in list.into_inner() {
        match n.parse::<IpNet>() {
            Ok(net) => out.push(net),
            Err(e) => cx.err(
                at,
                format!("rum.trusted_proxies {n:?}: {e}; use networks like \"10.0.0.0/8\""),
            ),
        }
    }
    out
}

/// The feed's token from its file (relative to `base`): 16 characters or more.
fn token(cx: &mut Cx<'_>, f: toml::Spanned<PathBuf>, base: &Path) -> Option<String> {
    let at = f.span().start;
    let f = f.into_inner();
    let f = if f.is_absolute() { f } else { base.join(f) };
    match read_secret_file("rum.feed_token_file", &f) {
        Ok(t) if t.len() >= 16 => Some(t),
        Ok(_) => {
            cx.err(at, format!("rum.feed_token_file {}: the token is shorter than 16 characters; use a long random string", f.display()));
            None
        }
        Err(m) => {
            cx.err(at, m);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::server::ServerConfig;

    fn parse(text: &str) -> Result<ServerConfig, Vec<String>> {
        let p = std::path::Path::new("/tmp/signpost-rum.toml");
        ServerConfig::parse(text, p).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    const HEAD: &str = "[rum]\nlisten = \"127.0.0.1:8053\"\nregions = { eu-west = \"https://eu.example/o.gif\" }\n";

    #[test]
    fn the_collectors_bounds_are_keys_each_checked_at_its_line() {
        let c = parse(HEAD).unwrap().rum.unwrap();
        assert_eq!(c.bounds, super::CollectorBounds::default());
        assert_eq!(c.table.min_senders, 3);
        let good = format!(
            "{HEAD}rounds = 5\nmax_body = 1024\nmax_samples = 8\nmax_feed_body = 65536\n\
             max_feed_samples = 100\nrate = 2.5\nburst = 10\nrate_networks = 1000\n\
             max_connections = 16\nmin_samples = 1\nmin_senders = 1\nwindow = 8\n\
             per_sender = 2\nhalf_life = \"1m\"\nmax_age = \"10m\"\nmax_networks = 5000\n"
        );
        let c = parse(&good).unwrap().rum.unwrap();
        let b = &c.bounds;
        assert_eq!((b.rounds, b.max_body, b.max_samples), (5, 1024, 8));
        assert_eq!((b.max_feed_body, b.max_feed_samples), (65536, 100));
        assert_eq!(
            (b.rate, b.burst, b.rate_networks, b.max_connections),
            (2.5, 10.0, 1000, 16)
        );
        let t = &c.table;
        assert_eq!(
            (t.min_samples, t.min_senders, t.window, t.per_sender),
            (1, 1, 8, 2)
        );
        assert_eq!(t.half_life, std::time::Duration::from_secs(60));
        assert_eq!(t.max_age, std::time::Duration::from_secs(600));
        assert_eq!(t.max_keys, 5000);

        let bad = [
            ("rounds", "0"),
            ("max_body", "100"),
            ("max_samples", "1000"),
            ("max_feed_body", "99999999"),
            ("max_feed_samples", "0"),
            ("rate", "-1"),
            ("burst", "0.5"),
            ("rate_networks", "0"),
            ("max_connections", "0"),
            ("min_samples", "0"),
            ("min_senders", "300"),
            ("window", "0"),
            ("per_sender", "0"),
            ("half_life", "\"0s\""),
            ("max_age", "\"soon\""),
            ("max_networks", "0"),
        ];
        let text: String = bad.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let errs = parse(&format!("{HEAD}{text}")).unwrap_err();
        assert_eq!(errs.len(), bad.len(), "{errs:?}");
        for (i, (key, _)) in bad.iter().enumerate() {
            let line = format!("signpost-rum.toml:{}:", i + 4);
            assert!(
                errs.iter()
                    .any(|e| e.contains(&line) && e.contains(&format!("rum.{key} = "))),
                "{key} at {line}: {errs:?}"
            );
        }
    }
}
