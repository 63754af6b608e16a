//! The store task: the one place that talks to etcd (and names its client).
//!
//! One session at a time: connect, take a lease, write this instance's entry and
//! every change made while away, read the whole prefix, then watch it from the
//! revision read and keep the lease alive, publishing own votes as they change.
//! Any error or silence ends the session; the next starts over after a pause, so
//! catching up after an outage is the same code as starting.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info};

use super::etcd::{self, Client, EventType};
use super::{lock, Fleet, Op, TICK};
use crate::health::{Health, Override};

#[derive(Debug, Error)]
pub(super) enum StoreError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd::Error),
    #[error("etcd: no answer to {0} in time")]
    Timeout(&'static str),
    #[error("etcd: {0}")]
    Ended(&'static str),
}

/// Retries start at this pause and double up to [`MAX_PAUSE`].
const MIN_PAUSE: Duration = Duration::from_millis(200);
const MAX_PAUSE: Duration = Duration::from_secs(5);

async fn timed<T>(
    limit: Duration,
    what: &'static str,
    f: impl Future<Output = Result<T, etcd::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(StoreError::Etcd),
        Err(_) => Err(StoreError::Timeout(what)),
    }
}

/// Resolves once `stop` holds true (or its sender is gone), holding no borrow
/// of it afterwards.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs sessions until `stop`.
pub(super) async fn run(fleet: Arc<Fleet>, mut stop: watch::Receiver<bool>) {
    let mut pause = MIN_PAUSE;
    loop {
        let began = Instant::now();
        match session(&fleet, &mut stop).await {
            Ok(()) => return,
            Err(e) => fleet.store_error(&e),
        }
        if began.elapsed() > MAX_PAUSE {
            // A session that ran a while was a working one: retry promptly.
            pause = MIN_PAUSE;
        }
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

fn options(fleet: &Fleet) -> etcd::Options {
    let cfg = &fleet.cfg;
    let s = &fleet.secrets;
    etcd::Options {
        timeout: cfg.timeout,
        user: cfg.user.clone().zip(s.password.clone()),
        tls: cfg.tls.as_ref().map(|_| etcd::Tls {
            ca: s.ca.clone(),
            identity: s.cert.clone().zip(s.key.clone()),
        }),
    }
}

/// This instance's last written vote per check target.
type Published = BTreeMap<String, Health>;

async fn session(fleet: &Arc<Fleet>, stop: &mut watch::Receiver<bool>) -> Result<(), StoreError> {
    let cfg = &fleet.cfg;
    let t = cfg.timeout;
    let prefix = cfg.prefix.clone();
    let mut client = timed(
        t,
        "connect",
        Client::connect(&cfg.endpoints, &options(fleet)),
    )
    .await?;
    let ttl = i64::try_from(cfg.lease_ttl.as_secs().max(2)).unwrap_or(5);
    let lease = timed(t, "lease grant", client.lease_grant(ttl)).await?;
    let mut alive = timed(t, "lease keep-alive", client.lease_keep_alive(lease)).await?;
    timed(
        t,
        "put instance",
        client.put(
            format!("{prefix}instances/{}", cfg.instance),
            cfg.site.clone().unwrap_or_default(),
            lease,
        ),
    )
    .await?;
    flush(fleet, &mut client).await?;

    // Everything under the prefix, afresh: what changed while away replaces
    // what this instance last knew.
    let known: BTreeSet<String> = fleet.snap.load().health.known_names().into_iter().collect();
    let mut fresh = super::View::default();
    let (revision, keys) = read_prefix(fleet, &mut client, &mut fresh, &known).await?;
    *lock(&fleet.view) = fresh;
    fleet.synced.store(true, Relaxed);
    fleet.mark_ok();
    fleet.rejoin();
    fleet.apply_operator();
    let mut published = Published::new();
    publish_votes(fleet, &mut client, lease, &mut published).await?;
    fleet.recompute();
    info!(
        revision,
        keys,
        lease = format!("{lease:x}"),
        "fleet: in sync with etcd"
    );

    let mut watch = timed(
        t,
        "watch",
        client.watch_prefix(prefix.as_bytes(), revision + 1),
    )
    .await?;
    let mut keep = tokio::time::interval((cfg.lease_ttl / 3).max(Duration::from_millis(300)));
    let mut tick = tokio::time::interval(TICK);
    let mut last_alive = Instant::now();
    // This instance's measured figures, under its lease (see latency::share).
    let mut shared_at: Option<Instant> = None;
    let mut shared: Option<String> = None;
    loop {
        tokio::select! {
            _ = stopped(stop) => {
                // Votes go with the lease at once, not after its TTL.
                let _ = tokio::time::timeout(t, client.lease_revoke(lease)).await;
                return Ok(());
            }
            _ = keep.tick() => {
                timed(t, "lease keep-alive", alive.send()).await?;
            }
            m = alive.message() => match m? {
                Some(r) if r.ttl > 0 => {
                    last_alive = Instant::now();
                    fleet.mark_ok();
                }
                Some(_) => return Err(StoreError::Ended("the lease expired")),
                None => return Err(StoreError::Ended("the keep-alive stream closed")),
            },
            m = watch.message() => {
                let Some(resp) = m? else {
                    return Err(StoreError::Ended("the watch stream closed"));
                };
                if resp.canceled {
                    return Err(StoreError::Ended("the watch was cancelled (compacted?)"));
                }
                fleet.mark_ok();
                let known: BTreeSet<String> =
                    fleet.snap.load().health.known_names().into_iter().collect();
                let mut changed = super::Changed::default();
                {
                    let mut view = lock(&fleet.view);
                    for ev in &resp.events {
                        let Some(kv) = &ev.kv else { continue };
                        let c = match EventType::try_from(ev.r#type) {
                            Ok(EventType::Put) => {
                                fleet.ingest(&mut view, &kv.key, &kv.value, kv.lease, &known)
                            }
                            Ok(EventType::Delete) => fleet.forget(&mut view, &kv.key),
                            Err(_) => continue,
                        };
                        changed = changed.or(c);
                    }
                }
                if changed.operator {
                    fleet.apply_operator();
                }
                if changed.votes {
                    fleet.recompute();
                }
            }
            _ = fleet.wake.notified() => {
                flush(fleet, &mut client).await?;
            }
            _ = tick.tick() => {
                if last_alive.elapsed() > cfg.lease_ttl {
                    return Err(StoreError::Ended("no keep-alive answer within the lease TTL"));
                }
                publish_votes(fleet, &mut client, lease, &mut published).await?;
                fleet.recompute();
                drive_ramps(fleet, &mut client, lease).await?;
                publish_latency(fleet, &mut client, lease, &mut shared_at, &mut shared).await?;
            }
        }
    }
}

/// Keys per request when reading the whole prefix; halved while a page's
/// answer is over the message size cap.
const PAGE: i64 = 256;

/// Reads every key under the prefix into `view`, a page at a time, every page
/// at the revision of the first; returns that revision and the count of keys
/// read. A key whose value alone is over the message size cap is counted as
/// bad and skipped by name, so no value can stop an instance from syncing.
async fn read_prefix(
    fleet: &Fleet,
    client: &mut Client,
    view: &mut super::View,
    known: &BTreeSet<String>,
) -> Result<(i64, usize), StoreError> {
    let t = fleet.cfg.timeout;
    let prefix = fleet.cfg.prefix.as_bytes();
    let end = etcd::prefix_end(prefix);
    let mut from = prefix.to_vec();
    let mut revision = 0;
    let mut limit = PAGE;
    let mut keys = 0;
    loop {
        let page = match timed(t, "read", client.range(&from, &end, limit, revision, false)).await {
            Ok(page) => page,
            Err(StoreError::Etcd(e)) if e.too_large() && limit > 1 => {
                limit /= 2;
                continue;
            }
            Err(StoreError::Etcd(e)) if e.too_large() => {
                let one = timed(t, "read", client.range(&from, &end, 1, revision, true)).await?;
                if revision == 0 {
                    revision = one.header.map(|h| h.revision).unwrap_or(0);
                }
                let Some(kv) = one.kvs.first() else { break };
                fleet.bad_key(&kv.key, "its value is over the message size cap");
                from = etcd::next_key(&kv.key);
                continue;
            }
            Err(e) => return Err(e),
        };
        if revision == 0 {
            revision = page.header.map(|h| h.revision).unwrap_or(0);
        }
        for kv in &page.kvs {
            fleet.ingest(view, &kv.key, &kv.value, kv.lease, known);
        }
        keys += page.kvs.len();
        match page.kvs.last() {
            Some(kv) if page.more => from = etcd::next_key(&kv.key),
            _ => break,
        }
    }
    Ok((revision, keys))
}

/// Writes the changes made here, oldest first; each leaves the queue once written.
async fn flush(fleet: &Fleet, client: &mut Client) -> Result<(), StoreError> {
    let t = fleet.cfg.timeout;
    let prefix = &fleet.cfg.prefix;
    loop {
        let Some(op) = lock(&fleet.pending).first().cloned() else {
            return Ok(());
        };
        let (key, value) = op.stored();
        let key = format!("{prefix}{key}");
        match value {
            Some(v) => timed(t, "put", client.put(key, v, 0)).await?,
            None => timed(t, "delete", client.delete(key)).await?,
        };
        // Into the view before it leaves the queue, so the serving view never
        // shows the store's older value in between (the watch confirms it later).
        {
            let mut view = lock(&fleet.view);
            match &op {
                Op::Override(name, Override::None) => {
                    view.overrides.remove(name);
                }
                Op::Override(name, o) => {
                    view.overrides.insert(name.clone(), *o);
                }
                Op::Weight(name, None) => {
                    view.weights.remove(name);
                }
                Op::Weight(name, Some(w)) => {
                    view.weights.insert(name.clone(), *w);
                }
                Op::Dial(name, None) => {
                    view.dials.remove(name);
                }
                Op::Dial(name, Some(d)) => {
                    view.dials.insert(name.clone(), *d);
                }
                Op::Ramp(name, None) => {
                    view.ramps.remove(name);
                }
                Op::Verdict(name, None) => {
                    view.verdicts.remove(name);
                }
                Op::Verdict(name, Some(p)) => {
                    view.verdicts.insert(name.clone(), p.clone());
                }
                Op::Ramp(name, Some(r)) => {
                    if let Ok(r) = crate::rollout::Ramp::from_stored(r.as_bytes()) {
                        view.ramps.insert(name.clone(), r);
                    }
                }
            }
        }
        let mut pending = lock(&fleet.pending);
        if pending.first() == Some(&op) {
            pending.remove(0);
        }
        drop(pending);
        debug!(?op, "fleet: written");
    }
}

/// Every `share_every`, writes this instance's measured figures when they
/// changed, under its lease: they go when the instance does.
async fn publish_latency(
    fleet: &Fleet,
    client: &mut Client,
    lease: i64,
    at: &mut Option<Instant>,
    last: &mut Option<String>,
) -> Result<(), StoreError> {
    let sharing = crate::latency::share::global();
    let Some(every) = sharing.every() else {
        return Ok(());
    };
    if at.is_some_and(|t| t.elapsed() < every) {
        return Ok(());
    }
    *at = Some(Instant::now());
    let Some(value) = sharing.own_value(std::time::Instant::now()) else {
        return Ok(());
    };
    if last.as_deref() == Some(value.as_str()) {
        return Ok(());
    }
    let key = format!("{}latency/{}", fleet.cfg.prefix, fleet.cfg.instance);
    timed(
        fleet.cfg.timeout,
        "put latency",
        client.put(key, value.clone(), lease),
    )
    .await?;
    *last = Some(value);
    Ok(())
}

/// Takes `drivers/ramps` under this session's lease when no instance holds
/// it (its holder's lease ended), and notes whether this instance drives.
async fn drive_ramps(fleet: &Fleet, client: &mut Client, lease: i64) -> Result<(), StoreError> {
    let me = &fleet.cfg.instance;
    let holder = lock(&fleet.view).driver.clone();
    let drives = match holder {
        Some((i, l)) => &i == me && l == lease,
        None => {
            let key = format!("{}drivers/ramps", fleet.cfg.prefix);
            let won = timed(
                fleet.cfg.timeout,
                "take the ramps' lock",
                client.put_if_absent_leased(key, me.clone(), lease),
            )
            .await?;
            let drives = matches!(won, etcd::Created::Yes);
            if drives {
                // Into the view now; the watch confirms it.
                lock(&fleet.view).driver = Some((me.clone(), lease));
            }
            drives
        }
    };
    if fleet.drives.swap(drives, Relaxed) != drives {
        info!(drives, "fleet: the ramps' driver changed");
        fleet.ramps.wake.notify_one();
    }
    Ok(())
}

/// Writes this instance's votes that changed since last written (all of them
/// in a new session), and deletes those of targets it no longer probes.
async fn publish_votes(
    fleet: &Fleet,
    client: &mut Client,
    lease: i64,
    published: &mut Published,
) -> Result<(), StoreError> {
    let t = fleet.cfg.timeout;
    let base = format!("{}votes/{}/", fleet.cfg.prefix, fleet.cfg.instance);
    let mut now = Published::new();
    {
        let snap = fleet.snap.load();
        let table = snap.health.table();
        for (id, key) in table.targets() {
            if let Some(h) = table.local(id) {
                now.insert(key.stable_key(), h);
            }
        }
    }
    for (target, h) in &now {
        if published.get(target) != Some(h) {
            timed(
                t,
                "put vote",
                client.put(format!("{base}{target}"), h.to_string(), lease),
            )
            .await?;
            published.insert(target.clone(), *h);
        }
    }
    let gone: Vec<String> = published
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    for target in gone {
        timed(t, "delete vote", client.delete(format!("{base}{target}"))).await?;
        published.remove(&target);
    }
    Ok(())
}
