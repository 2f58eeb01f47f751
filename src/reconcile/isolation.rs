//! The isolation check inside a pass (`--check-isolation`): which groups it checks, the policy the
//! model takes for each governed group, and the rules the pass already read. The reads and the
//! model are `crate::isolation`'s; this file only maps a pass's results onto them.

use super::{GroupResult, Outcome};
use crate::accounts::Reach;
use crate::ecs::api::RulePage;
use crate::ecs::Cloud;
use crate::isolation::{read, Verdict};
use crate::model::{GroupKey, Policy};
use std::collections::{BTreeMap, HashMap};

/// Every group whose declared policy is `Drop` and whose policy was read (observe-only entries and
/// unmanageable ones, like enterprise groups, included): its verdict. A group declared `Accept`, not
/// found or unreadable has none (`isolation: null`). The check keeps to the pass's deadline
/// (`--pass-timeout`): when it passes first, every checked group is unknown, never isolated.
pub(super) async fn check<C: Cloud>(
    reach: &Reach<C>,
    results: &[GroupResult],
    pages: HashMap<GroupKey, RulePage>,
    concurrency: usize,
    deadline: Option<tokio::time::Instant>,
) -> BTreeMap<GroupKey, Verdict> {
    let mut inputs = read::Inputs {
        pages,
        ..read::Inputs::default()
    };
    for r in results {
        let Some(live) = r.entry.observed else {
            continue;
        };
        if r.entry.desired == Policy::Drop {
            inputs.targets.insert(r.entry.key.clone());
        }
        inputs
            .policies
            .insert(r.entry.key.clone(), effective(r, live));
    }
    let targets: Vec<GroupKey> = inputs.targets.iter().cloned().collect();
    let check = read::check(reach, inputs, concurrency);
    match deadline {
        None => check.await,
        Some(at) => match tokio::time::timeout_at(at, check).await {
            Ok(verdicts) => verdicts,
            Err(_) => targets
                .into_iter()
                .map(|k| {
                    let why = "the pass deadline (--pass-timeout) passed before the check finished";
                    let v = Verdict::unknown(why, &k.id);
                    (k, v)
                })
                .collect(),
        },
    }
}

/// The policy the model takes for a group sgpolicy governs: the declared one once it holds (in sync,
/// written) or will hold after this plan is applied; the live one where it is not enforced (observe
/// only) or could not be written (failed, held by a rail), because that is what members see.
fn effective(r: &GroupResult, live: Policy) -> Policy {
    match r.outcome {
        Outcome::InSync | Outcome::Changed | Outcome::WouldChange => r.entry.desired,
        Outcome::Failed(_) | Outcome::Error | Outcome::Observed | Outcome::Held(_) => live,
    }
}
