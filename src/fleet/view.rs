//! What an instance knows of the fleet's store: the keys under the prefix, parsed
//! and checked, and the combination of votes into a verdict. Pure: no I/O, no
//! clock, so every rule here is tested without an etcd.
//!
//! Keys, all under the configured prefix (default `/signpost/`):
//!
//! ```text
//! overrides/<target>              drain | force-up | force-down
//! weights/<target>                a whole number (0 drains)
//! dials/<target>                  a whole number from 0 to 100 (percent kept)
//! instances/<instance>            the instance's site (under its lease)
//! votes/<instance>/<check target> up | down (under the instance's lease)
//! verdicts/<target>               down|up AT_MS UNTIL_MS SOURCE (a pushed verdict)
//! ramps/<target>                  a ramp, JSON (see `rollout::Ramp::from_stored`)
//! drivers/ramps                   the instance driving the ramps (under its lease)
//! ```
//!
//! `<target>` is what `signpost ctl` and the admin API name: `region:NAME` or
//! `endpoint:FQDN/REGION`. `<check target>` is a probe target's stable key, as
//! `/status` shows it.

use std::collections::BTreeMap;

use crate::config::fleet::instance_name_ok;
use crate::health::{Health, Override, Quorum};

/// One key under the prefix, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Override(String),
    Weight(String),
    Dial(String),
    Instance(String),
    Vote {
        instance: String,
        target: String,
    },
    Ramp(String),
    Verdict(String),
    /// `drivers/ramps`: who drives the fleet's ramps.
    Driver,
}

/// A key and its value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Override(String, Override),
    Weight(String, u32),
    Dial(String, u8),
    Instance(String, String),
    Vote {
        instance: String,
        target: String,
        health: Health,
    },
    Ramp(String, crate::rollout::Ramp),
    Verdict(String, crate::health::Pushed),
    Driver(String),
}

/// Why a key or value was refused; the message names what would be valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad(pub String);

fn target_ok(s: &str) -> bool {
    s.strip_prefix("region:")
        .or_else(|| s.strip_prefix("endpoint:"))
        .is_some_and(|rest| !rest.is_empty())
}

/// Parses a key (without value: deletes carry none).
pub(crate) fn parse_key(prefix: &str, key: &[u8]) -> Result<Key, Bad> {
    let key = std::str::from_utf8(key).map_err(|_| Bad("key is not UTF-8".to_string()))?;
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| Bad(format!("not under the prefix {prefix:?}")))?;
    let (kind, name) = rest.split_once('/').ok_or_else(|| {
        Bad("use overrides/TARGET, weights/TARGET, dials/TARGET, instances/NAME or votes/NAME/TARGET".to_string())
    })?;
    match kind {
        "overrides" | "weights" | "dials" | "verdicts" if !target_ok(name) => Err(Bad(format!(
            "{name:?} is not region:NAME or endpoint:NAME/REGION"
        ))),
        "overrides" => Ok(Key::Override(name.to_string())),
        "weights" => Ok(Key::Weight(name.to_string())),
        "dials" => Ok(Key::Dial(name.to_string())),
        "verdicts" => Ok(Key::Verdict(name.to_string())),
        "ramps" if name.strip_prefix("region:").is_some_and(|r| !r.is_empty()) => {
            Ok(Key::Ramp(name.to_string()))
        }
        "ramps" => Err(Bad(format!("{name:?} is not region:NAME"))),
        "drivers" if name == "ramps" => Ok(Key::Driver),
        "instances" if instance_name_ok(name) => Ok(Key::Instance(name.to_string())),
        "votes" => match name.split_once('/') {
            Some((instance, target)) if instance_name_ok(instance) && !target.is_empty() => {
                Ok(Key::Vote {
                    instance: instance.to_string(),
                    target: target.to_string(),
                })
            }
            _ => Err(Bad(
                "a vote's key is votes/INSTANCE/TARGET, INSTANCE as [fleet] instance allows"
                    .to_string(),
            )),
        },
        "instances" => Err(Bad(format!(
            "{name:?} is not an instance name (letters, digits, '-', '_', '.')"
        ))),
        other => Err(Bad(format!(
            "{other:?}: use overrides/, weights/, dials/, instances/ or votes/"
        ))),
    }
}

/// Longest value taken: every valid one is a word, a number or a site name.
pub(crate) const MAX_VALUE: usize = 1024;

/// Parses a key and its value.
pub(crate) fn parse_entry(prefix: &str, key: &[u8], value: &[u8]) -> Result<Entry, Bad> {
    let k = parse_key(prefix, key)?;
    if let Key::Ramp(name) = k {
        return crate::rollout::Ramp::from_stored(value)
            .map(|r| Entry::Ramp(name, r))
            .map_err(|e| Bad(format!("ramp: {e}")));
    }
    if value.len() > MAX_VALUE {
        return Err(Bad(format!(
            "value of {} bytes; at most {MAX_VALUE}",
            value.len()
        )));
    }
    let v = std::str::from_utf8(value)
        .map_err(|_| Bad("value is not UTF-8".to_string()))?
        .trim();
    Ok(match k {
        Key::Override(name) => {
            let o = match v {
                "drain" => Override::Drain,
                "force-up" => Override::ForceUp,
                "force-down" => Override::ForceDown,
                _ => {
                    return Err(Bad(format!(
                        "value {v:?}: use drain, force-up or force-down (delete the key to clear)"
                    )))
                }
            };
            Entry::Override(name, o)
        }
        Key::Weight(name) => match v.parse::<u32>() {
            Ok(w) if w < u32::MAX => Entry::Weight(name, w),
            _ => {
                return Err(Bad(format!(
                    "weight {v:?}: use a whole number from 0 (drains) to {}",
                    u32::MAX - 1
                )))
            }
        },
        Key::Dial(name) => match v.parse::<u8>() {
            Ok(d) if d <= crate::policy::dial::FULL => Entry::Dial(name, d),
            _ => return Err(Bad(format!("dial {v:?}: use a whole number from 0 to 100"))),
        },
        Key::Instance(name) => Entry::Instance(name, v.to_string()),
        Key::Verdict(name) => match crate::health::Pushed::from_stored(v) {
            Ok(p) => Entry::Verdict(name, p),
            Err(e) => return Err(Bad(format!("verdict: {e}"))),
        },
        Key::Driver if instance_name_ok(v) => Entry::Driver(v.to_string()),
        Key::Driver => return Err(Bad(format!("driver {v:?} is not an instance name"))),
        // Read above, before the size cap of the other values.
        Key::Ramp(name) => return Err(Bad(format!("{name}: a ramp is JSON"))),
        Key::Vote { instance, target } => {
            let health = match v {
                "up" => Health::Up,
                "down" => Health::Down,
                _ => return Err(Bad(format!("vote {v:?}: use up or down"))),
            };
            Entry::Vote {
                instance,
                target,
                health,
            }
        }
    })
}

/// What changed with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Changed {
    /// An override, weight or dial: the health bridge must be refreshed.
    pub operator: bool,
    /// A vote or an instance: verdicts must be recomputed.
    pub votes: bool,
}

impl Changed {
    pub fn or(self, other: Changed) -> Changed {
        Changed {
            operator: self.operator || other.operator,
            votes: self.votes || other.votes,
        }
    }
}

/// One instance's vote as read, with the etcd lease it was written under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Vote {
    pub health: Health,
    pub lease: i64,
}

/// The store's state as this instance last read it.
///
/// A vote counts only while its instance is alive: its `instances/` entry is
/// present, under a lease, and the vote is under that same lease. etcd deletes
/// both when the lease ends; a vote written some other way (by hand, with no
/// lease or another one) would outlive its instance, so it is kept but not
/// counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct View {
    pub overrides: BTreeMap<String, Override>,
    pub weights: BTreeMap<String, u32>,
    pub dials: BTreeMap<String, u8>,
    /// Instance -> site.
    pub instances: BTreeMap<String, String>,
    /// Instance -> the lease its `instances/` entry is under (0: none).
    pub leases: BTreeMap<String, i64>,
    /// Check target -> instance -> its verdict.
    pub votes: BTreeMap<String, BTreeMap<String, Vote>>,
    /// Pushed verdicts, by target, with their own expiry.
    pub verdicts: BTreeMap<String, crate::health::Pushed>,
    /// The fleet's ramps, by target (`region:NAME`).
    pub ramps: BTreeMap<String, crate::rollout::Ramp>,
    /// The instance driving the ramps and the lease its key is under.
    pub driver: Option<(String, i64)>,
}

impl View {
    /// Takes in one entry, written under `lease` (0: none).
    pub fn put(&mut self, e: Entry, lease: i64) -> Changed {
        match e {
            Entry::Override(name, o) => {
                let changed = self.overrides.insert(name, o) != Some(o);
                Changed {
                    operator: changed,
                    votes: false,
                }
            }
            Entry::Weight(name, w) => {
                let changed = self.weights.insert(name, w) != Some(w);
                Changed {
                    operator: changed,
                    votes: false,
                }
            }
            Entry::Dial(name, d) => {
                let changed = self.dials.insert(name, d) != Some(d);
                Changed {
                    operator: changed,
                    votes: false,
                }
            }
            Entry::Instance(name, site) => {
                self.leases.insert(name.clone(), lease);
                self.instances.insert(name, site);
                Changed {
                    operator: false,
                    votes: true,
                }
            }
            Entry::Ramp(name, r) => {
                let changed = self.ramps.get(&name) != Some(&r);
                self.ramps.insert(name, r);
                Changed {
                    operator: changed,
                    votes: false,
                }
            }
            Entry::Verdict(name, p) => {
                let changed = self.verdicts.get(&name) != Some(&p);
                self.verdicts.insert(name, p);
                Changed {
                    operator: changed,
                    votes: false,
                }
            }
            Entry::Driver(instance) => {
                self.driver = Some((instance, lease));
                Changed::default()
            }
            Entry::Vote {
                instance,
                target,
                health,
            } => {
                let vote = Vote { health, lease };
                let changed =
                    self.votes.entry(target).or_default().insert(instance, vote) != Some(vote);
                Changed {
                    operator: false,
                    votes: changed,
                }
            }
        }
    }

    pub(crate) fn delete(&mut self, k: &Key) -> Changed {
        match k {
            Key::Override(name) => Changed {
                operator: self.overrides.remove(name).is_some(),
                votes: false,
            },
            Key::Weight(name) => Changed {
                operator: self.weights.remove(name).is_some(),
                votes: false,
            },
            Key::Dial(name) => Changed {
                operator: self.dials.remove(name).is_some(),
                votes: false,
            },
            Key::Ramp(name) => Changed {
                operator: self.ramps.remove(name).is_some(),
                votes: false,
            },
            Key::Verdict(name) => Changed {
                operator: self.verdicts.remove(name).is_some(),
                votes: false,
            },
            Key::Driver => {
                self.driver = None;
                Changed::default()
            }
            Key::Instance(name) => {
                self.leases.remove(name);
                Changed {
                    operator: false,
                    votes: self.instances.remove(name).is_some(),
                }
            }
            Key::Vote { instance, target } => {
                let mut changed = false;
                if let Some(by) = self.votes.get_mut(target) {
                    changed = by.remove(instance).is_some();
                    if by.is_empty() {
                        self.votes.remove(target);
                    }
                }
                Changed {
                    operator: false,
                    votes: changed,
                }
            }
        }
    }

    /// The votes for one check target that count: each under its instance's
    /// live lease (see [`View`]).
    pub(crate) fn live_votes<'a>(
        &'a self,
        target: &str,
    ) -> impl Iterator<Item = (&'a str, Health)> {
        self.votes
            .get(target)
            .into_iter()
            .flatten()
            .filter(|(instance, v)| {
                v.lease != 0 && self.leases.get(instance.as_str()) == Some(&v.lease)
            })
            .map(|(instance, v)| (instance.as_str(), v.health))
    }

    /// The verdict for one check target: this instance's own (`me`, `local`)
    /// with every other live instance's vote. Own votes read back from the
    /// store are not counted twice: `local` is fresher.
    pub fn verdict(&self, target: &str, me: &str, local: Health, quorum: Quorum) -> Health {
        let mut reporting = 1;
        let mut down = usize::from(local == Health::Down);
        for (instance, h) in self.live_votes(target) {
            if instance == me {
                continue;
            }
            reporting += 1;
            down += usize::from(h == Health::Down);
        }
        if quorum.is_down(down, reporting) {
            Health::Down
        } else {
            Health::Up
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/signpost/";

    fn entry(k: &str, v: &str) -> Result<Entry, Bad> {
        parse_entry(P, k.as_bytes(), v.as_bytes())
    }

    #[test]
    fn every_kind_of_key_parses() {
        assert_eq!(
            entry("/signpost/overrides/region:eu-west", "drain"),
            Ok(Entry::Override("region:eu-west".into(), Override::Drain))
        );
        assert_eq!(
            entry(
                "/signpost/weights/endpoint:www.geo.example.com./eu-west",
                "20"
            ),
            Ok(Entry::Weight(
                "endpoint:www.geo.example.com./eu-west".into(),
                20
            ))
        );
        assert_eq!(
            entry("/signpost/dials/region:eu-west", "30"),
            Ok(Entry::Dial("region:eu-west".into(), 30))
        );
        assert_eq!(
            entry("/signpost/instances/fra-1", "fra"),
            Ok(Entry::Instance("fra-1".into(), "fra".into()))
        );
        assert_eq!(
            entry(
                "/signpost/votes/fra-1/http:GET:/healthz@192.0.2.10:80",
                "down"
            ),
            Ok(Entry::Vote {
                instance: "fra-1".into(),
                target: "http:GET:/healthz@192.0.2.10:80".into(),
                health: Health::Down,
            })
        );
    }

    #[test]
    fn bad_keys_and_values_are_refused_with_a_reason() {
        for (k, v, says) in [
            ("/signpost/overrides/region:eu-west", "sideways", "drain"),
            ("/signpost/overrides/eu-west", "drain", "region:NAME"),
            ("/signpost/weights/region:eu-west", "-1", "whole number"),
            (
                "/signpost/weights/region:eu-west",
                "4294967295",
                "whole number",
            ),
            ("/signpost/weights/region:eu-west", "1.5", "whole number"),
            ("/signpost/dials/region:eu-west", "101", "0 to 100"),
            ("/signpost/dials/region:eu-west", "256", "0 to 100"),
            ("/signpost/dials/region:eu-west", "-1", "0 to 100"),
            ("/signpost/dials/eu-west", "10", "region:NAME"),
            ("/signpost/votes/fra-1/t", "maybe", "up or down"),
            ("/signpost/votes/fr a/t", "up", "INSTANCE"),
            ("/signpost/votes/fra-1", "up", "INSTANCE/TARGET"),
            ("/signpost/zones/x", "y", "overrides/"),
            ("/signpost/loose", "y", "overrides/"),
            ("/other/overrides/region:x", "drain", "prefix"),
        ] {
            match entry(k, v) {
                Err(Bad(m)) => assert!(m.contains(says), "{k} = {v}: {m}"),
                Ok(e) => panic!("{k} = {v} was taken as {e:?}"),
            }
        }
        assert!(parse_entry(P, b"/signpost/overrides/region:x", &[0xff]).is_err());
        // A valid value padded past the cap.
        let long = format!("drain{}", " ".repeat(MAX_VALUE));
        match entry("/signpost/overrides/region:x", &long) {
            Err(Bad(m)) => assert!(m.contains("at most 1024"), "{m}"),
            Ok(e) => panic!("a value of {} bytes was taken as {e:?}", long.len()),
        }
    }

    #[test]
    fn ramps_and_their_driver_are_read_and_checked() {
        let r = crate::rollout::Ramp::new(
            0,
            100,
            &[10, 100],
            std::time::Duration::from_secs(1),
            crate::rollout::OnFail::Hold,
        )
        .expect("ramp");
        let p = "/signpost/";
        let mut v = View::default();
        let e = parse_entry(p, b"/signpost/ramps/region:a", r.stored().as_bytes()).expect("ramp");
        assert!(v.put(e, 0).operator);
        assert_eq!(v.ramps.get("region:a"), Some(&r));
        assert!(parse_entry(p, b"/signpost/ramps/region:a", b"{\"dial\":3}").is_err());
        assert!(parse_entry(p, b"/signpost/ramps/endpoint:x/a", r.stored().as_bytes()).is_err());
        let e = parse_entry(p, b"/signpost/drivers/ramps", b"i1").expect("driver");
        v.put(e, 7);
        assert_eq!(v.driver, Some(("i1".to_string(), 7)));
        assert!(parse_entry(p, b"/signpost/drivers/ramps", b"no way").is_err());
        assert!(parse_key(p, b"/signpost/drivers/other").is_err());
        v.delete(&Key::Driver);
        assert_eq!(v.driver, None);
        assert!(v.delete(&Key::Ramp("region:a".into())).operator);
    }

    #[test]
    fn view_tracks_puts_and_deletes() {
        let mut v = View::default();
        let e = entry("/signpost/overrides/region:eu-west", "drain").unwrap();
        assert!(v.put(e.clone(), 0).operator);
        assert!(
            !v.put(e, 0).operator,
            "the same value again changes nothing"
        );
        let k = parse_key(P, b"/signpost/overrides/region:eu-west").unwrap();
        assert!(v.delete(&k).operator);
        assert!(v.overrides.is_empty());
        let vote = entry("/signpost/votes/b/t1", "down").unwrap();
        assert!(v.put(vote, 7).votes);
        let k = parse_key(P, b"/signpost/votes/b/t1").unwrap();
        assert!(v.delete(&k).votes);
        assert!(v.votes.is_empty());
    }

    #[test]
    fn verdicts_follow_the_quorum() {
        let mut v = View::default();
        for i in ["a", "b", "c"] {
            v.put(entry(&format!("/signpost/instances/{i}"), "").unwrap(), 7);
        }
        let vote = |v: &mut View, i: &str, h: &str| {
            v.put(entry(&format!("/signpost/votes/{i}/t"), h).unwrap(), 7);
        };
        let two = Quorum::Count(2);
        vote(&mut v, "b", "up");
        vote(&mut v, "c", "up");
        assert_eq!(v.verdict("t", "a", Health::Down, two), Health::Up);
        vote(&mut v, "b", "down");
        assert_eq!(v.verdict("t", "a", Health::Down, two), Health::Down);
        assert_eq!(v.verdict("t", "a", Health::Up, two), Health::Up);
        // Our own vote read back is not counted again.
        vote(&mut v, "a", "down");
        assert_eq!(v.verdict("t", "a", Health::Up, two), Health::Up);
        // Alone, an instance's own verdict decides.
        assert_eq!(v.verdict("other", "a", Health::Down, two), Health::Down);
    }

    #[test]
    fn votes_count_only_under_their_instances_live_lease() {
        let mut v = View::default();
        let put = |v: &mut View, k: &str, val: &str, lease: i64| {
            v.put(entry(k, val).unwrap(), lease);
        };
        let one = Quorum::Count(1);
        // b is alive under lease 7 and votes down under it: that counts.
        put(&mut v, "/signpost/instances/b", "fra", 7);
        put(&mut v, "/signpost/votes/b/t", "down", 7);
        assert_eq!(v.verdict("t", "a", Health::Up, one), Health::Down);
        // b's entry gone (its lease ended): its vote no longer counts.
        v.delete(&parse_key(P, b"/signpost/instances/b").unwrap());
        assert_eq!(v.verdict("t", "a", Health::Up, one), Health::Up);
        // A vote with no lease, or under another lease than its instance's.
        put(&mut v, "/signpost/instances/c", "ams", 8);
        put(&mut v, "/signpost/votes/c/t", "down", 0);
        assert_eq!(v.verdict("t", "a", Health::Up, one), Health::Up);
        put(&mut v, "/signpost/votes/c/t", "down", 9);
        assert_eq!(v.verdict("t", "a", Health::Up, one), Health::Up);
        put(&mut v, "/signpost/votes/c/t", "down", 8);
        assert_eq!(v.verdict("t", "a", Health::Up, one), Health::Down);
        // A vote from an instance that never had an entry.
        let mut w = View::default();
        put(&mut w, "/signpost/votes/ghost/t", "down", 5);
        assert_eq!(w.verdict("t", "a", Health::Up, one), Health::Up);
        assert_eq!(w.live_votes("t").count(), 0);
    }
}
