//! The floors of docs/architecture.md, enforced: reads every `.rs` under `src/`,
//! collects the paths each file names into the crate (`crate::…`, `super::…`,
//! `self::…`, a child module's name, and `signpost::…` in the binary), and fails
//! on an arrow that points up a floor or closes a circle between sibling modules
//! (the top-level modules; the files of one directory, such as `server/`).
//!
//! `KNOWN` lists accepted violations, each with the move that will remove it; it is
//! empty, and the test fails on any violation not in it AND on any listed one that
//! no longer exists, so it can only shrink.
//!
//! Test code (`#[cfg(test)]` items, `tests.rs` files) is not counted: a test may
//! reach up to build its inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Floors, bottom up: an arrow may only point down (or stay on its floor).
/// The longest prefix of a module's path decides its floor.
const FLOORS: &[(&str, u8)] = &[
    // 1 wire and zone data
    ("zone", 1),
    // 2 where the client is
    ("geo", 2),
    // 3 the decision
    ("policy", 3),
    // 4 health, and measured latency beside it: samples in, a policy table out
    ("health", 4),
    ("latency", 4),
    // the real-user collector: a listener of its own
    ("latency::rum", 7),
    // 5 the answer: bytes in, bytes out, from a snapshot; no sockets
    ("answer", 5),
    // the counters the query path bumps, and their text (the admin endpoint serves it)
    ("metrics", 5),
    ("dnssec", 5),
    // 6 configuration
    ("config", 6),
    // 7 transports
    ("server", 7),
    // 8 the application
    ("app", 8),
    // `signpost serve`: starts and stops the rest of the application
    ("serve", 8),
    ("reload", 8),
    ("fleet", 8),
    ("rollout", 8),
    ("admin", 8),
    ("malloc", 8),
    ("secondary", 8),
    ("main", 8),
    // shared grammars and helpers that name nothing else in the crate
    ("units", 1),
    ("sys", 1),
    ("clock", 1),
    ("secret", 1),
];

/// Known violations, "up: from -> to" (an arrow pointing up a floor, between
/// files' modules) or "cycle: from -> to" (an arrow inside a circle of sibling
/// modules). Each names the move that will remove it. Only shrink this list.
const KNOWN: &[&str] = &[];

fn floor(module: &str) -> Option<u8> {
    FLOORS
        .iter()
        .filter(|(prefix, _)| {
            module == *prefix
                || (module.starts_with(prefix) && module[prefix.len()..].starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|&(_, f)| f)
}

/// Source with comments, string and char literals blanked out (newlines kept).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // raw string r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == '#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == '"' {
                j += 1;
                loop {
                    if j >= b.len() {
                        break;
                    }
                    if b[j] == '"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    if b[j] == '\n' {
                        out.push('\n');
                    }
                    j += 1;
                }
                out.push_str("\"\"");
                i = j;
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if next == Some('\\') {
                i += 2;
                while i < b.len() && b[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Blanks out `#[cfg(test)]` items: a `mod x;`, or up to the end of the next
/// brace block (or `;` before any brace).
fn strip_test_items(src: &str) -> String {
    let mut out = src.to_string();
    let pat = "#[cfg(test)]";
    let mut from = 0;
    while let Some(pos) = out[from..].find(pat).map(|p| p + from) {
        let bytes = out.as_bytes();
        let mut j = pos + pat.len();
        let mut depth = 0usize;
        while j < bytes.len() {
            match bytes[j] {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let blank: String = out[pos..j]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(pos..j, &blank);
        from = pos + blank.len();
    }
    out
}

/// Expands a path starting at `s` (just after its first `::`-joined head) into
/// leaf paths: `a::{b, c::{d, self}}` -> [a::b, a::c::d, a::c].
fn expand(s: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        skip_ws(s, i);
        if *i < s.len() && s[*i] == '{' {
            *i += 1;
            loop {
                skip_ws(s, i);
                if *i >= s.len() {
                    return;
                }
                if s[*i] == '}' {
                    *i += 1;
                    return;
                }
                if s[*i] == ',' {
                    *i += 1;
                    continue;
                }
                let before = *i;
                expand(s, i, path.clone(), out);
                if *i == before {
                    *i += 1;
                }
            }
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if *i == start {
            if s.get(*i) == Some(&'*') {
                *i += 1;
            }
            out.push(path);
            return;
        }
        let seg: String = s[start..*i].iter().collect();
        if seg != "self" || path.is_empty() {
            // (`a::{self}` is `a`)
            path.push(seg);
        }
        skip_ws(s, i);
        if s.get(*i) == Some(&':') && s.get(*i + 1) == Some(&':') {
            *i += 2;
            continue;
        }
        // `x as alias`: the alias is not a segment
        if s.get(*i) == Some(&'a')
            && s.get(*i + 1) == Some(&'s')
            && s.get(*i + 2).is_some_and(|c| c.is_whitespace())
        {
            *i += 2;
            skip_ws(s, i);
            while *i < s.len() && is_ident(s[*i]) {
                *i += 1;
            }
        }
        out.push(path);
        return;
    }
}

fn skip_ws(s: &[char], i: &mut usize) {
    while *i < s.len() && s[*i].is_whitespace() {
        *i += 1;
    }
}

struct File {
    /// module path, "" for the library root, "main" for the binary
    module: String,
    /// lib or bin
    bin: bool,
    text: Vec<char>,
}

fn module_of(rel: &Path) -> (String, bool) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let mut parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    if parts == ["main"] {
        return ("main".into(), true);
    }
    if parts == ["ctl"] {
        return ("main::ctl".into(), true);
    }
    if parts == ["lib"] {
        return (String::new(), false);
    }
    if parts.last() == Some(&"mod") {
        parts.pop();
    }
    (parts.join("::"), false)
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}::{child}")
    }
}

fn parent(module: &str) -> String {
    match module.rfind("::") {
        Some(p) => module[..p].to_string(),
        None if module.is_empty() => String::new(),
        None => String::new(),
    }
}

struct Tree {
    files: Vec<File>,
    modules: BTreeSet<String>,
    /// (module, name) -> module the name is re-exported from
    reexports: BTreeMap<(String, String), Vec<String>>,
}

impl Tree {
    fn load() -> Tree {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("read src/") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let rel = path.strip_prefix(&root).expect("under src/");
                    if rel.file_name().is_some_and(|n| n == "tests.rs") {
                        continue;
                    }
                    // generated protobuf code names only itself
                    if rel.starts_with("fleet/etcd/pb") {
                        continue;
                    }
                    let src = std::fs::read_to_string(&path).expect("read source");
                    let (module, bin) = module_of(rel);
                    let text = strip_test_items(&strip(&src)).chars().collect();
                    files.push(File { module, bin, text });
                }
            }
        }
        files.sort_by(|a, b| a.module.cmp(&b.module));
        let mut modules: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
        modules.insert("fleet::etcd::pb".into());
        let mut tree = Tree {
            files,
            modules,
            reexports: BTreeMap::new(),
        };
        // re-exports: `pub use x::{A, B}` and `pub(crate) use crate::y::C`
        let mut reexports = BTreeMap::new();
        for f in &tree.files {
            let s = &f.text;
            let text: String = s.iter().collect();
            for (pos, _) in text.match_indices("use ") {
                if text[..pos].chars().next_back().is_some_and(is_ident) {
                    continue;
                }
                let line_start = text[..pos].rfind('\n').map_or(0, |p| p + 1);
                let head = text[line_start..pos].trim();
                if !head.starts_with("pub") {
                    continue;
                }
                let start = text[..pos].chars().count() + 4;
                let mut i = start;
                let mut leaves = Vec::new();
                expand(s, &mut i, Vec::new(), &mut leaves);
                for leaf in leaves {
                    let Some(name) = leaf.last() else { continue };
                    if let Some(target) = tree.resolve_path(f, &leaf, false) {
                        reexports.insert((f.module.clone(), name.clone()), target);
                    }
                }
            }
        }
        tree.reexports = reexports;
        tree
    }

    /// The module a path names, as segments from `file` (`crate`, `super`,
    /// `self`, `signpost` or a child module first).
    fn resolve_path(&self, file: &File, path: &[String], follow: bool) -> Option<Vec<String>> {
        let (mut current, rest): (String, &[String]) = match path.first()?.as_str() {
            "crate" if file.bin => ("main".into(), &path[1..]),
            "crate" | "signpost" => (String::new(), &path[1..]),
            "super" => {
                let mut m = parent(&file.module);
                let mut rest = &path[1..];
                while rest.first().is_some_and(|s| s == "super") {
                    m = parent(&m);
                    rest = &rest[1..];
                }
                (m, rest)
            }
            "self" => (file.module.clone(), &path[1..]),
            first => {
                let child = join(&file.module, first);
                if !file.module.is_empty() && self.modules.contains(&child) {
                    (file.module.clone(), path)
                } else {
                    return None;
                }
            }
        };
        let mut rest = rest;
        while let Some(seg) = rest.first() {
            let child = if file.bin && current == "main" && seg != "ctl" {
                // the binary's `signpost::x` is handled above; `crate::x` in
                // the binary stays in main unless it is `ctl`
                break;
            } else {
                join(&current, seg)
            };
            if self.modules.contains(&child) {
                current = child;
                rest = &rest[1..];
            } else if follow {
                match self.reexports.get(&(current.clone(), seg.clone())) {
                    Some(target) => {
                        current = target.join("::");
                        // the re-exported item is the leaf: stop here
                        break;
                    }
                    None => break,
                }
            } else {
                break;
            }
        }
        let _ = rest;
        Some(current.split("::").map(str::to_string).collect())
    }

    /// Every arrow, (from module, to module), between different modules.
    fn arrows(&self) -> BTreeSet<(String, String)> {
        let mut arrows = BTreeSet::new();
        for f in &self.files {
            let s = &f.text;
            let mut i = 0;
            while i < s.len() {
                if !is_ident(s[i]) || (i > 0 && (is_ident(s[i - 1]) || s[i - 1] == ':')) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < s.len() && is_ident(s[i]) {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let mut j = i;
                skip_ws(s, &mut j);
                if !(s.get(j) == Some(&':') && s.get(j + 1) == Some(&':')) {
                    continue;
                }
                let anchored = matches!(word.as_str(), "crate" | "super" | "self")
                    || (f.bin && word == "signpost")
                    || (!f.module.is_empty() && self.modules.contains(&join(&f.module, &word)));
                if !anchored {
                    continue;
                }
                j += 2;
                let mut leaves = Vec::new();
                expand(s, &mut j, vec![word], &mut leaves);
                i = j.max(i);
                for leaf in leaves {
                    if let Some(target) = self.resolve_path(f, &leaf, true) {
                        let target = target.join("::");
                        if target != f.module && !target.is_empty() {
                            arrows.insert((f.module.clone(), target));
                        }
                    }
                }
            }
        }
        arrows
    }
}

/// The sibling each side of an arrow falls under, at every directory level
/// where the two differ: `server::fast -> server::handler` gives
/// (server, fast, handler); `config::server -> server::rrl` gives ("", config, server).
fn sibling_edge(from: &str, to: &str) -> Option<(String, String, String)> {
    let a: Vec<&str> = from.split("::").collect();
    let b: Vec<&str> = to.split("::").collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    // an arrow to or from the parent itself (its mod.rs) is not between siblings
    if common >= a.len() || common >= b.len() {
        return None;
    }
    Some((a[..common].join("::"), a[common].into(), b[common].into()))
}

/// Edges inside a strongly connected component of more than one node.
fn cycle_edges(edges: &BTreeSet<(String, String)>) -> BTreeSet<(String, String)> {
    // reachability by repeated search: the graphs are small
    let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(n) = stack.pop() {
            for (a, b) in edges {
                if *a == n && seen.insert(b.clone()) {
                    stack.push(b.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = nodes.iter().map(|n| (*n, reach(n))).collect();
    edges
        .iter()
        .filter(|(a, b)| reach[b].contains(a))
        .cloned()
        .collect()
}

fn violations(tree: &Tree) -> (BTreeSet<String>, Vec<String>) {
    let arrows = tree.arrows();
    let mut found = BTreeSet::new();
    let mut unplaced = Vec::new();
    for m in &tree.modules {
        if !m.is_empty() && floor(m).is_none() && m != "fleet::etcd::pb" {
            unplaced.push(m.clone());
        }
    }
    for (from, to) in &arrows {
        if from.is_empty() {
            continue; // lib.rs declares the modules
        }
        if let (Some(a), Some(b)) = (floor(from), floor(to)) {
            if b > a {
                found.insert(format!("up: {from} -> {to}"));
            }
        }
    }
    // circles between siblings, per directory
    let mut per_dir: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (from, to) in &arrows {
        if from.is_empty() {
            continue;
        }
        if let Some((dir, a, b)) = sibling_edge(from, to) {
            per_dir.entry(dir).or_default().insert((a, b));
        }
    }
    for (dir, edges) in &per_dir {
        for (a, b) in cycle_edges(edges) {
            found.insert(format!("cycle: {} -> {}", join(dir, &a), join(dir, &b)));
        }
    }
    (found, unplaced)
}

#[test]
fn arrows_point_down() {
    let tree = Tree::load();
    let (found, unplaced) = violations(&tree);
    assert!(
        unplaced.is_empty(),
        "modules with no floor in tests/layers.rs FLOORS: {unplaced:?}"
    );
    let known: BTreeSet<String> = KNOWN.iter().map(|s| s.to_string()).collect();
    assert_eq!(known.len(), KNOWN.len(), "KNOWN lists an entry twice");
    let new: Vec<&String> = found.difference(&known).collect();
    let gone: Vec<&String> = known.difference(&found).collect();
    let mut msg = String::new();
    for v in &new {
        msg.push_str(&format!("\n  new violation:  \"{v}\","));
    }
    for v in &gone {
        msg.push_str(&format!("\n  gone (remove it from KNOWN): \"{v}\","));
    }
    assert!(new.is_empty() && gone.is_empty(), "layers:{msg}");
}

/// The reader itself: it sees `use` groups, `super::`, child modules and
/// re-exports, and not comments, strings or test code.
#[test]
fn reader_sees_paths() {
    let tree = Tree::load();
    let f = File {
        module: "zone::master".into(),
        bin: false,
        text: strip_test_items(&strip(
            "use crate::{geo::{self, cidr::IpNet}, policy};\n\
             // use crate::admin::X;\n\
             let s = \"crate::fleet::x\";\n\
             fn f() { super::rdata::parse(); crate::health::CheckSpec::new(); }\n\
             #[cfg(test)]\nmod tests { use crate::app::X; }\n",
        ))
        .chars()
        .collect(),
    };
    let tree2 = Tree {
        files: vec![f],
        modules: tree.modules.clone(),
        reexports: tree.reexports.clone(),
    };
    let got: BTreeSet<String> = tree2
        .arrows()
        .into_iter()
        .map(|(a, b)| format!("{a} -> {b}"))
        .collect();
    let want: BTreeSet<String> = [
        "zone::master -> geo",
        "zone::master -> geo::cidr",
        "zone::master -> policy",
        "zone::master -> zone::rdata",
        "zone::master -> health",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // `health::CheckSpec` is re-exported from health::spec
    let want: BTreeSet<String> = want
        .into_iter()
        .map(|s| s.replace("-> health", "-> health::spec"))
        .collect();
    assert_eq!(got, want);
    let (found, _) = violations(&tree2);
    assert!(found.contains("up: zone::master -> policy"), "{found:?}");
}
