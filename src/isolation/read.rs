//! The reads behind the isolation check, through the [`Cloud`] seam (so through each account's rate
//! limiter, and counted in the pass's `apiCalls`). Per (account, region):
//!
//! 1. every rule of each checked group: DescribeSecurityGroupAttribute with `MaxResults=1000`,
//!    following `NextToken`; a first page the pass already read is not read again;
//! 2. the interfaces of each VPC those groups are in: DescribeNetworkInterfaces by `VpcId`, every
//!    page. Never by `SecurityGroupId`, which returns secondary interfaces only;
//! 3. every rule of every other group the members belong to, the same way;
//! 4. each prefix list those rules name, once: DescribePrefixListAttributes.
//!
//! Cost (docs/scale.md): Σ over checked and member groups of ceil(rules/1000) attribute reads (minus
//! the first pages the pass read), Σ over VPCs of ceil(interfaces/500) listings, one call per prefix
//! list. A failed read never fails the pass: the groups it concerns become **unknown**, with a reason
//! that names the missing permission when ECS answered 403.

use super::model::{Analysis, Depends, Estate, GroupState, Member, Rule, Verdict};
use super::ranges::Cidr;
use crate::accounts::Reach;
use crate::ecs::api::{self, Permission, RulePage};
use crate::ecs::{Cloud, EcsError};
use crate::model::{Bucket, GroupKey, Policy};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A listing longer than this many pages is taken for a loop (a token that never ends).
const MAX_PAGES: usize = 10_000;

/// What the check is asked, and what the pass already knows.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The groups to check.
    pub targets: BTreeSet<GroupKey>,
    /// First rule pages the pass read (`MaxResults=1000`), by group: not read again.
    pub pages: HashMap<GroupKey, RulePage>,
    /// The effective policy of each group sgpolicy governs (the declared one for enforced entries):
    /// it wins over the live policy a page shows.
    pub policies: HashMap<GroupKey, Policy>,
}

/// Why a call failed, as an unknown's reason: the missing permission for a 403.
pub fn reason(e: &EcsError, what: &str) -> String {
    let denied = matches!(e, EcsError::Api(a) if a.is_permission_denied());
    if denied {
        format!(
            "{what}: missing permission ecs:{} ({})",
            e.action(),
            e.code()
        )
    } else {
        format!("{what}: {e}")
    }
}

/// One group's rules, policy and VPC, every page read.
struct Read {
    policy: Option<Policy>,
    vpc_id: Option<String>,
    rules: Result<Vec<Rule>, String>,
}

async fn read_group<C: Cloud>(client: &C, key: &GroupKey, first: Option<RulePage>) -> Read {
    let mut rules: Vec<Permission> = Vec::new();
    let mut page = match first {
        Some(p) => p,
        None => match client.describe_rules(key, None).await {
            Ok(p) => p,
            Err(e) => {
                return Read {
                    policy: None,
                    vpc_id: None,
                    rules: Err(reason(
                        &e,
                        &format!("the rules of {} could not be read", key.id),
                    )),
                }
            }
        },
    };
    let (policy, vpc_id) = (page.policy, page.vpc_id.clone());
    let mut seen = BTreeSet::new();
    for _ in 0..MAX_PAGES {
        rules.append(&mut page.rules);
        let Some(token) = page.next_token.take().filter(|t| !t.is_empty()) else {
            return Read {
                policy,
                vpc_id,
                rules: Ok(rules.iter().map(Rule::parse).collect()),
            };
        };
        if !seen.insert(token.clone()) {
            break;
        }
        page = match client.describe_rules(key, Some(&token)).await {
            Ok(p) => p,
            Err(e) => {
                return Read {
                    policy,
                    vpc_id,
                    rules: Err(reason(
                        &e,
                        &format!("the rules of {} could not be read", key.id),
                    )),
                }
            }
        };
    }
    Read {
        policy,
        vpc_id,
        rules: Err(format!(
            "the rules of {} could not be read: the listing repeated a page token or never ended",
            key.id
        )),
    }
}

async fn list_vpc<C: Cloud>(
    client: &C,
    region: &str,
    vpc: &str,
) -> Result<Vec<api::Interface>, String> {
    let what = format!("the interfaces of {vpc} could not be listed");
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    let mut seen = BTreeSet::new();
    for _ in 0..MAX_PAGES {
        let mut page = client
            .describe_interfaces(region, vpc, token.as_deref())
            .await
            .map_err(|e| reason(&e, &what))?;
        out.append(&mut page.interfaces);
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) if seen.insert(t.clone()) => token = Some(t),
            Some(_) => break,
            None => return Ok(out),
        }
    }
    Err(format!(
        "{what}: the listing repeated a page token or never ended"
    ))
}

/// A member is an interface in use (attached); an available one carries no traffic.
fn in_use(i: &api::Interface) -> bool {
    i.status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("InUse"))
}

fn member(i: api::Interface) -> Member {
    Member {
        addresses: i.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
        id: i.id,
        groups: i.groups,
    }
}

/// Checks every target of `inputs`; one verdict per target. Never fails: what cannot be read
/// becomes an unknown of the groups it concerns.
pub async fn check<C: Cloud>(
    reach: &Reach<C>,
    inputs: Inputs,
    concurrency: usize,
) -> BTreeMap<GroupKey, Verdict> {
    let Inputs {
        targets,
        mut pages,
        policies,
    } = inputs;
    let mut by_bucket: BTreeMap<Bucket, Vec<GroupKey>> = BTreeMap::new();
    for key in targets {
        by_bucket.entry(key.bucket()).or_default().push(key);
    }
    let mut out = BTreeMap::new();
    for (bucket, keys) in by_bucket {
        let client = match reach.client(&bucket.account) {
            Ok(c) => c,
            Err(e) => {
                for k in keys {
                    out.insert(k.clone(), Verdict::unknown(e.to_string(), &k.id));
                }
                continue;
            }
        };
        let firsts: Vec<(GroupKey, Option<RulePage>)> = keys
            .into_iter()
            .map(|k| {
                let p = pages.remove(&k);
                (k, p)
            })
            .collect();
        let verdicts = check_bucket(
            client,
            &bucket,
            firsts,
            &mut pages,
            &policies,
            concurrency.max(1),
        )
        .await;
        out.extend(verdicts);
    }
    out
}

async fn check_bucket<C: Cloud>(
    client: &C,
    bucket: &Bucket,
    targets: Vec<(GroupKey, Option<RulePage>)>,
    pages: &mut HashMap<GroupKey, RulePage>,
    policies: &HashMap<GroupKey, Policy>,
    concurrency: usize,
) -> BTreeMap<GroupKey, Verdict> {
    let mut out = BTreeMap::new();
    let mut estate = Estate {
        account: crate::model::Account::of(&bucket.account)
            .named()
            .map(str::to_string),
        ..Estate::default()
    };
    // 1. The checked groups' rules.
    let by_vpc = read_targets(
        client,
        targets,
        policies,
        concurrency,
        &mut estate,
        &mut out,
    )
    .await;
    // 2. The members, VPC by VPC.
    let (checked, instances) =
        list_members(client, bucket, by_vpc, concurrency, &mut estate, &mut out).await;
    // 3. Every other group of the members.
    read_other_groups(client, bucket, pages, policies, concurrency, &mut estate).await;
    // 4. The prefix lists the rules name.
    read_prefix_lists(client, bucket, concurrency, &mut estate).await;

    let analysis = Analysis::new(&estate);
    for (key, vpc) in checked {
        let mut verdict = analysis.check(&key.id);
        verdict.depends = depends_of(&estate, &key.id, vpc, &instances);
        out.insert(key, verdict);
    }
    out
}

/// Reads the rules of the groups of `targets` in parallel.
async fn read_groups<C: Cloud>(
    client: &C,
    targets: Vec<(GroupKey, Option<RulePage>)>,
    concurrency: usize,
) -> Vec<(GroupKey, Read)> {
    stream::iter(targets)
        .map(|(key, first)| async move {
            let r = read_group(client, &key, first).await;
            (key, r)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Records what was read of `key` in `estate`, the policy of the file taking precedence over the
/// live one.
fn record_group(
    estate: &mut Estate,
    policies: &HashMap<GroupKey, Policy>,
    key: &GroupKey,
    read: Read,
) {
    estate.groups.insert(
        key.id.to_string(),
        GroupState {
            policy: policies.get(key).copied().or(read.policy),
            rules: read.rules,
        },
    );
}

/// Reads the checked groups' rules; returns the readable ones by VPC, the others get an unknown
/// verdict in `out`.
async fn read_targets<C: Cloud>(
    client: &C,
    targets: Vec<(GroupKey, Option<RulePage>)>,
    policies: &HashMap<GroupKey, Policy>,
    concurrency: usize,
    estate: &mut Estate,
    out: &mut BTreeMap<GroupKey, Verdict>,
) -> BTreeMap<String, Vec<GroupKey>> {
    let reads = read_groups(client, targets, concurrency).await;
    let mut by_vpc: BTreeMap<String, Vec<GroupKey>> = BTreeMap::new();
    for (key, read) in reads {
        match (&read.rules, &read.vpc_id) {
            (Err(why), _) => {
                out.insert(key.clone(), Verdict::unknown(why.clone(), &key.id));
            }
            (Ok(_), None) => {
                out.insert(
                    key.clone(),
                    Verdict::unknown(
                        "a classic-network group (no VPC): its members cannot be listed by VPC",
                        &key.id,
                    ),
                );
            }
            (Ok(_), Some(vpc)) => by_vpc.entry(vpc.clone()).or_default().push(key.clone()),
        }
        record_group(estate, policies, &key, read);
    }
    by_vpc
}

/// Lists the members of the groups of `by_vpc`, VPC by VPC, into `estate`; returns the groups
/// that can be checked (with their VPC) and each member's instance. A VPC that cannot be listed
/// gives its groups an unknown verdict in `out`.
async fn list_members<C: Cloud>(
    client: &C,
    bucket: &Bucket,
    mut by_vpc: BTreeMap<String, Vec<GroupKey>>,
    concurrency: usize,
    estate: &mut Estate,
    out: &mut BTreeMap<GroupKey, Verdict>,
) -> (Vec<(GroupKey, String)>, HashMap<String, String>) {
    let vpcs: Vec<String> = by_vpc.keys().cloned().collect();
    let listings: Vec<(String, Result<Vec<api::Interface>, String>)> = stream::iter(vpcs)
        .map(|vpc| async move {
            let r = list_vpc(client, &bucket.region, &vpc).await;
            (vpc, r)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut checked: Vec<(GroupKey, String)> = Vec::new();
    // Each member's instance (the model does not need it; the daemon's event routing does).
    let mut instances: HashMap<String, String> = HashMap::new();
    for (vpc, listing) in listings {
        let keys = by_vpc.remove(&vpc).unwrap_or_default();
        match listing {
            Err(why) => {
                for k in keys {
                    out.insert(k.clone(), Verdict::unknown(why.clone(), &k.id));
                }
            }
            Ok(interfaces) => {
                let wanted: BTreeSet<&str> = keys.iter().map(|k| &*k.id).collect();
                estate.members.extend(
                    interfaces
                        .into_iter()
                        .filter(|i| {
                            in_use(i) && i.groups.iter().any(|g| wanted.contains(g.as_str()))
                        })
                        .inspect(|i| {
                            if let Some(instance) = &i.instance_id {
                                instances.insert(i.id.clone(), instance.clone());
                            }
                        })
                        .map(member),
                );
                checked.extend(keys.into_iter().map(|k| (k, vpc.clone())));
            }
        }
    }
    (checked, instances)
}

/// Reads the rules of every group of the members that `estate` does not hold yet.
async fn read_other_groups<C: Cloud>(
    client: &C,
    bucket: &Bucket,
    pages: &mut HashMap<GroupKey, RulePage>,
    policies: &HashMap<GroupKey, Policy>,
    concurrency: usize,
    estate: &mut Estate,
) {
    let others: BTreeSet<String> = estate
        .members
        .iter()
        .flat_map(|m| m.groups.iter())
        .filter(|g| !estate.groups.contains_key(g.as_str()))
        .cloned()
        .collect();
    let others: Vec<(GroupKey, Option<RulePage>)> = others
        .into_iter()
        .map(|id| {
            let key =
                GroupKey::in_account(bucket.account.clone(), bucket.region.clone(), id.as_str());
            let first = pages.remove(&key);
            (key, first)
        })
        .collect();
    for (key, read) in read_groups(client, others, concurrency).await {
        record_group(estate, policies, &key, read);
    }
}

/// Reads the prefix lists the rules of `estate` name.
async fn read_prefix_lists<C: Cloud>(
    client: &C,
    bucket: &Bucket,
    concurrency: usize,
    estate: &mut Estate,
) {
    let lists: BTreeSet<String> = estate
        .groups
        .values()
        .filter_map(|g| g.rules.as_ref().ok())
        .flatten()
        .filter_map(|r| match &r.peer {
            super::model::Peer::PrefixList(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    let read_lists: Vec<(String, Result<Vec<Cidr>, String>)> = stream::iter(lists)
        .map(|id| async move {
            let r = match client.describe_prefix_list(&bucket.region, &id).await {
                Err(e) => Err(reason(&e, &format!("prefix list {id} could not be read"))),
                Ok(list) => list
                    .entries
                    .iter()
                    .map(|c| {
                        Cidr::parse(c).ok_or_else(|| {
                            format!("prefix list {id} has an entry {c:?} that is not a CIDR")
                        })
                    })
                    .collect(),
            };
            (id, r)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    estate.prefix_lists.extend(read_lists);
}

/// What `group`'s verdict depends on: its members, their instances and groups, and the prefix
/// lists those groups' rules name.
fn depends_of(
    estate: &Estate,
    group: &str,
    vpc: String,
    instances: &HashMap<String, String>,
) -> Depends {
    let mut d = Depends {
        groups: BTreeSet::from([group.to_string()]),
        vpc: Some(vpc),
        ..Depends::default()
    };
    for m in estate
        .members
        .iter()
        .filter(|m| m.groups.iter().any(|g| g == group))
    {
        d.interfaces.insert(m.id.clone());
        if let Some(i) = instances.get(&m.id) {
            d.instances.insert(i.clone());
        }
        d.groups.extend(m.groups.iter().cloned());
    }
    for g in &d.groups {
        let rules = estate.groups.get(g).and_then(|s| s.rules.as_ref().ok());
        for r in rules.into_iter().flatten() {
            if let super::model::Peer::PrefixList(id) = &r.peer {
                d.prefix_lists.insert(id.clone());
            }
        }
    }
    d
}
