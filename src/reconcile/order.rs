//! The order a pass starts its work in.
//!
//! Each (account, region, action) has its own rate limit, so a pass is fastest when every bucket is
//! busy at once. Work is therefore started round-robin across (account, region) buckets: with the work
//! sorted, the first `--concurrency` tasks would all wait on one bucket while the others sat idle.

use std::collections::BTreeMap;

/// Reorders `items` so consecutive items come from different quota buckets, (account, region)
/// pairs: round-robin, buckets in sorted order, each bucket's items in their original order. ECS
/// quotas (and the client's rate limiters) are per account and region, so a pass that worked through
/// one bucket at a time would fill every in-flight slot with requests waiting on that bucket's
/// limiter while the others sat idle.
pub fn interleave_by_bucket<T>(items: Vec<T>, bucket: impl Fn(&T) -> (&str, &str)) -> Vec<T> {
    let mut queues: BTreeMap<(String, String), std::collections::VecDeque<T>> = BTreeMap::new();
    for item in items {
        let (account, region) = bucket(&item);
        queues
            .entry((account.to_string(), region.to_string()))
            .or_default()
            .push_back(item);
    }
    let mut out = Vec::with_capacity(queues.values().map(|q| q.len()).sum());
    loop {
        let mut any = false;
        for q in queues.values_mut() {
            if let Some(item) = q.pop_front() {
                out.push(item);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_regions_are_separate_buckets() {
        let items = vec![("x", "a", 1), ("x", "a", 2), ("y", "a", 1), ("y", "a", 2)];
        let out = interleave_by_bucket(items, |i| (i.0, i.1));
        assert_eq!(
            out,
            [("x", "a", 1), ("y", "a", 1), ("x", "a", 2), ("y", "a", 2)]
        );
    }

    #[test]
    fn regions_take_turns_and_keep_their_order() {
        let items = vec![("a", 1), ("a", 2), ("a", 3), ("b", 1), ("c", 1), ("c", 2)];
        let out = interleave_by_bucket(items, |i| ("", i.0));
        assert_eq!(
            out,
            [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("c", 2), ("a", 3)]
        );
    }
}
