//! NOTIFY out (RFC 1996): when a zone's served serial changes, each secondary
//! `[transfer] notify` names is told over UDP, signed with `notify_key` when one
//! is set, until it answers or [`TRIES`] attempts have gone unanswered (the wait
//! doubling from [`FIRST_WAIT`]). Sent, answered and given-up NOTIFYs are counted.
//! Each NOTIFY is a task of its own that ends on its own; it never blocks a
//! reload.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UdpSocket;

use crate::config::transfer::TransferConfig;
use crate::zone::tsig::{self, Key};
use crate::zone::{rtype, Name};

/// Attempts per secondary and zone change.
pub(crate) const TRIES: u32 = 5;
/// The wait for an answer to the first attempt; doubled after each.
pub(crate) const FIRST_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct Counters {
    /// NOTIFY messages sent, retries included.
    pub sent: AtomicU64,
    /// Secondaries that answered.
    pub answered: AtomicU64,
    /// Secondaries that never answered (or answered with an error).
    pub failed: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    sent: AtomicU64::new(0),
    answered: AtomicU64::new(0),
    failed: AtomicU64::new(0),
};

/// The NOTIFY for `zone` (opcode 4, AA, the SOA question, RFC 1996 §3.7).
fn message(id: u16, zone: &Name) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x24, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(zone.wire());
    m.extend_from_slice(&rtype::SOA.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

/// Starts the NOTIFYs for `zones` (changed) to their secondaries in `transfer`.
/// Needs a tokio runtime; without one (a `check`), sends nothing.
pub fn spawn(transfer: &TransferConfig, zones: &[Name]) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    for zone in zones {
        let settings = transfer.zone(zone);
        let key = settings
            .notify_key
            .as_ref()
            .and_then(|k| transfer.keys.named(k))
            .cloned();
        for &target in &settings.notify {
            let (zone, key) = (zone.clone(), key.clone());
            rt.spawn(async move {
                let ok = notify_one(&zone, target, key.as_ref()).await;
                let c = if ok {
                    &COUNTERS.answered
                } else {
                    &COUNTERS.failed
                };
                c.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    tracing::warn!(%zone, %target, "NOTIFY not answered after {TRIES} tries");
                }
            });
        }
    }
}

/// Sends the NOTIFY until answered; true when the secondary answered NOERROR.
pub(crate) async fn notify_one(zone: &Name, target: SocketAddr, key: Option<&Key>) -> bool {
    let local: SocketAddr = if target.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let Ok(sock) = UdpSocket::bind(local).await else {
        return false;
    };
    if sock.connect(target).await.is_err() {
        return false;
    }
    let mut wait = FIRST_WAIT;
    let mut buf = vec![0u8; 4096];
    for _ in 0..TRIES {
        let id = fastrand::u16(..);
        let mut msg = message(id, zone);
        let mac = key.map(|k| tsig::sign_request(&mut msg, k, crate::clock::unix_now()));
        COUNTERS.sent.fetch_add(1, Ordering::Relaxed);
        if sock.send(&msg).await.is_err() {
            tokio::time::sleep(wait).await;
            wait *= 2;
            continue;
        }
        let by = tokio::time::Instant::now() + wait;
        loop {
            let got = tokio::time::timeout_at(by, sock.recv(&mut buf)).await;
            let Ok(Ok(n)) = got else {
                break;
            };
            let r = &buf[..n];
            // Our answer: the ID, QR, opcode NOTIFY.
            if n < 12 || r[..2] != id.to_be_bytes() || r[2] & 0x80 == 0 || (r[2] >> 3) & 0x0f != 4 {
                continue;
            }
            if let (Some(k), Some(mac)) = (key, mac.as_ref()) {
                let mut v = tsig::ResponseVerifier::new(k, mac);
                if let Err(e) = v.verify(r, crate::clock::unix_now()) {
                    tracing::warn!(%zone, %target, "NOTIFY answer failed TSIG: {e}");
                    return false;
                }
            }
            let rcode = r[3] & 0x0f;
            if rcode != 0 {
                tracing::warn!(%zone, %target, rcode, "NOTIFY answered with an error");
            }
            return rcode == 0;
        }
        wait *= 2;
    }
    false
}
