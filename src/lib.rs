//! signpost: an authoritative DNS server that steers each client to the right region.
//!
//! One query's path:
//!
//! ```text
//! UDP socket (SO_REUSEPORT, one thread each, recvmmsg batches) / TCP, DoT, DoH (tokio)
//!   -> answer::fast_path    UDP: the fast table's prebuilt answer per (name, type),
//!                           or a steered name's answer from answer::decision_cache,
//!                           or a signed answer kept from the general path (answer::signed_cache)
//!   -> answer::handler      one packet in, at most one response out (UDP and TCP alike)
//!        answer::query      parse header, question, OPT and ECS; classify
//!   -> Snapshot (ArcSwap)   immutable: zones, steering, geo database, health view
//!        zone::ZoneSet      longest-match zone, then the RFC 1034 §4.3.2 lookup
//!        geo::ClientLocator overrides, then the database: location + network prefix
//!        policy::decide     pure: (policy, client, health, dials) -> endpoints, reason, scope
//!   -> answer::rrl          response rate limiting (asked before any signing)
//!   -> answer::write        prebuilt records: AA, SOA on negatives, ECS, NSID, TC;
//!        answer::opt        the response's OPT record (payload, NSID, ECS, cookie)
//!   -> socket; server::querylog and server::dnstap take a copy, never waiting
//! ```
//!
//! Floors, bottom up; an arrow (a `use`) may only point down, and
//! `tests/layers.rs` fails on one that points up or closes a circle:
//!
//! 1. `zone` (names, RDATA, master files, TTLs, the lookup, TSIG), and the shared
//!    helpers that name nothing else: `units` (the one duration grammar), `clock`
//!    (Unix time), `secret` (the constant-time compare)
//! 2. `geo` (the only module naming maxminddb)
//! 3. `policy` (the pure decision, no I/O; one file per concern: dials,
//!    jurisdictions, scope maps; a zone's steering, `policy::ZoneSteering`, lives
//!    beside the zone in the snapshot, which keeps only an index into it)
//! 4. `health` (probes, metric checks, pushed verdicts, shedding's signal, the state
//!    machine, the scheduler) and `latency` (samples in, a measured table out)
//! 5. `answer` (the query path: bytes in, bytes out, from a snapshot; no sockets:
//!    query parsing, the handler, the response writer, the fast table and its
//!    build, the decision cache, RRL, cookies, NOTIFY's verdict, zone transfers'
//!    messages, the snapshot type and its health view), `dnssec` (keys, prebuilt
//!    RRSIGs, signing on the fly), `metrics` (the counters the query path bumps)
//! 6. `config` (serde, compiled into the types of floors 1-5; owns its plain
//!    settings, `config::transport`; the grammars its tables share,
//!    `config::values`; no tokio)
//! 7. the transports: `server` (UDP, TCP, DoT, DoH, TLS, the query log, dnstap,
//!    zone transfers and NOTIFY on the wire, connections), and `latency::rum`
//!    (the real-user collector's listener)
//! 8. the application: `app` (snapshot building), `reload`, `secondary` (zones
//!    pulled from primaries), `fleet` (etcd), `rollout` (ramps), `admin` (HTTP, the
//!    `/metrics` exposition, the dashboard), `malloc` (glibc's thresholds, and
//!    freed memory given back after a load or reload), `serve` (starts and stops
//!    all of it), `main` (arguments only)
//!
//! Crypto comes from ring through `dnssec`, TSIG, the TLS setup (`server::tls`,
//! the health probes' TLS), DNS cookies and the probes' query ids.

// Denied, not forbidden: `answer::prefetch` allows it, for the prefetch hint whose
// measured gain is in docs/architecture.md (the UDP fast path), and `malloc`, for
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
mod sys;
pub mod units;
pub mod zone;
