//! Zone transfers out over TCP and DoT: AXFR (RFC 5936) and IXFR (RFC 1995).
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

use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::config::transfer::{Standin, TransferConfig};
use crate::dnssec::ZoneSigner;
use crate::policy::ZoneSteering;
use crate::zone::tsig::{self, ResponseSigner};
use crate::zone::{name, rtype, Name, Owner, RRset, ZoneSet};

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

pub static COUNTERS: Counters = Counters {
    axfr: AtomicU64::new(0),
    ixfr: AtomicU64::new(0),
    ixfr_fallback: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    tsig_failed: AtomicU64::new(0),
};

/// The largest message of a transfer (the TCP length prefix's limit).
const MAX_MESSAGE: usize = 65535;

/// One record of a transfer: the owner (uncompressed, lower-cased wire) and what
/// follows it on the wire (TYPE, CLASS, TTL, RDLENGTH, RDATA).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rr {
    pub owner: Box<[u8]>,
    pub tail: Box<[u8]>,
}

impl Rr {
    /// The SOA serial, for an SOA record.
    fn soa_serial(&self) -> Option<u32> {
        let rd = self.tail.get(10..)?;
        let m = name::wire_name_len(rd)?;
        let r = name::wire_name_len(&rd[m..])?;
        let s = rd.get(m + r..m + r + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

fn push_set(out: &mut Vec<Rr>, owner: &[u8], set: &RRset, take: usize) {
    for w in set.rdatas.wire().take(take) {
        out.push(Rr {
            owner: owner.into(),
            tail: w.into(),
        });
    }
}

fn push_signed(out: &mut Vec<Rr>, owner: &[u8], set: &RRset) {
    push_set(out, owner, set, usize::MAX);
    if let Some(sig) = &set.rrsig {
        push_set(out, owner, sig, usize::MAX);
    }
}

/// Every record a transfer of zone `zi` carries, its SOA first (once).
pub fn zone_records(snap: Source<'_>, zi: usize, standin: Standin) -> Option<Vec<Rr>> {
    let zone = snap.zones.zones().get(zi)?;
    let origin = zone.origin.wire();
    let soa = zone.nodes.get(origin)?.get(rtype::SOA)?;
    let mut out = Vec::with_capacity(zone.record_count() + 8);
    push_signed(&mut out, origin, soa);
    for (owner, node) in zone.nodes.iter() {
        for set in &node.rrsets {
            let policy_answers =
                node.steer.is_some() && matches!(set.rtype, rtype::A | rtype::AAAA | rtype::CNAME);
            if (set.rtype == rtype::SOA && owner == origin) || policy_answers {
                continue;
            }
            push_signed(&mut out, owner, set);
        }
        if node.steer.is_some() && standin == Standin::Default {
            standins(snap, zi, owner, &mut out);
        }
    }
    if let Some(chain) = snap
        .signers
        .get(&zone.origin)
        .and_then(|s| s.chain.as_ref())
    {
        for (n, set) in chain.iter() {
            push_signed(&mut out, n.wire(), set);
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
        super::handler::apply_decision(zone, p, at, &d.outcome, qtype, &AllUp, &mut answer);
        for r in answer.answer.iter() {
            if !matches!(r.owner, Owner::Query) || !seen.insert(r.set.rtype) {
                continue;
            }
            push_set(out, owner, r.set, r.take as usize);
            if let Some(sig) = r.sig.or(r.set.rrsig.as_deref()) {
                push_set(out, owner, sig, usize::MAX);
            }
        }
    }
}

/// The differences of one zone between two serials signpost served.
#[derive(Debug)]
pub struct Diff {
    pub from_soa: Rr,
    pub to_soa: Rr,
    pub removed: Vec<Rr>,
    pub added: Vec<Rr>,
}

impl Diff {
    /// Records removed and added.
    fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }

    fn from(&self) -> Option<u32> {
        self.from_soa.soa_serial()
    }
}

/// Each zone's recent differences, oldest first. Immutable in a snapshot; a
/// reload makes the next one from the last (see [`carry_journal`]).
#[derive(Debug, Default, Clone)]
pub struct Journal {
    zones: FxHashMap<Name, VecDeque<Arc<Diff>>>,
}

impl Journal {
    /// The differences from `serial` to the zone's current one, if the journal
    /// reaches back to it.
    fn since(&self, zone: &Name, serial: u32) -> Option<Vec<Arc<Diff>>> {
        let diffs = self.zones.get(zone)?;
        let start = diffs.iter().position(|d| d.from() == Some(serial))?;
        Some(diffs.iter().skip(start).cloned().collect())
    }
}

/// Whether serial `a` is before `b` (RFC 1982).
pub fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// The journal that follows `old`'s in `new`: for each zone transferred out
/// whose serial went up, the difference between what the two transfer. Also
/// returns the zones whose serial changed (for NOTIFY).
pub fn carry_journal(new: Source<'_>, old: Source<'_>) -> (Journal, Vec<Name>) {
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
struct Request {
    id: u16,
    /// The question as the client wrote it (name, type, class), for the echo.
    question: Vec<u8>,
    /// The zone, lower-cased.
    zone: Vec<u8>,
    qtype: u16,
    /// IXFR: the client's serial, from the SOA in the authority section.
    serial: Option<u32>,
}

/// The question type of a query, when it is AXFR or IXFR: the transports hand
/// such messages to [`serve`] rather than to the answer path.
pub fn is_transfer(msg: &[u8]) -> bool {
    if msg.len() < 12 || msg[2] & 0x80 != 0 || (msg[2] >> 3) & 0x0f != 0 || msg[4..6] != [0, 1] {
        return false;
    }
    let Some(n) = name::wire_name_len(&msg[12..]) else {
        return false;
    };
    matches!(msg.get(12 + n..14 + n), Some(&[0, 251]) | Some(&[0, 252]))
}

fn parse(msg: &[u8]) -> Option<Request> {
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

fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
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
struct Messages<'r> {
    id: u16,
    question: &'r [u8],
    /// Room kept for the TSIG record.
    limit: usize,
    msg: Vec<u8>,
    count: u16,
    /// Suffixes written in this message and where.
    names: FxHashMap<&'r [u8], u16>,
    first: bool,
}

impl<'r> Messages<'r> {
    fn new(id: u16, question: &'r [u8], reserve: usize) -> Messages<'r> {
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

    fn start(&mut self) {
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
    fn add(&mut self, rr: &'r Rr) -> Result<Option<Vec<u8>>, ()> {
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
    fn finish(&mut self) -> Vec<u8> {
        self.msg[6..8].copy_from_slice(&self.count.to_be_bytes());
        let done = std::mem::take(&mut self.msg);
        self.msg = Vec::with_capacity(MAX_MESSAGE);
        self.first = false;
        self.start();
        done
    }
}

/// A short answer (REFUSED, NOTAUTH, FORMERR) to a transfer request.
fn short_answer(msg: &[u8], rcode: u8) -> Vec<u8> {
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

async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    msg: &[u8],
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    let write = async {
        stream.write_all(&framed).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Answers one AXFR or IXFR request from `peer` on `stream`, in as many messages
/// as it takes. An error is the connection's end (a write failed or timed out).
pub async fn serve<S: AsyncWrite + Unpin>(
    snap: Source<'_>,
    msg: &[u8],
    peer: IpAddr,
    stream: &mut S,
    write_timeout: std::time::Duration,
) -> std::io::Result<()> {
    let now = crate::clock::unix_now();
    let Some(req) = parse(msg) else {
        COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
        return send(stream, &short_answer(msg, 1), write_timeout).await;
    };
    let keys = &snap.transfer.keys;
    let mut signer: Option<ResponseSigner<'_>> = None;
    let mut key_name = None;
    match tsig::verify_request(msg, keys, now) {
        Ok(None) => {}
        Ok(Some(v)) => {
            key_name = Some(v.key.name.clone());
            signer = Some(v.signer);
        }
        Err(rejected) => {
            COUNTERS.tsig_failed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, failure = %rejected.failure, "transfer refused: TSIG");
            let mut out = short_answer(msg, 0);
            tsig::error_response(&mut out, rejected, now);
            return send(stream, &out, write_timeout).await;
        }
    }
    let zi = snap
        .zones
        .zones()
        .iter()
        .position(|z| z.origin.wire() == req.zone.as_slice());
    let allowed = zi.and_then(|zi| {
        let zone = &snap.zones.zones()[zi];
        let settings = snap.transfer.zone(&zone.origin);
        settings
            .admits(peer, key_name.as_ref())
            .then_some((zi, zone, settings))
    });
    let Some((zi, zone, settings)) = allowed else {
        COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(%peer, key = ?key_name.as_ref().map(|k| k.to_string()), "transfer refused");
        let mut out = short_answer(msg, 5);
        if let Some(s) = signer.as_mut() {
            s.sign(&mut out, now);
        }
        return send(stream, &out, write_timeout).await;
    };
    let Some(records) = zone_records(snap, zi, settings.standin) else {
        return send(stream, &short_answer(msg, 2), write_timeout).await;
    };
    let soa = &records[0];
    // IXFR: the differences, a lone SOA when the client is current, or the
    // whole zone.
    let mut plan: Vec<Cow<'_, Rr>> = Vec::new();
    let diffs;
    let mut incremental = false;
    if let (rtype::IXFR, Some(serial)) = (req.qtype, req.serial) {
        if serial == zone.serial || !serial_lt(serial, zone.serial) {
            plan.push(Cow::Borrowed(soa));
            incremental = true;
        } else if let Some(d) = snap.journal.since(&zone.origin, serial) {
            diffs = d;
            plan.push(Cow::Borrowed(soa));
            for d in &diffs {
                plan.push(Cow::Borrowed(&d.from_soa));
                plan.extend(d.removed.iter().map(Cow::Borrowed));
                plan.push(Cow::Borrowed(&d.to_soa));
                plan.extend(d.added.iter().map(Cow::Borrowed));
            }
            plan.push(Cow::Borrowed(soa));
            incremental = true;
        } else {
            COUNTERS.ixfr_fallback.fetch_add(1, Ordering::Relaxed);
        }
    }
    if incremental {
        COUNTERS.ixfr.fetch_add(1, Ordering::Relaxed);
    } else {
        COUNTERS.axfr.fetch_add(1, Ordering::Relaxed);
        plan.extend(records.iter().map(Cow::Borrowed));
        plan.push(Cow::Borrowed(soa));
    }
    let reserve = signer
        .as_ref()
        .and(key_name.as_ref())
        .and_then(|n| keys.named(n))
        .map_or(0, tsig::overhead);
    let mut messages = Messages::new(req.id, &req.question, reserve);
    let mut sent = 0usize;
    for rr in &plan {
        match messages.add(rr) {
            Ok(None) => {}
            Ok(Some(mut full)) => {
                if let Some(s) = signer.as_mut() {
                    s.sign(&mut full, now);
                }
                send(stream, &full, write_timeout).await?;
                sent += 1;
            }
            Err(()) => {
                tracing::warn!(zone = %zone.origin, "transfer aborted: a record larger than a message");
                return send(stream, &short_answer(msg, 2), write_timeout).await;
            }
        }
    }
    let mut last = messages.finish();
    if let Some(s) = signer.as_mut() {
        s.sign(&mut last, now);
    }
    send(stream, &last, write_timeout).await?;
    sent += 1;
    tracing::info!(
        zone = %zone.origin,
        %peer,
        serial = zone.serial,
        kind = if incremental { "IXFR" } else { "AXFR" },
        records = plan.len(),
        messages = sent,
        key = ?key_name.as_ref().map(|k| k.to_string()),
        "zone transferred"
    );
    Ok(())
}

/// The transfer and NOTIFY counters in Prometheus text format.
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    let c = &COUNTERS;
    let n = &super::notify::COUNTERS;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP signpost_transfers_total Zone transfers out by kind and result.\n# TYPE signpost_transfers_total counter\n\
signpost_transfers_total{{kind=\"axfr\",result=\"sent\"}} {}\n\
signpost_transfers_total{{kind=\"ixfr\",result=\"sent\"}} {}\n\
signpost_transfers_total{{kind=\"ixfr\",result=\"whole_zone\"}} {}\n\
signpost_transfers_total{{kind=\"any\",result=\"refused\"}} {}\n\
signpost_transfers_total{{kind=\"any\",result=\"tsig_failed\"}} {}\n\
# HELP signpost_notify_total NOTIFY messages sent, and secondaries that answered or never did.\n# TYPE signpost_notify_total counter\n\
signpost_notify_total{{result=\"sent\"}} {}\n\
signpost_notify_total{{result=\"answered\"}} {}\n\
signpost_notify_total{{result=\"failed\"}} {}",
        l(&c.axfr),
        l(&c.ixfr),
        l(&c.ixfr_fallback),
        l(&c.refused),
        l(&c.tsig_failed),
        l(&n.sent),
        l(&n.answered),
        l(&n.failed),
    );
}
