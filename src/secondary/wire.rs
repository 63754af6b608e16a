//! Zone transfer messages: the AXFR and IXFR queries a secondary sends, and the
//! records of a response read back with every check a primary's bytes need
//! (compression pointers only backwards and bounded, names at most 255 octets,
//! RDATA read to its exact end). Names in the RDATA of the RFC 1035 types (and
//! the few later ones RFC 3597 §4 lists) are decompressed, so a record comes
//! out as the crate's zone code keeps it: uncompressed wire RDATA.

use crate::zone::name::Name;
use crate::zone::rtype;

/// One record of a response, owner and RDATA uncompressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rr {
    pub owner: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// What a response carries that a transfer needs.
#[derive(Debug)]
pub struct Response {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    pub answers: Vec<Rr>,
    /// Where the additional section starts, and its count (TSIG lives there).
    pub additional: (usize, u16),
}

/// A response that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed response: {0}")]
pub struct Malformed(pub &'static str);

const HEADER: usize = 12;
/// The most compression pointers one name may follow: more is a loop or an attack.
const MAX_POINTERS: usize = 64;

/// A query for `qtype` (AXFR, IXFR or SOA) of `origin`; an IXFR carries the SOA we
/// hold in its authority section (RFC 1995 §3).
pub fn query(id: u16, origin: &Name, qtype: u16, ours: Option<(&[u8], u32)>) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    m.extend_from_slice(&u16::from(ours.is_some()).to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(origin.wire());
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some((rdata, ttl)) = ours {
        m.extend_from_slice(origin.wire());
        m.extend_from_slice(&rtype::SOA.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

fn u16_at(m: &[u8], p: usize) -> Result<u16, Malformed> {
    m.get(p..p + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(Malformed("ends inside a field"))
}

fn u32_at(m: &[u8], p: usize) -> Result<u32, Malformed> {
    m.get(p..p + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Malformed("ends inside a field"))
}

/// Reads the possibly compressed name at `pos` into `out` (uncompressed wire);
/// returns where the name ends in the message. Pointers must point backwards
/// (RFC 1035 §4.1.4), at most [`MAX_POINTERS`] of them.
fn read_name(m: &[u8], pos: usize, out: &mut Vec<u8>) -> Result<usize, Malformed> {
    let start = out.len();
    let mut p = pos;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(p).ok_or(Malformed("ends inside a name"))? as usize;
        match len & 0xc0 {
            0x00 => {
                out.push(len as u8);
                if len == 0 {
                    break;
                }
                let label = m
                    .get(p + 1..p + 1 + len)
                    .ok_or(Malformed("ends inside a name"))?;
                out.extend_from_slice(label);
                if out.len() - start > 255 {
                    return Err(Malformed("a name longer than 255 octets"));
                }
                p += 1 + len;
            }
            0xc0 => {
                let target = (u16_at(m, p)? & 0x3fff) as usize;
                if target >= p || jumps == MAX_POINTERS {
                    return Err(Malformed("a compression pointer that does not point back"));
                }
                jumps += 1;
                end.get_or_insert(p + 2);
                p = target;
            }
            _ => return Err(Malformed("a label type that does not exist")),
        }
    }
    if out.len() - start > 255 {
        return Err(Malformed("a name longer than 255 octets"));
    }
    Ok(end.unwrap_or(p + 1))
}

/// How a type's RDATA starts with names: (octets before the first name, names,
/// then the rest as is). `None`: no compressible names, copied as is.
fn name_layout(t: u16) -> Option<(usize, usize)> {
    Some(match t {
        rtype::NS | rtype::CNAME | rtype::PTR | 3 | 4 | 7 | 8 | 9 => (0, 1),
        rtype::SOA | 14 | 17 => (0, 2),
        rtype::MX | 18 | 21 | 36 => (2, 1),
        rtype::SRV => (6, 1),
        _ => return None,
    })
}

/// RDATA from `m[pos..end]`, its names decompressed.
fn read_rdata(m: &[u8], t: u16, pos: usize, end: usize) -> Result<Vec<u8>, Malformed> {
    let raw = m
        .get(pos..end)
        .ok_or(Malformed("RDATA runs past the message"))?;
    let Some((fixed, names)) = name_layout(t) else {
        return Ok(raw.to_vec());
    };
    let mut out = Vec::with_capacity(raw.len() + 32);
    out.extend_from_slice(raw.get(..fixed).ok_or(Malformed("RDATA too short"))?);
    let mut p = pos + fixed;
    for _ in 0..names {
        if p >= end {
            return Err(Malformed("RDATA too short"));
        }
        p = read_name(m, p, &mut out)?;
    }
    if p > end {
        return Err(Malformed("a name in RDATA runs past its length"));
    }
    out.extend_from_slice(&m[p..end]);
    if t == rtype::SOA && m[p..end].len() != 20 {
        return Err(Malformed("SOA RDATA of the wrong length"));
    }
    Ok(out)
}

/// Reads one resource record at `pos`; returns it and where the next begins.
fn read_rr(m: &[u8], pos: usize) -> Result<(Rr, usize), Malformed> {
    let mut owner = Vec::with_capacity(32);
    let p = read_name(m, pos, &mut owner)?;
    let rtype_ = u16_at(m, p)?;
    let class = u16_at(m, p + 2)?;
    let ttl = u32_at(m, p + 4)?;
    let rdlen = u16_at(m, p + 8)? as usize;
    let start = p + 10;
    let end = start + rdlen;
    if end > m.len() {
        return Err(Malformed("RDATA runs past the message"));
    }
    let rdata = read_rdata(m, rtype_, start, end)?;
    let owner = Name::from_wire(&owner).ok_or(Malformed("a bad owner name"))?;
    Ok((
        Rr {
            owner,
            rtype: rtype_,
            class,
            ttl,
            rdata,
        },
        end,
    ))
}

/// Reads a response: header, the question skipped, every answer record.
pub fn parse(m: &[u8]) -> Result<Response, Malformed> {
    if m.len() < HEADER {
        return Err(Malformed("shorter than a header"));
    }
    let flags = u16_at(m, 2)?;
    if flags & 0x8000 == 0 {
        return Err(Malformed("not a response"));
    }
    let qd = u16_at(m, 4)?;
    let an = u16_at(m, 6)?;
    let ns = u16_at(m, 8)?;
    let ar = u16_at(m, 10)?;
    let mut p = HEADER;
    for _ in 0..qd {
        let mut scratch = Vec::new();
        p = read_name(m, p, &mut scratch)? + 4;
        if p > m.len() {
            return Err(Malformed("ends inside the question"));
        }
    }
    let mut answers = Vec::with_capacity(an as usize);
    for _ in 0..an {
        let (rr, next) = read_rr(m, p)?;
        answers.push(rr);
        p = next;
    }
    for _ in 0..ns {
        p = read_rr(m, p)?.1;
    }
    Ok(Response {
        id: u16_at(m, 0)?,
        rcode: (flags & 0x0f) as u8,
        truncated: flags & 0x0200 != 0,
        answers,
        additional: (p, ar),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn reads_compressed_names_in_rdata() {
        // Header (1 answer), question example.net SOA IN, then the SOA with names
        // pointing into the question.
        let mut m = vec![0, 7, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x07example\x03net\x00\x00\x06\x00\x01");
        m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0x0e, 0x10]);
        let rd: Vec<u8> = [&b"\x02ns\xc0\x0c\x02hm\xc0\x0c"[..], &[0; 20][..]].concat();
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(&rd);
        let r = parse(&m).unwrap();
        assert_eq!(r.id, 7);
        let soa = &r.answers[0];
        assert_eq!(soa.owner, name("example.net."));
        let mut want = name("ns.example.net.").wire().to_vec();
        want.extend_from_slice(name("hm.example.net.").wire());
        want.extend_from_slice(&[0; 20]);
        assert_eq!(soa.rdata, want);
    }

    #[test]
    fn refuses_loops_and_short_messages() {
        let mut m = vec![0, 7, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        // A pointer to itself.
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2, 3, 4]);
        assert!(parse(&m).is_err());
        let mut short = vec![0, 7, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        short.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 1, 2]);
        assert!(parse(&short).is_err());
        assert!(parse(&[0; 5]).is_err());
    }
}
