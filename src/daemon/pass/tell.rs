//! Telling people: the one place the daemon speaks to the notifier (`crate::notify`). It turns the
//! fold's [`Told`]s (corrections, holds), fights starting and ending, event sources going down and
//! coming back, passes starting to fail and the folder failing to load into [`Notification`]s.
//!
//! Transitions the fold does not see (fights, event sources, failing passes) are found here by
//! comparing with what was last told, so each is told once, not on every pass or heartbeat. A held
//! drift is told on every pass that holds it: the sink tells it once and then only at its `remind`
//! interval. `Notifier::send` never waits, so nothing here can delay a pass.
//!
//! Isolation lost and restored come from the fold's isolation effects ([`Teller::isolation`]), from a
//! pass or a targeted re-check alike: each path in one sentence, and who opened it when an event said.

use super::fold::{Effect, HoldReason, Record, Told};
use crate::events::status::Availability;
use crate::events::{Author, Via};
use crate::model::{GroupKey, Policy};
use crate::notify::{GroupRef, Kind, Notification, Notifier};
use crate::policy::DesiredGroup;
use crate::reconcile::gate::Hold;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// What was last told about the transitions found here.
#[derive(Debug, Default)]
struct Seen {
    fighting: BTreeSet<GroupKey>,
    /// Passes are failing on the cloud (told once until a pass reads the cloud again).
    failing: bool,
    /// The event sources last told unavailable.
    events_down: BTreeSet<&'static str>,
}

/// The daemon's side of the notifier.
#[derive(Debug, Default)]
pub(super) struct Teller {
    notifier: Notifier,
    seen: Mutex<Seen>,
}

fn group_ref(key: &GroupKey, source: &str) -> GroupRef {
    GroupRef {
        account: key.account.to_string(),
        region: key.region.to_string(),
        id: key.id.to_string(),
        source: source.to_string(),
    }
}

fn policy(p: Option<Policy>) -> &'static str {
    p.map_or("unknown", |p| p.as_str())
}

/// The rail's name as docs/notifications.md lists it.
fn rail(reason: &HoldReason) -> &'static str {
    match reason {
        HoldReason::Rail(Hold::Open) => "open",
        HoldReason::Rail(Hold::MaxChanges { .. }) => "max-changes",
        HoldReason::Observe => "observe",
        HoldReason::Fight => "fight",
    }
}

fn by(author: Option<&Arc<Author>>) -> String {
    author.map_or_else(String::new, |a| format!(" by {a}"))
}

/// The notification for one of the fold's transitions.
fn notification(t: &Told) -> Notification {
    let now = Utc::now();
    let (n, author) = match t {
        Told::Corrected {
            key,
            source,
            from,
            to,
            author,
            ..
        } => (
            Notification::new(
                Kind::Corrected,
                now,
                format!(
                    "{key} was changed to {}{} and is {to} again ({source})",
                    policy(*from),
                    by(author.as_ref()),
                ),
            )
            .group(group_ref(key, source))
            .change(policy(*from), to.as_str()),
            author,
        ),
        Told::Held {
            key,
            source,
            from,
            to,
            reason,
            author,
        } => (
            Notification::new(
                Kind::Held,
                now,
                format!(
                    "{key} is {}{}, declared {to} ({source}); the correction is held back ({})",
                    policy(*from),
                    by(author.as_ref()),
                    rail(reason),
                ),
            )
            .group(group_ref(key, source))
            .change(policy(*from), to.as_str())
            .reason(rail(reason)),
            author,
        ),
    };
    match author {
        Some(a) => n.changed_by(a.clone()),
        None => n,
    }
}

impl Teller {
    pub(super) fn new(notifier: Notifier) -> Teller {
        Teller {
            notifier,
            seen: Mutex::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fold's transitions of one pass.
    pub(super) fn told(&self, told: &[Told]) {
        if self.notifier.is_empty() {
            return;
        }
        for t in told {
            self.notifier.send(notification(t));
        }
    }

    /// Isolation lost or restored (the fold's effects, from a pass or a targeted re-check): one
    /// notification per group, each path in one sentence, naming the write that opened it when an
    /// event said so.
    pub(super) fn isolation(&self, effect: &Effect, declared: &BTreeMap<GroupKey, DesiredGroup>) {
        if self.notifier.is_empty() {
            return;
        }
        let source = |key: &GroupKey| {
            declared
                .get(key)
                .map_or_else(String::new, |d| d.source.to_string())
        };
        let (n, cause) = match effect {
            Effect::IsolationLost { key, paths, cause } => {
                let sentences: Vec<String> = paths
                    .iter()
                    .map(|p| crate::daemon::reach::lost_sentence(&key.id, p, cause.as_deref()))
                    .collect();
                let n = Notification::new(Kind::IsolationLost, Utc::now(), sentences.join("; "))
                    .group(group_ref(key, &source(key)));
                (n, cause)
            }
            Effect::IsolationRestored { key, cause } => {
                let text = crate::daemon::reach::restored_sentence(&key.id, cause.as_deref());
                let n = Notification::new(Kind::IsolationRestored, Utc::now(), text)
                    .group(group_ref(key, &source(key)));
                (n, cause)
            }
            _ => return,
        };
        let n = match cause {
            Some(c) => n.changed_by(Arc::new(c.author.clone())),
            None => n,
        };
        self.notifier.send(n);
    }

    /// Fights that started or ended since the last call: `fighting` is every group in a fight now;
    /// the other party is who made the change the group's last correction undid, when known.
    /// Returns each change, `true` for a fight that started (the status page's history).
    pub(super) fn fights<'a>(
        &self,
        fighting: impl Iterator<Item = &'a GroupKey>,
        records: &BTreeMap<GroupKey, Record>,
        declared: Option<&BTreeMap<GroupKey, DesiredGroup>>,
    ) -> Vec<(GroupKey, bool)> {
        let now: BTreeSet<GroupKey> = fighting.cloned().collect();
        let mut seen = self.seen();
        let source = |k: &GroupKey| {
            declared
                .and_then(|d| d.get(k))
                .map_or_else(String::new, |g| g.source.to_string())
        };
        let changes: Vec<(GroupKey, bool)> = now
            .difference(&seen.fighting)
            .map(|k| (k.clone(), true))
            .chain(seen.fighting.difference(&now).map(|k| (k.clone(), false)))
            .collect();
        for key in now.difference(&seen.fighting) {
            let other = records.get(key).and_then(|r| r.undid.clone());
            let text = match &other {
                Some(a) => format!("{key}: a fight with {a}, who keeps changing it back"),
                None => format!("{key}: a fight with something that keeps changing it back"),
            };
            let n = Notification::new(Kind::Fight, Utc::now(), text)
                .group(group_ref(key, &source(key)))
                .reason("started");
            self.notifier.send(match other {
                Some(a) => n.changed_by(a),
                None => n,
            });
        }
        for key in seen.fighting.difference(&now) {
            let n = Notification::new(Kind::Fight, Utc::now(), format!("{key}: the fight is over"))
                .group(group_ref(key, &source(key)))
                .reason("ended")
                .ended();
            self.notifier.send(n);
        }
        seen.fighting = now;
        changes
    }

    /// Event sources that became unavailable or recovered since the last call.
    pub(super) fn events(&self, status: &crate::events::Status) {
        let mut seen = self.seen();
        for via in [Via::Pull, Via::Push] {
            let label = via.label();
            match status.availability(via) {
                Availability::Unavailable(why) => {
                    if seen.events_down.insert(label) {
                        self.notifier.send(
                            Notification::new(
                                Kind::EventsUnavailable,
                                Utc::now(),
                                format!("event source {label} is unavailable: {why}; the resync still covers every group"),
                            )
                            .reason(why)
                            .topic(label),
                        );
                    }
                }
                Availability::Ok | Availability::Off => {
                    if seen.events_down.remove(label) {
                        self.notifier.send(
                            Notification::new(
                                Kind::EventsRecovered,
                                Utc::now(),
                                format!("event source {label} works again"),
                            )
                            .topic(label),
                        );
                    }
                }
            }
        }
    }

    /// A pass failed on the cloud: told when passes start failing, not on every retry.
    pub(super) fn pass_failed(&self, why: &str) {
        let mut seen = self.seen();
        if !std::mem::replace(&mut seen.failing, true) {
            self.notifier.send(
                Notification::new(
                    Kind::PassFailing,
                    Utc::now(),
                    format!(
                        "passes are failing on the cloud: {why}; the daemon retries with backoff"
                    ),
                )
                .reason(why)
                .topic("cloud"),
            );
        }
    }

    /// A pass read the cloud through: the next failure is news again.
    pub(super) fn pass_read(&self) {
        self.seen().failing = false;
    }

    /// The folder failed to load with new problems (`first` of them).
    pub(super) fn folder_error(&self, first: &str, count: usize, kept: Option<&str>) {
        let kept = kept.map_or_else(
            || "no policy is enforced yet".to_string(),
            |r| format!("revision {r} stays enforced"),
        );
        self.notifier.send(
            Notification::new(
                Kind::FolderError,
                Utc::now(),
                format!("the policy folder has {count} problem(s), the first: {first}; {kept}"),
            )
            .reason(first)
            .topic("folder"),
        );
    }
}
