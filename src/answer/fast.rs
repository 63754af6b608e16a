//! The UDP fast path: whole answers prebuilt at load time.
//!
//! For every name of every zone, the answer to each of its record types, the answer to
//! any other type (NODATA, a referral), and the answer for names below it that do not
//! exist (NXDOMAIN, a wildcard's records) are built once, when a snapshot is loaded, by
//! running the general path on a made-up query and keeping what follows the
//! question. This file is the table a query reads; `fast_build` builds it (and is
//! the side that names the handler).
//!
//! A query then costs a hash lookup and three copies: the header (ID, flags,
//! counts), the question as the client wrote it (its letter case kept), and the
//! prebuilt sections; the OPT record (payload, NSID, ECS with scope 0)
//! is written by the same code as on the general path.
//!
//! Owner names in the prebuilt sections point at the question (RFC 1035 §4.1.4). An
//! exact name has the same length in the query, so the pointers hold. For a name that
//! does not exist, the answer was built for `\000.<closest encloser>`: pointers past
//! the first label move by the difference in length ("relocations").
//!
//! Anything else goes to the general path: steered names' A/AAAA/CNAME, other classes,
//! ANY and the meta types, EDNS versions other than 0, answers that would not fit the
//! client's size limit, CNAME wildcards, names in more than one zone, and a signed
//! zone's DO=1 answers that need a signature made on the fly or a proof that depends
//! on the name asked (the others have their DO=1 form, with RRSIGs, beside the DO=0
//! one: [`BodyView::signed`]). The general path
//! and this one give the same bytes; `tests/scenarios.rs` runs every golden case
//! through both and compares.

use rustc_hash::FxHashMap;

use super::query::{Query, HEADER_LEN};
use super::write::OptOut;
use super::write::OptRecord;
use crate::answer::Observed;
use crate::zone::{name, rtype, Zone};

/// What the fast path made of a query.
#[derive(Debug)]
pub enum Fast {
    /// Answered: the response is in `out`.
    Done(Observed),
    /// A steered name's A, AAAA or CNAME: decide with this zone and name policy,
    /// without looking the name up again.
    Steer(u32, u32),
    /// For the general path.
    No,
}

/// Prebuilt answers of a snapshot, by lower-cased query name, laid out for few
/// cache misses per query: a dense open-addressing index of (hash tag, arena offset),
/// and one byte arena holding each name's record (key, answer offsets, flags) right
/// after the name's own bodies. A lookup touches one slot and one stretch of the
/// arena.
#[derive(Debug, Default)]
pub struct FastTable {
    /// At most half full, or two thirds for more than 4,096 names (see
    /// `fast_build::slot_count`, and [`slot_of`] for where a name's probes
    /// start).
    pub(super) slots: Box<[Slot]>,
    /// Records in the layout of [`FastTable::record`], answer lists in that of
    /// [`FastTable::answers`], bodies in that of [`FastTable::body`].
    pub(super) arena: Vec<u8>,
    /// Names with a record.
    pub(super) names: usize,
    /// Steered answers made of one endpoint's whole address set, by [`steer_key`]:
    /// arena offsets of bodies.
    pub(super) steered: FxHashMap<u128, u32>,
    /// Unique in the process: tells apart the snapshots whose answers a thread's
    /// [`steercache`] remembers.
    pub(super) id: u64,
    /// Big enough that a batch's lines are worth asking for ahead (see
    /// [`FastTable::worth_warming`]).
    pub(super) warm: bool,
}

/// Tables up to this size (slots and arena) stay in cache under load, so asking
/// for their lines ahead would only cost the hashing; above it, a name's lines
/// are often gone by the time it is asked again (the static benchmark zone's
/// table, 175 KiB, missed twice per lookup without the warm-up).
pub(super) const WARM_ABOVE: usize = 64 << 10;

#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// The hash's lower half (see [`slot_of`]).
    pub(super) tag: u32,
    /// Arena offset of the record; `NONE` for an empty slot.
    pub(super) at: u32,
}

pub(super) const NONE: u32 = u32::MAX;

/// Bytes of a record before its (zone, policy) pair or its exact list: flags,
/// and where its name is stored (zone index, offset).
pub(super) const RECORD_NAME: usize = 9;

/// Record flags.
pub(super) const STEERED: u8 = 1;
pub(super) const HAS_POLICY: u8 = 2;
/// The list for names below follows the exact list.
pub(super) const HAS_BELOW: u8 = 4;

/// Bytes of an answer list of `types` types: their number (u8), each type
/// (u16) and body offset (u32), then the offset for any other type (u32).
pub(super) const fn list_len(types: usize) -> usize {
    1 + 6 * types + 4
}

/// A name's record read from the arena: see [`Entry`].
pub(super) struct EntryView {
    pub(super) steered: bool,
    /// Arena offset of the exact answers' list.
    pub(super) exact: usize,
    /// Arena offset of the list for names below that do not exist, or `NONE`.
    pub(super) below: u32,
    pub(super) policy: Option<(u32, u32)>,
}

pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
}

/// A body read from the arena.
pub(super) struct BodyView<'a> {
    pub(super) flags: u16,
    pub(super) counts: [u16; 3],
    pub(super) zone_slot: Option<u16>,
    /// A signed zone's answer: the arena offset of its DO=1 form (with RRSIGs
    /// and proofs), `NONE` when the general path writes that one, or a
    /// [`Pair`] when this body holds that form; [`FastTable::signed_body`]
    /// reads it.
    pub(super) signed: Option<u32>,
    pub(super) relocs: &'a [u8],
    pub(super) bytes: &'a [u8],
}

/// A body's header as the arena holds it, first byte first:
/// - a byte of bits: [`SHORT`], [`HAS_ZONE`], [`HAS_SIGNED`], [`AA`], and the
///   rcode in the low four;
/// - short form (every count and the number of relocations under 16, the
///   bytes under 256): ANCOUNT and NSCOUNT in a byte (four bits each),
///   ARCOUNT and the number of relocations in the next, the length of the
///   bytes in the third, the zone slot (u16, 0 when not flagged): six bytes;
/// - long form: ANCOUNT, NSCOUNT, ARCOUNT, the length of the bytes, the
///   number of relocations and the zone slot, big-endian u16s: thirteen;
/// - then, if flagged, the arena offset of the DO=1 form (u32, `NONE` when
///   the general path writes that one), or with its top bit set a [`Pair`]:
///   the DO=1 form is in this body.
///
/// The relocations (u16s) and the bytes follow. A million names' own answers
/// (an A record each, 16 bytes) took 14 bytes of header each in one layout
/// of u16s, and take 6 in the short form. Each form's fields sit at fixed
/// places, read from one slice: reading the parts one after the other, with
/// the zone slot's place depending on a flag, cost the static mix 55
/// instructions a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// AA and the rcode, as they sit in a response's flags.
    pub(super) flags: u16,
    pub(super) counts: [u16; 3],
    pub(super) zone_slot: Option<u16>,
    pub(super) link: Option<u32>,
    pub(super) relocs: u16,
    pub(super) len: u16,
}

/// A body whose DO=1 form is itself with records added at the end (a name's
/// own records, then their RRSIGs): the DO=1 form's counts and the length of
/// its bytes, which begin with the DO=0 form's and run on past them, kept in
/// the body's link ([`Head::link`]) with [`PAIR_AT`] set. Both forms have the
/// same flags and zone, and no relocations. The two forms were two bodies,
/// the DO=1 one repeating the header and the records: 22 bytes a name of a
/// signed zone's table. The DO=0 form reads its header as any other body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pair {
    /// ANCOUNT under 15, NSCOUNT and ARCOUNT under 16 (see [`Pair::link`]).
    pub(super) counts: [u16; 3],
    pub(super) len: u16,
}

/// A link's top bit: the link is a [`Pair`], not an arena offset (the
/// arena's bodies stay below 2 GiB).
pub(super) const PAIR_AT: u32 = 1 << 31;

impl Pair {
    /// Whether a DO=1 form of these counts fits a [`Pair`].
    pub(super) fn fits(counts: [u16; 3]) -> bool {
        let [an, ns, ar] = counts;
        an < 15 && ns < 16 && ar < 16
    }

    /// The link that holds it: [`PAIR_AT`], the three counts in four bits
    /// each, the length in the low sixteen; never `NONE` (ANCOUNT under 15).
    pub(super) fn link(self) -> u32 {
        let [an, ns, ar] = self.counts.map(|c| u32::from(c & 0x0f));
        PAIR_AT | an << 24 | ns << 20 | ar << 16 | u32::from(self.len)
    }

    /// The pair a link holds, if it holds one.
    #[inline]
    pub(super) fn of_link(link: u32) -> Option<Pair> {
        (link & PAIR_AT != 0 && link != NONE).then(|| Pair {
            counts: [
                (link >> 24) & 0x0f,
                (link >> 20) & 0x0f,
                (link >> 16) & 0x0f,
            ]
            .map(|c| c as u16),
            len: link as u16,
        })
    }
}

pub(super) const SHORT: u8 = 0x80;
pub(super) const HAS_ZONE: u8 = 0x40;
pub(super) const HAS_SIGNED: u8 = 0x20;
pub(super) const AA: u8 = 0x10;

impl Head {
    /// The header at the start of `b`, and its length in bytes.
    #[inline]
    pub(super) fn read(b: &[u8]) -> Option<(Head, usize)> {
        let bits = *b.first()?;
        let (counts, relocs, len, zone, n) = if bits & SHORT != 0 {
            let h = b.get(..6)?;
            let counts = [
                u16::from(h[1] >> 4),
                u16::from(h[1] & 0x0f),
                u16::from(h[2] >> 4),
            ];
            let zone = u16::from_be_bytes([h[4], h[5]]);
            (counts, u16::from(h[2] & 0x0f), u16::from(h[3]), zone, 6)
        } else {
            let h = b.get(..13)?;
            let u = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
            ([u(1), u(3), u(5)], u(9), u(7), u(11), 13)
        };
        let (link, n) = if bits & HAS_SIGNED != 0 {
            (Some(be32(b, n)?), n + 4)
        } else {
            (None, n)
        };
        let aa = if bits & AA != 0 { 0x0400 } else { 0 };
        let head = Head {
            flags: aa | u16::from(bits & 0x0f),
            counts,
            zone_slot: (bits & HAS_ZONE != 0).then_some(zone),
            link,
            relocs,
            len,
        };
        Some((head, n))
    }

    /// Appends the header ([`Head::read`] reads it back).
    pub(super) fn write(&self, v: &mut Vec<u8>) {
        let [an, ns, ar] = self.counts;
        let short = an < 16 && ns < 16 && ar < 16 && self.relocs < 16 && self.len < 256;
        let bits = if short { SHORT } else { 0 }
            | if self.zone_slot.is_some() {
                HAS_ZONE
            } else {
                0
            }
            | if self.link.is_some() { HAS_SIGNED } else { 0 }
            | if self.flags & 0x0400 != 0 { AA } else { 0 }
            | (self.flags & 0x0f) as u8;
        v.push(bits);
        let zone = self.zone_slot.unwrap_or(0).to_be_bytes();
        if short {
            v.extend_from_slice(&[
                (an << 4 | ns) as u8,
                (ar << 4 | self.relocs) as u8,
                self.len as u8,
            ]);
        } else {
            for x in [an, ns, ar, self.len, self.relocs] {
                v.extend_from_slice(&x.to_be_bytes());
            }
        }
        v.extend_from_slice(&zone);
        if let Some(l) = self.link {
            v.extend_from_slice(&l.to_be_bytes());
        }
    }

    /// Bytes of the whole body: the header (`n` bytes), relocations and bytes.
    pub(super) fn body_len(&self, n: usize) -> usize {
        n + 2 * usize::from(self.relocs) + usize::from(self.len)
    }
}

/// `a == b` for names (a few dozen bytes): eight bytes at a time, inline, where a
/// call to `memcmp` costs more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        s.get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map(u64::from_ne_bytes)
    };
    let n = a.len();
    if n < 8 {
        // A zone's name above its origin is often this short ("www"): four
        // bytes at a time too, overlapping, or byte by byte under four.
        let half = |s: &[u8], at: usize| {
            s.get(at..at + 4)
                .and_then(|w| <[u8; 4]>::try_from(w).ok())
                .map(u32::from_ne_bytes)
        };
        if n >= 4 {
            return half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4);
        }
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping what was compared when n is not a multiple.
    word(a, n - 8) == word(b, n - 8)
}

/// The query name of the query `pkt` as it stands in the packet, root label
/// included; `None` when there is no well-formed uncompressed name after the header.
fn asked_name(pkt: &[u8]) -> Option<&[u8]> {
    let rest = pkt.get(HEADER_LEN..)?;
    rest.get(..name::wire_name_len(rest)?)
}

/// The first slot of `n` (not 0) for the name hashed to `h`, and the tag it
/// holds there. The index is taken from the high half of `h` mixed once more
/// (multiply and shift, so that `n` needs not be a power of two, and the
/// table can be two thirds full); the tag is the low half, which the index
/// does not use.
#[inline]
pub(super) fn slot_of(h: u64, n: usize) -> (usize, u32) {
    let mixed = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let i = ((u128::from(mixed) * n as u128) >> 64) as usize;
    (i, h as u32)
}

pub(super) fn hash(name: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(name);
    h.finish()
}

impl FastTable {
    /// The record of `name` (lower-cased wire), whose stored form is in
    /// `zones`, the zones of the snapshot the table was built from. Layout:
    /// flags (u8), the zone's index and the offset of the name in that zone's
    /// [`crate::zone::Nodes::name_bytes`] (two u32: the name is not copied;
    /// it is stored there relative to the zone's origin),
    /// the (zone, policy) pair when flagged (two u32), the exact answers' list,
    /// then when flagged the list for names below that do not exist.
    pub(super) fn find(&self, zones: &[Zone], name: &[u8]) -> Option<EntryView> {
        let (mut i, tag) = self.start(name)?;
        loop {
            let slot = *self.slots.get(i)?;
            if slot.at == NONE {
                return None;
            }
            if slot.tag == tag && self.is_named(zones, slot.at as usize, name) {
                return self.record(slot.at as usize);
            }
            i = self.next_slot(i);
        }
    }

    /// Whether the record at `at` is `name`'s. Its zone stores the name as the
    /// length of its labels above the origin, then those labels (see
    /// `zone::nodes`): `name` is those labels, then the zone's origin. A name
    /// the zone stores whole (not under its origin; none today) has the length
    /// byte 255, which no name here matches, and is left to the general path.
    #[inline]
    fn is_named(&self, zones: &[Zone], at: usize, name: &[u8]) -> bool {
        let Some((zone, from)) = self.name_ref(at) else {
            return false;
        };
        let Some(nodes) = zones.get(zone).map(|z| &z.nodes) else {
            return false;
        };
        let origin = nodes.origin();
        // The length of `name` above the origin, if it is longer than it.
        let Some(head) = name.len().checked_sub(origin.len()) else {
            return false;
        };
        // The stored length byte and the labels after it, read at once.
        let Some(stored) = nodes.name_bytes().get(from..from + 1 + head) else {
            return false;
        };
        let (asked, tail) = name.split_at(head);
        usize::from(stored[0]) == head && same(&stored[1..], asked) && same(tail, origin)
    }

    /// Where the name of the record at `at` is stored: its zone's index and
    /// the offset in that zone's names.
    #[inline]
    pub(super) fn name_ref(&self, at: usize) -> Option<(usize, usize)> {
        let w = self.arena.get(at + 1..at + RECORD_NAME)?;
        let zone = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        let from = u32::from_be_bytes([w[4], w[5], w[6], w[7]]);
        Some((zone as usize, from as usize))
    }

    /// Bytes of the index and the arena: what the lookups read.
    pub fn size(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>() + self.arena.len()
    }

    /// Whether the UDP loop should ask for a batch's table lines ahead
    /// ([`FastTable::warm_slot`], [`FastTable::warm_record`]): only when the table
    /// is too big to stay in cache.
    pub fn worth_warming(&self) -> bool {
        self.warm
    }

    /// The slot where a lookup of the name asked in `pkt` (a whole query) starts,
    /// its table line asked for ahead of the lookup; `None` when no name is there.
    /// A name with capitals hashes elsewhere: then the wrong line is loaded, no more.
    pub(crate) fn warm_slot(&self, pkt: &[u8]) -> Option<usize> {
        let (i, _) = self.start(asked_name(pkt)?)?;
        super::prefetch::prefetch(self.slots.get(i)?);
        Some(i)
    }

    /// The slot a lookup of `name` probes first, and the tag it looks for there;
    /// `None` for a table without slots.
    fn start(&self, name: &[u8]) -> Option<(usize, u32)> {
        let h = hash(name);
        (!self.slots.is_empty()).then(|| slot_of(h, self.slots.len()))
    }

    /// The slot after `i`, the first after the last.
    #[inline]
    pub(super) fn next_slot(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Asks ahead for the record the slot `i` leads to (its first two lines).
    pub(crate) fn warm_record(&self, i: usize) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if slot.at == NONE {
            return;
        }
        let at = slot.at as usize;
        if let Some(b) = self.arena.get(at) {
            super::prefetch::prefetch(b);
        }
        if let Some(b) = self.arena.get(at + 64) {
            super::prefetch::prefetch(b);
        }
    }

    fn record(&self, at: usize) -> Option<EntryView> {
        let flags = *self.arena.get(at)?;
        let mut p = at + RECORD_NAME;
        let policy = if flags & HAS_POLICY != 0 {
            let z = be32(&self.arena, p)?;
            let i = be32(&self.arena, p + 4)?;
            p += 8;
            Some((z, i))
        } else {
            None
        };
        let below = if flags & HAS_BELOW != 0 {
            let types = *self.arena.get(p)? as usize;
            u32::try_from(p + list_len(types)).ok()?
        } else {
            NONE
        };
        Some(EntryView {
            steered: flags & STEERED != 0,
            exact: p,
            below,
            policy,
        })
    }

    /// The body offset for `qtype` in the answer list at `at`: the type's own, else
    /// the one for any other type (never for DS, which the parent answers).
    pub(super) fn answers(&self, at: usize, qtype: u16) -> Option<u32> {
        let n = *self.arena.get(at)? as usize;
        for i in 0..n {
            let e = at + 1 + 6 * i;
            if be16(&self.arena, e)? == qtype {
                return be32(&self.arena, e + 2);
            }
        }
        let other = be32(&self.arena, at + 1 + 6 * n)?;
        (qtype != rtype::DS && other != NONE).then_some(other)
    }

    #[inline]
    pub(super) fn body(&self, at: u32) -> Option<BodyView<'_>> {
        let b = self.arena.get(at as usize..)?;
        let (h, n) = Head::read(b)?;
        let bytes_at = n + 2 * usize::from(h.relocs);
        Some(BodyView {
            flags: h.flags,
            counts: h.counts,
            zone_slot: h.zone_slot,
            signed: h.link,
            relocs: b.get(n..bytes_at)?,
            bytes: b.get(bytes_at..bytes_at + usize::from(h.len))?,
        })
    }

    /// The DO=1 form that `body`'s [`BodyView::signed`], `signed`, leads to:
    /// a body of its own, or the [`Pair`] in `body` (its bytes run on past
    /// `body`'s); `None` for `NONE`.
    #[inline]
    pub(super) fn signed_body(&self, body: &BodyView<'_>, signed: u32) -> Option<BodyView<'_>> {
        let Some(p) = Pair::of_link(signed) else {
            return self.body(signed);
        };
        // Where `body`'s bytes start in the arena, from the two addresses.
        let from = (body.bytes.as_ptr() as usize).checked_sub(self.arena.as_ptr() as usize)?;
        Some(BodyView {
            flags: body.flags,
            counts: p.counts,
            zone_slot: body.zone_slot,
            signed: None,
            relocs: &[],
            bytes: self.arena.get(from..from + usize::from(p.len))?,
        })
    }

    /// Names with prebuilt answers.
    pub fn len(&self) -> usize {
        self.names
    }

    pub fn is_empty(&self) -> bool {
        self.names == 0
    }

    /// Prebuilt steered answers (one endpoint's whole address set each).
    pub fn steered_len(&self) -> usize {
        self.steered.len()
    }
}

impl FastTable {
    /// Writes the response to `q` with `body` after the question, pointers past the
    /// first label moved by `shift`, and `opt`. False (with `out` in any state) when
    /// it would not fit `limit`: truncation is the general path's business.
    pub(super) fn emit(
        q: &Query<'_>,
        body: &BodyView<'_>,
        shift: usize,
        opt: OptRecord<'_>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        let opt_len = opt.wire_len();
        let body_at = HEADER_LEN + q.question.len();
        if body_at + body.bytes.len() + opt_len > limit || body_at + body.bytes.len() > 0x3fff {
            return false;
        }
        let mut flags = 0x8000 | body.flags;
        if q.rd {
            flags |= 0x0100;
        }
        if q.cd {
            flags |= 0x0010;
        }
        let arcount = body.counts[2] + u16::from(opt.is_some());
        let [id0, id1] = q.id.to_be_bytes();
        let [f0, f1] = flags.to_be_bytes();
        let [an0, an1] = body.counts[0].to_be_bytes();
        let [ns0, ns1] = body.counts[1].to_be_bytes();
        let [ar0, ar1] = arcount.to_be_bytes();
        out.clear();
        // The header in one copy.
        out.extend_from_slice(&[id0, id1, f0, f1, 0, 1, an0, an1, ns0, ns1, ar0, ar1]);
        out.extend_from_slice(q.question);
        out.extend_from_slice(body.bytes);
        if shift > 0 {
            for r in body.relocs.chunks_exact(2) {
                let at = body_at + u16::from_be_bytes([r[0], r[1]]) as usize;
                let ptr = u16::from_be_bytes([out[at], out[at + 1]]) + shift as u16;
                out[at..at + 2].copy_from_slice(&ptr.to_be_bytes());
            }
        }
        opt.write(out);
        true
    }

    /// The arena offset of the prebuilt answer of a steered name whose decision is
    /// `endpoint`'s whole address set of type `qtype` (A or AAAA; see
    /// [`super::handler::single_set`]), for the (zone, name policy), in its degraded
    /// form or not, and with its RRSIG if `signed` (the DO=1 answer of a signed
    /// zone). `None` when there is none: the general path answers.
    pub(super) fn steered_body(
        &self,
        (zone, policy): (u32, u32),
        endpoint: u32,
        degraded: bool,
        qtype: u16,
        signed: bool,
    ) -> Option<u32> {
        let key = steer_key(zone, policy, endpoint, qtype, degraded, signed);
        self.steered.get(&key).copied()
    }

    /// Writes the response to `q` with the prebuilt answer at `at`; false as for
    /// [`FastTable::emit`].
    pub(super) fn emit_at(
        &self,
        at: u32,
        q: &Query<'_>,
        opt: Option<&OptOut<'_>>,
        limit: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        self.body(at).is_some_and(|body| {
            let opt = opt.map_or(OptRecord::None, OptRecord::Out);
            Self::emit(q, &body, 0, opt, limit, out)
        })
    }
}

/// The key of a prebuilt steered answer: `signed` for its DO=1 form.
pub(super) fn steer_key(
    zone: u32,
    policy: u32,
    endpoint: u32,
    qtype: u16,
    degraded: bool,
    signed: bool,
) -> u128 {
    (u128::from(zone) << 96)
        | (u128::from(policy) << 64)
        | (u128::from(endpoint) << 32)
        | (u128::from(signed) << 17)
        | (u128::from(qtype) << 1)
        | u128::from(degraded)
}

#[cfg(test)]
mod tests {
    use super::{asked_name, same, Head, Pair, NONE, PAIR_AT};

    /// The warm-up hashes the name as it stands in the packet; the lookup hashes
    /// the parsed name: the same bytes, so the same slot, unless there are capitals.
    #[test]
    fn asked_name_is_what_the_parser_reads_for_a_lower_case_name() {
        use crate::answer::query::{parse, NameBuf};
        for name in [
            &b"\x00"[..],
            b"\x03www\x07example\x00",
            b"\x01a\x01b\x01c\x04test\x00",
        ] {
            let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
            pkt.extend_from_slice(name);
            pkt.extend_from_slice(&[0, 1, 0, 1]);
            let mut buf = NameBuf::default();
            let q = parse(&pkt, &mut buf).expect("a query");
            assert_eq!(asked_name(&pkt), Some(q.qname()));
        }
        let pkt = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03WWW\x00\x00\x01\x00\x01";
        let mut buf = NameBuf::default();
        let q = parse(pkt, &mut buf).expect("a query");
        assert_eq!(q.qname(), b"\x03www\x00");
        assert_eq!(asked_name(pkt), Some(&b"\x03WWW\x00"[..]));
    }

    /// A body's header reads back as written, in the short form (six bytes,
    /// and the DO=1 form's offset) where every field fits it, the long form
    /// (thirteen) where one does not.
    #[test]
    fn a_body_head_reads_back_as_written_in_the_form_that_fits() {
        let base = Head {
            flags: 0x0400 | 3,
            counts: [1, 0, 0],
            zone_slot: Some(0x1234),
            link: None,
            relocs: 0,
            len: 16,
        };
        let cases = [
            (base, 6),
            (
                Head {
                    zone_slot: None,
                    ..base
                },
                6,
            ),
            (
                Head {
                    link: Some(0xdead_beef),
                    ..base
                },
                10,
            ),
            (
                Head {
                    flags: 5,
                    counts: [15, 15, 15],
                    relocs: 15,
                    len: 255,
                    ..base
                },
                6,
            ),
            (
                Head {
                    counts: [16, 0, 0],
                    ..base
                },
                13,
            ),
            (
                Head {
                    counts: [0, 16, 0],
                    ..base
                },
                13,
            ),
            (
                Head {
                    counts: [0, 0, 300],
                    ..base
                },
                13,
            ),
            (Head { relocs: 16, ..base }, 13),
            (
                Head {
                    len: 256,
                    link: Some(NONE),
                    ..base
                },
                17,
            ),
            (
                Head {
                    len: u16::MAX,
                    counts: [u16::MAX; 3],
                    relocs: u16::MAX,
                    ..base
                },
                13,
            ),
        ];
        for (h, size) in cases {
            let mut v = Vec::new();
            h.write(&mut v);
            assert_eq!(v.len(), size, "{h:?}");
            v.extend_from_slice(b"rest");
            assert_eq!(Head::read(&v), Some((h, size)), "{h:?}");
            assert_eq!(Head::read(&v[..size - 1]), None, "{h:?} cut short");
        }
    }

    /// A pair's link reads back as the pair, is never `NONE` nor an arena
    /// offset; an offset or `NONE` is no pair.
    #[test]
    fn a_pair_reads_back_from_its_link() {
        for (counts, len) in [([1, 0, 0], 16), ([2, 0, 0], 125), ([14, 15, 15], u16::MAX)] {
            assert!(Pair::fits(counts));
            let p = Pair { counts, len };
            let link = p.link();
            assert!(link != NONE && link & PAIR_AT != 0);
            assert_eq!(Pair::of_link(link), Some(p));
        }
        assert!(!Pair::fits([15, 0, 0]) && !Pair::fits([0, 16, 0]));
        for link in [0, 1234, PAIR_AT - 1, NONE] {
            assert_eq!(Pair::of_link(link), None);
        }
    }

    #[test]
    fn same_agrees_with_slice_equality() {
        let base: Vec<u8> = (0u8..40).collect();
        for n in 0..base.len() {
            let a = &base[..n];
            assert!(same(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 0x20;
                assert!(!same(a, &b), "length {n}, byte {i} differs");
            }
            assert!(!same(a, &base[..n + 1]));
        }
    }
}
