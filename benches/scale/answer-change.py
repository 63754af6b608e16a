#!/usr/bin/env python3
"""benches/scale/answer-change.py: how long until a name's DNS answer becomes WANT.

    python3 benches/scale/answer-change.py PORT QNAME WANT T0_NS TIMEOUT

Sends `QNAME A` over UDP to 127.0.0.1:PORT every 10 ms (each query waits at
most 10 ms for its answer; one in flight) until an answer's first A record is
WANT, then prints the seconds from T0_NS (nanoseconds since 1970, taken by the
caller at the moment the backend died) to that answer, and the count of
queries sent. Exits 1 if TIMEOUT seconds pass. Bounded: at most 100 queries a
second, to loopback only.
"""
import socket
import struct
import sys
import time


def query(qid, qname):
    wire = b"".join(bytes([len(x)]) + x.encode() for x in qname.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + wire + struct.pack(">HH", 1, 1)


def first_a(d, qlen):
    """The first A record's address of a response whose question is qlen bytes."""
    if len(d) < 12 or struct.unpack(">H", d[6:8])[0] == 0:
        return None
    i = qlen  # header + question, as sent
    while i + 10 <= len(d):
        if d[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while i < len(d) and d[i]:
                i += 1 + d[i]
            i += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", d[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(d[i:i + 4])
        i += rdlen
    return None


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    port, qname, want, t0, timeout = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.01)
    deadline = time.monotonic() + timeout
    sent = 0
    qid = 0
    while time.monotonic() < deadline:
        qid = (qid + 1) & 0xFFFF
        q = query(qid, qname)
        tick = time.monotonic()
        s.sendto(q, ("127.0.0.1", port))
        sent += 1
        try:
            while True:
                d = s.recv(4096)
                if d[0:2] == q[0:2]:
                    break
            if first_a(d, len(q)) == want:
                print(f"{(time.time_ns() - t0) / 1e9:.3f} {sent}")
                return
        except OSError:
            pass
        rest = 0.01 - (time.monotonic() - tick)
        if rest > 0:
            time.sleep(rest)
    print(f"{qname}: answer never became {want} within {timeout} s ({sent} queries)", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
