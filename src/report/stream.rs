//! The JSON output written group by group, so a pass over 10,000 groups never holds the whole
//! document in memory (as a `Value` it costs tens of megabytes); byte for byte the same as
//! `json(report).to_string()`.

use super::{document, group_json};
use crate::reconcile::PassReport;
use serde_json::Value;
use std::io::{self, Write};

/// Writes `value` and a newline to `path` through a temporary file renamed over it, so a reader (a CI
/// wrapper, a dashboard scraping the daemon's last report) never sees half a document.
pub fn write_file(path: &std::path::Path, value: &Value) -> io::Result<()> {
    let tmp = path.with_extension("tmp-sgpolicy");
    std::fs::write(&tmp, format!("{value}\n")).and_then(|()| std::fs::rename(&tmp, path))
}

/// Writes the JSON document of `report` to `w` (no trailing newline).
pub fn write_json(report: &PassReport, w: &mut impl Write) -> io::Result<()> {
    let Value::Object(top) = document(report, Vec::new()) else {
        return Err(io::Error::other("the JSON document is not an object"));
    };
    w.write_all(b"{")?;
    for (i, (key, value)) in top.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        serde_json::to_writer(&mut *w, key)?;
        w.write_all(b":")?;
        if key == "groups" {
            w.write_all(b"[")?;
            for (j, r) in report.results.iter().enumerate() {
                if j > 0 {
                    w.write_all(b",")?;
                }
                let verdict = super::isolation::verdict(report, r);
                serde_json::to_writer(&mut *w, &group_json(r, verdict))?;
            }
            w.write_all(b"]")?;
        } else {
            serde_json::to_writer(&mut *w, value)?;
        }
    }
    w.write_all(b"}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::ApiError;
    use crate::model::{GroupKey, Location, Mode, Policy};
    use crate::plan::{Action, PlanEntry};
    use crate::reconcile::{Failure, GroupResult, Outcome};
    use std::time::Duration;

    fn result(i: usize, action: Action, outcome: Outcome) -> GroupResult {
        GroupResult {
            entry: PlanEntry {
                key: GroupKey::new("cn-hangzhou", format!("sg-{i}")),
                desired: Policy::Drop,
                observed: Some(Policy::Accept),
                source: Location {
                    path: std::path::Path::new("p/a \"b\".yaml").into(),
                    line: i + 1,
                    column: 3,
                },
                action,
                mode: Mode::Enforce,
                name: None,
            },
            outcome,
            token: Some(format!("tok-{i}")),
            request_id: None,
            changed_by: None,
        }
    }

    #[test]
    fn streamed_json_is_byte_for_byte_the_json_document() {
        let change = Action::Change {
            from: Policy::Accept,
            to: Policy::Drop,
        };
        let err = Failure::Ecs(ApiError::transport("X", "Timeout", "timed out: ü\n").into());
        let mut report = PassReport {
            revision: "0123456789ab".into(),
            files: 1,
            dry_run: false,
            results: vec![
                result(1, change.clone(), Outcome::Changed),
                result(2, change, Outcome::Failed(Box::new(err))),
                result(3, Action::NotFound, Outcome::Error),
            ],
            fatal: None,
            api_calls: [("DescribeSecurityGroups".to_string(), 1)].into(),
            retries: 2,
            throttled: 1,
            duration: Duration::from_millis(5),
            notes: Vec::new(),
            coverage: None,
            unmanageable: Default::default(),
            pages: Default::default(),
            isolation: None,
        };
        for _ in 0..2 {
            let mut out = Vec::new();
            write_json(&report, &mut out).expect("write");
            assert_eq!(
                String::from_utf8(out).expect("utf-8"),
                super::super::json(&report).to_string()
            );
            report.results.clear();
        }
    }
}
