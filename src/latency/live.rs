//! The rows of the live table as the last refresh made them: what the
//! serving [`LatencyTable`] is built from, what explain's labels are written
//! from (on demand, not at every refresh), and what the next refresh copies
//! for every network whose figures did not change.
//!
//! Invariants: `keys` are sorted, each once; row `r` is `keys[r]`, its cells
//! `cells[r * width .. (r + 1) * width]` (one per region, the figures before
//! the hysteresis); `held` has the rows whose published figures the
//! hysteresis lifted, with the figures it published. A row has at least one
//! cell. Per network: 32 bytes a region, the key, and the row of the serving
//! table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hysteresis::Steady;
use super::key::NetKey;
use crate::geo::cidr::IpNet;
use crate::policy::{LatencyTable, RowLabels};

/// One region's counted figure for one network.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The decayed weighted median of the window, in ms.
    pub rtt_ms: f32,
    pub samples: u32,
    pub senders: usize,
    /// Whether the operator's feed contributed.
    pub feed: bool,
    /// Of `samples`, how many came from this instance's site probes.
    pub probes: u32,
    /// The fleet site this figure was shared by; none: measured here.
    pub site: Option<String>,
    /// When the newest sample arrived.
    pub newest: Instant,
}

impl Figure {
    /// "12 samples from 5 senders, 40 s old"
    pub fn describe(&self, now: Instant) -> String {
        let age = now.saturating_duration_since(self.newest).as_secs();
        let mut parts = Vec::new();
        if self.feed {
            parts.push("the feed".to_string());
        }
        if self.senders > 0 || (!self.feed && self.probes == 0) {
            parts.push(format!("{} senders", self.senders));
        }
        if self.probes > 0 {
            parts.push(format!("{} probes", self.probes));
        }
        let from = parts.join(" and ");
        let mut text = format!("{} samples from {from}, {age} s old", self.samples);
        if let Some(site) = &self.site {
            text = format!("{text}, shared by {site}");
        }
        text
    }
}

/// One region's counted figure for one network, as a row keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    rtt_ms: f32,
    samples: u32,
    probes: u32,
    senders: u32,
    /// The sharing site's index in `sites` plus one; 0: measured here.
    site: u16,
    feed: bool,
    /// The newest sample's arrival, in ns after the rows' epoch.
    newest_ns: u64,
}

#[derive(Debug, Clone)]
struct Held {
    note: Box<str>,
    row: Box<[Option<f32>]>,
}

/// See the module's header.
#[derive(Debug)]
pub(crate) struct LiveRows {
    regions: Arc<[String]>,
    sites: Vec<String>,
    epoch: Instant,
    /// When these rows were made: labels give ages as of then.
    as_of: Instant,
    keys: Vec<NetKey>,
    cells: Vec<Option<Cell>>,
    held: HashMap<u32, Held>,
}

impl LiveRows {
    pub(crate) fn new(
        regions: Arc<[String]>,
        sites: Vec<String>,
        epoch: Instant,
        as_of: Instant,
    ) -> LiveRows {
        LiveRows {
            regions,
            sites,
            epoch,
            as_of,
            keys: Vec::new(),
            cells: Vec::new(),
            held: HashMap::new(),
        }
    }

    fn width(&self) -> usize {
        self.regions.len().max(1)
    }

    fn cells(&self, r: usize) -> &[Option<Cell>] {
        let w = self.width();
        self.cells.get(r * w..(r + 1) * w).unwrap_or(&[])
    }

    /// Row `r` of `prev`, unchanged, as the next row here.
    pub(crate) fn copy_row(&mut self, prev: &LiveRows, r: usize) {
        let at = self.keys.len() as u32;
        self.keys.push(prev.keys[r]);
        self.cells.extend_from_slice(prev.cells(r));
        if let Some(h) = prev.held.get(&(r as u32)) {
            self.held.insert(at, h.clone());
        }
    }

    /// A row made afresh: the figures, the published figures (after the
    /// hysteresis) and its note. Returns the row's index.
    pub(crate) fn push_row(
        &mut self,
        key: NetKey,
        figs: &[Option<Figure>],
        published: Vec<Option<f32>>,
        note: Option<String>,
    ) -> usize {
        let at = self.keys.len();
        self.keys.push(key);
        for f in figs.iter().take(self.width()) {
            let cell = f.as_ref().map(|f| self.cell(f));
            self.cells.push(cell);
        }
        if let Some(note) = note {
            let row = published.into_boxed_slice();
            let held = Held {
                note: note.into(),
                row,
            };
            self.held.insert(at as u32, held);
        }
        at
    }

    fn cell(&self, f: &Figure) -> Cell {
        let site = f
            .site
            .as_ref()
            .and_then(|s| self.sites.iter().position(|n| n == s))
            .map_or(0, |i| u16::try_from(i + 1).unwrap_or(u16::MAX));
        Cell {
            rtt_ms: f.rtt_ms,
            samples: f.samples,
            probes: f.probes,
            senders: u32::try_from(f.senders).unwrap_or(u32::MAX),
            site,
            feed: f.feed,
            newest_ns: u64::try_from(f.newest.saturating_duration_since(self.epoch).as_nanos())
                .unwrap_or(u64::MAX),
        }
    }

    fn figure(&self, c: &Cell) -> Figure {
        Figure {
            rtt_ms: c.rtt_ms,
            samples: c.samples,
            senders: c.senders as usize,
            feed: c.feed,
            probes: c.probes,
            site: c
                .site
                .checked_sub(1)
                .map(|i| self.sites.get(usize::from(i)).cloned().unwrap_or_default()),
            newest: self.epoch + Duration::from_nanos(c.newest_ns),
        }
    }

    /// The figures row `r` publishes (ms per region).
    fn published(&self, r: usize) -> Vec<Option<f32>> {
        match self.held.get(&(r as u32)) {
            Some(h) => h.row.to_vec(),
            None => self.cells(r).iter().map(|c| c.map(|c| c.rtt_ms)).collect(),
        }
    }

    /// Every row: its network, its figures (per region) and what it publishes.
    pub(crate) fn iter(
        &self,
    ) -> impl Iterator<Item = (NetKey, Vec<Option<Figure>>, Vec<Option<f32>>)> + '_ {
        self.keys.iter().enumerate().map(|(r, k)| {
            let figs = self
                .cells(r)
                .iter()
                .map(|c| c.as_ref().map(|c| self.figure(c)))
                .collect();
            (*k, figs, self.published(r))
        })
    }

    /// Whether row `r` here publishes what row `p` of `prev` did.
    pub(crate) fn same_row(&self, r: usize, prev: &LiveRows, p: usize) -> bool {
        self.published(r) == prev.published(p)
            && self.held.get(&(r as u32)).map(|h| &h.note)
                == prev.held.get(&(p as u32)).map(|h| &h.note)
    }

    /// The serving table of these rows; its labels are written from them
    /// when explain asks.
    pub(crate) fn table(self: &Arc<Self>) -> LatencyTable {
        let mut t = LatencyTable::default();
        t.rows.reserve_exact(self.keys.len());
        for (r, key) in self.keys.iter().enumerate() {
            let idx = r as u32;
            match *key {
                NetKey::Net(addr, len) => {
                    let Ok(net) = IpNet::new(addr, len) else {
                        continue;
                    };
                    if !t.exact.push(net, idx) {
                        let _ = t.cidr.insert(net, idx);
                    }
                }
                NetKey::Asn(a) => {
                    t.asn.insert(a, idx);
                }
                NetKey::Country(c) => {
                    t.country.insert(c, idx);
                }
            }
            t.rows.push(self.published(r));
        }
        t.live_labels = Some(self.clone() as Arc<dyn RowLabels>);
        t
    }
}

impl RowLabels for LiveRows {
    /// "measured 198.51.100.0/24: eu-west 12 ms (5 samples from 5 senders,
    /// 40 s old)", and the hysteresis' note.
    fn label(&self, row: u32) -> Option<String> {
        let r = row as usize;
        let key = self.keys.get(r)?;
        let parts: Vec<String> = self
            .cells(r)
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let f = self.figure(c.as_ref()?);
                let name = self.regions.get(i).map(String::as_str).unwrap_or("?");
                Some(format!(
                    "{name} {} ms ({})",
                    f.rtt_ms,
                    f.describe(self.as_of)
                ))
            })
            .collect();
        let mut label = format!("measured {key}: {}", parts.join("; "));
        if let Some(h) = self.held.get(&row) {
            label = format!("{label}; {}", h.note);
        }
        Some(label)
    }
}

/// A walk over the last refresh's rows beside the new ones, both in key order.
pub(crate) struct Walk<'a> {
    prev: Option<&'a LiveRows>,
    at: usize,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(prev: Option<&'a LiveRows>) -> Walk<'a> {
        Walk { prev, at: 0 }
    }

    /// Passes the last rows' networks before `key`: they left the table
    /// (forgotten by `steady`). True if there were any.
    pub(crate) fn skip_to(
        &mut self,
        key: &NetKey,
        mut steady: Option<&mut Steady<NetKey>>,
    ) -> bool {
        let Some(prev) = self.prev else { return false };
        let mut left = false;
        while let Some(k) = prev.keys.get(self.at).filter(|k| *k < key) {
            if let Some(s) = steady.as_deref_mut() {
                s.forget(k);
            }
            left = true;
            self.at += 1;
        }
        left
    }

    /// The last rows and `key`'s row in them, if it had one (the walk moves past it).
    pub(crate) fn current(&mut self, key: &NetKey) -> Option<(&'a LiveRows, usize)> {
        let prev = self.prev?;
        if prev.keys.get(self.at) == Some(key) {
            self.at += 1;
            return Some((prev, self.at - 1));
        }
        None
    }

    /// Passes the rest of the last rows: true if any are left (they left the table).
    pub(crate) fn skip_to_end(&mut self, steady: Option<&mut Steady<NetKey>>) -> bool {
        let Some(prev) = self.prev else { return false };
        let rest = prev.keys.get(self.at..).unwrap_or(&[]);
        if let Some(s) = steady {
            for k in rest {
                s.forget(k);
            }
        }
        self.at = prev.keys.len();
        !rest.is_empty()
    }
}
