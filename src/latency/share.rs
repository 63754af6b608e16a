//! Fleet sharing of measured figures: each instance publishes its own counted
//! figures (not raw samples) under its lease, and merges every other site's
//! into its table (issue 29).
//!
//! The value is JSON, bounded: at most `max_entries` figures (biggest sample
//! counts first) and [`MAX_BYTES`] bytes. What comes from the store is outside
//! input: a value over [`MAX_BYTES`], not the expected shape, with more than
//! [`MAX_ENTRIES`] figures or a bad figure in it, is counted and changes
//! nothing (the site's last good value stands). Regions this instance does not
//! measure are skipped. The etcd client stays in `fleet`; this module is the
//! pure part and the process's store of other sites' figures.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
#[cfg(test)]
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::geo::cidr::IpNet;

use super::table::{MAX_COUNT, MAX_RTT_MS, MIN_RTT_MS};
use super::{Aggregator, Figure, LatencyHandle, NetKey};

/// The most bytes of one site's value, written or read.
pub(crate) const MAX_BYTES: usize = 256 * 1024;
/// The most figures one site's value may hold.
pub(crate) const MAX_ENTRIES: usize = 20_000;
/// A shared figure older than this is not merged.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(3600);

/// What another site could have published: no more figures than this
/// instance's own bound (the fleet shares one config), and, unless probes may
/// measure private space here, no figure for a network no site can measure
/// from the internet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plausible {
    pub max_entries: usize,
    pub allow_private: bool,
}

impl Default for Plausible {
    fn default() -> Self {
        Plausible {
            max_entries: MAX_ENTRIES,
            allow_private: false,
        }
    }
}

impl Plausible {
    /// Why figure `s` for `key` could not have been measured, if it could not.
    fn refuse(&self, key: &NetKey, s: &Shared) -> Option<String> {
        if s.senders > s.samples {
            return Some(format!(
                "{}: {} distinct senders of {} samples",
                s.net, s.senders, s.samples
            ));
        }
        let NetKey::Net(addr, _) = key else {
            return None;
        };
        let private = super::probe::private(*addr) && !self.allow_private;
        if super::probe::never_routable(*addr) || private {
            return Some(format!(
                "{}: not a network a site measures (private, loopback, multicast or unspecified)",
                s.net
            ));
        }
        None
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Value {
    v: u32,
    figures: Vec<Shared>,
}

/// One published figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    /// `198.51.100.0/24`, `AS64500` or `country JP` (as [`NetKey`] prints).
    net: String,
    region: String,
    rtt_ms: f32,
    samples: u32,
    senders: u32,
    /// Seconds since its newest sample, when published.
    age_s: u64,
}

/// A [`NetKey`] from its printed form.
fn parse_key(s: &str) -> Option<NetKey> {
    if let Some(a) = s.strip_prefix("AS") {
        return a.parse().ok().map(NetKey::Asn);
    }
    if let Some(c) = s.strip_prefix("country ") {
        return NetKey::of_country(c).ok();
    }
    let net: IpNet = s.parse().ok()?;
    if net.had_host_bits() {
        return None;
    }
    NetKey::of_net(net).ok()
}

/// This instance's own counted figures (none shared by others), biggest
/// sample counts first, at most `max_entries` and [`MAX_BYTES`] bytes.
pub fn encode(agg: &Aggregator, now: Instant, max_entries: usize) -> String {
    // The biggest `max` counts, kept in a heap of that size while the
    // networks go by: no list of every figure (100,000 networks, 3 regions).
    let max = max_entries.min(MAX_ENTRIES);
    // (samples, key, region, rtt_ms's bits, senders, age in s)
    type Entry = (u32, Reverse<NetKey>, usize, u32, usize, u64);
    let mut best: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    for key in agg.keys() {
        for (r, f) in agg.figures(&key, now).into_iter().enumerate() {
            let Some(f) = f else { continue };
            let age = now.saturating_duration_since(f.newest).as_secs();
            let e = Reverse((
                f.samples,
                Reverse(key),
                r,
                f.rtt_ms.to_bits(),
                f.senders,
                age,
            ));
            if best.len() < max {
                best.push(e);
            } else if best.peek().is_some_and(|low| e < *low) {
                best.pop();
                best.push(e);
            }
        }
    }
    let regions = agg.regions();
    let mut all: Vec<Shared> = best
        .into_iter()
        .map(
            |Reverse((samples, Reverse(key), r, rtt, senders, age_s))| Shared {
                net: key.to_string(),
                region: regions.get(r).cloned().unwrap_or_default(),
                rtt_ms: f32::from_bits(rtt),
                samples,
                senders: u32::try_from(senders).unwrap_or(u32::MAX),
                age_s,
            },
        )
        .collect();
    all.sort_by(|a, b| b.samples.cmp(&a.samples).then_with(|| a.net.cmp(&b.net)));
    let mut bytes = 20;
    let mut keep = 0;
    for s in &all {
        let n = serde_json::to_string(s).map(|t| t.len() + 1).unwrap_or(0);
        if bytes + n > MAX_BYTES {
            break;
        }
        bytes += n;
        keep += 1;
    }
    all.truncate(keep);
    serde_json::to_string(&Value { v: 1, figures: all }).unwrap_or_default()
}

/// Why a value was refused: not the shape, or figures no site could have
/// measured (counted apart).
#[derive(Debug)]
enum Refused {
    Bad(String),
    Implausible(String),
}

/// A site's figures as received, checked.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    figures: Vec<(NetKey, String, Figure)>,
}

/// Checks a value from the store; an error names the first problem.
fn decode(
    value: &[u8],
    site: &str,
    now: Instant,
    plausible: &Plausible,
) -> Result<Received, Refused> {
    if value.len() > MAX_BYTES {
        return Err(Refused::Bad(format!(
            "value of {} bytes; at most {MAX_BYTES}",
            value.len()
        )));
    }
    let v: Value = serde_json::from_slice(value)
        .map_err(|e| Refused::Bad(format!("not a figures value: {e}")))?;
    if v.v != 1 {
        return Err(Refused::Bad(format!(
            "version {}; this instance reads 1",
            v.v
        )));
    }
    if v.figures.len() > MAX_ENTRIES {
        return Err(Refused::Bad(format!(
            "{} figures; at most {MAX_ENTRIES}",
            v.figures.len()
        )));
    }
    let bound = plausible.max_entries.min(MAX_ENTRIES);
    if v.figures.len() > bound {
        return Err(Refused::Implausible(format!(
            "{} figures; a site publishes at most {bound}",
            v.figures.len()
        )));
    }
    let mut figures = Vec::with_capacity(v.figures.len());
    for s in v.figures {
        let key = parse_key(&s.net).ok_or_else(|| Refused::Bad(format!("network {:?}", s.net)))?;
        if let Some(why) = plausible.refuse(&key, &s) {
            return Err(Refused::Implausible(why));
        }
        let rtt = f64::from(s.rtt_ms);
        if !(rtt.is_finite() && (MIN_RTT_MS..=MAX_RTT_MS).contains(&rtt)) {
            return Err(Refused::Bad(format!("rtt_ms {} of {}", s.rtt_ms, s.net)));
        }
        if s.samples == 0 || s.samples > MAX_COUNT || s.senders > MAX_COUNT {
            return Err(Refused::Bad(format!("samples {} of {}", s.samples, s.net)));
        }
        if s.region.is_empty() || s.region.len() > 63 {
            return Err(Refused::Bad("a region name".to_string()));
        }
        let age = Duration::from_secs(s.age_s.min(MAX_AGE.as_secs() + 1));
        figures.push((
            key,
            s.region,
            Figure {
                rtt_ms: s.rtt_ms,
                samples: s.samples,
                senders: s.senders as usize,
                feed: false,
                probes: 0,
                site: Some(site.to_string()),
                newest: now.checked_sub(age).unwrap_or(now),
            },
        ));
    }
    Ok(Received { at: now, figures })
}

/// The process's store of other sites' figures, and what this instance
/// publishes.
#[derive(Default)]
pub struct Sharing {
    sites: Mutex<BTreeMap<String, Received>>,
    local: OnceLock<(LatencyHandle, usize, Duration)>,
    plausible: OnceLock<Plausible>,
    rejected: AtomicU64,
    implausible: AtomicU64,
    received: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's sharing store.
pub fn global() -> &'static Sharing {
    static S: OnceLock<Sharing> = OnceLock::new();
    S.get_or_init(Sharing::default)
}

impl Sharing {
    /// Names the aggregator this instance publishes from (once per process).
    pub(crate) fn set_local(&self, handle: LatencyHandle, max_entries: usize, every: Duration) {
        let _ = self.local.set((handle, max_entries, every));
    }

    /// How often to publish; none: nothing to publish.
    pub fn every(&self) -> Option<Duration> {
        self.local.get().map(|l| l.2)
    }

    /// This instance's value to publish; none without a measured table.
    pub(crate) fn own_value(&self, now: Instant) -> Option<String> {
        let (h, max, _) = self.local.get()?;
        let agg = h.lock();
        Some(encode(&agg, now, *max))
    }

    /// What this instance takes for plausible in other sites' values (once
    /// per process; the defaults until then).
    pub(crate) fn set_plausible(&self, p: Plausible) {
        let _ = self.plausible.set(p);
    }

    /// Takes in site `site`'s value; a bad or implausible one is counted and
    /// changes nothing.
    pub(crate) fn ingest(&self, site: &str, value: &[u8]) -> Result<(), String> {
        let plausible = self.plausible.get().copied().unwrap_or_default();
        match decode(value, site, Instant::now(), &plausible) {
            Ok(r) => {
                self.received.fetch_add(1, Relaxed);
                lock(&self.sites).insert(site.to_string(), r);
                Ok(())
            }
            Err(Refused::Bad(e)) => {
                self.rejected.fetch_add(1, Relaxed);
                Err(e)
            }
            Err(Refused::Implausible(e)) => {
                self.rejected.fetch_add(1, Relaxed);
                self.implausible.fetch_add(1, Relaxed);
                Err(format!("implausible: {e}"))
            }
        }
    }

    /// Of the values refused, those with figures no site could have measured.
    pub fn implausible(&self) -> u64 {
        self.implausible.load(Relaxed)
    }

    /// Forgets a site (its key was deleted or its lease ended).
    pub(crate) fn forget(&self, site: &str) {
        lock(&self.sites).remove(site);
    }

    /// Values refused, and values taken in.
    pub fn counts(&self) -> (u64, u64) {
        (self.rejected.load(Relaxed), self.received.load(Relaxed))
    }

    /// Every site's figures by network, per region of `regions` (by name);
    /// figures older than [`MAX_AGE`] are left out.
    pub fn merged(&self, regions: &[String], now: Instant) -> HashMap<NetKey, Vec<Option<Figure>>> {
        let mut out: HashMap<NetKey, Vec<Option<Figure>>> = HashMap::new();
        let sites = lock(&self.sites);
        for r in sites.values() {
            let _ = r.at;
            for (key, region, f) in &r.figures {
                if now.saturating_duration_since(f.newest) > MAX_AGE {
                    continue;
                }
                let Some(i) = regions.iter().position(|n| n == region) else {
                    continue;
                };
                let row = out.entry(*key).or_insert_with(|| vec![None; regions.len()]);
                let better = match &row[i] {
                    None => true,
                    Some(m) => (f.samples, f.newest) > (m.samples, m.newest),
                };
                if better {
                    row[i] = Some(f.clone());
                }
            }
        }
        out
    }
}

/// For tests: a network key's printed form parses back.
#[doc(hidden)]
#[cfg(test)]
pub(crate) fn key_round_trips(ip: IpAddr) -> bool {
    let k = NetKey::of_addr(ip);
    parse_key(&k.to_string()) == Some(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::{AggregatorLimits, Sample, Sender};

    fn agg_with(nets: u32, per: u32) -> Aggregator {
        let mut a = Aggregator::new(vec!["eu".into(), "us".into()], AggregatorLimits::default());
        let t = Instant::now();
        for n in 0..nets {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0xcb00_0000u32 + (n << 8) + 1));
            for _ in 0..(per + n) {
                let s = Sample {
                    key: NetKey::of_addr(addr),
                    region: 0,
                    rtt_ms: 20.0,
                    sender: Sender::Probe(addr),
                    count: 1,
                };
                a.add(&s, t).unwrap();
            }
        }
        a
    }

    #[test]
    fn keys_round_trip() {
        assert!(key_round_trips("203.0.113.9".parse().unwrap()));
        assert!(key_round_trips("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_key("AS64500"), Some(NetKey::Asn(64500)));
        assert_eq!(parse_key("country JP"), Some(NetKey::Country(*b"JP")));
        assert_eq!(parse_key("203.0.113.9/24"), None, "host bits");
        assert_eq!(parse_key("203.0.113.9/32"), None, "narrower than /24");
    }

    #[test]
    fn published_value_is_bounded_biggest_counts_first_and_reads_back() {
        let a = agg_with(10, 5);
        let now = Instant::now();
        let v = encode(&a, now, 3);
        let r = decode(v.as_bytes(), "s1", now, &Plausible::default()).unwrap();
        assert_eq!(r.figures.len(), 3);
        let counts: Vec<u32> = r.figures.iter().map(|f| f.2.samples).collect();
        assert_eq!(counts, vec![14, 13, 12], "biggest first");
        assert!(v.len() <= MAX_BYTES);
        assert_eq!(r.figures[0].2.site.as_deref(), Some("s1"));
    }

    #[test]
    fn hostile_values_change_nothing_and_are_counted() {
        let s = Sharing::default();
        let now = Instant::now();
        let good = encode(&agg_with(1, 5), now, 10);
        s.ingest("a", good.as_bytes()).unwrap();
        let regions = vec!["eu".to_string(), "us".to_string()];
        let before = s.merged(&regions, now);
        assert_eq!(before.len(), 1);
        let huge = format!(
            "{{\"v\":1,\"figures\":[],\"pad\":\"{}\"}}",
            "x".repeat(MAX_BYTES)
        );
        let bad = [
            huge.as_str(),
            "not json",
            r#"{"v":2,"figures":[]}"#,
            r#"{"v":1,"figures":[{"net":"203.0.113.0/24","region":"eu","rtt_ms":-1,"samples":5,"senders":1,"age_s":0}]}"#,
            r#"{"v":1,"figures":[{"net":"203.0.113.0/24","region":"eu","rtt_ms":1e30,"samples":5,"senders":1,"age_s":0}]}"#,
            r#"{"v":1,"figures":[{"net":"203.0.113.7/32","region":"eu","rtt_ms":5,"samples":5,"senders":1,"age_s":0}]}"#,
            r#"{"v":1,"figures":[{"net":"203.0.113.0/24","region":"eu","rtt_ms":5,"samples":0,"senders":1,"age_s":0}]}"#,
            r#"{"v":1,"figures":[],"extra":1}"#,
        ];
        for b in bad {
            assert!(s.ingest("a", b.as_bytes()).is_err(), "{b:.80}");
        }
        assert_eq!(s.counts().0, bad.len() as u64);
        let after = s.merged(&regions, now);
        assert_eq!(after.len(), before.len());
        // A region this instance does not measure is skipped, not an error.
        let other = r#"{"v":1,"figures":[{"net":"198.51.100.0/24","region":"mars","rtt_ms":5,"samples":5,"senders":1,"age_s":0}]}"#;
        s.ingest("b", other.as_bytes()).unwrap();
        assert_eq!(s.merged(&regions, now).len(), 1);
        s.forget("a");
        assert!(s.merged(&regions, now).is_empty());
    }

    #[test]
    fn implausible_figures_are_refused_counted_apart_and_change_nothing() {
        let s = Sharing::default();
        s.set_plausible(Plausible {
            max_entries: 2,
            allow_private: false,
        });
        let now = Instant::now();
        let regions = vec!["eu".to_string(), "us".to_string()];
        let good = encode(&agg_with(1, 5), now, 10);
        s.ingest("a", good.as_bytes()).unwrap();
        let before = s.merged(&regions, now);
        let fig = |net: &str, samples: u32, senders: u32| {
            format!(
                r#"{{"net":"{net}","region":"eu","rtt_ms":5,"samples":{samples},"senders":{senders},"age_s":0}}"#
            )
        };
        let value = |figs: &[String]| format!(r#"{{"v":1,"figures":[{}]}}"#, figs.join(","));
        let bad = [
            value(&[fig("203.0.113.0/24", 5, 6)]),
            value(&[fig("10.1.2.0/24", 5, 1)]),
            value(&[fig("127.0.0.0/24", 5, 1)]),
            value(&[fig("224.0.0.0/24", 5, 1)]),
            value(&[fig("0.0.0.0/0", 5, 1)]),
            value(&[fig("fd00:1::/48", 5, 1)]),
            value(&[
                fig("203.0.113.0/24", 5, 1),
                fig("198.51.100.0/24", 5, 1),
                fig("192.0.2.0/24", 5, 1),
            ]),
        ];
        for b in &bad {
            let e = s.ingest("a", b.as_bytes()).expect_err(b);
            assert!(e.starts_with("implausible"), "{e}");
        }
        assert_eq!(s.implausible(), bad.len() as u64);
        assert_eq!(s.counts().0, bad.len() as u64);
        let after = s.merged(&regions, now);
        assert_eq!(after.len(), before.len());
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>()
        );
        // Where probes may measure private space, such a network is plausible.
        let lab = Sharing::default();
        lab.set_plausible(Plausible {
            max_entries: 2,
            allow_private: true,
        });
        lab.ingest("a", value(&[fig("127.0.0.0/24", 5, 1)]).as_bytes())
            .unwrap();
    }
}
