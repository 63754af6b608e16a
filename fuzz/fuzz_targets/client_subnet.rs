//! Any bytes as the data of an EDNS Client Subnet option (RFC 7871 §6).
//!
//! - `read_client_subnet` does not panic; what it accepts encodes back to exactly the
//!   input (family, source prefix, scope 0, the address cut to the prefix's octets).
//! - A query for a steered name carrying the option passes the query-handler checks,
//!   is FORMERR exactly when the option was refused, and otherwise echoes the option
//!   with the same family, source prefix and address.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use libfuzzer_sys::fuzz_target;
use signpost::server::query::read_client_subnet;
use signpost::server::Transport;
use signpost_fuzz::{answer_and_check, build_query, steer};

fuzz_target!(|data: &[u8]| {
    // One option's length field is 16 bits; keep well inside one packet.
    if data.len() > 1024 {
        return;
    }
    let parsed = read_client_subnet(data);
    if let Ok(cs) = &parsed {
        let n = usize::from(cs.source_prefix).div_ceil(8);
        let mut wire = cs.family.to_be_bytes().to_vec();
        wire.push(cs.source_prefix);
        wire.push(0);
        match cs.addr {
            IpAddr::V4(a) => {
                assert_eq!(cs.family, 1, "IPv4 address with family {}", cs.family);
                wire.extend_from_slice(&a.octets()[..n]);
            }
            IpAddr::V6(a) => {
                assert_eq!(cs.family, 2, "IPv6 address with family {}", cs.family);
                wire.extend_from_slice(&a.octets()[..n]);
            }
        }
        assert_eq!(wire, data, "{cs:?} does not encode back to its input");
    }

    let mut opt = Vec::with_capacity(data.len() + 4);
    opt.extend_from_slice(&8u16.to_be_bytes());
    opt.extend_from_slice(&(data.len() as u16).to_be_bytes());
    opt.extend_from_slice(data);
    let pkt = build_query(0x5ec5, b"\x04near\x05steer\x04test\x00", 1, 1, Some(&opt));
    // Any source: the steer fixture believes ECS from everyone.
    let src = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(resp) = answer_and_check(steer(), &pkt, src, transport, &mut out) else {
            panic!("no response to a well-formed query: {pkt:02x?}");
        };
        let rcode = resp.metadata.response_code;
        match &parsed {
            Err(_) => assert_eq!(
                rcode,
                ResponseCode::FormErr,
                "ECS {data:02x?} refused by read_client_subnet but the query got {rcode:?}"
            ),
            Ok(cs) => {
                assert_ne!(
                    rcode,
                    ResponseCode::FormErr,
                    "ECS {cs:?} accepted but the query got FORMERR"
                );
                let echo = resp.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet));
                let Some(EdnsOption::Subnet(echo)) = echo else {
                    panic!("ECS {cs:?} not echoed: {out:02x?}");
                };
                assert_eq!(
                    (echo.addr(), echo.source_prefix()),
                    (cs.addr, cs.source_prefix),
                    "ECS {cs:?} echoed as {echo:?}"
                );
            }
        }
    }
});
