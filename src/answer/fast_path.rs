//! The UDP fast path at query time: a query answered from the fast table's
//! prebuilt answers ([`super::fast`]), from this thread's memory of a steered
//! decision ([`super::decision_cache`]), or from the signed answers this thread
//! kept from the general path ([`super::signed_cache`]); anything else goes the
//! general way.

use std::net::IpAddr;

use super::decision_cache;
use super::fast::{Fast, FastTable, NONE};
use super::query::{ClientSubnet, Query};
use super::signed_cache;
use super::snapshot::Snapshot;
use super::write::OptRecord;
use crate::answer::Observed;
use crate::zone::{class, name, rtype};

impl FastTable {
    /// Answers `q` (arrived over UDP from `src`) into `out` from the prebuilt answers,
    /// or returns `None` (with `out` in any state) for the general path to answer.
    pub fn answer(&self, snap: &Snapshot, q: &Query<'_>, src: IpAddr, out: &mut Vec<u8>) -> Fast {
        match self.prebuilt(snap, q, src, out) {
            Ok(o) => Fast::Done(o),
            Err(Some((z, p))) => Fast::Steer(z, p),
            Err(None) => match self.recalled(snap, q, src, out) {
                Some(o) => Fast::Done(o),
                None => Fast::No,
            },
        }
    }

    /// A signed zone's DO=1 answer that the table does not hold, as this thread
    /// kept it when the general path wrote it ([`signed_cache`]); `None` sends
    /// the query the general way. Out of line: the table's answers do not pay
    /// for it.
    #[cold]
    #[inline(never)]
    fn recalled(
        &self,
        snap: &Snapshot,
        q: &Query<'_>,
        src: IpAddr,
        out: &mut Vec<u8>,
    ) -> Option<Observed> {
        if !kept_kind(snap, q) {
            return None;
        }
        let limit = super::write::size_limit(q.edns.as_ref(), snap.udp_payload, false);
        let mut full = None;
        let opt = OptRecord::of(snap, q, src, &mut full);
        let (body_flags, kept) = signed_cache::with(self.id, q, limit, |body, kept| {
            Self::emit(q, body, 0, opt, limit, out).then_some((body.flags, kept))
        })??;
        // As the general path does: the network asked for signed answers.
        crate::dnssec::budget::note_client(src);
        Some(Observed {
            sent: true,
            zone_slot: kept.zone_slot,
            qtype: q.qtype,
            rcode: body_flags & 0x0f,
            question_len: q.question.len() as u16,
            wildcard_at: kept.wildcard_at,
            ..Observed::default()
        })
    }

    /// Keeps in this thread's [`signed_cache`] the general path's `response` to
    /// `q` over UDP, which `o` describes, if it is a DO=1 answer that can be
    /// sent again to the same question.
    #[cold]
    #[inline(never)]
    pub(super) fn keep_signed(
        &self,
        snap: &Snapshot,
        q: &Query<'_>,
        o: &Observed,
        response: &[u8],
    ) {
        let refused_by_rrl = o.rrl.is_some_and(|v| v != super::rrl::Verdict::Send);
        if !kept_kind(snap, q)
            || !o.sent
            || o.truncated
            || o.steered.is_some()
            || refused_by_rrl
            || !matches!(o.rcode, 0 | 3)
        {
            return;
        }
        let limit = super::write::size_limit(q.edns.as_ref(), snap.udp_payload, false);
        let kept = signed_cache::Kept {
            zone_slot: o.zone_slot,
            wildcard_at: o.wildcard_at,
        };
        signed_cache::keep(self.id, q, limit, response, kept);
    }

    fn prebuilt(
        &self,
        snap: &Snapshot,
        q: &Query<'_>,
        src: IpAddr,
        out: &mut Vec<u8>,
    ) -> Result<Observed, Option<(u32, u32)>> {
        if q.qclass != class::IN || q.qtype == rtype::OPT || (128..=255).contains(&q.qtype) {
            return Err(None);
        }
        if q.edns.is_some_and(|e| e.version != 0) {
            return Err(None);
        }
        let qname = q.qname();
        let dnssec = q.edns.is_some_and(|e| e.dnssec_ok);
        let (answers, shift, below_at) = match self.find(snap.zones.zones(), qname) {
            Some(e) => {
                if e.steered && matches!(q.qtype, rtype::A | rtype::AAAA | rtype::CNAME) {
                    if let (Some(zp), rtype::A | rtype::AAAA) = (e.policy, q.qtype) {
                        if let Some(o) = self.remembered(snap, q, src, zp, out) {
                            return Ok(o);
                        }
                    }
                    return Err(e.policy);
                }
                (e.exact, 0, None)
            }
            None => {
                // The closest encloser: the longest suffix that exists.
                let (o, e) = name::label_offsets(qname)
                    .skip(1)
                    .find_map(|o| self.find(snap.zones.zones(), &qname[o..]).map(|e| (o, e)))
                    .ok_or(None)?;
                // The answer was built for a first label of two bytes.
                if e.below == NONE {
                    return Err(None);
                }
                (e.below as usize, o - 2, Some(o))
            }
        };
        let mut body = self
            .answers(answers, q.qtype)
            .and_then(|b| self.body(b))
            .ok_or(None)?;
        // A signed zone's DO=1 answer: its own prebuilt form, if it has one.
        let signed = match body.signed.filter(|_| dnssec) {
            // NSEC and RRSIG as the question: the general path's own cases.
            Some(_) if matches!(q.qtype, rtype::NSEC | rtype::RRSIG) => return Err(None),
            Some(link) => {
                body = self.signed_body(&body, link).ok_or(None)?;
                true
            }
            None => false,
        };

        let limit = super::write::size_limit(q.edns.as_ref(), snap.udp_payload, false);
        let mut full = None;
        let opt = OptRecord::of(snap, q, src, &mut full);
        if !Self::emit(q, &body, shift, opt, limit, out) {
            return Err(None);
        }
        if signed {
            // As the general path does: the network asked for signed answers.
            crate::dnssec::budget::note_client(src);
        }

        let rcode = body.flags & 0x0f;
        // Below a name, an authoritative NOERROR can only come from a wildcard.
        let wildcard = rcode == 0 && body.flags & 0x0400 != 0;
        Ok(Observed {
            sent: true,
            zone_slot: body.zone_slot,
            qtype: q.qtype,
            rcode,
            question_len: q.question.len() as u16,
            wildcard_at: below_at
                .filter(|_| wildcard)
                .and_then(|o| u8::try_from(o).ok()),
            ..Observed::default()
        })
    }

    /// The [`steercache`] key of a steered A/AAAA query for the (zone, name policy)
    /// `zp`, with `epoch` read before anything it is decided from.
    pub(super) fn steer_cache_key(
        &self,
        epoch: u64,
        zp: (u32, u32),
        q: &Query<'_>,
        ecs: Option<&ClientSubnet>,
        src: IpAddr,
    ) -> decision_cache::Key {
        let dnssec = q.edns.is_some_and(|e| e.dnssec_ok);
        decision_cache::Key::new(self.id, epoch, zp, (q.qtype, dnssec), ecs, src)
    }

    /// A steered A/AAAA query answered as this thread last decided it for the same
    /// client, snapshot and health; `None` sends it to the decision.
    fn remembered(
        &self,
        snap: &Snapshot,
        q: &Query<'_>,
        src: IpAddr,
        zp: (u32, u32),
        out: &mut Vec<u8>,
    ) -> Option<Observed> {
        let (ecs, mut opt) = super::opt::edns_out(snap, q, src);
        let key = self.steer_cache_key(crate::health::epoch(), zp, q, ecs.as_ref(), src);
        let r = decision_cache::get(&key)?;
        if let Some(o) = opt.as_mut() {
            o.client_subnet = ecs.map(|cs| (cs, r.scope));
        }
        let limit = super::write::size_limit(q.edns.as_ref(), snap.udp_payload, false);
        if !self.emit_at(r.body, q, opt.as_ref(), limit, out) {
            return None;
        }
        if r.signed {
            // As the general path does: the network asked for signed answers.
            crate::dnssec::budget::note_client(src);
        }
        Some(Observed {
            sent: true,
            zone_slot: Some(r.zone_slot),
            qtype: q.qtype,
            ecs: ecs.is_some(),
            steered: Some(r.steered),
            decision: Some(super::Decided {
                zone: zp.0,
                name: zp.1,
                fenced: r.fenced,
                scope: r.scope,
            }),
            question_len: q.question.len() as u16,
            ..Observed::default()
        })
    }
}

/// A question whose DO=1 answer [`signed_cache`] may keep: IN, EDNS version 0
/// with DO, a type a zone answers (not OPT nor a meta type), while some zone is
/// signed.
fn kept_kind(snap: &Snapshot, q: &Query<'_>) -> bool {
    q.edns.is_some_and(|e| e.dnssec_ok && e.version == 0)
        && q.qclass == class::IN
        && q.qtype != rtype::OPT
        && !(128..=255).contains(&q.qtype)
        && !snap.signers.is_empty()
}
