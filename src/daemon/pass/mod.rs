//! One daemon pass: re-read the folder (keeping the last good state when it is broken), choose the
//! groups to look at (all of them on a full pass; on a file pass only those whose declaration changed
//! since they were last settled), hold back fighting groups, run the reconcile pass, and report it
//! through logs, metrics, readiness and the audit trail.

mod coverage;
mod folder;
mod results;
mod scope;

use super::fights::Fights;
use super::settings::DaemonSettings;
use super::triggers::{Passes, Trigger, Verdict};
use super::Setup;
use crate::accounts::Clients;
use crate::daemon::health::Health;
use crate::daemon::metrics::Metrics;
use crate::daemon::watch::FolderWatch;
use crate::model::{GroupKey, Mode, Policy};
use crate::policy::commit;
use crate::policy::{Desired, DesiredGroup, LoadError, Selector};
use crate::reconcile::{self, PassOptions};
use futures::future::LocalBoxFuture;
use results::{Finished, GroupState, PassOutcome, Tally};
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
}

impl Runner {
    pub fn new(
        setup: Setup,
        clients: Arc<Clients>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        watch: Option<FolderWatch>,
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
            }),
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
        let subset = |groups: Vec<&DesiredGroup>| Desired {
            groups: groups
                .into_iter()
                .map(|g| (g.key.clone(), g.clone()))
                .collect(),
            revision: desired.revision.clone(),
            files: desired.files,
            selectors: Vec::new(),
            notes: Vec::new(),
            accounts: desired.accounts.clone(),
        };
        let opts = PassOptions {
            cancel: Some(self.cancel.clone()),
            ..self.setup.pass.clone()
        };
        let mut reports = Vec::new();
        if !active.is_empty() {
            reports.push(reconcile::run_pass(&self.clients, &subset(active), &opts).await);
        }
        if !held.is_empty() {
            let watch_only = PassOptions {
                dry_run: true,
                ..opts.clone()
            };
            reports.push(reconcile::run_pass(&self.clients, &subset(held), &watch_only).await);
        }

        let commit = st.commit.clone();
        let (tally, cloud_failure) =
            self.take_reports(&mut st, &reports, &desired.groups, commit.as_deref());
        self.publish_groups(&st);
        if full {
            self.survey_coverage(&mut st, &folder).await;
        }
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
        self.health.stopping();
    }
}
