//! `[[secondary]]` in the server config: a zone signpost pulls from its primaries
//! by zone transfer (RFC 5936, RFC 1995) and serves like any other. Parsed raw
//! here, checked into [`SecondaryConfig`]; the `secondary` module runs the pulls.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::values::parse_duration;
use super::{line_of, ConfigError};
use crate::zone::Name;

/// Default cap on one transfer's bytes on the wire.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// Default time one transfer (or SOA query) may take, connection included.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecondaryRaw {
    zone: toml::Spanned<String>,
    primaries: toml::Spanned<Vec<String>>,
    notify_from: Option<toml::Spanned<Vec<String>>>,
    file: Option<toml::Spanned<PathBuf>>,
    max_bytes: Option<toml::Spanned<u64>>,
    timeout: Option<toml::Spanned<String>>,
    tsig: Option<toml::Spanned<String>>,
}

/// One checked `[[secondary]]` zone.
#[derive(Debug, Clone)]
pub struct SecondaryConfig {
    /// The zone's apex.
    pub origin: Name,
    /// Where transfers come from, tried in order.
    pub primaries: Vec<SocketAddr>,
    /// Addresses whose NOTIFY for this zone starts a refresh: the primaries'
    /// addresses unless given.
    pub notify_from: Vec<IpAddr>,
    /// The last good copy, a master file written whole and renamed into place.
    pub file: PathBuf,
    /// A transfer larger than this on the wire is abandoned.
    pub max_bytes: u64,
    /// A transfer or SOA query that takes longer is abandoned.
    pub timeout: Duration,
    /// The `[[tsig]]` key transfers are signed with, and their answers checked.
    pub tsig: Option<crate::zone::tsig::Key>,
}

/// Checks every `[[secondary]]` table; errors go to `errors` with their line.
pub(super) fn check(
    raws: Vec<SecondaryRaw>,
    keys: &crate::zone::tsig::Keyring,
    text: &str,
    path: &Path,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Vec<SecondaryConfig> {
    let mut out: Vec<SecondaryConfig> = Vec::new();
    for raw in raws {
        let SecondaryRaw {
            zone,
            primaries,
            notify_from,
            file,
            max_bytes,
            timeout,
            tsig,
        } = raw;
        let mut err = |span: std::ops::Range<usize>, m: String| {
            errors.push(ConfigError::new(path, line_of(text, span.start), m))
        };
        let origin = match Name::parse(zone.get_ref(), Some(&Name::root())) {
            Ok(n) => n,
            Err(e) => {
                err(
                    zone.span(),
                    format!("secondary.zone {:?}: {e}", zone.get_ref()),
                );
                continue;
            }
        };
        if out.iter().any(|s| s.origin == origin) {
            err(
                zone.span(),
                format!(
                    "secondary zone {origin} is given twice; keep one [[secondary]] table per zone"
                ),
            );
            continue;
        }
        let mut addrs = Vec::new();
        for p in primaries.get_ref() {
            match p.parse::<SocketAddr>() {
                Ok(a) => addrs.push(a),
                Err(_) => err(
                    primaries.span(),
                    format!("secondary.primaries {p:?} is not an address and port like \"192.0.2.1:53\" or \"[2001:db8::1]:53\""),
                ),
            }
        }
        if primaries.get_ref().is_empty() {
            err(
                primaries.span(),
                format!(
                    "secondary zone {origin} has no primaries; give at least one \"ADDRESS:PORT\""
                ),
            );
        }
        let notify_from = match notify_from {
            None => {
                let mut v: Vec<IpAddr> = addrs.iter().map(|a| a.ip()).collect();
                v.dedup();
                v
            }
            Some(n) => {
                let mut v = Vec::new();
                for a in n.get_ref() {
                    match a.parse::<IpAddr>() {
                        Ok(ip) => v.push(ip),
                        Err(_) => err(
                            n.span(),
                            format!("secondary.notify_from {a:?} is not an IP address"),
                        ),
                    }
                }
                v
            }
        };
        let file = match file {
            Some(f) if f.get_ref().is_absolute() => f.into_inner(),
            Some(f) => base.join(f.get_ref()),
            None => base.join("secondary").join(format!("{origin}zone")),
        };
        let max_bytes = match max_bytes {
            None => DEFAULT_MAX_BYTES,
            Some(m) if *m.get_ref() >= 512 => *m.get_ref(),
            Some(m) => {
                err(
                    m.span(),
                    format!(
                        "secondary.max_bytes = {} is too small; use at least 512",
                        m.get_ref()
                    ),
                );
                DEFAULT_MAX_BYTES
            }
        };
        let timeout = match timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => match parse_duration(t.get_ref()) {
                Ok(d) if d >= Duration::from_millis(100) => d,
                Ok(_) => {
                    err(
                        t.span(),
                        "secondary.timeout is too short; use at least 100ms".into(),
                    );
                    DEFAULT_TIMEOUT
                }
                Err(e) => {
                    err(t.span(), format!("secondary.timeout: {e}"));
                    DEFAULT_TIMEOUT
                }
            },
        };
        let tsig = tsig.and_then(|t| {
            let key = Name::parse(t.get_ref(), Some(&Name::root()))
                .ok()
                .and_then(|n| keys.named(&n).cloned());
            if key.is_none() {
                err(
                    t.span(),
                    format!(
                        "secondary.tsig {:?} names no [[tsig]] key of this file",
                        t.get_ref()
                    ),
                );
            }
            key
        });
        out.push(SecondaryConfig {
            origin,
            primaries: addrs,
            notify_from,
            file,
            max_bytes,
            timeout,
            tsig,
        });
    }
    out
}

/// Each secondary zone with its copy while that may be served at `now`
/// (seconds since 1970), for `config::zones::load_zones_with`.
pub(crate) fn copies(secondaries: &[SecondaryConfig], now: u64) -> Vec<(Name, Option<PathBuf>)> {
    secondaries
        .iter()
        .map(|s| (s.origin.clone(), usable_copy(s, now)))
        .collect()
}

/// The copy when it may be served at `now`: it exists, its first record is the
/// zone's SOA, and a primary confirmed it (the file's modification time, set at
/// every successful refresh) less than the SOA's expire ago (RFC 1035 §3.3.13).
pub(crate) fn usable_copy(s: &SecondaryConfig, now: u64) -> Option<PathBuf> {
    let confirmed = std::fs::metadata(&s.file)
        .and_then(|m| m.modified())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let soa = copy_soa(&s.file, &s.origin)?;
    (confirmed + u64::from(soa.expire) > now).then(|| s.file.clone())
}

/// The SOA a copy starts with (the secondary module writes it on the first line).
pub(crate) fn copy_soa(file: &Path, origin: &Name) -> Option<crate::zone::soa::Soa> {
    use std::io::{BufRead, Read};
    let f = std::fs::File::open(file).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f.take(64 << 10))
        .read_line(&mut line)
        .ok()?;
    let opts = crate::zone::master::MasterOptions {
        origin: origin.clone(),
        default_ttl: None,
    };
    let (recs, errs) = crate::zone::master::parse_text(&line, file, 1, Path::new("/"), &opts);
    let r = recs
        .first()
        .filter(|r| errs.is_empty() && r.rtype == crate::zone::rtype::SOA)?;
    (r.owner == *origin).then_some(())?;
    crate::zone::soa::Soa::read(&r.rdata)
}

#[cfg(test)]
mod tests {
    use crate::config::server::ServerConfig;
    use std::path::Path;

    #[test]
    fn secondary_tables_check_with_lines() {
        let text = "[[secondary]]\nzone = \"example.net\"\nprimaries = [\"127.0.0.1:5300\"]\n\n[[secondary]]\nzone = \"b.test.\"\nprimaries = [\"nowhere\"]\n";
        let errs = ServerConfig::parse(text, Path::new("/etc/s/server.toml")).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].line, 7, "{errs:?}");
        let ok = "[[secondary]]\nzone = \"example.net\"\nprimaries = [\"127.0.0.1:5300\"]\ntimeout = \"2s\"\n";
        let cfg = ServerConfig::parse(ok, Path::new("/etc/s/server.toml")).unwrap();
        let s = &cfg.secondaries[0];
        assert_eq!(s.origin.to_string(), "example.net.");
        assert_eq!(
            s.notify_from,
            vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(s.file, Path::new("/etc/s/secondary/example.net.zone"));
        assert_eq!(s.timeout, std::time::Duration::from_secs(2));
        let unknown = "[[secondary]]\nzone = \"a.\"\nprimaries = []\nbogus = 1\n";
        assert!(ServerConfig::parse(unknown, Path::new("s.toml")).is_err());
    }
}
