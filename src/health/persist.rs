//! Saved health: overrides and last known verdicts, kept across restarts so that a
//! drained region stays drained and a down target does not come back as up (or the
//! reverse) before its probes have run.
//!
//! The file is TOML, keyed by [`TargetKey::stable_key`](super::TargetKey::stable_key)
//! for targets and by the caller's own names for everything else:
//!
//! ```toml
//! version = 1
//!
//! [targets."http:GET:/healthz@192.0.2.10:80"]
//! up = false
//! override = "drain"
//!
//! [overrides]
//! "region:eu-west" = "drain"
//!
//! [dials]
//! "region:eu-west" = 30
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::state::{Health, Override};
use super::table::HealthTable;

/// The layout version this code writes and reads.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{}: version {found} is newer than this signpost reads (up to {STATE_VERSION})", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("health state: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl PersistError {
    /// True when the file does not exist: a first start, not a problem.
    pub fn is_not_found(&self) -> bool {
        matches!(self, PersistError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub version: u32,
    /// By target stable key.
    #[serde(default)]
    pub targets: BTreeMap<String, PersistedTarget>,
    /// Drains and forces of regions, endpoints or anything else, by the caller's names.
    #[serde(default)]
    pub overrides: BTreeMap<String, Override>,
    /// Operator weights by endpoint or region name (kept by the caller).
    #[serde(default)]
    pub weights: BTreeMap<String, u32>,
    /// Operator traffic dials in percent, by the same names (kept by the
    /// caller); values over 100 are refused when read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dials: BTreeMap<String, u8>,
}

impl Default for PersistedState {
    fn default() -> Self {
        PersistedState {
            version: STATE_VERSION,
            targets: BTreeMap::new(),
            overrides: BTreeMap::new(),
            weights: BTreeMap::new(),
            dials: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedTarget {
    /// Probed health when saved (overrides aside).
    pub up: bool,
    #[serde(
        default,
        rename = "override",
        skip_serializing_if = "Override::is_none"
    )]
    pub operator_override: Override,
}

impl PersistedState {
    /// The table's current state.
    pub fn from_table(table: &HealthTable) -> Self {
        let targets = table
            .slots()
            .iter()
            .map(|s| {
                let id = table.id(&s.key);
                let t = PersistedTarget {
                    up: s.probed().is_up(),
                    operator_override: id.and_then(|id| table.override_of(id)).unwrap_or_default(),
                };
                (s.stable.clone(), t)
            })
            .collect();
        PersistedState {
            version: STATE_VERSION,
            targets,
            overrides: table.named_overrides(),
            weights: BTreeMap::new(),
            dials: BTreeMap::new(),
        }
    }

    /// Writes saved verdicts and overrides into `table`: call it before the
    /// scheduler starts, or at any time (probes continue from what it sets).
    /// Targets the table no longer has are ignored. Returns how many table targets
    /// got saved state.
    pub fn apply_to(&self, table: &HealthTable) -> usize {
        let mut applied = 0;
        for (id, key) in table.targets() {
            let Some(saved) = self.targets.get(&key.stable_key()) else {
                continue;
            };
            table.set_probed(id, Health::from_up(saved.up));
            table.set_override(id, saved.operator_override);
            applied += 1;
        }
        for (name, o) in &self.overrides {
            table.set_named_override_by(name, *o, "state file");
        }
        applied
    }
}

/// Saves the table's overrides and verdicts to `path`, atomically.
pub fn save(path: &Path, table: &HealthTable) -> Result<(), PersistError> {
    save_state(path, &PersistedState::from_table(table))
}

/// Writes `state` to `path` through a temporary file in the same directory and a
/// rename, so a crash leaves the old file or the new one, never half of one.
pub fn save_state(path: &Path, state: &PersistedState) -> Result<(), PersistError> {
    let text = toml::to_string(state)?;
    // One save at a time (the admin endpoint, the health loop and shutdown may
    // all save): the last one to start is the last one on disk.
    static SAVING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = SAVING.lock().unwrap_or_else(|p| p.into_inner());
    // And a temporary name of its own, should another process share the folder.
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let io_err = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let written = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        // Data on disk before the rename makes it visible.
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    // Make the rename itself durable. Best effort: some filesystems refuse to sync
    // a directory, and the file is complete either way.
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads saved state. A missing file is an error for which
/// [`PersistError::is_not_found`] is true.
pub fn load(path: &Path) -> Result<PersistedState, PersistError> {
    let text = fs::read_to_string(path).map_err(|source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let state: PersistedState = toml::from_str(&text).map_err(|source| PersistError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    if state.version > STATE_VERSION {
        return Err(PersistError::Version {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_at_once_each_succeed_and_leave_one_whole_file() {
        let dir = std::env::temp_dir().join(format!("signpost-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.toml");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut s = PersistedState::default();
                    s.targets.insert(
                        format!("tcp:192.0.2.{t}:80"),
                        PersistedTarget {
                            up: true,
                            operator_override: Override::None,
                        },
                    );
                    (0..40)
                        .map(|_| save_state(&path, &s))
                        .filter(Result::is_err)
                        .count()
                })
            })
            .collect();
        let failed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(failed, 0);
        assert_eq!(load(&path).unwrap().targets.len(), 1);
        // No temporary file left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn toml_form_is_readable() {
        let mut s = PersistedState::default();
        s.targets.insert(
            "http:GET:/healthz@192.0.2.10:80".into(),
            PersistedTarget {
                up: false,
                operator_override: Override::Drain,
            },
        );
        s.targets.insert(
            "tcp@192.0.2.11:22".into(),
            PersistedTarget {
                up: true,
                operator_override: Override::None,
            },
        );
        s.overrides
            .insert("region:eu-west".into(), Override::ForceDown);
        let text = toml::to_string(&s).unwrap();
        assert!(
            text.contains("[targets.\"http:GET:/healthz@192.0.2.10:80\"]"),
            "{text}"
        );
        assert!(text.contains("override = \"drain\""), "{text}");
        assert!(
            text.contains("\"region:eu-west\" = \"force-down\""),
            "{text}"
        );
        let back: PersistedState = toml::from_str(&text).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_fields_and_values_are_refused() {
        assert!(toml::from_str::<PersistedState>("version = 1\nextra = 2").is_err());
        assert!(toml::from_str::<PersistedState>(
            "version = 1\n[overrides]\n\"region:x\" = \"sideways\""
        )
        .is_err());
    }
}
