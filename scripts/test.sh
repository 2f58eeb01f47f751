#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests need (the official Alibaba
# Python SDKs, into .venv, used to judge the simulator's fidelity) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import aliyunsdkecs, alibabacloud_ecs20140526' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi
export SGPOLICY_PYTHON="$PWD/.venv/bin/python"
cargo test --locked "$@"
