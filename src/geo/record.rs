//! Serde views of database records, borrowing from the database buffer.
//!
//! Each view names only the fields the locator needs. Serde's derive skips
//! every other key through `deserialize_ignored_any`, which the reader turns
//! into a cursor skip without following pointers, so the multilingual
//! `names` maps that make up most of a GeoIP2 City record cost a skip, not a
//! decode. Strings are `&'a str` slices of the database: decoding a record
//! allocates nothing.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A scalar read without insisting on its stored type.
///
/// The reader's typed entry points are strict: `deserialize_u32` fails on a
/// value stored as uint16 or uint64, `deserialize_f64` on a 32-bit float,
/// and a failure discards the whole record. Third-party writers differ in
/// which integer or float width they pick, so every leaf goes through
/// `deserialize_any` and is interpreted afterwards; a value of an
/// unexpected kind becomes [`Leaf::Other`] and only that field is lost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) enum Leaf<'a> {
    Str(&'a str),
    Float(f64),
    Uint(u64),
    Int(i64),
    #[default]
    Other,
}

impl<'a> Leaf<'a> {
    pub(super) fn as_str(self) -> Option<&'a str> {
        match self {
            Leaf::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Numbers as they are; strings parsed, for writers that store
    /// coordinates as text.
    pub(super) fn as_f64(self) -> Option<f64> {
        match self {
            Leaf::Float(f) => Some(f),
            Leaf::Uint(u) => Some(u as f64),
            Leaf::Int(i) => Some(i as f64),
            Leaf::Str(s) => s.trim().parse().ok(),
            Leaf::Other => None,
        }
    }

    /// Integers in range; strings like "64496" or "AS64496" (how some
    /// flat files spell an AS number).
    pub(super) fn as_u32(self) -> Option<u32> {
        match self {
            Leaf::Uint(u) => u32::try_from(u).ok(),
            Leaf::Int(i) => u32::try_from(i).ok(),
            Leaf::Str(s) => {
                let s = s.trim();
                let digits = s
                    .strip_prefix("AS")
                    .or_else(|| s.strip_prefix("as"))
                    .unwrap_or(s);
                if digits.bytes().all(|b| b.is_ascii_digit()) {
                    digits.parse().ok()
                } else {
                    None
                }
            }
            Leaf::Float(_) | Leaf::Other => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Leaf<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LeafVisitor(PhantomData))
    }
}

struct LeafVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for LeafVisitor<'a> {
    type Value = Leaf<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or number")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Str(v))
    }

    // A string that is not borrowed from the input cannot outlive this
    // call; the reader always lends, so this only guards other formats.
    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Other)
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Uint(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Leaf<'a>, E> {
        Ok(i64::try_from(v).map_or(Leaf::Other, Leaf::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Leaf<'a>, E> {
        Ok(u64::try_from(v).map_or(Leaf::Other, Leaf::Uint))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Float(v))
    }

    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Leaf<'a>, E> {
        Ok(Leaf::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Leaf<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Leaf<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Leaf::Other)
    }
}

/// GeoIP2 / GeoLite2 / DB-IP layout (City, Country, and ASN databases).
#[derive(Debug, Default, Deserialize)]
pub(super) struct GeoIp2Record<'a> {
    #[serde(borrow, default)]
    pub(super) continent: Option<ContinentField<'a>>,
    #[serde(borrow, default)]
    pub(super) country: Option<CountryField<'a>>,
    /// Where the network is registered. GeoIP2 has only this for some
    /// anycast and satellite networks; used when `country` is absent.
    #[serde(borrow, default)]
    pub(super) registered_country: Option<CountryField<'a>>,
    /// Only the first (largest) subdivision is kept; see [`first_element`].
    #[serde(borrow, default, deserialize_with = "first_element")]
    pub(super) subdivisions: Option<CountryField<'a>>,
    #[serde(borrow, default)]
    pub(super) location: Option<LocationField<'a>>,
    #[serde(borrow, default)]
    pub(super) autonomous_system_number: Option<Leaf<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContinentField<'a> {
    #[serde(borrow, default)]
    pub(super) code: Option<Leaf<'a>>,
}

/// `country`, `registered_country` and each `subdivisions` entry share the
/// `iso_code` key.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CountryField<'a> {
    #[serde(borrow, default)]
    pub(super) iso_code: Option<Leaf<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct LocationField<'a> {
    #[serde(borrow, default)]
    pub(super) latitude: Option<Leaf<'a>>,
    #[serde(borrow, default)]
    pub(super) longitude: Option<Leaf<'a>>,
}

/// The ip-location-db layout: flat keys at the top level.
#[derive(Debug, Default, Deserialize)]
pub(super) struct FlatRecord<'a> {
    #[serde(borrow, default)]
    pub(super) country_code: Option<Leaf<'a>>,
    #[serde(borrow, default)]
    pub(super) latitude: Option<Leaf<'a>>,
    #[serde(borrow, default)]
    pub(super) longitude: Option<Leaf<'a>>,
    #[serde(borrow, default)]
    pub(super) autonomous_system_number: Option<Leaf<'a>>,
}

/// Which top-level keys a record has; used to guess the layout of a
/// database whose `database_type` is not recognised.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ShapeProbe {
    #[serde(default)]
    pub(super) country: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) registered_country: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) continent: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) location: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) autonomous_system_number: Option<IgnoredAny>,
    #[serde(default)]
    pub(super) country_code: Option<IgnoredAny>,
}

/// Decodes the first element of an array and skips the rest, so the
/// `subdivisions` list never becomes a `Vec` (one allocation per lookup
/// saved). GeoIP2 orders subdivisions from largest to smallest, and ISO
/// 3166-2 region codes are those of the first.
fn first_element<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct First<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for First<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
            let first = seq.next_element::<T>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_seq(First(PhantomData))
}
