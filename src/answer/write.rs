//! Writes responses in wire format from prebuilt record bytes.
//!
//! Owner names are compressed against the question and against names already written
//! (RFC 1035 §4.1.4), and so are the names inside the RDATA of the RFC 1035 types
//! that carry them (NS, CNAME, SOA, PTR, MX; RFC 3597 §4 keeps every later type
//! uncompressed). RRsets are written whole or not at all; when one that the
//! response cannot do without does not fit, TC is set (RFC 2181 §9). The OPT record is
//! reserved room before any record is written, so truncation never drops it (RFC 6891
//! §7: a truncated response still carries the server's OPT).

use std::net::IpAddr;

use smallvec::SmallVec;

use super::query::{opt, ClientSubnet, Edns, HEADER_LEN};
use crate::zone::{name, rtype, Answer, Owner, Rcode, Rec};

/// What goes into the OPT record of a response.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptOut<'a> {
    /// Our UDP payload size.
    pub payload: u16,
    /// Upper 8 bits of a 12-bit rcode (BADVERS is 16: this is 1).
    pub ext_rcode: u8,
    pub dnssec_ok: bool,
    pub nsid: Option<&'a [u8]>,
    /// ECS echoed with this scope prefix length (RFC 7871 §7.2.1).
    pub client_subnet: Option<(ClientSubnet, u8)>,
    /// DNS Cookies: the client's cookie and our server cookie (RFC 7873 §5.2).
    pub cookie: Option<([u8; 8], [u8; 16])>,
}

impl OptOut<'_> {
    /// Bytes the OPT record takes.
    pub(crate) fn wire_len(&self) -> usize {
        let mut n = 11;
        if let Some(nsid) = self.nsid {
            n += 4 + nsid.len();
        }
        if let Some((cs, _)) = &self.client_subnet {
            n += 8 + (cs.source_prefix as usize).div_ceil(8);
        }
        if self.cookie.is_some() {
            n += 4 + 24;
        }
        n
    }

    /// Writes the record. Without NSID or a cookie (most responses) the record,
    /// ECS option included, is put together on the stack and written with one
    /// fixed-size copy (each `extend_from_slice` of a few bytes costs a capacity
    /// check and a call; one of a variable size, a call to memcpy).
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        if self.nsid.is_some() || self.cookie.is_some() {
            return self.write_with_options(out);
        }
        let mut b = [0u8; 11 + 8 + 16];
        let n = self.fixed_and_ecs(&mut b);
        out.extend_from_slice(&b);
        out.truncate(out.len() - (b.len() - n));
    }

    /// The record's fixed part (root owner, type OPT (41), payload, extended
    /// rcode, version 0, flags, RDLENGTH) and its ECS option into `b`; returns
    /// the bytes written.
    #[inline]
    fn fixed_and_ecs(&self, b: &mut [u8; 11 + 8 + 16]) -> usize {
        let rdlen = (self.wire_len() - 11) as u16;
        b[2] = 41;
        b[3..5].copy_from_slice(&self.payload.to_be_bytes());
        b[5] = self.ext_rcode;
        b[7] = if self.dnssec_ok { 0x80 } else { 0 };
        b[9..11].copy_from_slice(&rdlen.to_be_bytes());
        let Some((cs, scope)) = &self.client_subnet else {
            return 11;
        };
        // The address is cut to the source prefix's octets (RFC 7871 §6): all 16
        // bytes written, then the rest cut off.
        let n = (cs.source_prefix as usize).div_ceil(8).min(16);
        b[11..13].copy_from_slice(&opt::CLIENT_SUBNET.to_be_bytes());
        b[13..15].copy_from_slice(&((4 + n) as u16).to_be_bytes());
        b[15..17].copy_from_slice(&cs.family.to_be_bytes());
        b[17] = cs.source_prefix;
        b[18] = *scope;
        match cs.addr {
            IpAddr::V4(a) => b[19..23].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => b[19..35].copy_from_slice(&a.octets()),
        }
        19 + n
    }

    /// [`Self::write`] with NSID or a cookie: the options after ECS, one copy each.
    #[cold]
    #[inline(never)]
    fn write_with_options(&self, out: &mut Vec<u8>) {
        let mut b = [0u8; 11 + 8 + 16];
        let n = self.fixed_and_ecs(&mut b);
        let rdlen = self.wire_len() - 11;
        out.reserve(11 + rdlen);
        // The fixed part, NSID (RFC 5001), ECS, the cookie.
        out.extend_from_slice(&b[..11]);
        if let Some(nsid) = self.nsid {
            out.extend_from_slice(&opt::NSID.to_be_bytes());
            out.extend_from_slice(&(nsid.len() as u16).to_be_bytes());
            out.extend_from_slice(nsid);
        }
        out.extend_from_slice(&b[11..n]);
        if let Some((client, server)) = &self.cookie {
            let mut c = [0u8; 4 + 24];
            c[..2].copy_from_slice(&opt::COOKIE.to_be_bytes());
            c[2..4].copy_from_slice(&24u16.to_be_bytes());
            c[4..12].copy_from_slice(client);
            c[12..].copy_from_slice(server);
            out.extend_from_slice(&c);
        }
    }
}

/// The OPT record of a fast-path response, in the form that costs least to write.
#[derive(Clone, Copy)]
pub(crate) enum OptRecord<'a> {
    /// No OPT record: the query had none.
    None,
    /// Our payload, DO copied, and the query's ECS option exactly as it came when
    /// we believe its sender: with scope 0 (checked when parsed) it is the echo of
    /// an answer that holds for every client (RFC 7871 §7.2.1). Most responses.
    Echo {
        payload: u16,
        dnssec_ok: bool,
        ecs: Option<&'a [u8]>,
    },
    /// Anything else (NSID, cookies, another scope), as [`OptOut`] writes it.
    Out(&'a OptOut<'a>),
}

/// An ECS option is its 4-byte header, family, prefixes and up to 16 address bytes.
pub(crate) const ECS_MIN: usize = 8;
pub(crate) const ECS_MAX: usize = 24;

impl OptRecord<'_> {
    pub(crate) fn is_some(&self) -> bool {
        !matches!(self, OptRecord::None)
    }

    /// Bytes the record takes.
    pub(crate) fn wire_len(&self) -> usize {
        match self {
            OptRecord::None => 0,
            OptRecord::Echo { ecs, .. } => 11 + ecs.map_or(0, <[u8]>::len),
            OptRecord::Out(o) => o.wire_len(),
        }
    }

    /// Writes the record. An echo is put together on the stack, the option copied
    /// as two or three overlapping words (a copy of a length known only here would
    /// be a call to memcpy), and written with one fixed-size copy.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        let (payload, dnssec_ok, ecs) = match *self {
            OptRecord::None => return,
            OptRecord::Out(o) => return o.write(out),
            OptRecord::Echo {
                payload,
                dnssec_ok,
                ecs,
            } => (payload, dnssec_ok, ecs.unwrap_or_default()),
        };
        let n = ecs.len();
        let mut b = [0u8; 11 + ECS_MAX];
        // Root owner, type OPT (41), payload, extended rcode 0, version 0, flags,
        // RDLENGTH.
        b[2] = 41;
        b[3..5].copy_from_slice(&payload.to_be_bytes());
        b[7] = if dnssec_ok { 0x80 } else { 0 };
        b[9..11].copy_from_slice(&(n as u16).to_be_bytes());
        let word = |at: usize| <[u8; 8]>::try_from(ecs.get(at..at + 8)?).ok();
        if (ECS_MIN..=ECS_MAX).contains(&n) {
            // 8..=24 bytes: the first eight, the next eight past 16, the last eight.
            if let Some(w) = word(0) {
                b[11..19].copy_from_slice(&w);
            }
            if let Some(w) = word(8).filter(|_| n > 16) {
                b[19..27].copy_from_slice(&w);
            }
            if let Some(w) = word(n - 8) {
                b[11 + n - 8..11 + n].copy_from_slice(&w);
            }
        }
        out.extend_from_slice(&b);
        out.truncate(out.len() - (ECS_MAX - n.min(ECS_MAX)));
    }
}

/// The header fields a response copies or sets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderOut {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    pub cd: bool,
    pub aa: bool,
    pub rcode: Rcode,
}

/// A name written earlier in the message.
#[derive(Clone, Copy)]
struct Written<'q> {
    /// Where it starts in the message.
    offset: usize,
    /// The whole name, lower-cased.
    name: &'q [u8],
    /// How many of its bytes are written inline there.
    inline: usize,
    /// The pointer that follows the inline bytes, if any.
    tail: Option<u16>,
}

/// Names written so far that later owners may point at.
struct Compressor<'q> {
    names: SmallVec<[Written<'q>; 8]>,
}

impl<'q> Compressor<'q> {
    /// Writes a record's owner: a pointer to the question's name when it is
    /// that name (`at_query`), else `owner` as [`Compressor::write_name`] does.
    fn write_owner(&mut self, out: &mut Vec<u8>, owner: &'q [u8], at_query: bool) {
        if at_query {
            out.extend_from_slice(&(0xc000u16 | HEADER_LEN as u16).to_be_bytes());
        } else {
            self.write_name(out, owner);
        }
    }

    /// Writes `owner` at the end of `out`, pointing into earlier names where it can.
    fn write_name(&mut self, out: &mut Vec<u8>, owner: &'q [u8]) {
        let start = out.len();
        for o in name::label_offsets(owner).chain(std::iter::once(owner.len() - 1)) {
            let suffix = &owner[o..];
            if suffix.len() == 1 {
                // Only the root is left: write it.
                break;
            }
            if let Some(ptr) = self.find(suffix) {
                out.extend_from_slice(&owner[..o]);
                out.extend_from_slice(&(0xc000 | ptr).to_be_bytes());
                self.remember(start, owner, o, Some(ptr));
                return;
            }
        }
        out.extend_from_slice(owner);
        self.remember(start, owner, owner.len(), None);
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        for &Written {
            offset: off,
            name: known,
            inline,
            tail,
        } in &self.names
        {
            if known.len() < suffix.len() {
                continue;
            }
            let at = known.len() - suffix.len();
            if known[at..] != *suffix {
                continue;
            }
            let boundary = at == 0 || name::label_offsets(known).any(|o| o == at);
            if !boundary {
                continue;
            }
            if at < inline {
                return Some((off + at) as u16);
            }
            if at == inline {
                if let Some(t) = tail {
                    return Some(t);
                }
            }
        }
        None
    }

    fn remember(&mut self, off: usize, known: &'q [u8], inline: usize, tail: Option<u16>) {
        // Pointers hold 14 bits of offset.
        if off < 0x3fff && inline > 0 && self.names.len() < self.names.inline_size() * 4 {
            self.names.push(Written {
                offset: off,
                name: known,
                inline,
                tail,
            });
        }
    }
}

/// For a type whose RDATA names may be compressed (RFC 1035 §4.1.4, RFC 3597 §4):
/// the bytes before the first name, and how many names follow one another there.
pub(super) fn rdata_names(t: u16) -> Option<(usize, usize)> {
    match t {
        rtype::NS | rtype::CNAME | rtype::PTR => Some((0, 1)),
        rtype::MX => Some((2, 1)),
        rtype::SOA => Some((0, 2)),
        _ => None,
    }
}

/// Writes a record's prebuilt TYPE, CLASS, TTL, RDLENGTH and RDATA, the names in
/// the RDATA compressed where the type allows it (RDLENGTH then counts what is
/// written). RDATA that does not parse as its type's names is copied as it is.
fn write_tail<'q>(out: &mut Vec<u8>, comp: &mut Compressor<'q>, rr: &'q [u8]) {
    let Some(RdataNames { skip, spans, end }) = rdata_name_spans(rr) else {
        out.extend_from_slice(rr);
        return;
    };
    let rdata = &rr[10..];
    out.extend_from_slice(&rr[..8]);
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&rdata[..skip]);
    for (start, stop) in spans {
        comp.write_name(out, &rdata[start..stop]);
    }
    out.extend_from_slice(&rdata[end..]);
    let rdlen = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
}

/// Where the names are in a record's RDATA (offsets into the RDATA).
struct RdataNames {
    /// Bytes before the first name (MX's preference).
    skip: usize,
    /// Each name, start and end; they follow one another.
    spans: SmallVec<[(usize, usize); 2]>,
    /// Where the last name ends; what follows is copied.
    end: usize,
}

/// For a record (TYPE, CLASS, TTL, RDLENGTH, RDATA) whose RDATA names may be
/// compressed, where they are. `None` for other types and for RDATA whose names do
/// not parse.
fn rdata_name_spans(rr: &[u8]) -> Option<RdataNames> {
    let t = rr.get(..2)?;
    let (skip, count) = rdata_names(u16::from_be_bytes([t[0], t[1]]))?;
    let rdata = rr.get(10..)?;
    let mut spans = SmallVec::new();
    let mut p = skip;
    for _ in 0..count {
        let start = p;
        // A name runs at most to the end of the RDATA, so `p` stays within it.
        p += name::wire_name_len(rdata.get(p..)?)?;
        spans.push((start, p));
    }
    Some(RdataNames {
        skip,
        spans,
        end: p,
    })
}

/// Builds a complete response into `out` (cleared first).
///
/// `question` is the question section as the client sent it and `qname` the same name
/// lower-cased; `limit` is the largest message allowed (512, the EDNS payload, or
/// 65535 over TCP).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_response(
    out: &mut Vec<u8>,
    header: HeaderOut,
    question: Option<&[u8]>,
    qname: &[u8],
    answer: Option<&Answer<'_>>,
    opt: Option<&OptOut<'_>>,
    limit: usize,
) {
    out.clear();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut qdcount = 0u16;
    if let Some(q) = question {
        out.extend_from_slice(q);
        qdcount = 1;
    }
    let reserve = opt.map(|o| o.wire_len()).unwrap_or(0);
    let budget = limit.saturating_sub(reserve).max(out.len());
    let mut counts = [0u16; 3];
    let mut truncated = false;
    if let Some(ans) = answer {
        // Owners a zone stores relative to its origin, whole, end to end in
        // the order they are written: the compressor keeps every name it wrote.
        let mut owners: Vec<u8> = Vec::new();
        for rec in ans
            .answer
            .iter()
            .chain(&ans.authority)
            .chain(&ans.additional)
        {
            match rec.owner {
                Owner::Name(n) if n.as_whole().is_none() => n.write_to(&mut owners),
                _ => {}
            }
        }
        let mut owners_at = 0;
        let mut comp = Compressor {
            names: SmallVec::new(),
        };
        if question.is_some() {
            comp.names.push(Written {
                offset: HEADER_LEN,
                name: qname,
                inline: qname.len(),
                tail: None,
            });
        }
        let sections: [(&[Rec<'_>], bool); 3] = [
            (&ans.answer, true),
            (&ans.authority, true),
            (&ans.additional, ans.glue_required),
        ];
        'sections: for (i, (recs, required)) in sections.iter().enumerate() {
            for rec in recs.iter() {
                let mark = out.len();
                let names_mark = comp.names.len();
                let owner: &[u8] = match rec.owner {
                    Owner::Query => qname,
                    Owner::Name(n) => match n.as_whole() {
                        Some(w) => w,
                        None => {
                            let at = owners_at;
                            owners_at += n.len();
                            owners.get(at..owners_at).unwrap_or_default()
                        }
                    },
                };
                let mut written = 0u16;
                let at_query = matches!(rec.owner, Owner::Query) && question.is_some();
                // The RRset, then its RRSIGs if the answer carries them: one unit,
                // fitting whole or not at all (RFC 4035 §3.1.1).
                for rr in rec.set.rdatas().wire().take(rec.take as usize) {
                    comp.write_owner(out, owner, at_query);
                    write_tail(out, &mut comp, rr);
                    written += 1;
                }
                for r in rec.sig.iter().flat_map(|s| s.wire()) {
                    // No name in an RRSIG's RDATA is compressed (RFC 4034 §3.1.7).
                    comp.write_owner(out, owner, at_query);
                    r.write(out);
                    written += 1;
                }
                if out.len() > budget {
                    out.truncate(mark);
                    comp.names.truncate(names_mark);
                    if *required {
                        truncated = true;
                    }
                    // Whole RRsets or nothing; the sections after a cut-off one
                    // would read as a different answer, so stop.
                    break 'sections;
                }
                counts[i] += written;
            }
        }
    }
    let mut arcount = counts[2];
    if let Some(o) = opt {
        o.write(out);
        arcount += 1;
    }
    let mut flags: u16 = 0x8000 | ((header.opcode as u16 & 0x0f) << 11);
    if header.aa {
        flags |= 0x0400;
    }
    if truncated {
        flags |= 0x0200;
    }
    if header.rd {
        flags |= 0x0100;
    }
    if header.cd {
        flags |= 0x0010;
    }
    flags |= header.rcode as u16 & 0x0f;
    out[0..2].copy_from_slice(&header.id.to_be_bytes());
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    out[4..6].copy_from_slice(&qdcount.to_be_bytes());
    out[6..8].copy_from_slice(&counts[0].to_be_bytes());
    out[8..10].copy_from_slice(&counts[1].to_be_bytes());
    out[10..12].copy_from_slice(&arcount.to_be_bytes());
}

/// Largest response for a query: 512 without EDNS, else the smaller of the client's
/// payload and ours, never below 512 (RFC 6891 §6.2.5); 65535 over TCP.
pub(crate) fn size_limit(edns: Option<&Edns>, our_payload: u16, tcp: bool) -> usize {
    if tcp {
        return u16::MAX as usize;
    }
    match edns {
        None => 512,
        Some(e) => (e.payload.min(our_payload) as usize).max(512),
    }
}
