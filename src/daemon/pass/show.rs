//! Publishing the status page's data (`daemon::status`): after every fold, one snapshot of every
//! governed group (its record, its declaration, the folder's revision and commit, the event
//! sources), each group's history entries from the fold's transitions, its isolation effects and
//! the fights, and each pass as it finishes.

use super::fold::{Effect, HoldReason, Record, Told};
use super::results::{GroupState, PassOutcome};
use super::{Runner, State};
use crate::accounts::Fleet;
use crate::daemon::status::{Entry, LastPass, Row, Snapshot, State as Shown};
use crate::daemon::triggers::Trigger;
use crate::model::{GroupKey, Policy};
use crate::reconcile::gate::Hold;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn key_of(k: &GroupKey) -> crate::daemon::status::Key {
    (
        k.account.to_string(),
        k.region.to_string(),
        k.id.to_string(),
    )
}

/// The wall-clock time of `at`.
fn wall(at: Instant, now: (Instant, DateTime<Utc>)) -> DateTime<Utc> {
    let ago = now.0.saturating_duration_since(at);
    now.1 - chrono::Duration::from_std(ago).unwrap_or_default()
}

fn rail(h: &HoldReason) -> &'static str {
    match h {
        HoldReason::Rail(Hold::Open) => "open",
        HoldReason::Rail(Hold::MaxChanges { .. }) => "max-changes",
        HoldReason::Observe => "observe",
        HoldReason::Fight => "fight",
    }
}

/// What the page shows for a record: held drift by its rail; a dry run's drift is drifted.
fn shown(r: Option<&Record>) -> (Shown, Option<&'static str>) {
    match r.map(|r| (r.state, r.hold.as_ref())) {
        None => (Shown::Unknown, None),
        Some((GroupState::InSync, _)) => (Shown::InSync, None),
        Some((GroupState::Drifted, Some(h))) => (Shown::Held, Some(rail(h))),
        Some((GroupState::Drifted, None)) => (Shown::Drifted, None),
        Some((GroupState::Unmanageable | GroupState::Error, _)) => (Shown::Failing, None),
    }
}

/// What the last read found: two policies exist, so an in-sync group has its declaration and a
/// drifted one the other; nothing is claimed for a group that failed or was never read.
fn observed(state: Shown, declared: Policy) -> Option<&'static str> {
    match state {
        Shown::InSync => Some(declared.as_str()),
        Shown::Drifted | Shown::Held => Some(match declared {
            Policy::Accept => Policy::Drop.as_str(),
            Policy::Drop => Policy::Accept.as_str(),
        }),
        Shown::Failing | Shown::Unknown => None,
    }
}

/// A group's isolation as the JSON report shows it: `null` where not checked (never "isolated").
fn isolation(r: Option<&Record>) -> serde_json::Value {
    let verdict = r.and_then(|r| r.isolation.as_ref()).map(|c| &*c.verdict);
    crate::report::isolation::json(verdict)
}

impl<F: Fleet> Runner<F> {
    /// The fold's transitions into each group's history.
    pub(super) fn show_told(&self, told: &[Told]) {
        let now = Utc::now();
        for t in told {
            let (key, e) = match t {
                Told::Corrected {
                    key,
                    from,
                    to,
                    cause,
                    author,
                    ..
                } => (
                    key,
                    Entry {
                        time: now,
                        what: "corrected",
                        detail: format!("{} → {to}", from.map_or("unknown", |p| p.as_str())),
                        changed_by: author.clone(),
                        cause: Some(cause.label()),
                    },
                ),
                Told::Held {
                    key,
                    from,
                    to,
                    reason,
                    author,
                    ..
                } => (
                    key,
                    Entry {
                        time: now,
                        what: "held",
                        detail: format!(
                            "{} → {to} held back ({})",
                            from.map_or("unknown", |p| p.as_str()),
                            rail(reason)
                        ),
                        changed_by: author.clone(),
                        cause: None,
                    },
                ),
            };
            self.board.record(key_of(key), e);
        }
    }

    /// An isolation effect of a fold or a targeted check into the group's history, with the
    /// author of the write that made it when an event named one.
    pub(super) fn show_isolation(&self, effect: &Effect) {
        let (key, what, detail, cause) = match effect {
            Effect::IsolationLost { key, paths, cause } => {
                let sentences: Vec<String> = paths
                    .iter()
                    .map(|p| crate::daemon::reach::lost_sentence(&key.id, p, cause.as_deref()))
                    .collect();
                (key, "isolation-lost", sentences.join("; "), cause)
            }
            Effect::IsolationRestored { key, cause } => {
                let text = crate::daemon::reach::restored_sentence(&key.id, cause.as_deref());
                (key, "isolation-restored", text, cause)
            }
            _ => return,
        };
        self.board.record(
            key_of(key),
            Entry {
                time: Utc::now(),
                what,
                detail,
                changed_by: cause.as_ref().map(|c| Arc::new(c.author.clone())),
                cause: None,
            },
        );
    }

    /// A pass finished: the header's last pass, and a full pass's duration for the promise.
    pub(super) fn show_pass(&self, trigger: Trigger, outcome: PassOutcome, took: Duration) {
        let pass = LastPass {
            time: Utc::now(),
            trigger: trigger.as_str(),
            outcome: outcome.as_str(),
            duration: took,
        };
        self.board
            .pass_finished(pass, trigger.is_full() && outcome.read_the_cloud());
    }

    /// The snapshot of every governed group, and the fights that started or ended.
    pub(super) fn show(&self, st: &State, fights: &[(GroupKey, bool)]) {
        let now = (Instant::now(), Utc::now());
        for (key, started) in fights {
            let undid = st.groups.records.get(key).and_then(|r| r.undid.clone());
            self.board.record(
                key_of(key),
                Entry {
                    time: now.1,
                    what: if *started {
                        "fight-started"
                    } else {
                        "fight-ended"
                    },
                    detail: String::new(),
                    changed_by: if *started { undid } else { None },
                    cause: None,
                },
            );
        }
        let Some(desired) = &st.effective else {
            return;
        };
        let rows = desired
            .groups
            .values()
            .map(|g| {
                let record = st.groups.records.get(&g.key);
                let (state, hold) = shown(record);
                Row {
                    account: g.key.account.to_string(),
                    region: g.key.region.to_string(),
                    id: g.key.id.to_string(),
                    name: record.and_then(|r| r.name.clone()),
                    declared: g.policy.as_str(),
                    observed: observed(state, g.policy),
                    mode: g.mode.as_str(),
                    state,
                    hold,
                    last_verified: record.and_then(|r| r.verified).map(|t| wall(t, now)),
                    last_correction: None,
                    isolation: isolation(record),
                    source: g.source.to_string(),
                }
            })
            .collect();
        // Computed here rather than taken from the gauge's last value: the main lane notes the
        // oldest read only after publishing.
        let oldest = st.groups.oldest_read(&desired.groups, self.started);
        self.board.publish(Snapshot {
            revision: Some(desired.revision.clone()),
            commit: st.folder.commit().map(str::to_string),
            shard: self.setup.shard.to_string(),
            oldest_verification: oldest.map(|t| wall(t, now)),
            interval: self.settings.interval,
            events: Some(self.intake.status.clone()),
            rows,
        });
    }
}
