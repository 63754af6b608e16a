//! The OPT record of a response (RFC 6891), shared by the general path and the
//! fast table: our payload, DO copied, NSID if asked, the ECS of a resolver we
//! believe, a fresh server cookie; and the client address a decision uses.

use std::net::IpAddr;

use super::cookie;
use super::query::{ClientSubnet, Query};
use super::write::{OptOut, OptRecord, ECS_MAX, ECS_MIN};
use crate::answer::snapshot::Snapshot;

/// The query's ECS if it comes from a resolver we believe (RFC 7871 §7.2.1: other
/// ECS is ignored and not echoed), and the OPT record of the response: our payload,
/// DO copied, NSID if asked, ECS echoed with scope 0 (static answers hold for every
/// client; steering narrows it later).
#[inline]
pub(crate) fn edns_out<'s>(
    snap: &'s Snapshot,
    q: &Query<'_>,
    src: IpAddr,
) -> (Option<ClientSubnet>, Option<OptOut<'s>>) {
    let ecs = q
        .ecs_option
        .filter(|_| snap.ecs_from.contains(src))
        .and_then(|_| q.client_subnet());
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

impl OptRecord<'_> {
    /// The OPT record of a response to `q` from `src` answered for every client, as
    /// [`edns_out`] makes it; `full` holds that one when it cannot be an echo.
    #[inline(always)]
    pub(crate) fn of<'a>(
        snap: &'a Snapshot,
        q: &Query<'a>,
        src: IpAddr,
        full: &'a mut Option<OptOut<'a>>,
    ) -> OptRecord<'a> {
        let Some(e) = q.edns else {
            return OptRecord::None;
        };
        if q.cookie.is_none() && !(e.nsid && snap.nsid.is_some()) {
            return OptRecord::Echo {
                payload: snap.udp_payload,
                dnssec_ok: e.dnssec_ok,
                ecs: match q.ecs_option {
                    Some(o)
                        if (ECS_MIN..=ECS_MAX).contains(&o.len())
                            && snap.ecs_from.contains(src) =>
                    {
                        Some(o)
                    }
                    _ => None,
                },
            };
        }
        *full = edns_out(snap, q, src).1;
        full.as_ref().map_or(OptRecord::None, OptRecord::Out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::query::read_client_subnet;
    use super::{OptOut, OptRecord};

    /// An echoed option is written as the general path writes the option it
    /// parsed, with scope 0, for every family and source prefix length.
    #[test]
    fn an_echo_writes_what_the_general_path_writes() {
        for (family, max) in [(1u16, 32u8), (2, 128)] {
            for prefix in 0..=max {
                let n = usize::from(prefix).div_ceil(8);
                let mut addr: Vec<u8> = (0..n as u8).map(|i| 0xa5 ^ i.wrapping_mul(37)).collect();
                if prefix % 8 != 0 {
                    // The bits past the prefix are zero (RFC 7871 §6).
                    addr[n - 1] &= 0xffu8 << (8 - prefix % 8);
                }
                let mut option = vec![0, 8];
                option.extend_from_slice(&((4 + n) as u16).to_be_bytes());
                option.extend_from_slice(&family.to_be_bytes());
                option.extend_from_slice(&[prefix, 0]);
                option.extend_from_slice(&addr);
                let cs = read_client_subnet(&option[4..]).expect("a valid option");
                for dnssec_ok in [false, true] {
                    let general = OptOut {
                        payload: 1232,
                        dnssec_ok,
                        client_subnet: Some((cs, 0)),
                        ..OptOut::default()
                    };
                    let echo = OptRecord::Echo {
                        payload: 1232,
                        dnssec_ok,
                        ecs: Some(&option),
                    };
                    let (mut a, mut b) = (vec![7u8; 3], vec![7u8; 3]);
                    general.write(&mut a);
                    echo.write(&mut b);
                    assert_eq!(a, b, "family {family}, /{prefix}");
                    assert_eq!(echo.wire_len(), general.wire_len());
                }
            }
        }
        let plain = OptRecord::Echo {
            payload: 1232,
            dnssec_ok: false,
            ecs: None,
        };
        let mut a = Vec::new();
        plain.write(&mut a);
        let mut b = Vec::new();
        OptOut {
            payload: 1232,
            ..OptOut::default()
        }
        .write(&mut b);
        assert_eq!(a, b);
        assert_eq!(plain.wire_len(), 11);
    }
}
