#!/usr/bin/env python3
"""What the dashboard's world map costs the server: CPU per `GET /v1/map` (one
steered name, every country decided 16 times) beside `GET /status`, which the
page asks for as often.

    cargo build --release && python3 benches/map-cost.py [ROUNDS]

Starts target/release/signpost on the repository's zones (admin on loopback),
then in ROUNDS turns (default 20) sends 10 requests of each kind over one
keep-alive connection, the kinds in turn so a drift of this shared machine falls
on all alike. Server CPU is user + system time from /proc/PID/stat (every
thread) over each kind's requests; the client's wall time per request beside.
"""

import http.client
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "signpost")
KINDS = [
    ("GET /status", "/status"),
    ("GET /v1/map www (latency)", "/v1/map?name=www.geo.example.com."),
    ("GET /v1/map shop (geo)", "/v1/map?name=shop.geo.example.com."),
    ("GET /v1/map canary (weighted)", "/v1/map?name=canary.geo.example.com."),
]
PER_TURN = 10


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if not os.path.exists(BIN):
        sys.exit("no %s: cargo build --release first" % BIN)
    proc = subprocess.Popen(
        [BIN, "serve", "--zones", os.path.join(ROOT, "zones"),
         "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        admin = None
        deadline = time.time() + 60
        while admin is None and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"admin[^0-9]*(127\.0\.0\.1:\d+)", line)
            if m and "ready" in line:
                admin = m.group(1)
        if admin is None:
            sys.exit("signpost did not say ready with an admin address")
        host, port = admin.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        hz = os.sysconf("SC_CLK_TCK")
        cpu = {k: 0 for k, _ in KINDS}
        wall = {k: 0.0 for k, _ in KINDS}
        for _ in range(rounds):
            for kind, path in KINDS:
                before, t0 = cpu_ticks(proc.pid), time.perf_counter()
                for _ in range(PER_TURN):
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        sys.exit("%s: %d" % (path, r.status))
                wall[kind] += time.perf_counter() - t0
                cpu[kind] += cpu_ticks(proc.pid) - before
        n = rounds * PER_TURN
        print("| request | server CPU ms per request | wall ms per request |")
        print("| --- | ---: | ---: |")
        for kind, _ in KINDS:
            print("| %s | %.2f | %.2f |" % (kind, cpu[kind] * 1000.0 / hz / n, wall[kind] * 1000.0 / n))
        print("\n%d requests of each kind; CPU from /proc (1/%d s ticks)" % (n, hz))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
