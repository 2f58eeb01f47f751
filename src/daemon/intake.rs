//! What the daemon does with an ActionTrail event: find the governed group it names, drop what needs
//! no read (groups nobody governs, sgpolicy's own writes), and queue the rest for a targeted pass.
//!
//! The queue keeps one entry per group, the latest author winning: ten events for one group before
//! the targeted pass starts cost one read. Nothing here reads or writes the cloud; the targeted pass
//! (`pass::targeted`) does, exactly like any other pass.

use crate::daemon::reach::{self, Cause};
use crate::events::seen::Seen;
use crate::events::{Author, Heard, Status, Via};
use crate::model::{Account, GroupKey, Policy, SharedStr};
use crate::policy::Desired;
use crate::shard::Shard;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
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
            Admission::Recheck(_) => "recheck_isolation",
            Admission::Unrelated => "ignored_unrelated",
        }
    }
}

/// Event ids remembered across sources: more than a day of events at a busy account's pace.
const QUEUED_IDS: usize = 50_000;

/// Governed groups by (region, id), the way an event names them.
type Index = HashMap<(SharedStr, SharedStr), Vec<(GroupKey, Policy)>>;

pub struct Intake {
    governed: RwLock<Arc<Index>>,
    /// Event ids already queued, whichever source brought them (bounded, oldest forgotten first).
    queued_ids: Mutex<Seen>,
    /// The account ids the folder names (a push names its account by id; any other is the chain's
    /// own, keyed `""`), to tell which shard owns an ungoverned group's bucket.
    named: RwLock<Arc<BTreeSet<String>>>,
    shard: Shard,
    pending: Mutex<BTreeMap<GroupKey, Arc<Author>>>,
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
            queued_ids: Mutex::new(Seen::new(QUEUED_IDS)),
            named: RwLock::new(Arc::new(BTreeSet::new())),
            shard,
            pending: Mutex::new(BTreeMap::new()),
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
        let id: SharedStr = change.group_id.as_str().into();
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
            Some(_)
                if !self
                    .queued_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .first_time(&change.author.event_id) =>
            {
                Admission::Duplicate
            }
            Some((key, _)) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), Arc::new(change.author.clone()));
                self.wake.notify_one();
                Admission::Targeted(key.clone())
            }
        };
        self.status.record(heard.via, admission.label());
        admission
    }

    /// Takes every queued group (the targeted pass's scope) with its latest author.
    pub fn take(&self) -> BTreeMap<GroupKey, Arc<Author>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The queued author of `key`, left queued (a resync that corrects a group names who changed
    /// it, and the targeted pass still reads it).
    pub fn author_of(&self, key: &GroupKey) -> Option<Arc<Author>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
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
        let queued = !self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
            || !self
                .checks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
        if queued {
            self.wake.notify_one();
        }
    }
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
}
