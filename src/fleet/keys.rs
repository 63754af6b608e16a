//! One DNSSEC key set per fleet. Before a snapshot's zones are signed (at
//! start, in `signpost check`, at every reload), each signed zone's key files
//! in `key_dir` are made the fleet's, which etcd holds sealed with the fleet
//! secret ([`crate::dnssec::sealed`]) at `<prefix>dnssec/<zone>/keys`:
//!
//! ```text
//! the value there  opens         -> its files into key_dir (a different local set
//!                                   moved into key_dir/replaced-<unix time>/)
//!                  is absent     -> key_dir's keys (generated if none), sealed and
//!                                   put in one Txn "if the key's create_revision
//!                                   is 0"; lost to another instance: its value,
//!                                   as above
//!                  another secret-> error: this instance is misconfigured
//!                  is bad        -> error logged, nothing written; key_dir's keys
//!                                   if it had some, else the zone is an error
//! etcd unreachable                -> key_dir's keys with a warning, else an error
//! ```
//!
//! So an instance never signs with a set it made while another set may be
//! the fleet's: it generates only when etcd says there is none, and keeps
//! what it generated only when its transaction put it there first.
//!
//! The sync runs on a thread and a one-thread runtime of its own, each call to
//! etcd bounded by `[fleet] timeout`: its callers are plain threads (start,
//! check) or the reload's blocking task.

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::etcd::{self, Client, Created};
use super::{read, FleetError};
use crate::config::fleet::FleetConfig;
use crate::config::ConfigError;
use crate::dnssec::sealed::{self, FleetSecret, InstallError, Installed, KeyFiles, OpenError};
use crate::zone::{Name, SigningPolicy};

/// The key under which the fleet keeps `zone`'s sealed key set.
pub(crate) fn set_key(prefix: &str, zone: &Name) -> String {
    format!("{prefix}dnssec/{zone}/keys")
}

/// True for keys under the prefix that hold key sets: the store task leaves
/// them to this module.
pub(super) fn is_key_set(prefix: &str, key: &[u8]) -> bool {
    key.strip_prefix(prefix.as_bytes())
        .is_some_and(|rest| rest.starts_with(b"dnssec/"))
}

/// Reads the fleet secret. `Ok(None)`: none configured and none needed.
fn read_secret(cfg: &FleetConfig, needed: bool) -> Result<Option<FleetSecret>, ConfigError> {
    let (file, line) = (&cfg.key_secret_at.0, cfg.key_secret_at.1);
    let err = |m: String| ConfigError::new(file, line, m);
    let Some(path) = &cfg.key_secret_file else {
        if needed {
            return Err(err("a signed fleet needs fleet.key_secret_file so every instance serves one key set: a file of 32 random bytes as 64 hex digits (openssl rand -hex 32), mode 0600, the same on every instance".into()));
        }
        return Ok(None);
    };
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| err(format!("fleet.key_secret_file {shown}: {e}")))?;
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "fleet.key_secret_file {shown} has mode {mode:04o}: others may read it; make it readable by signpost's user alone (chmod 600)"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| err(format!("fleet.key_secret_file {shown}: {e}")))?;
    FleetSecret::from_hex(&text)
        .map(Some)
        .map_err(|m| err(format!("fleet.key_secret_file {shown}: {m}")))
}

fn options(cfg: &FleetConfig) -> Result<etcd::Options, FleetError> {
    let password =
        read(&cfg.password_file)?.map(|b| String::from_utf8_lossy(&b).trim_end().to_string());
    let tls = match &cfg.tls {
        None => None,
        Some(t) => Some(etcd::Tls {
            ca: read(&t.ca_file)?,
            identity: read(&t.cert_file)?.zip(read(&t.key_file)?),
        }),
    };
    Ok(etcd::Options {
        timeout: cfg.timeout,
        user: cfg.user.clone().zip(password),
        tls,
    })
}

async fn timed<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, etcd::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

/// Makes the key files of every zone in `zones` (origin, signing policy) the
/// fleet's. Returns warnings for the loader's list; an error for a zone that
/// must not be signed now. With no zone, only checks the secret if one is
/// configured.
pub fn sync(
    cfg: &FleetConfig,
    zones: &[(Name, SigningPolicy)],
    now: u64,
) -> Result<Vec<ConfigError>, Vec<ConfigError>> {
    let secret = read_secret(cfg, !zones.is_empty()).map_err(|e| vec![e])?;
    let (Some(secret), false) = (secret, zones.is_empty()) else {
        return Ok(Vec::new());
    };
    let started = Instant::now();
    let opts =
        options(cfg).map_err(|e| vec![ConfigError::new(&cfg.key_secret_at.0, 0, e.to_string())])?;
    let outcome = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("signpost-keys".into())
            .spawn_scoped(s, || run(cfg, &opts, &secret, zones, now))
            .map_err(|e| e.to_string())
            .and_then(|t| t.join().map_err(|_| "it panicked".to_string()))
    });
    let (warnings, errors) = outcome.unwrap_or_else(|e| {
        let m = format!("fleet: the DNSSEC key sync could not run: {e}");
        (
            Vec::new(),
            vec![ConfigError::new(&cfg.key_secret_at.0, 0, m)],
        )
    });
    info!(
        zones = zones.len(),
        ms = started.elapsed().as_millis() as u64,
        "fleet: DNSSEC key sets checked against etcd"
    );
    if errors.is_empty() {
        Ok(warnings)
    } else {
        Err(errors)
    }
}

type Outcome = (Vec<ConfigError>, Vec<ConfigError>);

fn run(
    cfg: &FleetConfig,
    opts: &etcd::Options,
    secret: &FleetSecret,
    zones: &[(Name, SigningPolicy)],
    now: u64,
) -> Outcome {
    let mut out: Outcome = (Vec::new(), Vec::new());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let m = format!("fleet: cannot start the DNSSEC key sync's runtime: {e}");
            out.1.push(ConfigError::new(&cfg.key_secret_at.0, 0, m));
            return out;
        }
    };
    rt.block_on(async {
        let mut client = timed(
            cfg.timeout,
            "connect",
            Client::connect(&cfg.endpoints, opts),
        )
        .await;
        for (origin, policy) in zones {
            let mut sync = ZoneSync {
                cfg,
                secret,
                origin,
                policy,
                now,
                warnings: &mut out.0,
            };
            if let Err(e) = sync.run(&mut client).await {
                out.1.push(e);
            }
        }
    });
    out
}

/// One zone's sync.
struct ZoneSync<'a> {
    cfg: &'a FleetConfig,
    secret: &'a FleetSecret,
    origin: &'a Name,
    policy: &'a SigningPolicy,
    now: u64,
    warnings: &'a mut Vec<ConfigError>,
}

impl ZoneSync<'_> {
    fn dir(&self) -> &Path {
        &self.policy.key_dir
    }

    fn err(&self, m: String) -> ConfigError {
        ConfigError::new(self.dir(), 0, m)
    }

    async fn run(&mut self, client: &mut Result<Client, String>) -> Result<(), ConfigError> {
        let key = set_key(&self.cfg.prefix, self.origin);
        let t = self.cfg.timeout;
        let local = KeyFiles::read(self.dir(), self.origin)
            .map_err(|e| ConfigError::new(&e.file, e.line, e.message))?;
        let found = match client {
            Ok(c) => timed(t, "read", c.get(key.clone())).await,
            Err(e) => Err(e.clone()),
        };
        let value = match found {
            Err(e) => {
                // The zones after this one do not wait for etcd again.
                *client = Err(e.clone());
                return self.unreachable(&local, &e);
            }
            Ok(Some(v)) => v,
            Ok(None) => {
                // None yet: ours (made now if key_dir has none), offered.
                crate::dnssec::origin_keys(self.origin, self.policy, self.now).map_err(|es| {
                    let e = es.into_iter().next();
                    e.map_or_else(
                        || self.err("cannot read or make the keys".into()),
                        |e| ConfigError::new(&e.file, e.line, e.message),
                    )
                })?;
                let mine = KeyFiles::read(self.dir(), self.origin)
                    .map_err(|e| ConfigError::new(&e.file, e.line, e.message))?;
                let sealed = sealed::seal(self.secret, &mine).map_err(|m| self.err(m))?;
                let Ok(c) = client else {
                    return self.unreachable(&local, "the connection is gone");
                };
                match timed(t, "publish", c.put_if_absent(key.clone(), sealed)).await {
                    Ok(Created::Yes) => {
                        info!(zone = %self.origin, key = %key, files = mine.len(), "fleet: published this instance's DNSSEC keys as the fleet's");
                        return Ok(());
                    }
                    // Another instance was first: its set is the fleet's.
                    Ok(Created::No(v)) => v,
                    Err(e) => {
                        *client = Err(e.clone());
                        return self.unreachable(&local, &e);
                    }
                }
            }
        };
        self.adopt(&key, &value, &local)
    }

    /// etcd cannot say which set is the fleet's: key_dir's as it was before
    /// this sync, if it had one; never one made here and not published.
    fn unreachable(&mut self, before: &KeyFiles, why: &str) -> Result<(), ConfigError> {
        if before.is_empty() {
            return Err(self.err(format!(
                "cannot reach etcd to learn the fleet's keys for {} ({why}) and key_dir has none; start again when etcd is up",
                self.origin
            )));
        }
        self.warnings.push(self.err(format!(
            "cannot reach etcd to learn the fleet's keys for {} ({why}); signing with the {} key files in key_dir",
            self.origin,
            before.len()
        )));
        Ok(())
    }

    /// Takes the fleet's value into key_dir, or refuses it changing nothing.
    fn adopt(&mut self, key: &str, value: &[u8], before: &KeyFiles) -> Result<(), ConfigError> {
        let why = match sealed::open(self.secret, self.origin, value) {
            Ok(set) => match sealed::install(self.dir(), &set, self.now) {
                Ok(Installed::Same) => return Ok(()),
                Ok(Installed::Added) => {
                    info!(zone = %self.origin, files = set.len(), "fleet: took the fleet's DNSSEC keys into key_dir");
                    return Ok(());
                }
                Ok(Installed::Replaced(aside)) => {
                    warn!(zone = %self.origin, aside = %aside.display(), "fleet: key_dir's DNSSEC keys differ from the fleet's: moved aside, signing with the fleet's");
                    return Ok(());
                }
                Err(InstallError::Io(e)) => {
                    return Err(ConfigError::new(&e.file, e.line, e.message))
                }
                Err(InstallError::Invalid(why)) => why,
            },
            Err(e @ OpenError::OtherSecret { .. }) => {
                return Err(ConfigError::new(
                    &self.cfg.key_secret_at.0,
                    self.cfg.key_secret_at.1,
                    format!("the fleet's keys for {} in etcd ({key}): {e}", self.origin),
                ))
            }
            Err(OpenError::Bad(why)) => why,
        };
        error!(zone = %self.origin, key = %key, "fleet: refused the DNSSEC key set in etcd: {why}");
        if before.is_empty() {
            return Err(self.err(format!(
                "the fleet's keys for {} in etcd ({key}) are refused ({why}) and key_dir has none; put a good set there or delete the key, then start again",
                self.origin
            )));
        }
        self.warnings.push(self.err(format!(
            "the fleet's keys for {} in etcd ({key}) are refused ({why}); signing with the {} key files in key_dir",
            self.origin,
            before.len()
        )));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sets_live_under_the_prefix() {
        let zone = Name::parse("example.com.", None).unwrap();
        let k = set_key("/signpost/", &zone);
        assert_eq!(k, "/signpost/dnssec/example.com./keys");
        assert!(is_key_set("/signpost/", k.as_bytes()));
        assert!(!is_key_set("/signpost/", b"/signpost/overrides/region:a"));
        assert!(!is_key_set("/other/", k.as_bytes()));
    }
}
