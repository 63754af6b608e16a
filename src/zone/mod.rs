//! Static zone data and the lookup algorithm of RFC 1034 §4.3.2, with wildcards per
//! RFC 4592, delegations, CNAME chains, and NXDOMAIN versus NODATA (RFC 2308).
//!
//! A [`Zone`] is immutable once built. Every RRset carries its records prebuilt in wire
//! format after the owner name, so answering a query copies bytes; it never encodes a
//! record. [`Zone::lookup`] returns references into the zone and allocates nothing for
//! ordinary answers.

pub mod build;
pub mod master;
pub mod name;
pub mod nodes;
pub mod rdata;
pub mod rrsets;
pub mod rtype;
pub mod soa;
pub mod stored;
pub mod tsig;
pub mod ttl;

use std::num::NonZeroU16;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

pub use nodes::Nodes;
pub use rrsets::RRsets;
pub use stored::StoredName;

pub use name::Name;

/// A value that does not parse, with a message saying what would be valid. The
/// config loader attaches file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The largest configuration file read: far above any real zone (a 100,000-record
/// zone is about 3 MB), and a bound on what a mistaken path can cost.
pub(crate) const MAX_FILE_BYTES: u64 = 512 << 20;

/// Reads a configuration file: regular files only (not a device, a FIFO or a
/// folder, which could block or never end), at most [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_FILE_BYTES) as usize);
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

/// [`read_file`] as UTF-8 text.
pub(crate) fn read_text_file(path: &std::path::Path) -> std::io::Result<String> {
    String::from_utf8(read_file(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl From<String> for Invalid {
    fn from(s: String) -> Invalid {
        Invalid(s)
    }
}

/// Classes (RFC 1035 §3.2.4, RFC 2136 §1.2).
pub mod class {
    pub const IN: u16 = 1;
    pub(crate) const CH: u16 = 3;
    pub const ANY: u16 = 255;
}

/// One RRset: records of one owner, type and class, sharing a TTL (RFC 2181 §5).
///
/// Its records are kept in one block, each as it follows its owner name on the
/// wire: TYPE, CLASS, TTL, RDLENGTH, RDATA (RFC 1035 §4.1.3), so answers copy
/// bytes. When the set is signed, the RRSIG records over it follow its own
/// records in the same block ([`RRset::rrsig`]), each as RDLENGTH and RDATA
/// only (see [`Sigs`]): most zones are unsigned, and a signed set's RRSIGs
/// are written only after it. The class is the records'
/// own (read from the first, IN when there is none); the type and TTL, which
/// answers look at, are kept beside the block too. 32 bytes, a million of
/// them in a large zone.
///
/// A set of one A record (14 bytes) is kept in the struct itself, not on the
/// heap: a zone's many small sets were each a 32-byte heap block allocated
/// between the load's temporaries, and those blocks kept most of the pages the
/// temporaries had used resident after the load (a 100,000-record zone held
/// 43 MB of heap pages for 20 MB of data).
#[derive(Debug, Clone)]
pub struct RRset {
    /// The records, then the RRSIG records over them.
    wire: SmallVec<[u8; INLINE_RECORDS]>,
    /// Never 0 (reserved, RFC 6895 §3.1): the niche lets [`RRsets`] keep one
    /// set in its own 32 bytes.
    rtype: NonZeroU16,
    /// Records in the set, its RRSIGs not counted: at most [`MAX_RECORDS`].
    count: u16,
    pub ttl: u32,
}

/// The most records one RRset holds: far more than one message can carry
/// (a record takes at least 12 of its 65,535 bytes).
pub const MAX_RECORDS: usize = u16::MAX as usize;

/// Bytes of records kept inline in [`RRset`]: one A record's tail.
const INLINE_RECORDS: usize = 16;

/// Bytes before the RDATA in each record of an [`RRset`].
const TAIL_HEADER: usize = 10;

/// Records of one RRset (or its RRSIGs) laid end to end, each as it follows its
/// owner name on the wire: a view of [`RRset`]'s block.
#[derive(Debug, Clone, Copy)]
pub struct Records<'a> {
    /// Starts at the first record; may go on past the last (to the RRSIGs).
    rest: &'a [u8],
    count: u16,
}

impl<'a> Records<'a> {
    /// Records in the set.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each record in wire format after its owner name.
    pub fn wire(&self) -> WireRecords<'a> {
        WireRecords {
            rest: self.rest,
            left: self.count,
        }
    }

    /// Each record's RDATA, uncompressed, as loaded.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.wire().map(|w| &w[TAIL_HEADER..])
    }

    /// The first record's RDATA.
    pub fn first(&self) -> Option<&'a [u8]> {
        self.iter().next()
    }

    /// Bytes of the records.
    fn wire_len(&self) -> usize {
        self.wire().map(<[u8]>::len).sum()
    }
}

/// The RRSIG records over an RRset, as its block keeps them after its
/// records: each one's RDLENGTH and RDATA without the signer's name, and
/// without the TYPE (RRSIG), CLASS and TTL, which are the set's; the signer
/// is the zone, whose name the reader gives ([`RRset::rrsig`]). A signed
/// name's block of an A record and its P-256 RRSIG (in a zone of 15 bytes
/// of name) took 121 bytes, a 144-byte block of glibc's malloc, and takes
/// 98, a 112-byte one.
#[derive(Debug, Clone, Copy)]
pub struct Sigs<'a> {
    /// Starts at the first RRSIG's RDLENGTH; ends after the last's RDATA.
    rest: &'a [u8],
    count: u16,
    /// TYPE, CLASS and TTL of each, as on the wire.
    head: [u8; SIG_HEAD],
    /// The signer's name, which each RDATA holds after its first
    /// [`SIG_FIXED`] bytes.
    signer: &'a [u8],
}

/// Bytes of an RRSIG record's TYPE, CLASS and TTL, which [`Sigs`] leave out.
const SIG_HEAD: usize = 8;

/// Bytes of an RRSIG's RDATA before the signer's name (RFC 4034 §3.1).
const SIG_FIXED: usize = 18;

/// One RRSIG record of [`Sigs`], as it follows its owner name on the wire:
/// TYPE, CLASS, TTL and RDLENGTH, then the RDATA in three parts.
#[derive(Debug, Clone, Copy)]
pub struct SigRecord<'a> {
    pub head: [u8; TAIL_HEADER],
    /// Type covered to key tag.
    pub fixed: &'a [u8],
    pub signer: &'a [u8],
    pub signature: &'a [u8],
}

impl SigRecord<'_> {
    /// Appends the record (after its owner) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(self.fixed);
        out.extend_from_slice(self.signer);
        out.extend_from_slice(self.signature);
    }

    /// The RDATA, whole.
    pub fn rdata(&self) -> Vec<u8> {
        [self.fixed, self.signer, self.signature].concat()
    }
}

impl<'a> Sigs<'a> {
    /// The RRSIGs in `rest` (each RDLENGTH and RDATA as kept), `None` for
    /// none; the count stops at the first that does not fit.
    fn new(rest: &'a [u8], class: u16, ttl: u32, signer: &'a [u8]) -> Option<Sigs<'a>> {
        if rest.is_empty() {
            return None;
        }
        let mut head = [0u8; SIG_HEAD];
        head[0..2].copy_from_slice(&rtype::RRSIG.to_be_bytes());
        head[2..4].copy_from_slice(&class.to_be_bytes());
        head[4..8].copy_from_slice(&ttl.to_be_bytes());
        let all = Sigs {
            rest,
            count: u16::MAX,
            head,
            signer,
        };
        let count = all.stored().count() as u16;
        Some(Sigs { count, ..all })
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each RRSIG's RDATA as kept (without the signer), at least
    /// [`SIG_FIXED`] bytes.
    fn stored(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (mut rest, mut left) = (self.rest, self.count);
        std::iter::from_fn(move || {
            left = left.checked_sub(1)?;
            let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]) as usize;
            let (rr, r) = rest.split_at_checked(2 + len)?;
            rest = r;
            rr.get(2..).filter(|rd| rd.len() >= SIG_FIXED)
        })
    }

    /// The first RRSIG's Labels field (RFC 4034 §3.1.3).
    pub fn labels(&self) -> Option<u8> {
        self.stored().next()?.get(3).copied()
    }

    /// Each RRSIG record as it follows its owner name on the wire.
    pub fn wire(&self) -> impl Iterator<Item = SigRecord<'a>> + 'a {
        let (head, signer) = (self.head, self.signer);
        self.stored().map(move |rd| {
            let mut h = [0u8; TAIL_HEADER];
            h[..SIG_HEAD].copy_from_slice(&head);
            // RDATA length was checked against u16 when it was kept.
            let len = (rd.len() + signer.len()).min(u16::MAX as usize) as u16;
            h[SIG_HEAD..].copy_from_slice(&len.to_be_bytes());
            let (fixed, signature) = rd.split_at(SIG_FIXED);
            SigRecord {
                head: h,
                fixed,
                signer,
                signature,
            }
        })
    }
}

/// Iterator over [`Records::wire`].
pub struct WireRecords<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for WireRecords<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let len = u16::from_be_bytes([*self.rest.get(8)?, *self.rest.get(9)?]) as usize;
        let (rr, rest) = self.rest.split_at_checked(TAIL_HEADER + len)?;
        self.rest = rest;
        Some(rr)
    }
}

impl RRset {
    /// An RRset of `rdatas` (the first [`MAX_RECORDS`] of them).
    pub fn new(rtype: NonZeroU16, class: u16, ttl: u32, rdatas: Vec<Box<[u8]>>) -> RRset {
        RRset::of(rtype, class, ttl, &rdatas)
    }

    /// [`RRset::new`] from borrowed RDATAs.
    pub fn of(rtype: NonZeroU16, class: u16, ttl: u32, rdatas: &[Box<[u8]>]) -> RRset {
        let rdatas = &rdatas[..rdatas.len().min(MAX_RECORDS)];
        let size = rdatas.iter().map(|rd| TAIL_HEADER + rd.len()).sum();
        let mut wire = Vec::with_capacity(size);
        for rd in rdatas {
            encode_rr_tail_into(&mut wire, rtype.get(), class, ttl, rd);
        }
        RRset {
            wire: inline_or_heap(wire),
            rtype,
            count: rdatas.len() as u16,
            ttl,
        }
    }

    /// Adds one record, for a set built record by record (a zone's load,
    /// before it is signed); [`RRset::shrink_to_fit`] gives back the room it
    /// grew into. False, and nothing added, when the set holds
    /// [`MAX_RECORDS`] already.
    /// The records' type (never 0).
    pub fn rtype(&self) -> u16 {
        self.rtype.get()
    }

    /// [`RRset::rtype`] as it is kept, to make another set of the type.
    pub(crate) fn rtype_nz(&self) -> NonZeroU16 {
        self.rtype
    }

    pub(crate) fn push(&mut self, class: u16, rdata: &[u8]) -> bool {
        if self.count as usize >= MAX_RECORDS {
            return false;
        }
        // RDATA length was checked against u16 when the record was parsed.
        let len = rdata.len().min(u16::MAX as usize);
        let mut head = [0u8; TAIL_HEADER];
        head[0..2].copy_from_slice(&self.rtype.get().to_be_bytes());
        head[2..4].copy_from_slice(&class.to_be_bytes());
        head[4..8].copy_from_slice(&self.ttl.to_be_bytes());
        head[8..10].copy_from_slice(&(len as u16).to_be_bytes());
        // One reservation for the record, exact for a set's first (most
        // sets hold one record).
        if self.wire.len() + TAIL_HEADER + len > self.wire.capacity() {
            self.wire
                .reserve_exact(TAIL_HEADER + len.max(self.wire.len()));
        }
        self.wire.extend_from_slice(&head);
        self.wire.extend_from_slice(&rdata[..len]);
        self.count += 1;
        true
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.wire.shrink_to_fit();
    }

    /// The records, prebuilt in wire format after their owner name: answers
    /// copy these bytes.
    pub fn rdatas(&self) -> Records<'_> {
        Records {
            rest: &self.wire,
            count: self.count,
        }
    }

    /// The class of the records (RFC 1035 §3.2.4): IN for a set of none.
    pub fn class(&self) -> u16 {
        match self.wire.get(2..4) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => class::IN,
        }
    }

    /// Where the set's RRSIGs start in its block: after its own records.
    fn records_end(&self) -> usize {
        self.rdatas().wire_len()
    }

    /// The RRSIG records over these records, prebuilt when the zone is signed
    /// (see `dnssec`), `signer` (the zone's name, lower-cased wire) their
    /// signer; only DO=1 answers write them.
    pub fn rrsig<'a>(&'a self, signer: &'a [u8]) -> Option<Sigs<'a>> {
        let rest = self.wire.get(self.records_end()..)?;
        Sigs::new(rest, self.class(), self.ttl, signer)
    }

    /// Signs the set: `sigs` (RRSIG RDATAs over its records, with its TTL and
    /// class, signed by `signer`, lower-cased wire) replace the RRSIGs it had.
    /// At most [`MAX_RECORDS`] are kept; one not signed by `signer` is not.
    pub(crate) fn set_rrsig(&mut self, signer: &[u8], sigs: &[Box<[u8]>]) {
        let by_signer = |rd: &&[u8]| rd.get(SIG_FIXED..SIG_FIXED + signer.len()) == Some(signer);
        let sigs: Vec<&[u8]> = sigs
            .iter()
            .map(|rd| &rd[..])
            .filter(by_signer)
            .take(MAX_RECORDS)
            .collect();
        let end = self.records_end();
        let size = end
            + sigs
                .iter()
                .map(|rd| 2 + rd.len() - signer.len())
                .sum::<usize>();
        let mut wire = Vec::with_capacity(size);
        wire.extend_from_slice(&self.wire[..end]);
        for rd in sigs {
            // RDATA length was checked against u16 when it was made.
            let len = (rd.len() - signer.len()).min(u16::MAX as usize);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
            wire.extend_from_slice(&rd[..SIG_FIXED]);
            wire.extend_from_slice(&rd[SIG_FIXED + signer.len()..]);
        }
        self.wire = inline_or_heap(wire);
    }

    /// One TXT record holding `strings` as character-strings, each split at 255
    /// bytes (RFC 1035 §3.3.14), for answers made of text: CHAOS identities and
    /// explain traces.
    pub fn txt<S: AsRef<str>>(class: u16, ttl: u32, strings: &[S]) -> RRset {
        let mut rd = Vec::new();
        for s in strings {
            for chunk in s.as_ref().as_bytes().chunks(255) {
                if rd.len() + chunk.len() + 1 > u16::MAX as usize {
                    break;
                }
                rd.push(chunk.len() as u8);
                rd.extend_from_slice(chunk);
            }
        }
        RRset::new(rtype::nz::TXT, class, ttl, vec![rd.into_boxed_slice()])
    }

    /// The names the records point at (NS, CNAME, MX, SRV, PTR targets), for
    /// CNAME chasing and the additional section, lower-cased: read from the
    /// RDATA each time rather than kept beside it (a zone of a million names
    /// spent 16 bytes a name on the list, most of them empty). A master
    /// file's names are lower-cased as they are read, so only a name a
    /// primary sent with capitals is copied.
    pub(crate) fn targets(&self) -> impl Iterator<Item = std::borrow::Cow<'_, [u8]>> + '_ {
        let at = rdata::target_at(self.rtype());
        self.rdatas().iter().filter_map(move |rd| {
            let w = rd.get(at?..)?;
            if name::wire_name_len(w)? != w.len() {
                return None;
            }
            Some(if w.iter().any(u8::is_ascii_uppercase) {
                std::borrow::Cow::Owned(w.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(w)
            })
        })
    }

    /// The same records with another TTL, for example the SOA of negative answers.
    pub(crate) fn with_ttl(&self, ttl: u32) -> RRset {
        let rdatas = self.rdatas().iter().map(Box::from).collect();
        RRset::new(self.rtype, self.class(), ttl, rdatas)
    }

    /// Wire size of the whole RRset when every owner name is a 2-byte pointer.
    pub(crate) fn wire_len_compressed(&self) -> usize {
        self.records_end() + 2 * self.count as usize
    }
}

/// `wire` in an RRset's block: in the struct itself when it fits.
fn inline_or_heap(wire: Vec<u8>) -> SmallVec<[u8; INLINE_RECORDS]> {
    if wire.len() <= INLINE_RECORDS {
        SmallVec::from_slice(&wire)
    } else {
        SmallVec::from_vec(wire)
    }
}

/// Appends TYPE, CLASS, TTL, RDLENGTH and RDATA of one record (RFC 1035 §4.1.3).
fn encode_rr_tail_into(v: &mut Vec<u8>, rtype: u16, class: u16, ttl: u32, rdata: &[u8]) {
    v.extend_from_slice(&rtype.to_be_bytes());
    v.extend_from_slice(&class.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    // RDATA length was checked against u16 when the record was parsed.
    let len = rdata.len().min(u16::MAX as usize);
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend_from_slice(&rdata[..len]);
}

/// One name in a zone and its data. A node with no RRsets is an empty
/// non-terminal (RFC 8020, RFC 4592 §2.2.2): it exists, so queries for it are NODATA.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// RRsets sorted by type; most names have one, kept in the node itself.
    pub rrsets: RRsets,
    /// Where the owner name sits in [`Nodes`]' arena (stored relative to
    /// the zone's origin; see `nodes`).
    name_at: u32,
    /// [`Node::cut`] in the top bit, [`Node::steer`] + 1 below it (0: not
    /// steered): four bytes, so that a node is 40.
    bits: u32,
}

/// [`Node::bits`]' flag of a cut.
const CUT: u32 = 1 << 31;

impl Node {
    /// NS at a name other than the apex: a zone cut. Everything below is not ours.
    pub fn cut(&self) -> bool {
        self.bits & CUT != 0
    }

    pub(crate) fn set_cut(&mut self, cut: bool) {
        self.bits = if cut {
            self.bits | CUT
        } else {
            self.bits & !CUT
        };
    }

    /// A steered name: index into its zone's steered names (`policy::ZoneSteering`,
    /// beside the zone in the snapshot). A, AAAA, CNAME and ANY queries are
    /// answered by its policy.
    pub fn steer(&self) -> Option<u32> {
        (self.bits & !CUT).checked_sub(1)
    }

    /// Sets [`Node::steer`]; an index past 2^31 - 2 (never: steered names
    /// are counted in u32 and far fewer) leaves the name unsteered.
    pub(crate) fn set_steer(&mut self, steer: Option<u32>) {
        let v = steer
            .and_then(|i| i.checked_add(1))
            .filter(|&v| v & CUT == 0)
            .unwrap_or(0);
        self.bits = (self.bits & CUT) | v;
    }

    /// [`Node::get`] before the RRsets are sorted (while a zone is built).
    pub(crate) fn get_unsorted(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|s| s.rtype() == rtype)
    }

    pub fn get(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets
            .binary_search_by_key(&rtype, |s| s.rtype())
            .ok()
            .map(|i| &self.rrsets[i])
    }
}

/// An authoritative zone.
#[derive(Debug)]
pub struct Zone {
    pub origin: Name,
    /// Every name in the zone, empty non-terminals included, keyed by lower-cased wire.
    pub nodes: Nodes,
    /// The SOA with the negative-caching TTL min(SOA TTL, MINIMUM) (RFC 2308 §3).
    pub negative_soa: RRset,
    pub serial: u32,
    /// Where the zone came from, for status output and error messages.
    pub source: std::path::PathBuf,
    /// Where this zone's queries are counted (see `metrics`).
    pub metrics_slot: u16,
    /// Signed with DNSSEC, and how; `None` serves the zone unsigned. Set by the
    /// loader from `signing` and the server's `[dnssec]` defaults.
    pub dnssec: Option<SigningPolicy>,
    /// What the zone's own file asks for (`dnssec = true` or a `[dnssec]` table).
    pub signing: Option<SigningChoice>,
}

/// The signing settings a zone's file gives; the rest come from the server config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningChoice {
    pub algorithm: Option<u8>,
    pub split: Option<bool>,
    pub validity: Option<u32>,
    pub refresh: Option<u32>,
    pub nsec_chain: Option<bool>,
}

/// How a zone is signed: from a policy file's `dnssec` key or the server's
/// `[dnssec]` table (see `dnssec` for the signing itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningPolicy {
    /// 13 (ECDSA P-256 with SHA-256) or 15 (Ed25519).
    pub algorithm: u8,
    /// A KSK and a ZSK instead of one combined signing key.
    pub split: bool,
    /// Seconds from inception to expiration of each signature.
    pub validity: u32,
    /// Re-sign when a signature has less than this many seconds left.
    pub refresh: u32,
    /// Denial by a classic NSEC chain prebuilt at load (walkable), instead of
    /// compact denial signed on the fly (RFC 9824).
    pub nsec_chain: bool,
    /// Where the keys are kept.
    pub key_dir: std::path::PathBuf,
}

impl SigningPolicy {
    /// `base` (the server's defaults) with what `choice` sets.
    pub fn merged(base: &SigningPolicy, choice: &SigningChoice) -> SigningPolicy {
        SigningPolicy {
            algorithm: choice.algorithm.unwrap_or(base.algorithm),
            split: choice.split.unwrap_or(base.split),
            validity: choice.validity.unwrap_or(base.validity),
            refresh: choice.refresh.unwrap_or(base.refresh),
            nsec_chain: choice.nsec_chain.unwrap_or(base.nsec_chain),
            key_dir: base.key_dir.clone(),
        }
    }
}

impl Default for SigningPolicy {
    fn default() -> SigningPolicy {
        SigningPolicy {
            algorithm: 13,
            split: false,
            validity: 14 * 86400,
            refresh: 7 * 86400,
            nsec_chain: false,
            key_dir: std::path::PathBuf::from("keys"),
        }
    }
}

impl Zone {
    /// Records in the zone (each RDATA of each RRset), for status and log lines.
    pub(crate) fn record_count(&self) -> usize {
        self.nodes
            .values()
            .flat_map(|n| n.rrsets.iter())
            .map(|s| s.rdatas().len())
            .sum()
    }
}

/// DNS response codes used by the lookup (RFC 1035 §4.1.1, RFC 6891 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// Whose name a record in a response carries.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'z> {
    /// The query name as the client wrote it (exact and wildcard-synthesized answers).
    Query,
    /// Another name from the zone (in wire form, perhaps as the zone stores
    /// it: relative to its origin): a CNAME target, an NS target, a
    /// delegation point.
    Name(StoredName<'z>),
}

/// One RRset placed in a section of a response.
#[derive(Debug, Clone, Copy)]
pub struct Rec<'z> {
    pub owner: Owner<'z>,
    pub set: &'z RRset,
    /// How many of the RRset's records to write: all but for capped steered answers.
    pub take: u16,
    /// The RRSIGs written after it, with the same owner (DO=1 answers of signed
    /// zones only).
    pub sig: Option<Sigs<'z>>,
}

impl<'z> Rec<'z> {
    pub fn new(owner: Owner<'z>, set: &'z RRset) -> Rec<'z> {
        Rec {
            owner,
            set,
            take: u16::MAX,
            sig: None,
        }
    }
}

/// Sections of a response; a section rarely holds more than a few RRsets.
pub(crate) type Section<'z> = SmallVec<[Rec<'z>; 4]>;

/// What the zone says in answer to one question.
#[derive(Debug, Default)]
pub struct Answer<'z> {
    pub rcode: Option<Rcode>,
    pub authoritative: bool,
    pub answer: Section<'z>,
    pub authority: Section<'z>,
    pub additional: Section<'z>,
    /// Additional records that must fit or the response is truncated: glue that a
    /// referral cannot do without (RFC 9471).
    pub glue_required: bool,
    /// The query reached a steered name (directly or along a CNAME): its index
    /// among the zone's steered names ([`Node::steer`]); the server decides which
    /// endpoints answer and appends them to the answer section.
    pub steer: Option<(u32, Owner<'z>)>,
    /// The query name did not exist and a wildcard answered for it: where the
    /// wildcard's closest encloser starts in the query name.
    pub wildcard_at: Option<u8>,
}

impl Answer<'_> {
    pub fn rcode(&self) -> Rcode {
        self.rcode.unwrap_or(Rcode::NoError)
    }
}

/// How many CNAMEs one answer follows before it stops (loops are cut here too).
pub(crate) const MAX_CNAME_CHAIN: usize = 12;

impl Zone {
    /// Answers `qname` (lower-cased wire, at or below the origin) for `qtype`.
    /// `all_any` gives every RRset for ANY; otherwise ANY gets one RRset (RFC 8482 §4.1).
    pub fn lookup<'z>(&'z self, qname: &[u8], qtype: u16, all_any: bool) -> Answer<'z> {
        let mut ans = Answer {
            authoritative: true,
            ..Answer::default()
        };
        let step = Step {
            qname,
            qtype,
            all_any,
        };
        self.resolve(&step, qname, Owner::Query, &mut ans, 0);
        ans
    }

    /// One step of the RFC 1034 §4.3.2 algorithm for `name`; recurses along CNAMEs.
    fn resolve<'z>(
        &'z self,
        step: &Step<'_>,
        name: &[u8],
        owner: Owner<'z>,
        ans: &mut Answer<'z>,
        depth: usize,
    ) {
        let qtype = step.qtype;
        let origin_len = self.origin.wire().len();
        // Label start positions of `name`, from the leftmost label to the origin.
        let mut starts: SmallVec<[usize; 16]> = SmallVec::new();
        for o in name::label_offsets(name) {
            if name.len() - o < origin_len {
                break;
            }
            starts.push(o);
        }
        // `starts` ends with the origin (name.len() - origin_len). Walk down from it.
        let mut encloser: Option<(StoredName<'z>, &'z Node)> = None;
        for (i, &pos) in starts.iter().enumerate().rev() {
            match self.nodes.get_key_value(&name[pos..]) {
                Some((key, node)) => {
                    let is_qname = i == 0;
                    if node.cut() && !(is_qname && qtype == rtype::DS) {
                        self.referral(key, node, ans);
                        return;
                    }
                    encloser = Some((key, node));
                    if is_qname {
                        self.answer_node(step, node, owner, ans, depth);
                        return;
                    }
                }
                None => break,
            }
        }
        // The name does not exist. Its closest encloser is `encloser`; the source of
        // synthesis is `*.<closest encloser>` (RFC 4592 §3.3.1).
        let Some((ce, _)) = encloser else {
            // Not even the origin exists: not a name of this zone.
            ans.rcode = Some(Rcode::NxDomain);
            ans.authority.push(Rec::new(
                Owner::Name(self.origin.wire().into()),
                &self.negative_soa,
            ));
            return;
        };
        let mut wild = [0u8; name::MAX_NAME_LEN + 2];
        let wlen = ce.len() + 2;
        if wlen <= name::MAX_NAME_LEN {
            wild[0] = 1;
            wild[1] = b'*';
            for (w, b) in wild[2..wlen].iter_mut().zip(ce.bytes()) {
                *w = b;
            }
            if let Some(node) = self.nodes.get(&wild[..wlen]) {
                if depth == 0 {
                    ans.wildcard_at = u8::try_from(name.len() - ce.len()).ok();
                }
                self.answer_node(step, node, owner, ans, depth);
                return;
            }
        }
        ans.rcode = Some(Rcode::NxDomain);
        ans.authority.push(Rec::new(
            Owner::Name(self.origin.wire().into()),
            &self.negative_soa,
        ));
    }

    /// Answers from a node that matched (exactly, or as the wildcard for the name).
    fn answer_node<'z>(
        &'z self,
        step: &Step<'_>,
        node: &'z Node,
        owner: Owner<'z>,
        ans: &mut Answer<'z>,
        depth: usize,
    ) {
        let qtype = step.qtype;
        if let Some(i) = node.steer() {
            if matches!(qtype, rtype::A | rtype::AAAA | rtype::CNAME | rtype::ANY) {
                ans.steer = Some((i, owner));
                return;
            }
        }
        if qtype == rtype::ANY {
            if node.rrsets.is_empty() {
                self.nodata(ans);
                return;
            }
            for set in &node.rrsets {
                ans.answer.push(Rec::new(owner, set));
                if !step.all_any {
                    break;
                }
            }
            return;
        }
        if let Some(set) = node.get(qtype) {
            ans.answer.push(Rec::new(owner, set));
            self.additional_for(set, ans);
            return;
        }
        if let Some(cname) = node.get(rtype::CNAME) {
            ans.answer.push(Rec::new(owner, cname));
            let Some(target) = cname.targets().next() else {
                return;
            };
            // Chase inside this zone only; a loop or a long chain stops here and the
            // client's resolver carries on from the last CNAME (RFC 1034 §3.6.2).
            if depth + 1 >= MAX_CNAME_CHAIN || !name::is_wire_subdomain(&target, self.origin.wire())
            {
                return;
            }
            let seen = ans.answer.iter().any(|r| match r.owner {
                Owner::Name(n) => n.is(&target),
                Owner::Query => &*target == step.qname,
            });
            if seen {
                return;
            }
            // The owner of what the chase finds: the target as the zone holds
            // it (the name's own node, else the RDATA itself).
            let held: StoredName<'z> = match &target {
                std::borrow::Cow::Borrowed(w) => StoredName::from(*w),
                std::borrow::Cow::Owned(w) => match self.nodes.get_key_value(w) {
                    Some((k, _)) => k,
                    None => cname.rdatas().first().unwrap_or_default().into(),
                },
            };
            self.resolve(step, &target, Owner::Name(held), ans, depth + 1);
            return;
        }
        self.nodata(ans);
    }

    fn nodata<'z>(&'z self, ans: &mut Answer<'z>) {
        ans.authority.push(Rec::new(
            Owner::Name(self.origin.wire().into()),
            &self.negative_soa,
        ));
    }

    /// A referral to the child zone at a cut: NS in authority, glue in additional,
    /// AA clear unless an authoritative CNAME led here (RFC 1034 §4.3.2 step 3b).
    fn referral<'z>(&'z self, cut: StoredName<'z>, node: &'z Node, ans: &mut Answer<'z>) {
        let Some(ns) = node.get(rtype::NS) else {
            return;
        };
        if ans.answer.is_empty() {
            ans.authoritative = false;
        }
        ans.authority.push(Rec::new(Owner::Name(cut), ns));
        if let Some(ds) = node.get(rtype::DS) {
            ans.authority.push(Rec::new(Owner::Name(cut), ds));
        }
        let before = ans.additional.len();
        self.additional_for(ns, ans);
        if ans.additional.len() > before {
            ans.glue_required = true;
        }
    }

    /// Addresses of in-zone NS, MX and SRV targets for the additional section.
    fn additional_for<'z>(&'z self, set: &'z RRset, ans: &mut Answer<'z>) {
        if !matches!(set.rtype(), rtype::NS | rtype::MX | rtype::SRV) {
            return;
        }
        for target in set.targets() {
            if !name::is_wire_subdomain(&target, self.origin.wire()) {
                continue;
            }
            // The name as the zone holds it: the owner written lives as long
            // as the zone.
            let Some((held, node)) = self.nodes.get_key_value(&target) else {
                continue;
            };
            for t in [rtype::A, rtype::AAAA] {
                if let Some(addr) = node.get(t) {
                    let dup = ans.additional.iter().any(|r| std::ptr::eq(r.set, addr));
                    if !dup {
                        ans.additional.push(Rec::new(Owner::Name(held), addr));
                    }
                }
            }
        }
    }
}

impl Zone {
    /// Hangs steered names on their nodes: each name, and whether one of its
    /// endpoints answers with a CNAME; node `steer` is the name's index. Returns,
    /// per name that cannot be steered, its index and why. The policies stay
    /// with the caller (beside the zone in the snapshot).
    pub(crate) fn attach_steering<'n>(
        &mut self,
        names: impl IntoIterator<Item = (&'n Name, bool)>,
    ) -> Result<(), Vec<(usize, String)>> {
        let mut errors = Vec::new();
        let names: Vec<(&Name, bool)> = names.into_iter().collect();
        for (i, &(owner, has_cname)) in names.iter().enumerate() {
            let cut = self
                .nodes
                .iter()
                .find(|(n, node)| node.cut() && name::is_wire_subdomain(owner.wire(), &n.to_vec()));
            if let Some((c, _)) = cut {
                errors.push((
                    i,
                    format!(
                        "{} is at or below the delegation to {}; it cannot be steered here",
                        owner,
                        c.to_text()
                    ),
                ));
                continue;
            }
            if let Some(node) = self.nodes.get(owner.wire()) {
                let clash: Vec<String> = node
                    .rrsets
                    .iter()
                    .filter(|s| {
                        matches!(s.rtype(), rtype::A | rtype::AAAA | rtype::CNAME) || has_cname
                    })
                    .map(|s| rtype::name(s.rtype()))
                    .collect();
                if !clash.is_empty() {
                    errors.push((
                        i,
                        format!(
                            "{} is steered and also has static {} records; remove them from `records`",
                            owner,
                            clash.join(", ")
                        ),
                    ));
                    continue;
                }
            }
            for anc in owner.ancestors_to(&self.origin) {
                self.nodes.entry(anc.wire());
            }
            if let Some(node) = self.nodes.get_mut(owner.wire()) {
                node.set_steer(Some(i as u32));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(())
    }
}

/// The question being answered, carried along a CNAME chain.
struct Step<'q> {
    qname: &'q [u8],
    qtype: u16,
    all_any: bool,
}

/// A zone and its index in its [`ZoneSet`].
pub(crate) type ZoneAt<'z> = (usize, &'z Zone);

/// Every zone served, found by longest match on the query name.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    by_origin: FxHashMap<Name, usize>,
}

impl ZoneSet {
    pub fn new(zones: Vec<Zone>) -> ZoneSet {
        let by_origin = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.origin.clone(), i))
            .collect();
        ZoneSet { zones, by_origin }
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zone with the longest origin that contains `qname` (lower-cased wire).
    pub fn find(&self, qname: &[u8]) -> Option<&Zone> {
        self.find_with_parent(qname).map(|(z, _)| z)
    }

    /// As [`ZoneSet::find_with_parent`], with each zone's index in [`ZoneSet::zones`]
    /// (which indexes what lives beside the zones, such as their steering).
    pub fn find_at_with_parent(&self, qname: &[u8]) -> Option<(ZoneAt<'_>, Option<ZoneAt<'_>>)> {
        let mut found: Option<usize> = None;
        let starts = name::label_offsets(qname).chain(std::iter::once(qname.len() - 1));
        for o in starts {
            if let Some(&i) = self.by_origin.get(&qname[o..]) {
                match found {
                    None => found = Some(i),
                    Some(f) => return Some(((f, &self.zones[f]), Some((i, &self.zones[i])))),
                }
            }
        }
        found.map(|f| ((f, &self.zones[f]), None))
    }

    /// The deepest zone containing `qname`, and the next zone above it if we serve one:
    /// a DS query at a child apex is answered from the parent side (RFC 4035 §3.1.4.1).
    pub(crate) fn find_with_parent(&self, qname: &[u8]) -> Option<(&Zone, Option<&Zone>)> {
        let mut found: Option<&Zone> = None;
        let starts = name::label_offsets(qname).chain(std::iter::once(qname.len() - 1));
        for o in starts {
            if let Some(&i) = self.by_origin.get(&qname[o..]) {
                if found.is_none() {
                    found = Some(&self.zones[i]);
                } else {
                    return found.map(|z| (z, Some(&self.zones[i])));
                }
            }
        }
        found.map(|z| (z, None))
    }
}
/// A signed set's RRSIGs live after its records in its own block.
#[cfg(test)]
#[test]
fn rrsigs_follow_the_records_and_are_replaced_whole() {
    let a = |x: u8| -> Box<[u8]> { vec![192, 0, 2, x].into() };
    let signer = b"\x02ex\x00";
    // An RRSIG RDATA: the 18 fixed bytes (first `tag`), the signer, a signature.
    let sig_rd = |tag: u8, signature: &[u8]| -> Box<[u8]> {
        let mut rd = vec![tag; 18];
        rd.extend_from_slice(signer);
        rd.extend_from_slice(signature);
        rd.into()
    };
    let mut set = RRset::new(rtype::nz::A, class::IN, 300, vec![a(1), a(2)]);
    assert!(set.rrsig(signer).is_none());
    let unsigned_len = set.wire_len_compressed();
    set.set_rrsig(signer, &[sig_rd(1, &[13, 2]), sig_rd(2, &[15, 2, 7])]);
    // The records are as they were, and only they are the set's.
    let rds: Vec<&[u8]> = set.rdatas().iter().collect();
    assert_eq!(rds, [&[192, 0, 2, 1][..], &[192, 0, 2, 2]]);
    assert_eq!(set.rdatas().wire().count(), 2);
    assert_eq!(set.wire_len_compressed(), unsigned_len);
    assert_eq!(set.with_ttl(60).rrsig(signer).map(|s| s.len()), None);
    // The RRSIGs: type RRSIG, the set's class and TTL, the signer given back.
    let sig = set.rrsig(signer).expect("signed");
    assert_eq!((sig.len(), sig.labels()), (2, Some(1)));
    let w: Vec<Vec<u8>> = sig
        .wire()
        .map(|r| {
            let mut v = Vec::new();
            r.write(&mut v);
            v
        })
        .collect();
    let tail = |tag: u8, signature: &[u8]| {
        let mut v = vec![
            0,
            46,
            0,
            1,
            0,
            0,
            1,
            44,
            0,
            (18 + 4 + signature.len()) as u8,
        ];
        v.extend_from_slice(&sig_rd(tag, signature));
        v
    };
    assert_eq!(w, [tail(1, &[13, 2]), tail(2, &[15, 2, 7])]);
    // Kept as RDLENGTH and RDATA without the signer: the records' 28 bytes,
    // then 2 + 18 + 2 and 2 + 18 + 3.
    assert_eq!(set.wire.len(), 28 + 22 + 23);
    // Signing again replaces them; one by another signer is not kept.
    set.set_rrsig(signer, &[sig_rd(9, &[9]), Box::from(&[9u8; 30][..])]);
    let sig: Vec<Vec<u8>> = set
        .rrsig(signer)
        .expect("signed")
        .wire()
        .map(|r| r.rdata())
        .collect();
    assert_eq!(sig, [sig_rd(9, &[9]).to_vec()]);
    assert_eq!(set.rdatas().len(), 2);
    // One A record signed leaves the struct for the heap; the class is the records'.
    let mut one = RRset::new(rtype::nz::A, class::CH, 0, vec![a(3)]);
    one.set_rrsig(signer, &[sig_rd(3, &[1; 64])]);
    assert_eq!(one.rdatas().first(), Some(&[192, 0, 2, 3][..]));
    let first = one.rrsig(signer).and_then(|s| s.wire().next());
    assert_eq!(first.map(|r| r.rdata()), Some(sig_rd(3, &[1; 64]).to_vec()));
    assert_eq!((one.class(), set.class()), (class::CH, class::IN));
    assert_eq!(
        RRset::new(rtype::nz::A, class::CH, 0, vec![]).class(),
        class::IN
    );
}

/// A large zone's memory is mostly its nodes: one per name. A node's one
/// RRset takes no more room than the set itself (the type's niche tags it).
#[cfg(all(test, target_pointer_width = "64"))]
#[test]
fn a_node_is_40_bytes() {
    assert_eq!(std::mem::size_of::<RRset>(), 32);
    assert_eq!(std::mem::size_of::<RRsets>(), 32);
    assert_eq!(std::mem::size_of::<Node>(), 40);
    // The cut and the steered index share four bytes without touching.
    let mut n = Node::default();
    assert_eq!((n.cut(), n.steer()), (false, None));
    n.set_steer(Some(0));
    n.set_cut(true);
    assert_eq!((n.cut(), n.steer()), (true, Some(0)));
    n.set_steer(Some(0x7fff_fffe));
    assert_eq!((n.cut(), n.steer()), (true, Some(0x7fff_fffe)));
    n.set_cut(false);
    n.set_steer(None);
    assert_eq!((n.cut(), n.steer()), (false, None));
}
