//! Merging the groups of all files into one desired state, reporting conflicts, and the revision digest.

use super::others::{Others, TooLarge};
use super::{Census, DesiredGroup, LoadError, Selector};
use crate::model::{Account, AccountRef, Bucket, GroupKey, Location, Mode, Policy, SharedStr};
use sha2::{Digest, Sha256};
use std::collections::{btree_map, hash_map};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Adds `group`, keeping the first declaration. A second declaration of the same (region, id) with the
/// same policy is accepted; with a different policy it is a conflict reported at the later location.
///
/// Merged into a hash map, sorted once at the end ([`sorted`]): a BTreeMap filled one insert at a
/// time keeps its nodes about half full, and the memory it once held stays with the process (100,000
/// groups: 26 MB of nodes, against 13 MB built in one go from sorted entries).
pub(crate) fn add(
    groups: &mut HashMap<GroupKey, DesiredGroup>,
    group: DesiredGroup,
    errors: &mut Vec<LoadError>,
) {
    match groups.entry(group.key.clone()) {
        hash_map::Entry::Vacant(slot) => {
            slot.insert(group);
        }
        hash_map::Entry::Occupied(first) => {
            let first = first.get();
            let earlier = (first.policy, first.mode, first.source.clone());
            let later = (group.policy, group.mode);
            if let Some(message) = conflict(&group.key.bucket(), &group.key.id, later, earlier) {
                errors.push(LoadError {
                    message,
                    location: group.source,
                });
            }
        }
    }
}

/// What a second declaration of `id` in `bucket` with (policy, mode) `later` is wrong about, given
/// the first one `earlier` (with its place): `None` when it says the same. One function for the kept
/// map ([`add`]) and for the groups a shard does not keep (`others`), so both report alike.
pub(crate) fn conflict(
    bucket: &Bucket,
    id: &str,
    later: (Policy, Mode),
    earlier: (Policy, Mode, Location),
) -> Option<String> {
    let (policy, mode) = later;
    let (first_policy, first_mode, first_source) = earlier;
    let place = place(bucket);
    if first_policy == policy && first_mode != mode {
        Some(format!(
            "conflict: {id} in {place} is declared with mode {mode} here and {first_mode} at {first_source}"
        ))
    } else if first_policy != policy {
        Some(format!(
            "conflict: {id} in {place} is declared {policy} here and {first_policy} at {first_source}"
        ))
    } else {
        None
    }
}

/// Merges the declarations of every file of a load, keeping the groups and selectors of the buckets
/// `keep` accepts (a shard's) and holding the rest compactly ([`Others`]) until [`Merger::finish`]
/// has found their conflicts, counted them and digested them. With a `keep` that accepts everything,
/// it is [`add`] for every group and one sort at the end, as a whole load always was.
pub(crate) struct Merger<'k> {
    keep: &'k dyn Fn(&str, &str) -> bool,
    kept: HashMap<GroupKey, DesiredGroup>,
    /// Every bucket a group or selector names: kept, or the index of its [`Others`].
    buckets: BTreeMap<Bucket, Slot>,
    others: Vec<Others>,
    /// The files that declared groups held in [`Others`], by the index their rows name.
    paths: Vec<Arc<Path>>,
    /// The last group's bucket and slot: a file's groups mostly share one, and `keep` may hash.
    last: Option<(Bucket, Slot)>,
    selectors: Vec<Selector>,
    /// The revision lines of the selectors not kept.
    other_selectors: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Kept,
    Others(usize),
}

/// What a load keeps of the whole folder, and what every replica computes alike about all of it.
pub(crate) struct Merged {
    pub groups: BTreeMap<GroupKey, DesiredGroup>,
    pub selectors: Vec<Selector>,
    pub revision: String,
    pub census: Census,
}

impl<'k> Merger<'k> {
    pub(crate) fn new(keep: &'k dyn Fn(&str, &str) -> bool) -> Merger<'k> {
        Merger {
            keep,
            kept: HashMap::new(),
            buckets: BTreeMap::new(),
            others: Vec::new(),
            paths: Vec::new(),
            last: None,
            selectors: Vec::new(),
            other_selectors: Vec::new(),
        }
    }

    fn slot(&mut self, account: &SharedStr, region: &SharedStr) -> Slot {
        if let Some((b, slot)) = &self.last {
            if b.account == *account && b.region == *region {
                return *slot;
            }
        }
        let bucket = Bucket {
            account: account.clone(),
            region: region.clone(),
        };
        let slot = match self.buckets.get(&bucket) {
            Some(slot) => *slot,
            None => {
                let slot = if (self.keep)(account, region) {
                    Slot::Kept
                } else {
                    self.others.push(Others::default());
                    Slot::Others(self.others.len() - 1)
                };
                self.buckets.insert(bucket.clone(), slot);
                slot
            }
        };
        self.last = Some((bucket, slot));
        slot
    }

    /// Adds one group: kept as [`add`] does, or held compactly (its conflicts found at the end).
    pub(crate) fn add(&mut self, group: DesiredGroup, errors: &mut Vec<LoadError>) {
        let Slot::Others(i) = self.slot(&group.key.account, &group.key.region) else {
            add(&mut self.kept, group, errors);
            return;
        };
        if self.paths.last() != Some(&group.source.path) {
            self.paths.push(group.source.path.clone());
        }
        let file = u32::try_from(self.paths.len() - 1).unwrap_or(u32::MAX);
        let at = (group.source.line, group.source.column);
        if let Err(TooLarge) =
            self.others[i].push(&group.key.id, group.policy, group.mode, file, at)
        {
            errors.push(LoadError {
                message: "this declaration is past what a shard can index (4 GiB)".to_string(),
                location: group.source,
            });
        }
    }

    /// Adds one file's selectors: kept, or only their revision lines.
    pub(crate) fn add_selectors(&mut self, selectors: Vec<Selector>) {
        for s in selectors {
            let slot = self.slot(&s.account.as_str().into(), &s.region.as_str().into());
            match slot {
                Slot::Kept => self.selectors.push(s),
                Slot::Others(_) => self.other_selectors.push(selector_line(&s)),
            }
        }
    }

    /// The kept groups and selectors, the census and the revision of the whole folder, in one walk
    /// over the buckets in key order; each conflict among the groups not kept goes to `conflicts`.
    ///
    /// The kept groups go through a sorted `Vec` and become a map only after the walk, once every
    /// [`Others`] is dropped: the set-aside rows never coexist with the map being built (at a million
    /// groups over 8 shards that overlap was a shard's peak).
    pub(crate) fn finish(mut self, conflicts: &mut dyn FnMut(LoadError)) -> Merged {
        let mut groups: Vec<(GroupKey, DesiredGroup)> =
            std::mem::take(&mut self.kept).into_iter().collect();
        // Keys are unique here: no stable sort (and no scratch buffer) needed.
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut revision = Revision::default();
        let mut census = Census::default();
        let mut kept = groups.iter().peekable();
        for (bucket, slot) in std::mem::take(&mut self.buckets) {
            let n = match slot {
                Slot::Kept => {
                    let mut n = 0;
                    while let Some((key, g)) = kept
                        .next_if(|(k, _)| k.account == bucket.account && k.region == bucket.region)
                    {
                        revision.group(&key.account, &key.region, &key.id, g.policy, g.mode);
                        n += 1;
                    }
                    n
                }
                Slot::Others(i) => std::mem::take(&mut self.others[i]).settle(
                    &bucket,
                    &self.paths,
                    &mut revision,
                    conflicts,
                ),
            };
            census.buckets.insert(bucket, n);
        }
        debug_assert!(kept.next().is_none(), "every kept group's bucket is known");
        drop(self.others);
        let mut lines = self.other_selectors;
        lines.extend(self.selectors.iter().map(selector_line));
        Merged {
            revision: revision.finish(lines),
            // Already sorted: the map is built in one go, its nodes full.
            groups: groups.into_iter().collect(),
            selectors: self.selectors,
            census,
        }
    }
}

/// The merged groups in key order.
pub(crate) fn sorted(groups: HashMap<GroupKey, DesiredGroup>) -> BTreeMap<GroupKey, DesiredGroup> {
    groups.into_iter().collect()
}

/// "cn-hangzhou", or "cn-hangzhou of account 1234…" for a group of a named account.
fn place(bucket: &Bucket) -> String {
    match Account::of(&bucket.account) {
        Account::Own => bucket.region.to_string(),
        Account::Named(account) => format!("{} of account {account}", bucket.region),
    }
}

/// Records the role a file assumes for its account. Every file naming one account must name the same
/// role and external id: two would make which credentials write a group depend on file order.
pub(crate) fn add_account(
    accounts: &mut BTreeMap<String, (AccountRef, Location)>,
    account: AccountRef,
    at: Location,
    errors: &mut Vec<LoadError>,
) {
    let Ok(id) = account.account_id().map(str::to_string) else {
        return;
    };
    match accounts.entry(id) {
        btree_map::Entry::Vacant(slot) => {
            slot.insert((account, at));
        }
        btree_map::Entry::Occupied(first) => {
            let (known, first_at) = first.get();
            if known.role_arn != account.role_arn {
                errors.push(LoadError {
                    message: format!(
                        "conflict: account {} is assumed through {} here and {} at {first_at}; use one role per account",
                        first.key(),
                        account.role_arn,
                        known.role_arn
                    ),
                    location: at,
                });
            } else if known.external_id != account.external_id {
                errors.push(LoadError {
                    message: format!(
                        "conflict: account {} is given a different externalId here than at {first_at}",
                        first.key()
                    ),
                    location: at,
                });
            }
        }
    }
}

/// The first 12 lowercase hex digits of SHA-256 over `"{region}\t{id}\t{policy}\n"` for every group in
/// (region, id) order: it names the desired state itself, whatever files, order, comments or formatting
/// declared it. The empty state has a revision too (`e3b0c44298fc`). An observe-only group's line
/// ends in `\tobserve` (enforce, the default, adds nothing, so older revisions keep their value), and a
/// group of a named account starts with `{account}\t` (the role used to reach it is not part of it).
pub fn revision_of(groups: &BTreeMap<GroupKey, DesiredGroup>) -> String {
    revision_with_selectors(groups, &[])
}

/// [`revision_of`], followed by one line per selector when there are any:
/// `"selector\t{region}\t{tags k=v,…}\t{vpcId}\t{name}\t{policy}\t{mode}\n"`, in a sorted order, so the
/// revision names what the files declare (the groups a selector matches are the cloud's business).
pub(crate) fn revision_with_selectors(
    groups: &BTreeMap<GroupKey, DesiredGroup>,
    selectors: &[Selector],
) -> String {
    let mut revision = Revision::default();
    for (key, group) in groups {
        revision.group(&key.account, &key.region, &key.id, group.policy, group.mode);
    }
    revision.finish(selectors.iter().map(selector_line).collect())
}

/// The revision digest fed one group at a time, in key order: a load digests the groups it keeps and
/// the ones it does not (`others`) in one ordered walk, without holding every group at once.
#[derive(Default)]
pub(crate) struct Revision(Sha256);

impl Revision {
    /// The line of one group (see [`revision_of`]); groups must come in (account, region, id) order.
    pub(crate) fn group(
        &mut self,
        account: &str,
        region: &str,
        id: &str,
        policy: Policy,
        mode: Mode,
    ) {
        if let Account::Named(a) = Account::of(account) {
            self.0.update(a.as_bytes());
            self.0.update(b"\t");
        }
        for part in [region, "\t", id, "\t", policy.as_str()] {
            self.0.update(part.as_bytes());
        }
        if mode == Mode::Observe {
            self.0.update(b"\tobserve");
        }
        self.0.update(b"\n");
    }

    /// The digest, after the selectors' lines (any order: they are sorted and deduplicated here).
    pub(crate) fn finish(mut self, mut selector_lines: Vec<String>) -> String {
        selector_lines.sort();
        selector_lines.dedup();
        for line in selector_lines {
            self.0.update(line.as_bytes());
        }
        self.0
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// One selector's line of the revision (see [`revision_with_selectors`]).
pub(crate) fn selector_line(s: &Selector) -> String {
    let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let account = match Account::of(&s.account) {
        Account::Own => String::new(),
        Account::Named(a) => format!("\t{a}"),
    };
    format!(
        "selector{account}\t{}\t{}\t{}\t{}\t{}\t{}\n",
        s.region,
        tags.join(","),
        s.vpc_id.as_deref().unwrap_or(""),
        s.name.as_deref().unwrap_or(""),
        s.policy,
        s.mode
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Policy};

    fn group(region: &str, id: &str, policy: Policy, line: usize) -> DesiredGroup {
        DesiredGroup {
            key: GroupKey::new(region, id),
            policy,
            source: Location {
                path: std::path::Path::new("p.yaml").into(),
                line,
                column: 5,
            },
            mode: Mode::Enforce,
        }
    }

    #[test]
    fn revision_is_the_documented_digest() {
        assert_eq!(revision_of(&BTreeMap::new()), "e3b0c44298fc");
        let mut groups = HashMap::new();
        let mut errors = Vec::new();
        add(
            &mut groups,
            group("cn-b", "sg-2", Policy::Accept, 1),
            &mut errors,
        );
        add(
            &mut groups,
            group("cn-a", "sg-1", Policy::Drop, 2),
            &mut errors,
        );
        let expected = Sha256::digest(b"cn-a\tsg-1\tDrop\ncn-b\tsg-2\tAccept\n");
        let hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(revision_of(&sorted(groups)), hex[..12]);
        assert!(errors.is_empty());
    }

    #[test]
    fn same_policy_keeps_the_first_and_different_policy_conflicts() {
        let mut groups = HashMap::new();
        let mut errors = Vec::new();
        add(&mut groups, group("r", "sg", Policy::Drop, 1), &mut errors);
        add(&mut groups, group("r", "sg", Policy::Drop, 2), &mut errors);
        assert!(errors.is_empty());
        assert_eq!(groups[&GroupKey::new("r", "sg")].source.line, 1);
        add(
            &mut groups,
            group("r", "sg", Policy::Accept, 3),
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "p.yaml:3:5: conflict: sg in r is declared Accept here and Drop at p.yaml:1:5"
        );
        // The same id in another region is another group.
        add(
            &mut groups,
            group("r2", "sg", Policy::Accept, 4),
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(groups.len(), 2);
    }
}
