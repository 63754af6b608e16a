//! Zone signing keys, kept in BIND's key file format so they move to and from BIND,
//! Knot and PowerDNS: `K<zone>+<alg>+<tag>.key` holds the DNSKEY record,
//! `K<zone>+<alg>+<tag>.private` (mode 0600) the private key in
//! "Private-key-format: v1.3" with its timing fields. Keys are generated on first
//! load when a signed zone has none. The crypto is ring's; this module only moves
//! bytes between ring and the files, and never logs or prints a private key.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
};

use crate::zone::Name;

/// DNSSEC algorithm numbers (RFC 8624 §3.1): the two signpost signs with.
pub(crate) const ECDSAP256SHA256: u8 = 13;
pub(crate) const ED25519: u8 = 15;

/// DNSKEY flags (RFC 4034 §2.1.1): Zone Key, and Secure Entry Point for a KSK/CSK.
pub(crate) const FLAG_ZONE: u16 = 0x0100;
pub(crate) const FLAG_SEP: u16 = 0x0001;

/// A key file that cannot be used, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct KeyError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

impl KeyError {
    fn new(file: &Path, line: usize, message: impl Into<String>) -> KeyError {
        KeyError {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// ring failed to sign (it does not say why; in practice the system RNG).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("signing failed")]
pub struct SignFailed;

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One DNSSEC key of one zone, loaded and ready to sign.
pub struct Key {
    pub zone: Name,
    pub algorithm: u8,
    pub flags: u16,
    /// The DNSKEY public key field: X || Y for P-256 (RFC 6605 §4), the 32-byte key
    /// for Ed25519 (RFC 8080 §3).
    pub public: Vec<u8>,
    pub tag: u16,
    /// The `.key` file, for messages.
    pub file: PathBuf,
    /// Unix seconds from the `.private` timing fields: published in DNSKEY from
    /// `publish`, signing from `activate`, neither after `inactive` / `delete`.
    pub publish: u64,
    pub activate: u64,
    pub inactive: Option<u64>,
    pub delete: Option<u64>,
    pair: Pair,
    rng: SystemRandom,
}

impl fmt::Debug for Key {
    // No private material, ever.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("zone", &self.zone.to_string())
            .field("algorithm", &self.algorithm)
            .field("flags", &self.flags)
            .field("tag", &self.tag)
            .field("file", &self.file)
            .finish()
    }
}

impl Key {
    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key (RFC 4034 §2.1).
    pub(crate) fn dnskey_rdata(&self) -> Vec<u8> {
        dnskey_rdata(self.flags, self.algorithm, &self.public)
    }

    /// A KSK or CSK: its DS goes to the parent, it signs the DNSKEY RRset.
    pub(crate) fn is_sep(&self) -> bool {
        self.flags & FLAG_SEP != 0
    }

    /// In the DNSKEY RRset at `now`.
    pub fn published(&self, now: u64) -> bool {
        self.publish <= now && self.delete.is_none_or(|d| now < d)
    }

    /// Signs at `now`.
    pub(crate) fn active(&self, now: u64) -> bool {
        self.published(now) && self.activate <= now && self.inactive.is_none_or(|d| now < d)
    }

    /// The signature field of an RRSIG over `data` (RFC 6605 §4: r || s, 64 bytes;
    /// RFC 8080 §4: the 64-byte Ed25519 signature).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignFailed> {
        match &self.pair {
            Pair::Ecdsa(k) => k
                .sign(&self.rng, data)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignFailed),
            Pair::Ed25519(k) => Ok(k.sign(data).as_ref().to_vec()),
        }
    }

    /// The DS RDATA for the parent, SHA-256 (digest type 2, RFC 4509).
    pub(crate) fn ds_rdata(&self) -> Vec<u8> {
        ds_rdata(&self.zone, &self.dnskey_rdata())
    }

    /// `zone. IN DS tag alg 2 HEX`, the line to hand to the parent.
    pub(crate) fn ds_line(&self) -> String {
        let ds = self.ds_rdata();
        let hex: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{} IN DS {} {} 2 {hex}",
            self.zone, self.tag, self.algorithm
        )
    }
}

pub(crate) fn dnskey_rdata(flags: u16, algorithm: u8, public: &[u8]) -> Vec<u8> {
    let mut rd = Vec::with_capacity(4 + public.len());
    rd.extend_from_slice(&flags.to_be_bytes());
    rd.push(3);
    rd.push(algorithm);
    rd.extend_from_slice(public);
    rd
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B).
pub(crate) fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}

/// DS RDATA with a SHA-256 digest over owner | DNSKEY RDATA (RFC 4034 §5.1.4).
pub(crate) fn ds_rdata(owner: &Name, dnskey: &[u8]) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(owner.wire());
    ctx.update(dnskey);
    let digest = ctx.finish();
    let mut rd = Vec::with_capacity(4 + 32);
    rd.extend_from_slice(&key_tag(dnskey).to_be_bytes());
    rd.push(dnskey.get(3).copied().unwrap_or(0));
    rd.push(2);
    rd.extend_from_slice(digest.as_ref());
    rd
}

/// The algorithm's mnemonic as BIND writes it in `.private` files.
pub(crate) fn algorithm_mnemonic(alg: u8) -> &'static str {
    match alg {
        ECDSAP256SHA256 => "ECDSAP256SHA256",
        ED25519 => "ED25519",
        _ => "UNKNOWN",
    }
}

/// Parses an algorithm as configured: a number or a mnemonic.
pub(crate) fn parse_algorithm(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "13" | "ecdsap256sha256" | "ecdsa-p256" | "p256" => Some(ECDSAP256SHA256),
        "15" | "ed25519" => Some(ED25519),
        _ => None,
    }
}

/// `Kexample.com.+013+12345`: the stem BIND gives a key's two files.
fn file_stem(zone: &Name, alg: u8, tag: u16) -> String {
    format!("K{zone}+{alg:03}+{tag:05}")
}

/// Generates a key for `zone` and writes its two files into `dir` (created 0700
/// if missing; the `.private` file 0600). Timing fields all say `now`.
pub(crate) fn generate(
    dir: &Path,
    zone: &Name,
    alg: u8,
    flags: u16,
    now: u64,
) -> Result<Key, KeyError> {
    let rng = SystemRandom::new();
    let fail = |m: String| KeyError::new(dir, 0, m);
    let (private, public) = match alg {
        ECDSAP256SHA256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| fail("cannot generate an ECDSA P-256 key".into()))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                    .map_err(|_| fail("ring rejected the key it generated".into()))?;
            // ring's PKCS#8 document holds the ECPrivateKey (RFC 5915): version 1,
            // then the 32-byte scalar as an OCTET STRING.
            let scalar = after(doc.as_ref(), &[0x02, 0x01, 0x01, 0x04, 0x20], 32)
                .ok_or_else(|| fail("unexpected PKCS#8 layout from ring".into()))?;
            let pubkey = pair
                .public_key()
                .as_ref()
                .get(1..)
                .unwrap_or_default()
                .to_vec();
            (scalar.to_vec(), pubkey)
        }
        ED25519 => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| fail("cannot generate an Ed25519 key".into()))?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|_| fail("ring rejected the key it generated".into()))?;
            // RFC 8410: the private key is an OCTET STRING wrapping the 32-byte seed.
            let seed = after(doc.as_ref(), &[0x04, 0x22, 0x04, 0x20], 32)
                .ok_or_else(|| fail("unexpected PKCS#8 layout from ring".into()))?;
            (seed.to_vec(), pair.public_key().as_ref().to_vec())
        }
        other => {
            return Err(fail(format!(
                "algorithm {other} is not supported; use 13 or 15"
            )))
        }
    };
    let rdata = dnskey_rdata(flags, alg, &public);
    let tag = key_tag(&rdata);
    create_dir(dir)?;
    let stem = file_stem(zone, alg, tag);
    let key_path = dir.join(format!("{stem}.key"));
    let private_path = dir.join(format!("{stem}.private"));
    let b64 = base64::engine::general_purpose::STANDARD;
    let when = timestamp(now);
    let kind = if flags & FLAG_SEP != 0 {
        "key-signing"
    } else {
        "zone-signing"
    };
    let key_text = format!(
        "; This is a {kind} key, keyid {tag}, for {zone}\n; Created: {when}\n; Publish: {when}\n; Activate: {when}\n{zone} IN DNSKEY {flags} 3 {alg} {}\n",
        b64.encode(&public)
    );
    let private_text = format!(
        "Private-key-format: v1.3\nAlgorithm: {alg} ({})\nPrivateKey: {}\nCreated: {when}\nPublish: {when}\nActivate: {when}\n",
        algorithm_mnemonic(alg),
        b64.encode(&private)
    );
    write_new(&private_path, private_text.as_bytes(), 0o600)?;
    write_new(&key_path, key_text.as_bytes(), 0o644)?;
    let key = build(
        zone,
        alg,
        flags,
        public,
        &private,
        &key_path,
        &private_path,
        1,
    )?;
    Ok(Key {
        publish: now,
        activate: now,
        ..key
    })
}

/// Creates `dir` (0700, parents too) unless it is there.
pub(crate) fn create_dir(dir: &Path) -> Result<(), KeyError> {
    if dir.is_dir() {
        return Ok(());
    }
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| KeyError::new(dir, 0, format!("cannot create key_dir: {e}")))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| KeyError::new(path, 0, format!("cannot create key file: {e}")))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| KeyError::new(path, 0, format!("cannot write key file: {e}")))
}

/// The `n` bytes after the first occurrence of `marker` in `doc`.
fn after<'a>(doc: &'a [u8], marker: &[u8], n: usize) -> Option<&'a [u8]> {
    let at = doc.windows(marker.len()).position(|w| w == marker)? + marker.len();
    doc.get(at..at + n)
}

#[allow(clippy::too_many_arguments)]
fn build(
    zone: &Name,
    alg: u8,
    flags: u16,
    public: Vec<u8>,
    private: &[u8],
    key_path: &Path,
    private_path: &Path,
    private_line: usize,
) -> Result<Key, KeyError> {
    let rng = SystemRandom::new();
    let mismatch = || {
        KeyError::new(
            private_path,
            private_line,
            format!(
                "PrivateKey does not belong to the public key in {}",
                key_path.display()
            ),
        )
    };
    let pair = match alg {
        ECDSAP256SHA256 => {
            if public.len() != 64 || private.len() != 32 {
                return Err(mismatch());
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&public);
            Pair::Ecdsa(
                EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    &rng,
                )
                .map_err(|_| mismatch())?,
            )
        }
        ED25519 => Pair::Ed25519(
            Ed25519KeyPair::from_seed_and_public_key(private, &public).map_err(|_| mismatch())?,
        ),
        other => {
            return Err(KeyError::new(
                key_path,
                1,
                format!("algorithm {other} is not supported; signpost signs with 13 (ECDSAP256SHA256) or 15 (ED25519)"),
            ))
        }
    };
    let rdata = dnskey_rdata(flags, alg, &public);
    Ok(Key {
        zone: zone.clone(),
        algorithm: alg,
        flags,
        tag: key_tag(&rdata),
        public,
        file: key_path.to_path_buf(),
        publish: 0,
        activate: 0,
        inactive: None,
        delete: None,
        pair,
        rng,
    })
}

/// Every key of `zone` in `dir` (files named `K<zone>+...`; other zones' files are
/// left alone). A file that is unreadable, malformed, of an unknown algorithm or of
/// another zone is an error with its line; all of them are returned together.
pub(crate) fn load_dir(dir: &Path, zone: &Name) -> Result<Vec<Key>, Vec<KeyError>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(vec![KeyError::new(
                dir,
                0,
                format!("cannot read key_dir: {e}"),
            )])
        }
    };
    let prefix = format!("k{zone}+");
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".key"))
        })
        .collect();
    paths.sort();
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        match load_pair(&p, zone) {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(keys)
    } else {
        Err(errors)
    }
}

/// Reads one `.key` file and the `.private` file beside it.
pub(crate) fn load_pair(key_path: &Path, zone: &Name) -> Result<Key, KeyError> {
    let text = crate::zone::read_text_file(key_path)
        .map_err(|e| KeyError::new(key_path, 0, format!("cannot read: {e}")))?;
    let mut record = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if record.is_some() {
            return Err(KeyError::new(
                key_path,
                i + 1,
                "more than one record; a .key file holds one DNSKEY",
            ));
        }
        record = Some((i + 1, line.to_string()));
    }
    let Some((line_no, line)) = record else {
        return Err(KeyError::new(key_path, 1, "no DNSKEY record in the file"));
    };
    let bad = |m: String| KeyError::new(key_path, line_no, m);
    let fields: Vec<&str> = line.split_whitespace().collect();
    let at = fields
        .iter()
        .position(|f| f.eq_ignore_ascii_case("DNSKEY"))
        .ok_or_else(|| bad("expected `<zone> IN DNSKEY <flags> 3 <alg> <key>`".into()))?;
    let owner =
        Name::parse(fields[0], None).map_err(|e| bad(format!("owner {:?}: {e}", fields[0])))?;
    if owner != *zone {
        return Err(bad(format!(
            "this key is for {owner}, not for zone {zone}; move it or rename it"
        )));
    }
    let num = |i: usize, what: &str| -> Result<u32, KeyError> {
        fields
            .get(at + i)
            .and_then(|f| f.parse::<u32>().ok())
            .ok_or_else(|| bad(format!("{what} missing or not a number")))
    };
    let flags = num(1, "flags")?;
    let protocol = num(2, "protocol")?;
    let alg = num(3, "algorithm")?;
    if flags != 256 && flags != 257 {
        return Err(bad(format!(
            "flags {flags}: a zone key has 256 (ZSK) or 257 (KSK/CSK)"
        )));
    }
    if protocol != 3 {
        return Err(bad(format!(
            "protocol {protocol}: DNSKEY protocol is 3 (RFC 4034 §2.1.2)"
        )));
    }
    let alg = match u8::try_from(alg) {
        Ok(a @ (ECDSAP256SHA256 | ED25519)) => a,
        _ => {
            return Err(bad(format!(
                "algorithm {alg} is not supported; signpost signs with 13 (ECDSAP256SHA256) or 15 (ED25519)"
            )))
        }
    };
    let b64: String = fields.get(at + 4..).unwrap_or_default().concat();
    let public = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| bad(format!("public key is not base64: {e}")))?;
    let want = if alg == ECDSAP256SHA256 { 64 } else { 32 };
    if public.len() != want {
        return Err(bad(format!(
            "public key is {} bytes; algorithm {alg} keys are {want}",
            public.len()
        )));
    }
    let private_path = key_path.with_extension("private");
    let p = read_private(&private_path, alg)?;
    let key = build(
        zone,
        alg,
        flags as u16,
        public,
        &p.private,
        key_path,
        &private_path,
        p.private_line,
    )?;
    Ok(Key {
        publish: p.publish.or(p.created).unwrap_or(0),
        activate: p.activate.or(p.created).unwrap_or(0),
        inactive: p.inactive,
        delete: p.delete,
        ..key
    })
}

struct Private {
    private: Vec<u8>,
    private_line: usize,
    created: Option<u64>,
    publish: Option<u64>,
    activate: Option<u64>,
    inactive: Option<u64>,
    delete: Option<u64>,
}

fn read_private(path: &Path, alg: u8) -> Result<Private, KeyError> {
    let text = crate::zone::read_text_file(path)
        .map_err(|e| KeyError::new(path, 0, format!("cannot read: {e}")))?;
    let mut out = Private {
        private: Vec::new(),
        private_line: 0,
        created: None,
        publish: None,
        activate: None,
        inactive: None,
        delete: None,
    };
    let mut format_seen = false;
    let mut alg_seen = false;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(KeyError::new(path, n, "expected `Field: value`"));
        };
        let v = v.trim();
        let time = |v: &str| {
            parse_timestamp(v).ok_or_else(|| {
                KeyError::new(path, n, format!("{k}: {v:?} is not a YYYYMMDDHHMMSS time"))
            })
        };
        match k.trim() {
            "Private-key-format" => {
                if !v.starts_with("v1.") {
                    return Err(KeyError::new(
                        path,
                        n,
                        format!("Private-key-format {v}: only v1.x files are read"),
                    ));
                }
                format_seen = true;
            }
            "Algorithm" => {
                let num = v.split_whitespace().next().unwrap_or("");
                if num.parse::<u8>().ok() != Some(alg) {
                    return Err(KeyError::new(
                        path,
                        n,
                        format!("Algorithm {v} differs from the .key file's {alg}"),
                    ));
                }
                alg_seen = true;
            }
            "PrivateKey" => {
                out.private = base64::engine::general_purpose::STANDARD
                    .decode(v.as_bytes())
                    .map_err(|_| KeyError::new(path, n, "PrivateKey is not base64"))?;
                out.private_line = n;
            }
            "Created" => out.created = Some(time(v)?),
            "Publish" => out.publish = Some(time(v)?),
            "Activate" => out.activate = Some(time(v)?),
            "Inactive" => out.inactive = Some(time(v)?),
            "Delete" => out.delete = Some(time(v)?),
            // Other BIND fields (Revoke, SyncPublish, ...) are kept by BIND, not us.
            _ => {}
        }
    }
    if !format_seen || !alg_seen || out.private_line == 0 {
        return Err(KeyError::new(
            path,
            1,
            "not a private key file: it needs Private-key-format, Algorithm and PrivateKey",
        ));
    }
    Ok(out)
}

/// `YYYYMMDDHHMMSS` in UTC, as BIND writes key timing fields.
pub(crate) fn timestamp(unix: u64) -> String {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

pub(crate) fn parse_timestamp(s: &str) -> Option<u64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0, 4)?,
        n(4, 6)?,
        n(6, 8)?,
        n(8, 10)?,
        n(10, 12)?,
        n(12, 14)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    u64::try_from(days * 86400 + h * 3600 + mi * 60 + se).ok()
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    /// RFC 6605 §6.1: the example KSK and its SHA-256 DS.
    #[test]
    fn key_tag_and_ds_of_the_rfc_6605_example() {
        let public = base64::engine::general_purpose::STANDARD
            .decode("GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .unwrap();
        let rd = dnskey_rdata(257, 13, &public);
        assert_eq!(key_tag(&rd), 55648);
        let ds = ds_rdata(&name("example.net."), &rd);
        let hex: String = ds[4..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17"
        );
        assert_eq!(&ds[..4], &[0xd9, 0x60, 13, 2]);
    }

    #[test]
    fn timestamps_round_trip() {
        for t in [0u64, 951782400, 1_795_000_000, 4_102_444_799] {
            assert_eq!(parse_timestamp(&timestamp(t)), Some(t), "{t}");
        }
        assert_eq!(timestamp(951782400), "20000229000000");
        assert_eq!(parse_timestamp("20261301000000"), None);
    }

    #[test]
    fn generated_keys_read_back_and_verify() {
        let dir = std::env::temp_dir().join(format!("signpost-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let zone = name("example.org.");
        for (alg, flags) in [(ECDSAP256SHA256, 257), (ED25519, 256)] {
            let k = generate(&dir, &zone, alg, flags, 1_800_000_000).unwrap();
            let back = load_dir(&dir, &zone)
                .unwrap()
                .into_iter()
                .find(|b| b.tag == k.tag)
                .unwrap();
            assert_eq!(back.public, k.public);
            assert_eq!(back.activate, 1_800_000_000);
            let sig = back.sign(b"data").unwrap();
            let verify: &dyn ring::signature::VerificationAlgorithm = if alg == ECDSAP256SHA256 {
                &ring::signature::ECDSA_P256_SHA256_FIXED
            } else {
                &ring::signature::ED25519
            };
            let mut point = if alg == ECDSAP256SHA256 {
                vec![4]
            } else {
                vec![]
            };
            point.extend_from_slice(&k.public);
            ring::signature::UnparsedPublicKey::new(verify, &point)
                .verify(b"data", &sig)
                .unwrap();
            assert!(ring::signature::UnparsedPublicKey::new(verify, &point)
                .verify(b"other", &sig)
                .is_err());
            let private = k.file.with_extension("private");
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Another zone's key under this zone's file name is refused with its line.
        let other = generate(&dir, &name("example.net."), ED25519, 257, 0).unwrap();
        let stolen = dir.join(format!("Kexample.org.+015+{:05}.key", other.tag));
        std::fs::copy(&other.file, &stolen).unwrap();
        std::fs::copy(
            other.file.with_extension("private"),
            stolen.with_extension("private"),
        )
        .unwrap();
        let errs = load_dir(&dir, &zone).unwrap_err();
        assert!(errs[0].message.contains("for example.net."), "{errs:?}");
        assert_eq!(errs[0].line, 5);
        // A private key of another key: refused, naming the PrivateKey line.
        std::fs::remove_file(&stolen).unwrap();
        std::fs::remove_file(stolen.with_extension("private")).unwrap();
        let keys = load_dir(&dir, &zone).unwrap();
        let p = keys[0].file.with_extension("private");
        let other_private = std::fs::read_to_string(other.file.with_extension("private")).unwrap();
        let mine = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            other_private.replace("Algorithm: 15 (ED25519)", mine.lines().nth(1).unwrap()),
        )
        .unwrap();
        let errs = load_dir(&dir, &zone).unwrap_err();
        assert!(errs[0].message.contains("does not belong"), "{errs:?}");
        assert_eq!(errs[0].line, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
