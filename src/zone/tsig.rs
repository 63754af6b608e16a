//! Transaction signatures (TSIG, RFC 8945): a shared-secret HMAC over a DNS
//! message, for zone transfers and NOTIFY between servers that share a key.
//!
//! The API is small; every function takes the time (`now`, seconds since the
//! epoch) from its caller, so nothing here reads a clock or does I/O:
//!
//! - A client signs its request with [`sign_request`] and keeps the MAC it
//!   returns; it checks the answer, one message or a zone transfer's stream of
//!   them, with a [`ResponseVerifier`] made from that MAC.
//! - A server checks a request with [`verify_request`] against its [`Keyring`];
//!   on success it signs each message of its answer with the [`ResponseSigner`]
//!   it gets back (the first with the request's MAC, each next one with the MAC
//!   before it, RFC 8945 §5.3.1); on failure, [`error_response`] turns the
//!   failure into the NOTAUTH answer the RFC asks for (BADKEY, BADSIG, BADTIME).
//!
//! Invariants: a MAC is always checked in full (no truncated MACs: a shorter one
//! is BADSIG), with [`crate::secret::same`]; a signed message is never accepted
//! with its time outside `fudge` of ours; a verifier accepts at most
//! [`MAX_UNSIGNED`] unsigned messages between two signed ones of a stream.

use ring::hmac;

use super::name::{wire_name_len, Name};
use super::{class, rtype};

/// The fudge signpost writes in its own signatures: seconds of clock difference
/// allowed (RFC 8945 §10 recommends 300).
pub(crate) const FUDGE: u16 = 300;

/// Unsigned messages allowed between two signed ones of one transfer (RFC 8945
/// §5.3.1: "at least every 100th").
pub(crate) const MAX_UNSIGNED: usize = 99;

/// TSIG error codes (RFC 8945 §3, the extended RCODE registry).
pub mod error {
    pub const BADSIG: u16 = 16;
    pub(crate) const BADKEY: u16 = 17;
    pub(crate) const BADTIME: u16 = 18;
}

/// RCODE NOTAUTH, which an answer carrying a TSIG error has (RFC 8945 §5.3.2).
pub(crate) const NOTAUTH: u8 = 9;

/// The HMAC algorithms signpost knows (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// Every algorithm, for error messages and lookups.
    pub(crate) const ALL: [Algorithm; 3] = [
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The name as configs and `kdig -y` write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// From the name a config writes (`hmac-sha256`, case-insensitive).
    pub fn from_name(s: &str) -> Option<Algorithm> {
        let s = s.trim_end_matches('.');
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The algorithm name in wire form (`hmac-sha256.`).
    fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    fn from_wire(wire: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.wire().eq_ignore_ascii_case(wire))
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
}

/// One shared key: its name (the TSIG record's owner), algorithm and secret.
#[derive(Clone)]
pub struct Key {
    pub name: Name,
    pub algorithm: Algorithm,
    key: hmac::Key,
    /// A digest of the secret, to tell a changed secret at reload.
    secret_digest: [u8; 32],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Key({} {})", self.name, self.algorithm.as_str())
    }
}

impl Key {
    pub fn new(name: Name, algorithm: Algorithm, secret: &[u8]) -> Key {
        let mut secret_digest = [0u8; 32];
        secret_digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, secret).as_ref());
        Key {
            name,
            algorithm,
            key: hmac::Key::new(algorithm.ring(), secret),
            secret_digest,
        }
    }

    /// Whether `other` is the same key: name, algorithm and secret.
    pub(crate) fn same_as(&self, other: &Key) -> bool {
        self.name == other.name
            && self.algorithm == other.algorithm
            && self.secret_digest == other.secret_digest
    }
}

/// The keys a server accepts, looked up by name and algorithm.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    pub keys: Vec<Key>,
}

impl Keyring {
    pub fn get(&self, name: &Name, algorithm: Algorithm) -> Option<&Key> {
        self.keys
            .iter()
            .find(|k| &k.name == name && k.algorithm == algorithm)
    }

    /// The key called `name`, whatever its algorithm (config references).
    pub(crate) fn named(&self, name: &Name) -> Option<&Key> {
        self.keys.iter().find(|k| &k.name == name)
    }
}

/// Why a message's TSIG was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The message does not parse far enough to find its records.
    #[error("malformed message")]
    Malformed,
    /// The message carries no TSIG record (or it is not the last record).
    #[error("not signed")]
    Unsigned,
    /// A key we do not have, or an algorithm we do not know (BADKEY).
    #[error("unknown key {0}")]
    BadKey(String),
    /// The MAC does not match (BADSIG).
    #[error("bad signature")]
    BadSig,
    /// Signed too far from our time (BADTIME); holds the time it was signed, and
    /// the MAC so that the error answer can be signed.
    #[error("time {signed} outside the fudge")]
    BadTime { signed: u64 },
    /// The peer's answer carries a TSIG error code of its own.
    #[error("peer reports TSIG error {0}")]
    PeerError(u16),
    /// Too many unsigned messages in a row in a transfer.
    #[error("more than {MAX_UNSIGNED} unsigned messages in a row")]
    TooManyUnsigned,
}

impl Failure {
    /// The TSIG error code an answer reports for it.
    pub fn code(&self) -> u16 {
        match self {
            Failure::BadKey(_) => error::BADKEY,
            Failure::BadTime { .. } => error::BADTIME,
            _ => error::BADSIG,
        }
    }
}

/// A parsed TSIG record and where it starts in its message.
#[derive(Debug)]
struct Found<'m> {
    /// Offset of the record's owner name: the message without TSIG ends here.
    at: usize,
    key_name: Name,
    algorithm_wire: &'m [u8],
    time: u64,
    fudge: u16,
    mac: &'m [u8],
    original_id: u16,
    error: u16,
    other: &'m [u8],
}

/// Length of the (possibly compressed) name at `pos`.
fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let b = *msg.get(pos)?;
        match b & 0xC0 {
            0x00 if b == 0 => return Some(pos + 1 - start),
            0x00 => pos += 1 + b as usize,
            0xC0 => return Some(pos + 2 - start),
            _ => return None,
        }
        if pos - start > 255 {
            return None;
        }
    }
}

fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// Finds the TSIG record, which must be the last record of the message.
fn find(msg: &[u8]) -> Result<Option<Found<'_>>, Failure> {
    find_inner(msg).ok_or(Failure::Malformed)
}

fn find_inner(msg: &[u8]) -> Option<Option<Found<'_>>> {
    if msg.len() < 12 {
        return None;
    }
    let qd = u16_at(msg, 4)? as usize;
    let records = u16_at(msg, 6)? as usize + u16_at(msg, 8)? as usize;
    let ar = u16_at(msg, 10)? as usize;
    let mut pos = 12;
    for _ in 0..qd {
        pos += skip_name(msg, pos)? + 4;
    }
    // Every record but the last additional one.
    let before_last = (records + ar).checked_sub(1);
    let Some(before_last) = before_last else {
        return Some(None);
    };
    for _ in 0..before_last {
        pos += skip_name(msg, pos)?;
        let rdlen = u16_at(msg, pos + 8)? as usize;
        pos += 10 + rdlen;
    }
    if ar == 0 {
        return Some(None);
    }
    let at = pos;
    let owner_len = skip_name(msg, pos)?;
    let rt = u16_at(msg, pos + owner_len)?;
    if rt != rtype::TSIG {
        return Some(None);
    }
    // The key name is never compressed in practice, but may be: only an
    // uncompressed one is accepted as a key name.
    let key_name = Name::from_wire(msg.get(pos..pos + owner_len)?)?;
    pos += owner_len + 8;
    let rdlen = u16_at(msg, pos)? as usize;
    pos += 2;
    let rdata = msg.get(pos..pos + rdlen)?;
    if pos + rdlen != msg.len() {
        return None;
    }
    let alg_len = wire_name_len(rdata)?;
    let algorithm_wire = &rdata[..alg_len];
    let r = &rdata[alg_len..];
    let time_bytes = r.get(..6)?;
    let time = time_bytes
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let fudge = u16_at(r, 6)?;
    let mac_len = u16_at(r, 8)? as usize;
    let mac = r.get(10..10 + mac_len)?;
    let r = &r[10 + mac_len..];
    let original_id = u16_at(r, 0)?;
    let error = u16_at(r, 2)?;
    let other_len = u16_at(r, 4)? as usize;
    let other = r.get(6..6 + other_len)?;
    if r.len() != 6 + other_len {
        return None;
    }
    Some(Some(Found {
        at,
        key_name,
        algorithm_wire,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

/// Feeds the message as it was before TSIG was added: ARCOUNT one less, the
/// original ID (RFC 8945 §4.3.3).
fn feed_message(ctx: &mut hmac::Context, msg: &[u8], found: &Found<'_>) {
    let mut head = [0u8; 12];
    head.copy_from_slice(&msg[..12]);
    head[..2].copy_from_slice(&found.original_id.to_be_bytes());
    let ar = u16::from_be_bytes([head[10], head[11]]).saturating_sub(1);
    head[10..12].copy_from_slice(&ar.to_be_bytes());
    ctx.update(&head);
    ctx.update(&msg[12..found.at]);
}

fn time48(t: u64) -> [u8; 6] {
    let b = t.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// The TSIG variables of RFC 8945 §4.3.3 (`full`), or only the timers of
/// §4.3.1 for the second and later messages of a stream.
fn feed_variables(
    ctx: &mut hmac::Context,
    key: &Key,
    time: u64,
    fudge: u16,
    err: u16,
    other: &[u8],
    full: bool,
) {
    if full {
        ctx.update(key.name.wire());
        ctx.update(&class::ANY.to_be_bytes());
        ctx.update(&0u32.to_be_bytes());
        ctx.update(key.algorithm.wire());
    }
    ctx.update(&time48(time));
    ctx.update(&fudge.to_be_bytes());
    if full {
        ctx.update(&err.to_be_bytes());
        ctx.update(&(other.len() as u16).to_be_bytes());
        ctx.update(other);
    }
}

fn feed_prior(ctx: &mut hmac::Context, prior: &[u8]) {
    ctx.update(&(prior.len() as u16).to_be_bytes());
    ctx.update(prior);
}

/// Appends the TSIG record to `msg` and counts it in ARCOUNT.
fn append(msg: &mut Vec<u8>, key: &Key, time: u64, mac: &[u8], err: u16, other: &[u8]) {
    let original_id = [msg[0], msg[1]];
    msg.extend_from_slice(key.name.wire());
    msg.extend_from_slice(&rtype::TSIG.to_be_bytes());
    msg.extend_from_slice(&class::ANY.to_be_bytes());
    msg.extend_from_slice(&0u32.to_be_bytes());
    let alg = key.algorithm.wire();
    let rdlen = alg.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(alg);
    msg.extend_from_slice(&time48(time));
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&original_id);
    msg.extend_from_slice(&err.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
    let ar = u16::from_be_bytes([msg[10], msg[11]]).wrapping_add(1);
    msg[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Bytes [`sign_request`] and the signers add to a message with `key`: room to
/// leave when filling a message up to its size limit.
pub(crate) fn overhead(key: &Key) -> usize {
    let mac = key.algorithm.ring().digest_algorithm().output_len();
    key.name.wire().len() + 10 + key.algorithm.wire().len() + 16 + mac + 6 /* BADTIME other */
}

/// Signs a request (a query, a NOTIFY, an UPDATE): appends the TSIG record to
/// `msg`, a complete DNS message. Returns the MAC, which the answer's
/// verification starts from ([`ResponseVerifier::new`]).
pub(crate) fn sign_request(msg: &mut Vec<u8>, key: &Key, now: u64) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(&key.key);
    ctx.update(msg);
    feed_variables(&mut ctx, key, now, FUDGE, 0, &[], true);
    let mac = ctx.sign();
    append(msg, key, now, mac.as_ref(), 0, &[]);
    mac.as_ref().to_vec()
}

/// A request whose TSIG checked out: the key, and the signer for its answer.
#[derive(Debug)]
pub(crate) struct Verified<'k> {
    pub key: &'k Key,
    pub signer: ResponseSigner<'k>,
}

/// What a failed check leaves for the error answer: the key and the request's
/// MAC when they are known (BADTIME answers are signed, RFC 8945 §5.2.3).
#[derive(Debug)]
pub struct Rejected<'k> {
    pub failure: Failure,
    /// The key's name and algorithm as the request wrote them (for the error's
    /// TSIG record), when the message parsed that far.
    pub key_name: Option<Name>,
    pub algorithm: Option<Algorithm>,
    /// Boxed: the HMAC state is large, and a rejection is the rare path.
    signer: Option<Box<ResponseSigner<'k>>>,
}

/// Checks the TSIG of a request against `keys`. `Ok(None)`: the request is not
/// signed (whether that is allowed is the caller's policy).
pub(crate) fn verify_request<'k>(
    msg: &[u8],
    keys: &'k Keyring,
    now: u64,
) -> Result<Option<Verified<'k>>, Rejected<'k>> {
    let rejected = |failure, key_name, algorithm, signer| Rejected {
        failure,
        key_name,
        algorithm,
        signer,
    };
    let found = match find(msg) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(f) => return Err(rejected(f, None, None, None)),
    };
    let algorithm = Algorithm::from_wire(found.algorithm_wire);
    let key = algorithm.and_then(|a| keys.get(&found.key_name, a));
    let (Some(algorithm), Some(key)) = (algorithm, key) else {
        let name = found.key_name.to_string();
        return Err(rejected(
            Failure::BadKey(name),
            Some(found.key_name),
            algorithm,
            None,
        ));
    };
    let mut ctx = hmac::Context::with_key(&key.key);
    feed_message(&mut ctx, msg, &found);
    feed_variables(
        &mut ctx,
        key,
        found.time,
        found.fudge,
        found.error,
        found.other,
        true,
    );
    let want = ctx.sign();
    if !crate::secret::same(found.mac, want.as_ref()) {
        return Err(rejected(
            Failure::BadSig,
            Some(found.key_name),
            Some(algorithm),
            None,
        ));
    }
    let signer = ResponseSigner::new(key, found.mac);
    if now.abs_diff(found.time) > u64::from(found.fudge) {
        return Err(rejected(
            Failure::BadTime { signed: found.time },
            Some(found.key_name),
            Some(algorithm),
            Some(Box::new(signer)),
        ));
    }
    Ok(Some(Verified { key, signer }))
}

/// Signs the messages of one answer in order: the first with the request's MAC
/// and the full variables, each next one with the MAC before it and the timers
/// (RFC 8945 §5.3.1). signpost signs every message; [`ResponseSigner::skip`]
/// lets a message go unsigned (it still counts into the next MAC).
pub(crate) struct ResponseSigner<'k> {
    key: &'k Key,
    /// The prior MAC and any unsigned messages since, fed.
    ctx: hmac::Context,
    first: bool,
}

impl std::fmt::Debug for ResponseSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseSigner({:?})", self.key)
    }
}

impl<'k> ResponseSigner<'k> {
    fn new(key: &'k Key, request_mac: &[u8]) -> ResponseSigner<'k> {
        let mut ctx = hmac::Context::with_key(&key.key);
        feed_prior(&mut ctx, request_mac);
        ResponseSigner {
            key,
            ctx,
            first: true,
        }
    }

    /// Appends the TSIG record to `msg`, the next message of the answer.
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) {
        self.sign_with(msg, now, 0, &[]);
    }

    /// Sends `msg` unsigned (not the first or last message of an answer, and
    /// at most [`MAX_UNSIGNED`] in a row).
    #[cfg(test)]
    pub fn skip(&mut self, msg: &[u8]) {
        self.ctx.update(msg);
    }

    fn sign_with(&mut self, msg: &mut Vec<u8>, now: u64, err: u16, other: &[u8]) {
        let mut ctx = std::mem::replace(&mut self.ctx, hmac::Context::with_key(&self.key.key));
        ctx.update(msg);
        feed_variables(&mut ctx, self.key, now, FUDGE, err, other, self.first);
        let mac = ctx.sign();
        append(msg, self.key, now, mac.as_ref(), err, other);
        feed_prior(&mut self.ctx, mac.as_ref());
        self.first = false;
    }
}

/// Makes `msg`, a response already holding the question (header with QR set),
/// the answer to a request that failed its TSIG check: RCODE NOTAUTH and a TSIG
/// record with the error code; unsigned (empty MAC) but for BADTIME, which is
/// signed and carries our time (RFC 8945 §5.2).
pub(crate) fn error_response(msg: &mut Vec<u8>, rejected: Rejected<'_>, now: u64) {
    if msg.len() < 12 {
        return;
    }
    msg[3] = (msg[3] & 0xF0) | NOTAUTH;
    let code = rejected.failure.code();
    if let (Failure::BadTime { .. }, Some(mut signer)) = (&rejected.failure, rejected.signer) {
        signer.sign_with(msg, now, code, &time48(now));
        return;
    }
    let (Some(name), Some(algorithm)) = (rejected.key_name, rejected.algorithm) else {
        // No key name or an algorithm we cannot name: no TSIG record to write.
        return;
    };
    let key = Key::new(name, algorithm, &[]);
    append(msg, &key, now, &[], code, &[]);
}

/// For a server's answer to an ordinary (not transfer) request: when `request`
/// is signed with a key of `keys`, signs `answer`; when its TSIG fails, makes
/// `answer` the TSIG error (its header and question kept, records dropped). An
/// unsigned request leaves `answer` as it is.
pub(crate) fn sign_answer(keys: &Keyring, request: &[u8], answer: &mut Vec<u8>, now: u64) {
    if answer.len() < 12 {
        return;
    }
    match verify_request(request, keys, now) {
        Ok(None) => {}
        Ok(Some(mut v)) => v.signer.sign(answer, now),
        Err(rejected) => {
            let question = if answer[4..6] == [0, 1] {
                wire_name_len(&answer[12..]).map_or(0, |n| n + 4)
            } else {
                0
            };
            answer.truncate((12 + question).min(answer.len()));
            answer[6..12].fill(0);
            error_response(answer, rejected, now);
        }
    }
}

/// [`sign_answer`] for an answer that must fit in `limit()` bytes (UDP; asked
/// only of a signed answer over 512 bytes): when the
/// signed answer would not, it becomes the header and question alone, TC set
/// and NOERROR, signed (RFC 8945 §5.3), and the client asks again over TCP.
pub(crate) fn sign_answer_within(
    keys: &Keyring,
    request: &[u8],
    answer: &mut Vec<u8>,
    now: u64,
    limit: impl FnOnce() -> usize,
) {
    let before = answer.len();
    sign_answer(keys, request, answer, now);
    if answer.len() <= 512 || answer.len() == before || answer.len() <= limit() {
        return;
    }
    let Ok(Some(mut v)) = verify_request(request, keys, now) else {
        // A TSIG error answer holds no records: it is as short as it gets.
        return;
    };
    let question = if answer[4..6] == [0, 1] {
        wire_name_len(&answer[12..]).map_or(0, |n| n + 4)
    } else {
        0
    };
    answer.truncate((12 + question).min(answer.len()));
    answer[2] |= 0x02;
    answer[3] &= 0xF0;
    answer[6..12].fill(0);
    v.signer.sign(answer, now);
}

/// Checks the messages of an answer to a signed request in order (one message,
/// or every message of a zone transfer): the first must be signed; later ones
/// may go unsigned for up to [`MAX_UNSIGNED`] in a row, and the last must be
/// signed (call [`ResponseVerifier::finish`] after it).
pub(crate) struct ResponseVerifier<'k> {
    key: &'k Key,
    ctx: hmac::Context,
    first: bool,
    unsigned: usize,
}

impl<'k> ResponseVerifier<'k> {
    /// `request_mac` is what [`sign_request`] returned.
    pub fn new(key: &'k Key, request_mac: &[u8]) -> ResponseVerifier<'k> {
        let mut ctx = hmac::Context::with_key(&key.key);
        feed_prior(&mut ctx, request_mac);
        ResponseVerifier {
            key,
            ctx,
            first: true,
            unsigned: 0,
        }
    }

    /// Checks the next message. Once it fails, the whole answer is to be dropped.
    pub fn verify(&mut self, msg: &[u8], now: u64) -> Result<(), Failure> {
        let found = find(msg)?;
        let Some(found) = found else {
            if self.first {
                return Err(Failure::Unsigned);
            }
            self.unsigned += 1;
            if self.unsigned > MAX_UNSIGNED {
                return Err(Failure::TooManyUnsigned);
            }
            self.ctx.update(msg);
            return Ok(());
        };
        if found.key_name != self.key.name
            || Algorithm::from_wire(found.algorithm_wire) != Some(self.key.algorithm)
        {
            return Err(Failure::BadKey(found.key_name.to_string()));
        }
        if found.error != 0 {
            return Err(Failure::PeerError(found.error));
        }
        let mut ctx = std::mem::replace(&mut self.ctx, hmac::Context::with_key(&self.key.key));
        feed_message(&mut ctx, msg, &found);
        feed_variables(
            &mut ctx,
            self.key,
            found.time,
            found.fudge,
            found.error,
            found.other,
            self.first,
        );
        let want = ctx.sign();
        if !crate::secret::same(found.mac, want.as_ref()) {
            return Err(Failure::BadSig);
        }
        if now.abs_diff(found.time) > u64::from(found.fudge) {
            return Err(Failure::BadTime { signed: found.time });
        }
        feed_prior(&mut self.ctx, found.mac);
        self.first = false;
        self.unsigned = 0;
        Ok(())
    }

    /// Whether the stream ended on a signed message.
    pub fn finish(&self) -> Result<(), Failure> {
        if self.first || self.unsigned > 0 {
            return Err(Failure::Unsigned);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
