//! What the snapshot holds for zone transfers: the transfer settings (`[transfer]`
//! and `[[tsig]]`, checked) and the journal of differences between the serials
//! served. [`super::xfr`] builds transfers from them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::geo::cidr::IpNet;
use crate::zone::tsig::Keyring;
use crate::zone::{name, Name};

/// What a steered name of a policy zone transfers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Standin {
    /// The answer a client with no known location gets with every region up.
    #[default]
    Default,
    /// Nothing: the secondary has no records at the steered name.
    None,
}

/// Transfer settings of one zone (or the defaults).
#[derive(Debug, Clone, Default)]
pub struct ZoneTransfer {
    /// Client networks allowed; empty: any address (then `keys` must be set).
    pub allow: Vec<IpNet>,
    /// TSIG keys allowed, by name; empty: no key needed (then `allow` must be set).
    pub keys: Vec<Name>,
    pub standin: Standin,
    /// Secondaries sent a NOTIFY when the zone's serial changes.
    pub notify: Vec<SocketAddr>,
    /// The key NOTIFYs are signed with; none: unsigned.
    pub notify_key: Option<Name>,
}

impl ZoneTransfer {
    /// Whether transfers are open to anyone at all: one of `allow` or `keys` set.
    pub(crate) fn enabled(&self) -> bool {
        !self.allow.is_empty() || !self.keys.is_empty()
    }

    /// Whether a client at `ip`, signed with `key` (checked), may transfer: in
    /// `allow` when `allow` is set AND signed with one of `keys` when `keys` is set.
    pub(crate) fn admits(&self, ip: std::net::IpAddr, key: Option<&Name>) -> bool {
        if !self.enabled() {
            return false;
        }
        let by_address = self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip));
        let by_key = self.keys.is_empty() || key.is_some_and(|k| self.keys.contains(k));
        by_address && by_key
    }
}

/// `[[tsig]]` and `[transfer]`, checked.
#[derive(Debug, Clone)]
pub struct TransferConfig {
    /// Every `[[tsig]]` key.
    pub keys: Keyring,
    /// `[transfer]`'s own settings: every zone's unless it has a table.
    pub defaults: ZoneTransfer,
    /// `[transfer.zone."NAME"]` tables, the defaults filled in.
    pub zones: Vec<(Name, ZoneTransfer)>,
    /// Differences kept per zone for IXFR.
    pub journal: usize,
    /// Where the served serials and the journal are kept across restarts
    /// (`server::xfr_journal`); none: in memory only.
    pub journal_dir: Option<std::path::PathBuf>,
}

/// The default of `transfer.journal`.
pub const DEFAULT_JOURNAL: usize = 16;

impl Default for TransferConfig {
    fn default() -> TransferConfig {
        TransferConfig {
            keys: Keyring::default(),
            defaults: ZoneTransfer::default(),
            zones: Vec::new(),
            journal: DEFAULT_JOURNAL,
            journal_dir: None,
        }
    }
}

impl TransferConfig {
    /// The settings of the zone `origin`.
    pub fn zone(&self, origin: &Name) -> &ZoneTransfer {
        self.zones
            .iter()
            .find(|(n, _)| n == origin)
            .map_or(&self.defaults, |(_, z)| z)
    }
}

/// One record of a transfer: the owner (uncompressed, lower-cased wire) and what
/// follows it on the wire (TYPE, CLASS, TTL, RDLENGTH, RDATA).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rr {
    pub owner: Box<[u8]>,
    pub tail: Box<[u8]>,
}

impl Rr {
    /// The SOA serial, for an SOA record.
    pub(crate) fn soa_serial(&self) -> Option<u32> {
        let rd = self.tail.get(10..)?;
        let m = name::wire_name_len(rd)?;
        let r = name::wire_name_len(&rd[m..])?;
        let s = rd.get(m + r..m + r + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// The differences of one zone between two serials signpost served.
#[derive(Debug)]
pub struct Diff {
    pub from_soa: Rr,
    pub to_soa: Rr,
    pub removed: Vec<Rr>,
    pub added: Vec<Rr>,
}

impl Diff {
    /// Records removed and added.
    pub(crate) fn len(&self) -> usize {
        self.removed.len() + self.added.len()
    }

    pub(crate) fn from(&self) -> Option<u32> {
        self.from_soa.soa_serial()
    }
}

/// Each zone's recent differences, oldest first. Immutable in a snapshot; a
/// reload makes the next one from the last (see [`carry_journal`]).
#[derive(Debug, Default, Clone)]
pub struct Journal {
    pub(crate) zones: FxHashMap<Name, VecDeque<Arc<Diff>>>,
}

impl Journal {
    /// The differences from `serial` to the zone's current one, if the journal
    /// reaches back to it.
    pub(crate) fn since(&self, zone: &Name, serial: u32) -> Option<Vec<Arc<Diff>>> {
        let diffs = self.zones.get(zone)?;
        let start = diffs.iter().position(|d| d.from() == Some(serial))?;
        Some(diffs.iter().skip(start).cloned().collect())
    }
}
