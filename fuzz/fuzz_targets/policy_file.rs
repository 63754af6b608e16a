//! Any text as a zone policy file: TOML into `PolicyRaw`, then compiled. No panic.
//!
//! The file sits in a folder of its own holding `example.test.zone` and
//! `measured/latency.toml`, so `zonefile` and `latency_table` can name real files.

#![no_main]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signpost::config::zones::{compile_policy, PolicyRaw};
use signpost_fuzz::{include_may_escape, repo};

/// The folder the fuzzed file is in: one per process, refreshed at start.
fn folder() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("signpost-fuzz-policy-{}", std::process::id()));
        let files = [
            ("example.test.zone", "tests/zones/core/example.test.zone"),
            ("measured/latency.toml", "zones/measured/latency.toml"),
        ];
        for (name, from) in files {
            let to = dir.join(name);
            let made = to
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::copy(repo().join(from), &to));
            if let Err(e) = made {
                panic!("fuzz fixture {}: {e}", to.display());
            }
        }
        dir
    })
}

/// A path that stays inside the folder: relative, no `..`. Anything else could be
/// `/dev/zero` (read forever) or a file that differs between machines.
fn inside(p: &str) -> bool {
    !p.contains('\\')
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(raw) = toml::from_str::<PolicyRaw>(&text) else {
        return;
    };
    let escapes = raw
        .zonefile
        .iter()
        .chain(&raw.latency_table)
        .any(|p| !inside(p.get_ref()))
        || raw
            .records
            .as_ref()
            .is_some_and(|r| include_may_escape(r.get_ref()));
    if escapes {
        return;
    }
    let path = folder().join("fuzz.toml");
    let _ = compile_policy(&text, &path, raw, 1);
});
