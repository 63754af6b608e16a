//! The collector: an HTTP/1.1 listener of its own (not the admin endpoint) for
//! real users' beacons and the operator's feed.
//!
//! - `GET /beacon.js`: the script an operator puts on their pages (no
//!   third-party code); it times a small object from each region's URL and posts
//!   the figures here.
//! - `POST /v1/beacon`: `{"v":1,"samples":[{"region":"eu-west","rtt_ms":42.5}]}`.
//!   The figures count for the sender's own /24 or /48, taken from the
//!   connection, or from `X-Forwarded-For` only when the peer is a listed
//!   trusted proxy. Rate-limited per sender network (a token bucket: 429).
//!   CORS: `Access-Control-Allow-Origin` only for the configured origins; a
//!   beacon or preflight from any other `Origin` is refused (403).
//! - `POST /v1/feed`: the operator's telemetry, `Authorization: Bearer <token>`
//!   (compared in constant time):
//!   `{"v":1,"samples":[{"network":"203.0.113.0/24","region":"eu-west","rtt_ms":40,"count":12}]}`
//!   with `asn` or `country` in place of `network`. Off without a token (404).
//!
//! Every request is bounded (8 KiB head, the body limits of [`RumLimits`], a
//! timeout for the head and one for the body, a cap on open connections, a
//! lifetime per connection); a body that is not the expected shape, names an
//! unknown region or carries an absurd value gets a 400 and changes nothing: a
//! request's samples are all checked before any is added.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE, ORIGIN};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use super::table::{NetKey, Rejected, Sample, Sender};
use super::LatencyHandle;
use crate::geo::cidr::IpNet;

const MAX_HEAD: usize = 8 * 1024;
const HARD_HEAD: usize = 2 * MAX_HEAD;
const SCRIPT: &str = include_str!("beacon.js");

/// A region as the collector knows it: its name in beacons and the feed, its
/// index in the table, and the URL of the small object browsers time.
#[derive(Debug, Clone)]
pub struct RumRegion {
    pub name: String,
    pub index: u16,
    pub url: String,
}

/// The collector's bounds.
#[derive(Debug, Clone)]
pub struct RumLimits {
    /// Bytes of a beacon's body.
    pub max_body: usize,
    /// Samples in one beacon.
    pub max_samples: usize,
    /// Bytes of a feed request's body, and samples in it.
    pub max_feed_body: usize,
    pub max_feed_samples: usize,
    /// Beacons per second per sender network (/24, /48), and the burst.
    pub rate_per_sec: f64,
    pub burst: f64,
    /// Sender networks the rate limiter tracks at once; past it, networks new
    /// to it get a 429 until some have gone quiet.
    pub rate_keys: usize,
    pub max_connections: usize,
    /// For a request's head (and a keep-alive connection's idle time), then
    /// again for its body.
    pub request_timeout: Duration,
    /// However busy, a connection is closed after this.
    pub max_lifetime: Duration,
}

impl Default for RumLimits {
    fn default() -> Self {
        RumLimits {
            max_body: 4 * 1024,
            max_samples: 32,
            max_feed_body: 256 * 1024,
            max_feed_samples: 2000,
            rate_per_sec: 0.2,
            burst: 5.0,
            rate_keys: 65_536,
            max_connections: 256,
            request_timeout: Duration::from_secs(5),
            max_lifetime: Duration::from_secs(60),
        }
    }
}

/// The collector's settings: what a `[rum]` table compiles to.
#[derive(Debug, Clone)]
pub struct RumSettings {
    /// Where the application binds the collector's listener.
    pub listen: SocketAddr,
    pub regions: Vec<RumRegion>,
    /// `Origin` values (`https://www.example.com`, exactly) whose pages may post.
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the sender.
    pub trusted_proxies: Vec<IpNet>,
    /// `POST /v1/feed` is served only with a token.
    pub feed_token: Option<String>,
    /// Fetches per region in the beacon (the first warms the connection).
    pub rounds: u8,
    pub limits: RumLimits,
}

impl RumSettings {
    pub fn new(listen: SocketAddr, regions: Vec<RumRegion>) -> RumSettings {
        RumSettings {
            listen,
            regions,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            feed_token: None,
            rounds: 3,
            limits: RumLimits::default(),
        }
    }
}

/// Settings that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum RumError {
    #[error("region {name:?} has index {index}, but the table has {count} regions")]
    RegionIndex {
        name: String,
        index: u16,
        count: usize,
    },
    #[error("region {0:?} is named twice")]
    Duplicate(String),
    #[error("rounds = {0}: use 1 to 10")]
    Rounds(u8),
    #[error("feed token is empty")]
    EmptyToken,
}

/// What the collector did, for metrics.
#[derive(Debug, Default)]
pub struct RumStats {
    pub beacons: AtomicU64,
    pub feed_posts: AtomicU64,
    pub samples: AtomicU64,
    /// 400: not the expected shape, unknown region, absurd value.
    pub bad_request: AtomicU64,
    /// 413: body over the bound.
    pub too_large: AtomicU64,
    /// 429: too fast from one network.
    pub rate_limited: AtomicU64,
    /// 403: an origin not allowed.
    pub forbidden: AtomicU64,
    /// 401: the feed without the right token.
    pub unauthorized: AtomicU64,
    /// Connections closed unanswered: the cap was reached.
    pub refused_connections: AtomicU64,
}

/// The collector: settings, the table it feeds, its rate limiter and counters.
pub struct Collector {
    settings: RumSettings,
    regions: HashMap<String, u16>,
    table: LatencyHandle,
    limiter: Mutex<RateLimiter>,
    script: String,
    stats: RumStats,
}

impl Collector {
    pub fn new(settings: RumSettings, table: LatencyHandle) -> Result<Arc<Collector>, RumError> {
        let count = table.lock().regions().len();
        let mut regions = HashMap::new();
        for r in &settings.regions {
            if usize::from(r.index) >= count {
                return Err(RumError::RegionIndex {
                    name: r.name.clone(),
                    index: r.index,
                    count,
                });
            }
            if regions.insert(r.name.clone(), r.index).is_some() {
                return Err(RumError::Duplicate(r.name.clone()));
            }
        }
        if !(1..=10).contains(&settings.rounds) {
            return Err(RumError::Rounds(settings.rounds));
        }
        if settings.feed_token.as_deref() == Some("") {
            return Err(RumError::EmptyToken);
        }
        let config = serde_json::json!({
            "rounds": settings.rounds,
            "regions": settings.regions.iter()
                .map(|r| serde_json::json!({"name": r.name, "url": r.url}))
                .collect::<Vec<_>>(),
        });
        let script = SCRIPT.replace("__SIGNPOST_CONFIG__", &config.to_string());
        let limiter = Mutex::new(RateLimiter::new(
            settings.limits.rate_per_sec,
            settings.limits.burst,
            settings.limits.rate_keys,
        ));
        Ok(Arc::new(Collector {
            settings,
            regions,
            table,
            limiter,
            script,
            stats: RumStats::default(),
        }))
    }

    pub fn stats(&self) -> &RumStats {
        &self.stats
    }

    pub fn settings(&self) -> &RumSettings {
        &self.settings
    }

    /// The beacon script, with the regions' URLs in it.
    pub fn script(&self) -> &str {
        &self.script
    }
}

/// Serves until `stop` fires, then lets each open connection finish the request
/// it is in (up to the request timeout) before returning. The listener is
/// shared: a reload starts the next collector on it while this one finishes.
pub async fn serve(
    listener: Arc<TcpListener>,
    collector: Arc<Collector>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = collector.settings.limits.clone();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_header_size(HARD_HEAD)
        .max_buf_size(HARD_HEAD)
        .keep_alive(true);
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    loop {
        // The stop first: a connection waiting when a reload stops this collector
        // stays in the shared listener's queue for the next one, rather than
        // being taken here and closed unanswered.
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            collector
                .stats
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            debug!(peer = %peer, "collector connection closed: {cap} already open");
            continue;
        };
        let c = collector.clone();
        // Told of each request as it starts: a stop lets a connection taken just
        // before it send its first request and be answered.
        let asked = Arc::new(tokio::sync::Notify::new());
        let told = asked.clone();
        let service = hyper::service::service_fn(move |req| {
            let c = c.clone();
            told.notify_one();
            async move { Ok::<_, Infallible>(handle(&c, peer, req).await) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let ended = |r: Result<(), hyper::Error>| {
                if let Err(e) = r {
                    debug!(peer = %peer, "collector connection ended: {e}");
                }
            };
            tokio::select! {
                r = conn.as_mut() => {
                    ended(r);
                    drop(slot);
                    return;
                }
                _ = stop.changed() => {
                    // Stopped: the request under way (or the first, when none
                    // came yet) is answered, then the connection closes.
                    tokio::select! {
                        r = conn.as_mut() => {
                            ended(r);
                            drop(slot);
                            return;
                        }
                        _ = asked.notified() => {}
                        _ = tokio::time::sleep(limits.request_timeout) => {}
                    }
                }
                _ = tokio::time::sleep(limits.max_lifetime) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.request_timeout, conn).await;
            drop(slot);
        });
    }
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.request_timeout, slots.acquire_many(all)).await;
}

/// A reply: status, content type, body, and whether to allow the origin.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    close: bool,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        let mut body = body.into();
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            headers: Vec::new(),
            close: false,
        }
    }
    fn empty() -> Reply {
        Reply {
            body: String::new(),
            ..Reply::text(204, "")
        }
    }
}

async fn handle(
    c: &Collector,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let origin = parts
        .headers
        .get(ORIGIN)
        .map(|v| v.to_str().unwrap_or("\u{fffd}").to_string());
    let allowed = origin
        .as_deref()
        .is_some_and(|o| c.settings.allowed_origins.iter().any(|a| a == o));
    let mut reply = route(c, peer, &parts, body, origin.as_deref(), allowed).await;
    let stat = match reply.status {
        400 => Some(&c.stats.bad_request),
        401 => Some(&c.stats.unauthorized),
        403 => Some(&c.stats.forbidden),
        413 => Some(&c.stats.too_large),
        429 => Some(&c.stats.rate_limited),
        _ => None,
    };
    if let Some(s) = stat {
        s.fetch_add(1, Ordering::Relaxed);
    }
    if reply.status >= 400 {
        info!(
            peer = %peer,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            status = reply.status,
            "collector request refused: {}",
            reply.body.trim_end()
        );
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from(std::mem::take(&mut reply.body))));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if reply.status != 204 {
        h.insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("vary", HeaderValue::from_static("Origin"));
    if allowed && parts.uri.path().starts_with("/v1/beacon") {
        if let Some(o) = origin
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            h.insert("access-control-allow-origin", o);
        }
    }
    for (k, v) in reply.headers {
        h.insert(k, v);
    }
    if reply.close {
        h.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn route(
    c: &Collector,
    peer: SocketAddr,
    parts: &Parts,
    body: Incoming,
    origin: Option<&str>,
    allowed: bool,
) -> Reply {
    if head_len(parts) > MAX_HEAD {
        return Reply {
            close: true,
            ..Reply::text(431, "request head over 8 KiB")
        };
    }
    let path = parts.uri.path();
    match (&parts.method, path) {
        (&Method::GET, "/beacon.js") => Reply {
            status: 200,
            content_type: "text/javascript; charset=utf-8",
            body: c.script.clone(),
            headers: vec![(
                HeaderName::from_static("access-control-allow-origin"),
                HeaderValue::from_static("*"),
            )],
            close: false,
        },
        (&Method::OPTIONS, "/v1/beacon") => {
            if !allowed {
                return Reply::text(403, format!("origin {origin:?} may not post beacons"));
            }
            let mut r = Reply::empty();
            for (k, v) in [
                ("access-control-allow-methods", "POST"),
                ("access-control-allow-headers", "content-type"),
                ("access-control-max-age", "600"),
            ] {
                r.headers
                    .push((HeaderName::from_static(k), HeaderValue::from_static(v)));
            }
            r
        }
        (&Method::POST, "/v1/beacon") => beacon(c, peer, parts, body, origin, allowed).await,
        (&Method::POST, "/v1/feed") => feed(c, parts, body).await,
        (_, "/beacon.js" | "/v1/beacon" | "/v1/feed") => {
            Reply::text(405, format!("{} is not served on {path}", parts.method))
        }
        _ => Reply::text(
            404,
            "no such path (the collector serves /beacon.js, /v1/beacon, /v1/feed)",
        ),
    }
}

/// A beacon's or the feed's body: `{"v": 1, "samples": [...]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<S> {
    v: u32,
    samples: Vec<S>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BeaconSampleRaw {
    region: String,
    rtt_ms: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedSampleRaw {
    network: Option<String>,
    asn: Option<u32>,
    country: Option<String>,
    region: String,
    rtt_ms: f64,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

async fn beacon(
    c: &Collector,
    peer: SocketAddr,
    parts: &Parts,
    body: Incoming,
    origin: Option<&str>,
    allowed: bool,
) -> Reply {
    if origin.is_some() && !allowed {
        return Reply::text(403, format!("origin {origin:?} may not post beacons"));
    }
    let sender = match sender_addr(&c.settings.trusted_proxies, peer.ip(), parts) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let key = NetKey::of_addr(sender);
    let admitted = c
        .limiter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .admit(key, Instant::now());
    if !admitted {
        return Reply {
            headers: vec![(
                HeaderName::from_static("retry-after"),
                HeaderValue::from_static("5"),
            )],
            ..Reply::text(429, format!("too many beacons from {key}"))
        };
    }
    let limits = &c.settings.limits;
    let raw: Vec<BeaconSampleRaw> =
        match read_samples("beacon", body, limits.max_body, limits.max_samples, limits).await {
            Ok(r) => r,
            Err(r) => return r,
        };
    let mut samples = Vec::with_capacity(raw.len());
    for s in &raw {
        let Some(&region) = c.regions.get(&s.region) else {
            return refuse(
                c,
                Rejected::UnknownRegion(u16::MAX),
                &format!(
                    "region {:?}: no such region (known: {})",
                    s.region,
                    c.known()
                ),
            );
        };
        samples.push(Sample {
            key,
            region,
            rtt_ms: s.rtt_ms,
            sender: Sender::Addr(sender),
            count: 1,
        });
    }
    c.stats.beacons.fetch_add(1, Ordering::Relaxed);
    add_all(c, &samples)
}

/// The samples of a `what` body (beacon or feed) of at most `max_bytes`: JSON of
/// version 1 with 1 to `max_samples` samples; anything else is the 4xx to send.
async fn read_samples<S: serde::de::DeserializeOwned>(
    what: &str,
    body: Incoming,
    max_bytes: usize,
    max_samples: usize,
    limits: &RumLimits,
) -> Result<Vec<S>, Reply> {
    let bytes = read_body(body, max_bytes, limits.request_timeout).await?;
    let raw: Envelope<S> = serde_json::from_slice(&bytes)
        .map_err(|e| Reply::text(400, format!("{what} body: {e}")))?;
    if raw.v != 1 {
        return Err(Reply::text(400, format!("{what} version {}: use 1", raw.v)));
    }
    if raw.samples.is_empty() || raw.samples.len() > max_samples {
        return Err(Reply::text(
            400,
            format!("{} samples: send 1 to {max_samples}", raw.samples.len()),
        ));
    }
    Ok(raw.samples)
}

async fn feed(c: &Collector, parts: &Parts, body: Incoming) -> Reply {
    let Some(token) = &c.settings.feed_token else {
        return Reply::text(404, "the feed is off (no feed token is configured)");
    };
    let given = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if !crate::secret::same(given.as_bytes(), token.as_bytes()) {
        return Reply {
            headers: vec![(
                HeaderName::from_static("www-authenticate"),
                HeaderValue::from_static("Bearer"),
            )],
            ..Reply::text(401, "the feed needs Authorization: Bearer <feed token>")
        };
    }
    let limits = &c.settings.limits;
    let raw: Vec<FeedSampleRaw> = match read_samples(
        "feed",
        body,
        limits.max_feed_body,
        limits.max_feed_samples,
        limits,
    )
    .await
    {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut samples = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let key = match (&s.network, s.asn, &s.country) {
            (Some(n), None, None) => match n.parse::<IpNet>() {
                Ok(net) => NetKey::of_net(net),
                Err(e) => Err(Rejected::Narrow(format!("{n:?} ({e})"))),
            },
            (None, Some(a), None) => Ok(NetKey::Asn(a)),
            (None, None, Some(cc)) => NetKey::of_country(cc),
            _ => {
                return Reply::text(
                    400,
                    format!("samples[{i}]: give exactly one of network, asn, country"),
                )
            }
        };
        let key = match key {
            Ok(k) => k,
            Err(r) => {
                let m = format!("samples[{i}]: {r}");
                return refuse(c, r, &m);
            }
        };
        let Some(&region) = c.regions.get(&s.region) else {
            let m = format!(
                "samples[{i}]: region {:?}: no such region (known: {})",
                s.region,
                c.known()
            );
            return refuse(c, Rejected::UnknownRegion(u16::MAX), &m);
        };
        samples.push(Sample {
            key,
            region,
            rtt_ms: s.rtt_ms,
            sender: Sender::Feed,
            count: s.count,
        });
    }
    c.stats.feed_posts.fetch_add(1, Ordering::Relaxed);
    add_all(c, &samples)
}

impl Collector {
    fn known(&self) -> String {
        let mut names: Vec<&str> = self.regions.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.join(", ")
    }
}

/// Counts a refusal in the table's counters and answers 400.
fn refuse(c: &Collector, r: Rejected, message: &str) -> Reply {
    c.table.lock().count_rejected(&r);
    Reply::text(400, message)
}

/// Checks every sample, then adds them all: one bad sample changes nothing.
fn add_all(c: &Collector, samples: &[Sample]) -> Reply {
    let now = Instant::now();
    let mut table = c.table.lock();
    for (i, s) in samples.iter().enumerate() {
        if let Err(r) = table.check(s) {
            table.count_rejected(&r);
            return Reply::text(400, format!("samples[{i}]: {r}"));
        }
    }
    for s in samples {
        // Checked above; nothing else can refuse it.
        let _ = table.add(s, now);
    }
    c.stats
        .samples
        .fetch_add(samples.len() as u64, Ordering::Relaxed);
    Reply::empty()
}

/// The sender: the peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one.
fn sender_addr(trusted: &[IpNet], peer: IpAddr, parts: &Parts) -> Result<IpAddr, Reply> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return Ok(peer);
    }
    let mut hops = Vec::new();
    for v in parts.headers.get_all("x-forwarded-for") {
        let v = v
            .to_str()
            .map_err(|_| Reply::text(400, "X-Forwarded-For is not ASCII"))?;
        for hop in v.split(',') {
            let ip = hop.trim().parse::<IpAddr>().map_err(|_| {
                Reply::text(
                    400,
                    format!("X-Forwarded-For: {:?} is not an address", hop.trim()),
                )
            })?;
            hops.push(ip);
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .ok_or_else(|| {
            Reply::text(
                400,
                "a trusted proxy sent no X-Forwarded-For address outside the trusted proxies",
            )
        })
}

async fn read_body(body: Incoming, max: usize, timeout: Duration) -> Result<Vec<u8>, Reply> {
    let too_large = || Reply {
        close: true,
        ..Reply::text(413, format!("request body over {max} bytes"))
    };
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Reply {
            close: true,
            ..Reply::text(400, format!("request body: {e}"))
        }),
        Err(_) => Err(Reply {
            close: true,
            ..Reply::text(
                408,
                format!("request body did not arrive within {timeout:?}"),
            )
        }),
    }
}

/// The head's size as sent: request line, header lines, the blank line.
fn head_len(parts: &Parts) -> usize {
    let line =
        parts.method.as_str().len() + parts.uri.to_string().len() + " HTTP/1.1\r\n".len() + 1;
    parts
        .headers
        .iter()
        .fold(line + 2, |n, (k, v)| n + k.as_str().len() + v.len() + 4)
}

/// A token bucket per sender network, bounded in networks.
struct RateLimiter {
    rate: f64,
    burst: f64,
    max_keys: usize,
    buckets: HashMap<NetKey, (f64, Instant)>,
}

impl RateLimiter {
    fn new(rate: f64, burst: f64, max_keys: usize) -> RateLimiter {
        RateLimiter {
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            max_keys: max_keys.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for `key`, if it has one.
    fn admit(&mut self, key: NetKey, now: Instant) -> bool {
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.max_keys {
            // A bucket refilled to the burst is the same as none: drop those.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= self.max_keys {
                warn!(
                    "collector rate limiter full ({} networks): {key} refused",
                    self.max_keys
                );
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload stops a collector while the next takes over its listener: a
    /// connection waiting to be accepted then goes to the next one and is
    /// answered, however the two were scheduled (20 handovers, each with a
    /// connection waiting when the stop comes).
    #[tokio::test(flavor = "current_thread")]
    async fn a_stopped_collector_leaves_waiting_connections_to_the_next() {
        use std::io::{Read, Write};
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let collector = |rounds: u8| {
            let agg = crate::latency::Aggregator::new(
                vec!["a".into()],
                crate::latency::AggregatorLimits::default(),
            );
            let region = RumRegion {
                name: "a".into(),
                index: 0,
                url: "http://127.0.0.2/o.gif".into(),
            };
            let mut settings = RumSettings::new(addr, vec![region]);
            settings.rounds = rounds;
            Collector::new(settings, LatencyHandle::new(agg)).unwrap()
        };
        let (mut tx, rx) = watch::channel(false);
        // Each one's beacon script says which it is: 1 or 2 rounds, in turn.
        let rounds = |n: u8| 1 + n % 2;
        let mut running = tokio::spawn(serve(listener.clone(), collector(rounds(1)), rx));
        for n in 2..22u8 {
            // The running one waits in accept; a client connects; the stop comes.
            tokio::task::yield_now().await;
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            if n % 2 == 0 {
                // Half the time the running one has taken it before the stop.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tx.send(true).unwrap();
            let (next_tx, next_rx) = watch::channel(false);
            drop(std::mem::replace(&mut tx, next_tx));
            let old = std::mem::replace(
                &mut running,
                tokio::spawn(serve(listener.clone(), collector(rounds(n)), next_rx)),
            );
            client
                .write_all(b"GET /beacon.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            client
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reply = Vec::new();
            let got = tokio::task::spawn_blocking(move || {
                let _ = client.read_to_end(&mut reply);
                reply
            });
            let reply = got.await.unwrap();
            old.await.unwrap();
            let reply = String::from_utf8_lossy(&reply);
            // Answered: by the one it reached before the stop, else by the next.
            assert!(reply.starts_with("HTTP/1.1 200"), "{n}: {reply}");
            let by = if n % 2 == 0 { rounds(n - 1) } else { rounds(n) };
            assert!(reply.contains(&format!("\"rounds\":{by}")), "{n}: {reply}");
        }
        tx.send(true).unwrap();
        running.await.unwrap();
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().method("POST").uri("/v1/beacon");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn the_sender_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let proxies = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let xff = parts(&[("x-forwarded-for", "198.51.100.7")]);
        // Not a proxy: its header is ignored.
        assert_eq!(sender_addr(&proxies, peer, &xff).ok(), Some(peer));
        // A proxy: the nearest untrusted hop, proxies skipped from the right.
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let chain = parts(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.2.2.2")]);
        assert_eq!(
            sender_addr(&proxies, proxy, &chain).ok(),
            Some("198.51.100.7".parse().unwrap())
        );
        // A proxy without a usable header: refused, not counted as the proxy.
        for h in [
            &[][..],
            &[("x-forwarded-for", "10.3.3.3")],
            &[("x-forwarded-for", "nonsense")],
        ] {
            assert_eq!(
                sender_addr(&proxies, proxy, &parts(h))
                    .err()
                    .map(|r| r.status),
                Some(400)
            );
        }
    }

    #[test]
    fn the_rate_limiter_keys_by_network_and_is_bounded() {
        let mut l = RateLimiter::new(1.0, 2.0, 2);
        let t0 = Instant::now();
        let a = NetKey::of_addr("192.0.2.1".parse().unwrap());
        let b = NetKey::of_addr("198.51.100.1".parse().unwrap());
        let c = NetKey::of_addr("203.0.113.1".parse().unwrap());
        assert!(l.admit(a, t0) && l.admit(a, t0));
        assert!(!l.admit(a, t0), "burst spent");
        assert!(l.admit(b, t0), "another network has its own");
        assert!(!l.admit(c, t0), "limiter full of busy networks");
        let later = t0 + Duration::from_secs(1);
        assert!(l.admit(a, later), "refilled");
        // Once b has refilled to the burst it can be dropped for c.
        assert!(l.admit(c, t0 + Duration::from_secs(5)));
    }
}
