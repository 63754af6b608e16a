//! NOTIFY (RFC 1996) for secondary zones, and the rcode of a secondary zone that
//! cannot be served. Bytes in, an rcode out: a NOTIFY from one of a zone's
//! primaries wakes that zone's refresh (a flag, so a burst is one refresh) and is
//! answered NOERROR with AA; any other NOTIFY is REFUSED and counted, and costs
//! nothing more than that answer.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::zone::name::{is_wire_subdomain, wire_name_len};
use crate::zone::{Name, Rcode};

/// The NOTIFY opcode (RFC 1996 §3.1).
pub(crate) const OPCODE: u8 = 4;

/// NOTIFY counts, kept across reloads.
#[derive(Debug, Default)]
pub struct NotifyCounters {
    /// From a zone's primary: a refresh was asked for.
    pub accepted: AtomicU64,
    /// From anyone else, or for a zone that is not a secondary here.
    pub refused: AtomicU64,
}

/// One secondary zone: who may NOTIFY it, and the refresh it wakes.
#[derive(Debug)]
pub struct NotifyZone {
    pub origin: Name,
    pub from: Vec<IpAddr>,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Every secondary zone's NOTIFY sources, in the snapshot.
#[derive(Debug, Default)]
pub struct NotifyTable {
    pub zones: Vec<NotifyZone>,
    pub counters: Arc<NotifyCounters>,
}

/// The rcode and AA bit for a NOTIFY with this question section from `src`.
pub fn answer(table: Option<&NotifyTable>, question: Option<&[u8]>, src: IpAddr) -> (Rcode, bool) {
    let Some(table) = table else {
        return (Rcode::NotImp, false);
    };
    let zone = question.and_then(|q| {
        let len = wire_name_len(q)?;
        let mut name = q[..len].to_vec();
        crate::zone::name::lowercase_wire(&mut name);
        // SOA, class IN (RFC 1996 §3.7): the type is the SOA's by convention.
        table
            .zones
            .iter()
            .find(|z| z.origin.wire() == name.as_slice())
    });
    match zone {
        Some(z) if z.from.contains(&src) => {
            table.counters.accepted.fetch_add(1, Relaxed);
            z.wake.notify_one();
            (Rcode::NoError, true)
        }
        _ => {
            table.counters.refused.fetch_add(1, Relaxed);
            (Rcode::Refused, false)
        }
    }
}

/// The rcode for a query no served zone holds: SERVFAIL inside a secondary zone
/// with no copy to serve (none pulled yet, or expired: `unavailable`), else
/// REFUSED.
pub(crate) fn no_zone(unavailable: &[Name], qname: &[u8]) -> Rcode {
    if unavailable
        .iter()
        .any(|o| is_wire_subdomain(qname, o.wire()))
    {
        Rcode::ServFail
    } else {
        Rcode::Refused
    }
}
