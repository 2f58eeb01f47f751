//! Coverage in the daemon (on by default, `--no-report-ungoverned` turns it off): after each full pass, `sgpolicy_ungoverned_groups` counts the
//! groups no policy file governs, and each newly ungoverned group is logged once.

use super::*;

const METRIC: &str = "sgpolicy_ungoverned_groups{region=\"cn-hangzhou\"}";

/// Creates a group in the simulator through its admin path, as a console user would.
async fn create_group(sim: &Sim, id: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sim/groups", sim.url))
        .json(&serde_json::json!({"id": id, "region": HZ, "innerAccessPolicy": "Accept", "name": "made-in-console"}))
        .send()
        .await
        .expect("create group");
    assert_eq!(r.status().as_u16(), 201, "group created");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_created_outside_git_shows_in_the_ungoverned_metric_after_the_next_full_pass_and_is_logged_once(
) {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Policy::Drop).group(
        HZ,
        "sg-b",
        Policy::Accept,
    ))
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Policy::Drop).yaml(),
    );
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    d.wait_metrics("sg-b ungoverned", |m| m.get(METRIC) == 1.0)
        .await;
    d.wait_log("security group sg-b is governed by no policy file")
        .await;

    create_group(&sim, "sg-new").await;
    d.signal("HUP");
    d.wait_metrics("sg-new ungoverned too", |m| m.get(METRIC) == 2.0)
        .await;
    d.wait_log("security group sg-new is governed by no policy file")
        .await;
    d.signal("HUP");
    d.wait_log_count("trigger=\"signal\"", 2).await;
    let m = d.metrics().await;
    assert_eq!(m.get(METRIC), 2.0, "{}", m.text);
    for id in ["sg-b", "sg-new"] {
        assert_eq!(
            d.lines_with(&format!(
                "security group {id} is governed by no policy file"
            ))
            .len(),
            1,
            "{id} is logged once, not on every pass"
        );
    }

    // Declaring the new group in Git governs it: the next full pass counts one.
    write_atomically(
        &folder.path().join("prod.yaml"),
        &PolicyFile::in_region(HZ)
            .group("sg-a", Policy::Drop)
            .group("sg-new", Policy::Accept)
            .yaml(),
    );
    d.wait_log("trigger=\"file\"").await;
    d.signal("HUP");
    d.wait_metrics("only sg-b ungoverned", |m| m.get(METRIC) == 1.0)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_report_ungoverned_the_daemon_makes_no_coverage_listing() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Policy::Drop).group(
        HZ,
        "sg-b",
        Policy::Accept,
    ))
    .await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ).group("sg-a", Policy::Drop).yaml(),
    );
    let d = Daemon::start(
        &sim,
        folder.path(),
        &["--interval", "1h", "--no-report-ungoverned"],
    )
    .await;
    d.wait_log("trigger=\"startup\"").await;
    let m = d.metrics().await;
    assert!(
        !m.text.contains("sgpolicy_ungoverned_groups{"),
        "{}",
        m.text
    );
    assert_eq!(
        sim.calls_of("DescribeSecurityGroups").len(),
        1,
        "only the pass's own metadata read"
    );
}
