//! Folding a pass's results into the daemon's state, metrics, fight tracking and audit trail, and the
//! one summary line per pass.

use super::{Runner, State};
use crate::accounts::Fleet;
use crate::daemon::metrics::{AccountLabel, GroupLabels, OutcomeLabels};
use crate::daemon::triggers::Trigger;
use crate::events::Author;
use crate::model::{GroupKey, NoteLevel};
use crate::plan::Action;
use crate::plan::Blame;
use crate::policy::DesiredGroup;
use crate::reconcile::GroupResult;
use crate::reconcile::{Outcome, PassReport};
use crate::report::audit;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GroupState {
    InSync,
    Drifted,
    Unmanageable,
    Error,
}

impl GroupState {
    pub(super) fn label(self) -> &'static str {
        match self {
            GroupState::InSync => "in_sync",
            GroupState::Drifted => "drifted",
            GroupState::Unmanageable => "unmanageable",
            GroupState::Error => "error",
        }
    }
}

#[derive(Default)]
pub(super) struct Tally {
    pub(super) in_sync: usize,
    pub(super) changed: usize,
    pub(super) would_change: usize,
    pub(super) held: usize,
    pub(super) errors: usize,
    pub(super) api_calls: u64,
}

/// Why a correction happened: the `cause` label of `sgpolicy_corrections_by_cause_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cause {
    /// A full resync (start-up, interval, SIGHUP, retry) found the drift.
    Resync,
    /// A policy file changed.
    File,
    /// An ActionTrail event named the group (set per group when an event announced its drift).
    Event,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Resync => "resync",
            Cause::File => "file",
            Cause::Event => "event",
        }
    }
}

/// Who an event says made the change a correction undid, when the read found that change.
fn announced_drift(r: &GroupResult, author: Option<Arc<Author>>) -> Option<Arc<Author>> {
    let author = author?;
    match author.set_to {
        Some(p) if Some(p) != r.entry.observed => None,
        _ => Some(author),
    }
}

/// How a daemon pass ended: the `outcome` label of `sgpolicy_passes_total` and of the pass line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PassOutcome {
    Success,
    /// The cloud was read; some groups failed on their own.
    GroupErrors,
    /// The folder could not be loaded (the last good state, if any, was enforced).
    FolderError,
    /// The cloud, or the way to it, failed (the daemon retries with backoff).
    CloudError,
}

impl PassOutcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            PassOutcome::Success => "success",
            PassOutcome::GroupErrors => "group_errors",
            PassOutcome::FolderError => "folder_error",
            PassOutcome::CloudError => "cloud_error",
        }
    }

    /// Whether the pass read the cloud through (what `sgpolicy_last_success_timestamp` records).
    fn read_the_cloud(self) -> bool {
        matches!(self, PassOutcome::Success | PassOutcome::GroupErrors)
    }
}

/// Everything the pass line and the pass metrics say about one finished pass.
pub(super) struct Finished<'a> {
    pub(super) trigger: Trigger,
    pub(super) outcome: PassOutcome,
    pub(super) started: Instant,
    pub(super) tally: &'a Tally,
    pub(super) scope: usize,
    pub(super) declared: usize,
    pub(super) revision: Option<&'a str>,
}

impl<F: Fleet> Runner<F> {
    /// Folds the pass results into the state, metrics and audit trail; returns the tally and the
    /// cloud failure, if any.
    pub(super) fn take_reports(
        &self,
        st: &mut State,
        mut reports: Vec<PassReport>,
        declared: &BTreeMap<GroupKey, DesiredGroup>,
        commit: Option<&str>,
        cause: Cause,
        author_of: &dyn Fn(&GroupKey) -> Option<Arc<Author>>,
    ) -> (Tally, Option<String>) {
        let mut t = Tally::default();
        let mut cloud: Option<String> = None;
        let now = Instant::now();
        for rep in &mut reports {
            for r in &mut rep.results {
                if matches!(
                    r.outcome,
                    Outcome::Changed | Outcome::WouldChange | Outcome::Observed | Outcome::Held(_)
                ) {
                    r.changed_by = announced_drift(r, author_of(&r.entry.key));
                }
                if r.entry.observed.is_some() {
                    st.verified.insert(r.entry.key.clone(), now);
                }
            }
        }
        self.write_report(&reports);
        for rep in &reports {
            if let Some(f) = &rep.fatal {
                cloud.get_or_insert_with(|| f.to_string());
            }
            audit::log_writes(rep, commit);
            for note in &rep.notes {
                // A note about the whole plan (a safety rail) has no location to print before it.
                let at: String = note.locations.iter().map(|l| format!("{l}: ")).collect();
                match note.level {
                    NoteLevel::Warning => tracing::warn!("{at}{}", note.message),
                    NoteLevel::Error => tracing::error!("{at}{}", note.message),
                }
            }
            t.api_calls += rep.api_calls.values().sum::<u64>();
            for r in &rep.results {
                let key = &r.entry.key;
                tracing::debug!(
                    group = %key, desired = %r.entry.desired,
                    observed = r.entry.observed.map(|p| p.as_str()).unwrap_or("-"),
                    outcome = ?r.outcome, source = %r.entry.source, dry_run = rep.dry_run,
                    "group"
                );
                let state = match &r.outcome {
                    Outcome::InSync => {
                        t.in_sync += 1;
                        GroupState::InSync
                    }
                    Outcome::Changed
                        if r.token
                            .as_ref()
                            .is_some_and(|t| st.last_correction.get(key) == Some(t)) =>
                    {
                        // The other lane's correction of the same drift, replayed by ECS.
                        t.changed += 1;
                        GroupState::InSync
                    }
                    Outcome::Changed => {
                        if let Some(token) = &r.token {
                            st.last_correction.insert(key.clone(), token.clone());
                        }
                        t.changed += 1;
                        self.metrics.corrections.inc();
                        self.write_outcome(&key.account, "changed");
                        let (cause, actor) = match r.changed_by.as_deref() {
                            Some(a) => (Cause::Event, a.actor.label()),
                            None => (cause, "unknown"),
                        };
                        self.metrics.correction(cause.label(), actor);
                        if let Some(a) = r.changed_by.as_deref() {
                            tracing::info!(
                                group = %key.id, account = %key.account, region = %key.region,
                                changed_by = %a, event_type = a.event_type.as_str(),
                                event_id = a.event_id.as_str(),
                                "group {key} was changed to {} by {a} ({}, {}) and is {} again",
                                r.entry.observed.map_or("-", |p| p.as_str()),
                                a.event_type.as_str(),
                                a.event_time.as_deref().unwrap_or("time unknown"),
                                r.entry.desired
                            );
                        }
                        if let Some(n) = st.fights.corrected(key, r.entry.desired, now) {
                            let other = r.changed_by.as_deref().map_or_else(
                                || "something else keeps changing it (a console user, Terraform, another tool?)".to_string(),
                                |a| format!("fighting {a}, who keeps changing it"),
                            );
                            tracing::warn!(
                                group = %key.id, account = %key.account, region = %key.region, corrections = n.streak,
                                hold_seconds = n.hold.as_secs(),
                                "group {key} was changed back {} times in a row, each within {} of the last: \
                                 {other}; its next correction is held back for {}",
                                n.streak,
                                humantime::format_duration(self.settings.fight.window),
                                humantime::format_duration(n.hold)
                            );
                        }
                        GroupState::InSync
                    }
                    Outcome::WouldChange => {
                        if rep.dry_run && !self.setup.pass.dry_run {
                            t.held += 1;
                        } else {
                            t.would_change += 1;
                        }
                        GroupState::Drifted
                    }
                    // `mode: observe`: drift reported, never written.
                    Outcome::Observed => {
                        t.would_change += 1;
                        GroupState::Drifted
                    }
                    // A safety rail (`--max-changes`, `--allow-open`) held the change back.
                    Outcome::Held(_) => {
                        t.held += 1;
                        GroupState::Drifted
                    }
                    Outcome::Failed(e) => {
                        t.errors += 1;
                        if audit::write_sent(r) {
                            self.write_outcome(&key.account, "failed");
                        }
                        if e.is_cloud_trouble() {
                            cloud.get_or_insert_with(|| e.to_string());
                        }
                        GroupState::Error
                    }
                    Outcome::Error => {
                        t.errors += 1;
                        match &r.entry.action {
                            Action::Unmanageable { .. } => GroupState::Unmanageable,
                            Action::ReadFailed {
                                code,
                                message,
                                blame,
                            } => {
                                if *blame == Blame::Cloud {
                                    cloud.get_or_insert_with(|| format!("{code}: {message}"));
                                }
                                GroupState::Error
                            }
                            _ => GroupState::Error,
                        }
                    }
                };
                let settled = declared.get(key).map(|g| (g.policy, g.mode));
                if let (true, Some(s)) = (
                    matches!(state, GroupState::InSync | GroupState::Drifted),
                    settled,
                ) {
                    st.settled.insert(key.clone(), s);
                } else {
                    st.settled.remove(key);
                }
                st.groups.insert(key.clone(), state);
            }
        }
        (t, cloud)
    }

    /// `--report FILE` in the daemon: the JSON report of the last pass that looked at any group,
    /// replaced atomically.
    fn write_report(&self, reports: &[PassReport]) {
        let Some(path) = &self.setup.report else {
            return;
        };
        let Some((first, rest)) = reports.split_first() else {
            return;
        };
        let mut merged = first.clone();
        for r in rest {
            merged.results.extend(r.results.iter().cloned());
        }
        merged.results.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
        if let Err(e) = crate::report::write_file(path, &crate::report::json(&merged)) {
            tracing::warn!("writing the pass report to {}: {e}", path.display());
        }
    }

    pub(super) fn write_outcome(&self, account: &str, outcome: &str) {
        self.metrics
            .writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
                account: AccountLabel(account.to_string()),
            })
            .inc();
    }

    pub(super) fn publish_groups(&self, st: &State) {
        let mut counts: BTreeMap<(String, &'static str), i64> = BTreeMap::new();
        for (key, s) in &st.groups {
            *counts
                .entry((key.account.to_string(), s.label()))
                .or_default() += 1;
        }
        self.metrics.set_groups(&counts);
        let fighting = st.fights.fighting(Instant::now());
        self.metrics.fighting_groups.set(fighting.len() as i64);
        self.metrics.fight_hold.clear();
        for (key, hold) in fighting {
            self.metrics
                .fight_hold
                .get_or_create(&GroupLabels {
                    region: key.region.to_string(),
                    group: key.id.to_string(),
                    account: AccountLabel(key.account.to_string()),
                })
                .set(hold.as_secs_f64());
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish(&self, f: Finished<'_>) {
        let Finished {
            trigger,
            outcome,
            started,
            tally: t,
            scope,
            declared,
            revision,
        } = f;
        let elapsed = started.elapsed();
        self.metrics
            .pass_done(trigger.as_str(), outcome.as_str(), elapsed.as_secs_f64());
        self.metrics.sync_api_calls(self.fleet.calls());
        self.metrics.sync_events(&self.intake.status);
        self.metrics.sync_trail_calls(self.fleet.trail_calls());
        if outcome.read_the_cloud() {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            self.metrics.last_success.set(unix.as_secs_f64());
        }
        if trigger != Trigger::Event {
            // The targeted lane runs beside the main one; only the main one's passes can stall.
            self.health.pass_ended();
        }
        tracing::info!(
            trigger = trigger.as_str(),
            outcome = outcome.as_str(),
            revision = revision.unwrap_or("-"),
            groups = declared,
            scope,
            in_sync = t.in_sync,
            changed = t.changed,
            would_change = t.would_change,
            held = t.held,
            errors = t.errors,
            api_calls = t.api_calls,
            duration_ms = elapsed.as_millis() as u64,
            "pass finished"
        );
    }
}
