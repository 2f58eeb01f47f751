//! The daemon's coverage survey (on unless `--no-report-ungoverned`): after each full pass, one paged listing per
//! (account, region) the folder names (`reconcile::survey`). `sgpolicy_ungoverned_groups` is set
//! from it, and each group that became ungoverned since the last survey is logged once (a group that
//! stays ungoverned is not logged again; one that is governed and later ungoverned again is). An
//! (account, region) whose listing failed keeps its last figures.

use super::Runner;
use crate::accounts::Fleet;
use crate::model::{Bucket, GroupKey};
use crate::policy::Desired;
use crate::reconcile::survey::{self, place};
use std::collections::{BTreeMap, BTreeSet};

/// The ungoverned groups of the last survey, by (account, region).
#[derive(Default)]
pub(super) struct LastSurvey {
    by_bucket: BTreeMap<Bucket, BTreeSet<GroupKey>>,
}

impl<F: Fleet> Runner<F> {
    /// Surveys coverage of `desired` (the folder as loaded, selectors included) unless told not
    /// to; call it after a full pass. The listings run without the daemon state held (the targeted
    /// lane keeps working meanwhile); only folding their result takes it.
    pub(super) async fn survey_coverage(&self, desired: &Desired) {
        if !self.settings.report_ungoverned {
            return;
        }
        let surveying = async {
            let wanted = survey::buckets(desired);
            let accounts = wanted.iter().map(|b| b.account.as_str());
            let reach = self
                .fleet
                .reach_accounts(accounts.collect(), &desired.accounts)
                .await;
            survey::survey(&reach, desired, self.setup.pass.concurrency, false).await
        };
        // After SIGTERM no survey starts, and one under way is dropped (it only reads).
        let Some(found) = self.unless_stopped(surveying).await else {
            return;
        };
        let mut st = self.state.lock().await;
        let mut next: BTreeMap<Bucket, BTreeSet<GroupKey>> = BTreeMap::new();
        for b in found.buckets {
            match b.result {
                Ok(groups) => {
                    let before = st.survey.by_bucket.get(&b.bucket);
                    for g in &groups {
                        if before.map_or(true, |seen| !seen.contains(&g.key)) {
                            tracing::warn!(
                                group = %g.key,
                                name = g.name.as_deref().unwrap_or(""),
                                vpc_id = g.vpc_id.as_deref().unwrap_or(""),
                                "security group {} is governed by no policy file",
                                g.key.id
                            );
                        }
                    }
                    next.insert(b.bucket, groups.into_iter().map(|g| g.key).collect());
                }
                Err(e) => {
                    tracing::warn!(
                        "coverage of {} is unknown: listing its security groups failed: {e}",
                        place(&b.bucket)
                    );
                    if let Some(kept) = st.survey.by_bucket.remove(&b.bucket) {
                        next.insert(b.bucket, kept);
                    }
                }
            }
        }
        let counts = next
            .iter()
            .map(|(b, keys)| {
                let n = i64::try_from(keys.len()).unwrap_or(i64::MAX);
                ((b.account.to_string(), b.region.to_string()), n)
            })
            .collect();
        self.metrics.set_ungoverned(&counts);
        self.board.surveyed(next.values().map(BTreeSet::len).sum());
        st.survey.by_bucket = next;
    }
}
