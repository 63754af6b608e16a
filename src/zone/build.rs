//! Builds a [`Zone`] from parsed records and checks it the way NSD and Knot do at load:
//! every problem is reported at once, each with the file and line of the record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::map::Entry;
use indexmap::IndexMap;
use rustc_hash::{FxBuildHasher, FxHashSet};
use smallvec::SmallVec;

use super::master::SourceRecord;
use super::name::{self, Name};
use super::{class, rtype, Nodes, RRset, Zone};

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
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let sets = gather(origin, records, &mut errors, &mut warnings);
    let apex = check_apex(origin, file, &sets, &mut errors);
    check_cnames(&sets, &mut errors);
    check_below_cuts(origin, &sets, &mut warnings);
    check_glue(origin, &sets, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let nodes = build_nodes(origin, sets);
    let Some(soa) = apex.soa else {
        return Err(vec![zone_error(
            file,
            format!("zone {origin} has no usable SOA"),
        )]);
    };
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

/// The records of one RRset, in the order of the file, with where the set first
/// appeared.
struct Pending {
    ttl: u32,
    /// Most sets hold one record: kept inline, one allocation less.
    rdatas: SmallVec<[Box<[u8]>; 1]>,
    file: Arc<Path>,
    line: usize,
}

/// (owner, type) -> records, in the order of the file (hashed: a sorted map spent
/// a fifth of a large zone's load comparing names).
type Sets = IndexMap<(Name, u16), Pending, FxBuildHasher>;

fn record_error(r: &SourceRecord, message: String) -> ZoneError {
    ZoneError {
        file: r.file.to_path_buf(),
        line: r.line,
        message,
    }
}

fn set_error(p: &Pending, message: String) -> ZoneError {
    ZoneError {
        file: p.file.to_path_buf(),
        line: p.line,
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

/// Groups the records into RRsets, refusing what a zone cannot hold: owners outside
/// it, DNAME, meta types. Duplicates are one record; a set's TTL is its first.
fn gather(
    origin: &Name,
    records: Vec<SourceRecord>,
    errors: &mut Vec<ZoneError>,
    warnings: &mut Vec<ZoneWarning>,
) -> Sets {
    let mut sets: Sets = IndexMap::with_capacity_and_hasher(records.len(), FxBuildHasher);
    for r in records {
        if !r.owner.is_subdomain_of(origin) {
            errors.push(record_error(
                &r,
                format!(
                    "{} {} is outside the zone {origin}; owners must be at or below the origin",
                    r.owner,
                    rtype::name(r.rtype)
                ),
            ));
            continue;
        }
        if r.rtype == rtype::DNAME {
            errors.push(record_error(
                &r,
                "DNAME records are not supported; use a CNAME per name instead".to_string(),
            ));
            continue;
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
            errors.push(record_error(
                &r,
                format!(
                    "{} is a meta type and cannot be stored in a zone",
                    rtype::name(r.rtype)
                ),
            ));
            continue;
        }
        match sets.entry((r.owner, r.rtype)) {
            Entry::Occupied(mut o) => {
                let p = o.get_mut();
                if r.ttl != p.ttl {
                    // RFC 2181 §5.2: one TTL per RRset. Like BIND, keep the first.
                    warnings.push(ZoneError {
                        file: r.file.to_path_buf(),
                        line: r.line,
                        message: format!(
                            "TTL {} differs from {} given at line {} for the same RRset; using {} (RFC 2181 §5.2)",
                            r.ttl, p.ttl, p.line, p.ttl
                        ),
                    });
                }
                let rd: Box<[u8]> = r.rdata.into_boxed_slice();
                // Duplicate records are one record (RFC 2181 §5).
                if !p.rdatas.contains(&rd) {
                    p.rdatas.push(rd);
                }
            }
            Entry::Vacant(v) => {
                v.insert(Pending {
                    ttl: r.ttl,
                    rdatas: smallvec::smallvec![r.rdata.into_boxed_slice()],
                    file: r.file,
                    line: r.line,
                });
            }
        }
    }

    sets
}

/// The apex's SOA (if it is usable), its MINIMUM and serial.
struct Apex {
    soa: Option<RRset>,
    minimum: Option<u32>,
    serial: u32,
}

/// Exactly one SOA, at the apex, and NS records there.
fn check_apex(origin: &Name, file: &Path, sets: &Sets, errors: &mut Vec<ZoneError>) -> Apex {
    // SOA: exactly one record, at the apex.
    let mut soa: Option<RRset> = None;
    for ((owner, t), p) in sets {
        if *t != rtype::SOA {
            continue;
        }
        if owner != origin {
            errors.push(set_error(
                p,
                format!("SOA at {owner} is not at the zone apex {origin}; a zone has one SOA, at its origin"),
            ));
        } else if p.rdatas.len() > 1 {
            errors.push(set_error(
                p,
                format!(
                    "{} SOA records at {origin}; a zone has exactly one",
                    p.rdatas.len()
                ),
            ));
        } else {
            soa = Some(RRset::of(rtype::SOA, class::IN, p.ttl, &p.rdatas));
        }
    }
    let soa_minimum = soa
        .as_ref()
        .and_then(|s| s.rdatas.first())
        .and_then(|rd| rd.get(rd.len().saturating_sub(4)..))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes);
    let serial = soa
        .as_ref()
        .and_then(|s| s.rdatas.first())
        .and_then(|rd| rd.get(rd.len().saturating_sub(20)..rd.len().saturating_sub(16)))
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0);
    if soa.is_none() && !sets.keys().any(|(o, t)| o == origin && *t == rtype::SOA) {
        errors.push(zone_error(
            file,
            format!(
                "zone {origin} has no SOA record; add one at @ (or a [soa] table in a policy file)"
            ),
        ));
    }
    if !sets.contains_key(&(origin.clone(), rtype::NS)) {
        errors.push(zone_error(
            file,
            format!(
                "zone {origin} has no NS records at its apex; add at least one `@ NS <server>`"
            ),
        ));
    }

    Apex {
        soa,
        minimum: soa_minimum,
        serial,
    }
}

/// CNAME beside other data (RFC 1034 §3.6.2, RFC 2181 §10.1), or more than one.
fn check_cnames(sets: &Sets, errors: &mut Vec<ZoneError>) {
    // each owner that has a CNAME (a map of every owner was a large zone's
    // biggest table after the RRsets themselves).
    let cname_owners: FxHashSet<&Name> = sets
        .keys()
        .filter(|(_, t)| *t == rtype::CNAME)
        .map(|(o, _)| o)
        .collect();
    let mut by_owner: IndexMap<&Name, SmallVec<[u16; 4]>, FxBuildHasher> = IndexMap::default();
    if !cname_owners.is_empty() {
        for (o, t) in sets.keys() {
            if cname_owners.contains(o) {
                by_owner.entry(o).or_default().push(*t);
            }
        }
    }
    for (owner, types) in &by_owner {
        if let Some(p) = sets.get(&((*owner).clone(), rtype::CNAME)) {
            let others: Vec<String> = types
                .iter()
                .filter(|t| **t != rtype::CNAME)
                .map(|t| rtype::name(*t))
                .collect();
            if !others.is_empty() {
                errors.push(set_error(
                    p,
                    format!(
                        "CNAME at {owner} beside other data ({}); a name with a CNAME can have no other records",
                        others.join(", ")
                    ),
                ));
            }
            if p.rdatas.len() > 1 {
                errors.push(set_error(
                    p,
                    format!(
                        "{} CNAME records at {owner}; a name can have only one CNAME",
                        p.rdatas.len()
                    ),
                ));
            }
        }
    }
}

/// The names of the zone's cuts (NS anywhere but the apex).
fn cuts<'s>(origin: &Name, sets: &'s Sets) -> FxHashSet<&'s [u8]> {
    sets.keys()
        .filter(|(o, t)| *t == rtype::NS && o != origin)
        .map(|(o, _)| o.wire())
        .collect()
}

/// Data below a cut belongs to the child zone: only glue addresses are kept; the
/// rest is warned of and never served.
fn check_below_cuts(origin: &Name, sets: &Sets, warnings: &mut Vec<ZoneWarning>) {
    let cuts = cuts(origin, sets);
    // The cut strictly above `n`, if any (the nearest).
    let cut_above = |n: &Name| -> Option<String> {
        name::nearest_ancestor(n.wire(), false, |a| cuts.contains(a)).map(name::to_text)
    };
    for ((owner, t), p) in sets {
        if matches!(*t, rtype::A | rtype::AAAA) {
            continue;
        }
        if let Some(cut) = cut_above(owner) {
            warnings.push(set_error(
                p,
                format!(
                    "{owner} {} is below the delegation to {} and is never served",
                    rtype::name(*t),
                    cut
                ),
            ));
        }
    }
}

/// In-zone NS targets need addresses, or nobody can reach the server.
fn check_glue(origin: &Name, sets: &Sets, errors: &mut Vec<ZoneError>) {
    for ((owner, t), p) in sets {
        if *t != rtype::NS {
            continue;
        }
        for rd in &p.rdatas {
            let Some(target) = super::rdata::rdata_target(rtype::NS, rd) else {
                continue;
            };
            if !target.is_subdomain_of(origin) {
                continue;
            }
            let has_addr = sets.contains_key(&(target.clone(), rtype::A))
                || sets.contains_key(&(target.clone(), rtype::AAAA));
            if !has_addr {
                errors.push(set_error(
                    p,
                    format!(
                        "NS {target} at {owner} is inside the zone but has no A or AAAA record; add its address (glue)"
                    ),
                ));
            }
        }
    }
}

/// The zone's names, each with its RRsets (sorted by type) and every ancestor up
/// to the origin (an empty non-terminal if need be).
fn build_nodes(origin: &Name, sets: Sets) -> Nodes {
    // Sized once: most RRsets are a name of their own (shrunk to fit below).
    let mut nodes = Nodes::with_capacity(sets.len());
    // The last owner: it and every name above it have a node already.
    let mut done: Vec<u8> = Vec::new();
    // Every owner is at or below the origin: any other was an error above.
    for ((owner, t), p) in sets {
        // Every ancestor up to the origin exists, as an empty non-terminal if
        // need be; the walk up stops at a name at or above the last owner
        // (most records are the last one's siblings or children).
        let w = owner.wire();
        for o in name::label_offsets(w)
            .skip(1)
            .take_while(|&o| w.len() - o >= origin.wire().len())
        {
            if name::is_wire_subdomain(&done, &w[o..]) {
                break;
            }
            nodes.entry(&w[o..]);
        }
        done.clear();
        done.extend_from_slice(w);
        let node = nodes.entry(w);
        // Exactly as many RRsets as the name has: the first stays in the node,
        // and a push past it would reserve room for more.
        if !node.rrsets.is_empty() {
            node.rrsets.reserve_exact(1);
        }
        node.rrsets.push(RRset::of(t, class::IN, p.ttl, &p.rdatas));
        if t == rtype::NS && owner != *origin {
            node.cut = true;
        }
    }
    for node in nodes.values_mut() {
        node.rrsets.sort_by_key(|s| s.rtype);
    }
    nodes.shrink_to_fit();

    nodes
}
