//! Errors of the geo module.

use std::net::IpAddr;
use std::path::PathBuf;

/// Everything that can go wrong while loading a geo database or building a
/// CIDR override table. Lookups themselves never fail: a broken record is
/// reported as "no data" (see [`super::Locator::decode_errors`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GeoError {
    /// The database file could not be read.
    #[error("cannot read geo database {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a usable MaxMind DB. The reader's own error is kept
    /// as an opaque source so that no other module has to name the reader
    /// crate.
    #[error("invalid MaxMind DB: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// Neither the metadata nor the records say which layout the database
    /// uses; the operator has to give field paths.
    #[error(
        "cannot tell the record layout of database type {database_type:?}: \
         configure field paths for it"
    )]
    UnknownSchema { database_type: String },

    /// A configured field path cannot be used.
    #[error("field path for {field}: {reason}")]
    InvalidFieldPath {
        field: &'static str,
        reason: &'static str,
    },

    /// A CIDR string could not be parsed.
    #[error("invalid CIDR {input:?}: {reason}")]
    InvalidCidr { input: String, reason: &'static str },

    /// A prefix length longer than the address family allows.
    #[error("prefix length /{prefix_len} is longer than /{max}")]
    PrefixTooLong { prefix_len: u8, max: u8 },

    /// The same network was inserted twice into a CIDR table (the network's
    /// address and prefix length: this file stands below `cidr`'s `IpNet`).
    #[error("network {addr}/{prefix_len} is listed twice")]
    DuplicateCidr { addr: IpAddr, prefix_len: u8 },

    /// The search tree cannot be walked network by network (it points outside the
    /// file, disagrees with lookups, or is too large); lookups still work.
    #[error("cannot list the database's networks: {reason}")]
    Unwalkable { reason: &'static str },
}
