#!/usr/bin/env python3
"""benches/attack-fds.py: an idle-connection flood against a low open-file limit.

The case of issue 26: signpost serves under `ulimit -n 1024` (soft and hard, a
common default), a failover name probes two healthy HTTP backends every 200 ms,
and 1,120 idle TCP connections arrive, 16 from each of 70 /24s on loopback
(127.0.N.1), more than the descriptors left. Prints, after the flood:
  - the server's CPU over 5 s while the connections sit idle (% of one core),
  - whether a new TCP client (127.0.200.1) is answered, and how fast,
  - the failover name's answer (its first backend while the probes see it up),
  - the admin metrics for failed accepts, evictions and probes not made.
Loopback only; everything stops by itself.

  python3 benches/attack-fds.py [--binary target/release/signpost] [--nofile 1024]
"""
import argparse
import http.server
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def query(name, qid=0x1234):
    q = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


def a_records(resp):
    """The A records' addresses of a response to query() (no compression surprises:
    answers point back at the question name)."""
    an = struct.unpack(">H", resp[6:8])[0]
    i = 12
    while resp[i] != 0:
        i += resp[i] + 1
    i += 5
    out = []
    for _ in range(an):
        if resp[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while resp[i] != 0:
                i += resp[i] + 1
            i += 1
        rtype, _, _, rdlen = struct.unpack(">HHIH", resp[i:i + 10])
        i += 10
        if rtype == 1:
            out.append(".".join(str(b) for b in resp[i:i + 4]))
        i += rdlen
    return sorted(out)


def udp_answer(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(query("fo.f.test."), addr)
    try:
        return a_records(s.recv(4096))
    except OSError as e:
        return f"no answer ({e})"
    finally:
        s.close()


def tcp_answered(addr, src, wait=5.0):
    t0 = time.time()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(wait)
        s.connect(addr)
        q = query("fo.f.test.", 0x4321)
        s.sendall(struct.pack(">H", len(q)) + q)
        n = s.recv(2)
        ok = len(n) == 2
        s.close()
        return ok, time.time() - t0
    except OSError as e:
        return False, f"{e}"


class Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def backend():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def metric(admin, name):
    try:
        text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    except OSError as e:
        return f"? ({e})"
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return m.group(1) if m else "absent"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/signpost"))
    ap.add_argument("--nofile", type=int, default=1024)
    ap.add_argument("--nets", type=int, default=70)
    ap.add_argument("--per-net", type=int, default=16)
    a = ap.parse_args()
    # This client holds every connection: give it room of its own.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.nets * a.per_net + 256
    if soft < want and (hard == resource.RLIM_INFINITY or hard >= want):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    b1, b2 = backend(), backend()
    tmp = tempfile.mkdtemp(prefix="signpost-attack-fds-")
    os.makedirs(os.path.join(tmp, "zones"))
    with open(os.path.join(tmp, "zones", "f.toml"), "w") as f:
        f.write(f'''origin = "f.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.f.test."
contact = "h@f.test"
negative_ttl = 60

[checks.web]
http = {{ port = 80, path = "/healthz", expect = 200 }}
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 2

[regions]
a = {{}}
b = {{}}

[names.fo]
strategy = "failover"
when_all_down = "answer-all"
endpoints.a = {{ a = ["192.0.2.10"], check = "web", probe = "127.0.0.1:{b1.server_address[1]}" }}
endpoints.b = {{ a = ["192.0.2.20"], check = "web", probe = "127.0.0.1:{b2.server_address[1]}" }}
''')
    with open(os.path.join(tmp, "server.toml"), "w") as f:
        f.write('zones = "zones"\n[tcp]\nidle_timeout = "30s"\n')
    cmd = (f'ulimit -n {a.nofile} && exec "$0" serve --config {tmp}/server.toml '
           f'--listen 127.0.0.1:0 --admin 127.0.0.1:0')
    proc = subprocess.Popen(["bash", "-c", cmd, a.binary], stderr=subprocess.PIPE, text=True)
    addr = admin = None
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if "connection caps" in line or "open-file limit" in line:
            print("server:", line.strip().split("  ", 1)[-1])
        m = re.search(r"listening on (\S+):(\d+)", line)
        if m:
            addr = (m.group(1), int(m.group(2)))
            admin = re.search(r"admin on (\S+)", line).group(1)
            break
    if addr is None:
        proc.kill()
        sys.exit("signpost did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    try:
        deadline = time.time() + 10
        while udp_answer(addr) != ["192.0.2.10"] and time.time() < deadline:
            time.sleep(0.1)
        print(f"before: fo.f.test. -> {udp_answer(addr)}")
        held, failed = [], 0
        t0 = time.time()
        for net in range(1, a.nets + 1):
            for _ in range(a.per_net):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    s.bind((f"127.0.{net}.1", 0))
                    s.settimeout(5)
                    s.connect(addr)
                    held.append(s)
                except OSError:
                    failed += 1
                    s.close()
        print(f"flood: {len(held)} idle connections from {a.nets} /24s held "
              f"({failed} failed) in {time.time() - t0:.1f}s")
        ok, took = tcp_answered(addr, "127.0.200.1")
        print(f"new TCP client answered: {ok} ({took if isinstance(took, str) else f'{took * 1000:.1f} ms'})")
        tck = os.sysconf("SC_CLK_TCK")
        c0, w0 = cpu_ticks(proc.pid), time.time()
        time.sleep(5)
        cpu = (cpu_ticks(proc.pid) - c0) / tck / (time.time() - w0)
        print(f"server CPU over 5 s with the connections idle: {cpu * 100:.1f}% of one core")
        after = udp_answer(addr)
        verdict = "backend a still up" if after == ["192.0.2.10"] else "the verdict moved: backend a counted down"
        print(f"after: fo.f.test. -> {after} ({verdict})")
        ok, took = tcp_answered(addr, "127.0.201.1")
        print(f"new TCP client answered again: {ok} ({took if isinstance(took, str) else f'{took * 1000:.1f} ms'})")
        for name in ["signpost_accept_resource_errors_total",
                     "signpost_connections_evicted_total",
                     "signpost_probe_local_failures_total"]:
            print(f"{name} {metric(admin, name)}")
        for s in held:
            s.close()
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        b1.shutdown()
        b2.shutdown()


if __name__ == "__main__":
    main()
