//! `[fleet]` in the server config: the etcd cluster that instances share drains,
//! weights and probe votes through. Parsed raw here, checked into [`FleetConfig`];
//! the `fleet` module, the only one that names the etcd client, runs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::values::{self, parse_quorum, QUORUM_FORMS};
use super::{line_of, ConfigError};

/// `[fleet]` as written: every value with its place, for its error's line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FleetRaw {
    endpoints: Option<Vec<Spanned<String>>>,
    prefix: Option<Spanned<String>>,
    instance: Option<Spanned<String>>,
    site: Option<String>,
    quorum: Option<Spanned<toml::Value>>,
    lease_ttl: Option<Spanned<String>>,
    fallback: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    ca_file: Option<Spanned<PathBuf>>,
    cert_file: Option<Spanned<PathBuf>>,
    key_file: Option<Spanned<PathBuf>>,
    key_secret_file: Option<Spanned<PathBuf>>,
}

pub use crate::health::Quorum;

/// TLS towards etcd: the CA that signs its certificates, and our client
/// certificate when etcd asks for one (`--client-cert-auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// The checked `[fleet]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// etcd client URLs, `http://HOST:PORT` or `https://HOST:PORT`.
    pub endpoints: Vec<String>,
    /// Every key signpost reads or writes starts with this; ends with `/`.
    pub prefix: String,
    /// This instance's name in the store: its votes and its entry in
    /// `instances/`. Unique per instance.
    pub instance: String,
    /// Where it runs, shown beside its votes.
    pub site: Option<String>,
    pub quorum: Quorum,
    /// The lease this instance's votes live under: a dead instance's votes are
    /// gone this long after its last keep-alive.
    pub lease_ttl: Duration,
    /// After this long without etcd, an instance decides health from its own
    /// probes alone (until then it keeps the last view it had).
    pub fallback: Duration,
    /// Each request to etcd gives up after this long.
    pub timeout: Duration,
    /// etcd user (its own auth); the password is read from `password_file`.
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<FleetTls>,
    /// The fleet secret: 32 bytes as 64 hex digits, readable by its owner
    /// alone, the same file on every instance. The DNSSEC key sets the fleet
    /// shares through etcd are sealed with keys derived from it
    /// (`fleet::keys`); a signed fleet needs it. Read by the loader, so that
    /// `signpost check`, start and every reload read it alike.
    pub key_secret_file: Option<PathBuf>,
    /// Where a problem with the secret is reported: the config file and the
    /// line of `key_secret_file`, or of `[fleet]` when it is missing.
    pub key_secret_at: (PathBuf, usize),
}

/// Longest instance name: it is part of every vote's key.
const MAX_INSTANCE: usize = 64;

/// An instance name: 1 to 64 letters, digits, '-', '_' or '.', so that it is
/// one segment of a key (`votes/<instance>/...`).
pub(crate) fn instance_name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_INSTANCE
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

impl FleetRaw {
    /// Checks the section, which starts at byte `at` of `text` (the file `path`);
    /// relative paths are relative to `base`. Each error is at its value's line;
    /// a missing key's at the section's.
    pub(super) fn check(
        self,
        at: usize,
        text: &str,
        path: &Path,
        base: &Path,
        errors: &mut Vec<ConfigError>,
    ) -> FleetConfig {
        // Every key, so that a new one cannot be dropped silently.
        let FleetRaw {
            endpoints,
            prefix,
            instance,
            site,
            quorum,
            lease_ttl,
            fallback,
            timeout,
            user,
            password_file,
            ca_file,
            cert_file,
            key_file,
            key_secret_file,
        } = self;
        let mut cx = Cx {
            values: values::Cx {
                table: "fleet",
                text,
                path,
                errors,
            },
            at,
            base,
        };
        let endpoints = cx.endpoints(endpoints);
        let prefix = cx.prefix(prefix);
        let instance = cx.instance(instance);
        let quorum = cx.quorum(quorum);
        let secs = Duration::from_secs;
        let v = &mut cx.values;
        let lease_ttl = v.duration_at_least(lease_ttl, "lease_ttl", secs(5), secs(2));
        let fallback = v.duration_at_least(fallback, "fallback", secs(30), secs(1));
        let timeout = v.duration_at_least(timeout, "timeout", secs(2), Duration::from_millis(100));
        if user.is_some() != password_file.is_some() {
            let place = user
                .as_ref()
                .map(start)
                .or(password_file.as_ref().map(start));
            cx.err(
                place,
                "fleet.user and fleet.password_file go together (etcd's own users)".to_string(),
            );
        }
        let password_file = password_file.map(|p| cx.secret("password_file", p));
        let tls = cx.tls(ca_file, cert_file, key_file);
        let key_secret_at = (
            path.to_path_buf(),
            line_of(text, key_secret_file.as_ref().map_or(at, start)),
        );
        FleetConfig {
            endpoints,
            prefix,
            instance,
            site,
            quorum,
            lease_ttl,
            fallback,
            timeout,
            user: user.map(Spanned::into_inner),
            password_file,
            tls,
            key_secret_file: key_secret_file.map(|p| cx.abs(p.into_inner())),
            key_secret_at,
        }
    }
}

/// Where `[fleet]` starts and where relative paths start from, beside the
/// value checks every table shares.
struct Cx<'a> {
    values: values::Cx<'a>,
    at: usize,
    base: &'a Path,
}

/// Where a value starts in the text.
fn start<T>(v: &Spanned<T>) -> usize {
    v.span().start
}

impl Cx<'_> {
    /// An error at byte `place`, or at the section without one.
    fn err(&mut self, place: Option<usize>, m: String) {
        self.values.err(place.unwrap_or(self.at), m);
    }

    fn abs(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// etcd client URLs; `HOST:PORT` alone is taken as `http://HOST:PORT`.
    fn endpoints(&mut self, raw: Option<Vec<Spanned<String>>>) -> Vec<String> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.err(
                None,
                "fleet.endpoints is missing or empty; list etcd client URLs like [\"http://10.0.0.1:2379\"]"
                    .to_string(),
            );
        }
        let mut endpoints = Vec::with_capacity(raw.len());
        for e in raw {
            let place = Some(start(&e));
            let e = e.into_inner();
            let e = if e.contains("://") {
                e
            } else {
                format!("http://{e}")
            };
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                r.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            });
            if !ok {
                self.err(
                    place,
                    format!("fleet.endpoints {e:?} is not http://HOST:PORT or https://HOST:PORT"),
                );
            }
            endpoints.push(e);
        }
        endpoints
    }

    fn prefix(&mut self, raw: Option<Spanned<String>>) -> String {
        let place = raw.as_ref().map(start);
        let mut prefix = raw.map_or_else(|| "/signpost/".to_string(), Spanned::into_inner);
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.len() < 2 || prefix.contains("//") {
            self.err(
                place,
                format!("fleet.prefix {prefix:?}: use a key prefix like \"/signpost/\" (not empty, no \"//\")"),
            );
        }
        prefix
    }

    fn instance(&mut self, raw: Option<Spanned<String>>) -> String {
        let place = raw.as_ref().map(start);
        let instance = raw.map(Spanned::into_inner).unwrap_or_default();
        if !instance_name_ok(&instance) {
            self.err(
                place,
                format!("fleet.instance {instance:?}: give each instance a unique name of 1 to {MAX_INSTANCE} letters, digits, '-', '_' or '.'"),
            );
        }
        instance
    }

    fn quorum(&mut self, raw: Option<Spanned<toml::Value>>) -> Quorum {
        let Some(v) = raw else {
            return DEFAULT_QUORUM;
        };
        parse_quorum(v.get_ref()).unwrap_or_else(|| {
            let m = format!("fleet.quorum = {}: {QUORUM_FORMS}", v.get_ref());
            self.err(Some(start(&v)), m);
            DEFAULT_QUORUM
        })
    }

    /// TLS towards etcd, when any of its files is named.
    fn tls(
        &mut self,
        ca_file: Option<Spanned<PathBuf>>,
        cert_file: Option<Spanned<PathBuf>>,
        key_file: Option<Spanned<PathBuf>>,
    ) -> Option<FleetTls> {
        if ca_file.is_none() && cert_file.is_none() && key_file.is_none() {
            return None;
        }
        if cert_file.is_some() != key_file.is_some() {
            let place = cert_file.as_ref().or(key_file.as_ref()).map(start);
            self.err(
                place,
                "fleet.cert_file and fleet.key_file go together (a client certificate and its key)"
                    .to_string(),
            );
        }
        Some(FleetTls {
            ca_file: ca_file.map(|p| self.abs(p.into_inner())),
            cert_file: cert_file.map(|p| self.abs(p.into_inner())),
            key_file: key_file.map(|p| self.secret("key_file", p)),
        })
    }

    /// A secret's file, refused when group or others may read it.
    fn secret(&mut self, key: &str, raw: Spanned<PathBuf>) -> PathBuf {
        let place = Some(start(&raw));
        let file = self.abs(raw.into_inner());
        if let Some(mode) = open_to_others(&file) {
            let shown = file.display().to_string();
            self.err(
                place,
                format!(
                    "fleet.{key} {shown:?} has mode {mode:o}: group or others may read it; \
                     make it private to signpost's user (chmod 600 {shown:?})"
                ),
            );
        }
        file
    }
}

/// A secret file's permission bits when group or others have any access to
/// it (a file that cannot be read yet is left to `serve`, which reads it).
#[cfg(unix)]
fn open_to_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn open_to_others(_: &Path) -> Option<u32> {
    None
}

/// Without `quorum`: half of the reporting instances.
pub(crate) const DEFAULT_QUORUM: Quorum = Quorum::Permille(500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerConfig;

    #[test]
    fn quorum_counts_and_shares() {
        let two = Quorum::Count(2);
        assert!(!two.is_down(1, 3));
        assert!(two.is_down(2, 3));
        assert!(
            two.is_down(1, 1),
            "fewer reporting than the count: all of them"
        );
        assert!(!two.is_down(0, 0));
        let half = Quorum::Permille(500);
        assert!(!half.is_down(1, 3));
        assert!(half.is_down(2, 3));
        assert!(half.is_down(1, 2));
        assert!(Quorum::Permille(660).is_down(2, 3));
        assert!(!Quorum::Permille(1000).is_down(2, 3));
        let q = |s: &str| {
            parse_quorum(&toml::from_str::<toml::Table>(&format!("q = {s}")).unwrap()["q"])
        };
        assert_eq!(q("\"66.6%\""), Some(Quorum::Permille(666)));
        assert_eq!(q("0.5"), Some(Quorum::Permille(500)));
        assert_eq!(q("3"), Some(Quorum::Count(3)));
        assert_eq!(q("0"), None);
        assert_eq!(q("1.5"), None);
    }

    #[test]
    fn fleet_section_parses_with_defaults() {
        let c = ServerConfig::parse(
            "[fleet]\nendpoints = [\"127.0.0.1:2379\"]\ninstance = \"fra-1\"\nquorum = 2\n",
            Path::new("s.toml"),
        )
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(f.endpoints, vec!["http://127.0.0.1:2379".to_string()]);
        assert_eq!(f.prefix, "/signpost/");
        assert_eq!(f.quorum, Quorum::Count(2));
        assert_eq!(f.lease_ttl, Duration::from_secs(5));
        assert_eq!(f.key_secret_file, None);
        assert_eq!(f.key_secret_at, (PathBuf::from("s.toml"), 1));
        let c = ServerConfig::parse(
            "[fleet]\nendpoints = [\"127.0.0.1:2379\"]\ninstance = \"fra-1\"\nkey_secret_file = \"fleet.secret\"\n",
            Path::new("/etc/signpost/s.toml"),
        )
        .unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(
            f.key_secret_file,
            Some(PathBuf::from("/etc/signpost/fleet.secret"))
        );
        assert_eq!(f.key_secret_at.1, 4);
        assert!(ServerConfig::parse("", Path::new("s.toml"))
            .unwrap()
            .fleet
            .is_none());
    }

    #[test]
    fn fleet_errors_name_their_line() {
        let text = "[tcp]\nidle_timeout = \"5s\"\n[fleet]\nendpoints = [\"ftp://x\"]\ninstance = \"a/b\"\nquorum = \"150%\"\nfallback = \"soon\"\nuser = \"u\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8], "{errs:?}");
        assert!(errs[0].message.contains("ftp://x"), "{}", errs[0]);
        let errs =
            ServerConfig::parse("[fleet]\nendpints = []\n", Path::new("s.toml")).unwrap_err();
        assert_eq!(errs[0].line, 2);
    }

    /// Each value's own line, wherever the value is written: an endpoint in a list
    /// over several lines, a key written dotted outside the section, a missing key
    /// at the section's line.
    #[test]
    fn fleet_errors_are_at_their_value_not_their_key() {
        let text = "[fleet]\nendpoints = [\n  \"http://127.0.0.1:2379\",\n  \"ftp://x\",\n]\ninstance = \"a\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4], "{errs:?}");
        let text = "[tcp]\nidle_timeout = \"5s\"\n\n[fleet]\ninstance = \"a\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4], "{errs:?}");
        let missing = &errs[0].message;
        assert!(missing.contains("fleet.endpoints is missing"), "{missing}");
        let text = "fleet.timeout = \"1ms\"\nfleet.instance = \"a\"\nfleet.endpoints = [\"http://127.0.0.1:2379\"]\n[tcp]\nidle_timeout = \"5s\"\n";
        let errs = ServerConfig::parse(text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1], "{errs:?}");
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_open_to_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("signpost-fleet-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (password, key) = (dir.join("etcd-password"), dir.join("client-key.pem"));
        let set = |p: &Path, mode: u32| {
            std::fs::write(p, "s3cret\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let text = format!(
            "[fleet]\nendpoints = [\"https://127.0.0.1:2379\"]\ninstance = \"a\"\nuser = \"u\"\npassword_file = {password:?}\ncert_file = \"c.pem\"\nkey_file = {key:?}\n"
        );
        set(&password, 0o644);
        set(&key, 0o640);
        let errs = ServerConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![5, 7], "{errs:?}");
        assert!(errs[0].message.contains("mode 644"), "{}", errs[0]);
        assert!(errs[1].message.contains("chmod 600"), "{}", errs[1]);
        set(&password, 0o600);
        set(&key, 0o400);
        let parsed = ServerConfig::parse(&text, Path::new("s.toml"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(parsed.is_ok(), "{parsed:?}");
    }
}
