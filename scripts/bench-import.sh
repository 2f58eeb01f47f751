#!/bin/sh
# The import benchmark (docs/scale.md, "Import and coverage"): builds the release binary, starts
# `sgpolicy sim` with N_GROUPS groups (10,000) spread over REGIONS regions (4) and 25 VPCs per region,
# 20 ms latency and a quota of 50 requests/s per region and action, then
#   1. `sgpolicy import` of every region at the agent's default --max-rps 20 (MAX_RPS to change it):
#      wall time, the ideal the rate limit allows, and the calls as the agent and the simulator
#      counted them against the formula ceil(n_region / 100) listings + n reads;
#   2. the round trip: `validate` and a --dry-run --detailed-exitcode pass over the imported folder;
#   3. the coverage survey's extra calls: the same dry run with --report-ungoverned.
# Passes 2 and 3 run with the throttle lifted and --max-rps 1000: they measure calls, not time.
# Usage: scripts/bench-import.sh   (environment: N_GROUPS, REGIONS, MAX_RPS, PORT)
set -eu
cd "$(dirname "$0")/.."
N_GROUPS=${N_GROUPS:-10000}
REGIONS=${REGIONS:-4}
MAX_RPS=${MAX_RPS:-20}
PORT=${PORT:-18777}
cargo build --release --quiet --bin sgpolicy
bin=target/release/sgpolicy
work=$(mktemp -d)
sim=
cleanup() {
    if [ -n "$sim" ]; then kill "$sim" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

python3 - "$N_GROUPS" "$REGIONS" > "$work/seed.yaml" <<'PY'
import sys
n, regions = int(sys.argv[1]), int(sys.argv[2])
names = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1", "eu-central-1", "us-west-1"][:regions]
print("accessKeys:\n  - {id: benchid, secret: benchsecret}\nsecurityGroups:")
for i in range(n):
    r = names[i % len(names)]
    policy = "Drop" if i % 3 else "Accept"
    print(f"  - {{id: sg-bench{i:07d}, region: {r}, innerAccessPolicy: {policy}, vpcId: vpc-{r}-{i % 25:02d}, name: app-{i}, tags: {{team: t{i % 7}}}}}")
PY

"$bin" sim --listen "127.0.0.1:$PORT" --seed "$work/seed.yaml" > "$work/sim.log" 2>&1 &
sim=$!
url="http://127.0.0.1:$PORT"
admin() { # METHOD PATH [BODY]: an admin call to the simulator, its JSON answer on stdout
    python3 - "$1" "$url$2" "${3:-}" <<'PY'
import sys, time, urllib.request
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
for attempt in range(100):
    try:
        req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                     headers={"content-type": "application/json"})
        print(urllib.request.urlopen(req).read().decode())
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(f"simulator at {url} does not answer")
PY
}
count() { # ACTION: requests the simulator answered for ACTION so far
    admin GET /_sim/counts | python3 -c "import json,sys; print(json.load(sys.stdin)['byAction'].get('$1', 0))"
}
admin POST /_sim/faults '{"latencyMs": 20, "throttle": {"DescribeSecurityGroups": {"perSecond": 50}, "DescribeSecurityGroupAttribute": {"perSecond": 50}}}' > /dev/null

export ALIBABA_CLOUD_ENDPOINT_ECS="$url" ALIBABA_CLOUD_ACCESS_KEY_ID=benchid \
    ALIBABA_CLOUD_ACCESS_KEY_SECRET=benchsecret ALIBABA_CLOUD_ECS_METADATA_DISABLED=true RUST_LOG=warn
regions=$(python3 -c "print(' '.join('--region ' + r for r in ['cn-hangzhou', 'cn-shanghai', 'cn-beijing', 'ap-southeast-1', 'eu-central-1', 'us-west-1'][:$REGIONS]))")
start=$(date +%s.%N)
# shellcheck disable=SC2086 # one word per flag and region
"$bin" import $regions --out "$work/out" --mode observe --max-rps "$MAX_RPS" > /dev/null 2> "$work/import.log"
end=$(date +%s.%N)
throttled=$(admin GET /_sim/counts | python3 -c "import json,sys; print(json.load(sys.stdin)['byFault'].get('throttle', 0))")
lists=$(count DescribeSecurityGroups)
reads=$(count DescribeSecurityGroupAttribute)
python3 - "$N_GROUPS" "$REGIONS" "$MAX_RPS" "$start" "$end" "$lists" "$reads" <<'PY'
import math, sys
n, regions, rps = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
start, end, lists, reads = float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
per_region = [n // regions + (1 if r < n % regions else 0) for r in range(regions)]
want_lists = sum(math.ceil(k / 100) for k in per_region)
rate = min(rps, 50)  # the simulator's quota caps the rate whatever --max-rps says
ideal = max(math.ceil(k / 100) / rate for k in per_region) + max(k / rate for k in per_region)
wall = end - start
print(f"import: {n} groups in {regions} regions at --max-rps {rps:g} (quota 50/s): {wall:.1f} s wall, ideal {ideal:.1f} s (ratio {wall / ideal:.3f})")
print(f"import calls (simulator): {lists} DescribeSecurityGroups (formula {want_lists}), {reads} DescribeSecurityGroupAttribute (formula {n})")
PY
tail -n 1 "$work/import.log"
echo "throttled answers: $throttled"
echo "files written: $(ls "$work/out" | wc -l)"

admin POST /_sim/faults '{}' > /dev/null
"$bin" validate "$work/out"
before=$(count DescribeSecurityGroups)
rc=0
"$bin" --policies "$work/out" --once --dry-run --detailed-exitcode --max-rps 1000 --output json > "$work/plan.json" || rc=$?
echo "round trip: dry run exit $rc ($(python3 -c "import json; s=json.load(open('$work/plan.json'))['summary']; print(f\"{s['inSync']} in sync, {s['wouldChange']} to change, {s['errors']} errors\")"))"
plain=$(( $(count DescribeSecurityGroups) - before ))
before=$(count DescribeSecurityGroups)
"$bin" --policies "$work/out" --once --dry-run --report-ungoverned --max-rps 1000 --output json > "$work/covered.json"
covered=$(( $(count DescribeSecurityGroups) - before ))
echo "coverage: a pass makes $plain DescribeSecurityGroups calls, $covered with --report-ungoverned: $((covered - plain)) extra; $(python3 -c "import json; print(len(json.load(open('$work/covered.json'))['ungoverned']))") ungoverned"
