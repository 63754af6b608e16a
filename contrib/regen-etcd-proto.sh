#!/usr/bin/env bash
# Regenerates the etcd v3 client stubs that signpost builds from
# (src/fleet/etcd/pb/*.rs) out of the .proto files in src/fleet/etcd/proto/,
# with the generator in contrib/etcd-proto (tonic-prost-build, locked), and
# records the SHA-256 of every input and output in src/fleet/etcd/pb/SHA256SUMS,
# which tests/fleet.rs checks on every test run.
#
#   contrib/regen-etcd-proto.sh          regenerate in place
#   contrib/regen-etcd-proto.sh --check  regenerate into a temporary directory
#                                        and fail if the checked-in files differ
#
# Only this script needs protoc (Debian: protobuf-compiler, and libprotobuf-dev
# for google/protobuf/descriptor.proto); building signpost does not.
# To take newer .proto files: copy them from etcd's api/ tree (and the
# grpc-gateway and googleapis files rpc.proto imports) over those in proto/,
# keep tonic-prost-build at the tonic version in Cargo.toml, run this script,
# then build and run tests/fleet.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v "${PROTOC:-protoc}" >/dev/null 2>&1; then
    echo "regen-etcd-proto: protoc not found; install protobuf-compiler and libprotobuf-dev (Debian), or set PROTOC" >&2
    exit 1
fi

proto=src/fleet/etcd/proto
pb=src/fleet/etcd/pb
gen=contrib/etcd-proto
outputs=(authpb.rs mvccpb.rs etcdserverpb.rs)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=${ETCD_PROTO_TARGET:-${TMPDIR:-/tmp}/signpost-etcd-proto-target}
cargo build --quiet --locked --manifest-path "$gen/Cargo.toml" --target-dir "$target"
mkdir "$work/out"
"$target/debug/etcd-proto" "$proto" "$work/out"

# The sums: the generator and the .proto files it read, then what it wrote,
# each by its path in the repository.
sums() {
    local dir=$1
    {
        (find "$gen" -path "$gen/target" -prune -o -type f -print; find "$proto" -type f -name '*.proto') |
            LC_ALL=C sort | xargs sha256sum
        for f in "${outputs[@]}"; do
            echo "$(sha256sum <"$dir/$f" | cut -d' ' -f1)  $pb/$f"
        done
    }
}

if [ "$check" = 1 ]; then
    status=0
    for f in "${outputs[@]}"; do
        if ! cmp -s "$work/out/$f" "$pb/$f"; then
            echo "regen-etcd-proto: $pb/$f differs from what $proto generates; run $0" >&2
            status=1
        fi
    done
    if ! sums "$work/out" | cmp -s - "$pb/SHA256SUMS"; then
        echo "regen-etcd-proto: $pb/SHA256SUMS is stale; run $0" >&2
        status=1
    fi
    [ "$status" = 0 ] && echo "regen-etcd-proto: $pb is current"
    exit "$status"
fi

mkdir -p "$pb"
for f in "${outputs[@]}"; do
    cp "$work/out/$f" "$pb/$f"
done
sums "$pb" >"$pb/SHA256SUMS"
echo "regen-etcd-proto: wrote ${outputs[*]} and SHA256SUMS in $pb"
