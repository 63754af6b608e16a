//! signpost: an authoritative DNS server that steers each client to the right region.
//!
//! One query's path:
//!
//! ```text
//! UDP socket (SO_REUSEPORT, one thread each, recvmmsg batches) / TCP, DoT, DoH (tokio)
//!   -> server::handler      one packet in, at most one response out (UDP and TCP alike)
//!        server::query      parse header, question, OPT and ECS; classify
//!        server::fast       UDP: prebuilt whole answers per (name, type); a steered
//!                           name: server::steercache, else the decision below
//!   -> Snapshot (ArcSwap)   immutable: zones, policies, geo database, health view
//!        zone::ZoneSet      longest-match zone, then the RFC 1034 §4.3.2 lookup
//!        geo::ClientLocator overrides, then the database: location + network prefix
//!        policy::decide     pure: (policy, client, health, now) -> endpoints, reason, scope
//!   -> server::answer       write prebuilt records: AA, SOA on negatives, ECS, NSID, TC
//!        server::opt        the response's OPT record (payload, NSID, ECS, cookie)
//!   -> server::rrl          response rate limiting (UDP)
//!   -> socket
//! ```
//!
//! Floors, bottom up; an arrow (a `use`) may only point down, and
//! `tests/layers.rs` fails on one that points up or closes a circle (the few that
//! still do are listed there, each with the move that removes it):
//!
//! 1. `zone` (names, RDATA, master files, TTLs, the lookup), and the shared
//!    helpers that name nothing else: `units` (the one duration grammar) and
//!    `clock` (Unix time)
//! 2. `geo` (the only module naming maxminddb)
//! 3. `policy` (the pure decision, no I/O; a zone's steering,
//!    `policy::ZoneSteering`, lives beside the zone in the snapshot, which
//!    keeps only an index into it)
//! 4. `health` (probes, state machine, scheduler; never policy or server)
//! 5. the answer: `server::{query, handler, answer, opt, fast, fast_build,
//!    steercache, warm}`, `dnssec` (keys, prebuilt RRSIGs), `bridge` (health as
//!    policy's view, for the query path); no sockets
//! 6. `config` (serde, compiled into the types of floors 1-5; owns its plain
//!    settings, `config::transport`; the grammars its tables share,
//!    `config::values`; no tokio)
//! 7. the transports: the rest of `server` (UDP, TCP, DoT, DoH, TLS, RRL, query
//!    log, connections, cookies)
//! 8. the application: `app` (snapshot building), `snapshot`, `reload` (the only
//!    one naming notify), `fleet` (etcd), `admin` (HTTP, and the `/metrics`
//!    exposition), `metrics` (the query counters), `memory` (glibc's thresholds,
//!    and freed memory given back after a load or reload), `main`
//!
//! Crypto comes from ring through `dnssec`, the TLS setup (`server::tls`, the
//! health probes' TLS), DNS cookies and the probes' query ids.

// Denied, not forbidden: `server::warm` allows it, for the prefetch hint whose
// measured gain is in docs/architecture.md (the UDP fast path), and `memory`, for
// glibc's malloc_trim after a load.
#![deny(unsafe_code)]

pub mod admin;
pub mod answer;
pub mod app;
pub mod clock;
pub mod config;
pub mod dnssec;
pub mod fleet;
pub mod geo;
pub mod health;
pub mod latency;
pub mod malloc;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod rollout;
pub mod secondary;
pub mod secret;
pub mod serve;
pub mod server;
pub mod units;
pub mod zone;
