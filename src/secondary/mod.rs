//! Secondary zones (`[[secondary]]`): pulled from their primaries by IXFR
//! (RFC 1995), falling back to AXFR (RFC 5936), refreshed on the SOA's refresh
//! timer, retried on its retry timer, refreshed at once on a NOTIFY from a
//! primary (`answer::notify_in`), and no longer served after the SOA's expire
//! without a primary confirming the copy.
//!
//! A transfer is taken whole or not at all: it is read to its end, checked
//! (every record in the zone and of class IN, the serial newer, the zone
//! building as a master file would) and only then written as the zone's copy,
//! a master file renamed into place, and a reload asked for; the reload serves
//! it like any zone file (see `config::zones::load_zones_with`). Anything else
//! (a truncated or malformed stream, records out of the zone, too many bytes, a
//! serial going backwards, an error rcode) is logged and counted, and the copy
//! and what is served stay as they were. The copy's modification time is when
//! a primary last confirmed it, which is what expiry counts from, across
//! restarts too.

pub mod wire;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use crate::answer::notify_in::{NotifyCounters, NotifyTable, NotifyZone};
use crate::config::secondary::SecondaryConfig;
use crate::zone::name::is_wire_subdomain;
use crate::zone::soa::{serial_newer, Soa};
use crate::zone::{rtype, Name};
use wire::Rr;

/// Refreshes NOTIFYs may start: a burst of [`NOTIFY_BURST`], then one a
/// second, so that a flood of NOTIFYs (forged from a primary's address, say)
/// costs the primary and us at most one transfer a second.
const NOTIFY_BURST: f64 = 4.0;

/// Why a refresh failed; each is counted by its [`Failure::label`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("cannot reach {0}: {1}")]
    Network(SocketAddr, std::io::Error),
    #[error("{0} took longer than the timeout")]
    Timeout(SocketAddr),
    #[error("{0}")]
    Malformed(#[from] wire::Malformed),
    #[error("the transfer ended before its closing SOA")]
    Truncated,
    #[error("the primary answered with rcode {0}")]
    Rcode(u8),
    #[error("{0} is outside the zone or not of class IN")]
    OutOfZone(String),
    #[error("the transfer is larger than max_bytes ({0})")]
    TooLarge(u64),
    #[error("the primary's serial {theirs} is older than ours ({ours})")]
    SerialBackwards { ours: u32, theirs: u32 },
    #[error("TSIG: {0}")]
    Tsig(String),
    #[error("the zone does not build: {0}")]
    Invalid(String),
    #[error("cannot write the copy {0}: {1}")]
    Write(String, std::io::Error),
}

impl Failure {
    /// The `result` label of `signpost_secondary_refreshes_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Network(..) | Failure::Timeout(_) => "unreachable",
            Failure::Malformed(_) => "malformed",
            Failure::Truncated => "truncated",
            Failure::Rcode(_) => "refused",
            Failure::OutOfZone(_) => "out_of_zone",
            Failure::TooLarge(_) => "too_large",
            Failure::SerialBackwards { .. } => "serial_backwards",
            Failure::Tsig(_) => "tsig",
            Failure::Invalid(_) => "invalid",
            Failure::Write(..) => "write_failed",
        }
    }
}

/// Refresh outcomes by (zone, result), and NOTIFY counts; process-wide.
#[derive(Default)]
struct Registry {
    wakes: BTreeMap<Name, Arc<Notify>>,
    results: BTreeMap<(String, &'static str), u64>,
    notify: Arc<NotifyCounters>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Default::default)
}

fn count(origin: &Name, result: &'static str) {
    if let Ok(mut r) = registry().lock() {
        *r.results.entry((origin.to_string(), result)).or_default() += 1;
    }
}

fn wake_of(origin: &Name) -> Arc<Notify> {
    match registry().lock() {
        Ok(mut r) => r.wakes.entry(origin.clone()).or_default().clone(),
        Err(_) => Arc::new(Notify::new()),
    }
}

/// The NOTIFY table a snapshot of this configuration carries (the same wake-ups
/// and counters across reloads); `None` without secondary zones.
pub(crate) fn notify_table(secondaries: &[SecondaryConfig]) -> Option<Arc<NotifyTable>> {
    if secondaries.is_empty() {
        return None;
    }
    let counters = registry()
        .lock()
        .map(|r| r.notify.clone())
        .unwrap_or_default();
    Some(Arc::new(NotifyTable {
        zones: secondaries
            .iter()
            .map(|s| NotifyZone {
                origin: s.origin.clone(),
                from: s.notify_from.clone(),
                key: s.tsig.as_ref().map(|k| k.name.clone()),
                wake: wake_of(&s.origin),
            })
            .collect(),
        counters,
    }))
}

/// Prometheus text of the refresh and NOTIFY counters.
pub(crate) fn render(out: &mut String) {
    use std::fmt::Write as _;
    let Ok(r) = registry().lock() else { return };
    if r.wakes.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP signpost_secondary_refreshes_total Secondary zone refreshes by result: axfr, ixfr, current (serial unchanged), or why one failed.\n# TYPE signpost_secondary_refreshes_total counter");
    for ((zone, result), n) in &r.results {
        let _ = writeln!(
            out,
            "signpost_secondary_refreshes_total{{zone=\"{zone}\",result=\"{result}\"}} {n}"
        );
    }
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(out, "# HELP signpost_notify_received_total NOTIFY messages received, by result.\n# TYPE signpost_notify_received_total counter\nsignpost_notify_received_total{{result=\"accepted\"}} {}\nsignpost_notify_received_total{{result=\"refused\"}} {}\nsignpost_notify_received_total{{result=\"tsig\"}} {}", r.notify.accepted.load(Relaxed), r.notify.refused.load(Relaxed), r.notify.tsig.load(Relaxed));
}

/// A zone as last pulled: its SOA and every record (the SOA included).
#[derive(Debug, Clone)]
struct Copy {
    soa: Soa,
    soa_rr: Rr,
    records: Vec<Rr>,
}

/// What a refresh brought.
enum Pulled {
    /// The primary's serial is ours.
    Current,
    Full(Vec<Rr>),
    /// IXFR differences: (deleted, added) per step, in order.
    Incremental(Vec<(Vec<Rr>, Vec<Rr>)>, Rr),
}

/// The refresh tasks, one per `[[secondary]]` table; each asks `reload` for a
/// reload when its copy changed or expired, and ends when `stop` fires. A
/// reload's tables are applied with [`Running::apply`]: a table added starts
/// its task, one removed or changed stops its task (a changed one starts
/// afresh), one unchanged keeps running untouched.
pub struct Running {
    reload: mpsc::Sender<()>,
    stop: watch::Receiver<bool>,
    tasks: Mutex<Vec<Task>>,
}

struct Task {
    cfg: SecondaryConfig,
    /// Dropped or fired: the task ends at its next await (a transfer in
    /// flight is abandoned; the copy on disk is written whole or not at all).
    cancel: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

/// Whether two tables ask for the same task.
fn same(a: &SecondaryConfig, b: &SecondaryConfig) -> bool {
    let SecondaryConfig {
        origin,
        primaries,
        notify_from,
        file,
        max_bytes,
        timeout,
        tsig,
    } = a;
    *origin == b.origin
        && *primaries == b.primaries
        && *notify_from == b.notify_from
        && *file == b.file
        && *max_bytes == b.max_bytes
        && *timeout == b.timeout
        && match (tsig, &b.tsig) {
            (None, None) => true,
            (Some(x), Some(y)) => x.same_as(y),
            _ => false,
        }
}

impl Running {
    /// Starts a task for each of `secondaries` (needs a tokio runtime).
    pub fn start(
        secondaries: &[SecondaryConfig],
        reload: mpsc::Sender<()>,
        stop: watch::Receiver<bool>,
    ) -> Arc<Running> {
        let r = Running {
            reload,
            stop,
            tasks: Mutex::new(Vec::new()),
        };
        r.apply(secondaries);
        Arc::new(r)
    }

    /// Makes the running tasks those of `secondaries`.
    pub fn apply(&self, secondaries: &[SecondaryConfig]) {
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        let started = !tasks.is_empty();
        tasks.retain_mut(|t| {
            let keep = secondaries.iter().any(|s| same(s, &t.cfg));
            if !keep {
                info!(zone = %t.cfg.origin, "secondary zone's refresh stopped: its [[secondary]] table was removed or changed");
                if let Some(c) = t.cancel.take() {
                    let _ = c.send(());
                }
            }
            keep
        });
        for s in secondaries {
            if tasks.iter().any(|t| same(s, &t.cfg)) {
                continue;
            }
            if started {
                info!(zone = %s.origin, "secondary zone's refresh started by a reload");
            }
            tasks.push(self.spawn(s.clone()));
        }
    }

    fn spawn(&self, cfg: SecondaryConfig) -> Task {
        let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
        let wake = wake_of(&cfg.origin);
        let task = run(cfg.clone(), wake, self.reload.clone(), self.stop.clone());
        let handle = tokio::spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = cancelled => {}
            }
        });
        Task {
            cfg,
            cancel: Some(cancel),
            handle,
        }
    }

    /// Waits for every task to end (after `stop` fired).
    pub async fn join(&self) {
        let handles: Vec<_> = match self.tasks.lock() {
            Ok(mut t) => t.drain(..).map(|t| t.handle).collect(),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.await;
        }
    }
}

async fn run(
    cfg: SecondaryConfig,
    wake: Arc<Notify>,
    reload: mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut copy = read_copy(&cfg);
    // When a primary last confirmed the copy (its file's modification time).
    let mut confirmed = copy.as_ref().and_then(|_| {
        let m = std::fs::metadata(&cfg.file)
            .and_then(|m| m.modified())
            .ok()?;
        let age = SystemTime::now().duration_since(m).unwrap_or_default();
        Instant::now().checked_sub(age)
    });
    let mut next = Instant::now();
    let mut expired_told = false;
    // Refreshes NOTIFYs may start now, and when that was counted.
    let mut budget = (NOTIFY_BURST, Instant::now());
    loop {
        let expires = copy
            .as_ref()
            .zip(confirmed)
            .map(|(c, t)| t + secs(c.soa.expire));
        let until = match expires {
            Some(e) if !expired_told => next.min(e),
            _ => next,
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {
                let now = Instant::now();
                let tokens = (budget.0 + (now - budget.1).as_secs_f64()).min(NOTIFY_BURST);
                if tokens < 1.0 {
                    let wait = Duration::from_secs_f64(1.0 - tokens);
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    budget = (0.0, Instant::now());
                } else {
                    budget = (tokens - 1.0, now);
                }
            }
            _ = tokio::time::sleep_until(until.into()) => {}
        }
        if expires.is_some_and(|e| Instant::now() >= e) && !expired_told && Instant::now() < next {
            warn!(zone = %cfg.origin, "secondary zone expired: no primary has confirmed it for the SOA's expire; answering SERVFAIL");
            count(&cfg.origin, "expired");
            expired_told = true;
            let _ = reload.try_send(());
            continue;
        }
        let started = Instant::now();
        match refresh(&cfg, copy.as_ref()).await {
            Ok((new, how)) => {
                count(&cfg.origin, how);
                let changed = new.is_some();
                if let Some(c) = new {
                    info!(zone = %cfg.origin, serial = c.soa.serial, records = c.records.len(), by = how, ms = started.elapsed().as_millis() as u64, "secondary zone transferred");
                    copy = Some(c);
                } else if let Err(e) = touch(&cfg.file) {
                    warn!(zone = %cfg.origin, "cannot mark the copy confirmed: {e}");
                }
                confirmed = Some(Instant::now());
                if changed || expired_told {
                    let _ = reload.try_send(());
                }
                expired_told = false;
                next = Instant::now() + secs(copy.as_ref().map_or(60, |c| c.soa.refresh));
            }
            Err(e) => {
                count(&cfg.origin, e.label());
                warn!(zone = %cfg.origin, result = e.label(), "secondary refresh failed: {e}; the last good copy keeps serving");
                // Without a copy the SOA gives no retry: a minute, shorter at first.
                next = Instant::now() + secs(copy.as_ref().map_or(10, |c| c.soa.retry));
            }
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}

/// The copy on disk, when there is one that parses.
fn read_copy(cfg: &SecondaryConfig) -> Option<Copy> {
    if !cfg.file.is_file() {
        return None;
    }
    let opts = crate::zone::master::MasterOptions {
        origin: cfg.origin.clone(),
        default_ttl: None,
    };
    let (recs, errs) = crate::zone::master::parse_file(&cfg.file, &opts);
    if let Some(e) = errs.first() {
        warn!(zone = %cfg.origin, "the copy does not load ({e}); transferring afresh");
        return None;
    }
    let records: Vec<Rr> = recs
        .into_iter()
        .map(|r| Rr {
            owner: r.owner,
            rtype: r.rtype,
            class: 1,
            ttl: r.ttl,
            rdata: r.rdata,
        })
        .collect();
    checked(cfg, records).ok()
}

/// Sets the copy's modification time to now: a primary confirmed it.
fn touch(file: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(file)?
        .set_modified(SystemTime::now())
}

/// One refresh from the first primary that answers: the new copy (written to
/// disk) and how it came, or `None` when ours is current.
async fn refresh(
    cfg: &SecondaryConfig,
    copy: Option<&Copy>,
) -> Result<(Option<Copy>, &'static str), Failure> {
    let mut last = None;
    for &primary in &cfg.primaries {
        match refresh_from(cfg, copy, primary).await {
            Ok(r) => return Ok(r),
            // Only an unreachable primary sends us to the next: one that sent
            // a bad zone is not retried elsewhere before the retry timer.
            Err(e @ (Failure::Network(..) | Failure::Timeout(_))) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(Failure::Truncated))
}

async fn refresh_from(
    cfg: &SecondaryConfig,
    copy: Option<&Copy>,
    primary: SocketAddr,
) -> Result<(Option<Copy>, &'static str), Failure> {
    let pulled = match copy {
        Some(c) => match pull(cfg, primary, Some(c)).await {
            // A primary without IXFR: the whole zone instead (RFC 1995 §2).
            Err(Failure::Rcode(1 | 4 | 5)) => pull(cfg, primary, None).await?,
            other => other?,
        },
        None => pull(cfg, primary, None).await?,
    };
    let (records, how) = match pulled {
        Pulled::Current => return Ok((None, "current")),
        Pulled::Full(records) => (records, "axfr"),
        Pulled::Incremental(steps, last_soa) => {
            let Some(c) = copy else {
                return Err(Failure::Truncated);
            };
            (apply(c, steps, last_soa)?, "ixfr")
        }
    };
    let new = checked(cfg, records)?;
    if let Some(c) = copy {
        if new.soa.serial == c.soa.serial {
            return Ok((None, "current"));
        }
        if !serial_newer(new.soa.serial, c.soa.serial) {
            return Err(Failure::SerialBackwards {
                ours: c.soa.serial,
                theirs: new.soa.serial,
            });
        }
    }
    write_copy(&cfg.file, &new)?;
    Ok((Some(new), how))
}

/// Applies IXFR steps to our records; a deletion of a record we lack means the
/// steps are not from our version.
fn apply(c: &Copy, steps: Vec<(Vec<Rr>, Vec<Rr>)>, last_soa: Rr) -> Result<Vec<Rr>, Failure> {
    let key = |r: &Rr| (r.owner.clone(), r.rtype, r.rdata.clone());
    let mut set: indexmap::IndexMap<(Name, u16, Vec<u8>), Rr> = c
        .records
        .iter()
        .filter(|r| r.rtype != rtype::SOA)
        .map(|r| (key(r), r.clone()))
        .collect();
    for (deleted, added) in steps {
        for d in deleted {
            if set.shift_remove(&key(&d)).is_none() {
                return Err(Failure::Invalid(format!(
                    "IXFR deletes {} {} which we do not hold",
                    d.owner,
                    rtype::name(d.rtype)
                )));
            }
        }
        for a in added {
            set.insert(key(&a), a);
        }
    }
    let mut out = vec![last_soa];
    out.extend(set.into_values());
    Ok(out)
}

/// Checks records as a zone: in the zone, class IN, one SOA at the apex, and
/// the zone builds (the same checks as a master file at load).
fn checked(cfg: &SecondaryConfig, records: Vec<Rr>) -> Result<Copy, Failure> {
    let origin = &cfg.origin;
    let mut seen = HashSet::with_capacity(records.len());
    let mut unique = Vec::with_capacity(records.len());
    let mut soa = None;
    for r in records {
        if r.class != 1 || !is_wire_subdomain(r.owner.wire(), origin.wire()) {
            return Err(Failure::OutOfZone(format!(
                "{} {}",
                r.owner,
                rtype::name(r.rtype)
            )));
        }
        if r.rtype == rtype::SOA {
            if r.owner != *origin || soa.is_some() {
                return Err(Failure::Invalid("an SOA not at the apex, or two".into()));
            }
            soa = Some(r.clone());
        }
        if seen.insert((r.owner.clone(), r.rtype, r.rdata.clone())) {
            unique.push(r);
        }
    }
    let soa_rr = soa.ok_or_else(|| Failure::Invalid("no SOA".into()))?;
    let soa = Soa::read(&soa_rr.rdata).ok_or_else(|| Failure::Invalid("a bad SOA".into()))?;
    let file: Arc<Path> = Arc::from(cfg.file.as_path());
    let sources = unique
        .iter()
        .map(|r| crate::zone::master::SourceRecord {
            owner: r.owner.clone(),
            rtype: r.rtype,
            ttl: r.ttl,
            rdata: r.rdata.clone(),
            file: file.clone(),
            line: 0,
        })
        .collect();
    if let Err(e) = crate::zone::build::build_zone(origin, &cfg.file, sources) {
        let first = e.first().map(|e| e.message.clone()).unwrap_or_default();
        return Err(Failure::Invalid(first));
    }
    Ok(Copy {
        soa,
        soa_rr,
        records: unique,
    })
}

/// Writes the copy as a master file, SOA first, beside its place, then renames
/// it there: a reader sees the old copy or the new one, never half of one.
fn write_copy(file: &Path, c: &Copy) -> Result<(), Failure> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let werr = |e| Failure::Write(file.display().to_string(), e);
    let mut text = String::with_capacity(c.records.len() * 64);
    let line = |text: &mut String, r: &Rr| {
        let _ = writeln!(
            text,
            "{} {} IN {} {}",
            r.owner,
            r.ttl,
            rtype::name(r.rtype),
            crate::zone::rdata::format_rdata(r.rtype, &r.rdata)
        );
    };
    line(&mut text, &c.soa_rr);
    for r in c.records.iter().filter(|r| r.rtype != rtype::SOA) {
        line(&mut text, r);
    }
    if let Some(d) = file.parent() {
        std::fs::create_dir_all(d).map_err(werr)?;
    }
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(werr)?;
    f.write_all(text.as_bytes()).map_err(werr)?;
    f.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, file).map_err(werr)
}

/// One IXFR (with our copy) or AXFR (without) over TCP, read to its end.
async fn pull(
    cfg: &SecondaryConfig,
    primary: SocketAddr,
    ours: Option<&Copy>,
) -> Result<Pulled, Failure> {
    match tokio::time::timeout(cfg.timeout, pull_inner(cfg, primary, ours)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Timeout(primary)),
    }
}

async fn pull_inner(
    cfg: &SecondaryConfig,
    primary: SocketAddr,
    ours: Option<&Copy>,
) -> Result<Pulled, Failure> {
    let net = |e| Failure::Network(primary, e);
    let mut s = TcpStream::connect(primary).await.map_err(net)?;
    let id = fastrand::u16(..);
    let (qtype, soa) = match ours {
        Some(c) => (rtype::IXFR, Some((c.soa_rr.rdata.as_slice(), c.soa_rr.ttl))),
        None => (rtype::AXFR, None),
    };
    let mut q = wire::query(id, &cfg.origin, qtype, soa);
    let now = crate::clock::unix_now;
    // Signed with the zone's key: every answer checked against it (RFC 8945 §5.3).
    let mac = cfg
        .tsig
        .as_ref()
        .map(|k| crate::zone::tsig::sign_request(&mut q, k, now()));
    let mut verifier = cfg
        .tsig
        .as_ref()
        .zip(mac.as_deref())
        .map(|(k, mac)| crate::zone::tsig::ResponseVerifier::new(k, mac));
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await.map_err(net)?;

    let mut total: u64 = 0;
    let mut stream = Stream::default();
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match s.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Failure::Truncated)
            }
            Err(e) => return Err(net(e)),
        }
        let len = u16::from_be_bytes(len) as usize;
        total += len as u64 + 2;
        if total > cfg.max_bytes {
            return Err(Failure::TooLarge(cfg.max_bytes));
        }
        buf.resize(len, 0);
        match s.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(Failure::Truncated)
            }
            Err(e) => return Err(net(e)),
        }
        let r = wire::parse(&buf)?;
        if let Some(v) = verifier.as_mut() {
            v.verify(&buf, now())
                .map_err(|e| Failure::Tsig(e.to_string()))?;
        }
        // NOTAUTH: the primary did not take our key (RFC 8945 §5.2).
        if r.rcode == crate::zone::tsig::NOTAUTH {
            return Err(Failure::Tsig("the primary answered NOTAUTH".into()));
        }
        if r.id != id {
            return Err(Failure::Malformed(wire::Malformed(
                "an ID that is not the query's",
            )));
        }
        if r.rcode != 0 {
            return Err(Failure::Rcode(r.rcode));
        }
        if r.truncated {
            return Err(Failure::Truncated);
        }
        let mut done = None;
        for rr in r.answers {
            if done.is_some() {
                return Err(Failure::Malformed(wire::Malformed(
                    "records after the closing SOA",
                )));
            }
            done = stream.push(rr, ours.map(|c| c.soa.serial))?;
        }
        // A first message with only the SOA ends an IXFR that found us current.
        if done.is_none() {
            done = stream.single_soa(ours.map(|c| c.soa.serial))?;
        }
        if let Some(done) = done {
            if let Some(v) = &verifier {
                v.finish().map_err(|e| Failure::Tsig(e.to_string()))?;
            }
            return Ok(done);
        }
    }
}

/// Where an IXFR's differences are (RFC 1995 §4): each step is the old SOA,
/// the records deleted, the new SOA, the records added.
#[derive(Clone, Copy)]
enum Phase {
    Deleting,
    Adding { to: u32 },
}

/// The records of a transfer read so far, and where in its shape we are.
#[derive(Default)]
struct Stream {
    /// The first record, the SOA, and its serial: the version being sent.
    first: Option<(Rr, u32)>,
    /// `Some(true)` once the second record shows differences follow.
    incremental: Option<bool>,
    /// The whole zone (AXFR, or IXFR answered in AXFR form).
    full: Vec<Rr>,
    /// IXFR steps: (deleted, added).
    steps: Vec<(Vec<Rr>, Vec<Rr>)>,
    phase: Option<Phase>,
    count: usize,
}

impl Stream {
    /// Takes the next record; the transfer when it was the closing SOA.
    fn push(&mut self, rr: Rr, ours: Option<u32>) -> Result<Option<Pulled>, Failure> {
        self.count += 1;
        let serial = if rr.rtype == rtype::SOA {
            Some(
                Soa::read(&rr.rdata)
                    .ok_or(Failure::Malformed(wire::Malformed("a bad SOA")))?
                    .serial,
            )
        } else {
            None
        };
        let Some((first, new_serial)) = &self.first else {
            let Some(s) = serial else {
                return Err(Failure::Malformed(wire::Malformed(
                    "a transfer that does not start with the SOA",
                )));
            };
            self.first = Some((rr, s));
            return Ok(None);
        };
        let new_serial = *new_serial;
        let incremental = *self.incremental.get_or_insert_with(|| {
            // RFC 1995 §4: an SOA with our serial second means differences follow.
            ours.is_some() && serial.is_some() && serial == ours && serial != Some(new_serial)
        });
        if !incremental {
            if self.full.is_empty() {
                self.full.push(first.clone());
            }
            if serial == Some(new_serial) {
                return Ok(Some(Pulled::Full(std::mem::take(&mut self.full))));
            }
            self.full.push(rr);
            return Ok(None);
        }
        match (self.phase, serial) {
            (None, _) => {
                self.steps.push((Vec::new(), Vec::new()));
                self.phase = Some(Phase::Deleting);
            }
            (Some(Phase::Deleting), Some(to)) => self.phase = Some(Phase::Adding { to }),
            (Some(Phase::Adding { to }), Some(s)) => {
                if s == new_serial && to == new_serial {
                    let last = first.clone();
                    return Ok(Some(Pulled::Incremental(
                        std::mem::take(&mut self.steps),
                        last,
                    )));
                }
                self.steps.push((Vec::new(), Vec::new()));
                self.phase = Some(Phase::Deleting);
            }
            (Some(Phase::Deleting), None) => {
                if let Some(st) = self.steps.last_mut() {
                    st.0.push(rr);
                }
            }
            (Some(Phase::Adding { .. }), None) => {
                if let Some(st) = self.steps.last_mut() {
                    st.1.push(rr);
                }
            }
        }
        Ok(None)
    }

    /// After the first message: an IXFR answered with the SOA alone found us
    /// current (or the primary's serial behind ours).
    fn single_soa(&mut self, ours: Option<u32>) -> Result<Option<Pulled>, Failure> {
        match (&self.first, self.count, ours) {
            (Some((_, s)), 1, Some(o)) if *s == o => Ok(Some(Pulled::Current)),
            (Some((_, s)), 1, Some(o)) if serial_newer(o, *s) => Err(Failure::SerialBackwards {
                ours: o,
                theirs: *s,
            }),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    fn soa(serial: u32) -> Rr {
        let mut rdata = name("ns.z.test.").wire().to_vec();
        rdata.extend_from_slice(name("hm.z.test.").wire());
        for v in [serial, 3600, 600, 86400, 60] {
            rdata.extend_from_slice(&v.to_be_bytes());
        }
        Rr {
            owner: name("z.test."),
            rtype: rtype::SOA,
            class: 1,
            ttl: 300,
            rdata,
        }
    }

    fn a(owner: &str, last: u8) -> Rr {
        Rr {
            owner: name(owner),
            rtype: rtype::A,
            class: 1,
            ttl: 300,
            rdata: vec![192, 0, 2, last],
        }
    }

    fn run(stream: Vec<Rr>, ours: Option<u32>) -> Option<Pulled> {
        let mut s = Stream::default();
        let mut done = None;
        for rr in stream {
            assert!(done.is_none(), "records after the end");
            done = s.push(rr, ours).unwrap();
        }
        done
    }

    /// Two IXFR steps (1 -> 2 -> 3), as RFC 1995 §7's example lays them out,
    /// applied to serial 1; and the same zone sent in AXFR form.
    #[test]
    fn ixfr_steps_apply_in_order() {
        let ours = Copy {
            soa: Soa::read(&soa(1).rdata).unwrap(),
            soa_rr: soa(1),
            records: vec![soa(1), a("a.z.test.", 1), a("b.z.test.", 1)],
        };
        let stream = vec![
            soa(3),
            soa(1),
            a("a.z.test.", 1),
            soa(2),
            a("a.z.test.", 2),
            soa(2),
            a("b.z.test.", 1),
            soa(3),
            a("c.z.test.", 3),
            soa(3),
        ];
        let Some(Pulled::Incremental(steps, last)) = run(stream, Some(1)) else {
            panic!("not read as IXFR");
        };
        assert_eq!(steps.len(), 2);
        let mut got = apply(&ours, steps, last).unwrap();
        got.sort_by(|x, y| (&x.owner, x.rtype).cmp(&(&y.owner, y.rtype)));
        let want = [soa(3), a("a.z.test.", 2), a("c.z.test.", 3)];
        assert_eq!(got.len(), 3, "{got:?}");
        for w in want {
            assert!(got.contains(&w), "{w:?} missing from {got:?}");
        }

        // AXFR form: the whole zone between two SOAs.
        let full = vec![soa(3), a("a.z.test.", 2), soa(3)];
        let Some(Pulled::Full(recs)) = run(full, Some(1)) else {
            panic!("not read as AXFR");
        };
        assert_eq!(recs.len(), 2);

        // A deletion of a record we do not hold: not our version.
        let wrong = vec![soa(2), soa(1), a("x.z.test.", 9), soa(2), soa(2)];
        let Some(Pulled::Incremental(steps, last)) = run(wrong, Some(1)) else {
            panic!("not read as IXFR");
        };
        assert!(matches!(
            apply(&ours, steps, last),
            Err(Failure::Invalid(_))
        ));
    }
}
