//! The signing budget: who may spend the signatures a second made on the fly.
//!
//! Signing is the one costly thing a query can ask for (a fresh name under a signed
//! zone needs a new NSEC signature), so `dnssec.sign_rate` caps it per zone. A cap
//! alone lets a flood of random names spend it for everyone, including the resolvers
//! that were asking before the flood. So each signature is taken at a
//! [`Standing`]:
//!
//! - [`Standing::Verified`]: the client's address is proven (TCP, DoT, DoH, or a
//!   valid DNS server cookie), and the RRset of a steered answer (one signature
//!   serves every client until health changes): may spend the whole budget.
//! - [`Standing::Established`]: the client's network asked for this server's
//!   signed answers before the current pressure began ([`History`]): may spend all
//!   but the last tenth.
//! - [`Standing::Newcomer`]: anyone else (what a flood of random or spoofed
//!   sources is): only the first half.
//!
//! One token bucket per zone, with a reserve per standing: a newcomer flood keeps
//! the bucket half full at most, and what refills goes first to whoever ranks
//! higher. RRL runs before signing, so one network (per /24 or /56) gets at most
//! `rrl.rate` signed answers of one class a second whatever its standing.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// What a signature request may spend, by who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    Newcomer,
    Established,
    Verified,
}

impl Standing {
    /// The share of the bucket's burst that must stay after the taking, in
    /// percent.
    fn reserve_percent(self) -> u64 {
        match self {
            Standing::Newcomer => 50,
            Standing::Established => 10,
            Standing::Verified => 0,
        }
    }
}

/// GCRA token bucket: `rate` a second, bursts of up to `rate`, with the reserve
/// above. Lock-free.
#[derive(Debug)]
pub(crate) struct Bucket {
    start: Instant,
    /// Theoretical arrival time of the next token, in ns since `start`.
    tat: AtomicU64,
    interval: u64,
    burst: u64,
}

impl Bucket {
    pub fn new(rate: u32) -> Bucket {
        let interval = 1_000_000_000 / u64::from(rate.max(1));
        Bucket {
            start: Instant::now(),
            tat: AtomicU64::new(0),
            interval,
            burst: interval * u64::from(rate.max(1)),
        }
    }

    /// Takes a token for `standing`, false when its share is spent.
    pub fn take(&self, standing: Standing) -> bool {
        self.take_at(standing, self.start.elapsed().as_nanos() as u64)
    }

    fn take_at(&self, standing: Standing, now: u64) -> bool {
        let limit = self.burst - self.burst / 100 * standing.reserve_percent();
        let mut tat = self.tat.load(Relaxed);
        loop {
            let next = tat.max(now) + self.interval;
            if next - now > limit {
                return false;
            }
            match self.tat.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

/// Seconds a network must have been asking before pressure began to count as
/// established.
const WARM_SECS: u64 = 2;
/// Seconds without a refused newcomer after which the pressure is over.
const CALM_SECS: u64 = 10;
/// Seconds after which a network's slot may go to another network.
const STALE_SECS: u64 = 600;
const SLOTS: usize = 1 << 16;
const TIME_MASK: u64 = (1 << 24) - 1;

/// Which client networks have asked for signed answers, and since when: a fixed
/// table of atomics (tag 16 bits | first seen 24 | last seen 24, seconds since
/// start), keyed by a hash with a per-process secret, two slots per network. A
/// slot goes to another network only when its own has been silent for ten
/// minutes, so a flood of new networks cannot push out the ones with a history.
pub struct History {
    /// [`crate::clock::coarse_secs`] when it was made.
    start: u64,
    /// Keys of [`History::slot_pair`]'s hash, random per process.
    secret: [u64; 4],
    slots: Box<[AtomicU64]>,
    /// Second (since start, plus one; 0: none) the current pressure began.
    pressure_began: AtomicU64,
    /// Second (plus one) a newcomer was last refused.
    pressure_last: AtomicU64,
}

impl Default for History {
    fn default() -> Self {
        History {
            start: crate::clock::coarse_secs(),
            secret: secret_keys(),
            // Zeroed pages: a slot takes memory once a network is noted in
            // its page, not 512 KiB at the first signed answer.
            slots: crate::sys::zeroed_atomics(SLOTS),
            pressure_began: AtomicU64::new(0),
            pressure_last: AtomicU64::new(0),
        }
    }
}

/// The 128-bit product of `a` and `b`, its halves xored.
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Four random keys, from the standard library's per-process randomness; the
/// multipliers odd.
fn secret_keys() -> [u64; 4] {
    let r = RandomState::new();
    [
        r.hash_one(0u8),
        r.hash_one(1u8) | 1,
        r.hash_one(2u8),
        r.hash_one(3u8) | 1,
    ]
}

/// Notes in the history that `src`'s network (/24, /56) asked for a signed
/// answer now.
pub fn note_client(src: IpAddr) {
    let h = history();
    h.note(crate::geo::cidr::network_of(src, 24, 56), h.batch_now());
}

thread_local! {
    /// On a UDP worker's thread: [`History::now`] for the batch of queries
    /// being answered, 0 until a query of the batch reads the clock. Other
    /// threads never set it: `NOT_IN_BATCH` there, and the clock is read
    /// each time.
    static BATCH_NOW: std::cell::Cell<u64> = const { std::cell::Cell::new(NOT_IN_BATCH) };
}

/// [`BATCH_NOW`] on a thread that answers no batches.
const NOT_IN_BATCH: u64 = u64::MAX;

/// Called by a UDP worker as it starts answering a batch (received together,
/// answered within microseconds): the batch's DO=1 answers read the clock
/// once between them, not once each (the clock was 22 of the 72 instructions
/// a signed answer spent noting its client).
pub fn batch_begins() {
    BATCH_NOW.set(0);
}

/// The process's history, shared by every zone and snapshot (it outlives reloads).
pub fn history() -> &'static History {
    static H: OnceLock<History> = OnceLock::new();
    H.get_or_init(History::default)
}

/// A network's two slots in [`History`] and its tag.
struct Pair<'h> {
    slots: &'h [AtomicU64; 2],
    tag: u64,
}

fn unpack(v: u64) -> (u64, u64, u64) {
    (v >> 48, (v >> 24) & TIME_MASK, v & TIME_MASK)
}

impl History {
    /// Seconds since the history began, plus one.
    pub fn now(&self) -> u64 {
        crate::clock::coarse_secs().saturating_sub(self.start) + 1
    }

    /// [`History::now`], read once per batch on a UDP worker's thread (see
    /// [`batch_begins`]), and each time elsewhere.
    fn batch_now(&self) -> u64 {
        match BATCH_NOW.get() {
            NOT_IN_BATCH => self.now(),
            0 => {
                let now = self.now();
                BATCH_NOW.set(now);
                now
            }
            now => now,
        }
    }

    /// The network's pair of slots and its 16-bit tag, from a hash keyed by
    /// the process's secret: a keyed multiply-and-fold in two rounds (as
    /// foldhash), a few instructions where SipHash took about 200 on every
    /// signed answer. Without the keys no one can choose networks that share
    /// a pair or a tag.
    fn slot_pair(&self, net: IpAddr) -> (usize, u64) {
        let (bits, family) = match net {
            IpAddr::V4(a) => (u128::from(a.to_bits()), 4u64),
            IpAddr::V6(a) => (a.to_bits(), 6u64),
        };
        let [k0, k1, k2, k3] = self.secret;
        let h = fold(bits as u64 ^ k0, (bits >> 64) as u64 ^ k1 ^ family);
        let h = fold(h ^ k2, k3);
        ((h as usize) & (SLOTS - 2), (h >> 48).max(1))
    }

    /// Notes that `net` (a client prefix) asked for a signed answer at `now`.
    pub fn note(&self, net: IpAddr, now: u64) {
        let Some(pair) = self.pair(net) else {
            return;
        };
        let tag = pair.tag;
        let now = now & TIME_MASK;
        for slot in pair.slots {
            let cur = slot.load(Relaxed);
            let (t, first, last) = unpack(cur);
            if t == tag {
                if last != now {
                    let _ = slot.compare_exchange(
                        cur,
                        (tag << 48) | (first << 24) | now,
                        Relaxed,
                        Relaxed,
                    );
                }
                return;
            }
        }
        for slot in pair.slots {
            let cur = slot.load(Relaxed);
            let (t, _, last) = unpack(cur);
            if t == 0 || now.saturating_sub(last) > STALE_SECS {
                let new = (tag << 48) | (now << 24) | now;
                if slot.compare_exchange(cur, new, Relaxed, Relaxed).is_ok() {
                    return;
                }
            }
        }
    }

    /// `net`'s two slots and its tag (see [`History::slot_pair`]), the slots
    /// taken from the table once.
    fn pair(&self, net: IpAddr) -> Option<Pair<'_>> {
        let (at, tag) = self.slot_pair(net);
        let slots: &[AtomicU64; 2] = self.slots.get(at..at + 2)?.try_into().ok()?;
        Some(Pair { slots, tag })
    }

    /// Since when `net` has been asking, if it has a slot.
    fn first_seen(&self, net: IpAddr) -> Option<u64> {
        let pair = self.pair(net)?;
        pair.slots.iter().find_map(|slot| {
            let (t, first, _) = unpack(slot.load(Relaxed));
            (t == pair.tag).then_some(first)
        })
    }

    /// The standing of a client network at `now`: established when it was asking
    /// at least [`WARM_SECS`] before the current pressure began (or before now
    /// when there is none).
    pub(crate) fn standing(&self, net: IpAddr, now: u64) -> Standing {
        let Some(first) = self.first_seen(net) else {
            return Standing::Newcomer;
        };
        let last = self.pressure_last.load(Relaxed);
        let cutoff = if last != 0 && now.saturating_sub(last) <= CALM_SECS {
            self.pressure_began.load(Relaxed).max(1)
        } else {
            now
        };
        if first + WARM_SECS <= cutoff {
            Standing::Established
        } else {
            Standing::Newcomer
        }
    }

    /// A newcomer was refused at `now`: the budget is under pressure.
    pub(crate) fn pressure(&self, now: u64) {
        let last = self.pressure_last.swap(now, Relaxed);
        if last == 0 || now.saturating_sub(last) > CALM_SECS {
            self.pressure_began.store(now, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Networks spread over the slot pairs, with tags that tell them apart; an
    /// IPv4 network and the IPv6 one of the same bits are not one network; two
    /// processes (two secrets) place a network apart.
    /// A thread answering a batch reads the clock once for it, and again
    /// for the next batch; a thread outside batches reads it every time.
    #[test]
    fn a_batch_reads_the_clock_once() {
        let h = History::default();
        let wait_for_tick = |from: u64| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while h.now() == from {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the clock stood still"
                );
                std::thread::yield_now();
            }
        };
        // Outside a batch (this test's thread has begun none).
        let before = h.batch_now();
        wait_for_tick(before);
        assert!(h.batch_now() > before, "read each time outside a batch");
        batch_begins();
        let first = h.batch_now();
        wait_for_tick(first);
        assert_eq!(h.batch_now(), first, "the batch keeps its second");
        batch_begins();
        assert!(h.batch_now() > first, "the next batch reads it again");
        // Another thread is outside any batch.
        let other = std::thread::scope(|s| s.spawn(|| h.batch_now()).join());
        assert!(other.is_ok_and(|o| o > first));
        BATCH_NOW.set(NOT_IN_BATCH);
    }

    #[test]
    fn slot_pairs_spread_and_depend_on_the_secret() {
        let h = History::default();
        let mut pairs = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for i in 0..20_000u32 {
            let net = IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
            let (at, tag) = h.slot_pair(net);
            assert_eq!(at % 2, 0);
            assert!(tag > 0 && tag < 1 << 16);
            pairs.insert(at);
            keys.insert((at, tag));
        }
        // 20,000 networks over 32,768 pairs: about 14,000 distinct ones by chance.
        assert!(pairs.len() > 13_000, "{} pairs", pairs.len());
        // Pair and tag are 31 bits: about one clash in 10 runs by chance.
        assert!(keys.len() >= 19_990, "{} networks told apart", keys.len());
        let v4 = IpAddr::from([10, 1, 2, 0]);
        let v6 = IpAddr::from(u128::from(0x0a01_0200u32).to_be_bytes());
        assert_ne!(h.slot_pair(v4), h.slot_pair(v6));
        let other = History::default();
        let moved = (0..64u8)
            .filter(|&i| h.slot_pair([10, 9, i, 0].into()) != other.slot_pair([10, 9, i, 0].into()))
            .count();
        assert!(
            moved >= 60,
            "{moved} of 64 networks placed alike by two secrets"
        );
    }

    #[test]
    fn a_newcomer_flood_leaves_the_reserve() {
        let b = Bucket::new(100);
        let t = 1_000_000_000;
        let n = (0..1000)
            .filter(|_| b.take_at(Standing::Newcomer, t))
            .count();
        assert_eq!(n, 50, "newcomers take half the burst");
        let e = (0..1000)
            .filter(|_| b.take_at(Standing::Established, t))
            .count();
        assert_eq!(e, 40, "established networks all but the last tenth");
        let v = (0..1000)
            .filter(|_| b.take_at(Standing::Verified, t))
            .count();
        assert_eq!(v, 10);
        // A second later newcomers get nothing while established ones take
        // what refilled first.
        let t = t + 500_000_000;
        assert_eq!(
            (0..1000)
                .filter(|_| b.take_at(Standing::Established, t))
                .count(),
            40
        );
        assert!(!b.take_at(Standing::Newcomer, t));
    }

    #[test]
    fn networks_seen_before_pressure_are_established() {
        let h = History::default();
        let old: IpAddr = "192.0.2.0".parse().unwrap();
        let new: IpAddr = "198.51.100.0".parse().unwrap();
        h.note(old, 10);
        assert_eq!(h.standing(old, 11), Standing::Newcomer, "too fresh");
        assert_eq!(h.standing(old, 12), Standing::Established);
        // Pressure from second 20 on: a network first seen then stays a
        // newcomer however long the pressure lasts.
        h.note(new, 20);
        for s in 20..40 {
            h.pressure(s);
            h.note(new, s);
            assert_eq!(h.standing(new, s), Standing::Newcomer, "at {s}");
            assert_eq!(h.standing(old, s), Standing::Established);
        }
        // Calm again for long enough: it has a history now.
        assert_eq!(h.standing(new, 39 + CALM_SECS + 1), Standing::Established);
    }

    #[test]
    fn a_flood_of_networks_does_not_push_out_a_history() {
        let h = History::default();
        let old: IpAddr = "192.0.2.0".parse().unwrap();
        h.note(old, 1);
        for i in 0..200_000u32 {
            h.note(IpAddr::V4(i.into()), 5);
        }
        assert_eq!(h.standing(old, 5), Standing::Established);
    }
}
