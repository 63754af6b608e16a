//! Any bytes as a query packet, against both fixtures, over UDP and TCP.
//! The checks are `signpost_fuzz::answer_and_check`'s.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signpost::server::Transport;
use signpost_fuzz::{answer_and_check, snapshots, source_for};

fuzz_target!(|pkt: &[u8]| {
    // One buffer reused across calls, as each UDP reader does.
    let mut out = Vec::new();
    let src = source_for(pkt);
    for (_, snap) in snapshots() {
        for transport in [Transport::Udp, Transport::Tcp] {
            answer_and_check(snap, pkt, src, transport, &mut out);
        }
    }
});
