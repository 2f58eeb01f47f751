//! Every report format fed untrusted text that tries to escape it: file names, ids and names from the
//! cloud, server messages and notes holding newlines, `::` workflow commands, escape sequences, and
//! Markdown and HTML metacharacters. None of it may add a line, a command, a colour or markup.

use super::*;
use crate::ecs::{ApiError, EcsError};
use crate::failure::Failure;
use crate::model::{GroupKey, Location, Mode, Note};
use crate::plan::PlanEntry;
use crate::reconcile::survey::{BucketCoverage, Coverage, Ungoverned};
use std::time::Duration;

/// What an attacker with write access to the repository, or control of names in the cloud, would try.
const HOSTILE: &str = "x\n::notice title=owned::forged\r\u{1b}[31mred\u{1b}]8;;https://e.example\u{7}|`<img src=x onerror=alert(1)>&amp;</details>\n# heading\n- item";

fn hostile_report() -> PassReport {
    let source = Location {
        path: std::path::Path::new(&format!("policies/{HOSTILE}.yaml")).into(),
        line: 2,
        column: 5,
    };
    let entry = |id: &str, action: Action| PlanEntry {
        key: GroupKey::new("cn-hangzhou", format!("sg-{id}{HOSTILE}")),
        desired: Policy::Drop,
        observed: Some(Policy::Accept),
        source: source.clone(),
        action,
        mode: Mode::Enforce,
        name: None,
    };
    let result = |entry: PlanEntry, outcome: Outcome| GroupResult {
        entry,
        outcome,
        token: None,
        request_id: None,
        changed_by: None,
    };
    PassReport {
        revision: "0123456789ab".into(),
        files: 1,
        dry_run: true,
        results: vec![
            result(
                entry(
                    "a",
                    Action::Change {
                        from: Policy::Accept,
                        to: Policy::Drop,
                    },
                ),
                Outcome::WouldChange,
            ),
            result(
                entry(
                    "b",
                    Action::ReadFailed(Failure::Ecs(EcsError::Api(ApiError {
                        action: "DescribeSecurityGroupAttribute",
                        status: Some(500),
                        code: "Bad".into(),
                        message: format!("the server said {HOSTILE}"),
                        request_id: None,
                        retry_after_ms: None,
                    }))),
                ),
                Outcome::Error,
            ),
        ],
        fatal: None,
        api_calls: Default::default(),
        retries: 0,
        throttled: 0,
        duration: Duration::from_millis(5),
        notes: vec![Note {
            level: NoteLevel::Warning,
            message: format!("selector matched {HOSTILE}"),
            locations: vec![source.clone()],
        }],
        coverage: Some(Coverage {
            buckets: vec![BucketCoverage {
                bucket: GroupKey::new("cn-hangzhou", "").bucket(),
                listed: 3,
                result: Ok(vec![Ungoverned {
                    key: GroupKey::new("cn-hangzhou", format!("sg-u{HOSTILE}")),
                    name: Some(HOSTILE.into()),
                    vpc_id: Some(HOSTILE.into()),
                }]),
            }],
            required: false,
        }),
        isolation: None,
        unmanageable: Default::default(),
        pages: Default::default(),
    }
}

/// No control character at all, and no line that a CI runner or a Markdown renderer would read as
/// something of its own.
fn assert_no_line_is_forged(out: &str, what: &str) {
    assert!(
        !out.chars().any(|c| c.is_control() && c != '\n'),
        "{what}: a control character got through:\n{out}"
    );
    for line in out.lines() {
        let start = line.trim_start();
        assert!(
            !start.starts_with("::"),
            "{what}: a workflow command line:\n{out}"
        );
        assert!(
            !start.starts_with("# heading"),
            "{what}: a forged heading:\n{out}"
        );
        assert!(
            !start.starts_with("- item"),
            "{what}: a forged list item:\n{out}"
        );
        assert!(!start.starts_with("red"), "{what}: a forged line:\n{out}");
    }
}

#[test]
fn the_text_table_shows_hostile_text_escaped_on_the_lines_it_belongs_to() {
    let out = text(&hostile_report());
    assert_no_line_is_forged(&out, "text");
    // A header, two rows and one problem line, a blank, the note, coverage (two lines and a blank),
    // the summary.
    assert_eq!(out.lines().count(), 10, "{out}");
    assert!(
        out.contains("sg-ax\\n::notice title=owned::forged\\r\\u{1b}[31mred"),
        "{out}"
    );
}

#[test]
fn markdown_keeps_hostile_text_inside_its_cell_list_item_and_code_span() {
    let md = markdown(&hostile_report());
    assert_no_line_is_forged(&md, "markdown");
    assert!(!md.contains("<img"), "no HTML gets through: {md}");
    assert_eq!(
        md.matches("</details>").count(),
        1,
        "only our own closing tag: {md}"
    );
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `sg-")).collect();
    assert_eq!(rows.len(), 1, "{md}");
    // Every cell of the row is still in its column: the pipes in the text are escaped.
    assert_eq!(rows[0].matches(" | ").count(), 5, "{}", rows[0]);
    assert!(
        rows[0].contains("&lt;img src=x onerror=alert(1)&gt;&amp;amp;"),
        "{}",
        rows[0]
    );
}

#[test]
fn json_escapes_hostile_text_and_gives_it_back_unchanged() {
    let report = hostile_report();
    let out = serde_json::to_string_pretty(&json(&report)).expect("serialises");
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out}");
    assert!(
        out.contains("\\u001b[31m") && out.contains("\\n::notice"),
        "{out}"
    );
    let back: Value = serde_json::from_str(&out).expect("parses");
    assert_eq!(back["groups"][0]["id"], format!("sg-a{HOSTILE}"));
    assert_eq!(
        back["notes"][0]["message"],
        format!("selector matched {HOSTILE}")
    );
    assert_eq!(back["ungoverned"][0]["name"], HOSTILE);
}
