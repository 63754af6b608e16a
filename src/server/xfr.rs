//! Zone transfers out over TCP and DoT: the messages `answer::xfr` builds, sent
//! one after another on the connection, each within the write timeout.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncWrite, AsyncWriteExt};

pub use crate::answer::xfr::*;
use std::borrow::Cow;

use crate::zone::rtype;
use crate::zone::tsig::{self, ResponseSigner};

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &[u8],
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    let write = async {
        stream.write_all(&framed).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Answers one AXFR or IXFR request from `peer` on `stream`, in as many messages
/// as it takes. An error is the connection's end (a write failed or timed out).
pub async fn serve<S: AsyncWrite + Unpin>(
    snap: Source<'_>,
    msg: &[u8],
    peer: IpAddr,
    stream: &mut S,
    write_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let now = crate::clock::unix_now();
    let Some(req) = parse(msg) else {
        COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
        return send(stream, &short_answer(msg, 1), write_timeout).await;
    };
    let keys = &snap.transfer.keys;
    let mut signer: Option<ResponseSigner<'_>> = None;
    let mut key_name = None;
    match tsig::verify_request(msg, keys, now) {
        Ok(None) => {}
        Ok(Some(v)) => {
            key_name = Some(v.key.name.clone());
            signer = Some(v.signer);
        }
        Err(rejected) => {
            COUNTERS.tsig_failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, failure = %rejected.failure, "transfer refused: TSIG");
            let mut out = short_answer(msg, 0);
            tsig::error_response(&mut out, rejected, now);
            return send(stream, &out, write_timeout).await;
        }
    }
    let zi = snap
        .zones
        .zones()
        .iter()
        .position(|z| z.origin.wire() == req.zone.as_slice());
    let allowed = zi.and_then(|zi| {
        let zone = &snap.zones.zones()[zi];
        let settings = snap.transfer.zone(&zone.origin);
        settings
            .admits(peer, key_name.as_ref())
            .then_some((zi, zone, settings))
    });
    let Some((zi, zone, settings)) = allowed else {
        COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, key = ?key_name.as_ref().map(|k| k.to_string()), "transfer refused");
        let mut out = short_answer(msg, 5);
        if let Some(s) = signer.as_mut() {
            s.sign(&mut out, now);
        }
        return send(stream, &out, write_timeout).await;
    };
    let Some(records) = zone_records(snap, zi, settings.standin) else {
        return send(stream, &short_answer(msg, 2), write_timeout).await;
    };
    let soa = &records[0];
    // IXFR: the differences, a lone SOA when the client is current, or the
    // whole zone.
    let mut plan: Vec<Cow<'_, Rr>> = Vec::new();
    let diffs;
    let mut incremental = false;
    if let (rtype::IXFR, Some(serial)) = (req.qtype, req.serial) {
        if serial == zone.serial || !serial_lt(serial, zone.serial) {
            plan.push(Cow::Borrowed(soa));
            incremental = true;
        } else if let Some(d) = snap.journal.since(&zone.origin, serial) {
            diffs = d;
            plan.push(Cow::Borrowed(soa));
            for d in &diffs {
                plan.push(Cow::Borrowed(&d.from_soa));
                plan.extend(d.removed.iter().map(Cow::Borrowed));
                plan.push(Cow::Borrowed(&d.to_soa));
                plan.extend(d.added.iter().map(Cow::Borrowed));
            }
            plan.push(Cow::Borrowed(soa));
            incremental = true;
        } else {
            COUNTERS.ixfr_fallback.fetch_add(1, Ordering::Relaxed);
        }
    }
    if incremental {
        COUNTERS.ixfr.fetch_add(1, Ordering::Relaxed);
    } else {
        COUNTERS.axfr.fetch_add(1, Ordering::Relaxed);
        plan.extend(records.iter().map(Cow::Borrowed));
        plan.push(Cow::Borrowed(soa));
    }
    let reserve = signer
        .as_ref()
        .and(key_name.as_ref())
        .and_then(|n| keys.named(n))
        .map_or(0, tsig::overhead);
    let mut messages = Messages::new(req.id, &req.question, reserve);
    let mut sent = 0usize;
    for rr in &plan {
        match messages.add(rr) {
            Ok(None) => {}
            Ok(Some(mut full)) => {
                if let Some(s) = signer.as_mut() {
                    s.sign(&mut full, now);
                }
                send(stream, &full, write_timeout).await?;
                sent += 1;
            }
            Err(()) => {
                tracing::warn!(zone = %zone.origin, "transfer aborted: a record larger than a message");
                return send(stream, &short_answer(msg, 2), write_timeout).await;
            }
        }
    }
    let mut last = messages.finish();
    if let Some(s) = signer.as_mut() {
        s.sign(&mut last, now);
    }
    send(stream, &last, write_timeout).await?;
    sent += 1;
    tracing::info!(
        zone = %zone.origin,
        %peer,
        serial = zone.serial,
        kind = if incremental { "IXFR" } else { "AXFR" },
        records = plan.len(),
        messages = sent,
        key = ?key_name.as_ref().map(|k| k.to_string()),
        "zone transferred"
    );
    Ok(())
}

/// The transfer and NOTIFY counters in Prometheus text format.
pub(crate) fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    let c = &COUNTERS;
    let n = &super::notify::COUNTERS;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP signpost_transfers_total Zone transfers out by kind and result.\n# TYPE signpost_transfers_total counter\n\
signpost_transfers_total{{kind=\"axfr\",result=\"sent\"}} {}\n\
signpost_transfers_total{{kind=\"ixfr\",result=\"sent\"}} {}\n\
signpost_transfers_total{{kind=\"ixfr\",result=\"whole_zone\"}} {}\n\
signpost_transfers_total{{kind=\"any\",result=\"refused\"}} {}\n\
signpost_transfers_total{{kind=\"any\",result=\"tsig_failed\"}} {}\n\
# HELP signpost_notify_total NOTIFY messages sent, and secondaries that answered or never did.\n# TYPE signpost_notify_total counter\n\
signpost_notify_total{{result=\"sent\"}} {}\n\
signpost_notify_total{{result=\"answered\"}} {}\n\
signpost_notify_total{{result=\"failed\"}} {}",
        l(&c.axfr),
        l(&c.ixfr),
        l(&c.ixfr_fallback),
        l(&c.refused),
        l(&c.tsig_failed),
        l(&n.sent),
        l(&n.answered),
        l(&n.failed),
    );
}
