//! The zones folder: every `NAME.zone` is an RFC 1035 master file served as zone
//! `NAME.`; every `*.toml` is a zone policy file (origin, SOA, static records).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;

use super::checks::CheckRaw;
use super::policy::{compile_steering, NameRaw, RegionRaw, Steering, SteeringRaw};

use super::values::TtlValue;
use super::{line_of, ConfigError, LineIndex};
use crate::health::CheckSpec;
use crate::policy::ZoneSteering;
use crate::zone::build::{build_zone, ZoneBuilder};
use crate::zone::master::{self, MasterOptions, SourceRecord};
use crate::zone::name::Name;
use crate::zone::{rtype, Invalid, Zone};

/// A zone policy file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyRaw {
    /// The zone's origin, like "geo.example.com.".
    pub origin: toml::Spanned<String>,
    /// Default TTL for records that give none.
    pub ttl: Option<toml::Spanned<TtlValue>>,
    /// Static records in RFC 1035 presentation format, relative to the origin.
    pub records: Option<toml::Spanned<String>>,
    /// A master file with more static records, relative to this file.
    pub zonefile: Option<toml::Spanned<String>>,
    pub soa: Option<toml::Spanned<SoaRaw>>,
    /// Where the service runs: `[regions.NAME]` with location and jurisdiction.
    pub regions: Option<IndexMap<String, toml::Spanned<RegionRaw>>>,
    /// Extra or redefined jurisdictions: name -> country codes.
    pub jurisdictions: Option<IndexMap<String, toml::Spanned<Vec<String>>>>,
    /// Steered names: `[names.NAME]`.
    pub names: Option<IndexMap<String, toml::Spanned<NameRaw>>>,
    /// A file of measured round trips that replace latency estimates.
    pub latency_table: Option<toml::Spanned<String>>,
    /// Health checks endpoints refer to: `[checks.NAME]`.
    pub checks: Option<IndexMap<String, toml::Spanned<CheckRaw>>>,
    /// DNSSEC: `dnssec = true`, or a `[dnssec]` table of settings.
    pub dnssec: Option<toml::Spanned<DnssecRaw>>,
}

/// A zone's `dnssec` key: on/off, or settings (the rest from the server's `[dnssec]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum DnssecRaw {
    On(bool),
    Table(DnssecTableRaw),
}

/// The `[dnssec]` settings a zone (or the server, for its defaults) may give.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DnssecTableRaw {
    /// 13 / "ecdsap256sha256" (default) or 15 / "ed25519".
    pub algorithm: Option<AlgorithmRaw>,
    /// A KSK and a ZSK rather than one combined key.
    pub split: Option<bool>,
    /// How long signatures hold (default 14 days).
    pub validity: Option<TtlValue>,
    /// Re-sign when less than this is left (default 7 days).
    pub refresh: Option<TtlValue>,
    /// "compact" (RFC 9824, the default) or "nsec" (a classic NSEC chain).
    pub denial: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum AlgorithmRaw {
    Number(i64),
    Name(String),
}

impl DnssecTableRaw {
    /// The settings, or what is wrong with them.
    pub(crate) fn compile(&self) -> Result<crate::zone::SigningChoice, Vec<String>> {
        let mut errors = Vec::new();
        let mut c = crate::zone::SigningChoice::default();
        if let Some(a) = &self.algorithm {
            let text = match a {
                AlgorithmRaw::Number(n) => n.to_string(),
                AlgorithmRaw::Name(s) => s.clone(),
            };
            match crate::dnssec::keys::parse_algorithm(&text) {
                Some(n) => c.algorithm = Some(n),
                None => errors.push(format!(
                    "dnssec.algorithm {text:?} is not supported; use 13 (\"ecdsap256sha256\", the default) or 15 (\"ed25519\")"
                )),
            }
        }
        c.split = self.split;
        let secs = |v: &Option<TtlValue>, key: &str, errors: &mut Vec<String>| {
            v.as_ref().and_then(|t| match t.seconds() {
                Ok(s) if s >= 3600 => Some(s),
                Ok(s) => {
                    errors.push(format!(
                        "dnssec.{key} = {s} s is too short; use at least 1h"
                    ));
                    None
                }
                Err(e) => {
                    errors.push(format!("dnssec.{key}: {e}"));
                    None
                }
            })
        };
        c.validity = secs(&self.validity, "validity", &mut errors);
        c.refresh = secs(&self.refresh, "refresh", &mut errors);
        if let (Some(v), Some(r)) = (c.validity, c.refresh) {
            if r >= v {
                errors.push(format!(
                    "dnssec.refresh ({r} s) must be shorter than dnssec.validity ({v} s)"
                ));
            }
        }
        match self.denial.as_deref() {
            None => {}
            Some("compact") => c.nsec_chain = Some(false),
            Some("nsec") => c.nsec_chain = Some(true),
            Some(o) => errors.push(format!(
                "dnssec.denial {o:?}: use \"compact\" (RFC 9824, the default) or \"nsec\" (a walkable NSEC chain)"
            )),
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(errors)
        }
    }
}

/// The `[soa]` table: the SOA record without having to write one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SoaRaw {
    /// The primary name server (MNAME).
    pub primary: String,
    /// The zone contact as a name (`hostmaster.example.com.`) or an email address.
    pub contact: String,
    /// Default: the policy file's modification time in seconds since 1970, so the
    /// serial grows with every edit.
    pub serial: Option<u32>,
    pub refresh: Option<TtlValue>,
    pub retry: Option<TtlValue>,
    pub expire: Option<TtlValue>,
    /// How long resolvers cache NXDOMAIN and NODATA (SOA MINIMUM, RFC 2308 §4).
    pub negative_ttl: Option<TtlValue>,
    /// The SOA record's own TTL; default the zone's TTL.
    pub ttl: Option<TtlValue>,
}

/// Zones loaded from a folder, ready to serve.
#[derive(Debug, Default)]
pub struct LoadedZones {
    pub zones: Vec<Zone>,
    /// The health checks each zone's steered endpoints refer to by index
    /// (`ProbeRef::check`), beside `zones` (same index): the zone does not hold
    /// them; `bridge::assign` turns them into probe targets.
    pub checks: Vec<Vec<CheckSpec>>,
    /// Each zone's steering, beside `zones` (same index).
    pub steering: Vec<ZoneSteering>,
    pub warnings: Vec<ConfigError>,
    /// Every file read, for reload watching and status.
    pub files: Vec<PathBuf>,
    /// Secondary zones with no usable copy (none pulled yet, or expired): the
    /// server answers SERVFAIL for them.
    pub unavailable: Vec<Name>,
}

/// Default TTL of policy-file records when neither the record nor the file gives one.
pub(crate) const DEFAULT_TTL: u32 = 3600;

/// Loads every zone in `dir`. All errors of all files are returned together.
pub fn load_zones_dir(dir: &Path) -> Result<LoadedZones, Vec<ConfigError>> {
    load_zones_with(dir, &[])
}

/// [`load_zones_dir`] with the secondary zones' copies, each `Some(copy)` while
/// usable (see `config::secondary::usable_copy`): a policy file of that origin
/// takes its records from the copy; one with no policy file is served as is.
pub(crate) fn load_zones_with(
    dir: &Path,
    secondaries: &[(Name, Option<PathBuf>)],
) -> Result<LoadedZones, Vec<ConfigError>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![ConfigError::new(
            dir,
            0,
            format!("cannot read zones folder: {e}"),
        )]
    })?;
    let mut tomls = Vec::new();
    let mut masters = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => tomls.push(path),
            Some("zone") => masters.push(path),
            _ => {}
        }
    }
    tomls.sort();
    masters.sort();

    let mut errors = Vec::new();
    let mut out = LoadedZones::default();
    let mut origins: BTreeMap<Name, PathBuf> = BTreeMap::new();
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    let mut add_zone = |zone: Zone, file: &Path, errors: &mut Vec<ConfigError>| {
        if let Some(first) = origins.get(&zone.origin) {
            errors.push(ConfigError::new(
                file,
                1,
                format!(
                    "zone {} is already defined by {}; each zone may come from one file only",
                    zone.origin,
                    first.display()
                ),
            ));
            return None;
        }
        origins.insert(zone.origin.clone(), file.to_path_buf());
        Some(zone)
    };

    for path in &tomls {
        out.files.push(path.clone());
        match load_policy_file_with(path, secondaries) {
            // A policy file of a secondary zone with no usable copy: not served.
            Err(e) if e.is_empty() => {}
            Ok(CompiledPolicy {
                zone,
                steering,
                checks,
                warnings,
                zonefile,
            }) => {
                out.warnings.extend(warnings);
                if let Some(zf) = zonefile {
                    referenced.insert(canonical(&zf));
                    out.files.push(zf);
                }
                if let Some(z) = add_zone(zone, path, &mut errors) {
                    out.zones.push(z);
                    out.steering.push(steering);
                    out.checks.push(checks);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    for path in &masters {
        // A master file that a policy file names is part of that zone, not its own.
        if referenced.contains(&canonical(path)) {
            continue;
        }
        out.files.push(path.clone());
        match load_master_zone(path) {
            Ok((zone, warnings)) => {
                out.warnings.extend(warnings);
                if let Some(z) = add_zone(zone, path, &mut errors) {
                    out.zones.push(z);
                    out.steering.push(ZoneSteering::default());
                    out.checks.push(Vec::new());
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    for (origin, copy) in secondaries {
        match copy {
            None => out.unavailable.push(origin.clone()),
            // A policy file of this origin read the copy already.
            Some(_) if out.zones.iter().any(|z| z.origin == *origin) => {}
            Some(file) => {
                out.files.push(file.clone());
                match load_master_zone_at(file, origin) {
                    Ok((zone, warnings)) => {
                        out.warnings.extend(warnings);
                        if let Some(z) = add_zone(zone, file, &mut errors) {
                            out.zones.push(z);
                            out.steering.push(ZoneSteering::default());
                            out.checks.push(Vec::new());
                        }
                    }
                    Err(e) => errors.extend(e),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn master_errors(errs: Vec<master::MasterError>) -> Vec<ConfigError> {
    errs.into_iter()
        .map(|e| ConfigError::new(&e.file, e.line, e.message))
        .collect()
}

fn zone_errors(errs: Vec<crate::zone::build::ZoneError>) -> Vec<ConfigError> {
    errs.into_iter()
        .map(|e| ConfigError::new(&e.file, e.line, e.message))
        .collect()
}

/// Loads `NAME.zone` as zone `NAME.`.
pub(crate) fn load_master_zone(path: &Path) -> Result<(Zone, Vec<ConfigError>), Vec<ConfigError>> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let origin_text = if stem.ends_with('.') {
        stem.to_string()
    } else {
        format!("{stem}.")
    };
    let origin = Name::parse(&origin_text, None).map_err(|e| {
        vec![ConfigError::new(
            path,
            0,
            format!(
                "file name does not give a zone name ({e}); name the file like example.com.zone"
            ),
        )]
    })?;
    load_master_zone_at(path, &origin)
}

/// Loads the master file `path` as zone `origin`.
pub(crate) fn load_master_zone_at(
    path: &Path,
    origin: &Name,
) -> Result<(Zone, Vec<ConfigError>), Vec<ConfigError>> {
    let opts = MasterOptions {
        origin: origin.clone(),
        default_ttl: None,
    };
    // The records go into the zone as they are read (see `zone::build`).
    let mut builder = ZoneBuilder::new(origin, path);
    let errs = master::parse_file_into(path, &opts, &mut builder);
    if !errs.is_empty() {
        return Err(master_errors(errs));
    }
    let (zone, warnings) = builder.finish().map_err(zone_errors)?;
    Ok((zone, zone_errors(warnings)))
}

/// A policy file compiled: its zone, the health checks its endpoints refer to,
/// warnings, and the master file it named.
#[derive(Debug)]
pub(crate) struct CompiledPolicy {
    pub zone: Zone,
    pub steering: ZoneSteering,
    pub checks: Vec<CheckSpec>,
    pub warnings: Vec<ConfigError>,
    pub zonefile: Option<PathBuf>,
}

/// [`load_policy_file`] with the secondary zones' copies (see [`load_zones_with`]);
/// an empty error list: the file's zone is a secondary with no usable copy.
fn load_policy_file_with(
    path: &Path,
    secondaries: &[(Name, Option<PathBuf>)],
) -> Result<CompiledPolicy, Vec<ConfigError>> {
    let text = crate::zone::read_text_file(path)
        .map_err(|e| vec![ConfigError::new(path, 0, format!("cannot read: {e}"))])?;
    let raw: PolicyRaw = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(0);
        vec![ConfigError::new(path, line, e.message().trim().to_string())]
    })?;
    let mtime_serial = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    compile_policy_with(&text, path, raw, mtime_serial, secondaries)
}

fn compile_policy_with(
    text: &str,
    path: &Path,
    raw: PolicyRaw,
    default_serial: u32,
    secondaries: &[(Name, Option<PathBuf>)],
) -> Result<CompiledPolicy, Vec<ConfigError>> {
    // Every key, so that a new one cannot be dropped silently.
    let PolicyRaw {
        origin,
        ttl,
        records,
        zonefile,
        soa,
        regions,
        jurisdictions,
        names,
        latency_table,
        checks,
        dnssec,
    } = raw;
    let mut cx = ZoneCx {
        text,
        path,
        lines: LineIndex::new(text),
        errors: Vec::new(),
    };
    let origin_line = cx.at(origin.span());
    let origin_text = origin.get_ref();
    if !origin_text.ends_with('.') {
        return Err(vec![ConfigError::new(
            path,
            origin_line,
            format!("origin {origin_text:?} must be absolute: end it with a dot, like \"{origin_text}.\""),
        )]);
    }
    let origin = Name::parse(origin_text, None)
        .map_err(|e| vec![ConfigError::new(path, origin_line, format!("origin: {e}"))])?;
    let mut default_ttl = DEFAULT_TTL;
    if let Some(t) = &ttl {
        match t.get_ref().seconds() {
            Ok(v) => default_ttl = v,
            Err(m) => cx.error(t.span(), format!("ttl: {m}")),
        }
    }
    let opts = MasterOptions {
        origin: origin.clone(),
        default_ttl: Some(default_ttl),
    };
    let mut records_out = cx.inline_records(records.as_ref(), &opts);
    let zonefile_path = match secondaries.iter().find(|(o, _)| *o == origin) {
        Some((_, None)) => return Err(Vec::new()),
        Some((_, Some(copy))) => {
            if zonefile.is_some() || soa.is_some() || records.is_some() {
                cx.errors.push(ConfigError::new(
                    path,
                    origin_line,
                    format!("{origin} is a secondary zone: its records come from its primaries; drop records, zonefile and [soa] from this file"),
                ));
            }
            cx.file_records(copy, &opts, &mut records_out);
            Some(copy.clone())
        }
        None => zonefile.and_then(|zf| cx.zonefile(&zf, &opts, &mut records_out)),
    };
    if let Some(soa) = &soa {
        cx.soa_table(soa, &origin, default_ttl, default_serial, &mut records_out);
    }
    let steering = compile_steering(
        text,
        path,
        &origin,
        SteeringRaw {
            checks: checks.as_ref(),
            regions: regions.as_ref(),
            jurisdictions: jurisdictions.as_ref(),
            names: names.as_ref(),
            latency_table: latency_table.as_ref(),
        },
    );
    let Steering {
        zone: zone_policy,
        names: steered,
        checks,
        mut warnings,
    } = match steering {
        Ok(s) => s,
        Err(e) => {
            cx.errors.extend(e);
            Steering::default()
        }
    };
    let signing = dnssec.as_ref().and_then(|d| cx.signing(d));
    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    let (mut zone, zw) = build_zone(&origin, path, records_out).map_err(zone_errors)?;
    zone.signing = signing;
    warnings.extend(zone_errors(zw));
    let name_lines: Vec<usize> = names
        .iter()
        .flat_map(|m| m.values())
        .map(|s| cx.at(s.span()))
        .collect();
    zone.attach_steering(
        steered
            .iter()
            .map(|p| (&p.name, p.endpoints.iter().any(|e| e.cname.is_some()))),
    )
    .map_err(|errs| {
        errs.into_iter()
            .map(|(i, m)| ConfigError::new(path, name_lines.get(i).copied().unwrap_or(0), m))
            .collect::<Vec<_>>()
    })?;
    Ok(CompiledPolicy {
        zone,
        steering: ZoneSteering {
            policy: zone_policy,
            names: steered,
        },
        checks,
        warnings,
        zonefile: zonefile_path,
    })
}

/// A zone policy file being compiled: its text (for lines) and the errors so far.
struct ZoneCx<'a> {
    text: &'a str,
    path: &'a Path,
    lines: LineIndex,
    errors: Vec<ConfigError>,
}

impl ZoneCx<'_> {
    fn at(&self, span: std::ops::Range<usize>) -> usize {
        self.lines.line(span.start)
    }

    fn error(&mut self, span: std::ops::Range<usize>, m: String) {
        let line = self.at(span);
        self.errors.push(ConfigError::new(self.path, line, m));
    }

    fn base(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The `records` string's records, with their lines in the file.
    fn inline_records(
        &mut self,
        rec: Option<&toml::Spanned<String>>,
        opts: &MasterOptions,
    ) -> Vec<SourceRecord> {
        let Some(rec) = rec else { return Vec::new() };
        let span = rec.span();
        // A multi-line string's first newline right after the quotes is not part of
        // the value (TOML spec), so the text starts on the next line.
        let mut first_line = self.at(span.clone());
        let lit = &self.text[span.start.min(self.text.len())..];
        if lit.starts_with("\"\"\"\n")
            || lit.starts_with("'''\n")
            || lit.starts_with("\"\"\"\r\n")
            || lit.starts_with("'''\r\n")
        {
            first_line += 1;
        }
        let (recs, errs) =
            master::parse_text(rec.get_ref(), self.path, first_line, self.base(), opts);
        self.errors.extend(master_errors(errs));
        recs
    }

    fn file_records(&mut self, file: &Path, opts: &MasterOptions, out: &mut Vec<SourceRecord>) {
        let (recs, errs) = master::parse_file(file, opts);
        out.extend(recs);
        self.errors.extend(master_errors(errs));
    }

    /// The `zonefile`'s records, relative to this file; its path when it exists.
    fn zonefile(
        &mut self,
        zf: &toml::Spanned<String>,
        opts: &MasterOptions,
        out: &mut Vec<SourceRecord>,
    ) -> Option<PathBuf> {
        let p = self.base().join(zf.get_ref());
        if !p.is_file() {
            let m = format!(
                "zonefile {:?} does not exist (relative to this file)",
                zf.get_ref()
            );
            self.error(zf.span(), m);
            return None;
        }
        self.file_records(&p, opts, out);
        Some(p)
    }

    /// The `[soa]` table's SOA record, unless the records have one.
    fn soa_table(
        &mut self,
        soa: &toml::Spanned<SoaRaw>,
        origin: &Name,
        default_ttl: u32,
        default_serial: u32,
        records: &mut Vec<SourceRecord>,
    ) {
        let line = self.at(soa.span());
        if records.iter().any(|r| r.rtype == rtype::SOA) {
            self.errors.push(ConfigError::new(
                self.path,
                line,
                "[soa] and an SOA record are both given; keep one".to_string(),
            ));
            return;
        }
        match soa_record(soa.get_ref(), origin, default_ttl, default_serial) {
            Ok((ttl, rdata)) => records.push(SourceRecord {
                owner: origin.clone(),
                rtype: rtype::SOA,
                ttl,
                rdata,
                file: Arc::from(self.path),
                line,
            }),
            Err(m) => self
                .errors
                .push(ConfigError::new(self.path, line, format!("[soa]: {m}"))),
        }
    }

    /// The zone's `dnssec` key: off, on with the defaults, or a table.
    fn signing(&mut self, d: &toml::Spanned<DnssecRaw>) -> Option<crate::zone::SigningChoice> {
        match d.get_ref() {
            DnssecRaw::On(false) => None,
            DnssecRaw::On(true) => Some(crate::zone::SigningChoice::default()),
            DnssecRaw::Table(t) => match t.compile() {
                Ok(c) => Some(c),
                Err(es) => {
                    let line = self.at(d.span());
                    self.errors
                        .extend(es.into_iter().map(|m| ConfigError::new(self.path, line, m)));
                    None
                }
            },
        }
    }
}

/// SOA RDATA from the `[soa]` table (RFC 1035 §3.3.13).
fn soa_record(
    soa: &SoaRaw,
    origin: &Name,
    default_ttl: u32,
    default_serial: u32,
) -> Result<(u32, Vec<u8>), Invalid> {
    let primary =
        Name::parse(&soa.primary, Some(origin)).map_err(|e| Invalid(format!("primary: {e}")))?;
    let contact_text = contact_to_name(&soa.contact);
    let contact = Name::parse(&contact_text, Some(origin)).map_err(|e| format!("contact: {e}"))?;
    let t = |v: &Option<TtlValue>, d: u32, key: &str| -> Result<u32, Invalid> {
        match v {
            Some(v) => v.seconds().map_err(|m| Invalid(format!("{key}: {m}"))),
            None => Ok(d),
        }
    };
    let refresh = t(&soa.refresh, 3600, "refresh")?;
    let retry = t(&soa.retry, 600, "retry")?;
    let expire = t(&soa.expire, 604800, "expire")?;
    let minimum = t(&soa.negative_ttl, 60, "negative_ttl")?;
    let ttl = t(&soa.ttl, default_ttl, "ttl")?;
    let mut rd = Vec::new();
    rd.extend_from_slice(primary.wire());
    rd.extend_from_slice(contact.wire());
    for v in [
        soa.serial.unwrap_or(default_serial),
        refresh,
        retry,
        expire,
        minimum,
    ] {
        rd.extend_from_slice(&v.to_be_bytes());
    }
    Ok((ttl, rd))
}

/// "hostmaster@example.com" -> "hostmaster.example.com." (dots in the local part
/// escaped, RFC 1035 §8); a name is returned as it is.
fn contact_to_name(s: &str) -> String {
    match s.split_once('@') {
        Some((local, domain)) => {
            let local = local.replace('.', "\\.");
            let domain = domain.trim_end_matches('.');
            format!("{local}.{domain}.")
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_forms() {
        assert_eq!(
            contact_to_name("hostmaster@example.com"),
            "hostmaster.example.com."
        );
        assert_eq!(
            contact_to_name("j.doe@example.com."),
            "j\\.doe.example.com."
        );
        assert_eq!(
            contact_to_name("hostmaster.example.com."),
            "hostmaster.example.com."
        );
    }
}
