//! Dividing the estate between replicas: which (account, region) buckets one shard owns.
//!
//! A StatefulSet of N replicas runs shards `0..N`. The unit of work is the (account, region) bucket
//! ([`Bucket`]), the unit of ECS quotas, so each bucket's rate limit stays with one replica. A bucket
//! belongs to the index with the highest weight (rendezvous, or highest-random-weight, hashing):
//!
//! ```text
//! weight(bucket, i) = first 8 bytes, big-endian, of SHA-256(
//!     "sgpolicy-shard-v1" NUL account NUL region NUL decimal(i) NUL)
//! owner(bucket, N)  = the i in 0..N with the highest weight (the lowest such i on a tie)
//! ```
//!
//! (`account` is empty for the credential chain's own account, as in [`GroupKey`].) SHA-256 rather
//! than std's `DefaultHasher`, whose output may change between Rust releases and so between the
//! replicas of a rolling update: every replica, on any platform and any build, computes the same
//! owner. Rendezvous hashing moves only the buckets whose new owner is the added index when N grows
//! by one (about 1/(N+1) of them), and only the removed index's buckets when it shrinks.
//!
//! Every replica reads, validates and digests the whole folder (the errors and the revision stay
//! global), but keeps only the groups and selectors of its own buckets: the loader asks
//! [`Shard::keeps`] per bucket as it merges (`policy::load_folder_keeping`), so the whole desired
//! state is never held at once. [`Shard::restrict`] does the same to a desired state already loaded
//! whole. [`Shard::assignment`] counts what the shard owns out of the whole folder's census, for the
//! metrics that prove every bucket is owned.
//! Without `--shard-*` flags a replica is [`Shard::SOLE`], which owns everything: today's behaviour.

use crate::model::{Bucket, GroupKey};
use crate::policy::{Census, Desired};
use sha2::{Digest, Sha256};

/// Most shards a deployment may have: far more replicas than any estate needs, few enough that
/// computing an owner (one hash per index) stays cheap.
pub const MAX_SHARDS: u32 = 1024;

/// One replica's share: index `index` of `count` shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// A shard that cannot be: the command line reports it and exits 64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard-count must be between 1 and {MAX_SHARDS}, got {0}")]
    BadCount(u32),
    #[error("shard index {index} is not below --shard-count {count} (indexes run from 0 to {})", count.saturating_sub(1))]
    IndexOutOfRange { index: u32, count: u32 },
}

/// A hostname that does not end in a StatefulSet ordinal (`sgpolicy-3`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("hostname {hostname:?} does not end in a StatefulSet ordinal like sgpolicy-3")]
pub struct NoOrdinal {
    pub hostname: String,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::SOLE
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

impl Shard {
    /// The only shard: owns every bucket (no `--shard-*` flag).
    pub const SOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::BadCount(count));
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// One shard owning everything.
    pub fn is_sole(&self) -> bool {
        self.count == 1
    }

    /// Whether this shard reads and writes the groups of `bucket` (and handles its events).
    pub fn owns(&self, bucket: &Bucket) -> bool {
        self.owns_parts(&bucket.account, &bucket.region)
    }

    /// [`Shard::owns`] of the group's bucket.
    pub fn owns_key(&self, key: &GroupKey) -> bool {
        self.owns_parts(&key.account, &key.region)
    }

    /// [`Shard::owns`] of the bucket (`account`, `region`); `account` empty for the chain's own.
    /// An event names its account by id even for the chain's own account: map that id to `""`
    /// first (as `GroupKey` does), or the chain's own buckets hash to other owners.
    pub fn owns_parts(&self, account: &str, region: &str) -> bool {
        self.is_sole() || owner(account, region, self.count) == self.index
    }

    /// The part of `desired` this shard works on: the groups and selectors of its buckets. The
    /// revision, file count and accounts stay the whole folder's (tokens and reports name the one
    /// revision every replica enforces). The sole shard gets `desired` back untouched.
    pub fn restrict(&self, mut desired: Desired) -> Desired {
        if self.is_sole() {
            return desired;
        }
        // Groups are sorted by (account, region, id): remember the last bucket's answer.
        let mut last: Option<(GroupKey, bool)> = None;
        desired.groups.retain(|key, _| match &last {
            Some((k, owned)) if k.account == key.account && k.region == key.region => *owned,
            _ => {
                let owned = self.owns_key(key);
                last = Some((key.clone(), owned));
                owned
            }
        });
        desired
            .selectors
            .retain(|s| self.owns_parts(&s.account, &s.region));
        desired
    }

    /// What this shard owns of the whole folder, from its census (the same on every replica).
    pub fn assignment(&self, census: &Census) -> Assignment {
        let mut a = Assignment {
            total_buckets: census.buckets.len(),
            ..Assignment::default()
        };
        for (bucket, groups) in &census.buckets {
            if self.owns(bucket) {
                a.owned_buckets += 1;
                a.owned_groups += groups;
            }
        }
        a
    }

    /// Whether this shard keeps the groups and selectors of bucket (`account`, `region`) when it
    /// loads the folder (`policy::load_folder_keeping`): the same question as [`Shard::owns_parts`],
    /// for the loader, which knows nothing of shards.
    pub fn keeps(self) -> impl Fn(&str, &str) -> bool {
        move |account, region| self.owns_parts(account, region)
    }
}

/// How much of the whole assignment one shard owns, out of what every replica computes alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Buckets the whole folder names (by groups or selectors), whoever owns them.
    pub total_buckets: usize,
    /// Of those, the buckets this shard owns.
    pub owned_buckets: usize,
    /// Groups declared by id in the owned buckets (selector matches are known only after listing).
    pub owned_groups: usize,
}

/// The rendezvous weight of bucket (`account`, `region`) for shard `index` (see the module doc).
pub fn weight(account: &str, region: &str, index: u32) -> u64 {
    let mut h = Sha256::new();
    for part in [
        "sgpolicy-shard-v1".as_bytes(),
        account.as_bytes(),
        region.as_bytes(),
        index.to_string().as_bytes(),
    ] {
        h.update(part);
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The index in `0..count` that owns bucket (`account`, `region`); 0 when `count` is 0 or 1.
pub fn owner(account: &str, region: &str, count: u32) -> u32 {
    let mut best = (0u32, 0u64);
    for i in 0..count {
        let w = weight(account, region, i);
        if i == 0 || w > best.1 {
            best = (i, w);
        }
    }
    best.0
}

/// The ordinal at the end of a StatefulSet pod's hostname: `sgpolicy-3` → 3. A domain after the
/// first dot is ignored (`sgpolicy-3.sgpolicy-shards.ns.svc`); the ordinal is decimal without
/// leading zeros, as Kubernetes writes it.
pub fn ordinal_of(hostname: &str) -> Result<u32, NoOrdinal> {
    let bad = || NoOrdinal {
        hostname: hostname.to_string(),
    };
    let host = hostname.trim().split('.').next().unwrap_or("");
    let (name, digits) = host.rsplit_once('-').ok_or_else(bad)?;
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if name.is_empty() || !canonical {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Mode, Policy};
    use crate::policy::DesiredGroup;
    use std::collections::BTreeSet;

    /// 3 accounts (the chain's own and two named) × 10 regions: the integration test's estate.
    fn thirty() -> Vec<(String, String)> {
        let accounts = ["", "2222222222222222", "3333333333333333"];
        let regions = [
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
        accounts
            .iter()
            .flat_map(|a| regions.iter().map(move |r| (a.to_string(), r.to_string())))
            .collect()
    }

    fn many(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("{:016}", 1_000_000 + i / 20),
                    format!("region-{}", i % 20),
                )
            })
            .collect()
    }

    #[test]
    fn the_weight_is_the_documented_sha256_prefix_so_every_build_agrees() {
        let mut bytes = Vec::new();
        for part in ["sgpolicy-shard-v1", "2222222222222222", "cn-hangzhou", "3"] {
            bytes.extend_from_slice(part.as_bytes());
            bytes.push(0);
        }
        let digest = Sha256::digest(&bytes);
        let expected = u64::from_be_bytes(digest[..8].try_into().unwrap());
        assert_eq!(weight("2222222222222222", "cn-hangzhou", 3), expected);
        // Pinned (also computed with Python's hashlib): a change here re-shards every deployment
        // during a rolling update.
        assert_eq!(weight("", "cn-hangzhou", 0), 0x4aa1_1872_0d4b_6084);
    }

    #[test]
    fn every_bucket_is_owned_by_exactly_one_index_for_one_to_eight_shards() {
        for count in 1..=8 {
            let shards: Vec<Shard> = (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
            for (a, r) in thirty().iter().chain(many(500).iter()) {
                let owners: Vec<u32> = shards
                    .iter()
                    .filter(|s| s.owns_parts(a, r))
                    .map(|s| s.index())
                    .collect();
                assert_eq!(owners.len(), 1, "{a}/{r} with {count} shards: {owners:?}");
                assert_eq!(owners[0], owner(a, r, count));
            }
        }
    }

    #[test]
    fn growing_from_n_to_n_plus_one_shards_moves_about_one_in_n_plus_one_buckets_all_to_the_new_index(
    ) {
        let buckets = many(2000);
        for n in 1..8u32 {
            let moved: Vec<&(String, String)> = buckets
                .iter()
                .filter(|(a, r)| owner(a, r, n) != owner(a, r, n + 1))
                .collect();
            for (a, r) in &moved {
                assert_eq!(owner(a, r, n + 1), n, "{a}/{r} moved to an old index");
            }
            let share = moved.len() as f64 / buckets.len() as f64;
            let ideal = 1.0 / f64::from(n + 1);
            assert!(
                (share - ideal).abs() < 0.04,
                "{n} → {}: {} of {} moved ({share:.3}, ideal {ideal:.3})",
                n + 1,
                moved.len(),
                buckets.len()
            );
        }
    }

    #[test]
    fn shards_share_the_buckets_evenly() {
        let buckets = many(2000);
        for count in [2u32, 3, 4, 8] {
            for i in 0..count {
                let owned = buckets
                    .iter()
                    .filter(|(a, r)| owner(a, r, count) == i)
                    .count();
                let ideal = buckets.len() as f64 / f64::from(count);
                assert!(
                    (owned as f64 - ideal).abs() < ideal * 0.15,
                    "shard {i} of {count} owns {owned}, ideal {ideal}"
                );
            }
        }
    }

    #[test]
    fn the_thirty_bucket_estate_moves_only_to_the_fourth_shard_when_three_become_four() {
        let moved: Vec<(String, String)> = thirty()
            .into_iter()
            .filter(|(a, r)| owner(a, r, 3) != owner(a, r, 4))
            .collect();
        assert!(moved.iter().all(|(a, r)| owner(a, r, 4) == 3));
        // Pinned for docs/scale.md: the integration test's estate.
        assert_eq!(moved.len(), 7, "{moved:?}");
        for i in 0..3 {
            assert!(
                thirty().iter().any(|(a, r)| owner(a, r, 3) == i),
                "shard {i} owns nothing"
            );
        }
    }

    fn desired(keys: &[(&str, &str, &str)]) -> Desired {
        let groups = keys
            .iter()
            .map(|(a, r, id)| {
                let key = GroupKey::in_account(*a, *r, *id);
                let g = DesiredGroup {
                    key: key.clone(),
                    policy: Policy::Drop,
                    source: Location {
                        path: std::path::Path::new("p.yaml").into(),
                        line: 1,
                        column: 1,
                    },
                    mode: Mode::Enforce,
                };
                (key, g)
            })
            .collect();
        Desired {
            groups,
            revision: "0123456789ab".into(),
            files: 1,
            ..Desired::default()
        }
    }

    #[test]
    fn a_shard_keeps_the_groups_and_selectors_of_its_buckets_and_the_whole_revision() {
        let mut keys = Vec::new();
        let ids: Vec<String> = (0..3).map(|i| format!("sg-{i}")).collect();
        let pairs = thirty();
        for (a, r) in &pairs {
            for id in &ids {
                keys.push((a.as_str(), r.as_str(), id.as_str()));
            }
        }
        let mut whole = desired(&keys);
        let sel = crate::policy::Selector {
            account: "2222222222222222".into(),
            region: "cn-beijing".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
            vpc_id: None,
            name: None,
            policy: Policy::Drop,
            mode: Mode::Enforce,
            source: Location {
                path: std::path::Path::new("p.yaml").into(),
                line: 9,
                column: 5,
            },
        };
        whole.selectors.push(sel);
        let mut seen = BTreeSet::new();
        let mut selectors = 0;
        for i in 0..3 {
            let shard = Shard::new(i, 3).unwrap();
            let a = shard.assignment(&Census::of(&whole));
            let part = shard.restrict(whole.clone());
            assert_eq!(part.revision, whole.revision);
            assert_eq!(part.files, whole.files);
            assert_eq!(a.total_buckets, 30);
            assert_eq!(a.owned_groups, part.groups.len());
            assert_eq!(a.owned_buckets * 3, part.groups.len());
            assert!(part.groups.keys().all(|k| shard.owns_key(k)));
            selectors += part.selectors.len();
            for k in part.groups.into_keys() {
                assert!(seen.insert(k), "a group in two shards");
            }
        }
        assert_eq!(seen.len(), whole.groups.len(), "the union is the folder");
        assert_eq!(selectors, 1, "the selector is in exactly one shard");
    }

    #[test]
    fn the_sole_shard_owns_everything_and_changes_nothing() {
        let whole = desired(&[("", "cn-hangzhou", "sg-1"), ("2", "eu-central-1", "sg-2")]);
        let a = Shard::SOLE.assignment(&Census::of(&whole));
        assert_eq!(
            (a.total_buckets, a.owned_buckets, a.owned_groups),
            (2, 2, 2)
        );
        let part = Shard::SOLE.restrict(whole.clone());
        assert_eq!(part.groups, whole.groups);
        assert_eq!(Shard::default(), Shard::SOLE);
    }

    #[test]
    fn a_shard_must_be_below_its_count_and_the_count_in_range() {
        assert_eq!(
            Shard::new(2, 3).map(|s| s.to_string()).as_deref(),
            Ok("shard 2 of 3")
        );
        assert_eq!(
            Shard::new(3, 3),
            Err(ShardError::IndexOutOfRange { index: 3, count: 3 })
        );
        assert_eq!(Shard::new(0, 0), Err(ShardError::BadCount(0)));
        assert_eq!(
            Shard::new(0, MAX_SHARDS + 1),
            Err(ShardError::BadCount(MAX_SHARDS + 1))
        );
        assert_eq!(
            ShardError::IndexOutOfRange { index: 3, count: 3 }.to_string(),
            "shard index 3 is not below --shard-count 3 (indexes run from 0 to 2)"
        );
    }

    #[test]
    fn the_ordinal_is_the_number_after_the_last_dash_of_the_pod_name() {
        assert_eq!(ordinal_of("sgpolicy-3"), Ok(3));
        assert_eq!(ordinal_of("sgpolicy-shards-0"), Ok(0));
        assert_eq!(
            ordinal_of("sgpolicy-12.sgpolicy-shards.sgpolicy.svc\n"),
            Ok(12)
        );
        for bad in [
            "sgpolicy",
            "sgpolicy-",
            "-3",
            "sgpolicy-03",
            "sgpolicy-x1",
            "sgpolicy-+1",
            "",
            "sgpolicy-99999999999",
        ] {
            assert_eq!(
                ordinal_of(bad),
                Err(NoOrdinal {
                    hostname: bad.to_string()
                }),
                "{bad:?}"
            );
        }
    }
}
