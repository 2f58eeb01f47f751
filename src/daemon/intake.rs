//! What the daemon does with an ActionTrail event: find the governed group it names, drop what needs
//! no read (groups nobody governs, sgpolicy's own writes, events a later read already covered), and
//! queue the rest for a targeted pass.
//!
//! The queue keeps one entry per group, the latest author winning: ten events for one group before
//! the targeted pass starts cost one read. Nothing here reads or writes the cloud; the targeted pass
//! (`pass::targeted`) does, exactly like any other pass.
//!
//! **Under pressure** (someone holding the events token floods the receiver, or a busy account), the
//! order decides what a real drift waits for:
//! 1. An event older than the group's last successful read (by more than [`CLOCK_SKEW`]) costs
//!    nothing (`ignored_stale`): that read already saw its effect, or a later one.
//! 2. An event announcing a value other than the declared one is *urgent*: it announces drift. Urgent
//!    groups are taken before routine ones (an event that sent the declared value, or none), each
//!    class in arrival order, and a targeted pass takes at most [`TARGETED_BATCH`] groups, so an
//!    urgent event waits for at most the batch in progress and its own.
//! 3. Routine groups queue up to [`ROUTINE_CAP`]; beyond that a routine event is refused (`busy`):
//!    the receiver answers 503 with `Retry-After`, and the resync remains the backstop. Urgent groups
//!    are always queued (at most one entry per governed group).
//!
//! **Attribution** records how each event was heard (push or pull). A pushed identity is only the
//! token holder's word: when the poller later returns the same `eventId` naming someone else,
//! ActionTrail's pull wins (the queued author is replaced) and a warning says the push disagreed.

use crate::daemon::reach::{self, Cause};
use crate::events::dedup::RecentIds;
use crate::events::{Author, Heard, Status, Via};
use crate::model::{Account, GroupKey, Policy, SharedStr};
use crate::policy::Desired;
use crate::shard::Shard;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// What became of one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Queued: the group will be read by a targeted pass soon.
    Targeted(GroupKey),
    /// No entry or selector governs the group: no read.
    Ungoverned,
    /// sgpolicy's own write, setting the declared value: no read.
    OwnWrite(GroupKey),
    /// An event already queued through the other source (a push, then the poll that finds the same
    /// `eventId`): its read is done or coming.
    Duplicate,
    /// A group in a bucket another shard owns (a push arrives at any replica): its owner's poller
    /// and resync cover it, and only the owner spends that bucket's quota.
    OtherShard,
    /// Older than the group's last successful read: that read covered it.
    Stale,
    /// A routine event while [`ROUTINE_CAP`] routine groups are queued: refused, to be sent again
    /// (a push is answered 503 with `Retry-After`).
    Busy,
    /// A write that may change who can reach whom: these declared `Drop` groups are re-checked.
    Recheck(usize),
    /// A write that changes no checked group's verdict (an unrelated group or interface): no read.
    Unrelated,
}

impl Admission {
    /// The `result` label of `sgpolicy_events_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Admission::Targeted(_) => "targeted",
            Admission::Ungoverned => "ignored_ungoverned",
            Admission::OwnWrite(_) => "ignored_own_write",
            Admission::OtherShard => "ignored_other_shard",
            Admission::Duplicate => "duplicate",
            Admission::Stale => "ignored_stale",
            Admission::Busy => "refused_busy",
            Admission::Recheck(_) => "recheck_isolation",
            Admission::Unrelated => "ignored_unrelated",
        }
    }
}

/// Event ids remembered across sources: more than a day of events at a busy account's pace.
const QUEUED_IDS: usize = 50_000;
/// Pushed authors remembered to compare with ActionTrail's pull of the same `eventId` (which comes
/// minutes later): hours of pushes at a busy account's pace, a few megabytes at most.
const PUSHED_AUTHORS: usize = 10_000;
/// Groups a targeted pass takes at most: about 1.6 s of reads at the default 20 requests a second,
/// the longest an urgent event waits behind a batch already started.
pub const TARGETED_BATCH: usize = 32;
/// Routine groups queued at most (about 50 s of reads at the default budget) before routine events
/// are refused.
pub const ROUTINE_CAP: usize = 1024;
/// How much older than a read an event must be to count as covered by it: clocks of ActionTrail and
/// this host may disagree a little.
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// Governed groups by (region, id), the way an event names them.
type Index = HashMap<(SharedStr, SharedStr), Vec<(GroupKey, Policy)>>;

/// One queued group.
struct Queued {
    author: Arc<Author>,
    /// An event announced a value other than the declared one.
    urgent: bool,
    /// Arrival order of the group's first event since it was last taken.
    seq: u64,
}

/// The groups waiting for a targeted pass.
#[derive(Default)]
struct Queue {
    groups: HashMap<GroupKey, Queued>,
    routine: usize,
    next: u64,
}

impl Queue {
    /// Queues `key` (or updates its entry); `false` when a new routine group finds no room.
    fn offer(&mut self, key: &GroupKey, author: Arc<Author>, urgent: bool) -> bool {
        if let Some(q) = self.groups.get_mut(key) {
            if urgent && !q.urgent {
                q.urgent = true;
                self.routine -= 1;
            }
            q.author = author;
            return true;
        }
        if !urgent && self.routine >= ROUTINE_CAP {
            return false;
        }
        self.routine += usize::from(!urgent);
        self.next += 1;
        let seq = self.next;
        self.groups.insert(
            key.clone(),
            Queued {
                author,
                urgent,
                seq,
            },
        );
        true
    }

    /// Takes up to `max` groups: urgent ones first, each class in arrival order.
    fn take(&mut self, max: usize) -> BTreeMap<GroupKey, Arc<Author>> {
        let mut order: Vec<(bool, u64, GroupKey)> = self
            .groups
            .iter()
            .map(|(k, q)| (!q.urgent, q.seq, k.clone()))
            .collect();
        order.sort_unstable();
        order
            .into_iter()
            .take(max)
            .filter_map(|(_, _, k)| {
                let q = self.groups.remove(&k)?;
                self.routine -= usize::from(!q.urgent);
                Some((k, q.author))
            })
            .collect()
    }
}

/// Pushed authors by `eventId`, oldest forgotten first.
#[derive(Default)]
struct Pushed {
    order: VecDeque<String>,
    by_id: HashMap<String, Arc<Author>>,
}

impl Pushed {
    fn remember(&mut self, author: Arc<Author>) {
        if self.by_id.len() >= PUSHED_AUTHORS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
        self.order.push_back(author.event_id.clone());
        self.by_id.insert(author.event_id.clone(), author);
    }
}

pub struct Intake {
    governed: RwLock<Arc<Index>>,
    /// Event ids already queued, whichever source brought them (bounded, oldest forgotten first).
    queued_ids: Mutex<RecentIds>,
    /// The account ids the folder names (a push names its account by id; any other is the chain's
    /// own, keyed `""`), to tell which shard owns an ungoverned group's bucket.
    named: RwLock<Arc<BTreeSet<String>>>,
    shard: Shard,
    pending: Mutex<Queue>,
    /// When each governed group's last successful read started (wall clock, to compare with event
    /// times).
    reads: Mutex<HashMap<GroupKey, SystemTime>>,
    pushed: Mutex<Pushed>,
    /// What the checked groups' verdicts depend on (replaced after every check).
    reach: reach::Shared,
    /// Declared `Drop` groups to re-check, with the latest write that asked for it.
    checks: Mutex<BTreeMap<GroupKey, Arc<Cause>>>,
    wake: Notify,
    pub status: Arc<Status>,
}

impl Intake {
    pub fn new(status: Arc<Status>, shard: Shard) -> Intake {
        Intake {
            governed: RwLock::new(Arc::new(Index::new())),
            queued_ids: Mutex::new(RecentIds::new(QUEUED_IDS)),
            named: RwLock::new(Arc::new(BTreeSet::new())),
            shard,
            pending: Mutex::new(Queue::default()),
            reads: Mutex::new(HashMap::new()),
            pushed: Mutex::new(Pushed::default()),
            reach: Default::default(),
            checks: Mutex::new(BTreeMap::new()),
            wake: Notify::new(),
            status,
        }
    }

    /// The groups the last pass resolved (entries and selectors): what events are matched against.
    pub fn govern(&self, desired: &Desired) {
        let mut index = Index::new();
        for g in desired.groups.values() {
            index
                .entry((g.key.region.clone(), g.key.id.clone()))
                .or_default()
                .push((g.key.clone(), g.policy));
        }
        *self.governed.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        *self.named.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(desired.accounts.keys().cloned().collect());
        lock(&self.reads).retain(|k, _| desired.groups.contains_key(k));
    }

    /// After a pass that started at `at` (wall clock): the groups its own reports show read
    /// successfully were read no earlier than that, which makes older events of theirs free. Only
    /// the pass's own reports count: a read the other lane folded meanwhile may be older than `at`.
    pub fn note_reads<'a>(
        &self,
        reports: impl IntoIterator<Item = &'a crate::reconcile::PassReport>,
        at: SystemTime,
    ) {
        let mut reads = lock(&self.reads);
        let read = reports
            .into_iter()
            .flat_map(|rep| &rep.results)
            .filter(|r| r.entry.observed.is_some());
        for r in read {
            let noted = reads.entry(r.entry.key.clone()).or_insert(at);
            *noted = (*noted).max(at);
        }
    }

    /// Whether the event happened before `key`'s last successful read started (by more than
    /// [`CLOCK_SKEW`]). An event without a readable time is never stale.
    fn covered_by_a_read(&self, key: &GroupKey, author: &Author) -> bool {
        let Some(read) = lock(&self.reads).get(key).copied() else {
            return false;
        };
        let Some(happened) = author
            .event_time
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            return false;
        };
        let happened = SystemTime::from(happened);
        happened.checked_add(CLOCK_SKEW).is_some_and(|h| h < read)
    }

    /// Whether this shard owns the bucket an event names (its account as the folder keys it).
    fn owns_bucket_of(&self, heard: &Heard) -> bool {
        let account = match (&heard.via, &heard.account) {
            (Via::Pull, Some(account)) => account.clone(),
            _ => {
                let named = self.named.read().unwrap_or_else(|e| e.into_inner());
                heard
                    .change
                    .account_id
                    .clone()
                    .filter(|id| named.contains(id))
                    .unwrap_or_default()
            }
        };
        self.shard.owns_parts(&account, &heard.change.region)
    }

    /// What the checked groups' latest verdicts depend on: what reach events are matched against.
    pub fn depend(&self, index: reach::Index) {
        *self.reach.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
    }

    /// Queues the isolation re-check of the groups a write may affect.
    fn hear_reach(&self, change: &crate::events::Change) -> Admission {
        let index = self.reach.read().unwrap_or_else(|e| e.into_inner()).clone();
        let affected = index.affected(change);
        if affected.is_empty() {
            return Admission::Unrelated;
        }
        let first = self
            .queued_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_time(&change.author.event_id);
        if !first {
            return Admission::Duplicate;
        }
        let cause = Arc::new(Cause::of(change));
        let n = affected.len();
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        for key in affected {
            checks.insert(key, cause.clone());
        }
        drop(checks);
        self.wake.notify_one();
        Admission::Recheck(n)
    }

    /// Takes every group queued for an isolation re-check, with the write that asked for it.
    pub fn take_checks(&self) -> BTreeMap<GroupKey, Arc<Cause>> {
        std::mem::take(&mut *self.checks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Classifies one event and queues its group when it needs a read (a policy change of a
    /// governed group) or its dependants for an isolation re-check (any write in
    /// [`crate::events::record::REACH_EVENTS`], the policy of an ungoverned group included).
    pub fn hear(&self, heard: Heard) -> Admission {
        if !heard.change.is_policy_change() {
            let admission = self.hear_reach(&heard.change);
            self.status.record(heard.via, admission.label());
            return admission;
        }
        let change = &heard.change;
        let index = self
            .governed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let region: SharedStr = change.region.as_str().into();
        // A policy change always names its group (`parse_record` refuses one that does not).
        let id: SharedStr = change.group_id.as_deref().unwrap_or_default().into();
        let candidates = index.get(&(region, id)).map(Vec::as_slice).unwrap_or(&[]);
        let found = match (&heard.via, &heard.account) {
            // The poller asked one account: the group is that account's.
            (Via::Pull, Some(account)) => candidates.iter().find(|(k, _)| &*k.account == account),
            // A push names the account by id; ids are unique across accounts, so one candidate is
            // it, and several (a simulator reusing ids) are told apart by the account id.
            _ => match candidates {
                [one] => Some(one),
                many => many
                    .iter()
                    .find(|(k, _)| Some(&*k.account) == change.account_id.as_deref())
                    .or_else(|| many.iter().find(|(k, _)| k.owner() == Account::Own)),
            },
        };
        let admission = match found {
            None if !self.owns_bucket_of(&heard) => Admission::OtherShard,
            // The policy of a group the folder does not govern may still open a path between
            // members of a declared group that share it.
            None => match self.hear_reach(change) {
                Admission::Unrelated => Admission::Ungoverned,
                recheck => recheck,
            },
            Some((key, desired)) if change.is_own_write_of(*desired) => {
                Admission::OwnWrite(key.clone())
            }
            Some((key, desired)) => self.queue(key, *desired, &heard),
        };
        self.status.record(heard.via, admission.label());
        admission
    }

    /// The order of the module doc: duplicates (with the attribution check), stale events, then the
    /// queue by urgency.
    fn queue(&self, key: &GroupKey, desired: Policy, heard: &Heard) -> Admission {
        let mut author = heard.change.author.clone();
        author.via = Some(heard.via);
        let author = Arc::new(author);
        if !lock(&self.queued_ids).first_time(&author.event_id) {
            if heard.via == Via::Pull {
                self.check_pushed_identity(key, &author);
            }
            return Admission::Duplicate;
        }
        if self.covered_by_a_read(key, &author) {
            return Admission::Stale;
        }
        let urgent = author.set_to.is_some_and(|sent| sent != desired);
        if !lock(&self.pending).offer(key, author.clone(), urgent) {
            // Not handled: the same event sent again later must not count as a duplicate.
            lock(&self.queued_ids).forget(&author.event_id);
            return Admission::Busy;
        }
        if heard.via == Via::Push {
            lock(&self.pushed).remember(author);
        }
        self.wake.notify_one();
        Admission::Targeted(key.clone())
    }

    /// ActionTrail returned an event already pushed: when the push named someone else, the pull
    /// wins (the queued author is replaced) and a warning says so.
    fn check_pushed_identity(&self, key: &GroupKey, pulled: &Arc<Author>) {
        let Some(pushed) = lock(&self.pushed).by_id.get(&pulled.event_id).cloned() else {
            return;
        };
        if pushed.same_identity(pulled) {
            return;
        }
        tracing::warn!(
            group = %key, event_id = ?pulled.event_id,
            "event {:?}: the push named {:?} but ActionTrail's LookupEvents names {:?}; attributing it to \
             ActionTrail's (someone holding the events token sent a different identity)",
            pulled.event_id,
            pushed.to_string(),
            pulled.to_string()
        );
        lock(&self.pushed).remember(pulled.clone());
        if let Some(q) = lock(&self.pending).groups.get_mut(key) {
            if q.author.event_id == pulled.event_id {
                q.author = pulled.clone();
            }
        }
    }

    /// Takes every queued group with its latest author (tests; the targeted lane takes batches).
    pub fn take(&self) -> BTreeMap<GroupKey, Arc<Author>> {
        self.take_batch(usize::MAX)
    }

    /// Takes up to `max` queued groups, urgent ones first, with their latest authors.
    pub fn take_batch(&self, max: usize) -> BTreeMap<GroupKey, Arc<Author>> {
        lock(&self.pending).take(max)
    }

    /// Whether any group is queued.
    pub fn has_queued(&self) -> bool {
        !lock(&self.pending).groups.is_empty() || !lock(&self.checks).is_empty()
    }

    /// The queued author of `key`, left queued (a resync that corrects a group names who changed
    /// it, and the targeted pass still reads it).
    pub fn author_of(&self, key: &GroupKey) -> Option<Arc<Author>> {
        lock(&self.pending)
            .groups
            .get(key)
            .map(|q| q.author.clone())
    }

    /// Waits until an event was queued (returns at once for one queued since the last wait).
    pub async fn queued(&self) {
        self.wake.notified().await
    }

    /// Wakes the targeted lane whatever is queued (shutdown: it sees the cancel flag and returns).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Wakes the targeted lane (after the first pass, for events heard before it).
    pub fn nudge(&self) {
        if self.has_queued() {
            self.wake.notify_one();
        }
    }
}

/// The push receiver hands events straight to the intake, so a refusal (`Busy`) becomes its 503.
impl crate::events::receiver::Sink for Intake {
    fn offer(&self, heard: Heard) -> bool {
        let (id, via) = (heard.change.author.event_id.clone(), heard.via);
        let admission = self.hear(heard);
        tracing::debug!(event_id = ?id, via = via.label(), result = admission.label(), "event");
        admission != Admission::Busy
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::parse_record;
    use crate::events::Via;
    use crate::model::{Location, Mode};
    use crate::policy::DesiredGroup;
    use serde_json::json;

    const PROD: &str = "2222222222222222";

    fn governing(groups: &[(&str, &str, Policy)]) -> Intake {
        governing_as(Shard::SOLE, groups)
    }

    fn governing_as(shard: Shard, groups: &[(&str, &str, Policy)]) -> Intake {
        let intake = Intake::new(Arc::new(Status::new()), shard);
        let mut desired = Desired::default();
        for (account, id, policy) in groups {
            let key = GroupKey::in_account(*account, "cn-hangzhou", *id);
            desired.groups.insert(
                key.clone(),
                DesiredGroup {
                    key,
                    policy: *policy,
                    source: Location {
                        path: std::path::Path::new("p.yaml").into(),
                        line: 1,
                        column: 1,
                    },
                    mode: Mode::Enforce,
                },
            );
        }
        intake.govern(&desired);
        intake
    }

    fn heard(id: &str, sent: &str, token: Option<&str>, via: Via, account: Option<&str>) -> Heard {
        let mut params = json!({"SecurityGroupId": id, "InnerAccessPolicy": sent});
        if let Some(t) = token {
            params["ClientToken"] = json!(t);
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let record = json!({"eventId": format!("e-{id}-{sent}-{n}"), "eventName": "ModifySecurityGroupPolicy",
            "acsRegion": "cn-hangzhou", "eventType": "ConsoleOperation", "requestParameters": params,
            "userIdentity": {"type": "ram-user", "userName": "alice", "accountId": account.unwrap_or("1111")}});
        Heard {
            change: parse_record(&record, None).unwrap(),
            via,
            account: match via {
                Via::Pull => Some(account.unwrap_or("").to_string()),
                Via::Push => None,
            },
        }
    }

    #[test]
    fn a_governed_groups_event_is_queued_once_with_its_latest_author() {
        let intake = governing(&[("", "sg-a", Policy::Drop), ("", "sg-b", Policy::Drop)]);
        let a = GroupKey::new("cn-hangzhou", "sg-a");
        assert_eq!(
            intake.hear(heard("sg-a", "Accept", None, Via::Push, None)),
            Admission::Targeted(a.clone())
        );
        intake.hear(heard("sg-a", "Drop", None, Via::Pull, Some("")));
        let batch = intake.take();
        assert_eq!(batch.keys().collect::<Vec<_>>(), [&a]);
        assert_eq!(
            batch[&a].set_to,
            Some(Policy::Drop),
            "the latest event wins"
        );
        assert!(intake.take().is_empty(), "taking empties the queue");
    }

    #[test]
    fn the_same_event_pushed_and_then_polled_is_read_once() {
        let intake = governing(&[("", "sg-a", Policy::Drop)]);
        let pushed = heard("sg-a", "Accept", None, Via::Push, None);
        let polled = Heard {
            via: Via::Pull,
            account: Some(String::new()),
            ..pushed.clone()
        };
        assert!(matches!(intake.hear(pushed), Admission::Targeted(_)));
        assert_eq!(intake.take().len(), 1);
        assert_eq!(intake.hear(polled), Admission::Duplicate);
        assert!(intake.take().is_empty());
    }

    #[test]
    fn ungoverned_groups_and_own_writes_of_the_declared_value_are_not_queued() {
        let intake = governing(&[("", "sg-a", Policy::Drop)]);
        assert_eq!(
            intake.hear(heard("sg-zz", "Accept", None, Via::Push, None)),
            Admission::Ungoverned
        );
        assert_eq!(
            intake
                .hear(heard(
                    "sg-a",
                    "Drop",
                    Some("sgpolicy-r-drop-1-0-ab"),
                    Via::Push,
                    None
                ))
                .label(),
            "ignored_own_write"
        );
        // sgpolicy's prefix setting the other value (an old revision elsewhere) is looked at.
        assert!(matches!(
            intake.hear(heard(
                "sg-a",
                "Accept",
                Some("sgpolicy-old-accept-1-0-cd"),
                Via::Push,
                None
            )),
            Admission::Targeted(_)
        ));
        assert_eq!(intake.take().len(), 1);
        let counts = intake.status.counts();
        let count = |r: &str| {
            counts
                .iter()
                .filter(|((_, x), _)| *x == r)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        assert_eq!(
            (
                count("ignored_ungoverned"),
                count("ignored_own_write"),
                count("targeted")
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn the_same_id_in_two_accounts_is_told_apart_by_the_poller_or_the_envelope() {
        let intake = governing(&[("", "sg-a", Policy::Drop), (PROD, "sg-a", Policy::Drop)]);
        let own = GroupKey::new("cn-hangzhou", "sg-a");
        let prod = GroupKey::in_account(PROD, "cn-hangzhou", "sg-a");
        assert_eq!(
            intake.hear(heard("sg-a", "Accept", None, Via::Pull, Some(PROD))),
            Admission::Targeted(prod.clone())
        );
        assert_eq!(
            intake.hear(heard("sg-a", "Accept", None, Via::Push, Some(PROD))),
            Admission::Targeted(prod)
        );
        // A push naming an account no file names is the chain's own account's.
        assert_eq!(
            intake.hear(heard("sg-a", "Accept", None, Via::Push, Some("9999"))),
            Admission::Targeted(own)
        );
        // The poller of an account that governs no sg-a does not borrow another account's.
        assert_eq!(
            intake.hear(heard("sg-a", "Accept", None, Via::Pull, Some("3333"))),
            Admission::Ungoverned
        );
    }

    #[test]
    fn a_rule_event_queues_a_recheck_of_the_groups_that_depend_on_it_and_an_unrelated_one_nothing()
    {
        let intake = governing(&[("", "sg-d", Policy::Drop)]);
        let d = GroupKey::new("cn-hangzhou", "sg-d");
        let depends = crate::isolation::Depends {
            groups: ["sg-d".to_string(), "sg-shared".to_string()].into(),
            ..Default::default()
        };
        intake.depend(reach::Index::build([(&d, &depends)]));
        let rule = |group: &str, n: usize| {
            let record = json!({"eventId": format!("r-{n}"), "eventName": "AuthorizeSecurityGroup",
                "acsRegion": "cn-hangzhou", "requestParameters": {"SecurityGroupId": group},
                "userIdentity": {"type": "ram-user", "userName": "bob"}});
            Heard {
                change: parse_record(&record, None).unwrap(),
                via: Via::Push,
                account: None,
            }
        };
        assert_eq!(intake.hear(rule("sg-zz", 1)), Admission::Unrelated);
        assert!(
            intake.take_checks().is_empty(),
            "an unrelated group costs nothing"
        );
        assert_eq!(intake.hear(rule("sg-shared", 2)), Admission::Recheck(1));
        assert_eq!(intake.hear(rule("sg-shared", 2)), Admission::Duplicate);
        // The policy of an ungoverned group the members share is a reach event too.
        let mut flip = heard("sg-shared", "Accept", None, Via::Push, None);
        flip.change.named.groups = vec!["sg-shared".into()];
        assert_eq!(intake.hear(flip), Admission::Recheck(1));
        let checks = intake.take_checks();
        assert_eq!(checks.keys().collect::<Vec<_>>(), [&d]);
        assert_eq!(
            checks[&d].action, "ModifySecurityGroupPolicy",
            "the latest write wins"
        );
        assert!(
            intake.take().is_empty(),
            "no policy read is queued for a rule event"
        );
    }

    #[test]
    fn a_push_for_a_bucket_another_shard_owns_is_left_to_that_shard() {
        let bucket = |region: &str| crate::model::Bucket {
            account: "".into(),
            region: region.into(),
        };
        // Two shards: the one owning cn-hangzhou, and a region the other one owns.
        let mine = (0..2)
            .map(|i| Shard::new(i, 2).unwrap())
            .find(|s| s.owns(&bucket("cn-hangzhou")))
            .unwrap();
        let theirs = [
            "cn-shanghai",
            "cn-beijing",
            "cn-shenzhen",
            "eu-central-1",
            "us-west-1",
        ]
        .into_iter()
        .find(|r| !mine.owns(&bucket(r)))
        .expect("some region is the other shard's");
        let intake = governing_as(mine, &[("", "sg-a", Policy::Drop)]);
        // An account id the folder does not name is the chain's own ("" in keys).
        assert_eq!(
            intake.hear(heard("sg-new", "Accept", None, Via::Push, Some("9999"))),
            Admission::Ungoverned
        );
        let mut far = heard("sg-far", "Accept", None, Via::Push, Some("9999"));
        far.change.region = theirs.to_string();
        assert_eq!(intake.hear(far).label(), "ignored_other_shard");
        assert!(intake.take().is_empty());
    }

    /// An event for `id` that sent `sent` at `time`, pushed.
    fn pushed_at(id: &str, sent: &str, time: &str) -> Heard {
        let mut h = heard(id, sent, None, Via::Push, None);
        h.change.author.event_time = Some(time.to_string());
        h
    }

    fn governing_many(n: usize) -> (Intake, Vec<String>) {
        let ids: Vec<String> = (0..n).map(|i| format!("sg-{i:04}")).collect();
        let groups: Vec<(&str, &str, Policy)> = ids
            .iter()
            .map(|id| ("", id.as_str(), Policy::Drop))
            .collect();
        (governing(&groups), ids)
    }

    #[test]
    fn an_event_announcing_drift_is_taken_before_routine_ones_and_batches_are_bounded() {
        let (intake, ids) = governing_many(100);
        // 99 routine events (they sent the declared value), then one announcing drift.
        for id in &ids[..99] {
            intake.hear(heard(id, "Drop", None, Via::Push, None));
        }
        intake.hear(heard(&ids[99], "Accept", None, Via::Push, None));
        let first = intake.take_batch(TARGETED_BATCH);
        assert_eq!(first.len(), TARGETED_BATCH);
        let drifted = GroupKey::new("cn-hangzhou", ids[99].as_str());
        assert!(first.contains_key(&drifted), "the drift comes first");
        // The rest follow in arrival order.
        let second = intake.take_batch(TARGETED_BATCH);
        assert!(second.contains_key(&GroupKey::new("cn-hangzhou", ids[31].as_str())));
        assert!(!second.contains_key(&GroupKey::new("cn-hangzhou", ids[80].as_str())));
        assert_eq!(intake.take().len(), 99 - 2 * TARGETED_BATCH + 1);
    }

    #[test]
    fn routine_events_beyond_the_cap_are_refused_and_drift_is_still_queued() {
        let (intake, ids) = governing_many(ROUTINE_CAP + 2);
        for id in &ids[..ROUTINE_CAP] {
            assert!(matches!(
                intake.hear(heard(id, "Drop", None, Via::Push, None)),
                Admission::Targeted(_)
            ));
        }
        let refused = heard(&ids[ROUTINE_CAP], "Drop", None, Via::Push, None);
        assert_eq!(intake.hear(refused.clone()), Admission::Busy);
        assert!(matches!(
            intake.hear(heard(
                &ids[ROUTINE_CAP + 1],
                "Accept",
                None,
                Via::Push,
                None
            )),
            Admission::Targeted(_)
        ));
        // Once the queue drains, the same event sent again is taken (not a duplicate).
        intake.take();
        assert!(matches!(intake.hear(refused), Admission::Targeted(_)));
    }

    /// A pass report in which `key` was read (and found in sync).
    fn read_of(key: &GroupKey) -> crate::reconcile::PassReport {
        let entry = crate::plan::PlanEntry {
            key: key.clone(),
            desired: Policy::Drop,
            observed: Some(Policy::Drop),
            source: Location {
                path: std::path::Path::new("p.yaml").into(),
                line: 1,
                column: 1,
            },
            action: crate::plan::Action::InSync,
            mode: Mode::Enforce,
            name: None,
        };
        crate::reconcile::PassReport {
            revision: "r".into(),
            files: 1,
            dry_run: false,
            results: vec![crate::reconcile::GroupResult {
                entry,
                outcome: crate::reconcile::Outcome::InSync,
                token: None,
                request_id: None,
                changed_by: None,
            }],
            fatal: None,
            api_calls: Default::default(),
            retries: 0,
            throttled: 0,
            duration: Duration::ZERO,
            notes: Vec::new(),
            coverage: None,
            unmanageable: Default::default(),
            pages: Default::default(),
            isolation: None,
        }
    }

    #[test]
    fn an_event_older_than_the_groups_last_read_costs_nothing() {
        let intake = governing(&[("", "sg-a", Policy::Drop)]);
        let key = GroupKey::new("cn-hangzhou", "sg-a");
        let read_at = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap();
        intake.note_reads(&[read_of(&key)], SystemTime::from(read_at));
        assert_eq!(
            intake.hear(pushed_at("sg-a", "Accept", "2026-12-01T09:59:00Z")),
            Admission::Stale
        );
        // Within the clock skew, after the read, or without a time: read.
        for time in ["2026-12-01T09:59:58Z", "2026-12-01T10:00:01Z", "not a time"] {
            assert_eq!(
                intake.hear(pushed_at("sg-a", "Accept", time)),
                Admission::Targeted(key.clone()),
                "{time}"
            );
        }
    }

    #[test]
    fn when_the_poll_names_someone_else_than_the_push_actiontrails_identity_wins() {
        let intake = governing(&[("", "sg-a", Policy::Drop)]);
        let key = GroupKey::new("cn-hangzhou", "sg-a");
        let pushed = heard("sg-a", "Accept", None, Via::Push, None);
        let mut polled = Heard {
            via: Via::Pull,
            account: Some(String::new()),
            ..pushed.clone()
        };
        polled.change.author.name = Some("bob".into());
        assert!(matches!(intake.hear(pushed), Admission::Targeted(_)));
        assert_eq!(
            intake.author_of(&key).unwrap().via,
            Some(Via::Push),
            "attribution says how it was heard"
        );
        assert_eq!(intake.hear(polled), Admission::Duplicate);
        let author = intake.author_of(&key).unwrap();
        assert_eq!(
            (author.name.as_deref(), author.via),
            (Some("bob"), Some(Via::Pull))
        );
    }
}
