//! A zone's names and their nodes, laid out for memory: every owner name end
//! to end in one arena, relative to the zone's origin, the nodes in one vector
//! in the order their names were first seen, and a hash index of 4-byte node
//! numbers over them.
//!
//! A `HashMap<Name, Node>` spent, per name, a 56-byte slot with a quarter of the
//! slots empty, and a heap block for the name: about 110 bytes before the node's
//! own data. Here a name costs its labels above the origin and one byte, a slot
//! of 4 bytes and its node. Lookups hash the asked (whole) name, probe the
//! index, and compare the asked name with the stored one and the origin.
//!
//! A stored name is one byte, then that many bytes of labels, and the origin
//! follows (kept once, in [`Nodes::origin`]); or the byte [`WHOLE`], then the
//! whole wire name to its root label, for a name not under the origin (a zone
//! holds none today: its builder refuses them). The length comes first so that a
//! comparison knows where the labels end without reading them: a name's labels
//! may hold any byte.

use std::hash::Hasher;

use hashbrown::HashTable;

use super::name::MAX_NAME_LEN;
use super::stored::StoredName;
use super::Node;

/// The first byte of a stored name that is whole: not under the origin. A head
/// is at most 254 bytes (a name is at most 255, the origin at least 1), so a
/// head's length is never this.
pub(crate) const WHOLE: u8 = 0xff;

/// Names and nodes of one zone; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Nodes {
    /// Node numbers, by the hash of their whole name.
    index: HashTable<u32>,
    /// Every name, lower-cased, as the module's documentation lays it out, end
    /// to end.
    names: Vec<u8>,
    nodes: Vec<Node>,
    /// The zone's origin: the tail of every name stored relative to it.
    origin: Box<[u8]>,
}

impl Default for Nodes {
    /// No names, relative to the root.
    fn default() -> Nodes {
        Nodes::new(&[0])
    }
}

fn hash(name: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(name);
    h.finish()
}

impl Nodes {
    /// No names yet; names will be stored relative to `origin` (a whole,
    /// lower-cased wire name).
    pub fn new(origin: &[u8]) -> Nodes {
        Nodes::with_capacity(origin, 0)
    }

    /// Room for `n` names of about 16 octets above the origin, so that loading
    /// does not grow (and copy) the vectors and the index step by step.
    pub fn with_capacity(origin: &[u8], n: usize) -> Nodes {
        Nodes {
            index: HashTable::with_capacity(n),
            names: Vec::with_capacity(n * 16),
            nodes: Vec::with_capacity(n),
            origin: origin.into(),
        }
    }

    /// The number of names (empty non-terminals included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The origin the names are stored relative to.
    pub(crate) fn origin(&self) -> &[u8] {
        &self.origin
    }

    fn name_of<'a>(names: &'a [u8], origin: &'a [u8], node: &Node) -> StoredName<'a> {
        Self::name_from(names, origin, node.name_at as usize)
    }

    /// The name stored from offset `from` of `names`.
    fn name_from<'a>(names: &'a [u8], origin: &'a [u8], from: usize) -> StoredName<'a> {
        let Some((&first, rest)) = names.get(from..).and_then(<[u8]>::split_first) else {
            return StoredName::default();
        };
        if first == WHOLE {
            // A whole name ends at its root label.
            let len = super::name::wire_name_len(rest).unwrap_or(0);
            return StoredName::from(&rest[..len]);
        }
        StoredName::split(rest.get(..first as usize).unwrap_or_default(), origin)
    }

    /// The node number of `name`, whose hash is `h`.
    fn find_hashed(&self, h: u64, name: &[u8]) -> Option<usize> {
        let (names, nodes, origin) = (&self.names, &self.nodes, &*self.origin);
        self.index
            .find(h, |&i| {
                Self::name_of(names, origin, &nodes[i as usize]).is(name)
            })
            .map(|&i| i as usize)
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.find_hashed(hash(name), name)
    }

    /// The hash of node number `i`'s whole name, for the index when it grows or
    /// shrinks.
    fn rehash<'a>(
        names: &'a [u8],
        origin: &'a [u8],
        nodes: &'a [Node],
    ) -> impl Fn(&u32) -> u64 + 'a {
        move |&i| {
            let mut buf = [0u8; MAX_NAME_LEN];
            hash(Self::name_of(names, origin, &nodes[i as usize]).whole(&mut buf))
        }
    }

    /// The node of `name` (lower-cased wire form).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.find(name).map(|i| &self.nodes[i])
    }

    /// The node of `name` and the name as stored, which lives as long as the zone.
    pub(crate) fn get_key_value(&self, name: &[u8]) -> Option<(StoredName<'_>, &Node)> {
        let node = &self.nodes[self.find(name)?];
        Some((Self::name_of(&self.names, &self.origin, node), node))
    }

    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut Node> {
        let i = self.find(name)?;
        Some(&mut self.nodes[i])
    }

    pub(crate) fn contains_key(&self, name: &[u8]) -> bool {
        self.find(name).is_some()
    }

    /// The node of `name`, made empty (an empty non-terminal) if there was none.
    /// `name` must be a whole wire name, lower-cased, of at most 255 octets.
    pub fn entry(&mut self, name: &[u8]) -> &mut Node {
        let i = self.entry_index(name);
        &mut self.nodes[i]
    }

    /// The number of `name`'s node, made as [`Nodes::entry`] makes it.
    pub(crate) fn entry_index(&mut self, name: &[u8]) -> usize {
        let h = hash(name);
        if let Some(i) = self.find_hashed(h, name) {
            return i;
        }
        let i = self.nodes.len();
        let node = Node {
            name_at: self.names.len() as u32,
            ..Node::default()
        };
        self.push_name(name);
        self.nodes.push(node);
        let (names, origin, nodes) = (&self.names, &*self.origin, &self.nodes);
        self.index
            .insert_unique(h, i as u32, Self::rehash(names, origin, nodes));
        i
    }

    /// Appends `name` to the arena in the stored form.
    fn push_name(&mut self, name: &[u8]) {
        let under = super::name::is_wire_subdomain(name, &self.origin);
        match name.len().checked_sub(self.origin.len()) {
            Some(head) if under && head < WHOLE as usize => {
                self.names.push(head as u8);
                self.names.extend_from_slice(&name[..head]);
            }
            _ => {
                self.names.push(WHOLE);
                self.names.extend_from_slice(name);
            }
        }
    }

    /// Node number `i` (see [`Nodes::entry_index`]) and its name.
    pub(crate) fn at(&self, i: usize) -> (StoredName<'_>, &Node) {
        let node = &self.nodes[i];
        (Self::name_of(&self.names, &self.origin, node), node)
    }

    /// Where node number `i`'s name starts in [`Nodes::name_bytes`]: a table
    /// that keeps the offset instead of a copy of the name compares an asked
    /// name with the bytes from there (the length of its labels above the
    /// origin, those labels, then [`Nodes::origin`]; see the module's
    /// documentation).
    pub(crate) fn name_offset(&self, i: usize) -> u32 {
        self.nodes[i].name_at
    }

    /// Every stored name, end to end (see [`Nodes::name_offset`]).
    pub(crate) fn name_bytes(&self) -> &[u8] {
        &self.names
    }

    /// The name stored from [`Nodes::name_offset`] `from`.
    pub(crate) fn name_at_offset(&self, from: usize) -> StoredName<'_> {
        Self::name_from(&self.names, &self.origin, from)
    }

    /// Node number `i`, to change it.
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The names of the zone's cuts (NS at a name other than the apex).
    pub(crate) fn cuts(&self) -> impl Iterator<Item = StoredName<'_>> + '_ {
        self.iter().filter(|(_, n)| n.cut()).map(|(k, _)| k)
    }

    /// Every name and its node, in the order the names were first seen.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            names: &self.names,
            origin: &self.origin,
            nodes: self.nodes.iter(),
        }
    }

    /// Every name and its node, to change the nodes.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (StoredName<'_>, &mut Node)> + '_ {
        let (names, origin) = (&self.names, &*self.origin);
        self.nodes
            .iter_mut()
            .map(move |n| (Self::name_of(names, origin, n), n))
    }

    /// Every name, in the order first seen.
    pub fn keys(&self) -> impl Iterator<Item = StoredName<'_>> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Node> + '_ {
        self.nodes.iter()
    }

    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut Node> + '_ {
        self.nodes.iter_mut()
    }

    /// Gives back the room the vectors grew into while loading.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.names.shrink_to_fit();
        self.nodes.shrink_to_fit();
        let (names, origin, nodes) = (&self.names, &*self.origin, &self.nodes);
        self.index.shrink_to_fit(Self::rehash(names, origin, nodes));
    }
}

/// [`Nodes::iter`].
pub struct Iter<'a> {
    names: &'a [u8],
    origin: &'a [u8],
    nodes: std::slice::Iter<'a, Node>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (StoredName<'a>, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.nodes.next()?;
        Some((Nodes::name_of(self.names, self.origin, n), n))
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = (StoredName<'a>, &'a Node);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Name;

    fn wire(s: &str) -> Name {
        Name::parse(s, None).expect("a test name")
    }

    /// Names whose labels hold the bytes a stored name uses as lengths and
    /// markers (0x00, 0xc0, 0xff), and one whose last bytes are the origin's
    /// without being under it (a label ending in `\007example`).
    fn crafted() -> Vec<Name> {
        [
            "\\000.example.",
            "\\192.example.",
            "\\192\\000\\255.x.example.",
            "a\\007example.example.",
            "\\001a\\007example.example.",
            "ab\\007example.",
            "example.com.",
            "com.",
        ]
        .iter()
        .map(|t| wire(t))
        .collect()
    }

    #[test]
    fn names_found_as_inserted_and_not_by_prefix_or_suffix() {
        let origin = wire("example.");
        let mut n = Nodes::new(origin.wire());
        let names: Vec<Name> = (0..2000)
            .map(|i| wire(&format!("n{i}.example.")))
            .chain([wire("example."), wire("a.b.example.")])
            .chain(crafted())
            .collect();
        for (i, name) in names.iter().enumerate() {
            n.entry(name.wire()).set_steer(Some(i as u32));
        }
        assert_eq!(n.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            let (k, node) = n.get_key_value(name.wire()).expect("inserted");
            assert!(k.is(name.wire()), "{name}");
            assert_eq!(k.to_vec(), name.wire());
            assert_eq!(node.steer(), Some(i as u32), "{name}");
        }
        // A name's suffix, and a longer name ending in a stored one, are other names.
        assert!(n.get(wire("b.example.").wire()).is_none());
        assert!(n.get(wire("x.a.b.example.").wire()).is_none());
        assert!(n.get(wire("n1.example.").wire()).is_some());
        assert!(n.get(wire("n1.example.com.").wire()).is_none());
        assert!(n.get(wire("\\192\\000.example.").wire()).is_none());
        assert!(n.get(wire("\\192.x.example.").wire()).is_none());
        assert!(n.get(wire("b\\007example.").wire()).is_none());
        assert!(n.get(wire("\\001a.example.example.").wire()).is_none());
        assert!(n.get(&[0]).is_none());
        // entry() on a name that exists gives the same node, not a new one.
        n.entry(wire("example.").wire()).set_cut(true);
        n.entry(wire("ab\\007example.").wire());
        assert_eq!(n.len(), names.len());
        assert!(n.get(wire("example.").wire()).is_some_and(|x| x.cut()));
        n.shrink_to_fit();
        let seen: Vec<Vec<u8>> = n.iter().map(|(k, _)| k.to_vec()).collect();
        let want: Vec<&[u8]> = names.iter().map(|x| x.wire()).collect();
        assert_eq!(seen, want, "iteration follows insertion");
        // Found again after the index was rebuilt from the stored names.
        for (i, name) in names.iter().enumerate() {
            assert_eq!(n.get(name.wire()).and_then(|x| x.steer()), Some(i as u32));
        }
        // The origin is one byte; a name not under it is kept whole.
        let at = |t: &str| {
            let i = n.find(wire(t).wire()).expect("stored");
            n.name_bytes()[n.name_offset(i) as usize]
        };
        assert_eq!(at("example."), 0);
        assert_eq!(at("ab\\007example."), WHOLE);
        assert_eq!(at("com."), WHOLE);
        assert_eq!(at("\\192.example."), 2);
    }

    /// A name costs its labels above the origin and one byte: the origin is
    /// kept once, not after every name.
    #[test]
    fn names_are_stored_relative_to_the_origin() {
        let origin = wire("a-rather-long-origin.for-many-names.example.");
        let mut n = Nodes::new(origin.wire());
        let count = 1000;
        for i in 0..count {
            n.entry(wire(&format!("bulk{i:07}.{origin}")).wire());
        }
        n.entry(origin.wire());
        // "bulk0000000": a 12-byte label (length included), then the length byte.
        assert!(n.name_bytes().len() <= count * (12 + 1) + 1);
        assert_eq!(n.origin(), origin.wire());
        let (k, _) = n.at(0);
        assert_eq!(k.to_text(), format!("bulk0000000.{origin}"));
        assert_eq!(k.len(), 12 + origin.wire().len());
    }
}
