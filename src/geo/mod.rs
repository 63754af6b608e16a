//! Client geolocation from MaxMind-format (`.mmdb`) databases.
//!
//! [`Locator`] wraps one database and turns an IP address into a
//! [`Location`]: continent, country, ISO 3166-2 subdivision, coordinates,
//! AS number, and the prefix length of the matched network (the ECS scope
//! the answer is valid for). It understands:
//!
//! - GeoIP2 / GeoLite2 City, Country and ASN, and DB-IP's lite City and
//!   Country files, which share the GeoIP2 layout
//!   ([`Schema::GeoIp2`]);
//! - "flat" files with a top-level `country_code`, like the ip-location-db
//!   project's ([`Schema::FlatCountryCode`]);
//! - anything else, given the paths of its fields ([`Schema::Custom`]).
//!
//! Gaps are filled from built-in per-country tables: a country without a
//! continent gets its continent, a record without coordinates gets the
//! country's centroid ([`country_continent`], [`country_centroid`]).
//!
//! [`cidr::CidrTable`] holds operator overrides by network.
//!
//! This is the only module that names the `maxminddb` crate; its types do
//! not leak out of here.
//!
//! # Cost of a lookup
//!
//! Lookups run on the DNS query path. The database is held in memory (no
//! mmap: that needs `unsafe`, which the crate forbids, and a file that
//! never changes under us). A lookup walks the search tree, asks for the
//! matched network, then decodes the record into borrowed views
//! (`record.rs`) that read only the wanted keys and skip the rest without
//! following pointers. Nothing is allocated except the `String` of
//! [`Location::subdivision`], which the public type requires and only
//! City databases fill.
//!
//! Measured with the `#[ignore]`d `bench_lookup` test (release build, the
//! 2-core development machine, other work running, so +-25%):
//! - bundled geo-whois-asn-country database: ~110-130 ns per lookup, of which ~65 ns is the
//!   tree walk and ~10 ns the matched network;
//! - GeoIP2-City fixture: ~240-310 ns, of which ~160 ns is the record
//!   decode; decoding the same records into `maxminddb::geoip2::City`
//!   (also borrowed, but every field) took ~350 ns, one `decode_path`
//!   per field ~75 ns each.
//!
//! Not done: caching decoded records by data offset (the reader exposes
//! one). A cache shared by the query threads needs a lock or atomics per
//! query, which costs about what it saves at these numbers.

pub mod cidr;
pub mod client;
mod countries;
mod error;
mod record;
mod tree;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use maxminddb::{PathElement, Reader, WithinOptions};
use serde::Deserialize;

pub(crate) use countries::country_codes;
pub use countries::{country_centroid, country_continent};
pub use error::GeoError;

use record::{FlatRecord, GeoIp2Record, Leaf, ShapeProbe};

/// What the database says about one client address.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Location {
    /// "AF", "AN", "AS", "EU", "NA", "OC" or "SA": from the database, else
    /// derived from the country.
    pub continent: Option<[u8; 2]>,
    /// ISO 3166-1 alpha-2, upper-case. Codes that mean "unknown" (`ZZ`,
    /// `XX` and the other user-assigned codes except `XK`) and the regional
    /// pseudo-countries `EU` and `AP` found in registry data are not
    /// reported as countries; `EU`/`AP` set the continent instead.
    pub country: Option<[u8; 2]>,
    /// ISO 3166-2, like "US-CA": the country, "-", and the first
    /// subdivision's code (1 to 3 letters or digits).
    pub subdivision: Option<Subdivision>,
    /// Latitude and longitude in degrees: the database's location, else
    /// the country's centroid. (0, 0) from a database is treated as
    /// missing: writers use it for "unknown".
    pub coords: Option<(f64, f64)>,
    pub asn: Option<u32>,
    /// Prefix length of the matched database network, in the address's
    /// own family: an IPv4 address (or IPv4-mapped IPv6 address) found
    /// through an IPv6 tree reports e.g. 24, not 120. When nothing matched,
    /// the prefix of the empty network around the address, as the reader
    /// reports it; for an IPv6 address in an IPv4-only database, 0.
    pub prefix_len: u8,
}

/// An ISO 3166-2 subdivision code like "US-CA", held inline (a location is copied
/// per query, so it must not allocate). At most 6 bytes: the country, "-", and 1 to 3
/// letters or digits.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Subdivision {
    bytes: [u8; 6],
    len: u8,
}

impl Subdivision {
    /// `code` when it has the shape of an ISO 3166-2 code ("CC-XXX"), upper-cased.
    pub fn new(code: &str) -> Option<Subdivision> {
        let b = code.as_bytes();
        let ok = (4..=6).contains(&b.len())
            && b[..2].iter().all(u8::is_ascii_alphabetic)
            && b[2] == b'-'
            && b[3..].iter().all(u8::is_ascii_alphanumeric);
        ok.then(|| Subdivision::from(code))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

/// Keeps the first 6 bytes of ASCII (for literals; [`Subdivision::new`] checks the
/// shape).
impl From<&str> for Subdivision {
    fn from(code: &str) -> Subdivision {
        let mut s = Subdivision::default();
        for (i, b) in code.bytes().take_while(u8::is_ascii).take(6).enumerate() {
            s.bytes[i] = b.to_ascii_uppercase();
            s.len = i as u8 + 1;
        }
        s
    }
}

impl std::ops::Deref for Subdivision {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Subdivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Subdivision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Record layout of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Schema {
    /// `continent.code`, `country.iso_code` (else
    /// `registered_country.iso_code`), `subdivisions[0].iso_code`,
    /// `location.latitude`/`longitude`, `autonomous_system_number`.
    GeoIp2,
    /// Top-level `country_code`, and optionally `latitude`, `longitude`,
    /// `autonomous_system_number`.
    FlatCountryCode,
    /// Operator-given paths.
    Custom(FieldPaths),
}

/// Where each field lives in a record: a path of map keys from the top,
/// e.g. `["country", "iso_code"]`. A segment made only of ASCII digits
/// indexes an array (`["subdivisions", "0", "iso_code"]`).
///
/// The subdivision value may be either the ISO 3166-2 suffix ("CA") or the
/// full code ("US-CA"); anything else (e.g. a name) is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldPaths {
    pub country: Vec<String>,
    #[serde(default)]
    pub continent: Option<Vec<String>>,
    #[serde(default)]
    pub subdivision: Option<Vec<String>>,
    #[serde(default)]
    pub latitude: Option<Vec<String>>,
    #[serde(default)]
    pub longitude: Option<Vec<String>>,
    #[serde(default)]
    pub asn: Option<Vec<String>>,
}

/// Longest path accepted in [`FieldPaths`]; lets a lookup build its
/// path-element array on the stack. GeoIP2's deepest useful path has 3.
const MAX_PATH_DEPTH: usize = 8;

impl FieldPaths {
    fn validate(&self) -> Result<(), GeoError> {
        let check = |field: &'static str, path: &[String]| {
            if path.is_empty() {
                return Err(GeoError::InvalidFieldPath {
                    field,
                    reason: "the path is empty",
                });
            }
            if path.len() > MAX_PATH_DEPTH {
                return Err(GeoError::InvalidFieldPath {
                    field,
                    reason: "the path is longer than 8 keys",
                });
            }
            if path.iter().any(String::is_empty) {
                return Err(GeoError::InvalidFieldPath {
                    field,
                    reason: "the path has an empty key",
                });
            }
            Ok(())
        };
        check("country", &self.country)?;
        for (field, path) in [
            ("continent", &self.continent),
            ("subdivision", &self.subdivision),
            ("latitude", &self.latitude),
            ("longitude", &self.longitude),
            ("asn", &self.asn),
        ] {
            if let Some(path) = path {
                check(field, path)?;
            }
        }
        if self.latitude.is_some() != self.longitude.is_some() {
            return Err(GeoError::InvalidFieldPath {
                field: "latitude",
                reason: "latitude and longitude must be given together",
            });
        }
        Ok(())
    }
}

/// A loaded geo database. Cheap to share: `Send + Sync`, lookups take
/// `&self`.
pub struct Locator {
    reader: Reader<tree::DbBytes>,
    /// Lookups by our own walk (the crate's does the same with more work per
    /// lookup): the record and the prefix; `None` for a tree it cannot read.
    v4: Option<tree::TreeIndex>,
    v6: Option<tree::TreeIndex>,
    schema: Schema,
    /// False for IPv4-only databases, which cannot answer IPv6 lookups.
    ipv6_tree: bool,
    /// Records that failed to decode; a counter rather than a log line
    /// because it would fire per query.
    decode_errors: AtomicU64,
    /// Tells this database's records apart from another's in the decode caches.
    id: u64,
}

/// Distinct ids for databases opened by this process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Decoded records per thread, by (database id, record offset): many networks
/// share a record, and decoding one (serde over the MMDB data section) costs more
/// than the tree walk. Cleared when it grows past this many entries.
const DECODED_MAX: usize = 16 * 1024;

thread_local! {
    static DECODED: std::cell::RefCell<rustc_hash::FxHashMap<(u64, usize), Location>> =
        std::cell::RefCell::new(rustc_hash::FxHashMap::default());
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locator")
            .field("database_type", &self.database_type())
            .field("build_epoch", &self.build_epoch())
            .field("schema", &self.schema)
            .field("ipv6_tree", &self.ipv6_tree)
            .finish_non_exhaustive()
    }
}

fn db_error(e: maxminddb::MaxMindDbError) -> GeoError {
    GeoError::Database(Box::new(e))
}

impl Locator {
    /// Reads the whole file into memory and opens it. `paths` forces a
    /// [`Schema::Custom`] layout; `None` detects the layout.
    pub fn open(path: &Path, paths: Option<FieldPaths>) -> Result<Locator, GeoError> {
        // Regular files only, and bounded: a path naming a device or a FIFO must not
        // block a reload or fill memory.
        let bytes = crate::zone::read_file(path).map_err(|source| GeoError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(bytes, paths)
    }

    /// Opens a database held in memory. See [`open`](Self::open).
    pub(crate) fn from_bytes(
        bytes: Vec<u8>,
        paths: Option<FieldPaths>,
    ) -> Result<Locator, GeoError> {
        let bytes = tree::DbBytes(std::sync::Arc::new(bytes));
        let reader = Reader::from_source(bytes.clone()).map_err(db_error)?;
        let m = reader.metadata();
        let v4 = tree::TreeIndex::new(
            bytes.clone(),
            m.node_count,
            m.record_size,
            m.ip_version,
            false,
        );
        let v6 = tree::TreeIndex::new(bytes, m.node_count, m.record_size, m.ip_version, true);
        let schema = match paths {
            Some(paths) => {
                paths.validate()?;
                Schema::Custom(paths)
            }
            None => detect_schema(&reader)?,
        };
        let ipv6_tree = reader.metadata().ip_version == 6;
        Ok(Locator {
            reader,
            v4,
            v6,
            schema,
            ipv6_tree,
            decode_errors: AtomicU64::new(0),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Checks the whole search tree and every record. Slow (it visits the
    /// entire file), so it is not part of [`open`](Self::open); run it when
    /// loading a database from an untrusted or new source.
    pub fn verify(&self) -> Result<(), GeoError> {
        self.reader.verify().map_err(db_error)
    }

    /// The metadata's `database_type`, e.g. "GeoLite2-City".
    pub(crate) fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// When the database was built, in seconds since the Unix epoch.
    pub(crate) fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The layout in use, detected or given.
    #[cfg(test)]
    pub(crate) fn schema(&self) -> &Schema {
        &self.schema
    }

    /// How many lookups hit a record they could not decode or a broken
    /// tree pointer (both answered as if nothing matched). Only a damaged
    /// or unusual database makes this grow; worth exporting as a metric.
    #[cfg(test)]
    pub(crate) fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }

    /// Looks up a client address. Never fails: addresses the database does
    /// not cover give a [`Location`] with only `prefix_len` set.
    pub fn lookup(&self, ip: IpAddr) -> Location {
        // Dual-stack sockets show IPv4 clients as ::ffff:a.b.c.d. Many
        // databases alias that range to their IPv4 data, but not all (the
        // ip-location-db files do not), and the prefix length must come out
        // in IPv4 terms anyway.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if ip.is_ipv6() && !self.ipv6_tree {
            // The reader would return an error, whose message allocates.
            return Location::default();
        }
        // The record decoded before: our walk finds it without building the
        // crate's lookup result.
        let walked = match ip {
            IpAddr::V4(v4) => self
                .v4
                .as_ref()
                .map(|i| (i, u128::from(u32::from(v4)) << 96)),
            IpAddr::V6(v6) => self.v6.as_ref().map(|i| (i, u128::from(v6))),
        };
        if let Some((idx, key)) = walked {
            match idx.lookup(key) {
                Some((tree::Found::Nothing, prefix_len)) => {
                    return Location {
                        prefix_len,
                        ..Location::default()
                    };
                }
                Some((tree::Found::Data(offset), prefix_len)) => {
                    if let Some(mut loc) =
                        DECODED.with_borrow(|c| c.get(&(self.id, offset)).copied())
                    {
                        loc.prefix_len = prefix_len;
                        return loc;
                    }
                }
                None => {}
            }
        }
        let full_len = if ip.is_ipv4() { 32 } else { 128 };
        let result = match self.reader.lookup(ip) {
            Ok(result) => result,
            Err(_) => {
                // Only a corrupt tree pointer gets here. The longest prefix
                // keeps an ECS cache from spreading this answer.
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                return Location {
                    prefix_len: full_len,
                    ..Location::default()
                };
            }
        };
        let prefix_len = match result.network() {
            // An IPv4 address matched above the IPv4 subtree of an IPv6
            // tree comes back as an IPv6 network of at most /96 covering
            // all of IPv4: /0 in IPv4 terms.
            Ok(net) if ip.is_ipv4() && net.is_ipv6() => net.prefix().saturating_sub(96),
            Ok(net) => net.prefix(),
            Err(_) => full_len,
        };
        let Some(offset) = result.offset() else {
            return Location {
                prefix_len,
                ..Location::default()
            };
        };
        let key = (self.id, offset);
        if let Some(mut loc) = DECODED.with_borrow(|c| c.get(&key).copied()) {
            loc.prefix_len = prefix_len;
            return loc;
        }
        let fields = match &self.schema {
            Schema::GeoIp2 => result.decode::<GeoIp2Record>().map(|r| r.map(Fields::from)),
            Schema::FlatCountryCode => result.decode::<FlatRecord>().map(|r| r.map(Fields::from)),
            Schema::Custom(paths) => decode_custom(&result, paths),
        };
        match fields {
            Ok(Some(fields)) => {
                let loc = fields.into_location(prefix_len);
                DECODED.with_borrow_mut(|c| {
                    if c.len() >= DECODED_MAX {
                        c.clear();
                    }
                    c.insert(key, loc);
                });
                loc
            }
            Ok(None) => Location {
                prefix_len,
                ..Location::default()
            },
            Err(_) => {
                self.decode_errors.fetch_add(1, Ordering::Relaxed);
                Location {
                    prefix_len,
                    ..Location::default()
                }
            }
        }
    }
}

/// Most leaves [`Locator::networks`] walks in one family: a full-size City
/// database has a few million, counted again under each alias of its IPv4 subtree.
const MAX_LEAVES: usize = 64 << 20;

/// The id [`Locator::networks`] gives IPv4-mapped IPv6 addresses
/// (`::ffff:0:0/96`): they are located as IPv4 and never through the IPv6 tree.
pub(crate) const MAPPED_ID: u32 = u32::MAX;

/// Ids of [`client::ClientLocator::blocks`] from here on are overrides; the
/// database's are below.
pub(crate) const OVERRIDE_ID: u32 = 1 << 31;

/// `::ffff:0:0/96`, left-aligned.
const MAPPED_KEY: u128 = 0xffff << 32;

/// Calls `visit` for the block `key/len`, cut around `::ffff:0:0/96` when it holds
/// that block and more; the mapped block gets [`MAPPED_ID`].
pub(crate) fn visit_cut_at_mapped(
    key: u128,
    len: u8,
    id: u32,
    loc: &Location,
    visit: &mut dyn FnMut(u128, u8, u32, &Location),
) {
    let holds_mapped = len <= 96 && cidr::prefix_mask(len) & MAPPED_KEY == key;
    if !holds_mapped {
        return visit(key, len, id, loc);
    }
    if len == 96 {
        return visit(key, len, MAPPED_ID, &Location::default());
    }
    let half = 1u128 << (127 - len);
    visit_cut_at_mapped(key, len + 1, id, loc, visit);
    visit_cut_at_mapped(key | half, len + 1, id, loc, visit);
}

impl Locator {
    /// Calls `visit(first address, prefix length, id, location)` for every network
    /// of the database in one family (IPv4 addresses in the top 32 bits of the
    /// key), and for the empty networks between them, in address order: together
    /// they cover the family once, and [`lookup`](Self::lookup) gives `location`
    /// (but for `prefix_len`) for every address of each. Equal `id`s mean equal
    /// locations; 0 is "no data", [`MAPPED_ID`] the IPv4-mapped block of IPv6
    /// (located as IPv4). An IPv6 walk of an IPv4-only database is one empty
    /// network and the mapped block.
    pub fn networks(
        &self,
        v6: bool,
        visit: &mut dyn FnMut(u128, u8, u32, &Location),
    ) -> Result<(), GeoError> {
        let unwalkable = |reason| GeoError::Unwalkable { reason };
        let nothing = Location::default();
        if v6 && !self.ipv6_tree {
            visit_cut_at_mapped(0, 0, 0, &nothing, visit);
            return Ok(());
        }
        let idx = if v6 { &self.v6 } else { &self.v4 };
        let idx = idx
            .as_ref()
            .ok_or(unwalkable("its record size is not 24, 28 or 32 bits"))?;
        let mut seen: rustc_hash::FxHashMap<usize, Location> = Default::default();
        let mut failed = None;
        let walked = idx.leaves(MAX_LEAVES, &mut |key, len, found| {
            if failed.is_some() {
                return;
            }
            let offset = match found {
                tree::Found::Nothing if v6 => {
                    return visit_cut_at_mapped(key, len, 0, &nothing, visit)
                }
                tree::Found::Nothing => return visit(key, len, 0, &nothing),
                tree::Found::Data(offset) => offset,
            };
            if v6 && len >= 96 && key & cidr::prefix_mask(96) == MAPPED_KEY {
                return visit(key, len, MAPPED_ID, &nothing);
            }
            let Some(id) = u32::try_from(offset + 1).ok().filter(|&i| i < OVERRIDE_ID) else {
                failed = Some("a record lies past 2 GiB");
                return;
            };
            let loc = match seen.get(&offset) {
                Some(loc) => *loc,
                None => {
                    let ip = if v6 {
                        IpAddr::V6(std::net::Ipv6Addr::from(key))
                    } else {
                        IpAddr::V4(std::net::Ipv4Addr::from((key >> 96) as u32))
                    };
                    let loc = self.lookup(ip);
                    if loc.prefix_len != len {
                        failed = Some("a network's lookup disagrees with the tree");
                        return;
                    }
                    seen.insert(offset, loc);
                    loc
                }
            };
            if v6 {
                visit_cut_at_mapped(key, len, id, &loc, visit);
            } else {
                visit(key, len, id, &loc);
            }
        });
        if let Some(reason) = failed {
            return Err(unwalkable(reason));
        }
        walked.ok_or(unwalkable(
            "its tree points outside the file or has too many networks",
        ))
    }
}

/// Layout from the metadata's `database_type` when it is one we know,
/// else from the keys of the first records.
fn detect_schema(reader: &Reader<tree::DbBytes>) -> Result<Schema, GeoError> {
    let database_type = &reader.metadata().database_type;
    if let Some(schema) = schema_for_type(database_type) {
        return Ok(schema);
    }
    // Look at a few records only: opening a large database must stay fast.
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(db_error)?;
    for item in networks.take(64) {
        let Ok(result) = item else { continue };
        let Ok(Some(probe)) = result.decode::<ShapeProbe>() else {
            continue;
        };
        if probe.country_code.is_some() {
            return Ok(Schema::FlatCountryCode);
        }
        if probe.country.is_some()
            || probe.registered_country.is_some()
            || probe.continent.is_some()
            || probe.location.is_some()
            || probe.autonomous_system_number.is_some()
        {
            return Ok(Schema::GeoIp2);
        }
    }
    Err(GeoError::UnknownSchema {
        database_type: database_type.clone(),
    })
}

fn schema_for_type(database_type: &str) -> Option<Schema> {
    let t = database_type.to_ascii_lowercase();
    // MaxMind: "GeoIP2-City", "GeoLite2-Country", "GeoLite2-ASN",
    // "GeoIP2-Enterprise"...; DB-IP: "DBIP-City-Lite", "DBIP-Country-Lite",
    // "DBIP-ASN-Lite".
    if ["geoip2-", "geolite2-", "geoip-", "dbip-"]
        .iter()
        .any(|p| t.starts_with(p))
    {
        return Some(Schema::GeoIp2);
    }
    // ip-location-db: "country ipvAll", "country ipv4", "country ipv6",
    // and the same pattern for its city and asn files.
    if ["country ipv", "city ipv", "asn ipv"]
        .iter()
        .any(|p| t.starts_with(p))
    {
        return Some(Schema::FlatCountryCode);
    }
    None
}

/// Field values as found in a record, before validation.
#[derive(Debug, Default)]
struct Fields<'a> {
    country: Option<&'a str>,
    continent: Option<&'a str>,
    subdivision: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    asn: Option<u32>,
}

impl<'a> From<GeoIp2Record<'a>> for Fields<'a> {
    fn from(r: GeoIp2Record<'a>) -> Self {
        let iso = |c: Option<record::CountryField<'a>>| c.and_then(|c| c.iso_code?.as_str());
        let (latitude, longitude) = r.location.map_or((None, None), |l| {
            (
                l.latitude.and_then(Leaf::as_f64),
                l.longitude.and_then(Leaf::as_f64),
            )
        });
        Fields {
            country: iso(r.country).or_else(|| iso(r.registered_country)),
            continent: r.continent.and_then(|c| c.code?.as_str()),
            subdivision: iso(r.subdivisions),
            latitude,
            longitude,
            asn: r.autonomous_system_number.and_then(Leaf::as_u32),
        }
    }
}

impl<'a> From<FlatRecord<'a>> for Fields<'a> {
    fn from(r: FlatRecord<'a>) -> Self {
        Fields {
            country: r.country_code.and_then(Leaf::as_str),
            continent: None,
            subdivision: None,
            latitude: r.latitude.and_then(Leaf::as_f64),
            longitude: r.longitude.and_then(Leaf::as_f64),
            asn: r.autonomous_system_number.and_then(Leaf::as_u32),
        }
    }
}

/// One `decode_path` per configured field. Each walk restarts at the top
/// of the record, so this is slower than the typed layouts, but it
/// allocates nothing: the path elements borrow the configured strings and
/// live in a stack array.
fn decode_custom<'a>(
    result: &maxminddb::LookupResult<'a, tree::DbBytes>,
    paths: &FieldPaths,
) -> Result<Option<Fields<'a>>, maxminddb::MaxMindDbError> {
    if !result.has_data() {
        return Ok(None);
    }
    let leaf = |path: Option<&Vec<String>>| -> Result<Option<Leaf<'a>>, maxminddb::MaxMindDbError> {
        let Some(path) = path else { return Ok(None) };
        let elements: [PathElement<'_>; MAX_PATH_DEPTH] =
            std::array::from_fn(|i| match path.get(i) {
                Some(seg) if seg.bytes().all(|b| b.is_ascii_digit()) => seg
                    .parse()
                    .map_or(PathElement::Key(seg), PathElement::Index),
                Some(seg) => PathElement::Key(seg),
                None => PathElement::Index(0),
            });
        let depth = path.len().min(MAX_PATH_DEPTH);
        result.decode_path::<Leaf<'a>>(&elements[..depth])
    };
    Ok(Some(Fields {
        country: leaf(Some(&paths.country))?.and_then(Leaf::as_str),
        continent: leaf(paths.continent.as_ref())?.and_then(Leaf::as_str),
        subdivision: leaf(paths.subdivision.as_ref())?.and_then(Leaf::as_str),
        latitude: leaf(paths.latitude.as_ref())?.and_then(Leaf::as_f64),
        longitude: leaf(paths.longitude.as_ref())?.and_then(Leaf::as_f64),
        asn: leaf(paths.asn.as_ref())?.and_then(Leaf::as_u32),
    }))
}

/// Two ASCII letters, upper-cased.
fn code2(s: &str) -> Option<[u8; 2]> {
    match s.trim().as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// ISO 3166 leaves AA, QM-QZ, XA-XZ and ZZ to users; databases use them
/// for "unknown" (ZZ, XX). XK is the exception everyone uses for Kosovo.
fn is_user_assigned(cc: [u8; 2]) -> bool {
    match cc {
        [b'A', b'A'] | [b'Z', b'Z'] => true,
        [b'X', b'K'] => false,
        [b'X', _] => true,
        [b'Q', second] => second >= b'M',
        _ => false,
    }
}

const CONTINENTS: [[u8; 2]; 7] = [*b"AF", *b"AN", *b"AS", *b"EU", *b"NA", *b"OC", *b"SA"];

impl Fields<'_> {
    fn into_location(self, prefix_len: u8) -> Location {
        let mut continent = self
            .continent
            .and_then(code2)
            .filter(|c| CONTINENTS.contains(c));
        let country = match self.country.and_then(code2) {
            // Registry data (and old MaxMind files) use EU and AP for
            // space allocated to a whole region: a continent, no country.
            Some(cc) if cc == *b"EU" => {
                continent.get_or_insert(*b"EU");
                None
            }
            Some(cc) if cc == *b"AP" => {
                continent.get_or_insert(*b"AS");
                None
            }
            Some(cc) if is_user_assigned(cc) => None,
            other => other,
        };
        // One table search serves both fallbacks.
        let row = country.and_then(countries::find);
        if continent.is_none() {
            continent = row.map(|r| r.continent);
        }
        let coords = match (self.latitude, self.longitude) {
            (Some(lat), Some(lon))
                if (-90.0..=90.0).contains(&lat)
                    && (-180.0..=180.0).contains(&lon)
                    && (lat, lon) != (0.0, 0.0) =>
            {
                Some((lat, lon))
            }
            _ => row.map(|r| (r.lat, r.lon)),
        };
        let subdivision = match (country, self.subdivision) {
            (Some(cc), Some(code)) => subdivision_code(cc, code),
            _ => None,
        };
        Location {
            continent,
            country,
            subdivision,
            coords,
            asn: self.asn,
            prefix_len,
        }
    }
}

/// "CA" or "US-CA" under country US → "US-CA". ISO 3166-2 suffixes are 1 to
/// 3 letters or digits; anything else (a name, another country's code) is
/// not a subdivision code.
fn subdivision_code(cc: [u8; 2], code: &str) -> Option<Subdivision> {
    let code = code.trim();
    let suffix = match code.as_bytes() {
        [a, b, b'-', ..] if a.eq_ignore_ascii_case(&cc[0]) && b.eq_ignore_ascii_case(&cc[1]) => {
            code.get(3..)?
        }
        _ => code,
    };
    if suffix.is_empty() || suffix.len() > 3 || !suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let mut s = Subdivision {
        bytes: [cc[0], cc[1], b'-', 0, 0, 0],
        len: 3 + suffix.len() as u8,
    };
    for (i, b) in suffix.bytes().enumerate() {
        s.bytes[3 + i] = b.to_ascii_uppercase();
    }
    Some(s)
}

#[cfg(test)]
mod tests;
