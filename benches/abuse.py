#!/usr/bin/env python3
"""benches/abuse.py: keep answering good queries while being abused, on loopback.

Starts signpost on the example zones and, for DURATION seconds, runs at once:
  - a garbage UDP flood (random bytes of random length),
  - oversized UDP datagrams (8-60 KB),
  - truncated and bit-flipped copies of good queries,
  - slow TCP clients that connect and trickle one byte a second,
  - TCP clients whose length prefix promises bytes that never come,
  - a TCP connection flood (connect, hold, more than the cap),
while a measuring client sends good queries at a fixed rate and counts how many
are answered correctly within 1 s. Prints the share answered, the abuse volume,
and the server's peak resident memory (VmHWM). Loopback only; every loop is
bounded in time; everything stops by itself.

  python3 benches/abuse.py [--duration 10] [--rate 2000]
"""
import argparse
import os
import random
import re
import socket
import struct
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def query(name, qtype=1, qid=0x1234, edns=True):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1 if edns else 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return q


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=2000, help="good queries per second")
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/signpost"))
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)

    proc = subprocess.Popen(
        [a.binary, "serve", "--zones", os.path.join(REPO, "zones"), "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    addr = None
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stderr.readline()
        m = re.search(r"listening on (\S+):(\d+)", line)
        if m:
            addr = (m.group(1), int(m.group(2)))
            break
    if addr is None:
        proc.kill()
        sys.exit("signpost did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

    stop = time.time() + a.duration
    counts = {k: 0 for k in ["garbage", "oversized", "mangled", "slow_tcp", "lying_tcp", "tcp_flood"]}
    lock = threading.Lock()
    good = query("www.example.com.")

    def bump(k, n=1):
        with lock:
            counts[k] += n

    def garbage():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random(1)
        while time.time() < stop:
            for _ in range(200):
                s.sendto(rnd.randbytes(rnd.randrange(0, 600)), addr)
            bump("garbage", 200)
            time.sleep(0.001)

    def oversized():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random(2)
        while time.time() < stop:
            try:
                s.sendto(good + rnd.randbytes(rnd.randrange(8000, 60000)), addr)
                bump("oversized")
            except OSError:
                pass
            time.sleep(0.002)

    def mangled():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rnd = random.Random(3)
        while time.time() < stop:
            for _ in range(100):
                p = bytearray(good)
                for _ in range(rnd.randrange(1, 4)):
                    p[rnd.randrange(len(p))] = rnd.randrange(256)
                s.sendto(bytes(p[: rnd.randrange(1, len(p) + 1)]), addr)
            bump("mangled", 100)
            time.sleep(0.001)

    def slow_tcp():
        conns = []
        while time.time() < stop:
            if len(conns) < 50:
                try:
                    c = socket.create_connection(addr, timeout=1)
                    conns.append(c)
                    bump("slow_tcp")
                except OSError:
                    pass
            for c in list(conns):
                try:
                    c.send(b"\x00")
                except OSError:
                    conns.remove(c)
            time.sleep(1.0)
        for c in conns:
            c.close()

    def lying_tcp():
        while time.time() < stop:
            try:
                c = socket.create_connection(addr, timeout=1)
                c.send(struct.pack(">H", 500) + good[:20])
                bump("lying_tcp")
                c.close()
            except OSError:
                pass
            time.sleep(0.01)

    def tcp_flood():
        held = []
        while time.time() < stop:
            try:
                held.append(socket.create_connection(addr, timeout=1))
                bump("tcp_flood")
            except OSError:
                pass
            if len(held) > 1500:
                for c in held[:500]:
                    c.close()
                held = held[500:]
            time.sleep(0.002)
        for c in held:
            c.close()

    threads = [threading.Thread(target=f, daemon=True) for f in (garbage, oversized, mangled, slow_tcp, lying_tcp, tcp_flood)]
    for t in threads:
        t.start()

    # The measuring client: good queries at a fixed rate, each must be answered.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    sent = answered = 0
    interval = 1.0 / a.rate
    next_t = time.time()
    while time.time() < stop:
        qid = sent & 0xFFFF
        s.sendto(query("www.example.com.", qid=qid), addr)
        sent += 1
        try:
            while True:
                data, _ = s.recvfrom(4096)
                if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid and data[3] & 0x0F == 0:
                    answered += 1
                    break
        except socket.timeout:
            pass
        next_t += interval
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
    for t in threads:
        t.join(timeout=5)

    hwm = "?"
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM"):
                    hwm = line.split(":", 1)[1].strip()
    except OSError:
        pass
    alive = proc.poll() is None
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    share = answered / sent if sent else 0.0
    print(f"duration {a.duration:.0f} s; abuse sent: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"good queries: {sent} sent, {answered} answered correctly ({share:.2%})")
    print(f"server peak RSS (VmHWM): {hwm}; still running at the end: {alive}")
    if not alive or share < 0.99:
        sys.exit(1)


if __name__ == "__main__":
    main()
