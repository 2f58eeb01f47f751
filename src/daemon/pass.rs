//! One daemon pass: re-read the folder (keeping the last good state when it is broken), choose the
//! groups to look at (all of them on a full pass; on a file pass only those whose declaration changed
//! since they were last settled), hold back fighting groups, run the reconcile pass, and report it
//! through logs, metrics, readiness and the audit trail.

use super::config::DaemonSettings;
use super::fights::Fights;
use super::scheduler::{Passes, Trigger, Verdict};
use super::{audit, gitrev};
use crate::cli::Config;
use crate::ecs::error::{classify, ErrorClass};
use crate::ecs::EcsClient;
use crate::health::{FolderStatus, Health};
use crate::metrics::{GroupLabels, Metrics, OutcomeLabels};
use crate::model::{GroupKey, Policy};
use crate::plan::Action;
use crate::policy::{self, Desired, DesiredGroup, LoadError, LoadOptions};
use crate::reconcile::{self, Outcome, PassOptions, PassReport};
use crate::watch::FolderWatch;
use futures::future::LocalBoxFuture;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A folder that keeps changing while it is read is read again at most this many times.
const LOAD_ATTEMPTS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupState {
    InSync,
    Drifted,
    Unmanageable,
    Error,
}

impl GroupState {
    fn label(self) -> &'static str {
        match self {
            GroupState::InSync => "in_sync",
            GroupState::Drifted => "drifted",
            GroupState::Unmanageable => "unmanageable",
            GroupState::Error => "error",
        }
    }
}

struct State {
    last_good: Option<Arc<Desired>>,
    commit: Option<String>,
    last_errors: Vec<LoadError>,
    /// Groups whose declared policy was last seen in effect (or, dry-run, observed): a file pass skips
    /// them while their declaration stays the same.
    settled: BTreeMap<GroupKey, Policy>,
    groups: BTreeMap<GroupKey, GroupState>,
    fights: Fights,
}

pub struct Runner {
    config: Config,
    settings: DaemonSettings,
    client: EcsClient,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    watch: Option<std::sync::Mutex<FolderWatch>>,
    cancel: Arc<AtomicBool>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct Tally {
    in_sync: usize,
    changed: usize,
    would_change: usize,
    held: usize,
    errors: usize,
    api_calls: u64,
}

/// Whether a failure code means the cloud (not this one group) is in trouble.
fn is_cloud_failure(code: &str) -> bool {
    code != "ShuttingDown" && classify(Some(500), code) != ErrorClass::PerGroup
}

/// What the folder resolves to: a git-sync or ConfigMap swap during a read changes it.
fn folder_identity(dir: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    (
        std::fs::canonicalize(dir).ok(),
        std::fs::canonicalize(dir.join("..data")).ok(),
    )
}

fn load_consistent(dir: &Path, opts: &LoadOptions) -> Result<Desired, Vec<LoadError>> {
    for _ in 0..LOAD_ATTEMPTS {
        let before = folder_identity(dir);
        let result = policy::load_folder(dir, opts);
        if folder_identity(dir) == before {
            return result;
        }
    }
    Err(vec![LoadError {
        location: crate::model::Location {
            path: dir.to_path_buf(),
            line: 1,
            column: 1,
        },
        message: "the policy folder was swapped while it was being read; reading it again on the next change"
            .to_string(),
    }])
}

impl Runner {
    pub fn new(
        config: Config,
        client: EcsClient,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        watch: Option<FolderWatch>,
    ) -> Runner {
        let settings = config.daemon.clone();
        Runner {
            state: tokio::sync::Mutex::new(State {
                last_good: None,
                commit: None,
                last_errors: Vec::new(),
                settled: BTreeMap::new(),
                groups: BTreeMap::new(),
                fights: Fights::new(settings.fight),
            }),
            config,
            settings,
            client,
            metrics,
            health,
            watch: watch.map(std::sync::Mutex::new),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn load(&self) -> Result<Desired, Vec<LoadError>> {
        let dir = self.config.policies.clone();
        let opts = LoadOptions {
            default_region: self.config.region.clone(),
            max_file_bytes: self.config.max_file_bytes,
        };
        match tokio::task::spawn_blocking(move || load_consistent(&dir, &opts)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(vec![LoadError {
                location: crate::model::Location {
                    path: self.config.policies.clone(),
                    line: 1,
                    column: 1,
                },
                message: format!("reading the policy folder was interrupted: {e}"),
            }]),
        }
    }

    /// Takes in a load result; returns whether the folder loaded cleanly.
    fn take_folder(
        &self,
        st: &mut State,
        loaded: Result<Desired, Vec<LoadError>>,
        commit: Option<String>,
    ) -> bool {
        let dir = self.config.policies.display();
        match loaded {
            Ok(d) => {
                let new_revision = st
                    .last_good
                    .as_ref()
                    .map_or(true, |g| g.revision != d.revision);
                if new_revision || st.commit != commit || !st.last_errors.is_empty() {
                    tracing::info!(
                        revision = %d.revision, commit = commit.as_deref().unwrap_or(""),
                        groups = d.groups.len(), files = d.files,
                        "policy folder {dir} loaded"
                    );
                    if d.files == 0 {
                        tracing::warn!(
                            "policy folder {dir} has no policy files: no group is managed"
                        );
                    }
                    self.metrics.set_revision(&d.revision, commit.as_deref());
                }
                self.metrics.load_errors.set(0);
                self.health.folder(
                    FolderStatus::Loaded {
                        revision: d.revision.clone(),
                    },
                    0,
                );
                st.last_good = Some(Arc::new(d));
                st.commit = commit;
                st.last_errors.clear();
                true
            }
            Err(errors) => {
                let n = errors.len();
                if errors == st.last_errors {
                    tracing::warn!("policy folder {dir} still has {n} problem(s) (listed earlier)");
                } else {
                    for e in &errors {
                        tracing::error!(target: "sgpolicy::policy", "{e}");
                    }
                }
                self.metrics.load_errors.set(n as i64);
                self.metrics.load_failures.inc();
                match &st.last_good {
                    Some(g) => {
                        tracing::error!(
                            "{n} problem(s) in policy folder {dir}: nothing from this version is applied; \
                             the last good revision {} stays in force", g.revision
                        );
                        self.health.folder(
                            FolderStatus::Degraded {
                                revision: g.revision.clone(),
                                errors: n,
                            },
                            n,
                        );
                    }
                    None => {
                        tracing::error!(
                            "{n} problem(s) in policy folder {dir} and no earlier version loaded: \
                             nothing is enforced until it is fixed"
                        );
                        self.health.folder(FolderStatus::NotLoaded, n);
                    }
                }
                st.last_errors = errors;
                false
            }
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
        let commit = gitrev::commit_of(&self.config.policies);
        let mut st = self.state.lock().await;
        let folder_ok = self.take_folder(&mut st, loaded, commit);
        let Some(desired) = st.last_good.clone() else {
            self.finish(
                trigger,
                "folder_error",
                started,
                &Tally::default(),
                0,
                0,
                None,
            );
            return Verdict::Done;
        };

        let now = Instant::now();
        let declared = |k: &GroupKey| desired.groups.contains_key(k);
        st.settled.retain(|k, _| declared(k));
        st.groups.retain(|k, _| declared(k));
        st.fights.prune(declared, now);
        let full = trigger.is_full();
        let (held, active): (Vec<&DesiredGroup>, Vec<&DesiredGroup>) = desired
            .groups
            .values()
            .filter(|g| full || st.settled.get(&g.key) != Some(&g.policy))
            .partition(|g| st.fights.held(&g.key, now));
        let scope = held.len() + active.len();
        let subset = |groups: Vec<&DesiredGroup>| Desired {
            groups: groups
                .into_iter()
                .map(|g| (g.key.clone(), g.clone()))
                .collect(),
            revision: desired.revision.clone(),
            files: desired.files,
        };
        let opts = PassOptions {
            dry_run: self.config.dry_run,
            concurrency: self.config.concurrency,
            cancel: Some(self.cancel.clone()),
            ..PassOptions::default()
        };
        let mut reports = Vec::new();
        if !active.is_empty() {
            reports.push(reconcile::run_pass(&self.client, &subset(active), &opts).await);
        }
        if !held.is_empty() {
            let watch_only = PassOptions {
                dry_run: true,
                ..opts.clone()
            };
            reports.push(reconcile::run_pass(&self.client, &subset(held), &watch_only).await);
        }

        let commit = st.commit.clone();
        let (tally, cloud_failure) = self.take_reports(&mut st, &reports, commit.as_deref());
        self.publish_groups(&st);
        if scope > 0 {
            self.health.cloud(cloud_failure.clone());
        }
        // Every declared group was read (also a file pass right after the first good load).
        if full || scope == desired.groups.len() {
            self.health.full_pass_done();
        }
        let outcome = if cloud_failure.is_some() {
            "cloud_error"
        } else if !folder_ok {
            "folder_error"
        } else if tally.errors > 0 {
            "group_errors"
        } else {
            "success"
        };
        let revision = desired.revision.clone();
        drop(st);
        self.finish(
            trigger,
            outcome,
            started,
            &tally,
            scope,
            desired.groups.len(),
            Some(&revision),
        );
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

    /// Folds the pass results into the state, metrics and audit trail; returns the tally and the
    /// cloud failure, if any.
    fn take_reports(
        &self,
        st: &mut State,
        reports: &[PassReport],
        commit: Option<&str>,
    ) -> (Tally, Option<String>) {
        let mut t = Tally::default();
        let mut cloud: Option<String> = None;
        let now = Instant::now();
        for rep in reports {
            if let Some(f) = &rep.fatal {
                cloud.get_or_insert_with(|| f.to_string());
            }
            audit::log_writes(rep, commit);
            t.api_calls += rep.api_calls.values().sum::<u64>();
            for r in &rep.results {
                let key = &r.entry.key;
                tracing::debug!(
                    group = %key, desired = %r.entry.desired,
                    observed = r.entry.observed.map(|p| p.as_str()).unwrap_or("-"),
                    outcome = ?r.outcome, source = %r.entry.source, dry_run = rep.dry_run,
                    "group"
                );
                let state = match r.outcome {
                    Outcome::InSync => {
                        t.in_sync += 1;
                        GroupState::InSync
                    }
                    Outcome::Changed => {
                        t.changed += 1;
                        self.metrics.corrections.inc();
                        self.write_outcome("changed");
                        if let Some(n) = st.fights.corrected(key, now) {
                            tracing::warn!(
                                group = %key.id, region = %key.region, corrections = n.streak,
                                hold_seconds = n.hold.as_secs(),
                                "group {key} was changed back {} times in a row, each within {} of the last: \
                                 something else keeps changing it (a console user, Terraform, another tool?); \
                                 its next correction is held back for {}",
                                n.streak,
                                humantime::format_duration(self.settings.fight.window),
                                humantime::format_duration(n.hold)
                            );
                        }
                        GroupState::InSync
                    }
                    Outcome::WouldChange => {
                        if rep.dry_run && !self.config.dry_run {
                            t.held += 1;
                        } else {
                            t.would_change += 1;
                        }
                        GroupState::Drifted
                    }
                    Outcome::Failed => {
                        t.errors += 1;
                        if audit::write_sent(r) {
                            self.write_outcome("failed");
                        }
                        if let Some(e) = r.error.as_ref().filter(|e| is_cloud_failure(&e.code)) {
                            cloud.get_or_insert_with(|| e.to_string());
                        }
                        GroupState::Error
                    }
                    Outcome::Error => {
                        t.errors += 1;
                        match &r.entry.action {
                            Action::Unmanageable { .. } => GroupState::Unmanageable,
                            Action::ReadFailed { code, message } => {
                                if is_cloud_failure(code) {
                                    cloud.get_or_insert_with(|| format!("{code}: {message}"));
                                }
                                GroupState::Error
                            }
                            _ => GroupState::Error,
                        }
                    }
                };
                if matches!(state, GroupState::InSync | GroupState::Drifted) {
                    st.settled.insert(key.clone(), r.entry.desired);
                } else {
                    st.settled.remove(key);
                }
                st.groups.insert(key.clone(), state);
            }
        }
        (t, cloud)
    }

    fn write_outcome(&self, outcome: &str) {
        self.metrics
            .writes
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    fn publish_groups(&self, st: &State) {
        let mut counts: BTreeMap<&'static str, i64> = BTreeMap::new();
        for s in st.groups.values() {
            *counts.entry(s.label()).or_default() += 1;
        }
        self.metrics.set_groups(&counts);
        let fighting = st.fights.fighting(Instant::now());
        self.metrics.fighting_groups.set(fighting.len() as i64);
        self.metrics.fight_hold.clear();
        for (key, hold) in fighting {
            self.metrics
                .fight_hold
                .get_or_create(&GroupLabels {
                    region: key.region.clone(),
                    group: key.id.clone(),
                })
                .set(hold.as_secs_f64());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        trigger: Trigger,
        outcome: &str,
        started: Instant,
        t: &Tally,
        scope: usize,
        declared: usize,
        revision: Option<&str>,
    ) {
        let elapsed = started.elapsed();
        self.metrics
            .pass_done(trigger.as_str(), outcome, elapsed.as_secs_f64());
        self.metrics.sync_api_calls(self.client.stats());
        if matches!(outcome, "success" | "group_errors") {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            self.metrics.last_success.set(unix.as_secs_f64());
        }
        self.health.pass_ended();
        tracing::info!(
            trigger = trigger.as_str(),
            outcome,
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
