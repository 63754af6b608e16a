//! `[tls]`, `[dot]` and `[doh]` in the server config: the certificate and key the
//! encrypted transports present, and where DNS over TLS (RFC 7858) and DNS over
//! HTTPS (RFC 8484) listen. Parsed raw here and checked into [`EncryptedConfig`];
//! reading the PEM files is the loader's (`app`), so that `signpost check`, start-up
//! and every reload read them the same way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{line_of, values, ConfigError};

/// `[tls]` as written: every value with its place, for its error's line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsRaw {
    cert_file: Option<Spanned<PathBuf>>,
    key_file: Option<Spanned<PathBuf>>,
}

/// `[dot]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DotRaw {
    listen: Option<Vec<Spanned<String>>>,
    max_connections: Option<Spanned<usize>>,
}

/// `[doh]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DohRaw {
    listen: Option<Vec<Spanned<String>>>,
    path: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
    /// KiB of requests waiting for their body, server-wide.
    body_budget_kib: Option<Spanned<usize>>,
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

/// Checks the three sections, each with where it starts in `text`; every error goes
/// to `errors` at its value's line (a missing key's at its section's).
pub(super) fn check(
    tls: Option<Spanned<TlsRaw>>,
    dot: Option<Spanned<DotRaw>>,
    doh: Option<Spanned<DohRaw>>,
    text: &str,
    path: &Path,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> EncryptedConfig {
    let mut cx = Cx {
        values: values::Cx {
            table: "tls",
            text,
            path,
            errors,
        },
        base,
    };
    let mut cfg = EncryptedConfig::default();
    // Where each listen list starts: the place of "needs a certificate".
    let first = |l: &Option<Vec<Spanned<String>>>| {
        l.as_ref()
            .and_then(|l| l.first())
            .map_or(0, |a| a.span().start)
    };
    let (mut dot_at, mut doh_at) = (0, 0);
    // Every key of each section, so that a new one cannot be dropped silently.
    if let Some(d) = dot {
        let DotRaw {
            listen,
            max_connections,
        } = d.into_inner();
        dot_at = first(&listen);
        cfg.dot_listen = cx.addrs("dot", listen);
        let (cap, line) = cx.cap("dot", max_connections);
        (cfg.dot_max_connections, cfg.dot_max_connections_line) = (cap, line);
    }
    if let Some(d) = doh {
        let DohRaw {
            listen,
            path: uri,
            max_connections,
            body_budget_kib,
        } = d.into_inner();
        doh_at = first(&listen);
        cfg.doh_listen = cx.addrs("doh", listen);
        let (cap, line) = cx.cap("doh", max_connections);
        (cfg.doh_max_connections, cfg.doh_max_connections_line) = (cap, line);
        if let Some(b) = cx.body_budget(body_budget_kib) {
            cfg.doh_body_budget = b;
        }
        if let Some(p) = cx.uri_path(uri) {
            cfg.doh_path = p;
        }
    }
    match tls {
        Some(t) => cfg.tls = cx.tls(t),
        None if cfg.enabled() => {
            let (section, at) = if cfg.dot_listen.is_empty() {
                ("doh", doh_at)
            } else {
                ("dot", dot_at)
            };
            cx.err(
                at,
                format!(
                    "{section}.listen needs a certificate: add [tls] with cert_file and key_file"
                ),
            );
        }
        None => {}
    }
    cfg
}

/// Where relative paths start from, beside the value checks every table shares
/// (each message names its own section).
struct Cx<'a> {
    values: values::Cx<'a>,
    base: &'a Path,
}

impl Cx<'_> {
    fn err(&mut self, at: usize, message: String) {
        self.values.err(at, message);
    }

    /// Each `ADDR:PORT` of a listen list.
    fn addrs(&mut self, section: &str, list: Option<Vec<Spanned<String>>>) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for l in list.unwrap_or_default() {
            match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => out.push(a),
                Err(_) => self.err(
                    l.span().start,
                    format!(
                        "{section}.listen address {:?} is not ADDR:PORT (like [::]:853)",
                        l.get_ref()
                    ),
                ),
            }
        }
        out
    }

    /// `max_connections` and its line when given.
    fn cap(&mut self, section: &str, n: Option<Spanned<usize>>) -> (usize, Option<usize>) {
        let Some(n) = n else {
            return (DEFAULT_MAX_CONNECTIONS, None);
        };
        let at = n.span().start;
        if *n.get_ref() == 0 {
            self.err(
                at,
                format!("{section}.max_connections = 0 would refuse every client; use 1 or more"),
            );
            return (DEFAULT_MAX_CONNECTIONS, None);
        }
        (n.into_inner(), Some(line_of(self.values.text, at)))
    }

    /// `doh.body_budget_kib` in bytes.
    fn body_budget(&mut self, k: Option<Spanned<usize>>) -> Option<usize> {
        let k = k?;
        // A budget below one largest message would refuse some valid queries.
        if (64..=(1 << 30)).contains(k.get_ref()) {
            return Some(k.into_inner() << 10);
        }
        self.err(
            k.span().start,
            format!(
                "doh.body_budget_kib = {}: use 64 (one largest DNS message) or more, \
                 up to 1073741824 (default {DEFAULT_BODY_BUDGET_KIB})",
                k.get_ref()
            ),
        );
        None
    }

    /// `doh.path`: a URI path.
    fn uri_path(&mut self, p: Option<Spanned<String>>) -> Option<String> {
        let p = p?;
        if p.get_ref().starts_with('/') && !p.get_ref().contains(['?', '#', ' ']) {
            return Some(p.into_inner());
        }
        self.err(
            p.span().start,
            format!(
                "doh.path = {:?} is not a URI path like \"/dns-query\"",
                p.get_ref()
            ),
        );
        None
    }

    /// `[tls]`: both files, relative to the config's folder.
    fn tls(&mut self, t: Spanned<TlsRaw>) -> Option<TlsFiles> {
        let at = t.span().start;
        let TlsRaw {
            cert_file,
            key_file,
        } = t.into_inner();
        let cert = self.file(at, "cert_file", cert_file);
        let key = self.file(at, "key_file", key_file);
        let ((cert_file, cert_line), (key_file, key_line)) = (cert?, key?);
        Some(TlsFiles {
            cert_file,
            key_file,
            config_file: self.values.path.to_path_buf(),
            cert_line,
            key_line,
        })
    }

    /// A file named in `[tls]` (which starts at `at`), and its line.
    fn file(
        &mut self,
        at: usize,
        key: &str,
        p: Option<Spanned<PathBuf>>,
    ) -> Option<(PathBuf, usize)> {
        match p {
            Some(p) if !p.get_ref().as_os_str().is_empty() => {
                let line = line_of(self.values.text, p.span().start);
                let p = p.into_inner();
                Some((
                    if p.is_absolute() {
                        p
                    } else {
                        self.base.join(p)
                    },
                    line,
                ))
            }
            p => {
                let at = p.map_or(at, |p| p.span().start);
                self.err(
                    at,
                    format!(
                        "tls.{key} is missing: DoT and DoH need a PEM certificate chain and key"
                    ),
                );
                None
            }
        }
    }
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

    /// At the value itself: an address in a list over several lines, a file
    /// named with a dotted key outside its section.
    #[test]
    fn errors_at_the_value_wherever_it_is_written() {
        let text = "tls.cert_file = \"\"\ntls.key_file = \"k.pem\"\n[dot]\nlisten = [\n  \"127.0.0.1:853\",\n  \"nope\",\n]\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![6, 1], "{errs:?}");
        assert!(errs[1].message.contains("tls.cert_file"), "{}", errs[1]);
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
