//! One packet in, at most one response out: classify the query, find the answer in the
//! snapshot, and write it. Shared by the UDP and TCP paths so both answer alike.

use super::answer::{size_limit, write_response, HeaderOut, OptOut};
use super::query::{self, Query, Reject};
use crate::snapshot::Snapshot;
use crate::zone::{class, rtype, Answer, Owner, Rcode, Rec};

/// How the query arrived; decides the size limit and ANY handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Answers one packet into `out`. Returns false when nothing must be sent.
pub fn handle(snap: &Snapshot, pkt: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
    let tcp = transport == Transport::Tcp;
    match query::parse(pkt) {
        Ok(q) => {
            answer_query(snap, &q, tcp, out);
            true
        }
        Err(Reject::Drop) => false,
        Err(Reject::Error {
            id,
            opcode,
            rd,
            cd,
            rcode,
            question,
            edns,
        }) => {
            let header = HeaderOut {
                id,
                opcode,
                rd,
                cd,
                aa: false,
                rcode,
            };
            let opt = edns.map(|e| OptOut {
                payload: snap.udp_payload,
                dnssec_ok: e.dnssec_ok,
                ..OptOut::default()
            });
            let limit = size_limit(edns.as_ref(), snap.udp_payload, tcp);
            write_response(out, header, question, &[], None, opt.as_ref(), limit);
            true
        }
    }
}

fn answer_query(snap: &Snapshot, q: &Query<'_>, tcp: bool, out: &mut Vec<u8>) {
    let mut header = HeaderOut {
        id: q.id,
        opcode: q.opcode,
        rd: q.rd,
        cd: q.cd,
        aa: false,
        rcode: Rcode::NoError,
    };
    let limit = size_limit(q.edns.as_ref(), snap.udp_payload, tcp);
    let mut opt = q.edns.map(|e| OptOut {
        payload: snap.udp_payload,
        dnssec_ok: e.dnssec_ok,
        nsid: if e.nsid { snap.nsid.as_deref() } else { None },
        // Static answers hold for every client: scope 0 (RFC 7871 §7.2.1).
        client_subnet: e.client_subnet.map(|cs| (cs, 0)),
        ext_rcode: 0,
    });

    // RFC 6891 §6.1.3: a version we do not speak gets BADVERS (16) and our version.
    if let Some(e) = &q.edns {
        if e.version > 0 {
            if let Some(o) = opt.as_mut() {
                o.ext_rcode = 1;
                o.client_subnet = None;
                o.nsid = None;
            }
            write_response(
                out,
                header,
                Some(q.question),
                q.qname(),
                None,
                opt.as_ref(),
                limit,
            );
            return;
        }
    }

    let refuse = |out: &mut Vec<u8>, header: &mut HeaderOut, opt: Option<&OptOut<'_>>, rc| {
        header.rcode = rc;
        write_response(out, *header, Some(q.question), q.qname(), None, opt, limit);
    };

    match q.qtype {
        // OPT only lives in the additional section (RFC 6891 §6.1.1).
        rtype::OPT => return refuse(out, &mut header, opt.as_ref(), Rcode::FormErr),
        // Zone transfers are not offered; TSIG/TKEY are not queries.
        rtype::AXFR | rtype::IXFR | rtype::TSIG | rtype::TKEY => {
            return refuse(out, &mut header, opt.as_ref(), Rcode::Refused)
        }
        rtype::MAILA | rtype::MAILB => {
            return refuse(out, &mut header, opt.as_ref(), Rcode::NotImp)
        }
        _ => {}
    }

    let answer: Answer<'_> = match q.qclass {
        class::IN | class::ANY => {
            let Some((zone, parent)) = snap.zones.find_with_parent(q.qname()) else {
                return refuse(out, &mut header, opt.as_ref(), Rcode::Refused);
            };
            // DS lives on the parent side of a cut (RFC 4035 §3.1.4.1).
            let zone = match parent {
                Some(p) if q.qtype == rtype::DS && zone.origin.wire() == q.qname() => p,
                _ => zone,
            };
            zone.lookup(q.qname(), q.qtype, tcp)
        }
        class::CH => {
            let set = match q.qtype {
                rtype::TXT | rtype::ANY => snap.chaos.get(q.qname()),
                _ => None,
            };
            let Some(set) = set else {
                return refuse(out, &mut header, opt.as_ref(), Rcode::Refused);
            };
            let mut a = Answer {
                authoritative: true,
                ..Answer::default()
            };
            a.answer.push(Rec {
                owner: Owner::Query,
                set,
            });
            a
        }
        _ => return refuse(out, &mut header, opt.as_ref(), Rcode::Refused),
    };
    header.aa = answer.authoritative;
    header.rcode = answer.rcode();
    write_response(
        out,
        header,
        Some(q.question),
        q.qname(),
        Some(&answer),
        opt.as_ref(),
        limit,
    );
}
