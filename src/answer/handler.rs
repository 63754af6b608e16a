//! One packet in, at most one response out: classify the query, find the answer in the
//! snapshot, steer it if the name is steered, and write it. Shared by the UDP and TCP
//! paths so both answer alike.

use std::net::IpAddr;

use super::cookie;
use super::decision_cache;
use super::fast::Fast;
use super::opt::{cookie_out, edns_out};
use super::query::client_addr;
use super::query::{self, ClientSubnet, Query, Reject};
use super::write::{size_limit, write_response, HeaderOut, OptOut};
use crate::answer::rrl::{self, Rrl, Subject, Verdict};
use crate::answer::snapshot::Snapshot;
use crate::answer::Observed;
use crate::dnssec::budget::{self, Standing};
use crate::policy::{
    self, AddrAnswer, Client, Decision, Endpoint, HealthView, NamePolicy, NoTrace, Outcome,
    Recorder, Trace,
};
use crate::zone::{class, rtype, Answer, Owner, RRset, Rcode, Rec, Zone};

/// How the query arrived; decides the size limit and ANY handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The UDP path's rate limiter, which the general path asks before it signs an
/// answer (a limited response must cost no signature).
#[derive(Clone, Copy)]
pub(crate) struct Gate<'a> {
    pub rrl: &'a Rrl,
}

/// Answers one packet from `src` into `out`. `sent` in the result is false when
/// nothing must be sent; the rest says what happened, for metrics.
pub fn handle(
    snap: &Snapshot,
    pkt: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Observed {
    handle_gated(snap, pkt, src, transport, None, out)
}

/// [`handle`] for a UDP query, with rate limiting asked before any signing: when
/// it was, `rrl` in the result holds its verdict (and a limited response is left
/// unsigned, for the caller to drop or truncate).
pub(crate) fn handle_udp(
    snap: &Snapshot,
    pkt: &[u8],
    src: IpAddr,
    gate: Gate<'_>,
    out: &mut Vec<u8>,
) -> Observed {
    handle_gated(snap, pkt, src, Transport::Udp, Some(gate), out)
}

fn handle_gated(
    snap: &Snapshot,
    pkt: &[u8],
    src: IpAddr,
    transport: Transport,
    gate: Option<Gate<'_>>,
    out: &mut Vec<u8>,
) -> Observed {
    let o = handle_unsigned(snap, pkt, src, transport, gate, out);
    // With TSIG keys configured, a signed query gets a signed answer (RFC 8945
    // §5.3), or the TSIG error; servers without keys pay nothing.
    if o.sent && !snap.transfer.keys.keys.is_empty() {
        let now = crate::clock::unix_now();
        let limit = || udp_limit(snap, pkt, transport);
        crate::zone::tsig::sign_answer_within(&snap.transfer.keys, pkt, out, now, limit);
    }
    o
}

/// The size a response to `pkt` must fit in: the client's EDNS payload (or
/// 512) over UDP, 64 KiB over TCP.
#[cold]
fn udp_limit(snap: &Snapshot, pkt: &[u8], transport: Transport) -> usize {
    let mut name_buf = query::NameBuf::default();
    let edns = match query::parse(pkt, &mut name_buf) {
        Ok(q) => q.edns,
        Err(Reject::Error { edns, .. }) => edns,
        Err(Reject::Drop) => None,
    };
    size_limit(edns.as_ref(), snap.udp_payload, transport == Transport::Tcp)
}

fn handle_unsigned(
    snap: &Snapshot,
    pkt: &[u8],
    src: IpAddr,
    transport: Transport,
    gate: Option<Gate<'_>>,
    out: &mut Vec<u8>,
) -> Observed {
    let tcp = transport == Transport::Tcp;
    let mut name_buf = query::NameBuf::default();
    match query::parse(pkt, &mut name_buf) {
        Ok(q) => {
            let mut hint = None;
            // DO=1 for a signed zone too: the table holds answers with their
            // RRSIGs, and sends what it cannot prebuild this way.
            if !tcp {
                if let Some(f) = snap.fast.get() {
                    match f.answer(snap, &q, src, out) {
                        Fast::Done(mut o) => {
                            // Asked only when a cookie came: most queries carry none.
                            if q.cookie.is_some() {
                                o.verified = cookie_verified(snap, &q, src);
                            }
                            return o;
                        }
                        Fast::Steer(z, p) => hint = Some((z, p)),
                        Fast::No => {}
                    }
                }
            }
            let mut o = Observed {
                sent: true,
                qtype: q.qtype,
                verified: q.cookie.is_some() && cookie_verified(snap, &q, src),
                ..Observed::default()
            };
            answer_query(snap, &q, src, tcp, gate, out, &mut o, hint);
            if out.len() >= 4 {
                o.truncated = out[2] & 0x02 != 0;
                o.rcode = (out[3] & 0x0f) as u16;
                if q.edns.is_some_and(|e| e.version > 0) {
                    o.rcode = 16;
                }
            }
            o.question_len = q.question.len() as u16;
            // A signed answer the table does not hold: this thread keeps it for
            // the next such query (steered ones are remembered by decision).
            if let (false, None, Some(f)) = (tcp, hint, snap.fast.get()) {
                f.keep_signed(snap, &q, &o, out);
            }
            o
        }
        Err(Reject::Drop) => Observed::default(),
        Err(Reject::Error {
            id,
            opcode,
            rd,
            cd,
            rcode,
            question,
            edns,
            cookie,
        }) => {
            let (rcode, aa) = match (opcode, rcode) {
                (super::notify_in::OPCODE, Rcode::NotImp) => {
                    let now = crate::clock::unix_now();
                    let signed = super::notify_in::signed(&snap.transfer.keys, pkt, now);
                    super::notify_in::answer(snap.notify.as_deref(), question, src, signed)
                }
                _ => (rcode, false),
            };
            let header = HeaderOut {
                id,
                opcode,
                rd,
                cd,
                aa,
                rcode,
            };
            let opt = edns.map(|e| OptOut {
                payload: snap.udp_payload,
                dnssec_ok: e.dnssec_ok,
                cookie: cookie_out(snap, cookie, src),
                ..OptOut::default()
            });
            let limit = size_limit(edns.as_ref(), snap.udp_payload, tcp);
            write_response(out, header, question, &[], None, opt.as_ref(), limit);
            Observed {
                sent: true,
                rcode: rcode as u16,
                question_len: question.map(|q| q.len() as u16).unwrap_or(0),
                ..Observed::default()
            }
        }
    }
}

/// Whether the query carries a valid server cookie: the address is the client's
/// own.
#[cold]
fn cookie_verified(snap: &Snapshot, q: &Query<'_>, src: IpAddr) -> bool {
    q.cookie.and_then(cookie::Cookie::read).is_some_and(|c| {
        snap.cookies
            .as_ref()
            .is_some_and(|s| s.verify(&c, src, cookie::now()))
    })
}

/// Where a query's client is: the ECS address when the query carries one from a
/// resolver we believe (RFC 7871 §7.1.1), else the packet's source.
pub(crate) fn client_of(snap: &Snapshot, ecs: Option<&ClientSubnet>, src: IpAddr) -> Client {
    let (addr, source_prefix) = client_addr(ecs, src);
    Client {
        addr,
        // SOURCE PREFIX-LENGTH 0: the resolver asks us not to use an address at all
        // (RFC 7871 §7.1.2): the client is unknown.
        location: if source_prefix == 0 {
            Default::default()
        } else {
            snap.geo.locate(addr)
        },
        source_prefix,
    }
}

/// What every step of one query's answer reads: the snapshot, the query and where
/// it came from, the believed ECS, and the response's size limit.
struct Asked<'a, 'q> {
    snap: &'a Snapshot,
    q: &'a Query<'q>,
    src: IpAddr,
    tcp: bool,
    ecs: Option<ClientSubnet>,
    limit: usize,
}

impl Asked<'_, '_> {
    /// A response with no records: header (AA as `header` has it), question, OPT.
    fn refuse(
        &self,
        out: &mut Vec<u8>,
        mut header: HeaderOut,
        opt: Option<&OptOut<'_>>,
        rc: Rcode,
    ) {
        header.rcode = rc;
        write_response(
            out,
            header,
            Some(self.q.question),
            self.q.qname(),
            None,
            opt,
            self.limit,
        );
    }
}

/// `steered`: the (zone, name policy) the fast path found for the query name, for a
/// steered A, AAAA or CNAME; the lookup would come to the same.
#[allow(clippy::too_many_arguments)]
fn answer_query(
    snap: &Snapshot,
    q: &Query<'_>,
    src: IpAddr,
    tcp: bool,
    gate: Option<Gate<'_>>,
    out: &mut Vec<u8>,
    obs: &mut Observed,
    steered: Option<(u32, u32)>,
) {
    let header = HeaderOut {
        id: q.id,
        opcode: q.opcode,
        rd: q.rd,
        cd: q.cd,
        aa: false,
        rcode: Rcode::NoError,
    };
    // ECS from a resolver we do not believe is ignored and not echoed (RFC 7871 §7.2.1).
    let (ecs, mut opt) = edns_out(snap, q, src);
    let asked = Asked {
        snap,
        q,
        src,
        tcp,
        ecs,
        limit: size_limit(q.edns.as_ref(), snap.udp_payload, tcp),
    };

    // RFC 6891 §6.1.3: a version we do not speak gets BADVERS (16) and our version.
    if q.edns.is_some_and(|e| e.version > 0) {
        if let Some(o) = opt.as_mut() {
            o.ext_rcode = 1;
            o.client_subnet = None;
            o.nsid = None;
        }
        return asked.refuse(out, header, opt.as_ref(), Rcode::NoError);
    }
    match q.qtype {
        // OPT only lives in the additional section (RFC 6891 §6.1.1).
        rtype::OPT => return asked.refuse(out, header, opt.as_ref(), Rcode::FormErr),
        // Zone transfers are not offered; TSIG/TKEY are not queries.
        rtype::AXFR | rtype::IXFR | rtype::TSIG | rtype::TKEY => {
            return asked.refuse(out, header, opt.as_ref(), Rcode::Refused)
        }
        rtype::MAILA | rtype::MAILB => {
            return asked.refuse(out, header, opt.as_ref(), Rcode::NotImp)
        }
        _ => {}
    }

    // Declared before the answer, which borrows them (Answer is invariant).
    let mut plan = None;
    let mut explain_rrset = None;
    let (answer, zone) = match q.qclass {
        class::IN | class::ANY => {
            let Some((zone, mut a, steer)) = find(snap, q, tcp, steered) else {
                let rc = super::notify_in::no_zone(&snap.unavailable, q.qname());
                return asked.refuse(out, header, opt.as_ref(), rc);
            };
            obs.zone_slot = Some(zone.metrics_slot);
            if let Some(steer) = steer {
                if steer_into(&asked, zone, steer, steered, &mut a, opt.as_mut(), obs, out) {
                    return;
                }
            }
            (a, Some(zone))
        }
        class::CH => {
            let Some(set) = chaos_set(&asked, &mut explain_rrset) else {
                return asked.refuse(out, header, opt.as_ref(), Rcode::Refused);
            };
            // No AA: we hold no CHAOS zone, so these answers are not
            // authoritative ones (NSD and Knot answer them the same way).
            let mut a = Answer::default();
            a.answer.push(Rec::new(Owner::Query, set));
            (a, None)
        }
        _ => return asked.refuse(out, header, opt.as_ref(), Rcode::Refused),
    };
    obs.wildcard_at = answer.wildcard_at;
    let signed_zone = zone.filter(|z| q.edns.is_some_and(|e| e.dnssec_ok) && z.dnssec.is_some());
    sign_and_write(
        &asked,
        gate,
        signed_zone,
        &answer,
        &mut plan,
        header,
        opt.as_ref(),
        obs,
        out,
    );
}

/// The steered name, with its zone's steering, where its owner is, and the
/// (zone, name) indexes of the two in the snapshot.
type Steer<'s> = (
    &'s crate::policy::ZoneSteering,
    &'s NamePolicy,
    Owner<'s>,
    (u32, u32),
);

/// The zone that answers `q` and its answer, with the steered name it reached, if
/// any; `None`: no zone of ours.
fn find<'s>(
    snap: &'s Snapshot,
    q: &Query<'_>,
    tcp: bool,
    steered: Option<(u32, u32)>,
) -> Option<(&'s Zone, Answer<'s>, Option<Steer<'s>>)> {
    // The zone's steering lives beside it in the snapshot, by the zone's index;
    // the answer's `steer` indexes its names.
    let known = steered.and_then(|(z, p)| {
        let zone = snap.zones.zones().get(z as usize)?;
        let s = snap.steering.get(z as usize)?;
        Some((zone, s, (z, p), s.names.get(p as usize)?))
    });
    if let Some((zone, s, (z, i), p)) = known {
        let a = Answer {
            authoritative: true,
            steer: Some((i, Owner::Query)),
            ..Answer::default()
        };
        return Some((zone, a, Some((s, p, Owner::Query, (z, i)))));
    }
    let ((zi, zone), parent) = snap.zones.find_at_with_parent(q.qname())?;
    // DS lives on the parent side of a cut (RFC 4035 §3.1.4.1).
    let (zi, zone) = match parent {
        Some(p) if q.qtype == rtype::DS && zone.origin.wire() == q.qname() => p,
        _ => (zi, zone),
    };
    let a = zone.lookup(q.qname(), q.qtype, tcp);
    let steer = a.steer.and_then(|(i, owner)| {
        let s = snap.steering.get(zi)?;
        Some((s, s.names.get(i as usize)?, owner, (zi as u32, i)))
    });
    Some((zone, a, steer))
}

/// Decides the steered name for the client and applies the decision to `a`. True
/// when the response went out whole instead, from the fast table's prebuilt answer
/// for one endpoint's address set (UDP; this thread then remembers it).
#[allow(clippy::too_many_arguments)]
fn steer_into<'s>(
    asked: &Asked<'s, '_>,
    zone: &'s Zone,
    (s, p, owner, (zi, pi)): Steer<'s>,
    hint: Option<(u32, u32)>,
    a: &mut Answer<'s>,
    mut opt: Option<&mut OptOut<'_>>,
    obs: &mut Observed,
    out: &mut Vec<u8>,
) -> bool {
    let Asked { snap, q, src, .. } = *asked;
    // Read before anything the decision reads (see `decision_cache`).
    let epoch = crate::health::epoch();
    let ecs = asked.ecs.as_ref();
    let client = client_of(snap, ecs, src);
    let health = &snap.health;
    let d = policy::decide(&s.policy, p, &client, health, q.qtype, 0, &mut NoTrace);
    if let Some(o) = opt.as_deref_mut() {
        o.client_subnet = asked.ecs.map(|cs| (cs, d.scope));
    }
    obs.ecs = ecs.is_some();
    let region = match &d.outcome {
        Outcome::Endpoints(l) => l
            .first()
            .and_then(|&i| p.endpoints.get(i as usize))
            .map(|e| e.region)
            .unwrap_or(u16::MAX),
        _ => u16::MAX,
    };
    obs.steered = Some((p.metrics_slot, region, d.reason));
    obs.decision = Some(super::Decided {
        zone: zi,
        name: pi,
        fenced: d.fenced,
        scope: d.scope,
    });
    // A signed zone's DO=1 answer: the set with the RRSIG its signing made.
    let signed = q.edns.is_some_and(|e| e.dnssec_ok) && snap.signer_of(zone).is_some();
    // One endpoint's whole address set: its answer is prebuilt, and this
    // thread remembers it for the next query with the same inputs.
    if let (false, Some(f), Some(hint)) = (asked.tcp, snap.fast.get(), hint) {
        let body = single_set(p, &d.outcome, q.qtype, health)
            .and_then(|(i, degraded)| f.steered_body(hint, i, degraded, q.qtype, signed));
        if let Some(at) = body {
            if f.emit_at(at, q, opt.as_deref(), asked.limit, out) {
                if signed {
                    // As for any signed answer: the network asked for one.
                    crate::dnssec::budget::note_client(src);
                }
                let key = f.steer_cache_key(epoch, hint, q, ecs, src);
                let r = decision_cache::Remembered {
                    body: at,
                    scope: d.scope,
                    zone_slot: zone.metrics_slot,
                    steered: (p.metrics_slot, region, d.reason),
                    fenced: d.fenced,
                    signed,
                };
                decision_cache::put(key, r);
                return true;
            }
        }
    }
    apply_decision(zone, p, owner, &d.outcome, q.qtype, health, a);
    false
}

/// The CHAOS TXT set for the query: an identity answer, or for a steered name the
/// decision explained (to clients on the explain list only), kept in `slot`.
fn chaos_set<'a>(asked: &Asked<'a, '_>, slot: &'a mut Option<RRset>) -> Option<&'a RRset> {
    let Asked { snap, q, src, .. } = *asked;
    if matches!(q.qtype, rtype::TXT | rtype::ANY) {
        if let Some(set) = snap.chaos.get(q.qname()) {
            return Some(set);
        }
    }
    if q.qtype != rtype::TXT || snap.explain_from.lookup(src).is_none() {
        return None;
    }
    let lines = explain(snap, q.qname(), asked.ecs.as_ref(), src)?;
    Some(slot.insert(RRset::txt(class::CH, 0, &lines)))
}

/// Writes `answer`; for DO=1 in a signed zone, with its RRSIGs and denial NSECs,
/// after asking the rate limiter (a response that will be dropped or truncated is
/// not signed) and within the signing budget (SERVFAIL over it, never an unsigned
/// answer).
#[allow(clippy::too_many_arguments)]
fn sign_and_write<'z>(
    asked: &Asked<'z, '_>,
    gate: Option<Gate<'_>>,
    signed_zone: Option<&'z Zone>,
    answer: &Answer<'z>,
    plan: &'z mut Option<crate::dnssec::online::Plan>,
    mut header: HeaderOut,
    opt: Option<&OptOut<'_>>,
    obs: &mut Observed,
    out: &mut Vec<u8>,
) {
    let Asked { snap, q, src, .. } = *asked;
    let signer = signed_zone.and_then(|z| Some((z, snap.signer_of(z)?)));
    if let (Some((z, _)), Some(g)) = (signer, gate) {
        if g.rrl.limits(src) && !obs.verified {
            let (class, subject) = classify_answer(z, q, answer);
            let v = g.rrl.check_key(g.rrl.key(src, class, subject), g.rrl.now());
            obs.rrl = Some(v);
            if v != Verdict::Send {
                // Header and question only, for the caller to drop or truncate.
                header.aa = answer.authoritative;
                return asked.refuse(out, header, opt, answer.rcode());
            }
        }
    }
    let secured: Answer<'_>;
    let answer = match signer {
        Some((z, s)) => {
            let standing = standing(src, asked.tcp || obs.verified);
            match s.plan(z, q.qname(), q.qtype, answer, standing) {
                Ok(p) => {
                    secured = plan.insert(p).apply(answer, s);
                    &secured
                }
                // Over the cap on signing: SERVFAIL rather than an unsigned answer.
                Err(_) => return asked.refuse(out, header, opt, Rcode::ServFail),
            }
        }
        None => answer,
    };
    header.aa = answer.authoritative;
    header.rcode = answer.rcode();
    write_response(
        out,
        header,
        Some(q.question),
        q.qname(),
        Some(answer),
        opt,
        asked.limit,
    );
}

/// What the signing budget lets a DO=1 query from `src` spend (see
/// [`crate::dnssec::budget`]), `verified` when its address is proven (TCP, a
/// valid server cookie); notes the client's network in the history.
fn standing(src: IpAddr, verified: bool) -> Standing {
    // The fast table's build asks no client's standing.
    if crate::dnssec::online::prebuilding() {
        return Standing::Verified;
    }
    let h = budget::history();
    let now = h.now();
    let net = crate::geo::cidr::network_of(src, 24, 56);
    let s = h.standing(net, now);
    h.note(net, now);
    if verified {
        Standing::Verified
    } else {
        s
    }
}

/// The rate-limiting class of an answer not yet written, as [`rrl::classify`]
/// finds it from the written response.
fn classify_answer<'a>(zone: &Zone, q: &Query<'a>, a: &'a Answer<'_>) -> (rrl::Class, Subject<'a>) {
    let zone_subject = Subject::Zone(zone.metrics_slot);
    match a.rcode() {
        Rcode::NoError => {}
        Rcode::NxDomain => return (rrl::Class::NxDomain, zone_subject),
        r => return (rrl::Class::Error, Subject::Rcode(r as u16)),
    }
    if let Some(at) = a.wildcard_at {
        let n = q.qname();
        return (
            rrl::Class::Wildcard,
            Subject::Name(n.get(at as usize..).unwrap_or(n), 0),
        );
    }
    if !a.answer.is_empty() {
        return (rrl::Class::Positive, Subject::Name(q.qname(), q.qtype));
    }
    match a.authority.first() {
        Some(r) if !a.authoritative && r.set.rtype() == rtype::NS => match r.owner {
            Owner::Name(cut) => (rrl::Class::Referral, Subject::Cut(cut)),
            Owner::Query => (rrl::Class::Referral, Subject::Name(q.qname(), 0)),
        },
        _ => (rrl::Class::NoData, zone_subject),
    }
}

/// Puts a decision's endpoints into the answer: their prebuilt RRsets, without the
/// addresses whose probes fail, capped at the name's `max_answers` addresses, with
/// the name's lower TTL while any of its endpoints is down.
pub(crate) fn apply_decision<'z, H: HealthView>(
    zone: &'z Zone,
    p: &'z NamePolicy,
    owner: Owner<'z>,
    outcome: &Outcome,
    qtype: u16,
    health: &H,
    a: &mut Answer<'z>,
) {
    match outcome {
        Outcome::ServFail => {
            a.rcode = Some(Rcode::ServFail);
            a.answer.clear();
            a.authority.clear();
            a.additional.clear();
        }
        Outcome::NoData => {
            a.authority.push(Rec::new(
                Owner::Name(zone.origin.wire().into()),
                &zone.negative_soa,
            ));
        }
        Outcome::Endpoints(list) => {
            let degraded = any_degraded_down(p, health);
            let pick = |e: &'z Endpoint| pick(e, degraded);
            let Some(first) = list.first().and_then(|&i| p.endpoints.get(i as usize)) else {
                return;
            };
            // A CNAME endpoint answers alone: nothing may stand beside a CNAME.
            if qtype == rtype::CNAME || first.cname.is_some() {
                if let Some(c) = &pick(first).cname {
                    a.answer.push(Rec::new(owner, c));
                }
                return;
            }
            let mut left = p.max_answers as usize;
            for &i in list {
                let Some(orig) = p.endpoints.get(i as usize) else {
                    continue;
                };
                let e = pick(orig);
                let sets = [
                    (matches!(qtype, rtype::A | rtype::ANY), &e.a, &e.a_each),
                    (
                        matches!(qtype, rtype::AAAA | rtype::ANY),
                        &e.aaaa,
                        &e.aaaa_each,
                    ),
                ];
                for (wanted, all, each) in sets {
                    let Some(all) = all.as_ref().filter(|_| wanted) else {
                        continue;
                    };
                    if left == 0 {
                        return;
                    }
                    if whole_set_up(orig, each, health) {
                        let take = left.min(all.rdatas().len());
                        left -= take;
                        a.answer.push(Rec {
                            owner,
                            set: all,
                            take: take as u16,
                            sig: None,
                        });
                        continue;
                    }
                    for x in each.iter().filter(|x| health.address_up(x)) {
                        if left == 0 {
                            return;
                        }
                        left -= 1;
                        a.answer.push(Rec::new(owner, &x.set));
                    }
                }
            }
        }
    }
}

/// When [`apply_decision`] would answer an A or AAAA query with exactly one
/// endpoint's whole address set (one endpoint decided, no CNAME, every address
/// counted up): that endpoint's index, and whether its degraded (lower TTL) form
/// is the one. `None` for any other shape of answer.
pub(super) fn single_set<H: HealthView>(
    p: &NamePolicy,
    outcome: &Outcome,
    qtype: u16,
    health: &H,
) -> Option<(u32, bool)> {
    let Outcome::Endpoints(list) = outcome else {
        return None;
    };
    let &[i] = list.as_slice() else {
        return None;
    };
    if !matches!(qtype, rtype::A | rtype::AAAA) || p.max_answers == 0 {
        return None;
    }
    let orig = p.endpoints.get(i as usize)?;
    if orig.cname.is_some() {
        return None;
    }
    let degraded = any_degraded_down(p, health);
    let e = pick(orig, degraded);
    let each = if qtype == rtype::A {
        &e.a_each
    } else {
        &e.aaaa_each
    };
    if !whole_set_up(orig, each, health) {
        return None;
    }
    Some((u32::from(i), degraded && orig.degraded.is_some()))
}

/// While any endpoint with a degraded form is down, every endpoint answers in its
/// degraded form (the name's lower TTL).
fn any_degraded_down<H: HealthView>(p: &NamePolicy, health: &H) -> bool {
    p.endpoints
        .iter()
        .any(|e| e.degraded.is_some() && !health.endpoint_up(e))
}

/// The form of `e` that answers: its degraded one while `degraded`, if it has one.
fn pick(e: &Endpoint, degraded: bool) -> &Endpoint {
    match (&e.degraded, degraded) {
        (Some(d), true) => d,
        _ => e,
    }
}

/// Whether `orig`'s whole address set (`each`, of its answering form) goes in the
/// answer. An endpoint answered while down (fail open, a named fallback) or forced
/// up carries every address; an up one leaves out the addresses whose probes fail.
fn whole_set_up<H: HealthView>(orig: &Endpoint, each: &[AddrAnswer], health: &H) -> bool {
    let check_each = !orig.probes.is_empty() && !health.forced_up(orig) && health.endpoint_up(orig);
    !check_each || each.iter().all(|x| health.address_up(x))
}

/// One query type's decision for a client, explained: the zone that holds `qname`,
/// its answer for `qtype` and, when a steered name answers, the decision (its steps
/// written to `rec`) with the answer steered by it. `None` when no zone holds the
/// name. The one explain path: [`explain`] (CHAOS TXT, the admin endpoint) calls it
/// with the live health, `signpost explain` offline with every endpoint up.
pub(crate) fn explain_type<'s, H: HealthView>(
    snap: &'s Snapshot,
    qname: &[u8],
    qtype: u16,
    client: &Client,
    health: &H,
    rec: &mut Recorder,
) -> Option<(&'s Zone, Answer<'s>, Option<Decision>)> {
    let ((zi, zone), _) = snap.zones.find_at_with_parent(qname)?;
    let mut answer = zone.lookup(qname, qtype, true);
    let steered = answer.steer.and_then(|(i, owner)| {
        let s = snap.steering.get(zi)?;
        Some((s, s.names.get(i as usize)?, owner))
    });
    let Some((s, p, owner)) = steered else {
        return Some((zone, answer, None));
    };
    let d = policy::decide(&s.policy, p, client, health, qtype, 0, rec);
    apply_decision(zone, p, owner, &d.outcome, qtype, health, &mut answer);
    Some((zone, answer, Some(d)))
}

/// The explain trace for a steered name (its A, then its AAAA decision, with the
/// live health), or `None` when the name is not steered.
pub fn explain(
    snap: &Snapshot,
    qname: &[u8],
    ecs: Option<&ClientSubnet>,
    src: IpAddr,
) -> Option<Vec<String>> {
    let client = client_of(snap, ecs, src);
    let mut rec = Recorder::default();
    let mut first = 0;
    for t in [rtype::A, rtype::AAAA] {
        if rec.on() {
            rec.note(format!("-- {}", rtype::Rtype(t)));
        }
        if t == rtype::AAAA {
            first = rec.0.len();
        }
        let (_, _, decision) = explain_type(snap, qname, t, &client, &snap.health, &mut rec)?;
        decision?;
    }
    // The scope map is the name's, not the type's: its explanation comes once (under
    // the A trace), so both traces fit one UDP answer.
    let (a, aaaa) = rec.0.split_at(first);
    let again = |l: &String| policy::is_scope_map_line(l) && a.contains(l);
    let kept: Vec<String> = aaaa.iter().filter(|l| !again(l)).cloned().collect();
    rec.0.truncate(first);
    rec.0.extend(kept);
    Some(rec.0)
}
