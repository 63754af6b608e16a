//! DNS probe: one query over UDP (RFC 1035 §4), checking the rcode and, if asked,
//! that some answer's RDATA contains a text.
//!
//! The health module keeps out of hickory (only `server` names it, see
//! ARCHITECTURE.md), so the few bytes a probe needs are written and read here.

use std::fmt::Write as _;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::UdpSocket;

use super::ProbeError;
use crate::health::rng::Rng;

const HEADER_LEN: usize = 12;
/// Largest UDP payload we accept; we send no EDNS, so a server should send at most
/// 512 bytes (RFC 1035 §4.2.1), but reading more costs nothing.
const MAX_REPLY: usize = 4096;
const CLASS_IN: u16 = 1;

pub(super) async fn query(
    target: SocketAddr,
    qname: &str,
    qtype: u16,
    expect_rcode: u8,
    expect_answer: Option<&str>,
) -> Result<String, ProbeError> {
    let id = Rng::new().next_u16();
    let msg = build_query(id, qname, qtype)?;
    let bind = super::bind_addr(target);
    let sock = UdpSocket::bind(bind).await.map_err(ProbeError::Connect)?;
    // Connected, so the kernel drops datagrams from other sources and reports an
    // ICMP port unreachable as a refused receive instead of leaving us to time out.
    sock.connect(target).await.map_err(ProbeError::connect)?;
    sock.send(&msg).await.map_err(udp_error)?;
    let mut buf = vec![0u8; MAX_REPLY];
    let reply = loop {
        let n = sock.recv(&mut buf).await.map_err(udp_error)?;
        let packet = &buf[..n];
        // A late reply to an earlier query of ours, or a stray packet: keep waiting
        // (the probe's timeout bounds this).
        if packet.len() >= HEADER_LEN && u16::from_be_bytes([packet[0], packet[1]]) == id {
            break parse_response(packet).map_err(ProbeError::BadDns)?;
        }
    };
    judge(&reply, expect_rcode, expect_answer)
}

fn udp_error(e: io::Error) -> ProbeError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::BadDns("port unreachable".into()),
        _ => ProbeError::receive(e),
    }
}

fn judge(reply: &Response, expect_rcode: u8, needle: Option<&str>) -> Result<String, ProbeError> {
    let rcode = rcode_name(reply.rcode);
    if reply.rcode != expect_rcode {
        return Err(ProbeError::Rcode {
            got: rcode,
            want: rcode_name(expect_rcode),
        });
    }
    let Some(needle) = needle else {
        return Ok(format!("DNS {rcode}"));
    };
    match reply.answers.iter().find(|a| a.contains(needle)) {
        Some(a) => Ok(format!("DNS {rcode} {a}")),
        None => Err(ProbeError::Answer {
            rcode,
            needle: needle.to_string(),
            truncated: if reply.truncated { " (truncated)" } else { "" },
        }),
    }
}

/// RFC 1035 §4.1.1 rcodes, RFC 6895 names.
fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE{n}"),
    }
}

/// A query with RD clear (we ask authoritative servers what they hold, not to
/// recurse) and no EDNS, so that any server can answer it.
pub(crate) fn build_query(id: u16, qname: &str, qtype: u16) -> Result<Vec<u8>, ProbeError> {
    let mut m = Vec::with_capacity(HEADER_LEN + qname.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes()); // QR=0 OPCODE=QUERY RD=0
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0; 6]); // ANCOUNT NSCOUNT ARCOUNT
    encode_name(qname, &mut m)?;
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// A name in wire form (RFC 1035 §3.1): labels of 1 to 63 octets, 255 octets in
/// all. A trailing dot is optional; escapes in names are not supported.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), ProbeError> {
    let bad = |why: &str| ProbeError::BadCheck(format!("query name {name:?}: {why}"));
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let start = out.len();
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            let len = u8::try_from(label.len())
                .ok()
                .filter(|l| (1..=63).contains(l))
                .ok_or_else(|| bad("each label must have 1 to 63 characters"))?;
            out.push(len);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - start > 255 {
        return Err(bad("longer than 255 octets"));
    }
    Ok(())
}

/// What a probe needs from a reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub rcode: u8,
    pub truncated: bool,
    /// The RDATA of each answer record, in presentation form.
    pub answers: Vec<String>,
}

pub(crate) fn parse_response(msg: &[u8]) -> Result<Response, String> {
    let header = msg.get(..HEADER_LEN).ok_or("shorter than a header")?;
    let flags = u16::from_be_bytes([header[2], header[3]]);
    if flags & 0x8000 == 0 {
        return Err("QR bit clear: not a response".into());
    }
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    let ancount = u16::from_be_bytes([header[6], header[7]]);
    let rcode = (flags & 0x000f) as u8;
    let truncated = flags & 0x0200 != 0;
    let mut pos = HEADER_LEN;
    for _ in 0..qdcount {
        pos = skip_name(msg, pos)?;
        pos = pos
            .checked_add(4)
            .filter(|p| *p <= msg.len())
            .ok_or("question cut short")?;
    }
    let mut answers = Vec::with_capacity(usize::from(ancount));
    for _ in 0..ancount {
        if truncated && pos >= msg.len() {
            // A truncated reply may hold fewer records than it counts.
            break;
        }
        pos = skip_name(msg, pos)?;
        let fixed = msg.get(pos..pos + 10).ok_or("answer cut short")?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rd_start = pos + 10;
        let rdata = msg
            .get(rd_start..rd_start + rdlen)
            .ok_or("answer RDATA cut short")?;
        answers.push(present(msg, rd_start, rtype, rdata)?);
        pos = rd_start + rdlen;
    }
    Ok(Response {
        rcode,
        truncated,
        answers,
    })
}

/// RDATA in presentation form for the types a check is likely to name; the generic
/// form of RFC 3597 §5 for the rest, so a check can still match any bytes.
fn present(msg: &[u8], at: usize, rtype: u16, rdata: &[u8]) -> Result<String, String> {
    Ok(match (rtype, rdata.len()) {
        (1, 4) => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
        (28, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(rdata);
            Ipv6Addr::from(o).to_string()
        }
        // NS, CNAME, PTR: one name, possibly compressed.
        (2 | 5 | 12, _) => read_name(msg, at)?,
        (15, n) if n >= 3 => {
            let pref = u16::from_be_bytes([rdata[0], rdata[1]]);
            format!("{pref} {}", read_name(msg, at + 2)?)
        }
        (16, _) => present_txt(rdata)?,
        _ => {
            let mut s = format!("\\# {}", rdata.len());
            if !rdata.is_empty() {
                s.push(' ');
                for b in rdata {
                    let _ = write!(s, "{b:02x}");
                }
            }
            s
        }
    })
}

/// TXT RDATA as quoted character-strings (RFC 1035 §5.1 escapes).
fn present_txt(mut rdata: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    while let Some((&len, rest)) = rdata.split_first() {
        let s = rest.get(..usize::from(len)).ok_or("TXT string cut short")?;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push('"');
        for &b in s {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('"');
        rdata = &rest[usize::from(len)..];
    }
    Ok(out)
}

/// The offset after the name at `pos` (which may end in a compression pointer).
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, String> {
    loop {
        let len = *msg.get(pos).ok_or("name cut short")?;
        match len {
            0 => return Ok(pos + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(pos + 1).ok_or("name cut short")?;
                return Ok(pos + 2);
            }
            l if l & 0xc0 != 0 => return Err("unknown label type".into()),
            l => pos += 1 + usize::from(l),
        }
    }
}

/// The name at `pos`, following compression pointers (RFC 1035 §4.1.4), with a dot
/// at the end. Pointers must point backwards, which also rules out loops.
fn read_name(msg: &[u8], mut pos: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut wire_len = 0usize;
    let mut limit = pos;
    loop {
        let len = *msg.get(pos).ok_or("name cut short")?;
        if len & 0xc0 == 0xc0 {
            let low = *msg.get(pos + 1).ok_or("name cut short")?;
            let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            if target >= limit {
                return Err("compression pointer does not point backwards".into());
            }
            limit = target;
            pos = target;
            continue;
        }
        if len & 0xc0 != 0 {
            return Err("unknown label type".into());
        }
        wire_len += 1 + usize::from(len);
        if wire_len > 255 {
            return Err("name longer than 255 octets".into());
        }
        if len == 0 {
            break;
        }
        let label = msg
            .get(pos + 1..pos + 1 + usize::from(len))
            .ok_or("name cut short")?;
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x21..=0x7e => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('.');
        pos += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `build_query(…)` with the given answers appended.
    fn response(flags: u16, answers: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
        let mut m = build_query(7, "www.example.test.", 1).unwrap();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (name, rtype, rdata) in answers {
            m.extend_from_slice(name);
            m.extend_from_slice(&rtype.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&300u32.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    const QNAME_PTR: &[u8] = &[0xc0, 12];

    #[test]
    fn query_wire_form() {
        let q = build_query(0x1234, "a.example.", 28).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 7, b'e', b'x', b'a', b'm', b'p',
                b'l', b'e', 0, 0, 28, 0, 1
            ]
        );
        assert_eq!(
            build_query(1, "a.example", 1).unwrap(),
            build_query(1, "a.example.", 1).unwrap()
        );
        assert_eq!(&build_query(1, ".", 2).unwrap()[12..], &[0, 0, 2, 0, 1]);
    }

    #[test]
    fn query_name_limits() {
        assert!(build_query(1, "a..b", 1).is_err());
        assert!(build_query(1, &"x".repeat(64), 1).is_err());
        let long = ["a".repeat(63).as_str(); 4].join(".");
        assert!(build_query(1, &long, 1).is_err());
    }

    #[test]
    fn parses_addresses_and_names() {
        let cname_rdata: &[u8] = &[3, b'w', b'e', b'b', 0xc0, 16]; // web.example.test.
        let m = response(
            0x8400,
            &[
                (QNAME_PTR, 5, cname_rdata),
                (QNAME_PTR, 1, &[192, 0, 2, 1]),
                (
                    QNAME_PTR,
                    28,
                    &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                ),
                (QNAME_PTR, 16, b"\x05hello\x03a\"b"),
                (QNAME_PTR, 99, &[1, 2]),
            ],
        );
        let r = parse_response(&m).unwrap();
        assert_eq!(r.rcode, 0);
        assert_eq!(
            r.answers,
            vec![
                "web.example.test.",
                "192.0.2.1",
                "2001:db8::1",
                "\"hello\" \"a\\\"b\"",
                "\\# 2 0102"
            ]
        );
    }

    #[test]
    fn rcode_and_truncation() {
        let r = parse_response(&response(0x8003, &[])).unwrap();
        assert_eq!((r.rcode, r.truncated), (3, false));
        let mut m = response(0x8200, &[]);
        m[6..8].copy_from_slice(&5u16.to_be_bytes());
        let r = parse_response(&m).unwrap();
        assert!(r.truncated && r.answers.is_empty());
    }

    #[test]
    fn rejects_malformed_replies() {
        assert!(parse_response(&[0; 5]).is_err());
        assert!(parse_response(&response(0x0000, &[])).is_err(), "QR clear");
        let mut m = response(0x8000, &[(QNAME_PTR, 1, &[192, 0, 2, 1])]);
        m.truncate(m.len() - 2);
        assert!(parse_response(&m).is_err());
        // A CNAME target that points at itself (offset 46: 34 bytes of query, then
        // a 2-byte owner pointer and 10 bytes of type, class, TTL and length).
        let m = response(0x8000, &[(QNAME_PTR, 5, &[0xc0, 46])]);
        assert!(parse_response(&m).is_err());
        // A forward pointer.
        let m = response(0x8000, &[(QNAME_PTR, 5, &[0xc0, 200])]);
        assert!(parse_response(&m).is_err());
    }

    #[test]
    fn judging() {
        let r = Response {
            rcode: 0,
            truncated: false,
            answers: vec!["192.0.2.1".into()],
        };
        assert_eq!(
            judge(&r, 0, Some("192.0.2.1")).unwrap(),
            "DNS NOERROR 192.0.2.1"
        );
        assert_eq!(
            judge(&r, 0, Some("192.0.2.9")).unwrap_err().to_string(),
            "DNS NOERROR, no answer contains \"192.0.2.9\""
        );
        assert_eq!(
            judge(&r, 3, None).unwrap_err().to_string(),
            "DNS NOERROR, want NXDOMAIN"
        );
    }
}
