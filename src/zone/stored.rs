//! A name as a zone stores it: the labels above the zone's origin, then the
//! origin itself, which the zone keeps once instead of after every name.
//!
//! Invariants: `head` followed by `tail` is one whole, lower-cased,
//! uncompressed wire name of at most 255 octets; `tail` is either empty (the
//! name is whole in `head`, root label included) or a whole wire name (the
//! zone's origin) and `head` is then a run of complete labels. The same name can
//! be split in different places (a zone's origin or none), so names are
//! compared by their whole bytes, never by their parts.

use super::name::{self, MAX_NAME_LEN};

/// A stored name; see the module's documentation. Copy, two slices.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredName<'a> {
    head: &'a [u8],
    tail: &'a [u8],
}

impl<'a> From<&'a [u8]> for StoredName<'a> {
    /// A whole wire name, kept whole.
    fn from(whole: &'a [u8]) -> StoredName<'a> {
        StoredName {
            head: whole,
            tail: &[],
        }
    }
}

impl<'a> StoredName<'a> {
    /// The labels `head` above `origin` (a whole wire name).
    pub(crate) fn split(head: &'a [u8], origin: &'a [u8]) -> StoredName<'a> {
        StoredName { head, tail: origin }
    }

    /// Octets of the whole wire name.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Never true for a name read from a zone (the root name is one octet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole name is `whole` (a whole wire name, lower-cased).
    #[inline]
    pub fn is(&self, whole: &[u8]) -> bool {
        whole.len() == self.len()
            && whole[..self.head.len()] == *self.head
            && whole[self.head.len()..] == *self.tail
    }

    /// The name's octets, in order.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        self.head.iter().chain(self.tail).copied()
    }

    /// Appends the whole wire name.
    pub fn write_to(&self, out: &mut impl Extend<u8>) {
        out.extend(self.bytes());
    }

    /// The whole wire name when it is stored whole (not split from an origin).
    pub fn as_whole(&self) -> Option<&'a [u8]> {
        self.tail.is_empty().then_some(self.head)
    }

    /// The whole wire name, owned.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(self.head);
        v.extend_from_slice(self.tail);
        v
    }

    /// The whole wire name: borrowed when it is stored whole, else copied into
    /// `buf` (a name is at most 255 octets, so it always fits).
    pub fn whole<'b>(&self, buf: &'b mut [u8; MAX_NAME_LEN]) -> &'b [u8]
    where
        'a: 'b,
    {
        if self.tail.is_empty() {
            return self.head;
        }
        let (h, n) = (self.head.len(), self.len());
        let Some(to) = buf.get_mut(..n) else {
            // Not a name of at most 255 octets: never made by a zone.
            return &[];
        };
        let (a, b) = to.split_at_mut(h);
        a.copy_from_slice(self.head);
        b.copy_from_slice(self.tail);
        &buf[..n]
    }

    /// The whole name, borrowed when it is stored whole.
    pub fn to_cow(&self) -> std::borrow::Cow<'a, [u8]> {
        if self.tail.is_empty() {
            std::borrow::Cow::Borrowed(self.head)
        } else {
            std::borrow::Cow::Owned(self.to_vec())
        }
    }

    /// The name in presentation format.
    pub fn to_text(&self) -> String {
        name::to_text(&self.to_vec())
    }
}

impl PartialEq for StoredName<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

impl Eq for StoredName<'_> {}

impl std::hash::Hash for StoredName<'_> {
    /// The whole name's bytes, as [`PartialEq`] compares them: a name split
    /// from one zone's origin and the same name from another hash alike.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut buf = [0u8; MAX_NAME_LEN];
        state.write(self.whole(&mut buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_name_is_its_whole_bytes() {
        let origin: &[u8] = b"\x07example\x00";
        let whole: &[u8] = b"\x03www\x07example\x00";
        let s = StoredName::split(b"\x03www", origin);
        assert_eq!(s.len(), whole.len());
        assert!(s.is(whole));
        assert_eq!(s, StoredName::from(whole));
        assert!(!s.is(b"\x03www\x07example\x03com\x00"));
        assert!(!s.is(b"\x03ww\x07example\x00"));
        assert_eq!(s.to_vec(), whole);
        let mut buf = [0u8; MAX_NAME_LEN];
        assert_eq!(s.whole(&mut buf), whole);
        let mut v = Vec::new();
        s.write_to(&mut v);
        assert_eq!(v, whole);
        assert_eq!(s.to_text(), "www.example.");
        assert_eq!(StoredName::split(b"", origin), StoredName::from(origin));
        // Split from another origin, or whole, it hashes as it compares.
        let other = StoredName::split(b"\x03www\x07example", b"\x00");
        assert_eq!(other, s);
        let state = std::collections::hash_map::RandomState::new();
        use std::hash::BuildHasher;
        assert_eq!(state.hash_one(s), state.hash_one(other));
        assert_eq!(state.hash_one(s), state.hash_one(StoredName::from(whole)));
        assert_ne!(state.hash_one(s), state.hash_one(StoredName::from(origin)));
    }
}
