//! Sharded replicas (issue 13): three `sgpolicy --once --shard-index I --shard-count 3` processes on
//! loopback against one simulator holding 30 (account, region) buckets — the chain's own account and
//! two reached through roles, each in 10 regions. Together they converge every group exactly once,
//! each bucket is read by exactly one of them (the simulator's per-bucket counts are one reader's
//! formula), and the union of what they report is the folder; going from 3 to 4 shards moves only the
//! buckets the fourth shard takes. The daemons' ownership metrics are in `daemon::shards`.

use crate::harness::*;
use serde_json::Value;
use sgpolicy_sim::Policy::{Accept, Drop};
use sgpolicy_sim::DEFAULT_ACCOUNT;
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const PROD: &str = "2222222222222222";
pub(crate) const STAGING: &str = "3333333333333333";
pub(crate) const REGIONS: [&str; 10] = [
    "cn-hangzhou",
    "cn-shanghai",
    "cn-beijing",
    "cn-shenzhen",
    "cn-qingdao",
    "cn-zhangjiakou",
    "cn-hongkong",
    "ap-southeast-1",
    "eu-central-1",
    "us-west-1",
];
/// Groups per bucket, of which the first `DRIFTED` differ from the folder.
pub(crate) const PER_BUCKET: usize = 4;
pub(crate) const DRIFTED: usize = 3;

/// A bucket as the agent names it: the account empty for the chain's own.
pub(crate) type Bucket = (String, String);

/// The agent's account ids: "" (the chain's own), PROD, STAGING.
pub(crate) fn accounts() -> [&'static str; 3] {
    ["", PROD, STAGING]
}

pub(crate) fn buckets() -> Vec<Bucket> {
    accounts()
        .iter()
        .flat_map(|a| REGIONS.iter().map(move |r| (a.to_string(), r.to_string())))
        .collect()
}

fn short(account: &str) -> &str {
    match account {
        "" => "own",
        PROD => "prod",
        _ => "staging",
    }
}

pub(crate) fn group_id(account: &str, region: &str, n: usize) -> String {
    format!("sg-{}-{region}-{n}", short(account))
}

/// The simulator's account id for an agent account id.
fn sim_account(account: &str) -> &str {
    if account.is_empty() {
        DEFAULT_ACCOUNT
    } else {
        account
    }
}

/// 120 groups: every bucket has `DRIFTED` groups at Accept and one at Drop; the folder says Drop.
pub(crate) fn estate() -> (Seed, Folder) {
    let mut seed = Seed::new().role(&role_arn(PROD)).role(&role_arn(STAGING));
    let mut folder = Folder::new();
    for (account, region) in buckets() {
        let mut file = PolicyFile::in_region(&region);
        if !account.is_empty() {
            file = file.assuming_role(&role_arn(&account));
        }
        for n in 0..PER_BUCKET {
            let id = group_id(&account, &region, n);
            seed = seed.group(&region, &id, if n < DRIFTED { Accept } else { Drop });
            if !account.is_empty() {
                seed = seed.in_account(&account);
            }
            file = file.group(&id, Drop);
        }
        folder = folder.file(&format!("{}/{region}.yaml", short(&account)), file.yaml());
    }
    (seed, folder)
}

/// One replica's `--once` run, with STS pointed at the simulator too.
async fn replica(sim: &Sim, folder: &Folder, index: u32, count: u32, extra: &[&str]) -> Run {
    let dir = folder.path().to_str().expect("utf-8 path").to_string();
    let (index, count) = (index.to_string(), count.to_string());
    let mut args = vec![
        "--policies",
        dir.as_str(),
        "--once",
        "--output",
        "json",
        "--max-changes",
        "1000",
        "--max-rps",
        "5000",
        "--shard-index",
        index.as_str(),
        "--shard-count",
        count.as_str(),
    ];
    args.extend_from_slice(extra);
    let sts = [("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))];
    run(sim, &args, &sts).await
}

/// All `count` replicas at once; their runs by index.
async fn replicas(sim: &Sim, folder: &Folder, count: u32, extra: &[&str]) -> Vec<Run> {
    let runs = futures::future::join_all((0..count).map(|i| replica(sim, folder, i, count, extra)));
    let runs = runs.await;
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.code, 0, "replica {i} failed:\n{}\n{}", r.stdout, r.stderr);
    }
    runs
}

/// The (account, region, id) of every group a run reports, with its outcome.
fn reported(run: &Run) -> BTreeMap<(String, String, String), String> {
    run.json()["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g: &Value| {
            let key = (
                g["account"].as_str().unwrap_or("").to_string(),
                g["region"].as_str().expect("region").to_string(),
                g["id"].as_str().expect("id").to_string(),
            );
            (key, g["outcome"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn buckets_of(run: &Run) -> BTreeSet<Bucket> {
    reported(run).into_keys().map(|(a, r, _)| (a, r)).collect()
}

#[tokio::test]
async fn three_shards_converge_every_group_once_each_bucket_read_by_one_replica_and_four_move_only_what_the_fourth_takes(
) {
    let (seed, folder) = estate();
    let sim = Sim::start(&seed).await;
    let runs = replicas(&sim, &folder, 3, &[]).await;

    // The union of what they report is the folder, and no group is reported twice.
    let mut union = BTreeMap::new();
    for run in &runs {
        for (key, outcome) in reported(run) {
            assert!(
                union.insert(key.clone(), outcome).is_none(),
                "{key:?} reported twice"
            );
        }
    }
    let folder_keys: BTreeSet<(String, String, String)> = buckets()
        .into_iter()
        .flat_map(|(a, r)| {
            (0..PER_BUCKET).map(move |n| (a.clone(), r.clone(), group_id(&a, &r, n)))
        })
        .collect();
    assert_eq!(union.keys().cloned().collect::<BTreeSet<_>>(), folder_keys);
    let changed = union.values().filter(|o| *o == "changed").count();
    assert_eq!(changed, buckets().len() * DRIFTED, "{union:?}");
    let revisions: BTreeSet<String> = runs
        .iter()
        .map(|r| r.json()["revision"].as_str().expect("revision").to_string())
        .collect();
    assert_eq!(
        revisions.len(),
        1,
        "every replica names the whole folder's revision"
    );

    // Every group converged, each drifted one by exactly one effective write.
    for (a, r, id) in &folder_keys {
        assert_eq!(
            sim.sim.policy_of_in(sim_account(a), r, id),
            Some(Drop),
            "{a}/{r}/{id}"
        );
    }
    let counts = sim.sim.call_counts();
    assert_eq!(counts.effective as usize, buckets().len() * DRIFTED);
    let mut written = BTreeSet::new();
    for w in sim.effective_writes() {
        assert!(
            written.insert((w.account.clone(), w.group_id.clone())),
            "{w:?} twice"
        );
    }

    // Each bucket got exactly one reader's calls (the formula for one pass over it): a second
    // reader would double them, a missing one leave them at zero.
    for (a, r) in buckets() {
        let of = |action| counts.of_bucket(sim_account(&a), &r, action);
        assert_eq!(
            (
                of("DescribeSecurityGroups"),
                of("DescribeSecurityGroupAttribute"),
                of("ModifySecurityGroupPolicy"),
            ),
            (1, (PER_BUCKET + DRIFTED) as u64, DRIFTED as u64),
            "bucket {a}/{r}"
        );
    }
    // ... and that reader is the replica the rendezvous hash names, which reported its groups only.
    for (i, run) in runs.iter().enumerate() {
        let owned = buckets_of(run);
        for (a, r) in &owned {
            assert_eq!(sgpolicy::shard::owner(a, r, 3) as usize, i, "{a}/{r}");
        }
        let calls: u64 = run.json()["apiCalls"]
            .as_object()
            .expect("apiCalls")
            .iter()
            .filter(|(action, _)| action.starts_with("Describe") || action.starts_with("Modify"))
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum();
        let per_bucket = (1 + PER_BUCKET + 2 * DRIFTED) as u64;
        assert_eq!(
            calls,
            owned.len() as u64 * per_bucket,
            "replica {i}'s own calls"
        );
    }

    // From 3 shards to 4: only buckets the new fourth shard takes move.
    let before: BTreeMap<Bucket, usize> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, run)| buckets_of(run).into_iter().map(move |b| (b, i)))
        .collect();
    let after_runs = replicas(&sim, &folder, 4, &["--dry-run"]).await;
    let after: BTreeMap<Bucket, usize> = after_runs
        .iter()
        .enumerate()
        .flat_map(|(i, run)| buckets_of(run).into_iter().map(move |b| (b, i)))
        .collect();
    assert_eq!(after.len(), 30, "every bucket has an owner among four");
    let moved: Vec<&Bucket> = before.keys().filter(|b| before[*b] != after[*b]).collect();
    eprintln!(
        "3 → 4 shards: {} of 30 buckets moved: {moved:?}",
        moved.len()
    );
    assert!(
        moved.iter().all(|b| after[*b] == 3),
        "a bucket moved between old shards"
    );
    assert!(
        !moved.is_empty() && moved.len() <= 15,
        "{} moved",
        moved.len()
    );
    assert_eq!(
        after.values().filter(|i| **i == 3).count(),
        moved.len(),
        "the fourth shard owns just what moved"
    );
}

#[tokio::test]
async fn without_shard_flags_one_replica_does_everything_as_before() {
    let (seed, folder) = estate();
    let sim = Sim::start(&seed).await;
    let dir = folder.path().to_str().expect("utf-8 path").to_string();
    let sts = [("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str()))];
    let args = [
        "--policies",
        dir.as_str(),
        "--once",
        "--output",
        "json",
        "--dry-run",
        "--max-rps",
        "5000",
    ];
    let run = run(&sim, &args, &sts).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(reported(&run).len(), buckets().len() * PER_BUCKET);
    assert!(
        !run.stderr.contains("owns"),
        "no shard line without shards:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_shard_index_not_below_the_count_exits_64_before_any_request() {
    let (seed, folder) = estate();
    let sim = Sim::start(&seed).await;
    let run = replica(&sim, &folder, 3, 3, &[]).await;
    assert_eq!(run.code, 64, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("shard index 3 is not below --shard-count 3"),
        "{}",
        run.stderr
    );
    assert_eq!(sim.sim.call_counts().total, 0);
}

#[tokio::test]
async fn a_statefulset_pod_takes_its_shard_from_its_hostname_and_a_name_without_ordinal_exits_64() {
    let (seed, folder) = estate();
    let sim = Sim::start(&seed).await;
    let dir = folder.path().to_str().expect("utf-8 path").to_string();
    let args = [
        "--policies",
        dir.as_str(),
        "--once",
        "--dry-run",
        "--output",
        "json",
        "--max-rps",
        "5000",
        "--shard-from-hostname",
        "--shard-count",
        "3",
    ];
    let pod = |host: &'static str| {
        [
            ("ALIBABA_CLOUD_ENDPOINT_STS", Some(sim.url.as_str())),
            ("HOSTNAME", Some(host)),
        ]
    };
    let run2 = run(&sim, &args, &pod("sgpolicy-2")).await;
    assert_eq!(run2.code, 0, "{}", run2.stderr);
    let owned = buckets_of(&run2);
    let expected: BTreeSet<Bucket> = buckets()
        .into_iter()
        .filter(|(a, r)| sgpolicy::shard::owner(a, r, 3) == 2)
        .collect();
    assert_eq!(owned, expected);

    let calls = sim.sim.call_counts().total;
    let bad = run(&sim, &args, &pod("worker")).await;
    assert_eq!(bad.code, 64, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("hostname \"worker\" does not end in a StatefulSet ordinal"),
        "{}",
        bad.stderr
    );
    assert_eq!(sim.sim.call_counts().total, calls, "no request");
}

#[tokio::test]
async fn a_selector_is_listed_only_by_the_shard_that_owns_its_bucket() {
    let mut seed = Seed::new();
    let mut folder = Folder::new();
    for region in REGIONS {
        for n in 0..2 {
            seed = seed
                .group(region, &format!("sg-prod-{region}-{n}"), Accept)
                .tagged("env", "prod");
        }
        seed = seed.group(region, &format!("sg-dev-{region}"), Accept);
        folder = folder.file(
            &format!("{region}.yaml"),
            PolicyFile::in_region(region)
                .selector(Match::tags(&[("env", "prod")]), Drop)
                .yaml(),
        );
    }
    let sim = Sim::start(&seed).await;
    let runs = replicas(&sim, &folder, 3, &["--dry-run"]).await;
    let mut union = BTreeSet::new();
    for (i, run) in runs.iter().enumerate() {
        for (a, r, id) in reported(run).into_keys() {
            assert_eq!(
                sgpolicy::shard::owner(&a, r.as_str(), 3) as usize,
                i,
                "{r}/{id}"
            );
            assert!(union.insert(id));
        }
    }
    assert_eq!(union.len(), REGIONS.len() * 2, "{union:?}");
    let counts = sim.sim.call_counts();
    for region in REGIONS {
        let of = |action| counts.of_bucket(DEFAULT_ACCOUNT, region, action);
        // One listing and one batch of the matched groups, then their two reads: one replica's.
        assert_eq!(
            (
                of("DescribeSecurityGroups"),
                of("DescribeSecurityGroupAttribute")
            ),
            (2, 2),
            "{region}"
        );
    }
}
