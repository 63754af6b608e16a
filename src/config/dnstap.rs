//! `[dnstap]` in the server config: where the dnstap collector listens (a Unix
//! socket or a TCP address), which queries go to it (every one, or one in
//! `sample`), how many messages may wait for it, and the identity and version
//! every message carries. Parsed raw here, checked into [`DnstapConfig`];
//! `server::dnstap` runs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{line_of, ConfigError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnstapRaw {
    socket: Option<toml::Spanned<PathBuf>>,
    address: Option<toml::Spanned<String>>,
    sample: Option<toml::Spanned<i64>>,
    queue: Option<toml::Spanned<i64>>,
    identity: Option<toml::Spanned<String>>,
    version: Option<toml::Spanned<String>>,
}

/// Where the collector listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collector {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl std::fmt::Display for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Collector::Unix(p) => write!(f, "unix:{}", p.display()),
            Collector::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// The checked `[dnstap]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnstapConfig {
    pub collector: Collector,
    /// One query in this many is sent (1: every query).
    pub sample: u32,
    /// Queries whose messages may wait for the collector; more are dropped (counted).
    pub queue: usize,
    /// The `identity` field of every message; empty: left out.
    pub identity: Vec<u8>,
    /// The `version` field of every message.
    pub version: Vec<u8>,
}

/// `queue` bounds: enough for a burst, and not so much that a stalled collector
/// holds more than a few tens of megabytes of messages.
pub(crate) const QUEUE_MAX: i64 = 1 << 20;
pub(crate) const QUEUE_DEFAULT: usize = 4096;

impl DnstapRaw {
    /// Checks the table; `table_at` is where `[dnstap]` starts, for the errors that
    /// belong to no one key. Every error is pushed with its line.
    pub(super) fn check(
        self,
        table_at: usize,
        text: &str,
        path: &Path,
        base: &Path,
        errors: &mut Vec<ConfigError>,
    ) -> Option<DnstapConfig> {
        let DnstapRaw {
            socket,
            address,
            sample,
            queue,
            identity,
            version,
        } = self;
        let before = errors.len();
        let mut err =
            |start: usize, m: String| errors.push(ConfigError::new(path, line_of(text, start), m));
        let collector = match (socket, address) {
            (Some(s), None) => {
                let p = s.into_inner();
                Some(Collector::Unix(if p.is_absolute() {
                    p
                } else {
                    base.join(p)
                }))
            }
            (None, Some(a)) => {
                let at = a.span().start;
                match a.get_ref().parse::<SocketAddr>() {
                    Ok(addr) => Some(Collector::Tcp(addr)),
                    Err(_) => {
                        err(
                            at,
                            format!(
                                "dnstap.address = {:?} is not ADDR:PORT (like \"127.0.0.1:6000\")",
                                a.get_ref()
                            ),
                        );
                        None
                    }
                }
            }
            (Some(s), Some(_)) => {
                err(
                    s.span().start,
                    "dnstap: give socket (a Unix socket path) or address (ADDR:PORT), not both"
                        .to_string(),
                );
                None
            }
            (None, None) => {
                err(table_at, "[dnstap] needs socket = \"/path/to/collector.sock\" or address = \"127.0.0.1:6000\": where the collector listens".to_string());
                None
            }
        };
        let sample = match sample {
            None => 1,
            Some(s) => match u32::try_from(*s.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    err(
                        s.span().start,
                        format!(
                            "dnstap.sample = {}: use 1 (every query) or N for one query in N",
                            s.get_ref()
                        ),
                    );
                    1
                }
            },
        };
        let queue = match queue {
            None => QUEUE_DEFAULT,
            Some(q) => match *q.get_ref() {
                n @ 1..=QUEUE_MAX => n as usize,
                n => {
                    err(q.span().start, format!("dnstap.queue = {n}: use from 1 to {QUEUE_MAX} queries (default {QUEUE_DEFAULT})"));
                    QUEUE_DEFAULT
                }
            },
        };
        let mut text_field = |v: Option<toml::Spanned<String>>, key: &str, default: String| {
            let v = match v {
                None => return default.into_bytes(),
                Some(v) => v,
            };
            if v.get_ref().len() > 255 {
                err(v.span().start, format!("dnstap.{key}: at most 255 bytes"));
            }
            v.into_inner().into_bytes()
        };
        let identity = text_field(identity, "identity", String::new());
        let version = text_field(
            version,
            "version",
            format!("signpost {}", env!("CARGO_PKG_VERSION")),
        );
        let collector = collector?;
        (errors.len() == before).then_some(DnstapConfig {
            collector,
            sample,
            queue,
            identity,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::server::ServerConfig;

    fn parse(text: &str) -> Result<Option<DnstapConfig>, Vec<String>> {
        ServerConfig::parse(text, Path::new("/etc/signpost/s.toml"))
            .map(|c| c.dnstap)
            .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn a_socket_or_an_address_with_defaults() {
        assert_eq!(parse("").unwrap(), None);
        let c = parse("[dnstap]\nsocket = \"tap.sock\"\n").unwrap().unwrap();
        assert_eq!(
            c.collector,
            Collector::Unix(PathBuf::from("/etc/signpost/tap.sock"))
        );
        assert_eq!((c.sample, c.queue), (1, QUEUE_DEFAULT));
        assert!(c.identity.is_empty());
        assert!(c.version.starts_with(b"signpost "));
        let t = "[dnstap]\naddress = \"127.0.0.1:6000\"\nsample = 100\nqueue = 16\nidentity = \"ns1\"\nversion = \"\"\n";
        let c = parse(t).unwrap().unwrap();
        assert_eq!(
            c.collector,
            Collector::Tcp("127.0.0.1:6000".parse().unwrap())
        );
        assert_eq!((c.sample, c.queue), (100, 16));
        assert_eq!((&c.identity[..], &c.version[..]), (&b"ns1"[..], &b""[..]));
    }

    #[test]
    fn each_bad_key_is_reported_with_its_line() {
        let errs = parse("listen = [\"127.0.0.1:53\"]\n[dnstap]\nidentity = \"x\"\n").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("s.toml:2") && errs[0].contains("needs socket"),
            "{errs:?}"
        );
        let t = "[dnstap]\naddress = \"localhost\"\nsample = 0\nqueue = 0\n";
        let errs = parse(t).unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].contains("s.toml:2") && errs[0].contains("ADDR:PORT"),
            "{errs:?}"
        );
        assert!(
            errs[1].contains("s.toml:3") && errs[1].contains("sample"),
            "{errs:?}"
        );
        assert!(
            errs[2].contains("s.toml:4") && errs[2].contains("queue"),
            "{errs:?}"
        );
        let errs = parse("[dnstap]\nsocket = \"a\"\naddress = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(errs[0].contains("not both"), "{errs:?}");
        assert!(parse("[dnstap]\nsocket = \"a\"\nrate = 1\n").is_err());
    }
}
