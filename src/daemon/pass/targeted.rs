//! The targeted lane: passes over the groups ActionTrail events named, run beside the main lane so
//! a console flip is corrected in seconds even while a full resync of a large estate is under way.
//!
//! Each targeted pass takes up to [`TARGETED_BATCH`] queued groups, urgent ones first (the intake's
//! order: events announcing drift before the rest), reads them, plans, writes and verifies exactly
//! like any pass, and reports through the same fold as the main lane. A burst of events is debounced
//! like file events; while groups remain queued the next batch starts at once, so a real drift that
//! arrives during a flood waits for at most the batch in progress. It never starts before the first
//! pass resolved the folder: events heard earlier stay queued, and that pass reads every group
//! anyway. It cannot starve the resync: the main lane's timer and triggers do not wait for it, and
//! both share the rate limiter, whose queue is first come, first served.

use super::results::{Finished, FoundBy, PassOutcome, Tally};
use super::{subset, Run, Runner};
use crate::accounts::Fleet;
use crate::daemon::intake::TARGETED_BATCH;
use crate::daemon::sweep::ChangeWindow;
use crate::daemon::triggers::Trigger;
use crate::events::Author;
use crate::model::{GroupKey, GroupMeta, Policy};
use crate::policy::{Desired, DesiredGroup};
use crate::reconcile::Outcome;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
            loop {
                if self.cancel.load(Ordering::SeqCst) {
                    return;
                }
                let resolved = self.targeted_pass().await;
                self.targeted_check().await;
                if !resolved || !self.intake.has_queued() {
                    break;
                }
            }
        }
    }

    /// Re-checks the isolation of the declared Drop groups that writes queued (rule, membership,
    /// interface and prefix-list changes): their rules, their VPC's interfaces, their members'
    /// other groups and the prefix lists those name, and nothing else (no group listing, no pass).
    pub(super) async fn targeted_check(&self) {
        let started = Instant::now();
        let mut st = self.state.lock().await;
        let Some(desired) = st.effective.clone() else {
            return;
        };
        let causes = self.intake.take_checks();
        // A page read before these writes must not undo their re-check's verdict (`kept`).
        let named: BTreeSet<&str> = causes
            .values()
            .flat_map(|c| c.groups.iter().map(String::as_str))
            .collect();
        st.pages.forget_named(started, &named);
        st.pages.forget(started, causes.keys());
        let targets: BTreeSet<GroupKey> = causes
            .keys()
            .filter(|k| {
                desired
                    .groups
                    .get(*k)
                    .is_some_and(|g| g.policy == Policy::Drop)
            })
            .cloned()
            .collect();
        if targets.is_empty() || !self.setup.pass.check_isolation {
            return;
        }
        // The targets' pages were just forgotten, so the check reads each of them anew.
        self.check_kept(st, &desired, targets, "event", &causes)
            .await;
    }

    /// One batch; `false` when no folder is resolved yet (the batch stays queued).
    pub(super) async fn targeted_pass(&self) -> bool {
        let started = Instant::now();
        let st = self.state.lock().await;
        let Some(desired) = st.effective.clone() else {
            // No folder resolved yet: the first pass reads every group (and nudges us after).
            return false;
        };
        let batch = self.intake.take_batch(TARGETED_BATCH);
        let keys: Vec<GroupKey> = batch.keys().cloned().collect();
        self.lane_pass(st, started, desired, &keys, &batch, Lane::Targeted)
            .await;
        true
    }

    /// One pass of a lane beside the main one (the targeted lane, the sweep) over `keys`, begun
    /// under `st`: reads, plans, corrects within the `--max-changes` window, folds and reports.
    /// Neither checks isolation as a pass: a policy event's group is corrected to its declaration,
    /// which the isolation verdict already assumes (a reach event's re-check is `targeted_check`),
    /// and the sweep's tick costs only its policy reads; the sweep keeps its reads' first rule pages
    /// and re-checks only a group whose rules it found changed (`kept`).
    pub(super) async fn lane_pass(
        &self,
        st: tokio::sync::MutexGuard<'_, super::State>,
        started: Instant,
        desired: Arc<Desired>,
        keys: &[GroupKey],
        authors: &BTreeMap<GroupKey, Arc<Author>>,
        lane: Lane,
    ) {
        let wall_start = SystemTime::now() - started.elapsed();
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
        let known = match lane {
            Lane::Sweep => sweep_known(&st, keys),
            Lane::Targeted => BTreeMap::new(),
        };
        let (active, held) = (subset(&desired, active), subset(&desired, held));
        drop(st);
        let run = Run {
            check: false,
            max_changes: self.lock_changes().reserve(Instant::now()),
            known,
            // The sweep's pages serve the interval pass's isolation check (`kept`).
            keep_pages: lane == Lane::Sweep,
        };
        let room = run.max_changes;
        let mut reports = self.run_scoped(active, held, run).await;
        self.intake
            .note_reads(reports.iter().map(|s| &s.report), wall_start);
        let made = reports
            .iter()
            .filter(|s| s.held.is_none())
            .flat_map(|s| &s.report.results)
            .filter(|r| matches!(r.outcome, Outcome::Changed))
            .count();
        self.lock_changes().settle(Instant::now(), room, made);

        let mut st = self.state.lock().await;
        let changed = self.keep_pages(&mut st, &mut reports, started);
        let commit = st.folder.commit().map(str::to_string);
        let (tally, cloud_failure): (Tally, _) = self.fold_reports(
            &mut st,
            reports,
            &desired.groups,
            commit.as_deref(),
            lane.cause(),
            authors,
        );
        let news = tally.changed + tally.held + tally.errors + tally.would_change > 0;
        let recent = st
            .published
            .is_some_and(|t| t.elapsed() < super::PUBLISH_EVERY);
        if lane != Lane::Sweep || news || !recent {
            // The gauges, the status page and the reach index walk every record: a quiet sweep
            // tick (only verification times moved) leaves them to the next one a second later.
            self.publish_groups(&st);
            st.published = Some(Instant::now());
        }
        self.note_oldest_read(&st);
        drop(st);
        // Rules changed with no event yet: re-checked now rather than at the interval pass.
        self.sweep_check(&desired, changed).await;
        let trigger = lane.trigger();
        if let Some(why) = &cloud_failure {
            // The main lane (or the sweep) clears it again after a pass that reads the cloud through.
            self.health.cloud(Some(why.clone()));
            tracing::warn!(
                trigger = trigger.as_str(),
                "{} pass failed on the cloud: {why}",
                lane.name()
            );
        } else if lane == Lane::Sweep {
            // The sweep is what reads the cloud through now that the interval pass reads nothing.
            self.health.cloud(None);
        }
        if tally.held > 0 {
            self.warn_window_full(trigger, tally.held);
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

    /// Says why `held` corrections waited, when the `--max-changes` window is what is full.
    fn warn_window_full(&self, trigger: Trigger, held: usize) {
        let Some(at) = self.lock_changes().room_at(Instant::now()) else {
            return;
        };
        tracing::warn!(
            trigger = trigger.as_str(),
            held,
            "corrections held: --max-changes {} were made within the last {}; the next has room \
             in {} (or a SIGHUP or a commit applies them as a whole plan)",
            self.setup.pass.rails.max_changes.unwrap_or(0),
            humantime::format_duration(self.settings.interval),
            humantime::format_duration(Duration::from_secs(
                at.saturating_duration_since(Instant::now()).as_secs()
            ))
        );
    }

    pub(super) fn lock_changes(&self) -> std::sync::MutexGuard<'_, ChangeWindow> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the last listings said of `keys`, for the groups the sweep reads without listing them
/// again (a tick costs its policy reads only; a group never found is listed first).
fn sweep_known(st: &super::State, keys: &[GroupKey]) -> BTreeMap<GroupKey, GroupMeta> {
    keys.iter()
        .filter_map(|k| {
            let listed = st.groups.records.get(k)?.listed.as_ref()?;
            Some((k.clone(), listed.meta()))
        })
        .collect()
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
