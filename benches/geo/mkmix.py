#!/usr/bin/env python3
"""The query mix of benches/geo-compare.sh, and what each query must get.

Every query is `www.geobench.example A` with an EDNS Client Subnet option
(IPv4, source /24). The /24s come from the networks of the committed fixture
tests/fixtures/geo/city.mmdb (see tests/fixtures/geo/README.md), on six
continents, plus /24s the database has no record for (they get the default).
The list of /24s is shuffled once (fixed seed) and the queries take it
round-robin, so the output is the same on every run.

Writes, into OUTDIR:
  queries     "qname qtype subnet" lines, for mkbin-ecs.py
  expect.tsv  subnet, place, expected address: every distinct /24 in the mix
  samples.tsv subnet, place, expected address: one /24 per continent (and
              the country rule, and a miss), for the dig table

Usage: python3 mkmix.py OUTDIR [NQUERIES]   (default 10000)

The steering rule below is the one the three server configurations in
benches/geo/{signpost,gdnsd,pdns}/ implement; change them together.
"""
import ipaddress
import os
import random
import sys

QNAME = "www.geobench.example"

US_EAST, EU_WEST, AP_NORTHEAST = "192.0.2.10", "192.0.2.20", "192.0.2.30"


def steer(continent, country):
    """country CN -> us-east; EU, AF -> eu-west; AS, OC -> ap-northeast;
    everything else (NA, SA, not in the database) -> us-east."""
    if country == "CN":
        return US_EAST
    if continent in ("EU", "AF"):
        return EU_WEST
    if continent in ("AS", "OC"):
        return AP_NORTHEAST
    return US_EAST


def slash24s(net, count):
    """`count` /24s spread evenly over the network `net` (its first /24
    included)."""
    subs = list(ipaddress.ip_network(net).subnets(new_prefix=24))
    step = max(1, len(subs) // count)
    return [str(s) for s in subs[::step][:count]]


# (place, continent, country, /24s, weight): weight = how many times each /24
# appears in the round-robin list. The single-/24 networks are repeated so that
# each answer gets a fair share of the queries.
GROUPS = [
    ("NA US-VA", "NA", "US", slash24s("198.18.0.0/16", 24), 1),
    ("NA US-CA", "NA", "US", slash24s("198.19.0.0/20", 16), 1),
    ("SA BR", "SA", "BR", ["203.0.113.0/24"], 8),
    ("EU IE", "EU", "IE", ["198.19.16.0/24"], 4),
    ("EU DE", "EU", "DE", ["198.19.17.0/24"], 4),
    ("EU FR", "EU", "FR", slash24s("198.19.32.0/20", 16), 1),
    ("EU CH", "EU", "CH", ["100.66.0.0/24"], 4),
    ("AS JP", "AS", "JP", ["192.0.2.0/24"], 20),
    ("AS CN", "AS", "CN", slash24s("100.65.0.0/20", 16), 1),
    ("OC AU", "OC", "AU", ["198.51.100.0/24"], 16),
    ("AF ZA", "AF", "ZA", slash24s("100.64.0.0/16", 24), 1),
    # no record in the fixture: the empty /20 next to FR, and public space
    ("not in db", None, None, slash24s("198.19.48.0/20", 16), 1),
    ("not in db", None, None, ["8.8.8.0/24", "1.1.1.0/24", "9.9.9.0/24", "80.80.80.0/24",
                               "151.101.1.0/24", "185.199.108.0/24", "23.45.67.0/24", "45.33.32.0/24"], 1),
]
# 100.66.1.0/24 is left out on purpose: its record has only
# registered_country (SE), no country or continent; servers differ on whether
# that counts (signpost uses it, gdnsd and PowerDNS do not).

# one /24 per place for the dig table
SAMPLES = [
    ("198.18.5.0/24", "NA US-VA", "NA", "US"),
    ("203.0.113.0/24", "SA BR", "SA", "BR"),
    ("198.19.16.0/24", "EU IE", "EU", "IE"),
    ("198.19.33.0/24", "EU FR", "EU", "FR"),
    ("192.0.2.0/24", "AS JP", "AS", "JP"),
    ("100.65.3.0/24", "AS CN (country rule)", "AS", "CN"),
    ("198.51.100.0/24", "OC AU", "OC", "AU"),
    ("100.64.9.0/24", "AF ZA", "AF", "ZA"),
    ("8.8.8.0/24", "not in db", None, None),
]


def main():
    outdir = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    os.makedirs(outdir, exist_ok=True)
    rr = []
    expect = {}
    for place, continent, country, nets, weight in GROUPS:
        for net in nets:
            expect[net] = (place, steer(continent, country))
            rr.extend([net] * weight)
    random.Random(20261126).shuffle(rr)
    with open(os.path.join(outdir, "queries"), "w") as f:
        for i in range(n):
            f.write(f"{QNAME} A {rr[i % len(rr)]}\n")
    with open(os.path.join(outdir, "expect.tsv"), "w") as f:
        for net, (place, addr) in expect.items():
            f.write(f"{net}\t{place}\t{addr}\n")
    with open(os.path.join(outdir, "samples.tsv"), "w") as f:
        for net, place, continent, country in SAMPLES:
            f.write(f"{net}\t{place}\t{steer(continent, country)}\n")
    share = {}
    for net in rr:
        share[expect[net][1]] = share.get(expect[net][1], 0) + 1
    print(f"{n} queries over {len(expect)} distinct /24s ({len(rr)}-entry round-robin list); "
          + ", ".join(f"{a}: {100 * c / len(rr):.0f}%" for a, c in sorted(share.items())),
          file=sys.stderr)


if __name__ == "__main__":
    main()
