//! contrib/grafana/signpost.json stays true to the metrics: it parses, every
//! metric and label its queries name is one that src/metrics.rs or
//! src/admin/exposition.rs renders, and its
//! panels ask the Prometheus data source the operator picks on import.

mod common;

use serde_json::Value;

fn read(rel: &str) -> String {
    std::fs::read_to_string(common::repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every string under the key `key`, anywhere in the document.
fn strings_under<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => out.push(s),
                    _ => strings_under(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_under(x, key, out)),
        _ => {}
    }
}

/// Words that start with `prefix` (letters, digits and `_` after it).
fn words_from<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(&tail[..end]);
        rest = &tail[end..];
    }
    out
}

/// The label names of each `by (...)` clause of a query.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        let tail = &rest[i + 4..];
        let end = tail.find(')').unwrap_or(tail.len());
        out.extend(tail[..end].split(',').map(|l| l.trim().to_string()));
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_signpost_renders() {
    let text = read("contrib/grafana/signpost.json");
    let dash: Value = serde_json::from_str(&text).expect("signpost.json is JSON");
    // The exposition: the query counters, and the parts read from the snapshot.
    let metrics_rs = read("src/metrics.rs") + &read("src/admin/exposition.rs");

    let mut exprs = Vec::new();
    strings_under(&dash, "expr", &mut exprs);
    assert!(exprs.len() >= 10, "only {} queries", exprs.len());
    let mut used = Vec::new();
    for e in &exprs {
        for name in words_from(e, "signpost_") {
            // As rendered: `name{` or `name ` (no labels) in the exposition text.
            assert!(
                metrics_rs.contains(&format!("{name}{{{{"))
                    || metrics_rs.contains(&format!("{name} {{}}")),
                "{name} (in {e:?}) is not a metric src/metrics.rs or src/admin/exposition.rs renders"
            );
            used.push(name);
        }
        for label in grouping_labels(e) {
            // `le` is the histogram's, `instance` Prometheus's own.
            assert!(
                ["le", "instance"].contains(&label.as_str())
                    || metrics_rs.contains(&format!("{label}=\\\"")),
                "label {label:?} (in {e:?}) is not one src/metrics.rs or src/admin/exposition.rs renders"
            );
        }
    }
    for wanted in [
        "signpost_steered_answers_total",
        "signpost_queries_total",
        "signpost_endpoint_up",
        "signpost_probe_duration_seconds_bucket",
        "signpost_reloads_total",
        "signpost_rrl_responses_total",
        "signpost_truncated_total",
    ] {
        assert!(used.contains(&wanted), "no panel shows {wanted}");
    }

    // A Prometheus data-source variable, and every query goes through it.
    let vars = dash["templating"]["list"]
        .as_array()
        .expect("templating list");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["query"] == "prometheus"
            && v["name"] == "datasource"),
        "no Prometheus data-source variable"
    );
    let mut uids = Vec::new();
    strings_under(&dash, "uid", &mut uids);
    let sources: Vec<_> = uids.into_iter().filter(|u| *u != "signpost").collect();
    assert!(!sources.is_empty());
    assert!(
        sources.iter().all(|u| *u == "${datasource}"),
        "a panel names a fixed data source: {sources:?}"
    );
}
