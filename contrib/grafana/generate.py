#!/usr/bin/env python3
"""Writes contrib/grafana/signpost.json, the Grafana dashboard for signpost's
Prometheus metrics (docs/reference/metrics.md). Run it after changing a panel here;
tests/grafana.rs checks that the JSON parses and that every metric it queries is
one src/metrics.rs renders.

    python3 contrib/grafana/generate.py
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
RATE = "$__rate_interval"


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(pid, title, kind, grid, targets, unit="short", description="", **extra):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": dict(zip("xywh", grid)),
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
    }
    p.update(extra)
    return p


def rate(metric, by, extra=""):
    sel = SEL + ("," + extra if extra else "")
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RATE}]))"


panels = [
    panel(1, "Steered answers per region", "timeseries", (0, 0, 12, 8),
          [(rate("signpost_steered_answers_total", "region"), "{{region}}")], "reqps",
          "Answers for steered names, by the region they sent the client to."),
    panel(2, "Steered answers per reason", "timeseries", (12, 0, 12, 8),
          [(rate("signpost_steered_answers_total", "reason"), "{{reason}}")], "reqps",
          "Why each answer went where it did: rule, latency, failover, weighted, all, fence, all-down, nodata."),
    panel(3, "Queries per rcode", "timeseries", (0, 8, 12, 8),
          [(rate("signpost_queries_total", "rcode"), "{{rcode}}")], "reqps",
          "Every query answered, by response code."),
    panel(4, "Queries per zone and transport", "timeseries", (12, 8, 12, 8),
          [(rate("signpost_queries_total", "zone, transport"), "{{zone}} {{transport}}")], "reqps"),
    panel(5, "Endpoint health", "state-timeline", (0, 16, 24, 8),
          [(f"min by (name, region) (signpost_endpoint_up{{{SEL}}})", "{{name}} {{region}}")], "short",
          "1 when an endpoint may answer (probes, min_healthy and overrides), 0 when not.",
          fieldConfig={"defaults": {"unit": "short", "min": 0, "max": 1, "mappings": [
              {"type": "value", "options": {
                  "0": {"text": "down", "color": "red", "index": 0},
                  "1": {"text": "up", "color": "green", "index": 1}}}],
              "color": {"mode": "thresholds"},
              "thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "green", "value": 1}]}},
              "overrides": []}),
    panel(6, "Probe duration (p50, p90, p99)", "timeseries", (0, 24, 12, 8),
          [(f"histogram_quantile({q}, sum by (le, target) (rate(signpost_probe_duration_seconds_bucket{{{SEL}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{target}}}}") for q in (0.5, 0.9, 0.99)], "s",
          "Probe latency per target, from the probe duration histogram."),
    panel(7, "Health transitions", "timeseries", (12, 24, 12, 8),
          [(f"sum by (target) (increase(signpost_health_transitions_total{{{SEL}}}[{RATE}]))", "{{target}}")], "short",
          "Probed up/down changes per target; a steady line here is a flapping target."),
    panel(8, "Reloads", "timeseries", (0, 32, 8, 8),
          [(f"sum by (result) (increase(signpost_reloads_total{{{SEL}}}[{RATE}]))", "{{result}}")], "short",
          "Configuration reloads by result; a failure keeps the old configuration serving."),
    panel(9, "Since the last successful reload", "stat", (8, 32, 4, 8),
          [(f'time() - max(signpost_last_reload_timestamp_seconds{{{SEL},result="success"}} > 0)', "")], "s"),
    panel(10, "Config generation", "stat", (12, 32, 4, 8),
          [(f"max by (instance) (signpost_config_generation{{{SEL}}})", "{{instance}}")], "none"),
    panel(11, "Response rate limiting", "timeseries", (16, 32, 8, 8),
          [(rate("signpost_rrl_responses_total", "action"), "{{action}}")], "reqps",
          "Responses RRL dropped or sent truncated (slip)."),
    panel(12, "Truncated responses", "timeseries", (0, 40, 12, 8),
          [(rate("signpost_truncated_total", "transport"), "{{transport}}")], "reqps",
          "Responses sent with TC set, so the client retries over TCP."),
    panel(13, "ECS and dropped", "timeseries", (12, 40, 12, 8),
          [(f"sum(rate(signpost_ecs_queries_total{{{SEL}}}[{RATE}]))", "ECS used"),
           (f"sum(rate(signpost_dropped_total{{{SEL}}}[{RATE}]))", "dropped")], "reqps"),
]

dashboard = {
    "title": "signpost",
    "uid": "signpost",
    "description": "signpost authoritative DNS: steering, health, probes, reloads (Prometheus).",
    "tags": ["dns", "signpost"],
    "timezone": "utc",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "30s",
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1},
        {"name": "instance", "label": "instance", "type": "query", "datasource": DS,
         "query": {"query": "label_values(signpost_build_info, instance)", "refId": "instance"},
         "definition": "label_values(signpost_build_info, instance)",
         "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "refresh": 2, "hide": 0},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "signpost.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2)
    f.write("\n")
