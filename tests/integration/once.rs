//! One-shot apply and dry-run against the simulator: writes, exit codes, errors by class, tokens.

use crate::harness::*;
use serde_json::json;
use sgpolicy_sim::Policy::{Accept, Drop};
use sgpolicy_sim::{CallRecord, Policy};

const HZ: &str = "cn-hangzhou";

fn two_drifted_one_in_sync() -> (Seed, Folder) {
    let seed = Seed::new()
        .groups(HZ, ["sg-drift-1", "sg-drift-2"], Accept)
        .group(HZ, "sg-insync-1", Drop)
        .group(HZ, "sg-undeclared", Accept);
    // Kept as text: sg-drift-2's `drop` is in lower case on purpose (the values are case-insensitive).
    let folder = Folder::with(&[(
        "prod.yaml",
        "region: cn-hangzhou\ngroups:\n  - id: sg-drift-1\n    innerAccessPolicy: Drop\n  - id: sg-drift-2\n    innerAccessPolicy: drop\n  - id: sg-insync-1\n    innerAccessPolicy: Drop\n",
    )]);
    (seed, folder)
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_is_fixed_with_one_write_per_drifted_group_and_none_for_the_rest() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let writes = sim.writes();
    let mut written: Vec<_> = writes.iter().filter_map(|c| c.group_id.clone()).collect();
    written.sort();
    assert_eq!(written, ["sg-drift-1", "sg-drift-2"]);
    assert!(writes.iter().all(|c| c.effective));
    assert_eq!(sim.policy(HZ, "sg-drift-1"), Policy::Drop);
    assert_eq!(sim.policy(HZ, "sg-undeclared"), Policy::Accept);
    assert_eq!(run.group("sg-drift-1")["outcome"], "changed");
    assert_eq!(run.group("sg-insync-1")["outcome"], "in-sync");
    // Minimum reads: one DescribeSecurityGroups for the region, one attribute read per group,
    // plus one verification read per write.
    assert_eq!(sim.calls_of("DescribeSecurityGroups").len(), 1);
    assert_eq!(sim.calls_of("DescribeSecurityGroupAttribute").len(), 3 + 2);

    let second = once(&sim, &folder, &[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(sim.writes().len(), 2, "a second pass must not write");
    assert_eq!(second.json()["summary"]["inSync"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_writes_nothing_and_detailed_exitcode_reports_drift() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let run = once(&sim, &folder, &["--dry-run", "--detailed-exitcode"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(sim.writes().is_empty());
    let g = run.group("sg-drift-1");
    assert_eq!(g["outcome"], "would-change");
    assert_eq!(g["observed"], "Accept");
    assert_eq!(g["desired"], "Drop");
    assert!(g["token"]
        .as_str()
        .is_some_and(|t| t.starts_with("sgpolicy-")));
    assert_eq!(run.json()["dryRun"], true);

    // Without --detailed-exitcode a plan with drift is still a success.
    assert_eq!(once(&sim, &folder, &["--dry-run"]).await.code, 0);
    // After an apply, the same plan is in sync: exit 0.
    assert_eq!(once(&sim, &folder, &[]).await.code, 0);
    let clean = once(&sim, &folder, &["--dry-run", "--detailed-exitcode"]).await;
    assert_eq!(clean.code, 0, "{}", clean.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn text_output_shows_changes_and_a_summary_and_logs_stay_off_stdout() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let dir = folder.path().to_str().unwrap().to_string();
    let run = run(&sim, &["--policies", &dir, "--once", "--dry-run"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("will change Accept -> Drop"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("prod.yaml:3:5"),
        "source location: {}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Plan: 2 to change, 1 in sync, 0 errors"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("sg-insync-1"),
        "in-sync groups stay quiet: {}",
        run.stdout
    );
    assert!(!run.stdout.contains("DEBUG") && !run.stdout.contains(" INFO "));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_unmanageable_groups_are_errors_while_others_are_fixed() {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-ok", Accept)
            .group(HZ, "sg-ent", Accept)
            .enterprise()
            .group(HZ, "sg-managed", Accept)
            .managed_by_service("1679259531804325")
            .group(HZ, "sg-managed-insync", Drop)
            .service_managed(),
    )
    .await;
    let folder = Folder::new().file(
        "a.yaml",
        PolicyFile::in_region(HZ)
            .groups(
                [
                    "sg-ok",
                    "sg-ent",
                    "sg-managed",
                    "sg-managed-insync",
                    "sg-missing",
                ],
                Drop,
            )
            .yaml(),
    );
    // The dry run already knows which groups cannot be managed.
    let plan = once(&sim, &folder, &["--dry-run", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 1, "{}", plan.stdout);
    assert_eq!(plan.group("sg-ent")["action"], "unmanageable");
    assert_eq!(plan.group("sg-managed")["action"], "unmanageable");
    assert!(plan.group("sg-managed")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1679259531804325"));
    assert_eq!(plan.group("sg-missing")["action"], "not-found");
    assert_eq!(plan.group("sg-managed-insync")["outcome"], "in-sync");

    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.group("sg-ok")["outcome"], "changed");
    let written: Vec<_> = sim
        .writes()
        .iter()
        .filter_map(|c| c.group_id.clone())
        .collect();
    assert_eq!(
        written,
        ["sg-ok"],
        "no write may be attempted on an unmanageable group"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried_with_the_same_token() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"failNext": [
        {"action": "ModifySecurityGroupPolicy", "status": 503, "code": "ServiceUnavailable", "message": "busy"},
        {"action": "ModifySecurityGroupPolicy", "status": 400, "code": "Throttling.User", "message": "Request was denied due to user flow control."},
        {"action": "DescribeSecurityGroups", "status": 500, "code": "InternalError", "message": "oops"},
        {"action": "ModifySecurityGroupPolicy", "status": 403, "code": "LastTokenProcessing", "message": "in progress"}
    ]}))
    .await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(sim.policy(HZ, "sg-drift-1"), Policy::Drop);
    assert_eq!(sim.policy(HZ, "sg-drift-2"), Policy::Drop);
    for id in ["sg-drift-1", "sg-drift-2"] {
        let tokens: std::collections::BTreeSet<_> = sim
            .writes()
            .iter()
            .filter(|c| c.group_id.as_deref() == Some(id))
            .filter_map(|c| c.client_token.clone())
            .collect();
        assert_eq!(
            tokens.len(),
            1,
            "{id}: every retry sends the same token: {tokens:?}"
        );
        assert_eq!(
            sim.effective_writes()
                .iter()
                .filter(|c| c.group_id.as_deref() == Some(id))
                .count(),
            1
        );
    }
    assert_eq!(
        sim.writes().len(),
        2 + 3,
        "three scripted write failures were retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_response_is_retried_with_the_same_token_and_applied_once() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new().file(
        "a.yaml",
        PolicyFile::new().group_in_region(HZ, "sg-a", Drop).yaml(),
    );
    sim.faults(json!({"failNext": [
        {"action": "ModifySecurityGroupPolicy", "status": 500, "code": "InternalError", "message": "lost", "applyFirst": true}
    ]}))
    .await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let writes = sim.writes();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0].client_token, writes[1].client_token);
    assert_eq!(sim.effective_writes().len(), 1);
    assert!(
        writes[1].replayed,
        "the retry is answered from ECS's token memory"
    );
    assert_eq!(run.group("sg-a")["outcome"], "changed");
}

#[tokio::test(flavor = "multi_thread")]
async fn per_group_write_errors_do_not_stop_other_groups() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"failNext": [
        {"action": "ModifySecurityGroupPolicy", "status": 403, "code": "InvalidOperation.ResourceManagedByCloudProduct", "message": "managed"}
    ]}))
    .await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1);
    let outcomes: Vec<_> = ["sg-drift-1", "sg-drift-2"]
        .iter()
        .map(|id| run.group(id)["outcome"].clone())
        .collect();
    assert!(
        outcomes.contains(&json!("failed")) && outcomes.contains(&json!("changed")),
        "{outcomes:?}"
    );
    assert_eq!(sim.writes().len(), 2, "a per-group error is not retried");
    let failed = ["sg-drift-1", "sg-drift-2"]
        .iter()
        .map(|id| run.group(id))
        .find(|g| g["outcome"] == "failed")
        .unwrap();
    assert_eq!(
        failed["error"]["code"],
        "InvalidOperation.ResourceManagedByCloudProduct"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fatal_errors_stop_the_pass_before_any_write() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"failNext": [
        {"action": "DescribeSecurityGroups", "status": 403, "code": "Forbidden.RAM", "message": "User not authorized"}
    ]}))
    .await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1);
    assert!(sim.writes().is_empty());
    assert_eq!(run.json()["fatal"]["code"], "Forbidden.RAM");
    assert_eq!(
        sim.calls().len(),
        1,
        "no call after a fatal error: {:?}",
        sim.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_read_reaches_the_json_report_with_its_code_and_the_words_ecs_answered() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"failNext": [
        {"action": "DescribeSecurityGroups", "status": 403, "code": "Forbidden.RAM", "message": "User not authorized"}
    ]}))
    .await;
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1);
    for id in ["sg-drift-1", "sg-drift-2", "sg-insync-1"] {
        let group = run.group(id);
        assert_eq!(group["action"], "read-failed", "{id}: {group}");
        assert_eq!(group["outcome"], "error", "{id}: {group}");
        assert_eq!(group["error"]["code"], "Forbidden.RAM", "{id}: {group}");
        let message = group["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(
                "DescribeSecurityGroups: Forbidden.RAM (HTTP 403): User not authorized"
            ),
            "{id}: the failure's own words, not glued twice: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_fatal_and_never_printed() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let dir = folder.path().to_str().unwrap().to_string();
    let run = run(
        &sim,
        &["--policies", &dir, "--once", "--output", "json"],
        &[(
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
            Some("wrong-secret-value"),
        )],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["fatal"]["code"], "SignatureDoesNotMatch");
    assert!(sim.writes().is_empty());
    assert!(
        !run.stdout.contains("wrong-secret-value") && !run.stderr.contains("wrong-secret-value")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_exit_1_naming_the_variable_before_any_request() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let dir = folder.path().to_str().unwrap().to_string();
    let run = run(
        &sim,
        &["--policies", &dir, "--once"],
        &[("ALIBABA_CLOUD_ACCESS_KEY_SECRET", None)],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        "{}",
        run.stderr
    );
    assert!(sim.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_recurring_ten_times_in_one_token_window_is_corrected_every_time_with_at_most_two_writes(
) {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new().file(
        "a.yaml",
        PolicyFile::new().group_in_region(HZ, "sg-a", Drop).yaml(),
    );
    assert_eq!(once(&sim, &folder, &[]).await.code, 0);
    // Someone flips it back in the console, ten times within seconds (one 10-minute token window,
    // unless the test happens to straddle a boundary); ECS replays the shared token each time.
    for flip in 1..=10 {
        assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
        let before = sim.writes().len();
        let run = once(&sim, &folder, &[]).await;
        assert_eq!(run.code, 0, "flip {flip}: {}", run.stderr);
        assert_eq!(
            sim.policy(HZ, "sg-a"),
            Policy::Drop,
            "flip {flip} corrected"
        );
        let writes = sim.writes()[before..].to_vec();
        assert!(
            (1..=2).contains(&writes.len()),
            "flip {flip}: at most two writes per correction: {writes:?}"
        );
        let last = writes.last().unwrap();
        assert!(last.effective, "flip {flip}: {writes:?}");
        assert_eq!(run.group("sg-a")["token"], json!(last.client_token));
    }
    let writes = sim.writes();
    assert_eq!(sim.effective_writes().len(), 11, "{writes:?}");
    let effective: std::collections::BTreeSet<_> = sim
        .effective_writes()
        .iter()
        .map(|c| c.client_token.clone())
        .collect();
    assert_eq!(
        effective.len(),
        11,
        "every correction took effect under its own token"
    );
    let first_attempt =
        |c: &&CallRecord| c.client_token.as_deref().is_some_and(|t| t.contains("-0-"));
    assert!(
        writes
            .iter()
            .filter(|c| !c.effective)
            .all(|c| first_attempt(&c)),
        "only a shared (first) token is ever replayed: {writes:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_racing_on_the_same_drift_apply_it_once() {
    let (seed, folder) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    sim.faults(json!({"latencyMs": 50})).await;
    let dir = folder.path().to_str().unwrap().to_string();
    let args = ["--policies", dir.as_str(), "--once", "--output", "json"];
    let other_key = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", Some("otherid")),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", Some("othersecret")),
    ];
    let (a, b) = tokio::join!(run(&sim, &args, &[]), run(&sim, &args, &other_key));
    assert_eq!((a.code, b.code), (0, 0), "{}\n{}", a.stderr, b.stderr);
    for id in ["sg-drift-1", "sg-drift-2"] {
        let writes: Vec<_> = sim
            .writes()
            .into_iter()
            .filter(|c| c.group_id.as_deref() == Some(id))
            .collect();
        assert_eq!(writes.len(), 2, "each agent writes once: {writes:?}");
        assert_eq!(
            writes[0].client_token, writes[1].client_token,
            "both agents derive the same token"
        );
        assert_ne!(writes[0].access_key_id, writes[1].access_key_id);
        assert_eq!(
            writes.iter().filter(|c| c.effective).count(),
            1,
            "ECS applies it once"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_policy_folder_reports_every_error_and_sends_no_request() {
    let (seed, _) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    let folder = Folder::with(&[
        (
            "good.yaml",
            "region: cn-hangzhou\ngroups:\n  - {id: sg-drift-1, innerAccessPolicy: Drop}\n",
        ),
        (
            "bad/typo.yaml",
            "region: cn-hangzhou\ngroups:\n  - id: sg-drift-2\n    innerAcessPolicy: Drop\n",
        ),
        (
            "bad/value.yml",
            "groups:\n  - id: sg-insync-1\n    region: cn-hangzhou\n    innerAccessPolicy: Allow\n",
        ),
        (
            "conflict.yaml",
            "region: cn-hangzhou\ngroups:\n  - {id: sg-drift-1, innerAccessPolicy: Accept}\n",
        ),
    ]);
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1);
    assert!(
        sim.calls().is_empty(),
        "no request at all: {:?}",
        sim.calls()
    );
    let errors = run.json()["errors"].as_array().cloned().unwrap();
    // typo.yaml: the unknown field and the then-missing innerAccessPolicy; value.yml; the conflict.
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(run.stderr.contains("typo.yaml:4:5:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("innerAccessPolicy"),
        "did-you-mean hint: {}",
        run.stderr
    );
    assert!(run.stderr.contains("value.yml:4:24:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("good.yaml:3:"),
        "conflict names the other side: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_64() {
    let sim = Sim::start(&Seed::new()).await;
    let r = run(&sim, &["--once"], &[]).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("--policies"));
    let r = run(&sim, &["--policies", "x", "--once", "--no-such-flag"], &[]).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(sim.calls().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_policy_file_is_an_error_and_sends_no_request() {
    let (seed, _) = two_drifted_one_in_sync();
    let sim = Sim::start(&seed).await;
    // What a file truncated by a bad merge looks like: its groups must not silently stop being governed.
    let folder = Folder::with(&[
        (
            "good.yaml",
            "region: cn-hangzhou\ngroups:\n  - {id: sg-drift-1, innerAccessPolicy: Drop}\n",
        ),
        ("truncated.yaml", ""),
        ("comments.yaml", "# groups: moved elsewhere\n"),
        ("meant-to-be-empty.yaml", "groups: []\n"),
    ]);
    let run = once(&sim, &folder, &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(sim.calls().is_empty(), "no request: {:?}", sim.calls());
    assert!(
        run.stderr.contains("truncated.yaml:1:1: the file is empty"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("comments.yaml:1:1: the file is empty"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("meant-to-be-empty.yaml"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["errors"].as_array().map(Vec::len), Some(2));
}
