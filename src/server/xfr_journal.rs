//! The served serials and the IXFR journal on disk (`[transfer] journal_dir`),
//! so that a restart neither serves a serial older than one secondaries saw nor
//! sends the whole zone to a secondary a few changes behind.
//!
//! One file per zone that transfers out, `NAME.journal` (the origin, `.` for
//! the root), written whole after each load that changes the zone's serial:
//! to a temporary file beside it, synced, then renamed into place, so a reader
//! sees the old file or the new one. It holds the zone's content fingerprint
//! and served serial (`server::xfr_serial`), a digest of what the zone
//! transfers, and the journal's differences: at most what the in-memory journal
//! holds (`transfer.journal` differences, twice the zone's records).
//!
//! At start the files are read before the first load: the serial is put back
//! (so an unchanged zone serves it, a changed one serves it plus one), and once
//! the zone is loaded its journal is put back when the zone transfers exactly
//! what it did when the file was written (the same serial and digest); else the
//! journal is dropped and secondaries behind take the whole zone, as before. A
//! file that does not read (truncated, corrupt: a SHA-256 closes it; another
//! format; another zone's) is logged and ignored: the zone is served from its
//! file as without a journal.
//!
//! Invariant: a journal put back always ends at the serial served.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustc_hash::FxHasher;
use tracing::{info, warn};

use crate::answer::snapshot::Snapshot;
use crate::answer::transfer::{Diff, Journal, Rr, TransferConfig};
use crate::answer::xfr::{zone_records, Source};
use crate::zone::Name;

const MAGIC: &[u8] = b"signpost ixfr journal 1\n";
/// A journal file larger than this is not read (a foreign file).
const MAX_FILE: u64 = 1 << 30;

/// One zone's file, read.
#[derive(Debug)]
pub(crate) struct Saved {
    origin: Name,
    print: u64,
    serial: u32,
    digest: u64,
    diffs: Vec<Diff>,
}

/// The file of `origin` in `dir`.
fn file_of(dir: &Path, origin: &Name) -> PathBuf {
    let text = origin.to_string();
    let safe: String = text
        .trim_end_matches('.')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() { "root".into() } else { safe };
    dir.join(format!("{safe}.journal"))
}

/// Whether zone `origin` goes to secondaries: only those are kept on disk.
fn transfers(t: &TransferConfig, origin: &Name) -> bool {
    let z = t.zone(origin);
    z.enabled() || !z.notify.is_empty()
}

/// What zone `zi` of `snap` transfers, as one number: sorted, the SOA left out.
fn digest(snap: &Snapshot, zi: usize) -> Option<u64> {
    let origin = &snap.zones.zones().get(zi)?.origin;
    let standin = snap.transfer.zone(origin).standin;
    let mut records = zone_records(Source::of(snap), zi, standin)?;
    records.remove(0);
    records.sort_unstable();
    let mut h = FxHasher::default();
    records.hash(&mut h);
    Some(h.finish())
}

/// Reads every zone's file and puts its serial back for the first load.
/// Nothing without `journal_dir`.
pub(crate) fn restore_serials(transfer: &TransferConfig, zones_dir: &Path) -> Vec<Saved> {
    let Some(dir) = &transfer.journal_dir else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("journal") {
            continue;
        }
        match read(&path) {
            Ok(s) if file_of(dir, &s.origin) == path => {
                super::xfr_serial::remember(zones_dir, &s.origin, s.print, s.serial);
                out.push(s);
            }
            Ok(s) => warn!(
                file = %path.display(),
                "journal file holds zone {}, not the zone its name says: ignored",
                s.origin
            ),
            Err(why) => warn!(
                file = %path.display(),
                "journal file ignored ({why}); the zone serves from its file as without one"
            ),
        }
    }
    out
}

/// Puts back in `snap` the journals of `saved` that end where the zone now is.
pub(crate) fn restore_journals(snap: &mut Snapshot, saved: Vec<Saved>) {
    let mut journal = Journal::clone(&snap.journal);
    for s in saved {
        let Some(zi) = snap.zones.zones().iter().position(|z| z.origin == s.origin) else {
            continue;
        };
        let serial = snap.zones.zones()[zi].serial;
        let ends = s
            .diffs
            .last()
            .map_or(s.serial, |d| d.to_soa.soa_serial().unwrap_or(0));
        if serial != s.serial || ends != serial || digest(snap, zi) != Some(s.digest) {
            info!(zone = %s.origin, serial, "the zone changed since its journal was written: secondaries behind take the whole zone");
            continue;
        }
        let mut diffs: VecDeque<Arc<Diff>> = s.diffs.into_iter().map(Arc::new).collect();
        while diffs.len() > snap.transfer.journal {
            diffs.pop_front();
        }
        if !diffs.is_empty() {
            info!(zone = %s.origin, serial, differences = diffs.len(), "IXFR journal restored");
            journal.zones.insert(s.origin, diffs);
        }
    }
    snap.journal = Arc::new(journal);
}

/// Writes the files of `zones` (all that transfer, when `None`) as `snap`
/// serves them. A failure is logged; it changes nothing that serves.
pub(crate) fn save(snap: &Snapshot, zones_dir: &Path, zones: Option<&[Name]>) {
    let Some(dir) = &snap.transfer.journal_dir else {
        return;
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        warn!(dir = %dir.display(), "cannot make the journal folder: {e}");
        return;
    }
    for (zi, z) in snap.zones.zones().iter().enumerate() {
        if !transfers(&snap.transfer, &z.origin) || zones.is_some_and(|l| !l.contains(&z.origin)) {
            continue;
        }
        let Some((print, serial)) = super::xfr_serial::served(zones_dir, &z.origin) else {
            continue;
        };
        let Some(digest) = digest(snap, zi) else {
            continue;
        };
        let none = VecDeque::new();
        let diffs = snap.journal.zones.get(&z.origin).unwrap_or(&none);
        let bytes = encode(&z.origin, print, serial, digest, diffs.iter().map(|d| &**d));
        let path = file_of(dir, &z.origin);
        if let Err(e) = write_atomically(&path, &bytes) {
            warn!(file = %path.display(), "cannot write the zone's journal: {e}; a restart serves from the files' serials");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn put_rr(out: &mut Vec<u8>, rr: &Rr) {
    for part in [&rr.owner, &rr.tail] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
}

fn put_rrs(out: &mut Vec<u8>, rrs: &[Rr]) {
    out.extend_from_slice(&(rrs.len() as u32).to_be_bytes());
    for rr in rrs {
        put_rr(out, rr);
    }
}

fn encode<'d>(
    origin: &Name,
    print: u64,
    serial: u32,
    digest: u64,
    diffs: impl ExactSizeIterator<Item = &'d Diff>,
) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(origin.wire().len() as u8);
    out.extend_from_slice(origin.wire());
    out.extend_from_slice(&print.to_be_bytes());
    out.extend_from_slice(&serial.to_be_bytes());
    out.extend_from_slice(&digest.to_be_bytes());
    out.extend_from_slice(&(diffs.len() as u32).to_be_bytes());
    for d in diffs {
        put_rr(&mut out, &d.from_soa);
        put_rr(&mut out, &d.to_soa);
        put_rrs(&mut out, &d.removed);
        put_rrs(&mut out, &d.added);
    }
    let sum = ring::digest::digest(&ring::digest::SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    out
}

/// A reader over a file's bytes; every read is bounded by what is left.
struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], &'static str> {
        if n > self.0.len() {
            return Err("truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn rr(&mut self) -> Result<Rr, &'static str> {
        let n = self.u32()? as usize;
        let owner = self.take(n)?.into();
        let n = self.u32()? as usize;
        let tail: Box<[u8]> = self.take(n)?.into();
        if tail.len() < 10 {
            return Err("a record too short");
        }
        Ok(Rr { owner, tail })
    }
    fn rrs(&mut self) -> Result<Vec<Rr>, &'static str> {
        let n = self.u32()? as usize;
        // Each record takes at least 18 bytes: a count larger than what is
        // left is a corrupt file, not an allocation.
        if n > self.0.len() / 18 {
            return Err("a count larger than the file");
        }
        (0..n).map(|_| self.rr()).collect()
    }
}

fn read(path: &Path) -> Result<Saved, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE {
        return Err(format!("larger than {MAX_FILE} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    decode(&bytes).map_err(str::to_string)
}

fn decode(bytes: &[u8]) -> Result<Saved, &'static str> {
    if !bytes.starts_with(MAGIC) {
        return Err("not a signpost journal file");
    }
    let Some(body_len) = bytes.len().checked_sub(32) else {
        return Err("truncated");
    };
    let (body, sum) = bytes.split_at(body_len);
    let want = ring::digest::digest(&ring::digest::SHA256, body);
    if !crate::secret::same(want.as_ref(), sum) {
        return Err("its checksum does not match: truncated or corrupt");
    }
    let mut r = Reader(&body[MAGIC.len()..]);
    let n = r.take(1)?[0] as usize;
    let origin = Name::from_wire(r.take(n)?).ok_or("a malformed zone name")?;
    let print = r.u64()?;
    let serial = r.u32()?;
    let digest = r.u64()?;
    let count = r.u32()? as usize;
    if count > r.0.len() / 40 {
        return Err("a count larger than the file");
    }
    let mut diffs = Vec::with_capacity(count);
    for _ in 0..count {
        let from_soa = r.rr()?;
        let to_soa = r.rr()?;
        let removed = r.rrs()?;
        let added = r.rrs()?;
        if from_soa.soa_serial().is_none() || to_soa.soa_serial().is_none() {
            return Err("a difference without its SOAs");
        }
        diffs.push(Diff {
            from_soa,
            to_soa,
            removed,
            added,
        });
    }
    if !r.0.is_empty() {
        return Err("bytes after the last difference");
    }
    Ok(Saved {
        origin,
        print,
        serial,
        digest,
        diffs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soa(serial: u32) -> Rr {
        let mut tail = vec![0, 6, 0, 1, 0, 0, 1, 44, 0, 30, 0, 0];
        tail.extend_from_slice(&serial.to_be_bytes());
        tail.extend_from_slice(&[0; 16]);
        Rr {
            owner: b"\x03geo\x07example\x00".as_slice().into(),
            tail: tail.into(),
        }
    }

    #[test]
    fn a_file_reads_back_and_any_damage_is_refused() {
        let origin = Name::parse("geo.example.", None).unwrap();
        let a = Rr {
            owner: b"\x03www\x03geo\x07example\x00".as_slice().into(),
            tail: vec![0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1].into(),
        };
        let d = Diff {
            from_soa: soa(1),
            to_soa: soa(2),
            removed: vec![],
            added: vec![a],
        };
        let bytes = encode(&origin, 7, 2, 9, [&d].into_iter());
        let s = decode(&bytes).unwrap();
        assert_eq!(
            (s.origin.clone(), s.print, s.serial, s.digest),
            (origin, 7, 2, 9)
        );
        assert_eq!(s.diffs.len(), 1);
        assert_eq!(s.diffs[0].added, d.added);
        assert_eq!(s.diffs[0].to_soa.soa_serial(), Some(2));
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 20] ^= 1;
        assert!(decode(&flipped).is_err());
        assert!(decode(b"garbage").is_err());
    }
}
