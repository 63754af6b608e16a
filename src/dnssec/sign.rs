//! RRSIGs (RFC 4034 §3) over RRsets in canonical form (§6), and the signing of a
//! whole zone at load: every authoritative RRset, the negative-answer SOA, and every
//! region's A/AAAA/CNAME RRset of every steered name, so that a DO=1 query copies a
//! prebuilt signature and signs nothing.

use rustc_hash::FxHashSet;

use super::keys::{Key, SignFailed};
use crate::zone::{class, name, rtype, Name, RRset, StoredName, Zone};

/// When the signatures of one signing hold: inception an hour in the past, for
/// resolvers whose clocks run behind (RFC 6781 §4.4.2.2), to `expiration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub inception: u32,
    pub expiration: u32,
}

/// How far in the past inception is put.
pub(crate) const SKEW: u64 = 3600;

impl Window {
    pub fn starting(now: u64, validity: u32) -> Window {
        Window {
            // RFC 4034 §3.1.5: 32-bit serial-number time; valid until 2106.
            inception: now.saturating_sub(SKEW) as u32,
            expiration: now.saturating_add(u64::from(validity)) as u32,
        }
    }
}

/// The RRSIG Labels field: the owner's labels, the root and a leading `*` not
/// counted (RFC 4034 §3.1.3).
pub fn labels(owner: &[u8]) -> u8 {
    let mut n = name::label_offsets(owner).count();
    if owner.starts_with(b"\x01*") {
        n = n.saturating_sub(1);
    }
    n as u8
}

/// Flips a byte of every signature, so tests can see a validator reject it. Debug
/// builds only; release builds have no such switch.
#[cfg(debug_assertions)]
fn tamper() -> bool {
    static T: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *T.get_or_init(|| std::env::var_os("SIGNPOST_TEST_TAMPER_RRSIG").is_some())
}

/// One RRSIG RDATA by `key` over the records `rdatas` of (`owner`, `rtype`), which
/// are served with `ttl`. `owner` is lower-cased wire, as every name in the zone.
pub(crate) fn rrsig_rdata(
    key: &Key,
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdatas: &[&[u8]],
    w: Window,
) -> Result<Vec<u8>, SignFailed> {
    let mut rd = Vec::with_capacity(18 + key.zone.wire().len() + 64);
    rd.extend_from_slice(&rtype.to_be_bytes());
    rd.push(key.algorithm);
    rd.push(labels(owner));
    rd.extend_from_slice(&ttl.to_be_bytes());
    rd.extend_from_slice(&w.expiration.to_be_bytes());
    rd.extend_from_slice(&w.inception.to_be_bytes());
    rd.extend_from_slice(&key.tag.to_be_bytes());
    rd.extend_from_slice(key.zone.wire());
    // RFC 4034 §3.1.8.1: the RRSIG RDATA without the signature, then each record
    // in canonical order (§6.3: RDATA as unsigned octet strings), duplicates once.
    let mut sorted: Vec<&[u8]> = rdatas.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut data = rd.clone();
    for r in sorted {
        data.extend_from_slice(owner);
        data.extend_from_slice(&rtype.to_be_bytes());
        data.extend_from_slice(&class::IN.to_be_bytes());
        data.extend_from_slice(&ttl.to_be_bytes());
        data.extend_from_slice(&(r.len() as u16).to_be_bytes());
        data.extend_from_slice(r);
    }
    #[allow(unused_mut)]
    let mut sig = key.sign(&data)?;
    #[cfg(debug_assertions)]
    if tamper() {
        if let Some(b) = sig.last_mut() {
            *b ^= 0x01;
        }
    }
    rd.extend_from_slice(&sig);
    Ok(rd)
}

/// Signs `set` at `owner`, one signature per key: its RRSIGs replace those it
/// had (see [`RRset::set_rrsig`]); on failure it keeps them.
pub(crate) fn sign_set(
    keys: &[&Key],
    owner: &[u8],
    set: &mut RRset,
    w: Window,
) -> Result<(), SignFailed> {
    let rdatas: Vec<&[u8]> = set.rdatas().iter().collect();
    let mut sigs = Vec::with_capacity(keys.len());
    for k in keys {
        sigs.push(rrsig_rdata(k, owner, set.rtype(), set.ttl, &rdatas, w)?.into_boxed_slice());
    }
    // Every key of a zone has the zone's name.
    let signer = keys.first().map_or(&[][..], |k| k.zone.wire());
    set.set_rrsig(signer, &sigs);
    Ok(())
}

/// Which keys sign what: the DNSKEY, CDS and CDNSKEY RRsets by the KSKs (or the
/// CSK), everything else by the ZSKs (or the CSK).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRoles<'k> {
    pub ksk: &'k [&'k Key],
    pub zsk: &'k [&'k Key],
}

impl<'k> KeyRoles<'k> {
    pub(crate) fn for_type(&self, t: u16) -> &'k [&'k Key] {
        match t {
            rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY => self.ksk,
            _ => self.zsk,
        }
    }
}

/// What one signing did, for the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub rrsets: usize,
    pub signatures: usize,
}

/// Signs every RRset the zone is authoritative for (not the NS at a cut or the glue
/// below it; RFC 4035 §2.2), the negative-answer SOA, and the steered names'
/// prebuilt RRsets. Work is split over the machine's cores.
pub(crate) fn sign_zone(
    zone: &mut Zone,
    steering: &mut crate::policy::ZoneSteering,
    roles: KeyRoles<'_>,
    w: Window,
) -> Result<Stats, SignFailed> {
    let origin = zone.origin.clone();
    let cuts: FxHashSet<Vec<u8>> = zone.nodes.cuts().map(|c| c.to_vec()).collect();
    let below_cut = |owner: StoredName<'_>| {
        let mut buf = [0u8; name::MAX_NAME_LEN];
        name::nearest_ancestor(owner.whole(&mut buf), false, |a| cuts.contains(a)).is_some()
    };
    let mut work: Vec<(StoredName<'_>, &mut crate::zone::Node)> = zone
        .nodes
        .iter_mut()
        .filter(|(k, _)| !below_cut(*k))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = work.len().div_ceil(threads).max(1);
    let mut stats = Stats::default();
    let results: Vec<Result<Stats, SignFailed>> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks_mut(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut st = Stats::default();
                    let mut buf = [0u8; name::MAX_NAME_LEN];
                    for (owner, node) in part.iter_mut() {
                        let owner = owner.whole(&mut buf);
                        let cut = node.cut();
                        for set in node.rrsets.iter_mut() {
                            if (cut && set.rtype() != rtype::DS) || set.rtype() == rtype::RRSIG {
                                continue;
                            }
                            let keys = roles.for_type(set.rtype());
                            sign_set(keys, owner, set, w)?;
                            st.rrsets += 1;
                            st.signatures += keys.len();
                        }
                    }
                    Ok(st)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(SignFailed)))
            .collect()
    });
    for r in results {
        let r = r?;
        stats.rrsets += r.rrsets;
        stats.signatures += r.signatures;
    }
    sign_set(roles.zsk, origin.wire(), &mut zone.negative_soa, w)?;
    for p in steering.names.iter_mut() {
        let owner = p.name.wire().to_vec();
        for e in p.endpoints.iter_mut() {
            sign_endpoint(e, &owner, roles.zsk, w, &mut stats)?;
        }
    }
    Ok(stats)
}

/// An endpoint's whole A, AAAA and CNAME RRsets, and those of its degraded form.
fn sign_endpoint(
    e: &mut crate::policy::Endpoint,
    owner: &[u8],
    keys: &[&Key],
    w: Window,
    stats: &mut Stats,
) -> Result<(), SignFailed> {
    for set in [&mut e.a, &mut e.aaaa, &mut e.cname].into_iter().flatten() {
        sign_set(keys, owner, set, w)?;
        stats.rrsets += 1;
        stats.signatures += keys.len();
    }
    if let Some(d) = e.degraded.as_deref_mut() {
        sign_endpoint(d, owner, keys, w, stats)?;
    }
    Ok(())
}

/// NSEC type bitmaps (RFC 4034 §4.1.2) for the types in `types`.
pub(crate) fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut t: Vec<u16> = types.to_vec();
    t.sort_unstable();
    t.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let window = (t[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < t.len() && (t[i] >> 8) as u8 == window {
            let low = (t[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_skip_root_and_wildcard() {
        let n = |s: &str| Name::parse(s, None).unwrap();
        assert_eq!(labels(n("www.example.com.").wire()), 3);
        assert_eq!(labels(n("*.users.example.com.").wire()), 3);
        assert_eq!(labels(n(".").wire()), 0);
    }

    /// Our RRSIGs verified by hickory-proto's DNSSEC code (its own canonical form
    /// and its own crypto glue), for both algorithms, and a changed record refused.
    #[test]
    fn hickory_proto_verifies_our_rrsigs() {
        use hickory_proto::dnssec::rdata::DNSSECRData;
        use hickory_proto::dnssec::Verifier as _;
        use hickory_proto::rr::{DNSClass, RData, Record};

        let dir = std::env::temp_dir().join(format!("signpost-sign-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let zone = Name::parse("example.org.", None).unwrap();
        for (alg, owner) in [(13u8, "www.example.org."), (15, "*.Wild.example.org.")] {
            let key = super::super::keys::generate(&dir, &zone, alg, 257, 1_800_000_000).unwrap();
            let owner = Name::parse(owner, None).unwrap();
            // Out of canonical order, to check that the signer sorts.
            let set = RRset::new(
                rtype::nz::A,
                class::IN,
                300,
                vec![
                    Box::from(&[192u8, 0, 2, 9][..]),
                    Box::from(&[192u8, 0, 2, 1][..]),
                ],
            );
            let w = Window::starting(1_800_000_000, 86400);
            let mut set = set;
            sign_set(&[&key], owner.wire(), &mut set, w).unwrap();
            let sig = set.rrsig(zone.wire()).unwrap();
            // A message holding the RRset, its RRSIG and the DNSKEY, for hickory to read.
            let mut msg = vec![0, 0, 0x84, 0, 0, 0, 0, 4, 0, 0, 0, 0];
            let rr = |msg: &mut Vec<u8>, owner: &[u8], t: u16, rd: &[u8]| {
                msg.extend_from_slice(owner);
                msg.extend_from_slice(&t.to_be_bytes());
                msg.extend_from_slice(&1u16.to_be_bytes());
                msg.extend_from_slice(&300u32.to_be_bytes());
                msg.extend_from_slice(&(rd.len() as u16).to_be_bytes());
                msg.extend_from_slice(rd);
            };
            for rd in set.rdatas().iter() {
                rr(&mut msg, owner.wire(), rtype::A, rd);
            }
            let sig = sig.wire().next().unwrap().rdata();
            rr(&mut msg, owner.wire(), rtype::RRSIG, &sig);
            rr(&mut msg, zone.wire(), rtype::DNSKEY, &key.dnskey_rdata());
            let m = hickory_proto::op::Message::from_vec(&msg).unwrap();
            let a: Vec<Record> = m
                .answers
                .iter()
                .filter(|r| r.record_type() == hickory_proto::rr::RecordType::A)
                .cloned()
                .collect();
            let rrsig = m
                .answers
                .iter()
                .find_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap();
            let dnskey = m
                .answers
                .iter()
                .find_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
                    _ => None,
                })
                .unwrap();
            let name = a[0].name.clone();
            dnskey
                .verify_rrsig(&name, DNSClass::IN, &rrsig, a.iter())
                .unwrap_or_else(|e| panic!("algorithm {alg}: {e}"));
            let mut changed = a.clone();
            changed[0].ttl = 301;
            changed[1].data = RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 2));
            assert!(dnskey
                .verify_rrsig(&name, DNSClass::IN, &rrsig, changed.iter())
                .is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn canonical_order_of_rfc_4034_example() {
        // RFC 4034 §6.1, in its order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "Z.a.example.",
            "zABC.a.EXAMPLE.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        let wire: Vec<Name> = names
            .iter()
            .map(|n| Name::parse(n, None).unwrap())
            .collect();
        for w in wire.windows(2) {
            assert_eq!(
                canonical_cmp(w[0].wire(), w[1].wire()),
                std::cmp::Ordering::Less,
                "{} < {}",
                w[0],
                w[1]
            );
        }
        let mut shuffled = wire.clone();
        shuffled.reverse();
        shuffled.sort_by(|a, b| canonical_cmp(a.wire(), b.wire()));
        assert_eq!(shuffled, wire);
    }

    #[test]
    fn bitmap_of_rfc_4034_example() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let b = type_bitmap(&[1, 15, 46, 47, 1234]);
        assert_eq!(
            b,
            [
                0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20
            ]
        );
    }
}

/// Canonical DNS name order (RFC 4034 §6.1): labels compared from the rightmost,
/// each as lower-cased bytes (names here are lower-cased already).
pub(crate) fn canonical_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let labels = |w: &[u8]| -> Vec<(usize, usize)> {
        name::label_offsets(w)
            .map(|o| (o + 1, o + 1 + w[o] as usize))
            .collect()
    };
    let (la, lb) = (labels(a), labels(b));
    for (x, y) in la.iter().rev().zip(lb.iter().rev()) {
        let c = a[x.0..x.1].cmp(&b[y.0..y.1]);
        if c != std::cmp::Ordering::Equal {
            return c;
        }
    }
    la.len().cmp(&lb.len())
}

/// A classic NSEC chain (RFC 4034 §4, RFC 4035 §2.3), prebuilt and signed at load:
/// one NSEC per authoritative name with data, in canonical order, the last
/// pointing back at the apex. Empty non-terminals have none (the NSEC before them
/// covers them).
#[derive(Debug, Default)]
pub struct NsecChain {
    names: Vec<Name>,
    sets: Vec<RRset>,
}

impl NsecChain {
    /// Each name of the chain and its NSEC RRset (RRSIG attached), in order:
    /// what a zone transfer carries.
    pub fn iter(&self) -> impl Iterator<Item = (&Name, &RRset)> + '_ {
        self.names.iter().zip(&self.sets)
    }

    /// Builds and signs the chain of `zone` (after its apex has its DNSKEYs).
    /// `steered_types` gives the types of each steered name, by its index.
    pub fn build(
        zone: &Zone,
        steered_types: &[Vec<u16>],
        keys: &[&Key],
        ttl: u32,
        w: Window,
    ) -> Result<NsecChain, SignFailed> {
        let origin = &zone.origin;
        let cuts: FxHashSet<Vec<u8>> = zone.nodes.cuts().map(|c| c.to_vec()).collect();
        let below_cut =
            |owner: &[u8]| name::nearest_ancestor(owner, false, |a| cuts.contains(a)).is_some();
        let mut entries: Vec<(Vec<u8>, Vec<u16>)> = Vec::new();
        for (n, node) in &zone.nodes {
            let n = n.to_vec();
            if below_cut(&n) {
                continue;
            }
            let mut types: Vec<u16> = node
                .rrsets
                .iter()
                .map(|s| s.rtype())
                .filter(|&t| !node.cut() || matches!(t, rtype::NS | rtype::DS))
                .collect();
            if let Some(t) = node.steer().and_then(|i| steered_types.get(i as usize)) {
                types.extend_from_slice(t);
            }
            if types.is_empty() {
                continue;
            }
            types.extend([rtype::RRSIG, rtype::NSEC]);
            entries.push((n, types));
        }
        entries.sort_by(|a, b| canonical_cmp(&a.0, &b.0));
        let mut chain = NsecChain::default();
        for (i, (n, types)) in entries.iter().enumerate() {
            let next = entries.get(i + 1).map_or(origin.wire(), |e| &e.0);
            let mut rd = next.to_vec();
            rd.extend_from_slice(&type_bitmap(types));
            let mut set = RRset::new(rtype::nz::NSEC, class::IN, ttl, vec![rd.into()]);
            sign_set(keys, n, &mut set, w)?;
            chain.names.push(Name::from_wire(n).ok_or(SignFailed)?);
            chain.sets.push(set);
        }
        Ok(chain)
    }

    /// The NSEC at exactly `name`, by index.
    pub fn at(&self, name: &[u8]) -> Option<usize> {
        self.names
            .binary_search_by(|n| canonical_cmp(n.wire(), name))
            .ok()
    }

    /// The NSEC whose owner is `name` or comes last before it: at `name`, or
    /// covering it (proving it does not exist, or that it is an empty non-terminal).
    pub(crate) fn covering(&self, name: &[u8]) -> Option<usize> {
        match self
            .names
            .binary_search_by(|n| canonical_cmp(n.wire(), name))
        {
            Ok(i) => Some(i),
            Err(0) => self.names.len().checked_sub(1),
            Err(i) => Some(i - 1),
        }
    }

    /// The owner and NSEC RRset (with its RRSIG) at index `i`.
    pub fn entry(&self, i: usize) -> Option<(&Name, &RRset)> {
        Some((self.names.get(i)?, self.sets.get(i)?))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
