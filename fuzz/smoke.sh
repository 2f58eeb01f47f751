#!/bin/sh
# Fuzz smoke run for CI: each target for a few seconds over the committed corpus (replayed first, so
# every past finding is a regression test). New inputs go to a temporary directory, not the checkout.
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). Usage: fuzz/smoke.sh [seconds]
set -eu
cd "$(dirname "$0")"
secs="${1:-10}"
for t in policy_file sign_canonical sim_request; do
  scratch="$(mktemp -d)"
  cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- -max_total_time="$secs" -timeout=10 2>&1 | tail -n 3
  rm -rf "$scratch"
done
