//! Hostile policy folders against the real binary: links out of the folder, file contents that must
//! never be echoed, and file names built to forge lines in every output (text, GitHub annotations,
//! Markdown, JSON, human and JSON logs).

use crate::harness::*;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::os::unix::fs::symlink;

const HZ: &str = "cn-hangzhou";

/// A name that tries everything: a new line holding a workflow command, a carriage return, an escape
/// sequence, Markdown and HTML.
const FORGED: &str = "x\n::notice title=forged::owned\r\u{1b}[31m|`<b>#";

/// Runs the binary with no credentials and no network configuration; a run that outlives the
/// deadline is killed and fails the test (on main, `validate` walked `/` without end).
async fn offline(args: &[&str]) -> Run {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(DEADLINE, child).await {
        Ok(out) => out.expect("run sgpolicy").into(),
        Err(_) => panic!("sgpolicy {args:?} did not finish within {DEADLINE:?}"),
    }
}

fn dir_of(folder: &Folder) -> String {
    folder.path().to_str().expect("utf-8 temp path").to_string()
}

fn assert_no_forged_line(out: &str, what: &str) {
    assert!(
        !out.contains('\r') && !out.contains('\u{1b}'),
        "{what}: a raw control character:\n{out}"
    );
    for line in out.lines() {
        assert!(
            !line.trim_start().starts_with("::notice"),
            "{what}: a forged workflow command:\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_the_root_of_the_file_system_makes_validate_fail_fast_naming_the_link() {
    let folder = Folder::new().file(
        "p.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    symlink("/", folder.path().join("r")).expect("symlink");
    let dir = dir_of(&folder);
    let run = offline(&["validate", &dir]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "{dir}/r:1:1: symlink to \"/\", outside the policy folder"
        )),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_contents_behind_a_link_out_of_the_folder_never_reach_stderr_annotations_or_markdown()
{
    // A bare scalar is what main echoed: "expected a mapping with `groups:`, found \"LTAI5t…\"".
    const SECRET: &str = "LTAI5tSeCrEtAcCeSsKeY0123456789";
    let outside = Folder::new().file("credentials", SECRET);
    let folder = Folder::new().file(
        "ok.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    symlink(
        outside.path().join("credentials"),
        folder.path().join("creds.yaml"),
    )
    .expect("symlink");
    let dir = dir_of(&folder);
    let text = offline(&["validate", &dir]).await;
    let github = offline(&["validate", &dir, "--output", "github"]).await;
    let markdown = offline(&[
        "--policies",
        &dir,
        "--once",
        "--dry-run",
        "--output",
        "markdown",
    ])
    .await;
    let json = offline(&[
        "--policies",
        &dir,
        "--once",
        "--dry-run",
        "--output",
        "json",
    ])
    .await;
    for (what, run) in [
        ("text", &text),
        ("github", &github),
        ("markdown", &markdown),
        ("json", &json),
    ] {
        assert_ne!(run.code, 0, "{what}: {}{}", run.stdout, run.stderr);
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(all.contains("creds.yaml"), "{what} names the link: {all}");
        assert!(
            !all.contains("LTAI5t") && !all.contains("0123456789"),
            "{what} leaked the file: {all}"
        );
    }
    assert!(
        github.stdout.starts_with("::error file="),
        "{}",
        github.stdout
    );
    assert!(markdown.stdout.contains("- `"), "{}", markdown.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_name_built_to_forge_lines_stays_on_its_own_line_in_validate_and_plan_outputs() {
    let folder = Folder::new().file(
        &format!("{FORGED}.yaml"),
        "groups: [{id: sg-a, region: cn-hangzhou}]\n",
    );
    let dir = dir_of(&folder);
    let text = offline(&["validate", &dir]).await;
    assert_no_forged_line(&text.stdout, "text");
    assert_eq!(text.stdout.lines().count(), 2, "{}", text.stdout);
    assert!(
        text.stdout
            .contains("x\\n::notice title=forged::owned\\r\\u{1b}[31m"),
        "{}",
        text.stdout
    );

    let github = offline(&["validate", &dir, "--output", "github"]).await;
    assert_no_forged_line(&github.stdout, "github");
    assert_eq!(github.stdout.lines().count(), 2, "{}", github.stdout);
    assert!(
        github
            .stdout
            .contains("x%0A%3A%3Anotice title=forged%3A%3Aowned%0D"),
        "{}",
        github.stdout
    );

    let md = offline(&[
        "--policies",
        &dir,
        "--once",
        "--dry-run",
        "--output",
        "markdown",
    ])
    .await;
    assert_no_forged_line(&md.stdout, "markdown");
    let items: Vec<&str> = md.stdout.lines().filter(|l| l.starts_with("- ")).collect();
    assert_eq!(items.len(), 1, "one list item per problem: {}", md.stdout);
    assert!(
        !md.stdout.contains("<b>") && items[0].contains("&lt;b&gt;"),
        "{}",
        md.stdout
    );

    let json = offline(&[
        "--policies",
        &dir,
        "--once",
        "--dry-run",
        "--output",
        "json",
    ])
    .await;
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let path = doc["errors"][0]["path"].as_str().expect("a path");
    assert!(
        path.ends_with(&format!("{FORGED}.yaml")),
        "serde gives the name back: {path:?}"
    );
    assert_no_forged_line(&json.stderr, "stderr");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_line_for_a_file_name_built_to_forge_lines_is_one_line_in_both_log_formats() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a"], Accept)).await;
    let folder = Folder::new().file(
        &format!("{FORGED}.yaml"),
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let dir = dir_of(&folder);
    let human = run(&sim, &["--policies", &dir, "--once"], &[]).await;
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert_no_forged_line(&human.stderr, "human log");
    let audit: Vec<&str> = human
        .stderr
        .lines()
        .filter(|l| l.contains("sgpolicy::audit"))
        .collect();
    assert_eq!(audit.len(), 1, "{}", human.stderr);
    assert!(
        audit[0].contains("x\\n::notice title=forged::owned\\r\\u{1b}[31m"),
        "{}",
        audit[0]
    );

    assert!(sim.sim.set_policy(HZ, "sg-a", sgpolicy_sim::Policy::Accept));
    let json = run(
        &sim,
        &["--policies", &dir, "--once", "--log-format", "json"],
        &[],
    )
    .await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let lines: Vec<serde_json::Value> = json
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let audit: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "sgpolicy::audit")
        .collect();
    assert_eq!(audit.len(), 1, "{}", json.stderr);
    let source = audit[0]["source"].as_str().expect("source");
    assert!(source.contains("x\\n::notice"), "{source:?}");
}
