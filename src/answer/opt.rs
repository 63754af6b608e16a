//! The OPT record of a response (RFC 6891), shared by the general path and the
//! fast table: our payload, DO copied, NSID if asked, the ECS of a resolver we
//! believe, a fresh server cookie; and the client address a decision uses.

use std::net::IpAddr;

use super::cookie;
use super::query::{ClientSubnet, Query};
use super::write::OptOut;
use crate::answer::snapshot::Snapshot;

/// The query's ECS if it comes from a resolver we believe (RFC 7871 §7.2.1: other
/// ECS is ignored and not echoed), and the OPT record of the response: our payload,
/// DO copied, NSID if asked, ECS echoed with scope 0 (static answers hold for every
/// client; steering narrows it later).
pub(crate) fn edns_out<'s>(
    snap: &'s Snapshot,
    q: &Query<'_>,
    src: IpAddr,
) -> (Option<ClientSubnet>, Option<OptOut<'s>>) {
    let ecs = q
        .edns
        .and_then(|e| e.client_subnet)
        .filter(|_| snap.ecs_from.contains(src));
    let opt = q.edns.map(|e| OptOut {
        payload: snap.udp_payload,
        dnssec_ok: e.dnssec_ok,
        nsid: if e.nsid { snap.nsid.as_deref() } else { None },
        client_subnet: ecs.map(|cs| (cs, 0)),
        ext_rcode: 0,
        cookie: q.cookie.and_then(|c| cookie_out(snap, Some(c), src)),
    });
    (ecs, opt)
}

/// The COOKIE option of a response to a query that carried `c` from `src`: its
/// client cookie and a fresh server cookie (RFC 7873 §5.2, RFC 9018 §4).
#[cold]
pub(crate) fn cookie_out(
    snap: &Snapshot,
    c: Option<&[u8]>,
    src: IpAddr,
) -> Option<([u8; 8], [u8; 16])> {
    let client: [u8; 8] = c?.get(..8)?.try_into().ok()?;
    let secret = snap.cookies.as_ref()?;
    Some((client, secret.server_cookie(&client, src, cookie::now())))
}
