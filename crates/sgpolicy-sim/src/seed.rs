//! The simulator's starting state, read from YAML: access keys, security groups, and the RAM roles
//! STS `AssumeRole` may hand out. Everything belongs to an account; without `account:` it is the
//! default account ([`DEFAULT_ACCOUNT`]), so a single-account seed needs no account at all.
//! `actionTrail` and `eventBridge` configure the event side (LookupEvents and the push); both are
//! optional.

use crate::model::{role_account, Policy};
use crate::net::{SeedEni, SeedPrefixList};
use crate::push::EventBridgeConfig;
use crate::rules::{rule_id, Rule, SeedRule, SEED_RULE_LIMIT};
use crate::trail::TrailConfig;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Everything the simulator starts with. Unknown fields are errors so that a typo in a test fixture
/// (say `serviceManged`) fails loudly instead of silently seeding an unmanaged group.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Seed {
    #[serde(default)]
    pub access_keys: Vec<SeedKey>,
    #[serde(default)]
    pub security_groups: Vec<SeedGroup>,
    /// Roles other accounts can be reached through (`AssumeRole`).
    #[serde(default)]
    pub roles: Vec<SeedRole>,
    /// ActionTrail: how late events become queryable, and the region of a `LookupEvents` request
    /// that names none.
    #[serde(default)]
    pub action_trail: TrailConfig,
    /// EventBridge: HTTP targets the events are pushed to.
    #[serde(default)]
    pub event_bridge: EventBridgeConfig,
    /// Network interfaces: the members of the groups (the API's field names, `net`).
    #[serde(default)]
    pub network_interfaces: Vec<SeedEni>,
    /// Prefix lists rules may name as their source or destination.
    #[serde(default)]
    pub prefix_lists: Vec<SeedPrefixList>,
}

/// The account of keys and groups that name none.
pub const DEFAULT_ACCOUNT: &str = "1000000000000001";

/// A RAM role: `arn` is `acs:ram::<account>:role/<name>`, and its account is the one the temporary
/// keys it hands out belong to. `externalId`, when set, must be passed by every `AssumeRole`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedRole {
    pub arn: String,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Actions the role's sessions may not call (403, as a RAM policy without them would answer).
    #[serde(default)]
    pub denied_actions: Vec<String>,
}

impl fmt::Debug for SeedRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedRole")
            .field("arn", &self.arn)
            .field(
                "external_id",
                &self.external_id.as_ref().map(|_| "<redacted>"),
            )
            .field("denied_actions", &self.denied_actions)
            .finish()
    }
}

/// One access key of the (single) simulated account. `Debug` is written by hand so the secret and the
/// STS token never reach a log line.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedKey {
    pub id: String,
    pub secret: String,
    /// When present the key behaves like STS credentials: every request must carry this token.
    #[serde(default)]
    pub security_token: Option<String>,
    /// The account the key belongs to (default [`DEFAULT_ACCOUNT`]).
    #[serde(default)]
    pub account: Option<String>,
    /// Who ActionTrail says called: a RAM user's name (the key is then a `ram-user`'s), or for a key
    /// with a `securityToken` the `<role name>:<session name>` it stands for (an `assumed-role`).
    /// Without it a plain key is the account's own (`root-account`).
    #[serde(default)]
    pub user_name: Option<String>,
    /// `userIdentity.principalId` (default: a stable id derived from the account and user).
    #[serde(default)]
    pub principal_id: Option<String>,
    /// Actions this key may not call (403, as a RAM policy without them would answer).
    #[serde(default)]
    pub denied_actions: Vec<String>,
}

impl fmt::Debug for SeedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeedKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("user_name", &self.user_name)
            .field("denied_actions", &self.denied_actions)
            .finish()
    }
}

/// ECS's two security group levels; only `normal` (basic) groups accept a policy change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupType {
    #[default]
    Normal,
    Enterprise,
}

impl GroupType {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Normal => "normal",
            GroupType::Enterprise => "enterprise",
        }
    }
}

/// One seeded security group. The policy is kept as text here and checked by [`Seed::from_yaml`], so
/// a bad value is reported with the group's index and id rather than as a serde error.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedGroup {
    pub id: String,
    pub region: String,
    pub inner_access_policy: String,
    #[serde(default, rename = "type")]
    pub kind: GroupType,
    #[serde(default)]
    pub service_managed: bool,
    #[serde(default)]
    pub service_id: Option<String>,
    /// The managing product's short name, quoted in the 403 message (default `natgw`).
    #[serde(default)]
    pub service_product: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub resource_group_id: Option<String>,
    #[serde(default)]
    pub creation_time: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The account the group belongs to (default [`DEFAULT_ACCOUNT`]).
    #[serde(default)]
    pub account: Option<String>,
    /// Its rules, in the API's own field names (`rules`); none when absent.
    #[serde(default)]
    pub permissions: Vec<SeedRule>,
}

/// A seeded account id, or the default one.
pub(super) fn account_or_default(account: &Option<String>) -> String {
    account
        .clone()
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string())
}

pub(crate) fn check_account(what: &str, account: &Option<String>) -> anyhow::Result<()> {
    if let Some(a) = account {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
            bail!("{what}: account {a:?} must be digits (quote it in YAML: account: \"2222222222222222\")");
        }
    }
    Ok(())
}

impl SeedGroup {
    /// Checks one group on its own (`what` names it in the message): id, region, policy, account.
    pub fn check(&self, what: &str) -> anyhow::Result<()> {
        if self.id.is_empty() || self.region.is_empty() {
            bail!("{what}: id and region must not be empty");
        }
        if self.policy().is_none() {
            bail!(
                "{what} ({}): innerAccessPolicy must be Accept or Drop, not {:?}",
                self.id,
                self.inner_access_policy
            );
        }
        check_account(what, &self.account)?;
        self.rules(what).map(|_| ())
    }

    /// Its `permissions` checked into rules: ids generated (stable: from the account, region,
    /// group and position) where absent, unique within the group, `CreateTime` the group's.
    /// A `SourceGroupId` may name a group that does not exist (a deleted one).
    pub fn rules(&self, what: &str) -> anyhow::Result<Vec<crate::rules::Rule>> {
        if self.permissions.len() > SEED_RULE_LIMIT {
            bail!("{what} ({}): more than {SEED_RULE_LIMIT} rules", self.id);
        }
        let account = account_or_default(&self.account);
        let created = self.creation_time.clone().unwrap_or_default();
        let mut ids = BTreeSet::new();
        let mut out = Vec::with_capacity(self.permissions.len());
        for (i, spec) in self.permissions.iter().enumerate() {
            let generated = rule_id(&format!("{account}/{}/{}/{i}", self.region, self.id));
            let rule = Rule::check(spec, None, generated, &created).map_err(|e| {
                anyhow::anyhow!(
                    "{what} ({}): permissions[{i}]: {} ({})",
                    self.id,
                    e.message,
                    e.code
                )
            })?;
            if !ids.insert(rule.id.clone()) {
                bail!(
                    "{what} ({}): permissions[{i}]: duplicate SecurityGroupRuleId {}",
                    self.id,
                    rule.id
                );
            }
            out.push(rule);
        }
        Ok(out)
    }

    /// The prefix lists its rules name (each must exist in its account and region).
    pub fn prefix_lists(&self) -> impl Iterator<Item = &str> {
        self.permissions.iter().flat_map(|r| {
            [&r.source_prefix_list_id, &r.dest_prefix_list_id]
                .into_iter()
                .filter_map(|p| p.as_deref().filter(|p| !p.is_empty()))
        })
    }

    /// The parsed policy; `from_yaml` has already rejected seeds where this would fail.
    pub fn policy(&self) -> Option<Policy> {
        Policy::parse(&self.inner_access_policy)
    }
}

impl Seed {
    /// Parses and validates a seed: policies must be Accept/Drop, ids non-empty and unique.
    pub fn from_yaml(text: &str) -> anyhow::Result<Seed> {
        let seed: Seed = if text.trim().is_empty() {
            Seed::default()
        } else {
            serde_yaml::from_str(text).context("parsing simulator seed")?
        };
        seed.validate()?;
        Ok(seed)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut key_ids = BTreeSet::new();
        for (i, k) in self.access_keys.iter().enumerate() {
            if k.id.is_empty() || k.secret.is_empty() {
                bail!("accessKeys[{i}]: id and secret must not be empty");
            }
            if !key_ids.insert(k.id.as_str()) {
                bail!("accessKeys[{i}]: duplicate access key id {:?}", k.id);
            }
            check_account(&format!("accessKeys[{i}]"), &k.account)?;
            if k.user_name.as_deref().is_some_and(str::is_empty) {
                bail!("accessKeys[{i}]: userName must not be empty");
            }
        }
        let mut roles = BTreeSet::new();
        for (i, r) in self.roles.iter().enumerate() {
            if role_account(&r.arn).is_none() {
                bail!(
                    "roles[{i}]: arn {:?} is not acs:ram::<account id>:role/<role name>",
                    r.arn
                );
            }
            if !roles.insert(r.arn.as_str()) {
                bail!("roles[{i}]: duplicate role {}", r.arn);
            }
        }
        self.action_trail.validate().context("actionTrail")?;
        self.event_bridge.validate().context("eventBridge")?;
        let mut groups = BTreeSet::new();
        for (i, g) in self.security_groups.iter().enumerate() {
            g.check(&format!("securityGroups[{i}]"))?;
            let account = account_or_default(&g.account);
            if !groups.insert((account.clone(), g.region.as_str(), g.id.as_str())) {
                bail!(
                    "securityGroups[{i}]: duplicate group {}/{} in account {account}",
                    g.region,
                    g.id
                );
            }
        }
        let mut lists = BTreeSet::new();
        for (i, p) in self.prefix_lists.iter().enumerate() {
            let what = format!("prefixLists[{i}]");
            let list = p.check(&what)?;
            if !lists.insert((list.account, list.region, list.id)) {
                bail!("{what}: duplicate prefix list {}/{}", p.region, p.id);
            }
        }
        for (i, g) in self.security_groups.iter().enumerate() {
            let account = account_or_default(&g.account);
            if let Some(pl) = g
                .prefix_lists()
                .find(|pl| !lists.contains(&(account.clone(), g.region.clone(), pl.to_string())))
            {
                bail!(
                    "securityGroups[{i}] ({}): a rule names prefix list {pl}, which is not in prefixLists for {} of account {account}",
                    g.id,
                    g.region
                );
            }
        }
        let vpcs: BTreeMap<(String, &str, &str), &str> = self
            .security_groups
            .iter()
            .map(|g| {
                (
                    (
                        account_or_default(&g.account),
                        g.region.as_str(),
                        g.id.as_str(),
                    ),
                    g.vpc_id.as_deref().unwrap_or(""),
                )
            })
            .collect();
        let mut enis = BTreeSet::new();
        let mut instances = BTreeSet::new();
        for (i, e) in self.network_interfaces.iter().enumerate() {
            let what = format!("networkInterfaces[{i}]");
            let account = account_or_default(&e.account);
            let eni = e.check(&what, |g| {
                vpcs.get(&(account.clone(), e.region.as_str(), g))
                    .map(|v| v.to_string())
            })?;
            if !enis.insert((account.clone(), eni.region.clone(), eni.id.clone())) {
                bail!("{what}: duplicate interface {}/{}", eni.region, eni.id);
            }
            if eni.primary
                && !instances.insert((account, eni.region.clone(), eni.instance_id.clone()))
            {
                bail!(
                    "{what} ({}): instance {} has another Primary interface",
                    eni.id,
                    eni.instance_id
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_seed_parses_with_defaults() {
        let s = Seed::from_yaml(
            "accessKeys:\n  - id: a\n    secret: b\nsecurityGroups:\n  - id: sg-1\n    region: cn-hangzhou\n    innerAccessPolicy: drop\n    tags: {env: prod}\n",
        )
        .expect("valid seed");
        assert_eq!(s.security_groups[0].kind, GroupType::Normal);
        assert_eq!(s.security_groups[0].policy(), Some(Policy::Drop));
    }

    #[test]
    fn unknown_fields_and_bad_policies_are_rejected() {
        assert!(Seed::from_yaml("accessKey: []").is_err());
        assert!(Seed::from_yaml(
            "securityGroups:\n  - {id: sg-1, region: r, innerAccessPolicy: Allow}\n"
        )
        .is_err());
        assert!(Seed::from_yaml(
            "securityGroups:\n  - {id: sg-1, region: r, innerAccessPolicy: Accept}\n  - {id: sg-1, region: r, innerAccessPolicy: Drop}\n"
        )
        .is_err());
    }

    #[test]
    fn accounts_and_roles_are_checked() {
        let ok = Seed::from_yaml(
            "roles:\n  - {arn: \"acs:ram::2222:role/x\", externalId: e}\nsecurityGroups:\n  - {id: sg-1, region: r, innerAccessPolicy: Drop}\n  - {id: sg-1, region: r, innerAccessPolicy: Drop, account: \"2222\"}\n",
        )
        .expect("the same id in two accounts is two groups");
        assert_eq!(
            account_or_default(&ok.security_groups[0].account),
            DEFAULT_ACCOUNT
        );
        assert!(!format!("{ok:?}").contains("externalId: e"));
        for bad in [
            "roles:\n  - {arn: \"acs:ram::x:role/y\"}\n",
            "roles:\n  - {arn: \"acs:ram::1:role/y\"}\n  - {arn: \"acs:ram::1:role/y\"}\n",
            "accessKeys:\n  - {id: a, secret: b, account: \"12ab\"}\n",
            "securityGroups:\n  - {id: sg-1, region: r, innerAccessPolicy: Drop, account: \"\"}\n",
            "securityGroups:\n  - {id: sg-1, region: r, innerAccessPolicy: Drop, account: \"7\"}\n  - {id: sg-1, region: r, innerAccessPolicy: Drop, account: \"7\"}\n",
        ] {
            assert!(Seed::from_yaml(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let s = Seed::from_yaml(
            "accessKeys:\n  - {id: theid, secret: hunter2, securityToken: tok123}\n",
        )
        .expect("valid");
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2") && !d.contains("tok123") && d.contains("theid"));
    }
}
