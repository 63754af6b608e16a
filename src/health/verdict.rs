//! Verdicts pushed by the operator's own monitoring: "region:eu-west is down",
//! each for a limited time.
//!
//! A pushed verdict is an input beside the probes, not an operator override: a
//! live "down" takes the region or endpoint out of answers as a failed check
//! would, a live "up" cancels an earlier "down" before its expiry, and an
//! operator's override (force-up, drain) still has the last word. Every verdict
//! carries an expiry ([`MAX_TTL`] at most): a pusher that dies stops counting
//! once its last verdict runs out, so it cannot freeze a state.
//!
//! Invariants: at most [`MAX_VERDICTS`] names are held (the caller also refuses
//! names the configuration does not know); `expire` removes exactly the verdicts
//! whose time is up; nothing here reads a clock (every call is given `now`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::state::Health;

/// The longest a pushed verdict lasts: monitoring that means it pushes again.
pub const MAX_TTL: Duration = Duration::from_secs(3600);
/// The shortest: below a second, a verdict would run out before a query saw it.
pub const MIN_TTL: Duration = Duration::from_secs(1);
/// Names held at once.
pub const MAX_VERDICTS: usize = 4096;
/// The longest `source` note kept with a verdict.
pub const MAX_SOURCE: usize = 64;

/// One pushed verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub health: Health,
    pub at: SystemTime,
    pub until: SystemTime,
    /// Who pushed it, as the pusher says (`alertmanager`, a script's name).
    pub source: String,
}

impl Pushed {
    /// As the fleet stores it (`verdicts/TARGET`): `down|up AT_MS UNTIL_MS SOURCE`,
    /// times in milliseconds since the Unix epoch.
    pub fn stored(&self) -> String {
        let ms = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        };
        format!(
            "{} {} {} {}",
            self.health,
            ms(self.at),
            ms(self.until),
            self.source
        )
        .trim_end()
        .to_string()
    }

    /// Reads [`Pushed::stored`]'s form: outside input, checked whole (a verdict,
    /// an expiry after its push and at most [`MAX_TTL`] later, a short printable
    /// source). No clock: an expired one is read, and counts for nothing.
    pub fn from_stored(v: &str) -> Result<Pushed, String> {
        let mut parts = v.splitn(4, ' ');
        let health = match parts.next() {
            Some("down") => Health::Down,
            Some("up") => Health::Up,
            _ => return Err("a verdict is `down|up AT_MS UNTIL_MS [SOURCE]`".into()),
        };
        let mut time = || {
            parts
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
                .ok_or_else(|| "times: milliseconds since the Unix epoch".to_string())
        };
        let (at, until) = (time()?, time()?);
        let source = parts.next().unwrap_or("").to_string();
        match until.duration_since(at) {
            Ok(d) if !d.is_zero() && d <= MAX_TTL => {}
            _ => {
                return Err(format!(
                    "the expiry must come 1 ms to {MAX_TTL:?} after the push"
                ))
            }
        }
        if source.chars().count() > MAX_SOURCE || source.chars().any(char::is_control) {
            return Err(VerdictError::Source.to_string());
        }
        Ok(Pushed {
            health,
            at,
            until,
            source,
        })
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerdictError {
    #[error("ttl {0:?} is out of range; give 1s to 1h")]
    Ttl(Duration),
    #[error("{MAX_VERDICTS} verdicts are held already")]
    Full,
    #[error("source is over {MAX_SOURCE} characters or not printable text")]
    Source,
}

/// The pushed verdicts of one process, shared by every generation of the health
/// table.
#[derive(Debug, Default)]
pub struct Verdicts {
    held: Mutex<BTreeMap<String, Pushed>>,
    pushed: AtomicU64,
    expired: AtomicU64,
}

impl Verdicts {
    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Pushed>> {
        // Plain data: a panicked writer leaves at worst a verdict that expires.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `health` for `name` from `now` for `ttl`, replacing an earlier one.
    pub fn push(
        &self,
        name: &str,
        health: Health,
        ttl: Duration,
        source: &str,
        now: SystemTime,
    ) -> Result<Pushed, VerdictError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(VerdictError::Ttl(ttl));
        }
        if source.chars().count() > MAX_SOURCE || source.chars().any(char::is_control) {
            return Err(VerdictError::Source);
        }
        let mut held = self.held();
        if held.len() >= MAX_VERDICTS && !held.contains_key(name) {
            return Err(VerdictError::Full);
        }
        let p = Pushed {
            health,
            at: now,
            until: now + ttl,
            source: source.to_string(),
        };
        held.insert(name.to_string(), p.clone());
        self.pushed.fetch_add(1, Ordering::Relaxed);
        Ok(p)
    }

    /// Holds a verdict as another instance of the fleet pushed it (its own
    /// times), unless the same one is held; whether anything changed.
    pub fn put_shared(&self, name: &str, p: &Pushed) -> Result<bool, VerdictError> {
        if p.source.chars().count() > MAX_SOURCE || p.source.chars().any(char::is_control) {
            return Err(VerdictError::Source);
        }
        let mut held = self.held();
        if held.get(name) == Some(p) {
            return Ok(false);
        }
        if held.len() >= MAX_VERDICTS && !held.contains_key(name) {
            return Err(VerdictError::Full);
        }
        held.insert(name.to_string(), p.clone());
        Ok(true)
    }

    /// Every verdict held (live or not yet dropped), by name.
    pub fn all(&self) -> BTreeMap<String, Pushed> {
        self.held().clone()
    }

    /// Forgets `name`'s verdict; whether there was one.
    pub fn clear(&self, name: &str) -> bool {
        self.held().remove(name).is_some()
    }

    /// The verdict in force for `name` at `now`, if any.
    pub fn get(&self, name: &str, now: SystemTime) -> Option<Health> {
        self.held()
            .get(name)
            .filter(|p| p.until > now)
            .map(|p| p.health)
    }

    /// Every verdict in force at `now`, by name.
    pub fn live(&self, now: SystemTime) -> BTreeMap<String, Pushed> {
        self.held()
            .iter()
            .filter(|(_, p)| p.until > now)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect()
    }

    /// Removes the verdicts whose time is up at `now`; their names.
    pub fn expire(&self, now: SystemTime) -> Vec<String> {
        let mut held = self.held();
        let gone: Vec<String> = held
            .iter()
            .filter(|(_, p)| p.until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            held.remove(k);
        }
        self.expired.fetch_add(gone.len() as u64, Ordering::Relaxed);
        gone
    }

    /// Verdicts pushed since start.
    pub(crate) fn pushed_total(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Verdicts that ran out since start.
    pub(crate) fn expired_total(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_verdict_reads_back_and_bad_ones_are_refused() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let p = Pushed {
            health: Health::Down,
            at,
            until: at + Duration::from_secs(60),
            source: "alert manager".into(),
        };
        assert_eq!(Pushed::from_stored(&p.stored()), Ok(p.clone()));
        for bad in [
            "sideways 1 2",
            "down 1",
            "down x 2",
            "down 2000 1000",
            "down 1000 99999999",
            "up 1000 2000 \u{7}",
        ] {
            assert!(Pushed::from_stored(bad).is_err(), "{bad}");
        }
        let v = Verdicts::default();
        assert_eq!(v.put_shared("region:a", &p), Ok(true));
        assert_eq!(v.put_shared("region:a", &p), Ok(false));
        assert_eq!(v.get("region:a", at), Some(Health::Down));
    }

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        T0 + Duration::from_secs(s)
    }

    #[test]
    fn a_verdict_counts_until_its_expiry_then_is_gone() {
        let v = Verdicts::default();
        v.push(
            "region:eu-west",
            Health::Down,
            Duration::from_secs(30),
            "am",
            at(100),
        )
        .unwrap();
        assert_eq!(v.get("region:eu-west", at(129)), Some(Health::Down));
        assert_eq!(v.get("region:eu-west", at(130)), None);
        assert_eq!(v.live(at(129)).len(), 1);
        assert!(v.live(at(130)).is_empty());
        assert!(v.expire(at(129)).is_empty());
        assert_eq!(v.expire(at(130)), vec!["region:eu-west".to_string()]);
        assert_eq!((v.pushed_total(), v.expired_total()), (1, 1));
    }

    #[test]
    fn a_new_push_replaces_and_extends() {
        let v = Verdicts::default();
        v.push("r", Health::Down, Duration::from_secs(10), "", at(0))
            .unwrap();
        v.push("r", Health::Up, Duration::from_secs(10), "", at(5))
            .unwrap();
        assert_eq!(v.get("r", at(12)), Some(Health::Up));
        assert!(v.clear("r"));
        assert_eq!(v.get("r", at(12)), None);
    }

    #[test]
    fn bounds_are_kept() {
        let v = Verdicts::default();
        for ttl in [0, 3601] {
            assert_eq!(
                v.push("r", Health::Down, Duration::from_secs(ttl), "", at(0)),
                Err(VerdictError::Ttl(Duration::from_secs(ttl)))
            );
        }
        assert_eq!(
            v.push("r", Health::Down, MIN_TTL, "a\nb", at(0)),
            Err(VerdictError::Source)
        );
        for i in 0..MAX_VERDICTS {
            v.push(&format!("n{i}"), Health::Down, MIN_TTL, "", at(0))
                .unwrap();
        }
        assert_eq!(
            v.push("one more", Health::Down, MIN_TTL, "", at(0)),
            Err(VerdictError::Full)
        );
        // Replacing a held one is still fine.
        assert!(v.push("n0", Health::Up, MIN_TTL, "", at(0)).is_ok());
    }
}
