//! Sockets and the query path.
//!
//! UDP: several SO_REUSEPORT sockets per address, each read by its own thread that
//! parses, looks up and writes the response into a buffer it reuses: no allocation, no
//! task spawn and no channel hop per query. TCP: tokio, with a cap on connections (the
//! longest-idle one closed for a newcomer), a cap per client network, and timeouts
//! so a slow or silent client cannot hold the server (RFC 7766); the caps are fitted
//! under the open-file limit (`fdlimit`).
//!
//! The server speaks DNS with its own small wire code (`query`, `answer`) rather than
//! hickory-server's `RequestHandler`: that interface takes hickory records and encodes
//! them per response, which cannot send answers prebuilt at load time, and its TCP
//! listener has no connection cap. hickory-proto decodes our responses in the tests as
//! an independent check of the wire format.

pub mod conns;
pub mod dnstap;
mod doh;
mod dot;
pub mod fdlimit;
pub mod notify;
pub mod querylog;
mod tcp;
pub mod tls;
mod udp;
pub mod xfr;
pub(crate) mod xfr_journal;
pub mod xfr_serial;

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::answer::snapshot::SnapshotHandle;

pub use crate::answer::handler::{handle, Transport};

/// UDP read loops restarted after a panic (see `udp::serve`).
pub(crate) fn udp_restarts() -> u64 {
    udp::RESTARTS.load(Ordering::Relaxed)
}

/// Limits of the TCP side (and of DoT and DoH, but for their own caps).
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    /// Connections one client network (a /24, a /56) may hold at once.
    pub max_per_client: usize,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    /// From accept to the TLS handshake's end (DoT, DoH) and the first query.
    pub handshake_timeout: Duration,
}

/// Sockets bound for one listen address.
pub struct BoundAddr {
    pub addr: SocketAddr,
    udp: Vec<UdpSocket>,
    tcp: TcpListener,
}

/// The largest EDNS payload that fits the IPv6 minimum MTU (1280) with its IPv6 and
/// UDP headers: up to it, IPv4 responses go out with DF set (RFC 9715).
pub const NO_FRAGMENT_PAYLOAD: u16 = 1232;

/// Binds `sockets` UDP sockets and one TCP listener on each address. A port of 0 picks
/// one free port for UDP and TCP alike. `udp_payload` is the largest UDP response
/// (`udp_payload_max`), which decides how the sockets treat fragmentation.
pub(crate) fn bind_all(
    addrs: &[SocketAddr],
    sockets: usize,
    udp_payload: u16,
) -> io::Result<Vec<BoundAddr>> {
    let sockets = sockets.max(1);
    let mut out = Vec::new();
    for &addr in addrs {
        let mut last_err = None;
        // With port 0 the UDP port may be free while the same TCP port is not: retry.
        let tries = if addr.port() == 0 { 16 } else { 1 };
        for _ in 0..tries {
            match bind_one(addr, sockets, udp_payload) {
                Ok(b) => {
                    out.push(b);
                    last_err = None;
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")));
        }
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr, sockets: usize, udp_payload: u16) -> io::Result<BoundAddr> {
    let first = udp_socket(addr, udp_payload)?;
    let actual = first.local_addr()?;
    let mut udp = vec![first];
    for _ in 1..sockets {
        udp.push(udp_socket(actual, udp_payload)?);
    }
    Ok(BoundAddr {
        addr: actual,
        udp,
        tcp: tcp_listener(actual)?,
    })
}

/// A listening TCP socket on `addr`, IPv6 ones for IPv6 only (as the UDP sockets),
/// non-blocking for tokio.
fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let tcp = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        tcp.set_only_v6(true)?;
    }
    tcp.set_reuse_address(true)?;
    tcp.bind(&addr.into())?;
    tcp.listen(1024)?;
    tcp.set_nonblocking(true)?;
    Ok(tcp.into())
}

/// One UDP socket bound to `addr` with the options every serving socket has (also
/// the floor server's in `benches/udp_floor.rs`); `udp_payload` as for [`bind_all`].
pub fn udp_socket(addr: SocketAddr, udp_payload: u16) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    // A deep receive queue absorbs bursts while a core is busy.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    // Path MTU information from ICMP is never used, so a forged "fragmentation
    // needed" cannot shrink or fragment our responses. With responses of at most
    // 1232 bytes (the default), IPv4 ones carry DF (IP_PMTUDISC_PROBE: the interface
    // MTU bounds them, never a learned one), as RFC 9715 advises, and the kernel
    // skips the IP ID hash; with larger ones the kernel may fragment
    // (IP_PMTUDISC_OMIT, as BIND and gdnsd set it). IPv6 routers never fragment:
    // OMIT there. The choice is made at start-up; sockets are not rebound on reload.
    #[cfg(target_os = "linux")]
    {
        use rustix::net::sockopt;
        let _ = if addr.is_ipv4() {
            let mode = if udp_payload <= NO_FRAGMENT_PAYLOAD {
                sockopt::Ipv4PathMtuDiscovery::PROBE
            } else {
                sockopt::Ipv4PathMtuDiscovery::OMIT
            };
            sockopt::set_ip_mtu_discover(&s, mode)
        } else {
            sockopt::set_ipv6_mtu_discover(&s, sockopt::Ipv6PathMtuDiscovery::OMIT)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = udp_payload;
    s.bind(&addr.into())?;
    // Readers wake up this often to notice shutdown.
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(s.into())
}

/// A running server; dropping it does not stop it, `shutdown` does.
pub struct Running {
    stop: Arc<AtomicBool>,
    udp_threads: Vec<JoinHandle<()>>,
    tcp_stop: tokio::sync::watch::Sender<bool>,
    tcp_tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts serving on the bound sockets. Must be called inside a tokio runtime (TCP).
pub fn start(
    bound: Vec<BoundAddr>,
    snap: SnapshotHandle,
    tcp: TcpLimits,
    metrics: &crate::metrics::Metrics,
    rrl: Arc<crate::answer::rrl::Rrl>,
    qlog: Arc<querylog::QueryLog>,
) -> io::Result<Running> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tcp_stop, tcp_rx) = tokio::sync::watch::channel(false);
    let mut udp_threads = Vec::new();
    let mut tcp_tasks = Vec::new();
    let conns = conns::Registry::new(tcp.max_connections, tcp.max_per_client);
    let tcp_counters = metrics.shard();
    for b in bound {
        for (i, sock) in b.udp.into_iter().enumerate() {
            let worker = udp::Worker {
                snap: snap.clone(),
                stop: stop.clone(),
                counters: metrics.thread_shard(),
                rrl: rrl.clone(),
                qlog: qlog.clone(),
                start: std::time::Instant::now(),
            };
            let t = std::thread::Builder::new()
                .name(format!("udp-{}-{i}", b.addr))
                .spawn(move || udp::serve(sock, worker))?;
            udp_threads.push(t);
        }
        let listener = tokio::net::TcpListener::from_std(b.tcp)?;
        tcp_tasks.push(tokio::spawn(tcp::serve(
            listener,
            snap.clone(),
            tcp,
            conns.clone(),
            tcp_rx.clone(),
            tcp_counters.clone(),
            qlog.clone(),
        )));
    }
    Ok(Running {
        stop,
        udp_threads,
        tcp_stop,
        tcp_tasks,
    })
}

impl Running {
    /// Stops accepting, lets UDP readers finish the packet in hand, and waits for them.
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tcp_stop.send(true);
        for t in self.tcp_tasks {
            let _ = t.await;
        }
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// The DNS over TLS and DNS over HTTPS listeners (see `dot` and `doh`), bound at
/// start-up like the others; each transport has its own connection cap and the TCP
/// per-client cap, idle timeout, handshake deadline and lifetime.
pub struct Encrypted {
    pub dot: Vec<TcpListener>,
    pub doh: Vec<TcpListener>,
    pub dot_max_connections: usize,
    pub doh_max_connections: usize,
    /// The DoH URI path, like "/dns-query".
    pub doh_path: String,
    /// Bytes of DoH requests (head and body) waiting for their body, at most, over
    /// all connections.
    pub doh_body_budget: usize,
}

impl Encrypted {
    /// Binds one listener per address (a port of 0 picks a free one), with the
    /// default caps and path; the caller sets its own.
    pub fn bind(dot: &[SocketAddr], doh: &[SocketAddr]) -> io::Result<Encrypted> {
        let bind = |addrs: &[SocketAddr]| -> io::Result<Vec<TcpListener>> {
            addrs
                .iter()
                .map(|&a| {
                    tcp_listener(a)
                        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {a}: {e}")))
                })
                .collect()
        };
        Ok(Encrypted {
            dot: bind(dot)?,
            doh: bind(doh)?,
            dot_max_connections: 1024,
            doh_max_connections: 1024,
            doh_path: "/dns-query".to_string(),
            doh_body_budget: doh::DEFAULT_BODY_BUDGET,
        })
    }

    /// "dot on ADDR ...; doh on ADDR/PATH ..." for the start-up log; empty when off.
    pub fn describe(&self) -> String {
        let addrs = |ls: &[TcpListener], suffix: &str| -> Vec<String> {
            ls.iter()
                .filter_map(|l| l.local_addr().ok())
                .map(|a| format!("{a}{suffix}"))
                .collect()
        };
        let mut parts = Vec::new();
        if !self.dot.is_empty() {
            parts.push(format!("dot on {}", addrs(&self.dot, "").join(" ")));
        }
        if !self.doh.is_empty() {
            parts.push(format!(
                "doh on {}",
                addrs(&self.doh, &self.doh_path).join(" ")
            ));
        }
        parts.join("; ")
    }

    /// Starts serving; the tasks end on `stop`. Must be called inside a tokio runtime.
    pub fn start(
        self,
        snap: SnapshotHandle,
        limits: TcpLimits,
        metrics: &crate::metrics::Metrics,
        qlog: Arc<querylog::QueryLog>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> io::Result<Vec<tokio::task::JoinHandle<()>>> {
        let framed = |label| {
            Arc::new(tcp::Framed {
                snap: snap.clone(),
                limits,
                counters: metrics.shard(),
                qlog: qlog.clone(),
                label,
            })
        };
        let mut tasks = Vec::new();
        let dot_path = framed("dot");
        let dot_stop = stop.clone();
        let dot = move |stream, ip, conn| {
            dot::connection(stream, ip, conn, dot_path.clone(), dot_stop.clone())
        };
        spawn_accepts(
            &mut tasks,
            "dot",
            self.dot,
            self.dot_max_connections,
            limits,
            &stop,
            dot,
        )?;
        let doh_state = Arc::new(doh::Doh {
            path: framed("doh"),
            uri_path: self.doh_path,
            started: std::time::Instant::now(),
            budget: Arc::new(tokio::sync::Semaphore::new(self.doh_body_budget)),
        });
        let doh_stop = stop.clone();
        let doh = move |stream, ip, conn| {
            doh::connection(stream, ip, conn, doh_state.clone(), doh_stop.clone())
        };
        spawn_accepts(
            &mut tasks,
            "doh",
            self.doh,
            self.doh_max_connections,
            limits,
            &stop,
            doh,
        )?;
        Ok(tasks)
    }
}

/// One accept loop per listener, sharing a cap of `max_connections`, each
/// connection served by `serve_one`.
fn spawn_accepts<F, Fut>(
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    transport: &'static str,
    listeners: Vec<TcpListener>,
    max_connections: usize,
    limits: TcpLimits,
    stop: &tokio::sync::watch::Receiver<bool>,
    serve_one: F,
) -> io::Result<()>
where
    F: Fn(tokio::net::TcpStream, std::net::IpAddr, Arc<conns::Conn>) -> Fut
        + Clone
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let conns = conns::Registry::new(max_connections, limits.max_per_client);
    for l in listeners {
        let l = tokio::net::TcpListener::from_std(l)?;
        let accept = tcp::accept(
            l,
            transport,
            limits,
            conns.clone(),
            stop.clone(),
            serve_one.clone(),
        );
        tasks.push(tokio::spawn(accept));
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use rustix::net::sockopt::{ip_mtu_discover, Ipv4PathMtuDiscovery};

    fn mode(payload: u16) -> Ipv4PathMtuDiscovery {
        let local: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let bound = bind_all(&[local], 1, payload).expect("bind on loopback");
        ip_mtu_discover(&bound[0].udp[0]).expect("IP_MTU_DISCOVER")
    }

    #[test]
    fn ipv4_responses_carry_df_only_up_to_1232_bytes() {
        assert_eq!(mode(NO_FRAGMENT_PAYLOAD), Ipv4PathMtuDiscovery::PROBE);
        assert_eq!(mode(512), Ipv4PathMtuDiscovery::PROBE);
        assert_eq!(mode(NO_FRAGMENT_PAYLOAD + 1), Ipv4PathMtuDiscovery::OMIT);
        assert_eq!(mode(4096), Ipv4PathMtuDiscovery::OMIT);
    }
}
