#!/usr/bin/env bash
# benches/steer-scale.sh: steering at scale, on loopback. One zone policy file with
# NAMES steered names over REGIONS regions (latency, geo, failover and weighted in
# turn) and TARGETS distinct HTTP probe targets at a 1 s interval, against local
# HTTP backends the script starts (benches/scale/backends.py: one listening port a
# target, so each target is its own (address, port) and the probes are not
# de-duplicated into fewer). Measures, for the start and then for a reload:
#   load          start to the "signpost ready" log line, and to the first
#                 NOERROR AA answer to the zone's SOA (benches/first-answer.py)
#   memory        VmRSS 1 s after ready, the peak (VmHWM) of the start, and of
#                 the reload alone (the peak is reset through /proc/PID/clear_refs
#                 just before the SIGHUP)
#   probes        probes/s counted by signpost (/metrics,
#                 signpost_probe_duration_seconds_count) and answered by the
#                 backends, over PROBE_SECONDS with no queries, and the transitions
#                 in that window (a target flapping under load would show here)
#   probe CPU     signpost's CPU time (utime + stime, every thread) over those
#                 PROBE_SECONDS, divided by them: CPU seconds per second, and
#                 per probe; the backends' CPU beside it
#   death         from the moment one backend starts answering 503 (SIGUSR1 to
#                 backends.py) to the first changed DNS answer of a failover name
#                 probed there (benches/scale/answer-change.py, every 10 ms),
#                 against the bound interval x fall + interval = 4 s
#
#   bash benches/steer-scale.sh                     # 10,000 names, 20 regions, 5,000 targets, 30 s windows
#   NAMES=1000 TARGETS=500 PROBE_SECONDS=10 bash benches/steer-scale.sh
#
# signpost runs under taskset -c SERVER_CPU, the backends under BACKEND_CPU. Every
# process started is stopped on exit; the temp dir is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/benches
PATH=$PATH:/usr/sbin:/sbin

NAMES=${NAMES:-10000}
REGIONS=${REGIONS:-20}
TARGETS=${TARGETS:-5000}
BACKEND_PORT_BASE=${BACKEND_PORT_BASE:-21000}   # TARGETS ports from here, below the ephemeral range
PROBE_SECONDS=${PROBE_SECONDS:-30}
SETTLE=${SETTLE:-5}                              # seconds after ready before the probe window
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
SERVER_CPU=${SERVER_CPU:-0}
BACKEND_CPU=${BACKEND_CPU:-1}
PORT_BASE=${PORT_BASE:-15750}
READY_TIMEOUT=${READY_TIMEOUT:-120}
DEATH_TIMEOUT=${DEATH_TIMEOUT:-30}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
KEEP=${KEEP:-0}

log() { printf 'steer-scale: %s\n' "$*" >&2; }
die() {
    printf 'steer-scale: FAIL: %s\n' "$*" >&2
    [ -z "${WORK:-}" ] || [ ! -f "$WORK/signpost.log" ] || tail -n 5 "$WORK/signpost.log" >&2
    exit 1
}
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

for v in NAMES REGIONS TARGETS BACKEND_PORT_BASE PROBE_SECONDS SETTLE PORT_BASE READY_TIMEOUT DEATH_TIMEOUT BUILD_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
if [ "$REGIONS" -lt 4 ] || [ $((TARGETS % REGIONS)) -ne 0 ] || [ "$TARGETS" -lt "$REGIONS" ]; then
    die "REGIONS must be at least 4 and TARGETS a multiple of it"
fi
[ "$NAMES" -ge 7 ] || die "NAMES must be at least 7 (names n00002 and n00006 are the ones killed)"
[ "$PROBE_SECONDS" -ge 1 ] || die "PROBE_SECONDS must be at least 1"
for cmd in python3 taskset dig timeout; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (bash benches/install-peers.sh installs it)"
done
# one descriptor a listening port, plus the connections in flight
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((TARGETS + 1024)) ]; then
    ulimit -n $((TARGETS + 1024)) 2>/dev/null || die "ulimit -n is $(ulimit -n); $((TARGETS + 1024)) needed for $TARGETS backends"
fi

SERVER_LIST=(signpost)
CLK_TCK=$(getconf CLK_TCK)
declare -A PID=()
bench_start signpost-steer-scale

ZONES=$WORK/zones
mkdir -p "$ZONES"
ZONE_FILE=$ZONES/steer.bench.toml
python3 "$BENCH/scale/gen-steer.py" "$ZONE_FILE" "$NAMES" "$REGIONS" "$TARGETS" "$BACKEND_PORT_BASE"
log "policy: $NAMES names, $REGIONS regions, $TARGETS probe targets ($(($(wc -c <"$ZONE_FILE") / 1024)) KiB, $(wc -l <"$ZONE_FILE") lines)"

# --- backends
FAILFILE=$WORK/failing
STATS=$WORK/backend-stats
: >"$FAILFILE"
taskset -c "$BACKEND_CPU" python3 "$BENCH/scale/backends.py" "$BACKEND_PORT_BASE" "$TARGETS" "$FAILFILE" "$STATS" \
    >"$WORK/backends.out" 2>"$WORK/backends.log" </dev/null &
PID[backends]=$!
for ((i = 0; i < 600; i++)); do
    grep -q '^ready' "$WORK/backends.out" 2>/dev/null && break
    kill -0 "${PID[backends]}" 2>/dev/null || die "backends did not start: $(tail -n 3 "$WORK/backends.log")"
    sleep 0.1
done
grep -q '^ready' "$WORK/backends.out" || die "backends not listening after 60 s"
log "backends listening on 127.0.0.1:$BACKEND_PORT_BASE-$((BACKEND_PORT_BASE + TARGETS - 1))"

# --- signpost
port=$PORT_BASE
while port_busy "$port"; do port=$((port + 1)); done
DNS_PORT=$port
port=$((port + 1))
while port_busy "$port"; do port=$((port + 1)); done
ADMIN_PORT=$port
LOG=$WORK/signpost.log

# the first line of LOG at or after line FROM matching PATTERN, waited for (every
# 5 ms, at most SECONDS); prints the wall-clock time it was seen, in ns
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
secs_between() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }

t0=$(date +%s%N)
(cd "$WORK" && exec taskset -c "$SERVER_CPU" "$SIGNPOST" serve --zones "$ZONES" \
    --listen "127.0.0.1:$DNS_PORT" --admin "127.0.0.1:$ADMIN_PORT" >"$LOG" 2>&1 </dev/null) &
PID[signpost]=$!
python3 "$BENCH/first-answer.py" "$DNS_PORT" steer.bench "${PID[signpost]}" "$READY_TIMEOUT" >"$WORK/first" &
FIRST=$!
t_ready=$(wait_log "$LOG" "${PID[signpost]}" 1 'signpost ready' "$READY_TIMEOUT")
wait "$FIRST" || die "signpost did not answer the SOA"
t_first=$(cat "$WORK/first")
LOAD_READY=$(secs_between "$t0" "$t_ready")
LOAD_FIRST=$(secs_between "$t0" "$t_first")
sleep 1
RSS_READY=$(mib "$(kib "${PID[signpost]}" VmRSS)")
PEAK_START=$(mib "$(kib "${PID[signpost]}" VmHWM)")
log "ready after $LOAD_READY s, first answer after $LOAD_FIRST s; $RSS_READY MiB resident, peak $PEAK_START MiB"

answer() { dig +norec +time=1 +tries=1 @127.0.0.1 -p "$DNS_PORT" "$1" A +short 2>/dev/null | head -n 1; }

# name i's address in its k-th region (gen-steer.py), and the backend port probed for it
STEP=$((REGIONS / 4))
PER=$((TARGETS / REGIONS))
addr_of() { echo "10.$((($1 + $2 * STEP) % REGIONS)).$(($1 >> 8)).$(($1 & 255))"; }
port_of() { echo $((BACKEND_PORT_BASE + (($1 + $2 * STEP) % REGIONS) * PER + ($1 / REGIONS) % PER)); }
for i in 2 6; do
    got=$(answer "n0000$i.steer.bench")
    [ "$got" = "$(addr_of "$i" 0)" ] || die "n0000$i A gave '$got', want $(addr_of "$i" 0) (its first region, all up)"
done

# probes counted, transitions, endpoints up and endpoints listed, from /metrics
metrics() {
    python3 - "$ADMIN_PORT" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=30).read().decode()
probes = trans = up = eps = 0
for line in text.splitlines():
    if line.startswith("signpost_probe_duration_seconds_count"):
        probes += float(line.rsplit(" ", 1)[1])
    elif line.startswith("signpost_health_transitions_total"):
        trans += float(line.rsplit(" ", 1)[1])
    elif line.startswith("signpost_endpoint_up"):
        eps += 1
        up += float(line.rsplit(" ", 1)[1])
print(int(probes), int(trans), int(up), eps)
EOF
}
backend_count() { awk '{print $2 + $3}' "$STATS"; }

# PROBE_SECONDS with no queries: sets W_* (probes/s, backend requests/s, CPU s/s,
# CPU µs per probe, backend CPU s/s, transitions, endpoints up of all)
probe_window() {
    local m0 m1 b0 b1 c0 c1 d0 d1
    m0=$(metrics) || die "cannot read /metrics"
    read -r -a m0 <<<"$m0"
    b0=$(backend_count)
    # clock ticks of /proc/PID/stat, not schedstat: they keep the time of threads
    # that ended in the window (a reload's blocking-pool threads do)
    c0=$(cpu_ticks "${PID[signpost]}")
    d0=$(cpu_ticks "${PID[backends]}")
    sleep "$PROBE_SECONDS"
    c1=$(cpu_ticks "${PID[signpost]}")
    d1=$(cpu_ticks "${PID[backends]}")
    b1=$(backend_count)
    m1=$(metrics) || die "cannot read /metrics"
    read -r -a m1 <<<"$m1"
    W_PROBES=$(awk -v a="${m0[0]}" -v b="${m1[0]}" -v s="$PROBE_SECONDS" 'BEGIN {printf "%.0f", (b - a) / s}')
    W_SERVED=$(awk -v a="$b0" -v b="$b1" -v s="$PROBE_SECONDS" 'BEGIN {printf "%.0f", (b - a) / s}')
    W_CPU=$(awk -v a="$c0" -v b="$c1" -v s="$PROBE_SECONDS" -v hz="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / hz / s}')
    W_CPU_PROBE=$(awk -v a="$c0" -v b="$c1" -v p0="${m0[0]}" -v p1="${m1[0]}" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", (p1 > p0) ? (b - a) * 1e6 / hz / (p1 - p0) : 0}')
    W_BCPU=$(awk -v a="$d0" -v b="$d1" -v s="$PROBE_SECONDS" -v hz="$CLK_TCK" 'BEGIN {printf "%.3f", (b - a) / hz / s}')
    W_TRANS=$((m1[1] - m0[1]))
    W_UP="${m1[2]} of ${m1[3]}"
    log "over $PROBE_SECONDS s: $W_PROBES probes/s (backends answered $W_SERVED/s), signpost CPU $W_CPU s/s ($W_CPU_PROBE µs a probe), backends $W_BCPU s/s, $W_TRANS transitions, endpoints up $W_UP"
}

# kills (503) the backend of name I's first region; prints seconds to its changed answer
death() { # I
    local i=$1 p t
    p=$(port_of "$i" 0)
    echo "$p" >>"$FAILFILE"
    t=$(date +%s%N)
    kill -USR1 "${PID[backends]}"
    python3 "$BENCH/scale/answer-change.py" "$DNS_PORT" "n0000$i.steer.bench" "$(addr_of "$i" 1)" "$t" "$DEATH_TIMEOUT" ||
        die "n0000$i did not move off its dead backend (127.0.0.1:$p)"
}

log "settling $SETTLE s (first probes spread over the interval)"
sleep "$SETTLE"
probe_window
S=("$LOAD_READY" "$LOAD_FIRST" "$RSS_READY" "$PEAK_START" "$W_PROBES" "$W_SERVED" "$W_CPU" "$W_CPU_PROBE" "$W_BCPU" "$W_TRANS" "$W_UP")
out=$(death 2) || die "no death-to-answer figure"
read -r DEATH_START DEATH_START_Q <<<"$out"
log "backend of n00002 dead: answer changed after $DEATH_START s ($DEATH_START_Q queries)"

# --- reload of the same policy (SIGHUP): a whole new snapshot beside the old one
sleep 1
lines=$(($(wc -l <"$LOG") + 1))
echo 5 >"/proc/${PID[signpost]}/clear_refs" || die "cannot reset the peak through /proc/${PID[signpost]}/clear_refs"
RSS_BEFORE=$(mib "$(kib "${PID[signpost]}" VmRSS)")
t0=$(date +%s%N)
kill -HUP "${PID[signpost]}"
t_reload=$(wait_log "$LOG" "${PID[signpost]}" "$lines" 'reloaded:' "$READY_TIMEOUT")
RELOAD=$(secs_between "$t0" "$t_reload")
sleep 1
RSS_RELOAD=$(mib "$(kib "${PID[signpost]}" VmRSS)")
PEAK_RELOAD=$(mib "$(kib "${PID[signpost]}" VmHWM)")
RECONCILED=$(tail -n +"$lines" "$LOG" | grep -m 1 'health targets reconciled' | grep -o 'kept=[0-9]* added=[0-9]* removed=[0-9]*' || echo "no reconcile logged")
log "reload (SIGHUP) took $RELOAD s; $RSS_BEFORE MiB before, $RSS_RELOAD after, peak $PEAK_RELOAD; $RECONCILED"
got=$(answer n00002.steer.bench)
[ "$got" = "$(addr_of 2 1)" ] || die "after the reload n00002 A gave '$got', want $(addr_of 2 1) (its first region still down)"
sleep "$SETTLE"
probe_window
out=$(death 6) || die "no death-to-answer figure after the reload"
read -r DEATH_RELOAD DEATH_RELOAD_Q <<<"$out"
log "backend of n00006 dead: answer changed after $DEATH_RELOAD s ($DEATH_RELOAD_Q queries)"

# --- report
version=$("$SIGNPOST" --version 2>/dev/null | awk '{print $2; exit}' || true)
echo "## Steering at scale, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "signpost $version ($SIGNPOST) on CPU $SERVER_CPU, the backends (python3, one asyncio loop) on CPU $BACKEND_CPU;"
echo "$NAMES steered names over $REGIONS regions (latency, geo, failover, weighted in turn; 4 endpoints each),"
echo "$TARGETS distinct HTTP probe targets (one port each), interval 1 s, timeout 500 ms, rise 2, fall 3, no jitter;"
echo "no queries during the $PROBE_SECONDS s probe windows; load $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo
echo "| | start | reload (SIGHUP, same file) |"
echo "| --- | ---: | ---: |"
echo "| to the ready / reloaded log line, s | ${S[0]} | $RELOAD |"
echo "| to the first answer, s | ${S[1]} | (old snapshot answers throughout) |"
echo "| resident MiB, 1 s after | ${S[2]} | $RSS_RELOAD (before: $RSS_BEFORE) |"
echo "| peak resident MiB | ${S[3]} | $PEAK_RELOAD |"
echo "| probes/s (signpost's count) | ${S[4]} | $W_PROBES |"
echo "| requests/s the backends answered | ${S[5]} | $W_SERVED |"
echo "| signpost CPU, s per s | ${S[6]} | $W_CPU |"
echo "| signpost CPU µs per probe | ${S[7]} | $W_CPU_PROBE |"
echo "| backends' CPU, s per s | ${S[8]} | $W_BCPU |"
echo "| transitions in the window | ${S[9]} | $W_TRANS |"
echo "| endpoints up (signpost_endpoint_up) | ${S[10]} | $W_UP |"
echo "| backend death (503) to changed answer, s (bound 4) | $DEATH_START | $DEATH_RELOAD |"
echo
echo "Reload: $RECONCILED."
