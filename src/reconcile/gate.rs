//! Safety rails between the plan and the writes: a cap on how many groups one pass may change
//! (`--max-changes`) and an explicit opt-in for changes that open a group (`--allow-open`). Pure: it
//! decides from the plan alone which enforced changes are held back, so the rule is tested with values.
//!
//! Why these defaults:
//! - Many GitOps incidents are one bad merge flipping everything. A pass whose plan has more enforced
//!   changes than the cap (default [`DEFAULT_MAX_CHANGES`]) writes *none* of them and fails, saying how
//!   many it would have made; a deliberate large rollout passes a larger `--max-changes`.
//! - Drop → Accept lets every member of a group reach every other: it weakens isolation. In apply mode
//!   such a change is held (an error for the exit code, the group named) unless `--allow-open` is given;
//!   a dry run shows it, flagged "opens". Accept → Drop ("isolates") needs no opt-in.
//! - Observe-only groups are never written, so they count toward neither rule.

use crate::model::{GroupKey, Note, NoteLevel};
use crate::plan::{Plan, PlanEntry};
use std::collections::BTreeMap;

/// Most enforced changes one pass may write unless `--max-changes` says otherwise.
pub const DEFAULT_MAX_CHANGES: usize = 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rails {
    /// `None`: no cap (library callers that gate elsewhere).
    pub max_changes: Option<usize>,
    pub allow_open: bool,
}

impl Default for Rails {
    fn default() -> Self {
        Rails {
            max_changes: Some(DEFAULT_MAX_CHANGES),
            allow_open: false,
        }
    }
}

/// Why a planned change was not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Drop → Accept without `--allow-open`.
    Open,
    /// The pass planned `planned` enforced changes, more than `max`.
    MaxChanges { planned: usize, max: usize },
}

impl Hold {
    pub fn code(&self) -> &'static str {
        match self {
            Hold::Open => "OpenNotAllowed",
            Hold::MaxChanges { .. } => "MaxChangesExceeded",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Hold::Open => "not applied: this change opens the group (Drop -> Accept, weakening isolation); re-run with --allow-open to apply it".into(),
            Hold::MaxChanges { planned, max } => format!(
                "not applied: the pass would have made {planned} changes, more than --max-changes {max}; nothing was written"
            ),
        }
    }
}

/// The decision for one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    held: BTreeMap<GroupKey, Hold>,
    /// `(planned, max)` when the cap was exceeded.
    pub exceeded: Option<(usize, usize)>,
    /// Enforced changes that open a group.
    pub opens: usize,
}

impl Gate {
    /// Why this entry's change must not be written, if it must not.
    pub fn hold(&self, entry: &PlanEntry) -> Option<&Hold> {
        self.held.get(&entry.key)
    }

    /// Pass-level notes: errors when an apply held writes back, warnings for what a dry run shows.
    pub fn notes(&self, dry_run: bool, rails: &Rails) -> Vec<Note> {
        let mut notes = Vec::new();
        if let Some((planned, max)) = self.exceeded {
            notes.push(Note {
                level: if dry_run { NoteLevel::Warning } else { NoteLevel::Error },
                message: if dry_run {
                    format!("an apply would refuse this plan: {planned} changes is more than --max-changes {max}")
                } else {
                    format!("refused to apply: the plan has {planned} changes, more than --max-changes {max}; nothing was written (pass a larger --max-changes if this is intended)")
                },
                locations: Vec::new(),
            });
        }
        if self.opens > 0 && !rails.allow_open && (dry_run || self.exceeded.is_none()) {
            let n = self.opens;
            notes.push(Note {
                level: if dry_run { NoteLevel::Warning } else { NoteLevel::Error },
                message: if dry_run {
                    format!("{n} change(s) would open a group (Drop -> Accept); an apply needs --allow-open for them")
                } else {
                    format!("{n} change(s) that open a group (Drop -> Accept) were not applied: pass --allow-open to apply them")
                },
                locations: Vec::new(),
            });
        }
        notes
    }
}

/// Decides which enforced changes of `plan` are held back.
pub fn gate(plan: &Plan, rails: &Rails) -> Gate {
    let enforced: Vec<&PlanEntry> = plan
        .entries
        .iter()
        .filter(|e| e.is_enforced_change())
        .collect();
    let opens = enforced.iter().filter(|e| e.opens()).count();
    let mut g = Gate {
        opens,
        ..Gate::default()
    };
    match rails.max_changes {
        Some(max) if enforced.len() > max => {
            let hold = Hold::MaxChanges {
                planned: enforced.len(),
                max,
            };
            g.exceeded = Some((enforced.len(), max));
            for e in enforced {
                g.held.insert(e.key.clone(), hold.clone());
            }
        }
        _ if !rails.allow_open => {
            for e in enforced.into_iter().filter(|e| e.opens()) {
                g.held.insert(e.key.clone(), Hold::Open);
            }
        }
        _ => {}
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Mode, Policy};
    use crate::plan::Action;

    fn entry(id: &str, from: Policy, to: Policy, mode: Mode) -> PlanEntry {
        PlanEntry {
            key: GroupKey::new("cn-a", id),
            desired: to,
            observed: Some(from),
            source: Location {
                path: std::path::Path::new("p.yaml").into(),
                line: 1,
                column: 1,
            },
            action: if from == to {
                Action::InSync
            } else {
                Action::Change { from, to }
            },
            mode,
            name: None,
        }
    }

    fn plan(entries: Vec<PlanEntry>) -> Plan {
        Plan {
            revision: "r".into(),
            entries,
        }
    }

    use Policy::{Accept, Drop};

    #[test]
    fn opens_are_held_without_allow_open_and_isolations_are_not() {
        let p = plan(vec![
            entry("open", Drop, Accept, Mode::Enforce),
            entry("isolate", Accept, Drop, Mode::Enforce),
            entry("watched", Drop, Accept, Mode::Observe),
        ]);
        let g = gate(&p, &Rails::default());
        assert_eq!(g.hold(&p.entries[0]), Some(&Hold::Open));
        assert_eq!(g.hold(&p.entries[1]), None);
        assert_eq!(
            g.hold(&p.entries[2]),
            None,
            "observe entries are never written anyway"
        );
        assert_eq!(g.opens, 1);
        let allowed = gate(
            &p,
            &Rails {
                allow_open: true,
                ..Rails::default()
            },
        );
        assert_eq!(allowed.hold(&p.entries[0]), None);
        assert!(allowed
            .notes(
                false,
                &Rails {
                    allow_open: true,
                    ..Rails::default()
                }
            )
            .is_empty());
        let notes = g.notes(false, &Rails::default());
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].level, NoteLevel::Error);
        assert!(notes[0].message.contains("--allow-open"));
        assert_eq!(
            g.notes(true, &Rails::default())[0].level,
            NoteLevel::Warning
        );
    }

    #[test]
    fn more_changes_than_the_cap_holds_every_one_and_observe_does_not_count() {
        let mut entries: Vec<PlanEntry> = (0..3)
            .map(|i| entry(&format!("g{i}"), Accept, Drop, Mode::Enforce))
            .collect();
        entries.push(entry("watched", Accept, Drop, Mode::Observe));
        entries.push(entry("same", Drop, Drop, Mode::Enforce));
        let p = plan(entries);
        let at_cap = gate(
            &p,
            &Rails {
                max_changes: Some(3),
                allow_open: false,
            },
        );
        assert_eq!(at_cap.exceeded, None, "exactly N changes is allowed");
        let over = gate(
            &p,
            &Rails {
                max_changes: Some(2),
                allow_open: true,
            },
        );
        assert_eq!(over.exceeded, Some((3, 2)));
        for e in &p.entries[..3] {
            assert_eq!(over.hold(e), Some(&Hold::MaxChanges { planned: 3, max: 2 }));
        }
        assert_eq!(over.hold(&p.entries[3]), None);
        let note = &over.notes(false, &Rails::default())[0];
        assert!(
            note.message.contains("3 changes") && note.message.contains("--max-changes 2"),
            "{note:?}"
        );
        assert!(gate(
            &p,
            &Rails {
                max_changes: None,
                allow_open: false
            }
        )
        .exceeded
        .is_none());
    }
}
