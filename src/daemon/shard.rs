//! The shard's metrics: which shard this replica is, and how much of the whole assignment it owns, so
//! an alert can tell when some bucket is owned by no running replica, or by two (docs/daemon.md,
//! deploy/kubernetes/overlays/sharded/prometheusrule.yaml).

use crate::shard::{Assignment, Shard};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub index: String,
    pub count: String,
}

/// `sgpolicy_shard_*`, registered with the daemon's other metrics.
#[derive(Default)]
pub struct ShardMetrics {
    pub info: Family<ShardLabels, Gauge>,
    /// The `count` label as a number, which PromQL cannot compare a label with.
    pub count: Gauge,
    pub buckets_owned: Gauge,
    pub buckets_total: Gauge,
    pub groups_owned: Gauge,
}

impl ShardMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "sgpolicy_shard_info",
            "This replica's shard (index of count); the only shard is index 0 of 1",
            self.info.clone(),
        );
        r.register(
            "sgpolicy_shard_count",
            "Number of shards the buckets are divided between (--shard-count; 1 without sharding)",
            self.count.clone(),
        );
        r.register(
            "sgpolicy_shard_buckets_owned",
            "(account, region) buckets of the policy folder this replica owns",
            self.buckets_owned.clone(),
        );
        r.register(
            "sgpolicy_shard_buckets_total",
            "(account, region) buckets of the whole policy folder, whoever owns them",
            self.buckets_total.clone(),
        );
        r.register(
            "sgpolicy_shard_groups_owned",
            "Declared groups (selector matches included) in the buckets this replica owns",
            self.groups_owned.clone(),
        );
    }

    pub fn set_shard(&self, shard: Shard) {
        self.info.clear();
        self.info
            .get_or_create(&ShardLabels {
                index: shard.index().to_string(),
                count: shard.count().to_string(),
            })
            .set(1);
        self.count.set(i64::from(shard.count()));
    }

    /// What a clean load of the folder assigns to this replica.
    pub fn set_assignment(&self, a: Assignment) {
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.buckets_owned.set(n(a.owned_buckets));
        self.buckets_total.set(n(a.total_buckets));
        self.groups_owned.set(n(a.owned_groups));
    }
}

#[cfg(test)]
mod tests {
    use crate::daemon::metrics::Metrics;
    use crate::shard::{Assignment, Shard};

    #[test]
    fn the_shard_and_its_share_are_exported_under_the_documented_names() {
        let m = Metrics::new();
        m.shard.set_shard(Shard::new(2, 3).unwrap());
        m.shard.set_assignment(Assignment {
            total_buckets: 30,
            owned_buckets: 9,
            owned_groups: 90,
        });
        let text = m.encode();
        for needle in [
            "sgpolicy_shard_info{index=\"2\",count=\"3\"} 1",
            "sgpolicy_shard_count 3",
            "sgpolicy_shard_buckets_owned 9",
            "sgpolicy_shard_buckets_total 30",
            "sgpolicy_shard_groups_owned 90",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
