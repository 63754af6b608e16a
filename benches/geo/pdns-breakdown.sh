#!/usr/bin/env bash
# benches/geo/pdns-breakdown.sh: where PowerDNS's CPU per geo query goes.
#
# Starts PowerDNS with the benchmark's configuration (benches/geo/pdns/) plus
# three more names in the zone, and loads each name in turn with the same
# client-subnet mix and dnsperf shape as benches/geo-compare.sh:
#   static    A   192.0.2.10                     a plain record
#   luaconst  LUA A "'192.0.2.10'"               Lua, no geo lookup
#   luageo1   LUA A "continent('EU') and ..."    Lua, one geo lookup
#   www       the benchmark's LUA record         Lua, up to five geo lookups
# and prints the server's CPU microseconds per query for each.
#
#   bash benches/geo/pdns-breakdown.sh          # DURATION=5 seconds per name
set -euo pipefail

GEO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MMDB=$(cd "$GEO/../.." && pwd)/tests/fixtures/geo/city.mmdb
PATH=$PATH:/usr/sbin:/sbin
DURATION=${DURATION:-5}
PORT=${PORT:-15460}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DNSPERF_OPTS=${DNSPERF_OPTS:--c 4 -T 2 -q 200}
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"
[[ $DURATION =~ ^[0-9]+$ ]] || { echo "DURATION must be a whole number" >&2; exit 1; }

for cmd in pdns_server dnsperf dig taskset python3; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "pdns-breakdown: $cmd not found (bash benches/install-peers.sh --geo)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-pdns-breakdown.XXXXXX")
PID='' PERF_PID=''
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    [ -z "$PERF_PID" ] || { kill -TERM "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; }
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fill() { sed -e "s|@PORT@|$PORT|g" -e "s|@DIR@|$WORK|g" -e "s|@MMDB@|$MMDB|g" "$1" >"$2"; }
fill "$GEO/pdns/pdns.conf.in" "$WORK/pdns.conf"
fill "$GEO/pdns/named.conf.in" "$WORK/named.conf"
cp "$GEO/pdns/geo.yaml" "$WORK/"
cat "$GEO/pdns/geobench.example.zone" - >"$WORK/geobench.example.zone" <<'EOF'
static   30  A   192.0.2.10
luaconst 30  LUA A "'192.0.2.10'"
luageo1  30  LUA A "continent('EU') and '192.0.2.20' or '192.0.2.10'"
EOF
python3 "$GEO/mkmix.py" "$WORK/mix" 2>/dev/null

taskset -c "$SERVER_CPU" pdns_server --config-dir="$WORK" >"$WORK/log" 2>&1 </dev/null &
PID=$!
for ((i = 0; i < 100; i++)); do
    dig +norec +time=1 +tries=1 @127.0.0.1 -p "$PORT" geobench.example SOA 2>/dev/null | grep -q 'status: NOERROR' && break
    kill -0 "$PID" 2>/dev/null || { tail "$WORK/log" >&2; exit 1; }
    sleep 0.1
done

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }   # utime + stime, all threads
echo "| name | record | answer for 198.19.16.0/24 (EU) | queries/s | CPU µs/query |"
echo "|---|---|---|---:|---:|"
for name in static luaconst luageo1 www; do
    sed "s/^www\.geobench\.example /$name.geobench.example /" "$WORK/mix/queries" >"$WORK/q.$name"
    python3 "$GEO/../data/mkbin-ecs.py" "$WORK/q.$name" "$WORK/q.$name.bin" 2>/dev/null
    answer=$(dig +short +norec +time=1 +tries=1 @127.0.0.1 -p "$PORT" "$name.geobench.example" A +subnet=198.19.16.0/24 | paste -sd ,)
    record=$(awk -v n="$name" '$1 == n {$1 = ""; $2 = ""; sub(/^ +/, ""); print}' "$WORK/geobench.example.zone" | cut -c1-60)
    t0=$(ticks)
    timeout -k 5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -B -d "$WORK/q.$name.bin" \
        "${PERF_OPTS[@]}" -l "$DURATION" >"$WORK/out.$name" 2>&1 &
    PERF_PID=$!
    wait "$PERF_PID"
    PERF_PID=''
    t1=$(ticks)
    awk -v n="$name" -v r="${record//|/\\|}" -v a="$answer" -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" '
        /Queries completed:/ {c = $3} /Queries per second:/ {q = $4}
        END {printf "| %s | `%s` | %s | %.0f | %.1f |\n", n, r, a, q, t * 1e6 / hz / c}' "$WORK/out.$name"
done
