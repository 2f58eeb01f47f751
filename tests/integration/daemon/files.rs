//! The daemon following policy folders as they really change: editor rename, many files, git-sync link
//! swap, ConfigMap `..data` swap, a folder removed or not there yet, and an invalid edit (last good
//! state).

use super::*;
use sgpolicy_sim::Policy::{Accept, Drop};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn an_editor_rename_over_is_applied_to_the_changed_group_only() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-a", Drop)
            .group("sg-b", Accept)
            .yaml(),
    );
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    d.wait_log("trigger=\"startup\"").await;
    let reads_a = reads_of(&sim, "sg-a");

    let changed_at = Instant::now();
    write_atomically(
        &folder.path().join("prod.yaml"),
        &PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    wait_policy(&sim, "sg-b", Policy::Drop, &d).await;
    let latency = changed_at.elapsed();
    eprintln!("file-change-to-write latency (rename over, 300ms debounce): {latency:?}");
    d.wait_log("trigger=\"file\"").await;
    assert_eq!(writes_to(&sim, "sg-b"), 1);
    assert_eq!(writes_to(&sim, "sg-a"), 1, "only the start-up write");
    assert_eq!(
        reads_of(&sim, "sg-a"),
        reads_a,
        "a file pass reads only the group whose declaration changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkout_of_many_files_is_applied_with_one_write_per_group() {
    let ids: Vec<String> = (0..20).map(|i| format!("sg-many-{i:02}")).collect();
    let sim = Sim::start(&Seed::new().groups(HZ, &ids, Accept)).await;
    let folder = Folder::new();
    for id in &ids {
        folder.write(
            &format!("team/{id}.yaml"),
            &PolicyFile::in_region(HZ).group(id, Accept).yaml(),
        );
    }
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1h"]).await;
    d.wait_log("trigger=\"startup\"").await;
    assert!(sim.writes().is_empty());
    // `git checkout`: every file rewritten in place, as fast as the disk allows.
    for id in &ids {
        std::fs::write(
            folder.path().join(format!("team/{id}.yaml")),
            PolicyFile::in_region(HZ).group(id, Drop).yaml(),
        )
        .unwrap();
    }
    for id in &ids {
        wait_policy(&sim, id, Policy::Drop, &d).await;
    }
    for id in &ids {
        assert_eq!(writes_to(&sim, id), 1, "{id}");
    }
}

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

#[tokio::test(flavor = "multi_thread")]
async fn a_git_sync_link_swap_is_followed_and_every_write_is_audited_with_its_commit() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Accept)).await;
    let root = tempfile::tempdir().unwrap();
    let worktree = |sha: &str, text: &str| {
        let dir = root.path().join(".worktrees").join(sha).join("policies");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prod.yaml"), text).unwrap();
    };
    worktree(
        SHA1,
        &PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Accept)
            .yaml(),
    );
    std::os::unix::fs::symlink(format!(".worktrees/{SHA1}"), root.path().join("repo")).unwrap();
    // The folder is a subfolder of the link, so the swap happens two levels above it.
    let policies = root.path().join("repo/policies");
    let d = Daemon::start(
        &sim,
        &policies,
        &["--interval", "1h", "--log-format", "json"],
    )
    .await;
    d.wait_log("pass finished").await;

    // git-sync: new worktree, new link, atomic rename over the old link, old worktree removed.
    worktree(
        SHA2,
        &PolicyFile::in_region(HZ)
            .group("sg-a", Drop)
            .group("sg-b", Accept)
            .yaml(),
    );
    std::os::unix::fs::symlink(format!(".worktrees/{SHA2}"), root.path().join("tmp-link")).unwrap();
    std::fs::rename(root.path().join("tmp-link"), root.path().join("repo")).unwrap();
    std::fs::remove_dir_all(root.path().join(".worktrees").join(SHA1)).unwrap();
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;

    let audit: serde_json::Value =
        serde_json::from_str(&d.wait_log("sgpolicy::audit").await).unwrap();
    let write = &sim.writes()[0];
    assert_eq!(audit["group"], "sg-a");
    assert_eq!(audit["region"], HZ);
    assert_eq!(audit["from"], "Accept");
    assert_eq!(audit["to"], "Drop");
    assert_eq!(audit["commit"], SHA2);
    assert_eq!(audit["outcome"], "changed");
    assert_eq!(
        audit["client_token"].as_str(),
        write.client_token.as_deref()
    );
    assert_eq!(
        audit["request_id"].as_str(),
        Some(write.request_id.as_str())
    );
    assert!(
        audit["source"]
            .as_str()
            .unwrap()
            .ends_with("repo/policies/prod.yaml:3:5"),
        "{audit}"
    );
    assert!(audit["revision"].as_str().is_some_and(|r| !r.is_empty()));
    let summary: serde_json::Value =
        serde_json::from_str(&d.wait_log("pass finished").await).unwrap();
    assert!(summary["duration_ms"].is_u64(), "{summary}");

    // The watch follows the new worktree: an edit inside it is seen too.
    let new_file = root
        .path()
        .join(".worktrees")
        .join(SHA2)
        .join("policies/prod.yaml");
    write_atomically(
        &new_file,
        &PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    wait_policy(&sim, "sg-b", Policy::Drop, &d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_data_swap_is_followed() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let folder = Folder::new();
    let p = folder.path();
    let version = |name: &str, text: &str| {
        std::fs::create_dir_all(p.join(name)).unwrap();
        std::fs::write(p.join(name).join("prod.yaml"), text).unwrap();
    };
    version(
        "..2026_11_28_04_00_00.1",
        &PolicyFile::in_region(HZ).group("sg-a", Accept).yaml(),
    );
    std::os::unix::fs::symlink("..2026_11_28_04_00_00.1", p.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/prod.yaml", p.join("prod.yaml")).unwrap();
    let d = Daemon::start(&sim, p, &["--interval", "1h"]).await;
    d.wait_log("pass finished").await;

    // What the kubelet does on a ConfigMap update.
    version(
        "..2026_11_28_04_05_00.2",
        &PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    );
    std::os::unix::fs::symlink("..2026_11_28_04_05_00.2", p.join("..data_tmp")).unwrap();
    std::fs::rename(p.join("..data_tmp"), p.join("..data")).unwrap();
    std::fs::remove_dir_all(p.join("..2026_11_28_04_00_00.1")).unwrap();
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    assert_eq!(writes_to(&sim, "sg-a"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_folder_is_reported_and_picked_up_again_when_it_returns() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let parent = tempfile::tempdir().unwrap();
    let policies = parent.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("prod.yaml"),
        PolicyFile::in_region(HZ).group("sg-a", Accept).yaml(),
    )
    .unwrap();
    let d = Daemon::start(&sim, &policies, &["--interval", "1h"]).await;
    d.wait_log("pass finished").await;

    std::fs::remove_dir_all(&policies).unwrap();
    d.wait_log("policy folder does not exist").await;
    let m = d
        .wait_metrics("a load error", |m| {
            m.get("sgpolicy_policy_load_errors") >= 1.0
        })
        .await;
    assert!(m.get("sgpolicy_policy_load_failures_total") >= 1.0);
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 200, "the last good state is still enforced: {body}");
    assert!(body.contains("degraded"), "{body}");

    // Re-created by a rename, the way a deploy script would put it back.
    let staging = parent.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(
        staging.join("prod.yaml"),
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    )
    .unwrap();
    std::fs::rename(&staging, &policies).unwrap();
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    d.wait_metrics("no load errors", |m| {
        m.get("sgpolicy_policy_load_errors") == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_edit_keeps_the_last_good_state_enforced_until_it_is_fixed() {
    let sim = Sim::start(&Seed::new().groups(HZ, ["sg-a", "sg-b"], Accept)).await;
    let folder = Folder::new().file(
        "prod.yaml",
        PolicyFile::in_region(HZ)
            .group("sg-a", Drop)
            .group("sg-b", Accept)
            .yaml(),
    );
    let d = Daemon::start(&sim, folder.path(), &["--interval", "1s"]).await;
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;

    // A broken edit that would also change sg-b: none of it may be applied.
    let broken = "region: cn-hangzhou\ngroups:\n  - id: sg-a\n    innerAccessPolicy: Drop\n  - id: sg-b\n    innerAccessPolicy: Drop\n    innerAcessPolicy: Drop\n";
    write_atomically(&folder.path().join("prod.yaml"), broken);
    let line = d.wait_log("prod.yaml:7:5").await;
    assert!(line.contains("did you mean"), "{line}");
    d.wait_metrics("the load errors", |m| {
        m.get("sgpolicy_policy_load_errors") == 1.0
    })
    .await;
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("degraded") && body.contains("1 error"),
        "{body}"
    );

    // Meanwhile a console flip of sg-a is still corrected from the last good state by the resync.
    assert!(sim.sim.set_policy(HZ, "sg-a", Policy::Accept));
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    assert_eq!(
        sim.policy(HZ, "sg-b"),
        Policy::Accept,
        "nothing from the broken version"
    );
    assert_eq!(writes_to(&sim, "sg-b"), 0);

    // Fixed: the new state is picked up.
    write_atomically(
        &folder.path().join("prod.yaml"),
        &PolicyFile::in_region(HZ)
            .groups(["sg-a", "sg-b"], Drop)
            .yaml(),
    );
    wait_policy(&sim, "sg-b", Policy::Drop, &d).await;
    d.wait_metrics("no load errors", |m| {
        m.get("sgpolicy_policy_load_errors") == 0.0
    })
    .await;
    let (_, body) = d.get("/readyz").await;
    assert!(!body.contains("degraded"), "{body}");

    // Truncated by a bad merge: an empty file is an error too, and the last good state stays enforced.
    write_atomically(&folder.path().join("prod.yaml"), "# conflict resolved\n");
    d.wait_log("prod.yaml:1:1: the file is empty").await;
    d.wait_metrics("the load error", |m| {
        m.get("sgpolicy_policy_load_errors") == 1.0
    })
    .await;
    assert!(sim.sim.set_policy(HZ, "sg-b", Policy::Accept));
    wait_policy(&sim, "sg-b", Policy::Drop, &d).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_that_does_not_exist_yet_is_waited_for_like_git_syncs_first_sync() {
    let sim = Sim::start(&Seed::new().group(HZ, "sg-a", Accept)).await;
    let root = tempfile::tempdir().unwrap();
    let policies = root.path().join("repo").join("policies");
    let d = Daemon::start(&sim, &policies, &["--interval", "1h"]).await;
    d.wait_log("does not exist yet").await;
    d.wait_log("pass finished").await;
    let (status, body) = d.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no earlier version"), "{body}");
    assert!(sim.calls().is_empty());

    // git-sync's first sync: the worktree appears and the link is created.
    let wt = root.path().join(".worktrees").join(SHA1).join("policies");
    std::fs::create_dir_all(&wt).unwrap();
    std::fs::write(
        wt.join("prod.yaml"),
        PolicyFile::in_region(HZ).group("sg-a", Drop).yaml(),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!(".worktrees/{SHA1}"), root.path().join("repo")).unwrap();
    wait_policy(&sim, "sg-a", Policy::Drop, &d).await;
    eventually("the daemon to be ready", DEADLINE, || async {
        let (status, body) = d.get("/readyz").await;
        if status == 200 {
            Ok(())
        } else {
            Err(d.saw(format!("/readyz answers {status}: {body}")))
        }
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        m.get(&format!(
            "sgpolicy_policy_revision_info{{revision=\"{}\",commit=\"{SHA1}\"}}",
            revision_in(&d)
        )),
        1.0,
        "{}",
        m.text
    );
}

/// The revision of the last "policy folder ... loaded" line.
fn revision_in(d: &Daemon) -> String {
    let line = d
        .lines_with("loaded revision=")
        .pop()
        .expect("a loaded line");
    line.split("revision=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}
