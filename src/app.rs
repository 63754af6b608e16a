//! Wiring: load the configuration into a snapshot, bind, serve, stop on a signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::zones::{load_zones_with, LoadedZones};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::answer::cookie::CookieSecret;
use crate::answer::snapshot::{ChaosAnswers, Snapshot};
use crate::config::server::Precedence;
use crate::config::{ConfigError, ServerConfig};
use crate::geo::cidr::{CidrTable, IpNet};
use crate::geo::client::ClientLocator;
use crate::geo::Locator;
use crate::policy::LatencyTable;
use crate::zone::ZoneSet;

/// Command-line settings that override the config file.
#[derive(Debug, Clone, Default)]
pub struct CommandLine {
    pub config: Option<PathBuf>,
    pub zones: Option<PathBuf>,
    pub listen: Vec<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub state_file: Option<PathBuf>,
}

/// Reads the server config (or the defaults) and applies the command-line overrides.
pub fn server_config(o: &CommandLine) -> Result<ServerConfig, Vec<ConfigError>> {
    let mut cfg = match &o.config {
        Some(p) => ServerConfig::load(p)?,
        None => ServerConfig::default(),
    };
    if let Some(z) = &o.zones {
        cfg.zones = z.clone();
    }
    if !o.listen.is_empty() {
        cfg.listen = o.listen.clone();
    }
    if o.admin.is_some() {
        cfg.admin_listen = o.admin;
    }
    if o.state_file.is_some() {
        cfg.state_file = o.state_file.clone();
    }
    Ok(cfg)
}

/// Fits the connection caps under the open-file limit `serve` runs with (the hard
/// limit; see `server::fdlimit`), as `serve` and `check` both do; `None` where
/// the limit cannot be read.
pub(crate) fn fit_descriptors(
    cfg: &mut ServerConfig,
) -> Result<Option<crate::config::DescriptorPlan>, Vec<ConfigError>> {
    let Some(limit) = crate::server::fdlimit::available() else {
        return Ok(None);
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cfg.fit_descriptors(limit, cores).map(Some)
}

/// The one loader: `serve` and `check` both build a snapshot with it, fast
/// table included.
pub fn load_snapshot(
    cfg: &ServerConfig,
    generation: u64,
) -> Result<(Snapshot, LoadedZones), Vec<ConfigError>> {
    let (snap, loaded) = load_snapshot_without_fast(cfg, generation)?;
    if !fast_path_off() {
        let _ = snap.fast.set(crate::answer::fast::FastTable::build(&snap));
    }
    Ok((snap, loaded))
}

/// `SIGNPOST_NO_FAST` is set: no fast table is built, every query takes the
/// general path.
fn fast_path_off() -> bool {
    std::env::var_os("SIGNPOST_NO_FAST").is_some()
}

/// Everything a query needs, but the fast table: the general path answers
/// every query from it alike, the fast path's prebuilt answers being the
/// same bytes (`tests/fast_path.rs`). `serve` starts answering from this and
/// builds the table beside it ([`build_fast_later`]).
pub(crate) fn load_snapshot_without_fast(
    cfg: &ServerConfig,
    generation: u64,
) -> Result<(Snapshot, LoadedZones), Vec<ConfigError>> {
    // Read before the zones, so that a bad certificate is reported with them.
    let tls = load_tls(cfg);
    let copies = crate::config::secondary::copies(&cfg.secondaries, crate::clock::unix_now());
    let mut loaded = match (load_zones_with(&cfg.zones, &copies), tls.as_ref()) {
        (Ok(l), Ok(_)) => l,
        (Err(mut e), Err(t)) => {
            e.insert(0, t.clone());
            return Err(e);
        }
        (Err(e), _) => return Err(e),
        (_, Err(t)) => return Err(vec![t.clone()]),
    };
    let mut zones = std::mem::take(&mut loaded.zones);
    let mut steering = std::mem::take(&mut loaded.steering);
    let checks = std::mem::take(&mut loaded.checks);
    let (targets, names) = crate::answer::health_view::assign(&mut steering, &checks);
    for (z, s) in zones.iter_mut().zip(steering.iter_mut()) {
        z.metrics_slot = crate::metrics::zone_slot(&z.origin.to_string());
        for p in s.names.iter_mut() {
            p.metrics_slot = crate::metrics::name_slot(&p.name.to_string());
        }
    }
    if zones.is_empty() && loaded.unavailable.is_empty() {
        return Err(vec![ConfigError::new(
            &cfg.zones,
            0,
            "no zones: add NAME.zone master files or *.toml policy files".to_string(),
        )]);
    }
    let geo = load_geo(cfg, &mut loaded.warnings)?;
    let started = std::time::Instant::now();
    match crate::policy::scope::attach(steering.iter_mut().map(|s| (&s.policy, &mut s.names)), &geo)
    {
        Ok(b) if b.names > 0 => tracing::info!(
            names = b.names,
            maps = b.maps,
            runs = b.runs,
            kib = b.bytes / 1024,
            ms = started.elapsed().as_millis() as u64,
            "ECS scope maps built"
        ),
        Ok(_) => {}
        Err(e) => loaded.warnings.push(ConfigError::new(
            cfg.geo
                .database
                .as_deref()
                .unwrap_or(Path::new("geo.database")),
            0,
            format!("{e}: ECS scopes are the database networks, not merged"),
        )),
    }
    attach_measured(cfg, &mut steering);
    let signed = |z: &crate::zone::Zone| {
        z.signing.is_some() || cfg.dnssec.zones.iter().any(|(n, _, _)| *n == z.origin)
    };
    for line in crate::server::xfr_serial::follow_content(&cfg.zones, &mut zones, &steering, signed)
    {
        tracing::info!("{line}");
    }
    let signers = sign_zones(cfg, &mut zones, &mut steering, &mut loaded.warnings)?;
    let mut snap = Snapshot::new(ZoneSet::new(zones), geo, cfg.udp_payload_max, generation);
    let id = &cfg.identity;
    snap.chaos = ChaosAnswers::new(&id.id_server, &id.hostname_bind, &id.version_bind);
    snap.nsid = id.nsid.clone().map(Vec::into_boxed_slice);
    snap.cookies = cfg.cookies.enabled.then(|| match cfg.cookies.secret {
        Some(k) => CookieSecret::new(k),
        None => CookieSecret::process(),
    });
    snap.transfer = Arc::new(cfg.transfer.clone());
    snap.ecs_from = net_set(&cfg.geo.ecs_from);
    snap.explain_from = net_set(&cfg.geo.explain_from);
    snap.steering = steering;
    snap.signers = signers;
    snap.health_targets = targets;
    snap.tls = tls.ok().flatten();
    snap.endpoint_names = names;
    snap.notify = crate::secondary::notify_table(&cfg.secondaries);
    snap.unavailable = std::mem::take(&mut loaded.unavailable);
    Ok((snap, loaded))
}

/// Builds the fast table of the snapshot `handle` serves, on a thread of its
/// own, sets it there and logs `fast path ready`; then gives the build's
/// freed memory back. Queries take the general path until then. The thread
/// says whether the table went into the snapshot that still serves (not with
/// `SIGNPOST_NO_FAST`, nor when a reload replaced it first with one built
/// whole).
pub(crate) fn build_fast_later(
    handle: crate::answer::snapshot::SnapshotHandle,
) -> std::io::Result<std::thread::JoinHandle<bool>> {
    let snap = handle.load_full();
    std::thread::Builder::new()
        .name("signpost-fast".into())
        .spawn(move || {
            if fast_path_off() {
                return false;
            }
            // The build's peak is the process's: without the code that
            // started the runtime and the tasks since the load.
            crate::malloc::release_startup_code();
            let started = std::time::Instant::now();
            let table = crate::answer::fast::FastTable::build(&snap);
            let (fast_names, fast_kib) = (table.len(), table.size() >> 10);
            let build_ms = started.elapsed().as_millis();
            let set = snap.fast.set(table).is_ok();
            let current = std::sync::Arc::ptr_eq(&snap, &handle.load_full());
            if set && current {
                tracing::info!(
                    generation = snap.generation,
                    fast_names,
                    fast_kib,
                    build_ms,
                    "fast path ready: prebuilt answers for {fast_names} names"
                );
            }
            // Said first: queries take the fast path from `set` on, and what
            // follows is housekeeping. The code that wrote the line is let go
            // with the rest: logged after the release, it stayed resident
            // (0.9 MiB of a 10,000-record server's PSS).
            drop(snap);
            crate::malloc::trim();
            crate::malloc::release_startup_code();
            set && current
        })
}

/// Reads `[tls]`'s certificate and key; an error names the config line of the file
/// that did not load.
fn load_tls(
    cfg: &ServerConfig,
) -> Result<Option<std::sync::Arc<crate::server::tls::ServerTls>>, ConfigError> {
    use crate::server::tls::{self, TlsError};
    let Some(t) = &cfg.encrypted.tls else {
        return Ok(None);
    };
    tls::load(&t.cert_file, &t.key_file)
        .map(|s| Some(std::sync::Arc::new(s)))
        .map_err(|e| {
            let line = match e {
                TlsError::Key { .. } => t.key_line,
                TlsError::Cert { .. } | TlsError::Pair { .. } => t.cert_line,
            };
            ConfigError::new(&t.config_file, line, format!("tls: {e}"))
        })
}

/// Binds the DoT and DoH listeners the config asks for (none: both off).
pub(crate) fn bind_encrypted(cfg: &ServerConfig) -> std::io::Result<crate::server::Encrypted> {
    let e = &cfg.encrypted;
    Ok(crate::server::Encrypted {
        dot_max_connections: e.dot_max_connections,
        doh_max_connections: e.doh_max_connections,
        doh_path: e.doh_path.clone(),
        doh_body_budget: e.doh_body_budget,
        ..crate::server::Encrypted::bind(&e.dot_listen, &e.doh_listen)?
    })
}
/// Signs the zones that ask for it (their file's `dnssec`, or the server's
/// `dnssec.zones`), with keys from the key folder; a bad key file is an error with
/// its line, so a reload keeps the last good signed configuration serving. In a
/// fleet, the key folder first gets the fleet's one key set from etcd
/// ([`crate::fleet::keys`]).
fn sign_zones(
    cfg: &ServerConfig,
    zones: &mut [crate::zone::Zone],
    steering: &mut [crate::policy::ZoneSteering],
    warnings: &mut Vec<ConfigError>,
) -> Result<SignerMap, Vec<ConfigError>> {
    use crate::zone::{SigningChoice, SigningPolicy};
    let mut errors = Vec::new();
    for (n, file, line) in &cfg.dnssec.zones {
        if !zones.iter().any(|z| z.origin == *n) {
            errors.push(ConfigError::new(
                file,
                *line,
                format!(
                    "dnssec.zones names {n}, which no file in {} defines",
                    cfg.zones.display()
                ),
            ));
        }
    }
    let base = SigningPolicy::merged(
        &SigningPolicy {
            key_dir: cfg.key_dir(),
            ..SigningPolicy::default()
        },
        &cfg.dnssec.defaults,
    );
    let now = crate::clock::unix_now();
    let rate = cfg.dnssec.sign_rate.unwrap_or(2000);
    let mut signed = Vec::new();
    for z in zones.iter_mut() {
        let listed = cfg.dnssec.zones.iter().any(|(n, _, _)| *n == z.origin);
        let choice = z
            .signing
            .clone()
            .or_else(|| listed.then(SigningChoice::default));
        let Some(choice) = choice else {
            continue;
        };
        let policy = SigningPolicy::merged(&base, &choice);
        signed.push((z.origin.clone(), policy.clone()));
        z.dnssec = Some(policy);
    }
    if let Some(fleet) = &cfg.fleet {
        match crate::fleet::keys::sync(fleet, &signed, now) {
            Ok(w) => warnings.extend(w),
            Err(es) => {
                errors.extend(es);
                return Err(errors);
            }
        }
    }
    let mut out = SignerMap::default();
    for (z, s) in zones.iter_mut().zip(steering.iter_mut()) {
        if z.dnssec.is_none() {
            continue;
        }
        let started = std::time::Instant::now();
        let t = cfg.transfer.zone(&z.origin);
        let transfers = t.enabled() || !t.notify.is_empty();
        match crate::dnssec::sign(z, s, now, rate, transfers) {
            Ok(s) => {
                tracing::info!(
                    zone = %z.origin,
                    rrsets = s.stats.rrsets,
                    signatures = s.stats.signatures,
                    keys = s.keys.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "zone signed"
                );
                out.insert(z.origin.clone(), std::sync::Arc::new(s));
            }
            Err(es) => errors.extend(
                es.into_iter()
                    .map(|e| ConfigError::new(&e.file, e.line, e.message)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

type SignerMap =
    rustc_hash::FxHashMap<crate::zone::Name, std::sync::Arc<crate::dnssec::ZoneSigner>>;

/// Opens the geo database and adds the overrides. No database: every client is
/// unknown and gets each name's default, with one warning.
pub fn load_geo(
    cfg: &ServerConfig,
    warnings: &mut Vec<ConfigError>,
) -> Result<ClientLocator, Vec<ConfigError>> {
    let db = match &cfg.geo.database {
        Some(path) if path.is_file() => match Locator::open(path, cfg.geo.fields.clone()) {
            Ok(l) => Some(l),
            Err(e) => return Err(vec![ConfigError::new(path, 0, e.to_string())]),
        },
        Some(path) if cfg.geo.database_explicit => {
            return Err(vec![ConfigError::new(
                path,
                0,
                "geo database does not exist; fix geo.database or set it to \"\" to serve without location".to_string(),
            )])
        }
        Some(path) => {
            warnings.push(ConfigError::new(
                path,
                0,
                "no geo database here: every client is located as unknown and gets each name's default".to_string(),
            ));
            None
        }
        None => {
            warnings.push(ConfigError::new(
                Path::new("geo.database"),
                0,
                "location is off: every client is located as unknown and gets each name's default".to_string(),
            ));
            None
        }
    };
    let mut geo = ClientLocator::new(db);
    let mut errors = Vec::new();
    for (net, loc) in &cfg.geo.overrides {
        if let Err(e) = geo.add_override(*net, *loc) {
            errors.push(ConfigError::new(
                Path::new("geo.override"),
                0,
                e.to_string(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(geo)
    } else {
        Err(errors)
    }
}

/// `signpost check`: load everything, report, change nothing.
pub fn check(o: &CommandLine) -> Result<String, Vec<ConfigError>> {
    let mut cfg = server_config(o)?;
    let fds = fit_descriptors(&mut cfg)?;
    let (snap, loaded) = load_snapshot(&cfg, 0)?;
    let mut report = String::new();
    if let Some(plan) = fds {
        report.push_str(&format!("ok: connection caps {plan}\n"));
    }
    for w in &loaded.warnings {
        report.push_str(&format!("warning: {w}\n"));
    }
    if let (Some(t), true) = (&cfg.encrypted.tls, cfg.encrypted.enabled()) {
        report.push_str(&format!(
            "ok: TLS certificate {} and key {} for DoT/DoH\n",
            display_path(&t.cert_file),
            display_path(&t.key_file)
        ));
    }
    for (zi, z) in snap.zones.zones().iter().enumerate() {
        let records = z.record_count();
        report.push_str(&format!(
            "ok: zone {} serial {} ({} records, {} steered names) from {}\n",
            z.origin,
            z.serial,
            records,
            snap.steering.get(zi).map_or(0, |s| s.names.len()),
            display_path(&z.source)
        ));
        if let Some(s) = snap.signers.get(&z.origin) {
            for line in s.ds_lines() {
                report.push_str(&format!("ds: {line}\n"));
            }
        }
    }
    Ok(report)
}

pub(crate) fn display_path(p: &Path) -> String {
    p.display().to_string()
}

/// `signpost explain`: the decision for one name and client, offline, step by step.
pub fn explain(
    o: &CommandLine,
    name: &str,
    qtype: u16,
    client: &str,
) -> Result<Vec<String>, Vec<ConfigError>> {
    use crate::policy::{AllUp, Recorder};
    use crate::zone::{rdata, Name, Owner};

    let bad = |m: String| vec![ConfigError::new(Path::new("explain"), 0, m)];
    let (addr, ecs) =
        crate::answer::query::parse_client(client).map_err(|e| bad(format!("--client: {e}")))?;
    let qname =
        Name::parse(name, Some(&Name::root())).map_err(|e| bad(format!("{name:?}: {e}")))?;
    let cfg = server_config(o)?;
    let (snap, _) = load_snapshot(&cfg, 0)?;
    let c = crate::answer::handler::client_of(&snap, ecs.as_ref(), addr);
    let mut rec = Recorder::default();
    let Some((zone, answer, decision)) =
        crate::answer::handler::explain_type(&snap, qname.wire(), qtype, &c, &AllUp, &mut rec)
    else {
        return Err(bad(format!(
            "{qname} is in no zone served from {}",
            cfg.zones.display()
        )));
    };
    let mut lines = vec![format!(
        "zone {} from {}",
        zone.origin,
        zone.source.display()
    )];
    let mut scope = 0;
    if let Some(d) = decision {
        lines.extend(rec.0);
        scope = d.scope;
        lines.push("(offline: health is not probed here; every endpoint counts as up)".to_string());
    } else {
        lines.push(format!(
            "{qname} is not steered: a static answer, the same for every client"
        ));
    }
    lines.push(format!("rcode {:?}, ECS scope /{scope}", answer.rcode()));
    let owner_text = |o: &Owner<'_>| match o {
        Owner::Query => qname.to_string(),
        Owner::Name(n) => n.to_text(),
    };
    for (section, recs) in [("answer", &answer.answer), ("authority", &answer.authority)] {
        for r in recs.iter() {
            for rd in r.set.rdatas().iter().take(r.take as usize) {
                lines.push(format!(
                    "{section}: {} {} {} {}",
                    owner_text(&r.owner),
                    r.set.ttl,
                    crate::zone::rtype::name(r.set.rtype()),
                    rdata::format_rdata(r.set.rtype(), rd)
                ));
            }
        }
    }
    Ok(lines)
}

/// The collector's live table: one per process, shared by every snapshot's
/// zones (a reload attaches the same one), swapped by the refresh of `reload::latency`.
static MEASURED: std::sync::OnceLock<Arc<ArcSwapOption<LatencyTable>>> = std::sync::OnceLock::new();

pub(crate) fn measured_slot() -> Arc<ArcSwapOption<LatencyTable>> {
    MEASURED.get_or_init(Default::default).clone()
}

/// With `[rum]`: every zone with a `latency` name and a region the collector
/// measures reads the live table, its regions mapped to the collector's by name.
fn attach_measured(cfg: &ServerConfig, steering: &mut [crate::policy::ZoneSteering]) {
    let names = measured_regions(cfg);
    if names.is_empty() {
        return;
    }
    let precedence = cfg.rum.as_ref().map_or(Precedence::File, |r| r.precedence);
    for s in steering {
        let columns: Vec<Option<u16>> = s
            .policy
            .regions
            .iter()
            .map(|z| names.iter().position(|n| *n == z.name).map(|i| i as u16))
            .collect();
        let latency = s
            .names
            .iter()
            .any(|p| matches!(p.strategy, crate::policy::Strategy::Latency { .. }));
        if latency && columns.iter().any(Option::is_some) {
            s.policy.measured = Some(crate::policy::Measured {
                table: measured_slot(),
                columns,
                above_file: precedence == Precedence::Measured,
            });
        }
    }
}

/// The measured table's regions: `[rum]`'s, then `[probes]`' own region and
/// the other sites' it names, each once.
pub(crate) fn measured_regions(cfg: &ServerConfig) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let rum = cfg
        .rum
        .iter()
        .flat_map(|r| r.regions.iter().map(|(n, _)| n));
    let probes = cfg
        .probes
        .iter()
        .flat_map(|p| std::iter::once(&p.region).chain(p.regions.iter()));
    for n in rum.chain(probes) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    names
}

fn net_set(nets: &[IpNet]) -> CidrTable<()> {
    let mut t = CidrTable::new();
    for n in nets {
        // A network listed twice is listed once.
        let _ = t.insert(*n, ());
    }
    t
}
