#!/usr/bin/env bash
# The simulator (crates/sgpolicy-sim) must never depend on the agent (sgpolicy), by any kind of edge
# (normal, build or dev): it is the agent's test double, and only because it cannot reach the agent's
# signer, parsers and model types can it not share their bugs. Fails, showing the path, if it does.
# Run from anywhere: `bash scripts/check-layers.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
edges=(-p sgpolicy-sim -e normal,build,dev)
tree=$(cargo tree --locked "${edges[@]}" --prefix none --format '{p}')
if grep -qE '^sgpolicy v' <<<"$tree"; then
  echo "layers: sgpolicy-sim depends on the agent (sgpolicy):" >&2
  cargo tree --locked "${edges[@]}" -i sgpolicy >&2 || true
  exit 1
fi
echo "layers: sgpolicy-sim does not depend on sgpolicy"
# Inside the agent: no cycle between top-level modules, nothing below the command line imports cli.
python3 scripts/layers.py
