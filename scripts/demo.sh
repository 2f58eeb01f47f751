#!/usr/bin/env bash
# The README's first command: run sgpolicy against the built-in ECS simulator with examples/policies.
# No account needed; everything stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bin sgpolicy
bin=target/debug/sgpolicy
tmp=$(mktemp -d)
trap 'kill "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

"$bin" sim --listen 127.0.0.1:0 --seed examples/sim-seed.yaml >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
for _ in $(seq 1 100); do
  grep -q '^listening on ' "$tmp/sim.out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$tmp/sim.out")
[ -n "$url" ] || { echo "the simulator did not start:"; cat "$tmp/sim.err"; exit 1; }

export ALIBABA_CLOUD_ACCESS_KEY_ID=testid ALIBABA_CLOUD_ACCESS_KEY_SECRET=testsecret
export ALIBABA_CLOUD_ENDPOINT_ECS="$url" ALIBABA_CLOUD_ENDPOINT_STS="$url"
echo "# simulator at $url (seed: examples/sim-seed.yaml)"
echo
echo "\$ sgpolicy --policies examples/policies --once --dry-run --detailed-exitcode"
rc=0; "$bin" --policies examples/policies --once --dry-run --detailed-exitcode || rc=$?
echo "(exit $rc: 2 means drift was found)"
echo
echo "\$ sgpolicy --policies examples/policies --once"
"$bin" --policies examples/policies --once
echo
echo "\$ sgpolicy --policies examples/policies --once      # again: nothing to do, no writes"
"$bin" --policies examples/policies --once
echo
echo "\$ sgpolicy --policies examples/policies --once --dry-run --require-isolation   # in sync, but is Drop real?"
rc=0; "$bin" --policies examples/policies --once --dry-run --require-isolation || rc=$?
echo "(exit $rc: 1 means a group declared Drop does not isolate its members)"
echo
echo "\$ sgpolicy --policies examples/accounts --once      # another account, through STS AssumeRole"
"$bin" --policies examples/accounts --once
echo
echo "\$ sgpolicy --policies examples/policies --metrics-addr 127.0.0.1:0 --events-poll 0   # the daemon checks isolation too"
"$bin" --policies examples/policies --metrics-addr 127.0.0.1:0 --events-poll 0 --interval 1h \
  >"$tmp/daemon.out" 2>"$tmp/daemon.err" &
daemon_pid=$!
trap 'kill "$daemon_pid" "$sim_pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
metrics=""
for _ in $(seq 1 300); do
  metrics=$(sed -n 's/.*serving \/metrics, \/healthz and \/readyz on \(http:[^ ]*\).*/\1/p' "$tmp/daemon.err" | head -1)
  [ -n "$metrics" ] && grep -q 'is not isolated' "$tmp/daemon.err" && break
  sleep 0.1
done
grep 'is not isolated' "$tmp/daemon.err" | sed 's/^/  /' || { echo "the daemon reported nothing:"; cat "$tmp/daemon.err"; exit 1; }
[ -n "$metrics" ] && curl -fsS "$metrics/metrics" 2>/dev/null | grep '^sgpolicy_isolation_groups' | sed 's/^/  /' || true
kill -TERM "$daemon_pid"
wait "$daemon_pid" 2>/dev/null || true
