//! HTTP/1.1 probes on hyper's connection-level client: one request on a fresh
//! connection (plain TCP, or TLS from [`super::tls`]), the status, and, only when the
//! check looks into it, up to 64 KiB of the body.
//!
//! hyper does the protocol: framing by Content-Length, chunked coding or the end of
//! the connection (RFC 9112 §6.3), interim 1xx responses, HEAD, 204 and 304 without a
//! body. We choose the connection (so that `probe_source` and `sni` hold) and bound
//! what is read.

use http::header::{HeaderValue, ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::{Method, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::ProbeError;

/// Response heads above this are refused: a health endpoint has no reason to send
/// more, and the limit bounds memory per probe. (hyper's read buffer; it accepts no
/// less than 8 KiB.)
const MAX_HEAD: usize = 16 * 1024;
/// How much of the body `body_contains` searches.
pub(crate) const MAX_BODY: usize = 64 * 1024;

pub(super) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub expect: &'a [u16],
    pub body_contains: Option<&'a str>,
}

impl Request<'_> {
    /// The request. Refuses values that would break the request line or smuggle a
    /// header (RFC 9112 §3, §5): config loading should have caught them.
    pub fn build(&self) -> Result<http::Request<Empty<Bytes>>, ProbeError> {
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| ProbeError::BadCheck(format!("method {:?}", self.method)))?;
        let path = if self.path.is_empty() { "/" } else { self.path };
        // Origin form (RFC 9112 §3.2.1): a path and query, no scheme or authority.
        let uri = path
            .parse::<Uri>()
            .ok()
            .filter(|u| u.scheme().is_none() && u.authority().is_none())
            .ok_or_else(|| ProbeError::BadCheck(format!("path {path:?}")))?;
        let host = HeaderValue::from_str(self.host)
            .ok()
            .filter(|h| !h.is_empty() && !h.as_bytes().contains(&b' '))
            .ok_or_else(|| ProbeError::BadCheck(format!("host {:?}", self.host)))?;
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, host)
            .header(USER_AGENT, "signpost-health")
            .header(ACCEPT, "*/*")
            // A probe asks once; a server that keeps the connection open anyway is
            // fine, since hyper finds the body's end by its framing.
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| ProbeError::BadCheck(e.to_string()))
    }

    fn status_ok(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..=399).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }
}

/// Sends the request over `io` and judges the response.
///
/// The connection is driven in this task, beside the request, so that dropping the
/// probe (its timeout) drops the connection too: nothing is left running.
pub(super) async fn exchange<S>(io: S, req: &Request<'_>) -> Result<String, ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = req.build()?;
    let (mut sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(http_error)?;
    let work = async {
        let resp = sender.send_request(request).await.map_err(http_error)?;
        judge(req, resp).await
    };
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = &mut work => r,
        done = &mut conn => match done {
            // The connection ended cleanly (the response was read whole): what the
            // request side has is the answer.
            Ok(()) => work.await,
            Err(e) => Err(http_error(e)),
        },
    }
}

async fn judge(req: &Request<'_>, resp: http::Response<Incoming>) -> Result<String, ProbeError> {
    let status = resp.status().as_u16();
    if !req.status_ok(status) {
        return Err(ProbeError::Status(status));
    }
    let Some(needle) = req.body_contains else {
        return Ok(format!("HTTP {status}"));
    };
    match search_body(resp.into_body(), needle.as_bytes()).await? {
        Search::Found => Ok(format!("HTTP {status}, body has {needle:?}")),
        Search::NotFound => Err(ProbeError::Body {
            status,
            needle: needle.to_string(),
        }),
        Search::Limit => Err(ProbeError::BodyLimit {
            status,
            needle: needle.to_string(),
            limit_kib: MAX_BODY / 1024,
        }),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Search {
    Found,
    /// Not in what was read: the body ended there, or (while feeding) more may come.
    NotFound,
    /// The first [`MAX_BODY`] bytes lack it; the rest was not read.
    Limit,
}

/// Reads the body frame by frame until `needle` shows up, the body ends, or
/// [`MAX_BODY`] bytes were read. Stops as soon as the needle is seen, so a server
/// that sends more (or never ends the body) does not hold a passing probe.
async fn search_body(mut body: Incoming, needle: &[u8]) -> Result<Search, ProbeError> {
    if needle.is_empty() {
        return Ok(Search::Found);
    }
    let mut seen = Vec::new();
    let mut finder = Finder::new(needle);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(http_error)?;
        // Trailers are not body.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match finder.feed(&mut seen, &data) {
            Search::NotFound => {}
            found_or_limit => return Ok(found_or_limit),
        }
    }
    Ok(Search::NotFound)
}

/// Searches a body that arrives in pieces, each byte compared against the needle
/// about once (only the needle's length of overlap is searched again).
struct Finder<'a> {
    needle: &'a [u8],
    /// Offset in the kept body from which no match has been ruled out yet.
    from: usize,
}

impl<'a> Finder<'a> {
    fn new(needle: &'a [u8]) -> Self {
        Finder { needle, from: 0 }
    }

    /// Adds `data` to `kept` (up to [`MAX_BODY`] in all) and searches it; `Limit`
    /// once `kept` is full without the needle.
    fn feed(&mut self, kept: &mut Vec<u8>, data: &[u8]) -> Search {
        if self.needle.is_empty() {
            return Search::Found;
        }
        let room = MAX_BODY - kept.len();
        kept.extend_from_slice(&data[..data.len().min(room)]);
        if kept[self.from..]
            .windows(self.needle.len())
            .any(|w| w == self.needle)
        {
            return Search::Found;
        }
        self.from = kept.len().saturating_sub(self.needle.len() - 1);
        if data.len() > room || (kept.len() == MAX_BODY && !data.is_empty()) {
            Search::Limit
        } else {
            Search::NotFound
        }
    }
}

/// An operator's reason for a failed exchange. hyper's errors wrap the I/O error
/// that caused them, where there was one.
pub(super) fn http_error(e: hyper::Error) -> ProbeError {
    if let Some(io) = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>())
    {
        use std::io::ErrorKind;
        return match io.kind() {
            // hyper reports a malformed body (a bad chunk) as invalid data or input,
            // and a body cut short by the end of the connection as an early EOF.
            ErrorKind::InvalidData | ErrorKind::InvalidInput => ProbeError::BadHttp(io.to_string()),
            ErrorKind::UnexpectedEof => ProbeError::Closed("a complete response"),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => ProbeError::Reset,
            kind => ProbeError::receive(std::io::Error::new(kind, io.to_string())),
        };
    }
    if e.is_incomplete_message() {
        ProbeError::Closed("a complete response")
    } else if e.is_parse_too_large() {
        ProbeError::BadHttp(format!("header section over {} KiB", MAX_HEAD / 1024))
    } else if e.is_parse() {
        ProbeError::BadHttp(e.to_string())
    } else {
        ProbeError::Receive(std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(method: &'a str, path: &'a str, host: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            host,
            expect: &[],
            body_contains: None,
        }
    }

    #[test]
    fn request_refuses_injection() {
        let r = req("GET", "", "a.example").build().unwrap();
        assert_eq!(r.uri(), "/");
        assert_eq!(r.headers()[HOST], "a.example");
        assert_eq!(
            req("GET", "/x?y=1", "a").build().unwrap().uri().to_string(),
            "/x?y=1"
        );
        assert!(req("GET", "/x\r\nEvil: 1", "a").build().is_err());
        assert!(req("GET", "http://elsewhere/", "a").build().is_err());
        assert!(req("GET", "/", "a\r\nEvil: 1").build().is_err());
        assert!(req("GET", "/", "").build().is_err());
        assert!(req("GE T", "/", "a").build().is_err());
    }

    #[test]
    fn expected_statuses() {
        let mut r = req("GET", "/", "h");
        assert!(r.status_ok(200) && r.status_ok(302) && r.status_ok(399));
        assert!(!r.status_ok(404) && !r.status_ok(199));
        r.expect = &[204, 503];
        assert!(r.status_ok(503) && !r.status_ok(200));
    }

    #[test]
    fn finder_sees_a_needle_split_across_pieces() {
        let body = b"status: green, all good";
        for split in 0..body.len() {
            let (mut kept, mut f) = (Vec::new(), Finder::new(b"green"));
            let a = f.feed(&mut kept, &body[..split]);
            let b = f.feed(&mut kept, &body[split..]);
            assert!(a == Search::Found || b == Search::Found, "split at {split}");
        }
        let (mut kept, mut f) = (Vec::new(), Finder::new(b"red"));
        for b in body {
            assert_eq!(f.feed(&mut kept, &[*b]), Search::NotFound);
        }
    }

    #[test]
    fn finder_stops_at_the_body_limit() {
        let (mut kept, mut f) = (Vec::new(), Finder::new(b"needle"));
        let piece = [b'x'; 4096];
        let mut last = Search::NotFound;
        for _ in 0..20 {
            last = f.feed(&mut kept, &piece);
            if last != Search::NotFound {
                break;
            }
        }
        assert_eq!(last, Search::Limit);
        assert_eq!(kept.len(), MAX_BODY);
        // A needle straddling the limit is not found: only 64 KiB are searched.
        let (mut kept, mut f) = (Vec::new(), Finder::new(b"needle"));
        let mut body = vec![b'x'; MAX_BODY - 3];
        body.extend_from_slice(b"needle");
        assert_eq!(f.feed(&mut kept, &body), Search::Limit);
    }
}
