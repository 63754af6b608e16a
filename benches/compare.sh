#!/usr/bin/env bash
# benches/compare.sh: signpost against NSD, Knot DNS and gdnsd on loopback.
#
# Starts every server on its own 127.0.0.1 port with the same zone
# (benches/data/bench.example.zone), pinned to one CPU, checks that each
# answers right, then runs dnsperf (pinned to another CPU) against each in
# turn and prints a Markdown table: queries/s, server CPU microseconds per
# query, server CPU use, latency percentiles at a fixed rate, and the CPU per
# query relative to NSD and to gdnsd. See benches/README.md.
#
#   bash benches/compare.sh
#   DURATION=5 RUNS=1 SERVERS="nsd gdnsd" bash benches/compare.sh
#   SERVERS="signpost-signed signpost-signed+do knot-signed+do pdns-signed+do" bash benches/compare.sh
#
# DNSSEC: signpost-signed is signpost signing the zone itself ([dnssec] in its
# server config), knot-signed Knot DNS with mod-onlinesign, pdns-signed
# PowerDNS Authoritative (bind backend, zone secured with pdnsutil: online
# signing); pdns is PowerDNS unsigned. A "+do" after a name sets the DO bit on
# every query (dnsperf -D) to that server; the same server without it is
# asked with DO clear, so "signpost-signed signpost-signed+do" gives DO=1
# against DO=0 on one signed zone, in one run.
#
# Exits non-zero if a tool is missing and can't be installed, if a server
# does not start, or if one answers wrongly. Every server it started is
# stopped on exit, and its temporary directory is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/benches
DATA=$BENCH/data
PATH=$PATH:/usr/sbin:/sbin

# ---- settings (environment) ------------------------------------------------
SERVERS=${SERVERS:-signpost gdnsd nsd knot}    # which to run, in this order (reversed on even runs)
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
DURATION=${DURATION:-10}          # seconds of load per server and throughput run
SLICE=${SLICE:-1}                 # seconds per dnsperf invocation: the servers of a run take turns
RUNS=${RUNS:-3}                   # throughput runs per server (round-robin)
MIX=${MIX:-static}                # static | geo (per-query EDNS Client Subnet)
ZONE=${ZONE:-$DATA/bench.example.zone}   # the zone every server loads (origin bench.example.)
DNSPERF_OPTS=${DNSPERF_OPTS:--c 4 -T 2 -q 200}   # load shape, throughput runs
LAT_QPS=${LAT_QPS:-10000}         # fixed rate for the latency run (dnsperf -Q)
LAT_DURATION=${LAT_DURATION:-10}  # seconds of the latency run per server (in SLICE turns); 0 skips it
SERVER_CPU=${SERVER_CPU:-0}       # taskset CPU list for the servers
CLIENT_CPU=${CLIENT_CPU:-1}       # taskset CPU list for dnsperf
PORT_BASE=${PORT_BASE:-15350}     # first port tried; busy ports are skipped
READY_TIMEOUT=${READY_TIMEOUT:-30}      # seconds for a server to answer
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}    # seconds for cargo build --release
MAX_OTHER=${MAX_OTHER:-5}         # % of a CPU something else may take before a run is redone
RETRIES=${RETRIES:-2}             # how many times a disturbed run is redone at most
KEEP=${KEEP:-0}                   # 1: keep the temp dir (configs, logs, raw output)

log() { printf 'compare: %s\n' "$*" >&2; }
die() { printf 'compare: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

for v in DURATION SLICE RUNS LAT_QPS LAT_DURATION PORT_BASE READY_TIMEOUT BUILD_TIMEOUT MAX_OTHER RETRIES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
if [ "$RUNS" -lt 1 ] || [ "$DURATION" -lt 1 ] || [ "$SLICE" -lt 1 ]; then die "RUNS, DURATION and SLICE must be at least 1"; fi
[ "$SLICE" -le "$DURATION" ] || die "SLICE ($SLICE) must not exceed DURATION ($DURATION)"
case $MIX in static | geo) ;; *) die "MIX must be static or geo, not '$MIX'" ;; esac
read -r -a SERVER_LIST <<<"$SERVERS"
[ "${#SERVER_LIST[@]}" -ge 1 ] || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
    case ${s%+do} in signpost | signpost-signed | nsd | knot | knot-signed | gdnsd | pdns | pdns-signed | floor) ;;
        *) die "unknown server '$s' in SERVERS (signpost nsd knot gdnsd floor signpost-signed knot-signed pdns pdns-signed, each with +do for DO=1)" ;;
    esac
    [ "$s" != floor+do ] || die "floor+do: the floor server answers nothing, so DO means nothing to it"
done
is_do() { [[ $1 == *+do ]]; }
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"

# ---- tools -------------------------------------------------------------------
bash "$BENCH/install-peers.sh" || die "could not install the peer servers and tools (benches/install-peers.sh)"
for cmd in nsd knotd gdnsd dnsperf dig taskset ps timeout python3; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found after install-peers.sh"
done
if [[ " ${SERVER_LIST[*]} " == *" pdns"* ]]; then
    bash "$BENCH/install-peers.sh" --geo || die "could not install PowerDNS (benches/install-peers.sh --geo)"
    for cmd in pdns_server pdnsutil; do command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (Debian package pdns-server)"; done
fi
if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" = 0 ] && [ "$CLIENT_CPU" = 1 ]; then
    die "needs 2 CPUs (server on CPU 0, dnsperf on CPU 1); set SERVER_CPU/CLIENT_CPU"
fi
CLK_TCK=$(getconf CLK_TCK)

if [[ " ${SERVER_LIST[*]} " == *" signpost"* ]] && ! [ -x "$SIGNPOST" ]; then
    if [ "$SIGNPOST" = "$REPO/target/release/signpost" ]; then
        log "building signpost (cargo build --release) ..."
        (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release >&2) ||
            die "cargo build --release failed; to measure the peers only: SERVERS='nsd knot gdnsd' bash benches/compare.sh"
        [ -x "$SIGNPOST" ] || die "cargo build --release made no $SIGNPOST"
    else
        die "SIGNPOST=$SIGNPOST is not an executable file"
    fi
fi

# floor: benches/udp_floor.rs, signpost's UDP loop sending each query back as its
# own answer, no DNS work: what the kernel's path costs (answers not checked)
if [[ " ${SERVER_LIST[*]} " == *" floor "* ]]; then
    log "building the floor server (cargo bench --bench udp_floor --no-run) ..."
    FLOOR=$(cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo bench --bench udp_floor --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "udp_floor":
        print(m["executable"])' | tail -n 1)
    [ -n "$FLOOR" ] && [ -x "$FLOOR" ] || die "could not build benches/udp_floor.rs"
fi

# ---- temp dir, cleanup -------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-bench.XXXXXX")
declare -A PID=() PORT=()
PERF_PID='' PERF=()



cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    if [ -n "$PERF_PID" ]; then
        kill -TERM "$PERF_PID" 2>/dev/null || true
        wait "$PERF_PID" 2>/dev/null || true
    fi
    for s in "${!PID[@]}"; do stop_server "$s"; done
    if [ "$KEEP" = 1 ]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -----------------------------------------------------------------

server_log_tail() {
    [ -f "$WORK/$1/log" ] && tail -n 15 "$WORK/$1/log" | sed "s/^/  $1| /" >&2
    return 0
}

DIG=(dig +norec +time=1 +tries=1 @127.0.0.1)
DO_DIG=()   # +dnssec while checking a +do server

# check NAME QNAME QTYPE STATUS [RR]: one query must give STATUS with the AA
# flag, and RR ("owner TYPE rdata") among the answers; RR "-" means no answer.
check() {
    local name=$1 qname=$2 qtype=$3 want=$4 rr=${5:-} out status answers
    out=$("${DIG[@]}" "${DO_DIG[@]}" -p "${PORT[$name]}" "$qname" "$qtype" 2>&1) ||
        die "$name: dig $qname $qtype got no answer: $out"
    status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
    # signed online, a name that does not exist may be denied as NOERROR with
    # an NSEC at the name (compact denial, RFC 9824; Knot's "black lies")
    if is_do "$name" && [ "$want" = NXDOMAIN ] && [ "$status" = NOERROR ]; then status=NXDOMAIN; fi
    [ "$status" = "$want" ] || die "$name: $qname $qtype: status '$status', want $want"
    grep -q 'flags:[^;]* aa' <<<"$out" || die "$name: $qname $qtype: answer not authoritative (no AA flag)"
    answers=$(awk '/^;; ANSWER SECTION:/ {a = 1; next} /^$/ {a = 0} a && !/^;/ {$2 = ""; $3 = ""; print}' <<<"$out" | tr -s ' \t' '  ')
    if [ "$rr" = - ]; then
        [ -z "$answers" ] || die "$name: $qname $qtype: want no answer records, got: $answers"
    elif [ -n "$rr" ]; then
        grep -qxF "$rr" <<<"$answers" || die "$name: $qname $qtype: want '$rr', got: ${answers:-nothing}"
    fi
}

# dnsperf's "Response codes: NOERROR 9000 (90.00%), NXDOMAIN 1000 (10.00%)"
# as "NOERROR=9000 NXDOMAIN=1000"
rcodes() {
    awk -F: '/Response codes:/ {print $2}' "$1" | tr ',' '\n' |
        awk 'NF >= 2 {print $1 "=" $2}' | sort | paste -sd ' '
}

# ---- query data --------------------------------------------------------------
PERF_INPUT=()
case $MIX in
    static)
        PERF_INPUT=(-d "$DATA/static.queries")
        ;;
    geo)
        python3 "$DATA/mkbin-ecs.py" "$DATA/geo.queries" "$WORK/geo.bin" 2>/dev/null ||
            die "could not build the geo query file"
        PERF_INPUT=(-B -d "$WORK/geo.bin")
        # dnsperf -D cannot go with -B: for +do servers the DO bit is in the messages
        python3 "$DATA/mkbin-ecs.py" "$DATA/geo.queries" "$WORK/geo-do.bin" --do 2>/dev/null ||
            die "could not build the geo query file with DO"
        ;;
esac
EXPECT=$(tr -s '[:space:]' '\n' <"$DATA/$MIX.expect" | sed '/^$/d' | sort | paste -sd ' ')

# ---- servers -----------------------------------------------------------------
start_server() {
    local name=$1 port=$2 dir=$WORK/$1
    local -a cmd
    mkdir -p "$dir"
    case ${name%+do} in
        signpost | signpost-signed | nsd | knot | knot-signed | gdnsd | pdns | pdns-signed)
            peer_setup "${name%+do}" "$dir" "$port" "$ZONE" || die "$name: could not set it up"
            cmd=("${SERVER_CMD[@]}")
            ;;
        floor)
            cmd=("$FLOOR" --serve "127.0.0.1:$port")
            ;;
    esac
    printf '%q ' "${cmd[@]}" >"$dir/cmdline"
    # working directory: the server's own temp dir, so that nothing relative
    # to the caller's directory (signpost's default geo/ database) is picked up
    (cd "$dir" && exec taskset -c "$SERVER_CPU" "${cmd[@]}" >"$dir/log" 2>&1 </dev/null) &
    PID[$name]=$!
    PORT[$name]=$port
}

wait_ready() {
    local name=$1 deadline=$((SECONDS + READY_TIMEOUT)) out
    while :; do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            server_log_tail "$name"
            die "$name exited during start-up (command: $(cat "$WORK/$name/cmdline"))"
        fi
        out=$("${DIG[@]}" -p "${PORT[$name]}" bench.example SOA 2>/dev/null || true)
        if grep -q 'status: NOERROR' <<<"$out" && grep -q 'flags:[^;]* aa' <<<"$out"; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            server_log_tail "$name"
            die "$name did not answer bench.example SOA on 127.0.0.1:${PORT[$name]} within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# DOF: dnsperf's query input for a server: PERF_INPUT, with the DO bit set for a
# +do server (-D, or the geo mix's messages made with the bit)
DOF=()
set_dof() {
    DOF=("${PERF_INPUT[@]}")
    if is_do "$1"; then
        if [ "$MIX" = geo ]; then DOF=(-B -d "$WORK/geo-do.bin"); else DOF+=(-D); fi
    fi
}
# rcode counts "NOERROR=a NXDOMAIN=b ..." with NXDOMAIN added into NOERROR
fold_nx() {
    tr ' ' '\n' <<<"$1" | awk -F= 'NF == 2 {k = ($1 == "NXDOMAIN") ? "NOERROR" : $1; n[k] += $2}
        END {for (k in n) print k "=" n[k]}' | sort | paste -sd ' '
}

verify() {
    local name=$1 out=$WORK/$1/verify.out got
    if [ "$name" = floor ]; then
        log "floor: answers not checked (every query comes back as its own answer)"
        return 0
    fi
    DO_DIG=()
    if is_do "$name"; then
        DO_DIG=(+dnssec)
        # signed: the A RRset comes with its RRSIG
        "${DIG[@]}" +dnssec -p "${PORT[$name]}" host0001.bench.example A 2>/dev/null |
            awk '$4 == "RRSIG" && $5 == "A" {found = 1} END {exit !found}' ||
            die "$name: host0001.bench.example A with DO: no RRSIG over the A RRset in the answer"
    fi
    check "$name" host0001.bench.example A NOERROR "host0001.bench.example. A 198.18.0.1"
    check "$name" host0002.bench.example AAAA NOERROR "host0002.bench.example. AAAA 2001:db8:1::2"
    check "$name" host0005.bench.example AAAA NOERROR -
    check "$name" no-such-name.bench.example A NXDOMAIN -
    check "$name" anything.wild.bench.example A NOERROR "anything.wild.bench.example. A 198.51.100.7"
    check "$name" bench.example MX NOERROR "bench.example. MX 10 mx1.bench.example."
    # first link of the chain only: gdnsd 3 does not chase CNAMEs
    check "$name" www.bench.example A NOERROR "www.bench.example. CNAME web.bench.example."
    # one pass over the whole mix: every query answered, the right rcodes
    set_dof "$name"
    timeout -k 5 60 taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$name]}" \
        "${DOF[@]}" -n 1 -q 20 -t 2 >"$out" 2>&1 || die "$name: dnsperf check pass failed: $(tail -n 3 "$out")"
    got=$(rcodes "$out")
    if is_do "$name"; then got=$(fold_nx "$got"); fi
    [ "$(stat_of "$out" 'Queries lost:' 3)" = 0 ] || die "$name: queries lost in the check pass: $(grep 'Queries lost' "$out")"
    if is_do "$name"; then
        [ "$got" = "$(fold_nx "$EXPECT")" ] || die "$name: one pass over $MIX.queries with DO gave '$got', want '$(fold_nx "$EXPECT")' (NXDOMAIN counted as NOERROR)"
    else
        [ "$got" = "$EXPECT" ] || die "$name: one pass over $MIX.queries gave '$got', want '$EXPECT'"
    fi
}

version_of() {
    case $1 in
        pdns | pdns-signed | pdns+do | pdns-signed+do) pdns_server --version 2>&1 | sed -n 's/.*PowerDNS Authoritative Server \([^ ]*\).*/\1/p' | head -n 1 ;;
        signpost*) { timeout 5 "$SIGNPOST" --version 2>/dev/null || echo "?"; } | head -n 1 | sed 's/^signpost //' ;;
        nsd*) nsd -v 2>&1 | sed -n 's/^NSD version //p' | head -n 1 ;;
        knot*) knotd -V 2>&1 | sed -n 's/.*version //p' | head -n 1 ;;
        gdnsd*) gdnsd -V 2>&1 | sed -n 's/^gdnsd version //p' | head -n 1 ;;
        floor) echo "(benches/udp_floor.rs)" ;;
    esac
}

# how busy the machine is before anything starts: % of all CPUs over 1 s
cpus_busy() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat; }
read -r busy0 idle0 < <(cpus_busy)
sleep 1
read -r busy1 idle1 < <(cpus_busy)
BUSY_BEFORE=$(awk -v b="$((busy1 - busy0))" -v i="$((idle1 - idle0))" 'BEGIN {printf "%.0f", (b + i) ? 100 * b / (b + i) : 0}')
if [ "$BUSY_BEFORE" -gt 10 ]; then
    log "WARNING: the CPUs were ${BUSY_BEFORE}% busy before the start: something else is running; disturbed runs will be redone (MAX_OTHER, RETRIES)"
fi

port=$PORT_BASE
for s in "${SERVER_LIST[@]}"; do
    while port_busy "$port"; do port=$((port + 1)); done
    log "starting $s on 127.0.0.1:$port (CPU $SERVER_CPU)"
    start_server "$s" "$port"
    port=$((port + 1))
done
[ -f "$ZONE" ] || die "ZONE=$ZONE is not a file"
declare -A RSS=()
for s in "${SERVER_LIST[@]}"; do
    wait_ready "$s"
    verify "$s"
    RSS[$s]=$(rss_mib "${PID[$s]}")
    log "$s ready, answers verified ($EXPECT), resident ${RSS[$s]} MiB"
done

# ---- measurements ------------------------------------------------------------
# busy time (user nice system irq softirq steal) of one CPU, in clock ticks,
# from /proc/stat; empty unless the CPU list is a single CPU number
cpu_busy() {
    [[ $1 =~ ^[0-9]+$ ]] || return 0
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
# NAME OUTFILE extra dnsperf args...: one dnsperf run against NAME; sets
# PERF=(TICKS OTHER_PCT SECONDS): CPU time the server used (from schedstat, in
# fractional clock ticks); the most either
# CPU spent on anything but the server (CPU SERVER_CPU) or dnsperf (CPU
# CLIENT_CPU), in % of the run (other processes, hypervisor steal: ideally
# about 0, "-" if the CPU lists are not single CPUs); the run's wall time
perf_run() {
    local name=$1 out=$2 t0 t1 n0 n1 s0 s1 c0 c1 w0 w1 d
    shift 2
    # The server's CPU time first: reading it runs ps and awk, which must not
    # count as something else's use of a CPU in the window of /proc/stat below.
    t0=$(cpu_ticks "${PID[$name]}")
    n0=$(cpu_ns "${PID[$name]}")
    w0=$EPOCHREALTIME
    s0=$(cpu_busy "$SERVER_CPU")
    c0=$(cpu_busy "$CLIENT_CPU")
    times >"$WORK/times.0"
    # in the background and waited for, so that a signal stops it at once
    set_dof "$name"
    timeout -k 5 $((DURATION + LAT_DURATION + 60)) taskset -c "$CLIENT_CPU" \
        dnsperf -s 127.0.0.1 -p "${PORT[$name]}" "${DOF[@]}" "$@" >"$out" 2>&1 &
    PERF_PID=$!
    wait "$PERF_PID" || die "$name: dnsperf failed: $(tail -n 3 "$out")"
    PERF_PID=''
    times >"$WORK/times.1"
    s1=$(cpu_busy "$SERVER_CPU")
    c1=$(cpu_busy "$CLIENT_CPU")
    w1=$EPOCHREALTIME
    n1=$(cpu_ns "${PID[$name]}")
    t1=$(cpu_ticks "${PID[$name]}")
    kill -0 "${PID[$name]}" 2>/dev/null || { server_log_tail "$name"; die "$name died during the run"; }
    d=$(($(times_ticks "$WORK/times.1") - $(times_ticks "$WORK/times.0")))   # dnsperf's CPU ticks
    PERF=("$(ns_to_ticks "$((n1 - n0))")" - 1)
    PERF[2]=$(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.3f", b - a}')
    if [ -n "$s0" ] && [ -n "$s1" ] && [ -n "$c0" ] && [ -n "$c1" ]; then
        PERF[1]=$(awk -v os="$((s1 - s0 - (t1 - t0)))" -v oc="$((c1 - c0 - d))" -v hz="$CLK_TCK" -v w="${PERF[2]}" \
            'BEGIN {o = (os > oc) ? os : oc; if (o < 0) o = 0; printf "%.1f", 100 * o / hz / w}')
    fi
}
# perf_run, run again (at most RETRIES more times) while disturbed: while
# something else took more than MAX_OTHER % of either CPU
measure() {
    local try
    for ((try = 0; ; try++)); do
        perf_run "$@"
        if [ "${PERF[1]}" = - ] || awk -v o="${PERF[1]}" -v m="$MAX_OTHER" 'BEGIN {exit !(o <= m)}'; then
            return 0
        fi
        if [ "$try" -ge "$RETRIES" ]; then
            log "WARNING: $1: something else took ${PERF[1]}% of a CPU during the run, kept after $RETRIES retries"
            return 0
        fi
        log "$1: something else took ${PERF[1]}% of a CPU during the run: running it again"
    done
}

RESULTS=$WORK/results.tsv   # server run qps completed lost runtime ticks resp_bytes other_pct
: >"$RESULTS"
for ((run = 1; run <= RUNS; run++)); do
    mapfile -t ORDER < <(run_order "$run")
    # The servers take turns, SLICE seconds each, until each has had DURATION:
    # a change in the machine's speed (other tenants, frequency) then falls on
    # every server of the run alike.
    slices_reset "${ORDER[@]}"
    for ((slice = 1; slice * SLICE <= DURATION; slice++)); do
        for s in "${ORDER[@]}"; do
            out=$WORK/$s/tput.$run.$slice.out
            measure "$s" "$out" "${PERF_OPTS[@]}" -l "$SLICE"
            slice_add "$s" "$out"
        done
    done
    for s in "${ORDER[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$run" \
            "$(awk -v n="${QDONE[$s]}" -v t="${SECS[$s]}" 'BEGIN {printf "%.1f", n / t}')" "${QDONE[$s]}" "${LOST[$s]}" \
            "${SECS[$s]}" "${TICKS[$s]}" "${RESP[$s]}" "${OTHER[$s]}" >>"$RESULTS"
        log "run $run/$RUNS $s: $(awk -F'\t' -v s="$s" -v r="$run" -v hz="$CLK_TCK" \
            '$1 == s && $2 == r {printf "%.0f q/s, %.3f us CPU/query, server CPU %.0f%%, other use of a CPU %s%%, lost %d",
                $3, $7 * 1e6 / hz / $4, 100 * $7 / hz / $6, $9, $5}' "$RESULTS")"
    done
done

LATENCY=$WORK/latency.tsv   # server p50 p99 p999 (us) cpu_us_per_query completed timeouts other_pct
: >"$LATENCY"
if [ "$LAT_DURATION" -gt 0 ]; then
    # In turns of SLICE seconds too, the samples of a server's slices pooled.
    declare -A LTICKS=() LDONE=() LTIME=() LOTHER=()
    for s in "${SERVER_LIST[@]}"; do LTICKS[$s]=0 LDONE[$s]=0 LTIME[$s]=0 LOTHER[$s]=-; : >"$WORK/$s/latency.samples"; done
    for ((slice = 1; slice * SLICE <= LAT_DURATION; slice++)); do
        for s in "${SERVER_LIST[@]}"; do
            out=$WORK/$s/latency.$slice.out
            measure "$s" "$out" -Q "$LAT_QPS" -l "$SLICE" -v
            LTICKS[$s]=$(fadd "${LTICKS[$s]}" "${PERF[0]}" 4)
            LDONE[$s]=$((LDONE[$s] + $(stat_of "$out" 'Queries completed:' 3)))
            LTIME[$s]=$((LTIME[$s] + $(awk '/^> T / {n++} END {print n + 0}' "$out")))
            LOTHER[$s]=$(max_other "${LOTHER[$s]}" "${PERF[1]}")
            awk '/^> / && NF >= 5 && $NF ~ /^[0-9.]+$/ {print $NF}' "$out" >>"$WORK/$s/latency.samples"
        done
    done
    for s in "${SERVER_LIST[@]}"; do
        sort -g "$WORK/$s/latency.samples" | awk \
            -v s="$s" -v ticks="${LTICKS[$s]}" -v hz="$CLK_TCK" -v c="${LDONE[$s]}" -v t="${LTIME[$s]}" -v o="${LOTHER[$s]}" '
            { v[NR] = $1 }
            function pct(q,  i) { i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; return v[i] * 1e6 }
            END { if (NR == 0) exit 1
                  printf "%s\t%.0f\t%.0f\t%.0f\t%.2f\t%d\t%d\t%s\n", s, pct(0.5), pct(0.99), pct(0.999),
                         ticks * 1e6 / hz / (c > 0 ? c : 1), c, t, o }' >>"$LATENCY" ||
            die "$s: no latency samples in the -v output"
        log "latency $s: $(awk -F'\t' -v s="$s" '$1 == s {print "p50 " $2 " us, p99 " $3 " us, p99.9 " $4 " us, other use of a CPU " $8 "%"}' "$LATENCY")"
    done
fi

# ---- report ------------------------------------------------------------------
# per server: median, min and max over the runs of qps, CPU us/query, CPU %
SUMMARY=$WORK/summary.tsv   # server qps_med qps_min qps_max us_med us_min us_max cpu_pct lost resp_bytes other_pct_max
: >"$SUMMARY"
for s in "${SERVER_LIST[@]}"; do
    read -r qm qlo qhi < <(awk -F'\t' -v s="$s" '$1 == s {print $3}' "$RESULTS" | median_min_max)
    read -r um ulo uhi < <(awk -F'\t' -v s="$s" -v hz="$CLK_TCK" '$1 == s {printf "%.6f\n", $7 * 1e6 / hz / $4}' "$RESULTS" | median_min_max)
    read -r cm _ _ < <(awk -F'\t' -v s="$s" -v hz="$CLK_TCK" '$1 == s {printf "%.3f\n", 100 * $7 / hz / $6}' "$RESULTS" | median_min_max)
    lost=$(awk -F'\t' -v s="$s" '$1 == s {n += $5} END {print n + 0}' "$RESULTS")
    resp=$(awk -F'\t' -v s="$s" '$1 == s {print $8; exit}' "$RESULTS")
    other=$(awk -F'\t' -v s="$s" '$1 == s && $NF != "-" {if (!n++ || $NF + 0 > m) m = $NF + 0}
        END {if (n) printf "%.1f", m; else print "-"}' "$RESULTS" "$LATENCY")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$qm" "$qlo" "$qhi" "$um" "$ulo" "$uhi" "$cm" "$lost" "$resp" "$other" >>"$SUMMARY"
done
ref_us() { awk -F'\t' -v s="$1" '$1 == s {print $5}' "$SUMMARY"; }
NSD_US=$(ref_us nsd)
GDNSD_US=$(ref_us gdnsd)

echo
echo "## signpost vs peers: $MIX mix, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r); CPUs ${BUSY_BEFORE}% busy in the second before the start"
echo "- servers on CPU $SERVER_CPU, dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}') on CPU $CLIENT_CPU: \`dnsperf $DNSPERF_OPTS -l $SLICE\`, the servers in turn until each has had ${DURATION} s, $RUNS run(s); latency at \`-Q $LAT_QPS -l $LAT_DURATION\`"
printf -- '- versions:'
for s in "${SERVER_LIST[@]}"; do printf ' %s %s;' "$s" "$(version_of "$s")"; done
echo
echo
echo "- zone: $(basename "$ZONE"), $(grep -cvE '^[[:space:]]*(;|\$|$)' "$ZONE") record lines"
echo
echo "| server | resident MiB | queries/s median (min–max) | CPU µs/query median (min–max) | CPU/query ÷ NSD | CPU/query ÷ gdnsd | server CPU % | other use of a CPU % (max) | lost | response bytes (avg) | latency p50 / p99 / p99.9 µs @ ${LAT_QPS} q/s | CPU µs/query @ ${LAT_QPS} q/s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
while IFS=$'\t' read -r s qm qlo qhi um ulo uhi cm lost resp other; do
    lat=$(awk -F'\t' -v s="$s" '$1 == s {printf "%s / %s / %s | %s", $2, $3, $4, $5}' "$LATENCY")
    [ -n "$lat" ] || lat="- | -"
    awk -v s="$s" -v qm="$qm" -v qlo="$qlo" -v qhi="$qhi" -v um="$um" -v ulo="$ulo" -v uhi="$uhi" \
        -v cm="$cm" -v lost="$lost" -v resp="$resp" -v other="$other" -v lat="$lat" -v nsd="$NSD_US" -v gd="$GDNSD_US" -v rss="${RSS[$s]}" 'BEGIN {
        rn = (nsd != "" && nsd > 0) ? sprintf("%.2f", um / nsd) : "-"
        rg = (gd != "" && gd > 0) ? sprintf("%.2f", um / gd) : "-"
        printf "| %s | %s | %.0f (%.0f–%.0f) | %.2f (%.2f–%.2f) | %s | %s | %.0f | %s | %d | %s | %s |\n",
            s, rss, qm, qlo, qhi, um, ulo, uhi, rn, rg, cm, other, lost, resp, lat }'
done <"$SUMMARY"
echo
if [ -n "${RSS[signpost]:-}" ] && [ -n "$GDNSD_US" ]; then per_run_vs_gdnsd "$RESULTS"; echo; fi
# DNSSEC: signpost's DO=1 against its DO=0 on the same signed zone, and against
# the online signers, CPU per query (medians over the runs)
SIGNED_DO_US=$(ref_us signpost-signed+do)
if [ -n "$SIGNED_DO_US" ]; then
    for ref in signpost-signed signpost knot-signed+do pdns-signed+do; do
        ref_val=$(ref_us "$ref")
        [ -n "$ref_val" ] || continue
        awk -v a="$SIGNED_DO_US" -v b="$ref_val" -v r="$ref" 'BEGIN {
            # one statement a line: mawk, the awk of Debian, takes no line break
            # inside a ?: expression
            what = " (below 1: less CPU than the peer)"
            if (r == "signpost-signed") what = " (DO=1 ÷ DO=0, signed zone; target at most 1.05, issue 32)"
            if (r == "signpost") what = " (DO=1 signed ÷ the same zone unsigned)"
            printf "- CPU/query, signpost-signed+do ÷ %s: %.3f%s\n", r, a / b, what }'
    done
    echo
fi
echo "Resident MiB: VmRSS summed over the server's processes, after loading the zone and answering the check pass."
if [[ " ${SERVER_LIST[*]} " == *" floor "* ]]; then
    echo "floor: benches/udp_floor.rs, signpost's UDP loop and socket options sending each query back as its own answer: no DNS work, only the kernel's path (a real server can only add to it)."
fi
echo "CPU µs/query: on-CPU time (schedstat) of all the server's processes and threads over its dnsperf slices, divided by the queries completed."
echo "Server CPU % well under 100: dnsperf's one CPU, not the server, bounded queries/s. Other use of a CPU: the most that anything but the server (on its CPU) or dnsperf (on its CPU) took of one, over all runs; above a few % the numbers are disturbed."
