#!/usr/bin/env bash
# benches/attack-fds.sh: the idle-connection flood of issue 26 against the release
# build under `ulimit -n 1024`: 1,120 idle TCP connections from 70 loopback /24s;
# prints the server's CPU while they sit idle, whether a new TCP query is answered,
# the health-steered answer, and the accept/eviction/probe counters. Loopback only.
#   benches/attack-fds.sh [--binary PATH] [--nofile N]   (arguments go to attack-fds.py)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ " $* " != *" --binary "* ]]; then
    cargo build --release -q
fi
exec python3 benches/attack-fds.py "$@"
