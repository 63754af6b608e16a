//! The admin endpoint: HTTP/1.1 on hyper, on loopback unless a bearer token is
//! configured. `GET /metrics` (Prometheus text), `GET /status` (JSON),
//! `GET /explain?name=&type=&client=`, and the override calls `signpost ctl` uses:
//! `POST /v1/override?target=&action=`, `POST /v1/weight?target=&weight=` and
//! `POST /v1/dial?target=&percent=`.
//!
//! `GET /v1/transitions` lists the last health transitions, `GET /v1/map?name=`
//! the region each country's clients get (see [`map`]), and `/` is the
//! dashboard (see [`dashboard`]).
//!
//! Before any route, [`guard`] refuses what a web page in the operator's browser
//! could send: a foreign `Host` (DNS rebinding) or `Origin`, a preflight, and a
//! change without a token or the `X-Signpost-Request` header.
//!
//! hyper speaks the protocol (request line, headers, chunked bodies, keep-alive);
//! this module bounds it and turns each request into a [`Request`] for [`route`].
//! Requests are bounded (8 KiB head, 4 KiB body, 5 s for the head and 5 s for the
//! body); every bad request gets a 4xx. Connections may carry many requests, up to
//! [`MAX_CONNECTIONS`] at once, each closed when idle for 5 s or open for 60 s.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONNECTION, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

mod dashboard;
mod exposition;
mod latency;
mod map;
mod ramp;
pub use ramp::start_ramps;
mod guard;

pub use guard::INTENT;

use crate::answer::snapshot::SnapshotHandle;
use crate::fleet::{Fleet, Op};
use crate::health::{self, Override};
use crate::metrics::Metrics;
use crate::reload::ReloadStats;

const MAX_HEAD: usize = 8 * 1024;
/// Where hyper itself stops reading a head and answers a bare 431 (it cannot add a
/// message); heads between [`MAX_HEAD`] and this get our 431 with one.
const HARD_HEAD: usize = 2 * MAX_HEAD;
const MAX_BODY: usize = 4 * 1024;
/// For a request's head to arrive (hyper's header read timeout, which also closes
/// a keep-alive connection idle this long), then again for its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections at once; past it a new one is closed unanswered. Keep-alive
/// lets a client hold a connection, so the count needs a cap.
pub(crate) const MAX_CONNECTIONS: u32 = 64;
/// However busy, a connection is closed (gracefully) after this.
const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// What the admin endpoint reads and changes.
#[derive(Clone)]
pub struct AdminState {
    pub snap: SnapshotHandle,
    pub reload: Arc<ReloadStats>,
    pub metrics: Arc<Metrics>,
    /// Where overrides, weights and last known health are saved.
    pub state_file: Option<PathBuf>,
    /// Required as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// `Host` values answered besides the listen address and loopback names
    /// (`[admin] allowed_hosts`), exactly as sent, port included.
    pub allowed_hosts: Vec<String>,
    /// With `[fleet]`: where overrides and weights go to reach every instance,
    /// and the votes `/status` shows.
    pub fleet: Option<Arc<Fleet>>,
    /// The dials load shedding asks for, per region (`[shed.REGION]`).
    pub shed: Arc<health::ShedDials>,
    /// This instance's ramps ([`crate::rollout`]), ticked by [`start_ramps`].
    pub ramps: Arc<crate::rollout::Ramps>,
    /// The metric gates ramps can name (`[gates.NAME]`), with their last verdicts.
    pub gates: Arc<health::MetricGates>,
    /// `[ramps.REGION]`: what a ramp on the region uses for what its call leaves out.
    pub ramp_plans: Arc<BTreeMap<String, crate::config::ramps::RampPlan>>,
}

/// A response: status, content type, body.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
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
        }
    }
    fn json(v: serde_json::Value) -> Reply {
        Reply {
            status: 200,
            content_type: "application/json",
            body: format!("{v:#}\n"),
        }
    }
}

/// Saves overrides, weights and last known health to the state file, if any.
pub fn save_state(state: &AdminState) {
    let Some(path) = &state.state_file else {
        return;
    };
    let snap = state.snap.load();
    if let Err(e) = health::save_state(path, &snap.health.persisted()) {
        warn!("cannot save state: {e}");
    }
}

/// Serves until `stop` fires, then lets each open connection finish the request
/// it is in (up to [`REQUEST_TIMEOUT`]) before returning.
pub async fn serve(listener: TcpListener, state: AdminState, mut stop: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .max_header_size(HARD_HEAD)
        .max_buf_size(HARD_HEAD)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS as usize));
    let expiry = tokio::spawn(expire_verdicts(state.snap.clone(), stop.clone()));
    let hosts = match listener.local_addr() {
        Ok(a) => Arc::new(guard::Hosts::new(a, &state.allowed_hosts)),
        Err(e) => {
            warn!("admin endpoint not served: its listen address is unknown: {e}");
            return;
        }
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            warn!(peer = %peer, "admin connection closed: {MAX_CONNECTIONS} already open");
            continue;
        };
        let st = state.clone();
        let hosts = hosts.clone();
        let local = stream.local_addr().ok();
        let service = hyper::service::service_fn(move |req| {
            let st = st.clone();
            let hosts = hosts.clone();
            async move { Ok::<_, Infallible>(handle(&st, &hosts, local, peer, req).await) }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    match r {
                        // hyper answered 400 or 431 itself.
                        Err(e) if e.is_parse() || e.is_parse_too_large() => {
                            info!(peer = %peer, "admin request refused: {e}");
                        }
                        Err(e) => debug!(peer = %peer, "admin connection ended: {e}"),
                        Ok(()) => {}
                    }
                    return;
                }
                _ = stop.changed() => {}
                _ = tokio::time::sleep(MAX_LIFETIME) => {}
            }
            // Finish the request in flight, answer it with `Connection: close`.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, conn).await;
            drop(slot);
        });
    }
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, slots.acquire_many(MAX_CONNECTIONS)).await;
    expiry.abort();
}

/// One request: bounds, the [`guard`], then [`route`]; `local` is the address
/// the connection came in on.
async fn handle(
    state: &AdminState,
    hosts: &guard::Hosts,
    local: Option<SocketAddr>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (reply, close) = match read_request(&parts, body).await {
        Ok(req) => match guard::check(hosts, local, &parts, state.token.is_some()) {
            Ok(()) => (route(state, &req), false),
            Err(r) => (r, false),
        },
        // The body may be left unread: this connection ends here.
        Err(r) => (r, true),
    };
    if reply.status >= 400 {
        info!(
            peer = %peer,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            status = reply.status,
            "admin request refused: {}",
            reply.body.trim_end()
        );
    }
    let mut resp = hyper::Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    for (k, v) in guard::HEADERS {
        resp.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    if close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A request as [`route`] sees it.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// Checks hyper's request against our bounds and reads its body.
async fn read_request(parts: &Parts, body: Incoming) -> Result<Request, Reply> {
    if head_len(parts) > MAX_HEAD {
        return Err(Reply::text(431, "request head over 8 KiB"));
    }
    let query = parse_query(parts.uri.query().unwrap_or(""))?;
    let authorization = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| Reply::text(400, "Authorization header is not ASCII"))?
                .trim()
                .to_string(),
        ),
    };
    // A Content-Length over the bound is refused before waiting for the body.
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(Reply::text(413, "request body over 4 KiB"));
    }
    let body =
        match tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
            Ok(Ok(b)) => b.to_bytes().to_vec(),
            Ok(Err(e)) if e.is::<LengthLimitError>() => {
                return Err(Reply::text(413, "request body over 4 KiB"))
            }
            Ok(Err(e)) => return Err(Reply::text(400, format!("request body: {e}"))),
            Err(_) => return Err(Reply::text(408, "request body did not arrive within 5 s")),
        };
    Ok(Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query,
        authorization,
        body,
    })
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

/// `a=1&b=x%20y` -> {a: 1, b: x y}; `+` is a space; bad escapes or non-UTF-8 are a 400.
fn parse_query(qs: &str) -> Result<BTreeMap<String, String>, Reply> {
    let mut query = BTreeMap::new();
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(
            percent_decode(k).ok_or_else(|| Reply::text(400, "bad percent-encoding"))?,
            percent_decode(v).ok_or_else(|| Reply::text(400, "bad percent-encoding"))?,
        );
    }
    Ok(query)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decides the reply to a request.
pub(crate) fn route(state: &AdminState, req: &Request) -> Reply {
    // The page's own files hold no data: served before the token check, so the
    // page can load and ask for the token.
    if let Some(r) = dashboard::serve(&req.method, &req.path) {
        return r;
    }
    if let Some(token) = &state.token {
        let ok = req
            .authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|t| crate::secret::same(t.as_bytes(), token.as_bytes()));
        if !ok {
            return Reply::text(401, "missing or wrong bearer token");
        }
    }
    let get = req.method == "GET";
    let post = req.method == "POST";
    match req.path.as_str() {
        "/metrics" if get => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: {
                let mut body = exposition::render(&state.metrics, &state.snap.load(), &state.reload);
                if let Some(f) = &state.fleet {
                    body.push_str(&f.render_metrics());
                }
                body.push_str(&shed_metrics(&state.shed));
                crate::latency::probe::render_metrics(&mut body);
                body.push_str(&ramp::render_metrics(state));
                body
            },
        },
        "/status" if get => status(state),
        "/explain" if get => explain(state, req),
        "/v1/transitions" if get => transitions(state),
        "/v1/map" if get => map::request(state, req),
        "/v1/latency/matrix" if get => latency::matrix(state, req),
        "/v1/override" if post => set_override(state, req),
        "/v1/weight" if post => set_weight(state, req),
        "/v1/verdict" if post => set_verdict(state, req),
        "/v1/load" if post => push_load(state, req),
        "/v1/dial" if post => set_dial(state, req),
        "/v1/ramp" if post => ramp::request(state, req),
        "/metrics" | "/status" | "/explain" | "/v1/transitions" | "/v1/map"
        | "/v1/latency/matrix" => {
            Reply::text(405, "use GET")
        }
        "/v1/override" | "/v1/weight" | "/v1/verdict" | "/v1/load" | "/v1/dial" | "/v1/ramp" => {
            Reply::text(405, "use POST")
        }
        _ => Reply::text(
            404,
            "not found; try /, /metrics, /status, /explain, /v1/transitions, /v1/map, /v1/latency/matrix, /v1/override, /v1/weight, /v1/verdict, /v1/load, /v1/dial, /v1/ramp",
        ),
    }
}

fn param<'a>(req: &'a Request, key: &str) -> Result<&'a str, Reply> {
    req.query
        .get(key)
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Reply::text(400, format!("missing query parameter {key}")))
}

/// `target` must name a known region or endpoint of the serving configuration.
fn check_target(state: &AdminState, target: &str) -> Result<(), Reply> {
    let known = state.snap.load().health.known_names();
    if known.iter().any(|k| k == target) {
        Ok(())
    } else {
        Err(Reply::text(
            400,
            format!(
                "unknown target {target:?}; use region:NAME or endpoint:NAME/REGION, one of: {}",
                known.join(" ")
            ),
        ))
    }
}

fn set_override(state: &AdminState, req: &Request) -> Reply {
    let (target, action) = match (param(req, "target"), param(req, "action")) {
        (Ok(t), Ok(a)) => (t, a),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = check_target(state, target) {
        return r;
    }
    let o = match action {
        "drain" => Override::Drain,
        "force-up" => Override::ForceUp,
        "force-down" => Override::ForceDown,
        "undrain" | "clear" => Override::None,
        other => {
            return Reply::text(
                400,
                format!("action {other:?}; use drain, undrain, force-up, force-down or clear"),
            )
        }
    };
    let snap = state.snap.load();
    snap.health
        .table()
        .set_named_override_by(target, o, "admin API");
    snap.health.refresh();
    info!(target, action, "override set");
    save_state(state);
    if let Some(f) = &state.fleet {
        f.submit(Op::Override(target.to_string(), o));
    }
    Reply::json(json!({ "target": target, "override": o.to_string(), "fleet": fleet_note(state) }))
}

fn set_weight(state: &AdminState, req: &Request) -> Reply {
    let target = match param(req, "target") {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_target(state, target) {
        return r;
    }
    let weight = match req.query.get("weight").map(|s| s.as_str()) {
        None | Some("") | Some("clear") => None,
        Some(w) => match w.parse::<u32>() {
            Ok(w) if w < u32::MAX => Some(w),
            _ => {
                return Reply::text(
                    400,
                    format!("weight {w:?}: use a whole number (0 drains), or clear"),
                )
            }
        },
    };
    let snap = state.snap.load();
    if let Ok(mut w) = snap.health.operator_weights().lock() {
        match weight {
            Some(v) => {
                w.insert(target.to_string(), v);
            }
            None => {
                w.remove(target);
            }
        }
    }
    snap.health.refresh();
    info!(target, ?weight, "weight set");
    save_state(state);
    if let Some(f) = &state.fleet {
        f.submit(Op::Weight(target.to_string(), weight));
    }
    Reply::json(json!({ "target": target, "weight": weight, "fleet": fleet_note(state) }))
}

/// `POST /v1/verdict?target=&verdict=down|up|clear&ttl=60s[&source=]`: a
/// verdict from the operator's monitoring, in force until its ttl runs out.
fn set_verdict(state: &AdminState, req: &Request) -> Reply {
    let (target, verdict) = match (param(req, "target"), param(req, "verdict")) {
        (Ok(t), Ok(v)) => (t, v),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    if let Err(r) = check_target(state, target) {
        return r;
    }
    let snap = state.snap.load();
    let verdicts = snap.health.table().verdicts();
    let now = std::time::SystemTime::now();
    let health = match verdict {
        "down" => health::Health::Down,
        "up" => health::Health::Up,
        "clear" => {
            let had = verdicts.clear(target);
            snap.health.refresh();
            info!(target, "pushed verdict cleared");
            if let Some(f) = &state.fleet {
                f.submit(Op::Verdict(target.to_string(), None));
            }
            return Reply::json(json!({ "target": target, "verdict": null, "had": had }));
        }
        other => return Reply::text(400, format!("verdict {other:?}; use down, up or clear")),
    };
    let ttl = match param(req, "ttl").map(crate::config::values::parse_duration) {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Reply::text(400, format!("ttl: {e}")),
        Err(r) => return r,
    };
    let source = req.query.get("source").map(|s| s.as_str()).unwrap_or("");
    match verdicts.push(target, health, ttl, source, now) {
        Ok(p) => {
            snap.health.refresh();
            info!(target, verdict, ttl = ?ttl, source, "pushed verdict");
            if let Some(f) = &state.fleet {
                f.submit(Op::Verdict(target.to_string(), Some(p.clone())));
            }
            Reply::json(json!({
                "target": target,
                "verdict": p.health.to_string(),
                "expires_at": secs(p.until),
            }))
        }
        Err(e) => Reply::text(400, e.to_string()),
    }
}

/// `POST /v1/load?region=&value=&ttl=`: a load figure for a region whose
/// `[shed.REGION]` takes pushed values, counting until its ttl runs out.
fn push_load(state: &AdminState, req: &Request) -> Reply {
    let (region, value, ttl) = match (param(req, "region"), param(req, "value"), param(req, "ttl"))
    {
        (Ok(r), Ok(v), Ok(t)) => (r, v, t),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let Ok(value) = value.parse::<f64>() else {
        return Reply::text(400, format!("value {value:?} is not a number"));
    };
    let ttl = match crate::config::values::parse_duration(ttl) {
        Ok(d) => d,
        Err(e) => return Reply::text(400, format!("ttl: {e}")),
    };
    match state
        .shed
        .push_load(region, value, ttl, std::time::SystemTime::now())
    {
        Ok(()) => {
            debug!(region, value, "load pushed");
            Reply::json(json!({ "region": region, "load": value }))
        }
        Err(e) => Reply::text(400, e),
    }
}

/// Every second until `stop`: drops the pushed verdicts whose time is up and,
/// when any did, recomputes what queries read, so a dead pusher stops counting.
async fn expire_verdicts(snap: SnapshotHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let s = snap.load();
        let gone = s
            .health
            .table()
            .verdicts()
            .expire(std::time::SystemTime::now());
        if !gone.is_empty() {
            s.health.refresh();
            info!(targets = %gone.join(" "), "pushed verdicts expired");
        }
    }
}

/// `POST /v1/dial?target=&percent=`: a region's or endpoint's traffic dial,
/// 0-100, or `clear` (100 and clear both remove it).
fn set_dial(state: &AdminState, req: &Request) -> Reply {
    let target = match param(req, "target") {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_target(state, target) {
        return r;
    }
    let dial = match req.query.get("percent").map(|s| s.trim_end_matches('%')) {
        None | Some("") | Some("clear") => None,
        Some(d) => match d.parse::<u8>() {
            Ok(d) if d < crate::policy::dial::FULL => Some(d),
            Ok(crate::policy::dial::FULL) => None,
            _ => {
                return Reply::text(
                    400,
                    format!("percent {d:?}: use a whole number from 0 to 100, or clear"),
                )
            }
        },
    };
    apply_dial(state, target, dial, "admin API");
    Reply::json(json!({
        "target": target,
        "percent": dial.unwrap_or(crate::policy::dial::FULL),
        "fleet": fleet_note(state),
    }))
}

/// Sets (`None`: clears) a dial here, in the state file and, with `[fleet]`,
/// in etcd for every instance.
fn apply_dial(state: &AdminState, target: &str, dial: Option<u8>, by: &str) {
    let snap = state.snap.load();
    if let Ok(mut m) = snap.health.operator_dials().lock() {
        match dial {
            Some(v) => {
                m.insert(target.to_string(), v);
            }
            None => {
                m.remove(target);
            }
        }
    }
    snap.health.refresh();
    info!(target, ?dial, by, "dial set");
    save_state(state);
    if let Some(f) = &state.fleet {
        f.submit(Op::Dial(target.to_string(), dial));
    }
}

/// What a change's reply says about the other instances.
fn fleet_note(state: &AdminState) -> Option<&'static str> {
    state
        .fleet
        .as_ref()
        .map(|_| "queued for etcd: every instance applies it once written")
}

fn explain(state: &AdminState, req: &Request) -> Reply {
    let name = match param(req, "name") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let client = req.query.get("client").map(|s| s.as_str()).unwrap_or("");
    let (addr, ecs) = match crate::answer::query::parse_client(client) {
        Ok(c) => c,
        Err(e) => return Reply::text(400, e.to_string()),
    };
    let qname = match crate::zone::Name::parse(name, Some(&crate::zone::Name::root())) {
        Ok(n) => n,
        Err(e) => return Reply::text(400, format!("name: {e}")),
    };
    let snap = state.snap.load();
    match crate::answer::handler::explain(&snap, qname.wire(), ecs.as_ref(), addr) {
        Some(mut lines) => {
            let now = std::time::SystemTime::now();
            for (name, p) in snap.health.table().verdicts().live(now) {
                lines.push(format!(
                    "pushed verdict: {name} {} for {}s more{}",
                    p.health,
                    p.until.duration_since(now).unwrap_or_default().as_secs(),
                    if p.source.is_empty() {
                        String::new()
                    } else {
                        format!(" (from {})", p.source)
                    }
                ));
            }
            Reply::text(200, lines.join("\n"))
        }
        None => Reply::text(404, format!("{qname} is not a steered name we serve")),
    }
}

/// Seconds since the Unix epoch, as `/status` gives times.
fn secs(t: std::time::SystemTime) -> u64 {
    crate::clock::unix_secs(t)
}

/// The last health transitions, newest first.
fn transitions(state: &AdminState) -> Reply {
    let snap = state.snap.load();
    let list: Vec<_> = snap
        .health
        .table()
        .recent_transitions()
        .into_iter()
        .map(|r| {
            json!({
                "at": secs(r.at),
                "target": r.target,
                "from": r.from,
                "to": r.to,
                "reason": r.reason,
            })
        })
        .collect();
    Reply::json(json!({ "transitions": list }))
}

/// `signpost_shed_dial_percent{region}`: the dial load shedding asks for.
fn shed_metrics(dials: &health::ShedDials) -> String {
    let all = dials.status();
    if all.is_empty() {
        return String::new();
    }
    let mut out = String::from("# HELP signpost_shed_dial_percent The traffic dial load shedding asks for, per region.\n# TYPE signpost_shed_dial_percent gauge\n");
    for (region, dial, _) in all {
        out.push_str(&format!(
            "signpost_shed_dial_percent{{region=\"{}\"}} {dial}\n",
            crate::metrics::escape(&region)
        ));
    }
    out.push_str("# HELP signpost_shed_moves_total Moves of the dial load shedding asks for, per region.\n# TYPE signpost_shed_moves_total counter\n");
    for (region, n) in dials.moves() {
        out.push_str(&format!(
            "signpost_shed_moves_total{{region=\"{}\"}} {n}\n",
            crate::metrics::escape(&region)
        ));
    }
    out
}

/// The pushed verdicts in force, for `/status`.
fn verdicts_json(snap: &crate::answer::snapshot::Snapshot) -> serde_json::Value {
    let now = std::time::SystemTime::now();
    let live: BTreeMap<String, serde_json::Value> = snap
        .health
        .table()
        .verdicts()
        .live(now)
        .into_iter()
        .map(|(k, p)| {
            let v = json!({
                "verdict": p.health.to_string(),
                "pushed_at": secs(p.at),
                "expires_at": secs(p.until),
                "source": p.source,
            });
            (k, v)
        })
        .collect();
    json!(live)
}

fn status(state: &AdminState) -> Reply {
    let snap = state.snap.load();
    let zones: Vec<_> = snap
        .zones
        .zones()
        .iter()
        .enumerate()
        .map(|(zi, z)| {
            let steered = snap.steering.get(zi).map_or(&[][..], |s| &s.names[..]);
            json!({
                "origin": z.origin.to_string(),
                "serial": z.serial,
                "source": z.source.display().to_string(),
                "steered_names": steered.iter().map(|n| n.name.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let table = snap.health.table();
    let targets: Vec<_> = table
        .status_all()
        .into_iter()
        .map(|t| {
            json!({
                "target": t.key,
                "status": t.status.to_string(),
                "probed": t.probed.to_string(),
                "override": t.operator_override.to_string(),
                "last_probe": t.last.as_ref().map(|l| json!({
                    "ok": l.ok,
                    "detail": l.detail,
                    "latency_ms": l.latency.as_secs_f64() * 1000.0,
                })),
                "last_probe_at": t.last_at.map(secs),
                "transitions": t.transitions,
                "local": t.local.to_string(),
                "votes": state.fleet.as_ref().map(|f| f.votes_of(&t.key, t.local)),
            })
        })
        .collect();
    let mut endpoints = Vec::new();
    for z in &snap.steering {
        for n in &z.names {
            for e in &n.endpoints {
                use crate::policy::HealthView;
                endpoints.push(json!({
                    "endpoint": format!("endpoint:{}", e.label),
                    "region": z.policy.regions.get(e.region as usize).map(|r| r.name.clone()),
                    "up": snap.health.endpoint_up(e),
                    "drained": snap.health.drained(e),
                    "weight": snap.health.weight(e),
                    "dial": snap.health.dial(e),
                    "checked": !e.probes.is_empty(),
                    "name": n.name.to_string(),
                    "override": snap.health.override_in_force(e).to_string(),
                    "pushed_down": snap.health.pushed_down(e),
                    "targets": snap.health.target_keys(e),
                }));
            }
        }
    }
    let geo = snap
        .geo
        .database
        .as_ref()
        .map(|d| json!({ "type": d.database_type(), "build_epoch": d.build_epoch() }));
    let reload = &state.reload;
    use std::sync::atomic::Ordering::Relaxed;
    let last_errors = reload
        .last_errors
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    Reply::json(json!({
        "generation": snap.generation,
        "loaded_at": secs(snap.loaded_at),
        "zones": zones,
        "geo_database": geo,
        "endpoints": endpoints,
        "targets": targets,
        "overrides": table.named_overrides().iter().map(|(k, v)| (k.clone(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "weights": snap.health.operator_weights().lock().map(|w| w.clone()).unwrap_or_default(),
        "verdicts": verdicts_json(&snap),
        "shed": state.shed.status().into_iter().map(|(r, dial, load)| (r, json!({ "dial": dial, "load": load }))).collect::<BTreeMap<_, _>>(),
        "dials": snap.health.operator_dials().lock().map(|d| d.clone()).unwrap_or_default(),
        "region_dials": snap.health.region_dials(),
        "ramps": ramp::status(state),
        "fleet": state.fleet.as_ref().map(|f| f.status_json()),
        "reload": {
            "successes": reload.successes.load(Relaxed),
            "failures": reload.failures.load(Relaxed),
            "last_success": reload.last_success.load(Relaxed),
            "last_failure": reload.last_failure.load(Relaxed),
            "last_errors": last_errors,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("target=region%3Aeu-west&action=drain+now&flag")
            .ok()
            .unwrap();
        assert_eq!(q.get("target").map(|s| s.as_str()), Some("region:eu-west"));
        assert_eq!(q.get("action").map(|s| s.as_str()), Some("drain now"));
        assert_eq!(q.get("flag").map(|s| s.as_str()), Some(""));
        assert!(parse_query("a=%zz").is_err());
        assert!(parse_query("a=%4").is_err());
        assert!(parse_query("a=%ff").is_err());
    }
}
