//! Golden scenarios: every `tests/scenarios/*.toml` names a zones folder and a list of
//! cases (a query and the exact response expected). One harness runs each case against
//! the real server over UDP and over TCP.
//!
//! A case:
//! ```toml
//! [[case]]
//! name = "exact A"
//! q = "www.example.test. A"          # name, type, optional class (IN default)
//! rd = true                          # optional header bits: rd, cd
//! edns = { payload = 1232, nsid = true, do = true, ecs = "198.51.100.0/24", version = 0 }
//! transport = "both"                 # udp | tcp | both (default)
//! rcode = "NOERROR"
//! flags = "qr aa rd"                 # every header flag that must be set, no more
//! answer = ["www.example.test. 3600 IN A 192.0.2.80"]
//! authority = []
//! additional = []                    # without the OPT record
//! ecs = "198.51.100.0/24/0"          # echoed ECS with its scope; "none" = absent
//! nsid = "text"                      # NSID expected; "none" = absent
//! opt = true                         # OPT present in the response or not
//! ```
//! Sections are compared in order, record by record, as hickory-proto prints them.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use common::{ask_tcp, ask_udp, Decoded, EdnsSpec, QuerySpec, Server};
use hickory_proto::rr::{DNSClass, RecordType};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    zones: String,
    config: Option<String>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    q: String,
    #[serde(default)]
    rd: bool,
    #[serde(default)]
    cd: bool,
    edns: Option<EdnsRaw>,
    transport: Option<String>,
    rcode: String,
    flags: String,
    #[serde(default)]
    answer: Vec<String>,
    #[serde(default)]
    authority: Vec<String>,
    #[serde(default)]
    additional: Vec<String>,
    ecs: Option<String>,
    nsid: Option<String>,
    opt: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EdnsRaw {
    payload: Option<u16>,
    nsid: Option<bool>,
    #[serde(rename = "do")]
    dnssec_ok: Option<bool>,
    ecs: Option<String>,
    version: Option<u8>,
}

fn parse_subnet(s: &str) -> (IpAddr, u8) {
    let (a, p) = s.split_once('/').expect("ecs as ADDR/PREFIX");
    (
        a.parse().expect("ecs address"),
        p.parse().expect("ecs prefix"),
    )
}

fn build_query(c: &Case) -> QuerySpec {
    let mut parts = c.q.split_whitespace();
    let name = parts.next().expect("query name");
    let t = parts.next().unwrap_or("A");
    let qtype = match t.strip_prefix("TYPE") {
        Some(n) => n.parse().expect("TYPEnnn"),
        None => u16::from(RecordType::from_str(t).expect("query type")),
    };
    let mut q = QuerySpec::new(name, qtype);
    if let Some(class) = parts.next() {
        q.qclass = match class.strip_prefix("CLASS") {
            Some(n) => n.parse().expect("CLASSnnn"),
            None => u16::from(DNSClass::from_str(class).expect("query class")),
        };
    }
    q.rd = c.rd;
    q.cd = c.cd;
    if let Some(e) = &c.edns {
        q.edns = Some(EdnsSpec {
            payload: e.payload.unwrap_or(1232),
            dnssec_ok: e.dnssec_ok.unwrap_or(false),
            nsid: e.nsid.unwrap_or(false),
            ecs: e.ecs.as_deref().map(parse_subnet),
            version: e.version.unwrap_or(0),
        });
    }
    q
}

fn check(c: &Case, transport: &str, got: &Decoded) -> Vec<String> {
    let mut fails = Vec::new();
    let mut expect = |what: &str, want: String, have: String| {
        if want != have {
            fails.push(format!(
                "{} [{transport}] {what}:\n    want {want}\n    have {have}",
                c.name
            ));
        }
    };
    expect("rcode", c.rcode.clone(), got.rcode.clone());
    let mut want_flags: Vec<&str> = c.flags.split_whitespace().collect();
    want_flags.sort();
    let mut have_flags = got.flags.clone();
    have_flags.sort();
    expect("flags", want_flags.join(" "), have_flags.join(" "));
    // A `*` in an expected record stands for one field that changes from run to
    // run (an RRSIG's times and signature).
    let section = |want: &[String], have: &[String]| -> String {
        let same = want.len() == have.len()
            && want.iter().zip(have).all(|(w, h)| {
                let (w, h): (Vec<&str>, Vec<&str>) = (
                    w.split_whitespace().collect(),
                    h.split_whitespace().collect(),
                );
                w.len() == h.len() && w.iter().zip(&h).all(|(a, b)| *a == "*" || a == b)
            });
        if same {
            format!("{want:#?}")
        } else {
            format!("{have:#?}")
        }
    };
    expect(
        "answer",
        format!("{:#?}", c.answer),
        section(&c.answer, &got.answer),
    );
    expect(
        "authority",
        format!("{:#?}", c.authority),
        section(&c.authority, &got.authority),
    );
    expect(
        "additional",
        format!("{:#?}", c.additional),
        section(&c.additional, &got.additional),
    );
    if let Some(e) = &c.ecs {
        let have = match got.ecs {
            None => "none".to_string(),
            Some((a, s, sc)) => format!("{a}/{s}/{sc}"),
        };
        expect("ecs", e.clone(), have);
    }
    if let Some(n) = &c.nsid {
        let have = match &got.nsid {
            None => "none".to_string(),
            Some(b) => String::from_utf8_lossy(b).into_owned(),
        };
        expect("nsid", n.clone(), have);
    }
    if let Some(o) = c.opt {
        expect("opt", o.to_string(), got.opt.to_string());
    }
    // The question comes back exactly as asked, letter case included.
    let asked = c.q.split_whitespace().next().unwrap_or_default();
    if let Some(qn) = &got.qname {
        expect("question case", asked.to_string(), qn.clone());
    }
    fails
}

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let file: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = path.parent().expect("scenario folder");
    let zones = dir.join(&file.zones);
    let zones_s = zones.to_string_lossy().into_owned();
    let mut args = vec!["--zones", zones_s.as_str()];
    let config_s;
    if let Some(cfg) = &file.config {
        config_s = dir.join(cfg).to_string_lossy().into_owned();
        args.push("--config");
        args.push(config_s.as_str());
    }
    let server = Server::start(&args);
    // The same configuration on the one-packet-per-call UDP loop and the general
    // query path (no prebuilt answers): every response must be byte for byte what
    // the batched loop with the fast path sends.
    let plain = Server::start_env(
        &args,
        &[("SIGNPOST_NO_MMSG", "1"), ("SIGNPOST_NO_FAST", "1")],
    );
    let mut fails = Vec::new();
    for c in &file.cases {
        let q = build_query(c);
        let t = c.transport.as_deref().unwrap_or("both");
        if t == "udp" || t == "both" {
            fails.extend(check(c, "udp", &ask_udp(server.addr, &q)));
            let bytes = q.to_bytes();
            let a = common::udp_exchange(server.addr, &bytes);
            let b = common::udp_exchange(plain.addr, &bytes);
            if q.edns.as_ref().is_some_and(|e| e.dnssec_ok) {
                // Signed answers carry each server's own signing times: the two
                // paths must give the same records, checked field by field.
                fails.extend(check(c, "udp plain", &ask_udp(plain.addr, &q)));
            } else if a != b {
                fails.push(format!(
                    "{}: batched+fast and plain+general UDP paths differ:\n    {a:02x?}\n    {b:02x?}",
                    c.name
                ));
            }
        }
        if t == "tcp" || t == "both" {
            fails.extend(check(c, "tcp", &ask_tcp(server.addr, &q)));
        }
    }
    fails
        .into_iter()
        .map(|f| format!("{}: {f}", path.display()))
        .collect()
}

#[test]
fn golden_scenarios() {
    let dir = common::repo_path("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scenarios")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files");
    let mut fails = Vec::new();
    let mut cases = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        cases += text.matches("[[case]]").count();
        fails.extend(run_file(f));
    }
    assert!(
        fails.is_empty(),
        "{} of {cases} scenario checks failed:\n{}",
        fails.len(),
        fails.join("\n")
    );
    eprintln!(
        "{cases} scenarios passed over UDP and TCP in {} files",
        files.len()
    );
}
