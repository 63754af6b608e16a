//! The `signpost` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use tracing::{info, warn};

use signpost::admin::{self, AdminState};
use signpost::app::{self, Overrides};
use signpost::bridge::{Dials, HealthBridge, Weights};
use signpost::config::{ConfigErrors, LogFormat, ServerConfig};
use signpost::health::{self, HealthTable, Scheduler};
use signpost::memory;
use signpost::metrics::Metrics;
use signpost::reload::{self, Prepare, ReloadStats};
use signpost::server::{self, TcpLimits};
use signpost::snapshot;

mod ctl;

#[derive(Parser)]
#[command(
    name = "signpost",
    version,
    about = "Authoritative DNS that steers each client to the right region"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the zones over UDP and TCP.
    Serve {
        /// Server config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Zones folder (default: zones/).
        #[arg(long)]
        zones: Option<PathBuf>,
        /// Address to listen on, UDP and TCP; repeat for more (default 127.0.0.1:5300).
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Serve the admin HTTP endpoint (metrics, status, overrides) here.
        #[arg(long, value_name = "ADDR:PORT")]
        admin: Option<SocketAddr>,
        /// Keep overrides, weights, dials and last known health in this file.
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
    },
    /// Load everything as `serve` would, report every error with file:line, serve nothing.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        zones: Option<PathBuf>,
    },
    /// Explain, offline, what a client gets for a name and why.
    Explain {
        /// The name, like www.geo.example.com.
        name: String,
        /// Query type (default A).
        #[arg(default_value = "A")]
        qtype: String,
        /// The client: an address, or an ECS subnet like 203.0.113.0/24.
        #[arg(long)]
        client: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        zones: Option<PathBuf>,
    },
    /// Talk to a running server's admin endpoint: drain, undrain, force, weights, status.
    Ctl(ctl::CtlArgs),
    /// Write the manual pages (signpost.8, signpost-serve.8, ...) into DIR.
    #[command(hide = true)]
    Man {
        /// Folder to write the pages into; made if missing.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    memory::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, zones } => {
            let o = Overrides {
                config,
                zones,
                ..Overrides::default()
            };
            match app::check(&o) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} error(s); nothing would be served", errors.len());
                    ExitCode::from(1)
                }
            }
        }
        Command::Explain {
            name,
            qtype,
            client,
            config,
            zones,
        } => {
            let o = Overrides {
                config,
                zones,
                ..Overrides::default()
            };
            let Some(t) = signpost::zone::rtype::from_name(&qtype) else {
                eprintln!("error: {qtype:?} is not a record type (A, AAAA, CNAME, ANY, ...)");
                return ExitCode::from(2);
            };
            match app::explain(&o, &name, t, &client) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    ExitCode::from(1)
                }
            }
        }
        Command::Ctl(args) => ctl::run(args),
        Command::Man { dir } => match write_man_pages(&dir) {
            Ok(n) => {
                println!("{n} pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing manual pages to {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
        Command::Serve {
            config,
            zones,
            listen,
            admin,
            state_file,
        } => {
            let o = Overrides {
                config,
                zones,
                listen,
                admin,
                state_file,
            };
            match serve(&o) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Writes one section 8 page for `signpost` and one for each subcommand, nested
/// ones included (`signpost-ctl-drain.8`), from the definitions `--help` prints;
/// returns how many.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    fn write(cmd: clap::Command, dir: &std::path::Path, n: &mut usize) -> std::io::Result<()> {
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                write(sub.clone(), dir, n)?;
            }
        }
        clap_mangen::Man::new(cmd)
            .section("8")
            .manual("signpost")
            .source(concat!("signpost ", env!("CARGO_PKG_VERSION")))
            .generate_to(dir)?;
        *n += 1;
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut n = 0;
    write(cmd, dir, &mut n)?;
    Ok(n)
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

fn serve(o: &Overrides) -> anyhow::Result<()> {
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
    let load_started = std::time::Instant::now();
    let (mut snap, loaded) = app::load_snapshot_without_fast(&cfg, 1).map_err(ConfigErrors)?;
    // Everything a query reads is built by now (zones, steered names, the geo
    // database): the sockets are bound only after this, so no query is
    // answered from a half-built snapshot. The fast table, which answers the
    // same bytes sooner, is built once the sockets serve (see below).
    // What the load built and dropped (parsed records) goes back to the
    // system rather than staying resident.
    memory::trim();
    let load_ms = load_started.elapsed().as_millis();
    let records: usize = snap.zones.zones().iter().map(|z| z.record_count()).sum();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let zone_list: Vec<String> = snap.zone_names().iter().map(|n| n.to_string()).collect();

    // Health: one table slot per probe target, with saved overrides, weights and
    // last known health put back before anything is served.
    let table = Arc::new(HealthTable::new(snap.health_targets.clone()));
    let weights: Weights = Arc::new(Mutex::new(Default::default()));
    let dials: Dials = Arc::new(Mutex::new(Default::default()));
    if let Some(path) = &cfg.state_file {
        match health::load(path) {
            Ok(st) => {
                let n = st.apply_to(&table);
                if let Ok(mut w) = weights.lock() {
                    *w = st.weights.clone();
                }
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
    snap.health = HealthBridge::new(
        table.clone(),
        &snap.health_targets,
        snap.endpoint_names.clone(),
        weights.clone(),
        dials.clone(),
    );

    let per_addr = match cfg.udp_sockets_per_address {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let bound =
        server::bind_all(&cfg.listen, per_addr, cfg.udp_payload_max).context("binding sockets")?;
    let addrs: Vec<String> = bound.iter().map(|b| b.addr.to_string()).collect();
    let encrypted = app::bind_encrypted(&cfg).context("binding DoT/DoH")?;
    let encrypted_addrs = encrypted.describe();
    let admin_listener = match cfg.admin_listen {
        Some(a) => {
            Some(std::net::TcpListener::bind(a).with_context(|| format!("binding admin {a}"))?)
        }
        None => None,
    };
    let rum_listener = match &cfg.rum {
        Some(r) => Some(
            std::net::TcpListener::bind(r.listen)
                .with_context(|| format!("binding the collector (rum.listen) {}", r.listen))?,
        ),
        None => None,
    };
    snap.listen = cfg.listen.clone();
    let handle = snapshot::handle(snap);
    let metrics = Arc::new(Metrics::default());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-rt")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let o = o.clone();
    rt.block_on(async move {
        let limits = TcpLimits {
            max_connections: cfg.tcp_max_connections,
            max_per_client: cfg.tcp_max_per_client,
            idle_timeout: cfg.tcp_idle_timeout,
            max_lifetime: cfg.tcp_max_lifetime,
            handshake_timeout: cfg.tcp_handshake_timeout,
        };
        let rrl = Arc::new(server::rrl::Rrl::new(cfg.rrl.clone()));
        let qlog = Arc::new(server::querylog::QueryLog::new(cfg.query_log));
        let running = server::start(bound, handle.clone(), limits, &metrics, rrl, qlog.clone())?;
        let signals = Signals::register();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let encrypted_tasks =
            encrypted.start(handle.clone(), limits, &metrics, qlog, stop_rx.clone())?;

        let scheduler = Arc::new(Mutex::new(Scheduler::start(table, stop_rx.clone())));
        // Every reloaded snapshot keeps the probes and state of targets that still
        // exist, starts new ones and stops removed ones.
        let prepare: Prepare = {
            let scheduler = scheduler.clone();
            let weights = weights.clone();
            let dials = dials.clone();
            Arc::new(move |new: &mut snapshot::Snapshot, _old: &snapshot::Snapshot| {
                let Ok(mut s) = scheduler.lock() else { return };
                let m = s.reconcile(new.health_targets.clone());
                new.health = HealthBridge::new(
                    m.table,
                    &new.health_targets,
                    new.endpoint_names.clone(),
                    weights.clone(),
                    dials.clone(),
                );
            })
        };

        let (hup_tx, hup_rx) = tokio::sync::mpsc::channel(4);
        let stats = Arc::new(ReloadStats::default());
        let files = reload::FileWatch::start(&o);
        let reloader = tokio::spawn(reload::run(
            o,
            files,
            handle.clone(),
            stats.clone(),
            Some(prepare),
            hup_rx,
            stop_rx.clone(),
        ));

        // With [fleet]: drains, weights and votes shared through etcd. Started
        // after the state file was applied, which stands until etcd answers.
        let (fleet, fleet_tasks) = match cfg.fleet.clone() {
            Some(f) => {
                let (fleet, tasks) = signpost::fleet::Fleet::start(
                    f,
                    handle.clone(),
                    cfg.state_file.clone(),
                    stop_rx.clone(),
                )?;
                (Some(fleet), tasks)
            }
            None => (None, Vec::new()),
        };

        let admin_state = AdminState {
            snap: handle.clone(),
            reload: stats.clone(),
            metrics: metrics.clone(),
            state_file: cfg.state_file.clone(),
            token: cfg.admin_token.clone(),
            allowed_hosts: cfg.admin_allowed_hosts.clone(),
            fleet,
            ramps: Arc::new(
                match signpost::rollout::Ramps::load(
                    cfg.state_file.as_deref().map(signpost::rollout::file_beside),
                ) {
                    Ok(r) => r,
                    Err((r, e)) => {
                        warn!("ramps not restored: {e}");
                        r
                    }
                },
            ),
        };
        let ramp_task = admin::start_ramps(admin_state.clone(), stop_rx.clone());
        // With [rum]: the collector and the refresh of its table into the answers.
        let rum_tasks = match (rum_listener, cfg.rum.as_ref()) {
            (Some(l), Some(r)) => {
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                info!("latency collector on {}", l.local_addr()?);
                app::start_rum(r, l, stop_rx.clone())?
            }
            _ => Vec::new(),
        };
        let mut admin_addr = String::new();
        let admin_task = match admin_listener {
            Some(l) => {
                l.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(l)?;
                admin_addr = format!("; admin on {}", l.local_addr()?);
                Some(tokio::spawn(admin::serve(
                    l,
                    admin_state.clone(),
                    stop_rx.clone(),
                )))
            }
            None => None,
        };

        info!(
            load_ms,
            records,
            fast_path = "building",
            "signpost ready: listening on {} (udp+tcp, {per_addr} udp socket(s) each); zones: {}{admin_addr}",
            addrs.join(" "),
            zone_list.join(" ")
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
        info!("shutting down");
        let _ = stop_tx.send(true);
        let _ = reloader.await;
        for t in fleet_tasks {
            let _ = t.await;
        }
        for t in rum_tasks {
            let _ = t.await;
        }
        if let Some(t) = admin_task {
            let _ = t.await;
        }
        let _ = ramp_task.await;
        for t in encrypted_tasks {
            let _ = t.await;
        }
        running.shutdown().await;
        admin::save_state(&admin_state);
        info!("stopped");
        Ok::<(), anyhow::Error>(())
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
