//! What each UDP thread remembers of the signed answers the general path wrote.
//!
//! A signed zone's DO=1 answer that the fast table cannot hold is written by the
//! general path: compact denial's NXDOMAIN and NODATA (an NSEC at the name asked,
//! RFC 9824), wildcard answers (signed at the name asked), an NSEC chain's
//! NXDOMAIN. Its signatures are made once per snapshot and kept by the zone's
//! signer ([`crate::dnssec::online`]), but putting the answer together again costs
//! about ten times a prebuilt one. So after the general path has answered such a
//! query, the thread keeps the records after the question (the OPT record left
//! out: it is written per query) under (fast table, name asked, type, size
//! limit), and the fast path sends them to the next query with the same inputs.
//!
//! What such an answer is made from is the snapshot (told apart by the fast
//! table's process-unique id: a reload, a re-signing or a new key is a new
//! snapshot), the name asked (lower-cased: the records point at the question
//! for its letters), the type, and the size limit (which decides what fits);
//! not the client, whose address or ECS only the OPT record and steered answers
//! read (those are never kept). An answer that was truncated, refused by the
//! signing budget (SERVFAIL) or by the rate limiter is not kept.
//!
//! Bounded: [`ENTRIES`] per thread, in sets of [`WAYS`], each at most
//! [`MAX_BODY`] bytes and the name, so at most about 4 MiB per thread, and only
//! with a signed zone asked with DO=1. A flood of names never asked before is
//! answered by the general path, as it would be without this, and replaces only
//! entries that were not sent again since they were kept ([`victim`]): the
//! answers in use stay. Sets of eight, each slot with a 32-bit tag of the
//! hash so that a lookup follows only the pointer of a likely match: the
//! static benchmark mix asks 1,898 such (name, type) in turn, and a set asked
//! more than it holds loses each before it comes round again (sets of two lost
//! 419 a pass, sets of four 31).

use std::cell::RefCell;

use super::fast::BodyView;
use super::query::{Query, HEADER_LEN};

/// Entries per thread: a power of two.
const ENTRIES: usize = 8192;
/// Entries per set: the newest first.
const WAYS: usize = 8;
/// The longest body kept: a compact denial with one signature per RRset is
/// about 300 bytes.
const MAX_BODY: usize = 448;

/// A kept answer (of the fast table its cache is for).
struct Entry {
    qtype: u16,
    limit: u16,
    flags: u16,
    counts: [u16; 3],
    zone_slot: Option<u16>,
    wildcard_at: Option<u8>,
    name_len: u8,
    /// Sent again since it was kept (or since the set's last sweep).
    used: std::cell::Cell<bool>,
    /// The name asked (lower-cased wire), then the body's bytes.
    data: Box<[u8]>,
}

/// What a query gets from a kept answer, for [`super::Observed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kept {
    pub zone_slot: Option<u16>,
    pub wildcard_at: Option<u8>,
}

struct Cache {
    table: u64,
    /// (tag, entry) in sets of [`WAYS`].
    entries: Vec<(u32, Option<Box<Entry>>)>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { table: 0, entries: Vec::new() })
    };
}

/// The first of the [`WAYS`] slots of (name, type), and its tag (never 0):
/// the fast table's hash of the name, the type mixed in.
fn set_of(qname: &[u8], qtype: u16) -> (usize, u32) {
    let h = (super::fast::hash(qname) ^ u64::from(qtype)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let set = ((h >> 32) as usize & (ENTRIES - 1)) & !(WAYS - 1);
    (set, (h as u32) | 1)
}

impl Entry {
    fn is(&self, qname: &[u8], qtype: u16, limit: u16) -> bool {
        self.qtype == qtype
            && self.limit == limit
            && self.data.get(..usize::from(self.name_len)) == Some(qname)
    }

    fn view(&self) -> BodyView<'_> {
        BodyView {
            flags: self.flags,
            counts: self.counts,
            zone_slot: self.zone_slot,
            signed: None,
            relocs: &[],
            bytes: self
                .data
                .get(usize::from(self.name_len)..)
                .unwrap_or_default(),
        }
    }
}

/// Calls `f` with the kept answer to `q` under fast table `table` and size
/// `limit`, if this thread has one; returns what `f` returned.
pub(super) fn with<R>(
    table: u64,
    q: &Query<'_>,
    limit: usize,
    f: impl FnOnce(&BodyView<'_>, Kept) -> R,
) -> Option<R> {
    let limit = u16::try_from(limit).ok()?;
    CACHE.with(|c| {
        let c = c.borrow();
        if c.table != table {
            return None;
        }
        let (at, tag) = set_of(q.qname(), q.qtype);
        let e = c
            .entries
            .get(at..at + WAYS)?
            .iter()
            .filter(|(t, _)| *t == tag)
            .filter_map(|(_, e)| e.as_deref())
            .find(|e| e.is(q.qname(), q.qtype, limit))?;
        let kept = Kept {
            zone_slot: e.zone_slot,
            wildcard_at: e.wildcard_at,
        };
        e.used.set(true);
        Some(f(&e.view(), kept))
    })
}

/// Keeps `response`, the general path's whole answer to `q` under fast table
/// `table` and size `limit`, whose last record is the OPT record; nothing when
/// it does not parse or is too big.
pub(super) fn keep(table: u64, q: &Query<'_>, limit: usize, response: &[u8], kept: Kept) {
    let Some(entry) = u16::try_from(limit)
        .ok()
        .and_then(|limit| entry(q, limit, response, kept))
    else {
        return;
    };
    let limit = entry.limit;
    let entry = Box::new(entry);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.table != table {
            // A new snapshot: nothing kept from the old one is of use.
            c.table = table;
            c.entries.clear();
        }
        if c.entries.is_empty() {
            c.entries.resize_with(ENTRIES, || (0, None));
        }
        let (at, tag) = set_of(q.qname(), q.qtype);
        let set = &mut c.entries[at..at + WAYS];
        let end = set
            .iter()
            .position(|(t, e)| {
                *t == tag && e.as_ref().is_some_and(|e| e.is(q.qname(), q.qtype, limit))
            })
            .unwrap_or_else(|| victim(set));
        // The newest first: the others move down over this answer's old
        // entry, or over the one let go.
        set[..=end].rotate_right(1);
        set[0] = (tag, Some(entry));
    });
}

/// The way of a full set to let go: the oldest entry not sent again since it
/// was kept, so that a run of names asked once (a flood of random names, from
/// one network or many) replaces only its own kind and not the answers that
/// are being asked for; when every entry has been sent again, all start over
/// as unused and the oldest goes (the second chance of a clock).
fn victim(set: &[(u32, Option<Box<Entry>>)]) -> usize {
    let unused = |(_, e): &(u32, Option<Box<Entry>>)| e.as_ref().is_none_or(|e| !e.used.get());
    if let Some(i) = set.iter().rposition(unused) {
        return i;
    }
    for e in set.iter().filter_map(|(_, e)| e.as_deref()) {
        e.used.set(false);
    }
    set.len() - 1
}

/// The entry for `response`, the answer to `q` under size `limit`.
fn entry(q: &Query<'_>, limit: u16, response: &[u8], kept: Kept) -> Option<Entry> {
    // What the fast path's header keeps: AA and the rcode (RD and CD are the
    // query's, QR is set on every response).
    let (flags, counts) = super::fast_build::response_bits(response)?;
    let start = HEADER_LEN + q.question.len();
    // The OPT record: the last one.
    let mut p = start;
    let mut last = start;
    let mut last_type = 0;
    for _ in 0..counts.iter().map(|&c| usize::from(c)).sum::<usize>() {
        last = p;
        (p, last_type, _) = super::query::skip_record(response, p)?;
    }
    if last_type != crate::zone::rtype::OPT || p != response.len() || counts[2] == 0 {
        return None;
    }
    let body = response.get(start..last)?;
    let qname = q.qname();
    if body.len() > MAX_BODY {
        return None;
    }
    let mut data = Vec::with_capacity(qname.len() + body.len());
    data.extend_from_slice(qname);
    data.extend_from_slice(body);
    Some(Entry {
        qtype: q.qtype,
        limit,
        flags,
        counts: [counts[0], counts[1], counts[2] - 1],
        zone_slot: kept.zone_slot,
        wildcard_at: kept.wildcard_at,
        name_len: u8::try_from(qname.len()).ok()?,
        used: std::cell::Cell::new(false),
        data: data.into_boxed_slice(),
    })
}

#[cfg(test)]
mod tests {
    use super::set_of;

    /// Two names, or two types, seldom share a set.
    #[test]
    fn sets_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000u32 {
            let name = format!("\x04n{i:03}\x07example\x00");
            let (s, tag) = set_of(name.as_bytes(), 1);
            assert_ne!(tag, 0);
            assert_eq!(s % super::WAYS, 0);
            assert!(s + super::WAYS <= super::ENTRIES);
            seen.insert(s);
        }
        // 1,000 names over 1,024 sets: about 630 distinct ones by chance.
        assert!(seen.len() > 580, "{} sets for 1000 names", seen.len());
        assert_ne!(set_of(b"\x01a\x00", 1), set_of(b"\x01a\x00", 28));
    }
}
