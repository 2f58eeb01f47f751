//! `--output markdown`: a compact plan for a pull-request comment. A summary line with the revision,
//! notes, a table of changes with their direction (changes that *open* a group come first and are
//! highlighted: they weaken isolation), problems, and the groups in sync folded in a `<details>`.
//!
//! GitHub refuses comments over 65,536 characters, so the output has a byte budget (bytes ≥
//! characters): rows are added in priority order until the budget is reached, and the rest is
//! summarised in a note that points at the JSON report. Any estate fits.

use super::{direction, problem, summary_line};
use crate::escape::markdown as cell;
use crate::model::NoteLevel;
use crate::plan::Action;
use crate::reconcile::survey::{place, sentence, Coverage};
use crate::reconcile::{GroupResult, Outcome, OutcomeKind, PassReport};
use std::fmt::Write;

/// GitHub's limit for one issue or pull-request comment.
pub const MAX_COMMENT_CHARS: usize = 65_536;
/// What we allow ourselves: room is left for a CI wrapper's own header or footer.
const BUDGET: usize = MAX_COMMENT_CHARS - 4_096;
/// Room kept for the closing parts (truncation notes, `</details>`) while rows are added.
const RESERVE: usize = 1_024;

fn result_word(r: &GroupResult) -> &'static str {
    match r.outcome.kind() {
        OutcomeKind::InSync => "in sync",
        OutcomeKind::WouldChange => "will change",
        OutcomeKind::Changed => "changed",
        OutcomeKind::Failed => "**failed**",
        OutcomeKind::Error => "**error**",
        OutcomeKind::Observed => "observe only (not written)",
        OutcomeKind::Held => "**held**",
    }
}

/// Lower sorts first: opens, then other problems, then the rest.
fn priority(r: &GroupResult) -> u8 {
    if r.entry.opens() {
        0
    } else if r.is_error() {
        1
    } else {
        2
    }
}

fn change_row(r: &GroupResult) -> String {
    let change = match &r.entry.action {
        Action::Change { from, to } => format!("{from} → {to}"),
        _ => format!(
            "{} → {}",
            r.entry.observed.map_or("?".to_string(), |p| p.to_string()),
            r.entry.desired
        ),
    };
    let dir = match direction(&r.entry) {
        Some("opens") => "⚠️ **opens**".to_string(),
        Some(d) => d.to_string(),
        None => "—".to_string(),
    };
    format!(
        "| `{}` | {} | {} | {} | {} | {} |\n",
        cell(&r.entry.key.id),
        cell(&r.entry.key.place()),
        change,
        dir,
        result_word(r),
        cell(&r.entry.source.to_string())
    )
}

fn problem_line(r: &GroupResult) -> String {
    format!(
        "- `{}` ({}): {} — {}\n",
        cell(&r.entry.key.id),
        cell(&r.entry.key.place()),
        result_word(r),
        cell(&problem(r).unwrap_or_default())
    )
}

/// Appends `line` if it fits within `limit`; returns whether it did.
fn push_within(out: &mut String, line: &str, limit: usize) -> bool {
    if out.len() + line.len() <= limit {
        out.push_str(line);
        true
    } else {
        false
    }
}

/// The whole comment: heading and summary, notes, the pass's fatal error, changes, problems, coverage
/// and the groups in sync, each section within what is left of the budget. Every piece of untrusted
/// text (ids, places, paths, messages, names from the cloud) goes through `escape::markdown`.
pub fn markdown(report: &PassReport) -> String {
    let mut out = heading(report);
    notes(&mut out, report);
    if let Some(f) = &report.fatal {
        let _ = writeln!(
            out,
            "❌ **The pass stopped early:** {}\n",
            cell(&f.to_string())
        );
    }
    changes(&mut out, report);
    problems(&mut out, report);
    if let Some(c) = &report.coverage {
        coverage_section(&mut out, c);
    }
    super::isolation::markdown(&mut out, report, BUDGET - RESERVE);
    in_sync(&mut out, report);
    out
}

/// The title with the revision, the summary line, and the warning when a change opens a group.
fn heading(report: &PassReport) -> String {
    let mut out = String::new();
    let title = if report.dry_run {
        "sgpolicy plan"
    } else {
        "sgpolicy apply"
    };
    let _ = writeln!(out, "### {title} · revision `{}`\n", cell(&report.revision));
    let _ = writeln!(out, "**{}**\n", cell(&summary_line(report)));
    let opens = report.results.iter().filter(|r| r.entry.opens()).count();
    if opens > 0 {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> {opens} change(s) **open** a security group (Drop → Accept): its members will reach each other. Review them first.\n"
        );
    }
    out
}

/// One list item per note, within a quarter of the budget.
fn notes(out: &mut String, report: &PassReport) {
    for n in &report.notes {
        let icon = match n.level {
            NoteLevel::Warning => "⚠️ warning",
            NoteLevel::Error => "❌ error",
        };
        let at: Vec<String> = n
            .locations
            .iter()
            .map(|l| format!("`{}`", cell(&l.to_string())))
            .collect();
        let at = if at.is_empty() {
            String::new()
        } else {
            format!(" ({})", at.join(", "))
        };
        let line = format!("- {icon}: {}{at}\n", cell(&n.message));
        if !push_within(out, &line, BUDGET / 4) {
            out.push_str("- … more notes not shown (see the JSON report)\n");
            break;
        }
    }
    if !report.notes.is_empty() {
        out.push('\n');
    }
}

/// The table of changes, those that open a group first, then problems, then the rest.
fn changes(out: &mut String, report: &PassReport) {
    let mut changes: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| matches!(r.entry.action, Action::Change { .. }))
        .collect();
    if changes.is_empty() {
        return;
    }
    changes.sort_by_key(|r| (priority(r), r.entry.key.clone()));
    out.push_str("| group | region | change | direction | result | declared at |\n|---|---|---|---|---|---|\n");
    let shown = push_rows(out, changes.iter().map(|r| change_row(r)));
    if shown < changes.len() {
        let _ = writeln!(
            out,
            "\n… and {} more change(s) not shown: the comment would exceed GitHub's {MAX_COMMENT_CHARS}-character limit (all of them are in the JSON report, `--report FILE`).",
            changes.len() - shown
        );
    }
}

/// Groups that failed without a change to show (not found, unmanageable, read failed).
fn problems(out: &mut String, report: &PassReport) {
    let problems: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| r.is_error() && !matches!(r.entry.action, Action::Change { .. }))
        .collect();
    if problems.is_empty() {
        return;
    }
    out.push_str("\n**Problems**\n\n");
    let shown = push_rows(out, problems.iter().map(|r| problem_line(r)));
    if shown < problems.len() {
        let _ = writeln!(out, "- … and {} more not shown", problems.len() - shown);
    }
}

/// The groups in sync, folded in a `<details>` block.
fn in_sync(out: &mut String, report: &PassReport) {
    let in_sync: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::InSync)
        .collect();
    if in_sync.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n<details><summary>{} group(s) in sync</summary>\n",
        in_sync.len()
    );
    let lines = in_sync.iter().map(|r| {
        format!(
            "- `{}` ({}) {}\n",
            cell(&r.entry.key.id),
            cell(&r.entry.key.place()),
            r.entry.desired
        )
    });
    let shown = push_rows(out, lines);
    if shown < in_sync.len() {
        let _ = writeln!(out, "- … and {} more not shown", in_sync.len() - shown);
    }
    out.push_str("\n</details>\n");
}

/// Appends rows while they fit in the budget (less the reserve for closing parts); returns how many.
fn push_rows(out: &mut String, rows: impl Iterator<Item = String>) -> usize {
    let mut shown = 0;
    for row in rows {
        if !push_within(out, &row, BUDGET - RESERVE) {
            break;
        }
        shown += 1;
    }
    shown
}

/// Per (account, region) the sentence "14 groups in cn-hangzhou are governed by no policy file",
/// then the ungoverned groups folded in a `<details>` block, within the budget.
fn coverage_section(out: &mut String, c: &Coverage) {
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str("**Coverage**\n\n");
    for b in &c.buckets {
        let Ok(groups) = &b.result else { continue };
        let line = format!(
            "- {} (of {} listed)\n",
            cell(&sentence(groups.len(), &place(&b.bucket))),
            b.listed
        );
        if !push_within(out, &line, BUDGET - RESERVE) {
            break;
        }
    }
    let total = c.count();
    if total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\n<details><summary>{total} ungoverned group(s)</summary>\n"
    );
    let mut shown = 0;
    for g in c.ungoverned() {
        let mut line = format!("- `{}` ({})", cell(&g.key.id), cell(&g.key.place()));
        if let Some(name) = &g.name {
            let _ = write!(line, " {}", cell(name));
        }
        if let Some(vpc) = &g.vpc_id {
            let _ = write!(line, " · {}", cell(vpc));
        }
        line.push('\n');
        if !push_within(out, &line, BUDGET - RESERVE) {
            break;
        }
        shown += 1;
    }
    if shown < total {
        let _ = writeln!(out, "- … and {} more not shown", total - shown);
    }
    out.push_str("\n</details>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupKey, Location, Mode, Note, Policy};
    use crate::plan::PlanEntry;
    use std::time::Duration;

    fn result(i: usize, from: Policy, to: Policy, outcome: Outcome) -> GroupResult {
        GroupResult {
            entry: PlanEntry {
                key: GroupKey::new("cn-hangzhou", format!("sg-bp1{i:016}")),
                desired: to,
                observed: Some(from),
                source: Location {
                    path: std::path::Path::new("policies/team-with-a-long-name/prod.yaml").into(),
                    line: i + 3,
                    column: 5,
                },
                action: if from == to {
                    Action::InSync
                } else {
                    Action::Change { from, to }
                },
                mode: Mode::Enforce,
                name: None,
            },
            outcome,
            token: None,
            request_id: None,
            changed_by: None,
        }
    }

    fn report(results: Vec<GroupResult>) -> PassReport {
        PassReport {
            revision: "0123456789ab".into(),
            files: 1,
            dry_run: true,
            results,
            fatal: None,
            api_calls: Default::default(),
            retries: 0,
            throttled: 0,
            duration: Duration::from_millis(5),
            notes: Vec::new(),
            coverage: None,
            unmanageable: Default::default(),
            pages: Default::default(),
            isolation: None,
        }
    }

    #[test]
    fn a_small_plan_has_summary_table_directions_and_folded_in_sync_groups() {
        let mut r = report(vec![
            result(1, Policy::Accept, Policy::Drop, Outcome::WouldChange),
            result(2, Policy::Drop, Policy::Accept, Outcome::WouldChange),
            result(3, Policy::Drop, Policy::Drop, Outcome::InSync),
        ]);
        r.notes.push(Note {
            level: NoteLevel::Warning,
            message: "selector (cn-a name \"x|y\") matched no security group".into(),
            locations: vec![Location {
                path: std::path::Path::new("s.yaml").into(),
                line: 2,
                column: 3,
            }],
        });
        let md = markdown(&r);
        assert!(md.contains("revision `0123456789ab`"), "{md}");
        assert!(
            md.contains("**Plan: 2 to change, 1 in sync, 0 errors"),
            "{md}"
        );
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `sg-")).collect();
        assert_eq!(rows.len(), 2, "{md}");
        assert!(
            rows[0].contains("Drop → Accept") && rows[0].contains("⚠️ **opens**"),
            "opens first: {md}"
        );
        assert!(
            rows[1].contains("Accept → Drop") && rows[1].contains("| isolates |"),
            "{md}"
        );
        assert!(md.contains("> [!WARNING]\n> 1 change(s) **open**"), "{md}");
        assert!(
            md.contains("<details><summary>1 group(s) in sync</summary>"),
            "{md}"
        );
        assert!(md.contains("x\\|y"), "pipes in user text are escaped: {md}");
        assert!(md.trim_end().ends_with("</details>"));
    }

    #[test]
    fn ten_thousand_groups_stay_under_the_comment_limit_with_a_note() {
        let results: Vec<GroupResult> = (0..10_000)
            .map(|i| match i % 4 {
                0 => result(i, Policy::Drop, Policy::Accept, Outcome::WouldChange),
                1 => result(i, Policy::Accept, Policy::Drop, Outcome::WouldChange),
                _ => result(i, Policy::Drop, Policy::Drop, Outcome::InSync),
            })
            .collect();
        let md = markdown(&report(results));
        assert!(
            md.chars().count() <= MAX_COMMENT_CHARS,
            "{} chars",
            md.chars().count()
        );
        assert!(md.len() <= MAX_COMMENT_CHARS, "{} bytes", md.len());
        assert!(
            md.contains("more change(s) not shown"),
            "truncation is said"
        );
        assert!(md.contains("<details><summary>5000 group(s) in sync</summary>"));
        assert!(
            md.trim_end().ends_with("</details>"),
            "the details block is closed"
        );
        // Opens are shown before isolations, so truncation drops isolations first.
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `sg-")).collect();
        assert!(rows.len() > 100, "{}", rows.len());
        assert!(
            rows.iter().all(|r| r.contains("opens")),
            "only opens fit, and they come first"
        );
    }

    #[test]
    fn ungoverned_groups_are_counted_per_region_and_listed_within_the_comment_limit() {
        use crate::reconcile::survey::{BucketCoverage, Ungoverned};
        let ungoverned: Vec<Ungoverned> = (0..10_000)
            .map(|i| Ungoverned {
                key: GroupKey::new("cn-hangzhou", format!("sg-bp1{i:016}")),
                name: Some(format!("team-{i}")),
                vpc_id: Some("vpc-1".into()),
            })
            .collect();
        let mut r = report(vec![result(1, Policy::Drop, Policy::Drop, Outcome::InSync)]);
        r.coverage = Some(Coverage {
            buckets: vec![
                BucketCoverage {
                    bucket: GroupKey::new("cn-hangzhou", "").bucket(),
                    listed: 10_001,
                    result: Ok(ungoverned),
                },
                BucketCoverage {
                    bucket: GroupKey::new("cn-shanghai", "").bucket(),
                    listed: 3,
                    result: Ok(Vec::new()),
                },
            ],
            required: false,
        });
        let md = markdown(&r);
        assert!(md.len() <= MAX_COMMENT_CHARS, "{} bytes", md.len());
        assert!(
            md.contains(
                "- 10000 groups in cn-hangzhou are governed by no policy file (of 10001 listed)\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("- 0 groups in cn-shanghai are governed by no policy file (of 3 listed)\n")
        );
        assert!(md.contains("<details><summary>10000 ungoverned group(s)</summary>"));
        assert!(md.contains("- `sg-bp10000000000000000` (cn-hangzhou) team-0 · vpc-1\n"));
        assert!(md.contains("more not shown"), "truncation is said");
        assert!(md.trim_end().ends_with("</details>"));
    }
}
