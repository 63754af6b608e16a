//! Plain settings the transports take: config owns them (and their defaults),
//! the transports on floor 7 import them, so config never names a transport.

use crate::geo::cidr::IpNet;

/// Response rate limiting (`[rrl]`), taken by `server::rrl`.
#[derive(Debug, Clone)]
pub struct RrlConfig {
    /// Identical responses per second per client network; 0 turns RRL off.
    pub rate: u32,
    /// Every n-th limited response is sent truncated; 0 never, 1 always.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
    /// Buckets in the table (rounded up to a power of two).
    pub buckets: usize,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            rate: 100,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            buckets: 1 << 16,
        }
    }
}

/// The query log (`[query_log]`), taken by `server::querylog`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLogConfig {
    /// Log one query in this many; 0 = off.
    pub sample: u32,
    pub max_per_second: u32,
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        QueryLogConfig {
            sample: 0,
            max_per_second: 100,
        }
    }
}
