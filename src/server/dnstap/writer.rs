//! The thread that takes sampled queries off the queue and writes them to the
//! collector: connect, the Frame Streams handshake, data frames in batches; on any
//! failure the connection is dropped and tried again after a backoff that doubles
//! from 100 ms to 5 s. While it is down nothing is taken off the queue, so the
//! queue fills and the socket threads count what does not fit; they never wait.
//! On stop: STOP, and a short wait for FINISH.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fstrm;
use super::message::{Encoder, Event};
use crate::config::dnstap::Collector;

/// What the exposition shows (see docs/reference/metrics.md).
#[derive(Debug, Default)]
pub struct Stats {
    /// Queries whose messages reached the collector's socket.
    pub written: AtomicU64,
    /// Queries whose messages were lost: the queue was full, or the connection
    /// broke with them in hand.
    pub dropped: AtomicU64,
    /// Connections made (handshake done), and attempts that failed.
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// 1 while connected.
    pub connected: AtomicU64,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long a connect, a handshake step or a write may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long STOP waits for FINISH at shutdown.
const FINISH_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the writer looks at the queue (the socket threads never wake it):
/// often enough that, at the rate it last saw, the queue is a quarter full by
/// then, within these bounds.
const POLL_MIN: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(20);
/// Bytes gathered before a write.
const BATCH_BYTES: usize = 64 * 1024;

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(b),
            Stream::Tcp(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(b),
            Stream::Tcp(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

impl Stream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
        }
    }
}

fn connect(to: &Collector) -> io::Result<Stream> {
    let mut s = match to {
        Collector::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
        Collector::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, IO_TIMEOUT)?;
            let _ = s.set_nodelay(true);
            Stream::Tcp(s)
        }
    };
    s.set_timeouts(IO_TIMEOUT)?;
    fstrm::open(&mut s)?;
    Ok(s)
}

pub(super) struct Writer {
    pub collector: Collector,
    pub identity: Vec<u8>,
    pub version: Vec<u8>,
    pub rx: Receiver<Event>,
    pub stop: Arc<AtomicBool>,
    pub stats: &'static Stats,
    /// The queue's capacity.
    pub queue: usize,
}

impl Writer {
    pub(super) fn run(self) {
        let mut conn: Option<Stream> = None;
        let mut backoff = BACKOFF_MIN;
        let mut next_try = Instant::now();
        let mut failing = false;
        let mut enc = Encoder::default();
        let mut buf = Vec::with_capacity(BATCH_BYTES * 2);
        let mut last = Instant::now();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                if let Some(mut s) = conn.take() {
                    // Whatever is still queued goes out first.
                    let _ = self.drain(&mut s, &mut enc, &mut buf);
                    let _ = s.set_timeouts(FINISH_TIMEOUT);
                    let _ = fstrm::close(&mut s);
                }
                self.stats.connected.store(0, Ordering::Relaxed);
                return;
            }
            let Some(s) = conn.as_mut() else {
                if Instant::now() < next_try {
                    std::thread::sleep(POLL_MIN.min(next_try - Instant::now()));
                    continue;
                }
                match connect(&self.collector) {
                    Ok(s) => {
                        tracing::info!(collector = %self.collector, "dnstap: connected");
                        conn = Some(s);
                        backoff = BACKOFF_MIN;
                        failing = false;
                        self.stats.connects.fetch_add(1, Ordering::Relaxed);
                        self.stats.connected.store(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(collector = %self.collector, error = %e, "dnstap: cannot reach the collector; retrying with backoff (queries are answered meanwhile, their messages dropped once the queue is full)");
                            failing = true;
                        }
                        self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                        next_try = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
                continue;
            };
            match self.drain(s, &mut enc, &mut buf) {
                Ok(n) => {
                    let now = Instant::now();
                    let per_sec = n as f64 / now.duration_since(last).as_secs_f64().max(1e-6);
                    last = now;
                    let quarter = self.queue as f64 / 4.0;
                    let poll = Duration::from_secs_f64(quarter / per_sec.max(1.0));
                    std::thread::sleep(poll.clamp(POLL_MIN, POLL_MAX));
                }
                Err(e) => {
                    tracing::warn!(collector = %self.collector, error = %e, "dnstap: the connection to the collector broke; reconnecting");
                    conn = None;
                    self.stats.connected.store(0, Ordering::Relaxed);
                    failing = true;
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Writes what the queue holds now, in batches; the number of queries taken.
    fn drain(&self, s: &mut Stream, enc: &mut Encoder, buf: &mut Vec<u8>) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            buf.clear();
            let mut in_batch = 0u64;
            let mut empty = false;
            while buf.len() < BATCH_BYTES {
                match self.rx.try_recv() {
                    Ok(e) => {
                        enc.frames(&e, &self.identity, &self.version, buf);
                        in_batch += 1;
                    }
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {
                        empty = true;
                        break;
                    }
                }
            }
            if in_batch == 0 {
                return Ok(taken);
            }
            taken += in_batch as usize;
            if let Err(e) = s.write_all(buf) {
                self.stats.dropped.fetch_add(in_batch, Ordering::Relaxed);
                return Err(e);
            }
            self.stats.written.fetch_add(in_batch, Ordering::Relaxed);
            if empty {
                return Ok(taken);
            }
        }
    }
}
