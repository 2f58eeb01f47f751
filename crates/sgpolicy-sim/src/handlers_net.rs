//! The isolation reads: `DescribeNetworkInterfaces` (its filters, both paging styles, and the
//! documented `SecurityGroupId` trap) and `DescribePrefixListAttributes`
//! (`alibaba-isolation.md` §4–5).
//!
//! Paging: `MaxResults` (10–500, out of range clamped, default 10) with `NextToken` whenever
//! either is sent; otherwise the deprecated `PageNumber`/`PageSize` (size 1–1000, default 10). A
//! token names the last interface of its page, so each page costs one index lookup plus its own
//! size, however deep into a 50,000-interface region it is; `TotalCount` counts every match.

use super::auth::Params;
use super::handlers::{arg, check_region, invalid, missing_dotted, number, Outcome};
use super::net::Eni;
use super::respond::ApiError;
use super::state::State;
use base64::Engine as _;
use serde_json::{json, Value};

/// `Name.N` values (N = 1..=100) in N order; an N out of range is `InvalidParameter.<Name>`.
pub(crate) fn repeated(p: &Params, name: &str) -> Result<Vec<String>, ApiError> {
    let prefix = format!("{name}.");
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in p.range(prefix.clone()..) {
        let Some(n) = k.strip_prefix(&prefix) else {
            break;
        };
        match n.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => {
                if !v.is_empty() {
                    out.insert(n, v.clone());
                }
            }
            _ => return Err(invalid(name)),
        }
    }
    Ok(out.into_values().collect())
}

fn encode_eni_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-eni:{last}"))
}

fn decode_eni_token(t: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("sim-eni:")
        .map(str::to_string)
}

/// The filters of one request.
struct Filters<'a> {
    vswitch: Option<&'a str>,
    group: Option<&'a str>,
    kind: Option<&'a str>,
    instance: Option<&'a str>,
    status: Option<&'a str>,
    ips: Vec<String>,
}

impl Filters<'_> {
    fn is_empty(&self) -> bool {
        self.vswitch.is_none()
            && self.group.is_none()
            && self.kind.is_none()
            && self.instance.is_none()
            && self.status.is_none()
            && self.ips.is_empty()
    }

    fn keep(&self, e: &Eni) -> bool {
        self.vswitch.map_or(true, |v| v == e.vswitch_id)
            // The documented trap: this filter finds secondary interfaces only.
            && self
                .group
                .map_or(true, |g| !e.primary && e.groups.iter().any(|x| x == g))
            && self.kind.map_or(true, |k| k == e.kind())
            && self.instance.map_or(true, |i| i == e.instance_id)
            && self.status.map_or(true, |s| s == e.status)
            && (self.ips.is_empty() || self.ips.iter().any(|ip| e.has_ip(ip)))
    }
}

/// Where a listing looks: the named interfaces, else the VPC's or the region's.
struct Scope<'a> {
    net: &'a crate::net::Network,
    account: &'a str,
    region: &'a str,
    vpc: Option<&'a str>,
    ids: &'a [String],
}

impl<'a> Scope<'a> {
    /// The interfaces in id order, after `after`.
    fn candidates(&self, after: Option<&'a str>) -> Box<dyn Iterator<Item = &'a Eni> + 'a> {
        let (net, account, region, vpc) = (self.net, self.account, self.region, self.vpc);
        if self.ids.is_empty() {
            return net.listing(account, region, vpc, after);
        }
        let mut named: Vec<&Eni> = self
            .ids
            .iter()
            .filter_map(|id| net.eni(account, region, id))
            .filter(|e| vpc.map_or(true, |v| v == e.vpc_id))
            .filter(|e| after.map_or(true, |a| e.id.as_str() > a))
            .collect();
        named.sort_by(|a, b| a.id.cmp(&b.id));
        named.dedup_by(|a, b| a.id == b.id);
        Box::new(named.into_iter())
    }
}

pub fn describe_interfaces(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let region = arg(p, "RegionId").ok_or_else(|| missing_dotted("RegionId"))?;
    let kind = match arg(p, "Type") {
        None => None,
        Some(t @ ("Primary" | "Secondary")) => Some(t),
        Some(_) => return Err(invalid("Type")),
    };
    let ids = repeated(p, "NetworkInterfaceId")?;
    let filters = Filters {
        vswitch: arg(p, "VSwitchId"),
        group: arg(p, "SecurityGroupId"),
        kind,
        instance: arg(p, "InstanceId"),
        status: arg(p, "Status"),
        ips: repeated(p, "PrivateIpAddress")?,
    };
    let vpc = arg(p, "VpcId");
    let token_mode = arg(p, "MaxResults").is_some() || arg(p, "NextToken").is_some();
    let size = match arg(p, "MaxResults") {
        None => 10,
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| invalid("MaxResults"))?
            .clamp(10, 500) as usize,
    };
    let after = match arg(p, "NextToken") {
        None => None,
        Some(t) => Some(decode_eni_token(t).ok_or_else(|| invalid("NextToken"))?),
    };
    let (page_number, page_size) = if token_mode {
        (1, size)
    } else {
        (
            number(p, "PageNumber", 1..=usize::MAX)?.unwrap_or(1),
            number(p, "PageSize", 1..=1000)?.unwrap_or(10),
        )
    };
    check_region(state, region)?;
    let scope = Scope {
        net: &state.net,
        account,
        region,
        vpc,
        ids: &ids,
    };
    let total = if ids.is_empty() && filters.is_empty() {
        scope.net.count(account, region, vpc)
    } else {
        scope.candidates(None).filter(|e| filters.keep(e)).count()
    };
    let mut body = if token_mode {
        let mut page: Vec<&Eni> = scope
            .candidates(after.as_deref())
            .filter(|e| filters.keep(e))
            .take(size + 1)
            .collect();
        let more = page.len() > size;
        page.truncate(size);
        let next = match (more, page.last()) {
            (true, Some(last)) => encode_eni_token(&last.id),
            _ => String::new(),
        };
        json!({
            "NetworkInterfaceSets": {"NetworkInterfaceSet": page.iter().map(|e| e.to_json()).collect::<Vec<Value>>()},
            "NextToken": next,
            "TotalCount": total,
        })
    } else {
        let page: Vec<Value> = scope
            .candidates(None)
            .filter(|e| filters.keep(e))
            .skip((page_number - 1).saturating_mul(page_size))
            .take(page_size)
            .map(Eni::to_json)
            .collect();
        json!({
            "NetworkInterfaceSets": {"NetworkInterfaceSet": page},
            "TotalCount": total,
            "PageNumber": page_number,
            "PageSize": page_size,
        })
    };
    body["RegionId"] = json!(region);
    Ok(Outcome::read(body, rid))
}

pub fn describe_prefix_list(
    state: &mut State,
    account: &str,
    p: &Params,
    rid: &str,
) -> Result<Outcome, ApiError> {
    let region = arg(p, "RegionId").ok_or_else(|| missing_dotted("RegionId"))?;
    let id = arg(p, "PrefixListId").ok_or_else(|| missing_dotted("PrefixListId"))?;
    check_region(state, region)?;
    let list = state.net.prefix_list(account, region, id).ok_or_else(|| {
        ApiError::new(
            404,
            "InvalidPrefixListId.NotFound",
            "The specified prefix list does not exist.",
        )
    })?;
    let entries: Vec<Value> = list
        .entries
        .iter()
        .map(|c| json!({"Cidr": c, "Description": ""}))
        .collect();
    Ok(Outcome::read(
        json!({
            "PrefixListId": list.id,
            "PrefixListName": list.name,
            "AddressFamily": list.family,
            "MaxEntries": list.entries.len().max(20),
            "Description": "",
            "CreationTime": "2024-01-01T00:00:00Z",
            "Entries": {"Entry": entries},
        }),
        rid,
    ))
}
