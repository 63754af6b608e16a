//! The fast table's build: every answer of a snapshot's zones prebuilt by
//! running the general path ([`super::handler`]) on made-up queries, and laid
//! out flat in the layout `super::fast` reads at query time. Two shortcuts keep
//! a large zone's build short, and debug builds (the tests) check both against
//! the general path for every name: a name's own A, AAAA and TXT records are
//! written into their body directly, and the NODATA and NXDOMAIN answers are
//! asked once per shape of name ([`ZoneShape`]).
//!
//! The query-time side does not name this file; this file names the handler,
//! so the two stand in a line: handler -> fast, fast_build -> handler and fast.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hashbrown::HashTable;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::fast::{
    be16, hash, list_len, slot_of, steer_key, FastTable, Head, Pair, Slot, HAS_BELOW, HAS_POLICY,
    NONE, PAIR_AT, RECORD_NAME, STEERED, WARM_ABOVE,
};
use super::handler::{handle, Transport};
use super::query::HEADER_LEN;
use super::write::{write_response, HeaderOut};
use crate::answer::snapshot::Snapshot;
use crate::zone::{class, name, rtype, Answer, Owner, RRset, Rcode, Rec, Sigs, StoredName, Zone};

/// Private-use types (RFC 6895 §3.1) that stand for "a type this name does not have".
const PROBE_TYPES: [u16; 2] = [65280, 65281];

/// The header bits a prebuilt body keeps of a response the general path
/// wrote: AA and the rcode, as they sit in the flags, and ANCOUNT, NSCOUNT,
/// ARCOUNT (without OPT).
pub(super) fn response_bits(out: &[u8]) -> Option<(u16, [u16; 3])> {
    let h = out.get(..HEADER_LEN)?;
    let u = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    Some((u(2) & 0x040f, [u(6), u(8), u(10)]))
}

/// A name to build an entry for, as its zone's index and node number: eight
/// bytes, where the name, zone and node themselves were 40 and a million
/// names' list was 32 MiB of the build's peak.
#[derive(Debug, Clone, Copy)]
struct Work {
    /// The zone's index, with [`GENERAL`] set when the name goes to the
    /// general path.
    zone: u32,
    node: u32,
}

/// [`Work::zone`]'s flag for a name with no entry of its own.
const GENERAL: u32 = 1 << 31;

impl Work {
    /// The name, and its zone's index, the zone and its node unless the name
    /// goes to the general path.
    fn resolve<'z>(self, zones: &'z [Zone]) -> Resolved<'z> {
        let zi = (self.zone & !GENERAL) as usize;
        let zone = &zones[zi];
        let (key, node) = zone.nodes.at(self.node as usize);
        (key, (self.zone & GENERAL == 0).then_some((zi, zone, node)))
    }
}

type Resolved<'z> = (
    StoredName<'z>,
    Option<(usize, &'z Zone, &'z crate::zone::Node)>,
);

/// A body as one builder wrote it: its number among the bodies of the part
/// that refers to it, in the order they were kept ([`Part::offsets`] says
/// where it starts). Four bytes, so that a name's [`Entry`], of which a large
/// zone's build holds one per name at once, stays small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BodyRef(u32);

/// The answers for one name (or for the names that do not exist below one).
#[derive(Debug, Default)]
struct Answers {
    /// By query type, for the types the name has (and A/AAAA beside a CNAME).
    types: SmallVec<[(u16, BodyRef); 2]>,
    /// For every other type but DS, when they all get the same answer.
    other: Option<BodyRef>,
}

#[derive(Debug, Default)]
struct Entry {
    exact: Answers,
    /// For names below this one that do not exist (this is their closest encloser).
    below: Option<Answers>,
    /// A steered name: its A, AAAA and CNAME answers are decided per query.
    steered: bool,
    /// Its (zone, name policy) indexes, when the decision can start from them.
    policy: Option<(u32, u32)>,
}

impl Entry {
    /// Everything about this name goes to the general path.
    fn general() -> Entry {
        Entry::default()
    }
}

/// The next [`FastTable::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl FastTable {
    /// Prebuilds every answer of `snap`'s zones, asking `snap`'s general path.
    /// The names are shared out among the machine's cores (at most 8): each
    /// asks the general path on its own, and the entries are laid out flat
    /// afterwards in the order of the zones' names.
    pub fn build(snap: &Snapshot) -> FastTable {
        // Which names get an entry of their own, and which go to the general
        // path: a name more than one zone holds, or one a deeper zone answers
        // for, has no prebuilt answer, nor have the names below it.
        let zones = snap.zones.zones();
        let mut work: Vec<Work> = Vec::new();
        if let [zone] = zones {
            // One zone: it is every name's deepest, and no name is in two.
            work.extend((0..zone.nodes.len()).map(|i| Work {
                zone: 0,
                node: i as u32,
            }));
        } else {
            // Keyed by the names as their zones store them (equal and hashed
            // by their whole bytes), not by a copy of each.
            let mut slot: FxHashMap<StoredName<'_>, usize> = FxHashMap::default();
            for (zi, zone) in zones.iter().enumerate() {
                for (i, (key, _)) in zone.nodes.iter().enumerate() {
                    if let Some(&w) = slot.get(&key) {
                        work[w].zone |= GENERAL;
                        continue;
                    }
                    let mut buf = [0u8; name::MAX_NAME_LEN];
                    let deepest = snap
                        .zones
                        .find(key.whole(&mut buf))
                        .is_some_and(|z| std::ptr::eq(z, zone));
                    slot.insert(key, work.len());
                    work.push(Work {
                        zone: zi as u32 | if deepest { 0 } else { GENERAL },
                        node: i as u32,
                    });
                }
            }
        }
        let shapes: Vec<ZoneShape> = zones.iter().map(ZoneShape::new).collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        // Parts of at most PART_NAMES names, at least sixteen a thread, so
        // that the layout of the first parts goes on while the last are
        // built, and the parts held at once are a small share of the names:
        // with four a thread, a 100,000-record zone's build held about
        // five parts of 12,500 names' entries, and its peak was the
        // process's, 19.3 MiB (16.4 with sixteen and the handover below).
        let chunk = work.len().div_ceil(threads * 16).clamp(1024, PART_NAMES);
        let chunks: Vec<&[Work]> = work.chunks(chunk).collect();
        // Each part's bodies go into one byte vector of its own, shared within
        // the part (most NODATA and NXDOMAIN bodies); one shared by several
        // parts is written once per part. Few blocks are allocated per name,
        // so the threads leave no heap behind them: a body each in its own
        // block kept 18 MiB of freed heap resident for a 100,000-record zone.
        let entries = |part: &[Work]| {
            let _prebuilding = crate::dnssec::online::Prebuilding::start();
            // The part's names whole, end to end (a zone keeps them relative
            // to its origin): the made-up queries ask for them.
            let mut whole = Vec::new();
            for w in part {
                w.resolve(zones).0.write_to(&mut whole);
            }
            let mut b = Builder::new(snap, &shapes, part.len());
            let mut end = 0;
            let entries = part
                .iter()
                .map(|w| {
                    let (key, found) = w.resolve(zones);
                    let from = end;
                    end += key.len();
                    match (whole.get(from..end), found) {
                        (Some(key), Some((zi, zone, node))) => b.entry(zi, zone, key, node),
                        _ => Entry::general(),
                    }
                })
                .collect::<Vec<Entry>>();
            b.into_part(entries)
        };
        let steered = steered_bodies(snap);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let packed = if threads == 1 || work.len() < 4096 {
            Self::pack(zones, &work, chunks.iter().map(|&c| entries(c)))
        } else {
            // Thread k builds parts k, k + threads, ... and hands each over
            // when the packing takes it (a channel of no room: a thread
            // holds the part it built until then, none queued), which lays
            // them out in order as they come: a few parts are held at a
            // time, not a million names' entries and bodies beside the arena
            // they are copied into (a 1,000,000-record zone's build peaked
            // 90 MiB higher when every part was built before the first was
            // laid out), and the layout goes on while the parts are built.
            std::thread::scope(|s| {
                let receivers: Vec<_> = (0..threads.min(chunks.len()))
                    .map(|k| {
                        let (tx, rx) = std::sync::mpsc::sync_channel::<Part>(0);
                        let mine: Vec<&[Work]> =
                            chunks.iter().skip(k).step_by(threads).copied().collect();
                        let entries = &entries;
                        s.spawn(move || {
                            for c in mine {
                                if tx.send(entries(c)).is_err() {
                                    return;
                                }
                            }
                        });
                        rx
                    })
                    .collect();
                // A part lost to a panic ends the parts early: the table
                // would lack names, and `pack` makes none.
                let parts =
                    (0..chunks.len()).map_while(|i| receivers[i % receivers.len()].recv().ok());
                let t = Self::pack(zones, &work, parts);
                // Let any builder still sending go.
                drop(receivers);
                t
            })
        };
        // The names' list goes before the index is made: a million names'
        // list (8 MB) and their hashes beside the records' offsets (12 MB
        // more) were part of the build's peak.
        drop(chunks);
        drop(work);
        let indexed = packed.and_then(|(mut t, records)| t.index(zones, &records).map(|()| t));
        let Some(mut t) = indexed else {
            return FastTable {
                id,
                ..FastTable::default()
            };
        };
        t.id = id;
        for (key, body) in steered.iter() {
            let Ok(at) = u32::try_from(t.arena.len()) else {
                break;
            };
            t.arena.extend_from_slice(body);
            t.steered.insert(key, at);
        }
        // The arena grew by doubling: up to half of it would be unused capacity.
        t.arena.shrink_to_fit();
        t
    }

    /// Lays the built entries out flat, and says where each name's record
    /// went; `None` if the arena outgrows 32-bit offsets (then every query
    /// takes the general path).
    /// The entries of `parts` are those of `work`'s names, in order; each
    /// part is freed once it is laid out.
    /// `None` too when the parts hold fewer entries than `work` has names.
    fn pack(
        zones: &[Zone],
        work: &[Work],
        parts: impl Iterator<Item = Part>,
    ) -> Option<(FastTable, Vec<u32>)> {
        let mut t = FastTable::default();
        let records = work.len() * (RECORD_NAME + list_len(1));
        let mut keyed = Vec::with_capacity(work.len());
        let mut names = work.iter();
        for part in parts {
            if t.arena.capacity() == 0 {
                // Room for every record (key, flags, lists) and, guessed from
                // the first part, every body, so that the arena is not copied
                // as it grows: room not written to takes no memory, and what
                // is left over is given back at the end without a copy.
                let per_name = part.bytes.len() / part.entries.len().max(1) + 1;
                t.arena.reserve(records + 2 * per_name * work.len());
            }
            // Where the part's bodies went in the arena, by their number.
            let mut placed = vec![NONE; part.offsets.len()];
            for e in &part.entries {
                let w = names.next()?;
                let zi = w.zone & !GENERAL;
                let nodes = &zones.get(zi as usize)?.nodes;
                keyed.push(u32::try_from(t.arena.len()).ok()?);
                t.write_record(
                    (zi, nodes.name_offset(w.node as usize)),
                    e,
                    &part,
                    &mut placed,
                )?;
            }
        }
        if keyed.len() != work.len() {
            return None;
        }
        u32::try_from(t.arena.len()).ok()?;
        Some((t, keyed))
    }

    /// Makes the index of the records at `records`, in a pass of its own
    /// (its slots are written in no order, which slowed the arena's writes
    /// when the two were interleaved), each name read back from its zone.
    fn index(&mut self, zones: &[Zone], records: &[u32]) -> Option<()> {
        self.names = records.len();
        self.slots = vec![Slot { tag: 0, at: NONE }; slot_count(records.len())].into_boxed_slice();
        self.warm = self.size() > WARM_ABOVE;
        for &at in records {
            let (zone, from) = self.name_ref(at as usize)?;
            let key = zones.get(zone)?.nodes.name_at_offset(from);
            let mut buf = [0u8; name::MAX_NAME_LEN];
            let (mut i, tag) = slot_of(hash(key.whole(&mut buf)), self.slots.len());
            while self.slots[i].at != NONE {
                i = self.next_slot(i);
            }
            self.slots[i] = Slot { tag, at };
        }
        Some(())
    }

    /// Writes the record of the name stored at `name` (its zone's index and
    /// its offset in the zone's names) at the end of the arena, then the
    /// bodies it is the first to use, so that a lookup finds a name's answers
    /// in the lines after its record. Layout of the record in
    /// [`FastTable::find`].
    fn write_record(
        &mut self,
        (zone, name): (u32, u32),
        e: &Entry,
        part: &Part,
        placed: &mut [u32],
    ) -> Option<()> {
        let at = self.arena.len();
        let list_len = |a: &Answers| list_len(a.types.len());
        let policy_len = if e.policy.is_some() { 8 } else { 0 };
        let exact_at = at + RECORD_NAME + policy_len;
        let below_at = exact_at + list_len(&e.exact);
        let end = below_at + e.below.as_ref().map_or(0, list_len);
        // Offsets for the bodies not yet written, in the order they follow.
        let mut p = Placer {
            part,
            placed,
            next: end,
            fresh: SmallVec::new(),
        };
        let mut flags = 0;
        if e.steered {
            flags |= STEERED;
        }
        if e.policy.is_some() {
            flags |= HAS_POLICY;
        }
        if e.below.is_some() {
            flags |= HAS_BELOW;
        }
        self.arena.push(flags);
        self.arena.extend_from_slice(&zone.to_be_bytes());
        self.arena.extend_from_slice(&name.to_be_bytes());
        if let Some((z, p)) = e.policy {
            self.arena.extend_from_slice(&z.to_be_bytes());
            self.arena.extend_from_slice(&p.to_be_bytes());
        }
        // The lists, straight into the arena: each body's offset as it is
        // placed (the exact list's first, then the list below's).
        let mut list = |arena: &mut Vec<u8>, a: &Answers| -> Option<()> {
            arena.push(u8::try_from(a.types.len()).ok()?);
            for (t, b) in &a.types {
                arena.extend_from_slice(&t.to_be_bytes());
                arena.extend_from_slice(&p.place(b.0)?.to_be_bytes());
            }
            let other = match &a.other {
                Some(b) => p.place(b.0)?,
                None => NONE,
            };
            arena.extend_from_slice(&other.to_be_bytes());
            Some(())
        };
        list(&mut self.arena, &e.exact)?;
        if let Some(a) = &e.below {
            list(&mut self.arena, a)?;
        }
        debug_assert_eq!(self.arena.len(), end);
        for f in &p.fresh {
            match *f {
                // The DO=1 form's number becomes its offset.
                Fresh::Body(b, Some(at)) => {
                    let (mut h, n) = Head::read(b)?;
                    h.link = Some(at);
                    h.write(&mut self.arena);
                    self.arena.extend_from_slice(b.get(n..)?);
                }
                Fresh::Body(b, None) => self.arena.extend_from_slice(b),
                Fresh::Pair(h, bytes) => {
                    h.write(&mut self.arena);
                    self.arena.extend_from_slice(bytes);
                }
            }
        }
        debug_assert_eq!(self.arena.len(), p.next);
        Some(())
    }
}

/// Slots for a table of `names` names: up to 4,096 names, the power of two
/// at or above twice as many (at most 64 KiB of slots, which stay in cache;
/// at most half full, so that a lookup's probes are fewest: the static
/// benchmark zone's table at exactly half full took 40 more instructions a
/// query than at its third); above, half as many again as names, two thirds
/// full: a million names' slots take 12 MB instead of the 16.8 of the power
/// of two they had, 10,000 names' 117 KiB instead of 256 (a lookup that
/// finds its name probes two slots on average instead of 1.5, one that does
/// not finds an empty slot after five instead of 2.5, in the same one or two
/// cache lines).
fn slot_count(names: usize) -> usize {
    if names <= 1 << 12 {
        (names * 2).next_power_of_two().max(16)
    } else {
        names + names / 2
    }
}

/// Where a record's bodies go in the arena (see [`FastTable::write_record`]).
struct Placer<'p> {
    part: &'p Part,
    /// Arena offsets of the part's bodies, by number; `NONE`: not yet placed.
    placed: &'p mut [u32],
    /// Where the next body not yet placed goes.
    next: usize,
    /// The bodies to write after the record, in order.
    fresh: SmallVec<[Fresh<'p>; 4]>,
}

/// A body [`Placer`] placed, to be written.
enum Fresh<'p> {
    /// As built, with the arena offset of its DO=1 form when it has one.
    Body(&'p [u8], Option<u32>),
    /// A body that holds its DO=1 form: the header, and the DO=1 form's bytes.
    Pair(Head, &'p [u8]),
}

impl<'p> Placer<'p> {
    /// The arena offset of body number `n`: where it was placed, or where it
    /// goes after the bodies placed so far (its DO=1 form right after it, or
    /// in it as a [`Pair`] when that form is not placed yet and extends it).
    fn place(&mut self, n: u32) -> Option<u32> {
        let slot = *self.placed.get(n as usize)?;
        if slot != NONE {
            return Some(slot);
        }
        let o = u32::try_from(self.next).ok().filter(|&o| o < PAIR_AT)?;
        *self.placed.get_mut(n as usize)? = o;
        let part = self.part;
        let written = part.body(n)?;
        let link = body_link(written);
        let unplaced = |l: u32| l != NONE && self.placed.get(l as usize) == Some(&NONE);
        if let Some(signed) = link.filter(|&l| unplaced(l)).and_then(|l| part.body(l)) {
            if let Some((h, bytes)) = pair(written, signed) {
                // The header is as long as the one with the link was.
                self.next += written.len() - usize::from(h.len) + bytes.len();
                self.fresh.push(Fresh::Pair(h, bytes));
                return Some(o);
            }
        }
        self.next += written.len();
        self.fresh.push(Fresh::Body(written, None));
        let i = self.fresh.len() - 1;
        if let Some(link) = link {
            let at = if link == NONE {
                NONE
            } else {
                self.place(link)?
            };
            *self.fresh.get_mut(i)? = Fresh::Body(written, Some(at));
        }
        Some(o)
    }
}

/// `plain` (a body as built) with its DO=1 form `signed` as one [`Pair`]:
/// its header and the DO=1 form's bytes, when `signed` is `plain` with
/// records added after its own (same flags and zone, no relocations, each
/// count under 16).
fn pair<'p>(plain: &[u8], signed: &'p [u8]) -> Option<(Head, &'p [u8])> {
    let (h0, n0) = Head::read(plain)?;
    let (h1, n1) = Head::read(signed)?;
    let bytes = signed.get(n1..n1 + usize::from(h1.len))?;
    let extends = bytes.starts_with(plain.get(n0..)?);
    let alike = h0.flags == h1.flags && h0.zone_slot == h1.zone_slot;
    let plain_form = h0.relocs == 0 && h1.relocs == 0 && h1.link.is_none();
    let p = Pair {
        counts: h1.counts,
        len: h1.len,
    };
    (extends && alike && plain_form && Pair::fits(h1.counts)).then_some((
        Head {
            link: Some(p.link()),
            ..h0
        },
        bytes,
    ))
}

/// What decides whether two of a zone's names get the same answer for the
/// types they lack and for the names below them that do not exist.
///
/// Such an answer is the zone's SOA in the authority section, its owner and
/// the names in its RDATA compressed against the question. For a name not at
/// or below a cut, whose own labels the SOA does not contain (not the MNAME,
/// the RNAME or one of their ancestors), the bytes then depend only on the
/// zone, the name's parent and the length of its first label: the general
/// path is asked once per such (parent, length) instead of once per name
/// (twice as fast for a zone of a million names; debug builds still ask for
/// every name and compare).
struct ZoneShape {
    /// The zone's cuts (names with NS other than the apex).
    cuts: rustc_hash::FxHashSet<Vec<u8>>,
    /// The SOA's MNAME and RNAME and every name above them (lower-cased
    /// wire): a name among them is answered on its own.
    in_soa: Vec<Vec<u8>>,
    /// The parents of names whose first label is one octet: only below these
    /// can `\000.<name>` or `*.<name>` exist, which saves a large zone's
    /// build two lookups per name.
    short_parents: rustc_hash::FxHashSet<Vec<u8>>,
}

impl ZoneShape {
    fn new(zone: &Zone) -> ZoneShape {
        ZoneShape {
            cuts: zone.nodes.cuts().map(|c| c.to_vec()).collect(),
            in_soa: zone
                .negative_soa
                .rdatas()
                .iter()
                .flat_map(|rd| {
                    // MNAME, then RNAME, uncompressed at the start of the RDATA.
                    let m = name::wire_name_len(rd).unwrap_or(rd.len());
                    let r = rd.get(m..).and_then(name::wire_name_len).unwrap_or(0);
                    [&rd[..m], &rd[m..m + r]]
                })
                .flat_map(|n| name::label_offsets(n).map(move |o| n[o..].to_ascii_lowercase()))
                .collect(),
            short_parents: (&zone.nodes)
                .into_iter()
                .filter_map(|(k, _)| {
                    let mut buf = [0u8; name::MAX_NAME_LEN];
                    let k = k.whole(&mut buf);
                    k.strip_prefix(&[1u8][..])
                        .and_then(|r| r.get(1..))
                        .map(<[u8]>::to_vec)
                })
                .collect(),
        }
    }

    /// Whether `key` (lower-cased wire) is the SOA's MNAME, RNAME or a name
    /// above them: its answers for the types it lacks and for the names below
    /// it are then its own, not its shape's (see the type's documentation).
    fn in_soa(&self, key: &[u8]) -> bool {
        self.in_soa.iter().any(|n| n.as_slice() == key)
    }

    /// Whether `key` is a cut or a name below one (answered with a referral).
    fn at_or_below_cut(&self, key: &[u8]) -> bool {
        name::nearest_ancestor(key, true, |a| self.cuts.contains(a)).is_some()
    }
}

/// Names in one part of the build at most (see [`FastTable::build`]).
const PART_NAMES: usize = 1 << 16;

/// Lines of [`Builder::recent`]: 4,096 of 16 bytes (a hash and a number).
const RECENT: usize = 4096;

/// What [`Builder::by_shape`] remembers an answer by: zone, the name's parent,
/// its first label's length, and whether it is the answer for the names below.
type ShapeKey<'z> = (usize, &'z [u8], u8, bool);

/// What one builder made: the entries of its share of the names, in order,
/// and its distinct bodies.
#[derive(Debug, Default)]
struct Part {
    entries: Vec<Entry>,
    /// Bodies in the layout of [`write_body_into`], end to end.
    bytes: Vec<u8>,
    /// Where each body starts in `bytes`, by its number.
    offsets: Vec<u32>,
}

/// One part's builder: asks the general path, and keeps each distinct body
/// once in its own bytes.
struct Builder<'s> {
    snap: &'s Snapshot,
    shapes: &'s [ZoneShape],
    /// Answers already built for a [`ShapeKey`].
    by_shape: FxHashMap<ShapeKey<'s>, Option<BodyRef>>,
    /// Bodies in the layout of [`write_body_into`], end to end.
    bytes: Vec<u8>,
    /// The numbers of the distinct bodies, by their hash (many names share a
    /// NODATA or NXDOMAIN body).
    distinct: HashTable<u32>,
    /// Where each body kept so far starts in `bytes`, by its number.
    offsets: Vec<u32>,
    /// The last own-records body kept in each line, by hash: (hash, number),
    /// number `NONE` for none (see [`Builder::keep_own`]).
    recent: Box<[(u64, u32)]>,
    /// The zone of the entry being built is signed: each body gets its DO=1
    /// form too.
    signed: bool,
    /// The made-up query, its response and a body being laid out, reused.
    pkt: Vec<u8>,
    out: Vec<u8>,
    body: Vec<u8>,
}

impl Part {
    /// Body number `n`, whole.
    fn body(&self, n: u32) -> Option<&[u8]> {
        body_at(&self.bytes, *self.offsets.get(n as usize)? as usize)
    }
}

/// The body written at `at` in `bytes`, whole.
fn body_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let b = bytes.get(at..)?;
    let (h, n) = Head::read(b)?;
    b.get(..h.body_len(n))
}

/// The builder's number of the DO=1 form of `body`, if it has one.
fn body_link(body: &[u8]) -> Option<u32> {
    Head::read(body)?.0.link
}

/// Appends a body: its [`Head`] (flags, counts, zone slot, the link to the
/// DO=1 form if there is one: the builder's number of that body, which
/// packing makes its arena offset), the relocations, the bytes (read back by
/// [`FastTable::body`]).
#[allow(clippy::too_many_arguments)]
fn write_body_into(
    v: &mut Vec<u8>,
    flags: u16,
    counts: [u16; 3],
    zone_slot: Option<u16>,
    link: Option<u32>,
    relocs: &[u16],
    bytes: &[u8],
) -> Option<()> {
    Head {
        flags,
        counts,
        zone_slot,
        link,
        relocs: u16::try_from(relocs.len()).ok()?,
        len: u16::try_from(bytes.len()).ok()?,
    }
    .write(v);
    for r in relocs {
        v.extend_from_slice(&r.to_be_bytes());
    }
    v.extend_from_slice(bytes);
    Some(())
}

impl<'s> Builder<'s> {
    /// A builder for a part of about `names` names (most with a body of
    /// their own, a few dozen bytes).
    fn new(snap: &'s Snapshot, shapes: &'s [ZoneShape], names: usize) -> Builder<'s> {
        Builder {
            snap,
            shapes,
            by_shape: FxHashMap::default(),
            bytes: Vec::with_capacity(names * 32),
            distinct: HashTable::new(),
            offsets: Vec::with_capacity(names),
            recent: vec![(0, NONE); RECENT].into_boxed_slice(),
            signed: false,
            pkt: Vec::new(),
            out: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The part, once every entry is built.
    fn into_part(self, entries: Vec<Entry>) -> Part {
        Part {
            entries,
            offsets: self.offsets,
            bytes: self.bytes,
        }
    }

    fn entry(
        &mut self,
        zi: usize,
        zone: &'s Zone,
        key: &'s [u8],
        node: &'s crate::zone::Node,
    ) -> Entry {
        let steered = node.steer().is_some();
        let has_cname = node.get(rtype::CNAME).is_some();
        // A signed zone's answers have a DO=1 form, whose proofs are the name's
        // own: neither shortcut below holds for them.
        self.signed = zone.dnssec.is_some();
        // Answered from the zone's own data, not with a referral.
        let ours = !steered && self.shapes.get(zi).is_some_and(|s| !s.at_or_below_cut(key));
        // Its NODATA and NXDOMAIN bodies are its shape's.
        let shape = (ours
            && !self.signed
            && key.len() > 1
            && self.shapes.get(zi).is_some_and(|s| !s.in_soa(key)))
        .then(|| (zi, &key[1 + usize::from(key[0])..], key[0]));
        // Its own records answer its A, AAAA and TXT, nothing added.
        let plain = ours && !has_cname && !self.signed;
        let mut exact = Answers::default();
        let mut types: SmallVec<[u16; 4]> = node.rrsets.iter().map(|s| s.rtype()).collect();
        if has_cname {
            // Beside a CNAME, every type chases it: prebuild the common ones.
            types.extend([rtype::A, rtype::AAAA]);
        }
        for t in types {
            if steered && matches!(t, rtype::A | rtype::AAAA | rtype::CNAME) {
                continue;
            }
            if exact.types.iter().any(|(x, _)| *x == t) {
                continue;
            }
            let own = match (plain, node.get(t)) {
                (true, Some(set)) if matches!(t, rtype::A | rtype::AAAA | rtype::TXT) => {
                    self.own_records(zone, key, set)
                }
                _ => self.body(key, t, 0),
            };
            if let Some(b) = own {
                exact.types.push((t, b));
            }
        }
        if !has_cname {
            exact.other = self.by_shape(shape, false, |b| b.other(node, key, 0));
        }
        // The general path's lookup must come to this name's policy for A (no cut
        // above it): then the decision can start from the policy.
        let policy = node.steer().filter(|&i| {
            let a = zone.lookup(key, rtype::A, false);
            matches!(a.steer, Some((p, crate::zone::Owner::Query)) if p == i)
                && a.answer.is_empty()
                && a.authority.is_empty()
                && a.additional.is_empty()
                && a.rcode.is_none()
                && a.authoritative
        });
        Entry {
            exact,
            below: self.below(zi, zone, key, shape),
            steered,
            policy: policy.map(|i| (zi as u32, i)),
        }
    }

    /// The answers for names below `key` that do not exist, built for `\000.<key>`.
    fn below(
        &mut self,
        zi: usize,
        zone: &Zone,
        key: &[u8],
        shape: Option<(usize, &'s [u8], u8)>,
    ) -> Option<Answers> {
        // `\000.<key>` and `*.<key>`, on the stack (a large zone's build asks
        // for one per name).
        let len = key.len() + 2;
        if len > name::MAX_NAME_LEN {
            return None;
        }
        let mut synth = [0u8; name::MAX_NAME_LEN];
        synth[..2].copy_from_slice(b"\x01\x00");
        synth[2..len].copy_from_slice(key);
        let synth = &synth[..len];
        let short = self
            .shapes
            .get(zi)
            .is_none_or(|s| s.short_parents.contains(key));
        if short && zone.nodes.contains_key(synth) {
            return None;
        }
        let wildcard = short
            .then(|| {
                let mut wild = [0u8; name::MAX_NAME_LEN];
                wild[..len].copy_from_slice(synth);
                wild[1] = b'*';
                zone.nodes.get(&wild[..len])
            })
            .flatten();
        let mut answers = Answers::default();
        match wildcard {
            Some(w) => {
                // A wildcard CNAME's chase depends on the query name; steered
                // wildcards are decided per query.
                if w.get(rtype::CNAME).is_some() || w.steer().is_some() {
                    return None;
                }
                for s in &w.rrsets {
                    if let Some(b) = self.body(synth, s.rtype(), 2) {
                        answers.types.push((s.rtype(), b));
                    }
                }
                answers.other = self.other(w, synth, 2);
            }
            None => {
                answers.other = self.by_shape(shape, true, |b| {
                    b.other(&crate::zone::Node::default(), synth, 2)
                });
            }
        }
        Some(answers)
    }

    /// `build`'s answer, or the one built before for the same shape (see
    /// [`ZoneShape`]); debug builds build it anyway and compare.
    fn by_shape(
        &mut self,
        shape: Option<(usize, &'s [u8], u8)>,
        below: bool,
        build: impl FnOnce(&mut Self) -> Option<BodyRef>,
    ) -> Option<BodyRef> {
        let Some((zi, parent, first)) = shape else {
            return build(self);
        };
        let key = (zi, parent, first, below);
        if let Some(&b) = self.by_shape.get(&key) {
            #[cfg(debug_assertions)]
            {
                let own = build(self);
                debug_assert!(own == b, "a name got another answer than its shape's");
            }
            return b;
        }
        let b = build(self);
        self.by_shape.insert(key, b);
        b
    }

    /// The answer for types `node` lacks (asked with one private-use type; see
    /// below for the second).
    fn other(&mut self, node: &crate::zone::Node, qname: &[u8], first: u16) -> Option<BodyRef> {
        if PROBE_TYPES.iter().any(|&t| node.get(t).is_some()) {
            return None;
        }
        let a = self.body(qname, PROBE_TYPES[0], first)?;
        // Every type a name lacks is answered alike (the general path singles
        // out only the types of its own, DS, ANY and the meta types): a second
        // private-use type is asked in debug builds, which the tests run, to
        // keep it so; in release builds that doubled a large zone's load time.
        #[cfg(debug_assertions)]
        {
            let b = self.body(qname, PROBE_TYPES[1], first);
            debug_assert!(
                b.as_ref() == Some(&a),
                "two types a name lacks got different answers"
            );
        }
        Some(a)
    }

    /// The answer of `key`'s own `set`, which holds no names and adds nothing
    /// to the other sections, written here rather than by the general path
    /// (a third of a large zone's build); debug builds ask the general path
    /// too and compare.
    fn own_records(
        &mut self,
        zone: &Zone,
        key: &[u8],
        set: &crate::zone::RRset,
    ) -> Option<BodyRef> {
        let mut bytes = std::mem::take(&mut self.out);
        bytes.clear();
        let mut n = 0u16;
        for r in set.rdatas().wire() {
            // The owner: a pointer to the question's name.
            bytes.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
            bytes.extend_from_slice(r);
            n = n.checked_add(1)?;
        }
        self.body.clear();
        let kept = write_body_into(
            &mut self.body,
            0x0400,
            [n, 0, 0],
            Some(zone.metrics_slot),
            None,
            &[],
            &bytes,
        );
        self.out = bytes;
        kept?;
        let b = self.keep_own();
        #[cfg(debug_assertions)]
        {
            let general = self.body(key, set.rtype(), 0);
            let bytes = |r: Option<BodyRef>| {
                let at = *self.offsets.get(r?.0 as usize)?;
                body_at(&self.bytes, at as usize)
            };
            debug_assert!(
                bytes(general) == bytes(b),
                "{key:?} type {}: own records differ",
                set.rtype()
            );
        }
        #[cfg(not(debug_assertions))]
        let _ = key;
        b
    }

    /// Runs the general path on a query for `qname`/`qtype` and keeps the sections
    /// after the question. `first` is the length of a made-up first label (with its
    /// length byte), whose pointers are to move; 0 for a real name.
    /// In a signed zone, the body links to its DO=1 form, built alike.
    fn body(&mut self, qname: &[u8], qtype: u16, first: u16) -> Option<BodyRef> {
        let link = if self.signed {
            let signed = self
                .lay_out(qname, qtype, first, true, None)
                .and_then(|()| self.keep_body());
            Some(signed.map_or(NONE, |b| b.0))
        } else {
            None
        };
        self.lay_out(qname, qtype, first, false, link)?;
        self.keep_body()
    }

    /// Asks the general path for `qname`/`qtype` (with DO=1 if `dnssec`) and
    /// lays out in `self.body` the sections after the question, OPT left out.
    fn lay_out(
        &mut self,
        qname: &[u8],
        qtype: u16,
        first: u16,
        dnssec: bool,
        link: Option<u32>,
    ) -> Option<()> {
        self.pkt.clear();
        self.pkt
            .extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(dnssec)]);
        self.pkt.extend_from_slice(qname);
        self.pkt.extend_from_slice(&qtype.to_be_bytes());
        self.pkt.extend_from_slice(&class::IN.to_be_bytes());
        let question_end = self.pkt.len();
        if dnssec {
            // OPT: root, type 41, payload 1232, DO set, no options.
            self.pkt
                .extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        // TCP: no size limit, so nothing is cut; the size is checked per query.
        let o = handle(
            self.snap,
            &self.pkt,
            IpAddr::from([127, 0, 0, 1]),
            Transport::Tcp,
            &mut self.out,
        );
        if !o.sent || o.steered.is_some() || o.truncated || self.out.len() < question_end {
            return None;
        }
        let (flags, mut counts) = response_bits(&self.out)?;
        // Only answers a zone gave: NOERROR, NXDOMAIN.
        if !matches!(flags & 0x0f, 0 | 3) {
            return None;
        }
        let mut bytes = &self.out[question_end..];
        if dnssec {
            // The OPT record, last: written per query.
            let opt_at = bytes.len().checked_sub(11)?;
            let opt = &bytes[opt_at..];
            if counts[2] == 0 || opt[..3] != [0, 0, 41] || opt[9..] != [0, 0] {
                return None;
            }
            counts[2] -= 1;
            bytes = &bytes[..opt_at];
            // Below a name, an authoritative answer's NSEC depends on the
            // name asked (the chain's covering NSEC, compact denial's NSEC at
            // the name); a referral's is the cut's.
            let aa = flags & 0x0400 != 0;
            if first > 0 && aa && has_type(bytes, counts, rtype::NSEC)? {
                return None;
            }
        }
        let relocs = if first > 0 {
            relocations(bytes, counts, first)?
        } else {
            Box::default()
        };
        self.body.clear();
        write_body_into(
            &mut self.body,
            flags,
            counts,
            o.zone_slot,
            link,
            &relocs,
            bytes,
        )
    }

    /// The body laid out in `self.body`, kept once among the part's bodies.
    fn keep_body(&mut self) -> Option<BodyRef> {
        let h = hash(&self.body);
        let seen = self.distinct.find(h, |&n| self.is_kept(n));
        let n = match seen {
            Some(&n) => n,
            None => {
                let n = self.append()?;
                let (all, offsets) = (&self.bytes, &self.offsets);
                self.distinct.insert_unique(h, n, |&x| {
                    let at = offsets.get(x as usize).map_or(usize::MAX, |&a| a as usize);
                    hash(body_at(all, at).unwrap_or_default())
                });
                n
            }
        };
        Some(BodyRef(n))
    }

    /// Whether body number `n` is the one laid out in `self.body`.
    fn is_kept(&self, n: u32) -> bool {
        self.offsets.get(n as usize).is_some_and(|&at| {
            let at = at as usize;
            self.bytes.get(at..at + self.body.len()) == Some(&self.body[..])
        })
    }

    /// [`Builder::keep_body`] for a name's own records, which few names share:
    /// looked for only among the bodies last kept in the same line of a small
    /// table (it stays in cache), not among all (a cache miss per name, a
    /// third of a large zone's build). Names with the same address one after
    /// another still share their body.
    fn keep_own(&mut self) -> Option<BodyRef> {
        let h = hash(&self.body);
        let line = h as usize % RECENT;
        let (seen_h, seen) = self.recent[line];
        if seen != NONE && seen_h == h && self.is_kept(seen) {
            return Some(BodyRef(seen));
        }
        let n = self.append()?;
        self.recent[line] = (h, n);
        Some(BodyRef(n))
    }

    /// Appends the body laid out in `self.body`: its number.
    fn append(&mut self) -> Option<u32> {
        let at = u32::try_from(self.bytes.len()).ok()?;
        let n = u32::try_from(self.offsets.len()).ok()?;
        self.offsets.push(at);
        self.bytes.extend_from_slice(&self.body);
        Some(n)
    }
}

/// For every steered name, endpoint, A and AAAA, with the normal and the
/// degraded TTL: the answer made of the endpoint's whole address set, capped at
/// the name's `max_answers`, as [`super::handler::apply_decision`] builds it,
/// written by the general path's writer. In a signed zone, also its DO=1 form:
/// the set with the RRSIG the zone's signing made for it at the name, as the
/// general path sends it, where the cap leaves the set whole and the name is
/// not a wildcard (whose answer is signed at the name asked). The bodies go end
/// to end into one byte vector, each by its [`steer_key`].
fn steered_bodies(snap: &Snapshot) -> SteeredBodies {
    let mut out = SteeredBodies::default();
    let mut buf = Vec::new();
    for (zi, steering) in snap.steering.iter().enumerate() {
        let signer = snap
            .zones
            .zones()
            .get(zi)
            .and_then(|z| snap.signer_of(z))
            .map(|s| s.name());
        for (pi, p) in steering.names.iter().enumerate() {
            let wildcard = p.name.wire().starts_with(b"\x01*");
            for (ei, orig) in p.endpoints.iter().enumerate() {
                if orig.cname.is_some() || p.max_answers == 0 {
                    continue;
                }
                for (qtype, degraded) in [
                    (rtype::A, false),
                    (rtype::A, true),
                    (rtype::AAAA, false),
                    (rtype::AAAA, true),
                ] {
                    let e = match (degraded, &orig.degraded) {
                        (false, _) => orig,
                        (true, Some(d)) => d,
                        (true, None) => continue,
                    };
                    let set = if qtype == rtype::A { &e.a } else { &e.aaaa };
                    let (Some(set), Ok(ei)) = (set, u32::try_from(ei)) else {
                        continue;
                    };
                    let take = (p.max_answers as usize).min(set.rdatas().len());
                    let sig = signer
                        .and_then(|s| set.rrsig(s))
                        .filter(|_| !wildcard && take == set.rdatas().len());
                    let key =
                        |with_sig| steer_key(zi as u32, pi as u32, ei, qtype, degraded, with_sig);
                    out.add(&mut buf, key(false), set, take, None);
                    if sig.is_some() {
                        out.add(&mut buf, key(true), set, take, sig);
                    }
                }
            }
        }
    }
    out
}

/// Prebuilt steered bodies: see [`steered_bodies`].
#[derive(Default)]
struct SteeredBodies {
    /// Bodies in the layout of [`write_body_into`], end to end.
    bytes: Vec<u8>,
    /// Each body's key and where it starts in `bytes`.
    at: Vec<(u128, usize)>,
}

impl SteeredBodies {
    /// Writes the answer of `take` records of `set` (and `sig`, its RRSIG, after
    /// them) at the query's name, and keeps its body under `key`; `buf` is scratch.
    fn add(
        &mut self,
        buf: &mut Vec<u8>,
        key: u128,
        set: &RRset,
        take: usize,
        sig: Option<Sigs<'_>>,
    ) {
        let question = [0u8, 0, 1, 0, 1];
        let mut answer = Answer {
            authoritative: true,
            ..Answer::default()
        };
        answer.answer.push(Rec {
            owner: Owner::Query,
            set,
            take: take as u16,
            sig,
        });
        let header = HeaderOut {
            id: 0,
            opcode: 0,
            rd: false,
            cd: false,
            aa: true,
            rcode: Rcode::NoError,
        };
        write_response(
            buf,
            header,
            Some(&question),
            &question[..1],
            Some(&answer),
            None,
            usize::from(u16::MAX),
        );
        let (Some((flags, counts)), Some(bytes)) =
            (response_bits(buf), buf.get(HEADER_LEN + question.len()..))
        else {
            return;
        };
        let at = self.bytes.len();
        // It fails (a body over 64 KiB) before writing anything.
        if write_body_into(&mut self.bytes, flags, counts, None, None, &[], bytes).is_some() {
            self.at.push((key, at));
        }
    }

    /// Each key and its body.
    fn iter(&self) -> impl Iterator<Item = (u128, &[u8])> + '_ {
        self.at
            .iter()
            .filter_map(|&(k, at)| Some((k, body_at(&self.bytes, at)?)))
    }
}

/// Offsets in `bytes` (the records after the question) of the
/// compression pointers that point past the question's first label (`first` bytes):
/// into the rest of the question or at earlier records, in owner names and in the
/// names inside RDATA. Pointers at the query name itself stay. `None` if the records
/// do not parse.
fn relocations(bytes: &[u8], counts: [u16; 3], first: u16) -> Option<Box<[u16]>> {
    let mut out = Vec::new();
    let mut p = 0usize;
    let records: usize = counts.iter().map(|&c| c as usize).sum();
    for _ in 0..records {
        p = pointers_in_name(bytes, p, first, &mut out)?;
        let t = u16::from_be_bytes([*bytes.get(p)?, *bytes.get(p + 1)?]);
        let rdlen = u16::from_be_bytes([*bytes.get(p + 8)?, *bytes.get(p + 9)?]) as usize;
        let rdata = p + 10;
        if let Some((skip, names)) = super::write::rdata_names(t) {
            let mut q = rdata + skip;
            for _ in 0..names {
                q = pointers_in_name(bytes, q, first, &mut out)?;
            }
        }
        p = rdata + rdlen;
    }
    (p == bytes.len()).then(|| out.into_boxed_slice())
}

/// Whether the records in `bytes` hold one of type `t`; `None` if they do
/// not parse.
fn has_type(bytes: &[u8], counts: [u16; 3], t: u16) -> Option<bool> {
    let mut p = 0usize;
    let mut found = false;
    let records: usize = counts.iter().map(|&c| c as usize).sum();
    for _ in 0..records {
        p = pointers_in_name(bytes, p, 0, &mut Vec::new())?;
        found |= be16(bytes, p)? == t;
        p += 10 + usize::from(be16(bytes, p + 8)?);
    }
    (p == bytes.len()).then_some(found)
}

/// Walks the name at `p` (labels, ended by the root or a pointer), adding to `out`
/// the offset of a pointer that must move; the offset just past the name.
fn pointers_in_name(bytes: &[u8], mut p: usize, first: u16, out: &mut Vec<u16>) -> Option<usize> {
    loop {
        let len = *bytes.get(p)?;
        if len & 0xc0 == 0xc0 {
            let ptr = u16::from_be_bytes([len, *bytes.get(p + 1)?]) & 0x3fff;
            if ptr as usize > HEADER_LEN {
                if (ptr as usize) < HEADER_LEN + first as usize {
                    // Into the made-up label: cannot be.
                    return None;
                }
                out.push(u16::try_from(p).ok()?);
            } else if ptr as usize != HEADER_LEN {
                return None;
            }
            return Some(p + 2);
        }
        p += 1 + len as usize;
        if len == 0 {
            return Some(p);
        }
    }
}
