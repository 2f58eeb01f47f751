//! One ActionTrail record (and the CloudEvents envelope EventBridge wraps it in) read into a
//! [`Change`]: which group, what value was sent, and who sent it. Pure: no I/O, no clock.
//!
//! Records are read leniently, as the reference asks: unknown fields are ignored, parameter names
//! match whatever their case, `requestParameters` may be an object or a JSON string of one. What a
//! record cannot be used for is an [`Ignored`] reason, never an error: a record is a hint.

use crate::model::Policy;
use serde_json::Value;
use std::fmt;

/// The ECS action whose events the policy is corrected for.
pub const MODIFY_POLICY_EVENT: &str = "ModifySecurityGroupPolicy";

/// The ECS actions that can change who can reach whom (the isolation reference's section 6; an
/// ActionTrail event name is the action's name): the daemon re-checks the isolation of the declared
/// `Drop` groups they affect. `ModifySecurityGroupPolicy` is one too (the policy of a group that
/// members share).
pub const REACH_EVENTS: &[&str] = &[
    "AuthorizeSecurityGroup",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroup",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRule",
    "ModifySecurityGroupEgressRule",
    MODIFY_POLICY_EVENT,
    "JoinSecurityGroup",
    "LeaveSecurityGroup",
    "ModifyInstanceAttribute",
    "ModifyNetworkInterfaceAttribute",
    "CreateNetworkInterface",
    "AttachNetworkInterface",
    "DetachNetworkInterface",
    "DeleteNetworkInterface",
    "RunInstances",
    "CreateInstance",
    "AssignPrivateIpAddresses",
    "ModifyPrefixList",
];

/// How many ids of one kind a record may name before the rest are dropped (a hostile or broken
/// record cannot make the daemon hold more; such a record still re-checks what it names).
const MAX_NAMED: usize = 1000;
/// How deep nested request parameters are followed.
const MAX_DEPTH: usize = 8;

/// The ids a write names, whichever form its repeated parameters took: flat (`SecurityGroupIds.1`,
/// `Permissions.1.SourceGroupId`), nested (`{"Permissions": [{"SourceGroupId": …}]}`), or a JSON
/// string of a list (`"SecurityGroupIds": "[\"sg-1\"]"`, as the SDKs send some lists). How real
/// records carry them is not documented, so every form is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// `SecurityGroupId(s)`, `SourceGroupId`, `DestGroupId`.
    pub groups: Vec<String>,
    /// `NetworkInterfaceId(s)`.
    pub interfaces: Vec<String>,
    /// `InstanceId(s)`.
    pub instances: Vec<String>,
    /// `PrefixListId`, `SourcePrefixListId`, `DestPrefixListId`.
    pub prefix_lists: Vec<String>,
    /// `VpcId`, when the call names one.
    pub vpc: Option<String>,
}

impl Named {
    /// Nothing placeable: the daemon re-checks every declared `Drop` group of the region (or VPC).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
            && self.interfaces.is_empty()
            && self.instances.is_empty()
            && self.prefix_lists.is_empty()
    }

    fn add(&mut self, key: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            return;
        }
        let list = match key.to_ascii_lowercase().as_str() {
            "securitygroupid" | "securitygroupids" | "sourcegroupid" | "destgroupid" => {
                &mut self.groups
            }
            "networkinterfaceid" | "networkinterfaceids" => &mut self.interfaces,
            "instanceid" | "instanceids" => &mut self.instances,
            "prefixlistid" | "sourceprefixlistid" | "destprefixlistid" => &mut self.prefix_lists,
            "vpcid" => {
                self.vpc.get_or_insert_with(|| value.to_string());
                return;
            }
            _ => return,
        };
        if list.len() < MAX_NAMED && !list.iter().any(|v| v == value) {
            list.push(value.to_string());
        }
    }

    /// Collects the ids under `key` in `v`, following objects, lists and JSON strings of lists.
    fn collect(&mut self, key: &str, v: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match v {
            Value::Object(map) => {
                for (k, inner) in map {
                    // `Permissions.1.SourceGroupId` → `SourceGroupId`; `SecurityGroupIds.2` →
                    // `SecurityGroupIds`: the last part that is not a number.
                    let name = k
                        .rsplit('.')
                        .find(|p| !p.is_empty() && !p.bytes().all(|b| b.is_ascii_digit()))
                        .unwrap_or(key);
                    self.collect(name, inner, depth + 1);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.collect(key, item, depth + 1);
                }
            }
            Value::String(s) if s.trim_start().starts_with('[') => {
                match serde_json::from_str::<Value>(s) {
                    Ok(list @ Value::Array(_)) => self.collect(key, &list, depth + 1),
                    _ => self.add(key, s),
                }
            }
            Value::String(s) => self.add(key, s),
            _ => {}
        }
    }

    /// The ids `params` names.
    pub fn of(params: &Value) -> Named {
        let mut named = Named::default();
        named.collect("", params, 0);
        named
    }
}
/// Every ClientToken sgpolicy sends starts with this (see `token`): such a write is its own.
pub const OWN_TOKEN_PREFIX: &str = "sgpolicy-";

/// `userIdentity.type`: bounded, so it can be a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActorType {
    RootAccount,
    RamUser,
    AssumedRole,
    System,
    Unknown,
}

impl ActorType {
    pub fn parse(s: &str) -> ActorType {
        match s {
            "root-account" => ActorType::RootAccount,
            "ram-user" => ActorType::RamUser,
            "assumed-role" => ActorType::AssumedRole,
            "system" => ActorType::System,
            _ => ActorType::Unknown,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ActorType::RootAccount => "root-account",
            ActorType::RamUser => "ram-user",
            ActorType::AssumedRole => "assumed-role",
            ActorType::System => "system",
            ActorType::Unknown => "unknown",
        }
    }
}

/// `eventType`: a console change or an API call (SDK, CLI, Terraform, another tool).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    ApiCall,
    ConsoleOperation,
    ServiceEvent,
    Unknown,
}

impl EventType {
    pub fn parse(s: &str) -> EventType {
        match s {
            "ApiCall" => EventType::ApiCall,
            "ConsoleOperation" => EventType::ConsoleOperation,
            "AliyunServiceEvent" => EventType::ServiceEvent,
            _ => EventType::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::ApiCall => "ApiCall",
            EventType::ConsoleOperation => "ConsoleOperation",
            EventType::ServiceEvent => "AliyunServiceEvent",
            EventType::Unknown => "unknown",
        }
    }
}

/// Who made a change, as ActionTrail recorded it: what the audit line, the JSON report and a fight
/// warning name. Strings are as recorded (never secrets: the access key id is left out on purpose,
/// it identifies a credential, not a person).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Author {
    pub actor: ActorType,
    /// `userName`, or else `principalId` (a role session, a root account).
    pub name: Option<String>,
    pub principal_id: Option<String>,
    pub event_type: EventType,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub event_time: Option<String>,
    pub event_id: String,
    /// The `InnerAccessPolicy` the call sent (the value the group has if nothing undid it since): a
    /// read that finds it is the drift this event announced.
    pub set_to: Option<Policy>,
    /// How the daemon heard it (`None` until it does): a pushed identity is taken on the token
    /// holder's word, a pulled one is ActionTrail's own.
    pub via: Option<super::Via>,
}

impl Author {
    /// Whether two records name the same principal (type, name, principal id).
    pub fn same_identity(&self, other: &Author) -> bool {
        (self.actor, &self.name, &self.principal_id)
            == (other.actor, &other.name, &other.principal_id)
    }
}

impl fmt::Display for Author {
    /// `ram-user alice`, `assumed-role 3001…:session`, `root-account`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.actor.label())?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        Ok(())
    }
}

/// What one record announces: a ModifySecurityGroupPolicy of a group, or another write that can
/// change who can reach whom ([`REACH_EVENTS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The event's name (the API action).
    pub action: String,
    /// The account the record belongs to (`userIdentity.accountId`, or the envelope's), if named.
    pub account_id: Option<String>,
    pub region: String,
    /// The group a ModifySecurityGroupPolicy names (always present: a record without one is
    /// [`Ignored::Malformed`]); the first group another write names, if it names one (an interface or
    /// prefix-list write may name none: see `named`).
    pub group_id: Option<String>,
    /// Every id the call names (for the isolation re-check).
    pub named: Named,
    pub client_token: Option<String>,
    pub author: Author,
}

impl Change {
    /// A ModifySecurityGroupPolicy record: the group's policy may have drifted.
    pub fn is_policy_change(&self) -> bool {
        self.action == MODIFY_POLICY_EVENT
    }

    /// One of sgpolicy's own writes that set the value the folder wants: nothing to look at. A write
    /// with sgpolicy's token prefix that sent anything else (an older revision on another replica, or
    /// a tool borrowing the prefix) is still read.
    pub fn is_own_write_of(&self, desired: Policy) -> bool {
        self.client_token
            .as_deref()
            .is_some_and(|t| t.starts_with(OWN_TOKEN_PREFIX))
            && self.author.set_to == Some(desired)
    }
}

/// Why a record causes no read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Another action (a rule change, another service).
    OtherEvent(String),
    /// The call failed (`errorCode`): it changed nothing.
    FailedCall(String),
    /// A field the record needs is missing or of the wrong type.
    Malformed(&'static str),
}

impl Ignored {
    /// Bounded, for the `result` label of the event metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Ignored::OtherEvent(_) => "ignored_other_event",
            Ignored::FailedCall(_) => "ignored_failed_call",
            Ignored::Malformed(_) => "ignored_malformed",
        }
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::OtherEvent(name) => write!(
                f,
                "event {name:?} changes neither a group's policy nor who can reach whom"
            ),
            Ignored::FailedCall(code) => write!(f, "the call failed ({code}) and changed nothing"),
            Ignored::Malformed(what) => write!(f, "the record has no usable {what}"),
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn owned(v: &Value, key: &str) -> Option<String> {
    text(v, key).map(str::to_string)
}

/// A request parameter by name, whatever the case it was sent in.
fn param<'a>(params: &'a Value, name: &str) -> Option<&'a str> {
    params
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
        .filter(|s| !s.is_empty())
}

/// Reads one ActionTrail record. `region` is the fallback when neither `acsRegion` nor the
/// parameters name one (the region polled, or the envelope's).
pub fn parse_record(record: &Value, region: Option<&str>) -> Result<Change, Ignored> {
    let name = text(record, "eventName").ok_or(Ignored::Malformed("eventName"))?;
    if !REACH_EVENTS.contains(&name) {
        return Err(Ignored::OtherEvent(name.to_string()));
    }
    if let Some(code) = text(record, "errorCode") {
        return Err(Ignored::FailedCall(code.to_string()));
    }
    let event_id = owned(record, "eventId").ok_or(Ignored::Malformed("eventId"))?;
    // Some deliveries carry the parameters as a JSON string rather than an object.
    let parsed;
    let params = match record.get("requestParameters") {
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|_| Ignored::Malformed("requestParameters"))?;
            &parsed
        }
        Some(v @ Value::Object(_)) => v,
        _ => return Err(Ignored::Malformed("requestParameters")),
    };
    let mut named = Named::of(params);
    let group_id = match param(params, "SecurityGroupId") {
        Some(id) => {
            // The group the call changed comes first (parameters are read in name order).
            if let Some(at) = named.groups.iter().position(|g| g == id.trim()) {
                let own = named.groups.remove(at);
                named.groups.insert(0, own);
            }
            Some(id.to_string())
        }
        None if name == MODIFY_POLICY_EVENT => {
            return Err(Ignored::Malformed("requestParameters.SecurityGroupId"))
        }
        None => named.groups.first().cloned(),
    };
    let region = text(record, "acsRegion")
        .or_else(|| param(params, "RegionId"))
        .or(region)
        .ok_or(Ignored::Malformed("acsRegion"))?
        .to_string();
    let identity = record.get("userIdentity").unwrap_or(&Value::Null);
    Ok(Change {
        action: name.to_string(),
        account_id: owned(identity, "accountId"),
        region,
        group_id,
        named,
        client_token: param(params, "ClientToken").map(str::to_string),
        author: author_of(record, identity, params, event_id),
    })
}

/// Who made the call the record describes, from where, and what policy it set.
fn author_of(record: &Value, identity: &Value, params: &Value, event_id: String) -> Author {
    let principal_id = owned(identity, "principalId");
    Author {
        actor: ActorType::parse(text(identity, "type").unwrap_or_default()),
        name: owned(identity, "userName").or_else(|| principal_id.clone()),
        principal_id,
        event_type: EventType::parse(text(record, "eventType").unwrap_or_default()),
        source_ip: owned(record, "sourceIpAddress"),
        user_agent: owned(record, "userAgent"),
        event_time: owned(record, "eventTime"),
        event_id,
        set_to: param(params, "InnerAccessPolicy").and_then(Policy::parse),
        via: None,
    }
}

/// A CloudEvents 1.0 envelope (EventBridge's HTTP target body) around one record.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// (`source`, `id`): the delivery's identity; a redelivery repeats it.
    pub source: &'a str,
    pub id: &'a str,
    pub record: &'a Value,
    pub account_id: Option<&'a str>,
    pub region: Option<&'a str>,
}

/// Reads an envelope; `Err` names the field that is missing.
pub fn parse_envelope(v: &Value) -> Result<Envelope<'_>, Ignored> {
    if !v.is_object() {
        return Err(Ignored::Malformed("CloudEvents envelope (a JSON object)"));
    }
    let source = text(v, "source").ok_or(Ignored::Malformed("source"))?;
    let id = text(v, "id").ok_or(Ignored::Malformed("id"))?;
    let record = v
        .get("data")
        .filter(|d| d.is_object())
        .ok_or(Ignored::Malformed("data"))?;
    Ok(Envelope {
        source,
        id,
        record,
        account_id: text(v, "aliyunaccountid"),
        region: text(v, "aliyunregionid"),
    })
}

impl Envelope<'_> {
    /// The record's change; the envelope's account fills in a record that names none.
    pub fn change(&self) -> Result<Change, Ignored> {
        let mut c = parse_record(self.record, self.region)?;
        if c.account_id.is_none() {
            c.account_id = self.account_id.map(str::to_string);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn console_flip() -> Value {
        json!({
            "eventId": "92b33345-0cef-47be-821f-fb9914d30001",
            "eventName": "ModifySecurityGroupPolicy",
            "eventTime": "2026-11-28T04:10:26Z",
            "eventType": "ConsoleOperation",
            "acsRegion": "cn-hangzhou",
            "requestParameters": {"SecurityGroupId": "sg-1", "RegionId": "cn-hangzhou", "InnerAccessPolicy": "Accept"},
            "userIdentity": {"type": "ram-user", "userName": "alice", "principalId": "277400", "accountId": "1234", "accessKeyId": "LTAIsecretish"},
            "sourceIpAddress": "42.120.1.2",
            "userAgent": "ecs.console.aliyun.com",
            "somethingNew": {"ignored": true}
        })
    }

    #[test]
    fn a_console_flip_names_the_group_the_value_and_the_author() {
        let c = parse_record(&console_flip(), None).unwrap();
        assert_eq!(
            (c.region.as_str(), c.group_id.as_deref()),
            ("cn-hangzhou", Some("sg-1"))
        );
        assert_eq!(c.author.set_to, Some(Policy::Accept));
        assert_eq!(c.account_id.as_deref(), Some("1234"));
        assert_eq!(c.author.actor, ActorType::RamUser);
        assert_eq!(c.author.name.as_deref(), Some("alice"));
        assert_eq!(c.author.event_type, EventType::ConsoleOperation);
        assert_eq!(c.author.source_ip.as_deref(), Some("42.120.1.2"));
        assert_eq!(c.author.event_time.as_deref(), Some("2026-11-28T04:10:26Z"));
        assert_eq!(c.author.to_string(), "ram-user alice");
        // The access key id identifies a credential: it is not part of the author.
        assert!(!format!("{:?}", c.author).contains("LTAI"));
    }

    #[test]
    fn parameters_match_in_any_case_and_may_be_a_json_string() {
        let mut r = console_flip();
        r["requestParameters"] = json!(
            "{\"securitygroupid\":\"sg-9\",\"innerAccessPolicy\":\"drop\",\"clienttoken\":\"sgpolicy-x\"}"
        );
        r.as_object_mut().unwrap().remove("acsRegion");
        let c = parse_record(&r, Some("cn-beijing")).unwrap();
        assert_eq!(c.group_id.as_deref(), Some("sg-9"));
        assert_eq!(c.region, "cn-beijing");
        assert_eq!(c.author.set_to, Some(Policy::Drop));
        assert_eq!(c.client_token.as_deref(), Some("sgpolicy-x"));
    }

    #[test]
    fn failed_calls_other_actions_and_broken_records_are_ignored_with_a_reason() {
        let mut failed = console_flip();
        failed["errorCode"] = json!("Forbidden.RAM");
        assert_eq!(
            parse_record(&failed, None),
            Err(Ignored::FailedCall("Forbidden.RAM".into()))
        );
        let mut other = console_flip();
        other["eventName"] = json!("DescribeInstances");
        assert_eq!(
            parse_record(&other, None).unwrap_err().label(),
            "ignored_other_event"
        );
        let mut no_group = console_flip();
        no_group["requestParameters"] = json!({"RegionId": "cn-hangzhou"});
        assert_eq!(
            parse_record(&no_group, None),
            Err(Ignored::Malformed("requestParameters.SecurityGroupId"))
        );
        assert_eq!(
            parse_record(&json!([1]), None),
            Err(Ignored::Malformed("eventName"))
        );
    }

    fn reach_event(name: &str, params: Value) -> Value {
        json!({"eventId": "e-reach", "eventName": name, "acsRegion": "cn-hangzhou",
            "eventType": "ApiCall", "requestParameters": params,
            "userIdentity": {"type": "ram-user", "userName": "bob", "accountId": "1234"}})
    }

    #[test]
    fn a_rule_change_names_its_group_and_the_source_group_in_flat_or_nested_form() {
        let flat = reach_event(
            "AuthorizeSecurityGroup",
            json!({"SecurityGroupId": "sg-d", "Permissions.1.SourceGroupId": "sg-src",
                   "Permissions.1.IpProtocol": "TCP", "Permissions.2.SourcePrefixListId": "pl-1"}),
        );
        let nested = reach_event(
            "AuthorizeSecurityGroup",
            json!({"SecurityGroupId": "sg-d", "Permissions": [
                {"SourceGroupId": "sg-src", "IpProtocol": "TCP"}, {"SourcePrefixListId": "pl-1"}]}),
        );
        for record in [flat, nested] {
            let c = parse_record(&record, None).unwrap();
            assert_eq!(c.action, "AuthorizeSecurityGroup");
            assert!(!c.is_policy_change());
            assert_eq!(c.group_id.as_deref(), Some("sg-d"));
            assert_eq!(c.named.groups, ["sg-d", "sg-src"]);
            assert_eq!(c.named.prefix_lists, ["pl-1"]);
            assert_eq!(c.author.to_string(), "ram-user bob");
        }
    }

    #[test]
    fn repeated_ids_are_read_as_numbered_names_lists_or_a_json_string_of_a_list() {
        let numbered = reach_event(
            "ModifyInstanceAttribute",
            json!({"InstanceId": "i-1", "SecurityGroupIds.1": "sg-a", "SecurityGroupIds.2": "sg-b"}),
        );
        let listed = reach_event(
            "ModifyInstanceAttribute",
            json!({"InstanceId": "i-1", "SecurityGroupIds": ["sg-a", "sg-b"]}),
        );
        let stringed = reach_event(
            "RunInstances",
            json!({"InstanceId": "i-1", "SecurityGroupIds": "[\"sg-a\",\"sg-b\"]"}),
        );
        for record in [numbered, listed, stringed] {
            let c = parse_record(&record, None).unwrap();
            assert_eq!(c.named.groups, ["sg-a", "sg-b"], "{record}");
            assert_eq!(c.named.instances, ["i-1"]);
            assert_eq!(c.group_id.as_deref(), Some("sg-a"));
        }
    }

    #[test]
    fn an_interface_event_names_only_the_interface_and_one_naming_nothing_is_unplaceable() {
        let attach = parse_record(
            &reach_event(
                "AttachNetworkInterface",
                json!({"NetworkInterfaceId": "eni-9", "InstanceId": "i-2"}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(attach.named.interfaces, ["eni-9"]);
        assert_eq!(attach.group_id, None);
        let bare = parse_record(
            &reach_event("ModifyPrefixList", json!({"RegionId": "cn-hangzhou"})),
            None,
        )
        .unwrap();
        assert!(
            bare.named.is_empty(),
            "nothing to place it by: {:?}",
            bare.named
        );
        // A policy change still needs its group.
        assert_eq!(
            parse_record(
                &reach_event(MODIFY_POLICY_EVENT, json!({"RegionId": "cn-hangzhou"})),
                None
            ),
            Err(Ignored::Malformed("requestParameters.SecurityGroupId"))
        );
    }

    #[test]
    fn hostile_parameters_are_bounded_in_depth_and_count() {
        let mut deep = json!("sg-deep");
        for _ in 0..100 {
            deep = json!({"SecurityGroupId": deep});
        }
        let many: Vec<String> = (0..5000).map(|i| format!("sg-{i}")).collect();
        let c = parse_record(
            &reach_event(
                "JoinSecurityGroup",
                json!({"Deep": deep, "SecurityGroupIds": many}),
            ),
            None,
        )
        .unwrap();
        assert_eq!(c.named.groups.len(), MAX_NAMED);
        assert!(!c.named.groups.iter().any(|g| g == "sg-deep"));
    }

    #[test]
    fn an_own_write_is_one_with_the_token_prefix_that_set_the_desired_value() {
        let mut r = console_flip();
        r["requestParameters"]["ClientToken"] = json!("sgpolicy-abc-accept-1-0-ff");
        let c = parse_record(&r, None).unwrap();
        assert!(c.is_own_write_of(Policy::Accept));
        // The same prefix setting another value is someone to look at (an old revision, a borrower).
        assert!(!c.is_own_write_of(Policy::Drop));
        let console = parse_record(&console_flip(), None).unwrap();
        assert!(!console.is_own_write_of(Policy::Accept));
    }

    #[test]
    fn an_envelope_supplies_its_account_and_region_and_needs_source_id_and_data() {
        let mut record = console_flip();
        record["userIdentity"]
            .as_object_mut()
            .unwrap()
            .remove("accountId");
        record.as_object_mut().unwrap().remove("acsRegion");
        record["requestParameters"]
            .as_object_mut()
            .unwrap()
            .remove("RegionId");
        let env = json!({"specversion": "1.0", "id": "e-1", "source": "acs.actiontrail",
            "aliyunaccountid": "5555", "aliyunregionid": "cn-shanghai", "data": record});
        let e = parse_envelope(&env).unwrap();
        assert_eq!((e.source, e.id), ("acs.actiontrail", "e-1"));
        let c = e.change().unwrap();
        assert_eq!(c.account_id.as_deref(), Some("5555"));
        assert_eq!(c.region, "cn-shanghai");
        assert_eq!(
            parse_envelope(&json!({"source": "s", "data": {}})).unwrap_err(),
            Ignored::Malformed("id")
        );
        assert_eq!(
            parse_envelope(&json!({"source": "s", "id": "1"})).unwrap_err(),
            Ignored::Malformed("data")
        );
    }
}
