//! The floor under any UDP DNS server on this machine: a server that does no DNS
//! work at all. It reads queries with the same loop signpost's UDP threads use
//! (recvmmsg with MSG_WAITFORONE, up to 32 a call, one sendmmsg for the answers)
//! on a socket from signpost's own `server::udp_socket` (IPv4 only), and sends
//! each query back as its own answer: the query's bytes with QR and AA set. What
//! it costs per query is what the kernel's loopback UDP path costs; a real server
//! can only add to it.
//!
//! `benches/compare.sh` runs it beside the servers with `SERVERS="... floor"`. By
//! hand: `cargo bench --bench udp_floor -- --serve 127.0.0.1:15399` (until killed).
//! Without `--serve` it prints this usage and exits, so `cargo bench` passes by.

use std::net::{SocketAddr, UdpSocket};

const BATCH: usize = 32;
const MAX_QUERY: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--serve") else {
        println!(
            "udp_floor: pass --serve ADDR:PORT to run the echo server (see benches/compare.sh)"
        );
        return;
    };
    let addr: SocketAddr = match args.get(i + 1).map(|a| a.parse()) {
        Some(Ok(a @ SocketAddr::V4(_))) => a,
        _ => {
            eprintln!("udp_floor: --serve wants an IPv4 address like 127.0.0.1:15399");
            std::process::exit(2);
        }
    };
    match signpost::server::udp_socket(addr, signpost::server::NO_FRAGMENT_PAYLOAD) {
        Ok(s) => serve(s),
        Err(e) => {
            eprintln!("udp_floor: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(target_os = "linux")]
fn serve(sock: UdpSocket) {
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrIn};
    use smallvec::SmallVec;

    let fd = sock.as_raw_fd();
    let mut bufs: Box<[[u8; MAX_QUERY]; BATCH]> = Box::new([[0; MAX_QUERY]; BATCH]);
    let mut recv_headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    // On the stack, as in signpost's loop: nothing is allocated per batch.
    let mut got: SmallVec<[(usize, SockaddrIn); BATCH]> = SmallVec::new();
    let mut dests: SmallVec<[Option<SockaddrIn>; BATCH]> = SmallVec::new();
    let mut ready: SmallVec<[(usize, usize); BATCH]> = SmallVec::new();
    loop {
        got.clear();
        {
            let mut iovs = bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
            let Ok(results) = recvmmsg(
                fd,
                &mut recv_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) else {
                continue; // the read timeout, or an ICMP error from an earlier send
            };
            for r in results {
                if let Some(a) = r.address {
                    got.push((r.bytes, a));
                }
            }
        }
        dests.clear();
        ready.clear();
        for (i, &(n, a)) in got.iter().enumerate() {
            if n >= 4 {
                bufs[i][2] |= 0x84; // QR, AA
                dests.push(Some(a));
                ready.push((i, n));
            }
        }
        let slices: SmallVec<[[IoSlice<'_>; 1]; BATCH]> = ready
            .iter()
            .map(|&(i, n)| [IoSlice::new(&bufs[i][..n])])
            .collect();
        if !slices.is_empty() {
            let _ = sendmmsg(
                fd,
                &mut send_headers,
                slices.iter(),
                &dests,
                [],
                MsgFlags::empty(),
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn serve(sock: UdpSocket) {
    let mut buf = [0u8; MAX_QUERY];
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if n >= 4 {
            buf[2] |= 0x84;
            let _ = sock.send_to(&buf[..n], src);
        }
    }
}
