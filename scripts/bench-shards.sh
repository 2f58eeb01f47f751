#!/bin/sh
# Sharding benchmark (docs/scale.md, "Sharding"): 100,000 simulated groups in 32 (account, region)
# buckets (4 accounts × 8 regions), one --once pass by 1 replica, then by SHARDS shards at once (4
# unless SHARDS says otherwise; --shard-index I --shard-count N) against the same kind of simulator;
# prints each replica's wall time, peak RSS and CPU, and the calls of all replicas against the formula.
# Extra arguments go to both runs and override the defaults, e.g.
#   scripts/bench-shards.sh --quota 100 --latency-ms 20          (a quota-bound estate)
#   SHARDS=8 scripts/bench-shards.sh --groups 1000000 --accounts 32
# (a million groups in 256 buckets: at 32 buckets a file would pass the 1 MiB per-file limit).
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin sgpolicy --example bench
common="--no-baseline --groups 100000 --regions 8 --accounts 4 --quota 1000 --latency-ms 5 --concurrency 64"
# shellcheck disable=SC2086
target/release/examples/bench $common --shards 1 "$@"
# shellcheck disable=SC2086
target/release/examples/bench $common --shards "${SHARDS:-4}" "$@"
