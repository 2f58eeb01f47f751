//! The pure decision: given what the folder asks for and what the cloud reported, what does each
//! group need? No async, no clock, no I/O — so every rule here is tested with plain values.

use crate::failure::Failure;
use crate::model::{GroupKey, GroupMeta, Location, Mode, Policy};
use crate::policy::DesiredGroup;

/// One group as the cloud reported it in this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Found {
        policy: Policy,
        meta: GroupMeta,
    },
    NotFound,
    /// The read failed even after retries; the group is left alone this pass. The failure stays
    /// typed all the way to the report and the daemon: whether it blames this one group or the cloud
    /// (which the daemon answers with unreadiness and a backed-off retry) is
    /// [`Failure::is_cloud_trouble`], never a code string.
    Failed(Failure),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    InSync,
    Change {
        from: Policy,
        to: Policy,
    },
    /// Differs from the declaration but ECS refuses writes to it: an error the user must resolve.
    Unmanageable {
        reason: String,
    },
    NotFound,
    /// The read failed ([`Failure::NotObserved`] when it was never made or answered).
    ReadFailed(Failure),
}

impl Action {
    /// Whether this group makes the run fail (exit 1) even though others are reconciled.
    pub fn is_error(&self) -> bool {
        !matches!(self, Action::InSync | Action::Change { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    pub key: GroupKey,
    pub desired: Policy,
    pub observed: Option<Policy>,
    pub source: Location,
    pub action: Action,
    /// `Observe`: a `Change` here is reported, never written.
    pub mode: Mode,
    /// The group's name as the listing returned it, when it has one (the status page shows it;
    /// untrusted text, escaped where printed).
    pub name: Option<String>,
}

impl PlanEntry {
    /// A change that would weaken isolation (Drop → Accept).
    pub fn opens(&self) -> bool {
        matches!(
            self.action,
            Action::Change {
                from: Policy::Drop,
                to: Policy::Accept
            }
        )
    }

    /// A change an apply would write: enforced, not merely observed.
    pub fn is_enforced_change(&self) -> bool {
        matches!(self.action, Action::Change { .. }) && self.mode == Mode::Enforce
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub revision: String,
    pub entries: Vec<PlanEntry>,
}

impl Plan {
    pub fn changes(&self) -> impl Iterator<Item = &PlanEntry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Change { .. }))
    }
}

/// What `d` needs, given what the cloud reported about it (`None`: nothing, the group was not read).
/// A pass plans each group as its read arrives, so there is no whole-pass map of observations.
pub fn entry(d: &DesiredGroup, observed: Option<&Observation>) -> PlanEntry {
    let name = match observed {
        Some(Observation::Found { meta, .. }) => meta.name.clone(),
        _ => None,
    };
    let (observed_policy, action) = match observed {
        None => (None, Action::ReadFailed(Failure::NotObserved)),
        Some(Observation::NotFound) => (None, Action::NotFound),
        Some(Observation::Failed(failure)) => (None, Action::ReadFailed(failure.clone())),
        Some(Observation::Found { policy, meta }) => {
            let action = if *policy == d.policy {
                Action::InSync
            } else if let Some(reason) = meta.unmanageable_reason() {
                Action::Unmanageable { reason }
            } else {
                Action::Change {
                    from: *policy,
                    to: d.policy,
                }
            };
            (Some(*policy), action)
        }
    };
    PlanEntry {
        key: d.key.clone(),
        desired: d.policy,
        observed: observed_policy,
        source: d.source.clone(),
        action,
        mode: d.mode,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Desired;
    use std::collections::BTreeMap;

    fn desired(groups: &[(&str, Policy)]) -> Desired {
        let mut d = Desired {
            revision: "abc".into(),
            ..Desired::default()
        };
        for (i, (id, p)) in groups.iter().enumerate() {
            let key = GroupKey::new("cn-hangzhou", *id);
            d.groups.insert(
                key.clone(),
                DesiredGroup {
                    key,
                    policy: *p,
                    source: Location {
                        path: std::path::Path::new("p.yaml").into(),
                        line: i + 3,
                        column: 5,
                    },
                    mode: crate::model::Mode::Enforce,
                },
            );
        }
        d
    }

    type Observed = BTreeMap<GroupKey, Observation>;

    /// Every declared group planned from `observed`, as a pass does group by group.
    fn plan(desired: &Desired, observed: &Observed) -> Plan {
        Plan {
            revision: desired.revision.clone(),
            entries: desired
                .groups
                .values()
                .map(|d| entry(d, observed.get(&d.key)))
                .collect(),
        }
    }

    fn found(p: Policy) -> Observation {
        Observation::Found {
            policy: p,
            meta: GroupMeta::default(),
        }
    }

    fn action_of<'a>(plan: &'a Plan, id: &str) -> &'a Action {
        &plan
            .entries
            .iter()
            .find(|e| e.key.id == id)
            .expect("entry")
            .action
    }

    #[test]
    fn matching_group_is_in_sync_and_drifted_group_is_a_change() {
        let d = desired(&[("sg-a", Policy::Drop), ("sg-b", Policy::Drop)]);
        let mut o = Observed::new();
        o.insert(GroupKey::new("cn-hangzhou", "sg-a"), found(Policy::Drop));
        o.insert(GroupKey::new("cn-hangzhou", "sg-b"), found(Policy::Accept));
        let p = plan(&d, &o);
        assert_eq!(action_of(&p, "sg-a"), &Action::InSync);
        assert_eq!(
            action_of(&p, "sg-b"),
            &Action::Change {
                from: Policy::Accept,
                to: Policy::Drop
            }
        );
        assert_eq!(p.changes().count(), 1);
        assert_eq!(p.revision, "abc");
    }

    #[test]
    fn drifted_enterprise_or_managed_group_is_unmanageable_not_a_change() {
        let d = desired(&[("sg-e", Policy::Drop), ("sg-m", Policy::Drop)]);
        let mut o = Observed::new();
        o.insert(
            GroupKey::new("cn-hangzhou", "sg-e"),
            Observation::Found {
                policy: Policy::Accept,
                meta: GroupMeta {
                    enterprise: true,
                    ..GroupMeta::default()
                },
            },
        );
        o.insert(
            GroupKey::new("cn-hangzhou", "sg-m"),
            Observation::Found {
                policy: Policy::Accept,
                meta: GroupMeta {
                    service_managed: true,
                    service_id: Some("1679259531804325".into()),
                    ..GroupMeta::default()
                },
            },
        );
        let p = plan(&d, &o);
        assert_eq!(p.changes().count(), 0);
        assert!(
            matches!(action_of(&p, "sg-e"), Action::Unmanageable { reason } if reason.contains("enterprise"))
        );
        assert!(
            matches!(action_of(&p, "sg-m"), Action::Unmanageable { reason } if reason.contains("1679259531804325"))
        );
        assert!(action_of(&p, "sg-m").is_error());
    }

    #[test]
    fn unmanageable_group_that_already_matches_is_in_sync() {
        let d = desired(&[("sg-e", Policy::Accept)]);
        let mut o = Observed::new();
        o.insert(
            GroupKey::new("cn-hangzhou", "sg-e"),
            Observation::Found {
                policy: Policy::Accept,
                meta: GroupMeta {
                    enterprise: true,
                    ..GroupMeta::default()
                },
            },
        );
        assert_eq!(action_of(&plan(&d, &o), "sg-e"), &Action::InSync);
    }

    #[test]
    fn missing_and_unreadable_groups_are_errors_without_writes() {
        let d = desired(&[
            ("sg-x", Policy::Drop),
            ("sg-y", Policy::Drop),
            ("sg-z", Policy::Drop),
        ]);
        let mut o = Observed::new();
        o.insert(GroupKey::new("cn-hangzhou", "sg-x"), Observation::NotFound);
        o.insert(
            GroupKey::new("cn-hangzhou", "sg-y"),
            Observation::Failed(Failure::Ecs(crate::ecs::EcsError::Api(
                crate::ecs::ApiError {
                    action: crate::ecs::api::DESCRIBE_ATTRIBUTE,
                    status: Some(503),
                    code: "ServiceUnavailable".into(),
                    message: "try later".into(),
                    request_id: None,
                    retry_after_ms: None,
                },
            ))),
        );
        let p = plan(&d, &o);
        assert_eq!(action_of(&p, "sg-x"), &Action::NotFound);
        assert!(
            matches!(action_of(&p, "sg-y"), Action::ReadFailed(f) if f.code() == "ServiceUnavailable" && f.is_cloud_trouble())
        );
        assert!(matches!(
            action_of(&p, "sg-z"),
            Action::ReadFailed(Failure::NotObserved)
        ));
        assert_eq!(p.changes().count(), 0);
        assert!(p.entries.iter().all(|e| e.action.is_error()));
    }
}
