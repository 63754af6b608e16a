//! `[tls]`, `[dot]` and `[doh]` in the server config: the certificate and key the
//! encrypted transports present, and where DNS over TLS (RFC 7858) and DNS over
//! HTTPS (RFC 8484) listen. Parsed raw here and checked into [`EncryptedConfig`];
//! reading the PEM files is the loader's (`app`), so that `signpost check`, start-up
//! and every reload read them the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsRaw {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DotRaw {
    listen: Option<Vec<String>>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DohRaw {
    listen: Option<Vec<String>>,
    path: Option<String>,
    max_connections: Option<usize>,
    /// KiB of requests waiting for their body, server-wide.
    body_budget_kib: Option<usize>,
}

/// The certificate chain and key files, with the config lines that name them, so
/// that a file that cannot be read or parsed is reported at that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key_file: PathBuf,
    /// The server config file, and the lines of `cert_file` and `key_file` in it.
    pub config_file: PathBuf,
    pub cert_line: usize,
    pub key_line: usize,
}

/// The encrypted transports; both off unless their `listen` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedConfig {
    pub tls: Option<TlsFiles>,
    /// DNS over TLS addresses (port 853 is the usual one).
    pub dot_listen: Vec<SocketAddr>,
    pub dot_max_connections: usize,
    /// DNS over HTTPS addresses (port 443 is the usual one).
    pub doh_listen: Vec<SocketAddr>,
    /// The URI path queries go to (RFC 8484 §3 leaves it to the server).
    pub doh_path: String,
    pub doh_max_connections: usize,
    /// Bytes of DoH POST requests (head and body) waiting for their body, over all
    /// connections; a request that cannot get its bytes is refused with 503.
    pub doh_body_budget: usize,
    /// The lines of `dot.max_connections` and `doh.max_connections` when given (the
    /// caps not given are fitted under the open-file limit).
    pub dot_max_connections_line: Option<usize>,
    pub doh_max_connections_line: Option<usize>,
}

/// As many connections as TCP allows by default.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// `doh.body_budget_kib` unless given: 8 MiB.
const DEFAULT_BODY_BUDGET_KIB: usize = 8 << 10;

impl Default for EncryptedConfig {
    fn default() -> Self {
        EncryptedConfig {
            tls: None,
            dot_listen: Vec::new(),
            dot_max_connections: DEFAULT_MAX_CONNECTIONS,
            doh_listen: Vec::new(),
            doh_path: "/dns-query".to_string(),
            doh_max_connections: DEFAULT_MAX_CONNECTIONS,
            doh_body_budget: DEFAULT_BODY_BUDGET_KIB << 10,
            dot_max_connections_line: None,
            doh_max_connections_line: None,
        }
    }
}

impl EncryptedConfig {
    /// True when DoT or DoH listens somewhere.
    pub(crate) fn enabled(&self) -> bool {
        !self.dot_listen.is_empty() || !self.doh_listen.is_empty()
    }
}

/// Checks the three sections; every error goes to `errors` with its line.
pub(super) fn check(
    tls: Option<TlsRaw>,
    dot: Option<DotRaw>,
    doh: Option<DohRaw>,
    text: &str,
    path: &Path,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> EncryptedConfig {
    let mut cfg = EncryptedConfig::default();
    let err = |section: &str, key: &str, message: String| {
        ConfigError::new(path, key_line_in(text, section, key), message)
    };
    let addrs = |section: &str, list: Vec<String>, errors: &mut Vec<ConfigError>| {
        let mut out = Vec::new();
        for l in list {
            match l.parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => errors.push(err(
                    section,
                    "listen",
                    format!("{section}.listen address {l:?} is not ADDR:PORT (like [::]:853)"),
                )),
            }
        }
        out
    };
    let cap = |section: &str, n: Option<usize>, errors: &mut Vec<ConfigError>| match n {
        Some(0) => {
            errors.push(err(
                section,
                "max_connections",
                format!("{section}.max_connections = 0 would refuse every client; use 1 or more"),
            ));
            DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => n,
        None => DEFAULT_MAX_CONNECTIONS,
    };
    if let Some(d) = dot {
        cfg.dot_listen = addrs("dot", d.listen.unwrap_or_default(), errors);
        cfg.dot_max_connections = cap("dot", d.max_connections, errors);
        if d.max_connections.is_some() {
            cfg.dot_max_connections_line = Some(key_line_in(text, "dot", "max_connections"));
        }
    }
    if let Some(d) = doh {
        cfg.doh_listen = addrs("doh", d.listen.unwrap_or_default(), errors);
        cfg.doh_max_connections = cap("doh", d.max_connections, errors);
        if d.max_connections.is_some() {
            cfg.doh_max_connections_line = Some(key_line_in(text, "doh", "max_connections"));
        }
        match d.body_budget_kib {
            // A budget below one largest message would refuse some valid queries.
            Some(k) if !(64..=(1 << 30)).contains(&k) => errors.push(err(
                "doh",
                "body_budget_kib",
                format!(
                    "doh.body_budget_kib = {k}: use 64 (one largest DNS message) or more, \
                     up to 1073741824 (default {DEFAULT_BODY_BUDGET_KIB})"
                ),
            )),
            Some(k) => cfg.doh_body_budget = k << 10,
            None => {}
        }
        if let Some(p) = d.path {
            if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
                errors.push(err(
                    "doh",
                    "path",
                    format!("doh.path = {p:?} is not a URI path like \"/dns-query\""),
                ));
            } else {
                cfg.doh_path = p;
            }
        }
    }
    let file = |key: &str, p: Option<PathBuf>, errors: &mut Vec<ConfigError>| match p {
        Some(p) if !p.as_os_str().is_empty() => {
            Some(if p.is_absolute() { p } else { base.join(p) })
        }
        _ => {
            errors.push(err(
                "tls",
                key,
                format!("tls.{key} is missing: DoT and DoH need a PEM certificate chain and key"),
            ));
            None
        }
    };
    match tls {
        Some(t) => {
            let cert = file("cert_file", t.cert_file, errors);
            let key = file("key_file", t.key_file, errors);
            if let (Some(cert_file), Some(key_file)) = (cert, key) {
                cfg.tls = Some(TlsFiles {
                    cert_file,
                    key_file,
                    config_file: path.to_path_buf(),
                    cert_line: key_line_in(text, "tls", "cert_file"),
                    key_line: key_line_in(text, "tls", "key_file"),
                });
            }
        }
        None if cfg.enabled() => {
            let section = if cfg.dot_listen.is_empty() {
                "doh"
            } else {
                "dot"
            };
            errors.push(err(
                section,
                "listen",
                format!(
                    "{section}.listen needs a certificate: add [tls] with cert_file and key_file"
                ),
            ));
        }
        None => {}
    }
    cfg
}

/// The line of `key = ` inside `[section]` (the first one, or that of the section
/// header when the key is absent); 0 when the section is not in the text.
pub(super) fn key_line_in(text: &str, section: &str, key: &str) -> usize {
    let header = format!("[{section}]");
    let mut in_section = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_section.is_some() {
                break;
            }
            if t.split('#').next().map(str::trim) == Some(header.as_str()) {
                in_section = Some(i + 1);
            }
            continue;
        }
        if in_section.is_some() {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return i + 1;
                }
            }
        }
    }
    in_section.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::ServerConfig;
    use super::*;

    #[test]
    fn off_unless_listen_is_given() {
        let c = ServerConfig::parse("", Path::new("/etc/s.toml")).unwrap();
        assert!(!c.encrypted.enabled());
        assert!(c.encrypted.tls.is_none());
    }

    #[test]
    fn sections_checked_with_lines() {
        let text = "[fleet]\nendpoints = [\"http://127.0.0.1:2379\"]\ninstance = \"a\"\n\
                    cert_file = \"x\"\nkey_file = \"y\"\n\
                    [tls]\ncert_file = \"c.pem\"\nkey_file = \"/k.pem\"\n\
                    [dot]\nlisten = [\"127.0.0.1:853\"]\n[doh]\nlisten = [\"[::1]:443\"]\n";
        let c = ServerConfig::parse(text, Path::new("/etc/s.toml")).unwrap();
        let t = c.encrypted.tls.unwrap();
        assert_eq!(t.cert_file, Path::new("/etc/c.pem"));
        assert_eq!(t.key_file, Path::new("/k.pem"));
        assert_eq!((t.cert_line, t.key_line), (7, 8));
        assert_eq!(c.encrypted.dot_listen.len(), 1);
        assert_eq!(c.encrypted.doh_path, "/dns-query");
    }

    #[test]
    fn every_error_at_its_line() {
        let text = "[dot]\nlisten = [\"nope\"]\nmax_connections = 0\n[doh]\npath = \"dns\"\n\
                    listen = [\"127.0.0.1:443\"]\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        // The bad address, the zero cap, the bad path, and no [tls] for DoH.
        assert_eq!(lines, vec![2, 3, 5, 6], "{errs:?}");
        assert!(errs[3].message.contains("add [tls]"), "{}", errs[3]);
    }

    #[test]
    fn tls_without_key_is_an_error() {
        let errs =
            ServerConfig::parse("[tls]\ncert_file = \"c.pem\"\n", Path::new("s.toml")).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 1);
        assert!(
            errs[0].message.contains("tls.key_file is missing"),
            "{}",
            errs[0]
        );
    }
}
