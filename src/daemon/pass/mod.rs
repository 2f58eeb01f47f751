//! One daemon pass: re-read the folder (keeping the last good state when it is broken), choose the
//! groups to look at (all of them on a full pass; on a file pass only those whose declaration changed
//! since they were last settled), hold back fighting groups, run the reconcile pass, and report it
//! through logs, metrics, readiness and the audit trail.

mod coverage;
mod folder;
mod results;
mod scope;
mod targeted;

use super::fights::Fights;
use super::intake::Intake;
use super::settings::DaemonSettings;
use super::triggers::{Passes, Trigger, Verdict};
use super::Setup;
use crate::accounts::Clients;
use crate::daemon::health::Health;
use crate::daemon::metrics::Metrics;
use crate::daemon::watch::FolderWatch;
use crate::events::poller::Targets;
use crate::model::{GroupKey, Mode, Policy};
use crate::policy::commit;
use crate::policy::{Desired, DesiredGroup, LoadError, Selector};
use crate::reconcile::{self, PassOptions};
use futures::future::LocalBoxFuture;
use results::{Cause, Finished, GroupState, PassOutcome, Tally};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct State {
    last_good: Option<Arc<Desired>>,
    commit: Option<String>,
    last_errors: Vec<LoadError>,
    /// Groups whose declared policy was last seen in effect (or, dry-run, observed): a file pass skips
    /// them while their declaration stays the same.
    settled: BTreeMap<GroupKey, (Policy, Mode)>,
    groups: BTreeMap<GroupKey, GroupState>,
    fights: Fights,
    /// The last selector listing's groups (explicit entries excluded), and what it was made for.
    selector_groups: BTreeMap<GroupKey, DesiredGroup>,
    last_selectors: Vec<Selector>,
    last_explicit: BTreeSet<GroupKey>,
    /// The groups the last pass resolved (entries and selector matches): a targeted pass reads from
    /// these, never from an event.
    effective: Option<Arc<Desired>>,
    /// When each governed group was last read successfully (the verification-age gauge).
    verified: BTreeMap<GroupKey, Instant>,
    /// The ClientToken of each group's last correction: both lanes may correct one drift with the
    /// same token (one write takes effect, the other is replayed), which is one correction, not two.
    last_correction: BTreeMap<GroupKey, String>,
    /// `--report-ungoverned`: what the last coverage survey found.
    coverage: coverage::Seen,
}

pub struct Runner {
    setup: Setup,
    settings: DaemonSettings,
    clients: Arc<Clients>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    watch: Option<std::sync::Mutex<FolderWatch>>,
    cancel: Arc<AtomicBool>,
    state: tokio::sync::Mutex<State>,
    /// Events heard and the groups they queue for a targeted pass.
    intake: Arc<Intake>,
    /// What the LookupEvents poller covers, published after every pass.
    targets: tokio::sync::watch::Sender<Arc<Targets>>,
    started: Instant,
    /// The oldest last successful read of any governed group, as of the last pass.
    oldest_read: std::sync::Mutex<Option<Instant>>,
}

impl Runner {
    pub fn new(
        setup: Setup,
        clients: Arc<Clients>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        watch: Option<FolderWatch>,
        intake: Arc<Intake>,
        targets: tokio::sync::watch::Sender<Arc<Targets>>,
    ) -> Runner {
        let settings = setup.settings.clone();
        Runner {
            state: tokio::sync::Mutex::new(State {
                last_good: None,
                commit: None,
                last_errors: Vec::new(),
                settled: BTreeMap::new(),
                selector_groups: BTreeMap::new(),
                last_selectors: Vec::new(),
                last_explicit: BTreeSet::new(),
                coverage: coverage::Seen::default(),
                groups: BTreeMap::new(),
                fights: Fights::new(settings.fight),
                effective: None,
                verified: BTreeMap::new(),
                last_correction: BTreeMap::new(),
            }),
            intake,
            targets,
            started: Instant::now(),
            oldest_read: std::sync::Mutex::new(None),
            setup,
            settings,
            clients,
            metrics,
            health,
            watch: watch.map(std::sync::Mutex::new),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn pass(&self, trigger: Trigger) -> Verdict {
        let started = Instant::now();
        self.health.pass_started();
        if let Some(w) = &self.watch {
            // A panic during an earlier rearm leaves the watch usable: take it back.
            w.lock().unwrap_or_else(|e| e.into_inner()).rearm();
        }
        let loaded = self.load().await;
        let commit = commit::commit_of(&self.setup.policies);
        let mut st = self.state.lock().await;
        let folder_ok = self.take_folder(&mut st, loaded, commit);
        let Some(desired) = st.last_good.clone() else {
            self.finish(Finished {
                trigger,
                outcome: PassOutcome::FolderError,
                started,
                tally: &Tally::default(),
                scope: 0,
                declared: 0,
                revision: None,
            });
            return Verdict::Done;
        };

        let full = trigger.is_full();
        let folder = desired.clone();
        let desired = match self.effective(&mut st, &desired, full).await {
            Ok(d) => d,
            Err(e) => {
                // Nothing can be read with these credentials: report it like any cloud failure.
                let why = e.to_string();
                self.health.cloud(Some(why.clone()));
                let revision = desired.revision.clone();
                drop(st);
                self.finish(Finished {
                    trigger,
                    outcome: PassOutcome::CloudError,
                    started,
                    tally: &Tally::default(),
                    scope: 0,
                    declared: 0,
                    revision: Some(&revision),
                });
                tracing::warn!(
                    trigger = trigger.as_str(),
                    "pass failed on the cloud: {why}"
                );
                return Verdict::Failed;
            }
        };
        self.metrics
            .shard
            .groups_owned
            .set(desired.groups.len() as i64);
        let now = Instant::now();
        let declared = |k: &GroupKey| desired.groups.contains_key(k);
        st.settled.retain(|k, _| declared(k));
        st.groups.retain(|k, _| declared(k));
        st.fights.prune(declared, now);
        let (held, active): (Vec<&DesiredGroup>, Vec<&DesiredGroup>) = desired
            .groups
            .values()
            .filter(|g| full || st.settled.get(&g.key) != Some(&(g.policy, g.mode)))
            .partition(|g| st.fights.held(&g.key, now));
        let scope = held.len() + active.len();
        let (active, held) = (subset(&desired, active), subset(&desired, held));
        let desired = Arc::new(desired);
        st.effective = Some(desired.clone());
        self.intake.govern(&desired);
        self.publish_targets(&desired);
        // The targeted lane may read and write while this pass runs: the state is not held across
        // the cloud calls, only while choosing the scope and while folding the results.
        drop(st);
        let reports = self.run_scoped(active, held).await;
        // Events older than these reads cost nothing (daemon::intake).
        let wall_start = std::time::SystemTime::now() - started.elapsed();
        self.intake.note_reads(&reports, wall_start);

        let mut st = self.state.lock().await;
        let commit = st.commit.clone();
        let cause = if full { Cause::Resync } else { Cause::File };
        let (tally, cloud_failure) = self.take_reports(
            &mut st,
            reports,
            &desired.groups,
            commit.as_deref(),
            cause,
            &|k| self.intake.author_of(k),
        );
        self.publish_groups(&st);
        self.track_verification(&mut st, &desired);
        if scope > 0 {
            self.health.cloud(cloud_failure.clone());
        }
        // Every declared group was read (also a file pass right after the first good load).
        if full || scope == desired.groups.len() {
            self.health.full_pass_done();
        }
        let outcome = if cloud_failure.is_some() {
            PassOutcome::CloudError
        } else if !folder_ok {
            PassOutcome::FolderError
        } else if tally.errors > 0 {
            PassOutcome::GroupErrors
        } else {
            PassOutcome::Success
        };
        let revision = desired.revision.clone();
        drop(st);
        if full {
            self.survey_coverage(&folder).await;
        }
        self.intake.nudge();
        self.finish(Finished {
            trigger,
            outcome,
            started,
            tally: &tally,
            scope,
            declared: desired.groups.len(),
            revision: Some(&revision),
        });
        if let Some(why) = &cloud_failure {
            tracing::warn!(
                trigger = trigger.as_str(),
                "pass failed on the cloud: {why}"
            );
            Verdict::Failed
        } else {
            Verdict::Done
        }
    }
}

/// The desired state of `groups` only (selectors already resolved into them).
fn subset<'a>(desired: &Desired, groups: impl IntoIterator<Item = &'a DesiredGroup>) -> Desired {
    Desired {
        groups: groups
            .into_iter()
            .map(|g| (g.key.clone(), g.clone()))
            .collect(),
        revision: desired.revision.clone(),
        files: desired.files,
        selectors: Vec::new(),
        notes: Vec::new(),
        accounts: desired.accounts.clone(),
    }
}

impl Runner {
    /// Runs the active groups as the options say and the held (fighting) ones watch-only.
    async fn run_scoped(&self, active: Desired, held: Desired) -> Vec<reconcile::PassReport> {
        let opts = PassOptions {
            cancel: Some(self.cancel.clone()),
            ..self.setup.pass.clone()
        };
        let mut reports = Vec::new();
        if !active.groups.is_empty() {
            reports.push(reconcile::run_pass(&self.clients, &active, &opts).await);
        }
        if !held.groups.is_empty() {
            let watch_only = PassOptions {
                dry_run: true,
                ..opts.clone()
            };
            reports.push(reconcile::run_pass(&self.clients, &held, &watch_only).await);
        }
        reports
    }

    /// The (account, region)s with governed groups, for the LookupEvents poller.
    fn publish_targets(&self, desired: &Desired) {
        let targets = Targets {
            buckets: desired.groups.keys().map(GroupKey::bucket).collect(),
            roles: desired.accounts.clone(),
        };
        self.targets.send_if_modified(|t| {
            if **t == targets {
                return false;
            }
            *t = Arc::new(targets);
            true
        });
    }

    /// After a main pass, which resolved the governed groups anew: forgets the groups no longer
    /// governed, then notes the oldest read.
    fn track_verification(&self, st: &mut State, desired: &Desired) {
        st.verified.retain(|k, _| desired.groups.contains_key(k));
        st.last_correction
            .retain(|k, _| desired.groups.contains_key(k));
        self.note_oldest_read(st);
    }

    /// The oldest successful read of any group the last main pass resolved (a group never read
    /// counts from the daemon's start). A targeted pass calls it directly: the groups it read came
    /// from a resolution that a main pass may have replaced meanwhile, so it must not prune by them.
    fn note_oldest_read(&self, st: &State) {
        let Some(governed) = &st.effective else {
            return;
        };
        let oldest = governed
            .groups
            .keys()
            .map(|k| st.verified.get(k).copied().unwrap_or(self.started))
            .min();
        *self.oldest_read.lock().unwrap_or_else(|e| e.into_inner()) = oldest;
        self.publish_verification_age();
    }

    /// `sgpolicy_oldest_verification_age_seconds`, kept current by the heartbeat between passes.
    fn publish_verification_age(&self) {
        let oldest = *self.oldest_read.lock().unwrap_or_else(|e| e.into_inner());
        let age = oldest.map_or(0.0, |t| t.elapsed().as_secs_f64());
        self.metrics.oldest_verification_age.set(age);
    }
}

impl Passes for Runner {
    fn run(self: Arc<Self>, trigger: Trigger) -> LocalBoxFuture<'static, Verdict> {
        Box::pin(async move { self.pass(trigger).await })
    }

    fn panicked(&self, trigger: Trigger, message: &str) {
        tracing::error!(
            trigger = trigger.as_str(),
            "a pass panicked: {message}; the daemon carries on and retries with backoff (please report this bug)"
        );
        self.metrics.pass_done(trigger.as_str(), "panic", 0.0);
        self.health.pass_ended();
        self.health
            .cloud(Some(format!("the last pass panicked: {message}")));
    }

    fn heartbeat(&self) {
        self.health.beat();
        self.publish_verification_age();
        self.metrics.sync_events(&self.intake.status);
        self.metrics.sync_trail_calls(self.clients.trail_stats());
    }

    fn scheduled(&self, trigger: Trigger, after: Duration, failures: u32) {
        self.metrics.next_pass.set(after.as_secs_f64());
        self.metrics.consecutive_failures.set(i64::from(failures));
        let after_ms = after.as_millis() as u64;
        if failures > 0 {
            tracing::warn!(
                failures,
                after_ms,
                "next attempt ({}) in {}",
                trigger.as_str(),
                humantime::format_duration(Duration::from_millis(after_ms))
            );
        } else {
            tracing::debug!(after_ms, "next {} pass scheduled", trigger.as_str());
        }
    }

    fn stopping(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.intake.wake();
        self.health.stopping();
    }
}
