//! `signpost serve`: load everything a query reads, bind the sockets, start the
//! transports and the tasks beside them (probes, reload, fleet, collector, admin),
//! and stop them in order on SIGTERM or SIGINT.
//!
//! The steps, in order: [`serve`] reads the configuration and sets up logging and
//! the descriptor caps; [`Loaded::load`] builds the first snapshot and puts saved
//! health state back; [`Bound::bind`] opens every socket (only after the load, so no
//! query meets a half-built snapshot); [`run`] starts the tasks on a runtime and
//! waits for a signal; [`Tasks::stop`] ends them.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::answer::health_view::{Dials, HealthBridge, Weights};
use crate::answer::snapshot::{self, Snapshot};
use crate::app::{self, CommandLine};
use crate::config::{ConfigErrors, LogFormat, ServerConfig};
use crate::health::{self, HealthTable, Scheduler};
use crate::metrics::Metrics;
use crate::reload::{self, Prepare, ReloadStats};
use crate::server::{self, TcpLimits};

/// Serves until SIGTERM or SIGINT; SIGHUP reloads.
pub fn serve(o: &CommandLine) -> anyhow::Result<()> {
    // Before anything opens a file: the caps are fitted under the raised limit.
    let files = server::fdlimit::raise();
    let mut cfg = app::server_config(o).map_err(ConfigErrors)?;
    init_logging(&cfg);
    if let Some(l) = files {
        info!(
            soft_before = l.soft_before,
            soft = l.soft,
            hard = l.hard,
            "open-file limit (RLIMIT_NOFILE)"
        );
    }
    if let Some(plan) = app::fit_descriptors(&mut cfg).map_err(ConfigErrors)? {
        info!("connection caps: {plan}");
    }
    cfg.check_admin().map_err(anyhow::Error::msg)?;
    if let Some(ip) = cfg.probe_source {
        health::set_probe_source(ip);
    }
    let mut loaded = Loaded::load(&cfg)?;
    let bound = Bound::bind(&cfg)?;
    loaded.snap.listen = cfg.listen.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-rt")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run(o.clone(), cfg, loaded, bound))
}

fn init_logging(cfg: &ServerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The first snapshot, with the health state it starts from.
struct Loaded {
    snap: Snapshot,
    table: Arc<HealthTable>,
    weights: Weights,
    dials: Dials,
    /// `[shed.REGION]`'s dials, which every snapshot's health view reads.
    shed: Arc<health::ShedDials>,
    load_ms: u128,
    records: usize,
    zones: Vec<String>,
}

impl Loaded {
    fn load(cfg: &ServerConfig) -> anyhow::Result<Loaded> {
        let started = Instant::now();
        // The code that ran so far (arguments, configuration, logging, the
        // runtime) is let go before the load, whose peak is the process's:
        // mapped 64 KiB around every page touched, it was 5 MiB of the binary's
        // text through the load (a 10,000-record server's peak 7.0 MiB).
        crate::malloc::release_startup_code();
        // The serials and journals of the last run go back before the first load.
        let saved = crate::server::xfr_journal::restore_serials(&cfg.transfer, &cfg.zones);
        let (mut snap, loaded) = app::load_snapshot_without_fast(cfg, 1).map_err(ConfigErrors)?;
        crate::server::xfr_journal::restore_journals(&mut snap, saved);
        crate::server::xfr_journal::save(&snap, &cfg.zones, None);
        // Everything a query reads is built by now (zones, steered names, the geo
        // database): the sockets are bound only after this, so no query is
        // answered from a half-built snapshot. The fast table, which answers the
        // same bytes sooner, is built once the sockets serve (see `run`).
        // What the load built and dropped (parsed records) goes back to the
        // system rather than staying resident.
        crate::malloc::trim();
        // And so does the code that ran the load (the configuration, the
        // zone parser), which would otherwise be resident through the fast
        // table's build, the load's peak.
        crate::malloc::release_startup_code();
        let load_ms = started.elapsed().as_millis();
        let records = snap.zones.zones().iter().map(|z| z.record_count()).sum();
        for w in &loaded.warnings {
            warn!("{w}");
        }
        let zones = snap.zone_names().iter().map(|n| n.to_string()).collect();

        // Health: one table slot per probe target, with saved drains, weights and
        // last known health put back before anything is served.
        let table = Arc::new(HealthTable::new(snap.health_targets.clone()));
        let weights: Weights = Arc::new(Mutex::new(Default::default()));
        let dials: Dials = Arc::new(Mutex::new(Default::default()));
        if let Some(path) = &cfg.state_file {
            restore_state(path, &table, &weights, &dials);
        }
        let shed = Arc::new(health::ShedDials::with_plans(
            cfg.shed
                .iter()
                .map(|s| (s.region.clone(), s.query.is_none(), s.plan)),
        ));
        snap.health = HealthBridge::new(
            table.clone(),
            &snap.health_targets,
            snap.endpoint_names.clone(),
            weights.clone(),
            dials.clone(),
        )
        .with_shed(shed.clone());
        Ok(Loaded {
            snap,
            table,
            weights,
            dials,
            shed,
            load_ms,
            records,
            zones,
        })
    }
}

fn restore_state(path: &std::path::Path, table: &HealthTable, weights: &Weights, dials: &Dials) {
    match health::load(path) {
        Ok(st) => {
            let n = st.apply_to(table);
            if let Ok(mut w) = weights.lock() {
                *w = st.weights.clone();
            }
            // A saved dial over 100 is not one: dropped.
            if let Ok(mut d) = dials.lock() {
                *d = st
                    .dials
                    .iter()
                    .filter(|(_, &v)| v <= 100)
                    .map(|(k, &v)| (k.clone(), v))
                    .collect();
            }
            info!(
                targets = n,
                overrides = st.overrides.len(),
                "restored state from {}",
                path.display()
            );
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => warn!("state file not used: {e}"),
    }
}

/// Every socket the server listens on, bound before any task starts.
struct Bound {
    dns: Vec<server::BoundAddr>,
    udp_per_address: usize,
    encrypted: server::Encrypted,
    admin: Option<TcpListener>,
    rum: Option<TcpListener>,
}

impl Bound {
    fn bind(cfg: &ServerConfig) -> anyhow::Result<Bound> {
        let udp_per_address = match cfg.udp_sockets_per_address {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        let dns = server::bind_all(&cfg.listen, udp_per_address, cfg.udp_payload_max)
            .context("binding sockets")?;
        let encrypted = app::bind_encrypted(cfg).context("binding DoT/DoH")?;
        let admin = match cfg.admin_listen {
            Some(a) => Some(TcpListener::bind(a).with_context(|| format!("binding admin {a}"))?),
            None => None,
        };
        let rum = match &cfg.rum {
            Some(r) => Some(
                TcpListener::bind(r.listen)
                    .with_context(|| format!("binding the collector (rum.listen) {}", r.listen))?,
            ),
            None => None,
        };
        Ok(Bound {
            dns,
            udp_per_address,
            encrypted,
            admin,
            rum,
        })
    }
}

fn tokio_listener(l: TcpListener) -> std::io::Result<tokio::net::TcpListener> {
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// What runs until the stop, in the order it is stopped.
struct Tasks {
    stop_tx: tokio::sync::watch::Sender<bool>,
    reloader: tokio::task::JoinHandle<()>,
    others: Vec<tokio::task::JoinHandle<()>>,
    dns: server::Running,
    estate: Arc<reload::estate::Estate>,
    admin_state: AdminState,
}

impl Tasks {
    async fn stop(self) {
        info!("shutting down");
        let _ = self.stop_tx.send(true);
        let _ = self.reloader.await;
        for t in self.others {
            let _ = t.await;
        }
        self.estate.secondaries.join().await;
        self.dns.shutdown().await;
        let estate = self.estate.clone();
        let _ = tokio::task::spawn_blocking(move || estate.stop_dnstap()).await;
        admin::save_state(&self.admin_state);
        info!("stopped");
    }
}

async fn run(
    o: CommandLine,
    cfg: ServerConfig,
    loaded: Loaded,
    bound: Bound,
) -> anyhow::Result<()> {
    let Loaded {
        snap,
        table,
        weights,
        dials,
        shed,
        load_ms,
        records,
        zones,
    } = loaded;
    let handle = snapshot::handle(snap);
    let metrics = Arc::new(Metrics::default());
    let limits = TcpLimits {
        max_connections: cfg.tcp_max_connections,
        max_per_client: cfg.tcp_max_per_client,
        idle_timeout: cfg.tcp_idle_timeout,
        max_lifetime: cfg.tcp_max_lifetime,
        handshake_timeout: cfg.tcp_handshake_timeout,
    };
    let addrs: Vec<String> = bound.dns.iter().map(|b| b.addr.to_string()).collect();
    let encrypted_addrs = bound.encrypted.describe();
    let rrl = Arc::new(crate::answer::rrl::Rrl::new(cfg.rrl.clone()));
    let dnstap = cfg
        .dnstap
        .clone()
        .map(server::dnstap::Tap::start)
        .transpose()?;
    let qlog = server::querylog::QueryLog::new(cfg.query_log).with_dnstap(dnstap);
    let qlog = Arc::new(qlog);
    let qlog_all = qlog.clone();
    let dns = server::start(
        bound.dns,
        handle.clone(),
        limits,
        &metrics,
        rrl,
        qlog.clone(),
    )?;
    // A restarted primary tells its secondaries now (RFC 1996) rather than
    // leaving them to their refresh timers: each zone, to its `notify`.
    let snap = handle.load_full();
    crate::server::notify::spawn(&snap.transfer, &snap.zone_names());
    drop(snap);
    let signals = Signals::register();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut others =
        bound
            .encrypted
            .start(handle.clone(), limits, &metrics, qlog, stop_rx.clone())?;

    let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(4);
    let stats = Arc::new(ReloadStats::default());
    let scheduler = Arc::new(Mutex::new(Scheduler::start(table, stop_rx.clone())));
    // [[secondary]] zones: pulled from their primaries, each change a reload;
    // they and [dnstap] follow the config at each reload.
    let secondaries =
        crate::secondary::Running::start(&cfg.secondaries, hup_tx.clone(), stop_rx.clone());
    let estate = reload::estate::Estate::new(secondaries, qlog_all, cfg.dnstap.clone());
    let reloader = tokio::spawn(reload::run(
        o.clone(),
        reload::FileWatch::start(&o),
        handle.clone(),
        stats.clone(),
        reload::Hooks {
            prepare: Some(keep_health(scheduler, weights, dials, shed.clone())),
            estate: Some(estate.clone()),
        },
        hup_rx,
        stop_rx.clone(),
    ));
    // With [fleet]: drains, weights and votes shared through etcd. Started
    // after the state file was applied, which stands until etcd answers.
    let ramps = restore_ramps(&cfg);
    let fleet = match cfg.fleet.clone() {
        Some(f) => {
            let state_file = cfg.state_file.clone();
            let (fleet, tasks) = crate::fleet::Fleet::start(
                f,
                handle.clone(),
                state_file,
                ramps.clone(),
                stop_rx.clone(),
            )?;
            others.extend(tasks);
            Some(fleet)
        }
        None => None,
    };
    // With [rum]: the collector; with [probes]: the site prober; and the
    // refresh of the measured table into the answers.
    let rum = match bound.rum {
        Some(l) => {
            let l = tokio_listener(l)?;
            info!("latency collector on {}", l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    others.extend(crate::reload::latency::start(&cfg, rum, stop_rx.clone())?);
    let admin_state = AdminState {
        snap: handle.clone(),
        reload: stats,
        metrics: metrics.clone(),
        state_file: cfg.state_file.clone(),
        token: cfg.admin_token.clone(),
        allowed_hosts: cfg.admin_allowed_hosts.clone(),
        fleet,
        shed: start_shedding(&cfg, shed, &stop_rx),
        ramps,
        gates: start_gates(&cfg, &stop_rx),
        ramp_plans: Arc::new(cfg.rollout.ramps.clone()),
    };
    others.push(admin::start_ramps(admin_state.clone(), stop_rx.clone()));
    let mut admin_addr = String::new();
    if let Some(l) = bound.admin {
        let l = tokio_listener(l)?;
        admin_addr = format!("; admin on {}", l.local_addr()?);
        others.push(tokio::spawn(admin::serve(
            l,
            admin_state.clone(),
            stop_rx.clone(),
        )));
    }

    info!(
        load_ms,
        records,
        fast_path = "building",
        "signpost ready: listening on {} (udp+tcp, {} udp socket(s) each); zones: {}{admin_addr}",
        addrs.join(" "),
        bound.udp_per_address,
        zones.join(" ")
    );
    // The fast table beside the serving snapshot: until it is set, every
    // query takes the general path, which gives the same bytes.
    if let Err(e) = app::build_fast_later(handle.clone()) {
        warn!("cannot start the fast table's build ({e}); every query takes the general path");
    }
    if !encrypted_addrs.is_empty() {
        info!("encrypted transports: {encrypted_addrs}");
    }
    signals.wait(hup_tx).await;
    Tasks {
        stop_tx,
        reloader,
        others,
        dns,
        estate,
        admin_state,
    }
    .stop()
    .await;
    Ok(())
}

/// The ramps saved beside the state file (none without one); a file that does not
/// read is logged and left for the next save.
fn restore_ramps(cfg: &ServerConfig) -> Arc<crate::rollout::Ramps> {
    let file = cfg.state_file.as_deref().map(crate::rollout::file_beside);
    let (ramps, err) = crate::rollout::Ramps::load(file);
    if let Some(e) = err {
        warn!("ramps not restored: {e}");
    }
    Arc::new(ramps)
}

/// `[shed.REGION]`: one task per region, publishing its dial.
fn start_shedding(
    cfg: &ServerConfig,
    dials: Arc<health::ShedDials>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Arc<health::ShedDials> {
    for s in &cfg.shed {
        tokio::spawn(health::run_shed(s.clone(), dials.clone(), stop.clone()));
    }
    dials
}

/// `[gates.NAME]`: one task per gate, publishing its verdict for the ramps.
fn start_gates(
    cfg: &ServerConfig,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Arc<health::MetricGates> {
    let gates = Arc::new(health::MetricGates::new(&cfg.rollout.gates));
    for g in &cfg.rollout.gates {
        tokio::spawn(health::run_gate(g.clone(), gates.clone(), stop.clone()));
    }
    gates
}

/// What a reload does before its snapshot serves: keeps the probes and state of
/// targets that still exist, starts new ones and stops removed ones.
fn keep_health(
    scheduler: Arc<Mutex<health::SchedulerHandle>>,
    weights: Weights,
    dials: Dials,
    shed: Arc<health::ShedDials>,
) -> Prepare {
    Arc::new(move |new: &mut Snapshot, _old: &Snapshot| {
        let Ok(mut s) = scheduler.lock() else { return };
        let m = s.reconcile(new.health_targets.clone());
        new.health = HealthBridge::new(
            m.table,
            &new.health_targets,
            new.endpoint_names.clone(),
            weights.clone(),
            dials.clone(),
        )
        .with_shed(shed.clone());
    })
}

/// The signals the server answers to, registered before it says it is ready: a
/// SIGHUP that arrived before registration would otherwise end the process (the
/// default action) instead of reloading.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP asks the reloader for a reload meanwhile.
    async fn wait(mut self, hup_tx: tokio::sync::mpsc::Sender<()>) {
        let (Some(term), Some(hup)) = (self.term.as_mut(), self.hup.as_mut()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hup.recv() => {
                    let _ = hup_tx.try_send(());
                }
            }
        }
    }
}
