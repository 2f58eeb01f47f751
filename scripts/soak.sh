#!/usr/bin/env bash
# The soak (docs/daemon.md, "Soak"): the release daemon against `sgpolicy sim` for a given duration with
# ActionTrail pulled (`--events-poll 10s`) and EventBridge pushing to `POST /events`, while
#   - a console user flips a governed group to Accept every few seconds through the simulator's admin
#     path, the groups in turn (each flip is an ActionTrail event, pushed and later pulled);
#   - the simulator answers 5% of API requests 503 (`serverErrorRate`, crates/sgpolicy-sim/src/faults.rs);
#   - the policy folder, a Git repository, gets a commit about every minute that toggles one group's
#     declared value (a real file change the daemon must apply).
# It checks every flip is corrected (the simulator holds Drop again) and every commit applied, and every
# 30 s samples the daemon's RSS and open file descriptors (/proc/PID/status, /proc/PID/fd), printing one
# table row. Exit 0 when every flip was corrected and every commit applied, 1 otherwise.
#
#   scripts/soak.sh [DURATION_SECONDS]        # default 3600
# Environment: SOAK_BIN (target/release/sgpolicy), SOAK_GROUPS (1000), SOAK_FLIP_EVERY (5 s),
# SOAK_COMMIT_EVERY (60 s), SOAK_SAMPLE_EVERY (30 s), SOAK_PATIENCE (300 s: a flip not corrected by
# then counts as failed), SOAK_DIR (a fresh temporary folder; the daemon's log is daemon.log there).
# Build first: cargo build --release --bin sgpolicy.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-3600}
bin=${SOAK_BIN:-${CARGO_TARGET_DIR:-target}/release/sgpolicy}
groups=${SOAK_GROUPS:-1000}
flip_every=${SOAK_FLIP_EVERY:-5}
commit_every=${SOAK_COMMIT_EVERY:-60}
sample_every=${SOAK_SAMPLE_EVERY:-30}
patience=${SOAK_PATIENCE:-300}
dir=${SOAK_DIR:-$(mktemp -d /tmp/sgpolicy-soak.XXXXXX)}
region=cn-hangzhou
token=soak-events-token-0123456789abcdef
[ -x "$bin" ] || { echo "soak: $bin is not built (cargo build --release --bin sgpolicy)" >&2; exit 64; }
mkdir -p "$dir/policies"

gid() { printf 'sg-soak-%05d' "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# The estate: every group declared Drop and held Drop; one more (the commit group) toggled by commits.
{
    echo "accessKeys:"
    echo "  - {id: soakid, secret: soaksecret}"
    echo "securityGroups:"
    for i in $(seq 0 $((groups - 1))); do
        echo "  - {id: $(gid "$i"), region: $region, innerAccessPolicy: Drop}"
    done
    echo "  - {id: sg-soak-commit, region: $region, innerAccessPolicy: Drop}"
} >"$dir/seed.yaml"
{
    echo "region: $region"
    echo "groups:"
    for i in $(seq 0 $((groups - 1))); do
        echo "  - {id: $(gid "$i"), innerAccessPolicy: Drop}"
    done
} >"$dir/policies/estate.yaml"
declared=Drop
printf 'region: %s\ngroups:\n  - {id: sg-soak-commit, innerAccessPolicy: %s}\n' "$region" "$declared" \
    >"$dir/policies/commit.yaml"
git -C "$dir/policies" init -q
git -C "$dir/policies" -c user.name=soak -c user.email=soak@localhost add -A
git -C "$dir/policies" -c user.name=soak -c user.email=soak@localhost commit -qm "soak: start"
printf '%s' "$token" >"$dir/token"

sim_pid='' daemon_pid=''
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
}
trap cleanup EXIT

"$bin" sim --listen 127.0.0.1:0 --seed "$dir/seed.yaml" >"$dir/sim.out" 2>"$dir/sim.err" &
sim_pid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$dir/sim.out" 2>/dev/null && break
    sleep 0.1
done
sim=$(sed -n 's/^listening on //p' "$dir/sim.out")
[ -n "$sim" ] || { echo "soak: the simulator did not start (see $dir/sim.err)" >&2; exit 1; }
events_addr=127.0.0.1:$(free_port)
metrics_addr=127.0.0.1:$(free_port)
post() { curl -fsS -o /dev/null -X POST -H 'content-type: application/json' --data "$2" "$sim$1"; }
post /_sim/actiontrail '{"queryDelaySeconds": 20}'
post /_sim/eventbridge "{\"targets\": [{\"url\": \"http://$events_addr/events\", \"token\": \"$token\", \"delayMs\": 500}]}"
post /_sim/faults '{"serverErrorRate": 0.05}'

env -i PATH="$PATH" \
    ALIBABA_CLOUD_ACCESS_KEY_ID=soakid ALIBABA_CLOUD_ACCESS_KEY_SECRET=soaksecret \
    ALIBABA_CLOUD_ENDPOINT_ECS="$sim" ALIBABA_CLOUD_ECS_METADATA_DISABLED=true RUST_LOG=sgpolicy=info \
    "$bin" --policies "$dir/policies" --metrics-addr "$metrics_addr" \
    --events-addr "$events_addr" --events-token-file "$dir/token" \
    --events-poll 10s --actiontrail-endpoint "$sim" \
    --interval 5m --max-changes 1000 --allow-open \
    >/dev/null 2>"$dir/daemon.log" &
daemon_pid=$!

metric() { # the sum of a metric's series whose line contains $2
    curl -fsS "http://$metrics_addr/metrics" 2>/dev/null |
        awk -v n="$1" -v l="$2" 'index($0, n) == 1 && index($0, l) { s += $NF } END { print s + 0 }'
}
echo "soak: simulator $sim, daemon pid $daemon_pid, events $events_addr, metrics $metrics_addr, folder $dir"
for _ in $(seq 600); do
    [ "$(metric sgpolicy_passes_total 'trigger="startup"')" != 0 ] && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon exited (see $dir/daemon.log)" >&2; exit 1; }
    sleep 1
done

policy_of() { # every group's value in the simulator, as "id value" lines
    curl -fsS "$sim/_sim/groups" | jq -r '.[] | "\(.id) \(.innerAccessPolicy)"'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status"; }
fds() { find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }

declare -A pending=() # group id -> flip time (ms)
flips=0 corrected=0 failed=0 max_ms=0 commits=0 applied=0 commit_pending=0 commit_at=0
rss0=$(rss_kb) fds0=$(fds) rss_max=$rss0 fds_max=$fds0 rss_now=$rss0 fds_now=$fds0
start=$(date +%s) next_flip=$start next_commit=$((start + commit_every)) next_sample=$start
printf '%8s %10s %6s %7s %10s %8s %14s %8s %8s\n' elapsed_s rss_kb fds flips corrected pending \
    max_correct_s commits applied
sample() {
    rss_now=$(rss_kb) fds_now=$(fds)
    ((rss_now > rss_max)) && rss_max=$rss_now
    ((fds_now > fds_max)) && fds_max=$fds_now
    printf '%8d %10d %6d %7d %10d %8d %14.1f %8d %8d\n' $(($(date +%s) - start)) "$rss_now" "$fds_now" \
        "$flips" "$corrected" "${#pending[@]}" "$(echo "$max_ms / 1000" | bc -l)" "$commits" "$applied"
}

while :; do
    t=$(date +%s)
    kill -0 "$daemon_pid" 2>/dev/null || { echo "soak: the daemon exited (see $dir/daemon.log)" >&2; exit 1; }
    running=$((t - start < duration))
    if ((running && t >= next_flip)); then
        # Round robin: each group is flipped once every groups x flip_every seconds (83 min at the
        # defaults), so no group is flipped 3 times within an hour, which the daemon would rightly
        # treat as a fight and hold its corrections back (docs/daemon.md, "Fights").
        g=$(gid $((flips % groups)))
        if [ -z "${pending[$g]:-}" ]; then
            post "/_sim/groups/$region/$g" '{"innerAccessPolicy": "Accept", "actor": {"userName": "soak-console-user"}}'
            pending[$g]=$(now_ms)
            flips=$((flips + 1))
        fi
        next_flip=$((t + flip_every))
    fi
    if ((running && t >= next_commit)) && ((!commit_pending)); then
        [ "$declared" = Drop ] && declared=Accept || declared=Drop
        printf 'region: %s\ngroups:\n  - {id: sg-soak-commit, innerAccessPolicy: %s}\n' "$region" "$declared" \
            >"$dir/policies/commit.yaml"
        git -C "$dir/policies" -c user.name=soak -c user.email=soak@localhost commit -qam "soak: $declared"
        commits=$((commits + 1)) commit_pending=1 commit_at=$(now_ms)
        next_commit=$((t + commit_every))
    fi
    if ((${#pending[@]} > 0 || commit_pending)); then
        now=$(now_ms)
        while read -r id value; do
            if [ "$id" = sg-soak-commit ]; then
                if ((commit_pending)) && [ "$value" = "$declared" ]; then
                    applied=$((applied + 1)) commit_pending=0
                elif ((commit_pending && now - commit_at > patience * 1000)); then
                    echo "soak: commit $commits ($declared) not applied within ${patience}s" >&2
                    failed=$((failed + 1)) commit_pending=0
                fi
                continue
            fi
            [ -n "${pending[$id]:-}" ] || continue
            took=$((now - pending[$id]))
            if [ "$value" = Drop ]; then
                corrected=$((corrected + 1))
                ((took > max_ms)) && max_ms=$took
                unset "pending[$id]"
            elif ((took > patience * 1000)); then
                echo "soak: flip of $id not corrected within ${patience}s" >&2
                failed=$((failed + 1))
                unset "pending[$id]"
            fi
        done < <(policy_of)
    fi
    if ((t >= next_sample)); then
        sample
        next_sample=$((t + sample_every))
    fi
    if ((!running && ${#pending[@]} == 0 && !commit_pending)); then
        break
    fi
    sleep 1
done
sample
echo
echo "soak summary: ${duration}s, $groups groups, a flip every ${flip_every}s, a commit every ${commit_every}s, 5% 503s"
echo "  flips $flips, corrected $corrected, failed $failed, max time to correct $(echo "scale=1; $max_ms / 1000" | bc) s"
echo "  commits $commits, applied $applied"
echo "  RSS kB start $rss0, end $rss_now, max $rss_max; open fds start $fds0, end $fds_now, max $fds_max"
echo "  daemon log: $dir/daemon.log"
((failed == 0 && corrected == flips && applied == commits))
