//! DNS probe: one query over UDP (RFC 1035 §4.2.1), retried over TCP when the reply
//! is truncated (RFC 7766 §5: TC means the whole answer is to be had over TCP),
//! checking the rcode and, if asked, that some answer's RDATA contains a text.
//!
//! Messages are built and read by hickory-proto; this module only moves them over
//! the sockets (a connected UDP socket, or a TCP connection with the two-byte length
//! prefix of RFC 1035 §4.2.2) and judges the reply.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use super::ProbeError;
use crate::health::rng::Rng;

/// Largest UDP payload we accept; we send no EDNS, so a server should send at most
/// 512 bytes (RFC 1035 §4.2.1), but reading more costs nothing.
const MAX_REPLY: usize = 4096;

pub(super) async fn query(
    target: SocketAddr,
    qname: &str,
    qtype: u16,
    expect_rcode: u8,
    expect_answer: Option<&str>,
) -> Result<String, ProbeError> {
    let id = secure_id();
    let msg = build_query(id, qname, qtype)?;
    let reply = match over_udp(target, id, &msg).await? {
        Some(reply) => reply,
        None => over_tcp(target, id, &msg)
            .await
            .map_err(|e| ProbeError::TcpRetry(Box::new(e)))?,
    };
    judge(&reply, expect_rcode, expect_answer)
}

/// A query id no one off the path can guess (RFC 5452 §9.2): from the system's
/// secure source, the probe's own generator only if that fails.
fn secure_id() -> u16 {
    let mut b = [0u8; 2];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b) {
        Ok(()) => u16::from_be_bytes(b),
        Err(_) => Rng::new().next_u16(),
    }
}

/// Whether `reply` answers the question of `query` (RFC 5452 §4.1: the id, the
/// name, the type and the class must all match, the name in any letter case).
fn answers_question(reply: &[u8], query: &[u8]) -> bool {
    let question = |m: &[u8]| -> Option<Vec<u8>> {
        let mut at = 12;
        loop {
            let len = usize::from(*m.get(at)?);
            if len == 0 {
                break;
            }
            // A compression pointer or a bad label type is no question of ours.
            if len > 63 {
                return None;
            }
            at += 1 + len;
        }
        let q = m.get(12..at + 5)?;
        Some(q.to_ascii_lowercase())
    };
    let count = |m: &[u8]| m.get(4..6).map(|c| u16::from_be_bytes([c[0], c[1]]));
    count(reply) == Some(1) && question(reply).is_some_and(|r| Some(r) == question(query))
}

/// The reply over UDP, or `None` when it came truncated: its records may be cut
/// anywhere, so only its header is read.
async fn over_udp(target: SocketAddr, id: u16, msg: &[u8]) -> Result<Option<Message>, ProbeError> {
    let sock = UdpSocket::bind(super::bind_addr(target))
        .await
        .map_err(ProbeError::connect)?;
    // Connected, so the kernel drops datagrams from other sources and reports an
    // ICMP port unreachable as a refused receive instead of leaving us to time out.
    sock.connect(target).await.map_err(ProbeError::connect)?;
    sock.send(msg).await.map_err(udp_error)?;
    let mut buf = vec![0u8; MAX_REPLY];
    loop {
        let n = sock.recv(&mut buf).await.map_err(udp_error)?;
        let packet = &buf[..n];
        // A late reply to an earlier query of ours, or a stray packet: keep waiting
        // (the probe's timeout bounds this).
        let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
            continue;
        };
        // Another id or another question: not the reply to this query (RFC
        // 5452 §9.1); a spoofed one is ignored like a stray.
        if header.metadata.id != id || !answers_question(packet, msg) {
            continue;
        }
        if header.metadata.message_type == MessageType::Response && header.metadata.truncation {
            return Ok(None);
        }
        return parse_response(packet).map(Some);
    }
}

/// One query over a fresh TCP connection (from `probe_source`, like the other
/// probes); the reply must carry our id.
async fn over_tcp(target: SocketAddr, id: u16, msg: &[u8]) -> Result<Message, ProbeError> {
    let mut stream = super::connect(target).await?;
    let len = u16::try_from(msg.len())
        .map_err(|_| ProbeError::BadCheck("query longer than 65535 bytes".into()))?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    stream.write_all(&framed).await.map_err(ProbeError::send)?;
    let closed = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => ProbeError::Closed("a reply"),
        _ => ProbeError::receive(e),
    };
    let len = stream.read_u16().await.map_err(closed)?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await.map_err(closed)?;
    let same_question = answers_question(&reply, msg);
    let reply = parse_response(&reply)?;
    if reply.metadata.id != id {
        return Err(ProbeError::BadDns(format!(
            "reply id {} to query id {id}",
            reply.metadata.id
        )));
    }
    if !same_question {
        return Err(ProbeError::BadDns(
            "the reply's question is not the query's".into(),
        ));
    }
    Ok(reply)
}

fn udp_error(e: io::Error) -> ProbeError {
    if super::is_local(&e) {
        return ProbeError::Local(e);
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeError::BadDns("port unreachable".into()),
        _ => ProbeError::receive(e),
    }
}

fn judge(reply: &Message, expect_rcode: u8, needle: Option<&str>) -> Result<String, ProbeError> {
    let got = u16::from(reply.metadata.response_code);
    let rcode = rcode_name(got);
    if got != u16::from(expect_rcode) {
        return Err(ProbeError::Rcode {
            got: rcode,
            want: rcode_name(u16::from(expect_rcode)),
        });
    }
    let Some(needle) = needle else {
        return Ok(format!("DNS {rcode}"));
    };
    let answers = reply.answers.iter().map(present);
    match answers.into_iter().find(|a| a.contains(needle)) {
        Some(a) => Ok(format!("DNS {rcode} {a}")),
        None => Err(ProbeError::Answer {
            rcode,
            needle: needle.to_string(),
            truncated: if reply.metadata.truncation {
                " (truncated)"
            } else {
                ""
            },
        }),
    }
}

/// RFC 1035 §4.1.1 rcodes, RFC 6895 names.
fn rcode_name(rcode: u16) -> String {
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
/// recurse) and no EDNS, so that any server can answer it. The name may be written
/// in Unicode (IDNA, sent as punycode) or hold labels a host name could not, such as
/// `_dmarc`; a trailing dot is optional.
pub(crate) fn build_query(id: u16, qname: &str, qtype: u16) -> Result<Vec<u8>, ProbeError> {
    let bad = |why: String| ProbeError::BadCheck(format!("query name {qname:?}: {why}"));
    let mut name = Name::from_str_relaxed(qname).map_err(|e| bad(e.to_string()))?;
    name.set_fqdn(true);
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(name, RecordType::from(qtype)));
    m.to_vec().map_err(|e| bad(e.to_string()))
}

fn parse_response(msg: &[u8]) -> Result<Message, ProbeError> {
    let m = Message::from_vec(msg).map_err(|e| ProbeError::BadDns(e.to_string()))?;
    if m.metadata.message_type != MessageType::Response {
        return Err(ProbeError::BadDns("QR bit clear: not a response".into()));
    }
    Ok(m)
}

/// RDATA in presentation form, written by the zone module's formatter, so that a
/// check's `answer` is matched against the same text a zone file would hold (TXT
/// strings quoted, RFC 1035 §5.1; types it does not know in the generic form of RFC
/// 3597 §5, so a check can still match any bytes).
fn present(record: &Record) -> String {
    match record.data.to_bytes() {
        Ok(wire) => crate::zone::rdata::format_rdata(u16::from(record.record_type()), &wire),
        // Not seen in practice (hickory read these bytes a moment ago); its own text
        // is the next best thing. `write!`, not `format!`: a type with no
        // presentation form (OPT) makes Display fail, which `format!` would turn
        // into a panic.
        Err(_) => {
            let mut out = String::new();
            let _ = write!(out, "{}", record.data);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers each query first with a reply to another question
    /// under the same id (what an off-path spoofer who guessed the id would
    /// send), then with the real reply.
    #[tokio::test]
    async fn a_reply_to_another_question_is_not_taken() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let Ok((n, from)) = server.recv_from(&mut buf).await else {
                return;
            };
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut spoof = build_query(q.metadata.id, "other.example.", 1).unwrap();
            spoof[2] |= 0x80;
            spoof[3] = 2; // SERVFAIL
            let _ = server.send_to(&spoof, from).await;
            let mut real = buf[..n].to_vec();
            real[2] |= 0x80; // NOERROR, no records
            let _ = server.send_to(&real, from).await;
        });
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            query(addr, "www.Example.", 1, 0, None),
        )
        .await
        .unwrap();
        assert_eq!(got.unwrap(), "DNS NOERROR");
    }

    #[test]
    fn question_match_ignores_case_only() {
        let q = build_query(7, "www.example.", 1).unwrap();
        let mut r = build_query(7, "WWW.example.", 1).unwrap();
        assert!(answers_question(&r, &q));
        r = build_query(7, "www.example.", 28).unwrap();
        assert!(!answers_question(&r, &q));
        r = build_query(7, "ww.example.", 1).unwrap();
        assert!(!answers_question(&r, &q));
        assert!(!answers_question(&q[..14], &q));
    }
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, NULL, TXT};
    use hickory_proto::rr::RData;

    fn reply(rcode: ResponseCode, answers: Vec<RData>) -> Message {
        let mut m = Message::response(7, OpCode::Query);
        m.metadata.response_code = rcode;
        let owner = Name::from_ascii("www.example.test.").unwrap();
        for rdata in answers {
            m.add_answer(Record::from_rdata(owner.clone(), 300, rdata));
        }
        m
    }

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
    fn query_names_idn_and_odd_labels() {
        let q = build_query(1, "bücher.example.", 1).unwrap();
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.queries[0].name().to_ascii(), "xn--bcher-kva.example.");
        let q = build_query(1, "_dmarc.example.", 16).unwrap();
        assert_eq!(&q[12..19], b"\x06_dmarc");
    }

    #[test]
    fn query_name_limits() {
        assert!(build_query(1, "a..b", 1).is_err());
        assert!(build_query(1, &"x".repeat(64), 1).is_err());
        let long = ["a".repeat(63).as_str(); 4].join(".");
        assert!(build_query(1, &long, 1).is_err());
    }

    #[test]
    fn presents_addresses_names_txt_and_unknown_types() {
        let m = reply(
            ResponseCode::NoError,
            vec![
                RData::CNAME(CNAME(Name::from_ascii("web.example.test.").unwrap())),
                RData::A(A::new(192, 0, 2, 1)),
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                RData::TXT(TXT::from_bytes(vec![b"hello", b"a\"b"])),
                RData::Unknown {
                    code: RecordType::Unknown(65280),
                    rdata: NULL::with(vec![1, 2]),
                },
            ],
        );
        // Through the wire and back, as a probe sees it.
        let m = parse_response(&m.to_vec().unwrap()).unwrap();
        let shown: Vec<String> = m.answers.iter().map(present).collect();
        assert_eq!(
            shown,
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
    fn rejects_malformed_replies() {
        assert!(parse_response(&[0; 5]).is_err());
        let q = build_query(7, "www.example.test.", 1).unwrap();
        assert!(parse_response(&q).is_err(), "QR clear");
        let mut m = reply(ResponseCode::NoError, vec![RData::A(A::new(192, 0, 2, 1))])
            .to_vec()
            .unwrap();
        m.truncate(m.len() - 2);
        assert!(parse_response(&m).is_err());
    }

    #[test]
    fn judging() {
        let r = reply(ResponseCode::NoError, vec![RData::A(A::new(192, 0, 2, 1))]);
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
        let r = reply(ResponseCode::NXDomain, vec![]);
        assert_eq!(judge(&r, 3, None).unwrap(), "DNS NXDOMAIN");
    }
}
