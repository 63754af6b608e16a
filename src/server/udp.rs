//! The UDP read loop: one thread per socket, one reused buffer each way.

use std::io::ErrorKind;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::handler::{handle, Transport};
use crate::metrics::Shard;
use crate::snapshot::SnapshotHandle;

pub(super) fn serve(
    sock: UdpSocket,
    snap: SnapshotHandle,
    stop: Arc<AtomicBool>,
    counters: Arc<Shard>,
) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            // ICMP errors from earlier sends surface here on some systems; they say
            // nothing about the next packet.
            Err(_) => continue,
        };
        let current = snap.load();
        let o = handle(&current, &buf[..n], src.ip(), Transport::Udp, &mut out);
        if o.sent {
            // A send that fails (a full queue, an unreachable client) drops this one
            // response; the client retries.
            let _ = sock.send_to(&out, src);
        }
        counters.record(&o, false);
    }
}
