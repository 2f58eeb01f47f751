//! Isolation that does not go stale beside the sweep. The interval pass reads no group (the sweep
//! does, once per `--interval`), yet every isolation verdict must be at most one interval (plus the
//! check's own time) old: a lost reach event (AuthorizeSecurityGroup, an attached interface) must
//! not leave `isolated` standing until a SIGHUP. So the sweep reads each group declared `Drop` with
//! its first rule page (`MaxResults=1000`, the same one call as the policy read), the runner keeps
//! that page here, and every interval pass re-checks all checked groups from the kept pages: it
//! costs only the VPCs' interface listings, the rules of member groups not kept, and prefix lists.
//! A sweep read whose page differs from the kept one (rules opened with no event) re-checks that
//! group, and the groups whose verdicts depend on it, at once.
//!
//! A page is used only while younger than the interval and newer than any reach event that named
//! its group (such an event forgets it, so an older page never undoes the targeted re-check's
//! newer verdict); a group without one is read by the check as a full pass would. Memory: one
//! entry per group declared `Drop` while checking is on, about 200 bytes plus the group's rules
//! (about 550 bytes each, as parsed: 16 optional strings).

use super::{Runner, State};
use crate::accounts::Fleet;
use crate::daemon::reach::Cause;
use crate::ecs::api::RulePage;
use crate::model::{GroupKey, Policy, SharedStr};
use crate::policy::Desired;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kept first rule pages, by group.
#[derive(Default)]
pub(super) struct Pages {
    kept: HashMap<GroupKey, Kept>,
}

/// One group's page as of `at` (no earlier than the read started); `None`: forgotten at `at`
/// (a reach event named the group), so no page read before then is kept.
struct Kept {
    at: Instant,
    page: Option<RulePage>,
}

impl Pages {
    /// Keeps the pages of reads that started at `at`, unless a newer page or a newer forgetting
    /// is already kept for the group; returns the groups whose rules or VPC differ from their kept
    /// page's (someone changed them, and no event said so yet).
    pub(super) fn note(
        &mut self,
        at: Instant,
        pages: HashMap<GroupKey, RulePage>,
    ) -> BTreeSet<GroupKey> {
        let mut changed = BTreeSet::new();
        for (key, page) in pages {
            let old = self.kept.get(&key);
            if old.is_some_and(|k| k.at > at) {
                continue;
            }
            if let Some(old) = old.and_then(|k| k.page.as_ref()) {
                if old.rules != page.rules || old.vpc_id != page.vpc_id {
                    changed.insert(key.clone());
                }
            }
            let page = Some(page);
            self.kept.insert(key, Kept { at, page });
        }
        changed
    }

    /// Forgets the pages of `keys` as of `at` (a read of them failed, or an event changed them).
    pub(super) fn forget<'a>(&mut self, at: Instant, keys: impl IntoIterator<Item = &'a GroupKey>) {
        for key in keys {
            self.kept.insert(key.clone(), Kept { at, page: None });
        }
    }

    /// Forgets the pages of the kept groups whose id is among `ids` (the groups a write named).
    pub(super) fn forget_named(&mut self, at: Instant, ids: &BTreeSet<&str>) {
        for (key, k) in &mut self.kept {
            if ids.contains(&*key.id) {
                *k = Kept { at, page: None };
            }
        }
    }

    /// The pages of `targets` no older than `max_age` at `now` (the others are read by the
    /// check); with `prune`, `targets` are every checked group: every other entry is dropped.
    pub(super) fn fresh(
        &mut self,
        now: Instant,
        max_age: Duration,
        targets: &BTreeSet<GroupKey>,
        prune: bool,
    ) -> HashMap<GroupKey, RulePage> {
        if prune {
            self.kept.retain(|k, _| targets.contains(k));
        }
        self.kept
            .iter()
            .filter(|(key, k)| {
                targets.contains(*key) && now.saturating_duration_since(k.at) <= max_age
            })
            .filter_map(|(key, k)| Some((key.clone(), k.page.clone()?)))
            .collect()
    }

    /// Whether a page of `key` is kept (young or old).
    pub(super) fn has(&self, key: &GroupKey) -> bool {
        self.kept.get(key).is_some_and(|k| k.page.is_some())
    }
}

impl<F: Fleet> Runner<F> {
    /// After an interval pass: re-checks the isolation of every checked group declared `Drop` (one
    /// with a verdict, or with a kept page) from the kept pages, and folds the verdicts exactly as
    /// a full pass's (isolation lost and restored, notifications, the status page, the gauges).
    pub(super) async fn interval_check(&self, desired: &Arc<Desired>) {
        if !self.setup.pass.check_isolation {
            return;
        }
        let st = self.state.lock().await;
        let targets: BTreeSet<GroupKey> = desired
            .groups
            .values()
            .filter(|g| g.policy == Policy::Drop)
            .filter(|g| {
                st.pages.has(&g.key)
                    || st
                        .groups
                        .records
                        .get(&g.key)
                        .is_some_and(|r| r.isolation.is_some())
            })
            .map(|g| g.key.clone())
            .collect();
        self.check_kept(st, desired, targets, "interval", &BTreeMap::new())
            .await;
    }

    /// After a sweep tick whose reads found the rules of `changed` groups changed: re-checks them
    /// and every checked group whose verdict depends on them, at once (as an event would have).
    pub(super) async fn sweep_check(&self, desired: &Arc<Desired>, changed: BTreeSet<GroupKey>) {
        if changed.is_empty() || !self.setup.pass.check_isolation {
            return;
        }
        let st = self.state.lock().await;
        let ids: BTreeSet<&str> = changed.iter().map(|k| &*k.id).collect();
        let dependents = st.groups.records.iter().filter(|(_, r)| {
            r.isolation
                .as_ref()
                .is_some_and(|c| c.depends.groups.iter().any(|g| ids.contains(g.as_str())))
        });
        let targets: BTreeSet<GroupKey> = dependents
            .map(|(k, _)| k)
            .chain(&changed)
            .filter(|k| {
                desired
                    .groups
                    .get(*k)
                    .is_some_and(|g| g.policy == Policy::Drop)
            })
            .cloned()
            .collect();
        self.check_kept(st, desired, targets, "sweep", &BTreeMap::new())
            .await;
    }

    /// Checks `targets` from the kept pages no older than the interval (the others are read), and
    /// folds the verdicts, each with the write that asked for it (`causes`: the targeted lane's
    /// re-checks; none for the sweep's and the interval pass's).
    pub(super) async fn check_kept(
        &self,
        mut st: tokio::sync::MutexGuard<'_, State>,
        desired: &Arc<Desired>,
        targets: BTreeSet<GroupKey>,
        trigger: &'static str,
        causes: &BTreeMap<GroupKey, Arc<Cause>>,
    ) {
        let started = Instant::now();
        if targets.is_empty() {
            return;
        }
        let prune = trigger == "interval";
        let pages = st
            .pages
            .fresh(started, self.settings.interval, &targets, prune);
        let kept = pages.len();
        let inputs = crate::isolation::read::Inputs {
            targets,
            pages,
            policies: in_sync_policies(&st, desired),
        };
        drop(st);
        let scope = inputs.targets.len();
        let calls_before: u64 = self.fleet.calls().snapshot().values().sum();
        let accounts: BTreeSet<SharedStr> =
            inputs.targets.iter().map(|k| k.account.clone()).collect();
        let checking = async {
            let reach = self
                .fleet
                .reach_accounts(accounts.iter().map(|a| &**a).collect(), &desired.accounts)
                .await;
            crate::isolation::read::check(&reach, inputs, self.setup.pass.concurrency).await
        };
        let Some(verdicts) = self.unless_stopped(checking).await else {
            return;
        };
        let mut st = self.state.lock().await;
        let effects = super::fold::isolation(&mut st.groups, &verdicts, causes);
        for effect in &effects {
            self.carry_out(effect);
            self.tell.isolation(effect, &desired.groups);
            self.show_isolation(effect);
        }
        self.publish_groups(&st);
        drop(st);
        self.metrics.sync_api_calls(self.fleet.calls());
        let calls: u64 = self.fleet.calls().snapshot().values().sum();
        tracing::info!(
            trigger,
            scope,
            pages_kept = kept,
            not_isolated = verdicts
                .values()
                .filter(|v| v.status == crate::isolation::Status::NotIsolated)
                .count(),
            api_calls = calls.saturating_sub(calls_before),
            duration_ms = started.elapsed().as_millis() as u64,
            "isolation re-checked"
        );
    }

    /// Keeps the pages the lanes' reports carry (`PassOptions::keep_pages`), read from `at` on,
    /// and forgets those of groups whose read found nothing; returns the groups whose rules
    /// changed since their kept page ([`Pages::note`]).
    pub(super) fn keep_pages(
        &self,
        st: &mut State,
        reports: &mut [super::fold::Scoped],
        at: Instant,
    ) -> BTreeSet<GroupKey> {
        let mut changed = BTreeSet::new();
        for s in reports {
            let pages = std::mem::take(&mut s.report.pages);
            let unread = s
                .report
                .results
                .iter()
                .filter(|r| r.entry.observed.is_none())
                .map(|r| &r.entry.key);
            st.pages.forget(at, unread);
            changed.extend(st.pages.note(at, pages));
        }
        changed
    }
}

/// The policy the model takes for each governed group in sync: its declaration (what a full
/// pass's check assumes too); the others' live policy comes from their pages.
pub(super) fn in_sync_policies(st: &State, desired: &Desired) -> HashMap<GroupKey, Policy> {
    st.groups
        .records
        .iter()
        .filter(|(_, r)| r.state == super::results::GroupState::InSync)
        .filter_map(|(k, _)| Some((k.clone(), desired.groups.get(k)?.policy)))
        .collect()
}
