#!/usr/bin/env bash
# benches/failover-time.sh: time to fail over, end to end, on loopback.
#
# Starts an HTTP backend (python3 -m http.server) and signpost with a failover
# name whose primary is probed on that backend, kills the backend, polls the DNS
# answer every 50 ms until it moves to the standby, restarts the backend and polls
# until the answer comes back. Prints both times next to the bound
# interval x fall + interval (and interval x rise + interval for the return).
#
#   bash benches/failover-time.sh                 # the README's example settings: 5s, rise 2, fall 3
#   INTERVAL=1s RISE=2 FALL=3 bash benches/failover-time.sh
#   RUNS=3 bash benches/failover-time.sh
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SIGNPOST=${SIGNPOST:-$REPO/target/release/signpost}
INTERVAL=${INTERVAL:-5s}
TIMEOUT=${TIMEOUT:-2s}
RISE=${RISE:-2}
FALL=${FALL:-3}
RUNS=${RUNS:-1}
LIMIT=${LIMIT:-120}      # seconds before a wait gives up

command -v dig >/dev/null || apt-get install -y -q dnsutils >/dev/null
[ -x "$SIGNPOST" ] || (cd "$REPO" && cargo build --release -q)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-failover.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND_PORT=$(free_port)
DNS_PORT=$(free_port)
mkdir -p "$WORK/zones" "$WORK/www"
echo ok > "$WORK/www/healthz"

cat > "$WORK/zones/f.toml" <<TOML
origin = "f.test."
records = """
@ NS ns1
ns1 A 192.0.2.1
"""
[soa]
primary = "ns1.f.test."
contact = "h@f.test"

[checks.web]
http = { port = $BACKEND_PORT, path = "/healthz", expect = 200 }
interval = "$INTERVAL"
timeout = "$TIMEOUT"
rise = $RISE
fall = $FALL

[regions]
primary = {}
standby = {}

[names.www]
strategy = "failover"
endpoints.primary = { a = ["192.0.2.10"], check = "web", probe = "127.0.0.1:$BACKEND_PORT" }
endpoints.standby = { a = ["192.0.2.20"] }
TOML

start_backend() {
    (cd "$WORK/www" && exec python3 -m http.server "$BACKEND_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
    BACKEND=$!
    PIDS+=("$BACKEND")
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$BACKEND_PORT/healthz" >/dev/null 2>&1 && return
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$BACKEND_PORT/healthz', timeout=1)" 2>/dev/null && return
        sleep 0.05
    done
    echo "backend did not start" >&2; exit 1
}

answer() { dig +short +tries=1 +time=1 @127.0.0.1 -p "$DNS_PORT" www.f.test A 2>/dev/null | head -1; }

# Polls until the answer is $1; prints the seconds it took.
wait_for() {
    local want=$1 t0 now
    t0=$(date +%s.%N)
    while [ "$(answer)" != "$want" ]; do
        now=$(date +%s.%N)
        if awk -v a="$now" -v b="$t0" -v l="$LIMIT" 'BEGIN{exit !(a-b>l)}'; then
            echo "answer never became $want" >&2; exit 1
        fi
        sleep 0.05
    done
    now=$(date +%s.%N)
    awk -v a="$now" -v b="$t0" 'BEGIN{printf "%.2f", a-b}'
}

start_backend
"$SIGNPOST" serve --zones "$WORK/zones" --listen "127.0.0.1:$DNS_PORT" 2>"$WORK/signpost.log" &
PIDS+=("$!")
for _ in $(seq 1 200); do [ "$(answer)" = 192.0.2.10 ] && break; sleep 0.05; done
[ "$(answer)" = 192.0.2.10 ] || { cat "$WORK/signpost.log" >&2; echo "signpost did not answer" >&2; exit 1; }

secs() { awk -v d="$1" 'BEGIN{ if (d ~ /ms$/) {sub(/ms$/,"",d); print d/1000} else {sub(/s$/,"",d); print d} }'; }
I=$(secs "$INTERVAL")
BOUND_DOWN=$(awk -v i="$I" -v f="$FALL" 'BEGIN{print i*f+i}')
BOUND_UP=$(awk -v i="$I" -v r="$RISE" 'BEGIN{print i*r+i}')
echo "check: interval $INTERVAL, timeout $TIMEOUT, rise $RISE, fall $FALL"
printf '| run | kill -> standby (s) | bound (s) | restart -> primary (s) | bound (s) |\n|---|---|---|---|---|\n'
for run in $(seq 1 "$RUNS"); do
    kill "$BACKEND"; wait "$BACKEND" 2>/dev/null || true
    down=$(wait_for 192.0.2.20)
    start_backend
    up=$(wait_for 192.0.2.10)
    printf '| %s | %s | %s | %s | %s |\n' "$run" "$down" "$BOUND_DOWN" "$up" "$BOUND_UP"
done
