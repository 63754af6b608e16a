//! The server config file: where to listen, socket counts, limits, identity, logging.
//! Parsed raw (plain serde, unknown keys rejected), then checked into [`ServerConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::values::{parse_duration, read_secret_file};
use super::{line_of, ConfigError};
use crate::geo::cidr::IpNet;
use crate::geo::{FieldPaths, Location};
use crate::zone::Invalid;

type At<T> = Option<toml::Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerRaw {
    listen: At<Vec<String>>,
    zones: Option<PathBuf>,
    udp_sockets_per_address: At<usize>,
    udp_payload_max: At<u16>,
    tcp: Option<TcpLimitsRaw>,
    identity: Option<IdentityRaw>,
    log: Option<LogRaw>,
    geo: Option<GeoDatabaseRaw>,
    admin: Option<AdminRaw>,
    rrl: Option<RrlRaw>,
    cookies: Option<CookiesRaw>,
    /// Where overrides, weights and last known health are kept across restarts.
    state_file: Option<PathBuf>,
    /// The address health probes leave from (a multi-homed host's vantage point).
    probe_source: At<String>,
    fleet: Option<toml::Spanned<super::fleet::FleetRaw>>,
    tls: Option<toml::Spanned<super::encrypted::TlsRaw>>,
    dot: Option<toml::Spanned<super::encrypted::DotRaw>>,
    doh: Option<toml::Spanned<super::encrypted::DohRaw>>,
    dnssec: Option<DnssecServerRaw>,
    rum: Option<super::rum::RumRaw>,
    tsig: Option<Vec<super::transfer::TsigRaw>>,
    transfer: Option<super::transfer::TransferRaw>,
    secondary: Option<Vec<super::secondary::SecondaryRaw>>,
    shed: Option<std::collections::BTreeMap<String, toml::Spanned<super::shed::ShedRaw>>>,
    gates: Option<std::collections::BTreeMap<String, toml::Spanned<super::ramps::GateRaw>>>,
    ramps: Option<std::collections::BTreeMap<String, toml::Spanned<super::ramps::RampRaw>>>,
    probes: Option<toml::Spanned<super::probes::ProbesRaw>>,
    dnstap: Option<toml::Spanned<super::dnstap::DnstapRaw>>,
}

/// The server's `[dnssec]` table: where keys live, master-file zones to sign, the
/// defaults every signed zone starts from, the cap on signing on the fly.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnssecServerRaw {
    key_dir: Option<PathBuf>,
    zones: At<Vec<String>>,
    sign_rate: At<u32>,
    // The defaults, as in a zone's `[dnssec]` table (serde cannot flatten into a
    // struct that denies unknown fields).
    algorithm: At<super::zones::AlgorithmRaw>,
    split: At<bool>,
    validity: At<super::values::TtlValue>,
    refresh: At<super::values::TtlValue>,
    denial: At<String>,
}

/// `[cookies]`: DNS Cookies (RFC 7873, RFC 9018).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CookiesRaw {
    enabled: Option<bool>,
    /// A file holding the 128-bit server secret as 32 hex digits, shared by the
    /// instances behind one address; none: random per process.
    secret_file: At<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RrlRaw {
    rate: Option<u32>,
    slip: At<u32>,
    ipv4_prefix: At<u8>,
    ipv6_prefix: At<u8>,
    exempt: At<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminRaw {
    listen: At<String>,
    token: At<String>,
    allowed_hosts: At<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoDatabaseRaw {
    /// Path to a MaxMind-format database; "" turns location off.
    database: Option<String>,
    /// Where the fields are, for databases of another layout.
    fields: Option<FieldPaths>,
    /// Resolver networks whose EDNS Client Subnet is honoured.
    ecs_from: At<Vec<String>>,
    /// Networks allowed to ask for CHAOS TXT explanations.
    explain_from: At<Vec<String>>,
    #[serde(rename = "override", default)]
    overrides: Vec<toml::Spanned<GeoOverrideRaw>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoOverrideRaw {
    cidr: String,
    country: Option<String>,
    continent: Option<String>,
    subdivision: Option<String>,
    location: Option<[f64; 2]>,
    asn: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpLimitsRaw {
    max_connections: At<usize>,
    max_per_client: At<usize>,
    idle_timeout: At<String>,
    max_lifetime: At<String>,
    handshake_timeout: At<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityRaw {
    nsid: At<String>,
    nsid_hex: At<String>,
    id_server: At<String>,
    hostname_bind: At<String>,
    version_bind: At<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogRaw {
    level: Option<String>,
    format: At<String>,
    /// Log one query in this many (0 = no query log).
    query_sample: Option<u32>,
    /// At most this many query-log lines a second.
    query_max_per_second: Option<u32>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Who this instance says it is, to tell instances apart with dig.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// NSID option payload (RFC 5001); none: NSID requests get no NSID.
    pub nsid: Option<Vec<u8>>,
    /// CHAOS TXT id.server. (RFC 4892); none: REFUSED.
    pub id_server: Option<String>,
    /// CHAOS TXT hostname.bind.; none: REFUSED.
    pub hostname_bind: Option<String>,
    /// CHAOS TXT version.bind. and version.server.; none: REFUSED.
    pub version_bind: Option<String>,
}

/// The checked server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub zones: PathBuf,
    /// UDP sockets bound to each address with SO_REUSEPORT; 0 = one per core.
    pub udp_sockets_per_address: usize,
    /// Our EDNS UDP payload size: 1232 avoids IP fragmentation on every common path
    /// (DNS Flag Day 2020).
    pub udp_payload_max: u16,
    /// Connections TCP serves at once (at the cap, the longest-idle one is closed
    /// for a newcomer); fitted under the open-file limit unless given (see
    /// [`ServerConfig::fit_descriptors`]).
    pub tcp_max_connections: usize,
    /// The line of `tcp.max_connections` when given.
    pub tcp_max_connections_line: Option<usize>,
    /// Connections one client network (a /24 for IPv4, a /56 for IPv6) may hold at
    /// once, on each of TCP, DoT and DoH.
    pub tcp_max_per_client: usize,
    /// A connection is closed after this long, busy or not.
    pub tcp_max_lifetime: Duration,
    /// A TCP connection with no complete query for this long is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// A new TCP, DoT or DoH connection must have done its TLS handshake and sent
    /// its first query within this of its accept, or is closed.
    pub tcp_handshake_timeout: Duration,
    /// The server config file, for messages about its keys; none for the defaults.
    pub file: Option<PathBuf>,
    pub identity: Identity,
    pub log_level: String,
    pub log_format: LogFormat,
    pub query_log: super::transport::QueryLogConfig,
    pub geo: GeoConfig,
    /// The admin HTTP endpoint; none = off.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token the admin endpoint requires; needed to listen off loopback.
    pub admin_token: Option<String>,
    /// `Host` values the admin endpoint answers to besides its listen address
    /// and the loopback names, as a browser sends them (port included).
    pub admin_allowed_hosts: Vec<String>,
    pub state_file: Option<PathBuf>,
    /// Response rate limiting for UDP.
    pub rrl: crate::answer::rrl::RrlConfig,
    /// DNS Cookies: on by default, with a random secret unless one is given.
    pub cookies: CookiesConfig,
    /// Health probes bind this local address before connecting; none: the
    /// kernel picks.
    pub probe_source: Option<std::net::IpAddr>,
    /// Shared drains, weights and probe votes on etcd; none: this instance alone.
    pub fleet: Option<super::fleet::FleetConfig>,
    /// DNS over TLS and DNS over HTTPS, and their certificate; off by default.
    pub encrypted: super::encrypted::EncryptedConfig,
    pub dnssec: DnssecConfig,
    /// The measured-latency collector; none: off.
    pub rum: Option<RumConfig>,
    /// TSIG keys, zone transfers out and NOTIFY (see `server::xfr`).
    pub transfer: super::transfer::TransferConfig,
    /// Zones pulled from primaries by zone transfer (`[[secondary]]`).
    pub secondaries: Vec<super::secondary::SecondaryConfig>,
    /// `[shed.REGION]`: load shedding's signal per region.
    pub shed: Vec<crate::health::ShedSource>,
    /// `[gates.NAME]` and `[ramps.REGION]`: ramps' metric gates and settings.
    pub rollout: super::ramps::RolloutConfig,
    /// Site probes of measured latency; none: off.
    pub probes: Option<super::probes::ProbesConfig>,
    /// dnstap output; none: off.
    pub dnstap: Option<super::dnstap::DnstapConfig>,
}

pub(crate) use super::rum::DEFAULT_RUM_REFRESH;
pub use super::rum::{Precedence, RumConfig};

/// DNS Cookies settings (see `server::cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookiesConfig {
    pub enabled: bool,
    /// The shared secret read from `secret_file`; `None`: random per process.
    pub secret: Option<[u8; 16]>,
}

impl Default for CookiesConfig {
    fn default() -> Self {
        CookiesConfig {
            enabled: true,
            secret: None,
        }
    }
}

/// What checking one config file reads (its text, for lines; its folder, for
/// relative paths) and the errors found so far.
struct Cx<'a> {
    text: &'a str,
    path: &'a Path,
    base: &'a Path,
    errors: Vec<ConfigError>,
}

impl Cx<'_> {
    /// An error at the line of `at`'s value.
    fn err<T>(&mut self, at: &toml::Spanned<T>, message: String) {
        let line = line_of(self.text, at.span().start);
        self.errors.push(ConfigError::new(self.path, line, message));
    }

    fn line<T>(&self, at: &toml::Spanned<T>) -> usize {
        line_of(self.text, at.span().start)
    }

    /// `p`, relative to the config file's folder unless absolute.
    fn path_in(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn listen(&mut self, list: toml::Spanned<Vec<String>>) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for l in list.get_ref() {
            match l.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => self.err(
                    &list,
                    format!(
                        "listen address {l:?} is not ADDR:PORT (like 127.0.0.1:53 or [::1]:53)"
                    ),
                ),
            }
        }
        out
    }

    /// A list of networks; `what` names the key in messages (`geo.ecs_from`).
    fn networks(&mut self, what: &str, list: toml::Spanned<Vec<String>>) -> Vec<IpNet> {
        let mut out = Vec::new();
        for n in list.get_ref() {
            match n.parse::<IpNet>() {
                Ok(net) => out.push(net),
                Err(e) => self.err(
                    &list,
                    format!("{what}: {n:?}: {e}; use networks like \"192.0.2.0/24\""),
                ),
            }
        }
        out
    }

    /// A positive duration, or an error naming `what` and an `example`.
    fn duration(
        &mut self,
        what: &str,
        example: &str,
        t: toml::Spanned<String>,
    ) -> Option<Duration> {
        match parse_duration(t.get_ref()) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                self.err(
                    &t,
                    format!(
                        "{what} = {:?} is not a duration like {example}",
                        t.get_ref()
                    ),
                );
                None
            }
        }
    }
}

impl TcpLimitsRaw {
    fn apply(self, cfg: &mut ServerConfig, cx: &mut Cx<'_>) {
        let TcpLimitsRaw {
            max_connections,
            max_per_client,
            idle_timeout,
            max_lifetime,
            handshake_timeout,
        } = self;
        if let Some(m) = max_connections {
            if *m.get_ref() == 0 {
                cx.err(
                    &m,
                    "tcp.max_connections = 0 would refuse every TCP client; use 1 or more".into(),
                );
            }
            cfg.tcp_max_connections_line = Some(cx.line(&m));
            cfg.tcp_max_connections = m.into_inner();
        }
        if let Some(m) = max_per_client {
            if *m.get_ref() == 0 {
                cx.err(
                    &m,
                    "tcp.max_per_client = 0 would refuse every TCP client; use 1 or more".into(),
                );
            }
            cfg.tcp_max_per_client = m.into_inner();
        }
        if let Some(t) = max_lifetime {
            if let Some(d) = cx.duration("tcp.max_lifetime", "\"120s\"", t) {
                cfg.tcp_max_lifetime = d;
            }
        }
        if let Some(t) = handshake_timeout {
            if let Some(d) = cx.duration("tcp.handshake_timeout", "\"3s\" or \"1500ms\"", t) {
                cfg.tcp_handshake_timeout = d;
            }
        }
        if let Some(t) = idle_timeout {
            if let Some(d) = cx.duration("tcp.idle_timeout", "\"10s\" or \"500ms\"", t) {
                cfg.tcp_idle_timeout = d;
            }
        }
    }
}

impl IdentityRaw {
    fn compile(self, cx: &mut Cx<'_>) -> Identity {
        let IdentityRaw {
            nsid,
            nsid_hex,
            id_server,
            hostname_bind,
            version_bind,
        } = self;
        let mut id = Identity::default();
        if let (Some(_), Some(h)) = (&nsid, &nsid_hex) {
            cx.err(
                h,
                "give identity.nsid or identity.nsid_hex, not both".into(),
            );
        }
        if let Some(n) = &nsid {
            if n.get_ref().len() > 512 {
                cx.err(n, "identity NSID is longer than 512 bytes".into());
            }
            id.nsid = Some(n.get_ref().clone().into_bytes());
        }
        if let Some(h) = nsid_hex {
            match crate::zone::rdata::decode_hex(h.get_ref()) {
                Some(b) if b.len() > 512 => {
                    cx.err(&h, "identity NSID is longer than 512 bytes".into());
                }
                Some(b) => id.nsid = Some(b),
                None => cx.err(
                    &h,
                    format!(
                        "identity.nsid_hex = {:?} is not an even number of hex digits",
                        h.get_ref()
                    ),
                ),
            }
        }
        let mut txt = |key: &str, v: At<String>| -> Option<String> {
            let v = v?;
            if v.get_ref().len() > 255 {
                cx.err(
                    &v,
                    format!("identity.{key} is longer than 255 bytes (one TXT string)"),
                );
            }
            Some(v.into_inner())
        };
        id.id_server = txt("id_server", id_server);
        id.hostname_bind = txt("hostname_bind", hostname_bind);
        id.version_bind = txt("version_bind", version_bind);
        id
    }
}

impl LogRaw {
    fn apply(self, cfg: &mut ServerConfig, cx: &mut Cx<'_>) {
        let LogRaw {
            level,
            format,
            query_sample,
            query_max_per_second,
        } = self;
        if let Some(l) = level {
            cfg.log_level = l;
        }
        if let Some(n) = query_sample {
            cfg.query_log.sample = n;
        }
        if let Some(n) = query_max_per_second {
            cfg.query_log.max_per_second = n;
        }
        if let Some(f) = format {
            match f.get_ref().as_str() {
                "text" => cfg.log_format = LogFormat::Text,
                "json" => cfg.log_format = LogFormat::Json,
                other => {
                    let m = format!("log.format = {other:?}; use \"text\" or \"json\"");
                    cx.err(&f, m);
                }
            }
        }
    }
}

impl AdminRaw {
    fn apply(self, cfg: &mut ServerConfig, cx: &mut Cx<'_>) {
        let AdminRaw {
            listen,
            token,
            allowed_hosts,
        } = self;
        if let Some(l) = listen {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(addr) => cfg.admin_listen = Some(addr),
                Err(_) => cx.err(
                    &l,
                    format!(
                        "admin.listen {:?} is not ADDR:PORT (like 127.0.0.1:5380)",
                        l.get_ref()
                    ),
                ),
            }
        }
        if let Some(hosts) = allowed_hosts {
            for h in hosts.get_ref() {
                let bad = h.is_empty()
                    || !h.bytes().all(|b| b.is_ascii_graphic())
                    || h.contains(['/', '@', '?', '#', ',']);
                if bad {
                    cx.err(
                        &hosts,
                        format!(
                            "admin.allowed_hosts {h:?} is not a Host header value; \
                             give a name or address with its port, like \"admin.example.net:5380\""
                        ),
                    );
                } else {
                    cfg.admin_allowed_hosts.push(h.to_ascii_lowercase());
                }
            }
        }
        if let Some(t) = token {
            if t.get_ref().len() < 16 {
                cx.err(
                    &t,
                    "admin.token is shorter than 16 characters; use a long random string".into(),
                );
            }
            cfg.admin_token = Some(t.into_inner());
        }
    }
}

impl CookiesRaw {
    fn apply(self, cookies: &mut CookiesConfig, cx: &mut Cx<'_>) {
        let CookiesRaw {
            enabled,
            secret_file,
        } = self;
        if let Some(e) = enabled {
            cookies.enabled = e;
        }
        if let Some(f) = secret_file {
            match read_cookie_secret(&cx.path_in(f.get_ref().clone())) {
                Ok(k) => cookies.secret = Some(k),
                Err(m) => cx.err(&f, m),
            }
        }
    }
}

impl RrlRaw {
    fn apply(self, rrl: &mut crate::answer::rrl::RrlConfig, cx: &mut Cx<'_>) {
        let RrlRaw {
            rate,
            slip,
            ipv4_prefix,
            ipv6_prefix,
            exempt,
        } = self;
        if let Some(v) = rate {
            rrl.rate = v;
        }
        if let Some(v) = slip {
            if *v.get_ref() > 10 {
                cx.err(
                    &v,
                    format!("rrl.slip = {}: use 0 (never) to 10", v.get_ref()),
                );
            }
            rrl.slip = v.into_inner();
        }
        if let Some(v) = ipv4_prefix {
            if !(1..=32).contains(v.get_ref()) {
                cx.err(
                    &v,
                    format!("rrl.ipv4_prefix = {}: use 1 to 32", v.get_ref()),
                );
            }
            rrl.ipv4_prefix = v.into_inner();
        }
        if let Some(v) = ipv6_prefix {
            if !(1..=128).contains(v.get_ref()) {
                cx.err(
                    &v,
                    format!("rrl.ipv6_prefix = {}: use 1 to 128", v.get_ref()),
                );
            }
            rrl.ipv6_prefix = v.into_inner();
        }
        if let Some(list) = exempt {
            rrl.exempt = cx.networks("rrl.exempt", list);
        }
    }
}

impl DnssecServerRaw {
    fn apply(self, dnssec: &mut DnssecConfig, cx: &mut Cx<'_>) {
        let DnssecServerRaw {
            key_dir,
            zones,
            sign_rate,
            algorithm,
            split,
            validity,
            refresh,
            denial,
        } = self;
        if let Some(k) = key_dir {
            dnssec.key_dir = Some(cx.path_in(k));
        }
        if let Some(zones) = zones {
            let line = cx.line(&zones);
            for z in zones.get_ref() {
                match crate::zone::Name::parse(z, Some(&crate::zone::Name::root())) {
                    Ok(n) => dnssec.zones.push((n, cx.path.to_path_buf(), line)),
                    Err(e) => cx.err(&zones, format!("dnssec.zones {z:?}: {e}")),
                }
            }
        }
        if let Some(r) = &sign_rate {
            if *r.get_ref() == 0 {
                cx.err(r, "dnssec.sign_rate = 0 would refuse every answer signed on the fly; use 1 or more".into());
            }
        }
        dnssec.sign_rate = sign_rate.map(toml::Spanned::into_inner);
        // The lines of the defaults' keys, for the errors their compile names.
        let lines = [
            ("algorithm", algorithm.as_ref().map(|v| cx.line(v))),
            ("split", split.as_ref().map(|v| cx.line(v))),
            ("validity", validity.as_ref().map(|v| cx.line(v))),
            ("refresh", refresh.as_ref().map(|v| cx.line(v))),
            ("denial", denial.as_ref().map(|v| cx.line(v))),
        ];
        let defaults = super::zones::DnssecTableRaw {
            algorithm: algorithm.map(toml::Spanned::into_inner),
            split: split.map(toml::Spanned::into_inner),
            validity: validity.map(toml::Spanned::into_inner),
            refresh: refresh.map(toml::Spanned::into_inner),
            denial: denial.map(toml::Spanned::into_inner),
        };
        match defaults.compile() {
            Ok(c) => dnssec.defaults = c,
            Err(es) => {
                for m in es {
                    // Messages name their key second: "dnssec.validity ...".
                    let key = m.split(['.', ' ']).nth(1).unwrap_or("");
                    let line = lines
                        .iter()
                        .find(|(k, _)| *k == key)
                        .and_then(|(_, l)| *l)
                        .unwrap_or(0);
                    cx.errors.push(ConfigError::new(cx.path, line, m));
                }
            }
        }
    }
}

impl GeoDatabaseRaw {
    fn apply(self, geo: &mut GeoConfig, cx: &mut Cx<'_>) {
        let GeoDatabaseRaw {
            database,
            fields,
            ecs_from,
            explain_from,
            overrides,
        } = self;
        if let Some(db) = database {
            geo.database_explicit = true;
            geo.database = (!db.is_empty()).then(|| cx.path_in(PathBuf::from(db)));
        }
        geo.fields = fields;
        if let Some(l) = ecs_from {
            geo.ecs_from = cx.networks("geo.ecs_from", l);
        }
        if let Some(l) = explain_from {
            geo.explain_from = cx.networks("geo.explain_from", l);
        }
        for o in overrides {
            if let Some(net) = o.get_ref().compile(&o, cx) {
                geo.overrides.push(net);
            }
        }
    }
}

impl GeoOverrideRaw {
    /// One `[[geo.override]]` network and the location it is pinned to; `at`: the
    /// table, for the line of errors.
    fn compile(
        &self,
        at: &toml::Spanned<GeoOverrideRaw>,
        cx: &mut Cx<'_>,
    ) -> Option<(IpNet, Location)> {
        let GeoOverrideRaw {
            cidr,
            country,
            continent,
            subdivision,
            location,
            asn,
        } = self;
        let net = match cidr.parse::<IpNet>() {
            Ok(n) => n,
            Err(e) => {
                cx.err(at, format!("geo.override cidr {cidr:?}: {e}"));
                return None;
            }
        };
        let cc = |s: &Option<String>| -> Option<[u8; 2]> {
            let b = s.as_ref()?.as_bytes();
            (b.len() == 2).then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
        };
        let code = cc(country);
        if country.is_some() && code.is_none() {
            cx.err(
                at,
                format!("geo.override {cidr}: country must be a 2-letter code like DE"),
            );
        }
        let sub = subdivision
            .as_deref()
            .and_then(crate::geo::Subdivision::new);
        if subdivision.is_some() && sub.is_none() {
            cx.err(
                at,
                format!("geo.override {cidr}: subdivision must be an ISO 3166-2 code like US-CA"),
            );
        }
        let loc = Location {
            continent: cc(continent).or_else(|| code.and_then(crate::geo::country_continent)),
            country: code,
            subdivision: sub,
            coords: location
                .map(|[a, b]| (a, b))
                .or_else(|| code.and_then(crate::geo::country_centroid)),
            asn: *asn,
            prefix_len: net.prefix_len(),
        };
        Some((net, loc))
    }
}

/// Reads a cookie secret file: 32 hex digits (surrounding white space allowed),
/// not readable by others.
fn read_cookie_secret(path: &Path) -> Result<[u8; 16], String> {
    let hex = read_secret_file("cookies.secret_file", path)?;
    crate::zone::rdata::decode_hex(&hex)
        .and_then(|k| <[u8; 16]>::try_from(k).ok())
        .ok_or_else(|| {
            format!(
                "cookies.secret_file {}: want 32 hex digits (128 bits), as `openssl rand -hex 16` writes",
                path.display()
            )
        })
}

/// DNSSEC settings of the server (see `dnssec`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnssecConfig {
    /// `key_dir` as configured; `None`: beside the state file, else `keys/` beside
    /// the zones folder (see [`ServerConfig::key_dir`]).
    pub key_dir: Option<PathBuf>,
    /// Zones signed without a `dnssec` key in their own file (master files), with
    /// the config file and line that named them.
    pub zones: Vec<(crate::zone::Name, PathBuf, usize)>,
    /// What every signed zone gets unless its file says otherwise.
    pub defaults: crate::zone::SigningChoice,
    /// Signatures a second made on the fly, at most (default 2000).
    pub sign_rate: Option<u32>,
}

/// Where the location of clients comes from, and whose hints we believe.
#[derive(Debug, Clone)]
pub struct GeoConfig {
    /// The database; `None` turns location off (every client is unknown).
    pub database: Option<PathBuf>,
    /// True when the path was given, so a missing file is an error rather than the
    /// absent default.
    pub database_explicit: bool,
    pub fields: Option<FieldPaths>,
    /// ECS is honoured only from these networks (RFC 7871 §7.1.2 lets an
    /// authoritative server choose whom to believe). Default: everyone.
    pub ecs_from: Vec<IpNet>,
    /// CHAOS TXT explain answers only go to these networks. Default: loopback.
    pub explain_from: Vec<IpNet>,
    /// Networks pinned to a location ahead of the database.
    pub overrides: Vec<(IpNet, Location)>,
}

/// The database shipped in the repository, used when none is configured.
pub(crate) const DEFAULT_GEO_DATABASE: &str = "geo/geo-whois-asn-country.mmdb";

impl Default for GeoConfig {
    fn default() -> Self {
        let net = |s: &str| s.parse::<IpNet>().ok();
        GeoConfig {
            database: Some(PathBuf::from(DEFAULT_GEO_DATABASE)),
            database_explicit: false,
            fields: None,
            ecs_from: ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|s| net(s))
                .collect(),
            explain_from: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|s| net(s))
                .collect(),
            overrides: Vec::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            zones: PathBuf::from("zones"),
            udp_sockets_per_address: 0,
            udp_payload_max: 1232,
            tcp_max_connections: DEFAULT_MAX_CONNECTIONS,
            tcp_max_connections_line: None,
            tcp_max_per_client: 16,
            tcp_max_lifetime: Duration::from_secs(120),
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_handshake_timeout: Duration::from_secs(3),
            file: None,
            identity: Identity::default(),
            log_level: "info".to_string(),
            log_format: LogFormat::Text,
            query_log: Default::default(),
            geo: GeoConfig::default(),
            admin_listen: None,
            admin_token: None,
            admin_allowed_hosts: Vec::new(),
            state_file: None,
            rrl: Default::default(),
            cookies: CookiesConfig::default(),
            probe_source: None,
            fleet: None,
            encrypted: Default::default(),
            dnssec: DnssecConfig::default(),
            rum: None,
            transfer: Default::default(),
            secondaries: Vec::new(),
            shed: Vec::new(),
            rollout: Default::default(),
            probes: None,
            dnstap: None,
        }
    }
}

impl ServerConfig {
    /// Where DNSSEC keys are kept: `dnssec.key_dir`, else `keys/` beside the state
    /// file, else `keys/` beside the zones folder.
    pub fn key_dir(&self) -> PathBuf {
        if let Some(k) = &self.dnssec.key_dir {
            return k.clone();
        }
        let beside = |p: &Path| p.parent().unwrap_or(Path::new(".")).join("keys");
        match &self.state_file {
            Some(s) => beside(s),
            None => beside(&self.zones),
        }
    }

    /// Reads and checks a server config file. Relative paths in it are relative to
    /// the file's folder.
    pub fn load(path: &Path) -> Result<ServerConfig, Vec<ConfigError>> {
        let text = crate::zone::read_text_file(path).map_err(|e| {
            vec![ConfigError::new(
                path,
                0,
                format!("cannot read server config: {e}"),
            )]
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks a server config file's text; every error is reported, each
    /// with the line of its value (from `toml::Spanned`).
    pub fn parse(text: &str, path: &Path) -> Result<ServerConfig, Vec<ConfigError>> {
        let raw: ServerRaw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            vec![ConfigError::new(path, line, e.message().to_string())]
        })?;
        // Every key, so that a new one cannot be dropped silently.
        let ServerRaw {
            listen,
            zones,
            udp_sockets_per_address,
            udp_payload_max,
            tcp,
            identity,
            log,
            geo,
            admin,
            rrl,
            cookies,
            state_file,
            probe_source,
            fleet,
            tls,
            dot,
            doh,
            dnssec,
            rum,
            tsig,
            transfer,
            secondary,
            shed,
            gates,
            ramps,
            probes,
            dnstap,
        } = raw;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cx = Cx {
            text,
            path,
            base,
            errors: Vec::new(),
        };
        let mut cfg = ServerConfig {
            file: Some(path.to_path_buf()),
            ..ServerConfig::default()
        };
        if let Some(l) = listen {
            cfg.listen = cx.listen(l);
        }
        if let Some(z) = zones {
            cfg.zones = cx.path_in(z);
        }
        if let Some(n) = udp_sockets_per_address {
            if *n.get_ref() > 256 {
                cx.err(
                    &n,
                    format!(
                        "udp_sockets_per_address = {} is too many; use 0 (one per core) up to 256",
                        n.get_ref()
                    ),
                );
            }
            cfg.udp_sockets_per_address = n.into_inner();
        }
        if let Some(p) = udp_payload_max {
            if *p.get_ref() < 512 {
                cx.err(
                    &p,
                    format!(
                        "udp_payload_max = {} is below 512; use 512 to 65535 (1232 recommended)",
                        p.get_ref()
                    ),
                );
            }
            cfg.udp_payload_max = p.into_inner();
        }
        if let Some(t) = tcp {
            t.apply(&mut cfg, &mut cx);
        }
        if let Some(id) = identity {
            cfg.identity = id.compile(&mut cx);
        }
        if let Some(l) = log {
            l.apply(&mut cfg, &mut cx);
        }
        if let Some(a) = admin {
            a.apply(&mut cfg, &mut cx);
        }
        if let Some(c) = cookies {
            c.apply(&mut cfg.cookies, &mut cx);
        }
        if let Some(r) = rrl {
            r.apply(&mut cfg.rrl, &mut cx);
        }
        if let Some(s) = probe_source {
            match s.get_ref().parse() {
                Ok(ip) => cfg.probe_source = Some(ip),
                Err(_) => cx.err(
                    &s,
                    format!(
                        "probe_source {:?} is not an IP address of this host",
                        s.get_ref()
                    ),
                ),
            }
        }
        if let Some(f) = fleet {
            let at = f.span().start;
            let f = f.into_inner().check(at, text, path, base, &mut cx.errors);
            cfg.fleet = Some(f);
        }
        if let Some(s) = shed {
            cfg.shed = super::shed::check(s, text, path, &mut cx.errors);
        }
        cfg.rollout = super::ramps::check(gates, ramps, text, path, &mut cx.errors);
        cfg.encrypted = super::encrypted::check(tls, dot, doh, text, path, base, &mut cx.errors);
        if let Some(d) = dnssec {
            d.apply(&mut cfg.dnssec, &mut cx);
        }
        cfg.transfer = super::transfer::check(tsig, transfer, text, path, base, &mut cx.errors);
        if let Some(s) = secondary {
            let keys = &cfg.transfer.keys;
            cfg.secondaries = super::secondary::check(s, keys, text, path, base, &mut cx.errors);
        }
        if let Some(p) = state_file {
            cfg.state_file = Some(cx.path_in(p));
        }
        if let Some(g) = geo {
            g.apply(&mut cfg.geo, &mut cx);
        }
        if let Some(r) = rum {
            cfg.rum = super::rum::check(r, text, path, base, &mut cx.errors);
        }
        if let Some(p) = probes {
            let site = cfg.fleet.as_ref().and_then(|f| f.site.as_deref());
            cfg.probes = super::probes::check(p, site, text, path, &mut cx.errors);
        }
        if let Some(d) = dnstap {
            let at = d.span().start;
            cfg.dnstap = d.into_inner().check(at, text, path, base, &mut cx.errors);
        }
        if cx.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(cx.errors)
        }
    }

    /// Fits the connection caps under `limit` open files (the hard RLIMIT_NOFILE,
    /// which `serve` raises the soft one to), keeping [`DescriptorPlan::reserve`]
    /// for everything else; `cores` decides the UDP sockets when
    /// `udp_sockets_per_address` is 0.
    ///
    /// The caps not given (`tcp`, and `dot` and `doh` where they listen) share what
    /// the given ones leave, at most 1,024 each:
    ///
    /// ```text
    /// cap = min(1024, (limit - reserve - sum of the given caps) / caps not given)
    /// ```
    ///
    /// Given caps that do not fit are an error naming each key and the limit.
    pub(crate) fn fit_descriptors(
        &mut self,
        limit: u64,
        cores: usize,
    ) -> Result<DescriptorPlan, Vec<ConfigError>> {
        let reserve = self.descriptor_reserve(cores);
        let caps = self.connection_caps();
        let given: u64 = caps
            .iter()
            .filter(|c| c.1 && c.2.is_some())
            .map(|c| c.3 as u64)
            .sum();
        let open = caps.iter().filter(|c| c.1 && c.2.is_none()).count() as u64;
        let room = limit.saturating_sub(reserve).saturating_sub(given);
        let file = self
            .file
            .clone()
            .unwrap_or_else(|| PathBuf::from("server config (defaults)"));
        let fix = format!(
            "{reserve} more are kept for probes, files, UDP sockets, listeners and admin, \
             under this process's open-file limit of {limit} (RLIMIT_NOFILE): lower the cap, \
             or raise the limit (systemd: LimitNOFILE=65536 in the unit; shell: ulimit -n)"
        );
        if given > 0 && given + reserve > limit {
            let errors = caps
                .iter()
                .filter(|c| c.1 && c.2.is_some())
                .map(|&(key, _, line, cap)| {
                    ConfigError::new(
                        &file,
                        line.unwrap_or(0),
                        format!(
                            "{key} = {cap} does not fit: the given caps take {given} descriptors and {fix}"
                        ),
                    )
                })
                .collect();
            return Err(errors);
        }
        if reserve >= limit || (open > 0 && room < open) {
            return Err(vec![ConfigError::new(
                &file,
                0,
                format!("no descriptors are left for connections: {fix}"),
            )]);
        }
        let share = room
            .checked_div(open)
            .map_or(0, |n| n.min(DEFAULT_MAX_CONNECTIONS as u64) as usize);
        if self.tcp_max_connections_line.is_none() {
            self.tcp_max_connections = share;
        }
        let e = &mut self.encrypted;
        if e.dot_max_connections_line.is_none() && !e.dot_listen.is_empty() {
            e.dot_max_connections = share;
        }
        if e.doh_max_connections_line.is_none() && !e.doh_listen.is_empty() {
            e.doh_max_connections = share;
        }
        let plan = DescriptorPlan {
            limit,
            reserve,
            caps: self
                .connection_caps()
                .into_iter()
                .filter(|c| c.1)
                .map(|(key, _, line, cap)| (key, cap, line.is_none()))
                .collect(),
        };
        Ok(plan)
    }

    /// Each connection cap: (key, listening, the line that gave it, cap).
    fn connection_caps(&self) -> [(&'static str, bool, Option<usize>, usize); 3] {
        let e = &self.encrypted;
        [
            (
                "tcp.max_connections",
                true,
                self.tcp_max_connections_line,
                self.tcp_max_connections,
            ),
            (
                "dot.max_connections",
                !e.dot_listen.is_empty(),
                e.dot_max_connections_line,
                e.dot_max_connections,
            ),
            (
                "doh.max_connections",
                !e.doh_listen.is_empty(),
                e.doh_max_connections_line,
                e.doh_max_connections,
            ),
        ]
    }

    /// Descriptors kept back from the connection caps:
    ///
    /// ```text
    /// reserve = 64                       stdio, the runtime's poll and wake handles, the log,
    ///                                    files a reload reads (zones, geo, keys, state),
    ///                                    the reload watcher, etcd's connections
    ///         + 64                       health probes in flight (one socket each)
    ///         + 64 + 1                   admin connections and its listener
    ///         + addresses x UDP sockets  (udp_sockets_per_address, or one per core)
    ///         + 2 x listeners            TCP, DoT, DoH: each, and the newcomer it holds
    ///                                    while the longest-idle connection closes for it
    /// ```
    pub(crate) fn descriptor_reserve(&self, cores: usize) -> u64 {
        let per_addr = match self.udp_sockets_per_address {
            0 => cores.max(1),
            n => n,
        } as u64;
        let addrs = self.listen.len() as u64;
        let listeners =
            addrs + (self.encrypted.dot_listen.len() + self.encrypted.doh_listen.len()) as u64;
        RESERVE_BASE
            + crate::health::DEFAULT_MAX_IN_FLIGHT as u64
            + RESERVE_ADMIN
            + addrs * per_addr
            + 2 * listeners
    }

    /// The admin endpoint may listen off loopback only with a token.
    pub(crate) fn check_admin(&self) -> Result<(), Invalid> {
        match self.admin_listen {
            Some(a) if !a.ip().is_loopback() && self.admin_token.is_none() => Err(Invalid(format!(
                "admin endpoint {a} is not on loopback: set admin.token (a bearer token) to listen there"
            ))),
            _ => Ok(()),
        }
    }
}

/// The connection caps when not given, and the most any cap not given is fitted to.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Descriptors of the process besides sockets of clients, probes and admin.
const RESERVE_BASE: u64 = 64;
/// Admin connections (`admin::MAX_CONNECTIONS`) and its listener.
const RESERVE_ADMIN: u64 = 64 + 1;

/// How the connection caps fit under the open-file limit, for the start-up log
/// and `signpost check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorPlan {
    pub limit: u64,
    pub reserve: u64,
    /// (key, cap, fitted rather than given) of each listening transport.
    pub caps: Vec<(&'static str, usize, bool)>,
}

impl std::fmt::Display for DescriptorPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let caps: Vec<String> = self
            .caps
            .iter()
            .map(|(k, v, fitted)| format!("{k} = {v}{}", if *fitted { " (fitted)" } else { "" }))
            .collect();
        write!(
            f,
            "{} under the open-file limit of {} ({} kept for probes, files, UDP sockets, listeners and admin)",
            caps.join(", "),
            self.limit,
            self.reserve
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = ServerConfig::parse(
            "listen = [\"127.0.0.1:5353\", \"[::1]:5353\"]\n[identity]\nnsid = \"a1\"\n",
            Path::new("s.toml"),
        )
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.identity.nsid.as_deref(), Some(&b"a1"[..]));
        assert_eq!(c.udp_payload_max, 1232);
    }

    #[test]
    fn each_error_at_its_own_value_line() {
        // A text search for the key found the first `cidr` and the first
        // `listen`; the values' spans find the right ones.
        let text = "listen = [\"127.0.0.1:53\"]\n\
                    [admin]\nlisten = \"nope\"\n\
                    [[geo.override]]\ncidr = \"192.0.2.0/24\"\ncountry = \"DE\"\n\
                    [[geo.override]]\ncidr = \"198.51.100.0/24\"\ncountry = \"Germany\"\n\
                    [rrl]\nslip = 11\n[dnssec]\nvalidity = \"1s\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        // admin.listen, rrl.slip, dnssec.validity, then the second override's table
        assert_eq!(lines, vec![3, 11, 13, 7], "{errs:?}");
    }

    #[test]
    fn every_error_with_line() {
        let text = "listen = [\"nope\"]\nudp_payload_max = 100\n[tcp]\nidle_timeout = \"soon\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 2, 4], "{errs:?}");
    }

    #[test]
    fn unknown_key_rejected_with_line() {
        let errs = ServerConfig::parse("\n\nlisten_on = []\n", Path::new("s.toml")).unwrap_err();
        assert_eq!(errs[0].line, 3);
        assert!(errs[0].message.contains("unknown field"), "{}", errs[0]);
    }

    #[test]
    fn caps_not_given_are_fitted_under_the_limit() {
        let mut c = ServerConfig::parse("udp_sockets_per_address = 2\n", Path::new("s.toml"))
            .expect("config");
        // 64 + 64 + 65 + 1 x 2 + 2 x 1 = 197 kept back.
        assert_eq!(c.descriptor_reserve(8), 197);
        let plan = c.fit_descriptors(1024, 8).expect("fits");
        assert_eq!(c.tcp_max_connections, 1024 - 197);
        assert_eq!(plan.caps, vec![("tcp.max_connections", 827, true)]);
        // A roomy limit: the old default, no more.
        let mut c = ServerConfig::default();
        c.fit_descriptors(1 << 20, 2).expect("fits");
        assert_eq!(c.tcp_max_connections, 1024);
        // Below the reserve: no room at all.
        let errs = ServerConfig::default().fit_descriptors(100, 2).unwrap_err();
        assert!(
            errs[0].message.contains("open-file limit of 100"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn given_caps_that_cannot_fit_name_their_key_and_the_limit() {
        // [dot] is off (no listen): its cap counts for nothing, and its key's line is
        // not taken for tcp's.
        let text = "udp_sockets_per_address = 1\n[dot]\nmax_connections = 5\n\
                    [tcp]\nmax_connections = 2000\n";
        let mut c = ServerConfig::parse(text, Path::new("s.toml")).expect("config");
        let errs = c.fit_descriptors(1024, 2).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 5);
        let m = &errs[0].message;
        assert!(m.contains("tcp.max_connections = 2000"), "{m}");
        assert!(m.contains("open-file limit of 1024"), "{m}");
        assert!(m.contains("LimitNOFILE"), "{m}");
        // The same cap fits a larger limit, and is kept as given.
        let plan = c.fit_descriptors(4096, 2).expect("fits");
        assert_eq!(plan.caps, vec![("tcp.max_connections", 2000, false)]);
    }

    #[test]
    fn admin_reserve_follows_the_admin_cap() {
        assert_eq!(RESERVE_ADMIN, u64::from(crate::admin::MAX_CONNECTIONS) + 1);
    }

    /// A bad `[admin] listen` is reported on its own line, not on the top-level
    /// `listen` line a text search for `listen =` found first.
    #[test]
    fn admin_listen_error_is_on_its_own_line() {
        let text =
            "listen = [\"127.0.0.1:5353\"]\n\n[admin]\nlisten = \"nowhere\"\ntoken = \"short\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("s.toml:4:") && e.contains("admin.listen")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|e| e.starts_with("s.toml:5:") && e.contains("admin.token")),
            "{shown:?}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn cookie_secret_file_must_be_private_and_128_bits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("signpost-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        let cfg = dir.join("s.toml");
        let text = "[cookies]\nsecret_file = \"secret\"\n";
        std::fs::write(&f, "000102030405060708090a0b0c0d0e0f\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let errs = ServerConfig::parse(text, &cfg).unwrap_err();
        assert!(
            errs[0].to_string().contains("readable by every user"),
            "{errs:?}"
        );
        assert!(errs[0].to_string().contains("s.toml:2"), "{errs:?}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = ServerConfig::parse(text, &cfg).unwrap();
        assert_eq!(c.cookies.secret, Some(std::array::from_fn(|i| i as u8)));
        std::fs::write(&f, "0001").unwrap();
        assert!(ServerConfig::parse(text, &cfg).is_err());
        let off = ServerConfig::parse("[cookies]\nenabled = false\n", &cfg).unwrap();
        assert!(!off.cookies.enabled);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rum_table_parses_with_defaults_and_reports_each_bad_key_with_its_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("signpost-rum-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("s.toml");
        let text = "[rum]\nlisten = \"127.0.0.1:8053\"\nregions = { eu-west = \"https://eu.example/o.gif\", us-east = \"https://us.example/o.gif\" }\n";
        let c = ServerConfig::parse(text, &cfg).unwrap().rum.unwrap();
        assert_eq!(c.listen, "127.0.0.1:8053".parse().unwrap());
        assert_eq!(c.regions.len(), 2);
        assert_eq!(c.regions[0].0, "eu-west");
        assert_eq!(c.refresh, DEFAULT_RUM_REFRESH);
        assert_eq!(c.precedence, Precedence::File);
        assert!(c.feed_token.is_none() && c.allowed_origins.is_empty());
        assert!(ServerConfig::parse("", &cfg).unwrap().rum.is_none());

        let full = format!(
            "{text}allowed_origins = [\"https://shop.example\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
             refresh = \"200ms\"\nprecedence = \"measured\"\nfeed_token_file = \"token\"\n"
        );
        let f = dir.join("token");
        std::fs::write(&f, "feed-token-0123456789\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let errs = ServerConfig::parse(&full, &cfg).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].to_string().contains("s.toml:8"), "{errs:?}");
        assert!(
            errs[0].to_string().contains("readable by every user"),
            "{errs:?}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = ServerConfig::parse(&full, &cfg).unwrap().rum.unwrap();
        assert_eq!(c.feed_token.as_deref(), Some("feed-token-0123456789"));
        assert_eq!(c.refresh, Duration::from_millis(200));
        assert_eq!(c.precedence, Precedence::Measured);
        assert_eq!(c.allowed_origins, ["https://shop.example"]);
        assert_eq!(c.trusted_proxies.len(), 1);

        let bad = "[rum]\nlisten = \"nowhere\"\nregions = { eu-west = \"ftp://x\" }\n\
                   allowed_origins = [\"https://a.example/page\"]\ntrusted_proxies = [\"10.0.0.0/33\"]\n\
                   refresh = \"soon\"\nprecedence = \"newest\"\nfeed_token_file = \"missing\"\n";
        let errs = ServerConfig::parse(bad, &cfg).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for (line, key) in [
            (2, "rum.listen"),
            (3, "rum.regions.eu-west"),
            (4, "rum.allowed_origins"),
            (5, "rum.trusted_proxies"),
            (6, "rum.refresh"),
            (7, "rum.precedence"),
            (8, "rum.feed_token_file"),
        ] {
            assert!(
                text.iter()
                    .any(|t| t.contains(&format!("s.toml:{line}")) && t.contains(key)),
                "{key} at line {line}: {text:?}"
            );
        }
        let unknown = "[rum]\nlisten = \"127.0.0.1:8053\"\nregions = {}\nfeed_token = \"x\"\n";
        let errs = ServerConfig::parse(unknown, &cfg).unwrap_err();
        assert!(errs[0].to_string().contains("feed_token"), "{errs:?}");
        let empty = "[rum]\nlisten = \"127.0.0.1:8053\"\nregions = {}\n";
        let errs = ServerConfig::parse(empty, &cfg).unwrap_err();
        assert!(
            errs[0].to_string().contains("rum.regions is empty"),
            "{errs:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
