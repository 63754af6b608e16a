//! The admin endpoint: a small HTTP/1.1 server, on loopback unless a bearer token
//! is configured. `GET /metrics` (Prometheus text), `GET /status` (JSON),
//! `GET /explain?name=&type=&client=`, and the override calls `signpost ctl` uses:
//! `POST /v1/override?target=&action=` and `POST /v1/weight?target=&weight=`.
//!
//! `GET /v1/transitions` lists the last health transitions, and `/` is the
//! dashboard (see [`dashboard`]).
//!
//! Requests are bounded (8 KiB head, 4 KiB body, 5 s to arrive); every bad request
//! gets a 4xx with a one-line message. One request per connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn};

mod dashboard;

use crate::fleet::{Fleet, Op};
use crate::health::{self, Override};
use crate::metrics::Metrics;
use crate::reload::ReloadStats;
use crate::snapshot::SnapshotHandle;

const MAX_HEAD: usize = 8 * 1024;
const MAX_BODY: usize = 4 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// With `[fleet]`: where overrides and weights go to reach every instance,
    /// and the votes `/status` shows.
    pub fleet: Option<Arc<Fleet>>,
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

/// Serves until `stop` fires.
pub async fn serve(listener: TcpListener, state: AdminState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let st = state.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection(stream, peer, st)).await;
                });
            }
        }
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, state: AdminState) {
    let reply = match read_request(&mut stream).await {
        Ok(req) => {
            let r = route(&state, &req);
            if r.status >= 400 {
                info!(peer = %peer, method = req.method, path = req.path, status = r.status, "admin request refused");
            }
            r
        }
        Err(r) => r,
    };
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(reply.body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

async fn read_request(stream: &mut TcpStream) -> Result<Request, Reply> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(Reply::text(431, "request head over 8 KiB"));
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Reply::text(400, "read error"))?;
        if n == 0 {
            return Err(Reply::text(
                400,
                "connection closed before the request ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| Reply::text(400, "request head is not UTF-8"))?;
    let mut req = parse_head(head)?;
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()
        .map_err(|_| Reply::text(400, "bad Content-Length"))?
        .unwrap_or(0);
    if length > MAX_BODY {
        return Err(Reply::text(413, "request body over 4 KiB"));
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Reply::text(400, "read error"))?;
        if n == 0 {
            return Err(Reply::text(400, "body shorter than Content-Length"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    req.body = body;
    Ok(req)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses the request line and the headers we use.
pub fn parse_head(head: &str) -> Result<Request, Reply> {
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Reply::text(400, "bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Reply::text(400, "only HTTP/1.x is spoken here"));
    }
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let mut query = BTreeMap::new();
    for pair in qs.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(
            percent_decode(k).ok_or_else(|| Reply::text(400, "bad percent-encoding"))?,
            percent_decode(v).ok_or_else(|| Reply::text(400, "bad percent-encoding"))?,
        );
    }
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        authorization,
        body: Vec::new(),
    })
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
pub fn route(state: &AdminState, req: &Request) -> Reply {
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
            .is_some_and(|t| t == token);
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
                let mut body = state.metrics.render(&state.snap.load(), &state.reload);
                if let Some(f) = &state.fleet {
                    body.push_str(&f.render_metrics());
                }
                body
            },
        },
        "/status" if get => status(state),
        "/explain" if get => explain(state, req),
        "/v1/transitions" if get => transitions(state),
        "/v1/override" if post => set_override(state, req),
        "/v1/weight" if post => set_weight(state, req),
        "/metrics" | "/status" | "/explain" | "/v1/transitions" => Reply::text(405, "use GET"),
        "/v1/override" | "/v1/weight" => Reply::text(405, "use POST"),
        _ => Reply::text(
            404,
            "not found; try /, /metrics, /status, /explain, /v1/transitions, /v1/override, /v1/weight",
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
    let (addr, ecs) = match crate::server::query::parse_client(client) {
        Ok(c) => c,
        Err(e) => return Reply::text(400, e.to_string()),
    };
    let qname = match crate::zone::Name::parse(name, Some(&crate::zone::Name::root())) {
        Ok(n) => n,
        Err(e) => return Reply::text(400, format!("name: {e}")),
    };
    let snap = state.snap.load();
    match crate::server::handler::explain(&snap, qname.wire(), ecs.as_ref(), addr) {
        Some(lines) => Reply::text(200, lines.join("\n")),
        None => Reply::text(404, format!("{qname} is not a steered name we serve")),
    }
}

/// Seconds since the Unix epoch, as `/status` gives times.
fn secs(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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

fn status(state: &AdminState) -> Reply {
    let snap = state.snap.load();
    let zones: Vec<_> = snap
        .zones
        .zones()
        .iter()
        .map(|z| {
            json!({
                "origin": z.origin.to_string(),
                "serial": z.serial,
                "source": z.source.display().to_string(),
                "steered_names": z.steered.iter().map(|n| n.name.to_string()).collect::<Vec<_>>(),
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
    for z in snap.zones.zones() {
        for n in &z.steered {
            for e in &n.endpoints {
                use crate::policy::HealthView;
                endpoints.push(json!({
                    "endpoint": format!("endpoint:{}", e.label),
                    "region": z.policy.regions.get(e.region as usize).map(|r| r.name.clone()),
                    "up": snap.health.endpoint_up(e),
                    "drained": snap.health.drained(e),
                    "weight": snap.health.weight(e),
                    "checked": !e.probes.is_empty(),
                    "name": n.name.to_string(),
                    "override": snap.health.override_in_force(e).to_string(),
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
    fn request_line_and_query_parsing() {
        let r = parse_head("POST /v1/override?target=region%3Aeu-west&action=drain HTTP/1.1\r\nAuthorization: Bearer x")
            .ok()
            .unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/override");
        assert_eq!(
            r.query.get("target").map(|s| s.as_str()),
            Some("region:eu-west")
        );
        assert_eq!(r.authorization.as_deref(), Some("Bearer x"));
        assert!(parse_head("GARBAGE").is_err());
        assert!(parse_head("GET / SPDY/3").is_err());
        assert!(parse_head("GET /?a=%zz HTTP/1.1").is_err());
    }
}
