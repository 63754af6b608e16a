//! A zone's key files sealed for a fleet's shared store, so that every instance
//! signs with one key set while the store never holds a private key in clear.
//!
//! The sealed value, JSON of at most [`MAX_SEALED`] bytes:
//!
//! ```text
//! {"format": "signpost-dnssec-keys/1", "secret_id": B64, "nonce": B64, "sealed": B64}
//! ```
//!
//! `sealed` is AES-256-GCM over `{"zone": ZONE, "files": {NAME: TEXT, ...}}`
//! (the zone's `K<zone>+<alg>+<tag>.key` and `.private` files), under a key
//! derived with HKDF-SHA256 from the fleet secret with the zone's name as info,
//! with a random 96-bit nonce and the format and zone as additional data: a
//! value moved to another zone's key, or changed in any byte, does not open.
//! `secret_id` is another HKDF output of the secret, so that "sealed with
//! another secret" is told apart from "corrupt" without revealing the secret.
//!
//! Invariants: nothing is written to `key_dir` before a value has opened, its
//! file names all are one zone's key file pairs, and the keys have loaded from
//! a staging folder beside `key_dir` with a KSK or CSK among them; key files
//! replaced are moved aside into `key_dir/replaced-<unix time>/`, never deleted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{self, HKDF_SHA256};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};

use super::keys::{self, KeyError};
use crate::zone::Name;

/// The largest sealed value taken from or given to the store.
pub(crate) const MAX_SEALED: usize = 64 * 1024;

/// Key files in one value, at most: a KSK and a ZSK, each with a successor
/// and a predecessor, fit many times over.
const MAX_FILES: usize = 32;

const FORMAT: &str = "signpost-dnssec-keys/1";

/// HKDF's salt: this use of the secret, and no other.
const SALT: &[u8] = b"signpost fleet dnssec key sets";

/// The fleet secret: 32 bytes every instance shares. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetSecret([u8; 32]);

impl fmt::Debug for FleetSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FleetSecret(id {})", self.id())
    }
}

/// An HKDF output length, for ring.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl FleetSecret {
    /// Reads 64 hex digits (surrounding white space aside). The error says
    /// what is wrong without quoting the text.
    pub(crate) fn from_hex(text: &str) -> Result<FleetSecret, String> {
        let t = text.trim();
        let bytes = crate::zone::rdata::decode_hex(t)
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!(
                    "it holds {} characters; it needs 32 bytes as 64 hex digits (for one: openssl rand -hex 32)",
                    t.chars().count()
                )
            })?;
        let mut s = [0u8; 32];
        s.copy_from_slice(&bytes);
        Ok(FleetSecret(s))
    }

    /// A name of the secret that does not reveal it: 8 bytes of HKDF, base64.
    pub fn id(&self) -> String {
        let mut id = [0u8; 8];
        let prk = hkdf::Salt::new(HKDF_SHA256, SALT).extract(&self.0);
        // Only a length over 255 blocks fails; 8 bytes cannot.
        if let Ok(okm) = prk.expand(&[b"secret id"], Len(id.len())) {
            let _ = okm.fill(&mut id);
        }
        b64().encode(id)
    }

    /// The AEAD key of `zone`'s key set.
    fn zone_key(&self, zone: &Name) -> Result<LessSafeKey, ring::error::Unspecified> {
        let prk = hkdf::Salt::new(HKDF_SHA256, SALT).extract(&self.0);
        let info = zone.to_string();
        let parts = [&b"zone "[..], info.as_bytes()];
        let okm = prk.expand(&parts, &AES_256_GCM)?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// A zone's key files, by file name. Its `Debug` shows the names alone.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub zone: Name,
    files: BTreeMap<String, String>,
}

impl fmt::Debug for KeyFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFiles")
            .field("zone", &self.zone.to_string())
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `K<zone>+<alg>+<tag>.key` or `.private`, with `zone` as the key files of
/// `zone` are named (case aside, as [`keys::load_dir`] reads them).
fn is_key_file_of(name: &str, zone: &Name) -> bool {
    let lower = name.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix(&format!("k{zone}+")) else {
        return false;
    };
    let Some(stem) = rest
        .strip_suffix(".key")
        .or_else(|| rest.strip_suffix(".private"))
    else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    matches!(stem.split_once('+'), Some((alg, tag)) if digits(alg, 3) && digits(tag, 5))
}

impl KeyFiles {
    /// The key files of `zone` in `dir` (none when `dir` does not exist).
    pub fn read(dir: &Path, zone: &Name) -> Result<KeyFiles, KeyError> {
        let mut files = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyFiles {
                    zone: zone.clone(),
                    files,
                })
            }
            Err(e) => return Err(key_error(dir, format!("cannot read key_dir: {e}"))),
        };
        for e in entries.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !is_key_file_of(&name, zone) || !e.path().is_file() {
                continue;
            }
            let text = std::fs::read_to_string(e.path())
                .map_err(|err| key_error(&e.path(), format!("cannot read: {err}")))?;
            files.insert(name, text);
        }
        Ok(KeyFiles {
            zone: zone.clone(),
            files,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }
}

fn key_error(path: &Path, message: String) -> KeyError {
    KeyError {
        file: path.to_path_buf(),
        line: 0,
        message,
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    secret_id: String,
    nonce: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Plain {
    zone: String,
    files: BTreeMap<String, String>,
}

fn aad(zone: &Name) -> Vec<u8> {
    format!("{FORMAT} {zone}").into_bytes()
}

/// Seals `set` for the store. Fails only when the value would be over
/// [`MAX_SEALED`] or the system's random source fails.
pub(crate) fn seal(secret: &FleetSecret, set: &KeyFiles) -> Result<Vec<u8>, String> {
    let plain = serde_json::to_vec(&Plain {
        zone: set.zone.to_string(),
        files: set.files.clone(),
    })
    .map_err(|e| format!("cannot encode the key set: {e}"))?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "the system's random source failed".to_string())?;
    let key = secret
        .zone_key(&set.zone)
        .map_err(|_| "cannot derive the zone's sealing key".to_string())?;
    let mut sealed = plain;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(&set.zone)),
        &mut sealed,
    )
    .map_err(|_| "cannot seal the key set".to_string())?;
    let value = serde_json::to_vec(&Envelope {
        format: FORMAT.to_string(),
        secret_id: secret.id(),
        nonce: b64().encode(nonce),
        sealed: b64().encode(&sealed),
    })
    .map_err(|e| format!("cannot encode the key set: {e}"))?;
    if value.len() > MAX_SEALED {
        return Err(format!(
            "the key files of {} sealed take {} bytes, over the {MAX_SEALED} the fleet takes",
            set.zone,
            value.len()
        ));
    }
    Ok(value)
}

/// Why a value from the store was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("it was sealed with another fleet secret (id {theirs}; this instance's fleet.key_secret_file has id {ours}): every instance needs the same secret file")]
    OtherSecret { theirs: String, ours: String },
    #[error("{0}")]
    Bad(String),
}

/// Opens a value from the store: `zone`'s key files, checked to be nothing
/// but that zone's key file pairs. Nothing is written.
pub fn open(secret: &FleetSecret, zone: &Name, value: &[u8]) -> Result<KeyFiles, OpenError> {
    let bad = |m: &str| OpenError::Bad(m.to_string());
    if value.len() > MAX_SEALED {
        return Err(OpenError::Bad(format!(
            "it is {} bytes, over the {MAX_SEALED} a key set may take",
            value.len()
        )));
    }
    let env: Envelope = serde_json::from_slice(value)
        .map_err(|e| OpenError::Bad(format!("not a sealed key set: {e}")))?;
    if env.format != FORMAT {
        return Err(OpenError::Bad(format!(
            "format {:?}; this signpost reads {FORMAT:?}",
            env.format
        )));
    }
    let ours = secret.id();
    if env.secret_id != ours {
        return Err(OpenError::OtherSecret {
            theirs: env.secret_id,
            ours,
        });
    }
    let nonce = b64()
        .decode(env.nonce.as_bytes())
        .ok()
        .and_then(|n| <[u8; NONCE_LEN]>::try_from(n).ok())
        .ok_or_else(|| bad("its nonce is not 12 bytes in base64"))?;
    let mut sealed = b64()
        .decode(env.sealed.as_bytes())
        .map_err(|_| bad("its sealed part is not base64"))?;
    let key = secret
        .zone_key(zone)
        .map_err(|_| bad("cannot derive the zone's sealing key"))?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(zone)),
            &mut sealed,
        )
        .map_err(|_| {
            bad("it does not open with the fleet secret (changed, truncated, or another zone's)")
        })?;
    let plain: Plain = serde_json::from_slice(plain)
        .map_err(|e| OpenError::Bad(format!("its content is not a key set: {e}")))?;
    if plain.zone != zone.to_string() {
        return Err(OpenError::Bad(format!(
            "it holds the keys of {}, not of {zone}",
            plain.zone
        )));
    }
    if plain.files.is_empty() || plain.files.len() > MAX_FILES {
        return Err(OpenError::Bad(format!(
            "it holds {} files; a key set is 2 to {MAX_FILES}",
            plain.files.len()
        )));
    }
    for name in plain.files.keys() {
        if !is_key_file_of(name, zone) {
            return Err(OpenError::Bad(format!(
                "{name:?} is not a key file name of {zone} (K{zone}+ALG+TAG.key or .private)"
            )));
        }
        let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
        let pair_of = |ext: &str| plain.files.contains_key(&format!("{stem}.{ext}"));
        if !pair_of("key") || !pair_of("private") {
            return Err(OpenError::Bad(format!(
                "{name:?} comes without its .key or .private"
            )));
        }
    }
    Ok(KeyFiles {
        zone: zone.clone(),
        files: plain.files,
    })
}

/// What [`install`] did to `key_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// `key_dir` held these very files already.
    Same,
    /// `key_dir` had no key of the zone; it has the set now.
    Added,
    /// `key_dir` had other key files of the zone: moved into this folder.
    Replaced(PathBuf),
}

/// Why [`install`] did not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    /// The set itself is unusable (its keys do not load, or none signs the
    /// DNSKEY RRset): as bad as a value that does not open.
    #[error("{0}")]
    Invalid(String),
    /// `key_dir` could not be written.
    #[error("{0}")]
    Io(KeyError),
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), KeyError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| key_error(path, format!("cannot create key file: {e}")))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| key_error(path, format!("cannot write key file: {e}")))
}

fn rename(from: &Path, to: &Path) -> Result<(), KeyError> {
    std::fs::rename(from, to)
        .map_err(|e| key_error(from, format!("cannot move to {}: {e}", to.display())))
}

/// A folder `dir/replaced-<now>` that does not exist yet (a suffix when one
/// does), created 0700.
fn aside_dir(dir: &Path, now: u64) -> Result<PathBuf, KeyError> {
    use std::os::unix::fs::DirBuilderExt as _;
    for n in 1..100u32 {
        let p = match n {
            1 => dir.join(format!("replaced-{now}")),
            n => dir.join(format!("replaced-{now}-{n}")),
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(key_error(&p, format!("cannot create: {e}"))),
        }
    }
    Err(key_error(
        dir,
        "too many replaced-* folders this second".into(),
    ))
}

/// Makes `set` the key files of its zone in `dir`: loaded first from a
/// staging folder in `dir` (each key must load, one must be a KSK or CSK);
/// then the zone's other key files, if any, are moved into
/// `dir/replaced-<now>/` and the set's moved in.
pub fn install(dir: &Path, set: &KeyFiles, now: u64) -> Result<Installed, InstallError> {
    let local = KeyFiles::read(dir, &set.zone).map_err(InstallError::Io)?;
    if local.files == set.files {
        return Ok(Installed::Same);
    }
    keys::create_dir(dir).map_err(InstallError::Io)?;
    let staging = dir.join(format!(".incoming-{}{}", set.zone, std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = stage_and_move(dir, &staging, set, &local, now);
    let _ = std::fs::remove_dir_all(&staging);
    result
}

fn stage_and_move(
    dir: &Path,
    staging: &Path,
    set: &KeyFiles,
    local: &KeyFiles,
    now: u64,
) -> Result<Installed, InstallError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| InstallError::Io(key_error(staging, format!("cannot create: {e}"))))?;
    for (name, text) in &set.files {
        let mode = if name.ends_with(".private") {
            0o600
        } else {
            0o644
        };
        write_file(&staging.join(name), text, mode).map_err(InstallError::Io)?;
    }
    let loaded = keys::load_dir(staging, &set.zone).map_err(|es| {
        let first = es.first().map_or(String::new(), |e| {
            let file = e
                .file
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            format!("{file}:{}: {}", e.line, e.message)
        });
        InstallError::Invalid(format!("its keys do not load: {first}"))
    })?;
    if !loaded.iter().any(|k| k.is_sep()) {
        return Err(InstallError::Invalid(
            "it has no key with flags 257 (KSK or CSK)".into(),
        ));
    }
    let outcome = if local.is_empty() {
        Installed::Added
    } else {
        let aside = aside_dir(dir, now).map_err(InstallError::Io)?;
        for name in local.files.keys() {
            rename(&dir.join(name), &aside.join(name)).map_err(InstallError::Io)?;
        }
        Installed::Replaced(aside)
    };
    for name in set.files.keys() {
        rename(&staging.join(name), &dir.join(name)).map_err(InstallError::Io)?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::keys::{generate, ECDSAP256SHA256, FLAG_SEP, FLAG_ZONE};

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("signpost-sealed-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn secret(b: u8) -> FleetSecret {
        FleetSecret::from_hex(&format!("{b:02x}").repeat(32)).unwrap()
    }

    #[test]
    fn secrets_are_64_hex_digits() {
        assert!(FleetSecret::from_hex(&format!("{}\n", "ab".repeat(32))).is_ok());
        for bad in [
            "",
            "ab",
            &"ab".repeat(31),
            &"zz".repeat(32),
            &"ab".repeat(33),
        ] {
            let e = FleetSecret::from_hex(bad).unwrap_err();
            assert!(e.contains("64 hex digits"), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert_ne!(secret(1).id(), secret(2).id());
        assert!(!format!("{:?}", secret(1)).contains("0101"));
    }

    #[test]
    fn a_sealed_set_opens_with_its_secret_and_zone_only() {
        let d = scratch("open");
        let zone = name("k.test.");
        generate(&d, &zone, ECDSAP256SHA256, FLAG_ZONE | FLAG_SEP, 0).unwrap();
        let set = KeyFiles::read(&d, &zone).unwrap();
        assert_eq!(set.len(), 2);
        let value = seal(&secret(1), &set).unwrap();
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("PrivateKey"), "{text}");
        assert_eq!(open(&secret(1), &zone, &value).unwrap(), set);
        // Sealed twice: another nonce, another value.
        assert_ne!(seal(&secret(1), &set).unwrap(), value);
        assert!(matches!(
            open(&secret(2), &zone, &value),
            Err(OpenError::OtherSecret { .. })
        ));
        assert!(matches!(
            open(&secret(1), &name("other.test."), &value),
            Err(OpenError::Bad(_))
        ));
        // Any byte of the sealed part changed: refused.
        let mut env: Envelope = serde_json::from_slice(&value).unwrap();
        let mut sealed = b64().decode(&env.sealed).unwrap();
        sealed[10] ^= 1;
        env.sealed = b64().encode(&sealed);
        let e = open(&secret(1), &zone, &serde_json::to_vec(&env).unwrap()).unwrap_err();
        assert!(e.to_string().contains("does not open"), "{e}");
        for junk in [&b"garbage"[..], &vec![b' '; MAX_SEALED + 1]] {
            assert!(matches!(
                open(&secret(1), &zone, junk),
                Err(OpenError::Bad(_))
            ));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn file_names_outside_the_zones_pairs_are_refused() {
        let zone = name("k.test.");
        assert!(is_key_file_of("Kk.test.+013+01234.key", &zone));
        assert!(is_key_file_of("Kk.test.+015+65535.private", &zone));
        for bad in [
            "../Kk.test.+013+01234.key",
            "Kk.test.+013+01234.key/../../x",
            "Kx.test.+013+01234.key",
            "Kk.test.+013+1234.key",
            "Kk.test.+013+01234.state",
        ] {
            assert!(!is_key_file_of(bad, &zone), "{bad}");
        }
        let mut files = BTreeMap::new();
        files.insert("Kk.test.+013+01234.key".to_string(), String::new());
        let lone = KeyFiles {
            zone: zone.clone(),
            files,
        };
        let value = seal(&secret(1), &lone).unwrap();
        let e = open(&secret(1), &zone, &value).unwrap_err();
        assert!(e.to_string().contains("without its"), "{e}");
    }

    #[test]
    fn install_moves_a_different_local_set_aside() {
        let (a, b) = (scratch("install-a"), scratch("install-b"));
        let zone = name("k.test.");
        generate(&a, &zone, ECDSAP256SHA256, FLAG_ZONE | FLAG_SEP, 0).unwrap();
        generate(&b, &zone, ECDSAP256SHA256, FLAG_ZONE | FLAG_SEP, 0).unwrap();
        let fleet = KeyFiles::read(&a, &zone).unwrap();
        let mine = KeyFiles::read(&b, &zone).unwrap();
        let aside = match install(&b, &fleet, 1_800_000_000).unwrap() {
            Installed::Replaced(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(aside, b.join("replaced-1800000000"));
        assert_eq!(KeyFiles::read(&b, &zone).unwrap(), fleet);
        assert_eq!(KeyFiles::read(&aside, &zone).unwrap().files, mine.files);
        assert_eq!(install(&b, &fleet, 1_800_000_000).unwrap(), Installed::Same);
        // A set whose private key is not its public key's: nothing changes.
        let mut broken = mine.clone();
        let (k, p): (Vec<_>, Vec<_>) = broken
            .files
            .keys()
            .cloned()
            .partition(|n| n.ends_with(".key"));
        let other_private = fleet
            .files
            .values()
            .find(|t| t.contains("PrivateKey"))
            .unwrap();
        broken.files.insert(p[0].clone(), other_private.clone());
        assert_eq!(k.len(), 1);
        assert!(matches!(
            install(&b, &broken, 1_800_000_001),
            Err(InstallError::Invalid(_))
        ));
        assert_eq!(KeyFiles::read(&b, &zone).unwrap(), fleet);
        assert!(!b.join("replaced-1800000001").exists());
        let leftovers: Vec<_> = std::fs::read_dir(&b)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".incoming"))
            .collect();
        assert!(leftovers.is_empty());
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
}
