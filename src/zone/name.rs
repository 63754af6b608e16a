//! Domain names as signpost stores them: uncompressed wire format, lower-cased.
//!
//! Names compare case-insensitively (RFC 4343), so the canonical form keeps every
//! ASCII letter lower-cased; the letter case a client asked with is kept by the
//! server, which copies the question from the query (RFC 4343 §4.1 and 0x20 clients).

use std::borrow::Borrow;
use std::fmt;

/// Longest name on the wire, root label included (RFC 1035 §2.3.4).
pub(crate) const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub(crate) const MAX_LABEL_LEN: usize = 63;

/// A fully qualified domain name in lower-cased, uncompressed wire format.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    wire: Box<[u8]>,
}

/// Why a name in presentation format was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in name {0:?} (two dots in a row)")]
    EmptyLabel(String),
    #[error("label longer than 63 octets in name {0:?}")]
    LabelTooLong(String),
    #[error("name {0:?} is longer than 255 octets")]
    NameTooLong(String),
    #[error("bad escape in name {0:?} (use \\DDD with DDD <= 255, or \\X)")]
    BadEscape(String),
    #[error("relative name {0:?} with no origin to complete it")]
    NoOrigin(String),
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name {
            wire: Box::new([0u8]),
        }
    }

    /// Builds a name from wire bytes that are known to be a valid uncompressed name.
    /// Letters are lower-cased. Returns `None` when the bytes are not one whole name.
    pub(crate) fn from_wire(wire: &[u8]) -> Option<Name> {
        if wire_name_len(wire)? != wire.len() {
            return None;
        }
        let mut v = wire.to_vec();
        lowercase_wire(&mut v);
        Some(Name {
            wire: v.into_boxed_slice(),
        })
    }

    /// Parses a name in presentation format (RFC 1035 §5.1). A name that does not end
    /// in a dot is relative and completed with `origin`; `@` is the origin itself.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        if text == "@" {
            return origin
                .cloned()
                .ok_or_else(|| NameError::NoOrigin(text.to_string()));
        }
        if text == "." {
            return Ok(Name::root());
        }
        if text.is_empty() {
            return Err(NameError::EmptyLabel(text.to_string()));
        }
        // Built in place on the stack, each label after a length octet that is
        // filled in when the label ends; one allocation for the finished name
        // (a zone's load parses a name or two per record). Complete labels take
        // at most 254 octets (more is an error) and the label being read at
        // most 64 before it is rejected: 320 octets always hold them.
        let bytes = text.as_bytes();
        let mut buf = [0u8; 320];
        // Octets of complete labels, and the length of the one being read
        // (its octets start at buf[len + 1]).
        let (mut len, mut label) = (0usize, 0usize);
        let mut absolute = false;
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            let octet = match c {
                b'.' => {
                    if label == 0 {
                        return Err(NameError::EmptyLabel(text.to_string()));
                    }
                    len = end_label(&mut buf, len, label, text)?;
                    label = 0;
                    if i + 1 == bytes.len() {
                        absolute = true;
                    }
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let rest = &bytes[i + 1..];
                    if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                        let v = (rest[0] - b'0') as u32 * 100
                            + (rest[1] - b'0') as u32 * 10
                            + (rest[2] - b'0') as u32;
                        if v > 255 {
                            return Err(NameError::BadEscape(text.to_string()));
                        }
                        i += 4;
                        v as u8
                    } else if let Some(&x) = rest.first() {
                        if x.is_ascii_digit() {
                            return Err(NameError::BadEscape(text.to_string()));
                        }
                        i += 2;
                        x
                    } else {
                        return Err(NameError::BadEscape(text.to_string()));
                    }
                }
                _ => {
                    i += 1;
                    c
                }
            };
            buf[len + 1 + label] = octet;
            label += 1;
            if label > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong(text.to_string()));
            }
        }
        if label > 0 {
            len = end_label(&mut buf, len, label, text)?;
        }
        if !absolute {
            let origin = origin.ok_or_else(|| NameError::NoOrigin(text.to_string()))?;
            let o = origin.wire();
            if len + o.len() > MAX_NAME_LEN {
                return Err(NameError::NameTooLong(text.to_string()));
            }
            buf[len..len + o.len()].copy_from_slice(o);
            len += o.len();
        } else {
            buf[len] = 0;
            len += 1;
        }
        if len > MAX_NAME_LEN {
            return Err(NameError::NameTooLong(text.to_string()));
        }
        let wire = &mut buf[..len];
        lowercase_wire(wire);
        Ok(Name {
            wire: Box::from(&*wire),
        })
    }

    /// The name in wire format, root label included.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub(crate) fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// Number of labels, not counting the root.
    #[cfg(test)]
    pub(crate) fn label_count(&self) -> usize {
        label_offsets(&self.wire).count()
    }

    /// The labels from the leftmost to the rightmost, root excluded.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        label_offsets(&self.wire).map(move |o| {
            let len = self.wire[o] as usize;
            &self.wire[o + 1..o + 1 + len]
        })
    }

    /// The name without its leftmost label; `None` at the root.
    pub fn parent(&self) -> Option<Name> {
        if self.is_root() {
            return None;
        }
        let skip = self.wire[0] as usize + 1;
        Some(Name {
            wire: self.wire[skip..].into(),
        })
    }

    /// True when `self` is `other` or below it.
    pub(crate) fn is_subdomain_of(&self, other: &Name) -> bool {
        is_wire_subdomain(&self.wire, &other.wire)
    }

    /// Every ancestor from `self` up to and including `stop`, deepest first.
    /// Empty when `self` is not at or below `stop`.
    pub(crate) fn ancestors_to(&self, stop: &Name) -> Vec<Name> {
        let mut out = Vec::new();
        if !self.is_subdomain_of(stop) {
            return out;
        }
        let mut cur = self.clone();
        loop {
            let done = cur == *stop;
            out.push(cur.clone());
            if done {
                break;
            }
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        out
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        &self.wire
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(&self.wire, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// An uncompressed wire name in presentation format, as [`write_presentation`]
/// writes it.
pub(crate) fn to_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let _ = write_presentation(wire, &mut s);
    s
}

/// Writes an uncompressed wire name in presentation format, escaping as RFC 1035 §5.1.
pub(crate) fn write_presentation(wire: &[u8], f: &mut impl fmt::Write) -> fmt::Result {
    if wire.len() <= 1 {
        return f.write_char('.');
    }
    for o in label_offsets(wire) {
        let len = wire[o] as usize;
        for &b in &wire[o + 1..o + 1 + len] {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

/// Closes the label of `label` octets read after `buf[len]` (see
/// [`Name::parse`]): writes its length octet, and returns the new length of
/// the complete labels, which must leave room for the root.
fn end_label(buf: &mut [u8], len: usize, label: usize, text: &str) -> Result<usize, NameError> {
    if label > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(text.to_string()));
    }
    buf[len] = label as u8;
    let len = len + 1 + label;
    if len >= MAX_NAME_LEN {
        return Err(NameError::NameTooLong(text.to_string()));
    }
    Ok(len)
}

/// The nearest of `wire`'s ancestors (its parent first, up to the child of the
/// root), or `wire` itself before them with `itself`, for which `is` holds:
/// the cut a name is at or below, say.
pub(crate) fn nearest_ancestor(
    wire: &[u8],
    itself: bool,
    mut is: impl FnMut(&[u8]) -> bool,
) -> Option<&[u8]> {
    label_offsets(wire)
        .skip(usize::from(!itself))
        .map(|o| &wire[o..])
        .find(|a| is(a))
}

/// Lower-cases the ASCII letters of an uncompressed wire name in place.
/// Length octets are below 64 and never letters, so the whole slice can be folded.
pub(crate) fn lowercase_wire(wire: &mut [u8]) {
    wire.make_ascii_lowercase();
}

/// Length of the uncompressed wire name at the start of `buf`, root included;
/// `None` when it is not a well-formed uncompressed name within 255 octets.
pub(crate) fn wire_name_len(buf: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    loop {
        let len = *buf.get(pos)? as usize;
        if len == 0 {
            return Some(pos + 1);
        }
        if len > MAX_LABEL_LEN {
            return None;
        }
        pos += len + 1;
        if pos >= MAX_NAME_LEN {
            return None;
        }
    }
}

/// Offsets of the length octet of each label, root excluded.
pub(crate) fn label_offsets(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let len = *wire.get(pos)? as usize;
        if len == 0 {
            return None;
        }
        let here = pos;
        pos += len + 1;
        Some(here)
    })
}

/// True when wire name `a` equals `b` or lies below it. Both lower-cased.
pub(crate) fn is_wire_subdomain(a: &[u8], b: &[u8]) -> bool {
    if b.len() > a.len() {
        return false;
    }
    let start = a.len() - b.len();
    if a[start..] != *b {
        return false;
    }
    // The match must begin on a label boundary of `a` (the root is a boundary).
    start == 0 || b.len() == 1 || label_offsets(a).any(|o| o == start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_ancestor_is_the_closest_match_and_itself_only_when_asked() {
        let w = |t: &str| Name::parse(t, None).expect("a name").wire().to_vec();
        let (name, cut, apex) = (w("a.b.sub.example."), w("sub.example."), w("example."));
        let is = |a: &[u8]| a == cut.as_slice() || a == apex.as_slice();
        assert_eq!(nearest_ancestor(&name, false, is), Some(&cut[..]));
        assert_eq!(nearest_ancestor(&cut, false, is), Some(&apex[..]));
        assert_eq!(nearest_ancestor(&cut, true, is), Some(&cut[..]));
        assert_eq!(nearest_ancestor(&apex, false, is), None);
        assert_eq!(
            nearest_ancestor(&[0], true, |_| true),
            None,
            "the root has no labels"
        );
    }

    #[test]
    fn wire_name_len_is_the_name_with_its_root_label() {
        // www.example. A IN, as it follows the header of a query
        let q = b"\x03www\x07example\x00\x00\x01\x00\x01";
        assert_eq!(wire_name_len(q), Some(13));
        assert_eq!(wire_name_len(b"\x00\x00\x01"), Some(1), "the root");
        // cut short: in a label, or before the root label
        assert_eq!(wire_name_len(b"\x03ww"), None);
        assert_eq!(wire_name_len(b"\x03www"), None);
        assert_eq!(wire_name_len(b""), None);
        // a compression pointer or a reserved label type
        assert_eq!(wire_name_len(b"\x03www\xc0\x0c"), None);
        assert_eq!(wire_name_len(b"\x40abc\x00"), None);
        // 255 bytes in all at most (RFC 1035 section 3.1)
        let mut long = Vec::new();
        for _ in 0..4 {
            long.push(62u8);
            long.extend([b'a'; 62]);
        }
        long.push(0);
        assert_eq!(long.len(), 253);
        assert_eq!(wire_name_len(&long), Some(253));
        let mut at_limit = long[..252].to_vec();
        at_limit.extend([1, b'b', 0]);
        assert_eq!(at_limit.len(), 255);
        assert_eq!(wire_name_len(&at_limit), Some(255));
        let mut over = long[..252].to_vec();
        over.extend([2, b'b', b'c', 0]);
        assert_eq!(wire_name_len(&over), None);
    }

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        let name = n("WWW.Example.COM.");
        assert_eq!(name.to_string(), "www.example.com.");
        assert_eq!(name.wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(name.label_count(), 3);
    }

    #[test]
    fn relative_names_use_origin() {
        let origin = n("example.com.");
        assert_eq!(
            Name::parse("www", Some(&origin)).unwrap(),
            n("www.example.com.")
        );
        assert_eq!(Name::parse("@", Some(&origin)).unwrap(), origin);
        assert!(matches!(
            Name::parse("www", None),
            Err(NameError::NoOrigin(_))
        ));
    }

    #[test]
    fn escapes() {
        let name = n("a\\.b.c\\032d.");
        assert_eq!(name.wire(), b"\x03a.b\x03c d\x00");
        assert_eq!(name.to_string(), "a\\.b.c\\032d.");
        assert!(matches!(
            Name::parse("a\\256.", None),
            Err(NameError::BadEscape(_))
        ));
    }

    #[test]
    fn limits() {
        let long = "a".repeat(64);
        assert!(matches!(
            Name::parse(&format!("{long}."), None),
            Err(NameError::LabelTooLong(_))
        ));
        let many = "abcdefghi.".repeat(26);
        assert!(matches!(
            Name::parse(&many, None),
            Err(NameError::NameTooLong(_))
        ));
        assert!(matches!(
            Name::parse("a..b.", None),
            Err(NameError::EmptyLabel(_))
        ));
    }

    #[test]
    fn subdomain_on_label_boundary() {
        assert!(n("www.example.com.").is_subdomain_of(&n("example.com.")));
        assert!(n("example.com.").is_subdomain_of(&n("example.com.")));
        assert!(!n("wwwexample.com.").is_subdomain_of(&n("example.com.")));
        assert!(!n("xample.com.").is_subdomain_of(&n("example.com.")));
        assert!(n("a.b.").is_subdomain_of(&Name::root()));
    }

    #[test]
    fn ancestors() {
        let a = n("a.b.example.com.").ancestors_to(&n("example.com."));
        let s: Vec<String> = a.iter().map(|x| x.to_string()).collect();
        assert_eq!(s, ["a.b.example.com.", "b.example.com.", "example.com."]);
        assert!(n("x.org.").ancestors_to(&n("example.com.")).is_empty());
    }
}
