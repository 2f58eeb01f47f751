//! ActionTrail: the event every ModifySecurityGroupPolicy call and every recorded console flip
//! leaves, the identities it names, and the bounded store `LookupEvents` reads and EventBridge
//! publishes from.
//!
//! Fields follow `alibaba-actiontrail.md` §1 (the reference): `eventId` (a fresh lower-case UUID,
//! the dedup key), `eventName`, `eventTime` (UTC, seconds), `eventType` (`ApiCall` or
//! `ConsoleOperation`), `eventRW` `Write`, `serviceName` `Ecs`, `acsRegion`, `requestId` (the one the
//! caller saw: a ClientToken replay repeats the first call's), `requestParameters` (the call's own
//! parameters as sent, without the signature's common ones), `userIdentity`, `sourceIpAddress`,
//! `userAgent`, `errorCode`/`errorMessage` (only when the call failed: it then changed nothing), and
//! `resourceName`/`resourceType`/`referencedResources`. Besides those, the fields Alibaba's published
//! samples carry: `eventVersion` `"1"`, `eventSource` (the endpoint host), `eventCategory`
//! `Management`, `apiVersion` and `additionalEventData`.

use crate::auth::{fmt_time, Params};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::fmt;

/// Events kept at most, oldest dropped first (ActionTrail keeps 90 days; this bounds memory: a
/// record is a few kilobytes).
pub(crate) const EVENT_CAP: usize = 20_000;
/// The reference: events "visible after about 10 minutes" (not confirmed as a bound).
pub const DEFAULT_QUERY_DELAY_SECS: u64 = 600;
/// Region of a `LookupEvents` request whose Host and `RegionId` name none.
pub const DEFAULT_TRAIL_REGION: &str = "cn-hangzhou";
/// ActionTrail keeps events 90 days.
pub(crate) const RETENTION_SECS: i64 = 90 * 86_400;
/// `userAgent` of a console operation, as the reference gives it.
const CONSOLE_USER_AGENT: &str = "ecs.console.aliyun.com";
/// `sourceIpAddress` of a console operation whose actor names none (TEST-NET-2).
const CONSOLE_SOURCE_IP: &str = "198.51.100.10";
/// The ECS API version its events name.
const ECS_VERSION: &str = "2014-05-26";
const SECURITY_GROUP_TYPE: &str = "ACS::ECS::SecurityGroup";

/// Parameters every signed call carries that are the signature's, not the action's: they are not
/// part of `requestParameters`.
const COMMON_PARAMS: &[&str] = &[
    "AccessKeyId",
    "Action",
    "Format",
    "Signature",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureType",
    "SignatureVersion",
    "SecurityToken",
    "TimeStamp",
    "Timestamp",
    "Version",
];

/// `POST /_sim/actiontrail` and the seed's `actionTrail`. Posting replaces the whole setting.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrailConfig {
    /// An event becomes queryable this many seconds after its `eventTime` (default 600, the
    /// reference's "about 10 minutes"). Pushes are not delayed by it.
    #[serde(default = "default_delay")]
    pub query_delay_seconds: u64,
    /// The region a `LookupEvents` request queries when neither its Host
    /// (`actiontrail[-vpc].<region>.aliyuncs.com`) nor a `RegionId` parameter names one.
    #[serde(default = "default_region")]
    pub default_region: String,
}

fn default_delay() -> u64 {
    DEFAULT_QUERY_DELAY_SECS
}

fn default_region() -> String {
    DEFAULT_TRAIL_REGION.to_string()
}

impl Default for TrailConfig {
    fn default() -> TrailConfig {
        TrailConfig {
            query_delay_seconds: DEFAULT_QUERY_DELAY_SECS,
            default_region: default_region(),
        }
    }
}

impl TrailConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !is_region(&self.default_region) {
            anyhow::bail!("defaultRegion {:?} is not a region id", self.default_region);
        }
        Ok(())
    }
}

/// Letters, digits and `-`, not empty: what a region id can be.
pub(crate) fn is_region(r: &str) -> bool {
    !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `userIdentity.type`, the four the reference lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityType {
    #[default]
    RootAccount,
    RamUser,
    AssumedRole,
    System,
}

/// Who a key (or a console actor) is, as `userIdentity` names them. The account and access key are
/// the caller's and are added when the event is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub kind: IdentityType,
    pub principal_id: String,
    pub user_name: String,
    /// When the STS session was issued (`sessionContext.attributes.creationDate`).
    pub session_created: Option<i64>,
}

/// FNV-1a: stable across runs and Rust versions, for derived ids and page tokens.
pub(crate) fn fnv64(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn digits(text: &str, n: u32) -> String {
    format!("{:0width$}", fnv64(text) % 10u64.pow(n), width = n as usize)
}

/// A RAM role's id: stable per role, 18 digits starting with 3 like Alibaba's.
pub(crate) fn role_id(account: &str, role_name: &str) -> String {
    format!("3{}", digits(&format!("role:{account}:{role_name}"), 17))
}

/// A RAM user's id: stable per user, 16 digits starting with 2.
fn user_id(account: &str, user: &str) -> String {
    format!("2{}", digits(&format!("user:{account}:{user}"), 15))
}

impl Identity {
    /// The account's own credentials: `principalId` is the account id, `userName` `root`.
    pub fn root(account: &str) -> Identity {
        Identity {
            kind: IdentityType::RootAccount,
            principal_id: account.to_string(),
            user_name: String::from("root"),
            session_created: None,
        }
    }

    pub fn ram_user(account: &str, user: &str, principal_id: Option<String>) -> Identity {
        Identity {
            kind: IdentityType::RamUser,
            principal_id: principal_id.unwrap_or_else(|| user_id(account, user)),
            user_name: user.to_string(),
            session_created: None,
        }
    }

    /// An STS session of `role_name`: `principalId` `<role id>:<session>`, `userName`
    /// `<role name>:<session>`, as Alibaba's assumed-role sample shows.
    pub fn assumed_role(account: &str, role_name: &str, session: &str, created: i64) -> Identity {
        Identity {
            kind: IdentityType::AssumedRole,
            principal_id: format!("{}:{session}", role_id(account, role_name)),
            user_name: format!("{role_name}:{session}"),
            session_created: Some(created),
        }
    }

    /// `userIdentity` for a call in `account` signed with `access_key_id` (absent for console
    /// operations whose actor names no key).
    pub fn to_json(&self, account: &str, access_key_id: Option<&str>) -> Value {
        let mut v = json!({
            "type": self.kind,
            "principalId": self.principal_id,
            "accountId": account,
            "userName": self.user_name,
        });
        if let Some(k) = access_key_id {
            v["accessKeyId"] = json!(k);
        }
        if let Some(t) = self.session_created {
            v["sessionContext"] = json!({
                "attributes": {"mfaAuthenticated": "false", "creationDate": fmt_time(t)},
            });
        }
        v
    }
}

/// Who flipped a group in the console, for `POST /_sim/groups/{region}/{id}` (`"actor"`) and
/// [`crate::Simulator::flip_in_console_in`]. Every field is optional.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsoleActor {
    /// `root-account`, `ram-user` (default), `assumed-role` or `system`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<IdentityType>,
    /// Default `console-user` (`root` for `root-account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Default: derived from the account and user name (the account id for `root-account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// `userIdentity.accessKeyId`; absent unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Default `198.51.100.10`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_address: Option<String>,
    /// Default `ecs.console.aliyun.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl fmt::Debug for ConsoleActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleActor")
            .field("type", &self.identity_type)
            .field("user_name", &self.user_name)
            .field("source_ip_address", &self.source_ip_address)
            .finish_non_exhaustive()
    }
}

impl ConsoleActor {
    fn identity(&self, account: &str) -> Identity {
        let kind = self.identity_type.unwrap_or(IdentityType::RamUser);
        let default_name = match kind {
            IdentityType::RootAccount => "root",
            _ => "console-user",
        };
        let user = self.user_name.as_deref().unwrap_or(default_name);
        let principal = self.principal_id.clone().unwrap_or_else(|| match kind {
            IdentityType::RootAccount => account.to_string(),
            IdentityType::AssumedRole => {
                let (role, session) = user.split_once(':').unwrap_or((user, "console"));
                format!("{}:{session}", role_id(account, role))
            }
            _ => user_id(account, user),
        });
        Identity {
            kind,
            principal_id: principal,
            user_name: user.to_string(),
            session_created: None,
        }
    }
}

/// What the HTTP layer knows about a request besides its parameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestMeta {
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// The peer's IP address; unknown when the router is driven without a listener.
    pub source_ip: Option<String>,
}

/// The region an ActionTrail request is for: the Host's (`actiontrail.<region>.aliyuncs.com`, or
/// `actiontrail-vpc.`), else a `RegionId` parameter (the legacy SDK always adds one), else the
/// configured default. Loopback hosts name no region, so against the simulator it is usually the
/// parameter or the default.
pub(crate) fn request_region(meta: &RequestMeta, params: &Params, cfg: &TrailConfig) -> String {
    let from_host = meta.host.as_deref().and_then(|h| {
        let h = h.split(':').next().unwrap_or(h).to_ascii_lowercase();
        let rest = h
            .strip_prefix("actiontrail.")
            .or_else(|| h.strip_prefix("actiontrail-vpc."))?;
        let region = rest.strip_suffix(".aliyuncs.com")?;
        is_region(region).then(|| region.to_string())
    });
    from_host
        .or_else(|| params.get("RegionId").filter(|r| is_region(r)).cloned())
        .unwrap_or_else(|| cfg.default_region.clone())
}

/// One stored event: the record plus what the store indexes it by.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Order of recording, unique: breaks ties between events of the same second.
    pub seq: u64,
    /// The account whose trail holds it (`userIdentity.accountId` of the caller).
    pub account: String,
    /// `acsRegion`: events are stored, and queried, per region.
    pub region: String,
    /// `eventTime` in Unix seconds.
    pub time: i64,
    pub record: Value,
}

impl StoredEvent {
    /// A string field of the record (`""` when absent), or of its `userIdentity` for `user.*`.
    pub fn field(&self, name: &str) -> &str {
        let v = match name.strip_prefix("user.") {
            Some(f) => &self.record["userIdentity"][f],
            None => &self.record[name],
        };
        v.as_str().unwrap_or("")
    }
}

/// The trails of every account: events oldest first, and those not yet handed to EventBridge.
pub struct Trail {
    pub config: TrailConfig,
    events: VecDeque<StoredEvent>,
    next_seq: u64,
    outbox: Vec<StoredEvent>,
}

impl Trail {
    pub fn new(config: TrailConfig) -> Trail {
        Trail {
            config,
            events: VecDeque::new(),
            next_seq: 1,
            outbox: Vec::new(),
        }
    }

    /// Stores an event and queues it for EventBridge; returns its `eventId`.
    pub fn record(&mut self, account: &str, region: &str, time: i64, record: Value) -> String {
        let ev = StoredEvent {
            seq: self.next_seq,
            account: account.to_string(),
            region: region.to_string(),
            time,
            record,
        };
        self.next_seq += 1;
        if self.events.len() >= EVENT_CAP {
            self.events.pop_front();
        }
        let id = ev.field("eventId").to_string();
        self.outbox.push(ev.clone());
        self.events.push_back(ev);
        id
    }

    /// Events recorded since the last call, for EventBridge.
    pub fn take_outbox(&mut self) -> Vec<StoredEvent> {
        std::mem::take(&mut self.outbox)
    }

    pub fn events(&self) -> impl Iterator<Item = &StoredEvent> {
        self.events.iter()
    }

    /// Forgets every event; says how many went.
    pub fn clear(&mut self) -> usize {
        let n = self.events.len();
        self.events.clear();
        n
    }
}

/// Fields every event has, whatever its type.
fn base(
    event_type: &str,
    name: &str,
    region: &str,
    time: i64,
    request_id: &str,
) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("eventId", json!(uuid::Uuid::new_v4().to_string()));
    put("eventVersion", json!("1"));
    put("eventName", json!(name));
    put("eventTime", json!(fmt_time(time)));
    put("eventType", json!(event_type));
    put("eventRW", json!("Write"));
    put("eventCategory", json!("Management"));
    put("serviceName", json!("Ecs"));
    put("acsRegion", json!(region));
    put("requestId", json!(request_id));
    m
}

/// `resourceName`, `resourceType` and `referencedResources` for a call on this group.
fn resource(m: &mut Map<String, Value>, group_id: Option<&str>) {
    if let Some(id) = group_id.filter(|i| !i.is_empty()) {
        m.insert("resourceName".into(), json!(id));
        m.insert("resourceType".into(), json!(SECURITY_GROUP_TYPE));
        m.insert(
            "referencedResources".into(),
            json!({ SECURITY_GROUP_TYPE: [id] }),
        );
    }
}

/// Adds the instance or network interface a Join/Leave names to `referencedResources`.
fn members(m: &mut Map<String, Value>, params: &Map<String, Value>) {
    for (param, kind) in [
        ("InstanceId", "ACS::ECS::Instance"),
        ("NetworkInterfaceId", "ACS::ECS::NetworkInterface"),
    ] {
        let Some(id) = params
            .get(param)
            .and_then(Value::as_str)
            .filter(|i| !i.is_empty())
        else {
            continue;
        };
        let refs = m.entry("referencedResources").or_insert_with(|| json!({}));
        if let Value::Object(refs) = refs {
            refs.insert(kind.into(), json!([id]));
        }
    }
}

/// One ECS API call as ActionTrail records it.
pub(crate) struct ApiCall<'a> {
    pub action: &'a str,
    pub account: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub identity: &'a Identity,
    pub params: &'a Params,
    /// The RequestId the caller saw.
    pub request_id: &'a str,
    /// `(errorCode, errorMessage)` of a failed call.
    pub error: Option<(&'a str, &'a str)>,
    pub meta: &'a RequestMeta,
    pub time: i64,
}

impl ApiCall<'_> {
    pub fn record(&self) -> Value {
        let mut m = base(
            "ApiCall",
            self.action,
            self.region,
            self.time,
            self.request_id,
        );
        let host = match self.meta.host.as_deref() {
            Some(h) if h.ends_with(".aliyuncs.com") => h.to_string(),
            _ => crate::handlers::Api::Ecs.host(Some(self.region)),
        };
        let request_parameters: Map<String, Value> = self
            .params
            .iter()
            .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("eventSource".into(), json!(host));
        m.insert("apiVersion".into(), json!(ECS_VERSION));
        let params = request_parameters.clone();
        m.insert(
            "requestParameters".into(),
            Value::Object(request_parameters),
        );
        m.insert(
            "userIdentity".into(),
            self.identity
                .to_json(self.account, Some(self.access_key_id)),
        );
        m.insert(
            "sourceIpAddress".into(),
            json!(self.meta.source_ip.as_deref().unwrap_or("127.0.0.1")),
        );
        m.insert(
            "userAgent".into(),
            json!(self.meta.user_agent.as_deref().unwrap_or("")),
        );
        m.insert("additionalEventData".into(), json!({"Scheme": "http"}));
        resource(
            &mut m,
            self.params.get("SecurityGroupId").map(String::as_str),
        );
        members(&mut m, &params);
        if let Some((code, message)) = self.error {
            m.insert("errorCode".into(), json!(code));
            m.insert("errorMessage".into(), json!(message));
        }
        Value::Object(m)
    }
}

/// A console user's ModifySecurityGroupPolicy: `eventType` `ConsoleOperation`, the actor's
/// identity, address and user agent, the parameters the console sent (no ClientToken).
pub(crate) fn console_record(
    account: &str,
    region: &str,
    group_id: &str,
    policy: &str,
    actor: &ConsoleActor,
    time: i64,
) -> Value {
    let params =
        json!({"RegionId": region, "SecurityGroupId": group_id, "InnerAccessPolicy": policy});
    console_operation(
        account,
        region,
        "ModifySecurityGroupPolicy",
        params,
        group_id,
        actor,
        time,
    )
}

/// Any console operation on a group (`eventName` = the API action the console called, with the
/// parameters it sent): a flip, a rule added or removed, an interface joining or leaving.
pub(crate) fn console_operation(
    account: &str,
    region: &str,
    event_name: &str,
    request_parameters: Value,
    group_id: &str,
    actor: &ConsoleActor,
    time: i64,
) -> Value {
    let request_id = crate::respond::new_request_id();
    let mut m = base("ConsoleOperation", event_name, region, time, &request_id);
    m.insert("eventSource".into(), json!(CONSOLE_USER_AGENT));
    m.insert("apiVersion".into(), json!(ECS_VERSION));
    m.insert("requestParameters".into(), request_parameters);
    m.insert(
        "userIdentity".into(),
        actor
            .identity(account)
            .to_json(account, actor.access_key_id.as_deref()),
    );
    m.insert(
        "sourceIpAddress".into(),
        json!(actor
            .source_ip_address
            .as_deref()
            .unwrap_or(CONSOLE_SOURCE_IP)),
    );
    m.insert(
        "userAgent".into(),
        json!(actor.user_agent.as_deref().unwrap_or(CONSOLE_USER_AGENT)),
    );
    resource(&mut m, Some(group_id));
    if let Some(params) = m
        .get("requestParameters")
        .and_then(Value::as_object)
        .cloned()
    {
        members(&mut m, &params);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_api_call_record_has_the_reference_fields() {
        let id = Identity::ram_user("1234", "alice", None);
        let p = params(&[
            ("Action", "ModifySecurityGroupPolicy"),
            ("AccessKeyId", "LTAIkey"),
            ("Signature", "sig"),
            ("SignatureNonce", "n"),
            ("RegionId", "cn-hangzhou"),
            ("SecurityGroupId", "sg-1"),
            ("InnerAccessPolicy", "drop"),
            ("ClientToken", "tok-1"),
        ]);
        let meta = RequestMeta {
            host: Some("127.0.0.1:8080".into()),
            user_agent: Some("AlibabaCloud (Linux; x86_64) test".into()),
            source_ip: Some("127.0.0.2".into()),
        };
        let r = ApiCall {
            action: "ModifySecurityGroupPolicy",
            account: "1234",
            region: "cn-hangzhou",
            access_key_id: "LTAIkey",
            identity: &id,
            params: &p,
            request_id: "RID-1",
            error: None,
            meta: &meta,
            time: 1_795_840_200,
        }
        .record();
        assert_eq!(r["eventName"], "ModifySecurityGroupPolicy");
        assert_eq!(r["eventType"], "ApiCall");
        assert_eq!(r["eventTime"], "2026-11-28T04:30:00Z");
        assert_eq!(r["eventRW"], "Write");
        assert_eq!(r["serviceName"], "Ecs");
        assert_eq!(r["eventSource"], "ecs.cn-hangzhou.aliyuncs.com");
        assert_eq!(r["acsRegion"], "cn-hangzhou");
        assert_eq!(r["requestId"], "RID-1");
        assert_eq!(
            r["requestParameters"],
            json!({"RegionId": "cn-hangzhou", "SecurityGroupId": "sg-1", "InnerAccessPolicy": "drop", "ClientToken": "tok-1"}),
            "as sent, without the signature's parameters"
        );
        assert_eq!(r["resourceName"], "sg-1");
        assert_eq!(r["resourceType"], "ACS::ECS::SecurityGroup");
        assert_eq!(
            r["userIdentity"],
            json!({"type": "ram-user", "userName": "alice", "principalId": id.principal_id, "accountId": "1234", "accessKeyId": "LTAIkey"})
        );
        assert_eq!(r["sourceIpAddress"], "127.0.0.2");
        assert_eq!(r["userAgent"], "AlibabaCloud (Linux; x86_64) test");
        assert!(r.get("errorCode").is_none() && r.get("errorMessage").is_none());
        let eid = r["eventId"].as_str().unwrap_or_default();
        assert_eq!(
            uuid::Uuid::parse_str(eid)
                .map(|_| eid.to_lowercase())
                .ok()
                .as_deref(),
            Some(eid)
        );
    }

    #[test]
    fn identities_are_stable_and_typed() {
        assert_eq!(
            Identity::ram_user("1", "bob", None),
            Identity::ram_user("1", "bob", None)
        );
        assert_ne!(
            Identity::ram_user("1", "bob", None).principal_id,
            Identity::ram_user("2", "bob", None).principal_id
        );
        assert_eq!(Identity::ram_user("1", "bob", None).principal_id.len(), 16);
        let s = Identity::assumed_role("2222", "sgpolicy", "s1", 1_795_840_200)
            .to_json("2222", Some("STS.x"));
        assert_eq!(s["type"], "assumed-role");
        assert_eq!(s["userName"], "sgpolicy:s1");
        assert!(s["principalId"]
            .as_str()
            .is_some_and(|p| p.starts_with('3') && p.ends_with(":s1")));
        assert_eq!(
            s["sessionContext"]["attributes"],
            json!({"mfaAuthenticated": "false", "creationDate": "2026-11-28T04:30:00Z"})
        );
        let r = Identity::root("77").to_json("77", None);
        assert_eq!(
            r,
            json!({"type": "root-account", "principalId": "77", "accountId": "77", "userName": "root"})
        );
    }

    #[test]
    fn the_request_region_comes_from_host_then_parameter_then_default() {
        let cfg = TrailConfig::default();
        let meta = |h: &str| RequestMeta {
            host: Some(h.into()),
            ..RequestMeta::default()
        };
        let p = params(&[("RegionId", "cn-beijing")]);
        assert_eq!(
            request_region(&meta("actiontrail.cn-shanghai.aliyuncs.com"), &p, &cfg),
            "cn-shanghai"
        );
        assert_eq!(
            request_region(
                &meta("ActionTrail-VPC.eu-west-1.aliyuncs.com:443"),
                &p,
                &cfg
            ),
            "eu-west-1"
        );
        assert_eq!(request_region(&meta("127.0.0.1:9"), &p, &cfg), "cn-beijing");
        assert_eq!(
            request_region(&meta("127.0.0.1:9"), &Params::new(), &cfg),
            DEFAULT_TRAIL_REGION
        );
    }

    #[test]
    fn the_store_is_bounded_and_hands_each_event_out_once() {
        let mut t = Trail::new(TrailConfig::default());
        for i in 0..(EVENT_CAP + 3) {
            t.record("1", "r", i as i64, json!({"eventId": format!("e{i}")}));
        }
        assert_eq!(t.events().count(), EVENT_CAP);
        assert_eq!(t.events().next().map(|e| e.field("eventId")), Some("e3"));
        assert_eq!(t.take_outbox().len(), EVENT_CAP + 3);
        assert!(t.take_outbox().is_empty());
        assert_eq!(t.clear(), EVENT_CAP);
    }
}
