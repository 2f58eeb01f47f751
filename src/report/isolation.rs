//! The isolation check in every output (`--check-isolation`): each group entry's `isolation` object
//! in JSON, `summary.notIsolated` and `summary.isolationUnknown`, and a section in text and Markdown
//! that names each group not proven isolated, its file:line, and each path in one sentence:
//! "members reach each other on tcp 22/22 through rule sgr-… of sg-… (source: the group itself)".
//!
//! Every id, address and reason here came from the cloud, so the text forms escape them
//! (`crate::escape`); JSON needs no escaping beyond serde's.

use crate::escape;
use crate::isolation::{Path, PathKind, Status, Verdict};
use crate::reconcile::{GroupResult, PassReport};
use serde_json::{json, Value};
use std::fmt::Write;

/// The verdict of one group, if the check ran and covered it.
pub fn verdict<'a>(report: &'a PassReport, r: &GroupResult) -> Option<&'a Verdict> {
    report.isolation.as_ref()?.get(&r.entry.key)
}

/// A group entry's `isolation`: `null` where not checked.
pub fn json(v: Option<&Verdict>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => json!({
            "status": v.status,
            "members": v.members,
            "paths": v.paths,
            "unknown": v.unknown,
        }),
    }
}

/// Groups checked with each status: (not isolated, unknown); `None` when the check did not run.
pub fn counts(report: &PassReport) -> Option<(usize, usize)> {
    let checked = report.isolation.as_ref()?;
    let count = |s: Status| checked.values().filter(|v| v.status == s).count();
    Some((count(Status::NotIsolated), count(Status::Unknown)))
}

/// How many groups declared `Drop` are not proven isolated (not isolated or unknown): what
/// `--require-isolation` turns into exit status 1.
pub fn unproven(report: &PassReport) -> usize {
    counts(report).map_or(0, |(n, u)| n + u)
}

/// The summary line's addition: ", 1 not isolated, 2 isolation unknown".
pub fn summary(report: &PassReport) -> String {
    match counts(report) {
        None => String::new(),
        Some((n, u)) => format!(", {n} not isolated, {u} isolation unknown"),
    }
}

/// One path as a sentence, its untrusted parts passed through `esc`.
fn sentence(p: &Path, checked: &str, esc: &dyn Fn(&str) -> String) -> String {
    match p.kind {
        PathKind::SharedGroup if p.group == checked => format!(
            "members reach each other on all traffic: the group's live policy is Accept (e.g. {} -> {})",
            esc(&p.from),
            esc(&p.to)
        ),
        PathKind::SharedGroup => format!(
            "members reach each other on all traffic through {}, a group they share whose policy is Accept (e.g. {} -> {})",
            esc(&p.group),
            esc(&p.from),
            esc(&p.to)
        ),
        PathKind::IngressRule => {
            let source = match p.source.as_deref() {
                Some(s) if s == checked => "the group itself".to_string(),
                Some(s) => esc(s),
                None => "unknown".to_string(),
            };
            format!(
                "members reach each other on {} {} through rule {} of {} (source: {source}; e.g. {} -> {})",
                esc(&p.protocol),
                esc(&p.ports),
                esc(p.rule_id.as_deref().unwrap_or("(no id)")),
                esc(&p.group),
                esc(&p.from),
                esc(&p.to)
            )
        }
    }
}

fn unknown_line(u: &crate::isolation::Unknown, esc: &dyn Fn(&str) -> String) -> String {
    let mut line = esc(&u.reason);
    match (&u.rule_id, &u.group) {
        (Some(rule), Some(g)) => {
            let _ = write!(line, " (rule {} of {})", esc(rule), esc(g));
        }
        (None, Some(g)) => {
            let _ = write!(line, " ({})", esc(g));
        }
        _ => {}
    }
    line
}

/// The groups not proven isolated, in key order, with their results.
fn unproven_groups(report: &PassReport) -> Vec<(&GroupResult, &Verdict)> {
    report
        .results
        .iter()
        .filter_map(|r| verdict(report, r).map(|v| (r, v)))
        .filter(|(_, v)| v.status != Status::Isolated)
        .collect()
}

/// The text section: nothing when the check did not run or every group is isolated.
pub fn text(report: &PassReport) -> String {
    let mut out = String::new();
    let esc = |s: &str| escape::text(s).into_owned();
    for (r, v) in unproven_groups(report) {
        let what = match v.status {
            Status::NotIsolated => "is NOT isolated",
            _ => "isolation is unknown",
        };
        let _ = writeln!(
            out,
            "{}: {} {what} ({} members, declared Drop)",
            escape::text(&r.entry.source.to_string()),
            escape::text(&r.entry.key.to_string()),
            v.members
        );
        for p in &v.paths {
            let _ = writeln!(out, "    {}", sentence(p, &r.entry.key.id, &esc));
        }
        for u in &v.unknown {
            let _ = writeln!(out, "    unknown: {}", unknown_line(u, &esc));
        }
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// The Markdown section ("**Isolation**"), within `limit` bytes of `out`.
pub fn markdown(out: &mut String, report: &PassReport, limit: usize) {
    let Some((n, u)) = counts(report) else { return };
    let checked = report.isolation.as_ref().map_or(0, |c| c.len());
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "**Isolation**: {checked} group(s) declared Drop checked, {n} not isolated, {u} unknown\n"
    );
    if n > 0 {
        out.push_str("> [!CAUTION]\n> Members of a group declared `Drop` can reach each other: the policy alone does not isolate them.\n\n");
    }
    let esc = |s: &str| escape::markdown(s);
    let mut left = 0;
    for (r, v) in unproven_groups(report) {
        let what = match v.status {
            Status::NotIsolated => "**not isolated**",
            _ => "isolation **unknown**",
        };
        let mut block = format!(
            "- `{}` ({}) {what}, {} members, declared at `{}`\n",
            esc(&r.entry.key.id),
            esc(&r.entry.key.place()),
            v.members,
            esc(&r.entry.source.to_string())
        );
        for p in &v.paths {
            let _ = writeln!(block, "  - {}", sentence(p, &r.entry.key.id, &esc));
        }
        for u in &v.unknown {
            let _ = writeln!(block, "  - unknown: {}", unknown_line(u, &esc));
        }
        if out.len() + block.len() > limit {
            left += 1;
            continue;
        }
        out.push_str(&block);
    }
    if left > 0 {
        let _ = writeln!(
            out,
            "- … and {left} more group(s) not shown (see the JSON report)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isolation::Unknown;
    use crate::model::{GroupKey, Location, Mode, Policy};
    use crate::plan::{Action, PlanEntry};
    use crate::reconcile::{Outcome, PassReport};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn in_sync(id: &str, line: usize) -> GroupResult {
        GroupResult {
            entry: PlanEntry {
                key: GroupKey::new("cn-hangzhou", id),
                desired: Policy::Drop,
                observed: Some(Policy::Drop),
                source: Location {
                    path: std::path::Path::new("prod.yaml").into(),
                    line,
                    column: 5,
                },
                action: Action::InSync,
                mode: Mode::Enforce,
                name: None,
            },
            outcome: Outcome::InSync,
            token: None,
            request_id: None,
            changed_by: None,
        }
    }

    fn ssh_path(source: &str) -> Path {
        Path {
            kind: PathKind::IngressRule,
            group: "sg-web".into(),
            rule_id: Some("sgr-ssh".into()),
            protocol: "tcp".into(),
            ports: "22/22".into(),
            source: Some(source.into()),
            from: "eni-a".into(),
            to: "eni-b".into(),
        }
    }

    /// sg-web not isolated (a self-referencing SSH rule), sg-odd unknown, sg-quiet isolated, sg-accept
    /// not checked.
    fn checked_report() -> PassReport {
        let mut isolation = BTreeMap::new();
        isolation.insert(
            GroupKey::new("cn-hangzhou", "sg-web"),
            Verdict {
                status: Status::NotIsolated,
                members: 4,
                paths: vec![ssh_path("sg-web")],
                unknown: vec![],
                depends: Default::default(),
            },
        );
        isolation.insert(
            GroupKey::new("cn-hangzhou", "sg-odd"),
            Verdict {
                status: Status::Unknown,
                members: 2,
                paths: vec![],
                unknown: vec![Unknown {
                    reason: "prefix list pl-1 could not be read:\nmissing permission".into(),
                    group: Some("sg-odd".into()),
                    rule_id: Some("sgr-<b>".into()),
                }],
                depends: Default::default(),
            },
        );
        isolation.insert(
            GroupKey::new("cn-hangzhou", "sg-quiet"),
            Verdict {
                status: Status::Isolated,
                members: 3,
                paths: vec![],
                unknown: vec![],
                depends: Default::default(),
            },
        );
        PassReport {
            revision: "0123456789ab".into(),
            files: 1,
            dry_run: true,
            results: vec![
                in_sync("sg-accept", 2),
                in_sync("sg-odd", 3),
                in_sync("sg-quiet", 4),
                in_sync("sg-web", 5),
            ],
            fatal: None,
            api_calls: Default::default(),
            retries: 0,
            throttled: 0,
            duration: Duration::from_millis(5),
            notes: Vec::new(),
            coverage: None,
            unmanageable: Default::default(),
            pages: Default::default(),
            isolation: Some(isolation),
        }
    }

    #[test]
    fn every_group_entry_has_isolation_null_where_unchecked_and_the_issue_s_shape_where_checked() {
        let report = checked_report();
        let doc = crate::report::json(&report);
        let groups = doc["groups"].as_array().unwrap();
        assert_eq!(
            groups[0]["isolation"],
            Value::Null,
            "sg-accept was not checked"
        );
        assert_eq!(
            groups[3]["isolation"],
            json!({"status": "not-isolated", "members": 4, "unknown": [],
                   "paths": [{"kind": "ingress-rule", "group": "sg-web", "ruleId": "sgr-ssh",
                              "protocol": "tcp", "ports": "22/22", "source": "sg-web",
                              "from": "eni-a", "to": "eni-b"}]})
        );
        assert_eq!(groups[1]["isolation"]["unknown"][0]["ruleId"], "sgr-<b>");
        assert_eq!(doc["summary"]["notIsolated"], 1);
        assert_eq!(doc["summary"]["isolationUnknown"], 1);
        let mut streamed = Vec::new();
        crate::report::write_json(&report, &mut streamed).unwrap();
        assert_eq!(String::from_utf8(streamed).unwrap(), doc.to_string());
        let unchecked = PassReport {
            isolation: None,
            ..checked_report()
        };
        let doc = crate::report::json(&unchecked);
        assert!(doc["summary"].get("notIsolated").is_none());
        assert_eq!(doc["groups"][3]["isolation"], Value::Null);
        assert_eq!(unproven(&unchecked), 0);
        assert_eq!(unproven(&report), 2, "not isolated and unknown both count");
    }

    #[test]
    fn text_names_each_unproven_group_with_its_file_line_and_one_sentence_per_path() {
        let text = crate::report::text(&checked_report());
        assert!(
            text.contains(
                "prod.yaml:5:5: cn-hangzhou/sg-web is NOT isolated (4 members, declared Drop)"
            ),
            "{text}"
        );
        assert!(
            text.contains("members reach each other on tcp 22/22 through rule sgr-ssh of sg-web (source: the group itself; e.g. eni-a -> eni-b)"),
            "{text}"
        );
        assert!(
            text.contains("cn-hangzhou/sg-odd isolation is unknown"),
            "{text}"
        );
        assert!(
            text.contains("could not be read:\\nmissing permission"),
            "a newline from the cloud is escaped: {text}"
        );
        assert!(
            !text.contains("sg-quiet is"),
            "isolated groups are not listed"
        );
        assert!(
            text.contains("1 not isolated, 1 isolation unknown"),
            "{text}"
        );
    }

    #[test]
    fn markdown_has_an_isolation_section_with_escaped_cloud_text() {
        let md = crate::report::markdown(&checked_report());
        assert!(
            md.contains(
                "**Isolation**: 3 group(s) declared Drop checked, 1 not isolated, 1 unknown"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- `sg-web` (cn-hangzhou) **not isolated**, 4 members, declared at `prod.yaml:5:5`"
            ),
            "{md}"
        );
        assert!(md.contains("  - members reach each other on tcp 22/22 through rule sgr-ssh of sg-web (source: the group itself"), "{md}");
        assert!(
            md.contains("sgr-&lt;b&gt;"),
            "HTML from the cloud is escaped: {md}"
        );
        assert!(!md.contains("<b>"));
    }

    #[test]
    fn hostile_text_from_the_cloud_forges_no_line_in_text_or_markdown() {
        const HOSTILE: &str =
            "x\n::notice title=owned::forged\r\u{1b}[31mred|`<img src=x>\n# heading\n- item";
        let mut report = checked_report();
        let checked = report.isolation.as_mut().unwrap();
        let web = checked
            .get_mut(&GroupKey::new("cn-hangzhou", "sg-web"))
            .unwrap();
        web.paths[0].rule_id = Some(HOSTILE.into());
        web.paths[0].from = HOSTILE.into();
        web.paths[0].source = Some(HOSTILE.into());
        let odd = checked
            .get_mut(&GroupKey::new("cn-hangzhou", "sg-odd"))
            .unwrap();
        odd.unknown[0].reason = HOSTILE.into();
        for (what, out) in [
            ("text", crate::report::text(&report)),
            ("markdown", crate::report::markdown(&report)),
        ] {
            assert!(
                !out.chars().any(|c| c.is_control() && c != '\n'),
                "{what}: a control character got through:\n{out}"
            );
            for line in out.lines() {
                let start = line.trim_start();
                for forged in ["::", "# heading", "- item", "red"] {
                    assert!(
                        !start.starts_with(forged),
                        "{what}: forged {forged:?}:\n{out}"
                    );
                }
            }
        }
        let md = crate::report::markdown(&report);
        assert!(
            !md.contains("<img"),
            "no HTML from the cloud in Markdown: {md}"
        );
    }

    #[test]
    fn a_shared_group_and_a_cidr_source_read_as_sentences() {
        let shared = Path {
            kind: PathKind::SharedGroup,
            group: "sg-all".into(),
            rule_id: None,
            protocol: "all".into(),
            ports: "-1/-1".into(),
            source: None,
            from: "eni-a".into(),
            to: "eni-b".into(),
        };
        let id = |s: &str| s.to_string();
        assert_eq!(
            sentence(&shared, "sg-web", &id),
            "members reach each other on all traffic through sg-all, a group they share whose policy is Accept (e.g. eni-a -> eni-b)"
        );
        assert!(sentence(&ssh_path("10.0.0.0/8"), "sg-web", &id).contains("(source: 10.0.0.0/8;"));
    }
}
