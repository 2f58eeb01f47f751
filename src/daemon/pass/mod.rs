//! One daemon pass: re-read the folder (keeping the last good state when it is broken), choose the
//! groups to look at (all of them on a full pass; on a file pass only those whose declaration changed
//! since they were last settled), hold back fighting groups, run the reconcile pass, and report it
//! through logs, metrics, readiness and the audit trail.

mod fold;
mod folder;
mod kept;
mod results;
mod scope;
mod show;
mod survey;
mod sweeping;
mod targeted;
mod tell;
#[cfg(test)]
mod tests;

use super::fights::Fights;
use super::intake::Intake;
use super::settings::DaemonSettings;
use super::triggers::{Passes, Trigger, Verdict};
use super::Setup;
use crate::accounts::{Clients, Fleet};
use crate::daemon::health::{CloudTrouble, Health};
use crate::daemon::metrics::Metrics;
use crate::daemon::watch::FolderWatch;
use crate::events::poller::Targets;
use crate::model::{GroupKey, GroupMeta};
use crate::policy::commit;
use crate::policy::{Desired, DesiredGroup};
use crate::reconcile::{self, PassOptions};
use futures::future::LocalBoxFuture;
use results::{Finished, FoundBy, PassOutcome, Tally};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct State {
    /// The policy folder: not loaded, loaded, or broken with the last good state in force.
    folder: folder::Folder,
    /// One record per governed group, and the fights.
    groups: fold::Groups,
    /// The groups the last pass resolved (entries and selector matches): a targeted pass reads from
    /// these, never from an event.
    effective: Option<Arc<Desired>>,
    /// Unless `--no-report-ungoverned`: what the last coverage survey found.
    survey: survey::LastSurvey,
    /// The first rule pages of the groups declared `Drop` the lanes read, for the interval pass's
    /// isolation check (`kept`).
    pages: kept::Pages,
    /// When the groups were last published (gauges, the status page, the reach index): a sweep
    /// tick that found nothing new publishes at most once a second ([`PUBLISH_EVERY`]).
    published: Option<Instant>,
}

/// How often a sweep tick that found nothing new republishes the groups: each publication walks
/// every record, and the sweep ticks up to 10 times a second.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Runs the daemon's passes over a [`Fleet`] of clients: the real [`Clients`], or a fake in tests.
pub struct Runner<F: Fleet = Clients> {
    setup: Setup,
    settings: DaemonSettings,
    fleet: Arc<F>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    watch: Option<std::sync::Mutex<FolderWatch>>,
    /// Set once shutdown begins: passes start no new request (reconcile checks it before each).
    cancel: Arc<AtomicBool>,
    /// Wakes read-only work waiting on the network (listings, surveys) when shutdown begins.
    stopped: tokio::sync::Notify,
    /// Shared by both lanes: held only between network calls, never across one.
    state: tokio::sync::Mutex<State>,
    /// The main lane's alone (one main pass at a time): its selector listing may be held across the
    /// network, since the targeted lane never takes it.
    selection: tokio::sync::Mutex<scope::Selection>,
    /// Events heard and the groups they queue for a targeted pass.
    intake: Arc<Intake>,
    /// What the LookupEvents poller covers, published after every pass.
    targets: tokio::sync::watch::Sender<Arc<Targets>>,
    started: Instant,
    /// The oldest last successful read of any governed group, as of the last pass.
    oldest_read: std::sync::Mutex<Option<Instant>>,
    /// What the notifier is told (nothing, until [`Runner::notifying`]).
    tell: tell::Teller,
    /// Set while the main lane runs a pass that reads every group: the sweep waits meanwhile.
    full_running: AtomicBool,
    /// `--max-changes` over one `--interval`, for the sweep's and the targeted lane's corrections.
    changes: std::sync::Mutex<crate::daemon::sweep::ChangeWindow>,
    /// What the status page shows (`--status-addr`; kept whether served or not).
    board: Arc<crate::daemon::status::Board>,
}

impl<F: Fleet> Runner<F> {
    pub fn new(
        setup: Setup,
        fleet: Arc<F>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        watch: Option<FolderWatch>,
        intake: Arc<Intake>,
        targets: tokio::sync::watch::Sender<Arc<Targets>>,
    ) -> Runner<F> {
        let settings = setup.settings.clone();
        Runner {
            state: tokio::sync::Mutex::new(State {
                folder: folder::Folder::NotLoaded { errors: Vec::new() },
                survey: survey::LastSurvey::default(),
                groups: fold::Groups::new(Fights::new(settings.fight)),
                effective: None,
                pages: kept::Pages::default(),
                published: None,
            }),
            selection: tokio::sync::Mutex::new(scope::Selection::default()),
            intake,
            targets,
            started: Instant::now(),
            oldest_read: std::sync::Mutex::new(None),
            tell: tell::Teller::default(),
            full_running: AtomicBool::new(false),
            changes: std::sync::Mutex::new(crate::daemon::sweep::ChangeWindow::new(
                setup.pass.rails.max_changes,
                settings.interval,
            )),
            board: Arc::default(),
            setup,
            settings,
            fleet,
            metrics,
            health,
            watch: watch.map(std::sync::Mutex::new),
            cancel: Arc::new(AtomicBool::new(false)),
            stopped: tokio::sync::Notify::new(),
        }
    }

    /// Tells `notifier` what the passes do (corrections, holds, fights, failures).
    pub fn notifying(mut self, notifier: crate::notify::Notifier) -> Runner<F> {
        self.tell = tell::Teller::new(notifier);
        self
    }

    /// Publishes the status page's data to `board` (served by `--status-addr`).
    pub fn showing(mut self, board: Arc<crate::daemon::status::Board>) -> Runner<F> {
        self.board = board;
        self
    }

    async fn pass(&self, trigger: Trigger) -> Verdict {
        // The interval pass beside the sweep reads no group: no need to pause the sweep.
        let reads_all = trigger.is_full() && trigger != Trigger::Interval;
        self.full_running.store(reads_all, Ordering::SeqCst);
        let verdict = self.main_pass(trigger).await;
        self.full_running.store(false, Ordering::SeqCst);
        verdict
    }

    async fn main_pass(&self, trigger: Trigger) -> Verdict {
        let started = Instant::now();
        self.health.pass_started();
        if let Some(w) = &self.watch {
            // A panic during an earlier rearm leaves the watch usable: take it back.
            w.lock().unwrap_or_else(|e| e.into_inner()).rearm();
        }
        let (folder_ok, folder) = self.take_in_folder().await;
        let Some(folder) = folder else {
            self.finish(Finished::nothing_read(
                trigger,
                PassOutcome::FolderError,
                started,
                None,
            ));
            return Verdict::Done;
        };
        let full = trigger.is_full();
        let desired = match self.resolve(&folder, full).await {
            None => {
                // Shutdown: the listings (reads only) were dropped; nothing was written.
                tracing::debug!(trigger = trigger.as_str(), "pass stopped: shutting down");
                self.health.pass_ended();
                return Verdict::Done;
            }
            Some(Err(e)) => {
                // Nothing can be read with these credentials: report it like any cloud failure.
                let why = CloudTrouble::Failed(e);
                self.health.cloud(Some(why.clone()));
                self.tell.pass_failed(&why.to_string());
                let revision = Some(folder.revision.as_str());
                self.finish(Finished::nothing_read(
                    trigger,
                    PassOutcome::CloudError,
                    started,
                    revision,
                ));
                tracing::warn!(
                    trigger = trigger.as_str(),
                    "pass failed on the cloud: {why}"
                );
                return Verdict::Failed;
            }
            Some(Ok(d)) => d,
        };
        // The interval pass runs beside the sweep, which reads every group once per interval.
        let reads_none = trigger == Trigger::Interval;
        let scope = self.choose_scope(desired, full, reads_none).await;
        // Full and file passes check the isolation of the declared Drop groups they read (a file
        // pass reads only the groups whose declaration changed: a targeted check); a plan made as
        // a whole has the whole plan's --max-changes.
        let run = Run {
            check: true,
            max_changes: self.setup.pass.rails.max_changes,
            known: BTreeMap::new(),
            keep_pages: true,
        };
        let reports = self.run_scoped(scope.active, scope.held, run).await;
        // Events older than these reads cost nothing (daemon::intake).
        let wall_start = std::time::SystemTime::now() - started.elapsed();
        self.intake
            .note_reads(reports.iter().map(|s| &s.report), wall_start);
        let (tally, cloud_failure) = self
            .conclude(reports, &scope.desired, scope.size, full, started)
            .await;
        if reads_none {
            // Isolation must not go stale while the sweep reads: every verdict is re-made each
            // interval, from the pages the sweep kept (`kept`).
            self.interval_check(&scope.desired).await;
        }
        let outcome = PassOutcome::of(cloud_failure.is_some(), folder_ok, &tally);
        if full {
            self.survey_coverage(&folder).await;
        }
        self.intake.nudge();
        self.finish(Finished {
            trigger,
            outcome,
            started,
            tally: &tally,
            scope: scope.size,
            declared: scope.desired.groups.len(),
            revision: Some(&scope.desired.revision),
        });
        if let Some(why) = &cloud_failure {
            self.tell.pass_failed(&why.to_string());
            tracing::warn!(
                trigger = trigger.as_str(),
                "pass failed on the cloud: {why}"
            );
            Verdict::Failed
        } else {
            Verdict::Done
        }
    }

    /// Reads the folder and takes it in: whether it loaded cleanly, and the state in force.
    async fn take_in_folder(&self) -> (bool, Option<Arc<Desired>>) {
        let loaded = self.load().await;
        let commit = commit::commit_of(&self.setup.policies);
        let mut st = self.state.lock().await;
        let ok = self.take_folder(&mut st, loaded, commit);
        (ok, st.folder.in_force().cloned())
    }

    /// The governed groups: `folder` with its selectors resolved; `None` when shutdown began first.
    /// Selector listings and role assumptions go over the network: the shared state is not held
    /// meanwhile (only the main lane's selection), so the targeted lane keeps correcting groups.
    async fn resolve(
        &self,
        folder: &Desired,
        full: bool,
    ) -> Option<Result<Desired, reconcile::Failure>> {
        let mut selection = self.selection.lock().await;
        let resolving = self.effective(&mut selection, folder, full);
        self.unless_stopped(resolving).await
    }

    /// Publishes the governed groups (to the targeted lane, the intake, the poller) and chooses
    /// the groups this pass reads, under a short lock. The interval pass (`reads_none`) runs beside
    /// the sweep, which reads every group once per interval: it lists selectors anew and reads no
    /// group itself. A group it finds new has never been read, so the sweep reads it next, at its
    /// pace; one the sweep fell behind on is the sweep's to catch up, never read here in a burst.
    async fn choose_scope(&self, desired: Desired, full: bool, reads_none: bool) -> Scope {
        let mut st = self.state.lock().await;
        self.metrics
            .shard
            .groups_owned
            .set(desired.groups.len() as i64);
        let now = Instant::now();
        st.groups.keep_only(|k| desired.groups.contains_key(k), now);
        st.groups.govern(desired.groups.keys());
        let (held, active): (Vec<&DesiredGroup>, Vec<&DesiredGroup>) = desired
            .groups
            .values()
            .filter(|g| {
                !reads_none && (full || !st.groups.settled(g) || st.groups.held_by_rail(&g.key))
            })
            .partition(|g| st.groups.fights.held(&g.key, now));
        let size = held.len() + active.len();
        let (active, held) = (subset(&desired, active), subset(&desired, held));
        let desired = Arc::new(desired);
        st.effective = Some(desired.clone());
        self.intake.govern(&desired);
        self.publish_targets(&desired);
        Scope {
            desired,
            active,
            held,
            size,
        }
    }

    /// Folds a main pass's reports under a short lock and updates readiness; the tally and the
    /// cloud failure.
    async fn conclude(
        &self,
        mut reports: Vec<fold::Scoped>,
        desired: &Desired,
        scope: usize,
        full: bool,
        started: Instant,
    ) -> (Tally, Option<CloudTrouble>) {
        let mut st = self.state.lock().await;
        self.keep_pages(&mut st, &mut reports, started);
        let commit = st.folder.commit().map(str::to_string);
        let cause = if full { FoundBy::Resync } else { FoundBy::File };
        // A resync that corrects a group an event named still names who changed it.
        let authors = reports
            .iter()
            .flat_map(|s| &s.report.results)
            .filter_map(|r| Some((r.entry.key.clone(), self.intake.author_of(&r.entry.key)?)))
            .collect();
        let (tally, cloud_failure) = self.fold_reports(
            &mut st,
            reports,
            &desired.groups,
            commit.as_deref(),
            cause,
            &authors,
        );
        self.publish_groups(&st);
        self.track_verification(&mut st, desired);
        if scope > 0 {
            self.health.cloud(cloud_failure.clone());
        }
        // Every declared group was read (also a file pass right after the first good load).
        if full || scope == desired.groups.len() {
            self.health.full_pass_done();
        }
        (tally, cloud_failure)
    }
}

/// How a lane runs its groups, beside the setup's pass options.
struct Run {
    /// Check the isolation of the declared Drop groups read (unless `--no-check-isolation`).
    check: bool,
    /// The `--max-changes` in force: the whole plan's for the main lane, the window's room for
    /// the sweep and the targeted lane.
    max_changes: Option<usize>,
    /// Groups read without listing them again (`PassOptions::known`): the sweep's.
    known: BTreeMap<GroupKey, GroupMeta>,
    /// Return the first rule pages of the groups declared `Drop` read (when checking isolation),
    /// for the interval pass's check (`kept`).
    keep_pages: bool,
}

/// The groups one main pass reads: the active ones as the options say, the fighting ones
/// watch-only.
struct Scope {
    /// Every governed group (selectors resolved).
    desired: Arc<Desired>,
    active: Desired,
    held: Desired,
    size: usize,
}

impl<F: Fleet> Runner<F> {
    /// Completes once shutdown has begun (at once if it already had).
    async fn stopped(&self) {
        let notified = self.stopped.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.cancel.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }

    /// Runs `work` unless shutdown begins first, in which case `work` is dropped: only for work
    /// that reads (a listing, a survey), never for a pass that may have a write in flight.
    async fn unless_stopped<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        if self.cancel.load(Ordering::SeqCst) {
            return None;
        }
        tokio::select! {
            biased;
            () = self.stopped() => None,
            done = work => Some(done),
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

impl<F: Fleet> Runner<F> {
    /// Runs the active groups as the options say, but for what `run` changes, and the held
    /// (fighting) ones watch-only.
    async fn run_scoped(&self, active: Desired, held: Desired, run: Run) -> Vec<fold::Scoped> {
        let mut opts = PassOptions {
            cancel: Some(self.cancel.clone()),
            check_isolation: run.check && self.setup.pass.check_isolation,
            known: run.known,
            keep_pages: run.keep_pages && self.setup.pass.check_isolation,
            ..self.setup.pass.clone()
        };
        opts.rails.max_changes = run.max_changes;
        let mut reports = Vec::new();
        if !active.groups.is_empty() {
            reports.push(fold::Scoped {
                report: reconcile::run_pass(&*self.fleet, &active, &opts).await,
                held: None,
            });
        }
        if !held.groups.is_empty() {
            let watch_only = PassOptions {
                dry_run: true,
                ..opts.clone()
            };
            reports.push(fold::Scoped {
                report: reconcile::run_pass(&*self.fleet, &held, &watch_only).await,
                held: Some(fold::HoldReason::Fight),
            });
        }
        reports
    }

    /// The (account, region)s with governed groups, for the LookupEvents poller.
    fn publish_targets(&self, desired: &Desired) {
        let targets = Targets {
            buckets: desired.groups.keys().map(GroupKey::bucket).collect(),
            roles: desired.accounts.clone(),
            reach_events: self.setup.pass.check_isolation,
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
        st.groups
            .keep_only(|k| desired.groups.contains_key(k), Instant::now());
        self.note_oldest_read(st);
    }

    /// The oldest successful read of any group the last main pass resolved (a group never read
    /// counts from the daemon's start). A targeted pass calls it directly: the groups it read came
    /// from a resolution that a main pass may have replaced meanwhile, so it must not prune by them.
    fn note_oldest_read(&self, st: &State) {
        let Some(governed) = &st.effective else {
            return;
        };
        let oldest = st.groups.oldest_read(&governed.groups, self.started);
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

impl<F: Fleet> Passes for Runner<F> {
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
            .cloud(Some(CloudTrouble::Panicked(message.to_string())));
    }

    fn heartbeat(&self) {
        self.health.beat();
        self.tell.events(&self.intake.status);
        self.publish_verification_age();
        self.metrics.sync_events(&self.intake.status);
        self.metrics.sync_trail_calls(self.fleet.trail_calls());
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
        self.stopped.notify_waiters();
        self.intake.wake();
        self.health.stopping();
    }
}
