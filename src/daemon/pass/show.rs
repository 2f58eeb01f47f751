//! Publishing the status page's data (`daemon::status`): after every fold, one snapshot of every
//! governed group (its record, its declaration, the folder's revision and commit, the event
//! sources), and each group's history entries from the fold's transitions and the fights.

use super::fold::{HoldReason, Record, Told};
use super::results::GroupState;
use super::{Runner, State};
use crate::accounts::Fleet;
use crate::daemon::status::{Entry, Row, Snapshot, State as Shown};
use crate::events::status::Availability;
use crate::events::Via;
use crate::model::{GroupKey, Policy};
use crate::reconcile::gate::Hold;
use chrono::{DateTime, Utc};
use std::time::Instant;

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

fn availability(a: Availability) -> String {
    match a {
        Availability::Off => "off".into(),
        Availability::Ok => "ok".into(),
        Availability::Unavailable(why) => format!("unavailable: {why}"),
    }
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
                    declared: g.policy.as_str(),
                    observed: observed(state, g.policy),
                    mode: g.mode.as_str(),
                    state,
                    hold,
                    last_verified: record.and_then(|r| r.verified).map(|t| wall(t, now)),
                    last_correction: None,
                    // The daemon does not check isolation yet: `null`, as the report says "not
                    // checked" (never "isolated").
                    isolation: serde_json::Value::Null,
                    source: g.source.to_string(),
                }
            })
            .collect();
        let oldest = *self.oldest_read.lock().unwrap_or_else(|e| e.into_inner());
        self.board.publish(Snapshot {
            revision: Some(desired.revision.clone()),
            commit: st.folder.commit().map(str::to_string),
            shard: self.setup.shard.to_string(),
            last_pass: Some(now.1),
            oldest_verification: oldest.map(|t| wall(t, now)),
            events: [Via::Pull, Via::Push]
                .into_iter()
                .map(|v| (v.label(), availability(self.intake.status.availability(v))))
                .collect(),
            rows,
        });
    }
}
