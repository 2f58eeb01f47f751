//! Proof of ownership (issue 13): three daemons `--shard-index I --shard-count 3` over the 30-bucket
//! estate of `crate::shards` each export their shard and their share; together their owned buckets
//! are the total every one of them computed. When one replica stops, the remaining replicas' metrics
//! make the alert condition of deploy/kubernetes/overlays/sharded/prometheusrule.yaml true:
//! `sum(sgpolicy_shard_buckets_owned) < max(sgpolicy_shard_buckets_total)`.

use super::*;
use crate::shards::{buckets, estate, PER_BUCKET};

async fn replica(sim: &Sim, folder: &Folder, index: u32) -> Daemon {
    let index = index.to_string();
    Daemon::start_with_env(
        sim,
        folder.path(),
        &[
            "--interval",
            "1h",
            "--max-changes",
            "1000",
            "--shard-index",
            &index,
            "--shard-count",
            "3",
        ],
        &[("ALIBABA_CLOUD_ENDPOINT_STS", &sim.url)],
    )
    .await
}

/// (owned buckets, total buckets, owned groups) summed or maxed over `replicas`, after each has
/// finished its first pass.
async fn ownership(replicas: &[&Daemon]) -> (f64, f64, f64) {
    let mut owned = 0.0;
    let mut total: f64 = 0.0;
    let mut groups = 0.0;
    for d in replicas {
        let m = d
            .wait_metrics("a finished first pass with its shard's share", |m| {
                m.get("sgpolicy_ready") == 1.0 && m.get("sgpolicy_shard_buckets_total") > 0.0
            })
            .await;
        owned += m.get("sgpolicy_shard_buckets_owned");
        total = total.max(m.get("sgpolicy_shard_buckets_total"));
        groups += m.get("sgpolicy_shard_groups_owned");
    }
    (owned, total, groups)
}

#[tokio::test]
async fn every_bucket_is_owned_by_a_running_replica_until_one_stops_and_the_alert_condition_holds()
{
    let (seed, folder) = estate();
    let sim = Sim::start(&seed).await;
    let mut replicas = Vec::new();
    for i in 0..3 {
        replicas.push(replica(&sim, &folder, i).await);
    }
    for (i, d) in replicas.iter().enumerate() {
        let m = d.metrics().await;
        assert_eq!(
            m.get(&format!("sgpolicy_shard_info{{index=\"{i}\",count=\"3\"}}")),
            1.0,
            "{}",
            m.text
        );
    }
    let all: Vec<&Daemon> = replicas.iter().collect();
    let (owned, total, groups) = ownership(&all).await;
    assert_eq!(total, buckets().len() as f64);
    assert_eq!(owned, total, "no bucket unowned, none owned twice");
    assert_eq!(groups, (buckets().len() * PER_BUCKET) as f64);
    // Each replica's groups are the ones it reports states for.
    for d in &replicas {
        let m = d.metrics().await;
        assert_eq!(
            m.sum("sgpolicy_groups", &[]),
            m.get("sgpolicy_shard_groups_owned"),
            "{}",
            m.text
        );
    }

    let mut stopped = replicas.remove(1);
    stopped.signal("TERM");
    assert_eq!(stopped.wait_exit().await, 0);
    let left: Vec<&Daemon> = replicas.iter().collect();
    let (owned, total, _) = ownership(&left).await;
    assert_eq!(
        total,
        buckets().len() as f64,
        "the survivors still know the whole assignment"
    );
    assert!(
        owned < total,
        "the alert condition: {owned} owned of {total} by the running replicas"
    );
}
