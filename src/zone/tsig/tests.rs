//! Vectors from real tools (tests/fixtures/tsig/make-vectors.py): kdig's signed
//! AXFR query and Knot's signed answer, several messages long.

use super::*;

const VECTORS: &str = include_str!("../../../tests/fixtures/tsig/knot-axfr.txt");
const SECRET_B64: &str = "c2lnbnBvc3QtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vectors() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut lines = VECTORS.lines().filter(|l| !l.starts_with('#'));
    let query = hex(lines.next().unwrap());
    (query, lines.map(hex).collect())
}

fn key_with(secret: &[u8]) -> Key {
    Key::new(
        Name::parse("xfr-key.", None).unwrap(),
        Algorithm::HmacSha256,
        secret,
    )
}

fn key() -> Key {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(SECRET_B64)
        .unwrap();
    key_with(&secret)
}

fn signed_at(msg: &[u8]) -> u64 {
    find(msg).unwrap().unwrap().time
}

#[test]
fn kdig_query_verifies_and_knot_stream_follows() {
    let (query, answer) = vectors();
    assert!(answer.len() >= 2, "a transfer of several messages");
    let ring = Keyring { keys: vec![key()] };
    let now = signed_at(&query);
    let verified = verify_request(&query, &ring, now).unwrap().unwrap();
    assert_eq!(verified.key.name.to_string(), "xfr-key.");
    let request_mac = find(&query).unwrap().unwrap().mac.to_vec();
    let k = key();
    let mut v = ResponseVerifier::new(&k, &request_mac);
    for m in &answer {
        v.verify(m, now).unwrap();
    }
    v.finish().unwrap();
}

#[test]
fn altered_or_reordered_stream_fails() {
    let (query, answer) = vectors();
    let now = signed_at(&query);
    let request_mac = find(&query).unwrap().unwrap().mac.to_vec();
    let k = key();
    // One byte of a record changed in the second message.
    let mut v = ResponseVerifier::new(&k, &request_mac);
    v.verify(&answer[0], now).unwrap();
    let mut bad = answer[1].clone();
    bad[40] ^= 1;
    assert_eq!(v.verify(&bad, now), Err(Failure::BadSig));
    // A message left out: the next one's MAC chains from the wrong prior.
    let mut v = ResponseVerifier::new(&k, &request_mac);
    v.verify(&answer[0], now).unwrap();
    assert_eq!(v.verify(&answer[2], now), Err(Failure::BadSig));
    // The stream against another request's MAC.
    let mut v = ResponseVerifier::new(&k, &[0u8; 32]);
    assert_eq!(v.verify(&answer[0], now), Err(Failure::BadSig));
    // Outside the fudge.
    let mut v = ResponseVerifier::new(&k, &request_mac);
    assert!(matches!(
        v.verify(&answer[0], now + 301),
        Err(Failure::BadTime { .. })
    ));
}

#[test]
fn wrong_secret_unknown_key_and_time_are_told_apart() {
    let (query, _) = vectors();
    let now = signed_at(&query);
    let wrong = Keyring {
        keys: vec![key_with(b"another secret of thirty-two b!!")],
    };
    let e = verify_request(&query, &wrong, now).unwrap_err();
    assert_eq!(e.failure, Failure::BadSig);
    let other = Keyring {
        keys: vec![Key::new(
            Name::parse("other-key.", None).unwrap(),
            Algorithm::HmacSha256,
            b"x",
        )],
    };
    let e = verify_request(&query, &other, now).unwrap_err();
    assert!(matches!(e.failure, Failure::BadKey(_)));
    let empty = Keyring::default();
    let e = verify_request(&query, &empty, now).unwrap_err();
    assert_eq!(e.failure.code(), error::BADKEY);
    let ring = Keyring { keys: vec![key()] };
    let e = verify_request(&query, &ring, now - 400).unwrap_err();
    assert_eq!(e.failure.code(), error::BADTIME);
    // A BADTIME answer is signed with the request's MAC and carries our time.
    let mut resp = query[..query.len()].to_vec();
    let at = find(&query).unwrap().unwrap().at;
    resp.truncate(at);
    resp[10..12].copy_from_slice(&0u16.to_be_bytes());
    resp[2] |= 0x80;
    error_response(&mut resp, e, now - 400);
    assert_eq!(resp[3] & 0x0F, NOTAUTH);
    let f = find(&resp).unwrap().unwrap();
    assert_eq!(f.error, error::BADTIME);
    assert_eq!(f.other, &time48(now - 400));
    let k = key();
    let request_mac = find(&query).unwrap().unwrap().mac.to_vec();
    let mut v = ResponseVerifier::new(&k, &request_mac);
    assert_eq!(
        v.verify(&resp, now - 400),
        Err(Failure::PeerError(error::BADTIME))
    );
}

#[test]
fn unsigned_request_is_none_and_garbage_is_malformed() {
    let (query, _) = vectors();
    let at = find(&query).unwrap().unwrap().at;
    let mut plain = query[..at].to_vec();
    plain[10..12].copy_from_slice(&0u16.to_be_bytes());
    let ring = Keyring { keys: vec![key()] };
    assert!(verify_request(&plain, &ring, 0).unwrap().is_none());
    for cut in [5, 20, at + 3, query.len() - 1] {
        let r = verify_request(&query[..cut], &ring, 0);
        assert!(
            matches!(
                r,
                Err(Rejected {
                    failure: Failure::Malformed,
                    ..
                })
            ) || matches!(r, Ok(None)),
            "cut at {cut}"
        );
    }
}

#[test]
fn own_signatures_round_trip_with_every_algorithm() {
    let (query, answer) = vectors();
    let at = find(&query).unwrap().unwrap().at;
    for alg in Algorithm::ALL {
        let k = Key::new(Name::parse("k.", None).unwrap(), alg, b"secret");
        let ring = Keyring {
            keys: vec![k.clone()],
        };
        let mut req = query[..at].to_vec();
        req[10..12].copy_from_slice(&0u16.to_be_bytes());
        let mac = sign_request(&mut req, &k, 1_000_000);
        let verified = verify_request(&req, &ring, 1_000_010).unwrap().unwrap();
        let mut signer = verified.signer;
        let mut v = ResponseVerifier::new(&k, &mac);
        for (i, m) in answer.iter().enumerate() {
            let cut = find(m).unwrap().unwrap().at;
            let mut out = m[..cut].to_vec();
            let ar = u16::from_be_bytes([out[10], out[11]]) - 1;
            out[10..12].copy_from_slice(&ar.to_be_bytes());
            // Sign every other message but the last: the unsigned ones count
            // into the next MAC.
            if i % 2 == 0 || i == answer.len() - 1 {
                signer.sign(&mut out, 1_000_020);
            } else {
                signer.skip(&out);
            }
            v.verify(&out, 1_000_030).unwrap();
        }
        v.finish().unwrap();
    }
}

#[test]
fn ordinary_answers_are_signed_or_turned_into_the_error() {
    let (query, answer) = vectors();
    let now = signed_at(&query);
    let ring = Keyring { keys: vec![key()] };
    let at = find(&query).unwrap().unwrap().at;
    // An answer: the query's header and question, QR set.
    let mut plain = query[..at].to_vec();
    plain[10..12].copy_from_slice(&0u16.to_be_bytes());
    plain[2] |= 0x80;
    let mut out = plain.clone();
    sign_answer(&ring, &query, &mut out, now);
    let mac = find(&query).unwrap().unwrap().mac.to_vec();
    let k = key();
    let mut v = ResponseVerifier::new(&k, &mac);
    v.verify(&out, now).unwrap();
    // Unsigned request: untouched.
    let mut out = plain.clone();
    let unsigned = plain.clone();
    sign_answer(&ring, &unsigned, &mut out, now);
    assert_eq!(out, plain);
    // Wrong key: NOTAUTH, records gone, BADSIG.
    let wrong = Keyring {
        keys: vec![key_with(b"another secret of thirty-two b!!")],
    };
    let mut out = answer[0].clone();
    sign_answer(&wrong, &query, &mut out, now);
    assert_eq!(out[3] & 0x0f, NOTAUTH);
    assert_eq!(&out[6..10], &[0, 0, 0, 0]);
    assert_eq!(find(&out).unwrap().unwrap().error, error::BADSIG);
}
