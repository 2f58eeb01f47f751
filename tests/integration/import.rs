//! Adoption with the real binary against the simulator: `sgpolicy import` writes policy files from the
//! live state (the round trip: they validate and plan with no change, and a second import is
//! byte-identical), `--mode`, the no-overwrite rule and `--force`, and `--report-ungoverned` in every
//! output format. The daemon's `sgpolicy_ungoverned_groups` is in `daemon::coverage`.

use crate::harness::*;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::collections::BTreeMap;

const HZ: &str = "cn-hangzhou";
const SH: &str = "cn-shanghai";
const PROD: &str = "2222222222222222";
const EXTERNAL_ID: &str = "ext-import-7";

/// Two regions, three VPCs of the own account, tags, an enterprise and a service-managed group, and
/// a second account (PROD) reached through a role with an external id.
fn mixed_estate() -> Seed {
    Seed::new()
        .role_with_external_id(&role_arn(PROD), EXTERNAL_ID)
        .group(HZ, "sg-web-1", Drop)
        .in_vpc("vpc-web")
        .named("web-1")
        .tagged("team", "web")
        .tagged("env", "prod")
        .group(HZ, "sg-web-2", Accept)
        .in_vpc("vpc-web")
        .named("web-2")
        .group(HZ, "sg-db-1", Drop)
        .in_vpc("vpc-db")
        .named("db-1")
        .tagged("team", "db")
        .group(HZ, "sg-ledger", Accept)
        .in_vpc("vpc-db")
        .named("ledger")
        .enterprise()
        .group(HZ, "sg-natgw", Accept)
        .in_vpc("vpc-db")
        .managed_by_service("1679259531804325")
        .group(SH, "sg-cache-1", Accept)
        .in_vpc("vpc-sh")
        .named("cache-1")
        .group(SH, "sg-front-1", Drop)
        .in_vpc("vpc-sh")
        .named("front-1")
        .group(HZ, "sg-prod-1", Drop)
        .in_vpc("vpc-prod")
        .named("prod-1")
        .in_account(PROD)
}

fn path_of(folder: &Folder) -> String {
    folder.path().to_str().expect("utf-8 temp path").to_string()
}

/// `sgpolicy import ARGS... --out DIR`, with STS on the simulator too.
async fn import(sim: &Sim, out: &Folder, args: &[&str]) -> Run {
    let out = path_of(out);
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.extend(["--out", out.as_str(), "--max-rps", "1000"]);
    run(
        sim,
        &all,
        &[("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))],
    )
    .await
}

/// Imports the own account's two regions, then PROD's Hangzhou through its role, into `out`.
async fn import_all(sim: &Sim, out: &Folder, extra: &[&str]) {
    let mut own = vec!["--region", HZ, "--region", SH];
    own.extend_from_slice(extra);
    let r = import(sim, out, &own).await;
    assert_eq!(r.code, 0, "own account: {}", r.stderr);
    let arn = role_arn(PROD);
    let mut prod = vec![
        "--region",
        HZ,
        "--role-arn",
        arn.as_str(),
        "--external-id",
        EXTERNAL_ID,
    ];
    prod.extend_from_slice(extra);
    let r = import(sim, out, &prod).await;
    assert_eq!(r.code, 0, "second account: {}", r.stderr);
}

/// Every file of a folder, by name.
fn files(folder: &Folder) -> BTreeMap<String, String> {
    std::fs::read_dir(folder.path())
        .expect("read folder")
        .map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).expect("read file"))
        })
        .collect()
}

/// A `--once` run with STS on the simulator.
async fn once_with_sts(sim: &Sim, folder: &Folder, extra: &[&str]) -> Run {
    let dir = path_of(folder);
    let mut args = vec!["--policies", dir.as_str(), "--once"];
    args.extend_from_slice(extra);
    run(
        sim,
        &args,
        &[("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_mixed_estate_validates_plans_no_change_and_imports_again_byte_for_byte() {
    let sim = Sim::start(&mixed_estate()).await;
    let out = Folder::new();
    import_all(&sim, &out, &[]).await;
    let written = files(&out);
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        [
            "2222222222222222.cn-hangzhou.vpc-prod.yaml",
            "cn-hangzhou.vpc-db.yaml",
            "cn-hangzhou.vpc-web.yaml",
            "cn-shanghai.vpc-sh.yaml",
        ],
        "one file per (account, region, VPC)"
    );
    let web = &written["cn-hangzhou.vpc-web.yaml"];
    assert!(
        web.starts_with("# yaml-language-server: $schema="),
        "the $schema line comes first:\n{web}"
    );
    assert!(
        web.contains(
            "  # web-1 · env=prod, team=web\n  - id: sg-web-1\n    innerAccessPolicy: Drop\n"
        ),
        "a comment with the group's name and tags:\n{web}"
    );
    assert!(web.find("sg-web-1") < web.find("sg-web-2"), "entries by id");
    let db = &written["cn-hangzhou.vpc-db.yaml"];
    assert!(db.contains("  - id: sg-db-1\n"), "{db}");
    for (id, reason) in [
        (
            "sg-ledger",
            "enterprise-level security groups have no modifiable InnerAccessPolicy",
        ),
        ("sg-natgw", "managed by cloud service 1679259531804325"),
    ] {
        let line = db
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id} is in the file:\n{db}"));
        assert!(line.starts_with("#   "), "{id} is only a comment: {line}");
        assert!(line.ends_with(reason), "{id} says why: {line}");
    }
    let prod = &written["2222222222222222.cn-hangzhou.vpc-prod.yaml"];
    assert!(
        prod.contains(&format!(
            "account:\n  roleArn: \"{}\"\n  externalId: \"{EXTERNAL_ID}\"\n",
            role_arn(PROD)
        )),
        "{prod}"
    );

    let valid = run(&sim, &["validate", &path_of(&out)], &[]).await;
    assert_eq!(valid.code, 0, "{}{}", valid.stdout, valid.stderr);
    assert!(
        valid.stdout.contains("4 file(s), 6 group(s)"),
        "{}",
        valid.stdout
    );

    let plan = once_with_sts(
        &sim,
        &out,
        &["--dry-run", "--detailed-exitcode", "--output", "json"],
    )
    .await;
    assert_eq!(plan.code, 0, "in sync: {}{}", plan.stdout, plan.stderr);
    let summary = &plan.json()["summary"];
    assert_eq!(summary["groups"], 6, "{summary}");
    assert_eq!(summary["inSync"], 6, "{summary}");
    assert_eq!(summary["wouldChange"], 0);
    assert_eq!(summary["errors"], 0);
    assert_eq!(plan.json()["notes"], serde_json::json!([]));
    assert_eq!(plan.group("sg-prod-1")["account"], PROD);

    let again = Folder::new();
    import_all(&sim, &again, &[]).await;
    assert_eq!(files(&again), written, "a second import is byte-identical");
    assert!(sim.writes().is_empty(), "import and a plan never write");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observe_import_only_reports_drift_and_an_enforce_import_corrects_it() {
    let seed = Seed::new()
        .group(HZ, "sg-a", Drop)
        .in_vpc("vpc-1")
        .group(HZ, "sg-b", Accept)
        .in_vpc("vpc-1");
    let sim = Sim::start(&seed).await;
    let observed = Folder::new();
    let r = import(&sim, &observed, &["--region", HZ, "--mode", "observe"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = &files(&observed)["cn-hangzhou.vpc-1.yaml"];
    assert_eq!(text.matches("    mode: observe\n").count(), 2, "{text}");
    let enforced = Folder::new();
    let r = import(&sim, &enforced, &["--region", HZ, "--mode", "enforce"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!files(&enforced)["cn-hangzhou.vpc-1.yaml"].contains("mode:"));

    // Someone opens sg-a in the console after the import.
    assert!(sim.sim.set_policy(HZ, "sg-a", Accept));
    let watched = once(&sim, &observed, &[]).await;
    assert_eq!(watched.code, 0, "{}", watched.stderr);
    assert_eq!(watched.group("sg-a")["outcome"], "observed");
    assert!(sim.writes().is_empty(), "observe-only never writes");
    let corrected = once(&sim, &enforced, &[]).await;
    assert_eq!(corrected.code, 0, "{}", corrected.stderr);
    assert_eq!(corrected.group("sg-a")["outcome"], "changed");
    assert_eq!(sim.policy(HZ, "sg-a"), Drop);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_file_is_never_overwritten_and_the_import_writes_nothing_at_all() {
    let sim = Sim::start(&mixed_estate()).await;
    let out = Folder::new().file("cn-hangzhou.vpc-db.yaml", "# mine\ngroups: []\n");
    let r = import(&sim, &out, &["--region", HZ, "--region", SH]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cn-hangzhou.vpc-db.yaml") && r.stderr.contains("--force"),
        "names the file and the way out: {}",
        r.stderr
    );
    assert_eq!(
        files(&out),
        BTreeMap::from([(
            "cn-hangzhou.vpc-db.yaml".to_string(),
            "# mine\ngroups: []\n".to_string()
        )]),
        "nothing was written, the file is untouched"
    );
    assert!(
        sim.calls_of("DescribeSecurityGroupAttribute").is_empty(),
        "refused before reading any policy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn force_overwrites_existing_files_with_the_live_state() {
    let sim = Sim::start(&mixed_estate()).await;
    let out = Folder::new().file("cn-hangzhou.vpc-db.yaml", "# mine\ngroups: []\n");
    let r = import(&sim, &out, &["--region", HZ, "--force"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let written = files(&out);
    assert!(
        written["cn-hangzhou.vpc-db.yaml"].contains("  - id: sg-db-1\n"),
        "{written:?}"
    );
    assert_eq!(written.len(), 2, "no temporary file is left: {written:?}");
    assert!(
        r.stderr.contains("imported 3 group(s) into 2 file(s)"),
        "{}",
        r.stderr
    );
    for progress in [
        "import: listed 5 group(s) in 1 of 1 region(s)",
        "import: read 3 of 3 policies",
    ] {
        assert!(
            r.stderr.contains(progress),
            "progress on stderr: {}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_whose_role_cannot_be_assumed_fails_the_import_and_writes_nothing() {
    let sim = Sim::start(&mixed_estate()).await;
    let out = Folder::new();
    let arn = role_arn(PROD);
    let r = import(
        &sim,
        &out,
        &[
            "--region",
            HZ,
            "--role-arn",
            arn.as_str(),
            "--external-id",
            "wrong",
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("AccountUnavailable") && r.stderr.contains("nothing was written"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("wrong"),
        "the external id is never printed: {}",
        r.stderr
    );
    assert!(files(&out).is_empty());
    assert!(sim.calls_of("DescribeSecurityGroups").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn import_filters_by_vpc_tag_and_name_prefix() {
    let sim = Sim::start(&mixed_estate()).await;
    let by_vpc = Folder::new();
    let r = import(&sim, &by_vpc, &["--region", HZ, "--vpc-id", "vpc-web"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        files(&by_vpc).keys().collect::<Vec<_>>(),
        ["cn-hangzhou.vpc-web.yaml"]
    );
    let by_tag = Folder::new();
    let r = import(&sim, &by_tag, &["--region", HZ, "--tag", "team=db"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let db = &files(&by_tag)["cn-hangzhou.vpc-db.yaml"];
    assert!(db.contains("sg-db-1") && !db.contains("sg-ledger"), "{db}");
    let by_name = Folder::new();
    let r = import(&sim, &by_name, &["--region", SH, "--name-prefix", "front-"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let sh = &files(&by_name)["cn-shanghai.vpc-sh.yaml"];
    assert!(
        sh.contains("sg-front-1") && !sh.contains("sg-cache-1"),
        "{sh}"
    );
}

/// What `--report-ungoverned` is asked about: sg-web-1 by id, the `team=db` groups by a selector;
/// sg-web-2 and sg-db-2 (another team) are governed by nothing; the enterprise and service-managed
/// groups cannot be governed; Shanghai is not named by the folder.
fn partly_governed() -> (Seed, Folder) {
    let seed = mixed_estate()
        .group(HZ, "sg-db-2", Drop)
        .in_vpc("vpc-db")
        .named("db-2")
        .tagged("team", "analytics");
    let folder = Folder::new().file(
        "hz.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-web-1", Drop)
            .selector(Match::tags(&[("team", "db")]), Drop)
            .yaml(),
    );
    (seed, folder)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coverage_report_counts_and_names_ungoverned_groups_in_every_output_format() {
    let (seed, folder) = partly_governed();
    let sim = Sim::start(&seed).await;

    let json = once(&sim, &folder, &["--dry-run", "--report-ungoverned"]).await;
    assert_eq!(json.code, 0, "a report, not an error: {}", json.stderr);
    let doc = json.json();
    assert_eq!(
        doc["ungoverned"],
        serde_json::json!([
            {"id": "sg-db-2", "region": HZ, "account": null, "name": "db-2", "vpcId": "vpc-db"},
            {"id": "sg-web-2", "region": HZ, "account": null, "name": "web-2", "vpcId": "vpc-web"},
        ])
    );
    assert_eq!(doc["summary"]["ungoverned"], 2);

    let dir = path_of(&folder);
    let base = [
        "--policies",
        dir.as_str(),
        "--once",
        "--dry-run",
        "--report-ungoverned",
    ];
    let text = run(&sim, &[&base[..], &["--output", "text"]].concat(), &[]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains(
            "2 groups in cn-hangzhou are governed by no policy file (of 6 listed):\n    sg-db-2   db-2   vpc-db\n    sg-web-2  web-2  vpc-web\n"
        ),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains(", 2 ungoverned ("), "{}", text.stdout);

    let md = run(&sim, &[&base[..], &["--output", "markdown"]].concat(), &[]).await;
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(
        md.stdout
            .contains("- 2 groups in cn-hangzhou are governed by no policy file (of 6 listed)\n"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains("- `sg-db-2` (cn-hangzhou) db-2 · vpc-db\n"),
        "{}",
        md.stdout
    );
    assert!(md
        .stdout
        .contains("- `sg-web-2` (cn-hangzhou) web-2 · vpc-web\n"));
    assert!(
        !md.stdout.contains("sg-cache-1"),
        "Shanghai is not surveyed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_coverage_report_costs_one_listing_per_account_and_region_and_can_fail_the_run() {
    let (seed, folder) = partly_governed();
    let sim = Sim::start(&seed).await;
    let plain = once(&sim, &folder, &["--dry-run"]).await;
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let listings = sim.calls_of("DescribeSecurityGroups").len();
    let surveyed = once(&sim, &folder, &["--dry-run", "--report-ungoverned"]).await;
    assert_eq!(surveyed.code, 0, "{}", surveyed.stderr);
    assert_eq!(
        sim.calls_of("DescribeSecurityGroups").len() - listings,
        listings + 1,
        "the same pass plus one listing of Hangzhou (6 groups, one page)"
    );
    assert_eq!(
        surveyed.json()["apiCalls"]["DescribeSecurityGroups"],
        listings as u64 + 1,
        "the report counts the listing"
    );

    let strict = once(&sim, &folder, &["--dry-run", "--fail-on-ungoverned"]).await;
    assert_eq!(strict.code, 1, "{}", strict.stderr);
    let notes = strict.json()["notes"].clone();
    assert!(
        notes[0]["message"].as_str().is_some_and(
            |m| m.starts_with("2 groups in cn-hangzhou are governed by no policy file")
        ),
        "{notes}"
    );
    let covered = Folder::new().file("hz.yaml", folder_text(&folder)).file(
        "rest.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-web-2", Accept)
            .group("sg-db-2", Drop)
            .yaml(),
    );
    let complete = once(&sim, &covered, &["--dry-run", "--fail-on-ungoverned"]).await;
    assert_eq!(
        complete.code, 0,
        "full coverage passes: {}",
        complete.stderr
    );
    assert_eq!(complete.json()["ungoverned"], serde_json::json!([]));
}

fn folder_text(folder: &Folder) -> String {
    std::fs::read_to_string(folder.path().join("hz.yaml")).expect("hz.yaml")
}

#[tokio::test(flavor = "multi_thread")]
async fn right_after_an_import_nothing_is_ungoverned() {
    let sim = Sim::start(&mixed_estate()).await;
    let out = Folder::new();
    import_all(&sim, &out, &[]).await;
    let r = once_with_sts(
        &sim,
        &out,
        &["--dry-run", "--fail-on-ungoverned", "--output", "json"],
    )
    .await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.json()["ungoverned"], serde_json::json!([]));
    assert_eq!(r.json()["summary"]["ungoverned"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_without_region_or_folder_exits_64_naming_both_before_any_request() {
    let sim = Sim::start(&mixed_estate()).await;
    let r = run(&sim, &["import", "--tag", "novalue"], &[]).await;
    assert_eq!(r.code, 64, "{}", r.stderr);
    for needle in [
        "--region REGION is required",
        "--out DIR is required",
        "--tag \"novalue\"",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(sim.calls().is_empty(), "no request was sent");
}
