//! A zone's names and their nodes, laid out for memory: every owner name's wire
//! form end to end in one arena, the nodes in one vector in the order their
//! names were first seen, and a hash index of 4-byte node numbers over them.
//!
//! A `HashMap<Name, Node>` spent, per name, a 56-byte slot with a quarter of the
//! slots empty, and a heap block for the name: about 110 bytes before the node's
//! own data. Here a name costs its wire bytes, a slot of 4 bytes and its node.
//! Lookups hash the asked name, probe the index, and compare the asked name
//! with the stored one in the arena.

use std::hash::Hasher;

use hashbrown::HashTable;

use super::Node;

/// Names and nodes of one zone; see the module's documentation.
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    /// Node numbers, by the hash of their name.
    index: HashTable<u32>,
    /// Every name's uncompressed, lower-cased wire form, end to end.
    names: Vec<u8>,
    nodes: Vec<Node>,
}

fn hash(name: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(name);
    h.finish()
}

impl Nodes {
    /// Room for `n` names of about 32 octets, so that loading does not grow
    /// (and copy) the vectors and the index step by step.
    pub fn with_capacity(n: usize) -> Nodes {
        Nodes {
            index: HashTable::with_capacity(n),
            names: Vec::with_capacity(n * 32),
            nodes: Vec::with_capacity(n),
        }
    }

    /// The number of names (empty non-terminals included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn name_of<'a>(names: &'a [u8], node: &Node) -> &'a [u8] {
        Self::name_from(names, node.name_at as usize)
    }

    /// The name stored from offset `from` of `names`, whole.
    fn name_from(names: &[u8], from: usize) -> &[u8] {
        let rest = names.get(from..).unwrap_or_default();
        // The stored name ends at its root label (every name went in whole).
        let len = super::name::wire_name_len(rest).unwrap_or(0);
        &rest[..len]
    }

    /// The node number of `name`, whose hash is `h`.
    fn find_hashed(&self, h: u64, name: &[u8]) -> Option<usize> {
        let (names, nodes) = (&self.names, &self.nodes);
        self.index
            .find(h, |&i| Self::name_of(names, &nodes[i as usize]) == name)
            .map(|&i| i as usize)
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.find_hashed(hash(name), name)
    }

    /// The hash of node number `i`'s name, for the index when it grows or shrinks.
    fn rehash<'a>(names: &'a [u8], nodes: &'a [Node]) -> impl Fn(&u32) -> u64 + 'a {
        move |&i| hash(Self::name_of(names, &nodes[i as usize]))
    }

    /// The node of `name` (lower-cased wire form).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.find(name).map(|i| &self.nodes[i])
    }

    /// The node of `name` and the name as stored, which lives as long as the zone.
    pub(crate) fn get_key_value(&self, name: &[u8]) -> Option<(&[u8], &Node)> {
        let node = &self.nodes[self.find(name)?];
        Some((Self::name_of(&self.names, node), node))
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
        let i = match self.find_hashed(h, name) {
            Some(i) => i,
            None => {
                let i = self.nodes.len();
                let node = Node {
                    name_at: self.names.len() as u32,
                    ..Node::default()
                };
                self.names.extend_from_slice(name);
                self.nodes.push(node);
                self.index
                    .insert_unique(h, i as u32, Self::rehash(&self.names, &self.nodes));
                i
            }
        };
        i
    }

    /// Node number `i` (see [`Nodes::entry_index`]) and its name.
    pub(crate) fn at(&self, i: usize) -> (&[u8], &Node) {
        let node = &self.nodes[i];
        (Self::name_of(&self.names, node), node)
    }

    /// Where node number `i`'s name starts in [`Nodes::name_bytes`]: a table
    /// that keeps the offset instead of a copy of the name compares an asked
    /// name with the bytes from there (a whole wire name that matches them up to
    /// its root label is the stored name).
    pub(crate) fn name_offset(&self, i: usize) -> u32 {
        self.nodes[i].name_at
    }

    /// Every name's wire form, end to end (see [`Nodes::name_offset`]).
    pub(crate) fn name_bytes(&self) -> &[u8] {
        &self.names
    }

    /// The name stored from [`Nodes::name_offset`] `from`, whole.
    pub(crate) fn name_at_offset(&self, from: usize) -> &[u8] {
        Self::name_from(&self.names, from)
    }

    /// Node number `i`, to change it.
    pub(crate) fn at_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// The names of the zone's cuts (NS at a name other than the apex).
    pub(crate) fn cuts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.iter().filter(|(_, n)| n.cut()).map(|(k, _)| k)
    }

    /// Every name and its node, in the order the names were first seen.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            names: &self.names,
            nodes: self.nodes.iter(),
        }
    }

    /// Every name and its node, to change the nodes.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&[u8], &mut Node)> + '_ {
        let names = &self.names;
        self.nodes
            .iter_mut()
            .map(move |n| (Self::name_of(names, n), n))
    }

    /// Every name, in the order first seen.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> + '_ {
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
        self.index
            .shrink_to_fit(Self::rehash(&self.names, &self.nodes));
    }
}

/// [`Nodes::iter`].
pub struct Iter<'a> {
    names: &'a [u8],
    nodes: std::slice::Iter<'a, Node>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.nodes.next()?;
        Some((Nodes::name_of(self.names, n), n))
    }
}

impl<'a> IntoIterator for &'a Nodes {
    type Item = (&'a [u8], &'a Node);
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

    #[test]
    fn names_found_as_inserted_and_not_by_prefix_or_suffix() {
        let mut n = Nodes::default();
        let names: Vec<Name> = (0..2000)
            .map(|i| wire(&format!("n{i}.example.")))
            .chain([wire("example."), wire("a.b.example.")])
            .collect();
        for (i, name) in names.iter().enumerate() {
            n.entry(name.wire()).set_steer(Some(i as u32));
        }
        assert_eq!(n.len(), names.len());
        for (i, name) in names.iter().enumerate() {
            let (k, node) = n.get_key_value(name.wire()).expect("inserted");
            assert_eq!(k, name.wire());
            assert_eq!(node.steer(), Some(i as u32));
        }
        // A name's suffix, and a longer name ending in a stored one, are other names.
        assert!(n.get(wire("b.example.").wire()).is_none());
        assert!(n.get(wire("x.a.b.example.").wire()).is_none());
        assert!(n.get(wire("n1.example.").wire()).is_some());
        assert!(n.get(wire("n1.example.com.").wire()).is_none());
        // entry() on a name that exists gives the same node, not a new one.
        n.entry(wire("example.").wire()).set_cut(true);
        assert_eq!(n.len(), names.len());
        assert!(n.get(wire("example.").wire()).is_some_and(|x| x.cut()));
        n.shrink_to_fit();
        let seen: Vec<&[u8]> = n.iter().map(|(k, _)| k).collect();
        let want: Vec<&[u8]> = names.iter().map(|x| x.wire()).collect();
        assert_eq!(seen, want, "iteration follows insertion");
    }
}
