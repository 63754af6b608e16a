#!/usr/bin/env bash
# benches/both-cores.sh: throughput with both cores serving. signpost, gdnsd and
# Knot DNS, each with WORKERS UDP workers (signpost: udp_sockets_per_address,
# gdnsd: udp_threads, Knot: udp-workers; benches/lib.sh peer_setup), serve the
# static benchmark zone on loopback, not pinned (SERVER_CPU, default 0-1: both
# CPUs), with dnsperf as a third process on the same CPUs (CLIENT_CPU, default
# 0-1). Each step of a ladder of offered rates (RATES: dnsperf -Q, "max" for no
# limit) is run for every server in SLICE-second turns, in reverse order on even
# steps, until each has had DURATION seconds. Prints per step and server:
# queries/s, lost, CPU µs/query (on-CPU time of every thread, schedstat, over the
# queries completed), the server's and dnsperf's CPU %, and signpost's figures
# divided by gdnsd's and Knot's. The client shares the cores with the server, so
# the figures are relative: a server that takes less CPU leaves more to dnsperf.
#
#   bash benches/both-cores.sh
#   RATES="50000 max" DURATION=5 bash benches/both-cores.sh
#
# Every server is stopped on exit; the temp dir is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/benches
DATA=$BENCH/data
PATH=$PATH:/usr/sbin:/sbin

SERVERS=${SERVERS:-signpost gdnsd knot}
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
WORKERS=${WORKERS:-2}
RATES=${RATES:-20000 50000 100000 max}
DURATION=${DURATION:-10}
SLICE=${SLICE:-1}
# 16 client sockets: with SO_REUSEPORT the kernel spreads flows over a server's
# sockets by a hash of the addresses and ports, and 4 flows over 2 sockets land
# all on one in 1 case of 8
DNSPERF_OPTS=${DNSPERF_OPTS:--c 16 -T 2 -q 200}
ZONE=${ZONE:-$DATA/bench.example.zone}
SERVER_CPU=${SERVER_CPU:-0-1}
CLIENT_CPU=${CLIENT_CPU:-0-1}
PORT_BASE=${PORT_BASE:-15850}
READY_TIMEOUT=${READY_TIMEOUT:-30}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
KEEP=${KEEP:-0}

log() { printf 'both-cores: %s\n' "$*" >&2; }
die() { printf 'both-cores: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

for v in WORKERS DURATION SLICE PORT_BASE READY_TIMEOUT BUILD_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
if [ "$WORKERS" -lt 1 ] || [ "$DURATION" -lt 1 ] || [ "$SLICE" -lt 1 ] || [ "$SLICE" -gt "$DURATION" ]; then
    die "WORKERS, DURATION and SLICE must be at least 1, and SLICE at most DURATION"
fi
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a RATE_LIST <<<"$RATES"
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"
for s in "${SERVER_LIST[@]}"; do
    case $s in signpost | gdnsd | knot | nsd) ;; *) die "unknown server '$s' in SERVERS (signpost gdnsd knot nsd)" ;; esac
done
for r in "${RATE_LIST[@]}"; do
    [[ $r =~ ^[1-9][0-9]*$ ]] || [ "$r" = max ] || die "RATES holds whole numbers of queries/s or max, not '$r'"
done

bash "$BENCH/install-peers.sh" || die "could not install the peer servers and tools (benches/install-peers.sh)"
for cmd in gdnsd knotd dnsperf dig taskset timeout python3; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found after install-peers.sh"
done
CLK_TCK=$(getconf CLK_TCK)
declare -A PID=() PORT=()
bench_start signpost-both-cores

EXPECT=$(tr -s '[:space:]' '\n' <"$DATA/static.expect" | sed '/^$/d' | sort | paste -sd ' ')
rcodes() {
    awk -F: '/Response codes:/ {print $2}' "$1" | tr ',' '\n' | awk 'NF >= 2 {print $1 "=" $2}' | sort | paste -sd ' '
}

port=$PORT_BASE
for s in "${SERVER_LIST[@]}"; do
    while port_busy "$port"; do port=$((port + 1)); done
    dir=$WORK/$s
    peer_setup "$s" "$dir" "$port" "$ZONE" "$WORKERS"
    (cd "$dir" && exec taskset -c "$SERVER_CPU" "${SERVER_CMD[@]}" >"$dir/log" 2>&1 </dev/null) &
    PID[$s]=$!
    PORT[$s]=$port
    port=$((port + 1))
done
for s in "${SERVER_LIST[@]}"; do
    python3 "$BENCH/first-answer.py" "${PORT[$s]}" bench.example "${PID[$s]}" "$READY_TIMEOUT" >/dev/null ||
        die "$s did not answer on 127.0.0.1:${PORT[$s]}: $(tail -n 5 "$WORK/$s/log")"
    out=$WORK/$s/check.out
    timeout -k 5 60 dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$DATA/static.queries" -n 1 -q 20 -t 2 >"$out" 2>&1 ||
        die "$s: dnsperf check pass failed: $(tail -n 3 "$out")"
    [ "$(stat_of "$out" 'Queries lost:' 3)" = 0 ] || die "$s: queries lost in the check pass"
    [ "$(rcodes "$out")" = "$EXPECT" ] || die "$s: one pass over static.queries gave '$(rcodes "$out")', want '$EXPECT'"
    threads=$(for p in $(tree_pids "${PID[$s]}"); do ls "/proc/$p/task"; done | wc -l)
    log "$s on 127.0.0.1:${PORT[$s]} answers the mix ($EXPECT); $threads threads in all"
done

# one dnsperf slice against SERVER at RATE; sets PERF (server CPU ticks, -) and DCPU (dnsperf's ticks)
DCPU=0
declare -A DTICKS=()
slice() { # SERVER RATE OUT
    local s=$1 rate=$2 out=$3 n0 n1
    local -a q=()
    [ "$rate" = max ] || q=(-Q "$rate")
    n0=$(cpu_ns "${PID[$s]}")
    times >"$WORK/times.0"
    timeout -k 5 $((SLICE + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        -d "$DATA/static.queries" "${PERF_OPTS[@]}" "${q[@]}" -l "$SLICE" >"$out" 2>&1 ||
        die "$s: dnsperf failed: $(tail -n 3 "$out")"
    times >"$WORK/times.1"
    n1=$(cpu_ns "${PID[$s]}")
    kill -0 "${PID[$s]}" 2>/dev/null || die "$s died during the run: $(tail -n 5 "$WORK/$s/log")"
    PERF=("$(ns_to_ticks "$((n1 - n0))")" -)
    DCPU=$(($(times_ticks "$WORK/times.1") - $(times_ticks "$WORK/times.0")))
}

RESULTS=$WORK/results.tsv   # rate server qps completed lost secs server_ticks dnsperf_ticks
: >"$RESULTS"
step=0
for rate in "${RATE_LIST[@]}"; do
    step=$((step + 1))
    mapfile -t ORDER < <(run_order "$step")
    slices_reset "${ORDER[@]}"
    for s in "${ORDER[@]}"; do DTICKS[$s]=0; done
    for ((k = 1; k * SLICE <= DURATION; k++)); do
        for s in "${ORDER[@]}"; do
            out=$WORK/$s/$rate.$k.out
            slice "$s" "$rate" "$out"
            slice_add "$s" "$out"
            DTICKS[$s]=$((DTICKS[$s] + DCPU))
        done
    done
    for s in "${SERVER_LIST[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rate" "$s" \
            "$(awk -v n="${QDONE[$s]}" -v t="${SECS[$s]}" 'BEGIN {printf "%.0f", n / t}')" \
            "${QDONE[$s]}" "${LOST[$s]}" "${SECS[$s]}" "${TICKS[$s]}" "${DTICKS[$s]}" >>"$RESULTS"
    done
    log "offered $rate q/s: $(awk -F'\t' -v r="$rate" -v hz="$CLK_TCK" '$1 == r {printf "%s %s q/s %.2f µs/query; ", $2, $3, $7 * 1e6 / hz / $4}' "$RESULTS")"
done

echo "## Both cores serving, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
servers_versions
echo " each with $WORKERS UDP workers, on CPUs $SERVER_CPU; dnsperf \`$DNSPERF_OPTS\` on CPUs $CLIENT_CPU,"
echo "in $SLICE s turns until each server had $DURATION s per offered rate. **The client shares the cores with the server**:"
echo "queries/s is what the pair reaches together, so the figures compare the servers with one another, not with a"
echo "dedicated load generator. CPU µs/query: the server's on-CPU time (every thread) over the queries it answered."
echo
echo "| offered q/s | server | queries/s | lost | CPU µs/query | server CPU % | dnsperf CPU % | q/s ÷ gdnsd | q/s ÷ knot | CPU/query ÷ gdnsd | CPU/query ÷ knot |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
awk -F'\t' -v hz="$CLK_TCK" '
    { n++; rate[n] = $1; srv[n] = $2; qps[$1, $2] = $3; lost[n] = $5
      us[$1, $2] = $7 * 1e6 / hz / $4; scpu[n] = 100 * $7 / hz / $6; dcpu[n] = 100 * $8 / hz / $6 }
    function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
    END { for (i = 1; i <= n; i++) { r = rate[i]; s = srv[i]
            qg = ((r, "gdnsd") in qps) ? ratio(qps[r, s], qps[r, "gdnsd"]) : "-"
            qk = ((r, "knot") in qps) ? ratio(qps[r, s], qps[r, "knot"]) : "-"
            cg = ((r, "gdnsd") in us) ? ratio(us[r, s], us[r, "gdnsd"]) : "-"
            ck = ((r, "knot") in us) ? ratio(us[r, s], us[r, "knot"]) : "-"
            printf "| %s | %s | %d | %d | %.2f | %.0f | %.0f | %s | %s | %s | %s |\n",
                r, s, qps[r, s], lost[i], us[r, s], scpu[i], dcpu[i], qg, qk, cg, ck } }' "$RESULTS"
echo
echo "Server CPU % is of one CPU (200 = both). Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
