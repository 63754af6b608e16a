//! The immutable state every query reads: zones, identity, limits. A reload builds a
//! new [`Snapshot`] beside the serving one and swaps it in atomically, so a query sees
//! either the old state or the new one, never a mix.

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::geo::cidr::CidrTable;
use crate::geo::client::ClientLocator;
use crate::zone::{class, Name, RRset, Zone, ZoneSet};

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

    /// The answers for `id.server`, `hostname.bind` and `version.bind`
    /// (`version.server` too), each if given.
    pub fn new(
        id_server: &Option<String>,
        hostname_bind: &Option<String>,
        version_bind: &Option<String>,
    ) -> ChaosAnswers {
        ChaosAnswers {
            id_server: Self::txt(id_server),
            hostname_bind: Self::txt(hostname_bind),
            version_bind: Self::txt(version_bind),
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

/// One certificate and key, as each transport offers it: they differ only in ALPN.
#[derive(Debug)]
pub struct ServerTls {
    /// ALPN "dot" (RFC 7858 §3.1, registered by RFC 8310).
    pub dot: Arc<rustls::ServerConfig>,
    /// ALPN "h2" first: RFC 8484 §5.2 recommends HTTP/2; "http/1.1" for the rest.
    pub doh: Arc<rustls::ServerConfig>,
    /// The leaf certificate, DER, so status and logs can tell certificates apart.
    pub leaf: rustls::pki_types::CertificateDer<'static>,
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
    pub cookies: Option<crate::answer::cookie::CookieSecret>,
    pub udp_payload: u16,
    /// Where clients are.
    pub geo: ClientLocator,
    /// Resolvers whose ECS we believe.
    pub ecs_from: CidrTable<()>,
    /// Who may ask for CHAOS TXT explanations.
    pub explain_from: CidrTable<()>,
    /// Probe results, overrides and weights, as the query path reads them.
    pub health: crate::answer::health_view::HealthBridge,
    /// Probe targets by health slot, for the scheduler.
    pub health_targets: Vec<crate::health::TargetKey>,
    /// Operator names of each endpoint id.
    pub endpoint_names: Vec<crate::answer::health_view::EndpointNames>,
    /// The addresses the server was started on (sockets are bound once).
    pub listen: Vec<std::net::SocketAddr>,
    /// Answers prebuilt whole for the UDP fast path; empty sends every query the
    /// general way (while the table is being built after a start, see
    /// [`crate::app::build_fast_later`], or with `SIGNPOST_NO_FAST` set). Set
    /// once, never changed after.
    pub fast: std::sync::OnceLock<crate::answer::fast::FastTable>,
    /// The certificate DoT and DoH present, read from the files with the rest of the
    /// configuration; `None` without `[tls]`.
    pub tls: Option<Arc<ServerTls>>,
    /// Signed zones' keys and on-the-fly signing, by origin (see `dnssec`).
    pub signers: rustc_hash::FxHashMap<Name, std::sync::Arc<crate::dnssec::ZoneSigner>>,
    /// TSIG keys and who may transfer which zone (see `server::xfr`).
    pub transfer: Arc<super::transfer::TransferConfig>,
    /// The differences between the serials served, for IXFR; carried from one
    /// snapshot to the next by the reload.
    pub journal: Arc<super::transfer::Journal>,
    /// Counts successful loads, so logs and status can tell configurations apart.
    pub generation: u64,
    pub loaded_at: SystemTime,
    /// Secondary zones' NOTIFY sources (`None`: no NOTIFY is taken).
    pub notify: Option<Arc<crate::answer::notify_in::NotifyTable>>,
    /// Secondary zones with no copy to serve: SERVFAIL.
    pub unavailable: Vec<Name>,
}

impl Snapshot {
    /// A snapshot of `zones` and `geo` with nothing else set: no steering,
    /// identity, cookies, ECS or explain networks, health, TLS or signers (the
    /// application fills in what the configuration gives).
    pub fn new(zones: ZoneSet, geo: ClientLocator, udp_payload: u16, generation: u64) -> Snapshot {
        Snapshot {
            zones,
            steering: Vec::new(),
            chaos: ChaosAnswers::default(),
            nsid: None,
            cookies: None,
            udp_payload,
            geo,
            ecs_from: CidrTable::new(),
            explain_from: CidrTable::new(),
            health: crate::answer::health_view::HealthBridge::empty(),
            health_targets: Vec::new(),
            endpoint_names: Vec::new(),
            listen: Vec::new(),
            fast: std::sync::OnceLock::new(),
            tls: None,
            signers: Default::default(),
            transfer: Default::default(),
            journal: Default::default(),
            generation,
            loaded_at: SystemTime::now(),
            notify: None,
            unavailable: Vec::new(),
        }
    }

    /// The signer of `zone` when the zone is signed: DO=1 answers carry its
    /// RRSIGs.
    pub(crate) fn signer_of(&self, zone: &Zone) -> Option<&crate::dnssec::ZoneSigner> {
        zone.dnssec.as_ref()?;
        self.signers.get(&zone.origin).map(|s| &**s)
    }

    pub(crate) fn zone_names(&self) -> Vec<Name> {
        self.zones
            .zones()
            .iter()
            .map(|z| z.origin.clone())
            .collect()
    }
}

/// The serving snapshot, swapped atomically on reload; readers never block.
pub(crate) type SnapshotHandle = Arc<ArcSwap<Snapshot>>;

pub fn handle(s: Snapshot) -> SnapshotHandle {
    Arc::new(ArcSwap::from_pointee(s))
}
