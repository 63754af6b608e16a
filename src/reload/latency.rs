//! Measured latency across reloads: the collector, the site prober and the
//! refresh of the live table run as one generation of tasks; a reload whose
//! `[rum]` or `[probes]` differ stops that generation and starts the next
//! with the new settings, on the same collector socket and the same
//! aggregator, whose samples for regions that remain are kept
//! ([`Aggregator::remap`](crate::latency::Aggregator::remap)). A bad table
//! never gets here: the reload is refused with file:line before, and the
//! running generation goes on.
//!
//! Not carried by a reload: `rum.listen` (the socket is bound at start; a
//! change, or `[rum]` added, takes a restart), and with `[fleet]` the share
//! bounds (`probes.share_every`, `share_max_entries`) set at start.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::app::{measured_regions, measured_slot};
use crate::config::server::{RumConfig, DEFAULT_RUM_REFRESH};
use crate::config::ServerConfig;
use crate::latency::{probe, share, Aggregator, AggregatorLimits, LatencyHandle, NetKey, Steady};

/// What runs, and what a reload compares against.
struct Running {
    /// The `[rum]` and `[probes]` tables as last applied (their Debug text).
    settings: String,
    /// Where the collector's socket is bound; none: no collector socket.
    listen: Option<SocketAddr>,
    listener: Option<Arc<TcpListener>>,
    handle: LatencyHandle,
    steady: Arc<Mutex<Steady<NetKey>>>,
    /// Turned true to stop the current generation.
    generation: watch::Sender<bool>,
}

fn running() -> MutexGuard<'static, Option<Running>> {
    static R: OnceLock<Mutex<Option<Running>>> = OnceLock::new();
    R.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn settings_of(cfg: &ServerConfig) -> String {
    format!("{:?} {:?}", cfg.rum, cfg.probes)
}

fn limits_of(cfg: &ServerConfig) -> AggregatorLimits {
    cfg.rum
        .as_ref()
        .map_or_else(AggregatorLimits::default, |r| r.table.clone())
}

/// Starts what measures latency: the collector (with `[rum]`, on
/// `rum_listener`), the site prober (with `[probes]`), and the task that every
/// refresh publishes the figures (with the fleet's shared ones) to the answers
/// when they changed; all end when `stop` turns true.
pub(crate) fn start(
    cfg: &ServerConfig,
    rum_listener: Option<TcpListener>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let names = measured_regions(cfg);
    let handle = LatencyHandle::new(Aggregator::new(names, limits_of(cfg)));
    let rules = cfg.probes.as_ref().map(|p| p.hysteresis.clone());
    let steady = Arc::new(Mutex::new(Steady::new(rules.unwrap_or_default())));
    let listener = rum_listener.map(Arc::new);
    let listen = match &listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let (generation, rx) = watch::channel(false);
    let r = Running {
        settings: settings_of(cfg),
        listen,
        listener,
        handle,
        steady,
        generation,
    };
    if let (Some(p), Some(_)) = (&cfg.probes, &cfg.fleet) {
        let g = share::global();
        g.set_local(r.handle.clone(), p.share_max_entries, p.share_every);
        g.set_plausible(share::Plausible {
            max_entries: p.share_max_entries,
            allow_private: p.allow_private,
        });
    }
    let mut tasks = spawn_generation(cfg, &r, rx)?;
    *running() = Some(r);
    // The process' stop ends whichever generation runs then.
    tasks.push(tokio::spawn(async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
        if let Some(r) = running().as_ref() {
            let _ = r.generation.send(true);
        }
    }));
    Ok(tasks)
}

/// Applies a reloaded config's `[rum]` and `[probes]` (called before its
/// snapshot serves): nothing when they are as running, else the aggregator
/// takes the new regions and limits, the running generation stops, the next
/// starts, and a table in the new regions' order is published at once.
pub(crate) fn apply(cfg: &ServerConfig) {
    let mut guard = running();
    let Some(r) = guard.as_mut() else { return };
    let settings = settings_of(cfg);
    if settings == r.settings {
        return;
    }
    let wanted = cfg.rum.as_ref().map(|x| x.listen);
    if wanted.is_some() && wanted != r.listen {
        warn!(
            "rum.listen {:?} differs from the collector's socket {:?}: it takes effect on restart",
            wanted, r.listen
        );
    }
    let to = r.handle.lock().remap(measured_regions(cfg), limits_of(cfg));
    let mut steady = r.steady.lock().unwrap_or_else(|e| e.into_inner());
    steady.remap(&to);
    steady.rules = cfg
        .probes
        .as_ref()
        .map(|p| p.hysteresis.clone())
        .unwrap_or_default();
    drop(steady);
    let _ = r.generation.send(true);
    let (generation, rx) = watch::channel(false);
    r.generation = generation;
    r.settings = settings;
    if let Err(e) = spawn_generation(cfg, r, rx) {
        warn!("measured latency after the reload: {e:#}");
    }
    publish(&r.handle, &r.steady);
    info!(regions = ?measured_regions(cfg), "measured latency: [rum] and [probes] reloaded");
}

/// One generation: collector, prober, refresh; they end when `stop` turns true.
fn spawn_generation(
    cfg: &ServerConfig,
    r: &Running,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let names = measured_regions(cfg);
    if names.is_empty() {
        measured_slot().store(None);
        return Ok(Vec::new());
    }
    let mut tasks = Vec::new();
    if let (Some(rum), Some(l)) = (&cfg.rum, &r.listener) {
        tasks.push(start_rum(rum, l.clone(), r.handle.clone(), stop.clone())?);
    }
    let mut every = cfg.rum.as_ref().map_or(Duration::MAX, |x| x.refresh);
    if let Some(p) = &cfg.probes {
        every = every.min(p.refresh);
        let region = names.iter().position(|n| *n == p.region).unwrap_or(0) as u16;
        let settings = probe::ProbeSettings {
            region,
            rate: p.rate,
            interval: p.interval,
            timeout: p.timeout,
            sample_every: p.sample_every,
            never: p.never.clone(),
            allow_private: p.allow_private,
            port: p.port,
            source: p.source,
        };
        info!(region = %p.region, rate = p.rate, "site probes on");
        tasks.push(tokio::spawn(probe::run(
            settings,
            r.handle.clone(),
            stop.clone(),
        )));
    }
    if every == Duration::MAX {
        every = DEFAULT_RUM_REFRESH;
    }
    tasks.push(tokio::spawn(refresh(
        r.handle.clone(),
        every,
        r.steady.clone(),
        stop,
    )));
    Ok(tasks)
}

/// Starts the collector on `listener`, feeding `handle`; it ends when `stop`
/// turns true.
fn start_rum(
    r: &RumConfig,
    listener: Arc<TcpListener>,
    handle: LatencyHandle,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    use crate::latency::rum::{Collector, RumLimits, RumRegion, RumSettings};
    let regions = r
        .regions
        .iter()
        .enumerate()
        .map(|(i, (name, url))| RumRegion {
            name: name.clone(),
            index: i as u16,
            url: url.clone(),
        })
        .collect();
    let mut settings = RumSettings::new(listener.local_addr()?, regions);
    settings.allowed_origins = r.allowed_origins.clone();
    settings.trusted_proxies = r.trusted_proxies.clone();
    settings.feed_token = r.feed_token.clone();
    let b = &r.bounds;
    settings.rounds = b.rounds;
    settings.limits = RumLimits {
        max_body: b.max_body,
        max_samples: b.max_samples,
        max_feed_body: b.max_feed_body,
        max_feed_samples: b.max_feed_samples,
        rate_per_sec: b.rate,
        burst: b.burst,
        rate_keys: b.rate_networks,
        max_connections: b.max_connections,
        ..settings.limits
    };
    let collector = Collector::new(settings, handle)?;
    Ok(tokio::spawn(crate::latency::rum::serve(
        listener, collector, stop,
    )))
}

/// Takes the aggregator's table when its figures changed and swaps it in;
/// the decision caches then forget answers decided from the old one.
fn publish(handle: &LatencyHandle, steady: &Mutex<Steady<NetKey>>) {
    let now = Instant::now();
    let mut steady = steady.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fresh) = handle.refresh_shared(now, share::global(), &mut steady) {
        info!(rows = fresh.rows.len(), "measured latency table published");
        measured_slot().store((!fresh.rows.is_empty()).then_some(fresh));
        crate::health::bump_epoch();
    }
}

/// Every `every`, [`publish`]: the fleet's shared figures merged in, each
/// network's winner held by `steady` (the aggregator looks again only at
/// networks with news).
async fn refresh(
    handle: LatencyHandle,
    every: Duration,
    steady: Arc<Mutex<Steady<NetKey>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        publish(&handle, &steady);
    }
}

/// The running aggregator, for the admin endpoint's matrix; none before start.
pub(crate) fn handle() -> Option<LatencyHandle> {
    running().as_ref().map(|r| r.handle.clone())
}
