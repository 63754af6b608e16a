//! Master files (zone files) as RFC 1035 §5 defines them, with `$TTL` from
//! RFC 2308 §4 and the BIND time units most zone files use.
//!
//! Parsing happens in two steps. The tokenizer turns text into entries, one per
//! logical line (parentheses join physical lines), each a list of [`Field`]s. The
//! loader then reads entries in order, keeping the state RFC 1035 §5.1 describes:
//! the origin, the current owner, the TTL to use when a record gives none.
//!
//! Every problem becomes a [`MasterError`] with the file and line it is on, and
//! parsing goes on with the next entry, so one run reports everything wrong.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::ttl::{parse_ttl, MAX_TTL};
use crate::zone::name::Name;
use crate::zone::rdata::{class_from_mnemonic, class_mnemonic, decode_escapes, parse_rdata, Field};
use crate::zone::rtype;

/// Deepest nesting of `$INCLUDE`: enough for any sane layout, small enough that a
/// mistake fails fast.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 8;
/// The only class signpost serves.
const CLASS_IN: u16 = 1;

/// One resource record as read from a master file, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceRecord {
    pub owner: Name,
    pub rtype: u16,
    pub ttl: u32,
    /// Uncompressed wire RDATA.
    pub rdata: Vec<u8>,
    /// The file the record is really in: an included file, not the one including it.
    pub file: Arc<Path>,
    /// 1-based line where the record begins in `file`.
    pub line: usize,
}

/// A problem in a master file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub(crate) struct MasterError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole (it cannot be read).
    pub line: usize,
    pub message: String,
}

/// What the zone configuration tells the parser before the file says anything.
#[derive(Debug, Clone)]
pub(crate) struct MasterOptions {
    /// The starting origin, normally the zone's apex (RFC 1035 §5.1).
    pub origin: Name,
    /// TTL for records that give none when the file has no `$TTL` and no earlier
    /// record to take one from.
    pub default_ttl: Option<u32>,
}

/// Where the parser puts each record it reads: a list, or a zone being built
/// (`build::ZoneBuilder`).
pub(crate) trait RecordSink {
    /// About how many records are coming (the file's lines, an upper bound).
    fn expect(&mut self, _records: usize) {}
    fn record(&mut self, r: SourceRecord);
}

impl RecordSink for Vec<SourceRecord> {
    fn record(&mut self, r: SourceRecord) {
        self.push(r);
    }
}

/// Parses a whole file. Collects every error (keeps going after a bad record: one bad
/// line must not hide the next).
pub(crate) fn parse_file(
    path: &Path,
    opts: &MasterOptions,
) -> (Vec<SourceRecord>, Vec<MasterError>) {
    let mut records = Vec::new();
    let errors = parse_file_into(path, opts, &mut records);
    (records, errors)
}

/// [`parse_file`], each record handed to `sink` as it is read.
pub(crate) fn parse_file_into<S: RecordSink>(
    path: &Path,
    opts: &MasterOptions,
    sink: &mut S,
) -> Vec<MasterError> {
    let mut loader = Loader::new(opts, sink);
    let file: Arc<Path> = Arc::from(path);
    match read_text(path) {
        Ok(text) => {
            loader
                .sink
                .expect(text.bytes().filter(|&b| b == b'\n').count() + 1);
            if let Ok(canonical) = fs::canonicalize(path) {
                loader.reading.push(canonical);
            }
            let mut src = Source {
                file,
                dir: parent_dir(path),
                origin: opts.origin.clone(),
                owner: Owner::None,
                depth: 0,
            };
            loader.run(&text, 1, &mut src);
        }
        Err(ReadError::Io(e)) => loader.errors.push(MasterError {
            file: path.to_path_buf(),
            line: 0,
            message: format!("cannot read zone file: {e}"),
        }),
        Err(ReadError::NotUtf8 { line }) => loader.errors.push(MasterError {
            file: path.to_path_buf(),
            line,
            message: NOT_UTF8.to_string(),
        }),
    }
    loader.errors
}

/// Parses text embedded in another file (a TOML string): `file` is used in messages,
/// `first_line` is the 1-based line in that file where the text begins, `base_dir`
/// resolves `$INCLUDE`.
pub(crate) fn parse_text(
    text: &str,
    file: &Path,
    first_line: usize,
    base_dir: &Path,
    opts: &MasterOptions,
) -> (Vec<SourceRecord>, Vec<MasterError>) {
    let mut records = Vec::new();
    let mut loader = Loader::new(opts, &mut records);
    // Including the file that holds this text would read it as a zone file: call that
    // a loop too.
    if let Ok(canonical) = fs::canonicalize(file) {
        loader.reading.push(canonical);
    }
    let mut src = Source {
        file: Arc::from(file),
        dir: base_dir.to_path_buf(),
        origin: opts.origin.clone(),
        owner: Owner::None,
        depth: 0,
    };
    loader.run(text, first_line, &mut src);
    let errors = loader.errors;
    (records, errors)
}

/// Splits presentation-format text into fields the way a master file would (quotes,
/// escapes, comments; parentheses are dropped). Handy for RDATA given on its own,
/// in configuration or tests.
#[cfg(test)]
pub(crate) fn split_fields(text: &str) -> Result<Vec<Field<'_>>, String> {
    let mut fields = Vec::new();
    let mut error = None;
    tokenize(text, 1, &mut |entry| match entry {
        Ok(e) if error.is_none() => fields.extend(e.fields),
        Ok(_) => {}
        Err(e) => {
            error.get_or_insert(e.message);
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    Ok(fields)
}

// ---------------------------------------------------------------------------
// Reading files

const NOT_UTF8: &str = "this line is not valid UTF-8; save the file as UTF-8, and write \
                        other bytes in strings as \\DDD escapes";

enum ReadError {
    Io(std::io::Error),
    /// 1-based line of the first byte that is not UTF-8.
    NotUtf8 {
        line: usize,
    },
}

fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = super::read_file(path).map_err(ReadError::Io)?;
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            // A byte order mark would otherwise become part of the first owner name.
            if text.starts_with('\u{feff}') {
                text.drain(..'\u{feff}'.len_utf8());
            }
            Ok(text)
        }
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = 1 + bytes
                .get(..good)
                .unwrap_or_default()
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            Err(ReadError::NotUtf8 { line })
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Tokenizer

/// One logical line: the fields of a record or directive.
#[derive(Debug)]
struct Entry<'a> {
    /// Line where the entry begins, which is the record's line even when
    /// parentheses carry it over several.
    line: usize,
    /// The line began with a space or tab, so the record reuses the previous owner
    /// (RFC 1035 §5.1).
    blank_owner: bool,
    fields: Vec<Field<'a>>,
}

/// A logical line that could not be split into fields.
#[derive(Debug)]
struct TokenError {
    line: usize,
    message: String,
    /// As [`Entry::blank_owner`]: when false, the bad line named an owner we never
    /// learnt, and the lines that continue it must not be taken for the previous one.
    blank_owner: bool,
}

/// Splits text into entries, handing each to `emit` as it is read (a large
/// zone's entries are not all held at once). `first_line` is the number of the
/// text's first line.
fn tokenize<'a>(
    text: &'a str,
    first_line: usize,
    emit: &mut impl FnMut(Result<Entry<'a>, TokenError>),
) {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut start = 0;
    while let Some(open) = tokenize_from(&lines, start, first_line, emit) {
        // An unclosed "(" swallowed the rest of the text. Report it, then resume at
        // the first line after it that starts a record in column one: continuation
        // lines are nearly always indented, so this recovers the records that follow
        // instead of hiding them.
        match (open + 1..lines.len()).find(|&i| starts_entry(lines[i])) {
            Some(next) => start = next,
            None => break,
        }
    }
}

/// True for a line that starts a new owner or directive in column one.
fn starts_entry(line: &str) -> bool {
    match line.chars().next() {
        Some(c) => !c.is_whitespace() && c != ';',
        None => false,
    }
}

/// The entry being read, which may span lines inside parentheses.
struct Pending<'a> {
    entry: Entry<'a>,
    /// The first problem found in it, and the line it is on.
    error: Option<(usize, String)>,
    /// Line index of the open "(", if one is open.
    paren: Option<usize>,
}

impl<'a> Pending<'a> {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some((line, message.into()));
        }
    }

    fn finish(self, out: &mut impl FnMut(Result<Entry<'a>, TokenError>)) {
        match self.error {
            Some((line, message)) => out(Err(TokenError {
                line,
                message,
                blank_owner: self.entry.blank_owner,
            })),
            None if self.entry.fields.is_empty() => {}
            None => out(Ok(self.entry)),
        }
    }
}

/// Tokenizes from line index `start` to the end. Returns the index of the line of a
/// "(" never closed, after reporting it.
fn tokenize_from<'a>(
    lines: &[&'a str],
    start: usize,
    first_line: usize,
    out: &mut impl FnMut(Result<Entry<'a>, TokenError>),
) -> Option<usize> {
    let mut pending: Option<Pending> = None;
    for (idx, line) in lines.iter().enumerate().skip(start) {
        let lineno = first_line + idx;
        let p = pending.get_or_insert_with(|| Pending {
            entry: Entry {
                line: lineno,
                blank_owner: line.starts_with([' ', '\t']),
                fields: Vec::new(),
            },
            error: None,
            paren: None,
        });
        scan_line(line, idx, lineno, p);
        if p.paren.is_none() {
            if let Some(done) = pending.take() {
                done.finish(out);
            }
        }
    }
    let p = pending?;
    let open = p.paren?;
    let blank_owner = p.entry.blank_owner;
    if let Some((line, message)) = p.error {
        out(Err(TokenError {
            line,
            message,
            blank_owner,
        }));
    }
    out(Err(TokenError {
        line: first_line + open,
        message: "this \"(\" is never closed: add the matching \")\"".to_string(),
        blank_owner,
    }));
    Some(open)
}

/// Adds the fields of one physical line to `p` (RFC 1035 §5.1).
fn scan_line<'a>(line: &'a str, idx: usize, lineno: usize, p: &mut Pending<'a>) {
    // Every byte that ends or starts a field is ASCII, and no byte of a
    // multi-byte character is: the line is scanned by bytes, and each field is
    // one slice of it (escapes kept as written), copied once. Building each
    // field a character at a time was a sixth of a large zone's load.
    let b = line.as_bytes();
    // Where the unquoted field being read starts.
    let mut word: Option<usize> = None;
    let flush = move |word: &mut Option<usize>, end: usize, p: &mut Pending<'a>| {
        if let Some(start) = word.take() {
            p.entry.fields.push(Field::new(&line[start..end], false));
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' => flush(&mut word, i, p),
            b';' => {
                flush(&mut word, i, p);
                return;
            }
            b'(' => {
                flush(&mut word, i, p);
                if p.paren.is_some() {
                    p.fail(lineno, "\"(\" inside parentheses: they do not nest");
                } else {
                    p.paren = Some(idx);
                }
            }
            b')' => {
                flush(&mut word, i, p);
                if p.paren.take().is_none() {
                    p.fail(lineno, "\")\" without a matching \"(\"");
                }
            }
            b'"' => {
                flush(&mut word, i, p);
                let start = i + 1;
                let mut j = start;
                let mut closed = false;
                while j < b.len() {
                    match b[j] {
                        // Kept with its backslash: decode_escapes reads it later.
                        b'\\' => j += 2,
                        b'"' => {
                            closed = true;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                if !closed {
                    p.fail(
                        lineno,
                        "quoted string is not closed: add the closing \" on the same line",
                    );
                }
                let end = j.min(b.len());
                p.entry.fields.push(Field::new(&line[start..end], true));
                i = end + 1;
                continue;
            }
            b'\\' => {
                // Kept for Name::parse, which must tell "\." from a label separator;
                // the escaped character never ends the field or starts a comment.
                word.get_or_insert(i);
                i += 2;
                continue;
            }
            _ => {
                word.get_or_insert(i);
            }
        }
        i += 1;
    }
    flush(&mut word, b.len(), p);
}

// ---------------------------------------------------------------------------
// Loader

/// The current owner name (RFC 1035 §5.1).
#[derive(Clone)]
enum Owner {
    /// No record yet in this file.
    None,
    Known(Name),
    /// The last owner was bad and already reported. Lines that continue it are still
    /// checked, so their own mistakes show, but not kept.
    Bad,
}

/// State that belongs to one file: an included file gets its own, and its parent's
/// is untouched when it returns (RFC 1035 §5.1).
struct Source {
    file: Arc<Path>,
    /// Where relative `$INCLUDE` paths start.
    dir: PathBuf,
    origin: Name,
    owner: Owner,
    depth: usize,
}

/// State shared by a file and everything it includes.
struct Loader<'o, S: RecordSink> {
    opts: &'o MasterOptions,
    sink: &'o mut S,
    errors: Vec<MasterError>,
    /// The last `$TTL` (RFC 2308 §4).
    dollar_ttl: Option<u32>,
    /// The last TTL a record gave, the default when there is no `$TTL` (RFC 1035 §5.1).
    last_ttl: Option<u32>,
    /// Canonical paths of the files being read, outermost first, to catch loops.
    reading: Vec<PathBuf>,
}

impl<'o, S: RecordSink> Loader<'o, S> {
    fn new(opts: &'o MasterOptions, sink: &'o mut S) -> Self {
        Loader {
            opts,
            sink,
            errors: Vec::new(),
            dollar_ttl: None,
            last_ttl: None,
            reading: Vec::new(),
        }
    }

    fn error(&mut self, src: &Source, line: usize, message: impl Into<String>) {
        self.errors.push(MasterError {
            file: src.file.to_path_buf(),
            line,
            message: message.into(),
        });
    }

    fn run(&mut self, text: &str, first_line: usize, src: &mut Source) {
        tokenize(text, first_line, &mut |entry| match entry {
            Ok(entry) => self.entry(src, entry),
            Err(e) => {
                if !e.blank_owner {
                    src.owner = Owner::Bad;
                }
                self.error(src, e.line, e.message);
            }
        });
    }

    fn entry(&mut self, src: &mut Source, entry: Entry) {
        let Entry {
            line,
            blank_owner,
            fields,
        } = entry;
        let Some((first, rest)) = fields.split_first() else {
            return;
        };
        if !first.quoted && first.text.starts_with('$') {
            self.directive(src, line, first.text, rest);
            return;
        }
        let (owner, body, keep) = if blank_owner {
            match &src.owner {
                Owner::Known(name) => (name.clone(), &fields[..], true),
                Owner::Bad => (src.origin.clone(), &fields[..], false),
                Owner::None => {
                    self.error(
                        src,
                        line,
                        "this line starts with a space, so it belongs to the owner name of the \
                         record before it, but there is none; put the owner name first on the line",
                    );
                    return;
                }
            }
        } else {
            match parse_name(first, &src.origin) {
                Ok(name) => {
                    src.owner = Owner::Known(name.clone());
                    (name, rest, true)
                }
                Err(e) => {
                    src.owner = Owner::Bad;
                    self.error(src, line, format!("bad owner name {:?}: {e}", first.text));
                    return;
                }
            }
        };
        match self.record(src, body) {
            Ok((rtype, ttl, rdata)) if keep => self.sink.record(SourceRecord {
                owner,
                rtype,
                ttl,
                rdata,
                file: Arc::clone(&src.file),
                line,
            }),
            Ok(_) => {}
            Err(message) => self.error(src, line, message),
        }
    }

    /// Reads `[TTL] [class] type rdata` (TTL and class in either order, RFC 1035 §5.1).
    fn record(
        &mut self,
        src: &Source,
        fields: &[Field<'_>],
    ) -> Result<(u16, u32, Vec<u8>), String> {
        let mut ttl: Option<u32> = None;
        let mut class_seen = false;
        let mut i = 0;
        while let Some(f) = fields.get(i) {
            if f.quoted {
                break;
            }
            if let Some(class) = class_from_mnemonic(f.text) {
                if class_seen {
                    return Err(format!("a second class {:?}: give the class once", f.text));
                }
                if class != CLASS_IN {
                    return Err(format!(
                        "class {} is not supported here; signpost serves class IN zones",
                        class_mnemonic(class)
                    ));
                }
                class_seen = true;
            } else if f.text.starts_with(|c: char| c.is_ascii_digit()) {
                // No type mnemonic starts with a digit, so this must be a TTL.
                if ttl.is_some() {
                    return Err(format!("a second TTL {:?}: give the TTL once", f.text));
                }
                match parse_ttl(f.text) {
                    Ok(t) => ttl = Some(t),
                    // An address where the type belongs: the type was left out.
                    Err(_) if f.text.contains(['.', ':']) => {
                        return Err(format!(
                            "expected a record type like A or AAAA before {:?}",
                            f.text
                        ))
                    }
                    Err(e) => return Err(e.0),
                }
            } else {
                break;
            }
            i += 1;
        }
        let Some(type_field) = fields.get(i) else {
            return Err(
                "the record has no type: after the owner, TTL and class give a type \
                 like A, AAAA, MX or TXT, then its data"
                    .to_string(),
            );
        };
        let rtype = rtype::from_name(type_field.text)
            .filter(|_| !type_field.quoted)
            .ok_or_else(|| {
                format!(
                    "unknown record type {:?}: use a type like A, AAAA, CNAME, MX or TXT, \
                     or TYPEnnn with RFC 3597 \\# data",
                    type_field.text
                )
            })?;
        if rtype == 0 {
            return Err(format!(
                "record type {:?} is type 0, which is reserved (RFC 6895 §3.1) and cannot be \
                 served; give another type",
                type_field.text
            ));
        }
        let ttl = match ttl {
            Some(explicit) => {
                self.last_ttl = Some(explicit);
                explicit
            }
            // RFC 2308 §4: $TTL applies to records without a TTL; before it existed
            // (and still without one) the last TTL given carries on (RFC 1035 §5.1).
            None => self
                .dollar_ttl
                .or(self.last_ttl)
                .or(self.opts.default_ttl)
                .ok_or("no TTL: add $TTL or give the record a TTL")?,
        };
        let rdata = parse_rdata(rtype, fields.get(i + 1..).unwrap_or_default(), &src.origin)
            .map_err(|e| e.to_string())?;
        Ok((rtype, ttl, rdata))
    }

    fn directive(&mut self, src: &mut Source, line: usize, name: &str, args: &[Field<'_>]) {
        match name.to_ascii_uppercase().as_str() {
            "$ORIGIN" => {
                let [arg] = args else {
                    return self.error(
                        src,
                        line,
                        "$ORIGIN takes one domain name, like $ORIGIN example.com.",
                    );
                };
                // A relative name is completed with the current origin.
                match parse_name(arg, &src.origin) {
                    Ok(origin) => src.origin = origin,
                    Err(e) => self.error(src, line, format!("bad $ORIGIN {:?}: {e}", arg.text)),
                }
            }
            "$TTL" => {
                let [arg] = args else {
                    return self.error(src, line, "$TTL takes one TTL, like $TTL 3600 or $TTL 1h");
                };
                match parse_ttl(arg.text) {
                    Ok(ttl) => self.dollar_ttl = Some(ttl),
                    Err(e) => self.error(src, line, format!("bad $TTL: {e}")),
                }
            }
            "$INCLUDE" => self.include(src, line, args),
            "$GENERATE" => self.error(
                src,
                line,
                "$GENERATE is not supported; write the records out one by one",
            ),
            _ => self.error(
                src,
                line,
                format!(
                    "directive {name} is not supported; \
                     signpost understands $ORIGIN, $TTL and $INCLUDE"
                ),
            ),
        }
    }

    /// `$INCLUDE <file> [origin]` (RFC 1035 §5.1).
    fn include(&mut self, src: &Source, line: usize, args: &[Field<'_>]) {
        let (path_field, origin_field) = match args {
            [p] => (p, None),
            [p, o] => (p, Some(o)),
            _ => {
                return self.error(
                    src,
                    line,
                    "$INCLUDE takes a file name and optionally an origin, \
                     like $INCLUDE hosts.zone example.com.",
                )
            }
        };
        let Some(path_text) =
            decode_escapes(path_field.text).and_then(|b| String::from_utf8(b).ok())
        else {
            return self.error(
                src,
                line,
                format!("bad file name {:?} in $INCLUDE", path_field.text),
            );
        };
        // The included file starts with the origin given, else the current one.
        let origin = match origin_field {
            None => src.origin.clone(),
            Some(f) => match parse_name(f, &src.origin) {
                Ok(origin) => origin,
                Err(e) => {
                    return self.error(
                        src,
                        line,
                        format!("bad origin {:?} in $INCLUDE: {e}", f.text),
                    )
                }
            },
        };
        if src.depth >= MAX_INCLUDE_DEPTH {
            return self.error(
                src,
                line,
                format!("$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep; is there a loop?"),
            );
        }
        // Relative to the including file's directory (an absolute path stays as is).
        let path = src.dir.join(&path_text);
        let canonical = match fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => {
                return self.error(
                    src,
                    line,
                    format!("cannot read included file {}: {e}", path.display()),
                )
            }
        };
        if self.reading.contains(&canonical) {
            let chain: Vec<String> = self
                .reading
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            return self.error(
                src,
                line,
                format!("include loop: {}", chain.join(" includes ")),
            );
        }
        let text = match read_text(&path) {
            Ok(text) => text,
            Err(ReadError::Io(e)) => {
                return self.error(
                    src,
                    line,
                    format!("cannot read included file {}: {e}", path.display()),
                )
            }
            Err(ReadError::NotUtf8 { line: bad_line }) => {
                self.errors.push(MasterError {
                    file: path.clone(),
                    line: bad_line,
                    message: NOT_UTF8.to_string(),
                });
                return;
            }
        };
        // A fresh Source: whatever the included file does to its origin and owner
        // stays there, and the parent carries on with its own when it returns
        // (RFC 1035 §5.1). The owner starts unset rather than inherited, so an
        // included file cannot silently add records to a name it does not show.
        let mut child = Source {
            file: Arc::from(path.as_path()),
            dir: parent_dir(&path),
            origin,
            owner: Owner::None,
            depth: src.depth + 1,
        };
        self.reading.push(canonical);
        self.run(&text, 1, &mut child);
        self.reading.pop();
    }
}

/// A domain name field, relative names completed with `origin`.
fn parse_name(f: &Field, origin: &Name) -> Result<Name, String> {
    // Name::parse would read an empty quoted field as the origin.
    if f.text.is_empty() {
        return Err("a name cannot be empty".to_string());
    }
    Name::parse(f.text, Some(origin)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::rdata::format_rdata;
    use crate::zone::rtype;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    fn opts() -> MasterOptions {
        MasterOptions {
            origin: name("example.com."),
            default_ttl: None,
        }
    }

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("signpost-master-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, file: &str, text: &str) -> PathBuf {
            let path = self.0.join(file);
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn parse(text: &str) -> (Vec<SourceRecord>, Vec<MasterError>) {
        parse_with(text, &opts())
    }

    fn parse_with(text: &str, o: &MasterOptions) -> (Vec<SourceRecord>, Vec<MasterError>) {
        parse_text(text, Path::new("zone.toml"), 1, Path::new("."), o)
    }

    /// Records as "line owner ttl TYPE rdata", for compact assertions.
    fn show(records: &[SourceRecord]) -> Vec<String> {
        records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r.line,
                    r.owner,
                    r.ttl,
                    rtype::name(r.rtype),
                    format_rdata(r.rtype, &r.rdata)
                )
            })
            .collect()
    }

    /// Errors as "line: message".
    fn errs(errors: &[MasterError]) -> Vec<String> {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.line, e.message))
            .collect()
    }

    fn ok(text: &str) -> Vec<String> {
        let (records, errors) = parse(text);
        assert!(errors.is_empty(), "unexpected errors: {:?}", errs(&errors));
        show(&records)
    }

    #[test]
    fn typical_zone() {
        let zone = "\
$ORIGIN example.com.
$TTL 1h
@   IN  SOA ns1 hostmaster (
        2024010101 ; serial
        1h         ; refresh
        15m 2w     ; retry, expire
        1d12h )    ; minimum
    IN  NS  ns1
        NS  ns2.example.net.
ns1 300 IN A 192.0.2.1
        AAAA 2001:db8::1
www IN 60 CNAME ns1 ; a comment
mail    MX  10 ns1
txt TXT \"a;b\" \"(c)\" d\\;e
";
        assert_eq!(
            ok(zone),
            [
                "3 example.com. 3600 SOA ns1.example.com. hostmaster.example.com. 2024010101 3600 900 1209600 129600",
                "8 example.com. 3600 NS ns1.example.com.",
                "9 example.com. 3600 NS ns2.example.net.",
                "10 ns1.example.com. 300 A 192.0.2.1",
                "11 ns1.example.com. 3600 AAAA 2001:db8::1",
                "12 www.example.com. 60 CNAME ns1.example.com.",
                "13 mail.example.com. 3600 MX 10 ns1.example.com.",
                "14 txt.example.com. 3600 TXT \"a;b\" \"(c)\" \"d;e\"",
            ]
        );
    }

    #[test]
    fn records_know_their_file() {
        let (records, _) = parse_text(
            "@ 60 A 192.0.2.1",
            Path::new("conf/signpost.toml"),
            1,
            Path::new("conf"),
            &opts(),
        );
        assert_eq!(&*records[0].file, Path::new("conf/signpost.toml"));
        assert_eq!(records[0].owner, name("example.com."));
        assert_eq!(records[0].rtype, 1);
        assert_eq!(records[0].rdata, [192, 0, 2, 1]);
    }

    #[test]
    fn first_line_offsets_line_numbers() {
        let (records, errors) = parse_text(
            "$TTL 60\nwww A 192.0.2.1\n\nbad A 1.2.3\n",
            Path::new("signpost.toml"),
            40,
            Path::new("."),
            &opts(),
        );
        assert_eq!(records[0].line, 41);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 43);
        assert_eq!(
            errors[0].to_string(),
            "signpost.toml:43: A record needs an IPv4 address like 192.0.2.1, found \"1.2.3\""
        );
    }

    #[test]
    fn ttl_and_class_in_either_order() {
        assert_eq!(
            ok("a 60 IN A 192.0.2.1\nb IN 70 A 192.0.2.2\nc in 1m a 192.0.2.3\nd CLASS1 A 192.0.2.4\ne A 192.0.2.5"),
            [
                "1 a.example.com. 60 A 192.0.2.1",
                "2 b.example.com. 70 A 192.0.2.2",
                "3 c.example.com. 60 A 192.0.2.3",
                "4 d.example.com. 60 A 192.0.2.4",
                "5 e.example.com. 60 A 192.0.2.5",
            ]
        );
    }

    #[test]
    fn ttl_defaults() {
        // Without $TTL, the previous record's TTL carries on (RFC 1035 §5.1); $TTL
        // then applies to every record without one (RFC 2308 §4).
        assert_eq!(
            ok("a 300 A 192.0.2.1\nb A 192.0.2.2\n$TTL 60\nc A 192.0.2.3\nd 10 A 192.0.2.4\ne A 192.0.2.5"),
            [
                "1 a.example.com. 300 A 192.0.2.1",
                "2 b.example.com. 300 A 192.0.2.2",
                "4 c.example.com. 60 A 192.0.2.3",
                "5 d.example.com. 10 A 192.0.2.4",
                "6 e.example.com. 60 A 192.0.2.5",
            ]
        );
        // The configured default comes last.
        let o = MasterOptions {
            default_ttl: Some(86400),
            ..opts()
        };
        let (records, errors) = parse_with("a A 192.0.2.1\nb 5 A 192.0.2.2\nc A 192.0.2.3", &o);
        assert!(errors.is_empty());
        assert_eq!(
            records.iter().map(|r| r.ttl).collect::<Vec<_>>(),
            [86400, 5, 5]
        );
        // And with nothing at all, an error.
        let (records, errors) = parse("a A 192.0.2.1\nb 5 A 192.0.2.2");
        assert_eq!(
            errs(&errors),
            ["1: no TTL: add $TTL or give the record a TTL"]
        );
        assert_eq!(show(&records), ["2 b.example.com. 5 A 192.0.2.2"]);
    }

    #[test]
    fn only_class_in() {
        let (records, errors) = parse(
            "$TTL 60\na CH TXT x\nb HS A 192.0.2.1\nc CLASS9 A 192.0.2.1\nd IN IN A 192.0.2.1",
        );
        assert!(records.is_empty());
        assert_eq!(
            errs(&errors),
            [
                "2: class CH is not supported here; signpost serves class IN zones",
                "3: class HS is not supported here; signpost serves class IN zones",
                "4: class CLASS9 is not supported here; signpost serves class IN zones",
                "5: a second class \"IN\": give the class once",
            ]
        );
    }

    #[test]
    fn bad_header_fields() {
        let (_, errors) = parse(
            "$TTL 60\na 1x A 192.0.2.1\nb IN 192.0.2.1\nc 60 60 A 192.0.2.1\nd FOO 1\ne \"A\" 192.0.2.1\nf 60 IN\nTYPE1 A 192.0.2.1",
        );
        assert_eq!(
            errs(&errors),
            [
                "2: TTL \"1x\" is not valid: use seconds like 3600, or units like 1h30m (s, m, h, d, w)",
                "3: expected a record type like A or AAAA before \"192.0.2.1\"",
                "4: a second TTL \"60\": give the TTL once",
                "5: unknown record type \"FOO\": use a type like A, AAAA, CNAME, MX or TXT, or TYPEnnn with RFC 3597 \\# data",
                "6: unknown record type \"A\": use a type like A, AAAA, CNAME, MX or TXT, or TYPEnnn with RFC 3597 \\# data",
                "7: the record has no type: after the owner, TTL and class give a type like A, AAAA, MX or TXT, then its data",
            ]
        );
    }

    /// Type 0 is reserved (RFC 6895 §3.1): refused at its line, in any spelling.
    #[test]
    fn type_zero_is_refused_at_its_line() {
        let (records, errors) = parse("$TTL 60\na A 192.0.2.1\nb TYPE0 \\# 0\nc type00 \\# 1 01");
        assert_eq!(show(&records), ["2 a.example.com. 60 A 192.0.2.1"]);
        let e = errs(&errors);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("3: record type \"TYPE0\" is type 0, which is reserved"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("4: record type \"type00\" is type 0"),
            "{e:?}"
        );
    }

    #[test]
    fn generic_types_in_files() {
        assert_eq!(
            ok("$TTL 60\na TYPE65534 \\# 2 abcd\nb type1 \\# 4 c0000201\nc A \\# 4 ( c0000202 )"),
            [
                "2 a.example.com. 60 TYPE65534 \\# 2 ABCD",
                "3 b.example.com. 60 A 192.0.2.1",
                "4 c.example.com. 60 A 192.0.2.2",
            ]
        );
        let (_, errors) = parse("$TTL 60\na TYPE65534 abcd");
        assert!(errors[0]
            .message
            .starts_with("TYPE65534 records have no presentation format"));
    }

    #[test]
    fn escapes_in_names_and_strings() {
        assert_eq!(
            ok("$TTL 60\na\\.b TXT \"say \\\"hi\\\"\" \\\"q\\\"\nsp\\032ace CNAME x\\.y\nsemi\\;colon A 192.0.2.1 ; real comment\n\\@ A 192.0.2.2"),
            [
                "2 a\\.b.example.com. 60 TXT \"say \\\"hi\\\"\" \"\\\"q\\\"\"",
                "3 sp\\032ace.example.com. 60 CNAME x\\.y.example.com.",
                "4 semi\\;colon.example.com. 60 A 192.0.2.1",
                "5 \\@.example.com. 60 A 192.0.2.2",
            ]
        );
    }

    #[test]
    fn blank_owner() {
        let (records, errors) = parse(
            "$TTL 60\n  A 192.0.2.1\nwww A 192.0.2.2\n\tA 192.0.2.3\n ; comment only\n  AAAA ::1",
        );
        assert_eq!(
            errs(&errors),
            ["2: this line starts with a space, so it belongs to the owner name of the record before it, but there is none; put the owner name first on the line"]
        );
        assert_eq!(
            show(&records),
            [
                "3 www.example.com. 60 A 192.0.2.2",
                "4 www.example.com. 60 A 192.0.2.3",
                "6 www.example.com. 60 AAAA ::1",
            ]
        );
    }

    #[test]
    fn bad_owner_does_not_pass_to_the_next_lines() {
        // The lines continuing a bad owner are checked but not kept, and they are not
        // silently given to the owner before it.
        let (records, errors) = parse(
            "$TTL 60\nwww A 192.0.2.1\na..b A 192.0.2.2\n  A 192.0.2.3\n  A 1.2\nc A 192.0.2.4",
        );
        assert_eq!(
            errs(&errors),
            [
                "3: bad owner name \"a..b\": empty label in name \"a..b\" (two dots in a row)",
                "5: A record needs an IPv4 address like 192.0.2.1, found \"1.2\"",
            ]
        );
        assert_eq!(
            show(&records),
            [
                "2 www.example.com. 60 A 192.0.2.1",
                "6 c.example.com. 60 A 192.0.2.4"
            ]
        );
    }

    #[test]
    fn origin_directive() {
        assert_eq!(
            ok("$TTL 60\n$ORIGIN sub\na A 192.0.2.1\n$ORIGIN Other.ORG.\n@ A 192.0.2.2\nb.example.com. A 192.0.2.3"),
            [
                "3 a.sub.example.com. 60 A 192.0.2.1",
                "5 other.org. 60 A 192.0.2.2",
                "6 b.example.com. 60 A 192.0.2.3",
            ]
        );
        let (_, errors) = parse("$ORIGIN\n$ORIGIN a b\n$ORIGIN a..b.\n$TTL\n$TTL 1y\n$GENERATE 1-10 h$ A 192.0.2.$\n$FOO bar\n$ttl 5");
        assert_eq!(
            errs(&errors),
            [
                "1: $ORIGIN takes one domain name, like $ORIGIN example.com.",
                "2: $ORIGIN takes one domain name, like $ORIGIN example.com.",
                "3: bad $ORIGIN \"a..b.\": empty label in name \"a..b.\" (two dots in a row)",
                "4: $TTL takes one TTL, like $TTL 3600 or $TTL 1h",
                "5: bad $TTL: TTL \"1y\" is not valid: use seconds like 3600, or units like 1h30m (s, m, h, d, w)",
                "6: $GENERATE is not supported; write the records out one by one",
                "7: directive $FOO is not supported; signpost understands $ORIGIN, $TTL and $INCLUDE",
            ]
        );
    }

    #[test]
    fn parentheses() {
        // Parentheses may open and close anywhere, even mid-line; the record's line is
        // where it began.
        assert_eq!(
            ok("$TTL 60\nmx (\n MX\n 10\n\n mail ) ; done\ntxt TXT ( \"a\"\n\"b\" )\nx A 192.0.2.1"),
            [
                "2 mx.example.com. 60 MX 10 mail.example.com.",
                "7 txt.example.com. 60 TXT \"a\" \"b\"",
                "9 x.example.com. 60 A 192.0.2.1",
            ]
        );
    }

    #[test]
    fn unclosed_parenthesis_is_reported_at_its_line() {
        let zone = "\
$TTL 60
a A 192.0.2.1
@ SOA ns1 hostmaster ( 1
      3600 900 1209600 300
b A 192.0.2.2
c A 1.2
";
        let (records, errors) = parse(zone);
        assert_eq!(
            errs(&errors),
            [
                "3: this \"(\" is never closed: add the matching \")\"",
                "6: A record needs an IPv4 address like 192.0.2.1, found \"1.2\"",
            ]
        );
        // Parsing resumed at the next line in column one.
        assert_eq!(
            show(&records),
            [
                "2 a.example.com. 60 A 192.0.2.1",
                "5 b.example.com. 60 A 192.0.2.2"
            ]
        );
    }

    #[test]
    fn fields_are_slices_of_the_line_as_written() {
        let f = |text: &str| -> Vec<(String, bool)> {
            split_fields(text)
                .expect("fields")
                .into_iter()
                .map(|f| (f.text.to_string(), f.quoted))
                .collect()
        };
        let own = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
            v.iter().map(|(t, q)| (t.to_string(), *q)).collect()
        };
        assert_eq!(
            f(r#"a\ b "q \" x" c;comment "not" this"#),
            own(&[(r"a\ b", false), (r#"q \" x"#, true), ("c", false)])
        );
        assert_eq!(
            f("é\\é \"ü;\" \\;x"),
            own(&[("é\\é", false), ("ü;", true), ("\\;x", false)])
        );
        assert_eq!(f("x\\"), own(&[("x\\", false)]));
        assert_eq!(
            f("a(b\t)c\r"),
            own(&[("a", false), ("b", false), ("c", false)])
        );
        assert_eq!(
            f("ab\"cd\"ef"),
            own(&[("ab", false), ("cd", true), ("ef", false)])
        );
        assert_eq!(f("\"\""), own(&[("", true)]));
        assert!(split_fields("\"open").is_err());
        assert!(split_fields("\"esc at end\\").is_err());
    }

    #[test]
    fn tokenizer_errors() {
        let (records, errors) = parse("$TTL 60\na A 192.0.2.1 )\nb TXT \"open\nc ( ( A 192.0.2.1 )\n  A 192.0.2.9\nd A 192.0.2.2");
        assert_eq!(
            errs(&errors),
            [
                "2: \")\" without a matching \"(\"",
                "3: quoted string is not closed: add the closing \" on the same line",
                "4: \"(\" inside parentheses: they do not nest",
            ]
        );
        // Line 5 continues the bad line 4, so it is dropped, not given to b.
        assert_eq!(show(&records), ["6 d.example.com. 60 A 192.0.2.2"]);
    }

    #[test]
    fn many_errors_in_one_file_each_at_its_line() {
        let zone = "\
$TTL 60
a A 300.1.1.1
ok1 A 192.0.2.1
b MX mail
c FOO x
ok2 AAAA 2001:db8::1
d TXT \"x
e CNAME a b
ok3 CNAME ok1
";
        let dir = TempDir::new("many");
        let path = dir.write("many.zone", zone);
        let (records, errors) = parse_file(&path, &opts());
        assert_eq!(
            errs(&errors),
            [
                "2: A record needs an IPv4 address like 192.0.2.1, found \"300.1.1.1\"",
                "4: MX record needs a preference from 0 to 65535, found \"mail\"",
                "5: unknown record type \"FOO\": use a type like A, AAAA, CNAME, MX or TXT, or TYPEnnn with RFC 3597 \\# data",
                "7: quoted string is not closed: add the closing \" on the same line",
                "8: CNAME record has an extra field \"b\"; it takes 1 field: cname",
            ]
        );
        assert!(errors.iter().all(|e| e.file == path));
        assert_eq!(
            show(&records),
            [
                "3 ok1.example.com. 60 A 192.0.2.1",
                "6 ok2.example.com. 60 AAAA 2001:db8::1",
                "9 ok3.example.com. 60 CNAME ok1.example.com.",
            ]
        );
        assert_eq!(
            errors[0].to_string(),
            format!(
                "{}:2: A record needs an IPv4 address like 192.0.2.1, found \"300.1.1.1\"",
                path.display()
            )
        );
    }

    #[test]
    fn unreadable_file_is_one_error_at_line_zero() {
        let dir = TempDir::new("missing");
        let path = dir.0.join("nope.zone");
        let (records, errors) = parse_file(&path, &opts());
        assert!(records.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 0);
        assert_eq!(errors[0].file, path);
        assert!(
            errors[0].message.starts_with("cannot read zone file: "),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn crlf_bom_and_non_utf8() {
        let dir = TempDir::new("enc");
        let path = dir.write(
            "crlf.zone",
            "\u{feff}$TTL 60\r\nwww A 192.0.2.1\r\n  TXT \"x\"\r\n",
        );
        let (records, errors) = parse_file(&path, &opts());
        assert!(errors.is_empty(), "{:?}", errs(&errors));
        assert_eq!(
            show(&records),
            [
                "2 www.example.com. 60 A 192.0.2.1",
                "3 www.example.com. 60 TXT \"x\""
            ]
        );
        let path = dir.0.join("latin1.zone");
        fs::write(&path, b"$TTL 60\nwww TXT \"caf\xe9\"\n").unwrap();
        let (records, errors) = parse_file(&path, &opts());
        assert!(records.is_empty());
        assert_eq!(errs(&errors), [format!("2: {NOT_UTF8}")]);
    }

    #[test]
    fn include_restores_origin_and_owner() {
        // RFC 1035 §5.1: a $ORIGIN inside an included file must not leak into the
        // parent (hickory 0.26 lets it), and the parent's current owner comes back.
        let dir = TempDir::new("include");
        dir.write(
            "sub.zone",
            "$ORIGIN other.org.\nhost A 192.0.2.3\n@ A 192.0.2.4\n",
        );
        dir.write("named.zone", "@ A 192.0.2.5\nx A 192.0.2.6\n");
        let main = dir.write(
            "main.zone",
            "\
$TTL 300
www A 192.0.2.1
$INCLUDE sub.zone
    A 192.0.2.2
after A 192.0.2.7
@ A 192.0.2.8
$INCLUDE \"named.zone\" branch
last A 192.0.2.9
",
        );
        let (records, errors) = parse_file(&main, &opts());
        assert!(errors.is_empty(), "{:?}", errs(&errors));
        assert_eq!(
            show(&records),
            [
                "2 www.example.com. 300 A 192.0.2.1",
                "2 host.other.org. 300 A 192.0.2.3",
                "3 other.org. 300 A 192.0.2.4",
                "4 www.example.com. 300 A 192.0.2.2",
                "5 after.example.com. 300 A 192.0.2.7",
                "6 example.com. 300 A 192.0.2.8",
                "1 branch.example.com. 300 A 192.0.2.5",
                "2 x.branch.example.com. 300 A 192.0.2.6",
                "8 last.example.com. 300 A 192.0.2.9",
            ]
        );
        // Each record names the file it is really in.
        let files: Vec<String> = records
            .iter()
            .map(|r| r.file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            files,
            [
                "main.zone",
                "sub.zone",
                "sub.zone",
                "main.zone",
                "main.zone",
                "main.zone",
                "named.zone",
                "named.zone",
                "main.zone"
            ]
        );
    }

    #[test]
    fn included_file_starts_without_an_owner_and_reports_its_own_lines() {
        let dir = TempDir::new("incerr");
        let inc = dir.write("inc.zone", "  A 192.0.2.1\nok A 192.0.2.2\nbad A 1\n");
        let main = dir.write("main.zone", "$TTL 60\nwww A 192.0.2.9\n$INCLUDE inc.zone\n$INCLUDE missing.zone\n$INCLUDE\n$INCLUDE a b c\n");
        let (records, errors) = parse_file(&main, &opts());
        let got: Vec<(PathBuf, usize)> = errors.iter().map(|e| (e.file.clone(), e.line)).collect();
        assert_eq!(
            got,
            [
                (inc.clone(), 1),
                (inc.clone(), 3),
                (main.clone(), 4),
                (main.clone(), 5),
                (main.clone(), 6)
            ]
        );
        assert!(
            errors[2].message.starts_with("cannot read included file "),
            "{}",
            errors[2].message
        );
        assert!(errors[2].message.contains("missing.zone"));
        assert!(errors[3].message.starts_with("$INCLUDE takes a file name"));
        assert_eq!(
            show(&records),
            [
                "2 www.example.com. 60 A 192.0.2.9",
                "2 ok.example.com. 60 A 192.0.2.2"
            ]
        );
    }

    #[test]
    fn include_from_text_uses_base_dir() {
        let dir = TempDir::new("textinc");
        fs::create_dir_all(dir.0.join("zones")).unwrap();
        dir.write("zones/hosts.zone", "$INCLUDE more.zone\nh1 A 192.0.2.1\n");
        dir.write("zones/more.zone", "h2 A 192.0.2.2\n");
        let (records, errors) = parse_text(
            "$TTL 60\n$INCLUDE zones/hosts.zone\n",
            &dir.0.join("signpost.toml"),
            20,
            &dir.0,
            &opts(),
        );
        assert!(errors.is_empty(), "{:?}", errs(&errors));
        // more.zone is found next to hosts.zone, which included it.
        assert_eq!(
            show(&records),
            [
                "1 h2.example.com. 60 A 192.0.2.2",
                "2 h1.example.com. 60 A 192.0.2.1"
            ]
        );
    }

    #[test]
    fn include_loops_are_errors_at_the_include_line() {
        let dir = TempDir::new("loop");
        let a = dir.write("a.zone", "$TTL 60\na A 192.0.2.1\n$INCLUDE b.zone\n");
        let b = dir.write(
            "b.zone",
            "b A 192.0.2.2\n\n$INCLUDE ./a.zone\nb2 A 192.0.2.3\n",
        );
        let (records, errors) = parse_file(&a, &opts());
        assert_eq!(errors.len(), 1, "{:?}", errs(&errors));
        assert_eq!(errors[0].file, b);
        assert_eq!(errors[0].line, 3);
        assert!(
            errors[0].message.starts_with("include loop: "),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.ends_with("a.zone"),
            "{}",
            errors[0].message
        );
        assert_eq!(records.len(), 3);

        let me = dir.write("self.zone", "$INCLUDE self.zone\n");
        let (_, errors) = parse_file(&me, &opts());
        assert_eq!(errs(&errors).len(), 1);
        assert_eq!(errors[0].line, 1);
        assert!(errors[0].message.starts_with("include loop: "));
    }

    #[test]
    fn include_depth_is_limited() {
        let dir = TempDir::new("depth");
        for i in 0..12 {
            dir.write(
                &format!("f{i}.zone"),
                &format!("h{i} 60 A 192.0.2.{i}\n$INCLUDE f{}.zone\n", i + 1),
            );
        }
        let (records, errors) = parse_file(&dir.0.join("f0.zone"), &opts());
        // f0 is the zone file itself; f1..f8 are eight levels of $INCLUDE.
        assert_eq!(records.len(), 9);
        assert_eq!(errors.len(), 1, "{:?}", errs(&errors));
        assert_eq!(errors[0].file, dir.0.join("f8.zone"));
        assert_eq!(errors[0].line, 2);
        assert_eq!(
            errors[0].message,
            "$INCLUDE nested more than 8 deep; is there a loop?"
        );
    }

    #[test]
    fn ttl_state_flows_through_includes() {
        // Only the origin and owner are restored (RFC 1035 §5.1); $TTL set in an
        // included file stays in force, as in BIND.
        let dir = TempDir::new("ttl");
        dir.write("inc.zone", "x A 192.0.2.1\n$TTL 90\n");
        let main = dir.write("main.zone", "$TTL 30\n$INCLUDE inc.zone\ny A 192.0.2.2\n");
        let (records, errors) = parse_file(&main, &opts());
        assert!(errors.is_empty());
        assert_eq!(records.iter().map(|r| r.ttl).collect::<Vec<_>>(), [30, 90]);
    }

    #[test]
    fn split_fields_for_standalone_rdata() {
        let f = split_fields("10 \"a b\" c\\ d ; note").unwrap();
        assert_eq!(
            f,
            [
                Field::new("10", false),
                Field::new("a b", true),
                Field::new("c\\ d", false),
            ]
        );
        assert!(split_fields("\"open").is_err());
        assert!(split_fields("( a").is_err());
    }
}
