//! Longest-prefix-match table for operator CIDR overrides.
//!
//! Operators pin networks to a region ("10.0.0.0/8 is our office, send it to
//! eu-west") regardless of what the geo database says. [`CidrTable`] holds
//! those pins and answers two questions on the query path: which pin covers
//! a client ([`CidrTable::lookup`]), and how far an EDNS Client Subnet scope
//! must be narrowed so that a cached answer is not reused for addresses that
//! a different pin covers ([`CidrTable::narrowest_overlap`]).
//!
//! Address families: IPv4 and IPv6 entries live in separate tries. An
//! IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is treated as the IPv4
//! address everywhere: as a lookup key, and as a network
//! (`::ffff:192.0.2.0/120` is stored as `192.0.2.0/24`). An IPv6 entry
//! shorter than /96 therefore never covers IPv4-mapped addresses, even if
//! its bits would: dual-stack sockets report IPv4 clients that way, and
//! they must reach the IPv4 pins.
//!
//! Host bits: `192.0.2.1/24` is accepted and stored as `192.0.2.0/24`;
//! [`IpNet::had_host_bits`] records that the input was not canonical so the
//! config loader can warn. Rejecting it outright would turn a harmless typo
//! into a refused config; silently accepting it would hide the case where
//! the operator meant a /32.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::error::GeoError;

/// An IP network: a masked address and a prefix length in the address's own
/// family (0..=32 for IPv4, 0..=128 for IPv6).
///
/// Equality and hashing look at the network only, not at
/// [`had_host_bits`](Self::had_host_bits).
#[derive(Debug, Clone, Copy)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
    had_host_bits: bool,
}

impl IpNet {
    /// Builds a network, clearing any bits of `addr` past `prefix_len`.
    /// IPv4-mapped IPv6 networks of /96 or longer become IPv4 networks.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<IpNet, GeoError> {
        let max = max_len(addr);
        if prefix_len > max {
            return Err(GeoError::PrefixTooLong { prefix_len, max });
        }
        let (addr, prefix_len) = match addr {
            IpAddr::V6(v6) if prefix_len >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix_len - 96),
                None => (addr, prefix_len),
            },
            _ => (addr, prefix_len),
        };
        let masked = mask(addr, prefix_len);
        Ok(IpNet {
            addr: masked,
            prefix_len,
            had_host_bits: masked != addr,
        })
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length, in the family of [`addr`](Self::addr).
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// True when the address given to [`new`](Self::new) or parsed had bits
    /// set past the prefix length, e.g. `192.0.2.1/24`.
    pub(crate) fn had_host_bits(&self) -> bool {
        self.had_host_bits
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count
    /// as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix_len) == self.addr
            }
            _ => false,
        }
    }
}

impl PartialEq for IpNet {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.prefix_len == other.prefix_len
    }
}

impl Eq for IpNet {}

impl Hash for IpNet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.prefix_len.hash(state);
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IpNet {
    type Err = GeoError;

    /// Parses `192.0.2.0/24` or `2001:db8::/32`. The prefix length is
    /// required: a bare `10.0.0.0` is more likely a forgotten `/8` than a
    /// deliberate host route.
    fn from_str(input: &str) -> Result<IpNet, GeoError> {
        let err = |reason| GeoError::InvalidCidr {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| err("missing \"/prefix_len\" (write 192.0.2.1/32 for one host)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| err("the part before '/' is not an IPv4 or IPv6 address"))?;
        // u8::from_str would accept "+24"; insist on plain digits.
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the prefix length after '/' must be a decimal number"));
        }
        let len: u8 = len
            .parse()
            .map_err(|_| err("the prefix length after '/' is out of range"))?;
        if len > max_len(addr) {
            return Err(err(if addr.is_ipv4() {
                "the prefix length is longer than /32"
            } else {
                "the prefix length is longer than /128"
            }));
        }
        IpNet::new(addr, len)
    }
}

/// Maps IPv4-mapped IPv6 addresses to IPv4; everything else is unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        IpAddr::V4(_) => ip,
    }
}

fn max_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// `ip` with every bit past `prefix_len` cleared, in its own family.
pub fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & m))
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// The network `ip` is counted in when networks are `v4` bits long for IPv4 and
/// `v6` for IPv6 (rate limits, connection caps, the signing budget's history); an
/// IPv4-mapped IPv6 address counts as its IPv4 address.
pub(crate) fn network_of(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => mask(ip, v4.min(32)),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(m4) => mask(IpAddr::V4(m4), v4.min(32)),
            None => mask(ip, v6.min(128)),
        },
    }
}

/// Node of the binary trie. Index 0 is always the root, so a child index of
/// 0 can mean "no child"; `value` is an index into `values` plus one, 0 for
/// none. `u32` indices keep a node at 12 bytes: an IPv6 /48 costs up to 48
/// nodes, and override lists are hundreds to thousands of entries.
#[derive(Debug, Clone, Copy, Default)]
struct Node {
    child: [u32; 2],
    value: u32,
}

#[derive(Debug, Clone)]
struct Trie<T> {
    nodes: Vec<Node>,
    values: Vec<T>,
    /// While the trie holds at most [`SHORT`] networks, the same networks as
    /// (left-aligned key, prefix length, value index), longest first: a lookup
    /// then compares a few masked words instead of walking up to 128 nodes. The
    /// lists on the query path (RRL exemptions, trusted ECS senders) are this short.
    /// Each with its mask, made once here rather than at every lookup.
    short: Vec<Short>,
}

/// One network of [`Trie::short`].
#[derive(Debug, Clone, Copy)]
struct Short {
    net: u128,
    mask: u128,
    len: u8,
    value: u32,
}

/// Most networks a family keeps in [`Trie::short`].
const SHORT: usize = 8;

impl<T> Trie<T> {
    fn new() -> Self {
        Trie {
            nodes: vec![Node::default()],
            values: Vec::new(),
            short: Vec::new(),
        }
    }

    fn lookup(&self, key: u128, bits: u8) -> Option<(&T, u8)> {
        let (i, len) = self.lookup_index(key, bits)?;
        self.values.get(i as usize).map(|v| (v, len))
    }

    /// A /0 is in the table: every key of the family has a network.
    fn holds_all(&self) -> bool {
        self.nodes.first().is_some_and(|root| root.value != 0)
    }

    /// The index in `values` of the longest network holding `key`, and its length.
    fn lookup_index(&self, key: u128, bits: u8) -> Option<(u32, u8)> {
        if self.values.len() <= SHORT {
            let s = self.short.iter().find(|s| key & s.mask == s.net)?;
            return Some((s.value, s.len));
        }
        let mut node = 0usize;
        let mut best: Option<(u32, u8)> = None;
        let mut depth = 0u8;
        loop {
            let n = self.nodes[node];
            if n.value != 0 {
                best = Some((n.value - 1, depth));
            }
            if depth == bits {
                break;
            }
            let next = n.child[bit(key, depth)];
            if next == 0 {
                break;
            }
            node = next as usize;
            depth += 1;
        }
        best
    }

    /// True when a network longer than `len` lies inside the block `key/len`.
    fn has_entry_inside(&self, key: u128, len: u8) -> bool {
        // Every node exists only because an entry sits at or below it.
        let mut node = 0usize;
        for depth in 0..len {
            match self.nodes[node].child[bit(key, depth)] {
                0 => return false,
                next => node = next as usize,
            }
        }
        let n = self.nodes[node];
        n.child[0] != 0 || n.child[1] != 0
    }
}

/// The mask of a left-aligned prefix of `len` bits (IPv4 in the top 32).
#[inline]
pub(crate) fn prefix_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Longest-prefix-match table from networks to values, IPv4 and IPv6.
#[derive(Debug, Clone)]
pub struct CidrTable<T> {
    v4: Trie<T>,
    v6: Trie<T>,
}

impl<T> Default for CidrTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Bit `depth` (0 = most significant) of a left-aligned key.
#[inline]
fn bit(key: u128, depth: u8) -> usize {
    ((key >> (127 - u32::from(depth))) & 1) as usize
}

impl<T> CidrTable<T> {
    pub fn new() -> Self {
        CidrTable {
            v4: Trie::new(),
            v6: Trie::new(),
        }
    }

    /// Number of networks in the table.
    pub fn len(&self) -> usize {
        self.v4.values.len() + self.v6.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trie for `ip`'s family, the address as a left-aligned 128-bit
    /// key, and the family's bit length.
    #[inline]
    fn select(&self, ip: IpAddr) -> (&Trie<T>, u128, u8) {
        match canonical(ip) {
            IpAddr::V4(v4) => (&self.v4, u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (&self.v6, u128::from(v6), 128),
        }
    }

    /// Adds a network. Inserting a network that is already present is an
    /// error rather than an overwrite: two config lines claiming the same
    /// network is a mistake the operator should hear about.
    pub fn insert(&mut self, net: IpNet, value: T) -> Result<(), GeoError> {
        let (trie, key) = match net.addr {
            IpAddr::V4(v4) => (&mut self.v4, u128::from(u32::from(v4)) << 96),
            IpAddr::V6(v6) => (&mut self.v6, u128::from(v6)),
        };
        let full = || GeoError::InvalidCidr {
            input: net.to_string(),
            reason: "the override table is full",
        };
        let mut node = 0usize;
        for depth in 0..net.prefix_len {
            let b = bit(key, depth);
            let next = trie.nodes[node].child[b];
            node = if next != 0 {
                next as usize
            } else {
                let idx = trie.nodes.len();
                let idx32 = u32::try_from(idx).map_err(|_| full())?;
                trie.nodes.push(Node::default());
                trie.nodes[node].child[b] = idx32;
                idx
            };
        }
        if trie.nodes[node].value != 0 {
            return Err(GeoError::DuplicateCidr {
                addr: net.addr,
                prefix_len: net.prefix_len,
            });
        }
        let slot = u32::try_from(trie.values.len() + 1).map_err(|_| full())?;
        trie.values.push(value);
        trie.nodes[node].value = slot;
        if trie.values.len() <= SHORT {
            let at = trie.short.partition_point(|s| s.len > net.prefix_len);
            trie.short.insert(
                at,
                Short {
                    net: key,
                    mask: prefix_mask(net.prefix_len),
                    len: net.prefix_len,
                    value: slot - 1,
                },
            );
        } else {
            trie.short = Vec::new();
        }
        Ok(())
    }

    /// Whether some network of the table holds `ip`. A table holding 0.0.0.0/0
    /// and ::/0 (trusted ECS senders by default) answers without a lookup.
    /// A short table (RRL exemptions, loopback by default: looked up for every
    /// response) is scanned here, inline: the call to [`Self::lookup`] saved
    /// registers for the walk of a long one.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.v4.holds_all() && self.v6.holds_all() {
            return true;
        }
        let (trie, key, _) = self.select(ip);
        if trie.values.len() <= SHORT {
            return trie.short.iter().any(|s| key & s.mask == s.net);
        }
        self.lookup(ip).is_some()
    }

    /// The value of the longest network containing `ip`, with that
    /// network's prefix length (IPv4 terms for IPv4 and IPv4-mapped
    /// addresses).
    pub fn lookup(&self, ip: IpAddr) -> Option<(&T, u8)> {
        let (trie, key, bits) = self.select(ip);
        trie.lookup(key, bits)
    }

    /// Like [`lookup`](Self::lookup), for a block of the address space given as a
    /// left-aligned key (IPv4 in the top 32 bits): the entry's index (stable for
    /// the table's life, distinct per entry of the family) and value.
    pub(crate) fn lookup_block(&self, v6: bool, key: u128) -> Option<(usize, &T)> {
        let (trie, bits) = if v6 { (&self.v6, 128) } else { (&self.v4, 32) };
        let (i, _) = trie.lookup_index(key, bits)?;
        trie.values.get(i as usize).map(|v| (i as usize, v))
    }

    /// True when an entry of the table lies strictly inside the block `key/len`
    /// (left-aligned, IPv4 in the top 32 bits): the block is not one answer for
    /// [`lookup`](Self::lookup).
    pub(crate) fn has_entry_inside(&self, v6: bool, key: u128, len: u8) -> bool {
        let trie = if v6 { &self.v6 } else { &self.v4 };
        !trie.values.is_empty() && trie.has_entry_inside(key, len)
    }

    /// The smallest scope `S >= prefix_len` such that every address in
    /// `ip/S` gets the same [`lookup`](Self::lookup) result (the same entry,
    /// or none) as `ip` itself.
    ///
    /// Use: `prefix_len` is how far the geo database's answer for `ip`
    /// extends (its matched network); the answer to the client holds for
    /// `ip/S`, which becomes the ECS scope. For example, with the database
    /// saying /16 and a /24 override elsewhere inside that /16, a client
    /// outside the /24 gets the scope of the largest block around it that
    /// avoids the /24 (here /22 or /23, or deeper), and a client inside the
    /// /24 gets /24.
    ///
    /// Equivalently: `S` is the smallest value `>= prefix_len` for which no
    /// entry longer than `/S` lies inside `ip/S`. (That also forces `S` to
    /// be at least the length of `ip`'s own match.)
    ///
    /// For IPv4 and IPv4-mapped addresses both `prefix_len` and the result
    /// are in IPv4 terms; `prefix_len` is clamped to the family's length.
    pub(crate) fn narrowest_overlap(&self, ip: IpAddr, prefix_len: u8) -> u8 {
        let (trie, key, bits) = self.select(ip);
        // Every node exists only because an entry sits at or below it (the
        // table never deletes), so "an entry lies strictly inside ip/d"
        // is "the node for ip/d has a child". Walk ip's path to the deepest
        // existing node k: every shallower node has a child (the next one on
        // the path), so S > those depths; at k, S = k if k has no child
        // (nothing below), else S = k + 1 (the child is on the other side,
        // and ip/(k+1) has no node).
        let mut node = 0usize;
        let mut depth = 0u8;
        let scope = loop {
            let n = trie.nodes[node];
            if depth == bits {
                break bits;
            }
            let next = n.child[bit(key, depth)];
            if next == 0 {
                let has_child = n.child[0] != 0 || n.child[1] != 0;
                break if has_child { depth + 1 } else { depth };
            }
            node = next as usize;
            depth += 1;
        };
        scope.max(prefix_len.min(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn contains_with_and_without_the_whole_space() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        let mut t: CidrTable<()> = CidrTable::new();
        assert!(!t.contains(ip("192.0.2.1")));
        t.insert(net("0.0.0.0/0"), ()).expect("insert");
        assert!(t.contains(ip("192.0.2.1")));
        assert!(t.contains(ip("::ffff:192.0.2.1")), "IPv4-mapped is IPv4");
        assert!(!t.contains(ip("2001:db8::1")), "no IPv6 network yet");
        t.insert(net("::/0"), ()).expect("insert");
        assert!(t.contains(ip("2001:db8::1")));
        let mut some: CidrTable<()> = CidrTable::new();
        some.insert(net("198.51.100.0/24"), ()).expect("insert");
        some.insert(net("2001:db8::/32"), ()).expect("insert");
        assert!(some.contains(ip("198.51.100.7")));
        assert!(!some.contains(ip("198.51.101.7")));
        assert!(some.contains(ip("2001:db8:1::1")));
        assert!(!some.contains(ip("2001:db9::1")));
    }

    /// Short tables (the linear list) and long ones (the trie) both give the
    /// longest network that contains the address, by brute force over the entries.
    #[test]
    fn lookup_is_longest_match_for_short_and_long_tables() {
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let mut next = move || rng.u64(..);
        for size in [1usize, 2, 5, SHORT, SHORT + 1, 40] {
            for _ in 0..20 {
                let mut t = CidrTable::new();
                let mut nets = Vec::new();
                while nets.len() < size {
                    // Few distinct high bits, so that networks nest and overlap.
                    let addr = Ipv4Addr::from(((next() as u32) & 0xc0f0_0f00) | 0x0a00_0000);
                    let n = IpNet::new(IpAddr::V4(addr), (next() % 33) as u8).unwrap();
                    if t.insert(n, nets.len()).is_ok() {
                        nets.push(n);
                    }
                }
                for _ in 0..200 {
                    let a = IpAddr::V4(Ipv4Addr::from(
                        ((next() as u32) & 0xc0f0_0fff) | 0x0a00_0000,
                    ));
                    let want = nets
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.contains(a))
                        .max_by_key(|(_, n)| n.prefix_len())
                        .map(|(i, n)| (i, n.prefix_len()));
                    let got = t.lookup(a).map(|(v, len)| (*v, len));
                    assert_eq!(got, want, "{a} in a table of {size}: {nets:?}");
                }
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display() {
        let n = net("192.0.2.0/24");
        assert_eq!(n.addr(), ip("192.0.2.0"));
        assert_eq!(n.prefix_len(), 24);
        assert!(!n.had_host_bits());
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net(" 0.0.0.0/0 ").prefix_len(), 0);
        assert_eq!(net("::/0").to_string(), "::/0");
        assert_eq!(net("2001:db8::1/128").prefix_len(), 128);
    }

    #[test]
    fn host_bits_are_masked_and_flagged() {
        let n = net("192.0.2.77/24");
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert!(n.had_host_bits());
        assert_eq!(n, net("192.0.2.0/24"));
        let n6 = net("2001:db8:ffff::1/32");
        assert_eq!(n6.to_string(), "2001:db8::/32");
        assert!(n6.had_host_bits());
        assert!(net("10.1.2.3/0").had_host_bits());
        assert_eq!(net("10.1.2.3/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn mapped_networks_become_ipv4() {
        let n = net("::ffff:192.0.2.0/120");
        assert_eq!(n.to_string(), "192.0.2.0/24");
        assert_eq!(net("::ffff:0:0/96").to_string(), "0.0.0.0/0");
        // Shorter than /96: an ordinary IPv6 network.
        assert_eq!(net("::ffff:0:0/80").to_string(), "::/80");
    }

    #[test]
    fn parse_errors() {
        for (input, needle) in [
            ("192.0.2.0", "missing"),
            ("192.0.2/24", "not an IPv4 or IPv6"),
            ("example.com/24", "not an IPv4 or IPv6"),
            ("192.0.2.0/", "decimal number"),
            ("192.0.2.0/+24", "decimal number"),
            ("192.0.2.0/2 4", "decimal number"),
            ("192.0.2.0/1000", "decimal number"),
            ("192.0.2.0/256", "out of range"),
            ("192.0.2.0/33", "longer than /32"),
            ("2001:db8::/129", "longer than /128"),
            ("fe80::1%eth0/64", "not an IPv4 or IPv6"),
            ("", "missing"),
        ] {
            let err = input.parse::<IpNet>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(needle), "{input:?}: {msg}");
            assert!(matches!(err, GeoError::InvalidCidr { .. }), "{input:?}");
        }
        assert!(matches!(
            IpNet::new(ip("192.0.2.0"), 33),
            Err(GeoError::PrefixTooLong {
                prefix_len: 33,
                max: 32
            })
        ));
    }

    #[test]
    fn contains() {
        let n = net("192.0.2.0/24");
        assert!(n.contains(ip("192.0.2.255")));
        assert!(n.contains(ip("::ffff:192.0.2.1")));
        assert!(!n.contains(ip("192.0.3.0")));
        assert!(!n.contains(ip("2001:db8::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!(!net("::/0").contains(ip("::ffff:192.0.2.1")));
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = CidrTable::new();
        t.insert(net("10.0.0.0/8"), "eight").unwrap();
        t.insert(net("10.1.0.0/16"), "sixteen").unwrap();
        t.insert(net("10.1.2.0/24"), "twentyfour").unwrap();
        t.insert(net("10.1.2.3/32"), "host").unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.lookup(ip("10.9.9.9")), Some((&"eight", 8)));
        assert_eq!(t.lookup(ip("10.1.9.9")), Some((&"sixteen", 16)));
        assert_eq!(t.lookup(ip("10.1.2.9")), Some((&"twentyfour", 24)));
        assert_eq!(t.lookup(ip("10.1.2.3")), Some((&"host", 32)));
        assert_eq!(t.lookup(ip("11.0.0.0")), None);
        assert_eq!(t.lookup(ip("2001:db8::1")), None);
    }

    #[test]
    fn default_routes_and_families_are_separate() {
        let mut t = CidrTable::new();
        t.insert(net("0.0.0.0/0"), 4).unwrap();
        assert_eq!(t.lookup(ip("203.0.113.1")), Some((&4, 0)));
        assert_eq!(t.lookup(ip("2001:db8::1")), None);
        t.insert(net("::/0"), 6).unwrap();
        assert_eq!(t.lookup(ip("2001:db8::1")), Some((&6, 0)));
        // Mapped addresses use the IPv4 trie, not ::/0.
        assert_eq!(t.lookup(ip("::ffff:203.0.113.1")), Some((&4, 0)));
        t.insert(net("2001:db8::/32"), 32).unwrap();
        assert_eq!(t.lookup(ip("2001:db8:1::1")), Some((&32, 32)));
        assert_eq!(t.lookup(ip("2001:db9::1")), Some((&6, 0)));
    }

    #[test]
    fn mapped_lookup_reports_ipv4_prefix() {
        let mut t = CidrTable::new();
        t.insert(net("::ffff:198.51.100.0/120"), ()).unwrap();
        assert_eq!(t.lookup(ip("198.51.100.7")), Some((&(), 24)));
        assert_eq!(t.lookup(ip("::ffff:198.51.100.7")), Some((&(), 24)));
    }

    #[test]
    fn duplicates_are_rejected() {
        let mut t = CidrTable::new();
        t.insert(net("192.0.2.0/24"), 1).unwrap();
        let err = t.insert(net("192.0.2.9/24"), 2).unwrap_err();
        assert!(matches!(err, GeoError::DuplicateCidr { .. }));
        assert_eq!(err.to_string(), "network 192.0.2.0/24 is listed twice");
        assert_eq!(t.lookup(ip("192.0.2.1")), Some((&1, 24)));
        // Same bits, other family: not a duplicate.
        t.insert(net("::/0"), 3).unwrap();
        t.insert(net("0.0.0.0/0"), 4).unwrap();
    }

    #[test]
    fn overlap_examples() {
        let mut t = CidrTable::new();
        // Empty table: the database's scope stands.
        assert_eq!(t.narrowest_overlap(ip("10.1.5.5"), 16), 16);
        assert_eq!(t.narrowest_overlap(ip("2001:db8::1"), 48), 48);

        t.insert(net("10.1.2.0/24"), ()).unwrap();
        // Inside the override: the answer holds for the /24.
        assert_eq!(t.narrowest_overlap(ip("10.1.2.9"), 16), 24);
        // Database already narrower than the override.
        assert_eq!(t.narrowest_overlap(ip("10.1.2.9"), 28), 28);
        // Outside the override, same /16: 10.1.5.5 and 10.1.2.0 share 21
        // bits, so 10.1.4.0/22 is the largest block without the /24.
        assert_eq!(t.narrowest_overlap(ip("10.1.5.5"), 16), 22);
        // 10.1.3.x shares 23 bits with 10.1.2.0.
        assert_eq!(t.narrowest_overlap(ip("10.1.3.1"), 16), 24);
        // A different /16: untouched.
        assert_eq!(t.narrowest_overlap(ip("10.2.0.1"), 16), 16);
        // Shorter database scope that contains the override.
        assert_eq!(t.narrowest_overlap(ip("10.200.0.1"), 8), 9);
        // Mapped address, IPv4 terms.
        assert_eq!(t.narrowest_overlap(ip("::ffff:10.1.2.9"), 16), 24);
        // Clamped to the family length.
        assert_eq!(t.narrowest_overlap(ip("10.1.2.9"), 120), 32);

        // An enclosing override does not narrow by itself.
        t.insert(net("10.0.0.0/8"), ()).unwrap();
        assert_eq!(t.narrowest_overlap(ip("10.2.0.1"), 16), 16);
        // 10.2.0.0 and 10.1.2.0 share 14 bits: /15 is the widest block
        // around 10.2.0.1 that only the /8 covers.
        assert_eq!(t.narrowest_overlap(ip("10.2.0.1"), 4), 15);
        assert_eq!(t.narrowest_overlap(ip("10.200.0.1"), 8), 9);
    }

    /// Checks `narrowest_overlap` against its definition by brute force:
    /// every address of ip/S has ip's lookup result, and ip/(S-1) (when
    /// S - 1 >= prefix_len) does not.
    #[test]
    fn overlap_matches_definition_exhaustively() {
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let base = u32::from(Ipv4Addr::new(10, 20, 0, 0));
        for _round in 0..40 {
            let mut t = CidrTable::new();
            for _ in 0..(rng.u64(..) % 8) {
                let len = 16 + (rng.u64(..) % 17) as u8;
                let addr = base | (rng.u64(..) as u32 & 0xffff);
                let _ = t.insert(IpNet::new(IpAddr::V4(addr.into()), len).unwrap(), len);
            }
            for _probe in 0..25 {
                let client = base | (rng.u64(..) as u32 & 0xffff);
                let client_ip = IpAddr::V4(client.into());
                let db_len = 16 + (rng.u64(..) % 17) as u8;
                // Identify an entry by its network: two entries may share
                // a prefix length.
                let entry = |a: IpAddr| t.lookup(a).map(|(_, l)| IpNet::new(a, l).unwrap());
                let want = entry(client_ip);
                let same_block = |s: u8| {
                    let n = IpNet::new(client_ip, s).unwrap();
                    let start = u32::from(match n.addr() {
                        IpAddr::V4(v4) => v4,
                        IpAddr::V6(_) => unreachable!(),
                    });
                    let size = 1u64 << (32 - s);
                    (0..size).all(|off| {
                        let a = IpAddr::V4(Ipv4Addr::from(start + off as u32));
                        entry(a) == want
                    })
                };
                let s = t.narrowest_overlap(client_ip, db_len);
                assert!(s >= db_len);
                assert!(same_block(s), "client {client_ip} db /{db_len} got /{s}");
                if s > db_len {
                    assert!(
                        !same_block(s - 1),
                        "client {client_ip} db /{db_len}: /{} also works",
                        s - 1
                    );
                }
            }
        }
    }

    #[test]
    fn ipv6_overlap() {
        let mut t = CidrTable::new();
        t.insert(net("2001:db8:1:2::/64"), ()).unwrap();
        assert_eq!(t.narrowest_overlap(ip("2001:db8:1:2::99"), 48), 64);
        // 2001:db8:1:3:: shares 63 bits with 2001:db8:1:2::.
        assert_eq!(t.narrowest_overlap(ip("2001:db8:1:3::1"), 48), 64);
        assert_eq!(t.narrowest_overlap(ip("2001:db8:1:8000::1"), 48), 49);
        assert_eq!(t.narrowest_overlap(ip("2001:db8:2::1"), 48), 48);
    }
}
