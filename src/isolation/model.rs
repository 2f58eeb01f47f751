//! The isolation model, pure: given the members of a group declared `Drop`, every rule of every group
//! they belong to, the policies of those groups and the prefix lists the rules name, can two distinct
//! members reach each other? docs/isolation.md gives the source of every rule below.
//!
//! Traffic from member `a` to member `b` is open when
//! - they share a group whose effective policy is `Accept` (a **shared-group** path), or
//! - among the ingress rules of all of `b`'s groups, sorted by priority (1 first, drop before accept
//!   at equal priority), an accept rule matches `a` for some traffic that no earlier matching drop
//!   covers (partial shadowing leaves the rest open), and the egress rules of `a`'s groups do not drop
//!   all of that traffic towards `b` (an **ingress-rule** path).
//!
//! What cannot be decided makes the group **unknown**, never isolated. Where a rule cannot be
//! evaluated the model errs toward a path: an accept whose source cannot be evaluated is an unknown;
//! a drop whose source cannot be evaluated is taken not to match; an egress accept that cannot be
//! evaluated is taken to match (it only ever lets traffic out).
//!
//! Scale: members are grouped by their set of groups (a "class"); each class's rules are merged and
//! sorted once per analysis, and the search stops at the first example pair of each opening rule, so
//! the cost follows the rules that could open a path, not the square of the members.

use super::ranges::{Cidr, Traffic};
use crate::ecs::api::Permission;
use crate::model::Policy;
use core::net::IpAddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

/// Where a rule says traffic comes from (ingress) or goes to (egress).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A security group; `owner` is its account when the rule names one.
    Group {
        id: String,
        owner: Option<String>,
    },
    /// CIDR blocks (`SourceCidrIp` and/or `Ipv6SourceCidrIp`), with their text for the report.
    Cidrs(Vec<Cidr>, String),
    PrefixList(String),
    /// A peer that cannot be understood, and why.
    Invalid(String),
}

impl Peer {
    /// What the report shows as a path's `source`.
    pub fn label(&self) -> Option<&str> {
        match self {
            Peer::Group { id, .. } => Some(id),
            Peer::Cidrs(_, text) => Some(text),
            Peer::PrefixList(id) => Some(id),
            Peer::Invalid(_) => None,
        }
    }
}

/// One rule, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// `SecurityGroupRuleId`; older answers may lack it.
    pub id: Option<String>,
    pub ingress: bool,
    pub accept: bool,
    /// 1..100, the smaller first; default 1.
    pub priority: u8,
    /// `IpProtocol` lower-case and `PortRange` as sent, for the report.
    pub protocol: String,
    pub ports: String,
    /// The traffic the rule covers, or why its protocol, ports, direction or priority cannot be read.
    pub traffic: Result<Traffic, String>,
    pub peer: Peer,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Rule {
    /// A rule as DescribeSecurityGroupAttribute returns it, compared case-insensitively. A rule with a
    /// CIDR uses the CIDR even when it also names a group; a prefix list counts only when neither is
    /// set (AuthorizeSecurityGroup's request model).
    pub fn parse(p: &Permission) -> Rule {
        let direction = set(&p.direction).map(str::to_ascii_lowercase);
        let ingress = direction.as_deref() != Some("egress");
        let protocol = set(&p.ip_protocol).unwrap_or("").to_ascii_lowercase();
        let ports = set(&p.port_range).unwrap_or("-1/-1").to_string();
        let accept = !set(&p.policy).is_some_and(|s| s.eq_ignore_ascii_case("drop"));
        let priority = match set(&p.priority) {
            None => Ok(1),
            Some(s) => s
                .parse::<u8>()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| format!("priority {s:?} is not within 1..100")),
        };
        let traffic = match (direction.as_deref(), priority.clone()) {
            (Some(d), _) if d != "ingress" && d != "egress" => {
                Err(format!("direction {d:?} is neither ingress nor egress"))
            }
            (_, Err(e)) => Err(e),
            _ => Traffic::of_rule(&protocol, set(&p.port_range)),
        };
        let peer = Rule::peer(p, ingress);
        Rule {
            id: set(&p.security_group_rule_id).map(str::to_string),
            ingress,
            accept,
            priority: priority.unwrap_or(1),
            protocol,
            ports,
            traffic,
            peer,
        }
    }
    /// The source of an ingress rule, the destination of an egress one.
    fn peer(p: &Permission, ingress: bool) -> Peer {
        let (v4, v6, group, owner, list) = if ingress {
            (
                set(&p.source_cidr_ip),
                set(&p.ipv6_source_cidr_ip),
                set(&p.source_group_id),
                set(&p.source_group_owner_account),
                set(&p.source_prefix_list_id),
            )
        } else {
            (
                set(&p.dest_cidr_ip),
                set(&p.ipv6_dest_cidr_ip),
                set(&p.dest_group_id),
                set(&p.dest_group_owner_account),
                set(&p.dest_prefix_list_id),
            )
        };
        if v4.is_some() || v6.is_some() {
            let texts: Vec<&str> = v4.into_iter().chain(v6).collect();
            let cidrs: Option<Vec<Cidr>> = texts.iter().map(|t| Cidr::parse(t)).collect();
            match cidrs {
                Some(c) => Peer::Cidrs(c, texts.join(",")),
                None => Peer::Invalid(format!("CIDR {:?} cannot be read", texts.join(","))),
            }
        } else if let Some(id) = group {
            Peer::Group {
                id: id.to_string(),
                owner: owner.map(str::to_string),
            }
        } else if let Some(id) = list {
            Peer::PrefixList(id.to_string())
        } else {
            Peer::Invalid("the rule names no source or destination".to_string())
        }
    }
}

/// What is known of one group.
#[derive(Clone, Debug)]
pub struct GroupState {
    /// The effective policy (declared for a group sgpolicy enforces, live otherwise); `None`: unknown.
    pub policy: Option<Policy>,
    /// Every rule, or why they could not all be read.
    pub rules: Result<Vec<Rule>, String>,
}

/// One member: a network interface in use, its addresses and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub addresses: Vec<IpAddr>,
    pub groups: Vec<String>,
}

/// Everything the model knows of one (account, region).
#[derive(Clone, Debug, Default)]
pub struct Estate {
    /// The account's id, when known (a rule naming another owner account is then decidable).
    pub account: Option<String>,
    pub groups: HashMap<String, GroupState>,
    /// The interfaces in use; the members of a group are those whose `groups` name it.
    pub members: Vec<Member>,
    /// Each prefix list the rules name: its entries, or why they could not be read.
    pub prefix_lists: HashMap<String, Result<Vec<Cidr>, String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Isolated,
    NotIsolated,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Isolated => "isolated",
            Status::NotIsolated => "not-isolated",
            Status::Unknown => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    IngressRule,
    SharedGroup,
}

/// One way members reach each other, with one example pair.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Path {
    pub kind: PathKind,
    pub group: String,
    pub rule_id: Option<String>,
    pub protocol: String,
    pub ports: String,
    pub source: Option<String>,
    pub from: String,
    pub to: String,
}

/// Something that keeps the model from deciding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unknown {
    pub reason: String,
    pub group: Option<String>,
    pub rule_id: Option<String>,
}

/// The answer for one group.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub status: Status,
    pub members: usize,
    pub paths: Vec<Path>,
    pub unknown: Vec<Unknown>,
    /// What the answer depends on besides the group itself: the daemon re-checks the group when an
    /// event names any of it (filled by `read`; not part of the report).
    #[serde(skip)]
    pub depends: Depends,
}

/// The ids a verdict depends on: the groups its members are in (the group itself included), the
/// members and their instances, the prefix lists those groups' rules name, and the group's VPC.
/// A write naming none of them cannot change the verdict, so an event about it costs nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Depends {
    pub groups: BTreeSet<String>,
    pub interfaces: BTreeSet<String>,
    pub instances: BTreeSet<String>,
    pub prefix_lists: BTreeSet<String>,
    pub vpc: Option<String>,
}

impl Verdict {
    /// A group that could not be analysed at all.
    pub fn unknown(reason: impl Into<String>, group: &str) -> Verdict {
        Verdict {
            status: Status::Unknown,
            members: 0,
            paths: Vec::new(),
            unknown: vec![Unknown {
                reason: reason.into(),
                group: Some(group.to_string()),
                rule_id: None,
            }],
            depends: Depends {
                groups: BTreeSet::from([group.to_string()]),
                ..Depends::default()
            },
        }
    }

    fn of(members: usize, paths: Vec<Path>, unknown: BTreeSet<Unknown>) -> Verdict {
        let status = if !paths.is_empty() {
            Status::NotIsolated
        } else if !unknown.is_empty() {
            Status::Unknown
        } else {
            Status::Isolated
        };
        Verdict {
            status,
            members,
            paths,
            unknown: unknown.into_iter().collect(),
            depends: Depends::default(),
        }
    }
}

/// Whether a peer matches a member.
enum Match {
    Yes,
    No,
    Unknown(String),
}

type GroupIx = u32;

/// Merged rule lists by (group set, ingress?).
type MergedCache<'a> = std::cell::RefCell<HashMap<(Rc<[GroupIx]>, bool), Rc<Vec<Ranked<'a>>>>>;

/// A rule in a merged, sorted list: its group and the rule.
#[derive(Clone, Copy)]
struct Ranked<'a> {
    group: GroupIx,
    rule: &'a Rule,
}

/// One estate prepared for checking many groups: ids interned, members indexed by group, merged
/// rule lists cached by group set.
pub struct Analysis<'a> {
    estate: &'a Estate,
    names: Vec<&'a str>,
    ix: HashMap<&'a str, GroupIx>,
    /// Per member, its groups (interned, sorted, deduplicated).
    sets: Vec<Rc<[GroupIx]>>,
    /// Per group, its members (indices into `estate.members`).
    by_group: HashMap<GroupIx, Vec<usize>>,
    merged: MergedCache<'a>,
}

impl<'a> Analysis<'a> {
    pub fn new(estate: &'a Estate) -> Analysis<'a> {
        let mut names: Vec<&'a str> = Vec::new();
        let mut ix: HashMap<&'a str, GroupIx> = HashMap::new();
        let mut intern = |name: &'a str| -> GroupIx {
            *ix.entry(name).or_insert_with(|| {
                names.push(name);
                (names.len() - 1) as GroupIx
            })
        };
        let mut sets = Vec::with_capacity(estate.members.len());
        let mut by_group: HashMap<GroupIx, Vec<usize>> = HashMap::new();
        let mut distinct: HashMap<Vec<GroupIx>, Rc<[GroupIx]>> = HashMap::new();
        for (m, member) in estate.members.iter().enumerate() {
            let mut set: Vec<GroupIx> = member.groups.iter().map(|g| intern(g)).collect();
            set.sort_unstable();
            set.dedup();
            for &g in &set {
                by_group.entry(g).or_default().push(m);
            }
            let shared = distinct
                .entry(set)
                .or_insert_with_key(|k| Rc::from(k.as_slice()))
                .clone();
            sets.push(shared);
        }
        Analysis {
            estate,
            names,
            ix,
            sets,
            by_group,
            merged: Default::default(),
        }
    }

    fn name(&self, g: GroupIx) -> &'a str {
        self.names[g as usize]
    }

    fn state(&self, g: GroupIx) -> Option<&'a GroupState> {
        self.estate.groups.get(self.name(g))
    }

    /// The rules of one direction of every group in `set`, sorted: priority first, drop before
    /// accept at equal priority. Groups whose rules are unreadable contribute none (the caller
    /// reports them).
    fn merged(&self, set: &Rc<[GroupIx]>, ingress: bool) -> Rc<Vec<Ranked<'a>>> {
        let key = (set.clone(), ingress);
        if let Some(m) = self.merged.borrow().get(&key) {
            return m.clone();
        }
        let mut list: Vec<Ranked<'a>> = Vec::new();
        for &g in set.iter() {
            if let Some(GroupState {
                rules: Ok(rules), ..
            }) = self.state(g)
            {
                list.extend(
                    rules
                        .iter()
                        .filter(|r| r.ingress == ingress)
                        .map(|rule| Ranked { group: g, rule }),
                );
            }
        }
        list.sort_by_key(|r| (r.rule.priority, r.rule.accept));
        let list = Rc::new(list);
        self.merged.borrow_mut().insert(key, list.clone());
        list
    }

    fn matches(&self, peer: &Peer, member: usize) -> Match {
        let m = &self.estate.members[member];
        match peer {
            Peer::Group { id, owner } => {
                let foreign = match (owner, &self.estate.account) {
                    (None, _) => false,
                    (Some(o), Some(mine)) => o != mine,
                    // Our own id is unknown: the group is ours if we can see it at all.
                    (Some(_), None) => {
                        !self.ix.contains_key(id.as_str()) && !self.estate.groups.contains_key(id)
                    }
                };
                if foreign {
                    return Match::Unknown(format!(
                        "source group {id} belongs to account {}, whose members sgpolicy cannot list",
                        owner.as_deref().unwrap_or("?")
                    ));
                }
                let set = &self.sets[member];
                match self.ix.get(id.as_str()) {
                    Some(g) if set.contains(g) => Match::Yes,
                    _ => Match::No,
                }
            }
            Peer::Cidrs(cidrs, _) => {
                if cidrs
                    .iter()
                    .any(|c| m.addresses.iter().any(|a| c.contains(a)))
                {
                    Match::Yes
                } else {
                    Match::No
                }
            }
            Peer::PrefixList(id) => match self.estate.prefix_lists.get(id) {
                Some(Ok(cidrs)) => {
                    if cidrs
                        .iter()
                        .any(|c| m.addresses.iter().any(|a| c.contains(a)))
                    {
                        Match::Yes
                    } else {
                        Match::No
                    }
                }
                Some(Err(why)) => Match::Unknown(why.clone()),
                None => Match::Unknown(format!("prefix list {id} was not read")),
            },
            Peer::Invalid(why) => Match::Unknown(why.clone()),
        }
    }

    /// The traffic of `open` from member `a` that the egress rules of `a`'s groups let out towards
    /// `b`: the first matching rule decides, and what no rule matches is allowed.
    fn let_out(&self, a: usize, b: usize, open: &Traffic) -> Traffic {
        let rules = self.merged(&self.sets[a], false);
        let mut undecided = open.clone();
        let mut blocked = Traffic::none();
        for r in rules.iter() {
            if undecided.is_empty() {
                break;
            }
            let Ok(t) = &r.rule.traffic else { continue };
            let hit = match self.matches(&r.rule.peer, b) {
                Match::Yes => true,
                Match::No => false,
                // Unknown: an accept is taken to match, a drop not to (toward a path).
                Match::Unknown(_) => r.rule.accept,
            };
            if !hit {
                continue;
            }
            let covered = undecided.intersect(t);
            if !r.rule.accept {
                blocked = blocked.union(&covered);
            }
            undecided = undecided.minus(t);
        }
        open.minus(&blocked)
    }

    /// Can two distinct members of `group` reach each other?
    pub fn check(&self, group: &str) -> Verdict {
        let Some(&g) = self.ix.get(group) else {
            return Verdict::of(0, Vec::new(), BTreeSet::new());
        };
        let members = self.by_group.get(&g).map(Vec::as_slice).unwrap_or(&[]);
        if members.len() < 2 {
            return Verdict::of(members.len(), Vec::new(), BTreeSet::new());
        }
        let mut paths = Vec::new();
        let mut unknown = BTreeSet::new();
        let shared = self.shared_groups(g, members, &mut unknown);
        self.shared_group_paths(&shared, &mut paths, &mut unknown);
        self.ingress_paths(members, &mut paths, &mut unknown);
        Verdict::of(members.len(), paths, unknown)
    }

    /// The groups two or more `members` share, with the first two members of each, `g` first
    /// and then by name. A group whose rules could not be read may hold an accept rule: that
    /// goes to `unknown`.
    fn shared_groups(
        &self,
        g: GroupIx,
        members: &[usize],
        unknown: &mut BTreeSet<Unknown>,
    ) -> Vec<(GroupIx, usize, usize)> {
        let mut shared: BTreeMap<GroupIx, (usize, Option<usize>)> = BTreeMap::new();
        for &m in members {
            for &s in self.sets[m].iter() {
                shared
                    .entry(s)
                    .and_modify(|e| {
                        e.1.get_or_insert(m);
                    })
                    .or_insert((m, None));
            }
        }
        for &s in shared.keys() {
            let why = match self.state(s) {
                Some(GroupState {
                    rules: Err(why), ..
                }) => why.clone(),
                Some(_) => continue,
                None => format!("the rules of {} were not read", self.name(s)),
            };
            unknown.insert(Unknown {
                reason: why,
                group: Some(self.name(s).to_string()),
                rule_id: None,
            });
        }
        let mut shared: Vec<(GroupIx, usize, usize)> = shared
            .into_iter()
            .filter_map(|(s, (a, b))| Some((s, a, b?)))
            .collect();
        shared.sort_by_key(|&(s, _, _)| (s != g, self.name(s)));
        shared
    }

    /// The paths through `shared` groups whose policy accepts traffic between their members; a
    /// shared group whose policy could not be read goes to `unknown`.
    fn shared_group_paths(
        &self,
        shared: &[(GroupIx, usize, usize)],
        paths: &mut Vec<Path>,
        unknown: &mut BTreeSet<Unknown>,
    ) {
        for &(s, a, b) in shared {
            let name = self.name(s).to_string();
            match self.state(s) {
                Some(GroupState {
                    policy: Some(Policy::Accept),
                    ..
                }) => paths.push(Path {
                    kind: PathKind::SharedGroup,
                    group: name,
                    rule_id: None,
                    protocol: "all".into(),
                    ports: "-1/-1".into(),
                    source: None,
                    from: self.estate.members[a].id.clone(),
                    to: self.estate.members[b].id.clone(),
                }),
                Some(GroupState {
                    policy: Some(Policy::Drop),
                    ..
                }) => {}
                // Its rules could not be read either: that unknown (above) says why.
                Some(GroupState {
                    policy: None,
                    rules: Err(_),
                })
                | None => {}
                Some(GroupState { policy: None, .. }) => {
                    unknown.insert(Unknown {
                        reason: format!(
                            "the policy of {name}, a group members share, could not be read"
                        ),
                        group: Some(name),
                        rule_id: None,
                    });
                }
            }
        }
    }

    /// The paths ingress rules open between `members`, destination class by destination class.
    fn ingress_paths(
        &self,
        members: &[usize],
        paths: &mut Vec<Path>,
        unknown: &mut BTreeSet<Unknown>,
    ) {
        let mut classes: BTreeMap<Rc<[GroupIx]>, Vec<usize>> = BTreeMap::new();
        for &m in members {
            classes.entry(self.sets[m].clone()).or_default().push(m);
        }
        let mut opened: BTreeSet<(GroupIx, *const Rule)> = BTreeSet::new();
        for (set, dests) in &classes {
            let rules = self.merged(set, true);
            for (pos, r) in rules.iter().enumerate() {
                if !r.rule.accept || opened.contains(&(r.group, r.rule as *const Rule)) {
                    continue;
                }
                let traffic = match &r.rule.traffic {
                    Ok(t) => t,
                    Err(why) => {
                        unknown.insert(self.rule_unknown(r, why.clone()));
                        continue;
                    }
                };
                if let Some(path) = self.open_by(r, pos, traffic, &rules, members, dests, unknown) {
                    opened.insert((r.group, r.rule as *const Rule));
                    paths.push(path);
                }
            }
        }
    }

    fn rule_unknown(&self, r: &Ranked<'a>, reason: String) -> Unknown {
        Unknown {
            reason,
            group: Some(self.name(r.group).to_string()),
            rule_id: r.rule.id.clone(),
        }
    }

    /// The first pair (a, b), a a member the accept rule `r` matches and b one of `dests`, through
    /// which `r` opens some traffic; records an unknown when `r`'s source cannot be evaluated.
    #[allow(clippy::too_many_arguments)]
    fn open_by(
        &self,
        r: &Ranked<'a>,
        pos: usize,
        traffic: &Traffic,
        rules: &[Ranked<'a>],
        members: &[usize],
        dests: &[usize],
        unknown: &mut BTreeSet<Unknown>,
    ) -> Option<Path> {
        for &a in members {
            match self.matches(&r.rule.peer, a) {
                Match::Yes => {}
                Match::No => continue,
                Match::Unknown(why) => {
                    unknown.insert(self.rule_unknown(r, why));
                    return None;
                }
            }
            // What the earlier drops that match `a` leave of the rule's traffic.
            let mut open = traffic.clone();
            for d in &rules[..pos] {
                if d.rule.accept {
                    continue;
                }
                let Ok(t) = &d.rule.traffic else { continue };
                if let Match::Yes = self.matches(&d.rule.peer, a) {
                    open = open.minus(t);
                    if open.is_empty() {
                        break;
                    }
                }
            }
            if open.is_empty() {
                continue;
            }
            for &b in dests {
                if b == a || self.let_out(a, b, &open).is_empty() {
                    continue;
                }
                return Some(Path {
                    kind: PathKind::IngressRule,
                    group: self.name(r.group).to_string(),
                    rule_id: r.rule.id.clone(),
                    protocol: r.rule.protocol.clone(),
                    ports: r.rule.ports.clone(),
                    source: r.rule.peer.label().map(str::to_string),
                    from: self.estate.members[a].id.clone(),
                    to: self.estate.members[b].id.clone(),
                });
            }
        }
        None
    }
}

/// Checks one group of `estate` (for many, build one [`Analysis`] and call `check` on it).
pub fn check(estate: &Estate, group: &str) -> Verdict {
    Analysis::new(estate).check(group)
}
