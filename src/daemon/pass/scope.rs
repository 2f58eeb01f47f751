//! Which groups a pass is about. Explicit `groups:` entries come from the folder; groups matched by
//! `selectors:` need a DescribeSecurityGroups listing. The listing is made again on full passes, when
//! the selectors changed, or when an explicit group was removed (it may now fall under a selector); a
//! file pass otherwise reuses the last listing, so a one-line edit does not list every selector.

use super::Runner;
use crate::accounts::Fleet;
use crate::model::{GroupKey, NoteLevel};
use crate::policy::{Desired, DesiredGroup, Selector};
use crate::reconcile::Failure;
use std::collections::{BTreeMap, BTreeSet};

/// The main lane's memory of its last selector listing. Only the main lane touches it (one pass at a
/// time), so it is kept apart from the state both lanes share: resolving selectors holds this across
/// the network, never that.
#[derive(Default)]
pub(super) struct Selection {
    /// The last listing's groups (explicit entries excluded).
    groups: BTreeMap<GroupKey, DesiredGroup>,
    /// The selectors that listing was made for, and the explicit entries beside them.
    selectors: Vec<Selector>,
    explicit: BTreeSet<GroupKey>,
}

/// The same selectors in the same order, perhaps declared on other lines.
fn same_but_for_places(old: &[Selector], new: &[Selector]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(o, n)| {
            Selector {
                source: n.source.clone(),
                ..o.clone()
            } == *n
        })
}

impl<F: Fleet> Runner<F> {
    /// The desired state with selectors resolved into groups (and no selectors left), or the error
    /// that stops the pass (credentials, permission).
    pub(super) async fn effective(
        &self,
        sel: &mut Selection,
        desired: &Desired,
        full: bool,
    ) -> Result<Desired, Failure> {
        let mut out = Desired {
            groups: desired.groups.clone(),
            revision: desired.revision.clone(),
            files: desired.files,
            selectors: Vec::new(),
            notes: Vec::new(),
            accounts: desired.accounts.clone(),
        };
        if desired.selectors.is_empty() {
            sel.groups.clear();
            sel.selectors.clear();
            sel.explicit = desired.groups.keys().cloned().collect();
            return Ok(out);
        }
        let removed = sel.explicit.iter().any(|k| !desired.groups.contains_key(k));
        if !full && !removed && same_but_for_places(&sel.selectors, &desired.selectors) {
            // Lines moved (an edit above a selector): the listing still holds; only file:line changes.
            for g in sel.groups.values_mut() {
                if let Some(i) = sel.selectors.iter().position(|s| s.source == g.source) {
                    g.source = desired.selectors[i].source.clone();
                }
            }
            sel.selectors = desired.selectors.clone();
        }
        if full || removed || desired.selectors != sel.selectors {
            let accounts = desired.selectors.iter().map(|s| s.account.as_str());
            let reach = self
                .fleet
                .reach_accounts(accounts.collect(), &desired.accounts)
                .await;
            let (resolved, fatal) =
                crate::reconcile::selectors::resolve(&reach, desired, self.setup.pass.concurrency)
                    .await;
            if let Some((_, e)) = fatal {
                return Err(e);
            }
            for note in &resolved.notes {
                let at: Vec<String> = note.locations.iter().map(|l| l.to_string()).collect();
                match note.level {
                    NoteLevel::Warning => tracing::warn!("{}: {}", at.join(", "), note.message),
                    NoteLevel::Error => tracing::error!("{}: {}", at.join(", "), note.message),
                }
            }
            sel.groups = resolved
                .groups
                .into_iter()
                .filter(|(k, _)| !desired.groups.contains_key(k))
                .collect();
            sel.selectors = desired.selectors.clone();
        }
        sel.explicit = desired.groups.keys().cloned().collect();
        for (k, g) in &sel.groups {
            out.groups.entry(k.clone()).or_insert_with(|| g.clone());
        }
        Ok(out)
    }
}
