//! Resolving `selectors:` into groups at pass time: one DescribeSecurityGroups listing per selector
//! (server-side `VpcId` and `Tag.N.Key/Value` filters, `MaxResults`/`NextToken` paging to the end, the
//! name glob applied to each page), then the pure [`decide`] that merges the matches into the desired
//! state. Kept apart from `policy` (which does no I/O) and `plan` (which takes a finished `Desired`).
//!
//! Rules, all in [`decide`]:
//! - An explicit `groups:` entry always wins over any selector for the same (region, id).
//! - Selectors that agree on a group's policy share it (the first by file:line is named as its source;
//!   if any of them says `mode: observe`, the group is observed: the cautious reading).
//! - Selectors that disagree are a conflict for that group: an error note naming every selector's
//!   file:line, and the group is left out of this pass; every other group proceeds.
//! - A selector that matches nothing is a warning note. One whose listing failed is an error note and
//!   its groups are left alone this pass.

use super::failure::Failure;
use crate::accounts::Reach;
use crate::ecs::{Cloud, GroupFilter};
use crate::model::{GroupKey, Location, Mode, Note, NoteLevel, Policy};
use crate::policy::{glob_match, Desired, DesiredGroup, Selector};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet};

/// Pages of 100 listed per selector at most (100,000 groups): a guard against a looping NextToken.
pub(crate) const MAX_PAGES: usize = 1000;

/// What listing one selector's groups produced: the ids it matched, or why it could not be listed.
pub type Listing = Result<Vec<String>, Failure>;

/// Lists every selector's groups and merges them into a copy of `desired`. The second value is an
/// error that should stop the pass for its account (bad credentials, forbidden), if one happened.
pub async fn resolve<C: Cloud>(
    reach: &Reach<C>,
    desired: &Desired,
    concurrency: usize,
) -> (Desired, Option<(String, Failure)>) {
    let mut listings: Vec<(usize, Listing)> = stream::iter(desired.selectors.iter().enumerate())
        .map(|(i, sel)| async move {
            let listing = match reach.client(&sel.account) {
                Ok(client) => list_matching(client, sel).await,
                Err(e) => Err(e.into()),
            };
            (i, listing)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    listings.sort_by_key(|(i, _)| *i);
    let fatal = listings.iter().find_map(|(i, l)| match l {
        Err(e) if e.is_fatal_for_account() => {
            Some((desired.selectors[*i].account.clone(), e.clone()))
        }
        _ => None,
    });
    let listings: Vec<Listing> = listings.into_iter().map(|(_, l)| l).collect();
    (decide(desired, &listings), fatal)
}

/// Every group id of the selector's region that passes its filters, following `NextToken` to the end.
pub async fn list_matching<C: Cloud>(client: &C, sel: &Selector) -> Listing {
    let filter = GroupFilter {
        vpc_id: sel.vpc_id.clone(),
        tags: sel
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let mut ids = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .list_groups(&sel.region, &filter, next_token.as_deref())
            .await?;
        for g in page.groups {
            let name = g.meta.name.as_deref().unwrap_or("");
            if sel.name.as_deref().map_or(true, |p| glob_match(p, name)) {
                ids.push(g.id);
            }
        }
        match page.next_token {
            Some(t) if next_token.as_ref() != Some(&t) => next_token = Some(t),
            _ => return Ok(ids),
        }
    }
    Err(Failure::TooManyPages { pages: MAX_PAGES })
}

/// Pure: merges `listings` (one per selector, same order) into a copy of `desired`, with notes.
pub fn decide(desired: &Desired, listings: &[Listing]) -> Desired {
    let mut out = desired.clone();
    for (key, sels) in claims(desired, listings, &mut out.notes) {
        match claimed(key, sels) {
            Ok(group) => {
                out.groups.insert(group.key.clone(), group);
            }
            Err(conflict) => out.notes.push(conflict),
        }
    }
    out
}

/// The selectors that claim each group no entry declares; a listing that failed or matched nothing
/// is a note instead.
fn claims<'a>(
    desired: &'a Desired,
    listings: &[Listing],
    notes: &mut Vec<Note>,
) -> BTreeMap<GroupKey, Vec<&'a Selector>> {
    let mut claims: BTreeMap<GroupKey, Vec<&Selector>> = BTreeMap::new();
    for (sel, listing) in desired.selectors.iter().zip(listings) {
        match listing {
            Err(e) => notes.push(Note {
                level: NoteLevel::Error,
                message: format!(
                    "selector ({}) could not be resolved, its groups are left alone this pass: {e}",
                    sel.describe()
                ),
                locations: vec![sel.source.clone()],
            }),
            Ok(ids) if ids.is_empty() => notes.push(Note {
                level: NoteLevel::Warning,
                message: format!("selector ({}) matched no security group", sel.describe()),
                locations: vec![sel.source.clone()],
            }),
            Ok(ids) => {
                let unique: BTreeSet<&String> = ids.iter().collect();
                for id in unique {
                    let key = GroupKey::in_account(&*sel.account, &*sel.region, id.clone());
                    if !desired.groups.contains_key(&key) {
                        claims.entry(key).or_default().push(sel);
                    }
                }
            }
        }
    }
    claims
}

/// The group the selectors claiming `key` declare, or the conflict note when they disagree on the
/// policy. Observe wins over enforce; the first selector (by source) is the group's source.
fn claimed(key: GroupKey, mut sels: Vec<&Selector>) -> Result<DesiredGroup, Note> {
    sels.sort_by(|a, b| a.source.cmp(&b.source));
    let policies: BTreeSet<Policy> = sels.iter().map(|s| s.policy).collect();
    if policies.len() > 1 {
        let said: Vec<String> = sels
            .iter()
            .map(|s| format!("{} at {}", s.policy, s.source))
            .collect();
        return Err(Note {
            level: NoteLevel::Error,
            message: format!(
                "conflict: {key} is selected as {}; the group is left alone (declare it by id to decide)",
                said.join(" and as ")
            ),
            locations: sels.iter().map(|s| s.source.clone()).collect::<Vec<Location>>(),
        });
    }
    let first = sels[0];
    let mode = if sels.iter().any(|s| s.mode == Mode::Observe) {
        Mode::Observe
    } else {
        Mode::Enforce
    };
    Ok(DesiredGroup {
        key,
        policy: first.policy,
        source: first.source.clone(),
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(file: &str, line: usize) -> Location {
        Location {
            path: std::path::Path::new(file).into(),
            line,
            column: 5,
        }
    }

    fn sel(line: usize, policy: Policy, mode: Mode) -> Selector {
        Selector {
            account: String::new(),
            region: "cn-a".into(),
            tags: [("env".to_string(), "prod".to_string())].into(),
            vpc_id: None,
            name: None,
            policy,
            mode,
            source: loc("s.yaml", line),
        }
    }

    fn ids(v: &[&str]) -> Listing {
        Ok(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn explicit_ids_win_and_agreeing_selectors_share_a_group() {
        let mut d = Desired {
            selectors: vec![
                sel(7, Policy::Drop, Mode::Enforce),
                sel(3, Policy::Drop, Mode::Observe),
            ],
            ..Desired::default()
        };
        let key = GroupKey::new("cn-a", "sg-explicit");
        d.groups.insert(
            key.clone(),
            DesiredGroup {
                key: key.clone(),
                policy: Policy::Accept,
                source: loc("ids.yaml", 2),
                mode: Mode::Enforce,
            },
        );
        let out = decide(&d, &[ids(&["sg-explicit", "sg-1", "sg-1"]), ids(&["sg-1"])]);
        assert_eq!(out.groups[&key].policy, Policy::Accept, "explicit id wins");
        let g = &out.groups[&GroupKey::new("cn-a", "sg-1")];
        assert_eq!(g.policy, Policy::Drop);
        assert_eq!(
            g.source,
            loc("s.yaml", 3),
            "the first selector by file:line is the source"
        );
        assert_eq!(
            g.mode,
            Mode::Observe,
            "any observe makes the group observed"
        );
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        assert_eq!(out.revision, d.revision);
    }

    #[test]
    fn disagreeing_selectors_are_a_conflict_naming_both_and_other_groups_proceed() {
        let d = Desired {
            selectors: vec![
                sel(3, Policy::Drop, Mode::Enforce),
                sel(9, Policy::Accept, Mode::Enforce),
            ],
            ..Desired::default()
        };
        let out = decide(&d, &[ids(&["sg-both", "sg-only-a"]), ids(&["sg-both"])]);
        assert!(!out.groups.contains_key(&GroupKey::new("cn-a", "sg-both")));
        assert!(out.groups.contains_key(&GroupKey::new("cn-a", "sg-only-a")));
        assert_eq!(out.notes.len(), 1);
        let n = &out.notes[0];
        assert_eq!(n.level, NoteLevel::Error);
        assert!(
            n.message.contains("Drop at s.yaml:3:5") && n.message.contains("Accept at s.yaml:9:5"),
            "{}",
            n.message
        );
        assert_eq!(n.locations, [loc("s.yaml", 3), loc("s.yaml", 9)]);
    }

    #[test]
    fn empty_and_failed_selectors_are_noted() {
        let d = Desired {
            selectors: vec![
                sel(3, Policy::Drop, Mode::Enforce),
                sel(9, Policy::Drop, Mode::Enforce),
            ],
            ..Desired::default()
        };
        let failed = Err(Failure::Ecs(
            crate::ecs::ApiError::transport(
                crate::ecs::api::DESCRIBE_GROUPS,
                "ServiceUnavailable",
                "later",
            )
            .into(),
        ));
        let out = decide(&d, &[ids(&[]), failed]);
        assert!(out.groups.is_empty());
        assert_eq!(out.notes[0].level, NoteLevel::Warning);
        assert!(out.notes[0].message.contains("matched no security group"));
        assert_eq!(out.notes[1].level, NoteLevel::Error);
        assert!(out.notes[1].message.contains("ServiceUnavailable"));
    }
}
