#!/usr/bin/env bash
# benches/dnstap-bench.sh: what dnstap costs the query path (issue 31).
#
# Starts signpost three times on the same zone: "off" (no [dnstap]), "full"
# (every query sent) and "sampled" (one in SAMPLE, default 100), the last two
# each to its own fstrm_capture (Debian's fstrm-bin) on a Unix socket writing
# to a file (on COLLECTOR_CPU, default CLIENT_CPU), so the messages really leave. dnsperf on CLIENT_CPU at RATE
# queries/s (default 20000, the same for all three), the servers on
# SERVER_CPU, taking turns for DURATION s each, RUNS times (order rotating);
# CPU per query is the server process's on-CPU time (every thread, from
# /proc/PID/task/*/schedstat, as compare.sh measures) over its answered
# queries. Prints a Markdown report with the ratios full ÷ off (target below
# 1.25) and sampled ÷ off (target 1.02), and each server's dnstap counters
# (messages written and dropped) from its /metrics.
#
#   bash benches/dnstap-bench.sh
#   DURATION=5 RUNS=1 bash benches/dnstap-bench.sh        # quick look
#   MIX=steered bash benches/dnstap-bench.sh              # steered answers (the `extra` text)
#
# MIX=static: benches/data/bench.example.zone with static.queries (as
# compare.sh); MIX=steered: benches/geo's geobench.example zone with the
# geo-compare mix (ECS per query, benches/geo/mkmix.py), every answer steered.
# Loopback only. Exits non-zero if a tool is missing or a server does not
# start. Everything it started is stopped on exit; the temp dir is removed
# (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=$REPO/benches/data
GEO=$REPO/benches/geo
MMDB=$REPO/tests/fixtures/geo/city.mmdb

SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
MIX=${MIX:-static}                # static | steered
DURATION=${DURATION:-10}          # seconds of dnsperf per server and run
RUNS=${RUNS:-3}                   # runs (the servers take turns in each)
SAMPLE=${SAMPLE:-100}             # the sampled server sends one query in this many
QUEUE=${QUEUE:-4096}              # [dnstap] queue of both dnstap servers
NQUERIES=${NQUERIES:-10000}       # queries in the steered mix
DNSPERF_OPTS=${DNSPERF_OPTS:--c 4 -T 2 -q 200}
RATE=${RATE:-20000}               # queries/s asked of every server (dnsperf -Q); 0: as fast as each answers
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
COLLECTOR_CPU=${COLLECTOR_CPU:-$CLIENT_CPU}   # the collectors: off the servers' CPU, whose time is measured
PORT_BASE=${PORT_BASE:-15750}
READY_TIMEOUT=${READY_TIMEOUT:-30}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
KEEP=${KEEP:-0}

log() { printf 'dnstap-bench: %s\n' "$*" >&2; }
die() { printf 'dnstap-bench: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

for v in RATE DURATION RUNS SAMPLE QUEUE NQUERIES PORT_BASE READY_TIMEOUT BUILD_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$RUNS" -ge 1 ] && [ "$DURATION" -ge 1 ] && [ "$SAMPLE" -ge 1 ] || die "RUNS, DURATION and SAMPLE must be at least 1"
case $MIX in static | steered) ;; *) die "MIX must be static or steered, not '$MIX'" ;; esac
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"
# The same rate for all three: at different rates the batches a read brings
# differ in size, and with them the CPU per query.
[ "$RATE" = 0 ] || PERF_OPTS+=(-Q "$RATE")
for cmd in dnsperf dig taskset ps timeout python3 curl fstrm_capture; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (fstrm_capture: Debian's fstrm-bin, benches/install-peers.sh --ci)"
done
if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" = 0 ] && [ "$CLIENT_CPU" = 1 ]; then
    die "needs 2 CPUs (servers on CPU 0, dnsperf on CPU 1); set SERVER_CPU/CLIENT_CPU"
fi
CLK_TCK=$(getconf CLK_TCK)
if ! [ -x "$SIGNPOST" ]; then
    [ "$SIGNPOST" = "$REPO/target/release/signpost" ] || die "SIGNPOST=$SIGNPOST is not an executable file"
    log "building signpost (cargo build --release) ..."
    (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release >&2) || die "cargo build --release failed"
    [ -x "$SIGNPOST" ] || die "cargo build --release made no $SIGNPOST"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-dnstap-bench.XXXXXX")
declare -A PID=() PORT=() ADMIN=()
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

# ---- zone and queries --------------------------------------------------------
mkdir -p "$WORK/zones"
BASE_CONFIG=''
case $MIX in
    static)
        cp "$DATA/bench.example.zone" "$WORK/zones/bench.example.zone"
        PERF_INPUT=(-d "$DATA/static.queries")
        PROBE=(bench.example SOA)
        MIX_DESC="bench.example.zone, static.queries (no steered answers)"
        ;;
    steered)
        cp "$GEO/signpost/geobench.example.toml" "$WORK/zones/"
        python3 "$GEO/mkmix.py" "$WORK/mix" "$NQUERIES" 2>"$WORK/mix.log" || die "mkmix.py failed: $(cat "$WORK/mix.log")"
        python3 "$DATA/mkbin-ecs.py" "$WORK/mix/queries" "$WORK/mix.bin" 2>/dev/null || die "could not build the dnsperf -B file"
        PERF_INPUT=(-B -d "$WORK/mix.bin")
        PROBE=(www.geobench.example A)
        BASE_CONFIG=$(sed -e "s|@MMDB@|$MMDB|g" "$GEO/signpost/server.toml.in")
        MIX_DESC="geobench.example, www.geobench.example A with ECS: $(cat "$WORK/mix.log")"
        ;;
esac

start_capture() { # NAME: fstrm_capture on WORK/NAME/tap.sock, into WORK/NAME/tap.fstrm
    local dir=$WORK/$1
    mkdir -p "$dir"
    taskset -c "$COLLECTOR_CPU" fstrm_capture -t protobuf:dnstap.Dnstap -u "$dir/tap.sock" -w "$dir/tap.fstrm" >"$dir/capture.log" 2>&1 </dev/null &
    PID[$1-capture]=$!
    local deadline=$((SECONDS + READY_TIMEOUT))
    until [ -S "$dir/tap.sock" ]; do
        kill -0 "${PID[$1-capture]}" 2>/dev/null || die "fstrm_capture for $1 exited: $(cat "$dir/capture.log")"
        [ "$SECONDS" -lt "$deadline" ] || die "no fstrm_capture socket for $1 within ${READY_TIMEOUT}s"
        sleep 0.05
    done
}

start_server() { # NAME PORT ADMIN_PORT [dnstap table text]
    local name=$1 port=$2 dir=$WORK/$1
    mkdir -p "$dir"
    printf '%s\n[admin]\nlisten = "127.0.0.1:%s"\n%s\n' "$BASE_CONFIG" "$3" "${4:-}" >"$dir/server.toml"
    taskset -c "$SERVER_CPU" "$SIGNPOST" serve --zones "$WORK/zones" --config "$dir/server.toml" \
        --listen "127.0.0.1:$port" >"$dir/log" 2>&1 </dev/null &
    PID[$name]=$!
    PORT[$name]=$port
    ADMIN[$name]=$3
    local deadline=$((SECONDS + READY_TIMEOUT))
    until dig +norec +time=1 +tries=1 @127.0.0.1 -p "$port" "${PROBE[@]}" +short 2>/dev/null | grep -q .; do
        if ! kill -0 "${PID[$name]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 15 "$dir/log" >&2
            die "$name did not answer within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "$name: pid ${PID[$name]} on 127.0.0.1:$port (CPU $SERVER_CPU)"
}

metric() { # NAME METRIC
    curl -s "http://127.0.0.1:${ADMIN[$1]}/metrics" | awk -v m="$2" '$1 == m {v = $2} END {print v}'
}

free_port; p=$FREE; free_port
start_server off "$p" "$FREE"
for s in full sampled; do
    start_capture "$s"
    if [ "$s" = full ]; then n=1; else n=$SAMPLE; fi
    free_port; p=$FREE; free_port
    start_server "$s" "$p" "$FREE" "[dnstap]
socket = \"$WORK/$s/tap.sock\"
sample = $n
queue = $QUEUE"
    deadline=$((SECONDS + READY_TIMEOUT))
    until [ "$(metric "$s" signpost_dnstap_connected)" = 1 ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "$s did not connect to its collector within ${READY_TIMEOUT}s"
        sleep 0.1
    done
done

# ---- CPU per query -----------------------------------------------------------
RESULTS=$WORK/results.tsv   # server run completed lost cpu_ns seconds
: >"$RESULTS"
measure() { # NAME RUN
    local s=$1 out=$WORK/$1.$2.out c0 c1
    c0=$(cpu_ns "${PID[$s]}")
    timeout -k 5 $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        "${PERF_INPUT[@]}" "${PERF_OPTS[@]}" -l "$DURATION" >"$out" 2>&1 || die "$s: dnsperf failed: $(tail -n 3 "$out")"
    c1=$(cpu_ns "${PID[$s]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$2" "$(stat_of "$out" 'Queries completed:' 3)" \
        "$(stat_of "$out" 'Queries lost:' 3)" "$((c1 - c0))" "$(stat_of "$out" 'Run time (s):' 4)" >>"$RESULTS"
    log "run $2 $s: $(tail -n 1 "$RESULTS" | awk -F'\t' '{printf "%.0f q/s, %.3f us CPU/query, lost %d", $3 / $6, $5 / 1000 / $3, $4}')"
}
orders=("off full sampled" "full sampled off" "sampled off full")
for ((run = 1; run <= RUNS; run++)); do
    read -r -a order <<<"${orders[$(((run - 1) % 3))]}"
    for s in "${order[@]}"; do measure "$s" "$run"; done
done

# ---- report ------------------------------------------------------------------
us_of() { awk -F'\t' -v s="$1" '$1 == s {printf "%.6f\n", $5 / 1000 / $3}' "$RESULTS" | median_min_max; }
qps_of() { awk -F'\t' -v s="$1" '$1 == s {q += $3; t += $6} END {printf "%.0f", q / t}' "$RESULTS"; }
ratio_of() { # NAME: run-by-run ratios NAME ÷ off, "r1, r2, ...", then the median
    awk -F'\t' -v s="$1" '$1 == "off" {o[$2] = $5 / $3} $1 == s {x[$2] = $5 / $3}
        END {for (r in x) if (r in o && o[r] > 0) printf "%d %.3f\n", r, x[r] / o[r]}' "$RESULTS" | sort -n >"$WORK/ratio.$1"
    printf '%s|' "$(awk '{print $2}' "$WORK/ratio.$1" | paste -sd ' ' | sed 's/ /, /g')"
    awk '{print $2}' "$WORK/ratio.$1" | median_min_max | awk '{print $1}'
}
IFS='|' read -r FULL_RUNS FULL_M < <(ratio_of full)
IFS='|' read -r SAMP_RUNS SAMP_M < <(ratio_of sampled)

echo
echo "## dnstap: CPU per query off, at full rate and at 1 in $SAMPLE, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- signpost $("$SIGNPOST" --version 2>/dev/null | head -n 1), binary built $(date -u -r "$SIGNPOST" '+%Y-%m-%d %H:%M UTC') (repo at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "- servers on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU: \`dnsperf ${PERF_OPTS[*]} -l $DURATION\`, $RUNS run(s), the three in turn (order rotating); collectors: fstrm_capture on a Unix socket, writing a file, on CPU $COLLECTOR_CPU"
echo "- mix: $MIX_DESC"
echo
echo "| server | queries/s | CPU µs/query median (min–max) | dnstap written | dnstap dropped |"
echo "|---|---:|---:|---:|---:|"
for s in off full sampled; do
    read -r M LO HI < <(us_of "$s")
    case $s in
        off) label="off (no [dnstap])" w=- d=- ;;
        full) label="full (sample = 1)" w=$(metric full signpost_dnstap_written_total) d=$(metric full signpost_dnstap_dropped_total) ;;
        sampled) label="sampled (sample = $SAMPLE)" w=$(metric sampled signpost_dnstap_written_total) d=$(metric sampled signpost_dnstap_dropped_total) ;;
    esac
    printf '| %s | %s | %.3f (%.3f–%.3f) | %s | %s |\n' "$label" "$(qps_of "$s")" "$M" "$LO" "$HI" "$w" "$d"
done
echo
printf 'CPU per query, full ÷ off, run by run: %s; median %.3f (target below 1.25: %s)\n' "$FULL_RUNS" "$FULL_M" \
    "$(awk -v r="$FULL_M" 'BEGIN {print (r < 1.25) ? "met" : "MISSED"}')"
printf 'CPU per query, 1 in %s ÷ off, run by run: %s; median %.3f (target at most 1.02: %s)\n' "$SAMPLE" "$SAMP_RUNS" "$SAMP_M" \
    "$(awk -v r="$SAMP_M" 'BEGIN {print (r <= 1.02) ? "met" : "MISSED"}')"
