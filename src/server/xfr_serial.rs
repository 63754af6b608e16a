//! The served SOA serial follows the content: when a load changes what a zone
//! holds (its records, or the endpoints of its steered names) and the file's
//! serial did not go up (RFC 1982), the served serial is the last one served
//! plus one. Secondaries then see the change, as a serial that went up.
//!
//! The serials served are remembered per zones folder and origin for the life of
//! the process; with `[transfer] journal_dir` they are also written to disk and
//! put back before the first load (`server::xfr_journal`), so that a restart
//! does not serve a serial older than one secondaries saw. The loader calls
//! [`follow_content`] before the zones are signed, so the SOA's RRSIG, the fast
//! table and transfers all carry the served serial.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHasher};

use crate::policy::ZoneSteering;
use crate::zone::{name, rtype, Name, RRset, Zone};

/// Content fingerprint and serial last served, by (zones folder, origin).
type Served = FxHashMap<(PathBuf, Name), (u64, u32)>;

static SERVED: Mutex<Option<Served>> = Mutex::new(None);

/// What was last served of `origin` under `zones_dir`: (fingerprint, serial).
pub(crate) fn served(zones_dir: &Path, origin: &Name) -> Option<(u64, u32)> {
    let served = SERVED.lock().ok()?;
    served
        .as_ref()?
        .get(&(zones_dir.to_path_buf(), origin.clone()))
        .copied()
}

/// Puts back what a previous run served (from its journal file), unless this
/// run has loaded the zone already.
pub(crate) fn remember(zones_dir: &Path, origin: &Name, print: u64, serial: u32) {
    if let Ok(mut served) = SERVED.lock() {
        served
            .get_or_insert_with(Default::default)
            .entry((zones_dir.to_path_buf(), origin.clone()))
            .or_insert((print, serial));
    }
}

/// A 64-bit finalizer (SplitMix64's), so that a sum of names' hashes does
/// not let one name's change cancel another's.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A fingerprint of what the zone serves, its SOA serial left out.
pub(crate) fn fingerprint(zone: &Zone, steering: Option<&ZoneSteering>) -> u64 {
    // The names in any order: each name's own hash, mixed, summed. Sorting
    // the names first was a tenth of a 100,000-record zone's load (and a
    // 16-byte entry per name beside it).
    let mut names = 0u64;
    for (owner, node) in &zone.nodes {
        let mut n = FxHasher::default();
        let mut buf = [0u8; crate::zone::name::MAX_NAME_LEN];
        owner.whole(&mut buf).hash(&mut n);
        node.steer().hash(&mut n);
        for set in &node.rrsets {
            set.rtype().hash(&mut n);
            set.ttl.hash(&mut n);
            for rd in set.rdatas().iter() {
                if set.rtype() == rtype::SOA {
                    soa_without_serial(rd).hash(&mut n);
                } else {
                    rd.hash(&mut n);
                }
            }
        }
        names = names.wrapping_add(mix(n.finish()));
    }
    let mut h = FxHasher::default();
    names.hash(&mut h);
    zone.nodes.len().hash(&mut h);
    if let Some(s) = steering {
        for p in &s.names {
            p.name.wire().hash(&mut h);
            p.ttl.hash(&mut h);
            p.strategy.kind().hash(&mut h);
            for e in &p.endpoints {
                e.region.hash(&mut h);
                e.weight.hash(&mut h);
                for set in [&e.a, &e.aaaa, &e.cname].into_iter().flatten() {
                    set.ttl.hash(&mut h);
                    for rd in set.rdatas().iter() {
                        rd.hash(&mut h);
                    }
                }
            }
        }
        for r in &s.policy.regions {
            r.name.hash(&mut h);
        }
    }
    h.finish()
}

fn soa_without_serial(rd: &[u8]) -> Vec<u8> {
    let mut v = rd.to_vec();
    let at = name::wire_name_len(rd).and_then(|m| Some(m + name::wire_name_len(&rd[m..])?));
    if let Some(at) = at {
        if let Some(s) = v.get_mut(at..at + 4) {
            s.fill(0);
        }
    }
    v
}

/// Sets the zone's serial: its SOA record, its negative-answer SOA and `serial`.
pub(crate) fn set_serial(zone: &mut Zone, serial: u32) {
    let origin = zone.origin.wire().to_vec();
    let Some(node) = zone.nodes.get_mut(&origin) else {
        return;
    };
    let Some(i) = node.rrsets.iter().position(|s| s.rtype() == rtype::SOA) else {
        return;
    };
    let old = &node.rrsets[i];
    let Some(rd) = old.rdatas().first() else {
        return;
    };
    let mut rd = rd.to_vec();
    let Some(at) = name::wire_name_len(&rd).and_then(|m| Some(m + name::wire_name_len(&rd[m..])?))
    else {
        return;
    };
    let Some(s) = rd.get_mut(at..at + 4) else {
        return;
    };
    s.copy_from_slice(&serial.to_be_bytes());
    let soa = RRset::new(
        rtype::nz::SOA,
        old.class(),
        old.ttl,
        vec![rd.into_boxed_slice()],
    );
    zone.negative_soa = soa.with_ttl(zone.negative_soa.ttl);
    node.rrsets[i] = soa;
    zone.serial = serial;
}

/// For each zone: when its content differs from what was last served under the
/// same folder and its file's serial is not past the last served one, serve the
/// last served serial plus one. Returns a line per zone whose serial was raised.
///
/// A zone that `signed` says is signed counts as changed at every load after
/// the first: each load signs it anew, and a secondary must take the new
/// signatures before the old ones expire.
pub(crate) fn follow_content(
    zones_dir: &Path,
    zones: &mut [Zone],
    steering: &[ZoneSteering],
    signed: impl Fn(&Zone) -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(mut served) = SERVED.lock() else {
        return lines;
    };
    let served = served.get_or_insert_with(Default::default);
    for (i, zone) in zones.iter_mut().enumerate() {
        let mut print = fingerprint(zone, steering.get(i));
        let key = (zones_dir.to_path_buf(), zone.origin.clone());
        let file_serial = zone.serial;
        if let Some(&(before, last)) = served.get(&key) {
            if signed(zone) {
                // New signatures: never the same content as before.
                print = before.wrapping_add(1);
            }
            if before != print && !super::xfr::serial_lt(last, file_serial) {
                let next = last.wrapping_add(1);
                set_serial(zone, next);
                lines.push(format!(
                    "zone {} changed but its file's serial {file_serial} did not pass {last}: serving serial {next}",
                    zone.origin
                ));
            } else if before == print && !super::xfr::serial_lt(last, file_serial) {
                // Unchanged: keep serving the serial served (a raised one stays).
                if last != file_serial {
                    set_serial(zone, last);
                }
            }
        }
        served.insert(key, (print, zone.serial));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(text: &str) -> Zone {
        use crate::zone::master::{parse_text, MasterOptions};
        let origin = Name::parse("serial.example.", None).unwrap();
        let opts = MasterOptions {
            origin: origin.clone(),
            default_ttl: None,
        };
        let (records, errors) = parse_text(text, Path::new("t.zone"), 1, Path::new("."), &opts);
        assert!(errors.is_empty());
        crate::zone::build::build_zone(&origin, Path::new("t.zone"), records)
            .unwrap()
            .0
    }

    const BASE: &str = "$TTL 300\n@ SOA ns hm 10 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n";

    #[test]
    fn the_fingerprint_follows_content_not_the_order_of_the_file() {
        let print = |text: &str| fingerprint(&zone(&format!("{BASE}{text}")), None);
        let a = print("a A 192.0.2.7\nb A 192.0.2.8\n");
        assert_eq!(a, print("b A 192.0.2.8\na A 192.0.2.7\n"));
        // The same records under each other's names, another TTL, one more.
        assert_ne!(a, print("a A 192.0.2.8\nb A 192.0.2.7\n"));
        assert_ne!(a, print("a 301 A 192.0.2.7\nb A 192.0.2.8\n"));
        assert_ne!(a, print("a A 192.0.2.7\nb A 192.0.2.8\nc A 192.0.2.8\n"));
        // The serial is not content.
        let other = fingerprint(
            &zone(&format!(
                "{}a A 192.0.2.7\nb A 192.0.2.8\n",
                BASE.replace(" 10 ", " 11 ")
            )),
            None,
        );
        assert_eq!(a, other);
    }

    #[test]
    fn serial_rises_when_content_changes_and_the_file_serial_does_not() {
        let dir = std::env::temp_dir().join(format!("serial-test-{}", std::process::id()));
        let mut z = vec![zone(BASE)];
        assert!(follow_content(&dir, &mut z, &[], |_| false).is_empty());
        assert_eq!(z[0].serial, 10);
        // Same content, same serial: nothing.
        let mut z = vec![zone(BASE)];
        follow_content(&dir, &mut z, &[], |_| false);
        assert_eq!(z[0].serial, 10);
        // A record more, serial unchanged: 11, in the SOA too.
        let mut z = vec![zone(&format!("{BASE}www A 192.0.2.2\n"))];
        let lines = follow_content(&dir, &mut z, &[], |_| false);
        assert_eq!(z[0].serial, 11, "{lines:?}");
        let soa = z[0]
            .nodes
            .get(z[0].origin.wire())
            .unwrap()
            .get(rtype::SOA)
            .unwrap();
        assert!(soa
            .rdatas()
            .first()
            .unwrap()
            .ends_with(&[0, 0, 0, 11, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]));
        // Reloaded unchanged: the raised serial stays.
        let mut z = vec![zone(&format!("{BASE}www A 192.0.2.2\n"))];
        follow_content(&dir, &mut z, &[], |_| false);
        assert_eq!(z[0].serial, 11);
        // The file's serial passes ours: the file's.
        let mut z = vec![zone(&format!(
            "{}www A 192.0.2.3\n",
            BASE.replace(" 10 ", " 20 ")
        ))];
        follow_content(&dir, &mut z, &[], |_| false);
        assert_eq!(z[0].serial, 20);
        // Signed: every load after the first is a change (new signatures).
        let mut z = vec![zone(&format!(
            "{}www A 192.0.2.3\n",
            BASE.replace(" 10 ", " 20 ")
        ))];
        follow_content(&dir, &mut z, &[], |_| true);
        assert_eq!(z[0].serial, 21);
    }
}
