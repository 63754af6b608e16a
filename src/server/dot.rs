//! DNS over TLS (RFC 7858): a TLS session (ALPN "dot") on its own port, inside it the
//! TCP path's framing and connection loop unchanged (RFC 7858 §3.3): several queries
//! per connection, the idle timeout, and the TCP caps, with a cap on connections of
//! its own. The client is the TLS peer's address (ECS, explain, query log).
//! Response rate limiting does not apply: as over TCP, the handshake proves the
//! address is not spoofed, so no answer can be reflected to a victim.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::tcp::{self, Framed};
use super::TcpLimits;

/// Serves DoT on `listener` until `stop`. `path` carries the snapshot, whose
/// certificate each new connection takes at its accept.
pub(super) async fn serve(
    listener: TcpListener,
    path: Arc<Framed>,
    limits: TcpLimits,
    conns: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
) {
    let on_stop = stop.clone();
    tcp::accept(listener, limits, conns, on_stop, move |stream, ip| {
        let tls = path.snap.load().tls.as_ref().map(|t| t.dot.clone());
        let (path, stop) = (path.clone(), stop.clone());
        async move {
            let Some(tls) = tls else { return };
            let _ = stream.set_nodelay(true);
            // The handshake gets the idle timeout, as a query would.
            let accepted = timeout(limits.idle_timeout, TlsAcceptor::from(tls).accept(stream));
            let Ok(Ok(mut session)) = accepted.await else {
                return;
            };
            path.connection(&mut session, ip, stop).await;
            // close_notify, so the client can tell our close from a cut (RFC 8446 §6.1).
            let _ = timeout(limits.idle_timeout, session.shutdown()).await;
        }
    })
    .await
}
