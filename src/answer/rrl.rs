//! Response rate limiting for UDP, as in BIND, NSD and Knot: an authoritative
//! server is a reflection amplifier for spoofed queries unless identical responses
//! to one client network are capped.
//!
//! Responses are limited per (client prefix, class, the name that classifies the
//! response) to `rate` a second with bursts of half of it (a GCRA, so that over
//! three seconds a key gets at most 1.17 x rate, where counting per calendar
//! second lets 1.33 x through), classified as NSD and Knot do: the prefix is /24 for IPv4
//! and /56 for IPv6; the name is the query name (and type) for a positive answer,
//! the wildcard's closest encloser for an answer synthesized from a wildcard (and a
//! wildcard's NODATA), the delegation point for a referral, the zone for NXDOMAIN
//! and NODATA (whatever the DO bit turns them into: RFC 9824's compact denial makes
//! an NXDOMAIN a NOERROR), the rcode for errors. So random names under a wildcard,
//! under a delegation or outside every name all count as one response. Over the
//! rate, responses are dropped, except every `slip`-th, which goes out truncated
//! (TC=1, no records) so a real client behind the network retries over TCP, which
//! cannot be spoofed.
//!
//! The key is hashed with a per-process random secret (SipHash), so nobody can
//! choose names that share a bucket. The table is a fixed array of atomics shared by
//! every UDP thread: no lock, no allocation, bounded memory whatever arrives. A key
//! looks in a set of four slots; a slot belonging to another key is taken over only
//! when that key owes nothing (its next response is already due). When all four
//! are in debt the response is counted with the most indebted of them: a collision
//! only ever makes two keys share a count (stricter), never resets a hot one.
//!
//! On a signed zone the check runs before the answer is signed (see
//! `handler::handle_udp`), so a limited response costs no signature.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::answer::Observed;
use crate::geo::cidr::{network_of, CidrTable, IpNet};

/// Response rate limiting (`[rrl]`), as `[rrl]` in the server configuration sets it.
#[derive(Debug, Clone)]
pub struct RrlConfig {
    /// Identical responses per second per client network; 0 turns RRL off.
    pub rate: u32,
    /// Every n-th limited response is sent truncated; 0 never, 1 always.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
    /// Buckets in the table (rounded up to a power of two).
    pub buckets: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            rate: 100,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            buckets: 1 << 16,
        }
    }
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    Drop,
    /// Send it truncated, with no records.
    Slip,
}

/// What a response is, for rate limiting (as NSD's and Knot's classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Records for the query name itself.
    Positive = 1,
    /// Records (or NODATA) synthesized from a wildcard.
    Wildcard = 2,
    /// A delegation to a child zone.
    Referral = 3,
    NxDomain = 4,
    /// No records of the type (or, signed, a name denied by compact denial).
    NoData = 5,
    /// Any other rcode.
    Error = 6,
}

/// The name (or zone, or rcode) that, with the class, says which responses count as
/// the same one.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A name in wire form, uncompressed, in any letter case; with the query type
    /// for positive answers.
    Name(&'a [u8], u16),
    /// A delegation point as its zone stores it: keyed as the same name in
    /// [`Subject::Name`] with type 0.
    Cut(crate::zone::StoredName<'a>),
    /// The name at an offset of a whole message, compression pointers followed.
    At(&'a [u8], usize),
    /// A zone, by its metrics slot.
    Zone(u16),
    Rcode(u16),
}

/// The class and subject of a response that was written into `out`, the answer to a
/// query whose question section (as the client wrote it) is `question`.
pub fn classify<'a>(o: &Observed, question: &'a [u8], out: &'a [u8]) -> (Class, Subject<'a>) {
    let zone = Subject::Zone(o.zone_slot.unwrap_or(u16::MAX));
    match o.rcode {
        0 => {}
        3 => return (Class::NxDomain, zone),
        r => return (Class::Error, Subject::Rcode(r)),
    }
    let qname = &question[..question.len().saturating_sub(4)];
    if let Some(at) = o.wildcard_at {
        return (
            Class::Wildcard,
            Subject::Name(qname.get(at as usize..).unwrap_or(qname), 0),
        );
    }
    let count = |i: usize| {
        out.get(i..i + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let aa = out.get(2).is_some_and(|f| f & 0x04 != 0);
    if count(6) > 0 {
        (Class::Positive, Subject::Name(qname, o.qtype))
    } else if !aa && count(8) > 0 {
        (Class::Referral, Subject::At(out, 12 + question.len()))
    } else {
        (Class::NoData, zone)
    }
}

/// The limiter shared by the UDP threads.
pub struct Rrl {
    cfg: RrlConfig,
    exempt: CidrTable<()>,
    /// The per-process secret of the key's hash.
    secret: RandomState,
    /// Per slot: tag (16 bits) | limited responses (8 bits) | theoretical arrival
    /// time of the key's next response (40 bits, in 1/65536 s since `start`).
    table: Box<[AtomicU64]>,
    mask: usize,
    start: Instant,
    /// Between two responses of one key, in 1/65536 s.
    interval: u64,
    /// How far ahead of now a key's arrival time may run: its burst.
    tolerance: u64,
}

const TAT_BITS: u32 = 40;
const TAT_MASK: u64 = (1 << TAT_BITS) - 1;
/// Slots a key may live in.
const WAYS: usize = 4;

fn unpack(v: u64) -> (u64, u64, u64) {
    (v >> 48, (v >> TAT_BITS) & 0xff, v & TAT_MASK)
}

fn pack(tag: u64, over: u64, tat: u64) -> u64 {
    (tag << 48) | ((over & 0xff) << TAT_BITS) | (tat & TAT_MASK)
}

/// A name's key: `qtype`, then the name's bytes in lower case, so that a
/// [`Subject::Cut`] keys as the same name given whole in [`Subject::Name`].
#[inline]
fn hash_name(h: &mut impl Hasher, qtype: u16, name: impl Iterator<Item = u8>) {
    h.write_u16(qtype);
    for b in name {
        h.write_u8(b.to_ascii_lowercase());
    }
}

/// How far `tat` lies ahead of `now` on the 40-bit clock; 0 when it is past.
fn ahead(tat: u64, now: u64) -> u64 {
    let d = tat.wrapping_sub(now) & TAT_MASK;
    if d > TAT_MASK / 2 {
        0
    } else {
        d
    }
}

impl Rrl {
    pub fn new(cfg: RrlConfig) -> Rrl {
        let n = cfg.buckets.max(64).next_power_of_two();
        let mut exempt = CidrTable::new();
        for net in &cfg.exempt {
            let _ = exempt.insert(*net, ());
        }
        let rate = u64::from(cfg.rate.max(1));
        let interval = (65_536 / rate).max(1);
        // Bursts of half the rate: over any T seconds a key gets at most
        // rate * (T + 1/2) responses (1.17 x rate over three seconds).
        let tolerance = interval * rate.div_ceil(2);
        Rrl {
            table: crate::sys::zeroed_atomics(n),
            mask: n - 1,
            exempt,
            secret: RandomState::new(),
            start: Instant::now(),
            interval,
            tolerance,
            cfg,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.cfg.rate > 0
    }

    /// Whether responses to `client` are counted at all.
    pub fn limits(&self, client: IpAddr) -> bool {
        self.cfg.rate > 0 && !self.exempt.contains(client)
    }

    /// Now on the limiter's clock (1/65536 s since it started).
    pub fn now(&self) -> u64 {
        let e = self.start.elapsed();
        (e.as_secs() << 16) | ((u64::from(e.subsec_nanos()) << 16) / 1_000_000_000)
    }

    /// Decides for one response to `client`, of class and subject `what` (computed
    /// only for a client that is limited).
    pub fn check<'a>(
        &self,
        client: IpAddr,
        what: impl FnOnce() -> (Class, Subject<'a>),
    ) -> Verdict {
        if !self.limits(client) {
            return Verdict::Send;
        }
        let (class, subject) = what();
        self.check_key(self.key(client, class, subject), self.now())
    }

    /// The keyed hash of (client prefix, class, subject).
    pub fn key(&self, client: IpAddr, class: Class, subject: Subject<'_>) -> u64 {
        let mut h = self.secret.build_hasher();
        match network_of(client, self.cfg.ipv4_prefix, self.cfg.ipv6_prefix) {
            IpAddr::V4(a) => h.write_u32(u32::from(a)),
            IpAddr::V6(a) => h.write_u128(u128::from(a)),
        }
        h.write_u8(class as u8);
        match subject {
            Subject::Name(n, qtype) => hash_name(&mut h, qtype, n.iter().copied()),
            Subject::Cut(n) => hash_name(&mut h, 0, n.bytes()),
            Subject::At(msg, at) => {
                h.write_u16(0);
                hash_name_at(msg, at, &mut h);
            }
            Subject::Zone(z) => h.write_u32(u32::from(z) | 1 << 16),
            Subject::Rcode(r) => h.write_u32(u32::from(r) | 2 << 16),
        }
        h.finish()
    }

    /// Counts one response of hashed key `key` at `now` (the limiter's clock): a
    /// GCRA per key, `rate` a second with bursts of half of it.
    pub(crate) fn check_key(&self, key: u64, now: u64) -> Verdict {
        let base = (key as usize) & self.mask & !(WAYS - 1);
        let tag = (key >> 48).max(1);
        let now = now & TAT_MASK;
        loop {
            if let Some(v) = self.count_in(base, tag, now) {
                return v;
            }
        }
    }

    /// One try at counting: `None` when another thread changed a slot first.
    fn count_in(&self, base: usize, tag: u64, now: u64) -> Option<Verdict> {
        let slots = &self.table[base..base + WAYS];
        let cur: [u64; WAYS] = std::array::from_fn(|i| slots[i].load(Ordering::Relaxed));
        let own = (0..WAYS).find(|&i| unpack(cur[i]).0 == tag);
        // Else a slot whose key owes nothing: forgetting it loses nothing.
        let free = || (0..WAYS).find(|&i| cur[i] == 0 || ahead(unpack(cur[i]).2, now) == 0);
        let (i, t, over, tat) = match own {
            Some(i) => {
                let (t, over, tat) = unpack(cur[i]);
                (i, t, over, tat)
            }
            None => match free() {
                Some(i) => (i, tag, 0, now),
                // Every slot is in debt with another key: count with the most
                // indebted one, under its tag (stricter for both, never a reset).
                None => {
                    let i = (0..WAYS)
                        .max_by_key(|&i| ahead(unpack(cur[i]).2, now))
                        .unwrap_or(0);
                    let (t, over, tat) = unpack(cur[i]);
                    (i, t, over, tat)
                }
            },
        };
        let next_tat = now + ahead(tat, now) + self.interval;
        let (next, verdict) = if next_tat - now <= self.tolerance {
            (pack(t, over, next_tat), Verdict::Send)
        } else {
            let over = over + 1;
            let v = match self.cfg.slip {
                0 => Verdict::Drop,
                n if over.is_multiple_of(u64::from(n)) => Verdict::Slip,
                _ => Verdict::Drop,
            };
            (pack(t, over, tat), v)
        };
        slots[i]
            .compare_exchange(cur[i], next, Ordering::Relaxed, Ordering::Relaxed)
            .ok()
            .map(|_| verdict)
    }
}

/// Feeds the name at `at` of `msg` to `h` as label lengths and lower-cased bytes,
/// following compression pointers (at most 64 of them, so a loop ends).
fn hash_name_at(msg: &[u8], mut at: usize, h: &mut impl Hasher) {
    let mut jumps = 0;
    while let Some(&len) = msg.get(at) {
        match len {
            0 => break,
            l if l & 0xc0 == 0xc0 => {
                let Some(&lo) = msg.get(at + 1) else { break };
                jumps += 1;
                if jumps > 64 {
                    break;
                }
                at = (usize::from(l & 0x3f) << 8) | usize::from(lo);
            }
            l if l < 64 => {
                let Some(label) = msg.get(at..at + 1 + usize::from(l)) else {
                    break;
                };
                for &b in label {
                    h.write_u8(b.to_ascii_lowercase());
                }
                at += 1 + usize::from(l);
            }
            _ => break,
        }
    }
    h.write_u8(0);
}

/// Rewrites a response into its truncated form: header and question only, TC set.
pub(crate) fn slip(out: &mut Vec<u8>, question_len: usize) {
    if out.len() < 12 + question_len {
        return;
    }
    out.truncate(12 + question_len);
    out[2] |= 0x02;
    for b in &mut out[6..12] {
        *b = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u32) -> Rrl {
        Rrl::new(RrlConfig {
            rate,
            slip,
            exempt: vec!["10.9.0.0/16".parse().unwrap()],
            buckets: 1024,
            ..RrlConfig::default()
        })
    }

    /// A new limiter's table is zeroed memory that nothing has written: its
    /// pages are not resident until keys land in them (mincore), so the
    /// default 65,536 buckets cost a server that limits nobody nothing.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    #[allow(unsafe_code)]
    fn a_new_table_takes_no_memory_until_keys_land() {
        const CHILD: &str = "SIGNPOST_TEST_RRL_CHILD";
        if std::env::var_os(CHILD).is_none() {
            // In a process of its own: in this one, a block other tests
            // freed may be reused for the table, and the allocator clears a
            // reused block by writing it.
            let out = crate::sys::run_test_alone(
                "answer::rrl::tests::a_new_table_takes_no_memory_until_keys_land",
                CHILD,
            );
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        // SAFETY: mallopt changes only the allocator's settings. Fixed as
        // `malloc::tune` fixes it for the server (glibc raises it otherwise
        // after a large block is freed): a table this large gets pages of
        // its own, fresh from the kernel.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        }
        let r = Rrl::new(RrlConfig::default());
        let page = 4096;
        let start = (r.table.as_ptr() as usize).div_ceil(page) * page;
        let end = (r.table.as_ptr() as usize + r.table.len() * 8) / page * page;
        let mut resident = vec![0u8; (end - start) / page];
        // SAFETY: the range lies inside the table's allocation, page-aligned;
        // mincore writes one byte per page into `resident`, which has one.
        let rc = unsafe { libc::mincore(start as *mut _, end - start, resident.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        let count = |v: &[u8]| v.iter().filter(|&&b| b & 1 != 0).count();
        assert_eq!(count(&resident), 0, "of {} pages", resident.len());
        // A key counted takes at most one page (none when its slots lie in
        // the table's first, partial page, left out of the range).
        let key = r.key(
            "192.0.2.1".parse().unwrap(),
            Class::Positive,
            Subject::Zone(0),
        );
        assert_eq!(r.check_key(key, r.now()), Verdict::Send);
        // SAFETY: as above.
        let rc = unsafe { libc::mincore(start as *mut _, end - start, resident.as_mut_ptr()) };
        assert_eq!(rc, 0);
        assert!(count(&resident) <= 1);
    }

    fn name(n: &[u8]) -> (Class, Subject<'_>) {
        (Class::Positive, Subject::Name(n, 1))
    }

    const WWW: &[u8] = b"\x03www\x07example\x00";

    /// A second on the limiter's clock.
    const SEC: u64 = 65_536;

    #[test]
    fn a_steady_rate_with_bursts_of_half_of_it_and_slip() {
        let r = rrl(10, 2);
        let key = 42 << 48;
        let t0 = 1000 * SEC;
        let verdicts: Vec<Verdict> = (0..11).map(|_| r.check_key(key, t0)).collect();
        // A burst of five at once, then drop, slip, drop, slip, ...
        assert!(
            verdicts[..5].iter().all(|v| *v == Verdict::Send),
            "{verdicts:?}"
        );
        assert_eq!(
            &verdicts[5..],
            &[
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip,
                Verdict::Drop,
                Verdict::Slip
            ]
        );
        // A tenth of a second later one more is due.
        assert_eq!(r.check_key(key, t0 + SEC / 10 + 1), Verdict::Send);
        assert_ne!(r.check_key(key, t0 + SEC / 10 + 1), Verdict::Send);
        // Asked all the time for three seconds: at most 1.2 x rate a second.
        let r = rrl(100, 0);
        let sent = (0..3 * 4000)
            .filter(|i| r.check_key(key, t0 + i * SEC / 4000) == Verdict::Send)
            .count();
        assert!((300..=350).contains(&sent), "{sent} in 3 s at rate 100");
    }

    #[test]
    fn same_network_shares_other_networks_and_answers_do_not() {
        let r = rrl(4, 0);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let b: IpAddr = "198.51.100.200".parse().unwrap();
        // Rate 4: bursts of two.
        for _ in 0..2 {
            assert_eq!(r.check(a, || name(WWW)), Verdict::Send);
        }
        assert_eq!(
            r.check(b, || name(WWW)),
            Verdict::Drop,
            "same /24 shares the limit"
        );
        assert_eq!(
            r.check("203.0.113.1".parse().unwrap(), || name(WWW)),
            Verdict::Send
        );
        assert_eq!(
            r.check(a, || name(b"\x04mail\x07example\x00")),
            Verdict::Send,
            "another answer has its own"
        );
        // Letter case does not make another answer.
        assert_eq!(
            r.check(a, || name(b"\x03WwW\x07EXAMPLE\x00")),
            Verdict::Drop
        );
    }

    #[test]
    fn exempt_and_off() {
        let r = rrl(1, 0);
        let c: IpAddr = "10.9.1.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(r.check(c, || name(WWW)), Verdict::Send);
        }
        let off = rrl(0, 0);
        for _ in 0..10 {
            assert_eq!(
                off.check("198.51.100.1".parse().unwrap(), || name(WWW)),
                Verdict::Send
            );
        }
    }

    #[test]
    fn a_collision_never_resets_a_hot_count() {
        // Keys that all land in one set of slots, more of them than it has slots:
        // alternating between them never gets more than a burst out of any, and
        // never more than four bursts in all.
        let r = rrl(10, 0);
        let keys: Vec<u64> = (1..=8u64).map(|i| (i << 48) | 64).collect();
        let mut sent = vec![0; keys.len()];
        for _ in 0..50 {
            for (k, n) in keys.iter().zip(sent.iter_mut()) {
                if r.check_key(*k, 7 * SEC) == Verdict::Send {
                    *n += 1;
                }
            }
        }
        assert!(sent.iter().all(|&n| n <= 5), "{sent:?}");
        assert!(sent.iter().sum::<i32>() <= 20, "{sent:?}");
        assert_eq!(&sent[..3], &[5, 5, 5]);
        // Once the debts are paid a quiet slot is taken over.
        assert_eq!(r.check_key(keys[7], 9 * SEC), Verdict::Send);
    }

    #[test]
    fn the_key_is_secret_per_process_and_case_blind() {
        let a = rrl(5, 0);
        let b = rrl(5, 0);
        let c: IpAddr = "198.51.100.7".parse().unwrap();
        let ka = a.key(c, Class::Positive, Subject::Name(WWW, 1));
        assert_ne!(ka, b.key(c, Class::Positive, Subject::Name(WWW, 1)));
        assert_eq!(
            ka,
            a.key(
                c,
                Class::Positive,
                Subject::Name(b"\x03WWW\x07Example\x00", 1)
            )
        );
        assert_ne!(ka, a.key(c, Class::Positive, Subject::Name(WWW, 28)));
        assert_ne!(ka, a.key(c, Class::Wildcard, Subject::Name(WWW, 1)));
        // A compressed name in a message hashes as the name it stands for.
        let msg = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\xc0\x0c";
        assert_eq!(
            a.key(c, Class::Referral, Subject::At(msg, 25)),
            a.key(c, Class::Referral, Subject::Name(WWW, 0))
        );
        // A delegation point as its zone stores it (split from the origin)
        // hashes as the name given whole.
        let cut = crate::zone::StoredName::split(b"\x03www", b"\x07example\x00");
        assert_eq!(
            a.key(c, Class::Referral, Subject::Cut(cut)),
            a.key(c, Class::Referral, Subject::Name(WWW, 0))
        );
        // A pointer loop ends.
        let looped = b"\xc0\x00";
        let _ = a.key(c, Class::Referral, Subject::At(looped, 0));
    }

    #[test]
    fn classifies_from_the_written_response() {
        let question = b"\x01a\x04wild\x07example\x00\x00\x01\x00\x01";
        let mut o = Observed {
            qtype: 1,
            zone_slot: Some(3),
            ..Observed::default()
        };
        // header: AA, one answer
        let mut out = vec![0, 0, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        assert_eq!(classify(&o, question, &out).0, Class::Positive);
        o.wildcard_at = Some(2);
        match classify(&o, question, &out) {
            (Class::Wildcard, Subject::Name(n, _)) => assert_eq!(n, b"\x04wild\x07example\x00"),
            other => panic!("{other:?}"),
        }
        o.wildcard_at = None;
        // no answer, authority, AA clear: a referral
        out[2] = 0x80;
        out[7] = 0;
        out[9] = 1;
        assert_eq!(classify(&o, question, &out).0, Class::Referral);
        // AA set: NODATA, by zone
        out[2] = 0x84;
        assert!(matches!(
            classify(&o, question, &out),
            (Class::NoData, Subject::Zone(3))
        ));
        o.rcode = 3;
        assert!(matches!(
            classify(&o, question, &out),
            (Class::NxDomain, Subject::Zone(3))
        ));
        o.rcode = 5;
        assert!(matches!(
            classify(&o, question, &out),
            (Class::Error, Subject::Rcode(5))
        ));
    }

    #[test]
    fn slip_keeps_header_and_question() {
        let mut r = vec![
            0x12, 0x34, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 1, 1, b'a', 0, 0, 1, 0, 1, 9, 9, 9,
        ];
        slip(&mut r, 7);
        assert_eq!(r.len(), 19);
        assert_eq!(r[2] & 0x02, 0x02);
        assert_eq!(&r[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    }
}
