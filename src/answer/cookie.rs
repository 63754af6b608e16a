//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! Every query that carries a COOKIE option gets one back, whatever else happens
//! (as NSD and Knot do): the client's cookie and a fresh server cookie of 16
//! bytes, version 1 | reserved | timestamp | SipHash-2-4(client cookie | version |
//! reserved | timestamp | client address) under a 128-bit secret. A query whose
//! server cookie is one we made for this client's address in the last hour (and
//! not from more than five minutes ahead) comes from an address that can read what
//! we send it: it is not spoofed. Such a client is exempt from response rate
//! limiting and its DO=1 answers rank first for signatures made on the fly
//! ([`crate::dnssec::budget`]).
//!
//! The secret is random per process unless `[cookies] secret_file` names one, which
//! the instances of an anycast fleet share so that each accepts the others'
//! cookies (RFC 9018 §4).

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::OnceLock;

use siphasher::sip::SipHasher24;

/// A query's COOKIE option (RFC 7873 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie {
    pub client: [u8; 8],
    /// The server cookie as sent (8 to 32 bytes), if any.
    pub server: [u8; 32],
    pub server_len: u8,
}

impl Cookie {
    /// Whether an option of `len` bytes can be a cookie.
    pub(crate) fn valid_len(len: usize) -> bool {
        len == 8 || (16..=40).contains(&len)
    }

    /// Reads the option's data: 8 bytes, or 16 to 40 (RFC 7873 §5.2.2: any other
    /// length is FORMERR).
    pub fn read(data: &[u8]) -> Option<Cookie> {
        if !Cookie::valid_len(data.len()) {
            return None;
        }
        let mut c = Cookie {
            client: [0; 8],
            server: [0; 32],
            server_len: (data.len() - 8) as u8,
        };
        c.client.copy_from_slice(&data[..8]);
        c.server[..data.len() - 8].copy_from_slice(&data[8..]);
        Some(c)
    }
}

/// Seconds a server cookie stays valid, and how far ahead its clock may be
/// (RFC 9018 §4.3).
const VALID_SECS: u32 = 3600;
const AHEAD_SECS: u32 = 300;

/// The key server cookies are made with.
#[derive(Clone)]
pub struct CookieSecret([u8; 16]);

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

impl CookieSecret {
    pub fn new(key: [u8; 16]) -> CookieSecret {
        CookieSecret(key)
    }

    /// This process's random secret, the same for every snapshot.
    pub fn process() -> CookieSecret {
        static S: OnceLock<[u8; 16]> = OnceLock::new();
        CookieSecret(*S.get_or_init(|| {
            let mut k = [0u8; 16];
            if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k).is_err() {
                // No system randomness: std's per-process hasher keys instead.
                use std::hash::BuildHasher;
                let s = std::collections::hash_map::RandomState::new();
                k[..8].copy_from_slice(&s.hash_one(1u8).to_le_bytes());
                k[8..].copy_from_slice(&s.hash_one(2u8).to_le_bytes());
            }
            k
        }))
    }

    fn hash(&self, client: &[u8; 8], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(client);
        h.write(head);
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => h.write(&v4.octets()),
                None => h.write(&a.octets()),
            },
        }
        h.finish().to_le_bytes()
    }

    /// A server cookie for `client` at `ip`, made at `now` (Unix seconds, serial).
    pub(crate) fn server_cookie(&self, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 16] {
        let mut head = [1, 0, 0, 0, 0, 0, 0, 0];
        head[4..].copy_from_slice(&now.to_be_bytes());
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&head);
        out[8..].copy_from_slice(&self.hash(client, &head, ip));
        out
    }

    /// Whether `c` carries a server cookie we made for `ip` that is still valid at
    /// `now`.
    pub fn verify(&self, c: &Cookie, ip: IpAddr, now: u32) -> bool {
        if c.server_len != 16 || c.server[0] != 1 {
            return false;
        }
        let head: [u8; 8] = c.server[..8].try_into().unwrap_or_default();
        let made = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        // Serial arithmetic (RFC 1982): how long ago, or ahead.
        let age = now.wrapping_sub(made);
        let fresh = age <= VALID_SECS || made.wrapping_sub(now) <= AHEAD_SECS;
        // The hash compared whatever the age, so the time taken says nothing.
        let same = crate::secret::same(&c.server[8..16], &self.hash(&c.client, &head, ip));
        fresh && same
    }
}

/// Unix seconds now, for cookies.
pub fn now() -> u32 {
    crate::clock::unix_now() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9018_appendix_a_test_vectors() {
        // RFC 9018 Appendix A.1: a resolver at 198.51.100.100 learning a new server cookie.
        let secret =
            CookieSecret::new(*b"\xe5\xe9\x73\xe5\xa6\xb2\xa4\x3f\x48\xe7\xdc\x84\x9e\x37\xbf\xcf");
        let client = *b"\x24\x64\xc4\xab\xcf\x10\xc9\x57";
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let c = secret.server_cookie(&client, ip, 1_559_731_985);
        assert_eq!(
            c,
            *b"\x01\x00\x00\x00\x5c\xf7\x9f\x11\x1f\x81\x30\xc3\xee\xe2\x94\x80"
        );
        // A.2: the same client, forty minutes later.
        assert_eq!(
            secret.server_cookie(&client, ip, 1_559_734_385),
            *b"\x01\x00\x00\x00\x5c\xf7\xa8\x71\xd4\xa5\x64\xa1\x44\x2a\xca\x77"
        );
    }

    #[test]
    fn verifies_its_own_cookies_for_the_same_address_in_time() {
        let s = CookieSecret::new([7; 16]);
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let made = s.server_cookie(&client, ip, 1_000_000);
        let mut data = client.to_vec();
        data.extend_from_slice(&made);
        let c = Cookie::read(&data).unwrap();
        assert!(s.verify(&c, ip, 1_000_000));
        assert!(s.verify(&c, ip, 1_000_000 + 3600));
        assert!(!s.verify(&c, ip, 1_000_000 + 3601), "too old");
        assert!(!s.verify(&c, ip, 1_000_000 - 301), "too far ahead");
        assert!(
            !s.verify(&c, "192.0.2.2".parse().unwrap(), 1_000_000),
            "another address"
        );
        assert!(
            !CookieSecret::new([8; 16]).verify(&c, ip, 1_000_000),
            "another secret"
        );
        let mut bad = data.clone();
        bad[20] ^= 1;
        assert!(!s.verify(&Cookie::read(&bad).unwrap(), ip, 1_000_000));
    }

    #[test]
    fn lengths() {
        assert!(Cookie::read(&[0; 8]).is_some());
        assert!(Cookie::read(&[0; 16]).is_some());
        assert!(Cookie::read(&[0; 40]).is_some());
        for n in [0, 7, 9, 15, 41] {
            assert!(Cookie::read(&vec![0; n]).is_none(), "{n}");
        }
    }
}
