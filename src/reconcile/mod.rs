//! One reconcile pass: observe the cloud for every declared group, plan, write only the changes, and
//! verify each write by reading the group again. The only module that writes to the cloud, and only for
//! a change the plan produced from a read made in the same pass.

pub mod deadline;
pub mod gate;
mod isolation;
pub mod order;
pub mod selectors;
pub mod survey;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_isolation;

/// `Failure` is shared vocabulary (plan and report carry it too); reconcile's modules name it here.
pub use crate::failure::{self, Failure};

use crate::accounts::{Fleet, Reach};
use crate::ecs::api;
use crate::ecs::client::CallStats;
use crate::ecs::Cloud;
use crate::model::GroupKey;
use crate::model::GroupMeta;
use crate::model::{Bucket, Mode, Note, NoteLevel, Policy};
use crate::plan::{self, Action, Observation, Plan, PlanEntry};
use crate::policy::{Desired, DesiredGroup};
use crate::token::{self, Attempt, TokenInput};
use deadline::within;
use futures::stream::{self, StreamExt};
use gate::{Hold, Rails};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct PassOptions {
    pub dry_run: bool,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Re-reads after an acknowledged write before concluding the write did not take effect.
    pub verify_reads: u32,
    pub verify_delay: Duration,
    /// Once set (daemon shutdown), no new read or write starts; writes in flight finish and are verified.
    pub cancel: Option<Arc<AtomicBool>>,
    /// `--max-changes` and `--allow-open` (see `rails`).
    pub rails: Rails,
    /// The whole pass's deadline (`--pass-timeout`); groups unfinished by then are reported as errors.
    pub pass_timeout: Option<Duration>,
    /// Where the pass reads the time its tokens depend on.
    pub clock: Clock,
    /// `--check-isolation`: read every rule of each group (the policy read becomes the first rule
    /// page, `MaxResults=1000`) and check whether groups declared `Drop` isolate their members.
    /// Off, the pass's calls are exactly those without the check.
    pub check_isolation: bool,
    /// Groups an earlier listing found, with their flags: read without listing them again (the
    /// daemon's sweep, whose tick should cost only its policy reads). A group deleted since answers
    /// the read with `InvalidSecurityGroupId.NotFound`, planned `NotFound` like a listing's miss.
    pub known: BTreeMap<GroupKey, GroupMeta>,
    /// Read each group's first rule page (`MaxResults=1000`, the same one call as the policy read)
    /// and return those of the groups declared `Drop` in `PassReport::pages`: the daemon keeps them
    /// so its interval pass can re-check isolation without reading these groups again.
    pub keep_pages: bool,
}

/// The wall clock of a pass: the system's, or a fixed instant so tests can compute the exact tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// Unix milliseconds.
    Fixed(i64),
}

impl Clock {
    /// Unix milliseconds now.
    pub fn now_ms(self) -> i64 {
        match self {
            Clock::System => chrono::Utc::now().timestamp_millis(),
            Clock::Fixed(ms) => ms,
        }
    }
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            dry_run: false,
            concurrency: 16,
            verify_reads: 2,
            verify_delay: Duration::from_millis(300),
            cancel: None,
            rails: Rails::default(),
            pass_timeout: Some(Duration::from_secs(30 * 60)),
            clock: Clock::System,
            check_isolation: false,
            known: BTreeMap::new(),
            keep_pages: false,
        }
    }
}

/// What happened to one group in this pass, with what a report must say about it: why a write failed,
/// which rail held a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    InSync,
    /// Dry run: the change that an apply would make.
    WouldChange,
    /// Written and verified by a fresh read.
    Changed,
    /// The write (or its verification) failed, and why. Boxed: most results are not failures, and a
    /// pass holds one result per group.
    Failed(Box<Failure>),
    /// Nothing was written because the group cannot be reconciled (not found, unmanageable,
    /// unreadable: the plan entry's action says which).
    Error,
    /// `mode: observe`: the drift was planned and reported, and never written.
    Observed,
    /// A safety rail held the change back (`--max-changes`, `--allow-open`).
    Held(Hold),
}

/// An [`Outcome`] without its data: what reports print and count (`"outcome"` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeKind {
    InSync,
    WouldChange,
    Changed,
    Failed,
    Error,
    Observed,
    Held,
}

impl Outcome {
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::InSync => OutcomeKind::InSync,
            Outcome::WouldChange => OutcomeKind::WouldChange,
            Outcome::Changed => OutcomeKind::Changed,
            Outcome::Failed(_) => OutcomeKind::Failed,
            Outcome::Error => OutcomeKind::Error,
            Outcome::Observed => OutcomeKind::Observed,
            Outcome::Held(_) => OutcomeKind::Held,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GroupResult {
    pub entry: PlanEntry,
    pub outcome: Outcome,
    pub token: Option<String>,
    pub request_id: Option<String>,
    /// Who made the change this result corrects, when an ActionTrail event announced it; the
    /// daemon fills it in after the pass (a pass itself never looks at events).
    pub changed_by: Option<std::sync::Arc<crate::events::Author>>,
}

impl GroupResult {
    pub fn is_error(&self) -> bool {
        matches!(
            self.outcome.kind(),
            OutcomeKind::Failed | OutcomeKind::Error | OutcomeKind::Held
        )
    }

    /// Why the write failed, for a failed result.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(f) => Some(f),
            _ => None,
        }
    }

    /// The rail that held the change, for a held result.
    pub fn hold(&self) -> Option<&Hold> {
        match &self.outcome {
            Outcome::Held(h) => Some(h),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct PassReport {
    pub revision: String,
    pub files: usize,
    pub dry_run: bool,
    pub results: Vec<GroupResult>,
    /// The error that stopped the pass early (bad credentials, signature, permission), if any.
    pub fatal: Option<Failure>,
    pub api_calls: BTreeMap<String, u64>,
    /// Attempts repeated after transient errors, and throttled answers, during this pass.
    pub retries: u64,
    pub throttled: u64,
    pub duration: Duration,
    /// Selector warnings and conflicts, safety-rail refusals, coverage problems.
    pub notes: Vec<Note>,
    /// `--report-ungoverned`: the groups no declaration governs (`survey::add_to`).
    pub coverage: Option<survey::Coverage>,
    /// `--check-isolation`: the verdict of every group declared `Drop` whose policy was read.
    pub isolation: Option<BTreeMap<crate::model::GroupKey, crate::isolation::Verdict>>,
    /// The flags of the groups found that ECS refuses writes to (enterprise, service-managed), as
    /// the listing (or `PassOptions::known`) said: with the policies read, all the daemon needs to
    /// read these groups again without listing them.
    pub unmanageable: BTreeMap<GroupKey, GroupMeta>,
    /// `PassOptions::keep_pages`: the first rule page of every group declared `Drop` whose policy
    /// was read (the live policy, VPC and first 1,000 rules as of the read).
    pub pages: HashMap<GroupKey, api::RulePage>,
}

impl PassReport {
    pub fn count(&self, kind: OutcomeKind) -> usize {
        self.results
            .iter()
            .filter(|r| r.outcome.kind() == kind)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.fatal.is_some()
            || self.results.iter().any(GroupResult::is_error)
            || self.notes.iter().any(|n| n.level == NoteLevel::Error)
    }

    /// Drift an apply would correct; observe-only drift is reported but is not "changes to make".
    pub fn has_drift(&self) -> bool {
        self.results.iter().any(|r| r.entry.is_enforced_change())
    }
}

/// Shared by every task of one pass: the first fatal error of an account stops new requests to that
/// account. Other accounts carry on: a role missing a permission in staging must not leave production
/// uncorrected. The map of fatal errors only ever gains entries, so a task that panicked while holding
/// its lock cannot have left it half-changed: a poisoned lock is used as it is, never skipped (which
/// would forget an account's fatal error and keep sending it requests).
#[derive(Default)]
struct PassState {
    /// By account (empty: the chain's own), the first fatal error seen.
    fatal: Mutex<BTreeMap<String, Failure>>,
    cancel: Option<Arc<AtomicBool>>,
    deadline: Option<tokio::time::Instant>,
}

impl PassState {
    /// The pass's fatal error for the report: the chain's own account's if it had one, else the first
    /// named account's (by id).
    fn fatal(&self) -> Option<Failure> {
        let f = self.fatal_errors();
        f.get(OWN_ACCOUNT).or_else(|| f.values().next()).cloned()
    }

    fn fatal_for(&self, account: &str) -> Option<Failure> {
        self.fatal_errors().get(account).cloned()
    }

    fn fatal_errors(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Failure>> {
        self.fatal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Passes `result` through, remembering a fatal error for `account`; the error of a named
    /// account says which account it is, since the report shows only one.
    fn note<T, E: Into<Failure>>(&self, account: &str, result: Result<T, E>) -> Result<T, Failure> {
        let result = result.map_err(Into::into);
        if let Err(e) = &result {
            if e.is_fatal_for_account() {
                self.fatal_errors()
                    .entry(account.to_string())
                    .or_insert_with(|| e.clone().in_account(account));
            }
        }
        result
    }

    /// Refuses to start a request to `account` once it had a fatal error or the pass is past its
    /// deadline.
    fn guard(&self, account: &str, action: &'static str) -> Result<(), Failure> {
        match self.fatal_for(account) {
            Some(e) => Err(e),
            None if deadline::passed(self.deadline) => Err(Failure::DeadlineExceeded { action }),
            None => Ok(()),
        }
    }

    /// Like `guard`, and also refuses to start new work once the pass is cancelled.
    fn admit(&self, account: &str, action: &'static str) -> Result<(), Failure> {
        self.guard(account, action)?;
        match &self.cancel {
            Some(c) if c.load(Ordering::SeqCst) => Err(Failure::ShuttingDown { action }),
            _ => Ok(()),
        }
    }

    /// Sends one read to `account` if `admit` lets it start, within the pass deadline, remembering a
    /// fatal error. `call` is not polled (nothing is sent) when the read is refused.
    async fn read<T, E: Into<Failure>>(
        &self,
        account: &str,
        action: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, Failure> {
        self.admit(account, action)?;
        let read = within(self.deadline, action, call).await;
        self.note(account, read)
    }
}

/// The key of the credential chain's own account in maps by account.
const OWN_ACCOUNT: &str = "";

/// One pass over `desired` with a fleet's clients (the real [`Clients`](crate::accounts::Clients) for the one-shot run and the
/// daemon alike, a fake in the daemon's tests): every account the folder names is reached (its role
/// assumed) once, then [`run_pass_on`].
pub async fn run_pass<F: Fleet>(fleet: &F, desired: &Desired, opts: &PassOptions) -> PassReport {
    let accounts = desired
        .groups
        .keys()
        .map(|k| k.account.as_str())
        .chain(desired.selectors.iter().map(|s| s.account.as_str()));
    let reach = fleet
        .reach_accounts(accounts.collect(), &desired.accounts)
        .await;
    run_pass_on(&reach, desired, opts).await
}

/// One pass over `desired` through the given clients (any [`Cloud`]). Its call counts are its own:
/// every call goes through a handle counting into this pass's tally, so another pass running on the
/// same clients at the same time (the daemon's other lane) never shows up in them.
pub async fn run_pass_on<C: Cloud>(
    clients: &Reach<C>,
    desired: &Desired,
    opts: &PassOptions,
) -> PassReport {
    let started = Instant::now();
    let stats = Arc::new(CallStats::default());
    let reach = &clients.counting_into(&stats);
    let state = Arc::new(PassState {
        cancel: opts.cancel.clone(),
        deadline: opts.pass_timeout.map(|t| tokio::time::Instant::now() + t),
        ..PassState::default()
    });
    let observed_at = opts.clock.now_ms().div_euclid(1000);
    let resolved;
    let desired = if desired.selectors.is_empty() {
        desired
    } else {
        let (d, fatal) = selectors::resolve(reach, desired, opts.concurrency).await;
        if let Some((account, e)) = fatal {
            let _ = state.note::<(), Failure>(&account, Err(e));
        }
        resolved = d;
        &resolved
    };
    let (mut results, pages, unmanageable) = observe(reach, desired, opts, &state).await;
    // Every group but the drifted ones is final; those are gated and written from a plan of just
    // them (the rails only count enforced changes), and their results take their places.
    let plan = drifted_plan(desired, &results);
    let gate = gate::gate(&plan, &opts.rails);
    apply(reach, &plan, &gate, observed_at, opts, &state, &mut results).await;
    let kept = match opts.keep_pages {
        true => drop_pages(desired, &pages),
        false => HashMap::new(),
    };
    let isolation = match opts.check_isolation {
        true => {
            let check = isolation::check(reach, &results, pages, opts.concurrency, state.deadline);
            Some(check.await)
        }
        false => None,
    };
    let api_calls = calls_by_action(&stats);
    let mut notes = desired.notes.clone();
    notes.extend(gate.notes(opts.dry_run, &opts.rails));
    PassReport {
        revision: desired.revision.clone(),
        files: desired.files,
        dry_run: opts.dry_run,
        results,
        fatal: state.fatal(),
        api_calls,
        retries: stats.retries(),
        throttled: stats.throttled(),
        duration: started.elapsed(),
        notes,
        coverage: None,
        isolation,
        unmanageable,
        pages: kept,
    }
}

/// The pages of the groups declared `Drop` (`PassOptions::keep_pages`).
fn drop_pages(
    desired: &Desired,
    pages: &HashMap<GroupKey, api::RulePage>,
) -> HashMap<GroupKey, api::RulePage> {
    pages
        .iter()
        .filter(|(k, _)| {
            desired
                .groups
                .get(*k)
                .is_some_and(|g| g.policy == Policy::Drop)
        })
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect()
}

/// The plan of just the drifted groups of `results`.
fn drifted_plan(desired: &Desired, results: &[GroupResult]) -> Plan {
    Plan {
        revision: desired.revision.clone(),
        entries: results
            .iter()
            .filter(|r| matches!(r.entry.action, Action::Change { .. }))
            .map(|r| r.entry.clone())
            .collect(),
    }
}

/// Calls by action, whatever their outcome; actions with none left out.
fn calls_by_action(stats: &CallStats) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for ((action, _outcome), n) in stats.snapshot() {
        *out.entry(action).or_insert(0) += n;
    }
    out.retain(|_, n| *n > 0);
    out
}

/// Reads type and managed flags (100 ids a call), then the policy of every group that exists, and
/// plans each group as its answer arrives ([`plan::entry`]). Returns one result per declared group, in
/// key order; drifted groups are provisional until `apply`. Each answer goes straight into its group's
/// result: a pass holds no map of observations and no second copy of the plan, so memory stays at the
/// desired state plus one result per group (docs/scale.md, "Memory and CPU").
/// With `check_isolation`, the policy read is the first rule page, kept (by group) for the check.
/// Also returns the flags of the unmanageable groups (`PassReport::unmanageable`).
async fn observe<C: Cloud>(
    reach: &Reach<C>,
    desired: &Desired,
    opts: &PassOptions,
    state: &PassState,
) -> (
    Vec<GroupResult>,
    HashMap<GroupKey, api::RulePage>,
    BTreeMap<GroupKey, GroupMeta>,
) {
    let groups: Vec<&DesiredGroup> = desired.groups.values().collect();
    let mut results = Results::new(&groups);
    let (to_read, metas) = describe_groups(reach, opts, state, &mut results).await;
    let pages = read_policies(reach, to_read, &metas, opts, state, &mut results).await;
    let unmanageable = metas
        .into_iter()
        .filter(|(_, meta)| meta.unmanageable_reason().is_some())
        .map(|(i, meta)| (groups[i].key.clone(), meta))
        .collect();
    (results.finish(), pages, unmanageable)
}

/// The results of [`observe`], one per declared group in key order, each planned as its group's
/// answer arrives.
struct Results<'a> {
    groups: &'a [&'a DesiredGroup],
    results: Vec<GroupResult>,
    /// Whether an answer (or a failure) arrived for the group; the others were never read.
    observed: Vec<bool>,
}

impl<'a> Results<'a> {
    fn new(groups: &'a [&'a DesiredGroup]) -> Self {
        Results {
            groups,
            results: groups
                .iter()
                .map(|d| planned(d, Some(&Observation::NotFound)))
                .collect(),
            observed: vec![false; groups.len()],
        }
    }

    fn record(&mut self, i: usize, observation: &Observation) {
        self.results[i] = planned(self.groups[i], Some(observation));
        self.observed[i] = true;
    }

    /// The results, a group that was never read planned as not observed.
    fn finish(mut self) -> Vec<GroupResult> {
        for (i, seen) in self.observed.iter().enumerate() {
            if !seen {
                self.results[i] = planned(self.groups[i], None);
            }
        }
        self.results
    }
}

/// The plan of one group and its provisional outcome: `apply` replaces the result of every change.
fn planned(d: &DesiredGroup, observation: Option<&Observation>) -> GroupResult {
    let entry = plan::entry(d, observation);
    let outcome = match entry.action {
        Action::InSync => Outcome::InSync,
        Action::Change { .. } => Outcome::WouldChange,
        _ => Outcome::Error,
    };
    result_of(entry, outcome)
}

/// The DescribeSecurityGroups batches of `groups` (indices) but those `known`, at most 100 ids
/// each and never mixing accounts, whose credentials differ; in the order work starts ([`order`]).
fn listing_batches(
    groups: &[&DesiredGroup],
    known: &BTreeMap<GroupKey, GroupMeta>,
) -> Vec<(Bucket, Vec<usize>)> {
    let mut by_bucket: BTreeMap<Bucket, Vec<usize>> = BTreeMap::new();
    for (i, d) in groups.iter().enumerate() {
        if !known.contains_key(&d.key) {
            by_bucket.entry(d.key.bucket()).or_default().push(i);
        }
    }
    let batches: Vec<(Bucket, Vec<usize>)> = by_bucket
        .into_iter()
        .flat_map(|(bucket, members)| {
            members
                .chunks(crate::ecs::api::MAX_IDS_PER_DESCRIBE)
                .map(|c| (bucket.clone(), c.to_vec()))
                .collect::<Vec<_>>()
        })
        .collect();
    order::interleave_by_bucket(batches, |b| (&b.0.account, &b.0.region))
}

/// Type and managed flags, 100 ids a call: records every group that does not exist or whose batch
/// failed, and returns the groups whose policy must be read, with the flags of the unmanageable ones
/// and the names of the named ones (only what the plan needs of a group's flags: why ECS would refuse
/// a write, when it would; and the name the daemon's status page shows).
/// A group `PassOptions::known` names is not listed: its flags are those given.
async fn describe_groups<'a, C: Cloud>(
    reach: &Reach<C>,
    opts: &PassOptions,
    state: &PassState,
    results: &mut Results<'a>,
) -> (Vec<(usize, &'a GroupKey)>, BTreeMap<usize, GroupMeta>) {
    let groups = results.groups;
    let mut to_read = Vec::with_capacity(groups.len());
    let mut kept: BTreeMap<usize, GroupMeta> = BTreeMap::new();
    for (i, d) in groups.iter().enumerate() {
        if let Some(meta) = opts.known.get(&d.key) {
            if meta.unmanageable_reason().is_some() || meta.name.is_some() {
                kept.insert(i, meta.clone());
            }
            to_read.push((i, &d.key));
        }
    }
    let mut metas = stream::iter(listing_batches(groups, &opts.known))
        .map(|(bucket, members)| async move {
            let ids: Vec<String> = members
                .iter()
                .map(|&i| groups[i].key.id.to_string())
                .collect();
            let r = match reach.client(&bucket.account) {
                Ok(client) => {
                    let listing = client.describe_groups(&bucket.region, &ids);
                    state
                        .read(&bucket.account, api::DESCRIBE_GROUPS, listing)
                        .await
                }
                Err(e) => Err(e.into()),
            };
            (members, r)
        })
        .buffer_unordered(opts.concurrency.max(1));
    while let Some((members, result)) = metas.next().await {
        for i in members {
            let observation = match &result {
                Ok(found) => match found.get(&*groups[i].key.id) {
                    Some(meta) => {
                        if meta.unmanageable_reason().is_some() || meta.name.is_some() {
                            kept.insert(i, meta.clone());
                        }
                        to_read.push((i, &groups[i].key));
                        continue;
                    }
                    None => Observation::NotFound,
                },
                Err(e) => Observation::Failed(e.clone()),
            };
            results.record(i, &observation);
        }
    }
    (to_read, kept)
}

/// The policy of every group that exists, one DescribeSecurityGroupAttribute each, recorded as it
/// arrives. With `check_isolation` (or `keep_pages`) the read is the group's first rule page,
/// returned by group so the check never reads it twice.
async fn read_policies<C: Cloud>(
    reach: &Reach<C>,
    to_read: Vec<(usize, &GroupKey)>,
    metas: &BTreeMap<usize, GroupMeta>,
    opts: &PassOptions,
    state: &PassState,
    results: &mut Results<'_>,
) -> HashMap<GroupKey, api::RulePage> {
    let to_read = order::interleave_by_bucket(to_read, |(_, k)| (&k.account, &k.region));
    let mut reads = stream::iter(to_read)
        .map(|(i, key)| async move {
            let r = match reach.client(&key.account) {
                Ok(client) if opts.check_isolation || opts.keep_pages => {
                    let rules = client.describe_rules(key, None);
                    let page = state.read(&key.account, api::DESCRIBE_ATTRIBUTE, rules);
                    page.await.and_then(policy_of)
                }
                Ok(client) => {
                    let attribute = client.describe_attribute(key);
                    state
                        .read(&key.account, api::DESCRIBE_ATTRIBUTE, attribute)
                        .await
                        .map(|policy| (policy, None))
                }
                Err(e) => Err(e.into()),
            };
            (i, r)
        })
        .buffer_unordered(opts.concurrency.max(1));
    let mut pages = HashMap::new();
    while let Some((i, r)) = reads.next().await {
        let observation = match r {
            Ok((policy, page)) => {
                if let Some(page) = page {
                    pages.insert(results.groups[i].key.clone(), page);
                }
                Observation::Found {
                    policy,
                    meta: metas.get(&i).cloned().unwrap_or_default(),
                }
            }
            Err(Failure::Ecs(e)) if e.is_not_found() => Observation::NotFound,
            Err(e) => Observation::Failed(e),
        };
        results.record(i, &observation);
    }
    pages
}

/// The policy of a first rule page, which must have one (as `describe_attribute` insists).
fn policy_of(page: api::RulePage) -> Result<(Policy, Option<api::RulePage>), Failure> {
    match page.policy {
        Some(policy) => Ok((policy, Some(page))),
        None => Err(Failure::Ecs(
            crate::ecs::ApiError::transport(
                api::DESCRIBE_ATTRIBUTE,
                "MalformedResponse",
                "InnerAccessPolicy is missing or neither Accept nor Drop",
            )
            .into(),
        )),
    }
}

/// Gates and writes `plan`'s changes. Each change's result replaces its group's provisional one in
/// `results` (one per declared group, sorted by key) as soon as it is known.
async fn apply<C: Cloud>(
    reach: &Reach<C>,
    plan: &Plan,
    gate: &gate::Gate,
    observed_at: i64,
    opts: &PassOptions,
    state: &PassState,
    results: &mut [GroupResult],
) {
    let entries = order::interleave_by_bucket(plan.entries.iter().collect(), |e| {
        (&e.key.account, &e.key.region)
    });
    let change = Change {
        reach,
        plan,
        gate,
        observed_at,
        opts,
        state,
    };
    let change = &change;
    let mut done = stream::iter(entries)
        .map(|entry| change.settle(entry))
        .buffer_unordered(opts.concurrency.max(1));
    while let Some(r) = done.next().await {
        let slot = results.binary_search_by(|x| x.entry.key.cmp(&r.entry.key));
        debug_assert!(slot.is_ok(), "every change is planned from a result");
        if let Ok(i) = slot {
            results[i] = r;
        }
    }
}

/// What settling one planned change needs: the pass's clients, its plan and rails, and when the
/// plan's reads were made (the token's window).
struct Change<'a, C> {
    reach: &'a Reach<C>,
    plan: &'a Plan,
    gate: &'a gate::Gate,
    observed_at: i64,
    opts: &'a PassOptions,
    state: &'a PassState,
}

impl<C: Cloud> Change<'_, C> {
    /// The result of one entry: in sync, observed, held by a rail, a dry run's would-change with its
    /// token, or written and verified.
    async fn settle(&self, entry: &PlanEntry) -> GroupResult {
        match (&entry.action, self.opts.dry_run, self.gate.hold(entry)) {
            (Action::InSync, _, _) => simple(entry, Outcome::InSync),
            (Action::Change { .. }, _, _) if entry.mode == Mode::Observe => {
                simple(entry, Outcome::Observed)
            }
            (Action::Change { .. }, false, Some(hold)) => {
                simple(entry, Outcome::Held(hold.clone()))
            }
            (Action::Change { from, to }, true, _) => {
                let mut r = simple(entry, Outcome::WouldChange);
                r.token = Some(token_for(
                    self.plan,
                    entry,
                    *from,
                    *to,
                    self.observed_at,
                    Attempt::First,
                ));
                r
            }
            (Action::Change { from, to }, false, None) => {
                match self.reach.client(&entry.key.account) {
                    Ok(client) => {
                        write_and_verify(
                            client,
                            self.plan,
                            entry,
                            *from,
                            *to,
                            self.observed_at,
                            self.opts,
                            self.state,
                        )
                        .await
                    }
                    Err(e) => simple(entry, Outcome::Failed(Box::new(e.into()))),
                }
            }
            _ => simple(entry, Outcome::Error),
        }
    }
}

fn simple(entry: &PlanEntry, outcome: Outcome) -> GroupResult {
    result_of(entry.clone(), outcome)
}

fn result_of(entry: PlanEntry, outcome: Outcome) -> GroupResult {
    GroupResult {
        entry,
        outcome,
        token: None,
        request_id: None,
        changed_by: None,
    }
}

fn token_for(
    plan: &Plan,
    entry: &PlanEntry,
    from: Policy,
    to: Policy,
    at: i64,
    attempt: Attempt,
) -> String {
    token::client_token(&TokenInput {
        key: &entry.key,
        from,
        to,
        revision: &plan.revision,
        observed_at: at,
        attempt,
    })
}

/// Sends one ModifySecurityGroupPolicy if the pass still admits requests to the group's account,
/// within the pass deadline, remembering a fatal error; its RequestId.
async fn write<C: Cloud>(
    client: &C,
    entry: &PlanEntry,
    to: Policy,
    token: &str,
    state: &PassState,
) -> Result<String, Failure> {
    let account = entry.key.account.as_str();
    state.admit(account, api::MODIFY_POLICY)?;
    tracing::debug!(group = %entry.key, token = %token, "sending ModifySecurityGroupPolicy");
    let write = client.modify_policy(&entry.key, to, token);
    let sent = state.note(
        account,
        within(state.deadline, api::MODIFY_POLICY, write).await,
    );
    if let Err(e) = &sent {
        tracing::warn!(group = %entry.key, code = %e.code(), "write failed: {e}");
    }
    sent
}

/// Writes with the shared token and verifies; only when ECS acknowledged the write but the group still
/// differs (the token was a replay of an earlier correction) writes once more with a new token (see
/// `token`), so a correction costs at most `token::MAX_WRITES_PER_CORRECTION` writes.
#[allow(clippy::too_many_arguments)]
async fn write_and_verify<C: Cloud>(
    client: &C,
    plan: &Plan,
    entry: &PlanEntry,
    from: Policy,
    to: Policy,
    observed_at: i64,
    opts: &PassOptions,
    state: &PassState,
) -> GroupResult {
    let mut result = simple(entry, Outcome::WouldChange);
    let failed = |mut result: GroupResult, e: Failure| {
        result.outcome = Outcome::Failed(Box::new(e));
        result
    };
    let mut attempt = Attempt::First;
    loop {
        let token = token_for(plan, entry, from, to, observed_at, attempt);
        result.token = Some(token.clone());
        match write(client, entry, to, &token, state).await {
            Ok(request_id) => result.request_id = Some(request_id),
            Err(e) => return failed(result, e),
        }
        match verify(client, entry, to, opts, state).await {
            Ok(true) => {
                tracing::debug!(
                    group = %entry.key, from = %from, to = %to, revision = %plan.revision,
                    source = %entry.source, token = %token,
                    request_id = result.request_id.as_deref().unwrap_or(""),
                    "changed InnerAccessPolicy"
                );
                result.outcome = Outcome::Changed;
                return result;
            }
            Ok(false) if attempt == Attempt::First => {
                tracing::warn!(group = %entry.key, token = %token, "write acknowledged but the group still differs (the token replayed an earlier correction); writing once more with a new token");
                attempt = Attempt::AfterReplay {
                    detected_at_ms: opts.clock.now_ms(),
                };
            }
            Ok(false) => break,
            Err(e) => return failed(result, e),
        }
    }
    let not_effective = Failure::WriteNotEffective {
        writes: token::MAX_WRITES_PER_CORRECTION,
        to,
    };
    failed(result, not_effective)
}

/// Re-reads the group until it shows `to`, allowing for a short propagation delay.
async fn verify<C: Cloud>(
    client: &C,
    entry: &PlanEntry,
    to: Policy,
    opts: &PassOptions,
    state: &PassState,
) -> Result<bool, Failure> {
    for attempt in 0..opts.verify_reads.max(1) {
        if attempt > 0 {
            tokio::time::sleep(opts.verify_delay).await;
        }
        state.guard(&entry.key.account, api::DESCRIBE_ATTRIBUTE)?;
        let read = client.describe_attribute(&entry.key);
        let read = within(state.deadline, api::DESCRIBE_ATTRIBUTE, read).await;
        if state.note(&entry.key.account, read)? == to {
            return Ok(true);
        }
    }
    Ok(false)
}
