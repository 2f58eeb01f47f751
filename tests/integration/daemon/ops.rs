//! The daemon's operations: metrics and health, signals, start-up validation, cloud failures and
//! backoff, fights, dry-run, and the calls of an incremental pass among many groups.

use super::*;
use serde_json::json;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_and_health_report_passes_groups_writes_and_calls_and_the_resync_fixes_a_console_flip(
) {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-a", Accept)
            .group(HZ, "sg-b", Drop)
            .group(HZ, "sg-e", Accept)
            .enterprise(),
    )
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b", "sg-e"], Drop)
            .yaml(),
    );
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1s"]).await;
    let m = d
        .wait_metrics("two interval passes", |m| {
            m.sum("sgpolicy_passes_total", &["trigger=\"interval\""]) >= 2.0
        })
        .await;
    assert_eq!(
        m.get("sgpolicy_passes_total{trigger=\"startup\",outcome=\"group_errors\"}"),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.get("sgpolicy_groups{state=\"in_sync\"}"), 2.0);
    assert_eq!(m.get("sgpolicy_groups{state=\"unmanageable\"}"), 1.0);
    assert_eq!(m.get("sgpolicy_groups{state=\"drifted\"}"), 0.0);
    assert_eq!(m.get("sgpolicy_writes_total{outcome=\"changed\"}"), 1.0);
    assert_eq!(
        m.get("sgpolicy_api_calls_total{action=\"ModifySecurityGroupPolicy\",code=\"OK\"}"),
        sim.writes().len() as f64
    );
    assert_eq!(
        m.sum(
            "sgpolicy_api_calls_total",
            &["action=\"DescribeSecurityGroupAttribute\""]
        ),
        sim.calls_of("DescribeSecurityGroupAttribute").len() as f64,
        "scraped after the passes, so the counts agree with the simulator's log"
    );
    assert!(m.get("sgpolicy_pass_duration_seconds_count{trigger=\"startup\"}") == 1.0);
    assert!(m.get("sgpolicy_last_successful_pass_timestamp_seconds") > 1.7e9);
    assert_eq!(
        m.sum("sgpolicy_policy_revision_info", &["revision=\""]),
        1.0
    );
    assert_eq!(m.get("sgpolicy_policy_load_errors"), 0.0);
    let (status, body) = d.get("/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 200, "{body}");

    // A console flip is corrected by the next resync, and counted.
    assert!(sim.sim.set_policy(HZ, "sg-b", Policy::Accept));
    wait_policy(&sim, "sg-b", Policy::Drop, &d).await;
    d.wait_metrics("the correction", |m| {
        m.get("sgpolicy_writes_total{outcome=\"changed\"}") == 2.0
    })
    .await;
    assert_eq!(writes_to(&sim, "sg-b"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_runs_a_full_pass_now() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Drop)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    d.wait_log("pass finished").await;
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    d.signal("HUP");
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    d.wait_log("trigger=\"signal\"").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_pass_lets_the_in_flight_write_finish_starts_no_new_one_and_exits_0() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Accept)).await;
    sim.faults(json!({"latencyMs": 700})).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    let mut d = Daemon::start(
        &sim,
        folder.path(),
        &["--interval", "1h", "--concurrency", "1"],
    )
    .await;
    // The first write has been sent and takes 700 ms to answer.
    d.wait_log("sending ModifySecurityGroupPolicy").await;
    d.signal("TERM");
    assert_eq!(d.wait_exit().await, 0, "{}", d.log_text());
    assert_eq!(
        sim.policy(HZ, "sg-a"),
        Policy::Drop,
        "the in-flight write completed"
    );
    assert!(sim
        .writes()
        .iter()
        .all(|c| c.effective && c.group_id.as_deref() == Some("sg-a")));
    assert_eq!(
        sim.policy(HZ, "sg-b"),
        Policy::Accept,
        "no new write after SIGTERM"
    );
    assert!(d.log_text().contains("SIGTERM: shutting down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_exits_64_before_binding_a_port_or_sending_a_request() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let dir = folder.path().to_str().unwrap().to_string();
    // The port is taken: a daemon that bound before validating would report that instead.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run(
        &sim,
        &[
            "--policies",
            &dir,
            "--metrics-addr",
            &addr,
            "--interval",
            "soon",
            "--shutdown-grace",
            "forever",
        ],
        &[],
    )
    .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(r.stderr.contains("--interval \"soon\""), "{}", r.stderr);
    assert!(r.stderr.contains("--shutdown-grace"), "{}", r.stderr);
    assert!(!r.stderr.contains("cannot listen"), "{}", r.stderr);

    let r = run(
        &sim,
        &["--policies", &dir, "--metrics-addr", &addr],
        &[("ALIBABA_CLOUD_ACCESS_KEY_SECRET", None)],
    )
    .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(
        r.stderr.contains("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("cannot listen"), "{}", r.stderr);

    let r = run(
        &sim,
        &["--policies", &dir, "--detailed-exitcode", "--dry-run"],
        &[],
    )
    .await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert!(sim.calls().is_empty(), "no request was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_never_kill_the_daemon_they_back_off_and_show_in_readiness() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let d = Daemon::start_with_env(
        &sim,
        folder.path(),
        &["--interval", "1s"],
        &[("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "wrong-secret")],
    )
    .await;
    let m = d
        .wait_metrics("three failed passes", |m| {
            m.get("sgpolicy_consecutive_failed_passes") >= 3.0
        })
        .await;
    assert!(m.sum("sgpolicy_passes_total", &["outcome=\"cloud_error\""]) >= 3.0);
    assert!(
        m.get("sgpolicy_passes_total{trigger=\"retry\",outcome=\"cloud_error\"}") >= 2.0,
        "{}",
        m.text
    );
    assert_eq!(m.get("sgpolicy_ready"), 0.0);
    // The retry after n failures waits 2^(n-1) s jittered down to half: past the 1 s interval.
    let n = m.get("sgpolicy_consecutive_failed_passes");
    let nominal = 2f64.powf(n - 1.0);
    let next = m.get("sgpolicy_next_automatic_pass_seconds");
    // The two gauges are set one after the other: a scrape in between sees the next failure's delay.
    assert!(
        next >= nominal / 2.0 - 0.1 && next <= 2.0 * nominal,
        "next {next} after {n} failures"
    );
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    assert!(
        !d.log_text().contains("wrong-secret"),
        "the secret is never logged"
    );
    let (status, _) = d.get("/healthz").await;
    assert_eq!(status, 200, "alive, just not ready");
    assert!(sim.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fight_over_a_group_is_held_back_and_reported() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-calm"], Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-a", Drop)
            .group("sg-calm", Accept)
            .yaml(),
    );
    let d = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--interval",
            "1s",
            "--fight-threshold",
            "2",
            "--fight-hold",
            "1h",
        ],
    )
    .await;
    let corrections = |n: f64| move |m: &Metrics| m.get("sgpolicy_corrections_total") == n;
    // Flips wait for the pass to have counted the correction, so a flip never lands inside the
    // verification of the write before it.
    d.wait_metrics("the first correction", corrections(1.0))
        .await;
    // Someone flips it back twice; sgpolicy restores it twice: that is a fight (threshold 2).
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    d.wait_metrics("the second correction", corrections(2.0))
        .await;
    assert!(
        d.lines_with("was changed back").is_empty(),
        "one restoration is not yet a fight: {}",
        d.log_text()
    );
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    d.wait_metrics("the third correction", corrections(3.0))
        .await;
    let warning = d.wait_log("was changed back 2 times").await;
    assert!(warning.contains("cn-hangzhou/sg-a"), "{warning}");
    // The next flip is left alone while held; the group is reported as drifted and fighting.
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    let passes = |m: &Metrics| m.sum("sgpolicy_passes_total", &[]);
    let before = passes(&d.metrics().await);
    let m = d
        .wait_metrics("three more passes", |m| passes(m) >= before + 3.0)
        .await;
    assert_eq!(sim.policy(HZ, "sg-a"), Policy::Accept, "held back");
    let effective = sim
        .effective_writes()
        .iter()
        .filter(|c| c.group_id.as_deref() == Some("sg-a"))
        .count();
    assert_eq!(
        effective, 3,
        "the first convergence, two restorations, then hands off"
    );
    assert_eq!(m.get("sgpolicy_fighting_groups"), 1.0, "{}", m.text);
    assert!(m.get("sgpolicy_fight_hold_seconds{region=\"cn-hangzhou\",group=\"sg-a\"}") > 3000.0);
    assert_eq!(m.get("sgpolicy_groups{state=\"drifted\"}"), 1.0);
    assert!(
        d.log_text().contains("held=1"),
        "the summary line counts held groups"
    );
}

/// A folder of `n` groups in files of 100; returns the simulator, the folder and the ids.
async fn many_groups(n: usize) -> (Sim, Folder, Vec<String>) {
    let ids: Vec<String> = (0..n).map(|i| format!("sg-n{i:05}")).collect();
    let sim = Sim::start(&Seed::new().groups(HZ, &ids, Accept)).await;
    let folder = Folder::new();
    for (i, chunk) in ids.chunks(100).enumerate() {
        folder.write(
            &format!("f{i:03}.yaml"),
            &PolicyFile::in_region(HZ).groups(chunk, Accept).yaml(),
        );
    }
    (sim, folder, ids)
}

async fn one_line_edit_among(n: usize) {
    let (sim, folder, ids) = many_groups(n).await;
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    let started = Instant::now();
    d.wait_log("trigger=\"startup\"").await;
    let startup_calls = sim.calls().len();
    eprintln!(
        "{n} groups: start-up pass {startup_calls} calls in {:?}",
        started.elapsed()
    );
    assert_eq!(
        startup_calls,
        n.div_ceil(100) + n + n.div_ceil(100),
        "one DescribeSecurityGroups per 100, one read per group, and the coverage survey's listing \
         of the region (100 a page) after the full pass"
    );

    // One line: the last group of the middle file becomes Drop.
    let target = &ids[n / 2 + 99 - (n / 2) % 100];
    let file = folder.path().join(format!("f{:03}.yaml", n / 2 / 100));
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replace(
        &format!("{target}\n    innerAccessPolicy: Accept"),
        &format!("{target}\n    innerAccessPolicy: Drop"),
    );
    assert_ne!(text, edited);
    let changed_at = Instant::now();
    write_atomically(&file, &edited);
    wait_policy(&sim, target, Policy::Drop, &d).await;
    let latency = changed_at.elapsed();
    d.wait_log("trigger=\"file\"").await;
    let after: Vec<_> = sim.calls().into_iter().skip(startup_calls).collect();
    let count = |a: &str| after.iter().filter(|c| c.action == a).count();
    eprintln!(
        "{n} groups: one-line edit -> {} calls ({} DescribeSecurityGroups, {} DescribeSecurityGroupAttribute, {} ModifySecurityGroupPolicy), change-to-write {latency:?}",
        after.len(),
        count("DescribeSecurityGroups"),
        count("DescribeSecurityGroupAttribute"),
        count("ModifySecurityGroupPolicy")
    );
    // Metadata of the one group, its read, the write, and the verification read.
    assert_eq!(count("DescribeSecurityGroups"), 1);
    assert_eq!(count("DescribeSecurityGroupAttribute"), 2);
    assert_eq!(count("ModifySecurityGroupPolicy"), 1);
    assert!(after
        .iter()
        .all(|c| c.group_id.is_none() || c.group_id.as_deref() == Some(target.as_str())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_line_edit_among_1000_groups_makes_four_calls() {
    one_line_edit_among(1000).await;
}

/// The figure for the report; slow on a small machine (`cargo test -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn a_one_line_edit_among_10000_groups_makes_four_calls() {
    one_line_edit_among(10_000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn selector_groups_are_enforced_and_a_file_pass_does_not_list_unchanged_selectors() {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-t1", Accept)
            .tagged("env", "prod")
            .group(HZ, "sg-t2", Accept)
            .tagged("env", "prod")
            .groups(HZ, ["sg-x", "sg-y"], Accept),
    )
    .await;
    // The groups declared by id, then a selector for the prod-tagged ones.
    let text = |ids: &[&str]| {
        PolicyFile::in_region(HZ)
            .groups(ids, Drop)
            .selector(Match::tags(&[("env", "prod")]), Drop)
            .yaml()
    };
    let folder = Folder::new().file("prod.yaml", text(&["sg-x"]));
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    for id in ["sg-t1", "sg-t2", "sg-x"] {
        wait_policy(&sim, id, Policy::Drop, &d).await;
    }
    d.wait_log("trigger=\"startup\"").await;
    let listings = sim.calls_of("DescribeSecurityGroups").len();

    // An edit that leaves the selector alone: only the new group is looked at.
    write_atomically(&folder.path().join("prod.yaml"), &text(&["sg-x", "sg-y"]));
    wait_policy(&sim, "sg-y", Policy::Drop, &d).await;
    d.wait_log("trigger=\"file\"").await;
    assert_eq!(
        sim.calls_of("DescribeSecurityGroups").len(),
        listings + 1,
        "metadata for sg-y only, no selector listing"
    );

    // A full pass lists the selector again and corrects its groups.
    assert!(sim.sim.set_policy(HZ, "sg-t2", Policy::Accept));
    d.signal("HUP");
    wait_policy(&sim, "sg-t2", Policy::Drop, &d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_when_idle_exits_0_promptly() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Drop)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let mut d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    d.wait_log("pass finished").await;
    d.signal("INT");
    assert_eq!(d.wait_exit().await, 0, "{}", d.log_text());
    assert!(d.log_text().contains("SIGINT: shutting down"));
    assert!(d.log_text().contains("stopped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_carry_the_account_of_groups_named_through_a_role_and_its_session_health() {
    const PROD: &str = "2222222222222222";
    let sim = Sim::start(
        &Seed::new()
            .role(&role_arn(PROD))
            .group(HZ, "sg-a", Drop)
            .group(HZ, "sg-a", Accept)
            .in_account(PROD),
    )
    .await;
    let folder = Folder::new()
        .file(
            "own.yaml",
            PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
        )
        .file(
            "prod.yaml",
            PolicyFile::in_region(HZ)
                .assuming_role(&role_arn(PROD))
                .group("sg-a", Drop)
                .yaml(),
        );
    let d = Daemon::start_with_env(
        &sim,
        folder.path(),
        &["--interval", "1s"],
        &[("ALIBABA_CLOUD_ENDPOINT_STS", sim.url.as_str())],
    )
    .await;
    let labelled = |state: &str| format!("sgpolicy_groups{{state=\"{state}\",account=\"{PROD}\"}}");
    let m = d
        .wait_metrics("the other account's group in sync", |m| {
            m.get(&labelled("in_sync")) == 1.0
        })
        .await;
    assert_eq!(
        m.get("sgpolicy_groups{state=\"in_sync\"}"),
        1.0,
        "{}",
        m.text
    );
    assert_eq!(m.get(&labelled("drifted")), 0.0);
    assert_eq!(
        m.get(&format!(
            "sgpolicy_writes_total{{outcome=\"changed\",account=\"{PROD}\"}}"
        )),
        1.0
    );
    assert_eq!(
        m.sum("sgpolicy_writes_total", &["outcome=\"changed\""]),
        1.0,
        "the chain's own sg-a was in sync: one write in all"
    );
    let prod_writes = sim.writes().iter().filter(|c| c.account == PROD).count();
    assert_eq!(
        m.get(&format!(
            "sgpolicy_api_calls_total{{action=\"ModifySecurityGroupPolicy\",code=\"OK\",account=\"{PROD}\"}}"
        )),
        prod_writes as f64
    );
    let expiry = m.get(&format!(
        "sgpolicy_credentials_expiry_timestamp_seconds{{provider=\"account/{PROD}\"}}"
    ));
    assert!(
        expiry > 1.7e9,
        "the assumed session's expiry is exported:\n{}",
        m.text
    );

    // A console flip in the other account is corrected by the resync, with the session reused.
    let assumed = sim.calls_of("AssumeRole").len();
    assert!(sim.sim.set_policy_in(PROD, HZ, "sg-a", Policy::Accept));
    d.wait_metrics("the correction in the other account", |m| {
        m.get(&format!(
            "sgpolicy_writes_total{{outcome=\"changed\",account=\"{PROD}\"}}"
        )) == 2.0
    })
    .await;
    assert_eq!(sim.sim.policy_of_in(PROD, HZ, "sg-a"), Some(Policy::Drop));
    assert_eq!(
        sim.policy(HZ, "sg-a"),
        Policy::Drop,
        "the own account's group untouched"
    );
    assert_eq!(
        sim.calls_of("AssumeRole").len(),
        assumed,
        "one session for many passes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_whose_role_cannot_be_assumed_makes_the_daemon_unready_and_spares_the_others() {
    const PROD: &str = "2222222222222222";
    let sim = Sim::start(
        &Seed::new()
            .role_with_external_id(&role_arn(PROD), "right-one")
            .group(HZ, "sg-a", Accept)
            .group(HZ, "sg-a", Accept)
            .in_account(PROD),
    )
    .await;
    let prod = |external: &str| {
        PolicyFile::in_region(HZ)
            .assuming_role(&role_arn(PROD))
            .external_id(external)
            .group("sg-a", Drop)
            .yaml()
    };
    let folder = Folder::new()
        .file(
            "own.yaml",
            PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
        )
        .file("prod.yaml", prod("wrong-one"));
    let d = Daemon::start_with_env(
        &sim,
        folder.path(),
        &["--interval", "1s"],
        &[("ALIBABA_CLOUD_ENDPOINT_STS", sim.url.as_str())],
    )
    .await;
    // The chain's own account is corrected all the same.
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    let m = d
        .wait_metrics("a cloud_error pass", |m| {
            m.sum("sgpolicy_passes_total", &["outcome=\"cloud_error\""]) >= 1.0
        })
        .await;
    assert_eq!(
        m.get(&format!(
            "sgpolicy_groups{{state=\"error\",account=\"{PROD}\"}}"
        )),
        1.0,
        "{}",
        m.text
    );
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("AccountUnavailable") && body.contains(PROD),
        "{body}"
    );
    assert!(!body.contains("wrong-one") && !d.log_text().contains("wrong-one"));
    assert_eq!(sim.sim.policy_of_in(PROD, HZ, "sg-a"), Some(Policy::Accept));

    // Fixing the file is picked up: the role is assumed and the group corrected.
    write_atomically(&folder.path().join("prod.yaml"), &prod("right-one"));
    let corrected = format!("{PROD}/sg-a to be corrected");
    eventually(&corrected, DEADLINE, || async {
        match sim.sim.policy_of_in(PROD, HZ, "sg-a") {
            Some(Policy::Drop) => Ok(()),
            other => Err(d.saw(format!("{PROD}/sg-a is {other:?}"))),
        }
    })
    .await;
    d.wait_metrics("ready again", |m| m.get("sgpolicy_ready") == 1.0)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_editing_a_policy_in_git_is_never_taken_for_a_fight() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let d = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--interval",
            "1h",
            "--fight-threshold",
            "2",
            "--fight-hold",
            "1h",
            "--allow-open",
        ],
    )
    .await;
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    // Start-up to Drop, then three edits in Git: Accept, Drop, Accept. Each write sets a new desired
    // value, so none of them is a restoration, and none may be held.
    for (n, want) in [Policy::Accept, Policy::Drop, Policy::Accept]
        .into_iter()
        .enumerate()
    {
        write_atomically(
            &folder.path().join("prod.yaml"),
            &PolicyFile::in_region(HZ).group("sg-a", want).yaml(),
        );
        wait_policy(&sim, "sg-a", want, &d).await;
        d.wait_metrics("the correction counted", |m| {
            m.get("sgpolicy_corrections_total") == (n + 2) as f64
        })
        .await;
    }
    let m = d.metrics().await;
    assert_eq!(m.get("sgpolicy_fighting_groups"), 0.0, "{}", m.text);
    assert!(
        d.lines_with("was changed back").is_empty(),
        "an edit is not a fight: {}",
        d.log_text()
    );
    let effective = sim
        .effective_writes()
        .iter()
        .filter(|c| c.group_id.as_deref() == Some("sg-a"))
        .count();
    assert_eq!(effective, 4, "start-up and three edits, each applied");
    // An edit back to an earlier state has that state's revision, so its shared token is a replay and
    // the correction writes once more: at most two writes per correction.
    assert!(writes_to(&sim, "sg-a") <= 8);
}
