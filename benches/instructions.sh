#!/usr/bin/env bash
# benches/instructions.sh: instructions per query, signpost against gdnsd,
# counted by valgrind's callgrind: a per-query cost that the machine's noise
# does not move.
#
# For each mix and server it starts the server under
# `valgrind --tool=callgrind` on loopback, sends the mix once to check the
# answers (and to warm what warms: caches, the steering memory), then sends it
# PASSES times and 2 x PASSES times with dnsperf, asking callgrind for a dump
# (callgrind_control -d) after each phase. A dump holds the instructions since
# the one before, of every thread of the server, so the difference between the
# two phases over the queries that make it is what one more query costs, with
# start-up, the check pass and whatever the server does while idle left out.
# The idle rate (a dump over IDLE seconds with no queries) is printed beside
# it, to show how little of the figure can be idle work.
#
#   bash benches/instructions.sh
#   MIXES=static SERVERS="signpost gdnsd" PASSES=1 bash benches/instructions.sh
#   DIALS=50 MIXES=geo SERVERS=signpost bash benches/instructions.sh   # dials on every region
#   DNSTAP=100 MIXES=static SERVERS=signpost bash benches/instructions.sh   # dnstap, 1 in 100
#   SIGNED=1 MIXES="static geo" bash benches/instructions.sh   # DO=1 ÷ DO=0 on a signed zone
#
# DNSSEC: signpost-signed is signpost signing the zone itself ([dnssec], as
# benches/lib.sh peer_setup sets it up for compare.sh; the geo mix's policy
# file gets `dnssec = true`); a "+do" after a name sets the DO bit in every
# query (dnsperf -D, or in the messages of the ECS mixes). SIGNED=1 stands for
# SERVERS="signpost-signed signpost-signed+do" and prints DO=1 ÷ DO=0 per mix.
#
# Mixes: static (benches/data/static.queries on bench.example.zone, as
# compare.sh), ecs (benches/data/geo.queries: the same zone, every query with
# its own EDNS Client Subnet, as compare.sh's MIX=geo), geo (the steered name
# of geo-compare.sh, its mix of 126 client subnets and its configs in
# benches/geo/). Instructions are user space only: valgrind does not see the
# kernel, which is most of a query's wall-clock CPU here (benches/README.md).
# Every server is stopped on exit; the temp dir is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/benches
DATA=$BENCH/data
GEO=$BENCH/geo
MMDB=$REPO/tests/fixtures/geo/city.mmdb
PATH=$PATH:/usr/sbin:/sbin

# ---- settings (environment) ------------------------------------------------
SIGNED=${SIGNED:-0}               # 1: SERVERS="signpost-signed signpost-signed+do" (DO=1 ÷ DO=0, signed zone)
if [ "$SIGNED" = 1 ]; then SERVERS=${SERVERS:-signpost-signed signpost-signed+do}; fi
SERVERS=${SERVERS:-signpost gdnsd}
MIXES=${MIXES:-static ecs geo}
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
DNSTAP=${DNSTAP:-}                # N: signpost sends one query in N to dnstap (an fstrm_capture of its own; its cost against none)
DIALS=${DIALS:-}                  # a percent: signpost's geo mix with that traffic dial on every region (its cost against none)
PASSES=${PASSES:-2}               # passes over the mix in the first phase; the second has twice as many
IDLE=${IDLE:-2}                   # seconds of the idle dump
NQUERIES=${NQUERIES:-10000}       # queries in the geo mix (mkmix.py)
SERVER_CPU=${SERVER_CPU:-0}       # taskset CPU list for the servers
CLIENT_CPU=${CLIENT_CPU:-1}       # taskset CPU list for dnsperf
PORT_BASE=${PORT_BASE:-15550}     # first port tried; busy ports are skipped
READY_TIMEOUT=${READY_TIMEOUT:-120}     # seconds for a server under valgrind to answer
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}    # seconds for cargo build --release
TOP=${TOP:-0}                     # > 0: also list each server's TOP functions by self instructions
KEEP=${KEEP:-0}                   # 1: keep the temp dir (configs, logs, callgrind dumps)

log() { printf 'instructions: %s\n' "$*" >&2; }
die() { printf 'instructions: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

for v in PASSES IDLE NQUERIES PORT_BASE READY_TIMEOUT BUILD_TIMEOUT TOP; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$PASSES" -ge 1 ] || die "PASSES must be at least 1"
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a MIX_LIST <<<"$MIXES"
[ "${#SERVER_LIST[@]}" -ge 1 ] || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
    case ${s%+do} in signpost | signpost-signed | gdnsd) ;; *) die "unknown server '$s' in SERVERS (signpost signpost-signed gdnsd, each with +do for DO=1)" ;; esac
done
for m in "${MIX_LIST[@]}"; do
    case $m in static | ecs | geo) ;; *) die "unknown mix '$m' in MIXES (static ecs geo)" ;; esac
done

bash "$BENCH/install-peers.sh" || die "could not install the peer servers and tools (benches/install-peers.sh)"
for cmd in valgrind callgrind_control gdnsd dnsperf dig taskset timeout python3; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (Debian packages valgrind, gdnsd, dnsperf, bind9-dnsutils)"
done
declare -A PID=() PORT=()
bench_start signpost-instr

DIG=(dig +norec +time=2 +tries=1 @127.0.0.1)
rcodes() {
    awk -F: '/Response codes:/ {print $2}' "$1" | tr ',' '\n' |
        awk 'NF >= 2 {print $1 "=" $2}' | sort | paste -sd ' '
}
fill() { # TEMPLATE OUT PORT DIR, as geo-compare.sh
    sed -e "s|@PORT@|$3|g" -e "s|@DIR@|$4|g" -e "s|@MMDB@|$MMDB|g" "$1" >"$2"
}

# ---- query files ---------------------------------------------------------------
declare -A INPUT=() EXPECT=() APEX=() LINES=()
for m in "${MIX_LIST[@]}"; do
    case $m in
        static)
            INPUT[$m]="-d $DATA/static.queries"
            EXPECT[$m]=$(tr -s '[:space:]' '\n' <"$DATA/static.expect" | sed '/^$/d' | sort | paste -sd ' ')
            APEX[$m]=bench.example
            LINES[$m]=$(grep -c . "$DATA/static.queries")
            ;;
        ecs)
            python3 "$DATA/mkbin-ecs.py" "$DATA/geo.queries" "$WORK/ecs.bin" 2>/dev/null || die "could not build the ecs query file"
            python3 "$DATA/mkbin-ecs.py" "$DATA/geo.queries" "$WORK/ecs-do.bin" --do 2>/dev/null || die "could not build the ecs query file"
            INPUT[$m]="-B -d $WORK/ecs.bin"
            EXPECT[$m]=$(tr -s '[:space:]' '\n' <"$DATA/geo.expect" | sed '/^$/d' | sort | paste -sd ' ')
            APEX[$m]=bench.example
            LINES[$m]=$(grep -c . "$DATA/geo.queries")
            ;;
        geo)
            python3 "$GEO/mkmix.py" "$WORK/geomix" "$NQUERIES" 2>/dev/null || die "mkmix.py failed"
            python3 "$DATA/mkbin-ecs.py" "$WORK/geomix/queries" "$WORK/geo.bin" 2>/dev/null || die "could not build the geo query file"
            python3 "$DATA/mkbin-ecs.py" "$WORK/geomix/queries" "$WORK/geo-do.bin" --do 2>/dev/null || die "could not build the geo query file"
            INPUT[$m]="-B -d $WORK/geo.bin"
            EXPECT[$m]="NOERROR=$NQUERIES"
            APEX[$m]=geobench.example
            LINES[$m]=$NQUERIES
            ;;
    esac
done

# ---- one server under callgrind ----------------------------------------------------
start_server() { # SERVER MIX PORT
    local name=$1 mix=$2 port=$3 dir=$WORK/$2/$1
    local -a cmd
    mkdir -p "$dir/zones"
    case ${name%+do}/$mix in
        signpost/geo | signpost-signed/geo)
            cp "$GEO/signpost/geobench.example.toml" "$dir/zones/"
            fill "$GEO/signpost/server.toml.in" "$dir/server.toml" "$port" "$dir"
            if [ "${name%+do}" = signpost-signed ]; then
                { echo 'dnssec = true'; cat "$GEO/signpost/geobench.example.toml"; } >"$dir/zones/geobench.example.toml"
                printf '\n[dnssec]\nkey_dir = "%s/keys"\n' "$dir" >>"$dir/server.toml"
            fi
            cmd=("$SIGNPOST" serve --zones "$dir/zones" --config "$dir/server.toml" --listen "127.0.0.1:$port")
            if [ -n "$DIALS" ]; then
                printf 'version = 1\n\n[dials]\n"region:us-east" = %d\n"region:eu-west" = %d\n"region:ap-northeast" = %d\n' \
                    "$DIALS" "$DIALS" "$DIALS" >"$dir/state.toml"
                cmd+=(--state-file "$dir/state.toml")
            fi
            ;;
        gdnsd/geo)
            mkdir -p "$dir/run" "$dir/state"
            cp "$GEO/gdnsd/geobench.example" "$dir/zones/geobench.example"
            fill "$GEO/gdnsd/config.in" "$dir/config" "$port" "$dir"
            cmd=(gdnsd -c "$dir" start)
            ;;
        signpost/* | signpost-signed/* | gdnsd/*)
            peer_setup "${name%+do}" "$dir" "$port" "$DATA/bench.example.zone"
            cmd=("${SERVER_CMD[@]}")
            ;;
    esac
    if [[ $name == signpost* ]] && [ -n "$DNSTAP" ]; then
        # The collector outside callgrind, on the client's CPU: only signpost is counted.
        command -v fstrm_capture >/dev/null 2>&1 || die "fstrm_capture not found (Debian's fstrm-bin)"
        taskset -c "$CLIENT_CPU" fstrm_capture -t protobuf:dnstap.Dnstap -u "$dir/tap.sock" -w "$dir/tap.fstrm" \
            >"$dir/capture.log" 2>&1 </dev/null &
        PID[$name-$mix-capture]=$!
        local deadline=$((SECONDS + READY_TIMEOUT))
        until [ -S "$dir/tap.sock" ]; do
            [ "$SECONDS" -lt "$deadline" ] || die "no fstrm_capture socket within ${READY_TIMEOUT}s"
            sleep 0.1
        done
        [ -f "$dir/server.toml" ] || : >"$dir/server.toml"
        printf '[dnstap]\nsocket = "%s"\nsample = %d\n' "$dir/tap.sock" "$DNSTAP" >>"$dir/server.toml"
        [[ " ${cmd[*]} " == *" --config "* ]] || cmd+=(--config "$dir/server.toml")
    fi
    printf '%q ' "${cmd[@]}" >"$dir/cmdline"
    (cd "$dir" && exec taskset -c "$SERVER_CPU" valgrind --tool=callgrind --dump-instr=no \
        --callgrind-out-file="$dir/cg.out" "${cmd[@]}" >"$dir/log" 2>&1 </dev/null) &
    PID[$name]=$!
    PORT[$name]=$port
}

wait_ready() { # SERVER MIX
    local name=$1 mix=$2 deadline=$((SECONDS + READY_TIMEOUT)) out
    while :; do
        kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited during start-up: $(tail -n 5 "$WORK/$mix/$name/log")"
        out=$("${DIG[@]}" -p "${PORT[$name]}" "${APEX[$mix]}" SOA 2>/dev/null || true)
        if grep -q 'status: NOERROR' <<<"$out" && grep -q 'flags:[^;]* aa' <<<"$out"; then return 0; fi
        [ "$SECONDS" -lt "$deadline" ] || die "$name did not answer ${APEX[$mix]} SOA within ${READY_TIMEOUT}s"
        sleep 0.5
    done
}

# the valgrind process's pid is the server's: valgrind runs the program in place
dump() { # SERVER MIX: asks for a dump, prints its file
    local name=$1 mix=$2 dir=$WORK/$2/$1 before after f
    before=$(find "$dir" -maxdepth 1 -name 'cg.out.*' | wc -l)
    timeout 60 callgrind_control -d "${PID[$name]}" >>"$dir/control.log" 2>&1 || die "$name: callgrind_control -d failed: $(tail -n 3 "$dir/control.log")"
    for _ in $(seq 100); do
        after=$(find "$dir" -maxdepth 1 -name 'cg.out.*' | wc -l)
        [ "$after" -gt "$before" ] && break
        sleep 0.1
    done
    f=$(find "$dir" -maxdepth 1 -name 'cg.out.*' | sort -t. -k3 -n | tail -n 1)
    [ -n "$f" ] || die "$name: no callgrind dump written"
    echo "$f"
}

total_ir() { awk '/^totals:/ {print $2; exit}' "$1"; }

send() { # SERVER MIX PASSES OUT: dnsperf over the mix PASSES times; no loss allowed
    local name=$1 mix=$2 n=$3 out=$4
    local -a input
    read -r -a input <<<"${INPUT[$mix]}"
    if [[ $name == *+do ]]; then
        # DO=1: dnsperf -D, or the messages built with the bit (-B ignores -D)
        case $mix in
            static) input+=(-D) ;;
            *) input=(-B -d "$WORK/$mix-do.bin") ;;
        esac
    fi
    timeout -k 5 1200 taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$name]}" "${input[@]}" \
        -n "$n" -q 20 -t 5 >"$out" 2>&1 || die "$name: dnsperf failed: $(tail -n 3 "$out")"
    [ "$(stat_of "$out" 'Queries lost:' 3)" = 0 ] || die "$name: queries lost: $(grep 'Queries lost' "$out")"
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
port=$PORT_BASE
for m in "${MIX_LIST[@]}"; do
    for s in "${SERVER_LIST[@]}"; do
        dir=$WORK/$m/$s
        while port_busy "$port"; do port=$((port + 1)); done
        log "$m: starting $s under callgrind on 127.0.0.1:$port"
        start_server "$s" "$m" "$port"
        port=$((port + 1))
        wait_ready "$s" "$m"
        send "$s" "$m" 1 "$dir/check.out"
        got=$(rcodes "$dir/check.out")
        if [[ $s == *+do ]]; then
            # compact denial answers NXDOMAIN as NOERROR (RFC 9824): no other rcode
            [[ $got =~ ^(NOERROR|NXDOMAIN)=[0-9]+( (NOERROR|NXDOMAIN)=[0-9]+)?$ ]] || die "$s: one pass over the $m mix gave '$got'"
        else
            [ "$got" = "${EXPECT[$m]}" ] || die "$s: one pass over the $m mix gave '$got', want '${EXPECT[$m]}'"
        fi
        dump "$s" "$m" >/dev/null
        t0=$(date +%s.%N)
        sleep "$IDLE"
        idle=$(dump "$s" "$m")
        t1=$(date +%s.%N)
        send "$s" "$m" "$PASSES" "$dir/a.out"
        a=$(dump "$s" "$m")
        send "$s" "$m" $((2 * PASSES)) "$dir/b.out"
        b=$(dump "$s" "$m")
        python3 "$BENCH/cg-self.py" "$dir/a.obj" "$a"
        python3 "$BENCH/cg-self.py" "$dir/b.obj" "$TOP" "$b"
        queries=$((PASSES * LINES[$m]))
        # per object: (phase B - phase A) / the queries between them
        own=$(awk -F'\t' -v bin="$(basename "$([[ $s == signpost* ]] && echo "$SIGNPOST" || command -v gdnsd)")" '
            FNR == NR { a[$1] = $2; next } { d = $2 - a[$1]; n = split($1, p, "/")
                if (p[n] == bin) own += d; else if (p[n] ~ /^libc\.so/) libc += d; else other += d }
            END { printf "%d %d %d\n", own, libc, other }' "$dir/a.obj" "$dir/b.obj")
        read -r own_ir libc_ir other_ir <<<"$own"
        ia=$(total_ir "$a")
        ib=$(total_ir "$b")
        idle_ir=$(total_ir "$idle")
        idle_rate=$(awk -v i="$idle_ir" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", i / (b - a)}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$s" "$queries" "$ia" "$ib" "$own_ir" "$libc_ir" "$other_ir" "$idle_rate" >>"$RESULTS"
        if [ "$TOP" -gt 0 ]; then
            log "$m/$s: top $TOP functions by self instructions over phase B ($((2 * queries)) queries):"
            sed 's/^/  /' "$dir/b.obj.functions" >&2
        fi
        stop_server "$s"
    done
done

# ---- table ---------------------------------------------------------------------------
echo "## Instructions per query (callgrind), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Phases of $PASSES and $((2 * PASSES)) passes over each mix; per query = (second phase - first) / the queries between them. User space only."
echo
echo "| mix | server | instructions/query | own code | libc | other libraries | ÷ gdnsd | idle instructions/s | first phase / its queries |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
awk -F'\t' '
    { key = $1 SUBSEP $2; q[key] = $3; pq[key] = ($5 - $4) / $3; own[key] = $6 / $3; libc[key] = $7 / $3
      oth[key] = $8 / $3; idle[key] = $9; first[key] = $4 / $3; order[++n] = key }
    END { for (i = 1; i <= n; i++) { k = order[i]; split(k, p, SUBSEP); g = p[1] SUBSEP "gdnsd"
            ratio = (g in pq) ? sprintf("%.2f", pq[k] / pq[g]) : "-"
            printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %.0f | %.0f |\n", p[1], p[2], pq[k], own[k], libc[k], oth[k], ratio, idle[k], first[k] } }' "$RESULTS"
echo
if [[ " ${SERVER_LIST[*]} " == *" signpost "* && " ${SERVER_LIST[*]} " == *" gdnsd "* ]]; then
    awk -F'\t' '{ pq[$1, $2] = ($5 - $4) / $3; mixes[$1] = 1 }
        END { for (m in mixes) if ((m, "signpost") in pq && (m, "gdnsd") in pq)
                printf "signpost ÷ gdnsd instructions/query, %s mix: %.3f\n", m, pq[m, "signpost"] / pq[m, "gdnsd"] }' "$RESULTS" | sort
fi
if [[ " ${SERVER_LIST[*]} " == *" signpost-signed "* && " ${SERVER_LIST[*]} " == *" signpost-signed+do "* ]]; then
    awk -F'\t' '{ pq[$1, $2] = ($5 - $4) / $3; mixes[$1] = 1 }
        END { for (m in mixes) if ((m, "signpost-signed") in pq && (m, "signpost-signed+do") in pq)
                printf "signpost DO=1 ÷ DO=0 instructions/query on the signed zone, %s mix: %.3f\n", m, pq[m, "signpost-signed+do"] / pq[m, "signpost-signed"] }' "$RESULTS" | sort
fi
