//! Fixtures in the test's own words: what the simulated cloud starts with ([`Seed`]) and what a policy
//! file declares ([`PolicyFile`]). Both render the real formats: a [`Seed`] becomes the seed YAML the
//! simulator reads (`sgpolicy_sim::Seed::from_yaml`, as `sgpolicy sim --seed` does), a [`PolicyFile`]
//! the YAML text written to a policy folder on disk.
//!
//! ```text
//! Seed::new().group(HZ, "sg-a", Accept).enterprise().group(HZ, "sg-b", Drop).tagged("env", "prod")
//! PolicyFile::in_region(HZ).group("sg-a", Drop).observe("sg-b", Accept).yaml()
//! ```
//!
//! Tests about the YAML text itself (bad input, error locations, schema edge cases) keep it literal.

#![allow(dead_code)]

use serde::Serialize;
use sgpolicy_sim::Policy;
use std::collections::BTreeMap;

/// The RAM role `sgpolicy` in `account`, the role the tests reach other accounts through.
pub fn role_arn(account: &str) -> String {
    format!("acs:ram::{account}:role/sgpolicy")
}

/// What the simulator starts with: access keys, RAM roles, and security groups. Methods that describe a
/// group (`enterprise`, `tagged`, `in_account`, ...) apply to the group added last.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seed {
    access_keys: Vec<SeedKey>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<SeedRole>,
    security_groups: Vec<SeedGroup>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeedKey {
    id: String,
    secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_token: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeedRole {
    arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeedGroup {
    id: String,
    region: String,
    inner_access_policy: &'static str,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    service_managed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vpc_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<String>,
}

impl Seed {
    /// The test keys `testid`/`testsecret` (what [`crate::harness::run`] signs with) and
    /// `otherid`/`othersecret`, and no group yet.
    pub fn new() -> Seed {
        Seed::without_keys()
            .key("testid", "testsecret")
            .key("otherid", "othersecret")
    }

    /// No access key at all, for tests that choose their own.
    pub fn without_keys() -> Seed {
        Seed::default()
    }

    /// A long-term access key of the default account.
    pub fn key(mut self, id: &str, secret: &str) -> Seed {
        self.access_keys.push(SeedKey {
            id: id.into(),
            secret: secret.into(),
            security_token: None,
        });
        self
    }

    /// A temporary (STS) key: every request signed with it must carry `token`.
    pub fn sts_key(mut self, id: &str, secret: &str, token: &str) -> Seed {
        self.access_keys.push(SeedKey {
            id: id.into(),
            secret: secret.into(),
            security_token: Some(token.into()),
        });
        self
    }

    /// A RAM role `AssumeRole` hands out keys of its account for.
    pub fn role(mut self, arn: &str) -> Seed {
        self.roles.push(SeedRole {
            arn: arn.into(),
            external_id: None,
        });
        self
    }

    /// A RAM role that only an `AssumeRole` passing `external_id` may assume.
    pub fn role_with_external_id(mut self, arn: &str, external_id: &str) -> Seed {
        self.roles.push(SeedRole {
            arn: arn.into(),
            external_id: Some(external_id.into()),
        });
        self
    }

    /// A basic security group of the default account whose InnerAccessPolicy is `policy`.
    pub fn group(mut self, region: &str, id: &str, policy: Policy) -> Seed {
        self.security_groups.push(SeedGroup {
            id: id.into(),
            region: region.into(),
            inner_access_policy: policy.as_str(),
            kind: None,
            service_managed: false,
            service_id: None,
            vpc_id: None,
            name: None,
            tags: BTreeMap::new(),
            account: None,
        });
        self
    }

    /// One [`Seed::group`] per id, all with `policy`.
    pub fn groups<S: AsRef<str>>(
        self,
        region: &str,
        ids: impl IntoIterator<Item = S>,
        policy: Policy,
    ) -> Seed {
        ids.into_iter()
            .fold(self, |seed, id| seed.group(region, id.as_ref(), policy))
    }

    /// The last group is an enterprise-level group, whose policy ECS does not let anyone change.
    pub fn enterprise(self) -> Seed {
        self.last(|g| g.kind = Some("enterprise"))
    }

    /// The last group is managed by a cloud service (ECS refuses to change it).
    pub fn service_managed(self) -> Seed {
        self.last(|g| g.service_managed = true)
    }

    /// The last group is managed by the cloud service with this id (quoted in ECS's answers).
    pub fn managed_by_service(self, service_id: &str) -> Seed {
        self.last(|g| {
            g.service_managed = true;
            g.service_id = Some(service_id.into());
        })
    }

    /// The last group carries the tag `key: value`.
    pub fn tagged(self, key: &str, value: &str) -> Seed {
        self.last(|g| {
            g.tags.insert(key.into(), value.into());
        })
    }

    /// The last group belongs to this VPC.
    pub fn in_vpc(self, vpc_id: &str) -> Seed {
        self.last(|g| g.vpc_id = Some(vpc_id.into()))
    }

    /// The last group has this name.
    pub fn named(self, name: &str) -> Seed {
        self.last(|g| g.name = Some(name.into()))
    }

    /// The last group belongs to `account` instead of the default one.
    pub fn in_account(self, account: &str) -> Seed {
        self.last(|g| g.account = Some(account.into()))
    }

    fn last(mut self, change: impl FnOnce(&mut SeedGroup)) -> Seed {
        change(
            self.security_groups
                .last_mut()
                .expect("describe a group after adding it with .group(...)"),
        );
        self
    }

    /// The seed YAML the simulator reads.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a seed renders as YAML")
    }
}

/// One policy file: an optional account to reach through a role, an optional file-level region, the
/// groups it declares by id and its selectors, rendered in that order in block style, one group per
/// `  - id:` line (the first declaration of a file with a region is at line 3, column 5).
#[derive(Clone, Debug, Default)]
pub struct PolicyFile {
    role: Option<String>,
    external_id: Option<String>,
    region: Option<String>,
    groups: Vec<Declared>,
    selectors: Vec<(Match, Policy)>,
}

#[derive(Clone, Debug)]
struct Declared {
    id: String,
    region: Option<String>,
    policy: Policy,
    observe: bool,
}

/// What a selector matches: tags (all of them), a VPC, a name glob.
#[derive(Clone, Debug, Default)]
pub struct Match {
    tags: Vec<(String, String)>,
    vpc_id: Option<String>,
    name: Option<String>,
}

impl Match {
    /// Groups carrying every one of these tags.
    pub fn tags(tags: &[(&str, &str)]) -> Match {
        Match {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Match::default()
        }
    }

    /// ... in this VPC.
    pub fn in_vpc(mut self, vpc_id: &str) -> Match {
        self.vpc_id = Some(vpc_id.into());
        self
    }

    /// ... whose name matches this glob.
    pub fn named(mut self, glob: &str) -> Match {
        self.name = Some(glob.into());
        self
    }

    /// The flow mapping after `match: `.
    fn render(&self) -> String {
        let mut parts = Vec::new();
        if !self.tags.is_empty() {
            let tags: Vec<String> = self
                .tags
                .iter()
                .map(|(k, v)| format!("{}: {}", scalar(k), scalar(v)))
                .collect();
            parts.push(format!("tags: {{{}}}", tags.join(", ")));
        }
        if let Some(v) = &self.vpc_id {
            parts.push(format!("vpcId: {}", scalar(v)));
        }
        if let Some(n) = &self.name {
            parts.push(format!("name: {}", scalar(n)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

impl PolicyFile {
    /// A file without a file-level region: every group names its own ([`PolicyFile::group_in_region`]).
    pub fn new() -> PolicyFile {
        PolicyFile::default()
    }

    /// A file whose groups and selectors are in `region` unless they say otherwise.
    pub fn in_region(region: &str) -> PolicyFile {
        PolicyFile {
            region: Some(region.into()),
            ..PolicyFile::default()
        }
    }

    /// The file's groups are in the account this role belongs to, reached through `AssumeRole`.
    pub fn assuming_role(mut self, arn: &str) -> PolicyFile {
        self.role = Some(arn.into());
        self
    }

    /// ... passing this external id.
    pub fn external_id(mut self, external_id: &str) -> PolicyFile {
        assert!(self.role.is_some(), "an external id goes with a role");
        self.external_id = Some(external_id.into());
        self
    }

    /// Declares group `id` (in the file's region) to be kept at `policy`.
    pub fn group(self, id: &str, policy: Policy) -> PolicyFile {
        self.declare(id, None, policy, false)
    }

    /// One [`PolicyFile::group`] per id, all with `policy`.
    pub fn groups<S: AsRef<str>>(
        self,
        ids: impl IntoIterator<Item = S>,
        policy: Policy,
    ) -> PolicyFile {
        ids.into_iter()
            .fold(self, |file, id| file.group(id.as_ref(), policy))
    }

    /// Declares group `id` in `region`, named on the group itself.
    pub fn group_in_region(self, region: &str, id: &str, policy: Policy) -> PolicyFile {
        self.declare(id, Some(region), policy, false)
    }

    /// Declares group `id` with `policy` in observe mode: planned and reported, never written.
    pub fn observe(self, id: &str, policy: Policy) -> PolicyFile {
        self.declare(id, None, policy, true)
    }

    /// A selector: every group `matching` is kept at `policy`.
    pub fn selector(mut self, matching: Match, policy: Policy) -> PolicyFile {
        self.selectors.push((matching, policy));
        self
    }

    fn declare(mut self, id: &str, region: Option<&str>, policy: Policy, observe: bool) -> Self {
        self.groups.push(Declared {
            id: id.into(),
            region: region.map(Into::into),
            policy,
            observe,
        });
        self
    }

    /// The file's YAML text.
    pub fn yaml(&self) -> String {
        let mut s = String::new();
        if let Some(arn) = &self.role {
            s += &format!("account:\n  roleArn: {}\n", scalar(arn));
            if let Some(e) = &self.external_id {
                s += &format!("  externalId: {}\n", scalar(e));
            }
        }
        if let Some(r) = &self.region {
            s += &format!("region: {}\n", scalar(r));
        }
        if !self.groups.is_empty() || self.selectors.is_empty() {
            s += if self.groups.is_empty() {
                "groups: []\n"
            } else {
                "groups:\n"
            };
        }
        for g in &self.groups {
            s += &format!("  - id: {}\n", scalar(&g.id));
            if let Some(r) = &g.region {
                s += &format!("    region: {}\n", scalar(r));
            }
            s += &format!("    innerAccessPolicy: {}\n", g.policy);
            if g.observe {
                s += "    mode: observe\n";
            }
        }
        if !self.selectors.is_empty() {
            s += "selectors:\n";
        }
        for (m, p) in &self.selectors {
            s += &format!("  - match: {}\n    innerAccessPolicy: {p}\n", m.render());
        }
        s
    }
}

/// `text` as a YAML scalar: plain when it is a word that stays a string (`sg-a`, `cn-hangzhou`,
/// `acs:ram::1:role/r`), double-quoted otherwise (`"pay-*"`, `"2222"`, `"true"`).
fn scalar(text: &str) -> String {
    let word = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c))
        && !text.ends_with(':')
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&text.to_ascii_lowercase().as_str());
    if word {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string renders as JSON")
    }
}

/// The layout other tests count on (a group's `- id:` line is where its errors and sources point), and
/// a seed the simulator reads back as built.
#[test]
fn the_builders_render_what_the_product_reads() {
    use sgpolicy_sim::Policy::{Accept, Drop};
    let file = PolicyFile::in_region("cn-hangzhou")
        .assuming_role(&role_arn("2222"))
        .external_id("ext")
        .group("sg-a", Drop)
        .observe("sg-b", Accept)
        .group_in_region("eu-central-1", "sg-c", Drop)
        .selector(Match::tags(&[("env", "prod")]).named("pay-*"), Drop);
    assert_eq!(
        file.yaml(),
        "account:\n  roleArn: acs:ram::2222:role/sgpolicy\n  externalId: ext\nregion: cn-hangzhou\n\
         groups:\n  - id: sg-a\n    innerAccessPolicy: Drop\n\
         \x20 - id: sg-b\n    innerAccessPolicy: Accept\n    mode: observe\n\
         \x20 - id: sg-c\n    region: eu-central-1\n    innerAccessPolicy: Drop\n\
         selectors:\n  - match: {tags: {env: prod}, name: \"pay-*\"}\n    innerAccessPolicy: Drop\n"
    );

    let seed = Seed::new()
        .role_with_external_id(&role_arn("2222"), "ext")
        .group("cn-hangzhou", "sg-a", Accept)
        .enterprise()
        .group("cn-hangzhou", "sg-a", Drop)
        .managed_by_service("1679259531804325")
        .tagged("env", "prod")
        .in_vpc("vpc-1")
        .named("pay-1")
        .in_account("2222")
        .sts_key("STS.x", "it's a \"secret\"", "CAIS+token/=");
    let read = sgpolicy_sim::Seed::from_yaml(&seed.yaml()).expect("the simulator reads the seed");
    assert_eq!(read.access_keys.len(), 3);
    assert_eq!(read.access_keys[2].secret, "it's a \"secret\"");
    assert_eq!(read.roles[0].external_id.as_deref(), Some("ext"));
    let (own, other) = (&read.security_groups[0], &read.security_groups[1]);
    assert_eq!(own.kind, sgpolicy_sim::GroupType::Enterprise);
    assert_eq!((own.policy(), own.account.as_deref()), (Some(Accept), None));
    assert_eq!(
        (other.policy(), other.account.as_deref()),
        (Some(Drop), Some("2222"))
    );
    assert!(other.service_managed);
    assert_eq!(other.service_id.as_deref(), Some("1679259531804325"));
    assert_eq!(other.tags["env"], "prod");
    assert_eq!(
        (other.vpc_id.as_deref(), other.name.as_deref()),
        (Some("vpc-1"), Some("pay-1"))
    );
}
