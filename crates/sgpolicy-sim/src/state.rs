//! The simulated accounts: security groups (with their rules), network interfaces and prefix lists
//! (`net`), access keys, roles and STS sessions, ClientTokens, recent nonces, the call log and the
//! ActionTrail events. Groups, ClientTokens and events belong to an
//! account; a key sees only its own.

use super::auth::{Credential, CLOCK_SKEW_SECS};
use super::handlers::Api;
use super::seed::{account_or_default, GroupType, Seed, SeedGroup, SeedKey, SeedRole};
use crate::model::Policy;
use crate::net::Network;
use crate::rules::Rule;
use crate::trail::{Identity, Trail};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Public regions a real account can always name, besides every region that has a seeded group.
const PUBLIC_REGIONS: &[&str] = &[
    "cn-qingdao",
    "cn-beijing",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-wulanchabu",
    "cn-hangzhou",
    "cn-shanghai",
    "cn-nanjing",
    "cn-fuzhou",
    "cn-wuhan-lr",
    "cn-shenzhen",
    "cn-heyuan",
    "cn-guangzhou",
    "cn-chengdu",
    "cn-hongkong",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-south-1",
    "us-east-1",
    "us-west-1",
    "eu-west-1",
    "eu-central-1",
    "me-east-1",
    "me-central-1",
];

/// Nonces remembered at most (oldest forgotten first), so a flood of requests cannot grow memory.
const NONCE_CAP: usize = 200_000;
/// Call-log entries kept at most (oldest dropped first); `seq` and [`CallCounts`] keep counting.
pub(crate) const CALL_LOG_CAP: usize = 100_000;

/// STS sessions kept at most; the oldest are forgotten first once expired ones are gone.
const SESSION_CAP: usize = 10_000;

/// One security group as the simulator holds it.
#[derive(Clone, Debug)]
pub struct Group {
    pub account: String,
    pub region: String,
    pub id: String,
    pub policy: Policy,
    pub kind: GroupType,
    pub service_managed: bool,
    pub service_id: Option<String>,
    pub service_product: Option<String>,
    pub vpc_id: String,
    pub name: String,
    pub description: String,
    pub resource_group_id: String,
    pub creation_time: String,
    pub tags: BTreeMap<String, String>,
    /// Ingress and egress rules, in the order they were added (the order the API lists them).
    pub rules: Vec<Rule>,
}

/// What a ClientToken was first used for, and the RequestId its replays must repeat.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    pub region: String,
    pub group_id: String,
    pub policy: Policy,
    pub request_id: String,
}

/// One request to `/`, as `GET /_sim/calls` reports it; rejected requests are logged too.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CallRecord {
    pub seq: u64,
    pub method: String,
    pub action: String,
    /// The account of the key that signed the request (empty when it could not be authenticated).
    pub account: String,
    pub region: String,
    pub group_id: Option<String>,
    pub client_token: Option<String>,
    pub access_key_id: String,
    pub status: u16,
    /// `None` on success.
    pub code: Option<String>,
    /// The group's policy actually changed.
    pub effective: bool,
    /// Answered from the ClientToken store without doing anything.
    pub replayed: bool,
    pub request_id: String,
    /// The injected fault that shaped this answer (`failNext`, `drop`, `throttle`, `loseResponse`).
    pub fault: Option<String>,
    /// How the request was signed: `V1` (HMAC-SHA1 `Signature` parameter) or `V3`
    /// (`ACS3-HMAC-SHA256` `Authorization` header), so a test can tell which path a client took.
    pub signature: String,
}

/// The key under which [`CallCounts::by_action`] counts requests whose `Action` the simulator does
/// not serve (or that had none): client-chosen text, so one bucket keeps the counters bounded.
pub const OTHER_ACTION: &str = "(other)";

/// How many requests to `/` the simulator has seen since it started: every request the call log
/// records (rejected ones too), counted when it is logged but kept apart from the log, so the counts
/// stay exact however many entries the bounded log has dropped, and clearing the log (`DELETE
/// /_sim/calls`) does not reset them. `GET /_sim/counts` reports them; every map is bounded (served
/// actions plus [`OTHER_ACTION`]; the fault names the simulator itself sets).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallCounts {
    pub total: u64,
    /// By `Action`: each ECS action served (`handlers::ACTIONS`), `AssumeRole` and `LookupEvents`
    /// by name, anything else under [`OTHER_ACTION`]. Throttled and failed requests count under their action too.
    pub by_action: BTreeMap<String, u64>,
    /// By the injected fault that shaped the answer (`throttle`, `failNext`, `drop`, `hang`), as
    /// [`CallRecord::fault`] names it.
    pub by_fault: BTreeMap<String, u64>,
    /// Writes that changed a group's policy ([`CallRecord::effective`]).
    pub effective: u64,
    /// Writes answered from the ClientToken store without doing anything ([`CallRecord::replayed`]).
    pub replayed: u64,
    /// By quota bucket, `"<account>/<region>"` (the signing key's account, the request's region),
    /// then by action as in `by_action`: only authenticated requests naming a region the simulator
    /// knows, so the map stays bounded. How sharded agents are shown to divide the buckets.
    pub by_bucket: BTreeMap<String, BTreeMap<String, u64>>,
}

impl CallCounts {
    fn record(&mut self, rec: &CallRecord) {
        self.total += 1;
        let action = match Api::of(&rec.action) {
            Some(_) => rec.action.as_str(),
            None => OTHER_ACTION,
        };
        bump(&mut self.by_action, action);
        if let Some(f) = &rec.fault {
            bump(&mut self.by_fault, f);
        }
        self.effective += u64::from(rec.effective);
        self.replayed += u64::from(rec.replayed);
    }

    /// Counts `rec` under its (account, region) bucket.
    fn record_bucket(&mut self, rec: &CallRecord) {
        let action = match Api::of(&rec.action) {
            Some(_) => rec.action.as_str(),
            None => OTHER_ACTION,
        };
        let bucket = format!("{}/{}", rec.account, rec.region);
        bump(self.by_bucket.entry(bucket).or_default(), action);
    }

    /// Requests of `action` in the bucket (`account`, `region`) (0 when none came).
    pub fn of_bucket(&self, account: &str, region: &str, action: &str) -> u64 {
        self.by_bucket
            .get(&format!("{account}/{region}"))
            .and_then(|m| m.get(action))
            .copied()
            .unwrap_or(0)
    }

    /// Requests with this `Action` (0 when none came).
    pub fn of_action(&self, action: &str) -> u64 {
        self.by_action.get(action).copied().unwrap_or(0)
    }

    /// Answers this fault shaped (0 when none did).
    pub fn of_fault(&self, fault: &str) -> u64 {
        self.by_fault.get(fault).copied().unwrap_or(0)
    }
}

/// Adds one under `key`, allocating the key only the first time it is seen.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

/// Nonces seen recently, per access key, each forgotten once its request could no longer pass the
/// timestamp check anyway.
#[derive(Default)]
pub struct NonceStore {
    seen: HashMap<(String, String), i64>,
    order: VecDeque<(i64, (String, String))>,
}

impl NonceStore {
    /// Records the nonce and says whether it was fresh. It is kept until both the server clock and
    /// the request's own timestamp are more than the allowed skew in the past.
    pub fn check_and_insert(&mut self, key_id: &str, nonce: &str, ts: i64, now: i64) -> bool {
        while let Some((exp, k)) = self.order.front() {
            if *exp >= now && self.order.len() < NONCE_CAP {
                break;
            }
            if self.seen.get(k) == Some(exp) {
                self.seen.remove(k);
            }
            self.order.pop_front();
        }
        let k = (key_id.to_string(), nonce.to_string());
        if self.seen.contains_key(&k) {
            return false;
        }
        let expires = now.max(ts) + CLOCK_SKEW_SECS;
        self.seen.insert(k.clone(), expires);
        self.order.push_back((expires, k));
        true
    }
}

/// The whole mutable account. Held behind one mutex so each request is atomic, which is also what
/// makes concurrent requests with one ClientToken apply exactly once.
pub struct State {
    /// By (account, region, id).
    pub groups: BTreeMap<(String, String, String), Group>,
    pub keys: HashMap<String, Credential>,
    /// By (account, ClientToken): ECS remembers tokens per account.
    pub tokens: HashMap<(String, String), TokenEntry>,
    pub roles: Vec<SeedRole>,
    /// STS keys issued, oldest first, so expired sessions can be forgotten.
    sessions: VecDeque<String>,
    pub nonces: NonceStore,
    calls: VecDeque<CallRecord>,
    next_seq: u64,
    counts: CallCounts,
    regions: BTreeSet<String>,
    /// ActionTrail: every account's events.
    pub trail: Trail,
    /// Network interfaces and prefix lists.
    pub net: Network,
    /// Rules created by write calls so far, for their generated ids.
    pub rules_created: u64,
}

/// Who a seeded key is: an STS-like key (with a token) stands for an assumed role, a key with a
/// user name for that RAM user, any other for the account itself.
fn seed_identity(k: &SeedKey, account: &str, start: i64) -> Identity {
    match (&k.security_token, &k.user_name) {
        (Some(_), user) => {
            let name = user
                .clone()
                .unwrap_or_else(|| format!("sgpolicy-sim:{}", k.id));
            let (role, session) = name.split_once(':').unwrap_or((name.as_str(), "session"));
            let mut id = Identity::assumed_role(account, role, session, start);
            if let Some(p) = &k.principal_id {
                id.principal_id.clone_from(p);
            }
            id
        }
        (None, Some(user)) => Identity::ram_user(account, user, k.principal_id.clone()),
        (None, None) => {
            let mut id = Identity::root(account);
            if let Some(p) = &k.principal_id {
                id.principal_id.clone_from(p);
            }
            id
        }
    }
}

/// The simulator's group for a seeded one (`index` orders default creation times); `None` for a
/// policy that is not Accept or Drop, which seed validation has refused already.
fn group_of(g: SeedGroup, index: usize) -> Option<Group> {
    let policy = g.policy()?;
    let mut rules = g.rules("group").ok()?;
    let creation_time = g
        .creation_time
        .clone()
        .unwrap_or_else(|| format!("2024-01-01T00:{:02}:{:02}Z", (index / 60) % 60, index % 60));
    for r in rules.iter_mut().filter(|r| r.create_time.is_empty()) {
        r.create_time.clone_from(&creation_time);
    }
    Some(Group {
        rules,
        account: account_or_default(&g.account),
        policy,
        kind: g.kind,
        service_managed: g.service_managed,
        service_id: g.service_id,
        service_product: g.service_product,
        vpc_id: g.vpc_id.unwrap_or_default(),
        name: g.name.unwrap_or_default(),
        description: g.description.unwrap_or_default(),
        resource_group_id: g.resource_group_id.unwrap_or_default(),
        creation_time,
        tags: g.tags,
        region: g.region,
        id: g.id,
    })
}

impl State {
    /// Creates a group as someone would in the console (checked like a seeded one): `Ok(false)`
    /// when its (account, region, id) exists already (nothing changes), an error for a bad group.
    pub fn add_group(&mut self, g: SeedGroup) -> anyhow::Result<bool> {
        g.check("group")?;
        let key = (
            account_or_default(&g.account),
            g.region.clone(),
            g.id.clone(),
        );
        if self.groups.contains_key(&key) {
            return Ok(false);
        }
        if let Some(pl) = g
            .prefix_lists()
            .find(|pl| self.net.prefix_list(&key.0, &key.1, pl).is_none())
        {
            anyhow::bail!(
                "group {}: a rule names prefix list {pl}, which does not exist",
                g.id
            );
        }
        let group = group_of(g, self.groups.len())
            .ok_or_else(|| anyhow::anyhow!("innerAccessPolicy must be Accept or Drop"))?;
        self.regions.insert(group.region.clone());
        self.groups.insert(key, group);
        Ok(true)
    }

    pub fn new(seed: Seed) -> State {
        let mut regions: BTreeSet<String> = PUBLIC_REGIONS.iter().map(|r| r.to_string()).collect();
        let mut groups = BTreeMap::new();
        for (i, g) in seed.security_groups.into_iter().enumerate() {
            let Some(group) = group_of(g, i) else {
                continue;
            };
            regions.insert(group.region.clone());
            groups.insert(
                (
                    group.account.clone(),
                    group.region.clone(),
                    group.id.clone(),
                ),
                group,
            );
        }
        // The seed has been validated: every interface and list checks, every group exists.
        let mut net = Network::default();
        for p in &seed.prefix_lists {
            if let Ok(list) = p.check("prefix list") {
                let key = (list.account.clone(), list.region.clone(), list.id.clone());
                net.prefix_lists.insert(key, list);
            }
        }
        for e in &seed.network_interfaces {
            let account = account_or_default(&e.account);
            let vpc_of = |g: &str| {
                groups
                    .get(&(account.clone(), e.region.clone(), g.to_string()))
                    .map(|g: &Group| g.vpc_id.clone())
            };
            if let Ok(eni) = e.check("interface", vpc_of) {
                net.insert(eni);
            }
        }
        let start = chrono::Utc::now().timestamp();
        let keys = seed
            .access_keys
            .into_iter()
            .map(|k| {
                let account = account_or_default(&k.account);
                let cred = Credential {
                    identity: seed_identity(&k, &account, start),
                    account,
                    secret: k.secret,
                    security_token: k.security_token,
                    expires_at: None,
                    denied: k.denied_actions,
                };
                (k.id, cred)
            })
            .collect();
        State {
            groups,
            keys,
            roles: seed.roles,
            sessions: VecDeque::new(),
            tokens: HashMap::new(),
            nonces: NonceStore::default(),
            calls: VecDeque::new(),
            next_seq: 1,
            counts: CallCounts::default(),
            regions,
            trail: Trail::new(seed.action_trail),
            net,
            rules_created: 0,
        }
    }

    pub fn region_known(&self, region: &str) -> bool {
        self.regions.contains(region)
    }

    pub fn group(&self, account: &str, region: &str, id: &str) -> Option<&Group> {
        self.groups
            .get(&(account.to_string(), region.to_string(), id.to_string()))
    }

    /// Sets a group's policy; says whether it existed.
    pub fn set_policy(&mut self, account: &str, region: &str, id: &str, p: Policy) -> bool {
        let key = (account.to_string(), region.to_string(), id.to_string());
        match self.groups.get_mut(&key) {
            Some(g) => {
                g.policy = p;
                true
            }
            None => false,
        }
    }

    /// Registers the temporary key of a new STS session, forgetting sessions that have expired (and
    /// the oldest ones beyond [`SESSION_CAP`]) so that a stream of AssumeRole calls cannot grow memory.
    pub fn add_session(&mut self, key_id: String, cred: Credential, now: i64) {
        while let Some(oldest) = self.sessions.front() {
            let expired = self
                .keys
                .get(oldest)
                .and_then(|c| c.expires_at)
                .map_or(true, |t| t < now);
            if !expired && self.sessions.len() < SESSION_CAP {
                break;
            }
            if let Some(k) = self.sessions.pop_front() {
                self.keys.remove(&k);
            }
        }
        self.sessions.push_back(key_id.clone());
        self.keys.insert(key_id, cred);
    }

    /// Counts the call and appends it to the call log, assigning the next sequence number.
    pub fn log(&mut self, mut rec: CallRecord) {
        self.counts.record(&rec);
        if !rec.account.is_empty() && self.regions.contains(&rec.region) {
            self.counts.record_bucket(&rec);
        }
        rec.seq = self.next_seq;
        self.next_seq += 1;
        if self.calls.len() >= CALL_LOG_CAP {
            self.calls.pop_front();
        }
        self.calls.push_back(rec);
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.calls.iter().cloned().collect()
    }

    pub fn counts(&self) -> CallCounts {
        self.counts.clone()
    }

    /// Empties the log and says how many entries went; sequence numbers and counts keep counting.
    pub fn clear_calls(&mut self) -> usize {
        let n = self.calls.len();
        self.calls.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_while_remembered_and_forgotten_after_the_window() {
        let mut n = NonceStore::default();
        assert!(n.check_and_insert("k", "n1", 1000, 1000));
        assert!(!n.check_and_insert("k", "n1", 1000, 1500));
        assert!(
            n.check_and_insert("other", "n1", 1000, 1500),
            "nonces are per key"
        );
        assert!(n.check_and_insert("k", "n1", 1000, 1000 + CLOCK_SKEW_SECS + 1));
    }

    #[test]
    fn calls_are_counted_exactly_past_the_bound_of_the_log() {
        let mut s = State::new(Seed::default());
        // A multiple of 8 past the bound, so every kind below comes exactly n/4 or n/8 times.
        let extra = 1000;
        let n = CALL_LOG_CAP + extra;
        assert_eq!(n % 8, 0);
        for i in 0..n {
            let (action, fault) = match i % 4 {
                0 => ("DescribeSecurityGroups", None),
                1 => ("DescribeSecurityGroupAttribute", Some("throttle")),
                2 => ("ModifySecurityGroupPolicy", None),
                _ => ("NotAnAction", None),
            };
            s.log(CallRecord {
                action: action.into(),
                fault: fault.map(String::from),
                effective: i % 8 == 2,
                replayed: i % 8 == 6,
                ..CallRecord::default()
            });
        }
        let log = s.calls();
        assert_eq!(log.len(), CALL_LOG_CAP, "the log is bounded");
        assert_eq!(log[0].seq, extra as u64 + 1, "it kept the newest");
        let c = s.counts();
        let (quarter, eighth) = (n as u64 / 4, n as u64 / 8);
        assert_eq!(c.total, n as u64);
        assert_eq!(
            [
                c.of_action("DescribeSecurityGroups"),
                c.of_action("DescribeSecurityGroupAttribute"),
                c.of_action("ModifySecurityGroupPolicy"),
                c.of_action(OTHER_ACTION),
                c.of_action("NotAnAction"),
            ],
            [quarter, quarter, quarter, quarter, 0],
            "{c:?}"
        );
        assert_eq!(c.of_fault("throttle"), quarter);
        assert_eq!((c.effective, c.replayed), (eighth, eighth));
        assert_eq!(s.clear_calls(), CALL_LOG_CAP);
        assert_eq!(s.counts(), c, "clearing the log leaves the counts alone");
    }

    #[test]
    fn seeded_regions_are_known_besides_public_ones() {
        let seed = Seed::from_yaml(
            "securityGroups:\n  - {id: sg-1, region: xx-test-1, innerAccessPolicy: Accept}\n",
        )
        .expect("seed");
        let s = State::new(seed);
        assert!(s.region_known("xx-test-1") && s.region_known("cn-hangzhou"));
        assert!(!s.region_known("mars-north-1"));
    }
}
