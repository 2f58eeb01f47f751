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
use crate::daemon::sweep::ChangeWindow;
use crate::daemon::triggers::Trigger;
use crate::events::Author;
use crate::model::GroupKey;
use crate::policy::{Desired, DesiredGroup};
use crate::reconcile::Outcome;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        let keys: Vec<GroupKey> = batch.keys().cloned().collect();
        self.lane_pass(st, started, desired, &keys, &batch, Lane::Targeted)
            .await;
    }

    /// One pass of a lane beside the main one (the targeted lane, the sweep) over `keys`, begun
    /// under `st`: reads, plans, corrects within the `--max-changes` window, folds and reports.
    pub(super) async fn lane_pass(
        &self,
        st: tokio::sync::MutexGuard<'_, super::State>,
        started: Instant,
        desired: Arc<Desired>,
        keys: &[GroupKey],
        authors: &BTreeMap<GroupKey, Arc<Author>>,
        lane: Lane,
    ) {
        let now = Instant::now();
        // A group the folder stopped governing since it was queued is not read.
        let (held, active): (Vec<&DesiredGroup>, Vec<&DesiredGroup>) = keys
            .iter()
            .filter_map(|k| desired.groups.get(k))
            .partition(|g| st.groups.fights.held(&g.key, now));
        let scope = held.len() + active.len();
        if scope == 0 {
            return;
        }
        let (active, held) = (subset(&desired, active), subset(&desired, held));
        drop(st);
        let room = self.lock_changes().reserve(Instant::now());
        let reports = self.run_scoped(active, held, room).await;
        let made = reports
            .iter()
            .filter(|s| s.held.is_none())
            .flat_map(|s| &s.report.results)
            .filter(|r| matches!(r.outcome, Outcome::Changed))
            .count();
        self.lock_changes().settle(Instant::now(), room, made);

        let mut st = self.state.lock().await;
        let commit = st.folder.commit().map(str::to_string);
        let (tally, cloud_failure): (Tally, _) = self.fold_reports(
            &mut st,
            reports,
            &desired.groups,
            commit.as_deref(),
            lane.cause(),
            authors,
        );
        self.publish_groups(&st);
        self.note_oldest_read(&st);
        drop(st);
        let trigger = lane.trigger();
        if let Some(why) = &cloud_failure {
            // The main lane clears it again after its next pass that reads the cloud through.
            self.health.cloud(Some(why.clone()));
            tracing::warn!(
                trigger = trigger.as_str(),
                "{} pass failed on the cloud: {why}",
                lane.name()
            );
        }
        if tally.held > 0 {
            if let Some(at) = self.lock_changes().room_at(Instant::now()) {
                tracing::warn!(
                    trigger = trigger.as_str(),
                    held = tally.held,
                    "corrections held: --max-changes {} were made within the last {}; the next \
                     has room in {} (or a SIGHUP or a commit applies them as a whole plan)",
                    self.setup.pass.rails.max_changes.unwrap_or(0),
                    humantime::format_duration(self.settings.interval),
                    humantime::format_duration(Duration::from_secs(
                        at.saturating_duration_since(Instant::now()).as_secs()
                    ))
                );
            }
        }
        // A lane beside the main one never loads the folder: only the main lane says it is broken.
        let outcome = PassOutcome::of(cloud_failure.is_some(), true, &tally);
        self.finish(Finished {
            trigger,
            outcome,
            started,
            tally: &tally,
            scope,
            declared: desired.groups.len(),
            revision: Some(&desired.revision),
        });
    }

    pub(super) fn lock_changes(&self) -> std::sync::MutexGuard<'_, ChangeWindow> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lanes beside the main one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Lane {
    Targeted,
    Sweep,
}

impl Lane {
    fn trigger(self) -> Trigger {
        match self {
            Lane::Targeted => Trigger::Event,
            Lane::Sweep => Trigger::Sweep,
        }
    }

    /// What found the drift its corrections undo: the sweep is the resync's successor.
    fn cause(self) -> FoundBy {
        match self {
            Lane::Targeted => FoundBy::Event,
            Lane::Sweep => FoundBy::Resync,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lane::Targeted => "targeted",
            Lane::Sweep => "sweep",
        }
    }
}
