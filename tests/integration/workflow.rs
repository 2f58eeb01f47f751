//! The workflow features with the real binary against the simulator: offline validation, the JSON
//! Schema, Markdown plans and `--report`, safety rails, observe-only groups, and selectors.

use crate::harness::*;
use sgpolicy_sim::Policy;
use sgpolicy_sim::Policy::{Accept, Drop};

const HZ: &str = "cn-hangzhou";

/// Runs the binary with no credentials, no endpoint and no network configuration at all.
async fn offline(args: &[&str]) -> Run {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .expect("run sgpolicy")
        .into()
}

fn dir_of(folder: &Folder) -> String {
    folder.path().to_str().expect("utf-8 temp path").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_needs_no_credentials_and_reports_every_problem_as_path_line_col() {
    let folder = Folder::with(&[
        ("ok.yaml", "region: cn-hangzhou\ngroups:\n  - {id: sg-a, innerAccessPolicy: Drop}\n"),
        ("bad/b.yaml", "region: cn-hangzhou\ngroups:\n  - id: sg-b\n    innerAcessPolicy: Drop\nselectors:\n  - match: {}\n    innerAccessPolicy: Drop\n"),
    ]);
    let dir = dir_of(&folder);
    let run = offline(&["validate", &dir]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let b = format!("{dir}/bad/b.yaml");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!("{b}:3:5: `sg-b` has no `innerAccessPolicy`")),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with(&format!("{b}:4:5: unknown field `innerAcessPolicy`")),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with(&format!("{b}:6:12: `match` must name at least one")),
        "{}",
        run.stdout
    );
    assert_eq!(lines[3], format!("invalid: 3 problem(s) in {dir}"));

    let gh = offline(&["validate", &dir, "--output", "github"]).await;
    assert_eq!(gh.code, 1);
    let first = gh.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "::error file={b},line=3,col=5::`sg-b` has no `innerAccessPolicy` (Accept or Drop)"
        )
    );

    folder.write("bad/b.yaml", "groups: []\n");
    let good = offline(&["validate", &dir]).await;
    assert_eq!(good.code, 0, "{}", good.stdout);
    assert!(
        good.stdout
            .starts_with("valid: 2 file(s), 1 group(s), 0 selector(s), revision "),
        "{}",
        good.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_defaults_to_the_current_folder_and_checks_the_shipped_examples() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");
    let run = offline(&["validate", examples]).await;
    assert_eq!(run.code, 0, "{}", run.stdout);
    let cwd = tokio::process::Command::new(BIN)
        .arg("validate")
        .current_dir(examples)
        .env_clear()
        .output()
        .await
        .expect("run");
    assert_eq!(cwd.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&cwd.stdout), run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_command_prints_the_committed_schema() {
    let run = offline(&["schema"]).await;
    assert_eq!(run.code, 0);
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/schema/policy.schema.json"
    ))
    .expect("committed schema");
    assert_eq!(run.stdout, committed);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(v["definitions"]["selector"]["additionalProperties"], false);
}

fn mixed_drift() -> (Seed, Folder) {
    let seed = Seed::new()
        .group(HZ, "sg-isolate", Accept)
        .groups(HZ, ["sg-open", "sg-fine"], Drop);
    let folder = Folder::new().file(
        "p.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-isolate", Drop)
            .group("sg-open", Accept)
            .group("sg-fine", Drop)
            .yaml(),
    );
    (seed, folder)
}

#[tokio::test(flavor = "multi_thread")]
async fn markdown_plan_names_directions_and_report_file_holds_the_json() {
    let (seed, folder) = mixed_drift();
    let sim = Sim::start(&seed).await;
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("plan.json");
    let report_arg = report.to_str().expect("utf-8").to_string();
    let dir = dir_of(&folder);
    let args = [
        "--policies",
        &dir,
        "--once",
        "--dry-run",
        "--output",
        "markdown",
        "--report",
        &report_arg,
    ];
    let run = run(&sim, &args, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let md = &run.stdout;
    assert!(md.starts_with("### sgpolicy plan · revision `"), "{md}");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `sg-")).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(
        rows[0].starts_with("| `sg-open` |") && rows[0].contains("⚠️ **opens**"),
        "{md}"
    );
    assert!(
        rows[1].starts_with("| `sg-isolate` |") && rows[1].contains("| isolates |"),
        "{md}"
    );
    assert!(rows[1].contains("p.yaml:3:"), "declared-at location: {md}");
    assert!(
        md.contains("<details><summary>1 group(s) in sync</summary>"),
        "{md}"
    );
    assert!(md.contains("an apply needs --allow-open"), "{md}");
    assert!(sim.writes().is_empty());

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("JSON");
    assert_eq!(json["summary"]["wouldChange"], 2);
    let open = json["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == "sg-open"))
        .cloned();
    assert_eq!(open.map(|g| g["direction"].clone()), Some("opens".into()));
}

#[tokio::test(flavor = "multi_thread")]
async fn opens_are_held_in_apply_mode_unless_allow_open_is_given() {
    let (seed, folder) = mixed_drift();
    let sim = Sim::start(&seed).await;
    let run1 = once(&sim, &folder, &[]).await;
    assert_eq!(run1.code, 1, "a held open fails the pass: {}", run1.stderr);
    assert_eq!(run1.group("sg-open")["outcome"], "held");
    assert_eq!(run1.group("sg-open")["error"]["code"], "OpenNotAllowed");
    assert_eq!(
        run1.group("sg-isolate")["outcome"],
        "changed",
        "isolation is not held back"
    );
    let written: Vec<_> = sim
        .writes()
        .into_iter()
        .filter_map(|c| c.group_id)
        .collect();
    assert_eq!(written, ["sg-isolate"]);
    assert_eq!(sim.policy(HZ, "sg-open"), Policy::Drop);

    let run2 = once(&sim, &folder, &["--allow-open"]).await;
    assert_eq!(run2.code, 0, "{}", run2.stderr);
    assert_eq!(run2.group("sg-open")["outcome"], "changed");
    assert_eq!(sim.policy(HZ, "sg-open"), Policy::Accept);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_over_max_changes_writes_nothing_and_says_how_many() {
    let ids: Vec<String> = (0..4).map(|i| format!("sg-many-{i}")).collect();
    let sim = Sim::start(&Seed::new().groups(HZ, &ids, Accept)).await;
    let folder = Folder::new().file(
        "p.yaml",
        PolicyFile::in_region(HZ).groups(&ids, Drop).yaml(),
    );
    let dir = dir_of(&folder);
    let text = run(
        &sim,
        &["--policies", &dir, "--once", "--max-changes", "3"],
        &[],
    )
    .await;
    assert_eq!(text.code, 1, "{}", text.stdout);
    assert!(
        text.stdout.contains("refused to apply: the plan has 4 changes, more than --max-changes 3; nothing was written"),
        "{}",
        text.stdout
    );
    assert!(sim.writes().is_empty(), "no write at all");
    let json = once(&sim, &folder, &["--max-changes", "3"]).await;
    assert_eq!(json.json()["summary"]["held"], 4);
    assert_eq!(
        json.group("sg-many-0")["error"]["code"],
        "MaxChangesExceeded"
    );
    // Exactly N is allowed; the default (20) is too.
    let ok = once(&sim, &folder, &["--max-changes", "4"]).await;
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(sim.effective_writes().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_only_groups_are_planned_and_counted_but_never_written() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-watch", "sg-fix"], Accept)).await;
    let folder = Folder::new().file(
        "p.yaml",
        PolicyFile::in_region(HZ)
            .observe("sg-watch", Drop)
            .group("sg-fix", Drop)
            .yaml(),
    );
    let plan = once(&sim, &folder, &["--dry-run", "--detailed-exitcode"]).await;
    assert_eq!(plan.code, 2, "sg-fix is real drift");
    assert_eq!(plan.group("sg-watch")["outcome"], "observed");
    assert_eq!(plan.group("sg-watch")["mode"], "observe");
    assert_eq!(plan.group("sg-watch")["direction"], "isolates");

    let apply = once(&sim, &folder, &[]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(apply.json()["summary"]["observed"], 1);
    assert_eq!(apply.json()["summary"]["changed"], 1);
    let written: Vec<_> = sim
        .writes()
        .into_iter()
        .filter_map(|c| c.group_id)
        .collect();
    assert_eq!(written, ["sg-fix"]);
    assert_eq!(sim.policy(HZ, "sg-watch"), Policy::Accept);

    // Only observe drift left: a dry run has nothing to change.
    let after = once(&sim, &folder, &["--dry-run", "--detailed-exitcode"]).await;
    assert_eq!(after.code, 0, "{}", after.stdout);
    let dir = dir_of(&folder);
    let text = run(&sim, &["--policies", &dir, "--once"], &[]).await;
    assert!(
        text.stdout.contains("observe only: Accept -> Drop"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1 observed (not written)"),
        "{}",
        text.stdout
    );
}

/// 150 payments groups in the VPC (two pages of 100), some named `pay-*`, plus 150 other groups that
/// server-side filters must keep off the wire.
fn estate() -> Seed {
    let mut seed = Seed::new();
    for i in 0..150 {
        let name = if i % 3 == 0 {
            format!("pay-{i}")
        } else {
            format!("other-{i}")
        };
        seed = seed
            .group(HZ, &format!("sg-pay-{i:03}"), Accept)
            .tagged("env", "prod")
            .tagged("team", "payments")
            .in_vpc("vpc-pay")
            .named(&name);
    }
    for i in 0..150 {
        seed = seed
            .group(HZ, &format!("sg-web-{i:03}"), Accept)
            .tagged("env", "prod")
            .tagged("team", "web")
            .in_vpc("vpc-pay")
            .named("pay-web");
    }
    seed
}

#[tokio::test(flavor = "multi_thread")]
async fn selectors_match_by_tags_vpc_and_name_across_pages_and_explicit_ids_win() {
    let sim = Sim::start(&estate()).await;
    let folder = Folder::new()
        .file(
            "selectors.yaml",
            PolicyFile::in_region(HZ)
                .selector(
                    Match::tags(&[("env", "prod"), ("team", "payments")])
                        .in_vpc("vpc-pay")
                        .named("pay-*"),
                    Drop,
                )
                .yaml(),
        )
        .file(
            "ids.yaml",
            PolicyFile::in_region(HZ).group("sg-pay-000", Accept).yaml(),
        );
    let plan = once(&sim, &folder, &["--dry-run", "--max-changes", "100"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let groups = plan.json()["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // 50 names match pay-* among the payments groups; sg-pay-000 is declared by id instead.
    assert_eq!(groups.len(), 50, "{}", plan.stdout);
    assert!(groups
        .iter()
        .all(|g| g["id"].as_str().is_some_and(|id| id.starts_with("sg-pay-"))));
    let explicit = plan.group("sg-pay-000");
    assert_eq!(explicit["outcome"], "in-sync");
    assert!(
        explicit["source"]
            .as_str()
            .is_some_and(|s| s.contains("ids.yaml:3:")),
        "{explicit}"
    );
    let selected = plan.group("sg-pay-003");
    assert_eq!(selected["outcome"], "would-change");
    assert!(
        selected["source"]
            .as_str()
            .is_some_and(|s| s.contains("selectors.yaml:3:5")),
        "{selected}"
    );
    // Listing: 150 tagged groups in pages of 100 (the 150 web groups never cross the wire), then the
    // usual metadata read of the 50 declared groups: three DescribeSecurityGroups calls.
    assert_eq!(sim.calls_of("DescribeSecurityGroups").len(), 3);

    let apply = once(&sim, &folder, &["--max-changes", "100"]).await;
    assert_eq!(apply.code, 0, "{}", apply.stderr);
    assert_eq!(sim.effective_writes().len(), 49);
    assert_eq!(sim.policy(HZ, "sg-pay-003"), Policy::Drop);
    assert_eq!(
        sim.policy(HZ, "sg-pay-001"),
        Policy::Accept,
        "name did not match"
    );
    assert_eq!(
        sim.policy(HZ, "sg-web-003"),
        Policy::Accept,
        "tags did not match"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn disagreeing_selectors_leave_the_group_alone_and_an_empty_selector_is_a_warning() {
    let sim = Sim::start(
        &Seed::new()
            .group(HZ, "sg-both", Accept)
            .tagged("env", "prod")
            .tagged("team", "payments")
            .group(HZ, "sg-prod", Accept)
            .tagged("env", "prod"),
    )
    .await;
    let folder = Folder::new().file(
        "s.yaml",
        PolicyFile::in_region(HZ)
            .selector(Match::tags(&[("env", "prod")]), Drop)
            .selector(Match::tags(&[("team", "payments")]), Accept)
            .selector(Match::tags(&[("team", "nobody")]), Drop)
            .yaml(),
    );
    let run1 = once(&sim, &folder, &[]).await;
    assert_eq!(run1.code, 1, "a conflict is an error: {}", run1.stdout);
    let j = run1.json();
    let notes = j["notes"].as_array().cloned().unwrap_or_default();
    let conflict = notes
        .iter()
        .find(|n| n["level"] == "error")
        .expect("conflict note");
    let msg = conflict["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("sg-both") && msg.contains("s.yaml:3:5") && msg.contains("s.yaml:5:5"),
        "{msg}"
    );
    let warning = notes
        .iter()
        .find(|n| n["level"] == "warning")
        .expect("empty-selector warning");
    assert!(warning["message"]
        .as_str()
        .unwrap_or_default()
        .contains("matched no security group"));
    assert_eq!(sim.policy(HZ, "sg-both"), Policy::Accept, "left alone");
    assert_eq!(
        sim.policy(HZ, "sg-prod"),
        Policy::Drop,
        "other groups proceed"
    );
}

/// Flags the daemon (issue 3, built in parallel) adds; once it is merged they are in `--help` and this
/// list only keeps the test from depending on the merge order.
const DAEMON_FLAGS: &[&str] = &["--interval", "--metrics-addr"];

fn flags_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("--") {
        let rest = &text[i + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let before = text[..i].chars().last();
        if !name.is_empty() && before.map_or(true, |c| c.is_whitespace() || c == '"' || c == '[') {
            out.push(format!("--{}", name.trim_end_matches('-')));
        }
    }
    out
}

/// The sgpolicy part of each command in a CI file: from the image name to a redirect, `||`, or the
/// next list item.
fn sgpolicy_commands(ci: &str) -> Vec<String> {
    ci.match_indices("\"$SGPOLICY_IMAGE\"")
        .map(|(i, m)| {
            let rest = &ci[i + m.len()..];
            let end = [" > ", " || ", "\n      - ", "\n    - ", "\n  artifacts"]
                .iter()
                .filter_map(|stop| rest.find(stop))
                .min()
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_files_use_only_documented_flags() {
    let mut documented: Vec<String> = DAEMON_FLAGS.iter().map(|s| s.to_string()).collect();
    for args in [&["--help"][..], &["validate", "--help"][..]] {
        documented.extend(flags_in(&offline(args).await.stdout));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read =
        |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut used: Vec<(String, String)> = Vec::new();
    for file in ["deploy/ci/github-actions.yml", "deploy/ci/gitlab-ci.yml"] {
        let commands = sgpolicy_commands(&read(file));
        assert!(commands.len() >= 3, "{file}: found {commands:?}");
        for c in commands {
            used.extend(flags_in(&c).into_iter().map(|f| (file.to_string(), f)));
        }
    }
    let unit = read("deploy/systemd/sgpolicy.service");
    let exec = unit
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .expect("ExecStart");
    used.extend(
        flags_in(exec)
            .into_iter()
            .map(|f| ("sgpolicy.service".to_string(), f)),
    );
    let deployment: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/kubernetes/base/deployment.yaml")).expect("yaml");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let agent = containers
        .iter()
        .find(|c| c["name"] == "sgpolicy")
        .expect("sgpolicy container");
    for a in agent["args"].as_sequence().cloned().unwrap_or_default() {
        let flag = a
            .as_str()
            .unwrap_or_default()
            .split('=')
            .next()
            .unwrap_or_default()
            .to_string();
        used.push(("deployment.yaml".into(), flag));
    }
    assert!(used.len() >= 10, "{used:?}");
    for (file, flag) in &used {
        assert!(
            documented.contains(flag),
            "{file} uses {flag}, which `sgpolicy --help` does not document"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_folder_still_fills_the_markdown_comment_and_the_report_file() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::with(&[(
        "p.yaml",
        "region: cn-hangzhou\ngroups:\n  - {id: sg-a, innerAccessPolicy: Allow}\n",
    )]);
    let out = tempfile::tempdir().expect("tempdir");
    let report = out.path().join("r.json");
    let report_arg = report.to_str().expect("utf-8").to_string();
    let dir = dir_of(&folder);
    let run = run(
        &sim,
        &[
            "--policies",
            &dir,
            "--once",
            "--dry-run",
            "--output",
            "markdown",
            "--report",
            &report_arg,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("The policy folder has 1 problem(s)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("p.yaml:3:"), "{}", run.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
            .expect("JSON");
    assert_eq!(json["errors"][0]["line"], 3);
    assert!(sim.calls().is_empty(), "no request at all");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_over_max_changes_warns_that_an_apply_would_refuse() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Accept)).await;
    let folder = Folder::new().file(
        "p.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    let plan = once(
        &sim,
        &folder,
        &["--dry-run", "--detailed-exitcode", "--max-changes", "1"],
    )
    .await;
    assert_eq!(plan.code, 2, "a plan is still a plan: {}", plan.stderr);
    let notes = plan.json()["notes"].clone();
    assert_eq!(notes[0]["level"], "warning");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("an apply would refuse this plan: 2 changes"),
        "{notes}"
    );
    assert!(sim.writes().is_empty());
}
