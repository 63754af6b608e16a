//! Networks of exactly /24 (IPv4) or /48 (IPv6), the measured table's own
//! size: a sorted array of keys rather than a trie.
//!
//! Why: the live table holds up to `max_networks` (100,000) of them, and a
//! trie spends about eight 12-byte nodes on each; here one costs 8 bytes (IPv4)
//! or 16 (IPv6), a lookup is one binary search, and the ECS scope needs only
//! the two neighbours of the client's key.
//!
//! Invariants: `v4` and `v6` are sorted by key, each key once (keys are only
//! ever appended in ascending order: [`ExactNets::push`] refuses the rest);
//! a v4 key is the top 24 bits of the address, a v6 key the top 48.

use std::net::IpAddr;

use crate::geo::cidr::IpNet;

/// The length of an IPv4 network this index holds.
pub(crate) const V4_LEN: u8 = 24;
/// The length of an IPv6 network this index holds.
pub(crate) const V6_LEN: u8 = 48;

/// /24s and /48s to row indices, sorted.
#[derive(Debug, Default, Clone)]
pub struct ExactNets {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u64, u32)>,
}

/// An address as this index keys it: family, key; an IPv4-mapped IPv6 address
/// is its IPv4 address.
fn key_of(ip: IpAddr) -> Result<u32, u64> {
    match ip {
        IpAddr::V4(a) => Ok(u32::from(a) >> 8),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m) => Ok(u32::from(m) >> 8),
            None => Err((u128::from(a) >> 80) as u64),
        },
    }
}

/// The shortest block length around `k` (of `bits` bits) that holds neither
/// neighbour: one more than the longest prefix `k` shares with either.
fn clear_of<K: Copy + Into<u128>>(keys: &[(K, u32)], k: K, bits: u32) -> u8 {
    let k128: u128 = k.into();
    let at = keys.partition_point(|e| e.0.into() < k128);
    if keys.get(at).is_some_and(|e| e.0.into() == k128) {
        return bits as u8;
    }
    let shared = |n: K| (k128 ^ n.into()).leading_zeros() - (128 - bits);
    let before = at.checked_sub(1).map_or(0, |i| shared(keys[i].0) + 1);
    let after = keys.get(at).map_or(0, |e| shared(e.0) + 1);
    before.max(after).min(bits) as u8
}

impl ExactNets {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Adds `net` for `row` when it is a /24 or /48 greater than every key of
    /// its family already here; false (nothing added) otherwise.
    pub fn push(&mut self, net: IpNet, row: u32) -> bool {
        match (key_of(net.addr()), net.prefix_len()) {
            (Ok(k), V4_LEN) if net.addr().is_ipv4() && self.v4.last().is_none_or(|l| l.0 < k) => {
                self.v4.push((k, row));
                true
            }
            (Err(k), V6_LEN) if self.v6.last().is_none_or(|l| l.0 < k) => {
                self.v6.push((k, row));
                true
            }
            _ => false,
        }
    }

    /// The row of the /24 or /48 holding `ip`, and that length.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<(u32, u8)> {
        match key_of(ip) {
            Ok(k) => {
                let i = self.v4.binary_search_by_key(&k, |e| e.0).ok()?;
                Some((self.v4[i].1, V4_LEN))
            }
            Err(k) => {
                let i = self.v6.binary_search_by_key(&k, |e| e.0).ok()?;
                Some((self.v6[i].1, V6_LEN))
            }
        }
    }

    /// As [`CidrTable::narrowest_overlap`](crate::geo::cidr::CidrTable): the
    /// smallest scope `S >= prefix_len` such that no network of this index
    /// lies strictly inside `ip/S` (IPv4 terms for IPv4).
    pub fn narrowest_overlap(&self, ip: IpAddr, prefix_len: u8) -> u8 {
        let s = match key_of(ip) {
            Ok(_) if self.v4.is_empty() => 0,
            Err(_) if self.v6.is_empty() => 0,
            Ok(k) => clear_of(&self.v4, k, u32::from(V4_LEN)),
            Err(k) => clear_of(&self.v6, k, u32::from(V6_LEN)),
        };
        s.max(prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::cidr::CidrTable;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn lookups_and_scopes_agree_with_the_trie() {
        let nets = [
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.9.0/24",
            "10.128.0.0/24",
            "192.0.2.0/24",
            "2001:db8::/48",
            "2001:db8:5::/48",
        ];
        let mut e = ExactNets::default();
        let mut t = CidrTable::new();
        for (i, n) in nets.iter().enumerate() {
            assert!(e.push(net(n), i as u32), "{n}");
            t.insert(net(n), i as u32).unwrap();
        }
        assert!(!e.push(net("10.0.0.0/24"), 9), "not ascending");
        assert!(!e.push(net("203.0.113.0/25"), 9), "not a /24");
        assert_eq!(e.len(), nets.len());
        let addrs = [
            "10.0.0.7",
            "10.0.2.1",
            "10.0.8.255",
            "10.1.0.1",
            "10.127.255.1",
            "10.128.0.9",
            "11.0.0.1",
            "0.0.0.1",
            "192.0.2.200",
            "::ffff:10.0.9.1",
            "2001:db8::1",
            "2001:db8:4::1",
            "2001:db9::1",
        ];
        for a in addrs {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(
                e.lookup(ip),
                t.lookup(ip).map(|(r, l)| (*r, l)),
                "lookup {a}"
            );
            for p in [0u8, 8, 16, 20, 23, 24, 32] {
                assert_eq!(
                    e.narrowest_overlap(ip, p),
                    t.narrowest_overlap(ip, p),
                    "scope of {a} from /{p}"
                );
            }
        }
    }
}
