# shellcheck shell=bash
# benches/lib.sh: helpers shared by compare.sh and geo-compare.sh (sourced).
# They use the caller's PID associative array (server name -> pid) and CLK_TCK.

# the pid given and all its descendants, one a line
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 }
            }
            for (p in keep) if (p in parent) print p
        }'
}

# SIGTERM to the server, then (after 5 s) SIGKILL to what is left of its tree
stop_server() {
    local name=$1 pid=${PID[$1]:-} p alive i
    [ -n "$pid" ] || return 0
    local -a tree
    mapfile -t tree < <(tree_pids "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in "${tree[@]}"; do
            if kill -0 "$p" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 1 ] || break
        sleep 0.1
    done
    for p in "${tree[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
    wait "$pid" 2>/dev/null || true
    unset "PID[$name]"
}

port_busy() {
    command -v ss >/dev/null 2>&1 || return 1
    [ -n "$(ss -Hlnu "sport = :$1" 2>/dev/null)$(ss -Hlnt "sport = :$1" 2>/dev/null)" ]
}

# utime+stime (+ the same of reaped children) of a server's whole process
# tree, every thread, in clock ticks (1/CLK_TCK s), from /proc/PID/stat
cpu_ticks() {
    local total=0 p line
    local -a f
    while read -r p; do
        line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        read -r -a f <<<"${line##*) }"
        total=$((total + f[11] + f[12] + f[13] + f[14]))
    done < <(tree_pids "$1")
    echo "$total"
}

# clock ticks in the children line of bash's `times` output saved in FILE
times_ticks() {
    tail -n 1 "$1" | awk -v hz="$CLK_TCK" '{
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
        printf "%d\n", t * hz + 0.5 }'
}

stat_of() { # FILE LABEL FIELD: a number from dnsperf's statistics
    awk -v label="$2" -v field="$3" 'index($0, label) {print $field; exit}' "$1"
}

# median, min and max of the numbers on standard input
# Waits until a line from line FROM on of a server's LOG holds PATTERN, while
# the server (PID) runs, for up to SECONDS; prints the time then, in ns
# (date +%s%N). Needs the caller's die.
wait_log() { # LOG PID FROM PATTERN SECONDS
    local deadline=$(($(date +%s) + $5))
    while ! tail -n +"$3" "$1" | grep -q -- "$4"; do
        kill -0 "$2" 2>/dev/null || die "the server exited while waiting for '$4'"
        [ "$(date +%s)" -lt "$deadline" ] || die "no '$4' in $1 within $5 s"
        sleep 0.005
    done
    date +%s%N
}

median_min_max() { sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR]}'; }

# resident memory (VmRSS) of a server's whole process tree, in MiB
rss_mib() {
    local total=0 p kb
    while read -r p; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done < <(tree_pids "$1")
    awk -v k="$total" 'BEGIN {printf "%.1f", k / 1024}'
}

# the fast path's target, per run: signpost's CPU/query over gdnsd's in the same
# run, from a results.tsv (server run qps completed lost runtime ticks ...); then
# the mean of those ratios and, from two runs on, their standard deviation: a
# mean closer to 1 than about one deviation is within the machine's noise
per_run_vs_gdnsd() {
    awk -F'\t' -v hz="$CLK_TCK" '
        $1 == "signpost" || $1 == "gdnsd" { us[$1, $2] = $7 * 1e6 / hz / $4; runs[$2] = 1 }
        END { n = 0; k = 0; sum = 0; sq = 0; line = ""
              for (r = 1; r in runs; r++) { n++; x = us["signpost", r] / us["gdnsd", r]; if (x <= 1) k++
                                            sum += x; sq += x * x
                                            line = line sprintf(" run %d: %.3f;", r, x) }
              if (n == 0) exit
              mean = sum / n
              sd = n > 1 ? sqrt((sq - n * mean * mean) / (n - 1) > 0 ? (sq - n * mean * mean) / (n - 1) : 0) : -1
              printf "signpost ÷ gdnsd CPU/query per run:%s at or below gdnsd in %d of %d runs; mean %.3f", line, k, n, mean
              if (sd >= 0) printf ", standard deviation %.3f", sd
              printf "\n" }' "$1"
}

# the servers of SERVER_LIST in the order of throughput run $1: as listed on odd
# runs, reversed on even ones, so that a drift of the machine's speed over a run
# does not always favour the same server (and neighbours in the list, measured
# back to back, are compared under the most alike conditions)
run_order() {
    local i
    if (($1 % 2)); then
        printf '%s\n' "${SERVER_LIST[@]}"
    else
        for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do printf '%s\n' "${SERVER_LIST[i]}"; done
    fi
}

# on-CPU time of a server's whole process tree, every thread, in nanoseconds
# (the scheduler's own account, /proc/PID/task/TID/schedstat: finer than the
# 10 ms clock ticks of /proc/PID/stat, which short slices need)
cpu_ns() {
    local p
    while read -r p; do
        cat /proc/"$p"/task/*/schedstat 2>/dev/null
    done < <(tree_pids "$1") | awk '{s += $1} END {printf "%.0f\n", s}'
}

# nanoseconds as clock ticks (1/CLK_TCK s), fractional
ns_to_ticks() { awk -v n="$1" -v hz="$CLK_TCK" 'BEGIN {printf "%.4f", n * hz / 1e9}'; }

# A + B, with D decimals
fadd() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN {printf "%.*f", d, a + b}'; }

# the larger of two "other use of a CPU" figures, "-" standing for none
max_other() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || (b != "-" && b + 0 > a + 0)) print b; else print a}'; }

# a run's totals per server over its slices: CPU ticks, queries completed and
# lost, seconds, the most other use of a CPU, the response size
declare -A TICKS=() QDONE=() LOST=() SECS=() OTHER=() RESP=()

# SERVER...: zeroes a run's totals for these servers
slices_reset() {
    local s
    TICKS=() QDONE=() LOST=() SECS=() OTHER=() RESP=()
    for s; do TICKS[$s]=0 QDONE[$s]=0 LOST[$s]=0 SECS[$s]=0 OTHER[$s]=-; done
}

# SERVER OUTFILE: adds one dnsperf slice (its output, and PERF as measure set
# it) to SERVER's totals; a slice that completed nothing stops the script
slice_add() {
    local s=$1 out=$2 completed
    completed=$(stat_of "$out" 'Queries completed:' 3)
    if [ -z "$completed" ] || [ "$completed" -eq 0 ]; then die "$s: dnsperf completed no queries: $(tail -n 5 "$out")"; fi
    TICKS[$s]=$(fadd "${TICKS[$s]}" "${PERF[0]}" 4)
    QDONE[$s]=$((QDONE[$s] + completed))
    LOST[$s]=$((LOST[$s] + $(stat_of "$out" 'Queries lost:' 3)))
    SECS[$s]=$(fadd "${SECS[$s]}" "$(stat_of "$out" 'Run time (s):' 4)" 6)
    OTHER[$s]=$(max_other "${OTHER[$s]}" "${PERF[1]}")
    [ -n "${RESP[$s]:-}" ] || RESP[$s]=$(stat_of "$out" 'Average packet size:' 7)
}

# SERVER DIR PORT ZONE [WORKERS]: writes SERVER's configuration into DIR (its own
# temp dir, also its working directory) to serve ZONE as bench.example. on
# 127.0.0.1:PORT with WORKERS UDP worker threads (default 1; signpost: WORKERS
# SO_REUSEPORT sockets, each with its thread, set in a server config file only
# when WORKERS is not 1), and sets SERVER_CMD to its command line (signpost:
# $SIGNPOST). Shared by compare.sh, growth.sh, instructions.sh and
# both-cores.sh, so every script measures the peers as benches/README.md
# describes them.
SERVER_CMD=()
peer_setup() {
    local name=$1 dir=$2 port=$3 zone=$4 workers=${5:-1}
    local -a cmd
    mkdir -p "$dir"
    case $name in
        signpost | signpost-signed)
            mkdir -p "$dir/zones"
            cp "$zone" "$dir/zones/bench.example.zone"
            cmd=("$SIGNPOST" serve --zones "$dir/zones" --listen "127.0.0.1:$port")
            : >"$dir/server.toml"
            if [ "$workers" != 1 ]; then
                echo "udp_sockets_per_address = $workers" >>"$dir/server.toml"
            fi
            if [ "$name" = signpost-signed ]; then
                # the master file signed by the server (keys made at first
                # start: ECDSA P-256, algorithm 13, one combined key)
                # sign_rate: the signing budget (2000 a second per zone)
                # would answer SERVFAIL to the mixes' fresh names at full
                # speed from one client (docs/robustness.md); the benchmark
                # measures what signing costs, not the budget
                printf '[dnssec]\nkey_dir = "%s/keys"\nzones = ["bench.example."]\nsign_rate = 10000000\n' "$dir" >>"$dir/server.toml"
            fi
            if [ -s "$dir/server.toml" ]; then
                cmd+=(--config "$dir/server.toml")
            fi
            ;;
        nsd)
            cp "$zone" "$dir/bench.example.zone"
            cat >"$dir/nsd.conf" <<EOF
server:
    ip-address: 127.0.0.1@$port
    server-count: $workers
    username: ""
    chroot: ""
    zonesdir: "$dir"
    database: ""
    zonelistfile: "$dir/zone.list"
    xfrdfile: "$dir/xfrd.state"
    pidfile: "$dir/nsd.pid"
    # Debian's NSD has response rate limiting on: it would drop most of a
    # one-client benchmark's NXDOMAIN and NODATA answers
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: bench.example
    zonefile: bench.example.zone
EOF
            cmd=(nsd -d -c "$dir/nsd.conf")
            ;;
        knot | knot-signed)
            mkdir -p "$dir/run" "$dir/storage" "$dir/zones"
            cp "$zone" "$dir/zones/bench.example.zone"
            cat >"$dir/knot.conf" <<EOF
server:
    rundir: "$dir/run"
    listen: 127.0.0.1@$port
    udp-workers: $workers
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "$dir/storage"
template:
  - id: default
    storage: "$dir/zones"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: bench.example
    file: bench.example.zone
EOF
            if [ "$name" = knot-signed ]; then
                # online signing (mod-onlinesign): every answer signed when
                # asked, a key made at first start (ECDSA P-256, algorithm 13,
                # one combined key), NSEC "white lies" for denial
                # (Knot wants a module defined before the zone that uses it)
                awk '/^zone:$/ {
                        print "policy:\n  - id: online\n    algorithm: ecdsap256sha256\n    single-type-signing: on"
                        print "mod-onlinesign:\n  - id: online\n    policy: online" }
                     { print }
                     /^    file: bench.example.zone$/ { print "    module: mod-onlinesign/online" }' \
                    "$dir/knot.conf" >"$dir/knot.conf.new" && mv "$dir/knot.conf.new" "$dir/knot.conf"
            fi
            cmd=(knotd -c "$dir/knot.conf")
            ;;
        pdns | pdns-signed)
            # PowerDNS Authoritative with its bind backend; pdns-signed has the
            # zone secured with pdnsutil (ECDSA P-256, algorithm 13, one
            # combined key): it signs online, with its signature cache
            cp "$zone" "$dir/bench.example.zone"
            printf 'zone "bench.example" { type master; file "%s/bench.example.zone"; };\n' "$dir" >"$dir/named.conf"
            cat >"$dir/pdns.conf" <<EOF
launch=bind
bind-config=$dir/named.conf
bind-dnssec-db=$dir/dnssec.db
local-address=127.0.0.1
local-port=$port
socket-dir=$dir
guardian=no
daemon=no
disable-syslog=yes
loglevel=4
receiver-threads=1
distributor-threads=1
security-poll-suffix=
webserver=no
api=no
EOF
            pdnsutil --config-dir="$dir" create-bind-db "$dir/dnssec.db" >"$dir/pdnsutil.log" 2>&1 ||
                { cat "$dir/pdnsutil.log" >&2; return 1; }
            if [ "$name" = pdns-signed ]; then
                if ! pdnsutil --config-dir="$dir" add-zone-key bench.example ksk active ecdsa256 >>"$dir/pdnsutil.log" 2>&1 ||
                    ! pdnsutil --config-dir="$dir" rectify-zone bench.example >>"$dir/pdnsutil.log" 2>&1; then
                    cat "$dir/pdnsutil.log" >&2
                    return 1
                fi
            fi
            cmd=(pdns_server --config-dir="$dir")
            ;;
        gdnsd)
            mkdir -p "$dir/zones" "$dir/run" "$dir/state"
            cp "$zone" "$dir/zones/bench.example"
            cat >"$dir/config" <<EOF
options => {
    listen => [ 127.0.0.1:$port ]
    udp_threads => $workers
    tcp_threads => 1
    run_dir => $dir/run
    state_dir => $dir/state
}
EOF
            cmd=(gdnsd -c "$dir" start)
            ;;
        *) return 1 ;;
    esac
    SERVER_CMD=("${cmd[@]}")
}

# For growth.sh and instructions.sh: builds target/release/signpost if SERVER_LIST
# holds signpost and it is missing (SIGNPOST set elsewhere must exist), then
# makes WORK, a temp dir named PREFIX.XXXXXX, and on exit stops every server
# in the associative array PID and removes WORK (KEEP=1 keeps it). Needs REPO,
# SIGNPOST, BUILD_TIMEOUT, KEEP, log and die.
bench_start() { # PREFIX
    if [[ " ${SERVER_LIST[*]} " == *" signpost "* ]] && ! [ -x "$SIGNPOST" ]; then
        [ "$SIGNPOST" = "$REPO/target/release/signpost" ] || die "SIGNPOST=$SIGNPOST is not an executable file"
        log "building signpost (cargo build --release) ..."
        (cd "$REPO" && timeout "$BUILD_TIMEOUT" cargo build --release >&2) || die "cargo build --release failed"
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
bench_cleanup() {
    local rc=$? s
    trap - EXIT INT TERM
    for s in "${!PID[@]}"; do stop_server "$s"; done
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}

# the version of a server of peer_setup (signpost: $SIGNPOST's)
peer_version() {
    case $1 in
        signpost) "$SIGNPOST" --version 2>/dev/null | awk '{print $2; exit}' ;;
        nsd) nsd -v 2>&1 | awk '/NSD version/ {print $3; exit}' ;;
        knot) knotd --version 2>&1 | awk '{print $NF; exit}' ;;
        gdnsd) gdnsd -V 2>&1 | sed -n 's/^gdnsd version \([^ ]*\).*/\1/p' | head -n 1 ;;
    esac
}

# "Servers: NAME VERSION; ..." for SERVER_LIST, with no newline (growth.sh, both-cores.sh)
servers_versions() {
    local s
    printf 'Servers:'
    for s in "${SERVER_LIST[@]}"; do printf ' %s %s;' "$s" "$(peer_version "$s" || true)"; done
}
