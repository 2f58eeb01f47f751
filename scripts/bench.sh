#!/bin/sh
# The scale benchmark (see docs/scale.md): builds the release binary and the bench driver, then runs
# one --once pass over 10,000 simulated groups plus the sequential baseline. Extra arguments are passed
# to the driver, e.g. scripts/bench.sh --no-baseline --quota 100.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin sgpolicy --example bench
exec target/release/examples/bench "$@"
