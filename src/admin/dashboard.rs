//! The dashboard: a page at `/` of the admin endpoint that shows zones, regions,
//! endpoint health, probe results, answer rates, recent transitions, ramps and
//! dials, and a world map of where each country's clients go; it can drain a
//! region, set a dial and pause a ramp. Files embedded in the binary (no CDN, nothing fetched
//! from anywhere but this endpoint); they hold no data, so they are served
//! without the token. The page's script asks for everything else with the token
//! an operator types in, which it keeps in a variable only, and with the
//! `X-Signpost-Request` header a change needs (see `guard`).

use super::Reply;

const INDEX: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const MAP_JS: &str = include_str!("page/map.js");
const LATENCY_JS: &str = include_str!("page/latency.js");
const STYLE: &str = include_str!("page/style.css");
/// The world map's country outlines (Natural Earth, public domain), made by
/// `scripts/world-map.py`.
const WORLD: &str = include_str!("page/world.json");

/// The page's files, by path.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", INDEX),
    ("/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/map.js", "text/javascript; charset=utf-8", MAP_JS),
    ("/latency.js", "text/javascript; charset=utf-8", LATENCY_JS),
    ("/style.css", "text/css; charset=utf-8", STYLE),
    ("/world.json", "application/json", WORLD),
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
        for &(path, _, body) in ASSETS {
            let reply = serve("GET", path).map(|r| (r.status, r.body));
            assert_eq!(reply, Some((200, body.to_string())));
            // No CDN, no third-party fonts: every URL the page names is ours.
            for scheme in ["http://", "https://", "//cdn"] {
                assert!(!body.contains(scheme), "{path} names {scheme}");
            }
        }
        assert!(INDEX.contains("src=\"/app.js\"") && INDEX.contains("href=\"/style.css\""));
        // Data goes into the page as text, never as markup.
        for js in [APP_JS, MAP_JS, LATENCY_JS] {
            assert!(
                !js.contains("innerHTML"),
                "the page's scripts must not use innerHTML"
            );
        }
        assert!(INDEX.contains("src=\"/map.js\""));
        assert!(INDEX.contains("src=\"/latency.js\"") && INDEX.contains("id=\"latency-matrix\""));
        assert!(serve("GET", "/status").is_none());
        assert_eq!(serve("POST", "/").map(|r| r.status), Some(405));
    }

    /// Every outline is keyed by a code `/v1/map` answers for, and is path data
    /// only (moves, numbers, closes): nothing a browser would fetch or run.
    #[test]
    fn the_outlines_are_paths_of_known_countries() {
        let world: serde_json::Value = serde_json::from_str(WORLD).unwrap();
        let known: Vec<[u8; 2]> = crate::geo::country_codes().collect();
        let countries = world["countries"].as_object().unwrap();
        assert!(countries.len() > 150, "{} outlines", countries.len());
        for (code, d) in countries {
            let cc: [u8; 2] = code.as_bytes().try_into().unwrap();
            assert!(
                known.contains(&cc),
                "{code} is not a country /v1/map decides for"
            );
            let d = d.as_str().unwrap();
            assert!(d.starts_with('M') && d.ends_with('Z'), "{code}");
            assert!(
                d.bytes()
                    .all(|b| b"MZ-. ".contains(&b) || b.is_ascii_digit()),
                "{code}"
            );
        }
        for cc in ["US", "FR", "JP", "BR", "AU", "RU", "ZA", "IN", "XK"] {
            assert!(countries.contains_key(cc), "{cc} has no outline");
        }
    }
}
