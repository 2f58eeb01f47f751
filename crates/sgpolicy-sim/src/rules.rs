//! Security group rules: the seed's `permissions` entries and the `AuthorizeSecurityGroup` /
//! `RevokeSecurityGroup` parameters, both in the API's own field names, checked into one [`Rule`],
//! and rendered as `DescribeSecurityGroupAttribute` returns them.
//!
//! Facts from `alibaba-isolation.md` §2–3 and the AuthorizeSecurityGroup page: priority 1–100
//! (default 1), policy `Accept`/`Drop` (default accept, any case), protocols `TCP UDP ICMP ICMPv6
//! GRE ALL` (any case), `PortRange` `start/end` within 1–65535 for TCP and UDP and `-1/-1` for the
//! others, a source (ingress) or destination (egress) that is a CIDR, a group or a prefix list.
//! Text values are kept as written (`accept`, `tcp`), so a seed can reproduce the API's mixed case.
//! An identical rule added twice is one rule (the API answers success and creates nothing).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;

/// Upper bound of rules one seeded group may hold; only bounds memory. `AuthorizeSecurityGroup`
/// enforces the documented 200 ([`API_RULE_LIMIT`]).
pub const SEED_RULE_LIMIT: usize = 10_000;
/// "The total number of outbound and inbound rules in each security group cannot exceed 200."
pub const API_RULE_LIMIT: usize = 200;

/// `Priority` as YAML or JSON may write it: `1` or `"1"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PriorityText {
    Number(u64),
    Text(String),
}

/// One rule as the seed (`permissions:`), the admin path and the write calls give it: the API's
/// field names, every field optional until [`Rule::check`] decides.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct SeedRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group_rule_id: Option<String>,
    /// `ingress` or `egress`; required in a seed, implied by the write call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port_range: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cidr_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_source_cidr_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_group_owner_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_prefix_list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_cidr_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_dest_cidr_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_group_owner_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_prefix_list_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
}

/// The rule fields a write call reads, by their parameter names (flat, or after `Permissions.N.`).
pub const RULE_PARAMS: &[&str] = &[
    "SecurityGroupRuleId",
    "IpProtocol",
    "PortRange",
    "SourcePortRange",
    "Policy",
    "Priority",
    "NicType",
    "SourceCidrIp",
    "Ipv6SourceCidrIp",
    "SourceGroupId",
    "SourceGroupOwnerAccount",
    "SourcePrefixListId",
    "DestCidrIp",
    "Ipv6DestCidrIp",
    "DestGroupId",
    "DestGroupOwnerAccount",
    "DestPrefixListId",
    "Description",
];

/// Why a rule was refused: the API's code and message, which the seed reports with its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> RuleError {
    RuleError {
        code,
        message: message.into(),
    }
}

/// A checked rule. Text fields are as written; an unset one is empty, as the API renders it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    /// `ingress` or `egress` (lower case).
    pub direction: String,
    pub ip_protocol: String,
    pub port_range: String,
    pub source_port_range: String,
    pub policy: String,
    pub priority: u32,
    pub nic_type: String,
    pub source_cidr_ip: String,
    pub ipv6_source_cidr_ip: String,
    pub source_group_id: String,
    pub source_group_owner_account: String,
    pub source_prefix_list_id: String,
    pub dest_cidr_ip: String,
    pub ipv6_dest_cidr_ip: String,
    pub dest_group_id: String,
    pub dest_group_owner_account: String,
    pub dest_prefix_list_id: String,
    pub description: String,
    pub create_time: String,
}

const PROTOCOLS: &[&str] = &["TCP", "UDP", "ICMP", "ICMPv6", "GRE", "ALL"];

/// `a.b.c.d/n` or an IPv6 `x::y/n` (a bare address counts as a host route), of the wanted family.
pub fn check_cidr(text: &str, v6: bool) -> bool {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv6() { 128 } else { 32 };
    let len_ok = len.map_or(true, |l| l.parse::<u32>().is_ok_and(|n| n <= max));
    ip.is_ipv6() == v6 && len_ok
}

/// `start/end` for TCP and UDP (1 ≤ start ≤ end ≤ 65535), `-1/-1` for every other protocol.
fn check_ports(protocol: &str, range: &str) -> bool {
    let ported = protocol.eq_ignore_ascii_case("tcp") || protocol.eq_ignore_ascii_case("udp");
    if !ported {
        return range == "-1/-1";
    }
    let Some((a, b)) = range.split_once('/') else {
        return false;
    };
    match (a.parse::<u32>(), b.parse::<u32>()) {
        (Ok(a), Ok(b)) => (1..=65535).contains(&a) && (a..=65535).contains(&b),
        _ => false,
    }
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

impl Rule {
    /// Checks `spec` as a rule of `direction` (the write call's; `None`: the spec's own, which is
    /// then required). `id` and `create_time` fill what the spec leaves out.
    pub fn check(
        spec: &SeedRule,
        direction: Option<&str>,
        id: String,
        create_time: &str,
    ) -> Result<Rule, RuleError> {
        let direction = match (direction, spec.direction.as_deref()) {
            (Some(d), _) => d.to_string(),
            (None, Some(d)) if d.eq_ignore_ascii_case("ingress") => "ingress".into(),
            (None, Some(d)) if d.eq_ignore_ascii_case("egress") => "egress".into(),
            (None, other) => {
                return Err(err(
                    "InvalidParameter.Direction",
                    format!("Direction must be ingress or egress, not {other:?}"),
                ))
            }
        };
        let protocol = text(&spec.ip_protocol);
        if !PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(&protocol)) {
            return Err(err(
                "InvalidIpProtocol.Malformed",
                format!("The specified parameter \"IpProtocol\" is not valid: {protocol:?} is not one of TCP, UDP, ICMP, ICMPv6, GRE, ALL."),
            ));
        }
        let port_range = text(&spec.port_range);
        if !check_ports(&protocol, &port_range) {
            return Err(err(
                "InvalidPortRange.Malformed",
                format!("The specified parameter \"PortRange\" is not valid: {port_range:?} (start/end within 1-65535 for TCP and UDP, -1/-1 otherwise)."),
            ));
        }
        let policy = spec.policy.clone().unwrap_or_else(|| "accept".into());
        if !(policy.eq_ignore_ascii_case("accept") || policy.eq_ignore_ascii_case("drop")) {
            return Err(err(
                "InvalidPolicy.Malformed",
                format!(
                    "The specified parameter \"Policy\" is not valid: {policy:?} (Accept or Drop)."
                ),
            ));
        }
        let priority = match &spec.priority {
            None => Some(1),
            Some(PriorityText::Number(n)) => u32::try_from(*n).ok(),
            Some(PriorityText::Text(t)) if t.is_empty() => Some(1),
            Some(PriorityText::Text(t)) => t.parse::<u32>().ok(),
        }
        .filter(|p| (1..=100).contains(p))
        .ok_or_else(|| {
            err(
                "InvalidPriority.Malformed",
                "The specified parameter \"Priority\" is not valid: an integer from 1 to 100 is expected.",
            )
        })?;
        let rule = Rule {
            id: spec
                .security_group_rule_id
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or(id),
            direction,
            ip_protocol: protocol,
            port_range,
            source_port_range: text(&spec.source_port_range),
            policy,
            priority,
            nic_type: spec
                .nic_type
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "intranet".into()),
            source_cidr_ip: text(&spec.source_cidr_ip),
            ipv6_source_cidr_ip: text(&spec.ipv6_source_cidr_ip),
            source_group_id: text(&spec.source_group_id),
            source_group_owner_account: text(&spec.source_group_owner_account),
            source_prefix_list_id: text(&spec.source_prefix_list_id),
            dest_cidr_ip: text(&spec.dest_cidr_ip),
            ipv6_dest_cidr_ip: text(&spec.ipv6_dest_cidr_ip),
            dest_group_id: text(&spec.dest_group_id),
            dest_group_owner_account: text(&spec.dest_group_owner_account),
            dest_prefix_list_id: text(&spec.dest_prefix_list_id),
            description: text(&spec.description),
            create_time: spec
                .create_time
                .clone()
                .unwrap_or_else(|| create_time.to_string()),
        };
        rule.check_peer()?;
        Ok(rule)
    }

    /// The source (ingress) or destination (egress): at least one, each well formed, and none
    /// of the other direction's fields.
    fn check_peer(&self) -> Result<(), RuleError> {
        let ingress = self.direction == "ingress";
        let (cidr, cidr6, group, prefix, name) = if ingress {
            (
                &self.source_cidr_ip,
                &self.ipv6_source_cidr_ip,
                &self.source_group_id,
                &self.source_prefix_list_id,
                "Source",
            )
        } else {
            (
                &self.dest_cidr_ip,
                &self.ipv6_dest_cidr_ip,
                &self.dest_group_id,
                &self.dest_prefix_list_id,
                "Dest",
            )
        };
        let wrong_side = if ingress {
            [
                &self.dest_cidr_ip,
                &self.ipv6_dest_cidr_ip,
                &self.dest_group_id,
                &self.dest_prefix_list_id,
            ]
        } else {
            [
                &self.source_cidr_ip,
                &self.ipv6_source_cidr_ip,
                &self.source_group_id,
                &self.source_prefix_list_id,
            ]
        };
        if wrong_side.iter().any(|v| !v.is_empty()) {
            return Err(err(
                "InvalidParameter.Conflict",
                format!(
                    "An {} rule names its peer with {name}* fields only.",
                    self.direction
                ),
            ));
        }
        if cidr.is_empty() && cidr6.is_empty() && group.is_empty() && prefix.is_empty() {
            return Err(err(
                "MissingParameter",
                format!("One of {name}CidrIp, Ipv6{name}CidrIp, {name}GroupId or {name}PrefixListId must be specified."),
            ));
        }
        if !cidr.is_empty() && !check_cidr(cidr, false) {
            return Err(err(
                "InvalidSourceCidrIp.Malformed",
                format!(
                    "The specified parameter \"{name}CidrIp\" is not a valid IPv4 CIDR: {cidr:?}."
                ),
            ));
        }
        if !cidr6.is_empty() && !check_cidr(cidr6, true) {
            return Err(err(
                "InvalidIpv6SourceCidrIp.Malformed",
                format!("The specified parameter \"Ipv6{name}CidrIp\" is not a valid IPv6 CIDR: {cidr6:?}."),
            ));
        }
        Ok(())
    }

    /// What makes two rules the same rule (an Authorize of it again creates nothing; a Revoke
    /// naming it removes it): everything but the id, description and creation time.
    pub fn identity(&self) -> String {
        [
            self.direction.as_str(),
            &self.ip_protocol.to_ascii_lowercase(),
            &self.port_range,
            &self.source_port_range,
            &self.policy.to_ascii_lowercase(),
            &self.priority.to_string(),
            &self.nic_type.to_ascii_lowercase(),
            &self.source_cidr_ip,
            &self.ipv6_source_cidr_ip,
            &self.source_group_id,
            &self.source_group_owner_account,
            &self.source_prefix_list_id,
            &self.dest_cidr_ip,
            &self.ipv6_dest_cidr_ip,
            &self.dest_group_id,
            &self.dest_group_owner_account,
            &self.dest_prefix_list_id,
        ]
        .join("\u{1f}")
    }

    /// One `Permissions.Permission[]` item: every documented field, unset ones empty, `Priority`
    /// a string as the API documents it (and the Tea SDK's model types it). `names` gives a
    /// referenced group's or prefix list's name (empty when unknown).
    pub fn to_json(&self, names: impl Fn(&str) -> String) -> Value {
        json!({
            "SecurityGroupRuleId": self.id,
            "Direction": self.direction,
            "IpProtocol": self.ip_protocol,
            "PortRange": self.port_range,
            "SourcePortRange": self.source_port_range,
            "Policy": self.policy,
            "Priority": self.priority.to_string(),
            "NicType": self.nic_type,
            "SourceCidrIp": self.source_cidr_ip,
            "Ipv6SourceCidrIp": self.ipv6_source_cidr_ip,
            "SourceGroupId": self.source_group_id,
            "SourceGroupName": names(&self.source_group_id),
            "SourceGroupOwnerAccount": self.source_group_owner_account,
            "SourcePrefixListId": self.source_prefix_list_id,
            "SourcePrefixListName": names(&self.source_prefix_list_id),
            "DestCidrIp": self.dest_cidr_ip,
            "Ipv6DestCidrIp": self.ipv6_dest_cidr_ip,
            "DestGroupId": self.dest_group_id,
            "DestGroupName": names(&self.dest_group_id),
            "DestGroupOwnerAccount": self.dest_group_owner_account,
            "DestPrefixListId": self.dest_prefix_list_id,
            "DestPrefixListName": names(&self.dest_prefix_list_id),
            "PortRangeListId": "",
            "PortRangeListName": "",
            "Description": self.description,
            "CreateTime": self.create_time,
        })
    }

    /// The rule as the seed and the admin path write it (for the console events' parameters).
    pub fn to_spec(&self) -> SeedRule {
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        SeedRule {
            security_group_rule_id: some(&self.id),
            direction: some(&self.direction),
            ip_protocol: some(&self.ip_protocol),
            port_range: some(&self.port_range),
            source_port_range: some(&self.source_port_range),
            policy: some(&self.policy),
            priority: Some(PriorityText::Text(self.priority.to_string())),
            nic_type: some(&self.nic_type),
            source_cidr_ip: some(&self.source_cidr_ip),
            ipv6_source_cidr_ip: some(&self.ipv6_source_cidr_ip),
            source_group_id: some(&self.source_group_id),
            source_group_owner_account: some(&self.source_group_owner_account),
            source_prefix_list_id: some(&self.source_prefix_list_id),
            dest_cidr_ip: some(&self.dest_cidr_ip),
            ipv6_dest_cidr_ip: some(&self.ipv6_dest_cidr_ip),
            dest_group_id: some(&self.dest_group_id),
            dest_group_owner_account: some(&self.dest_group_owner_account),
            dest_prefix_list_id: some(&self.dest_prefix_list_id),
            description: some(&self.description),
            create_time: None,
        }
    }
}

/// A stable rule id, `sgr-` and 16 hex digits derived from what identifies its slot.
pub fn rule_id(seed: &str) -> String {
    format!("sgr-{:016x}", crate::trail::fnv64(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> SeedRule {
        serde_yaml::from_str(yaml).expect("rule yaml")
    }

    #[test]
    fn a_rule_gets_the_documented_defaults_and_keeps_its_case() {
        let r = Rule::check(
            &spec("{Direction: ingress, IpProtocol: tcp, PortRange: 22/22, SourceGroupId: sg-a}"),
            None,
            "sgr-x".into(),
            "T",
        )
        .expect("valid");
        assert_eq!(
            (r.priority, r.policy.as_str(), r.ip_protocol.as_str()),
            (1, "accept", "tcp")
        );
        assert_eq!((r.id.as_str(), r.nic_type.as_str()), ("sgr-x", "intranet"));
        let j = r.to_json(|_| String::new());
        assert_eq!(j["Priority"], "1");
        assert_eq!(j["DestCidrIp"], "");
    }

    #[test]
    fn malformed_rules_are_refused_with_the_api_code() {
        for (yaml, code) in [
            ("{Direction: up, IpProtocol: TCP, PortRange: 1/2, SourceCidrIp: 10.0.0.0/8}", "InvalidParameter.Direction"),
            ("{Direction: ingress, IpProtocol: SCTP, PortRange: 1/2, SourceCidrIp: 10.0.0.0/8}", "InvalidIpProtocol.Malformed"),
            ("{Direction: ingress, IpProtocol: TCP, PortRange: 22/21, SourceCidrIp: 10.0.0.0/8}", "InvalidPortRange.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: 1/65535, SourceCidrIp: 10.0.0.0/8}", "InvalidPortRange.Malformed"),
            ("{Direction: ingress, IpProtocol: TCP, PortRange: 0/22, SourceCidrIp: 10.0.0.0/8}", "InvalidPortRange.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, Policy: allow, SourceCidrIp: 10.0.0.0/8}", "InvalidPolicy.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, Priority: 101, SourceCidrIp: 10.0.0.0/8}", "InvalidPriority.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, Priority: \"0\", SourceCidrIp: 10.0.0.0/8}", "InvalidPriority.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1}", "MissingParameter"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, SourceCidrIp: 10.0.0.0/33}", "InvalidSourceCidrIp.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, SourceCidrIp: \"2408::/16\"}", "InvalidSourceCidrIp.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, Ipv6SourceCidrIp: 10.0.0.0/8}", "InvalidIpv6SourceCidrIp.Malformed"),
            ("{Direction: ingress, IpProtocol: ALL, PortRange: -1/-1, DestCidrIp: 10.0.0.0/8}", "InvalidParameter.Conflict"),
            ("{Direction: egress, IpProtocol: ALL, PortRange: -1/-1, SourceGroupId: sg-a}", "InvalidParameter.Conflict"),
        ] {
            let got = Rule::check(&spec(yaml), None, "sgr-x".into(), "T").map(|_| ());
            assert_eq!(got.map_err(|e| e.code), Err(code), "{yaml}");
        }
    }

    #[test]
    fn the_identity_ignores_case_id_and_description_but_not_the_source() {
        let r = |y: &str| Rule::check(&spec(y), None, "id".into(), "T").expect("valid");
        let a = r("{Direction: ingress, IpProtocol: TCP, PortRange: 22/22, Policy: Accept, SourceGroupId: sg-a}");
        let b = r("{Direction: ingress, IpProtocol: tcp, PortRange: 22/22, SecurityGroupRuleId: sgr-2, Description: d, SourceGroupId: sg-a}");
        let c = r("{Direction: ingress, IpProtocol: tcp, PortRange: 22/22, SourceGroupId: sg-b}");
        assert_eq!(a.identity(), b.identity());
        assert_ne!(a.identity(), c.identity());
    }
}
