//! `[[tsig]]` keys and `[transfer]` in the server config: who may take a zone by
//! AXFR/IXFR (addresses, TSIG keys, or both), what a policy zone's steered names
//! transfer as, and which secondaries are sent a NOTIFY when a zone changes.
//! Parsed raw here, checked into [`TransferConfig`]; `server::xfr` serves the
//! transfers and `server::notify` sends the NOTIFYs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, ConfigError};
pub use crate::answer::xfr::{Standin, TransferConfig, ZoneTransfer, DEFAULT_JOURNAL};
use crate::geo::cidr::IpNet;
use crate::zone::tsig::{Algorithm, Key, Keyring};
use crate::zone::Name;

/// One `[[tsig]]` key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TsigRaw {
    name: Spanned<String>,
    algorithm: Option<Spanned<String>>,
    secret_file: Spanned<PathBuf>,
}

/// `[transfer]`, and each `[transfer.zone."NAME"]` inside it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferRaw {
    allow: Option<Spanned<Vec<String>>>,
    keys: Option<Spanned<Vec<String>>>,
    standin: Option<Spanned<String>>,
    notify: Option<Spanned<Vec<String>>>,
    notify_key: Option<Spanned<String>>,
    journal: Option<Spanned<u32>>,
    journal_dir: Option<Spanned<PathBuf>>,
    zone: Option<Spanned<indexmap::IndexMap<String, TransferZoneRaw>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TransferZoneRaw {
    allow: Option<Spanned<Vec<String>>>,
    keys: Option<Spanned<Vec<String>>>,
    standin: Option<Spanned<String>>,
    notify: Option<Spanned<Vec<String>>>,
    notify_key: Option<Spanned<String>>,
}

/// The secret of a `[[tsig]]` key: base64 in a file no other user may read.
fn read_key_secret(path: &Path) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let text = super::values::read_secret_file("tsig.secret_file", path)?;
    match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
        Ok(k) if k.len() >= 16 => Ok(k),
        Ok(_) => Err(format!(
            "tsig.secret_file {}: the secret is shorter than 16 bytes; make one with `keymgr -t NAME hmac-sha256` or `openssl rand -base64 32`",
            path.display()
        )),
        Err(_) => Err(format!(
            "tsig.secret_file {}: want the secret in base64, as `openssl rand -base64 32` writes",
            path.display()
        )),
    }
}

/// Checks `[[tsig]]` and `[transfer]`; every error is pushed with its line.
pub(super) fn check(
    tsig: Option<Vec<TsigRaw>>,
    transfer: Option<TransferRaw>,
    text: &str,
    path: &Path,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> TransferConfig {
    let mut err =
        |start: usize, m: String| errors.push(ConfigError::new(path, line_of(text, start), m));
    let mut cfg = TransferConfig::default();
    for t in tsig.unwrap_or_default() {
        let TsigRaw {
            name,
            algorithm,
            secret_file,
        } = t;
        let at = name.span().start;
        let key_name = match Name::parse(name.get_ref(), Some(&Name::root())) {
            Ok(n) => n,
            Err(e) => {
                err(at, format!("tsig.name {:?}: {e}", name.get_ref()));
                continue;
            }
        };
        if cfg.keys.named(&key_name).is_some() {
            err(at, format!("tsig.name {key_name} is given twice"));
            continue;
        }
        let algorithm = match algorithm {
            None => Algorithm::HmacSha256,
            Some(a) => match Algorithm::from_name(a.get_ref()) {
                Some(a) => a,
                None => {
                    let names: Vec<_> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
                    err(
                        a.span().start,
                        format!(
                            "tsig.algorithm {:?} is not one of {}",
                            a.get_ref(),
                            names.join(", ")
                        ),
                    );
                    continue;
                }
            },
        };
        let at = secret_file.span().start;
        let f = secret_file.into_inner();
        let f = if f.is_absolute() { f } else { base.join(f) };
        match read_key_secret(&f) {
            Ok(secret) => cfg.keys.keys.push(Key::new(key_name, algorithm, &secret)),
            Err(m) => err(at, m),
        }
    }
    let Some(raw) = transfer else {
        return cfg;
    };
    let TransferRaw {
        allow,
        keys,
        standin,
        notify,
        notify_key,
        journal,
        journal_dir,
        zone,
    } = raw;
    let base_zone = ZoneTransfer::default();
    cfg.defaults = zone_settings(
        &base_zone,
        "transfer",
        TransferZoneRaw {
            allow,
            keys,
            standin,
            notify,
            notify_key,
        },
        &cfg.keys,
        &mut err,
    );
    if let Some(j) = journal {
        let n = *j.get_ref() as usize;
        if n > 1000 {
            err(
                j.span().start,
                format!("transfer.journal = {n}: keep 0 (AXFR only) to 1000 differences"),
            );
        }
        cfg.journal = n;
    }
    if let Some(d) = journal_dir {
        let at = d.span().start;
        let d = d.into_inner();
        if d.as_os_str().is_empty() {
            err(
                at,
                "transfer.journal_dir is empty: name a folder, or leave the key out".into(),
            );
        } else {
            cfg.journal_dir = Some(if d.is_absolute() { d } else { base.join(d) });
        }
    }
    for (name, z) in zone.map(Spanned::into_inner).unwrap_or_default() {
        let origin = match Name::parse(&name, Some(&Name::root())) {
            Ok(n) => n,
            Err(e) => {
                err(0, format!("transfer.zone {name:?}: {e}"));
                continue;
            }
        };
        let key = format!("transfer.zone.\"{name}\"");
        let settings = zone_settings(&cfg.defaults, &key, z, &cfg.keys, &mut err);
        cfg.zones.push((origin, settings));
    }
    cfg
}

/// One zone's settings over `inherit`.
fn zone_settings(
    inherit: &ZoneTransfer,
    key: &str,
    raw: TransferZoneRaw,
    ring: &Keyring,
    err: &mut impl FnMut(usize, String),
) -> ZoneTransfer {
    let TransferZoneRaw {
        allow,
        keys,
        standin,
        notify,
        notify_key,
    } = raw;
    let mut z = inherit.clone();
    if let Some(a) = allow {
        z.allow.clear();
        for s in a.get_ref() {
            match s.parse::<IpNet>() {
                Ok(n) => z.allow.push(n),
                Err(e) => err(a.span().start, format!("{key}.allow {s:?}: {e}")),
            }
        }
    }
    let key_name =
        |s: &str, at: usize, what: &str, err: &mut dyn FnMut(usize, String)| match Name::parse(
            s,
            Some(&Name::root()),
        ) {
            Ok(n) if ring.named(&n).is_some() => Some(n),
            _ => {
                err(
                    at,
                    format!("{key}.{what} {s:?} names no [[tsig]] key of this file"),
                );
                None
            }
        };
    if let Some(k) = keys {
        z.keys.clear();
        for s in k.get_ref() {
            if let Some(n) = key_name(s, k.span().start, "keys", err) {
                z.keys.push(n);
            }
        }
    }
    if let Some(s) = standin {
        z.standin = match s.get_ref().as_str() {
            "default" => Standin::Default,
            "none" => Standin::None,
            other => {
                err(
                    s.span().start,
                    format!("{key}.standin = {other:?}; use \"default\" or \"none\""),
                );
                z.standin
            }
        };
    }
    if let Some(n) = notify {
        z.notify.clear();
        for s in n.get_ref() {
            let addr = s.parse::<SocketAddr>().or_else(|_| {
                s.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            match addr {
                Ok(a) => z.notify.push(a),
                Err(_) => err(
                    n.span().start,
                    format!("{key}.notify {s:?} is not ADDR or ADDR:PORT (like 192.0.2.1:53)"),
                ),
            }
        }
    }
    if let Some(k) = notify_key {
        z.notify_key = key_name(k.get_ref(), k.span().start, "notify_key", err);
    }
    z
}

#[cfg(test)]
mod tests {
    use super::super::server::ServerConfig;
    use std::io::Write;

    fn write_secret(dir: &std::path::Path, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("xfr.key");
        let mut f = std::fs::File::create(&p).unwrap();
        writeln!(f, "c2lnbnBvc3QtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("signpost-xfr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keys_and_zones_compile() {
        let d = tmp("ok");
        write_secret(&d, 0o600);
        let text = "[[tsig]]\nname = \"xfr-key\"\nsecret_file = \"xfr.key\"\n\n[transfer]\nallow = [\"127.0.0.1/32\"]\nnotify = [\"127.0.0.1:5301\"]\n\n[transfer.zone.\"example.com.\"]\nkeys = [\"xfr-key.\"]\nstandin = \"none\"\n";
        let c = ServerConfig::parse(text, &d.join("server.toml")).unwrap();
        let t = &c.transfer;
        assert_eq!(t.keys.keys.len(), 1);
        let ex = t.zone(&crate::zone::Name::parse("example.com.", None).unwrap());
        assert_eq!(ex.standin, super::Standin::None);
        assert_eq!(ex.allow.len(), 1, "inherited");
        let key = crate::zone::Name::parse("xfr-key.", None).unwrap();
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        assert!(ex.admits(lo, Some(&key)));
        assert!(!ex.admits(lo, None), "both address and key");
        assert!(!ex.admits("127.0.0.2".parse().unwrap(), Some(&key)));
        let other = t.zone(&crate::zone::Name::parse("other.", None).unwrap());
        assert!(other.admits(lo, None));
        assert_eq!(other.notify[0].port(), 5301);
        assert!(
            !super::ZoneTransfer::default().admits(lo, Some(&key)),
            "closed by default"
        );
    }

    #[test]
    fn bad_keys_and_settings_name_their_line() {
        let d = tmp("bad");
        write_secret(&d, 0o644);
        let text = "[[tsig]]\nname = \"xfr-key\"\nsecret_file = \"xfr.key\"\n[[tsig]]\nname = \"k2\"\nalgorithm = \"hmac-md5\"\nsecret_file = \"xfr.key\"\n[transfer]\nallow = [\"127.0.0.1/33\"]\nkeys = [\"nokey\"]\nstandin = \"some\"\n";
        let e = ServerConfig::parse(text, &d.join("server.toml")).unwrap_err();
        let lines: Vec<(usize, &str)> = e.iter().map(|e| (e.line, e.message.as_str())).collect();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 3 && m.contains("readable by every user")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|(l, m)| *l == 6 && m.contains("hmac-md5")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 9 && m.contains("127.0.0.1/33")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == 10 && m.contains("names no [[tsig]] key")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|(l, m)| *l == 11 && m.contains("standin")),
            "{lines:?}"
        );
    }
}
