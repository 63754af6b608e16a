//! DNS over TCP (RFC 7766): several queries per connection answered in order, an idle
//! timeout, a cap on connections, a deadline on every read and write so a slow or
//! silent client cannot hold a connection slot for long, and a shorter one from
//! accept to the first query (`handshake_timeout`).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout_at;

use super::conns::{Conn, Registry};
use super::dnstap::Proto;
use super::fdlimit;
use super::querylog::QueryLog;
use super::TcpLimits;
use crate::answer::handler::{handle, Transport};
use crate::answer::snapshot::SnapshotHandle;
use crate::metrics::Shard;

pub(super) async fn serve(
    listener: TcpListener,
    snap: SnapshotHandle,
    limits: TcpLimits,
    conns: Arc<Registry>,
    stop: watch::Receiver<bool>,
    counters: Arc<Shard>,
    qlog: Arc<QueryLog>,
) {
    let on_stop = stop.clone();
    let serve_one = move |mut stream: TcpStream, ip, conn: Arc<Conn>| {
        let (snap, stop, counters, qlog) =
            (snap.clone(), stop.clone(), counters.clone(), qlog.clone());
        async move {
            let _ = stream.set_nodelay(true);
            let path = Framed {
                snap,
                limits,
                counters,
                qlog,
                label: "tcp",
            };
            path.connection(&mut stream, ip, &conn, stop).await;
        }
    };
    accept(listener, "tcp", limits, conns, on_stop, serve_one).await
}

/// The accept loop of every stream transport (TCP, DoT, DoH): the connection cap
/// with the longest-idle connection closed for a newcomer, the per-client cap, the
/// lifetime bound, around `serve_one` for each accepted connection, until `stop`.
/// An accept that fails for lack of a descriptor or memory pauses the loop (see
/// `fdlimit`) rather than spinning on the listener.
pub(super) async fn accept<F, Fut>(
    listener: TcpListener,
    transport: &'static str,
    limits: TcpLimits,
    conns: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
    serve_one: F,
) where
    F: Fn(TcpStream, IpAddr, Arc<Conn>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) if fdlimit::is_resource_error(&e) => {
                fdlimit::accept_failed(transport, &e);
                // An idle connection of ours gives its descriptor back; with none,
                // rest rather than retry at once (the queue keeps the socket
                // readable: retrying would spin).
                let made = tokio::select! {
                    made = conns.make_room() => made,
                    _ = stop.changed() => return,
                };
                if !made {
                    tokio::select! {
                        _ = tokio::time::sleep(fdlimit::ACCEPT_BACKOFF) => {}
                        _ = stop.changed() => return,
                    }
                }
                continue;
            }
            // The client's trouble (reset before accept): next.
            Err(_) => continue,
        };
        let ip = peer.ip();
        crate::latency::probe::note(ip);
        // Over the per-client cap, or no room made in time: close at once rather
        // than queue (RFC 7766 §6.2.2).
        let slot = tokio::select! {
            s = conns.admit(ip) => s,
            _ = stop.changed() => return,
        };
        let Ok(slot) = slot else {
            drop(stream);
            continue;
        };
        let conn = serve_one(stream, ip, slot.conn.clone());
        tokio::spawn(async move {
            // However busy, a connection ends after its lifetime; an idle one ends
            // early when a newcomer needs its place.
            tokio::select! {
                _ = tokio::time::timeout(limits.max_lifetime, conn) => {}
                _ = slot.conn.evicted() => {}
            }
            drop(slot);
        });
    }
}

/// What a connection of 2-byte-length-framed DNS messages (TCP, and DoT inside its
/// TLS session, RFC 7858 §3.3) answers with.
pub(super) struct Framed {
    pub snap: SnapshotHandle,
    pub limits: TcpLimits,
    pub counters: Arc<Shard>,
    pub qlog: Arc<QueryLog>,
    /// The transport as the query log names it.
    pub label: &'static str,
}

impl Framed {
    /// Answers queries in order until the client goes quiet for the idle timeout,
    /// closes, sends something that is not a query, or `stop`.
    pub(super) async fn connection<S>(
        &self,
        stream: &mut S,
        peer: IpAddr,
        conn: &Conn,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.limits;
        let start = std::time::Instant::now();
        // The handshake (DoT) and the first query must be done by then.
        let first_by = conn.accepted + limits.handshake_timeout;
        let mut answered = false;
        let mut msg = Vec::with_capacity(512);
        let mut out = Vec::with_capacity(4096);
        loop {
            if *stop.borrow() {
                return;
            }
            let mut by = tokio::time::Instant::now() + limits.idle_timeout;
            if !answered {
                by = by.min(first_by);
            }
            let mut len = [0u8; 2];
            let read = tokio::select! {
                r = timeout_at(by, stream.read_exact(&mut len)) => r,
                _ = stop.changed() => return,
            };
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let n = u16::from_be_bytes(len) as usize;
            if n == 0 {
                return;
            }
            msg.resize(n, 0);
            // The message must follow promptly: a length prefix that lies about what
            // comes next ends the connection when the timeout expires.
            let mut by = tokio::time::Instant::now() + limits.idle_timeout;
            if !answered {
                by = by.min(first_by);
            }
            match timeout_at(by, stream.read_exact(&mut msg)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            if super::xfr::is_transfer(&msg) {
                let current = self.snap.load_full();
                let source = crate::answer::xfr::Source::of(&current);
                let sent = super::xfr::serve(source, &msg, peer, stream, limits.idle_timeout).await;
                if sent.is_err() {
                    return;
                }
                answered = true;
                conn.touch();
                continue;
            }
            let observed = {
                let current = self.snap.load();
                let tapped = self.qlog.dnstap_sample();
                let o = handle(&current, &msg, peer, Transport::Tcp, &mut out);
                if self.qlog.wants(start.elapsed().as_secs()) {
                    self.qlog.log(&current, &msg, peer, self.label, &o);
                }
                if let Some(at) = tapped {
                    let proto = Proto::from_label(self.label);
                    let response = o.sent.then_some(out.as_slice());
                    self.qlog
                        .tap(&current, at, proto, peer, None, &msg, response, &o);
                }
                o
            };
            self.counters.record(&observed, true);
            if !observed.sent {
                // Not a query we answer (a response, a runt): close, as NSD and Knot do.
                return;
            }
            let mut framed = Vec::with_capacity(out.len() + 2);
            framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
            framed.extend_from_slice(&out);
            // Flush: a TLS stream holds what it has not yet written out.
            let write = async {
                stream.write_all(&framed).await?;
                stream.flush().await
            };
            let by = tokio::time::Instant::now() + limits.idle_timeout;
            match timeout_at(by, write).await {
                Ok(Ok(())) => {}
                _ => return,
            }
            answered = true;
            conn.touch();
        }
    }
}
