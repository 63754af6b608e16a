//! What keeps a web page from driving the admin endpoint.
//!
//! The operator's browser can reach the endpoint on loopback, so any page it
//! opens can send requests there: a "simple" cross-origin POST (no custom
//! header) goes out without a preflight, and a page whose name an attacker
//! re-points at 127.0.0.1 (DNS rebinding) may even read the replies. So, on
//! every request, before any route:
//!
//! - `Host` must be one the endpoint answers to: its listen address, the address
//!   the connection came in on, `localhost`, `127.0.0.1` or `[::1]` with its
//!   port, or a value from `[admin] allowed_hosts` (as sent, port included).
//!   A rebound name is none of these.
//! - `Origin`, when sent, must be `http://` or `https://` and one of those hosts.
//! - `Sec-Fetch-Site: cross-site` or `same-site` is refused but for a GET that
//!   navigates (a link to the page); `<script src>`, `<img>` and `fetch` are
//!   not navigations.
//! - `OPTIONS` (a preflight) is refused, with no `Access-Control-Allow-*`.
//! - A change (any method but GET and HEAD) without a configured token needs
//!   the [`INTENT`] header, which no simple cross-origin request can carry; with
//!   a token, the `Authorization` header it needs does the same.
//!
//! Every reply also forbids framing and content sniffing ([`HEADERS`]).

use std::net::SocketAddr;

use hyper::header::{HOST, ORIGIN};
use hyper::http::request::Parts;

use super::Reply;

/// The header a change must carry when no token is configured. Any value will
/// do (`1`); what counts is that a browser cannot send it cross-origin without
/// a preflight, which this endpoint refuses.
pub const INTENT: &str = "x-signpost-request";

/// Sent with every reply: no framing (clickjacking of the drain buttons), no
/// content sniffing, and the page loads nothing but its own files.
pub(crate) const HEADERS: [(&str, &str); 3] = [
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-content-type-options", "nosniff"),
];

/// The `Host` values the endpoint answers to, lower-cased; the address a
/// connection came in on is added per request.
#[derive(Debug, Clone)]
pub(crate) struct Hosts {
    port: u16,
    names: Vec<String>,
}

/// `127.0.0.1`, `[::1]`: an address as it appears in a `Host` header.
fn host_of(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

impl Hosts {
    /// For an endpoint listening on `listen`, plus the operator's `extra`
    /// (exact `Host` values, such as `admin.example.net:5380`).
    pub fn new(listen: SocketAddr, extra: &[String]) -> Hosts {
        let port = listen.port();
        let mut names = Vec::new();
        for h in ["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()]
            .into_iter()
            .chain([host_of(&listen)])
        {
            names.push(format!("{h}:{port}"));
            // A browser leaves out the scheme's default port.
            if port == 80 {
                names.push(h);
            }
        }
        names.extend(extra.iter().map(|h| h.to_ascii_lowercase()));
        names.sort();
        names.dedup();
        Hosts { port, names }
    }

    /// True if `host` (a `Host` header's value) names this endpoint; `local` is
    /// the address the connection came in on.
    pub fn allows(&self, host: &str, local: Option<SocketAddr>) -> bool {
        let host = host.to_ascii_lowercase();
        if self.names.contains(&host) {
            return true;
        }
        local.is_some_and(|l| {
            let h = host_of(&l);
            host == format!("{h}:{}", self.port) || (self.port == 80 && host == h)
        })
    }

    /// True if `origin` (an `Origin` header's value) is this endpoint's own.
    fn allows_origin(&self, origin: &str, local: Option<SocketAddr>) -> bool {
        let origin = origin.to_ascii_lowercase();
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|h| !h.contains('/') && self.allows(h, local))
    }
}

/// The one value of header `name`, `Ok(None)` if absent; more than one, or one
/// that is not visible ASCII, is an error.
fn single<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(format!("more than one {name} header"));
    }
    v.to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| format!("the {name} header is not ASCII"))
}

/// Refuses a request a web page may have sent (see the module header);
/// `token` is whether the endpoint has one configured.
pub fn check(
    hosts: &Hosts,
    local: Option<SocketAddr>,
    parts: &Parts,
    token: bool,
) -> Result<(), Reply> {
    let host = match single(parts, HOST.as_str()) {
        Ok(Some(h)) => h,
        Ok(None) => return Err(Reply::text(400, "no Host header")),
        Err(e) => return Err(Reply::text(400, e)),
    };
    // An absolute request-target names the host too; it must agree.
    let target = parts.uri.authority().map(|a| a.as_str());
    if let Some(h) = [Some(host), target]
        .into_iter()
        .flatten()
        .find(|h| !hosts.allows(h, local))
    {
        return Err(Reply::text(
            403,
            // A rebound page can read this: it names no configured host.
            format!(
                "Host {h:?} is not this admin endpoint's (a page that re-pointed its name here?); \
                 use its listen address, localhost:{port} or 127.0.0.1:{port}, \
                 or add the name to [admin] allowed_hosts",
                port = hosts.port
            ),
        ));
    }
    match single(parts, ORIGIN.as_str()) {
        Ok(None) => {}
        Ok(Some(o)) if hosts.allows_origin(o, local) => {}
        Ok(Some(o)) => {
            return Err(Reply::text(
                403,
                format!(
                    "Origin {o:?} is another site's: the admin endpoint answers only its own pages"
                ),
            ))
        }
        Err(e) => return Err(Reply::text(403, e)),
    }
    let read = parts.method == "GET" || parts.method == "HEAD";
    let site = single(parts, "sec-fetch-site").unwrap_or(None);
    let mode = single(parts, "sec-fetch-mode").unwrap_or(None);
    if matches!(site, Some("cross-site" | "same-site")) && !(read && mode == Some("navigate")) {
        return Err(Reply::text(
            403,
            "a request from another site's page (Sec-Fetch-Site); open the dashboard itself",
        ));
    }
    if parts.method == "OPTIONS" {
        return Err(Reply::text(
            403,
            "no cross-origin requests: the admin endpoint answers no preflight",
        ));
    }
    if !read && !token && !parts.headers.contains_key(INTENT) {
        return Err(Reply::text(
            403,
            "a change needs the X-Signpost-Request header (signpost ctl and the dashboard \
             send it; with curl add -H 'X-Signpost-Request: 1'); nothing was changed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = hyper::Request::builder().method(method).uri("/status");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn hosts() -> Hosts {
        Hosts::new(
            "127.0.0.1:5380".parse().unwrap_or_else(|e| panic!("{e}")),
            &["Admin.Example.NET:5380".to_string()],
        )
    }

    fn status(method: &str, headers: &[(&str, &str)], token: bool) -> u16 {
        let local = "127.0.0.2:5380".parse().ok();
        match check(&hosts(), local, &parts(method, headers), token) {
            Ok(()) => 200,
            Err(r) => r.status,
        }
    }

    #[test]
    fn hosts_the_endpoint_answers_to() {
        for h in [
            "127.0.0.1:5380",
            "localhost:5380",
            "LOCALHOST:5380",
            "[::1]:5380",
            "admin.example.net:5380",
            "127.0.0.2:5380",
        ] {
            assert_eq!(status("GET", &[("host", h)], false), 200, "{h}");
        }
        for h in [
            "evil.example:5380",
            "127.0.0.1",
            "127.0.0.1:80",
            "localhost.:5380",
            "admin.example.net",
            "",
        ] {
            assert_eq!(status("GET", &[("host", h)], false), 403, "{h}");
        }
        assert_eq!(status("GET", &[], false), 400);
        assert_eq!(
            status(
                "GET",
                &[("host", "localhost:5380"), ("host", "evil:5380")],
                false
            ),
            400
        );
        // Port 80: the browser's bare name too.
        let h = Hosts::new(
            "127.0.0.1:80".parse().unwrap_or_else(|e| panic!("{e}")),
            &[],
        );
        assert!(h.allows("localhost", None) && h.allows("localhost:80", None));
    }

    #[test]
    fn origins_fetch_sites_preflights_and_changes() {
        let h = ("host", "127.0.0.1:5380");
        for o in [
            "http://127.0.0.1:5380",
            "http://localhost:5380",
            "https://admin.example.net:5380",
        ] {
            assert_eq!(
                status("POST", &[h, ("origin", o), (INTENT, "1")], false),
                200,
                "{o}"
            );
        }
        for o in [
            "http://127.0.0.2:8000",
            "null",
            "http://127.0.0.1:5381",
            "http://127.0.0.1:5380/x",
            "ftp://127.0.0.1:5380",
        ] {
            assert_eq!(
                status("POST", &[h, ("origin", o), (INTENT, "1")], false),
                403,
                "{o}"
            );
            assert_eq!(status("GET", &[h, ("origin", o)], false), 403, "{o}");
        }
        assert_eq!(
            status("POST", &[h], false),
            403,
            "a change without the header"
        );
        assert_eq!(
            status("POST", &[h], true),
            200,
            "with a token, the token decides"
        );
        assert_eq!(status("DELETE", &[h], false), 403);
        assert_eq!(status("OPTIONS", &[h, (INTENT, "1")], false), 403);
        let cross = ("sec-fetch-site", "cross-site");
        assert_eq!(
            status("GET", &[h, cross, ("sec-fetch-mode", "no-cors")], false),
            403
        );
        assert_eq!(
            status("GET", &[h, cross, ("sec-fetch-mode", "navigate")], false),
            200
        );
        assert_eq!(
            status(
                "POST",
                &[h, cross, ("sec-fetch-mode", "navigate"), (INTENT, "1")],
                false
            ),
            403
        );
        assert_eq!(
            status("GET", &[h, ("sec-fetch-site", "same-origin")], false),
            200
        );
    }
}
