#!/usr/bin/env python3
"""Turn a "qname qtype client-subnet" file (benches/data/geo.queries) into a
dnsperf -B input: each query is a complete DNS message, preceded by its
2-byte length (RFC 1035 4.2.2 framing), carrying an EDNS0 OPT record with its
own EDNS Client Subnet option (RFC 7871, option code 8). dnsperf -B sends the
messages as they are (it only rewrites the 2-byte message id), which is the
only way to give each query a different ECS with dnsperf 2.10: its -E option
adds one fixed option to every query.

Usage: python3 mkbin-ecs.py geo.queries out.bin [--do]

--do sets the DO bit (DNSSEC OK, RFC 3225) in every query's OPT record: dnsperf
-D cannot be combined with -B, so the bit has to be in the messages.
"""
import ipaddress
import struct
import sys

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}


def qname_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            b = label.encode("ascii")
            out += bytes([len(b)]) + b
    return out + b"\x00"


def ecs_option(subnet):
    net = ipaddress.ip_network(subnet, strict=False)
    family = 1 if net.version == 4 else 2
    prefix = net.prefixlen
    addr = net.network_address.packed[: (prefix + 7) // 8]
    data = struct.pack("!HBB", family, prefix, 0) + addr
    return struct.pack("!HH", 8, len(data)) + data


def message(name, qtype, subnet, msg_id, dnssec_ok=False):
    header = struct.pack("!HHHHHH", msg_id & 0xFFFF, 0x0100, 1, 0, 0, 1)  # RD set, as dnsperf does
    question = qname_wire(name) + struct.pack("!HH", QTYPES[qtype.upper()], 1)
    opts = ecs_option(subnet)
    # OPT RR: root owner, type 41, class = UDP payload size, TTL = extended
    # rcode, version, flags (DO is the top flag bit), rdata
    opt = b"\x00" + struct.pack("!HHIH", 41, 4096, 0x8000 if dnssec_ok else 0, len(opts)) + opts
    return header + question + opt


def main():
    src, dst = sys.argv[1], sys.argv[2]
    dnssec_ok = sys.argv[3:] == ["--do"]
    if sys.argv[3:] and not dnssec_ok:
        sys.exit("usage: mkbin-ecs.py QUERIES OUT.bin [--do]")
    n = 0
    with open(src) as f, open(dst, "wb") as out:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            m = message(parts[0], parts[1], parts[2], n, dnssec_ok)
            out.write(struct.pack("!H", len(m)) + m)
            n += 1
    print(f"{n} queries written to {dst}", file=sys.stderr)


if __name__ == "__main__":
    main()
