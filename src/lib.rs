//! signpost: an authoritative DNS server that steers each client to the right region.
//!
//! One query's path:
//!
//! ```text
//! UDP socket (one SO_REUSEPORT socket per core, a thread each) / TCP (tokio)
//!   -> server::query      parse header, question, OPT and ECS; classify
//!   -> Snapshot (ArcSwap) immutable: zones, identity, limits
//!        zone::ZoneSet    longest-match zone, then the RFC 1034 §4.3.2 lookup
//!   -> server::answer     write prebuilt records: AA, SOA on negatives, ECS, NSID, TC
//!   -> socket
//! ```
//!
//! Modules and what they may use: `config` (serde, no tokio), `zone` (no tokio),
//! `server` (sockets and the wire format), `app` (wiring).

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod bridge;
pub mod config;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod server;
pub mod snapshot;
pub mod zone;
