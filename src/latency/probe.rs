//! Site probes: this instance times round trips from its own region to the
//! networks that ask it (issue 29).
//!
//! ```text
//! UDP/TCP loops ──note(client), 1 in N──> Ring (fixed slots, never waits)
//! prober task ──drain──> Picker (never list, private, one per network per
//!   interval, bounded) ──jittered, `rate`/s──> probe_once: `. SOA` (RD=0) over
//!   UDP to the address's port 53, timed to the first answer with our id
//!   ──> Aggregator sample (source: probe, region: this site)
//! ```
//!
//! The query path pays one relaxed load (sampling off) or a thread-local
//! counter (on); one query in `sample_every` writes its address into a slot of
//! a fixed ring with a `try_lock` that never waits (a busy slot drops the
//! offer). A probe that gets no answer in `timeout` gives no sample, never a
//! large figure. No privilege is needed: an ordinary UDP socket.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::geo::cidr::IpNet;

use super::{LatencyHandle, NetKey, Sample, Sender};

/// Slots of the ring the query loops write sampled client addresses into.
pub(crate) const RING: usize = 256;
/// Addresses waiting for a probe.
pub(crate) const MAX_QUEUE: usize = 1024;
/// Networks remembered as probed within the interval.
pub(crate) const MAX_TRACKED: usize = 100_000;
/// Probes in flight at once.
pub(crate) const MAX_IN_FLIGHT: usize = 64;

/// A fixed ring of sampled client addresses. Writers never wait: a slot held
/// by the reader (or another writer) drops the offer.
pub(crate) struct Ring {
    slots: [Mutex<Option<IpAddr>>; RING],
    next: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Mutex<Option<IpAddr>> = Mutex::new(None);

impl Ring {
    pub const fn new() -> Ring {
        Ring {
            slots: [EMPTY; RING],
            next: AtomicUsize::new(0),
        }
    }

    /// Writes `ip` into the next slot, replacing what it held, unless busy.
    pub fn offer(&self, ip: IpAddr) {
        let i = self.next.fetch_add(1, Relaxed) % RING;
        if let Ok(mut s) = self.slots[i].try_lock() {
            *s = Some(ip);
        }
    }

    /// Takes every address held, emptying the slots.
    pub fn drain(&self, out: &mut Vec<IpAddr>) {
        for s in &self.slots {
            if let Ok(mut s) = s.try_lock() {
                if let Some(ip) = s.take() {
                    out.push(ip);
                }
            }
        }
    }
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new()
    }
}

static RING_OF_CLIENTS: Ring = Ring::new();
/// One query in this many offers its source; 0: probes off.
static EVERY: AtomicU32 = AtomicU32::new(0);

thread_local! {
    static COUNT: Cell<u32> = const { Cell::new(0) };
}

/// Called by the query loops with each client address: cheap when off (one
/// relaxed load), and when on a thread-local count; one in `sample_every`
/// goes into the ring.
#[inline]
pub fn note(ip: IpAddr) {
    let every = EVERY.load(Relaxed);
    if every == 0 {
        return;
    }
    let hit = COUNT.with(|c| {
        let n = c.get() + 1;
        let hit = n >= every;
        c.set(if hit { 0 } else { n });
        hit
    });
    if hit {
        RING_OF_CLIENTS.offer(ip);
    }
}

/// Whether queries are sampled for the prober.
#[inline]
pub fn sampling() -> bool {
    EVERY.load(Relaxed) != 0
}

/// Turns sampling on (one query in `every`) or off (0).
pub fn set_sampling(every: u32) {
    EVERY.store(every, Relaxed);
}

/// Why an address was not queued for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    /// In a network of the `never` list.
    Never,
    /// Private, loopback, link-local, multicast or unspecified.
    Private,
    /// Its network was probed within the interval, or is queued.
    Recent,
    /// The queue or the record of probed networks is full.
    Full,
}

/// Which addresses to probe: at most one per network (/24, /48) per
/// interval, none of the `never` list, no private ones unless allowed; the
/// queue and the record of probed networks are bounded.
pub(crate) struct Picker {
    interval: Duration,
    never: Vec<IpNet>,
    allow_private: bool,
    /// When each network was last queued.
    last: HashMap<NetKey, Instant>,
    queue: VecDeque<IpAddr>,
}

impl Picker {
    pub fn new(interval: Duration, never: Vec<IpNet>, allow_private: bool) -> Picker {
        Picker {
            interval,
            never,
            allow_private,
            last: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// Queues `ip` for a probe unless a rule says not to.
    pub fn offer(&mut self, ip: IpAddr, now: Instant) -> Result<(), Skip> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.never.iter().any(|n| n.contains(ip)) {
            return Err(Skip::Never);
        }
        if never_routable(ip) || (!self.allow_private && private(ip)) {
            return Err(Skip::Private);
        }
        let key = NetKey::of_addr(ip);
        if let Some(t) = self.last.get(&key) {
            if now.saturating_duration_since(*t) < self.interval {
                return Err(Skip::Recent);
            }
        }
        if self.queue.len() >= MAX_QUEUE {
            return Err(Skip::Full);
        }
        if self.last.len() >= MAX_TRACKED && !self.last.contains_key(&key) {
            self.prune(now);
            if self.last.len() >= MAX_TRACKED {
                return Err(Skip::Full);
            }
        }
        self.last.insert(key, now);
        self.queue.push_back(ip);
        Ok(())
    }

    /// The next address to probe.
    pub fn take(&mut self) -> Option<IpAddr> {
        self.queue.pop_front()
    }

    /// Forgets networks probed longer than an interval ago.
    pub(crate) fn prune(&mut self, now: Instant) {
        let interval = self.interval;
        self.last
            .retain(|_, t| now.saturating_duration_since(*t) < interval);
    }

    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

/// Never a unicast host on the internet, whatever the config says.
pub(super) fn never_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_unspecified() || a.is_broadcast() || a.is_multicast(),
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
    }
}

/// RFC 1918, loopback, link-local, shared (RFC 6598) and unique-local space.
pub(super) fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            a.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// The probe's query: `. SOA IN`, RD=0, with `id`.
pub fn query(id: u16) -> [u8; 17] {
    let [a, b] = id.to_be_bytes();
    [a, b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]
}

/// Whether `pkt` is an answer (QR set) to our query `id`.
pub fn answers(pkt: &[u8], id: u16) -> bool {
    pkt.len() >= 12 && u16::from_be_bytes([pkt[0], pkt[1]]) == id && pkt[2] & 0x80 != 0
}

/// Times one probe: a DNS query over UDP from `source` (or the system's
/// choice) to `target`, to the first answer with a matching id. `None` when
/// nothing matching came back within `timeout` or the socket failed.
pub(crate) async fn probe_once(
    target: SocketAddr,
    source: Option<IpAddr>,
    id: u16,
    timeout: Duration,
) -> Option<Duration> {
    let bind_ip = source.unwrap_or(match target {
        SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    let sock = tokio::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0))
        .await
        .ok()?;
    sock.connect(target).await.ok()?;
    let deadline = tokio::time::Instant::now() + timeout;
    let start = Instant::now();
    sock.send(&query(id)).await.ok()?;
    let mut buf = [0u8; 512];
    loop {
        let got = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
        match got {
            Err(_) => return None,
            Ok(Ok(n)) if answers(&buf[..n], id) => return Some(start.elapsed()),
            // Not ours (or an ICMP error surfacing): keep waiting to the deadline.
            Ok(_) => {
                if tokio::time::Instant::now() >= deadline {
                    return None;
                }
            }
        }
    }
}

/// How the prober runs.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// This site's region: its index in the aggregator's regions.
    pub region: u16,
    pub rate: f64,
    pub interval: Duration,
    pub timeout: Duration,
    pub sample_every: u32,
    pub never: Vec<IpNet>,
    pub allow_private: bool,
    pub port: u16,
    pub source: Option<IpAddr>,
}

/// What the prober did, for metrics.
#[derive(Debug, Default)]
pub struct ProbeCounters {
    pub sent: AtomicU64,
    pub answered: AtomicU64,
    pub timed_out: AtomicU64,
    pub skipped: AtomicU64,
}

/// The process's prober counters.
pub fn counters() -> &'static ProbeCounters {
    static C: std::sync::OnceLock<ProbeCounters> = std::sync::OnceLock::new();
    C.get_or_init(ProbeCounters::default)
}

/// The prober's metrics, in the Prometheus text format; nothing while
/// probes are off.
pub(crate) fn render_metrics(out: &mut String) {
    use std::fmt::Write as _;
    if EVERY.load(Relaxed) == 0 {
        return;
    }
    let c = counters();
    for (name, help, v) in [
        ("signpost_probes_sent_total", "Site probes sent.", &c.sent),
        ("signpost_probes_answered_total", "Site probes answered in time (each a sample).", &c.answered),
        ("signpost_probes_timed_out_total", "Site probes without an answer in time (no sample).", &c.timed_out),
        ("signpost_probes_skipped_total", "Sampled addresses not probed: never list, private, probed within the interval, queue full.", &c.skipped),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Relaxed)
        );
    }
}

/// A small random source: not for secrets, for jitter and query ids.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        let seed = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0.5, 1.5).
    fn factor(&mut self) -> f64 {
        0.5 + (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Probes until `stop`: every `1/rate` (jittered ±50 %) the next queued
/// address, its round trip added to `handle` as a probe sample of this
/// site's region.
pub async fn run(
    s: ProbeSettings,
    handle: LatencyHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    set_sampling(s.sample_every);
    let mut picker = Picker::new(s.interval, s.never.clone(), s.allow_private);
    let mut jitter = Jitter::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let c = counters();
    let base = 1.0 / s.rate.max(0.01);
    let mut seen = Vec::with_capacity(RING);
    let mut last_prune = Instant::now();
    loop {
        let pause = Duration::from_secs_f64(base * jitter.factor());
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        seen.clear();
        RING_OF_CLIENTS.drain(&mut seen);
        for ip in seen.drain(..) {
            if picker.offer(ip, now).is_err() {
                c.skipped.fetch_add(1, Relaxed);
            }
        }
        if now.saturating_duration_since(last_prune) > s.interval {
            picker.prune(now);
            last_prune = now;
        }
        let Some(ip) = picker.take() else { continue };
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            c.skipped.fetch_add(1, Relaxed);
            continue;
        };
        let id = jitter.next() as u16;
        let (handle, s2) = (handle.clone(), s.clone());
        c.sent.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let _permit = permit;
            let target = SocketAddr::new(ip, s2.port);
            match probe_once(target, s2.source, id, s2.timeout).await {
                Some(rtt) => {
                    counters().answered.fetch_add(1, Relaxed);
                    let sample = Sample {
                        key: NetKey::of_addr(ip),
                        region: s2.region,
                        rtt_ms: (rtt.as_secs_f64() * 1000.0).max(super::table::MIN_RTT_MS),
                        sender: Sender::Probe(ip),
                        count: 1,
                    };
                    let _ = handle.lock().add(&sample, Instant::now());
                }
                None => {
                    counters().timed_out.fetch_add(1, Relaxed);
                }
            }
        });
    }
    set_sampling(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ring_keeps_at_most_its_slots_and_drains_empty() {
        let r = Ring::new();
        for i in 0..(RING as u32 * 3) {
            r.offer(IpAddr::V4(std::net::Ipv4Addr::from(i)));
        }
        let mut out = Vec::new();
        r.drain(&mut out);
        assert_eq!(out.len(), RING);
        out.clear();
        r.drain(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn ring_offer_never_waits_for_a_held_slot() {
        let r = Ring::new();
        let held = r.slots[0].lock().unwrap();
        r.offer(ip("192.0.2.1")); // slot 0 busy: dropped, no wait
        r.offer(ip("192.0.2.2"));
        drop(held);
        let mut out = Vec::new();
        r.drain(&mut out);
        assert_eq!(out, vec![ip("192.0.2.2")]);
    }

    #[test]
    fn picker_one_per_network_per_interval_and_never_private() {
        let never = vec!["198.51.100.0/24".parse().unwrap()];
        let mut p = Picker::new(Duration::from_secs(60), never, false);
        let t = Instant::now();
        assert_eq!(p.offer(ip("203.0.113.7"), t), Ok(()));
        assert_eq!(p.offer(ip("203.0.113.9"), t), Err(Skip::Recent));
        assert_eq!(p.offer(ip("198.51.100.1"), t), Err(Skip::Never));
        for private in [
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "127.0.0.2",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::1",
        ] {
            assert_eq!(p.offer(ip(private), t), Err(Skip::Private), "{private}");
        }
        assert_eq!(p.offer(ip("224.0.0.1"), t), Err(Skip::Private));
        assert_eq!(p.take(), Some(ip("203.0.113.7")));
        assert_eq!(p.take(), None);
        // After the interval the network may be probed again.
        let later = t + Duration::from_secs(61);
        assert_eq!(p.offer(ip("203.0.113.9"), later), Ok(()));

        let mut open = Picker::new(Duration::from_secs(60), Vec::new(), true);
        assert_eq!(open.offer(ip("127.0.0.2"), t), Ok(()));
        assert_eq!(open.offer(ip("0.0.0.0"), t), Err(Skip::Private));
    }

    #[test]
    fn picker_queue_is_bounded() {
        let mut p = Picker::new(Duration::from_secs(60), Vec::new(), false);
        let t = Instant::now();
        let mut refused = 0;
        for i in 0..(MAX_QUEUE as u32 + 10) {
            let a = std::net::Ipv4Addr::from(0x0b00_0000u32 + (i << 8));
            if p.offer(IpAddr::V4(a), t) == Err(Skip::Full) {
                refused += 1;
            }
        }
        assert_eq!(p.queued(), MAX_QUEUE);
        assert_eq!(refused, 10);
    }

    #[test]
    fn probe_samples_alone_make_a_figure_that_says_so_but_lend_no_trust() {
        use crate::latency::{Aggregator, AggregatorLimits};
        let mut a = Aggregator::new(vec!["eu".into()], AggregatorLimits::default());
        let t = Instant::now();
        let (resolver, browser) = (ip("203.0.113.53"), ip("203.0.113.9"));
        let sample = |sender, rtt_ms| Sample {
            key: NetKey::of_addr(resolver),
            region: 0,
            rtt_ms,
            sender,
            count: 1,
        };
        // One probe and four beacons of one browser: no figure.
        a.add(&sample(Sender::Probe(resolver), 20.0), t).unwrap();
        for _ in 0..4 {
            a.add(&sample(Sender::Addr(browser), 900.0), t).unwrap();
        }
        assert_eq!(a.figures(&NetKey::of_addr(resolver), t)[0], None);
        // Five probes of one resolver (not held to per_sender): a figure.
        for _ in 0..4 {
            a.add(&sample(Sender::Probe(resolver), 20.0), t).unwrap();
        }
        let f = a.figures(&NetKey::of_addr(resolver), t)[0]
            .clone()
            .expect("figure");
        assert_eq!(f.probes, 5);
        assert!(
            f.describe(t).contains("1 senders and 5 probes"),
            "{}",
            f.describe(t)
        );
    }

    #[test]
    fn probe_query_is_root_soa_without_recursion() {
        let q = query(0xabcd);
        assert_eq!(&q[..2], &[0xab, 0xcd]);
        assert_eq!(q[2] & 0x01, 0, "RD=0");
        assert_eq!(&q[12..], &[0, 0, 6, 0, 1]);
        let mut a = q.to_vec();
        assert!(!answers(&a, 0xabcd), "a query is no answer");
        a[2] |= 0x80;
        assert!(answers(&a, 0xabcd));
        assert!(!answers(&a, 0xabce));
        assert!(!answers(&a[..5], 0xabcd));
    }

    #[tokio::test]
    async fn probe_times_an_answer_and_a_silent_server_gives_nothing() {
        let srv = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let (n, from) = srv.recv_from(&mut buf).await.unwrap();
            // A stray answer with the wrong id first, then the real one late.
            let mut wrong = buf[..n].to_vec();
            wrong[0] ^= 0xff;
            wrong[2] |= 0x80;
            srv.send_to(&wrong, from).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut ans = buf[..n].to_vec();
            ans[2] |= 0x80;
            srv.send_to(&ans, from).await.unwrap();
            srv
        });
        let rtt = probe_once(addr, Some(ip("127.0.0.1")), 7, Duration::from_secs(2))
            .await
            .expect("answered");
        assert!(rtt >= Duration::from_millis(30), "{rtt:?}");
        let _silent = server.await.unwrap();
        let t = Instant::now();
        let none = probe_once(addr, None, 8, Duration::from_millis(100)).await;
        assert!(none.is_none());
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
