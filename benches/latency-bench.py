#!/usr/bin/env python3
"""Helpers of benches/latency-bench.sh: the feed that fills the live table, and
the beacon load. Loopback only; every loop is bounded in count and time.

  latency-bench.py feed HOST:PORT TOKEN_FILE EXPECT_TSV NETWORKS
      POSTs NETWORKS /24s (the mix's /24s from EXPECT_TSV first, then /24s
      from 1.0.0.0 up), 3 regions each, to /v1/feed in bodies of at most
      2000 samples (the collector's max_feed_samples). Prints, on stdout,
      "posts samples first_network last_network"; exits 1 on any answer
      but 204.

  latency-bench.py beacons HOST:PORT SECONDS [CONNS]
      Sends beacons to /v1/beacon from 127.a.b.1, a new /24 for every
      connection (the collector admits a burst of 5 per /24), 5 beacons per
      keep-alive connection, CONNS connections at once (default 64), for
      SECONDS. Prints "sent ok_204 rate_limited_429 other seconds".
"""
import ipaddress
import json
import selectors
import socket
import sys
import time
import urllib.error
import urllib.request

REGIONS = ("us-east", "eu-west", "ap-northeast")
MAX_FEED_SAMPLES = 2000


def networks(expect_tsv, n):
    seen, out = set(), []
    with open(expect_tsv) as f:
        for line in f:
            cidr = line.split("\t", 1)[0].strip()
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if net.version == 4 and net.prefixlen == 24 and cidr not in seen:
                seen.add(str(net))
                out.append(str(net))
            if len(out) >= n:
                return out
    a = int(ipaddress.IPv4Address("1.0.0.0"))
    while len(out) < n:
        cidr = f"{ipaddress.IPv4Address(a)}/24"
        a += 256
        if cidr not in seen:
            seen.add(cidr)
            out.append(cidr)
    return out


def feed(addr, token_file, expect_tsv, n):
    with open(token_file) as f:
        token = f.read().strip()
    nets = networks(expect_tsv, n)
    samples = []
    for i, net in enumerate(nets):
        # a different winner per network, spread over the three regions
        for j, region in enumerate(REGIONS):
            samples.append({"network": net, "region": region,
                            "rtt_ms": 10 + 30 * ((i + j) % 3) + (i % 7), "count": 10})
    posts = 0
    for k in range(0, len(samples), MAX_FEED_SAMPLES):
        body = json.dumps({"v": 1, "samples": samples[k:k + MAX_FEED_SAMPLES]}).encode()
        req = urllib.request.Request(f"http://{addr}/v1/feed", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            sys.exit(f"feed post {posts + 1}: HTTP {e.code}: {e.read()[:300]!r}")
        if status != 204:
            sys.exit(f"feed post {posts + 1}: HTTP {status}")
        posts += 1
    print(posts, len(samples), nets[0], nets[-1])


BODY = b'{"v":1,"samples":[{"region":"eu-west","rtt_ms":42.5},{"region":"us-east","rtt_ms":96.1},{"region":"ap-northeast","rtt_ms":210}]}'


def beacons(addr, seconds, conns):
    host, port = addr.rsplit(":", 1)
    port = int(port)
    req = (b"POST /v1/beacon HTTP/1.1\r\nHost: " + addr.encode() +
           b"\r\nContent-Type: text/plain\r\nContent-Length: " + str(len(BODY)).encode() +
           b"\r\n\r\n" + BODY)
    per_conn = 5
    sel = selectors.DefaultSelector()
    # source /24s 127.a.b.0 with (a, b) from (1, 0) on: 127.0.0.0/24 is the servers'
    nxt = [256]
    stats = {"sent": 0, 204: 0, 429: 0, "other": 0}

    def open_one():
        if nxt[0] >= 65536:
            return False
        a, b = divmod(nxt[0], 256)
        nxt[0] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.bind((f"127.{a}.{b}.1", 0))
        s.settimeout(5)
        s.connect((host, port))
        s.setblocking(False)
        s.sendall(req)
        stats["sent"] += 1
        sel.register(s, selectors.EVENT_READ, {"left": per_conn - 1, "buf": b""})
        return True

    start = time.monotonic()
    end = start + seconds
    for _ in range(conns):
        open_one()
    while sel.get_map() and time.monotonic() < end:
        for key, _ in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                stats["other"] += 1
                if time.monotonic() < end:
                    open_one()
                continue
            st["buf"] += data
            done = False
            while b"\r\n\r\n" in st["buf"]:
                head, rest = st["buf"].split(b"\r\n\r\n", 1)
                clen = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v.strip())
                if len(rest) < clen:
                    break
                st["buf"] = rest[clen:]
                code = int(head.split(b" ", 2)[1])
                stats[code if code in (204, 429) else "other"] += 1
                if st["left"] > 0 and time.monotonic() < end:
                    st["left"] -= 1
                    s.sendall(req)
                    stats["sent"] += 1
                else:
                    done = True
                    break
            if done:
                sel.unregister(s)
                s.close()
                if time.monotonic() < end:
                    open_one()
    elapsed = time.monotonic() - start
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(stats["sent"], stats[204], stats[429], stats["other"], f"{elapsed:.3f}")


def main():
    if len(sys.argv) >= 6 and sys.argv[1] == "feed":
        feed(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "beacons":
        beacons(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) == 5 else 64)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
