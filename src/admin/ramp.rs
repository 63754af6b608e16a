//! The admin side of ramps ([`crate::rollout`]): `POST /v1/ramp`, the ramps in
//! `/status`, and the task that ticks them, checks their gates and sets the
//! dial through the same path as `POST /v1/dial` (state file, etcd).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{apply_dial, check_target, param, AdminState, Reply, Request};
use crate::answer::snapshot::Snapshot;
use crate::policy::{dial, HealthView};
use crate::rollout::{combine, parse_steps, Gate, OnFail, Phase, Ramp};

/// How often ramps are ticked: fine against holds of minutes, and a failing
/// gate is acted on within it.
const TICK: Duration = Duration::from_millis(50);

/// The region's health: every endpoint of it up (probes, overrides).
struct RegionHealth<'a> {
    snap: &'a Snapshot,
    region: &'a str,
}

impl Gate for RegionHealth<'_> {
    fn name(&self) -> String {
        format!("health of region:{}", self.region)
    }
    fn verdict(&self) -> Option<bool> {
        for z in &self.snap.steering {
            for n in &z.names {
                for e in &n.endpoints {
                    let named = z
                        .policy
                        .regions
                        .get(e.region as usize)
                        .map(|r| r.name.as_str());
                    if named == Some(self.region) && !self.snap.health.endpoint_up(e) {
                        return Some(false);
                    }
                }
            }
        }
        Some(true)
    }
}

/// With `[fleet]`: etcd answers. While it does not, the ramp waits: it never
/// advances blind.
struct FleetReachable<'a>(&'a AdminState);

impl Gate for FleetReachable<'_> {
    fn name(&self) -> String {
        "etcd reachable".to_string()
    }
    fn verdict(&self) -> Option<bool> {
        match &self.0.fleet {
            Some(f) if !f.connected() => None,
            _ => Some(true),
        }
    }
}

/// A `[gates.NAME]` the ramp names: its last evaluation. A gate not answered
/// cannot tell (the ramp holds); it never fails the ramp by itself.
struct MetricGate<'a> {
    gates: &'a crate::health::MetricGates,
    name: &'a str,
}

impl Gate for MetricGate<'_> {
    fn name(&self) -> String {
        self.name.to_string()
    }
    fn verdict(&self) -> Option<bool> {
        self.gates.verdict(self.name)
    }
}

/// `POST /v1/ramp?target=region:NAME&to=100&steps=1,5,25,50,100&hold=10m[&on_fail=last_safe|zero][&gates=A,B]`
/// starts a ramp; `&action=pause|resume|abort` acts on the running one.
pub(super) fn request(state: &AdminState, req: &Request) -> Reply {
    let target = match param(req, "target") {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Err(r) = check_target(state, target) {
        return r;
    }
    let Ok(mut ramps) = state.ramps.ramps.lock() else {
        return Reply::text(500, "ramps unavailable");
    };
    if let Some(action) = req.query.get("action") {
        let Some(r) = ramps.get_mut(target) else {
            return Reply::text(404, format!("no ramp on {target}"));
        };
        match action.as_str() {
            "pause" => r.pause(),
            "resume" => r.resume(),
            "abort" => r.abort(),
            other => {
                return Reply::text(400, format!("action {other:?}: use pause, resume or abort"))
            }
        }
        info!(target, action = action.as_str(), "ramp");
        let v = r.to_json();
        publish(state, target, r);
        save(state, &ramps);
        state.ramps.wake.notify_one();
        return Reply::json(json!({ "target": target, "ramp": v }));
    }
    if ramps.get(target).is_some_and(|r| r.phase.active()) {
        return Reply::text(409, format!("{target} has a ramp already; abort it first"));
    }
    let parsed = parse_ramp(state, target, req);
    match parsed {
        Ok(r) => {
            info!(target, steps = ?r.steps, hold = ?r.hold, "ramp started");
            let v = r.to_json();
            publish(state, target, &r);
            ramps.insert(target.to_string(), r);
            save(state, &ramps);
            state.ramps.wake.notify_one();
            Reply::json(json!({ "target": target, "ramp": v }))
        }
        Err(why) => Reply::text(400, why),
    }
}

/// A new ramp from the call's parameters; what the call leaves out comes from
/// `[ramps.REGION]`, else the defaults (1,5,25,50,100 up to `to`, 10m, last_safe).
fn parse_ramp(state: &AdminState, target: &str, req: &Request) -> Result<Ramp, String> {
    let region = target.strip_prefix("region:").unwrap_or(target);
    let plan = state.ramp_plans.get(region);
    let to = req.query.get("to").map_or(
        Ok(plan
            .and_then(|p| p.steps.last().copied())
            .unwrap_or(dial::FULL)),
        |t| {
            t.parse::<u8>()
                .ok()
                .filter(|&t| t <= dial::FULL)
                .ok_or_else(|| format!("to {t:?}: a whole percent from 0 to 100"))
        },
    )?;
    let steps = match (req.query.get("steps"), plan) {
        (Some(s), _) => parse_steps(s).map_err(|e| e.0)?,
        (None, Some(p)) => p.steps.clone(),
        (None, None) => [1, 5, 25, 50]
            .into_iter()
            .filter(|&s| s < to)
            .chain([to])
            .collect(),
    };
    let hold = match (req.query.get("hold"), plan) {
        (Some(h), _) => {
            crate::config::values::parse_duration(h).map_err(|e| format!("hold: {e}"))?
        }
        (None, Some(p)) => p.hold,
        (None, None) => Duration::from_secs(600),
    };
    let on_fail = req
        .query
        .get("on_fail")
        .map(String::as_str)
        .or(plan.map(|p| p.on_fail.as_str()))
        .unwrap_or("last_safe");
    let on_fail = OnFail::parse(on_fail).map_err(|e| e.0)?;
    let gates: Vec<String> = match (req.query.get("gates"), plan) {
        (Some(g), _) => g
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect(),
        (None, Some(p)) => p.gates.clone(),
        (None, None) => Vec::new(),
    };
    if gates.len() > crate::config::ramps::MAX_GATES {
        return Err(format!(
            "gates: at most {}",
            crate::config::ramps::MAX_GATES
        ));
    }
    if let Some(g) = gates.iter().find(|g| !state.gates.knows(g)) {
        return Err(format!(
            "gate {g:?} is not configured; give a [gates.NAME] of the server config (known: {})",
            state.gates.names().join(", ")
        ));
    }
    let snap = state.snap.load();
    let mut r = Ramp::new(dial_now(&snap, target), to, &steps, hold, on_fail).map_err(|e| e.0)?;
    r.gates = gates;
    Ok(r)
}

/// With `[fleet]`: writes one ramp to the store (`ramps/TARGET`), where every
/// instance reads it and the driving one ticks it.
fn publish(state: &AdminState, target: &str, r: &Ramp) {
    if let Some(f) = &state.fleet {
        f.submit(crate::fleet::Op::Ramp(target.to_string(), Some(r.stored())));
    }
}

fn save(state: &AdminState, ramps: &std::collections::BTreeMap<String, Ramp>) {
    if let Err(e) = state.ramps.save(ramps) {
        warn!("cannot save the ramps: {e}");
    }
}

/// The operator dial set on `target` now.
fn dial_now(snap: &Snapshot, target: &str) -> u8 {
    snap.health
        .operator_dials()
        .lock()
        .ok()
        .and_then(|m| m.get(target).copied())
        .unwrap_or(dial::FULL)
}

/// The ramps for `/status`.
pub(super) fn status(state: &AdminState) -> Value {
    let ramps = state
        .ramps
        .ramps
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    let gate = |g: &String| {
        json!({
            "verdict": match state.gates.verdict(g) {
                Some(true) => "holds",
                Some(false) => "fails",
                None => "unknown",
            },
            "detail": state.gates.detail(g),
            "evaluations": state.gates.evaluations(g),
        })
    };
    let with_gates = |r: &Ramp| {
        let mut v = r.to_json();
        v["gate_verdicts"] = r
            .gates
            .iter()
            .map(|g| (g.clone(), gate(g)))
            .collect::<serde_json::Map<_, _>>()
            .into();
        v
    };
    json!({
        "failures": state.ramps.failures.load(Relaxed),
        "failures_by_gate": state.ramps.failed_by.lock().map(|m| m.clone()).unwrap_or_default(),
        "ramps": ramps.iter().map(|(t, r)| (t.clone(), with_gates(r))).collect::<serde_json::Map<_, _>>(),
    })
}

/// Ramps stopped by a gate, and each ramp's dial.
pub(super) fn render_metrics(state: &AdminState) -> String {
    let mut out = String::from(
        "# HELP signpost_ramp_failures_total Ramps stopped by a failing gate, by gate.\n# TYPE signpost_ramp_failures_total counter\n",
    );
    let by = state
        .ramps
        .failed_by
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for (gate, n) in by {
        out.push_str(&format!(
            "signpost_ramp_failures_total{{gate=\"{}\"}} {n}\n",
            crate::metrics::escape(&gate)
        ));
    }
    out
}

/// Ticks every ramp until `stop`. First, before the admin endpoint answers, each
/// running ramp restored from its file sets its dial again: the ramps' file and the
/// state file are written one after the other, and a stop between the two must not
/// leave the dial behind its ramp.
pub fn start_ramps(state: AdminState, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    reconcile(&state);
    tokio::spawn(async move {
        let mut last = Instant::now();
        let mut every = tokio::time::interval(TICK);
        loop {
            // No ramp running: sleep until one starts or resumes (a timer that
            // fired 20 times a second for nothing cost every server CPU).
            if !any_running(&state) {
                tokio::select! {
                    _ = state.ramps.wake.notified() => {}
                    _ = stop.changed() => return,
                }
                last = Instant::now();
                every.reset();
                continue;
            }
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            let elapsed = now - last;
            last = now;
            tick_all(&state, elapsed);
        }
    })
}

/// Each running ramp's dial, set where the dial now differs.
fn reconcile(state: &AdminState) {
    // With [fleet], the store's ramps and dials stand, not this file's.
    if state.fleet.is_some() {
        return;
    }
    let snap = state.snap.load();
    let owed: Vec<(String, u8)> = state
        .ramps
        .ramps
        .lock()
        .map(|m| {
            m.iter()
                .filter(|(t, r)| r.phase == Phase::Running && dial_now(&snap, t) != r.dial)
                .map(|(t, r)| (t.clone(), r.dial))
                .collect()
        })
        .unwrap_or_default();
    for (target, d) in owed {
        apply_dial(
            state,
            &target,
            (d < dial::FULL).then_some(d),
            "ramp restored",
        );
    }
}

fn any_running(state: &AdminState) -> bool {
    state
        .ramps
        .ramps
        .lock()
        .is_ok_and(|m| m.values().any(|r| r.phase == Phase::Running))
}

fn tick_all(state: &AdminState, elapsed: Duration) {
    // With [fleet], one instance drives the fleet's ramps; the others show them
    // (and, should they come to drive, start each hold over: time not watched
    // does not count).
    if state.fleet.as_ref().is_some_and(|f| !f.drives_ramps()) {
        if let Ok(mut ramps) = state.ramps.ramps.lock() {
            ramps.values_mut().for_each(|r| r.held = Duration::ZERO);
        }
        return;
    }
    let snap = state.snap.load();
    let mut set = Vec::new();
    if let Ok(mut ramps) = state.ramps.ramps.lock() {
        for (target, r) in ramps.iter_mut().filter(|(_, r)| r.phase == Phase::Running) {
            let region = target.strip_prefix("region:").unwrap_or(target);
            let health = RegionHealth {
                snap: &snap,
                region,
            };
            let fleet = FleetReachable(state);
            let metric: Vec<MetricGate> = r
                .gates
                .iter()
                .map(|name| MetricGate {
                    gates: &state.gates,
                    name,
                })
                .collect();
            let mut all: Vec<&dyn Gate> = vec![&fleet, &health];
            all.extend(metric.iter().map(|g| g as &dyn Gate));
            let verdict = combine(&all);
            if let Some(d) = r.tick(elapsed, verdict) {
                if let Phase::Failed(gate) = &r.phase {
                    warn!(
                        target = target.as_str(),
                        gate = gate.as_str(),
                        detail = state.gates.detail(gate),
                        dial = d,
                        "ramp stopped by its gate"
                    );
                    state.ramps.failures.fetch_add(1, Relaxed);
                    if let Ok(mut m) = state.ramps.failed_by.lock() {
                        *m.entry(gate.clone()).or_default() += 1;
                    }
                } else {
                    info!(target = target.as_str(), dial = d, "ramp step");
                }
                set.push((target.clone(), d));
            } else if r.phase == Phase::Done {
                info!(target = target.as_str(), "ramp done");
                set.push((target.clone(), r.dial));
            } else {
                continue;
            }
            publish(state, target, r);
        }
        if !set.is_empty() {
            save(state, &ramps);
        }
    }
    for (target, d) in set.into_iter().filter(|(t, d)| dial_now(&snap, t) != *d) {
        apply_dial(state, &target, (d < dial::FULL).then_some(d), "ramp");
    }
}
