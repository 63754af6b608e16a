//! Prometheus metrics. The query path counts into a shard of its own (one per UDP
//! socket thread, one for TCP): plain relaxed atomic adds on memory no other core
//! writes, so counting costs a few nanoseconds and no cache-line ping-pong.
//! `/metrics` sums the shards when scraped.
//!
//! Zones and steered names get a slot from a process-wide registry when a
//! configuration loads, so the query path counts by index, never by string.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use crate::answer::Observed;
use crate::policy::Reason;
use crate::zone::rtype;

/// Most zones and steered names counted separately; more share the last slot.
pub(crate) const ZONE_SLOTS: usize = 128;
pub(crate) const NAME_SLOTS: usize = 512;
/// Regions per zone counted separately.
pub(crate) const REGION_SLOTS: usize = 16;
/// The query types counted each in its own slot (named by the registry); the
/// rest share the last slot, labelled "other".
const QTYPES: [u16; 11] = [
    rtype::A,
    rtype::NS,
    rtype::CNAME,
    rtype::SOA,
    rtype::PTR,
    rtype::MX,
    rtype::TXT,
    rtype::AAAA,
    rtype::SRV,
    rtype::DS,
    rtype::ANY,
];
const QTYPE_SLOTS: usize = QTYPES.len() + 1;
const RCODES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "OTHER",
];
const REASONS: [&str; 8] = [
    "rule", "latency", "failover", "weighted", "all", "fence", "all-down", "nodata",
];
const TRANSPORTS: [&str; 2] = ["udp", "tcp"];

fn qtype_slot(t: u16) -> usize {
    QTYPES.iter().position(|&q| q == t).unwrap_or(QTYPES.len())
}

fn rcode_slot(r: u16) -> usize {
    match r {
        0..=5 => r as usize,
        16 => 6,
        _ => 7,
    }
}

fn reason_slot(r: Reason) -> usize {
    match r {
        Reason::Rule(_) => 0,
        Reason::Latency => 1,
        Reason::Failover => 2,
        Reason::Weighted => 3,
        Reason::All => 4,
        Reason::Fence => 5,
        Reason::AllDown => 6,
        Reason::NoData => 7,
    }
}

/// The counters of one thread.
pub struct Shard {
    /// [zone][transport][rcode][qtype]
    queries: Box<[AtomicU64]>,
    /// Queries for no zone we serve: [transport][rcode][qtype]
    queries_no_zone: Box<[AtomicU64]>,
    /// [transport]
    truncated: [AtomicU64; 2],
    ecs: AtomicU64,
    dropped: AtomicU64,
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
    /// [name][region][reason]
    steered: Box<[AtomicU64]>,
    /// Only one thread ever counts here: a count is a plain load and store, not a
    /// locked read-modify-write (readers still see whole values).
    one_writer: bool,
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

const PER_ZONE: usize = 2 * RCODES.len() * QTYPE_SLOTS;

impl Shard {
    fn new(one_writer: bool) -> Shard {
        Shard {
            one_writer,
            queries: zeros(ZONE_SLOTS * PER_ZONE),
            queries_no_zone: zeros(PER_ZONE),
            truncated: [AtomicU64::new(0), AtomicU64::new(0)],
            ecs: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rrl_dropped: AtomicU64::new(0),
            rrl_slipped: AtomicU64::new(0),
            steered: zeros(NAME_SLOTS * REGION_SLOTS * REASONS.len()),
        }
    }

    /// Counts a response that rate limiting dropped or sent truncated.
    pub fn rrl(&self, slipped: bool) {
        if slipped {
            self.bump(&self.rrl_slipped);
        } else {
            self.bump(&self.rrl_dropped);
        }
    }

    #[inline]
    fn bump(&self, c: &AtomicU64) {
        if self.one_writer {
            c.store(c.load(Relaxed) + 1, Relaxed);
        } else {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Counts one query. `tcp` picks the transport.
    #[inline]
    pub fn record(&self, o: &Observed, tcp: bool) {
        if !o.sent {
            self.bump(&self.dropped);
            return;
        }
        let t = tcp as usize;
        let inner = (t * RCODES.len() + rcode_slot(o.rcode)) * QTYPE_SLOTS + qtype_slot(o.qtype);
        match o.zone_slot {
            Some(z) if (z as usize) < ZONE_SLOTS => {
                self.bump(&self.queries[z as usize * PER_ZONE + inner]);
            }
            _ => {
                self.bump(&self.queries_no_zone[inner]);
            }
        }
        if o.truncated {
            self.bump(&self.truncated[t]);
        }
        if o.ecs {
            self.bump(&self.ecs);
        }
        if let Some((name, region, reason)) = o.steered {
            let n = (name as usize).min(NAME_SLOTS - 1);
            let r = (region as usize).min(REGION_SLOTS - 1);
            let i = (n * REGION_SLOTS + r) * REASONS.len() + reason_slot(reason);
            self.bump(&self.steered[i]);
        }
    }
}

/// Slot names, in the order they were handed out.
#[derive(Default)]
struct Registry {
    zones: Vec<String>,
    names: Vec<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

fn slot_in(list: &mut Vec<String>, name: &str, cap: usize) -> u16 {
    if let Some(i) = list.iter().position(|n| n == name) {
        return i as u16;
    }
    if list.len() < cap - 1 {
        list.push(name.to_string());
        return (list.len() - 1) as u16;
    }
    (cap - 1) as u16
}

/// The counting slot of a zone (by origin); stable for the life of the process.
pub fn zone_slot(origin: &str) -> u16 {
    match registry().lock() {
        Ok(mut r) => slot_in(&mut r.zones, origin, ZONE_SLOTS),
        Err(_) => (ZONE_SLOTS - 1) as u16,
    }
}

/// The counting slot of a steered name.
pub fn name_slot(name: &str) -> u16 {
    match registry().lock() {
        Ok(mut r) => slot_in(&mut r.names, name, NAME_SLOTS),
        Err(_) => (NAME_SLOTS - 1) as u16,
    }
}

/// Every shard, and what the scrape adds from elsewhere.
#[derive(Default)]
pub struct Metrics {
    shards: Mutex<Vec<Arc<Shard>>>,
}

impl Metrics {
    /// A new shard that any number of threads may count in.
    pub fn shard(&self) -> Arc<Shard> {
        self.add_shard(false)
    }

    /// A new shard for one thread, the only one that counts in it (a UDP reader):
    /// counting there costs no locked instruction.
    pub fn thread_shard(&self) -> Arc<Shard> {
        self.add_shard(true)
    }

    fn add_shard(&self, one_writer: bool) -> Arc<Shard> {
        let s = Arc::new(Shard::new(one_writer));
        if let Ok(mut v) = self.shards.lock() {
            v.push(s.clone());
        }
        s
    }

    /// The Prometheus text exposition of the query counters, appended to `out`.
    /// `regions_of[slot]` names the regions of the steered name counted in `slot`
    /// (from the serving configuration; the admin endpoint gathers them).
    pub fn render_counters(&self, out: &mut String, regions_of: &[Vec<String>]) {
        let shards = self.shards.lock().map(|v| v.clone()).unwrap_or_default();
        let sum = |f: &dyn Fn(&Shard) -> u64| -> u64 { shards.iter().map(|s| f(s)).sum() };
        let (zones, names) = registry()
            .lock()
            .map(|r| (r.zones.clone(), r.names.clone()))
            .unwrap_or_default();
        out.push_str("# HELP signpost_queries_total Queries answered, by zone, query type, rcode and transport.\n# TYPE signpost_queries_total counter\n");
        let line = |zone: &str, t: usize, r: usize, q: usize, v: u64, out: &mut String| {
            let qt = QTYPES
                .get(q)
                .and_then(|&t| rtype::mnemonic(t))
                .unwrap_or("other");
            let _ = writeln!(
                out,
                "signpost_queries_total{{zone=\"{zone}\",qtype=\"{qt}\",rcode=\"{}\",transport=\"{}\"}} {v}",
                RCODES[r], TRANSPORTS[t]
            );
        };
        for (zi, zone) in zones.iter().enumerate() {
            for t in 0..2 {
                for r in 0..RCODES.len() {
                    for q in 0..QTYPE_SLOTS {
                        let i = zi * PER_ZONE + (t * RCODES.len() + r) * QTYPE_SLOTS + q;
                        let v = sum(&|s| s.queries[i].load(Relaxed));
                        if v > 0 {
                            line(zone, t, r, q, v, out);
                        }
                    }
                }
            }
        }
        for t in 0..2 {
            for r in 0..RCODES.len() {
                for q in 0..QTYPE_SLOTS {
                    let i = (t * RCODES.len() + r) * QTYPE_SLOTS + q;
                    let v = sum(&|s| s.queries_no_zone[i].load(Relaxed));
                    if v > 0 {
                        line("", t, r, q, v, out);
                    }
                }
            }
        }

        out.push_str("# HELP signpost_truncated_total Responses sent with TC set.\n# TYPE signpost_truncated_total counter\n");
        for (t, name) in TRANSPORTS.iter().enumerate() {
            let v = sum(&|s| s.truncated[t].load(Relaxed));
            let _ = writeln!(out, "signpost_truncated_total{{transport=\"{name}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP signpost_ecs_queries_total Queries whose EDNS Client Subnet was used.\n# TYPE signpost_ecs_queries_total counter\nsignpost_ecs_queries_total {}",
            sum(&|s| s.ecs.load(Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP signpost_dropped_total Packets answered with nothing (runts, responses).\n# TYPE signpost_dropped_total counter\nsignpost_dropped_total {}",
            sum(&|s| s.dropped.load(Relaxed))
        );

        let _ = writeln!(
            out,
            "# HELP signpost_rrl_responses_total Responses that response rate limiting dropped or sent truncated.\n# TYPE signpost_rrl_responses_total counter\nsignpost_rrl_responses_total{{action=\"drop\"}} {}\nsignpost_rrl_responses_total{{action=\"slip\"}} {}",
            sum(&|s| s.rrl_dropped.load(Relaxed)),
            sum(&|s| s.rrl_slipped.load(Relaxed))
        );

        out.push_str("# HELP signpost_steered_answers_total Steered answers, by name, region and reason.\n# TYPE signpost_steered_answers_total counter\n");
        for (ni, name) in names.iter().enumerate() {
            for r in 0..REGION_SLOTS {
                for (k, reason) in REASONS.iter().enumerate() {
                    let i = (ni * REGION_SLOTS + r) * REASONS.len() + k;
                    let v = sum(&|s| s.steered[i].load(Relaxed));
                    if v == 0 {
                        continue;
                    }
                    let region = regions_of
                        .get(ni)
                        .and_then(|l| l.get(r))
                        .map(|s| s.as_str())
                        .unwrap_or("");
                    let _ = writeln!(
                        out,
                        "signpost_steered_answers_total{{name=\"{name}\",region=\"{region}\",reason=\"{reason}\"}} {v}"
                    );
                }
            }
        }
    }
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
