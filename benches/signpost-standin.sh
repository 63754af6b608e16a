#!/usr/bin/env bash
# Development stand-in for the signpost binary, for working on compare.sh
# before (or without) a built signpost: it takes signpost's command line
#     signpost-standin.sh serve --zones DIR --listen ADDR:PORT
# and serves every DIR/NAME.zone as zone NAME. with NSD, in the foreground,
# until it gets SIGTERM/SIGINT. Use it as
#     SIGNPOST=benches/signpost-standin.sh bash benches/compare.sh
# Numbers measured this way are NSD's, not signpost's.
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

zones='' listen=''
[ "${1:-}" = serve ] || { echo "usage: $0 serve --zones DIR --listen ADDR:PORT" >&2; exit 2; }
shift
while [ $# -gt 0 ]; do
    case $1 in
        --zones) zones=$2; shift 2 ;;
        --listen) listen=$2; shift 2 ;;
        *) echo "$0: unknown argument $1" >&2; exit 2 ;;
    esac
done
if ! [ -d "$zones" ] || [ -z "$listen" ]; then
    echo "$0: need --zones DIR and --listen ADDR:PORT" >&2
    exit 2
fi
zones=$(cd "$zones" && pwd)
addr=${listen%:*} port=${listen##*:}

conf=$(mktemp -d "${TMPDIR:-/tmp}/signpost-standin.XXXXXX")
child=''
cleanup() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    rm -rf "$conf"
}
trap cleanup EXIT
trap 'exit 0' TERM INT

{
    cat <<EOF
server:
    ip-address: $addr@$port
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$zones"
    database: ""
    zonelistfile: "$conf/zone.list"
    xfrdfile: "$conf/xfrd.state"
    pidfile: "$conf/nsd.pid"
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
    verbosity: 1
remote-control:
    control-enable: no
EOF
    for f in "$zones"/*.zone; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .zone)
        printf 'zone:\n    name: %s\n    zonefile: %s\n' "$name" "$(basename "$f")"
    done
} >"$conf/nsd.conf"

echo "signpost-standin: nsd serving $zones on $addr:$port" >&2
nsd -d -c "$conf/nsd.conf" &
child=$!
wait "$child"
