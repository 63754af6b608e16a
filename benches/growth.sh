#!/usr/bin/env bash
# benches/growth.sh: how memory and load time grow with the zone, signpost
# against NSD, Knot DNS and gdnsd, on the same files, in one run.
#
# For each size it writes the zone with benches/data/gen-zone.py (the
# benchmark zone plus bulk A records, SIZE records in all), then starts each
# server alone on loopback (taskset -c SERVER_CPU, configured as compare.sh
# configures it: benches/lib.sh peer_setup), and measures:
#   load s       from just before the server is started to its first NOERROR,
#                AA answer to the zone's SOA (benches/first-answer.py, every 1 ms,
#                on CLIENT_CPU so that it takes no time from the server starting)
#   fast path    signpost only: from the same start to its "fast path ready"
#                log line (it answers from the general path until its table of
#                prebuilt answers is built beside the serving snapshot)
#   PSS MiB      proportional set size summed over the server's processes, 1 s
#                after that answer (for signpost, 1 s after the fast path; NSD
#                forks: its processes share pages, which PSS counts once and
#                VmRSS would count in each)
#   RSS MiB      VmRSS summed over the processes, as compare.sh prints it
#   peak MiB     the largest VmHWM (peak resident) of any of its processes
# and checks that the last bulk record is served. Prints a Markdown table and,
# per size, signpost's memory over Knot's and its load time over the fastest
# peer's.
#
#   bash benches/growth.sh
#   SIZES="10000 100000" SERVERS="signpost knot" bash benches/growth.sh
#   SIZES=100000 SERVERS="signpost signpost-signed knot" bash benches/growth.sh
#
# signpost-signed is signpost signing the zone itself at start ([dnssec], keys
# made at first start, as compare.sh's): its memory holds every RRSIG, in the
# zone and in the fast table's DO=1 answers.
#
# Every server is stopped on exit; the temp dir is removed (KEEP=1 keeps it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$REPO/benches
PATH=$PATH:/usr/sbin:/sbin

SERVERS=${SERVERS:-signpost nsd knot gdnsd}
SIZES=${SIZES:-10000 100000 1000000}
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
RUNS=${RUNS:-1}                   # starts per server and size; load time and memory: the median
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}       # taskset CPU list for the poller of the first answer
PORT_BASE=${PORT_BASE:-15650}
READY_TIMEOUT=${READY_TIMEOUT:-300}     # seconds for a server to answer
BUILD_TIMEOUT=${BUILD_TIMEOUT:-1800}
KEEP=${KEEP:-0}

log() { printf 'growth: %s\n' "$*" >&2; }
die() { printf 'growth: FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$BENCH/lib.sh"

for v in RUNS PORT_BASE READY_TIMEOUT BUILD_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ "$RUNS" -ge 1 ] || die "RUNS must be at least 1"
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a SIZE_LIST <<<"$SIZES"
for s in "${SERVER_LIST[@]}"; do
    case $s in signpost | signpost-signed | nsd | knot | gdnsd) ;; *) die "unknown server '$s' in SERVERS (signpost signpost-signed nsd knot gdnsd)" ;; esac
done

bash "$BENCH/install-peers.sh" || die "could not install the peer servers and tools (benches/install-peers.sh)"
for cmd in nsd knotd gdnsd dig taskset timeout python3; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found after install-peers.sh"
done
declare -A PID=()
bench_start signpost-growth

# kB of a /proc/PID/status or smaps_rollup field, summed (sum) or the largest (max) over the tree
tree_kb() { # PID FILE FIELD sum|max
    local p
    while read -r p; do
        awk -v f="$3:" '$1 == f {print $2}' "/proc/$p/$2" 2>/dev/null || true
    done < <(tree_pids "$1") | awk -v how="$4" '{ if (how == "sum") t += $1; else if ($1 > t) t = $1 } END {printf "%.1f\n", t / 1024}'
}

# records in the benchmark zone itself, so that SIZE counts every record
python3 "$BENCH/data/gen-zone.py" --bulk 0 "$WORK/base.zone"
BASE=$(grep -vc '^\$\|^;\|^$' "$WORK/base.zone")

RESULTS=$WORK/results.tsv
: >"$RESULTS"
port=$PORT_BASE
for size in "${SIZE_LIST[@]}"; do
    [[ $size =~ ^[0-9]+$ ]] && [ "$size" -gt "$BASE" ] || die "sizes must be whole numbers above $BASE, not '$size'"
    bulk=$((size - BASE))
    zone=$WORK/zone-$size
    python3 "$BENCH/data/gen-zone.py" --bulk "$bulk" "$zone"
    last=$(printf 'bulk%07d.bench.example' $((bulk - 1)))
    want=$(printf '10.%d.%d.%d' $(((bulk - 1) >> 16 & 255)) $(((bulk - 1) >> 8 & 255)) $(((bulk - 1) & 255)))
    for ((run = 1; run <= RUNS; run++)); do
        for s in "${SERVER_LIST[@]}"; do
            dir=$WORK/$size/$run/$s
            while port_busy "$port"; do port=$((port + 1)); done
            peer_setup "$s" "$dir" "$port" "$zone"
            # the poller first, so that its own start-up is not counted
            rm -f "$dir/polling"
            taskset -c "$CLIENT_CPU" python3 "$BENCH/first-answer.py" "$port" bench.example - "$READY_TIMEOUT" "$dir/polling" >"$dir/first" &
            poller=$!
            for ((i = 0; i < 1000; i++)); do
                [ -e "$dir/polling" ] || ! kill -0 "$poller" 2>/dev/null && break
                sleep 0.01
            done
            [ -e "$dir/polling" ] || die "the first-answer poller did not start"
            t0=$(date +%s%N)
            (cd "$dir" && exec taskset -c "$SERVER_CPU" "${SERVER_CMD[@]}" >"$dir/log" 2>&1 </dev/null) &
            PID[$s]=$!
            while kill -0 "$poller" 2>/dev/null; do
                if ! kill -0 "${PID[$s]}" 2>/dev/null; then
                    kill "$poller" 2>/dev/null || true
                    die "$s exited before answering with $size records: $(tail -n 5 "$dir/log")"
                fi
                sleep 0.05
            done
            wait "$poller" || die "$s did not answer with $size records: $(tail -n 5 "$dir/log")"
            t1=$(cat "$dir/first")
            # signpost answers from the general path first and builds its fast
            # table beside it: memory is measured once that is done too
            fast=-
            if [[ $s == signpost* ]]; then
                wait_log "$dir/log" "${PID[$s]}" 1 'fast path ready' "$READY_TIMEOUT" >/dev/null
                # the time the line was logged, not when it was seen
                t2=$(date -d "$(grep -m 1 'fast path ready' "$dir/log" | awk '{print $1}')" +%s%N) ||
                    die "no time stamp on signpost's 'fast path ready' line"
                fast=$(awk -v a="$t0" -v b="$t2" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
            fi
            sleep 1
            got=$(dig +norec +time=2 +tries=1 @127.0.0.1 -p "$port" "$last" A +short 2>&1 || true)
            [ "$got" = "$want" ] || die "$s: $last A gave '$got', want $want"
            pss=$(tree_kb "${PID[$s]}" smaps_rollup Pss sum)
            rss=$(tree_kb "${PID[$s]}" status VmRSS sum)
            peak=$(tree_kb "${PID[$s]}" status VmHWM max)
            secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
            log "$size records, $s: first answer after $secs s (fast path: $fast s); PSS $pss MiB, RSS $rss MiB, peak $peak MiB"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$s" "$secs" "$pss" "$rss" "$peak" "$fast" >>"$RESULTS"
            stop_server "$s"
            port=$((port + 1))
        done
    done
done

echo "## Memory and load time by zone size, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
servers_versions
echo " one start per server and size (RUNS=$RUNS, medians), each alone on CPU $SERVER_CPU."
echo
echo "| records | server | load s (start to first answer) | fast path ready s | PSS MiB | RSS MiB | peak RSS MiB |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
for size in "${SIZE_LIST[@]}"; do
    for s in "${SERVER_LIST[@]}"; do
        row=()
        for col in 3 4 5 6; do
            row+=("$(awk -F'\t' -v z="$size" -v s="$s" -v c="$col" '$1 == z && $2 == s {print $c}' "$RESULTS" | median_min_max | awk '{print $1}')")
        done
        secs=${row[0]} pss=${row[1]} rss=${row[2]} peak=${row[3]}
        fast=-
        if [[ $s == signpost* ]]; then
            fast=$(awk -F'\t' -v z="$size" -v s="$s" '$1 == z && $2 == s {print $7}' "$RESULTS" | median_min_max | awk '{print $1}')
        fi
        printf '| %s | %s | %.3f | %s | %.1f | %.1f | %.1f |\n' "$size" "$s" "$secs" "$fast" "$pss" "$rss" "$peak"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$s" "$secs" "$pss" "$fast" "$peak" >>"$WORK/medians.tsv"
    done
done
echo
if [[ " ${SERVER_LIST[*]} " == *" signpost "* ]]; then
    awk -F'\t' '{ t[$1, $2] = $3; m[$1, $2] = $4; f[$1, $2] = $5; pk[$1, $2] = $6; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
        END { for (i = 1; i <= n; i++) { z = order[i]; line = sprintf("%s records:", z)
                if ((z, "knot") in m) line = line sprintf(" signpost PSS ÷ Knot %.2f;", m[z, "signpost"] / m[z, "knot"])
                if ((z, "gdnsd") in m) line = line sprintf(" PSS ÷ gdnsd %.2f, peak ÷ gdnsd peak %.2f (issue 32: at most 1);", m[z, "signpost"] / m[z, "gdnsd"], pk[z, "signpost"] / pk[z, "gdnsd"])
                best = ""; for (k in t) { split(k, p, SUBSEP); if (p[1] == z && p[2] !~ /^signpost/ && (best == "" || t[k] < t[best])) best = k }
                if (best != "") { split(best, p, SUBSEP); line = line sprintf(" signpost load ÷ fastest peer (%s) %.2f, fast path ready ÷ it %.2f", p[2], t[z, "signpost"] / t[best], f[z, "signpost"] / t[best]) }
                print line } }' "$WORK/medians.tsv"
fi
