//! DNS over TLS (RFC 7858): a TLS session (ALPN "dot") on its own port, inside it the
//! TCP path's framing and connection loop unchanged (RFC 7858 §3.3): several queries
//! per connection, the idle timeout, and the TCP caps, with a cap on connections of
//! its own; the handshake and the first query are due within `handshake_timeout`
//! of accept. The client is the TLS peer's address (ECS, explain, query log).
//! Response rate limiting does not apply: as over TCP, the handshake proves the
//! address is not spoofed, so no answer can be reflected to a victim.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;

use super::conns::Conn;
use super::tcp::Framed;
use super::tls;

/// One accepted DoT connection: the certificate serving now, then queries until
/// the TCP loop ends, then close_notify.
pub(super) async fn connection(
    stream: TcpStream,
    ip: IpAddr,
    conn: Arc<Conn>,
    path: Arc<Framed>,
    stop: watch::Receiver<bool>,
) {
    let config = path.snap.load().tls.as_ref().map(|t| t.dot.clone());
    let wait = path.limits.idle_timeout;
    let by = conn.accepted + path.limits.handshake_timeout;
    let Some(mut session) = tls::handshake(stream, config, by).await else {
        return;
    };
    path.connection(&mut session, ip, &conn, stop).await;
    // close_notify, so the client can tell our close from a cut (RFC 8446 §6.1).
    let _ = timeout(wait, session.shutdown()).await;
}
