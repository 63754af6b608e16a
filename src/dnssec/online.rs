//! What a DO=1 answer of a signed zone carries beyond a DO=0 one: each RRset's
//! RRSIG (prebuilt where the RRset is prebuilt), and for negative answers the SOA's
//! RRSIG and a compact-denial NSEC (RFC 9824).
//!
//! Signed on the fly, each once per snapshot and then cached (bounded): NSECs of
//! denial, RRsets merged from several endpoints or cut by health or `max_answers`,
//! and wildcard answers (signed at the query name, so that they need no proof that
//! the name does not exist). On-the-fly signatures are capped per second by a
//! token bucket; over the cap a DO=1 query gets SERVFAIL, never an unsigned RRset.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use super::budget::{Bucket, Standing};
use super::sign::{self, type_bitmap};
use super::ZoneSigner;
use crate::zone::{class, name, rtype, Answer, Name, Owner, RRset, Rcode, Rec, Zone};

/// Signatures made on the fly, and DO=1 queries refused (SERVFAIL) because the
/// cap was reached: process-wide, read by `/metrics`.
pub(crate) static SIGNED: AtomicU64 = AtomicU64::new(0);
pub(crate) static OVER_CAP: AtomicU64 = AtomicU64::new(0);

const SHARDS: usize = 16;
/// Cached on-the-fly RRsets per shard and generation (the bound on memory).
const SHARD_ENTRIES: usize = 4096;

/// Owner | type | TTL | records -> signed RRset.
type Map = FxHashMap<Box<[u8]>, Arc<Signed>>;

/// One lock's share of the cache, in two generations: entries go into `hot`;
/// when it is full it becomes `cold` and the old `cold` is dropped; a hit in
/// `cold` moves back to `hot`. So a full cache lets go of what was not asked for
/// in the last generation (the coldest), never of everything at once.
#[derive(Debug, Default)]
struct Generations {
    hot: Map,
    cold: Map,
}

impl Generations {
    fn get(&mut self, key: &[u8]) -> Option<Arc<Signed>> {
        if let Some(hit) = self.hot.get(key) {
            return Some(hit.clone());
        }
        let (k, v) = self.cold.remove_entry(key)?;
        self.insert(k, v.clone());
        Some(v)
    }

    fn insert(&mut self, key: Box<[u8]>, value: Arc<Signed>) {
        if self.hot.len() >= SHARD_ENTRIES {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(key, value);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.hot.len() + self.cold.len()
    }
}

type Shard = Mutex<Generations>;

/// An RRset signed on the fly, with its owner.
#[derive(Debug)]
pub struct Signed {
    pub owner: Name,
    pub set: RRset,
}

/// The per-zone cache and cap of on-the-fly signing.
#[derive(Debug)]
pub struct Online {
    cache: Vec<Shard>,
    bucket: Bucket,
    /// TTL of denial NSECs: the SOA's negative TTL (RFC 9077 §3).
    nsec_ttl: u32,
}

impl Online {
    pub fn new(zone: &Zone, rate: u32) -> Online {
        Online {
            cache: (0..SHARDS).map(|_| Mutex::default()).collect(),
            bucket: Bucket::new(rate),
            nsec_ttl: zone.negative_soa.ttl,
        }
    }
}

thread_local! {
    static PREBUILDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While it lives, this thread builds the fast table's DO=1 answers: nothing is
/// signed on the fly (an answer that would need it is refused as over the cap,
/// uncounted, and left to the general path at query time, which signs it then),
/// so that the table holds only signatures made with the zone.
pub(crate) struct Prebuilding(());

impl Prebuilding {
    pub(crate) fn start() -> Prebuilding {
        PREBUILDING.with(|p| p.set(true));
        Prebuilding(())
    }
}

impl Drop for Prebuilding {
    fn drop(&mut self) {
        PREBUILDING.with(|p| p.set(false));
    }
}

/// Whether this thread builds the fast table's DO=1 answers (see [`Prebuilding`]).
pub(crate) fn prebuilding() -> bool {
    PREBUILDING.with(std::cell::Cell::get)
}

/// The cap on on-the-fly signatures was reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverCap;

/// Where a record of the DO=1 answer comes from.
#[derive(Debug)]
enum Item {
    /// The original answer's record at this index, with its prebuilt RRSIG or not.
    Keep(usize, bool),
    /// Signed on the fly; the owner written as the question's name or as its own.
    Own(Arc<Signed>, bool),
    /// An NSEC of the prebuilt chain, by index.
    Chain(usize),
}

/// The DO=1 form of an answer, decided; [`Plan::apply`] makes it an [`Answer`].
#[derive(Debug)]
pub(crate) struct Plan {
    sections: [Vec<Item>; 3],
    rcode: Option<Rcode>,
}

/// The owner's whole wire name (copied when its zone stores it split).
fn owner_wire<'a>(o: &Owner<'a>, qname: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    match o {
        Owner::Query => std::borrow::Cow::Borrowed(qname),
        Owner::Name(n) => n.to_cow(),
    }
}

impl ZoneSigner {
    /// Decides the DO=1 form of `ans`, the answer `zone` gave for `qname` (lower-cased
    /// wire) and `qtype`.
    pub(crate) fn plan(
        &self,
        zone: &Zone,
        qname: &[u8],
        qtype: u16,
        ans: &Answer<'_>,
        standing: Standing,
    ) -> Result<Plan, OverCap> {
        // A steered answer's RRset is one signature for every client until health
        // changes: it never waits behind a flood.
        let answer_standing = if ans.steer.is_some() {
            Standing::Verified
        } else {
            standing
        };
        let mut plan = Plan {
            sections: [Vec::new(), Vec::new(), Vec::new()],
            rcode: ans.rcode,
        };
        // Walking the chain: an NSEC query at a name of the chain gets its NSEC,
        // as the data at the name (a CNAME there is not followed; RFC 4035 §2.5).
        if let Some(k) = self
            .chain
            .as_ref()
            .filter(|_| qtype == rtype::NSEC)
            .and_then(|c| c.at(qname))
        {
            plan.rcode = Some(Rcode::NoError);
            plan.sections[0].push(Item::Chain(k));
            return Ok(plan);
        }
        // Answer: one RRSIG per RRset; records of one owner and type that came as
        // several pieces (endpoints, single addresses) are one RRset, signed here.
        let recs = &ans.answer;
        let mut wildcard_proofs: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        while i < recs.len() {
            let owner = owner_wire(&recs[i].owner, qname);
            let t = recs[i].set.rtype_nz();
            let mut j = i + 1;
            while j < recs.len()
                && recs[j].set.rtype_nz() == t
                && owner_wire(&recs[j].owner, qname) == owner
            {
                j += 1;
            }
            let r = &recs[i];
            let whole = j == i + 1 && r.take as usize >= r.set.rdatas().len();
            let labels = r.set.rrsig(self.name()).and_then(|s| s.labels());
            let exact = labels == Some(sign::labels(&owner));
            // With an NSEC chain a wildcard answer keeps the wildcard's RRSIG and
            // proves that the query name does not exist (RFC 4035 §3.1.3.3).
            let wildcard = self.chain.is_some() && labels.is_some_and(|l| l < sign::labels(&owner));
            if whole && (exact || wildcard) {
                plan.sections[0].push(Item::Keep(i, true));
                if wildcard {
                    wildcard_proofs.push(owner.to_vec());
                }
            } else {
                let mut rdatas: Vec<Box<[u8]>> = Vec::new();
                let mut ttl = u32::MAX;
                for r in &recs[i..j] {
                    ttl = ttl.min(r.set.ttl);
                    for rd in r.set.rdatas().iter().take(r.take as usize) {
                        if !rdatas.iter().any(|x| **x == *rd) {
                            rdatas.push(rd.into());
                        }
                    }
                }
                let set = RRset::new(t, class::IN, ttl, rdatas);
                let signed = self.signed(&owner, set, answer_standing)?;
                plan.sections[0].push(Item::Own(signed, matches!(r.owner, Owner::Query)));
            }
            i = j;
        }
        // Authority: prebuilt RRSIGs (SOA, DS); a negative answer gets its NSEC; a
        // referral without DS gets the NSEC that proves there is none.
        let mut denial = false;
        for (k, r) in ans.authority.iter().enumerate() {
            let negative = std::ptr::eq(r.set, &zone.negative_soa);
            denial |= negative;
            plan.sections[1].push(Item::Keep(k, r.set.rrsig(self.name()).is_some()));
            if r.set.rtype() == rtype::NS {
                if let Owner::Name(stored) = r.owner {
                    let cut = &*stored.to_cow();
                    let has_ds = ans.authority.iter().any(|x| {
                        x.set.rtype() == rtype::DS && matches!(x.owner, Owner::Name(n) if n.is(cut))
                    });
                    if cut != zone.origin.wire() && !has_ds {
                        match self.chain.as_ref().and_then(|c| c.at(cut)) {
                            Some(k) => plan.sections[1].push(Item::Chain(k)),
                            None => {
                                let types = [rtype::NS, rtype::RRSIG, rtype::NSEC];
                                let nsec = self.nsec(cut, &types, standing)?;
                                plan.sections[1].push(Item::Own(nsec, false));
                            }
                        }
                    }
                }
            }
        }
        if denial {
            // The name denied: the query name, or the last CNAME's target.
            let target = match ans.answer.last() {
                Some(r) if r.set.rtype() == rtype::CNAME => r.set.targets().next(),
                _ => None,
            };
            let denied: &[u8] = target.as_deref().unwrap_or(qname);
            if let Some(chain) = &self.chain {
                if let Some(items) =
                    chain_denial(chain, zone, &self.steered_types, denied, qtype, ans.rcode)
                {
                    plan.sections[1].extend(items);
                    for (k, r) in ans.additional.iter().enumerate() {
                        plan.sections[2].push(Item::Keep(k, r.set.rrsig(self.name()).is_some()));
                    }
                    return Ok(plan);
                }
            }
            let types = if ans.rcode == Some(Rcode::NxDomain) {
                // RFC 9824 §3.2: NXDOMAIN becomes NOERROR with an NSEC at the name
                // whose bitmap holds NXNAME.
                plan.rcode = Some(Rcode::NoError);
                vec![rtype::RRSIG, rtype::NSEC, rtype::NXNAME]
            } else {
                let mut t = types_at(zone, &self.steered_types, denied);
                // NODATA: the type asked for, and a CNAME, must be absent (RFC 4035 §5.4).
                t.retain(|&x| x != qtype && x != rtype::CNAME);
                t.extend([rtype::RRSIG, rtype::NSEC]);
                t
            };
            let nsec = self.nsec(denied, &types, standing)?;
            plan.sections[1].push(Item::Own(nsec, denied == qname));
        }
        if let Some(chain) = &self.chain {
            for owner in &wildcard_proofs {
                if let Some(k) = chain.covering(owner) {
                    plan.sections[1].push(Item::Chain(k));
                }
            }
        }
        for (k, r) in ans.additional.iter().enumerate() {
            plan.sections[2].push(Item::Keep(k, r.set.rrsig(self.name()).is_some()));
        }
        Ok(plan)
    }

    /// A compact-denial NSEC at `owner`: next name `\000.owner`, the owner's
    /// immediate successor in canonical order (RFC 4470 §3, RFC 9824 §3).
    fn nsec(
        &self,
        owner: &[u8],
        types: &[u16],
        standing: Standing,
    ) -> Result<Arc<Signed>, OverCap> {
        let mut rd = Vec::with_capacity(owner.len() + 2 + 8);
        if owner.len() + 2 <= name::MAX_NAME_LEN {
            rd.extend_from_slice(&[1, 0]);
        }
        rd.extend_from_slice(owner);
        rd.extend_from_slice(&type_bitmap(types));
        let set = RRset::new(
            rtype::nz::NSEC,
            class::IN,
            self.online.nsec_ttl,
            vec![rd.into()],
        );
        self.signed(owner, set, standing)
    }

    /// `set` at `owner` with its RRSIGs: from the cache, or signed now if the
    /// budget allows it for `standing`.
    fn signed(
        &self,
        owner: &[u8],
        mut set: RRset,
        standing: Standing,
    ) -> Result<Arc<Signed>, OverCap> {
        if prebuilding() {
            return Err(OverCap);
        }
        let mut key = Vec::with_capacity(owner.len() + 8 + set.wire_len_compressed());
        key.extend_from_slice(owner);
        key.extend_from_slice(&set.rtype().to_be_bytes());
        key.extend_from_slice(&set.ttl.to_be_bytes());
        for rr in set.rdatas().wire() {
            key.extend_from_slice(rr);
        }
        let shard =
            &self.online.cache[(rustc_hash::FxBuildHasher.hash_one(&key) as usize) % SHARDS];
        if let Some(hit) = shard.lock().ok().and_then(|mut c| c.get(key.as_slice())) {
            return Ok(hit);
        }
        if !self.online.bucket.take(standing) {
            OVER_CAP.fetch_add(1, Relaxed);
            if standing == Standing::Newcomer {
                let h = super::budget::history();
                h.pressure(h.now());
            }
            return Err(OverCap);
        }
        let Some(owner_name) = Name::from_wire(owner) else {
            return Err(OverCap);
        };
        let keys = self.zsk();
        sign::sign_set(&keys, owner, &mut set, self.window).map_err(|_| OverCap)?;
        SIGNED.fetch_add(keys.len() as u64, Relaxed);
        let signed = Arc::new(Signed {
            owner: owner_name,
            set,
        });
        if let Ok(mut c) = shard.lock() {
            c.insert(key.into_boxed_slice(), signed.clone());
        }
        Ok(signed)
    }
}

use std::hash::BuildHasher as _;

/// The chain's proof for a negative answer at `denied` (RFC 4035 §3.1.3): `None`
/// where the chain cannot say it (a steered name's NODATA for a type other
/// clients get), which then takes a compact NSEC signed on the fly.
fn chain_denial(
    chain: &sign::NsecChain,
    zone: &Zone,
    steered_types: &[Vec<u16>],
    denied: &[u8],
    qtype: u16,
    rcode: Option<Rcode>,
) -> Option<Vec<Item>> {
    let mut items: Vec<Item> = Vec::new();
    let mut add = |k: Option<usize>| {
        if let Some(k) = k {
            if !items.iter().any(|i| matches!(i, Item::Chain(x) if *x == k)) {
                items.push(Item::Chain(k));
            }
        }
    };
    // The closest encloser and the wildcard below it (RFC 4592 §3.3.1).
    let ce = name::label_offsets(denied)
        .find(|&o| zone.nodes.contains_key(&denied[o..]))
        .unwrap_or(denied.len() - 1);
    let mut wild = b"\x01*".to_vec();
    wild.extend_from_slice(&denied[ce..]);
    if rcode == Some(Rcode::NxDomain) {
        // No such name, and no wildcard that could have answered.
        add(chain.covering(denied));
        add(chain.covering(&wild));
        return Some(items);
    }
    match zone.nodes.get(denied) {
        Some(node) => {
            if node.steer().is_some() && types_at(zone, steered_types, denied).contains(&qtype) {
                return None;
            }
            // NODATA at a name with data: its own NSEC; at an empty non-terminal,
            // the NSEC before it, whose next name lies below it.
            add(chain.at(denied).or_else(|| chain.covering(denied)));
        }
        None => {
            // Wildcard NODATA: no such name, and the wildcard lacks the type.
            add(chain.covering(denied));
            add(chain.at(&wild));
        }
    }
    Some(items)
}

/// The types at `name` as an NSEC would list them: its RRsets, or the wildcard's
/// that answers for it, and the types its steering gives.
fn types_at(zone: &Zone, steered_types: &[Vec<u16>], name: &[u8]) -> Vec<u16> {
    let node = zone.nodes.get(name).or_else(|| {
        // The closest encloser's wildcard (RFC 4592 §3.3.1).
        let ce = name::label_offsets(name)
            .skip(1)
            .find(|&o| zone.nodes.contains_key(&name[o..]))?;
        let mut wild = b"\x01*".to_vec();
        wild.extend_from_slice(&name[ce..]);
        zone.nodes.get(wild.as_slice())
    });
    let Some(node) = node else {
        return Vec::new();
    };
    let mut t: Vec<u16> = node.rrsets.iter().map(|s| s.rtype()).collect();
    if let Some(s) = node.steer().and_then(|i| steered_types.get(i as usize)) {
        t.extend_from_slice(s);
    }
    t
}

impl Plan {
    /// The DO=1 answer: `orig`'s records, with RRSIGs, and those signed on the fly.
    pub(crate) fn apply<'p>(&'p self, orig: &Answer<'p>, signer: &'p ZoneSigner) -> Answer<'p> {
        let mut out = Answer {
            rcode: self.rcode,
            authoritative: orig.authoritative,
            glue_required: orig.glue_required,
            ..Answer::default()
        };
        let srcs = [&orig.answer, &orig.authority, &orig.additional];
        for (s, items) in self.sections.iter().enumerate() {
            let dst = match s {
                0 => &mut out.answer,
                1 => &mut out.authority,
                _ => &mut out.additional,
            };
            for it in items {
                match it {
                    Item::Keep(i, with_sig) => {
                        if let Some(r) = srcs[s].get(*i) {
                            let mut r = *r;
                            if *with_sig {
                                r.sig = r.set.rrsig(signer.name());
                            }
                            dst.push(r);
                        }
                    }
                    Item::Chain(k) => {
                        if let Some((owner, set)) = signer.chain.as_ref().and_then(|c| c.entry(*k))
                        {
                            dst.push(Rec {
                                owner: Owner::Name(owner.wire().into()),
                                set,
                                take: u16::MAX,
                                sig: set.rrsig(signer.name()),
                            });
                        }
                    }
                    Item::Own(signed, as_query) => dst.push(Rec {
                        owner: if *as_query {
                            Owner::Query
                        } else {
                            Owner::Name(signed.owner.wire().into())
                        },
                        set: &signed.set,
                        take: u16::MAX,
                        sig: signed.set.rrsig(signer.name()),
                    }),
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn entry(i: usize) -> (Box<[u8]>, Arc<Signed>) {
        let owner = Name::from_wire(b"\x01a\x00").expect("name");
        let set = RRset::new(rtype::nz::TXT, class::IN, 60, vec![vec![1, b'x'].into()]);
        (
            i.to_be_bytes().to_vec().into_boxed_slice(),
            Arc::new(Signed { owner, set }),
        )
    }

    #[test]
    fn a_full_cache_lets_go_of_the_coldest_only() {
        let mut g = Generations::default();
        let (hot_key, v) = entry(usize::MAX);
        g.insert(hot_key.clone(), v);
        for i in 0..SHARD_ENTRIES * 3 {
            let (k, v) = entry(i);
            g.insert(k, v);
            // One entry asked for all the time stays.
            if i % 100 == 0 {
                assert!(g.get(&hot_key).is_some(), "lost at {i}");
            }
        }
        assert!(g.get(&hot_key).is_some());
        // Bounded: two generations at most.
        assert!(g.len() <= 2 * SHARD_ENTRIES);
        // What was never asked for again is gone; the newest is there.
        assert!(g.get(&entry(0).0).is_none());
        assert!(g.get(&entry(SHARD_ENTRIES * 3 - 1).0).is_some());
    }
}
