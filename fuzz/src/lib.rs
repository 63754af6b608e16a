//! What the fuzz targets share: the snapshots they query, built once from the test
//! fixtures, and the checks every response of the query handler must pass.
//!
//! Responses are decoded with hickory-proto, as in the integration tests, so the
//! checks do not trust our own wire code to read what our own wire code wrote.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hickory_proto::op::{Message, MessageType};
use signpost::app::{load_snapshot, server_config, Overrides};
use signpost::server::{handle, Transport};
use signpost::snapshot::Snapshot;

/// The repository this crate sits in.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Loads a snapshot the way `signpost serve` does. A fixture that does not load is a
/// broken harness, not a finding: panic with every error.
fn load(config: &str, zones: &str) -> Snapshot {
    let o = Overrides {
        config: Some(repo().join(config)),
        zones: Some(repo().join(zones)),
        ..Overrides::default()
    };
    let show = |errs: Vec<signpost::config::ConfigError>| {
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cfg = server_config(&o).unwrap_or_else(|e| panic!("fuzz fixture {config}: {}", show(e)));
    match load_snapshot(&cfg, 1) {
        Ok((snap, _)) => snap,
        Err(e) => panic!("fuzz fixture {zones}: {}", show(e)),
    }
}

/// The steering fixture: steered names under steer.test., the city geo database, the
/// default ECS and explain networks (ECS from anyone, explain from loopback).
pub fn steer() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| load("tests/configs/steer-server.toml", "tests/zones/steer"))
}

/// The core fixture: static zones with CNAME chains, wildcards, delegations, DS, an
/// RRset too big for 512 bytes, a policy-file zone, NSID and CHAOS identity.
pub fn core() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| load("tests/configs/core-server.toml", "tests/zones/core"))
}

/// The core fixture signed (DNSSEC, with the committed Ed25519 test keys), so
/// inputs with DO=1 reach the signed answer path and its on-the-fly signing.
pub fn signed() -> &'static Snapshot {
    static S: OnceLock<Snapshot> = OnceLock::new();
    S.get_or_init(|| load("tests/configs/signed-server.toml", "tests/zones/core"))
}

/// Every fixture, for targets that run every input against each.
pub fn snapshots() -> [(&'static str, &'static Snapshot); 3] {
    [("steer", steer()), ("core", core()), ("signed", signed())]
}

/// Sources a query may come from, chosen by the low bits of its ID so the fuzzer
/// controls it without a prefix byte in front of the packet: loopback (on the
/// explain list), a plain IPv4 and IPv6 resolver, and an address the steer fixture's
/// geo override pins to Germany.
pub fn source_for(pkt: &[u8]) -> IpAddr {
    let id = pkt.get(1).copied().unwrap_or(0);
    match id & 3 {
        0 => IpAddr::V4(Ipv4Addr::LOCALHOST),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        2 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        _ => IpAddr::V4(Ipv4Addr::new(198, 18, 5, 7)),
    }
}

/// Runs `pkt` through the handler and checks the response. Returns the decoded
/// response, or `None` when the handler rightly sent nothing.
///
/// Checks:
/// - nothing is sent only for a packet shorter than a header or with QR set;
/// - the response decodes, has QR set, the query's ID and opcode;
/// - a question in the response is a byte-for-byte copy of the query's;
/// - when hickory reads exactly one question in the query, the response carries that
///   question (name bytes in the client's letter case, type, class), unless the rcode
///   is FORMERR, or NOTIMP for an opcode other than QUERY, where it may carry none
///   (we refuse some questions hickory accepts, like a name pointing into the header);
/// - the size stays within 65535 bytes over TCP, and over UDP within 512 without EDNS,
///   else within the smaller of the client's payload and ours, never below 512
///   (RFC 6891 §6.2.5; `server::answer::size_limit`);
/// - the rcode and TC bit the handler reports for its metrics are those it sent.
pub fn answer_and_check(
    snap: &Snapshot,
    pkt: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Message> {
    let observed = handle(snap, pkt, src, transport, out);
    let ctx = || format!("query {pkt:02x?} from {src} over {transport:?}, response {out:02x?}");
    if !observed.sent {
        assert!(
            pkt.len() < 12 || pkt[2] & 0x80 != 0,
            "no response to a packet with a whole header and QR clear: {}",
            ctx()
        );
        return None;
    }
    assert!(out.len() >= 12, "response shorter than a header: {}", ctx());

    let query = Message::from_vec(pkt).ok();
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => {
            let ours = usize::from(snap.udp_payload);
            match &query {
                Some(q) => match &q.edns {
                    Some(e) => usize::from(e.max_payload()).min(ours).max(512),
                    None => 512,
                },
                // The query did not decode, so we cannot say whether it had EDNS: the
                // loosest limit the server could choose.
                None => ours.max(512),
            }
        }
    };
    assert!(
        out.len() <= limit,
        "response of {} bytes over the limit of {limit}: {}",
        out.len(),
        ctx()
    );

    let resp = match Message::from_vec(out) {
        Ok(m) => m,
        Err(e) => panic!("response does not decode: {e}: {}", ctx()),
    };
    let md = &resp.metadata;
    assert_eq!(
        md.message_type,
        MessageType::Response,
        "QR not set: {}",
        ctx()
    );
    assert_eq!(
        md.id,
        u16::from_be_bytes([pkt[0], pkt[1]]),
        "ID not echoed: {}",
        ctx()
    );
    assert_eq!(
        (out[2] >> 3) & 0x0f,
        (pkt[2] >> 3) & 0x0f,
        "opcode not echoed: {}",
        ctx()
    );
    assert!(resp.queries.len() <= 1, "more than one question: {}", ctx());
    if !resp.queries.is_empty() {
        let len = question_len(out)
            .unwrap_or_else(|| panic!("response question is not an uncompressed name: {}", ctx()));
        assert_eq!(
            pkt.get(12..12 + len),
            out.get(12..12 + len),
            "response question is not a copy of the query's: {}",
            ctx()
        );
    }

    // What the handler reports for its metrics is what it sent.
    assert_eq!(
        observed.rcode,
        u16::from(md.response_code),
        "observed rcode differs from the response's: {}",
        ctx()
    );
    assert_eq!(
        observed.truncated,
        md.truncation,
        "observed TC differs from the response's: {}",
        ctx()
    );

    // FORMERR, or NOTIMP for an opcode we do not serve, may come without the
    // question: the server reads a question it can answer, and hickory reads more
    // (a compression pointer into the header, say).
    let refused_unread = matches!(out[3] & 0x0f, 1 | 4);
    if let Some(q) = query.as_ref().filter(|q| q.queries.len() == 1) {
        let asked = &q.queries[0];
        match resp.queries.first() {
            Some(echoed) => assert!(
                same_question(asked, echoed),
                "question changed: asked {asked:?}, echoed {echoed:?}: {}",
                ctx()
            ),
            None => assert!(
                refused_unread,
                "question {asked:?} not echoed and rcode is neither FORMERR nor NOTIMP: {}",
                ctx()
            ),
        }
    }
    Some(resp)
}

/// Same name bytes (letter case included), type and class.
fn same_question(a: &hickory_proto::op::Query, b: &hickory_proto::op::Query) -> bool {
    a.name().iter().eq(b.name().iter())
        && u16::from(a.query_type()) == u16::from(b.query_type())
        && u16::from(a.query_class()) == u16::from(b.query_class())
}

/// Length of the question section at offset 12 when its name is uncompressed.
fn question_len(msg: &[u8]) -> Option<usize> {
    let mut p = 12;
    loop {
        let len = usize::from(*msg.get(p)?);
        if len == 0 {
            p += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        p += 1 + len;
    }
    (p + 4 <= msg.len()).then_some(p + 4 - 12)
}

/// A query packet: ID, RD, one question, and an OPT record with `options` when given.
pub fn build_query(
    id: u16,
    qname: &[u8],
    qtype: u16,
    qclass: u16,
    options: Option<&[u8]>,
) -> Vec<u8> {
    let mut p = Vec::with_capacity(64);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&0x0100u16.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&u16::from(options.is_some()).to_be_bytes());
    p.extend_from_slice(qname);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&qclass.to_be_bytes());
    if let Some(opts) = options {
        p.push(0); // root owner
        p.extend_from_slice(&41u16.to_be_bytes());
        p.extend_from_slice(&1232u16.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&(opts.len() as u16).to_be_bytes());
        p.extend_from_slice(opts);
    }
    p
}

/// Wire name (lower-cased) from dotted text; `None` when it is not a valid name.
pub fn wire_name(text: &str) -> Option<Vec<u8>> {
    let mut wire = Vec::new();
    for label in text.split('.').filter(|l| !l.is_empty()) {
        let b = label.as_bytes();
        if b.len() > 63 {
            return None;
        }
        wire.push(b.len() as u8);
        wire.extend(b.iter().map(u8::to_ascii_lowercase));
    }
    wire.push(0);
    (wire.len() <= 255).then_some(wire)
}

/// True for master-file text whose `$INCLUDE` could name a path outside a folder that
/// does not exist. The harness skips those: `/dev/zero` or `/dev/stdin` would make a
/// run hang on the file system, not on the parser, and other real files would make it
/// depend on the machine. (Without `/` or `\` a path stays in the missing folder.)
pub fn include_may_escape(text: &str) -> bool {
    text.to_ascii_lowercase().contains("$include") && text.contains(['/', '\\'])
}
