#!/usr/bin/env python3
"""Generate the benchmark zone and query mixes for benches/compare.sh.

Deterministic (fixed seed): re-running it rewrites byte-identical files.

Outputs (next to this script):
  bench.example.zone  RFC 1035 master file, origin bench.example.
  static.queries      dnsperf query file, 10000 lines:
                        70% existing A/AAAA, 10% NXDOMAIN, 10% NODATA,
                         5% CNAME (A query answered through a CNAME), 5% MX
  geo.queries         "qname qtype client-subnet" lines (one ECS subnet per
                      query, many subnets); turned into a dnsperf -B binary
                      file by mkbin-ecs.py at run time.
  *.expect            response codes one pass over each query file must
                      give, as dnsperf counts them ("NOERROR=9000 NXDOMAIN=1000");
                      compare.sh checks every server against it.

Usage: python3 benches/data/gen-zone.py
       python3 benches/data/gen-zone.py --bulk N OUT
         writes only the zone, with N more A records (bulk0000000 ..) that no
         query names, to OUT: the large zone of the memory figures
         (compare.sh ZONE=OUT); the query mixes answer the same on it.
"""
import ipaddress
import os
import random
import sys

ORIGIN = "bench.example."
HOSTS = 1000          # host0000 .. host0999: A each, AAAA unless i % 5 == 0
ALIASES = 100         # alias000 .. alias099 CNAME hostNNNN
MAILDOMS = 50         # dept00 .. dept49: MX + TXT only (no address)
TXTS = 50             # txt000 .. txt049 TXT
NQUERIES = 10000
NGEO = 10000

HERE = os.path.dirname(os.path.abspath(__file__))


def host_a(i):
    # 198.18.0.0/15 is the RFC 2544 benchmarking range
    return f"198.18.{i // 256}.{i % 256}"


def host_aaaa(i):
    return f"2001:db8:1::{i:x}"


def has_aaaa(i):
    return i % 5 != 0


def zone():
    out = [
        f"$ORIGIN {ORIGIN}",
        "$TTL 3600",
        "@\tIN\tSOA\tns1.bench.example. hostmaster.bench.example. "
        "2024010101 7200 3600 1209600 3600",
        "@\tIN\tNS\tns1",
        "@\tIN\tNS\tns2",
        "@\tIN\tA\t192.0.2.10",
        "@\tIN\tAAAA\t2001:db8::10",
        "@\tIN\tMX\t10 mx1",
        "@\tIN\tMX\t20 mx2",
        '@\tIN\tTXT\t"v=spf1 mx -all"',
        "ns1\tIN\tA\t192.0.2.1",
        "ns1\tIN\tAAAA\t2001:db8::1",
        "ns2\tIN\tA\t192.0.2.2",
        "ns2\tIN\tAAAA\t2001:db8::2",
        "mx1\tIN\tA\t192.0.2.25",
        "mx1\tIN\tAAAA\t2001:db8::25",
        "mx2\tIN\tA\t192.0.2.26",
        '_dmarc\tIN\tTXT\t"v=DMARC1; p=reject"',
        "; CNAME chain: www -> web -> lb -> host0001",
        "www\tIN\tCNAME\tweb",
        "web\tIN\tCNAME\tlb",
        "lb\tIN\tCNAME\thost0001",
        "; wildcard",
        "*.wild\tIN\tA\t198.51.100.7",
        "*.wild\tIN\tAAAA\t2001:db8:ffff::7",
        "*.wild\tIN\tTXT\t\"wildcard\"",
    ]
    for i in range(HOSTS):
        out.append(f"host{i:04d}\tIN\tA\t{host_a(i)}")
        if has_aaaa(i):
            out.append(f"host{i:04d}\tIN\tAAAA\t{host_aaaa(i)}")
    for i in range(ALIASES):
        out.append(f"alias{i:03d}\tIN\tCNAME\thost{(i * 7) % HOSTS:04d}")
    for i in range(MAILDOMS):
        out.append(f"dept{i:02d}\tIN\tMX\t10 mx1")
        out.append(f"dept{i:02d}\tIN\tMX\t20 mx2")
        out.append(f'dept{i:02d}\tIN\tTXT\t"v=spf1 include:bench.example -all"')
    for i in range(TXTS):
        out.append(f'txt{i:03d}\tIN\tTXT\t"token-{i:03d}-{"x" * (i % 40)}"')
    return "\n".join(out) + "\n"


def queries(rng):
    q = []
    o = ORIGIN.rstrip(".")
    # 70% existing A/AAAA: hosts, a few wildcard matches and infrastructure names
    for _ in range(NQUERIES * 70 // 100):
        r = rng.random()
        if r < 0.90:
            i = rng.randrange(HOSTS)
            if has_aaaa(i) and rng.random() < 0.4:
                q.append(f"host{i:04d}.{o} AAAA")
            else:
                q.append(f"host{i:04d}.{o} A")
        elif r < 0.96:
            q.append(f"c{rng.randrange(100000)}.wild.{o} {rng.choice(['A', 'AAAA'])}")
        else:
            q.append(f"{rng.choice(['', 'ns1.', 'ns2.', 'mx1.'])}{o} {rng.choice(['A', 'AAAA'])}")
    # 10% NXDOMAIN
    for _ in range(NQUERIES * 10 // 100):
        r = rng.random()
        if r < 0.5:
            q.append(f"nx{rng.randrange(1000000)}.{o} A")
        elif r < 0.8:
            q.append(f"host{HOSTS + rng.randrange(9000):04d}.{o} {rng.choice(['A', 'AAAA'])}")
        else:
            q.append(f"a.b{rng.randrange(1000)}.nope.{o} A")
    # 10% NODATA (name exists, type does not)
    for _ in range(NQUERIES * 10 // 100):
        r = rng.random()
        if r < 0.5:
            q.append(f"host{rng.randrange(0, HOSTS, 5):04d}.{o} AAAA")
        elif r < 0.7:
            q.append(f"host{rng.randrange(HOSTS):04d}.{o} TXT")
        elif r < 0.9:
            q.append(f"dept{rng.randrange(MAILDOMS):02d}.{o} A")
        else:
            q.append(f"txt{rng.randrange(TXTS):03d}.{o} MX")
    # 5% CNAME: address query answered through a CNAME (chain for www)
    for _ in range(NQUERIES * 5 // 100):
        if rng.random() < 0.8:
            q.append(f"alias{rng.randrange(ALIASES):03d}.{o} A")
        else:
            q.append(f"www.{o} {rng.choice(['A', 'AAAA'])}")
    # 5% MX
    for _ in range(NQUERIES * 5 // 100):
        if rng.random() < 0.3:
            q.append(f"{o} MX")
        else:
            q.append(f"dept{rng.randrange(MAILDOMS):02d}.{o} MX")
    rng.shuffle(q)
    nx = NQUERIES * 10 // 100
    return "\n".join(q) + "\n", f"NOERROR={len(q) - nx} NXDOMAIN={nx}\n"


def geo(rng):
    """Host/apex address queries, each from its own EDNS Client Subnet."""
    o = ORIGIN.rstrip(".")
    lines = []
    for _ in range(NGEO):
        if rng.random() < 0.85:
            # a random /24 anywhere in unicast IPv4 space
            while True:
                a = ipaddress.IPv4Address(rng.randrange(1 << 24) << 8)
                if a.is_global and not (a.is_multicast or a.is_reserved):
                    break
            subnet = f"{a}/24"
        else:
            a = ipaddress.IPv6Address((0x2000 << 112) | (rng.randrange(1 << 43) << 72))
            subnet = f"{a}/56"
        name = rng.choice([f"www.{o}", f"{o}", f"host{rng.randrange(HOSTS):04d}.{o}"])
        qtype = "AAAA" if rng.random() < 0.3 else "A"
        lines.append(f"{name} {qtype} {subnet}")
    return "\n".join(lines) + "\n", f"NOERROR={len(lines)}\n"


def bulk(n):
    return "".join(f"bulk{i:07d}\tIN\tA\t10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(n))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--bulk":
        with open(sys.argv[3], "w") as f:
            f.write(zone() + bulk(int(sys.argv[2])))
        return
    if len(sys.argv) != 1:
        sys.exit("usage: gen-zone.py [--bulk N OUT]")
    rng = random.Random(20240101)
    with open(os.path.join(HERE, "bench.example.zone"), "w") as f:
        f.write(zone())
    for mix, (text, expect) in (("static", queries(rng)),
                                ("geo", geo(random.Random(20240202)))):
        with open(os.path.join(HERE, f"{mix}.queries"), "w") as f:
            f.write(text)
        with open(os.path.join(HERE, f"{mix}.expect"), "w") as f:
            f.write(expect)


if __name__ == "__main__":
    main()
