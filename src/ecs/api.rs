//! The ECS calls sgpolicy makes, as typed requests and leniently parsed responses.
//!
//! Responses are parsed for the fields we use and nothing else. The rule list of
//! DescribeSecurityGroupAttribute is deserialised only for the isolation check ([`RulePage`]), and
//! then every field as a lenient string: its number fields are typed inconsistently across API
//! versions (`Priority` is a number in some answers and a string in others).

use crate::model::GroupMeta;
use crate::model::Policy;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One group of a DescribeSecurityGroups listing: what import and the coverage report need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListedGroup {
    pub id: String,
    /// Type, managed flags, name and VPC.
    pub meta: GroupMeta,
    pub tags: BTreeMap<String, String>,
}

pub const VERSION: &str = "2014-05-26";
pub const DESCRIBE_ATTRIBUTE: &str = "DescribeSecurityGroupAttribute";
pub const DESCRIBE_GROUPS: &str = "DescribeSecurityGroups";
pub const MODIFY_POLICY: &str = "ModifySecurityGroupPolicy";
pub const DESCRIBE_INTERFACES: &str = "DescribeNetworkInterfaces";
pub const DESCRIBE_PREFIX_LIST: &str = "DescribePrefixListAttributes";

/// The largest rule page the API allows: the isolation check wants every rule in as few calls as
/// possible (10..1000, default 500).
pub const LARGEST_RULE_PAGE: &str = "1000";

/// The largest DescribeNetworkInterfaces page (10..500; larger values are clamped).
pub const LARGEST_INTERFACE_PAGE: &str = "500";

/// DescribeSecurityGroups takes at most this many ids per call.
pub const MAX_IDS_PER_DESCRIBE: usize = 100;

/// The smallest rule page the API allows: we only want the policy, not the rules.
pub const SMALLEST_RULE_PAGE: &str = "10";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AttributeResponse {
    pub inner_access_policy: Option<String>,
}

impl AttributeResponse {
    pub fn policy(&self) -> Option<Policy> {
        self.inner_access_policy.as_deref().and_then(Policy::parse)
    }
}

/// A value the API sends as a string, a number or a boolean depending on the version, read as text;
/// `null` and the empty string are "not set".
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// One security group rule exactly as DescribeSecurityGroupAttribute returns it, every field a
/// lenient string (see [`lenient`]); the isolation model decides what the values mean.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Permission {
    #[serde(deserialize_with = "lenient")]
    pub security_group_rule_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub direction: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub ip_protocol: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub port_range: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub policy: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub priority: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_cidr_ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub ipv6_source_cidr_ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_group_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_group_owner_account: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub source_prefix_list_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub dest_cidr_ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub ipv6_dest_cidr_ip: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub dest_group_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub dest_group_owner_account: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub dest_prefix_list_id: Option<String>,
}

/// One page of DescribeSecurityGroupAttribute with its rules: the policy, the VPC (none: a classic
/// network group) and the token of the next page, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulePage {
    pub policy: Option<Policy>,
    pub vpc_id: Option<String>,
    pub rules: Vec<Permission>,
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RulesResponse {
    #[serde(default)]
    pub inner_access_policy: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub permissions: PermissionList,
    #[serde(default, deserialize_with = "lenient")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct PermissionList {
    #[serde(rename = "Permission", default)]
    pub permission: Vec<Permission>,
}

impl From<RulesResponse> for RulePage {
    fn from(r: RulesResponse) -> RulePage {
        RulePage {
            policy: r.inner_access_policy.as_deref().and_then(Policy::parse),
            vpc_id: r.vpc_id,
            rules: r.permissions.permission,
            next_token: r.next_token,
        }
    }
}

/// One network interface of a DescribeNetworkInterfaces listing: what the isolation check needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub id: String,
    pub vpc_id: Option<String>,
    pub instance_id: Option<String>,
    pub status: Option<String>,
    /// The primary private address first, then the others, then IPv6 addresses; as sent.
    pub addresses: Vec<String>,
    pub groups: Vec<String>,
}

/// One page of DescribeNetworkInterfaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfacePage {
    pub interfaces: Vec<Interface>,
    pub next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct InterfacesResponse {
    #[serde(default)]
    pub network_interface_sets: InterfaceList,
    #[serde(default, deserialize_with = "lenient")]
    pub next_token: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct InterfaceList {
    #[serde(rename = "NetworkInterfaceSet", default)]
    pub network_interface_set: Vec<InterfaceItem>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct InterfaceItem {
    #[serde(deserialize_with = "lenient")]
    pub network_interface_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub vpc_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub instance_id: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub status: Option<String>,
    #[serde(deserialize_with = "lenient")]
    pub private_ip_address: Option<String>,
    pub private_ip_sets: PrivateIpList,
    pub ipv6_sets: Ipv6List,
    pub security_group_ids: GroupIdList,
}

#[derive(Deserialize, Default)]
pub(crate) struct PrivateIpList {
    #[serde(rename = "PrivateIpSet", default)]
    pub private_ip_set: Vec<PrivateIp>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PrivateIp {
    #[serde(deserialize_with = "lenient")]
    pub private_ip_address: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct Ipv6List {
    #[serde(rename = "Ipv6Set", default)]
    pub ipv6_set: Vec<Ipv6>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Ipv6 {
    #[serde(deserialize_with = "lenient")]
    pub ipv6_address: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct GroupIdList {
    #[serde(rename = "SecurityGroupId", default)]
    pub security_group_id: Vec<String>,
}

impl From<InterfacesResponse> for InterfacePage {
    fn from(r: InterfacesResponse) -> InterfacePage {
        let interfaces = r
            .network_interface_sets
            .network_interface_set
            .into_iter()
            .filter_map(|i| {
                let mut addresses: Vec<String> = Vec::new();
                let more = i.private_ip_sets.private_ip_set.into_iter();
                let v6 = i.ipv6_sets.ipv6_set.into_iter();
                for a in i
                    .private_ip_address
                    .into_iter()
                    .chain(more.filter_map(|p| p.private_ip_address))
                    .chain(v6.filter_map(|p| p.ipv6_address))
                {
                    if !addresses.contains(&a) {
                        addresses.push(a);
                    }
                }
                Some(Interface {
                    id: i.network_interface_id?,
                    vpc_id: i.vpc_id,
                    instance_id: i.instance_id,
                    status: i.status,
                    addresses,
                    groups: i.security_group_ids.security_group_id,
                })
            })
            .collect();
        InterfacePage {
            interfaces,
            next_token: r.next_token,
        }
    }
}

/// A prefix list's entries (CIDR blocks, as sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixList {
    pub id: String,
    pub entries: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PrefixListResponse {
    #[serde(default, deserialize_with = "lenient")]
    pub prefix_list_id: Option<String>,
    #[serde(default)]
    pub entries: EntryList,
}

#[derive(Deserialize, Default)]
pub(crate) struct EntryList {
    #[serde(rename = "Entry", default)]
    pub entry: Vec<Entry>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Entry {
    #[serde(deserialize_with = "lenient")]
    pub cidr: Option<String>,
}

impl PrefixListResponse {
    pub fn into_list(self, asked: &str) -> PrefixList {
        PrefixList {
            id: self.prefix_list_id.unwrap_or_else(|| asked.to_string()),
            entries: self
                .entries
                .entry
                .into_iter()
                .filter_map(|e| e.cidr)
                .collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GroupsResponse {
    #[serde(default)]
    pub security_groups: GroupList,
    #[serde(default)]
    pub next_token: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct GroupList {
    #[serde(rename = "SecurityGroup", default)]
    pub security_group: Vec<GroupItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct GroupItem {
    pub security_group_id: String,
    #[serde(default)]
    pub security_group_type: Option<String>,
    #[serde(default)]
    pub service_managed: Option<bool>,
    /// A number in some API versions, a string in others.
    #[serde(rename = "ServiceID", default)]
    pub service_id: Option<serde_json::Value>,
    #[serde(default)]
    pub security_group_name: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// `{"Tag": [{"TagKey", "TagValue"}]}`; absent in some answers.
    #[serde(default)]
    pub tags: Option<TagList>,
}

#[derive(Deserialize, Default)]
pub(crate) struct TagList {
    #[serde(rename = "Tag", default)]
    pub tag: Vec<TagItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TagItem {
    #[serde(default)]
    pub tag_key: Option<String>,
    #[serde(default)]
    pub tag_value: Option<String>,
}

impl GroupItem {
    /// The group as a listing shows it: id, flags, name, VPC and tags (sorted by key; a tag without a
    /// key is dropped, one without a value has the empty value).
    pub fn listed(self) -> ListedGroup {
        let meta = self.meta();
        let tags = self
            .tags
            .map(|t| t.tag)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                let key = t.tag_key.filter(|k| !k.is_empty())?;
                Some((key, t.tag_value.unwrap_or_default()))
            })
            .collect();
        ListedGroup {
            id: self.security_group_id,
            meta,
            tags,
        }
    }

    pub fn meta(&self) -> GroupMeta {
        let service_id = match &self.service_id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        GroupMeta {
            enterprise: self
                .security_group_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("enterprise")),
            service_managed: self.service_managed.unwrap_or(false),
            service_id,
            name: self.security_group_name.clone().filter(|s| !s.is_empty()),
            vpc_id: self.vpc_id.clone().filter(|s| !s.is_empty()),
        }
    }
}

/// `SecurityGroupIds` is a JSON array inside a string parameter.
pub fn ids_param(ids: &[String]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_response_ignores_oddly_typed_rules() {
        let body = r#"{"RequestId":"X","InnerAccessPolicy":"Drop","Permissions":{"Permission":[{"Priority":"1","PortRange":-1,"Weird":{"a":[1,"2"]}}]}}"#;
        let r: AttributeResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.policy(), Some(Policy::Drop));
    }

    #[test]
    fn group_item_reads_service_id_as_string_or_number() {
        let a: GroupItem = serde_json::from_str(r#"{"SecurityGroupId":"sg-a","SecurityGroupType":"enterprise","ServiceManaged":false,"ServiceID":1679259531804325}"#).unwrap();
        assert!(a.meta().enterprise);
        assert_eq!(a.meta().service_id.as_deref(), Some("1679259531804325"));
        let b: GroupItem = serde_json::from_str(r#"{"SecurityGroupId":"sg-b","SecurityGroupType":"normal","ServiceManaged":true,"ServiceID":"42"}"#).unwrap();
        assert!(!b.meta().enterprise && b.meta().service_managed);
        assert_eq!(b.meta().service_id.as_deref(), Some("42"));
    }

    #[test]
    fn a_listed_group_keeps_its_name_vpc_and_tags_and_drops_keyless_tags() {
        let item: GroupItem = serde_json::from_str(
            r#"{"SecurityGroupId":"sg-a","SecurityGroupName":"web","VpcId":"vpc-1","Tags":{"Tag":[{"TagKey":"team","TagValue":"web"},{"TagKey":"env"},{"TagValue":"orphan"}]}}"#,
        )
        .unwrap();
        let g = item.listed();
        assert_eq!(g.id, "sg-a");
        assert_eq!(g.meta.name.as_deref(), Some("web"));
        assert_eq!(g.meta.vpc_id.as_deref(), Some("vpc-1"));
        let tags: Vec<(&str, &str)> = g
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("env", ""), ("team", "web")]);
        let bare: GroupItem = serde_json::from_str(r#"{"SecurityGroupId":"sg-b"}"#).unwrap();
        assert!(bare.listed().tags.is_empty());
    }

    #[test]
    fn a_rule_page_reads_numbers_and_strings_alike_and_empty_strings_as_unset() {
        let body = r#"{"InnerAccessPolicy":"Drop","VpcId":"vpc-1","NextToken":"","Permissions":{"Permission":[
            {"SecurityGroupRuleId":"sgr-1","Direction":"ingress","IpProtocol":"TCP","PortRange":"22/22","Policy":"accept","Priority":"1","SourceGroupId":"sg-a","SourceCidrIp":"","NicType":"intranet"},
            {"SecurityGroupRuleId":"sgr-2","Direction":"egress","IpProtocol":"ALL","PortRange":-1,"Policy":"Drop","Priority":2,"DestCidrIp":"10.0.0.0/8"}]}}"#;
        let page: RulePage = serde_json::from_str::<RulesResponse>(body).unwrap().into();
        assert_eq!(page.policy, Some(Policy::Drop));
        assert_eq!(page.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(page.next_token, None, "an empty token is the last page");
        assert_eq!(page.rules[0].priority.as_deref(), Some("1"));
        assert_eq!(page.rules[0].source_cidr_ip, None);
        assert_eq!(page.rules[1].priority.as_deref(), Some("2"));
        assert_eq!(page.rules[1].port_range.as_deref(), Some("-1"));
    }

    #[test]
    fn an_interface_lists_every_address_once_and_its_groups() {
        let body = r#"{"NextToken":"t2","NetworkInterfaceSets":{"NetworkInterfaceSet":[
            {"NetworkInterfaceId":"eni-1","VpcId":"vpc-1","InstanceId":"i-1","Status":"InUse","PrivateIpAddress":"10.0.0.1",
             "PrivateIpSets":{"PrivateIpSet":[{"PrivateIpAddress":"10.0.0.1","Primary":true},{"PrivateIpAddress":"10.0.0.9","Primary":false}]},
             "Ipv6Sets":{"Ipv6Set":[{"Ipv6Address":"2408:4000::1"}]},"SecurityGroupIds":{"SecurityGroupId":["sg-a","sg-b"]}},
            {"VpcId":"vpc-1"}]}}"#;
        let page: InterfacePage = serde_json::from_str::<InterfacesResponse>(body)
            .unwrap()
            .into();
        assert_eq!(page.next_token.as_deref(), Some("t2"));
        assert_eq!(
            page.interfaces.len(),
            1,
            "an interface without an id is dropped"
        );
        let eni = &page.interfaces[0];
        assert_eq!(eni.addresses, ["10.0.0.1", "10.0.0.9", "2408:4000::1"]);
        assert_eq!(eni.groups, ["sg-a", "sg-b"]);
        assert_eq!(eni.status.as_deref(), Some("InUse"));
    }

    #[test]
    fn ids_are_sent_as_a_json_array_string() {
        assert_eq!(
            ids_param(&["sg-a".into(), "sg-\"b".into()]),
            r#"["sg-a","sg-\"b"]"#
        );
    }
}
