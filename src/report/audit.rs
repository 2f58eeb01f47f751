//! The audit trail: one structured log event per write sent to ECS (target `sgpolicy::audit`), with
//! everything an auditor needs to tie it to ActionTrail and to the Git history.

use crate::plan::Action;
use crate::reconcile::{GroupResult, Outcome, PassReport};

/// Whether a ModifySecurityGroupPolicy request was actually sent for this result.
pub fn write_sent(r: &GroupResult) -> bool {
    match &r.outcome {
        Outcome::Changed => true,
        Outcome::Failed(e) => r.request_id.is_some() || e.after_a_write_was_sent(),
        _ => false,
    }
}

/// Logs one event per write of the pass.
pub fn log_writes(report: &PassReport, commit: Option<&str>) {
    for r in report.results.iter().filter(|r| write_sent(r)) {
        let Action::Change { from, to } = r.entry.action else {
            continue;
        };
        let request_id = r
            .request_id
            .clone()
            .or_else(|| r.failure().and_then(|e| e.request_id().map(str::to_string)))
            .unwrap_or_default();
        let token = r.token.as_deref().unwrap_or("");
        let commit = commit.unwrap_or("");
        if let (Outcome::Changed, Some(a)) = (&r.outcome, r.changed_by.as_deref()) {
            // The correction of a change an ActionTrail event announced: name its author.
            let none = String::new();
            tracing::info!(
                target: "sgpolicy::audit",
                group = %r.entry.key.id, account = %r.entry.key.account, region = %r.entry.key.region, from = %from, to = %to,
                revision = %report.revision, commit, source = %r.entry.source,
                client_token = token, request_id = %request_id, outcome = "changed",
                changed_by = %a, changed_by_type = a.actor.label(),
                changed_by_principal = a.principal_id.as_ref().unwrap_or(&none).as_str(),
                change_event_type = a.event_type.as_str(),
                change_source_ip = a.source_ip.as_ref().unwrap_or(&none).as_str(),
                change_user_agent = a.user_agent.as_ref().unwrap_or(&none).as_str(),
                change_event_time = a.event_time.as_ref().unwrap_or(&none).as_str(),
                change_event_id = a.event_id.as_str(),
                "write"
            );
        } else if r.outcome == Outcome::Changed {
            tracing::info!(
                target: "sgpolicy::audit",
                group = %r.entry.key.id, account = %r.entry.key.account, region = %r.entry.key.region, from = %from, to = %to,
                revision = %report.revision, commit, source = %r.entry.source,
                client_token = token, request_id = %request_id, outcome = "changed",
                "write"
            );
        } else {
            let (code, message) = r
                .failure()
                .map(|e| (e.code(), e.message()))
                .unwrap_or(("", String::new()));
            tracing::warn!(
                target: "sgpolicy::audit",
                group = %r.entry.key.id, account = %r.entry.key.account, region = %r.entry.key.region, from = %from, to = %to,
                revision = %report.revision, commit, source = %r.entry.source,
                client_token = token, request_id = %request_id, outcome = "failed",
                error_code = code, error = %message,
                "write"
            );
        }
    }
}
