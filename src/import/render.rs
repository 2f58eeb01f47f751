//! The pure half of `sgpolicy import`: the groups read from the cloud ([`Estate`]) into schema-v1
//! policy files, one per (account, region, VPC). No I/O, no clock: the same estate always renders to
//! the same bytes (files by name, entries by id, nothing dated), which is what makes a second import
//! into an empty folder byte-identical.
//!
//! ```yaml
//! # yaml-language-server: $schema=https://sgpolicy.invalid/schema/policy-v1.json
//! # Imported by `sgpolicy import` from cn-hangzhou, VPC vpc-bp1aaa: 2 groups as they were.
//! region: cn-hangzhou
//! groups:
//!   # web-1 · env=prod, team=web
//!   - id: sg-bp1web0001
//!     innerAccessPolicy: Drop
//!     mode: observe
//! # Not imported (ECS refuses to change their policy):
//! #   sg-bp1ent00001 (ledger) · enterprise-level security groups have no modifiable InnerAccessPolicy
//! ```
//!
//! Names, tags and VPC ids come from the cloud and are shown only inside comments, with every line
//! break and control character replaced, so no name can add a line to a file. Values that are YAML
//! (ids, the role) are written plain only when plain is unambiguous, double-quoted otherwise.

use crate::model::{AccountRef, GroupKey, Mode, Policy};
use crate::policy::json_schema::SCHEMA_ID;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The longest name, tag or VPC id shown in a comment, in characters.
const MAX_COMMENT_FIELD: usize = 120;
/// What a group id may be in a policy file (as the loader checks it).
const MAX_ID_LEN: usize = 100;

/// What import found, ready to render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Estate {
    /// The role the groups were reached through (`--role-arn`), written as the files' `account:`.
    pub account: Option<AccountRef>,
    pub groups: Vec<Found>,
}

/// One group as listed and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub key: GroupKey,
    pub name: Option<String>,
    pub vpc_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub state: Adopted,
}

/// What the file says about a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// Declared with the policy it has now.
    Policy(Policy),
    /// Written as a comment: why it cannot be declared.
    Skipped(String),
    /// Listed, its policy not read yet: never rendered (`import::read` refuses an estate with one).
    Unread,
}

/// One rendered policy file: its name inside the output folder and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub text: String,
    /// Entries declared, and groups written as comments only.
    pub declared: usize,
    pub skipped: usize,
}

/// `cn-hangzhou.vpc-bp1aaa.yaml`, `2222222222222222.cn-hangzhou.vpc-bp1aaa.yaml` for a named
/// account, `cn-hangzhou.classic.yaml` for groups in no VPC. Every part is reduced to letters,
/// digits, `-` and `_`, so a name from the cloud can never leave the folder or hide a file.
pub fn file_name(account: &str, region: &str, vpc_id: Option<&str>) -> String {
    let vpc = vpc_id.filter(|v| !v.is_empty()).unwrap_or("classic");
    let mut parts = Vec::new();
    if !account.is_empty() {
        parts.push(file_part(account));
    }
    parts.push(file_part(region));
    parts.push(file_part(vpc));
    format!("{}.yaml", parts.join("."))
}

fn file_part(s: &str) -> String {
    let part: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if part.is_empty() {
        "_".to_string()
    } else {
        part
    }
}

/// Text from the cloud made safe for one comment line: control characters and Unicode line breaks
/// become spaces, and long text is cut with `…`.
pub fn comment_text(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_COMMENT_FIELD)
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    if s.chars().count() > MAX_COMMENT_FIELD {
        out.push('…');
    }
    out
}

/// Why a listed id cannot be written as an entry, if it cannot (the loader's own id rules).
pub fn id_problem(id: &str) -> Option<String> {
    let fine = !id.is_empty()
        && id.chars().count() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (!fine).then(|| {
        format!("its id is not one a policy file accepts (letters, digits, `-`, `_`, at most {MAX_ID_LEN})")
    })
}

/// `text` as a YAML scalar: plain for a word starting with a letter that YAML reads as that string,
/// double-quoted (JSON escapes, which YAML shares) otherwise.
fn scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !["true", "false", "null", "yes", "no", "on", "off", "y", "n"]
            .contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_string()
    } else {
        quoted(text)
    }
}

fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The comment above an entry: the group's name and its tags.
fn describe(g: &Found) -> String {
    let name = g
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(comment_text)
        .unwrap_or_else(|| "(no name)".to_string());
    if g.tags.is_empty() {
        format!("{name} · no tags")
    } else {
        let tags: Vec<String> = g
            .tags
            .iter()
            .map(|(k, v)| format!("{}={}", comment_text(k), comment_text(v)))
            .collect();
        format!("{name} · {}", tags.join(", "))
    }
}

/// Every file of the estate, by name; entries by id. `mode` `observe` marks every entry observe-only.
pub fn files(estate: &Estate, mode: Mode) -> Vec<File> {
    let mut by_file: BTreeMap<String, Vec<&Found>> = BTreeMap::new();
    for g in &estate.groups {
        let name = file_name(&g.key.account, &g.key.region, g.vpc_id.as_deref());
        by_file.entry(name).or_default().push(g);
    }
    by_file
        .into_iter()
        .map(|(name, mut groups)| {
            groups.sort_by(|a, b| a.key.cmp(&b.key));
            groups.dedup_by(|a, b| a.key == b.key);
            render_file(name, estate.account.as_ref(), &groups, mode)
        })
        .collect()
}

fn render_file(name: String, account: Option<&AccountRef>, groups: &[&Found], mode: Mode) -> File {
    let region = groups
        .first()
        .map(|g| g.key.region.to_string())
        .unwrap_or_default();
    let (declared, skipped): (Vec<&Found>, Vec<&Found>) = groups
        .iter()
        .filter(|g| g.state != Adopted::Unread)
        .partition(|g| matches!(g.state, Adopted::Policy(_)));
    let mut t = String::new();
    write_header(&mut t, &region, groups, mode, !declared.is_empty());
    if let Some(a) = account {
        t.push_str("account:\n");
        let _ = writeln!(t, "  roleArn: {}", quoted(&a.role_arn));
        if let Some(e) = &a.external_id {
            let _ = writeln!(t, "  externalId: {}", quoted(e));
        }
    }
    let _ = writeln!(t, "region: {}", scalar(&region));
    write_declared(&mut t, &declared, mode);
    write_skipped(&mut t, &skipped);
    File {
        name,
        text: t,
        declared: declared.len(),
        skipped: skipped.len(),
    }
}

/// The schema line and the comments saying where the file came from (and, in observe mode, how to
/// enforce it).
fn write_header(t: &mut String, region: &str, groups: &[&Found], mode: Mode, declares: bool) {
    let mut vpcs: Vec<&str> = groups.iter().filter_map(|g| g.vpc_id.as_deref()).collect();
    vpcs.sort_unstable();
    vpcs.dedup();
    let _ = writeln!(t, "# yaml-language-server: $schema={SCHEMA_ID}");
    let place = match vpcs.as_slice() {
        [] => format!("{} (no VPC)", comment_text(region)),
        vpcs => {
            let vpcs: Vec<String> = vpcs.iter().map(|v| comment_text(v)).collect();
            format!("{}, VPC {}", comment_text(region), vpcs.join(", "))
        }
    };
    let _ = writeln!(
        t,
        "# Imported by `sgpolicy import` from {place}: {} group(s) as they were.",
        groups.len()
    );
    if mode == Mode::Observe && declares {
        t.push_str(
            "# `mode: observe` entries are planned and reported, never written: review the plan, then\n# delete those lines to enforce.\n",
        );
    }
}

/// `groups:`, one entry per group read, its name and tags in a comment above it.
fn write_declared(t: &mut String, declared: &[&Found], mode: Mode) {
    if declared.is_empty() {
        t.push_str("groups: []\n");
    } else {
        t.push_str("groups:\n");
    }
    for g in declared {
        let Adopted::Policy(policy) = g.state else {
            continue;
        };
        let _ = writeln!(t, "  # {}", describe(g));
        let _ = writeln!(t, "  - id: {}", scalar(&g.key.id));
        let _ = writeln!(t, "    innerAccessPolicy: {policy}");
        if mode == Mode::Observe {
            t.push_str("    mode: observe\n");
        }
    }
}

/// The groups no policy file can govern, as comments with their reason.
fn write_skipped(t: &mut String, skipped: &[&Found]) {
    if skipped.is_empty() {
        return;
    }
    t.push_str("# Not imported (no policy file can govern them):\n");
    for g in skipped {
        let Adopted::Skipped(why) = &g.state else {
            continue;
        };
        let _ = writeln!(
            t,
            "#   {} · {} · {}",
            comment_text(&g.key.id),
            describe(g),
            comment_text(why)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(id: &str, vpc: Option<&str>, state: Adopted) -> Found {
        Found {
            key: GroupKey::new("cn-hangzhou", id),
            name: Some(format!("{id}-name")),
            vpc_id: vpc.map(str::to_string),
            tags: BTreeMap::new(),
            state,
        }
    }

    #[test]
    fn one_file_per_region_and_vpc_with_entries_by_id_and_a_comment_naming_each_group() {
        let mut web = found("sg-b", Some("vpc-1"), Adopted::Policy(Policy::Drop));
        web.tags = [("team", "web"), ("env", "prod")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let estate = Estate {
            account: None,
            groups: vec![
                web,
                found("sg-a", Some("vpc-1"), Adopted::Policy(Policy::Accept)),
                found("sg-c", Some("vpc-2"), Adopted::Policy(Policy::Drop)),
                found("sg-d", None, Adopted::Policy(Policy::Drop)),
            ],
        };
        let files = files(&estate, Mode::Enforce);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cn-hangzhou.classic.yaml",
                "cn-hangzhou.vpc-1.yaml",
                "cn-hangzhou.vpc-2.yaml"
            ]
        );
        assert_eq!(
            files[1].text,
            "# yaml-language-server: $schema=https://sgpolicy.invalid/schema/policy-v1.json\n\
             # Imported by `sgpolicy import` from cn-hangzhou, VPC vpc-1: 2 group(s) as they were.\n\
             region: cn-hangzhou\n\
             groups:\n\
             \x20 # sg-a-name · no tags\n\
             \x20 - id: sg-a\n\
             \x20   innerAccessPolicy: Accept\n\
             \x20 # sg-b-name · env=prod, team=web\n\
             \x20 - id: sg-b\n\
             \x20   innerAccessPolicy: Drop\n"
        );
        assert!(files[0].text.contains("from cn-hangzhou (no VPC)"));
        assert_eq!((files[1].declared, files[1].skipped), (2, 0));
    }

    #[test]
    fn observe_mode_marks_every_entry_and_says_how_to_enforce() {
        let estate = Estate {
            account: None,
            groups: vec![
                found("sg-a", Some("vpc-1"), Adopted::Policy(Policy::Accept)),
                found("sg-b", Some("vpc-1"), Adopted::Policy(Policy::Drop)),
            ],
        };
        let text = &files(&estate, Mode::Observe)[0].text;
        assert_eq!(text.matches("    mode: observe\n").count(), 2, "{text}");
        assert!(text.contains("review the plan, then\n# delete those lines to enforce."));
    }

    #[test]
    fn unmanageable_groups_are_comments_with_their_reason_and_a_file_of_only_those_declares_none() {
        let estate = Estate {
            account: None,
            groups: vec![found(
                "sg-e",
                Some("vpc-1"),
                Adopted::Skipped(
                    "enterprise-level security groups have no modifiable InnerAccessPolicy".into(),
                ),
            )],
        };
        let f = &files(&estate, Mode::Observe)[0];
        assert!(f.text.contains("groups: []\n"), "{}", f.text);
        assert!(
            f.text.ends_with(
                "# Not imported (no policy file can govern them):\n\
                 #   sg-e · sg-e-name · no tags · enterprise-level security groups have no modifiable InnerAccessPolicy\n"
            ),
            "{}",
            f.text
        );
        assert!(!f.text.contains("mode: observe"), "nothing to observe");
        assert_eq!((f.declared, f.skipped), (0, 1));
    }

    #[test]
    fn a_named_account_prefixes_the_file_name_and_is_written_as_the_files_account() {
        let role = AccountRef::new(
            "acs:ram::2222222222222222:role/sgpolicy",
            Some("ext \"quoted\""),
        )
        .expect("arn");
        let mut g = found("sg-a", Some("vpc-1"), Adopted::Policy(Policy::Drop));
        g.key = GroupKey::in_account("2222222222222222", "cn-hangzhou", "sg-a");
        let estate = Estate {
            account: Some(role),
            groups: vec![g],
        };
        let f = &files(&estate, Mode::Enforce)[0];
        assert_eq!(f.name, "2222222222222222.cn-hangzhou.vpc-1.yaml");
        assert!(
            f.text.contains(
                "account:\n  roleArn: \"acs:ram::2222222222222222:role/sgpolicy\"\n  externalId: \"ext \\\"quoted\\\"\"\nregion: cn-hangzhou\n"
            ),
            "{}",
            f.text
        );
    }

    #[test]
    fn names_and_tags_from_the_cloud_cannot_add_lines_or_leave_the_folder() {
        let mut g = found("sg-a", Some("../../etc/x\n"), Adopted::Policy(Policy::Drop));
        g.name = Some("evil\ngroups:\r\n  - id: sg-x\u{2028}".into());
        g.tags = [("k\n".to_string(), "v\u{85}".to_string())].into();
        let f = &files(
            &Estate {
                account: None,
                groups: vec![g],
            },
            Mode::Enforce,
        )[0];
        assert_eq!(f.name, "cn-hangzhou.______etc_x_.yaml");
        let comment: Vec<&str> = f.text.lines().filter(|l| l.contains("evil")).collect();
        assert_eq!(
            comment,
            ["  # evil groups:    - id: sg-x  · k =v "],
            "{}",
            f.text
        );
        assert_eq!(f.text.lines().count(), 7, "{}", f.text);
    }

    #[test]
    fn rendering_is_deterministic_whatever_order_the_groups_arrive_in() {
        let groups: Vec<Found> = (0..20)
            .map(|i| {
                found(
                    &format!("sg-{i:02}"),
                    Some("vpc-1"),
                    Adopted::Policy(Policy::Drop),
                )
            })
            .collect();
        let mut reversed = groups.clone();
        reversed.reverse();
        let a = files(
            &Estate {
                account: None,
                groups,
            },
            Mode::Observe,
        );
        let b = files(
            &Estate {
                account: None,
                groups: reversed,
            },
            Mode::Observe,
        );
        assert_eq!(a, b);
    }

    #[test]
    fn ids_that_yaml_would_misread_are_quoted_and_ids_the_loader_refuses_are_named() {
        assert_eq!(scalar("sg-bp1a"), "sg-bp1a");
        assert_eq!(scalar("123"), "\"123\"");
        assert_eq!(scalar("null"), "\"null\"");
        assert_eq!(scalar("y"), "\"y\"");
        assert!(id_problem("sg-ok_1").is_none());
        assert!(id_problem("sg bad").is_some());
        assert!(id_problem("").is_some());
        assert!(id_problem(&"a".repeat(101)).is_some());
    }
}
