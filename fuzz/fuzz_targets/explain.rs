//! Any name and client into `server::handler::explain`. No panic, and a trace when
//! there is one is not empty.
//!
//! Input layout, so seeds stay readable:
//! - byte 0: bit 0 IPv6 client, bit 1 client given as ECS, bit 2 append `steer.test.`;
//! - byte 1: ECS source prefix length (taken modulo the family's bits + 1);
//! - the client address: 4 or 16 bytes;
//! - the rest: the name as dotted text (lower-cased into a wire name; skipped when it
//!   is not a valid name).

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use signpost::server::handler::explain;
use signpost::server::query::read_client_subnet;
use signpost_fuzz::{snapshots, wire_name};

fuzz_target!(|data: &[u8]| {
    let [flags, prefix, rest @ ..] = data else {
        return;
    };
    let v6 = flags & 1 != 0;
    let (addr, name) = if v6 {
        let Some((a, n)) = rest.split_first_chunk::<16>() else {
            return;
        };
        (IpAddr::V6(Ipv6Addr::from(*a)), n)
    } else {
        let Some((a, n)) = rest.split_first_chunk::<4>() else {
            return;
        };
        (IpAddr::V4(Ipv4Addr::from(*a)), n)
    };
    let mut text = String::from_utf8_lossy(name).into_owned();
    if flags & 4 != 0 {
        text.push_str(".steer.test.");
    }
    let Some(qname) = wire_name(&text) else {
        return;
    };

    // The ECS the handler would have read: built as a client would send it, then read
    // with the server's own parser, which must accept it.
    let ecs = (flags & 2 != 0).then(|| {
        let (family, bits, octets) = match addr {
            IpAddr::V4(a) => (1u16, 32u8, a.octets().to_vec()),
            IpAddr::V6(a) => (2u16, 128u8, a.octets().to_vec()),
        };
        let source = prefix % (bits + 1);
        let n = usize::from(source).div_ceil(8);
        let mut opt = family.to_be_bytes().to_vec();
        opt.push(source);
        opt.push(0);
        opt.extend_from_slice(&octets[..n]);
        if source % 8 != 0 {
            if let Some(last) = opt.last_mut() {
                *last &= 0xffu8 << (8 - source % 8);
            }
        }
        match read_client_subnet(&opt) {
            Ok(cs) => cs,
            Err(e) => panic!("a well-formed ECS option {opt:02x?} was refused: {e:?}"),
        }
    });

    for (_, snap) in snapshots() {
        if let Some(lines) = explain(snap, &qname, ecs.as_ref(), addr) {
            assert!(!lines.is_empty(), "empty explain trace for {text:?}");
        }
    }
});
