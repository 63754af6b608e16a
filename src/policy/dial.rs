//! Traffic dials: how much of the traffic that would go to a region (or one
//! endpoint) it keeps, 0-100 %.
//!
//! At d %, a client network keeps the region when its rendezvous hash (the same
//! prefix `weighted` hashes: /24 or /56, or less when the client gave fewer bits)
//! falls under d/100; the rest are treated as if the region were down for them,
//! so every strategy gives them its next choice. Invariants:
//!
//! - The choice is stable: the hash depends on the network and the region only,
//!   and a network kept at d % is kept at every dial above d (raising a dial
//!   never moves a network that had the region).
//! - An endpoint's own dial and its region's combine as the lower of the two;
//!   both use the same hash, so the kept networks nest.
//! - Dials never move a client out of its fence: they act on the candidates the
//!   fence allows. When they would leave nothing to answer with (every other
//!   choice down, outside the fence, or dialled away too), the dials yield and
//!   the decision is made as if there were none: a dial moves traffic to where it
//!   can go, it does not turn answers into failures.
//! - The ECS scope is at least the hashed prefix whenever a dial strictly between
//!   0 and 100 applies to a candidate that is up.

use smallvec::SmallVec;

use super::{
    prefix_key, unit_hash, Client, EndpointIdx, HealthView, NamePolicy, Trace, ZonePolicy,
};
use super::{HASH_PREFIX_V4, HASH_PREFIX_V6};

/// A dial that keeps everything: no dial set.
pub(crate) const FULL: u8 = 100;

/// Salt of the dial hash, apart from the weighted strategy's (which salts with
/// the region index alone), so a dial's kept networks do not line up with a
/// weighted split of the same regions.
const SALT: u64 = 0x6469_616c_0000_0000; // "dial"

/// Whether a network (a [`prefix_key`]) keeps a region dialled to `dial` %.
pub fn keeps(key: u128, region: u16, dial: u8) -> bool {
    if dial >= FULL {
        return true;
    }
    if dial == 0 {
        return false;
    }
    unit_hash(key, SALT ^ region as u64) * 100.0 < dial as f64
}

/// The prefix length a client's network is hashed over.
pub(crate) fn hash_bits(client: &Client) -> u8 {
    match client.family_bits() {
        32 => HASH_PREFIX_V4,
        _ => HASH_PREFIX_V6,
    }
    .min(client.source_prefix)
}

/// Whether a decision applies the dials or lets them yield (its first attempt
/// left the client nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Apply,
    Yield,
}

/// What the dials did to one decision's candidates.
#[derive(Debug, Default)]
pub(super) struct Applied {
    /// Candidates turned away from this client network.
    pub moved: SmallVec<[EndpointIdx; 4]>,
    /// The least ECS scope the answer needs: the hashed prefix when a partial
    /// dial applied, else 0.
    pub scope: u8,
}

/// Marks as not up, for this client, the candidates whose dial turns its network
/// away (in [`Mode::Apply`]), noting each dial on the trace.
pub(super) fn apply<H: HealthView, T: Trace>(
    zone: &ZonePolicy,
    p: &NamePolicy,
    client: &Client,
    health: &H,
    usable: &mut [(EndpointIdx, bool)],
    mode: Mode,
    trace: &mut T,
) -> Applied {
    let mut out = Applied::default();
    let mut key = None;
    for (i, up) in usable.iter_mut() {
        let Some(e) = p.endpoints.get(*i as usize) else {
            continue;
        };
        let d = health.dial(e);
        if d >= FULL || !*up {
            continue;
        }
        let bits = hash_bits(client);
        let k = *key.get_or_insert_with(|| prefix_key(client.addr, bits));
        if d > 0 {
            out.scope = bits;
        }
        let kept = keeps(k, e.region, d);
        if trace.on() {
            let region = zone
                .regions
                .get(e.region as usize)
                .map_or("?", |r| r.name.as_str());
            let what = match (kept, mode) {
                (true, _) => "keeps it",
                (false, Mode::Apply) => "is turned to its next choice",
                (false, Mode::Yield) => "would be turned away, but nothing else can answer",
            };
            trace.note(format!(
                "  {region}: dial {d}%: client network {}/{bits} {what}",
                crate::geo::cidr::mask(client.addr, bits)
            ));
            if let Some(why) = health.dial_note(e) {
                trace.note(format!("    {region}: {why}"));
            }
        }
        if !kept {
            out.moved.push(*i);
            if mode == Mode::Apply {
                *up = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100,000 client /24s: at d % about d % of them keep a region, and raising
    /// the dial never takes it from one that had it.
    #[test]
    fn dial_keeps_its_share_and_raising_it_moves_no_kept_network() {
        const NETS: u32 = 100_000;
        let keys: Vec<u128> = (0..NETS)
            .map(|n| {
                let addr = std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                    0x0a00_0000u32.wrapping_add(n << 8),
                ));
                prefix_key(addr, 24)
            })
            .collect();
        for region in [0u16, 1, 7] {
            let mut before: Option<Vec<bool>> = None;
            for d in [0u8, 1, 5, 10, 25, 33, 50, 75, 90, 99, 100] {
                let kept: Vec<bool> = keys.iter().map(|&k| keeps(k, region, d)).collect();
                let n = kept.iter().filter(|&&k| k).count() as f64;
                let share = 100.0 * n / NETS as f64;
                assert!(
                    (share - d as f64).abs() <= 1.0,
                    "region {region} dial {d}%: {share:.2}% kept"
                );
                if let Some(b) = &before {
                    let moved = b
                        .iter()
                        .zip(&kept)
                        .filter(|(was, now)| **was && !**now)
                        .count();
                    assert_eq!(moved, 0, "region {region}: raising to {d}% moved {moved}");
                }
                before = Some(kept);
            }
        }
    }

    #[test]
    fn the_ends_need_no_hash() {
        assert!(keeps(12345, 3, 100));
        assert!(keeps(12345, 3, 255));
        assert!(!keeps(12345, 3, 0));
    }
}
