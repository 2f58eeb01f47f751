//! The isolation model as table tests, one per case issue 19 lists, and property tests of its two
//! monotonicity promises. Estates are built with [`estate`] and rules with [`ingress`] / [`egress`].

use super::model::{check, Estate, GroupState, Member, PathKind, Rule, Status, Verdict};
use super::ranges::Cidr;
use crate::ecs::api::Permission;
use crate::model::Policy::{self, Accept, Drop};
use proptest::prelude::*;

/// A rule under construction, in the API's own fields.
#[derive(Clone, Debug)]
struct R(Permission);

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn ingress(id: &str, protocol: &str, ports: &str) -> R {
    R(Permission {
        security_group_rule_id: some(id),
        direction: some("ingress"),
        ip_protocol: some(protocol),
        port_range: some(ports),
        policy: some("Accept"),
        priority: some("1"),
        ..Permission::default()
    })
}

fn egress(id: &str, protocol: &str, ports: &str) -> R {
    let mut r = ingress(id, protocol, ports);
    r.0.direction = some("egress");
    r
}

impl R {
    fn drop(mut self) -> R {
        self.0.policy = some("drop");
        self
    }
    fn priority(mut self, p: u8) -> R {
        self.0.priority = Some(p.to_string());
        self
    }
    fn src_group(mut self, id: &str) -> R {
        self.0.source_group_id = some(id);
        self
    }
    fn owned_by(mut self, account: &str) -> R {
        self.0.source_group_owner_account = some(account);
        self
    }
    fn src_cidr(mut self, cidr: &str) -> R {
        self.0.source_cidr_ip = some(cidr);
        self
    }
    fn src_v6(mut self, cidr: &str) -> R {
        self.0.ipv6_source_cidr_ip = some(cidr);
        self
    }
    fn src_list(mut self, id: &str) -> R {
        self.0.source_prefix_list_id = some(id);
        self
    }
    fn dst_cidr(mut self, cidr: &str) -> R {
        self.0.dest_cidr_ip = some(cidr);
        self
    }
    fn dst_group(mut self, id: &str) -> R {
        self.0.dest_group_id = some(id);
        self
    }
}

/// An estate under construction.
#[derive(Default, Clone, Debug)]
struct E(Estate);

fn estate() -> E {
    E::default()
}

impl E {
    fn group(mut self, id: &str, policy: Policy, rules: &[R]) -> E {
        self.0.groups.insert(
            id.into(),
            GroupState {
                policy: Some(policy),
                rules: Ok(rules.iter().map(|r| Rule::parse(&r.0)).collect()),
            },
        );
        self
    }
    fn unreadable(mut self, id: &str, why: &str) -> E {
        self.0.groups.insert(
            id.into(),
            GroupState {
                policy: None,
                rules: Err(why.into()),
            },
        );
        self
    }
    fn eni(mut self, id: &str, addresses: &[&str], groups: &[&str]) -> E {
        self.0.members.push(Member {
            id: id.into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        });
        self
    }
    fn prefix_list(mut self, id: &str, entries: &[&str]) -> E {
        let cidrs = entries.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        self.0.prefix_lists.insert(id.into(), Ok(cidrs));
        self
    }
    fn unreadable_list(mut self, id: &str, why: &str) -> E {
        self.0.prefix_lists.insert(id.into(), Err(why.into()));
        self
    }
    fn account(mut self, id: &str) -> E {
        self.0.account = Some(id.into());
        self
    }
    /// Two members of sg-web, 10.0.0.1 and 10.0.0.2, in nothing else.
    fn two_web_members(self) -> E {
        self.eni("eni-a", &["10.0.0.1"], &["sg-web"])
            .eni("eni-b", &["10.0.0.2"], &["sg-web"])
    }
    fn check(&self) -> Verdict {
        check(&self.0, "sg-web")
    }
}

const WEB: &str = "sg-web";

fn ssh_from_itself() -> R {
    ingress("sgr-ssh", "TCP", "22/22").src_group(WEB)
}

#[test]
fn a_rule_whose_source_is_the_group_itself_lets_members_reach_each_other() {
    let v = estate()
        .group(WEB, Drop, &[ssh_from_itself()])
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(v.members, 2);
    assert_eq!(v.paths.len(), 1);
    let p = &v.paths[0];
    assert_eq!(p.kind, PathKind::IngressRule);
    assert_eq!(
        (
            p.group.as_str(),
            p.rule_id.as_deref(),
            p.protocol.as_str(),
            p.ports.as_str()
        ),
        (WEB, Some("sgr-ssh"), "tcp", "22/22")
    );
    assert_eq!(p.source.as_deref(), Some(WEB));
    assert_ne!(p.from, p.to, "an example pair is two distinct members");
}

#[test]
fn a_drop_group_without_rules_isolates_its_members() {
    let v = estate().group(WEB, Drop, &[]).two_web_members().check();
    assert_eq!(v.status, Status::Isolated);
    assert!(v.paths.is_empty() && v.unknown.is_empty());
}

#[test]
fn members_sharing_an_accept_group_reach_each_other_whatever_the_drop_group_says() {
    let v = estate()
        .group(WEB, Drop, &[])
        .group("sg-all", Accept, &[])
        .eni("eni-a", &["10.0.0.1"], &[WEB, "sg-all"])
        .eni("eni-b", &["10.0.0.2"], &[WEB, "sg-all"])
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    let p = &v.paths[0];
    assert_eq!(p.kind, PathKind::SharedGroup);
    assert_eq!(p.group, "sg-all");
    assert_eq!((p.rule_id.as_deref(), p.source.as_deref()), (None, None));
    assert_eq!((p.protocol.as_str(), p.ports.as_str()), ("all", "-1/-1"));
}

#[test]
fn an_accept_group_only_one_member_is_in_opens_nothing() {
    let v = estate()
        .group(WEB, Drop, &[])
        .group("sg-all", Accept, &[])
        .eni("eni-a", &["10.0.0.1"], &[WEB, "sg-all"])
        .eni("eni-b", &["10.0.0.2"], &[WEB])
        .check();
    assert_eq!(v.status, Status::Isolated);
}

#[test]
fn a_cidr_rule_opens_a_path_only_when_it_covers_a_member() {
    let covering = estate()
        .group(
            WEB,
            Drop,
            &[ingress("sgr-net", "TCP", "443/443").src_cidr("10.0.0.0/24")],
        )
        .two_web_members()
        .check();
    assert_eq!(covering.status, Status::NotIsolated);
    assert_eq!(covering.paths[0].source.as_deref(), Some("10.0.0.0/24"));
    let elsewhere = estate()
        .group(
            WEB,
            Drop,
            &[ingress("sgr-net", "TCP", "443/443").src_cidr("10.9.0.0/16")],
        )
        .two_web_members()
        .check();
    assert_eq!(elsewhere.status, Status::Isolated);
}

#[test]
fn a_cidr_covering_only_one_member_still_opens_a_path_from_it_to_the_other() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[ingress("sgr-one", "TCP", "22/22").src_cidr("10.0.0.1/32")],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(
        (v.paths[0].from.as_str(), v.paths[0].to.as_str()),
        ("eni-a", "eni-b")
    );
}

#[test]
fn a_drop_at_a_higher_priority_that_covers_the_accept_closes_the_path() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ingress("sgr-deny", "TCP", "1/65535")
                    .src_cidr("10.0.0.0/8")
                    .drop()
                    .priority(1),
                ssh_from_itself().priority(2),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::Isolated, "{v:?}");
}

#[test]
fn at_equal_priority_the_drop_wins() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ssh_from_itself().priority(5),
                ingress("sgr-deny", "ALL", "-1/-1")
                    .src_group(WEB)
                    .drop()
                    .priority(5),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::Isolated, "{v:?}");
}

#[test]
fn a_drop_at_a_lower_priority_does_not_close_an_earlier_accept() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ssh_from_itself().priority(1),
                ingress("sgr-deny", "ALL", "-1/-1")
                    .src_group(WEB)
                    .drop()
                    .priority(2),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
}

#[test]
fn a_partly_shadowed_accept_still_opens_a_path() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ingress("sgr-no-ssh", "TCP", "22/22").src_group(WEB).drop(),
                ingress("sgr-all", "ALL", "-1/-1").src_group(WEB),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(v.paths[0].rule_id.as_deref(), Some("sgr-all"));
}

#[test]
fn a_drop_of_another_source_does_not_shadow_the_accept() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ingress("sgr-deny", "ALL", "-1/-1")
                    .src_cidr("192.168.0.0/16")
                    .drop(),
                ssh_from_itself().priority(50),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
}

#[test]
fn an_egress_drop_of_the_sender_closes_the_path_and_an_earlier_egress_accept_reopens_it() {
    let blocked = estate()
        .group(
            WEB,
            Drop,
            &[
                ssh_from_itself(),
                egress("sgr-out", "TCP", "1/65535")
                    .dst_cidr("10.0.0.0/8")
                    .drop(),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(blocked.status, Status::Isolated, "{blocked:?}");
    let reopened = estate()
        .group(
            WEB,
            Drop,
            &[
                ssh_from_itself(),
                egress("sgr-ssh-out", "TCP", "22/22")
                    .dst_group(WEB)
                    .priority(1),
                egress("sgr-out", "ALL", "-1/-1")
                    .dst_cidr("10.0.0.0/8")
                    .drop()
                    .priority(2),
            ],
        )
        .two_web_members()
        .check();
    assert_eq!(reopened.status, Status::NotIsolated);
}

#[test]
fn a_source_group_of_another_account_is_unknown_never_isolated() {
    let v = estate()
        .account("1111111111111111")
        .group(
            WEB,
            Drop,
            &[ingress("sgr-peer", "TCP", "22/22")
                .src_group("sg-theirs")
                .owned_by("2222222222222222")],
        )
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::Unknown);
    assert_eq!(v.unknown.len(), 1);
    assert!(
        v.unknown[0].reason.contains("2222222222222222"),
        "{:?}",
        v.unknown
    );
    assert_eq!(v.unknown[0].rule_id.as_deref(), Some("sgr-peer"));
    assert_eq!(v.unknown[0].group.as_deref(), Some(WEB));
}

#[test]
fn the_own_account_named_as_owner_is_not_another_account() {
    let v = estate()
        .account("1111111111111111")
        .group(WEB, Drop, &[ssh_from_itself().owned_by("1111111111111111")])
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
}

#[test]
fn a_group_with_one_member_is_isolated() {
    let v = estate()
        .group(WEB, Drop, &[ssh_from_itself()])
        .eni("eni-a", &["10.0.0.1"], &[WEB])
        .check();
    assert_eq!((v.status, v.members), (Status::Isolated, 1));
}

#[test]
fn an_ipv6_rule_matches_members_by_their_ipv6_addresses_only() {
    let rule = ingress("sgr-v6", "TCP", "22/22").src_v6("2408:4000::/32");
    let v6 = estate()
        .group(WEB, Drop, std::slice::from_ref(&rule))
        .eni("eni-a", &["10.0.0.1", "2408:4000::1"], &[WEB])
        .eni("eni-b", &["10.0.0.2", "2408:4000::2"], &[WEB])
        .check();
    assert_eq!(v6.status, Status::NotIsolated);
    assert_eq!(v6.paths[0].source.as_deref(), Some("2408:4000::/32"));
    let v4_only = estate().group(WEB, Drop, &[rule]).two_web_members().check();
    assert_eq!(v4_only.status, Status::Isolated);
}

#[test]
fn a_prefix_list_that_covers_a_member_opens_and_one_that_cannot_be_read_is_unknown() {
    let rule = ingress("sgr-office", "TCP", "3389/3389").src_list("pl-office");
    let covering = estate()
        .group(WEB, Drop, std::slice::from_ref(&rule))
        .prefix_list("pl-office", &["192.168.0.0/24", "10.0.0.0/16"])
        .two_web_members()
        .check();
    assert_eq!(covering.status, Status::NotIsolated);
    assert_eq!(covering.paths[0].source.as_deref(), Some("pl-office"));
    let unreadable = estate()
        .group(WEB, Drop, &[rule])
        .unreadable_list(
            "pl-office",
            "missing permission ecs:DescribePrefixListAttributes",
        )
        .two_web_members()
        .check();
    assert_eq!(unreadable.status, Status::Unknown);
    assert!(unreadable.unknown[0]
        .reason
        .contains("DescribePrefixListAttributes"));
}

#[test]
fn a_rule_of_another_group_of_the_destination_opens_a_path() {
    let v = estate()
        .group(WEB, Drop, &[])
        .group(
            "sg-db",
            Drop,
            &[ingress("sgr-mysql", "TCP", "3306/3306").src_group(WEB)],
        )
        .eni("eni-a", &["10.0.0.1"], &[WEB])
        .eni("eni-b", &["10.0.0.2"], &[WEB, "sg-db"])
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    let p = &v.paths[0];
    assert_eq!(
        (p.group.as_str(), p.from.as_str(), p.to.as_str()),
        ("sg-db", "eni-a", "eni-b")
    );
}

#[test]
fn a_member_group_whose_rules_cannot_be_read_makes_the_group_unknown() {
    let v = estate()
        .group(WEB, Drop, &[])
        .unreadable(
            "sg-db",
            "the rules of sg-db could not be read: missing permission",
        )
        .eni("eni-a", &["10.0.0.1"], &[WEB])
        .eni("eni-b", &["10.0.0.2"], &[WEB, "sg-db"])
        .check();
    assert_eq!(v.status, Status::Unknown);
    assert_eq!(v.unknown[0].group.as_deref(), Some("sg-db"));
}

#[test]
fn a_path_wins_over_an_unknown_and_both_are_reported() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ssh_from_itself(),
                ingress("sgr-pl", "TCP", "80/80").src_list("pl-x"),
            ],
        )
        .unreadable_list("pl-x", "prefix list pl-x could not be read")
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!((v.paths.len(), v.unknown.len()), (1, 1));
}

#[test]
fn an_unreadable_drop_never_closes_a_path_and_an_unreadable_accept_is_unknown() {
    let v = estate()
        .group(
            WEB,
            Drop,
            &[
                ingress("sgr-x", "TCP", "1/65535").src_list("pl-x").drop(),
                ssh_from_itself().priority(9),
            ],
        )
        .unreadable_list("pl-x", "prefix list pl-x could not be read")
        .two_web_members()
        .check();
    assert_eq!(
        v.status,
        Status::NotIsolated,
        "a drop that cannot be evaluated is taken not to match"
    );
    let odd = estate()
        .group(
            WEB,
            Drop,
            &[ingress("sgr-odd", "SCTP", "1/2").src_group(WEB)],
        )
        .two_web_members()
        .check();
    assert_eq!(odd.status, Status::Unknown);
    assert_eq!(odd.unknown[0].rule_id.as_deref(), Some("sgr-odd"));
}

#[test]
fn lenient_values_are_read_case_insensitively() {
    let mut r = ssh_from_itself();
    r.0.direction = some("Ingress");
    r.0.ip_protocol = some("tcp");
    r.0.policy = some("ACCEPT");
    let v = estate().group(WEB, Drop, &[r]).two_web_members().check();
    assert_eq!(v.status, Status::NotIsolated);
    let mut d = ingress("sgr-d", "ALL", "-1/-1").src_group(WEB);
    d.0.policy = some("DROP");
    let v = estate()
        .group(WEB, Drop, &[d, ssh_from_itself().priority(2)])
        .two_web_members()
        .check();
    assert_eq!(v.status, Status::Isolated);
}

#[test]
fn an_observed_group_whose_live_policy_is_accept_is_a_shared_group_path_through_itself() {
    let v = estate().group(WEB, Accept, &[]).two_web_members().check();
    assert_eq!(v.status, Status::NotIsolated);
    assert_eq!(v.paths[0].group, WEB);
}

// ---- properties ----

const GROUPS: [&str; 3] = [WEB, "sg-b", "sg-c"];

fn arb_rule() -> impl Strategy<Value = R> {
    (
        any::<bool>(),
        any::<bool>(),
        1u8..=4,
        prop_oneof![Just("TCP"), Just("UDP"), Just("ALL"), Just("ICMP")],
        (1u16..=40, 0u16..=30),
        prop_oneof![
            (0usize..3).prop_map(|g| ("group", GROUPS[g].to_string())),
            (0u8..4, 24u8..=32).prop_map(|(o, p)| ("cidr", format!("10.0.0.{}/{p}", o * 2))),
        ],
    )
        .prop_map(
            |(is_ingress, accept, priority, proto, (from, len), (kind, peer))| {
                let ports = format!("{from}/{}", from + len);
                let mut r = if is_ingress {
                    ingress("sgr", proto, &ports)
                } else {
                    egress("sgr", proto, &ports)
                };
                r.0.security_group_rule_id = None;
                if !accept {
                    r = r.drop();
                }
                r = r.priority(priority);
                match (kind, is_ingress) {
                    ("group", true) => r.src_group(&peer),
                    ("group", false) => r.dst_group(&peer),
                    (_, true) => r.src_cidr(&peer),
                    (_, false) => r.dst_cidr(&peer),
                }
            },
        )
}

fn arb_estate() -> impl Strategy<Value = E> {
    (
        proptest::collection::vec(proptest::collection::vec(arb_rule(), 0..4), 3),
        proptest::collection::vec(any::<bool>(), 3),
        proptest::collection::vec((any::<bool>(), any::<bool>()), 2..5),
    )
        .prop_map(|(rules, accepts, members)| {
            let mut e = estate();
            for (i, g) in GROUPS.iter().enumerate() {
                let policy = if i > 0 && accepts[i] { Accept } else { Drop };
                e = e.group(g, policy, &rules[i]);
            }
            for (i, (in_b, in_c)) in members.iter().enumerate() {
                let mut groups = vec![WEB];
                if *in_b {
                    groups.push("sg-b");
                }
                if *in_c {
                    groups.push("sg-c");
                }
                e = e.eni(
                    &format!("eni-{i}"),
                    &[&format!("10.0.0.{}", i + 1)],
                    &groups,
                );
            }
            e
        })
}

fn with_rule(mut e: E, group: usize, r: &R) -> E {
    if let Some(GroupState {
        rules: Ok(rules), ..
    }) = e.0.groups.get_mut(GROUPS[group])
    {
        rules.push(Rule::parse(&r.0));
    }
    e
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn adding_an_accept_rule_never_turns_not_isolated_into_isolated(
        e in arb_estate(), r in arb_rule(), group in 0usize..3,
    ) {
        let before = e.check();
        let mut r = r;
        r.0.policy = some("Accept");
        let after = with_rule(e, group, &r).check();
        if before.status == Status::NotIsolated {
            prop_assert_eq!(after.status, Status::NotIsolated);
        }
        if before.status == Status::Unknown {
            prop_assert_ne!(after.status, Status::Isolated);
        }
    }

    #[test]
    fn a_priority_one_drop_of_everything_never_opens_a_path(e in arb_estate()) {
        let before = e.check();
        let everything = ingress("sgr-wall", "ALL", "-1/-1").src_cidr("0.0.0.0/0").drop().priority(1);
        let after = with_rule(e, 0, &everything).check();
        let opened = |v: &Verdict| v.paths.iter().map(|p| (p.kind, p.group.clone(), p.rule_id.clone())).collect::<std::collections::BTreeSet<_>>();
        prop_assert!(opened(&after).is_subset(&opened(&before)), "before {:?}\nafter {:?}", before, after);
        prop_assert!(after.paths.iter().all(|p| p.kind == PathKind::SharedGroup), "{:?}", after);
    }
}
