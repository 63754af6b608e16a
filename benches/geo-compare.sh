#!/usr/bin/env bash
# benches/geo-compare.sh: geo steering with EDNS Client Subnet, signpost
# against gdnsd (geoip plugin) and PowerDNS Authoritative (LUA records).
#
# Starts the three servers on their own 127.0.0.1 ports, each serving the same
# steered name (www.geobench.example A: by continent and country to one of
# three regions, see benches/geo/) located with the same database
# (tests/fixtures/geo/city.mmdb), each pinned to one CPU. Checks that all three
# give every client subnet of the mix the same, expected address (and prints a
# subnet -> answer table for one subnet per continent), then loads each in turn
# with dnsperf (pinned to the other CPU) sending the same queries, each with
# its own ECS option, and prints a Markdown table: queries/s, server CPU
# microseconds per query, and the CPU per query relative to gdnsd.
# See "Geo steering" in benches/README.md.
#
#   bash benches/geo-compare.sh
#   DURATION=5 RUNS=1 bash benches/geo-compare.sh          # quick look
#   SERVERS="signpost gdnsd" bash benches/geo-compare.sh
#   SERVERS="signpost signpost-fleet" bash benches/geo-compare.sh   # [fleet] off and on
#   SERVERS="signpost-signed signpost-signed+do pdns-signed+do" bash benches/geo-compare.sh   # DNSSEC
#
# DNSSEC: signpost-signed is signpost with `dnssec = true` in the zone's policy
# file (keys made at first start in its temp dir), pdns-signed PowerDNS with the
# zone secured by pdnsutil (it signs the LUA answers online). A "+do" after a
# name sets the DO bit on every query to that server (dnsperf -D); the same
# server without it is asked with DO clear.
#
# signpost-fleet is signpost with the same zone and config plus a [fleet]
# section, pointed at a real etcd (/usr/bin/etcd, Debian etcd-server) that the
# script starts on free loopback ports, its data in the temp dir (on CLIENT_CPU,
# so it takes nothing from the servers' CPU; its idle use shows in "other").
#
# Exits non-zero if a tool is missing and can't be installed, if a server does
# not start, or if the servers' answers disagree or are wrong. Every server it
# started is stopped on exit; its temp directory is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GEO=$REPO/benches/geo
MMDB=$REPO/tests/fixtures/geo/city.mmdb
PATH=$PATH:/usr/sbin:/sbin

# ---- settings (environment) ------------------------------------------------
SERVERS=${SERVERS:-signpost gdnsd pdns}   # which to run, in this order (reversed on even runs)
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
DURATION=${DURATION:-10}          # seconds of load per server and throughput run
SLICE=${SLICE:-1}                 # seconds per dnsperf invocation: the servers of a run take turns
RUNS=${RUNS:-3}                   # throughput runs per server (round-robin)
NQUERIES=${NQUERIES:-10000}       # queries in the mix file (dnsperf loops over it)
DNSPERF_OPTS=${DNSPERF_OPTS:--c 4 -T 2 -q 200}   # load shape
SERVER_CPU=${SERVER_CPU:-0}       # taskset CPU list for the servers
CLIENT_CPU=${CLIENT_CPU:-1}       # taskset CPU list for dnsperf
PORT_BASE=${PORT_BASE:-15450}     # first port tried; busy ports are skipped
READY_TIMEOUT=${READY_TIMEOUT:-30}      # seconds for a server to answer
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}    # seconds for cargo build --release
MAX_OTHER=${MAX_OTHER:-5}         # % of a CPU something else may take before a run is redone
RETRIES=${RETRIES:-2}             # how many times a disturbed run is redone at most
KEEP=${KEEP:-0}                   # 1: keep the temp dir (configs, logs, raw output)

log() { printf 'geo-compare: %s\n' "$*" >&2; }
die() { printf 'geo-compare: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

for v in DURATION SLICE RUNS NQUERIES PORT_BASE READY_TIMEOUT BUILD_TIMEOUT MAX_OTHER RETRIES; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
if [ "$RUNS" -lt 1 ] || [ "$DURATION" -lt 1 ] || [ "$NQUERIES" -lt 1 ] || [ "$SLICE" -lt 1 ]; then
    die "RUNS, DURATION, SLICE and NQUERIES must be at least 1"
fi
read -r -a SERVER_LIST <<<"$SERVERS"
[ "${#SERVER_LIST[@]}" -ge 1 ] || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
    case ${s%+do} in signpost | signpost-fleet | signpost-signed | gdnsd | pdns | pdns-signed) ;;
        *) die "unknown server '$s' in SERVERS (signpost signpost-fleet signpost-signed gdnsd pdns pdns-signed, each with +do for DO=1)" ;;
    esac
done
is_do() { [[ $1 == *+do ]]; }
# DOF: the query file for a server: with the DO bit set in every query for a
# +do server (dnsperf -D cannot go with -B: the bit is in the messages)
DOF=()
set_dof() { DOF=(-B -d "$WORK/mix.bin"); if is_do "$1"; then DOF=(-B -d "$WORK/mix-do.bin"); fi; }
# any server of SERVER_LIST whose name starts with $1
has_kind() { [[ " ${SERVER_LIST[*]} " == *" $1"* ]]; }
read -r -a PERF_OPTS <<<"$DNSPERF_OPTS"
[ -f "$MMDB" ] || die "no $MMDB (the committed geo fixture)"

# ---- tools -------------------------------------------------------------------
bash "$REPO/benches/install-peers.sh" --geo || log "WARNING: benches/install-peers.sh --geo failed; going on with what is installed"
for cmd in dnsperf dig taskset ps timeout python3; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (benches/install-peers.sh --geo could not install it)"
done
gdnsd_usage=''
has_server() { [[ " ${SERVER_LIST[*]} " == *" $1 "* ]]; }
drop_server() {
    local s keep=()
    for s in "${SERVER_LIST[@]}"; do [ "$s" = "$1" ] || keep+=("$s"); done
    SERVER_LIST=("${keep[@]}")
}
if has_server gdnsd; then
    command -v gdnsd >/dev/null 2>&1 || die "gdnsd not found (Debian package gdnsd); to leave it out: SERVERS='signpost pdns'"
    # gdnsd 3 has its plugins built in; its usage text lists "Features: ... geoip2"
    gdnsd_usage=$(gdnsd 2>&1 || true)   # no action: prints its usage, exits 1
    grep -q '^Features:.*geoip2' <<<"$gdnsd_usage" || die "this gdnsd was built without its geoip plugin (no 'geoip2' in the Features line of 'gdnsd' without arguments)"
fi
if has_kind pdns; then
    pdns_missing=''
    command -v pdns_server >/dev/null 2>&1 || pdns_missing+=' pdns-server'
    for pkg in pdns-backend-bind pdns-backend-geoip; do
        [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || pdns_missing+=" $pkg"
    done
    if [ -n "$pdns_missing" ]; then
        log "WARNING: PowerDNS left out: Debian package(s)$pdns_missing not installed and not installable here"
        for s in pdns pdns+do pdns-signed pdns-signed+do; do drop_server "$s"; done
        [ "${#SERVER_LIST[@]}" -ge 1 ] || die "no server left to run"
    fi
fi
if has_server signpost-fleet; then
    for cmd in etcd etcdctl; do
        command -v "$cmd" >/dev/null 2>&1 ||
            die "signpost-fleet needs $cmd (Debian packages etcd-server etcd-client); to leave it out: SERVERS='signpost gdnsd'"
    done
fi
if [ "$(nproc)" -lt 2 ] && [ "$SERVER_CPU" = 0 ] && [ "$CLIENT_CPU" = 1 ]; then
    die "needs 2 CPUs (servers on CPU 0, dnsperf on CPU 1); set SERVER_CPU/CLIENT_CPU"
fi
CLK_TCK=$(getconf CLK_TCK)

if has_kind signpost && ! [ -x "$SIGNPOST" ]; then
    if [ "$SIGNPOST" = "$REPO/target/release/signpost" ]; then
        # cargo takes a lock on target/: if another build is running, this
        # waits for it ("Blocking waiting for file lock"), within BUILD_TIMEOUT
        log "building signpost (cargo build --release; waits for any other build of target/) ..."
        (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release >&2) ||
            die "cargo build --release failed; to measure the others only: SERVERS='gdnsd pdns' bash benches/geo-compare.sh"
        [ -x "$SIGNPOST" ] || die "cargo build --release made no $SIGNPOST"
    else
        die "SIGNPOST=$SIGNPOST is not an executable file"
    fi
fi

# ---- temp dir, cleanup -------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-geo-bench.XXXXXX")
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

rcodes() { # dnsperf's "Response codes: NOERROR 10000 (100.00%)" as "NOERROR=10000"
    awk -F: '/Response codes:/ {print $2}' "$1" | tr ',' '\n' |
        awk 'NF >= 2 {print $1 "=" $2}' | sort | paste -sd ' '
}
fill() { # TEMPLATE OUT PORT DIR: the template with @PORT@ @DIR@ @MMDB@ replaced
    sed -e "s|@PORT@|$3|g" -e "s|@DIR@|$4|g" -e "s|@MMDB@|$MMDB|g" "$1" >"$2"
}

# ---- query data --------------------------------------------------------------
python3 "$GEO/mkmix.py" "$WORK/mix" "$NQUERIES" 2>"$WORK/mix.log" || die "mkmix.py failed: $(cat "$WORK/mix.log")"
MIX_DESC=$(cat "$WORK/mix.log")
log "mix: $MIX_DESC"
python3 "$REPO/benches/data/mkbin-ecs.py" "$WORK/mix/queries" "$WORK/mix.bin" 2>/dev/null || die "could not build the dnsperf -B file"
python3 "$REPO/benches/data/mkbin-ecs.py" "$WORK/mix/queries" "$WORK/mix-do.bin" --do 2>/dev/null || die "could not build the dnsperf -B file with DO"
EXPECT="NOERROR=$NQUERIES"

# ---- servers -----------------------------------------------------------------
ETCD_URL=''
# one etcd member on two free loopback ports, its data in $WORK/etcd (stopped
# on exit with the servers: PID[etcd]); waits until it is healthy
start_etcd() {
    local client peer dir=$WORK/etcd deadline=$((SECONDS + READY_TIMEOUT))
    client=$1
    peer=$((client + 1))
    while port_busy "$peer"; do peer=$((peer + 1)); done
    mkdir -p "$dir"
    ETCD_URL=http://127.0.0.1:$client
    ETCD_UNSUPPORTED_ARCH=$(uname -m) taskset -c "$CLIENT_CPU" etcd --name=bench --data-dir="$dir/data" \
        --listen-client-urls="$ETCD_URL" --advertise-client-urls="$ETCD_URL" \
        --listen-peer-urls="http://127.0.0.1:$peer" --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
        --initial-cluster="bench=http://127.0.0.1:$peer" >"$dir/log" 2>&1 </dev/null &
    PID[etcd]=$!
    log "etcd on $ETCD_URL (peer port $peer, CPU $CLIENT_CPU)"
    until timeout 5 etcdctl --endpoints="$ETCD_URL" endpoint health >/dev/null 2>&1; do
        if ! kill -0 "${PID[etcd]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            server_log_tail etcd
            die "etcd did not become healthy on $ETCD_URL within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    NEXT_PORT=$((peer + 1))
}

start_server() {
    local name=$1 port=$2 dir=$WORK/$1
    local -a cmd
    mkdir -p "$dir"
    case ${name%+do} in
        signpost)
            mkdir -p "$dir/zones"
            cp "$GEO/signpost/geobench.example.toml" "$dir/zones/"
            fill "$GEO/signpost/server.toml.in" "$dir/server.toml" "$port" "$dir"
            cmd=("$SIGNPOST" serve --zones "$dir/zones" --config "$dir/server.toml" --listen "127.0.0.1:$port")
            ;;
        signpost-signed)
            mkdir -p "$dir/zones"
            { echo "dnssec = true"; cat "$GEO/signpost/geobench.example.toml"; } >"$dir/zones/geobench.example.toml"
            fill "$GEO/signpost/server.toml.in" "$dir/server.toml" "$port" "$dir"
            printf '\n[dnssec]\nkey_dir = "%s/keys"\n' "$dir" >>"$dir/server.toml"
            cmd=("$SIGNPOST" serve --zones "$dir/zones" --config "$dir/server.toml" --listen "127.0.0.1:$port")
            ;;
        signpost-fleet)
            mkdir -p "$dir/zones"
            cp "$GEO/signpost/geobench.example.toml" "$dir/zones/"
            fill "$GEO/signpost/server.toml.in" "$dir/server.toml" "$port" "$dir"
            printf '\n[fleet]\nendpoints = ["%s"]\nprefix = "/signpost-bench/"\ninstance = "bench-1"\nsite = "bench"\n' \
                "$ETCD_URL" >>"$dir/server.toml"
            cmd=("$SIGNPOST" serve --zones "$dir/zones" --config "$dir/server.toml" --listen "127.0.0.1:$port")
            ;;
        gdnsd)
            mkdir -p "$dir/zones" "$dir/run" "$dir/state"
            cp "$GEO/gdnsd/geobench.example" "$dir/zones/geobench.example"
            fill "$GEO/gdnsd/config.in" "$dir/config" "$port" "$dir"
            cmd=(gdnsd -c "$dir" start)
            ;;
        pdns)
            fill "$GEO/pdns/pdns.conf.in" "$dir/pdns.conf" "$port" "$dir"
            fill "$GEO/pdns/named.conf.in" "$dir/named.conf" "$port" "$dir"
            cp "$GEO/pdns/geobench.example.zone" "$GEO/pdns/geo.yaml" "$dir/"
            cmd=(pdns_server --config-dir="$dir")
            ;;
        pdns-signed)
            fill "$GEO/pdns/pdns.conf.in" "$dir/pdns.conf" "$port" "$dir"
            fill "$GEO/pdns/named.conf.in" "$dir/named.conf" "$port" "$dir"
            cp "$GEO/pdns/geobench.example.zone" "$GEO/pdns/geo.yaml" "$dir/"
            echo "bind-dnssec-db=$dir/dnssec.db" >>"$dir/pdns.conf"
            if ! pdnsutil --config-dir="$dir" create-bind-db "$dir/dnssec.db" >"$dir/pdnsutil.log" 2>&1 ||
                ! pdnsutil --config-dir="$dir" add-zone-key geobench.example ksk active ecdsa256 >>"$dir/pdnsutil.log" 2>&1 ||
                ! pdnsutil --config-dir="$dir" rectify-zone geobench.example >>"$dir/pdnsutil.log" 2>&1; then
                cat "$dir/pdnsutil.log" >&2
                die "pdns-signed: pdnsutil could not secure geobench.example"
            fi
            cmd=(pdns_server --config-dir="$dir")
            ;;
    esac
    printf '%q ' "${cmd[@]}" >"$dir/cmdline"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$dir/log" 2>&1 </dev/null &
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
        out=$("${DIG[@]}" -p "${PORT[$name]}" geobench.example SOA 2>/dev/null || true)
        if grep -q 'status: NOERROR' <<<"$out" && grep -q 'flags:[^;]* aa' <<<"$out"; then
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            server_log_tail "$name"
            die "$name did not answer geobench.example SOA on 127.0.0.1:${PORT[$name]} within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# one dig with ECS: prints "ADDRESS[,ADDRESS...] /SCOPE" (or "STATUS ..." when
# the answer is not NOERROR with AA and A records)
dig_ecs() {
    local port=$1 subnet=$2 out status addrs scope
    out=$("${DIG[@]}" -p "$port" www.geobench.example A +subnet="$subnet" 2>&1) || { echo "no-answer"; return 0; }
    status=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out")
    addrs=$(awk '/^;; ANSWER SECTION:/ {a = 1; next} /^$/ {a = 0} a && !/^;/ && $4 == "A" {print $5}' <<<"$out" | sort | paste -sd ,)
    scope=$(sed -n 's/^; CLIENT-SUBNET: [^ ]*\/[0-9]*\/\([0-9]*\).*/\1/p' <<<"$out")
    if [ "$status" != NOERROR ] || ! grep -q 'flags:[^;]* aa' <<<"$out" || [ -z "$addrs" ]; then
        echo "${status:-?}${addrs:+ $addrs}"
    else
        echo "$addrs /${scope:--}"
    fi
}

read -r LOAD_START _ </proc/loadavg
if awk -v l="$LOAD_START" 'BEGIN {exit !(l > 0.5)}'; then
    log "WARNING: load average is $LOAD_START: something else is running, and the numbers will show it"
fi

port=$PORT_BASE
if has_server signpost-fleet; then
    while port_busy "$port"; do port=$((port + 1)); done
    start_etcd "$port"
    port=$NEXT_PORT
fi
for s in "${SERVER_LIST[@]}"; do
    while port_busy "$port"; do port=$((port + 1)); done
    log "starting $s on 127.0.0.1:$port (CPU $SERVER_CPU)"
    start_server "$s" "$port"
    port=$((port + 1))
done
for s in "${SERVER_LIST[@]}"; do
    wait_ready "$s"
done
# signpost-fleet measured only once it is in the fleet: its instance key,
# written under its lease, is in etcd
if has_server signpost-fleet; then
    deadline=$((SECONDS + READY_TIMEOUT))
    until timeout 5 etcdctl --endpoints="$ETCD_URL" get --keys-only /signpost-bench/instances/bench-1 2>/dev/null | grep -q bench-1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            server_log_tail signpost-fleet
            die "signpost-fleet did not register in etcd (/signpost-bench/instances/bench-1) within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    log "signpost-fleet: registered in etcd ($ETCD_URL, prefix /signpost-bench/)"
fi

# ---- correctness: same, expected answers before any measurement ---------------
# 1. dig +subnet, one /24 per continent: a table, and all must agree
DIG_TABLE=$WORK/dig-table.md
{
    printf '| client subnet | place | expected |'
    for s in "${SERVER_LIST[@]}"; do printf ' %s |' "$s"; done
    printf '\n|---|---|---|'
    for s in "${SERVER_LIST[@]}"; do printf -- '---|'; done
    printf '\n'
} >"$DIG_TABLE"
disagree=0
while IFS=$'\t' read -r subnet place want; do
    row="| $subnet | $place | $want |"
    for s in "${SERVER_LIST[@]}"; do
        got=$(dig_ecs "${PORT[$s]}" "$subnet")
        row+=" $got |"
        if [ "${got%% *}" != "$want" ]; then
            disagree=1
            log "$s: $subnet ($place): got '$got', want $want"
        fi
    done
    echo "$row" >>"$DIG_TABLE"
done <"$WORK/mix/samples.tsv"
echo >&2
log "dig www.geobench.example A +subnet=... (answer /ECS scope):"
cat "$DIG_TABLE" >&2
echo >&2
[ "$disagree" = 0 ] || die "the servers do not all give the expected answers (table above)"

# 2. every /24 of the mix, every server (python, one query each)
port_args=()
for s in "${SERVER_LIST[@]}"; do port_args+=("$s=${PORT[$s]}"); done
timeout 120 python3 "$GEO/check-answers.py" "$WORK/mix/expect.tsv" "${port_args[@]}" >"$WORK/check-answers.out" ||
    { cat "$WORK/check-answers.out" >&2; die "not every /24 of the mix gets the expected answer (above)"; }
sed 's/^/geo-compare: /' "$WORK/check-answers.out" >&2

# 3. the whole mix once through dnsperf: no loss, NOERROR everywhere
for s in "${SERVER_LIST[@]}"; do
    out=$WORK/$s/verify.out
    set_dof "$s"
    timeout -k 5 60 taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" \
        "${DOF[@]}" -n 1 -q 20 -t 2 >"$out" 2>&1 || die "$s: dnsperf check pass failed: $(tail -n 3 "$out")"
    [ "$(stat_of "$out" 'Queries lost:' 3)" = 0 ] || die "$s: queries lost in the check pass: $(grep 'Queries lost' "$out")"
    got=$(rcodes "$out")
    [ "$got" = "$EXPECT" ] || die "$s: one pass over the mix gave '$got', want '$EXPECT'"
    if is_do "$s"; then
        # signed: the steered A RRset comes with its RRSIG, for a client subnet too
        dig +norec +time=1 +tries=1 @127.0.0.1 -p "${PORT[$s]}" +dnssec +subnet=193.0.0.0/24 www.geobench.example A 2>/dev/null |
            awk '$4 == "RRSIG" && $5 == "A" {found = 1} END {exit !found}' ||
            die "$s: www.geobench.example A with DO and ECS: no RRSIG over the A RRset in the answer"
    fi
    log "$s: one dnsperf pass over the mix: $got, none lost"
done

# ---- measurements ------------------------------------------------------------
# busy time (user nice system irq softirq steal) of one CPU, in clock ticks,
# from /proc/stat; empty unless the CPU list is a single CPU number
cpu_busy() {
    [[ $1 =~ ^[0-9]+$ ]] || return 0
    awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
# UDP datagrams the kernel dropped because a socket's receive buffer was
# full (RcvbufErrors in /proc/net/snmp; machine-wide)
udp_drops() {
    awk '$1 == "Udp:" { if (!col) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") col = i; next } print $col; exit }' /proc/net/snmp
}
# NAME OUTFILE extra dnsperf args...: one dnsperf run against NAME; sets
# PERF=(TICKS OTHER_PCT SECONDS LOAD1 UDP_DROPS): CPU time the server used
# (from schedstat, in fractional clock ticks);
# the most either CPU spent on anything but the server (CPU SERVER_CPU) or
# dnsperf (CPU CLIENT_CPU), in % of the run ("-" if the CPU lists are not
# single CPUs); the run's wall time; the 1-minute load average just before the
# run; UDP datagrams the kernel dropped for a full receive buffer
perf_run() {
    local name=$1 out=$2 t0 t1 n0 n1 s0 s1 c0 c1 w0 w1 d load u0 u1
    shift 2
    read -r load _ </proc/loadavg
    u0=$(udp_drops)
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
    timeout -k 5 $((DURATION + 60)) taskset -c "$CLIENT_CPU" \
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
    u1=$(udp_drops)
    kill -0 "${PID[$name]}" 2>/dev/null || { server_log_tail "$name"; die "$name died during the run"; }
    d=$(($(times_ticks "$WORK/times.1") - $(times_ticks "$WORK/times.0")))   # dnsperf's CPU ticks
    PERF=("$(ns_to_ticks "$((n1 - n0))")" - 0 "$load" "$((u1 - u0))")
    PERF[2]=$(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.3f", b - a}')
    if [ -n "$s0" ] && [ -n "$s1" ] && [ -n "$c0" ] && [ -n "$c1" ]; then
        PERF[1]=$(awk -v os="$((s1 - s0 - (t1 - t0)))" -v oc="$((c1 - c0 - d))" -v hz="$CLK_TCK" -v w="${PERF[2]}" \
            'BEGIN {o = (os > oc) ? os : oc; if (o < 0) o = 0; printf "%.1f", 100 * o / hz / w}')
    fi
}
# perf_run, run again (at most RETRIES more times) while something else took
# more than MAX_OTHER % of either CPU
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
        log "$1: something else took ${PERF[1]}% of a CPU during the run (load average ${PERF[3]}): running it again"
    done
}

RESULTS=$WORK/results.tsv   # server run qps completed lost runtime ticks resp_bytes other_pct load1 udp_drops
: >"$RESULTS"
declare -A LOAD=() DROPS=()
for ((run = 1; run <= RUNS; run++)); do
    mapfile -t ORDER < <(run_order "$run")
    # The servers take turns, SLICE seconds each, until each has had DURATION:
    # a change in the machine's speed then falls on every server of the run alike.
    slices_reset "${ORDER[@]}"
    LOAD=() DROPS=()
    for s in "${ORDER[@]}"; do LOAD[$s]='' DROPS[$s]=0; done
    for ((slice = 1; slice * SLICE <= DURATION; slice++)); do
        for s in "${ORDER[@]}"; do
            out=$WORK/$s/tput.$run.$slice.out
            measure "$s" "$out" "${PERF_OPTS[@]}" -l "$SLICE"
            slice_add "$s" "$out"
            [ -n "${LOAD[$s]}" ] || LOAD[$s]=${PERF[3]}
            DROPS[$s]=$((DROPS[$s] + PERF[4]))
        done
    done
    for s in "${ORDER[@]}"; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$run" \
            "$(awk -v n="${QDONE[$s]}" -v t="${SECS[$s]}" 'BEGIN {printf "%.1f", n / t}')" "${QDONE[$s]}" "${LOST[$s]}" \
            "${SECS[$s]}" "${TICKS[$s]}" "${RESP[$s]}" "${OTHER[$s]}" "${LOAD[$s]}" "${DROPS[$s]}" >>"$RESULTS"
        log "run $run/$RUNS $s: $(awk -F'\t' -v s="$s" -v r="$run" -v hz="$CLK_TCK" \
            '$1 == s && $2 == r {printf "%.0f q/s, %.3f us CPU/query, server CPU %.0f%%, other use of a CPU %s%%, lost %d (kernel UDP drops %d), load average before %s",
                $3, $7 * 1e6 / hz / $4, 100 * $7 / hz / $6, $9, $5, $11, $10}' "$RESULTS")"
    done
done

# PowerDNS's caches: does it answer the mix from its packet cache? (it does
# not cache LUA answers that depend on ECS: packetcache-hit stays 0)
if has_server pdns; then
    pc=''
    for k in udp-queries packetcache-hit packetcache-miss query-cache-hit query-cache-miss servfail-packets timedout-packets overload-drops udp-recvbuf-errors; do
        pc+=" $k=$(timeout 5 pdns_control --config-dir="$WORK/pdns" show "$k" 2>/dev/null || echo '?')"
    done
    log "pdns counters:$pc"
fi

# ---- report ------------------------------------------------------------------
SUMMARY=$WORK/summary.tsv   # server qps_med qps_min qps_max us_med us_min us_max cpu_pct lost resp_bytes other_pct_max load_min load_max
: >"$SUMMARY"
for s in "${SERVER_LIST[@]}"; do
    read -r qm qlo qhi < <(awk -F'\t' -v s="$s" '$1 == s {print $3}' "$RESULTS" | median_min_max)
    read -r um ulo uhi < <(awk -F'\t' -v s="$s" -v hz="$CLK_TCK" '$1 == s {printf "%.6f\n", $7 * 1e6 / hz / $4}' "$RESULTS" | median_min_max)
    read -r cm _ _ < <(awk -F'\t' -v s="$s" -v hz="$CLK_TCK" '$1 == s {printf "%.3f\n", 100 * $7 / hz / $6}' "$RESULTS" | median_min_max)
    read -r _ llo lhi < <(awk -F'\t' -v s="$s" '$1 == s {print $10}' "$RESULTS" | median_min_max)
    lost=$(awk -F'\t' -v s="$s" '$1 == s {n += $5} END {print n + 0}' "$RESULTS")
    resp=$(awk -F'\t' -v s="$s" '$1 == s {print $8; exit}' "$RESULTS")
    other=$(awk -F'\t' -v s="$s" '$1 == s && $9 != "-" {if (!n++ || $9 + 0 > m) m = $9 + 0}
        END {if (n) printf "%.1f", m; else print "-"}' "$RESULTS")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$qm" "$qlo" "$qhi" "$um" "$ulo" "$uhi" "$cm" "$lost" "$resp" "$other" "$llo" "$lhi" >>"$SUMMARY"
done
GDNSD_US=$(awk -F'\t' '$1 == "gdnsd" {print $5}' "$SUMMARY")

version_of() {
    case $1 in
        signpost | signpost-signed*) timeout 5 "$SIGNPOST" --version 2>/dev/null | head -n 1 || echo "?" ;;
        signpost-fleet) echo "(same binary), etcd $(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')" ;;
        gdnsd) sed -n 's/^gdnsd version \([^ ]*\).*/\1/p' <<<"$gdnsd_usage" | head -n 1 ;;
        pdns*) dpkg-query -W -f='${Version}' pdns-server 2>/dev/null || echo "?" ;;
    esac
}
declare -A LABEL=([signpost]="signpost (geo strategy)" [signpost-fleet]="signpost (geo strategy) with [fleet] on etcd" [gdnsd]="gdnsd (geoip plugin, DYNA)" [pdns]="PowerDNS (LUA record)")
LABEL[signpost-signed]="signpost (geo strategy), zone signed, DO=0"
LABEL[signpost-signed+do]="signpost (geo strategy), zone signed, DO=1"
LABEL[pdns-signed]="PowerDNS (LUA record), online signing, DO=0"
LABEL[pdns-signed+do]="PowerDNS (LUA record), online signing, DO=1"

echo
echo "## Geo steering with ECS: signpost vs gdnsd vs PowerDNS, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r); load average at start: $LOAD_START"
echo "- servers on CPU $SERVER_CPU, dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}') on CPU $CLIENT_CPU: \`dnsperf -B $DNSPERF_OPTS -l $SLICE\`, the servers in turn until each has had ${DURATION} s, $RUNS run(s)"
echo "- mix: \`www.geobench.example A\` with ECS: $MIX_DESC"
printf -- '- versions:'
for s in "${SERVER_LIST[@]}"; do printf ' %s %s;' "$s" "$(version_of "$s")"; done
if has_server signpost || has_server signpost-fleet; then
    printf ' signpost binary built %s' "$(date -u -r "$SIGNPOST" '+%Y-%m-%d %H:%M UTC')"
    printf ' (repo at %s)' "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
fi
echo
echo
echo "| server | queries/s median (min–max) | CPU µs/query median (min–max) | CPU/query ÷ gdnsd | server CPU % | other use of a CPU % (max) | lost | response bytes (avg) | load avg before runs (min–max) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
while IFS=$'\t' read -r s qm qlo qhi um ulo uhi cm lost resp other llo lhi; do
    awk -v s="${LABEL[$s]}" -v qm="$qm" -v qlo="$qlo" -v qhi="$qhi" -v um="$um" -v ulo="$ulo" -v uhi="$uhi" \
        -v cm="$cm" -v lost="$lost" -v resp="$resp" -v other="$other" -v llo="$llo" -v lhi="$lhi" -v gd="$GDNSD_US" 'BEGIN {
        rg = (gd != "" && gd > 0) ? sprintf("%.2f", um / gd) : "-"
        printf "| %s | %.0f (%.0f–%.0f) | %.2f (%.2f–%.2f) | %s | %.0f | %s | %d | %s | %s–%s |\n",
            s, qm, qlo, qhi, um, ulo, uhi, rg, cm, other, lost, resp, llo, lhi }'
done <"$SUMMARY"
echo
echo "Each run:"
echo
echo "| run | server | queries/s | CPU µs/query | server CPU % | other use of a CPU % | lost | kernel UDP drops | load avg before |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
sort -t$'\t' -k2,2n -s "$RESULTS" | awk -F'\t' -v hz="$CLK_TCK" '{
    printf "| %d | %s | %.0f | %.2f | %.0f | %s | %d | %d | %s |\n", $2, $1, $3, $7 * 1e6 / hz / $4, 100 * $7 / hz / $6, $9, $5, $11, $10 }'
echo
echo "Answers checked before measuring (dig +subnet; answer /ECS scope):"
echo
cat "$DIG_TABLE"
echo
sed 's/^/- /' "$WORK/check-answers.out"
echo
if [[ " ${SERVER_LIST[*]} " == *" signpost "* && " ${SERVER_LIST[*]} " == *" gdnsd "* ]]; then per_run_vs_gdnsd "$RESULTS"; echo; fi
if has_server signpost-signed+do; then
    # DNSSEC: DO=1 against DO=0 on the same signed zone, and against the
    # online signer, CPU per query, run by run (they took turns in each run)
    for ref in signpost-signed signpost pdns-signed+do; do
        has_server "$ref" || continue
        awk -F'\t' -v r="$ref" '$1 == "signpost-signed+do" {a[$2] = $7 / $4} $1 == r {b[$2] = $7 / $4}
            END {for (k in a) if (k in b && b[k] > 0) printf "%d %.3f\n", k, a[k] / b[k]}' "$RESULTS" | sort -n >"$WORK/do-ratio"
        printf 'CPU per query, signpost-signed+do ÷ %s, run by run: %s; median %s%s\n' "$ref" \
            "$(awk '{print $2}' "$WORK/do-ratio" | paste -sd ' ' | sed 's/ /, /g')" \
            "$(awk '{print $2}' "$WORK/do-ratio" | median_min_max | awk '{printf "%.3f", $1}')" \
            "$(case $ref in signpost-signed) echo " (DO=1 ÷ DO=0; target at most 1.05, issue 32)" ;; pdns-signed+do) echo " (below 1: less CPU than PowerDNS signing)" ;; esac)"
    done
    echo
fi
if has_server signpost && has_server signpost-fleet; then
    # [fleet] on ÷ off, CPU per query, run by run (the two took turns in each run)
    awk -F'\t' '$1 == "signpost" {off[$2] = $7 / $4} $1 == "signpost-fleet" {on[$2] = $7 / $4}
        END {for (r in on) if (r in off && off[r] > 0) printf "%d %.3f\n", r, on[r] / off[r]}' "$RESULTS" | sort -n >"$WORK/fleet-ratio"
    printf 'CPU per query, signpost with [fleet] ÷ without, run by run: %s; median %s\n' \
        "$(awk '{print $2}' "$WORK/fleet-ratio" | paste -sd ' ' | sed 's/ /, /g')" \
        "$(awk '{print $2}' "$WORK/fleet-ratio" | median_min_max | awk '{printf "%.3f", $1}')"
    echo
fi
echo "CPU µs/query: on-CPU time (schedstat) of all the server's processes and threads over its dnsperf slices, divided by the queries completed."
echo "Server CPU % well under 100: dnsperf's one CPU, not the server, bounded queries/s. Other use of a CPU: the most that anything but the server (on its CPU) or dnsperf (on its CPU) took of one; above a few % the numbers are disturbed."
