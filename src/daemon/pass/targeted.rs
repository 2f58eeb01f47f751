//! The targeted lane: passes over the groups ActionTrail events named, run beside the main lane so
//! a console flip is corrected in seconds even while a full resync of a large estate is under way.
//!
//! Each targeted pass takes every queued group at once (a burst of events is debounced like file
//! events), reads them, plans, writes and verifies exactly like any pass, and reports through the
//! same fold as the main lane. It never starts before the first pass resolved the folder: events
//! heard earlier stay queued, and that pass reads every group anyway. It cannot starve the resync:
//! the main lane's timer and triggers do not wait for it, and both share the rate limiter, whose
//! queue is first come, first served.

use super::results::{Finished, FoundBy, PassOutcome, Tally};
use super::{subset, Runner};
use crate::accounts::Fleet;
use crate::daemon::triggers::Trigger;
use crate::policy::DesiredGroup;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl<F: Fleet> Runner<F> {
    /// Runs targeted passes until shutdown.
    pub async fn targeted_lane(self: Arc<Self>) {
        loop {
            self.intake.queued().await;
            if self.cancel.load(Ordering::SeqCst) {
                return;
            }
            // Events of one burst (a console user flipping several groups) are read together.
            let debounce = tokio::time::sleep(self.settings.debounce);
            if self.unless_stopped(debounce).await.is_none() {
                return;
            }
            self.targeted_pass().await;
        }
    }

    pub(super) async fn targeted_pass(&self) {
        let started = Instant::now();
        let st = self.state.lock().await;
        let Some(desired) = st.effective.clone() else {
            // No folder resolved yet: the first pass reads every group (and nudges us after).
            return;
        };
        let batch = self.intake.take();
        let now = Instant::now();
        // A group the folder stopped governing since the event was queued is not read.
        let (held, active): (Vec<&DesiredGroup>, Vec<&DesiredGroup>) = batch
            .keys()
            .filter_map(|k| desired.groups.get(k))
            .partition(|g| st.groups.fights.held(&g.key, now));
        let scope = held.len() + active.len();
        if scope == 0 {
            return;
        }
        let (active, held) = (subset(&desired, active), subset(&desired, held));
        drop(st);
        let reports = self.run_scoped(active, held).await;

        let mut st = self.state.lock().await;
        let commit = st.folder.commit().map(str::to_string);
        let (tally, cloud_failure): (Tally, _) = self.fold_reports(
            &mut st,
            reports,
            &desired.groups,
            commit.as_deref(),
            FoundBy::Event,
            &batch,
        );
        self.publish_groups(&st);
        self.note_oldest_read(&st);
        drop(st);
        if let Some(why) = &cloud_failure {
            // The main lane clears it again after its next pass that reads the cloud through.
            self.health.cloud(Some(why.clone()));
            tracing::warn!(
                trigger = "event",
                "targeted pass failed on the cloud: {why}"
            );
        }
        let outcome = if cloud_failure.is_some() {
            PassOutcome::CloudError
        } else if tally.errors > 0 {
            PassOutcome::GroupErrors
        } else {
            PassOutcome::Success
        };
        self.finish(Finished {
            trigger: Trigger::Event,
            outcome,
            started,
            tally: &tally,
            scope,
            declared: desired.groups.len(),
            revision: Some(&desired.revision),
        });
    }
}
