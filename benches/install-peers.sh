#!/usr/bin/env bash
# Install what benches/compare.sh needs, from Debian's packages, if missing:
# the peer servers (NSD, Knot DNS, gdnsd), the load generator (dnsperf), dig,
# and the small tools the harness uses (taskset, ps, ss, python3).
# `--geo` adds what benches/geo-compare.sh needs as well: PowerDNS
# Authoritative 4.7 with its bind and geoip backends (gdnsd's geoip plugin is
# built in).
# `--ci` installs only what the test suite needs instead: etcd
# 3.4 and etcdctl for tests/fleet.rs,
# chromium and chromedriver for tests/dashboard.rs, kdig and dig for
# tests/encrypted.rs, unbound (a validating resolver) for tests/dnssec.rs,
# knotd and nsd (secondaries taking zones from signpost) for tests/transfer.rs
# knotd and knotc (Knot DNS as a primary) for tests/secondary.rs
# prometheus (its server, started on loopback) for tests/metric_checks.rs
# fstrm_capture (a Frame Streams collector) and dnstap-ldns (a dnstap decoder)
# for tests/dnstap.rs
# (.ci/run calls it so; apt-get update runs once first in that mode).
# Idempotent: does nothing when every command is already there.
# Needs root (or sudo) and apt. Package services are not started: the peers
# are started by compare.sh on loopback ports of its own, never on port 53.
set -euo pipefail

# command -> Debian package (Debian 12 "bookworm": nsd 4.6, knot 3.2,
# gdnsd 3.8, dnsperf 2.10, bind9-dnsutils 9.18)
declare -A PKG=(
    [nsd]=nsd
    [knotd]=knot
    [knotc]=knot
    [gdnsd]=gdnsd
    [dnsperf]=dnsperf
    [dig]=bind9-dnsutils
    [taskset]=util-linux
    [ps]=procps
    [ss]=iproute2
    [python3]=python3
    [timeout]=coreutils
)

if [ "${1:-}" = --ci ]; then
    PKG=(
        [etcd]=etcd-server
        [etcdctl]=etcd-client
        [chromium]=chromium
        [chromedriver]=chromium-driver
        [kdig]=knot-dnsutils
        [dig]=bind9-dnsutils
        [unbound]=unbound
        [knotd]=knot
        [nsd]=nsd
        [knotc]=knot
        [prometheus]=prometheus
        [fstrm_capture]=fstrm-bin
        [dnstap-ldns]=dnstap-ldns
    )
fi

# packages with no command of their own: PowerDNS's backends (plugins)
PLUGINS=()
if [ "${1:-}" = --geo ]; then
    PKG[pdns_server]=pdns-server
    PLUGINS=(pdns-backend-bind pdns-backend-geoip)
fi

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
if [ "${WITH_SHELLCHECK:-0}" = 1 ] && ! command -v shellcheck >/dev/null 2>&1; then
    want+=(shellcheck)
fi
if [ "${#want[@]}" -eq 0 ]; then
    exit 0
fi
mapfile -t want < <(printf '%s\n' "${want[@]}" | sort -u)
echo "install-peers: installing ${want[*]}" >&2

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-peers: need root or sudo to install ${want[*]}" >&2; exit 1; }
    SUDO=(sudo)
fi

# Keep the packages' init scripts from starting system-wide daemons on port 53
# (which can fail where port 53 is taken, and fail the install with it):
# a policy-rc.d that says "no" for the duration of the install, unless the
# machine already has one.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if ! [ -e "$POLICY" ]; then
    printf '#!/bin/sh\n# added by signpost benches/install-peers.sh during apt-get install\nexit 101\n' |
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
if [ "${1:-}" = --ci ]; then
    "${SUDO[@]}" apt-get update >&2
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${want[@]}" >&2
    exit 0
fi
if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${want[@]}" >&2; then
    "${SUDO[@]}" apt-get update >&2
    "${SUDO[@]}" apt-get install -y --no-install-recommends "${want[@]}" >&2
fi
