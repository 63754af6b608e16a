//! The Prometheus exposition served at `/metrics`: the query counters from
//! `metrics`, and the parts read from the serving snapshot (health, DNSSEC) and
//! from reload's statistics, gathered here so `metrics` names neither.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use crate::answer::snapshot::Snapshot;
use crate::metrics::{escape, Metrics};
use crate::policy::HealthView;
use crate::reload::ReloadStats;

/// The Prometheus text exposition of everything.
pub(crate) fn render(metrics: &Metrics, snap: &Snapshot, reload: &ReloadStats) -> String {
    let mut out = String::with_capacity(8192);
    metrics.render_counters(&mut out, &regions_of(snap));
    out.push_str("# HELP signpost_endpoint_up Whether an endpoint may answer (probes, min_healthy and overrides).\n# TYPE signpost_endpoint_up gauge\n");
    for z in &snap.steering {
        for p in &z.names {
            for e in &p.endpoints {
                let region = z
                    .policy
                    .regions
                    .get(e.region as usize)
                    .map(|r| r.name.as_str())
                    .unwrap_or("");
                let _ = writeln!(
                    out,
                    "signpost_endpoint_up{{name=\"{}\",region=\"{region}\"}} {}",
                    p.name,
                    snap.health.endpoint_up(e) as u8
                );
            }
        }
    }
    out.push_str("# HELP signpost_dial_percent Traffic dial in force per region: the lowest of its endpoints' (100: none set).\n# TYPE signpost_dial_percent gauge\n");
    for (name, d) in snap.health.region_dials() {
        let region = name.strip_prefix("region:").unwrap_or(&name);
        let _ = writeln!(out, "signpost_dial_percent{{region=\"{region}\"}} {d}");
    }
    let table = snap.health.table();
    let verdicts = table.verdicts();
    let _ = writeln!(
        out,
        "# HELP signpost_metric_checks_unanswered_total Metric checks and load figures whose server could not be asked or gave nothing to judge; verdicts and dials were kept.\n# TYPE signpost_metric_checks_unanswered_total counter\nsignpost_metric_checks_unanswered_total {}\n# HELP signpost_verdicts_pushed_total Verdicts pushed by the operator's monitoring.\n# TYPE signpost_verdicts_pushed_total counter\nsignpost_verdicts_pushed_total {}\n# HELP signpost_verdicts_expired_total Pushed verdicts that ran out.\n# TYPE signpost_verdicts_expired_total counter\nsignpost_verdicts_expired_total {}\n# HELP signpost_verdicts_live Pushed verdicts in force.\n# TYPE signpost_verdicts_live gauge\nsignpost_verdicts_live {}",
        crate::health::unanswered(),
        verdicts.pushed_total(),
        verdicts.expired_total(),
        verdicts.live(std::time::SystemTime::now()).len()
    );
    out.push_str("# HELP signpost_health_transitions_total Probed up/down changes per target.\n# TYPE signpost_health_transitions_total counter\n");
    let statuses = table.status_all();
    for t in &statuses {
        let _ = writeln!(
            out,
            "signpost_health_transitions_total{{target=\"{}\"}} {}",
            escape(&t.key),
            t.transitions
        );
    }
    out.push_str("# HELP signpost_probe_duration_seconds Probe latency per target.\n# TYPE signpost_probe_duration_seconds histogram\n");
    for t in &statuses {
        let key = escape(&t.key);
        for (le, c) in t.latency.buckets() {
            let _ = writeln!(
                out,
                "signpost_probe_duration_seconds_bucket{{target=\"{key}\",le=\"{}\"}} {c}",
                le.as_secs_f64()
            );
        }
        let _ = writeln!(
            out,
            "signpost_probe_duration_seconds_bucket{{target=\"{key}\",le=\"+Inf\"}} {}",
            t.latency.count
        );
        let _ = writeln!(
                out,
                "signpost_probe_duration_seconds_sum{{target=\"{key}\"}} {}\nsignpost_probe_duration_seconds_count{{target=\"{key}\"}} {}",
                t.latency.sum.as_secs_f64(),
                t.latency.count
            );
    }

    crate::secondary::render(&mut out);
    // Configuration.
    let _ = writeln!(
            out,
            "# HELP signpost_reloads_total Configuration reloads by result.\n# TYPE signpost_reloads_total counter\nsignpost_reloads_total{{result=\"success\"}} {}\nsignpost_reloads_total{{result=\"failure\"}} {}",
            reload.successes.load(Relaxed),
            reload.failures.load(Relaxed)
        );
    let _ = writeln!(
            out,
            "# HELP signpost_last_reload_timestamp_seconds Time of the last reload by result.\n# TYPE signpost_last_reload_timestamp_seconds gauge\nsignpost_last_reload_timestamp_seconds{{result=\"success\"}} {}\nsignpost_last_reload_timestamp_seconds{{result=\"failure\"}} {}",
            reload.last_success.load(Relaxed),
            reload.last_failure.load(Relaxed)
        );
    let _ = writeln!(
            out,
            "# HELP signpost_config_generation The serving configuration's generation.\n# TYPE signpost_config_generation gauge\nsignpost_config_generation {}",
            snap.generation
        );
    render_process(&mut out);
    crate::server::xfr::render_metrics(&mut out);
    if !snap.signers.is_empty() {
        use crate::dnssec::online::{OVER_CAP, SIGNED};
        let _ = writeln!(
                out,
                "# HELP signpost_dnssec_online_signatures_total RRSIGs made on the fly for DO=1 answers (denial, merged or wildcard RRsets).\n# TYPE signpost_dnssec_online_signatures_total counter\nsignpost_dnssec_online_signatures_total {}\n# HELP signpost_dnssec_over_cap_total DO=1 queries answered SERVFAIL because dnssec.sign_rate was reached.\n# TYPE signpost_dnssec_over_cap_total counter\nsignpost_dnssec_over_cap_total {}\n# HELP signpost_dnssec_signatures_expire_seconds When the prebuilt signatures of a zone expire (Unix time); re-signed well before.\n# TYPE signpost_dnssec_signatures_expire_seconds gauge",
                SIGNED.load(Relaxed),
                OVER_CAP.load(Relaxed)
            );
        for (zone, s) in &snap.signers {
            let _ = writeln!(
                out,
                "signpost_dnssec_signatures_expire_seconds{{zone=\"{zone}\"}} {}",
                s.window.expiration
            );
        }
    }
    out
}

/// Region names per steered name's metrics slot, from the serving configuration.
fn regions_of(snap: &Snapshot) -> Vec<Vec<String>> {
    let mut regions_of: Vec<Vec<String>> = Vec::new();
    for z in &snap.steering {
        for p in &z.names {
            let slot = p.metrics_slot as usize;
            if regions_of.len() <= slot {
                regions_of.resize(slot + 1, Vec::new());
            }
            regions_of[slot] = z.policy.regions.iter().map(|r| r.name.clone()).collect();
        }
    }
    regions_of
}

/// Build information and process-wide counters of the transports.
fn render_process(out: &mut String) {
    let _ = writeln!(
            out,
            "# HELP signpost_accept_resource_errors_total Connections not accepted for want of a descriptor or memory (each pauses accepting 100 ms).\n# TYPE signpost_accept_resource_errors_total counter\nsignpost_accept_resource_errors_total {}\n# HELP signpost_connections_evicted_total Idle TCP, DoT and DoH connections closed to make room for a newcomer at a cap.\n# TYPE signpost_connections_evicted_total counter\nsignpost_connections_evicted_total {}\n# HELP signpost_probe_local_failures_total Health probes not made for want of a local resource; verdicts were kept.\n# TYPE signpost_probe_local_failures_total counter\nsignpost_probe_local_failures_total {}",
            crate::server::fdlimit::accept_errors(),
            crate::server::conns::evictions(),
            crate::health::local_failures()
        );
    let _ = writeln!(
        out,
        "# HELP signpost_build_info Build information.\n# TYPE signpost_build_info gauge\nsignpost_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP signpost_udp_restarts_total UDP read loops restarted after a panic (a bug; each loses the packets in hand).\n# TYPE signpost_udp_restarts_total counter\nsignpost_udp_restarts_total {}",
        crate::server::udp_restarts()
    );
    crate::server::dnstap::render(out);
}
