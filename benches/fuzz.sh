#!/usr/bin/env bash
# benches/fuzz.sh: run every fuzz target in fuzz/ for a fixed time, on stable Rust.
#
#   bash benches/fuzz.sh            # each target 30 s
#   bash benches/fuzz.sh 120        # each target 2 minutes
#   TARGETS="query_handler explain" bash benches/fuzz.sh 60
#   SANITIZER=address bash benches/fuzz.sh     # with AddressSanitizer (see below)
#
# Builds the targets with cargo-fuzz (libFuzzer), first replays the minimized
# crashes kept in fuzz/regressions/, then fuzzes each target for SECONDS
# (libFuzzer -max_total_time), starting from the committed seeds in
# fuzz/corpus/TARGET. What a run learns goes to a scratch corpus, so the committed
# seeds stay as they are (KEEP=1 keeps the scratch folder and prints where).
# Prints, per target: executions, seconds, executions per second, corpus growth
# and crashes, and where each crashing input was written.
#
# Exits 0 when nothing crashed; 1 when a target crashed (a panic, a failed check,
# a timeout or running out of memory) or a regression input still crashes; 2 when
# a tool is missing and cannot be installed or the build fails.
#
# Toolchain: stable Rust is enough. cargo-fuzz's default AddressSanitizer build
# passes -Zsanitizer=address, which stable refuses, so the default here is
# SANITIZER=none: libFuzzer with coverage only. signpost forbids unsafe code, so a
# memory error would come from a dependency; SANITIZER=address builds with ASan
# by setting RUSTC_BOOTSTRAP=1, which lets stable accept the -Z flag (works with
# Rust 1.95; slower, and a separate build).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$REPO/fuzz

SECONDS_EACH=${1:-30}
TARGETS=${TARGETS:-query_handler master_file policy_file client_subnet explain}
SANITIZER=${SANITIZER:-none}                 # none | address
CARGO_FUZZ_VERSION=${CARGO_FUZZ_VERSION:-0.13.2}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}           # libFuzzer -rss_limit_mb
TIMEOUT=${TIMEOUT:-10}                       # libFuzzer -timeout: seconds per input
KEEP=${KEEP:-0}
# A build folder of its own, so the main package's target/ is never touched.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FUZZ/target}

log() { printf 'fuzz: %s\n' "$*" >&2; }

case $SECONDS_EACH in
    '' | *[!0-9]*) log "SECONDS must be a whole number of seconds, got '$SECONDS_EACH'"; exit 2 ;;
esac
case $SANITIZER in
    none) ;;
    address)
        export RUSTC_BOOTSTRAP=1
        # As cargo fuzz run sets it: Rust's generics trip ASan's ODR check.
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0}
        ;;
    *) log "SANITIZER must be none or address, got '$SANITIZER'"; exit 2 ;;
esac

# ---- tools -------------------------------------------------------------------
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

if ! command -v cargo >/dev/null; then
    log "cargo not found: install Rust (rustup) first"
    exit 2
fi
# libfuzzer-sys compiles libFuzzer's C++ sources.
if ! command -v c++ >/dev/null; then
    log "installing a C++ compiler (g++) for libFuzzer"
    if ! { as_root apt-get update -qq && as_root apt-get install -y -qq g++ >/dev/null; }; then
        log "no C++ compiler and apt-get could not install g++"
        exit 2
    fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    if ! cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"; then
        log "cargo install cargo-fuzz failed"
        exit 2
    fi
fi

# ---- build -------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/signpost-fuzz.XXXXXX")
cleanup() {
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

cd "$FUZZ"
log "building ($SANITIZER sanitizer) into $CARGO_TARGET_DIR"
# All targets at once: they share every dependency.
if ! cargo fuzz build -O --sanitizer "$SANITIZER" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" >&2
    log "build failed (full log: $WORK/build.log)"
    KEEP=1
    exit 2
fi
BIN_DIR=$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release

# ---- regressions ---------------------------------------------------------------
# Each file fuzz/regressions/TARGET-N is an input that once crashed TARGET.
failed=0
still=()
for t in $TARGETS; do
    shopt -s nullglob
    files=("$FUZZ"/regressions/"$t"-*)
    shopt -u nullglob
    for f in "${files[@]}"; do
        mkdir -p "$WORK/tmp"
        if ! TMPDIR=$WORK/tmp "$BIN_DIR/$t" -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT" "$f" >"$WORK/regression.log" 2>&1; then
            still+=("$(basename "$f")")
            grep -m1 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer" "$WORK/regression.log" >&2 || true
        fi
    done
done
if [ ${#still[@]} -gt 0 ]; then
    log "regression inputs that still crash: ${still[*]}"
    failed=1
fi

# ---- fuzz ----------------------------------------------------------------------
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }

rows=()
for t in $TARGETS; do
    corpus=$WORK/corpus/$t
    artifacts=$WORK/artifacts/$t
    mkdir -p "$corpus" "$artifacts" "$WORK/tmp"
    log "$t: ${SECONDS_EACH}s"
    start=$(date +%s)
    rc=0
    # The first folder is where new inputs go; the committed seeds are only read.
    # TMPDIR: policy_file makes its folder of fixture files there; it goes with $WORK.
    TMPDIR=$WORK/tmp "$BIN_DIR/$t" "$corpus" "$FUZZ/corpus/$t" \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -rss_limit_mb="$RSS_LIMIT_MB" -timeout="$TIMEOUT" \
        -artifact_prefix="$artifacts/" >"$WORK/$t.log" 2>&1 || rc=$?
    took=$(($(date +%s) - start))
    execs=$(stat number_of_executed_units "$WORK/$t.log")
    rate=$(stat average_exec_per_sec "$WORK/$t.log")
    added=$(stat new_units_added "$WORK/$t.log")
    crashes=$(find "$artifacts" -type f | wc -l)
    if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then
        crashes=1 # died without writing its input (killed, out of memory in setup)
    fi
    rows+=("$(printf '%-14s %12s %6s %10s %6s %8s' "$t" "${execs:-?}" "$took" "${rate:-?}" "${added:-?}" "$crashes")")
    if [ "$crashes" != 0 ]; then
        failed=1
        KEEP=1
        grep -m3 -E "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY" "$WORK/$t.log" >&2 || true
        find "$artifacts" -type f -printf 'fuzz: %f written to %p\n' >&2
        log "$t log: $WORK/$t.log; minimize with: cargo fuzz tmin --sanitizer $SANITIZER $t <input>"
    fi
done

printf '%-14s %12s %6s %10s %6s %8s\n' target executions secs exec/s new crashes
printf '%s\n' "${rows[@]}"
if [ "$failed" != 0 ]; then
    log "FAILED: see the inputs above; save a minimized one as fuzz/regressions/TARGET-N"
    exit 1
fi
log "no crashes"
