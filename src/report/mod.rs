//! Renders a pass for people (a compact table of what is not in sync, then one summary line) and for
//! programs (a documented, stable JSON object; see README "JSON output").

use crate::escape;
use crate::model::{Account, NoteLevel, Policy};
use crate::plan::{Action, PlanEntry};
use crate::reconcile::{GroupResult, Outcome, OutcomeKind, PassReport};
use serde_json::{json, Value};
use std::fmt::Write;

pub mod audit;
pub mod isolation;
mod markdown;
mod stream;
#[cfg(test)]
mod tests;
mod ungoverned;
pub use markdown::{markdown, MAX_COMMENT_CHARS};
pub use stream::{write_file, write_json};

/// "opens" for Drop → Accept (weakens isolation), "isolates" for Accept → Drop; `None` otherwise.
pub fn direction(entry: &PlanEntry) -> Option<&'static str> {
    match entry.action {
        Action::Change {
            from: Policy::Drop,
            to: Policy::Accept,
        } => Some("opens"),
        Action::Change {
            from: Policy::Accept,
            to: Policy::Drop,
        } => Some("isolates"),
        _ => None,
    }
}

/// The JSON schema version; bumped only for incompatible changes.
pub const JSON_VERSION: u32 = 1;

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::InSync => "none",
        Action::Change { .. } => "change",
        Action::Unmanageable { .. } => "unmanageable",
        Action::NotFound => "not-found",
        Action::ReadFailed(_) => "read-failed",
    }
}

/// Why a group is an error, in one line.
fn problem(r: &GroupResult) -> Option<String> {
    match &r.outcome {
        Outcome::Held(h) => return Some(h.message()),
        Outcome::Failed(e) => return Some(e.to_string()),
        _ => {}
    }
    match &r.entry.action {
        Action::Unmanageable { reason } => Some(format!("cannot be managed: {reason}")),
        Action::NotFound => Some("security group not found in this region".into()),
        Action::ReadFailed(failure) => Some(failure.to_string()),
        _ => None,
    }
}

fn error_code(r: &GroupResult) -> Option<String> {
    match &r.outcome {
        Outcome::Held(h) => return Some(h.code().to_string()),
        Outcome::Failed(e) => return Some(e.code().to_string()),
        _ => {}
    }
    match &r.entry.action {
        Action::Unmanageable { .. } => Some("Unmanageable".into()),
        Action::NotFound => Some("InvalidSecurityGroupId.NotFound".into()),
        Action::ReadFailed(failure) => Some(failure.code().to_string()),
        _ => None,
    }
}

pub fn summary_line(report: &PassReport) -> String {
    let changes = if report.dry_run {
        format!("{} to change", report.count(OutcomeKind::WouldChange))
    } else {
        format!("{} changed", report.count(OutcomeKind::Changed))
    };
    let calls = report
        .api_calls
        .iter()
        .map(|(a, n)| format!("{n} {a}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut extra = String::new();
    for (n, what) in [
        (
            report.count(OutcomeKind::Observed),
            "observed (not written)",
        ),
        (report.count(OutcomeKind::Held), "held by safety rails"),
    ] {
        if n > 0 {
            let _ = write!(extra, ", {n} {what}");
        }
    }
    if let Some(c) = &report.coverage {
        let _ = write!(extra, ", {} ungoverned", c.count());
    }
    extra.push_str(&isolation::summary(report));
    let calls = if report.retries + report.throttled > 0 {
        format!(
            "{calls}; {} retried, {} throttled",
            report.retries, report.throttled
        )
    } else {
        calls
    };
    format!(
        "{}: {changes}, {} in sync, {} errors{extra} ({} groups, revision {}, {:.1}s; API calls: {})",
        if report.dry_run { "Plan" } else { "Apply" },
        report.count(OutcomeKind::InSync),
        report.count(OutcomeKind::Failed) + report.count(OutcomeKind::Error) + report.count(OutcomeKind::Held),
        report.results.len(),
        report.revision,
        report.duration.as_secs_f64(),
        if calls.is_empty() {
            "none".to_string()
        } else {
            calls
        },
    )
}

/// The text output: the table of groups not in sync (each problem on the line below its row), notes,
/// coverage, the fatal error and the summary line. Untrusted text is escaped (`escape::text`).
pub fn text(report: &PassReport) -> String {
    let mut out = table(report);
    for n in &report.notes {
        let level = match n.level {
            NoteLevel::Warning => "warning",
            NoteLevel::Error => "error",
        };
        let at = n
            .locations
            .first()
            .map(|l| format!("{l}: "))
            .unwrap_or_default();
        let _ = writeln!(out, "{at}{level}: {}", escape::text(&n.message));
    }
    if let Some(c) = &report.coverage {
        out.push_str(&ungoverned::text(c));
    }
    out.push_str(&isolation::text(report));
    if let Some(f) = &report.fatal {
        let _ = writeln!(
            out,
            "error: the pass stopped early: {}",
            escape::text(&f.to_string())
        );
    }
    out.push_str(&summary_line(report));
    out.push('\n');
    out
}

/// What the RESULT column says for a group.
fn result_cell(r: &GroupResult) -> String {
    let opens = if r.entry.opens() { " (opens)" } else { "" };
    match (&r.entry.action, &r.outcome) {
        (Action::Change { from, to }, Outcome::WouldChange) => {
            format!("will change {from} -> {to}{opens}")
        }
        (Action::Change { from, to }, Outcome::Changed) => format!("changed {from} -> {to}{opens}"),
        (Action::Change { from, to }, Outcome::Observed) => {
            format!("observe only: {from} -> {to}{opens}")
        }
        (Action::Change { from, to }, Outcome::Held(_)) => format!("HELD {from} -> {to}{opens}"),
        (_, Outcome::Failed(_)) => "FAILED".to_string(),
        (a, _) => format!("ERROR {}", action_name(a)),
    }
}

/// The aligned table of the groups not in sync, with a blank line after it; empty when all are.
fn table(report: &PassReport) -> String {
    let mut out = String::new();
    let rows: Vec<&GroupResult> = report
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::InSync)
        .collect();
    if rows.is_empty() {
        return out;
    }
    let region = match rows.iter().any(|r| r.entry.key.owner() != Account::Own) {
        true => "ACCOUNT/REGION",
        false => "REGION",
    };
    let header = [region, "GROUP", "OBSERVED", "DESIRED", "RESULT", "SOURCE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                escape::text(&r.entry.key.place()).into_owned(),
                escape::text(&r.entry.key.id).into_owned(),
                r.entry.observed.map_or("-".into(), |p| p.to_string()),
                r.entry.desired.to_string(),
                result_cell(r),
                r.entry.source.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut s = String::new();
        for (i, c) in cols.iter().enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{:<w$}  ", c, w = widths[i]);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out.push_str(&line(&header.map(String::from)));
    for (row, r) in cells.iter().zip(&rows) {
        out.push_str(&line(row));
        if let Some(p) = problem(r) {
            let _ = writeln!(out, "    {}", escape::text(&p));
        }
    }
    out.push('\n');
    out
}

pub fn json(report: &PassReport) -> Value {
    let groups = report.results.iter();
    let groups = groups.map(|r| group_json(r, isolation::verdict(report, r)));
    document(report, groups.collect())
}

/// One group's entry in the JSON output, with its isolation verdict if it was checked.
fn group_json(r: &GroupResult, verdict: Option<&crate::isolation::Verdict>) -> Value {
    json!({
                "account": r.entry.key.owner().named(),
                "region": r.entry.key.region,
                "id": r.entry.key.id,
                "desired": r.entry.desired,
                "observed": r.entry.observed,
                "action": action_name(&r.entry.action),
                "direction": direction(&r.entry),
                "mode": r.entry.mode,
                "outcome": r.outcome.kind(),
                "token": r.token,
                "requestId": r.request_id,
                "source": r.entry.source.to_string(),
                "changedBy": r.changed_by.as_deref().map(author_json),
                "error": error_code(r).map(|code| json!({
                    "code": code,
                    "message": problem(r),
                })),
                "isolation": isolation::json(verdict),
    })
}

/// Who made the change a correction undid, as the ActionTrail event named them (`changedBy`).
pub fn author_json(a: &crate::events::Author) -> Value {
    json!({
        "type": a.actor.label(),
        "name": a.name,
        "principalId": a.principal_id,
        "eventType": a.event_type.as_str(),
        "sourceIpAddress": a.source_ip,
        "userAgent": a.user_agent,
        "eventTime": a.event_time,
        "eventId": a.event_id,
        "via": a.via.map(|v| v.label()),
    })
}

/// The JSON document around the given group entries.
fn document(report: &PassReport, groups: Vec<Value>) -> Value {
    let mut doc = json!({
        "version": JSON_VERSION,
        "revision": report.revision,
        "dryRun": report.dry_run,
        "summary": {
            "groups": report.results.len(),
            "inSync": report.count(OutcomeKind::InSync),
            "wouldChange": report.count(OutcomeKind::WouldChange),
            "changed": report.count(OutcomeKind::Changed),
            "failed": report.count(OutcomeKind::Failed),
            "errors": report.count(OutcomeKind::Error),
            "observed": report.count(OutcomeKind::Observed),
            "held": report.count(OutcomeKind::Held),
            "durationMs": report.duration.as_millis() as u64,
        },
        "fatal": report.fatal.as_ref().map(|e| json!({"code": e.code(), "message": e.to_string()})),
        "apiCalls": report.api_calls,
        "notes": report.notes,
        "apiRetries": {"retried": report.retries, "throttled": report.throttled},
        "groups": groups,
    });
    if let Some(c) = &report.coverage {
        doc["ungoverned"] = ungoverned::json(c);
        doc["summary"]["ungoverned"] = json!(c.count());
    }
    if let Some((not_isolated, unknown)) = isolation::counts(report) {
        doc["summary"]["notIsolated"] = json!(not_isolated);
        doc["summary"]["isolationUnknown"] = json!(unknown);
    }
    doc
}
