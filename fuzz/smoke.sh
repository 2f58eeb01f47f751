#!/bin/sh
# Fuzz smoke run for CI: each target for a few seconds over the committed corpus (replayed first, so
# every past finding is a regression test). New inputs go to a temporary directory, not the checkout.
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Uses the nightly toolchain with AddressSanitizer when one
# is installed (outside CI); otherwise the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks the -Z flags cargo-fuzz passes)
# without a sanitizer, which still catches panics, hangs and aborts. Usage: fuzz/smoke.sh [seconds]
set -eu
cd "$(dirname "$0")"
secs="${1:-10}"
# In CI the mutations follow a fixed seed, so a red run is reproducible and a green one stays green: new
# findings come from the longer runs outside CI (docs/scale.md, Fuzzing), each then committed to the corpus.
seed=""
[ -n "${CI:-}" ] && seed="-seed=1"
# CI always takes the stable path, the one a fresh machine (stable toolchain only) can take.
if [ -z "${CI:-}" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  run() { cargo +nightly fuzz run "$@"; }
else
  run() { RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$@"; }
fi
for t in policy_file sign_canonical sim_request event_record events_receiver; do
  scratch="$(mktemp -d)"
  log="$scratch.log"
  # A crash, hang or panic makes the run fail; show the whole log then, only the summary otherwise.
  if run "$t" "$scratch" "corpus/$t" -- -max_total_time="$secs" -timeout=10 $seed >"$log" 2>&1; then
    echo "fuzz $t: $(grep -E '^Done [0-9]+ runs' "$log" || tail -n 1 "$log")"
  else
    cat "$log"; echo "fuzz $t: FAILED" >&2; exit 1
  fi
  rm -rf "$scratch" "$log"
done
