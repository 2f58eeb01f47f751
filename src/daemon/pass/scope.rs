//! Which groups a pass is about. Explicit `groups:` entries come from the folder; groups matched by
//! `selectors:` need a DescribeSecurityGroups listing. The listing is made again on full passes, when
//! the selectors changed, or when an explicit group was removed (it may now fall under a selector); a
//! file pass otherwise reuses the last listing, so a one-line edit does not list every selector.

use super::{Runner, State};
use crate::model::NoteLevel;
use crate::policy::{Desired, Selector};
use crate::reconcile::Failure;

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

impl Runner {
    /// The desired state with selectors resolved into groups (and no selectors left), or the error
    /// that stops the pass (credentials, permission).
    pub(super) async fn effective(
        &self,
        st: &mut State,
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
            st.selector_groups.clear();
            st.last_selectors.clear();
            st.last_explicit = desired.groups.keys().cloned().collect();
            return Ok(out);
        }
        let removed = st
            .last_explicit
            .iter()
            .any(|k| !desired.groups.contains_key(k));
        if !full && !removed && same_but_for_places(&st.last_selectors, &desired.selectors) {
            // Lines moved (an edit above a selector): the listing still holds; only file:line changes.
            for g in st.selector_groups.values_mut() {
                if let Some(i) = st.last_selectors.iter().position(|s| s.source == g.source) {
                    g.source = desired.selectors[i].source.clone();
                }
            }
            st.last_selectors = desired.selectors.clone();
        }
        if full || removed || desired.selectors != st.last_selectors {
            let accounts = desired.selectors.iter().map(|s| s.account.as_str());
            let reach = self.clients.reach(accounts, &desired.accounts).await;
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
            st.selector_groups = resolved
                .groups
                .into_iter()
                .filter(|(k, _)| !desired.groups.contains_key(k))
                .collect();
            st.last_selectors = desired.selectors.clone();
        }
        st.last_explicit = desired.groups.keys().cloned().collect();
        for (k, g) in &st.selector_groups {
            out.groups.entry(k.clone()).or_insert_with(|| g.clone());
        }
        Ok(out)
    }
}
