//! Test fixtures for the pass: a scripted fake of the cloud and small builders for desired state.
//!
//! [`Scripted`] follows controller-rs's `fixtures.rs`: a test lists the exact requests it expects, in
//! order, each with its answer. Any other request fails the test at once, naming what was expected;
//! [`Scripted::done`] fails it if a scripted request was never made. Like the real client, a request
//! is made when its future is first polled, not when it is built. Tests run the pass with
//! concurrency 1, so the order is the pass's own.

use crate::ecs::client::CallStats;
use crate::ecs::{api, ApiError, Cloud, EcsError, GroupFilter, GroupPage, ListedGroup};
use crate::model::{GroupKey, GroupMeta, Location, Mode, Policy};
use crate::policy::{Desired, DesiredGroup};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

/// A request as the pass makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    DescribeGroups {
        region: String,
        ids: Vec<String>,
    },
    DescribeAttribute(GroupKey),
    Modify {
        key: GroupKey,
        policy: Policy,
        token: String,
    },
    List {
        region: String,
        filter: GroupFilter,
        next_token: Option<String>,
    },
    /// DescribeSecurityGroupAttribute with `MaxResults=1000` (the isolation check's read).
    Rules {
        key: GroupKey,
        next_token: Option<String>,
    },
    Interfaces {
        region: String,
        vpc: String,
        next_token: Option<String>,
    },
    PrefixList {
        region: String,
        id: String,
    },
}

/// The scripted answer to one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Groups(BTreeMap<String, GroupMeta>),
    Policy(Policy),
    RequestId(&'static str),
    Page(GroupPage),
    Rules(api::RulePage),
    Interfaces(api::InterfacePage),
    PrefixList(api::PrefixList),
    Fail(EcsError),
}

#[derive(Default)]
pub struct Scripted {
    script: Mutex<VecDeque<(Request, Answer)>>,
    stats: CallStats,
}

impl Scripted {
    pub fn new() -> Scripted {
        Scripted::default()
    }

    /// Expects `request` next, answered with `answer`.
    pub fn then(self, request: Request, answer: Answer) -> Scripted {
        self.script
            .lock()
            .expect("script")
            .push_back((request, answer));
        self
    }

    /// Fails the test if a scripted request was never made.
    pub fn done(&self) {
        let left = self.script.lock().expect("script");
        assert!(left.is_empty(), "requests never made: {:#?}", *left);
    }

    fn answer(&self, action: &'static str, request: Request) -> Answer {
        let next = self.script.lock().expect("script").pop_front();
        let answer = match next {
            Some((expected, answer)) if expected == request => answer,
            Some((expected, _)) => {
                panic!("unexpected request\n  got:      {request:?}\n  expected: {expected:?}")
            }
            None => panic!("unexpected request after the script ended: {request:?}"),
        };
        let outcome = match &answer {
            Answer::Fail(e) => e.code().to_string(),
            _ => "OK".to_string(),
        };
        self.stats.record("", action, &outcome);
        answer
    }
}

fn wrong(answer: Answer, call: &str) -> ! {
    panic!("scripted answer {answer:?} does not fit {call}")
}

impl Cloud for Scripted {
    fn describe_groups(
        &self,
        region: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, GroupMeta>, EcsError>> + Send {
        let request = Request::DescribeGroups {
            region: region.to_string(),
            ids: ids.to_vec(),
        };
        async move {
            match self.answer(api::DESCRIBE_GROUPS, request) {
                Answer::Groups(g) => Ok(g),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribeSecurityGroups"),
            }
        }
    }

    fn describe_attribute(
        &self,
        key: &GroupKey,
    ) -> impl Future<Output = Result<Policy, EcsError>> + Send {
        let request = Request::DescribeAttribute(key.clone());
        async move {
            match self.answer(api::DESCRIBE_ATTRIBUTE, request) {
                Answer::Policy(p) => Ok(p),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribeSecurityGroupAttribute"),
            }
        }
    }

    fn modify_policy(
        &self,
        key: &GroupKey,
        policy: Policy,
        client_token: &str,
    ) -> impl Future<Output = Result<String, EcsError>> + Send {
        let request = Request::Modify {
            key: key.clone(),
            policy,
            token: client_token.to_string(),
        };
        async move {
            match self.answer(api::MODIFY_POLICY, request) {
                Answer::RequestId(id) => Ok(id.to_string()),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "ModifySecurityGroupPolicy"),
            }
        }
    }

    fn list_groups(
        &self,
        region: &str,
        filter: &GroupFilter,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<GroupPage, EcsError>> + Send {
        let request = Request::List {
            region: region.to_string(),
            filter: filter.clone(),
            next_token: next_token.map(str::to_string),
        };
        async move {
            match self.answer(api::DESCRIBE_GROUPS, request) {
                Answer::Page(p) => Ok(p),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribeSecurityGroups (listing)"),
            }
        }
    }

    fn describe_rules(
        &self,
        key: &GroupKey,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<api::RulePage, EcsError>> + Send {
        let request = Request::Rules {
            key: key.clone(),
            next_token: next_token.map(str::to_string),
        };
        async move {
            match self.answer(api::DESCRIBE_ATTRIBUTE, request) {
                Answer::Rules(p) => Ok(p),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribeSecurityGroupAttribute (rules)"),
            }
        }
    }

    fn describe_interfaces(
        &self,
        region: &str,
        vpc_id: &str,
        next_token: Option<&str>,
    ) -> impl Future<Output = Result<api::InterfacePage, EcsError>> + Send {
        let request = Request::Interfaces {
            region: region.to_string(),
            vpc: vpc_id.to_string(),
            next_token: next_token.map(str::to_string),
        };
        async move {
            match self.answer(api::DESCRIBE_INTERFACES, request) {
                Answer::Interfaces(p) => Ok(p),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribeNetworkInterfaces"),
            }
        }
    }

    fn describe_prefix_list(
        &self,
        region: &str,
        id: &str,
    ) -> impl Future<Output = Result<api::PrefixList, EcsError>> + Send {
        let request = Request::PrefixList {
            region: region.to_string(),
            id: id.to_string(),
        };
        async move {
            match self.answer(api::DESCRIBE_PREFIX_LIST, request) {
                Answer::PrefixList(p) => Ok(p),
                Answer::Fail(e) => Err(e),
                other => wrong(other, "DescribePrefixListAttributes"),
            }
        }
    }

    fn stats(&self) -> &CallStats {
        &self.stats
    }
}

/// An ECS error answer.
pub fn ecs_error(action: &'static str, status: u16, code: &str) -> Answer {
    Answer::Fail(EcsError::Api(ApiError {
        action,
        status: Some(status),
        code: code.to_string(),
        message: format!("scripted {code}"),
        request_id: Some("R-ERR".to_string()),
        retry_after_ms: None,
    }))
}

/// A normal group as DescribeSecurityGroups describes it.
pub fn normal() -> GroupMeta {
    GroupMeta::default()
}

/// The answer to DescribeSecurityGroups: these ids exist, with these flags.
/// A group as a region listing returns it: a basic group named `name` in `vpc` with `tags`.
pub fn listed(id: &str, name: &str, vpc: &str, tags: &[(&str, &str)]) -> ListedGroup {
    ListedGroup {
        id: id.into(),
        meta: GroupMeta {
            name: Some(name.into()),
            vpc_id: Some(vpc.into()),
            ..GroupMeta::default()
        },
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub fn found(groups: &[(&GroupKey, GroupMeta)]) -> Answer {
    Answer::Groups(
        groups
            .iter()
            .map(|(k, m)| (k.id.to_string(), m.clone()))
            .collect(),
    )
}

/// Desired state built up group by group.
#[derive(Default)]
pub struct DesiredBuilder {
    desired: Desired,
}

impl DesiredBuilder {
    pub fn group(mut self, key: &GroupKey, policy: Policy) -> Self {
        self.insert(key, policy, Mode::Enforce);
        self
    }

    pub fn observed(mut self, key: &GroupKey, policy: Policy) -> Self {
        self.insert(key, policy, Mode::Observe);
        self
    }

    fn insert(&mut self, key: &GroupKey, policy: Policy, mode: Mode) {
        let line = self.desired.groups.len() + 3;
        self.desired.groups.insert(
            key.clone(),
            DesiredGroup {
                key: key.clone(),
                policy,
                source: Location {
                    path: std::path::Path::new("prod.yaml").into(),
                    line,
                    column: 5,
                },
                mode,
            },
        );
    }

    pub fn build(mut self) -> Desired {
        self.desired.revision = crate::policy::revision_of(&self.desired.groups);
        self.desired.files = 1;
        self.desired
    }
}

pub fn desired() -> DesiredBuilder {
    DesiredBuilder::default()
}

/// The answer to a rule read: a group with `policy` in `vpc` (none: classic network) and `rules`,
/// and the token of the next page.
pub fn rules(
    policy: Policy,
    vpc: Option<&str>,
    rules: &[api::Permission],
    next: Option<&str>,
) -> Answer {
    Answer::Rules(api::RulePage {
        policy: Some(policy),
        vpc_id: vpc.map(str::to_string),
        rules: rules.to_vec(),
        next_token: next.map(str::to_string),
    })
}

/// An ingress accept rule on TCP `ports` whose source is the group `source`.
pub fn accept_from_group(id: &str, ports: &str, source: &str) -> api::Permission {
    api::Permission {
        security_group_rule_id: Some(id.into()),
        direction: Some("ingress".into()),
        ip_protocol: Some("TCP".into()),
        port_range: Some(ports.into()),
        policy: Some("Accept".into()),
        priority: Some("1".into()),
        source_group_id: Some(source.into()),
        ..api::Permission::default()
    }
}

/// A network interface with one address, `status` (`InUse`, `Available`) and `groups`.
pub fn interface(id: &str, status: &str, address: &str, groups: &[&str]) -> api::Interface {
    api::Interface {
        id: id.into(),
        vpc_id: Some("vpc-1".into()),
        instance_id: None,
        status: Some(status.into()),
        addresses: vec![address.into()],
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// The answer to a DescribeNetworkInterfaces page.
pub fn interfaces(list: Vec<api::Interface>, next: Option<&str>) -> Answer {
    Answer::Interfaces(api::InterfacePage {
        interfaces: list,
        next_token: next.map(str::to_string),
    })
}
