//! The record-type registry (IANA "Resource Record (RR) TYPEs"): one table that
//! yields the constants (`rtype::A`), the name a type is written with (`Rtype`'s
//! `Display`, `TYPEnnn` for a type without one, RFC 3597 §5) and the parse of
//! such a name (`Rtype`'s `FromStr`, case-insensitive, `TYPEnnn` for any type).
//!
//! Invariants: each code and each name appears once (a test checks); a name is
//! the registry's mnemonic, as master files, `dig` and the metrics labels write it.
//! Adding a row adds its constant, its name and its parse together.

use std::fmt;
use std::str::FromStr;

/// One row per type: the constant, its code, its mnemonic.
macro_rules! registry {
    ($( $(#[$doc:meta])* $konst:ident = $code:literal, $name:literal; )*) => {
        $( $(#[$doc])* pub const $konst: u16 = $code; )*

        /// Every type with a mnemonic, by code.
        pub(crate) const TABLE: &[(u16, &str)] = &[ $( ($code, $name), )* ];

        /// The same constants as [`NonZeroU16`](std::num::NonZeroU16), the type
        /// an [`RRset`](super::RRset) is made with (type 0 is reserved, RFC 6895
        /// §3.1, and never stored). A code of 0 would not compile.
        pub mod nz {
            use std::num::NonZeroU16;
            $( pub const $konst: NonZeroU16 = match NonZeroU16::new($code) {
                Some(t) => t,
                None => panic!("type 0 is reserved"),
            }; )*
        }
    };
}

registry! {
    A = 1, "A";
    NS = 2, "NS";
    MD = 3, "MD";
    MF = 4, "MF";
    CNAME = 5, "CNAME";
    SOA = 6, "SOA";
    MB = 7, "MB";
    MG = 8, "MG";
    MR = 9, "MR";
    NULL = 10, "NULL";
    WKS = 11, "WKS";
    PTR = 12, "PTR";
    HINFO = 13, "HINFO";
    MINFO = 14, "MINFO";
    MX = 15, "MX";
    TXT = 16, "TXT";
    RP = 17, "RP";
    AFSDB = 18, "AFSDB";
    X25 = 19, "X25";
    ISDN = 20, "ISDN";
    RT = 21, "RT";
    NSAP = 22, "NSAP";
    NSAP_PTR = 23, "NSAP-PTR";
    SIG = 24, "SIG";
    KEY = 25, "KEY";
    PX = 26, "PX";
    GPOS = 27, "GPOS";
    AAAA = 28, "AAAA";
    LOC = 29, "LOC";
    NXT = 30, "NXT";
    SRV = 33, "SRV";
    NAPTR = 35, "NAPTR";
    KX = 36, "KX";
    CERT = 37, "CERT";
    A6 = 38, "A6";
    DNAME = 39, "DNAME";
    OPT = 41, "OPT";
    APL = 42, "APL";
    DS = 43, "DS";
    SSHFP = 44, "SSHFP";
    IPSECKEY = 45, "IPSECKEY";
    RRSIG = 46, "RRSIG";
    NSEC = 47, "NSEC";
    DNSKEY = 48, "DNSKEY";
    DHCID = 49, "DHCID";
    NSEC3 = 50, "NSEC3";
    NSEC3PARAM = 51, "NSEC3PARAM";
    TLSA = 52, "TLSA";
    SMIMEA = 53, "SMIMEA";
    HIP = 55, "HIP";
    CDS = 59, "CDS";
    CDNSKEY = 60, "CDNSKEY";
    OPENPGPKEY = 61, "OPENPGPKEY";
    CSYNC = 62, "CSYNC";
    ZONEMD = 63, "ZONEMD";
    SVCB = 64, "SVCB";
    HTTPS = 65, "HTTPS";
    SPF = 99, "SPF";
    NID = 104, "NID";
    L32 = 105, "L32";
    L64 = 106, "L64";
    LP = 107, "LP";
    EUI48 = 108, "EUI48";
    EUI64 = 109, "EUI64";
    /// Compact denial's "this name does not exist" marker in NSEC bitmaps (RFC 9824).
    NXNAME = 128, "NXNAME";
    TKEY = 249, "TKEY";
    TSIG = 250, "TSIG";
    IXFR = 251, "IXFR";
    AXFR = 252, "AXFR";
    MAILB = 253, "MAILB";
    MAILA = 254, "MAILA";
    ANY = 255, "ANY";
    URI = 256, "URI";
    CAA = 257, "CAA";
    DLV = 32769, "DLV";
}

/// The registry's mnemonic for a type, if it has one.
pub fn mnemonic(t: u16) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(code, _)| *code == t)
        .map(|(_, name)| *name)
}

/// A record type, written and parsed by the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Rtype(pub u16);

impl fmt::Display for Rtype {
    /// The mnemonic, `TYPEnnn` for a type without one (RFC 3597 §5).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match mnemonic(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

/// A name that is neither a mnemonic of the registry nor `TYPEnnn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown record type {0:?} (a mnemonic such as A, AAAA, TXT, or TYPEnnn)")]
pub(crate) struct UnknownType(pub String);

impl FromStr for Rtype {
    type Err = UnknownType;

    /// A mnemonic, case-insensitively; `TYPEnnn` works for any code (RFC 3597 §5),
    /// in plain decimal without a sign.
    fn from_str(s: &str) -> Result<Rtype, UnknownType> {
        if let Some(&(code, _)) = TABLE.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)) {
            return Ok(Rtype(code));
        }
        let digits = s
            .get(..4)
            .filter(|head| head.eq_ignore_ascii_case("TYPE"))
            .and_then(|_| s.get(4..))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        digits
            .and_then(|d| d.parse::<u16>().ok())
            .map(Rtype)
            .ok_or_else(|| UnknownType(s.to_string()))
    }
}

/// The type a name stands for (see [`Rtype`]'s `FromStr`).
pub fn from_name(s: &str) -> Option<u16> {
    s.parse::<Rtype>().ok().map(|t| t.0)
}

/// [`name`] without an allocation for a type of the registry.
pub(crate) fn name_cow(t: u16) -> std::borrow::Cow<'static, str> {
    match mnemonic(t) {
        Some(n) => std::borrow::Cow::Borrowed(n),
        None => std::borrow::Cow::Owned(format!("TYPE{t}")),
    }
}

/// The name a type is written with (see [`Rtype`]'s `Display`).
pub fn name(t: u16) -> String {
    Rtype(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_code_and_name() {
        for (i, (code, name)) in TABLE.iter().enumerate() {
            for (c, n) in &TABLE[i + 1..] {
                assert_ne!(code, c, "{name} and {n} share a code");
                assert!(!name.eq_ignore_ascii_case(n), "{name} twice");
            }
        }
    }

    #[test]
    fn names_and_parses() {
        assert_eq!(from_name("A"), Some(A));
        assert_eq!(from_name("aaaa"), Some(AAAA));
        assert_eq!(from_name("Caa"), Some(CAA));
        assert_eq!(from_name("nsap-ptr"), Some(NSAP_PTR));
        assert_eq!(from_name("TYPE65534"), Some(65534));
        assert_eq!(from_name("type1"), Some(1));
        assert_eq!(from_name("TYPE065535"), Some(65535));
        assert_eq!(from_name("TYPE65536"), None);
        assert_eq!(from_name("TYPE"), None);
        assert_eq!(from_name("TYPE+1"), None);
        assert_eq!(from_name("FOO"), None);
        assert_eq!(from_name(""), None);
        assert_eq!(name(A), "A");
        assert_eq!(name(CAA), "CAA");
        assert_eq!(name(123), "TYPE123");
        assert_eq!(Rtype(65535).to_string(), "TYPE65535");
        for &(code, n) in TABLE {
            assert_eq!(from_name(n), Some(code), "{n}");
            assert_eq!(name(code), n);
        }
        let e = "BOGUS".parse::<Rtype>().unwrap_err();
        assert!(e.to_string().contains("BOGUS"), "{e}");
    }
}
