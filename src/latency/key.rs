//! The client side of a measured figure: a network (its /24 or /48, or a
//! wider one from the feed), an ASN or a country; and why a sample is refused.

use std::fmt;
use std::net::IpAddr;

use crate::geo::cidr::{mask, IpNet};

/// The narrowest network a figure is kept for: one /24 of IPv4, one /48 of IPv6.
pub(crate) const V4_PREFIX: u8 = 24;
pub(crate) const V6_PREFIX: u8 = 48;
/// Round trips outside this range are not measurements of a network path.
pub(crate) const MIN_RTT_MS: f64 = 0.1;
pub(crate) const MAX_RTT_MS: f64 = 10_000.0;
/// The most samples one feed line may stand for.
pub(crate) const MAX_COUNT: u32 = 1_000_000;

/// The client side of a figure, in the static table's precedence: network,
/// then ASN, then country.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetKey {
    /// A masked network address and its prefix length.
    Net(IpAddr, u8),
    Asn(u32),
    Country([u8; 2]),
}

impl NetKey {
    /// The network a sender's address counts for: its /24 or /48. An
    /// IPv4-mapped IPv6 address counts as IPv4.
    pub fn of_addr(ip: IpAddr) -> NetKey {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let len = if ip.is_ipv4() { V4_PREFIX } else { V6_PREFIX };
        NetKey::Net(mask(ip, len), len)
    }

    /// A network named by the operator's feed: /24 (IPv4) or /48 (IPv6), or wider.
    pub(crate) fn of_net(net: IpNet) -> Result<NetKey, Rejected> {
        let max = if net.addr().is_ipv4() {
            V4_PREFIX
        } else {
            V6_PREFIX
        };
        if net.prefix_len() > max {
            return Err(Rejected::Narrow(net.to_string()));
        }
        Ok(NetKey::Net(net.addr(), net.prefix_len()))
    }

    /// A country as an ISO 3166-1 alpha-2 code like `JP`.
    pub(crate) fn of_country(cc: &str) -> Result<NetKey, Rejected> {
        match cc.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                Ok(NetKey::Country([*a, *b]))
            }
            _ => Err(Rejected::Country(cc.to_string())),
        }
    }
}

impl fmt::Display for NetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetKey::Net(a, l) => write!(f, "{a}/{l}"),
            NetKey::Asn(a) => write!(f, "AS{a}"),
            NetKey::Country(c) => write!(f, "country {}", String::from_utf8_lossy(c)),
        }
    }
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("rtt_ms {0} is not a round trip (use {MIN_RTT_MS} to {MAX_RTT_MS} ms)")]
    Absurd(f64),
    #[error("region index {0} is not one of this table's regions")]
    UnknownRegion(u16),
    #[error("network {0} is narrower than /{V4_PREFIX} (IPv4) or /{V6_PREFIX} (IPv6)")]
    Narrow(String),
    #[error("country {0:?} is not an ISO 3166-1 alpha-2 code like JP")]
    Country(String),
    #[error("count {0}: use 1 to {MAX_COUNT}")]
    Count(u32),
}
