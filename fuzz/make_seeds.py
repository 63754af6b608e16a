#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/ (committed with this script).

Seeds are real inputs, one file each: DNS query packets for query_handler, the test
zone and policy files for master_file and policy_file, ECS option data for
client_subnet, and (flags, prefix, address, name) records for explain. Run it from
anywhere: python3 fuzz/make_seeds.py. It rewrites only the files it names.
"""

import ipaddress
import shutil
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"

A, NS, SOA, MX, TXT, AAAA, DS, AXFR, ANY = 1, 2, 6, 15, 16, 28, 43, 252, 255
IN, CH = 1, 3


def name(text):
    """Wire name, letter case kept (the server must echo it as sent)."""
    out = b""
    for label in text.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def option(code, data):
    return struct.pack("!HH", code, len(data)) + data


def ecs(subnet):
    """ECS option data (RFC 7871 §6): family, source prefix, scope 0, address cut."""
    net = ipaddress.ip_network(subnet)
    family = 1 if net.version == 4 else 2
    n = (net.prefixlen + 7) // 8
    return struct.pack("!HBB", family, net.prefixlen, 0) + net.network_address.packed[:n]


def opt(options=b"", payload=1232, version=0, do=False):
    flags = 0x8000 if do else 0
    return b"\x00" + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(options)) + options


def query(qid, qname, qtype, qclass=IN, edns=None, opcode=0, rd=True):
    """A query packet. The ID's low two bits pick the source address in the harness
    (0 loopback, 1 192.0.2.1, 2 2001:db8::1, 3 198.18.5.7): see source_for."""
    flags = (opcode << 11) | (0x0100 if rd else 0)
    head = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns is not None else 0)
    return head + name(qname) + struct.pack("!HH", qtype, qclass) + (edns or b"")


QUERIES = {
    "steered-a": query(0x0001, "near.steer.test", A),
    "steered-aaaa-edns": query(0x0002, "near.steer.test", AAAA, edns=opt()),
    "geo-ecs-v4": query(0x0003, "place.steer.test", A, edns=opt(option(8, ecs("198.51.100.0/24")))),
    "geo-ecs-v6": query(0x0005, "place.steer.test", A, edns=opt(option(8, ecs("2001:db8:100::/48")))),
    "ecs-prefix-0": query(0x0006, "split.steer.test", A, edns=opt(option(8, ecs("0.0.0.0/0")))),
    "fence-servfail": query(0x0007, "resident.steer.test", A, edns=opt(option(8, ecs("198.18.5.0/24")))),
    "nsid": query(0x0009, "www.example.test", A, edns=opt(option(3, b""))),
    "chaos-id-server": query(0x0104, "id.server", TXT, CH),
    "chaos-version-bind-edns": query(0x0108, "version.bind", TXT, CH, edns=opt(option(3, b""))),
    "chaos-explain": query(0x0200, "near.steer.test", TXT, CH),
    "big-txt-udp-512": query(0x000A, "big.example.test", TXT),
    "mixed-case-do": query(0x000B, "WwW.ExAmPlE.TeSt", A, edns=opt(do=True)),
    "any-apex": query(0x000D, "example.test", ANY, edns=opt(payload=4096)),
    "nxdomain": query(0x000E, "nothere.example.test", A),
    "ds-at-cut": query(0x000F, "sub.example.test", DS),
    "wildcard": query(0x0011, "a.b.wild.example.test", TXT),
    "axfr-refused": query(0x0012, "example.test", AXFR),
    "badvers": query(0x0013, "www.example.test", A, edns=opt(version=1)),
    "notify-notimp": query(0x0014, "example.test", SOA, opcode=4),
    "cname-to-steered": query(0x0015, "alias.steer.test", A),
    "all-any": query(0x0016, "every.steer.test", ANY, edns=opt(payload=4096)),
    "truncated-name": query(0x0017, "example.test", A)[:20],
    # Opcode STATUS and a question name that points into the header: the server
    # cannot read the question and answers NOTIMP without it (hickory reads it).
    "status-pointer-qname": bytes.fromhex("000b11000001000000000000010101010104c00000010001"),
}

ECS = {
    "v4-24": ecs("198.51.100.0/24"),
    "v4-0": ecs("0.0.0.0/0"),
    "v4-32": ecs("192.0.2.1/32"),
    "v4-23": ecs("198.51.100.0/23"),
    "v6-56": ecs("2001:db8:a00::/56"),
    "v6-128": ecs("2001:db8::1/128"),
    "bad-family": struct.pack("!HBB", 3, 8, 0) + b"\x0a",
    "bad-scope": struct.pack("!HBB", 1, 24, 8) + bytes([198, 51, 100]),
}


def explain_seed(flags, prefix, addr, text):
    return bytes([flags, prefix]) + ipaddress.ip_address(addr).packed + text.encode()


EXPLAIN = {
    "near-v4": explain_seed(4, 32, "198.51.100.7", "near"),
    "place-ecs-v4": explain_seed(6, 24, "198.19.16.200", "place"),
    "resident-ecs-de": explain_seed(6, 24, "198.18.5.0", "resident"),
    "every-v6": explain_seed(5, 128, "2001:db8::1", "every"),
    "handoff-ecs-v6": explain_seed(7, 48, "2001:db8:100::", "handoff"),
    "full-name": explain_seed(0, 32, "127.0.0.1", "Split.Steer.Test."),
    "static": explain_seed(4, 32, "192.0.2.1", "static"),
}

FILES = {
    "master_file": [
        "tests/zones/core/example.test.zone",
        "tests/zones/core/child.example.test.zone",
        "zones/example.com.zone",
    ],
    "policy_file": [
        "tests/zones/core/policy.test.toml",
        "tests/zones/steer/steer.test.toml",
        "zones/geo.example.com.toml",
    ],
}

# Record types the test zones do not use, one line each, for the round trip.
TYPES_ZONE = """$ORIGIN example.test.
$TTL 1h
@        SOA   ns1 hostmaster.example.test. ( 1 2h 1h 2w 5m )
@        CAA   0 issue "ca.example.net; account=1"
@        CAA   128 tbs "\\"quoted\\" \\\\ \\200"
_sip._tcp SRV  10 60 5060 sip
ptr      PTR   host.example.net.
dn       DNAME target.example.net.
h        HINFO "PC" "Linux"
n        NAPTR 100 10 "U" "E2U+sip" "!^.*$!sip:info@example.test!" .
k        DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==
d        DS    12345 13 2 8c3da2b0b3c4e5f60718293a4b5c6d7e8f9091a2b3c4d5e6f708192a3b4c5d6e
t        TLSA  3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
s        SSHFP 1 1 0123456789abcdef0123456789abcdef01234567
x        TXT   "a\\059b" "" "\\255\\000"
g        TYPE65534 \\# 3 abcdef
a6       AAAA  ::ffff:192.0.2.1
"""


def write(target, name_, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name_).write_bytes(data)


def main():
    for n, pkt in QUERIES.items():
        write("query_handler", n, pkt)
    for n, data in ECS.items():
        write("client_subnet", n, data)
    for n, data in EXPLAIN.items():
        write("explain", n, data)
    for target, files in FILES.items():
        for f in files:
            write(target, Path(f).name, (REPO / f).read_bytes())
    write("master_file", "types.zone", TYPES_ZONE.encode())


if __name__ == "__main__":
    main()
