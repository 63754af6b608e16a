//! Plain settings the transports take: config owns them (and their defaults),
//! the transports on floor 7 import them, so config never names a transport.

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
