//! `--output markdown`: a compact plan for a pull-request comment. A summary line with the revision,
//! notes, a table of changes with their direction (changes that *open* a group come first and are
//! highlighted: they weaken isolation), problems, and the groups in sync folded in a `<details>`.
//!
//! GitHub refuses comments over 65,536 characters, so the output has a byte budget (bytes ≥
//! characters): rows are added in priority order until the budget is reached, and the rest is
//! summarised in a note that points at the JSON report. Any estate fits.

use super::{direction, problem, summary_line};
use crate::model::NoteLevel;
use crate::plan::Action;
use crate::reconcile::{GroupResult, Outcome, PassReport};
use std::fmt::Write;

/// GitHub's limit for one issue or pull-request comment.
pub const MAX_COMMENT_CHARS: usize = 65_536;
/// What we allow ourselves: room is left for a CI wrapper's own header or footer.
const BUDGET: usize = MAX_COMMENT_CHARS - 4_096;
/// Room kept for the closing parts (truncation notes, `</details>`) while rows are added.
const RESERVE: usize = 1_024;

/// Text from policy files or error messages, made safe for a table cell: no HTML, no `|`, one line.
fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '`' => out.push('\''),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn result_word(r: &GroupResult) -> &'static str {
    match r.outcome {
        Outcome::InSync => "in sync",
        Outcome::WouldChange => "will change",
        Outcome::Changed => "changed",
        Outcome::Failed => "**failed**",
        Outcome::Error => "**error**",
        Outcome::Observed => "observe only (not written)",
        Outcome::Held => "**held**",
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
        cell(&r.entry.key.region),
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
        cell(&r.entry.key.region),
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

pub fn markdown(report: &PassReport) -> String {
    let mut out = String::new();
    let title = if report.dry_run { "sgpolicy plan" } else { "sgpolicy apply" };
    let _ = writeln!(out, "### {title} · revision `{}`\n", cell(&report.revision));
    let opens = report.results.iter().filter(|r| r.entry.opens()).count();
    let _ = writeln!(out, "**{}**\n", cell(&summary_line(report)));
    if opens > 0 {
        let _ = writeln!(
            out,
            "> [!WARNING]\n> {opens} change(s) **open** a security group (Drop → Accept): its members will reach each other. Review them first.\n"
        );
    }
    for n in &report.notes {
        let icon = match n.level {
            NoteLevel::Warning => "⚠️ warning",
            NoteLevel::Error => "❌ error",
        };
        let at: Vec<String> = n.locations.iter().map(|l| format!("`{}`", cell(&l.to_string()))).collect();
        let at = if at.is_empty() { String::new() } else { format!(" ({})", at.join(", ")) };
        let line = format!("- {icon}: {}{at}\n", cell(&n.message));
        if !push_within(&mut out, &line, BUDGET / 4) {
            out.push_str("- … more notes not shown (see the JSON report)\n");
            break;
        }
    }
    if let Some(f) = &report.fatal {
        let _ = writeln!(out, "\n❌ **The pass stopped early:** {}", cell(&f.to_string()));
    }

    let mut changes: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| matches!(r.entry.action, Action::Change { .. }))
        .collect();
    changes.sort_by_key(|r| (priority(r), r.entry.key.clone()));
    if !changes.is_empty() {
        out.push_str("\n| group | region | change | direction | result | declared at |\n|---|---|---|---|---|---|\n");
        let mut shown = 0;
        for r in &changes {
            if !push_within(&mut out, &change_row(r), BUDGET - RESERVE) {
                break;
            }
            shown += 1;
        }
        if shown < changes.len() {
            let _ = writeln!(
                out,
                "\n… and {} more change(s) not shown: the comment would exceed GitHub's {MAX_COMMENT_CHARS}-character limit (all of them are in the JSON report, `--report FILE`).",
                changes.len() - shown
            );
        }
    }

    let problems: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| r.is_error() && !matches!(r.entry.action, Action::Change { .. }))
        .collect();
    if !problems.is_empty() {
        out.push_str("\n**Problems**\n\n");
        let mut shown = 0;
        for r in &problems {
            if !push_within(&mut out, &problem_line(r), BUDGET - RESERVE) {
                break;
            }
            shown += 1;
        }
        if shown < problems.len() {
            let _ = writeln!(out, "- … and {} more not shown", problems.len() - shown);
        }
    }

    let in_sync: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::InSync)
        .collect();
    if !in_sync.is_empty() {
        let _ = writeln!(
            out,
            "\n<details><summary>{} group(s) in sync</summary>\n",
            in_sync.len()
        );
        let mut shown = 0;
        for r in &in_sync {
            let line = format!(
                "- `{}` ({}) {}\n",
                cell(&r.entry.key.id),
                cell(&r.entry.key.region),
                r.entry.desired
            );
            if !push_within(&mut out, &line, BUDGET - RESERVE) {
                break;
            }
            shown += 1;
        }
        if shown < in_sync.len() {
            let _ = writeln!(out, "- … and {} more not shown", in_sync.len() - shown);
        }
        out.push_str("\n</details>\n");
    }
    out
}
