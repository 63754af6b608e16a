//! dnstap output: every query (or one in `sample`) as an AUTH_QUERY and an
//! AUTH_RESPONSE message, protobuf in Frame Streams, to a collector on a Unix
//! socket or a TCP address, with a steered answer's decision in the message's
//! `extra` field (see docs/dnstap.md for its form).
//!
//! The query path never waits for the collector: a socket thread copies the query,
//! the response and the decision into one buffer and offers it to a bounded queue;
//! when the queue is full the query is counted as dropped and answered all the
//! same. One writer thread (`writer`) empties the queue. Off, the socket threads
//! pay one branch per query.

mod fstrm;
mod message;
mod writer;

use std::cell::Cell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use message::{Proto, Stamp};
pub use writer::Stats;

use crate::config::dnstap::DnstapConfig;

/// The counters of the one dnstap output a process has.
pub(crate) static STATS: Stats = Stats {
    written: std::sync::atomic::AtomicU64::new(0),
    dropped: std::sync::atomic::AtomicU64::new(0),
    connects: std::sync::atomic::AtomicU64::new(0),
    connect_failures: std::sync::atomic::AtomicU64::new(0),
    connected: std::sync::atomic::AtomicU64::new(0),
};

/// Whether dnstap was started (its metrics are shown only then).
pub(crate) static ON: AtomicBool = AtomicBool::new(false);

/// The sending half, shared by every socket thread and connection.
pub struct Tap {
    tx: SyncSender<message::Event>,
    sample: u32,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap").field("sample", &self.sample).finish()
    }
}

thread_local! {
    /// Queries this thread has seen, for sampling: no shared counter to fight over.
    static SEEN: Cell<u32> = const { Cell::new(0) };
}

/// Whether this query is one to send at one in `every` (0: dnstap is off), and
/// if so the time it came in.
#[inline]
pub fn sample(every: u32) -> Option<Stamp> {
    if every == 0 {
        return None;
    }
    if every > 1 {
        let n = SEEN.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(if n >= every { 0 } else { n });
            n
        });
        if n < every {
            return None;
        }
    }
    Some(now())
}

fn now() -> Stamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

impl Tap {
    /// Starts the writer thread; it connects (and reconnects) on its own.
    pub fn start(cfg: DnstapConfig) -> std::io::Result<Arc<Tap>> {
        let (tx, rx) = sync_channel(cfg.queue);
        let queue = cfg.queue;
        let stop = Arc::new(AtomicBool::new(false));
        let w = writer::Writer {
            collector: cfg.collector,
            identity: cfg.identity,
            version: cfg.version,
            rx,
            stop: stop.clone(),
            stats: &STATS,
            queue,
        };
        let thread = std::thread::Builder::new()
            .name("dnstap".into())
            .spawn(move || w.run())?;
        ON.store(true, Ordering::Relaxed);
        Ok(Arc::new(Tap {
            tx,
            sample: cfg.sample,
            stop,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// One query in this many is sent.
    pub fn sample(&self) -> u32 {
        self.sample
    }

    /// Offers one sampled query to the queue; `response` is what went out, if
    /// anything did. Never blocks: a full queue counts the query as dropped.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        at: Stamp,
        proto: Proto,
        client: IpAddr,
        port: Option<u16>,
        query: &[u8],
        response: Option<&[u8]>,
        steering: Option<Steering<'_>>,
    ) {
        let r_len = response.map_or(0, <[u8]>::len);
        let mut bytes = Vec::with_capacity(query.len() + r_len + 64);
        bytes.extend_from_slice(query);
        if let Some(r) = response {
            bytes.extend_from_slice(r);
        }
        if let Some(s) = steering {
            s.write(&mut bytes);
        }
        let e = message::Event {
            proto,
            client,
            port,
            query_time: at,
            response_time: now(),
            bytes,
            query_len: query.len() as u32,
            response_len: response.map(|r| r.len() as u32),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(e) {
            STATS.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops the writer: what is queued is written, then STOP and FINISH.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}

/// A steered answer's decision in the operator's names, for `extra`.
#[derive(Debug, Clone, Copy)]
pub struct Steering<'a> {
    /// The region of the first endpoint answered; `-` when none was.
    pub region: &'a str,
    /// As the query log and the metrics name it.
    pub reason: &'static str,
    /// The jurisdiction the client was fenced to; `-` when none.
    pub fence: &'a str,
    /// The decision's ECS scope.
    pub scope: u8,
}

impl Steering<'_> {
    /// `region=R;reason=W;fence=F;scope=N` (docs/dnstap.md).
    fn write(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "region={};reason={};fence={};scope={}",
            self.region, self.reason, self.fence, self.scope
        );
    }
}

/// The dnstap metrics in the Prometheus text format, when dnstap is on.
pub(crate) fn render(out: &mut String) {
    use std::fmt::Write as _;
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let s = &STATS;
    let rows = [
        ("signpost_dnstap_written_total", "counter", "Queries whose dnstap messages were written to the collector.", &s.written),
        ("signpost_dnstap_dropped_total", "counter", "Queries whose dnstap messages were dropped: the queue was full, or the connection broke with them in hand.", &s.dropped),
        ("signpost_dnstap_connects_total", "counter", "Connections to the dnstap collector made (handshake done).", &s.connects),
        ("signpost_dnstap_connect_failures_total", "counter", "Attempts to connect to the dnstap collector that failed.", &s.connect_failures),
        ("signpost_dnstap_connected", "gauge", "1 while connected to the dnstap collector.", &s.connected),
    ];
    for (name, kind, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
}
