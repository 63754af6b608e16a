//! DNS over HTTPS (RFC 8484) on hyper: HTTP/2 (ALPN "h2", RFC 8484 §5.2) and
//! HTTP/1.1 over TLS, GET with `?dns=` (base64url) and POST with an
//! `application/dns-message` body, on one configured path. The DNS message goes
//! through the same handler as over TCP (no truncation: HTTP carries any size), so
//! the answer bytes are those of every other transport; HTTP adds only
//! `Cache-Control: max-age` = the smallest TTL in the answer (§5.1).
//!
//! Bad requests get a one-line text reason: 400 (no or undecodable `dns`, not a
//! DNS query), 404 (another path), 405 (another method), 408 (a body that does not
//! arrive in time), 413 (a message over 65535 bytes), 415 (a POST of another type),
//! 503 (the server-wide budget for request bodies is spent; see below).
//! Bounds: the connection caps and lifetime of every stream transport, the handshake
//! and first-request deadline, the idle timeout between requests, 100 concurrent
//! HTTP/2 streams, 128 KiB of head, HTTP/2 flow-control windows of 64 KiB (what
//! a client may send before we read it: one connection holds at most that much
//! unread, whatever its streams), and a server-wide budget of bytes for requests
//! waiting for their body (`doh.body_budget_kib`): a POST that cannot get its
//! head's and body's bytes from it is refused with 503, so a flood of slow bodies
//! holds at most the budget, not 100 streams x 64 KiB x every connection.
//! The client is the TLS peer's address; response rate limiting does not apply
//! (as over TCP, a handshaken peer is not spoofed).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::GeneralPurposeConfig;
use base64::engine::{DecodePaddingMode, GeneralPurpose};
use base64::Engine;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

use super::conns::Conn;
use super::tcp::Framed;
use super::tls;
use crate::answer::handler::{handle, Transport};

/// The largest DNS message (RFC 1035 §4.2.2's 16-bit length; RFC 8484 §6).
const MAX_MESSAGE: usize = 65535;
/// Request head bound: a GET of the largest message is 87 380 base64 characters.
const MAX_HEAD: usize = 128 << 10;
const MAX_STREAMS: u32 = 100;
/// HTTP/2 flow-control windows, stream and connection (the least RFC 9113 allows
/// for the connection): a whole DNS message fits one stream's window.
const WINDOW: u32 = 65535;
/// The server-wide default of [`Doh::budget`]: 128 bodies of the largest DNS
/// message, or thousands of common ones, in flight.
pub(crate) const DEFAULT_BODY_BUDGET: usize = 8 << 20;
const DNS_MESSAGE: &str = "application/dns-message";

/// base64url, unpadded as RFC 8484 §4.1 sends it; padding is accepted too.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type Reply = Response<Full<Bytes>>;

/// Why a request carries no DNS message: its status and one line saying why.
#[derive(Debug)]
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad(why: &str) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, format!("bad request: {why}"))
    }

    fn too_large() -> Refusal {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("payload too large: a DNS message is at most {MAX_MESSAGE} bytes"),
        )
    }

    /// A one-line plain text reply.
    fn reply(self) -> Reply {
        let Refusal(status, mut line) = self;
        line.push('\n');
        let mut r = Response::new(Full::new(Bytes::from(line)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        r
    }
}

/// What every DoH connection shares.
pub(super) struct Doh {
    /// The snapshot, counters and query log, as the framed transports use them.
    pub path: Arc<Framed>,
    /// Where queries go, like "/dns-query".
    pub uri_path: String,
    /// The query log's clock.
    pub started: Instant,
    /// Bytes of POST requests (head and body so far) waiting for their body, over
    /// all connections; one permit a byte.
    pub budget: Arc<Semaphore>,
}

/// One accepted DoH connection: the certificate serving now, then HTTP requests
/// until the client closes, goes idle, or `stop`.
pub(super) async fn connection(
    stream: TcpStream,
    ip: IpAddr,
    conn: Arc<Conn>,
    doh: Arc<Doh>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = doh.path.limits;
    let config = doh.path.snap.load().tls.as_ref().map(|t| t.doh.clone());
    let first_by = conn.accepted + limits.handshake_timeout;
    let Some(session) = tls::handshake(stream, config, first_by).await else {
        return;
    };
    // The first request is due by the handshake deadline, later ones within the
    // idle timeout of the last.
    let first = first_by
        .saturating_duration_since(tokio::time::Instant::now())
        .min(limits.idle_timeout);
    let activity = Arc::new(Activity::new(first, conn));
    let service = {
        let activity = activity.clone();
        service_fn(move |req: Request<Incoming>| {
            let (doh, busy) = (doh.clone(), activity.begin());
            async move {
                let reply = respond(req, &doh, ip, limits.idle_timeout).await;
                drop(busy);
                Ok::<Reply, Infallible>(reply)
            }
        })
    };
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(MAX_HEAD);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(MAX_HEAD as u32)
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .adaptive_window(false)
        .max_send_buf_size(MAX_MESSAGE + 1024);
    let conn = http.serve_connection(TokioIo::new(session), service);
    tokio::pin!(conn);
    // HTTP keeps connections open between requests: close one that has had no
    // request in flight for the idle timeout, as the TCP path does (RFC 7766 §6.2.3),
    // and every one on shutdown, letting requests in flight finish.
    let mut closing = false;
    loop {
        let idle_at = tokio::time::Instant::from_std(activity.idle_at(limits.idle_timeout));
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = tokio::time::sleep_until(idle_at), if !closing => {
                if activity.idle(limits.idle_timeout) {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

/// When a connection last finished a request, and how many it has in flight.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
    busy: AtomicUsize,
    /// Until the first request: how long after `base` it is due.
    first: Duration,
    any: std::sync::atomic::AtomicBool,
    /// The connection's place among the transport's: each request counts as its
    /// activity, so that an idle connection is the one closed for a newcomer.
    conn: Arc<Conn>,
}

/// One request in flight; its end counts as activity.
struct Busy(Arc<Activity>);

impl Activity {
    fn new(first: Duration, conn: Arc<Conn>) -> Activity {
        Activity {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            first,
            any: std::sync::atomic::AtomicBool::new(false),
            conn,
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.any.store(true, Ordering::Relaxed);
        self.conn.touch();
        Busy(self.clone())
    }

    fn idle_at(&self, idle: Duration) -> Instant {
        if !self.any.load(Ordering::Relaxed) {
            return self.base + self.first;
        }
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    fn idle(&self, idle: Duration) -> bool {
        self.busy.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_at(idle)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = self.0.base.elapsed().as_millis() as u64;
        self.0.last_ms.store(ms, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
        self.0.conn.touch();
    }
}

/// One HTTP request: the DNS message out of it, answered, or the reason it is not.
async fn respond(req: Request<Incoming>, doh: &Doh, peer: IpAddr, wait: Duration) -> Reply {
    // Held until the answer is written: the bytes the request took of the budget.
    let mut _charged = None;
    let msg = if req.uri().path() != doh.uri_path {
        Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("not found: DNS queries go to {}", doh.uri_path),
        ))
    } else {
        match *req.method() {
            Method::GET => get_message(req.uri().query()),
            Method::POST => post_message(req, wait, &doh.budget)
                .await
                .map(|(msg, permit)| {
                    _charged = permit;
                    msg
                }),
            _ => Err(Refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed: use GET ?dns= or POST {DNS_MESSAGE}"),
            )),
        }
    };
    let msg = match msg {
        Ok(m) => m,
        Err(refusal) => return refusal.reply(),
    };
    let path = &doh.path;
    let mut out = Vec::with_capacity(512);
    let observed = {
        let current = path.snap.load();
        let tapped = path.qlog.dnstap_sample();
        let o = handle(&current, &msg, peer, Transport::Tcp, &mut out);
        if path.qlog.wants(doh.started.elapsed().as_secs()) {
            path.qlog.log(&current, &msg, peer, path.label, &o);
        }
        if let Some(at) = tapped {
            let response = o.sent.then_some(out.as_slice());
            let proto = super::dnstap::Proto::Doh;
            path.qlog
                .tap(&current, at, proto, peer, None, &msg, response, &o);
        }
        o
    };
    path.counters.record(&observed, true);
    if !observed.sent {
        return Refusal::bad("the message is not a DNS query").reply();
    }
    let max_age = crate::answer::query::min_ttl(&out).unwrap_or(0);
    let mut r = Response::new(Full::new(Bytes::from(out)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

/// The message of a GET: the `dns` parameter, base64url (RFC 8484 §4.1).
fn get_message(query: Option<&str>) -> Result<Vec<u8>, Refusal> {
    let value = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("dns="))
        .ok_or_else(|| Refusal::bad("no dns= parameter (a base64url DNS query)"))?;
    // Four base64 characters carry three bytes: refuse what could not fit first.
    if value.len() > MAX_MESSAGE.div_ceil(3) * 4 {
        return Err(Refusal::too_large());
    }
    let msg = BASE64URL
        .decode(value)
        .map_err(|e| Refusal::bad(&format!("dns= is not base64url: {e}")))?;
    if msg.len() > MAX_MESSAGE {
        return Err(Refusal::too_large());
    }
    Ok(msg)
}

/// The message of a POST: the body, of type application/dns-message (§4.1), read
/// up to 65535 bytes and within `wait`, into bytes taken from `budget` (the head's
/// and the body's, as it arrives; the permit returned holds them).
async fn post_message(
    req: Request<Incoming>,
    wait: Duration,
    budget: &Arc<Semaphore>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), Refusal> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !ctype.is_some_and(|t| t.eq_ignore_ascii_case(DNS_MESSAGE)) {
        return Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported media type: POST a body of type {DNS_MESSAGE}"),
        ));
    }
    let head = head_bytes(&req);
    let mut body = req.into_body();
    let announced = body.size_hint().lower();
    if announced > MAX_MESSAGE as u64 {
        return Err(Refusal::too_large());
    }
    // The head and the announced body up front; bytes beyond, as they come.
    let mut permit = charge(budget, None, head + announced as usize)?;
    let mut charged = announced as usize;
    let mut msg = Vec::with_capacity(charged);
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Refusal::bad(&format!("body not read: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = msg.len() + data.len();
            if len > MAX_MESSAGE {
                return Err(Refusal::too_large());
            }
            if len > charged {
                permit = charge(budget, permit.take(), len - charged)?;
                charged = len;
            }
            msg.extend_from_slice(&data);
        }
        Ok(())
    };
    match timeout(wait, read).await {
        Ok(Ok(())) => Ok((msg, permit)),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => Err(Refusal(
            StatusCode::REQUEST_TIMEOUT,
            format!("request timeout: the body did not arrive within {wait:?}"),
        )),
    }
}

/// What a request's head takes while it waits: its target and header fields, with
/// the 32 bytes a field costs in HTTP/2 (RFC 9113 §6.5.2).
fn head_bytes<B>(req: &Request<B>) -> usize {
    let fields: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 32)
        .sum();
    req.uri().to_string().len() + fields
}

/// `n` more bytes from the budget, joined to `held`; 503 when there are not as many
/// free.
fn charge(
    budget: &Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
    n: usize,
) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
    if n == 0 {
        return Ok(held);
    }
    let busy = || {
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "service unavailable: too many request bodies in flight; retry".to_string(),
        )
    };
    let n = u32::try_from(n).map_err(|_| busy())?;
    let more = budget
        .clone()
        .try_acquire_many_owned(n)
        .map_err(|_| busy())?;
    Ok(Some(match held {
        Some(mut h) => {
            h.merge(more);
            h
        }
        None => more,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_parameter_decodes_with_or_without_padding() {
        assert_eq!(get_message(Some("dns=AAEC")).ok(), Some(vec![0, 1, 2]));
        assert_eq!(get_message(Some("x=1&dns=AAE")).ok(), Some(vec![0, 1]));
        assert_eq!(get_message(Some("dns=AAE=")).ok(), Some(vec![0, 1]));
        // base64url, not base64: '-' and '_' for 62 and 63.
        assert_eq!(get_message(Some("dns=-_8")).ok(), Some(vec![0xfb, 0xff]));
    }

    #[test]
    fn get_errors_have_their_status() {
        let status = |q: Option<&str>| get_message(q).err().map(|r| r.0);
        assert_eq!(status(None), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(Some("name=x")), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(Some("dns=a+b/")), Some(StatusCode::BAD_REQUEST));
        let huge = format!("dns={}", "A".repeat(90_000));
        assert_eq!(status(Some(&huge)), Some(StatusCode::PAYLOAD_TOO_LARGE));
    }
}
