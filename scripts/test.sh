#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests need (the official Alibaba
# Python SDKs, into .venv, used to judge the simulator's fidelity) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import aliyunsdkecs, alibabacloud_ecs20140526, alibabacloud_actiontrail20200706, aliyunsdkactiontrail' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi
export SGPOLICY_PYTHON="$PWD/.venv/bin/python"
# Every crate of the workspace: the agent (unit and integration tests) and the simulator
# (crates/sgpolicy-sim, its own unit tests). Extra arguments go to cargo test.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace "$@" 2>&1 | tee "$log" || status=$?
# cargo prints one "test result:" line per test binary, the last one for whichever crate ran last;
# the run closes with their sum instead.
awk -v status="$status" '
  /^test result: / {
    n++
    if ($3 != "ok.") bad++
    for (i = 4; i <= NF; i++) {
      v = $(i - 1) + 0
      if ($i ~ /^passed/) passed += v
      else if ($i ~ /^failed/) failed += v
      else if ($i ~ /^ignored/) ignored += v
    }
  }
  END {
    verdict = (status == 0 && bad == 0) ? "ok" : "FAILED"
    printf "all tests (%d test binaries of the workspace): %s. %d passed; %d failed; %d ignored", n, verdict, passed, failed, ignored
    if (status != 0 && failed == 0) printf " (cargo test exited %d before or between binaries)", status
    printf "\n"
  }' "$log"
exit "$status"
