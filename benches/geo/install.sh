#!/usr/bin/env bash
# Install what benches/geo-compare.sh needs, from Debian 12's packages, if
# missing: gdnsd 3.8 (the geoip plugin is built in), PowerDNS Authoritative
# 4.7 with its bind and geoip backends, dnsperf 2.10, dig, and the small tools
# the harness uses. Idempotent: does nothing when everything is there.
# Needs root (or sudo) and apt. No package service is started (a policy-rc.d
# says no during the install): the servers are started by geo-compare.sh on
# loopback ports of its own, never on port 53.
set -euo pipefail

# command -> Debian package
declare -A PKG=(
    [gdnsd]=gdnsd
    [pdns_server]=pdns-server
    [dnsperf]=dnsperf
    [dig]=bind9-dnsutils
    [taskset]=util-linux
    [ps]=procps
    [ss]=iproute2
    [python3]=python3
    [timeout]=coreutils
)
# packages with no command of their own: PowerDNS's backends (plugins)
PLUGINS=(pdns-backend-bind pdns-backend-geoip)

want=()
for cmd in "${!PKG[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ]; then
        want+=("${PKG[$cmd]}")
    fi
done
for pkg in "${PLUGINS[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        want+=("$pkg")
    fi
done
if [ "${#want[@]}" -eq 0 ]; then
    exit 0
fi
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
echo "geo/install.sh: installing ${want[*]}" >&2

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "geo/install.sh: need root or sudo to install ${want[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
added_policy=0
if ! [ -e "$POLICY" ]; then
    printf '#!/bin/sh\n# added by signpost benches/geo/install.sh during apt-get install\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    added_policy=1
fi
remove_policy() {
    if [ "$added_policy" = 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap remove_policy EXIT

export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${want[@]}" >&2; then
    "${SUDO[@]}" apt-get update >&2
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${want[@]}" >&2
fi
