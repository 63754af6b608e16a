#!/usr/bin/env bash
# benches/latency-bench.sh: the measured-latency table under load (issue 29).
#
# Starts signpost twice on the same zone, whose steered name
# (www.geobench.example A) uses `strategy = "latency"` over the three regions of
# benches/geo: "static" without [rum] (the great-circle estimate), and "live"
# with [rum] and a feed token, whose live table is then filled with NETWORKS
# (default 100,000) /24s through POST /v1/feed (3 regions each, 2000 samples a
# post). Then:
#   1. memory of that table: the live server's VmRSS and PSS (all its
#      processes) before and after the fill;
#   2. CPU µs per query of the steered name over the geo-compare mix (ECS per
#      query, benches/geo/mkmix.py), dnsperf on CLIENT_CPU, both servers on
#      SERVER_CPU, taking turns for DURATION s each, RUNS times (order
#      alternating): the ratio live ÷ static (target at most 1.02);
#   3. beacons per second one core ingests: the live server on SERVER_CPU,
#      beacons from a client on CLIENT_CPU, each connection from its own
#      127.a.b.1 (one /24 each: the collector admits a burst of 5 per /24), for
#      BEACON_SECONDS; 204s counted, divided by the server's CPU seconds.
# Prints a Markdown report. See "Measured latency" in benches/README.md.
#
#   bash benches/latency-bench.sh
#   DURATION=5 RUNS=1 bash benches/latency-bench.sh     # quick look
#
# Loopback only. Exits non-zero if a tool is missing, a server does not start,
# or the table is not filled in time. Both servers are stopped on exit; the
# temp dir is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GEO=$REPO/benches/geo
MMDB=$REPO/tests/fixtures/geo/city.mmdb
HELPER=$REPO/benches/latency-bench.py

SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
DURATION=${DURATION:-10}          # seconds of dnsperf per server and run
RUNS=${RUNS:-3}                   # runs (the servers take turns in each)
NETWORKS=${NETWORKS:-100000}      # /24s fed into the live table
NQUERIES=${NQUERIES:-10000}       # queries in the mix file
BEACON_SECONDS=${BEACON_SECONDS:-5}
REFRESH=${REFRESH:-10s}           # [rum] refresh of the live server (the default: 10s)
IDLE_SECONDS=${IDLE_SECONDS:-10}  # seconds without queries in which the servers' idle CPU is measured
BEACON_CONNS=${BEACON_CONNS:-64}  # beacon connections open at once
DNSPERF_OPTS=${DNSPERF_OPTS:--c 4 -T 2 -q 200}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-15650}
READY_TIMEOUT=${READY_TIMEOUT:-30}
FILL_TIMEOUT=${FILL_TIMEOUT:-120}  # seconds for the fed table to reach the answers
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
KEEP=${KEEP:-0}

log() { printf 'latency-bench: %s\n' "$*" >&2; }
die() { printf 'latency-bench: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

for v in IDLE_SECONDS DURATION RUNS NETWORKS NQUERIES BEACON_SECONDS BEACON_CONNS PORT_BASE READY_TIMEOUT FILL_TIMEOUT BUILD_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$RUNS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$NETWORKS" -ge 1 ] && [ "$NQUERIES" -ge 1 ] ||
    die "RUNS, DURATION, NETWORKS and NQUERIES must be at least 1"
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"
for cmd in dnsperf dig taskset ps timeout python3 curl; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found"
done
[ -f "$MMDB" ] || die "no $MMDB (the committed geo fixture)"
if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" = 0 ] && [ "$CLIENT_CPU" = 1 ]; then
    die "needs 2 CPUs (servers on CPU 0, clients on CPU 1); set SERVER_CPU/CLIENT_CPU"
fi
CLK_TCK=$(getconf CLK_TCK)
if ! [ -x "$SIGNPOST" ]; then
    [ "$SIGNPOST" = "$REPO/target/release/signpost" ] || die "SIGNPOST=$SIGNPOST is not an executable file"
    log "building signpost (cargo build --release) ..."
    (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release >&2) || die "cargo build --release failed"
    [ -x "$SIGNPOST" ] || die "cargo build --release made no $SIGNPOST"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-latency-bench.XXXXXX")
declare -A PID=() PORT=()
cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    for s in "${!PID[@]}"; do stop_server "$s"; done
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

NEXT_PORT=$PORT_BASE
FREE=''
free_port() { # sets FREE (not in a subshell: NEXT_PORT moves on)
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    FREE=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
}

# ---- query data --------------------------------------------------------------
python3 "$GEO/mkmix.py" "$WORK/mix" "$NQUERIES" 2>"$WORK/mix.log" || die "mkmix.py failed: $(cat "$WORK/mix.log")"
MIX_DESC=$(cat "$WORK/mix.log")
python3 "$REPO/benches/data/mkbin-ecs.py" "$WORK/mix/queries" "$WORK/mix.bin" 2>/dev/null || die "could not build the dnsperf -B file"

# ---- the zone: geobench's name, latency strategy -----------------------------
mkdir -p "$WORK/zones"
# the geo zone without its [names.www.geo] rules, the name's strategy "latency"
awk '/^\[names\.www\.geo\]/ {skip = 1} /^\[/ && !/^\[names\.www\.geo\]/ {skip = 0}
     !skip {sub(/^strategy = "geo"/, "strategy = \"latency\""); print}' \
    "$GEO/signpost/geobench.example.toml" >"$WORK/zones/geobench.example.toml"
grep -q '^strategy = "latency"' "$WORK/zones/geobench.example.toml" || die "could not make the latency zone"

start_server() { # NAME PORT [extra config text]
    local name=$1 port=$2 dir=$WORK/$1
    mkdir -p "$dir"
    sed -e "s|@MMDB@|$MMDB|g" "$GEO/signpost/server.toml.in" >"$dir/server.toml"
    [ -z "${3:-}" ] || printf '%s\n' "$3" >>"$dir/server.toml"
    taskset -c "$SERVER_CPU" "$SIGNPOST" serve --zones "$WORK/zones" --config "$dir/server.toml" \
        --listen "127.0.0.1:$port" >"$dir/log" 2>&1 </dev/null &
    PID[$name]=$!
    PORT[$name]=$port
    local deadline=$((SECONDS + READY_TIMEOUT))
    until dig +norec +time=1 +tries=1 @127.0.0.1 -p "$port" www.geobench.example A +short 2>/dev/null | grep -q '^192\.0\.2\.'; do
        if ! kill -0 "${PID[$name]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 15 "$dir/log" >&2
            die "$name did not answer within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "$name: pid ${PID[$name]} on 127.0.0.1:$port (CPU $SERVER_CPU)"
}

# PSS (kB) of a process tree, from smaps_rollup
pss_mib() {
    local total=0 p kb
    while read -r p; do
        kb=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done < <(tree_pids "$1")
    awk -v k="$total" 'BEGIN {printf "%.1f", k / 1024}'
}

free_port
start_server static "$FREE"

free_port
RUM_PORT=$FREE
printf 'latency-bench-feed-token-%s\n' "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" >"$WORK/feed.token"
chmod 600 "$WORK/feed.token"
free_port
start_server live "$FREE" "
[rum]
listen = \"127.0.0.1:$RUM_PORT\"
regions = { us-east = \"http://127.0.0.2:8080/o.gif\", eu-west = \"http://127.0.0.3:8080/o.gif\", ap-northeast = \"http://127.0.0.4:8080/o.gif\" }
feed_token_file = \"$WORK/feed.token\"
refresh = \"$REFRESH\""

# ---- fill the live table -----------------------------------------------------
# a mix network the feed covers, asked through the CHAOS explain
PROBE=$(awk -F'\t' 'NR == 1 {print $1}' "$WORK/mix/expect.tsv")
explain() { dig +norec +time=2 +tries=1 @127.0.0.1 -p "${PORT[live]}" CH TXT www.geobench.example "+subnet=$PROBE" 2>/dev/null; }
settle() { sleep 2; }   # let start-up allocations settle before reading memory
settle
RSS0=$(rss_mib "${PID[live]}") PSS0=$(pss_mib "${PID[live]}")
RSS_S=$(rss_mib "${PID[static]}") PSS_S=$(pss_mib "${PID[static]}")
explain >"$WORK/explain.before"
t0=$(date +%s%N)
read -r POSTS SAMPLES FIRST LAST < <(timeout "$FILL_TIMEOUT" taskset -c "$CLIENT_CPU" \
    python3 "$HELPER" feed "127.0.0.1:$RUM_PORT" "$WORK/feed.token" "$WORK/mix/expect.tsv" "$NETWORKS") ||
    die "the feed failed"
t1=$(date +%s%N)
log "fed $SAMPLES samples ($NETWORKS networks, $FIRST .. $LAST) in $POSTS posts, $(((t1 - t0) / 1000000)) ms"
# the last network fed: when it shows, the whole feed is in
PROBE=$LAST
deadline=$((SECONDS + FILL_TIMEOUT))
until explain | grep -qi 'measured'; do
    kill -0 "${PID[live]}" 2>/dev/null || die "the live server exited"
    [ "$SECONDS" -lt "$deadline" ] || { explain >&2; die "no measured figure for $PROBE in the explain within ${FILL_TIMEOUT}s"; }
    sleep 0.2
done
t2=$(date +%s%N)
log "measured figure for $PROBE in the answers $(((t2 - t1) / 1000000)) ms after the last post"
explain >"$WORK/explain.after"
settle
RSS1=$(rss_mib "${PID[live]}") PSS1=$(pss_mib "${PID[live]}")
# CPU of each server with no queries, over IDLE_SECONDS: the live one's table
# refresh and collector cost this much whatever the load
i0s=$(cpu_ns "${PID[static]}") i0l=$(cpu_ns "${PID[live]}")
sleep "$IDLE_SECONDS"
i1s=$(cpu_ns "${PID[static]}") i1l=$(cpu_ns "${PID[live]}")
IDLE_S=$(awk -v n=$((i1s - i0s)) -v t="$IDLE_SECONDS" 'BEGIN {printf "%.2f", 100 * n / 1e9 / t}')
IDLE_L=$(awk -v n=$((i1l - i0l)) -v t="$IDLE_SECONDS" 'BEGIN {printf "%.2f", 100 * n / 1e9 / t}')
log "idle CPU over ${IDLE_SECONDS}s: static $IDLE_S%, live $IDLE_L%"

# ---- CPU per query -----------------------------------------------------------
RESULTS=$WORK/results.tsv   # server run completed lost cpu_ns seconds
: >"$RESULTS"
measure() { # NAME RUN
    local s=$1 out=$WORK/$1.$2.out c0 c1
    c0=$(cpu_ns "${PID[$s]}")
    timeout -k 5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        -B -d "$WORK/mix.bin" "${PERF_OPTS[@]}" -l "$DURATION" >"$out" 2>&1 || die "$s: dnsperf failed: $(tail -n 3 "$out")"
    c1=$(cpu_ns "${PID[$s]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$2" "$(stat_of "$out" 'Queries completed:' 3)" \
        "$(stat_of "$out" 'Queries lost:' 3)" "$((c1 - c0))" "$(stat_of "$out" 'Run time (s):' 4)" >>"$RESULTS"
    log "run $2 $s: $(tail -n 1 "$RESULTS" | awk -F'\t' '{printf "%.0f q/s, %.3f us CPU/query, lost %d", $3 / $6, $5 / 1000 / $3, $4}')"
}
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then order=(static live); else order=(live static); fi
    for s in "${order[@]}"; do measure "$s" "$run"; done
done

# ---- beacons per CPU-second --------------------------------------------------
c0=$(cpu_ns "${PID[live]}")
read -r B_SENT B_OK B_429 B_OTHER B_SECS < <(timeout $((BEACON_SECONDS + 30)) taskset -c "$CLIENT_CPU" \
    python3 "$HELPER" beacons "127.0.0.1:$RUM_PORT" "$BEACON_SECONDS" "$BEACON_CONNS") || die "the beacon client failed"
c1=$(cpu_ns "${PID[live]}")
B_CPU=$(awk -v n=$((c1 - c0)) 'BEGIN {printf "%.3f", n / 1e9}')
log "beacons: sent $B_SENT, 204 $B_OK, 429 $B_429, other $B_OTHER in $B_SECS s; server CPU $B_CPU s"
RSS2=$(rss_mib "${PID[live]}")

# ---- report ------------------------------------------------------------------
us_of() { awk -F'\t' -v s="$1" '$1 == s {printf "%.6f\n", $5 / 1000 / $3}' "$RESULTS" | median_min_max; }
read -r SM SLO SHI < <(us_of static)
read -r LM LLO LHI < <(us_of live)
awk -F'\t' '$1 == "static" {s[$2] = $5 / $3} $1 == "live" {l[$2] = $5 / $3}
    END {for (r in l) if (r in s && s[r] > 0) printf "%d %.3f\n", r, l[r] / s[r]}' "$RESULTS" | sort -n >"$WORK/ratio"
RATIOS=$(awk '{print $2}' "$WORK/ratio" | paste -sd ' ' | sed 's/ /, /g')
read -r RM _ _ < <(awk '{print $2}' "$WORK/ratio" | median_min_max)
# the same with each server's idle CPU rate (the refresh, timers) taken out of
# its runs: what answering costs per query
awk -F'\t' -v is="$IDLE_S" -v il="$IDLE_L" '
    $1 == "static" {s[$2] = ($5 - is / 100 * $6 * 1e9) / $3} $1 == "live" {l[$2] = ($5 - il / 100 * $6 * 1e9) / $3}
    END {for (r in l) if (r in s && s[r] > 0) printf "%d %.3f\n", r, l[r] / s[r]}' "$RESULTS" | sort -n >"$WORK/ratio-busy"
RATIOS_B=$(awk '{print $2}' "$WORK/ratio-busy" | paste -sd ' ' | sed 's/ /, /g')
read -r RB _ _ < <(awk '{print $2}' "$WORK/ratio-busy" | median_min_max)
qps_of() { awk -F'\t' -v s="$1" '$1 == s {q += $3; t += $6} END {printf "%.0f", q / t}' "$RESULTS"; }

echo
echo "## Measured latency: live table of $NETWORKS networks against static, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- signpost $("$SIGNPOST" --version 2>/dev/null | head -n 1), binary built $(date -u -r "$SIGNPOST" '+%Y-%m-%d %H:%M UTC') (repo at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "- servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU: \`dnsperf -B $DNSPERF_OPTS -l $DURATION\`, $RUNS run(s), the two in turn (order alternating)"
echo "- mix: \`www.geobench.example A\` (strategy \"latency\") with ECS: $MIX_DESC"
echo "- live table: $NETWORKS /24s fed (the mix's /24s first, so every query of the mix is decided by a measured row), 3 regions each: $SAMPLES samples in $POSTS posts to /v1/feed, $(((t1 - t0) / 1000000)) ms; the last network fed ($LAST) in the explain $(((t2 - t1) / 1000000)) ms after the last post (refresh $REFRESH)"
echo
echo "| server | queries/s | CPU µs/query median (min–max) |"
echo "|---|---:|---:|"
printf '| static (no [rum], estimate) | %s | %.3f (%.3f–%.3f) |\n' "$(qps_of static)" "$SM" "$SLO" "$SHI"
printf '| live ([rum], %s networks) | %s | %.3f (%.3f–%.3f) |\n' "$NETWORKS" "$(qps_of live)" "$LM" "$LLO" "$LHI"
echo
printf 'CPU per query, live ÷ static, run by run: %s; median %.3f (target at most 1.02: %s)\n' "$RATIOS" "$RM" \
    "$(awk -v r="$RM" 'BEGIN {print (r <= 1.02) ? "met" : "MISSED"}')"
echo "Idle CPU (no queries, ${IDLE_SECONDS} s, after the fill): static $IDLE_S %, live $IDLE_L % of a CPU."
printf 'CPU per query with each server'"'"'s idle CPU rate taken out of its runs, live ÷ static, run by run: %s; median %.3f\n' "$RATIOS_B" "$RB"
echo
echo "| memory (all processes) | VmRSS MiB | PSS MiB |"
echo "|---|---:|---:|"
echo "| static server | $RSS_S | $PSS_S |"
echo "| live server, table empty | $RSS0 | $PSS0 |"
echo "| live server, $NETWORKS networks | $RSS1 | $PSS1 |"
printf '| the table (difference) | %s | %s |\n' "$(awk -v a="$RSS1" -v b="$RSS0" 'BEGIN {printf "%.1f", a - b}')" \
    "$(awk -v a="$PSS1" -v b="$PSS0" 'BEGIN {printf "%.1f", a - b}')"
echo
printf '| beacons (%s s, %s connections at once, 5 a connection, one /24 each) | sent | 204 | 429 | other | server CPU s | 204s per CPU-second | 204s per second |\n' "$B_SECS" "$BEACON_CONNS"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
printf '| live server on one CPU | %s | %s | %s | %s | %s | %s | %s |\n' "$B_SENT" "$B_OK" "$B_429" "$B_OTHER" "$B_CPU" \
    "$(awk -v n="$B_OK" -v c="$B_CPU" 'BEGIN {printf (c > 0) ? "%.0f" : "-", n / c}')" \
    "$(awk -v n="$B_OK" -v t="$B_SECS" 'BEGIN {printf "%.0f", n / t}')"
echo
echo "VmRSS of the live server after the beacons: $RSS2 MiB. CPU: on-CPU time (schedstat) of the server's threads over the interval."
