#!/usr/bin/env bash
# benches/wake-split.sh: where a batching UDP server's time goes per read, at a
# fixed query rate, from the kernel's own trace points.
#
#   bash benches/wake-split.sh PORT PID [QPS] [SECONDS]
#
# PORT: a server already answering the static zone (benches/data/
# bench.example.zone) on 127.0.0.1, pinned to a CPU of its own, started by
# hand as under "How each server is run" in benches/README.md; PID: its process. dnsperf sends QPS queries/s (default
# 10000, the latency run's rate) from CPU CLIENT_CPU (default 1) for SECONDS
# (default 4) plus a second either side, while `perf record` traces the
# server's recvmmsg and sendmmsg. For every read that brought queries it prints
# the percentiles of:
#   work: from recvmmsg's return to the sendmmsg that answers it (the server's
#         own code: parsing, lookup, writing the answers);
#   send: the sendmmsg itself (the kernel's send path, which on loopback also
#         delivers to the client's socket and wakes the client);
#   both: from recvmmsg's return to sendmmsg's return.
# Only for servers that read with recvmmsg and answer with sendmmsg (signpost,
# gdnsd, the floor). Needs perf (Debian's linux-perf) and root for the trace
# points. Loopback only; stops by itself.
set -euo pipefail

PATH=$PATH:/usr/sbin:/sbin
die() { printf 'wake-split: FAIL: %s\n' "$*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: bash benches/wake-split.sh PORT PID [QPS] [SECONDS]"
PORT=$1 PID=$2 QPS=${3:-10000} SECS=${4:-4}
CLIENT_CPU=${CLIENT_CPU:-1}
for v in PORT PID QPS SECS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
[ -d "/proc/$PID" ] || die "no process $PID"
for cmd in perf dnsperf python3 taskset; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (perf: Debian's linux-perf; dnsperf: benches/install-peers.sh)"
done
QUERIES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/data/static.queries
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wake-split.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

timeout -k 5 $((SECS + 30)) taskset -c "$CLIENT_CPU" dnsperf -d "$QUERIES" -s 127.0.0.1 -p "$PORT" \
    -c 4 -T 2 -q 200 -Q "$QPS" -l $((SECS + 2)) >"$WORK/dnsperf.out" 2>&1 &
client=$!
sleep 1
timeout -k 5 $((SECS + 20)) perf record -q -o "$WORK/perf.data" -p "$PID" \
    -e syscalls:sys_exit_recvmmsg -e syscalls:sys_enter_sendmmsg -e syscalls:sys_exit_sendmmsg \
    -- sleep "$SECS" >/dev/null 2>"$WORK/perf.err" || die "perf record failed: $(tail -n 2 "$WORK/perf.err")"
wait "$client" || die "dnsperf failed: $(tail -n 3 "$WORK/dnsperf.out")"

perf script -i "$WORK/perf.data" -F tid,time,event,trace --ns 2>/dev/null | python3 -c '
import sys

read_at = {}   # thread -> time its last read that brought queries returned
send_at = {}   # thread -> time its sendmmsg was entered
work, send, both, per_read = [], [], [], []
for line in sys.stdin:
    f = line.split()
    if len(f) < 4:
        continue
    tid, t, ev = f[0], float(f[1].rstrip(":")) * 1e6, f[2]
    if ev.startswith("syscalls:sys_exit_recvmmsg"):
        n = int(f[3], 16)
        n = n - (1 << 64) if n >= 1 << 63 else n
        if n > 0:
            read_at[tid] = t
            per_read.append(n)
        send_at.pop(tid, None)
    elif ev.startswith("syscalls:sys_enter_sendmmsg") and tid in read_at:
        send_at[tid] = t
        work.append(t - read_at[tid])
    elif ev.startswith("syscalls:sys_exit_sendmmsg") and tid in send_at:
        send.append(t - send_at.pop(tid))
        both.append(t - read_at.pop(tid))
if not both:
    sys.exit("wake-split: no recvmmsg followed by sendmmsg: not a batching server, or no load reached it")
def pct(a, q):
    a = sorted(a)
    return a[min(len(a) - 1, int(q * len(a)))]
print(f"reads with queries: {len(per_read)}, queries per read: mean {sum(per_read) / len(per_read):.2f}, one query in {100 * per_read.count(1) / len(per_read):.0f}%")
print("                  p50     p90     p99   p99.9   (us)")
for name, a in (("work", work), ("send", send), ("both", both)):
    print(f"{name:>5} {len(a):>8} " + " ".join(f"{pct(a, q):7.1f}" for q in (0.5, 0.9, 0.99, 0.999)))
'
