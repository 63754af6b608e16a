#!/usr/bin/env python3
"""benches/scale/backends.py: many tiny HTTP backends on loopback, for steer-scale.sh.

    python3 benches/scale/backends.py PORT_BASE COUNT FAILFILE STATSFILE

Listens on 127.0.0.1:PORT_BASE .. PORT_BASE + COUNT - 1 (one asyncio loop, one
listening socket a port) and answers every request with `200 OK` and body `ok`,
then closes (the probes send `Connection: close`). A port listed in FAILFILE
(one port a line) answers `503 Service Unavailable` instead: the file is read
at start and again on SIGUSR1, so a backend "dies" at a moment the caller
knows. Once a second it rewrites STATSFILE with `SECONDS SERVED FAILED` (wall
clock, requests answered 200 and 503 since start). Prints `ready COUNT` on
stdout once every port listens; exits 1 with the port if one cannot be bound.
Reads at most 8 KiB of a request and gives a client 5 s; SIGTERM stops it.
"""
import asyncio
import os
import signal
import sys
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
DOWN = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\ndown"

served = 0
failed = 0
failing = set()


def read_failing(path):
    ports = set()
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    ports.add(int(line))
    except FileNotFoundError:
        pass
    return ports


class Backend(asyncio.Protocol):
    def __init__(self, port):
        self.port = port
        self.buf = b""
        self.transport = None
        self.timer = None

    def connection_made(self, transport):
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(5, transport.close)

    def data_received(self, data):
        global served, failed
        self.buf += data
        if b"\r\n\r\n" in self.buf or len(self.buf) > 8192:
            if self.port in failing:
                self.transport.write(DOWN)
                failed += 1
            else:
                self.transport.write(OK)
                served += 1
            self.transport.close()

    def connection_lost(self, exc):
        if self.timer:
            self.timer.cancel()


async def stats(path):
    while True:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{time.time():.3f} {served} {failed}\n")
        os.replace(tmp, path)
        await asyncio.sleep(1)


async def main():
    global failing
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    base, count, failfile, statsfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    loop = asyncio.get_running_loop()
    failing = read_failing(failfile)

    def reread():
        global failing
        failing = read_failing(failfile)

    loop.add_signal_handler(signal.SIGUSR1, reread)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    servers = []
    for port in range(base, base + count):
        try:
            servers.append(await loop.create_server(lambda p=port: Backend(p), "127.0.0.1", port, backlog=64))
        except OSError as e:
            print(f"cannot listen on 127.0.0.1:{port}: {e}", file=sys.stderr)
            sys.exit(1)
    task = asyncio.create_task(stats(statsfile))
    print(f"ready {count}", flush=True)
    await stop
    task.cancel()
    for s in servers:
        s.close()


if __name__ == "__main__":
    asyncio.run(main())
