//! The dashboard: a page at `/` of the admin endpoint that shows zones, regions,
//! endpoint health, probe results, answer rates and recent transitions, and can
//! drain a region. Three files embedded in the binary (no CDN, nothing fetched
//! from anywhere but this endpoint); they hold no data, so they are served
//! without the token. The page's script asks for everything else with the token
//! an operator types in, which it keeps in a variable only, and with the
//! `X-Signpost-Request` header a change needs (see `guard`).

use super::Reply;

const INDEX: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const LATENCY_JS: &str = include_str!("page/latency.js");
const STYLE: &str = include_str!("page/style.css");

/// The page's files, by path.
const ASSETS: [(&str, &str, &str); 4] = [
    ("/", "text/html; charset=utf-8", INDEX),
    ("/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/latency.js", "text/javascript; charset=utf-8", LATENCY_JS),
    ("/style.css", "text/css; charset=utf-8", STYLE),
];

/// The reply for a dashboard file, or `None` when the path is not one (the
/// caller then routes the request as an API call, token and all).
pub fn serve(method: &str, path: &str) -> Option<Reply> {
    let (_, content_type, body) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    if method != "GET" {
        return Some(Reply::text(405, "use GET"));
    }
    Some(Reply {
        status: 200,
        content_type,
        body: (*body).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_only_its_own_files() {
        for (path, _, body) in ASSETS {
            let reply = serve("GET", path).map(|r| (r.status, r.body));
            assert_eq!(reply, Some((200, body.to_string())));
            // No CDN, no third-party fonts: every URL the page names is ours.
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(!body.contains(scheme), "{path} names {scheme}");
            }
        }
        assert!(INDEX.contains("src=\"/app.js\"") && INDEX.contains("href=\"/style.css\""));
        // Data goes into the page as text, never as markup.
        for js in [APP_JS, LATENCY_JS] {
            assert!(!js.contains("innerHTML"), "no innerHTML in the scripts");
        }
        assert!(INDEX.contains("src=\"/latency.js\"") && INDEX.contains("id=\"latency-matrix\""));
        assert!(serve("GET", "/status").is_none());
        assert_eq!(serve("POST", "/").map(|r| r.status), Some(405));
    }
}
