//! A small checked parser for incoming queries: the header, the one question, and the
//! OPT record with the options an authoritative server acts on (NSID, Client Subnet).
//!
//! Everything else is skipped with bounds checks. Nothing here allocates, so a flood of
//! garbage costs a few comparisons per packet.

use std::net::IpAddr;

use crate::zone::{name::MAX_NAME_LEN, rtype, Invalid, Rcode};

pub(crate) const HEADER_LEN: usize = 12;

/// EDNS option codes (IANA "DNS EDNS0 Option Codes").
pub mod opt {
    pub const NSID: u16 = 3;
    pub(crate) const CLIENT_SUBNET: u16 = 8;
    pub const COOKIE: u16 = 10;
}

/// The EDNS Client Subnet option of a query (RFC 7871 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSubnet {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    pub source_prefix: u8,
    /// The address with every bit past `source_prefix` zero.
    pub addr: IpAddr,
}

/// The OPT pseudo-record of a query (RFC 6891 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size; values below 512 are treated as 512 (§6.2.3).
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub nsid: bool,
}

/// A parsed query. Borrows the packet.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub id: u16,
    pub opcode: u8,
    pub rd: bool,
    pub cd: bool,
    /// The question section exactly as sent (name in the client's letter case, type,
    /// class), copied into the response (RFC 4343 §4.1; 0x20 clients).
    pub question: &'a [u8],
    /// The query name lower-cased: in the packet when the client wrote it so, else in
    /// the caller's [`NameBuf`].
    qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// The data of the OPT record's first COOKIE option (RFC 7873), its length
    /// checked; kept as a slice of the packet so that the query stays small.
    pub cookie: Option<&'a [u8]>,
    /// The Client Subnet option as sent (code, length, data), validated (RFC
    /// 7871 §6): with scope 0, it is the option a response echoes for an answer
    /// that holds for every client (§7.2.1). [`Query::client_subnet`] reads it.
    pub ecs_option: Option<&'a [u8]>,
}

impl<'a> Query<'a> {
    /// The query name, lower-cased wire format.
    pub fn qname(&self) -> &'a [u8] {
        self.qname
    }

    /// The query's EDNS Client Subnet, read from the option when asked: most
    /// answers only echo it.
    pub fn client_subnet(&self) -> Option<ClientSubnet> {
        self.ecs_option.and_then(client_subnet_of)
    }
}

/// Why a packet cannot be answered normally, and what to send back.
#[derive(Debug, Clone)]
pub enum Reject<'a> {
    /// Send nothing: too short for a header, or a response (QR=1) that must never be
    /// answered, which would let two servers bounce packets forever.
    Drop,
    /// Answer with this rcode, echoing the header's ID, opcode and RD, and the question
    /// section when one could be read.
    Error {
        id: u16,
        opcode: u8,
        rd: bool,
        cd: bool,
        rcode: Rcode,
        question: Option<&'a [u8]>,
        /// The query's EDNS, when the OPT record itself was sound (RFC 6891 §7).
        edns: Option<Edns>,
        cookie: Option<&'a [u8]>,
    },
}

/// Room for a lower-cased copy of a query name that arrived with capitals (0x20
/// clients, RFC 4343 §4.1), kept by the caller so a parsed query is small to move.
/// Filled only for such a name: zeroing 255 bytes for every query was 19 of the
/// instructions a query took.
#[derive(Default)]
pub struct NameBuf(Option<[u8; MAX_NAME_LEN]>);

/// Parses a query packet; `buf` holds the lower-cased name when the packet's has
/// capitals.
pub fn parse<'a>(pkt: &'a [u8], buf: &'a mut NameBuf) -> Result<Query<'a>, Reject<'a>> {
    if pkt.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([pkt[0], pkt[1]]);
    let flags = u16::from_be_bytes([pkt[2], pkt[3]]);
    if flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    let opcode = ((flags >> 11) & 0x0f) as u8;
    let rd = flags & 0x0100 != 0;
    let cd = flags & 0x0010 != 0;
    let qdcount = u16::from_be_bytes([pkt[4], pkt[5]]);
    let ancount = u16::from_be_bytes([pkt[6], pkt[7]]);
    let nscount = u16::from_be_bytes([pkt[8], pkt[9]]);
    let arcount = u16::from_be_bytes([pkt[10], pkt[11]]);
    let error = |rcode, question, edns: Option<OptFound<'a>>| Reject::Error {
        id,
        opcode,
        rd,
        cd,
        rcode,
        question,
        edns: edns.map(|e| e.0),
        cookie: edns.and_then(|e| e.1),
    };

    // The question, when there is exactly one and it is well formed.
    let parsed_question = if qdcount == 1 {
        read_question(pkt, HEADER_LEN)
    } else {
        None
    };
    let question = parsed_question.map(|(end, _, _, _)| &pkt[HEADER_LEN..end]);

    // Skip answer and authority records; find the OPT record in the additional section.
    let (mut edns, mut edns_error) = (None, None);
    if let Some((qend, _, _, _)) = parsed_question {
        let Some(found) = find_opt(pkt, qend, (ancount, nscount, arcount)) else {
            return Err(error(Rcode::FormErr, question, None));
        };
        (edns, edns_error) = found;
    }

    if opcode != 0 {
        // Only QUERY is implemented; NOTIFY, UPDATE, IQUERY and the rest are not
        // (RFC 1035 §4.1.1).
        return Err(error(Rcode::NotImp, question, edns));
    }
    let Some((qend, upper, qtype, qclass)) = parsed_question else {
        return Err(error(Rcode::FormErr, None, None));
    };
    if let Some(rc) = edns_error {
        return Err(error(rc, question, None));
    }
    let name = &pkt[HEADER_LEN..qend - 4];
    let qname = if upper {
        let copy = &mut buf.0.get_or_insert([0; MAX_NAME_LEN])[..name.len()];
        copy.copy_from_slice(name);
        // Label length bytes are at most 63: below 'A', left alone.
        copy.make_ascii_lowercase();
        &*copy
    } else {
        name
    };
    Ok(Query {
        id,
        opcode,
        rd,
        cd,
        question: &pkt[HEADER_LEN..qend],
        qname,
        qtype,
        qclass,
        edns: edns.map(|e| e.0),
        cookie: edns.and_then(|e| e.1),
        ecs_option: edns.and_then(|e| e.2),
    })
}

/// What a query's OPT record holds: its EDNS, the first COOKIE option's data,
/// the ECS option whole.
type OptFound<'a> = (Edns, Option<&'a [u8]>, Option<&'a [u8]>);

/// Walks the records after the question (ending at `qend`), `counts` (answer,
/// authority, additional) of them, for the OPT record: `None` when they do not
/// parse (FORMERR), else the OPT record found, if any, and the rcode for an OPT
/// record that is wrong (a second one, one not owned by the root, bad options).
#[inline(always)]
fn find_opt(
    pkt: &[u8],
    qend: usize,
    (ancount, nscount, arcount): (u16, u16, u16),
) -> Option<(Option<OptFound<'_>>, Option<Rcode>)> {
    // The usual shape first, read without the general walk: one additional
    // record, an OPT owned by the root, and nothing else.
    if (ancount, nscount, arcount) == (0, 0, 1) && pkt.get(qend..qend + 3) == Some(&[0, 0, 41]) {
        let rdlen = pkt.get(qend + 9..qend + 11)?;
        let end = qend + 11 + usize::from(u16::from_be_bytes([rdlen[0], rdlen[1]]));
        if end > pkt.len() {
            return None;
        }
        return Some(match read_opt(pkt, qend, end) {
            Ok(e) => (Some(e), None),
            Err(rc) => (None, Some(rc)),
        });
    }
    let mut pos = qend;
    for _ in 0..(ancount as usize + nscount as usize) {
        pos = skip_record(pkt, pos)?.0;
    }
    let mut edns = None;
    let mut edns_error = None;
    for _ in 0..arcount {
        let (next, rtype_, owner_root) = skip_record(pkt, pos)?;
        if rtype_ == rtype::OPT {
            // One OPT, owned by the root (RFC 6891 §6.1.1).
            if edns.is_some() || edns_error.is_some() || !owner_root {
                edns_error = Some(Rcode::FormErr);
            } else {
                match read_opt(pkt, pos, next) {
                    Ok(e) => edns = Some(e),
                    Err(rc) => edns_error = Some(rc),
                }
            }
        }
        pos = next;
    }
    Some((edns, edns_error))
}

/// Reads the question at `pos`: an uncompressed name (a compression pointer in the
/// first question could only point into the header), type and class.
/// Returns (end, whether the name has capitals, qtype, qclass).
fn read_question(pkt: &[u8], pos: usize) -> Option<(usize, bool, u16, u16)> {
    let mut p = pos;
    loop {
        let len = *pkt.get(p)? as usize;
        if len == 0 {
            p += 1;
            break;
        }
        // The name with its root byte must stay within MAX_NAME_LEN.
        if len > 63 || p - pos + len + 1 >= MAX_NAME_LEN {
            return None;
        }
        p += len + 1;
    }
    // Length bytes are at most 63: only letters can be capitals.
    let upper = has_upper(pkt.get(pos..p)?);
    let fixed = pkt.get(p..p + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    Some((p + 4, upper, qtype, qclass))
}

/// Whether `b` has an ASCII capital, eight bytes at a time.
fn has_upper(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Per byte, with the top bit cleared first so that no sum carries into
        // the next byte: the top bit of x7 + 0x3f is set from 'A' up, that of
        // x7 + 0x25 from '[' up; bytes that had the top bit are not ASCII.
        let x7 = x & (0x7f * ONES);
        let from_a = x7 + 0x3f * ONES;
        let past_z = x7 + 0x25 * ONES;
        if from_a & !past_z & !x & (0x80 * ONES) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(u8::is_ascii_uppercase)
}

/// Skips a possibly compressed name; returns the position after it and whether it was
/// the root name. Pointers are not followed: only their two bytes are skipped.
fn skip_name(pkt: &[u8], mut p: usize) -> Option<(usize, bool)> {
    let start = p;
    loop {
        let len = *pkt.get(p)?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Some((p + 1, p == start));
                }
                p += 1 + len as usize;
                if p - start > MAX_NAME_LEN {
                    return None;
                }
            }
            0xc0 => {
                pkt.get(p + 1)?;
                return Some((p + 2, false));
            }
            // 0x40 and 0x80 label types are obsolete or reserved (RFC 6891 §5).
            _ => return None,
        }
    }
}

/// Skips one resource record; returns (position after it, its type, owner is root).
pub(super) fn skip_record(pkt: &[u8], pos: usize) -> Option<(usize, u16, bool)> {
    let (p, root) = skip_name(pkt, pos)?;
    let fixed = pkt.get(p..p + 10)?;
    let t = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let end = p + 10 + rdlen;
    if end > pkt.len() {
        return None;
    }
    Some((end, t, root))
}

/// The smallest TTL in a response's answer section, or in its authority section
/// when the answer is empty (a negative answer's SOA, RFC 2308 §5); `None` when it
/// holds no records or does not parse. DoH's `Cache-Control: max-age` (RFC 8484 §5.1).
pub(crate) fn min_ttl(msg: &[u8]) -> Option<u32> {
    let count = |i: usize| Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]) as usize);
    let (qd, an, ns) = (count(4)?, count(6)?, count(8)?);
    let mut p = 12;
    for _ in 0..qd {
        p = skip_name(msg, p)?.0 + 4;
    }
    let mut min = None::<u32>;
    for (i, section) in [an, ns].into_iter().enumerate() {
        for _ in 0..section {
            let (end, _, _) = skip_record(msg, p)?;
            let at = skip_name(msg, p)?.0 + 4;
            let ttl = u32::from_be_bytes(msg.get(at..at + 4)?.try_into().ok()?);
            min = Some(min.map_or(ttl, |m| m.min(ttl)));
            p = end;
        }
        if i == 0 && min.is_some() {
            break;
        }
    }
    min
}

/// Reads the OPT record that spans `start..end` (owner already checked to be root).
#[inline(always)]
fn read_opt(pkt: &[u8], start: usize, end: usize) -> Result<OptFound<'_>, Rcode> {
    // Owner is the single root byte.
    let f = &pkt[start + 1..start + 11];
    let payload = u16::from_be_bytes([f[2], f[3]]);
    let version = f[5];
    let flags = u16::from_be_bytes([f[6], f[7]]);
    let mut edns = Edns {
        payload: payload.max(512),
        version,
        dnssec_ok: flags & 0x8000 != 0,
        nsid: false,
    };
    let mut cookie = None;
    let mut ecs_option = None;
    let mut p = start + 11;
    while p < end {
        let Some(h) = pkt.get(p..p + 4) else {
            return Err(Rcode::FormErr);
        };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let Some(data) = pkt.get(p + 4..p + 4 + len).filter(|_| p + 4 + len <= end) else {
            return Err(Rcode::FormErr);
        };
        match code {
            opt::NSID => edns.nsid = true,
            opt::CLIENT_SUBNET => {
                if ecs_option.is_some() {
                    return Err(Rcode::FormErr);
                }
                check_client_subnet(data)?;
                ecs_option = Some(pkt.get(p..p + 4 + len).ok_or(Rcode::FormErr)?);
            }
            opt::COOKIE => {
                // A malformed length is FORMERR (RFC 7873 §5.2.2); a second
                // option is ignored.
                if !super::cookie::Cookie::valid_len(data.len()) {
                    return Err(Rcode::FormErr);
                }
                cookie.get_or_insert(data);
            }
            // Unknown options are ignored (RFC 6891 §6.1.2).
            _ => {}
        }
        p += 4 + len;
    }
    Ok((edns, cookie, ecs_option))
}

/// Parses a client written as `IP` or `IP/PREFIX` (an ECS subnet, as `explain`
/// takes it): the address, and with a prefix the subnet with host bits cleared.
pub(crate) fn parse_client(text: &str) -> Result<(IpAddr, Option<ClientSubnet>), Invalid> {
    let bad = || Invalid(format!("client {text:?} is not an IP address or IP/PREFIX"));
    let (a, p) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
        None => (text, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let Some(prefix) = p else {
        return Ok((addr, None));
    };
    let (family, max) = if addr.is_ipv4() { (1, 32) } else { (2, 128) };
    if prefix > max {
        return Err(Invalid(format!(
            "client {text:?}: /{prefix} is longer than the address"
        )));
    }
    let addr = crate::geo::cidr::mask(addr, prefix);
    Ok((
        addr,
        Some(ClientSubnet {
            family,
            source_prefix: prefix,
            addr,
        }),
    ))
}

/// Validates an ECS option as RFC 7871 §6 and §7.1.1 require, or FORMERR.
#[cfg(test)]
pub(crate) fn read_client_subnet(data: &[u8]) -> Result<ClientSubnet, Rcode> {
    check_client_subnet(data)?;
    let mut o = vec![0, 8, 0, 0];
    o.extend_from_slice(data);
    client_subnet_of(&o).ok_or(Rcode::FormErr)
}

/// Whether the data of an ECS option is as RFC 7871 §6 and §7.1.1 require;
/// FORMERR if not.
#[inline(always)]
fn check_client_subnet(data: &[u8]) -> Result<(), Rcode> {
    let Some(&[f0, f1, source_prefix, scope_prefix]) = data.get(..4) else {
        return Err(Rcode::FormErr);
    };
    let max = match u16::from_be_bytes([f0, f1]) {
        1 => 32,
        2 => 128,
        _ => return Err(Rcode::FormErr),
    };
    // SCOPE PREFIX-LENGTH must be 0 in queries (§6).
    if source_prefix > max || scope_prefix != 0 {
        return Err(Rcode::FormErr);
    }
    // ADDRESS holds exactly the octets the prefix needs, and the bits past the
    // prefix are zero (§6: "MUST be ... zero").
    let need = (source_prefix as usize).div_ceil(8);
    if data.len() - 4 != need {
        return Err(Rcode::FormErr);
    }
    if !source_prefix.is_multiple_of(8) {
        let last = data[4 + need - 1];
        let mask = 0xffu8 >> (source_prefix % 8);
        if last & mask != 0 {
            return Err(Rcode::FormErr);
        }
    }
    Ok(())
}

/// The subnet of an ECS option (code, length, data) whose data
/// [`check_client_subnet`] passed. The address ends the option: it is read as
/// the integer of the option's last eight or sixteen bytes, shifted (copies of
/// a length known only here were calls to memcpy, byte loops slower still).
fn client_subnet_of(o: &[u8]) -> Option<ClientSubnet> {
    let &[_, _, _, _, f0, f1, source_prefix, _] = o.get(..8)? else {
        return None;
    };
    let family = u16::from_be_bytes([f0, f1]);
    // Address octets: at most 16, as checked.
    let bits = 8 * (o.len() - 8).min(16) as u32;
    let last8 = u64::from_be_bytes(o.get(o.len() - 8..)?.try_into().ok()?);
    let addr = if family == 1 {
        // At most four octets, the low ones of the last eight bytes.
        let v = if bits == 0 {
            0
        } else {
            (last8 << (64 - bits)) >> 32
        };
        IpAddr::from(std::net::Ipv4Addr::from(v as u32))
    } else {
        let tail = match o.len().checked_sub(16).and_then(|at| o.get(at..)) {
            Some(w) => u128::from_be_bytes(w.try_into().ok()?),
            None => u128::from(last8),
        };
        let v = if bits == 0 { 0 } else { tail << (128 - bits) };
        IpAddr::from(std::net::Ipv6Addr::from(v))
    };
    Some(ClientSubnet {
        family,
        source_prefix,
        addr,
    })
}

/// The client's address and how many of its bits count: the believed ECS address
/// and source prefix, else the packet's source at full length.
pub(crate) fn client_addr(ecs: Option<&ClientSubnet>, src: IpAddr) -> (IpAddr, u8) {
    match ecs {
        Some(cs) => (cs.addr, cs.source_prefix),
        None => (src, if src.is_ipv4() { 32 } else { 128 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&arcount.to_be_bytes());
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(extra);
        p
    }

    fn opt(options: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        o.extend_from_slice(&(options.len() as u16).to_be_bytes());
        o.extend_from_slice(options);
        o
    }

    #[test]
    fn parses_question_and_lowercases() {
        let p = query(b"\x03WwW\x07example\x00", 1, &[], 0);
        let mut buf = NameBuf::default();
        let q = parse(&p, &mut buf).unwrap();
        assert_eq!(q.qname(), b"\x03www\x07example\x00");
        assert_eq!(&q.question[..4], b"\x03WwW");
        assert_eq!(q.qtype, 1);
        assert!(q.rd);
        assert!(q.edns.is_none());
    }

    #[test]
    fn has_upper_finds_capitals_anywhere_and_nothing_else() {
        for fill in [b'a', 0x3f, 0xff, 0x80, 0xc1, b'['] {
            for b in 0u8..=255 {
                for len in [1usize, 7, 8, 9, 16, 23] {
                    for at in [0, len / 2, len - 1] {
                        let mut v = vec![fill; len];
                        v[at] = b;
                        assert_eq!(
                            has_upper(&v),
                            b.is_ascii_uppercase(),
                            "byte {b:#x} at {at} of {len} among {fill:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn reads_opt_nsid_and_ecs() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let mut options = vec![0, 3, 0, 0];
        options.extend_from_slice(&ecs);
        let p = query(b"\x01a\x00", 1, &opt(&options), 1);
        let mut buf = NameBuf::default();
        let q = parse(&p, &mut buf).unwrap();
        let e = q.edns.unwrap();
        assert_eq!(e.payload, 1232);
        assert!(e.nsid);
        let cs = q.client_subnet().unwrap();
        assert_eq!(cs.source_prefix, 24);
        assert_eq!(cs.addr, "198.51.100.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rejects_bad_ecs() {
        // Host bits set past the prefix.
        let bad = [0, 8, 0, 7, 0, 1, 23, 0, 198, 51, 101];
        let p = query(b"\x01a\x00", 1, &opt(&bad), 1);
        assert!(matches!(
            parse(&p, &mut NameBuf::default()),
            Err(Reject::Error {
                rcode: Rcode::FormErr,
                ..
            })
        ));
        // Source prefix longer than the address family allows.
        let bad = [0, 8, 0, 8, 0, 1, 33, 0, 1, 2, 3, 4];
        let p = query(b"\x01a\x00", 1, &opt(&bad), 1);
        assert!(parse(&p, &mut NameBuf::default()).is_err());
        // Non-zero scope in a query.
        let bad = [0, 8, 0, 7, 0, 1, 24, 5, 1, 2, 3];
        let p = query(b"\x01a\x00", 1, &opt(&bad), 1);
        assert!(parse(&p, &mut NameBuf::default()).is_err());
    }

    #[test]
    fn client_text() {
        let (a, cs) = parse_client("198.51.100.77/24").unwrap();
        assert_eq!(a.to_string(), "198.51.100.0");
        assert_eq!(cs.map(|c| c.source_prefix), Some(24));
        let (a, cs) = parse_client("2001:db8::1/32").unwrap();
        assert_eq!(a.to_string(), "2001:db8::");
        assert_eq!(cs.map(|c| c.family), Some(2));
        assert_eq!(parse_client("0.0.0.0/0").unwrap().0.to_string(), "0.0.0.0");
        assert!(parse_client("192.0.2.1").unwrap().1.is_none());
        assert!(parse_client("192.0.2.1/33").is_err());
        assert!(parse_client("192.0.2.1/xx").is_err());
        assert!(parse_client("not-an-ip").is_err());
    }

    #[test]
    fn drops_short_and_responses() {
        assert!(matches!(
            parse(&[0u8; 5], &mut NameBuf::default()),
            Err(Reject::Drop)
        ));
        let mut p = query(b"\x00", 1, &[], 0);
        p[2] |= 0x80;
        assert!(matches!(
            parse(&p, &mut NameBuf::default()),
            Err(Reject::Drop)
        ));
    }

    /// The lone OPT record (read without the general walk) and the same record
    /// after another additional one (read by the walk) parse alike; one whose
    /// data runs past the packet is FORMERR either way.
    #[test]
    fn a_lone_opt_reads_as_the_walk_does() {
        let ecs = [0, 8, 0, 7, 0, 1, 24, 0, 198, 51, 100];
        let lone = query(b"\x01a\x00", 1, &opt(&ecs), 1);
        // A TXT record at the root before the OPT record.
        let mut extra = vec![0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 1, 0];
        extra.extend_from_slice(&opt(&ecs));
        let walked = query(b"\x01a\x00", 1, &extra, 2);
        let (mut b1, mut b2) = (NameBuf::default(), NameBuf::default());
        let (a, b) = (
            parse(&lone, &mut b1).unwrap(),
            parse(&walked, &mut b2).unwrap(),
        );
        assert_eq!(a.edns, b.edns);
        assert_eq!(a.ecs_option, Some(&ecs[..]));
        assert_eq!(b.ecs_option, Some(&ecs[..]));
        for p in [lone, walked] {
            let short = &p[..p.len() - 1];
            assert!(matches!(
                parse(short, &mut NameBuf::default()),
                Err(Reject::Error {
                    rcode: Rcode::FormErr,
                    ..
                })
            ));
        }
    }

    /// Every source prefix length of either family gives the address sent, its
    /// octets past the prefix's zero.
    #[test]
    fn ecs_addresses_of_every_length() {
        let full: [u8; 16] = [
            0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x11, 0x22,
            0x33, 0x44,
        ];
        for (family, max) in [(1u16, 32u8), (2, 128)] {
            for prefix in 0..=max {
                let n = usize::from(prefix).div_ceil(8);
                let mut data = family.to_be_bytes().to_vec();
                data.extend_from_slice(&[prefix, 0]);
                data.extend_from_slice(&full[..n]);
                if prefix % 8 != 0 {
                    data[4 + n - 1] &= 0xffu8 << (8 - prefix % 8);
                }
                let cs = read_client_subnet(&data).expect("a valid option");
                let mut want = [0u8; 16];
                want[..n].copy_from_slice(&data[4..]);
                let want = if family == 1 {
                    IpAddr::from([want[0], want[1], want[2], want[3]])
                } else {
                    IpAddr::from(want)
                };
                assert_eq!(cs.addr, want, "family {family} /{prefix}");
            }
        }
    }

    #[test]
    fn two_opts_are_formerr() {
        let mut extra = opt(&[]);
        extra.extend_from_slice(&opt(&[]));
        let p = query(b"\x00", 1, &extra, 2);
        assert!(matches!(
            parse(&p, &mut NameBuf::default()),
            Err(Reject::Error {
                rcode: Rcode::FormErr,
                ..
            })
        ));
    }

    #[test]
    fn truncated_name_is_formerr() {
        let p = query(b"\x05ab", 1, &[], 0);
        let p = &p[..p.len() - 4];
        assert!(matches!(
            parse(p, &mut NameBuf::default()),
            Err(Reject::Error {
                rcode: Rcode::FormErr,
                ..
            })
        ));
    }

    #[test]
    fn min_ttl_of_answer_then_authority() {
        let rr = |name: &[u8], t: u16, ttl: u32| {
            let mut r = name.to_vec();
            r.extend_from_slice(&t.to_be_bytes());
            r.extend_from_slice(&[0, 1]);
            r.extend_from_slice(&ttl.to_be_bytes());
            r.extend_from_slice(&[0, 4, 192, 0, 2, 1]);
            r
        };
        let msg = |an: &[Vec<u8>], ns: &[Vec<u8>]| {
            let mut m = vec![0, 0, 0x84, 0, 0, 1];
            m.extend_from_slice(&(an.len() as u16).to_be_bytes());
            m.extend_from_slice(&(ns.len() as u16).to_be_bytes());
            m.extend_from_slice(&[0, 0, 1, b'a', 0, 0, 1, 0, 1]);
            for r in an.iter().chain(ns) {
                m.extend_from_slice(r);
            }
            m
        };
        let ptr = [0xc0, 12];
        let answer = [rr(&ptr, 1, 300), rr(&ptr, 1, 60)];
        let soa = [rr(&ptr, 6, 900), rr(b"\x01b\x00", 6, 30)];
        assert_eq!(min_ttl(&msg(&answer, &soa)), Some(60));
        assert_eq!(min_ttl(&msg(&[], &soa)), Some(30));
        assert_eq!(min_ttl(&msg(&[], &[])), None);
        let cut = msg(&answer, &[]);
        assert_eq!(min_ttl(&cut[..cut.len() - 3]), None);
    }
}
