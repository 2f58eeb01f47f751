//! Under each simulator fault mode every group converges, no group gets more effective writes than it
//! needs (the ClientToken makes retries harmless), and the pass reports what really happened: its
//! `apiCalls` match the simulator's call log and its retry/throttle counters are non-zero when they
//! should be.

use crate::harness::*;
use serde_json::{json, Value};
use sgpolicy_sim::Policy;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::collections::BTreeMap;

const REGIONS: [&str; 3] = ["cn-hangzhou", "cn-shanghai", "eu-central-1"];

/// `n` groups spread over three regions, every `drift_every`-th one drifted (Accept, desired Drop).
struct Fleet {
    groups: Vec<(String, String, bool)>,
    folder: Folder,
}

impl Fleet {
    fn new(n: usize, drift_every: usize) -> (Fleet, Seed) {
        let groups: Vec<(String, String, bool)> = (0..n)
            .map(|i| {
                let region = REGIONS[i % REGIONS.len()].to_string();
                (region, format!("sg-fleet-{i:05}"), i % drift_every == 0)
            })
            .collect();
        let mut seed = Seed::new();
        let mut file = PolicyFile::new();
        for (region, id, drift) in &groups {
            seed = seed.group(region, id, if *drift { Accept } else { Drop });
            file = file.group_in_region(region, id, Drop);
        }
        let folder = Folder::new().file("fleet.yaml", file.yaml());
        (Fleet { groups, folder }, seed)
    }

    fn drifted(&self) -> usize {
        self.groups.iter().filter(|g| g.2).count()
    }
}

/// Runs one apply under `faults` and checks convergence, effective writes and truthful reporting.
async fn converges_under(faults: Value, extra: &[&str]) -> Run {
    let (fleet, seed) = Fleet::new(30, 3);
    let sim = Sim::start(&seed).await;
    sim.faults(faults).await;
    let run = once(&sim, &fleet.folder, extra).await;
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.json();
    assert_eq!(
        report["summary"]["changed"],
        fleet.drifted(),
        "{}",
        run.stdout
    );
    assert_eq!(
        report["summary"]["inSync"],
        fleet.groups.len() - fleet.drifted()
    );
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["summary"]["errors"], 0);
    for (region, id, _) in &fleet.groups {
        assert_eq!(
            sim.policy(region, id),
            Policy::Drop,
            "{region}/{id} converged"
        );
    }
    // Exactly one effective write per drifted group, none for the rest.
    let mut effective: BTreeMap<String, usize> = BTreeMap::new();
    for c in sim.effective_writes() {
        *effective
            .entry(c.group_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = fleet
        .groups
        .iter()
        .filter(|g| g.2)
        .map(|g| (g.1.clone(), 1))
        .collect();
    assert_eq!(effective, expected);
    // Every retry of one write carried the same token.
    let mut tokens: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for c in sim.writes() {
        if let (Some(g), Some(t)) = (c.group_id, c.client_token) {
            tokens.entry(g).or_default().insert(t);
        }
    }
    assert!(tokens.values().all(|t| t.len() == 1), "{tokens:?}");
    // What the pass says it sent is what the simulator received.
    let mut logged: BTreeMap<String, u64> = BTreeMap::new();
    for c in sim.calls() {
        *logged.entry(c.action).or_default() += 1;
    }
    let reported: BTreeMap<String, u64> =
        serde_json::from_value(report["apiCalls"].clone()).expect("apiCalls is a map of counts");
    assert_eq!(reported, logged, "apiCalls against the simulator's log");
    run
}

fn counter(run: &Run, name: &str) -> u64 {
    run.json()["apiRetries"][name].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_converge_under_latency_with_jitter() {
    let run = converges_under(json!({"latencyMs": 5, "latencyJitterMs": 30}), &[]).await;
    assert_eq!(counter(&run, "retried"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_converge_when_a_fraction_of_requests_get_5xx() {
    let run = converges_under(json!({"serverErrorRate": 0.3}), &[]).await;
    assert!(counter(&run, "retried") > 0, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_converge_when_connections_are_reset() {
    let run = converges_under(json!({"resetRate": 0.25}), &[]).await;
    assert!(counter(&run, "retried") > 0, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_converge_when_requests_hang_past_the_request_timeout() {
    let faults = json!({"hangRate": 0.1, "hangMs": 5000});
    let run = converges_under(faults, &["--request-timeout", "400ms"]).await;
    assert!(counter(&run, "retried") > 0, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn applied_writes_whose_response_was_lost_are_not_applied_twice() {
    let (fleet, seed) = Fleet::new(30, 3);
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"lostResponseRate": 0.5})).await;
    let run = once(&sim, &fleet.folder, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["summary"]["changed"], fleet.drifted());
    assert_eq!(sim.effective_writes().len(), fleet.drifted());
    // Some writes were applied with their answer lost and then replayed from the token store.
    assert!(
        sim.writes().iter().any(|c| c.replayed),
        "no write was replayed"
    );
    // And the full invariant set holds on a fresh account.
    converges_under(json!({"lostResponseRate": 0.3}), &[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_at_the_quota_slows_the_pass_but_fails_no_group() {
    // The client is allowed far more than the simulated quota: it must adapt, not fail.
    let faults = json!({"throttle": {
        "ModifySecurityGroupPolicy": {"perSecond": 3},
        "DescribeSecurityGroupAttribute": {"perSecond": 20, "retryAfter": true},
    }});
    let run = converges_under(faults, &["--max-rps", "200"]).await;
    assert!(counter(&run, "throttled") > 0, "{}", run.stdout);
    let summary = run.stdout.clone();
    assert!(
        run.json()["apiRetries"]["throttled"].as_u64().is_some(),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_rate_below_the_quota_is_never_throttled() {
    let faults = json!({"throttle": {
        "DescribeSecurityGroupAttribute": {"perSecond": 30},
        "ModifySecurityGroupPolicy": {"perSecond": 30},
        "DescribeSecurityGroups": {"perSecond": 30},
    }});
    let run = converges_under(faults, &["--max-rps", "20"]).await;
    assert_eq!(counter(&run, "throttled"), 0, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_unfinished_at_the_pass_deadline_are_reported_as_errors() {
    let (fleet, seed) = Fleet::new(12, 3);
    let sim = Sim::start(&seed).await;
    // Every request hangs far longer than the pass may take.
    sim.faults(json!({"hangRate": 1.0, "hangMs": 30000})).await;
    let run = once(&sim, &fleet.folder, &["--pass-timeout", "1s"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let groups = report["groups"].as_array().expect("groups");
    assert_eq!(
        groups.len(),
        fleet.groups.len(),
        "no group silently dropped"
    );
    for g in groups {
        assert_eq!(g["outcome"], "error", "{g}");
        assert_eq!(g["error"]["code"], "PassDeadlineExceeded", "{g}");
    }
    assert!(sim.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn text_summary_counts_retries_and_throttles() {
    let (fleet, seed) = Fleet::new(9, 3);
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"serverErrorRate": 0.25})).await;
    let dir = fleet.folder.path().to_str().expect("utf-8").to_string();
    let run = run(&sim, &["--policies", &dir, "--once"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(" retried, 0 throttled)"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_calls_do_not_use_up_the_retry_attempts() {
    use sgpolicy::ecs::credentials::Secret;
    use sgpolicy::ecs::{ClientConfig, Credentials, EcsClient};
    use sgpolicy::model::GroupKey;
    use std::sync::Arc;

    let ids: Vec<String> = (0..8).map(|i| format!("sg-t-{i}")).collect();
    let sim = Sim::start(&Seed::new().groups("cn-hangzhou", &ids, Accept)).await;
    sim.faults(json!({"throttle": {"ModifySecurityGroupPolicy": {"perSecond": 2}}}))
        .await;
    // Two attempts only: if throttled answers counted as attempts, most of these writes would fail.
    let config = ClientConfig {
        endpoint: Some(sim.url.clone()),
        max_attempts: 2,
        rate_limits: sgpolicy::ecs::limit::RateLimits {
            default_rps: 100.0,
            ..Default::default()
        },
        ..ClientConfig::default()
    };
    let creds = Credentials {
        access_key_id: "testid".into(),
        access_key_secret: Secret::new("testsecret"),
        security_token: None,
    };
    let client = EcsClient::new(config, Arc::new(creds)).expect("client");
    let writes = ids.iter().map(|id| {
        let client = client.clone();
        let key = GroupKey::new("cn-hangzhou".to_string(), id.clone());
        async move {
            client
                .modify_policy(
                    &key,
                    sgpolicy::model::Policy::Drop,
                    &format!("tok-{}", key.id),
                )
                .await
        }
    });
    let results = futures::future::join_all(writes).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(client.stats().throttled() > 0, "the quota was hit");
    assert_eq!(
        client.stats().retries(),
        0,
        "throttles are not counted as retries"
    );
    assert_eq!(sim.effective_writes().len(), ids.len());
}
