//! DNS over TCP (RFC 7766): several queries per connection answered in order, an idle
//! timeout, a cap on connections, and a deadline on every read and write so a slow or
//! silent client cannot hold a connection slot for long.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use super::handler::{handle, Transport};
use super::querylog::QueryLog;
use super::TcpLimits;
use crate::metrics::Shard;
use crate::snapshot::SnapshotHandle;

pub(super) async fn serve(
    listener: TcpListener,
    snap: SnapshotHandle,
    limits: TcpLimits,
    conns: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    counters: Arc<Shard>,
    qlog: Arc<QueryLog>,
) {
    let on_stop = stop.clone();
    accept(listener, limits, conns, on_stop, move |mut stream, ip| {
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
            path.connection(&mut stream, ip, stop).await;
        }
    })
    .await
}

/// The accept loop of every stream transport (TCP, DoT, DoH): the connection cap,
/// the per-client cap and the lifetime bound, around `serve_one` for each accepted
/// connection, until `stop`.
pub(super) async fn accept<F, Fut>(
    listener: TcpListener,
    limits: TcpLimits,
    conns: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    serve_one: F,
) where
    F: Fn(TcpStream, IpAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Connections per client address; touched on accept and close only.
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                // Over the cap: close at once rather than queue (RFC 7766 §6.2.2).
                let Ok(permit) = conns.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                let ip = peer.ip();
                let admitted = per_client.lock().map(|mut m| {
                    let n = m.entry(ip).or_insert(0);
                    if *n >= limits.max_per_client {
                        false
                    } else {
                        *n += 1;
                        true
                    }
                });
                if !matches!(admitted, Ok(true)) {
                    drop(stream);
                    continue;
                }
                let per_client = per_client.clone();
                let conn = serve_one(stream, ip);
                tokio::spawn(async move {
                    // However busy, a connection ends after its lifetime.
                    let _ = tokio::time::timeout(limits.max_lifetime, conn).await;
                    if let Ok(mut m) = per_client.lock() {
                        if let Some(n) = m.get_mut(&ip) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                m.remove(&ip);
                            }
                        }
                    }
                    drop(permit);
                });
            }
            _ = stop.changed() => return,
        }
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
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let limits = self.limits;
        let start = std::time::Instant::now();
        let mut msg = Vec::with_capacity(512);
        let mut out = Vec::with_capacity(4096);
        loop {
            if *stop.borrow() {
                return;
            }
            let mut len = [0u8; 2];
            let read = tokio::select! {
                r = timeout(limits.idle_timeout, stream.read_exact(&mut len)) => r,
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
            match timeout(limits.idle_timeout, stream.read_exact(&mut msg)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let observed = {
                let current = self.snap.load();
                let o = handle(&current, &msg, peer, Transport::Tcp, &mut out);
                if self.qlog.wants(start.elapsed().as_secs()) {
                    self.qlog.log(&current, &msg, peer, self.label, &o);
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
            match timeout(limits.idle_timeout, write).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
}
