//! The optional query log: one line for every `sample`-th query, at most
//! `max_per_second` lines a second across all threads, so it can stay on in
//! production without becoming the bottleneck. Off by default. The socket
//! threads reach the dnstap output (`super::dnstap`) through it too.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::dnstap::{Proto, Stamp, Steering, Tap};
use crate::answer::query;
use crate::answer::snapshot::Snapshot;
use crate::answer::Observed;
use crate::config::transport::QueryLogConfig;
use crate::zone::name::to_text;
use crate::zone::rtype;

/// Shared by the socket threads.
#[derive(Debug, Default)]
pub struct QueryLog {
    cfg: QueryLogConfig,
    seen: AtomicU64,
    /// second (upper 40 bits) | lines logged in it (lower 24 bits)
    window: AtomicU64,
    /// The dnstap output; replaced by a reload that changes `[dnstap]`.
    dnstap: arc_swap::ArcSwapOption<Tap>,
    /// `dnstap`'s one-in-N, 0 when it holds none: the query path reads this
    /// and loads `dnstap` only for a query it sends.
    dnstap_sample: AtomicU32,
}

impl QueryLog {
    pub fn new(cfg: QueryLogConfig) -> QueryLog {
        QueryLog {
            cfg,
            ..QueryLog::default()
        }
    }

    /// With dnstap output as well.
    pub(crate) fn with_dnstap(self, dnstap: Option<Arc<Tap>>) -> QueryLog {
        self.set_dnstap(dnstap);
        self
    }

    /// Replaces the dnstap output; returns the one it replaces, for the
    /// caller to stop.
    pub(crate) fn set_dnstap(&self, dnstap: Option<Arc<Tap>>) -> Option<Arc<Tap>> {
        let sample = dnstap.as_ref().map_or(0, |t| t.sample().max(1));
        let old = self.dnstap.swap(dnstap);
        self.dnstap_sample.store(sample, Ordering::Relaxed);
        old
    }

    /// Whether dnstap is on: one load.
    #[inline]
    pub fn dnstap_on(&self) -> bool {
        self.dnstap_sample.load(Ordering::Relaxed) != 0
    }

    /// Whether this query is one to send to dnstap, and if so the time it came
    /// in: a count on this thread; the output itself is not touched.
    #[inline]
    pub fn dnstap_sample(&self) -> Option<Stamp> {
        super::dnstap::sample(self.dnstap_sample.load(Ordering::Relaxed))
    }

    /// Offers a query [`Self::dnstap_sample`] chose to dnstap, with the
    /// decision in the snapshot's names.
    #[allow(clippy::too_many_arguments)]
    pub fn tap(
        &self,
        snap: &Snapshot,
        at: Stamp,
        proto: Proto,
        client: IpAddr,
        port: Option<u16>,
        query: &[u8],
        response: Option<&[u8]>,
        o: &Observed,
    ) {
        if let Some(t) = self.dnstap.load().as_deref() {
            t.send(at, proto, client, port, query, response, steering(snap, o));
        }
    }

    /// Whether this query is one to log; cheap when off.
    #[inline]
    pub fn wants(&self, now_secs: u64) -> bool {
        if self.cfg.sample == 0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(u64::from(self.cfg.sample)) {
            return false;
        }
        let cur = self.window.load(Ordering::Relaxed);
        let (sec, count) = (cur >> 24, cur & 0xff_ffff);
        let next = if sec == now_secs {
            if count >= u64::from(self.cfg.max_per_second) {
                return false;
            }
            cur + 1
        } else {
            (now_secs << 24) | 1
        };
        // A lost race only means one line more or less this second.
        let _ = self
            .window
            .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed);
        true
    }

    /// Logs one query: client, ECS, name, type, decision, rcode.
    pub fn log(&self, snap: &Snapshot, pkt: &[u8], client: IpAddr, transport: &str, o: &Observed) {
        let mut buf = query::NameBuf::default();
        let (name, qtype, ecs) = match query::parse(pkt, &mut buf) {
            Ok(q) => {
                let n = to_text(q.qname());
                let ecs = q
                    .client_subnet()
                    .map(|cs| format!("{}/{}", cs.addr, cs.source_prefix));
                (n, rtype::name(q.qtype), ecs)
            }
            Err(_) => ("-".to_string(), "-".to_string(), None),
        };
        let (region, reason) = match o.steered {
            Some((_, r, why)) => {
                let name = snap
                    .zones
                    .zones()
                    .iter()
                    .position(|z| Some(z.metrics_slot) == o.zone_slot)
                    .and_then(|zi| snap.steering.get(zi))
                    .and_then(|s| s.policy.regions.get(r as usize))
                    .map(|r| r.name.clone())
                    .unwrap_or_else(|| "-".to_string());
                (name, why.label())
            }
            None => ("-".to_string(), "static"),
        };
        tracing::info!(
            target: "signpost::query",
            %client,
            ecs = ecs.as_deref().unwrap_or("-"),
            name,
            qtype,
            transport,
            decision = reason,
            region,
            rcode = o.rcode,
            tc = o.truncated,
            "query"
        );
    }
}

/// A steered answer's decision in the snapshot's names; none for an answer no
/// policy decided.
fn steering<'a>(snap: &'a Snapshot, o: &Observed) -> Option<Steering<'a>> {
    let ((_, region, reason), d) = (o.steered?, o.decision?);
    let steering = snap.steering.get(d.zone as usize);
    let region = steering
        .and_then(|s| s.policy.regions.get(region as usize))
        .map_or("-", |r| r.name.as_str());
    let fence = steering
        .and_then(|s| s.names.get(d.name as usize))
        .and_then(|p| d.fenced.and_then(|f| p.fence.get(f as usize)))
        .map_or("-", |f| f.as_str());
    Some(Steering {
        region,
        reason: reason.label(),
        fence,
        scope: d.scope,
    })
}
