#!/usr/bin/env python3
"""benches/attack.py: signpost tried as an attacker would, on loopback.

Runs each attack of issue 26 against the release build and prints what got
through. Loopback only (127.0.0.0/8); every flood is bounded in count and time
and stops by itself; every process it starts is stopped at the end.

Rows (RRL on, rate 100, slip 2, loopback not exempt):
  rrl-wildcard    random names under *.users.example.com, one client, 4,000 q/s
  rrl-referral    random names under lab.example.com (a delegation), same
  rrl-signed-do1  random names with DO=1 on the signed zone (compact denial)
  rrl-signed-do0  random names with DO=0, same zone
  -> full answers a second (target: at most 1.2 x rate) and slips a second.

  budget-*        20,000 q/s of DO=1 random names on the signed zone, from one
                  prefix (127.0.0.1) and then spread over 1,000 source addresses
                  in 1,000 /24s, with RRL as above; meanwhile a validating
                  Unbound (its own /24, asking before the flood) resolves 50
                  fresh non-existent names and 50 times pool.geo.example.com (an
                  `all` answer signed on the fly), and a client of another /24
                  that never asked before asks directly for fresh names, once with
                  a DNS cookie and once without.
                  -> SERVFAIL counts (target: 0 of 100 for Unbound).

  admin-*         a browser-style cross-origin POST (Origin of another site, no
                  custom header) and a foreign Host: status, and whether the
                  region was drained.

The descriptor attack (1,100 idle connections under ulimit -n 1024) has its own
script, benches/attack-fds.sh, which this one runs last when --fds is given.

  python3 benches/attack.py [--seconds 3] [--fds]
"""
import argparse
import os
import random
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import multiprocessing as mp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNBOUND = "/usr/sbin/unbound"


def name_wire(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def query(name, qtype=1, qid=None, do=False, edns=True, cookie=None, rd=False):
    qid = random.getrandbits(16) if qid is None else qid
    flags = 0x0100 if rd else 0
    q = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    q += name_wire(name) + struct.pack(">HH", qtype, 1)
    if edns:
        opts = b""
        if cookie is not None:
            opts += struct.pack(">HH", 10, len(cookie)) + cookie
        q += b"\x00" + struct.pack(">HHBBHH", 41, 1232, 0, 0, 0x8000 if do else 0, len(opts)) + opts
    return q


def rcode(resp):
    return resp[3] & 0x0F if len(resp) >= 4 else -1


def truncated(resp):
    return len(resp) >= 3 and resp[2] & 0x02 != 0


def cookie_of(resp):
    """The COOKIE option's data in a response, if any (scans the OPT record)."""
    i = resp.rfind(b"\x00\x00\x29")
    if i < 0:
        return None
    rdlen = struct.unpack(">H", resp[i + 9:i + 11])[0]
    p, end = i + 11, i + 11 + rdlen
    while p + 4 <= end:
        code, n = struct.unpack(">HH", resp[p:p + 4])
        if code == 10:
            return resp[p + 4:p + 4 + n]
        p += 4 + n
    return None


class Server:
    def __init__(self, binary, config, work):
        self.log = open(os.path.join(work, "signpost.log"), "w+")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--admin", "127.0.0.1:0"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=work)
        deadline = time.time() + 60
        self.addr = self.admin = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.write(line)
            m = re.search(r"listening on (\S+):(\d+)", line)
            if m:
                self.addr = (m.group(1), int(m.group(2)))
                a = re.search(r"admin on (\S+):(\d+)", line)
                self.admin = (a.group(1), int(a.group(2))) if a else None
                break
        if not self.addr:
            self.stop()
            sys.exit("signpost did not start; see " + self.log.name)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.write(line)

    def metric(self, name):
        body = http(self.admin, "GET", "/metrics")[1]
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def http(addr, method, path, headers=None):
    host, port = addr
    s = socket.create_connection((host, port), timeout=5)
    h = {"Host": f"{host}:{port}", "Connection": "close", "Content-Length": "0"}
    h.update(headers or {})
    req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    s.sendall(req.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1]) if head else 0
    return status, body.decode(errors="replace")


def flood_process(addr, srcs, suffix, qtype, do, rate, seconds, out):
    """Sends `rate` q/s of fresh names under `suffix` for `seconds`, round-robin
    over one socket per source address; counts full answers, slips, SERVFAILs."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    socks = []
    for src in srcs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        s.setblocking(False)
        socks.append(s)
    full = slips = servfail = sent = 0
    per_sec = {}
    start = time.monotonic()
    tag = random.getrandbits(24)
    batch = max(1, rate // 1000)
    while True:
        now = time.monotonic() - start
        if now >= seconds:
            break
        due = int(now * rate)
        while sent < due:
            for _ in range(batch):
                s = socks[sent % len(socks)]
                try:
                    s.sendto(query(f"r{tag:x}n{sent}.{suffix}", qtype, do=do), addr)
                except OSError:
                    pass
                sent += 1
        for s in socks if len(socks) < 50 else socks[(sent // batch) % len(socks)::max(1, len(socks) // 50)]:
            while True:
                try:
                    resp = s.recv(4096)
                except OSError:
                    break
                sec = int(time.monotonic() - start)
                if truncated(resp):
                    slips += 1
                elif rcode(resp) == 2:
                    servfail += 1
                else:
                    full += 1
                    per_sec[sec] = per_sec.get(sec, 0) + 1
        time.sleep(0.0005)
    # What is still on its way.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        got = False
        for s in socks:
            try:
                resp = s.recv(4096)
            except OSError:
                continue
            got = True
            if truncated(resp):
                slips += 1
            elif rcode(resp) == 2:
                servfail += 1
            else:
                full += 1
        if not got:
            time.sleep(0.01)
    out.put({"sent": sent, "full": full, "slips": slips, "servfail": servfail,
             "elapsed": time.monotonic() - start, "per_sec": per_sec})


def run_flood(addr, srcs, suffix, qtype, do, rate, seconds):
    q = mp.Queue()
    p = mp.Process(target=flood_process, args=(addr, srcs, suffix, qtype, do, rate, seconds, q))
    p.start()
    return p, q


def rrl_row(label, addr, suffix, qtype, do, seconds, rate_limit):
    p, q = run_flood(addr, ["127.0.0.1"], suffix, qtype, do, 4000, seconds)
    r = q.get()
    p.join()
    full_ps = r["full"] / seconds
    ok = full_ps <= 1.2 * rate_limit
    print(f"{label:16} sent {r['sent'] / seconds:7.0f} q/s  full answers {full_ps:6.0f}/s "
          f"(x rate {full_ps / rate_limit:4.2f}, target <= 1.20: {'met' if ok else 'MISSED'})  "
          f"slipped {r['slips'] / seconds:5.0f}/s", flush=True)


def exchange(sock, addr, pkt, wait=2.0):
    sock.settimeout(wait)
    sock.sendto(pkt, addr)
    try:
        return sock.recv(4096)
    except OSError:
        return b""


def start_unbound(work, auth, ds_lines):
    if not os.path.exists(UNBOUND):
        sys.exit("unbound is missing: apt-get install -y unbound")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    anchors = "".join(f'  trust-anchor: "{l}"\n' for l in ds_lines)
    stubs = "".join(f'stub-zone:\n  name: "{z}"\n  stub-addr: {auth[0]}@{auth[1]}\n'
                    for z in ("example.com.", "geo.example.com."))
    conf = (f"server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-not-query-localhost: no\n"
            f"  outgoing-interface: 127.0.9.1\n"
            f'  module-config: "validator iterator"\n  chroot: ""\n  username: ""\n  directory: "{work}"\n'
            f'  pidfile: "{work}/unbound.pid"\n  use-syslog: no\n  logfile: "{work}/unbound.log"\n'
            f"  verbosity: 1\n  access-control: 127.0.0.0/8 allow\n  num-threads: 1\n"
            f"  msg-cache-size: 0\n  rrset-cache-size: 0\n  aggressive-nsec: no\n"
            f"{anchors}remote-control:\n  control-enable: no\n{stubs}")
    path = os.path.join(work, "unbound.conf")
    with open(path, "w") as f:
        f.write(conf)
    proc = subprocess.Popen([UNBOUND, "-d", "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    addr = ("127.0.0.1", port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    deadline = time.time() + 20
    while time.time() < deadline:
        if exchange(sock, addr, query("example.com.", 6, do=True, rd=True), 0.3):
            return proc, addr
    proc.kill()
    sys.exit("unbound did not answer")


def budget_row(label, server, unbound_addr, srcs, seconds):
    tag = random.getrandbits(24)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Unbound has been asking before the flood (its network has a history).
    for i in range(5):
        exchange(sock, unbound_addr, query(f"warm{tag:x}{i}.example.com.", do=True, rd=True))
        time.sleep(0.6)
    over0 = server.metric("signpost_dnssec_over_cap_total")
    p, q = run_flood(server.addr, srcs, "example.com.", 1, True, 20000, seconds + 1)
    time.sleep(0.5)
    ub_fail = 0
    direct = {"cookie": 0, "plain": 0}
    d_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    d_sock.bind(("127.0.1.1", 0))
    client_cookie = os.urandom(8)
    server_cookie = b""
    start = time.monotonic()
    for i in range(100):
        name = f"fresh{tag:x}n{i}.example.com." if i % 2 == 0 else "pool.geo.example.com."
        r = exchange(sock, unbound_addr, query(name, 1, do=True, rd=True), 3.0)
        if not r or rcode(r) == 2:
            ub_fail += 1
        # A client of another /24 that never asked before, directly, with and
        # without a DNS cookie.
        r = exchange(d_sock, server.addr, query(f"direct{tag:x}n{i}.example.com.", do=True,
                                                 cookie=client_cookie + server_cookie))
        c = cookie_of(r) if r else None
        if c and len(c) == 24:
            server_cookie = c[8:]
        if not r or rcode(r) == 2 or truncated(r):
            direct["cookie"] += 1
        r = exchange(d_sock, server.addr, query(f"plain{tag:x}n{i}.example.com.", do=True))
        if not r or rcode(r) == 2 or truncated(r):
            direct["plain"] += 1
        if time.monotonic() - start > seconds:
            time.sleep(0)
    r = q.get()
    p.join()
    over = server.metric("signpost_dnssec_over_cap_total") - over0
    ok = ub_fail == 0
    print(f"{label:16} flood {r['sent'] / (seconds + 1):6.0f} q/s from {len(srcs)} source(s): "
          f"{r['servfail']} SERVFAIL, {r['slips']} slipped, {r['full']} signed answers; over budget {over:.0f}\n"
          f"{'':16} Unbound: {ub_fail} of 100 lookups failed (target 0: {'met' if ok else 'MISSED'}); "
          f"a new direct client: {direct['cookie']} of 100 refused with a cookie, {direct['plain']} of 100 without",
          flush=True)


def admin_rows(server):
    path = "/v1/override?target=region:eu-west&action=drain"
    st1, _ = http(server.admin, "POST", path, {"Origin": "http://evil.example", "Content-Type": "text/plain"})
    st2, _ = http(server.admin, "POST", path, {"Host": "evil.example:5380", "X-Signpost-Request": "1"})
    st3, _ = http(server.admin, "GET", "/status", {"Host": "rebind.evil.example:5380"})
    status = http(server.admin, "GET", "/status")[1]
    drained = re.search(r'"drained":\s*true', status) is not None
    print(f"{'admin-cors-post':16} {st1} (target 403)   {'admin-foreign-host':18} POST {st2}, GET /status {st3} "
          f"(target 403)   eu-west drained afterwards: {'yes' if drained else 'no'}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--binary", action="append",
                    help="a signpost binary to attack (repeat to run several side by side; "
                         "default target/release/signpost)")
    ap.add_argument("--fds", action="store_true", help="also run benches/attack-fds.sh")
    a = ap.parse_args()
    binaries = [os.path.abspath(b) for b in a.binary or [os.path.join(REPO, "target/release/signpost")]]
    if not os.path.exists(binaries[0]):
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=REPO, check=True)
    for b in binaries:
        attack(b, a.seconds)
    if a.fds:
        subprocess.run(["bash", os.path.join(REPO, "benches/attack-fds.sh")], cwd=REPO)


def attack(binary, seconds):
    work = tempfile.mkdtemp(prefix="signpost-attack-")
    procs = []
    try:
        shutil.copytree(os.path.join(REPO, "zones"), os.path.join(work, "zones"))
        geo = os.path.join(work, "zones/geo.example.com.toml")
        with open(geo) as f:
            text = f.read()
        with open(geo, "w") as f:
            f.write("dnssec = true\n" + text)
        config = os.path.join(work, "server.toml")
        with open(config, "w") as f:
            f.write('zones = "zones"\n'
                    f'[geo]\ndatabase = "{REPO}/geo/geo-whois-asn-country.mmdb"\n'
                    '[dnssec]\nzones = ["example.com."]\nkey_dir = "keys"\n'
                    "[rrl]\nrate = 100\nslip = 2\nexempt = []\n")
        check = subprocess.run([binary, "check", "--config", config], capture_output=True, text=True, cwd=work)
        if check.returncode != 0:
            sys.exit("signpost check failed:\n" + check.stdout + check.stderr)
        ds = [l[4:] for l in check.stdout.splitlines() if l.startswith("ds: ")]
        server = Server(binary, config, work)
        procs.append(server)
        print(f"signpost {binary} on {server.addr[0]}:{server.addr[1]}; RRL rate 100, slip 2, loopback limited; "
              f"each flood {seconds:.0f} s")
        rrl_row("rrl-wildcard", server.addr, "users.example.com.", 1, False, seconds, 100)
        rrl_row("rrl-referral", server.addr, "lab.example.com.", 1, False, seconds, 100)
        rrl_row("rrl-signed-do1", server.addr, "example.com.", 1, True, seconds, 100)
        rrl_row("rrl-signed-do0", server.addr, "example.com.", 1, False, seconds, 100)
        ub, ub_addr = start_unbound(work, server.addr, ds)
        try:
            budget_row("budget-1-prefix", server, ub_addr, ["127.0.0.1"], seconds)
            spread = [f"127.{10 + i // 250}.{i % 250}.1" for i in range(1000)]
            budget_row("budget-1000-nets", server, ub_addr, spread, seconds)
        finally:
            ub.kill()
            ub.wait()
        admin_rows(server)
        server.stop()
        procs.clear()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
