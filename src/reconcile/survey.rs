//! Coverage: which security groups of the (account, region)s a policy folder names are governed by no
//! `groups:` entry and no selector. One paged DescribeSecurityGroups listing per (account, region)
//! ([`list_all`], 100 groups a page), then the pure [`ungoverned`], which checks every listed group
//! against the declarations with the same rules a pass resolves selectors with (tags, VPC, name glob).
//!
//! Groups ECS would refuse to change (enterprise-level, managed by a cloud service) are never
//! "ungoverned": no policy file can govern them, and `sgpolicy import` writes them as comments.
//! A listing that fails leaves its (account, region) unknown: a note says so (an error when coverage
//! is required, `--fail-on-ungoverned`), and the other (account, region)s are still reported.

use super::failure::Failure;
use super::selectors::MAX_PAGES;
use super::PassReport;
use crate::accounts::{Clients, Reach};
use crate::ecs::client::CallStats;
use crate::ecs::{Cloud, GroupFilter, ListedGroup};
use crate::model::{Bucket, GroupKey, Note, NoteLevel};
use crate::policy::{glob_match, Desired, Selector};
use futures::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Every group of `region` that passes the server-side `filter`, following `NextToken` to the end.
pub async fn list_all<C: Cloud>(
    client: &C,
    region: &str,
    filter: &GroupFilter,
) -> Result<Vec<ListedGroup>, Failure> {
    let mut groups = Vec::new();
    let mut next_token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = client
            .list_groups(region, filter, next_token.as_deref())
            .await?;
        groups.extend(page.groups);
        match page.next_token {
            Some(t) if next_token.as_ref() != Some(&t) => next_token = Some(t),
            _ => return Ok(groups),
        }
    }
    Err(Failure::TooManyPages { pages: MAX_PAGES })
}

/// A group that exists but that no declaration governs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ungoverned {
    pub key: GroupKey,
    pub name: Option<String>,
    pub vpc_id: Option<String>,
}

/// One (account, region): how many groups the listing returned and which are ungoverned, or why it
/// could not be listed.
#[derive(Clone, Debug)]
pub struct BucketCoverage {
    pub bucket: Bucket,
    pub listed: usize,
    pub result: Result<Vec<Ungoverned>, Failure>,
}

/// The coverage of every (account, region) the folder names, in (account, region) order.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub buckets: Vec<BucketCoverage>,
    /// `--fail-on-ungoverned`: an ungoverned group, or a listing that failed, is an error.
    pub required: bool,
}

/// "14 groups in cn-hangzhou are governed by no policy file" (`place` as `GroupKey::place` shows it).
pub fn sentence(n: usize, place: &str) -> String {
    match n {
        1 => format!("1 group in {place} is governed by no policy file"),
        n => format!("{n} groups in {place} are governed by no policy file"),
    }
}

/// `cn-hangzhou`, or `2222222222222222/cn-hangzhou` for a named account.
pub fn place(bucket: &Bucket) -> String {
    GroupKey::in_account(bucket.account.clone(), bucket.region.clone(), "").place()
}

impl Coverage {
    /// Every ungoverned group, by (account, region, id).
    pub fn ungoverned(&self) -> impl Iterator<Item = &Ungoverned> {
        self.buckets
            .iter()
            .filter_map(|b| b.result.as_ref().ok())
            .flatten()
    }

    pub fn count(&self) -> usize {
        self.ungoverned().count()
    }

    /// What the report says besides the list: listings that failed (warnings, errors when coverage is
    /// required) and, when it is required, one error per (account, region) with ungoverned groups.
    pub fn notes(&self) -> Vec<Note> {
        let mut notes = Vec::new();
        for b in &self.buckets {
            match &b.result {
                Err(e) => notes.push(Note {
                    level: if self.required {
                        NoteLevel::Error
                    } else {
                        NoteLevel::Warning
                    },
                    message: format!(
                        "coverage of {} is unknown: listing its security groups failed: {e}",
                        place(&b.bucket)
                    ),
                    locations: Vec::new(),
                }),
                Ok(groups) if self.required && !groups.is_empty() => notes.push(Note {
                    level: NoteLevel::Error,
                    message: format!(
                        "{} (--fail-on-ungoverned); declare them, or import them with `sgpolicy import`",
                        sentence(groups.len(), &place(&b.bucket))
                    ),
                    locations: Vec::new(),
                }),
                Ok(_) => {}
            }
        }
        notes
    }
}

/// The (account, region)s a folder names: those of its groups and of its selectors.
pub fn buckets(desired: &Desired) -> BTreeSet<Bucket> {
    desired
        .groups
        .keys()
        .map(GroupKey::bucket)
        .chain(desired.selectors.iter().map(|s| Bucket {
            account: s.account.as_str().into(),
            region: s.region.as_str().into(),
        }))
        .collect()
}

/// Whether `sel` matches `group` (the caller checks the account and region): every tag, the VPC and
/// the name glob, as a pass resolves it.
pub fn selector_matches(sel: &Selector, group: &ListedGroup) -> bool {
    sel.tags.iter().all(|(k, v)| group.tags.get(k) == Some(v))
        && sel
            .vpc_id
            .as_ref()
            .map_or(true, |v| group.meta.vpc_id.as_ref() == Some(v))
        && sel.name.as_deref().map_or(true, |p| {
            glob_match(p, group.meta.name.as_deref().unwrap_or(""))
        })
}

/// Pure: the groups of `listed` (the whole of `bucket`) that no entry or selector of `desired`
/// governs, by id. Groups that cannot be managed are left out.
pub fn ungoverned(desired: &Desired, bucket: &Bucket, listed: &[ListedGroup]) -> Vec<Ungoverned> {
    let selectors: Vec<&Selector> = desired
        .selectors
        .iter()
        .filter(|s| *s.account == *bucket.account && *s.region == *bucket.region)
        .collect();
    let mut out: Vec<Ungoverned> = listed
        .iter()
        .filter(|g| g.meta.unmanageable_reason().is_none())
        .filter_map(|g| {
            let key =
                GroupKey::in_account(bucket.account.clone(), bucket.region.clone(), g.id.as_str());
            let governed = desired.groups.contains_key(&key)
                || selectors.iter().any(|s| selector_matches(s, g));
            (!governed).then(|| Ungoverned {
                key,
                name: g.meta.name.clone(),
                vpc_id: g.meta.vpc_id.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out.dedup_by(|a, b| a.key == b.key);
    out
}

/// Lists every (account, region) of `desired` once and reports what no declaration governs.
pub async fn survey<C: Cloud>(
    reach: &Reach<C>,
    desired: &Desired,
    concurrency: usize,
    required: bool,
) -> Coverage {
    let all = GroupFilter::default();
    let all = &all;
    let mut buckets: Vec<BucketCoverage> = stream::iter(buckets(desired))
        .map(|bucket| async move {
            let listing = match reach.client(&bucket.account) {
                Ok(client) => list_all(client, &bucket.region, all).await,
                Err(e) => Err(e.into()),
            };
            match listing {
                Ok(listed) => BucketCoverage {
                    listed: listed.len(),
                    result: Ok(ungoverned(desired, &bucket, &listed)),
                    bucket,
                },
                Err(e) => BucketCoverage {
                    bucket,
                    listed: 0,
                    result: Err(e),
                },
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    buckets.sort_by(|a, b| a.bucket.cmp(&b.bucket));
    Coverage { buckets, required }
}

/// [`survey`] with the real clients: every account the folder names is reached once.
pub async fn survey_clients(
    clients: &Clients,
    desired: &Desired,
    concurrency: usize,
    required: bool,
) -> Coverage {
    let reach = reach_of(clients, desired).await;
    survey(&reach, desired, concurrency, required).await
}

/// The clients of every account the folder names, each reached once.
async fn reach_of(clients: &Clients, desired: &Desired) -> Reach {
    let wanted = buckets(desired);
    let accounts = wanted.iter().map(|b| b.account.as_str());
    clients.reach(accounts, &desired.accounts).await
}

/// Surveys coverage after a one-shot pass and adds it to its report: the ungoverned groups, the
/// notes, and the listing calls to the report's call counts.
pub async fn add_to(
    report: &mut PassReport,
    clients: &Clients,
    desired: &Desired,
    concurrency: usize,
    required: bool,
) {
    let tally = Arc::new(CallStats::default());
    let reach = reach_of(clients, desired).await.counting_into(&tally);
    let coverage = survey(&reach, desired, concurrency, required).await;
    for (action, n) in super::calls_by_action(&tally) {
        *report.api_calls.entry(action).or_insert(0) += n;
    }
    report.notes.extend(coverage.notes());
    report.coverage = Some(coverage);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Mode, Policy};
    use crate::policy::DesiredGroup;
    use crate::reconcile::fixtures::{listed, Answer, Request, Scripted};

    const HZ: &str = "cn-hangzhou";

    fn at(line: usize) -> Location {
        Location {
            path: std::path::Path::new("p.yaml").into(),
            line,
            column: 5,
        }
    }

    fn declared(ids: &[&str]) -> Desired {
        let mut d = Desired::default();
        for (i, id) in ids.iter().enumerate() {
            let key = GroupKey::new(HZ, *id);
            d.groups.insert(
                key.clone(),
                DesiredGroup {
                    key,
                    policy: Policy::Drop,
                    source: at(i + 1),
                    mode: Mode::Enforce,
                },
            );
        }
        d
    }

    fn selector(tags: &[(&str, &str)], vpc: Option<&str>, name: Option<&str>) -> Selector {
        Selector {
            account: String::new(),
            region: HZ.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            vpc_id: vpc.map(str::to_string),
            name: name.map(str::to_string),
            policy: Policy::Drop,
            mode: Mode::Enforce,
            source: at(9),
        }
    }

    fn ids(u: &[Ungoverned]) -> Vec<&str> {
        u.iter().map(|g| g.key.id.as_str()).collect()
    }

    #[test]
    fn a_group_is_governed_by_its_entry_or_a_matching_selector_and_unmanageable_ones_never_count() {
        let mut d = declared(&["sg-entry"]);
        d.selectors
            .push(selector(&[("env", "prod")], Some("vpc-1"), Some("pay-*")));
        let mut enterprise = listed("sg-enterprise", "x", "vpc-1", &[]);
        enterprise.meta.enterprise = true;
        let bucket = GroupKey::new(HZ, "").bucket();
        let found = ungoverned(
            &d,
            &bucket,
            &[
                listed("sg-zeta", "web-1", "vpc-1", &[]),
                listed("sg-entry", "web-2", "vpc-1", &[]),
                listed(
                    "sg-selected",
                    "pay-1",
                    "vpc-1",
                    &[("env", "prod"), ("team", "a")],
                ),
                listed("sg-other-vpc", "pay-2", "vpc-2", &[("env", "prod")]),
                listed("sg-other-name", "web-3", "vpc-1", &[("env", "prod")]),
                listed("sg-wrong-tag", "pay-3", "vpc-1", &[("env", "dev")]),
                enterprise,
            ],
        );
        assert_eq!(
            ids(&found),
            ["sg-other-name", "sg-other-vpc", "sg-wrong-tag", "sg-zeta"],
            "sorted by id"
        );
        assert_eq!(found[3].name.as_deref(), Some("web-1"));
        assert_eq!(found[3].vpc_id.as_deref(), Some("vpc-1"));
    }

    #[test]
    fn selectors_of_another_region_or_account_govern_nothing_here() {
        let mut d = Desired::default();
        let mut elsewhere = selector(&[], None, Some("*"));
        elsewhere.region = "cn-shanghai".into();
        let mut other_account = selector(&[], None, Some("*"));
        other_account.account = "2222222222222222".into();
        d.selectors = vec![elsewhere, other_account];
        let bucket = GroupKey::new(HZ, "").bucket();
        let found = ungoverned(&d, &bucket, &[listed("sg-a", "a", "vpc-1", &[])]);
        assert_eq!(ids(&found), ["sg-a"]);
        assert_eq!(
            buckets(&d).len(),
            2,
            "the folder names cn-shanghai and the other account's cn-hangzhou"
        );
    }

    #[test]
    fn the_sentence_counts_groups_and_names_the_place() {
        assert_eq!(
            sentence(14, "cn-hangzhou"),
            "14 groups in cn-hangzhou are governed by no policy file"
        );
        assert_eq!(
            sentence(1, "2222222222222222/cn-hangzhou"),
            "1 group in 2222222222222222/cn-hangzhou is governed by no policy file"
        );
    }

    #[tokio::test]
    async fn one_paged_listing_per_bucket_and_required_coverage_makes_errors() {
        let d = declared(&["sg-a"]);
        let page = |ids: &[&str], next: Option<&str>| {
            Answer::Page(crate::ecs::GroupPage {
                groups: ids.iter().map(|id| listed(id, id, "vpc-1", &[])).collect(),
                next_token: next.map(str::to_string),
            })
        };
        let list = |next: Option<&str>| Request::List {
            region: HZ.into(),
            filter: GroupFilter::default(),
            next_token: next.map(str::to_string),
        };
        let cloud = Scripted::new()
            .then(list(None), page(&["sg-a", "sg-b"], Some("p2")))
            .then(list(Some("p2")), page(&["sg-c"], None));
        let reach = Reach::of([(String::new(), Ok(cloud))]);
        let coverage = survey(&reach, &d, 1, true).await;
        for (_, c) in reach.into_clients() {
            c.expect("reachable").done();
        }
        assert_eq!(coverage.buckets.len(), 1);
        assert_eq!(coverage.buckets[0].listed, 3);
        assert_eq!(
            coverage
                .ungoverned()
                .map(|u| u.key.id.as_str())
                .collect::<Vec<_>>(),
            ["sg-b", "sg-c"]
        );
        let notes = coverage.notes();
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].level, NoteLevel::Error);
        assert!(
            notes[0]
                .message
                .starts_with("2 groups in cn-hangzhou are governed by no policy file"),
            "{}",
            notes[0].message
        );
        let relaxed = Coverage {
            required: false,
            ..coverage
        };
        assert!(relaxed.notes().is_empty(), "only a report, not an error");
    }
}
