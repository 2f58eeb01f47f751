//! The simulator's starting state, read from YAML: the account's access keys and its security groups.

use crate::model::Policy;
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

/// One seeded security group. The policy is kept as text here and checked by [`Seed::from_yaml`],
/// because `Policy` is shared vocabulary that deliberately has no serde `Deserialize`.
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
}

impl SeedGroup {
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
        }
        let mut groups = BTreeSet::new();
        for (i, g) in self.security_groups.iter().enumerate() {
            if g.id.is_empty() || g.region.is_empty() {
                bail!("securityGroups[{i}]: id and region must not be empty");
            }
            if g.policy().is_none() {
                bail!(
                    "securityGroups[{i}] ({}): innerAccessPolicy must be Accept or Drop, not {:?}",
                    g.id,
                    g.inner_access_policy
                );
            }
            if !groups.insert((g.region.as_str(), g.id.as_str())) {
                bail!("securityGroups[{i}]: duplicate group {}/{}", g.region, g.id);
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
    fn debug_output_redacts_secrets() {
        let s = Seed::from_yaml(
            "accessKeys:\n  - {id: theid, secret: hunter2, securityToken: tok123}\n",
        )
        .expect("valid");
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2") && !d.contains("tok123") && d.contains("theid"));
    }
}
