//! Selectors: a policy for every group that matches tags, a VPC and/or a name glob, parsed from
//! `selectors:` entries. Resolving them against the cloud happens at pass time (`crate::reconcile::selectors`);
//! this module only validates the declaration.
//!
//! ```yaml
//! selectors:
//!   - region: cn-hangzhou                 # optional like a group's: entry, file, then --region
//!     match:                              # at least one of the three
//!       tags: {env: prod, team: payments} # all must match (server-side Tag.N filters)
//!       vpcId: vpc-bp1opxu1zkhn00gzv26cm  # server-side VpcId filter
//!       name: "pay-*"                     # glob on SecurityGroupName: `*` any run, `?` one character
//!     innerAccessPolicy: Drop
//!     mode: observe                       # optional: enforce (default) | observe
//! ```
//! An empty `match` is refused: a selector that silently matches a whole region is one typo away from
//! flipping every group in it. `name: "*"` says "every group" on purpose.

use super::schema::{
    known_fields, location, mapping, mode_value, policy_value, region_value, string_value,
    Fallback, Report,
};
use super::yaml::{Node, Value};
use crate::model::{Location, Mode, Policy};
use std::collections::BTreeMap;

pub(crate) const SELECTOR_FIELDS: &[&str] = &["region", "match", "innerAccessPolicy", "mode"];
pub(crate) const MATCH_FIELDS: &[&str] = &["tags", "vpcId", "name"];
/// DescribeSecurityGroups accepts `Tag.1` to `Tag.20`.
pub(crate) const MAX_TAGS: usize = 20;
/// ECS tag keys are at most 128 characters and values at most 128.
pub(crate) const MAX_TAG_LEN: usize = 128;
pub(crate) const MAX_PATTERN_LEN: usize = 128;

/// One validated selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The account of the file that declared it (empty: the chain's own), see `GroupKey::account`.
    pub account: String,
    pub region: String,
    /// Every tag must be present with exactly this value.
    pub tags: BTreeMap<String, String>,
    pub vpc_id: Option<String>,
    /// Glob on SecurityGroupName (`*`, `?`), matched on our side: the API only filters by exact name.
    pub name: Option<String>,
    pub policy: Policy,
    pub mode: Mode,
    pub source: Location,
}

impl Selector {
    /// The match, as one line for messages: `tags env=prod,team=pay, vpcId vpc-1, name "pay-*"`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("tags {}", tags.join(",")));
        }
        if let Some(v) = &self.vpc_id {
            parts.push(format!("vpcId {v}"));
        }
        if let Some(n) = &self.name {
            parts.push(format!("name {n:?}"));
        }
        format!("{} {}", self.region, parts.join(", "))
    }
}

/// `*` matches any run of characters (also none), `?` exactly one; everything else itself.
/// Iterative with one backtrack point, so it is linear-ish and cannot blow up on hostile patterns.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub(super) fn selectors_of(
    list: &Node,
    fallback: Fallback<'_>,
    report: &mut Report<'_>,
) -> Vec<Selector> {
    match &list.value {
        _ if list.is_null() => Vec::new(),
        Value::Seq(items) => items
            .iter()
            .filter_map(|item| selector(item, fallback, report))
            .collect(),
        _ => {
            report.err(
                list.pos,
                format!(
                    "expected a list of selectors under `selectors:`, found {}",
                    list.kind()
                ),
            );
            Vec::new()
        }
    }
}

/// A parsed `match:`; `None` fields are absent.
struct Match {
    tags: BTreeMap<String, String>,
    vpc_id: Option<String>,
    name: Option<String>,
}

fn selector(node: &Node, fallback: Fallback<'_>, report: &mut Report<'_>) -> Option<Selector> {
    let fields = mapping(
        node,
        "a selector (a mapping with `match:` and `innerAccessPolicy:`)",
        report,
    )?;
    let (mut region, mut matcher, mut policy, mut mode) = (None, None, None, Some(Mode::Enforce));
    for (name, value) in known_fields(fields, SELECTOR_FIELDS, "in a selector", report) {
        match name {
            "region" => region = Some(region_value(value, report)),
            "match" => matcher = Some(match_value(value, report)),
            "mode" => mode = mode_value(value, report),
            _ => policy = Some(policy_value(value, report)),
        }
    }
    let matcher = match matcher {
        Some(m) => m,
        None => {
            report.err(
                node.pos,
                "selector has no `match` (tags, vpcId and/or name)",
            );
            None
        }
    };
    let policy = match policy {
        Some(p) => p,
        None => {
            report.err(
                node.pos,
                "selector has no `innerAccessPolicy` (Accept or Drop)",
            );
            None
        }
    };
    let region = fallback.region(
        region,
        node.pos,
        "selector has no region: add `region:` to the selector or to the top of the file, or pass --region".into(),
        report,
    );
    let matcher = matcher?;
    Some(Selector {
        // Set by `schema::groups_of_file` from the file's `account:`.
        account: String::new(),
        region: region?,
        tags: matcher.tags,
        vpc_id: matcher.vpc_id,
        name: matcher.name,
        policy: policy?,
        mode: mode?,
        source: location(report.path, node.pos),
    })
}

fn match_value(node: &Node, report: &mut Report<'_>) -> Option<Match> {
    let fields = mapping(
        node,
        "a mapping with `tags`, `vpcId` and/or `name` under `match:`",
        report,
    )?;
    let mut m = Match {
        tags: BTreeMap::new(),
        vpc_id: None,
        name: None,
    };
    let mut ok = true;
    for (name, value) in known_fields(fields, MATCH_FIELDS, "in `match`", report) {
        match name {
            "tags" => match tags_value(value, report) {
                Some(t) => m.tags = t,
                None => ok = false,
            },
            "vpcId" => match plain_value(value, "vpcId", MAX_TAG_LEN, report) {
                Some(v) => m.vpc_id = Some(v),
                None => ok = false,
            },
            _ => match plain_value(value, "name", MAX_PATTERN_LEN, report) {
                Some(v) => m.name = Some(v),
                None => ok = false,
            },
        }
    }
    if ok && m.tags.is_empty() && m.vpc_id.is_none() && m.name.is_none() {
        report.err(
            node.pos,
            "`match` must name at least one of `tags`, `vpcId` or `name` (use name: \"*\" to select every group on purpose)",
        );
        return None;
    }
    ok.then_some(m)
}

/// A non-empty string of at most `max` characters without control characters.
fn plain_value(node: &Node, what: &str, max: usize, report: &mut Report<'_>) -> Option<String> {
    let s = string_value(node, what, report)?;
    let problem = if s.is_empty() {
        Some(format!("`{what}` must not be empty"))
    } else if s.chars().count() > max {
        Some(format!("`{what}` is longer than {max} characters"))
    } else if s.chars().any(char::is_control) {
        Some(format!("`{what}` must not contain control characters"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            report.err(node.pos, message);
            None
        }
        None => Some(s.to_string()),
    }
}

fn tags_value(node: &Node, report: &mut Report<'_>) -> Option<BTreeMap<String, String>> {
    let Value::Map(pairs) = &node.value else {
        report.err(
            node.pos,
            format!(
                "expected a mapping of tag keys to values under `tags:`, found {}",
                node.kind()
            ),
        );
        return None;
    };
    let mut tags = BTreeMap::new();
    let mut ok = true;
    for (key, value) in pairs {
        let k = plain_value(key, "tag key", MAX_TAG_LEN, report);
        let v = plain_value(value, "tag value", MAX_TAG_LEN, report);
        match (k, v) {
            (Some(k), Some(v)) => {
                if tags.insert(k.clone(), v).is_some() {
                    report.err(key.pos, format!("duplicate tag key {k:?}"));
                    ok = false;
                }
            }
            _ => ok = false,
        }
    }
    if tags.len() > MAX_TAGS {
        report.err(
            node.pos,
            format!("at most {MAX_TAGS} tags can be matched (the API's Tag.N limit)"),
        );
        ok = false;
    }
    ok.then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::schema::groups_of_file;
    use crate::policy::yaml::parse;
    use std::path::Path;

    fn check(text: &str) -> (Vec<Selector>, Vec<String>) {
        let root = parse(text).expect("syntax ok");
        let d = groups_of_file(root.as_ref(), Path::new("f.yaml"), Fallback::None);
        (
            d.selectors,
            d.errors.iter().map(ToString::to_string).collect(),
        )
    }

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_match("pay-*", "pay-api"));
        assert!(glob_match("pay-*", "pay-"));
        assert!(!glob_match("pay-*", "xpay-api"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*-db-*", "pay-db-01"));
        assert!(glob_match("**a*", "bab"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("日本*", "日本語"));
        let hostile = "*a".repeat(60);
        assert!(!glob_match(&hostile, &"a".repeat(59)));
    }

    #[test]
    fn a_full_selector_parses_with_file_region_and_mode() {
        let (s, e) = check(
            "region: cn-hangzhou\nselectors:\n  - match:\n      tags: {env: prod, team: payments}\n      vpcId: vpc-1\n      name: \"pay-*\"\n    innerAccessPolicy: drop\n    mode: Observe\n",
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!(s.region, "cn-hangzhou");
        assert_eq!(s.tags.get("team").map(String::as_str), Some("payments"));
        assert_eq!(s.vpc_id.as_deref(), Some("vpc-1"));
        assert_eq!(s.name.as_deref(), Some("pay-*"));
        assert_eq!((s.policy, s.mode), (Policy::Drop, Mode::Observe));
        assert_eq!((s.source.line, s.source.column), (3, 5));
        assert_eq!(
            s.describe(),
            "cn-hangzhou tags env=prod,team=payments, vpcId vpc-1, name \"pay-*\""
        );
    }

    #[test]
    fn bad_selectors_are_reported_with_positions() {
        let (s, e) = check(
            "selectors:\n  - region: cn-a\n    match: {}\n    innerAccessPolicy: Drop\n  - region: cn-a\n    match: {tags: {env: \"\"}, vpcid: x}\n    innerAccessPolicy: Drop\n    mode: audit\n  - match: {name: x}\n  - just-text\n",
        );
        assert!(s.is_empty());
        assert_eq!(
            e,
            [
                "f.yaml:3:12: `match` must name at least one of `tags`, `vpcId` or `name` (use name: \"*\" to select every group on purpose)",
                "f.yaml:6:30: unknown field `vpcid` in `match`, did you mean `vpcId`?",
                "f.yaml:6:25: `tag value` must not be empty",
                "f.yaml:8:11: expected enforce or observe for `mode`, found \"audit\"",
                "f.yaml:9:5: selector has no `innerAccessPolicy` (Accept or Drop)",
                "f.yaml:9:5: selector has no region: add `region:` to the selector or to the top of the file, or pass --region",
                "f.yaml:10:5: expected a selector (a mapping with `match:` and `innerAccessPolicy:`), found \"just-text\"",
            ]
        );
    }

    #[test]
    fn too_many_tags_are_refused() {
        let tags: Vec<String> = (0..21).map(|i| format!("k{i}: v")).collect();
        let (s, e) = check(&format!(
            "selectors:\n  - region: cn-a\n    match: {{tags: {{{}}}}}\n    innerAccessPolicy: Drop\n",
            tags.join(", ")
        ));
        assert!(s.is_empty());
        assert!(e[0].contains("at most 20 tags"), "{e:?}");
    }
}
