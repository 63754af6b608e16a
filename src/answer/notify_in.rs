//! NOTIFY (RFC 1996) for secondary zones, and the rcode of a secondary zone that
//! cannot be served. Bytes in, an rcode out: a NOTIFY from one of a zone's
//! primaries wakes that zone's refresh (a flag, so a burst is one refresh) and is
//! answered NOERROR with AA; any other NOTIFY is REFUSED and counted, and costs
//! nothing more than that answer.
//!
//! A secondary zone with a TSIG key takes NOTIFY only signed with that key
//! (RFC 8945): unsigned, or signed with another key, it is REFUSED; signed
//! with a key we lack or a MAC that does not check, the handler's TSIG step
//! answers NOTAUTH with BADKEY or BADSIG. Neither wakes anything; each is
//! counted (`tsig`). A NOTIFY whose signature fails is refused for a zone
//! without a key too.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::zone::name::{is_wire_subdomain, wire_name_len};
use crate::zone::tsig::Keyring;
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
    /// From a primary, but not signed with the zone's key, or signed wrongly.
    pub tsig: AtomicU64,
}

/// One secondary zone: who may NOTIFY it, and the refresh it wakes.
#[derive(Debug)]
pub struct NotifyZone {
    pub origin: Name,
    pub from: Vec<IpAddr>,
    /// The key a NOTIFY must be signed with; none: any, or none.
    pub key: Option<Name>,
    pub wake: Arc<tokio::sync::Notify>,
}

/// Every secondary zone's NOTIFY sources, in the snapshot.
#[derive(Debug, Default)]
pub struct NotifyTable {
    pub zones: Vec<NotifyZone>,
    pub counters: Arc<NotifyCounters>,
}

/// What a NOTIFY's TSIG came to, checked against the server's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed<'k> {
    Unsigned,
    /// Signed with this key, and the MAC and time check.
    Key(&'k Name),
    /// A key we lack, a MAC that does not check, a time outside the fudge.
    Failed,
}

/// How `msg` is signed. Without keys, TSIG is not looked for (as for queries).
pub(crate) fn signed<'k>(keys: &'k Keyring, msg: &[u8], now: u64) -> Signed<'k> {
    if keys.keys.is_empty() {
        return Signed::Unsigned;
    }
    match crate::zone::tsig::verify_request(msg, keys, now) {
        Ok(None) => Signed::Unsigned,
        Ok(Some(v)) => Signed::Key(&v.key.name),
        Err(_) => Signed::Failed,
    }
}

/// The rcode and AA bit for a NOTIFY with this question section from `src`.
pub fn answer(
    table: Option<&NotifyTable>,
    question: Option<&[u8]>,
    src: IpAddr,
    signed: Signed<'_>,
) -> (Rcode, bool) {
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
            let signed_right = match (&z.key, signed) {
                (_, Signed::Failed) => false,
                (None, _) => true,
                (Some(want), Signed::Key(k)) => want == k,
                (Some(_), Signed::Unsigned) => false,
            };
            if !signed_right {
                table.counters.tsig.fetch_add(1, Relaxed);
                return (Rcode::Refused, false);
            }
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
