//! The immutable state every query reads: zones, identity, limits. A reload builds a
//! new [`Snapshot`] beside the serving one and swaps it in atomically, so a query sees
//! either the old state or the new one, never a mix.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::config::{Identity, ServerConfig};
use crate::geo::cidr::{CidrTable, IpNet};
use crate::geo::client::ClientLocator;
use crate::zone::{class, Name, RRset, ZoneSet};

/// Prebuilt CHAOS-class TXT answers that tell instances apart (RFC 4892).
#[derive(Debug, Default)]
pub struct ChaosAnswers {
    pub id_server: Option<RRset>,
    pub hostname_bind: Option<RRset>,
    pub version_bind: Option<RRset>,
}

impl ChaosAnswers {
    fn txt(value: &Option<String>) -> Option<RRset> {
        value
            .as_ref()
            .map(|v| RRset::txt(class::CH, 0, std::slice::from_ref(v)))
    }

    pub fn new(id: &Identity) -> ChaosAnswers {
        ChaosAnswers {
            id_server: Self::txt(&id.id_server),
            hostname_bind: Self::txt(&id.hostname_bind),
            version_bind: Self::txt(&id.version_bind),
        }
    }

    /// The answer for a CHAOS name (lower-cased wire), if configured.
    pub fn get(&self, qname: &[u8]) -> Option<&RRset> {
        match qname {
            b"\x02id\x06server\x00" => self.id_server.as_ref(),
            b"\x08hostname\x04bind\x00" => self.hostname_bind.as_ref(),
            b"\x07version\x04bind\x00" | b"\x07version\x06server\x00" => self.version_bind.as_ref(),
            _ => None,
        }
    }
}

/// Everything a query needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    pub zones: ZoneSet,
    /// Each zone's steering, by the zone's index in `zones` (beside the zone,
    /// whose nodes keep only an index into its steered names).
    pub steering: Vec<crate::policy::ZoneSteering>,
    pub chaos: ChaosAnswers,
    pub nsid: Option<Box<[u8]>>,
    /// DNS Cookies' secret; `None`: cookies off (the option is ignored).
    pub cookies: Option<crate::server::cookie::CookieSecret>,
    pub udp_payload: u16,
    /// Where clients are.
    pub geo: ClientLocator,
    /// Resolvers whose ECS we believe.
    pub ecs_from: CidrTable<()>,
    /// Who may ask for CHAOS TXT explanations.
    pub explain_from: CidrTable<()>,
    /// Probe results, overrides and weights, as the query path reads them.
    pub health: crate::bridge::HealthBridge,
    /// Probe targets by health slot, for the scheduler.
    pub health_targets: Vec<crate::health::TargetKey>,
    /// Operator names of each endpoint id.
    pub endpoint_names: Vec<crate::bridge::EndpointNames>,
    /// The addresses the server was started on (sockets are bound once).
    pub listen: Vec<std::net::SocketAddr>,
    /// Answers prebuilt whole for the UDP fast path; empty sends every query the
    /// general way (while the table is being built after a start, see
    /// [`crate::app::build_fast_later`], or with `SIGNPOST_NO_FAST` set). Set
    /// once, never changed after.
    pub fast: std::sync::OnceLock<crate::server::fast::FastTable>,
    /// The certificate DoT and DoH present, read from the files with the rest of the
    /// configuration; `None` without `[tls]`.
    pub tls: Option<Arc<crate::server::tls::ServerTls>>,
    /// Signed zones' keys and on-the-fly signing, by origin (see `dnssec`).
    pub signers: rustc_hash::FxHashMap<Name, std::sync::Arc<crate::dnssec::ZoneSigner>>,
    /// Counts successful loads, so logs and status can tell configurations apart.
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// Secondary zones' NOTIFY sources (`None`: no NOTIFY is taken).
    pub notify: Option<Arc<crate::server::notify_in::NotifyTable>>,
    /// Secondary zones with no copy to serve: SERVFAIL.
    pub unavailable: Vec<Name>,
}

impl Snapshot {
    pub fn new(
        zones: ZoneSet,
        geo: ClientLocator,
        cfg: &ServerConfig,
        generation: u64,
    ) -> Snapshot {
        Snapshot {
            zones,
            steering: Vec::new(),
            chaos: ChaosAnswers::new(&cfg.identity),
            nsid: cfg.identity.nsid.clone().map(Vec::into_boxed_slice),
            cookies: cfg.cookies.enabled.then(|| match cfg.cookies.secret {
                Some(k) => crate::server::cookie::CookieSecret::new(k),
                None => crate::server::cookie::CookieSecret::process(),
            }),
            udp_payload: cfg.udp_payload_max,
            geo,
            ecs_from: net_set(&cfg.geo.ecs_from),
            explain_from: net_set(&cfg.geo.explain_from),
            health: crate::bridge::HealthBridge::empty(),
            health_targets: Vec::new(),
            endpoint_names: Vec::new(),
            listen: Vec::new(),
            fast: std::sync::OnceLock::new(),
            tls: None,
            signers: Default::default(),
            generation,
            loaded_at: SystemTime::now(),
            notify: None,
            unavailable: Vec::new(),
        }
    }

    pub fn zone_names(&self) -> Vec<Name> {
        self.zones
            .zones()
            .iter()
            .map(|z| z.origin.clone())
            .collect()
    }
}

fn net_set(nets: &[IpNet]) -> CidrTable<()> {
    let mut t = CidrTable::new();
    for n in nets {
        // A network listed twice is listed once.
        let _ = t.insert(*n, ());
    }
    t
}

/// The serving snapshot, swapped atomically on reload; readers never block.
pub type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

pub fn handle(s: Snapshot) -> SnapshotHandle {
    Arc::new(ArcSwap::from_pointee(s))
}
