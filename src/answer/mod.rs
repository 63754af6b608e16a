//! The answer: bytes in, bytes out, from a snapshot; no sockets, no files, no clocks
//! but the one a caller passes. The transports (`crate::server`) hand each query to
//! [`handler`] (or, on UDP, first to [`fast`]'s prebuilt table) and write what comes
//! back.
//!
//! - [`query`] parses the header, question, OPT and ECS; [`opt`] chooses what the
//!   response's OPT carries (ECS scope, NSID, cookies via [`cookie`]).
//! - [`handler`] runs the lookup and the steering decision for one query;
//!   [`write`] lays the prebuilt records into the response.
//! - [`fast`] is the UDP fast path's query-time table, [`fast_build`] builds it from
//!   the general path, [`prefetch`] warms a batch's cache lines,
//!   [`decision_cache`] keeps a thread's recent steering decisions, and
//!   [`signed_cache`] the signed answers the general path wrote for it.
//! - [`snapshot`] is the immutable state every query reads; [`health_view`] is the
//!   health as the decision reads it.

pub mod cookie;
pub mod decision_cache;
pub mod fast;
mod fast_build;
mod fast_path;
pub mod handler;
pub mod health_view;
pub mod notify_in;
mod opt;
mod prefetch;
pub mod query;
pub mod rrl;
mod signed_cache;
pub mod snapshot;
pub mod transfer;
pub mod write;
pub mod xfr;

/// What one query did, for counting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// A response was sent.
    pub sent: bool,
    pub zone_slot: Option<u16>,
    pub qtype: u16,
    /// Full rcode (BADVERS is 16).
    pub rcode: u16,
    pub truncated: bool,
    pub ecs: bool,
    /// (name slot, region index, reason) of a steered answer.
    pub steered: Option<(u16, u16, crate::policy::Reason)>,
    /// Length of the question section, for truncating a response to its header.
    pub question_len: u16,
    /// An answer synthesized from a wildcard: where the wildcard's closest encloser
    /// starts in the query name (for rate limiting, which counts such answers as one).
    pub wildcard_at: Option<u8>,
    /// The query carried a valid server cookie: its address is not spoofed.
    pub verified: bool,
    /// The rate limiter's verdict, when it was asked before the answer was signed.
    pub rrl: Option<rrl::Verdict>,
    /// A steered answer's decision, for dnstap.
    pub decision: Option<Decided>,
}

/// Where a steered answer's decision came from and what it held beyond
/// [`Observed::steered`]: the zone's and the name policy's indices in the
/// snapshot's steering, the fence the client fell in, the ECS scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decided {
    pub zone: u32,
    pub name: u32,
    pub fenced: Option<u16>,
    pub scope: u8,
}
