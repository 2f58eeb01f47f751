//! The ECS actions: the `Api` table, dispatch, the parameter helpers every action shares, and the
//! three security group actions sgpolicy enforces with (DescribeSecurityGroupAttribute with the
//! group's rules, paged; DescribeSecurityGroups; ModifySecurityGroupPolicy). The isolation reads
//! are in `handlers_net`, the rule and membership writes in `writes`.

use super::auth::Params;
use super::respond::ApiError;
use super::state::{Group, State, TokenEntry};
use crate::model::Policy;
use base64::Engine as _;
use serde_json::{json, Value};

pub const ACTIONS: &[&str] = &[
    "DescribeSecurityGroupAttribute",
    "DescribeSecurityGroups",
    "ModifySecurityGroupPolicy",
    "DescribeNetworkInterfaces",
    "DescribePrefixListAttributes",
    "AuthorizeSecurityGroup",
    "RevokeSecurityGroup",
    "JoinSecurityGroup",
    "LeaveSecurityGroup",
];

/// The ECS actions that change something and so leave an ActionTrail event (failed ones too).
pub const WRITES: &[&str] = &[
    "ModifySecurityGroupPolicy",
    "AuthorizeSecurityGroup",
    "RevokeSecurityGroup",
    "JoinSecurityGroup",
    "LeaveSecurityGroup",
];

/// The API an action belongs to: STS and ActionTrail share the simulator's endpoint, each with its
/// own Version and host. An action is judged by its own API: `Action=LookupEvents` needs
/// `Version=2020-07-06`, exactly as `AssumeRole` needs `2015-04-01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Ecs,
    Sts,
    ActionTrail,
}

impl Api {
    /// `None` for an action the simulator does not serve.
    pub fn of(action: &str) -> Option<Api> {
        match action {
            super::sts::ACTION => Some(Api::Sts),
            super::lookup::ACTION => Some(Api::ActionTrail),
            a if ACTIONS.contains(&a) => Some(Api::Ecs),
            _ => None,
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Api::Ecs => "2014-05-26",
            Api::Sts => super::sts::VERSION,
            Api::ActionTrail => super::lookup::VERSION,
        }
    }

    /// What error bodies name in `HostId`: the region endpoint for ECS and ActionTrail, the global
    /// one for STS.
    pub fn host(self, region: Option<&str>) -> String {
        let region = region.filter(|r| super::trail::is_region(r));
        match (self, region) {
            (Api::Sts, _) => String::from("sts.aliyuncs.com"),
            (Api::Ecs, Some(r)) => format!("ecs.{r}.aliyuncs.com"),
            (Api::Ecs, None) => String::from("ecs.aliyuncs.com"),
            (Api::ActionTrail, Some(r)) => format!("actiontrail.{r}.aliyuncs.com"),
            (Api::ActionTrail, None) => String::from("actiontrail.aliyuncs.com"),
        }
    }

    /// The product name in the `Recommend` troubleshooting link.
    pub fn product(self) -> &'static str {
        match self {
            Api::Ecs => "Ecs",
            Api::Sts => "Sts",
            Api::ActionTrail => "Actiontrail",
        }
    }

    /// The 403 a key whose `deniedActions` name the action gets, as a RAM policy without the
    /// action would answer: ECS's `Forbidden.RAM`, STS's and ActionTrail's `NoPermission`.
    pub fn denied(self, action: &str) -> ApiError {
        match self {
            Api::Ecs => ApiError::new(
                403,
                "Forbidden.RAM",
                "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
            ),
            Api::Sts | Api::ActionTrail => ApiError::new(
                403,
                "NoPermission",
                format!(
                    "You are not authorized to do this action. You should be authorized by RAM. Action: {}:{action}",
                    self.product().to_ascii_lowercase()
                ),
            ),
        }
    }
}

/// Used when a managed group's seed names no service.
const DEFAULT_SERVICE_ID: &str = "1679259531804325";

/// A successful action: the body (without RequestId), the RequestId to report (a replay repeats
/// the first call's), and what happened to the state.
#[derive(Debug)]
pub struct Outcome {
    pub body: Value,
    pub request_id: String,
    pub effective: bool,
    pub replayed: bool,
}

impl Outcome {
    pub(crate) fn read(body: Value, request_id: &str) -> Outcome {
        Outcome {
            body,
            request_id: request_id.to_string(),
            effective: false,
            replayed: false,
        }
    }
}

/// Runs `action` against the state of `account` (the signing key's). `request_id` is this request's
/// fresh id.
pub fn dispatch(
    state: &mut State,
    account: &str,
    action: &str,
    p: &Params,
    request_id: &str,
) -> Result<Outcome, ApiError> {
    match action {
        "DescribeSecurityGroupAttribute" => describe_attribute(state, account, p, request_id),
        "DescribeSecurityGroups" => describe_groups(state, account, p, request_id),
        "ModifySecurityGroupPolicy" => modify_policy(state, account, p, request_id),
        "DescribeNetworkInterfaces" => {
            super::handlers_net::describe_interfaces(state, account, p, request_id)
        }
        "DescribePrefixListAttributes" => {
            super::handlers_net::describe_prefix_list(state, account, p, request_id)
        }
        "AuthorizeSecurityGroup" => super::writes::authorize(state, account, p, request_id),
        "RevokeSecurityGroup" => super::writes::revoke(state, account, p, request_id),
        "JoinSecurityGroup" => super::writes::membership(state, account, p, request_id, true),
        "LeaveSecurityGroup" => super::writes::membership(state, account, p, request_id, false),
        _ => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )),
    }
}

/// A parameter that is present and not empty; ECS treats `Name=` like a missing parameter.
pub(crate) fn arg<'a>(p: &'a Params, name: &str) -> Option<&'a str> {
    p.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

pub(crate) fn missing_dotted(name: &str) -> ApiError {
    ApiError::new(
        400,
        format!("MissingParameter.{name}"),
        format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied."),
    )
}

pub(crate) fn missing_pop(name: &str) -> ApiError {
    ApiError::new(
        400,
        format!("Missing{name}"),
        format!("{name} is mandatory for this action."),
    )
}

pub(crate) fn invalid(name: &str) -> ApiError {
    ApiError::new(
        400,
        format!("InvalidParameter.{name}"),
        format!("The specified parameter \"{name}\" is not valid."),
    )
}

/// Letters, digits, `_` and (unlike the page says, but like every real id) `-`; at most 100.
pub(crate) fn check_group_id(id: &str) -> Result<(), ApiError> {
    let ok = id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            "InvalidSecurityGroupId.Malformed",
            "The SecurityGroupId is invalid. Only letters, numbers and underscores are supported. Maximum length is 100 characters.",
        ))
    }
}

pub(crate) fn check_region(state: &State, region: &str) -> Result<(), ApiError> {
    if state.region_known(region) {
        Ok(())
    } else {
        Err(ApiError::new(
            404,
            "InvalidRegionId.NotFound",
            "The specified RegionId does not exist.",
        ))
    }
}

pub(crate) fn group_not_found() -> ApiError {
    ApiError::new(
        404,
        "InvalidSecurityGroupId.NotFound",
        "The specified SecurityGroupId does not exist.",
    )
}

pub(crate) fn number(
    p: &Params,
    name: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<Option<usize>, ApiError> {
    match arg(p, name) {
        None => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(invalid(name)),
        },
    }
}

fn describe_attribute(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let region = arg(p, "RegionId").ok_or_else(|| missing_dotted("RegionId"))?;
    let id = arg(p, "SecurityGroupId").ok_or_else(|| missing_pop("SecurityGroupId"))?;
    check_group_id(id)?;
    number(p, "MaxResults", 10..=1000)?;
    let direction = match arg(p, "Direction") {
        None => "all",
        Some(d @ ("ingress" | "egress" | "all")) => d,
        Some(_) => return Err(invalid("Direction")),
    };
    let size = number(p, "MaxResults", 10..=1000)?.unwrap_or(500);
    let offset = match arg(p, "NextToken") {
        None => 0,
        Some(t) => decode_token(t).ok_or_else(|| invalid("NextToken"))?,
    };
    check_region(state, region)?;
    // Another account's group is as invisible as a group that does not exist.
    let g = state
        .group(account, region, id)
        .ok_or_else(group_not_found)?;
    // A referenced group's or prefix list's name, when this account has it in this region.
    let name = |id: &str| -> String {
        if id.is_empty() {
            return String::new();
        }
        match state.group(account, region, id) {
            Some(g) => g.name.clone(),
            None => state
                .net
                .prefix_list(account, region, id)
                .map(|p| p.name.clone())
                .unwrap_or_default(),
        }
    };
    let mut matching = g
        .rules
        .iter()
        .filter(|r| direction == "all" || r.direction == direction);
    let rules: Vec<Value> = matching
        .by_ref()
        .skip(offset)
        .take(size)
        .map(|r| r.to_json(name))
        .collect();
    let mut body = json!({
        "RegionId": g.region,
        "SecurityGroupId": g.id,
        "SecurityGroupName": g.name,
        "Description": g.description,
        "VpcId": g.vpc_id,
        "InnerAccessPolicy": g.policy.as_str(),
        "Permissions": {"Permission": rules},
    });
    // More rules than this page: a token to the next one; none on the last page.
    if matching.next().is_some() {
        body["NextToken"] = json!(encode_token(offset.saturating_add(size)));
    }
    Ok(Outcome::read(body, rid))
}

/// The `Tag.N.Key`/`Tag.N.Value` filters, N = 1..20. A key without a value matches any value.
fn tag_filters(p: &Params) -> Result<Vec<(String, Option<String>)>, ApiError> {
    let mut keys = std::collections::BTreeMap::new();
    let mut values = std::collections::BTreeMap::new();
    for (name, v) in p.range("Tag.".to_string()..) {
        let Some(rest) = name.strip_prefix("Tag.") else {
            break;
        };
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        let n = match n.parse::<u32>() {
            Ok(n) if (1..=20).contains(&n) => n,
            _ => return Err(invalid("Tag")),
        };
        match field {
            "Key" => keys.insert(n, v.clone()),
            "Value" => values.insert(n, v.clone()),
            _ => return Err(invalid("Tag")),
        };
    }
    let bad_key = || {
        ApiError::new(
            400,
            "InvalidTagKey.Malformed",
            "The specified Tag.n.Key is not valid.",
        )
    };
    if values.keys().any(|n| !keys.contains_key(n)) {
        return Err(bad_key());
    }
    let mut out = Vec::new();
    for (n, key) in keys {
        if key.is_empty() {
            return Err(bad_key());
        }
        out.push((key, values.get(&n).cloned()));
    }
    Ok(out)
}

pub(crate) fn encode_token(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-page:{offset}"))
}

pub(crate) fn decode_token(t: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("sim-page:")?
        .parse()
        .ok()
}

fn describe_groups(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let region = arg(p, "RegionId").ok_or_else(|| missing_dotted("RegionId"))?;
    let ids: Option<Vec<String>> = match arg(p, "SecurityGroupIds") {
        None => None,
        Some(text) => match serde_json::from_str::<Vec<String>>(text) {
            Ok(v) if v.len() <= 100 => Some(v),
            _ => {
                return Err(ApiError::new(
                    400,
                    "InvalidSecurityGroupIds.Malformed",
                    "The specified parameter SecurityGroupIds is not valid: a JSON array of at most 100 ids is expected.",
                ))
            }
        },
    };
    let kind = match arg(p, "SecurityGroupType") {
        None => None,
        Some(t @ ("normal" | "enterprise")) => Some(t),
        Some(_) => return Err(invalid("SecurityGroupType")),
    };
    let managed = match arg(p, "ServiceManaged") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => return Err(invalid("ServiceManaged")),
    };
    let tags = tag_filters(p)?;
    let token_mode = arg(p, "MaxResults").is_some() || arg(p, "NextToken").is_some();
    let (offset, size) = if token_mode {
        let size = number(p, "MaxResults", 1..=100)?.unwrap_or(10);
        let offset = match arg(p, "NextToken") {
            None => 0,
            Some(t) => decode_token(t).ok_or_else(|| invalid("NextToken"))?,
        };
        (offset, size)
    } else {
        let page = number(p, "PageNumber", 1..=usize::MAX)?.unwrap_or(1);
        let size = number(p, "PageSize", 1..=50)?.unwrap_or(10);
        (page.saturating_sub(1).saturating_mul(size), size)
    };
    if arg(p, "DryRun").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ApiError::new(
            400,
            "DryRunOperation",
            "Request validation has been passed with DryRun flag set.",
        ));
    }
    check_region(state, region)?;
    let wanted = |g: &&Group| {
        g.account == account
            && g.region == region
            && ids.as_ref().map_or(true, |ids| ids.contains(&g.id))
            && arg(p, "SecurityGroupId").map_or(true, |i| i == g.id)
            && arg(p, "VpcId").map_or(true, |v| v == g.vpc_id)
            && arg(p, "SecurityGroupName").map_or(true, |n| n == g.name)
            && arg(p, "ResourceGroupId").map_or(true, |r| r == g.resource_group_id)
            && kind.map_or(true, |k| k == g.kind.as_str())
            && managed.map_or(true, |m| m == g.service_managed)
            && tags.iter().all(|(k, v)| match (g.tags.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
    };
    // Groups are keyed by (account, region, id): read only this account's region, in key order as
    // before (a full scan per call made a million-group benchmark quadratic).
    let from = (account.to_string(), region.to_string(), String::new());
    let matched: Vec<&Group> = state
        .groups
        .range(from..)
        .take_while(|((a, r, _), _)| a == account && r == region)
        .map(|(_, g)| g)
        .filter(wanted)
        .collect();
    let total = matched.len();
    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(size)
        .map(|g| group_item(g))
        .collect();
    let mut body = json!({
        "RegionId": region,
        "TotalCount": total,
        "PageNumber": offset / size.max(1) + 1,
        "PageSize": size,
        "SecurityGroups": {"SecurityGroup": page},
    });
    if token_mode && offset.saturating_add(size) < total {
        body["NextToken"] = json!(encode_token(offset.saturating_add(size)));
    }
    Ok(Outcome::read(body, rid))
}

/// One DescribeSecurityGroups item. No InnerAccessPolicy: the real API does not return it here.
fn group_item(g: &Group) -> Value {
    let tags: Vec<Value> = g
        .tags
        .iter()
        .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
        .collect();
    let mut item = json!({
        "SecurityGroupId": g.id,
        "SecurityGroupName": g.name,
        "Description": g.description,
        "VpcId": g.vpc_id,
        "SecurityGroupType": g.kind.as_str(),
        "ServiceManaged": g.service_managed,
        "ResourceGroupId": g.resource_group_id,
        "CreationTime": g.creation_time,
        "Tags": {"Tag": tags},
    });
    if g.service_managed {
        let sid = g.service_id.as_deref().unwrap_or(DEFAULT_SERVICE_ID);
        item["ServiceID"] = sid
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(sid));
    }
    item
}

fn modify_policy(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let region = arg(p, "RegionId").ok_or_else(|| {
        ApiError::new(
            400,
            "MissingParamter.RegionId",
            "The RegionId should not be null.",
        )
    })?;
    let id = arg(p, "SecurityGroupId").ok_or_else(|| missing_pop("SecurityGroupId"))?;
    check_group_id(id)?;
    let policy_text =
        arg(p, "InnerAccessPolicy").ok_or_else(|| missing_pop("InnerAccessPolicy"))?;
    let policy = Policy::parse(policy_text).ok_or_else(|| {
        ApiError::new(
            400,
            "InvalidPolicy.Malformed",
            "The Policy is invalid. Only 'Accept' and 'Drop' are supported. Ignore case.",
        )
    })?;
    let token = arg(p, "ClientToken");
    if let Some(t) = token {
        if t.len() > 64 || !t.is_ascii() {
            return Err(ApiError::new(
                400,
                "InvalidClientToken.Malformed",
                "The specified ClientToken is invalid: at most 64 ASCII characters are allowed.",
            ));
        }
        if let Some(seen) = state.tokens.get(&(account.to_string(), t.to_string())) {
            if seen.region == region && seen.group_id == id && seen.policy == policy {
                return Ok(Outcome {
                    body: json!({}),
                    request_id: seen.request_id.clone(),
                    effective: false,
                    replayed: true,
                });
            }
            return Err(ApiError::new(
                400,
                "IdempotentParameterMismatch",
                "The specified parameters are different from before while using the same ClientToken.",
            ));
        }
    }
    check_region(state, region)?;
    let g = state
        .group(account, region, id)
        .ok_or_else(group_not_found)?;
    if g.service_managed {
        return Err(ApiError::new(
            403,
            "InvalidOperation.ResourceManagedByCloudProduct",
            format!(
                "The specified SecurityGroup \"{}\" has been managed by serviceID \"{}\"; product \"{}\".",
                g.id,
                g.service_id.as_deref().unwrap_or(DEFAULT_SERVICE_ID),
                g.service_product.as_deref().unwrap_or("natgw"),
            ),
        ));
    }
    if g.kind == super::seed::GroupType::Enterprise {
        return Err(ApiError::new(
            404,
            "InvalidParameter.InnerAccessPolicy",
            "The InnerAccessPolicy attribute of enterprise level security group can't be modified.",
        ));
    }
    let effective = g.policy != policy;
    state.set_policy(account, region, id, policy);
    if let Some(t) = token {
        state.tokens.insert(
            (account.to_string(), t.to_string()),
            TokenEntry {
                region: region.to_string(),
                group_id: id.to_string(),
                policy,
                request_id: rid.to_string(),
            },
        );
    }
    Ok(Outcome {
        body: json!({}),
        request_id: rid.to_string(),
        effective,
        replayed: false,
    })
}
