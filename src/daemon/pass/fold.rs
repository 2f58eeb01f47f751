//! The daemon's pure core: what it knows about each governed group, and folding a pass's results
//! into it. [`fold`] is a function of (state, reports, cause, authors, now): it reads no clock, logs
//! nothing and touches no metric; it returns the [`Effect`]s a thin shell carries out (results.rs),
//! so every decision the daemon makes about a group is unit-tested with values.
//!
//! ```text
//!              ┌──────────── in sync / corrected ─────────────┐
//!              ▼                                               │
//!   (new) ──▶ InSync ◀── corrected (Effect::Corrected) ── Drifted ◀── held: rail, observe, fight
//!              │                                               ▲      (Record::hold says which)
//!              └─── read or write failed ──▶ Error ────────────┘
//!   a correction's token is remembered: the other lane's replay of it counts once;
//!   a correction restoring the last one within the window grows a fight (Effect::Fight), which
//!   holds the group's next corrections back (the scope puts it in the watch-only run).
//! ```

use super::results::{FoundBy, GroupState, Tally};
use crate::daemon::fights::Fights;
use crate::daemon::health::CloudTrouble;
use crate::daemon::reach::Cause;
use crate::events::Author;
use crate::isolation::{Depends, Path, Status, Verdict};
use crate::model::{GroupKey, GroupMeta, Mode, Policy};
use crate::plan::Action;
use crate::policy::DesiredGroup;
use crate::reconcile::gate::Hold;
use crate::reconcile::{GroupResult, Outcome, PassReport};
use crate::report::audit;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a drifted group was not corrected this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum HoldReason {
    /// A safety rail of the pass (`--max-changes`, `--allow-open`).
    Rail(Hold),
    /// `mode: observe`: drift is reported, never written.
    Observe,
    /// The group is in a fight: its corrections are held back for a while.
    Fight,
}

/// One governed group as the daemon knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    /// What the last read found (the `state` label of `sgpolicy_groups`).
    pub(super) state: GroupState,
    /// The declaration last seen in effect (or, dry-run, observed): a file pass skips the group
    /// while its declaration stays the same.
    pub(super) settled: Option<(Policy, Mode)>,
    /// When the group was last read successfully (the verification-age gauge).
    pub(super) verified: Option<Instant>,
    /// The ClientToken of its last correction: both lanes may correct one drift with the same
    /// token (one write takes effect, the other is replayed), which is one correction, not two.
    pub(super) correction: Option<String>,
    /// Who made the change the last correction undid, when an event said so.
    pub(super) undid: Option<Arc<Author>>,
    /// Why its last drift was not corrected.
    pub(super) hold: Option<HoldReason>,
    /// Its last isolation verdict, while it is declared `Drop` and checked.
    pub(super) isolation: Option<Checked>,
    /// What the last listing said of it, while its reads keep finding it: the sweep reads it
    /// without listing it again (`None`: list it first).
    pub(super) listed: Option<Listed>,
    /// Its name, as the last listing that named it returned it (the status page's `name`).
    pub(super) name: Option<Arc<str>>,
}

/// What a DescribeSecurityGroups listing told of a group the plan needs: whether ECS refuses writes
/// to it. Its type and managed flags do not change while it exists; a deleted group answers the
/// read with `NotFound`, which forgets this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Listed {
    Manageable,
    /// Enterprise or service-managed, with the flags that say why (few groups: boxed).
    Unmanageable(Box<GroupMeta>),
}

impl Listed {
    /// The flags a pass is given for the group (`PassOptions::known`).
    pub(super) fn meta(&self) -> GroupMeta {
        match self {
            Listed::Manageable => GroupMeta::default(),
            Listed::Unmanageable(meta) => (**meta).clone(),
        }
    }
}

impl Record {
    /// Keeps the name a listing returned (a read that named none keeps the last one).
    fn note_name(&mut self, name: Option<&str>) {
        if let Some(name) = name {
            if self.name.as_deref() != Some(name) {
                self.name = Some(name.into());
            }
        }
    }
}

/// What the daemon keeps of a group's last isolation verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Checked {
    pub(super) status: Status,
    /// The paths it found, by (group, rule): a new one is warned about even if the group was
    /// already not isolated.
    pub(super) paths: BTreeSet<(String, Option<String>)>,
    /// What the verdict depends on: events naming any of it re-check the group.
    pub(super) depends: Arc<Depends>,
    /// The verdict as the JSON report shows it (the status page's `isolation`; its `depends` is
    /// the field above, not kept twice).
    pub(super) verdict: Arc<Verdict>,
}

/// Everything the daemon folds results into: one record per governed group, and the fights.
/// Beside the records, indexes the sweep asks every tick, kept where a read is folded so a tick
/// costs O(groups due · log N) rather than a scan of every record.
#[derive(Debug)]
pub(super) struct Groups {
    pub(super) records: BTreeMap<GroupKey, Record>,
    pub(super) fights: Fights,
    /// Every record read at least once, by its last successful read (then key).
    by_read: BTreeSet<(Instant, GroupKey)>,
    /// The governed groups never read successfully (as of the last [`Groups::govern`], less those
    /// read since).
    unread: BTreeSet<GroupKey>,
    /// The records whose drift `--max-changes` held.
    window_held: BTreeSet<GroupKey>,
}

impl Groups {
    pub(super) fn new(fights: Fights) -> Groups {
        Groups {
            records: BTreeMap::new(),
            fights,
            by_read: BTreeSet::new(),
            unread: BTreeSet::new(),
            window_held: BTreeSet::new(),
        }
    }

    /// Forgets every group `governed` does not name (and fights gone cold).
    pub(super) fn keep_only(&mut self, governed: impl Fn(&GroupKey) -> bool, now: Instant) {
        self.records.retain(|k, _| governed(k));
        self.by_read.retain(|(_, k)| governed(k));
        self.unread.retain(|k| governed(k));
        self.window_held.retain(|k| governed(k));
        self.fights.prune(governed, now);
    }

    /// Takes in the governed groups a main pass resolved: those never read are the sweep's first.
    pub(super) fn govern<'a>(&mut self, governed: impl Iterator<Item = &'a GroupKey>) {
        let records = &self.records;
        self.unread = governed
            .filter(|k| records.get(*k).and_then(|r| r.verified).is_none())
            .cloned()
            .collect();
    }

    /// The `k` governed groups read longest ago, a group never read first (as
    /// `daemon::sweep::oldest` would order them), from the indexes.
    pub(super) fn oldest(
        &self,
        k: usize,
        governed: &BTreeMap<GroupKey, DesiredGroup>,
    ) -> Vec<GroupKey> {
        self.unread
            .iter()
            .chain(self.by_read.iter().map(|(_, key)| key))
            .filter(|key| governed.contains_key(*key))
            .take(k)
            .cloned()
            .collect()
    }

    /// The groups whose drift `--max-changes` held.
    pub(super) fn window_held(&self) -> impl Iterator<Item = &GroupKey> {
        self.window_held.iter()
    }

    /// Keeps the indexes of `key` equal to its record (`None`: removed).
    fn index(&mut self, key: &GroupKey, before: Option<Instant>, record: Option<&Record>) {
        let after = record.and_then(|r| r.verified);
        if before != after {
            if let Some(t) = before {
                self.by_read.remove(&(t, key.clone()));
            }
            if let Some(t) = after {
                self.by_read.insert((t, key.clone()));
                self.unread.remove(key);
            }
        }
        if record.is_some_and(held_by_window) {
            self.window_held.insert(key.clone());
        } else {
            self.window_held.remove(key);
        }
    }

    /// Whether a file pass may skip `g`: its declaration was last seen in effect.
    pub(super) fn settled(&self, g: &DesiredGroup) -> bool {
        self.records.get(&g.key).and_then(|r| r.settled) == Some((g.policy, g.mode))
    }

    /// Whether `key`'s last drift was held by a rail (`--max-changes`, `--allow-open`): a file
    /// pass plans it again with the rest, as a whole, though its declaration did not change.
    pub(super) fn held_by_rail(&self, key: &GroupKey) -> bool {
        self.records.get(key).is_some_and(|r| {
            r.state == GroupState::Drifted && matches!(r.hold, Some(HoldReason::Rail(_)))
        })
    }

    /// The oldest successful read of `governed` (a group never read counts from `start`), from
    /// the indexes: O(log N) unless groups no longer governed wait to be forgotten.
    pub(super) fn oldest_read(
        &self,
        governed: &BTreeMap<GroupKey, DesiredGroup>,
        start: Instant,
    ) -> Option<Instant> {
        if governed.is_empty() {
            return None;
        }
        let read = self
            .by_read
            .iter()
            .find(|(_, k)| governed.contains_key(k))
            .map(|(t, _)| *t);
        // Every governed group is in one index or the other (`govern` runs with each resolution).
        let never = self.unread.iter().any(|k| governed.contains_key(k));
        match (read, never) {
            (Some(t), false) => Some(t),
            (Some(t), true) => Some(t.min(start)),
            (None, _) => Some(start),
        }
    }

    /// Checked groups by isolation status (every status, zero included), for
    /// `sgpolicy_isolation_groups`.
    pub(super) fn isolation_counts(&self) -> BTreeMap<&'static str, i64> {
        let mut counts: BTreeMap<&'static str, i64> =
            [Status::Isolated, Status::NotIsolated, Status::Unknown]
                .into_iter()
                .map(|s| (s.as_str(), 0))
                .collect();
        for c in self.records.values().filter_map(|r| r.isolation.as_ref()) {
            *counts.entry(c.status.as_str()).or_default() += 1;
        }
        counts
    }

    /// The routing index of what every checked group depends on.
    pub(super) fn reach_index(&self) -> crate::daemon::reach::Index {
        crate::daemon::reach::Index::build(
            self.records
                .iter()
                .filter_map(|(k, r)| r.isolation.as_ref().map(|c| (k, &*c.depends))),
        )
    }

    /// Groups by (account, state label), for `sgpolicy_groups`.
    pub(super) fn counts(&self) -> BTreeMap<(String, &'static str), i64> {
        let mut counts = BTreeMap::new();
        for (key, r) in &self.records {
            *counts
                .entry((key.account.to_string(), r.state.label()))
                .or_default() += 1;
        }
        counts
    }
}

/// A report, and why its drifted groups were held when it ran them watch-only.
pub(super) struct Scoped {
    pub(super) report: PassReport,
    pub(super) held: Option<HoldReason>,
}

/// What the shell must do after a fold.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Effect {
    /// A correction took effect: `sgpolicy_corrections_total`, the `changed` write of its account,
    /// `sgpolicy_corrections_by_cause_total{cause, actor_type}`.
    Corrected {
        account: String,
        cause: FoundBy,
        actor: &'static str,
    },
    /// A write was sent and failed: the `failed` write of its account.
    WriteFailed { account: String },
    /// The correction undid a change an event announced: the "was changed to ... by ..." line.
    Undid {
        key: GroupKey,
        found: Option<Policy>,
        desired: Policy,
        author: Arc<Author>,
    },
    /// A fight started or grew: the "changed back N times" warning.
    Fight {
        key: GroupKey,
        streak: u32,
        hold: Duration,
        by: Option<Arc<Author>>,
    },
    /// A group declared `Drop` became not isolated, or a new path opened in one that was not: the
    /// warning naming each new path (and the write that opened it, when an event said so). The
    /// hook of an "isolation lost" notification.
    IsolationLost {
        key: GroupKey,
        paths: Vec<Path>,
        cause: Option<Arc<Cause>>,
    },
    /// A group that was not isolated is proven isolated again: the info line. The hook of an
    /// "isolation restored" notification.
    IsolationRestored {
        key: GroupKey,
        cause: Option<Arc<Cause>>,
    },
}

/// A group's transition worth telling people (the notifier, in `tell.rs`), kept apart from
/// [`Effect`] so that the metrics and log effects stay one per decision. (Isolation lost and
/// restored are told from their effects, which carry everything a notification needs.)
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Told {
    /// A correction took effect (not a replay): from → to, and who made the change it undid.
    Corrected {
        key: GroupKey,
        source: String,
        from: Option<Policy>,
        to: Policy,
        /// What found the drift (the status page's `lastCorrection.cause`).
        cause: FoundBy,
        author: Option<Arc<Author>>,
    },
    /// A drift was held back this pass (every pass that holds it: the sink says it once and then
    /// only reminds).
    Held {
        key: GroupKey,
        source: String,
        from: Option<Policy>,
        to: Policy,
        reason: HoldReason,
        author: Option<Arc<Author>>,
    },
}

/// What a fold decided: the reports with their authors attached, the tally, the first cloud
/// failure (the pass then failed on the cloud), the effects, and what to tell.
pub(super) struct Folded {
    pub(super) reports: Vec<PassReport>,
    pub(super) tally: Tally,
    pub(super) cloud: Option<CloudTrouble>,
    pub(super) effects: Vec<Effect>,
    pub(super) told: Vec<Told>,
}

/// What a pass brings to the fold besides its reports.
pub(super) struct Context<'a> {
    /// The declarations the pass ran with.
    pub(super) declared: &'a BTreeMap<GroupKey, DesiredGroup>,
    /// How the pass was started (a correction an event announced is `Event` whatever it says).
    pub(super) cause: FoundBy,
    /// The author of each group's latest queued event.
    pub(super) authors: &'a BTreeMap<GroupKey, Arc<Author>>,
    pub(super) now: Instant,
}

/// Who an event says made the change a correction undid, when the read found that change.
fn announced_drift(r: &GroupResult, author: Option<&Arc<Author>>) -> Option<Arc<Author>> {
    let author = author?;
    match author.set_to {
        Some(p) if Some(p) != r.entry.observed => None,
        _ => Some(author.clone()),
    }
}

/// Folds one pass's reports into `groups`.
pub(super) fn fold(groups: &mut Groups, scoped: Vec<Scoped>, cx: &Context<'_>) -> Folded {
    let mut out = Folded {
        reports: Vec::with_capacity(scoped.len()),
        tally: Tally::default(),
        cloud: None,
        effects: Vec::new(),
        told: Vec::new(),
    };
    for Scoped { mut report, held } in scoped {
        if let Some(f) = &report.fatal {
            out.cloud
                .get_or_insert_with(|| CloudTrouble::Failed(f.clone()));
        }
        out.tally.api_calls += report.api_calls.values().sum::<u64>();
        let verdicts = report.isolation.take();
        for r in &mut report.results {
            if matches!(
                r.outcome,
                Outcome::Changed | Outcome::WouldChange | Outcome::Observed | Outcome::Held(_)
            ) {
                r.changed_by = announced_drift(r, cx.authors.get(&r.entry.key));
            }
            fold_one(groups, r, held.as_ref(), &report.unmanageable, cx, &mut out);
        }
        if let Some(v) = &verdicts {
            out.effects.extend(isolation(groups, v, &BTreeMap::new()));
        }
        report.isolation = verdicts;
        out.reports.push(report);
    }
    out
}

/// Folds one group's result (`unmanageable`: the flags its report gives of unmanageable groups).
fn fold_one(
    groups: &mut Groups,
    r: &GroupResult,
    held: Option<&HoldReason>,
    unmanageable: &BTreeMap<GroupKey, GroupMeta>,
    cx: &Context<'_>,
    out: &mut Folded,
) {
    let key = &r.entry.key;
    // What outlives one read: when it was last verified, its last correction and who it undid,
    // its isolation verdict.
    let previous = groups.records.remove(key);
    let before = previous.as_ref().and_then(|r| r.verified);
    let mut record = Record {
        state: GroupState::Error,
        settled: None,
        hold: None,
        ..previous.unwrap_or(Record {
            state: GroupState::Error,
            settled: None,
            verified: None,
            correction: None,
            undid: None,
            hold: None,
            isolation: None,
            listed: None,
            name: None,
        })
    };
    record.note_name(r.entry.name.as_deref());
    // A verdict holds while the group stays declared Drop (a new one replaces it in `isolation`).
    if !cx
        .declared
        .get(key)
        .is_some_and(|g| g.policy == Policy::Drop)
    {
        record.isolation = None;
    }
    if r.entry.observed.is_some() {
        record.verified = Some(cx.now);
    }
    record.listed = listed(r, unmanageable, record.listed.take());
    let t = &mut out.tally;
    record.state = match &r.outcome {
        Outcome::InSync => {
            t.in_sync += 1;
            GroupState::InSync
        }
        Outcome::Changed => {
            t.changed += 1;
            // The other lane's correction of the same drift, replayed by ECS, is not a new one.
            if r.token.is_none() || r.token != record.correction {
                corrected(groups, r, cx, &mut record, out);
            }
            GroupState::InSync
        }
        Outcome::WouldChange | Outcome::Observed | Outcome::Held(_) => {
            record.hold = hold_of(&r.outcome, held);
            match record.hold {
                Some(HoldReason::Rail(_) | HoldReason::Fight) => t.held += 1,
                // `mode: observe` and a dry run report the drift they would correct.
                Some(HoldReason::Observe) | None => t.would_change += 1,
            }
            // A dry run's drift has no hold and is not news: it is what the operator asked for.
            if let Some(reason) = &record.hold {
                out.told.push(Told::Held {
                    key: key.clone(),
                    source: r.entry.source.to_string(),
                    from: r.entry.observed,
                    to: r.entry.desired,
                    reason: reason.clone(),
                    author: r.changed_by.clone(),
                });
            }
            GroupState::Drifted
        }
        Outcome::Failed(_) | Outcome::Error => {
            t.errors += 1;
            failed(r, out)
        }
    };
    if matches!(record.state, GroupState::InSync | GroupState::Drifted) {
        record.settled = cx.declared.get(key).map(|g| (g.policy, g.mode));
    }
    groups.index(key, before, Some(&record));
    groups.records.insert(key.clone(), record);
}

/// Whether the group's last drift was held by `--max-changes` (over the window or a whole plan).
pub(super) fn held_by_window(r: &Record) -> bool {
    matches!(&r.hold, Some(HoldReason::Rail(Hold::MaxChanges { .. })))
        && r.state == GroupState::Drifted
}

/// What the daemon knows of a group's flags after `r`: a read that found it says it exists, with
/// the flags its report gives (manageable unless named); one that did not find it forgets them; a
/// failed read says nothing new.
fn listed(
    r: &GroupResult,
    unmanageable: &BTreeMap<GroupKey, GroupMeta>,
    before: Option<Listed>,
) -> Option<Listed> {
    match (&r.entry.observed, &r.entry.action) {
        (Some(_), _) => Some(match unmanageable.get(&r.entry.key) {
            Some(meta) => Listed::Unmanageable(Box::new(meta.clone())),
            None => Listed::Manageable,
        }),
        (None, Action::NotFound) => None,
        (None, _) => before,
    }
}

/// Why a drifted group was not corrected: a rail, `mode: observe`, or the fight its watch-only run
/// was for (a dry run's drift has no hold).
fn hold_of(outcome: &Outcome, run_held: Option<&HoldReason>) -> Option<HoldReason> {
    match outcome {
        Outcome::Held(h) => Some(HoldReason::Rail(h.clone())),
        Outcome::Observed => Some(HoldReason::Observe),
        Outcome::WouldChange => run_held.cloned(),
        _ => None,
    }
}

/// The state of a group whose write or read failed, noting a failure that is the cloud's.
fn failed(r: &GroupResult, out: &mut Folded) -> GroupState {
    match (&r.outcome, &r.entry.action) {
        (Outcome::Failed(e), _) => {
            if audit::write_sent(r) {
                out.effects.push(Effect::WriteFailed {
                    account: r.entry.key.account.to_string(),
                });
            }
            if e.is_cloud_trouble() {
                out.cloud
                    .get_or_insert_with(|| CloudTrouble::Failed((**e).clone()));
            }
            GroupState::Error
        }
        (_, Action::Unmanageable { .. }) => GroupState::Unmanageable,
        (_, Action::ReadFailed(failure)) if failure.is_cloud_trouble() => {
            out.cloud
                .get_or_insert_with(|| CloudTrouble::Unreadable(failure.clone()));
            GroupState::Error
        }
        _ => GroupState::Error,
    }
}

/// Folds isolation verdicts (of a full or file pass, or of a targeted check) into the records of
/// the groups they concern: a group becoming not isolated, or gaining a path, is
/// [`Effect::IsolationLost`]; one not isolated becoming isolated is [`Effect::IsolationRestored`].
/// `causes` names the write each re-check was queued for. An unknown verdict is neither: it is
/// counted (`sgpolicy_isolation_groups{status="unknown"}`), never taken for isolation.
pub(super) fn isolation(
    groups: &mut Groups,
    verdicts: &BTreeMap<GroupKey, Verdict>,
    causes: &BTreeMap<GroupKey, Arc<Cause>>,
) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (key, v) in verdicts {
        let Some(record) = groups.records.get_mut(key) else {
            continue;
        };
        let before = record.isolation.take();
        let paths: BTreeSet<(String, Option<String>)> = v
            .paths
            .iter()
            .map(|p| (p.group.clone(), p.rule_id.clone()))
            .collect();
        let cause = causes.get(key).cloned();
        let new: Vec<Path> = v
            .paths
            .iter()
            .filter(|p| {
                !before
                    .as_ref()
                    .is_some_and(|b| b.paths.contains(&(p.group.clone(), p.rule_id.clone())))
            })
            .cloned()
            .collect();
        if v.status == Status::NotIsolated && !new.is_empty() {
            effects.push(Effect::IsolationLost {
                key: key.clone(),
                paths: new,
                cause,
            });
        } else if v.status == Status::Isolated
            && before
                .as_ref()
                .is_some_and(|b| b.status == Status::NotIsolated)
        {
            effects.push(Effect::IsolationRestored {
                key: key.clone(),
                cause,
            });
        }
        record.isolation = Some(Checked {
            status: v.status,
            paths,
            depends: Arc::new(v.depends.clone()),
            verdict: Arc::new(Verdict {
                depends: Depends::default(),
                ..v.clone()
            }),
        });
    }
    effects
}

/// A correction that took effect (not a replay of the last one).
fn corrected(
    groups: &mut Groups,
    r: &GroupResult,
    cx: &Context<'_>,
    record: &mut Record,
    out: &mut Folded,
) {
    let key = &r.entry.key;
    if r.token.is_some() {
        record.correction = r.token.clone();
    }
    record.undid = r.changed_by.clone();
    let (cause, actor) = match r.changed_by.as_deref() {
        Some(a) => (FoundBy::Event, a.actor.label()),
        None => (cx.cause, "unknown"),
    };
    out.effects.push(Effect::Corrected {
        account: key.account.to_string(),
        cause,
        actor,
    });
    out.told.push(Told::Corrected {
        key: key.clone(),
        source: r.entry.source.to_string(),
        from: r.entry.observed,
        to: r.entry.desired,
        cause,
        author: r.changed_by.clone(),
    });
    if let Some(a) = &r.changed_by {
        out.effects.push(Effect::Undid {
            key: key.clone(),
            found: r.entry.observed,
            desired: r.entry.desired,
            author: a.clone(),
        });
    }
    if let Some(n) = groups.fights.corrected(key, r.entry.desired, cx.now) {
        out.effects.push(Effect::Fight {
            key: key.clone(),
            streak: n.streak,
            hold: n.hold,
            by: r.changed_by.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::settings::FightPolicy;
    use crate::events::{ActorType, EventType};
    use crate::model::{Location, Policy::*};
    use crate::plan::PlanEntry;
    use crate::reconcile::Failure;

    const HOUR: Duration = Duration::from_secs(3600);
    const HOLD: Duration = Duration::from_secs(300);

    fn sg(id: &str) -> GroupKey {
        GroupKey::new("cn-hangzhou", id)
    }

    /// Two restorations in a row make a fight.
    fn groups() -> Groups {
        Groups::new(Fights::new(FightPolicy {
            threshold: 2,
            window: HOUR,
            hold: HOLD,
            hold_cap: 10 * HOLD,
        }))
    }

    fn declared(keys: &[(&GroupKey, Mode)]) -> BTreeMap<GroupKey, DesiredGroup> {
        keys.iter()
            .map(|(k, mode)| {
                let g = DesiredGroup {
                    key: (*k).clone(),
                    policy: Drop,
                    source: Location {
                        path: std::path::Path::new("prod.yaml").into(),
                        line: 3,
                        column: 5,
                    },
                    mode: *mode,
                };
                ((*k).clone(), g)
            })
            .collect()
    }

    /// `key`, declared `Drop`, read as `found`, with `outcome`.
    fn result(key: &GroupKey, found: Policy, outcome: Outcome) -> GroupResult {
        let action = if found == Drop {
            Action::InSync
        } else {
            Action::Change {
                from: found,
                to: Drop,
            }
        };
        GroupResult {
            entry: PlanEntry {
                key: key.clone(),
                desired: Drop,
                observed: Some(found),
                source: Location {
                    path: std::path::Path::new("prod.yaml").into(),
                    line: 3,
                    column: 5,
                },
                action,
                mode: Mode::Enforce,
                name: None,
            },
            token: (outcome == Outcome::Changed).then(|| "sgpolicy-tok-1".to_string()),
            outcome,
            request_id: None,
            changed_by: None,
        }
    }

    /// A group whose read failed with `code` (HTTP `status`): a 503 is the cloud's trouble, a
    /// 400 `InvalidSecurityGroupId.NotFound`-style answer the group's own.
    fn unread(key: &GroupKey, status: u16, code: &str) -> GroupResult {
        let mut r = result(key, Accept, Outcome::Error);
        r.entry.observed = None;
        r.entry.action = Action::ReadFailed(read_failure(status, code));
        r
    }

    fn read_failure(status: u16, code: &str) -> crate::reconcile::Failure {
        crate::reconcile::Failure::Ecs(crate::ecs::EcsError::Api(crate::ecs::ApiError {
            action: "DescribeSecurityGroupAttribute",
            status: Some(status),
            code: code.into(),
            message: "try later".into(),
            request_id: None,
            retry_after_ms: None,
        }))
    }

    fn run(results: Vec<GroupResult>, held: Option<HoldReason>) -> Scoped {
        Scoped {
            report: PassReport {
                revision: "3f2a9c1b7d4e".into(),
                files: 1,
                dry_run: held.is_some(),
                results,
                fatal: None,
                api_calls: BTreeMap::from([("DescribeSecurityGroupAttribute".into(), 2)]),
                retries: 0,
                throttled: 0,
                duration: Duration::ZERO,
                notes: Vec::new(),
                coverage: None,
                unmanageable: Default::default(),
                pages: Default::default(),
                isolation: None,
            },
            held,
        }
    }

    fn alice(set_to: Policy) -> Arc<Author> {
        Arc::new(Author {
            actor: ActorType::RamUser,
            name: Some("alice".into()),
            principal_id: None,
            event_type: EventType::ConsoleOperation,
            source_ip: None,
            user_agent: None,
            event_time: None,
            event_id: "e-1".into(),
            set_to: Some(set_to),
            via: None,
        })
    }

    /// Folds `scoped` at `now` as a resync with the given queued authors.
    fn fold_at(
        g: &mut Groups,
        scoped: Vec<Scoped>,
        decl: &BTreeMap<GroupKey, DesiredGroup>,
        authors: &BTreeMap<GroupKey, Arc<Author>>,
        now: Instant,
    ) -> Folded {
        let cx = Context {
            declared: decl,
            cause: FoundBy::Resync,
            authors,
            now,
        };
        fold(g, scoped, &cx)
    }

    fn corrected(actor: &'static str, cause: FoundBy) -> Effect {
        Effect::Corrected {
            account: String::new(),
            cause,
            actor,
        }
    }

    #[test]
    fn a_corrected_group_is_in_sync_settled_verified_and_counted_once_by_its_cause() {
        let (a, b) = (sg("sg-a"), sg("sg-b"));
        let decl = declared(&[(&a, Mode::Enforce), (&b, Mode::Enforce)]);
        let mut g = groups();
        let now = Instant::now();
        let results = vec![
            result(&a, Accept, Outcome::Changed),
            result(&b, Drop, Outcome::InSync),
        ];
        let f = fold_at(
            &mut g,
            vec![run(results, None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(f.effects, [corrected("unknown", FoundBy::Resync)]);
        assert_eq!(
            (f.tally.changed, f.tally.in_sync, f.tally.api_calls),
            (1, 1, 2)
        );
        assert_eq!(f.cloud, None);
        let ra = &g.records[&a];
        assert_eq!(ra.state, GroupState::InSync);
        assert_eq!(ra.settled, Some((Drop, Mode::Enforce)));
        assert_eq!(ra.verified, Some(now));
        assert_eq!(ra.correction.as_deref(), Some("sgpolicy-tok-1"));
        assert!(g.settled(&decl[&a]), "a file pass skips it now");
    }

    #[test]
    fn a_group_found_keeps_its_listing_for_the_sweep_until_a_read_no_longer_finds_it() {
        let (a, ent) = (sg("sg-a"), sg("sg-ent"));
        let decl = declared(&[(&a, Mode::Enforce), (&ent, Mode::Enforce)]);
        let mut g = groups();
        let now = Instant::now();
        let flags = GroupMeta {
            enterprise: true,
            ..GroupMeta::default()
        };
        let mut found = run(
            vec![
                result(&a, Drop, Outcome::InSync),
                result(&ent, Drop, Outcome::InSync),
            ],
            None,
        );
        found.report.unmanageable = [(ent.clone(), flags.clone())].into_iter().collect();
        fold_at(&mut g, vec![found], &decl, &BTreeMap::new(), now);
        assert_eq!(g.records[&a].listed, Some(Listed::Manageable));
        assert_eq!(
            g.records[&ent].listed.as_ref().map(Listed::meta),
            Some(flags),
            "an enterprise group in sync is still one ECS refuses writes to"
        );

        // A throttled read says nothing new; a read that does not find the group forgets it.
        let throttled = unread(&a, 503, "ServiceUnavailable");
        fold_at(
            &mut g,
            vec![run(vec![throttled], None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(g.records[&a].listed, Some(Listed::Manageable));
        let mut gone = unread(&a, 404, "InvalidSecurityGroupId.NotFound");
        gone.entry.action = Action::NotFound;
        fold_at(
            &mut g,
            vec![run(vec![gone], None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(g.records[&a].listed, None, "the next read lists it first");
    }

    #[test]
    fn the_other_lanes_replayed_correction_is_counted_once() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let now = Instant::now();
        let first = fold_at(
            &mut g,
            vec![run(vec![result(&a, Accept, Outcome::Changed)], None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        let replay = fold_at(
            &mut g,
            vec![run(vec![result(&a, Accept, Outcome::Changed)], None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(first.effects.len(), 1);
        assert_eq!(replay.effects, [], "same token: ECS replayed it");
        assert_eq!(g.records[&a].state, GroupState::InSync);
    }

    #[test]
    fn an_event_targeted_correction_names_its_author_and_counts_as_an_event() {
        let (a, b) = (sg("sg-a"), sg("sg-b"));
        let decl = declared(&[(&a, Mode::Enforce), (&b, Mode::Enforce)]);
        let mut g = groups();
        // alice set sg-a to Accept (what the read found); sg-b's event sent Drop, yet it was Accept.
        let authors = BTreeMap::from([(a.clone(), alice(Accept)), (b.clone(), alice(Drop))]);
        let mut cb = result(&b, Accept, Outcome::Changed);
        cb.token = Some("sgpolicy-tok-2".into());
        let results = vec![result(&a, Accept, Outcome::Changed), cb];
        let f = fold_at(
            &mut g,
            vec![run(results, None)],
            &decl,
            &authors,
            Instant::now(),
        );
        assert_eq!(
            f.effects,
            [
                corrected("ram-user", FoundBy::Event),
                Effect::Undid {
                    key: a.clone(),
                    found: Some(Accept),
                    desired: Drop,
                    author: alice(Accept),
                },
                corrected("unknown", FoundBy::Resync),
            ]
        );
        assert_eq!(f.reports[0].results[0].changed_by, Some(alice(Accept)));
        assert_eq!(
            f.reports[0].results[1].changed_by, None,
            "not the drift it announced"
        );
        assert_eq!(g.records[&a].undid, Some(alice(Accept)));
    }

    #[test]
    fn a_correction_is_told_once_from_what_was_read_to_what_is_declared_with_its_author() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let authors = BTreeMap::from([(a.clone(), alice(Accept))]);
        let now = Instant::now();
        let runs = || vec![run(vec![result(&a, Accept, Outcome::Changed)], None)];
        let first = fold_at(&mut g, runs(), &decl, &authors, now);
        let replay = fold_at(&mut g, runs(), &decl, &authors, now);
        assert_eq!(
            first.told,
            [Told::Corrected {
                key: a.clone(),
                source: "prod.yaml:3:5".into(),
                from: Some(Accept),
                to: Drop,
                cause: FoundBy::Event,
                author: Some(alice(Accept)),
            }]
        );
        assert_eq!(replay.told, [], "ECS replayed the same correction");
    }

    #[test]
    fn a_held_drift_is_told_on_every_pass_that_holds_it_and_a_dry_run_tells_nothing() {
        let (a, b) = (sg("sg-a"), sg("sg-b"));
        let decl = declared(&[(&a, Mode::Enforce), (&b, Mode::Enforce)]);
        let mut g = groups();
        let now = Instant::now();
        let held = |k: &GroupKey| Told::Held {
            key: k.clone(),
            source: "prod.yaml:3:5".into(),
            from: Some(Accept),
            to: Drop,
            reason: HoldReason::Rail(Hold::Open),
            author: None,
        };
        for _ in 0..2 {
            let f = fold_at(
                &mut g,
                vec![
                    run(vec![result(&a, Accept, Outcome::Held(Hold::Open))], None),
                    run(vec![result(&b, Accept, Outcome::WouldChange)], None),
                ],
                &decl,
                &BTreeMap::new(),
                now,
            );
            assert_eq!(f.told, [held(&a)], "sg-b's drift is a dry run's");
        }
    }

    #[test]
    fn each_rail_and_observe_hold_a_drifted_group_with_its_reason() {
        let (a, b, c) = (sg("sg-a"), sg("sg-b"), sg("sg-c"));
        let decl = declared(&[
            (&a, Mode::Enforce),
            (&b, Mode::Enforce),
            (&c, Mode::Observe),
        ]);
        let mut g = groups();
        let max = Hold::MaxChanges {
            planned: 30,
            max: 20,
        };
        let results = vec![
            result(&a, Accept, Outcome::Held(max.clone())),
            result(&b, Accept, Outcome::Held(Hold::Open)),
            result(&c, Accept, Outcome::Observed),
        ];
        let f = fold_at(
            &mut g,
            vec![run(results, None)],
            &decl,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!(f.effects, []);
        assert_eq!((f.tally.held, f.tally.would_change), (2, 1));
        let hold = |k: &GroupKey| g.records[k].hold.clone();
        assert_eq!(hold(&a), Some(HoldReason::Rail(max)));
        assert_eq!(hold(&b), Some(HoldReason::Rail(Hold::Open)));
        assert_eq!(hold(&c), Some(HoldReason::Observe));
        assert!([&a, &b, &c]
            .iter()
            .all(|k| g.records[*k].state == GroupState::Drifted));
    }

    #[test]
    fn restorations_start_a_fight_whose_watch_only_reads_are_held_until_it_goes_cold() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let start = Instant::now();
        let mut fights = Vec::new();
        for n in 0..3u32 {
            let mut r = result(&a, Accept, Outcome::Changed);
            r.token = Some(format!("sgpolicy-tok-{n}"));
            let at = start + Duration::from_secs(60) * n;
            let f = fold_at(
                &mut g,
                vec![run(vec![r], None)],
                &decl,
                &BTreeMap::new(),
                at,
            );
            fights.extend(
                f.effects
                    .into_iter()
                    .filter(|e| matches!(e, Effect::Fight { .. })),
            );
        }
        let third = start + Duration::from_secs(120);
        assert_eq!(
            fights,
            [Effect::Fight {
                key: a.clone(),
                streak: 2,
                hold: HOLD,
                by: None
            }]
        );
        assert!(g.fights.held(&a, third + Duration::from_secs(1)));

        // While held, the scope runs it watch-only: drift is held with the fight as its reason.
        let watch = run(
            vec![result(&a, Accept, Outcome::WouldChange)],
            Some(HoldReason::Fight),
        );
        let f = fold_at(&mut g, vec![watch], &decl, &BTreeMap::new(), third);
        assert_eq!((f.tally.held, f.tally.would_change), (1, 0));
        assert_eq!(g.records[&a].hold, Some(HoldReason::Fight));
        assert_eq!(g.fights.fighting(third).len(), 1);

        // The hold ends, then the streak goes cold: the fight is over.
        let cold = third + HOLD + HOUR + Duration::from_secs(1);
        g.keep_only(|_| true, cold);
        assert!(!g.fights.held(&a, cold));
        assert_eq!(g.fights.fighting(cold), []);
    }

    #[test]
    fn a_dry_run_drift_is_would_change_not_held() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let f = fold_at(
            &mut g,
            vec![run(vec![result(&a, Accept, Outcome::WouldChange)], None)],
            &decl,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!((f.tally.held, f.tally.would_change), (0, 1));
        assert_eq!(g.records[&a].hold, None);
    }

    #[test]
    fn a_read_the_cloud_failed_is_an_error_and_a_cloud_failure_that_a_later_read_clears() {
        let (a, b) = (sg("sg-a"), sg("sg-b"));
        let decl = declared(&[(&a, Mode::Enforce), (&b, Mode::Enforce)]);
        let mut g = groups();
        let now = Instant::now();
        let results = vec![
            unread(&a, 503, "ServiceUnavailable"),
            unread(&b, 400, "InvalidParameter"),
        ];
        let f = fold_at(
            &mut g,
            vec![run(results, None)],
            &decl,
            &BTreeMap::new(),
            now,
        );
        assert_eq!(
            f.cloud,
            Some(CloudTrouble::Unreadable(read_failure(
                503,
                "ServiceUnavailable"
            )))
        );
        assert_eq!(f.tally.errors, 2);
        assert_eq!(g.records[&a].state, GroupState::Error);
        assert_eq!(
            (g.records[&a].settled, g.records[&a].verified),
            (None, None)
        );

        let again = vec![result(&a, Drop, Outcome::InSync)];
        let f = fold_at(&mut g, vec![run(again, None)], &decl, &BTreeMap::new(), now);
        assert_eq!(f.cloud, None);
        assert_eq!(g.records[&a].state, GroupState::InSync);
        assert_eq!(g.counts().get(&(String::new(), "error")), Some(&1), "sg-b");
    }

    #[test]
    fn a_write_sent_and_refused_is_counted_as_a_failed_write_and_a_fatal_error_fails_the_pass() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let failure = Failure::WriteNotEffective {
            writes: 2,
            to: Drop,
        };
        let mut scoped = run(
            vec![result(
                &a,
                Accept,
                Outcome::Failed(Box::new(failure.clone())),
            )],
            None,
        );
        scoped.report.fatal = Some(Failure::DeadlineExceeded {
            action: "DescribeSecurityGroups",
        });
        let f = fold_at(
            &mut g,
            vec![scoped],
            &decl,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!(
            f.effects,
            [Effect::WriteFailed {
                account: String::new()
            }]
        );
        assert_eq!(
            f.cloud,
            Some(CloudTrouble::Failed(Failure::DeadlineExceeded {
                action: "DescribeSecurityGroups"
            })),
            "the fatal error first"
        );
        assert_eq!(g.records[&a].state, GroupState::Error);
    }

    fn ssh(group: &str, rule: &str) -> Path {
        Path {
            kind: crate::isolation::PathKind::IngressRule,
            group: group.into(),
            rule_id: Some(rule.into()),
            protocol: "tcp".into(),
            ports: "22/22".into(),
            source: Some(group.into()),
            from: "eni-1".into(),
            to: "eni-2".into(),
        }
    }

    fn verdict(status: Status, paths: Vec<Path>) -> Verdict {
        Verdict {
            status,
            members: 2,
            paths,
            unknown: Vec::new(),
            depends: Depends {
                groups: BTreeSet::from(["sg-a".to_string(), "sg-shared".to_string()]),
                ..Depends::default()
            },
        }
    }

    /// `a` folded in sync, then each verdict in turn; the effects of each.
    fn verdicts_in_turn(
        a: &GroupKey,
        turns: Vec<(Verdict, Option<Arc<Cause>>)>,
    ) -> (Groups, Vec<Vec<Effect>>) {
        let decl = declared(&[(a, Mode::Enforce)]);
        let mut g = groups();
        fold_at(
            &mut g,
            vec![run(vec![result(a, Drop, Outcome::InSync)], None)],
            &decl,
            &BTreeMap::new(),
            Instant::now(),
        );
        let effects = turns
            .into_iter()
            .map(|(v, cause)| {
                let causes: BTreeMap<_, _> = cause.into_iter().map(|c| (a.clone(), c)).collect();
                isolation(&mut g, &BTreeMap::from([(a.clone(), v)]), &causes)
            })
            .collect();
        (g, effects)
    }

    fn bob_added_a_rule() -> Arc<Cause> {
        Arc::new(Cause {
            action: "AuthorizeSecurityGroup".into(),
            groups: vec!["sg-a".into()],
            author: (*alice(Accept)).clone(),
        })
    }

    #[test]
    fn a_group_that_becomes_not_isolated_is_a_warning_naming_the_write_and_counts_as_not_isolated()
    {
        let a = sg("sg-a");
        let (g, effects) = verdicts_in_turn(
            &a,
            vec![
                (verdict(Status::Isolated, vec![]), None),
                (
                    verdict(Status::NotIsolated, vec![ssh("sg-a", "sgr-1")]),
                    Some(bob_added_a_rule()),
                ),
            ],
        );
        assert_eq!(effects[0], [], "isolated from the start: nothing to say");
        assert_eq!(
            effects[1],
            [Effect::IsolationLost {
                key: a.clone(),
                paths: vec![ssh("sg-a", "sgr-1")],
                cause: Some(bob_added_a_rule()),
            }]
        );
        let counts = g.isolation_counts();
        assert_eq!(
            (
                counts["isolated"],
                counts["not-isolated"],
                counts["unknown"]
            ),
            (0, 1, 0)
        );
        // Its dependencies route events now: a rule event on a group its members share.
        let ix = g.reach_index();
        let mut change = crate::events::record::parse_record(
            &serde_json::json!({"eventId": "e", "eventName": "RevokeSecurityGroup", "acsRegion": "cn-hangzhou",
                "requestParameters": {"SecurityGroupId": "sg-shared"}}),
            None,
        )
        .unwrap();
        assert_eq!(ix.affected(&change), BTreeSet::from([a.clone()]));
        change.named.groups = vec!["sg-other".into()];
        assert_eq!(ix.affected(&change), BTreeSet::new());
    }

    #[test]
    fn a_group_isolated_again_is_an_info_effect_and_an_unknown_verdict_is_neither() {
        let a = sg("sg-a");
        let (g, effects) = verdicts_in_turn(
            &a,
            vec![
                (
                    verdict(Status::NotIsolated, vec![ssh("sg-a", "sgr-1")]),
                    None,
                ),
                (verdict(Status::Isolated, vec![]), Some(bob_added_a_rule())),
                (verdict(Status::Unknown, vec![]), None),
                (verdict(Status::Isolated, vec![]), None),
            ],
        );
        assert!(matches!(
            &effects[0][..],
            [Effect::IsolationLost { cause: None, .. }]
        ));
        assert_eq!(
            effects[1],
            [Effect::IsolationRestored {
                key: a.clone(),
                cause: Some(bob_added_a_rule())
            }]
        );
        assert_eq!(
            effects[2],
            [],
            "unknown is not a loss, and never counts as isolated"
        );
        assert_eq!(
            effects[3],
            [],
            "from unknown to isolated is not a restoration"
        );
        assert_eq!(g.isolation_counts()["isolated"], 1);
    }

    #[test]
    fn only_a_new_path_is_warned_about_again() {
        let a = sg("sg-a");
        let (_, effects) = verdicts_in_turn(
            &a,
            vec![
                (
                    verdict(Status::NotIsolated, vec![ssh("sg-a", "sgr-1")]),
                    None,
                ),
                (
                    verdict(Status::NotIsolated, vec![ssh("sg-a", "sgr-1")]),
                    None,
                ),
                (
                    verdict(
                        Status::NotIsolated,
                        vec![ssh("sg-a", "sgr-1"), ssh("sg-a", "sgr-2")],
                    ),
                    None,
                ),
            ],
        );
        assert_eq!(
            effects[1],
            [],
            "the same path every resync is one warning, not one per pass"
        );
        assert!(
            matches!(&effects[2][..], [Effect::IsolationLost { paths, .. }] if paths == &[ssh("sg-a", "sgr-2")])
        );
    }

    #[test]
    fn a_pass_report_s_verdicts_are_folded_and_a_group_no_longer_declared_drop_drops_its_verdict() {
        let a = sg("sg-a");
        let decl = declared(&[(&a, Mode::Enforce)]);
        let mut g = groups();
        let mut scoped = run(vec![result(&a, Drop, Outcome::InSync)], None);
        scoped.report.isolation = Some(BTreeMap::from([(
            a.clone(),
            verdict(Status::NotIsolated, vec![ssh("sg-a", "sgr-1")]),
        )]));
        let f = fold_at(
            &mut g,
            vec![scoped],
            &decl,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert!(matches!(&f.effects[..], [Effect::IsolationLost { .. }]));
        assert!(
            f.reports[0].isolation.is_some(),
            "the report keeps its verdicts"
        );
        let mut accept = decl.clone();
        accept.get_mut(&a).unwrap().policy = Accept;
        let mut r = result(&a, Drop, Outcome::InSync);
        r.entry.desired = Accept;
        fold_at(
            &mut g,
            vec![run(vec![r], None)],
            &accept,
            &BTreeMap::new(),
            Instant::now(),
        );
        assert_eq!(g.records[&a].isolation, None);
        assert_eq!(g.isolation_counts()["not-isolated"], 0);
    }

    #[test]
    fn groups_no_longer_governed_are_forgotten_with_their_reads() {
        let (a, b) = (sg("sg-a"), sg("sg-b"));
        let decl = declared(&[(&a, Mode::Enforce), (&b, Mode::Enforce)]);
        let mut g = groups();
        let start = Instant::now();
        let later = start + Duration::from_secs(5);
        let results = vec![
            result(&a, Drop, Outcome::InSync),
            result(&b, Drop, Outcome::InSync),
        ];
        fold_at(
            &mut g,
            vec![run(results, None)],
            &decl,
            &BTreeMap::new(),
            later,
        );
        g.keep_only(|k| *k == a, later);
        assert_eq!(g.records.keys().collect::<Vec<_>>(), [&a]);
        let c = sg("sg-c");
        let with_c = declared(&[(&a, Mode::Enforce), (&c, Mode::Enforce)]);
        g.govern(with_c.keys());
        assert_eq!(
            g.oldest_read(&with_c, start),
            Some(start),
            "sg-c never read"
        );
        let only_a = declared(&[(&a, Mode::Enforce)]);
        assert_eq!(g.oldest_read(&only_a, start), Some(later));
    }

    /// The sweep's indexes against a scan of every record: the order of the oldest reads (as
    /// `daemon::sweep::oldest` sorts a scan), the oldest read, and the groups the window held.
    fn assert_indexes_match_a_scan(
        g: &Groups,
        decl: &BTreeMap<GroupKey, DesiredGroup>,
        start: Instant,
    ) {
        let scan: Vec<(GroupKey, Option<Instant>)> = decl
            .keys()
            .map(|k| (k.clone(), g.records.get(k).and_then(|r| r.verified)))
            .collect();
        for k in [1, 2, decl.len()] {
            assert_eq!(
                g.oldest(k, decl),
                crate::daemon::sweep::oldest(scan.clone(), k),
                "the {k} oldest"
            );
        }
        let oldest = scan.iter().map(|(_, t)| t.unwrap_or(start)).min();
        assert_eq!(g.oldest_read(decl, start), oldest);
        let held: Vec<&GroupKey> = g
            .records
            .iter()
            .filter(|(k, r)| held_by_window(r) && decl.contains_key(*k))
            .map(|(k, _)| k)
            .collect();
        let indexed: Vec<&GroupKey> = g.window_held().filter(|k| decl.contains_key(*k)).collect();
        assert_eq!(indexed, held);
    }

    #[test]
    fn the_sweeps_indexes_stay_equal_to_a_scan_after_reads_removals_and_a_folder_change() {
        let keys: Vec<GroupKey> = (0..8).map(|i| sg(&format!("sg-{i}"))).collect();
        let enforced = |ks: &[GroupKey]| -> BTreeMap<GroupKey, DesiredGroup> {
            declared(&ks.iter().map(|k| (k, Mode::Enforce)).collect::<Vec<_>>())
        };
        let decl = enforced(&keys[..6]);
        let none = BTreeMap::new();
        let mut g = groups();
        g.govern(decl.keys());
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_indexes_match_a_scan(&g, &decl, start);

        // sg-3 read first, sg-0..sg-2 later, sg-2 again; sg-4's read fails; sg-5 is never read.
        let in_sync = |k: &GroupKey| result(k, Drop, Outcome::InSync);
        fold_at(
            &mut g,
            vec![run(vec![in_sync(&keys[3])], None)],
            &decl,
            &none,
            at(1),
        );
        let reads = keys[..3].iter().map(in_sync).collect();
        fold_at(&mut g, vec![run(reads, None)], &decl, &none, at(2));
        let again = vec![
            in_sync(&keys[2]),
            unread(&keys[4], 503, "ServiceUnavailable"),
        ];
        fold_at(&mut g, vec![run(again, None)], &decl, &none, at(3));
        // sg-0's correction is held by --max-changes, then read in sync again.
        let max = Hold::MaxChanges { planned: 2, max: 1 };
        let held = result(&keys[0], Accept, Outcome::Held(max));
        fold_at(&mut g, vec![run(vec![held], None)], &decl, &none, at(4));
        assert_indexes_match_a_scan(&g, &decl, start);
        assert_eq!(g.oldest(2, &decl), [keys[4].clone(), keys[5].clone()]);
        fold_at(
            &mut g,
            vec![run(vec![in_sync(&keys[0])], None)],
            &decl,
            &none,
            at(5),
        );
        assert_indexes_match_a_scan(&g, &decl, start);

        // A folder change: sg-1 and sg-3 no longer governed, sg-6 and sg-7 new.
        let changed: Vec<GroupKey> = [0, 2, 4, 5, 6, 7]
            .iter()
            .map(|&i| keys[i].clone())
            .collect();
        let decl = enforced(&changed);
        g.keep_only(|k| decl.contains_key(k), at(6));
        g.govern(decl.keys());
        assert_indexes_match_a_scan(&g, &decl, start);
        let reads = vec![in_sync(&keys[6]), in_sync(&keys[4]), in_sync(&keys[5])];
        fold_at(&mut g, vec![run(reads, None)], &decl, &none, at(7));
        assert_indexes_match_a_scan(&g, &decl, start);
        assert_eq!(g.oldest(1, &decl), [keys[7].clone()], "the one never read");
    }
}
