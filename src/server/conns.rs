//! The open connections of one stream transport (TCP, DoT or DoH, each its own
//! registry shared by its listeners): a cap on all of them, a cap per client
//! network, and at the cap the longest-idle connection closed to make room for the
//! newcomer, so that idle connections cannot lock new clients out.
//!
//! Invariants, under the one lock (touched on accept, eviction and close only; a
//! query only stores its time in its connection's atomic):
//! - `conns` holds every connection whose task still runs (its descriptor is open);
//!   an evicted one stays until its task has dropped its stream, so `conns.len()`
//!   counts descriptors, and a newcomer at the cap waits for its victim's to close.
//! - `per_prefix[p]` is the number of entries of `conns` whose client is in `p`;
//!   no key with 0 is kept.
//! - At most one eviction is asked of a connection (`evicting`).
//!
//! A client is its network, not its address: a /24 for IPv4, a /56 for IPv6 (as
//! response rate limiting keys it), since one host commonly holds a whole IPv6 /64
//! and more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The IPv4 network one client is counted by.
pub(crate) const CLIENT_PREFIX_V4: u8 = 24;
/// The IPv6 network one client is counted by.
pub(crate) const CLIENT_PREFIX_V6: u8 = 56;

/// How long a newcomer at the cap waits for the connection evicted for it to close
/// before it is refused instead.
const EVICT_WAIT: Duration = Duration::from_millis(500);

/// Connections closed to make room for a newcomer, over every transport, since start.
static EVICTIONS: AtomicU64 = AtomicU64::new(0);

/// Connections closed to make room for a newcomer (the metric
/// `signpost_connections_evicted_total`).
pub(crate) fn evictions() -> u64 {
    EVICTIONS.load(Ordering::Relaxed)
}

/// The network a client address is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientNet(IpAddr);

impl ClientNet {
    pub fn of(ip: IpAddr) -> ClientNet {
        ClientNet(crate::geo::cidr::network_of(
            ip,
            CLIENT_PREFIX_V4,
            CLIENT_PREFIX_V6,
        ))
    }
}

/// One open connection as the registry sees it.
pub(crate) struct Conn {
    id: u64,
    net: ClientNet,
    /// When it was accepted: the handshake and first-query deadline count from here.
    pub accepted: Instant,
    /// Last activity (accept, a query answered), in ms since the registry's base.
    last_ms: AtomicU64,
    evicting: AtomicBool,
    evict: Notify,
    base: Instant,
}

impl Conn {
    /// Marks the connection active now (a query answered, a request begun or done).
    pub(crate) fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves when the registry asks this connection to close for a newcomer.
    pub(crate) async fn evicted(&self) {
        self.evict.notified().await
    }
}

struct Inner {
    next_id: u64,
    conns: HashMap<u64, Arc<Conn>>,
    per_prefix: HashMap<ClientNet, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its client network holds `max_per_client` connections already.
    PerClient,
    /// The cap is reached and no connection closed in time to make room.
    Full,
}

enum Admit {
    In(Slot),
    PerClient,
    /// At the cap; an eviction is under way (or every connection is being evicted).
    Wait,
}

/// The connections of one transport.
pub(crate) struct Registry {
    cap: usize,
    per_client: usize,
    base: Instant,
    inner: Mutex<Inner>,
    /// Woken whenever a connection leaves.
    freed: Notify,
    evictions: AtomicU64,
}

impl Registry {
    pub fn new(cap: usize, per_client: usize) -> Arc<Registry> {
        Arc::new(Registry {
            cap: cap.max(1),
            per_client: per_client.max(1),
            base: Instant::now(),
            inner: Mutex::new(Inner {
                next_id: 0,
                conns: HashMap::new(),
                per_prefix: HashMap::new(),
            }),
            freed: Notify::new(),
            evictions: AtomicU64::new(0),
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.inner.lock().map(|i| i.conns.len()).unwrap_or(0)
    }

    /// Connections of this registry closed to make room for a newcomer.
    #[cfg(test)]
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// A slot for a connection from `ip`: at once when there is room; at the cap
    /// after the longest-idle connection has closed for it (at most [`EVICT_WAIT`]);
    /// refused when its client network is at its own cap.
    pub(crate) async fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let deadline = Instant::now() + EVICT_WAIT;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before looking, so a close between the look and the wait
            // still wakes us.
            freed.as_mut().enable();
            match self.try_admit(ip) {
                Admit::In(slot) => return Ok(slot),
                Admit::PerClient => return Err(Refused::PerClient),
                Admit::Wait => {
                    if tokio::time::timeout_at(deadline, freed).await.is_err() {
                        return Err(Refused::Full);
                    }
                }
            }
        }
    }

    /// Asks the longest-idle connection that is not already leaving to close;
    /// false when there is none.
    fn evict_longest_idle(&self, inner: &Inner) -> bool {
        let victim = inner
            .conns
            .values()
            .filter(|c| !c.evicting.load(Ordering::Relaxed))
            .min_by_key(|c| c.last_ms.load(Ordering::Relaxed));
        let Some(v) = victim else {
            return false;
        };
        v.evicting.store(true, Ordering::Relaxed);
        // Stored as a permit if its task is not waiting yet.
        v.evict.notify_one();
        self.evictions.fetch_add(1, Ordering::Relaxed);
        EVICTIONS.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// When the process is out of descriptors below the cap (the limit lowered
    /// under a running server, or taken by something else): the longest-idle
    /// connection closes and gives its descriptor to the next accept. True once it
    /// has closed (at most [`EVICT_WAIT`]); false when there is none to close.
    pub(crate) async fn make_room(&self) -> bool {
        let freed = self.freed.notified();
        tokio::pin!(freed);
        freed.as_mut().enable();
        let evicted = match self.inner.lock() {
            Ok(inner) => self.evict_longest_idle(&inner),
            Err(_) => false,
        };
        if evicted {
            let _ = tokio::time::timeout(EVICT_WAIT, freed).await;
        }
        evicted
    }

    fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Admit {
        let net = ClientNet::of(ip);
        let Ok(mut inner) = self.inner.lock() else {
            return Admit::Wait;
        };
        if inner.per_prefix.get(&net).copied().unwrap_or(0) >= self.per_client {
            return Admit::PerClient;
        }
        if inner.conns.len() >= self.cap {
            self.evict_longest_idle(&inner);
            return Admit::Wait;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let now = Instant::now();
        let conn = Arc::new(Conn {
            id,
            net,
            accepted: now,
            last_ms: AtomicU64::new(now.duration_since(self.base).as_millis() as u64),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
            base: self.base,
        });
        inner.conns.insert(id, conn.clone());
        *inner.per_prefix.entry(net).or_insert(0) += 1;
        Admit::In(Slot {
            registry: self.clone(),
            conn,
        })
    }
}

/// One admitted connection's place; dropping it (after the stream is dropped)
/// frees the place.
pub(crate) struct Slot {
    registry: Arc<Registry>,
    pub conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.registry.inner.lock() {
            inner.conns.remove(&self.conn.id);
            if let Some(n) = inner.per_prefix.get_mut(&self.conn.net) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_prefix.remove(&self.conn.net);
                }
            }
        }
        self.registry.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn clients_are_counted_by_network() {
        assert_eq!(
            ClientNet::of(ip("192.0.2.1")),
            ClientNet::of(ip("192.0.2.254"))
        );
        assert_ne!(
            ClientNet::of(ip("192.0.2.1")),
            ClientNet::of(ip("192.0.3.1"))
        );
        assert_eq!(
            ClientNet::of(ip("2001:db8:0:ff::1")),
            ClientNet::of(ip("2001:db8:0:1::2"))
        );
        assert_ne!(
            ClientNet::of(ip("2001:db8:0:100::1")),
            ClientNet::of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            ClientNet::of(ip("::ffff:192.0.2.7")),
            ClientNet::of(ip("192.0.2.1"))
        );
    }

    #[tokio::test]
    async fn the_longest_idle_makes_room_and_networks_have_their_cap() {
        let r = Registry::new(2, 1);
        let a = r.admit(ip("192.0.2.1")).await.expect("first");
        // Activity is kept in ms: let the clock move on.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let b = r.admit(ip("198.51.100.1")).await.expect("second");
        // Same /24 as a: refused whatever the room.
        assert_eq!(
            r.admit(ip("192.0.2.99")).await.err(),
            Some(Refused::PerClient)
        );
        // a is the longest idle until it answers a query; then b is.
        // Activity is kept in ms: let the clock move on.
        tokio::time::sleep(Duration::from_millis(5)).await;
        a.conn.touch();
        let evicted_b = b.conn.clone();
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.admit(ip("203.0.113.1")).await })
        };
        evicted_b.evicted().await;
        drop(b);
        let c = waiter
            .await
            .expect("task")
            .expect("admitted after eviction");
        assert_eq!(r.open(), 2);
        assert_eq!(r.evictions(), 1);
        // A victim that never closes: the newcomer is refused after the wait.
        let held = (a, c);
        assert_eq!(r.admit(ip("203.0.114.1")).await.err(), Some(Refused::Full));
        drop(held);
        assert_eq!(r.open(), 0);
    }
}
