//! Zone transfers out, the bytes: AXFR (RFC 5936) and IXFR (RFC 1995) messages
//! built from the snapshot (`server::xfr` sends them over TCP and DoT).
//!
//! A transfer is allowed by `[transfer]` (see `config::transfer`): the client's
//! address in `allow` and/or a TSIG key of `keys` (RFC 8945, `zone::tsig`); nothing
//! is transferred to anyone otherwise (REFUSED, counted). What is transferred is
//! what the zone serves: its records (with their RRSIGs, the DNSKEYs and the NSEC
//! chain when the zone is signed with one), and for each steered name of a
//! policy zone its stand-in (`standin`): the A/AAAA/CNAME records a client with no
//! known location gets with every region up, or nothing. The SOA comes first and
//! last; messages are filled up to 64 KiB, owner names compressed; each is signed
//! when the request was.
//!
//! IXFR answers from the snapshot's [`Journal`], the differences between the
//! serials signpost has served since it started (bounded by `transfer.journal`),
//! condensed one per reload; when it does not reach back to the client's serial,
//! the answer is the whole zone (RFC 1995 §4).

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

pub use super::transfer::{
    Diff, Journal, Rr, Standin, TransferConfig, ZoneTransfer, DEFAULT_JOURNAL,
};

use crate::dnssec::ZoneSigner;
use crate::policy::ZoneSteering;
use crate::zone::{name, rtype, Name, Owner, RRset, Records, Sigs, ZoneSet};

/// What transfers are answered from: the parts of the serving snapshot they
/// read.
#[derive(Clone, Copy)]
pub struct Source<'s> {
    pub zones: &'s ZoneSet,
    /// Each zone's steering, by the zone's index.
    pub steering: &'s [ZoneSteering],
    pub signers: &'s FxHashMap<Name, Arc<ZoneSigner>>,
    pub transfer: &'s TransferConfig,
    pub journal: &'s Journal,
}

impl<'s> Source<'s> {
    /// What zone transfers read of the serving snapshot.
    pub fn of(snap: &'s super::snapshot::Snapshot) -> Source<'s> {
        Source {
            zones: &snap.zones,
            steering: &snap.steering,
            signers: &snap.signers,
            transfer: &snap.transfer,
            journal: &snap.journal,
        }
    }
}

/// Transfer counters, for the metrics page.
#[derive(Debug, Default)]
pub struct Counters {
    pub axfr: AtomicU64,
    pub ixfr: AtomicU64,
    /// IXFR requests answered with the whole zone (journal too short).
    pub ixfr_fallback: AtomicU64,
    /// Refused: not allowed by address or key, or no such zone.
    pub refused: AtomicU64,
    /// Signed requests that failed their TSIG check.
    pub tsig_failed: AtomicU64,
}

pub(crate) static COUNTERS: Counters = Counters {
    axfr: AtomicU64::new(0),
    ixfr: AtomicU64::new(0),
    ixfr_fallback: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    tsig_failed: AtomicU64::new(0),
};

/// The largest message of a transfer (the TCP length prefix's limit).
const MAX_MESSAGE: usize = 65535;

fn push_set(out: &mut Vec<Rr>, owner: &[u8], set: Records<'_>, take: usize) {
    for w in set.wire().take(take) {
        out.push(Rr {
            owner: owner.into(),
            tail: w.into(),
        });
    }
}

/// The RRSIG records `sigs` at `owner`.
fn push_sigs(out: &mut Vec<Rr>, owner: &[u8], sigs: Sigs<'_>) {
    for r in sigs.wire() {
        let mut tail = Vec::new();
        r.write(&mut tail);
        out.push(Rr {
            owner: owner.into(),
            tail: tail.into(),
        });
    }
}

/// `set` at `owner` and its RRSIGs, signed by `signer` (the zone's name).
fn push_signed(out: &mut Vec<Rr>, owner: &[u8], set: &RRset, signer: &[u8]) {
    push_set(out, owner, set.rdatas(), usize::MAX);
    if let Some(sig) = set.rrsig(signer) {
        push_sigs(out, owner, sig);
    }
}

/// Every record a transfer of zone `zi` carries, its SOA first (once).
pub(crate) fn zone_records(snap: Source<'_>, zi: usize, standin: Standin) -> Option<Vec<Rr>> {
    let zone = snap.zones.zones().get(zi)?;
    let origin = zone.origin.wire();
    let soa = zone.nodes.get(origin)?.get(rtype::SOA)?;
    let mut out = Vec::with_capacity(zone.record_count() + 8);
    push_signed(&mut out, origin, soa, origin);
    for (owner, node) in zone.nodes.iter() {
        let mut buf = [0u8; crate::zone::name::MAX_NAME_LEN];
        let owner = owner.whole(&mut buf);
        for set in &node.rrsets {
            let policy_answers = node.steer().is_some()
                && matches!(set.rtype(), rtype::A | rtype::AAAA | rtype::CNAME);
            if (set.rtype() == rtype::SOA && owner == origin) || policy_answers {
                continue;
            }
            push_signed(&mut out, owner, set, origin);
        }
        if node.steer().is_some() && standin == Standin::Default {
            standins(snap, zi, owner, &mut out);
        }
    }
    if let Some(chain) = snap
        .signers
        .get(&zone.origin)
        .and_then(|s| s.chain.as_ref().or(s.transfer_chain.as_ref()))
    {
        for (n, set) in chain.iter() {
            push_signed(&mut out, n.wire(), set, origin);
        }
    }
    Some(out)
}

/// The stand-in of the steered name `owner` of zone `zi`: what a client with
/// no known location is answered with every region up, for A and AAAA (a
/// CNAME once).
fn standins(snap: Source<'_>, zi: usize, owner: &[u8], out: &mut Vec<Rr>) {
    use crate::policy::{AllUp, Client, NoTrace};
    let client = Client {
        addr: IpAddr::from([0, 0, 0, 0]),
        location: Default::default(),
        source_prefix: 0,
    };
    let (Some(zone), Some(steering)) = (snap.zones.zones().get(zi), snap.steering.get(zi)) else {
        return;
    };
    let mut seen = FxHashSet::default();
    for qtype in [rtype::A, rtype::AAAA] {
        let mut answer = zone.lookup(owner, qtype, true);
        let Some((i, at)) = answer.steer else {
            continue;
        };
        let Some(p) = steering.names.get(i as usize) else {
            continue;
        };
        let d = crate::policy::decide(&steering.policy, p, &client, &AllUp, qtype, 0, &mut NoTrace);
        crate::answer::handler::apply_decision(zone, p, at, &d.outcome, qtype, &AllUp, &mut answer);
        for r in answer.answer.iter() {
            if !matches!(r.owner, Owner::Query) || !seen.insert(r.set.rtype()) {
                continue;
            }
            push_set(out, owner, r.set.rdatas(), r.take as usize);
            if let Some(sig) = r.sig.or(r.set.rrsig(zone.origin.wire())) {
                push_sigs(out, owner, sig);
            }
        }
    }
}

/// Whether serial `a` is before `b` (RFC 1982).
pub(crate) fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// The journal that follows `old`'s in `new`: for each zone transferred out
/// whose serial went up, the difference between what the two transfer. Also
/// returns the zones whose serial changed (for NOTIFY).
pub(crate) fn carry_journal(new: Source<'_>, old: Source<'_>) -> (Journal, Vec<Name>) {
    let mut journal = old.journal.clone();
    let mut changed = Vec::new();
    let keep = new.transfer.journal;
    for (zi, z) in new.zones.zones().iter().enumerate() {
        let settings = new.transfer.zone(&z.origin);
        let Some(oi) = old.zones.zones().iter().position(|o| o.origin == z.origin) else {
            continue;
        };
        let before = old.zones.zones()[oi].serial;
        if before == z.serial {
            continue;
        }
        changed.push(z.origin.clone());
        let entry = journal.zones.entry(z.origin.clone()).or_default();
        if !serial_lt(before, z.serial) || !settings.enabled() || keep == 0 {
            // A serial going back (the file's, against the RFC) or no IXFR:
            // secondaries take the whole zone.
            entry.clear();
            continue;
        }
        let (Some(mut a), Some(mut b)) = (
            zone_records(old, oi, old.transfer.zone(&z.origin).standin),
            zone_records(new, zi, settings.standin),
        ) else {
            entry.clear();
            continue;
        };
        let from_soa = a.remove(0);
        let to_soa = b.remove(0);
        let aset: FxHashSet<&Rr> = a.iter().collect();
        let bset: FxHashSet<&Rr> = b.iter().collect();
        let removed: Vec<Rr> = a.iter().filter(|r| !bset.contains(r)).cloned().collect();
        let added: Vec<Rr> = b.iter().filter(|r| !aset.contains(r)).cloned().collect();
        // A difference the size of the zone (a signed zone's new signatures) is
        // no cheaper than the zone: not kept, and the journal holds at most
        // twice the zone's records in all.
        let size = removed.len() + added.len();
        if size > b.len() {
            entry.clear();
            continue;
        }
        let mut total: usize = entry.iter().map(|d| d.len()).sum::<usize>() + size;
        while total > 2 * b.len().max(1) {
            let Some(d) = entry.pop_front() else {
                break;
            };
            total -= d.len();
        }
        entry.push_back(Arc::new(Diff {
            from_soa,
            to_soa,
            removed,
            added,
        }));
        while entry.len() > keep {
            entry.pop_front();
        }
    }
    (journal, changed)
}

/// What a transfer request asks for.
pub(crate) struct Request {
    pub(crate) id: u16,
    /// The question as the client wrote it (name, type, class), for the echo.
    pub(crate) question: Vec<u8>,
    /// The zone, lower-cased.
    pub(crate) zone: Vec<u8>,
    pub(crate) qtype: u16,
    /// IXFR: the client's serial, from the SOA in the authority section.
    pub(crate) serial: Option<u32>,
}

/// The question type of a query, when it is AXFR or IXFR: the transports hand
/// such messages to [`serve`] rather than to the answer path.
pub(crate) fn is_transfer(msg: &[u8]) -> bool {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || (msg[2] >> 3) & 0x0f != 0 || msg[4..6] != [0, 1] {
        return false;
    }
    let Some(n) = name::wire_name_len(&msg[12..]) else {
        return false;
    };
    matches!(msg.get(12 + n..14 + n), Some(&[0, 251]) | Some(&[0, 252]))
}

pub(crate) fn parse(msg: &[u8]) -> Option<Request> {
    let n = name::wire_name_len(msg.get(12..)?)?;
    let question = msg.get(12..12 + n + 4)?.to_vec();
    let mut zone = question[..n].to_vec();
    name::lowercase_wire(&mut zone);
    let qtype = u16::from_be_bytes([question[n], question[n + 1]]);
    let mut serial = None;
    if qtype == rtype::IXFR && msg.get(8..10)? != [0, 0] {
        // The authority SOA: owner (often a pointer), header, MNAME, RNAME, SERIAL.
        let mut pos = 12 + n + 4;
        pos += skip_name(msg, pos)? + 10;
        pos += skip_name(msg, pos)?;
        pos += skip_name(msg, pos)?;
        let s = msg.get(pos..pos + 4)?;
        serial = Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    }
    Some(Request {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        question,
        zone,
        qtype,
        serial,
    })
}

pub(crate) fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xC0 {
            0x00 if b == 0 => return Some(pos + 1 - start),
            0x00 => pos += 1 + b as usize,
            0xC0 => return Some(pos + 2 - start),
            _ => return None,
        }
        if pos - start > 255 {
            return None;
        }
    }
}

/// Fills messages of one answer: header, the question in the first, records
/// until the next would pass the size limit.
pub(crate) struct Messages<'r> {
    pub(crate) id: u16,
    pub(crate) question: &'r [u8],
    /// Room kept for the TSIG record.
    pub(crate) limit: usize,
    pub(crate) msg: Vec<u8>,
    pub(crate) count: u16,
    /// Suffixes written in this message and where.
    pub(crate) names: FxHashMap<&'r [u8], u16>,
    pub(crate) first: bool,
}

impl<'r> Messages<'r> {
    pub(crate) fn new(id: u16, question: &'r [u8], reserve: usize) -> Messages<'r> {
        let mut m = Messages {
            id,
            question,
            limit: MAX_MESSAGE - reserve,
            msg: Vec::with_capacity(MAX_MESSAGE),
            count: 0,
            names: FxHashMap::default(),
            first: true,
        };
        m.start();
        m
    }

    pub(crate) fn start(&mut self) {
        self.msg.clear();
        self.names.clear();
        self.count = 0;
        self.msg.extend_from_slice(&self.id.to_be_bytes());
        // QR, AA; opcode 0, rcode 0.
        self.msg.extend_from_slice(&[0x84, 0x00]);
        let qd = u16::from(self.first);
        self.msg.extend_from_slice(&qd.to_be_bytes());
        self.msg.extend_from_slice(&[0; 6]);
        if self.first {
            self.msg.extend_from_slice(self.question);
        }
    }

    /// Adds `rr`; returns a full message to send first when it did not fit.
    pub(crate) fn add(&mut self, rr: &'r Rr) -> Result<Option<Vec<u8>>, ()> {
        let mark = self.msg.len();
        self.write(rr);
        if self.msg.len() <= self.limit {
            self.count += 1;
            return Ok(None);
        }
        // Take it back, send what is there, start over with it.
        self.msg.truncate(mark);
        self.names.retain(|_, &mut at| (at as usize) < mark);
        if self.count == 0 {
            return Err(());
        }
        let full = self.finish();
        self.write(rr);
        if self.msg.len() > self.limit {
            return Err(());
        }
        self.count += 1;
        Ok(Some(full))
    }

    fn write(&mut self, rr: &'r Rr) {
        let owner: &'r [u8] = &rr.owner;
        let start = self.msg.len();
        let mut written = false;
        for o in name::label_offsets(owner) {
            let suffix = &owner[o..];
            if let Some(&ptr) = self.names.get(suffix) {
                self.msg.extend_from_slice(&owner[..o]);
                self.msg.extend_from_slice(&(0xC000 | ptr).to_be_bytes());
                written = true;
                // Remember the new prefixes before the pointer.
                for p in name::label_offsets(&owner[..o]) {
                    self.remember(&owner[p..], start + p);
                }
                break;
            }
        }
        if !written {
            self.msg.extend_from_slice(owner);
            for p in name::label_offsets(owner) {
                self.remember(&owner[p..], start + p);
            }
        }
        self.msg.extend_from_slice(&rr.tail);
    }

    fn remember(&mut self, suffix: &'r [u8], at: usize) {
        if at < 0x3FFF {
            self.names.entry(suffix).or_insert(at as u16);
        }
    }

    /// The message so far, ready to send; the next one starts.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.msg[6..8].copy_from_slice(&self.count.to_be_bytes());
        let done = std::mem::take(&mut self.msg);
        self.msg = Vec::with_capacity(MAX_MESSAGE);
        self.first = false;
        self.start();
        done
    }
}

/// A short answer (REFUSED, NOTAUTH, FORMERR) to a transfer request.
pub(crate) fn short_answer(msg: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&msg[..2]);
    out.push(0x80 | (msg[2] & 0x79));
    out.push(rcode);
    let question =
        name::wire_name_len(msg.get(12..).unwrap_or(&[])).and_then(|n| msg.get(12..12 + n + 4));
    out.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        out.extend_from_slice(q);
    }
    out
}
