#!/usr/bin/env bash
# The README's test command, and what .ci/run runs after fmt and clippy:
# installs what the tests start (etcd and etcdctl, chromium and chromedriver,
# kdig, dig, unbound, knot, nsd, prometheus, fstrm-bin, dnstap-ldns) from
# Debian's packages when missing, then runs the
# whole test suite and ends with one summary line.
#
#   bash tests/run.sh                  # everything
#   bash tests/run.sh --test fleet     # extra arguments go to cargo test
#
# The install step needs root or sudo the first time (benches/install-peers.sh
# --ci does nothing when every command is already there). Exit status: cargo
# test's.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is required: install the Rust toolchain first" >&2
    exit 1
fi

bash benches/install-peers.sh --ci

# A summary line closes the output, because cargo's own last line is the
# doc-test run, which has no tests.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed.*/\1/' | awk '{s += $1} END {print s + 0}')
failed=$(grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) failed.*/\1/' | awk '{s += $1} END {print s + 0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
