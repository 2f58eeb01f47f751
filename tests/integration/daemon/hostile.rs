//! The daemon against hostile folders: a link out of the folder appearing under a running daemon, and
//! trace logging written into the folder or next to it (each log line is a file event).

use super::*;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::os::unix::fs::symlink;

#[tokio::test(flavor = "multi_thread")]
async fn a_link_to_the_root_after_sighup_keeps_the_last_good_state_enforced_and_readyz_says_why() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a"], Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let mut d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;

    symlink("/", folder.path().join("r")).expect("symlink");
    d.signal("HUP");
    let line = d.wait_log("outside the policy folder").await;
    assert!(line.contains("/r:1:1: symlink to \"/\""), "{line}");
    let body = eventually("/readyz to say why", DEADLINE, || async {
        match d.get("/readyz").await {
            (200, body) if body.contains("symlink to") => Ok(body),
            (status, body) => Err(d.saw(format!("{status} {body}"))),
        }
    })
    .await;
    assert!(
        body.contains("degraded") && body.contains("enforcing last good revision"),
        "{body}"
    );

    // A console flip is still corrected from the last good state on the next SIGHUP.
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    d.signal("HUP");
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    d.signal("TERM");
    assert_eq!(d.wait_exit().await, 0, "{}", d.log_text());
}

/// Starts a daemon on `policies` with `RUST_LOG=trace` and its stderr appended to `log`, a file the
/// daemon itself watches (inside the folder or in its parent).
async fn trace_logging_into(sim: &Sim, policies: &Path, log: &Path) -> Daemon {
    let stderr = std::fs::File::create(log).expect("log file");
    let child = tokio::process::Command::new(BIN)
        .arg("--policies")
        .arg(policies)
        .args(["--metrics-addr", "127.0.0.1:0", "--interval", "1h"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "testid")
        .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "testsecret")
        .env("ALIBABA_CLOUD_ENDPOINT_ECS", &sim.url)
        .env("ALIBABA_CLOUD_ENDPOINT_ACTIONTRAIL", &sim.url)
        .env("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sgpolicy");
    let url = eventually("the metrics address in the log file", DEADLINE, || async {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("serving /metrics"))
            .and_then(|l| l.split("http://").nth(1))
            .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
            .map(|addr| format!("http://{addr}"))
            .ok_or_else(|| format!("{} bytes of log", text.len()))
    })
    .await;
    Daemon {
        child,
        log: Arc::new(Mutex::new(Vec::new())),
        metrics_url: Some(url),
    }
}

/// Three SIGHUP passes after the first, then: no pass was started by a file change (nothing in the
/// folder changed), and no log line is about the log file (the line that would start the loop).
async fn assert_the_log_does_not_feed_itself(d: &Daemon, log: &Path) {
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;
    for n in 1..=3 {
        d.signal("HUP");
        d.wait_metrics(&format!("{n} SIGHUP pass(es)"), |m| {
            m.sum("sgpolicy_passes_total", &["trigger=\"signal\""]) >= f64::from(n)
        })
        .await;
    }
    let m = d.metrics().await;
    assert_eq!(
        m.sum("sgpolicy_passes_total", &["trigger=\"file\""]),
        0.0,
        "{}",
        m.text
    );
    let text = std::fs::read_to_string(log).expect("log");
    let name = log.file_name().and_then(|n| n.to_str()).expect("name");
    let about_the_log = text.lines().filter(|l| l.contains(name)).count();
    assert_eq!(
        about_the_log,
        0,
        "{} lines, e.g. {:?}",
        text.lines().count(),
        text.lines().find(|l| l.contains(name))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_logging_into_the_watched_parent_folder_does_not_feed_itself() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a"], Drop)).await;
    let parent = Folder::new().file(
        "policies/prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let log = parent.path().join("sgpolicy.log");
    let d = trace_logging_into(&sim, &parent.path().join("policies"), &log).await;
    assert_the_log_does_not_feed_itself(&d, &log).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trace_logging_into_the_policy_folder_itself_starts_no_pass() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a"], Drop)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    let log = folder.path().join("sgpolicy.log");
    let d = trace_logging_into(&sim, folder.path(), &log).await;
    assert_the_log_does_not_feed_itself(&d, &log).await;
}

/// A user name built to forge an audit line of its own, with an escape sequence to hide the seam.
const FORGED_USER: &str =
    "alice\n2026-12-07T10:00:00.000000Z  INFO sgpolicy::audit: write group=sg-b outcome=\"changed\"\u{1b}[2K";

#[tokio::test(flavor = "multi_thread")]
async fn an_event_author_built_to_forge_an_audit_line_is_escaped_in_the_human_log() {
    const TOKEN: &str = "a-bearer-token-for-the-hostile-test";
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Drop)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    let side = tempfile::tempdir().expect("tempdir");
    let token = side.path().join("token");
    std::fs::write(&token, TOKEN).expect("token file");
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let target: sgpolicy_sim::PushTarget = serde_json::from_value(serde_json::json!({
        "url": format!("http://{addr}/events"), "token": TOKEN,
    }))
    .expect("a push target");
    sim.sim
        .set_eventbridge(sgpolicy_sim::EventBridgeConfig {
            targets: vec![target],
        })
        .expect("eventbridge");
    let token = token.to_str().expect("utf-8 path");
    let d = Daemon::start(
        &sim,
        folder.path(),
        &[
            "--events-poll",
            "0",
            "--events-addr",
            &addr,
            "--events-token-file",
            token,
        ],
    )
    .await;
    d.wait_metrics("the start-up pass", |m| {
        m.sum("sgpolicy_passes_total", &["trigger=\"startup\""]) >= 1.0
    })
    .await;

    let actor = sgpolicy_sim::ConsoleActor {
        user_name: Some(FORGED_USER.into()),
        ..Default::default()
    };
    sim.sim
        .flip_in_console(HZ, "sg-a", Policy::Accept, &actor)
        .expect("sg-a exists");
    let audit = d.wait_log("changed_by=ram-user alice").await;
    assert!(
        audit.contains("group=sg-a") && audit.contains("alice\\n2026-12-07T10:00:00.000000Z  INFO"),
        "{audit}"
    );
    assert!(
        audit.contains("\\u{1b}[2K") && !audit.contains('\u{1b}'),
        "{audit}"
    );
    let forged = d.lines_with("write group=sg-b");
    assert!(
        forged
            .iter()
            .all(|l| l.contains("changed_by=ram-user alice\\n")),
        "a line of its own: {forged:#?}"
    );
}
