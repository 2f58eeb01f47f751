//! Schema v1: turns one file's spanned YAML tree into declared groups, collecting every problem.
//!
//! ```yaml
//! region: cn-hangzhou          # optional default region for this file
//! account:                     # optional: the account this file governs (default: the chain's own)
//!   roleArn: acs:ram::1234567890123456:role/sgpolicy
//!   externalId: my-external-id # optional, passed to STS AssumeRole
//! groups:
//!   - id: sg-bp67acfmxazb4ph0001
//!     region: cn-shanghai      # optional, overrides the file default
//!     innerAccessPolicy: Drop  # Accept | Drop, any letter case
//!     mode: observe            # optional: enforce (default) | observe
//! selectors: []                # optional, see `selector`
//! ```
//! The field tables below are also what `json_schema` builds the published JSON Schema from.
//! Unknown fields are errors (with a "did you mean" hint). A file that declares nothing must say so with
//! `groups: []`: an empty file, one holding only comments or `~`, `groups:` with no value, and a file
//! with neither `groups:` nor `selectors:` are errors, because that is what a file truncated by a bad
//! merge looks like, and reading it as "no policy" would silently stop governing its groups. Unquoted numbers or booleans used as ids or regions are taken
//! as their text (`id: 12345` is the id "12345"). Errors point at the key for unknown or duplicate fields,
//! at the value for bad values and at the entry's start for missing fields.

use super::selector::{self, Selector};
use super::yaml::{clip, Node, Pos, Value};
use super::{DesiredGroup, LoadError};
use crate::model::{AccountRef, GroupKey, Location, Mode, Policy, SharedStr};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

pub(crate) const TOP_FIELDS: &[&str] = &["region", "account", "groups", "selectors"];
pub(crate) const ACCOUNT_FIELDS: &[&str] = &["roleArn", "externalId"];
pub(crate) const ENTRY_FIELDS: &[&str] = &["id", "region", "innerAccessPolicy", "mode"];
pub(crate) const MAX_ID_LEN: usize = 100;
pub(crate) const MAX_REGION_LEN: usize = 64;

/// An empty file is what a truncated file looks like, so it is an error, not "no policy".
const EMPTY_FILE: &str =
    "the file is empty (or holds only comments); a file that declares no groups says `groups: []`";
const NO_DECLARATIONS: &str =
    "expected `groups:` (or `selectors:`) in the file; a file that declares no groups says `groups: []`";
const NULL_GROUPS: &str =
    "`groups:` has no value; write the list of groups, or `groups: []` for a file that declares none";

/// The region used when neither the entry nor the file names one (the `--region` flag).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fallback<'a> {
    None,
    Region(&'a str),
    /// The flag was given but is invalid; that was reported once, so entries needing it stay silent.
    Invalid,
}

/// Problems found in one file, each already located.
pub(super) struct Report<'a> {
    pub(super) path: &'a Path,
    pub(super) errors: Vec<LoadError>,
}

impl Report<'_> {
    pub(super) fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(LoadError {
            location: location(self.path, pos),
            message: message.into(),
        });
    }
}

pub(crate) fn location(path: &Path, pos: Pos) -> Location {
    Location {
        path: path.into(),
        line: pos.line,
        column: pos.column,
    }
}

/// What one file declares. Valid entries are kept even when others fail, so that conflicts between
/// files are still found in the same run.
#[derive(Default)]
pub(crate) struct FileDecls {
    pub groups: Vec<DesiredGroup>,
    pub selectors: Vec<Selector>,
    /// The file's `account:` and where it was written, when present and valid.
    pub account: Option<(AccountRef, Location)>,
    pub errors: Vec<LoadError>,
}

/// Validates one file's tree.
pub(crate) fn groups_of_file(
    root: Option<&Node>,
    path: &Path,
    fallback: Fallback<'_>,
) -> FileDecls {
    let (groups, selectors, account, errors) = declarations(root, path, fallback);
    let mut out = FileDecls {
        groups,
        selectors,
        account: None,
        errors,
    };
    match account {
        None => {}
        // Reported already; the entries cannot be keyed, and must not pose as the chain's account.
        Some(None) => {
            out.groups.clear();
            out.selectors.clear();
        }
        Some(Some((account, at))) => {
            let id = account.account_id().unwrap_or_default().to_string();
            for s in &mut out.selectors {
                s.account.clone_from(&id);
            }
            out.account = Some((account, at));
        }
    }
    share_strings(&mut out);
    out
}

/// Every group of the file gets the same copy of its account, of each region name and of the file's
/// path: keys and locations are cloned into every stage of a pass, and a clone of a shared string
/// allocates nothing (at 100,000 groups, separate copies were about 10 MB).
fn share_strings(out: &mut FileDecls) {
    let account: SharedStr = match &out.account {
        Some((a, _)) => a.account_id().unwrap_or_default().into(),
        None => "".into(),
    };
    let mut regions: HashSet<SharedStr> = HashSet::new();
    let mut path: Option<Arc<Path>> = None;
    for g in &mut out.groups {
        g.key.account = account.clone();
        match regions.get(&*g.key.region) {
            Some(r) => g.key.region = r.clone(),
            None => {
                regions.insert(g.key.region.clone());
            }
        }
        match &path {
            Some(p) if *p == g.source.path => g.source.path = p.clone(),
            _ => path = Some(g.source.path.clone()),
        }
    }
}

type Declarations = (
    Vec<DesiredGroup>,
    Vec<Selector>,
    Option<Option<(AccountRef, Location)>>,
    Vec<LoadError>,
);

fn declarations(root: Option<&Node>, path: &Path, fallback: Fallback<'_>) -> Declarations {
    let mut report = Report {
        path,
        errors: Vec::new(),
    };
    let Some(fields) = top_fields(root, &mut report) else {
        return (Vec::new(), Vec::new(), None, report.errors);
    };

    // None: no file region; Some(None): given but invalid (already reported).
    let mut file_region: Option<Option<String>> = None;
    let mut group_list: Option<&Node> = None;
    let mut selector_list: Option<&Node> = None;
    let mut account = None;
    let mut groups_key = Pos::START;
    for (name, value) in known_fields(fields, TOP_FIELDS, "at the top of the file", &mut report) {
        match name {
            "region" => file_region = Some(region_value(value, &mut report)),
            "account" => account = Some(account_value(value, &mut report)),
            "selectors" => selector_list = Some(value),
            _ => {
                groups_key = key_pos(fields, name);
                group_list = Some(value);
            }
        }
    }
    let region = match &file_region {
        Some(Some(r)) => Fallback::Region(r.as_str()),
        Some(None) => Fallback::Invalid,
        None => fallback,
    };

    let selectors = match selector_list {
        Some(list) => selector::selectors_of(list, region, &mut report),
        None => Vec::new(),
    };
    let Some(list) = group_list else {
        // A file whose fields were all wrong has said so already.
        if selector_list.is_none() && report.errors.is_empty() {
            let at = fields.first().map_or(Pos::START, |(k, _)| k.pos);
            report.err(at, NO_DECLARATIONS);
        }
        return (Vec::new(), selectors, account, report.errors);
    };
    let groups = groups_of(list, groups_key, region, &mut report);
    (groups, selectors, account, report.errors)
}

/// The top-level mapping's fields; an empty file or another kind of node is an error.
fn top_fields<'n>(root: Option<&'n Node>, report: &mut Report) -> Option<&'n [(Node, Node)]> {
    match root {
        None => {
            report.err(Pos::START, EMPTY_FILE);
            None
        }
        Some(n) if n.is_null() => {
            report.err(n.pos, EMPTY_FILE);
            None
        }
        Some(Node {
            value: Value::Map(fields),
            ..
        }) => Some(fields),
        Some(other) => {
            report.err(
                other.pos,
                format!(
                    "expected a mapping with `groups:` (and optionally `region:`) at the top of the file, found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

/// The entries under `groups:` (`groups_key` is where that key is, for a null list).
fn groups_of(
    list: &Node,
    groups_key: Pos,
    region: Fallback<'_>,
    report: &mut Report,
) -> Vec<DesiredGroup> {
    let mut groups = Vec::new();
    match &list.value {
        _ if list.is_null() => report.err(groups_key, NULL_GROUPS),
        Value::Seq(items) => {
            for item in items {
                if let Some(g) = entry(item, region, report) {
                    groups.push(g);
                }
            }
        }
        _ => report.err(
            list.pos,
            format!(
                "expected a list of groups under `groups:`, found {}",
                list.kind()
            ),
        ),
    }
    groups
}

/// Where the key `name` is written among `fields`.
fn key_pos(fields: &[(Node, Node)], name: &str) -> Pos {
    fields
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map_or(Pos::START, |(k, _)| k.pos)
}

/// `account: {roleArn, externalId}`; `None` when invalid (reported).
fn account_value(node: &Node, report: &mut Report<'_>) -> Option<(AccountRef, Location)> {
    let fields = mapping(
        node,
        "`account:` to be a mapping with `roleArn:` (and optionally `externalId:`)",
        report,
    )?;
    let (mut role, mut external) = (None, Some(None));
    for (name, value) in known_fields(fields, ACCOUNT_FIELDS, "in `account:`", report) {
        match name {
            "roleArn" => role = Some((string_value(value, "roleArn", report), value.pos)),
            _ => external = string_value(value, "externalId", report).map(Some),
        }
    }
    let Some((role, pos)) = role else {
        report.err(
            node.pos,
            "`account:` has no `roleArn` (like acs:ram::1234567890123456:role/sgpolicy)",
        );
        return None;
    };
    match AccountRef::new(role?, external?) {
        Ok(account) => Some((account, location(report.path, pos))),
        Err(problem) => {
            report.err(pos, problem.to_string());
            None
        }
    }
}

fn entry(node: &Node, fallback: Fallback<'_>, report: &mut Report<'_>) -> Option<DesiredGroup> {
    let fields = mapping(
        node,
        "a group (a mapping with `id:` and `innerAccessPolicy:`)",
        report,
    )?;
    // Each field: None = absent, Some(None) = present but invalid (reported), Some(Some(v)) = valid.
    let (mut id, mut region, mut policy, mut mode) = (None, None, None, Some(Mode::Enforce));
    for (name, value) in known_fields(fields, ENTRY_FIELDS, "in a group entry", report) {
        match name {
            "id" => id = Some(id_value(value, report)),
            "region" => region = Some(region_value(value, report)),
            "mode" => mode = mode_value(value, report),
            _ => policy = Some(policy_value(value, report)),
        }
    }
    let id = match id {
        Some(id) => id,
        None => {
            report.err(node.pos, "group entry has no `id`");
            None
        }
    };
    let shown = id.as_deref().unwrap_or("this group");
    let policy = match policy {
        Some(p) => p,
        None => {
            report.err(
                node.pos,
                format!("`{shown}` has no `innerAccessPolicy` (Accept or Drop)"),
            );
            None
        }
    };
    let region = fallback.region(
        region,
        node.pos,
        format!("`{shown}` has no region: add `region:` to the entry or to the top of the file, or pass --region"),
        report,
    );
    Some(DesiredGroup {
        key: GroupKey::new(region?, id?),
        policy: policy?,
        source: location(report.path, node.pos),
        mode: mode?,
    })
}

/// The fields of a mapping node, or `None` after reporting "expected {expected}, found …".
pub(super) fn mapping<'n>(
    node: &'n Node,
    expected: &str,
    report: &mut Report<'_>,
) -> Option<&'n [(Node, Node)]> {
    match &node.value {
        Value::Map(fields) => Some(fields),
        _ => {
            report.err(
                node.pos,
                format!("expected {expected}, found {}", node.kind()),
            );
            None
        }
    }
}

impl Fallback<'_> {
    /// The region an entry ends up with: its own, else this fallback. Without either, reports
    /// `missing` at `pos`. `None` when invalid (already reported) or missing.
    pub(super) fn region(
        self,
        own: Option<Option<String>>,
        pos: Pos,
        missing: String,
        report: &mut Report<'_>,
    ) -> Option<String> {
        match (own, self) {
            (Some(r), _) => r,
            (None, Fallback::Region(r)) => Some(r.to_string()),
            (None, Fallback::Invalid) => None,
            (None, Fallback::None) => {
                report.err(pos, missing);
                None
            }
        }
    }
}

/// The known fields of a mapping, in order; reports unknown, duplicate and non-string keys.
pub(super) fn known_fields<'n>(
    fields: &'n [(Node, Node)],
    known: &[&'static str],
    place: &str,
    report: &mut Report<'_>,
) -> Vec<(&'static str, &'n Node)> {
    let mut out: Vec<(&'static str, &'n Node, Pos)> = Vec::new();
    for (key, value) in fields {
        let Some(name) = key.as_str() else {
            report.err(
                key.pos,
                format!("expected a field name {place}, found {}", key.kind()),
            );
            continue;
        };
        let Some(known_name) = known.iter().copied().find(|k| *k == name) else {
            let expected = known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let shown = clip(name).escape_debug().to_string();
            let message = match suggest(name, known) {
                Some(hint) => format!("unknown field `{shown}` {place}, did you mean `{hint}`?"),
                None => format!("unknown field `{shown}` {place}; expected one of {expected}"),
            };
            report.err(key.pos, message);
            continue;
        };
        if let Some((_, _, first)) = out.iter().find(|(k, _, _)| *k == known_name) {
            let first = *first;
            report.err(
                key.pos,
                format!(
                    "duplicate field `{known_name}` {place} (first set at line {}, column {})",
                    first.line, first.column
                ),
            );
            continue;
        }
        out.push((known_name, value, key.pos));
    }
    out.into_iter().map(|(k, v, _)| (k, v)).collect()
}

/// A near-miss suggestion for an unknown field name, if one is close enough to be a typo.
pub(crate) fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-' && *c != ' ')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let u = norm(unknown);
    if u.is_empty() {
        return None;
    }
    let mut best: Option<(usize, &'static str)> = None;
    for k in known.iter().copied() {
        let kn = norm(k);
        let distance = strsim::levenshtein(&u, &kn);
        let allowed = (kn.chars().count() / 3).clamp(1, 3);
        let close = distance <= allowed
            || strsim::jaro_winkler(&u, &kn) >= 0.92
            || (u.chars().count() >= 4 && kn.contains(&u))
            || (kn.chars().count() >= 4 && u.contains(&kn));
        let better = match best {
            None => true,
            Some((d, _)) => distance < d,
        };
        if close && better {
            best = Some((distance, k));
        }
    }
    best.map(|(_, k)| k)
}

pub(super) fn string_value<'n>(
    node: &'n Node,
    what: &str,
    report: &mut Report<'_>,
) -> Option<&'n str> {
    match node.as_str() {
        Some(s) => Some(s),
        None => {
            report.err(
                node.pos,
                format!("expected a string for `{what}`, found {}", node.kind()),
            );
            None
        }
    }
}

fn id_value(node: &Node, report: &mut Report<'_>) -> Option<String> {
    let id = string_value(node, "id", report)?;
    let problem = if id.is_empty() {
        Some("a group id must not be empty".to_string())
    } else if id.chars().count() > MAX_ID_LEN {
        Some(format!("group id is longer than {MAX_ID_LEN} characters"))
    } else if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some(format!(
            "group id {:?} may contain only letters, digits, `-` and `_`",
            clip(id)
        ))
    } else {
        None
    };
    match problem {
        Some(message) => {
            report.err(node.pos, message);
            None
        }
        None => Some(id.to_string()),
    }
}

/// Checks a region name (`[a-z0-9-]+`); `None` when valid, else the problem.
pub(crate) fn region_problem(region: &str) -> Option<String> {
    if region.is_empty() {
        Some("a region must not be empty".to_string())
    } else if region.len() > MAX_REGION_LEN {
        Some(format!("region is longer than {MAX_REGION_LEN} characters"))
    } else if !region
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        Some(format!(
            "region {:?} may contain only lowercase letters, digits and `-` (like cn-hangzhou)",
            clip(region)
        ))
    } else {
        None
    }
}

pub(super) fn region_value(node: &Node, report: &mut Report<'_>) -> Option<String> {
    let region = string_value(node, "region", report)?;
    match region_problem(region) {
        Some(message) => {
            report.err(node.pos, message);
            None
        }
        None => Some(region.to_string()),
    }
}

pub(super) fn mode_value(node: &Node, report: &mut Report<'_>) -> Option<Mode> {
    let parsed = node.as_str().and_then(Mode::parse);
    if parsed.is_none() {
        report.err(
            node.pos,
            format!(
                "expected enforce or observe for `mode`, found {}",
                node.kind()
            ),
        );
    }
    parsed
}

pub(super) fn policy_value(node: &Node, report: &mut Report<'_>) -> Option<Policy> {
    let parsed = node.as_str().and_then(Policy::parse);
    if parsed.is_none() {
        report.err(
            node.pos,
            format!("expected Accept or Drop, found {}", node.kind()),
        );
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::yaml::parse;

    fn check(text: &str, fallback: Fallback<'_>) -> (Vec<DesiredGroup>, Vec<String>) {
        let root = parse(text).expect("syntax ok");
        let d = groups_of_file(root.as_ref(), Path::new("f.yaml"), fallback);
        (d.groups, d.errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_files_groups_share_one_copy_of_account_region_and_path() {
        let text = concat!(
            "account: {roleArn: \"acs:ram::2222222222222222:role/sgpolicy\"}\n",
            "region: cn-hangzhou\n",
            "groups:\n",
            "  - {id: sg-1, innerAccessPolicy: Drop}\n",
            "  - {id: sg-2, innerAccessPolicy: Drop}\n",
            "  - {id: sg-3, region: cn-beijing, innerAccessPolicy: Drop}\n",
            "  - {id: sg-4, region: cn-beijing, innerAccessPolicy: Drop}\n",
        );
        let root = parse(text).expect("syntax ok");
        let d = groups_of_file(root.as_ref(), Path::new("f.yaml"), Fallback::None);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let g = &d.groups;
        let same = |a: &str, b: &str| std::ptr::eq(a, b);
        assert_eq!(g[0].key.region, "cn-hangzhou");
        assert!(same(&g[0].key.region, &g[1].key.region));
        assert_eq!(g[2].key.region, "cn-beijing");
        assert!(same(&g[2].key.region, &g[3].key.region));
        assert!(g.iter().all(|x| x.key.account == "2222222222222222"));
        assert!(g.iter().all(|x| same(&x.key.account, &g[0].key.account)));
        assert!(g
            .iter()
            .all(|x| std::ptr::eq(&*x.source.path, &*g[0].source.path)));
        assert_eq!(&*g[0].source.path, Path::new("f.yaml"));
        // Values are untouched: the same keys as separately built ones.
        assert_eq!(
            g[3].key,
            GroupKey::in_account("2222222222222222", "cn-beijing", "sg-4")
        );
    }

    #[test]
    fn account_keys_every_group_and_selector_of_the_file() {
        let text =
            "account:\n  roleArn: acs:ram::2222222222222222:role/sgpolicy\n  externalId: x1\n\
                    region: cn-hangzhou\ngroups:\n  - id: sg-1\n    innerAccessPolicy: Drop\n\
                    selectors:\n  - match: {tags: {env: prod}}\n    innerAccessPolicy: Drop\n";
        let root = parse(text).expect("syntax ok");
        let d = groups_of_file(root.as_ref(), Path::new("f.yaml"), Fallback::None);
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(
            d.groups[0].key,
            GroupKey::in_account("2222222222222222", "cn-hangzhou", "sg-1")
        );
        assert_eq!(d.selectors[0].account, "2222222222222222");
        let (account, at) = d.account.expect("account");
        assert_eq!(account.role_arn, "acs:ram::2222222222222222:role/sgpolicy");
        assert_eq!(account.external_id.as_deref(), Some("x1"));
        assert_eq!((at.line, at.column), (2, 12), "points at the roleArn value");
    }

    #[test]
    fn a_file_without_account_uses_the_chains_own() {
        let (groups, errors) = check(
            "groups:\n  - {id: sg-1, region: r, innerAccessPolicy: Drop}\n",
            Fallback::None,
        );
        assert!(errors.is_empty());
        assert_eq!(groups[0].key.account, "");
    }

    #[test]
    fn bad_accounts_are_located_and_their_groups_dropped() {
        let cases = [
            (
                "account: acs:ram::1:role/x\n",
                "f.yaml:1:10: expected `account:` to be a mapping with `roleArn:` (and optionally `externalId:`), found \"acs:ram::1:role/x\"",
            ),
            (
                "account:\n  externalId: x\n",
                "f.yaml:2:3: `account:` has no `roleArn` (like acs:ram::1234567890123456:role/sgpolicy)",
            ),
            (
                "account:\n  roleArn: acs:ram::12ab:role/x\n",
                "f.yaml:2:12: roleArn \"acs:ram::12ab:role/x\" is not acs:ram::<account id>:role/<role name>",
            ),
            (
                "account:\n  rolearn: acs:ram::1:role/x\n",
                "f.yaml:2:3: unknown field `rolearn` in `account:`, did you mean `roleArn`?",
            ),
            (
                "account:\n  roleArn: acs:ram::1:role/x\n  externalId: [a]\n",
                "f.yaml:3:15: expected a string for `externalId`, found a list",
            ),
        ];
        for (head, expected) in cases {
            let text =
                format!("{head}groups:\n  - {{id: sg-1, region: r, innerAccessPolicy: Drop}}\n");
            let (groups, errors) = check(&text, Fallback::None);
            assert!(errors.iter().any(|e| e == expected), "{head}: {errors:?}");
            assert!(
                groups.is_empty(),
                "{head}: a group of an unknown account is not the chain's"
            );
        }
    }

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        assert_eq!(
            suggest("innerAcessPolicy", ENTRY_FIELDS),
            Some("innerAccessPolicy")
        );
        assert_eq!(
            suggest("InnerAccessPolicy", ENTRY_FIELDS),
            Some("innerAccessPolicy")
        );
        assert_eq!(
            suggest("inner_access_policy", ENTRY_FIELDS),
            Some("innerAccessPolicy")
        );
        assert_eq!(suggest("policy", ENTRY_FIELDS), Some("innerAccessPolicy"));
        assert_eq!(suggest("regoin", ENTRY_FIELDS), Some("region"));
        assert_eq!(suggest("group", TOP_FIELDS), Some("groups"));
        assert_eq!(suggest("Id", ENTRY_FIELDS), Some("id"));
        assert_eq!(suggest("description", ENTRY_FIELDS), None);
        assert_eq!(suggest("name", ENTRY_FIELDS), None);
        assert_eq!(suggest("", ENTRY_FIELDS), None);
    }

    #[test]
    fn user_text_in_messages_is_escaped_and_clipped() {
        let key = format!("\"x\\n{}\": 1\n", "y".repeat(100));
        let (_, e) = check(&key, Fallback::None);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains(&format!("`x\\n{}...`", "y".repeat(38))),
            "{e:?}"
        );
        assert!(!e[0].contains('\n'), "{e:?}");
    }

    #[test]
    fn wrong_types_are_named() {
        let (g, e) = check("groups: {id: x}\n", Fallback::Region("r"));
        assert!(g.is_empty());
        assert_eq!(
            e,
            ["f.yaml:1:9: expected a list of groups under `groups:`, found a mapping"]
        );
        let (_, e) = check("- a\n", Fallback::None);
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("f.yaml:1:1: expected a mapping with `groups:`"),
            "{e:?}"
        );
        let (_, e) = check(
            "region: [a]\ngroups:\n  - id: [x]\n    innerAccessPolicy: {a: b}\n  - just-a-string\n",
            Fallback::None,
        );
        assert_eq!(
            e,
            [
                "f.yaml:1:9: expected a string for `region`, found a list",
                "f.yaml:3:9: expected a string for `id`, found a list",
                "f.yaml:4:24: expected Accept or Drop, found a mapping",
                "f.yaml:5:5: expected a group (a mapping with `id:` and `innerAccessPolicy:`), found \"just-a-string\"",
            ]
        );
    }

    #[test]
    fn ids_and_regions_are_checked() {
        let text = "groups:\n- {id: \"\", innerAccessPolicy: Drop}\n- {id: sg x, innerAccessPolicy: Drop}\n- {id: 12345, innerAccessPolicy: Drop}\n- {id: ok_1-a, region: CN_X, innerAccessPolicy: Drop}\n- {id: ok2, region: \"\", innerAccessPolicy: Drop}\n";
        let (g, e) = check(text, Fallback::Region("cn-hangzhou"));
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!(g[0].key, GroupKey::new("cn-hangzhou", "12345"));
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("f.yaml:2:8: a group id must not be empty"),
            "{e:?}"
        );
        assert!(e[1].contains("may contain only letters"), "{e:?}");
        assert!(e[2].starts_with("f.yaml:5:24: region \"CN_X\""), "{e:?}");
        assert!(e[3].contains("region must not be empty"), "{e:?}");
        let long = format!(
            "groups: [{{id: {}, innerAccessPolicy: Drop}}]",
            "a".repeat(101)
        );
        let (_, e) = check(&long, Fallback::Region("r"));
        assert!(e[0].contains("longer than 100"), "{e:?}");
    }

    #[test]
    fn missing_fields_point_at_the_entry_and_duplicates_at_the_second_key() {
        let text = "groups:\n  - region: cn-a\n  - id: a\n    id: b\n    innerAccessPolicy: Drop\n    region: cn-a\n";
        let (g, e) = check(text, Fallback::None);
        assert_eq!(
            e,
            [
                "f.yaml:2:5: group entry has no `id`",
                "f.yaml:2:5: `this group` has no `innerAccessPolicy` (Accept or Drop)",
                "f.yaml:4:5: duplicate field `id` in a group entry (first set at line 3, column 5)",
            ]
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].key, GroupKey::new("cn-a", "a"));
        assert_eq!(g[0].source.line, 3);
    }

    #[test]
    fn an_invalid_fallback_region_is_not_reported_again_per_entry() {
        let (g, e) = check(
            "groups: [{id: a, innerAccessPolicy: Drop}]",
            Fallback::Invalid,
        );
        assert!(g.is_empty());
        assert!(e.is_empty(), "{e:?}");
        let (g, e) = check(
            "region: BAD\ngroups: [{id: a, innerAccessPolicy: Drop}]",
            Fallback::Region("cn-x"),
        );
        assert!(
            g.is_empty(),
            "an invalid file region must not fall back to --region"
        );
        assert_eq!(e.len(), 1, "{e:?}");
    }

    #[test]
    fn a_file_that_declares_nothing_is_an_error_unless_it_says_groups_empty() {
        let only_error = |text: &str| {
            let (g, e) = check(text, Fallback::None);
            assert!(g.is_empty());
            assert_eq!(e.len(), 1, "{text:?}: {e:?}");
            e[0].clone()
        };
        assert!(only_error("").starts_with("f.yaml:1:1: the file is empty"));
        assert!(only_error("# all gone\n\n").starts_with("f.yaml:1:1: the file is empty"));
        assert!(only_error("~\n").contains("groups: []"));
        assert!(only_error("region: cn-a\n").starts_with("f.yaml:1:1: expected `groups:`"));
        assert!(
            only_error("region: cn-a\ngroups:\n").starts_with("f.yaml:2:1: `groups:` has no value")
        );
        assert_eq!(check("groups: []\n", Fallback::None), (vec![], vec![]));
        assert_eq!(
            check("# nothing yet\ngroups: []\n", Fallback::None),
            (vec![], vec![])
        );
        assert_eq!(check("selectors: []\n", Fallback::None), (vec![], vec![]));
    }
}
