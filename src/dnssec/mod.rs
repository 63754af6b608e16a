//! DNSSEC: keys, prebuilt signatures, and what DO=1 answers add to them.
//!
//! At load (and every reload, and before signatures expire) each zone with a
//! [`SigningPolicy`] gets its keys from `key_dir` (generated the first time), a
//! DNSKEY, CDS and CDNSKEY RRset at the apex, and an RRSIG beside every RRset the
//! query path can copy ([`sign::sign_zone`]). The result is a [`ZoneSigner`] kept in
//! the snapshot, which [`online`] uses for the few answers that cannot be prebuilt:
//! compact denial (RFC 9824), answers merged from several endpoints, wildcard
//! expansions; those are signed once, cached, and capped per second.
//!
//! In a fleet, `key_dir` first gets the fleet's one key set (`fleet::keys`),
//! which etcd holds sealed with the fleet secret ([`sealed`]).

pub mod budget;
pub mod keys;
pub mod online;
pub mod sealed;
pub mod sign;

use std::path::Path;

use keys::{Key, KeyError, FLAG_SEP, FLAG_ZONE};
use sign::{KeyRoles, Window};

use crate::zone::{class, rtype, RRset, SigningPolicy, Zone};

/// A zone's keys and signing window, for DO=1 answers signed on the fly.
#[derive(Debug)]
pub struct ZoneSigner {
    pub keys: Vec<Key>,
    /// Indices into `keys`: the keys that sign the zone's data.
    zsk: Vec<usize>,
    pub window: Window,
    /// Unix seconds at which the zone must be signed again.
    pub resign_at: u64,
    pub online: online::Online,
    pub stats: sign::Stats,
    /// The prebuilt NSEC chain, with `denial = "nsec"`; `None`: compact denial.
    pub chain: Option<sign::NsecChain>,
    /// With compact denial, for a zone that goes to secondaries: the NSEC chain
    /// its transfers carry (a secondary cannot sign denials on the fly), never
    /// served by signpost itself, whose answers keep compact denial.
    pub transfer_chain: Option<sign::NsecChain>,
    /// The types of each steered name, by its index (see [`steered_types`]).
    steered_types: Vec<Vec<u16>>,
}

impl ZoneSigner {
    fn zsk(&self) -> Vec<&Key> {
        self.zsk.iter().filter_map(|&i| self.keys.get(i)).collect()
    }

    /// The signer's name of the zone's RRSIGs: the zone's (lower-cased wire),
    /// which [`crate::zone::RRset::rrsig`] gives back to each.
    pub(crate) fn name(&self) -> &[u8] {
        self.keys.first().map_or(&[][..], |k| k.zone.wire())
    }

    /// The DS lines for the parent: one per published KSK/CSK.
    pub fn ds_lines(&self) -> Vec<String> {
        self.keys
            .iter()
            .filter(|k| k.is_sep())
            .map(Key::ds_line)
            .collect()
    }
}

/// Reads (or on first use generates) the keys of `zone` in `policy.key_dir`.
pub(crate) fn zone_keys(
    zone: &Zone,
    policy: &SigningPolicy,
    now: u64,
) -> Result<Vec<Key>, Vec<KeyError>> {
    origin_keys(&zone.origin, policy, now)
}

/// Reads (or on first use generates) the keys of the zone at `origin` in
/// `policy.key_dir`.
pub(crate) fn origin_keys(
    origin: &crate::zone::Name,
    policy: &SigningPolicy,
    now: u64,
) -> Result<Vec<Key>, Vec<KeyError>> {
    let dir = &policy.key_dir;
    let keys = keys::load_dir(dir, origin)?;
    if !keys.is_empty() {
        return Ok(keys);
    }
    let gen =
        |flags| keys::generate(dir, origin, policy.algorithm, flags, now).map_err(|e| vec![e]);
    let mut out = vec![gen(FLAG_ZONE | FLAG_SEP)?];
    if policy.split {
        out.push(gen(FLAG_ZONE)?);
    }
    for k in &out {
        tracing::info!(zone = %origin, tag = k.tag, algorithm = k.algorithm, file = %k.file.display(), "generated a DNSSEC key");
    }
    Ok(out)
}

/// Signs `zone` in place with its keys; `now` in Unix seconds. Errors name the key
/// file (or the zone's file) and line.
pub fn sign(
    zone: &mut Zone,
    steering: &mut crate::policy::ZoneSteering,
    now: u64,
    sign_rate: u32,
    transfers: bool,
) -> Result<ZoneSigner, Vec<KeyError>> {
    let Some(policy) = zone.dnssec.clone() else {
        return Err(vec![KeyError {
            file: zone.source.clone(),
            line: 0,
            message: "zone is not signed".into(),
        }]);
    };
    let keys = zone_keys(zone, &policy, now)?;
    let zone_err = |m: String| {
        vec![KeyError {
            file: policy.key_dir.clone(),
            line: 0,
            message: m,
        }]
    };
    let published: Vec<&Key> = keys.iter().filter(|k| k.published(now)).collect();
    let active: Vec<usize> = (0..keys.len()).filter(|&i| keys[i].active(now)).collect();
    let ksk: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| keys[i].is_sep())
        .collect();
    let mut zsk: Vec<usize> = active
        .iter()
        .copied()
        .filter(|&i| !keys[i].is_sep())
        .collect();
    if ksk.is_empty() {
        return Err(zone_err(format!(
            "no active key with flags 257 (KSK or CSK) for {} in {}; add one or let signpost generate one in an empty key_dir",
            zone.origin,
            policy.key_dir.display()
        )));
    }
    if zsk.is_empty() {
        zsk = ksk.clone();
    }
    // The apex gets the keys, and the parent's view of them (RFC 7344, RFC 8078).
    let ttl = zone
        .nodes
        .get(zone.origin.wire())
        .and_then(|n| n.get(rtype::SOA))
        .map_or(3600, |s| s.ttl);
    let dnskeys: Vec<Box<[u8]>> = published.iter().map(|k| k.dnskey_rdata().into()).collect();
    let sep: Vec<&&Key> = published.iter().filter(|k| k.is_sep()).collect();
    let cds: Vec<Box<[u8]>> = sep.iter().map(|k| k.ds_rdata().into()).collect();
    let cdnskey: Vec<Box<[u8]>> = sep.iter().map(|k| k.dnskey_rdata().into()).collect();
    if let Some(apex) = zone.nodes.get_mut(zone.origin.wire()) {
        apex.rrsets
            .retain(|s| !matches!(s.rtype(), rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY));
        apex.rrsets
            .push(RRset::new(rtype::nz::DNSKEY, class::IN, ttl, dnskeys));
        apex.rrsets
            .push(RRset::new(rtype::nz::CDS, class::IN, ttl, cds));
        apex.rrsets
            .push(RRset::new(rtype::nz::CDNSKEY, class::IN, ttl, cdnskey));
        apex.rrsets.sort_by_key(|s| s.rtype());
    }
    let window = Window::starting(now, policy.validity);
    let ksk_refs: Vec<&Key> = ksk.iter().map(|&i| &keys[i]).collect();
    let zsk_refs: Vec<&Key> = zsk.iter().map(|&i| &keys[i]).collect();
    let roles = KeyRoles {
        ksk: &ksk_refs,
        zsk: &zsk_refs,
    };
    let stats = sign::sign_zone(zone, steering, roles, window)
        .map_err(|e| zone_err(format!("signing {}: {e}", zone.origin)))?;
    let steered_types = steered_types(steering);
    let chain = if policy.nsec_chain || transfers {
        let c = sign::NsecChain::build(
            zone,
            &steered_types,
            &zsk_refs,
            zone.negative_soa.ttl,
            window,
        )
        .map_err(|e| zone_err(format!("signing the NSEC chain of {}: {e}", zone.origin)))?;
        Some(c)
    } else {
        None
    };
    let (chain, transfer_chain) = if policy.nsec_chain {
        (chain, None)
    } else {
        (None, chain)
    };
    let resign_at = u64::from(window.expiration).saturating_sub(u64::from(policy.refresh));
    let online = online::Online::new(zone, sign_rate);
    Ok(ZoneSigner {
        keys,
        zsk,
        window,
        resign_at: resign_at.max(now + 60),
        online,
        stats,
        chain,
        transfer_chain,
        steered_types,
    })
}

/// The types each steered name answers with (A, AAAA, CNAME, per endpoint as it
/// has them), by the name's index (`zone::Node::steer`): what an NSEC lists for
/// it, without the policy at hand.
fn steered_types(steering: &crate::policy::ZoneSteering) -> Vec<Vec<u16>> {
    steering
        .names
        .iter()
        .map(|p| {
            let mut types = Vec::new();
            for e in &p.endpoints {
                for (has, t) in [
                    (e.a.is_some(), rtype::A),
                    (e.aaaa.is_some(), rtype::AAAA),
                    (e.cname.is_some(), rtype::CNAME),
                ] {
                    if has {
                        types.push(t);
                    }
                }
            }
            types
        })
        .collect()
}

/// The DS lines of `zone`'s keys in `key_dir`, offline (for `signpost ctl ds`).
pub fn ds_lines(key_dir: &Path, zone: &crate::zone::Name) -> Result<Vec<String>, Vec<KeyError>> {
    Ok(keys::load_dir(key_dir, zone)?
        .iter()
        .filter(|k| k.is_sep())
        .map(Key::ds_line)
        .collect())
}
