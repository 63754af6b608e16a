//! The manual holds together: every relative link in README.md, docs/ and
//! benches/RESULTS.md reaches a file that exists, and an anchor into a Markdown
//! file names one of its headings (GitHub's rule); every page of docs/ is
//! linked from somewhere; the README stays a five-minute read; and the man
//! pages `signpost man DIR` writes describe every flag `--help` shows.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const README_MAX_LINES: usize = 250;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, every .md under docs/, and benches/RESULTS.md, relative to the root.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p);
            }
        }
    }
    let r = root();
    let mut out = vec![r.join("README.md"), r.join("benches/RESULTS.md")];
    walk(&r.join("docs"), &mut out);
    out.into_iter()
        .map(|p| p.strip_prefix(&r).map(Path::to_path_buf).unwrap_or(p))
        .collect()
}

/// The text outside fenced code blocks and inline code spans, line by line
/// (a span's text is blanked, so columns stay where they were).
fn prose_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let mut s = String::with_capacity(line.len());
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
                s.push(' ');
            } else if in_code {
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        out.push((i + 1, s));
    }
    out
}

/// Every `[text](target)` and `![alt](target)` target, with its line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose_lines(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            // `[text](url "title")`
            let target = target.split_whitespace().next().unwrap_or("");
            out.push((n, target.to_string()));
            rest = &after[end + 1..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lowercased, markup and punctuation dropped
/// except '-' and '_', each space a '-'.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings; a repeated heading's later
/// anchors get -1, -2, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    let mut fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence || !line.starts_with('#') {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        let Some(title) = line[level..].strip_prefix(' ') else {
            continue;
        };
        if level > 6 {
            continue;
        }
        let base = slug(title);
        let n = seen.entry(base.clone()).or_insert(0);
        let anchor = if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        *n += 1;
        out.insert(anchor);
    }
    out
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Every broken relative link of the manual, as `file:line: target: why`; and
/// the files the links reach.
fn check_links() -> (Vec<String>, BTreeSet<PathBuf>) {
    let r = root();
    let mut broken = Vec::new();
    let mut reached = BTreeSet::new();
    let mut cache: HashMap<PathBuf, BTreeSet<String>> = HashMap::new();
    for page in pages() {
        let text = std::fs::read_to_string(r.join(&page))
            .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        for (line, target) in links(&text) {
            let at = format!("{}:{line}: {target}", page.display());
            if target.is_empty() {
                broken.push(format!("{at}: empty link"));
                continue;
            }
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if target.starts_with('/') {
                broken.push(format!("{at}: absolute path; make it relative to the page"));
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                normalize(&page.parent().unwrap_or(Path::new("")).join(path))
            };
            if !r.join(&file).exists() {
                broken.push(format!("{at}: {} does not exist", file.display()));
                continue;
            }
            reached.insert(file.clone());
            let Some(anchor) = anchor else { continue };
            if file.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let heads = cache.entry(file.clone()).or_insert_with(|| {
                anchors(&std::fs::read_to_string(r.join(&file)).unwrap_or_default())
            });
            if !heads.contains(anchor) {
                broken.push(format!(
                    "{at}: {} has no heading with the anchor #{anchor}",
                    file.display()
                ));
            }
        }
    }
    (broken, reached)
}

#[test]
fn slugs_follow_githubs_rule() {
    assert_eq!(
        slug("Fleet: one view across instances (etcd)"),
        "fleet-one-view-across-instances-etcd"
    );
    assert_eq!(
        slug("Encrypted transports (DoT, DoH)"),
        "encrypted-transports-dot-doh"
    );
    assert_eq!(
        slug("`signpost man` and man_pages"),
        "signpost-man-and-man_pages"
    );
    assert_eq!(slug("Logs and shutdown"), "logs-and-shutdown");
    let a = anchors("# A\n## Results\n```\n# not a heading\n```\n### Results\n#nope\n");
    let want: BTreeSet<String> = ["a", "results", "results-1"].map(String::from).into();
    assert_eq!(a, want);
    let l =
        links("see [x](a.md#b) and `[y](not.md)` and ![i](p.png \"t\")\n```\n[z](no.md)\n```\n");
    assert_eq!(l, vec![(1, "a.md#b".to_string()), (1, "p.png".to_string())]);
}

#[test]
fn every_relative_link_resolves() {
    let (broken, _) = check_links();
    assert!(
        broken.is_empty(),
        "{} broken link(s) in the manual:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn every_page_of_the_manual_is_linked() {
    let (_, reached) = check_links();
    let orphans: Vec<String> = pages()
        .into_iter()
        .filter(|p| p != Path::new("README.md") && !reached.contains(p))
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        orphans.is_empty(),
        "pages no other page links to: {}",
        orphans.join(", ")
    );
}

#[test]
fn readme_is_a_five_minute_read() {
    let text = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let n = text.lines().count();
    assert!(
        n < README_MAX_LINES,
        "README.md has {n} lines; keep it under {README_MAX_LINES} and move the rest into docs/"
    );
}

/// The long options `signpost ARGS --help` lists.
fn flags_in_help(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .args(args)
        .arg("--help")
        .output()
        .expect("running signpost --help");
    assert!(out.status.success(), "signpost {args:?} --help failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut flags = BTreeSet::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == '=' || c == '[') {
        if let Some(name) = word.strip_prefix("--") {
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if !name.is_empty() {
                flags.insert(name);
            }
        }
    }
    flags.into_iter().collect()
}

#[test]
fn man_pages_describe_every_flag() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_signpost"))
        .arg("man")
        .arg(&dir)
        .output()
        .expect("running signpost man");
    assert!(
        out.status.success(),
        "signpost man failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: &[(&str, &[&str])] = &[
        ("signpost.8", &[]),
        ("signpost-serve.8", &["serve"]),
        ("signpost-check.8", &["check"]),
        ("signpost-explain.8", &["explain"]),
        ("signpost-ctl.8", &["ctl"]),
        ("signpost-ctl-drain.8", &["ctl", "drain"]),
        ("signpost-ctl-weight.8", &["ctl", "weight"]),
        ("signpost-ctl-ds.8", &["ctl", "ds"]),
    ];
    for (page, args) in pages {
        let path = dir.join(page);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: not a man page"
        );
        assert!(text.contains(" 8 "), "{page}: not in section 8");
        let flags = flags_in_help(args);
        assert!(!flags.is_empty(), "signpost {args:?} --help lists no flags");
        for f in &flags {
            // roff writes a hyphen as \-
            let want = format!("\\-\\-{}", f.replace('-', "\\-"));
            assert!(text.contains(&want), "{page} does not mention --{f}");
        }
        if let Some(sub) = args.last() {
            let top = std::fs::read_to_string(dir.join(if args.len() == 1 {
                "signpost.8".to_string()
            } else {
                format!("signpost-{}.8", args[0])
            }))
            .unwrap_or_default();
            assert!(
                top.contains(&format!("\\-{sub}(8)")),
                "the page above {page} does not list it"
            );
        }
    }
    // The hidden `man` subcommand has no page of its own.
    assert!(!dir.join("signpost-man.8").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
