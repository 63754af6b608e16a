//! Builds a [`Zone`] from parsed records and checks it the way NSD and Knot do at load:
//! every problem is reported at once, each with the file and line of the record.
//!
//! The records go straight into the zone's own nodes as the parser reads them
//! ([`ZoneBuilder`] is the parser's sink): no list of every parsed record, nor
//! a map of every RRset, is held beside the zone. Those two were most of a
//! large zone's load peak: 292 MiB for a 1,000,000-record zone that serves
//! from 128. What the checks need to name a set's line is a 20-byte note per
//! RRset, dropped once the zone is built.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::hash::BuildHasher;

use rustc_hash::FxHashSet;

use super::master::{RecordSink, SourceRecord};
use super::name::{self, Name};
use super::{class, rdata, rtype, Nodes, RRset, Zone};

/// A problem found while building a zone, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub(crate) struct ZoneError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Something the zone loads with but an operator should hear about.
pub(crate) type ZoneWarning = ZoneError;

/// Groups records into RRsets and checks the zone. `file` is the zone's own file,
/// named by errors that belong to no single record (a missing SOA, say).
pub(crate) fn build_zone(
    origin: &Name,
    file: &Path,
    records: Vec<SourceRecord>,
) -> Result<(Zone, Vec<ZoneWarning>), Vec<ZoneError>> {
    let mut b = ZoneBuilder::new(origin, file);
    b.expect(records.len());
    for r in records {
        b.record(r);
    }
    b.finish()
}

/// "No set": the end of a node's list of sets.
const NONE: u32 = u32::MAX;

/// Records a set holds before its duplicate check keeps hashes rather than
/// comparing each new record with every one before it.
const SCAN_MAX: usize = 16;

/// Where an RRset was first written, in the order of the file.
struct SetAt {
    node: u32,
    rtype: u16,
    /// Index into [`ZoneBuilder::files`].
    file: u32,
    line: u32,
    /// The next set of the same node, or [`NONE`].
    next: u32,
}

/// A zone built record by record; see the module's documentation.
pub(crate) struct ZoneBuilder<'a> {
    origin: &'a Name,
    file: &'a Path,
    nodes: Nodes,
    /// Every RRset, in the order each was first written.
    sets: Vec<SetAt>,
    /// By node number: its first set in `sets`, or [`NONE`] (no set yet, or an
    /// empty non-terminal).
    first_set: Vec<u32>,
    files: Vec<Arc<Path>>,
    /// (set, hash of a record's RDATA) for the sets past [`SCAN_MAX`] records.
    big: FxHashSet<(u32, u64)>,
    /// The last owner: it and every name above it have a node already.
    done: Vec<u8>,
    errors: Vec<ZoneError>,
    warnings: Vec<ZoneWarning>,
}

impl RecordSink for ZoneBuilder<'_> {
    fn expect(&mut self, records: usize) {
        if self.nodes.is_empty() {
            // Most RRsets are a name of their own (shrunk to fit at the end).
            self.nodes = Nodes::with_capacity(self.origin.wire(), records);
            self.sets.reserve(records);
            self.first_set.reserve(records);
        }
    }

    fn record(&mut self, r: SourceRecord) {
        if let Err(message) = self.refused(&r) {
            self.errors.push(record_error(&r, message));
            return;
        }
        let w = r.owner.wire();
        // Every ancestor up to the origin exists, as an empty non-terminal if
        // need be; the walk up stops at a name at or above the last owner
        // (most records are the last one's siblings or children).
        for o in name::label_offsets(w)
            .skip(1)
            .take_while(|&o| w.len() - o >= self.origin.wire().len())
        {
            if name::is_wire_subdomain(&self.done, &w[o..]) {
                break;
            }
            self.nodes.entry(&w[o..]);
        }
        self.done.clear();
        self.done.extend_from_slice(w);
        let i = self.nodes.entry_index(w);
        if self.first_set.len() < self.nodes.len() {
            self.first_set.resize(self.nodes.len(), NONE);
        }
        match self.find_set(i, r.rtype) {
            Ok(s) => self.add_to_set(s, &r),
            Err(last) => self.new_set(i, last, &r),
        }
    }
}

impl<'a> ZoneBuilder<'a> {
    pub(crate) fn new(origin: &'a Name, file: &'a Path) -> ZoneBuilder<'a> {
        ZoneBuilder {
            origin,
            file,
            nodes: Nodes::new(origin.wire()),
            sets: Vec::new(),
            first_set: Vec::new(),
            files: Vec::new(),
            big: FxHashSet::default(),
            done: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// What a zone cannot hold: owners outside it, DNAME, meta types.
    fn refused(&self, r: &SourceRecord) -> Result<(), String> {
        let origin = self.origin;
        if !r.owner.is_subdomain_of(origin) {
            return Err(format!(
                "{} {} is outside the zone {origin}; owners must be at or below the origin",
                r.owner,
                rtype::name(r.rtype)
            ));
        }
        if r.rtype == 0 {
            return Err(
                "type 0 is reserved (RFC 6895 §3.1) and cannot be stored in a zone".to_string(),
            );
        }
        if r.rtype == rtype::DNAME {
            return Err(
                "DNAME records are not supported; use a CNAME per name instead".to_string(),
            );
        }
        if matches!(
            r.rtype,
            rtype::OPT
                | rtype::TKEY
                | rtype::TSIG
                | rtype::IXFR
                | rtype::AXFR
                | rtype::MAILA
                | rtype::MAILB
                | rtype::ANY
        ) {
            return Err(format!(
                "{} is a meta type and cannot be stored in a zone",
                rtype::name(r.rtype)
            ));
        }
        Ok(())
    }

    /// Node `i`'s set of `rtype`, or the node's last set (to link a new one
    /// after), [`NONE`] when it has none.
    fn find_set(&self, i: usize, rtype: u16) -> Result<usize, u32> {
        let mut s = self.first_set[i];
        let mut last = NONE;
        while s != NONE {
            let at = &self.sets[s as usize];
            if at.rtype == rtype {
                return Ok(s as usize);
            }
            last = s;
            s = at.next;
        }
        Err(last)
    }

    fn file_index(&mut self, file: &Arc<Path>) -> u32 {
        let i = match self.files.iter().rposition(|f| Arc::ptr_eq(f, file)) {
            Some(i) => i,
            None => {
                self.files.push(Arc::clone(file));
                self.files.len() - 1
            }
        };
        i as u32
    }

    fn new_set(&mut self, i: usize, last: u32, r: &SourceRecord) {
        // Type 0 was refused before (see `refused`).
        let Some(t) = std::num::NonZeroU16::new(r.rtype) else {
            return;
        };
        let s = self.sets.len() as u32;
        let file = self.file_index(&r.file);
        self.sets.push(SetAt {
            node: i as u32,
            rtype: r.rtype,
            file,
            line: u32::try_from(r.line).unwrap_or(u32::MAX),
            next: NONE,
        });
        if last == NONE {
            self.first_set[i] = s;
        } else {
            self.sets[last as usize].next = s;
        }
        let apex = r.owner == *self.origin;
        let node = self.nodes.at_mut(i);
        // Exactly as many RRsets as the name has (see `RRsets::push`).
        let mut set = RRset::of(t, class::IN, r.ttl, &[]);
        set.push(class::IN, &r.rdata);
        node.rrsets.push(set);
        if r.rtype == rtype::NS && !apex {
            node.set_cut(true);
        }
    }

    fn add_to_set(&mut self, s: usize, r: &SourceRecord) {
        let at = &self.sets[s];
        let node = self.nodes.at_mut(at.node as usize);
        let Some(set) = node.rrsets.iter_mut().find(|x| x.rtype() == r.rtype) else {
            return;
        };
        if r.ttl != set.ttl {
            // RFC 2181 §5.2: one TTL per RRset. Like BIND, keep the first.
            self.warnings.push(ZoneError {
                file: r.file.to_path_buf(),
                line: r.line,
                message: format!(
                    "TTL {} differs from {} given at line {} for the same RRset; using {} (RFC 2181 §5.2)",
                    r.ttl, set.ttl, at.line, set.ttl
                ),
            });
        }
        // Duplicate records are one record (RFC 2181 §5).
        let n = set.rdatas().len();
        let seen = |set: &RRset| set.rdatas().iter().any(|x| x == r.rdata.as_slice());
        if n < SCAN_MAX {
            if seen(set) {
                return;
            }
        } else {
            let key = |rd: &[u8]| (s as u32, rustc_hash::FxBuildHasher.hash_one(rd));
            if n == SCAN_MAX && !self.big.contains(&key(&[])) {
                // The set just grew past scanning: its records' hashes, once.
                self.big.insert(key(&[]));
                for rd in set.rdatas().iter() {
                    self.big.insert(key(rd));
                }
            }
            if !self.big.insert(key(&r.rdata)) && seen(set) {
                return;
            }
        }
        if !set.push(class::IN, &r.rdata) {
            let message = format!(
                "more than {} {} records at {}; one RRset holds at most that many",
                super::MAX_RECORDS,
                rtype::name(r.rtype),
                r.owner
            );
            self.errors.push(record_error(r, message));
        }
    }

    /// The zone, or every problem found in it.
    pub(crate) fn finish(mut self) -> Result<(Zone, Vec<ZoneWarning>), Vec<ZoneError>> {
        let apex = self.check_apex();
        self.check_cnames();
        self.check_below_cuts();
        self.check_glue();
        let ZoneBuilder {
            origin,
            file,
            mut nodes,
            errors,
            warnings,
            ..
        } = self;
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(soa) = apex.soa else {
            return Err(vec![zone_error(
                file,
                format!("zone {origin} has no usable SOA"),
            )]);
        };
        for node in nodes.values_mut() {
            node.rrsets.sort_by_key(|s| s.rtype);
            for set in node.rrsets.iter_mut() {
                set.shrink_to_fit();
            }
        }
        nodes.shrink_to_fit();
        let negative_ttl = soa.ttl.min(apex.minimum.unwrap_or(soa.ttl));
        let zone = Zone {
            origin: origin.clone(),
            nodes,
            negative_soa: soa.with_ttl(negative_ttl),
            serial: apex.serial,
            source: file.to_path_buf(),
            metrics_slot: 0,
            dnssec: None,
            signing: None,
        };
        Ok((zone, warnings))
    }

    fn set_error(&self, at: &SetAt, message: String) -> ZoneError {
        ZoneError {
            file: self
                .files
                .get(at.file as usize)
                .map_or_else(|| self.file.to_path_buf(), |f| f.to_path_buf()),
            line: at.line as usize,
            message,
        }
    }

    /// The RRset a note is of, and its owner.
    fn set_of(&self, at: &SetAt) -> (Vec<u8>, Option<&RRset>) {
        let (owner, node) = self.nodes.at(at.node as usize);
        (
            owner.to_vec(),
            node.rrsets.iter().find(|x| x.rtype() == at.rtype),
        )
    }

    /// Exactly one SOA, at the apex, and NS records there.
    fn check_apex(&mut self) -> Apex {
        let origin = self.origin;
        let mut soa: Option<RRset> = None;
        let mut errors = Vec::new();
        for at in self.sets.iter().filter(|at| at.rtype == rtype::SOA) {
            let (owner, set) = self.set_of(at);
            let count = set.map_or(0, |s| s.rdatas().len());
            if owner != origin.wire() {
                errors.push(self.set_error(
                    at,
                    format!(
                        "SOA at {} is not at the zone apex {origin}; a zone has one SOA, at its origin",
                        name::to_text(&owner)
                    ),
                ));
            } else if count > 1 {
                errors.push(self.set_error(
                    at,
                    format!("{count} SOA records at {origin}; a zone has exactly one"),
                ));
            } else {
                soa = set.cloned();
            }
        }
        let first = soa.as_ref().and_then(|s| s.rdatas().first());
        let minimum = first
            .and_then(|rd| rd.get(rd.len().saturating_sub(4)..))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        let serial = first
            .and_then(|rd| rd.get(rd.len().saturating_sub(20)..rd.len().saturating_sub(16)))
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        let apex = self.nodes.get(origin.wire());
        let has = |t: u16| apex.is_some_and(|n| n.get_unsorted(t).is_some());
        if soa.is_none() && !has(rtype::SOA) {
            errors.push(zone_error(
                self.file,
                format!(
                    "zone {origin} has no SOA record; add one at @ (or a [soa] table in a policy file)"
                ),
            ));
        }
        if !has(rtype::NS) {
            errors.push(zone_error(
                self.file,
                format!(
                    "zone {origin} has no NS records at its apex; add at least one `@ NS <server>`"
                ),
            ));
        }
        self.errors.extend(errors);
        Apex {
            soa,
            minimum,
            serial,
        }
    }

    /// CNAME beside other data (RFC 1034 §3.6.2, RFC 2181 §10.1), or more than one.
    fn check_cnames(&mut self) {
        let mut errors = Vec::new();
        for at in self.sets.iter().filter(|at| at.rtype == rtype::CNAME) {
            let (owner, node) = self.nodes.at(at.node as usize);
            let owner = owner.to_text();
            // The node's sets are in the order they were first written.
            let others: Vec<String> = node
                .rrsets
                .iter()
                .filter(|s| s.rtype() != rtype::CNAME)
                .map(|s| rtype::name(s.rtype()))
                .collect();
            if !others.is_empty() {
                errors.push(self.set_error(
                    at,
                    format!(
                        "CNAME at {owner} beside other data ({}); a name with a CNAME can have no other records",
                        others.join(", ")
                    ),
                ));
            }
            let count = node
                .get_unsorted(rtype::CNAME)
                .map_or(0, |s| s.rdatas().len());
            if count > 1 {
                errors.push(self.set_error(
                    at,
                    format!("{count} CNAME records at {owner}; a name can have only one CNAME"),
                ));
            }
        }
        self.errors.extend(errors);
    }

    /// Data below a cut belongs to the child zone: only glue addresses are kept; the
    /// rest is warned of and never served.
    fn check_below_cuts(&mut self) {
        let nodes = &self.nodes;
        let is_cut = |a: &[u8]| nodes.get(a).is_some_and(|n| n.cut());
        let mut warnings = Vec::new();
        for at in &self.sets {
            if matches!(at.rtype, rtype::A | rtype::AAAA) {
                continue;
            }
            let (owner, _) = nodes.at(at.node as usize);
            let mut buf = [0u8; name::MAX_NAME_LEN];
            let owner = owner.whole(&mut buf);
            // The cut strictly above the owner, if any (the nearest).
            if let Some(cut) = name::nearest_ancestor(owner, false, is_cut) {
                warnings.push(self.set_error(
                    at,
                    format!(
                        "{} {} is below the delegation to {} and is never served",
                        name::to_text(owner),
                        rtype::name(at.rtype),
                        name::to_text(cut)
                    ),
                ));
            }
        }
        self.warnings.extend(warnings);
    }

    /// In-zone NS targets need addresses, or nobody can reach the server.
    fn check_glue(&mut self) {
        let mut errors = Vec::new();
        for at in self.sets.iter().filter(|at| at.rtype == rtype::NS) {
            let (owner, Some(set)) = self.set_of(at) else {
                continue;
            };
            for rd in set.rdatas().iter() {
                let Some(target) = rdata::rdata_target(rtype::NS, rd) else {
                    continue;
                };
                if !target.is_subdomain_of(self.origin) {
                    continue;
                }
                let has_addr = self.nodes.get(target.wire()).is_some_and(|n| {
                    n.get_unsorted(rtype::A).is_some() || n.get_unsorted(rtype::AAAA).is_some()
                });
                if !has_addr {
                    errors.push(self.set_error(
                        at,
                        format!(
                            "NS {target} at {} is inside the zone but has no A or AAAA record; add its address (glue)",
                            name::to_text(&owner)
                        ),
                    ));
                }
            }
        }
        self.errors.extend(errors);
    }
}

/// The apex's SOA (if it is usable), its MINIMUM and serial.
struct Apex {
    soa: Option<RRset>,
    minimum: Option<u32>,
    serial: u32,
}

fn record_error(r: &SourceRecord, message: String) -> ZoneError {
    ZoneError {
        file: r.file.to_path_buf(),
        line: r.line,
        message,
    }
}

/// An error of the zone as a whole (a missing SOA, say), named at its file's
/// first line.
fn zone_error(file: &Path, message: String) -> ZoneError {
    ZoneError {
        file: file.to_path_buf(),
        line: 1,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::master::{parse_text, MasterOptions};

    fn build(text: &str) -> Result<(Zone, Vec<ZoneWarning>), Vec<ZoneError>> {
        let origin = Name::parse("example.", None).expect("a name");
        let opts = MasterOptions {
            origin: origin.clone(),
            default_ttl: Some(300),
        };
        let (records, errors) = parse_text(text, Path::new("z.zone"), 1, Path::new("."), &opts);
        assert!(errors.is_empty(), "{errors:?}");
        build_zone(&origin, Path::new("z.zone"), records)
    }

    const HEAD: &str = "@ SOA ns hostmaster 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";

    #[test]
    fn duplicates_are_one_record_in_small_and_large_sets() {
        // 40 addresses, each written three times, interleaved with another
        // name's records so that the set is added to from afar.
        let mut text = HEAD.to_string();
        for round in 0..3 {
            for i in 0..40 {
                text.push_str(&format!("big A 198.51.100.{i}\nother{round} TXT \"x\"\n"));
            }
        }
        text.push_str("small A 192.0.2.7\nsmall A 192.0.2.7\nsmall A 192.0.2.8\n");
        let (zone, warnings) = build(&text).expect("a zone");
        assert!(warnings.is_empty(), "{warnings:?}");
        let count = |n: &str, t: u16| {
            let n = Name::parse(n, None).expect("a name");
            zone.nodes
                .get(n.wire())
                .and_then(|x| x.get(t))
                .map(|s| s.rdatas().len())
        };
        assert_eq!(count("big.example.", rtype::A), Some(40));
        assert_eq!(count("small.example.", rtype::A), Some(2));
        assert_eq!(count("other2.example.", rtype::TXT), Some(1));
    }

    #[test]
    fn a_set_past_its_most_records_is_refused_at_the_line() {
        // An RRset counts its records in 16 bits: the 65,536th is an error
        // (at its own line), not a count that wraps.
        let mut text = HEAD.to_string();
        for i in 0..=crate::zone::MAX_RECORDS {
            text.push_str(&format!("big TXT \"{i}\"\n"));
        }
        let errors = build(&text).expect_err("one record too many");
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [format!(
                "z.zone:{}: more than 65535 TXT records at big.example.; one RRset holds at most that many",
                3 + crate::zone::MAX_RECORDS + 1
            )]
        );
        // One fewer loads, every record counted.
        let text: String = text
            .lines()
            .take(3 + crate::zone::MAX_RECORDS)
            .map(|l| format!("{l}\n"))
            .collect();
        let (zone, _) = build(&text).expect("a zone");
        let big = Name::parse("big.example.", None).expect("a name");
        let set = zone.nodes.get(big.wire()).and_then(|n| n.get(rtype::TXT));
        assert_eq!(
            set.map(|s| s.rdatas().len()),
            Some(crate::zone::MAX_RECORDS)
        );
    }

    #[test]
    fn sets_are_named_at_their_first_line_in_the_order_written() {
        let text = format!(
            "{HEAD}www A 192.0.2.2\nmail TXT \"a\"\nwww 60 A 192.0.2.3\nwww CNAME elsewhere.\n\
             sub NS ns.sub\nx.sub TXT \"hidden\"\n"
        );
        let errors = build(&text).expect_err("a CNAME beside A, no glue");
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown[0].starts_with("z.zone:7: CNAME at www.example. beside other data (A)"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with("z.zone:8: NS ns.sub.example. at sub.example. is inside the zone"),
            "{shown:?}"
        );
        let (_, warnings) = build(&format!(
            "{HEAD}www A 192.0.2.2\nwww 60 A 192.0.2.3\nsub NS ns\nx.sub TXT \"h\"\n"
        ))
        .expect("a zone");
        let shown: Vec<String> = warnings.iter().map(|e| e.to_string()).collect();
        assert!(
            shown[0].starts_with("z.zone:5: TTL 60 differs from 300 given at line 4"),
            "{shown:?}"
        );
        assert!(
            shown[1].starts_with(
                "z.zone:7: x.sub.example. TXT is below the delegation to sub.example."
            ),
            "{shown:?}"
        );
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;
    use crate::zone::{master::SourceRecord, Owner};

    /// A primary may send names in RDATA with capitals: the CNAME is chased
    /// and the MX's address added all the same, under the names as held.
    #[test]
    fn targets_with_capitals_are_followed() {
        let origin = Name::parse("example.", None).expect("a name");
        let file: Arc<Path> = Arc::from(Path::new("z.zone"));
        let rec = |owner: &str, rtype: u16, rdata: Vec<u8>| SourceRecord {
            owner: Name::parse(owner, None).expect("a name"),
            rtype,
            ttl: 300,
            rdata,
            file: Arc::clone(&file),
            line: 1,
        };
        let wire = |s: &str| -> Vec<u8> {
            let mut w = Vec::new();
            for l in s.trim_end_matches('.').split('.') {
                w.push(l.len() as u8);
                w.extend_from_slice(l.as_bytes());
            }
            w.push(0);
            w
        };
        let mut soa = wire("ns.example.");
        soa.extend(wire("hm.example."));
        soa.extend([0u8; 20]);
        let mut mx = vec![0, 10];
        mx.extend(wire("Mail.Example."));
        let records = vec![
            rec("example.", rtype::SOA, soa),
            rec("example.", rtype::NS, wire("NS.example.")),
            rec("ns.example.", rtype::A, vec![192, 0, 2, 1]),
            rec("www.example.", rtype::CNAME, wire("Web.EXAMPLE.")),
            rec("web.example.", rtype::A, vec![192, 0, 2, 2]),
            rec("example.", rtype::MX, mx),
            rec("mail.example.", rtype::A, vec![192, 0, 2, 3]),
        ];
        let (zone, _) = build_zone(&origin, Path::new("z.zone"), records).expect("a zone");
        let www = Name::parse("www.example.", None).expect("a name");
        let a = zone.lookup(www.wire(), rtype::A, false);
        assert_eq!(a.answer.len(), 2, "the CNAME and web's A");
        assert!(matches!(a.answer[1].owner, Owner::Name(n) if n.is(&wire("web.example."))));
        let mx = zone.lookup(origin.wire(), rtype::MX, false);
        assert_eq!(mx.additional.len(), 1, "mail's A");
        assert!(matches!(mx.additional[0].owner, Owner::Name(n) if n.is(&wire("mail.example."))));
    }
}
