//! Which declared `Drop` groups a write that changes who can reach whom affects: the daemon's
//! isolation routing, pure. Each checked group's last verdict says what it depends on
//! ([`Depends`]: its members' groups, the members and their instances, the prefix lists their
//! rules name, its VPC); an event naming any of those re-checks the group, and one naming none of
//! them costs nothing. An event naming nothing placeable (no group, interface, instance or prefix
//! list), or attaching an interface no checked group has as a member (it may become one), re-checks
//! every checked group of its region (of its VPC, when it names one): the cautious answer when the
//! record does not say enough.

use crate::events::{Author, Change};
use crate::isolation::{Depends, Path, PathKind};
use crate::model::{GroupKey, SharedStr};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The write an isolation re-check was queued for: what the warning names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    pub action: String,
    /// The groups the call named (the first is the one it changed).
    pub groups: Vec<String>,
    pub author: Author,
}

impl Cause {
    pub fn of(change: &Change) -> Cause {
        Cause {
            action: change.action.clone(),
            groups: change.named.groups.clone(),
            author: change.author.clone(),
        }
    }
}

/// The action whose interface may turn a non-member into a member without naming a group.
const ATTACH: &str = "AttachNetworkInterface";

type ById = HashMap<(SharedStr, String), BTreeSet<GroupKey>>;

/// Checked groups by every id their verdicts depend on, per region (ids are unique across
/// accounts, as the intake assumes for groups).
#[derive(Debug, Default)]
pub struct Index {
    groups: ById,
    interfaces: ById,
    instances: ById,
    prefix_lists: ById,
    /// Every checked group by region, with its VPC: the fallback of an unplaceable event.
    by_region: HashMap<SharedStr, Vec<(GroupKey, Option<String>)>>,
}

impl Index {
    /// The index of the checked groups' latest dependencies.
    pub fn build<'a>(checked: impl IntoIterator<Item = (&'a GroupKey, &'a Depends)>) -> Index {
        let mut ix = Index::default();
        for (key, d) in checked {
            let r = &key.region;
            let add = |map: &mut ById, ids: &BTreeSet<String>| {
                for id in ids {
                    map.entry((r.clone(), id.clone()))
                        .or_default()
                        .insert(key.clone());
                }
            };
            add(&mut ix.groups, &d.groups);
            add(&mut ix.groups, &BTreeSet::from([key.id.to_string()]));
            add(&mut ix.interfaces, &d.interfaces);
            add(&mut ix.instances, &d.instances);
            add(&mut ix.prefix_lists, &d.prefix_lists);
            ix.by_region
                .entry(r.clone())
                .or_default()
                .push((key.clone(), d.vpc.clone()));
        }
        ix
    }

    /// The checked groups `change` may affect (empty: it cannot change any verdict).
    pub fn affected(&self, change: &Change) -> BTreeSet<GroupKey> {
        let region: SharedStr = change.region.as_str().into();
        let named = &change.named;
        let mut out = BTreeSet::new();
        let mut unplaced = named.is_empty();
        let mut look = |map: &ById, ids: &[String], attach: bool| {
            for id in ids {
                match map.get(&(region.clone(), id.clone())) {
                    Some(keys) => out.extend(keys.iter().cloned()),
                    None if attach => unplaced = true,
                    None => {}
                }
            }
        };
        look(&self.groups, &named.groups, false);
        look(&self.interfaces, &named.interfaces, change.action == ATTACH);
        look(&self.instances, &named.instances, false);
        look(&self.prefix_lists, &named.prefix_lists, false);
        if unplaced {
            let in_region = self
                .by_region
                .get(&region)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            out.extend(
                in_region
                    .iter()
                    .filter(|(_, vpc)| named.vpc.is_none() || vpc.is_none() || *vpc == named.vpc)
                    .map(|(k, _)| k.clone()),
            );
        }
        out
    }
}

/// One sentence of the warning about a new path between members of `group`, naming the write
/// that opened it when an event said so: "ram-user bob added rule sgr-1 to sg-d: members of sg-d
/// reach each other on tcp 22/22 through rule sgr-1 of sg-d (source: sg-d)".
pub fn lost_sentence(group: &str, path: &Path, cause: Option<&Cause>) -> String {
    let rule = path.rule_id.as_deref().unwrap_or("(without an id)");
    let named = |c: &Cause| {
        if c.groups.is_empty() {
            String::new()
        } else {
            format!(" on {}", c.groups.join(", "))
        }
    };
    let who = match cause {
        None => format!("group {group} is not isolated"),
        Some(c) => {
            let same_group = c.groups.first() == Some(&path.group);
            match c.action.as_str() {
                "AuthorizeSecurityGroup" | "AuthorizeSecurityGroupEgress" if same_group => {
                    format!("{} added rule {rule} to {}", c.author, path.group)
                }
                "ModifySecurityGroupRule" | "ModifySecurityGroupEgressRule" if same_group => {
                    format!("{} changed rule {rule} of {}", c.author, path.group)
                }
                action => format!("{} called {action}{}", c.author, named(c)),
            }
        }
    };
    let how = match path.kind {
        PathKind::IngressRule => format!(
            "on {} {} through rule {rule} of {} (source: {})",
            path.protocol,
            path.ports,
            path.group,
            path.source.as_deref().unwrap_or("-")
        ),
        PathKind::SharedGroup => format!(
            "on all traffic through {}, a group they share whose policy is Accept",
            path.group
        ),
    };
    format!(
        "{who}: members of {group} reach each other {how} (e.g. {} to {})",
        path.from, path.to
    )
}

/// The info line of a group isolated again, naming the write when an event said so.
pub fn restored_sentence(group: &str, cause: Option<&Cause>) -> String {
    match cause {
        Some(c) => format!(
            "group {group} is isolated again after {} called {}",
            c.author, c.action
        ),
        None => format!("group {group} is isolated again"),
    }
}

/// A shared, swappable index (the intake reads it, the fold's shell replaces it).
pub type Shared = std::sync::RwLock<Arc<Index>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::parse_record;
    use serde_json::json;

    fn depends(groups: &[&str], enis: &[&str], instances: &[&str], lists: &[&str]) -> Depends {
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Depends {
            groups: set(groups),
            interfaces: set(enis),
            instances: set(instances),
            prefix_lists: set(lists),
            vpc: Some("vpc-1".into()),
        }
    }

    fn event(name: &str, params: serde_json::Value) -> Change {
        let record = json!({"eventId": "e-1", "eventName": name, "acsRegion": "cn-hangzhou",
            "requestParameters": params, "userIdentity": {"type": "ram-user", "userName": "bob"}});
        parse_record(&record, None).unwrap()
    }

    /// sg-d (declared Drop) has members eni-1 (instance i-1) and eni-2, which are also in sg-shared,
    /// whose rules name pl-1; sg-e (declared Drop) stands alone with eni-3.
    fn index() -> (Index, GroupKey, GroupKey) {
        let d = GroupKey::new("cn-hangzhou", "sg-d");
        let e = GroupKey::new("cn-hangzhou", "sg-e");
        let dd = depends(
            &["sg-d", "sg-shared"],
            &["eni-1", "eni-2"],
            &["i-1"],
            &["pl-1"],
        );
        let de = depends(&["sg-e"], &["eni-3"], &[], &[]);
        (Index::build([(&d, &dd), (&e, &de)]), d, e)
    }

    #[test]
    fn a_rule_added_to_a_group_members_share_rechecks_only_the_groups_whose_members_are_in_it() {
        let (ix, d, _) = index();
        let added = event(
            "AuthorizeSecurityGroup",
            json!({"SecurityGroupId": "sg-shared", "Permissions.1.SourceGroupId": "sg-shared"}),
        );
        assert_eq!(ix.affected(&added), BTreeSet::from([d.clone()]));
        let own = event("RevokeSecurityGroup", json!({"SecurityGroupId": "sg-d"}));
        assert_eq!(ix.affected(&own), BTreeSet::from([d]));
    }

    #[test]
    fn an_event_for_an_unrelated_group_or_interface_affects_nothing() {
        let (ix, _, _) = index();
        for change in [
            event(
                "AuthorizeSecurityGroup",
                json!({"SecurityGroupId": "sg-zz"}),
            ),
            event(
                "ModifySecurityGroupPolicy",
                json!({"SecurityGroupId": "sg-zz"}),
            ),
            event(
                "DetachNetworkInterface",
                json!({"NetworkInterfaceId": "eni-zz"}),
            ),
            event("ModifyPrefixList", json!({"PrefixListId": "pl-zz"})),
            event("RunInstances", json!({"SecurityGroupIds": ["sg-zz"]})),
        ] {
            assert_eq!(ix.affected(&change), BTreeSet::new(), "{change:?}");
        }
    }

    #[test]
    fn members_instances_and_prefix_lists_route_to_the_groups_that_depend_on_them() {
        let (ix, d, e) = index();
        let left = event(
            "LeaveSecurityGroup",
            json!({"SecurityGroupId": "sg-x", "InstanceId": "i-1"}),
        );
        assert_eq!(ix.affected(&left), BTreeSet::from([d.clone()]));
        let moved = event(
            "ModifyNetworkInterfaceAttribute",
            json!({"NetworkInterfaceId": "eni-3", "SecurityGroupId.1": "sg-y"}),
        );
        assert_eq!(ix.affected(&moved), BTreeSet::from([e]));
        let list = event("ModifyPrefixList", json!({"PrefixListId": "pl-1"}));
        assert_eq!(ix.affected(&list), BTreeSet::from([d]));
    }

    fn ssh(group: &str, rule: &str) -> Path {
        Path {
            kind: PathKind::IngressRule,
            group: group.into(),
            rule_id: Some(rule.into()),
            protocol: "tcp".into(),
            ports: "22/22".into(),
            source: Some(group.into()),
            from: "eni-1".into(),
            to: "eni-2".into(),
        }
    }

    #[test]
    fn the_warning_names_the_author_the_rule_and_the_traffic() {
        let added = Cause::of(&event(
            "AuthorizeSecurityGroup",
            json!({"SecurityGroupId": "sg-d", "Permissions.1.SourceGroupId": "sg-d"}),
        ));
        assert_eq!(
            lost_sentence("sg-d", &ssh("sg-d", "sgr-1"), Some(&added)),
            "ram-user bob added rule sgr-1 to sg-d: members of sg-d reach each other on tcp 22/22 \
             through rule sgr-1 of sg-d (source: sg-d) (e.g. eni-1 to eni-2)"
        );
        let joined = Cause::of(&event(
            "JoinSecurityGroup",
            json!({"SecurityGroupId": "sg-web", "InstanceId": "i-1"}),
        ));
        assert!(lost_sentence("sg-d", &ssh("sg-web", "sgr-2"), Some(&joined))
            .starts_with("ram-user bob called JoinSecurityGroup on sg-web: members of sg-d reach each other on tcp 22/22 through rule sgr-2 of sg-web"));
        let shared = Path {
            kind: PathKind::SharedGroup,
            rule_id: None,
            source: None,
            protocol: "all".into(),
            ports: "-1/-1".into(),
            ..ssh("sg-open", "x")
        };
        assert_eq!(
            lost_sentence("sg-d", &shared, None),
            "group sg-d is not isolated: members of sg-d reach each other on all traffic through \
             sg-open, a group they share whose policy is Accept (e.g. eni-1 to eni-2)"
        );
        assert_eq!(
            restored_sentence("sg-d", Some(&added)),
            "group sg-d is isolated again after ram-user bob called AuthorizeSecurityGroup"
        );
    }

    #[test]
    fn an_unplaceable_event_rechecks_every_checked_group_of_its_region_or_vpc() {
        let (ix, d, e) = index();
        let bare = event("ModifyPrefixList", json!({"RegionId": "cn-hangzhou"}));
        assert_eq!(ix.affected(&bare), BTreeSet::from([d.clone(), e.clone()]));
        // An interface nobody has as a member, attached: it may become one of anyone's.
        let attach = event(
            "AttachNetworkInterface",
            json!({"NetworkInterfaceId": "eni-new"}),
        );
        assert_eq!(ix.affected(&attach), BTreeSet::from([d, e]));
        let elsewhere = event(
            "AttachNetworkInterface",
            json!({"NetworkInterfaceId": "eni-new", "VpcId": "vpc-2"}),
        );
        assert_eq!(ix.affected(&elsewhere), BTreeSet::new());
        let mut far = event("ModifyPrefixList", json!({}));
        far.region = "cn-beijing".into();
        assert_eq!(ix.affected(&far), BTreeSet::new());
    }
}
