//! Our own walk of an MMDB search tree, with the first 16 levels done by one
//! table read, and the walk of the whole tree that lists every network.
//!
//! The search tree is a binary trie, one bit per level (the MaxMind DB format,
//! "Search Tree Section"): node `n` holds two records of `record_size` bits, the
//! left one for a 0 bit; a record below `node_count` is the next node, equal to it
//! means "no data", above it points into the data section. An IPv4 address walks
//! 32 levels from the start of the IPv4 subtree (node 0 in an IPv4 database, 96
//! zero bits down in an IPv6 one); an IPv6 address walks 128 from node 0. The walk
//! is a chain of dependent reads, about one cache miss per level in a full-size
//! database, so [`TreeIndex`] keeps where every 16-bit prefix leads: 65,536
//! four-byte nodes and a byte of depth each, one table per address family.
//!
//! It gives what [`maxminddb::Reader::lookup`] gives for the same address: the
//! record reached and the prefix length of its network in the family's terms;
//! `tests` checks both against the crate on every fixture database.
//!
//! [`TreeIndex::leaves`] visits every leaf of the tree in address order: the
//! networks of the database and the empty ones between them, which together cover
//! the family's whole address space. The ECS scope maps are built from it.

use std::sync::Arc;

/// The database's bytes, shared by the reader and the index.
#[derive(Clone)]
pub(super) struct DbBytes(pub(super) Arc<Vec<u8>>);

impl AsRef<[u8]> for DbBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Levels the table resolves.
const JUMP_BITS: u32 = 16;

/// The walk of one address family: IPv4 (32 levels from the IPv4 subtree) or IPv6
/// (128 from the root). Addresses are given left-aligned in 128 bits, so one walk
/// serves both.
pub(super) struct TreeIndex {
    bytes: DbBytes,
    node_count: usize,
    record_size: u16,
    /// Levels of the family: 32 or 128.
    bits: u32,
    /// Where the family's walk starts.
    start: usize,
    /// Per 16-bit prefix: the record reached after the first levels.
    jump: Box<[u32]>,
    /// Per 16-bit prefix: how many levels the walk went before leaving the tree
    /// (`JUMP_BITS` when it is still on a node).
    depth: Box<[u8]>,
}

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// A data section offset (from the section's start, as the crate counts).
    Data(usize),
    /// No data for the address.
    Nothing,
}

impl TreeIndex {
    /// Builds the index for IPv4 (`v6` false) or IPv6 addresses; `None` for a tree
    /// this walk does not read (a record size other than 24, 28 or 32 bits, records
    /// outside the bytes, or IPv6 in an IPv4 tree).
    pub(super) fn new(
        bytes: DbBytes,
        node_count: u32,
        record_size: u16,
        ip_version: u16,
        v6: bool,
    ) -> Option<TreeIndex> {
        if !matches!(record_size, 24 | 28 | 32) || (v6 && ip_version != 6) {
            return None;
        }
        let mut idx = TreeIndex {
            bytes,
            node_count: node_count as usize,
            record_size,
            bits: if v6 { 128 } else { 32 },
            start: 0,
            jump: Box::default(),
            depth: Box::default(),
        };
        // The IPv4 subtree: ::/96 in an IPv6 tree.
        if ip_version == 6 && !v6 {
            for _ in 0..96 {
                if idx.start >= idx.node_count {
                    break;
                }
                idx.start = idx.read(idx.start, 0)?;
            }
        }
        let n = 1usize << JUMP_BITS;
        let mut jump = Vec::with_capacity(n);
        let mut depth = Vec::with_capacity(n);
        for p in 0..n as u128 {
            let key = p << (128 - JUMP_BITS);
            let (node, d) = idx.walk_from(idx.start, key, 0, JUMP_BITS)?;
            jump.push(u32::try_from(node).ok()?);
            depth.push(d as u8);
        }
        idx.jump = jump.into_boxed_slice();
        idx.depth = depth.into_boxed_slice();
        Some(idx)
    }

    /// Record `side` (0 left, 1 right) of `node`; `None` past the bytes.
    #[inline]
    fn read(&self, node: usize, side: usize) -> Option<usize> {
        let b = self.bytes.as_ref();
        match self.record_size {
            24 => {
                let at = node * 6 + side * 3;
                let r = b.get(at..at + 3)?;
                Some((usize::from(r[0]) << 16) | (usize::from(r[1]) << 8) | usize::from(r[2]))
            }
            28 => {
                let at = node * 7;
                let r = b.get(at..at + 7)?;
                Some(if side == 0 {
                    (usize::from(r[3] >> 4) << 24)
                        | (usize::from(r[0]) << 16)
                        | (usize::from(r[1]) << 8)
                        | usize::from(r[2])
                } else {
                    (usize::from(r[3] & 0x0f) << 24)
                        | (usize::from(r[4]) << 16)
                        | (usize::from(r[5]) << 8)
                        | usize::from(r[6])
                })
            }
            _ => {
                let at = node * 8 + side * 4;
                let r = b.get(at..at + 4)?;
                Some(u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize)
            }
        }
    }

    /// Walks levels `from..to` of the left-aligned `key` from `node`: the record
    /// reached and the level at which the walk left the tree (`to` if it did not).
    #[inline]
    fn walk_from(&self, mut node: usize, key: u128, from: u32, to: u32) -> Option<(usize, u32)> {
        for level in from..to {
            if node >= self.node_count {
                return Some((node, level));
            }
            node = self.read(node, ((key >> (127 - level)) & 1) as usize)?;
        }
        Some((node, to))
    }

    /// What a record that leaves the tree holds.
    #[inline]
    fn found(&self, record: usize) -> Found {
        // The data section starts 16 bytes after the tree.
        match record.checked_sub(self.node_count + 16) {
            Some(offset) if record > self.node_count => Found::Data(offset),
            _ => Found::Nothing,
        }
    }

    /// The record for the left-aligned address `key` and the prefix length of its
    /// network; `None` when the tree points outside the file (the crate's lookup
    /// reports that).
    pub(super) fn lookup(&self, key: u128) -> Option<(Found, u8)> {
        let j = (key >> (128 - JUMP_BITS)) as usize;
        let node = *self.jump.get(j)? as usize;
        let d = u32::from(*self.depth.get(j)?);
        let (node, prefix) = if d < JUMP_BITS {
            (node, d)
        } else {
            self.walk_from(node, key, JUMP_BITS, self.bits)?
        };
        Some((self.found(node), prefix as u8))
    }

    /// Calls `visit(first address, prefix length, what it holds)` for every leaf
    /// of the family's tree, in address order: together they cover the whole
    /// address space once. A lookup of any address in a leaf gives that leaf.
    /// `None` when the tree points outside the file, or when it has more than
    /// `max_leaves` leaves (aliases make a subtree count more than once; a crafted
    /// tree whose records point back at each other would never end).
    pub(super) fn leaves(
        &self,
        max_leaves: usize,
        visit: &mut dyn FnMut(u128, u8, Found),
    ) -> Option<()> {
        let mut stack: Vec<(usize, u128, u32)> = vec![(self.start, 0, 0)];
        let mut n = 0usize;
        while let Some((node, key, depth)) = stack.pop() {
            if node >= self.node_count || depth == self.bits {
                n += 1;
                if n > max_leaves {
                    return None;
                }
                visit(key, depth as u8, self.found(node));
                continue;
            }
            let right = self.read(node, 1)?;
            let left = self.read(node, 0)?;
            // Left is visited first: the stack pops it before the right.
            stack.push((right, key | (1u128 << (127 - depth)), depth + 1));
            stack.push((left, key, depth + 1));
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::Reader;
    use std::net::{IpAddr, Ipv4Addr};

    /// `raw` (a database with 24-bit records) with its tree rewritten in
    /// `record_size`-bit records: the records keep their values (data pointers
    /// count from the node count, which stays), the metadata says the new size.
    fn with_record_size(raw: &[u8], record_size: u16) -> Vec<u8> {
        let marker = b"\xab\xcd\xefMaxMind.com";
        let meta = raw
            .windows(marker.len())
            .rposition(|w| w == marker)
            .expect("metadata");
        let reader = Reader::from_source(raw).expect("opens");
        let nodes = reader.metadata().node_count as usize;
        assert_eq!(reader.metadata().record_size, 24);
        let mut out = Vec::new();
        for n in 0..nodes {
            let r = &raw[n * 6..n * 6 + 6];
            let left = (u32::from(r[0]) << 16) | (u32::from(r[1]) << 8) | u32::from(r[2]);
            let right = (u32::from(r[3]) << 16) | (u32::from(r[4]) << 8) | u32::from(r[5]);
            if record_size == 28 {
                let (l, rr) = (left.to_be_bytes(), right.to_be_bytes());
                out.extend_from_slice(&[
                    l[1],
                    l[2],
                    l[3],
                    (l[0] << 4) | rr[0],
                    rr[1],
                    rr[2],
                    rr[3],
                ]);
            } else {
                out.extend_from_slice(&left.to_be_bytes());
                out.extend_from_slice(&right.to_be_bytes());
            }
        }
        out.extend_from_slice(&raw[nodes * 6..]);
        // "record_size" then the uint16 24 (0xa1 0x18), in the metadata.
        let tail = out.len() - (raw.len() - meta);
        let key = b"record_size\xa1";
        let at = out[tail..]
            .windows(key.len())
            .position(|w| w == key)
            .expect("record_size in the metadata")
            + tail
            + key.len();
        out[at] = record_size as u8;
        out
    }

    /// Records whose values need every bit of their size (the fixtures' are all
    /// small): in 28-bit nodes the middle byte's high nibble is the left record's
    /// top, its low nibble the right one's (MaxMind DB format, "Search Tree").
    #[test]
    fn reads_records_of_every_size_to_the_top_bit() {
        let cases: [(u16, Vec<u8>, usize, usize); 3] = [
            (
                24,
                vec![0xab, 0xcd, 0xef, 0x12, 0x34, 0x56],
                0xab_cdef,
                0x12_3456,
            ),
            (
                28,
                vec![0xbc, 0xde, 0xf1, 0xa5, 0x67, 0x89, 0xab],
                0x0abc_def1,
                0x0567_89ab,
            ),
            (
                32,
                vec![0xfe, 0xdc, 0xba, 0x98, 0x01, 0x23, 0x45, 0x67],
                0xfedc_ba98,
                0x0123_4567,
            ),
        ];
        for (record_size, node, left, right) in cases {
            let idx = TreeIndex {
                bytes: DbBytes(Arc::new(node)),
                node_count: 1,
                record_size,
                bits: 32,
                start: 0,
                jump: Box::default(),
                depth: Box::default(),
            };
            assert_eq!(idx.read(0, 0), Some(left), "{record_size}-bit left");
            assert_eq!(idx.read(0, 1), Some(right), "{record_size}-bit right");
            assert_eq!(idx.read(1, 0), None, "{record_size}-bit past the bytes");
        }
    }

    /// Every fixture database, and the city one in 28- and 32-bit records, many
    /// addresses: the same record and prefix as the crate's own lookup.
    #[test]
    fn agrees_with_the_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
        let city = std::fs::read(dir.join("city.mmdb")).expect("fixture");
        let mut dbs = vec![
            ("city 28-bit", with_record_size(&city, 28)),
            ("city 32-bit", with_record_size(&city, 32)),
        ];
        for name in [
            "city.mmdb",
            "asn.mmdb",
            "country-flat.mmdb",
            "country-flat-ipv4.mmdb",
        ] {
            dbs.push((name, std::fs::read(dir.join(name)).expect("fixture")));
        }
        let mut checked = 0;
        for (name, raw) in dbs {
            let bytes = DbBytes(Arc::new(raw));
            let reader = Reader::from_source(bytes.clone()).expect("opens");
            let m = reader.metadata();
            let idx = TreeIndex::new(bytes, m.node_count, m.record_size, m.ip_version, false)
                .expect("index");
            let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
            let mut addrs: Vec<u32> = (0..20_000).map(|_| rng.u32(..)).collect();
            // The fixtures' networks and their edges.
            for base in [
                [198u8, 18, 0, 0],
                [198, 19, 0, 0],
                [198, 19, 16, 0],
                [198, 19, 17, 255],
                [198, 19, 32, 0],
                [192, 0, 2, 0],
                [198, 51, 100, 7],
                [203, 0, 113, 255],
                [100, 64, 0, 0],
                [100, 65, 15, 255],
                [100, 66, 1, 1],
                [0, 0, 0, 0],
                [255, 255, 255, 255],
            ] {
                let b = u32::from_be_bytes(base);
                addrs.extend([b, b.wrapping_sub(1), b.wrapping_add(1), b | 0xff]);
            }
            for a in addrs {
                let ip = IpAddr::V4(Ipv4Addr::from(a));
                let r = reader.lookup(ip).expect("crate lookup");
                let want_prefix = match r.network().expect("network") {
                    net if net.is_ipv6() => net.prefix().saturating_sub(96),
                    net => net.prefix(),
                };
                let want = match r.offset() {
                    Some(o) => Found::Data(o),
                    None => Found::Nothing,
                };
                assert_eq!(
                    idx.lookup(u128::from(a) << 96),
                    Some((want, want_prefix)),
                    "{name}: {ip}"
                );
                checked += 1;
            }
        }
        assert!(checked > 120_000);
    }

    /// The fixture databases with an IPv6 tree (and the city one in 28- and 32-bit
    /// records), many IPv6 addresses: the same record and prefix as the crate.
    #[test]
    fn ipv6_agrees_with_the_crate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
        let city = std::fs::read(dir.join("city.mmdb")).expect("fixture");
        let mut dbs = vec![
            ("city 28-bit", with_record_size(&city, 28)),
            ("city 32-bit", with_record_size(&city, 32)),
        ];
        for name in ["city.mmdb", "asn.mmdb", "country-flat.mmdb"] {
            dbs.push((name, std::fs::read(dir.join(name)).expect("fixture")));
        }
        dbs.push((
            "bundled",
            std::fs::read(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("geo/geo-whois-asn-country.mmdb"),
            )
            .expect("bundled database"),
        ));
        let mut checked = 0;
        for (name, raw) in dbs {
            let bytes = DbBytes(Arc::new(raw));
            let reader = Reader::from_source(bytes.clone()).expect("opens");
            let m = reader.metadata();
            let idx = TreeIndex::new(bytes, m.node_count, m.record_size, m.ip_version, true)
                .expect("index");
            let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
            let mut next = move || rng.u64(..);
            let mut addrs: Vec<u128> = (0..20_000)
                .map(|i| {
                    let hi = next();
                    // Half anywhere, half in the allocated 2000::/3 and the
                    // fixtures' documentation ranges.
                    let hi = match i % 4 {
                        0 => hi,
                        1 => (hi >> 3) | 0x2000_0000_0000_0000,
                        2 => (hi & 0x0000_ffff_ffff_ffff) | 0x2001_0db8_0000_0000,
                        _ => (hi & 0x0000_ffff_ffff_ffff) | 0x3fff_0000_0000_0000,
                    };
                    (u128::from(hi) << 64) | u128::from(next())
                })
                .collect();
            for base in [
                "::",
                "::ffff:198.19.16.1",
                "2002:c613:1001::1",
                "::198.19.16.1",
            ] {
                let b = u128::from(base.parse::<std::net::Ipv6Addr>().expect("addr"));
                addrs.extend([b, b.wrapping_sub(1), b.wrapping_add(1)]);
            }
            addrs.push(u128::MAX);
            for a in addrs {
                let ip = IpAddr::V6(std::net::Ipv6Addr::from(a));
                let r = reader.lookup(ip).expect("crate lookup");
                let want_prefix = r.network().expect("network").prefix();
                let want = match r.offset() {
                    Some(o) => Found::Data(o),
                    None => Found::Nothing,
                };
                assert_eq!(idx.lookup(a), Some((want, want_prefix)), "{name}: {ip}");
                checked += 1;
            }
        }
        assert!(checked > 100_000);
    }

    /// The leaves cover each family's space once, in order, and each one is what a
    /// lookup of its first and last address finds.
    #[test]
    fn leaves_cover_the_space_and_agree_with_lookups() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
        for name in [
            "city.mmdb",
            "asn.mmdb",
            "country-flat.mmdb",
            "country-flat-ipv4.mmdb",
        ] {
            let bytes = DbBytes(Arc::new(std::fs::read(dir.join(name)).expect("fixture")));
            let reader = Reader::from_source(bytes.clone()).expect("opens");
            let m = reader.metadata();
            for v6 in [false, true] {
                let Some(idx) =
                    TreeIndex::new(bytes.clone(), m.node_count, m.record_size, m.ip_version, v6)
                else {
                    assert!(v6 && m.ip_version == 4, "{name}: no index");
                    continue;
                };
                let width = if v6 { 128 } else { 32 };
                let mut next: u128 = 0;
                let mut done = false;
                let mut count = 0;
                idx.leaves(1 << 20, &mut |start, len, found| {
                    assert!(!done, "{name}: a leaf after the end of the space");
                    assert_eq!(start, next, "{name}: leaves out of order or with a gap");
                    let size_mask = u128::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                    let last = start | size_mask;
                    let last = if v6 { last } else { last & !(u128::MAX >> 32) };
                    for a in [start, last] {
                        assert_eq!(idx.lookup(a), Some((found, len)), "{name}: {a:x}");
                    }
                    count += 1;
                    let below = u128::MAX.checked_shr(width).unwrap_or(0);
                    if last | below == u128::MAX {
                        done = true;
                    } else {
                        next = last + below + 1;
                    }
                })
                .expect("readable tree");
                assert!(done, "{name}: the leaves end before the space does");
                assert!(count > 1, "{name}: one leaf only");
            }
        }
    }
}
