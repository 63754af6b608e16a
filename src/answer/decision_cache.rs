//! What each UDP thread remembers of its recent steering decisions.
//!
//! A steered A or AAAA answer depends on the snapshot (zones, policies, the geo
//! database), the client (address and ECS source prefix), the query type, and health
//! (probe verdicts, overrides, weights); `policy::decide` reads nothing else and has
//! no randomness. When a decision came out as one prebuilt answer
//! ([`super::fast::FastTable::steered_body`]), the thread keeps (inputs → answer, ECS
//! scope, what metrics count) in a small direct-mapped table, so the next query with
//! the same inputs skips the geo lookup and the decision.
//!
//! Snapshots are told apart by the fast table's process-unique id, and health by
//! [`crate::health::epoch`], which every change of a verdict, an override or a weight
//! moves on: a remembered answer is used only while nothing it was decided from has
//! changed. The epoch is read before the decision is made, so a change that races
//! with it leaves the entry under the old epoch, where no later query finds it.

use std::cell::RefCell;
use std::net::IpAddr;

use super::query::ClientSubnet;
use crate::policy::Reason;

/// Entries per thread: a power of two. One cache line each, 128 KiB in all.
const ENTRIES: usize = 2048;

/// Everything a steered answer is decided from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key {
    table: u64,
    epoch: u64,
    client: Client,
}

/// The part of a [`Key`] that differs between entries of one (table, epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Client {
    addr: u128,
    /// (zone << 32) | name policy.
    policy: u64,
    qtype: u16,
    v6: bool,
    prefix: u8,
    /// The query's DO bit: a signed zone's DO=1 answer carries RRSIGs.
    dnssec: bool,
}

impl Key {
    /// The client as [`super::query::client_addr`] has it.
    pub(super) fn new(
        table: u64,
        epoch: u64,
        (zone, policy): (u32, u32),
        (qtype, dnssec): (u16, bool),
        ecs: Option<&ClientSubnet>,
        src: IpAddr,
    ) -> Key {
        let (addr, prefix) = super::query::client_addr(ecs, src);
        let (addr, v6) = match addr {
            IpAddr::V4(a) => (u128::from(a.to_bits()), false),
            IpAddr::V6(a) => (a.to_bits(), true),
        };
        Key {
            table,
            epoch,
            client: Client {
                addr,
                policy: (u64::from(zone) << 32) | u64::from(policy),
                qtype,
                v6,
                prefix,
                dnssec,
            },
        }
    }

    fn index(&self) -> usize {
        let c = &self.client;
        let a = (c.addr as u64) ^ ((c.addr >> 64) as u64).rotate_left(29);
        let n = c.policy.rotate_left(7)
            ^ (u64::from(c.qtype) << 8)
            ^ (u64::from(c.dnssec) << 24)
            ^ u64::from(c.prefix);
        let h = (a ^ n.rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> (64 - ENTRIES.trailing_zeros())) as usize
    }
}

/// What a query with the key gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Remembered {
    /// Arena offset of the prebuilt answer.
    pub body: u32,
    /// The decision's ECS scope.
    pub scope: u8,
    /// For metrics: the zone's slot, and (name slot, region, reason).
    pub zone_slot: u16,
    pub steered: (u16, u16, Reason),
    /// The fence the client fell in (for dnstap).
    pub fenced: Option<u16>,
    /// The body carries RRSIGs (a signed zone's DO=1 answer).
    pub signed: bool,
}

// One entry per cache line.
const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// One entry, on a cache line of its own.
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Entry {
    /// The [`Cache::round`] it was written in; 0: never written.
    round: u32,
    client: Client,
    answer: Remembered,
}

/// One thread's entries, all of one (fast table, health epoch): when either moves
/// on, a new round begins and every older entry stops counting.
struct Cache {
    table: u64,
    epoch: u64,
    round: u32,
    entries: Vec<Entry>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { table: 0, epoch: 0, round: 0, entries: Vec::new() })
    };
}

/// The remembered answer for `key`, if this thread has one.
pub(super) fn get(key: &Key) -> Option<Remembered> {
    CACHE.with(|c| {
        let c = c.borrow();
        if c.table != key.table || c.epoch != key.epoch || c.round == 0 {
            return None;
        }
        let e = c.entries.get(key.index())?;
        (e.round == c.round && e.client == key.client).then_some(e.answer)
    })
}

/// Remembers `answer` for `key`, in place of whatever had its slot.
pub(super) fn put(key: Key, answer: Remembered) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.entries.is_empty() {
            let empty = Entry {
                round: 0,
                client: Client::default(),
                answer,
            };
            c.entries = vec![empty; ENTRIES];
        }
        if c.table != key.table || c.epoch != key.epoch || c.round == 0 {
            c.table = key.table;
            c.epoch = key.epoch;
            c.round = c.round.wrapping_add(1);
            if c.round == 0 {
                // After 2^32 rounds: forget everything rather than mistake an
                // entry of round 1 for one of this round.
                c.entries.iter_mut().for_each(|e| e.round = 0);
                c.round = 1;
            }
        }
        let round = c.round;
        if let Some(e) = c.entries.get_mut(key.index()) {
            *e = Entry {
                round,
                client: key.client,
                answer,
            };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(epoch: u64, addr: &str, prefix: Option<u8>) -> Key {
        let addr: IpAddr = addr.parse().unwrap();
        let cs = prefix.map(|source_prefix| ClientSubnet {
            family: if addr.is_ipv4() { 1 } else { 2 },
            source_prefix,
            addr,
        });
        Key::new(
            7,
            epoch,
            (0, 1),
            (1, false),
            cs.as_ref(),
            "127.0.0.1".parse().unwrap(),
        )
    }

    fn answer(body: u32) -> Remembered {
        Remembered {
            body,
            scope: 24,
            zone_slot: 0,
            steered: (0, 0, Reason::Latency),
            fenced: None,
            signed: false,
        }
    }

    #[test]
    fn finds_only_the_same_inputs() {
        put(key(1, "192.0.2.0", Some(24)), answer(10));
        assert_eq!(get(&key(1, "192.0.2.0", Some(24))), Some(answer(10)));
        // Another epoch, prefix, address, family or source: not the same decision.
        assert_eq!(get(&key(2, "192.0.2.0", Some(24))), None);
        assert_eq!(get(&key(1, "192.0.2.0", Some(23))), None);
        assert_eq!(get(&key(1, "192.0.3.0", Some(24))), None);
        assert_eq!(get(&key(1, "::c000:200", Some(24))), None);
        assert_eq!(get(&key(1, "192.0.2.0", None)), None);
        // Without ECS the packet's source is the client, at full length.
        put(key(1, "192.0.2.0", None), answer(11));
        assert_eq!(get(&key(1, "192.0.2.0", None)), Some(answer(11)));
        assert_eq!(get(&key(1, "192.0.2.0", Some(24))), Some(answer(10)));
    }

    #[test]
    fn a_new_epoch_or_table_forgets_the_old_entries() {
        let k = |table, epoch| {
            Key::new(
                table,
                epoch,
                (0, 2),
                (28, false),
                None,
                "::1".parse().unwrap(),
            )
        };
        put(k(8, 5), answer(20));
        assert_eq!(get(&k(8, 5)), Some(answer(20)));
        put(k(8, 6), answer(21));
        assert_eq!(get(&k(8, 6)), Some(answer(21)));
        // Back to epoch 5 (it cannot go back, but a table can be seen again):
        // what was remembered under it is gone.
        assert_eq!(get(&k(8, 5)), None);
        put(k(9, 6), answer(22));
        assert_eq!(get(&k(8, 6)), None);
        assert_eq!(get(&k(9, 6)), Some(answer(22)));
    }

    #[test]
    fn a_key_differing_in_one_input_lands_elsewhere_mostly() {
        // Neighbouring /24s must not all fight for one slot.
        let mut slots: Vec<usize> = (0..256u32)
            .map(|i| key(1, &format!("10.0.{i}.0"), Some(24)).index())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert!(slots.len() > 200, "{} distinct slots of 256", slots.len());
    }
}
