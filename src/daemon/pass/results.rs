//! Folding a pass's results into the daemon's state, metrics, fight tracking and audit trail, and the
//! one summary line per pass.

use super::fold::{self, Effect, Scoped};
use super::{Runner, State};
use crate::accounts::Fleet;
use crate::daemon::metrics::{AccountLabel, GroupLabels, OutcomeLabels};
use crate::daemon::triggers::Trigger;
use crate::events::Author;
use crate::model::{GroupKey, NoteLevel};
use crate::policy::DesiredGroup;
use crate::reconcile::PassReport;
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

/// What found the drift a correction undid: the `cause` label of `sgpolicy_corrections_by_cause_total`
/// (named apart from the poller's private `Cause`, which is why a lookup failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FoundBy {
    /// A full resync (start-up, interval, SIGHUP, retry) found the drift.
    Resync,
    /// A policy file changed.
    File,
    /// An ActionTrail event named the group (set per group when an event announced its drift).
    Event,
}

impl FoundBy {
    pub(super) fn label(self) -> &'static str {
        match self {
            FoundBy::Resync => "resync",
            FoundBy::File => "file",
            FoundBy::Event => "event",
        }
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

    /// A pass that read the cloud: a cloud failure wins, then a folder that did not load cleanly
    /// (the last good state was enforced), then groups that failed on their own.
    pub(super) fn of(cloud_failed: bool, folder_ok: bool, tally: &Tally) -> PassOutcome {
        if cloud_failed {
            PassOutcome::CloudError
        } else if !folder_ok {
            PassOutcome::FolderError
        } else if tally.errors > 0 {
            PassOutcome::GroupErrors
        } else {
            PassOutcome::Success
        }
    }

    /// Whether the pass read the cloud through (what `sgpolicy_last_success_timestamp` records).
    pub(super) fn read_the_cloud(self) -> bool {
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

impl<'a> Finished<'a> {
    /// A pass that ended before reading any group.
    pub(super) fn nothing_read(
        trigger: Trigger,
        outcome: PassOutcome,
        started: Instant,
        revision: Option<&'a str>,
    ) -> Finished<'a> {
        const NONE: &Tally = &Tally {
            in_sync: 0,
            changed: 0,
            would_change: 0,
            held: 0,
            errors: 0,
            api_calls: 0,
        };
        Finished {
            trigger,
            outcome,
            started,
            tally: NONE,
            scope: 0,
            declared: 0,
            revision,
        }
    }
}

impl<F: Fleet> Runner<F> {
    /// Folds the pass results into the state ([`fold::fold`], pure), then carries out what it
    /// decided: the report file, audit lines, notes, metrics and log lines. Returns the tally and
    /// the cloud failure, if any.
    pub(super) fn fold_reports(
        &self,
        st: &mut State,
        reports: Vec<Scoped>,
        declared: &BTreeMap<GroupKey, DesiredGroup>,
        commit: Option<&str>,
        cause: FoundBy,
        authors: &BTreeMap<GroupKey, Arc<Author>>,
    ) -> (Tally, Option<crate::daemon::health::CloudTrouble>) {
        let cx = fold::Context {
            declared,
            cause,
            authors,
            now: Instant::now(),
        };
        let folded = fold::fold(&mut st.groups, reports, &cx);
        self.write_report(&folded.reports);
        for rep in &folded.reports {
            audit::log_writes(rep, commit);
            for note in &rep.notes {
                // A note about the whole plan (a safety rail) has no location to print before it.
                let at: String = note.locations.iter().map(|l| format!("{l}: ")).collect();
                match note.level {
                    NoteLevel::Warning => tracing::warn!("{at}{}", note.message),
                    NoteLevel::Error => tracing::error!("{at}{}", note.message),
                }
            }
            for r in &rep.results {
                tracing::debug!(
                    group = %r.entry.key, desired = %r.entry.desired,
                    observed = r.entry.observed.map(|p| p.as_str()).unwrap_or("-"),
                    outcome = ?r.outcome, source = %r.entry.source, dry_run = rep.dry_run,
                    "group"
                );
            }
        }
        for effect in &folded.effects {
            self.carry_out(effect);
            self.tell.isolation(effect, declared);
            self.show_isolation(effect);
        }
        self.tell.told(&folded.told);
        self.show_told(&folded.told);
        (folded.tally, folded.cloud)
    }

    /// One effect of a fold: metrics and log lines.
    pub(super) fn carry_out(&self, effect: &Effect) {
        match effect {
            Effect::Corrected {
                account,
                cause,
                actor,
            } => {
                self.metrics.corrections.inc();
                self.write_outcome(account, "changed");
                self.metrics.correction(cause.label(), actor);
            }
            Effect::WriteFailed { account } => self.write_outcome(account, "failed"),
            Effect::Undid {
                key,
                found,
                desired,
                author: a,
            } => tracing::info!(
                group = %key.id, account = %key.account, region = %key.region,
                changed_by = %a, event_type = a.event_type.as_str(),
                event_id = a.event_id.as_str(),
                "group {key} was changed to {} by {a} ({}, {}) and is {} again",
                found.map_or("-", |p| p.as_str()),
                a.event_type.as_str(),
                a.event_time.as_deref().unwrap_or("time unknown"),
                desired
            ),
            Effect::IsolationLost { key, paths, cause } => {
                for p in paths {
                    let a = cause.as_deref().map(|c| &c.author);
                    tracing::warn!(
                        group = %key.id, account = %key.account, region = %key.region,
                        path = match p.kind {
                            crate::isolation::PathKind::IngressRule => "ingress-rule",
                            crate::isolation::PathKind::SharedGroup => "shared-group",
                        },
                        path_group = %p.group,
                        rule_id = p.rule_id.as_deref().unwrap_or("-"),
                        changed_by = %a.map_or_else(|| "-".to_string(), |a| a.to_string()),
                        event_id = a.map_or("-", |a| a.event_id.as_str()),
                        "{}",
                        crate::daemon::reach::lost_sentence(&key.id, p, cause.as_deref())
                    );
                }
            }
            Effect::IsolationRestored { key, cause } => tracing::info!(
                group = %key.id, account = %key.account, region = %key.region,
                "{}",
                crate::daemon::reach::restored_sentence(&key.id, cause.as_deref())
            ),
            Effect::Fight {
                key,
                streak,
                hold,
                by,
            } => {
                let other = by.as_deref().map_or_else(
                    || "something else keeps changing it (a console user, Terraform, another tool?)".to_string(),
                    |a| format!("fighting {a}, who keeps changing it"),
                );
                tracing::warn!(
                    group = %key.id, account = %key.account, region = %key.region, corrections = streak,
                    hold_seconds = hold.as_secs(),
                    "group {key} was changed back {} times in a row, each within {} of the last: \
                     {other}; its next correction is held back for {}",
                    streak,
                    humantime::format_duration(self.settings.fight.window),
                    humantime::format_duration(*hold)
                );
            }
        }
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
        self.metrics.set_groups(&st.groups.counts());
        self.metrics
            .set_isolation_groups(&st.groups.isolation_counts());
        self.intake.depend(st.groups.reach_index());
        let fighting = st.groups.fights.fighting(Instant::now());
        self.metrics.fighting_groups.set(fighting.len() as i64);
        let fights = self.tell.fights(
            fighting.iter().map(|(k, _)| *k),
            &st.groups.records,
            st.effective.as_deref().map(|d| &d.groups),
        );
        self.show(st, &fights);
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
        self.show_pass(trigger, outcome, elapsed);
        self.metrics.sync_api_calls(self.fleet.calls());
        self.metrics.sync_events(&self.intake.status);
        self.metrics.sync_trail_calls(self.fleet.trail_calls());
        if outcome.read_the_cloud() {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            self.metrics.last_success.set(unix.as_secs_f64());
            self.tell.pass_read();
        }
        if !matches!(trigger, Trigger::Event | Trigger::Sweep) {
            // The targeted lane runs beside the main one; only the main one's passes can stall.
            self.health.pass_ended();
        }
        if trigger == Trigger::Sweep && t.changed + t.held + t.errors + t.would_change == 0 {
            // The sweep runs every tick: a tick that found everything in sync is not news.
            tracing::debug!(
                trigger = trigger.as_str(),
                groups = declared,
                scope,
                api_calls = t.api_calls,
                "sweep tick in sync"
            );
            return;
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
