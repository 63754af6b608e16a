//! The value grammars every table of the config shares: durations, TTLs,
//! quorums, and where a key's line is. Below the tables (they all use it; it uses
//! none of them), so the table files do not name one another for a helper.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{line_of, ConfigError};
use crate::health::Quorum;
use crate::zone::{master, Invalid};

/// Parses durations like "30s", "500ms", "2m", "1h", "1m30s" (the grammar of
/// `crate::units`, which TTLs share); a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, Invalid> {
    parse_duration_text(s).map_err(Invalid)
}

fn parse_duration_text(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let not_one = || format!("{s:?} is not a duration like \"5s\", \"500ms\" or \"1m30s\"");
    let mut secs = 0.0;
    for t in crate::units::terms(s).ok_or_else(not_one)? {
        let v: f64 = t.number.parse().map_err(|_| not_one())?;
        secs += crate::units::seconds(v, t.unit)
            .ok_or_else(|| format!("{s:?}: unknown unit {:?}; use ms, s, m, h, d or w", t.unit))?;
    }
    if !(0.0..=86400.0 * 365.0).contains(&secs) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A TTL written as seconds or with units ("1h", "30m").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TtlValue {
    Seconds(i64),
    Text(String),
}

impl TtlValue {
    pub fn seconds(&self) -> Result<u32, Invalid> {
        match self {
            TtlValue::Seconds(s) if (0..=i64::from(i32::MAX)).contains(s) => Ok(*s as u32),
            TtlValue::Seconds(s) => Err(Invalid(format!(
                "{s} is not a TTL; use 0 to 2147483647 seconds (RFC 2181 §8)"
            ))),
            TtlValue::Text(t) => master::parse_ttl(t),
        }
    }
}

/// What `quorum` may be, for error messages.
pub(crate) const QUORUM_FORMS: &str =
    "use a count of instances (1, 2, ...) or a share (\"50%\" or 0.5)";

/// `quorum` in `[fleet]` or a check: a count (integer from 1), a share (a
/// float in (0, 1]) or a percentage ("50%").
pub(crate) fn parse_quorum(v: &toml::Value) -> Option<Quorum> {
    let share = |s: f64| {
        (s > 0.0 && s <= 1.0).then(|| Quorum::Permille((s * 1000.0).round().max(1.0) as u16))
    };
    match v {
        toml::Value::Integer(n) if *n >= 1 => u32::try_from(*n).ok().map(Quorum::Count),
        toml::Value::Float(f) => share(*f),
        toml::Value::String(s) => {
            share(s.trim().strip_suffix('%')?.trim().parse::<f64>().ok()? / 100.0)
        }
        _ => None,
    }
}

/// A secret's text, trimmed, from a file no other user may read.
pub(super) fn read_secret_file(key: &str, path: &Path) -> Result<String, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(format!(
                "{key} {} is readable by every user: chmod o-r it",
                path.display()
            ));
        }
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{key} {}: want one line of printable characters",
            path.display()
        ));
    }
    Ok(t.to_string())
}

/// The table's name, the text (for lines), the file, and the errors found
/// so far: one helper per kind of value, each error at its value's line.
/// Shared by the tables checked value by value (`[probes]`, `[rum]`, `[fleet]`,
/// `[tls]`/`[dot]`/`[doh]`).
pub(super) struct Cx<'a> {
    pub(super) table: &'static str,
    pub(super) text: &'a str,
    pub(super) path: &'a Path,
    pub(super) errors: &'a mut Vec<ConfigError>,
}

impl Cx<'_> {
    pub(super) fn err(&mut self, start: usize, m: String) {
        self.errors
            .push(ConfigError::new(self.path, line_of(self.text, start), m));
    }

    /// A duration within `(min, max)`, else `default` and an error.
    pub(super) fn duration(
        &mut self,
        v: Option<toml::Spanned<String>>,
        key: &str,
        (min, max): (Duration, Duration),
        default: Duration,
    ) -> Duration {
        let fits = |d: Duration| d >= min && d <= max;
        let wanted = || format!("from {min:?} to {max:?}");
        self.duration_where(v, key, default, fits, wanted)
    }

    /// A duration of at least `min`, else `default` and an error.
    pub(super) fn duration_at_least(
        &mut self,
        v: Option<toml::Spanned<String>>,
        key: &str,
        default: Duration,
        min: Duration,
    ) -> Duration {
        let wanted = || format!("of at least {min:?}, like \"5s\"");
        self.duration_where(v, key, default, |d| d >= min, wanted)
    }

    /// A duration that `fits`, else `default` and an error asking for a
    /// duration `wanted`.
    fn duration_where(
        &mut self,
        v: Option<toml::Spanned<String>>,
        key: &str,
        default: Duration,
        fits: impl Fn(Duration) -> bool,
        wanted: impl Fn() -> String,
    ) -> Duration {
        let Some(v) = v else { return default };
        match parse_duration(v.get_ref()) {
            Ok(d) if fits(d) => d,
            _ => {
                let m = format!(
                    "{}.{key} = {:?}: use a duration {}",
                    self.table,
                    v.get_ref(),
                    wanted()
                );
                self.err(v.span().start, m);
                default
            }
        }
    }

    /// A finite number within `(min, max)`; `what` says what it counts.
    pub(super) fn real(
        &mut self,
        v: Option<toml::Spanned<f64>>,
        key: &str,
        (min, max): (f64, f64),
        what: &str,
    ) -> Option<f64> {
        let v = v?;
        let x = *v.get_ref();
        if x.is_finite() && (min..=max).contains(&x) {
            return Some(x);
        }
        self.err(
            v.span().start,
            format!("{}.{key} = {x}: use {what}{min} to {max}", self.table),
        );
        None
    }

    /// A whole number within `(min, max)`; `why` follows the range in the error.
    pub(super) fn whole(
        &mut self,
        v: Option<toml::Spanned<i64>>,
        key: &str,
        (min, max): (i64, i64),
        why: &str,
    ) -> Option<i64> {
        let v = v?;
        let x = *v.get_ref();
        if (min..=max).contains(&x) {
            return Some(x);
        }
        self.err(
            v.span().start,
            format!("{}.{key} = {x}: use {min} to {max}{why}", self.table),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_out_of_range_are_refused_at_their_line_with_the_default_kept() {
        let text = "a = \"1s\"\nb = \"90s\"\nc = \"2s\"\nd = \"soon\"\n";
        #[derive(Deserialize)]
        struct T {
            a: toml::Spanned<String>,
            b: toml::Spanned<String>,
            c: toml::Spanned<String>,
            d: toml::Spanned<String>,
        }
        let t: T = toml::from_str(text).expect("toml");
        let mut errors = Vec::new();
        let mut cx = Cx {
            table: "probes",
            text,
            path: Path::new("s.toml"),
            errors: &mut errors,
        };
        let (s, def) = (Duration::from_secs(1), Duration::from_secs(7));
        let range = (s, Duration::from_secs(60));
        assert_eq!(cx.duration(Some(t.a), "a", range, def), s);
        assert_eq!(cx.duration(Some(t.b), "b", range, def), def);
        assert_eq!(cx.duration(None, "x", range, def), def);
        assert_eq!(
            cx.duration_at_least(Some(t.c), "c", def, s),
            Duration::from_secs(2)
        );
        assert_eq!(cx.duration_at_least(Some(t.d), "d", def, s), def);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "s.toml:2: probes.b = \"90s\": use a duration from 1s to 60s",
                "s.toml:4: probes.d = \"soon\": use a duration of at least 1s, like \"5s\"",
            ]
        );
    }
}
