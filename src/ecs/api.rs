//! The three ECS calls sgpolicy makes, as typed requests and leniently parsed responses.
//!
//! Responses are parsed for the fields we use and nothing else: the rule list of
//! DescribeSecurityGroupAttribute can be large and its number fields are typed inconsistently across
//! API versions, so it is never deserialised.

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
    fn ids_are_sent_as_a_json_array_string() {
        assert_eq!(
            ids_param(&["sg-a".into(), "sg-\"b".into()]),
            r#"["sg-a","sg-\"b"]"#
        );
    }
}
