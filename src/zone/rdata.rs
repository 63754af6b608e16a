//! Record data (RDATA) both ways: presentation format as written in master files
//! (RFC 1035 §5.1 and each type's own RFC) to uncompressed wire format, and back.
//!
//! Every type with a presentation format here is described once, as a list of slots
//! (a 16-bit number, a domain name, a character-string, hex filling the rest, ...).
//! That one table drives parsing fields, decoding wire RDATA and formatting it, so the
//! three cannot disagree about a type's layout. Any type at all, known or not, can
//! also be written in the generic form of RFC 3597 §5: `\# <length> <hex>`.
//!
//! Names inside RDATA are stored uncompressed and lower-cased: RFC 3597 §4 forbids
//! compressing names in new types, and signpost builds answers from these bytes as
//! they are.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::ttl::parse_ttl;
use crate::zone::name::{wire_name_len, Name};

/// Most octets RDATA can hold: RDLENGTH is 16 bits (RFC 1035 §3.2.1).
pub(crate) const MAX_RDATA_LEN: usize = 65535;
/// Longest character-string: its length is one octet (RFC 1035 §3.3).
const MAX_STRING_LEN: usize = 255;

/// Type codes this module gives a presentation format to (IANA "Resource Record
/// (RR) TYPEs" registry).
use super::rtype as t;

/// One whitespace-separated field of a master file, as the tokenizer in
/// `master.rs` found it (RFC 1035 §5.1).
///
/// `text` is the field as written, surrounding quotes removed but every backslash
/// escape kept: domain names go to [`Name::parse`], which reads `\DDD` and `\X`
/// itself and must still tell an escaped `\.` from a label separator, while
/// character-strings are decoded into bytes here (see [`decode_escapes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    /// A slice of the text the field was read from, as written.
    pub text: &'a str,
    /// Written between double quotes. Quoting only lets a field hold spaces and
    /// `;()`; it does not change what the text means, except that a quoted `\#` is
    /// not the RFC 3597 generic marker.
    pub quoted: bool,
}

impl<'a> Field<'a> {
    pub fn new(text: &'a str, quoted: bool) -> Field<'a> {
        Field { text, quoted }
    }

    /// The unquoted `\#` that starts generic RDATA (RFC 3597 §5).
    fn is_generic_marker(&self) -> bool {
        !self.quoted && self.text == "\\#"
    }
}

/// Why RDATA in presentation format was rejected. Each message names the record
/// type, what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RdataError {
    /// A field is there but does not hold what its position needs.
    #[error("{rtype} record needs {expected}, found {found:?}{detail}")]
    Invalid {
        rtype: String,
        expected: String,
        found: String,
        /// Empty, or ": " and more about what is wrong.
        detail: String,
    },
    /// The fields ran out.
    #[error("{rtype} record needs {expected}, but the record ends before it")]
    Missing { rtype: String, expected: String },
    /// More fields than the type takes.
    #[error("{rtype} record has an extra field {found:?}; it takes {fields}")]
    Extra {
        rtype: String,
        found: String,
        fields: String,
    },
    #[error(
        "{rtype} record has a character-string of {len} bytes, but one holds at most 255 \
         (RFC 1035 §3.3); split the text into several quoted strings like \"first part\" \"second part\""
    )]
    StringTooLong { rtype: String, len: usize },
    #[error(
        "{rtype} record data would be {len} bytes, but RDATA holds at most 65535 (RFC 1035 §3.2.1)"
    )]
    TooLong { rtype: String, len: usize },
    #[error(
        "{rtype} records have no presentation format in signpost; give the data in \
         RFC 3597 generic form \\# <length> <hex>, like \\# 4 c0000201"
    )]
    NoPresentation { rtype: String },
    #[error(
        "{rtype} record in generic form: {problem}; the form is \\# <length> <hex>, \
         like \\# 4 c0000201 (RFC 3597 §5)"
    )]
    Generic { rtype: String, problem: String },
    /// Fields that are each well-formed but do not fit together.
    #[error("{rtype} record: {problem}")]
    Inconsistent { rtype: String, problem: String },
}

// ---------------------------------------------------------------------------
// Mnemonics

/// Class mnemonics (RFC 1035 §3.2.4, RFC 2136 §1.2).
const CLASS_NAMES: &[(u16, &str)] = &[(1, "IN"), (3, "CH"), (4, "HS"), (254, "NONE"), (255, "ANY")];

/// Mnemonic for a class code, `CLASSnnn` when it has none (RFC 3597 §5).
pub(crate) fn class_mnemonic(c: u16) -> String {
    match CLASS_NAMES.iter().find(|(code, _)| *code == c) {
        Some((_, name)) => (*name).to_string(),
        None => format!("CLASS{c}"),
    }
}

/// Class code for a mnemonic, case-insensitively; `CLASSnnn` works for any code.
pub(crate) fn class_from_mnemonic(s: &str) -> Option<u16> {
    if let Some(&(code, _)) = CLASS_NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)) {
        return Some(code);
    }
    let digits = strip_prefix_ignore_case(s, "CLASS")?;
    parse_decimal(digits, u32::from(u16::MAX)).and_then(|v| u16::try_from(v).ok())
}

/// DNSSEC algorithm mnemonics (RFC 4034 Appendix A.1 and the IANA registry), which
/// BIND and others accept in DS and DNSKEY records in place of the number.
const ALGORITHM_NAMES: &[(u8, &str)] = &[
    (1, "RSAMD5"),
    (2, "DH"),
    (3, "DSA"),
    (5, "RSASHA1"),
    (6, "DSA-NSEC3-SHA1"),
    (7, "RSASHA1-NSEC3-SHA1"),
    (8, "RSASHA256"),
    (10, "RSASHA512"),
    (12, "ECC-GOST"),
    (13, "ECDSAP256SHA256"),
    (14, "ECDSAP384SHA384"),
    (15, "ED25519"),
    (16, "ED448"),
    (252, "INDIRECT"),
    (253, "PRIVATEDNS"),
    (254, "PRIVATEOID"),
];

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// A plain decimal number no larger than `max`. Unlike `str::parse` this refuses a
/// sign, so "+5" is not a number in a zone file.
fn parse_decimal(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(max) {
            return None;
        }
    }
    u32::try_from(v).ok()
}

// ---------------------------------------------------------------------------
// Type layouts

/// What one slot of a type's RDATA holds, and so how it is parsed, stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    U8,
    U16,
    U32,
    /// A 32-bit number of seconds that may also be written with BIND units like
    /// 1h30m (the SOA timers).
    Timer,
    /// A DNSSEC algorithm: a number, or a mnemonic from [`ALGORITHM_NAMES`].
    Algorithm,
    Ipv4,
    Ipv6,
    Name,
    /// One character-string: a length octet then at most 255 bytes (RFC 1035 §3.3).
    Str,
    /// One or more character-strings filling the rest of the RDATA (TXT).
    Strings,
    /// Bytes filling the rest, shown in hex, which may be split over several fields.
    Hex,
    /// Bytes filling the rest, shown in base64, which may be split over several fields.
    Base64,
    /// CAA tag: a length octet then letters and digits (RFC 8659 §4.1).
    CaaTag,
    /// CAA value: the rest of the RDATA with no length octet, shown as one
    /// character-string that may be longer than 255 bytes (RFC 8659 §4.1.1).
    CaaValue,
}

/// One slot of a type's RDATA.
struct Slot {
    /// Short name, as listed when a record has too many fields.
    name: &'static str,
    kind: Kind,
    /// What a valid field looks like, for error messages.
    expect: &'static str,
}

const fn slot(name: &'static str, kind: Kind, expect: &'static str) -> Slot {
    Slot { name, kind, expect }
}

const ALGORITHM_EXPECT: &str =
    "an algorithm number from 0 to 255 or a mnemonic like ECDSAP256SHA256";

// RFC 1035 §3.4.1
static A_SLOTS: &[Slot] = &[slot(
    "address",
    Kind::Ipv4,
    "an IPv4 address like 192.0.2.1",
)];
// RFC 3596 §2.2
static AAAA_SLOTS: &[Slot] = &[slot(
    "address",
    Kind::Ipv6,
    "an IPv6 address like 2001:db8::1",
)];
// RFC 1035 §3.3.11
static NS_SLOTS: &[Slot] = &[slot(
    "nsdname",
    Kind::Name,
    "a name server name like ns1.example.com.",
)];
// RFC 1035 §3.3.1
static CNAME_SLOTS: &[Slot] = &[slot(
    "cname",
    Kind::Name,
    "a canonical name like www.example.com.",
)];
// RFC 1035 §3.3.12
static PTR_SLOTS: &[Slot] = &[slot(
    "ptrdname",
    Kind::Name,
    "a domain name like host.example.com.",
)];
// RFC 6672 §2.1
static DNAME_SLOTS: &[Slot] = &[slot(
    "target",
    Kind::Name,
    "a target domain like example.net.",
)];
// RFC 1035 §3.3.13
static SOA_SLOTS: &[Slot] = &[
    slot(
        "mname",
        Kind::Name,
        "the primary name server (MNAME) like ns1.example.com.",
    ),
    slot(
        "rname",
        Kind::Name,
        "the responsible mailbox (RNAME) like hostmaster.example.com.",
    ),
    slot("serial", Kind::U32, "a serial number from 0 to 4294967295"),
    slot("refresh", Kind::Timer, "a refresh time like 3600 or 1h"),
    slot("retry", Kind::Timer, "a retry time like 900 or 15m"),
    slot("expire", Kind::Timer, "an expire time like 1209600 or 2w"),
    slot(
        "minimum",
        Kind::Timer,
        "a minimum (negative caching) TTL like 300 or 5m",
    ),
];
// RFC 1035 §3.3.9
static MX_SLOTS: &[Slot] = &[
    slot("preference", Kind::U16, "a preference from 0 to 65535"),
    slot(
        "exchange",
        Kind::Name,
        "a mail exchanger name like mail.example.com.",
    ),
];
// RFC 1035 §3.3.14; SPF has the same format (RFC 7208 §3.1)
static TXT_SLOTS: &[Slot] = &[slot(
    "text",
    Kind::Strings,
    "one or more character-strings like \"v=spf1 -all\"",
)];
// RFC 2782
static SRV_SLOTS: &[Slot] = &[
    slot("priority", Kind::U16, "a priority from 0 to 65535"),
    slot("weight", Kind::U16, "a weight from 0 to 65535"),
    slot("port", Kind::U16, "a port from 0 to 65535"),
    slot(
        "target",
        Kind::Name,
        "a target host like sip.example.com. (or . for no service)",
    ),
];
// RFC 8659 §4.1
static CAA_SLOTS: &[Slot] = &[
    slot(
        "flags",
        Kind::U8,
        "flags from 0 to 255 (usually 0, or 128 for critical)",
    ),
    slot(
        "tag",
        Kind::CaaTag,
        "a property tag of letters and digits like issue, issuewild or iodef",
    ),
    slot(
        "value",
        Kind::CaaValue,
        "one property value like \"ca.example.net\"",
    ),
];
// RFC 4034 §5.3; CDS has the same format (RFC 7344 §3.1)
static DS_SLOTS: &[Slot] = &[
    slot("keytag", Kind::U16, "a key tag from 0 to 65535"),
    slot("algorithm", Kind::Algorithm, ALGORITHM_EXPECT),
    slot(
        "digesttype",
        Kind::U8,
        "a digest type from 0 to 255 (2 is SHA-256)",
    ),
    slot("digest", Kind::Hex, "the digest in hex"),
];
// RFC 4034 §2.2; CDNSKEY has the same format (RFC 7344 §3.2)
static DNSKEY_SLOTS: &[Slot] = &[
    slot(
        "flags",
        Kind::U16,
        "flags from 0 to 65535 (256 for a ZSK, 257 for a KSK)",
    ),
    slot("protocol", Kind::U8, "protocol 3"),
    slot("algorithm", Kind::Algorithm, ALGORITHM_EXPECT),
    slot("publickey", Kind::Base64, "the public key in base64"),
];
// RFC 6698 §2.2; SMIMEA has the same format (RFC 8162 §2)
static TLSA_SLOTS: &[Slot] = &[
    slot("usage", Kind::U8, "a certificate usage from 0 to 255"),
    slot("selector", Kind::U8, "a selector from 0 to 255"),
    slot("matchingtype", Kind::U8, "a matching type from 0 to 255"),
    slot("data", Kind::Hex, "certificate association data in hex"),
];
// RFC 4255 §3.2
static SSHFP_SLOTS: &[Slot] = &[
    slot("algorithm", Kind::U8, "an algorithm number from 0 to 255"),
    slot("fptype", Kind::U8, "a fingerprint type from 0 to 255"),
    slot("fingerprint", Kind::Hex, "the fingerprint in hex"),
];
// RFC 1035 §3.3.2
static HINFO_SLOTS: &[Slot] = &[
    slot(
        "cpu",
        Kind::Str,
        "a CPU type as a character-string like \"x86_64\"",
    ),
    slot(
        "os",
        Kind::Str,
        "an OS type as a character-string like \"Linux\"",
    ),
];
// RFC 3403 §4
static NAPTR_SLOTS: &[Slot] = &[
    slot("order", Kind::U16, "an order from 0 to 65535"),
    slot("preference", Kind::U16, "a preference from 0 to 65535"),
    slot(
        "flags",
        Kind::Str,
        "flags as a character-string like \"U\" (or \"\")",
    ),
    slot(
        "services",
        Kind::Str,
        "services as a character-string like \"E2U+sip\"",
    ),
    slot(
        "regexp",
        Kind::Str,
        "a regular expression as a character-string (or \"\")",
    ),
    slot(
        "replacement",
        Kind::Name,
        "a replacement name (or . for none)",
    ),
];

/// The layout of a type that has a presentation format here.
fn schema(rtype: u16) -> Option<&'static [Slot]> {
    Some(match rtype {
        t::A => A_SLOTS,
        t::AAAA => AAAA_SLOTS,
        t::NS => NS_SLOTS,
        t::CNAME => CNAME_SLOTS,
        t::PTR => PTR_SLOTS,
        t::DNAME => DNAME_SLOTS,
        t::SOA => SOA_SLOTS,
        t::MX => MX_SLOTS,
        t::TXT | t::SPF => TXT_SLOTS,
        t::SRV => SRV_SLOTS,
        t::CAA => CAA_SLOTS,
        t::DS | t::CDS => DS_SLOTS,
        t::DNSKEY | t::CDNSKEY => DNSKEY_SLOTS,
        t::TLSA | t::SMIMEA => TLSA_SLOTS,
        t::SSHFP => SSHFP_SLOTS,
        t::HINFO => HINFO_SLOTS,
        t::NAPTR => NAPTR_SLOTS,
        _ => return None,
    })
}

/// The value of one slot. Each variant knows its own wire encoding, so encoding
/// needs no layout; formatting looks at the slot's [`Kind`] only to choose between
/// hex and base64, or a quoted and a bare string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    U8(u8),
    U16(u16),
    U32(u32),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    Name(Name),
    /// Encoded with a length octet in front.
    CharStr(Vec<u8>),
    /// Several, each with a length octet in front.
    CharStrs(Vec<Vec<u8>>),
    /// Encoded as they are, filling the rest of the RDATA.
    Raw(Vec<u8>),
}

// ---------------------------------------------------------------------------
// Presentation -> wire

/// Parses the RDATA fields of one record into wire format. Relative names are
/// completed with `origin`.
pub(crate) fn parse_rdata(
    rtype: u16,
    fields: &[Field<'_>],
    origin: &Name,
) -> Result<Vec<u8>, RdataError> {
    // Named in errors only: no allocation for a type of the registry.
    let tname = t::name_cow(rtype);
    if let Some((first, rest)) = fields.split_first() {
        if first.is_generic_marker() {
            let wire = parse_generic(&tname, rest)?;
            let Some(slots) = schema(rtype) else {
                return Ok(wire);
            };
            // RFC 3597 §5: a known type in generic form is still that type, and must
            // be valid as one. Re-encoding also lower-cases the names inside.
            let items = decode_items(slots, &wire).ok_or_else(|| RdataError::Generic {
                rtype: tname.to_string(),
                problem: format!("the data is not a valid {tname} record"),
            })?;
            validate(rtype, &tname, &items)?;
            return encode(&tname, &items);
        }
    }
    let slots = schema(rtype).ok_or_else(|| RdataError::NoPresentation {
        rtype: tname.to_string(),
    })?;
    let mut reader = Reader {
        tname: &tname,
        fields,
        pos: 0,
    };
    let mut items = Vec::with_capacity(slots.len());
    for slot in slots {
        items.push(parse_slot(&mut reader, slot, origin)?);
    }
    if let Some(extra) = fields.get(reader.pos) {
        let names: Vec<&str> = slots.iter().map(|s| s.name).collect();
        let count = match slots.len() {
            1 => "1 field".to_string(),
            n => format!("{n} fields"),
        };
        return Err(RdataError::Extra {
            rtype: tname.to_string(),
            found: extra.text.to_string(),
            fields: format!("{count}: {}", names.join(" ")),
        });
    }
    validate(rtype, &tname, &items)?;
    encode(&tname, &items)
}

/// Hands out the fields of one record in order.
struct Reader<'a> {
    tname: &'a str,
    fields: &'a [Field<'a>],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self, slot: &Slot) -> Result<&'a Field<'a>, RdataError> {
        let f = self
            .fields
            .get(self.pos)
            .ok_or_else(|| self.missing(slot))?;
        self.pos += 1;
        Ok(f)
    }

    /// Every field left, at least one.
    fn rest(&mut self, slot: &Slot) -> Result<&'a [Field<'a>], RdataError> {
        let rest = self.fields.get(self.pos..).unwrap_or_default();
        if rest.is_empty() {
            return Err(self.missing(slot));
        }
        self.pos = self.fields.len();
        Ok(rest)
    }

    fn missing(&self, slot: &Slot) -> RdataError {
        RdataError::Missing {
            rtype: self.tname.to_string(),
            expected: slot.expect.to_string(),
        }
    }

    fn invalid(&self, slot: &Slot, found: &str, detail: &str) -> RdataError {
        RdataError::Invalid {
            rtype: self.tname.to_string(),
            expected: slot.expect.to_string(),
            found: found.to_string(),
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        }
    }
}

const BAD_ESCAPE: &str =
    "bad escape; use \\DDD with DDD from 000 to 255, or \\ before one character";

fn parse_slot(r: &mut Reader<'_>, slot: &Slot, origin: &Name) -> Result<Item, RdataError> {
    let number = |r: &mut Reader<'_>, max: u32| -> Result<u32, RdataError> {
        let f = r.next(slot)?;
        parse_decimal(f.text, max).ok_or_else(|| r.invalid(slot, f.text, ""))
    };
    Ok(match slot.kind {
        Kind::U8 => Item::U8(to_u8(number(r, 255)?)),
        Kind::U16 => Item::U16(to_u16(number(r, 65535)?)),
        Kind::U32 => Item::U32(number(r, u32::MAX)?),
        Kind::Timer => {
            let f = r.next(slot)?;
            // A plain number may use all 32 bits, as on the wire; with units the TTL
            // rules apply (RFC 2181 §8), which is all any sane timer needs.
            match parse_decimal(f.text, u32::MAX) {
                Some(v) => Item::U32(v),
                None => Item::U32(parse_ttl(f.text).map_err(|e| r.invalid(slot, f.text, &e.0))?),
            }
        }
        Kind::Algorithm => {
            let f = r.next(slot)?;
            let by_name = || {
                ALGORITHM_NAMES
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(f.text))
                    .map(|&(code, _)| code)
            };
            match parse_decimal(f.text, 255) {
                Some(v) => Item::U8(to_u8(v)),
                None => Item::U8(by_name().ok_or_else(|| r.invalid(slot, f.text, ""))?),
            }
        }
        Kind::Ipv4 => {
            let f = r.next(slot)?;
            Item::V4(f.text.parse().map_err(|_| r.invalid(slot, f.text, ""))?)
        }
        Kind::Ipv6 => {
            let f = r.next(slot)?;
            Item::V6(f.text.parse().map_err(|_| r.invalid(slot, f.text, ""))?)
        }
        Kind::Name => {
            let f = r.next(slot)?;
            // An empty quoted field is no name, though Name::parse would take "" as
            // the origin.
            if f.text.is_empty() {
                return Err(r.invalid(slot, f.text, "a name cannot be empty"));
            }
            let name = Name::parse(f.text, Some(origin))
                .map_err(|e| r.invalid(slot, f.text, &e.to_string()))?;
            Item::Name(name)
        }
        Kind::Str => {
            let f = r.next(slot)?;
            Item::CharStr(character_string(r, slot, f)?)
        }
        Kind::Strings => {
            let mut strings = Vec::new();
            for f in r.rest(slot)? {
                strings.push(character_string(r, slot, f)?);
            }
            Item::CharStrs(strings)
        }
        Kind::Hex => {
            let joined: String = r.rest(slot)?.iter().map(|f| f.text).collect();
            match decode_hex(&joined) {
                Some(bytes) if !bytes.is_empty() => Item::Raw(bytes),
                _ => {
                    return Err(r.invalid(
                        slot,
                        &joined,
                        "hex digits 0-9 and a-f are needed, two for each byte",
                    ))
                }
            }
        }
        Kind::Base64 => {
            // Keys are often split over lines inside parentheses; the pieces join up
            // into one base64 text (RFC 4034 §2.2).
            let joined: String = r.rest(slot)?.iter().map(|f| f.text).collect();
            match BASE64.decode(joined.as_bytes()) {
                Ok(bytes) if !bytes.is_empty() => Item::Raw(bytes),
                Ok(_) => return Err(r.invalid(slot, &joined, "the key is empty")),
                Err(e) => return Err(r.invalid(slot, &joined, &e.to_string())),
            }
        }
        Kind::CaaTag => {
            let f = r.next(slot)?;
            let tag = f.text.as_bytes();
            if tag.is_empty()
                || tag.len() > MAX_STRING_LEN
                || !tag.iter().all(u8::is_ascii_alphanumeric)
            {
                return Err(r.invalid(slot, f.text, ""));
            }
            Item::CharStr(tag.to_vec())
        }
        Kind::CaaValue => {
            let f = r.next(slot)?;
            Item::Raw(decode_escapes(f.text).ok_or_else(|| r.invalid(slot, f.text, BAD_ESCAPE))?)
        }
    })
}

/// A character-string field decoded and checked against the 255-byte limit.
fn character_string(r: &Reader<'_>, slot: &Slot, f: &Field<'_>) -> Result<Vec<u8>, RdataError> {
    let bytes = decode_escapes(f.text).ok_or_else(|| r.invalid(slot, f.text, BAD_ESCAPE))?;
    if bytes.len() > MAX_STRING_LEN {
        // Splitting silently would change what the record says (a DKIM key split
        // in the wrong place, say), so the author must choose where.
        return Err(RdataError::StringTooLong {
            rtype: r.tname.to_string(),
            len: bytes.len(),
        });
    }
    Ok(bytes)
}

fn to_u8(v: u32) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn to_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// Decodes the escapes of a character-string (RFC 1035 §5.1): `\DDD` is the byte
/// with decimal value DDD, `\X` is X itself. `None` for a `\DDD` above 255, a
/// backslash before fewer than three digits, or a backslash at the end.
pub(crate) fn decode_escapes(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        match b.get(i + 1..) {
            Some([d0, d1, d2, ..])
                if d0.is_ascii_digit() && d1.is_ascii_digit() && d2.is_ascii_digit() =>
            {
                let v =
                    u32::from(d0 - b'0') * 100 + u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0');
                out.push(u8::try_from(v).ok()?);
                i += 4;
            }
            Some([x, ..]) if !x.is_ascii_digit() => {
                // A multi-byte character after the backslash: its first byte here,
                // the rest as ordinary bytes on the next turns.
                out.push(*x);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Hex digits to bytes; `None` for an odd count or a non-hex character.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

/// `\# <length> <hex>...` after the `\#` (RFC 3597 §5).
fn parse_generic(tname: &str, fields: &[Field<'_>]) -> Result<Vec<u8>, RdataError> {
    let problem = |p: String| RdataError::Generic {
        rtype: tname.to_string(),
        problem: p,
    };
    let Some((len_field, hex)) = fields.split_first() else {
        return Err(problem("the length is missing".to_string()));
    };
    let len = parse_decimal(len_field.text, 65535).ok_or_else(|| {
        problem(format!(
            "the length must be a number from 0 to 65535, found {:?}",
            len_field.text
        ))
    })?;
    // The hex may be split into several fields, at any even or odd place.
    let joined: String = hex.iter().map(|f| f.text).collect();
    let data = decode_hex(&joined).ok_or_else(|| {
        problem(format!(
            "the data must be hex digits, two for each byte, found {joined:?}"
        ))
    })?;
    if data.len() != len as usize {
        return Err(problem(format!(
            "the length says {len} bytes but the hex holds {}",
            data.len()
        )));
    }
    Ok(data)
}

/// Checks that span several slots, or that no single field can see.
fn validate(rtype: u16, tname: &str, items: &[Item]) -> Result<(), RdataError> {
    let fail = |problem: String| -> Result<(), RdataError> {
        Err(RdataError::Inconsistent {
            rtype: tname.to_string(),
            problem,
        })
    };
    // (label, byte count) for hash lengths fixed by the registries, so that a digest
    // cut short by a bad paste is caught here and not by a validating resolver.
    let hash_len = |what: &str, code: u8, len: usize, table: &[(u8, &str, usize)]| match table
        .iter()
        .find(|(c, _, _)| *c == code)
    {
        Some(&(_, alg, want)) if want != len => fail(format!(
            "{what} {code} ({alg}) needs {want} bytes ({} hex digits), found {len} bytes",
            want * 2
        )),
        _ => Ok(()),
    };
    match (rtype, items) {
        // RFC 4034 §5.1.3 and the IANA "Digest Algorithms" registry.
        (t::DS | t::CDS, [_, _, Item::U8(dt), Item::Raw(d)]) => hash_len(
            "digest type",
            *dt,
            d.len(),
            &[
                (1, "SHA-1", 20),
                (2, "SHA-256", 32),
                (3, "GOST R 34.11-94", 32),
                (4, "SHA-384", 48),
            ],
        ),
        // RFC 4034 §2.1.2: any other protocol value makes the key invalid.
        (t::DNSKEY | t::CDNSKEY, [_, Item::U8(p), _, _]) if *p != 3 => {
            fail(format!("protocol must be 3 (RFC 4034 §2.1.2), found {p}"))
        }
        // RFC 6698 §2.1.3.
        (t::TLSA | t::SMIMEA, [_, _, Item::U8(mt), Item::Raw(d)]) => hash_len(
            "matching type",
            *mt,
            d.len(),
            &[(1, "SHA-256", 32), (2, "SHA-512", 64)],
        ),
        // RFC 4255 §3.1.2 and RFC 6594 §3.
        (t::SSHFP, [_, Item::U8(ft), Item::Raw(d)]) => hash_len(
            "fingerprint type",
            *ft,
            d.len(),
            &[(1, "SHA-1", 20), (2, "SHA-256", 32)],
        ),
        _ => Ok(()),
    }
}

fn encode(tname: &str, items: &[Item]) -> Result<Vec<u8>, RdataError> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::U8(v) => out.push(*v),
            Item::U16(v) => out.extend_from_slice(&v.to_be_bytes()),
            Item::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
            Item::V4(a) => out.extend_from_slice(&a.octets()),
            Item::V6(a) => out.extend_from_slice(&a.octets()),
            Item::Name(n) => out.extend_from_slice(n.wire()),
            Item::CharStr(s) => push_char_string(&mut out, s),
            Item::CharStrs(list) => list.iter().for_each(|s| push_char_string(&mut out, s)),
            Item::Raw(bytes) => out.extend_from_slice(bytes),
        }
    }
    if out.len() > MAX_RDATA_LEN {
        return Err(RdataError::TooLong {
            rtype: tname.to_string(),
            len: out.len(),
        });
    }
    Ok(out)
}

/// Strings reaching here were checked to be at most 255 bytes long.
fn push_char_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(s);
}

// ---------------------------------------------------------------------------
// Wire -> presentation

/// Splits wire RDATA along a type's layout; `None` unless it is exactly one
/// well-formed record of that layout.
fn decode_items(slots: &[Slot], wire: &[u8]) -> Option<Vec<Item>> {
    let mut r = WireReader { wire, pos: 0 };
    let mut items = Vec::with_capacity(slots.len());
    for slot in slots {
        let item = match slot.kind {
            Kind::U8 | Kind::Algorithm => Item::U8(r.u8()?),
            Kind::U16 => Item::U16(u16::from_be_bytes(r.take(2)?.try_into().ok()?)),
            Kind::U32 | Kind::Timer => Item::U32(u32::from_be_bytes(r.take(4)?.try_into().ok()?)),
            Kind::Ipv4 => Item::V4(<[u8; 4]>::try_from(r.take(4)?).ok()?.into()),
            Kind::Ipv6 => Item::V6(<[u8; 16]>::try_from(r.take(16)?).ok()?.into()),
            Kind::Name => {
                // wire_name_len stops at a compression pointer (its top bits read as
                // a label over 63 octets), so compressed names are refused here.
                let len = wire_name_len(r.rest())?;
                Item::Name(Name::from_wire(r.take(len)?)?)
            }
            Kind::Str => {
                let len = usize::from(r.u8()?);
                Item::CharStr(r.take(len)?.to_vec())
            }
            Kind::Strings => {
                let mut list = Vec::new();
                while !r.rest().is_empty() {
                    let len = usize::from(r.u8()?);
                    list.push(r.take(len)?.to_vec());
                }
                if list.is_empty() {
                    return None;
                }
                Item::CharStrs(list)
            }
            Kind::Hex | Kind::Base64 => {
                let rest = r.take_rest();
                if rest.is_empty() {
                    return None;
                }
                Item::Raw(rest.to_vec())
            }
            Kind::CaaTag => {
                let len = usize::from(r.u8()?);
                let tag = r.take(len)?;
                if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                    return None;
                }
                Item::CharStr(tag.to_vec())
            }
            Kind::CaaValue => Item::Raw(r.take_rest().to_vec()),
        };
        items.push(item);
    }
    r.rest().is_empty().then_some(items)
}

/// Reads wire RDATA front to back without ever indexing past its end.
struct WireReader<'a> {
    wire: &'a [u8],
    pos: usize,
}

impl<'a> WireReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.wire.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn rest(&self) -> &'a [u8] {
        self.wire.get(self.pos..).unwrap_or_default()
    }

    fn take_rest(&mut self) -> &'a [u8] {
        let rest = self.rest();
        self.pos = self.wire.len();
        rest
    }
}

/// Formats RDATA in presentation format, names absolute. RDATA of a type without a
/// presentation format here, or not valid for its type, comes out in the generic form
/// `\# <length> <hex>` (RFC 3597 §5).
pub(crate) fn format_rdata(rtype: u16, rdata: &[u8]) -> String {
    if let Some(slots) = schema(rtype) {
        if let Some(items) = decode_items(slots, rdata) {
            if validate(rtype, "", &items).is_ok() {
                return format_items(slots, &items);
            }
        }
    }
    format_generic(rdata)
}

fn format_generic(rdata: &[u8]) -> String {
    let mut out = format!("\\# {}", rdata.len());
    if !rdata.is_empty() {
        out.push(' ');
        push_hex(&mut out, rdata);
    }
    out
}

fn format_items(slots: &[Slot], items: &[Item]) -> String {
    let mut out = String::new();
    for (slot, item) in slots.iter().zip(items) {
        if !out.is_empty() {
            out.push(' ');
        }
        // `write!` into a String cannot fail.
        let _ = match item {
            Item::U8(v) => write!(out, "{v}"),
            Item::U16(v) => write!(out, "{v}"),
            Item::U32(v) => write!(out, "{v}"),
            Item::V4(a) => write!(out, "{a}"),
            // Display gives the RFC 5952 canonical text.
            Item::V6(a) => write!(out, "{a}"),
            Item::Name(n) => write!(out, "{n}"),
            // A tag is letters and digits only, so it needs no quotes.
            Item::CharStr(s) if slot.kind == Kind::CaaTag => {
                out.push_str(&String::from_utf8_lossy(s));
                Ok(())
            }
            Item::CharStr(s) => {
                push_quoted(&mut out, s);
                Ok(())
            }
            Item::CharStrs(list) => {
                for (i, s) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    push_quoted(&mut out, s);
                }
                Ok(())
            }
            Item::Raw(bytes) => {
                match slot.kind {
                    Kind::Base64 => out.push_str(&BASE64.encode(bytes)),
                    Kind::CaaValue => push_quoted(&mut out, bytes),
                    _ => push_hex(&mut out, bytes),
                }
                Ok(())
            }
        };
    }
    out
}

/// A character-string in double quotes, escaped so that it reads back the same:
/// `"` and `\` get a backslash, bytes outside printable ASCII become `\DDD`.
fn push_quoted(out: &mut String, s: &[u8]) {
    out.push('"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02X}");
    }
}

/// The domain name a record points at: what additional-section processing and zone
/// checks follow. `None` for other types, or when the RDATA is malformed.
pub(crate) fn rdata_target(rtype: u16, rdata: &[u8]) -> Option<Name> {
    Name::from_wire(rdata.get(target_at(rtype)?..)?)
}

/// Where the name a record of `rtype` points at starts in its RDATA; `None`
/// for a type that points at no name.
pub(crate) fn target_at(rtype: u16) -> Option<usize> {
    match rtype {
        t::NS | t::CNAME | t::PTR | t::DNAME => Some(0),
        // RFC 1035 §3.3.9: PREFERENCE (2 bytes) then EXCHANGE.
        t::MX => Some(2),
        // RFC 2782: PRIORITY, WEIGHT, PORT (2 bytes each) then TARGET.
        t::SRV => Some(6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::master::split_fields;

    fn origin() -> Name {
        Name::parse("example.com.", None).unwrap()
    }

    fn parse(rtype: u16, text: &str) -> Result<Vec<u8>, RdataError> {
        parse_rdata(rtype, &split_fields(text).unwrap(), &origin())
    }

    fn err(rtype: u16, text: &str) -> String {
        parse(rtype, text).unwrap_err().to_string()
    }

    /// Parses `text`, checks the wire bytes, formats them, checks the text, and
    /// parses that text back to the same bytes.
    fn round_trip(rtype: u16, text: &str, wire: &[u8], formatted: &str) {
        let parsed = parse(rtype, text).unwrap();
        assert_eq!(parsed, wire, "wire for {text:?}");
        let shown = format_rdata(rtype, &parsed);
        assert_eq!(shown, formatted, "format of {text:?}");
        assert_eq!(parse(rtype, &shown).unwrap(), wire, "re-parse of {shown:?}");
    }

    fn name_wire(s: &str) -> Vec<u8> {
        Name::parse(s, None).unwrap().wire().to_vec()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn class_mnemonics() {
        assert_eq!(class_mnemonic(1), "IN");
        assert_eq!(class_mnemonic(3), "CH");
        assert_eq!(class_mnemonic(4), "HS");
        assert_eq!(class_mnemonic(254), "NONE");
        assert_eq!(class_mnemonic(255), "ANY");
        assert_eq!(class_mnemonic(9), "CLASS9");
        assert_eq!(class_from_mnemonic("in"), Some(1));
        assert_eq!(class_from_mnemonic("CLASS1"), Some(1));
        assert_eq!(class_from_mnemonic("ch"), Some(3));
        assert_eq!(class_from_mnemonic("A"), None);
    }

    #[test]
    fn a_and_aaaa() {
        round_trip(t::A, "192.0.2.1", &[192, 0, 2, 1], "192.0.2.1");
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        round_trip(t::AAAA, "2001:DB8:0:0::1", &v6.octets(), "2001:db8::1");
        let mapped: Ipv6Addr = "::ffff:192.0.2.1".parse().unwrap();
        round_trip(
            t::AAAA,
            "::ffff:192.0.2.1",
            &mapped.octets(),
            "::ffff:192.0.2.1",
        );
    }

    #[test]
    fn a_errors_say_what_is_valid() {
        assert_eq!(
            err(t::A, "300.1.1.1"),
            "A record needs an IPv4 address like 192.0.2.1, found \"300.1.1.1\""
        );
        assert_eq!(
            err(t::A, ""),
            "A record needs an IPv4 address like 192.0.2.1, but the record ends before it"
        );
        assert_eq!(
            err(t::A, "192.0.2.1 192.0.2.2"),
            "A record has an extra field \"192.0.2.2\"; it takes 1 field: address"
        );
        assert!(err(t::AAAA, "192.0.2.1").contains("an IPv6 address like 2001:db8::1"));
        assert!(err(t::A, "2001:db8::1").contains("IPv4"));
    }

    #[test]
    fn single_name_types() {
        let www = name_wire("www.example.com.");
        round_trip(t::NS, "www", &www, "www.example.com.");
        round_trip(t::CNAME, "WWW.Example.COM.", &www, "www.example.com.");
        round_trip(t::PTR, "www.example.com.", &www, "www.example.com.");
        round_trip(t::DNAME, "@", &name_wire("example.com."), "example.com.");
        round_trip(t::CNAME, ".", &[0], ".");
        // Escapes reach Name::parse untouched: "\." is inside a label.
        round_trip(
            t::CNAME,
            "a\\.b.example.com.",
            b"\x03a.b\x07example\x03com\x00",
            "a\\.b.example.com.",
        );
        round_trip(t::PTR, "a\\032b.", b"\x03a b\x00", "a\\032b.");
        assert!(err(t::NS, "a..b.").contains("empty label"));
        assert!(err(t::NS, "\"\"").contains("a name cannot be empty"));
        assert!(err(t::CNAME, "a b").contains("extra field \"b\""));
    }

    #[test]
    fn soa_with_units() {
        let wire = cat(&[
            &name_wire("ns1.example.com."),
            &name_wire("hostmaster.example.com."),
            &2024010101u32.to_be_bytes(),
            &3600u32.to_be_bytes(),
            &900u32.to_be_bytes(),
            &1209600u32.to_be_bytes(),
            &129600u32.to_be_bytes(),
        ]);
        round_trip(
            t::SOA,
            "ns1 hostmaster 2024010101 1h 15M 2w 1d12h",
            &wire,
            "ns1.example.com. hostmaster.example.com. 2024010101 3600 900 1209600 129600",
        );
        // Plain numbers use all 32 bits, as on the wire.
        let big = parse(t::SOA, "ns1 hm 4294967295 4294967295 1 1 1").unwrap();
        assert_eq!(
            format_rdata(t::SOA, &big),
            "ns1.example.com. hm.example.com. 4294967295 4294967295 1 1 1"
        );
        assert_eq!(
            err(t::SOA, "ns1 hm 4294967296 1 1 1 1"),
            "SOA record needs a serial number from 0 to 4294967295, found \"4294967296\""
        );
        assert!(err(t::SOA, "ns1 hm 1 1x 1 1 1").starts_with(
            "SOA record needs a refresh time like 3600 or 1h, found \"1x\": TTL \"1x\" is not valid"
        ));
        assert!(err(t::SOA, "ns1 hm 1 1 1 1").contains("needs a minimum (negative caching) TTL"));
        assert!(err(t::SOA, "ns1 hm 1 1 1 1 1 1")
            .contains("it takes 7 fields: mname rname serial refresh retry expire minimum"));
    }

    #[test]
    fn mx_and_srv() {
        round_trip(
            t::MX,
            "10 mail",
            &cat(&[&[0, 10], &name_wire("mail.example.com.")]),
            "10 mail.example.com.",
        );
        round_trip(t::MX, "0 .", &[0, 0, 0], "0 .");
        assert_eq!(
            err(t::MX, "70000 mail"),
            "MX record needs a preference from 0 to 65535, found \"70000\""
        );
        assert!(err(t::MX, "-1 mail").contains("found \"-1\""));
        assert!(err(t::MX, "+1 mail").contains("found \"+1\""));
        assert!(err(t::MX, "10").contains("needs a mail exchanger name"));
        round_trip(
            t::SRV,
            "10 60 5060 sip",
            &cat(&[&[0, 10, 0, 60, 0x13, 0xc4], &name_wire("sip.example.com.")]),
            "10 60 5060 sip.example.com.",
        );
        assert!(err(t::SRV, "10 60 port sip").contains("needs a port from 0 to 65535"));
    }

    #[test]
    fn txt_strings_and_escapes() {
        round_trip(
            t::TXT,
            r#""hello world" "a\"b" \065bc "\\" "" "semi;colon""#,
            b"\x0bhello world\x03a\"b\x03Abc\x01\\\x00\x0asemi;colon",
            r#""hello world" "a\"b" "Abc" "\\" "" "semi;colon""#,
        );
        // Unquoted fields are separate strings.
        round_trip(
            t::TXT,
            "v=spf1 -all",
            b"\x06v=spf1\x04-all",
            r#""v=spf1" "-all""#,
        );
        round_trip(
            t::SPF,
            "\"v=spf1 -all\"",
            b"\x0bv=spf1 -all",
            r#""v=spf1 -all""#,
        );
        // Bytes outside printable ASCII come out as \DDD.
        round_trip(
            t::TXT,
            "\"caf\u{e9}\\009\"",
            b"\x06caf\xc3\xa9\x09",
            r#""caf\195\169\009""#,
        );
        // A quoted \# is text, not the generic marker.
        round_trip(t::TXT, r#""\#""#, b"\x01#", r##""#""##);
    }

    #[test]
    fn txt_limits() {
        let max = "x".repeat(255);
        let wire = parse(t::TXT, &format!("\"{max}\"")).unwrap();
        assert_eq!(wire.len(), 256);
        assert_eq!(wire[0], 255);
        let e = err(t::TXT, &format!("\"{max}y\""));
        assert!(
            e.starts_with(
                "TXT record has a character-string of 256 bytes, but one holds at most 255"
            ),
            "{e}"
        );
        assert!(e.contains("split the text into several quoted strings"));
        // The limit counts bytes after escapes are decoded.
        let escaped = "\\065".repeat(255);
        assert_eq!(parse(t::TXT, &format!("\"{escaped}\"")).unwrap().len(), 256);
        assert!(err(t::TXT, "").contains("needs one or more character-strings"));
        assert!(err(t::TXT, "\"\\256\"").contains("bad escape"));
        assert!(err(t::TXT, "\"\\12\"").contains("bad escape"));
        // RDATA as a whole is capped at 65535 bytes.
        let many = vec![format!("\"{max}\""); 257].join(" ");
        assert_eq!(
            err(t::TXT, &many),
            "TXT record data would be 65792 bytes, but RDATA holds at most 65535 (RFC 1035 §3.2.1)"
        );
    }

    #[test]
    fn caa() {
        round_trip(
            t::CAA,
            "0 issue \"ca.example.net\"",
            b"\x00\x05issueca.example.net",
            "0 issue \"ca.example.net\"",
        );
        round_trip(
            t::CAA,
            "128 iodef \"mailto:security@example.com\"",
            b"\x80\x05iodefmailto:security@example.com",
            "128 iodef \"mailto:security@example.com\"",
        );
        round_trip(t::CAA, "0 issue \";\"", b"\x00\x05issue;", "0 issue \";\"");
        round_trip(
            t::CAA,
            "0 issuewild \"\"",
            b"\x00\x09issuewild",
            "0 issuewild \"\"",
        );
        round_trip(
            t::CAA,
            "0 issue ca.example.net",
            b"\x00\x05issueca.example.net",
            "0 issue \"ca.example.net\"",
        );
        // The value has no length octet, so it may pass 255 bytes.
        let long = "v".repeat(300);
        assert_eq!(
            parse(t::CAA, &format!("0 issue \"{long}\"")).unwrap().len(),
            2 + 5 + 300
        );
        assert!(err(t::CAA, "0 is-sue \"x\"").contains("a property tag of letters and digits"));
        assert!(err(t::CAA, "0 issue").contains("needs one property value"));
        assert!(err(t::CAA, "0 issue a b").contains("extra field \"b\""));
        assert!(err(t::CAA, "256 issue x").contains("flags from 0 to 255"));
    }

    const DS_SHA1: &str = "2BB183AF5F22588179A53B0A98631FAD1A292118";

    #[test]
    fn ds_and_cds() {
        let digest = decode_hex(DS_SHA1).unwrap();
        let wire = cat(&[&[0xec, 0x45, 5, 1], &digest]);
        let shown = format!("60485 5 1 {DS_SHA1}");
        // RFC 4034 §5.4, digest split over fields and in lower case.
        round_trip(
            t::DS,
            "60485 5 1 ( 2BB183AF5F22588179A53B0A98631FAD1A292118 )",
            &wire,
            &shown,
        );
        round_trip(
            t::DS,
            "60485 RSASHA1 1 2bb183af5f22588179a5 3b0a98631fad1a292118",
            &wire,
            &shown,
        );
        round_trip(
            t::CDS,
            "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
            &wire,
            &shown,
        );
        // RFC 8078 §4: the CDS that asks for DS deletion.
        round_trip(t::CDS, "0 0 0 00", &[0, 0, 0, 0, 0], "0 0 0 00");
        assert_eq!(
            err(t::DS, "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A2921"),
            "DS record: digest type 1 (SHA-1) needs 20 bytes (40 hex digits), found 19 bytes"
        );
        assert!(err(t::DS, "60485 5 1 2BB18").contains("two for each byte"));
        assert!(err(t::DS, "60485 5 1 zz").contains("needs the digest in hex, found \"zz\""));
        assert!(err(t::DS, "60485 5 1").contains("needs the digest in hex, but the record ends"));
        assert!(err(t::DS, "60485 NOPE 1 00").contains("a mnemonic like ECDSAP256SHA256"));
    }

    const KEY: &str = "AQPSKmynfzW4kyBv015MUG2DeIQ3Cbl+BBZH4b/0PY1kxkmvHjcZc8nokfzj31GajIQKY+5CptLr3buXA10hWqTkF7H6RfoRqXQeogmMHfpftf6zMv1LyBUgia7za6ZEzOJBOztyvhjL742iU/TpPSEDhm2SNKLijfUppn1UaNvv4w==";

    #[test]
    fn dnskey_and_cdnskey() {
        let key = BASE64.decode(KEY).unwrap();
        let wire = cat(&[&[1, 0, 3, 5], &key]);
        let shown = format!("256 3 5 {KEY}");
        // RFC 4034 §2.3, the key split over lines as zone files do.
        let split = "256 3 5 ( AQPSKmynfzW4kyBv015MUG2DeIQ3\n Cbl+BBZH4b/0PY1kxkmvHjcZc8no\n kfzj31GajIQKY+5CptLr3buXA10h\n WqTkF7H6RfoRqXQeogmMHfpftf6z\n Mv1LyBUgia7za6ZEzOJBOztyvhjL\n 742iU/TpPSEDhm2SNKLijfUppn1U\n aNvv4w== )";
        round_trip(t::DNSKEY, split, &wire, &shown);
        round_trip(t::CDNSKEY, &format!("256 3 RSASHA1 {KEY}"), &wire, &shown);
        assert_eq!(
            err(t::DNSKEY, &format!("256 2 5 {KEY}")),
            "DNSKEY record: protocol must be 3 (RFC 4034 §2.1.2), found 2"
        );
        assert!(err(t::DNSKEY, "257 3 13 not*base64")
            .contains("needs the public key in base64, found \"not*base64\""));
        assert!(err(t::DNSKEY, "257 3 13").contains("but the record ends before it"));
    }

    #[test]
    fn tlsa_and_sshfp() {
        let hash = "d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971";
        let wire = cat(&[&[3, 1, 1], &decode_hex(hash).unwrap()]);
        let shown = format!("3 1 1 {}", hash.to_uppercase());
        round_trip(t::TLSA, &format!("3 1 1 {}", hash), &wire, &shown);
        round_trip(
            t::TLSA,
            &format!("3 1 1 {} {}", &hash[..10], &hash[10..]),
            &wire,
            &shown,
        );
        round_trip(t::SMIMEA, &format!("3 1 1 {hash}"), &wire, &shown);
        assert!(err(t::TLSA, "3 1 1 d2ab")
            .contains("matching type 1 (SHA-256) needs 32 bytes (64 hex digits), found 2 bytes"));
        // Matching type 0 is the whole certificate: any length.
        round_trip(t::TLSA, "3 1 0 3082", &[3, 1, 0, 0x30, 0x82], "3 1 0 3082");

        let fp = "123456789abcdef67890123456789abcdef67890";
        round_trip(
            t::SSHFP,
            &format!("2 1 {fp}"),
            &cat(&[&[2, 1], &decode_hex(fp).unwrap()]),
            &format!("2 1 {}", fp.to_uppercase()),
        );
        assert!(err(t::SSHFP, "4 2 1234").contains("fingerprint type 2 (SHA-256) needs 32 bytes"));
    }

    #[test]
    fn hinfo_and_naptr() {
        round_trip(
            t::HINFO,
            "\"PC Intel\" Linux",
            b"\x08PC Intel\x05Linux",
            "\"PC Intel\" \"Linux\"",
        );
        assert!(err(t::HINFO, "x86").contains("needs an OS type as a character-string"));
        assert!(err(t::HINFO, "a b c").contains("it takes 2 fields: cpu os"));
        // RFC 3403 §6.2
        round_trip(
            t::NAPTR,
            r#"100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" ."#,
            &cat(&[
                &[0, 100, 0, 10],
                b"\x01u\x07E2U+sip\x1b!^.*$!sip:info@example.com!",
                &[0],
            ]),
            r#"100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" ."#,
        );
        round_trip(
            t::NAPTR,
            r#"100 50 "s" "SIP+D2U" "" _sip._udp"#,
            &cat(&[
                &[0, 100, 0, 50],
                b"\x01s\x07SIP+D2U\x00",
                &name_wire("_sip._udp.example.com."),
            ]),
            r#"100 50 "s" "SIP+D2U" "" _sip._udp.example.com."#,
        );
    }

    #[test]
    fn generic_rdata() {
        round_trip(65534, "\\# 3 010203", &[1, 2, 3], "\\# 3 010203");
        round_trip(65534, "\\# 0", &[], "\\# 0");
        round_trip(
            65534,
            "\\# 4 01 0 20 3ff",
            &[1, 2, 3, 0xff],
            "\\# 4 010203FF",
        );
        // Known types in generic form are the same record (RFC 3597 §5).
        assert_eq!(parse(t::A, "\\# 4 C0000201").unwrap(), [192, 0, 2, 1]);
        assert_eq!(
            parse(t::A, "\\# 4 ( c0 00\n 02 01 )").unwrap(),
            [192, 0, 2, 1]
        );
        assert_eq!(
            parse(t::NS, "\\# 5 034E5331 00").unwrap(),
            name_wire("ns1."),
            "names are lower-cased"
        );
        assert_eq!(
            parse(t::TXT, "\\# 4 03616263").unwrap(),
            parse(t::TXT, "abc").unwrap()
        );
        assert_eq!(
            err(t::A, "\\# 3 010203"),
            "A record in generic form: the data is not a valid A record; the form is \\# <length> <hex>, like \\# 4 c0000201 (RFC 3597 §5)"
        );
        assert!(
            err(t::MX, "\\# 4 000ac000").contains("not a valid MX record"),
            "compressed names"
        );
        assert!(err(65534, "\\# 4 010203").contains("the length says 4 bytes but the hex holds 3"));
        assert!(err(65534, "\\# 2 010203").contains("the length says 2 bytes but the hex holds 3"));
        assert!(err(65534, "\\#").contains("the length is missing"));
        assert!(err(65534, "\\# x").contains("the length must be a number from 0 to 65535"));
        assert!(err(65534, "\\# 2 0g01").contains("hex digits"));
        assert!(err(65534, "\\# 1 1").contains("hex digits"));
        assert_eq!(
            err(65534, "01 02"),
            "TYPE65534 records have no presentation format in signpost; give the data in RFC 3597 generic form \\# <length> <hex>, like \\# 4 c0000201"
        );
        // Known to the registry but without a presentation format here.
        assert!(err(
            46,
            "A 5 3 86400 20300101000000 20200101000000 1 example.com. AAAA"
        )
        .starts_with("RRSIG records have no presentation format"));
        assert_eq!(parse(46, "\\# 2 abcd").unwrap(), [0xab, 0xcd]);
    }

    #[test]
    fn format_falls_back_to_generic() {
        assert_eq!(format_rdata(t::A, &[1, 2, 3]), "\\# 3 010203");
        assert_eq!(format_rdata(t::A, &[]), "\\# 0");
        assert_eq!(format_rdata(t::TXT, &[]), "\\# 0");
        assert_eq!(format_rdata(t::TXT, &[5, b'a']), "\\# 2 0561");
        assert_eq!(format_rdata(t::MX, &[0, 1, 0xc0, 0x0c]), "\\# 4 0001C00C");
        assert_eq!(
            format_rdata(t::DNSKEY, &[1, 0, 2, 8, 1]),
            "\\# 5 0100020801"
        );
        assert_eq!(format_rdata(t::CAA, &[0, 0]), "\\# 2 0000");
        assert_eq!(format_rdata(65000, &[0xab]), "\\# 1 AB");
        assert_eq!(format_rdata(t::A, &[192, 0, 2, 1]), "192.0.2.1");
    }

    #[test]
    fn targets() {
        let mail = Name::parse("mail.example.com.", None).unwrap();
        let rd = parse(t::MX, "10 MAIL").unwrap();
        assert_eq!(rdata_target(t::MX, &rd), Some(mail.clone()));
        let rd = parse(t::SRV, "1 2 3 mail").unwrap();
        assert_eq!(rdata_target(t::SRV, &rd), Some(mail.clone()));
        for rtype in [t::NS, t::CNAME, t::PTR, t::DNAME] {
            let rd = parse(rtype, "mail").unwrap();
            assert_eq!(rdata_target(rtype, &rd), Some(mail.clone()));
        }
        assert_eq!(rdata_target(t::A, &[192, 0, 2, 1]), None);
        assert_eq!(rdata_target(t::MX, &[0]), None);
        assert_eq!(rdata_target(t::NS, &[3, b'a']), None);
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(decode_escapes("a\\\"b").unwrap(), b"a\"b");
        assert_eq!(decode_escapes("\\065\\066").unwrap(), b"AB");
        assert_eq!(decode_escapes("\\255").unwrap(), [255]);
        assert_eq!(decode_escapes("\\\\").unwrap(), b"\\");
        assert_eq!(decode_escapes("\\\u{e9}").unwrap(), "\u{e9}".as_bytes());
        assert_eq!(decode_escapes("\\256"), None);
        assert_eq!(decode_escapes("\\12"), None);
        assert_eq!(decode_escapes("\\1x2"), None);
        assert_eq!(decode_escapes("end\\"), None);
    }
}
