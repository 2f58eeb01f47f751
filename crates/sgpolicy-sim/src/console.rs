//! Changes to who can reach whom made outside the signed API, as a console user (or a test, or
//! the benchmark) would: add or remove a rule, let an interface join or leave a group, add an
//! interface. With an actor each is a `ConsoleOperation` ActionTrail event named after the API
//! action the console calls (`AuthorizeSecurityGroup[Egress]`, `RevokeSecurityGroup[Egress]`,
//! `JoinSecurityGroup`, `LeaveSecurityGroup`), pushed like any other; without one nothing is
//! recorded (a missed event). `admin` serves them under `/_sim/`.

use crate::net::{SeedEni, MAX_GROUPS_PER_ENI};
use crate::rules::{rule_id, Rule, SeedRule};
use crate::state::State;
use crate::trail::{self, ConsoleActor};
use crate::Simulator;
use anyhow::{anyhow, bail};
use serde_json::{json, Map, Value};

/// Why a console change was refused; `Conflict` when it would change nothing (the path's 409).
#[derive(Debug)]
pub enum Refused {
    NotFound(String),
    Conflict(String),
    Invalid(anyhow::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotFound(m) | Refused::Conflict(m) => f.write_str(m),
            Refused::Invalid(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Refused {}

/// What a console change did: the rule it concerns (for rule changes) and its `eventId`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub rule_id: Option<String>,
    pub event_id: Option<String>,
}

/// The console's `Permissions.1.*` parameters for one rule.
fn rule_params(region: &str, group: &str, r: &Rule) -> Value {
    let mut m = Map::new();
    m.insert("RegionId".into(), json!(region));
    m.insert("SecurityGroupId".into(), json!(group));
    if let Ok(Value::Object(spec)) = serde_json::to_value(r.to_spec()) {
        for (k, v) in spec {
            if k != "Direction" && k != "SecurityGroupRuleId" {
                m.insert(format!("Permissions.1.{k}"), v);
            }
        }
    }
    Value::Object(m)
}

impl Simulator {
    /// Records a console operation on `group` when there is an actor, and publishes it.
    fn console_event(
        &self,
        mut st: std::sync::MutexGuard<'_, State>,
        key: (&str, &str, &str),
        event: &str,
        params: Value,
        actor: Option<&ConsoleActor>,
    ) -> Option<String> {
        let (account, region, group) = key;
        let actor = actor?;
        let now = chrono::Utc::now().timestamp();
        let record = trail::console_operation(account, region, event, params, group, actor, now);
        let id = st.trail.record(account, region, now, record);
        let fresh = st.trail.take_outbox();
        drop(st);
        self.publish(fresh);
        Some(id)
    }

    /// Adds a rule (ingress or egress, by its `Direction`) to a group of `account`. Its source
    /// group may be one that does not exist (a deleted group); a prefix list must exist. An
    /// identical rule is a `Conflict`.
    pub fn add_rule(
        &self,
        account: &str,
        region: &str,
        group: &str,
        spec: &SeedRule,
        actor: Option<&ConsoleActor>,
    ) -> Result<Change, Refused> {
        let mut st = self.state();
        let key = (account.to_string(), region.to_string(), group.to_string());
        let n = st.rules_created;
        let now = crate::auth::fmt_time(chrono::Utc::now().timestamp());
        let generated = rule_id(&format!("{account}/{region}/{group}/console/{n}"));
        let rule = Rule::check(spec, None, generated, &now)
            .map_err(|e| Refused::Invalid(anyhow!("{} ({})", e.message, e.code)))?;
        for pl in [&rule.source_prefix_list_id, &rule.dest_prefix_list_id] {
            if !pl.is_empty() && st.net.prefix_list(account, region, pl).is_none() {
                return Err(Refused::Invalid(anyhow!("prefix list {pl} does not exist")));
            }
        }
        let g = st.groups.get_mut(&key).ok_or_else(|| {
            Refused::NotFound(format!("no group {group} in {region} of account {account}"))
        })?;
        let identity = rule.identity();
        if let Some(same) = g.rules.iter().find(|r| r.identity() == identity) {
            return Err(Refused::Conflict(format!(
                "group {group} has this rule already: {}",
                same.id
            )));
        }
        if g.rules.iter().any(|r| r.id == rule.id) {
            return Err(Refused::Conflict(format!(
                "group {group} has a rule {} already",
                rule.id
            )));
        }
        let event = match rule.direction.as_str() {
            "egress" => "AuthorizeSecurityGroupEgress",
            _ => "AuthorizeSecurityGroup",
        };
        let params = rule_params(region, group, &rule);
        let id = rule.id.clone();
        g.rules.push(rule);
        st.rules_created += 1;
        let event_id = self.console_event(st, (account, region, group), event, params, actor);
        Ok(Change {
            rule_id: Some(id),
            event_id,
        })
    }

    /// Removes a rule from a group by its id.
    pub fn remove_rule(
        &self,
        account: &str,
        region: &str,
        group: &str,
        rule: &str,
        actor: Option<&ConsoleActor>,
    ) -> Result<Change, Refused> {
        let mut st = self.state();
        let key = (account.to_string(), region.to_string(), group.to_string());
        let g = st.groups.get_mut(&key).ok_or_else(|| {
            Refused::NotFound(format!("no group {group} in {region} of account {account}"))
        })?;
        let at = g
            .rules
            .iter()
            .position(|r| r.id == rule)
            .ok_or_else(|| Refused::NotFound(format!("group {group} has no rule {rule}")))?;
        let removed = g.rules.remove(at);
        let event = match removed.direction.as_str() {
            "egress" => "RevokeSecurityGroupEgress",
            _ => "RevokeSecurityGroup",
        };
        let params =
            json!({"RegionId": region, "SecurityGroupId": group, "SecurityGroupRuleId.1": rule});
        let event_id = self.console_event(st, (account, region, group), event, params, actor);
        Ok(Change {
            rule_id: Some(removed.id),
            event_id,
        })
    }

    /// Lets an interface join (`join`) or leave a group of its VPC, with the API's limits: at
    /// most 10 groups, never none.
    pub fn set_membership(
        &self,
        account: &str,
        region: &str,
        eni: &str,
        group: &str,
        join: bool,
        actor: Option<&ConsoleActor>,
    ) -> Result<Change, Refused> {
        let mut st = self.state();
        let Some(g) = st.group(account, region, group) else {
            return Err(Refused::NotFound(format!(
                "no group {group} in {region} of account {account}"
            )));
        };
        let vpc = g.vpc_id.clone();
        let e = st.net.eni_mut(account, region, eni).ok_or_else(|| {
            Refused::NotFound(format!(
                "no interface {eni} in {region} of account {account}"
            ))
        })?;
        let member = e.groups.iter().any(|g| g == group);
        match (join, member) {
            (true, true) => return Err(Refused::Conflict(format!("{eni} is in {group} already"))),
            (false, false) => return Err(Refused::Conflict(format!("{eni} is not in {group}"))),
            (true, false) => {
                if !vpc.is_empty() && vpc != e.vpc_id {
                    return Err(Refused::Invalid(anyhow!(
                        "{group} is in {vpc}, {eni} in {}",
                        e.vpc_id
                    )));
                }
                if e.groups.len() >= MAX_GROUPS_PER_ENI {
                    return Err(Refused::Invalid(anyhow!(
                        "{eni} is in {MAX_GROUPS_PER_ENI} groups already"
                    )));
                }
                e.groups.push(group.to_string());
            }
            (false, true) => {
                if e.groups.len() == 1 {
                    return Err(Refused::Invalid(anyhow!(
                        "{group} is the last group of {eni}"
                    )));
                }
                e.groups.retain(|g| g != group);
            }
        }
        let event = if join {
            "JoinSecurityGroup"
        } else {
            "LeaveSecurityGroup"
        };
        let params =
            json!({"RegionId": region, "SecurityGroupId": group, "NetworkInterfaceId": eni});
        let event_id = self.console_event(st, (account, region, group), event, params, actor);
        Ok(Change {
            rule_id: None,
            event_id,
        })
    }

    /// Adds a network interface, checked like a seeded one against the groups that exist now (no
    /// event: a new interface is not a membership change of an existing one). False if its id
    /// is taken in its account and region.
    pub fn add_interface(&self, eni: SeedEni) -> anyhow::Result<bool> {
        let mut st = self.state();
        let account = crate::seed::account_or_default(&eni.account);
        let checked = eni.check("interface", |g| {
            st.group(&account, &eni.region, g).map(|g| g.vpc_id.clone())
        })?;
        if st.net.eni(&account, &eni.region, &eni.id).is_some() {
            return Ok(false);
        }
        if checked.primary {
            if let Some(other) = st
                .net
                .primary_of(&account, &eni.region, &checked.instance_id)
            {
                bail!(
                    "instance {} has a Primary interface already: {other}",
                    checked.instance_id
                );
            }
        }
        st.net.insert(checked);
        Ok(true)
    }

    /// A group's rules as `DescribeSecurityGroupAttribute` lists them (`None`: no such group).
    pub fn rules_of(&self, account: &str, region: &str, group: &str) -> Option<Vec<Value>> {
        let st = self.state();
        let g = st.group(account, region, group)?;
        Some(
            g.rules
                .iter()
                .map(|r| r.to_json(|_| String::new()))
                .collect(),
        )
    }

    /// The groups an interface is in (`None`: no such interface).
    pub fn groups_of(&self, account: &str, region: &str, eni: &str) -> Option<Vec<String>> {
        self.state()
            .net
            .eni(account, region, eni)
            .map(|e| e.groups.clone())
    }
}
