#!/usr/bin/env python3
"""Check that every server steers every /24 of the mix to the expected address.

For each line "subnet place address" of expect.tsv (from mkmix.py), sends
`www.geobench.example A` with that EDNS Client Subnet (built as in
mkbin-ecs.py) over UDP to each server on 127.0.0.1, and requires NOERROR, the
AA flag, and exactly one A record: the expected address. Prints one line per
server; lists every disagreement and exits 1 if there is any.

Usage: python3 check-answers.py expect.tsv NAME=PORT [NAME=PORT ...]
"""
import importlib.util
import os
import socket
import struct
import sys

sys.dont_write_bytecode = True  # no __pycache__ next to the scripts
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("mkbin_ecs", os.path.join(HERE, "..", "data", "mkbin-ecs.py"))
mkbin_ecs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mkbin_ecs)

QNAME = "www.geobench.example"


def skip_name(msg, off):
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def parse(msg):
    """(rcode, aa, [A addresses in the answer], ECS scope or None)"""
    _id, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    addrs, scope = [], None
    for i in range(an + ns + ar):
        off = skip_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        off += rdlen
        if i < an and rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(rdata))
        elif rtype == 41:
            o = 0
            while o + 4 <= len(rdata):
                code, olen = struct.unpack("!HH", rdata[o:o + 4])
                if code == 8 and olen >= 4:
                    scope = rdata[o + 7]
                o += 4 + olen
    return flags & 0xF, bool(flags & 0x0400), addrs, scope


def ask(port, subnet, msg_id):
    query = mkbin_ecs.message(QNAME, "A", subnet, msg_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        for _try in range(3):
            s.sendto(query, ("127.0.0.1", port))
            try:
                while True:
                    data, _ = s.recvfrom(4096)
                    if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == msg_id:
                        return parse(data)
            except socket.timeout:
                continue
    return None


def main():
    expect = []
    with open(sys.argv[1]) as f:
        for line in f:
            subnet, place, addr = line.rstrip("\n").split("\t")
            expect.append((subnet, place, addr))
    servers = [(a.split("=")[0], int(a.split("=")[1])) for a in sys.argv[2:]]
    bad = 0
    for name, port in servers:
        ok = 0
        scopes = {}
        for i, (subnet, place, want) in enumerate(expect):
            got = ask(port, subnet, (i * 7 + 1) & 0xFFFF)
            if got is None:
                print(f"  {name}: {subnet} ({place}): no answer", file=sys.stderr)
                bad += 1
                continue
            rcode, aa, addrs, scope = got
            if rcode != 0 or not aa or addrs != [want]:
                print(f"  {name}: {subnet} ({place}): rcode {rcode}, aa {aa}, answer {addrs}, want [{want}]",
                      file=sys.stderr)
                bad += 1
                continue
            ok += 1
            scopes[scope] = scopes.get(scope, 0) + 1
        scope_text = ", ".join(f"/{s}: {c}" if s is not None else f"no ECS: {c}"
                               for s, c in sorted(scopes.items(), key=lambda x: (x[0] is None, x[0] or 0)))
        print(f"{name}: {ok}/{len(expect)} /24s steered as expected (ECS scope in the answers: {scope_text})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
