//! Network interfaces (ENIs: the members isolation is about) and prefix lists, as the seed gives
//! them and the simulator keeps them.
//!
//! ENIs are stored by (account, region, id) and indexed by (account, region, VPC, id), so listing
//! one region or one VPC walks only its own interfaces in id order (the order `NextToken` pages
//! by), and by (account, region, instance) for the primary ENI that `JoinSecurityGroup` and
//! `LeaveSecurityGroup` act on when given an `InstanceId` (`alibaba-isolation.md` §6).

use crate::rules::check_cidr;
use crate::seed::account_or_default;
use anyhow::bail;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

/// Groups one ENI may be in: the documented maximum (5 by default, raised to at most 10).
pub const MAX_GROUPS_PER_ENI: usize = 10;
/// `Status` values DescribeNetworkInterfaces documents.
const STATUSES: &[&str] = &[
    "Available",
    "Attaching",
    "InUse",
    "Detaching",
    "Deleting",
    "CreateFailed",
];

/// One seeded network interface (`networkInterfaces:`), the API's field names plus `region` and
/// `account` like a group's.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedEni {
    #[serde(rename = "NetworkInterfaceId")]
    pub id: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(rename = "VpcId")]
    pub vpc_id: String,
    #[serde(rename = "VSwitchId", default)]
    pub vswitch_id: String,
    /// Empty: an unattached ENI.
    #[serde(rename = "InstanceId", default)]
    pub instance_id: String,
    /// `Primary` or `Secondary` (default `Secondary`).
    #[serde(rename = "Type", default = "secondary")]
    pub kind: String,
    /// Default `InUse` when attached, `Available` when not.
    #[serde(rename = "Status", default)]
    pub status: Option<String>,
    #[serde(rename = "PrivateIpAddress")]
    pub private_ip: String,
    /// Further private IPv4 addresses (the primary one may be repeated here).
    #[serde(rename = "PrivateIpAddresses", default)]
    pub private_ips: Vec<String>,
    #[serde(rename = "Ipv6Addresses", default)]
    pub ipv6: Vec<String>,
    #[serde(rename = "SecurityGroupIds")]
    pub groups: Vec<String>,
    #[serde(rename = "ZoneId", default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
}

fn secondary() -> String {
    String::from("Secondary")
}

/// One seeded prefix list (`prefixLists:`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPrefixList {
    #[serde(rename = "PrefixListId")]
    pub id: String,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `IPv4` or `IPv6`.
    #[serde(rename = "AddressFamily")]
    pub family: String,
    #[serde(rename = "Entries", default)]
    pub entries: Vec<String>,
    #[serde(rename = "PrefixListName", default)]
    pub name: String,
}

/// An interface as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eni {
    pub id: String,
    pub account: String,
    pub region: String,
    pub vpc_id: String,
    pub vswitch_id: String,
    pub instance_id: String,
    pub primary: bool,
    pub status: String,
    pub private_ip: String,
    /// Private IPv4 addresses besides `private_ip`, in seed order, without repeats.
    pub extra_ips: Vec<String>,
    pub ipv6: Vec<String>,
    pub groups: Vec<String>,
    pub zone_id: String,
}

impl Eni {
    pub fn kind(&self) -> &'static str {
        if self.primary {
            "Primary"
        } else {
            "Secondary"
        }
    }

    /// Whether `ip` is one of its private addresses (v4 or v6).
    pub fn has_ip(&self, ip: &str) -> bool {
        self.private_ip == ip
            || self.extra_ips.iter().any(|i| i == ip)
            || self.ipv6.iter().any(|i| i == ip)
    }

    /// One `NetworkInterfaceSets.NetworkInterfaceSet[]` item, typed as the Tea SDK's model types
    /// it (booleans, strings; `ServiceID` absent for an unmanaged interface).
    pub fn to_json(&self) -> Value {
        let mut ips = vec![json!({"PrivateIpAddress": self.private_ip, "Primary": true})];
        ips.extend(
            self.extra_ips
                .iter()
                .map(|ip| json!({"PrivateIpAddress": ip, "Primary": false})),
        );
        let v6: Vec<Value> = self
            .ipv6
            .iter()
            .map(|ip| json!({"Ipv6Address": ip}))
            .collect();
        json!({
            "NetworkInterfaceId": self.id,
            "NetworkInterfaceName": "",
            "Description": "",
            "Type": self.kind(),
            "InstanceId": self.instance_id,
            "VpcId": self.vpc_id,
            "VSwitchId": self.vswitch_id,
            "ZoneId": self.zone_id,
            "Status": self.status,
            "MacAddress": mac_of(&self.id),
            "PrivateIpAddress": self.private_ip,
            "PrivateIpSets": {"PrivateIpSet": ips},
            "Ipv6Sets": {"Ipv6Set": v6},
            "SecurityGroupIds": {"SecurityGroupId": self.groups},
            "OwnerId": self.account,
            "ResourceGroupId": "",
            "ServiceManaged": false,
            "CreationTime": "2024-01-01T00:00:00Z",
            "Tags": {"Tag": []},
        })
    }
}

/// A stable, locally administered MAC address per interface.
fn mac_of(id: &str) -> String {
    let h = crate::trail::fnv64(id).to_be_bytes();
    format!("00:16:3e:{:02x}:{:02x}:{:02x}", h[0] & 0x7f, h[1], h[2])
}

/// A prefix list as the simulator holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixList {
    pub id: String,
    pub account: String,
    pub region: String,
    pub family: String,
    pub name: String,
    pub entries: Vec<String>,
}

/// (account, region, id).
pub type Key = (String, String, String);

fn key(account: &str, region: &str, id: &str) -> Key {
    (account.to_string(), region.to_string(), id.to_string())
}

/// Every account's interfaces and prefix lists, with the indexes listing needs. Interfaces live in
/// one vector and the indexes hold positions, so walking an index allocates nothing.
#[derive(Default)]
pub struct Network {
    slab: Vec<Eni>,
    /// (account, region, id) → position.
    by_id: BTreeMap<Key, usize>,
    /// (account, region, VPC, id) → position.
    by_vpc: BTreeMap<(String, String, String, String), usize>,
    /// (account, region, instance) → its primary ENI's id.
    primary_of: HashMap<Key, String>,
    /// How many interfaces each (account, region) and (account, region, VPC) has: `TotalCount`
    /// of an unfiltered listing without a walk.
    per_region: HashMap<(String, String), usize>,
    per_vpc: HashMap<Key, usize>,
    pub prefix_lists: BTreeMap<Key, PrefixList>,
}

impl Network {
    /// Adds a checked interface (replacing one of the same id). The caller has checked its groups
    /// exist (see [`SeedEni::check`]).
    pub fn insert(&mut self, eni: Eni) {
        let id_key = key(&eni.account, &eni.region, &eni.id);
        if let Some(&at) = self.by_id.get(&id_key) {
            let old = std::mem::replace(&mut self.slab[at], eni);
            self.unindex(&old);
            let new = self.slab[at].clone();
            self.index(&new, at);
            return;
        }
        let at = self.slab.len();
        self.index(&eni, at);
        self.slab.push(eni);
    }

    fn index(&mut self, eni: &Eni, at: usize) {
        self.by_id
            .insert(key(&eni.account, &eni.region, &eni.id), at);
        self.by_vpc.insert(
            (
                eni.account.clone(),
                eni.region.clone(),
                eni.vpc_id.clone(),
                eni.id.clone(),
            ),
            at,
        );
        if eni.primary {
            self.primary_of.insert(
                key(&eni.account, &eni.region, &eni.instance_id),
                eni.id.clone(),
            );
        }
        *self
            .per_region
            .entry((eni.account.clone(), eni.region.clone()))
            .or_default() += 1;
        *self
            .per_vpc
            .entry(key(&eni.account, &eni.region, &eni.vpc_id))
            .or_default() += 1;
    }

    fn unindex(&mut self, eni: &Eni) {
        self.by_vpc.remove(&(
            eni.account.clone(),
            eni.region.clone(),
            eni.vpc_id.clone(),
            eni.id.clone(),
        ));
        if eni.primary {
            self.primary_of
                .remove(&key(&eni.account, &eni.region, &eni.instance_id));
        }
        if let Some(n) = self
            .per_region
            .get_mut(&(eni.account.clone(), eni.region.clone()))
        {
            *n -= 1;
        }
        if let Some(n) = self
            .per_vpc
            .get_mut(&key(&eni.account, &eni.region, &eni.vpc_id))
        {
            *n -= 1;
        }
    }

    pub fn eni(&self, account: &str, region: &str, id: &str) -> Option<&Eni> {
        let at = *self.by_id.get(&key(account, region, id))?;
        self.slab.get(at)
    }

    pub fn eni_mut(&mut self, account: &str, region: &str, id: &str) -> Option<&mut Eni> {
        let at = *self.by_id.get(&key(account, region, id))?;
        self.slab.get_mut(at)
    }

    /// The primary ENI of an instance.
    pub fn primary_of(&self, account: &str, region: &str, instance: &str) -> Option<&str> {
        self.primary_of
            .get(&key(account, region, instance))
            .map(String::as_str)
    }

    /// How many interfaces a region (or one VPC in it) has.
    pub fn count(&self, account: &str, region: &str, vpc: Option<&str>) -> usize {
        match vpc {
            Some(v) => self.per_vpc.get(&key(account, region, v)).copied(),
            None => self
                .per_region
                .get(&(account.to_string(), region.to_string()))
                .copied(),
        }
        .unwrap_or(0)
    }

    /// The interfaces of one region (or of one VPC in it), in id order, starting after `after`.
    pub fn listing<'a>(
        &'a self,
        account: &'a str,
        region: &'a str,
        vpc: Option<&'a str>,
        after: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Eni> + 'a> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        match vpc {
            Some(vpc) => {
                let start = (
                    account.to_string(),
                    region.to_string(),
                    vpc.to_string(),
                    after.unwrap_or_default().to_string(),
                );
                let lower = match after {
                    Some(_) => Excluded(start),
                    None => Included(start),
                };
                Box::new(
                    self.by_vpc
                        .range((lower, Unbounded))
                        .take_while(move |((a, r, v, _), _)| {
                            a == account && r == region && v == vpc
                        })
                        .map(|(_, &at)| &self.slab[at]),
                )
            }
            None => {
                let start = key(account, region, after.unwrap_or_default());
                let lower = match after {
                    Some(_) => Excluded(start),
                    None => Included(start),
                };
                Box::new(
                    self.by_id
                        .range((lower, Unbounded))
                        .take_while(move |((a, r, _), _)| a == account && r == region)
                        .map(|(_, &at)| &self.slab[at]),
                )
            }
        }
    }

    /// Every interface of every account (the admin listing).
    pub fn all(&self) -> impl Iterator<Item = &Eni> {
        self.slab.iter()
    }

    pub fn prefix_list(&self, account: &str, region: &str, id: &str) -> Option<&PrefixList> {
        self.prefix_lists.get(&key(account, region, id))
    }
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4())
}

fn is_ipv6(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6())
}

impl SeedEni {
    /// Checks the interface on its own and against `group_vpc` (the VPC of each of its groups in
    /// its account and region: `None` for a group that does not exist, `Some("")` for a group
    /// without a VPC). `what` names it in messages.
    pub fn check(
        &self,
        what: &str,
        group_vpc: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Eni> {
        let id = &self.id;
        if id.is_empty() || self.region.is_empty() || self.vpc_id.is_empty() {
            bail!("{what}: NetworkInterfaceId, region and VpcId must not be empty");
        }
        crate::seed::check_account(what, &self.account)?;
        let primary = match self.kind.as_str() {
            "Primary" => true,
            "Secondary" => false,
            other => bail!("{what} ({id}): Type must be Primary or Secondary, not {other:?}"),
        };
        if primary && self.instance_id.is_empty() {
            bail!("{what} ({id}): a Primary interface needs its InstanceId");
        }
        let status = match &self.status {
            Some(s) if STATUSES.contains(&s.as_str()) => s.clone(),
            Some(s) => bail!("{what} ({id}): Status {s:?} is not one of {STATUSES:?}"),
            None if self.instance_id.is_empty() => "Available".into(),
            None => "InUse".into(),
        };
        if !is_ipv4(&self.private_ip) {
            bail!(
                "{what} ({id}): PrivateIpAddress {:?} is not an IPv4 address",
                self.private_ip
            );
        }
        let mut extra_ips = Vec::new();
        for ip in &self.private_ips {
            if !is_ipv4(ip) {
                bail!("{what} ({id}): PrivateIpAddresses entry {ip:?} is not an IPv4 address");
            }
            if *ip != self.private_ip && !extra_ips.contains(ip) {
                extra_ips.push(ip.clone());
            }
        }
        if let Some(ip) = self.ipv6.iter().find(|ip| !is_ipv6(ip)) {
            bail!("{what} ({id}): Ipv6Addresses entry {ip:?} is not an IPv6 address");
        }
        if self.groups.is_empty() || self.groups.len() > MAX_GROUPS_PER_ENI {
            bail!(
                "{what} ({id}): SecurityGroupIds must name 1 to {MAX_GROUPS_PER_ENI} groups, not {}",
                self.groups.len()
            );
        }
        let mut seen = BTreeSet::new();
        for g in &self.groups {
            if !seen.insert(g) {
                bail!("{what} ({id}): group {g} is listed twice");
            }
            match group_vpc(g) {
                None => bail!(
                    "{what} ({id}): security group {g} does not exist in {} of account {}",
                    self.region,
                    account_or_default(&self.account)
                ),
                Some(v) if !v.is_empty() && v != self.vpc_id => bail!(
                    "{what} ({id}): security group {g} is in {v}, the interface in {}",
                    self.vpc_id
                ),
                Some(_) => {}
            }
        }
        Ok(Eni {
            id: id.clone(),
            account: account_or_default(&self.account),
            region: self.region.clone(),
            vpc_id: self.vpc_id.clone(),
            vswitch_id: self.vswitch_id.clone(),
            instance_id: self.instance_id.clone(),
            primary,
            status,
            private_ip: self.private_ip.clone(),
            extra_ips,
            ipv6: self.ipv6.clone(),
            groups: self.groups.clone(),
            zone_id: self
                .zone_id
                .clone()
                .unwrap_or_else(|| format!("{}-a", self.region)),
        })
    }
}

impl SeedPrefixList {
    pub fn check(&self, what: &str) -> anyhow::Result<PrefixList> {
        let id = &self.id;
        if id.is_empty() || self.region.is_empty() {
            bail!("{what}: PrefixListId and region must not be empty");
        }
        crate::seed::check_account(what, &self.account)?;
        let v6 = match self.family.as_str() {
            "IPv4" => false,
            "IPv6" => true,
            other => bail!("{what} ({id}): AddressFamily must be IPv4 or IPv6, not {other:?}"),
        };
        if let Some(e) = self.entries.iter().find(|e| !check_cidr(e, v6)) {
            bail!(
                "{what} ({id}): entry {e:?} is not an {} CIDR block",
                self.family
            );
        }
        Ok(PrefixList {
            id: id.clone(),
            account: account_or_default(&self.account),
            region: self.region.clone(),
            family: self.family.clone(),
            name: self.name.clone(),
            entries: self.entries.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eni(yaml: &str) -> anyhow::Result<Eni> {
        let s: SeedEni = serde_yaml::from_str(yaml)?;
        s.check("eni", |g| match g {
            "sg-a" => Some("vpc-1".into()),
            "sg-novpc" => Some(String::new()),
            _ => None,
        })
    }

    #[test]
    fn an_interface_gets_its_defaults_and_drops_repeated_addresses() {
        let e = eni("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, InstanceId: i-1, Type: Primary, PrivateIpAddress: 10.0.0.1, PrivateIpAddresses: [10.0.0.1, 10.0.0.9], SecurityGroupIds: [sg-a, sg-novpc]}").expect("valid");
        assert_eq!((e.status.as_str(), e.primary), ("InUse", true));
        assert_eq!(e.extra_ips, ["10.0.0.9"]);
        let j = e.to_json();
        assert_eq!(j["PrivateIpSets"]["PrivateIpSet"][0]["Primary"], true);
        assert_eq!(j["PrivateIpSets"]["PrivateIpSet"][1]["Primary"], false);
        assert_eq!(j["SecurityGroupIds"]["SecurityGroupId"][0], "sg-a");
        let e = eni("{NetworkInterfaceId: eni-2, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.2, SecurityGroupIds: [sg-a]}").expect("valid");
        assert_eq!((e.status.as_str(), e.kind()), ("Available", "Secondary"));
    }

    #[test]
    fn a_bad_interface_is_refused_naming_what_is_wrong() {
        for (yaml, says) in [
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, Type: Primary, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a]}", "needs its InstanceId"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, Type: primary, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a]}", "Type must be"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, Status: Up, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a]}", "Status"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: \"2408::1\", SecurityGroupIds: [sg-a]}", "not an IPv4"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.1, Ipv6Addresses: [10.0.0.2], SecurityGroupIds: [sg-a]}", "not an IPv6"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: []}", "1 to 10"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-gone]}", "does not exist"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-2, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a]}", "is in vpc-1"),
            ("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a, sg-a]}", "listed twice"),
        ] {
            let e = eni(yaml).expect_err(yaml);
            assert!(format!("{e:#}").contains(says), "{yaml}: {e:#}");
        }
        assert!(eni("{NetworkInterfaceId: eni-1, region: r, VpcId: vpc-1, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a], Typo: 1}").is_err());
    }

    #[test]
    fn listing_walks_one_region_or_vpc_in_id_order_after_a_token() {
        let mut n = Network::default();
        for (id, region, vpc) in [
            ("eni-3", "r", "vpc-1"),
            ("eni-1", "r", "vpc-2"),
            ("eni-2", "r", "vpc-1"),
            ("eni-0", "other", "vpc-1"),
        ] {
            let s: SeedEni = serde_yaml::from_str(&format!("{{NetworkInterfaceId: {id}, region: {region}, VpcId: {vpc}, PrivateIpAddress: 10.0.0.1, SecurityGroupIds: [sg-a]}}")).expect("yaml");
            n.insert(s.check("eni", |_| Some(String::new())).expect("valid"));
        }
        let ids =
            |it: Box<dyn Iterator<Item = &Eni> + '_>| it.map(|e| e.id.clone()).collect::<Vec<_>>();
        let a = crate::DEFAULT_ACCOUNT;
        assert_eq!(
            ids(n.listing(a, "r", None, None)),
            ["eni-1", "eni-2", "eni-3"]
        );
        assert_eq!(
            ids(n.listing(a, "r", None, Some("eni-1"))),
            ["eni-2", "eni-3"]
        );
        assert_eq!(
            ids(n.listing(a, "r", Some("vpc-1"), None)),
            ["eni-2", "eni-3"]
        );
        assert_eq!(
            ids(n.listing(a, "r", Some("vpc-1"), Some("eni-2"))),
            ["eni-3"]
        );
        assert!(ids(n.listing("2", "r", None, None)).is_empty());
    }

    #[test]
    fn a_prefix_list_holds_cidrs_of_its_family() {
        let p = |y: &str| {
            serde_yaml::from_str::<SeedPrefixList>(y)
                .map_err(anyhow::Error::from)
                .and_then(|s| s.check("pl"))
        };
        assert!(p("{PrefixListId: pl-1, region: r, AddressFamily: IPv4, Entries: [10.1.0.0/16, 192.168.0.0/24]}").is_ok());
        assert!(p(
            "{PrefixListId: pl-1, region: r, AddressFamily: IPv4, Entries: [\"2408::/16\"]}"
        )
        .is_err());
        assert!(p("{PrefixListId: pl-1, region: r, AddressFamily: ipv4, Entries: []}").is_err());
    }
}
