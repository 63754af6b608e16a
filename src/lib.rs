//! signpost: an authoritative DNS server that steers each client to the right region.
//!
//! One query's path:
//!
//! ```text
//! UDP socket (SO_REUSEPORT, one thread each, recvmmsg batches) / TCP (tokio)
//!   -> server::query        parse header, question, OPT and ECS; classify
//!   -> Snapshot (ArcSwap)   immutable: zones, policies, geo database, health view
//!        zone::ZoneSet      longest-match zone, then the RFC 1034 §4.3.2 lookup
//!        geo::ClientLocator overrides, then the database: location + network prefix
//!        policy::decide     pure: (policy, client, health, now) -> endpoints, reason, scope
//!   -> server::answer       write prebuilt records: AA, SOA on negatives, ECS, NSID, TC
//!   -> server::rrl          response rate limiting (UDP)
//!   -> socket
//! ```
//!
//! Beside it, each with a shutdown path: `health` (probes, scheduler, state
//! machine), `reload` (file watching, rebuild beside, atomic swap), `admin`
//! (HTTP: metrics, status, overrides).
//!
//! Modules and what they may use: `config` (serde, compile to plans; no tokio),
//! `zone` (no tokio), `geo` (the only one naming maxminddb), `policy` (pure, no
//! I/O), `health` (not policy or server), `server` (sockets and wire format),
//! `reload` (the only one naming notify), `app`/`admin`/`bridge` (wiring),
//! `dnssec` (keys in BIND's files, prebuilt RRSIGs, what DO=1 answers add; the
//! only one naming ring), `memory` (glibc's thresholds, and freed memory given
//! back after a load or reload).

// Denied, not forbidden: `server::warm` allows it, for the prefetch hint whose
// measured gain is in docs/architecture.md (the UDP fast path), and `memory`, for
// glibc's malloc_trim after a load.
#![deny(unsafe_code)]

pub mod admin;
pub mod app;
pub mod bridge;
pub mod clock;
pub mod config;
pub mod dnssec;
pub mod fleet;
pub mod geo;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod server;
pub mod snapshot;
pub mod units;
pub mod zone;
