#!/bin/sh
# The events benchmark (docs/events.md): builds the release binary and the driver, then runs the daemon
# with ActionTrail polling and EventBridge push against 10,000 simulated groups at the default budget,
# timing console flips from flip to correction. Extra arguments go to the driver, e.g.
# scripts/bench-events.sh --groups 2000 --flips 20.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin sgpolicy --example bench_events
exec target/release/examples/bench_events "$@"
