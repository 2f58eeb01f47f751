#!/usr/bin/env bash
# Validates every file under deploy/ (and .pre-commit-hooks.yaml, the JSON Schema and the examples) with
# real validators that know nothing of sgpolicy's code. On a fresh machine it installs them from PyPI into
# .venv-deploy (deploy/requirements.txt). Run from anywhere: `bash deploy/check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-deploy
if ! cmp -s deploy/requirements.txt "$VENV/installed-requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt
  cp deploy/requirements.txt "$VENV/installed-requirements.txt"
fi
PY="$VENV/bin/python"
# systemd-analyze (Debian's systemd package) verifies the unit; a fresh machine may not have it.
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
# promtool (Debian's prometheus package) checks and unit-tests the alert rules and the dashboard's queries.
if ! command -v promtool >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
out=$(mktemp -d)
chmod 0755 "$out"
trap 'rm -rf "$out"' EXIT

echo "== static binary (the Dockerfile's build command), run as an unprivileged user with no environment"
BUILD='cargo build --locked --release --target x86_64-unknown-linux-gnu'
RUSTFLAGS="-C target-feature=+crt-static" $BUILD
BIN=target/x86_64-unknown-linux-gnu/release/sgpolicy
ldd "$BIN" 2>&1 | grep -qE 'statically linked|not a dynamic executable' || { echo "$BIN is dynamically linked" >&2; exit 1; }
install -m 0755 "$BIN" "$out/sgpolicy"
setpriv --reuid=65532 --regid=65532 --clear-groups env -i "$out/sgpolicy" --version
# The unprivileged user reads a copy in $out: the checkout may live under a folder only its owner can
# traverse (a home directory, a `mktemp -d`), and nothing here may depend on where it lives.
cp -R examples/policies "$out/policies"
chmod -R a+rX "$out/policies"
setpriv --reuid=65532 --regid=65532 --clear-groups env -i "$out/sgpolicy" validate "$out/policies"
"$PY" deploy/check_manifests.py dockerfile deploy/Dockerfile "$BUILD"

echo "== JSON Schema: committed copy is the generated one, is a valid schema, and judges the examples"
"$out/sgpolicy" schema | diff -u deploy/schema/policy.schema.json -
"$VENV/bin/check-jsonschema" --check-metaschema deploy/schema/policy.schema.json
mapfile -t policies < <(find examples/policies examples/accounts deploy/kubernetes -name '*.yaml' -path '*polic*' -not -name kustomization.yaml | sort)
"$VENV/bin/check-jsonschema" --schemafile deploy/schema/policy.schema.json "${policies[@]}"
for f in "${policies[@]}"; do
  grep -q '^# yaml-language-server: \$schema=.*policy.schema.json$' "$f" || { echo "$f lacks the yaml-language-server line" >&2; exit 1; }
done
printf 'groups:\n  - {id: sg-1, innerAccessPolicy: Allow}\n' > "$out/bad.yaml"
printf '# truncated by a bad merge\n' > "$out/empty.yaml"
for bad in "$out/bad.yaml" "$out/empty.yaml"; do
  if "$VENV/bin/check-jsonschema" --schemafile deploy/schema/policy.schema.json "$bad" >/dev/null; then
    echo "the schema accepted a bad policy file: $(cat "$bad")" >&2; exit 1
  fi
done

echo "== Kubernetes: render the kustomizations, validate against the Kubernetes schemas and the operator CRDs"
"$VENV/bin/kubectl" kustomize deploy/kubernetes/base > "$out/base.yaml"
"$VENV/bin/kubectl" kustomize deploy/kubernetes/overlays/configmap > "$out/configmap.yaml"
"$VENV/bin/kubectl" kustomize deploy/kubernetes/overlays/sharded > "$out/sharded.yaml"
# (It has no schema for the PodMonitor and PrometheusRule CRDs and says so; check_manifests.py
# validates those.)
"$VENV/bin/kubernetes-validate" --strict --quiet "$out/base.yaml" "$out/configmap.yaml" "$out/sharded.yaml"
"$PY" deploy/check_manifests.py rendered "$out/base.yaml" "$out/configmap.yaml" "$out/sharded.yaml"
"$PY" deploy/check_manifests.py sharded "$out/sharded.yaml" "$out/base.yaml"

echo "== Prometheus: the sharded overlay's alert rules (promtool check rules, then their unit tests)"
mkdir -p "$out/rules"
"$PY" deploy/check_manifests.py rules "$out/sharded.yaml" "$out/rules/rules.yaml"
promtool check rules "$out/rules/rules.yaml"
cp deploy/kubernetes/overlays/sharded/prometheusrule.test.yaml "$out/rules/"
promtool test rules "$out/rules/prometheusrule.test.yaml"

echo "== Prometheus: deploy/prometheus's alert rules (promtool check rules, then their unit tests)"
promtool check rules deploy/prometheus/sgpolicy-rules.yaml
promtool test rules deploy/prometheus/sgpolicy-rules.test.yaml

echo "== Grafana: the dashboard's JSON as Grafana reads it, and every query's PromQL through promtool"
"$PY" deploy/check_dashboard.py check deploy/grafana/sgpolicy.json src
"$PY" deploy/check_dashboard.py rules deploy/grafana/sgpolicy.json "$out/rules/dashboard.yaml"
promtool check rules "$out/rules/dashboard.yaml"

echo "== systemd: verify the unit (with ExecStart pointing at the binary built above) and its exposure"
mkdir -p "$out/systemd"
sed "s|/usr/local/bin/sgpolicy|$out/sgpolicy|" deploy/systemd/sgpolicy.service > "$out/systemd/sgpolicy.service"
msgs=$(systemd-analyze verify "$out/systemd/sgpolicy.service" 2>&1) || { echo "$msgs" >&2; exit 1; }
if [ -n "$msgs" ]; then echo "$msgs" >&2; exit 1; fi
systemd-analyze security --offline=yes --threshold=20 "$out/systemd/sgpolicy.service" | tail -1

echo "== CI examples and the pre-commit manifest"
"$VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows deploy/ci/github-actions.yml
"$VENV/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci deploy/ci/gitlab-ci.yml
"$VENV/bin/pre-commit" validate-manifest .pre-commit-hooks.yaml
echo "deploy: all checks passed"
