//! `[fleet]` in the server config: the etcd cluster that instances share drains,
//! weights and probe votes through. Parsed raw here, checked into [`FleetConfig`];
//! the `fleet` module, the only one that names the etcd client, runs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::values::{parse_duration, parse_quorum, QUORUM_FORMS};
use super::ConfigError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FleetRaw {
    endpoints: Option<Vec<String>>,
    prefix: Option<String>,
    instance: Option<String>,
    site: Option<String>,
    quorum: Option<toml::Value>,
    lease_ttl: Option<String>,
    fallback: Option<String>,
    timeout: Option<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    key_secret_file: Option<PathBuf>,
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
    /// Checks the section; relative paths are relative to `base`, errors point
    /// into `text` of `path`.
    pub(super) fn check(
        self,
        text: &str,
        path: &Path,
        base: &Path,
        errors: &mut Vec<ConfigError>,
    ) -> FleetConfig {
        let line = |key: &str| find_fleet_key_line(text, key);
        let mut err = |key: &str, m: String| errors.push(ConfigError::new(path, line(key), m));
        let endpoints: Vec<String> = self
            .endpoints
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                if e.contains("://") {
                    e
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        if endpoints.is_empty() {
            err(
                "endpoints",
                "fleet.endpoints is missing or empty; list etcd client URLs like [\"http://10.0.0.1:2379\"]"
                    .to_string(),
            );
        }
        for e in &endpoints {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"));
            let ok = rest.is_some_and(|r| {
                r.rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
            });
            if !ok {
                err(
                    "endpoints",
                    format!("fleet.endpoints {e:?} is not http://HOST:PORT or https://HOST:PORT"),
                );
            }
        }
        let mut prefix = self.prefix.unwrap_or_else(|| "/signpost/".to_string());
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        if prefix.len() < 2 || prefix.contains("//") {
            err(
                "prefix",
                format!("fleet.prefix {prefix:?}: use a key prefix like \"/signpost/\" (not empty, no \"//\")"),
            );
        }
        let instance = self.instance.unwrap_or_default();
        if !instance_name_ok(&instance) {
            err(
                "instance",
                format!("fleet.instance {instance:?}: give each instance a unique name of 1 to {MAX_INSTANCE} letters, digits, '-', '_' or '.'"),
            );
        }
        let quorum = match self.quorum {
            None => DEFAULT_QUORUM,
            Some(v) => match parse_quorum(&v) {
                Some(q) => q,
                None => {
                    err("quorum", format!("fleet.quorum = {v}: {QUORUM_FORMS}"));
                    DEFAULT_QUORUM
                }
            },
        };
        let mut duration = |key: &str, v: Option<String>, default: Duration, min: Duration| {
            let Some(v) = v else { return default };
            match parse_duration(&v) {
                Ok(d) if d >= min => d,
                _ => {
                    err(
                        key,
                        format!(
                            "fleet.{key} = {v:?}: use a duration of at least {min:?}, like \"5s\""
                        ),
                    );
                    default
                }
            }
        };
        let lease_ttl = duration(
            "lease_ttl",
            self.lease_ttl,
            Duration::from_secs(5),
            Duration::from_secs(2),
        );
        let fallback = duration(
            "fallback",
            self.fallback,
            Duration::from_secs(30),
            Duration::from_secs(1),
        );
        let timeout = duration(
            "timeout",
            self.timeout,
            Duration::from_secs(2),
            Duration::from_millis(100),
        );
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        if self.user.is_some() != self.password_file.is_some() {
            err(
                "user",
                "fleet.user and fleet.password_file go together (etcd's own users)".to_string(),
            );
        }
        let tls = if self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some() {
            if self.cert_file.is_some() != self.key_file.is_some() {
                err(
                    "cert_file",
                    "fleet.cert_file and fleet.key_file go together (a client certificate and its key)"
                        .to_string(),
                );
            }
            Some(FleetTls {
                ca_file: self.ca_file.map(abs),
                cert_file: self.cert_file.map(abs),
                key_file: self.key_file.map(abs),
            })
        } else {
            None
        };
        let password_file = self.password_file.map(abs);
        let secrets = [
            ("password_file", password_file.as_deref()),
            ("key_file", tls.as_ref().and_then(|t| t.key_file.as_deref())),
        ];
        for (key, file) in secrets {
            if let Some(mode) = file.and_then(open_to_others) {
                let shown = file.map(|f| f.display().to_string()).unwrap_or_default();
                err(
                    key,
                    format!(
                        "fleet.{key} {shown:?} has mode {mode:o}: group or others may read it; \
                         make it private to signpost's user (chmod 600 {shown:?})"
                    ),
                );
            }
        }
        let key_secret_at = (path.to_path_buf(), line("key_secret_file"));
        FleetConfig {
            endpoints,
            prefix,
            instance,
            site: self.site,
            quorum,
            lease_ttl,
            fallback,
            timeout,
            user: self.user,
            password_file,
            tls,
            key_secret_file: self.key_secret_file.map(abs),
            key_secret_at,
        }
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

/// The line of `key = ` inside `[fleet]`, so that `timeout` or `endpoints`
/// elsewhere in the file does not take the message.
fn find_fleet_key_line(text: &str, key: &str) -> usize {
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            inside = t.trim_end() == "[fleet]";
            continue;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if inside && rest.trim_start().starts_with('=') {
                return i + 1;
            }
        }
    }
    text.lines()
        .position(|l| l.trim() == "[fleet]")
        .map_or(0, |i| i + 1)
}

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
