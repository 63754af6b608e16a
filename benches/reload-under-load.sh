#!/usr/bin/env bash
# benches/reload-under-load.sh: throughput and latency while a 100,000-record zone
# reloads in a loop, against the same load without reloads.
#
# Generates big.test (100,000 A records) in a temp dir, starts signpost on it
# (pinned to CPU 0), and runs dnsperf (CPU 1) twice at a fixed rate: once quiet,
# once while the zone file is rewritten (by rename) every RELOAD_EVERY seconds, so
# every reload parses and builds 100,000 records beside the serving copy. Prints
# queries/s, lost queries and p50/p99/p99.9 latency for both, and how many
# reloads happened. Loopback only, bounded in time.
#
#   bash benches/reload-under-load.sh
#   QPS=20000 DURATION=20 bash benches/reload-under-load.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
RECORDS=${RECORDS:-100000}
DURATION=${DURATION:-10}
QPS=${QPS:-10000}
RELOAD_EVERY=${RELOAD_EVERY:-1}

command -v dnsperf >/dev/null || bash "$REPO/benches/install-peers.sh"
[ -x "$SIGNPOST" ] || (cd "$REPO" && cargo build --release -q)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-reload.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/zones"

python3 - "$WORK" "$RECORDS" <<'PY'
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
def zone(serial):
    lines = ["$ORIGIN big.test.", "$TTL 300",
             f"@ IN SOA ns1 hostmaster {serial} 7200 3600 1209600 60", "@ IN NS ns1", "ns1 IN A 192.0.2.1"]
    lines += [f"h{i} IN A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)]
    return "\n".join(lines) + "\n"
open(f"{work}/zones/big.test.zone", "w").write(zone(1))
open(f"{work}/zone.next", "w").write(zone(2))
rnd = random.Random(7)
with open(f"{work}/queries", "w") as q:
    for _ in range(20000):
        q.write(f"h{rnd.randrange(n)}.big.test A\n")
PY

PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$SIGNPOST" serve --zones "$WORK/zones" --listen "127.0.0.1:$PORT" 2>"$WORK/log" &
PIDS+=("$!")
for _ in $(seq 1 600); do grep -q "ready" "$WORK/log" && break; sleep 0.1; done
grep -q "ready" "$WORK/log" || { cat "$WORK/log" >&2; exit 1; }

run() {  # $1 = label; prints one table row
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/queries" -l "$DURATION" -Q "$QPS" -c 4 -v >"$WORK/$1.out" 2>&1 || true
    local qps lost
    qps=$(awk '/Queries per second:/ {print $4}' "$WORK/$1.out")
    lost=$(awk '/Queries lost:/ {print $3}' "$WORK/$1.out")
    awk '/^> / && NF >= 5 && $NF ~ /^[0-9.]+$/ {print $NF}' "$WORK/$1.out" | sort -g | awk -v l="$1" -v q="$qps" -v lost="$lost" '
        { v[NR] = $1 }
        function pct(p,  i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return v[i] * 1e6 }
        END { printf "| %s | %s | %s | %.0f | %.0f | %.0f |\n", l, q, lost, pct(0.5), pct(0.99), pct(0.999) }'
}

echo "zone: $RECORDS records; load: $QPS queries/s for $DURATION s; reload every $RELOAD_EVERY s"
echo "| run | queries/s | lost | p50 (us) | p99 (us) | p99.9 (us) |"
echo "|---|---|---|---|---|---|"
run quiet
before=$(grep -c "reloaded" "$WORK/log" || true)
(
    end=$((SECONDS + DURATION + 1))
    i=0
    while [ $SECONDS -lt $end ]; do
        # Alternate two versions of the file, replaced by rename like an editor.
        cp "$WORK/zones/big.test.zone" "$WORK/zone.prev"
        cp "$WORK/zone.next" "$WORK/zones/.big.tmp" && mv "$WORK/zones/.big.tmp" "$WORK/zones/big.test.zone"
        mv "$WORK/zone.prev" "$WORK/zone.next"
        i=$((i + 1))
        sleep "$RELOAD_EVERY"
    done
) &
PIDS+=("$!")
run reloading
wait "${PIDS[-1]}" 2>/dev/null || true
after=$(grep -c "reloaded" "$WORK/log" || true)
failed=$(grep -c "reload failed" "$WORK/log" || true)
echo "reloads during the run: $((after - before)), failed: $failed"
