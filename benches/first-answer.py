#!/usr/bin/env python3
"""benches/first-answer.py: when a server starting up first answers, for growth.sh.

    python3 benches/first-answer.py PORT QNAME PID TIMEOUT [POLLING_FILE]

Sends `QNAME SOA` over UDP to 127.0.0.1:PORT every millisecond (each query
waits at most 1 ms for its answer) until one comes back NOERROR with the AA
flag, and
prints the wall-clock time of that answer in nanoseconds since 1970 (compare
with `date +%s%N` taken before the server was started). Exits 1, printing
why, if process PID exits first or TIMEOUT seconds pass. PID `-`: no process
to watch (the caller starts the server after this, and watches it). With
POLLING_FILE, that file is created once the socket is open, just before the
first query: a caller that starts the server after it appears does not count
this interpreter's start-up in the server's. Bounded: at most one
query in flight, 1,000 a second, to loopback only. (Every 5 ms until
2026-12-06: start-up times of servers 2-3 ms apart came out in 5 ms steps.)
"""
import os
import socket
import struct
import sys
import time


def query(qname):
    wire = b"".join(bytes([len(label)]) + label.encode() for label in qname.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x5350, 0, 1, 0, 0, 0) + wire + struct.pack(">HH", 6, 1)


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    port, qname, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[4])
    pid = None if sys.argv[3] == "-" else int(sys.argv[3])
    q = query(qname)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.001)
    if len(sys.argv) == 6:
        open(sys.argv[5], "w").close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not os.path.exists(f"/proc/{pid}"):
            print(f"process {pid} exited before answering", file=sys.stderr)
            sys.exit(1)
        try:
            s.sendto(q, ("127.0.0.1", port))
            while True:
                d = s.recv(4096)
                # our ID, QR and AA set, RCODE NOERROR
                if len(d) >= 12 and d[0:2] == q[0:2] and d[2] & 0x84 == 0x84 and d[3] & 0x0F == 0:
                    print(time.time_ns())
                    return
        except OSError:
            # timeout, or ICMP port unreachable while nothing listens yet
            time.sleep(0.001)
    print(f"no answer within {timeout} s", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
