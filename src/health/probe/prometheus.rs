//! `prometheus` checks: one instant query to a Prometheus-compatible server's HTTP
//! API (`GET /api/v1/query?query=...`), its answer judged by a threshold.
//!
//! A failure to ask (the server unreachable or slow, an HTTP error, an answer that
//! is not the API's JSON, an error the query itself causes) says nothing about the
//! target: it is reported as [`Attempt::Unanswered`], which the scheduler counts
//! and logs and never feeds to the state machine, so the verdict holds. Only an
//! answer with series in it (or an empty one, when the check says what empty
//! means) is a result about the target, and the rise/fall state machine decides
//! from those as from any probe.
//!
//! The answer is read up to [`MAX_ANSWER`] bytes; a query that matches more series
//! than fit is refused as unanswered, never judged from a part.

use std::fmt::Write as _;

use http::header::{HeaderValue, ACCEPT, CONNECTION, HOST, USER_AGENT};
use http::{Method, Uri};
use http_body_util::{BodyExt, Empty as EmptyBody};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use super::{fmt_duration, Attempt};
use crate::health::spec::{Empty, MetricQuery};
use crate::health::state::ProbeResult;

/// The most of an answer read: a query about a handful of series answers in well
/// under a kilobyte; this leaves room for a few thousand.
pub(crate) const MAX_ANSWER: usize = 256 * 1024;
/// Response heads above this are refused (hyper's read buffer floor is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;

/// Asks once, bounded by `timeout` as a whole.
pub(crate) async fn attempt(m: &MetricQuery, timeout: std::time::Duration) -> Attempt {
    let start = Instant::now();
    let body = match tokio::time::timeout(timeout, fetch(m)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Attempt::Unanswered(e),
        Err(_) => {
            return Attempt::Unanswered(format!(
                "{} did not answer within {}",
                m.server,
                fmt_duration(timeout)
            ))
        }
    };
    let latency = start.elapsed();
    match judge(m, &body) {
        Ok(Some((ok, detail))) => Attempt::Judged(ProbeResult {
            ok,
            latency,
            detail,
        }),
        Ok(None) => Attempt::Unanswered("no series in the answer (empty = \"unknown\")".into()),
        Err(e) => Attempt::Unanswered(e),
    }
}

/// The request line's target: the path and the query, percent-encoded.
pub(crate) fn request_uri(m: &MetricQuery) -> Result<Uri, String> {
    let mut s = String::with_capacity(m.path.len() + m.query.len() + 8);
    s.push_str(&m.path);
    s.push_str("?query=");
    for b in m.query.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s.parse::<Uri>()
        .ok()
        .filter(|u| u.scheme().is_none() && u.authority().is_none())
        .ok_or_else(|| format!("path {:?} is not an HTTP path", m.path))
}

/// One GET on a fresh connection; the body when the status is 200, else why not.
async fn fetch(m: &MetricQuery) -> Result<Vec<u8>, String> {
    let uri = request_uri(m)?;
    let host = HeaderValue::from_str(&m.server.to_string()).map_err(|e| e.to_string())?;
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(HOST, host)
        .header(USER_AGENT, "signpost-health")
        .header(ACCEPT, "application/json")
        .header(CONNECTION, "close")
        .body(EmptyBody::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let stream = super::connect(m.server)
        .await
        .map_err(|e| format!("{}: {e}", m.server))?;
    let (mut sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, EmptyBody<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{}: {}", m.server, super::http::http_error(e)))?;
    let work = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{}: {}", m.server, super::http::http_error(e)))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut kept = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| format!("{}: {}", m.server, super::http::http_error(e)))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if kept.len() + data.len() > MAX_ANSWER {
                return Err(format!(
                    "{}: answer over {} KiB; narrow the query",
                    m.server,
                    MAX_ANSWER / 1024
                ));
            }
            kept.extend_from_slice(&data);
        }
        if status != 200 {
            let why = api_error(&kept).unwrap_or_default();
            return Err(format!("{} answered HTTP {status}{why}", m.server));
        }
        Ok(kept)
    };
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        r = &mut work => r,
        done = &mut conn => match done {
            Ok(()) => work.await,
            Err(e) => Err(format!("{}: {}", m.server, super::http::http_error(e))),
        },
    }
}

/// The API's own reason in an error answer, as `: bad_data: parse error ...`.
fn api_error(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let kind = v
        .get("errorType")
        .and_then(|t| t.as_str())
        .unwrap_or("error");
    let msg = v.get("error").and_then(|t| t.as_str())?;
    let msg: String = msg.chars().take(200).collect();
    Some(format!(": {kind}: {msg}"))
}

/// Reads an answer of the instant-query API and judges it: `Ok(Some((ok,
/// detail)))` is a result about the target, `Ok(None)` an empty answer whose
/// meaning the check leaves unknown, `Err` an answer that cannot be judged.
///
/// The worst series decides: down when any value is above `down_above` or below
/// `down_below`. NaN values are left out, as if the series were missing.
pub(crate) fn judge(m: &MetricQuery, body: &[u8]) -> Result<Option<(bool, String)>, String> {
    let series = series(body)?;
    if series.is_empty() {
        return Ok(match m.empty {
            Empty::Down => Some((false, "no series (empty = \"down\")".into())),
            Empty::Up => Some((true, "no series (empty = \"up\")".into())),
            Empty::Unknown => None,
        });
    }
    judge_series(m, &series)
}

/// Asks once for a load figure: the highest value among the answer's series,
/// `None` for an answer without any; `Err` when the server could not be asked.
pub(crate) async fn figure(
    m: &MetricQuery,
    timeout: std::time::Duration,
) -> Result<Option<f64>, String> {
    let body = match tokio::time::timeout(timeout, fetch(m)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(format!(
                "{} did not answer within {}",
                m.server,
                fmt_duration(timeout)
            ))
        }
    };
    Ok(series(&body)?
        .into_iter()
        .map(|(_, v)| v)
        .max_by(f64::total_cmp))
}

/// The series of an instant-query answer, NaN values left out.
fn series(body: &[u8]) -> Result<Vec<(String, f64)>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    if v.get("status").and_then(|s| s.as_str()) != Some("success") {
        let why = api_error(body).unwrap_or_else(|| ": no status \"success\"".into());
        return Err(format!("query failed{why}"));
    }
    let data = v.get("data").ok_or("answer has no data")?;
    let kind = data
        .get("resultType")
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let result = data.get("result").ok_or("answer has no result")?;
    let mut series: Vec<(String, f64)> = Vec::new();
    match kind {
        "vector" => {
            for s in result.as_array().ok_or("vector result is not a list")? {
                let value = sample(s.get("value")).ok_or("a series has no [time, value]")?;
                series.push((labels(s.get("metric")), value));
            }
        }
        "scalar" => series.push((String::new(), sample(Some(result)).ok_or("bad scalar")?)),
        other => {
            return Err(format!(
                "the query gives a {other:?} result; give an instant vector or a scalar"
            ))
        }
    }
    series.retain(|(_, v)| !v.is_nan());
    Ok(series)
}

fn judge_series(
    m: &MetricQuery,
    series: &[(String, f64)],
) -> Result<Option<(bool, String)>, String> {
    if let Some(t) = m.down_above {
        if let Some((l, v)) = series.iter().find(|(_, v)| *v > t.0) {
            return Ok(Some((false, format!("{l}{v} is above {}", t.0))));
        }
    }
    if let Some(t) = m.down_below {
        if let Some((l, v)) = series.iter().find(|(_, v)| *v < t.0) {
            return Ok(Some((false, format!("{l}{v} is below {}", t.0))));
        }
    }
    // The series closest to a limit, for the operator reading `/status`.
    let worst = if m.down_above.is_some() {
        series.iter().max_by(|a, b| a.1.total_cmp(&b.1))
    } else {
        series.iter().min_by(|a, b| a.1.total_cmp(&b.1))
    };
    let (l, v) = worst.cloned().unwrap_or_default();
    let mut limits = Vec::new();
    if let Some(t) = m.down_above {
        limits.push(format!("down above {}", t.0));
    }
    if let Some(t) = m.down_below {
        limits.push(format!("down below {}", t.0));
    }
    Ok(Some((true, format!("{l}{v} ({})", limits.join(", ")))))
}

/// `[1700000000.123, "42.5"]` -> 42.5 (the API sends values as strings, with
/// `NaN`, `+Inf` and `-Inf` as such).
fn sample(v: Option<&serde_json::Value>) -> Option<f64> {
    let pair = v?.as_array()?;
    pair.get(1)?.as_str()?.parse::<f64>().ok()
}

/// `{region="eu-west"} ` for a detail line; nothing for a series without labels.
fn labels(metric: Option<&serde_json::Value>) -> String {
    let Some(map) = metric.and_then(|m| m.as_object()) else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map(|s| format!("{s:?}")).unwrap_or_default()
            )
        })
        .collect();
    let name = map.get("__name__").and_then(|n| n.as_str()).unwrap_or("");
    if parts.is_empty() && name.is_empty() {
        return String::new();
    }
    let mut s: String = format!("{name}{{{}}} ", parts.join(","));
    s.truncate(200);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::spec::Threshold;

    fn q(above: Option<f64>, below: Option<f64>, empty: Empty) -> MetricQuery {
        MetricQuery {
            server: "127.0.0.1:9090".parse().unwrap(),
            path: "/api/v1/query".into(),
            query: "pg_replication_lag_seconds{region=\"eu-west\"}".into(),
            down_above: above.map(Threshold),
            down_below: below.map(Threshold),
            empty,
        }
    }

    fn vector(values: &[&str]) -> Vec<u8> {
        let series: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    r#"{{"metric":{{"__name__":"lag","instance":"db{i}"}},"value":[1700000000.5,"{v}"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            series.join(",")
        )
        .into_bytes()
    }

    #[test]
    fn the_worst_series_decides() {
        let m = q(Some(30.0), None, Empty::Unknown);
        let (ok, detail) = judge(&m, &vector(&["3", "12.5"])).unwrap().unwrap();
        assert!(ok, "{detail}");
        assert!(detail.contains("12.5"), "{detail}");
        let (ok, detail) = judge(&m, &vector(&["3", "31"])).unwrap().unwrap();
        assert!(!ok);
        assert!(
            detail.contains("instance=\"db1\"") && detail.contains("above 30"),
            "{detail}"
        );
        // Exactly at the limit is not above it.
        assert!(judge(&m, &vector(&["30"])).unwrap().unwrap().0);
        assert!(!judge(&m, &vector(&["+Inf"])).unwrap().unwrap().0);
        let m = q(None, Some(0.99), Empty::Unknown);
        assert!(!judge(&m, &vector(&["0.5", "1"])).unwrap().unwrap().0);
        assert!(judge(&m, &vector(&["0.999"])).unwrap().unwrap().0);
    }

    #[test]
    fn empty_means_what_the_check_says() {
        let none = vector(&[]);
        let nan = vector(&["NaN"]);
        for body in [&none, &nan] {
            assert_eq!(judge(&q(Some(1.0), None, Empty::Unknown), body), Ok(None));
            assert!(
                !judge(&q(Some(1.0), None, Empty::Down), body)
                    .unwrap()
                    .unwrap()
                    .0
            );
            assert!(
                judge(&q(Some(1.0), None, Empty::Up), body)
                    .unwrap()
                    .unwrap()
                    .0
            );
        }
    }

    #[test]
    fn scalars_are_read_and_other_shapes_refused() {
        let m = q(Some(1.0), None, Empty::Unknown);
        let s = br#"{"status":"success","data":{"resultType":"scalar","result":[1.0,"2"]}}"#;
        assert!(!judge(&m, s).unwrap().unwrap().0);
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(judge(&m, matrix).unwrap_err().contains("matrix"));
        let err = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(judge(&m, err)
            .unwrap_err()
            .contains("bad_data: parse error"));
        assert!(judge(&m, b"<html>").is_err());
        assert!(judge(
            &m,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1]}]}}"#
        )
        .is_err());
    }

    #[test]
    fn the_query_is_percent_encoded() {
        let m = q(Some(1.0), None, Empty::Unknown);
        assert_eq!(
            request_uri(&m).unwrap().to_string(),
            "/api/v1/query?query=pg_replication_lag_seconds%7Bregion%3D%22eu-west%22%7D"
        );
    }
}
