//! The writes that change who can reach whom: `AuthorizeSecurityGroup` and `RevokeSecurityGroup`
//! (ingress rules, in the `Permissions.N.*` form or the legacy flat form, never both), and
//! `JoinSecurityGroup` / `LeaveSecurityGroup` (an instance's primary interface, or a named one).
//! Each that reaches its action is an ActionTrail event (`lib.rs`), failed or not.
//!
//! Behaviour from the API pages (`alibaba-isolation.md` §6 and the pages it cites): an identical
//! rule authorized again succeeds and creates nothing; at most 200 rules per group; `InstanceId` and
//! `NetworkInterfaceId` are exclusive; joining a group of another VPC is
//! `InvalidInstanceId.Mismatch`, joining twice `InvalidInstanceId.AlreadyExists`, past the limit
//! `InstanceSecurityGroupLimitExceeded`; leaving a group the interface is not in is
//! `InvalidSecurityGroupAssociation.NotFound` (the rule since July 2024), leaving its last group
//! `InstanceLastSecurityGroup`. Where the pages found name no code or say nothing, the simulator
//! chooses, and docs/scale.md says so: revoking a rule that does not exist succeeds and changes
//! nothing (by `SecurityGroupRuleId.N` it is `InvalidSecurityGroupRuleId.NotFound`); the
//! interface-named variants `InvalidNetworkInterfaceId.{AlreadyExists,Mismatch,NotFound}`;
//! `AuthorizationLimitExceed`; the rule codes in `rules`.

use super::auth::Params;
use super::handlers::{arg, check_group_id, check_region, group_not_found, Outcome};
use super::handlers_net::repeated;
use super::net::MAX_GROUPS_PER_ENI;
use super::respond::ApiError;
use super::rules::{rule_id, Rule, RuleError, SeedRule, API_RULE_LIMIT, RULE_PARAMS};
use super::state::State;
use serde_json::{json, Map, Value};

fn missing(name: &str) -> ApiError {
    ApiError::new(
        400,
        "MissingParameter",
        format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
    )
}

fn conflict(message: &str) -> ApiError {
    ApiError::new(400, "InvalidParameter.Conflict", message)
}

fn from_rule_error(e: RuleError) -> ApiError {
    ApiError::new(400, e.code, e.message)
}

fn done(rid: &str, effective: bool) -> Outcome {
    Outcome {
        body: json!({}),
        request_id: rid.to_string(),
        effective,
        replayed: false,
    }
}

/// One rule spec from the parameters after `prefix` (`""` or `Permissions.N.`).
fn spec_at(p: &Params, prefix: &str) -> Result<SeedRule, ApiError> {
    let mut m = Map::new();
    for name in RULE_PARAMS {
        if let Some(v) = p.get(&format!("{prefix}{name}")).filter(|v| !v.is_empty()) {
            m.insert(name.to_string(), Value::String(v.clone()));
        }
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| {
        ApiError::new(
            400,
            "InvalidParameter",
            format!("The rule parameters are not valid: {e}"),
        )
    })
}

/// The rules a write names: `Permissions.N.*` (N = 1..=100) or the flat form, never both.
fn specs(p: &Params) -> Result<Vec<SeedRule>, ApiError> {
    let mut ns = std::collections::BTreeSet::new();
    for k in p.range("Permissions.".to_string()..) {
        let Some(rest) = k.0.strip_prefix("Permissions.") else {
            break;
        };
        let n = rest.split('.').next().unwrap_or_default();
        match n.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => {
                ns.insert(n);
            }
            _ => {
                return Err(ApiError::new(
                    400,
                    "InvalidParameter.Permissions",
                    "The specified parameter \"Permissions.N\" is not valid: N is 1 to 100.",
                ))
            }
        }
    }
    let flat = RULE_PARAMS
        .iter()
        .any(|n| *n != "SecurityGroupRuleId" && arg(p, n).is_some());
    match (ns.is_empty(), flat) {
        (false, true) => Err(conflict(
            "Parameters and their Permissions.N-prefixed counterparts cannot be specified at the same time.",
        )),
        (true, true) => Ok(vec![spec_at(p, "")?]),
        (false, false) => ns
            .into_iter()
            .map(|n| spec_at(p, &format!("Permissions.{n}.")))
            .collect(),
        (true, false) => Err(missing("Permissions")),
    }
}

/// The region and id of the group a write names, which must exist in the caller's account.
fn target<'a>(state: &State, account: &str, p: &'a Params) -> Result<(String, &'a str), ApiError> {
    let id = arg(p, "SecurityGroupId").ok_or_else(|| missing("SecurityGroupId"))?;
    check_group_id(id)?;
    let region = match arg(p, "RegionId") {
        Some(r) => {
            check_region(state, r)?;
            r.to_string()
        }
        // The central endpoint serves any region: the group's own, wherever it is.
        None => state
            .groups
            .keys()
            .find(|(a, _, g)| a == account && g == id)
            .map(|(_, r, _)| r.clone())
            .ok_or_else(group_not_found)?,
    };
    if state.group(account, &region, id).is_none() {
        return Err(group_not_found());
    }
    Ok((region, id))
}

/// Refuses a rule whose source group (of this account) or prefix list does not exist.
fn check_references(state: &State, account: &str, region: &str, r: &Rule) -> Result<(), ApiError> {
    let own = r.source_group_owner_account.is_empty() || r.source_group_owner_account == account;
    if !r.source_group_id.is_empty()
        && own
        && state.group(account, region, &r.source_group_id).is_none()
    {
        return Err(ApiError::new(
            404,
            "InvalidSecurityGroupId.NotFound",
            "The specified SourceGroupId does not exist.",
        ));
    }
    if !r.source_prefix_list_id.is_empty()
        && state
            .net
            .prefix_list(account, region, &r.source_prefix_list_id)
            .is_none()
    {
        return Err(ApiError::new(
            404,
            "InvalidPrefixListId.NotFound",
            "The specified prefix list does not exist.",
        ));
    }
    Ok(())
}

pub fn authorize(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let specs = specs(p)?;
    let (region, id) = target(state, account, p)?;
    let now = crate::auth::fmt_time(chrono::Utc::now().timestamp());
    let mut fresh: Vec<Rule> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let n = state.rules_created + i as u64;
        let generated = rule_id(&format!("{account}/{region}/{id}/created/{n}"));
        let rule = Rule::check(spec, Some("ingress"), generated, &now).map_err(from_rule_error)?;
        check_references(state, account, &region, &rule)?;
        fresh.push(rule);
    }
    let g = state
        .groups
        .get_mut(&(account.to_string(), region.clone(), id.to_string()))
        .ok_or_else(group_not_found)?;
    let mut added = Vec::new();
    for rule in fresh {
        let identity = rule.identity();
        let exists = g
            .rules
            .iter()
            .chain(added.iter())
            .any(|r: &Rule| r.identity() == identity);
        if !exists {
            added.push(rule);
        }
    }
    if g.rules.len() + added.len() > API_RULE_LIMIT {
        return Err(ApiError::new(
            400,
            "AuthorizationLimitExceed",
            format!("The limit of authorization records in the security group reaches: at most {API_RULE_LIMIT} rules."),
        ));
    }
    let effective = !added.is_empty();
    state.rules_created += added.len() as u64;
    g.rules.extend(added);
    Ok(done(rid, effective))
}

pub fn revoke(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let by_id = repeated(p, "SecurityGroupRuleId")?;
    let specs = if by_id.is_empty() {
        specs(p)?
    } else {
        Vec::new()
    };
    let (region, id) = target(state, account, p)?;
    let mut identities = Vec::new();
    for spec in &specs {
        let rule =
            Rule::check(spec, Some("ingress"), String::new(), "").map_err(from_rule_error)?;
        identities.push(rule.identity());
    }
    let g = state
        .groups
        .get_mut(&(account.to_string(), region, id.to_string()))
        .ok_or_else(group_not_found)?;
    if let Some(unknown) = by_id.iter().find(|i| {
        !g.rules
            .iter()
            .any(|r| r.direction == "ingress" && &r.id == *i)
    }) {
        return Err(ApiError::new(
            404,
            "InvalidSecurityGroupRuleId.NotFound",
            format!("The specified security group rule {unknown} does not exist."),
        ));
    }
    let before = g.rules.len();
    g.rules.retain(|r| {
        let named = r.direction == "ingress" && by_id.contains(&r.id);
        !(named || identities.contains(&r.identity()))
    });
    Ok(done(rid, g.rules.len() != before))
}

/// `JoinSecurityGroup` (`join`) or `LeaveSecurityGroup`.
pub fn membership(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
    join: bool,
) -> Result<Outcome, ApiError> {
    let instance = arg(p, "InstanceId");
    let named = arg(p, "NetworkInterfaceId");
    if instance.is_some() && named.is_some() {
        return Err(conflict(
            "InstanceId and NetworkInterfaceId cannot be specified at the same time.",
        ));
    }
    if instance.is_none() && named.is_none() {
        return Err(missing("InstanceId"));
    }
    let (region, id) = target(state, account, p)?;
    let eni_id = match (instance, named) {
        (Some(i), _) => state
            .net
            .primary_of(account, &region, i)
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::new(
                    404,
                    "InvalidInstanceId.NotFound",
                    "The specified InstanceId does not exist.",
                )
            })?,
        (None, Some(n)) => n.to_string(),
        (None, None) => return Err(missing("InstanceId")),
    };
    let what = if instance.is_some() {
        "InstanceId"
    } else {
        "NetworkInterfaceId"
    };
    let group_vpc = state
        .group(account, &region, id)
        .map(|g| g.vpc_id.clone())
        .unwrap_or_default();
    let eni = state
        .net
        .eni_mut(account, &region, &eni_id)
        .ok_or_else(|| {
            ApiError::new(
                404,
                "InvalidNetworkInterfaceId.NotFound",
                "The specified NetworkInterfaceId does not exist.",
            )
        })?;
    let member = eni.groups.iter().any(|g| g == id);
    if join {
        if member {
            return Err(ApiError::new(
                403,
                format!("Invalid{what}.AlreadyExists"),
                "The specified instance already exists in the specified security group.",
            ));
        }
        if !group_vpc.is_empty() && group_vpc != eni.vpc_id {
            return Err(ApiError::new(
                400,
                format!("Invalid{what}.Mismatch"),
                "Specified instance and security group are not in the same VPC.",
            ));
        }
        if eni.groups.len() >= MAX_GROUPS_PER_ENI {
            return Err(ApiError::new(
                400,
                "InstanceSecurityGroupLimitExceeded",
                "Exceeding the allowed amount of security groups that an instance can be in.",
            ));
        }
        eni.groups.push(id.to_string());
    } else {
        if !member {
            return Err(ApiError::new(404, "InvalidSecurityGroupAssociation.NotFound", "The specified instance or network interface is not in the specified security group."));
        }
        if eni.groups.len() == 1 {
            return Err(ApiError::new(
                403,
                "InstanceLastSecurityGroup",
                "The specified security group is the last security group for the instance.",
            ));
        }
        eni.groups.retain(|g| g != id);
    }
    Ok(done(rid, true))
}
