//! The UDP read loop: one thread per socket, buffers reused, no allocation per
//! query. On Linux, packets are read and answered in batches with recvmmsg and
//! sendmmsg (one system call for up to 32 queries when they queue up); elsewhere,
//! one recv_from and send_to per packet.

use std::io::ErrorKind;
use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::dnstap::Proto;
use super::querylog::QueryLog;
use crate::answer::handler::{handle_udp, Gate};
use crate::answer::rrl::{self, Rrl, Verdict};
use crate::answer::snapshot::{Snapshot, SnapshotHandle};
use crate::answer::Observed;
use crate::metrics::Shard;

/// Largest query read: bigger datagrams are not DNS queries we answer (RFC 6891
/// lets a client send up to its own payload size; 4096 covers every real one).
const MAX_QUERY: usize = 4096;

/// What one socket thread answers with, and the one sequence every packet goes
/// through on either loop: answer, count, log if sampled, rate-limit.
pub(super) struct Worker {
    pub snap: SnapshotHandle,
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<Shard>,
    pub rrl: Arc<Rrl>,
    pub qlog: Arc<QueryLog>,
    /// For rate limiting and the query log's per-second budget.
    pub start: Instant,
}

impl Worker {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    /// Seconds on a monotonic clock, for rate limiting.
    fn now(&self) -> u64 {
        self.start.elapsed().as_secs()
    }

    /// Answers one packet into `out`; true when `out` is to be sent. What watches
    /// queries (dnstap, the site prober's sampling) is off on most servers: the
    /// query then pays one branch for both, and their work stays out of this
    /// function's registers.
    #[inline]
    fn answer(
        &self,
        current: &Snapshot,
        pkt: &[u8],
        (client, port): (IpAddr, u16),
        now: u64,
        out: &mut Vec<u8>,
    ) -> bool {
        #[cfg(debug_assertions)]
        test_panic(pkt);
        if self.qlog.dnstap_on() || crate::latency::probe::sampling() {
            return self.answer_watched(current, pkt, (client, port), now, out);
        }
        self.answer_plain(current, pkt, client, now, out).1
    }

    /// [`Self::answer`]'s work: the answer, its counters, the query log, RRL.
    #[inline]
    fn answer_plain(
        &self,
        current: &Snapshot,
        pkt: &[u8],
        client: IpAddr,
        now: u64,
        out: &mut Vec<u8>,
    ) -> (Observed, bool) {
        let gate = Gate { rrl: &self.rrl };
        let o = handle_udp(current, pkt, client, gate, out);
        self.counters.record(&o, false);
        if self.qlog.wants(now) {
            self.qlog.log(current, pkt, client, "udp", &o);
        }
        let send = o.sent && self.limit(&o, pkt, client, out);
        (o, send)
    }

    /// [`Self::answer`] with dnstap or the site prober on.
    #[cold]
    #[inline(never)]
    fn answer_watched(
        &self,
        current: &Snapshot,
        pkt: &[u8],
        (client, port): (IpAddr, u16),
        now: u64,
        out: &mut Vec<u8>,
    ) -> bool {
        crate::latency::probe::note(client);
        let tapped = self.qlog.dnstap_sample();
        let (o, send) = self.answer_plain(current, pkt, client, now, out);
        if let Some(at) = tapped {
            let response = send.then_some(out.as_slice());
            self.qlog.tap(
                current,
                at,
                Proto::Udp,
                client,
                Some(port),
                pkt,
                response,
                &o,
            );
        }
        send
    }

    /// Applies rate limiting to a response about to go out. Returns false to drop it.
    fn limit(&self, o: &Observed, pkt: &[u8], client: IpAddr, out: &mut Vec<u8>) -> bool {
        let verdict = match o.rrl {
            // Asked already, before the answer was signed.
            Some(v) => v,
            // A valid server cookie: not a spoofed source, never limited.
            None if !self.rrl.enabled() || o.verified => return true,
            None => {
                let question = pkt
                    .get(12..12 + o.question_len as usize)
                    .unwrap_or_default();
                self.rrl.check(client, || rrl::classify(o, question, out))
            }
        };
        match verdict {
            Verdict::Send => true,
            Verdict::Drop => {
                self.counters.rrl(false);
                false
            }
            Verdict::Slip => {
                self.counters.rrl(true);
                rrl::slip(out, o.question_len as usize);
                true
            }
        }
    }
}

/// UDP read loops restarted after a panic, since the process started.
pub(crate) static RESTARTS: AtomicU64 = AtomicU64::new(0);

/// Runs the socket's read loop until the server stops. A panic in it (a bug: no
/// input is meant to cause one) loses the packets in hand and restarts the loop on
/// the same socket, counted and logged: the thread is supervised rather than the
/// process aborted, because a packet that panics would otherwise stop every
/// socket, and again after each restart of the whole process.
/// Debug builds only, for the supervision test: with SIGNPOST_TEST_PANIC set, a
/// query whose name starts with the label `panic-now` panics its read loop.
#[cfg(debug_assertions)]
fn test_panic(pkt: &[u8]) {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ARMED.get_or_init(|| std::env::var_os("SIGNPOST_TEST_PANIC").is_some())
        && pkt.get(12..22) == Some(b"\x09panic-now".as_slice())
    {
        panic!("SIGNPOST_TEST_PANIC: a query asked for a panic");
    }
}

pub(super) fn serve(sock: UdpSocket, w: Worker) {
    loop {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_once(&sock, &w)));
        match run {
            Ok(()) => return,
            Err(_) if !w.running() => return,
            Err(_) => {
                let n = RESTARTS.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    restarts = n,
                    "a UDP read loop panicked (a bug: please report it with the log above); restarted"
                );
            }
        }
    }
}

fn serve_once(sock: &UdpSocket, w: &Worker) {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("SIGNPOST_NO_MMSG").is_none() {
            batched::serve(sock, w);
            return;
        }
    }
    serve_simple(sock, w);
}

/// One packet per system call.
fn serve_simple(sock: &UdpSocket, w: &Worker) {
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(4096);
    while w.running() {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            // ICMP errors from earlier sends surface here on some systems; they say
            // nothing about the next packet.
            Err(_) => continue,
        };
        let current = w.snap.load();
        if w.answer(
            &current,
            &buf[..n],
            (src.ip(), src.port()),
            w.now(),
            &mut out,
        ) {
            // A send that fails (a full queue, an unreachable client) drops this one
            // response; the client retries.
            let _ = sock.send_to(&out, src);
        }
    }
}

#[cfg(target_os = "linux")]
mod batched {
    use std::io::{IoSlice, IoSliceMut};
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{
        recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, SockaddrLike,
    };
    use smallvec::SmallVec;

    use super::{Worker, MAX_QUERY};

    /// Queries read (and responses sent) per system call at most.
    const BATCH: usize = 32;

    /// A peer address of one family: a socket is IPv4 or IPv6 only, so the loop
    /// copies 16 or 28 bytes per packet, not a 128-byte sockaddr_storage.
    trait Peer: SockaddrLike + Copy {
        fn ip_port(&self) -> (IpAddr, u16);
    }

    impl Peer for SockaddrIn {
        fn ip_port(&self) -> (IpAddr, u16) {
            (IpAddr::V4(self.ip()), self.port())
        }
    }

    impl Peer for SockaddrIn6 {
        fn ip_port(&self) -> (IpAddr, u16) {
            (IpAddr::V6(self.ip()), self.port())
        }
    }

    pub(super) fn serve(sock: &UdpSocket, w: &Worker) {
        match sock.local_addr() {
            Ok(SocketAddr::V6(_)) => run::<SockaddrIn6>(sock, w),
            _ => run::<SockaddrIn>(sock, w),
        }
    }

    fn run<A: Peer>(sock: &UdpSocket, w: &Worker) {
        let fd = sock.as_raw_fd();
        let mut bufs: Box<[[u8; MAX_QUERY]; BATCH]> = Box::new([[0; MAX_QUERY]; BATCH]);
        let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
        let mut recv_headers = MultiHeaders::<A>::preallocate(BATCH, None);
        let mut send_headers = MultiHeaders::<A>::preallocate(BATCH, None);
        // On the stack: nothing is allocated per batch.
        let mut got: SmallVec<[(usize, Option<A>); BATCH]> = SmallVec::new();
        let mut dests: SmallVec<[Option<A>; BATCH]> = SmallVec::new();
        let mut ready: SmallVec<[usize; BATCH]> = SmallVec::new();
        while w.running() {
            got.clear();
            {
                let mut iovs = bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
                // Block (up to the socket's read timeout) for the first packet,
                // then take whatever else is already queued.
                match recvmmsg(
                    fd,
                    &mut recv_headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_WAITFORONE,
                    None,
                ) {
                    Ok(results) => {
                        for r in results {
                            // A datagram larger than the buffer is not a query.
                            let truncated = r.flags.contains(MsgFlags::MSG_TRUNC);
                            got.push((if truncated { 0 } else { r.bytes }, r.address));
                        }
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                    Err(_) => continue,
                }
            }
            let current = w.snap.load();
            // With more than one query in hand, their table lines are asked for
            // at once, so that their cache misses overlap instead of coming one
            // after another: first every slot, then every record. A table small
            // enough to stay in cache is left alone.
            if got.len() > 1 {
                if let Some(f) = current.fast.get().filter(|f| f.worth_warming()) {
                    let mut slots: SmallVec<[usize; BATCH]> = SmallVec::new();
                    for (i, (n, _)) in got.iter().enumerate() {
                        if let Some(s) = f.warm_slot(&bufs[i][..*n]) {
                            slots.push(s);
                        }
                    }
                    for &s in &slots {
                        f.warm_record(s);
                    }
                }
            }
            let now = w.now();
            crate::dnssec::budget::batch_begins();
            dests.clear();
            ready.clear();
            for (i, (n, addr)) in got.iter().enumerate() {
                let Some(src) = addr else {
                    continue;
                };
                if w.answer(&current, &bufs[i][..*n], src.ip_port(), now, &mut outs[i]) {
                    ready.push(i);
                    dests.push(*addr);
                }
            }
            if ready.is_empty() {
                continue;
            }
            let slices: SmallVec<[[IoSlice<'_>; 1]; BATCH]> =
                ready.iter().map(|&i| [IoSlice::new(&outs[i])]).collect();
            // A send that fails drops those responses; clients retry.
            let _ = sendmmsg(
                fd,
                &mut send_headers,
                slices.iter(),
                &dests,
                [],
                MsgFlags::empty(),
            );
        }
    }
}
