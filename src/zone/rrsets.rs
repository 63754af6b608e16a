//! A node's RRsets in 32 bytes: most names have one set, kept in place; a name
//! with more keeps them in one heap block of exactly their number.
//!
//! `SmallVec<[RRset; 1]>` took 40 bytes (the set and a capacity word) and a
//! node 48. Here the one-set case is the set itself, and the enum's tag lives
//! in the niche of the set's type (never 0), so a node is 40: a million-name
//! zone keeps 8 MB less. An empty node (an empty non-terminal) is an empty
//! boxed slice, which allocates nothing.

use std::ops::{Deref, DerefMut};

use super::RRset;

/// The RRsets of one [`Node`](super::Node); reads as a slice of them.
#[derive(Debug, Clone)]
pub enum RRsets {
    /// The one set of a name that has one (most).
    One(RRset),
    /// None (an empty non-terminal), or two or more.
    Many(Box<[RRset]>),
}

impl Default for RRsets {
    fn default() -> RRsets {
        RRsets::Many(Box::new([]))
    }
}

impl Deref for RRsets {
    type Target = [RRset];

    fn deref(&self) -> &[RRset] {
        match self {
            RRsets::One(set) => std::slice::from_ref(set),
            RRsets::Many(sets) => sets,
        }
    }
}

impl DerefMut for RRsets {
    fn deref_mut(&mut self) -> &mut [RRset] {
        match self {
            RRsets::One(set) => std::slice::from_mut(set),
            RRsets::Many(sets) => sets,
        }
    }
}

impl<'a> IntoIterator for &'a RRsets {
    type Item = &'a RRset;
    type IntoIter = std::slice::Iter<'a, RRset>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut RRsets {
    type Item = &'a mut RRset;
    type IntoIter = std::slice::IterMut<'a, RRset>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl From<Vec<RRset>> for RRsets {
    /// One set in place, else the sets in a block of exactly their number.
    fn from(mut sets: Vec<RRset>) -> RRsets {
        match sets.pop() {
            Some(set) if sets.is_empty() => RRsets::One(set),
            Some(set) => {
                sets.push(set);
                RRsets::Many(sets.into_boxed_slice())
            }
            None => RRsets::default(),
        }
    }
}

impl RRsets {
    /// Adds `set` after the others, for a zone's load (a name's sets are added
    /// one by one): the first stays in place, the second moves both to the
    /// heap, each one after grows the block by one. No room is kept spare.
    pub fn push(&mut self, set: RRset) {
        *self = match std::mem::take(self) {
            RRsets::Many(sets) if sets.is_empty() => RRsets::One(set),
            RRsets::One(first) => RRsets::Many(Box::new([first, set])),
            RRsets::Many(sets) => {
                let mut sets = sets.into_vec();
                sets.reserve_exact(1);
                sets.push(set);
                RRsets::Many(sets.into_boxed_slice())
            }
        };
    }

    /// Keeps the sets for which `keep` is true, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&RRset) -> bool) {
        let sets: Vec<RRset> = match std::mem::take(self) {
            RRsets::One(set) => vec![set],
            RRsets::Many(sets) => sets.into_vec(),
        };
        *self = sets
            .into_iter()
            .filter(|s| keep(s))
            .collect::<Vec<_>>()
            .into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{class, rtype};

    fn set(t: std::num::NonZeroU16, last: u8) -> RRset {
        RRset::new(t, class::IN, 300, vec![vec![192, 0, 2, last].into()])
    }

    fn types(s: &RRsets) -> Vec<u16> {
        s.iter().map(RRset::rtype).collect()
    }

    #[test]
    fn pushes_keep_one_in_place_and_more_in_a_block_of_their_number() {
        let mut s = RRsets::default();
        assert!(s.is_empty());
        assert!(matches!(&s, RRsets::Many(b) if b.is_empty()));
        s.push(set(rtype::nz::TXT, 1));
        assert!(matches!(s, RRsets::One(_)));
        s.push(set(rtype::nz::A, 2));
        assert!(matches!(&s, RRsets::Many(b) if b.len() == 2));
        s.push(set(rtype::nz::MX, 3));
        assert_eq!(types(&s), [rtype::TXT, rtype::A, rtype::MX]);
        // As a slice: sorted in place, searched, changed through &mut.
        s.sort_by_key(RRset::rtype);
        assert_eq!(types(&s), [rtype::A, rtype::MX, rtype::TXT]);
        assert_eq!(s.binary_search_by_key(&rtype::MX, RRset::rtype), Ok(1));
        for x in &mut s {
            *x = x.with_ttl(7);
        }
        assert!((&s).into_iter().all(|x| x.ttl == 7));
        assert_eq!(s.clone().len(), 3);
        // Retain: back to one in place, then to none.
        s.retain(|x| x.rtype() == rtype::MX);
        assert!(matches!(s, RRsets::One(_)));
        assert_eq!(s[0].rdatas().first(), Some(&[192, 0, 2, 3][..]));
        s.retain(|_| false);
        assert!(s.is_empty());
        assert_eq!(RRsets::from(Vec::new()).len(), 0);
    }
}
