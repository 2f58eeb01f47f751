//! The isolation check inside a pass, against the scripted fake: the exact reads it adds (every rule
//! page, the VPC's interfaces, the members' other groups, prefix lists), that a page the pass read is
//! never read twice, and that a refused read makes a group unknown without failing the pass.

use super::fixtures::{
    accept_from_group, desired, ecs_error, found, interface, interfaces, normal, rules, Answer,
    Request, Scripted,
};
use super::*;
use crate::ecs::api::{
    Permission, DESCRIBE_ATTRIBUTE, DESCRIBE_GROUPS, DESCRIBE_INTERFACES, DESCRIBE_PREFIX_LIST,
};
use crate::isolation::{PathKind, Status};
use crate::model::{GroupKey, Policy::*};

const HZ: &str = "cn-hangzhou";

fn sg(id: &str) -> GroupKey {
    GroupKey::new(HZ, id)
}

fn checking() -> PassOptions {
    PassOptions {
        concurrency: 1,
        verify_reads: 1,
        verify_delay: Duration::ZERO,
        clock: Clock::Fixed(1_795_839_005_123),
        dry_run: true,
        check_isolation: true,
        ..PassOptions::default()
    }
}

fn listing(keys: &[&GroupKey]) -> Request {
    Request::DescribeGroups {
        region: HZ.into(),
        ids: keys.iter().map(|k| k.id.to_string()).collect(),
    }
}

fn rules_of(key: &GroupKey, next: Option<&str>) -> Request {
    Request::Rules {
        key: key.clone(),
        next_token: next.map(str::to_string),
    }
}

fn vpc_page(next: Option<&str>) -> Request {
    Request::Interfaces {
        region: HZ.into(),
        vpc: "vpc-1".into(),
        next_token: next.map(str::to_string),
    }
}

async fn pass(cloud: Scripted, d: &Desired) -> PassReport {
    let reach = Reach::of([(String::new(), Ok(cloud))]);
    let report = {
        let stats = reach.client("").expect("the fake").stats();
        run_pass_on(&reach, stats, d, &checking()).await
    };
    let cloud = reach
        .into_clients()
        .remove("")
        .and_then(Result::ok)
        .expect("the fake");
    cloud.done();
    report
}

fn office_rule() -> Permission {
    Permission {
        security_group_rule_id: Some("sgr-office".into()),
        direction: Some("ingress".into()),
        ip_protocol: Some("TCP".into()),
        port_range: Some("3389/3389".into()),
        source_prefix_list_id: Some("pl-office".into()),
        ..Permission::default()
    }
}

#[tokio::test]
async fn the_check_reads_every_rule_page_the_vpc_s_interfaces_the_members_other_groups_and_their_prefix_lists(
) {
    let (web, db) = (sg("sg-web"), sg("sg-db"));
    let d = desired().group(&web, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&web]), found(&[(&web, normal())]))
        .then(
            rules_of(&web, None),
            rules(
                Drop,
                Some("vpc-1"),
                &[accept_from_group("sgr-ssh", "22/22", "sg-web")],
                Some("p2"),
            ),
        )
        .then(
            rules_of(&web, Some("p2")),
            rules(Drop, Some("vpc-1"), &[], None),
        )
        .then(
            vpc_page(None),
            interfaces(
                vec![
                    interface("eni-a", "InUse", "10.0.0.1", &["sg-web", "sg-db"]),
                    interface("eni-spare", "Available", "10.0.0.7", &["sg-web"]),
                ],
                Some("v2"),
            ),
        )
        .then(
            vpc_page(Some("v2")),
            interfaces(
                vec![
                    interface("eni-b", "InUse", "10.0.0.2", &["sg-web"]),
                    interface("eni-other", "InUse", "10.0.0.3", &["sg-else"]),
                ],
                None,
            ),
        )
        .then(
            rules_of(&db, None),
            rules(Drop, Some("vpc-1"), &[office_rule()], None),
        )
        .then(
            Request::PrefixList {
                region: HZ.into(),
                id: "pl-office".into(),
            },
            ecs_error(DESCRIBE_PREFIX_LIST, 403, "Forbidden.RAM"),
        );
    let report = pass(cloud, &d).await;
    assert!(
        !report.has_errors(),
        "a refused check read never fails the pass: {:?}",
        report.fatal
    );
    let v = &report.isolation.as_ref().expect("checked")[&web];
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(
        v.members, 2,
        "the available interface and the other group's are no members"
    );
    assert_eq!(v.paths.len(), 1);
    assert_eq!(
        (v.paths[0].kind, v.paths[0].rule_id.as_deref()),
        (PathKind::IngressRule, Some("sgr-ssh"))
    );
    assert_eq!(v.unknown.len(), 1, "{:?}", v.unknown);
    assert!(
        v.unknown[0]
            .reason
            .contains("missing permission ecs:DescribePrefixListAttributes"),
        "{}",
        v.unknown[0].reason
    );
    assert_eq!(report.api_calls[DESCRIBE_GROUPS], 1);
    assert_eq!(
        report.api_calls[DESCRIBE_ATTRIBUTE], 3,
        "two pages of sg-web, one of sg-db"
    );
    assert_eq!(report.api_calls[DESCRIBE_INTERFACES], 2);
    assert_eq!(report.api_calls[DESCRIBE_PREFIX_LIST], 1);
}

#[tokio::test]
async fn a_declared_group_read_by_the_pass_is_not_read_again_and_its_declared_accept_is_shared() {
    let (web, all) = (sg("sg-web"), sg("sg-all"));
    let d = desired().group(&web, Drop).group(&all, Accept).build();
    let cloud = Scripted::new()
        .then(
            listing(&[&all, &web]),
            found(&[(&all, normal()), (&web, normal())]),
        )
        .then(rules_of(&all, None), rules(Drop, Some("vpc-1"), &[], None))
        .then(rules_of(&web, None), rules(Drop, Some("vpc-1"), &[], None))
        .then(
            vpc_page(None),
            interfaces(
                vec![
                    interface("eni-a", "InUse", "10.0.0.1", &["sg-web", "sg-all"]),
                    interface("eni-b", "InUse", "10.0.0.2", &["sg-web", "sg-all"]),
                ],
                None,
            ),
        );
    let report = pass(cloud, &d).await;
    let checked = report.isolation.as_ref().expect("checked");
    assert!(
        !checked.contains_key(&all),
        "a group declared Accept is not checked"
    );
    let v = &checked[&web];
    assert_eq!(
        v.status,
        Status::NotIsolated,
        "sg-all will be Accept once the plan is applied"
    );
    assert_eq!(
        (v.paths[0].kind, v.paths[0].group.as_str()),
        (PathKind::SharedGroup, "sg-all")
    );
    assert_eq!(
        report.api_calls[DESCRIBE_ATTRIBUTE], 2,
        "each group read once"
    );
}

#[tokio::test]
async fn a_forbidden_interface_listing_makes_the_group_unknown_naming_the_permission() {
    let web = sg("sg-web");
    let d = desired().observed(&web, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&web]), found(&[(&web, normal())]))
        .then(rules_of(&web, None), rules(Drop, Some("vpc-1"), &[], None))
        .then(
            vpc_page(None),
            ecs_error(DESCRIBE_INTERFACES, 403, "Forbidden.RAM"),
        );
    let report = pass(cloud, &d).await;
    assert!(report.fatal.is_none() && !report.has_errors());
    let v = &report.isolation.as_ref().expect("checked")[&web];
    assert_eq!(v.status, Status::Unknown);
    assert!(
        v.unknown[0]
            .reason
            .contains("missing permission ecs:DescribeNetworkInterfaces"),
        "{}",
        v.unknown[0].reason
    );
}

#[tokio::test]
async fn a_classic_network_group_is_unknown_and_an_unreadable_one_is_not_checked() {
    let (classic, gone) = (sg("sg-classic"), sg("sg-gone"));
    let d = desired().group(&classic, Drop).group(&gone, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&classic, &gone]), found(&[(&classic, normal())]))
        .then(rules_of(&classic, None), rules(Drop, None, &[], None));
    let report = pass(cloud, &d).await;
    let checked = report.isolation.as_ref().expect("checked");
    assert_eq!(checked[&classic].status, Status::Unknown);
    assert!(checked[&classic].unknown[0].reason.contains("classic"));
    assert!(
        !checked.contains_key(&gone),
        "a group not found has isolation null"
    );
}

#[tokio::test]
async fn without_the_check_the_pass_reads_the_policy_with_the_smallest_page_and_nothing_else() {
    let web = sg("sg-web");
    let d = desired().group(&web, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&web]), found(&[(&web, normal())]))
        .then(
            Request::DescribeAttribute(web.clone()),
            Answer::Policy(Drop),
        );
    let reach = Reach::of([(String::new(), Ok(cloud))]);
    let opts = PassOptions {
        check_isolation: false,
        ..checking()
    };
    let report = run_pass_on(&reach, reach.client("").unwrap().stats(), &d, &opts).await;
    assert!(report.isolation.is_none());
    reach
        .into_clients()
        .remove("")
        .and_then(Result::ok)
        .unwrap()
        .done();
}

#[tokio::test]
async fn a_prefix_list_is_read_once_however_many_rules_name_it() {
    let web = sg("sg-web");
    let d = desired().group(&web, Drop).build();
    let mut second = office_rule();
    second.security_group_rule_id = Some("sgr-office-2".into());
    second.port_range = Some("22/22".into());
    let cloud = Scripted::new()
        .then(listing(&[&web]), found(&[(&web, normal())]))
        .then(
            rules_of(&web, None),
            rules(Drop, Some("vpc-1"), &[office_rule(), second], None),
        )
        .then(
            vpc_page(None),
            interfaces(
                vec![
                    interface("eni-a", "InUse", "10.0.0.1", &["sg-web"]),
                    interface("eni-b", "InUse", "10.0.0.2", &["sg-web"]),
                ],
                None,
            ),
        )
        .then(
            Request::PrefixList {
                region: HZ.into(),
                id: "pl-office".into(),
            },
            Answer::PrefixList(crate::ecs::api::PrefixList {
                id: "pl-office".into(),
                entries: vec!["10.0.0.0/24".into()],
            }),
        );
    let report = pass(cloud, &d).await;
    let v = &report.isolation.as_ref().expect("checked")[&web];
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(v.paths.len(), 2, "one path per opening rule");
    assert_eq!(report.api_calls[DESCRIBE_PREFIX_LIST], 1);
}

#[tokio::test(start_paused = true)]
async fn a_check_still_running_at_the_pass_deadline_leaves_its_groups_unknown() {
    let web = sg("sg-web");
    let d = desired().group(&web, Drop).build();
    let cloud = Scripted::new()
        .then(listing(&[&web]), found(&[(&web, normal())]))
        .then(rules_of(&web, None), rules(Drop, Some("vpc-1"), &[], None));
    let reach = Reach::of([(String::new(), Ok(Slow(cloud)))]);
    let opts = PassOptions {
        pass_timeout: Some(Duration::from_secs(60)),
        ..checking()
    };
    let report = run_pass_on(&reach, reach.client("").unwrap().0.stats(), &d, &opts).await;
    let v = &report.isolation.as_ref().expect("checked")[&web];
    assert_eq!(v.status, Status::Unknown);
    assert!(
        v.unknown[0].reason.contains("--pass-timeout"),
        "{:?}",
        v.unknown
    );
}

/// The scripted fake whose interface listing never answers.
struct Slow(Scripted);

impl Cloud for Slow {
    fn describe_groups(
        &self,
        region: &str,
        ids: &[String],
    ) -> impl std::future::Future<
        Output = Result<BTreeMap<String, crate::model::GroupMeta>, crate::ecs::EcsError>,
    > + Send {
        self.0.describe_groups(region, ids)
    }
    fn describe_attribute(
        &self,
        key: &GroupKey,
    ) -> impl std::future::Future<Output = Result<Policy, crate::ecs::EcsError>> + Send {
        self.0.describe_attribute(key)
    }
    fn modify_policy(
        &self,
        key: &GroupKey,
        policy: Policy,
        token: &str,
    ) -> impl std::future::Future<Output = Result<String, crate::ecs::EcsError>> + Send {
        self.0.modify_policy(key, policy, token)
    }
    fn list_groups(
        &self,
        region: &str,
        filter: &crate::ecs::GroupFilter,
        next: Option<&str>,
    ) -> impl std::future::Future<Output = Result<crate::ecs::GroupPage, crate::ecs::EcsError>> + Send
    {
        self.0.list_groups(region, filter, next)
    }
    fn describe_rules(
        &self,
        key: &GroupKey,
        next: Option<&str>,
    ) -> impl std::future::Future<Output = Result<crate::ecs::api::RulePage, crate::ecs::EcsError>> + Send
    {
        self.0.describe_rules(key, next)
    }
    fn describe_interfaces(
        &self,
        _region: &str,
        _vpc: &str,
        _next: Option<&str>,
    ) -> impl std::future::Future<
        Output = Result<crate::ecs::api::InterfacePage, crate::ecs::EcsError>,
    > + Send {
        std::future::pending()
    }
    fn describe_prefix_list(
        &self,
        region: &str,
        id: &str,
    ) -> impl std::future::Future<Output = Result<crate::ecs::api::PrefixList, crate::ecs::EcsError>>
           + Send {
        self.0.describe_prefix_list(region, id)
    }
    fn stats(&self) -> &crate::ecs::client::CallStats {
        self.0.stats()
    }
}
