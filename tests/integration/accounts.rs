//! Many accounts on the simulator: files naming `account: {roleArn, externalId}` are reconciled with
//! credentials from STS `AssumeRole` (served by the simulator too), keyed by (account, region, group).
//! The same group id lives in three accounts with different policies, so any mix-up of accounts shows
//! up as a wrong write or a wrong final state.

use crate::harness::*;
use serde_json::{json, Value};
use sgpolicy_sim::Policy;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::collections::BTreeSet;

const HZ: &str = "cn-hangzhou";
const PROD: &str = "2222222222222222";
const STAGING: &str = "3333333333333333";
const EXTERNAL_ID: &str = "ext-5150-confidential";

/// The chain's key lives in the simulator's default account; PROD and STAGING are reached by roles.
/// `sg-shared` exists in all three accounts, drifted in each relative to the files below.
fn three_accounts() -> Seed {
    Seed::new()
        .role_with_external_id(&role_arn(PROD), EXTERNAL_ID)
        .role(&role_arn(STAGING))
        .groups(HZ, ["sg-shared", "sg-own-2"], Accept)
        .group(HZ, "sg-shared", Accept)
        .in_account(PROD)
        .group(HZ, "sg-prod-2", Accept)
        .in_account(PROD)
        .group(HZ, "sg-shared", Drop)
        .in_account(STAGING)
}

fn folder(prod_external_id: &str) -> Folder {
    Folder::new()
        .file(
            "own.yaml",
            PolicyFile::in_region(HZ)
                .groups(["sg-shared", "sg-own-2"], Drop)
                .yaml(),
        )
        .file(
            "prod.yaml",
            PolicyFile::in_region(HZ)
                .assuming_role(&role_arn(PROD))
                .external_id(prod_external_id)
                .groups(["sg-shared", "sg-prod-2"], Drop)
                .yaml(),
        )
        .file(
            "staging.yaml",
            PolicyFile::in_region(HZ)
                .assuming_role(&role_arn(STAGING))
                .group("sg-shared", Accept)
                .yaml(),
        )
}

/// `once` with STS pointed at the simulator as well.
async fn once_with_sts(sim: &Sim, folder: &Folder, extra: &[&str]) -> Run {
    let dir = folder.path().to_str().expect("utf-8 path").to_string();
    let mut args = vec!["--policies", dir.as_str(), "--once", "--output", "json"];
    args.extend_from_slice(extra);
    run(
        sim,
        &args,
        &[("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))],
    )
    .await
}

/// The JSON entries for `id`, by account (`""` for the chain's own).
fn entries(run: &Run, id: &str) -> Vec<(String, Value)> {
    run.json()["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter(|g| g["id"] == id)
        .map(|g| (g["account"].as_str().unwrap_or("").to_string(), g.clone()))
        .collect()
}

fn outcome_of(run: &Run, account: &str, id: &str) -> String {
    entries(run, id)
        .into_iter()
        .find(|(a, _)| a == account)
        .map(|(_, g)| g["outcome"].as_str().unwrap_or("").to_string())
        .unwrap_or_else(|| panic!("no {account}/{id} in\n{}", run.stdout))
}

#[tokio::test(flavor = "multi_thread")]
async fn each_account_is_reconciled_with_its_own_assumed_role() {
    let sim = Sim::start(&three_accounts()).await;
    let folder = folder(EXTERNAL_ID);
    // STAGING's sg-shared goes Drop -> Accept: an opening, which needs --allow-open.
    let run = once_with_sts(&sim, &folder, &["--allow-open"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // The final state, per account: each account got what its own file says.
    let own = sim_account(&sim);
    assert_eq!(policy_in(&sim, &own, "sg-shared"), Policy::Drop);
    assert_eq!(policy_in(&sim, &own, "sg-own-2"), Policy::Drop);
    assert_eq!(policy_in(&sim, PROD, "sg-shared"), Policy::Drop);
    assert_eq!(policy_in(&sim, PROD, "sg-prod-2"), Policy::Drop);
    assert_eq!(policy_in(&sim, STAGING, "sg-shared"), Policy::Accept);

    // Exactly one effective write per drifted group, each in the right account, with temporary keys
    // for the assumed accounts and the chain's key for its own.
    let mut written: Vec<(String, String)> = sim
        .effective_writes()
        .iter()
        .map(|c| (c.account.clone(), c.group_id.clone().unwrap_or_default()))
        .collect();
    written.sort();
    let mut expected = vec![
        (own.clone(), "sg-own-2".to_string()),
        (own.clone(), "sg-shared".to_string()),
        (PROD.to_string(), "sg-prod-2".to_string()),
        (PROD.to_string(), "sg-shared".to_string()),
        (STAGING.to_string(), "sg-shared".to_string()),
    ];
    expected.sort();
    assert_eq!(written, expected);
    for w in sim.writes() {
        let temporary = w.access_key_id.starts_with("STS.");
        assert_eq!(temporary, w.account != own, "{w:?}");
    }

    // One AssumeRole per account for the whole pass, not one per group.
    let assumed: Vec<String> = sim
        .calls_of("AssumeRole")
        .iter()
        .map(|c| c.access_key_id.clone())
        .collect();
    assert_eq!(assumed, ["testid", "testid"], "{assumed:?}");

    // The report names the account of every group; tokens differ between accounts.
    let shared = entries(&run, "sg-shared");
    let accounts: BTreeSet<&str> = shared.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(accounts, BTreeSet::from(["", PROD, STAGING]));
    let tokens: BTreeSet<&str> = shared
        .iter()
        .map(|(_, g)| g["token"].as_str().expect("token"))
        .collect();
    assert_eq!(tokens.len(), 3, "{shared:?}");
    assert_eq!(run.json()["summary"]["changed"], 5);

    // A second pass: everything in sync, no writes, and the text report is quiet.
    let before = sim.writes().len();
    let again = once_with_sts(&sim, &folder, &["--allow-open"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.json()["summary"]["inSync"], 5);
    assert_eq!(sim.writes().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_shows_the_account_of_each_change() {
    let sim = Sim::start(&three_accounts()).await;
    let folder = folder(EXTERNAL_ID);
    let dir = folder.path().to_str().expect("utf-8").to_string();
    let run = run(
        &sim,
        &["--policies", &dir, "--once", "--dry-run"],
        &[("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for line in [
        "ACCOUNT/REGION".to_string(),
        format!("{PROD}/{HZ}"),
        format!("{STAGING}/{HZ}"),
        "will change Drop -> Accept (opens)".to_string(),
    ] {
        assert!(
            run.stdout.contains(&line),
            "{line} missing in\n{}",
            run.stdout
        );
    }
    assert!(sim.writes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_whose_role_cannot_be_assumed_fails_only_its_own_groups() {
    let sim = Sim::start(&three_accounts()).await;
    let folder = folder("not-the-external-id");
    let run = once_with_sts(&sim, &folder, &["--allow-open"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for id in ["sg-shared", "sg-prod-2"] {
        assert_eq!(outcome_of(&run, PROD, id), "error", "{}", run.stdout);
    }
    let prod = entries(&run, "sg-prod-2").remove(0).1;
    assert_eq!(prod["error"]["code"], "AccountUnavailable", "{prod}");
    let message = prod["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(PROD) && message.contains("NoPermission"),
        "{message}"
    );
    // The other accounts were reconciled all the same.
    assert_eq!(outcome_of(&run, "", "sg-shared"), "changed");
    assert_eq!(outcome_of(&run, STAGING, "sg-shared"), "changed");
    // Nothing at all was sent to the unreachable account, and no secret reached any output.
    assert!(sim
        .calls()
        .iter()
        .all(|c| c.account != PROD || c.action == "AssumeRole"));
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains("not-the-external-id") && !text.contains(EXTERNAL_ID));
    }
    assert_eq!(policy_in(&sim, PROD, "sg-prod-2"), Policy::Accept);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fatal_error_in_one_account_stops_only_that_account() {
    let sim = Sim::start(&three_accounts()).await;
    // Two drifted groups in the chain's account and two in PROD; STAGING is left out.
    let folder = folder(EXTERNAL_ID);
    std::fs::remove_file(folder.path().join("staging.yaml")).expect("rm");
    sim.faults(json!({"failNext": [{
        "action": "ModifySecurityGroupPolicy", "status": 403, "code": "Forbidden.RAM",
        "message": "User not authorized to operate on the specified resource.",
    }]}))
    .await;
    // One request at a time, so the refused write is the first, and the account it went to has
    // another write still to come.
    let run = once_with_sts(&sim, &folder, &["--concurrency", "1"]).await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let own = sim_account(&sim);
    let refused = sim
        .writes()
        .first()
        .map(|c| c.account.clone())
        .expect("a write");
    let (stopped, carried_on) = if refused == own {
        ("", PROD)
    } else {
        (PROD, "")
    };
    for id in [
        "sg-shared",
        if stopped.is_empty() {
            "sg-own-2"
        } else {
            "sg-prod-2"
        },
    ] {
        assert_eq!(outcome_of(&run, stopped, id), "failed", "{}", run.stdout);
    }
    for id in [
        "sg-shared",
        if carried_on.is_empty() {
            "sg-own-2"
        } else {
            "sg-prod-2"
        },
    ] {
        assert_eq!(
            outcome_of(&run, carried_on, id),
            "changed",
            "{}",
            run.stdout
        );
    }
    // The stopped account got exactly the one refused write.
    assert_eq!(
        sim.writes().iter().filter(|c| c.account == refused).count(),
        1
    );
    let fatal = &run.json()["fatal"];
    assert_eq!(fatal["code"], "Forbidden.RAM", "{fatal}");
}

/// The simulator's default account: the one the chain's key belongs to.
fn sim_account(_sim: &Sim) -> String {
    sgpolicy_sim::DEFAULT_ACCOUNT.to_string()
}

fn policy_in(sim: &Sim, account: &str, id: &str) -> Policy {
    sim.sim
        .policy_of_in(account, HZ, id)
        .unwrap_or_else(|| panic!("{account}/{id} exists"))
}

#[tokio::test(flavor = "multi_thread")]
async fn assumed_sessions_and_external_ids_never_reach_the_output_at_trace_level() {
    let sim = Sim::start(&three_accounts()).await;
    let folder = folder(EXTERNAL_ID);
    let dir = folder.path().to_str().expect("utf-8").to_string();
    let run = run(
        &sim,
        &["--policies", &dir, "--once", "--allow-open"],
        &[
            ("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str())),
            ("RUST_LOG", Some("trace")),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("assumed role") && run.stderr.contains("reqwest"),
        "trace output mentions the sessions, so the search below means something"
    );
    // The simulator's session tokens start with CAIS, as real STS tokens do.
    for needle in [EXTERNAL_ID, "testsecret", "CAIS", "Signature="] {
        for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(!text.contains(needle), "{needle} leaked on {name}");
        }
    }
}
